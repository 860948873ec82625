//! One input, copied out of librdkafka so it can cross threads, and its classification.
use argus_model::{Classification, Classifier, ModelError};
use argus_wire::{decode_envelope, Envelope, FailureKind, InputRef, WireError};
use rdkafka_types::*;
use std::time::Instant;

mod rdkafka_types {
    pub use argus_kafka::rdkafka::message::{BorrowedMessage, Headers, Message};
}

/// An input message, owned.
#[derive(Debug, Clone)]
pub struct Job {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// Original headers, kept for the DLQ.
    pub headers: Vec<(String, Vec<u8>)>,
    pub received: Instant,
}

impl Job {
    /// Copies a consumed message.
    pub fn from_message(m: &BorrowedMessage<'_>) -> Job {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Job {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().unwrap_or_default().to_vec(),
            headers,
            received: Instant::now(),
        }
    }

    /// The key as text, if it is UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// Coordinates of this input, enriched from the envelope when it decoded.
    pub fn input_ref(&self, envelope: Option<&Envelope>) -> InputRef {
        InputRef {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            key: self.key_str().map(str::to_string),
            source_id: envelope.map(|e| e.source_id.clone()),
            sequence: envelope.map(|e| e.sequence),
            capture_time_us: envelope.map(|e| e.capture_time_us),
        }
    }
}

/// Why an input could not be classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

/// A classified input.
#[derive(Debug, Clone)]
pub struct Classified {
    pub envelope: Envelope,
    pub classification: Classification,
    /// Time between consume and the start of decoding, µs.
    pub queue_us: u64,
    /// Envelope decode time, µs (added to the image decode time).
    pub envelope_us: u64,
}

/// Checks, decodes and classifies one input. Blocking: run it off the reactor.
pub fn classify(
    job: &Job,
    model: &Classifier,
    max_input_bytes: usize,
) -> Result<Classified, Failure> {
    let queue_us = u64::try_from(job.received.elapsed().as_micros()).unwrap_or(u64::MAX);
    if job.value.len() > max_input_bytes {
        return Err(Failure {
            kind: FailureKind::Oversize,
            detail: format!(
                "message of {} bytes exceeds max_input_bytes = {}",
                job.value.len(),
                max_input_bytes
            ),
        });
    }
    let t = Instant::now();
    let envelope = decode_envelope(&job.value).map_err(|e| Failure {
        kind: match e {
            WireError::UnsupportedVersion { .. } => FailureKind::Schema,
            _ => FailureKind::Decode,
        },
        detail: e.to_string(),
    })?;
    let envelope_us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    let classification = model
        .classify(&envelope.payload)
        .map_err(|e: ModelError| Failure {
            kind: e.failure_kind(),
            detail: e.to_string(),
        })?;
    Ok(Classified {
        envelope,
        classification,
        queue_us,
        envelope_us,
    })
}
