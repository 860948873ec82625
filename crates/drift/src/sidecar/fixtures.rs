//! Test fixtures for the sidecar's unit tests: a small records profile, a configuration
//! with one-second panes, encoded records, a fake broker for the idle check, and a loop that
//! feeds a sidecar's own panes-topic messages back to it.
use super::input::Incoming;
use super::state::{Effect, Owned, PartitionEnds, Sidecar};
use super::DriftConfig;
use crate::pane::PaneMessage;
use argus_stats::hash::record_hash;
use argus_stats::profile::{
    FeatureKind, FeatureProfile, Profile, ProfileSettings, SegmentProfile, StreamKind,
};
use argus_stats::report::ModelInfo;
use argus_wire::{Envelope, Field, Payload, Record, Value};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const PANE: i64 = 1_000_000;
/// A wall clock for the event-time check (2023-11-14).
pub const NOW_US: i64 = 1_700_000_000_000_000;
pub const IN: &str = "in";

/// A records profile with one numeric feature `x`, for the fleet and the segment `site-a`.
pub fn profile() -> Arc<Profile> {
    let s = ProfileSettings::default();
    let x: Vec<Option<f64>> = (0..500).map(|i| Some(f64::from(i % 97) / 97.0)).collect();
    let hashes: Vec<u64> = (0..500).map(|i| record_hash(s.seed, "ref", 0, i)).collect();
    let seg = || SegmentProfile {
        n: 500,
        features: vec![FeatureProfile::numeric(
            "x",
            FeatureKind::Numeric,
            &x,
            &hashes,
            &s,
        )],
        histograms: None,
    };
    let mut segments = BTreeMap::new();
    segments.insert("*".to_owned(), seg());
    segments.insert("site-a".to_owned(), seg());
    Arc::new(
        Profile::seal(
            "t".into(),
            StreamKind::Records,
            "test".into(),
            s.clone(),
            segments,
            None,
            "test".into(),
        )
        .expect("profile"),
    )
}

/// One-second panes, no lateness, windows of 2 panes, no fps cap, idle after an hour.
pub fn config() -> DriftConfig {
    let mut c = DriftConfig::new(
        IN,
        "s1",
        ModelInfo {
            id: "m".into(),
            version: "1".into(),
        },
    );
    c.pane = Duration::from_secs(1);
    c.lateness = Duration::ZERO;
    c.window_panes = 2;
    c.alarm_k = 2;
    c.max_fps = 0.0;
    c.idle_timeout = Some(Duration::from_secs(3600));
    c
}

pub fn sidecar(config: DriftConfig) -> Sidecar {
    Sidecar::new(config, profile()).expect("sidecar")
}

/// An encoded envelope of a record `{x: value}` (no fields when `x` is `None`).
pub fn record(source: &str, capture_time_us: i64, x: Option<f64>) -> Vec<u8> {
    let fields = x
        .map(|v| {
            vec![Field {
                name: "x".into(),
                value: Value::Float(v),
            }]
        })
        .unwrap_or_default();
    argus_wire::encode_envelope(&Envelope {
        schema_version: argus_wire::SCHEMA_VERSION,
        source_id: source.into(),
        sequence: 0,
        capture_time_us,
        payload: Payload::Record(Record { fields }),
    })
    .expect("encode")
}

/// A record without headers.
pub static NO_HEADERS: argus_kafka::RawHeaders = argus_kafka::RawHeaders::new();

pub fn incoming<'a>(partition: i32, offset: i64, payload: &'a [u8]) -> Incoming<'a> {
    Incoming {
        topic: IN,
        partition,
        offset,
        payload,
        key: None,
        headers: &NO_HEADERS,
        timestamp_ms: None,
    }
}

/// The assignment `partitions` of the input topic, all in generation `generation`.
pub fn owned(partitions: &[i32], generation: u64) -> Owned {
    partitions
        .iter()
        .map(|p| ((IN.to_owned(), *p), Some(generation)))
        .collect()
}

/// A broker whose partitions all end at `high` and start at `low`, with `committed` as the
/// group's offset; counts the watermark lookups.
#[derive(Debug, Default)]
pub struct FakeEnds {
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
    pub lookups: Cell<u32>,
}

impl PartitionEnds for FakeEnds {
    fn watermarks(&self, _: &str, _: i32) -> Option<(i64, i64)> {
        self.lookups.set(self.lookups.get() + 1);
        Some((self.low, self.high))
    }

    fn committed(&self, _: &str, _: i32) -> Option<Option<i64>> {
        Some(self.committed)
    }
}

/// Hand the panes-topic messages among `effects` back to `sidecar`, as its panes reader
/// would read them.
pub fn feed_back(sidecar: &mut Sidecar, effects: &[Effect]) {
    for (offset, e) in effects.iter().enumerate() {
        if let Effect::Partial(r) | Effect::Progress(r) = e {
            let body = serde_json::to_vec(r).expect("json");
            sidecar.on_pane(offset as i64, Some(&body));
        }
    }
}

/// The panes-topic messages among `effects`.
pub fn pane_messages(effects: &[Effect]) -> Vec<&PaneMessage> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Partial(r) | Effect::Progress(r) => Some(&r.message),
            _ => None,
        })
        .collect()
}

/// A report of the fleet segment from a real evaluation (two partitions, two panes), with
/// its window end set to `end_us` and its segment to `segment`.
pub fn report(segment: &str, end_us: i64) -> argus_stats::report::DriftReport {
    let mut s = sidecar(config());
    s.on_expected(vec![(IN.into(), 0)]);
    let own = owned(&[0], 1);
    let ends = FakeEnds::default();
    let now = std::time::Instant::now();
    let t0 = NOW_US / PANE * PANE - 100 * PANE;
    for i in 0..11 {
        let body = record("a", t0 + i * PANE / 10, Some(0.5));
        s.on_record(&incoming(0, i, &body), Some(1), NOW_US)
            .expect("record");
    }
    let e = s.on_tick(&own, &ends, now);
    feed_back(&mut s, &e);
    let mut r = s
        .on_tick(&own, &ends, now)
        .into_iter()
        .find_map(|e| match e {
            Effect::Evaluated(r) => Some(*r),
            _ => None,
        })
        .expect("a report");
    r.segment = segment.into();
    r.window.end_us = end_us;
    r
}
