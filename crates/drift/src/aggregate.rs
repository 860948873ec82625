//! Merging partial pane summaries into windows and reports.
//!
//! Every sidecar reads the whole panes topic and keeps the same state; the one that owns
//! partition 0 of the input topic publishes. A pane is complete when every partition of the
//! watched topics has reported progress past its end. The window ending at a complete pane
//! merges the partials of its last `window_panes` panes per segment, in a fixed order (pane,
//! topic, partition), so the report is a function of the partials alone: byte-identical
//! whether one sidecar or eight produced them. The first partial for a (partition, pane,
//! offset range start) wins; a second one for the same partition and pane whose offsets
//! overlap is rejected (counted as a duplicate), never double-counted.
use crate::pane::{PaneMessage, Partial, Progress};
use crate::quality::{Evaluated, QualityTracker};
use argus_stats::alarm::ConsecutiveRule;
use argus_stats::evaluate::{evaluate, EvalConfig};
use argus_stats::profile::{Profile, FLEET};
use argus_stats::report::{rfc3339_us, DriftReport, ModelInfo, OffsetRange, Provenance, Window};
use argus_stats::summary::SegmentSummary;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What the aggregator needs: window, alarm and evaluation settings.
#[derive(Debug, Clone)]
pub struct AggregateConfig {
    /// Pane length, µs.
    pub pane_us: i64,
    /// Panes per window.
    pub window_panes: u32,
    /// Consecutive drifting windows that fire the alarm.
    pub alarm_k: u32,
    /// Evaluation thresholds.
    pub eval: EvalConfig,
    /// The model, named in reports.
    pub model: ModelInfo,
    /// The sidecars' sample rate, reported in windows.
    pub sample_rate: f64,
    /// The input topic: window record counts are its records (predictions are not counted).
    pub input_topic: String,
}

type PartitionKey = (String, i32);

/// Merges partial pane summaries from every partition into windows and evaluates them into reports.
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregateConfig,
    profile: Arc<Profile>,
    /// pane start → (topic, partition) → partials (non-overlapping offset ranges).
    partials: BTreeMap<i64, BTreeMap<PartitionKey, Vec<Partial>>>,
    progress: BTreeMap<PartitionKey, i64>,
    expected: BTreeSet<PartitionKey>,
    /// Last pane whose window was evaluated.
    evaluated_through: Option<i64>,
    /// Drift decision per (segment, pane) for the alarm rule.
    decisions: BTreeMap<(String, i64), Option<bool>>,
    /// Partials rejected as duplicates (replays, overlapping offsets).
    pub duplicates: u64,
    /// Messages made for another reference (or pane length), ignored.
    pub foreign: u64,
    /// Partials rejected as malformed (wrong shapes, unaligned panes, inconsistent counters).
    pub malformed: u64,
    /// The quality join, fed each complete pane's predictions and labels in pane order.
    quality: Option<QualityTracker>,
    /// Quality windows judged and not yet taken.
    quality_out: Vec<Evaluated>,
}

impl Aggregator {
    /// An aggregator for `profile`.
    pub fn new(cfg: AggregateConfig, profile: Arc<Profile>) -> Self {
        Self {
            cfg,
            profile,
            partials: BTreeMap::new(),
            progress: BTreeMap::new(),
            expected: BTreeSet::new(),
            evaluated_through: None,
            decisions: BTreeMap::new(),
            duplicates: 0,
            foreign: 0,
            malformed: 0,
            quality: None,
            quality_out: Vec::new(),
        }
    }

    /// Join predictions with labels too (the partials then carry both).
    pub fn with_quality(mut self, tracker: QualityTracker) -> Self {
        self.quality = Some(tracker);
        self
    }

    /// The quality join, when there is one.
    pub fn quality(&self) -> Option<&QualityTracker> {
        self.quality.as_ref()
    }

    /// Quality windows judged since the last call, in order.
    pub fn take_quality(&mut self) -> Vec<Evaluated> {
        std::mem::take(&mut self.quality_out)
    }

