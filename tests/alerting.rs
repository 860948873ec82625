//! The project's alerting end to end: the real Prometheus binary (Debian's `prometheus`
//! package, which scripts/test installs with promtool) runs the project's scrape config
//! (`deploy/prometheus/prometheus.yml`) and alert rules (`deploy/prometheus/rules.yml`)
//! against a real `argus work` on the real broker while a producer runs, and sees
//! `ArgusNoWorkerConsuming` stay inactive while the worker consumes and fire once it stops.
//!
//! What the test changes in its temporary copies, and why: the scrape config's service
//! discovery (compose DNS names) becomes the worker's loopback address, jobs other than
//! `argus-worker` are left out (nothing else runs here), and the intervals become 1 s; in
//! the rules every `for:` becomes 3 s, so the test takes seconds, not minutes. Expressions,
//! labels, job names and annotations stay the project's. The `for:` durations themselves are
//! covered by `promtool test rules` (deploy/prometheus/rules.test.yml).
//!
//! A second test runs a worker that is up and answers `/metrics` but is not a member of the
//! group (its input topic does not exist): `ArgusNoWorkerConsuming` fires there too, with
//! `up` at 1, because no worker owns a partition.
//!
//! While the worker consumes, every query of the fleet dashboard
//! (`deploy/grafana/dashboards/argus-fleet.json`, its variables matching everything) and
//! every series selector of the alert rules on `up` and the worker's metrics returns data
//! from that Prometheus: labels and selectors are right, not only metric names.
//!
//! Without `prometheus` on PATH this test fails; it does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use serde_yaml_ng::{Mapping, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The alert this test drives.
const ALERT: &str = "ArgusNoWorkerConsuming";

/// The project's scrape config, scraping only the worker at `target` every second, with
/// `rules` as its rule file.
fn scrape_config(target: &str, rules: &Path) -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/prometheus.yml"))
        .expect("deploy/prometheus/prometheus.yml");
    let mut config: Value = serde_yaml_ng::from_str(&text).unwrap();
    let global = config["global"].as_mapping_mut().expect("a global section");
    global.insert("scrape_interval".into(), "1s".into());
    global.insert("evaluation_interval".into(), "1s".into());
    config["rule_files"] = Value::Sequence(vec![rules.to_str().unwrap().into()]);
    let jobs = config["scrape_configs"]
        .as_sequence_mut()
        .expect("scrape_configs");
    jobs.retain(|job| job["job_name"] == "argus-worker");
    assert_eq!(
        jobs.len(),
        1,
        "the project's config has an argus-worker job"
    );
    let job = jobs[0].as_mapping_mut().unwrap();
    assert!(
        job.remove("dns_sd_configs").is_some(),
        "the argus-worker job discovers workers by DNS (compose); the test replaces that"
    );
    let mut static_config = Mapping::new();
    static_config.insert("targets".into(), Value::Sequence(vec![target.into()]));
    job.insert(
        "static_configs".into(),
        Value::Sequence(vec![Value::Mapping(static_config)]),
    );
    serde_yaml_ng::to_string(&config).unwrap()
}

/// The project's alert rules with every `for:` at 3 s.
fn rules_with_short_for() -> String {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/rules.yml"))
        .expect("deploy/prometheus/rules.yml");
    let mut rules: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut found = false;
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            found |= rule["alert"] == ALERT;
            if let Some(rule) = rule.as_mapping_mut() {
                if rule.contains_key("for") {
                    rule.insert("for".into(), "3s".into());
                }
            }
        }
    }
    assert!(found, "rules.yml has no alert {ALERT}");
    serde_yaml_ng::to_string(&rules).unwrap()
}

