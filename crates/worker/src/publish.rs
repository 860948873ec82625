//! Outputs of one input: a `Prediction` plus an `Alert` per matching rule, a stale
//! `Prediction` (v2), or a DLQ record with the original key, value and headers and typed
//! failure headers.
//!
//! At-least-once: `publish` returns once every output is acknowledged by the broker (or
//! gives up at shutdown). Exactly-once: outputs are queued inside the open transaction
//! (under the transaction's gate, so a commit never splits one input's outputs from its
//! offset) and the transaction's commit acknowledges them. Either way, outputs are handed
//! over only while the input's partition is still owned (see [`Tracker::begin_publish`])
//! and the tracker is told when the input is finished.
use crate::config::WorkerConfig;
use crate::job::{Classified, Failure, Job, Stale};
use crate::metrics as m;
use crate::tracker::Tracker;
use crate::txn::Transactions;
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::message::{Header, OwnedHeaders};
use argus_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use argus_kafka::rdkafka::types::RDKafkaErrorCode;
use argus_kafka::rdkafka::util::Timeout;
use argus_model::Classifier;
use argus_wire::{
    headers as h, Alert, FailureKind, ModelRef, Payload, Prediction, PredictionOutcome, Score,
    Skipped, Timings, ALERT_SCHEMA, ALERT_SCHEMA_V2, PREDICTION_SCHEMA, PREDICTION_SCHEMA_V2,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What became of an input before publishing.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The model ran.
    Classified(Classified),
    /// Older than `max_age` when reached; the model did not run.
    Stale(Stale),
    /// Goes to the DLQ.
    Failed(Failure),
}

/// What happened to an input whose outputs were all acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// A prediction (and this many alerts) were published.
    Predicted { alerts: usize },
    /// A stale prediction was published; the model did not run.
    Stale,
    /// The input went to the DLQ.
    DeadLettered(FailureKind),
    /// The partition was revoked before the outputs were handed over; nothing was
    /// published and the next owner redoes the input.
    Abandoned,
}

/// Outputs could not be delivered before shutdown; the input must not be committed.
#[derive(Debug, thiserror::Error)]
#[error("outputs for {topic}/{partition}/{offset} not delivered: {source}")]
pub struct Undelivered {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[source]
    pub source: KafkaError,
}

/// Builds the JSON outputs (prediction, alerts) of classified inputs: the workers and the
/// batch scorer (`argus score`) write the same records.
#[derive(Debug, Clone)]
pub struct Outputs {
    config: Arc<WorkerConfig>,
    model: ModelRef,
    labels: Arc<Vec<String>>,
    /// Tabular bundles: the features alerts carry as evidence (empty for images).
    features: Arc<Vec<argus_model::manifest::Feature>>,
}

/// The `argus-schema` header value of an alert: its body's version.
pub fn alert_schema(alert: &Alert) -> &'static str {
    if alert.schema == ALERT_SCHEMA_V2 {
        ALERT_SCHEMA_V2
    } else {
        ALERT_SCHEMA
    }
}

/// Publishes outputs for finished jobs.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    config: Arc<WorkerConfig>,
    outputs: Outputs,
    shutdown: CancellationToken,
    tracker: Arc<Tracker>,
    txn: Option<Arc<Transactions>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("model", &self.outputs.model)
            .finish_non_exhaustive()
    }
}

/// Errors that retrying the same record cannot fix.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::TopicAuthorizationFailed
        )
    )
}

/// One output record: `payload` with `headers` to `topic`, keyed by `key` if there is one.
fn record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    headers: &OwnedHeaders,
) -> FutureRecord<'a, [u8], [u8]> {
    let record = FutureRecord::to(topic)
        .payload(payload)
        .headers(headers.clone());
    match key {
        Some(k) => record.key(k),
        None => record,
    }
}

/// Wall-clock time in the wire's unit (re-exported for callers of this module).
pub use argus_wire::now_us;

