//! Kafka I/O of the registry topic: reading it to its end (no consumer group: partition 0
//! assigned, read from the beginning) and writing records with delivery awaited.
use crate::error::{RegistryError, Result};
use crate::records::Key;
use crate::state::RegistryState;
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::message::Message;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use argus_kafka::KafkaSettings;
use std::collections::BTreeMap;
use std::time::Duration;

/// The registry topic has one partition: every record in one order.
pub const PARTITION: i32 = 0;

/// What a read to the end found.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The fold of every record.
    pub state: RegistryState,
    /// The chunk bytes of the version asked for, by index.
    pub chunks: BTreeMap<u32, Vec<u8>>,
}

/// A reader of `topic` positioned at its start, with the partition's low and high
/// watermarks when it was opened.
pub(crate) async fn open_reader(
    kafka: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<(StreamConsumer, i64, i64)> {
    let consumer = kafka.reader("argus-registry")?;
    let t = topic.to_string();
    let (consumer, marks) = tokio::task::spawn_blocking(move || {
        let marks = consumer.fetch_watermarks(&t, PARTITION, timeout);
        (consumer, marks)
    })
    .await
    .map_err(|_| RegistryError::Timeout {
        op: "watermarks",
        topic: topic.into(),
        within: timeout,
    })?;
    let (low, high) = marks.map_err(|source| RegistryError::Io {
        op: "watermarks",
        topic: topic.into(),
        source,
    })?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, PARTITION, Offset::Offset(low))
        .and_then(|()| consumer.assign(&tpl))
        .map_err(|source| RegistryError::Io {
            op: "assign",
            topic: topic.into(),
            source,
        })?;
    Ok((consumer, low, high.max(low)))
}

/// Reads `topic` from its start to the end it had when the read began, folding every
/// record; the chunk bytes of `chunks_of` (name, version) are kept. A value that does not
/// parse is logged and skipped (one bad record must not hide the others).
pub(crate) async fn read_to_end(
    kafka: &KafkaSettings,
    topic: &str,
    timeout: Duration,
    chunks_of: Option<(&str, &str)>,
) -> Result<Snapshot> {
    let (consumer, low, end) = open_reader(kafka, topic, timeout).await?;
    let mut snap = Snapshot::default();
    let mut next = low;
    while next < end {
        let m = match tokio::time::timeout(timeout, consumer.recv()).await {
            Err(_) => {
                return Err(RegistryError::Timeout {
                    op: "read",
                    topic: topic.into(),
                    within: timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(RegistryError::Io {
                    op: "read",
                    topic: topic.into(),
                    source,
                })
            }
            Ok(Ok(m)) => m,
        };
        let position = m.offset();
        next = position + 1;
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        if let (
            Some((n, v)),
            Some(Key::Chunk {
                name,
                version,
                index,
            }),
        ) = (chunks_of, Key::parse(key))
        {
            if name == n && version == v {
                match m.payload() {
                    Some(bytes) => snap.chunks.insert(index, bytes.to_vec()),
                    None => snap.chunks.remove(&index),
                };
            }
        }
        if let Err(e) = snap.state.apply(topic, key, m.payload(), position) {
            tracing::warn!(topic, key, offset = position, error = %e, "registry record skipped");
        }
    }
    Ok(snap)
}

/// Writes `records` (key, value) in order and waits until the broker acknowledged each
/// (idempotent producer, acks=all).
pub(crate) async fn write(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
    timeout: Duration,
) -> Result<()> {
    let mut pending = Vec::with_capacity(records.len());
    for (key, value) in records {
        let record = FutureRecord::to(topic)
            .partition(PARTITION)
            .key(key.as_bytes())
            .payload(value.as_slice());
        let delivery = producer
            .send_result(record)
            .map_err(|(source, _)| RegistryError::Io {
                op: "produce",
                topic: topic.into(),
                source,
            })?;
        pending.push(delivery);
    }
    let all = futures::future::join_all(pending);
    // librdkafka's own message.timeout.ms (30 s) bounds each delivery; this outer bound
    // covers the whole batch of chunks.
    let within = timeout * 3 + Duration::from_secs(records.len() as u64);
    let results = tokio::time::timeout(within, all)
        .await
        .map_err(|_| RegistryError::Timeout {
            op: "produce",
            topic: topic.into(),
            within,
        })?;
    for result in results {
        match result {
            Ok(Ok(_)) => {}
            Ok(Err((source, _))) => {
                return Err(RegistryError::Io {
                    op: "produce",
                    topic: topic.into(),
                    source,
                })
            }
            Err(_canceled) => {
                return Err(RegistryError::Timeout {
                    op: "produce",
                    topic: topic.into(),
                    within,
                })
            }
        }
    }
    Ok(())
}
