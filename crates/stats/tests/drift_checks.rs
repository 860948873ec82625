//! Window evaluation end to end on generated data: null calibration (false-alarm rate),
//! power, categorical edge cases, exact merge across any split, determinism.
#![allow(clippy::unwrap_used)]
use argus_stats::evaluate::{evaluate, EvalConfig, Evaluation};
use argus_stats::hash::record_hash;
use argus_stats::profile::{FeatureKind, FeatureProfile, ProfileSettings, SegmentProfile};
use argus_stats::report::Status;
use argus_stats::summary::{Cell, FeatureSummary, SegmentSummary};
use proptest::prelude::*;

/// The fixtures' 64-bit LCG (same constants as `fixtures/make_fixtures.py`).
struct Lcg(u64);
impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    /// Approximately standard normal (Irwin–Hall, 12 uniforms): arithmetic only.
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

fn settings() -> ProfileSettings {
    ProfileSettings::default()
}

fn numeric_reference(values: &[f64]) -> SegmentProfile {
    let s = settings();
    let v: Vec<Option<f64>> = values.iter().map(|x| Some(*x)).collect();
    let hashes: Vec<u64> = (0..values.len())
        .map(|i| record_hash(s.seed, "ref", 0, i as i64))
        .collect();
    SegmentProfile {
        n: values.len() as u64,
        features: vec![FeatureProfile::numeric(
            "x",
            FeatureKind::Numeric,
            &v,
            &hashes,
            &s,
        )],
        histograms: None,
    }
}

fn window(reference: &SegmentProfile, values: &[f64], salt: i32) -> SegmentSummary {
    let s = settings();
    let mut w = SegmentSummary::new(reference, None, s.sample_k);
    for (i, x) in values.iter().enumerate() {
        w.add(
            reference,
            0,
            Cell::Num(*x),
            record_hash(s.seed, "cur", salt, i as i64),
        );
    }
    w
}

fn p_of(e: &Evaluation, method: &str) -> f64 {
    e.features[0]
        .tests
        .iter()
        .find(|t| t.method == method)
        .and_then(|t| t.p_value)
        .unwrap_or_else(|| panic!("no {method} p-value in {:?}", e.features[0]))
}

/// A gated test that did not run never alarms.
fn p_or_one(e: &Evaluation, method: &str) -> f64 {
    e.features[0]
        .tests
        .iter()
        .find(|t| t.method == method)
        .and_then(|t| t.p_value)
        .unwrap_or(1.0)
}

/// T5: per-test false-alarm rate under H0 in [0.03, 0.07] for M ∈ {200, 500, 1000, 5000}
/// against a fresh 10,000-row reference each time, ≤ 0.07 for M ∈ {50, 100}.
#[test]
fn null_false_alarm_rate_is_calibrated() {
    let cfg = EvalConfig::default();
    let trials = 1000;
    let mut rng = Lcg(20_261_129);
    let mut lines = Vec::new();
    for m in [50usize, 100, 200, 500, 1000, 5000] {
        let (mut ks, mut chi, mut psi) = (0, 0, 0);
        for t in 0..trials {
            let reference: Vec<f64> = (0..10_000).map(|_| rng.normal()).collect();
            let r = numeric_reference(&reference);
            let cur: Vec<f64> = (0..m).map(|_| rng.normal()).collect();
            let e = evaluate(&r, &window(&r, &cur, t), None, &cfg);
            ks += usize::from(p_of(&e, "ks") < cfg.alpha);
            chi += usize::from(p_of(&e, "chi2_binned") < cfg.alpha);
            psi += usize::from(p_or_one(&e, "psi") < cfg.alpha);
        }
        let rate = |c: usize| c as f64 / trials as f64;
        lines.push(format!(
            "M={m}: ks {:.3} chi2_binned {:.3} psi {:.3}",
            rate(ks),
            rate(chi),
            rate(psi)
        ));
        for (name, c) in [("ks", ks), ("chi2_binned", chi), ("psi", psi)] {
            if m >= 200 {
                assert!(
                    (0.03..=0.07).contains(&rate(c)),
                    "{name} false-alarm rate {} at M={m}; {lines:?}",
                    rate(c)
                );
            } else {
                assert!(
                    rate(c) <= 0.07,
                    "{name} false-alarm rate {} at M={m}; {lines:?}",
                    rate(c)
                );
            }
        }
    }
    println!(
        "null false-alarm rates (1000 windows each, N=10,000):\n{}",
        lines.join("\n")
    );
}

