//! The drift report (`argus.drift-report/v1`, `schemas/drift-report.v1.schema.json`): one
//! JSON document per window and segment. Field order is fixed by these structs and floats
//! print in shortest round-trip form, so the same window gives byte-identical JSON. Values
//! that could be NaN are defined (p = 1, statistic 0) before they get here.
use crate::profile::FeatureKind;
use serde::{Deserialize, Serialize};

/// `schema` value of every [`DriftReport`] this build writes.
pub const REPORT_SCHEMA: &str = "argus.drift-report/v1";

/// A feature's (or the dataset's) verdict for one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Neither significant nor material.
    Ok,
    /// Significant or material, not both.
    Warn,
    /// Significant and material (or a new-category alarm).
    Drift,
    /// Too few values to test; never read as "no drift".
    InsufficientData,
}

impl Status {
    /// Gauge value: 0 ok, 1 warn, 2 drift, −1 insufficient data.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Ok => 0.0,
            Self::Warn => 1.0,
            Self::Drift => 2.0,
            Self::InsufficientData => -1.0,
        }
    }
}

/// One statistical test of one feature in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    /// Test name (`ks`, `cvm`, `chi2`, `wasserstein_norm`, …).
    pub method: String,
    /// The test statistic (0 in degenerate cases, never NaN).
    pub statistic: f64,
    /// p-value, for tests that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg q across the window's family (tests with `in_family`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_value: Option<f64>,
    /// Critical value of the statistic at `alpha` (PSI: from the χ² approximation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// How `threshold` was derived (`chi2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_kind: Option<String>,
    /// Per-test level before multiple testing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Sample sizes actually used: [window, reference]. The sidecar's window side is its
    /// bottom-k sample (at most the profile's `sample_k`); `argus drift compare` tests every
    /// finite value of the current file. The reference side is the profile's stored sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_n: Option<[u64; 2]>,
    /// Whether the p-value is exact (small samples) or asymptotic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    /// Bins of a binned test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    /// Degrees of freedom (χ²).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dof: Option<usize>,
    /// Sparse categories merged into one before χ².
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_categories: Option<usize>,
    /// Whether this test's p-value is in the multiple-testing family (primary tests).
    pub in_family: bool,
}

impl TestReport {
    /// A test with just a method, statistic and p-value; the optional fields start empty.
    pub fn new(method: &str, statistic: f64, p_value: Option<f64>) -> Self {
        Self {
            method: method.to_owned(),
            statistic,
            p_value,
            q_value: None,
            threshold: None,
            threshold_kind: None,
            alpha: None,
            sample_n: None,
            exact: None,
            bins: None,
            dof: None,
            merged_categories: None,
            in_family: false,
        }
    }
}

/// Effect sizes of one feature (each present where it applies to the feature's kind).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Effects {
    /// W1 / max(reference std (ddof 0), 1e-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasserstein_norm: Option<f64>,
    /// Jensen–Shannon distance, base 2 (deciles for numeric, categories otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_base2: Option<f64>,
    /// PSI on reference deciles, ε = 1e-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi_10: Option<f64>,
    /// PSI on categories, ε = 1e-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// Total variation distance on categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tvd: Option<f64>,
}

/// New categories: values a categorical feature's reference never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewValues {
    /// Present values not in the reference.
    pub n_new_total: u64,
    /// n_new_total / present values.
    pub share: f64,
    /// max(0.01, 3·SE).
    pub threshold: f64,
    /// `share` ≥ `threshold`.
    pub alarm: bool,
    /// Most frequent new values seen (from the tracked set), with counts.
    pub top: Vec<(String, u64)>,
}

