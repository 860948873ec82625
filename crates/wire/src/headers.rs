//! Kafka header names, in one place. Tools that cannot read bincode route and measure on
//! these.

/// Schema of the value (`argus.envelope/v1`, `argus.prediction/v1`, ...).
pub const SCHEMA: &str = "argus-schema";
/// Media type of the payload (`image/jpeg`, `application/json`, ...).
pub const CONTENT_TYPE: &str = "content-type";
/// Capture time, µs since the Unix epoch, decimal ASCII.
pub const CAPTURE_TIME_US: &str = "argus-capture-us";

/// DLQ: what failed, one of [`FailureKind::as_str`].
pub const DLQ_REASON: &str = "argus-dlq-reason";
/// DLQ: human-readable detail.
pub const DLQ_DETAIL: &str = "argus-dlq-detail";
/// DLQ: topic of the original message.
pub const DLQ_SOURCE_TOPIC: &str = "argus-dlq-topic";
/// DLQ: partition of the original message, decimal.
pub const DLQ_SOURCE_PARTITION: &str = "argus-dlq-partition";
/// DLQ: offset of the original message, decimal.
pub const DLQ_SOURCE_OFFSET: &str = "argus-dlq-offset";
/// DLQ: when the failure happened, µs since the Unix epoch, decimal.
pub const DLQ_TIME_US: &str = "argus-dlq-time-us";
/// DLQ: the worker that gave up on it.
pub const DLQ_WORKER: &str = "argus-dlq-worker";
/// DLQ: prefix of an original header whose name is not UTF-8 (the client can only write
/// UTF-8 names): `argus-dlq-raw-header-<the name's bytes in lowercase hex>`, value as it was.
pub const DLQ_RAW_HEADER_PREFIX: &str = "argus-dlq-raw-header-";

/// Why an input went to the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Bytes are not a valid envelope, or the image does not decode.
    Decode,
    /// Envelope of a schema version this worker cannot read.
    Schema,
    /// Message larger than the worker accepts.
    Oversize,
    /// Payload does not fit the model's input (wrong kind or dimensions).
    Shape,
    /// A record lacks a feature the model needs or has it ill-typed; the detail names it.
    Feature,
    /// The model failed on this input.
    Model,
    /// Processing did not finish in time.
    Timeout,
}

impl FailureKind {
    /// All kinds, for pre-registering metrics.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Decode,
        FailureKind::Schema,
        FailureKind::Oversize,
        FailureKind::Shape,
        FailureKind::Feature,
        FailureKind::Model,
        FailureKind::Timeout,
    ];

    /// The header value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Decode => "decode",
            FailureKind::Schema => "schema",
            FailureKind::Oversize => "oversize",
            FailureKind::Shape => "shape",
            FailureKind::Feature => "feature",
            FailureKind::Model => "model",
            FailureKind::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DLQ: present (with the original length) when the original value was too large to copy
/// into the DLQ; the original stays in its topic at the offset named.
pub const DLQ_VALUE_DROPPED: &str = "argus-dlq-value-dropped";
