//! The drift sidecar on the real broker: a brightness shift injected into one camera raises
//! drift for that camera only; two sidecars in one group publish the same reports one
//! sidecar gives; a profile that does not match the stream stops the sidecar.
#![allow(clippy::unwrap_used)]
use argus_drift::profile::ImageProfileBuilder;
use argus_drift::sidecar::{self, DriftConfig, DriftError};
use argus_e2e::*;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_producer::scene;
use argus_stats::profile::{Profile, ProfileSettings};
use argus_stats::report::{DriftReport, ModelInfo, Status};
use argus_wire::{Envelope, ImageFormat, Payload, SCHEMA_VERSION};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SEED: u64 = 1;
const CAMERAS: u32 = 4;
const SHIFTED: u32 = 2;
const GAIN: f32 = 1.3;
/// Event time of the first live frame, µs (fixed, so panes are deterministic).
const T0: i64 = 1_700_000_000_000_000;
const PANE_S: i64 = 2;
const FPS: i64 = 10;
const SECONDS: i64 = 16;
const SHIFT_AT_S: i64 = 6;

fn frame(camera: u32, seq: u64, gain: f32) -> Payload {
    let mut img = scene::render(SEED, camera, seq, 160, 120).image;
    if gain != 1.0 {
        argus_producer::Brighten {
            camera,
            gain,
            from_sequence: 0,
        }
        .apply(&mut img);
    }
    Payload::Encoded {
        format: ImageFormat::Jpeg,
        bytes: argus_producer::source::encode_jpeg(&img, 85).unwrap(),
    }
}

/// Reference: 200 frames per camera from another stretch of the same cameras.
fn reference() -> Arc<Profile> {
    let mut b = ImageProfileBuilder::new(ProfileSettings::default(), None);
    for seq in 100_000..100_200u64 {
        for c in 0..CAMERAS {
            b.add(
                &argus_producer::source::camera_id(c),
                &frame(c, seq, 1.0),
                None,
            )
            .unwrap();
        }
    }
    Arc::new(b.build("e2e-reference", "test", "test").unwrap())
}

