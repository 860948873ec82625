//! Publishing the outputs of one input to Kafka: its prediction and alerts, or a DLQ record
//! with the original key, value and headers and typed failure headers.
//!
//! Two steps, so a caller can keep per-key order while waiting concurrently:
//! [`Publisher::enqueue`] hands the records to the producer (in call order),
//! [`Publisher::confirm`] waits for the broker's acknowledgements, retrying failed
//! deliveries until the publisher's give-up token is cancelled, and sends the input to the
//! DLQ instead when its outputs can never be delivered. The worker's exactly-once mode
//! queues records with [`Publisher::queue_now`] inside its transaction instead (see
//! `process.rs`).
use crate::config::WorkerConfig;
use crate::job::{Failure, Job};
use crate::metrics::{self as m, OutputKind};
use crate::outputs::{alert_json, Finished, JsonOutputs, Rendered};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::message::{Header, OwnedHeaders};
use argus_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use argus_kafka::rdkafka::types::RDKafkaErrorCode;
use argus_kafka::rdkafka::util::Timeout;
use argus_wire::{headers as h, now_us, Alert, FailureKind, PREDICTION_SCHEMA};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Outputs could not be delivered before shutdown; the input must not be committed.
#[derive(Debug, thiserror::Error)]
#[error("outputs for {topic}/{partition}/{offset} not delivered: {source}")]
pub struct Undelivered {
    /// The input's topic.
    pub topic: String,
    /// The input's partition.
    pub partition: i32,
    /// The input's offset.
    pub offset: i64,
    /// Why the last attempt failed.
    #[source]
    pub source: KafkaError,
}

/// Publishes the outputs of inputs with one producer.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    worker_id: Arc<str>,
    predictions: Arc<str>,
    alerts: Arc<str>,
    dlq: Arc<str>,
    shadow: Arc<str>,
    give_up: CancellationToken,
    metrics: Arc<m::OutputMetrics>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

/// The outputs of one input, handed to the producer and not yet confirmed.
pub struct Enqueued {
    pending: Pending,
}

impl std::fmt::Debug for Enqueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueued").finish_non_exhaustive()
    }
}

enum Pending {
    Outputs {
        out: JsonOutputs,
        prediction: Result<DeliveryFuture, KafkaError>,
        alerts: Vec<Result<DeliveryFuture, KafkaError>>,
        shadow: Option<Box<Result<DeliveryFuture, KafkaError>>>,
    },
    DeadLetter(Failure),
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
/// The headers move into the record, and on to librdkafka when it is queued: a producer
/// that refuses it (queue full) hands it back to retry, so they are built once per output.
fn record<'a>(
    topic: &'a str,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    headers: OwnedHeaders,
) -> FutureRecord<'a, [u8], [u8]> {
    let record = FutureRecord::to(topic).payload(payload).headers(headers);
    match key {
        Some(k) => record.key(k),
        None => record,
    }
}

impl Publisher {
    /// A publisher writing with `producer` to `config`'s output topics. Failed deliveries
    /// are retried until `give_up` is cancelled (a cancelled token: one retry each).
    pub fn new(
        producer: FutureProducer,
        config: &WorkerConfig,
        give_up: CancellationToken,
    ) -> Self {
        Publisher {
            producer,
            worker_id: config.worker_id.as_str().into(),
            predictions: config.topics.predictions.as_str().into(),
            alerts: config.topics.alerts.as_str().into(),
            dlq: config.topics.dlq.as_str().into(),
            shadow: config.topics.shadow.as_str().into(),
            give_up,
            metrics: Arc::default(),
        }
    }

    /// Hands an input's prediction and alerts to the producer (waiting while its queue is
    /// full). Dead letters are sent by [`Publisher::confirm`].
    pub async fn enqueue(&self, job: &Job, rendered: Rendered) -> Enqueued {
        let pending = match rendered {
            Rendered::DeadLetter(f) => Pending::DeadLetter(f),
            Rendered::Outputs(out) => {
                let prediction = self
                    .enqueue_json(
                        &self.predictions,
                        job,
                        out.prediction_schema,
                        out.capture_us,
                        &out.prediction,
                    )
                    .await;
                let mut alerts = Vec::with_capacity(out.alerts.len());
                for (schema, json) in &out.alerts {
                    alerts.push(
                        self.enqueue_json(&self.alerts, job, schema, out.capture_us, json)
                            .await,
                    );
                }
                let shadow = match &out.shadow {
                    Some(json) => Some(Box::new(
                        self.enqueue_json(
                            &self.shadow,
                            job,
                            PREDICTION_SCHEMA,
                            out.capture_us,
                            json,
                        )
                        .await,
                    )),
                    None => None,
                };
                Pending::Outputs {
                    out,
                    prediction,
                    alerts,
                    shadow,
                }
            }
        };
        Enqueued { pending }
    }

