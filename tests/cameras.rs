//! Real cameras end to end on a real broker (issue 17): frames of a real surveillance video
//! (`vtest.avi` from Debian's `opencv-doc`, Apache-2.0/BSD-3-Clause) through workers running
//! the person detector (`models/person-detector`), with zone rules whose state must survive
//! a rebalance.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use argus_model::{Classifier, EngineKind, EngineOptions};
use argus_wire::{
    encode_envelope, Alert, Envelope, ImageFormat, Payload, Prediction, ALERT_V3_JSON_SCHEMA,
    PREDICTION_V3_JSON_SCHEMA, SCHEMA_VERSION,
};
use argus_worker::zones::{self, CameraState, FrameBoxes, RuleKind, ZoneSettings};
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
    let zone = |name: &str, rule: RuleKind| {
        let polygon = vec![
            [300.0, 150.0],
            [560.0, 150.0],
            [560.0, 300.0],
            [300.0, 300.0],
        ];
        let mut z = ZoneSettings::new(name, polygon, rule);
        z.cameras = vec![CAMERA.into()];
        z
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
        .map(|(i, f)| detect(model, &jpeg(f), capture_us(t0, i)))
        .collect()
}

/// The boxes the detector finds on one frame captured at `capture_us`, as the zone rules
/// read them.
fn detect(model: &Classifier, payload: &Payload, capture_us: i64) -> FrameBoxes {
    let c = model.classify(payload).unwrap();
    FrameBoxes {
        capture_us,
        boxes: argus_model::detection::detected_boxes(&c.detections, model.labels()),
    }
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

/// `argus work` with the person detector and the plaza's zones from a configuration file.
fn zone_worker_process(topics: &Topics, group: &str, id: &str, config: &Path) -> WorkerProcess {
    let model = repo_root().join("models/person-detector");
    let config = config.to_str().unwrap();
    WorkerProcess::spawn_model(
        topics,
        group,
        id,
        &model,
        0,
        &["--config", config, "--max-batch", "1"],
    )
}

/// The plaza's zones as a `[[worker.zones]]` configuration file (any camera).
fn zones_file(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for z in plaza() {
        let z = ZoneSettings {
            cameras: Vec::new(),
            ..z
        };
        let table = toml_table(&z);
        text.push_str(&format!("[[worker.zones]]\n{table}\n"));
    }
    let path = dir.join("zones.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn toml_table(z: &ZoneSettings) -> String {
    let secs = |d: Option<Duration>| d.map(|d| format!("\"{}s\"", d.as_secs()));
    let mut lines = vec![
        format!("name = \"{}\"", z.name),
        format!(
            "polygon = [{}]",
            z.polygon
                .iter()
                .map(|p| format!("[{}, {}]", p[0], p[1]))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!("rule = \"{}\"", z.rule.as_str()),
    ];
    for (key, value) in [
        ("dwell", secs(z.dwell)),
        ("within", secs(z.within)),
        ("cooldown", secs(z.cooldown)),
        ("frames", z.frames.map(|f| f.to_string())),
        ("count", z.count.map(|c| c.to_string())),
    ] {
        if let Some(v) = value {
            lines.push(format!("{key} = {v}"));
        }
    }
    lines.join("\n")
}

/// End to end with the processes an operator runs: `argus produce video` sends 12 s of
/// `vtest.avi` as each of two cameras, two `argus work` processes on the person detector
/// score them. Every frame gets one v3 prediction, people are found in (nearly) every frame,
/// and the zone alerts are exactly those the plaza's rules raise offline on the frames the
/// producer sent, per camera in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn video_frames_through_two_worker_processes_give_boxes_and_zone_alerts() {
    const PER_CAMERA: usize = 60;
    let topics = Topics::create(4).await;
    let group = unique("video");
    let dir = tempfile::tempdir().unwrap();
    let config = zones_file(dir.path());
    let _w1 = zone_worker_process(&topics, &group, "video-w1", &config);
    let _w2 = zone_worker_process(&topics, &group, "video-w2", &config);
    for camera in ["cam-east", "cam-west"] {
        let status = std::process::Command::new(argus_bin())
            .args(["produce", "--brokers", &brokers(), "--topic", &topics.input])
            .args(["--count", &PER_CAMERA.to_string(), "video"])
            .arg(vtest())
            .args(["--camera", camera, "--fps", &FPS.to_string()])
            .env_remove("RUST_BACKTRACE")
            .stdout(std::process::Stdio::null())
            .stderr(e2e_log(&format!("video-produce-{camera}")))
            .status()
            .expect("argus produce runs");
        assert!(
            status.success(),
            "argus produce video for {camera}: {status}"
        );
    }
    let n = 2 * PER_CAMERA;
    let inputs = read_until(&topics.input, Duration::from_secs(30), |m| m.len() >= n);
    assert_eq!(inputs.len(), n, "frames sent");
    let preds = read_until(&topics.predictions, Duration::from_secs(180), |m| {
        m.len() >= n
    });
    let preds: Vec<Prediction> = validate_all(&preds, PREDICTION_V3_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let predicted: BTreeSet<(i32, i64)> = preds
        .iter()
        .map(|p| (p.input.partition, p.input.offset))
        .collect();
    assert_eq!(predicted.len(), n, "every frame predicted");
    let with_people = preds
        .iter()
        .filter(|p| p.detections.as_ref().is_some_and(|d| !d.is_empty()))
        .count();
    assert!(
        with_people >= preds.len() * 9 / 10,
        "people in {with_people}/{} predictions",
        preds.len()
    );

    // Offline: the same detector and rules on the frames as sent, per camera in order.
    let model = detector();
    let zones = zones::compile(
        &plaza()
            .into_iter()
            .map(|z| ZoneSettings {
                cameras: Vec::new(),
                ..z
            })
            .collect::<Vec<_>>(),
        None,
    )
    .unwrap();
    let mut states: std::collections::HashMap<String, CameraState> = Default::default();
    let mut expected: BTreeSet<(i32, i64, String)> = BTreeSet::new();
    let mut ordered: Vec<_> = inputs.iter().collect();
    ordered.sort_by_key(|m| (m.partition(), m.offset()));
    for m in ordered {
        let env = argus_wire::decode_envelope(m.payload().unwrap()).unwrap();
        let frame = detect(&model, &env.payload, env.capture_time_us);
        let state = states
            .entry(env.source_id.clone())
            .or_insert_with(|| CameraState::new(zones.len()));
        for f in state.step(&zones, &env.source_id, &frame).unwrap() {
            expected.insert((m.partition(), m.offset(), zones[f.zone].name.clone()));
        }
    }
    assert!(
        !expected.is_empty(),
        "the plaza's rules fire on this footage"
    );
    let alerts = read_until(&topics.alerts, Duration::from_secs(20), |m| {
        m.len() >= expected.len()
    });
    let got: BTreeSet<(i32, i64, String)> = validate_all(&alerts, ALERT_V3_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value::<Alert>(v).unwrap())
        .map(|a| (a.input.partition, a.input.offset, a.zone.unwrap().name))
        .collect();
    assert_eq!(got, expected, "zone alerts where the rules say");
}

/// A camera: a real RTSP server (Debian's `rtsp-server-perl`) fed with `vtest.avi` by
/// ffmpeg (H.264, looped, over RTP/UDP), killed with the test.
struct RtspServer {
    server: Reap,
    publisher: Option<Reap>,
    source_port: u16,
    /// rtsp://127.0.0.1:PORT/cam
    url: String,
}

impl RtspServer {
    fn start() -> RtspServer {
        let (client_port, source_port) = (free_port(), free_port());
        let mut s = RtspServer {
            server: Self::serve(client_port, source_port),
            publisher: None,
            source_port,
            url: format!("rtsp://127.0.0.1:{client_port}/cam"),
        };
        s.publish();
        s
    }

    /// The server on these ports, listening.
    fn serve(client_port: u16, source_port: u16) -> Reap {
        let bin = "rtsp-server-perl";
        assert!(
            std::process::Command::new(bin)
                .arg("--help")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok(),
            "{bin} is missing: apt-get install rtsp-server-perl (scripts/test installs it)"
        );
        // RTP ports for the sessions: an even base well away from the ephemeral range.
        let rtp = 20_000 + (u32::from(client_port) % 10_000) / 2 * 2;
        let server = Reap(
            std::process::Command::new(bin)
                .args(["--clientport", &client_port.to_string()])
                .args(["--serverport", &source_port.to_string()])
                .args(["--client_listen_address", "127.0.0.1"])
                .args(["--source_listen_address", "127.0.0.1"])
                .args(["--rtp_start_port", &rtp.to_string(), "--loglevel", "2"])
                .stdout(std::process::Stdio::null())
                .stderr(e2e_log("rtsp-server"))
                .spawn()
                .expect("rtsp-server-perl starts"),
        );
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", source_port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "RTSP server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// (Re)starts the camera: ffmpeg publishing the looped video.
    fn publish(&mut self) {
        self.publisher = Some(Reap(
            std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
                .args(["-stream_loop", "-1", "-i"])
                .arg(vtest())
                .args([
                    "-an",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                ])
                .args(["-g", "10", "-f", "rtsp", "-rtsp_transport", "udp"])
                .arg(format!("rtsp://127.0.0.1:{}/cam", self.source_port))
                .stdout(std::process::Stdio::null())
                .stderr(e2e_log("rtsp-publisher"))
                .spawn()
                .expect("ffmpeg starts"),
        ));
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.publisher.take();
        let _ = self.server.0.kill();
    }
}

/// `argus produce rtsp` against a real RTSP server: frames of the camera arrive on the
/// topic as 768×576 JPEGs keyed by the camera, in sequence, 1/fps apart on the stream's
/// clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_camera_streams_through_argus_produce_rtsp() {
    const N: usize = 15;
    let server = RtspServer::start();
    let topic = unique("rtsp-frames");
    create_topics(&[(&topic, 1)]).await;
    let status = std::process::Command::new(argus_bin())
        .args(["produce", "--brokers", &brokers(), "--topic", &topic])
        .args(["--count", &N.to_string(), "rtsp", &server.url])
        .args([
            "--camera",
            "gate",
            "--fps",
            "5",
            "--transport",
            "udp",
            "--stall",
            "5s",
        ])
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(e2e_log("rtsp-produce"))
        .status()
        .expect("argus produce runs");
    assert!(status.success(), "argus produce rtsp: {status}");
    let msgs = read_until(&topic, Duration::from_secs(20), |m| m.len() >= N);
    assert_eq!(msgs.len(), N);
    let envs: Vec<Envelope> = msgs
        .iter()
        .map(|m| {
            assert_eq!(m.key(), Some(&b"gate"[..]));
            argus_wire::decode_envelope(m.payload().unwrap()).unwrap()
        })
        .collect();
    for (i, e) in envs.iter().enumerate() {
        let Payload::Encoded { bytes, .. } = &e.payload else {
            panic!("frame {i} is not an encoded image");
        };
        let img = image::load_from_memory(bytes).unwrap();
        assert_eq!((img.width(), img.height()), (768, 576));
        assert_eq!(e.sequence, i as u64);
        if i > 0 {
            assert_eq!(e.capture_time_us - envs[i - 1].capture_time_us, 200_000);
        }
    }
}
