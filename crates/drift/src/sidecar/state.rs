//! The sidecar's state and decisions, without Kafka clients.
//!
//! [`Sidecar`] holds the open panes of each assigned partition, the [`Aggregator`] fed by the
//! panes topic and the [`ReportBook`]. The driver feeds it what the consumers read
//! (`on_record`, `on_pane`, `on_report`), the watched topics' partitions (`on_expected`) and,
//! on every tick, the current assignment (`on_tick`). `on_tick` returns the [`Effect`]s to
//! carry out, in order: per partition its final panes' partials, then its new progress (a
//! progress message must never overtake the partials it covers), then the offset to store;
//! then the evaluated reports and the reports to publish. The wall clock and the broker
//! lookups that tell an idle partition from a slow one are arguments, so the decisions are
//! unit tested.
use super::input::{Incoming, Outcome, RecordReader};
use super::publish::ReportBook;
use super::{DriftConfig, DriftError, DriftStats};
use crate::aggregate::{AggregateConfig, Aggregator};
use crate::metrics as m;
use crate::pane::{PaneConfig, PaneMessage, PaneRecord, PartitionPanes, Progress};
use crate::quality::{Evaluated, QualityConfig, QualityReport, QualityTracker};
use argus_stats::hash::Sampler;
use argus_stats::profile::Profile;
use argus_stats::report::DriftReport;
use metrics::{counter, gauge, histogram};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (topic, partition).
pub(crate) type PartitionKey = (String, i32);

/// The partitions assigned to this sidecar now, each with the generation of its assignment
/// (`GroupContext::generation`; a partition revoked and assigned again gets a new one).
pub(crate) type Owned = BTreeMap<PartitionKey, Option<u64>>;

/// How often the watched topics' partitions are looked up again.
const METADATA_EVERY: Duration = Duration::from_secs(10);
/// How often the broker is asked at most whether a quiet partition was read to its end.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Broker facts about one partition, for telling an idle partition from a slow one. `None`
/// when the lookup failed (the partition then does not count as idle this time).
pub(crate) trait PartitionEnds {
    /// Low and high watermark (offsets).
    fn watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)>;
    /// The group's committed offset (`Some(None)`: nothing committed).
    fn committed(&self, topic: &str, partition: i32) -> Option<Option<i64>>;
}

/// Something the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Publish a final pane's partial on the panes topic; report the outcome with
    /// [`Sidecar::partial_sent`] (a refusal is counted, not fatal).
    Partial(PaneRecord),
    /// Publish a partition's new watermark on the panes topic (a failure stops the sidecar).
    Progress(PaneRecord),
    /// Store this offset for the next commit (`store_offset`, which commits `offset + 1`:
    /// the first record of the partition's oldest open pane).
    StoreOffset {
        topic: String,
        partition: i32,
        offset: i64,
    },
    /// A window was evaluated (for the caller's channel, every sidecar).
    Evaluated(Box<DriftReport>),
    /// Publish this report on the reports topic, keyed by its segment; report success with
    /// [`Sidecar::report_published`].
    Publish(Box<DriftReport>),
    /// A quality window was judged (every sidecar).
    QualityEvaluated(Box<QualityReport>),
    /// Publish the degradation alert if `fired`, then the report on the quality topic;
    /// report success with [`Sidecar::quality_published`].
    PublishQuality(Box<Evaluated>),
}

/// One sidecar's state; see the module doc.
#[derive(Debug)]
pub(crate) struct Sidecar {
    config: DriftConfig,
    profile: Arc<Profile>,
    reader: RecordReader,
    aggregator: Aggregator,
    parts: BTreeMap<PartitionKey, PartitionPanes>,
    /// The last progress published per owned partition.
    published_wm: HashMap<PartitionKey, i64>,
    book: ReportBook,
    stats: DriftStats,
    idle_timeout: Duration,
    last_meta: Option<Instant>,
    /// Which segments' reports are exported as metrics.
    segment_cap: m::SegmentCap,
    /// Quality reports to publish (with a labels topic only).
    quality_book: Option<ReportBook<Evaluated>>,
}

