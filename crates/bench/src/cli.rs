//! The `argus-bench` command line: the flags `argus bench` and `argus drift bench` took,
//! mapped onto the library's typed options, and those of the newer `serve` and `evidence`.
use argus_bench::{DriftBenchOptions, EvidenceBenchOptions, FrameSpec, WorkerBenchOptions};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "argus-bench",
    version,
    about = "Benchmarks of Argus on a real broker: the worker, and the drift side"
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
    /// Benchmark on a real broker: the engine alone, the offline pipeline, one worker
    /// draining a topic, and end-to-end latency at 50% and 80% of its capacity.
    Worker(WorkerArgs),
    /// Benchmark the drift side: summary ingest rate, window evaluation time, and worker
    /// throughput with and without a sidecar on a real broker.
    Drift(DriftArgs),
    /// Benchmark `argus serve` against a FastAPI + uvicorn + onnxruntime server on the same
    /// bundle, requests and load generator (no broker; `bench/serve` sets up the venv).
    Serve(ServeArgs),
    /// Benchmark evidence on alerts: TreeSHAP, sampling Shapley and occlusion per alert
    /// next to the model's own cost (offline), and worker throughput with evidence on and
    /// off on a real broker.
    Evidence(EvidenceArgs),
}

/// `argus-bench evidence` flags.
#[derive(Debug, Args)]
pub struct EvidenceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Stages to run: 1 cost per alert (offline, no broker), 2 worker throughput with
    /// evidence on and off (broker), 3 a live stream with evidence off and on (broker).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub stages: Vec<u8>,
    /// Stage 3: records sent per second.
    #[arg(long, default_value_t = 1000.0)]
    pub live_rate: f64,
    /// Stage 3: seconds of records sent per run.
    #[arg(long, default_value_t = 30.0)]
    pub live_seconds: f64,
    /// The tabular bundle (with [explain] covers and background).
    #[arg(long, default_value = "models/churn")]
    pub model: PathBuf,
    /// The records, CSV or JSON lines (read as `argus produce` reads them).
    #[arg(long, default_value = "tests/fixtures/churn/customers-10k.csv")]
    pub records: PathBuf,
    /// The records' key column.
    #[arg(long, default_value = "customer_id")]
    pub key: String,
    /// Stage 1: records explained with TreeSHAP (the file cycled if shorter).
    #[arg(long, default_value_t = 2000)]
    pub explain_rows: usize,
    /// Stage 1: records explained by sampling Shapley (the bundle without its covers).
    #[arg(long, default_value_t = 200)]
    pub sampling_rows: usize,
    /// Stage 1: image bundles explained by occlusion (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "models/camera-person")]
    pub image_models: Vec<PathBuf>,
    /// Stage 1: synthetic frames explained per image bundle.
    #[arg(long, default_value_t = 50)]
    pub image_frames: usize,
    /// Stage 1: explain the JPEG/PNG files of this folder (cycled to --image-frames)
    /// instead of synthetic frames, e.g. for a detector, which finds no one in them.
    #[arg(long)]
    pub image_dir: Option<PathBuf>,
    /// Stage 1: frame width in pixels.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Stage 1: frame height in pixels.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Stage 1: scenes are deterministic from this seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stage 1: JPEG quality of the frames.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Stage 2: records pre-filled and drained per run (the file cycled). Without evidence a
    /// worker drains ~50k churn records/s on 2 cores: fewer would time sub-second drains.
    #[arg(long, default_value_t = 100_000)]
    pub drain_records: u64,
    /// Stage 2: share of the records the alert rule is to alert on (its threshold is their
    /// probability's quantile at 1 − share).
    #[arg(long, default_value_t = 0.05)]
    pub alert_share: f64,
    /// Stage 2: rounds of the four drains (off, on, demo on, demo off; reversed every other
    /// round).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Stage 2: skip the untimed warm-up drain.
    #[arg(long)]
    pub no_warmup: bool,
    /// Before stage 1 and before each drain, wait up to this long for the machine to be
    /// ≥ 85% idle for 2 s; 0 = do not wait.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub quiet_wait: Duration,
    /// Stage 2: partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Stage 2, for experiments: the evidence pool's threads [default: the worker's].
    #[arg(long)]
    pub evidence_threads: Option<usize>,
    /// Stage 2, for experiments: the evidence pool's queue [default: the worker's].
    #[arg(long)]
    pub evidence_queue: Option<usize>,
    /// Stage 2, for experiments: how long an alert waits for its evidence [default: the
    /// worker's].
    #[arg(long, value_parser = parse_duration)]
    pub evidence_deadline: Option<Duration>,
    /// Stage 2, for experiments: alerts on inputs older than this skip evidence as
    /// `backlog` (`0s`: never) [default: the worker's, 2s].
    #[arg(long, value_parser = parse_duration)]
    pub evidence_skip_older_than: Option<Duration>,
    /// Stage 2, for experiments: the evidence threads' CPU priority [default: the
    /// worker's, idle].
    #[arg(long, value_parser = ["idle", "normal"])]
    pub evidence_priority: Option<String>,
    /// Stage 2, for experiments: the worker's bound on inputs in flight [default: the
    /// worker's].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Pid of the Kafka broker whose CPU time is reported [default: every local process with
    /// `kafka.Kafka` on its command line].
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Leave the benchmark's topics on the broker.
    #[arg(long)]
    pub keep_topics: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl EvidenceArgs {
    /// The worker's default `[worker.evidence]` with the overrides given.
    fn evidence(&self) -> argus_worker::config::EvidenceSettings {
        let d = argus_worker::config::EvidenceSettings::default();
        argus_worker::config::EvidenceSettings {
            threads: self.evidence_threads.unwrap_or(d.threads),
            queue: self.evidence_queue.unwrap_or(d.queue),
            deadline: self.evidence_deadline.unwrap_or(d.deadline),
            skip_older_than: self.evidence_skip_older_than.unwrap_or(d.skip_older_than),
            priority: match self.evidence_priority.as_deref() {
                Some("normal") => argus_worker::config::EvidencePriority::Normal,
                Some(_) => argus_worker::config::EvidencePriority::Idle,
                None => d.priority,
            },
            ..d
        }
    }

    /// The library's options.
    pub fn options(&self) -> EvidenceBenchOptions {
        EvidenceBenchOptions {
            kafka: self.kafka.settings(),
            stages: self.stages.clone(),
            live_rate: self.live_rate,
            live_seconds: self.live_seconds,
            model: self.model.clone(),
            records: self.records.clone(),
            key: self.key.clone(),
            explain_rows: self.explain_rows,
            sampling_rows: self.sampling_rows,
            image_models: self.image_models.clone(),
            frames_spec: FrameSpec {
                cameras: 4,
                width: self.width,
                height: self.height,
                seed: self.seed,
                jpeg_quality: self.jpeg_quality,
                distinct_frames: self.image_frames,
            },
            image_dir: self.image_dir.clone(),
            evidence: self.evidence(),
            max_in_flight: self.max_in_flight,
            drain_records: self.drain_records,
            alert_share: self.alert_share,
            rounds: self.rounds,
            no_warmup: self.no_warmup,
            quiet_wait: self.quiet_wait,
            partitions: self.partitions,
            broker_pid: self.broker_pid,
            keep_topics: self.keep_topics,
            json: self.json.clone(),
        }
    }
}

