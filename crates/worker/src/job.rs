//! One input, copied out of librdkafka so it can cross threads, and its classification.
use argus_kafka::RawHeaders;
use argus_model::{Classification, Classifier, Prepared};
use argus_wire::{decode_envelope, Envelope, FailureKind, InputRef, InputRefView, WireError};
use rdkafka_types::*;
use std::time::Instant;

mod rdkafka_types {
    pub use argus_kafka::rdkafka::message::{BorrowedMessage, Message};
}

/// An input message, owned.
#[derive(Debug, Clone)]
pub struct Job {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The payload, shared (the decode task and the publisher read the same bytes).
    pub value: std::sync::Arc<[u8]>,
    /// Original headers as bytes, kept for the DLQ.
    pub headers: RawHeaders,
    /// Kafka timestamp, ms since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    pub received: Instant,
}

impl Job {
    /// Copies a consumed message.
    pub fn from_message(m: &BorrowedMessage<'_>) -> Job {
        // Not rdkafka's `headers()`: it panics on a header name that is not UTF-8.
        let headers = argus_kafka::raw_headers(m);
        Job {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: std::sync::Arc::from(m.payload().unwrap_or_default()),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
            received: Instant::now(),
        }
    }

    /// Why the headers make this record unreadable: a header name that is not UTF-8 (Kafka
    /// allows any bytes; Argus's clients, and most others, do not).
    pub fn header_problem(&self) -> Option<String> {
        let (i, h) = self
            .headers
            .iter()
            .enumerate()
            .find(|(_, h)| h.name_str().is_none())?;
        Some(format!(
            "header {} of {}: name is not UTF-8: {}",
            i + 1,
            self.headers.len(),
            h.name_escaped()
        ))
    }

    /// The value read bare ([`argus_wire::bare`]): `None` when it is read as an envelope.
    pub fn bare(&self) -> Option<Result<Envelope, WireError>> {
        argus_wire::read_bare(
            &self.value,
            self.headers.pairs(),
            argus_wire::BareRecord {
                key: self.key.as_deref(),
                offset: self.offset,
                timestamp_ms: self.timestamp_ms,
            },
        )
    }

    /// The key as text, if it is UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// Coordinates of this input, enriched from the envelope when it decoded.
    pub fn input_ref(&self, envelope: Option<&Envelope>) -> InputRef {
        self.input_view(envelope).to_owned()
    }

    /// [`Job::input_ref`], borrowed from the job and the envelope.
    pub fn input_view<'a>(&'a self, envelope: Option<&'a Envelope>) -> InputRefView<'a> {
        InputRefView {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key_str(),
            source_id: envelope.map(|e| e.source_id.as_str()),
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

/// An input decoded and preprocessed, waiting for the model.
#[derive(Debug, Clone)]
pub struct Ready {
    pub envelope: Envelope,
    pub prepared: Prepared,
    pub queue_us: u64,
    pub envelope_us: u64,
}

/// An input older than `max_age` when the worker reached it: not run.
#[derive(Debug, Clone)]
pub struct Stale {
    pub envelope: Envelope,
    /// Capture time to the moment the worker reached it, µs.
    pub age_us: u64,
    pub max_age_us: u64,
    pub queue_us: u64,
}

/// What preparing an input led to.
#[derive(Debug, Clone)]
pub enum Prepare {
    /// Ready for inference.
    Ready(Ready),
    /// Older than `max_age`: not run.
    Stale(Stale),
    /// Cannot be run: goes to the DLQ.
    Failed(Failure),
}

/// Checks size, decodes the envelope, checks age and decodes and preprocesses the payload.
/// Blocking: run it off the reactor.
pub fn prepare(
    job: &Job,
    model: &Classifier,
    max_input_bytes: usize,
    max_age: Option<std::time::Duration>,
) -> Prepare {
    let queue_us = u64::try_from(job.received.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Some(detail) = job.header_problem() {
        return Prepare::Failed(Failure {
            kind: FailureKind::Decode,
            detail,
        });
    }
    if job.value.len() > max_input_bytes {
        return Prepare::Failed(Failure {
            kind: FailureKind::Oversize,
            detail: format!(
                "message of {} bytes exceeds max_input_bytes = {}",
                job.value.len(),
                max_input_bytes
            ),
        });
    }
    let t = Instant::now();
    // A bare value's errors (not a JSON object, a nested field) are `decode` failures too.
    let envelope = match job.bare() {
        Some(bare) => bare,
        None => decode_envelope(&job.value),
    };
    let envelope = match envelope {
        Ok(e) => e,
        Err(e) => {
            return Prepare::Failed(Failure {
                kind: match e {
                    WireError::UnsupportedVersion { .. } => FailureKind::Schema,
                    _ => FailureKind::Decode,
                },
                detail: e.to_string(),
            })
        }
    };
    let envelope_us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    if let Some(max_age) = max_age {
        let age_us = argus_wire::now_us().saturating_sub(envelope.capture_time_us);
        let max_age_us = u64::try_from(max_age.as_micros()).unwrap_or(u64::MAX);
        if age_us > 0 && age_us as u64 > max_age_us {
            return Prepare::Stale(Stale {
                envelope,
                age_us: age_us as u64,
                max_age_us,
                queue_us,
            });
        }
    }
    match model.prepare(&envelope.payload) {
        Ok(prepared) => Prepare::Ready(Ready {
            envelope,
            prepared,
            queue_us,
            envelope_us,
        }),
        Err(e) => Prepare::Failed(Failure {
            kind: e.failure_kind(),
            detail: e.to_string(),
        }),
    }
}