/// One feature's verdict for one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    /// Feature name.
    pub name: String,
    /// Numeric, discrete, binary, score or categorical.
    #[serde(rename = "type")]
    pub kind: FeatureKind,
    /// Values tested: finite values (numeric) or present values (categorical).
    pub n: u64,
    /// Null (missing) values in the window.
    pub n_null: u64,
    /// Non-finite numbers (NaN, ±inf) in the window; not tested.
    pub n_nonfinite: u64,
    /// Share of finite values outside the reference's range (numeric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_out_of_ref_range: Option<f64>,
    /// The tests run, primary ones (in the family) first.
    pub tests: Vec<TestReport>,
    /// Effect sizes.
    pub effects: Effects,
    /// New categories (categorical features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_values: Option<NewValues>,
    /// The verdict.
    pub status: Status,
    /// Some test in the family has BH q < α.
    pub significant: bool,
    /// Some effect reaches its materiality threshold.
    pub material: bool,
    /// The thresholds the effects were held to: the fixed ones (0.1) or, when higher, the
    /// 95th percentile the effect reaches by chance at this window size (profile null tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material_thresholds: Option<Effects>,
    /// Why the feature could not be tested, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Distance of one pixel histogram from the reference's (effect sizes only: pixels of a
/// frame are not independent draws, so no p-value is claimed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramDistance {
    /// Pixels summarised in the window.
    pub pixels: u64,
    /// Jensen–Shannon distance, base 2.
    pub js_base2: f64,
    /// PSI, ε = 1e-4.
    pub psi: f64,
    /// `js_base2` ≥ the JS materiality threshold.
    pub material: bool,
}

/// Pixel-level distributions of an image segment against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramReport {
    /// 256-bin luma (BT.601, Pillow `L`).
    pub luma: HistogramDistance,
    /// 16×16 hue × saturation.
    pub hue_sat: HistogramDistance,
}

/// The Evidently-style rule: the dataset drifted when a share of features drifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareRule {
    /// Share of drifted features that trips the rule.
    pub threshold: f64,
    /// Whether it tripped.
    pub drift: bool,
}

/// Across features: the window's dataset-level decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetReport {
    /// Features in the profile.
    pub n_features: usize,
    /// Features tested (enough data).
    pub n_tested: usize,
    /// Features with too little data.
    pub n_insufficient: usize,
    /// Features significant after Benjamini–Hochberg.
    pub n_significant_bh: usize,
    /// Whether any feature is significant after Benjamini–Hochberg.
    pub any_drift_bh: bool,
    /// α divided by the family's size.
    pub bonferroni_threshold: f64,
    /// Whether any p-value is below the Bonferroni threshold.
    pub any_drift_bonferroni: bool,
    /// Features with status `drift`.
    pub n_drifted: usize,
    /// `n_drifted` ÷ `n_tested`.
    pub share_drifted: f64,
    /// The Evidently-style share rule, for comparison.
    pub evidently_share_rule: ShareRule,
    /// The decision: some feature is both significant (BH) and material.
    pub drift: bool,
    /// The dataset's verdict.
    pub status: Status,
}

/// Label-free performance estimate (CBPE) of a window, from the reference's calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceEstimate {
    /// Always `cbpe`.
    pub method: String,
    /// Predictions in the window.
    pub n: u64,
    /// Whether `n` is enough for the estimate to mean something.
    pub sufficient: bool,
    /// Estimated accuracy.
    pub accuracy: f64,
    /// Standard error of `accuracy`.
    pub accuracy_se: f64,
    /// `accuracy` − 3·SE, at least 0.
    pub accuracy_lower: f64,
    /// `accuracy` + 3·SE, at most 1.
    pub accuracy_upper: f64,
    /// Estimated precision of the positive label.
    pub precision: f64,
    /// Estimated recall of the positive label.
    pub recall: f64,
    /// Estimated F1 of the positive label.
    pub f1: f64,
    /// Accuracy measured on the reference (labels known).
    pub reference_accuracy: f64,
    /// CBPE's estimate on the reference data (the baseline for `degraded`).
    pub reference_estimated_accuracy: f64,
    /// The reference's estimated accuracy is above this window's +3·SE band.
    pub degraded: bool,
}

/// The model the stream's predictions came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name.
    pub id: String,
    /// Model version.
    pub version: String,
}

/// The event-time window a report covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// RFC 3339, UTC.
    pub start: String,
    /// End, RFC 3339, UTC (exclusive).
    pub end: String,
    /// Start, µs since the Unix epoch.
    pub start_us: i64,
    /// End, µs since the Unix epoch.
    pub end_us: i64,
    /// Panes merged into the window.
    pub panes: u32,
    /// Length of one pane, seconds.
    pub pane_seconds: f64,
    /// Records seen in the window.
    pub n_records: u64,
    /// Records sampled (summarised).
    pub n_sampled: u64,
    /// `n_sampled` ÷ `n_records`.
    pub sample_rate: f64,
    /// Records that arrived after their pane was final.
    pub late_records: u64,
}

