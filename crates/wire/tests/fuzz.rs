//! Bounded fuzzing of what a worker reads off a topic: the envelope decoder and the
//! headers-mode ("bare") inputs of `argus_wire::bare`.
//!
//! cargo-fuzz needs nightly and libFuzzer; this is the stable-Rust equivalent that CI runs:
//! proptest, structure-aware (valid envelopes, then mutated, truncated, extended, with huge
//! declared lengths or other versions), with a fixed seed and case count so every run tries
//! the same inputs and a failure reproduces. A failing input found here is kept below as a
//! `fuzz_*_regression_*` test. Longer campaigns (docs/testing.md):
//!
//! ```sh
//! PROPTEST_CASES=1000000 PROPTEST_RNG_SEED=$RANDOM cargo test --release -p argus-wire --test fuzz
//! ```
#![allow(clippy::unwrap_used)]
use allocation_counter::AllocationInfo;
use argus_wire::bare::json_record;
use argus_wire::*;
use bincode::error::DecodeError;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;

/// Same inputs on every run unless `PROPTEST_RNG_SEED` says otherwise.
const SEED: u64 = 0x0A26_0005;

/// `cases` per run (`PROPTEST_CASES` overrides), fixed seed, no regression files: inputs
/// worth keeping become tests here.
fn fuzz_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes a decode may hold at once per input byte: the copied strings (at most the input),
/// plus a record's field vector, which grows by doubling (an in-memory `Field` is 56 bytes
/// for at least 12 on the wire). Far below what one length prefix can claim.
const ALLOC_PER_INPUT_BYTE: u64 = 16;

fn decode_measured(bytes: &[u8]) -> (Result<Envelope, WireError>, AllocationInfo) {
    let mut result = None;
    let info = allocation_counter::measure(|| result = Some(decode_envelope(bytes)));
    (result.unwrap(), info)
}

/// The properties every input must have, whatever its bytes: no panic (proptest reports
/// one), no allocation beyond a small multiple of the input whatever its length prefixes
/// claim, an error variant that fits the bytes, and a decoded envelope that encodes back
/// to exactly the input (the layout has one encoding per value).
fn check_decode(bytes: &[u8]) -> Result<Option<Envelope>, TestCaseError> {
    let (result, info) = decode_measured(bytes);
    let bound = ALLOC_PER_INPUT_BYTE * bytes.len() as u64 + 1024;
    prop_assert!(
        info.bytes_max <= bound,
        "decoding {} bytes held {} bytes at once (bound {bound})",
        bytes.len(),
        info.bytes_max
    );
    let version = match bytes {
        [a, b, ..] => Some(u16::from_le_bytes([*a, *b])),
        _ => None,
    };
    match result {
        Ok(envelope) => {
            prop_assert_eq!(encode_envelope(&envelope).unwrap(), bytes);
            Ok(Some(envelope))
        }
        Err(WireError::TooShort { len }) => {
            prop_assert!(len == bytes.len() && len < 2);
            Ok(None)
        }
        Err(WireError::UnsupportedVersion { found }) => {
            prop_assert_eq!(Some(found), version);
            prop_assert!(found != SCHEMA_VERSION && (1..=255).contains(&found));
            Ok(None)
        }
        Err(WireError::NotAnEnvelope { found }) => {
            prop_assert_eq!(Some(found), version);
            prop_assert!(found == 0 || found > 255);
            Ok(None)
        }
        Err(WireError::Decode { .. }) => {
            prop_assert_eq!(version, Some(SCHEMA_VERSION));
            Ok(None)
        }
        Err(WireError::TrailingBytes { used, extra }) => {
            prop_assert_eq!(version, Some(SCHEMA_VERSION));
            prop_assert!(extra > 0 && used + extra == bytes.len());
            // The prefix it did read is a whole envelope.
            prop_assert!(decode_envelope(&bytes[..used]).is_ok());
            Ok(None)
        }
        Err(
            e @ (WireError::Encode { .. }
            | WireError::NotAJsonObject { .. }
            | WireError::InvalidLabel { .. }
            | WireError::NestedField { .. }),
        ) => Err(TestCaseError::fail(format!(
            "decode_envelope returned {e:?}"
        ))),
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(Value::Float),
        // Both sides of CompactString's 24 inline bytes.
        ".{0,40}".prop_map(|t: String| Value::Text(t.into())),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(png, bytes)| Payload::Encoded {
                format: if png {
                    ImageFormat::Png
                } else {
                    ImageFormat::Jpeg
                },
                bytes,
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
        proptest::collection::vec(("[a-z_]{1,30}", value()), 0..8).prop_map(|fields| {
            Payload::Record(Record {
                fields: fields
                    .into_iter()
                    .map(|(name, value): (String, _)| Field {
                        name: name.into(),
                        value,
                    })
                    .collect(),
            })
        }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (".{0,40}", any::<u64>(), any::<i64>(), payload()).prop_map(
        |(source_id, sequence, capture_time_us, payload)| Envelope {
            schema_version: SCHEMA_VERSION,
            source_id,
            sequence,
            capture_time_us,
            payload,
        },
    )
}

/// One change to a valid envelope's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Eight bytes at a position replaced by a length: what a length prefix there claims.
    Length(Index, u64),
    Version(u16),
}

/// Lengths a hostile prefix may claim: just past the input, around the 64 MiB limit, huge.
fn claimed_length() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..4096,
        (MAX_ENVELOPE_BYTES as u64 - 64)..(MAX_ENVELOPE_BYTES as u64 + 64),
        1u64 << 20..1u64 << 26,
        Just(u64::MAX),
        Just(1u64 << 60),
        any::<u64>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<Index>(), claimed_length()).prop_map(|(i, n)| Mutation::Length(i, n)),
        any::<u16>().prop_map(Mutation::Version),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
        Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Mutation::Extend(more) => bytes.extend_from_slice(more),
        Mutation::Insert(i, more) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, more.iter().copied());
        }
        Mutation::Remove(i, n) if len > 0 => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Length(i, n) if len >= 8 => {
            let at = i.index(len - 7);
            bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
        }
        Mutation::Version(v) if len >= 2 => bytes[..2].copy_from_slice(&v.to_le_bytes()),
        _ => {}
    }
}

