//! The consume → infer → publish pipeline. Operator's view: `docs/workers.md`.
//!
//! Layout:
//! - [`config`]: what a worker needs to know (topics, rules, bounds, batching, modes).
//! - [`job`]: one input message copied out of librdkafka; decode, age check, preprocess.
//! - [`infer`]: inference threads that batch whatever is queued (plans per batch size).
//! - [`publish`]: building `Prediction`/`Alert`/DLQ records; waiting for their acks, or
//!   queueing them in the open transaction.
//! - [`tracker`]: per-partition in-flight bookkeeping, contiguous commit points, ownership.
//! - [`txn`]: exactly-once transactions.
//! - [`drain`]: lag, rates, drain estimate and stuck flags.
//! - [`run`](run()): the loop. It polls (also while paused), spawns a job per message,
//!   commits, pauses and resumes for backpressure, and drains on shutdown.
//! - [`metrics`]: metric names; this crate emits, the binary exports.
//!
//! **Offset rule.** An input's offset is committed only after every output it caused
//! (prediction and alerts, or its DLQ record) has been acknowledged (at-least-once) or
//! queued in the same transaction (exactly-once), and per partition only up to the first
//! unfinished input, so a commit never skips one. Inputs count as in flight until their
//! commit is confirmed, so a crash redoes at most `max_in_flight`. If an input's outputs
//! cannot be delivered the worker stops with an error rather than stall its partition.
pub mod config;
pub mod drain;
pub mod infer;
pub mod job;
pub mod metrics;
pub mod publish;
mod run;
pub mod tracker;
pub mod txn;

pub use config::{AlertRule, OutputTopics, WorkerConfig, WorkerSettings};
pub use run::{group_moved_on, run, WorkerError, WorkerStats};
