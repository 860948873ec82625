//! Topic admin: creation (idempotent) and deletion.
//!
//! Creation is idempotent also on clusters with ACLs: a principal without `Create` gets an
//! authorization error even for topics that exist, so such a refusal is checked against the
//! cluster's metadata ([`CreateOutcome`]) and passes when the topic is there.
use crate::{KafkaSettings, KafkaSetupError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
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

/// What one topic's CreateTopics result means for [`ensure_topics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Created now.
    Created,
    /// It existed already.
    Exists,
    /// Creating was refused as not authorized (ACLs): it may exist all the same; look it up.
    LookUp,
    /// Creating failed.
    Failed,
}

impl CreateOutcome {
    /// The outcome of a CreateTopics result.
    pub fn of(result: Result<(), RDKafkaErrorCode>) -> Self {
        match result {
            Ok(()) => CreateOutcome::Created,
            Err(RDKafkaErrorCode::TopicAlreadyExists) => CreateOutcome::Exists,
            Err(
                RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => CreateOutcome::LookUp,
            Err(_) => CreateOutcome::Failed,
        }
    }
}

/// Creates each topic that does not exist yet; existing topics are left as they are (also
/// when the principal may not create topics: see [`CreateOutcome`]).
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
        let (topic, code) = match result {
            Ok(topic) => (topic, None),
            Err((topic, code)) => (topic, Some(code)),
        };
        match CreateOutcome::of(code.map_or(Ok(()), Err)) {
            CreateOutcome::Created => tracing::info!(topic = %topic, "topic created"),
            CreateOutcome::Exists => tracing::debug!(topic = %topic, "topic exists"),
            CreateOutcome::LookUp if topic_exists(&admin, &topic) => {
                tracing::info!(topic = %topic, "not allowed to create topics; the topic exists")
            }
            CreateOutcome::LookUp => {
                return Err(KafkaSetupError::Topic {
                    reason: format!(
                        "not authorized to create it and it does not exist: create {topic} ahead, or grant this principal Create on it"
                    ),
                    topic,
                })
            }
            CreateOutcome::Failed => {
                return Err(KafkaSetupError::Topic {
                    topic,
                    reason: code.map(|c| c.to_string()).unwrap_or_default(),
                })
            }
        }
    }
    Ok(())
}

/// Whether the cluster's metadata lists `topic` (a short, start-up-only blocking lookup).
fn topic_exists(admin: &AdminClient<DefaultClientContext>, topic: &str) -> bool {
    admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .is_ok_and(|m| {
            m.topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        })
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

/// The value of the configuration entry `key` of `topic` as the broker reports it (its
/// own setting or the broker default it inherits); `None` when the broker does not list it.
pub async fn topic_config(
    settings: &KafkaSettings,
    topic: &str,
    key: &str,
) -> Result<Option<String>, KafkaSetupError> {
    let admin = admin_client(settings)?;
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let failed = |reason: String| KafkaSetupError::Topic {
        topic: topic.into(),
        reason: format!("cannot describe its configuration: {reason}"),
    };
    let results = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
        .await
        .map_err(|e| failed(e.to_string()))?;
    for result in results {
        let resource = result.map_err(|code| failed(code.to_string()))?;
        if let Some(entry) = resource.get(key) {
            return Ok(entry.value.clone());
        }
    }
    Ok(None)
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

#[cfg(test)]
mod tests {
    use super::CreateOutcome;
    use rdkafka::types::RDKafkaErrorCode as C;

    #[test]
    fn an_authorization_refusal_looks_the_topic_up_other_errors_fail() {
        assert_eq!(CreateOutcome::of(Ok(())), CreateOutcome::Created);
        assert_eq!(
            CreateOutcome::of(Err(C::TopicAlreadyExists)),
            CreateOutcome::Exists
        );
        for code in [C::TopicAuthorizationFailed, C::ClusterAuthorizationFailed] {
            assert_eq!(
                CreateOutcome::of(Err(code)),
                CreateOutcome::LookUp,
                "{code:?}"
            );
        }
        for code in [
            C::InvalidReplicationFactor,
            C::PolicyViolation,
            C::InvalidConfig,
        ] {
            assert_eq!(
                CreateOutcome::of(Err(code)),
                CreateOutcome::Failed,
                "{code:?}"
            );
        }
    }
}
