//! Real cameras end to end on a real broker (issue 17): frames of a real surveillance video
//! (`vtest.avi` from Debian's `opencv-doc`, Apache-2.0/BSD-3-Clause) through workers running
//! the person detector (`models/person-detector`), with zone rules whose state must survive
//! a rebalance.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_model::{Classifier, EngineKind, EngineOptions};
use argus_wire::{
    encode_envelope, Alert, Envelope, ImageFormat, Payload, Prediction, ALERT_V3_JSON_SCHEMA,
    PREDICTION_V3_JSON_SCHEMA, SCHEMA_VERSION,
};
use argus_worker::zones::{self, CameraState, FrameBoxes, ObservedBox, RuleKind, ZoneSettings};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const CAMERA: &str = "plaza-cam";
/// Frames per second sampled from the video.
const FPS: u32 = 5;

/// The sample video, from Debian's `opencv-doc` (scripts/test installs it).
fn vtest() -> PathBuf {
    let p = PathBuf::from("/usr/share/doc/opencv-doc/examples/data/vtest.avi");
    assert!(
        p.exists(),
        "{} is missing: apt-get install opencv-doc (scripts/test installs it)",
        p.display()
    );
    p
}

/// The first `n` frames of the video at [`FPS`], as JPEG bytes (ffmpeg, as the producer's
/// video source decodes).
fn video_frames(n: usize) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(vtest())
        .args([
            "-vf",
            &format!("fps={FPS}"),
            "-frames:v",
            &n.to_string(),
            "-q:v",
            "3",
        ])
        .arg(dir.path().join("f%04d.jpg"))
        .status()
        .expect("ffmpeg runs (apt-get install ffmpeg; scripts/test installs it)");
    assert!(status.success());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), n, "frames extracted");
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn detector() -> Arc<Classifier> {
    Arc::new(
        Classifier::load_with(
            &repo_root().join("models/person-detector"),
            &EngineOptions {
                kind: Some(EngineKind::Tract),
                concurrency: 1,
                ..Default::default()
            },
        )
        .expect("the person detector bundle loads"),
    )
}

fn jpeg(bytes: &[u8]) -> Payload {
    Payload::Encoded {
        format: ImageFormat::Jpeg,
        bytes: bytes.to_vec(),
    }
}

/// Frame `i`'s capture time: the stream's clock, 1/FPS apart.
fn capture_us(t0: i64, i: usize) -> i64 {
    t0 + i as i64 * 1_000_000 / i64::from(FPS)
}

