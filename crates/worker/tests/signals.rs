//! Fast tier on the in-process broker: the drain signal shows a partition stuck on a slow
//! input, and inputs older than `max_age` get a stale (v2) prediction without running.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use argus_wire::{now_us, Prediction, PredictionOutcome};
use argus_worker::{metrics as m, WorkerConfig, WorkerStats};
use common::{model, produce_frames, read, setup};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn snapshotter() -> &'static Snapshotter {
    static S: OnceLock<Snapshotter> = OnceLock::new();
    S.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let s = recorder.snapshotter();
        recorder.install().unwrap();
        s
    })
}

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// Value of a gauge with these labels in a snapshot. (Take one snapshot and read every
/// value from it: the debugging recorder hands a gauge's update out once.)
fn gauge(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    snapshot
        .iter()
        .filter(|(k, _, _, _)| k.key().name() == name)
        .filter(|(k, _, _, _)| {
            labels
                .iter()
                .all(|(lk, lv)| k.key().labels().any(|l| l.key() == *lk && l.value() == *lv))
        })
        .find_map(|(_, _, _, v)| match v {
            DebugValue::Gauge(g) => Some(g.into_inner()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_stuck_on_a_slow_input_shows_in_the_drain_signal() {
    snapshotter();
    let (_broker, settings) = setup("slow-in", 1);
    drop(produce_frames(&settings, "slow-in", 6, 1, now_us()).await);
    let mut config = WorkerConfig::new("w-slow", vec!["slow-in".into()]);
    config.inject_delay = Duration::from_millis(2500);
    config.max_batch = 1;
    config.max_in_flight = 2;
    config.stuck_after = Duration::from_secs(1);
    let stats = Arc::new(WorkerStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(argus_worker::run(
        config,
        settings.consumer("g-slow", "w-slow").unwrap(),
        settings.producer("w-slow").unwrap(),
        model(),
        stats.clone(),
        stop.clone(),
    ));
    let labels = [("topic", "slow-in"), ("partition", "0")];
    let start = Instant::now();
    let (mut stuck, mut lag, mut oldest, mut drain, mut lag_seconds) =
        (None, None, None, None, None);
    while start.elapsed() < Duration::from_secs(20) {
        let snap = snapshotter().snapshot().into_vec();
        stuck = gauge(&snap, m::PARTITION_STUCK, &labels);
        lag = gauge(&snap, m::LAG_RECORDS, &labels);
        oldest = gauge(&snap, m::OLDEST_IN_FLIGHT_SECONDS, &labels);
        drain = gauge(&snap, m::DRAIN_SECONDS, &[]);
        lag_seconds = gauge(&snap, m::LAG_SECONDS, &labels);
        // The gauges are refreshed on their own ticks: wait for all three to show it.
        if stuck == Some(1.0) && lag.is_some_and(|l| l > 0.0) && drain.is_some_and(|d| d > 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    // Drain gives up on the slow inputs after its deadline; they would be redelivered.
    task.await.unwrap().unwrap();
    assert_eq!(
        stuck,
        Some(1.0),
        "stuck flag (lag {lag:?}, oldest {oldest:?})"
    );
    assert!(oldest.unwrap() >= 1.0, "oldest in flight {oldest:?}");
    let lag = lag.unwrap();
    assert!((1.0..=6.0).contains(&lag), "lag {lag}");
    assert!(lag_seconds.unwrap() >= 0.0);
    assert!(
        drain.unwrap() > 0.0,
        "a backlog that is not draining: {drain:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_older_than_max_age_get_a_stale_prediction_without_running() {
    snapshotter();
    let (_broker, settings) = setup("old-in", 1);
    let minute_ago = now_us() - 60_000_000;
    drop(produce_frames(&settings, "old-in", 3, 1, minute_ago).await);
    drop(produce_frames(&settings, "old-in", 2, 1, now_us()).await);
    let mut config = WorkerConfig::new("w-stale", vec!["old-in".into()]);
    config.max_age = Some(Duration::from_secs(10));
    let stats = Arc::new(WorkerStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(argus_worker::run(
        config,
        settings.consumer("g-stale", "w-stale").unwrap(),
        settings.producer("w-stale").unwrap(),
        model(),
        stats.clone(),
        stop.clone(),
    ));
    let preds = tokio::task::spawn_blocking({
        let s = settings.clone();
        move || read(&s, "predictions", 1, 5)
    })
    .await
    .unwrap();
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(preds.len(), 5);
    let v1 = jsonschema::validator_for(
        &serde_json::from_str(argus_wire::PREDICTION_JSON_SCHEMA).unwrap(),
    )
    .unwrap();
    let v2 = jsonschema::validator_for(
        &serde_json::from_str(argus_wire::PREDICTION_V2_JSON_SCHEMA).unwrap(),
    )
    .unwrap();
    let mut stale = 0;
    for bytes in &preds {
        let json: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let p: Prediction = serde_json::from_value(json.clone()).unwrap();
        match p.outcome {
            PredictionOutcome::Stale => {
                stale += 1;
                assert!(v2.is_valid(&json), "{json}");
                assert_eq!(p.schema, argus_wire::PREDICTION_SCHEMA_V2);
                let skipped = p.skipped.unwrap();
                assert!(skipped.age_us >= 60_000_000 && skipped.max_age_us == 10_000_000);
                assert_eq!(p.timings.inference_us, 0, "the model did not run");
            }
            PredictionOutcome::Ok => {
                assert!(v1.is_valid(&json), "ok predictions stay v1: {json}");
                assert!(p.label.is_some());
            }
        }
    }
    assert_eq!(stale, 3);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.stale.load(Relaxed), 3);
    assert_eq!(stats.predicted.load(Relaxed), 2);
}
