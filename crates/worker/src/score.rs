//! Batch scoring (`argus score`): a bounded range of an input topic (from a time, or the
//! beginning, up to the end offsets seen at start) through the pipeline core
//! ([`crate::pipeline`]), publishing the same predictions, alerts and dead letters a worker
//! would, and the at-risk report: the records whose positive-label score reaches the
//! decision threshold, best first, top N, with the features the model used as evidence
//! columns. With `[worker.evidence]` on, every alert carries its evidence (computed
//! without a deadline: nothing waits on a batch) and the report adds a `why` column, each
//! row's top reasons in plain words.
//!
//! Deterministic: the range is fixed at start (end offsets), one row per key (its latest
//! record in the range), ordered by score descending then key — so two runs over the same
//! range write the same report byte for byte. No consumer-group offsets are committed.
use crate::config::WorkerConfig;
use crate::job::{Job, Prepare, Ready};
use crate::outputs::{Finished, Outcome, Rendered};
use crate::pipeline::{Explaining, Pipeline};
use crate::publish::{Publisher, Undelivered};
use crate::WorkerError;
use argus_kafka::bounded::{self, Bounds};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::producer::FutureProducer;
use argus_kafka::rdkafka::{Message, Offset, TopicPartitionList};
use argus_kafka::KafkaSetupError;
use argus_model::explain::Explainer;
use argus_model::Classifier;
use argus_wire::Payload;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What to score and where the report goes.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    /// The input topic.
    pub input: String,
    /// Start at records written at or after this time (ms since the Unix epoch; negative
    /// means the beginning) [default: the beginning].
    pub start_ms: Option<i64>,
    /// Records per model call.
    pub batch: usize,
    /// The label index the report ranks by, and its threshold.
    pub positive: usize,
    /// Records below this score are not in the report.
    pub threshold: f32,
    /// The at-risk report (CSV).
    pub report: PathBuf,
    /// Rows in the report, at most (0: all at or above the threshold).
    pub top: usize,
}

