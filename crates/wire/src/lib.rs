//! Argus wire formats: the one place that knows how bytes on a topic look.
//!
//! Layout:
//! - [`envelope`]: the input `Envelope` (bincode, fixed-width little-endian) and its codec.
//! - [`output`]: `Prediction` and `Alert`, the JSON messages on the result topics.
//! - [`prediction_view`]: a `Prediction` that borrows its text, for the writer's hot path.
//! - [`alert_view`]: the same for an `Alert` raised from a prediction.
//! - [`headers`]: Kafka header names and the DLQ failure kinds.
//! - [`bare`]: inputs without the envelope (a JPEG/PNG or JSON value, `content-type` header).
//! - [`columns`]: the one rule that infers a table column's type (producer and drift profiler).
//! - [`records`]: CSV / JSON-lines rows as `Record`s (producer and `argus model evaluate`);
//!   parsing only, the caller opens the file.
//!
//! No I/O happens here. This is the only crate that depends on bincode (flagged unmaintained,
//! RUSTSEC-2025-0141), so swapping the codec later touches one crate.
#![warn(missing_docs)]
pub mod alert_view;
pub mod bare;
pub mod columns;
pub mod envelope;
pub mod headers;
pub mod label;
pub mod output;
pub mod prediction_view;
pub mod records;

pub use alert_view::{AlertId, AlertRuleView, AlertView, FeaturesView};
pub use bare::{
    bare_envelope, bare_kind, json_record, read_bare, BareKind, BareOrigin, BareRecord,
};
pub use columns::{infer_column_type, ColumnTally, ColumnType};
/// The string type of a record's field names and text values ([`Field`], [`Value::Text`]).
pub use compact_str::CompactString;
pub use envelope::{
    decode_envelope, encode_envelope, now_us, Envelope, Field, ImageFormat, Payload, PixelLayout,
    RawImage, Record, Value, WireError, ENVELOPE_SCHEMA, MAX_ENVELOPE_BYTES, SCHEMA_VERSION,
};
pub use headers::FailureKind;
pub use label::{Label, LabelSource, LABEL_JSON_SCHEMA, LABEL_SCHEMA};
pub use output::{
    Alert, AlertBox, AlertRule, Attribution, DetectedBox, Evidence, EvidenceStatus, FrameSize,
    InputRef, ModelRef, Prediction, PredictionOutcome, Saliency, Score, Skipped, Timings, ZoneHit,
    ALERT_JSON_SCHEMA, ALERT_SCHEMA, ALERT_SCHEMA_V2, ALERT_SCHEMA_V3, ALERT_SCHEMA_V4,
    ALERT_V2_JSON_SCHEMA, ALERT_V3_JSON_SCHEMA, ALERT_V4_JSON_SCHEMA, PREDICTION_JSON_SCHEMA,
    PREDICTION_SCHEMA, PREDICTION_SCHEMA_V2, PREDICTION_SCHEMA_V3, PREDICTION_V2_JSON_SCHEMA,
    PREDICTION_V3_JSON_SCHEMA,
};
pub use prediction_view::{InputId, InputRefView, ModelRefJson, PredictionView, ScoreView};
