//! One record of a watched topic → its pane: validity (envelope or prediction JSON, the
//! profile's schema, event time), segment, admission (sampled, skipped, late) and the feature
//! values summarised. Pure apart from metrics: the clock is an argument.
use super::{DriftConfig, DriftError, DriftStats};
use crate::features::{self, image_feature_names, PREDICTED_CLASS, SCORE};
use crate::metrics as m;
use crate::pane::{Admit, PaneConfig, PartitionPanes};
use argus_stats::image::ImageHistograms;
use argus_stats::profile::{Profile, StreamKind, FLEET};
use argus_stats::summary::Cell;
use metrics::counter;
use std::collections::HashMap;
use std::sync::Arc;

/// One record read from a watched topic, as the consumer gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
    /// Key, headers and timestamp: an input value may be bare ([`argus_wire::read_bare`]).
    pub key: Option<&'a [u8]>,
    pub headers: &'a argus_kafka::RawHeaders,
    pub timestamp_ms: Option<i64>,
}

impl Incoming<'_> {
    /// The input's envelope: read bare (headers mode) or decoded, as the worker does.
    pub(crate) fn envelope(&self) -> Result<argus_wire::Envelope, argus_wire::WireError> {
        argus_wire::read_bare(
            self.payload,
            self.headers.pairs(),
            argus_wire::BareRecord {
                key: self.key,
                offset: self.offset,
                timestamp_ms: self.timestamp_ms,
            },
        )
        .unwrap_or_else(|| argus_wire::decode_envelope(self.payload))
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Summarised into the pane starting at this time (an image that does not decode is
    /// summarised as nulls and also counted invalid).
    Sampled(i64),
    /// Counted in the pane starting at this time, not summarised (sampling, fps cap).
    Skipped(i64),
    /// Its pane (starting at this time) was already final: counted as late, not added.
    Late(i64),
    /// No features: counted under this reason.
    Invalid(&'static str),
}

/// Feature indices the stream maps onto.
#[derive(Debug)]
struct Layout {
    image: Vec<Option<usize>>,
    record: HashMap<String, usize>,
    score: Option<usize>,
    class: Option<usize>,
    positive_label: Option<String>,
}

impl Layout {
    fn new(profile: &Profile) -> Result<Self, DriftError> {
        let fleet = profile.fleet();
        let score = fleet.feature_index(SCORE);
        let class = fleet.feature_index(PREDICTED_CLASS);
        let mut image = Vec::new();
        let mut record = HashMap::new();
        match profile.stream {
            StreamKind::Images => {
                for name in image_feature_names() {
                    image.push(fleet.feature_index(&name));
                }
                if image.iter().all(Option::is_none) {
                    return Err(DriftError::SchemaMismatch(
                        "the profile is for images but has none of the image features; rebuild it with `argus drift profile --images`".into(),
                    ));
                }
            }
            StreamKind::Records => {
                for (i, f) in fleet.features.iter().enumerate() {
                    if Some(i) != score && Some(i) != class {
                        record.insert(f.name.clone(), i);
                    }
                }
            }
        }
        Ok(Self {
            image,
            record,
            score,
            class,
            positive_label: profile.score_label.clone().or_else(|| {
                profile
                    .calibration
                    .as_ref()
                    .map(|c| c.positive_label.clone())
            }),
        })
    }
}

/// Reads records into their partition's panes: the profile's view of the stream plus the
/// schema check, which the first input record decides.
#[derive(Debug)]
pub(crate) struct RecordReader {
    profile: Arc<Profile>,
    layout: Layout,
    pub pane_cfg: PaneConfig,
    input_topic: String,
    max_future_us: i64,
    schema_checked: bool,
    /// Only this model version's predictions count (`None`: all).
    predictions_version: Option<String>,
    /// The labels topic and the positive label, when predictions are joined with labels.
    quality: Option<(String, String)>,
}

impl RecordReader {
    /// Fails when the profile cannot describe any stream (an image profile without image
    /// features).
    pub fn new(
        config: &DriftConfig,
        profile: Arc<Profile>,
        pane_cfg: PaneConfig,
    ) -> Result<Self, DriftError> {
        Ok(Self {
            layout: Layout::new(&profile)?,
            profile,
            pane_cfg,
            input_topic: config.input_topic.clone(),
            max_future_us: i64::try_from(config.max_future.as_micros()).unwrap_or(i64::MAX),
            schema_checked: false,
            predictions_version: config.predictions_version.clone(),
            quality: None,
        })
    }

    /// Also read `labels_topic` and keep every prediction's score of `positive` for the
    /// quality join.
    pub fn with_quality(mut self, labels_topic: &str, positive: &str) -> Self {
        self.quality = Some((labels_topic.to_owned(), positive.to_owned()));
        self
    }

    /// Admit one record to `state` (its partition's panes) and summarise it if sampled.
    /// `now_us` is the wall clock, for the event-time check. Only a schema mismatch is an
    /// error (it stops the sidecar); everything else is counted in `stats` and metrics.
    pub fn read(
        &mut self,
        state: &mut PartitionPanes,
        rec: &Incoming<'_>,
        now_us: i64,
        stats: &mut DriftStats,
    ) -> Result<Outcome, DriftError> {
        stats.records += 1;
        let outcome = if rec.topic == self.input_topic {
            self.read_input(state, rec, now_us, stats)?
        } else if self.quality.as_ref().is_some_and(|(t, _)| t == rec.topic) {
            self.read_label(state, rec, now_us, stats)
        } else {
            self.read_prediction(state, rec, now_us, stats)
        };
        match outcome {
            Outcome::Invalid(reason) => invalid(stats, rec.topic, reason),
            Outcome::Sampled(_) | Outcome::Skipped(_) | Outcome::Late(_) => {}
        }
        Ok(outcome)
    }

    /// An input: an envelope, or a bare value (headers mode), of a frame or a record.
    fn read_input(
        &mut self,
        state: &mut PartitionPanes,
        rec: &Incoming<'_>,
        now_us: i64,
        stats: &mut DriftStats,
    ) -> Result<Outcome, DriftError> {
        let env = match rec.envelope() {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(topic = rec.topic, error = %e, "envelope does not decode");
                return Ok(Outcome::Invalid("envelope"));
            }
        };
        if !self.schema_checked {
            check_schema(&self.profile, &self.layout, &env.payload)?;
            self.schema_checked = true;
        }
        if !event_time_ok(env.capture_time_us, now_us, self.max_future_us) {
            return Ok(Outcome::Invalid("event_time"));
        }
        let profile = &*self.profile;
        let segment = segment_of(profile, &env.source_id);
        let capped = profile.stream == StreamKind::Images;
        let (admit, pane) = state.admit(
            &self.pane_cfg,
            rec.offset,
            env.capture_time_us,
            segment,
            capped,
        );
        if !count(stats, rec.topic, admit) {
            return Ok(outcome(admit, pane));
        }
        let (values, hist) = match (profile.stream, &env.payload) {
            (StreamKind::Images, payload) => {
                let mut hist = ImageHistograms::default();
                let values = self.image_values(payload, &mut hist, stats);
                (values, Some(hist))
            }
            (StreamKind::Records, argus_wire::Payload::Record(r)) => (self.record_values(r), None),
            (StreamKind::Records, _) => return Ok(Outcome::Invalid("not_a_record")),
        };
        state.add(
            profile,
            &self.pane_cfg,
            pane,
            rec.offset,
            segment,
            &values,
            None,
            hist.as_ref(),
        );
        Ok(Outcome::Sampled(pane))
    }

    /// Image features of a frame; a frame that does not decode is counted invalid and
    /// summarised as nulls in every image feature (so the null-share test sees it).
    fn image_values(
        &self,
        payload: &argus_wire::Payload,
        hist: &mut ImageHistograms,
        stats: &mut DriftStats,
    ) -> Vec<(usize, Cell<'static>)> {
        match features::frame_values(payload, hist) {
            Ok(v) => self
                .layout
                .image
                .iter()
                .zip(v)
                .filter_map(|(i, x)| i.map(|i| (i, Cell::Num(x))))
                .collect(),
            Err(e) => {
                counter!(m::INVALID, "reason" => e.0).increment(1);
                stats.invalid += 1;
                self.layout
                    .image
                    .iter()
                    .flatten()
                    .map(|i| (*i, Cell::Null))
                    .collect()
            }
        }
    }

    /// Profiled fields of a record; those it lacks count as null.
    fn record_values<'r>(&self, rec: &'r argus_wire::Record) -> Vec<(usize, Cell<'r>)> {
        let mut cells: Vec<Option<Cell<'_>>> = vec![None; self.profile.fleet().features.len()];
        for i in self.layout.record.values() {
            cells[*i] = Some(Cell::Null);
        }
        for f in &rec.fields {
            if let Some(i) = self.layout.record.get(f.name.as_str()) {
                cells[*i] = Some(features::field_cell(&f.value));
            }
        }
        cells
            .into_iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (i, c)))
            .collect()
    }

    /// A prediction (JSON) of the predictions topic: the model's score and class, in the
    /// pane of its input's capture time.
    fn read_prediction(
        &self,
        state: &mut PartitionPanes,
        rec: &Incoming<'_>,
        now_us: i64,
        stats: &mut DriftStats,
    ) -> Outcome {
        let p: argus_wire::Prediction = match parse_json(rec, "prediction_json") {
            Ok(p) => p,
            Err(invalid) => return invalid,
        };
        let Some(event_us) = p.input.capture_time_us else {
            return Outcome::Invalid("no_capture_time");
        };
        let profile = &*self.profile;
        let source = p.input.source_id.as_deref().or(p.input.key.as_deref());
        let segment = source.and_then(|s| segment_of(profile, s));
        if !event_time_ok(event_us, now_us, self.max_future_us) {
            return Outcome::Invalid("event_time");
        }
        let (admit, pane) = state.admit(&self.pane_cfg, rec.offset, event_us, segment, false);
        if let (Some((_, positive)), false) = (&self.quality, admit == Admit::Late) {
            // Every version's, sampled or not: the join needs each labelled prediction.
            if let Some(t) = crate::quality::Predicted::of(&p, positive, segment.unwrap_or(FLEET)) {
                state.add_predicted(pane, t);
            }
        }
        if admit == Admit::Sampled
            && self
                .predictions_version
                .as_ref()
                .is_some_and(|v| *v != p.model.version)
        {
            // Another version's scores (a canary's, or the version before a switch): counted
            // in its pane like a record sampling skipped, not summarised.
            counter!(m::RECORDS, "topic" => rec.topic.to_owned(), "outcome" => "other_version")
                .increment(1);
            return Outcome::Skipped(pane);
        }
        if !count(stats, rec.topic, admit) {
            return outcome(admit, pane);
        }
        let Some(out) = features::prediction_outputs(&p, self.layout.positive_label.as_deref())
        else {
            return Outcome::Sampled(pane);
        };
        let mut values = Vec::new();
        if let Some(i) = self.layout.score {
            values.push((i, out.score.map_or(Cell::Null, Cell::Num)));
        }
        if let Some(i) = self.layout.class {
            values.push((
                i,
                out.predicted_class
                    .as_deref()
                    .map_or(Cell::Null, Cell::Text),
            ));
        }
        state.add(
            profile,
            &self.pane_cfg,
            pane,
            rec.offset,
            segment,
            &values,
            out.score,
            None,
        );
        Outcome::Sampled(pane)
    }
}