    /// Hands `alerts` to the producer after the outputs already `enqueued` (waiting while
    /// its queue is full); [`Publisher::confirm`] then waits for them with the rest. A dead
    /// letter takes no alerts.
    pub async fn enqueue_alerts(&self, job: &Job, enqueued: &mut Enqueued, alerts: &[Alert]) {
        let Pending::Outputs {
            out,
            alerts: queued,
            ..
        } = &mut enqueued.pending
        else {
            return;
        };
        for a in alerts {
            let (schema, json) = alert_json(a);
            queued.push(
                self.enqueue_json(&self.alerts, job, schema, out.capture_us, &json)
                    .await,
            );
            out.alerts.push((schema, json));
        }
        if let Finished::Predicted { alerts } = &mut out.finished {
            *alerts = out.alerts.len();
        }
    }

    /// Waits until every output of the input is acknowledged (retrying failed deliveries),
    /// or sends the input to the DLQ: as its failure, or because its outputs can never be
    /// delivered (outputs already acknowledged stay; their ids let readers match them).
    pub async fn confirm(&self, job: &Job, enqueued: Enqueued) -> Result<Finished, Undelivered> {
        let undelivered = |source| Undelivered {
            topic: job.topic.clone(),
            partition: job.partition,
            offset: job.offset,
            source,
        };
        let (out, prediction, alerts, shadow) = match enqueued.pending {
            Pending::DeadLetter(failure) => {
                Box::pin(self.dead_letter(job, &failure))
                    .await
                    .map_err(undelivered)?;
                return Ok(Finished::DeadLettered(failure.kind));
            }
            Pending::Outputs {
                out,
                prediction,
                alerts,
                shadow,
            } => (out, prediction, alerts, shadow),
        };
        let capture = out.capture_us;
        let pred = self.confirm_json(
            prediction,
            &self.predictions,
            job,
            out.prediction_schema,
            capture,
            &out.prediction,
            OutputKind::Prediction,
        );
        let alerts_f = futures::future::join_all(out.alerts.iter().zip(alerts).map(
            |((schema, json), queued)| {
                self.confirm_json(
                    queued,
                    &self.alerts,
                    job,
                    schema,
                    capture,
                    json,
                    OutputKind::Alert,
                )
            },
        ));
        let shadow_f = async {
            match (shadow, &out.shadow) {
                (Some(queued), Some(json)) => {
                    self.confirm_json(
                        *queued,
                        &self.shadow,
                        job,
                        PREDICTION_SCHEMA,
                        capture,
                        json,
                        OutputKind::Shadow,
                    )
                    .await
                }
                _ => Ok(()),
            }
        };
        let (p, a, s) = tokio::join!(pred, alerts_f, shadow_f);
        match p.and(a.into_iter().collect::<Result<Vec<()>, _>>()).and(s) {
            Ok(_) => Ok(out.finished),
            Err(e) if is_permanent(&e) => {
                let failure = Failure {
                    kind: FailureKind::Oversize,
                    detail: format!("outputs for this input cannot be published: {e}"),
                };
                Box::pin(self.dead_letter(job, &failure))
                    .await
                    .map_err(undelivered)?;
                Ok(Finished::DeadLettered(failure.kind))
            }
            Err(e) => Err(undelivered(e)),
        }
    }

