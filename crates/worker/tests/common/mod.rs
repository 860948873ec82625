//! Helpers shared by the worker's embedded-broker tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
use argus_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::util::Timeout;
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_kafka::KafkaSettings;
use argus_wire::{encode_envelope, Envelope, Payload, PixelLayout, RawImage};
use std::time::{Duration, Instant};

/// Reads up to `want` messages of `topic` from the beginning (30 s at most).
pub fn read(settings: &KafkaSettings, topic: &str, partitions: i32, want: usize) -> Vec<Vec<u8>> {
    let c: BaseConsumer = settings
        .consumer_config("reader", "reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < want && start.elapsed() < Duration::from_secs(30) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            out.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    out
}

/// Sends `n` small raw frames to topic `in` (keys cam-0/cam-1); returns the producer.
pub async fn produce_frames(settings: &KafkaSettings, n: u64) -> FutureProducer {
    let producer: FutureProducer = settings.producer("test").unwrap();
    for i in 0..n {
        let env = Envelope {
            schema_version: 1,
            source_id: format!("cam-{}", i % 2),
            sequence: i,
            capture_time_us: 1,
            payload: Payload::Raw(RawImage {
                width: 8,
                height: 8,
                layout: PixelLayout::Gray8,
                data: vec![(i * 20) as u8; 64],
            }),
        };
        let value = encode_envelope(&env).unwrap();
        producer
            .send(
                FutureRecord::to("in").key(&env.source_id).payload(&value),
                Timeout::After(Duration::from_secs(5)),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer
}
