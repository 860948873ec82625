//! Event-time panes per input partition, and the messages sidecars exchange on the panes
//! topic (`drift.panes`, schema `schemas/drift-pane.v1.schema.json`).
//!
//! A sidecar summarises each assigned partition separately: records go to the pane of their
//! event time (`floor(t / pane) · pane`). The partition's watermark is the largest event
//! time seen minus the allowed lateness; when it passes a pane's end the pane is final: its
//! partial summary (one per partition and pane, naming its offset range) is published, then a
//! progress message with the new watermark. Records for a final pane count as late and are
//! not added. Because a partial covers exactly one partition's records of one pane, the
//! partials — and so every merged window — are the same whichever sidecar read the
//! partition; the aggregator merges them in a fixed order.
use crate::quality::{Labelled, PaneTuples, Predicted};
use argus_stats::hash::{frame_hash, record_hash, Sampler};
use argus_stats::profile::{Profile, FLEET};
use argus_stats::summary::{Cell, SegmentSummary};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// `schema` value of every [`PaneRecord`] this build writes.
pub const PANE_SCHEMA: &str = "argus.drift-pane/v1";

/// One partition's summary of one pane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Id of the sidecar that summarised it.
    pub sidecar: String,
    /// `sha256` of the profile it was summarised against; others ignore it.
    pub reference_sha256: String,
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Pane start (event time), µs since the Unix epoch.
    pub pane_start_us: i64,
    /// Pane length, µs.
    pub pane_us: i64,
    /// First and last offset of the records in this pane (inclusive).
    pub from_offset: i64,
    /// Last offset (inclusive).
    pub to_offset: i64,
    /// Records of the pane (before sampling).
    pub n_records: u64,
    /// Records summarised (after sampling).
    pub n_sampled: u64,
    /// Records that arrived for already-final panes since the previous partial.
    pub late_records: u64,
    /// `*` and one entry per segment (camera) seen.
    pub segments: BTreeMap<String, SegmentSummary>,
    /// Predictions and labels for the quality join (sidecars with a labels topic only;
    /// absent otherwise, so readers without the join see the partial they always saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<PaneTuples>,
}

/// "Every pane of this partition ending at or before `watermark_us` is final."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Id of the sidecar that owns the partition.
    pub sidecar: String,
    /// `sha256` of the profile it summarises against.
    pub reference_sha256: String,
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Panes ending at or before this (event time, µs since the Unix epoch) are final.
    pub watermark_us: i64,
}

/// A message on the panes topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PaneMessage {
    /// A pane summary of one partition.
    Partial(Box<Partial>),
    /// A partition's watermark.
    Progress(Progress),
}

/// The JSON envelope on the panes topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaneRecord {
    /// [`PANE_SCHEMA`].
    pub schema: String,
    /// The message (its `kind` field says which).
    #[serde(flatten)]
    pub message: PaneMessage,
}

impl PaneRecord {
    /// Wraps a message with the current schema.
    pub fn new(message: PaneMessage) -> Self {
        Self {
            schema: PANE_SCHEMA.to_owned(),
            message,
        }
    }

    /// Kafka key: partials are keyed by partition, pane and first offset (a replay that
    /// starts elsewhere gets its own key, so compaction never hides the first partial);
    /// progress by partition.
    pub fn key(&self) -> String {
        match &self.message {
            PaneMessage::Partial(p) => format!(
                "{}/{}/{}/{}",
                p.topic, p.partition, p.pane_start_us, p.from_offset
            ),
            PaneMessage::Progress(p) => format!("{}/{}/progress", p.topic, p.partition),
        }
    }
}

/// Window and sampling settings shared by all sidecars of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct PaneConfig {
    /// Pane length, µs.
    pub pane_us: i64,
    /// How far (event time, µs) a record may lag the newest before its pane is final.
    pub lateness_us: i64,
    /// Keep a frame iff `xxh3(seed ‖ camera ‖ capture time) < rate · 2⁶⁴`.
    pub sampler: Sampler,
    /// At most this many frames per camera per second of event time (0 = no cap), image
    /// inputs only: the first frame of each 1/max_fps slot, in partition order, is kept.
    pub max_fps: f64,
    /// Cameras beyond this many get no segment of their own (fleet `*` only).
    pub max_segments: usize,
    /// Seed of the frame-sampling hash (the profile's).
    pub seed: u64,
}

#[derive(Debug, Clone)]
struct OpenPane {
    from: i64,
    to: i64,
    n_records: u64,
    n_sampled: u64,
    /// Late records that arrived while this was the oldest pane still open.
    late: u64,
    segments: BTreeMap<String, SegmentSummary>,
    quality: PaneTuples,
}

