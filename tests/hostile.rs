//! 10,000 hostile inputs of fourteen kinds mixed with valid frames, through a real
//! `argus work` process: no panic, every hostile input in the DLQ with a reason (kinds that
//! may by chance still be valid — flipped bytes, trailing bytes — get exactly one outcome),
//! every valid frame predicted, and the worker's memory flat (no growth with the number of
//! inputs once warm). Big but legal images (4000×4000 PNGs, 48 MB decoded each) ride along,
//! so the decode bound is exercised too.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::message::{Header, OwnedHeaders};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::util::Timeout;
use argus_kafka::rdkafka::Message;
use argus_wire::{headers as h, Envelope, ImageFormat, Payload, PixelLayout, RawImage};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const HOSTILE: usize = 10_000;
const VALID: usize = 400;
const BIG_PNGS: usize = 8;

/// SplitMix64: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What must become of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    Prediction,
    Dlq,
    /// A mutation that may still be a valid input: exactly one of the two.
    Either,
}

fn envelope(payload: Payload, version: u16) -> Vec<u8> {
    argus_wire::encode_envelope(&Envelope {
        schema_version: version,
        source_id: "cam-hostile".into(),
        sequence: 1,
        capture_time_us: argus_wire::now_us(),
        payload,
    })
    .unwrap()
}

