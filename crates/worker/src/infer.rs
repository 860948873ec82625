//! The inference stage: `inference_threads` threads share one queue of preprocessed inputs.
//! A thread takes the first waiting input, adds whatever else is queued (and, if `max_wait`
//! is non-zero, what arrives within it) up to `max_batch`, and runs them as one batch on
//! the plan for exactly that size. Replies go back per input, so callers never see batches.
//!
//! Every input names the model (version) it was prepared for. A batch holds one model: an
//! input for another model closes the batch and starts the next one, so a version swap (see
//! [`crate::models`]) takes effect between batches and a canary or shadow version batches
//! its own inputs.
//!
//! Metrics recorded here: per input, the wait from [`InferenceStage::submit`] until its batch
//! starts ([`m::INFERENCE_QUEUE_SECONDS`]); per model call, the batch size
//! ([`m::BATCH_SIZE`]) and the whole call ([`m::BATCH_SECONDS`]); per input answered, the
//! engine time of the call it ran in ([`m::INFERENCE_SECONDS`]).
use crate::job::Failure;
use crate::metrics as m;
use crate::pipeline::infer_batch;
use argus_model::{Classification, Classifier, Prepared};
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
}

/// Batching policy.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_batch: usize,
    pub max_wait: Duration,
    /// Testing aid: sleep before every model call.
    pub inject_delay: Duration,
}

/// Handle to the inference threads; they stop when it is dropped and the queue is empty.
pub struct InferenceStage {
    tx: Sender<Request>,
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
        Ok(InferenceStage { tx })
    }

    /// Queues one input prepared for `model`; the receiver yields its classification. The
    /// queue is unbounded: callers bound it (the worker's in-flight limit).
    pub fn submit(&self, model: Arc<Classifier>, prepared: Prepared) -> oneshot::Receiver<Reply> {
        let (reply, rx) = oneshot::channel();
        // If the threads are gone the reply sender is dropped and the caller sees it.
        let _ = self.tx.send(Request {
            model,
            prepared,
            reply,
            queued: Instant::now(),
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
    // Taken at the first batch: the recorder may be installed after the threads start.
    let mut handles: Option<m::StageMetrics> = None;
    while let Some(batch) = next_batch(queue, policy) {
        let histograms = handles.get_or_insert_with(m::StageMetrics::new);
        let model = batch[0].model.clone();
        let n = batch.len();
        let started = Instant::now();
        for r in &batch {
            histograms
                .queue
                .record(started.saturating_duration_since(r.queued).as_secs_f64());
        }
        histograms.batch_size.record(n as f64);
        let (prepared, replies): (Vec<Prepared>, Vec<_>) =
            batch.into_iter().map(|r| (r.prepared, r.reply)).unzip();
        if !policy.inject_delay.is_zero() {
            std::thread::sleep(policy.inject_delay);
        }
        let t = Instant::now();
        let results = infer_batch(&model, &prepared);
        histograms.batch.record(t.elapsed().as_secs_f64());
        for (reply, result) in replies.into_iter().zip(results) {
            if let Ok(c) = &result {
                // Each input waited for the whole call it ran in (its batch, or alone after
                // the batch failed): that is its inference latency, not the call's time
                // divided by the batch size.
                histograms
                    .inference
                    .record(c.timings.batch_inference_us as f64 / 1e6);
            }
            let _ = reply.send(result);
        }
    }
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
        };
        // Two threads: with a wait, one forms the batch while the other waits its turn, so
        // the four inputs are not split between them.
        let stage = InferenceStage::start(2, policy).unwrap();
        let input = || Prepared {
            data: vec![0.0; model.input_len()],
            decode_us: 0,
            preprocess_us: 0,
            frame: None,
        };
        let mut replies = vec![stage.submit(model.clone(), input())];
        // Let a thread take the first input and start waiting for more: the other must not
        // be waiting on the queue too, or it takes the next inputs into a batch of its own.
        std::thread::sleep(Duration::from_millis(100));
        replies.extend((0..3).map(|_| stage.submit(model.clone(), input())));
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
        };
        for m in [&a, &a, &b, &b, &b, &a] {
            tx.send(request(m)).unwrap();
        }
        let policy = BatchPolicy {
            max_batch: 8,
            max_wait: Duration::ZERO,
            inject_delay: Duration::ZERO,
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