impl RecordReader {
    /// A label (`argus.label/v1`) of the labels topic, in the pane of the time it was
    /// published (its Kafka timestamp; else its `labelled_at`): labels are joined as they
    /// arrive, whatever time they claim.
    fn read_label(
        &self,
        state: &mut PartitionPanes,
        rec: &Incoming<'_>,
        now_us: i64,
        stats: &mut DriftStats,
    ) -> Outcome {
        let label: argus_wire::Label = match parse_json(rec, "label_json") {
            Ok(l) => l,
            Err(invalid) => return invalid,
        };
        if let Err(e) = label.validate() {
            tracing::debug!(topic = rec.topic, error = %e, "invalid label");
            return Outcome::Invalid("label");
        }
        let event_us = rec
            .timestamp_ms
            .filter(|ms| *ms >= 0)
            .map_or(label.labelled_at_us, |ms| ms.saturating_mul(1000));
        if !event_time_ok(event_us, now_us, self.max_future_us) {
            return Outcome::Invalid("event_time");
        }
        let (admit, pane) = state.admit(&self.pane_cfg, rec.offset, event_us, None, false);
        if admit == Admit::Late {
            count(stats, rec.topic, admit);
            return Outcome::Late(pane);
        }
        count(stats, rec.topic, Admit::Sampled);
        state.add_labelled(pane, crate::quality::Labelled::from(&label));
        Outcome::Sampled(pane)
    }
}

