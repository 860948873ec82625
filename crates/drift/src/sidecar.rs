//! `argus drift watch`: the sidecar.
//!
//! It joins its own consumer group on the input topic (and the predictions topic), keeps
//! event-time panes per assigned partition (`pane`), publishes each final pane's partial
//! summary and its partition's progress to the panes topic, reads the whole panes topic
//! back into an [`Aggregator`](crate::aggregate::Aggregator) and — on the sidecar that owns
//! partition 0 of the input topic — publishes one report per complete window and segment to
//! the reports topic.
//! Offsets: a partition's committed offset is the first record of its oldest open pane, so a
//! restarted or new owner replays open panes in full; partials already published are not
//! counted twice (see `aggregate`).
//!
//! Layout: the decisions are pure and live apart from the Kafka clients, so they are unit
//! tested without a broker.
//! - `state`: the `Sidecar` state machine — `on_record`, `on_pane`, `on_report`,
//!   `on_assignment`, `on_tick` — which returns the messages to send and offsets to store as
//!   `Effect`s, in order.
//! - `input`: one record → validity (envelope, schema, event time), segment, pane admission
//!   and feature values.
//! - `publish`: which evaluated reports this sidecar publishes, and when.
//! - `driver`: [`run`] — the clients, the `select!` loop that feeds the state machine and
//!   carries out its effects, and the broker lookups for idle partitions.
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::KafkaSetupError;
use argus_stats::evaluate::EvalConfig;
use argus_stats::report::ModelInfo;
use std::time::Duration;

mod driver;
pub(crate) mod input;
mod publish;
mod state;

pub use driver::{run, Outputs};

/// Largest message on the panes topic (the topic is created with this `max.message.bytes`;
/// a partial of 20 numeric features × 1024 samples is about 0.8 MB of JSON per segment).
pub const PANE_MESSAGE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What a sidecar needs to know. All sidecars of one group must agree on the window and
/// sampling settings (and the profile); the sidecar id is theirs alone.
#[derive(Debug, Clone)]
pub struct DriftConfig {
    /// The stream to watch (frames or records).
    pub input_topic: String,
    /// The predictions topic, when model outputs (score, predicted class) are watched too.
    pub predictions_topic: Option<String>,
    /// Only predictions of this model version count (`None`: all): a sidecar following the
    /// registry watches the production version's outputs, not a canary's.
    pub predictions_version: Option<String>,
    /// Where sidecars exchange pane summaries and progress.
    pub panes_topic: String,
    /// Where drift reports go.
    pub reports_topic: String,
    /// Consumer group of the sidecars.
    pub group: String,
    /// This sidecar's id, unique in the group.
    pub sidecar_id: String,
    /// Pane length (event time).
    pub pane: Duration,
    /// Panes per window.
    pub window_panes: u32,
    /// How far a record may lag the newest one (event time) before its pane is final.
    pub lateness: Duration,
    /// Share of records summarised, (0, 1], by record hash.
    pub sample_rate: f64,
    /// Frames per camera per second of event time at most (0 = no cap).
    pub max_fps: f64,
    /// Cameras beyond this many get no segment of their own (fleet `*` only).
    pub max_segments: usize,
    /// Segments beyond this many (besides `*`) are evaluated and reported but not exported
    /// as per-segment metrics ([`SegmentCap`](crate::metrics::SegmentCap)).
    pub max_metric_segments: usize,
    /// Consecutive drifting windows that fire the alarm.
    pub alarm_k: u32,
    /// Evaluation thresholds.
    pub eval: EvalConfig,
    /// The model, named in reports.
    pub model: ModelInfo,
    /// How often panes are closed, progress published and reports evaluated.
    pub tick: Duration,
    /// A partition that has sent nothing for this long (wall clock) follows the furthest
    /// watermark, so it does not hold windows back (`None`: one pane).
    pub idle_timeout: Option<Duration>,
    /// Records with an event time further than this ahead of the wall clock are invalid
    /// (a wrong unit or clock would otherwise push the watermark into the future).
    pub max_future: Duration,
    /// Join predictions with ground truth from a labels topic (`None`: drift only).
    pub quality: Option<QualityWiring>,
    /// Create the panes and reports topics if missing (off where topics are made elsewhere,
    /// e.g. the embedded broker, whose admin API is limited).
    pub create_topics: bool,
}

impl DriftConfig {
    /// Defaults for everything but the input topic, the sidecar id and the model: those
    /// of [`DriftSettings`](crate::settings::DriftSettings) and the sidecar's own.
    pub fn new(input_topic: &str, sidecar_id: &str, model: ModelInfo) -> Self {
        let d = crate::settings::DriftSettings::default();
        let mut c = Self {
            input_topic: input_topic.to_owned(),
            predictions_topic: None,
            predictions_version: None,
            panes_topic: d.panes_topic.clone(),
            reports_topic: d.reports_topic.clone(),
            group: d.group.clone(),
            sidecar_id: sidecar_id.to_owned(),
            pane: Duration::ZERO,
            window_panes: 0,
            lateness: Duration::ZERO,
            sample_rate: 0.0,
            max_fps: 0.0,
            max_segments: 200,
            max_metric_segments: d.max_metric_segments,
            alarm_k: 0,
            eval: EvalConfig::default(),
            model,
            tick: Duration::from_millis(250),
            create_topics: true,
            quality: None,
            idle_timeout: None,
            max_future: Duration::from_secs(3600),
        };
        d.windows(&mut c);
        c
    }

