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
pub mod context;
pub mod embedded;
pub mod headers;
pub mod metrics;
pub mod serde_helpers;
pub mod settings;

pub use admin::{delete_topics, ensure_topics, TopicSpec};
pub use context::{Assignment, GroupContext};
pub use embedded::EmbeddedBroker;
pub use headers::{raw_headers, RawHeader};
pub use rdkafka;
pub use serde_helpers::KafkaConfig;
pub use settings::{parse_property, KafkaSettings};

/// Errors from Kafka set-up.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// A client could not be created from the configuration.
    #[error("cannot create Kafka {role} for {brokers}: {source}")]
    Client {
        /// `consumer`, `producer` or `admin client`.
        role: &'static str,
        /// The bootstrap servers it was configured with.
        brokers: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
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
    /// The embedded broker could not start.
    #[error("cannot start the embedded broker: {source}")]
    Embedded {
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}