/// What a scoring run did.
#[derive(Debug, Clone, Default)]
pub struct ScoreSummary {
    /// Records scored (the model ran).
    pub scored: u64,
    /// Partitions of the input topic.
    pub partitions: usize,
    /// Dead letters by reason.
    pub dlq: BTreeMap<&'static str, u64>,
    /// Alerts raised.
    pub alerts: u64,
    /// Alerts that carry evidence (`[worker.evidence] enabled`).
    pub explained: u64,
    /// Inputs whose outputs the broker did not acknowledge.
    pub delivery_failures: u64,
    /// Keys at or above the threshold.
    pub at_risk: usize,
    /// Rows written to the report.
    pub written: usize,
    /// How long the run took.
    pub elapsed: Duration,
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

/// Scores `config`'s range with `model` under the worker's rules (`worker`: output topics,
/// alert rules, top-k, input limits), publishing with `producer` if given, and writes the
/// report. `consumer` must not auto-commit.
pub async fn score(
    config: &ScoreConfig,
    worker: &WorkerConfig,
    model: Arc<Classifier>,
    consumer: StreamConsumer,
    producer: Option<FutureProducer>,
) -> Result<ScoreSummary, WorkerError> {
    let started = Instant::now();
    let mut worker = worker.clone();
    // A batch scores what is in its range, however old.
    worker.max_age = None;
    let pipeline = Pipeline::new(model, &worker);
    if let Some(problem) = pipeline.evidence_problem() {
        return Err(WorkerError::Config(format!(
            "--evidence: {problem}; add an [explain] section to the bundle or turn evidence off"
        )));
    }
    let ends = bounded::time_bounds(
        &consumer,
        &config.input,
        config.start_ms,
        None,
        Duration::from_secs(10),
    )
    .map_err(setup)?;
    let assignment = bounded::assignment(&config.input, &ends).map_err(setup)?;
    let total = bounded::total(&ends);
    tracing::info!(topic = %config.input, partitions = ends.len(), records = total, from_ms = ?config.start_ms, "scoring a bounded range");
    let publish = producer.map(|producer| Publish {
        // Each failed delivery is retried once, then counted: a batch does not wait out
        // a broker outage, it reports it.
        publisher: pipeline.publisher(producer, &worker, {
            let give_up = CancellationToken::new();
            give_up.cancel();
            give_up
        }),
        pending: FuturesUnordered::new(),
        pending_bytes: 0,
    });
    let mut run = Run {
        config,
        pipeline: &pipeline,
        publish,
        latest: HashMap::new(),
        summary: ScoreSummary {
            partitions: ends.len(),
            ..ScoreSummary::default()
        },
    };
    if total > 0 {
        consumer
            .assign(&assignment)
            .map_err(|e| kafka(&format!("cannot assign {}", config.input), e))?;
        run.read(&consumer, &ends, total).await?;
    }
    if let Some(p) = run.publish.as_mut() {
        run.summary.delivery_failures += p.settle().await;
    }
    let mut summary = run.summary;
    let (at_risk, written) = write_report(config, &pipeline, run.latest)?;
    summary.at_risk = at_risk;
    summary.written = written;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// A bounded-read failure: a missing topic is the input's fault, a lookup Kafka's.
fn setup(e: KafkaSetupError) -> WorkerError {
    match e {
        KafkaSetupError::Lookup { what, source } => WorkerError::Kafka { what, source },
        other => WorkerError::Input(other.to_string()),
    }
}

fn kafka(what: &str, source: KafkaError) -> WorkerError {
    WorkerError::Kafka {
        what: what.to_string(),
        source,
    }
}

/// One scoring run's state.
struct Run<'a> {
    config: &'a ScoreConfig,
    pipeline: &'a Pipeline,
    publish: Option<Publish>,
    latest: HashMap<String, Scored>,
    summary: ScoreSummary,
}

impl Run<'_> {
    /// Reads the range to its end, scoring in batches.
    async fn read(
        &mut self,
        consumer: &StreamConsumer,
        ends: &Bounds,
        total: i64,
    ) -> Result<(), WorkerError> {
        let topic = &self.config.input;
        let mut open: HashMap<i32, i64> = ends
            .iter()
            .filter(|(_, (s, e))| s < e)
            .map(|(p, (_, e))| (*p, *e))
            .collect();
        let mut batch: Vec<(Job, Ready)> = Vec::with_capacity(self.config.batch);
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
                            close(consumer, topic, &mut open, m.partition());
                        }
                        match self.pipeline.prepare(&job) {
                            Prepare::Ready(r) => batch.push((job, r)),
                            Prepare::Failed(f) => self.emit(job, Outcome::Failed(f)).await,
                            Prepare::Stale(_) => {}
                        }
                    } else if open.contains_key(&m.partition()) {
                        // Past the end seen at start: new records are not in the range.
                        close(consumer, topic, &mut open, m.partition());
                    }
                }
                Ok(Err(e)) => return Err(kafka(&format!("consuming {topic}"), e)),
                Err(_) => {}
            }
            // Transaction markers and compaction leave offsets no record has: the range of
            // a partition is done once the consumer's position reaches its end.
            if let Ok(positions) = consumer.position() {
                for e in positions.elements() {
                    if let (Offset::Offset(o), Some(end)) =
                        (e.offset(), open.get(&e.partition()).copied())
                    {
                        if o >= end {
                            close(consumer, topic, &mut open, e.partition());
                        }
                    }
                }
            }
            if batch.len() >= self.config.batch.max(1) || (open.is_empty() && !batch.is_empty()) {
                for (job, outcome) in self.pipeline.infer(std::mem::take(&mut batch)) {
                    self.emit(job, outcome).await;
                }
            }
            if last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                tracing::info!(
                    read = seen,
                    total,
                    percent = format!("{:.1}", 100.0 * seen as f64 / total.max(1) as f64),
                    scored = self.summary.scored,
                    "scoring"
                );
            }
        }
        // The last partition's close scored the final batch inside the loop.
        debug_assert!(batch.is_empty());
        Ok(())
    }

    /// One scored (or failed) input: counted, kept for the report if it is its key's latest,
    /// and published as a worker would (prediction and alerts, or its dead letter).
    async fn emit(&mut self, job: Job, outcome: Outcome) {
        match &outcome {
            Outcome::Classified(c) => {
                self.summary.scored += 1;
                let key = job
                    .key_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| c.envelope.source_id.clone());
                let scored = Scored {
                    key: key.clone(),
                    score: c.classification.probability(self.config.positive),
                    evidence: self.pipeline.model().evidence(&c.envelope.payload),
                    partition: job.partition,
                    offset: job.offset,
                    order: (job.timestamp_ms.unwrap_or(0), job.partition, job.offset),
                };
                // One row per key: its latest record in the range (by Kafka timestamp, so also
                // when a key's records sit in two partitions after the topic grew).
                match self.latest.get(&key) {
                    Some(old) if old.order > scored.order => {}
                    _ => {
                        self.latest.insert(key, scored);
                    }
                }
            }
            Outcome::Failed(f) => {
                *self.summary.dlq.entry(f.kind.as_str()).or_default() += 1;
                if self.publish.is_none() {
                    tracing::warn!(partition = job.partition, offset = job.offset, reason = %f.kind, detail = %f.detail, "record cannot be scored (not sent to the dead-letter topic: --no-publish)");
                }
            }
            Outcome::Stale(_) => {}
        }
        // A batch has no deadline: evidence (when on) is computed for every alert it
        // publishes.
        let (rendered, explained) = if self.publish.is_some() {
            self.pipeline.render_explained(&job, &outcome)
        } else {
            (self.pipeline.render(&job, &outcome), 0)
        };
        self.summary.alerts += rendered.alerts() as u64;
        self.summary.explained += explained as u64;
        if let Some(p) = self.publish.as_mut() {
            self.summary.delivery_failures += p.send(job, rendered).await;
        }
    }
}

