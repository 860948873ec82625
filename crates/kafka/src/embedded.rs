//! The embedded broker: librdkafka's in-process mock cluster, for the zero-setup demo and
//! fast unit tests only. It does not implement transaction isolation and keeps at most
//! ~5 MiB or 100k messages per partition; never test delivery guarantees on it.
use crate::{KafkaSetupError, TopicSpec};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running in-process cluster. Dropping it stops the cluster.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap_servers())
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster on a loopback port.
    pub fn start() -> Result<EmbeddedBroker, KafkaSetupError> {
        let cluster = MockCluster::new(1).map_err(|source| KafkaSetupError::Embedded { source })?;
        Ok(EmbeddedBroker { cluster })
    }

    /// `host:port` list for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates topics (the mock cluster ignores the replication factor beyond 1).
    pub fn create_topics(&self, topics: &[TopicSpec]) -> Result<(), KafkaSetupError> {
        for t in topics {
            self.cluster
                .create_topic(&t.name, t.partitions, 1)
                .map_err(|e| KafkaSetupError::Topic {
                    topic: t.name.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }
}
