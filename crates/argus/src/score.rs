//! `argus score`: the daily batch flow. Reads a bounded range of an input topic (from a
//! timestamp, or the beginning, up to the end offsets seen at start), scores it with the
//! workers' code (`job::prepare`, the bundle's batch inference, `publish::Outputs`),
//! publishes the same predictions, alerts and dead letters a worker would, and writes the
//! at-risk report: the records whose positive-label score reaches the decision threshold,
//! best first, top N, with the features the model used as evidence columns.
//!
//! Deterministic: the range is fixed at start (end offsets), one row per key (its latest
//! record in the range), ordered by score descending then key — so two runs over the same
//! range write the same report byte for byte. No consumer-group offsets are committed.
use crate::cli::{parse_duration, KafkaFlags, ModelArgs, TopicArgs};
use crate::config::{ArgusConfig, Flags, KafkaConfig};
use crate::work::{alert_rules, load_model, worker_config};
use crate::CliError;
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_model::Classifier;
use argus_worker::job::{self, Classified, Job, Prepare, Ready};
use argus_worker::publish::{alert_schema, dlq_headers, Outputs, Publisher};
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `argus score` flags (`[score]`; the model and pipeline settings are `[worker]`'s).
#[derive(Debug, Args)]
pub struct ScoreFlags {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Input topic to score [default: frames.default].
    #[arg(long = "input")]
    pub input: Option<String>,
    /// Start at records written at or after this time: RFC 3339 UTC
    /// (2026-11-29T00:00:00Z) or milliseconds since the Unix epoch [default: the beginning].
    #[arg(long, conflicts_with = "since")]
    pub from: Option<String>,
    /// Start at records written within this long before now (e.g. 24h).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// The at-risk report (CSV) [default: at-risk.csv].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Rows in the report, at most, best first (0: every record at or above the threshold)
    /// [default: 100].
    #[arg(long)]
    pub top: Option<usize>,
    /// Only write the report: publish no predictions, alerts or dead letters.
    #[arg(long)]
    pub no_publish: bool,
    /// Records per model call [default: 64].
    #[arg(long)]
    pub batch: Option<usize>,
}

impl ScoreFlags {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
        self.model.flags(f);
        self.topics.flags(f);
        f.set("score.input", "--input", self.input.as_ref());
        f.set("score.from", "--from", self.from.as_ref());
        f.duration("score.since", "--since", self.since);
        f.set("score.report", "--report", self.report.as_ref());
        f.set("score.top", "--top", self.top.as_ref());
        f.switch("score.no_publish", "--no-publish", self.no_publish);
        f.set("score.batch", "--batch", self.batch.as_ref());
    }
}

/// What `argus score` runs with: the configuration's `[kafka]`, `[worker]` (reading
/// `input`) and `[score]`.
#[derive(Debug)]
pub struct ScoreArgs {
    pub kafka: KafkaConfig,
    pub model: argus_worker::WorkerSettings,
    pub input: String,
    pub from: Option<String>,
    pub since: Option<Duration>,
    pub report: PathBuf,
    pub top: usize,
    pub no_publish: bool,
    pub batch: usize,
}

impl ScoreArgs {
    pub fn new(config: ArgusConfig) -> Result<Self, CliError> {
        let s = config.score;
        if s.from.is_some() && s.since.is_some() {
            return Err(CliError::Usage(
                "score.from and score.since cannot both be set: pick one".into(),
            ));
        }
        Ok(ScoreArgs {
            kafka: config.kafka,
            model: argus_worker::WorkerSettings {
                inputs: vec![s.input.clone()],
                ..config.worker
            },
            input: s.input,
            from: s.from,
            since: s.since,
            report: s.report,
            top: s.top,
            no_publish: s.no_publish,
            batch: s.batch,
        })
    }
}

