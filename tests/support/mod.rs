//! Helpers for end-to-end tests against a real Kafka broker (`scripts/kafka start`; address
//! from `ARGUS_TEST_BROKERS`, default 127.0.0.1:9092). Every test uses fresh random topic
//! and group names, so tests can share one broker and run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use argus_kafka::rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::util::Timeout;
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_kafka::{KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_producer::{ProduceConfig, Source, SyntheticSource};
use argus_worker::{WorkerConfig, WorkerStats};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A broker address set by a test binary that runs its own broker (see [`use_brokers`]).
static BROKERS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every helper of this test binary use `address` instead of `ARGUS_TEST_BROKERS`
/// (a binary whose test stops and starts a broker of its own); set once, before any helper
/// runs.
pub fn use_brokers(address: &str) {
    BROKERS
        .set(address.to_string())
        .expect("use_brokers is called once, before any helper");
}

/// Broker address for tests.
pub fn brokers() -> String {
    if let Some(b) = BROKERS.get() {
        return b.clone();
    }
    std::env::var("ARGUS_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Client settings for the test broker.
pub fn settings() -> KafkaSettings {
    KafkaSettings::new(brokers())
}

/// `prefix-<random>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Copies the files `src`'s manifest names (the model, and files such as `[explain]`'s) to
/// `dst`, not the manifest: the caller writes its own version of it.
pub fn copy_bundle_files(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    let manifest = argus_model::Manifest::load(src).unwrap();
    for f in manifest.files() {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
}

/// The bundled camera model.
pub fn model() -> Arc<Classifier> {
    Arc::new(
        Classifier::load(&repo_root().join("models/camera-person")).expect("bundled model loads"),
    )
}

/// Creates topics, failing with a hint when no broker answers.
pub async fn create_topics(topics: &[(&str, i32)]) {
    let specs: Vec<TopicSpec> = topics.iter().map(|(n, p)| TopicSpec::new(*n, *p)).collect();
    tokio::time::timeout(Duration::from_secs(60), argus_kafka::ensure_topics(&settings(), &specs))
        .await
        .unwrap_or_else(|_| panic!("no Kafka broker answered at {} within 60 s; start one with scripts/kafka start (scripts/test does)", brokers()))
        .expect("topics created");
}

/// Output topics of one test.
#[derive(Debug, Clone)]
pub struct Topics {
    pub input: String,
    pub predictions: String,
    pub alerts: String,
    pub dlq: String,
}

impl Topics {
    /// Fresh names; creates them with `partitions` input partitions.
    pub async fn create(partitions: i32) -> Topics {
        let t = Topics {
            input: unique("frames"),
            predictions: unique("predictions"),
            alerts: unique("alerts"),
            dlq: unique("dlq"),
        };
        create_topics(&[
            (&t.input, partitions),
            (&t.predictions, 3),
            (&t.alerts, 3),
            (&t.dlq, 1),
        ])
        .await;
        t
    }

    /// The `argus` flags naming the output topics: `--predictions … --alerts-topic …
    /// --dlq …`.
    pub fn output_flags(&self) -> [&str; 6] {
        [
            "--predictions",
            &self.predictions,
            "--alerts-topic",
            &self.alerts,
            "--dlq",
            &self.dlq,
        ]
    }

    /// Worker configuration for these topics, alerting on person ≥ 0.5.
    pub fn worker_config(&self, id: &str) -> WorkerConfig {
        let mut c = WorkerConfig::new(id, vec![self.input.clone()]);
        c.topics.predictions = self.predictions.clone();
        c.topics.alerts = self.alerts.clone();
        c.topics.dlq = self.dlq.clone();
        c.rules = vec![argus_worker::AlertRule {
            name: "person".into(),
            label: "person".into(),
            threshold: 0.5,
        }];
        c.drain_timeout = Duration::from_secs(15);
        c
    }
}

/// A worker running in this process.
#[derive(Debug)]
pub struct RunningWorker {
    pub stats: Arc<WorkerStats>,
    pub stop: CancellationToken,
    pub task: JoinHandle<Result<(), argus_worker::WorkerError>>,
    pub assignment: tokio::sync::watch::Receiver<argus_kafka::Assignment>,
}

impl RunningWorker {
    /// Starts a worker in `group`.
    pub fn start(config: WorkerConfig, group: &str, model: Arc<Classifier>) -> RunningWorker {
        Self::start_with(config, group, model, &settings())
    }

    /// Starts a worker in `group` with these client settings.
    pub fn start_with(
        config: WorkerConfig,
        group: &str,
        model: Arc<Classifier>,
        settings: &KafkaSettings,
    ) -> RunningWorker {
        let id = config.worker_id.clone();
        let consumer = settings.consumer(group, &id).unwrap();
        let assignment = consumer.context().assignment();
        let producer = settings.producer(&id).unwrap();
        let stats = Arc::new(WorkerStats::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(argus_worker::run(
            config,
            consumer,
            producer,
            model,
            stats.clone(),
            stop.clone(),
        ));
        RunningWorker {
            stats,
            stop,
            task,
            assignment,
        }
    }

    /// Waits until this worker owns at least one partition.
    pub async fn wait_assigned(&mut self, within: Duration) {
        tokio::time::timeout(within, self.assignment.wait_for(|a| !a.is_empty()))
            .await
            .expect("worker got an assignment in time")
            .expect("worker alive");
    }

    /// Stops it and waits for the drain.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Produces `count` synthetic frames (`cameras` cameras, `width`×`height`, seed `seed`) as
/// fast as allowed by `rate` (frames/s overall, `None` = unpaced).
pub async fn produce_synthetic(
    topic: &str,
    count: u64,
    cameras: u32,
    seed: u64,
    size: (u32, u32),
    rate: Option<f64>,
) {
    let source = SyntheticSource {
        seed,
        cameras,
        fps: 1e6,
        width: size.0,
        height: size.1,
        jpeg_quality: 85,
        brighten: None,
    };
    let mut config = ProduceConfig::new(topic);
    config.count = Some(count);
    config.rate_limit = rate;
    let producer = settings().producer("test-producer").unwrap();
    let summary = argus_producer::run(
        Source::Synthetic(source),
        config,
        producer,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(summary.sent, count, "{summary}");
}

/// Four small (96×64) synthetic cameras, unpaced.
pub fn small_cameras(seed: u64) -> SyntheticSource {
    SyntheticSource {
        seed,
        cameras: 4,
        fps: 1e6,
        width: 96,
        height: 64,
        jpeg_quality: 80,
        brighten: None,
    }
}

/// Produces one raw record.
pub async fn produce_raw(topic: &str, key: &str, value: &[u8], headers: &[(&str, &str)]) {
    let producer: FutureProducer = settings().producer("test-raw").unwrap();
    let mut hs = OwnedHeaders::new();
    for (k, v) in headers {
        hs = hs.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value).headers(hs),
            Timeout::After(Duration::from_secs(10)),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Reads every message of `topic` from the beginning until `done(messages)` holds or
/// `within` passes; returns what was read.
pub fn read_until(
    topic: &str,
    within: Duration,
    done: impl Fn(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = settings()
        .consumer_config(&unique("reader"), "test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < within {
        if done(&out) {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => eprintln!("reader error: {e}"),
            None => {}
        }
    }
    out
}

/// Parses JSON values and validates each against `schema`.
pub fn validate_all(messages: &[OwnedMessage], schema: &str) -> Vec<serde_json::Value> {
    let validator = jsonschema::validator_for(&serde_json::from_str(schema).unwrap()).unwrap();
    messages
        .iter()
        .map(|m| {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "output does not validate: {errors:?}\n{v}"
            );
            v
        })
        .collect()
}

/// Value of a header, as text.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    use argus_kafka::rdkafka::message::Headers;
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The `argus` binary built by `cargo build -p argus` (scripts/test builds it first).
pub fn argus_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("argus");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p argus` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A new log file `target/e2e-logs/<random>-<id>.log` for a process a test starts.
pub fn e2e_log(id: &str) -> std::fs::File {
    let logs = argus_bin().parent().unwrap().join("e2e-logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::File::create(logs.join(format!("{}-{id}.log", unique("w")))).unwrap()
}

/// A process a test started, killed when this drops (the test passed or not).
#[derive(Debug)]
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `argus <args>` with warn-level logs in [`e2e_log`]`(log_id)`.
pub fn spawn_argus<I, S>(log_id: &str, args: I) -> Reap
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let child = std::process::Command::new(argus_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(e2e_log(log_id))
        .spawn()
        .expect("argus binary starts");
    Reap(child)
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `(status line, body)` of a plain HTTP/1.0 `GET path` on loopback, or the I/O error
/// (nothing listens yet).
pub fn try_http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

/// An `argus work` process.
#[derive(Debug)]
pub struct WorkerProcess {
    pub id: String,
    pub child: std::process::Child,
}

impl WorkerProcess {
    /// Starts `argus work` on `topics` in `group` as worker `id`, with `extra` flags.
    /// Logs go to `target/e2e-logs/<random>-<id>.log` (printed when a test fails).
    pub fn spawn(topics: &Topics, group: &str, id: &str, extra: &[&str]) -> WorkerProcess {
        Self::spawn_serving(topics, group, id, 0, extra)
    }

    /// [`WorkerProcess::spawn`] with `/metrics` on 127.0.0.1:`port` (0: any free port).
    pub fn spawn_serving(
        topics: &Topics,
        group: &str,
        id: &str,
        port: u16,
        extra: &[&str],
    ) -> WorkerProcess {
        let model = repo_root().join("models/camera-person");
        Self::spawn_model(topics, group, id, &model, port, extra)
    }

    /// [`WorkerProcess::spawn_serving`] with the bundle at `model`.
    pub fn spawn_model(
        topics: &Topics,
        group: &str,
        id: &str,
        model: &Path,
        port: u16,
        extra: &[&str],
    ) -> WorkerProcess {
        let child = std::process::Command::new(argus_bin())
            .args(["work", "--brokers", &brokers(), "--group", group])
            .args(["--input", &topics.input])
            .args(topics.output_flags())
            .args([
                "--worker-id",
                id,
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--create-topics", "0", "--drain-timeout", "10s"])
            .args(["--model", model.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .stdout(std::process::Stdio::null())
            .stderr(e2e_log(id))
            .spawn()
            .expect("argus binary starts");
        WorkerProcess {
            id: id.to_string(),
            child,
        }
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > within {
                self.child.kill().ok();
                panic!("worker {} did not exit within {within:?}", self.id);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WorkerProcess {
    /// A failing test must not leave workers running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every prediction on `topic` (read_committed), once at least `distinct` different inputs
/// have one or `within` passes. Returns (partition, offset) per prediction read.
pub fn predictions_until(topic: &str, within: Duration, distinct: usize) -> Vec<(i32, i64)> {
    use std::collections::BTreeSet;
    let parse = |m: &OwnedMessage| {
        serde_json::from_slice::<argus_wire::Prediction>(m.payload()?)
            .ok()
            .map(|p| (p.input.partition, p.input.offset))
    };
    let seen = std::cell::RefCell::new((0usize, BTreeSet::new()));
    let msgs = read_until(topic, within, |m| {
        let mut s = seen.borrow_mut();
        let from = s.0;
        for msg in &m[from..] {
            if let Some(id) = parse(msg) {
                s.1.insert(id);
            }
        }
        s.0 = m.len();
        s.1.len() >= distinct
    });
    msgs.iter().filter_map(parse).collect()
}

/// Like [`predictions_until`], then keeps reading until nothing new arrives for 3 s, so
/// late duplicates are counted too.
pub fn predictions_settled(topic: &str, within: Duration, distinct: usize) -> Vec<(i32, i64)> {
    use std::collections::BTreeSet;
    let parse = |m: &OwnedMessage| {
        serde_json::from_slice::<argus_wire::Prediction>(m.payload()?)
            .ok()
            .map(|p| (p.input.partition, p.input.offset))
    };
    // (messages parsed, distinct inputs, when the last new message arrived)
    let state = std::cell::RefCell::new((0usize, BTreeSet::new(), Instant::now()));
    let msgs = read_until(topic, within, |m| {
        let mut s = state.borrow_mut();
        if m.len() > s.0 {
            s.2 = Instant::now();
        }
        let from = s.0;
        for msg in &m[from..] {
            if let Some(id) = parse(msg) {
                s.1.insert(id);
            }
        }
        s.0 = m.len();
        s.1.len() >= distinct && s.2.elapsed() > Duration::from_secs(3)
    });
    msgs.iter().filter_map(parse).collect()
}

/// Counts per input of a list of predicted inputs.
pub fn counts(ids: &[(i32, i64)]) -> std::collections::BTreeMap<(i32, i64), usize> {
    let mut c = std::collections::BTreeMap::new();
    for id in ids {
        *c.entry(*id).or_insert(0) += 1;
    }
    c
}

/// A Kafka broker of a test binary's own (`scripts/kafka` on other ports and another state
/// dir), for tests that stop it or need another broker configuration; stopped when
/// dropped. Call [`use_brokers`] with [`OwnBroker::address`] to point the helpers at it.
#[derive(Debug)]
pub struct OwnBroker {
    dir: PathBuf,
    ports: [(&'static str, u16); 4],
    extra_config: String,
}

impl OwnBroker {
    /// Starts a broker listening on `base`..`base + 3` (PLAINTEXT, controller, SASL_SSL,
    /// mTLS) with these extra `server.properties` lines, on fresh data.
    pub fn start(base: u16, extra_config: &str) -> OwnBroker {
        let b = OwnBroker {
            dir: argus_bin().parent().unwrap().join(format!("kafka-{base}")),
            ports: [
                ("KAFKA_PORT", base),
                ("KAFKA_CONTROLLER_PORT", base + 1),
                ("KAFKA_SASL_SSL_PORT", base + 2),
                ("KAFKA_MTLS_PORT", base + 3),
            ],
            extra_config: extra_config.to_string(),
        };
        b.kafka(&["stop"]); // a broker left over by an interrupted run
        b.kafka(&["start"]);
        b
    }

    /// Its PLAINTEXT address.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0].1)
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(repo_root().join("scripts/kafka"));
        c.args(args)
            .envs(self.ports.iter().map(|(k, v)| (*k, v.to_string())))
            .env("ARGUS_KAFKA_DIR", &self.dir)
            .env("KAFKA_EXTRA_CONFIG", &self.extra_config);
        c
    }

    /// Runs `scripts/kafka <args>` for this broker, asserting success.
    pub fn kafka(&self, args: &[&str]) {
        let status = self.command(args).status().expect("scripts/kafka runs");
        assert!(status.success(), "scripts/kafka {args:?} failed");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.command(&["stop"]).status();
    }
}

/// Pipes a `/metrics` scrape through `promtool check metrics` (HELP on every family,
/// naming and type lint): exit 0 and no problem reported, or the test fails with
/// promtool's words. promtool must be on PATH (scripts/test installs Debian's `prometheus`
/// package when it is missing); without it the test fails rather than skips.
pub fn promtool_check(what: &str, text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool not runnable ({e}): install it (scripts/test installs Debian's prometheus package)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on the {what} scrape: {}\n{said}\n--- scrape:\n{text}",
        out.status
    );
}

/// Runs `command` to its end, failing the test (with both outputs) unless it succeeds;
/// returns its stdout.
pub fn stdout_of_success(command: &mut std::process::Command) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The group's committed offset per partition of `topic` (absent: nothing committed).
pub fn committed_offsets(
    group: &str,
    topic: &str,
    partitions: i32,
) -> std::collections::BTreeMap<i32, i64> {
    let consumer: BaseConsumer = settings()
        .consumer_config(group, "test-offsets")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
