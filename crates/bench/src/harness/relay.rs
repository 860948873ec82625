//! The Kafka floor: a bare consume → produce relay that `argus-bench worker --relay` runs
//! in place of the worker, on the same clients, topics and load.
//!
//! It does the least any Kafka worker must do per input and nothing more: receive it,
//! decode its envelope (for the capture time and sequence the subscriber measures with),
//! write a minimal prediction (no model, no alerts) to the predictions topic, and store the
//! input's offset once that is acknowledged (from a task per delivery, so in whatever order
//! those run: no commit tracking, which a worker needs and a floor does not). Its latency
//! and CPU at a given rate are what this machine and broker cost before any model or
//! pipeline: what a worker's own latency is measured against when the target is missed
//! (docs/bench.md, "The Kafka floor").
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::message::Message;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::{send_when_queued, GroupContext};
use argus_wire::{
    decode_envelope, now_us, InputRef, ModelRef, Prediction, PredictionOutcome, Timings,
    PREDICTION_SCHEMA,
};
use argus_worker::{WorkerError, WorkerStats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The model name the relay's predictions carry.
pub const RELAY_MODEL: &str = "argus-bench-relay";

/// The relay's topics.
#[derive(Debug, Clone)]
pub struct RelayTopics {
    /// Where the inputs are.
    pub input: String,
    /// Where the minimal predictions go.
    pub predictions: String,
}

/// Relays every input of `topics.input` to `topics.predictions` until `stop`. Counts in
/// `stats` as a worker does: consumed, predicted (acknowledged), dead-lettered (the envelope
/// did not decode: counted, not forwarded) and undelivered.
pub async fn relay(
    consumer: StreamConsumer<GroupContext>,
    producer: FutureProducer,
    topics: RelayTopics,
    worker_id: String,
    stats: Arc<WorkerStats>,
    stop: CancellationToken,
) -> Result<(), WorkerError> {
    consumer
        .subscribe(&[&topics.input])
        .map_err(|source| WorkerError::Subscribe {
            topics: vec![topics.input.clone()],
            source,
        })?;
    let consumer = Arc::new(consumer);
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "relay: consume failed");
                continue;
            }
        };
        stats.consumed.fetch_add(1, Ordering::Relaxed);
        stats.last_poll_us.store(now_us() as u64, Ordering::Relaxed);
        let Some(json) = minimal_prediction(&m, &worker_id) else {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
        let mut record = FutureRecord::to(&topics.predictions).payload(&json);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        let delivery = match send_when_queued(&producer, record, Duration::from_millis(1)).await {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, "relay: produce failed");
                stats.undelivered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let (consumer, stats) = (consumer.clone(), stats.clone());
        tokio::spawn(async move {
            match delivery.await {
                Ok(Ok(_)) => {
                    stats.predicted.fetch_add(1, Ordering::Relaxed);
                    // Stores offset + 1; fails only if the partition was revoked meanwhile.
                    let _ = consumer.store_offset(&topic, partition, offset);
                }
                _ => {
                    stats.undelivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// The prediction JSON for input `m`: its coordinates, key, source, sequence and capture
/// time, no model answer. `None` when the envelope does not decode.
fn minimal_prediction(m: &impl Message, worker_id: &str) -> Option<Vec<u8>> {
    let envelope = decode_envelope(m.payload().unwrap_or_default()).ok()?;
    let input = InputRef {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .map(str::to_owned),
        source_id: Some(envelope.source_id),
        sequence: Some(envelope.sequence),
        capture_time_us: Some(envelope.capture_time_us),
    };
    let produced_at_us = now_us();
    let prediction = Prediction {
        schema: PREDICTION_SCHEMA.to_owned(),
        id: input.id(),
        model: ModelRef {
            name: RELAY_MODEL.to_owned(),
            version: String::new(),
            sha256: String::new(),
        },
        outcome: PredictionOutcome::Ok,
        label: None,
        score: None,
        top: Vec::new(),
        timings: Timings {
            capture_to_output_us: u64::try_from(produced_at_us - envelope.capture_time_us).ok(),
            ..Timings::default()
        },
        worker: worker_id.to_owned(),
        produced_at_us,
        skipped: None,
        frame: None,
        detections: None,
        input,
    };
    serde_json::to_vec(&prediction).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_kafka::rdkafka::message::OwnedMessage;
    use argus_kafka::rdkafka::Timestamp;
    use argus_wire::{encode_envelope, Envelope, Payload, Record, SCHEMA_VERSION};

    fn message(payload: Vec<u8>) -> OwnedMessage {
        OwnedMessage::new(
            Some(payload),
            Some(b"cust-7".to_vec()),
            "frames".into(),
            Timestamp::NotAvailable,
            2,
            41,
            None,
        )
    }

    #[test]
    fn a_relayed_input_names_its_coordinates_sequence_and_capture_time() {
        let envelope = Envelope {
            schema_version: SCHEMA_VERSION,
            source_id: "cust-7".into(),
            sequence: 9,
            capture_time_us: 1_000,
            payload: Payload::Record(Record::default()),
        };
        let m = message(encode_envelope(&envelope).expect("encodes"));
        let json = minimal_prediction(&m, "relay-1").expect("an envelope is relayed");
        let p: Prediction = serde_json::from_slice(&json).expect("a prediction");
        assert_eq!(p.id, "frames/2/41");
        assert_eq!(p.input.key.as_deref(), Some("cust-7"));
        assert_eq!(p.input.sequence, Some(9));
        assert_eq!(p.input.capture_time_us, Some(1_000));
        assert_eq!(p.model.name, RELAY_MODEL);
        assert_eq!(p.worker, "relay-1");
        assert!(p.timings.capture_to_output_us.is_some_and(|us| us > 0));
    }

    #[test]
    fn an_input_that_is_not_an_envelope_is_not_relayed() {
        assert!(minimal_prediction(&message(b"not an envelope".to_vec()), "r").is_none());
    }
}
