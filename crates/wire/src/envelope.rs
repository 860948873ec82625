//! The input `Envelope`: what producers put on `frames.<stream>` topics.
//!
//! Encoding is bincode 2 with `standard().with_little_endian().with_fixed_int_encoding()`:
//! every integer is fixed-width little-endian, a `String`/`Vec<u8>` is a `u64` length then
//! the bytes, an enum is a `u32` variant index then its fields, `Option` is a `u8` tag.
//! The full byte layout is in `schemas/envelope.md`, with golden vectors beside it, so any
//! language can write a valid frame. The first two bytes are always the schema version.
//!
//! Encoding is derived; decoding is written out below (same layout) so that no length
//! prefix allocates more than the message holds: bincode's own `Vec<u8>`/`String` decoders
//! allocate the declared length (up to the 64 MiB limit) before reading it, so a 20-byte
//! message claiming a 60 MiB string cost a 60 MiB zeroed allocation (found by
//! `tests/fuzz.rs`). Here byte strings are borrowed from the input first (an error when the
//! input is shorter than declared) and copied, and lists grow as their items decode.
use bincode::de::{BorrowDecode, BorrowDecoder, Decode};
use bincode::enc::{Encode, Encoder};
use bincode::error::EncodeError;
use bincode::error::{AllowedEnumVariants, DecodeError};
use compact_str::CompactString;

/// Version of the envelope layout written by this build (first two bytes, `u16` LE).
pub const SCHEMA_VERSION: u16 = 1;
/// Largest value of the first two bytes still read as a (future) schema version.
pub const MAX_PLAUSIBLE_VERSION: u16 = 255;
/// Value of the `argus-schema` header on input messages.
pub const ENVELOPE_SCHEMA: &str = "argus.envelope/v1";
/// Upper bound on what the decoder will allocate for one envelope; protects workers from
/// length prefixes that claim gigabytes.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<MAX_ENVELOPE_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_ENVELOPE_BYTES>()
}

/// One input: a frame from a camera or a record from any source.
#[derive(Debug, Clone, PartialEq, bincode::Encode)]
pub struct Envelope {
    /// Layout version; [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u16,
    /// Camera or entity id (also the Kafka key).
    pub source_id: String,
    /// Per-source sequence number, increasing by one per input.
    pub sequence: u64,
    /// Capture time, microseconds since the Unix epoch (UTC).
    pub capture_time_us: i64,
    /// What was captured.
    pub payload: Payload,
}

/// The content of an envelope.
#[derive(Debug, Clone, PartialEq, bincode::Encode)]
pub enum Payload {
    /// Variant 0: an encoded image, bytes passed through untouched.
    Encoded {
        /// JPEG or PNG.
        format: ImageFormat,
        /// The encoded file's bytes.
        bytes: Vec<u8>,
    },
    /// Variant 1: raw interleaved pixels.
    Raw(RawImage),
    /// Variant 2: a record of named features.
    Record(Record),
}

/// Encoded image formats (`u32` variant index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum ImageFormat {
    /// 0
    Jpeg,
    /// 1
    Png,
}

/// Raw pixels, row-major, channels interleaved (HWC), 8 bits per channel.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode)]
pub struct RawImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Channel order.
    pub layout: PixelLayout,
    /// `width * height * layout.channels()` bytes.
    pub data: Vec<u8>,
}

/// Channel order of a [`RawImage`] (`u32` variant index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum PixelLayout {
    /// 0: R, G, B.
    Rgb8,
    /// 1: B, G, R (OpenCV's default).
    Bgr8,
    /// 2: one luma channel.
    Gray8,
}

impl PixelLayout {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            PixelLayout::Rgb8 | PixelLayout::Bgr8 => 3,
            PixelLayout::Gray8 => 1,
        }
    }
}

/// A record of named features, in the order the source gave them.
#[derive(Debug, Clone, PartialEq, Default, bincode::Encode)]
pub struct Record {
    /// The fields, in source order (names unique within a record).
    pub fields: Vec<Field>,
}

/// One named value.
///
/// Names and text values are [`CompactString`]s: up to 24 bytes are held inline, so the
/// usual column names and categories decode without an allocation each (a churn record's
/// twelve fields cost the worker 17 allocations as `String`s). They encode exactly as a
/// `String` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Feature name (a CSV column or JSON key).
    pub name: CompactString,
    /// Its value.
    pub value: Value,
}