    /// The partitions whose progress gates completeness (all partitions of the watched topics).
    pub fn set_expected(&mut self, partitions: impl IntoIterator<Item = PartitionKey>) {
        self.expected = partitions.into_iter().collect();
    }

    /// Latest published watermark of a partition (a restarted owner's floor).
    pub fn progress_of(&self, topic: &str, partition: i32) -> Option<i64> {
        self.progress.get(&(topic.to_owned(), partition)).copied()
    }

    /// The furthest watermark any partition has reported.
    pub fn max_progress(&self) -> Option<i64> {
        self.progress.values().copied().max()
    }

    /// Take one message from the panes topic. Messages made for another reference are
    /// ignored (counted in `foreign`).
    pub fn ingest(&mut self, message: PaneMessage) {
        match message {
            PaneMessage::Partial(p) => {
                if p.reference_sha256 != self.profile.sha256 || p.pane_us != self.cfg.pane_us {
                    self.foreign += 1;
                    return;
                }
                if let Err(why) = self.check(&p) {
                    self.malformed += 1;
                    tracing::warn!(topic = %p.topic, partition = p.partition, pane = p.pane_start_us, why, "malformed partial ignored");
                    return;
                }
                if self.evaluated_through.is_some_and(|e| p.pane_start_us <= e) {
                    // Its window was already reported; a replay after a restart.
                    self.duplicates += 1;
                    return;
                }
                let slot = self
                    .partials
                    .entry(p.pane_start_us)
                    .or_default()
                    .entry((p.topic.clone(), p.partition))
                    .or_default();
                if slot
                    .iter()
                    .any(|q| p.from_offset <= q.to_offset && q.from_offset <= p.to_offset)
                {
                    self.duplicates += 1;
                    return;
                }
                slot.push(*p);
                slot.sort_by_key(|q| q.from_offset);
            }
            PaneMessage::Progress(Progress {
                topic,
                partition,
                watermark_us,
                reference_sha256,
                ..
            }) => {
                if reference_sha256 != self.profile.sha256 {
                    self.foreign += 1;
                    return;
                }
                let e = self
                    .progress
                    .entry((topic, partition))
                    .or_insert(watermark_us);
                *e = (*e).max(watermark_us);
            }
        }
    }