/// Byte offsets of the length prefixes of an encoded envelope (the places where a
/// declared length matters most), from the layout in schemas/envelope.md.
fn length_prefix_offsets(e: &Envelope) -> Vec<usize> {
    let mut at = vec![2]; // source_id
    let payload = 2 + 8 + e.source_id.len() + 8 + 8;
    match &e.payload {
        Payload::Encoded { .. } => at.push(payload + 4 + 4),
        Payload::Raw(_) => at.push(payload + 4 + 4 + 4 + 4),
        Payload::Record(r) => {
            let mut p = payload + 4;
            at.push(p); // field count
            p += 8;
            for f in &r.fields {
                at.push(p); // name
                p += 8 + f.name.len();
                let variant = p;
                p += 4;
                p += match &f.value {
                    Value::Null => 0,
                    Value::Bool(_) => 1,
                    Value::Int(_) | Value::Float(_) => 8,
                    Value::Text(t) => {
                        at.push(variant + 4);
                        8 + t.len()
                    }
                };
            }
        }
    }
    at
}

proptest! {
    #![proptest_config(fuzz_config(10_000))]

    /// Any bytes at all, and the same bytes behind a valid version.
    #[test]
    fn fuzz_envelope_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&bytes)?;
        let mut v1 = bytes;
        if v1.len() >= 2 {
            v1[..2].copy_from_slice(&SCHEMA_VERSION.to_le_bytes());
        }
        check_decode(&v1)?;
    }

    /// Valid envelopes round-trip, and stay well-behaved after a few mutations.
    #[test]
    fn fuzz_envelope_mutated(e in envelope(), ms in proptest::collection::vec(mutation(), 1..4)) {
        let mut bytes = encode_envelope(&e).unwrap();
        prop_assert_eq!(&bytes[..2], &SCHEMA_VERSION.to_le_bytes()[..]);
        prop_assert_eq!(check_decode(&bytes)?, Some(e));
        for m in &ms {
            mutate(&mut bytes, m);
            check_decode(&bytes)?;
        }
    }

    /// Every length prefix of a valid envelope replaced by a hostile length: an error
    /// (or, for a length that happens to fit, an envelope), never a big allocation.
    #[test]
    fn fuzz_envelope_huge_declared_lengths(e in envelope(), n in claimed_length()) {
        let good = encode_envelope(&e).unwrap();
        for at in length_prefix_offsets(&e) {
            let mut bytes = good.clone();
            let old = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
            let decoded = check_decode(&bytes)?;
            if n > old && n > bytes.len() as u64 {
                prop_assert!(decoded.is_none(), "length {n} at {at} decoded");
            }
        }
    }

    /// Any first two bytes other than version 1 are a schema or not-an-envelope error,
    /// whatever follows.
    #[test]
    fn fuzz_envelope_wrong_versions(e in envelope(), v in any::<u16>()) {
        prop_assume!(v != SCHEMA_VERSION);
        let mut bytes = encode_envelope(&e).unwrap();
        bytes[..2].copy_from_slice(&v.to_le_bytes());
        let err = decode_envelope(&bytes).unwrap_err();
        if (1..=255).contains(&v) {
            prop_assert!(matches!(err, WireError::UnsupportedVersion { found } if found == v), "{err:?}");
        } else {
            prop_assert!(matches!(err, WireError::NotAnEnvelope { found } if found == v), "{err:?}");
        }
    }

    /// Headers mode: any value under any content type. The envelope-first rule holds, an
    /// image is carried byte for byte, and a JSON value is a record or a typed error.
    #[test]
    fn fuzz_bare_arbitrary_values(
        value in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\{.{0,64}\\}?".prop_map(String::into_bytes),
        ],
        content_type in prop_oneof![
            Just("image/jpeg".to_owned()),
            Just("image/png".to_owned()),
            Just("application/json".to_owned()),
            Just(" Application/JSON ; charset=utf-8".to_owned()),
            ".{0,24}",
        ],
    ) {
        let kind = bare_kind(&value, Some(&content_type));
        if let [lo @ 1..=255, 0, ..] = value[..] {
            prop_assert!(kind.is_none(), "starts like envelope version {lo}");
        }
        let Some(kind) = kind else { return Ok(()) };
        let origin = BareOrigin { source_id: "k".into(), sequence: 3, capture_time_us: 9 };
        match (kind, bare_envelope(kind, &value, origin)) {
            (BareKind::Image(format), Ok(e)) => {
                prop_assert_eq!(e.payload, Payload::Encoded { format, bytes: value });
            }
            (BareKind::Image(_), Err(err)) => {
                return Err(TestCaseError::fail(format!("an image value failed: {err:?}")));
            }
            (BareKind::JsonRecord, Ok(e)) => {
                let Payload::Record(r) = e.payload else {
                    return Err(TestCaseError::fail("a JSON value is not a record"));
                };
                let object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&value).unwrap();
                prop_assert_eq!(r.fields.len(), object.len());
                // The envelope encodes, and decodes back to itself.
                let env = Envelope {
                    schema_version: SCHEMA_VERSION,
                    source_id: "k".into(),
                    sequence: 0,
                    capture_time_us: 0,
                    payload: Payload::Record(r),
                };
                let bytes = encode_envelope(&env).unwrap();
                prop_assert_eq!(check_decode(&bytes)?, Some(env));
            }
            (BareKind::JsonRecord, Err(err)) => prop_assert!(
                matches!(err, WireError::NotAJsonObject { .. } | WireError::NestedField { .. }),
                "{err:?}"
            ),
        }
    }

    /// Generated JSON objects read back as the same fields (in key order), and a nested
    /// value is named.
    #[test]
    fn fuzz_bare_json_records_round_trip(
        fields in proptest::collection::btree_map(".{0,12}", value(), 0..10),
        nested in proptest::option::of(".{0,12}"),
    ) {
        let mut object = serde_json::Map::new();
        for (name, v) in &fields {
            let json = match v {
                Value::Null => serde_json::Value::Null,
                Value::Bool(b) => (*b).into(),
                Value::Int(i) => (*i).into(),
                Value::Float(x) if x.is_finite() => (*x).into(),
                Value::Float(_) => continue,
                Value::Text(t) => t.as_str().into(),
            };
            object.insert(name.clone(), json);
        }
        let text = serde_json::to_vec(&object).unwrap();
        let record = json_record(&text).unwrap();
        let expected: Vec<Field> = fields
            .into_iter()
            .filter(|(_, v)| !matches!(v, Value::Float(x) if !x.is_finite()))
            .map(|(name, value)| Field {
                name: name.into(),
                value,
            })
            .collect();
        prop_assert_eq!(record.fields, expected);
        if let Some(name) = nested {
            object.insert(name.clone(), serde_json::json!([1]));
            let err = json_record(&serde_json::to_vec(&object).unwrap()).unwrap_err();
            prop_assert!(matches!(&err, WireError::NestedField { name: n } if *n == name), "{err:?}");
        }
    }
}

