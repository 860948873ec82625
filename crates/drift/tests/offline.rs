//! Offline profile and compare (`argus drift profile` / `argus drift compare`) end to end:
//! files written to a temporary directory, read back, profiled and compared. Data come from a
//! fixed 64-bit LCG, so every run sees the same numbers and the same reports.
#![allow(clippy::unwrap_used)]

use argus_drift::compare::{compare, compare_with_profile};
use argus_drift::records::{profile_table, read_table, summarise_table, ColumnSpec, Table};
use argus_stats::evaluate::EvalConfig;
use argus_stats::profile::{FeatureKind, Profile, ProfileSettings, FLEET};
use argus_stats::report::{DriftReport, FeatureReport, Status};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

// ----------------------------------------------------------------------------------------------
// Data

/// 64-bit LCG (Knuth's MMIX constants); uniform doubles from the top 53 bits.
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    /// Standard normal (Box–Muller, one value per call).
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn pick<'a>(&mut self, items: &[(&'a str, f64)]) -> &'a str {
        let u = self.uniform();
        let mut acc = 0.0;
        for (v, p) in items {
            acc += p;
            if u < acc {
                return v;
            }
        }
        items.last().unwrap().0
    }
}

/// A cell as written to a file. Numbers are written with 6 decimals, so CSV and JSON parse
/// them to the same double.
#[derive(Clone, Debug)]
enum V {
    N(f64),
    S(String),
    B(bool),
    Null,
}

impl V {
    fn csv(&self) -> String {
        match self {
            V::N(x) => format!("{x:.6}"),
            V::S(s) => s.clone(),
            V::B(b) => b.to_string(),
            V::Null => String::new(),
        }
    }
    fn json(&self) -> String {
        match self {
            V::N(x) => format!("{x:.6}"),
            V::S(s) => serde_json::to_string(s).unwrap(),
            V::B(b) => b.to_string(),
            V::Null => "null".to_owned(),
        }
    }
}

#[derive(Clone, Debug)]
struct Data {
    columns: Vec<String>,
    rows: Vec<Vec<V>>,
}

const CITIES: [(&str, f64); 4] = [
    ("oslo", 0.4),
    ("bergen", 0.3),
    ("tromso", 0.2),
    ("stavanger", 0.1),
];

#[derive(Clone, Copy, Debug, Default)]
struct Gen {
    /// Added to `x` (σ = 1).
    shift_x: f64,
    /// Share of rows whose city is the never-seen "narvik".
    new_city: f64,
    /// Share of rows with `y` missing.
    null_y: f64,
}

/// Columns: id (row number), x ~ N(0,1) + shift, y ~ N(10, 2), city (4 categories),
/// count ∈ 0..=5 (numeric_discrete), flag ∈ {0, 1} (binary), active (boolean).
fn generate(seed: u64, n: usize, g: Gen) -> Data {
    let mut r = Lcg(seed);
    let columns = ["id", "x", "y", "city", "count", "flag", "active"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let rows = (0..n)
        .map(|i| {
            let x = r.normal() + g.shift_x;
            let y = 10.0 + 2.0 * r.normal();
            let y = if r.uniform() < g.null_y {
                V::Null
            } else {
                V::N(y)
            };
            let city = if r.uniform() < g.new_city {
                "narvik"
            } else {
                r.pick(&CITIES)
            };
            let count = (r.uniform() * 6.0).floor().min(5.0);
            let flag = f64::from(u8::from(r.uniform() < 0.3));
            let active = r.uniform() < 0.6;
            vec![
                V::N(i as f64),
                V::N(x),
                y,
                V::S(city.to_owned()),
                V::N(count),
                V::N(flag),
                V::B(active),
            ]
        })
        .collect();
    Data { columns, rows }
}

fn spec() -> ColumnSpec {
    ColumnSpec {
        ignore: vec!["id".to_owned()],
        ..ColumnSpec::default()
    }
}

// ----------------------------------------------------------------------------------------------
// Files

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "argus-drift-offline-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn write_csv(path: &Path, d: &Data) -> PathBuf {
    let mut s = d.columns.join(",");
    s.push('\n');
    for row in &d.rows {
        s.push_str(&row.iter().map(V::csv).collect::<Vec<_>>().join(","));
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
    path.to_owned()
}

fn write_jsonl(path: &Path, d: &Data) -> PathBuf {
    let mut s = String::new();
    for row in &d.rows {
        let fields: Vec<String> = d
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| format!("{}: {}", serde_json::to_string(c).unwrap(), v.json()))
            .collect();
        writeln!(s, "{{{}}}", fields.join(", ")).unwrap();
    }
    std::fs::write(path, s).unwrap();
    path.to_owned()
}

