//! Headers mode on a real broker: values written without the envelope, as kcat or a camera
//! gateway would — a JPEG with `content-type: image/jpeg`, a JSON object with
//! `application/json` — are read by the worker with the key as the source id.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use argus_wire::{headers as h, Prediction};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jpeg_and_json_values_without_the_envelope() {
    let topics = Topics::create(1).await;
    let group = unique("workers");
    let mut w = RunningWorker::start(topics.worker_config("w-bare"), &group, model());
    w.wait_assigned(Duration::from_secs(60)).await;

    let fixtures = repo_root().join("models/camera-person/fixtures");
    let jpeg = std::fs::read(fixtures.join("cam0_000000.jpg")).unwrap();
    let capture_us = argus_wire::now_us() - 2_000_000;
    let capture = capture_us.to_string();
    produce_raw(
        &topics.input,
        "cam-gateway",
        &jpeg,
        &[
            (h::CONTENT_TYPE, "image/jpeg"),
            (h::CAPTURE_TIME_US, &capture),
        ],
    )
    .await;
    // No capture header: the Kafka timestamp is the capture time.
    produce_raw(
        &topics.input,
        "cam-kcat",
        &jpeg,
        &[(h::CONTENT_TYPE, "image/jpeg")],
    )
    .await;
    // A JSON record reaches the model (which takes images: refused as `shape`, so it was
    // read as a record); bad JSON is `decode`.
    produce_raw(
        &topics.input,
        "customer-1",
        br#"{"tenure": 3, "plan": "pro"}"#,
        &[(h::CONTENT_TYPE, "application/json")],
    )
    .await;
    produce_raw(
        &topics.input,
        "customer-2",
        b"{not json",
        &[(h::CONTENT_TYPE, "application/json")],
    )
    .await;
    // Envelopes still work beside them.
    produce_synthetic(&topics.input, 3, 1, 5, (160, 120), None).await;

    let preds = read_until(&topics.predictions, Duration::from_secs(60), |m| {
        m.len() >= 5
    });
    let dlq = read_until(&topics.dlq, Duration::from_secs(60), |m| m.len() >= 2);
    w.stop().await;

    let preds: Vec<Prediction> = preds
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    assert_eq!(preds.len(), 5);
    let gateway = preds
        .iter()
        .find(|p| p.input.source_id.as_deref() == Some("cam-gateway"))
        .expect("the bare JPEG is predicted, the key its source id");
    assert_eq!(gateway.input.capture_time_us, Some(capture_us));
    assert_eq!(gateway.input.sequence, Some(gateway.input.offset as u64));
    let kcat = preds
        .iter()
        .find(|p| p.input.source_id.as_deref() == Some("cam-kcat"))
        .unwrap();
    let age_us = argus_wire::now_us() - kcat.input.capture_time_us.unwrap();
    assert!(
        (0..120_000_000).contains(&age_us),
        "capture time from the Kafka timestamp: {age_us} µs ago"
    );

    let reason = |key: &str| {
        let m = dlq
            .iter()
            .find(|m| m.key() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("no DLQ record for {key}"));
        (
            header(m, h::DLQ_REASON).unwrap(),
            header(m, h::DLQ_DETAIL).unwrap(),
        )
    };
    let (kind, detail) = reason("customer-1");
    assert_eq!(kind, "shape", "{detail}");
    assert!(detail.contains("record"), "{detail}");
    let (kind, detail) = reason("customer-2");
    assert_eq!(kind, "decode");
    assert!(detail.contains("not a JSON object"), "{detail}");
}