/// `argus-bench serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The `argus` binary.
    #[arg(long, default_value = "target/release/argus")]
    pub argus: PathBuf,
    /// Extra `argus serve` flag (repeatable), e.g. --argus-arg=--engine --argus-arg=onnxruntime.
    #[arg(long = "argus-arg", allow_hyphen_values = true)]
    pub argus_args: Vec<String>,
    /// The Python with the baseline's requirements (bench/python/requirements-serve.txt).
    #[arg(long, default_value = "python3")]
    pub python: PathBuf,
    /// The baseline server script.
    #[arg(long, default_value = "bench/python/serve_baseline.py")]
    pub script: PathBuf,
    /// Bundles to serve (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "models/churn,models/camera-person"
    )]
    pub models: Vec<PathBuf>,
    /// Client counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub clients: Vec<usize>,
    /// Requests per run.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Runs per server and client count (medians reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Model threads of each server.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the Markdown report here too.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ServeArgs {
    pub fn options(&self) -> argus_bench::ServeBenchOptions {
        argus_bench::ServeBenchOptions {
            argus: self.argus.clone(),
            argus_args: self.argus_args.clone(),
            python: self.python.clone(),
            script: self.script.clone(),
            models: self.models.clone(),
            clients: self.clients.clone(),
            requests: self.requests,
            rounds: self.rounds,
            threads: self.threads,
            out: self.out.clone(),
        }
    }
}