/// T6: a 0.25σ shift with scale ×1.1 at M = 2000 against 5000 reference rows is flagged by
/// KS and χ²-PSI, and is material through W1_norm ≥ 0.1.
#[test]
fn quarter_sigma_shift_is_detected() {
    let cfg = EvalConfig::default();
    let mut rng = Lcg(7);
    let reference: Vec<f64> = (0..5000).map(|_| rng.normal()).collect();
    let r = numeric_reference(&reference);
    let cur: Vec<f64> = (0..2000).map(|_| 0.25 + 1.1 * rng.normal()).collect();
    let e = evaluate(&r, &window(&r, &cur, 0), None, &cfg);
    let f = &e.features[0];
    assert!(p_of(&e, "ks") < 1e-4, "{f:?}");
    assert!(p_of(&e, "psi") < 1e-4, "{f:?}");
    assert!(f.effects.wasserstein_norm.unwrap() >= 0.1, "{f:?}");
    assert!(
        f.material && f.significant && f.status == Status::Drift,
        "{f:?}"
    );
    assert!(e.dataset.drift);
}

fn categorical_reference(values: &[&str]) -> SegmentProfile {
    let v: Vec<Option<String>> = values.iter().map(|s| Some((*s).to_owned())).collect();
    SegmentProfile {
        n: values.len() as u64,
        features: vec![FeatureProfile::categorical(
            "c",
            FeatureKind::Categorical,
            &v,
            &settings(),
        )],
        histograms: None,
    }
}

fn categorical_window(r: &SegmentProfile, values: &[Option<&str>]) -> SegmentSummary {
    let mut w = SegmentSummary::new(r, None, 16);
    for (i, v) in values.iter().enumerate() {
        w.add(r, 0, v.map_or(Cell::Null, Cell::Text), i as u64);
    }
    w
}

fn all_finite(e: &Evaluation) {
    let json = serde_json::to_value(&e.features).unwrap();
    fn walk(v: &serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => assert!(n.as_f64().unwrap().is_finite()),
            serde_json::Value::Array(a) => a.iter().for_each(walk),
            serde_json::Value::Object(o) => o.values().for_each(walk),
            serde_json::Value::Null => panic!("null in report (NaN?)"),
            _ => {}
        }
    }
    walk(&json);
}

/// T8: categorical edge cases.
#[test]
fn categorical_edge_cases() {
    let cfg = EvalConfig::default();
    // Reference 10,000 rows over a–d; window 2,000 rows with 4.5 % of a new 'e'.
    let mut reference = Vec::new();
    for (c, n) in [("a", 4000), ("b", 3000), ("c", 2000), ("d", 1000)] {
        reference.extend(std::iter::repeat_n(c, n));
    }
    let r = categorical_reference(&reference);
    let mut cur: Vec<Option<&str>> = Vec::new();
    for (c, n) in [("a", 764), ("b", 573), ("c", 382), ("d", 191), ("e", 90)] {
        cur.extend(std::iter::repeat_n(Some(c), n));
    }
    let e = evaluate(&r, &categorical_window(&r, &cur), None, &cfg);
    let f = &e.features[0];
    let nv = f.new_values.as_ref().unwrap();
    assert!(
        nv.alarm && nv.n_new_total == 90 && nv.top == vec![("e".to_owned(), 90)],
        "{f:?}"
    );
    let chi = f.tests.iter().find(|t| t.method == "chi2").unwrap();
    assert!(
        chi.statistic.is_finite() && chi.p_value.unwrap() > 0.0 && chi.p_value.unwrap() < 1e-30,
        "{chi:?}"
    );
    assert_eq!(f.status, Status::Drift);
    all_finite(&e);

    // A constant column against itself: p = 1, no NaN.
    let r = categorical_reference(&["x"; 500]);
    let e = evaluate(&r, &categorical_window(&r, &[Some("x"); 300]), None, &cfg);
    let chi = e.features[0]
        .tests
        .iter()
        .find(|t| t.method == "chi2")
        .unwrap();
    assert_eq!(chi.p_value, Some(1.0));
    assert_eq!(e.features[0].status, Status::Ok);
    all_finite(&e);

    // Empty window: insufficient data, never "no drift".
    let e = evaluate(&r, &categorical_window(&r, &[]), None, &cfg);
    assert_eq!(e.features[0].status, Status::InsufficientData);
    assert_eq!(e.dataset.status, Status::InsufficientData);
    assert!(!e.dataset.drift);
    all_finite(&e);

    // Sparse categories (expected < 5) are merged before χ².
    let mut reference = vec!["a"; 5000];
    reference.extend(["b"; 4990]);
    reference.extend([
        "rare1", "rare2", "rare3", "rare4", "rare5", "rare6", "rare7", "rare8", "rare9", "rare10",
    ]);
    let r = categorical_reference(&reference);
    let mut cur = vec![Some("a"); 100];
    cur.extend([Some("b"); 100]);
    let e = evaluate(&r, &categorical_window(&r, &cur), None, &cfg);
    let chi = e.features[0]
        .tests
        .iter()
        .find(|t| t.method == "chi2")
        .unwrap();
    assert!(chi.merged_categories.unwrap_or(0) >= 10, "{chi:?}");
    all_finite(&e);
}

