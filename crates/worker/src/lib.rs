//! The consume → infer → publish pipeline. Operator's view: `docs/workers.md`.
//!
//! Layout:
//! - [`pipeline`]: the core shared with the batch scorer (`argus score`): prepare →
//!   batched inference with per-input retry → outputs → publish.
//! - [`score`]: batch scoring of a bounded range (`argus score`) on the same core.
//! - [`evaluate`]: scoring a fixed, labelled test set ([`testset`]) on the same core
//!   (`argus model evaluate`), and the promotion gate's paired comparison of two
//!   evaluations (`argus model compare`).
//! - [`config`]: what a worker needs to know (topics, rules, bounds, batching, modes).
//! - `job`: one input message copied out of librdkafka; decode, age check, preprocess.
//! - `outputs`: the JSON outputs of one input (prediction, alerts) or its dead letter.
//! - `publish`: handing outputs to the producer and waiting for their acknowledgements.
//!   (The types of these three that callers need are re-exported by [`pipeline`].)
//! - `run`: the loop — a `Worker` state machine (start, on_message, on_report, on_tick,
//!   backpressure, drain, finish) that [`run()`] drives with one `select!`.
//! - `commit`: the commit strategy, at-least-once or exactly-once (`txn`), behind one
//!   type; `backpressure`: when to pause and resume, pure.
//! - [`evidence`]: evidence on alerts (attributions, saliency) on a bounded pool of its own
//!   under a deadline; past it the alert says why it has none.
//! - `process`: one input's task (ordering, ownership, the transaction around publish).
//! - `infer`: inference threads that batch whatever is queued (plans per batch size).
//! - `tracker`: per-partition in-flight bookkeeping, contiguous commit points, ownership.
//! - `drain`, `watermarks`: lag, rates, drain estimate and stuck flags.
//! - [`follow`]: follows a model's deployment (the registry's record): fetch, verify, load
//!   and warm a new version beside the serving ones, then swap; failures leave them serving.
//! - [`models`]: the versions serving (production, canary share, shadow), swapped whole
//!   between batches; each input is routed once, by its key.
//! - [`serve`]: `argus serve`, synchronous HTTP inference (Open Inference Protocol v2 and
//!   `/v1/predict`) on the same prepare → batched infer → render core and [`Models`].
//! - [`metrics`]: metric names; this crate emits, the binary exports.
//!
//! **Offset rule.** An input's offset is committed only after every output it caused
//! (prediction and alerts, or its DLQ record) has been acknowledged (at-least-once) or
//! queued in the same transaction (exactly-once), and per partition only up to the first
//! unfinished input, so a commit never skips one. Inputs count as uncommitted until their
//! commit is confirmed, so a crash redoes at most `max_uncommitted`. If an input's outputs
//! cannot be delivered the worker stops with an error rather than stall its partition.
pub mod config;
pub mod evaluate;
pub mod follow;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod score;
pub mod serve;
pub mod testset;
pub mod zones;

mod backpressure;
mod commit;
mod drain;
pub mod evidence;
mod snapshot;
mod zone_state;
pub use zone_state::ZoneConfig;
mod infer;
mod job;
mod outputs;
mod process;
mod publish;
mod run;
mod tracker;
mod txn;
mod watermarks;

pub use config::{AlertRule, OutputTopics, WorkerConfig, WorkerSettings};
/// The name prefix of the worker's model threads.
pub use infer::THREAD_PREFIX as INFERENCE_THREAD_PREFIX;
pub use models::{Models, Role, Serving};
pub use run::{run, run_models, WorkerError, WorkerStats};
pub use txn::{transactional_id, TxnError, TxnErrorKind};
