//! Live quality from ground truth (issue 16): predictions and labels joined by prediction
//! id within a horizon, and each window's quality per model version and segment, with the
//! degradation decision. Pure: the clock is an argument, nothing here reads Kafka.
//!
//! - [`Join`]: a prediction waits up to the horizon for its label; a label that arrives
//!   first is held up to the horizon for its prediction. Duplicate labels (an id already
//!   joined), labels that never meet a prediction (`unknown`) and predictions that never
//!   get a label (`unlabelled`) are counted. Each joined item is stamped with its
//!   prediction's event time (the input's capture time).
//! - [`Windows`]: joined items and prediction counts in event-time panes per (version,
//!   segment, where `*` is every segment); a window (the last `window_panes` panes) is
//!   final once the horizon has passed its end (no label can join it any more), then
//!   evaluated: [`argus_stats::live::LiveQuality`], label coverage, label delay, and for
//!   each configured metric whether it is below its floor or significantly below the value
//!   recorded with the model on its test set (one-sided, at the window's size).
//! - [`Degradation`]: consecutive degraded windows fire the alarm, as the drift alarm does.
use crate::features::prediction_outputs;
use argus_stats::alarm::ConsecutiveRule;
use argus_stats::live::{Joined, LiveMetric, LiveQuality};
use argus_stats::report::Alarm;
use argus_wire::{Label, Prediction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The fleet segment.
pub const ALL: &str = "*";

/// How quality is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityConfig {
    /// How long a prediction waits for its label (and a label for its prediction), µs.
    pub horizon_us: i64,
    /// Pane length, µs (event time).
    pub pane_us: i64,
    /// Panes per window.
    pub window_panes: u32,
    /// The positive label.
    pub positive: String,
    /// The decision threshold on the positive label's probability (the model's
    /// `[decision]`).
    pub threshold: f64,
    /// Calibration-error bins.
    pub ece_bins: usize,
    /// Floors: a window whose metric is below is degraded.
    pub floors: Vec<(LiveMetric, f64)>,
    /// Test-set values recorded with the model: a window significantly below one (one-sided
    /// p < `alpha`) is degraded.
    pub reference: Vec<(LiveMetric, f64)>,
    /// Significance level of the one-sided tests.
    pub alpha: f64,
    /// Joined items a window needs before it is judged.
    pub min_items: u64,
}

/// One prediction waiting for its label.
#[derive(Debug, Clone, PartialEq)]
struct Waiting {
    version: String,
    segment: String,
    score: f64,
    event_us: i64,
    seen_us: i64,
}

/// A prediction joined with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedItem {
    /// Model version that made the prediction.
    pub version: String,
    /// Segment (camera or key's segment).
    pub segment: String,
    /// The prediction's event time (input capture), µs.
    pub event_us: i64,
    /// Label time minus event time, µs.
    pub delay_us: i64,
    /// Score, decision and truth.
    pub joined: Joined,
}

/// What the join counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JoinCounts {
    /// Predictions taken (model ran, positive score known).
    pub predictions: u64,
    /// Labels taken.
    pub labels: u64,
    /// Pairs joined.
    pub joined: u64,
    /// Labels of an id already joined.
    pub duplicate_labels: u64,
    /// Labels whose prediction never came within the horizon.
    pub unknown_labels: u64,
    /// Predictions whose label never came within the horizon.
    pub unlabelled: u64,
    /// Predictions of an id already seen (redelivery).
    pub duplicate_predictions: u64,
}

/// The join of predictions and labels by prediction id.
#[derive(Debug, Default)]
pub struct Join {
    waiting: HashMap<String, Waiting>,
    waiting_order: BTreeSet<(i64, String)>,
    early: HashMap<String, (Label, i64)>,
    early_order: BTreeSet<(i64, String)>,
    done: HashMap<String, i64>,
    done_order: BTreeSet<(i64, String)>,
    /// Counts so far.
    pub counts: JoinCounts,
}

/// The segment of a prediction: the camera (source id), else `*`.
fn segment_of(p: &Prediction) -> String {
    p.input.source_id.clone().unwrap_or_else(|| ALL.to_owned())
}

