//! Envelope codec: round trips, golden vectors, hostile input.
#![allow(clippy::unwrap_used)]
use argus_wire::*;
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