/// JSON outputs of one input, ready to send.
struct JsonOutputs {
    prediction_schema: &'static str,
    prediction: Vec<u8>,
    /// Each alert's schema (v1, or v2 with features) and JSON.
    alerts: Vec<(&'static str, Vec<u8>)>,
    capture_us: i64,
    finished: Finished,
}

impl Publisher {
    /// A publisher writing with `producer`. After `shutdown`, deliveries are no longer
    /// retried. With `txn`, outputs go into its transactions instead of being awaited.
    pub fn new(
        producer: FutureProducer,
        config: Arc<WorkerConfig>,
        model: &Classifier,
        shutdown: CancellationToken,
        tracker: Arc<Tracker>,
        txn: Option<Arc<Transactions>>,
    ) -> Self {
        Publisher {
            producer,
            outputs: Outputs::new(config.clone(), model),
            config,
            shutdown,
            tracker,
            txn,
        }
    }
}

impl Outputs {
    /// Outputs of `model` under `config`'s rules, top-k and worker id.
    pub fn new(config: Arc<WorkerConfig>, model: &Classifier) -> Self {
        Outputs {
            config,
            model: model.model_ref().clone(),
            labels: Arc::new(model.labels().to_vec()),
            features: Arc::new(model.manifest().features.clone()),
        }
    }

    /// Builds the prediction and alerts for a classified input.
    pub fn outputs(&self, job: &Job, c: &Classified) -> (Prediction, Vec<Alert>) {
        let input = job.input_ref(Some(&c.envelope));
        let id = input.id();
        let probs = &c.classification.probabilities;
        let label_of = |i: usize| self.labels.get(i).cloned().unwrap_or_else(|| i.to_string());
        let top: Vec<Score> = c
            .classification
            .ranking
            .iter()
            .take(self.config.top_k.max(1))
            .map(|&i| Score {
                label: label_of(i),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                score: probs[i],
            })
            .collect();
        let best = c.classification.ranking.first().copied().unwrap_or(0);
        let now = now_us();
        let t = c.classification.timings;
        let prediction = Prediction {
            schema: PREDICTION_SCHEMA.into(),
            id: id.clone(),
            input: input.clone(),
            model: self.model.clone(),
            outcome: PredictionOutcome::Ok,
            label: Some(label_of(best)),
            score: Some(c.classification.probability(best)),
            top,
            timings: Timings {
                queue_us: c.queue_us,
                decode_us: t.decode_us + c.envelope_us,
                preprocess_us: t.preprocess_us,
                inference_us: t.inference_us,
                postprocess_us: t.postprocess_us,
                capture_to_output_us: u64::try_from(now.saturating_sub(c.envelope.capture_time_us))
                    .ok(),
            },
            worker: self.config.worker_id.clone(),
            produced_at_us: now,
            skipped: None,
        };
        // Records: the features the model used, as evidence (built only if an alert fires).
        let evidence = || match &c.envelope.payload {
            Payload::Record(r) if !self.features.is_empty() => Some(
                argus_model::tabular::evidence(&self.features, r)
                    .into_iter()
                    .collect::<serde_json::Map<_, _>>(),
            ),
            _ => None,
        };
        let alerts = self
            .config
            .rules
            .iter()
            .filter_map(|rule| {
                let i = self.labels.iter().position(|l| *l == rule.label)?;
                let score = c.classification.probability(i);
                if score < rule.threshold {
                    return None;
                }
                let features = evidence();
                Some(Alert {
                    schema: if features.is_some() {
                        ALERT_SCHEMA_V2
                    } else {
                        ALERT_SCHEMA
                    }
                    .into(),
                    id: format!("{id}/{}", rule.name),
                    prediction_id: id.clone(),
                    input: input.clone(),
                    model: self.model.clone(),
                    rule: argus_wire::AlertRule {
                        name: rule.name.clone(),
                        label: rule.label.clone(),
                        threshold: rule.threshold,
                    },
                    label: rule.label.clone(),
                    score,
                    worker: self.config.worker_id.clone(),
                    raised_at_us: now,
                    features,
                })
            })
            .collect();
        (prediction, alerts)
    }

