//! Fast tier: the worker on the in-process broker (librdkafka's mock cluster). Checks the
//! pipeline's wiring and its metrics; delivery guarantees are tested on the real broker in
//! `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::util::Timeout;
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_kafka::{EmbeddedBroker, KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_wire::{encode_envelope, Envelope, Payload, PixelLayout, Prediction, RawImage};
use argus_worker::{metrics as m, AlertRule, WorkerConfig, WorkerStats};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn read(settings: &KafkaSettings, topic: &str, partitions: i32, want: usize) -> Vec<Vec<u8>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_the_embedded_broker_predicts_dead_letters_and_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let broker = EmbeddedBroker::start().unwrap();
    let mut settings = KafkaSettings::new(broker.bootstrap_servers());
    settings
        .consumer_options
        .insert("fetch.wait.max.ms".into(), "10".into());
    broker
        .create_topics(&[
            TopicSpec::new("in", 2),
            TopicSpec::new("predictions", 1),
            TopicSpec::new("alerts", 1),
            TopicSpec::new("dlq", 1),
        ])
        .unwrap();
    let model = Arc::new(
        Classifier::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person"),
        )
        .unwrap(),
    );

    let producer: FutureProducer = settings.producer("test").unwrap();
    for i in 0..10u64 {
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
        .send(
            FutureRecord::to("in").key("bad").payload(b"junk"),
            Timeout::After(Duration::from_secs(5)),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let mut config = WorkerConfig::new("w", vec!["in".into()]);
    config.rules = vec![AlertRule {
        name: "any".into(),
        label: "person".into(),
        threshold: 0.0,
    }];
    let stats = Arc::new(WorkerStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(argus_worker::run(
        config,
        settings.consumer("g", "w").unwrap(),
        settings.producer("w").unwrap(),
        model,
        stats.clone(),
        stop.clone(),
    ));
    let preds = tokio::task::spawn_blocking({
        let s = settings.clone();
        move || read(&s, "predictions", 1, 10)
    })
    .await
    .unwrap();
    let alerts = tokio::task::spawn_blocking({
        let s = settings.clone();
        move || read(&s, "alerts", 1, 10)
    })
    .await
    .unwrap();
    let dlq = tokio::task::spawn_blocking({
        let s = settings.clone();
        move || read(&s, "dlq", 1, 1)
    })
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap().unwrap();

    assert_eq!(preds.len(), 10);
    assert_eq!(alerts.len(), 10, "threshold 0 alerts on every input");
    assert_eq!(dlq, vec![b"junk".to_vec()]);
    for p in &preds {
        let p: Prediction = serde_json::from_slice(p).unwrap();
        assert_eq!(p.input.topic, "in");
        assert_eq!(p.worker, "w");
    }
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.consumed.load(Relaxed), 11);
    assert_eq!(stats.predicted.load(Relaxed), 10);
    assert_eq!(stats.dead_lettered.load(Relaxed), 1);

    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, label: Option<(&str, &str)>| -> u64 {
        snapshot
            .iter()
            .filter(|(k, _, _, _)| k.key().name() == name)
            .filter(|(k, _, _, _)| {
                label.is_none_or(|(lk, lv)| {
                    k.key().labels().any(|l| l.key() == lk && l.value() == lv)
                })
            })
            .map(|(_, _, _, v)| {
                if let DebugValue::Counter(c) = v {
                    *c
                } else {
                    0
                }
            })
            .sum()
    };
    assert_eq!(counter(m::INPUTS, None), 11);
    assert_eq!(counter(m::DLQ, Some(("reason", "decode"))), 1);
    assert_eq!(counter(m::OUTPUTS, Some(("kind", "prediction"))), 10);
    assert_eq!(counter(m::OUTPUTS, Some(("kind", "alert"))), 10);
    let inference_samples: usize = snapshot
        .iter()
        .filter(|(k, _, _, _)| k.key().name() == m::INFERENCE_SECONDS)
        .map(|(_, _, _, v)| {
            if let DebugValue::Histogram(h) = v {
                h.len()
            } else {
                0
            }
        })
        .sum();
    assert_eq!(inference_samples, 10);
}
