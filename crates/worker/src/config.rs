//! Worker configuration.
use std::time::Duration;

/// An alert rule: alert when `label`'s probability is at least `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRule {
    pub name: String,
    pub label: String,
    pub threshold: f32,
}

/// Everything the run loop needs besides its I/O.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name of this instance in outputs, logs and DLQ headers.
    pub worker_id: String,
    /// Topics to consume.
    pub input_topics: Vec<String>,
    pub predictions_topic: String,
    pub alerts_topic: String,
    pub dlq_topic: String,
    pub rules: Vec<AlertRule>,
    /// Inputs consumed but not yet finished (outputs acknowledged), at most. When reached,
    /// the worker pauses its partitions (and keeps polling, so it stays in the group) until
    /// half of them have finished.
    pub max_in_flight: usize,
    /// Payload bytes of the inputs in flight, at most (checked like `max_in_flight`): the
    /// count alone would let big frames take any amount of memory.
    pub max_in_flight_bytes: usize,
    /// Full in-flight work for longer than this pauses the partitions (polling goes on);
    /// shorter stalls just stop taking messages. Keep it well under `max.poll.interval.ms`.
    pub pause_after: Duration,
    /// Threads running the model; each runs one batch at a time.
    pub inference_threads: usize,
    /// Threads decoding and preprocessing inputs (the blocking pool, bounded).
    pub decode_threads: usize,
    /// Inputs per model call, at most.
    pub max_batch: usize,
    /// How long an inference thread waits for a batch to fill after its first input.
    /// Zero: run with whatever is queued (batches form only under load).
    pub max_wait: Duration,
    /// Inputs captured longer ago than this are not run; their prediction says `stale`.
    pub max_age: Option<Duration>,
    /// An input unfinished for this long marks its partition as stuck (gauge).
    pub stuck_after: Duration,
    /// Exactly-once: outputs and input offsets are committed in Kafka transactions. The
    /// producer must be transactional and the consumer must not auto-commit.
    pub exactly_once: bool,
    /// Exactly-once: how often the open transaction is committed.
    pub transaction_interval: Duration,
    /// Testing aid: sleep this long before every model call (a slow model on demand).
    pub inject_delay: Duration,
    /// Larger messages go to the DLQ as `oversize`.
    pub max_input_bytes: usize,
    /// Classes listed in `top` of a prediction.
    pub top_k: usize,
    /// How long shutdown waits for in-flight work before giving up on it (those inputs
    /// are redelivered to the next owner).
    pub drain_timeout: Duration,
}

impl WorkerConfig {
    /// Defaults for everything but the topics.
    pub fn new(worker_id: impl Into<String>, input_topics: Vec<String>) -> Self {
        WorkerConfig {
            worker_id: worker_id.into(),
            input_topics,
            predictions_topic: "predictions".into(),
            alerts_topic: "alerts".into(),
            dlq_topic: "dlq".into(),
            rules: Vec::new(),
            // Inputs wait for their outputs' acknowledgements while in flight: with the
            // broker's ack time (tens of ms under load) 64 capped a fast model's drain at
            // ~530 inputs/s; the byte bound keeps memory in check.
            max_in_flight: 1024,
            max_in_flight_bytes: 32 * 1024 * 1024,
            pause_after: Duration::from_secs(1),
            inference_threads: 1,
            decode_threads: 2,
            max_batch: 8,
            max_wait: Duration::ZERO,
            max_age: None,
            stuck_after: Duration::from_secs(30),
            exactly_once: false,
            transaction_interval: Duration::from_millis(100),
            inject_delay: Duration::ZERO,
            max_input_bytes: 8 * 1024 * 1024,
            top_k: 5,
            drain_timeout: Duration::from_secs(20),
        }
    }

    /// Cross-field checks; the message says what to fix.
    pub fn validate(&self, labels: &[String]) -> Result<(), String> {
        if self.input_topics.is_empty() {
            return Err("no input topic given".into());
        }
        if self.max_in_flight == 0
            || self.max_in_flight_bytes == 0
            || self.inference_threads == 0
            || self.decode_threads == 0
            || self.max_batch == 0
        {
            return Err(
                "max_in_flight, max_in_flight_bytes, inference_threads, decode_threads and max_batch must be at least 1"
                    .into(),
            );
        }
        if self.max_batch > self.max_in_flight {
            return Err(format!(
                "max_batch ({}) cannot exceed max_in_flight ({}): batches could never fill",
                self.max_batch, self.max_in_flight
            ));
        }
        if self.exactly_once && self.transaction_interval.is_zero() {
            return Err("transaction_interval must be more than zero".into());
        }
        if self.inference_threads > self.max_in_flight {
            return Err(format!(
                "inference_threads ({}) cannot exceed max_in_flight ({})",
                self.inference_threads, self.max_in_flight
            ));
        }
        for rule in &self.rules {
            if !labels.contains(&rule.label) {
                return Err(format!(
                    "alert rule {:?} watches label {:?}, which the model does not have (labels: {})",
                    rule.name,
                    rule.label,
                    labels.join(", ")
                ));
            }
            if !(0.0..=1.0).contains(&rule.threshold) {
                return Err(format!(
                    "alert rule {:?} threshold {} is not within 0..=1",
                    rule.name, rule.threshold
                ));
            }
        }
        Ok(())
    }
}
