//! The pipeline core, shared by the streaming worker (`argus work`) and the batch scorer
//! (`argus score`), so both apply the same rules to an input:
//!
//! 1. **prepare** ([`Pipeline::prepare`]): size check, envelope decode, age check, decode
//!    and preprocess. Blocking.
//! 2. **infer** ([`infer_batch`], [`Pipeline::infer`]): one model call per batch; a batch
//!    that fails as a whole is retried input by input, so a failure stays with the input
//!    that caused it; a panic in the model becomes a failure, not a dead thread.
//! 3. **outputs** ([`Pipeline::render`]): a prediction plus an alert per matching rule, a
//!    stale prediction, or a dead letter with its reason.
//! 4. **publish** ([`Publisher`]): acknowledged (enqueue, then confirm with retries and the
//!    DLQ for outputs that can never be delivered) or, in the worker's exactly-once mode,
//!    queued inside a transaction.
//!
//! The worker runs stage 2 on its inference threads (batches form from whatever is
//! queued) and stages 1 and 4 per input task; the scorer runs them in order on one task.
use crate::config::WorkerConfig;
pub use crate::evidence::{AwaitingEvidence, EvidencePool, Explaining};
use crate::job::prepare;
use crate::outputs::Outputs;

pub use crate::job::{Classified, Failure, Job, Prepare, Ready, Stale};
pub use crate::outputs::{alert_schema, Finished, JsonOutputs, Outcome, Rendered};
pub use crate::publish::{dlq_headers, json_headers, Enqueued, Publisher, Undelivered};
use argus_kafka::rdkafka::producer::FutureProducer;
use argus_model::{Classification, Classifier, Prepared};
use argus_wire::FailureKind;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One model with the rules that turn its inputs into outputs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    model: Arc<Classifier>,
    outputs: Outputs,
    explaining: Explaining,
    max_input_bytes: usize,
    max_age: Option<Duration>,
    metrics: Arc<crate::metrics::VersionMetrics>,
}

impl Pipeline {
    /// The streaming worker's pipeline of `model` under `config` (rules, top-k, worker id,
    /// input limits, evidence on alerts).
    pub fn new(model: Arc<Classifier>, config: &WorkerConfig) -> Self {
        let explaining = Explaining::for_model(&model, &config.evidence);
        Self::with(model, config, explaining)
    }

    /// [`Pipeline::new`] for the callers that never attach evidence (`argus score`,
    /// `serve`, `evaluate`): no explainer is built, whatever `[worker.evidence]` says.
    pub fn without_evidence(model: Arc<Classifier>, config: &WorkerConfig) -> Self {
        Self::with(model, config, Explaining::Off)
    }

    fn with(model: Arc<Classifier>, config: &WorkerConfig, explaining: Explaining) -> Self {
        Pipeline {
            outputs: Outputs::new(config, &model),
            explaining,
            model,
            max_input_bytes: config.max_input_bytes,
            max_age: config.max_age,
            metrics: Arc::default(),
        }
    }

    /// The metrics this version records per input.
    pub(crate) fn metrics(&self) -> &crate::metrics::VersionMetrics {
        &self.metrics
    }

    /// The model.
    pub fn model(&self) -> &Arc<Classifier> {
        &self.model
    }

    /// How this version's alerts get evidence.
    pub fn explaining(&self) -> &Explaining {
        &self.explaining
    }

    /// Why evidence was asked for but this version cannot give it (start-up refuses such
    /// a model: exit 64 with this reason).
    pub fn evidence_problem(&self) -> Option<&str> {
        match &self.explaining {
            Explaining::Unavailable(reason) => Some(reason),
            Explaining::Off | Explaining::Ready(_) => None,
        }
    }

    /// Stage 1 for one input. Blocking.
    pub fn prepare(&self, job: &Job) -> Prepare {
        prepare(job, &self.model, self.max_input_bytes, self.max_age)
    }

    /// Stage 2 for a batch of prepared inputs, in order. Blocking.
    pub fn infer(&self, batch: Vec<(Job, Ready)>) -> Vec<(Job, Outcome)> {
        let prepared: Vec<Prepared> = batch.iter().map(|(_, r)| r.prepared.clone()).collect();
        let results = infer_batch(&self.model, &prepared);
        batch
            .into_iter()
            .zip(results)
            .map(|((job, ready), result)| (job, classified(ready, result)))
            .collect()
    }