impl OpenPane {
    fn new(offset: i64) -> Self {
        Self {
            from: offset,
            to: offset,
            n_records: 0,
            n_sampled: 0,
            late: 0,
            segments: BTreeMap::new(),
            quality: PaneTuples::default(),
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Summarise it into this pane.
    Sampled,
    /// Counted in the pane, not summarised (sampling or fps cap).
    Skipped,
    /// Its pane is already final.
    Late,
}

/// One assigned partition's open panes and watermark.
/// Broker facts used to tell an idle partition from a slow one, reset with the generation.
#[derive(Debug, Default, Clone)]
pub struct EndProbe {
    /// Where this generation started reading (the committed offset, or the log start when
    /// none), looked up when the partition first looks idle; see [`PartitionPanes::position`].
    pub start_offset: Option<i64>,
    /// A position the broker confirmed as the partition's end (nothing consumed since).
    pub verified_end: Option<i64>,
    /// When the broker was last asked (asked at most once a second per partition).
    pub last_probe: Option<Instant>,
}

/// One partition's open panes and its watermark, as its owning sidecar keeps them.
#[derive(Debug)]
pub struct PartitionPanes {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Max event time seen minus lateness; panes ending at or before it are final.
    watermark_us: Option<i64>,
    /// Panes ending at or before this were published (by us or a predecessor).
    floor_us: i64,
    open: BTreeMap<i64, OpenPane>,
    last_slot: HashMap<String, i64>,
    /// Offset after the last record seen.
    next_offset: Option<i64>,
    /// Wall-clock time of the last record (or of the assignment).
    last_seen: Instant,
    /// What the sidecar learnt from the broker about this partition's end (see `follow`).
    pub end: EndProbe,
    /// The consumer group generation this state belongs to (reset on a new assignment).
    pub generation: Option<u64>,
}

impl PartitionPanes {
    /// `floor_us`: the partition's last published watermark (from the panes topic), so a
    /// replay after a restart does not publish final panes again.
    pub fn new(topic: &str, partition: i32, floor_us: Option<i64>) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            watermark_us: floor_us,
            floor_us: floor_us.unwrap_or(i64::MIN),
            open: BTreeMap::new(),
            last_slot: HashMap::new(),
            next_offset: None,
            last_seen: Instant::now(),
            end: EndProbe::default(),
            generation: None,
        }
    }