/// Kafka connection flags (as `argus`'s).
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, host:port[,host:port].
    #[arg(long, env = "ARGUS_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// librdkafka property passed through verbatim, e.g. -X security.protocol=ssl (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = argus_kafka::parse_property)]
    pub kafka_option: Vec<(String, String)>,
}

impl KafkaArgs {
    fn settings(&self) -> argus_kafka::KafkaSettings {
        let mut s = argus_kafka::KafkaSettings::new(&self.brokers);
        for (k, v) in &self.kafka_option {
            s.options.insert(k.clone(), v.clone());
        }
        s
    }
}

/// Which inference engine runs the model (as `argus`'s).
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Inference engine: tract (pure Rust), onnxruntime (needs a build with `--features
    /// onnxruntime` and libonnxruntime), trees (tree ensembles), or auto (each that loads the
    /// model is timed at load time; the fastest is kept) [default: the manifest's, else from
    /// the model's graph: trees for tree ensembles, onnxruntime (if built in) for depthwise
    /// convolutions, else tract].
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
    fn options(&self) -> argus_model::EngineOptions {
        argus_model::EngineOptions {
            kind: self.engine,
            concurrency: 1,
            intra_threads: self.onnxruntime_threads,
            onnxruntime_lib: self.onnxruntime_lib.clone(),
        }
    }
}

