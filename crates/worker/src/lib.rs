//! The consume → infer → publish pipeline.
//!
//! Layout:
//! - [`config`]: what a worker needs to know (topics, rules, bounds).
//! - [`job`]: one input message copied out of librdkafka, and how it is classified.
//! - [`publish`]: building `Prediction`/`Alert`/DLQ records and waiting for their acks.
//! - [`run`](run()): the loop. It polls, spawns a job per message (inference runs on the
//!   blocking pool, bounded by a semaphore), and stores offsets in input order.
//! - [`metrics`]: metric names; this crate emits, the binary exports.
//!
//! **Offset rule (at-least-once).** An input's offset is stored only after every output it
//! caused (prediction and alerts, or its DLQ record) has been acknowledged by the broker.
//! Jobs finish in any order but offsets are stored in consume order, so a stored offset
//! never skips an unfinished input. If an input's outputs cannot be delivered, no later
//! offset of that partition is stored again in this session. Stored offsets are committed in
//! the background, synchronously on revoke (see `argus_kafka::GroupContext`) and on
//! shutdown, after in-flight work has drained.
pub mod config;
pub mod drain;
pub mod infer;
pub mod job;
pub mod metrics;
pub mod publish;
mod run;
pub mod tracker;
pub mod txn;

pub use config::{AlertRule, WorkerConfig};
pub use run::{run, WorkerError, WorkerStats};
