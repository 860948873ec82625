//! The inference stage: `inference_threads` threads share one queue of preprocessed inputs.
//! A thread takes the first waiting input, adds whatever else is queued (and, if `max_wait`
//! is non-zero, what arrives within it) up to `max_batch`, and runs them as one batch on
//! the plan for exactly that size. Replies go back per input, so callers never see batches.
//!
//! A model cheaper than a hand-off skips the threads while they are idle: when its call on
//! one input was measured at most [`BatchPolicy::inline_under`]
//! ([`Classifier::single_call`]) and no input is queued or running on the stage,
//! [`InferenceStage::run`] calls it on the caller's own thread, one input per call. On a
//! light churn stream waking a model thread and the caller again cost about 1 ms of
//! latency per record for a 6 µs call. Under load inputs queue and batch as before: a
//! forest's call costs 7 µs at batch 1 and 1 µs per input at batch 8, so running every
//! input inline slowed a drain by 12 % (`docs/bench.md`).
//!
//! Every input names the model (version) it was prepared for. A batch holds one model: an
//! input for another model closes the batch and starts the next one, so a version swap (see
//! [`crate::models`]) takes effect between batches and a canary or shadow version batches
//! its own inputs.
//!
//! Metrics recorded here: per input, the wait from [`InferenceStage::submit`] until its batch
//! starts ([`m::INFERENCE_QUEUE_SECONDS`]); per model call, the batch size
//! ([`m::BATCH_SIZE`]) and the whole call ([`m::BATCH_SECONDS`]); per input answered, the
//! engine time of the call it ran in ([`m::INFERENCE_SECONDS`]); per call run on the
//! caller's thread, [`m::INLINE_CALLS`] (its queue wait is 0).
use crate::job::Failure;
use crate::metrics as m;
use crate::pipeline::infer_batch;
use argus_model::{Classification, Classifier, Prepared};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The answer for one input.
pub type Reply = Result<Classification, Failure>;

struct Request {
    model: Arc<Classifier>,
    prepared: Prepared,
    reply: oneshot::Sender<Reply>,
    /// When the input was queued, for the queue-wait histogram.
    queued: Instant,
    /// The stage is busy until this request's reply is sent.
    busy: Busy,
}

/// Batching policy.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_batch: usize,
    pub max_wait: Duration,
    /// Testing aid: sleep before every model call (and never run a model inline, so the
    /// sleep holds a model thread, not the caller's).
    pub inject_delay: Duration,
    /// Models whose single-input call was measured at most this long run on the caller's
    /// thread while the stage is idle ([`InferenceStage::run`]); zero: never.
    pub inline_under: Duration,
}

/// Handle to the inference threads; they stop when it is dropped and the queue is empty.
pub struct InferenceStage {
    tx: Sender<Request>,
    policy: BatchPolicy,
    /// Inputs submitted and not yet answered, plus the inline call running (if any).
    busy: Arc<AtomicUsize>,
}

/// One unit of [`InferenceStage`]'s busy count, given back when dropped (after the reply
/// is sent).
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The queue the threads share, and an input taken from it that belongs to the next batch
/// (it came for another model than the batch being formed).
struct Queue {
    rx: Receiver<Request>,
    next: Option<Request>,
}

impl std::fmt::Debug for InferenceStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceStage").finish_non_exhaustive()
    }
}

/// The name of each model thread: this prefix and its index (tools that account CPU by
/// thread, such as `argus-bench worker`, tell model time apart by it).
pub const THREAD_PREFIX: &str = "argus-infer-";

