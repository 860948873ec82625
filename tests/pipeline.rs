//! End-to-end on a real broker: frames → workers → predictions, alerts, DLQ.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use argus_wire::{
    decode_envelope, headers as h, Alert, Prediction, ALERT_JSON_SCHEMA, PREDICTION_JSON_SCHEMA,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

type InputId = (i32, i64);

fn input_id(p: &Prediction) -> InputId {
    (p.input.partition, p.input.offset)
}

/// (a) + (d): 200 frames from 4 cameras through 2 workers. Every input offset gets exactly
/// one prediction; alerts are exactly the frames the model scores ≥ threshold offline; all
/// outputs validate against `schemas/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frames_to_predictions_and_alerts() {
    let topics = Topics::create(8).await;
    let group = unique("workers");
    let model = model();
    let mut w1 = RunningWorker::start(topics.worker_config("w1"), &group, model.clone());
    let mut w2 = RunningWorker::start(topics.worker_config("w2"), &group, model.clone());
    w1.wait_assigned(Duration::from_secs(60)).await;
    w2.wait_assigned(Duration::from_secs(60)).await;

    const N: usize = 200;
    produce_synthetic(&topics.input, N as u64, 4, 7, (320, 240), None).await;

    let preds = read_until(&topics.predictions, Duration::from_secs(120), |m| {
        m.len() >= N
    });
    // Give a duplicate (which would be a bug in a clean run) a moment to show up.
    let extra = read_until(&topics.predictions, Duration::from_secs(2), |_| false);
    let consumed = |w: &RunningWorker| w.stats.consumed.load(std::sync::atomic::Ordering::Relaxed);
    // 4 camera keys may hash onto partitions of one member, so both need not have had work,
    // but together they consumed each input exactly once.
    assert_eq!(
        consumed(&w1) + consumed(&w2),
        N as u64,
        "no input consumed twice"
    );
    w1.stop().await;
    w2.stop().await;

    let pred_json = validate_all(&extra, PREDICTION_JSON_SCHEMA);
    assert_eq!(preds.len(), N, "predictions seen");
    assert_eq!(pred_json.len(), N, "no duplicate predictions");
    let predictions: Vec<Prediction> = pred_json
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let by_input: BTreeMap<InputId, &Prediction> =
        predictions.iter().map(|p| (input_id(p), p)).collect();
    assert_eq!(by_input.len(), N, "every input has exactly one prediction");
    // Outputs of one camera keep the camera's input order (inference runs 2 at a time).
    let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
    for p in &predictions {
        let (key, seq) = (p.input.key.clone().unwrap(), p.input.sequence.unwrap());
        if let Some(prev) = last_seq.insert(key.clone(), seq) {
            assert!(
                seq > prev,
                "{key}: prediction for sequence {seq} published after {prev}"
            );
        }
    }
    let workers: BTreeSet<&str> = predictions.iter().map(|p| p.worker.as_str()).collect();
    assert!(
        workers.iter().all(|w| ["w1", "w2"].contains(w)),
        "{workers:?}"
    );

    // Offline: run the same model on the same frames, read back from the input topic.
    let inputs = read_until(&topics.input, Duration::from_secs(30), |m| m.len() >= N);
    assert_eq!(inputs.len(), N);
    let person = model.labels().iter().position(|l| l == "person").unwrap();
    let mut expected_alerts = BTreeSet::new();
    let mut correct = 0;
    for m in &inputs {
        let env = decode_envelope(m.payload().unwrap()).unwrap();
        let offline = model.classify(&env.payload).unwrap();
        let id = (m.partition(), m.offset());
        let p = by_input
            .get(&id)
            .unwrap_or_else(|| panic!("no prediction for input {id:?}"));
        assert_eq!(p.input.topic, topics.input);
        assert_eq!(p.input.key.as_deref(), Some(env.source_id.as_str()));
        assert_eq!(p.input.sequence, Some(env.sequence));
        assert_eq!(p.model.sha256, model.model_ref().sha256);
        let online = p.top.iter().find(|s| s.label == "person").unwrap().score;
        assert!(
            (online - offline.probability(person)).abs() < 1e-6,
            "{id:?}: {online} vs offline {}",
            offline.probability(person)
        );
        if offline.probability(person) >= 0.5 {
            expected_alerts.insert(id);
        }
        let cam: u32 = env.source_id.trim_start_matches("cam-").parse().unwrap();
        let truth = argus_producer::scene::has_person(7, cam, env.sequence);
        if truth == (offline.probability(person) >= 0.5) {
            correct += 1;
        }
    }
    assert!(
        correct as f64 / N as f64 >= 0.9,
        "model accuracy on the stream: {correct}/{N}"
    );

    let alert_msgs = read_until(&topics.alerts, Duration::from_secs(20), |m| {
        m.len() >= expected_alerts.len()
    });
    let alert_msgs_all = read_until(&topics.alerts, Duration::from_secs(2), |_| false);
    assert_eq!(alert_msgs.len(), expected_alerts.len());
    let alerts: Vec<Alert> = validate_all(&alert_msgs_all, ALERT_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let alerted: BTreeSet<InputId> = alerts
        .iter()
        .map(|a| (a.input.partition, a.input.offset))
        .collect();
    assert_eq!(alerts.len(), alerted.len(), "one alert per matching input");
    assert_eq!(
        alerted, expected_alerts,
        "alerts are exactly the frames scored ≥ 0.5 offline"
    );
    for a in &alerts {
        assert_eq!(
            a.prediction_id,
            format!("{}/{}/{}", topics.input, a.input.partition, a.input.offset)
        );
        assert_eq!(
            alert_msgs_all
                .iter()
                .find(|m| {
                    serde_json::from_slice::<Alert>(m.payload().unwrap())
                        .unwrap()
                        .id
                        == a.id
                })
                .and_then(|m| m.key().map(|k| k.to_vec())),
            a.input.key.clone().map(String::into_bytes),
            "alert keyed by camera"
        );
    }
    let dlq = read_until(&topics.dlq, Duration::from_secs(1), |_| false);
    assert!(dlq.is_empty(), "no DLQ records in a clean run");
}

