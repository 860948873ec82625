//! The model registry, kept in one compacted Kafka topic (`argus.models` by default): model
//! versions with their artifacts, lineage, evaluations and history, and per model name the
//! deployment record workers follow. The fleet needs nothing besides Kafka.
//!
//! Layout:
//! - [`records`]: the records and their keys (`version/…`, `deploy/…`, `chunk/…`).
//! - [`state`]: the fold of the topic into [`RegistryState`].
//! - [`transitions`]: stage changes decided on a state, without Kafka ([`Plan`]).
//! - [`artifact`]: the deterministic tar of a bundle, chunks, sha256 verification, unpacking.
//! - [`uri`]: artifacts at `file://` and `http://` URIs.
//! - [`topic`]: reading the topic to its end, writing records with delivery awaited.
//! - [`client`]: [`Registry`], the async API the CLI, workers and `argus serve` use.
//! - [`follow`]: the background task behind [`Registry::follow`].
//! - [`settings`]: [`RegistrySettings`] (`[registry]` in the configuration).
//! - [`metrics`]: the metric names the crate emits, described.
//!
//! Depends on `argus-kafka` (the only crate that touches rdkafka) and `argus-model`
//! (manifest checks); role crates depend on this one, never the reverse.
#![warn(missing_docs)]
pub mod artifact;
pub mod client;
pub mod error;
pub mod follow;
pub mod metrics;
pub mod records;
pub mod settings;
pub mod state;
pub mod topic;
pub mod transitions;
pub mod uri;

pub use client::{ArtifactTarget, RegisterOptions, Registry};
pub use error::{RegistryError, Result};
pub use records::{
    ArtifactLocation, Canary, DeploymentRecord, EvaluationRecord, HistoryEntry, Key, Lineage,
    PreviousProduction, Stage, VersionRecord, DEPLOYMENT_SCHEMA, VERSION_SCHEMA,
};
pub use settings::RegistrySettings;
pub use state::RegistryState;
pub use transitions::{Change, Plan, DEFAULT_CANARY_SHARE};