/// A JSON message of a watched topic, or the invalid outcome `reason`.
fn parse_json<T: serde::de::DeserializeOwned>(
    rec: &Incoming<'_>,
    reason: &'static str,
) -> Result<T, Outcome> {
    serde_json::from_slice(rec.payload).map_err(|e| {
        tracing::debug!(topic = rec.topic, error = %e, reason, "message does not parse");
        Outcome::Invalid(reason)
    })
}

fn outcome(admit: Admit, pane: i64) -> Outcome {
    match admit {
        Admit::Sampled => Outcome::Sampled(pane),
        Admit::Skipped => Outcome::Skipped(pane),
        Admit::Late => Outcome::Late(pane),
    }
}

/// Event times must be after 1970 and at most `max_future_us` ahead of the wall clock
/// (`now_us`), so a wrong unit cannot push a partition's watermark into the future.
fn event_time_ok(t: i64, now_us: i64, max_future_us: i64) -> bool {
    t >= 0 && t <= now_us.saturating_add(max_future_us)
}

/// The segment a source reports in besides the fleet: every camera of an image stream (a
/// camera without its own reference is compared with the fleet's); for records only sources
/// the profile has a segment for, so entity ids do not become segments.
fn segment_of<'a>(profile: &Profile, source: &'a str) -> Option<&'a str> {
    match profile.stream {
        StreamKind::Images => Some(source),
        StreamKind::Records => profile.segments.contains_key(source).then_some(source),
    }
}