fn read(path: &Path) -> Table {
    read_table(path).unwrap_or_else(|e| panic!("{e}"))
}

// ----------------------------------------------------------------------------------------------
// Report checks

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../schemas/drift-report.v1.schema.json"
);

/// No NaN or infinity anywhere: serde_json writes non-finite floats as `null`, and the report
/// never has a `null` of its own (optional fields are omitted), so any `null` is a bad number.
fn assert_all_finite(v: &serde_json::Value, at: &str) {
    match v {
        serde_json::Value::Null => panic!("null (a NaN or infinite number?) at {at}"),
        serde_json::Value::Number(n) => {
            assert!(
                n.as_f64().is_some_and(f64::is_finite),
                "non-finite number at {at}"
            );
        }
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| assert_all_finite(x, &format!("{at}[{i}]"))),
        serde_json::Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| assert_all_finite(x, &format!("{at}.{k}"))),
        _ => {}
    }
}

/// Serialise, check every number is finite and, once the schema exists, validate against it.
fn check(reports: &[DriftReport]) {
    // `schemas/drift-report.v1.schema.json` is written separately; until it exists the schema
    // assertion is skipped (the finite-number check still runs).
    let schema = std::fs::read_to_string(SCHEMA)
        .ok()
        .map(|s| serde_json::from_str::<serde_json::Value>(&s).expect("schema is JSON"));
    if schema.is_none() {
        eprintln!("note: {SCHEMA} not found; skipping the JSON-schema validation");
    }
    let validator = schema.map(|s| jsonschema::validator_for(&s).expect("schema compiles"));
    if let Some(v) = &validator {
        // The validator is not vacuous: a report without its parts is refused.
        assert!(!v.is_valid(&serde_json::json!({ "schema": "argus.drift-report/v1" })));
    }
    for r in reports {
        let text = serde_json::to_string(r).unwrap();
        assert!(!text.contains("NaN"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_all_finite(&value, "report");
        if let Some(v) = &validator {
            let errors: Vec<String> = v
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "segment {}: {errors:#?}", r.segment);
        }
        // Also the round trip through the Rust types.
        let back: DriftReport = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, r);
    }
}

fn feature<'a>(r: &'a DriftReport, name: &str) -> &'a FeatureReport {
    r.features
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no feature {name} in {:?}",
                r.features.iter().map(|f| &f.name).collect::<Vec<_>>()
            )
        })
}

fn statuses(r: &DriftReport) -> Vec<(String, Status)> {
    r.features
        .iter()
        .map(|f| (f.name.clone(), f.status))
        .collect()
}

/// Reference (seed 1, 5 000 rows) and current (seed 2, `n` rows, shaped by `g`) as CSV.
fn compare_csv(name: &str, n: usize, g: Gen, k_alarm: u32) -> Vec<DriftReport> {
    let dir = temp_dir(name);
    let r = write_csv(
        &dir.join("reference.csv"),
        &generate(1, 5000, Gen::default()),
    );
    let c = write_csv(&dir.join("current.csv"), &generate(2, n, g));
    let reports = compare(
        &read(&r),
        &read(&c),
        &spec(),
        &EvalConfig::default(),
        k_alarm,
    )
    .unwrap();
    check(&reports);
    reports
}

// ----------------------------------------------------------------------------------------------
// Tests