/// (b): malformed, wrong-version and oversize inputs land in the DLQ with the right reason,
/// original bytes and source coordinates; every other input is predicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_go_to_the_dlq() {
    let topics = Topics::create(2).await;
    let group = unique("workers");
    let mut config = topics.worker_config("w-dlq");
    config.max_input_bytes = 40_000;
    let mut w = RunningWorker::start(config, &group, model());
    w.wait_assigned(Duration::from_secs(60)).await;

    produce_synthetic(&topics.input, 10, 2, 3, (160, 120), None).await;
    let garbage = b"\x01\x00this is not an envelope".to_vec();
    produce_raw(
        &topics.input,
        "cam-bad",
        &garbage,
        &[(h::SCHEMA, "argus.envelope/v1")],
    )
    .await;
    let mut future_version = vec![9u8, 0];
    future_version.extend_from_slice(&[0; 16]);
    produce_raw(&topics.input, "cam-new", &future_version, &[]).await;
    // A valid envelope whose JPEG bytes are garbage.
    let bad_jpeg = argus_wire::encode_envelope(&argus_wire::Envelope {
        schema_version: 1,
        source_id: "cam-jpeg".into(),
        sequence: 0,
        capture_time_us: 0,
        payload: argus_wire::Payload::Encoded {
            format: argus_wire::ImageFormat::Jpeg,
            bytes: vec![0xFF, 0xD8, 1, 2, 3],
        },
    })
    .unwrap();
    produce_raw(&topics.input, "cam-jpeg", &bad_jpeg, &[]).await;
    let oversize = vec![1u8; 50_000];
    produce_raw(&topics.input, "cam-big", &oversize, &[]).await;
    // A valid frame whose 600 KB key would make its prediction exceed the message size
    // limit: it must go to the DLQ rather than block the partition's offsets.
    let small = |source_id: &str, capture_time_us: i64| {
        argus_wire::encode_envelope(&argus_wire::Envelope {
            schema_version: 1,
            source_id: source_id.into(),
            sequence: 0,
            capture_time_us,
            payload: argus_wire::Payload::Raw(argus_wire::RawImage {
                width: 4,
                height: 4,
                layout: argus_wire::PixelLayout::Gray8,
                data: vec![7; 16],
            }),
        })
        .unwrap()
    };
    let huge_key = format!("cam-huge-{}", "k".repeat(600_000));
    let huge_key_frame = small("cam-huge", 0);
    produce_raw(&topics.input, &huge_key, &huge_key_frame, &[]).await;
    // Hostile capture time: predicted, no overflow.
    produce_raw(&topics.input, "cam-min", &small("cam-min", i64::MIN), &[]).await;
    produce_synthetic(&topics.input, 10, 2, 4, (160, 120), None).await;

    let dlq = read_until(&topics.dlq, Duration::from_secs(60), |m| m.len() >= 4);
    let preds = read_until(&topics.predictions, Duration::from_secs(60), |m| {
        m.len() >= 20
    });
    w.stop().await;

    assert_eq!(preds.len(), 20, "every good input predicted");
    assert_eq!(dlq.len(), 4);
    let by_key: BTreeMap<String, _> = dlq
        .iter()
        .map(|m| (String::from_utf8(m.key().unwrap().to_vec()).unwrap(), m))
        .collect();
    let expect = [
        ("cam-bad", "decode", &garbage),
        ("cam-new", "schema", &future_version),
        ("cam-jpeg", "decode", &bad_jpeg),
        ("cam-big", "oversize", &oversize),
    ];
    for (key, reason, original) in expect {
        let m = by_key
            .get(key)
            .unwrap_or_else(|| panic!("no DLQ record for {key}"));
        assert_eq!(header(m, h::DLQ_REASON).as_deref(), Some(reason), "{key}");
        assert_eq!(
            m.payload().unwrap(),
            original.as_slice(),
            "{key}: original bytes kept"
        );
        assert_eq!(
            header(m, h::DLQ_SOURCE_TOPIC).as_deref(),
            Some(topics.input.as_str())
        );
        assert!(header(m, h::DLQ_SOURCE_OFFSET)
            .unwrap()
            .parse::<i64>()
            .is_ok());
        assert!(header(m, h::DLQ_SOURCE_PARTITION)
            .unwrap()
            .parse::<i32>()
            .is_ok());
        assert!(!header(m, h::DLQ_DETAIL).unwrap().is_empty());
        assert_eq!(header(m, h::DLQ_WORKER).as_deref(), Some("w-dlq"));
    }
    // Original headers travel with the record.
    assert_eq!(
        header(by_key["cam-bad"], h::SCHEMA).as_deref(),
        Some("argus.envelope/v1")
    );
}