/// A feature value (`u32` variant index).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 0
    Null,
    /// 1: one byte, 0 or 1.
    Bool(bool),
    /// 2: `i64` LE.
    Int(i64),
    /// 3: `f64` LE (IEEE 754).
    Float(f64),
    /// 4: UTF-8 string.
    Text(CompactString),
}

/// A value as JSON, as an alert's `features` carry it: `null`, a boolean, an integer, a
/// number (`null` when not finite, which JSON cannot hold) or a string.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(_) => s.serialize_unit(),
            Value::Text(t) => s.serialize_str(t),
        }
    }
}

impl Value {
    /// The value as a JSON value, as it serialises.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

// Encoding by hand only because bincode has no `Encode` for `CompactString`; the layout is
// what the derive wrote for `String` fields (`u64` length, then the bytes).
impl Encode for Field {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.name.as_str().encode(e)?;
        self.value.encode(e)
    }
}

impl Encode for Value {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        match self {
            Value::Null => 0u32.encode(e),
            Value::Bool(b) => {
                1u32.encode(e)?;
                b.encode(e)
            }
            Value::Int(i) => {
                2u32.encode(e)?;
                i.encode(e)
            }
            Value::Float(f) => {
                3u32.encode(e)?;
                f.encode(e)
            }
            Value::Text(t) => {
                4u32.encode(e)?;
                t.as_str().encode(e)
            }
        }
    }
}

impl Payload {
    /// Media type for the `content-type` header.
    pub fn content_type(&self) -> &'static str {
        match self {
            Payload::Encoded {
                format: ImageFormat::Jpeg,
                ..
            } => "image/jpeg",
            Payload::Encoded {
                format: ImageFormat::Png,
                ..
            } => "image/png",
            Payload::Raw(_) => "application/x-argus-raw-image",
            Payload::Record(_) => "application/x-argus-record",
        }
    }
}

// Decoding by hand (see the module doc): the layout of `schemas/envelope.md`, field by field
// in the order the derived `Encode` writes them. Struct expressions evaluate their fields in
// the order written, which is the wire order.

/// A byte string (`u64` length, then the bytes), borrowed from the input and then copied:
/// a length beyond what the input holds is `UnexpectedEnd`, never an allocation.
fn bytes<'de, D: BorrowDecoder<'de>>(d: &mut D) -> Result<Vec<u8>, DecodeError> {
    <&[u8] as BorrowDecode<'de, D::Context>>::borrow_decode(d).map(<[u8]>::to_vec)
}

/// A UTF-8 string, as [`bytes`].
fn text<'de, D: BorrowDecoder<'de>>(d: &mut D) -> Result<String, DecodeError> {
    <&str as BorrowDecode<'de, D::Context>>::borrow_decode(d).map(str::to_owned)
}

/// A UTF-8 string, as [`text`], held inline when it is 24 bytes or shorter.
fn compact_text<'de, D: BorrowDecoder<'de>>(d: &mut D) -> Result<CompactString, DecodeError> {
    <&str as BorrowDecode<'de, D::Context>>::borrow_decode(d).map(CompactString::from)
}

/// A list (`u64` count, then the items). At most [`LIST_RESERVE`] items are reserved from
/// the count, and the vector grows past that as items decode, so a count beyond the input
/// fails at the first missing item without a large allocation.
fn list<'de, D: BorrowDecoder<'de>, T>(
    d: &mut D,
    mut item: impl FnMut(&mut D) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let count = u64::decode(d)?;
    let mut out =
        Vec::with_capacity(usize::try_from(count).map_or(LIST_RESERVE, |c| c.min(LIST_RESERVE)));
    for _ in 0..count {
        out.push(item(d)?);
    }
    Ok(out)
}

/// Items [`list`] reserves at most before decoding them: a typical record's fields (churn
/// has 12) decode without growing the vector, and a hostile count costs under 1 kB (16
/// `Field`s of 56 bytes; tests/fuzz.rs bounds what a decode may hold).
const LIST_RESERVE: usize = 16;

fn unexpected_variant<T>(found: u32, allowed: &'static AllowedEnumVariants) -> DecodeError {
    DecodeError::UnexpectedVariant {
        type_name: std::any::type_name::<T>(),
        allowed,
        found,
    }
}

impl<'de, C> BorrowDecode<'de, C> for Envelope {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        Ok(Envelope {
            schema_version: u16::decode(d)?,
            source_id: text(d)?,
            sequence: u64::decode(d)?,
            capture_time_us: i64::decode(d)?,
            payload: Payload::borrow_decode(d)?,
        })
    }
}