impl Join {
    /// Takes a prediction; returns the item when its label was already held.
    pub fn on_prediction(
        &mut self,
        p: &Prediction,
        cfg: &QualityConfig,
        now_us: i64,
    ) -> Option<JoinedItem> {
        let score = prediction_outputs(p, Some(&cfg.positive))?.score?;
        if self.done.contains_key(&p.id) || self.waiting.contains_key(&p.id) {
            self.counts.duplicate_predictions += 1;
            return None;
        }
        self.counts.predictions += 1;
        let w = Waiting {
            version: p.model.version.clone(),
            segment: segment_of(p),
            score,
            event_us: p.input.capture_time_us.unwrap_or(p.produced_at_us),
            seen_us: now_us,
        };
        if let Some((label, seen)) = self.early.remove(&p.id) {
            self.early_order.remove(&(seen, p.id.clone()));
            return Some(self.join(p.id.clone(), w, &label, cfg, now_us));
        }
        self.waiting_order.insert((now_us, p.id.clone()));
        self.waiting.insert(p.id.clone(), w);
        None
    }

    /// Takes a label; returns the item when its prediction was waiting.
    pub fn on_label(&mut self, l: &Label, cfg: &QualityConfig, now_us: i64) -> Option<JoinedItem> {
        self.counts.labels += 1;
        if let Some(w) = self.waiting.remove(&l.id) {
            self.waiting_order.remove(&(w.seen_us, l.id.clone()));
            return Some(self.join(l.id.clone(), w, l, cfg, now_us));
        }
        if self.done.contains_key(&l.id) || self.early.contains_key(&l.id) {
            self.counts.duplicate_labels += 1;
            return None;
        }
        self.early_order.insert((now_us, l.id.clone()));
        self.early.insert(l.id.clone(), (l.clone(), now_us));
        None
    }

    fn join(
        &mut self,
        id: String,
        w: Waiting,
        l: &Label,
        cfg: &QualityConfig,
        now_us: i64,
    ) -> JoinedItem {
        self.counts.joined += 1;
        self.done_order.insert((now_us, id.clone()));
        self.done.insert(id, now_us);
        JoinedItem {
            delay_us: (l.labelled_at_us - w.event_us).max(0),
            joined: Joined {
                score: w.score,
                predicted: w.score >= cfg.threshold,
                label: l.label == cfg.positive,
            },
            version: w.version,
            segment: w.segment,
            event_us: w.event_us,
        }
    }

    /// Forgets what is older than the horizon: waiting predictions (unlabelled), held
    /// labels (unknown) and the memory of joined ids (for duplicates).
    pub fn expire(&mut self, cfg: &QualityConfig, now_us: i64) {
        let cutoff = (now_us.saturating_sub(cfg.horizon_us), String::new());
        for (_, id) in split_before(&mut self.waiting_order, &cutoff) {
            self.waiting.remove(&id);
            self.counts.unlabelled += 1;
        }
        for (_, id) in split_before(&mut self.early_order, &cutoff) {
            self.early.remove(&id);
            self.counts.unknown_labels += 1;
        }
        for (_, id) in split_before(&mut self.done_order, &cutoff) {
            self.done.remove(&id);
        }
    }

    /// Predictions waiting and labels held now.
    pub fn held(&self) -> (usize, usize) {
        (self.waiting.len(), self.early.len())
    }
}

/// Removes and returns the entries of `set` before `key`.
fn split_before(set: &mut BTreeSet<(i64, String)>, key: &(i64, String)) -> BTreeSet<(i64, String)> {
    let kept = set.split_off(key);
    std::mem::replace(set, kept)
}

/// One pane's content for one (version, segment).
#[derive(Debug, Clone, Default)]
struct Cell {
    items: Vec<Joined>,
    delays_us: Vec<i64>,
    predictions: u64,
}

/// One evaluated window of one (version, segment).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowQuality {
    /// Model version.
    pub version: String,
    /// Segment (`*`: every segment).
    pub segment: String,
    /// Window start and end (event time), µs.
    pub start_us: i64,
    /// End (exclusive).
    pub end_us: i64,
    /// Predictions in the window.
    pub predictions: u64,
    /// The quality of its joined items (`None` below `min_items`).
    pub quality: Option<LiveQuality>,
    /// Joined items ÷ predictions.
    pub coverage: f64,
    /// Median label delay, seconds.
    pub delay_p50_s: Option<f64>,
    /// Metrics that degraded, each with why (`floor` or `reference` and the p-value).
    pub degraded: Vec<Finding>,
}