#[test]
fn identical_distributions_do_not_drift() {
    let reports = compare_csv("identical", 2000, Gen::default(), 3);
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.segment, FLEET);
    assert_eq!(r.window.n_records, 2000);
    assert_eq!(r.reference.n, 5000);
    assert_eq!(r.reference.segment, FLEET);
    let names: Vec<&str> = r.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["x", "y", "city", "count", "flag", "active"],
        "id is ignored"
    );
    assert_eq!(feature(r, "x").kind, FeatureKind::Numeric);
    assert_eq!(feature(r, "city").kind, FeatureKind::Categorical);
    assert_eq!(feature(r, "count").kind, FeatureKind::NumericDiscrete);
    assert_eq!(feature(r, "flag").kind, FeatureKind::Binary);
    assert_eq!(feature(r, "active").kind, FeatureKind::Binary);
    for f in &r.features {
        assert_ne!(f.status, Status::Drift, "{}: {f:?}", f.name);
        assert_ne!(f.status, Status::InsufficientData, "{}", f.name);
    }
    assert!(!r.dataset.drift);
    assert_eq!(r.dataset.n_drifted, 0);
    assert_eq!(r.alarm.state, "ok");
}

#[test]
fn mean_shift_flags_that_column_only() {
    let g = Gen {
        shift_x: 0.5,
        ..Gen::default()
    };
    let reports = compare_csv("shift", 2000, g, 1);
    let r = &reports[0];
    let x = feature(r, "x");
    assert_eq!(x.status, Status::Drift, "{x:?}");
    assert!(x.significant && x.material);
    let ks = x.tests.iter().find(|t| t.method == "ks").expect("ks test");
    assert!(ks.p_value.unwrap() < 1e-6, "{ks:?}");
    assert!(x.effects.wasserstein_norm.unwrap() > 0.3, "{:?}", x.effects);
    for f in r.features.iter().filter(|f| f.name != "x") {
        assert_ne!(f.status, Status::Drift, "{}: {f:?}", f.name);
    }
    assert!(r.dataset.drift);
    assert_eq!(r.dataset.status, Status::Drift);
    assert_eq!(r.dataset.n_drifted, 1);
    // k = 1: one drifting window fires the alarm.
    assert_eq!(r.alarm.state, "firing");
    assert_eq!(r.alarm.k, 1);

    // With k = 3 the same window only makes the alarm pending.
    let reports = compare_csv("shift-k3", 2000, g, 3);
    assert_eq!(reports[0].alarm.state, "pending");
    assert_eq!(reports[0].alarm.rule, "3_consecutive");
}

#[test]
fn new_category_raises_the_new_values_alarm() {
    let g = Gen {
        new_city: 0.05,
        ..Gen::default()
    };
    let reports = compare_csv("new-category", 2000, g, 3);
    let r = &reports[0];
    let city = feature(r, "city");
    let nv = city
        .new_values
        .as_ref()
        .expect("new_values for a categorical feature");
    assert!(nv.alarm, "{nv:?}");
    assert!((nv.share - 0.05).abs() < 0.015, "{nv:?}");
    assert_eq!(nv.top.first().map(|t| t.0.as_str()), Some("narvik"));
    assert_eq!(city.status, Status::Drift);
    assert_eq!(r.dataset.status, Status::Drift);
    for f in r.features.iter().filter(|f| f.name != "city") {
        assert_ne!(f.status, Status::Drift, "{}: {f:?}", f.name);
    }
}

#[test]
fn constant_columns_give_p_one_and_no_nan() {
    let dir = temp_dir("constant");
    let with_constants = |mut d: Data| {
        d.columns.push("const_num".to_owned());
        d.columns.push("const_text".to_owned());
        for row in &mut d.rows {
            row.push(V::N(7.0));
            row.push(V::S("site-1".to_owned()));
        }
        d
    };
    let r = write_csv(
        &dir.join("reference.csv"),
        &with_constants(generate(1, 3000, Gen::default())),
    );
    let c = write_csv(
        &dir.join("current.csv"),
        &with_constants(generate(2, 1000, Gen::default())),
    );
    let reports = compare(&read(&r), &read(&c), &spec(), &EvalConfig::default(), 3).unwrap();
    check(&reports);
    for name in ["const_num", "const_text"] {
        let f = feature(&reports[0], name);
        assert_eq!(f.status, Status::Ok, "{f:?}");
        assert!(!f.tests.is_empty(), "{f:?}");
        for t in &f.tests {
            if let Some(p) = t.p_value {
                assert_eq!(p, 1.0, "{name}: {t:?}");
            }
        }
    }
}

