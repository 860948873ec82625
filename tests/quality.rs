//! Live quality on the real broker: the drift sidecar joins predictions with ground-truth
//! labels (`argus drift watch --labels`). A good version and a deliberately degraded one
//! serve different cameras; labels arrive a second later (some early, some twice, some for
//! predictions that never came). The degraded version's alarm fires and its alert reaches the
//! alerts topic; the good one's does not. One sidecar and two sidecars publish the same
//! quality reports, and every report and alert matches its schema.
#![allow(clippy::unwrap_used)]
use argus_drift::profile::ImageProfileBuilder;
use argus_drift::quality::{QualityAlert, QualityReport};
use argus_drift::sidecar::{self, DriftConfig, QualityWiring};
use argus_e2e::*;
use argus_kafka::rdkafka::message::Message;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_stats::live::LiveMetric;
use argus_stats::profile::{Profile, ProfileSettings};
use argus_stats::report::ModelInfo;
use argus_wire::{
    InputRef, Label, LabelSource, ModelRef, Prediction, PredictionOutcome, Score, Timings,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const PANE_S: i64 = 2;
const SECONDS: i64 = 16;
/// Predictions per camera per second.
const RATE: i64 = 10;
const CAMERAS: u32 = 4;
const LABEL_DELAY_US: i64 = 1_000_000;

/// A small image reference: the join does not need features, the sidecar needs a profile.
fn reference() -> Arc<Profile> {
    let mut b = ImageProfileBuilder::new(ProfileSettings::default(), None);
    for seq in 0..20u64 {
        let img = argus_producer::scene::render(1, 0, seq, 64, 48).image;
        let payload = argus_wire::Payload::Encoded {
            format: argus_wire::ImageFormat::Jpeg,
            bytes: argus_producer::source::encode_jpeg(&img, 85).unwrap(),
        };
        b.add("cam-0", &payload, None).unwrap();
    }
    Arc::new(b.build("quality-reference", "test", "test").unwrap())
}

/// Cameras 0 and 1 are served by version 1 (right 19 times in 20), cameras 2 and 3 by
/// version 2 (camera 2 always says person, camera 3 never: right half the time).
fn prediction(input: &str, offset: i64, camera: u32, event_us: i64) -> (Prediction, bool) {
    let truth = offset % 3 == 0;
    let (version, score): (&str, f32) = if camera < 2 {
        let right = offset % 40 != 4;
        ("1", if truth == right { 0.9 } else { 0.1 })
    } else {
        ("2", if offset % 2 == 0 { 0.8 } else { 0.2 })
    };
    let p = Prediction {
        schema: argus_wire::PREDICTION_SCHEMA.into(),
        id: format!("{input}/0/{offset}"),
        input: InputRef {
            topic: input.into(),
            partition: 0,
            offset,
            key: Some(format!("cam-{camera}")),
            source_id: Some(format!("cam-{camera}")),
            sequence: None,
            capture_time_us: Some(event_us),
        },
        model: ModelRef {
            name: "camera-person".into(),
            version: version.into(),
            sha256: "0".repeat(64),
        },
        outcome: PredictionOutcome::Ok,
        label: Some(if score >= 0.5 { "person" } else { "empty" }.into()),
        score: Some(score.max(1.0 - score)),
        top: vec![
            Score {
                label: "person".into(),
                index: 1,
                score,
            },
            Score {
                label: "empty".into(),
                index: 0,
                score: 1.0 - score,
            },
        ],
        timings: Timings::default(),
        worker: "w".into(),
        produced_at_us: event_us,
        skipped: None,
        frame: None,
        detections: None,
    };
    (p, truth)
}

async fn send(producer: &FutureProducer, topic: &str, key: &str, body: &[u8], ts_us: i64) {
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(body)
                .timestamp(ts_us / 1000),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// Predictions on `predictions` (two partitions, by camera) and their labels on `labels`,
/// each label published a second after its prediction's capture; then one prediction and
/// one label far ahead move every watermark past the data.
async fn produce(t0: i64, input: &str, predictions: &str, labels: &str) {
    let producer: FutureProducer = settings().producer("quality-test").unwrap();
    let mut offset = 0;
    for i in 0..(SECONDS * RATE) {
        for c in 0..CAMERAS {
            let t = t0 + i * 1_000_000 / RATE;
            let (p, truth) = prediction(input, offset, c, t);
            let body = serde_json::to_vec(&p).unwrap();
            send(&producer, predictions, &format!("cam-{c}"), &body, t).await;
            let class = if truth { "person" } else { "empty" };
            let mut label = Label::new(p.id.clone(), class, LabelSource::Annotator);
            label.labelled_at_us = t + LABEL_DELAY_US;
            // Every 50th label comes before its prediction (its pane is earlier), every
            // 40th twice.
            let at = if offset % 50 == 0 {
                t - LABEL_DELAY_US
            } else {
                t + LABEL_DELAY_US
            };
            let lb = serde_json::to_vec(&label).unwrap();
            send(&producer, labels, &p.id, &lb, at).await;
            if offset % 40 == 1 {
                send(&producer, labels, &p.id, &lb, at).await;
            }
            offset += 1;
        }
    }
    // Labels for predictions that never came.
    for k in 0..5 {
        let l = Label::new(
            format!("{input}/0/{}", 1_000_000 + k),
            "person",
            LabelSource::System,
        );
        let at = t0 + SECONDS * 1_000_000;
        send(
            &producer,
            labels,
            &l.id,
            &serde_json::to_vec(&l).unwrap(),
            at,
        )
        .await;
    }
    let far = t0 + 60_000_000;
    for c in 0..CAMERAS {
        let (p, _) = prediction(input, offset, c, far);
        send(
            &producer,
            predictions,
            &format!("cam-{c}"),
            &serde_json::to_vec(&p).unwrap(),
            far,
        )
        .await;
        offset += 1;
    }
    let l = Label::new(format!("{input}/0/{offset}"), "person", LabelSource::System);
    send(
        &producer,
        labels,
        &l.id,
        &serde_json::to_vec(&l).unwrap(),
        far,
    )
    .await;
}

struct Topics {
    input: String,
    predictions: String,
    labels: String,
}

fn config(t: &Topics, group: &str, quality: &str, alerts: &str, id: &str) -> DriftConfig {
    // Panes and reports topics are set by the caller.
    let mut c = DriftConfig::new(
        &t.input,
        id,
        ModelInfo {
            id: "camera-person".into(),
            version: "-".into(),
        },
    );
    c.predictions_topic = Some(t.predictions.clone());
    c.group = group.to_owned();
    c.pane = Duration::from_secs(PANE_S as u64);
    c.window_panes = 2;
    // Early labels are published a second before the labels around them.
    c.lateness = Duration::from_secs(3);
    c.max_fps = 0.0;
    c.alarm_k = 2;
    c.tick = Duration::from_millis(100);
    c.quality = Some(QualityWiring {
        labels_topic: t.labels.clone(),
        quality_topic: quality.to_owned(),
        alerts_topic: alerts.to_owned(),
        horizon: Duration::from_secs(4),
        positive: Some("person".into()),
        threshold: Some(0.5),
        floors: vec![(LiveMetric::Accuracy, 0.75)],
        reference: vec![(LiveMetric::Accuracy, 0.9)],
        alpha: 0.01,
        min_labels: 20,
        alarm_k: 2,
    });
    c
}

/// Quality reports by (version, segment, window end) once every window of both versions'
/// fleet series is on the quality topic; and the alerts topic.
async fn run_sidecars(
    t0: i64,
    t: &Topics,
    n: usize,
) -> (
    BTreeMap<(String, String, i64), QualityReport>,
    Vec<QualityAlert>,
) {
    let group = unique("quality");
    let quality = unique("quality");
    let alerts = unique("alerts");
    let panes = unique("drift.panes");
    let reports = unique("drift");
    // Made before the readers look for their partitions (the sidecar would create them too,
    // but a reader that starts first would find none).
    create_topics(&[(&quality, 1), (&alerts, 1)]).await;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut cfg = config(t, &group, &quality, &alerts, &format!("sidecar-{i}"));
        cfg.panes_topic.clone_from(&panes);
        cfg.reports_topic.clone_from(&reports);
        tasks.push(tokio::spawn(sidecar::run(
            cfg,
            settings(),
            reference(),
            sidecar::Outputs::default(),
            stop.clone(),
        )));
    }
    // Windows end every pane from t0 + 2 s to t0 + 18 s on each version's fleet series.
    let last_end = t0 + SECONDS * 1_000_000;
    let q = quality.clone();
    let messages = tokio::task::spawn_blocking(move || {
        read_until(&q, Duration::from_secs(150), |m| {
            ["1", "2"].iter().all(|v| {
                m.iter().any(|m| {
                    let r: QualityReport = serde_json::from_slice(m.payload().unwrap()).unwrap();
                    r.model.version == *v && r.segment == "*" && r.window.end_us >= last_end
                })
            })
        })
    })
    .await
    .unwrap();
    let values = validate_all(&messages, include_str!("../schemas/quality.v1.schema.json"));
    let a = alerts.clone();
    let alert_messages = tokio::task::spawn_blocking(move || {
        read_until(&a, Duration::from_secs(10), |m| m.len() >= 3)
    })
    .await
    .unwrap();
    stop.cancel();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    validate_all(
        &alert_messages,
        include_str!("../schemas/quality-alert.v1.schema.json"),
    );
    let mut got = BTreeMap::new();
    for v in values {
        let r: QualityReport = serde_json::from_value(v).unwrap();
        let key = (r.model.version.clone(), r.segment.clone(), r.window.end_us);
        assert!(got.insert(key, r).is_none(), "a window published twice");
    }
    let alerts = alert_messages
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    (got, alerts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn labels_for_a_degraded_version_raise_the_alarm_and_one_or_two_sidecars_agree() {
    let t = Topics {
        input: unique("frames"),
        predictions: unique("predictions"),
        labels: unique("labels"),
    };
    create_topics(&[(&t.input, 1), (&t.predictions, 2), (&t.labels, 2)]).await;
    // Event time of the first prediction: a pane boundary two minutes ago.
    let pane_us = PANE_S * 1_000_000;
    let t0 = (argus_wire::now_us() - 120_000_000) / pane_us * pane_us;
    produce(t0, &t.input, &t.predictions, &t.labels).await;

    let (one, alerts) = run_sidecars(t0, &t, 1).await;
    let fleet = |v: &str| -> Vec<&QualityReport> {
        one.values()
            .filter(|r| r.model.version == v && r.segment == "*")
            .collect()
    };
    for r in fleet("1").into_iter().chain(fleet("2")) {
        // Every prediction was labelled: early labels were held, late ones waited for.
        assert_eq!(r.coverage, 1.0, "{r:?}");
        assert_eq!(r.labelled, r.predictions);
    }
    let good = fleet("1");
    assert!(good.len() >= 7, "{}", good.len());
    for r in &good {
        let m = r.metrics.as_ref().unwrap();
        assert!(m.accuracy >= 0.9, "{r:?}");
        assert!(r.degraded.is_empty(), "{r:?}");
        assert_eq!(r.alarm.state, "ok");
    }
    let bad = fleet("2");
    assert!(bad.iter().all(|r| !r.degraded.is_empty()), "{bad:?}");
    assert!(bad.iter().any(|r| r.alarm.state == "firing"));
    // Per camera too: camera 2 is version 2's.
    assert!(one
        .values()
        .any(|r| r.model.version == "2" && r.segment == "cam-2"));
    assert!(!one
        .values()
        .any(|r| r.model.version == "1" && r.segment == "cam-2"));

    eprintln!(
        "{} reports; fleet windows v1 {} (accuracy {:?}), v2 {} (accuracy {:?}, alarm {:?}); {} alerts",
        one.len(),
        good.len(),
        good.iter().map(|r| r.metrics.as_ref().map(|m| m.accuracy)).collect::<Vec<_>>(),
        bad.len(),
        bad.iter().map(|r| r.metrics.as_ref().map(|m| m.accuracy)).collect::<Vec<_>>(),
        bad.iter().map(|r| r.alarm.state.as_str()).collect::<Vec<_>>(),
        alerts.len()
    );
    // One alert per series whose alarm started firing, none for version 1.
    assert!(!alerts.is_empty());
    assert!(alerts
        .iter()
        .all(|a| a.model.version == "2" && a.rule == "quality_degraded"));
    assert!(alerts.iter().any(|a| a.segment == "*"));
    let ids: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), alerts.len(), "an alert published twice");

    // Two sidecars in one group publish the same reports.
    let (two, _) = run_sidecars(t0, &t, 2).await;
    let common: Vec<_> = one.keys().filter(|k| two.contains_key(*k)).collect();
    assert!(common.len() >= 14, "{}", common.len());
    for k in common {
        assert_eq!(
            serde_json::to_string(&one[k]).unwrap(),
            serde_json::to_string(&two[k]).unwrap(),
            "{k:?}"
        );
    }
}