/// A metric found degraded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// The metric.
    pub metric: LiveMetric,
    /// Its value in the window.
    pub value: f64,
    /// The floor or test-set value it was held to.
    pub against: f64,
    /// `floor` or `reference`.
    pub rule: &'static str,
    /// One-sided p-value (`reference` only).
    pub p_value: Option<f64>,
}

/// Event-time panes of joined items and prediction counts.
#[derive(Debug, Default)]
pub struct Windows {
    panes: BTreeMap<i64, BTreeMap<(String, String), Cell>>,
    /// End of the last window evaluated.
    last_end: Option<i64>,
}

impl Windows {
    /// Applies `f` to the cells of (version, segment) and (version, `*`) in the pane of
    /// `event_us`.
    fn update(
        &mut self,
        cfg: &QualityConfig,
        event_us: i64,
        version: &str,
        segment: &str,
        f: impl Fn(&mut Cell),
    ) {
        let pane = event_us.div_euclid(cfg.pane_us) * cfg.pane_us;
        let cells = self.panes.entry(pane).or_default();
        f(cells
            .entry((version.to_owned(), ALL.to_owned()))
            .or_default());
        if segment != ALL {
            f(cells
                .entry((version.to_owned(), segment.to_owned()))
                .or_default());
        }
    }

    /// Counts a prediction (for coverage).
    pub fn on_prediction(&mut self, cfg: &QualityConfig, p: &Prediction) {
        let event = p.input.capture_time_us.unwrap_or(p.produced_at_us);
        self.update(cfg, event, &p.model.version, &segment_of(p), |c| {
            c.predictions += 1;
        });
    }

    /// Adds a joined item.
    pub fn on_joined(&mut self, cfg: &QualityConfig, item: &JoinedItem) {
        self.update(cfg, item.event_us, &item.version, &item.segment, |c| {
            c.items.push(item.joined);
            c.delays_us.push(item.delay_us);
        });
    }

    /// Every window that became final by `now_us` (its end at least a horizon ago), in
    /// order, evaluated per (version, segment); panes no window needs any more are dropped.
    pub fn due(&mut self, cfg: &QualityConfig, now_us: i64) -> Vec<WindowQuality> {
        let span = cfg.pane_us * i64::from(cfg.window_panes.max(1));
        let Some(&first) = self.panes.keys().next() else {
            return Vec::new();
        };
        let final_end = (now_us - cfg.horizon_us).div_euclid(cfg.pane_us) * cfg.pane_us;
        let mut end = self
            .last_end
            .map_or(first + cfg.pane_us, |e| e + cfg.pane_us);
        let mut out = Vec::new();
        while end <= final_end {
            out.extend(self.evaluate(cfg, end - span, end));
            self.last_end = Some(end);
            end += cfg.pane_us;
        }
        if let Some(last) = self.last_end {
            // The next window starts one pane later.
            let keep_from = last + cfg.pane_us - span;
            self.panes = self.panes.split_off(&keep_from);
        }
        out
    }

    fn evaluate(&self, cfg: &QualityConfig, start: i64, end: i64) -> Vec<WindowQuality> {
        let mut merged: BTreeMap<&(String, String), Cell> = BTreeMap::new();
        for (_, cells) in self.panes.range(start..end) {
            for (k, c) in cells {
                let m = merged.entry(k).or_default();
                m.items.extend_from_slice(&c.items);
                m.delays_us.extend_from_slice(&c.delays_us);
                m.predictions += c.predictions;
            }
        }
        merged
            .into_iter()
            .map(|((version, segment), mut c)| {
                let quality = (c.items.len() as u64 >= cfg.min_items.max(1))
                    .then(|| LiveQuality::of(&c.items, cfg.ece_bins).ok())
                    .flatten();
                c.delays_us.sort_unstable();
                WindowQuality {
                    degraded: quality
                        .as_ref()
                        .map(|q| findings(cfg, q))
                        .unwrap_or_default(),
                    version: version.clone(),
                    segment: segment.clone(),
                    start_us: start,
                    end_us: end,
                    predictions: c.predictions,
                    coverage: c.items.len() as f64 / c.predictions.max(1) as f64,
                    delay_p50_s: c
                        .delays_us
                        .get(c.delays_us.len() / 2)
                        .map(|d| *d as f64 / 1e6),
                    quality,
                }
            })
            .collect()
    }
}

