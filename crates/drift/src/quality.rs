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
//! - [`QualityTracker`]: the three above driven by the sidecar's aggregator, pane by pane in
//!   event time, so every sidecar computes the same [`QualityReport`]s from the same
//!   partials ([`PaneTuples`] ride in them).
use crate::features::prediction_outputs;
use argus_stats::alarm::ConsecutiveRule;
use argus_stats::live::{Joined, LiveMetric, LiveQuality};
use argus_stats::report::Alarm;
use argus_wire::{Label, Prediction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The fleet segment (the profile's).
pub const ALL: &str = argus_stats::profile::FLEET;

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

/// What the join needs of a prediction (carried in pane partials).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Predicted {
    /// The prediction's id (`topic/partition/offset` of its input).
    pub id: String,
    /// Model version that made it.
    pub version: String,
    /// Segment (camera, else `*`).
    pub segment: String,
    /// Probability of the positive label.
    pub score: f64,
    /// The input's capture time, µs.
    pub event_us: i64,
}

impl Predicted {
    /// The tuple of a prediction in `segment` with a score for `positive` (`None`: the
    /// model did not run or has no such label).
    pub fn of(p: &Prediction, positive: &str, segment: &str) -> Option<Predicted> {
        let score = prediction_outputs(p, Some(positive))?.score?;
        score.is_finite().then(|| Predicted {
            id: p.id.clone(),
            version: p.model.version.clone(),
            segment: segment.to_owned(),
            score,
            event_us: p.input.capture_time_us.unwrap_or(p.produced_at_us),
        })
    }
}

/// What the join needs of a label (carried in pane partials).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Labelled {
    /// The labelled prediction's id.
    pub id: String,
    /// The true class.
    pub label: String,
    /// When the truth became known, µs.
    pub labelled_at_us: i64,
}

impl From<&Label> for Labelled {
    fn from(l: &Label) -> Self {
        Labelled {
            id: l.id.clone(),
            label: l.label.clone(),
            labelled_at_us: l.labelled_at_us,
        }
    }
}

/// The predictions and labels one partition contributed to one pane, in offset order.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PaneTuples {
    /// Predictions (of every model version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<Predicted>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Labelled>,
}

impl PaneTuples {
    /// Nothing in it.
    pub fn is_empty(&self) -> bool {
        self.predictions.is_empty() && self.labels.is_empty()
    }
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
    early: HashMap<String, (Labelled, i64)>,
    early_order: BTreeSet<(i64, String)>,
    done: HashMap<String, i64>,
    done_order: BTreeSet<(i64, String)>,
    /// Counts so far.
    pub counts: JoinCounts,
}