fn raw(width: u32, height: u32, data: Vec<u8>) -> Payload {
    Payload::Raw(RawImage {
        width,
        height,
        layout: PixelLayout::Rgb8,
        data,
    })
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for b in bytes {
        c ^= u32::from(*b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG that declares `w`×`h` RGB pixels and carries a few bytes of (broken) image data:
/// a decoder that trusts the header allocates w·h·3 bytes.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let chunk = |png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[0x78, 0x9C, 0x63, 0x00, 0x00]);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A legal 4000×4000 PNG of one colour: ~50 kB on the wire, 48 MB decoded.
fn big_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4000, 4000, image::Rgb([90, 120, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// One hostile input of kind `k`: (kind name, value, headers, expectation).
fn hostile(
    k: usize,
    rng: &mut Rng,
    valid: &[Vec<u8>],
) -> (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    Expect,
) {
    let some_valid = || valid[k % valid.len()].clone();
    match k % 14 {
        0 => {
            let n = rng.below(3000);
            ("random bytes", rng.bytes(n), vec![], Expect::Dlq)
        }
        1 => ("empty", Vec::new(), vec![], Expect::Dlq),
        2 => {
            let v = some_valid();
            let cut = 1 + rng.below(v.len() - 1);
            ("truncated envelope", v[..cut].to_vec(), vec![], Expect::Dlq)
        }
        3 => {
            let mut v = some_valid();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            ("flipped bits", v, vec![], Expect::Either)
        }
        4 => {
            let mut v = some_valid();
            let extra = 1 + rng.below(64);
            v.extend(rng.bytes(extra));
            ("trailing bytes", v, vec![], Expect::Dlq)
        }
        5 => {
            // A raw image whose data length field claims ~1 TB.
            let mut v = envelope(raw(4, 4, vec![7; 48]), 1);
            let at = v.len() - 48 - 8;
            v[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            ("huge declared length", v, vec![], Expect::Dlq)
        }
        6 => {
            let version = 2 + rng.below(250) as u16;
            (
                "wrong version",
                envelope(raw(4, 4, vec![7; 48]), version),
                vec![],
                Expect::Dlq,
            )
        }
        7 => (
            "PNG bomb 100k×100k",
            envelope(
                Payload::Encoded {
                    format: ImageFormat::Png,
                    bytes: png_bomb(100_000, 100_000),
                },
                1,
            ),
            vec![],
            Expect::Dlq,
        ),
        8 => (
            "PNG 8193×8193 (over the side limit)",
            envelope(
                Payload::Encoded {
                    format: ImageFormat::Png,
                    bytes: png_bomb(8193, 8193),
                },
                1,
            ),
            vec![],
            Expect::Dlq,
        ),
        9 => {
            let mut jpeg = vec![0xFF, 0xD8];
            let n = rng.below(2000);
            jpeg.extend(rng.bytes(n));
            (
                "garbage JPEG",
                envelope(
                    Payload::Encoded {
                        format: ImageFormat::Jpeg,
                        bytes: jpeg,
                    },
                    1,
                ),
                vec![],
                Expect::Dlq,
            )
        }
        10 => (
            "raw pixels short of width×height",
            envelope(raw(64, 64, vec![1; 100]), 1),
            vec![],
            Expect::Dlq,
        ),
        11 => (
            "raw image 0×0",
            envelope(raw(0, 0, Vec::new()), 1),
            vec![],
            Expect::Dlq,
        ),
        12 => {
            let n = rng.below(500);
            (
                "headers mode: image/jpeg that is not",
                rng.bytes(n),
                vec![(h::CONTENT_TYPE, "image/jpeg")],
                Expect::Dlq,
            )
        }
        _ => (
            "headers mode: application/json that is not",
            b"{\"x\": [1, 2".to_vec(),
            vec![(h::CONTENT_TYPE, "application/json")],
            Expect::Dlq,
        ),
    }
}

/// Resident memory of process `pid`, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// An input, by (partition, offset).
type InputId = (i32, i64);

/// Inputs with an outcome so far: predictions per input, and DLQ reasons.
fn outcomes(topics: &Topics) -> (BTreeMap<InputId, usize>, BTreeMap<InputId, String>) {
    let preds = read_until(&topics.predictions, Duration::from_secs(3), |_| false);
    let mut p = BTreeMap::new();
    for m in &preds {
        let pr: argus_wire::Prediction = serde_json::from_slice(m.payload().unwrap()).unwrap();
        *p.entry((pr.input.partition, pr.input.offset)).or_insert(0) += 1;
    }
    let dlq = read_until(&topics.dlq, Duration::from_secs(3), |_| false);
    let mut d = BTreeMap::new();
    for m in &dlq {
        let num = |k: &str| -> i64 { header(m, k).and_then(|v| v.parse().ok()).unwrap() };
        let id = (
            num(h::DLQ_SOURCE_PARTITION) as i32,
            num(h::DLQ_SOURCE_OFFSET),
        );
        let reason = header(m, h::DLQ_REASON).unwrap_or_default();
        assert!(
            d.insert(id, reason).is_none(),
            "input {id:?} dead-lettered twice"
        );
    }
    (p, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_hostile_inputs_with_valid_frames() {
    let topics = Topics::create(2).await;
    let group = unique("hostile");
    let mut worker = WorkerProcess::spawn(&topics, &group, "h1", &[]);
    let pid = worker.child.id();
    let producer: FutureProducer = settings()
        .with("linger.ms", "20")
        .producer("hostile-producer")
        .unwrap();

    let mut rng = Rng(0x5EED);
    let source = small_cameras(21);
    let valid: Vec<Vec<u8>> = (0..VALID as u64)
        .map(|i| {
            let f = source.frame(i, argus_wire::now_us()).unwrap();
            argus_wire::encode_envelope(&f.envelope).unwrap()
        })
        .collect();
    let big = envelope(
        Payload::Encoded {
            format: ImageFormat::Png,
            bytes: big_png(),
        },
        1,
    );

    // The stream, in two halves: memory is sampled after each.
    let mut sent: BTreeMap<InputId, (&'static str, Expect)> = BTreeMap::new();
    let mut rss = Vec::new();
    let per_half = HOSTILE / 2;
    for half in 0..2 {
        let mut pending = Vec::new();
        for i in 0..per_half {
            let k = half * per_half + i;
            let (kind, value, headers, expect) = hostile(k, &mut rng, &valid);
            pending.push((kind, value, headers, expect, format!("cam-h{}", k % 7)));
            if k % (HOSTILE / VALID) == 0 {
                pending.push((
                    "valid frame",
                    valid[k % VALID].clone(),
                    vec![],
                    Expect::Prediction,
                    format!("cam-{}", k % 4),
                ));
            }
            if k % (HOSTILE / BIG_PNGS) == 0 {
                pending.push((
                    "legal 4000×4000 PNG",
                    big.clone(),
                    vec![],
                    Expect::Prediction,
                    "cam-big".into(),
                ));
            }
        }
        let deliveries = pending.iter().map(|(kind, value, headers, expect, key)| {
            let mut hs = OwnedHeaders::new();
            for (k, v) in headers {
                hs = hs.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            let producer = producer.clone();
            let input = topics.input.clone();
            async move {
                let d = producer
                    .send(
                        FutureRecord::to(&input).key(key).payload(value).headers(hs),
                        Timeout::After(Duration::from_secs(30)),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
                ((d.partition, d.offset), (*kind, *expect))
            }
        });
        sent.extend(futures::future::join_all(deliveries).await);
        let want = sent.len();
        let t = topics.clone();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (p, d) = tokio::task::spawn_blocking({
                let t = t.clone();
                move || outcomes(&t)
            })
            .await
            .unwrap();
            let done: BTreeSet<_> = p.keys().chain(d.keys()).collect();
            if done.len() >= want {
                break;
            }
            assert!(
                worker.is_running(),
                "the worker died (panic?) with {} of {want} inputs done",
                done.len()
            );
            assert!(
                Instant::now() < deadline,
                "{} of {want} inputs done in 300 s",
                done.len()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        rss.push(rss_mb(pid));
    }

    let (predicted, dead) = tokio::task::spawn_blocking({
        let t = topics.clone();
        move || outcomes(&t)
    })
    .await
    .unwrap();
    let mut wrong = Vec::new();
    let mut by_kind: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (id, (kind, expect)) in &sent {
        let p = predicted.get(id).copied().unwrap_or(0);
        let d = dead.get(id);
        let e = by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += usize::from(p > 0);
        e.2 += usize::from(d.is_some());
        let ok = match expect {
            Expect::Prediction => p == 1 && d.is_none(),
            Expect::Dlq => p == 0 && d.is_some_and(|r| !r.is_empty()),
            Expect::Either => (p == 1) != d.is_some(),
        };
        if !ok {
            wrong.push((*id, *kind, p, d.cloned()));
        }
    }
    let hostile_n = sent
        .values()
        .filter(|(_, e)| *e != Expect::Prediction)
        .count();
    eprintln!("kind: inputs, predicted, dead-lettered");
    for (kind, (n, p, d)) in &by_kind {
        eprintln!("  {kind}: {n}, {p}, {d}");
    }
    eprintln!(
        "FAULT hostile inputs: {hostile_n} hostile + {} valid, lost 0, duplicated 0, panics 0, \
         worker RSS {:.0} MB after the first half, {:.0} MB after the second",
        sent.len() - hostile_n,
        rss[0],
        rss[1]
    );
    assert!(wrong.is_empty(), "inputs with the wrong outcome: {wrong:?}");
    assert!(hostile_n >= HOSTILE);
    // Flat: the second 5,000 inputs may not grow it more than the allocator's slack.
    assert!(
        rss[1] - rss[0] < 64.0,
        "worker memory grew with the inputs: {rss:?} MB"
    );
    assert!(rss[1] < 600.0, "worker memory bounded: {rss:?} MB");
    let status = worker.terminate(Duration::from_secs(30));
    assert!(status.success(), "the worker exits cleanly: {status}");
}