#[test]
fn empty_current_file_is_insufficient_data() {
    let dir = temp_dir("empty");
    let r = write_csv(
        &dir.join("reference.csv"),
        &generate(1, 3000, Gen::default()),
    );
    let header_only = write_csv(
        &dir.join("current.csv"),
        &Data {
            columns: generate(1, 0, Gen::default()).columns,
            rows: Vec::new(),
        },
    );
    let empty_jsonl = dir.join("current-empty.jsonl");
    std::fs::write(&empty_jsonl, "").unwrap();
    let reference = read(&r);
    for current in [header_only, empty_jsonl] {
        let reports = compare(
            &reference,
            &read(&current),
            &spec(),
            &EvalConfig::default(),
            3,
        )
        .unwrap();
        check(&reports);
        assert_eq!(reports.len(), 1, "only the fleet segment");
        let rep = &reports[0];
        assert_eq!(rep.window.n_records, 0);
        assert!(!rep.features.is_empty());
        for f in &rep.features {
            assert_eq!(f.status, Status::InsufficientData, "{}: {f:?}", f.name);
        }
        assert_eq!(rep.dataset.status, Status::InsufficientData);
        assert_eq!(rep.dataset.n_tested, 0);
        assert!(!rep.dataset.drift);
        assert_eq!(rep.alarm.state, "ok");
    }
}

#[test]
fn jsonl_and_csv_give_the_same_report() {
    let dir = temp_dir("formats");
    let reference = generate(
        1,
        4000,
        Gen {
            null_y: 0.02,
            ..Gen::default()
        },
    );
    let current = generate(
        3,
        3000,
        Gen {
            shift_x: 0.2,
            new_city: 0.01,
            null_y: 0.05,
        },
    );
    let ref_csv = read(&write_csv(&dir.join("reference.csv"), &reference));
    let ref_jsonl = read(&write_jsonl(&dir.join("reference.jsonl"), &reference));
    assert_eq!(
        ref_csv.columns, ref_jsonl.columns,
        "JSON fields keep their file order"
    );
    assert_eq!(ref_csv.rows, ref_jsonl.rows);

    // The same profile content from either format (only `source`, and so the hash, differ).
    let settings = ProfileSettings::default();
    let p_csv = profile_table(&ref_csv, &spec(), &settings, "ref", "test").unwrap();
    let p_jsonl = profile_table(&ref_jsonl, &spec(), &settings, "ref", "test").unwrap();
    assert_eq!(p_csv.segments, p_jsonl.segments);
    assert_eq!(p_csv.schema_sha256, p_jsonl.schema_sha256);

    // Current windows larger than the bottom-k sample, so record hashes matter.
    let cur_csv = read(&write_csv(&dir.join("current.csv"), &current));
    let cur_jsonl = read(&write_jsonl(&dir.join("current.jsonl"), &current));
    let cfg = EvalConfig::default();
    let a = compare(&ref_csv, &cur_csv, &spec(), &cfg, 3).unwrap();
    let b = compare(&ref_csv, &cur_jsonl, &spec(), &cfg, 3).unwrap();
    check(&a);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(
        feature(&a[0], "y").n_null,
        cur_csv
            .rows
            .iter()
            .filter(|r| r[2] == argus_drift::records::CellValue::Null)
            .count() as u64
    );
}

