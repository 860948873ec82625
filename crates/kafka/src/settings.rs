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
}

impl KafkaSettings {
    /// Settings for `brokers` with no extra properties.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            options: BTreeMap::new(),
            consumer_options: BTreeMap::new(),
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
            .set("client.id", client_id);
        c
    }

    fn apply_overrides(&self, c: &mut ClientConfig) {
        for (k, v) in &self.options {
            c.set(k, v);
        }
    }

    /// Consumer configuration for a member of `group`: manual offset store, background
    /// commit of stored offsets, cooperative-sticky assignment, earliest reset.
    pub fn consumer_config(&self, group: &str, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("enable.partition.eof", "false")
            // Feeds GroupContext::stats (consumer lag gauges).
            .set("statistics.interval.ms", "5000");
        self.apply_overrides(&mut c);
        for (k, v) in &self.consumer_options {
            c.set(k, v);
        }
        // The at-least-once rule depends on storing offsets ourselves; a pass-through
        // option must not turn it into at-most-once.
        c.set("enable.auto.offset.store", "false");
        c
    }

    /// Producer configuration: idempotent, acks=all, small linger.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut c = self.base(client_id);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "30000");
        self.apply_overrides(&mut c);
        c
    }

    /// A stream consumer in `group` whose context commits on revoke.
    pub fn consumer(
        &self,
        group: &str,
        client_id: &str,
    ) -> Result<StreamConsumer<GroupContext>, KafkaSetupError> {
        self.consumer_config(group, client_id)
            .create_with_context(GroupContext::new(client_id))
            .map_err(|source| KafkaSetupError::Client {
                role: "consumer",
                brokers: self.brokers.clone(),
                source,
            })
    }

    /// A future producer.
    pub fn producer(&self, client_id: &str) -> Result<FutureProducer, KafkaSetupError> {
        self.producer_config(client_id)
            .create()
            .map_err(|source| KafkaSetupError::Client {
                role: "producer",
                brokers: self.brokers.clone(),
                source,
            })
    }
}