    /// Cross-field checks; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.pane < Duration::from_millis(100) {
            return Err("--pane must be at least 100ms".into());
        }
        if self.window_panes == 0 || self.alarm_k == 0 {
            return Err("--window-panes and --alarm-windows must be at least 1".into());
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err("--sample-rate must be in (0, 1]".into());
        }
        if !(self.max_fps >= 0.0 && self.max_fps.is_finite()) {
            return Err("--max-fps must be ≥ 0 (0 = no cap)".into());
        }
        if self.predictions_topic.as_deref() == Some(self.input_topic.as_str()) {
            return Err("--predictions-topic must differ from the input topic".into());
        }
        if let Some(q) = &self.quality {
            q.validate(self)?;
        }
        Ok(())
    }
}

/// The quality join's topics and judgement (`argus drift watch --labels TOPIC`). Its panes
/// and windows are the sidecar's.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityWiring {
    /// Where ground truth arrives (`argus.label/v1`).
    pub labels_topic: String,
    /// Where quality reports go (`argus.quality/v1`).
    pub quality_topic: String,
    /// Where the degradation alert goes (`argus.quality-alert/v1`).
    pub alerts_topic: String,
    /// How long a prediction waits for its label (and a label for its prediction), event
    /// time; a window is judged this long after its end.
    pub horizon: Duration,
    /// The positive label (`None`: the profile's score label or calibration's).
    pub positive: Option<String>,
    /// Decision threshold on its probability (`None`: the calibration's, else 0.5).
    pub threshold: Option<f64>,
    /// Floors: a window below one is degraded.
    pub floors: Vec<(argus_stats::live::LiveMetric, f64)>,
    /// Test-set values recorded with the model: a window significantly below one is degraded.
    pub reference: Vec<(argus_stats::live::LiveMetric, f64)>,
    /// Significance level of the one-sided tests against `reference`.
    pub alpha: f64,
    /// Joined items a window needs before it is judged.
    pub min_labels: u64,
    /// Consecutive degraded windows that fire the alarm.
    pub alarm_k: u32,
}

impl QualityWiring {
    /// Cross-field checks against the sidecar's own settings.
    fn validate(&self, c: &DriftConfig) -> Result<(), String> {
        let topics = [
            Some(c.input_topic.as_str()),
            c.predictions_topic.as_deref(),
            Some(c.panes_topic.as_str()),
            Some(c.reports_topic.as_str()),
        ];
        if topics.contains(&Some(self.labels_topic.as_str())) {
            return Err("--labels must name its own topic (not the input, predictions, panes or reports topic)".into());
        }
        if c.predictions_topic.is_none() {
            return Err("--labels needs --predictions: labels are joined with predictions".into());
        }
        if self.quality_topic == self.labels_topic
            || topics.contains(&Some(self.quality_topic.as_str()))
        {
            return Err("--quality-topic must be a topic of its own".into());
        }
        if self.horizon < c.pane {
            return Err("--quality-horizon must be at least one pane".into());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err("--quality-alpha must be in (0, 1)".into());
        }
        if self.alarm_k == 0 {
            return Err("--quality-alarm-windows must be at least 1".into());
        }
        if self.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err("--quality-threshold must be in [0, 1]".into());
        }
        for (m, v) in self.floors.iter().chain(&self.reference) {
            if !(0.0..=1.0).contains(v) {
                return Err(format!(
                    "the {} floor or test-set value must be in [0, 1], not {v}",
                    m.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// Why the sidecar stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Clients or topics could not be set up.
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    /// Kafka failed while running.
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The stream does not fit the profile (its schema hash or features).
    #[error("the stream does not match the profile: {0}")]
    SchemaMismatch(String),
    /// The configuration is inconsistent.
    #[error("invalid sidecar configuration: {0}")]
    Config(String),
    /// An output file could not be written (`argus export-training`).
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A followed version's reference could not be fetched, verified or read
    /// ([`crate::follow`]).
    #[error("no drift reference for {model}@{version} ({reason}): {detail}")]
    Reference {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// Why, as a metric label.
        reason: crate::follow::ReferenceFailure,
        /// What went wrong.
        detail: String,
    },
}

/// Counters a caller (the demo, tests) can read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriftStats {
    /// Records read.
    pub records: u64,
    /// Records summarised.
    pub sampled: u64,
    /// Records whose pane was already final.
    pub late: u64,
    /// Records that yielded no features.
    pub invalid: u64,
    /// Partial pane summaries published.
    pub partials: u64,
    /// Drift reports published.
    pub reports: u64,
    /// Quality reports published.
    pub quality_reports: u64,
    /// Degradation alerts published.
    pub quality_alerts: u64,
}

impl DriftStats {
    /// Adds `other`'s counts (a sidecar restarted on a new reference).
    pub fn add(&mut self, other: &DriftStats) {
        self.records += other.records;
        self.sampled += other.sampled;
        self.late += other.late;
        self.invalid += other.invalid;
        self.partials += other.partials;
        self.reports += other.reports;
        self.quality_reports += other.quality_reports;
        self.quality_alerts += other.quality_alerts;
    }
}

#[cfg(test)]
pub(crate) mod fixtures;