/// `GET path` on the local Prometheus, as JSON (`None` until it answers 200).
fn api(port: u16, path: &str) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Percent-encodes a PromQL query for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The scalar value of an instant query's single result, if there is one.
fn query_value(port: u16, query: &str) -> Option<f64> {
    let answer = api(port, &format!("/api/v1/query?query={}", encode(query)))?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// The state of `ALERT` (`pending`, `firing`), or `None` when inactive; with its labels.
fn alert_state(port: u16) -> Option<(String, serde_json::Value)> {
    let answer = api(port, "/api/v1/alerts")?;
    answer["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == ALERT)
        .map(|a| {
            (
                a["state"].as_str().unwrap_or("").to_owned(),
                a["labels"].clone(),
            )
        })
}

/// Every panel query of a dashboard, as `(panel title, expression)`, with Grafana's
/// variables replaced: intervals by `1m`, the others (used in `=~` matchers) by `.*`.
fn dashboard_queries(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    let board: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"].as_str().unwrap().to_owned();
            for interval in ["$__rate_interval", "$__interval", "$__range"] {
                expr = expr.replace(interval, "1m");
            }
            for var in board["templating"]["list"].as_array().unwrap() {
                let name = var["name"].as_str().unwrap();
                expr = expr.replace(&format!("${{{name}}}"), ".*");
                expr = expr.replace(&format!("${name}"), ".*");
            }
            assert!(!expr.contains('$'), "{file}: unknown variable in {expr}");
            out.push((panel["title"].as_str().unwrap_or("?").to_owned(), expr));
        }
    }
    out
}

/// A real Prometheus with the project's config and rules (see [`scrape_config`] and
/// [`rules_with_short_for`]) scraping the worker at `target`; its port, the process (killed
/// when dropped) and its temporary directory.
fn start_prometheus(target: &str) -> (u16, Reap, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(unique("argus-alerting"));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, rules_with_short_for()).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, scrape_config(target, &rules)).unwrap();
    let port = free_port();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(e2e_log("alerting-prometheus"))
        .spawn()
        .expect("the prometheus binary (Debian's prometheus package; scripts/test installs it)");
    (port, Reap(prometheus), dir)
}

/// The prefix of Argus' metric names (written in two pieces: tests/metric_names.rs allows
/// whole names only in the crates' metrics.rs).
const METRIC_PREFIX: &str = concat!("argus", "_");

/// Every series selector of the alert rules that a worker's scrape answers (`up` and the
/// worker's own metrics; the drift sidecar's are left out, no sidecar runs here), as
/// `(alert, count(selector))`: a selector with a label value the worker never exports
/// (a bucket `le` that does not exist, an `outcome` misspelt, a job regex that misses the
/// job) would leave its alert silent for ever.
fn rule_selectors() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("deploy/prometheus/rules.yml")).unwrap();
    let rules: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let (Some(alert), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) else {
                continue;
            };
            let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
            let mut at = 0;
            while at < expr.len() {
                let rest = &expr[at..];
                let Some(start) = rest.find(|c: char| ident(c)) else {
                    break;
                };
                let preceded = expr[..at + start].chars().last();
                let word_len = rest[start..]
                    .find(|c: char| !ident(c))
                    .unwrap_or(rest.len() - start);
                let word = &rest[start..start + word_len];
                let mut end = start + word_len;
                let is_metric = (word == "up" || word.starts_with(METRIC_PREFIX))
                    && !word.starts_with(concat!("argus", "_drift"))
                    && preceded.is_none_or(|c| !ident(c) && c != '$' && c != '.');
                if is_metric {
                    let mut selector = word.to_owned();
                    if rest[end..].starts_with('{') {
                        let close = rest[end..].find('}').unwrap();
                        selector.push_str(&rest[end..end + close + 1]);
                        end += close + 1;
                    }
                    out.push((alert.to_owned(), format!("count({selector})")));
                }
                at += end;
            }
        }
    }
    out
}