impl Sidecar {
    /// Checks the configuration and that the profile can describe a stream.
    pub fn new(config: DriftConfig, profile: Arc<Profile>) -> Result<Self, DriftError> {
        config.validate().map_err(DriftError::Config)?;
        let pane_cfg = PaneConfig {
            pane_us: i64::try_from(config.pane.as_micros()).unwrap_or(i64::MAX),
            lateness_us: i64::try_from(config.lateness.as_micros()).unwrap_or(i64::MAX),
            sampler: Sampler::new(config.sample_rate),
            max_fps: config.max_fps,
            max_segments: config.max_segments,
            seed: profile.settings.seed,
        };
        let mut reader = RecordReader::new(&config, profile.clone(), pane_cfg.clone())?;
        let tracker = match &config.quality {
            Some(q) => {
                let tracker = quality_tracker(&config, q, &profile)?;
                reader = reader.with_quality(&q.labels_topic, &tracker.config().positive);
                Some(tracker)
            }
            None => None,
        };
        let mut aggregator = Aggregator::new(
            AggregateConfig {
                pane_us: pane_cfg.pane_us,
                window_panes: config.window_panes,
                alarm_k: config.alarm_k,
                eval: config.eval.clone(),
                model: config.model.clone(),
                sample_rate: config.sample_rate,
                input_topic: config.input_topic.clone(),
            },
            profile.clone(),
        );
        if let Some(t) = tracker {
            aggregator = aggregator.with_quality(t);
        }
        // Reports pending longer than the alarm rule looks back are not published any more.
        let horizon_us =
            i64::from(config.window_panes * (2 * config.alarm_k + 1)) * pane_cfg.pane_us;
        let quality_book = config.quality.as_ref().map(|q| {
            let horizon = i64::try_from(q.horizon.as_micros()).unwrap_or(i64::MAX);
            ReportBook::new(horizon_us.saturating_add(horizon))
        });
        Ok(Self {
            idle_timeout: config.idle_timeout.unwrap_or(config.pane),
            segment_cap: m::SegmentCap::new(config.max_metric_segments),
            config,
            profile,
            reader,
            aggregator,
            parts: BTreeMap::new(),
            published_wm: HashMap::new(),
            book: ReportBook::new(horizon_us),
            quality_book,
            stats: DriftStats::default(),
            last_meta: None,
        })
    }

    /// The clients are up: `reports_end` is where each non-empty partition of the reports
    /// topic ended; nothing is published before the reports reader got there.
    pub fn start(&mut self, reports_end: BTreeMap<i32, i64>, quality_end: BTreeMap<i32, i64>) {
        self.book.start(reports_end);
        if let Some(b) = &mut self.quality_book {
            b.start(quality_end);
        }
    }

    pub fn stats(&self) -> &DriftStats {
        &self.stats
    }

    /// A record of a watched topic, read under `generation` of its partition's assignment.
    /// A partition seen for the first time — or under a new generation (revoked and assigned
    /// again, so the consumer rewound to the committed offset) — starts afresh at its
    /// published floor. Fails only when the first input does not match the profile.
    pub fn on_record(
        &mut self,
        rec: &Incoming<'_>,
        generation: Option<u64>,
        now_us: i64,
    ) -> Result<Outcome, DriftError> {
        let floor = self.aggregator.progress_of(rec.topic, rec.partition);
        let state = self
            .parts
            .entry((rec.topic.to_owned(), rec.partition))
            .or_insert_with(|| PartitionPanes::new(rec.topic, rec.partition, floor));
        if state.generation != generation {
            *state = PartitionPanes::new(rec.topic, rec.partition, floor);
            state.generation = generation;
        }
        self.reader.read(state, rec, now_us, &mut self.stats)
    }

    /// A message of the panes topic (a partial or a progress, any sidecar's).
    pub fn on_pane(&mut self, offset: i64, payload: Option<&[u8]>) {
        let Some(payload) = payload else { return };
        match serde_json::from_slice::<PaneRecord>(payload) {
            Ok(r) => self.aggregator.ingest(r.message),
            Err(e) => {
                counter!(m::INVALID, "reason" => "pane_message").increment(1);
                tracing::warn!(error = %e, offset, "unreadable message on the panes topic");
            }
        }
    }

