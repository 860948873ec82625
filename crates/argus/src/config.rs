//! One typed configuration for every role, loaded in layers (later wins):
//!
//! 1. defaults — the `Default` of each role's settings type, defined once;
//! 2. a TOML file (`--config argus.toml`): `[kafka]` (+ `[kafka.options]`), `[worker]`,
//!    `[producer]`, `[drift]`, `[score]`, `[demo]`, `[registry]`, `[serve]`;
//! 3. `ARGUS_*` environment variables: `ARGUS_<TABLE>__<KEY>` (`__` between levels, e.g.
//!    `ARGUS_WORKER__MAX_BATCH=16`, `ARGUS_WORKER__TOPICS__DLQ=dead`); under
//!    `ARGUS_KAFKA__OPTIONS__` a `_` is a `.` and a `__` is a `_` ([`option_name`]:
//!    `ARGUS_KAFKA__OPTIONS__SASL_PASSWORD` sets `sasl.password`,
//!    `ARGUS_KAFKA__OPTIONS__LOG__LEVEL` sets `log_level`). The older single names
//!    (`ARGUS_BROKERS`, `ARGUS_MODEL`, ...) keep working: [`LEGACY_ENV`];
//! 4. command-line flags, only those given;
//! 5. `-X key=value` librdkafka properties.
//!
//! Unknown keys are refused (naming the key and where it came from), the whole document is
//! checked once at start-up, and a bad configuration exits 64. [`Loaded::render`] prints the
//! effective configuration with the source of every value (`argus config`).
pub use argus_drift::settings::DriftSettings;
pub use argus_kafka::serde_helpers::{duration, opt_duration};
pub use argus_kafka::{is_secret, KafkaConfig};
use argus_producer::SyntheticSource;
pub use argus_registry::RegistrySettings;
use argus_worker::serve::ServeSettings;
use argus_worker::WorkerSettings;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArgusConfig {
    pub kafka: KafkaConfig,
    pub worker: WorkerSettings,
    pub producer: ProducerSettings,
    pub drift: DriftSettings,
    pub score: ScoreSettings,
    pub demo: DemoSettings,
    pub registry: RegistrySettings,
    pub serve: ServeSettings,
}

/// `[producer]`: `argus produce`. Source-specific inputs (a folder, a records file) stay
/// flags; `[producer.synthetic]` is the synthetic cameras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerSettings {
    /// Topic to produce to.
    pub topic: String,
    /// Message size limit (must match the broker's message.max.bytes).
    pub max_message_bytes: usize,
    /// Frames waiting for the broker (an outage), at most this many bytes; a live source
    /// drops the oldest beyond it, counted (`argus_producer_dropped_total`).
    pub backlog_bytes: usize,
    /// Stop after this many frames [default: no limit].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Stop after this long [default: no limit].
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// Overall frames per second at most [default: no limit].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    pub synthetic: SyntheticSource,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            topic: "frames.default".into(),
            max_message_bytes: 1_000_000,
            backlog_bytes: argus_producer::DEFAULT_BACKLOG_BYTES,
            count: None,
            duration: None,
            rate_limit: None,
            synthetic: SyntheticSource::default(),
        }
    }
}

/// `[score]`: `argus score` (the pipeline settings come from `[worker]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreSettings {
    /// Input topic to score.
    pub input: String,
    /// Start at records written at or after this time (RFC 3339 UTC or epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Start at records written within this long before now.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub since: Option<Duration>,
    /// The at-risk report (CSV).
    pub report: PathBuf,
    /// Rows in the report, at most (0: every record at or above the threshold).
    pub top: usize,
    /// Only write the report: publish nothing.
    pub no_publish: bool,
    /// Records per model call.
    pub batch: usize,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        ScoreSettings {
            input: "frames.default".into(),
            from: None,
            since: None,
            report: PathBuf::from("at-risk.csv"),
            top: 100,
            no_publish: false,
            batch: 64,
        }
    }
}

