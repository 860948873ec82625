//! Topic admin: creation (idempotent) and deletion.
use crate::{KafkaSettings, KafkaSetupError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// A topic to create if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partitions when created (an existing topic keeps its own).
    pub partitions: i32,
    /// Replication factor when created; -1 = the broker's `default.replication.factor`
    /// (KIP-464, brokers ≥ 2.4). [`KafkaSettings::replication_factor`] overrides it.
    pub replication: i32,
    /// Topic configuration (e.g. `max.message.bytes`), applied at creation only.
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// `name` with `partitions` partitions and the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
            replication: -1,
            configs: Vec::new(),
        }
    }

    /// Adds a topic configuration entry (builder style).
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.configs.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// Creates each topic that does not exist yet; existing topics are left as they are.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), KafkaSetupError> {
    let admin = admin_client(settings)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.configs.iter().fold(
                NewTopic::new(
                    &t.name,
                    t.partitions,
                    TopicReplication::Fixed(settings.replication_factor.unwrap_or(t.replication)),
                ),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        admin
            .create_topics(new.iter(), &opts)
            .await
            .map_err(|e| KafkaSetupError::Topic {
                topic: topics
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                reason: e.to_string(),
            })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic = %topic, "topic created"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %topic, "topic exists")
            }
            Err((topic, code)) => {
                return Err(KafkaSetupError::Topic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Deletes `topics` (all of them, or an error naming the first that could not be deleted).
/// A topic that does not exist is an error too: callers delete what they created.
pub async fn delete_topics(
    settings: &KafkaSettings,
    topics: &[String],
) -> Result<(), KafkaSetupError> {
    let admin = admin_client(settings)?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        admin
            .delete_topics(&names, &opts)
            .await
            .map_err(|e| KafkaSetupError::DeleteTopic {
                topic: names.join(","),
                reason: e.to_string(),
            })?;
    for result in results {
        match result {
            Ok(topic) => tracing::debug!(topic = %topic, "topic deleted"),
            Err((topic, code)) => {
                return Err(KafkaSetupError::DeleteTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// An admin client with the settings' brokers and librdkafka properties.
fn admin_client(
    settings: &KafkaSettings,
) -> Result<AdminClient<DefaultClientContext>, KafkaSetupError> {
    let mut config = rdkafka::config::ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (k, v) in &settings.options {
        config.set(k, v);
    }
    config.create().map_err(|error| KafkaSetupError::Client {
        role: "admin client",
        brokers: settings.brokers.clone(),
        error,
    })
}
