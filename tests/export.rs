//! `argus export-training` on the real broker: churn records scored by a real worker,
//! labels published for some of them (with a duplicate, a conflict, a broken message and
//! one for an input that never was), and the export of a time range of the labels: one
//! row per labelled input with its own fields, the label that counts, and the prediction
//! and model version that scored it; the summary counts what was left out and why.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::Message;
use argus_wire::{Label, LabelSource, Prediction};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

async fn send_label(producer: &FutureProducer, topic: &str, payload: &[u8], key: &str, ts: i64) {
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .timestamp(ts),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

fn label(p: &Prediction, class: &str, at_us: i64) -> Vec<u8> {
    let mut l = Label::new(p.id.clone(), class, LabelSource::Feedback);
    l.key = p.input.key.clone();
    l.labelled_at_us = at_us;
    serde_json::to_vec(&l).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_training_writes_labelled_records_with_their_predictions() {
    let topics = Topics::create(2).await;
    let labels_topic = unique("labels");
    create_topics(&[(&labels_topic, 2)]).await;
    let dir = tempfile::tempdir().unwrap();
    // 200 customers through a real worker.
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/churn/customers-10k.csv"))
        .unwrap();
    let rows: Vec<&str> = text.lines().take(201).collect();
    let csv = dir.path().join("customers.csv");
    std::fs::write(&csv, rows.join("\n") + "\n").unwrap();
    stdout_of_success(
        Command::new(argus_bin())
            .args(["produce", "--brokers", &brokers(), "--topic", &topics.input])
            .args(["records", csv.to_str().unwrap(), "--key", "customer_id"])
            .env_remove("RUST_BACKTRACE"),
    );
    let worker = Command::new(argus_bin())
        .args(["work", "--brokers", &brokers(), "--group", &unique("g")])
        .args(["--input", &topics.input])
        .args(topics.output_flags())
        .args([
            "--model",
            repo_root().join("models/churn").to_str().unwrap(),
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--create-topics", "0"])
        .env_remove("RUST_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(e2e_log("export-worker"))
        .spawn()
        .unwrap();
    let _reap = Reap(worker);
    let msgs = read_until(&topics.predictions, Duration::from_secs(90), |m| {
        m.len() >= 200
    });
    let mut preds: Vec<Prediction> = msgs
        .iter()
        .filter_map(|m| serde_json::from_slice(m.payload()?).ok())
        .collect();
    preds.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(preds.len(), 200, "every customer scored");

    // Labels: 60 at t0 (in range), 40 at t0 + 60 s (out of range); within range a duplicate,
    // a conflict (later, so it counts), a broken message and an id with no input.
    let producer: FutureProducer = settings().producer("test-labels").unwrap();
    let t0 = argus_wire::now_us() / 1000;
    let class = |i: usize| if i % 3 == 0 { "churn" } else { "stay" };
    // (Kafka finds a time's offset by the first record at or after it, so labels are sent
    // in time order, as a live labelling tool does.)
    for (i, p) in preds.iter().enumerate().take(60) {
        let l = label(p, class(i), t0 * 1000);
        send_label(&producer, &labels_topic, &l, &p.id, t0).await;
    }
    let (dup, conflict) = (&preds[1], &preds[2]);
    let l = label(dup, class(1), t0 * 1000);
    send_label(&producer, &labels_topic, &l, "d", t0).await;
    let l = label(conflict, "churn", (t0 + 1) * 1000);
    send_label(&producer, &labels_topic, &l, "c", t0).await;
    send_label(&producer, &labels_topic, b"{\"schema\": \"nope\"}", "x", t0).await;
    let mut ghost = preds[0].clone();
    ghost.id = format!("{}/0/999999", topics.input);
    let l = label(&ghost, "stay", t0 * 1000);
    send_label(&producer, &labels_topic, &l, "g", t0).await;
    for (i, p) in preds.iter().enumerate().take(100).skip(60) {
        let ts = t0 + 60_000;
        let l = label(p, class(i), ts * 1000);
        send_label(&producer, &labels_topic, &l, &p.id, ts).await;
    }
    let export = dir.path().join("export");
    let printed = stdout_of_success(
        Command::new(argus_bin())
            .args(["export-training", "--brokers", &brokers()])
            .args([
                "--labels-topic",
                &labels_topic,
                "--predictions",
                &topics.predictions,
            ])
            .args([
                "--from",
                &(t0 - 1000).to_string(),
                "--to",
                &(t0 + 30_000).to_string(),
            ])
            .args(["--out", export.to_str().unwrap()])
            .env_remove("RUST_BACKTRACE"),
    );
    assert!(printed.contains("exported 60 samples"), "{printed}");

    // One row per labelled input of the range, with its own fields and its prediction.
    let source: BTreeMap<String, csv::StringRecord> = {
        let mut r = csv::Reader::from_path(&csv).unwrap();
        r.records()
            .map(|r| r.unwrap())
            .map(|r| (r[0].to_string(), r))
            .collect()
    };
    let mut r = csv::Reader::from_path(export.join("samples.csv")).unwrap();
    let header = r.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let by_id: BTreeMap<&str, &Prediction> = preds.iter().map(|p| (p.id.as_str(), p)).collect();
    let exported: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(exported.len(), 60);
    for row in &exported {
        let p = by_id[&row[col("id")]];
        let i = preds.iter().position(|q| q.id == p.id).unwrap();
        assert!(i < 60, "only labels of the range");
        let want = if i == 2 { "churn" } else { class(i) };
        assert_eq!(&row[col("label")], want, "the latest label counts");
        assert_eq!(&row[col("model_version")], "1");
        assert_eq!(&row[col("prediction")], p.label.as_deref().unwrap());
        assert_eq!(&row[col("key")], p.input.key.as_deref().unwrap());
        let customer = &source[&row[col("customer_id")]];
        assert_eq!(&row[col("tenure_months")], &customer[1]);
        assert_eq!(&row[col("region")], &customer[7]);
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["samples"], 60);
    assert_eq!(summary["labels_read"], 64);
    assert_eq!(summary["labels_invalid"], 1);
    assert_eq!(summary["labels_duplicate"], 1);
    assert_eq!(summary["labels_conflicting"], 1);
    assert_eq!(summary["inputs_missing"], 1);
    assert_eq!(summary["predictions_missing"], 0);
    assert_eq!(summary["per_source"]["feedback"], 60);
    assert_eq!(summary["per_model_version"]["1"], 60);
}