/// `[demo]`: `argus demo` (model and pipeline from `[worker]`, cameras from
/// `[producer.synthetic]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoSettings {
    /// Run against this cluster instead of the embedded broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    /// How long to run.
    #[serde(with = "duration")]
    pub duration: Duration,
    /// Workers in the demo's group.
    pub workers: usize,
    /// Serve /metrics and /healthz here while the demo runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// Print at most this many alerts.
    pub max_printed_alerts: u64,
    /// Run without the drift sidecar.
    pub no_drift: bool,
    /// Event-time pane of the demo's drift sidecar.
    #[serde(with = "duration")]
    pub drift_pane: Duration,
    /// Do not brighten a camera halfway through.
    pub no_shift: bool,
    /// Serve the bundle as it is instead of through a registry that switches versions live.
    pub no_swap: bool,
    /// Alerts without evidence (the demo turns `[worker.evidence]` on otherwise).
    pub no_evidence: bool,
    /// Run on this video file instead of synthetic cameras: one camera, the person
    /// detector (if `[worker] model` is not a detector) and demo zones (if none are
    /// configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<std::path::PathBuf>,
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings {
            brokers: None,
            duration: Duration::from_secs(20),
            workers: 2,
            metrics_addr: None,
            max_printed_alerts: 40,
            no_drift: false,
            drift_pane: Duration::from_secs(2),
            no_shift: false,
            no_swap: false,
            no_evidence: false,
            video: None,
        }
    }
}

/// The environment names Argus read before the layered configuration, and the keys they
/// set (some several: `ARGUS_INPUT` is the input of the worker, `argus score` and the
/// sidecar).
pub const LEGACY_ENV: &[(&str, &[&str])] = &[
    ("ARGUS_BROKERS", &["kafka.brokers", "demo.brokers"]),
    ("ARGUS_MODEL", &["worker.model"]),
    ("ARGUS_ALERTS", &["worker.alerts"]),
    ("ARGUS_TOP_K", &["worker.top_k"]),
    ("ARGUS_INFERENCE_THREADS", &["worker.inference_threads"]),
    ("ARGUS_DECODE_THREADS", &["worker.decode_threads"]),
    ("ARGUS_MAX_BATCH", &["worker.max_batch"]),
    ("ARGUS_MAX_WAIT", &["worker.max_wait"]),
    ("ARGUS_MAX_AGE", &["worker.max_age"]),
    ("ARGUS_MAX_IN_FLIGHT", &["worker.max_in_flight"]),
    ("ARGUS_MAX_IN_FLIGHT_BYTES", &["worker.max_in_flight_bytes"]),
    ("ARGUS_INJECT_DELAY", &["worker.inject_delay"]),
    ("ARGUS_MAX_INPUT_BYTES", &["worker.max_input_bytes"]),
    ("ARGUS_ENGINE", &["worker.engine"]),
    ("ARGUS_ONNXRUNTIME_LIB", &["worker.onnxruntime_lib"]),
    ("ARGUS_ONNXRUNTIME_THREADS", &["worker.onnxruntime_threads"]),
    (
        "ARGUS_PREDICTIONS_TOPIC",
        &["worker.topics.predictions", "drift.predictions"],
    ),
    ("ARGUS_ALERTS_TOPIC", &["worker.topics.alerts"]),
    ("ARGUS_DLQ_TOPIC", &["worker.topics.dlq"]),
    (
        "ARGUS_INPUT",
        &["worker.inputs", "score.input", "drift.input"],
    ),
    ("ARGUS_GROUP", &["worker.group"]),
    ("ARGUS_WORKER_ID", &["worker.worker_id"]),
    // The worker's only: `argus work` and `argus drift watch` often share a pod (and its
    // environment), where one address for both would make the second fail to bind. The
    // sidecar's is `ARGUS_DRIFT__METRICS_ADDR`.
    ("ARGUS_METRICS_ADDR", &["worker.metrics_addr"]),
    ("ARGUS_CREATE_TOPICS", &["worker.create_topics"]),
    ("ARGUS_DRAIN_TIMEOUT", &["worker.drain_timeout"]),
    ("ARGUS_EXACTLY_ONCE", &["worker.exactly_once"]),
    (
        "ARGUS_TRANSACTION_INTERVAL",
        &["worker.transaction_interval"],
    ),
    ("ARGUS_STATIC_MEMBERSHIP", &["worker.static_membership"]),
    ("ARGUS_GROUP_PROTOCOL", &["worker.group_protocol"]),
    ("ARGUS_TOPIC", &["producer.topic"]),
    ("ARGUS_MAX_MESSAGE_BYTES", &["producer.max_message_bytes"]),
    ("ARGUS_DRIFT_PROFILE", &["drift.profile"]),
    ("ARGUS_DRIFT_TOPIC", &["drift.reports_topic"]),
    ("ARGUS_DRIFT_PANES_TOPIC", &["drift.panes_topic"]),
    ("ARGUS_DRIFT_GROUP", &["drift.group"]),
    ("ARGUS_DRIFT_ID", &["drift.sidecar_id"]),
];