#[test]
fn declared_numeric_column_with_text_names_the_row() {
    let dir = temp_dir("not-numeric");
    let mut d = generate(1, 50, Gen::default());
    d.rows[36][1] = V::S("n/a".to_owned());
    let path = write_csv(&dir.join("reference.csv"), &d);
    let table = read(&path);
    // Undeclared, one typo in 50 values keeps the column numeric (the rule the record producer
    // uses too), the typo a missing value...
    let p = profile_table(&table, &spec(), &ProfileSettings::default(), "r", "t").unwrap();
    assert_eq!(p.fleet().features[0].kind, FeatureKind::Numeric);
    assert_eq!(p.fleet().features[0].n_null, 1);
    // ...while a column that is mostly text is categorical...
    let mut texty = generate(1, 50, Gen::default());
    for row in texty.rows.iter_mut().take(10) {
        row[1] = V::S("n/a".to_owned());
    }
    let texty = read(&write_csv(&dir.join("texty.csv"), &texty));
    let p = profile_table(&texty, &spec(), &ProfileSettings::default(), "r", "t").unwrap();
    assert_eq!(p.fleet().features[0].kind, FeatureKind::Categorical);
    // ...declared numeric, it is an error naming the file, column, row and value.
    let spec = ColumnSpec {
        numeric: vec!["x".to_owned()],
        ..spec()
    };
    let err = profile_table(&table, &spec, &ProfileSettings::default(), "r", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 37"), "{err}");
    assert!(err.contains("\"x\""), "{err}");
    assert!(err.contains("n/a"), "{err}");
    assert!(err.contains("reference.csv"), "{err}");
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = temp_dir("bad-files");
    // Nested JSON value: names line and field.
    let nested = dir.join("nested.jsonl");
    std::fs::write(&nested, "{\"x\": 1}\n\n{\"x\": 2, \"tags\": [\"a\"]}\n").unwrap();
    let err = read_table(&nested).unwrap_err().to_string();
    assert!(
        err.contains("line 3") && err.contains("\"tags\"") && err.contains("array"),
        "{err}"
    );
    // Not an object.
    let scalar = dir.join("scalar.ndjson");
    std::fs::write(&scalar, "{\"x\": 1}\n[1, 2]\n").unwrap();
    let err = read_table(&scalar).unwrap_err().to_string();
    assert!(
        err.contains("line 2") && err.contains("JSON object"),
        "{err}"
    );
    // Ragged CSV row.
    let ragged = dir.join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3\n").unwrap();
    let err = read_table(&ragged).unwrap_err().to_string();
    assert!(
        err.contains("line 3") && err.contains("header has 2"),
        "{err}"
    );
    // Duplicate header.
    let dup = dir.join("dup.csv");
    std::fs::write(&dup, "a,b,a\n1,2,3\n").unwrap();
    let err = read_table(&dup).unwrap_err().to_string();
    assert!(err.contains("\"a\"") && err.contains("twice"), "{err}");
    // Unknown extension.
    let err = read_table(&dir.join("data.parquet"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(".csv") && err.contains(".jsonl"), "{err}");
    // Mixed rows in JSON lines: missing keys are null, columns in first-seen order.
    let mixed = dir.join("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"b\": 1, \"a\": \"x\"}\n{\"c\": true, \"a\": null}\n",
    )
    .unwrap();
    let t = read(&mixed);
    assert_eq!(t.columns, ["b", "a", "c"]);
    use argus_drift::records::CellValue as C;
    assert_eq!(t.rows[0], vec![C::Num(1.0), C::Text("x".into()), C::Null]);
    assert_eq!(t.rows[1], vec![C::Null, C::Null, C::Text("true".into())]);

    // A current table missing a profiled column: names it.
    let r = read(&write_csv(
        &dir.join("reference.csv"),
        &generate(1, 500, Gen::default()),
    ));
    let profile = profile_table(&r, &spec(), &ProfileSettings::default(), "r", "t").unwrap();
    let mut d = generate(2, 100, Gen::default());
    d.columns.remove(2);
    d.rows.iter_mut().for_each(|row| {
        row.remove(2);
    });
    let c = read(&write_csv(&dir.join("current.csv"), &d));
    let err = summarise_table(&c, &profile, None, 1024)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"y\"") && err.contains("current.csv"),
        "{err}"
    );
    // Declared columns must exist.
    let spec = ColumnSpec {
        segment: Some("camera".to_owned()),
        ..spec()
    };
    let err = profile_table(&r, &spec, &ProfileSettings::default(), "r", "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"camera\"") && err.contains("segment"),
        "{err}"
    );
}

