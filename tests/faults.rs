//! Faults survived, on a broker of this binary's own (`scripts/kafka` on other ports and
//! another state dir, `auto.create.topics.enable=false` as on most production clusters), so
//! stopping it or deleting topics disturbs no other test. One test runs the scenarios in
//! turn and prints one line per scenario for the fault table in the README:
//!
//! 1. outputs the broker refuses for good (the predictions topic's `max.message.bytes` too
//!    small): each such input goes to the DLQ with reason `oversize`, offsets move on,
//!    predictions resume when the limit is raised again;
//! 2. the predictions topic deleted mid-stream and created again 10 s later: no offset is
//!    committed past an input whose prediction is not written, nothing goes to the DLQ for
//!    a transient failure, the worker keeps running and publishes everything once the topic
//!    is back;
//! 3. the broker restarted mid-stream on the same data (`scripts/kafka start --keep-data`,
//!    as a rolling restart or a crash-and-recover does): two `argus work` processes on a
//!    paced stream; every input is predicted, the workers recover by themselves, the
//!    producer rides out the outage, every partition resumes within a bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use argus_kafka::rdkafka::client::DefaultClientContext;
use argus_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use argus_kafka::rdkafka::Message;
use argus_producer::{ProduceConfig, Source};
use argus_wire::Prediction;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(6);

