//! Command-line interface. The flags of `work`, `produce`, `score`, `drift watch` and
//! `demo` are the top layer of the configuration ([`crate::config`]): they have no defaults
//! here and override the file and the environment only when given. `-X key=value` passes
//! librdkafka properties through, applied last. Every other flag (per-run inputs: a folder,
//! a records file, the drift tools' columns) has a clap `env = "ARGUS_..."`; the audit in
//! [`crate::env_ref`] checks that no flag lacks both.
use crate::config::Flags;
use crate::flags::{parse_duration, parse_label_map, FollowArgs, KafkaFlags, ModelArgs, TopicArgs};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "argus",
    version,
    about = "Kafka consumers that run ONNX models on live streams",
    after_help = "Every flag can be set from the environment: settings as ARGUS_<TABLE>__<KEY> \
                  (e.g. ARGUS_WORKER__MAX_BATCH), librdkafka properties as \
                  ARGUS_KAFKA__OPTIONS__<NAME>; `argus config env` lists every flag's variable. \
                  Exit codes: 0 done, 1 failed, 3 drift found (drift compare --fail-on-drift), \
                  64 bad usage or configuration, 65 bad input data."
)]
pub struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", env = "ARGUS_LOG_FORMAT", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Configuration file (TOML: [kafka], [worker], [producer], [drift], [score], [demo],
    /// [registry], [serve]);
    /// see argus.example.toml. The environment (ARGUS_<TABLE>__<KEY>) and flags override it.
    #[arg(long, global = true, env = "ARGUS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Zero-setup demo: embedded broker, synthetic cameras, workers, alerts, summary.
    Demo(DemoFlags),
    /// Produce frames to a topic.
    Produce(ProduceArgs),
    /// Run a worker: consume frames, run the model, publish predictions and alerts.
    Work(WorkArgs),
    /// Daily batch: score a bounded range of a topic, publish the results, write the
    /// at-risk report (CSV) and exit with a summary.
    Score(crate::score::ScoreFlags),
    /// Serve the model over HTTP: Open Inference Protocol v2 (KServe, Seldon, Triton
    /// clients) and /v1/predict (a JPEG, PNG or JSON record in, a prediction out).
    Serve(crate::serve::ServeFlags),
    /// Drift: reference profiles, the sidecar, offline comparison.
    #[command(subcommand)]
    Drift(crate::drift::DriftCommand),
    /// The model registry: register, list, show, promote, rollback, archive versions.
    #[command(subcommand)]
    Model(crate::model::ModelCommand),
    /// Why the model said so, offline: the evidence an alert carries (feature attributions
    /// for a record, an occlusion saliency grid for an image), for one input.
    Explain(crate::explain::ExplainArgs),
    /// Publish ground-truth labels (argus.label/v1) from a CSV or JSON-lines file.
    Label(crate::label::LabelArgs),
    /// Export verified samples (labelled inputs with the prediction and model version that
    /// scored them) for the next training run.
    ExportTraining(crate::export::ExportFlags),
    /// Print the effective configuration of a role (TOML), each value with where it came
    /// from (default, file, env, flag); secrets redacted.
    Config(ConfigArgs),
}

impl Command {
    /// The configuration flags of this command (`drift profile` and `drift compare` read no
    /// configuration: their flags are their own, each with a clap `env`).
    pub fn flags(&self, f: &mut Flags) {
        match self {
            Command::Demo(a) => a.flags(f),
            Command::Produce(a) => a.flags(f),
            Command::Work(a) => a.flags(f),
            Command::Score(a) => a.flags(f),
            Command::Serve(a) => a.flags(f),
            Command::Drift(crate::drift::DriftCommand::Watch(w)) => w.flags(f),
            Command::Drift(_) | Command::Explain(_) => {}
            Command::Model(m) => m.flags(f),
            Command::ExportTraining(a) => a.flags(f),
            Command::Label(a) => a.flags(f),
            Command::Config(a) => a.kafka.flags(f),
        }
    }
}

/// `argus config ROLE` with this prints the environment reference instead of a role.
pub const ENV_REFERENCE: &str = "env";

/// `argus config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// kafka, worker, producer, drift, score, demo, registry or serve [default: all]; or `env`: every flag
    /// of every command with its environment variable (Markdown).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(
        crate::config::ROLES.iter().chain(&[ENV_REFERENCE])
    ))]
    pub role: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaFlags,
}