/// Older names that once set a key they no longer set, with the name that does: (older
/// name, key, its own name). `ARGUS_METRICS_ADDR` set the sidecar's address too, so a
/// worker and a sidecar sharing a pod's environment tried to bind one port.
pub const NARROWED_ENV: &[(&str, &str, &str)] = &[(
    "ARGUS_METRICS_ADDR",
    "drift.metrics_addr",
    "ARGUS_DRIFT__METRICS_ADDR",
)];

/// The older names in `env` that no longer set `key` (a role warns that it ignored them),
/// each with the name that does.
pub fn narrowed_env(env: &[(String, String)], key: &str) -> Vec<(&'static str, &'static str)> {
    NARROWED_ENV
        .iter()
        .filter(|(old, k, _)| *k == key && env.iter().any(|(n, _)| n == old))
        .map(|(old, _, new)| (*old, *new))
        .collect()
}

/// One layer's values with the name `argus config` shows as their source.
#[derive(Debug, Clone)]
struct Layer {
    name: String,
    data: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// `value` at `path` (segments, so librdkafka keys keep their dots).
fn nest(path: &[&str], value: Value) -> Dict {
    let mut value = value;
    for seg in path.iter().skip(1).rev() {
        let mut d = Dict::new();
        d.insert((*seg).to_string(), value);
        value = Value::from(d);
    }
    let mut d = Dict::new();
    if let Some(first) = path.first() {
        d.insert((*first).to_string(), value);
    }
    d
}

/// The dotted key of the librdkafka map as [`Flags::keys`] names it (`-X`).
pub const KAFKA_OPTIONS_KEY: &str = "kafka.options.*";

/// The flags a command was given, as the top layer (before `-X`).
#[derive(Debug, Default)]
pub struct Flags {
    layers: Vec<Layer>,
    option_layers: Vec<Layer>,
    keys: Vec<(String, String)>,
}

impl Flags {
    /// `key` (dotted) = `value` when the flag `flag` was given.
    pub fn set<T: Serialize>(&mut self, key: &str, flag: &str, value: Option<&T>) {
        self.keys.push((flag.to_string(), key.to_string()));
        if let Some(v) = value {
            match Value::serialize(v) {
                Ok(v) => self.layers.push(Layer {
                    name: format!("flag {flag}"),
                    data: nest(&key.split('.').collect::<Vec<_>>(), v),
                }),
                Err(e) => unreachable!("flag {flag} does not serialize: {e}"),
            }
        }
    }

    /// A duration flag.
    pub fn duration(&mut self, key: &str, flag: &str, value: Option<Duration>) {
        let text = value.map(argus_worker::config::serde_helpers::format_duration);
        self.set(key, flag, text.as_ref());
    }

    /// A switch: sets `key` to true when given.
    pub fn switch(&mut self, key: &str, flag: &str, on: bool) {
        self.set(key, flag, on.then_some(&true));
    }

    /// A list flag: set when given at least once.
    pub fn list<T: Serialize>(&mut self, key: &str, flag: &str, values: &[T]) {
        self.set(key, flag, (!values.is_empty()).then_some(&values));
    }

    /// The `-X key=value` flags `flag`: librdkafka properties, applied after every other
    /// layer.
    pub fn kafka_options(&mut self, flag: &str, values: &[(String, String)]) {
        self.keys
            .push((flag.to_string(), KAFKA_OPTIONS_KEY.to_string()));
        for (k, v) in values {
            self.kafka_option(k, v);
        }
    }

    /// Every flag this command maps to a configuration key, given or not, as (flag, dotted
    /// key): the pairing `argus config env` prints and the environment audit checks.
    pub fn keys(&self) -> &[(String, String)] {
        &self.keys
    }