/// Regression (found by `fuzz_envelope_huge_declared_lengths`): a 24-byte message whose
/// source id claims 60 MiB made bincode's `String` decoder allocate (and zero) 60 MiB
/// before finding the input short. Now it is an `UnexpectedEnd` decode error holding
/// almost nothing.
#[test]
fn fuzz_envelope_regression_tiny_input_huge_string_length() {
    let mut bytes = vec![1, 0];
    bytes.extend_from_slice(&(60u64 << 20).to_le_bytes());
    bytes.extend_from_slice(b"cam-1 and then nothing");
    let (result, info) = decode_measured(&bytes);
    assert!(
        matches!(
            result,
            Err(WireError::Decode {
                source: DecodeError::UnexpectedEnd { .. }
            })
        ),
        "{result:?}"
    );
    assert!(info.bytes_max < 1024, "{info:?}");
}

/// Regression: the same for raw pixel data and for a record's field count (bincode
/// reserved `count × size_of::<Field>()` up to 64 MiB before reading one field).
#[test]
fn fuzz_envelope_regression_tiny_input_huge_data_and_count() {
    let head = |variant: u32| {
        let mut b = vec![1, 0];
        b.extend_from_slice(&1u64.to_le_bytes());
        b.push(b'c');
        b.extend_from_slice(&0u64.to_le_bytes()); // sequence
        b.extend_from_slice(&0i64.to_le_bytes()); // capture time
        b.extend_from_slice(&variant.to_le_bytes());
        b
    };
    let mut raw = head(1);
    for v in [4096u32, 4096, 0] {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    raw.extend_from_slice(&(48u64 << 20).to_le_bytes());
    raw.extend_from_slice(&[7; 16]);
    let mut record = head(2);
    record.extend_from_slice(&(1u64 << 20).to_le_bytes());
    record.extend_from_slice(&[0; 16]);
    for bytes in [raw, record] {
        let (result, info) = decode_measured(&bytes);
        assert!(
            matches!(result, Err(WireError::Decode { .. })),
            "{result:?}"
        );
        assert!(info.bytes_max < 1024, "{info:?}");
    }
}

/// A churn record's envelope (twelve fields, four of them text) decodes with the field
/// list, the source id and the one name longer than 24 bytes as its only allocations:
/// names and short text values are held inline ([`CompactString`]). Held as `String`s they
/// took 18 (`docs/bench.md`, "CPU outside the model"). A count is exact on any machine.
#[test]
fn a_churn_record_decodes_with_three_allocations() {
    let fields = [
        ("customer_id", Value::Text("C7-0000005".into())),
        ("tenure_months", Value::Int(12)),
        ("monthly_charges", Value::Float(20.69)),
        ("total_charges", Value::Float(261.62)),
        ("complaints_90d", Value::Int(0)),
        ("support_calls_30d", Value::Int(4)),
        ("days_since_last_interaction", Value::Int(13)),
        ("region", Value::Text("central".into())),
        ("plan", Value::Text("basic".into())),
        ("contract", Value::Text("month_to_month".into())),
        ("autopay", Value::Bool(false)),
        ("senior", Value::Bool(false)),
    ];
    let envelope = Envelope {
        schema_version: SCHEMA_VERSION,
        source_id: "C7-0000005".into(),
        sequence: 5,
        capture_time_us: 1_700_000_000_000_000,
        payload: Payload::Record(Record {
            fields: fields
                .into_iter()
                .map(|(name, value)| Field {
                    name: name.into(),
                    value,
                })
                .collect(),
        }),
    };
    let bytes = encode_envelope(&envelope).unwrap();
    let (decoded, info) = decode_measured(&bytes);
    assert_eq!(decoded.unwrap(), envelope);
    assert_eq!(
        info.count_total, 3,
        "decoding a churn record allocated {} times",
        info.count_total
    );
}