/// Reference: cam-a (x ~ N(0,1), level uniform on 0..25), cam-b (x ~ N(2,1), level ∈ {1, 2}),
/// cam-c with too few rows for a reference of its own.
fn camera_data(seed: u64, rows: &[(&str, usize, f64)]) -> Data {
    let mut r = Lcg(seed);
    let columns = ["camera", "x", "level", "city"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut out = Vec::new();
    for (camera, n, shift) in rows {
        for _ in 0..*n {
            let base = if *camera == "cam-b" { 2.0 } else { 0.0 };
            let level = if *camera == "cam-b" {
                1.0 + (r.uniform() * 2.0).floor().min(1.0)
            } else {
                (r.uniform() * 25.0).floor().min(24.0)
            };
            out.push(vec![
                V::S((*camera).to_owned()),
                V::N(base + r.normal() + shift),
                V::N(level),
                V::S(r.pick(&CITIES).to_owned()),
            ]);
        }
    }
    Data { columns, rows: out }
}

#[test]
fn segments_get_their_own_references_and_reports() {
    let dir = temp_dir("segments");
    let reference = camera_data(
        1,
        &[
            ("cam-a", 3000, 0.0),
            ("cam-b", 2000, 0.0),
            ("cam-c", 50, 0.0),
        ],
    );
    let current = camera_data(
        2,
        &[
            ("cam-a", 1500, 1.0),
            ("cam-b", 1500, 0.0),
            ("cam-c", 40, 0.0),
            ("cam-d", 200, 0.0),
        ],
    );
    let r = read(&write_csv(&dir.join("reference.csv"), &reference));
    let c = read(&write_jsonl(&dir.join("current.jsonl"), &current));
    let spec = ColumnSpec {
        segment: Some("camera".to_owned()),
        ..ColumnSpec::default()
    };
    let cfg = EvalConfig::default();
    let reports = compare(&r, &c, &spec, &cfg, 3).unwrap();
    check(&reports);
    let segments: Vec<&str> = reports.iter().map(|r| r.segment.as_str()).collect();
    assert_eq!(segments, ["*", "cam-a", "cam-b", "cam-c", "cam-d"]);
    let used: Vec<(&str, u64)> = reports
        .iter()
        .map(|r| (r.reference.segment.as_str(), r.reference.n))
        .collect();
    assert_eq!(
        used,
        [
            ("*", 5050),
            ("cam-a", 3000),
            ("cam-b", 2000),
            ("*", 5050),
            ("*", 5050)
        ]
    );
    let n: Vec<u64> = reports.iter().map(|r| r.window.n_records).collect();
    assert_eq!(n, [3240, 1500, 1500, 40, 200]);
    // The segment column is not a feature.
    assert!(reports[0].features.iter().all(|f| f.name != "camera"));
    // cam-a's x shifted by 1σ: drift there; cam-b unchanged: none.
    assert_eq!(
        feature(&reports[1], "x").status,
        Status::Drift,
        "{:?}",
        statuses(&reports[1])
    );
    assert_ne!(
        feature(&reports[2], "x").status,
        Status::Drift,
        "{:?}",
        statuses(&reports[2])
    );
    assert!(!reports[2].dataset.drift, "{:?}", statuses(&reports[2]));

    // Segments keep the fleet's schema even where their data alone would be typed otherwise
    // (cam-b's `level` has two values), so the profile survives its own validation.
    let created_by = format!("argus-drift {}", env!("CARGO_PKG_VERSION"));
    let profile = profile_table(
        &r,
        &spec,
        &ProfileSettings::default(),
        "reference.csv",
        &created_by,
    )
    .unwrap();
    assert_eq!(
        profile.segments.keys().collect::<Vec<_>>(),
        ["*", "cam-a", "cam-b"]
    );
    for seg in profile.segments.values() {
        let kinds: Vec<FeatureKind> = seg.features.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FeatureKind::Numeric,
                FeatureKind::Numeric,
                FeatureKind::Categorical
            ]
        );
    }
    let loaded = Profile::from_json(&profile.to_json().unwrap()).unwrap();
    let again = compare_with_profile(&loaded, &c, Some("camera"), &cfg, 3).unwrap();
    assert_eq!(again, reports, "a saved profile gives the same reports");
}