    /// `-X key=value`: applied after every other layer.
    pub fn kafka_option(&mut self, key: &str, value: &str) {
        self.option_layers.push(Layer {
            name: "flag -X".into(),
            data: nest(&["kafka", "options", key], Value::from(value.to_string())),
        });
    }
}

/// Where the configuration comes from.
#[derive(Debug, Default)]
pub struct Sources {
    /// The `--config` file, if any.
    pub file: Option<PathBuf>,
    /// `ARGUS_*` variables (others are ignored): `std::env::vars()` in the binary, a map
    /// in tests.
    pub env: Vec<(String, String)>,
    pub flags: Flags,
}

/// The configuration in effect and the layers it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: ArgusConfig,
    layers: Vec<Layer>,
}

/// The keys (as path segments) the `ARGUS_*` variable `name` sets: an older single name's
/// ([`LEGACY_ENV`]), or the one `ARGUS_<TABLE>__<KEY>` spells; none for other names.
fn env_paths(name: &str) -> Result<Vec<Vec<String>>, String> {
    if let Some((_, keys)) = LEGACY_ENV.iter().find(|(n, _)| *n == name) {
        return Ok(keys
            .iter()
            .map(|k| k.split('.').map(str::to_string).collect())
            .collect());
    }
    let Some(rest) = name.strip_prefix("ARGUS_").filter(|r| r.contains("__")) else {
        return Ok(Vec::new());
    };
    let lower = rest.to_ascii_lowercase();
    let mut path: Vec<String> = lower.split("__").map(str::to_string).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!("environment variable {name}: empty key segment"));
    }
    if path.len() > 2 && path[0] == "kafka" && path[1] == "options" {
        let key = option_name(&path[2..]);
        path.truncate(2);
        path.push(key);
    }
    Ok(vec![path])
}

/// The dotted keys the variable `name` sets (the audit's check of [`env_name`]).
#[cfg(test)]
pub fn env_keys(name: &str) -> Result<Vec<String>, String> {
    Ok(env_paths(name)?.iter().map(|p| p.join(".")).collect())
}

fn env_layers(env: &[(String, String)]) -> Result<Vec<Layer>, String> {
    let mut env: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("ARGUS_"))
        .collect();
    env.sort();
    let mut legacy = Vec::new();
    let mut structured = Vec::new();
    for (name, value) in env {
        let layers = if LEGACY_ENV.iter().any(|(n, _)| n == name) {
            &mut legacy
        } else {
            &mut structured
        };
        for path in env_paths(name)? {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            layers.push(Layer {
                name: format!("env {name}"),
                data: nest(&segs, Value::from(value.clone())),
            });
        }
    }
    legacy.extend(structured);
    Ok(legacy)
}

/// The librdkafka property named by the (lowercased) segments after
/// `ARGUS_KAFKA__OPTIONS__`, split on `__`: a `_` is a `.` and a `__` (between segments)
/// is a `_`. `SASL_PASSWORD` → `sasl.password`; `LOG__LEVEL` → `log_level`.
pub fn option_name(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| s.replace('_', "."))
        .collect::<Vec<_>>()
        .join("_")
}

/// The environment name of the librdkafka property `property`, the inverse of
/// [`option_name`]: `sasl.password` → `ARGUS_KAFKA__OPTIONS__SASL_PASSWORD`.
#[cfg(test)]
pub fn option_env_name(property: &str) -> String {
    format!(
        "ARGUS_KAFKA__OPTIONS__{}",
        property
            .replace('_', "__")
            .replace('.', "_")
            .to_ascii_uppercase()
    )
}

/// The `ARGUS_<TABLE>__<KEY>` name of a dotted configuration key
/// (`worker.topics.dlq` → `ARGUS_WORKER__TOPICS__DLQ`; [`KAFKA_OPTIONS_KEY`] →
/// `ARGUS_KAFKA__OPTIONS__<PROPERTY>`).
pub fn env_name(key: &str) -> String {
    if key == KAFKA_OPTIONS_KEY {
        return "ARGUS_KAFKA__OPTIONS__<PROPERTY>".into();
    }
    format!("ARGUS_{}", key.replace('.', "__").to_ascii_uppercase())
}

/// The older single names ([`LEGACY_ENV`]) that also set `key`.
pub fn legacy_names(key: &str) -> Vec<&'static str> {
    LEGACY_ENV
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(name, _)| *name)
        .collect()
}

