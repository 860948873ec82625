//! Flags and value parsers shared by several subcommands (Kafka connection, model and
//! pipeline, output topics). Subcommand modules import these; `cli` imports the subcommands'
//! own flag types, so the dependency goes one way (no `cli` ↔ subcommand circle).
use crate::config::Flags;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Kafka connection flags of the configured commands (`[kafka]`).
#[derive(Debug, Clone, Args)]
pub struct KafkaFlags {
    /// Bootstrap servers, host:port[,host:port] [default: 127.0.0.1:9092].
    #[arg(long)]
    pub brokers: Option<String>,
    /// librdkafka property passed through verbatim, e.g. -X security.protocol=ssl (repeatable).
    /// Every property also has an environment form, ARGUS_KAFKA__OPTIONS__<NAME> (a `_` in
    /// NAME is a `.`, a `__` is a `_`: ARGUS_KAFKA__OPTIONS__SASL_PASSWORD sets
    /// sasl.password), and [kafka.options] in the --config file. Put secrets (passwords,
    /// keys, tokens) there, not on the command line, where `ps` and shell history show them.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = argus_kafka::parse_property)]
    pub kafka_option: Vec<(String, String)>,
    /// Replication factor of topics Argus creates (-1 = the broker's default) [default: -1].
    #[arg(long, allow_negative_numbers = true)]
    pub replication_factor: Option<i32>,
    /// Where a new consumer group starts: earliest or latest [default: earliest].
    #[arg(long)]
    pub offset_reset: Option<argus_kafka::OffsetReset>,
}

impl KafkaFlags {
    pub fn flags(&self, f: &mut Flags) {
        f.set("kafka.brokers", "--brokers", self.brokers.as_ref());
        f.set(
            "kafka.replication_factor",
            "--replication-factor",
            self.replication_factor.as_ref(),
        );
        f.set(
            "kafka.offset_reset",
            "--offset-reset",
            self.offset_reset.as_ref(),
        );
        f.kafka_options("-X", &self.kafka_option);
    }
}

/// Parses durations such as `500ms`, `20s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    argus_worker::config::serde_helpers::parse_duration(s)
}

/// An alert rule `LABEL>=THRESHOLD` or `NAME:LABEL>=THRESHOLD`.
pub fn parse_rule(s: &str) -> Result<argus_worker::AlertRule, String> {
    s.parse()
}

/// Model, rule and pipeline flags shared by `work`, `score` and `demo` (`[worker]`; the
/// defaults are in [`argus_worker::WorkerSettings`], `argus config worker` shows them).
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Threads running the model per worker (each runs one batch at a time) [default: 1].
    #[arg(long)]
    pub inference_threads: Option<usize>,
    /// Threads decoding and preprocessing inputs per worker [default: 2].
    #[arg(long)]
    pub decode_threads: Option<usize>,
    /// Inputs per model call, at most [default: 8].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// How long a batch may wait to fill after its first input (0: batch only what is
    /// already queued, never wait) [default: 0ms].
    #[arg(long, value_parser = parse_duration)]
    pub max_wait: Option<Duration>,
    /// Skip inputs captured longer ago than this (their prediction says `stale`).
    #[arg(long, value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Inputs in flight per worker (consumed, outputs not yet acknowledged); when reached
    /// the worker takes no more (and pauses its partitions if that lasts) until half have
    /// finished [default: 1024].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Inputs consumed and not yet committed per worker (in flight, finished behind a
    /// slower one, or not yet confirmed committed), at most (same rule as
    /// --max-in-flight). A crash redoes at most this many [default: 16384].
    #[arg(long)]
    pub max_uncommitted: Option<usize>,
    /// Payload bytes of the inputs in flight per worker, at most (same rule as
    /// --max-in-flight) [default: 32 MiB].
    #[arg(long)]
    pub max_in_flight_bytes: Option<usize>,
    /// Inputs larger than this go to the DLQ as `oversize` [default: 8 MiB].
    #[arg(long)]
    pub max_input_bytes: Option<usize>,
    /// Attach evidence to every alert (why the model said so: feature attributions for
    /// records, an occlusion saliency grid for images); alerts become argus.alert/v4.
    #[arg(long)]
    pub evidence: bool,
    /// Longest an alert waits for its evidence; then it goes out with the evidence
    /// skipped [default: 500ms].
    #[arg(long, value_parser = parse_duration)]
    pub evidence_deadline: Option<Duration>,
    /// Threads computing evidence, beside the model's [default: 1].
    #[arg(long)]
    pub evidence_threads: Option<usize>,
    /// Write a saliency overlay per image alert here (a PNG of the frame with the cells
    /// that mattered tinted; the alert refers to it) [default: none written].
    #[arg(long)]
    pub evidence_overlays: Option<PathBuf>,
}

impl ModelArgs {
    pub fn flags(&self, f: &mut Flags) {
        self.bundle.flags(f);
        f.set(
            "worker.inference_threads",
            "--inference-threads",
            self.inference_threads.as_ref(),
        );
        f.set(
            "worker.decode_threads",
            "--decode-threads",
            self.decode_threads.as_ref(),
        );
        f.set("worker.max_batch", "--max-batch", self.max_batch.as_ref());
        f.duration("worker.max_wait", "--max-wait", self.max_wait);
        f.duration("worker.max_age", "--max-age", self.max_age);
        f.set(
            "worker.max_in_flight",
            "--max-in-flight",
            self.max_in_flight.as_ref(),
        );
        f.set(
            "worker.max_in_flight_bytes",
            "--max-in-flight-bytes",
            self.max_in_flight_bytes.as_ref(),
        );
        f.set(
            "worker.max_uncommitted",
            "--max-uncommitted",
            self.max_uncommitted.as_ref(),
        );
        f.set(
            "worker.max_input_bytes",
            "--max-input-bytes",
            self.max_input_bytes.as_ref(),
        );
        f.switch("worker.evidence.enabled", "--evidence", self.evidence);
        f.duration(
            "worker.evidence.deadline",
            "--evidence-deadline",
            self.evidence_deadline,
        );
        f.set(
            "worker.evidence.threads",
            "--evidence-threads",
            self.evidence_threads.as_ref(),
        );
        f.set(
            "worker.evidence.overlays",
            "--evidence-overlays",
            self.evidence_overlays.as_ref(),
        );
    }
}

