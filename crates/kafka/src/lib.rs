//! Kafka plumbing: client configuration, topic admin, the group context that commits on
//! revoke, and the embedded broker for the zero-setup demo.
//!
//! This is the only crate that depends on rdkafka; role crates use it through the
//! re-export [`rdkafka`].
//!
//! Offset rule (stated once, followed by the worker): consumers run with
//! `enable.auto.offset.store=false`; an input's offset is *stored* only after every output
//! it caused is acknowledged, stored offsets are *committed* in the background
//! (`enable.auto.commit`), synchronously on partition revoke ([`GroupContext`]) and on
//! shutdown.
#![warn(missing_docs)]
pub mod admin;
pub mod bounded;
pub mod context;
pub mod embedded;
pub mod headers;
pub mod metrics;
pub mod preflight;
pub mod produce;
pub mod serde_helpers;
pub mod settings;
pub mod throttle;

pub use admin::{delete_topics, ensure_topics, topic_config, CreateOutcome, TopicSpec};
pub use context::{Assignment, GroupContext, Membership};
pub use embedded::EmbeddedBroker;
pub use headers::{raw_headers, RawHeader, RawHeaders};
pub use preflight::{check_cluster, startup_check, ClusterProblem};
pub use produce::send_when_queued;
pub use rdkafka;
pub use serde_helpers::{KafkaConfig, ReplicationFactor};
pub use settings::{is_secret, parse_property, KafkaSettings, OffsetReset};
pub use throttle::LogThrottle;

/// librdkafka's error without the value of a refused property (`sasl.pasword=hunter2` must
/// not print `hunter2`).
fn redacted(error: &rdkafka::error::KafkaError) -> String {
    match error {
        rdkafka::error::KafkaError::ClientConfig(_, desc, key, value) => {
            let desc = if is_secret(key) && !value.is_empty() {
                desc.replace(value.as_str(), "<redacted>")
            } else {
                desc.clone()
            };
            format!("bad property {key:?}: {}", desc.trim_end_matches('.'))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaConfRes;

    #[test]
    fn a_refused_property_is_named_but_its_value_is_not_printed() {
        let e = KafkaSetupError::Client {
            role: "consumer",
            brokers: "b:9092".into(),
            error: KafkaError::ClientConfig(
                RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
                "No such configuration property: \"sasl.pasword\"".into(),
                "sasl.pasword".into(),
                "hunter2".into(),
            ),
        };
        let text = e.to_string();
        assert!(
            text.contains("sasl.pasword") && !text.contains("hunter2"),
            "{text}"
        );
        let e = KafkaSetupError::Client {
            role: "consumer",
            brokers: "b:9092".into(),
            error: KafkaError::ClientConfig(
                RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
                "Invalid value \"hunter2\" for configuration property \"ssl.key.password\"".into(),
                "ssl.key.password".into(),
                "hunter2".into(),
            ),
        };
        let text = e.to_string();
        assert!(
            text.contains("ssl.key.password") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(!parse_property("sasl.password:hunter2")
            .unwrap_err()
            .contains("hunter2"));
    }
}

/// Errors from Kafka set-up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// A client could not be created from the configuration. The message names a bad
    /// property but never its value (it may be a password).
    #[error("cannot create Kafka {role} for {brokers}: {}", redacted(error))]
    Client {
        /// `consumer`, `producer` or `admin client`.
        role: &'static str,
        /// The bootstrap servers it was configured with.
        brokers: String,
        /// librdkafka's error (not a `source`: its text repeats a bad property's value).
        error: rdkafka::error::KafkaError,
    },
    /// A topic could not be created.
    #[error("cannot create topic {topic}: {reason}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// A topic could not be deleted.
    #[error("cannot delete topic {topic}: {reason}")]
    DeleteTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// A topic to read does not exist (or has no partitions).
    #[error("topic {topic:?} does not exist (or has no partitions)")]
    MissingTopic {
        /// The topic.
        topic: String,
    },
    /// A metadata, watermark or offset lookup failed.
    #[error("{what}: {source}")]
    Lookup {
        /// What was looked up.
        what: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The embedded broker could not start.
    #[error("cannot start the embedded broker: {source}")]
    Embedded {
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}
