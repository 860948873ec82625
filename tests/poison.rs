//! Hostile header bytes on a real broker: a record whose header name is not UTF-8 (Kafka
//! allows it; rdkafka's own header API panics on it) goes to the DLQ with its headers, and
//! the worker and its partition go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The record has to be written through librdkafka's C API: every client API (rdkafka's,
// confluent-kafka's, Java's) takes header names as text.
#![allow(unsafe_code)]
use argus_e2e::*;
use argus_kafka::rdkafka::bindings as rdsys;
use argus_kafka::rdkafka::producer::{BaseProducer, Producer};
use argus_kafka::rdkafka::Message;
use argus_wire::headers as h;
use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

/// Produces one record whose headers are `(name bytes, value bytes)` as given.
fn produce_with_raw_headers(topic: &str, key: &[u8], value: &[u8], headers: &[(&[u8], &[u8])]) {
    let producer: BaseProducer = settings()
        .producer_config("test-raw-headers")
        .create()
        .unwrap();
    let rk = producer.client().native_ptr();
    let topic = CString::new(topic).unwrap();
    // SAFETY: a fresh header list; `rd_kafka_header_add` copies name and value (lengths
    // given, so no NUL terminator is needed); `producev` takes ownership of the list on
    // success, and on failure it is destroyed here. Every pointer outlives the calls.
    unsafe {
        let hdrs = rdsys::rd_kafka_headers_new(headers.len());
        for (name, v) in headers {
            let err = rdsys::rd_kafka_header_add(
                hdrs,
                name.as_ptr().cast(),
                name.len() as isize,
                v.as_ptr().cast::<c_void>(),
                v.len() as isize,
            );
            assert_eq!(err, rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        let err = rdsys::rd_kafka_producev(
            rk,
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_TOPIC as c_int,
            topic.as_ptr(),
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_KEY as c_int,
            key.as_ptr().cast::<c_void>(),
            key.len(),
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_VALUE as c_int,
            value.as_ptr().cast::<c_void>(),
            value.len(),
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_MSGFLAGS as c_int,
            rdsys::RD_KAFKA_MSG_F_COPY as c_int,
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_HEADERS as c_int,
            hdrs,
            rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END as c_int,
        );
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            rdsys::rd_kafka_headers_destroy(hdrs);
            panic!("producev: {err:?}");
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_header_name_that_is_not_utf8_goes_to_the_dlq_and_the_partition_moves_on() {
    let topics = Topics::create(1).await;
    let group = unique("workers");
    let mut w = RunningWorker::start(topics.worker_config("w-poison"), &group, model());
    w.wait_assigned(Duration::from_secs(60)).await;

    produce_synthetic(&topics.input, 5, 1, 3, (160, 120), None).await;
    let frame = argus_wire::encode_envelope(&argus_wire::Envelope {
        schema_version: 1,
        source_id: "cam-poison".into(),
        sequence: 0,
        capture_time_us: argus_wire::now_us(),
        payload: argus_wire::Payload::Raw(argus_wire::RawImage {
            width: 4,
            height: 4,
            layout: argus_wire::PixelLayout::Gray8,
            data: vec![7; 16],
        }),
    })
    .unwrap();
    produce_with_raw_headers(
        &topics.input,
        b"cam-poison",
        &frame,
        &[
            (b"argus-schema", b"argus.envelope/v1"),
            (b"cam\xff\xfe", b"\x00raw value"),
            (b"argus-dlq-reason", b"forged"),
        ],
    );
    // The partition goes on: frames after the poison record are predicted too.
    produce_synthetic(&topics.input, 5, 1, 4, (160, 120), None).await;

    let dlq = read_until(&topics.dlq, Duration::from_secs(60), |m| !m.is_empty());
    let preds = read_until(&topics.predictions, Duration::from_secs(60), |m| {
        m.len() >= 10
    });
    // The worker is still running and stops cleanly (a panic would fail `stop`).
    w.stop().await;

    assert_eq!(preds.len(), 10, "every valid frame predicted");
    assert_eq!(dlq.len(), 1);
    let m = &dlq[0];
    assert_eq!(m.key(), Some(b"cam-poison".as_slice()));
    assert_eq!(m.payload(), Some(frame.as_slice()), "original bytes kept");
    assert_eq!(header(m, h::DLQ_REASON).as_deref(), Some("decode"));
    let detail = header(m, h::DLQ_DETAIL).unwrap();
    assert!(
        detail.contains("not UTF-8") && detail.contains("cam\\xff\\xfe"),
        "{detail}"
    );
    // Headers kept: the UTF-8 one as it was, the other under its name in hex, a forged
    // DLQ header dropped.
    assert_eq!(header(m, h::SCHEMA).as_deref(), Some("argus.envelope/v1"));
    let raw = format!("{}{}", h::DLQ_RAW_HEADER_PREFIX, "63616dfffe");
    use argus_kafka::rdkafka::message::Headers;
    let kept = m
        .headers()
        .unwrap()
        .iter()
        .find(|x| x.key == raw)
        .and_then(|x| x.value)
        .map(<[u8]>::to_vec);
    assert_eq!(kept.as_deref(), Some(b"\x00raw value".as_slice()));
}