/// The metrics of `q` below their floors or significantly below their test-set values.
pub fn findings(cfg: &QualityConfig, q: &LiveQuality) -> Vec<Finding> {
    let mut out = Vec::new();
    for &(metric, floor) in &cfg.floors {
        if let Some(v) = q.value(metric).filter(|v| *v < floor) {
            out.push(Finding {
                metric,
                value: v,
                against: floor,
                rule: "floor",
                p_value: None,
            });
        }
    }
    for &(metric, reference) in &cfg.reference {
        let (Some(v), Some(p)) = (q.value(metric), q.below(metric, reference)) else {
            continue;
        };
        if p < cfg.alpha {
            out.push(Finding {
                metric,
                value: v,
                against: reference,
                rule: "reference",
                p_value: Some(p),
            });
        }
    }
    out
}

/// The degradation alarm per (version, segment): `k` degraded windows in a row fire it, an
/// undegraded one clears it, a window too small to judge leaves it as it is.
#[derive(Debug, Clone)]
pub struct Degradation {
    k: u32,
    alpha: f64,
    rules: HashMap<(String, String), ConsecutiveRule>,
}

impl Degradation {
    /// `k` ≥ 1 consecutive windows; `alpha` is the per-window false-alarm rate assumed.
    pub fn new(k: u32, alpha: f64) -> Self {
        Degradation {
            k,
            alpha,
            rules: HashMap::new(),
        }
    }

