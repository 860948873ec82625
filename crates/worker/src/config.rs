//! Worker configuration: [`WorkerSettings`] is the `[worker]` table of the configuration
//! (serde, every default defined once in its `Default`), [`WorkerConfig`] what the run loop
//! needs, built from it with the resolved worker id and alert rules.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// An alert rule: alert when `label`'s probability is at least `threshold`. Written
/// `LABEL>=THRESHOLD` or `NAME:LABEL>=THRESHOLD` (flags, files, environment).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    /// The rule's name (in alerts and their ids).
    pub name: String,
    /// The label it watches.
    pub label: String,
    /// Alert at this probability or more.
    pub threshold: f32,
}

impl AlertRule {
    /// The bundle's `[decision]` rules (e.g. churn ≥ 0.3): what a worker alerts on when no
    /// rule is configured.
    pub fn from_bundle(bundle: &argus_model::Classifier) -> Vec<AlertRule> {
        bundle
            .manifest()
            .decision
            .iter()
            .map(|d| AlertRule {
                name: d.positive.clone(),
                label: d.positive.clone(),
                threshold: d.threshold,
            })
            .collect()
    }

    /// The rules a worker alerts on with `bundle`: the configured ones (`--alert`) if any,
    /// else the bundle's `[decision]` (each version of a followed model then alerts on its
    /// own). No rule at all is logged: the worker then publishes predictions only.
    pub fn for_bundle(
        configured: &[AlertRule],
        bundle: &argus_model::Classifier,
    ) -> Vec<AlertRule> {
        if !configured.is_empty() {
            return configured.to_vec();
        }
        let rules = Self::from_bundle(bundle);
        if rules.is_empty() {
            tracing::warn!(
                model = %bundle.model_ref().name,
                version = %bundle.model_ref().version,
                "no alert rules: the bundle has no [decision] and no --alert was given; predictions only, plus zone alerts where zones are configured (before bundle schema v2 the default was person>=0.5)"
            );
        }
        rules
    }
}

impl std::str::FromStr for AlertRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rest) = match s.split_once(':') {
            Some((n, r)) => (Some(n.trim()), r),
            None => (None, s),
        };
        let (label, threshold) = rest.split_once(">=").ok_or_else(|| {
            format!("alert rule {s:?} must look like LABEL>=THRESHOLD, e.g. person>=0.5")
        })?;
        let threshold: f32 = threshold
            .trim()
            .parse()
            .map_err(|_| format!("alert rule {s:?}: threshold must be a number in 0..=1"))?;
        if !(0.0..=1.0).contains(&threshold) {
            return Err(format!("alert rule {s:?}: threshold must be within 0..=1"));
        }
        let label = label.trim().to_string();
        Ok(AlertRule {
            name: name.map(str::to_string).unwrap_or_else(|| label.clone()),
            label,
            threshold,
        })
    }
}

impl std::fmt::Display for AlertRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name != self.label {
            write!(f, "{}:", self.name)?;
        }
        write!(f, "{}>={}", self.label, self.threshold)
    }
}

impl Serialize for AlertRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AlertRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Serde helpers shared by every role's settings: the common ones live in
/// [`argus_kafka::serde_helpers`] (every role depends on that crate), the engine name here.
pub mod serde_helpers {
    use super::*;
    pub use argus_kafka::serde_helpers::{
        duration, format_duration, list, opt_duration, parse_duration,
    };

