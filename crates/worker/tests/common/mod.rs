//! Helpers shared by the worker's embedded-broker tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
use argus_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::util::Timeout;
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_kafka::{EmbeddedBroker, KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_wire::{encode_envelope, Envelope, Payload, PixelLayout, RawImage};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bundled camera model.
pub fn model() -> Arc<Classifier> {
    Arc::new(
        Classifier::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person"),
        )
        .unwrap(),
    )
}

/// An embedded broker with `input` (`partitions`) and single-partition predictions, alerts
/// and dlq topics; consumers fetch with a 10 ms wait.
pub fn setup(input: &str, partitions: i32) -> (EmbeddedBroker, KafkaSettings) {
    let broker = EmbeddedBroker::start().unwrap();
    let mut settings = KafkaSettings::new(broker.bootstrap_servers());
    settings
        .consumer_options
        .insert("fetch.wait.max.ms".into(), "10".into());
    broker
        .create_topics(&[
            TopicSpec::new(input, partitions),
            TopicSpec::new("predictions", 1),
            TopicSpec::new("alerts", 1),
            TopicSpec::new("dlq", 1),
        ])
        .unwrap();
    (broker, settings)
}

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

/// Sends `n` small raw frames to `topic` from `cameras` cameras (cam-0, cam-1, … in turn,
/// keyed by camera), captured at `capture_time_us`; returns the producer.
pub async fn produce_frames(
    settings: &KafkaSettings,
    topic: &str,
    n: u64,
    cameras: u64,
    capture_time_us: i64,
) -> FutureProducer {
    let producer: FutureProducer = settings.producer("test").unwrap();
    for i in 0..n {
        let env = Envelope {
            schema_version: 1,
            source_id: format!("cam-{}", i % cameras.max(1)),
            sequence: i,
            capture_time_us,
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
                FutureRecord::to(topic).key(&env.source_id).payload(&value),
                Timeout::After(Duration::from_secs(5)),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer
}