    /// The alarm after `w`.
    pub fn observe(&mut self, w: &WindowQuality) -> Alarm {
        let rule = self
            .rules
            .entry((w.version.clone(), w.segment.clone()))
            .or_insert_with(|| ConsecutiveRule::new(self.k, self.alpha));
        rule.observe(w.quality.as_ref().map(|_| !w.degraded.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use argus_wire::{InputRef, LabelSource, ModelRef, PredictionOutcome, Score, Timings};

    const S: i64 = 1_000_000;

    fn cfg() -> QualityConfig {
        QualityConfig {
            horizon_us: 10 * S,
            pane_us: S,
            window_panes: 2,
            positive: "churn".into(),
            threshold: 0.3,
            ece_bins: 10,
            floors: vec![(LiveMetric::Recall, 0.5)],
            reference: vec![(LiveMetric::Accuracy, 0.9)],
            alpha: 0.05,
            min_items: 1,
        }
    }

    fn prediction(offset: i64, version: &str, score: f32, event_us: i64) -> Prediction {
        Prediction {
            schema: argus_wire::PREDICTION_SCHEMA.into(),
            id: format!("in/0/{offset}"),
            input: InputRef {
                topic: "in".into(),
                partition: 0,
                offset,
                key: None,
                source_id: Some("cam-1".into()),
                sequence: None,
                capture_time_us: Some(event_us),
            },
            model: ModelRef {
                name: "churn".into(),
                version: version.into(),
                sha256: "0".repeat(64),
            },
            outcome: PredictionOutcome::Ok,
            label: Some(if score >= 0.5 { "churn" } else { "stay" }.into()),
            score: Some(score.max(1.0 - score)),
            top: vec![
                Score {
                    label: "churn".into(),
                    index: 1,
                    score,
                },
                Score {
                    label: "stay".into(),
                    index: 0,
                    score: 1.0 - score,
                },
            ],
            timings: Timings::default(),
            worker: "w".into(),
            produced_at_us: event_us,
            skipped: None,
        }
    }

    fn label(offset: i64, class: &str, at_us: i64) -> Label {
        let mut l = Label::new(format!("in/0/{offset}"), class, LabelSource::System);
        l.labelled_at_us = at_us;
        l
    }

    #[test]
    fn labels_join_whichever_comes_first_and_the_rest_is_counted() {
        let c = cfg();
        let mut j = Join::default();
        assert!(j
            .on_prediction(&prediction(1, "1", 0.8, 0), &c, 0)
            .is_none());
        let item = j.on_label(&label(1, "churn", 3 * S), &c, 3 * S).unwrap();
        assert_eq!(
            (item.delay_us, item.joined.predicted, item.joined.label),
            (3 * S, true, true)
        );
        // A label before its prediction is held.
        assert!(j.on_label(&label(2, "stay", S), &c, S).is_none());
        let item = j
            .on_prediction(&prediction(2, "1", 0.2, 0), &c, 2 * S)
            .unwrap();
        assert!(!item.joined.predicted && !item.joined.label);
        // A second label of a joined id, a redelivered prediction.
        assert!(j.on_label(&label(1, "stay", 4 * S), &c, 4 * S).is_none());
        assert!(j
            .on_prediction(&prediction(1, "1", 0.8, 0), &c, 4 * S)
            .is_none());
        // One prediction never labelled, one label never predicted.
        j.on_prediction(&prediction(3, "1", 0.5, 0), &c, 5 * S);
        j.on_label(&label(4, "churn", 5 * S), &c, 5 * S);
        j.expire(&c, 16 * S);
        assert_eq!(j.held(), (0, 0));
        let want = JoinCounts {
            predictions: 3,
            labels: 4,
            joined: 2,
            duplicate_labels: 1,
            unknown_labels: 1,
            unlabelled: 1,
            duplicate_predictions: 1,
        };
        assert_eq!(j.counts, want);
    }

    #[test]
    fn a_window_is_judged_once_no_label_can_join_it_and_per_version() {
        let c = cfg();
        let mut w = Windows::default();
        let mut j = Join::default();
        // Panes 0 and 1: v1 misses churners (recall 0 < floor 0.5, accuracy low).
        for i in 0..20 {
            let p = prediction(i, "1", 0.1, (i % 2) * S);
            w.on_prediction(&c, &p);
            j.on_prediction(&p, &c, 0);
            if let Some(item) = j.on_label(&label(i, "churn", 5 * S), &c, 5 * S) {
                w.on_joined(&c, &item);
            }
        }
        // v2 in the same panes is right.
        for i in 20..30 {
            let p = prediction(i, "2", 0.9, 0);
            w.on_prediction(&c, &p);
            j.on_prediction(&p, &c, 0);
            if let Some(item) = j.on_label(&label(i, "churn", 5 * S), &c, 5 * S) {
                w.on_joined(&c, &item);
            }
        }
        assert!(w.due(&c, 10 * S).is_empty(), "labels may still come");
        let out = w.due(&c, 12 * S);
        let v1: Vec<&WindowQuality> = out
            .iter()
            .filter(|q| q.version == "1" && q.segment == ALL && q.end_us == 2 * S)
            .collect();
        assert_eq!(v1.len(), 1);
        let q = v1[0];
        assert_eq!((q.predictions, q.coverage), (20, 1.0));
        // Delays 4 s (pane 1) and 5 s (pane 0), ten each: the upper median.
        assert_eq!(q.delay_p50_s, Some(5.0));
        let rules: Vec<&str> = q.degraded.iter().map(|f| f.rule).collect();
        assert_eq!(rules, ["floor", "reference"]);
        let v2 = out
            .iter()
            .find(|q| q.version == "2" && q.segment == "cam-1" && q.end_us == 2 * S)
            .unwrap();
        assert!(v2.degraded.is_empty(), "{v2:?}");
        // Windows are reported once.
        assert!(w.due(&c, 12 * S).is_empty());
        // Two degraded windows in a row fire a k = 2 alarm; an undegraded one clears it.
        let mut alarm = Degradation::new(2, 0.05);
        assert_eq!(alarm.observe(q).state, "pending");
        assert_eq!(alarm.observe(q).state, "firing");
        assert_eq!(alarm.observe(v2).state, "ok", "v2 has its own alarm");
        assert_eq!(alarm.observe(q).state, "firing");
        let mut ok = q.clone();
        ok.degraded.clear();
        assert_eq!(alarm.observe(&ok).state, "ok");
    }
}
