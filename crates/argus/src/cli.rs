//! Command-line interface. Every flag can also come from an `ARGUS_*` environment variable;
//! `-X key=value` passes librdkafka properties through, applied last.
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "argus",
    version,
    about = "Kafka consumers that run ONNX models on live streams"
)]
pub struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", env = "ARGUS_LOG_FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Zero-setup demo: embedded broker, synthetic cameras, workers, alerts, summary.
    Demo(DemoArgs),
    /// Produce frames to a topic.
    Produce(ProduceArgs),
    /// Run a worker: consume frames, run the model, publish predictions and alerts.
    Work(WorkArgs),
    /// Daily batch: score a bounded range of a topic, publish the results, write the
    /// at-risk report (CSV) and exit with a summary.
    Score(crate::score::ScoreArgs),
    /// Drift: reference profiles, the sidecar, offline comparison.
    #[command(subcommand)]
    Drift(crate::drift::DriftCommand),
}

/// Kafka connection flags shared by subcommands.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, host:port[,host:port].
    #[arg(long, env = "ARGUS_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// librdkafka property passed through verbatim, e.g. -X security.protocol=ssl (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub kafka_option: Vec<(String, String)>,
}

impl SyntheticArgs {
    /// The producer's source, or a usage error.
    pub fn source(&self) -> Result<argus_producer::SyntheticSource, String> {
        if self.cameras == 0
            || self.width < 32
            || self.height < 32
            || !self.fps.is_finite()
            || self.fps <= 0.0
        {
            return Err(
                "synthetic cameras need --cameras ≥ 1, --fps > 0 and frames of at least 32x32"
                    .into(),
            );
        }
        Ok(argus_producer::SyntheticSource {
            seed: self.seed,
            cameras: self.cameras,
            fps: self.fps,
            width: self.width,
            height: self.height,
            jpeg_quality: self.jpeg_quality,
            brighten: self.brighten,
        })
    }
}

