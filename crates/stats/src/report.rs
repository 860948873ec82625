//! The drift report (`argus.drift-report/v1`, `schemas/drift-report.v1.schema.json`): one
//! JSON document per window and segment. Field order is fixed by these structs and floats
//! print in shortest round-trip form, so the same window gives byte-identical JSON. Values
//! that could be NaN are defined (p = 1, statistic 0) before they get here.
use crate::profile::FeatureKind;
use serde::{Deserialize, Serialize};

pub const REPORT_SCHEMA: &str = "argus.drift-report/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warn,
    Drift,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestReport {
    pub method: String,
    pub statistic: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg q across the window's family (tests with `in_family`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Sample sizes actually used: [window, reference].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_n: Option<[u64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dof: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_categories: Option<usize>,
    /// Whether this test's p-value is in the multiple-testing family (primary tests).
    pub in_family: bool,
}

impl TestReport {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewValues {
    pub n_new_total: u64,
    /// n_new_total / present values.
    pub share: f64,
    /// max(0.01, 3·SE).
    pub threshold: f64,
    pub alarm: bool,
    /// Most frequent new values seen (from the tracked set), with counts.
    pub top: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FeatureKind,
    /// Values tested: finite values (numeric) or present values (categorical).
    pub n: u64,
    pub n_null: u64,
    pub n_nonfinite: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_out_of_ref_range: Option<f64>,
    pub tests: Vec<TestReport>,
    pub effects: Effects,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_values: Option<NewValues>,
    pub status: Status,
    pub significant: bool,
    pub material: bool,
    /// The thresholds the effects were held to: the fixed ones (0.1) or, when higher, the
    /// 95th percentile the effect reaches by chance at this window size (profile null tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material_thresholds: Option<Effects>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Distance of one pixel histogram from the reference's (effect sizes only: pixels of a
/// frame are not independent draws, so no p-value is claimed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramDistance {
    pub pixels: u64,
    pub js_base2: f64,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareRule {
    pub threshold: f64,
    pub drift: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetReport {
    pub n_features: usize,
    pub n_tested: usize,
    pub n_insufficient: usize,
    pub n_significant_bh: usize,
    pub any_drift_bh: bool,
    pub bonferroni_threshold: f64,
    pub any_drift_bonferroni: bool,
    pub n_drifted: usize,
    pub share_drifted: f64,
    pub evidently_share_rule: ShareRule,
    /// The decision: some feature is both significant (BH) and material.
    pub drift: bool,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceEstimate {
    pub method: String,
    pub n: u64,
    pub sufficient: bool,
    pub accuracy: f64,
    pub accuracy_se: f64,
    pub accuracy_lower: f64,
    pub accuracy_upper: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub reference_accuracy: f64,
    /// CBPE's estimate on the reference data (the baseline for `degraded`).
    pub reference_estimated_accuracy: f64,
    /// The reference's estimated accuracy is above this window's +3·SE band.
    pub degraded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
    pub start_us: i64,
    pub end_us: i64,
    pub panes: u32,
    pub pane_seconds: f64,
    pub n_records: u64,
    pub n_sampled: u64,
    pub sample_rate: f64,
    pub late_records: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceInfo {
    pub id: String,
    pub sha256: String,
    /// Reference records in the segment used.
    pub n: u64,
    /// The segment whose reference was used (`*` when the camera has none of its own).
    pub segment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Distinct sidecars whose partial summaries went into the window.
    pub sidecars_merged: usize,
    /// Partial summaries merged.
    pub partials: usize,
    /// Input offsets summarised, per topic and partition (inclusive).
    pub offsets: Vec<OffsetRange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// "k_consecutive" with k.
    pub rule: String,
    pub k: u32,
    /// ok, pending (drift in fewer than k consecutive windows) or firing.
    pub state: String,
    pub consecutive: u32,
    pub expected_run_length_windows: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub schema: String,
    pub model: ModelInfo,
    pub segment: String,
    pub window: Window,
    pub reference: ReferenceInfo,
    pub provenance: Provenance,
    pub features: Vec<FeatureReport>,
    pub dataset: DatasetReport,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_estimate: Option<PerformanceEstimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<HistogramReport>,
    pub alarm: Alarm,
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
        evaluation: crate::evaluate::Evaluation,
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
