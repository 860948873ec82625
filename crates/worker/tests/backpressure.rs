//! Backpressure on the embedded broker: a payload-byte bound below one input throttles the
//! worker but never deadlocks it. (Own test binary: the metrics recorder of `embedded.rs`
//! is process-wide.)
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use argus_wire::Prediction;
use argus_worker::{WorkerConfig, WorkerStats};
use common::{model, produce_frames, read, setup};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A payload-byte bound smaller than one input: the worker takes one input at a time (and
/// pauses its partitions once that lasts), yet finishes every input — the bound throttles,
/// it never deadlocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_bound_below_one_input_throttles_but_finishes_everything() {
    let (_broker, settings) = setup("in", 2);
    let _producer = produce_frames(&settings, "in", 20, 2, 1).await;
    let mut config = WorkerConfig::new("w", vec!["in".into()]);
    config.max_in_flight_bytes = 1;
    config.pause_after = Duration::from_millis(50);
    let stats = Arc::new(WorkerStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(argus_worker::run(
        config,
        settings.consumer("g", "w").unwrap(),
        settings.producer("w").unwrap(),
        model(),
        stats.clone(),
        stop.clone(),
    ));
    let preds = tokio::task::spawn_blocking({
        let s = settings.clone();
        move || read(&s, "predictions", 1, 20)
    })
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(preds.len(), 20);
    let mut seen: Vec<(String, u64)> = preds
        .iter()
        .map(|p| {
            let p: Prediction = serde_json::from_slice(p).unwrap();
            (
                p.input.source_id.unwrap_or_default(),
                p.input.sequence.unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "every input once");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.predicted.load(Relaxed), 20);
}
