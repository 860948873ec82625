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
