//! `/metrics` as Prometheus reads it, from real `argus work` and `argus drift watch`
//! processes: every scrape passes `promtool check metrics` (HELP on every family, naming
//! and type lint), the counters an operator alerts on are there at 0 before any input, and
//! a partition moved to another worker leaves the first worker's scrape, and every metric
//! the deployment files use (alert rules, Grafana dashboards, KEDA queries under `deploy/`)
//! is exported by a live worker or sidecar.
//!
//! promtool must be on PATH (scripts/test installs Debian's `prometheus` package when it is
//! missing): without it these tests fail, they do not skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

/// The body of `GET /metrics`, once the endpoint answers 200 (within `within`).
fn scrape(port: u16, within: Duration) -> String {
    use std::io::Read;
    let start = Instant::now();
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            write!(s, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
            let mut text = String::new();
            let read = s.read_to_string(&mut text).is_ok();
            if read && (text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200")) {
                return text.split_once("\r\n\r\n").unwrap().1.to_owned();
            }
        }
        assert!(
            start.elapsed() < within,
            "no /metrics on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The `partition` labels of `name`'s samples for `topic`.
fn partitions(text: &str, name: &str, topic: &str) -> BTreeSet<String> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| l.contains(&format!("topic=\"{topic}\"")))
        .filter_map(|l| l.split("partition=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_scrapes_pass_promtool_and_alerting_counters_start_at_zero() {
    let topics = Topics::create(2).await;
    let dir = std::env::temp_dir().join(unique("argus-metrics"));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("profile.json");
    let out = Command::new(argus_bin())
        .args(["drift", "profile", "--synthetic", "40", "--cameras", "2"])
        .args(["--width", "64", "--height", "48", "--model"])
        .arg(repo_root().join("models/camera-person"))
        .arg("-o")
        .arg(&profile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (worker_port, drift_port) = (free_port(), free_port());
    let _worker =
        WorkerProcess::spawn_serving(&topics, &unique("metrics"), "metrics-w0", worker_port, &[]);
    let profile = profile.to_str().unwrap();
    let (reports, panes, group) = (unique("drift"), unique("drift.panes"), unique("drift"));
    let metrics_addr = format!("127.0.0.1:{drift_port}");
    let _drift = spawn_argus(
        "metrics-drift",
        [
            "drift",
            "watch",
            "--brokers",
            &brokers(),
            "--profile",
            profile,
            "--input",
            &topics.input,
            "--predictions",
            &topics.predictions,
            "--reports-topic",
            &reports,
            "--panes-topic",
            &panes,
            "--group",
            &group,
            "--pane",
            "1s",
            "--window-panes",
            "1",
            "--lateness",
            "0s",
            // Every frame sampled, so one pane holds enough for the tests (30 per feature).
            "--max-fps",
            "0",
            "--metrics-addr",
            &metrics_addr,
        ],
    );

    // The first scrapes, before any input: alerting counters exist at 0.
    let first = scrape(worker_port, Duration::from_secs(60));
    promtool_check("worker's first", &first);
    for series in [
        "argus_worker_dlq_total{reason=\"decode\"}".to_owned(),
        "argus_worker_dlq_total{reason=\"timeout\"}".to_owned(),
        "argus_worker_outputs_total{kind=\"prediction\",outcome=\"error\"}".to_owned(),
        format!("argus_worker_inputs_total{{topic=\"{}\"}}", topics.input),
        "argus_worker_consumer_errors_total".to_owned(),
        "argus_kafka_commit_failures_total".to_owned(),
        "argus_kafka_rebalances_total{kind=\"error\"}".to_owned(),
    ] {
        assert_eq!(sample(&first, &series), Some(0.0), "{series}:\n{first}");
    }
    let drift_first = scrape(drift_port, Duration::from_secs(60));
    promtool_check("sidecar's first", &drift_first);
    for series in [
        "argus_drift_reports_total{status=\"drift\"}".to_owned(),
        "argus_drift_segments_unexported_total".to_owned(),
        "argus_drift_records_invalid_total{reason=\"envelope\"}".to_owned(),
        format!(
            "argus_drift_records_total{{topic=\"{}\",outcome=\"late\"}}",
            topics.input
        ),
    ] {
        assert_eq!(
            sample(&drift_first, &series),
            Some(0.0),
            "{series}:\n{drift_first}"
        );
    }

    // Some inputs, one of them undecodable (to the DLQ).
    produce_synthetic(&topics.input, 12, 2, 7, (64, 48), None).await;
    produce_raw(&topics.input, "cam-x", b"not an envelope", &[]).await;
    let topic = topics.predictions.clone();
    tokio::task::spawn_blocking(move || predictions_until(&topic, Duration::from_secs(90), 12))
        .await
        .unwrap();
    let start = Instant::now();
    let busy = loop {
        let text = scrape(worker_port, Duration::from_secs(10));
        if sample(&text, "argus_worker_dlq_total{reason=\"decode\"}") == Some(1.0) {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the DLQ counter never moved:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    promtool_check("worker's busy", &busy);
    assert!(
        busy.contains("argus_worker_inference_seconds_bucket{"),
        "{busy}"
    );
    let sampled = format!(
        "argus_drift_records_total{{topic=\"{}\",outcome=\"sampled\"}}",
        topics.input
    );
    let start = Instant::now();
    let drift_busy = loop {
        let text = scrape(drift_port, Duration::from_secs(10));
        if sample(&text, &sampled).is_some_and(|n| n > 0.0) {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the sidecar sampled nothing:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    promtool_check("sidecar's busy", &drift_busy);

    // Frames over a few seconds of capture time, so the sidecar closes windows and reports
    // (per-feature tests, alarm and CBPE gauges: 40 frames a pane, above the 30 a test needs), and the worker's per-partition gauges are set.
    produce_synthetic(&topics.input, 160, 2, 8, (64, 48), Some(40.0)).await;
    let used = names_used_by_deploy_files();
    assert!(used.len() > 20, "too few names found in deploy/: {used:?}");
    let start = Instant::now();
    loop {
        let exported: BTreeSet<String> = [
            scrape(worker_port, Duration::from_secs(10)),
            scrape(drift_port, Duration::from_secs(10)),
        ]
        .iter()
        .flat_map(|text| exported_names(text))
        .collect();
        let missing: Vec<&String> = used.difference(&exported).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "deploy/ (rules, dashboards, KEDA) uses metrics no live worker or sidecar exports: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The metric families a scrape exports (histograms by their base name).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(base_name)
        .collect()
}

/// A histogram's series name without its `_bucket`/`_sum`/`_count` suffix.
fn base_name(name: &str) -> String {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
        .to_owned()
}

/// The JSON and YAML files under `dir`, at any depth (none if it does not exist).
fn json_and_yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.map(|e| e.unwrap().path()) {
        if path.is_dir() {
            json_and_yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Every `argus_…` and `process_…` metric name written in the alert rules, the Grafana
/// dashboards and the Kubernetes manifests (KEDA queries: base, components and every
/// overlay), less the recording rules' own names.
fn names_used_by_deploy_files() -> BTreeSet<String> {
    let root = repo_root().join("deploy");
    let mut files = vec![root.join("prometheus/rules.yml")];
    json_and_yaml_files(&root.join("grafana/dashboards"), &mut files);
    json_and_yaml_files(&root.join("k8s"), &mut files);
    let mut used = BTreeSet::new();
    let mut recorded = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("- record:") {
                recorded.insert(name.trim().to_owned());
            }
            let mut rest = line;
            while let Some(at) = rest.find(['a', 'p']) {
                let tail = &rest[at..];
                let preceded = rest[..at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let word = &tail[..end];
                if !preceded && (word.starts_with("argus_") || word.starts_with("process_")) {
                    used.insert(base_name(word));
                }
                rest = &tail[end.max(1)..];
            }
        }
    }
    &used - &recorded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_moved_by_a_scale_out_leave_the_first_workers_scrape() {
    let topics = Topics::create(4).await;
    let group = unique("metrics-scale");
    let port = free_port();
    let _first = WorkerProcess::spawn_serving(&topics, &group, "scale-w0", port, &[]);
    let all: BTreeSet<String> = (0..4).map(|p| p.to_string()).collect();
    let lag = "argus_worker_lag_records";
    let start = Instant::now();
    loop {
        let text = scrape(port, Duration::from_secs(60));
        if partitions(&text, lag, &topics.input) == all {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first worker never reported all 4 partitions:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let _second = WorkerProcess::spawn_serving(&topics, &group, "scale-w1", free_port(), &[]);
    // The moved partitions read 0 at once and leave within the idle timeout (15 s) after
    // the rebalance; the kept ones stay.
    let families = [
        "argus_worker_partition_stuck",
        "argus_worker_partition_drain_seconds",
        "argus_worker_oldest_in_flight_seconds",
        "argus_kafka_consumer_lag_records",
    ];
    let start = Instant::now();
    let text = loop {
        let text = scrape(port, Duration::from_secs(10));
        let kept = partitions(&text, lag, &topics.input);
        let others: Vec<_> = families
            .iter()
            .map(|f| (*f, partitions(&text, f, &topics.input)))
            .filter(|(_, listed)| !listed.is_subset(&kept))
            .collect();
        if kept.len() == 2 && others.is_empty() {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(75),
            "moved partitions still listed: {lag} {kept:?}, {others:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "moved partitions gone {:?} after the second worker started",
        start.elapsed()
    );
    promtool_check("scaled-out worker's", &text);
}