    /// A record of the reports topic.
    pub fn on_report(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        self.book.on_seen(partition, offset, payload);
    }

    /// A record of the quality topic.
    pub fn on_quality_report(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        if let Some(b) = &mut self.quality_book {
            b.on_seen(partition, offset, payload);
        }
    }

    /// Whether to look up the watched topics' partitions now (every 10 s, first at once).
    pub fn metadata_due(&mut self, now: Instant) -> bool {
        let due = self
            .last_meta
            .is_none_or(|t| now.saturating_duration_since(t) > METADATA_EVERY);
        if due {
            self.last_meta = Some(now);
        }
        due
    }

    /// Every partition of the watched topics (a window is complete when each has progress
    /// past its end). Called only when every topic answered, so a failed lookup never lets a
    /// window complete without a topic.
    pub fn on_expected(&mut self, partitions: Vec<PartitionKey>) {
        self.aggregator.set_expected(partitions);
    }

    /// Follow the assignment: drop the state of partitions no longer owned, or owned under
    /// another generation (their open panes are replayed from the committed offset by
    /// whoever owns them now); new partitions start at their published floor.
    pub fn on_assignment(&mut self, owned: &Owned) {
        self.parts
            .retain(|k, s| owned.get(k).is_some_and(|g| s.generation == *g));
        self.published_wm.retain(|k, _| owned.contains_key(k));
        for ((t, p), g) in owned {
            let floor = self.aggregator.progress_of(t, *p);
            self.parts.entry((t.clone(), *p)).or_insert_with(|| {
                let mut s = PartitionPanes::new(t, *p, floor);
                s.generation = *g;
                s
            });
        }
    }

    /// The periodic step: follow the assignment, let idle partitions follow the furthest
    /// watermark, close final panes, publish progress, store offsets, evaluate complete
    /// windows and pick the reports to publish.
    pub fn on_tick(
        &mut self,
        owned: &Owned,
        ends: &impl PartitionEnds,
        now: Instant,
    ) -> Vec<Effect> {
        self.on_assignment(owned);
        let mut effects = Vec::new();
        let global = self
            .parts
            .values()
            .filter_map(PartitionPanes::watermark)
            .chain(self.aggregator.max_progress())
            .max();
        let pane_cfg = &self.reader.pane_cfg;
        for (key, state) in &mut self.parts {
            if let Some(g) = global {
                if state.quiet_for(self.idle_timeout) && read_to_end(ends, state, now) {
                    state.follow(g);
                }
            }
            for partial in
                state.close_final(pane_cfg, &self.config.sidecar_id, &self.profile.sha256)
            {
                effects.push(Effect::Partial(PaneRecord::new(PaneMessage::Partial(
                    Box::new(partial),
                ))));
            }
            if let Some(wm) = state.watermark() {
                gauge!(m::WATERMARK_SECONDS, "topic" => key.0.clone(), "partition" => key.1.to_string()).set(wm as f64 / 1e6);
                if self.published_wm.get(key) != Some(&wm) {
                    effects.push(Effect::Progress(PaneRecord::new(PaneMessage::Progress(
                        Progress {
                            sidecar: self.config.sidecar_id.clone(),
                            reference_sha256: self.profile.sha256.clone(),
                            topic: key.0.clone(),
                            partition: key.1,
                            watermark_us: wm,
                        },
                    ))));
                    self.published_wm.insert(key.clone(), wm);
                }
            }
            if let Some(c) = state.commit_offset() {
                if c > 0 {
                    effects.push(Effect::StoreOffset {
                        topic: key.0.clone(),
                        partition: key.1,
                        offset: c - 1,
                    });
                }
            }
        }
        self.evaluate(&mut effects);
        let leader = owned.contains_key(&(self.config.input_topic.clone(), 0));
        for r in self.book.due(leader) {
            effects.push(Effect::Publish(Box::new(r)));
        }
        if let Some(b) = &mut self.quality_book {
            for e in b.due(leader) {
                effects.push(Effect::PublishQuality(Box::new(e)));
            }
        }
        counter!(m::DUPLICATES).absolute(self.aggregator.duplicates);
        effects
    }