/// `argus-bench worker` flags (what `argus bench` took).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Model bundle directory (manifest.toml + model.onnx).
    #[arg(long, default_value = "models/camera-person")]
    pub model: PathBuf,
    /// Frames run through the offline pipeline and pre-filled into the worker's topic.
    #[arg(long, default_value_t = 5000)]
    pub frames: u64,
    /// How long the fixed-rate producer runs at each load level.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub latency_duration: Duration,
    /// Load levels for the latency stage, as fractions of the measured worker capacity.
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.8")]
    pub loads: Vec<f64>,
    /// Inputs/s the load levels are fractions of, instead of this run's drain (still
    /// measured and reported): the same rates in every run of an A/B comparison, whose
    /// drains differ by up to a third on a shared machine.
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Batch sizes for the tract-alone stage (1 is always measured).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub batch_sizes: Vec<usize>,
    /// Time spent per batch size in the tract-alone stage.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub tract_duration: Duration,
    /// The worker's model threads [default: the worker's default].
    #[arg(long)]
    pub inference_threads: Option<usize>,
    /// The worker's decode/preprocess threads [default: the worker's default].
    #[arg(long)]
    pub decode_threads: Option<usize>,
    /// The worker's largest batch per model call [default: the worker's default].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// The worker's bound on inputs in flight [default: the worker's default].
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Threads of the offline pipeline, each decoding and inferring whole inputs [default:
    /// the worker's decode or inference threads, whichever is more].
    #[arg(long)]
    pub offline_threads: Option<usize>,
    /// Records (CSV or JSON lines, read as `argus produce records` reads them) to send
    /// instead of synthetic frames, cycled: for a tabular model such as `models/churn`.
    #[arg(long, value_name = "FILE")]
    pub records: Option<PathBuf>,
    /// The records' key column (the Kafka key), with `--records`.
    #[arg(long, default_value = "customer_id", requires = "records")]
    pub key: String,
    /// Distinct synthetic frames rendered up front and cycled through.
    #[arg(long, default_value_t = 128)]
    pub distinct_frames: usize,
    /// Synthetic cameras (Kafka keys).
    #[arg(long, default_value_t = 4)]
    pub cameras: u32,
    /// Frame width in pixels.
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    /// Frame height in pixels.
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Scenes are deterministic from this seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// JPEG quality of the frames.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Partitions of the benchmark's input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Leave the benchmark's topics on the broker (they are deleted by default).
    #[arg(long)]
    pub keep_topics: bool,
    /// librdkafka property for the worker's consumer and producer only (after `-X`), e.g.
    /// `--worker-option linger.ms=0` (repeatable). `-X` applies to every client of the run:
    /// the worker's, the load generator and the predictions subscriber.
    #[arg(long = "worker-option", value_name = "KEY=VALUE", value_parser = argus_kafka::parse_property)]
    pub worker_options: Vec<(String, String)>,
    /// Pid of the Kafka broker whose CPU time is reported [default: every local process
    /// with `kafka.Kafka` on its command line].
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Run only the stages without Kafka (engine alone, offline pipeline); with `--json`,
    /// write those (`bench/run` uses this for "the engine's own speed").
    #[arg(long)]
    pub offline_only: bool,
    /// Stages 3 and 4 run a bare consume → produce relay (no model, no alerts: decode the
    /// envelope, write a minimal prediction, store the offset) in place of the worker: the
    /// latency and CPU this machine and broker cost at each rate before any model. With
    /// `--capacity` set to a worker run's drain rate it meets that run's load levels.
    #[arg(long)]
    pub relay: bool,
}

