//! One input's task in the streaming worker: the pipeline's stages (see [`crate::pipeline`])
//! plus the worker's rules around them — bounded decode and read-ahead, per-partition output
//! order, partition ownership (the tracker) and, in exactly-once mode, the transaction.
//!
//! Order: outputs are handed to the producer only after `after` fires (the previous input
//! of the same partition has handed over its outputs), and `then` is released once this
//! input's outputs are queued. With one idempotent producer this keeps the outputs of one
//! key in input order even though inference runs concurrently. (A retried delivery can
//! still overtake; that needs a broker outage to happen.) One exception, at-least-once
//! with evidence on: an input's alerts awaiting their evidence are queued after `then` is
//! released, up to the evidence deadline later, so they may follow later inputs' outputs;
//! the input stays unfinished (uncommitted) until they are acknowledged.
use crate::infer::InferenceStage;
use crate::job::{Classified, Failure, Job, Prepare};
use crate::metrics as m;
use crate::models::{Models, Role, Route};
use crate::outputs::{Finished, Outcome, Rendered};
use crate::pipeline::{AwaitingEvidence, Pipeline};
use crate::publish::{Publisher, Undelivered};
use crate::tracker::Tracker;
use crate::txn::{Transactions, TxnError};
use crate::zone_state::{ZoneFrame, ZoneRunner};
use argus_wire::FailureKind;
use std::sync::Arc;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// What every input task of one worker shares.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// The versions serving; each input takes the set once, when the worker takes it.
    pub(crate) models: Arc<Models>,
    pub(crate) stage: Arc<InferenceStage>,
    pub(crate) publisher: Publisher,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) txn: Option<Arc<Transactions>>,
    /// Decode and preprocess run on the blocking pool, this many at once.
    pub(crate) decode_permits: Arc<Semaphore>,
    /// Inputs taken from the consumer and not yet through the model, at most.
    pub(crate) ahead_permits: Arc<Semaphore>,
    /// Zone rules (detection models), if any are configured.
    pub(crate) zones: Option<Arc<ZoneRunner>>,
    /// Evidence on alerts, when on.
    pub(crate) evidence: Option<Arc<crate::evidence::EvidencePool>>,
}

/// What one input publishes: its outputs, the frame for the zone rules (added in
/// partition order) and the alerts still awaiting their evidence.
#[derive(Debug)]
struct ToPublish {
    rendered: Rendered,
    zone: Option<ZoneFrame>,
    awaiting: Option<AwaitingEvidence>,
}

/// One input and its place in its partition's order.
#[derive(Debug)]
pub(crate) struct Input {
    pub(crate) job: Job,
    /// The version(s) it goes to, chosen when the worker took it.
    pub(crate) route: Route,
    /// The generation its partition was assigned in.
    pub(crate) generation: u64,
    /// The slot the loop took this input with (none if it came while paused).
    pub(crate) ahead: Option<OwnedSemaphorePermit>,
    /// Fires when the previous input of the partition has handed over its outputs.
    pub(crate) after: Option<oneshot::Receiver<()>>,
    /// Released once this input's outputs are handed over.
    pub(crate) then: oneshot::Sender<()>,
}

impl Shared {
    /// One input, on the version(s) it was routed to (production or canary; plus the
    /// shadow, if any): decoded and preprocessed on the bounded blocking pool, inferred on the batching
    /// stage, published in partition order.
    pub(crate) async fn process(&self, input: Input) -> Result<Finished, Undelivered> {
        let Input {
            job,
            route,
            generation,
            ahead,
            after,
            then,
        } = input;
        // Held from before decoding until the model has run.
        let ahead = match ahead {
            Some(p) => Ok(p),
            None => self.ahead_permits.clone().acquire_owned().await,
        };
        let shadow = async {
            match &route.shadow {
                // Boxed: only a worker with a shadow version pays for its state.
                Some(s) => Some(Box::pin(self.score(s, &job)).await),
                None => None,
            }
        };
        let (outcome, shadow) = tokio::join!(self.score(&route.primary, &job), shadow);
        drop(ahead);
        count_input(&route.primary, route.role);
        let (mut rendered, mut awaiting) =
            route
                .primary
                .render_asking_evidence(&job, &outcome, self.evidence.as_deref());
        if self.txn.is_some() {
            // Exactly-once: the alerts commit in the input's transaction, so its outputs
            // wait for their evidence (at most the deadline).
            if let Some(a) = awaiting.take() {
                rendered.push_alerts(&a.evidence().await);
            }
        }
        if let (Some(s), Some(shadow)) = (&route.shadow, shadow) {
            attach_shadow(&route, s, &job, &outcome, &shadow, &mut rendered);
        }
        let zone = self
            .zones
            .as_ref()
            .and_then(|z| z.frame(&job, &route.primary, &outcome));
        let outputs = ToPublish {
            rendered,
            zone,
            awaiting,
        };
        self.publish(&job, generation, outputs, after, then).await
    }

