//! Fast tier: the worker on the in-process broker (librdkafka's mock cluster). Checks the
//! pipeline's wiring and its metrics; delivery guarantees are tested on the real broker in
//! `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use argus_kafka::rdkafka::producer::FutureRecord;
use argus_kafka::rdkafka::util::Timeout;
use argus_wire::Prediction;
use argus_worker::{metrics as m, AlertRule, WorkerConfig, WorkerStats};
use common::{model, produce_frames, read, setup};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_the_embedded_broker_predicts_dead_letters_and_counts() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let (_broker, settings) = setup("in", 2);
    let model = model();

    let producer = produce_frames(&settings, "in", 10, 2, 1).await;
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