/// Live stream: 10 fps per camera for 16 s of event time; camera 2 is 30 % brighter from 6 s
/// on; then one frame per camera at 40 s to move every watermark past the data.
async fn produce(topic: &str) {
    let producer: FutureProducer = settings().producer("drift-test").unwrap();
    let mut sends = Vec::new();
    let mut frames: Vec<(u32, u64, i64)> = Vec::new();
    for i in 0..(SECONDS * FPS) {
        for c in 0..CAMERAS {
            frames.push((c, i as u64, T0 + i * 1_000_000 / FPS));
        }
    }
    for c in 0..CAMERAS {
        frames.push((c, 10_000, T0 + 40_000_000));
    }
    for (c, seq, t) in frames {
        let gain = if c == SHIFTED && t >= T0 + SHIFT_AT_S * 1_000_000 {
            GAIN
        } else {
            1.0
        };
        let env = Envelope {
            schema_version: SCHEMA_VERSION,
            source_id: argus_producer::source::camera_id(c),
            sequence: seq,
            capture_time_us: t,
            payload: frame(c, seq, gain),
        };
        let bytes = argus_wire::encode_envelope(&env).unwrap();
        let key = argus_producer::source::camera_id(c);
        let p = producer.clone();
        let topic = topic.to_owned();
        sends.push(tokio::spawn(async move {
            p.send(
                FutureRecord::to(&topic).key(&key).payload(&bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
}

fn config(input: &str, group: &str, panes: &str, reports: &str, id: &str) -> DriftConfig {
    let mut c = DriftConfig::new(
        input,
        id,
        ModelInfo {
            id: "camera-person".into(),
            version: "1".into(),
        },
    );
    c.group = group.to_owned();
    c.panes_topic = panes.to_owned();
    c.reports_topic = reports.to_owned();
    c.pane = Duration::from_secs(PANE_S as u64);
    c.window_panes = 3;
    c.lateness = Duration::ZERO;
    c.max_fps = 0.0;
    c.alarm_k = 2;
    c.tick = Duration::from_millis(100);
    c
}

/// Runs `n` sidecars until reports for every expected window arrived; returns them keyed by
/// (segment, window end).
async fn run_sidecars(
    profile: &Arc<Profile>,
    input: &str,
    n: usize,
) -> (BTreeMap<(String, i64), DriftReport>, String) {
    let group = unique("drift");
    let panes = unique("drift.panes");
    let reports = unique("drift");
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..n {
        let cfg = config(input, &group, &panes, &reports, &format!("sidecar-{i}"));
        tasks.push(tokio::spawn(sidecar::run(
            cfg,
            settings(),
            profile.clone(),
            sidecar::Outputs::reports(tx.clone()),
            stop.clone(),
        )));
    }
    // Windows end at every pane end with data: 2 s … 16 s → 8 windows per segment.
    let expected_windows = (SECONDS / PANE_S) as usize;
    let mut got: BTreeMap<(String, i64), DriftReport> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while got.keys().filter(|(s, _)| s == "*").count() < expected_windows {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => {
                // Every sidecar evaluates; all must agree.
                let key = (r.segment.clone(), r.window.end_us);
                if let Some(prev) = got.get(&key) {
                    assert_eq!(
                        serde_json::to_string(prev).unwrap(),
                        serde_json::to_string(&r).unwrap()
                    );
                }
                got.insert(key, r);
            }
            _ => panic!(
                "only {} windows reported in 120 s: {:?}",
                got.len(),
                got.keys().collect::<Vec<_>>()
            ),
        }
    }
    // Let the other segments' reports of the last window arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(r) = rx.try_recv() {
        got.insert((r.segment.clone(), r.window.end_us), r);
    }
    stop.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    (got, reports)
}

fn luma(r: &DriftReport) -> Status {
    r.features
        .iter()
        .find(|f| f.name == "luma_mean")
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brightness_shift_in_one_camera_raises_drift_for_that_camera_only() {
    let input = unique("frames");
    create_topics(&[(&input, 4)]).await;
    let profile = tokio::task::spawn_blocking(reference).await.unwrap();
    produce(&input).await;

    let (two, reports_topic) = run_sidecars(&profile, &input, 2).await;
    let shift_us = T0 + SHIFT_AT_S * 1_000_000;
    let shifted = argus_producer::source::camera_id(SHIFTED);
    let mut checked = 0;
    for ((segment, _), r) in &two {
        assert_eq!(
            r.provenance.sidecars_merged.max(1),
            r.provenance.sidecars_merged
        );
        if r.window.start_us < T0 {
            continue; // windows reaching before the stream are partial
        }
        let after = r.window.start_us >= shift_us;
        let before = r.window.end_us <= shift_us;
        if *segment == shifted && after {
            assert!(
                r.dataset.drift,
                "shifted camera not flagged: {}",
                serde_json::to_string(r).unwrap()
            );
            assert_eq!(luma(r), Status::Drift);
            assert!(
                r.histograms.as_ref().is_some_and(|h| h.luma.js_base2 > 0.1),
                "{:?}",
                r.histograms
            );
            checked += 1;
        } else if *segment != "*" && (before || *segment != shifted) {
            assert_ne!(
                luma(r),
                Status::Drift,
                "false alarm on {segment}: {}",
                serde_json::to_string(r).unwrap()
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "too few windows checked: {checked}");
    // The shifted camera's alarm fires (2 consecutive drifting windows).
    let last = two.iter().rfind(|((s, _), _)| *s == shifted).unwrap().1;
    assert_eq!(last.alarm.state, "firing", "{:?}", last.alarm);

    // Reports on the topic validate against the schema; the leader published each once.
    let n_reports = two.len();
    let msgs = read_until(&reports_topic, Duration::from_secs(30), |m| {
        m.len() >= n_reports
    });
    let values = validate_all(
        &msgs,
        include_str!("../schemas/drift-report.v1.schema.json"),
    );
    assert_eq!(values.len(), n_reports, "reports on the topic");

    // One sidecar over the same topic gives byte-identical reports (provenance aside).
    let (one, _) = run_sidecars(&profile, &input, 1).await;
    let strip = |r: &DriftReport| {
        let mut r = r.clone();
        r.provenance.sidecars_merged = 0;
        serde_json::to_string(&r).unwrap()
    };
    for (k, r) in &two {
        let single = one
            .get(k)
            .unwrap_or_else(|| panic!("single sidecar lacks window {k:?}"));
        assert_eq!(strip(r), strip(single), "window {k:?} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_for_records_refuses_an_image_stream() {
    let input = unique("frames");
    create_topics(&[(&input, 1)]).await;
    produce_synthetic(&input, 2, 1, 1, (64, 48), None).await;
    let dir = std::env::temp_dir().join(unique("drift-records"));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("ref.csv");
    std::fs::write(
        &csv,
        (0..200)
            .map(|i| format!("{i},{}\n", i % 3))
            .fold("a,b\n".to_string(), |s, l| s + &l),
    )
    .unwrap();
    let table = argus_drift::records::read_table(&csv).unwrap();
    let profile = argus_drift::records::profile_table(
        &table,
        &Default::default(),
        &ProfileSettings::default(),
        "records",
        "test",
    )
    .unwrap();
    let cfg = config(
        &input,
        &unique("drift"),
        &unique("panes"),
        &unique("reports"),
        "s",
    );
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        sidecar::run(
            cfg,
            settings(),
            Arc::new(profile),
            sidecar::Outputs::default(),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the sidecar stops by itself");
    assert!(
        matches!(result, Err(DriftError::SchemaMismatch(_))),
        "{result:?}"
    );
}

/// A records stream (tabular, e.g. churn scoring): fields are matched to the profile by
/// name, entity ids do not become segments, and a mean shift in one field drifts it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stream_drifts_on_the_shifted_field_only() {
    use argus_drift::records::{CellValue, Table};
    use argus_wire::{Field, Record, Value};
    let mut x: u64 = 42;
    let mut uniform = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 11) as f64 / 9_007_199_254_740_992.0
    };
    let plans = ["basic", "plus", "pro"];
    let table = Table {
        source: "churn-reference".into(),
        columns: vec!["tenure".into(), "plan".into()],
        rows: (0..3000)
            .map(|_| {
                vec![
                    CellValue::Num(24.0 * uniform()),
                    CellValue::Text(plans[(uniform() * 3.0) as usize].into()),
                ]
            })
            .collect(),
    };
    let profile = argus_drift::records::profile_table(
        &table,
        &Default::default(),
        &ProfileSettings::default(),
        "churn",
        "test",
    )
    .unwrap();
    let input = unique("records");
    create_topics(&[(&input, 2)]).await;
    let producer: FutureProducer = settings().producer("drift-records").unwrap();
    // 8 s of event time at 100 records/s; tenure +6 months from 4 s on; then one late-second
    // record per partition key to close the panes.
    let mut n = 0u64;
    for i in 0..800i64 {
        let t = T0 + i * 10_000;
        let shift = if t >= T0 + 4_000_000 { 6.0 } else { 0.0 };
        let env = Envelope {
            schema_version: SCHEMA_VERSION,
            source_id: format!("customer-{}", i % 97),
            sequence: i as u64,
            capture_time_us: t,
            payload: Payload::Record(Record {
                fields: vec![
                    Field {
                        name: "plan".into(),
                        value: Value::Text(plans[(uniform() * 3.0) as usize].into()),
                    },
                    Field {
                        name: "tenure".into(),
                        value: Value::Float(24.0 * uniform() + shift),
                    },
                ],
            }),
        };
        let key = env.source_id.clone();
        producer
            .send(
                FutureRecord::to(&input)
                    .key(&key)
                    .payload(&argus_wire::encode_envelope(&env).unwrap()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        n += 1;
    }
    for p in 0..2 {
        let env = Envelope {
            schema_version: SCHEMA_VERSION,
            source_id: "closer".into(),
            sequence: n,
            capture_time_us: T0 + 60_000_000,
            payload: Payload::Record(Record { fields: vec![] }),
        };
        producer
            .send(
                FutureRecord::to(&input)
                    .partition(p)
                    .key("closer")
                    .payload(&argus_wire::encode_envelope(&env).unwrap()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let mut cfg = config(
        &input,
        &unique("drift"),
        &unique("panes"),
        &unique("reports"),
        "records",
    );
    cfg.window_panes = 2;
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(sidecar::run(
        cfg,
        settings(),
        Arc::new(profile),
        sidecar::Outputs::reports(tx),
        stop.clone(),
    ));
    let mut got = Vec::new();
    while got.len() < 4 {
        let r = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("reports within 60 s")
            .unwrap();
        assert_eq!(r.segment, "*", "entity ids must not become segments");
        got.push(r);
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    let status = |r: &DriftReport, f: &str| r.features.iter().find(|x| x.name == f).unwrap().status;
    for r in &got {
        if r.window.end_us <= T0 + 4_000_000 {
            assert_ne!(
                status(r, "tenure"),
                Status::Drift,
                "{}",
                serde_json::to_string(r).unwrap()
            );
        } else if r.window.start_us >= T0 + 4_000_000 {
            assert_eq!(
                status(r, "tenure"),
                Status::Drift,
                "{}",
                serde_json::to_string(r).unwrap()
            );
        }
        assert_ne!(
            status(r, "plan"),
            Status::Drift,
            "{}",
            serde_json::to_string(r).unwrap()
        );
    }
}