/// The reference profile a window was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceInfo {
    /// Profile id.
    pub id: String,
    /// The profile's content hash.
    pub sha256: String,
    /// Reference records in the segment used.
    pub n: u64,
    /// The segment whose reference was used (`*` when the camera has none of its own).
    pub segment: String,
}

/// Input offsets of one partition summarised in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset.
    pub from: i64,
    /// Last offset (inclusive).
    pub to: i64,
}

/// Where a window's data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Distinct sidecars whose partial summaries went into the window.
    pub sidecars_merged: usize,
    /// Partial summaries merged.
    pub partials: usize,
    /// Input offsets summarised, per topic and partition (inclusive).
    pub offsets: Vec<OffsetRange>,
}

/// The alarm rule over consecutive windows, and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// "k_consecutive" with k.
    pub rule: String,
    /// k of the rule: consecutive drifting windows that fire it.
    pub k: u32,
    /// ok, pending (drift in fewer than k consecutive windows) or firing.
    pub state: String,
    /// Drifting windows in a row so far.
    pub consecutive: u32,
    /// Expected windows until a false alarm under no drift (`null` in JSON when infinite).
    pub expected_run_length_windows: f64,
}

/// One drift report: a window of one segment against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    /// The model.
    pub model: ModelInfo,
    /// Camera id, or `*` for the fleet.
    pub segment: String,
    /// The window.
    pub window: Window,
    /// The reference used.
    pub reference: ReferenceInfo,
    /// Where the data came from.
    pub provenance: Provenance,
    /// Per feature.
    pub features: Vec<FeatureReport>,
    /// Across features.
    pub dataset: DatasetReport,
    /// CBPE estimate, when the profile has a calibration and the stream carries scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_estimate: Option<PerformanceEstimate>,
    /// Pixel histograms, for image segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<HistogramReport>,
    /// The alarm rule's state after this window.
    pub alarm: Alarm,
}

/// The statistical part of a report (what [`crate::evaluate::evaluate`] returns).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Per feature.
    pub features: Vec<FeatureReport>,
    /// Across features.
    pub dataset: DatasetReport,
    /// CBPE estimate, when there is a calibration.
    pub performance_estimate: Option<PerformanceEstimate>,
    /// Pixel histograms, for image segments.
    pub histograms: Option<HistogramReport>,
}

impl Evaluation {
    /// The window's decision for the alarm rule: `None` when nothing could be tested
    /// (insufficient data neither extends nor breaks a run of drifting windows).
    pub fn decision(&self) -> Option<bool> {
        (self.dataset.n_tested > 0).then_some(self.dataset.drift)
    }
}

impl DriftReport {
    /// A report from the evaluation of `segment`'s window, naming the reference the
    /// segment was compared with (its own, else the fleet's; see [`Profile::reference_for`]).
    ///
    /// [`Profile::reference_for`]: crate::profile::Profile::reference_for
    pub fn assemble(
        model: ModelInfo,
        segment: String,
        window: Window,
        profile: &crate::profile::Profile,
        provenance: Provenance,
        evaluation: Evaluation,
        alarm: Alarm,
    ) -> Self {
        let (reference_segment, reference) = profile.reference_for(&segment);
        let reference = ReferenceInfo {
            id: profile.id.clone(),
            sha256: profile.sha256.clone(),
            n: reference.n,
            segment: reference_segment.to_owned(),
        };
        DriftReport {
            schema: REPORT_SCHEMA.to_owned(),
            model,
            segment,
            window,
            reference,
            provenance,
            features: evaluation.features,
            dataset: evaluation.dataset,
            performance_estimate: evaluation.performance_estimate,
            histograms: evaluation.histograms,
            alarm,
        }
    }
}

/// RFC 3339 (UTC, microseconds) for a Unix time in µs; no clock, no dependency.
pub fn rfc3339_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_us(1_795_912_496_123_456),
            "2026-11-29T00:34:56.123456Z"
        );
        assert_eq!(rfc3339_us(-1), "1969-12-31T23:59:59.999999Z");
    }
}
