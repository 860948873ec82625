//! The drift sidecar and its offline tools. Statistics live in `argus-stats` (pure); this
//! crate reads files and streams, turns records and frames into feature values, and runs
//! the sidecar. Operator's view: `docs/drift.md`.
//!
//! Layout:
//! - [`records`]: CSV and JSON-lines tables, column type inference (offline profile/compare).
//! - [`compare`]: `argus drift compare` — the report for two files, without Kafka.
//! - [`export`]: `argus export-training` — labelled inputs with their predictions, for
//!   the next training run.
//! - [`features`]: frames → image features, predictions → score and class.
//! - [`profile`]: reference profiles from image folders and synthetic frames.
//! - [`pane`]: event-time panes per partition; the messages on the panes topic.
//! - [`aggregate`]: partials → windows → reports (identical for any number of sidecars).
//! - [`settings`]: `[drift]` of the configuration (defaults defined once) → the sidecar's config.
//! - [`sidecar`]: `argus drift watch` — its decisions as a state machine, tested without a
//!   broker, and the loop that drives it.
//! - [`follow`]: `argus drift watch --follow NAME` — the sidecar on the registry's
//!   production version (its reference profile, name and version), switched when it changes.
//! - [`quality`]: live quality from ground truth — predictions and labels joined by id,
//!   windows per model version and segment, the degradation decision (pure); the sidecar
//!   feeds it complete panes through the aggregator (`argus drift watch --labels`).
//! - [`metrics`]: metric names; this crate emits, the binary exports.
#![warn(missing_docs)]
pub mod aggregate;
pub mod compare;
pub mod export;
pub mod features;
pub mod follow;
pub mod metrics;
pub mod pane;
pub mod profile;
pub mod quality;
pub mod records;
pub mod settings;
pub mod sidecar;