impl InferenceStage {
    /// Starts `threads` inference threads ([`THREAD_PREFIX`] and an index).
    pub fn start(threads: usize, policy: BatchPolicy) -> std::io::Result<Self> {
        let (tx, rx) = channel::<Request>();
        let queue = Arc::new(Mutex::new(Queue { rx, next: None }));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("{THREAD_PREFIX}{i}"))
                .spawn(move || serve(&queue, policy))?;
        }
        Ok(InferenceStage {
            tx,
            policy,
            busy: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs one input prepared for `model`: on the caller's thread if the model is cheaper
    /// than a hand-off ([`InferenceStage::runs_inline`]) and nothing is queued or running
    /// on the stage, else on the model threads ([`InferenceStage::submit`]), where inputs
    /// arriving together batch. An error means the threads are gone.
    pub async fn run(
        &self,
        model: Arc<Classifier>,
        prepared: Prepared,
    ) -> Result<Reply, oneshot::error::RecvError> {
        if self.runs_inline(&model)
            && self
                .busy
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let _busy = Busy(self.busy.clone());
            metrics::counter!(m::INLINE_CALLS).increment(1);
            metrics::histogram!(m::INFERENCE_QUEUE_SECONDS).record(0.0);
            let mut replies = call(&model, vec![prepared], self.policy.inject_delay);
            return Ok(replies.pop().unwrap_or_else(|| {
                Err(Failure {
                    kind: argus_wire::FailureKind::Model,
                    detail: "the model returned no output".into(),
                })
            }));
        }
        self.submit(model, prepared).await
    }

    /// Whether [`InferenceStage::run`] calls `model` on the caller's thread when the stage
    /// is idle: its call on one input was measured ([`Classifier::single_call`]) at most
    /// [`BatchPolicy::inline_under`], and no delay is injected.
    pub fn runs_inline(&self, model: &Classifier) -> bool {
        self.policy.inject_delay.is_zero()
            && model
                .single_call()
                .is_some_and(|d| d <= self.policy.inline_under)
    }

    /// Queues one input prepared for `model`; the receiver yields its classification. The
    /// queue is unbounded: callers bound it (the worker's in-flight limit).
    pub fn submit(&self, model: Arc<Classifier>, prepared: Prepared) -> oneshot::Receiver<Reply> {
        let (reply, rx) = oneshot::channel();
        self.busy.fetch_add(1, Ordering::AcqRel);
        // If the threads are gone the request (its reply sender and its unit of the busy
        // count) is dropped, and the caller sees it.
        let _ = self.tx.send(Request {
            model,
            prepared,
            reply,
            queued: Instant::now(),
            busy: Busy(self.busy.clone()),
        });
        rx
    }
}