    /// The (v2) prediction for an input that was too old to run.
    pub fn stale_prediction(&self, job: &Job, stale: &Stale) -> Prediction {
        let Stale {
            envelope,
            age_us,
            max_age_us,
            queue_us,
        } = stale;
        let input = job.input_ref(Some(envelope));
        let now = now_us();
        Prediction {
            schema: PREDICTION_SCHEMA_V2.into(),
            id: input.id(),
            input,
            model: self.model.clone(),
            outcome: PredictionOutcome::Stale,
            label: None,
            score: None,
            top: Vec::new(),
            timings: Timings {
                queue_us: *queue_us,
                capture_to_output_us: u64::try_from(now.saturating_sub(envelope.capture_time_us))
                    .ok(),
                ..Timings::default()
            },
            worker: self.config.worker_id.clone(),
            produced_at_us: now,
            skipped: Some(Skipped {
                reason: "stale".into(),
                age_us: *age_us,
                max_age_us: *max_age_us,
            }),
        }
    }
}

impl Publisher {
    fn json_outputs(&self, job: &Job, outcome: &Outcome) -> Option<JsonOutputs> {
        match outcome {
            Outcome::Classified(c) => {
                let (prediction, alerts) = self.outputs.outputs(job, c);
                Some(JsonOutputs {
                    prediction_schema: PREDICTION_SCHEMA,
                    prediction: serde_json::to_vec(&prediction).unwrap_or_default(),
                    alerts: alerts
                        .iter()
                        .map(|a| (alert_schema(a), serde_json::to_vec(a).unwrap_or_default()))
                        .collect(),
                    capture_us: c.envelope.capture_time_us,
                    finished: Finished::Predicted {
                        alerts: alerts.len(),
                    },
                })
            }
            Outcome::Stale(stale) => {
                let p = self.outputs.stale_prediction(job, stale);
                Some(JsonOutputs {
                    prediction_schema: PREDICTION_SCHEMA_V2,
                    prediction: serde_json::to_vec(&p).unwrap_or_default(),
                    alerts: Vec::new(),
                    capture_us: stale.envelope.capture_time_us,
                    finished: Finished::Stale,
                })
            }
            Outcome::Failed(_) => None,
        }
    }

    /// Publishes the outputs of one input, waits for them to be acknowledged (or, in a
    /// transaction, queued) and marks the input finished in the tracker.
    ///
    /// Order: outputs are handed to the producer only after `after` fires (the previous
    /// input of the same partition has handed over its outputs), and `then` is released
    /// once this input's outputs are queued. With one idempotent producer this keeps the
    /// outputs of one key in input order even though inference runs concurrently. (A
    /// retried delivery can still overtake; that needs a broker outage to happen.)
    pub async fn publish(
        &self,
        job: &Job,
        generation: u64,
        outcome: Outcome,
        after: Option<oneshot::Receiver<()>>,
        then: oneshot::Sender<()>,
    ) -> Result<Finished, Undelivered> {
        if let Some(previous) = after {
            // An error only means the previous job ended without publishing.
            let _ = previous.await;
        }
        let tp = (job.topic.clone(), job.partition);
        if let Some(txn) = &self.txn {
            let r = self.publish_in_transaction(txn, job, generation, &outcome);
            drop(then);
            return r;
        }
        if !self.tracker.begin_publish(&tp, generation, job.offset) {
            return Ok(Finished::Abandoned);
        }
        let r = self.publish_acked(job, outcome, then).await;
        match &r {
            Ok(_) => {
                self.tracker.finish(&tp, generation, job.offset);
            }
            // Left unfinished: no later offset of this partition is stored.
            Err(_) => self.tracker.abandon(&tp, generation, job.offset),
        }
        r
    }