impl SyntheticArgs {
    pub fn flags(&self, f: &mut Flags) {
        let k = "producer.synthetic";
        f.set(&format!("{k}.cameras"), "--cameras", self.cameras.as_ref());
        f.set(&format!("{k}.fps"), "--fps", self.fps.as_ref());
        f.set(&format!("{k}.width"), "--width", self.width.as_ref());
        f.set(&format!("{k}.height"), "--height", self.height.as_ref());
        f.set(&format!("{k}.seed"), "--seed", self.seed.as_ref());
        f.set(
            &format!("{k}.jpeg_quality"),
            "--jpeg-quality",
            self.jpeg_quality.as_ref(),
        );
    }

    /// The producer's source: the configured cameras plus `--brighten`.
    pub fn source(
        &self,
        configured: &argus_producer::SyntheticSource,
    ) -> argus_producer::SyntheticSource {
        argus_producer::SyntheticSource {
            brighten: self.brighten,
            ..configured.clone()
        }
    }
}

/// `argus work` flags (`[worker]`).
#[derive(Debug, Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Input topic (repeatable or comma-separated) [default: frames.default].
    #[arg(long = "input", value_delimiter = ',')]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub follow: FollowArgs,
    /// Consumer group [default: argus-workers].
    #[arg(long)]
    pub group: Option<String>,
    /// Worker id in outputs and logs (default: hostname-pid).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Address for /metrics and /healthz [default: 127.0.0.1:9100].
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Create missing output topics with this many partitions (0 = don't create)
    /// [default: 6].
    #[arg(long)]
    pub create_topics: Option<i32>,
    /// How long shutdown waits for in-flight work [default: 20s].
    #[arg(long, value_parser = parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Exactly-once: outputs and input offsets are committed in Kafka transactions
    /// (transactional id `argus-<group>-<worker id>`: give every worker a distinct, stable
    /// --worker-id; a restarted worker then fences its predecessor).
    #[arg(long)]
    pub exactly_once: bool,
    /// Exactly-once: how often the open transaction is committed [default: 100ms].
    #[arg(long, value_parser = parse_duration)]
    pub transaction_interval: Option<Duration>,
    /// Static membership: `group.instance.id` = the worker id, so a restart within
    /// `session.timeout.ms` gets its partitions back without a rebalance.
    #[arg(long)]
    pub static_membership: bool,
    /// Consumer group protocol: classic (cooperative-sticky) or consumer (KIP-848,
    /// brokers ≥ 4.0) [default: classic].
    #[arg(long, value_parser = ["classic", "consumer"])]
    pub group_protocol: Option<String>,
}

impl WorkArgs {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
        self.model.flags(f);
        self.topics.flags(f);
        f.list("worker.inputs", "--input", &self.inputs);
        self.follow.flags(f);
        f.set("worker.group", "--group", self.group.as_ref());
        f.set("worker.worker_id", "--worker-id", self.worker_id.as_ref());
        f.set(
            "worker.metrics_addr",
            "--metrics-addr",
            self.metrics_addr.as_ref(),
        );
        f.set(
            "worker.create_topics",
            "--create-topics",
            self.create_topics.as_ref(),
        );
        f.duration(
            "worker.drain_timeout",
            "--drain-timeout",
            self.drain_timeout,
        );
        f.switch("worker.exactly_once", "--exactly-once", self.exactly_once);
        f.duration(
            "worker.transaction_interval",
            "--transaction-interval",
            self.transaction_interval,
        );
        f.switch(
            "worker.static_membership",
            "--static-membership",
            self.static_membership,
        );
        f.set(
            "worker.group_protocol",
            "--group-protocol",
            self.group_protocol.as_ref(),
        );
    }
}