impl Join {
    /// Takes a prediction; returns the item when its label was already held.
    pub fn on_prediction(
        &mut self,
        p: &Predicted,
        cfg: &QualityConfig,
        now_us: i64,
    ) -> Option<JoinedItem> {
        if self.done.contains_key(&p.id) || self.waiting.contains_key(&p.id) {
            self.counts.duplicate_predictions += 1;
            return None;
        }
        self.counts.predictions += 1;
        let w = Waiting {
            version: p.version.clone(),
            segment: p.segment.clone(),
            score: p.score,
            event_us: p.event_us,
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
    pub fn on_label(
        &mut self,
        l: &Labelled,
        cfg: &QualityConfig,
        now_us: i64,
    ) -> Option<JoinedItem> {
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
        l: &Labelled,
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
    /// Of those, joined with their label.
    pub joined: u64,
    /// The quality of its joined items (`None` below `min_items`).
    pub quality: Option<LiveQuality>,
    /// Joined items ÷ predictions.
    pub coverage: f64,
    /// Median label delay, seconds.
    pub delay_p50_s: Option<f64>,
    /// Metrics that degraded, each with why (`floor` or `reference` and the p-value).
    pub degraded: Vec<Finding>,
}

/// Why a metric counts as degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingRule {
    /// Below the configured floor.
    Floor,
    /// Significantly below the value recorded with the model on its test set.
    Reference,
}

/// A metric found degraded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// The metric.
    pub metric: LiveMetric,
    /// Its value in the window.
    pub value: f64,
    /// The floor or test-set value it was held to.
    pub against: f64,
    /// Which rule: below the floor, or significantly below the test-set value.
    pub rule: FindingRule,
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
    pub fn on_prediction(&mut self, cfg: &QualityConfig, p: &Predicted) {
        self.update(cfg, p.event_us, &p.version, &p.segment, |c| {
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
                    joined: c.items.len() as u64,
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
                rule: FindingRule::Floor,
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
                rule: FindingRule::Reference,
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

    /// Whether the alarm of (version, segment) is firing now.
    pub fn is_firing(&self, version: &str, segment: &str) -> bool {
        self.rules
            .get(&(version.to_owned(), segment.to_owned()))
            .is_some_and(|r| r.state().state == "firing")
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

/// `schema` of every [`QualityReport`].
pub const QUALITY_SCHEMA: &str = "argus.quality/v1";
/// `schema` of every [`QualityAlert`].
pub const QUALITY_ALERT_SCHEMA: &str = "argus.quality-alert/v1";
/// The rule name in degradation alerts.
pub const QUALITY_RULE: &str = "quality_degraded";

/// A report's window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityWindow {
    /// Start (RFC 3339, UTC).
    pub start: String,
    /// End, exclusive (RFC 3339, UTC).
    pub end: String,
    /// Start, µs since the Unix epoch (event time of the predictions).
    pub start_us: i64,
    /// End, µs.
    pub end_us: i64,
    /// How long labels were waited for after `end`, seconds.
    pub horizon_seconds: f64,
}

/// The drift sidecar's label-free estimate (CBPE) for the same window and segment, beside
/// the realised accuracy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EstimateCheck {
    /// Always `cbpe`.
    pub method: String,
    /// Estimated accuracy (every prediction of the window, labelled or not).
    pub estimated_accuracy: f64,
    /// Its standard error.
    pub estimated_accuracy_se: f64,
    /// Accuracy on the joined (labelled) predictions.
    pub realised_accuracy: f64,
    /// `estimated_accuracy − realised_accuracy`.
    pub error: f64,
    /// Whether the realised accuracy lies within the estimate's ±3·SE band.
    pub within_band: bool,
}

/// One window's realised quality of one model version and segment (`argus.quality/v1`,
/// `schemas/quality.v1.schema.json`), published on the quality topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityReport {
    /// [`QUALITY_SCHEMA`].
    pub schema: String,
    /// The model and the version whose predictions these are.
    pub model: argus_stats::report::ModelInfo,
    /// `*` (the fleet) or a camera.
    pub segment: String,
    /// The window.
    pub window: QualityWindow,
    /// The positive label and the decision threshold on its probability.
    pub positive_label: String,
    /// Decision threshold.
    pub threshold: f64,
    /// Predictions in the window.
    pub predictions: u64,
    /// Of those, joined with a label.
    pub labelled: u64,
    /// `labelled ÷ predictions`.
    pub coverage: f64,
    /// Median label delay (label time − capture time), seconds.
    pub label_delay_p50_seconds: Option<f64>,
    /// The realised metrics (`null` with fewer joined items than the minimum).
    pub metrics: Option<LiveQuality>,
    /// Metrics below their floors or significantly below their test-set values.
    pub degraded: Vec<Finding>,
    /// The degradation alarm of this version and segment after this window.
    pub alarm: Alarm,
    /// CBPE's estimate for the same window and segment, when the drift sidecar made one for
    /// this version.
    pub estimate: Option<EstimateCheck>,
}

impl QualityReport {
    /// The key the reports are told apart by: (version, segment) and window end.
    pub fn book_key(&self) -> (String, i64) {
        (
            format!("{}\u{1f}{}", self.model.version, self.segment),
            self.window.end_us,
        )
    }
}

/// The alert raised when a version's degradation alarm starts firing
/// (`argus.quality-alert/v1`, `schemas/quality-alert.v1.schema.json`), on the alerts topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityAlert {
    /// [`QUALITY_ALERT_SCHEMA`].
    pub schema: String,
    /// Unique per model, version, segment and window.
    pub id: String,
    /// Always [`QUALITY_RULE`].
    pub rule: String,
    /// The model and version.
    pub model: argus_stats::report::ModelInfo,
    /// `*` or a camera.
    pub segment: String,
    /// The window that fired the alarm.
    pub window: QualityWindow,
    /// What degraded (metric, value, floor or test-set value, p-value).
    pub findings: Vec<Finding>,
    /// Joined items in the window.
    pub labelled: u64,
    /// The alarm.
    pub alarm: Alarm,
    /// When the sidecar raised it, µs.
    pub raised_at_us: i64,
}

impl QualityAlert {
    /// The alert for `r`, whose alarm just started firing.
    pub fn of(r: &QualityReport, raised_at_us: i64) -> QualityAlert {
        QualityAlert {
            schema: QUALITY_ALERT_SCHEMA.to_owned(),
            id: format!(
                "quality/{}/{}/{}/{}",
                r.model.id, r.model.version, r.segment, r.window.end_us
            ),
            rule: QUALITY_RULE.to_owned(),
            model: r.model.clone(),
            segment: r.segment.clone(),
            window: r.window.clone(),
            findings: r.degraded.clone(),
            labelled: r.labelled,
            alarm: r.alarm.clone(),
            raised_at_us,
        }
    }
}

/// A report with whether its alarm just started firing (an alert is due).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The report.
    pub report: QualityReport,
    /// The alarm went to `firing` with this window.
    pub fired: bool,
}

/// Join, windows and alarm, driven pane by pane in event time by the aggregator: the same
/// partials in the same order give the same reports on every sidecar.
#[derive(Debug)]
pub struct QualityTracker {
    cfg: QualityConfig,
    model: String,
    /// Only this version gets the CBPE estimate beside it (`None`: every version, when the
    /// drift sidecar summarises every version's predictions).
    estimated_version: Option<String>,
    join: Join,
    windows: Windows,
    alarm: Degradation,
    /// CBPE estimates by (segment, window end), until their window is judged.
    estimates: BTreeMap<(i64, String), argus_stats::report::PerformanceEstimate>,
}

impl QualityTracker {
    /// A tracker for `model`'s predictions; `alarm_k` degraded windows in a row fire.
    pub fn new(
        cfg: QualityConfig,
        model: &str,
        estimated_version: Option<String>,
        alarm_k: u32,
    ) -> Self {
        QualityTracker {
            alarm: Degradation::new(alarm_k.max(1), cfg.alpha),
            cfg,
            model: model.to_owned(),
            estimated_version,
            join: Join::default(),
            windows: Windows::default(),
            estimates: BTreeMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &QualityConfig {
        &self.cfg
    }

    /// What the join counted so far, and predictions waiting / labels held now.
    pub fn counts(&self) -> (&JoinCounts, (usize, usize)) {
        (&self.join.counts, self.join.held())
    }

    /// One complete pane ending at `end_us`: its partitions' tuples, in (topic, partition,
    /// offset) order. The join's clock is the pane's end: first what is older than a horizon
    /// before it expires, then the predictions go in, then the labels (so a label in the
    /// same pane as its prediction joins at once). Whether a label meets its prediction thus
    /// depends on their panes only, never on when the caller looked.
    pub fn feed_pane<'a>(&mut self, end_us: i64, tuples: impl IntoIterator<Item = &'a PaneTuples>) {
        self.join.expire(&self.cfg, end_us);
        let tuples: Vec<&PaneTuples> = tuples.into_iter().collect();
        for t in &tuples {
            for p in &t.predictions {
                self.windows.on_prediction(&self.cfg, p);
                if let Some(item) = self.join.on_prediction(p, &self.cfg, end_us) {
                    self.windows.on_joined(&self.cfg, &item);
                }
            }
        }
        for t in &tuples {
            for l in &t.labels {
                if let Some(item) = self.join.on_label(l, &self.cfg, end_us) {
                    self.windows.on_joined(&self.cfg, &item);
                }
            }
        }
    }

    /// The drift report's CBPE estimate of `segment`'s window ending at `end_us`.
    pub fn estimate(
        &mut self,
        segment: &str,
        end_us: i64,
        e: &argus_stats::report::PerformanceEstimate,
    ) {
        self.estimates
            .insert((end_us, segment.to_owned()), e.clone());
    }

    /// Every pane before `until_us` is complete: expire the join and judge the windows no
    /// label can join any more.
    pub fn advance(&mut self, until_us: i64) -> Vec<Evaluated> {
        // Expire at the last pane boundary only: every pane fed later ends after it, and
        // expires at least as much first.
        let boundary = until_us.div_euclid(self.cfg.pane_us) * self.cfg.pane_us;
        self.join.expire(&self.cfg, boundary);
        let due = self.windows.due(&self.cfg, until_us);
        let mut out = Vec::with_capacity(due.len());
        for w in due {
            let was = self.alarm.is_firing(&w.version, &w.segment);
            let alarm = self.alarm.observe(&w);
            let firing = alarm.state == "firing";
            let estimate = self.estimate_for(&w);
            out.push(Evaluated {
                fired: firing && !was,
                report: self.report(w, alarm, estimate),
            });
        }
        if let Some(last) = out.last() {
            let keep = last.report.window.end_us - self.cfg.pane_us;
            self.estimates.retain(|(end, _), _| *end >= keep);
        }
        out
    }

    fn estimate_for(&self, w: &WindowQuality) -> Option<EstimateCheck> {
        if self
            .estimated_version
            .as_ref()
            .is_some_and(|v| *v != w.version)
        {
            return None;
        }
        let e = self.estimates.get(&(w.end_us, w.segment.clone()))?;
        let q = w.quality.as_ref()?;
        if !e.sufficient {
            return None;
        }
        Some(EstimateCheck {
            method: e.method.clone(),
            estimated_accuracy: e.accuracy,
            estimated_accuracy_se: e.accuracy_se,
            realised_accuracy: q.accuracy,
            error: e.accuracy - q.accuracy,
            within_band: (e.accuracy_lower..=e.accuracy_upper).contains(&q.accuracy),
        })
    }

    fn report(
        &self,
        w: WindowQuality,
        alarm: Alarm,
        estimate: Option<EstimateCheck>,
    ) -> QualityReport {
        use argus_stats::report::rfc3339_us;
        QualityReport {
            schema: QUALITY_SCHEMA.to_owned(),
            model: argus_stats::report::ModelInfo {
                id: self.model.clone(),
                version: w.version,
            },
            segment: w.segment,
            window: QualityWindow {
                start: rfc3339_us(w.start_us),
                end: rfc3339_us(w.end_us),
                start_us: w.start_us,
                end_us: w.end_us,
                horizon_seconds: self.cfg.horizon_us as f64 / 1e6,
            },
            positive_label: self.cfg.positive.clone(),
            threshold: self.cfg.threshold,
            predictions: w.predictions,
            labelled: w.joined,
            coverage: w.coverage,
            label_delay_p50_seconds: w.delay_p50_s,
            metrics: w.quality,
            degraded: w.degraded,
            alarm,
            estimate,
        }
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

    fn prediction(offset: i64, version: &str, score: f32, event_us: i64) -> Predicted {
        Predicted::of(
            &prediction_msg(offset, version, score, event_us),
            "churn",
            "cam-1",
        )
        .unwrap()
    }

    fn prediction_msg(offset: i64, version: &str, score: f32, event_us: i64) -> Prediction {
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
            frame: None,
            detections: None,
        }
    }

    fn label(offset: i64, class: &str, at_us: i64) -> Labelled {
        let mut l = Label::new(format!("in/0/{offset}"), class, LabelSource::System);
        l.labelled_at_us = at_us;
        Labelled::from(&l)
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

    /// The same panes give the same reports and counts however often the caller advances
    /// (one sidecar sees progress in other chunks than two): labels at the horizon's edge
    /// included.
    #[test]
    fn reports_depend_on_the_panes_not_on_when_the_tracker_is_advanced() {
        let c = cfg();
        // Pane k holds four predictions of event time k s and labels for predictions 3, 9,
        // 10 and 11 s older (the horizon is 10 s: the last are too late).
        let mut panes: Vec<PaneTuples> = Vec::new();
        for k in 0..40i64 {
            let mut t = PaneTuples::default();
            for (j, late) in [3i64, 9, 10, 11].into_iter().enumerate() {
                let j = j as i64;
                let off = k * 4 + j;
                let version = if j < 2 { "1" } else { "2" };
                t.predictions
                    .push(prediction(off, version, 0.2 + 0.2 * j as f32, k * S));
                let target = (k - late) * 4 + j;
                if target >= 0 {
                    let class = if (target / 4) % 3 == 0 {
                        "churn"
                    } else {
                        "stay"
                    };
                    t.labels.push(label(target, class, k * S));
                }
            }
            panes.push(t);
        }
        let run = |advance_every: usize, extra: i64| {
            let mut tr = QualityTracker::new(c.clone(), "churn", None, 2);
            let mut out = Vec::new();
            for (k, t) in panes.iter().enumerate() {
                let end = (k as i64 + 1) * S;
                tr.feed_pane(end, [t]);
                if k % advance_every == 0 {
                    out.extend(tr.advance(end + extra));
                }
            }
            out.extend(tr.advance(100 * S));
            let counts = tr.counts().0.clone();
            (out, counts)
        };
        let (a, ca) = run(1, 0);
        let (b, cb) = run(7, 0);
        // Progress part-way into the next pane.
        let (d, cd) = run(3, S / 2);
        assert!(a.len() > 50, "{}", a.len());
        assert_eq!(a, b);
        assert_eq!(a, d);
        assert_eq!(ca, cb);
        assert_eq!(ca, cd);
        // 3, 9 and 10 s late join; 11 s late do not.
        assert_eq!(
            (ca.joined, ca.unknown_labels, ca.duplicate_labels),
            (37 + 31 + 30, 29, 0),
            "{ca:?}"
        );
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
        let rules: Vec<FindingRule> = q.degraded.iter().map(|f| f.rule).collect();
        assert_eq!(rules, [FindingRule::Floor, FindingRule::Reference]);
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
