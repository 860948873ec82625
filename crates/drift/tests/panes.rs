//! Panes and aggregation without Kafka: the partials of a stream give the same reports
//! however partitions were spread over sidecars; duplicates and foreign partials are
//! rejected; a window waits for every partition's progress; late records are counted, not
//! added; messages match `schemas/drift-pane.v1.schema.json`; reports become gauges.
#![allow(clippy::unwrap_used)]
use argus_drift::aggregate::{AggregateConfig, Aggregator};
use argus_drift::metrics as m;
use argus_drift::pane::{Admit, PaneConfig, PaneMessage, PaneRecord, PartitionPanes, Progress};
use argus_stats::evaluate::EvalConfig;
use argus_stats::hash::{record_hash, Sampler};
use argus_stats::profile::{
    FeatureKind, FeatureProfile, Profile, ProfileSettings, SegmentProfile, StreamKind,
};
use argus_stats::report::ModelInfo;
use argus_stats::summary::Cell;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::collections::BTreeMap;
use std::sync::Arc;

const PANE: i64 = 1_000_000;
const PARTITIONS: i32 = 4;

fn profile() -> Arc<Profile> {
    let s = ProfileSettings::default();
    let x: Vec<Option<f64>> = (0..2000).map(|i| Some(f64::from(i % 97) / 97.0)).collect();
    let hashes: Vec<u64> = (0..2000)
        .map(|i| record_hash(s.seed, "ref", 0, i))
        .collect();
    let seg = SegmentProfile {
        n: 2000,
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
    segments.insert("*".to_owned(), seg);
    Arc::new(
        Profile::seal(
            "t".into(),
            StreamKind::Records,
            "test".into(),
            s,
            segments,
            None,
            "test".into(),
        )
        .unwrap(),
    )
}

fn pane_cfg() -> PaneConfig {
    PaneConfig {
        pane_us: PANE,
        lateness_us: 0,
        sampler: Sampler::new(1.0),
        max_fps: 0.0,
        max_segments: 10,
        seed: 1,
    }
}

fn agg(profile: &Arc<Profile>) -> Aggregator {
    let mut a = Aggregator::new(
        AggregateConfig {
            pane_us: PANE,
            window_panes: 2,
            alarm_k: 2,
            eval: EvalConfig::default(),
            model: ModelInfo {
                id: "m".into(),
                version: "1".into(),
            },
            sample_rate: 1.0,
            input_topic: "in".into(),
        },
        profile.clone(),
    );
    a.set_expected((0..PARTITIONS).map(|p| ("in".to_owned(), p)));
    a
}

/// The messages a sidecar owning `partitions` publishes for a fixed stream: 4 partitions,
/// 200 records each over 4 panes, values shifted in the last two panes; then a final record
/// per partition far ahead to close every pane.
fn run_sidecar(profile: &Profile, id: &str, partitions: &[i32]) -> Vec<PaneMessage> {
    let cfg = pane_cfg();
    let mut out = Vec::new();
    for &p in partitions {
        let mut state = PartitionPanes::new("in", p, None);
        for i in 0..201i64 {
            let t = if i == 200 {
                100 * PANE
            } else {
                i * 4 * PANE / 200 + i64::from(p)
            };
            let (admit, pane) = state.admit(&cfg, i, t, Some(&format!("cam-{p}")), true);
            assert_eq!(admit, Admit::Sampled);
            let shift = if t >= 2 * PANE { 0.3 } else { 0.0 };
            let v = ((i * 7 + i64::from(p)) % 97) as f64 / 97.0 + shift;
            state.add(
                profile,
                &cfg,
                pane,
                i,
                Some(&format!("cam-{p}")),
                &[(0, Cell::Num(v))],
                None,
                None,
            );
            for partial in state.close_final(&cfg, id, &profile.sha256) {
                out.push(PaneMessage::Partial(Box::new(partial)));
            }
        }
        out.push(PaneMessage::Progress(Progress {
            sidecar: id.into(),
            reference_sha256: profile.sha256.clone(),
            topic: "in".into(),
            partition: p,
            watermark_us: state.watermark().unwrap(),
        }));
    }
    out
}

fn reports(a: &mut Aggregator, messages: Vec<PaneMessage>) -> Vec<String> {
    for m in messages {
        a.ingest(m);
    }
    a.poll_reports()
        .into_iter()
        .map(|mut r| {
            r.provenance.sidecars_merged = 0;
            serde_json::to_string(&r).unwrap()
        })
        .collect()
}

#[test]
fn reports_do_not_depend_on_how_partitions_were_spread() {
    let profile = profile();
    let one = reports(
        &mut agg(&profile),
        run_sidecar(&profile, "a", &[0, 1, 2, 3]),
    );
    // Two sidecars, messages interleaved in another order.
    let mut msgs = run_sidecar(&profile, "b", &[3, 1]);
    msgs.extend(run_sidecar(&profile, "c", &[2, 0]));
    msgs.reverse();
    let two = reports(&mut agg(&profile), msgs);
    assert_eq!(one.len(), 4 * 5, "4 windows × (fleet + 4 cameras)");
    assert_eq!(one, two);
    let last: serde_json::Value = serde_json::from_str(one.last().unwrap()).unwrap();
    assert_eq!(last["segment"], "cam-3");
    let fleet_last: serde_json::Value = serde_json::from_str(&one[one.len() - 5]).unwrap();
    assert_eq!(fleet_last["segment"], "*");
    assert_eq!(fleet_last["dataset"]["drift"], true, "{fleet_last}");
}

#[test]
fn windows_wait_for_every_partition_and_duplicates_are_rejected() {
    let profile = profile();
    let mut a = agg(&profile);
    let msgs = run_sidecar(&profile, "a", &[0, 1, 2, 3]);
    // Without partition 3's progress nothing is complete.
    let (p3, rest): (Vec<_>, Vec<_>) = msgs
        .into_iter()
        .partition(|m| matches!(m, PaneMessage::Progress(p) if p.partition == 3));
    for m in rest.clone() {
        a.ingest(m);
    }
    assert!(a.poll_reports().is_empty());
    // A replayed copy of every partial is rejected, never double-counted.
    for m in rest {
        if let PaneMessage::Partial(_) = m {
            a.ingest(m);
        }
    }
    assert_eq!(a.duplicates, 16);
    for m in p3 {
        a.ingest(m);
    }
    let r = a.poll_reports();
    assert_eq!(r.len(), 20);
    let fleet = r.iter().find(|r| r.segment == "*").unwrap();
    assert_eq!(
        fleet.window.n_records,
        4 * 50,
        "first window: one pane of 4 partitions"
    );
    // A partial made for another reference is ignored.
    let mut foreign = run_sidecar(&profile, "x", &[0]);
    if let PaneMessage::Partial(p) = &mut foreign[0] {
        p.reference_sha256 = "other".into();
    }
    a.ingest(foreign.swap_remove(0));
    assert_eq!(a.foreign, 1);
}

#[test]
fn late_records_are_counted_not_added_and_offsets_cover_open_panes() {
    let profile = profile();
    let cfg = pane_cfg();
    let mut s = PartitionPanes::new("in", 0, None);
    assert_eq!(s.admit(&cfg, 0, 10, None, true).0, Admit::Sampled);
    assert_eq!(s.admit(&cfg, 1, PANE + 10, None, true).0, Admit::Sampled);
    assert_eq!(s.commit_offset(), Some(0));
    let partials = s.close_final(&cfg, "a", &profile.sha256);
    assert_eq!(partials.len(), 1);
    assert_eq!(s.commit_offset(), Some(1), "the open pane's first record");
    assert_eq!(s.admit(&cfg, 2, 20, None, true).0, Admit::Late);
    let next = {
        s.admit(&cfg, 3, 5 * PANE, None, true);
        s.close_final(&cfg, "a", &profile.sha256)
    };
    assert_eq!(next[0].late_records, 1);
    // A restarted owner that knows the published watermark treats old panes as late.
    let mut restarted = PartitionPanes::new("in", 0, Some(PANE));
    assert_eq!(restarted.admit(&cfg, 0, 10, None, true).0, Admit::Late);
}

#[test]
fn late_counts_land_on_the_same_panes_whenever_panes_are_closed() {
    // Lateness is a function of record order; so must be the pane that counts a late record,
    // or one sidecar and several (closing panes at other moments) report different windows.
    let profile = profile();
    let cfg = pane_cfg();
    let events = [10, PANE + 10, 20, 3 * PANE + 1, 30, PANE + 5, 5 * PANE, 40];
    let run = |close_each: bool| {
        let mut s = PartitionPanes::new("in", 0, None);
        let mut out = Vec::new();
        for (offset, t) in events.iter().enumerate() {
            s.admit(&cfg, offset as i64, *t, None, true);
            if close_each {
                out.extend(s.close_final(&cfg, "a", &profile.sha256));
            }
        }
        out.extend(s.close_final(&cfg, "a", &profile.sha256));
        out.iter()
            .map(|p| (p.pane_start_us, p.late_records, p.n_records))
            .collect::<Vec<_>>()
    };
    let eager = run(true);
    assert_eq!(eager, run(false));
    // Four late records; the last one counts on the pane at 5·PANE, still open.
    assert_eq!(eager.iter().map(|p| p.1).sum::<u64>(), 3, "{eager:?}");
}

#[test]
fn pane_messages_match_their_schema() {
    let profile = profile();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../schemas/drift-pane.v1.schema.json")).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let msgs = run_sidecar(&profile, "a", &[0]);
    assert!(msgs.iter().any(|m| matches!(m, PaneMessage::Progress(_))));
    for m in msgs {
        let rec = PaneRecord::new(m);
        let json = serde_json::to_value(&rec).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let back: PaneRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }
}

#[test]
fn reports_become_gauges() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let profile = profile();
    let r = agg(&profile).reports_for_test(run_sidecar(&profile, "a", &[0, 1, 2, 3]));
    metrics::with_local_recorder(&recorder, || {
        for r in &r {
            argus_drift::metrics::record_report(r);
        }
    });
    let snap = snapshotter.snapshot().into_vec();
    let gauge = |name: &str, labels: &[(&str, &str)]| {
        snap.iter()
            .find(|(k, _, _, _)| {
                k.key().name() == name
                    && labels
                        .iter()
                        .all(|(l, v)| k.key().labels().any(|x| x.key() == *l && x.value() == *v))
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Gauge(g) => g.into_inner(),
                _ => f64::NAN,
            })
    };
    assert_eq!(gauge(m::DATASET_DRIFT, &[("segment", "*")]), Some(1.0));
    assert_eq!(
        gauge(m::STATUS, &[("segment", "*"), ("feature", "x")]),
        Some(2.0)
    );
    assert!(gauge(
        m::P_VALUE,
        &[("segment", "*"), ("feature", "x"), ("method", "ks")]
    )
    .is_some());
    // One drifting non-overlapping window so far (the one before it was not shifted): pending.
    assert_eq!(gauge(m::ALARM, &[("segment", "*")]), Some(1.0));
}