    /// An engine name (`auto`, `tract`, `onnxruntime`, `trees`), absent = the manifest's.
    pub mod engine {
        use super::*;
        use argus_model::EngineKind;
        pub fn serialize<S: Serializer>(e: &Option<EngineKind>, s: S) -> Result<S::Ok, S::Error> {
            match e {
                Some(e) => s.serialize_some(e.as_str()),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<EngineKind>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| s.parse().map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

use serde_helpers::{duration, opt_duration};

/// The three output topics of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputTopics {
    /// Every inference's prediction (JSON).
    pub predictions: String,
    /// Alert-rule matches (JSON).
    pub alerts: String,
    /// Inputs that could not be scored: original bytes plus failure headers.
    pub dlq: String,
    /// Predictions of the shadow version (JSON, same schema as `predictions`); never alerts.
    pub shadow: String,
}

impl Default for OutputTopics {
    fn default() -> Self {
        OutputTopics {
            predictions: "predictions".into(),
            alerts: "alerts".into(),
            dlq: "dlq".into(),
            shadow: "predictions.shadow".into(),
        }
    }
}

impl OutputTopics {
    /// The same topics, each renamed by `rename` (e.g. per-run names in the demo).
    pub fn renamed(&self, rename: impl Fn(&str) -> String) -> OutputTopics {
        OutputTopics {
            predictions: rename(&self.predictions),
            alerts: rename(&self.alerts),
            dlq: rename(&self.dlq),
            shadow: rename(&self.shadow),
        }
    }

    /// predictions, alerts, dlq, shadow — e.g. to create them.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        [
            self.predictions.as_str(),
            self.alerts.as_str(),
            self.dlq.as_str(),
            self.shadow.as_str(),
        ]
        .into_iter()
    }
}

/// The `[worker]` table: everything `argus work` (and the pipeline `argus score` and
/// `argus demo` share) can be configured with. Defaults are defined here only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Model bundle directory (manifest.toml + model.onnx).
    pub model: PathBuf,
    /// Follow this model's deployment in the registry (`[registry]`): serve its production
    /// version (and canary, shadow) and swap when they change; `model` is not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    /// Inference engine: tract, onnxruntime, trees or auto (the fastest that loads the model,
    /// timed at load) [default: the manifest's, else from the model's graph: trees for tree
    /// ensembles, onnxruntime (if built in) for depthwise convolutions, else tract].
    #[serde(
        with = "serde_helpers::engine",
        skip_serializing_if = "Option::is_none"
    )]
    pub engine: Option<argus_model::EngineKind>,
    /// libonnxruntime for the onnxruntime engine [default: ORT_DYLIB_PATH, else the loader's
    /// search path].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime intra-op threads per session (0: onnxruntime's default).
    pub onnxruntime_threads: usize,
    /// Alert rules `LABEL>=THRESHOLD` or `NAME:LABEL>=THRESHOLD` [empty: the bundle's
    /// `[decision]`].
    #[serde(deserialize_with = "serde_helpers::list")]
    pub alerts: Vec<AlertRule>,
    /// Topics to consume.
    #[serde(deserialize_with = "serde_helpers::list")]
    pub inputs: Vec<String>,
    /// Where the outputs go.
    pub topics: OutputTopics,
    /// Consumer group.
    pub group: String,
    /// Worker id in outputs and logs [default: hostname-pid; the hostname with
    /// exactly_once or static_membership].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Address for /metrics and /healthz.
    pub metrics_addr: SocketAddr,
    /// Create missing output topics with this many partitions (0 = don't create).
    pub create_topics: i32,
    /// Classes listed in each prediction's `top`.
    pub top_k: usize,
    /// Threads running the model; each runs one batch at a time.
    pub inference_threads: usize,
    /// Threads decoding and preprocessing inputs (the blocking pool, bounded).
    pub decode_threads: usize,
    /// Inputs per model call, at most.
    pub max_batch: usize,
    /// How long a batch may wait to fill after its first input (0: never wait).
    #[serde(with = "duration")]
    pub max_wait: Duration,
    /// Skip inputs captured longer ago than this (their prediction says `stale`).
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Inputs in flight (consumed, outputs not yet acknowledged), at most. Inputs wait for
    /// their outputs' acknowledgements while in flight: with the broker's ack time (tens of
    /// ms under load) 64 capped a fast model's drain at ~530 inputs/s; the byte bound keeps
    /// memory in check.
    pub max_in_flight: usize,
    /// Payload bytes of the inputs in flight, at most.
    pub max_in_flight_bytes: usize,
    /// Inputs consumed and not yet committed, at most: in flight, finished behind an
    /// unfinished input (an alert awaiting its evidence holds the inputs after it), or not
    /// yet confirmed committed. A crash redoes at most this many.
    pub max_uncommitted: usize,
    /// Full in-flight work for longer than this pauses the partitions (polling goes on).
    #[serde(with = "duration")]
    pub pause_after: Duration,
    /// An input unfinished for this long marks its partition as stuck (gauge).
    #[serde(with = "duration")]
    pub stuck_after: Duration,
    /// Inputs larger than this go to the DLQ as `oversize`.
    pub max_input_bytes: usize,
    /// Pixels one encoded frame may decode to; larger frames go to the DLQ as `shape`,
    /// refused from their header before decoding. With `decode_threads` decodes at a time,
    /// decoded frames hold at most `decode_threads` × this × 11 bytes.
    pub max_decoded_pixels: u64,
    /// Testing aid: sleep this long before every model call.
    #[serde(with = "duration")]
    pub inject_delay: Duration,
    /// How long shutdown waits for in-flight work.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// Exactly-once: outputs and input offsets are committed in Kafka transactions.
    pub exactly_once: bool,
    /// Exactly-once: how often the open transaction is committed.
    #[serde(with = "duration")]
    pub transaction_interval: Duration,
    /// Static membership: `group.instance.id` = the worker id.
    pub static_membership: bool,
    /// Consumer group protocol: classic (cooperative-sticky) or consumer (KIP-848).
    pub group_protocol: String,
    /// Zones and their rules (detection models; `[[worker.zones]]`, see
    /// [`crate::zones::ZoneSettings`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<crate::zones::ZoneSettings>,
    /// Directory for zone alert snapshots (a JPEG per alert with the boxes and zone drawn,
    /// referred to by the alert's `snapshot`) [default: none written].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<PathBuf>,
    /// Evidence on alerts (`[worker.evidence]`).
    pub evidence: EvidenceSettings,
}

