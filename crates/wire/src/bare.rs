//! Inputs without the envelope ("headers mode"): a Kafka value that is a JPEG or PNG file
//! (`content-type: image/jpeg` / `image/png`) or one JSON object (`application/json`),
//! written by kcat, Kafka Connect or a camera gateway that knows nothing of Argus.
//!
//! The rule, in one place: a value with an `argus-schema` header, or whose first two bytes
//! are a plausible envelope schema version (`01 00` … `ff 00`), is an envelope, whatever its
//! other headers say (Argus's producer sets `content-type`
//! on envelopes too); any other value with one of those content types is bare, and gets an
//! envelope here: the source id is the record key (UTF-8; empty without one), the sequence
//! its offset, the capture time the `argus-capture-us` header (µs) if present, else the
//! Kafka timestamp. Without such a content type a value is read as an envelope (and, not
//! being one, fails as `decode`).
use crate::envelope::{
    Envelope, Field, ImageFormat, Payload, Record, Value, WireError, MAX_PLAUSIBLE_VERSION,
    SCHEMA_VERSION,
};

/// What a bare value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareKind {
    /// An encoded image file.
    Image(ImageFormat),
    /// One JSON object: a record, its keys the field names.
    JsonRecord,
}

impl BareKind {
    /// The kind a `content-type` header value names (parameters such as `; charset=utf-8`
    /// and case are ignored), if it is one Argus reads bare.
    pub fn from_content_type(content_type: &str) -> Option<BareKind> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "image/jpeg" | "image/jpg" => Some(BareKind::Image(ImageFormat::Jpeg)),
            "image/png" => Some(BareKind::Image(ImageFormat::Png)),
            "application/json" => Some(BareKind::JsonRecord),
            _ => None,
        }
    }
}

/// Whether `value` is read bare: it has a bare content type and does not start with a
/// plausible envelope version (`01 00` … `ff 00`, so an envelope of a newer version is
/// still refused as `schema`, not decoded as an image). Callers also treat any value with
/// an `argus-schema` header as an envelope.
pub fn bare_kind(value: &[u8], content_type: Option<&str>) -> Option<BareKind> {
    if let [lo, 0, ..] = value {
        if (1..=MAX_PLAUSIBLE_VERSION).contains(&u16::from(*lo)) {
            return None;
        }
    }
    content_type.and_then(BareKind::from_content_type)
}

/// Where a bare value came from: what its envelope is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareOrigin {
    /// The record key as text (the camera or entity id).
    pub source_id: String,
    /// The record's offset.
    pub sequence: u64,
    /// Capture time, µs since the Unix epoch.
    pub capture_time_us: i64,
}

/// What a Kafka record carries besides its value, as far as reading it bare goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct BareRecord<'a> {
    /// The record key.
    pub key: Option<&'a [u8]>,
    /// Its offset.
    pub offset: i64,
    /// Its Kafka timestamp, ms.
    pub timestamp_ms: Option<i64>,
}

/// The whole rule (see the module doc) for one Kafka record, shared by every reader of
/// inputs (the worker, the drift sidecar): `None` when the value is read as an envelope,
/// else the envelope of the bare value. `headers` are (name, value) byte pairs, in order.
pub fn read_bare<'a>(
    value: &[u8],
    headers: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
    record: BareRecord<'_>,
) -> Option<Result<Envelope, WireError>> {
    use crate::headers::{CAPTURE_TIME_US, CONTENT_TYPE, SCHEMA};
    // Kafka header names are case-sensitive; `content-type` is matched as HTTP does (any
    // case), Argus's own headers exactly.
    let header = |name: &str, any_case: bool| {
        headers.clone().into_iter().find(|(n, _)| {
            if any_case {
                n.eq_ignore_ascii_case(name.as_bytes())
            } else {
                *n == name.as_bytes()
            }
        })
    };
    // Any `argus-schema` header: an envelope (or a mistake reported as one).
    if header(SCHEMA, false).is_some() {
        return None;
    }
    let text = |name: &str, any_case: bool| {
        header(name, any_case).and_then(|(_, v)| std::str::from_utf8(v?).ok())
    };
    let kind = bare_kind(value, text(CONTENT_TYPE, true))?;
    let capture_time_us = text(CAPTURE_TIME_US, false)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or_else(|| record.timestamp_ms.map(|ms| ms.saturating_mul(1000)))
        .unwrap_or_else(crate::now_us);
    let origin = BareOrigin {
        source_id: record
            .key
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or_default()
            .to_owned(),
        sequence: u64::try_from(record.offset).unwrap_or(0),
        capture_time_us,
    };
    Some(bare_envelope(kind, value, origin))
}