/// Parses `2026-11-29T06:00:00Z` (optionally with fractional seconds) or epoch milliseconds.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let err = || {
        format!("--from {s:?}: use RFC 3339 UTC like 2026-11-29T06:00:00Z, or epoch milliseconds")
    };
    let body = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix('z'))
        .ok_or_else(err)?;
    let (date, time) = body.split_once(['T', 't', ' ']).ok_or_else(err)?;
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (time, None),
    };
    let number = |p: &str, max_len: usize| -> Result<i64, String> {
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        p.parse().map_err(|_| err())
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|p| number(p, 4))
        .collect::<Result<_, _>>()?;
    let t: Vec<i64> = hms
        .split(':')
        .map(|p| number(p, 2))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 || t.len() != 3 {
        return Err(err());
    }
    let (y, mo, day) = (d[0], d[1], d[2]);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || day < 1
        || day > month_days[(mo - 1) as usize]
        || t[0] > 23
        || t[1] > 59
        || t[2] > 59
    {
        return Err(err());
    }
    let ms_frac = match frac {
        None => 0,
        Some(frac) => {
            number(frac, 9)?;
            // The first three digits, padded: "5" is 500 ms.
            frac.bytes()
                .chain(std::iter::repeat(b'0'))
                .take(3)
                .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'))
        }
    };
    // Days from civil (Howard Hinnant's algorithm); years 0..=9999 cannot overflow.
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms_frac)
}

/// One scored record in the report.
#[derive(Debug, Clone)]
struct Scored {
    key: String,
    score: f32,
    evidence: Vec<(String, serde_json::Value)>,
    /// Kafka timestamp (ms), then partition and offset: which record of a key is latest.
    order: (i64, i32, i64),
    partition: i32,
    offset: i64,
}

#[derive(Debug, Default)]
struct Tally {
    scored: u64,
    dlq: BTreeMap<&'static str, u64>,
    alerts: u64,
    delivery_failures: u64,
}

struct Publish {
    producer: FutureProducer,
    pending: Vec<DeliveryFuture>,
}

/// Acknowledgements awaited at once, at most: a range of millions of records must not hold
/// a delivery future per output.
const MAX_PENDING: usize = 20_000;

impl Publish {
    /// Waits for every queued output; returns how many the broker did not acknowledge.
    async fn settle(&mut self) -> u64 {
        let mut failed = 0;
        for f in self.pending.drain(..) {
            if !matches!(f.await, Ok(Ok(_))) {
                failed += 1;
            }
        }
        failed
    }