    async fn publish_acked(
        &self,
        job: &Job,
        outcome: Outcome,
        then: oneshot::Sender<()>,
    ) -> Result<Finished, Undelivered> {
        let undelivered = |source| Undelivered {
            topic: job.topic.clone(),
            partition: job.partition,
            offset: job.offset,
            source,
        };
        let Some(out) = self.json_outputs(job, &outcome) else {
            drop(then);
            let Outcome::Failed(failure) = outcome else {
                unreachable!("json_outputs is None only for failures")
            };
            self.dead_letter(job, &failure).await.map_err(undelivered)?;
            return Ok(Finished::DeadLettered(failure.kind));
        };
        let capture = out.capture_us;
        let p_json = &out.prediction;
        let a_json = &out.alerts;
        let pred_queued = self
            .enqueue_json(
                &self.config.topics.predictions,
                job,
                out.prediction_schema,
                capture,
                p_json,
            )
            .await;
        let mut alerts_queued = Vec::with_capacity(a_json.len());
        for (schema, json) in a_json {
            alerts_queued.push(
                self.enqueue_json(&self.config.topics.alerts, job, schema, capture, json)
                    .await,
            );
        }
        drop(then);
        let pred = self.confirm_json(
            pred_queued,
            &self.config.topics.predictions,
            job,
            out.prediction_schema,
            capture,
            p_json,
            "prediction",
        );
        let alerts_f = futures::future::join_all(a_json.iter().zip(alerts_queued).map(
            |((schema, json), queued)| {
                self.confirm_json(
                    queued,
                    &self.config.topics.alerts,
                    job,
                    schema,
                    capture,
                    json,
                    "alert",
                )
            },
        ));
        let (p, a) = tokio::join!(pred, alerts_f);
        match p.and(a.into_iter().collect::<Result<Vec<()>, _>>()) {
            Ok(_) => Ok(out.finished),
            // An output that can never be delivered (e.g. a huge key copied into it) must
            // not block the partition: the input goes to the DLQ instead. Outputs already
            // acknowledged stay; their ids let readers match them.
            Err(e) if is_permanent(&e) => {
                let failure = Failure {
                    kind: FailureKind::Oversize,
                    detail: format!("outputs for this input cannot be published: {e}"),
                };
                self.dead_letter(job, &failure).await.map_err(undelivered)?;
                Ok(Finished::DeadLettered(failure.kind))
            }
            Err(e) => Err(undelivered(e)),
        }
    }