/// The producer refuses frames over the message size limit with an error naming the limit,
/// and the folder source sends each file once, or loops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_size_limit_and_folder_source() {
    use argus_producer::{DirSource, ProduceConfig, Source, SyntheticSource};
    use tokio_util::sync::CancellationToken;
    let topic = unique("frames");
    create_topics(&[(&topic, 2)]).await;
    let producer = settings().producer("test").unwrap();

    let source = SyntheticSource {
        seed: 1,
        cameras: 2,
        fps: 1e6,
        width: 320,
        height: 240,
        jpeg_quality: 90,
        brighten: None,
    };
    let mut config = ProduceConfig::new(&topic);
    config.count = Some(4);
    config.max_message_bytes = 2_000;
    let s = argus_producer::run(
        Source::Synthetic(source),
        config,
        producer.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((s.sent, s.refused), (0, 4), "{s}");
    let e = argus_producer::ProduceError::Oversize {
        key: "cam-0".into(),
        bytes: 5000,
        limit: 2000,
    }
    .to_string();
    assert!(
        e.contains("2000 bytes") && e.contains("message.max.bytes"),
        "{e}"
    );

    let folder = repo_root().join("models/camera-person/fixtures");
    let files = std::fs::read_dir(&folder)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jpg")
        })
        .count() as u64;
    let dir = |looped| {
        Source::Dir(DirSource {
            path: folder.clone(),
            camera: "cam-dir".into(),
            fps: 1e6,
            looped,
        })
    };
    let once = argus_producer::run(
        dir(false),
        ProduceConfig::new(&topic),
        producer.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(once.sent, files);
    let mut config = ProduceConfig::new(&topic);
    config.count = Some(files + 3);
    let looped = argus_producer::run(dir(true), config, producer, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(looped.sent, files + 3);
    let msgs = read_until(&topic, Duration::from_secs(30), |m| {
        m.len() as u64 >= 2 * files + 3
    });
    assert_eq!(msgs.len() as u64, 2 * files + 3);
    let first = msgs
        .iter()
        .find(|m| decode_envelope(m.payload().unwrap()).unwrap().sequence == 0)
        .unwrap();
    let env = decode_envelope(first.payload().unwrap()).unwrap();
    assert_eq!(env.source_id, "cam-dir");
    assert_eq!(first.key(), Some(&b"cam-dir"[..]));
    assert_eq!(
        header(first, h::CONTENT_TYPE).as_deref(),
        Some("image/jpeg")
    );
    assert_eq!(
        header(first, h::SCHEMA).as_deref(),
        Some("argus.envelope/v1")
    );
    let argus_wire::Payload::Encoded { bytes, .. } = env.payload else {
        panic!("encoded payload")
    };
    let mut names: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    names.sort();
    assert_eq!(
        bytes,
        std::fs::read(&names[0]).unwrap(),
        "file bytes passed through untouched"
    );
}
