//! End-to-end on a real broker: the churn example. Customers from a CSV (`argus produce
//! records`) through two workers, scored by the bundled random forest; bad rows and bad
//! records; the daily batch flow (`argus score`) and its report.
//!
//! Reference scores are scikit-learn's `predict_proba` on the same rows, computed by
//! `models/make_churn_model.py` and checked in as `tests/fixtures/churn/expected-10k.csv`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use argus_model::Classifier;
use argus_wire::{headers as h, Alert, Prediction, ALERT_V2_JSON_SCHEMA, PREDICTION_JSON_SCHEMA};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const TOLERANCE: f64 = 1e-6;

fn churn_model() -> Arc<Classifier> {
    Arc::new(Classifier::load(&repo_root().join("models/churn")).expect("churn bundle loads"))
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/churn").join(name)
}

/// `customer_id → p_churn` from a fixture.
fn expected(name: &str) -> HashMap<String, f64> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (k, p) = l.split_once(',').unwrap();
            (k.to_string(), p.parse().unwrap())
        })
        .collect()
}

/// Rows of a plain CSV (no quoting) as column → value maps, by the first column.
fn csv_rows(path: &Path) -> HashMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let row: BTreeMap<String, String> = header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (row[header[0]].clone(), row)
        })
        .collect()
}