    /// Queues one output (waiting while the producer's queue is full).
    fn try_send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: argus_kafka::rdkafka::message::OwnedHeaders,
    ) -> Result<(), argus_kafka::rdkafka::error::KafkaError> {
        loop {
            let mut record = FutureRecord::to(topic)
                .payload(payload)
                .headers(headers.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            match self.producer.send_result(record) {
                Ok(f) => {
                    self.pending.push(f);
                    return Ok(());
                }
                Err((
                    argus_kafka::rdkafka::error::KafkaError::MessageProduction(
                        argus_kafka::rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => std::thread::sleep(Duration::from_millis(5)),
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: argus_kafka::rdkafka::message::OwnedHeaders,
    ) -> Result<(), CliError> {
        self.try_send(topic, key, payload, headers)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot publish to {topic}: {e}")))
    }
}

/// A partition's range is done: stop tracking and fetching it.
fn close(consumer: &StreamConsumer, topic: &str, open: &mut HashMap<i32, i64>, partition: i32) {
    open.remove(&partition);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::debug!(partition, error = %e, "cannot pause a finished partition");
    }
}

/// Sends an input that cannot be scored to the dead-letter topic with the reason, as the
/// workers do; a value too large for the producer goes without its bytes (they stay in the
/// input topic at the offset the headers name).
fn dead_letter(
    job: &Job,
    failure: &job::Failure,
    publish: Option<&mut Publish>,
    config: &argus_worker::WorkerConfig,
    tally: &mut Tally,
) -> Result<(), CliError> {
    *tally.dlq.entry(failure.kind.as_str()).or_default() += 1;
    tracing::warn!(partition = job.partition, offset = job.offset, reason = %failure.kind, detail = %failure.detail, "record sent to the dead-letter topic");
    let Some(p) = publish else {
        return Ok(());
    };
    let key = job.key.as_deref();
    let headers = |dropped| dlq_headers(&config.worker_id, job, failure, dropped);
    match p.try_send(&config.topics.dlq, key, &job.value, headers(false)) {
        Err(argus_kafka::rdkafka::error::KafkaError::MessageProduction(
            argus_kafka::rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge,
        )) => p.send(&config.topics.dlq, key, &[], headers(true)),
        Err(e) => Err(CliError::Runtime(anyhow::anyhow!(
            "cannot publish to {}: {e}",
            config.topics.dlq
        ))),
        Ok(()) => Ok(()),
    }
}

/// The label whose score the report ranks, and its threshold.
fn decision(args: &ScoreArgs, model: &Classifier) -> Result<(usize, f32), CliError> {
    let rules = alert_rules(&args.model.alerts, model);
    let rule = rules.first().ok_or_else(|| {
        CliError::Usage(format!(
            "the bundle {} has no [decision] and no --alert LABEL>=THRESHOLD was given; the report needs the label to rank and its threshold",
            args.model.model.display()
        ))
    })?;
    let index = model
        .labels()
        .iter()
        .position(|l| *l == rule.label)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "label {:?} is not one of the model's labels ({})",
                rule.label,
                model.labels().join(", ")
            ))
        })?;
    Ok((index, rule.threshold))
}