/// Polls `check` every 200 ms until it returns `Some`, failing after `within`.
fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_consuming_fires_in_a_real_prometheus_when_the_worker_stops() {
    let topics = Topics::create(2).await;
    let worker_port = free_port();
    let worker = WorkerProcess::spawn_serving(
        &topics,
        &unique("alerting"),
        "alerting-w0",
        worker_port,
        &[],
    );
    let _producer = spawn_argus(
        "alerting-producer",
        [
            "produce",
            "--brokers",
            &brokers(),
            "--topic",
            &topics.input,
            "--duration",
            "180s",
            "synthetic",
            "--cameras",
            "2",
            "--fps",
            "10",
            "--width",
            "64",
            "--height",
            "48",
        ],
    );

    let (prom_port, _prometheus, dir) = start_prometheus(&format!("127.0.0.1:{worker_port}"));

    // Inactive while the worker is scraped and consuming: first Prometheus sees it take
    // inputs, then the alert (possibly pending from an evaluation before the first scrape)
    // stays absent for longer than its `for:`.
    wait_for(
        "Prometheus sees the worker up and consuming",
        Duration::from_secs(90),
        || {
            let up = query_value(prom_port, r#"sum(up{job="argus-worker"})"#)?;
            let rate = query_value(prom_port, "sum(rate(argus_worker_inputs_total[1m]))")?;
            (up == 1.0 && rate > 0.0).then_some(())
        },
    );
    wait_for(
        &format!("{ALERT} inactive while the worker consumes"),
        Duration::from_secs(30),
        || alert_state(prom_port).is_none().then_some(()),
    );
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(6) {
        assert_eq!(
            alert_state(prom_port),
            None,
            "{ALERT} must stay inactive while the worker consumes"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every fleet dashboard query, and every selector of the alert rules on the worker's
    // metrics, has data while the worker consumes (per-partition lag comes with
    // librdkafka's 5 s statistics: the deadline leaves room for it).
    let mut queries = dashboard_queries("deploy/grafana/dashboards/argus-fleet.json");
    assert!(queries.len() > 20, "{queries:?}");
    let selectors = rule_selectors();
    assert!(selectors.len() > 10, "{selectors:?}");
    eprintln!("alert rule selectors checked for data: {selectors:?}");
    queries.extend(selectors);
    let start = Instant::now();
    loop {
        let empty: Vec<&(String, String)> = queries
            .iter()
            .filter(|(_, expr)| {
                let answer = api(prom_port, &format!("/api/v1/query?query={}", encode(expr)));
                answer.is_none_or(|a| a["data"]["result"].as_array().is_none_or(|r| r.is_empty()))
            })
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "fleet dashboard queries or alert rule selectors without data from a consuming worker (wrong labels or selectors?): {empty:#?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // Stop the worker while the producer runs: the alert goes pending, then fires.
    let status = worker.terminate(Duration::from_secs(30));
    assert!(status.success(), "the worker drains and exits 0: {status}");
    let stopped = Instant::now();
    let labels = wait_for(
        &format!("{ALERT} firing after the worker stopped"),
        Duration::from_secs(60),
        || match alert_state(prom_port) {
            Some((state, labels)) if state == "firing" => Some(labels),
            _ => None,
        },
    );
    assert_eq!(labels["severity"], "critical", "{labels}");
    eprintln!(
        "{ALERT} fired {:.1} s after the worker stopped (scrape and evaluation every 1 s, for: 3 s)",
        stopped.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Workers that run but are not members of the group (here: the input topic does not exist;
/// also a refused group, an unreachable coordinator) answer `/metrics`, so `up` is 1, but
/// own no partition: nothing is consumed, and the alert must say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_consuming_fires_for_a_worker_that_is_up_but_not_in_the_group() {
    let outputs = Topics::create(1).await;
    let topics = Topics {
        input: unique("frames-missing"),
        ..outputs
    };
    let worker_port = free_port();
    let _worker = WorkerProcess::spawn_serving(
        &topics,
        &unique("alerting-missing"),
        "alerting-missing-w0",
        worker_port,
        &[],
    );
    let (prom_port, _prometheus, dir) = start_prometheus(&format!("127.0.0.1:{worker_port}"));
    // Firing while the worker has been up for 8 s, longer than `for:` (3 s) plus a few
    // evaluations: not a leftover of scrapes that failed while the worker was starting.
    let up_for_8s = r#"min_over_time(up{job="argus-worker"}[8s]) == 1 and count_over_time(up{job="argus-worker"}[8s]) >= 7"#;
    let start = Instant::now();
    let labels = wait_for(
        &format!("{ALERT} firing while the worker is up"),
        Duration::from_secs(60),
        || match alert_state(prom_port) {
            Some((state, labels)) if state == "firing" => {
                query_value(prom_port, up_for_8s).map(|_| labels)
            }
            _ => None,
        },
    );
    assert_eq!(labels["severity"], "critical", "{labels}");
    eprintln!(
        "{ALERT} firing {:.1} s after the start, the worker up (its input topic {} does not exist)",
        start.elapsed().as_secs_f64(),
        topics.input
    );
    let _ = std::fs::remove_dir_all(dir);
}