    /// Queues the input's outputs in the open transaction, atomically with marking the
    /// input finished (the commit takes the gate exclusively).
    fn publish_in_transaction(
        &self,
        txn: &Transactions,
        job: &Job,
        generation: u64,
        outcome: &Outcome,
    ) -> Result<Finished, Undelivered> {
        let tp = (job.topic.clone(), job.partition);
        let undelivered = |source| Undelivered {
            topic: job.topic.clone(),
            partition: job.partition,
            offset: job.offset,
            source,
        };
        let _gate = txn.gate();
        if !self.tracker.begin_publish(&tp, generation, job.offset) {
            return Ok(Finished::Abandoned);
        }
        let mut finished = None;
        if let Some(out) = self.json_outputs(job, outcome) {
            let mut queued = self.queue_now(
                &self.config.topics.predictions,
                job.key.as_deref(),
                &out.prediction,
                Self::json_headers(out.prediction_schema, out.capture_us),
            );
            for (schema, json) in &out.alerts {
                if queued.is_ok() {
                    queued = self.queue_now(
                        &self.config.topics.alerts,
                        job.key.as_deref(),
                        json,
                        Self::json_headers(schema, out.capture_us),
                    );
                }
            }
            match queued {
                Ok(()) => {
                    metrics::counter!(m::OUTPUTS, "kind" => "prediction", "outcome" => "ok")
                        .increment(1);
                    metrics::counter!(m::OUTPUTS, "kind" => "alert", "outcome" => "ok")
                        .increment(out.alerts.len() as u64);
                    finished = Some(out.finished);
                }
                Err(e) if is_permanent(&e) => {}
                Err(e) => {
                    txn.fail(format!("queueing outputs failed: {e}"));
                    self.tracker.abandon(&tp, generation, job.offset);
                    return Err(undelivered(e));
                }
            }
        }
        let finished = match finished {
            Some(f) => f,
            None => {
                let failure = match outcome {
                    Outcome::Failed(f) => f.clone(),
                    _ => Failure {
                        kind: FailureKind::Oversize,
                        detail: "outputs for this input cannot be published: message too large"
                            .into(),
                    },
                };
                let mut r = self.queue_now(
                    &self.config.topics.dlq,
                    job.key.as_deref(),
                    &job.value,
                    dlq_headers(&self.config.worker_id, job, &failure, false),
                );
                if matches!(
                    r,
                    Err(KafkaError::MessageProduction(
                        RDKafkaErrorCode::MessageSizeTooLarge
                    ))
                ) {
                    r = self.queue_now(
                        &self.config.topics.dlq,
                        job.key.as_deref(),
                        &[],
                        dlq_headers(&self.config.worker_id, job, &failure, true),
                    );
                }
                if let Err(e) = r {
                    txn.fail(format!("queueing a dead letter failed: {e}"));
                    self.tracker.abandon(&tp, generation, job.offset);
                    return Err(undelivered(e));
                }
                tracing::warn!(topic = %job.topic, partition = job.partition, offset = job.offset, reason = %failure.kind, detail = %failure.detail, "input sent to the dead-letter topic");
                metrics::counter!(m::OUTPUTS, "kind" => "dlq", "outcome" => "ok").increment(1);
                metrics::counter!(m::DLQ, "reason" => failure.kind.as_str()).increment(1);
                Finished::DeadLettered(failure.kind)
            }
        };
        txn.mark_dirty();
        if !self.tracker.finish(&tp, generation, job.offset) {
            // Cannot happen while revocation holds the gate; if it ever does, these outputs
            // would commit without their offset: make the transaction fail instead.
            txn.fail(format!(
                "outputs of {}/{}/{} queued after its partition was revoked",
                job.topic, job.partition, job.offset
            ));
        }
        Ok(finished)
    }