/// An empty numeric window is insufficient, and constant columns never give NaN.
#[test]
fn numeric_edge_cases() {
    let cfg = EvalConfig::default();
    let r = numeric_reference(&[3.0; 1000]);
    let e = evaluate(&r, &window(&r, &[], 0), None, &cfg);
    assert_eq!(e.features[0].status, Status::InsufficientData);
    let e = evaluate(&r, &window(&r, &[3.0; 200], 0), None, &cfg);
    assert_eq!(e.features[0].status, Status::Ok, "{:?}", e.features[0]);
    all_finite(&e);
    let e = evaluate(&r, &window(&r, &[4.0; 200], 0), None, &cfg);
    assert_eq!(e.features[0].status, Status::Drift, "{:?}", e.features[0]);
    all_finite(&e);
}

/// A reference with a numeric and a categorical feature, and a stream of records for it.
fn mixed() -> (SegmentProfile, Vec<(i32, i64, f64, String)>) {
    let s = settings();
    let mut rng = Lcg(99);
    let x: Vec<Option<f64>> = (0..3000).map(|_| Some(rng.normal())).collect();
    let c: Vec<Option<String>> = (0..3000)
        .map(|_| Some(format!("k{}", (rng.uniform() * 6.0) as u32)))
        .collect();
    let hashes: Vec<u64> = (0..3000)
        .map(|i| record_hash(s.seed, "ref", 0, i))
        .collect();
    let r = SegmentProfile {
        n: 3000,
        features: vec![
            FeatureProfile::numeric("x", FeatureKind::Numeric, &x, &hashes, &s),
            FeatureProfile::categorical("c", FeatureKind::Categorical, &c, &s),
        ],
        histograms: None,
    };
    let records = (0..3000)
        .map(|i| {
            let partition = i % 4;
            let v = 0.1 + rng.normal();
            let cat = format!("k{}", (rng.uniform() * 8.0) as u32); // k6, k7 are new
            (partition, i64::from(i / 4), v, cat)
        })
        .collect();
    (r, records)
}