/// Whether `key` (dotted) is a setting of [`ArgusConfig`]: serde refuses no part of it as
/// an unknown field. The probe's value is a placeholder, so a type mismatch still means the
/// key exists.
#[cfg(test)]
pub fn is_config_key(key: &str) -> bool {
    let probe = Layer {
        name: "probe".into(),
        data: nest(&key.split('.').collect::<Vec<_>>(), Value::from("?")),
    };
    match Figment::new().merge(probe).extract_lossy::<ArgusConfig>() {
        Ok(_) => true,
        Err(e) => !e
            .into_iter()
            .any(|e| matches!(e.kind, figment::error::Kind::UnknownField(..))),
    }
}

/// Reads, layers, checks and types the configuration. The message of an error says what
/// to fix and where the bad value came from.
pub fn load(sources: Sources) -> Result<Loaded, String> {
    let defaults = match Value::serialize(ArgusConfig::default()) {
        Ok(Value::Dict(_, d)) => d,
        other => unreachable!("defaults serialize to a table: {other:?}"),
    };
    let mut layers = vec![Layer {
        name: "default".into(),
        data: defaults,
    }];
    if let Some(path) = &sources.file {
        layers.push(file_layer(path)?);
    }
    layers.extend(env_layers(&sources.env)?);
    layers.extend(sources.flags.layers);
    layers.extend(sources.flags.option_layers);
    let figment = layers
        .iter()
        .fold(Figment::new(), |f, l| f.merge(l.clone()));
    let config: ArgusConfig = figment.extract_lossy().map_err(|e| {
        let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        format!("bad configuration: {}", all.join("; "))
    })?;
    config.worker.check()?;
    config.serve.check()?;
    config.producer.synthetic.check()?;
    config.registry.check().map_err(|e| e.to_string())?;
    Ok(Loaded { config, layers })
}

fn file_layer(path: &Path) -> Result<Layer, String> {
    use figment::providers::{Format, Toml};
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
    let data = Toml::string(&text)
        .data()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .remove(&Profile::Default)
        .unwrap_or_default();
    Ok(Layer {
        name: format!("file {}", path.display()),
        data,
    })
}

/// The tables `argus config` prints.
pub const ROLES: &[&str] = &[
    "kafka", "worker", "producer", "drift", "score", "demo", "registry", "serve",
];

impl Loaded {
    /// The layer that set `path`, last one winning.
    fn source(&self, path: &[&str]) -> &str {
        self.layers
            .iter()
            .rev()
            .find(|l| {
                let mut d = &l.data;
                for (i, seg) in path.iter().enumerate() {
                    match d.get(*seg) {
                        Some(Value::Dict(_, inner)) if i + 1 < path.len() => d = inner,
                        Some(_) if i + 1 == path.len() => return true,
                        _ => return false,
                    }
                }
                false
            })
            .map_or("default", |l| l.name.as_str())
    }

    /// The effective `[role]` table (all tables when `None`) as TOML, each value commented
    /// with where it came from; secret librdkafka properties are redacted.
    pub fn render(&self, role: Option<&str>) -> Result<String, String> {
        let doc = toml::Value::try_from(&self.config).map_err(|e| e.to_string())?;
        let mut out = String::new();
        for name in ROLES.iter().filter(|r| role.is_none_or(|x| x == **r)) {
            if let Some(toml::Value::Table(t)) = doc.get(*name) {
                self.table(&mut out, &[name], t);
            }
        }
        Ok(out)
    }

    fn table(&self, out: &mut String, path: &[&str], t: &toml::Table) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "[{}]",
            path.iter()
                .map(|s| toml_key(s))
                .collect::<Vec<_>>()
                .join(".")
        );
        let secrets = path == ["kafka", "options"];
        for (k, v) in t.iter().filter(|(_, v)| !v.is_table()) {
            let mut p = path.to_vec();
            p.push(k);
            let shown = if secrets && is_secret(k) {
                "\"<redacted>\"".to_string()
            } else {
                v.to_string()
            };
            let _ = writeln!(out, "{} = {shown}  # {}", toml_key(k), self.source(&p));
        }
        out.push('\n');
        for (k, v) in t.iter() {
            if let toml::Value::Table(inner) = v {
                let mut p = path.to_vec();
                p.push(k);
                self.table(out, &p, inner);
            }
        }
    }
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

#[cfg(test)]
mod tests;