/// `[worker.evidence]`: why the model said so, attached to each alert (alerts become
/// `argus.alert/v4`) by a bounded pool of its own under a deadline; see
/// [`crate::evidence`]. Defaults are defined here only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvidenceSettings {
    /// Attach evidence to alerts.
    pub enabled: bool,
    /// Threads computing evidence (their own: the model's threads are not used).
    pub threads: usize,
    /// Requests waiting for a thread, at most; past that an alert's evidence is skipped
    /// (reason `saturated`) rather than queued.
    pub queue: usize,
    /// Longest an alert waits for its evidence; then it goes out with the evidence
    /// skipped (reason `deadline`).
    #[serde(with = "duration")]
    pub deadline: Duration,
    /// Occlusion grid cells per side (image models; `grid²` model calls per alert).
    pub grid: u32,
    /// Sampled permutations (tabular models without tree covers).
    pub permutations: usize,
    /// Directory for saliency overlays (images: a PNG per grid, the frame with the cells
    /// that mattered tinted, referred to by the grid's `overlay`) [default: none written].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlays: Option<PathBuf>,
    /// An alert whose input was captured longer ago than this skips its evidence (reason
    /// `backlog`): the worker is catching up, and evidence would slow the catch-up and
    /// delay an alert that is late already. `0s`: never skip for age.
    #[serde(with = "duration")]
    pub skip_older_than: Duration,
    /// The evidence threads' CPU priority: `idle` (only CPU nothing else wants, so
    /// evidence never slows predictions; under full load alerts go out skipped) or
    /// `normal` (evidence competes with the model for the cores).
    pub priority: EvidencePriority,
}

/// The CPU priority of the evidence threads (`worker.evidence.priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvidencePriority {
    /// Linux `SCHED_IDLE`: runs only on CPU no other thread wants.
    Idle,
    /// The same priority as the rest of the worker.
    Normal,
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            enabled: false,
            threads: 1,
            queue: 16,
            deadline: Duration::from_millis(500),
            grid: 6,
            permutations: 64,
            overlays: None,
            skip_older_than: Duration::from_secs(2),
            priority: EvidencePriority::Idle,
        }
    }
}

impl EvidenceSettings {
    /// What one explanation may cost.
    pub fn explain_settings(&self) -> argus_model::explain::ExplainSettings {
        argus_model::explain::ExplainSettings {
            permutations: self.permutations,
            grid: self.grid,
            ..argus_model::explain::ExplainSettings::default()
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.threads == 0 || self.deadline.is_zero() {
            return Err(
                "worker.evidence.threads and worker.evidence.deadline must be above 0".into(),
            );
        }
        if !(1..=argus_model::explain::occlusion::MAX_GRID).contains(&self.grid) {
            return Err(format!(
                "worker.evidence.grid {} is out of range: 1 to {}",
                self.grid,
                argus_model::explain::occlusion::MAX_GRID
            ));
        }
        if self.permutations < 2 {
            return Err("worker.evidence.permutations must be at least 2".into());
        }
        Ok(())
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            model: PathBuf::from("models/camera-person"),
            follow: None,
            engine: None,
            onnxruntime_lib: None,
            onnxruntime_threads: 0,
            alerts: Vec::new(),
            inputs: vec!["frames.default".into()],
            topics: OutputTopics::default(),
            group: "argus-workers".into(),
            worker_id: None,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9100)),
            create_topics: 6,
            top_k: 5,
            inference_threads: 1,
            decode_threads: 2,
            max_batch: 8,
            max_wait: Duration::ZERO,
            max_age: None,
            max_in_flight: 1024,
            max_in_flight_bytes: 32 * 1024 * 1024,
            max_uncommitted: 16_384,
            pause_after: Duration::from_secs(1),
            stuck_after: Duration::from_secs(30),
            max_input_bytes: 8 * 1024 * 1024,
            max_decoded_pixels: argus_model::preprocess::MAX_DECODED_PIXELS,
            inject_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(20),
            exactly_once: false,
            transaction_interval: Duration::from_millis(100),
            static_membership: false,
            group_protocol: "classic".into(),
            zones: Vec::new(),
            snapshots: None,
            evidence: EvidenceSettings::default(),
        }
    }
}