/// Runs the argus binary; returns (success, stdout, stderr).
fn argus(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(argus_bin())
        .args(args)
        .env("ARGUS_BROKERS", brokers())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn produce_csv(topic: &str, path: &Path) -> String {
    let (ok, stdout, stderr) = argus(&[
        "produce",
        "--topic",
        topic,
        "records",
        path.to_str().unwrap(),
        "--key",
        "customer_id",
    ]);
    assert!(ok, "argus produce records failed:\n{stdout}\n{stderr}");
    stdout
}

fn churn_config(topics: &Topics, id: &str, model: &Classifier) -> argus_worker::WorkerConfig {
    let mut c = topics.worker_config(id);
    let d = model.manifest().decision.clone().unwrap();
    c.rules = vec![argus_worker::AlertRule {
        name: d.positive.clone(),
        label: d.positive,
        threshold: d.threshold,
    }];
    c.max_batch = 64;
    c
}

fn churn_score(p: &Prediction) -> f64 {
    f64::from(p.top.iter().find(|s| s.label == "churn").unwrap().score)
}

/// 10,000 customers through 2 workers: every record scored once, each score equal to
/// scikit-learn's `predict_proba` to 1e-6; alerts exactly for scores ≥ the manifest's
/// threshold, each carrying the customer's features (alert v2).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_customers_through_two_workers_match_scikit_learn() {
    let topics = Topics::create(4).await;
    let group = unique("churn-workers");
    let model = churn_model();
    let mut w1 = RunningWorker::start(churn_config(&topics, "w1", &model), &group, model.clone());
    let mut w2 = RunningWorker::start(churn_config(&topics, "w2", &model), &group, model.clone());
    w1.wait_assigned(Duration::from_secs(60)).await;
    w2.wait_assigned(Duration::from_secs(60)).await;

    const N: usize = 10_000;
    let summary = produce_csv(&topics.input, &fixture("customers-10k.csv"));
    assert!(summary.contains("sent 10000 inputs"), "{summary}");

    let preds = read_until(&topics.predictions, Duration::from_secs(240), |m| {
        m.len() >= N
    });
    let extra = read_until(&topics.predictions, Duration::from_secs(2), |_| false);
    let consumed = |w: &RunningWorker| w.stats.consumed.load(std::sync::atomic::Ordering::Relaxed);
    let (c1, c2) = (consumed(&w1), consumed(&w2));
    w1.stop().await;
    w2.stop().await;
    assert_eq!(preds.len(), N, "predictions seen");
    assert_eq!(c1 + c2, N as u64, "no record consumed twice");
    assert!(c1 > 0 && c2 > 0, "both workers scored records: {c1} + {c2}");

    let predictions: Vec<Prediction> = validate_all(&extra, PREDICTION_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert_eq!(predictions.len(), N, "no duplicate predictions");
    let want = expected("expected-10k.csv");
    let threshold = f64::from(model.manifest().decision.as_ref().unwrap().threshold);
    let mut scored: HashMap<String, f64> = HashMap::new();
    let mut worst = 0f64;
    for p in &predictions {
        let key = p.input.key.clone().unwrap();
        assert_eq!(p.input.source_id.as_deref(), Some(key.as_str()));
        let online = churn_score(p);
        let reference = want[&key];
        worst = worst.max((online - reference).abs());
        assert!(
            (online - reference).abs() <= TOLERANCE,
            "{key}: worker {online} vs scikit-learn {reference}"
        );
        assert!(
            scored.insert(key, online).is_none(),
            "one prediction per customer"
        );
    }
    assert_eq!(scored.len(), N);
    eprintln!("worst |worker - scikit-learn| = {worst:e}");

    let alerts_msgs = read_until(&topics.alerts, Duration::from_secs(30), |_| false);
    assert!(
        alerts_msgs
            .iter()
            .all(|m| header(m, h::SCHEMA).as_deref() == Some("argus.alert/v2")),
        "the schema header names the body's version"
    );
    let alerts: Vec<Alert> = validate_all(&alerts_msgs, ALERT_V2_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let alerted: BTreeSet<String> = alerts
        .iter()
        .map(|a| a.input.key.clone().unwrap())
        .collect();
    let should: BTreeSet<String> = scored
        .iter()
        .filter(|(_, s)| **s >= threshold)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(alerts.len(), alerted.len(), "one alert per customer");
    assert_eq!(
        alerted, should,
        "alerts are exactly the scores ≥ {threshold}"
    );
    let customers = csv_rows(&fixture("customers-10k.csv"));
    for a in alerts.iter().take(200) {
        assert_eq!(a.schema, "argus.alert/v2");
        let features = a
            .features
            .as_ref()
            .expect("record alerts carry their features");
        let row = &customers[a.input.key.as_ref().unwrap()];
        assert_eq!(features.len(), model.manifest().features.len());
        for (name, value) in features {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let csv = &row[name];
            let same = text == *csv
                || csv.parse::<f64>().ok() == text.parse::<f64>().ok()
                    && csv.parse::<f64>().is_ok();
            assert!(
                same,
                "{}: feature {name} is {text} in the alert, {csv} in the CSV",
                a.id
            );
        }
    }
}

/// With evidence on, every churn alert is `argus.alert/v4` and says why: exact TreeSHAP
/// attributions per manifest feature that add up to the alert's score (base value + the
/// contributions = P(churn) to 1e-6), largest first, the top ones in plain words, the same
/// as `argus explain`'s explainer computes offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_alerts_carry_tree_shap_evidence_that_adds_up() {
    let topics = Topics::create(2).await;
    let group = unique("churn-evidence");
    let model = churn_model();
    let mut config = churn_config(&topics, "w-evidence", &model);
    config.evidence = argus_worker::config::EvidenceSettings {
        enabled: true,
        // Generous: a debug build on a busy machine; the budget has its own tests.
        deadline: Duration::from_secs(20),
        queue: 1024,
        // Not only spare CPU: the test machine runs other tests meanwhile.
        priority: argus_worker::config::EvidencePriority::Normal,
        // However busy the test machine, these alerts are not a backlog.
        skip_older_than: Duration::ZERO,
        ..Default::default()
    };
    let mut w = RunningWorker::start(config, &group, model.clone());
    w.wait_assigned(Duration::from_secs(60)).await;

    let dir = tempfile_dir();
    let csv = first_customers(&dir, 200);
    produce_csv(&topics.input, &csv);
    let predictions = read_until(&topics.predictions, Duration::from_secs(120), |m| {
        m.len() >= 200
    });
    let threshold = model.manifest().decision.as_ref().unwrap().threshold;
    let expected = predictions
        .iter()
        .map(|m| serde_json::from_slice::<Prediction>(m.payload().unwrap()).unwrap())
        .filter(|p| churn_score(p) >= f64::from(threshold))
        .count();
    // Alerts follow their predictions once their evidence is ready.
    let msgs = read_until(&topics.alerts, Duration::from_secs(120), |m| {
        m.len() >= expected
    });
    w.stop().await;
    assert_eq!(
        msgs.len(),
        expected,
        "one alert per score over the threshold"
    );
    assert!(msgs.len() > 20, "{} alerts", msgs.len());
    assert!(msgs
        .iter()
        .all(|m| header(m, h::SCHEMA).as_deref() == Some("argus.alert/v4")));
    let alerts: Vec<Alert> = validate_all(&msgs, argus_wire::ALERT_V4_JSON_SCHEMA)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let explainer = argus_model::explain::Explainer::for_model(&model, Default::default())
        .unwrap()
        .unwrap();
    for a in &alerts {
        let e = a.evidence.as_ref().unwrap();
        assert_eq!(e.status, argus_wire::EvidenceStatus::Ok, "{}: {e:?}", a.id);
        assert_eq!(e.method.as_deref(), Some("tree_shap"));
        assert_eq!(e.attributions.len(), 11);
        let total: f64 = e.attributions.iter().map(|x| x.contribution).sum();
        let explained = e.base_value.unwrap() + total;
        assert!(
            (explained - f64::from(a.score)).abs() < 1e-6,
            "{}: base + contributions {explained} vs score {}",
            a.id,
            a.score
        );
        assert_eq!(e.summary.len(), 3);
        assert!(e.summary[0].starts_with(&e.attributions[0].feature));
        // What the worker attached is what the offline explainer computes (the alert's
        // `features` are the record's typed values).
        let record = serde_json::to_vec(a.features.as_ref().unwrap()).unwrap();
        let payload = argus_wire::Payload::Record(argus_wire::json_record(&record).unwrap());
        let offline = explainer.explain(&model, &payload, 1, &[]).unwrap();
        for (x, y) in e.attributions.iter().zip(&offline.attributions) {
            assert_eq!(x.feature, y.feature);
            assert!((x.contribution - y.contribution).abs() < 1e-9);
        }
    }
    eprintln!(
        "{} alerts with evidence; e.g. {:?}",
        alerts.len(),
        alerts[0].evidence.as_ref().unwrap().summary
    );
}

/// Alerts wait for their evidence without holding up anything else (at-least-once): the
/// predictions of every input, alerting or not, go out while the alerts' evidence is still
/// being computed (slowly here: sampling Shapley with many permutations on one thread),
/// and no input is committed before its alert is out; then every alert arrives with its
/// evidence and every input is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn predictions_do_not_wait_for_alerts_evidence_and_commits_do() {
    let topics = Topics::create(2).await;
    let group = unique("churn-slow-evidence");
    // The churn bundle without tree covers: evidence by sampling Shapley.
    let dir = tempfile_dir().join("bundle");
    let src = repo_root().join("models/churn");
    copy_bundle_files(&src, &dir);
    let manifest = std::fs::read_to_string(src.join("manifest.toml"))
        .unwrap()
        .replace("covers = \"tree_covers.json\"\n", "");
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
    let model = Arc::new(Classifier::load(&dir).unwrap());
    let mut config = churn_config(&topics, "w-slow-evidence", &model);
    config.evidence = argus_worker::config::EvidenceSettings {
        enabled: true,
        deadline: Duration::from_secs(300),
        queue: 1024,
        permutations: 30_000,
        priority: argus_worker::config::EvidencePriority::Normal,
        // However busy the test machine, these alerts are not a backlog.
        skip_older_than: Duration::ZERO,
        ..Default::default()
    };
    let mut w = RunningWorker::start(config, &group, model.clone());
    w.wait_assigned(Duration::from_secs(60)).await;

    let csv = first_customers(&tempfile_dir(), 100);
    produce_csv(&topics.input, &csv);
    let predictions: Vec<Prediction> =
        read_until(&topics.predictions, Duration::from_secs(120), |m| {
            m.len() >= 100
        })
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap()).unwrap())
        .collect();
    let threshold = f64::from(model.manifest().decision.as_ref().unwrap().threshold);
    let alerting: BTreeSet<(i32, i64)> = predictions
        .iter()
        .filter(|p| churn_score(p) >= threshold)
        .map(|p| (p.input.partition, p.input.offset))
        .collect();
    assert!(alerting.len() >= 10, "{} alerting inputs", alerting.len());
    // Committed offsets first, then the alerts out by then.
    let committed = committed_offsets(&group, &topics.input, 2);
    let alerted = |msgs: &[argus_kafka::rdkafka::message::OwnedMessage]| -> BTreeSet<(i32, i64)> {
        msgs.iter()
            .map(|m| serde_json::from_slice::<Alert>(m.payload().unwrap()).unwrap())
            .map(|a| (a.input.partition, a.input.offset))
            .collect()
    };
    let early = alerted(&read_until(&topics.alerts, Duration::from_secs(1), |_| {
        false
    }));
    // Had the predictions waited for their alerts' evidence, every alert would be out by
    // now (an input's prediction and alerts went out together).
    assert!(
        early.len() < alerting.len(),
        "every prediction is out, and all {} alerts already: the predictions waited for \
         the evidence",
        alerting.len()
    );
    for (p, c) in &committed {
        let waiting = alerting
            .iter()
            .filter(|(q, o)| q == p && !early.contains(&(*q, *o)))
            .map(|(_, o)| *o)
            .min();
        if let Some(o) = waiting {
            assert!(
                *c <= o,
                "partition {p}: committed up to {c}, past input {o} whose alert is not out"
            );
        }
    }
    let msgs = read_until(&topics.alerts, Duration::from_secs(240), |m| {
        m.len() >= alerting.len()
    });
    assert_eq!(
        alerted(&msgs),
        alerting,
        "one alert per score over the threshold"
    );
    for m in &msgs {
        let a: Alert = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let e = a.evidence.unwrap();
        assert_eq!(e.status, argus_wire::EvidenceStatus::Ok, "{e:?}");
        assert_eq!(e.method.as_deref(), Some("sampling_shapley"));
    }
    let highs: BTreeMap<i32, i64> = predictions.iter().fold(BTreeMap::new(), |mut h, p| {
        let e = h.entry(p.input.partition).or_insert(0);
        *e = (*e).max(p.input.offset + 1);
        h
    });
    let started = std::time::Instant::now();
    loop {
        let c = committed_offsets(&group, &topics.input, 2);
        if highs.iter().all(|(p, h)| c.get(p) == Some(h)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "committed {c:?}, inputs up to {highs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.stop().await;
}

/// Bad input loses nothing: a CSV's malformed rows are reported by line and skipped by the
/// producer; records with a missing, null, ill-typed or unknown-category feature, and bytes
/// that are no envelope, land in the DLQ with the reason naming the column; the good rows
/// are scored as scikit-learn scores them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_rows_and_bad_records_are_reported_and_dead_lettered() {
    let topics = Topics::create(2).await;
    let group = unique("churn-dlq");
    let model = churn_model();
    let mut w = RunningWorker::start(churn_config(&topics, "w", &model), &group, model.clone());
    w.wait_assigned(Duration::from_secs(60)).await;

    // The CSV: lines 5 (too few fields) and 9 ("ten" in an int column) never leave the
    // producer; lines 14 (empty monthly_charges) and 19 (region "atlantis") are records the
    // worker refuses.
    let (ok, stdout, stderr) = argus(&[
        "produce",
        "--topic",
        &topics.input,
        "records",
        fixture("bad-rows.csv").to_str().unwrap(),
        "--key",
        "customer_id",
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("sent 18 inputs"), "{stdout}");
    assert!(
        stdout.contains("2 bad rows skipped (lines 5, 9)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 5: this row has 10 fields but the header has 12"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 9: column \"tenure_months\" (int): \"ten\" is not a whole number"),
        "{stderr}"
    );
    // JSON lines keep their types: a string where a number belongs, a missing feature.
    let dir = tempfile_dir();
    let jsonl = dir.join("bad.jsonl");
    let row = csv_rows(&fixture("bad-rows.csv"))["C8-0000000"].clone();
    let mut object: serde_json::Map<String, serde_json::Value> = row
        .iter()
        .map(|(k, v)| {
            let value = match (v.parse::<i64>(), v.parse::<f64>(), v.as_str()) {
                (Ok(i), _, _) => serde_json::json!(i),
                (_, Ok(x), _) => serde_json::json!(x),
                (_, _, "true") => serde_json::json!(true),
                (_, _, "false") => serde_json::json!(false),
                _ => serde_json::json!(v),
            };
            (k.clone(), value)
        })
        .collect();
    object.insert("customer_id".into(), "J-typed".into());
    object.insert("complaints_90d".into(), "two".into());
    let mut missing = object.clone();
    missing.insert("customer_id".into(), "J-missing".into());
    missing.remove("plan");
    missing.remove("complaints_90d");
    std::fs::write(
        &jsonl,
        format!(
            "{}\n{}\n",
            serde_json::Value::Object(object),
            serde_json::Value::Object(missing)
        ),
    )
    .unwrap();
    // From stdin, as a pipe from a database export would be.
    let out = std::process::Command::new(argus_bin())
        .args([
            "produce",
            "--topic",
            &topics.input,
            "records",
            "-",
            "--format",
            "jsonl",
        ])
        .args(["--key", "customer_id"])
        .env("ARGUS_BROKERS", brokers())
        .stdin(std::fs::File::open(&jsonl).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sent 2 inputs"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not an envelope at all.
    produce_raw(&topics.input, "garbage", b"\x07\x07not an envelope", &[]).await;

    let dlq = read_until(&topics.dlq, Duration::from_secs(60), |m| m.len() >= 5);
    let preds = read_until(&topics.predictions, Duration::from_secs(60), |m| {
        m.len() >= 16
    });
    w.stop().await;
    let reasons: BTreeMap<String, (String, String)> = dlq
        .iter()
        .map(|m| {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            (
                key,
                (
                    header(m, h::DLQ_REASON).unwrap(),
                    header(m, h::DLQ_DETAIL).unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(dlq.len(), 5, "{reasons:#?}");
    let expect = [
        (
            "C8-0000012",
            "feature",
            "feature \"monthly_charges\" is null",
        ),
        (
            "C8-0000017",
            "feature",
            "feature \"region\" has the value \"atlantis\", which is not one of its categories",
        ),
        (
            "J-typed",
            "feature",
            "feature \"complaints_90d\" must be a whole number, got the text \"two\"",
        ),
        ("J-missing", "feature", "is missing from the record"),
        ("garbage", "decode", "envelope"),
    ];
    for (key, reason, words) in expect {
        let (r, detail) = reasons
            .get(key)
            .unwrap_or_else(|| panic!("{key} not in the DLQ: {reasons:#?}"));
        assert_eq!(r, reason, "{key}: {detail}");
        assert!(detail.contains(words), "{key}: {detail}");
    }
    // The original bytes are kept: the record can be fixed and replayed.
    let garbage = dlq
        .iter()
        .find(|m| m.key() == Some(b"garbage".as_slice()))
        .unwrap();
    assert_eq!(
        garbage.payload(),
        Some(b"\x07\x07not an envelope".as_slice())
    );

    let want = expected("bad-rows-expected.csv");
    assert_eq!(preds.len(), 16);
    for m in &preds {
        let p: Prediction = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let key = p.input.key.clone().unwrap();
        let reference = want
            .get(&key)
            .unwrap_or_else(|| panic!("{key} should not be scored"));
        assert!((churn_score(&p) - reference).abs() <= TOLERANCE, "{key}");
    }
}

/// The first `n` customers of the 10k fixture, as a CSV in `dir`.
fn first_customers(dir: &Path, n: usize) -> PathBuf {
    let all = std::fs::read_to_string(fixture("customers-10k.csv")).unwrap();
    let head: Vec<&str> = all.lines().take(n + 1).collect();
    let csv = dir.join(format!("customers-{n}.csv"));
    std::fs::write(&csv, head.join("\n") + "\n").unwrap();
    csv
}

/// `argus score` of `topics`' input with the churn bundle, the report to `report`, plus
/// `extra` flags; its stdout (it must succeed).
fn score(topics: &Topics, report: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "score",
        "--input",
        &topics.input,
        "--model",
        "models/churn",
        "--report",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(&topics.output_flags());
    args.extend_from_slice(extra);
    stdout_of_success(
        std::process::Command::new(argus_bin())
            .current_dir(repo_root())
            .args(&args)
            .env("ARGUS_BROKERS", brokers()),
    )
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(unique("argus-records"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `--on-bad-row fail` stops at the first bad row with exit 65 and its line number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_fails_on_the_first_bad_row_when_asked() {
    let topic = unique("records-fail");
    create_topics(&[(&topic, 1)]).await;
    // CSV from stdin, as a pipe from a database export would be.
    let out = std::process::Command::new(argus_bin())
        .args([
            "produce", "--topic", &topic, "records", "-", "--format", "csv",
        ])
        .args(["--key", "customer_id", "--on-bad-row", "fail"])
        .env("ARGUS_BROKERS", brokers())
        .stdin(std::fs::File::open(fixture("bad-rows.csv")).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("stdin: line 5:"), "{stderr}");
    // The three rows before it were delivered.
    let sent = read_until(&topic, Duration::from_secs(20), |m| m.len() >= 3);
    assert_eq!(sent.len(), 3);
}

/// The daily batch with `--evidence`: every published alert carries exact TreeSHAP
/// evidence that adds up to its score, and each report row says why in plain words — the
/// same reasons `argus explain` gives for that customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_scoring_with_evidence_explains_alerts_and_report_rows() {
    let topics = Topics::create(2).await;
    let dir = tempfile_dir();
    let csv = first_customers(&dir, 200);
    produce_csv(&topics.input, &csv);
    let path = dir.join("why.csv");
    let stdout = score(&topics, &path, &["--top", "20", "--evidence"]);
    let alerts: Vec<Alert> = {
        let msgs = read_until(&topics.alerts, Duration::from_secs(5), |_| false);
        validate_all(&msgs, argus_wire::ALERT_V4_JSON_SCHEMA)
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect()
    };
    assert!(alerts.len() > 20, "{} alerts", alerts.len());
    assert!(
        stdout.contains(&format!(
            "evidence: {0} of {0} alerts explained",
            alerts.len()
        )),
        "{stdout}"
    );
    for a in &alerts {
        let e = a.evidence.as_ref().unwrap();
        assert_eq!(e.status, argus_wire::EvidenceStatus::Ok, "{e:?}");
        let total: f64 = e.attributions.iter().map(|x| x.contribution).sum();
        assert!((e.base_value.unwrap() + total - f64::from(a.score)).abs() < 1e-6);
    }
    let model = churn_model();
    let explainer = argus_model::explain::Explainer::for_model(&model, Default::default())
        .unwrap()
        .unwrap();
    let customers = csv_rows(&csv);
    let mut report = csv::Reader::from_path(&path).unwrap();
    let header = report.headers().unwrap().clone();
    assert_eq!(header.iter().next_back(), Some("why"));
    let rows: Vec<csv::StringRecord> = report.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 20);
    for row in &rows {
        let key = &row[1];
        let why: Vec<&str> = row[header.len() - 1].split("; ").collect();
        assert_eq!(why.len(), 3, "{key}: {why:?}");
        // What `argus explain` says for the customer's record.
        let record: serde_json::Map<String, serde_json::Value> = customers[key]
            .iter()
            .map(|(k, v)| {
                let value = serde_json::from_str(v).unwrap_or_else(|_| v.clone().into());
                (k.clone(), value)
            })
            .collect();
        let bytes = serde_json::to_vec(&record).unwrap();
        let payload = argus_wire::Payload::Record(argus_wire::json_record(&bytes).unwrap());
        let offline = explainer.explain_input(&model, &payload, None).unwrap();
        assert_eq!(why, offline.evidence.summary, "{key}");
    }
}

/// The daily batch: `argus score` over a topic's range writes the at-risk report — the
/// customers whose scikit-learn score is ≥ the threshold, best first, top N, with their
/// features — publishes one prediction per record, and a second run over the same range
/// writes the same report byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_report_equals_offline_scoring_and_is_repeatable() {
    let topics = Topics::create(3).await;
    produce_csv(&topics.input, &fixture("customers-10k.csv"));
    let dir = tempfile_dir();
    let report = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        let stdout = score(&topics, &path, &[&["--top", "500"], extra].concat());
        (std::fs::read_to_string(path).unwrap(), stdout)
    };
    let (first, summary) = report("first.csv", &[]);
    assert!(summary.contains("scored 10000 records"), "{summary}");
    assert!(
        summary.contains("3805 customers at or above churn = 0.30"),
        "{summary}"
    );
    assert!(
        summary.contains("published 10000 predictions, 3805 alerts"),
        "{summary}"
    );
    let (second, _) = report("second.csv", &["--no-publish"]);
    assert_eq!(first, second, "the same range gives the same report");

    // Offline: scikit-learn's scores of the same customers.
    let want = expected("expected-10k.csv");
    let mut offline: Vec<(&String, f64)> = want
        .iter()
        .filter(|(_, p)| **p >= 0.3)
        .map(|(k, p)| (k, *p))
        .collect();
    offline.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    offline.truncate(500);
    let customers = csv_rows(&fixture("customers-10k.csv"));
    let mut lines = first.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], ["rank", "key", "p_churn"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 500);
    let cutoff = offline.last().unwrap().1;
    let mut previous = f64::INFINITY;
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
        let (key, score): (&str, f64) = (row[1], row[2].parse().unwrap());
        assert!(score <= previous, "ordered by score");
        previous = score;
        assert!(
            (score - want[key]).abs() <= TOLERANCE,
            "{key}: report {score} vs scikit-learn {}",
            want[key]
        );
        // Same membership as the offline top 500, up to ties at the cut-off.
        assert!(
            want[key] >= cutoff - TOLERANCE,
            "{key} is not in the offline top 500"
        );
        // Evidence columns are the customer's values.
        for (name, value) in header[3..header.len() - 3]
            .iter()
            .zip(&row[3..row.len() - 3])
        {
            let csv = &customers[key][*name];
            assert!(
                csv == value || csv.parse::<f64>().ok() == value.parse::<f64>().ok(),
                "{key}: {name} {value} vs {csv}"
            );
        }
    }
    for (key, p) in &offline {
        if *p > cutoff + TOLERANCE {
            assert!(
                rows.iter().any(|r| r[1] == key.as_str()),
                "{key} ({p}) missing from the report"
            );
        }
    }
    let preds = read_until(&topics.predictions, Duration::from_secs(60), |m| {
        m.len() >= 10_000
    });
    let extra = read_until(&topics.predictions, Duration::from_secs(2), |_| false);
    assert_eq!(preds.len(), 10_000);
    assert_eq!(
        extra.len(),
        10_000,
        "the --no-publish run published nothing"
    );
}