async fn produce_frames(topic: &str, frames: &[Vec<u8>], first: usize, t0: i64) {
    use argus_kafka::rdkafka::producer::FutureRecord;
    let producer = settings().producer("test-frames").unwrap();
    for (k, f) in frames.iter().enumerate() {
        let i = first + k;
        let env = Envelope {
            schema_version: SCHEMA_VERSION,
            source_id: CAMERA.into(),
            sequence: i as u64,
            capture_time_us: capture_us(t0, i),
            payload: jpeg(f),
        };
        let value = encode_envelope(&env).unwrap();
        producer
            .send(
                FutureRecord::to(topic).key(CAMERA).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// The central plaza, where people walk and stand: three rules on it.
fn plaza() -> Vec<ZoneSettings> {
    let zone = |name: &str, rule: RuleKind| ZoneSettings {
        name: name.into(),
        cameras: vec![CAMERA.into()],
        polygon: vec![
            [300.0, 150.0],
            [560.0, 150.0],
            [560.0, 300.0],
            [300.0, 300.0],
        ],
        label: "person".into(),
        min_score: 0.5,
        rule,
        frames: None,
        within: None,
        dwell: None,
        count: None,
        cooldown: None,
    };
    let mut loiter = zone("plaza-loiter", RuleKind::Loiter);
    loiter.dwell = Some(Duration::from_secs(3));
    loiter.cooldown = Some(Duration::from_secs(6));
    let mut count = zone("plaza-crowd", RuleKind::Count);
    count.count = Some(2);
    count.cooldown = Some(Duration::from_secs(7));
    let mut presence = zone("plaza-presence", RuleKind::Presence);
    presence.frames = Some(5);
    presence.within = Some(Duration::from_secs(2));
    presence.cooldown = Some(Duration::from_secs(9));
    vec![loiter, count, presence]
}

/// The boxes the detector finds on each frame, offline.
fn offline_boxes(model: &Classifier, frames: &[Vec<u8>], t0: i64) -> Vec<FrameBoxes> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let c = model.classify(&jpeg(f)).unwrap();
            FrameBoxes {
                capture_us: capture_us(t0, i),
                boxes: c
                    .detections
                    .iter()
                    .map(|d| ObservedBox {
                        label: model.labels()[d.class].clone(),
                        class: d.class as u32,
                        score: d.score,
                        bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The zone alerts (frame index, zone) the plaza's rules raise on `frames`; with
/// `restart_at`, as if the rule state were lost before that frame.
fn offline_alerts(frames: &[FrameBoxes], restart_at: Option<usize>) -> BTreeSet<(usize, String)> {
    let zones = zones::compile(&plaza(), None).unwrap();
    let mut state = CameraState::new(zones.len());
    let mut out = BTreeSet::new();
    for (i, boxes) in frames.iter().enumerate() {
        if restart_at == Some(i) {
            state = CameraState::new(zones.len());
        }
        for firing in state.step(&zones, CAMERA, boxes).unwrap() {
            out.insert((i, zones[firing.zone].name.clone()));
        }
    }
    out
}

/// A worker on the detector with the plaza's zone rules, rebuilding their state from the
/// predictions topic after a rebalance; batch 1 so its scores equal the offline run's.
fn zone_worker(topics: &Topics, id: &str, snapshots: &Path) -> argus_worker::WorkerConfig {
    let mut c = topics.worker_config(id);
    c.rules.clear();
    c.max_batch = 1;
    c.zones = argus_worker::ZoneConfig {
        zones: Arc::new(zones::compile(&plaza(), None).unwrap()),
        snapshots: Some(snapshots.to_path_buf()),
        history: Some(settings()),
    };
    c
}

/// 100 frames (20 s of the video) of one camera: a worker takes the first half and stops;
/// a second worker takes the partition over for the second half. The zone alerts are
/// exactly those of one uninterrupted offline run — loitering that began before the
/// handover fires after it on time, cooldowns started before it hold — and differ from
/// what a worker that forgot the state would raise. Predictions carry the boxes (v3);
/// every zone alert is v3 with its zone, tracked boxes and a snapshot on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zone_rule_state_survives_a_rebalance() {
    const N: usize = 100;
    const HANDOVER: usize = 50;
    let frames = video_frames(N);
    let model = detector();
    let t0 = argus_wire::now_us() - 60_000_000;
    let boxes = offline_boxes(&model, &frames, t0);
    let expected = offline_alerts(&boxes, None);
    let forgetful = offline_alerts(&boxes, Some(HANDOVER));
    assert!(
        expected.iter().any(|(i, _)| *i < HANDOVER) && expected.iter().any(|(i, _)| *i >= HANDOVER),
        "the plaza rules fire on both sides of the handover: {expected:?}"
    );
    assert_ne!(
        expected, forgetful,
        "losing the state at the handover changes the alerts (else this test proves nothing)"
    );

    let topics = Topics::create(1).await;
    let group = unique("zones");
    let snapshots = tempfile::tempdir().unwrap();
    produce_frames(&topics.input, &frames[..HANDOVER], 0, t0).await;
    let mut w1 = RunningWorker::start(
        zone_worker(&topics, "z1", snapshots.path()),
        &group,
        model.clone(),
    );
    w1.wait_assigned(Duration::from_secs(60)).await;
    read_until(&topics.predictions, Duration::from_secs(120), |m| {
        m.len() >= HANDOVER
    });
    w1.stop().await;

    produce_frames(&topics.input, &frames[HANDOVER..], HANDOVER, t0).await;
    let mut w2 = RunningWorker::start(
        zone_worker(&topics, "z2", snapshots.path()),
        &group,
        model.clone(),
    );
    w2.wait_assigned(Duration::from_secs(60)).await;
    let preds = read_until(&topics.predictions, Duration::from_secs(120), |m| {
        m.len() >= N
    });
    w2.stop().await;

    let preds: Vec<Prediction> = validate_all(&preds, PREDICTION_V3_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(preds.len(), N, "one prediction per frame, none redone");
    let with_people = preds
        .iter()
        .filter(|p| p.detections.as_ref().is_some_and(|d| !d.is_empty()))
        .count();
    assert!(
        with_people >= N * 9 / 10,
        "people found in {with_people}/{N} frames"
    );
    assert!(preds
        .iter()
        .all(|p| p.frame.is_some_and(|f| (f.width, f.height) == (768, 576))));

    let alerts = read_until(&topics.alerts, Duration::from_secs(10), |m| {
        m.len() >= expected.len()
    });
    let alerts: Vec<Alert> = validate_all(&alerts, ALERT_V3_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let got: BTreeSet<(usize, String)> = alerts
        .iter()
        .map(|a| {
            (
                a.input.offset as usize,
                a.zone.as_ref().unwrap().name.clone(),
            )
        })
        .collect();
    assert_eq!(got.len(), alerts.len(), "no zone alert raised twice");
    assert_eq!(
        got, expected,
        "zone alerts across the handover (forgetful: {forgetful:?})"
    );
    for a in &alerts {
        let zone = a.zone.as_ref().unwrap();
        let boxes = a.detections.as_ref().unwrap();
        assert!(
            !boxes.is_empty() && boxes.iter().all(|b| b.track.is_some()),
            "{a:?}"
        );
        let path = a.snapshot.as_deref().unwrap().trim_start_matches("file://");
        let img = image::open(path).unwrap_or_else(|e| panic!("snapshot {path}: {e}"));
        assert_eq!((img.width(), img.height()), (768, 576));
        if zone.rule == "loiter" {
            assert!(boxes.iter().any(|b| b.in_zone_since_us.is_some()));
        }
    }
}
