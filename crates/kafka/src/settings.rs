//! Client configuration: our defaults, then the user's librdkafka properties on top.
use crate::context::GroupContext;
use crate::KafkaSetupError;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use std::collections::BTreeMap;

/// Where the brokers are, plus librdkafka properties passed through verbatim (applied last,
/// so they override every default here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Extra librdkafka properties for every client, e.g. `security.protocol`.
    pub options: BTreeMap<String, String>,
    /// Extra librdkafka properties for consumers only (e.g. `fetch.wait.max.ms`).
    pub consumer_options: BTreeMap<String, String>,
    /// Replication factor of the topics Argus creates (`None`: the broker's default).
    pub replication_factor: Option<i32>,
    /// Where a group with no committed offset starts: `earliest` or `latest`.
    pub offset_reset: OffsetReset,
}

/// Where a consumer group with no committed offset for a partition starts reading
/// (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The oldest record still on the topic: nothing already there is skipped (default).
    #[default]
    Earliest,
    /// Only records produced after the group first joined.
    Latest,
}

impl OffsetReset {
    /// librdkafka's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

impl std::str::FromStr for OffsetReset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            other => Err(format!("offset reset {other:?}: use earliest or latest")),
        }
    }
}

/// Parses a librdkafka property written `KEY=VALUE` (the `-X` flag of `argus` and
/// `argus-bench`); the message says what was expected.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        // Not echoed: a mistyped `-X sasl.password:secret` would print the secret.
        _ => Err(format!(
            "expected KEY=VALUE, got {} characters without '='",
            s.chars().count()
        )),
    }
}

/// Whether a librdkafka property holds a secret (passwords, keys, tokens): its value is
/// never printed (`argus config`, error messages).
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "sasl.oauthbearer.config",
        "ssl.key",
        "ssl_key",
        "token",
        "jaas",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The partitioner of every Argus producer: keys go to the partition the Java client would
/// choose (murmur2), so a gateway written in Java and `argus produce` put one camera on one
/// partition, and at-least-once and exactly-once workers agree. librdkafka's own default
/// (CRC32) differs.
const JAVA_PARTITIONER: &str = "murmur2_random";

/// The longest wait between reconnect attempts to a broker. librdkafka's default (10 s,
/// with -25 %..+50 % jitter, reached after a few seconds of failed attempts) can leave a
/// client idle for up to 15 s after its broker is back, a different time for each client
/// of a fleet. One second bounds that, at the cost of one connection attempt per second per
/// broker during an outage. (In `tests/faults.rs`'s broker restart the larger delay was the session
/// timeout, [`SESSION_TIMEOUT_MS`]; this cap was not measured on its own.)
const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// Classic-protocol consumer session timeout: Kafka's own default since 3.0 (KIP-735).
/// Argus used 10 s, and a broker away for longer than that (a restart) made every
/// member's session expire client-side: each then rejoined as a new member, and the
/// reloaded coordinator waited out the old members' sessions before assigning anything,
/// so partitions resumed ~10 s after the broker was back (12–18 s for some, 1.4 s for
/// members whose session happened to survive). With 45 s an outage shorter than that is
/// ridden out: measured in `tests/faults.rs`, partitions resumed 0.2–0.7 s after
/// the broker's return instead of 9.9–10.5 s. The price: a worker killed without leaving
/// the group (kill -9, a lost node) keeps its partitions until the timeout; lower it with
/// `-X session.timeout.ms=10000` where crash failover matters more than broker restarts.
const SESSION_TIMEOUT_MS: &str = "45000";

/// The `group.id` of [`KafkaSettings::reader`]s: set because librdkafka needs one, never
/// joined or committed to.
pub const READER_GROUP: &str = "argus-reader";

