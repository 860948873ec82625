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

/// `clients/python/argus_envelope.py` (standard library only) writes every payload type
/// from the layout description alone. Run with python3: it writes each type with the
/// current time, and reproduces `golden/python-jpeg.hex` with a fixed one.
#[test]
fn python_client_writes_every_payload_type() {
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/python");
    let script = r#"
import sys, json
sys.path.insert(0, sys.argv[1])
import argus_envelope as ae
values = {
    "jpeg": ae.jpeg_envelope("cam-j", 1, b"\xff\xd8\xff\xd9"),
    "png": ae.png_envelope("cam-p", 2, b"\x89PNG\r\n\x1a\n"),
    "raw": ae.raw_envelope("cam-r", 3, 2, 1, ae.BGR8, bytes([1, 2, 3, 4, 5, 6])),
    "gray": ae.raw_envelope("cam-g", 4, 1, 2, ae.GRAY8, b"\x07\x08"),
    "record": ae.record_envelope("C-0001", 5, {"tenure": 12, "charges": 70.5,
        "plan": "fibre \u00e9", "senior": True, "region": None, "debt": -3}),
    "golden": ae.jpeg_envelope("cam-python", 3, b"not really a jpeg", 1_700_000_000_000_000),
}
out = {k: {"value": v.hex(), "headers": {n: h.decode() for n, h in ae.headers(v)}}
       for k, v in values.items()}
print(json.dumps({"now_us": ae.now_us(), "values": out}))
"#;
    let before = now_us();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&module)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after = now_us();
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!((before..=after).contains(&out["now_us"].as_i64().unwrap()));
    let decoded = |name: &str| {
        let v = &out["values"][name];
        let e = decode_envelope(&hex::decode(v["value"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(e.schema_version, SCHEMA_VERSION);
        // Capture time: now, as the script ran (the golden one excepted).
        if name != "golden" {
            assert!(
                (before..=after).contains(&e.capture_time_us),
                "{name}: capture time {} not within {before}..={after}",
                e.capture_time_us
            );
        }
        let h = &v["headers"];
        assert_eq!(h["argus-schema"], ENVELOPE_SCHEMA);
        assert_eq!(h["content-type"], e.payload.content_type(), "{name}");
        assert_eq!(h["argus-capture-us"], e.capture_time_us.to_string());
        e
    };
    let e = decoded("jpeg");
    assert_eq!((e.source_id.as_str(), e.sequence), ("cam-j", 1));
    assert_eq!(
        e.payload,
        Payload::Encoded {
            format: ImageFormat::Jpeg,
            bytes: vec![0xFF, 0xD8, 0xFF, 0xD9]
        }
    );
    let e = decoded("png");
    assert_eq!((e.source_id.as_str(), e.sequence), ("cam-p", 2));
    assert_eq!(
        e.payload,
        Payload::Encoded {
            format: ImageFormat::Png,
            bytes: b"\x89PNG\r\n\x1a\n".to_vec()
        }
    );
    let e = decoded("raw");
    assert_eq!((e.source_id.as_str(), e.sequence), ("cam-r", 3));
    assert_eq!(
        e.payload,
        Payload::Raw(RawImage {
            width: 2,
            height: 1,
            layout: PixelLayout::Bgr8,
            data: vec![1, 2, 3, 4, 5, 6]
        })
    );
    let e = decoded("gray");
    assert_eq!(
        e.payload,
        Payload::Raw(RawImage {
            width: 1,
            height: 2,
            layout: PixelLayout::Gray8,
            data: vec![7, 8]
        })
    );
    let e = decoded("record");
    assert_eq!((e.source_id.as_str(), e.sequence), ("C-0001", 5));
    let field = |name: &str, value: Value| Field {
        name: name.into(),
        value,
    };
    assert_eq!(
        e.payload,
        Payload::Record(Record {
            fields: vec![
                field("tenure", Value::Int(12)),
                field("charges", Value::Float(70.5)),
                field("plan", Value::Text("fibre é".into())),
                field("senior", Value::Bool(true)),
                field("region", Value::Null),
                field("debt", Value::Int(-3)),
            ]
        })
    );
    // The checked-in bytes the module reproduces exactly.
    let golden = std::fs::read_to_string(golden_dir().join("python-jpeg.hex")).unwrap();
    assert_eq!(out["values"]["golden"]["value"], golden.trim());
    let e = decoded("golden");
    assert_eq!(
        (e.source_id.as_str(), e.sequence, e.capture_time_us),
        ("cam-python", 3, 1_700_000_000_000_000)
    );
    assert_eq!(
        e.payload,
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
