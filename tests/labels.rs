//! `argus label` on the real broker: labels from CSV and JSON lines reach the labels topic
//! as `argus.label/v1` (every message valid against its schema), keyed by the input's key
//! (else the prediction id); a bad row is named with its line and skipped, or ends the run
//! with exit 65 under `--on-bad-row fail`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use std::process::{Command, Output};
use std::time::Duration;

fn label(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(argus_bin());
    c.arg("label")
        .args(["--brokers", &brokers()])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn");
    match stdin {
        None => c.output().unwrap(),
        Some(text) => {
            use std::io::Write;
            let mut child = c
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_from_csv_jsonl_and_stdin_reach_the_topic_valid_and_keyed() {
    let topic = unique("labels");
    create_topics(&[(&topic, 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("labels.csv");
    std::fs::write(
        &csv,
        "id,label,source,labelled_at,confidence,key\n\
         frames/0/1,person,annotator,2026-12-05T10:00:00Z,0.9,cam-1\n\
         frames/0/2,empty,annotator,,,cam-2\n\
         frames/0/3,person,oracle,,,\n\
         frames/1/4,empty,feedback,,,\n",
    )
    .unwrap();
    let out = label(&["--topic", &topic, csv.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("3 published, 1 bad rows skipped, 0 failed"),
        "{stdout}"
    );
    assert!(
        stderr.contains("line 4") && stderr.contains("oracle"),
        "{stderr}"
    );

    let jsonl = dir.path().join("labels.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": \"customers/0/7\", \"label\": \"churn\", \"labelled_at_us\": 5}\n",
    )
    .unwrap();
    let out = label(
        &[
            "--topic",
            &topic,
            "--source",
            "system",
            "--by",
            "billing",
            jsonl.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = label(
        &[
            "--topic", &topic, "--format", "csv", "--source", "feedback", "-",
        ],
        Some("id,label\ncustomers/1/9,stay\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Under --on-bad-row fail the bad row ends the run with exit 65 (bad data).
    let out = label(
        &[
            "--topic",
            &topic,
            "--on-bad-row",
            "fail",
            csv.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No file: usage.
    assert_eq!(label(&["--topic", &topic], None).status.code(), Some(64));

    // 3 + 1 + 1, then the failing run's 2 rows before its bad row.
    let msgs = read_until(&topic, Duration::from_secs(30), |m| m.len() >= 7);
    assert_eq!(msgs.len(), 7);
    let labels = validate_all(&msgs, argus_wire::LABEL_JSON_SCHEMA);
    let keyed: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            let l: argus_wire::Label = serde_json::from_slice(m.payload().unwrap()).unwrap();
            (
                l.id.clone(),
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    assert!(keyed.contains(&("frames/0/1".into(), "cam-1".into())));
    assert!(keyed.contains(&("frames/1/4".into(), "frames/1/4".into())));
    let churn = labels.iter().find(|l| l["id"] == "customers/0/7").unwrap();
    assert_eq!(churn["source"], "system");
    assert_eq!(churn["by"], "billing");
    assert_eq!(churn["labelled_at_us"], 5);
    let first = labels.iter().find(|l| l["id"] == "frames/0/1").unwrap();
    assert_eq!(first["labelled_at_us"], 1_796_464_800_000_000_i64);
    assert_eq!(first["confidence"], 0.9);
}

/// `produce synthetic --labels-topic --label-share 0.5 --label-delay 1s`: about half the
/// frames get a label, each naming a real input whose scene truth it states, published a
/// delay after the frame except those still waiting when the run ended (counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synthetic_producer_labels_a_share_of_frames_after_a_delay() {
    let (frames, labels) = (unique("frames"), unique("labels"));
    create_topics(&[(&frames, 2), (&labels, 2)]).await;
    let stdout = stdout_of_success(
        Command::new(argus_bin())
            .args([
                "produce",
                "--brokers",
                &brokers(),
                "--topic",
                &frames,
                "--count",
                "200",
            ])
            .args([
                "--labels-topic",
                &labels,
                "--label-share",
                "0.5",
                "--label-delay",
                "1s",
            ])
            .args(["synthetic", "--cameras", "4", "--fps", "25", "--seed", "7"])
            .args(["--width", "160", "--height", "120"])
            .env_remove("RUST_BACKTRACE"),
    );
    let early: usize = stdout
        .split("published (")
        .nth(1)
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    let inputs = read_until(&frames, Duration::from_secs(30), |m| m.len() >= 200);
    let by_id: std::collections::HashMap<String, (argus_wire::Envelope, i64)> = inputs
        .iter()
        .map(|m| {
            let env = argus_wire::decode_envelope(m.payload().unwrap()).unwrap();
            let id = format!("{frames}/{}/{}", m.partition(), m.offset());
            (id, (env, m.timestamp().to_millis().unwrap()))
        })
        .collect();
    // The producer has exited: every label is on the topic (5 s to read them all).
    let msgs = read_until(&labels, Duration::from_secs(5), |_| false);
    // Binomial(200, ½): sd 7.1; 5 sd either way.
    assert!((65..=135).contains(&msgs.len()), "{} labels", msgs.len());
    let mut before_delay = 0;
    for (m, l) in msgs
        .iter()
        .zip(validate_all(&msgs, argus_wire::LABEL_JSON_SCHEMA))
    {
        let l: argus_wire::Label = serde_json::from_value(l).unwrap();
        let (env, sent_ms) = &by_id[&l.id];
        let camera: u32 = env.source_id.trim_start_matches("cam-").parse().unwrap();
        let truth = argus_producer::scene::has_person(7, camera, env.sequence);
        assert_eq!(l.label, if truth { "person" } else { "empty" }, "{}", l.id);
        assert_eq!(l.key.as_deref(), Some(env.source_id.as_str()));
        if m.timestamp().to_millis().unwrap() - sent_ms < 1000 {
            before_delay += 1;
        }
    }
    assert!(
        before_delay <= early,
        "{before_delay} labels before their delay, {early} at the end"
    );
}

/// `produce records --label-column churned --label-map 1=churn,0=stay`: the column never
/// reaches the model's topic, and every row's label is its mapped value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_producer_strips_the_label_column_and_publishes_it() {
    let (input, labels) = (unique("customers"), unique("labels"));
    create_topics(&[(&input, 2), (&labels, 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_root().join("models/gate/churn-test.csv")).unwrap();
    let csv = dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        text.lines().take(301).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    let stdout = stdout_of_success(
        Command::new(argus_bin())
            .args([
                "produce",
                "--brokers",
                &brokers(),
                "--topic",
                &input,
                "--labels-topic",
                &labels,
            ])
            .args(["records", csv.to_str().unwrap(), "--key", "customer_id"])
            .args(["--label-column", "churned", "--label-map", "1=churn,0=stay"])
            .env_remove("RUST_BACKTRACE"),
    );
    assert!(stdout.contains("labels 300 published"), "{stdout}");
    let truth: std::collections::HashMap<String, String> = text
        .lines()
        .skip(1)
        .take(300)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            let label = if *cols.last().unwrap() == "1" {
                "churn"
            } else {
                "stay"
            };
            (cols[0].to_string(), label.to_string())
        })
        .collect();
    let records = read_until(&input, Duration::from_secs(30), |m| m.len() >= 300);
    for m in &records {
        let env = argus_wire::decode_envelope(m.payload().unwrap()).unwrap();
        let argus_wire::Payload::Record(r) = env.payload else {
            panic!("not a record")
        };
        assert!(
            r.fields.iter().all(|f| f.name != "churned"),
            "the label column was sent"
        );
    }
    let msgs = read_until(&labels, Duration::from_secs(30), |m| m.len() >= 300);
    assert_eq!(msgs.len(), 300);
    for l in validate_all(&msgs, argus_wire::LABEL_JSON_SCHEMA) {
        let key = l["key"].as_str().unwrap();
        assert_eq!(l["label"].as_str().unwrap(), truth[key], "{key}");
    }
}