impl KafkaSettings {
    /// Settings for `brokers` with no extra properties.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            options: BTreeMap::new(),
            consumer_options: BTreeMap::new(),
            replication_factor: None,
            offset_reset: OffsetReset::default(),
        }
    }

    /// Adds a librdkafka property (builder style).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.options.insert(key.to_string(), value.into());
        self
    }

    fn base(&self, client_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS);
        c
    }

    /// A plain client configuration (no group, no producer settings) with the overrides:
    /// for metadata requests such as [`crate::preflight`].
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        self.apply_overrides(&mut c);
        c
    }

    fn apply_overrides(&self, c: &mut ClientConfig) {
        for (k, v) in &self.options {
            c.set(k, v);
        }
    }

    /// The consumer group protocol asked for: `consumer` (KIP-848) or `classic`.
    pub fn group_protocol(&self) -> &str {
        self.consumer_options
            .get("group.protocol")
            .or_else(|| self.options.get("group.protocol"))
            .map(String::as_str)
            .unwrap_or("classic")
    }

    /// Consumer configuration for a member of `group`: manual offset store, background
    /// commit of stored offsets, cooperative-sticky assignment, `offset_reset` (earliest unless set).
    ///
    /// With `group.protocol=consumer` (KIP-848, brokers ≥ 4.0) the assignment is computed
    /// by the broker and librdkafka refuses the classic-only properties
    /// (`partition.assignment.strategy`, `session.timeout.ms`, `heartbeat.interval.ms`),
    /// so they are not set.
    pub fn consumer_config(&self, group: &str, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.offset_reset.as_str())
            .set("enable.partition.eof", "false")
            // Fetch more only while less than 2 MB waits in the prefetch queue (librdkafka's
            // default is 64 MB). A worker takes inputs only as fast as its model runs, so the
            // rest was peak memory, and more than the setting says: each fetch adds up to
            // `max.partition.fetch.bytes` (1 MB) per partition past the threshold, and
            // compressed sets sit in their own decompression buffers (heaptrack, a 4-partition
            // lz4 backlog at 16 MB: 51 MB of them, 70 MB in librdkafka in all). 16 MB → 2 MB,
            // drain peak RSS (glibc, `argus work`, 3 rounds each): churn records 140 → 88 MB,
            // the camera model 117–125 → 66–71 MB, MobileNetV2/onnxruntime at batch 1
            // 196–198 → 165–170 MB, at the same drain rate (docs/bench.md, "Memory with onnxruntime").
            // 2 MB is still 40 camera frames or 13,000 records, and a fetch is asked for as
            // soon as the queue falls below it. Overridable with -X.
            .set("queued.max.messages.kbytes", "2048")
            // With the prefetch queue full, librdkafka postpones the partition's next fetch
            // by this long (default 1 s) — with a worker that takes messages only as fast as
            // its model runs, the queue is full most of the time, and the 1 s pauses capped
            // a fast model's drain at ~530 inputs/s (the queue drained in 0.3 s, then idle).
            .set("fetch.queue.backoff.ms", "10")
            // Feeds GroupContext::stats (consumer lag gauges).
            .set("statistics.interval.ms", "5000");
        if self.group_protocol() != "consumer" {
            c.set("partition.assignment.strategy", "cooperative-sticky")
                .set("session.timeout.ms", SESSION_TIMEOUT_MS)
                .set("heartbeat.interval.ms", "1000");
        }
        self.apply_overrides(&mut c);
        for (k, v) in &self.consumer_options {
            c.set(k, v);
        }
        // The at-least-once rule depends on storing offsets ourselves; a pass-through
        // option must not turn it into at-most-once.
        c.set("enable.auto.offset.store", "false");
        c
    }

    /// Producer configuration (inputs, outputs, labels, drift reports; at-least-once):
    /// idempotent, acks=all, LZ4, and a batch is sent as soon as the previous one is
    /// acknowledged instead of after a fixed linger: `linger.ms` 0 with one request in
    /// flight per broker. A message then waits at most one round trip instead of 2 ms plus
    /// one, and under load batches still grow to what arrives during a round trip.
    /// Measured (issue 19, `docs/bench.md`, "Latency against load"): on a worker's outputs
    /// the worker's part of a camera frame's latency went 4–5 → 2–3 ms at the median; on
    /// the inputs' producer (the load generator) send → appended 1.9 → under 0.5 ms and the
    /// end-to-end p50 2–3 ms lower at 5–40 % load, with bulk production no slower. The
    /// user's properties still override.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .set("max.in.flight.requests.per.connection", "1")
            .set("compression.type", "lz4")
            .set("partitioner", JAVA_PARTITIONER)
            .set("message.timeout.ms", "30000");
        self.apply_overrides(&mut c);
        c
    }

    /// Consumer configuration for exactly-once work: offsets are committed inside the
    /// producer's transactions, never by the consumer, and inputs written transactionally
    /// are read only once committed.
    pub fn transactional_consumer_config(&self, group: &str, client_id: &str) -> ClientConfig {
        let mut c = self.consumer_config(group, client_id);
        c.set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        c
    }

    /// Producer configuration with `transactional.id`. The id must be stable across
    /// restarts of the same worker: a restarted worker then fences its predecessor and
    /// aborts the transaction it left open. `transaction.timeout.ms` bounds how long an
    /// abandoned transaction (a worker killed and never restarted) holds back
    /// `read_committed` readers.
    pub fn transactional_producer_config(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("partitioner", JAVA_PARTITIONER)
            .set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", "10000")
            .set("message.timeout.ms", "10000");
        self.apply_overrides(&mut c);
        c
    }

    /// Consumer configuration without a group, for readers that assign partitions
    /// themselves and read from a chosen offset (the model registry): no commits, the
    /// user's properties and consumer options on top (but never a group or commits).
    pub fn reader_config(&self, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        self.apply_overrides(&mut c);
        for (k, v) in &self.consumer_options {
            c.set(k, v);
        }
        // librdkafka refuses assign() without a group id ("Unknown group"). An assigning
        // reader never joins its group nor commits (whatever the pass-through says), so one
        // fixed id serves every reader.
        c.set("group.id", READER_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        c
    }

    /// A stream consumer with no group (see [`KafkaSettings::reader_config`]).
    pub fn reader(&self, client_id: &str) -> Result<StreamConsumer, KafkaSetupError> {
        self.reader_config(client_id)
            .create()
            .map_err(|error| KafkaSetupError::Client {
                role: "consumer",
                brokers: self.brokers.clone(),
                error,
            })
    }

    /// A stream consumer in `group` whose context commits on revoke.
    pub fn consumer(
        &self,
        group: &str,
        client_id: &str,
    ) -> Result<StreamConsumer<GroupContext>, KafkaSetupError> {
        let context = GroupContext::new(client_id);
        context.set_consumer_protocol(self.group_protocol() == "consumer");
        self.consumer_config(group, client_id)
            .create_with_context(context)
            .map_err(|error| KafkaSetupError::Client {
                role: "consumer",
                brokers: self.brokers.clone(),
                error,
            })
    }

    /// A stream consumer for exactly-once work (see
    /// [`KafkaSettings::transactional_consumer_config`]).
    pub fn transactional_consumer(
        &self,
        group: &str,
        client_id: &str,
    ) -> Result<StreamConsumer<GroupContext>, KafkaSetupError> {
        let context = GroupContext::new(client_id);
        context.set_commit_on_revoke(false);
        context.set_consumer_protocol(self.group_protocol() == "consumer");
        self.transactional_consumer_config(group, client_id)
            .create_with_context(context)
            .map_err(|error| KafkaSetupError::Client {
                role: "consumer",
                brokers: self.brokers.clone(),
                error,
            })
    }

    /// A transactional future producer (transactions not yet initialised).
    pub fn transactional_producer(
        &self,
        client_id: &str,
        transactional_id: &str,
    ) -> Result<FutureProducer, KafkaSetupError> {
        self.transactional_producer_config(client_id, transactional_id)
            .create()
            .map_err(|error| KafkaSetupError::Client {
                role: "transactional producer",
                brokers: self.brokers.clone(),
                error,
            })
    }

    /// A future producer.
    pub fn producer(&self, client_id: &str) -> Result<FutureProducer, KafkaSetupError> {
        self.producer_config(client_id)
            .create()
            .map_err(|error| KafkaSetupError::Client {
                role: "producer",
                brokers: self.brokers.clone(),
                error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_sends_when_the_last_batch_is_acknowledged_unless_told_otherwise() {
        let s = KafkaSettings::new("b:9092");
        let out = s.producer_config("w");
        assert_eq!(out.get("linger.ms"), Some("0"));
        assert_eq!(out.get("max.in.flight.requests.per.connection"), Some("1"));
        assert_eq!(out.get("enable.idempotence"), Some("true"));
        // Transactions keep their short fixed linger.
        let txn = s.transactional_producer_config("w", "t");
        assert_eq!(txn.get("linger.ms"), Some("2"));
        let tuned = s.with("linger.ms", "5").producer_config("w");
        assert_eq!(tuned.get("linger.ms"), Some("5"));
    }

    #[test]
    fn a_reader_never_commits_and_keeps_the_users_security_settings() {
        let mut s = KafkaSettings::new("b:9092")
            .with("security.protocol", "sasl_ssl")
            .with("group.id", "someone-elses")
            .with("enable.auto.commit", "true");
        s.consumer_options
            .insert("fetch.wait.max.ms".into(), "50".into());
        let c = s.reader_config("r");
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(c.get("group.id"), Some(READER_GROUP));
        assert_eq!(c.get("enable.auto.commit"), Some("false"), "never commits");
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
    }
}