    /// Windows that became complete, evaluated: recorded as metrics, handed to the caller
    /// and queued for publishing.
    fn evaluate(&mut self, effects: &mut Vec<Effect>) {
        let started = Instant::now();
        let reports = self.aggregator.poll_reports();
        if !reports.is_empty() {
            histogram!(m::EVAL_SECONDS).record(started.elapsed().as_secs_f64());
        }
        for r in reports {
            m::record_capped(&mut self.segment_cap, &r);
            tracing::info!(segment = %r.segment, window_end = %r.window.end, status = ?r.dataset.status, alarm = %r.alarm.state, "drift window evaluated");
            effects.push(Effect::Evaluated(Box::new(r.clone())));
            self.book.evaluated(r);
        }
        for e in self.aggregator.take_quality() {
            let r = &e.report;
            if self.segment_cap.admit(&r.segment) {
                m::record_quality(r);
            }
            tracing::info!(
                version = %r.model.version,
                segment = %r.segment,
                window_end = %r.window.end,
                predictions = r.predictions,
                labelled = r.labelled,
                accuracy = r.metrics.as_ref().map(|q| q.accuracy),
                precision = r.metrics.as_ref().map(|q| q.precision),
                recall = r.metrics.as_ref().map(|q| q.recall),
                degraded = r.degraded.len(),
                alarm = %r.alarm.state,
                "quality window judged"
            );
            if e.fired {
                tracing::warn!(version = %r.model.version, segment = %r.segment, findings = ?r.degraded, "model quality degraded: alarm firing");
            }
            effects.push(Effect::QualityEvaluated(Box::new(e.report.clone())));
            if let Some(b) = &mut self.quality_book {
                b.evaluated(e);
            }
        }
        if let Some(q) = self.aggregator.quality() {
            let (counts, held) = q.counts();
            m::record_join(counts, held);
        }
    }

    /// An [`Effect::PublishQuality`] succeeded (`alerted`: its alert went out too).
    pub fn quality_published(&mut self, e: &Evaluated, alerted: bool) {
        self.stats.quality_reports += 1;
        counter!(m::QUALITY_REPORTS).increment(1);
        if alerted {
            self.stats.quality_alerts += 1;
            counter!(m::QUALITY_ALERTS).increment(1);
        }
        if let Some(b) = &mut self.quality_book {
            b.published(e);
        }
    }

    /// The outcome of an [`Effect::Partial`].
    pub fn partial_sent(&mut self, ok: bool) {
        if ok {
            counter!(m::PARTIALS).increment(1);
            self.stats.partials += 1;
        } else {
            counter!(m::PARTIALS_FAILED).increment(1);
        }
    }

    /// An [`Effect::Publish`] succeeded.
    pub fn report_published(&mut self, report: &DriftReport) {
        self.stats.reports += 1;
        self.book.published(report);
    }
}

/// The quality join's settings: the sidecar's panes and windows; the positive label and
/// threshold given, else the profile's (score label, calibration).
fn quality_tracker(
    config: &DriftConfig,
    q: &super::QualityWiring,
    profile: &Profile,
) -> Result<QualityTracker, DriftError> {
    let calibration = profile.calibration.as_ref();
    let positive = q
        .positive
        .clone()
        .or_else(|| profile.score_label.clone())
        .or_else(|| calibration.map(|c| c.positive_label.clone()))
        .ok_or_else(|| {
            DriftError::Config(
                "the profile names no positive label: give --quality-positive LABEL".into(),
            )
        })?;
    let threshold = q
        .threshold
        .or_else(|| calibration.map(|c| c.threshold))
        .unwrap_or(0.5);
    let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let cfg = QualityConfig {
        horizon_us: us(q.horizon),
        pane_us: us(config.pane),
        window_panes: config.window_panes,
        positive,
        threshold,
        ece_bins: 10,
        floors: q.floors.clone(),
        reference: q.reference.clone(),
        alpha: q.alpha,
        min_items: q.min_labels,
    };
    Ok(QualityTracker::new(
        cfg,
        &config.model.id,
        config.predictions_version.clone(),
        q.alarm_k,
    ))
}