impl KafkaArgs {
    pub fn settings(&self) -> argus_kafka::KafkaSettings {
        let mut s = argus_kafka::KafkaSettings::new(&self.brokers);
        for (k, v) in &self.kafka_option {
            s.options.insert(k.clone(), v.clone());
        }
        s
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses durations such as `500ms`, `20s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}; use e.g. 500ms, 20s, 5m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}; use ms, s, m or h")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An alert rule `LABEL>=THRESHOLD` or `NAME:LABEL>=THRESHOLD`.
pub fn parse_rule(s: &str) -> Result<argus_worker::AlertRule, String> {
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
    Ok(argus_worker::AlertRule {
        name: name.map(str::to_string).unwrap_or_else(|| label.clone()),
        label,
        threshold,
    })
}

/// Model and rule flags shared by `work` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model bundle directory (manifest.toml + model.onnx).
    #[arg(long, env = "ARGUS_MODEL", default_value = "models/camera-person")]
    pub model: PathBuf,
    /// Alert rule LABEL>=THRESHOLD or NAME:LABEL>=THRESHOLD (repeatable) [default: the
    /// bundle's [decision], e.g. person>=0.5 for camera-person, churn>=0.3 for churn].
    #[arg(long = "alert", env = "ARGUS_ALERTS", value_delimiter = ',', value_parser = parse_rule)]
    pub alerts: Vec<argus_worker::AlertRule>,
    /// Classes listed in each prediction's `top`.
    #[arg(long, env = "ARGUS_TOP_K", default_value_t = 5)]
    pub top_k: usize,
    /// Threads running the model per worker (each runs one batch at a time).
    #[arg(long, env = "ARGUS_INFERENCE_THREADS", default_value_t = 1)]
    pub inference_threads: usize,
    /// Threads decoding and preprocessing inputs per worker.
    #[arg(long, env = "ARGUS_DECODE_THREADS", default_value_t = 2)]
    pub decode_threads: usize,
    /// Inputs per model call, at most.
    #[arg(long, env = "ARGUS_MAX_BATCH", default_value_t = 8)]
    pub max_batch: usize,
    /// How long a batch may wait to fill after its first input (0: batch only what is
    /// already queued, never wait).
    #[arg(long, env = "ARGUS_MAX_WAIT", value_parser = parse_duration, default_value = "0ms")]
    pub max_wait: Duration,
    /// Skip inputs captured longer ago than this (their prediction says `stale`).
    #[arg(long, env = "ARGUS_MAX_AGE", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Inputs in flight per worker (consumed, outputs not yet acknowledged); when reached
    /// the worker takes no more (and pauses its partitions if that lasts) until half have
    /// finished. A crash redoes at most this many.
    #[arg(long, env = "ARGUS_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Payload bytes of the inputs in flight per worker, at most (same rule as
    /// --max-in-flight).
    #[arg(long, env = "ARGUS_MAX_IN_FLIGHT_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_in_flight_bytes: usize,
    /// Testing aid: sleep this long before every model call (simulates a slow model).
    #[arg(long, env = "ARGUS_INJECT_DELAY", value_parser = parse_duration, default_value = "0ms", hide = true)]
    pub inject_delay: Duration,
    /// Inputs larger than this go to the DLQ as `oversize`.
    #[arg(long, env = "ARGUS_MAX_INPUT_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_input_bytes: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Which inference engine runs the model.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Inference engine: tract (pure Rust) or onnxruntime (needs a build with
    /// `--features onnxruntime` and libonnxruntime) [default: the manifest's, else tract].
    #[arg(long, env = "ARGUS_ENGINE")]
    pub engine: Option<argus_model::EngineKind>,
    /// The libonnxruntime shared library for `--engine onnxruntime` [default: ORT_DYLIB_PATH,
    /// else the loader's search path]; e.g. the one in PyPI's onnxruntime wheel
    /// (site-packages/onnxruntime/capi/libonnxruntime.so.*).
    #[arg(long, env = "ARGUS_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime intra-op threads per session (0: onnxruntime's default, one per core).
    #[arg(long, env = "ARGUS_ONNXRUNTIME_THREADS", default_value_t = 0)]
    pub onnxruntime_threads: usize,
}

impl EngineArgs {
    /// Engine options for `concurrency` simultaneous model calls.
    pub fn options(&self, concurrency: usize) -> argus_model::EngineOptions {
        argus_model::EngineOptions {
            kind: self.engine,
            concurrency,
            intra_threads: self.onnxruntime_threads,
            onnxruntime_lib: self.onnxruntime_lib.clone(),
        }
    }
}

/// Output topic flags.
#[derive(Debug, Clone, Args)]
pub struct TopicArgs {
    #[arg(long, env = "ARGUS_PREDICTIONS_TOPIC", default_value = "predictions")]
    pub predictions: String,
    #[arg(long, env = "ARGUS_ALERTS_TOPIC", default_value = "alerts")]
    pub alerts_topic: String,
    #[arg(long, env = "ARGUS_DLQ_TOPIC", default_value = "dlq")]
    pub dlq: String,
}

#[derive(Debug, Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Input topic (repeatable or comma-separated).
    #[arg(
        long = "input",
        env = "ARGUS_INPUT",
        value_delimiter = ',',
        default_value = "frames.default"
    )]
    pub inputs: Vec<String>,
    /// Consumer group.
    #[arg(long, env = "ARGUS_GROUP", default_value = "argus-workers")]
    pub group: String,
    /// Worker id in outputs and logs (default: hostname-pid).
    #[arg(long, env = "ARGUS_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Address for /metrics and /healthz.
    #[arg(long, env = "ARGUS_METRICS_ADDR", default_value = "127.0.0.1:9100")]
    pub metrics_addr: SocketAddr,
    /// Create missing output topics with this many partitions (0 = don't create).
    #[arg(long, env = "ARGUS_CREATE_TOPICS", default_value_t = 6)]
    pub create_topics: i32,
    /// How long shutdown waits for in-flight work.
    #[arg(long, env = "ARGUS_DRAIN_TIMEOUT", value_parser = parse_duration, default_value = "20s")]
    pub drain_timeout: Duration,
    /// Exactly-once: outputs and input offsets are committed in Kafka transactions
    /// (transactional id `argus-<group>-<worker id>`: give every worker a distinct, stable
    /// --worker-id; a restarted worker then fences its predecessor).
    #[arg(long, env = "ARGUS_EXACTLY_ONCE")]
    pub exactly_once: bool,
    /// Exactly-once: how often the open transaction is committed.
    #[arg(long, env = "ARGUS_TRANSACTION_INTERVAL", value_parser = parse_duration, default_value = "100ms")]
    pub transaction_interval: Duration,
    /// Static membership: `group.instance.id` = the worker id, so a restart within
    /// `session.timeout.ms` gets its partitions back without a rebalance.
    #[arg(long, env = "ARGUS_STATIC_MEMBERSHIP")]
    pub static_membership: bool,
    /// Consumer group protocol: classic (cooperative-sticky) or consumer (KIP-848,
    /// brokers ≥ 4.0).
    #[arg(long, env = "ARGUS_GROUP_PROTOCOL", default_value = "classic", value_parser = ["classic", "consumer"])]
    pub group_protocol: String,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic to produce to.
    #[arg(long, env = "ARGUS_TOPIC", default_value = "frames.default")]
    pub topic: String,
    /// Stop after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Overall frames per second at most.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Message size limit (must match the broker's message.max.bytes).
    #[arg(long, env = "ARGUS_MAX_MESSAGE_BYTES", default_value_t = 1_000_000)]
    pub max_message_bytes: usize,
    #[command(subcommand)]
    pub source: SourceArgs,
}

#[derive(Debug, Subcommand)]
pub enum SourceArgs {
    /// Synthetic cameras with scenes that sometimes show a person.
    Synthetic(SyntheticArgs),
    /// Every JPEG/PNG in a folder.
    Dir(DirArgs),
    /// Rows of a CSV or JSON-lines file (or stdin) as records, keyed by a column.
    Records(RecordsArgs),
}

/// `argus produce records`.
#[derive(Debug, Clone, Args)]
pub struct RecordsArgs {
    /// The file (.csv with a header row, or .jsonl); `-` reads stdin (with --format).
    pub path: String,
    /// The key column (Kafka key and source id), e.g. customer_id.
    #[arg(long)]
    pub key: String,
    /// csv or jsonl [default: from the file's extension].
    #[arg(long)]
    pub format: Option<argus_producer::RecordFormat>,
    /// Declare a column's type, COLUMN=bool|int|float|text (repeatable; wins over inference).
    #[arg(long = "type", value_name = "COLUMN=TYPE", value_parser = parse_column_type, value_delimiter = ',')]
    pub types: Vec<(String, argus_producer::ColumnType)>,
    /// CSV rows read ahead to infer the column types.
    #[arg(long, default_value_t = 1000)]
    pub infer_rows: usize,
    /// A bad row (reported with its line number either way): skip it, or stop the run.
    #[arg(long, default_value = "skip", value_parser = ["skip", "fail"])]
    pub on_bad_row: String,
}

fn parse_column_type(s: &str) -> Result<(String, argus_producer::ColumnType), String> {
    let (c, t) = s
        .split_once('=')
        .ok_or_else(|| format!("expected COLUMN=TYPE (e.g. zip=text), got {s:?}"))?;
    Ok((c.trim().to_string(), t.trim().parse()?))
}

#[derive(Debug, Clone, Args)]
pub struct SyntheticArgs {
    /// Number of cameras.
    #[arg(long, default_value_t = 4)]
    pub cameras: u32,
    /// Frames per second per camera.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Scenes are deterministic from this seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Brighten one camera from a frame on, CAMERA=GAIN@SEQUENCE (e.g. 2=1.4@50), to see the
    /// drift sidecar react.
    #[arg(long, value_parser = parse_brighten)]
    pub brighten: Option<argus_producer::Brighten>,
}

/// `CAMERA=GAIN@SEQUENCE`.
pub fn parse_brighten(s: &str) -> Result<argus_producer::Brighten, String> {
    let err = || format!("expected CAMERA=GAIN@SEQUENCE (e.g. 2=1.4@50), got {s:?}");
    let (camera, rest) = s.split_once('=').ok_or_else(err)?;
    let (gain, seq) = rest.split_once('@').ok_or_else(err)?;
    let gain: f32 = gain.trim().parse().map_err(|_| err())?;
    if !(gain.is_finite() && gain > 0.0) {
        return Err(format!("gain must be > 0, got {gain}"));
    }
    Ok(argus_producer::Brighten {
        camera: camera
            .trim()
            .trim_start_matches("cam-")
            .parse()
            .map_err(|_| err())?,
        gain,
        from_sequence: seq.trim().parse().map_err(|_| err())?,
    })
}

#[derive(Debug, Clone, Args)]
pub struct DirArgs {
    /// Folder of .jpg/.jpeg/.png files.
    pub path: PathBuf,
    /// Camera id (the Kafka key).
    #[arg(long, default_value = "cam-dir")]
    pub camera: String,
    /// Frames per second.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    /// Start again from the first file after the last.
    #[arg(long = "loop")]
    pub looped: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run against a real cluster instead of the embedded broker.
    #[arg(long, env = "ARGUS_BROKERS")]
    pub brokers: Option<String>,
    /// How long to run (then drain and print the summary); Ctrl-C stops earlier.
    #[arg(long, value_parser = parse_duration, default_value = "20s")]
    pub duration: Duration,
    /// The synthetic cameras.
    #[command(flatten)]
    pub cameras: SyntheticArgs,
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Serve /metrics and /healthz here while the demo runs.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Print at most this many alerts (the summary counts all).
    #[arg(long, default_value_t = 40)]
    pub max_printed_alerts: u64,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Run without the drift sidecar.
    #[arg(long)]
    pub no_drift: bool,
    /// Event-time pane of the demo's drift sidecar (windows are 3 panes).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub drift_pane: Duration,
    /// Do not brighten a camera halfway through (by default camera 2 gets 40 % brighter
    /// after half the duration, so the sidecar has something to find; --brighten overrides).
    #[arg(long)]
    pub no_shift: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn rules_parse() {
        let r = parse_rule("person>=0.7").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (r.name.as_str(), r.label.as_str(), r.threshold),
            ("person", "person", 0.7)
        );
        let r = parse_rule("intruder:person>=0.9").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.name, "intruder");
        assert!(parse_rule("person>1").is_err());
        assert!(parse_rule("person>=1.5").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
