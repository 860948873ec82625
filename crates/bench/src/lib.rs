//! Benchmark harnesses for Argus, out of the product binary (`argus-bench`).
//!
//! Layout:
//! - [`worker`]: where a worker's time goes — the engine alone, the offline pipeline, one
//!   in-process worker draining a topic, end-to-end latency at fractions of its capacity.
//! - [`drift`]: the drift side — summary ingest rate, window evaluation time, and worker
//!   throughput with and without an `argus drift watch` sidecar.
//! - [`evidence`]: what evidence on alerts costs — TreeSHAP, sampling Shapley and occlusion
//!   per alert next to the model's own work, and worker throughput with evidence on and off.
//! - [`serve`]: `argus serve` against a FastAPI + uvicorn + onnxruntime server on the same
//!   bundle, requests and load generator (no broker).
//! - [`harness`]: what both share — CPU time from /proc, percentiles, the synthetic frame
//!   pool, paced sending, the in-process worker.
//! - [`error`]: the one error type, [`BenchError`].
//!
//! Both take typed options ([`WorkerBenchOptions`], [`DriftBenchOptions`]) built on
//! `argus_kafka::KafkaSettings` and `argus_model::EngineOptions`; the `argus-bench` binary
//! (`src/main.rs`, `src/cli.rs`) maps its flags onto them. Runs need a real broker
//! (`scripts/kafka start`) except `worker --offline-only` and drift stages 1 and 2.
pub mod drift;
pub mod error;
pub mod evidence;
pub mod harness;
pub mod serve;
pub mod worker;

pub use drift::DriftBenchOptions;
pub use error::BenchError;
pub use evidence::EvidenceBenchOptions;
pub use harness::FrameSpec;
pub use serve::ServeBenchOptions;
pub use worker::WorkerBenchOptions;