#[test]
fn label_and_score_give_a_cbpe_estimate() {
    let dir = temp_dir("cbpe");
    // Calibrated scores: P(label = yes | score) = score.
    let make = |seed: u64, n: usize, with_label: bool| {
        let mut r = Lcg(seed);
        let mut columns = vec!["x".to_owned(), "score".to_owned()];
        if with_label {
            columns.push("label".to_owned());
        }
        let rows = (0..n)
            .map(|_| {
                let x = r.normal();
                let s = r.uniform();
                let yes = r.uniform() < s;
                let mut row = vec![V::N(x), V::N(s)];
                if with_label {
                    row.push(V::S(if yes { "yes" } else { "no" }.to_owned()));
                }
                row
            })
            .collect();
        Data { columns, rows }
    };
    let r = read(&write_csv(&dir.join("reference.csv"), &make(1, 5000, true)));
    let c = read(&write_csv(&dir.join("current.csv"), &make(2, 2000, false)));
    let spec = ColumnSpec {
        label: Some("label".to_owned()),
        score: Some("score".to_owned()),
        ..ColumnSpec::default()
    };
    let profile = profile_table(&r, &spec, &ProfileSettings::default(), "r", "t").unwrap();
    let cal = profile.calibration.as_ref().expect("calibration");
    assert_eq!(cal.positive_label, "yes");
    assert_eq!(cal.threshold, 0.5);
    assert!(
        (cal.reference_accuracy - 0.75).abs() < 0.03,
        "{}",
        cal.reference_accuracy
    );

    let reports = compare(&r, &c, &spec, &EvalConfig::default(), 3).unwrap();
    check(&reports);
    let rep = &reports[0];
    let names: Vec<&str> = rep.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["x", "score"], "the label is not a feature");
    assert_eq!(feature(rep, "score").kind, FeatureKind::Score);
    let pe = rep
        .performance_estimate
        .as_ref()
        .expect("performance estimate");
    assert_eq!(pe.n, 2000);
    assert!(pe.sufficient);
    assert!(
        (pe.accuracy - cal.reference_accuracy).abs() < 0.03,
        "{pe:?}"
    );
    assert!(!pe.degraded, "{pe:?}");

    // A non-binary label is refused with the reason.
    let mut d = make(3, 200, true);
    d.rows[5][2] = V::S("maybe".to_owned());
    let t = read(&write_csv(&dir.join("three.csv"), &d));
    let err = profile_table(&t, &spec, &ProfileSettings::default(), "r", "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 distinct values") && err.contains("\"label\""),
        "{err}"
    );
}

#[test]
fn byte_order_marks_and_crlf_are_accepted() {
    let dir = temp_dir("bom");
    let csv = dir.join("bom.csv");
    std::fs::write(&csv, "\u{feff}a,b\r\n1, x \r\n,2.5\r\n").unwrap();
    let jsonl = dir.join("bom.jsonl");
    std::fs::write(
        &jsonl,
        "\u{feff}{\"a\": 1, \"b\": \" x \"}\r\n{\"a\": null, \"b\": 2.5}\r\n",
    )
    .unwrap();
    use argus_drift::records::CellValue as C;
    for path in [csv, jsonl] {
        let t = read(&path);
        assert_eq!(t.columns, ["a", "b"], "{}", path.display());
        assert_eq!(
            t.rows,
            [
                vec![C::Num(1.0), C::Text(" x ".into())],
                vec![C::Null, C::Num(2.5)]
            ],
            "{}",
            path.display()
        );
    }
}

