//! Following a model's deployment: a background task tails the registry topic (no consumer
//! group: partition 0 assigned from its start) and publishes every change of
//! `deploy/{name}` on a `watch` channel.
//!
//! The first value is published once the task has read the topic to the end it had when
//! following began, so a starting worker sees the deployment in effect, not the
//! revisions before it: wait on `changed()` before the first read. `None` then means no
//! deployment was ever written (or it was deleted). After that every change is published
//! (a receiver that lags sees only the latest, which is what a worker wants). The task ends
//! when every receiver is dropped; read errors are logged and retried every second.
use crate::error::Result;
use crate::metrics as m;
use crate::records::DeploymentRecord;
use crate::settings::RegistrySettings;
use crate::topic::open_reader;
use argus_kafka::rdkafka::consumer::StreamConsumer;
use argus_kafka::rdkafka::message::Message;
use argus_kafka::KafkaSettings;
use std::time::Duration;
use tokio::sync::watch;

/// Starts following `name`'s deployment. Must be called inside a tokio runtime.
pub fn spawn(
    kafka: &KafkaSettings,
    settings: &RegistrySettings,
    name: &str,
) -> Result<watch::Receiver<Option<DeploymentRecord>>> {
    let (tx, rx) = watch::channel(None);
    let kafka = kafka.clone();
    let topic = settings.topic.clone();
    let timeout = settings.timeout;
    let name = name.to_string();
    tokio::spawn(async move {
        let (consumer, low, end) = loop {
            tokio::select! {
                _ = tx.closed() => return,
                opened = open_reader(&kafka, &topic, timeout) => match opened {
                    Ok((c, low, end)) => break (c, low, end),
                    Err(e) => {
                        tracing::warn!(topic = %topic, model = %name, error = %e, "cannot read the registry topic yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        };
        tail(consumer, end, end <= low, &topic, &name, &tx).await;
    });
    Ok(rx)
}

async fn tail(
    consumer: StreamConsumer,
    end: i64,
    empty: bool,
    topic: &str,
    name: &str,
    tx: &watch::Sender<Option<DeploymentRecord>>,
) {
    let key = format!("deploy/{name}");
    let mut latest: Option<DeploymentRecord> = None;
    let mut caught_up = empty;
    if caught_up {
        publish(tx, name, None);
    }
    loop {
        let message = tokio::select! {
            _ = tx.closed() => return,
            m = consumer.recv() => m,
        };
        let m = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(topic, model = name, error = %e, "registry follower read failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut changed = false;
        if m.key() == Some(key.as_bytes()) {
            changed = true;
            latest = match m.payload().map(serde_json::from_slice::<DeploymentRecord>) {
                None => None,
                Some(Ok(record)) => Some(record),
                Some(Err(e)) => {
                    tracing::warn!(topic, model = name, offset = m.offset(), error = %e, "deployment record does not parse; ignored");
                    changed = false;
                    latest
                }
            };
        }
        let reached_end = m.offset() + 1 >= end;
        if (changed && caught_up) || (!caught_up && reached_end) {
            caught_up = true;
            publish(tx, name, latest.clone());
        }
    }
}

fn publish(
    tx: &watch::Sender<Option<DeploymentRecord>>,
    name: &str,
    record: Option<DeploymentRecord>,
) {
    let revision = record.as_ref().map_or(0, |r| r.revision);
    metrics::gauge!(m::DEPLOYMENT_REVISION, "model" => name.to_string()).set(revision as f64);
    tx.send_replace(record);
}
