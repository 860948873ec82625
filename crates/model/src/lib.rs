//! Model bundles and inference. No Kafka here.
//!
//! Layout:
//! - [`manifest`]: the bundle manifest (`manifest.toml`) and its checks.
//! - [`preprocess`]: payload → image → normalised NCHW tensor, as the manifest says.
//! - [`classifier`]: loads a bundle (hash and shape checks) and runs decode → preprocess →
//!   infer → postprocess with timings.
//! - [`engine`]: the inference engines behind one trait: tract, the trees engine and
//!   onnxruntime (cargo feature `onnxruntime`, library loaded at run time); with none named,
//!   a rule on the model's graph chooses ([`engine::rule`]).
//! - [`tabular`]: records → model input for tabular bundles (`[[features]]`), and the
//!   evidence alerts carry.
//! - [`postprocess`]: softmax and top-k.
//! - [`detection`]: detection outputs → boxes in frame pixels (letterbox/stretch geometry,
//!   YOLO- and SSD-style decoding, class-aware NMS); not yet wired into bundles.
//! - [`memory`]: handing freed heap memory back to the operating system (after calibration).
//! - [`metrics`]: the metric names the crate emits, described.
//!
//! A [`Classifier`] is `Send + Sync`; share it in an `Arc` and call it from blocking
//! threads, never from the async reactor.
#![warn(missing_docs)]
pub mod classifier;
pub mod detection;
pub mod engine;
pub mod error;
pub mod explain;
pub mod jpeg;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod postprocess;
pub mod preprocess;
pub mod tabular;

pub use classifier::{Classification, Classifier, Prepared, StageTimings};
pub use engine::{EngineKind, EngineOptions};
pub use error::ModelError;
pub use manifest::Manifest;