    /// Stages 1 and 2 of one input on one version.
    async fn score(&self, pipeline: &Arc<Pipeline>, job: &Job) -> Outcome {
        match self.prepare(pipeline, job).await {
            Prepare::Ready(ready) => {
                let (envelope, queue_us, envelope_us) =
                    (ready.envelope, ready.queue_us, ready.envelope_us);
                match self
                    .stage
                    .submit(pipeline.model().clone(), ready.prepared)
                    .await
                {
                    Ok(Ok(classification)) => {
                        let t = classification.timings;
                        let total = t.decode_us
                            + envelope_us
                            + t.preprocess_us
                            + t.inference_us
                            + t.postprocess_us;
                        pipeline.metrics().processing(total as f64 / 1e6);
                        Outcome::Classified(Classified {
                            envelope,
                            classification,
                            queue_us,
                            envelope_us,
                        })
                    }
                    Ok(Err(f)) => Outcome::Failed(f),
                    Err(_) => Outcome::Failed(Failure {
                        kind: FailureKind::Model,
                        detail: "inference stage stopped".into(),
                    }),
                }
            }
            Prepare::Stale(stale) => Outcome::Stale(stale),
            Prepare::Failed(f) => Outcome::Failed(f),
        }
    }

    /// Stage 1, panics caught: records on the reactor (a few µs of envelope decoding and
    /// feature assembly, less than handing them to a blocking thread would cost — in a
    /// profile of a churn drain thread hand-offs were the largest cost per record), images
    /// on the bounded blocking pool.
    async fn prepare(&self, pipeline: &Arc<Pipeline>, job: &Job) -> Prepare {
        if pipeline.model().cheap_to_prepare() {
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pipeline.prepare(job)
            }))
            .unwrap_or_else(|_| {
                Prepare::Failed(Failure {
                    kind: FailureKind::Model,
                    detail: "preparing the record panicked".into(),
                })
            });
        }
        let _permit = self.decode_permits.clone().acquire_owned().await;
        let (job, pipeline) = (job.clone(), pipeline.clone());
        tokio::task::spawn_blocking(move || pipeline.prepare(&job))
            .await
            .unwrap_or_else(|e| {
                Prepare::Failed(Failure {
                    kind: FailureKind::Model,
                    detail: format!("decode task failed: {e}"),
                })
            })
    }

    /// Publishes the outputs of one input, waits for them to be acknowledged (or, in a
    /// transaction, queued) and marks the input finished in the tracker. Outputs are
    /// handed over only while the input's partition is still owned
    /// ([`Tracker::begin_publish`]).
    ///
    /// Alerts awaiting evidence (at-least-once only) follow the prediction: the next input
    /// of the partition hands over its outputs as soon as this prediction is queued, while
    /// this input stays publishing — in flight, its offset not committable — until its
    /// alerts are acknowledged too. So an alert with evidence may come after later inputs'
    /// alerts of the same key, by at most the evidence deadline.
    async fn publish(
        &self,
        job: &Job,
        generation: u64,
        outputs: ToPublish,
        after: Option<oneshot::Receiver<()>>,
        then: oneshot::Sender<()>,
    ) -> Result<Finished, Undelivered> {
        let ToPublish {
            mut rendered,
            zone,
            awaiting,
        } = outputs;
        if let Some(previous) = after {
            // An error only means the previous job ended without publishing.
            let _ = previous.await;
        }
        // Zone rules take the frames in partition order: here, after the previous input.
        if let (Some(runner), Some(frame), Rendered::Outputs(_)) = (&self.zones, zone, &rendered) {
            let alerts = runner
                .alerts(&job.topic, job.partition, job.offset, generation, frame)
                .await;
            rendered.push_alerts(&alerts);
        }
        let tp = (job.topic.clone(), job.partition);
        if let Some(txn) = &self.txn {
            let r = self.publish_in_transaction(txn, job, generation, &rendered);
            drop(then);
            return r;
        }
        if !self.tracker.begin_publish(&tp, generation, job.offset) {
            return Ok(Finished::Abandoned);
        }
        let mut enqueued = self.publisher.enqueue(job, rendered).await;
        drop(then);
        if let Some(awaiting) = awaiting {
            let alerts = awaiting.evidence().await;
            self.publisher
                .enqueue_alerts(job, &mut enqueued, &alerts)
                .await;
        }
        let r = self.publisher.confirm(job, enqueued).await;
        match &r {
            Ok(_) => {
                self.tracker.finish(&tp, generation, job.offset);
            }
            // Left unfinished: no later offset of this partition is stored.
            Err(_) => self.tracker.abandon(&tp, generation, job.offset),
        }
        r
    }

    /// Queues the input's outputs in the open transaction, atomically with marking the
    /// input finished (the commit takes the gate exclusively).
    fn publish_in_transaction(
        &self,
        txn: &Transactions,
        job: &Job,
        generation: u64,
        rendered: &Rendered,
    ) -> Result<Finished, Undelivered> {
        let tp = (job.topic.clone(), job.partition);
        let _gate = txn.gate();
        if !self.tracker.begin_publish(&tp, generation, job.offset) {
            return Ok(Finished::Abandoned);
        }
        let finished = match self.publisher.queue_in_transaction(job, rendered) {
            Ok(f) => f,
            Err(e) => {
                txn.fail(TxnError::outputs(format!("queueing outputs failed: {e}")));
                self.tracker.abandon(&tp, generation, job.offset);
                return Err(Undelivered {
                    topic: job.topic.clone(),
                    partition: job.partition,
                    offset: job.offset,
                    source: e,
                });
            }
        };
        txn.mark_dirty();
        if !self.tracker.finish(&tp, generation, job.offset) {
            // Cannot happen while revocation holds the gate; if it ever does, these outputs
            // would commit without their offset: make the transaction fail instead.
            txn.fail(TxnError::outputs(format!(
                "outputs of {}/{}/{} queued after its partition was revoked",
                job.topic, job.partition, job.offset
            )));
        }
        Ok(finished)
    }
}