/// The next batch: inputs for one model, at most `max_batch`, waiting at most `max_wait`
/// for more. An input for another model is kept for the next batch.
fn next_batch(queue: &Mutex<Queue>, policy: BatchPolicy) -> Option<Vec<Request>> {
    let mut q = queue.lock().ok()?;
    let first = match q.next.take() {
        Some(r) => r,
        None => q.rx.recv().ok()?,
    };
    let mut batch = vec![first];
    let deadline = Instant::now() + policy.max_wait;
    while batch.len() < policy.max_batch {
        let r = match q.rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match q.rx.recv_timeout(left) {
                    Ok(r) => r,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        if !Arc::ptr_eq(&r.model, &batch[0].model) {
            q.next = Some(r);
            break;
        }
        batch.push(r);
    }
    Some(batch)
}

fn serve(queue: &Mutex<Queue>, policy: BatchPolicy) {
    while let Some(batch) = next_batch(queue, policy) {
        let model = batch[0].model.clone();
        let started = Instant::now();
        for r in &batch {
            metrics::histogram!(m::INFERENCE_QUEUE_SECONDS)
                .record(started.saturating_duration_since(r.queued).as_secs_f64());
        }
        let (prepared, replies): (Vec<Prepared>, Vec<_>) = batch
            .into_iter()
            .map(|r| (r.prepared, (r.reply, r.busy)))
            .unzip();
        let results = call(&model, prepared, policy.inject_delay);
        // Each unit of the busy count goes back after its reply is sent.
        for ((reply, _busy), result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// One model call on `prepared` (after the injected delay, if any), with its metrics: one
/// answer per input.
fn call(model: &Classifier, prepared: Vec<Prepared>, inject_delay: Duration) -> Vec<Reply> {
    metrics::histogram!(m::BATCH_SIZE).record(prepared.len() as f64);
    if !inject_delay.is_zero() {
        std::thread::sleep(inject_delay);
    }
    let t = Instant::now();
    let results = infer_batch(model, &prepared);
    metrics::histogram!(m::BATCH_SECONDS).record(t.elapsed().as_secs_f64());
    for c in results.iter().flatten() {
        // Each input waited for the whole call it ran in (its batch, or alone after the
        // batch failed): that is its inference latency, not the call's time divided by
        // the batch size.
        metrics::histogram!(m::INFERENCE_SECONDS).record(c.timings.batch_inference_us as f64 / 1e6);
    }
    results
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use std::path::PathBuf;

    /// Samples of a histogram in a snapshot.
    fn samples(snapshot: &[(metrics_util::CompositeKey, DebugValue)], name: &str) -> Vec<f64> {
        snapshot
            .iter()
            .filter(|(k, _)| k.key().name() == name)
            .flat_map(|(_, v)| match v {
                DebugValue::Histogram(h) => h.iter().map(|x| x.into_inner()).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn queue_wait_is_per_input_and_inference_time_is_the_whole_batch() {
        // The only test of this binary that installs a global recorder (the inference
        // threads record, so a thread-local one would not see them).
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        let model = Arc::new(
            Classifier::load(
                &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/camera-person"),
            )
            .unwrap(),
        );
        let policy = BatchPolicy {
            max_batch: 4,
            // Long enough for all four inputs to join the first batch.
            max_wait: Duration::from_secs(2),
            inject_delay: Duration::ZERO,
            inline_under: Duration::ZERO,
        };
        let stage = InferenceStage::start(1, policy).unwrap();
        let input = || Prepared {
            data: vec![0.0; model.input_len()],
            decode_us: 0,
            preprocess_us: 0,
            frame: None,
        };
        let replies: Vec<_> = (0..4)
            .map(|_| stage.submit(model.clone(), input()))
            .collect();
        let outs: Vec<Classification> = replies
            .into_iter()
            .map(|r| r.blocking_recv().unwrap().unwrap())
            .collect();
        drop(stage);
        let snapshot: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect();

        assert_eq!(
            samples(&snapshot, m::BATCH_SIZE),
            [4.0],
            "one batch of four"
        );
        assert_eq!(samples(&snapshot, m::BATCH_SECONDS).len(), 1);
        assert_eq!(samples(&snapshot, m::INFERENCE_QUEUE_SECONDS).len(), 4);
        // Every input saw the whole call's engine time, not a quarter of it.
        let batch = outs[0].timings.batch_inference_us;
        assert!(outs.iter().all(|c| c.timings.batch_inference_us == batch));
        assert!(outs.iter().all(|c| c.timings.inference_us == batch / 4));
        assert_eq!(
            samples(&snapshot, m::INFERENCE_SECONDS),
            [batch as f64 / 1e6; 4]
        );
    }

    /// Runs one input through `stage` on this thread's runtime, with a thread-local
    /// recorder (it sees what the caller's thread records, not the model threads): the
    /// answer, and the calls counted as inline.
    fn run_counting_inline(
        stage: &InferenceStage,
        model: &Arc<Classifier>,
        prepared: Prepared,
    ) -> (Classification, u64) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let reply = metrics::with_local_recorder(&recorder, || {
            rt.block_on(stage.run(model.clone(), prepared))
        });
        let inline = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(k, ..)| k.key().name() == m::INLINE_CALLS)
            .map(|(.., v)| match v {
                DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum();
        (reply.unwrap().unwrap(), inline)
    }

    #[test]
    fn a_model_cheaper_than_a_hand_off_runs_on_the_callers_thread_while_the_stage_is_idle() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
        let model = Arc::new(Classifier::load(&dir).unwrap());
        let input = Prepared {
            data: (0..model.input_len()).map(|i| i as f32).collect(),
            decode_us: 0,
            preprocess_us: 0,
            frame: None,
        };
        let policy = |inline_under, inject_delay| BatchPolicy {
            max_batch: 4,
            max_wait: Duration::ZERO,
            inject_delay,
            inline_under,
        };
        let long = Duration::from_secs(10);
        // Not timed yet: the model threads, whatever the bound.
        let stage = InferenceStage::start(1, policy(long, Duration::ZERO)).unwrap();
        assert!(!stage.runs_inline(&model));
        let (threads, inline) = run_counting_inline(&stage, &model, input.clone());
        assert_eq!(inline, 0);

        let call = model.time_single_call(3).unwrap();
        assert_eq!(model.single_call(), Some(call));
        for (inline_under, inject_delay, expected) in [
            (call, Duration::ZERO, 1),
            (long, Duration::ZERO, 1),
            (call - Duration::from_nanos(1), Duration::ZERO, 0),
            (Duration::ZERO, Duration::ZERO, 0),
            // An injected delay is meant to hold a model thread.
            (long, Duration::from_millis(1), 0),
        ] {
            let stage = InferenceStage::start(1, policy(inline_under, inject_delay)).unwrap();
            assert_eq!(stage.runs_inline(&model), expected == 1, "{inline_under:?}");
            let (c, inline) = run_counting_inline(&stage, &model, input.clone());
            assert_eq!(inline, expected, "{inline_under:?} {inject_delay:?}");
            assert_eq!(c.probabilities, threads.probabilities);
            assert_eq!(c.ranking, threads.ranking);
            assert_eq!(
                stage.busy.load(Ordering::Acquire),
                0,
                "every unit given back"
            );
        }

        // While an input is queued or running, a cheap model's input joins the threads
        // (and batches there) instead.
        let stage = InferenceStage::start(1, policy(long, Duration::ZERO)).unwrap();
        stage.busy.fetch_add(1, Ordering::AcqRel);
        let (c, inline) = run_counting_inline(&stage, &model, input.clone());
        assert_eq!(inline, 0);
        assert_eq!(c.probabilities, threads.probabilities);
        assert_eq!(stage.busy.load(Ordering::Acquire), 1);
        stage.busy.fetch_sub(1, Ordering::AcqRel);
        let (_, inline) = run_counting_inline(&stage, &model, input);
        assert_eq!(inline, 1);
    }

    #[test]
    fn a_batch_holds_one_model_and_another_model_starts_the_next_batch() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
        let a = Arc::new(Classifier::load(&dir).unwrap());
        let b = Arc::new(Classifier::load(&dir).unwrap());
        let (tx, rx) = channel::<Request>();
        let queue = Mutex::new(Queue { rx, next: None });
        let request = |model: &Arc<Classifier>| Request {
            model: model.clone(),
            prepared: Prepared {
                data: vec![0.0; model.input_len()],
                decode_us: 0,
                preprocess_us: 0,
                frame: None,
            },
            reply: oneshot::channel().0,
            queued: Instant::now(),
            busy: Busy(Arc::new(AtomicUsize::new(1))),
        };
        for m in [&a, &a, &b, &b, &b, &a] {
            tx.send(request(m)).unwrap();
        }
        let policy = BatchPolicy {
            max_batch: 8,
            max_wait: Duration::ZERO,
            inject_delay: Duration::ZERO,
            inline_under: Duration::ZERO,
        };
        let mut sizes = Vec::new();
        for expected in [&a, &b, &a] {
            let batch = next_batch(&queue, policy).unwrap();
            assert!(batch.iter().all(|r| Arc::ptr_eq(&r.model, expected)));
            sizes.push(batch.len());
        }
        assert_eq!(sizes, [2, 3, 1]);
    }
}