    /// Queues an input's records synchronously, for a transaction (no await while its
    /// gate is held): the prediction and alerts, or else the dead letter — also when the
    /// outputs can never be sent (too large). The transaction's commit acknowledges them.
    pub fn queue_in_transaction(
        &self,
        job: &Job,
        rendered: &Rendered,
    ) -> Result<Finished, KafkaError> {
        let key = job.key.as_deref();
        let failure = match rendered {
            Rendered::Outputs(out) => {
                let mut queued = self.queue_now(
                    &self.predictions,
                    key,
                    &out.prediction,
                    json_headers(out.prediction_schema, out.capture_us),
                );
                for (schema, json) in &out.alerts {
                    if queued.is_ok() {
                        queued = self.queue_now(
                            &self.alerts,
                            key,
                            json,
                            json_headers(schema, out.capture_us),
                        );
                    }
                }
                if let (Some(json), true) = (&out.shadow, queued.is_ok()) {
                    queued = self.queue_now(
                        &self.shadow,
                        key,
                        json,
                        json_headers(PREDICTION_SCHEMA, out.capture_us),
                    );
                }
                match queued {
                    Ok(()) => {
                        self.metrics.queued(OutputKind::Prediction, 1);
                        self.metrics
                            .queued(OutputKind::Alert, out.alerts.len() as u64);
                        return Ok(out.finished.clone());
                    }
                    Err(e) if is_permanent(&e) => Failure {
                        kind: FailureKind::Oversize,
                        detail: "outputs for this input cannot be published: message too large"
                            .into(),
                    },
                    Err(e) => return Err(e),
                }
            }
            Rendered::DeadLetter(f) => f.clone(),
        };
        let mut r = self.queue_now(
            &self.dlq,
            key,
            &job.value,
            dlq_headers(&self.worker_id, job, &failure, false),
        );
        if matches!(
            r,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            ))
        ) {
            r = self.queue_now(
                &self.dlq,
                key,
                &[],
                dlq_headers(&self.worker_id, job, &failure, true),
            );
        }
        r?;
        tracing::warn!(topic = %job.topic, partition = job.partition, offset = job.offset, reason = %failure.kind, detail = %failure.detail, "input sent to the dead-letter topic");
        metrics::counter!(m::OUTPUTS, "kind" => "dlq", "outcome" => "ok").increment(1);
        metrics::counter!(m::DLQ, "reason" => failure.kind.as_str()).increment(1);
        Ok(Finished::DeadLettered(failure.kind))
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
        let mut record = record(topic, key, payload, headers);
        loop {
            match self.producer.send_result(record) {
                // The transaction's commit waits for the acknowledgement.
                Ok(_delivery) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), refused)) => {
                    record = refused;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
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
        let record = record(
            topic,
            job.key.as_deref(),
            json,
            json_headers(schema, capture_us),
        );
        argus_kafka::send_when_queued(&self.producer, record, Duration::from_millis(5)).await
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
        kind: OutputKind,
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
            // Retries are rare: boxed, their state stays out of every input's task.
            Err(_) => {
                Box::pin(self.deliver(
                    topic,
                    job.key.as_deref(),
                    json,
                    json_headers(schema, capture_us),
                ))
                .await
            }
        };
        let age = result
            .is_ok()
            .then(|| now_us().saturating_sub(capture_us).max(0) as f64 / 1e6);
        self.metrics.confirmed(kind, age);
        result
    }

    async fn dead_letter(&self, job: &Job, failure: &Failure) -> Result<(), KafkaError> {
        tracing::warn!(topic = %job.topic, partition = job.partition, offset = job.offset, reason = %failure.kind, detail = %failure.detail, "input sent to the dead-letter topic");
        let make_headers =
            |value_dropped: bool| dlq_headers(&self.worker_id, job, failure, value_dropped);
        let topic = &self.dlq;
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
            // A failed send does not give the record back: each attempt copies the headers.
            let record = record(topic, key, payload, headers.clone());
            match self
                .producer
                .send(record, Timeout::After(Duration::from_secs(5)))
                .await
            {
                Ok(_) => return Ok(()),
                Err((e, _)) => {
                    if is_permanent(&e) || self.give_up.is_cancelled() {
                        return Err(e);
                    }
                    tracing::warn!(topic, error = %e, backoff_ms = backoff.as_millis() as u64, "produce failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.give_up.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Headers of a JSON output: its schema, content type and the input's capture time.
pub fn json_headers(schema: &str, capture_us: i64) -> OwnedHeaders {
    // Formatted on the stack: one allocation fewer per output (20 bytes hold any i64).
    let mut digits = [0u8; 20];
    let capture = {
        let mut rest = &mut digits[..];
        let _ = std::io::Write::write_fmt(&mut rest, format_args!("{capture_us}"));
        let written = 20 - rest.len();
        &digits[..written]
    };
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
            value: Some(capture),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// DLQ headers: the original headers (minus any `argus-dlq-*`; a name that is not UTF-8 as
/// `argus-dlq-raw-header-<hex>`) plus ours.
pub fn dlq_headers(
    worker_id: &str,
    job: &Job,
    failure: &Failure,
    value_dropped: bool,
) -> OwnedHeaders {
    let mut hs = OwnedHeaders::new();
    let mut raw_names = Vec::new();
    for header in job.headers.iter() {
        match header.name_str() {
            // Incoming `argus-dlq-*` headers are dropped so none can pass for ours.
            Some(name) if name.starts_with("argus-dlq-") => {}
            Some(name) => {
                hs = hs.insert(Header {
                    key: name,
                    value: header.value,
                });
            }
            // The client writes only UTF-8 names: such a header is kept under
            // `argus-dlq-raw-header-<hex of its name>`, its value as it was.
            None => raw_names.push((
                format!("{}{}", h::DLQ_RAW_HEADER_PREFIX, hex(header.name)),
                header,
            )),
        }
    }
    for (name, header) in &raw_names {
        hs = hs.insert(Header {
            key: name.as_str(),
            value: header.value,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use argus_kafka::rdkafka::message::Headers;

    fn header(hs: &OwnedHeaders, name: &str) -> Option<String> {
        hs.iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn json_headers_carry_the_schema_the_content_type_and_any_capture_time() {
        for capture in [0, 1_700_000_000_123_456, -1, i64::MIN, i64::MAX] {
            let hs = json_headers("argus.prediction/v1", capture);
            assert_eq!(hs.count(), 3);
            assert_eq!(
                header(&hs, h::SCHEMA).as_deref(),
                Some("argus.prediction/v1")
            );
            assert_eq!(
                header(&hs, h::CONTENT_TYPE).as_deref(),
                Some("application/json")
            );
            assert_eq!(header(&hs, h::CAPTURE_TIME_US), Some(capture.to_string()));
        }
    }
}