/// The bundle and how it runs and renders (`[worker]`): part of [`ModelArgs`] (`work`,
/// `score`, `demo`) and of `serve`'s flags.
#[derive(Debug, Clone, Args)]
pub struct BundleArgs {
    /// Model bundle directory (manifest.toml + model.onnx) [default: models/camera-person].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Alert rule LABEL>=THRESHOLD or NAME:LABEL>=THRESHOLD (repeatable) [default: the
    /// bundle's [decision], e.g. person>=0.5 for camera-person, churn>=0.3 for churn].
    #[arg(long = "alert", value_delimiter = ',', value_parser = parse_rule)]
    pub alerts: Vec<argus_worker::AlertRule>,
    /// Classes listed in each prediction's `top` [default: 5].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Testing aid: sleep this long before every model call (simulates a slow model).
    #[arg(long, value_parser = parse_duration, hide = true)]
    pub inject_delay: Option<Duration>,
    /// Pixels one encoded frame may decode to; larger frames go to the DLQ as `shape`,
    /// refused from their header [default: 16777216 = 4096×4096; at most 8192×8192].
    #[arg(long)]
    pub max_decoded_pixels: Option<u64>,
    /// Inference engine: tract (pure Rust), onnxruntime (needs a build with `--features
    /// onnxruntime` and libonnxruntime), trees (tree ensembles), or auto (each that loads the
    /// model is timed at load time; the fastest is kept) [default: the manifest's, else from
    /// the model's graph: trees for tree ensembles, onnxruntime (if built in) for depthwise
    /// convolutions, else tract].
    #[arg(long)]
    pub engine: Option<argus_model::EngineKind>,
    /// The libonnxruntime shared library for `--engine onnxruntime` [default: ORT_DYLIB_PATH,
    /// else the loader's search path]; e.g. the one in PyPI's onnxruntime wheel
    /// (site-packages/onnxruntime/capi/libonnxruntime.so.*).
    #[arg(long)]
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime intra-op threads per session (0: onnxruntime's default, one per core).
    #[arg(long)]
    pub onnxruntime_threads: Option<usize>,
}

impl BundleArgs {
    pub fn flags(&self, f: &mut Flags) {
        f.set("worker.model", "--model", self.model.as_ref());
        f.list("worker.alerts", "--alert", &self.alerts);
        f.set("worker.top_k", "--top-k", self.top_k.as_ref());
        f.duration("worker.inject_delay", "--inject-delay", self.inject_delay);
        f.set(
            "worker.max_decoded_pixels",
            "--max-decoded-pixels",
            self.max_decoded_pixels.as_ref(),
        );
        let engine = self.engine.map(|e| e.as_str());
        f.set("worker.engine", "--engine", engine.as_ref());
        f.set(
            "worker.onnxruntime_lib",
            "--onnxruntime-lib",
            self.onnxruntime_lib.as_ref(),
        );
        f.set(
            "worker.onnxruntime_threads",
            "--onnxruntime-threads",
            self.onnxruntime_threads.as_ref(),
        );
    }
}

/// Following a model's deployment in the registry instead of loading `--model`
/// (`[worker] follow`, `[registry] topic`): `work` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// Follow this model's deployment in the registry (`[registry]`, `--registry-topic`)
    /// instead of loading `--model`: serve its production version (and canary, shadow) and
    /// swap when they change.
    #[arg(long, value_name = "NAME")]
    pub follow: Option<String>,
    /// The registry topic `--follow` reads [default: argus.models].
    #[arg(long)]
    pub registry_topic: Option<String>,
}

impl FollowArgs {
    pub fn flags(&self, f: &mut Flags) {
        f.set("worker.follow", "--follow", self.follow.as_ref());
        f.set(
            "registry.topic",
            "--registry-topic",
            self.registry_topic.as_ref(),
        );
    }
}

/// `VALUE=LABEL` of `--label-map`.
pub fn parse_label_map(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((v, l)) if !v.is_empty() && !l.is_empty() => Ok((v.to_owned(), l.to_owned())),
        _ => Err(format!("{s:?}: use VALUE=LABEL, e.g. 1=churn")),
    }
}

/// Output topic flags (`[worker.topics]`).
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    /// [default: predictions]
    #[arg(long)]
    pub predictions: Option<String>,
    /// [default: alerts]
    #[arg(long)]
    pub alerts_topic: Option<String>,
    /// [default: dlq]
    #[arg(long)]
    pub dlq: Option<String>,
    /// Predictions of the shadow version (never alerts) [default: predictions.shadow]
    #[arg(long)]
    pub shadow_topic: Option<String>,
}

impl TopicArgs {
    pub fn flags(&self, f: &mut Flags) {
        f.set(
            "worker.topics.predictions",
            "--predictions",
            self.predictions.as_ref(),
        );
        f.set(
            "worker.topics.alerts",
            "--alerts-topic",
            self.alerts_topic.as_ref(),
        );
        f.set("worker.topics.dlq", "--dlq", self.dlq.as_ref());
        f.set(
            "worker.topics.shadow",
            "--shadow-topic",
            self.shadow_topic.as_ref(),
        );
    }
}