/// Count an admitted record by outcome; whether to summarise it.
fn count(stats: &mut DriftStats, topic: &str, admit: Admit) -> bool {
    let outcome = match admit {
        Admit::Sampled => "sampled",
        Admit::Skipped => "skipped",
        Admit::Late => {
            counter!(m::LATE, "topic" => topic.to_owned()).increment(1);
            stats.late += 1;
            "late"
        }
    };
    counter!(m::RECORDS, "topic" => topic.to_owned(), "outcome" => outcome).increment(1);
    if admit == Admit::Sampled {
        stats.sampled += 1;
    }
    admit == Admit::Sampled
}

fn invalid(stats: &mut DriftStats, topic: &str, reason: &'static str) {
    stats.invalid += 1;
    counter!(m::INVALID, "reason" => reason).increment(1);
    counter!(m::RECORDS, "topic" => topic.to_owned(), "outcome" => "invalid").increment(1);
    tracing::debug!(topic, reason, "record yielded no features");
}

/// The first input decides whether the stream matches the profile; a mismatch stops the
/// sidecar (its reports would be meaningless).
fn check_schema(
    profile: &Profile,
    layout: &Layout,
    payload: &argus_wire::Payload,
) -> Result<(), DriftError> {
    match (profile.stream, payload) {
        (StreamKind::Images, argus_wire::Payload::Record(_)) => Err(DriftError::SchemaMismatch(format!(
            "profile {} (schema {}) is for images, the stream carries records; use a records profile",
            profile.id, profile.schema_sha256
        ))),
        (StreamKind::Records, argus_wire::Payload::Record(r)) => {
            let mut missing: Vec<&str> = layout
                .record
                .keys()
                .filter(|k| !r.fields.iter().any(|f| f.name == *k))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                missing.sort_unstable();
                Err(DriftError::SchemaMismatch(format!(
                    "profile {} expects fields the stream's records lack: {}",
                    profile.id,
                    missing.join(", ")
                )))
            }
        }
        (StreamKind::Records, _) => Err(DriftError::SchemaMismatch(format!(
            "profile {} is for records, the stream carries images; use an images profile",
            profile.id
        ))),
        (StreamKind::Images, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{config, incoming, profile, record, IN, NOW_US, NO_HEADERS, PANE};
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use std::collections::BTreeMap;

    fn reader() -> RecordReader {
        let c = config();
        let pane_cfg = PaneConfig {
            pane_us: PANE,
            lateness_us: 0,
            sampler: argus_stats::hash::Sampler::new(1.0),
            max_fps: 0.0,
            max_segments: 10,
            seed: 1,
        };
        RecordReader::new(&c, profile(), pane_cfg).expect("reader")
    }

    fn read(
        r: &mut RecordReader,
        state: &mut PartitionPanes,
        offset: i64,
        payload: &[u8],
        stats: &mut DriftStats,
    ) -> Outcome {
        r.read(state, &incoming(0, offset, payload), NOW_US, stats)
            .expect("no schema error")
    }

    #[test]
    fn event_time_outside_bounds_is_counted_invalid_and_not_admitted() {
        let mut r = reader();
        let mut state = PartitionPanes::new(IN, 0, None);
        let mut stats = DriftStats::default();
        let hour = 3_600_000_000;
        let before_1970 = record("a", -1, Some(0.5));
        let too_far_ahead = record("a", NOW_US + hour + 1, Some(0.5));
        let just_ahead = record("a", NOW_US + hour, Some(0.5));
        assert_eq!(
            read(&mut r, &mut state, 0, &before_1970, &mut stats),
            Outcome::Invalid("event_time")
        );
        assert_eq!(
            read(&mut r, &mut state, 1, &too_far_ahead, &mut stats),
            Outcome::Invalid("event_time")
        );
        // Neither moved the watermark nor opened a pane.
        assert_eq!(state.watermark(), None);
        assert_eq!(state.commit_offset(), None);
        let pane = (NOW_US + hour).div_euclid(PANE) * PANE;
        assert_eq!(
            read(&mut r, &mut state, 2, &just_ahead, &mut stats),
            Outcome::Sampled(pane)
        );
        assert_eq!(state.watermark(), Some(NOW_US + hour));
        let expected = DriftStats {
            records: 3,
            sampled: 1,
            invalid: 2,
            ..DriftStats::default()
        };
        assert_eq!(stats, expected);
    }

    fn prediction_of(version: &str, offset: i64) -> Vec<u8> {
        let p = argus_wire::Prediction {
            schema: argus_wire::PREDICTION_SCHEMA.into(),
            id: format!("in/0/{offset}"),
            input: argus_wire::InputRef {
                topic: IN.into(),
                partition: 0,
                offset,
                key: Some("site-a".into()),
                source_id: None,
                sequence: None,
                capture_time_us: Some(NOW_US),
            },
            model: argus_wire::ModelRef {
                name: "churn".into(),
                version: version.into(),
                sha256: "0".repeat(64),
            },
            outcome: argus_wire::PredictionOutcome::Ok,
            label: Some("churn".into()),
            score: Some(0.7),
            top: Vec::new(),
            timings: argus_wire::Timings::default(),
            worker: "w".into(),
            produced_at_us: NOW_US,
            skipped: None,
            frame: None,
            detections: None,
        };
        serde_json::to_vec(&p).expect("json")
    }

    /// Following the registry, only the production version's predictions are summarised;
    /// another version's (a canary's) are counted in their pane but not summarised.
    #[test]
    fn predictions_of_another_version_are_not_summarised() {
        let mut c = config();
        c.predictions_topic = Some("predictions".into());
        c.predictions_version = Some("2".into());
        let pane_cfg = reader().pane_cfg.clone();
        let mut r = RecordReader::new(&c, profile(), pane_cfg).expect("reader");
        let mut state = PartitionPanes::new("predictions", 0, None);
        let mut stats = DriftStats::default();
        let pane = NOW_US.div_euclid(PANE) * PANE;
        let mut outcomes = Vec::new();
        for (offset, version) in [(0, "1"), (1, "2"), (2, "1")] {
            let payload = prediction_of(version, offset);
            let rec = Incoming {
                topic: "predictions",
                partition: 0,
                offset,
                payload: &payload,
                key: None,
                headers: &NO_HEADERS,
                timestamp_ms: None,
            };
            outcomes.push(r.read(&mut state, &rec, NOW_US, &mut stats).expect("read"));
        }
        assert_eq!(
            outcomes,
            [
                Outcome::Skipped(pane),
                Outcome::Sampled(pane),
                Outcome::Skipped(pane)
            ]
        );
        assert_eq!((stats.records, stats.sampled), (3, 1));
    }

    #[test]
    fn invalid_records_are_counted_by_reason() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut stats = DriftStats::default();
        let outcomes = metrics::with_local_recorder(&recorder, || {
            let mut r = reader();
            let mut state = PartitionPanes::new(IN, 0, None);
            let mut out = vec![read(&mut r, &mut state, 0, b"not an envelope", &mut stats)];
            out.push(read(
                &mut r,
                &mut state,
                1,
                &record("a", -5, Some(1.0)),
                &mut stats,
            ));
            out.push(read(&mut r, &mut state, 2, b"\x01", &mut stats));
            let pred = Incoming {
                topic: "predictions",
                partition: 0,
                offset: 0,
                payload: b"{not json",
                key: None,
                headers: &NO_HEADERS,
                timestamp_ms: None,
            };
            out.push(r.read(&mut state, &pred, NOW_US, &mut stats).expect("read"));
            out
        });
        assert_eq!(
            outcomes,
            [
                Outcome::Invalid("envelope"),
                Outcome::Invalid("event_time"),
                Outcome::Invalid("envelope"),
                Outcome::Invalid("prediction_json"),
            ]
        );
        assert_eq!(stats.invalid, 4);
        assert_eq!(stats.records, 4);
        let mut by_reason = BTreeMap::new();
        let mut invalid_outcomes = 0;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let DebugValue::Counter(n) = value else {
                continue;
            };
            let labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            if key.key().name() == m::INVALID {
                by_reason.insert(labels[0].1.clone(), n);
            } else if key.key().name() == m::RECORDS
                && labels.contains(&("outcome".into(), "invalid".into()))
            {
                invalid_outcomes += n;
            }
        }
        let expected: BTreeMap<String, u64> = [
            ("envelope".to_owned(), 2),
            ("event_time".to_owned(), 1),
            ("prediction_json".to_owned(), 1),
        ]
        .into();
        assert_eq!(by_reason, expected);
        for reason in by_reason.keys() {
            assert!(
                m::INVALID_REASONS.contains(&reason.as_str()),
                "{reason} is not pre-registered"
            );
        }
        assert_eq!(invalid_outcomes, 4);
    }

    #[test]
    fn bare_json_inputs_are_read_like_envelopes() {
        // Headers mode (a gateway writing JSON records): the sidecar reads what the worker
        // reads — content-type application/json, key = source, capture time from the header.
        let mut r = reader();
        let mut state = PartitionPanes::new(IN, 0, None);
        let mut stats = DriftStats::default();
        let capture = NOW_US.to_string();
        let headers = argus_kafka::RawHeaders::from_pairs([
            (&b"content-type"[..], Some(&b"application/json"[..])),
            (
                argus_wire::headers::CAPTURE_TIME_US.as_bytes(),
                Some(capture.as_bytes()),
            ),
        ]);
        let bare = Incoming {
            key: Some(b"a"),
            headers: &headers,
            ..incoming(0, 0, br#"{"x": 0.5}"#)
        };
        let t0 = NOW_US.div_euclid(PANE) * PANE;
        assert_eq!(
            r.read(&mut state, &bare, NOW_US, &mut stats).expect("read"),
            Outcome::Sampled(t0)
        );
        // The same value without its content type is no envelope.
        let unmarked = Incoming {
            key: Some(b"a"),
            ..incoming(0, 1, br#"{"x": 0.5}"#)
        };
        assert_eq!(
            r.read(&mut state, &unmarked, NOW_US, &mut stats)
                .expect("read"),
            Outcome::Invalid("envelope")
        );
    }

    #[test]
    fn first_input_decides_the_schema() {
        // A record lacking a profiled field stops the sidecar, naming the field.
        let mut r = reader();
        let mut state = PartitionPanes::new(IN, 0, None);
        let mut stats = DriftStats::default();
        let lacking = record("a", NOW_US, None);
        let err = r
            .read(&mut state, &incoming(0, 0, &lacking), NOW_US, &mut stats)
            .expect_err("missing field");
        assert!(
            matches!(&err, DriftError::SchemaMismatch(m) if m.ends_with("lack: x")),
            "{err}"
        );
        // After a good first record, a record lacking the field is summarised with a null.
        let mut r = reader();
        let good = record("a", NOW_US, Some(0.5));
        assert_eq!(
            read(&mut r, &mut state, 0, &good, &mut stats),
            Outcome::Sampled(NOW_US)
        );
        assert_eq!(
            read(&mut r, &mut state, 1, &lacking, &mut stats),
            Outcome::Sampled(NOW_US)
        );
        // An image stream on a records profile stops it too.
        let mut r = reader();
        let frame = argus_wire::encode_envelope(&argus_wire::Envelope {
            schema_version: argus_wire::SCHEMA_VERSION,
            source_id: "a".into(),
            sequence: 0,
            capture_time_us: NOW_US,
            payload: argus_wire::Payload::Encoded {
                format: argus_wire::ImageFormat::Jpeg,
                bytes: vec![1, 2, 3],
            },
        })
        .expect("encode");
        let err = r
            .read(&mut state, &incoming(0, 2, &frame), NOW_US, &mut stats)
            .expect_err("images on a records profile");
        assert!(err.to_string().contains("carries images"), "{err}");
    }

    #[test]
    fn segments_only_for_sources_the_profile_knows() {
        let p = profile();
        assert_eq!(segment_of(&p, "site-a"), Some("site-a"));
        assert_eq!(segment_of(&p, "entity-123"), None);
    }

    #[test]
    fn late_record_is_counted_on_the_watermarks_pane_and_not_added() {
        let mut r = reader();
        let mut state = PartitionPanes::new(IN, 0, None);
        let mut stats = DriftStats::default();
        let t0 = NOW_US.div_euclid(PANE) * PANE;
        let ahead = record("a", t0 + 5 * PANE, Some(0.1));
        let behind = record("a", t0 + PANE + 10, Some(0.1));
        assert_eq!(
            read(&mut r, &mut state, 0, &ahead, &mut stats),
            Outcome::Sampled(t0 + 5 * PANE)
        );
        assert_eq!(
            read(&mut r, &mut state, 1, &behind, &mut stats),
            Outcome::Late(t0 + PANE)
        );
        assert_eq!((stats.sampled, stats.late, stats.invalid), (1, 1, 0));
        let pcfg = r.pane_cfg.clone();
        // Close everything: the late record sits in the pane of the watermark (t0 + 5 s),
        // not in its own.
        state.follow(t0 + 10 * PANE);
        let partials = state.close_final(&pcfg, "s1", "sha");
        let summary: Vec<(i64, u64, u64)> = partials
            .iter()
            .map(|p| (p.pane_start_us - t0, p.n_records, p.late_records))
            .collect();
        assert_eq!(summary, [(5 * PANE, 1, 1)]);
    }
}