/// The envelope of a bare value. Errors ([`WireError::NotAJsonObject`],
/// [`WireError::NestedField`]) say what is wrong with a JSON value.
pub fn bare_envelope(
    kind: BareKind,
    value: &[u8],
    origin: BareOrigin,
) -> Result<Envelope, WireError> {
    let payload = match kind {
        BareKind::Image(format) => Payload::Encoded {
            format,
            bytes: value.to_vec(),
        },
        BareKind::JsonRecord => Payload::Record(json_record(value)?),
    };
    Ok(Envelope {
        schema_version: SCHEMA_VERSION,
        source_id: origin.source_id,
        sequence: origin.sequence,
        capture_time_us: origin.capture_time_us,
        payload,
    })
}

/// One JSON object as a record, its fields in key order (features are found by name):
/// numbers (integer literals as ints), strings, booleans and
/// null; nested arrays and objects are refused, naming the field.
pub fn json_record(value: &[u8]) -> Result<Record, WireError> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(value).map_err(|source| WireError::NotAJsonObject { source })?;
    let fields = object
        .into_iter()
        .map(|(name, v)| {
            let value = json_value(&name, v)?;
            Ok(Field {
                name: name.into(),
                value,
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(Record { fields })
}

/// A JSON value as a record value; `name` is the field, for the error.
pub fn json_value(name: &str, v: serde_json::Value) -> Result<Value, WireError> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.into()),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            return Err(WireError::NestedField {
                name: name.to_owned(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn origin() -> BareOrigin {
        BareOrigin {
            source_id: "cam-door".into(),
            sequence: 7,
            capture_time_us: 1_000,
        }
    }

    #[test]
    fn content_type_and_first_bytes_decide() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0];
        assert_eq!(
            bare_kind(&jpeg, Some("image/jpeg")),
            Some(BareKind::Image(ImageFormat::Jpeg))
        );
        assert_eq!(
            bare_kind(b"{\"a\":1}", Some("Application/JSON; charset=utf-8")),
            Some(BareKind::JsonRecord)
        );
        // An envelope stays an envelope though its header says image/jpeg, a newer one too.
        assert_eq!(bare_kind(&[1, 0, 9, 9], Some("image/jpeg")), None);
        assert_eq!(bare_kind(&[2, 0, 9, 9], Some("image/jpeg")), None);
        // No or another content type: read as an envelope.
        assert_eq!(bare_kind(&jpeg, None), None);
        assert_eq!(bare_kind(&jpeg, Some("application/octet-stream")), None);
    }

    #[test]
    fn json_objects_become_records_and_nesting_is_named() {
        let e = bare_envelope(
            BareKind::JsonRecord,
            br#"{"tenure": 12, "charges": 70.5, "plan": "pro", "autopay": true, "zip": null}"#,
            origin(),
        )
        .unwrap();
        assert_eq!(
            (e.source_id.as_str(), e.sequence, e.capture_time_us),
            ("cam-door", 7, 1_000)
        );
        let Payload::Record(r) = e.payload else {
            panic!("not a record")
        };
        let values: Vec<_> = r
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.clone()))
            .collect();
        assert_eq!(
            values,
            [
                ("autopay", Value::Bool(true)),
                ("charges", Value::Float(70.5)),
                ("plan", Value::Text("pro".into())),
                ("tenure", Value::Int(12)),
                ("zip", Value::Null),
            ]
        );
        let err = bare_envelope(BareKind::JsonRecord, br#"{"tags": ["a"]}"#, origin()).unwrap_err();
        assert!(
            matches!(&err, WireError::NestedField { name } if name == "tags"),
            "{err}"
        );
        assert!(err.to_string().contains("\"tags\" is nested"), "{err}");
        let err = bare_envelope(BareKind::JsonRecord, b"[1, 2]", origin()).unwrap_err();
        assert!(matches!(err, WireError::NotAJsonObject { .. }), "{err}");
    }
}