    /// Queues one record synchronously (transactions: no await while the gate is held),
    /// waiting briefly while the producer's queue is full.
    fn queue_now(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        loop {
            let record = record(topic, key, payload, &headers);
            match self.producer.send_result(record) {
                // The transaction's commit waits for the acknowledgement.
                Ok(_delivery) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Headers of a JSON output: its schema, content type and the input's capture time.
    pub fn json_headers(schema: &str, capture_us: i64) -> OwnedHeaders {
        let capture = capture_us.to_string();
        OwnedHeaders::new()
            .insert(Header {
                key: h::SCHEMA,
                value: Some(schema),
            })
            .insert(Header {
                key: h::CONTENT_TYPE,
                value: Some("application/json"),
            })
            .insert(Header {
                key: h::CAPTURE_TIME_US,
                value: Some(&capture),
            })
    }

    /// Hands one JSON output to the producer (waiting while its queue is full).
    async fn enqueue_json(
        &self,
        topic: &str,
        job: &Job,
        schema: &str,
        capture_us: i64,
        json: &[u8],
    ) -> Result<DeliveryFuture, KafkaError> {
        let headers = Self::json_headers(schema, capture_us);
        loop {
            let record = record(topic, job.key.as_deref(), json, &headers);
            match self.producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits for a queued output's acknowledgement; retries with backoff if it failed.
    #[allow(clippy::too_many_arguments)]
    async fn confirm_json(
        &self,
        queued: Result<DeliveryFuture, KafkaError>,
        topic: &str,
        job: &Job,
        schema: &str,
        capture_us: i64,
        json: &[u8],
        kind: &'static str,
    ) -> Result<(), KafkaError> {
        let first = match queued {
            Ok(f) => match f.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(Some(e)),
                Err(_canceled) => Err(None),
            },
            Err(e) => Err(Some(e)),
        };
        let result = match first {
            Ok(()) => Ok(()),
            Err(Some(e)) if is_permanent(&e) => Err(e),
            Err(_) => {
                self.deliver(
                    topic,
                    job.key.as_deref(),
                    json,
                    Self::json_headers(schema, capture_us),
                )
                .await
            }
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(m::OUTPUTS, "kind" => kind, "outcome" => outcome).increment(1);
        if result.is_ok() {
            let age = now_us().saturating_sub(capture_us).max(0) as f64 / 1e6;
            metrics::histogram!(m::END_TO_END_SECONDS, "kind" => kind).record(age);
        }
        result
    }

    async fn dead_letter(&self, job: &Job, failure: &Failure) -> Result<(), KafkaError> {
        tracing::warn!(topic = %job.topic, partition = job.partition, offset = job.offset, reason = %failure.kind, detail = %failure.detail, "input sent to the dead-letter topic");
        let make_headers =
            |value_dropped: bool| dlq_headers(&self.config.worker_id, job, failure, value_dropped);
        let topic = &self.config.topics.dlq;
        let mut result = self
            .deliver(topic, job.key.as_deref(), &job.value, make_headers(false))
            .await;
        if matches!(
            result,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            ))
        ) {
            // The original is still in its topic at the offset the headers name.
            result = self
                .deliver(topic, job.key.as_deref(), &[], make_headers(true))
                .await;
        }
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(m::OUTPUTS, "kind" => "dlq", "outcome" => outcome).increment(1);
        if result.is_ok() {
            metrics::counter!(m::DLQ, "reason" => failure.kind.as_str()).increment(1);
        }
        result
    }

    /// Sends one record, retrying with backoff until acknowledged; stops retrying after
    /// shutdown. Errors that retrying cannot fix are returned at once.
    async fn deliver(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let record = record(topic, key, payload, &headers);
            match self
                .producer
                .send(record, Timeout::After(Duration::from_secs(5)))
                .await
            {
                Ok(_) => return Ok(()),
                Err((e, _)) => {
                    if is_permanent(&e) || self.shutdown.is_cancelled() {
                        return Err(e);
                    }
                    tracing::warn!(topic, error = %e, backoff_ms = backoff.as_millis() as u64, "produce failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// DLQ headers: the original headers (minus any `argus-dlq-*`) plus ours.
pub fn dlq_headers(
    worker_id: &str,
    job: &Job,
    failure: &Failure,
    value_dropped: bool,
) -> OwnedHeaders {
    let mut hs = OwnedHeaders::new();
    // Incoming `argus-dlq-*` headers are dropped so none can pass for ours.
    for (k, v) in job
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("argus-dlq-"))
    {
        hs = hs.insert(Header {
            key: k.as_str(),
            value: Some(v.as_slice()),
        });
    }
    let partition = job.partition.to_string();
    let offset = job.offset.to_string();
    let time = now_us().to_string();
    let len = job.value.len().to_string();
    hs = hs
        .insert(Header {
            key: h::DLQ_REASON,
            value: Some(failure.kind.as_str()),
        })
        .insert(Header {
            key: h::DLQ_DETAIL,
            value: Some(failure.detail.as_str()),
        })
        .insert(Header {
            key: h::DLQ_SOURCE_TOPIC,
            value: Some(job.topic.as_str()),
        })
        .insert(Header {
            key: h::DLQ_SOURCE_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: h::DLQ_SOURCE_OFFSET,
            value: Some(&offset),
        })
        .insert(Header {
            key: h::DLQ_TIME_US,
            value: Some(&time),
        })
        .insert(Header {
            key: h::DLQ_WORKER,
            value: Some(worker_id),
        });
    if value_dropped {
        hs = hs.insert(Header {
            key: h::DLQ_VALUE_DROPPED,
            value: Some(&len),
        });
    }
    hs
}