/// Whether the consumer has read `state`'s partition to its end: its position is at the
/// broker's high watermark. Asked of the broker (a blocking round trip, at most once a
/// second per quiet partition; a confirmed end is remembered until a record arrives). With
/// no record seen in this generation, the start is the committed offset, or the log start
/// under `auto.offset.reset=earliest`.
fn read_to_end(ends: &impl PartitionEnds, state: &mut PartitionPanes, now: Instant) -> bool {
    if state.position().is_some() && state.end.verified_end == state.position() {
        return true;
    }
    if state
        .end
        .last_probe
        .is_some_and(|t| now.saturating_duration_since(t) < PROBE_EVERY)
    {
        return false;
    }
    state.end.last_probe = Some(now);
    let Some((low, high)) = ends.watermarks(&state.topic, state.partition) else {
        return false;
    };
    if state.position().is_none() {
        let Some(committed) = ends.committed(&state.topic, state.partition) else {
            return false;
        };
        state.end.start_offset = Some(committed.unwrap_or(low.max(0)));
    }
    let at_end = state.position().is_some_and(|p| p >= high);
    if at_end {
        state.end.verified_end = state.position();
    }
    at_end
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        config, feed_back, incoming, owned, pane_messages, record, sidecar, FakeEnds, IN, NOW_US,
        PANE,
    };
    use super::*;
    use crate::pane::Partial;

    /// Start of a pane well inside the allowed event-time range.
    const T0: i64 = NOW_US / PANE * PANE - 100 * PANE;

    fn put(s: &mut Sidecar, partition: i32, offset: i64, t: i64, source: &str, g: u64) -> Outcome {
        let body = record(source, t, Some(0.25));
        s.on_record(&incoming(partition, offset, &body), Some(g), NOW_US)
            .expect("record")
    }

    fn partials(effects: &[Effect]) -> Vec<&Partial> {
        pane_messages(effects)
            .into_iter()
            .filter_map(|m| match m {
                PaneMessage::Partial(p) => Some(&**p),
                PaneMessage::Progress(_) => None,
            })
            .collect()
    }

    fn progress(effects: &[Effect]) -> Vec<(i32, i64)> {
        pane_messages(effects)
            .into_iter()
            .filter_map(|m| match m {
                PaneMessage::Progress(p) => Some((p.partition, p.watermark_us - T0)),
                PaneMessage::Partial(_) => None,
            })
            .collect()
    }

    fn kinds(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Partial(_) => "partial",
                Effect::Progress(_) => "progress",
                Effect::StoreOffset { .. } => "store",
                Effect::Evaluated(_) => "evaluated",
                Effect::Publish(_) => "publish",
                Effect::QualityEvaluated(_) => "quality",
                Effect::PublishQuality(_) => "publish_quality",
            })
            .collect()
    }

    fn stored(effects: &[Effect]) -> Vec<(i32, i64)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::StoreOffset {
                    partition, offset, ..
                } => Some((*partition, *offset)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pane_closes_when_the_watermark_passes_its_end_then_progress_then_offset() {
        let mut s = sidecar(config());
        let own = owned(&[0], 1);
        let ends = FakeEnds::default();
        let now = Instant::now();
        put(&mut s, 0, 10, T0 + 100_000, "a", 1);
        put(&mut s, 0, 11, T0 + 500_000, "a", 1);
        let e = s.on_tick(&own, &ends, now);
        // The pane [T0, T0+1s) is open: no partial; progress at 0.5 s; the commit stays at
        // the pane's first record (store 9 → commit 10).
        assert_eq!(kinds(&e), ["progress", "store"]);
        assert_eq!(progress(&e), [(0, 500_000)]);
        assert_eq!(stored(&e), [(0, 9)]);
        put(&mut s, 0, 12, T0 + PANE + 200_000, "a", 1);
        let e = s.on_tick(&own, &ends, now);
        assert_eq!(kinds(&e), ["partial", "progress", "store"]);
        let p = partials(&e);
        assert_eq!(
            (p[0].pane_start_us, p[0].from_offset, p[0].to_offset),
            (T0, 10, 11)
        );
        assert_eq!(
            (p[0].n_records, p[0].n_sampled, p[0].late_records),
            (2, 2, 0)
        );
        assert_eq!(p[0].sidecar, "s1");
        assert_eq!(progress(&e), [(0, PANE + 200_000)]);
        assert_eq!(stored(&e), [(0, 11)]);
        // Nothing new: the same progress is not published again.
        let e = s.on_tick(&own, &ends, now);
        assert_eq!(kinds(&e), ["store"]);
        assert_eq!(s.stats().sampled, 3);
    }

    #[test]
    fn records_go_to_the_fleet_and_their_own_segment() {
        let mut s = sidecar(config());
        let own = owned(&[0], 1);
        put(&mut s, 0, 0, T0 + 1, "site-a", 1);
        put(&mut s, 0, 1, T0 + 2, "site-a", 1);
        put(&mut s, 0, 2, T0 + 3, "entity-7", 1);
        put(&mut s, 0, 3, T0 + 5 * PANE, "site-a", 1);
        let e = s.on_tick(&own, &FakeEnds::default(), Instant::now());
        let p = partials(&e);
        assert_eq!(p.len(), 1);
        let counts: Vec<(&str, u64)> = p[0]
            .segments
            .iter()
            .map(|(k, v)| (k.as_str(), v.n_records))
            .collect();
        assert_eq!(counts, [("*", 3), ("site-a", 2)]);
    }

    #[test]
    fn revoke_drops_the_partition_and_a_new_owner_starts_at_the_published_floor() {
        let mut s = sidecar(config());
        let ends = FakeEnds::default();
        let now = Instant::now();
        put(&mut s, 0, 0, T0 + 100, "a", 1);
        put(&mut s, 1, 10, T0 + 200, "a", 1);
        let e = s.on_tick(&owned(&[0, 1], 1), &ends, now);
        assert_eq!(progress(&e), [(0, 100), (1, 200)]);
        // Partition 0 revoked: its open pane is dropped (the next owner replays it from the
        // committed offset) and nothing is published or stored for it.
        let e = s.on_tick(&owned(&[1], 1), &ends, now);
        assert_eq!(kinds(&e), ["store"]);
        assert_eq!(stored(&e), [(1, 9)]);
        // Meanwhile another sidecar published partition 0's progress to T0 + 3 s.
        let theirs = PaneRecord::new(PaneMessage::Progress(Progress {
            sidecar: "s2".into(),
            reference_sha256: s.profile.sha256.clone(),
            topic: IN.into(),
            partition: 0,
            watermark_us: T0 + 3 * PANE,
        }));
        feed_back(&mut s, &[Effect::Progress(theirs)]);
        // Assigned again (new generation): it starts at that floor, so its progress is
        // published again and a record of an earlier pane is late.
        let mut again = owned(&[1], 1);
        again.insert((IN.to_owned(), 0), Some(2));
        let e = s.on_tick(&again, &ends, now);
        assert_eq!(progress(&e), [(0, 3 * PANE)]);
        assert_eq!(stored(&e), [(1, 9)]);
        assert_eq!(
            put(&mut s, 0, 5, T0 + 2 * PANE, "a", 2),
            Outcome::Late(T0 + 2 * PANE)
        );
        assert_eq!(
            put(&mut s, 0, 6, T0 + 3 * PANE, "a", 2),
            Outcome::Sampled(T0 + 3 * PANE)
        );
    }

    #[test]
    fn a_record_under_a_new_generation_starts_the_partition_afresh() {
        let mut s = sidecar(config());
        let own = owned(&[0], 2);
        put(&mut s, 0, 40, T0 + 100, "a", 1);
        // Revoked and assigned again before a tick saw it: the consumer rewound.
        put(&mut s, 0, 30, T0 + 50, "a", 2);
        put(&mut s, 0, 31, T0 + 2 * PANE, "a", 2);
        let e = s.on_tick(&own, &FakeEnds::default(), Instant::now());
        let p = partials(&e);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].from_offset, p[0].to_offset, p[0].n_records),
            (30, 30, 1)
        );
    }

    #[test]
    fn a_quiet_partition_follows_the_furthest_watermark_only_when_read_to_its_end() {
        let mut c = config();
        c.idle_timeout = Some(Duration::ZERO);
        let mut s = sidecar(c);
        let own = owned(&[0, 1], 1);
        let now = Instant::now();
        put(&mut s, 0, 0, T0 + 5 * PANE, "a", 1);
        put(&mut s, 1, 7, T0 + 200, "a", 1);
        // Partition 1 has a backlog (high watermark 20, position 8): slow, not idle.
        let backlog = FakeEnds {
            high: 20,
            ..FakeEnds::default()
        };
        let e = s.on_tick(&own, &backlog, now);
        assert!(partials(&e).is_empty());
        assert_eq!(progress(&e), [(0, 5 * PANE), (1, 200)]);
        // Both partitions were probed once; within a second they are not asked again.
        assert_eq!(backlog.lookups.get(), 2);
        let at_end = FakeEnds {
            high: 8,
            ..FakeEnds::default()
        };
        let e = s.on_tick(&own, &at_end, now + Duration::from_millis(500));
        assert!(partials(&e).is_empty());
        assert_eq!(at_end.lookups.get(), 0);
        // A second later partition 1 is at its end: it follows to 5 s and closes its pane.
        let e = s.on_tick(&own, &at_end, now + Duration::from_secs(2));
        let p = partials(&e);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].partition, p[0].pane_start_us), (1, T0));
        assert_eq!(progress(&e), [(1, 5 * PANE)]);
        // Its end is remembered: no lookup for it until a record arrives (partition 0 is
        // asked again).
        let e = s.on_tick(&own, &at_end, now + Duration::from_secs(4));
        assert!(partials(&e).is_empty());
        assert_eq!(at_end.lookups.get(), 3);
    }

    #[test]
    fn read_to_end_starts_at_the_committed_offset_or_the_log_start() {
        let now = Instant::now();
        let mut state = PartitionPanes::new(IN, 0, None);
        let committed = FakeEnds {
            low: 2,
            high: 9,
            committed: Some(9),
            ..FakeEnds::default()
        };
        assert!(read_to_end(&committed, &mut state, now));
        assert_eq!(state.position(), Some(9));
        let mut state = PartitionPanes::new(IN, 0, None);
        let none = FakeEnds {
            low: 2,
            high: 9,
            ..FakeEnds::default()
        };
        assert!(!read_to_end(&none, &mut state, now));
        assert_eq!(state.position(), Some(2));
    }

    /// Two partitions, 20 records each in panes 0 and 1, then one at 3 s that closes them.
    /// Returns the effects of the first tick (before the panes topic is read back) and of
    /// the tick after every pane message was fed back, as the panes reader would.
    fn two_partitions(s: &mut Sidecar, own: &Owned) -> (Vec<Effect>, Vec<Effect>) {
        let ends = FakeEnds::default();
        let now = Instant::now();
        for p in 0..2 {
            for i in 0..40 {
                put(s, p, i, T0 + i * 2 * PANE / 40, "a", 1);
            }
            put(s, p, 40, T0 + 3 * PANE, "a", 1);
        }
        let first = s.on_tick(own, &ends, now);
        assert_eq!(partials(&first).len(), 4);
        assert_eq!(progress(&first), [(0, 3 * PANE), (1, 3 * PANE)]);
        // Nothing is evaluated before the panes topic is read back.
        assert!(!kinds(&first).contains(&"evaluated"));
        feed_back(s, &first);
        let second = s.on_tick(own, &ends, now);
        (first, second)
    }

    fn window_ends(effects: &[Effect], published: bool) -> Vec<i64> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Publish(r) if published => Some(r.window.end_us - T0),
                Effect::Evaluated(r) if !published => Some(r.window.end_us - T0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_window_is_due_when_every_partition_progressed_past_its_end() {
        let mut s = sidecar(config());
        s.on_expected(vec![(IN.into(), 0), (IN.into(), 1), (IN.into(), 2)]);
        let own = owned(&[0, 1], 1);
        // Partition 2 has reported nothing: no window is complete.
        let (_, e) = two_partitions(&mut s, &own);
        assert!(!kinds(&e).contains(&"evaluated"), "{:?}", kinds(&e));
        let mut s = sidecar(config());
        s.on_expected(vec![(IN.into(), 0), (IN.into(), 1)]);
        let (_, e) = two_partitions(&mut s, &own);
        let evaluated: Vec<(String, i64, u64)> = e
            .iter()
            .filter_map(|e| match e {
                Effect::Evaluated(r) => {
                    Some((r.segment.clone(), r.window.end_us - T0, r.window.n_records))
                }
                _ => None,
            })
            .collect();
        // Windows of 2 panes ending with pane 0 (at 1 s) and pane 1 (at 2 s); the source
        // is no segment of the profile, so the fleet only.
        assert_eq!(
            evaluated,
            [("*".to_owned(), PANE, 40), ("*".to_owned(), 2 * PANE, 80)]
        );
        // The owner of input partition 0 publishes them, oldest first, after the rest.
        assert_eq!(window_ends(&e, true), [PANE, 2 * PANE]);
        assert_eq!(kinds(&e)[kinds(&e).len() - 2..], ["publish"; 2]);
        // Evaluated once: the next tick has nothing new.
        let e = s.on_tick(&own, &FakeEnds::default(), Instant::now());
        assert!(window_ends(&e, false).is_empty());
    }

    #[test]
    fn only_the_owner_of_input_partition_0_publishes_once_caught_up() {
        // A sidecar owning only partition 1 evaluates the same windows from the panes
        // topic, and publishes none.
        let mut leader = sidecar(config());
        leader.on_expected(vec![(IN.into(), 0), (IN.into(), 1)]);
        let (first, _) = two_partitions(&mut leader, &owned(&[0, 1], 1));
        let mut other = sidecar(config());
        other.on_expected(vec![(IN.into(), 0), (IN.into(), 1)]);
        feed_back(&mut other, &first);
        let e = other.on_tick(&owned(&[1], 1), &FakeEnds::default(), Instant::now());
        assert_eq!(window_ends(&e, false), [PANE, 2 * PANE]);
        assert!(window_ends(&e, true).is_empty());
        // A leader that has not read the reports topic up to where it ended at start
        // (offset 5) waits.
        let mut s = sidecar(config());
        s.on_expected(vec![(IN.into(), 0), (IN.into(), 1)]);
        let mut own = owned(&[0, 1], 1);
        s.start(BTreeMap::from([(0, 5)]), BTreeMap::new());
        let (_, e) = two_partitions(&mut s, &own);
        assert_eq!(window_ends(&e, false), [PANE, 2 * PANE]);
        assert!(window_ends(&e, true).is_empty());
        // Its last record (offset 4) showed the window ending at 1 s: only the other one is
        // published.
        let shown = e
            .iter()
            .find_map(|e| match e {
                Effect::Evaluated(r) => Some(serde_json::to_vec(r).expect("json")),
                _ => None,
            })
            .expect("a report");
        s.on_report(0, 3, Some(&shown));
        let e = s.on_tick(&own, &FakeEnds::default(), Instant::now());
        assert!(window_ends(&e, true).is_empty(), "offset 4 not read yet");
        s.on_report(0, 4, Some(&shown));
        let e = s.on_tick(&own, &FakeEnds::default(), Instant::now());
        assert_eq!(window_ends(&e, true), [2 * PANE]);
        for e in &e {
            if let Effect::Publish(r) = e {
                s.report_published(r);
            }
        }
        assert_eq!(s.stats().reports, 1);
        // Nothing is left to publish, also after losing partition 0.
        own.remove(&(IN.to_owned(), 0));
        let e = s.on_tick(&own, &FakeEnds::default(), Instant::now());
        assert!(window_ends(&e, true).is_empty());
    }

    #[test]
    fn metadata_is_looked_up_at_once_then_every_ten_seconds() {
        let mut s = sidecar(config());
        let t = Instant::now();
        assert!(s.metadata_due(t));
        assert!(!s.metadata_due(t + Duration::from_secs(10)));
        assert!(s.metadata_due(t + Duration::from_secs(11)));
        assert!(!s.metadata_due(t + Duration::from_secs(12)));
    }

    #[test]
    fn partials_sent_and_refused_are_counted() {
        let mut s = sidecar(config());
        s.partial_sent(true);
        s.partial_sent(false);
        s.partial_sent(true);
        assert_eq!(s.stats().partials, 2);
    }
}