/// `argus produce` flags (`[producer]`).
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    /// Topic to produce to [default: frames.default].
    #[arg(long)]
    pub topic: Option<String>,
    /// Stop after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Overall frames per second at most.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Message size limit (must match the broker's message.max.bytes) [default: 1000000].
    #[arg(long)]
    pub max_message_bytes: Option<usize>,
    /// Frames waiting while the broker is away, at most this many bytes; a live source
    /// (synthetic, folder) drops the oldest beyond it and goes on, a records file waits
    /// [default: 67108864 = 64 MiB].
    #[arg(long)]
    pub backlog_bytes: Option<usize>,
    /// Publish the truth the source knows (synthetic scenes; a records file's
    /// --label-column) as argus.label/v1 labels to this topic.
    #[arg(long, env = "ARGUS_PRODUCE_LABELS_TOPIC")]
    pub labels_topic: Option<String>,
    /// Share of inputs labelled, (0, 1] (chosen by a hash of the input's id).
    #[arg(long, env = "ARGUS_PRODUCE_LABEL_SHARE", default_value_t = 1.0)]
    pub label_share: f64,
    /// How long after an input's delivery its label is published (verification arrives
    /// later in the field); labels still waiting when the run ends go out then.
    #[arg(long, env = "ARGUS_PRODUCE_LABEL_DELAY", value_parser = parse_duration, default_value = "0s")]
    pub label_delay: Duration,
    #[command(subcommand)]
    pub source: SourceArgs,
}