/// `argus-bench drift` flags (what `argus drift bench` took).
#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Stages to run: 1 ingest, 2 window evaluation, 3 worker with/without the sidecar.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub stages: Vec<u8>,

    /// Stage 1: rows fed into the summary per profile (values = rows × features).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Stage 1: numeric features of the profiles fed.
    #[arg(long, value_delimiter = ',', default_value = "20,100")]
    pub ingest_features: Vec<usize>,
    /// Stage 1: timed passes per loop (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub ingest_passes: usize,

    /// Stage 2: numeric features of the evaluated windows.
    #[arg(long, default_value_t = 100)]
    pub eval_features: usize,
    /// Rows of the synthetic reference (stages 1 and 2; its samples keep up to 100k rows).
    #[arg(long, default_value_t = 100_000)]
    pub reference_rows: usize,
    /// Stage 2: rows per evaluated window (and per partial summary).
    #[arg(long, default_value_t = 5000)]
    pub window_rows: u64,
    /// Stage 2: windows evaluated (alternately null and shifted).
    #[arg(long, default_value_t = 60)]
    pub windows: usize,
    /// Stage 2: times each window is evaluated (more samples for p99).
    #[arg(long, default_value_t = 2)]
    pub eval_passes: usize,
    /// Stage 2: shift of every feature in the shifted windows, in reference standard deviations.
    #[arg(long, default_value_t = 0.3)]
    pub shift: f64,
    /// Stage 2: partial summaries merged into one window.
    #[arg(long, default_value_t = 8)]
    pub partials: usize,
    /// Stage 2: timed repetitions of the merge.
    #[arg(long, default_value_t = 50)]
    pub merge_reps: usize,

    /// Stage 3: model bundle directory of the worker.
    #[arg(long, default_value = "models/camera-person")]
    pub model: PathBuf,
    /// Stage 3: frames pre-filled and drained per run.
    #[arg(long, default_value_t = 5000)]
    pub frames: u64,
    /// Stage 3: rounds; each runs the worker alone and once per --sidecar-max-fps (order
    /// reversed every other round).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Stage 3: the sidecar's --max-fps in the runs with a sidecar (1 is its default; 0 =
    /// analyse every frame).
    #[arg(long, value_delimiter = ',', default_value = "1,0")]
    pub sidecar_max_fps: Vec<f64>,
    /// Stage 3: frames per second per camera in the capture times of the pre-filled frames.
    #[arg(long, default_value_t = 5.0)]
    pub fps: f64,
    /// Stage 3: a profile for the sidecar (default: made with `argus drift profile
    /// --synthetic` from the stream's seed and frame size).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Stage 3: synthetic frames of the profile made when --profile is not given.
    #[arg(long, default_value_t = 400)]
    pub profile_frames: u64,
    /// Stage 3: skip the untimed warm-up drain before the first round.
    #[arg(long)]
    pub no_warmup: bool,
    /// Stage 3: before each drain, wait up to this long for the machine to be ≥ 85% idle for
    /// 2 s (other sessions' builds skew a drain); 0 = do not wait.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub quiet_wait: Duration,
    /// Stage 3: distinct synthetic frames rendered up front and cycled through.
    #[arg(long, default_value_t = 128)]
    pub distinct_frames: usize,
    /// Stage 3: synthetic cameras.
    #[arg(long, default_value_t = 4)]
    pub cameras: u32,
    #[arg(long, default_value_t = 640)]
    pub width: u32,
    #[arg(long, default_value_t = 480)]
    pub height: u32,
    /// Stage 3: scene seed of the stream (and of the profile made for it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Stage 3: partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Pid of the Kafka broker whose CPU time is reported [default: every local process with
    /// `kafka.Kafka` on its command line].
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Stage 3: the `argus` binary that runs the sidecar (`argus drift watch`) and makes the
    /// profile (`argus drift profile`) [default: `argus` next to this executable].
    #[arg(long, env = "ARGUS_BIN")]
    pub argus_bin: Option<PathBuf>,
    /// Leave the benchmark's topics on the broker.
    #[arg(long)]
    pub keep_topics: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl WorkerArgs {
    /// The library's options.
    pub fn options(&self) -> WorkerBenchOptions {
        WorkerBenchOptions {
            kafka: self.kafka.settings(),
            worker_options: self.worker_options.clone(),
            engine: self.engine.options(),
            model: self.model.clone(),
            frames: self.frames,
            latency_duration: self.latency_duration,
            loads: self.loads.clone(),
            capacity: self.capacity,
            batch_sizes: self.batch_sizes.clone(),
            tract_duration: self.tract_duration,
            inference_threads: self.inference_threads,
            decode_threads: self.decode_threads,
            max_batch: self.max_batch,
            max_in_flight: self.max_in_flight,
            offline_threads: self.offline_threads,
            records: self.records.clone().map(|path| (path, self.key.clone())),
            frames_spec: FrameSpec {
                cameras: self.cameras,
                width: self.width,
                height: self.height,
                seed: self.seed,
                jpeg_quality: self.jpeg_quality,
                distinct_frames: self.distinct_frames,
            },
            partitions: self.partitions,
            json: self.json.clone(),
            keep_topics: self.keep_topics,
            broker_pid: self.broker_pid,
            offline_only: self.offline_only,
            relay: self.relay,
        }
    }
}