trait ForTest {
    fn reports_for_test(self, msgs: Vec<PaneMessage>) -> Vec<argus_stats::report::DriftReport>;
}
impl ForTest for Aggregator {
    fn reports_for_test(mut self, msgs: Vec<PaneMessage>) -> Vec<argus_stats::report::DriftReport> {
        for m in msgs {
            self.ingest(m);
        }
        self.poll_reports()
    }
}

/// Hostile or malformed partials from the panes topic are rejected before anything is merged
/// or indexed: no panic, no allocation from a claimed size, no wrapped arithmetic.
#[test]
fn malformed_partials_are_rejected_without_panicking() {
    let profile = profile();
    let mut a = agg(&profile);
    let good = run_sidecar(&profile, "a", &[0])
        .into_iter()
        .find(|m| matches!(m, PaneMessage::Partial(_)))
        .unwrap();
    let json = serde_json::to_string(&PaneRecord::new(good)).unwrap();
    let hostile = [
        json.replacen("\"k\":1024", "\"k\":18446744073709551615", 1),
        json.replacen(
            "\"pane_start_us\":0",
            "\"pane_start_us\":-9223372036854775807",
            1,
        ),
        json.replacen("\"pane_start_us\":0", "\"pane_start_us\":17", 1),
        json.replacen("\"n_null\":0", "\"n_null\":999999", 1),
        json.replacen("\"partition\":0", "\"partition\":77", 1),
    ];
    for (i, h) in hostile.iter().enumerate() {
        assert_ne!(h, &json, "case {i} did not change the message");
        let rec: PaneRecord = serde_json::from_str(h).unwrap();
        a.ingest(rec.message);
        assert_eq!(a.malformed, i as u64 + 1, "case {i}");
    }
    assert!(a.poll_reports().is_empty());
}

/// A profile written to JSON loads back and passes its own content hash (floats must
/// round-trip exactly: serde_json's `float_roundtrip`), for an image profile whose features
/// are arbitrary floats.
#[test]
fn image_profiles_survive_a_round_trip_through_json() {
    use argus_drift::profile::ImageProfileBuilder;
    use argus_wire::{Payload, PixelLayout, RawImage};
    let mut b = ImageProfileBuilder::new(ProfileSettings::default(), None);
    let mut x: u64 = 7;
    for i in 0..120 {
        let data: Vec<u8> = (0..320 * 240 * 3)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect();
        let payload = Payload::Raw(RawImage {
            width: 320,
            height: 240,
            layout: PixelLayout::Rgb8,
            data,
        });
        b.add(if i % 2 == 0 { "cam-a" } else { "cam-b" }, &payload, None)
            .unwrap();
    }
    let profile = b.build("roundtrip", "test", "test").unwrap();
    let json = profile.to_json().unwrap();
    let back = Profile::from_json(&json).unwrap();
    assert_eq!(back, profile);
}