    /// Panes ending at or before this (µs) are final; `None` before the first record.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark_us
    }

    /// Decide where a record goes and update the watermark. `segment` is the camera (or
    /// `None`), `event_us` the capture time (validated by the caller: not negative, not far in
    /// the future). A record is late when its pane ended at or before the watermark as it was
    /// before this record — a rule that depends only on the partition's record order, so
    /// every sidecar reading the partition decides the same. `fps_capped` applies
    /// `max_fps` (image inputs only).
    pub fn admit(
        &mut self,
        cfg: &PaneConfig,
        offset: i64,
        event_us: i64,
        segment: Option<&str>,
        fps_capped: bool,
    ) -> (Admit, i64) {
        self.last_seen = Instant::now();
        self.next_offset = Some(self.next_offset.map_or(offset + 1, |n| n.max(offset + 1)));
        let pane = event_us.div_euclid(cfg.pane_us).saturating_mul(cfg.pane_us);
        let before = self.watermark_us.unwrap_or(i64::MIN).max(self.floor_us);
        let wm = event_us.saturating_sub(cfg.lateness_us);
        self.watermark_us = Some(self.watermark_us.map_or(wm, |w| w.max(wm)));
        if pane.saturating_add(cfg.pane_us) <= before {
            // Counted on the pane the watermark was in when the record came — a function of
            // record order, like lateness itself, so every sidecar reports the same counts
            // on the same windows (counting on "the next pane to close" depended on when
            // ticks happened).
            let home = before.div_euclid(cfg.pane_us).saturating_mul(cfg.pane_us);
            let open = self
                .open
                .entry(home)
                .or_insert_with(|| OpenPane::new(offset));
            open.from = open.from.min(offset);
            open.to = open.to.max(offset);
            open.late += 1;
            return (Admit::Late, pane);
        }
        let camera = segment.unwrap_or("");
        let sampled = cfg.sampler.keep(frame_hash(cfg.seed, camera, event_us)) && {
            if fps_capped && cfg.max_fps > 0.0 {
                let slot = (event_us as f64 * cfg.max_fps / 1e6).floor() as i64;
                let last = self.last_slot.get(camera).copied();
                if last.is_some_and(|l| l >= slot) {
                    false
                } else {
                    self.last_slot.insert(camera.to_owned(), slot);
                    true
                }
            } else {
                true
            }
        };
        let open = self
            .open
            .entry(pane)
            .or_insert_with(|| OpenPane::new(offset));
        open.from = open.from.min(offset);
        open.to = open.to.max(offset);
        open.n_records += 1;
        if sampled {
            open.n_sampled += 1;
            (Admit::Sampled, pane)
        } else {
            (Admit::Skipped, pane)
        }
    }

    /// Add values of a sampled record to its pane, in `*` and in its segment. `values` are
    /// `(feature index, cell)`; `score` feeds CBPE when the profile has a calibration.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        profile: &Profile,
        cfg: &PaneConfig,
        pane: i64,
        offset: i64,
        segment: Option<&str>,
        values: &[(usize, Cell<'_>)],
        score: Option<f64>,
        hist: Option<&argus_stats::image::ImageHistograms>,
    ) {
        let Some(open) = self.open.get_mut(&pane) else {
            return;
        };
        let hash = record_hash(profile.settings.seed, &self.topic, self.partition, offset);
        let k = profile.settings.sample_k;
        let mut targets: Vec<&str> = vec![FLEET];
        if let Some(s) = segment {
            if s != FLEET
                && (open.segments.contains_key(s) || open.segments.len() <= cfg.max_segments)
            {
                targets.push(s);
            }
        }
        for seg in targets {
            let reference = profile.segment(seg);
            let summary = open
                .segments
                .entry(seg.to_owned())
                .or_insert_with(|| SegmentSummary::new(reference, profile.calibration.as_ref(), k));
            summary.n_records += 1;
            for (i, cell) in values {
                summary.add(reference, *i, *cell, hash);
            }
            if let (Some(c), Some(s)) = (profile.calibration.as_ref(), score) {
                summary.add_score(c, s);
            }
            if let (Some(h), Some(acc)) = (hist, summary.histograms.as_mut()) {
                acc.merge(h);
            }
        }
    }

    /// A prediction for the quality join, in the pane it was admitted to.
    pub fn add_predicted(&mut self, pane: i64, p: Predicted) {
        if let Some(open) = self.open.get_mut(&pane) {
            open.quality.predictions.push(p);
        }
    }

    /// A label for the quality join, in the pane it was admitted to.
    pub fn add_labelled(&mut self, pane: i64, l: Labelled) {
        if let Some(open) = self.open.get_mut(&pane) {
            open.quality.labels.push(l);
        }
    }

    /// Panes that became final, as partials, oldest first; advances the floor.
    pub fn close_final(
        &mut self,
        cfg: &PaneConfig,
        sidecar: &str,
        reference_sha256: &str,
    ) -> Vec<Partial> {
        let Some(wm) = self.watermark_us else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            if start.saturating_add(cfg.pane_us) > wm {
                break;
            }
            let Some((start, p)) = self.open.pop_first() else {
                break;
            };
            out.push(Partial {
                sidecar: sidecar.to_owned(),
                reference_sha256: reference_sha256.to_owned(),
                topic: self.topic.clone(),
                partition: self.partition,
                pane_start_us: start,
                pane_us: cfg.pane_us,
                from_offset: p.from,
                to_offset: p.to,
                n_records: p.n_records,
                n_sampled: p.n_sampled,
                late_records: p.late,
                segments: p.segments,
                quality: (!p.quality.is_empty()).then_some(p.quality),
            });
        }
        self.floor_us = self.floor_us.max(wm);
        // Cameras not seen since the last final pane no longer need their fps slot.
        if cfg.max_fps > 0.0 {
            let floor_slot = (self.floor_us as f64 * cfg.max_fps / 1e6).floor() as i64;
            self.last_slot.retain(|_, slot| *slot >= floor_slot);
        }
        out
    }

    /// Whether no record arrived for `idle_timeout` (wall clock).
    pub fn quiet_for(&self, idle_timeout: Duration) -> bool {
        self.last_seen.elapsed() >= idle_timeout
    }

    /// The offset of the next record this state will see: after the last one seen, or the
    /// generation's start offset when none arrived yet (unknown until looked up).
    pub fn position(&self) -> Option<i64> {
        self.next_offset.or(self.end.start_offset)
    }

    /// An idle partition — quiet and read to its end (the caller checks both: a partition
    /// whose records are still queued or being fetched is slow, not idle) — follows
    /// `global_us` (the furthest watermark reported), closing its open panes, so a quiet
    /// camera or an empty partition does not hold every window back. Its next records, if
    /// older, are late. Idleness is the one input to lateness that is not a function of the
    /// partition's record order, which is why "read to its end" matters: a partition whose
    /// backlog merely waited behind others' must never be declared idle, or the window
    /// contents would depend on fetch timing (and differ between one sidecar and several).
    pub fn follow(&mut self, global_us: i64) {
        self.watermark_us = Some(self.watermark_us.map_or(global_us, |w| w.max(global_us)));
    }

    /// The offset to commit: the first record of the oldest open pane, or past the last
    /// record when nothing is open. A restart replays open panes in full.
    pub fn commit_offset(&self) -> Option<i64> {
        self.open
            .values()
            .map(|p| p.from)
            .min()
            .or(self.next_offset)
    }
}