fn summarise(r: &SegmentProfile, records: &[(i32, i64, f64, String)]) -> SegmentSummary {
    let s = settings();
    let mut w = SegmentSummary::new(r, None, 256);
    for (p, o, v, c) in records {
        let h = record_hash(s.seed, "in", *p, *o);
        w.n_records += 1;
        w.add(r, 0, Cell::Num(*v), h);
        w.add(r, 1, Cell::Text(c), h);
    }
    w
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// T4: split the stream at random points among 1–8 sidecars (records of a partition may
    /// move between sidecars at rebalances), merge the parts in any order: the summary equals
    /// the single-node one (counters, bins, samples and new values exactly, Welford to 1e-12)
    /// and the report JSON is byte-identical.
    #[test]
    fn any_split_merges_to_the_single_summary(
        sidecars in 1usize..=8,
        cuts in proptest::collection::vec(0usize..3000, 0..12),
        owners in proptest::collection::vec(0usize..8, 13),
        order in proptest::collection::vec(any::<u64>(), 8),
    ) {
        let (r, records) = mixed();
        let whole = summarise(&r, &records);
        let mut cuts = cuts;
        cuts.push(0);
        cuts.push(records.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut parts: Vec<Vec<(i32, i64, f64, String)>> = vec![Vec::new(); sidecars];
        for (i, w) in cuts.windows(2).enumerate() {
            parts[owners[i % owners.len()] % sidecars].extend_from_slice(&records[w[0]..w[1]]);
        }
        let mut summaries: Vec<(u64, SegmentSummary)> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (order[i], summarise(&r, p)))
            .collect();
        summaries.sort_by_key(|s| s.0);
        let mut merged = SegmentSummary::new(&r, None, 256);
        for (_, s) in &summaries {
            merged.merge(s);
        }
        prop_assert_eq!(merged.n_records, whole.n_records);
        match (&merged.features[0], &whole.features[0]) {
            (FeatureSummary::Numeric(a), FeatureSummary::Numeric(b)) => {
                prop_assert_eq!(&a.bins, &b.bins);
                prop_assert_eq!(&a.sample, &b.sample);
                prop_assert_eq!((a.n, a.n_null, a.min, a.max), (b.n, b.n_null, b.min, b.max));
                prop_assert!((a.moments.mean - b.moments.mean).abs() <= 1e-12 * b.moments.mean.abs().max(1.0));
                prop_assert!((a.moments.m2 - b.moments.m2).abs() <= 1e-12 * b.moments.m2.abs());
            }
            _ => prop_assert!(false, "numeric summary expected"),
        }
        prop_assert_eq!(&merged.features[1], &whole.features[1]);
        let cfg = EvalConfig::default();
        let a = serde_json::to_string(&evaluate(&r, &merged, None, &cfg).features).unwrap();
        let b = serde_json::to_string(&evaluate(&r, &whole, None, &cfg).features).unwrap();
        prop_assert_eq!(a, b);
    }
}

/// Merging with an empty summary changes nothing; merging is commutative.
#[test]
fn empty_is_identity_and_merge_commutes() {
    let (r, records) = mixed();
    let a = summarise(&r, &records[..1000]);
    let b = summarise(&r, &records[1000..]);
    let mut ab = a.clone();
    ab.merge(&b);
    let mut ba = b.clone();
    ba.merge(&a);
    assert_eq!(ab.features[1], ba.features[1]);
    let mut with_empty = ab.clone();
    with_empty.merge(&SegmentSummary::new(&r, None, 256));
    assert_eq!(with_empty, ab);
}

/// Fixed materiality thresholds (0.1) call small null windows "material" most of the time;
/// with the profile's null tables (made by `Profile::seal`) that drops to about the tables'
/// 5 % per effect.
#[test]
fn null_tables_keep_small_windows_from_being_material_by_chance() {
    use argus_stats::profile::{Profile, StreamKind, FLEET};
    let cfg = EvalConfig::default();
    let mut rng = Lcg(11);
    let reference: Vec<f64> = (0..5000).map(|_| rng.normal()).collect();
    let plain = numeric_reference(&reference);
    let mut segments = std::collections::BTreeMap::new();
    segments.insert(FLEET.to_owned(), plain.clone());
    let sealed = Profile::seal(
        "t".into(),
        StreamKind::Records,
        "t".into(),
        settings(),
        segments,
        None,
        "t".into(),
    )
    .unwrap();
    let tabled = sealed.fleet().clone();
    assert!(tabled.features[0].null.is_some());
    let (mut fixed, mut with_tables) = (0, 0);
    let trials = 300;
    for t in 0..trials {
        let cur: Vec<f64> = (0..60).map(|_| rng.normal()).collect();
        fixed += usize::from(
            evaluate(&plain, &window(&plain, &cur, t), None, &cfg).features[0].material,
        );
        with_tables += usize::from(
            evaluate(&tabled, &window(&tabled, &cur, t), None, &cfg).features[0].material,
        );
    }
    let (fixed, with_tables) = (
        fixed as f64 / trials as f64,
        with_tables as f64 / trials as f64,
    );
    println!(
        "material under H0 at M = 60: fixed thresholds {fixed:.3}, null tables {with_tables:.3}"
    );
    assert!(fixed > 0.5, "{fixed}");
    assert!(with_tables < 0.15, "{with_tables}");
}