impl<'de, C> BorrowDecode<'de, C> for Payload {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(Payload::Encoded {
                format: ImageFormat::decode(d)?,
                bytes: bytes(d)?,
            }),
            1 => Ok(Payload::Raw(RawImage {
                width: u32::decode(d)?,
                height: u32::decode(d)?,
                layout: PixelLayout::decode(d)?,
                data: bytes(d)?,
            })),
            2 => Ok(Payload::Record(Record {
                fields: list(d, |d| {
                    Ok(Field {
                        name: compact_text(d)?,
                        value: Value::borrow_decode(d)?,
                    })
                })?,
            })),
            found => Err(unexpected_variant::<Payload>(
                found,
                &AllowedEnumVariants::Range { min: 0, max: 2 },
            )),
        }
    }
}

impl<'de, C> BorrowDecode<'de, C> for Value {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Self, DecodeError> {
        match u32::decode(d)? {
            0 => Ok(Value::Null),
            1 => Ok(Value::Bool(bool::decode(d)?)),
            2 => Ok(Value::Int(i64::decode(d)?)),
            3 => Ok(Value::Float(f64::decode(d)?)),
            4 => Ok(Value::Text(compact_text(d)?)),
            found => Err(unexpected_variant::<Value>(
                found,
                &AllowedEnumVariants::Range { min: 0, max: 4 },
            )),
        }
    }
}

/// Why bytes could not be read as an [`Envelope`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Fewer than two bytes: not even a version.
    #[error("message of {len} bytes is too short to hold an envelope")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// A version this build cannot read.
    #[error("envelope schema version {found} is not supported (this build reads version {SCHEMA_VERSION})")]
    UnsupportedVersion {
        /// The version in the first two bytes.
        found: u16,
    },
    /// The first two bytes are no plausible version: not an envelope at all.
    #[error("not an Argus envelope: first two bytes {found:#06x} are not a schema version")]
    NotAnEnvelope {
        /// The first two bytes, little-endian.
        found: u16,
    },
    /// The bytes do not follow the layout.
    #[error("envelope does not decode: {source}")]
    Decode {
        /// bincode's error.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// Valid envelope followed by garbage.
    #[error("envelope has {extra} trailing bytes after {used} decoded bytes")]
    TrailingBytes {
        /// Bytes decoded as the envelope.
        used: usize,
        /// Bytes left over after it.
        extra: usize,
    },
    /// A label ([`crate::label::Label`]) that breaks its schema's rules.
    #[error("invalid label: {field} {detail}")]
    InvalidLabel {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A headers-mode `application/json` value ([`crate::bare`]) is not one JSON object.
    #[error("value is not a JSON object: {source}")]
    NotAJsonObject {
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A field of a headers-mode JSON value ([`crate::bare`]) is an array or an object.
    #[error("field {name:?} is nested; only numbers, strings, booleans and null are supported — flatten it")]
    NestedField {
        /// The field's name.
        name: String,
    },
    /// Encoding failed (only for envelopes larger than the limit).
    #[error("envelope does not encode: {source}")]
    Encode {
        /// bincode's error.
        #[source]
        source: bincode::error::EncodeError,
    },
}

/// Now, in the unit of every `*_us` time on the wire: microseconds since the Unix epoch
/// (UTC). 0 if the clock is before 1970.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Encodes an envelope to its wire bytes.
pub fn encode_envelope(envelope: &Envelope) -> Result<Vec<u8>, WireError> {
    bincode::encode_to_vec(envelope, config()).map_err(|source| WireError::Encode { source })
}

/// Decodes wire bytes, checking the version first so that a newer producer's message is
/// reported as a schema problem rather than garbage.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, WireError> {
    let version = match bytes {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => return Err(WireError::TooShort { len: bytes.len() }),
    };
    if version != SCHEMA_VERSION {
        // Versions are small integers; anything else is garbage rather than a newer writer.
        return Err(if (1..=MAX_PLAUSIBLE_VERSION).contains(&version) {
            WireError::UnsupportedVersion { found: version }
        } else {
            WireError::NotAnEnvelope { found: version }
        });
    }
    let (envelope, used): (Envelope, usize) = bincode::borrow_decode_from_slice(bytes, config())
        .map_err(|source| WireError::Decode { source })?;
    if used != bytes.len() {
        return Err(WireError::TrailingBytes {
            used,
            extra: bytes.len() - used,
        });
    }
    Ok(envelope)
}
