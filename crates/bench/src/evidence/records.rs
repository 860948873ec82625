//! The records of a run (read by [`crate::harness::read_records`]): each record's
//! probability of the alert label, computed offline, from which the threshold that makes a
//! given share of the drained records alert is chosen.
use crate::error::{runtime, usage, BenchError};
use crate::harness::percentile;
use argus_model::Classifier;
use argus_producer::Frame;
use serde::Serialize;

/// The index of `label` among the model's labels (an options error if it has none such).
pub(super) fn label_index(model: &Classifier, label: &str) -> Result<usize, BenchError> {
    model
        .labels()
        .iter()
        .position(|l| l == label)
        .ok_or_else(|| {
            usage(format!(
                "the model has no label {label:?} (labels: {})",
                model.labels().join(", ")
            ))
        })
}

/// The label a bundle alerts on: its `[decision]` label and threshold, else its last label
/// at 0.5.
pub(super) fn decision(model: &Classifier) -> (String, f32) {
    match &model.manifest().decision {
        Some(d) => (d.positive.clone(), d.threshold),
        None => (model.labels().last().cloned().unwrap_or_default(), 0.5),
    }
}

/// `label`'s probability for each record, in order.
pub(super) fn probabilities(
    model: &Classifier,
    records: &[Frame],
    label: usize,
) -> Result<Vec<f32>, BenchError> {
    records
        .iter()
        .map(|r| {
            model
                .classify(&r.envelope.payload)
                .map(|c| c.probability(label))
                .map_err(|e| runtime(format!("record {}: {e}", r.key)))
        })
        .collect()
}

/// Who alerts at a threshold, over the records a drain sends (the file cycled).
#[derive(Debug, Clone, Serialize)]
pub(super) struct AlertRate {
    /// The rule's threshold (alert at `probability >= threshold`).
    pub threshold: f32,
    /// Records of the drain that alert, computed offline.
    pub expected_alerts: u64,
    /// Their share of the drained records.
    pub expected_share: f64,
}

impl AlertRate {
    /// The alerts `threshold` gives over `drained` records cycling through `probs`.
    pub(super) fn at(threshold: f32, probs: &[f32], drained: u64) -> AlertRate {
        let n = probs.len().max(1) as u64;
        let alerting = |range: std::ops::Range<usize>| {
            probs[range].iter().filter(|p| **p >= threshold).count() as u64
        };
        let whole = alerting(0..probs.len());
        let rest = usize::try_from(drained % n).unwrap_or(0);
        let expected_alerts = whole * (drained / n) + alerting(0..rest.min(probs.len()));
        AlertRate {
            threshold,
            expected_alerts,
            expected_share: expected_alerts as f64 / drained.max(1) as f64,
        }
    }

    /// The threshold at which about `share` of the records alert: their probability's
    /// `1 - share` quantile (nearest rank).
    pub(super) fn for_share(share: f64, probs: &[f32], drained: u64) -> AlertRate {
        let mut sorted: Vec<f64> = probs.iter().map(|p| f64::from(*p)).collect();
        sorted.sort_by(f64::total_cmp);
        let threshold = percentile(&sorted, 1.0 - share) as f32;
        Self::at(threshold, probs, drained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_the_cycled_records() {
        let probs = [0.1, 0.9, 0.5, 0.7];
        let r = AlertRate::at(0.5, &probs, 10);
        // 3 of every 4, then 0.1 and 0.9 of the third pass.
        assert_eq!(r.expected_alerts, 3 * 2 + 1);
        assert!((r.expected_share - 0.7).abs() < 1e-12);
        let top = AlertRate::for_share(0.25, &probs, 4);
        assert_eq!(top.threshold, 0.7);
        assert_eq!(top.expected_alerts, 2);
    }
}
