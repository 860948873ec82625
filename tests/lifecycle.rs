//! A model's life on the real broker, as users run it: `argus model register` three churn
//! versions, `evaluate` them on the fixed test set, a worker (`argus work --follow churn`)
//! serving what the registry says while `promote` (through the promotion gate), `rollback`
//! and a tampered artifact change it. Every input gets exactly one prediction, naming the
//! version that served its phase; the gate accepts the significantly better version and
//! refuses one that is not; a version whose artifact fails its sha256 is never served.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Life {
    registry: String,
    dir: tempfile::TempDir,
    topics: Topics,
}

impl Life {
    fn argus(&self, args: &[&str]) -> Output {
        Command::new(argus_bin())
            .args(args)
            .env("ARGUS_KAFKA__BROKERS", brokers())
            .env("ARGUS_BROKERS", brokers())
            .env("ARGUS_REGISTRY__TOPIC", &self.registry)
            .env(
                "ARGUS_REGISTRY__CACHE_DIR",
                self.dir.path().join("cli-cache"),
            )
            .env("ARGUS_MODEL_BY", "ci@lifecycle")
            .env("RUST_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("argus runs")
    }

    /// Runs `argus ARGS`, expects exit `code`, returns stdout + stderr.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.argus(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(code), "argus {args:?}:\n{text}");
        assert!(!text.contains("panicked"), "{text}");
        text
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Customers `from..to` of the 10k fixture as a CSV of their own.
    fn slice(&self, name: &str, from: usize, to: usize) -> PathBuf {
        let text =
            std::fs::read_to_string(repo_root().join("tests/fixtures/churn/customers-10k.csv"))
                .unwrap();
        let mut lines = text.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        for l in lines.skip(from).take(to - from) {
            out.push_str(l);
            out.push('\n');
        }
        let p = self.path(name);
        std::fs::write(&p, out).unwrap();
        p
    }

    fn produce(&self, csv: &Path) {
        self.expect(
            0,
            &[
                "produce",
                "--topic",
                &self.topics.input,
                "records",
                csv.to_str().unwrap(),
                "--key",
                "customer_id",
            ],
        );
    }
}

/// The worker's `/metrics` text.
fn scrape(port: u16) -> String {
    try_http_get(port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

/// Waits until a line of the worker's metrics starts with `series` and ends with `value`.
fn wait_metric(port: u16, series: &str, value: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let text = scrape(port);
        if text
            .lines()
            .any(|l| l.starts_with(series) && l.ends_with(&format!(" {value}")))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{series} never became {value}:\n{}", scrape(port));
}

fn serving(version: &str) -> String {
    format!(
        "{}{{model=\"churn\",version=\"{version}\",role=\"production\"}}",
        argus_worker::metrics::MODEL_SERVING
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_follows_promotion_through_the_gate_rollback_and_a_tampered_artifact() {
    let life = Life {
        registry: unique("argus.models.life"),
        dir: tempfile::tempdir().unwrap(),
        topics: Topics::create(3).await,
    };
    let root = repo_root();
    let bundle = |p: &str| root.join(p).to_str().unwrap().to_string();
    for b in [
        "models/churn",
        "models/gate/churn-v2",
        "models/gate/churn-v3",
    ] {
        life.expect(0, &["model", "register", &bundle(b), "--reason", "trained"]);
    }
    // Evaluations on the fixed test set (files; the registry records the gate's decision).
    let test_set = bundle("models/gate/churn-test.csv");
    let eval = |b: &str, out: &str| {
        let out = life.path(out);
        let b = if b.contains('@') {
            b.to_string()
        } else {
            bundle(b)
        };
        life.expect(
            0,
            &[
                "model",
                "evaluate",
                &b,
                "--test-set",
                &test_set,
                "--label-column",
                "churned",
                "--id-column",
                "customer_id",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        out.to_str().unwrap().to_string()
    };
    let (e1, e2, e3) = (
        eval("models/churn", "e1.json"),
        eval("models/gate/churn-v2", "e2.json"),
        eval("models/gate/churn-v3", "e3.json"),
    );
    // A registered version evaluates from its verified artifact, to the same bytes.
    let registered = eval("churn@2", "e2-registered.json");
    assert_eq!(
        std::fs::read(&registered).unwrap(),
        std::fs::read(&e2).unwrap(),
        "the registered artifact evaluates as the bundle it was made from"
    );
    // The weak v2 goes to production first (no production to compare with: forced).
    life.expect(
        0,
        &[
            "model",
            "promote",
            "churn@2",
            "--to",
            "production",
            "--force",
            "--reason",
            "first",
        ],
    );

    let port = free_port();
    let worker_cache = life.path("worker-cache");
    let worker = std::process::Command::new(argus_bin())
        .args(["work", "--brokers", &brokers(), "--group", &unique("g")])
        .args(["--input", &life.topics.input])
        .args(life.topics.output_flags())
        .args(["--follow", "churn", "--registry-topic", &life.registry])
        .args([
            "--worker-id",
            "life",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--create-topics", "0", "--drain-timeout", "10s"])
        .env("ARGUS_REGISTRY__CACHE_DIR", &worker_cache)
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(e2e_log("lifecycle-worker"))
        .spawn()
        .expect("argus work starts");
    let _reap = Reap(worker);
    wait_metric(port, &serving("2"), "1");

    // Phase 1: v2 serves.
    life.produce(&life.slice("p1.csv", 0, 300));
    // The gate: v1 beats production v2 significantly (DeLong on ROC AUC): promoted.
    let out = life.expect(
        0,
        &[
            "model",
            "promote",
            "churn@1",
            "--to",
            "production",
            "--evaluation",
            &e1,
            "--baseline",
            &e2,
        ],
    );
    assert!(out.contains("gate:"), "{out}");
    wait_metric(port, &serving("1"), "1");
    // Phase 2: v1 serves.
    life.produce(&life.slice("p2.csv", 300, 600));
    // v3 is not significantly better than v1: refused (exit 1), nothing changes.
    let out = life.expect(
        1,
        &[
            "model",
            "promote",
            "churn@3",
            "--to",
            "production",
            "--evaluation",
            &e3,
            "--baseline",
            &e1,
        ],
    );
    assert!(out.contains("refused"), "{out}");
    // Evaluations of the wrong bundles are not a gate (exit 64).
    life.expect(
        64,
        &[
            "model",
            "promote",
            "churn@3",
            "--to",
            "production",
            "--evaluation",
            &e3,
            "--baseline",
            &e2,
        ],
    );
    let shown = life.argus(&["model", "show", "churn@1", "--json"]);
    assert!(shown.status.success());
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let gate = v["history"]
        .as_array()
        .and_then(|h| h.iter().rev().find(|e| !e["gate"].is_null()))
        .map(|e| e["gate"].clone());
    let gate = gate.expect("the promotion recorded the gate's decision");
    assert_eq!(gate["passed"], true, "{gate}");
    // The evaluation the gate used is on the version's record.
    let evals = v["evaluations"].as_array().expect("evaluations");
    assert!(
        evals
            .iter()
            .any(|e| e["metric"] == "roc_auc" && e["n"] == 2000),
        "{evals:?}"
    );
    assert!(gate["p_value"].as_f64().unwrap() < 0.05, "{gate}");

    // Rollback: production back to v2.
    life.expect(
        0,
        &["model", "rollback", "churn", "--reason", "test rollback"],
    );
    wait_metric(port, &serving("2"), "1");
    life.produce(&life.slice("p3.csv", 600, 900));

    // A tampered artifact: v3's first chunk rewritten in the registry topic. Forced to
    // production, it is refused by the worker (sha256), and v2 keeps serving.
    produce_raw(
        &life.registry,
        "chunk/churn/3/000000",
        b"not the bundle",
        &[],
    )
    .await;
    life.expect(
        0,
        &[
            "model",
            "promote",
            "churn@3",
            "--to",
            "production",
            "--force",
            "--reason",
            "tamper test",
        ],
    );
    wait_metric(
        port,
        &format!(
            "{}{{reason=\"verify\"}}",
            argus_worker::metrics::MODEL_LOAD_FAILURES
        ),
        "1",
    );
    life.produce(&life.slice("p4.csv", 900, 1200));

    // Every input once; each phase by the version that served it.
    let msgs = read_until(&life.topics.predictions, Duration::from_secs(60), |m| {
        m.len() >= 1200
    });
    let preds: Vec<argus_wire::Prediction> = msgs
        .iter()
        .filter_map(|m| serde_json::from_slice(m.payload()?).ok())
        .collect();
    let ids: Vec<(i32, i64)> = preds
        .iter()
        .map(|p| (p.input.partition, p.input.offset))
        .collect();
    let c = counts(&ids);
    assert_eq!(c.len(), 1200, "every input predicted");
    assert!(c.values().all(|n| *n == 1), "no input scored twice");
    let text =
        std::fs::read_to_string(root.join("tests/fixtures/churn/customers-10k.csv")).unwrap();
    let phase: BTreeMap<String, usize> = text
        .lines()
        .skip(1)
        .take(1200)
        .enumerate()
        .map(|(i, l)| (l.split(',').next().unwrap().to_string(), i / 300))
        .collect();
    let expected = ["2", "1", "2", "2"];
    for p in &preds {
        let key = p.input.key.clone().unwrap();
        let ph = phase[&key];
        assert_eq!(
            p.model.version,
            expected[ph],
            "customer {key} in phase {}",
            ph + 1
        );
    }
}

/// A bundle directory under `life`: `from`'s manifest and model as schema v3 with
/// `[monitoring] profile = "reference.json"` holding `profile` (bytes).
fn bundle_with_profile(life: &Life, from: &str, name: &str, profile: &[u8]) -> PathBuf {
    let dir = life.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let src = repo_root().join(from);
    copy_bundle_files(&src, &dir);
    let text = std::fs::read_to_string(src.join("manifest.toml")).unwrap();
    let text = text.replace("argus.bundle/v2", "argus.bundle/v3")
        + "\n[monitoring]\nprofile = \"reference.json\"\ngate_metric = \"roc_auc\"\n";
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
    std::fs::write(dir.join("reference.json"), profile).unwrap();
    dir
}

/// The drift reports on `topic` (every one so far, after at least `n` naming `version`).
fn reports_naming(topic: &str, version: &str, n: usize) -> Vec<serde_json::Value> {
    let msgs = read_until(topic, Duration::from_secs(60), |m| {
        m.iter()
            .filter_map(|m| serde_json::from_slice::<serde_json::Value>(m.payload()?).ok())
            .filter(|r| r["model"]["version"] == version)
            .count()
            >= n
    });
    msgs.iter()
        .filter_map(|m| serde_json::from_slice(m.payload()?).ok())
        .collect()
}

/// `argus drift watch --follow churn`: the sidecar watches against the production
/// version's own reference profile (shipped in its bundle) and names it in its reports;
/// promoting another version switches profile and name; a version whose profile does not
/// read leaves the last one watching, counted by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_sidecar_follows_the_production_versions_reference() {
    let life = Life {
        registry: unique("argus.models.drift"),
        dir: tempfile::tempdir().unwrap(),
        topics: Topics::create(2).await,
    };
    let profile = |id: &str, from: usize| {
        let out = life.path(&format!("{id}.json"));
        let csv = life.slice(&format!("{id}.csv"), from, from + 2000);
        life.expect(
            0,
            &[
                "drift",
                "profile",
                "--records",
                csv.to_str().unwrap(),
                "--ignore",
                "customer_id",
                "--id",
                id,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        std::fs::read(out).unwrap()
    };
    let b1 = bundle_with_profile(&life, "models/churn", "b1", &profile("ref-1", 0));
    let b2 = bundle_with_profile(&life, "models/gate/churn-v2", "b2", &profile("ref-2", 2000));
    let b3 = bundle_with_profile(
        &life,
        "models/gate/churn-v3",
        "b3",
        b"{\"not\": \"a profile\"}",
    );
    for b in [&b1, &b2, &b3] {
        life.expect(0, &["model", "register", b.to_str().unwrap()]);
    }
    let promote = |v: &str| {
        life.expect(
            0,
            &[
                "model",
                "promote",
                v,
                "--to",
                "production",
                "--force",
                "--reason",
                "drift test",
            ],
        )
    };
    // No production yet: nothing to watch against, a usage error saying what to do.
    let text = life.expect(
        64,
        &[
            "drift",
            "watch",
            "--follow",
            "churn",
            "--input",
            &life.topics.input,
        ],
    );
    assert!(text.contains("no production version"), "{text}");
    promote("churn@1");

    let port = free_port();
    let reports = unique("drift.reports");
    let sidecar = std::process::Command::new(argus_bin())
        .args([
            "drift",
            "watch",
            "--brokers",
            &brokers(),
            "--follow",
            "churn",
        ])
        .args([
            "--registry-topic",
            &life.registry,
            "--input",
            &life.topics.input,
        ])
        .args(["--predictions", "", "--reports-topic", &reports])
        .args([
            "--panes-topic",
            &unique("drift.panes"),
            "--group",
            &unique("drift"),
        ])
        .args(["--pane", "1s", "--window-panes", "2", "--lateness", "0s"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("ARGUS_REGISTRY__CACHE_DIR", life.path("sidecar-cache"))
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(e2e_log("lifecycle-drift"))
        .spawn()
        .expect("argus drift watch starts");
    let _reap = Reap(sidecar);
    let info = |id: &str| {
        format!(
            "{}{{reference_id=\"{id}\"",
            argus_drift::metrics::REFERENCE_INFO
        )
    };
    wait_metric(port, &info("ref-1"), "1");
    // Four seconds of records: complete windows reported under v1's name.
    let rate = |csv: &Path| {
        life.expect(
            0,
            &[
                "produce",
                "--topic",
                &life.topics.input,
                "--rate-limit",
                "250",
                "records",
                csv.to_str().unwrap(),
                "--key",
                "customer_id",
            ],
        )
    };
    rate(&life.slice("live-1.csv", 4000, 5000));
    let seen = reports_naming(&reports, "1", 1);
    let first = seen.iter().find(|r| r["model"]["version"] == "1").unwrap();
    assert_eq!(first["model"]["id"], "churn", "{first}");
    assert_eq!(first["reference"]["id"], "ref-1", "{first}");

    // Promotion switches the reference and the name in reports.
    promote("churn@2");
    wait_metric(port, &info("ref-2"), "1");
    wait_metric(port, &info("ref-1"), "0");
    wait_metric(port, argus_drift::metrics::REFERENCE_SWITCHES, "1");
    rate(&life.slice("live-2.csv", 5000, 6000));
    let seen = reports_naming(&reports, "2", 1);
    let second = seen.iter().find(|r| r["model"]["version"] == "2").unwrap();
    assert_eq!(second["reference"]["id"], "ref-2", "{second}");

    // A version whose profile does not read: refused, counted, v2's reference stays.
    promote("churn@3");
    wait_metric(
        port,
        &format!(
            "{}{{reason=\"profile\"}}",
            argus_drift::metrics::REFERENCE_LOAD_FAILURES
        ),
        "1",
    );
    wait_metric(port, &info("ref-2"), "1");
    wait_metric(port, argus_drift::metrics::REFERENCE_SWITCHES, "1");
}
