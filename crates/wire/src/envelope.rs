//! The input `Envelope`: what producers put on `frames.<stream>` topics.
//!
//! Encoding is bincode 2 with `standard().with_little_endian().with_fixed_int_encoding()`:
//! every integer is fixed-width little-endian, a `String`/`Vec<u8>` is a `u64` length then
//! the bytes, an enum is a `u32` variant index then its fields, `Option` is a `u8` tag.
//! The full byte layout is in `schemas/envelope.md`, with golden vectors beside it, so any
//! language can write a valid frame. The first two bytes are always the schema version.
use bincode::{Decode, Encode};

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
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
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
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum ImageFormat {
    /// 0
    Jpeg,
    /// 1
    Png,
}

/// Raw pixels, row-major, channels interleaved (HWC), 8 bits per channel.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
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
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
pub struct Record {
    /// The fields, in source order (names unique within a record).
    pub fields: Vec<Field>,
}

/// One named value.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Field {
    /// Feature name (a CSV column or JSON key).
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// A feature value (`u32` variant index).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
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
    Text(String),
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
    let (envelope, used): (Envelope, usize) = bincode::decode_from_slice(bytes, config())
        .map_err(|source| WireError::Decode { source })?;
    if used != bytes.len() {
        return Err(WireError::TrailingBytes {
            used,
            extra: bytes.len() - used,
        });
    }
    Ok(envelope)
}