/// The high watermark of every partition of `topic`.
fn high_watermarks(topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = settings()
        .consumer_config(&unique("hw"), "test-hw")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            assert_eq!(lo, 0, "nothing is deleted from the input topic");
            (p.id(), hi)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn output_and_broker_faults() {
    let broker = OwnBroker::start(29092, "auto.create.topics.enable=false");
    use_brokers(&broker.address());
    outputs_refused_for_good_go_to_the_dlq().await;
    output_topic_deleted_then_recreated().await;
    broker_restart_mid_stream_loses_nothing(&broker).await;
}

async fn broker_restart_mid_stream_loses_nothing(broker: &OwnBroker) {
    let topics = Topics::create(4).await;
    let group = unique("restart");
    let workers: Vec<WorkerProcess> = (0..2)
        .map(|i| WorkerProcess::spawn(&topics, &group, &format!("w{i}"), &[]))
        .collect();

    // A paced stream: four cameras, camera i on partition i, 40 frames/s in all.
    let stop_producing = CancellationToken::new();
    let producer_task = {
        let mut config = ProduceConfig::new(&topics.input);
        config.spread_cameras = Some(4);
        config.rate_limit = Some(40.0);
        // Its frames may wait out any outage this test can cause (the 30 s default could
        // expire them if stopping and starting the JVM is slow on a loaded machine).
        let producer = settings()
            .with("message.timeout.ms", "120000")
            .producer("restart-producer")
            .unwrap();
        tokio::spawn(argus_producer::run(
            Source::Synthetic(small_cameras(13)),
            config,
            producer,
            stop_producing.clone(),
        ))
    };
    // A second camera feed whose frames may wait only 3 s for the broker, with room for
    // 10 in flight and ~8 kB waiting: the outage policy drops its oldest frames.
    let outage_topic = unique("outage");
    create_topics(&[(&outage_topic, 1)]).await;
    let outage_task = {
        let mut config = ProduceConfig::new(&outage_topic);
        config.rate_limit = Some(20.0);
        config.max_outstanding = 10;
        config.backlog_bytes = 8_000;
        let producer = settings()
            .with("message.timeout.ms", "3000")
            .producer("outage-producer")
            .unwrap();
        tokio::spawn(argus_producer::run(
            Source::Synthetic(small_cameras(14)),
            config,
            producer,
            stop_producing.clone(),
        ))
    };

    // The fleet is up and predicting before the fault.
    let before = tokio::task::spawn_blocking({
        let t = topics.predictions.clone();
        move || predictions_until(&t, Duration::from_secs(90), 120)
    })
    .await
    .unwrap();
    assert!(before.len() >= 120, "workers predicted before the restart");

    let outage_before: i64 = high_watermarks(&outage_topic).values().sum();
    let t_down = Instant::now();
    broker.kafka(&["stop"]);
    tokio::time::sleep(OUTAGE).await;
    broker.kafka(&["start", "--keep-data"]);
    let up_us = argus_wire::now_us();
    let down = t_down.elapsed();
    eprintln!(
        "broker down for {:.1} s (stop + outage + start)",
        down.as_secs_f64()
    );
    // The resume bound below holds for an outage shorter than the 45 s session timeout.
    assert!(
        down < Duration::from_secs(40),
        "stopping and starting the broker took {down:?}: the machine is too loaded for this test's bound"
    );

    // The stream goes on for a while after the restart, then stops.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !outage_task.is_finished(),
        "the producer dropping frames keeps running"
    );
    stop_producing.cancel();
    let summary = producer_task.await.unwrap().unwrap();
    eprintln!("producer: {summary}");
    assert_eq!(
        (summary.failed, summary.dropped),
        (0, 0),
        "the producer rode out an outage shorter than message.timeout.ms: {summary}"
    );
    let dropping = outage_task.await.unwrap().unwrap();
    let outage_after: i64 = high_watermarks(&outage_topic).values().sum();
    eprintln!(
        "FAULT producer facing the outage with a 3 s timeout and an 8 kB backlog: {dropping}; \
         {} frames written after the broker was back",
        outage_after - outage_before
    );
    assert!(
        dropping.dropped > 0,
        "the oldest frames were dropped: {dropping}"
    );
    assert_eq!(dropping.failed, 0, "drops are not failures: {dropping}");
    assert!(
        outage_after - outage_before > 100,
        "it delivered again after the outage: {dropping}"
    );

    // Every input now in the input topic is predicted.
    let inputs = high_watermarks(&topics.input);
    let total: i64 = inputs.values().sum();
    let msgs = tokio::task::spawn_blocking({
        let t = topics.predictions.clone();
        let want = total as usize;
        move || {
            // (messages parsed, distinct inputs predicted)
            let seen = std::cell::RefCell::new((0, std::collections::BTreeSet::new()));
            read_until(&t, Duration::from_secs(120), |m| {
                let mut s = seen.borrow_mut();
                for msg in &m[s.0..] {
                    if let Some(p) = msg
                        .payload()
                        .and_then(|v| serde_json::from_slice::<Prediction>(v).ok())
                    {
                        s.1.insert((p.input.partition, p.input.offset));
                    }
                }
                s.0 = m.len();
                s.1.len() >= want
            })
        }
    })
    .await
    .unwrap();
    let preds: Vec<Prediction> = msgs
        .iter()
        .filter_map(|m| serde_json::from_slice(m.payload()?).ok())
        .collect();
    let ids: Vec<(i32, i64)> = preds
        .iter()
        .map(|p| (p.input.partition, p.input.offset))
        .collect();
    let c = counts(&ids);
    let lost: Vec<(i32, i64)> = inputs
        .iter()
        .flat_map(|(p, hi)| (0..*hi).map(move |o| (*p, o)))
        .filter(|id| !c.contains_key(id))
        .collect();
    let duplicated: usize = c.values().map(|n| n - 1).sum();

    // Time to resume, per input partition: the first prediction made after the broker
    // answered again.
    let mut resume: BTreeMap<i32, f64> = BTreeMap::new();
    for p in &preds {
        if p.produced_at_us > up_us {
            let s = (p.produced_at_us - up_us) as f64 / 1e6;
            let e = resume.entry(p.input.partition).or_insert(s);
            *e = e.min(s);
        }
    }
    eprintln!(
        "FAULT broker restart: inputs {total}, lost {}, duplicated {duplicated}, resume per partition {resume:?}",
        lost.len()
    );
    assert!(lost.is_empty(), "inputs without a prediction: {lost:?}");
    assert_eq!(resume.len(), 4, "every partition resumed: {resume:?}");
    let slowest = resume.values().cloned().fold(0.0, f64::max);
    assert!(
        slowest < 5.0,
        "every partition resumed within 5 s of the broker's return (0.2–0.7 s measured; \
         ~10 s when members' sessions expired during the outage): {resume:?}"
    );
    for mut w in workers {
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "worker {} recovered by itself (still running)",
            w.id
        );
        let id = w.id.clone();
        let status = w.terminate(Duration::from_secs(30));
        assert!(status.success(), "worker {id} exits cleanly: {status}");
    }
}