impl ProduceArgs {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
        f.set("producer.topic", "--topic", self.topic.as_ref());
        f.set("producer.count", "--count", self.count.as_ref());
        f.duration("producer.duration", "--duration", self.duration);
        f.set(
            "producer.rate_limit",
            "--rate-limit",
            self.rate_limit.as_ref(),
        );
        f.set(
            "producer.max_message_bytes",
            "--max-message-bytes",
            self.max_message_bytes.as_ref(),
        );
        f.set(
            "producer.backlog_bytes",
            "--backlog-bytes",
            self.backlog_bytes.as_ref(),
        );
        if let SourceArgs::Synthetic(s) = &self.source {
            s.flags(f);
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum SourceArgs {
    /// Synthetic cameras with scenes that sometimes show a person.
    Synthetic(SyntheticArgs),
    /// Every JPEG/PNG in a folder.
    Dir(DirArgs),
    /// Rows of a CSV or JSON-lines file (or stdin) as records, keyed by a column.
    Records(RecordsArgs),
    /// A video file (anything ffmpeg reads), sampled to --fps, as one camera.
    Video(VideoArgs),
    /// An RTSP camera stream (ffmpeg), sampled to --fps; reconnects with backoff.
    Rtsp(RtspArgs),
    /// An MJPEG-over-HTTP stream, or with --snapshot a JPEG snapshot URL polled at --fps;
    /// reconnects with backoff.
    Mjpeg(MjpegArgs),
}

/// What every video source takes (ffmpeg decodes; frames are re-encoded as JPEG).
#[derive(Debug, Clone, Args)]
pub struct VideoCommon {
    /// Camera id: the Kafka key and source id of every frame [default: the file name].
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_CAMERA")]
    pub camera: Option<String>,
    /// Frames per second sampled from the stream.
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_FPS", default_value_t = 5.0)]
    pub fps: f64,
    /// JPEG quality as ffmpeg's -q:v, 2 (best) to 31 (smallest).
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_JPEG_QSCALE", default_value_t = 5)]
    pub jpeg_qscale: u8,
    /// Scale frames wider than this down to it (aspect kept).
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_MAX_WIDTH")]
    pub max_width: Option<u32>,
    /// Scale frames taller than this down to it (aspect kept).
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_MAX_HEIGHT")]
    pub max_height: Option<u32>,
    /// No frame for this long: restart ffmpeg (live sources, looped files).
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_STALL", value_parser = parse_duration, default_value = "10s")]
    pub stall: Duration,
    /// The ffmpeg binary.
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
}

impl VideoCommon {
    /// The source for `input`, camera `fallback` unless --camera names one.
    pub fn source(&self, input: String, fallback: &str) -> argus_producer::VideoSource {
        let mut v = argus_producer::VideoSource::new(
            input,
            self.camera.clone().unwrap_or_else(|| fallback.to_owned()),
        );
        v.fps = self.fps;
        v.jpeg_qscale = self.jpeg_qscale;
        v.max_width = self.max_width;
        v.max_height = self.max_height;
        v.stall = self.stall;
        v.ffmpeg = self.ffmpeg.clone();
        v
    }
}

/// `argus produce video`.
#[derive(Debug, Clone, Args)]
pub struct VideoArgs {
    /// The video file.
    pub path: PathBuf,
    #[command(flatten)]
    pub common: VideoCommon,
    /// Start again at the end.
    #[arg(long = "loop", env = "ARGUS_PRODUCE_VIDEO_LOOP", value_parser = BoolishValueParser::new())]
    pub looped: bool,
    /// Read at the video's own speed, as a camera would send it (else as fast as ffmpeg
    /// decodes; frames then wait for room rather than being dropped).
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_REALTIME", value_parser = BoolishValueParser::new())]
    pub realtime: bool,
}

/// `argus produce rtsp`.
#[derive(Debug, Clone, Args)]
pub struct RtspArgs {
    /// rtsp://[user:password@]host[:port]/path
    pub url: String,
    #[command(flatten)]
    pub common: VideoCommon,
    /// RTSP transport: tcp or udp.
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_TRANSPORT", default_value = "tcp")]
    pub transport: argus_producer::RtspTransport,
}

/// `argus produce mjpeg`.
#[derive(Debug, Clone, Args)]
pub struct MjpegArgs {
    /// http(s)://… of the MJPEG stream (or of the snapshot with --snapshot).
    pub url: String,
    #[command(flatten)]
    pub common: VideoCommon,
    /// The URL returns one JPEG per request: poll it at --fps.
    #[arg(long, env = "ARGUS_PRODUCE_VIDEO_SNAPSHOT", value_parser = BoolishValueParser::new())]
    pub snapshot: bool,
}

/// `argus produce records`.
#[derive(Debug, Clone, Args)]
pub struct RecordsArgs {
    /// The file (.csv with a header row, or .jsonl); `-` reads stdin (with --format).
    pub path: String,
    /// The key column (Kafka key and source id), e.g. customer_id.
    #[arg(long, env = "ARGUS_PRODUCE_RECORDS_KEY")]
    pub key: String,
    /// csv or jsonl [default: from the file's extension].
    #[arg(long, env = "ARGUS_PRODUCE_RECORDS_FORMAT")]
    pub format: Option<argus_producer::RecordFormat>,
    /// Declare a column's type, COLUMN=bool|int|float|text (repeatable; wins over inference).
    #[arg(long = "type", env = "ARGUS_PRODUCE_RECORDS_TYPE", value_name = "COLUMN=TYPE", value_parser = parse_column_type, value_delimiter = ',')]
    pub types: Vec<(String, argus_producer::ColumnType)>,
    /// CSV rows read ahead to infer the column types.
    #[arg(long, env = "ARGUS_PRODUCE_RECORDS_INFER_ROWS", default_value_t = 1000)]
    pub infer_rows: usize,
    /// A bad row (reported with its line number either way): skip it, or stop the run.
    #[arg(long, env = "ARGUS_PRODUCE_RECORDS_ON_BAD_ROW", default_value = "skip", value_parser = ["skip", "fail"])]
    pub on_bad_row: String,
    /// The column holding the truth (e.g. churned): removed from every record before it is
    /// sent, and with --labels-topic published as its label.
    #[arg(long, env = "ARGUS_PRODUCE_RECORDS_LABEL_COLUMN")]
    pub label_column: Option<String>,
    /// VALUE=LABEL pairs mapping the label column to the model's labels (e.g.
    /// 1=churn,0=stay); other values are used as they are.
    #[arg(long, env = "ARGUS_PRODUCE_RECORDS_LABEL_MAP", value_delimiter = ',', value_parser = parse_label_map)]
    pub label_map: Vec<(String, String)>,
}

fn parse_column_type(s: &str) -> Result<(String, argus_producer::ColumnType), String> {
    let (c, t) = s
        .split_once('=')
        .ok_or_else(|| format!("expected COLUMN=TYPE (e.g. zip=text), got {s:?}"))?;
    Ok((c.trim().to_string(), t.trim().parse()?))
}

/// The synthetic cameras' flags (`[producer.synthetic]`; defaults in
/// [`argus_producer::SyntheticSource`]).
#[derive(Debug, Clone, Args)]
pub struct SyntheticArgs {
    /// Number of cameras [default: 4].
    #[arg(long)]
    pub cameras: Option<u32>,
    /// Frames per second per camera [default: 5].
    #[arg(long)]
    pub fps: Option<f64>,
    /// [default: 640]
    #[arg(long)]
    pub width: Option<u32>,
    /// [default: 480]
    #[arg(long)]
    pub height: Option<u32>,
    /// Scenes are deterministic from this seed [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// [default: 85]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Option<u8>,
    /// Brighten one camera from a frame on, CAMERA=GAIN@SEQUENCE (e.g. 2=1.4@50), to see the
    /// drift sidecar react. A per-run input, not a setting (`produce synthetic` and `demo`).
    #[arg(long, env = "ARGUS_SYNTHETIC_BRIGHTEN", value_parser = parse_brighten)]
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
    #[arg(long, env = "ARGUS_PRODUCE_DIR_CAMERA", default_value = "cam-dir")]
    pub camera: String,
    /// Frames per second.
    #[arg(long, env = "ARGUS_PRODUCE_DIR_FPS", default_value_t = 5.0)]
    pub fps: f64,
    /// Start again from the first file after the last.
    #[arg(long = "loop", env = "ARGUS_PRODUCE_DIR_LOOP", value_parser = BoolishValueParser::new())]
    pub looped: bool,
}

/// `argus demo` flags (`[demo]`; model and pipeline in `[worker]`, cameras in
/// `[producer.synthetic]`).
#[derive(Debug, Args)]
pub struct DemoFlags {
    /// Run against a real cluster instead of the embedded broker.
    #[arg(long)]
    pub brokers: Option<String>,
    /// How long to run (then drain and print the summary); Ctrl-C stops earlier
    /// [default: 20s].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// The synthetic cameras.
    #[command(flatten)]
    pub cameras: SyntheticArgs,
    /// [default: 2]
    #[arg(long)]
    pub workers: Option<usize>,
    /// Serve /metrics and /healthz here while the demo runs.
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Print at most this many alerts (the summary counts all) [default: 40].
    #[arg(long)]
    pub max_printed_alerts: Option<u64>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Run without the drift sidecar.
    #[arg(long)]
    pub no_drift: bool,
    /// Event-time pane of the demo's drift sidecar (windows are 3 panes) [default: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub drift_pane: Option<Duration>,
    /// Do not brighten a camera halfway through (by default camera 2 gets 40 % brighter
    /// after half the duration, so the sidecar has something to find; --brighten overrides).
    #[arg(long)]
    pub no_shift: bool,
    /// Serve the bundle as it is: no registry, no live switch (by default version 2 — the
    /// same weights, a stricter alert threshold — goes to a canary on half the cameras a
    /// third into the run and to production two thirds in).
    #[arg(long)]
    pub no_swap: bool,
    /// Alerts without evidence (by default the demo's alerts carry it: attributions or a
    /// saliency grid).
    #[arg(long)]
    pub no_evidence: bool,
    /// Run on a video file (e.g. /usr/share/doc/opencv-doc/examples/data/vtest.avi)
    /// instead of synthetic cameras: the person detector, demo zones, snapshots of zone
    /// alerts (no registry switch, drift or ground truth).
    #[arg(long)]
    pub video: Option<PathBuf>,
}

impl DemoFlags {
    pub fn flags(&self, f: &mut Flags) {
        f.set("demo.brokers", "--brokers", self.brokers.as_ref());
        f.duration("demo.duration", "--duration", self.duration);
        self.cameras.flags(f);
        f.set("demo.workers", "--workers", self.workers.as_ref());
        f.set(
            "demo.metrics_addr",
            "--metrics-addr",
            self.metrics_addr.as_ref(),
        );
        f.set(
            "demo.max_printed_alerts",
            "--max-printed-alerts",
            self.max_printed_alerts.as_ref(),
        );
        self.model.flags(f);
        f.switch("demo.no_drift", "--no-drift", self.no_drift);
        f.duration("demo.drift_pane", "--drift-pane", self.drift_pane);
        f.switch("demo.no_shift", "--no-shift", self.no_shift);
        f.switch("demo.no_swap", "--no-swap", self.no_swap);
        f.switch("demo.no_evidence", "--no-evidence", self.no_evidence);
        f.set(
            "demo.video",
            "--video",
            self.video
                .as_ref()
                .map(|p| p.display().to_string())
                .as_ref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::parse_rule;

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
