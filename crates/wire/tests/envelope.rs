//! Envelope codec: round trips, golden vectors, hostile input.
#![allow(clippy::unwrap_used)]
use argus_wire::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/golden")
}

/// The envelopes whose bytes are checked in under `schemas/golden/`.
fn golden_cases() -> Vec<(&'static str, Envelope)> {
    vec![
        (
            "jpeg",
            Envelope {
                schema_version: 1,
                source_id: "cam-1".into(),
                sequence: 42,
                capture_time_us: 1_700_000_000_123_456,
                payload: Payload::Encoded {
                    format: ImageFormat::Jpeg,
                    bytes: vec![0xFF, 0xD8, 0xFF, 0xD9],
                },
            },
        ),
        (
            "raw",
            Envelope {
                schema_version: 1,
                source_id: "cam-2".into(),
                sequence: 7,
                capture_time_us: -1,
                payload: Payload::Raw(RawImage {
                    width: 2,
                    height: 1,
                    layout: PixelLayout::Bgr8,
                    data: vec![1, 2, 3, 4, 5, 6],
                }),
            },
        ),
        (
            "record",
            Envelope {
                schema_version: 1,
                source_id: "customer-0001".into(),
                sequence: 0,
                capture_time_us: 1_700_000_000_000_000,
                payload: Payload::Record(Record {
                    fields: vec![
                        Field {
                            name: "tenure".into(),
                            value: Value::Int(12),
                        },
                        Field {
                            name: "charges".into(),
                            value: Value::Float(70.5),
                        },
                        Field {
                            name: "plan".into(),
                            value: Value::Text("fibre".into()),
                        },
                        Field {
                            name: "senior".into(),
                            value: Value::Bool(true),
                        },
                        Field {
                            name: "region".into(),
                            value: Value::Null,
                        },
                    ],
                }),
            },
        ),
    ]
}

#[test]
fn golden_vectors_match_both_ways() {
    let bless = std::env::var_os("ARGUS_BLESS").is_some();
    for (name, envelope) in golden_cases() {
        let path = golden_dir().join(format!("envelope-{name}.hex"));
        let bytes = encode_envelope(&envelope).unwrap();
        if bless {
            std::fs::write(&path, format!("{}\n", hex::encode(&bytes))).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (run with ARGUS_BLESS=1 to create)", path.display())
        });
        let golden = hex::decode(text.trim()).unwrap();
        assert_eq!(
            bytes,
            golden,
            "encoding of {name} drifted from {}",
            path.display()
        );
        assert_eq!(decode_envelope(&golden).unwrap(), envelope);
    }
}

/// `schemas/make_envelope.py` writes an envelope from the layout description alone; the
/// bytes it wrote are checked in, and must decode to what the script says it wrote.
#[test]
fn envelope_written_from_the_layout_doc_decodes() {
    let text = std::fs::read_to_string(golden_dir().join("python-jpeg.hex")).unwrap();
    let bytes = hex::decode(text.trim()).unwrap();
    let envelope = decode_envelope(&bytes).unwrap();
    assert_eq!(envelope.source_id, "cam-python");
    assert_eq!(envelope.sequence, 3);
    assert_eq!(envelope.capture_time_us, 1_700_000_000_000_000);
    assert_eq!(
        envelope.payload,
        Payload::Encoded {
            format: ImageFormat::Jpeg,
            bytes: b"not really a jpeg".to_vec()
        }
    );
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    assert!(matches!(
        decode_envelope(&[]),
        Err(WireError::TooShort { .. })
    ));
    assert!(matches!(
        decode_envelope(&[1]),
        Err(WireError::TooShort { .. })
    ));
    assert!(matches!(
        decode_envelope(&[2, 0, 0, 0]),
        Err(WireError::UnsupportedVersion { found: 2 })
    ));
    assert!(matches!(
        decode_envelope(b"junk"),
        Err(WireError::NotAnEnvelope { found: 0x756a })
    ));
    // A string length prefix claiming 2^60 bytes must not allocate.
    let mut huge = vec![1, 0];
    huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        decode_envelope(&huge),
        Err(WireError::Decode { .. })
    ));
    let mut good = encode_envelope(&golden_cases()[0].1).unwrap();
    good.push(0);
    assert!(matches!(
        decode_envelope(&good),
        Err(WireError::TrailingBytes { extra: 1, .. })
    ));
    good.truncate(good.len() - 3);
    assert!(matches!(
        decode_envelope(&good),
        Err(WireError::Decode { .. })
    ));
    // Unknown payload variant.
    let mut bad_variant = encode_envelope(&golden_cases()[0].1).unwrap();
    let at = 2 + 8 + 5 + 8 + 8; // version, id length, "cam-1", sequence, capture time
    bad_variant[at] = 9;
    assert!(matches!(
        decode_envelope(&bad_variant),
        Err(WireError::Decode { .. })
    ));
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(Value::Float),
        ".{0,12}".prop_map(Value::Text),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(png, bytes)| {
                Payload::Encoded {
                    format: if png {
                        ImageFormat::Png
                    } else {
                        ImageFormat::Jpeg
                    },
                    bytes,
                }
            }),
        (1u32..8, 1u32..8, 0usize..3).prop_flat_map(|(w, h, l)| {
            let layout = [PixelLayout::Rgb8, PixelLayout::Bgr8, PixelLayout::Gray8][l];
            proptest::collection::vec(any::<u8>(), (w * h) as usize * layout.channels()).prop_map(
                move |data| {
                    Payload::Raw(RawImage {
                        width: w,
                        height: h,
                        layout,
                        data,
                    })
                },
            )
        }),
        proptest::collection::vec(("[a-z_]{1,10}", value()), 0..8).prop_map(|fields| {
            Payload::Record(Record {
                fields: fields
                    .into_iter()
                    .map(|(name, value)| Field { name, value })
                    .collect(),
            })
        }),
    ]
}

proptest! {
    #[test]
    fn round_trip(source_id in ".{0,40}", sequence in any::<u64>(), t in any::<i64>(), payload in payload()) {
        let envelope = Envelope { schema_version: SCHEMA_VERSION, source_id, sequence, capture_time_us: t, payload };
        let bytes = encode_envelope(&envelope).unwrap();
        prop_assert_eq!(&bytes[..2], &SCHEMA_VERSION.to_le_bytes()[..]);
        prop_assert_eq!(decode_envelope(&bytes).unwrap(), envelope);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_envelope(&bytes);
        let mut v1 = bytes.clone();
        if v1.len() >= 2 { v1[0] = 1; v1[1] = 0; }
        let _ = decode_envelope(&v1);
    }
}