/// Sets a dynamic config of `topic`.
async fn set_topic_config(topic: &str, key: &str, value: &str) {
    let admin: AdminClient<DefaultClientContext> =
        settings().client_config("test-admin").create().unwrap();
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(key, value);
    for r in admin
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

/// Every input below a committed offset has an output (a prediction or a DLQ record).
fn assert_commits_follow_outputs(committed: &BTreeMap<i32, i64>, done: &BTreeSet<(i32, i64)>) {
    for (p, c) in committed {
        let missing: Vec<i64> = (0..*c).filter(|o| !done.contains(&(*p, *o))).collect();
        assert!(
            missing.is_empty(),
            "partition {p}: offset {c} committed, but inputs {missing:?} have no output"
        );
    }
}

/// Waits until the group has committed every input of `topic` (up to `highs`), checking on
/// the way that no commit runs ahead of the outputs in `done`.
async fn wait_committed_to_end(
    group: &str,
    topic: &str,
    highs: &BTreeMap<i32, i64>,
    done: &BTreeSet<(i32, i64)>,
) {
    let partitions = highs.len() as i32;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = committed_offsets(group, topic, partitions);
        assert_commits_follow_outputs(&c, done);
        // A partition that never had an input has nothing to commit.
        if highs
            .iter()
            .all(|(p, hi)| c.get(p).copied().unwrap_or(0) == *hi)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offsets committed to the end: {c:?} vs {highs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (partition, offset) of the inputs in the DLQ records of `topic`, with their reasons.
fn dead_letters(topic: &str, within: Duration, until: usize) -> Vec<((i32, i64), String)> {
    read_until(topic, within, |m| m.len() >= until)
        .iter()
        .map(|m| {
            let num = |k: &str| -> i64 { header(m, k).and_then(|v| v.parse().ok()).unwrap() };
            (
                (
                    num(argus_wire::headers::DLQ_SOURCE_PARTITION) as i32,
                    num(argus_wire::headers::DLQ_SOURCE_OFFSET),
                ),
                header(m, argus_wire::headers::DLQ_REASON).unwrap_or_default(),
            )
        })
        .collect()
}

async fn outputs_refused_for_good_go_to_the_dlq() {
    const N: u64 = 30;
    let topics = Topics::create(2).await;
    let group = unique("refused");
    // A prediction is ~1 kB of JSON: 200 bytes refuses every one.
    set_topic_config(&topics.predictions, "max.message.bytes", "200").await;
    let mut worker = WorkerProcess::spawn(&topics, &group, "r1", &[]);
    produce_synthetic(&topics.input, N, 4, 3, (96, 64), None).await;
    let dlq = tokio::task::spawn_blocking({
        let t = topics.dlq.clone();
        move || dead_letters(&t, Duration::from_secs(90), N as usize)
    })
    .await
    .unwrap();
    let dead: BTreeSet<(i32, i64)> = dlq.iter().map(|(id, _)| *id).collect();
    assert_eq!(dead.len(), N as usize, "every refused input is in the DLQ");
    assert!(
        dlq.iter().all(|(_, reason)| reason == "oversize"),
        "reason oversize: {dlq:?}"
    );
    let highs = high_watermarks(&topics.input);
    wait_committed_to_end(&group, &topics.input, &highs, &dead).await;

    // The limit raised again: predictions flow.
    set_topic_config(&topics.predictions, "max.message.bytes", "1048588").await;
    produce_synthetic(&topics.input, N, 4, 4, (96, 64), None).await;
    let preds = tokio::task::spawn_blocking({
        let t = topics.predictions.clone();
        move || predictions_until(&t, Duration::from_secs(90), N as usize)
    })
    .await
    .unwrap();
    let predicted: BTreeSet<(i32, i64)> = preds.iter().cloned().collect();
    assert_eq!(predicted.len(), N as usize, "predictions resume");
    assert!(
        predicted.is_disjoint(&dead),
        "no input both dead-lettered and predicted"
    );
    assert!(worker.is_running(), "the worker keeps running");
    eprintln!(
        "FAULT outputs refused for good: inputs {}, lost 0, to the DLQ {} (reason oversize), \
         duplicated {}, panics 0",
        2 * N,
        dead.len(),
        preds.len() - predicted.len()
    );
    let status = worker.terminate(Duration::from_secs(30));
    assert!(status.success(), "the worker exits cleanly: {status}");
}

async fn output_topic_deleted_then_recreated() {
    const BEFORE: u64 = 40;
    const DURING: u64 = 40;
    let topics = Topics::create(2).await;
    let group = unique("deleted");
    // Deliveries time out after 4 s here (30 s by default), so the outage also exercises
    // the worker's own retries after librdkafka gives up on a record.
    let mut worker = WorkerProcess::spawn(
        &topics,
        &group,
        "d1",
        &["-X", "message.timeout.ms=4000", "--max-in-flight", "16"],
    );
    produce_synthetic(&topics.input, BEFORE, 4, 7, (96, 64), None).await;
    let before: BTreeSet<(i32, i64)> = tokio::task::spawn_blocking({
        let t = topics.predictions.clone();
        move || predictions_until(&t, Duration::from_secs(90), BEFORE as usize)
    })
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(before.len(), BEFORE as usize, "healthy first");
    let highs_before = high_watermarks(&topics.input);
    wait_committed_to_end(&group, &topics.input, &highs_before, &before).await;

    // The predictions topic disappears; more inputs arrive.
    argus_kafka::delete_topics(&settings(), std::slice::from_ref(&topics.predictions))
        .await
        .unwrap();
    produce_synthetic(&topics.input, DURING, 4, 8, (96, 64), None).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_commits_follow_outputs(
        &committed_offsets(&group, &topics.input, 2),
        &before, // nothing can have been published since
    );
    let dlq = read_until(&topics.dlq, Duration::from_secs(2), |_| false);
    assert!(
        dlq.is_empty(),
        "a transient failure sends nothing to the DLQ"
    );
    assert!(worker.is_running(), "the worker rides out the outage");

    // The topic is back: everything held is published and committed.
    create_topics(&[(&topics.predictions, 3)]).await;
    let back = Instant::now();
    let after: BTreeSet<(i32, i64)> = tokio::task::spawn_blocking({
        let t = topics.predictions.clone();
        move || predictions_until(&t, Duration::from_secs(120), DURING as usize)
    })
    .await
    .unwrap()
    .into_iter()
    .collect();
    let recovered = back.elapsed();
    let highs = high_watermarks(&topics.input);
    let expected: BTreeSet<(i32, i64)> = highs
        .iter()
        .flat_map(|(p, hi)| (highs_before[p]..*hi).map(move |o| (*p, o)))
        .collect();
    let lost: Vec<_> = expected.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "inputs held during the outage were lost: {lost:?}"
    );
    let done: BTreeSet<(i32, i64)> = before.union(&after).cloned().collect();
    wait_committed_to_end(&group, &topics.input, &highs, &done).await;
    let t = topics.predictions.clone();
    let settled = tokio::task::spawn_blocking(move || {
        predictions_settled(&t, Duration::from_secs(30), DURING as usize)
    })
    .await
    .unwrap();
    eprintln!(
        "FAULT output topic deleted for 10 s: inputs {}, lost 0, duplicated {}, panics 0, \
         published {:.1} s after the topic was back",
        BEFORE + DURING,
        settled.len() - counts(&settled).len(),
        recovered.as_secs_f64()
    );
    let status = worker.terminate(Duration::from_secs(30));
    assert!(status.success(), "the worker exits cleanly: {status}");
}
