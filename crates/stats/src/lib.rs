//! Drift statistics for the Argus sidecar. Pure: no I/O, no Kafka, no clocks.
//!
//! Layout:
//! - two-sample tests and distances (`special`, `ks`, `cvm`, `chi2`, `distance`, `fdr`), each
//!   pinned to scipy by committed fixtures (`fixtures/make_fixtures.py`);
//! - image features (`image`): per-frame photometric features and mergeable histograms, with
//!   formulas pinned to Pillow/numpy/OpenCV;
//! - mergeable window summaries (`hash`, `numeric`, `categorical`, `summary`): merge is
//!   associative and commutative, the empty summary is its identity, and a merged summary
//!   equals the summary of the union of the records exactly;
//! - reference profiles (`profile`, with each feature's `reference` and its `null` tables), window evaluation into a report (`evaluate`, `report`),
//!   label-free performance (`calibration` + CBPE in `evaluate`) and the alarm rule over consecutive windows (`alarm`);
//! - the promotion gate: quality metrics with confidence intervals on a labelled test set
//!   (`quality`) and paired tests of a candidate against production with the decision
//!   (`gate`), pinned to statsmodels/scikit-learn by `fixtures/gate.json`;
//! - live quality from ground truth (`live`): a window's metrics from joined predictions and
//!   labels, and one-sided tests against the model's test-set values, pinned to
//!   scikit-learn/scipy by `fixtures/live.json`.
#![warn(missing_docs)]

// Statistical tests (pinned to scipy).
pub mod chi2;
pub mod cvm;
pub mod distance;
pub mod fdr;
pub mod ks;
pub mod special;
// Image features.
pub mod image;
// Summaries, profiles, evaluation.
pub mod alarm;
pub mod calibration;
pub mod categorical;
pub mod evaluate;
pub mod hash;
pub mod null;
pub mod numeric;
pub mod profile;
pub mod reference;
pub mod report;
pub mod summary;
// Promotion gate.
pub mod gate;
// Live quality from ground truth.
pub mod live;
pub mod quality;