    /// The prediction (without alerts) of a classified input: a shadow version's output.
    pub fn prediction(&self, job: &Job, c: &Classified) -> argus_wire::Prediction {
        self.outputs.outputs(job, c).0
    }

    /// Stage 3: what one input publishes.
    pub fn render(&self, job: &Job, outcome: &Outcome) -> Rendered {
        self.outputs.render(job, outcome)
    }

    /// Stage 3 with evidence asked for: the outputs to publish, and this version's alerts
    /// with their evidence on its way from `pool` (see [`AwaitingEvidence`]), kept apart
    /// so the prediction need not wait for it. Without a pool, or without alerts, the
    /// alerts are among the outputs as [`Pipeline::render`] gives them.
    pub fn render_asking_evidence(
        &self,
        job: &Job,
        outcome: &Outcome,
        pool: Option<&EvidencePool>,
    ) -> (Rendered, Option<AwaitingEvidence>) {
        let Some(pool) = pool else {
            return (self.outputs.render(job, outcome), None);
        };
        let (mut rendered, alerts) = self.outputs.render_split(job, outcome);
        match outcome {
            Outcome::Classified(c) if !alerts.is_empty() => {
                let awaiting = pool.request(&self.explaining, &self.model, c, alerts);
                (rendered, Some(awaiting))
            }
            _ => {
                rendered.push_alerts(&alerts);
                (rendered, None)
            }
        }
    }

    /// Stage 3 with evidence on the alerts computed now, without a deadline (batch
    /// scoring; see [`Explaining::attach_now`]), and how many alerts got it. Blocking.
    pub fn render_explained(&self, job: &Job, outcome: &Outcome) -> (Rendered, usize) {
        let (mut rendered, mut alerts) = self.outputs.render_split(job, outcome);
        let mut explained = 0;
        if let (Outcome::Classified(c), false) = (outcome, alerts.is_empty()) {
            explained = self
                .explaining
                .attach_now(&self.model, &c.envelope.payload, &mut alerts);
        }
        rendered.push_alerts(&alerts);
        (rendered, explained)
    }

    /// A publisher for this pipeline's outputs (stage 4); see [`Publisher::new`].
    pub fn publisher(
        &self,
        producer: FutureProducer,
        config: &WorkerConfig,
        give_up: CancellationToken,
    ) -> Publisher {
        Publisher::new(producer, config, give_up)
    }
}

/// The outcome of an input whose model call returned `result`.
pub fn classified(ready: Ready, result: Result<Classification, Failure>) -> Outcome {
    match result {
        Ok(classification) => Outcome::Classified(Classified {
            envelope: ready.envelope,
            classification,
            queue_us: ready.queue_us,
            envelope_us: ready.envelope_us,
        }),
        Err(f) => Outcome::Failed(f),
    }
}

/// Runs `prepared` as one batch; if the batch fails as a whole, runs each input alone so a
/// failure stays with the input that caused it. One result per input, in order. Blocking.
pub fn infer_batch(
    model: &Classifier,
    prepared: &[Prepared],
) -> Vec<Result<Classification, Failure>> {
    match run_guarded(model, prepared) {
        Ok(outs) if outs.len() == prepared.len() => outs.into_iter().map(Ok).collect(),
        Ok(outs) => {
            let f = model_failure(format!(
                "the model returned {} outputs for {} inputs",
                outs.len(),
                prepared.len()
            ));
            prepared.iter().map(|_| Err(f.clone())).collect()
        }
        Err(_) if prepared.len() > 1 => prepared
            .iter()
            .map(|p| {
                run_guarded(model, std::slice::from_ref(p))
                    .and_then(|mut v| v.pop().ok_or_else(|| model_failure("no output".into())))
            })
            .collect(),
        Err(f) => prepared.iter().map(|_| Err(f.clone())).collect(),
    }
}

fn model_failure(detail: String) -> Failure {
    Failure {
        kind: FailureKind::Model,
        detail,
    }
}

/// Runs a batch; a panic inside the model becomes a failure, not a dead thread.
fn run_guarded(model: &Classifier, prepared: &[Prepared]) -> Result<Vec<Classification>, Failure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.classify_batch(prepared)
    })) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure {
            kind: e.failure_kind(),
            detail: e.to_string(),
        }),
        Err(_) => Err(model_failure("inference panicked".into())),
    }
}