/// Counts an input against the version and role that scored it.
fn count_input(pipeline: &Pipeline, role: Role) {
    pipeline.metrics().input(pipeline.model().model_ref(), role);
}

/// Adds the shadow version's prediction to the primary's outputs (never alerts) and
/// records how the two compare. A shadow failure is counted; the primary's outputs stand.
fn attach_shadow(
    route: &Route,
    shadow: &Pipeline,
    job: &Job,
    primary: &Outcome,
    outcome: &Outcome,
    rendered: &mut Rendered,
) {
    count_input(shadow, Role::Shadow);
    let version = shadow.model().model_ref().version.clone();
    let Outcome::Classified(s) = outcome else {
        if matches!(outcome, Outcome::Failed(_)) {
            metrics::counter!(m::SHADOW_FAILURES, "shadow" => version).increment(1);
        }
        return;
    };
    let Rendered::Outputs(out) = rendered else {
        return;
    };
    let prediction = shadow.prediction(job, s);
    out.shadow = Some(crate::outputs::json(&prediction)).filter(|j| !j.is_empty());
    if let Outcome::Classified(p) = primary {
        let c = crate::models::compare(
            &p.classification,
            route.primary.model().labels(),
            &s.classification,
            shadow.model().labels(),
        );
        let primary = route.primary.model().model_ref().version.clone();
        metrics::counter!(m::SHADOW_COMPARED, "primary" => primary.clone(), "shadow" => version.clone(), "agree" => if c.agree { "true" } else { "false" })
            .increment(1);
        if let Some(d) = c.score_difference {
            metrics::histogram!(m::SHADOW_SCORE_DIFFERENCE, "primary" => primary, "shadow" => version)
                .record(d);
        }
    }
}