    /// Whether a partial (from a message, so possibly hostile) fits the profile: aligned pane
    /// in a sane time range, ordered offsets, and summaries shaped like the reference with
    /// consistent counters. Checked before anything is merged or indexed.
    fn check(&self, p: &Partial) -> Result<(), &'static str> {
        use argus_stats::summary::FeatureSummary;
        const MAX_US: i64 = 100_000_000_000_000_000; // year ~5138
        if !(0..MAX_US).contains(&p.pane_start_us)
            || p.pane_start_us.rem_euclid(self.cfg.pane_us) != 0
        {
            return Err("pane start out of range or not aligned");
        }
        if p.from_offset < 0 || p.from_offset > p.to_offset || p.n_sampled > p.n_records {
            return Err("offsets or counts inconsistent");
        }
        if !self.expected.is_empty() && !self.expected.contains(&(p.topic.clone(), p.partition)) {
            return Err("partition of an unwatched topic");
        }
        if let Some(q) = &p.quality {
            let score_ok = q
                .predictions
                .iter()
                .all(|t| (0.0..=1.0).contains(&t.score) && (0..MAX_US).contains(&t.event_us));
            if !score_ok || q.labels.iter().any(|l| l.id.is_empty()) {
                return Err("quality tuples out of range");
            }
        }
        let k = self.profile.settings.sample_k;
        for (seg, s) in &p.segments {
            let reference = self.profile.segment(seg);
            if s.features.len() != reference.features.len() {
                return Err("feature count differs from the profile");
            }
            if let (Some(c), Some(levels)) = (
                &s.cbpe,
                self.profile.calibration.as_ref().map(|c| c.levels.len()),
            ) {
                if c.len() != levels {
                    return Err("CBPE counters do not match the calibration");
                }
            }
            for (f, r) in s.features.iter().zip(&reference.features) {
                match (f, &r.numeric, &r.categorical) {
                    (FeatureSummary::Numeric(n), Some(num), _) => {
                        let binned: u64 = n.bins.iter().sum();
                        if n.bins.len() != num.binning.n_bins()
                            || n.sample.k() > k
                            || n.sample.len() > n.sample.k()
                            || n.n_null.saturating_add(n.n_nonfinite) > n.n
                            || binned != n.n_finite()
                        {
                            return Err("numeric summary inconsistent");
                        }
                    }
                    (FeatureSummary::Categorical(c), _, Some(cat)) => {
                        let counted: u64 = c.counts.iter().sum();
                        if c.counts.len() != cat.vocab.values.len() + 1
                            || c.new_values.len() > argus_stats::categorical::NEW_K
                            || c.n_null > c.n
                            || counted.saturating_add(c.n_new_total) != c.n_present()
                        {
                            return Err("categorical summary inconsistent");
                        }
                    }
                    _ => return Err("feature kind differs from the profile"),
                }
            }
        }
        Ok(())
    }

    /// Watermark below which every expected partition is final (`None` until all reported).
    fn complete_until(&self) -> Option<i64> {
        if self.expected.is_empty() {
            return None;
        }
        self.expected
            .iter()
            .map(|k| self.progress.get(k).copied())
            .try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)))
    }

    /// Reports for every pane that became complete since the last call, oldest first.
    pub fn poll_reports(&mut self) -> Vec<DriftReport> {
        let Some(until) = self.complete_until() else {
            return Vec::new();
        };
        let ready: Vec<i64> = self
            .partials
            .keys()
            .copied()
            .filter(|p| p.saturating_add(self.cfg.pane_us) <= until)
            .filter(|p| self.evaluated_through.is_none_or(|e| *p > e))
            .collect();
        let mut out = Vec::new();
        for pane in ready {
            out.extend(self.reports_for(pane));
            self.feed_quality(pane);
            self.evaluated_through = Some(pane);
        }
        if let Some(q) = &mut self.quality {
            self.quality_out.extend(q.advance(until));
        }
        self.prune();
        out
    }

    /// The pane's predictions and labels to the quality join, in (topic, partition, offset)
    /// order.
    fn feed_quality(&mut self, pane: i64) {
        let (Some(q), Some(parts)) = (&mut self.quality, self.partials.get(&pane)) else {
            return;
        };
        let tuples = parts
            .values()
            .flat_map(|list| list.iter().filter_map(|p| p.quality.as_ref()));
        q.feed_pane(pane.saturating_add(self.cfg.pane_us), tuples);
    }

    fn window_start(&self, pane: i64) -> i64 {
        pane.saturating_sub(
            i64::from(self.cfg.window_panes.max(1) - 1).saturating_mul(self.cfg.pane_us),
        )
    }

    /// Evaluate the window ending with `pane` for every segment that has data in it.
    pub fn reports_for(&mut self, pane: i64) -> Vec<DriftReport> {
        let start = self.window_start(pane);
        let mut merged: BTreeMap<String, SegmentSummary> = BTreeMap::new();
        let mut offsets: BTreeMap<PartitionKey, (i64, i64)> = BTreeMap::new();
        let mut sidecars = BTreeSet::new();
        let (mut n_partials, mut n_records, mut n_sampled, mut late) = (0usize, 0u64, 0u64, 0u64);
        for (_, parts) in self.partials.range(start..=pane) {
            for (key, list) in parts {
                for p in list {
                    n_partials += 1;
                    if p.topic == self.cfg.input_topic {
                        n_records += p.n_records;
                        n_sampled += p.n_sampled;
                    }
                    late += p.late_records;
                    sidecars.insert(p.sidecar.clone());
                    let e = offsets
                        .entry(key.clone())
                        .or_insert((p.from_offset, p.to_offset));
                    e.0 = e.0.min(p.from_offset);
                    e.1 = e.1.max(p.to_offset);
                    for (seg, s) in &p.segments {
                        match merged.get_mut(seg) {
                            Some(m) => m.merge(s),
                            None => {
                                merged.insert(seg.clone(), s.clone());
                            }
                        }
                    }
                }
            }
        }
        let provenance = Provenance {
            sidecars_merged: sidecars.len(),
            partials: n_partials,
            offsets: offsets
                .into_iter()
                .map(|((topic, partition), (from, to))| OffsetRange {
                    topic,
                    partition,
                    from,
                    to,
                })
                .collect(),
        };
        let end = pane + self.cfg.pane_us;
        let mut out = Vec::new();
        for (segment, summary) in merged {
            let ev = evaluate(
                self.profile.reference_for(&segment).1,
                &summary,
                self.profile.calibration.as_ref(),
                &self.cfg.eval,
            );
            self.decisions
                .insert((segment.clone(), pane), ev.decision());
            let alarm = self.alarm(&segment, pane);
            let (seg_records, seg_sampled) = if segment == FLEET {
                (n_records, n_sampled)
            } else {
                (summary.n_records, summary.n_records)
            };
            let window = Window {
                start: rfc3339_us(start),
                end: rfc3339_us(end),
                start_us: start,
                end_us: end,
                panes: self.cfg.window_panes,
                pane_seconds: self.cfg.pane_us as f64 / 1e6,
                n_records: seg_records,
                n_sampled: seg_sampled,
                sample_rate: self.cfg.sample_rate,
                late_records: late,
            };
            if let (Some(q), Some(e)) = (&mut self.quality, &ev.performance_estimate) {
                q.estimate(&segment, end, e);
            }
            out.push(DriftReport::assemble(
                self.cfg.model.clone(),
                segment,
                window,
                &self.profile,
                provenance.clone(),
                ev,
                alarm,
            ));
        }
        out
    }

    /// The k-of-k rule over this segment's *non-overlapping* windows ending at `pane`,
    /// `pane − w`, `pane − 2w`, … (w = panes per window). Consecutive sliding windows share
    /// w − 1 panes, so their decisions are correlated and the rule's expected run length
    /// (which assumes independent windows) would not hold for them.
    fn alarm(&self, segment: &str, pane: i64) -> argus_stats::report::Alarm {
        let k = self.cfg.alarm_k.max(1);
        let step = i64::from(self.cfg.window_panes.max(1)).saturating_mul(self.cfg.pane_us);
        let mut rule = ConsecutiveRule::new(k, self.cfg.eval.alpha);
        for j in (0..i64::from(2 * k)).rev() {
            let p = pane.saturating_sub(j.saturating_mul(step));
            if let Some(d) = self.decisions.get(&(segment.to_owned(), p)) {
                rule.observe(*d);
            }
        }
        rule.state()
    }

    /// Forget what no future window or alarm needs: partials older than the window ending
    /// with the last evaluated pane (windows still to report end later, and partials of
    /// evaluated panes are refused on arrival), decisions older than the alarm's look-back
    /// (2·`alarm_k` windows). Partials hold every segment's summaries, so they are the
    /// sidecar's memory: keeping them for the alarm's look-back too (7 windows at the
    /// defaults) grew a 50-camera sidecar to ~680 MB.
    fn prune(&mut self) {
        let Some(e) = self.evaluated_through else {
            return;
        };
        let partials_from = self.window_start(e);
        let decisions_from = e.saturating_sub(
            i64::from(self.cfg.window_panes * (2 * self.cfg.alarm_k + 1))
                .saturating_mul(self.cfg.pane_us),
        );
        self.partials = self.partials.split_off(&partials_from);
        self.decisions.retain(|(_, p), _| *p >= decisions_from);
    }
}