impl DriftArgs {
    /// The library's options; `argus` defaults to the binary next to this one.
    pub fn options(&self) -> DriftBenchOptions {
        let argus = self.argus_bin.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.join("argus")))
                .unwrap_or_else(|| PathBuf::from("argus"))
        });
        DriftBenchOptions {
            kafka: self.kafka.settings(),
            stages: self.stages.clone(),
            rows: self.rows,
            ingest_features: self.ingest_features.clone(),
            ingest_passes: self.ingest_passes,
            eval_features: self.eval_features,
            reference_rows: self.reference_rows,
            window_rows: self.window_rows,
            windows: self.windows,
            eval_passes: self.eval_passes,
            shift: self.shift,
            partials: self.partials,
            merge_reps: self.merge_reps,
            model: self.model.clone(),
            frames: self.frames,
            rounds: self.rounds,
            sidecar_max_fps: self.sidecar_max_fps.clone(),
            fps: self.fps,
            profile: self.profile.clone(),
            profile_frames: self.profile_frames,
            no_warmup: self.no_warmup,
            quiet_wait: self.quiet_wait,
            frames_spec: FrameSpec {
                cameras: self.cameras,
                width: self.width,
                height: self.height,
                seed: self.seed,
                jpeg_quality: self.jpeg_quality,
                distinct_frames: self.distinct_frames,
            },
            partitions: self.partitions,
            argus,
            broker_pid: self.broker_pid,
            keep_topics: self.keep_topics,
            json: self.json.clone(),
        }
    }
}

/// Parses durations such as `500ms`, `20s`, `5m`, `1h` (as `argus` does).
fn parse_duration(s: &str) -> Result<Duration, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_run_flags_parse() {
        // The flags bench/run passes.
        let cli = Cli::try_parse_from([
            "argus-bench",
            "worker",
            "--offline-only",
            "--model",
            "m",
            "--engine",
            "tract",
            "--frames",
            "300",
            "--batch-sizes",
            "1",
            "--inference-threads",
            "2",
            "--json",
            "/tmp/x.json",
            "--tract-duration",
            "2s",
            "-X",
            "linger.ms=1",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Worker(w) = cli.command else {
            panic!("not worker")
        };
        let o = w.options();
        assert!(o.offline_only);
        assert_eq!(o.frames, 300);
        assert_eq!(o.inference_threads, Some(2));
        assert_eq!(o.tract_duration, Duration::from_secs(2));
        assert_eq!(
            o.kafka.options.get("linger.ms").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn a_fixed_capacity_replaces_the_drain_for_the_load_levels() {
        let parse = |extra: &[&str]| {
            let args = ["argus-bench", "worker", "--loads", "0.1,0.2"];
            let cli =
                Cli::try_parse_from(args.iter().chain(extra)).unwrap_or_else(|e| panic!("{e}"));
            let Command::Worker(w) = cli.command else {
                panic!("not worker")
            };
            w.options()
        };
        assert_eq!(parse(&[]).capacity, None);
        let o = parse(&["--capacity", "20000"]);
        assert_eq!(o.capacity, Some(20000.0));
        assert_eq!(o.loads, vec![0.1, 0.2]);
        assert!(Cli::try_parse_from(["argus-bench", "worker", "--capacity", "fast"]).is_err());
    }

    #[test]
    fn evidence_defaults_match_the_docs() {
        let cli = Cli::try_parse_from(["argus-bench", "evidence", "--stages", "1"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Evidence(e) = cli.command else {
            panic!("not evidence")
        };
        let o = e.options();
        assert_eq!(o.stages, vec![1]);
        assert_eq!(o.drain_records, 100_000);
        assert_eq!(o.explain_rows, 2000);
        assert!((o.alert_share - 0.05).abs() < 1e-12);
        assert_eq!(o.image_models, vec![PathBuf::from("models/camera-person")]);
        assert_eq!(o.frames_spec.distinct_frames, 50);
        assert_eq!(
            o.evidence,
            argus_worker::config::EvidenceSettings::default()
        );
        assert_eq!(o.max_in_flight, None);
    }

    #[test]
    fn drift_defaults_match_the_docs() {
        let cli = Cli::try_parse_from(["argus-bench", "drift", "--stages", "1,2"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Drift(d) = cli.command else {
            panic!("not drift")
        };
        let o = d.options();
        assert_eq!(o.stages, vec![1, 2]);
        assert_eq!(o.quiet_wait, Duration::from_secs(15));
        assert_eq!(o.sidecar_max_fps, vec![1.0, 0.0]);
        assert!(o.argus.ends_with("argus"));
    }
}