impl WorkerSettings {
    /// Field checks that need no model (the model's labels are checked by
    /// [`WorkerConfig::validate`]).
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.group_protocol.as_str(), "classic" | "consumer") {
            return Err(format!(
                "worker.group_protocol {:?}: use \"classic\" or \"consumer\"",
                self.group_protocol
            ));
        }
        if self.create_topics < 0 {
            return Err("worker.create_topics must be 0 (don't create) or more".into());
        }
        crate::zones::compile(&self.zones, None).map_err(|e| format!("worker.zones: {e}"))?;
        self.evidence.check()?;
        let most = argus_model::preprocess::MAX_DECODED_PIXELS_LIMIT;
        if !(1..=most).contains(&self.max_decoded_pixels) {
            return Err(format!(
                "worker.max_decoded_pixels {} is out of range: 1 to {most} (8192×8192, the side limit)",
                self.max_decoded_pixels
            ));
        }
        Ok(())
    }

    /// The run loop's configuration, for `worker_id` with `rules`.
    pub fn config(&self, worker_id: impl Into<String>, rules: Vec<AlertRule>) -> WorkerConfig {
        WorkerConfig {
            worker_id: worker_id.into(),
            input_topics: self.inputs.clone(),
            topics: self.topics.clone(),
            rules,
            max_in_flight: self.max_in_flight,
            max_in_flight_bytes: self.max_in_flight_bytes,
            max_uncommitted: self.max_uncommitted,
            pause_after: self.pause_after,
            inference_threads: self.inference_threads,
            decode_threads: self.decode_threads,
            max_batch: self.max_batch,
            max_wait: self.max_wait,
            max_age: self.max_age,
            stuck_after: self.stuck_after,
            exactly_once: self.exactly_once,
            transaction_interval: self.transaction_interval,
            inject_delay: self.inject_delay,
            max_input_bytes: self.max_input_bytes,
            top_k: self.top_k,
            drain_timeout: self.drain_timeout,
            // Checked by `check`; a list that does not compile serves no zones.
            zones: crate::ZoneConfig {
                zones: std::sync::Arc::new(
                    crate::zones::compile(&self.zones, None).unwrap_or_default(),
                ),
                snapshots: self.snapshots.clone(),
                history: None,
            },
            evidence: self.evidence.clone(),
        }
    }

    /// Engine options for `concurrency` simultaneous model calls, plus the evidence
    /// threads' when evidence is on (they run the same model: onnxruntime keeps a session
    /// for each caller, so none waits for one that another holds).
    pub fn engine_options(&self, concurrency: usize) -> argus_model::EngineOptions {
        let evidence = if self.evidence.enabled {
            self.evidence.threads.max(1)
        } else {
            0
        };
        argus_model::EngineOptions {
            kind: self.engine,
            concurrency: concurrency + evidence,
            intra_threads: self.onnxruntime_threads,
            onnxruntime_lib: self.onnxruntime_lib.clone(),
        }
    }
}