pub async fn run(args: ScoreArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let model = load_model(&args.model.model, &args.model.engine_options(1))?;
    let (positive, threshold) = decision(&args, &model)?;
    let config = Arc::new(worker_config(
        format!("argus-score-{}", crate::work::default_worker_id()),
        &args.model,
        &model,
    )?);
    let outputs = Outputs::new(config.clone(), &model);
    let settings = args.kafka.settings();
    let mut cc = settings.consumer_config(
        &format!("argus-score-{}", std::process::id()),
        "argus-score",
    );
    cc.set("enable.auto.commit", "false");
    let consumer: StreamConsumer = cc.create().map_err(|e| {
        CliError::Usage(format!(
            "cannot create a consumer for {}: {e}",
            args.kafka.brokers
        ))
    })?;
    let start_ms = match (&args.from, args.since) {
        (Some(f), _) => Some(parse_time_ms(f).map_err(CliError::Usage)?),
        (None, Some(d)) => Some(
            (argus_wire::now_us() / 1000)
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        ),
        (None, None) => None,
    }
    // Negative "times" are librdkafka's special offsets (-1 end, -2 beginning): a time
    // before 1970 means "from the beginning".
    .map(|ms| ms.max(0));
    let (assignment, ends) = range(&consumer, &args.input, start_ms)?;
    let total: i64 = ends.values().map(|(start, end)| end - start).sum();
    tracing::info!(topic = %args.input, partitions = ends.len(), records = total, from_ms = ?start_ms, "scoring a bounded range");
    let mut publish = (!args.no_publish)
        .then(|| settings.producer("argus-score"))
        .transpose()
        .map_err(|e| CliError::Usage(e.to_string()))?
        .map(|producer| Publish {
            producer,
            pending: Vec::new(),
        });
    let mut latest: HashMap<String, Scored> = HashMap::new();
    let mut tally = Tally::default();
    if total > 0 {
        consumer
            .assign(&assignment)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot assign {}: {e}", args.input)))?;
        let mut open: HashMap<i32, i64> = ends
            .iter()
            .filter(|(_, (s, e))| s < e)
            .map(|(p, (_, e))| (*p, *e))
            .collect();
        let mut batch: Vec<(Job, Ready)> = Vec::with_capacity(args.batch);
        let mut last_progress = Instant::now();
        let mut seen: i64 = 0;
        while !open.is_empty() {
            match tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
                Ok(Ok(m)) => {
                    let in_range = open
                        .get(&m.partition())
                        .copied()
                        .filter(|end| m.offset() < *end);
                    if let Some(end) = in_range {
                        seen += 1;
                        let job = Job::from_message(&m);
                        if m.offset() + 1 >= end {
                            close(&consumer, &args.input, &mut open, m.partition());
                        }
                        match job::prepare(&job, &model, config.max_input_bytes, None) {
                            Prepare::Ready(r) => batch.push((job, r)),
                            Prepare::Failed(f) => {
                                dead_letter(&job, &f, publish.as_mut(), &config, &mut tally)?
                            }
                            Prepare::Stale(_) => {}
                        }
                    } else if open.contains_key(&m.partition()) {
                        // Past the end seen at start: new records are not in the range.
                        close(&consumer, &args.input, &mut open, m.partition());
                    }
                }
                Ok(Err(e)) => {
                    return Err(CliError::Runtime(anyhow::anyhow!(
                        "consuming {}: {e}",
                        args.input
                    )))
                }
                Err(_) => {}
            }
            // Transaction markers and compaction leave offsets no record has: the range of a
            // partition is done once the consumer's position reaches its end.
            if let Ok(positions) = consumer.position() {
                for e in positions.elements() {
                    if let (Offset::Offset(o), Some(end)) =
                        (e.offset(), open.get(&e.partition()).copied())
                    {
                        if o >= end {
                            close(&consumer, &args.input, &mut open, e.partition());
                        }
                    }
                }
            }
            if batch.len() >= args.batch.max(1) || (open.is_empty() && !batch.is_empty()) {
                score_batch(
                    &model,
                    &outputs,
                    std::mem::take(&mut batch),
                    positive,
                    publish.as_mut(),
                    &config,
                    &mut latest,
                    &mut tally,
                )?;
            }
            if let Some(p) = publish.as_mut().filter(|p| p.pending.len() >= MAX_PENDING) {
                tally.delivery_failures += p.settle().await;
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                tracing::info!(
                    read = seen,
                    total,
                    percent = format!("{:.1}", 100.0 * seen as f64 / total.max(1) as f64),
                    scored = tally.scored,
                    "scoring"
                );
            }
        }
        // The last partition's close scored the final batch inside the loop.
        debug_assert!(batch.is_empty());
    }
    if let Some(p) = publish.as_mut() {
        tally.delivery_failures += p.settle().await;
    }
    let report = write_report(&args, &model, latest, positive, threshold)?;
    let secs = started.elapsed().as_secs_f64();
    let dlq: Vec<String> = tally.dlq.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "scored {} records of {} ({} partitions) in {:.1}s = {:.0} records/s; dead letters {} ({}); {} customers at or above {} = {:.2}: {} in the report {}; published {}",
        tally.scored,
        args.input,
        ends.len(),
        secs,
        tally.scored as f64 / secs.max(1e-9),
        tally.dlq.values().sum::<u64>(),
        if dlq.is_empty() { "none".into() } else { dlq.join(", ") },
        report.at_risk,
        model.labels()[positive],
        threshold,
        report.written,
        args.report.display(),
        if args.no_publish { "nothing (--no-publish)".to_string() } else { format!("{} predictions, {} alerts", tally.scored, tally.alerts) },
    );
    if tally.delivery_failures > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!("{} outputs were not acknowledged by the broker; the report is complete, the topics are not — run again", tally.delivery_failures)));
    }
    Ok(())
}

/// Per partition: the offset to start from and the end (exclusive).
type Bounds = BTreeMap<i32, (i64, i64)>;