/// `argus drift compare` tests every row of the current file, so its KS, Cramér–von Mises and
/// Wasserstein results on 2 500 vs 2 000 rows equal scipy's on the same rows
/// (`fixtures/compare.json` from `fixtures/make_compare_reference.py`): statistics to 1e-12,
/// p-values to 1e-9 relative, W1 / reference std to 1e-12 relative; each test's `sample_n`
/// says every row was used. The same holds through a saved profile (`--profile`): the
/// reference file's 2 000 rows are within its stored sample.
#[test]
fn compare_uses_every_row_as_scipy_does() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let reference = read(&dir.join("compare-reference.csv"));
    let current = read(&dir.join("compare-current.csv"));
    let cfg = EvalConfig::default();
    let direct = compare(&reference, &current, &ColumnSpec::default(), &cfg, 3).unwrap();
    check(&direct);
    let saved = profile_table(
        &reference,
        &ColumnSpec::default(),
        &ProfileSettings::default(),
        "compare-reference.csv",
        "test",
    )
    .unwrap();
    let loaded = Profile::from_json(&saved.to_json().unwrap()).unwrap();
    let via_profile = compare_with_profile(&loaded, &current, None, &cfg, 3).unwrap();
    check(&via_profile);
    for (how, reports) in [("--reference", &direct), ("--profile", &via_profile)] {
        let fleet = &reports[0];
        for name in ["x", "y"] {
            let f = feature(fleet, name);
            let w = &want["features"][name];
            for method in ["ks", "cvm"] {
                let t = f
                    .tests
                    .iter()
                    .find(|t| t.method == method)
                    .unwrap_or_else(|| panic!("{how} {name}: no {method} in {:?}", f.tests));
                let (stat, p) = (
                    w[method]["statistic"].as_f64().unwrap(),
                    w[method]["p_value"].as_f64().unwrap(),
                );
                assert!(
                    (t.statistic - stat).abs() <= 1e-12,
                    "{how} {name} {method} statistic {} vs scipy {stat}",
                    t.statistic
                );
                let got = t.p_value.unwrap();
                assert!(
                    (got - p).abs() <= 1e-9 * p,
                    "{how} {name} {method} p {got:e} vs scipy {p:e}"
                );
                assert_eq!(
                    t.sample_n,
                    Some([2500, 2000]),
                    "{how} {name} {method}: every row tested"
                );
            }
            let w1 = f.effects.wasserstein_norm.unwrap();
            let norm = w["wasserstein"]["norm"].as_f64().unwrap();
            assert!(
                (w1 - norm).abs() <= 1e-12 * norm,
                "{how} {name} W1/std {w1} vs scipy {norm}"
            );
        }
    }
}

/// The streaming sidecar's bottom-k of 1024 values per window gives other numbers on the same
/// file (what `drift compare` reported before it kept every row): KS on 1 024 of the 2 500
/// current rows, not scipy's on all of them.
#[test]
fn a_window_sample_of_1024_is_not_every_row() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let reference = read(&dir.join("compare-reference.csv"));
    let current = read(&dir.join("compare-current.csv"));
    let profile = profile_table(
        &reference,
        &ColumnSpec::default(),
        &ProfileSettings::default(),
        "compare-reference.csv",
        "test",
    )
    .unwrap();
    let summaries = summarise_table(&current, &profile, None, profile.settings.sample_k).unwrap();
    let evaluation = argus_stats::evaluate::evaluate(
        profile.fleet(),
        &summaries[FLEET],
        None,
        &EvalConfig::default(),
    );
    let ks = evaluation
        .features
        .iter()
        .find(|f| f.name == "x")
        .and_then(|f| f.tests.iter().find(|t| t.method == "ks"))
        .unwrap();
    let scipy = want["features"]["x"]["ks"]["statistic"].as_f64().unwrap();
    println!(
        "x: KS on the 1024-value window sample {} (p {:e}); scipy on every row {scipy}",
        ks.statistic,
        ks.p_value.unwrap()
    );
    assert_eq!(ks.sample_n, Some([1024, 2000]));
    assert!((ks.statistic - scipy).abs() > 1e-3, "{}", ks.statistic);
}