/// Everything the run loop needs besides its I/O.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name of this instance in outputs, logs and DLQ headers.
    pub worker_id: String,
    /// Topics to consume.
    pub input_topics: Vec<String>,
    /// Where predictions, alerts and dead letters go.
    pub topics: OutputTopics,
    pub rules: Vec<AlertRule>,
    /// Inputs consumed but not yet finished (outputs acknowledged), at most. When reached,
    /// the worker pauses its partitions (and keeps polling, so it stays in the group) until
    /// half of them have finished.
    pub max_in_flight: usize,
    /// Payload bytes of the inputs in flight, at most (checked like `max_in_flight`): the
    /// count alone would let big frames take any amount of memory.
    pub max_in_flight_bytes: usize,
    /// Inputs consumed but not yet committed, at most (checked like `max_in_flight`): a
    /// crash redoes at most this many. Finished inputs behind an unfinished one count here,
    /// not in `max_in_flight`, so one slow input (an alert awaiting its evidence) does not
    /// stop the others.
    pub max_uncommitted: usize,
    /// Full in-flight work for longer than this pauses the partitions (polling goes on);
    /// shorter stalls just stop taking messages. Keep it well under `max.poll.interval.ms`.
    pub pause_after: Duration,
    /// Threads running the model; each runs one batch at a time.
    pub inference_threads: usize,
    /// Threads decoding and preprocessing inputs (the blocking pool, bounded).
    pub decode_threads: usize,
    /// Inputs per model call, at most.
    pub max_batch: usize,
    /// How long an inference thread waits for a batch to fill after its first input.
    /// Zero: run with whatever is queued (batches form only under load).
    pub max_wait: Duration,
    /// Inputs captured longer ago than this are not run; their prediction says `stale`.
    pub max_age: Option<Duration>,
    /// An input unfinished for this long marks its partition as stuck (gauge).
    pub stuck_after: Duration,
    /// Exactly-once: outputs and input offsets are committed in Kafka transactions. The
    /// producer must be transactional and the consumer must not auto-commit.
    pub exactly_once: bool,
    /// Exactly-once: how often the open transaction is committed.
    pub transaction_interval: Duration,
    /// Testing aid: sleep this long before every model call (a slow model on demand).
    pub inject_delay: Duration,
    /// Larger messages go to the DLQ as `oversize`.
    pub max_input_bytes: usize,
    /// Classes listed in `top` of a prediction.
    pub top_k: usize,
    /// How long shutdown waits for in-flight work before giving up on it (those inputs
    /// are redelivered to the next owner).
    pub drain_timeout: Duration,
    /// Zone rules of detection models, their snapshots and the reader that rebuilds their
    /// state after a rebalance (set `history` to enable rebuilding).
    pub zones: crate::ZoneConfig,
    /// Evidence on alerts.
    pub evidence: EvidenceSettings,
}

impl WorkerConfig {
    /// Defaults ([`WorkerSettings::default`]) for everything but the topics.
    pub fn new(worker_id: impl Into<String>, input_topics: Vec<String>) -> Self {
        WorkerSettings {
            inputs: input_topics,
            ..WorkerSettings::default()
        }
        .config(worker_id, Vec::new())
    }

    /// Cross-field checks; the message says what to fix.
    pub fn validate(&self, labels: &[String]) -> Result<(), String> {
        if self.input_topics.is_empty() {
            return Err("no input topic given".into());
        }
        if self.max_in_flight == 0
            || self.max_in_flight_bytes == 0
            || self.inference_threads == 0
            || self.decode_threads == 0
            || self.max_batch == 0
        {
            return Err(
                "max_in_flight, max_in_flight_bytes, inference_threads, decode_threads and max_batch must be at least 1"
                    .into(),
            );
        }
        if self.max_uncommitted < self.max_in_flight {
            return Err(format!(
                "max_uncommitted ({}) cannot be below max_in_flight ({}): inputs in flight are uncommitted too",
                self.max_uncommitted, self.max_in_flight
            ));
        }
        if self.max_batch > self.max_in_flight {
            return Err(format!(
                "max_batch ({}) cannot exceed max_in_flight ({}): batches could never fill",
                self.max_batch, self.max_in_flight
            ));
        }
        if self.exactly_once && self.transaction_interval.is_zero() {
            return Err("transaction_interval must be more than zero".into());
        }
        if self.inference_threads > self.max_in_flight {
            return Err(format!(
                "inference_threads ({}) cannot exceed max_in_flight ({})",
                self.inference_threads, self.max_in_flight
            ));
        }
        if let Some(z) = self.zones.zones.iter().find(|z| !labels.contains(&z.label)) {
            return Err(format!(
                "zone {:?} watches label {:?}, which the model does not have (labels: {})",
                z.name,
                z.label,
                labels.join(", ")
            ));
        }
        for rule in &self.rules {
            if !labels.contains(&rule.label) {
                return Err(format!(
                    "alert rule {:?} watches label {:?}, which the model does not have (labels: {})",
                    rule.name,
                    rule.label,
                    labels.join(", ")
                ));
            }
            if !(0.0..=1.0).contains(&rule.threshold) {
                return Err(format!(
                    "alert rule {:?} threshold {} is not within 0..=1",
                    rule.name, rule.threshold
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_threads_count_as_callers_of_the_model() {
        let mut w = WorkerSettings::default();
        w.evidence.enabled = false;
        assert_eq!(w.engine_options(2).concurrency, 2);
        w.evidence.enabled = true;
        w.evidence.threads = 3;
        assert_eq!(w.engine_options(2).concurrency, 5);
    }
}