/// Partitions of `topic` with the offset to start from and the end (exclusive) seen now.
fn range(
    consumer: &StreamConsumer,
    topic: &str,
    start_ms: Option<i64>,
) -> Result<(TopicPartitionList, Bounds), CliError> {
    let timeout = Duration::from_secs(10);
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot read metadata of {topic}: {e}")))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(CliError::Usage(format!(
            "topic {topic:?} does not exist (or has no partitions)"
        )));
    }
    let mut starts: BTreeMap<i32, i64> = BTreeMap::new();
    let mut ends = BTreeMap::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout).map_err(|e| {
            CliError::Runtime(anyhow::anyhow!(
                "cannot read the offsets of {topic}/{p}: {e}"
            ))
        })?;
        starts.insert(p, low);
        ends.insert(p, high);
    }
    if let Some(ms) = start_ms {
        let mut query = TopicPartitionList::new();
        for &p in &partitions {
            query
                .add_partition_offset(topic, p, Offset::Offset(ms))
                .map_err(|e| CliError::Runtime(e.into()))?;
        }
        let found = consumer.offsets_for_times(query, timeout).map_err(|e| {
            CliError::Runtime(anyhow::anyhow!(
                "cannot look up offsets by time in {topic}: {e}"
            ))
        })?;
        for e in found.elements() {
            if let Err(err) = e.error() {
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "cannot look up the offset of time {ms} in {topic}/{}: {err}",
                    e.partition()
                )));
            }
            let end = ends.get(&e.partition()).copied().unwrap_or(0);
            let start = match e.offset() {
                Offset::Offset(o) => o.min(end),
                // No record at or after the time.
                Offset::End => end,
                other => {
                    return Err(CliError::Runtime(anyhow::anyhow!(
                        "unexpected answer {other:?} looking up time {ms} in {topic}/{}",
                        e.partition()
                    )))
                }
            };
            starts.insert(e.partition(), start);
        }
    }
    let mut tpl = TopicPartitionList::new();
    let mut bounds = BTreeMap::new();
    for &p in &partitions {
        let (start, end) = (starts[&p], ends[&p]);
        bounds.insert(p, (start.min(end), end));
        if start < end {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| CliError::Runtime(e.into()))?;
        }
    }
    Ok((tpl, bounds))
}

#[allow(clippy::too_many_arguments)]
fn score_batch(
    model: &Classifier,
    outputs: &Outputs,
    batch: Vec<(Job, Ready)>,
    positive: usize,
    mut publish: Option<&mut Publish>,
    config: &argus_worker::WorkerConfig,
    latest: &mut HashMap<String, Scored>,
    tally: &mut Tally,
) -> Result<(), CliError> {
    let prepared: Vec<_> = batch.iter().map(|(_, r)| r.prepared.clone()).collect();
    let results = match model.classify_batch(&prepared) {
        Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
        // As the workers do: a failed batch is retried input by input.
        Err(_) => prepared
            .iter()
            .map(|p| {
                model
                    .classify_batch(std::slice::from_ref(p))
                    .and_then(|mut v| {
                        v.pop().ok_or_else(|| argus_model::ModelError::Inference {
                            source: "no output".into(),
                        })
                    })
            })
            .collect(),
    };
    for ((job, ready), result) in batch.into_iter().zip(results) {
        let classification = match result {
            Ok(c) => c,
            Err(e) => {
                let f = job::Failure {
                    kind: e.failure_kind(),
                    detail: e.to_string(),
                };
                dead_letter(&job, &f, publish.as_deref_mut(), config, tally)?;
                continue;
            }
        };
        let classified = Classified {
            envelope: ready.envelope,
            classification,
            queue_us: ready.queue_us,
            envelope_us: ready.envelope_us,
        };
        tally.scored += 1;
        let (prediction, alerts) = outputs.outputs(&job, &classified);
        tally.alerts += alerts.len() as u64;
        if let Some(p) = publish.as_deref_mut() {
            let capture = classified.envelope.capture_time_us;
            let json = serde_json::to_vec(&prediction).map_err(|e| CliError::Runtime(e.into()))?;
            p.send(
                &config.topics.predictions,
                job.key.as_deref(),
                &json,
                Publisher::json_headers(&prediction.schema, capture),
            )?;
            for a in &alerts {
                let json = serde_json::to_vec(a).map_err(|e| CliError::Runtime(e.into()))?;
                let schema = alert_schema(a);
                p.send(
                    &config.topics.alerts,
                    job.key.as_deref(),
                    &json,
                    Publisher::json_headers(schema, capture),
                )?;
            }
        }
        let key = job
            .key_str()
            .map(str::to_string)
            .unwrap_or_else(|| classified.envelope.source_id.clone());
        let scored = Scored {
            key: key.clone(),
            score: classified.classification.probability(positive),
            evidence: model.evidence(&classified.envelope.payload),
            partition: job.partition,
            offset: job.offset,
            order: (job.timestamp_ms.unwrap_or(0), job.partition, job.offset),
        };
        // One row per key: its latest record in the range (by Kafka timestamp, so also when
        // a key's records sit in two partitions after the topic grew).
        match latest.get(&key) {
            Some(old) if old.order > scored.order => {}
            _ => {
                latest.insert(key, scored);
            }
        }
    }
    Ok(())
}