/// Outputs being published: handed to the producer in input order, their
/// acknowledgements awaited concurrently (retried once, then counted as failures).
struct Publish {
    publisher: Publisher,
    pending: FuturesUnordered<futures::future::BoxFuture<'static, Result<Finished, Undelivered>>>,
    /// Payload bytes of the inputs whose outputs are pending (kept for the DLQ).
    pending_bytes: usize,
}

/// Acknowledgements awaited at once, at most: a range of millions of records must not hold
/// a delivery future (and its input) per output.
const MAX_PENDING: usize = 20_000;
/// Input bytes held for pending outputs, at most (frames are large).
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

impl Publish {
    /// Hands one input's outputs to the producer; collects the acknowledgements that have
    /// already arrived. Returns how many inputs' outputs the broker did not acknowledge.
    async fn send(&mut self, job: Job, rendered: Rendered) -> u64 {
        let enqueued = self.publisher.enqueue(&job, rendered).await;
        let publisher = self.publisher.clone();
        self.pending_bytes += job.value.len();
        self.pending
            .push(async move { publisher.confirm(&job, enqueued).await }.boxed());
        let mut failed = 0;
        while let Some(Some(r)) = self.pending.next().now_or_never() {
            failed += u64::from(!Self::confirmed(r));
        }
        if self.pending.len() >= MAX_PENDING || self.pending_bytes >= MAX_PENDING_BYTES {
            failed += self.settle().await;
        }
        if self.pending.is_empty() {
            self.pending_bytes = 0;
        }
        failed
    }

    /// Waits for every pending output; returns how many inputs' outputs failed.
    async fn settle(&mut self) -> u64 {
        let mut failed = 0;
        while let Some(r) = self.pending.next().await {
            failed += u64::from(!Self::confirmed(r));
        }
        self.pending_bytes = 0;
        failed
    }

    fn confirmed(r: Result<Finished, Undelivered>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "outputs not acknowledged");
                false
            }
        }
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

fn csv_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The report's `why`: the top reasons for `label`'s score of the record with `features`
/// (the values the model used, as the report shows them), in plain words, `; `-separated.
fn why(
    explainer: &Explainer,
    model: &Classifier,
    label: usize,
    features: &[(String, serde_json::Value)],
) -> String {
    let json = serde_json::Value::Object(features.iter().cloned().collect());
    let explained = serde_json::to_vec(&json)
        .map_err(|e| e.to_string())
        .and_then(|bytes| argus_wire::json_record(&bytes).map_err(|e| e.to_string()))
        .and_then(|record| {
            explainer
                .explain(model, &Payload::Record(record), label, &[])
                .map_err(|e| e.to_string())
        });
    match explained {
        Ok(e) => e.summary.join("; "),
        Err(reason) => format!("(no evidence: {reason})"),
    }
}

/// Writes the at-risk report; returns (keys at or above the threshold, rows written).
fn write_report(
    config: &ScoreConfig,
    pipeline: &Pipeline,
    latest: HashMap<String, Scored>,
) -> Result<(usize, usize), WorkerError> {
    let (model, positive, threshold) = (pipeline.model(), config.positive, config.threshold);
    let mut rows: Vec<Scored> = latest
        .into_values()
        .filter(|s| s.score >= threshold)
        .collect();
    rows.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
    let at_risk = rows.len();
    if config.top > 0 {
        rows.truncate(config.top);
    }
    let label = &model.labels()[positive];
    let features: Vec<String> = model
        .manifest()
        .features
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let io = |e: std::io::Error| WorkerError::Report {
        path: config.report.clone(),
        source: e,
    };
    let mut w = csv::Writer::from_path(&config.report).map_err(|e| io(e.into()))?;
    let explainer = match pipeline.explaining() {
        Explaining::Ready(e) => Some(e),
        Explaining::Off | Explaining::Unavailable(_) => None,
    };
    let mut header = vec!["rank".to_string(), "key".into(), format!("p_{label}")];
    header.extend(features.iter().cloned());
    header.extend(["topic".into(), "partition".into(), "offset".into()]);
    if explainer.is_some() {
        header.push("why".into());
    }
    w.write_record(&header).map_err(|e| io(e.into()))?;
    for (i, r) in rows.iter().enumerate() {
        let mut line = vec![(i + 1).to_string(), r.key.clone(), r.score.to_string()];
        line.extend(r.evidence.iter().map(|(_, v)| csv_value(v)));
        line.extend([
            config.input.clone(),
            r.partition.to_string(),
            r.offset.to_string(),
        ]);
        if let Some(e) = explainer {
            line.push(why(e, model, positive, &r.evidence));
        }
        w.write_record(&line).map_err(|e| io(e.into()))?;
    }
    w.flush().map_err(io)?;
    Ok((at_risk, rows.len()))
}
