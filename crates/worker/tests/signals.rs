//! Fast tier on the in-process broker: the drain signal shows a partition stuck on a slow
//! input, and inputs older than `max_age` get a stale (v2) prediction without running.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::util::Timeout;
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_kafka::{EmbeddedBroker, KafkaSettings, TopicSpec};
use argus_model::Classifier;
use argus_wire::{
    encode_envelope, now_us, Envelope, Payload, PixelLayout, Prediction, PredictionOutcome,
    RawImage,
};
use argus_worker::{metrics as m, WorkerConfig, WorkerStats};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::path::PathBuf;
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

fn model() -> Arc<Classifier> {
    Arc::new(
        Classifier::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person"),
        )
        .unwrap(),
    )
}

async fn setup(input: &str) -> (EmbeddedBroker, KafkaSettings) {
    let broker = EmbeddedBroker::start().unwrap();
    let mut settings = KafkaSettings::new(broker.bootstrap_servers());
    settings
        .consumer_options
        .insert("fetch.wait.max.ms".into(), "10".into());
    broker
        .create_topics(&[
            TopicSpec::new(input, 1),
            TopicSpec::new("predictions", 1),
            TopicSpec::new("alerts", 1),
            TopicSpec::new("dlq", 1),
        ])
        .unwrap();
    (broker, settings)
}

async fn produce(settings: &KafkaSettings, topic: &str, n: u64, capture_time_us: i64) {
    let producer: FutureProducer = settings.producer("test").unwrap();
    for i in 0..n {
        let env = Envelope {
            schema_version: 1,
            source_id: "cam-0".into(),
            sequence: i,
            capture_time_us,
            payload: Payload::Raw(RawImage {
                width: 8,
                height: 8,
                layout: PixelLayout::Gray8,
                data: vec![(i * 20) as u8; 64],
            }),
        };
        producer
            .send(
                FutureRecord::to(topic)
                    .key("cam-0")
                    .payload(&encode_envelope(&env).unwrap()),
                Timeout::After(Duration::from_secs(5)),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

fn read(settings: &KafkaSettings, topic: &str, want: usize) -> Vec<Vec<u8>> {
    let c: BaseConsumer = settings
        .consumer_config("reader", "reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
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
async fn a_partition_stuck_on_a_slow_input_shows_in_the_drain_signal() {
    snapshotter();
    let (_broker, settings) = setup("slow-in").await;
    produce(&settings, "slow-in", 6, now_us()).await;
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
        if stuck == Some(1.0) && lag.is_some_and(|l| l > 0.0) {
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
    let (_broker, settings) = setup("old-in").await;
    let minute_ago = now_us() - 60_000_000;
    produce(&settings, "old-in", 3, minute_ago).await;
    produce(&settings, "old-in", 2, now_us()).await;
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
        move || read(&s, "predictions", 5)
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