struct ReportSummary {
    at_risk: usize,
    written: usize,
}

fn csv_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn write_report(
    args: &ScoreArgs,
    model: &Classifier,
    latest: HashMap<String, Scored>,
    positive: usize,
    threshold: f32,
) -> Result<ReportSummary, CliError> {
    let mut rows: Vec<Scored> = latest
        .into_values()
        .filter(|s| s.score >= threshold)
        .collect();
    rows.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
    let at_risk = rows.len();
    if args.top > 0 {
        rows.truncate(args.top);
    }
    let label = &model.labels()[positive];
    let features: Vec<String> = model
        .manifest()
        .features
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let io = |e: std::io::Error| {
        CliError::Usage(format!(
            "cannot write the report {}: {e}",
            args.report.display()
        ))
    };
    let mut w = csv::Writer::from_path(&args.report).map_err(|e| {
        CliError::Usage(format!(
            "cannot write the report {}: {e}",
            args.report.display()
        ))
    })?;
    let mut header = vec!["rank".to_string(), "key".into(), format!("p_{label}")];
    header.extend(features.iter().cloned());
    header.extend(["topic".into(), "partition".into(), "offset".into()]);
    w.write_record(&header).map_err(|e| io(e.into()))?;
    for (i, r) in rows.iter().enumerate() {
        let mut line = vec![(i + 1).to_string(), r.key.clone(), r.score.to_string()];
        line.extend(r.evidence.iter().map(|(_, v)| csv_value(v)));
        line.extend([
            args.input.clone(),
            r.partition.to_string(),
            r.offset.to_string(),
        ]);
        w.write_record(&line).map_err(|e| io(e.into()))?;
    }
    w.flush().map_err(io)?;
    Ok(ReportSummary {
        at_risk,
        written: rows.len(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_parse_as_utc_milliseconds() {
        assert_eq!(parse_time_ms("0").unwrap(), 0);
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time_ms("2000-03-01T00:00:00Z").unwrap(),
            951_868_800_000
        );
        assert_eq!(
            parse_time_ms("2026-11-29T06:30:15.25Z").unwrap(),
            1_795_933_815_250
        );
        assert!(parse_time_ms("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time_ms("yesterday").is_err());
        assert!(parse_time_ms("2026-11-29T06:30:15").is_err());
        assert_eq!(
            parse_time_ms("2024-02-29T00:00:00.5Z").unwrap(),
            1_709_164_800_500
        );
        for bad in [
            "2026-01-01T00:00:00.abéZ",
            "99999999999-01-01T00:00:00Z",
            "2026-01-01T-1:00:00Z",
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-01T00:00:00.Z",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }
}
