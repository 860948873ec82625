//! The summary of one segment (a camera, or `*` for the fleet) over one pane or window: one
//! summary per profiled feature plus CBPE counters and pixel histograms. Everything merges
//! exactly (see `numeric` and `categorical`).
use crate::categorical::CategoricalSummary;
use crate::numeric::NumericSummary;
use crate::profile::{discrete_label, Calibration, SegmentProfile};
use serde::{Deserialize, Serialize};

/// One value of one feature in one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// Missing (empty field, JSON `null`).
    Null,
    /// A number (possibly non-finite).
    Num(f64),
    /// Text.
    Text(&'a str),
}

/// One feature's summary in one pane (or merged window), by the feature's kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSummary {
    /// Bins, moments and a sample.
    Numeric(NumericSummary),
    /// Category counts and new values.
    Categorical(CategoricalSummary),
}

/// One segment's summary in one pane (or merged window): every feature, in profile order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSummary {
    /// Records offered (inputs and predictions).
    pub n_records: u64,
    /// Values that did not fit their feature's type (text in a numeric column, ...).
    pub n_invalid: u64,
    /// Per feature, in the profile's feature order.
    pub features: Vec<FeatureSummary>,
    /// CBPE counters: for each calibration level, [predicted negative, predicted positive].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cbpe: Option<Vec<[u64; 2]>>,
    /// Pixel histograms (image streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<crate::image::ImageHistograms>,
}

impl SegmentSummary {
    /// An empty summary shaped by the segment's reference (the identity of `merge`).
    pub fn new(reference: &SegmentProfile, calibration: Option<&Calibration>, k: usize) -> Self {
        let features = reference
            .features
            .iter()
            .map(|f| match (&f.numeric, &f.categorical) {
                (Some(num), _) => FeatureSummary::Numeric(NumericSummary::new(&num.binning, k)),
                (None, Some(cat)) => {
                    FeatureSummary::Categorical(CategoricalSummary::new(&cat.vocab))
                }
                (None, None) => FeatureSummary::Categorical(CategoricalSummary::new(
                    &crate::categorical::Vocabulary {
                        values: Vec::new(),
                        other_hashes: Vec::new(),
                        seed: 0,
                    },
                )),
            })
            .collect();
        Self {
            n_records: 0,
            n_invalid: 0,
            features,
            cbpe: calibration.map(|c| vec![[0, 0]; c.levels.len()]),
            histograms: reference
                .histograms
                .as_ref()
                .map(|_| crate::image::ImageHistograms::default()),
        }
    }

    /// Add one value of feature `index` for the record with hash `hash`. A value of the wrong
    /// type counts as invalid (and as null for the feature, so the null share shows it).
    #[inline]
    pub fn add(&mut self, reference: &SegmentProfile, index: usize, cell: Cell<'_>, hash: u64) {
        let (Some(summary), Some(profile)) =
            (self.features.get_mut(index), reference.features.get(index))
        else {
            return;
        };
        match summary {
            FeatureSummary::Numeric(s) => {
                let Some(num) = &profile.numeric else { return };
                let value = match cell {
                    Cell::Num(x) => Some(x),
                    Cell::Null => None,
                    Cell::Text(t) => match t.trim().parse::<f64>() {
                        Ok(x) => Some(x),
                        Err(_) => {
                            self.n_invalid += 1;
                            None
                        }
                    },
                };
                s.add(&num.binning, value, hash);
            }
            FeatureSummary::Categorical(s) => {
                let Some(cat) = &profile.categorical else {
                    return;
                };
                match cell {
                    Cell::Null => s.add(&cat.vocab, None),
                    Cell::Text(t) => s.add(&cat.vocab, Some(t)),
                    Cell::Num(x) if x.is_finite() => s.add(&cat.vocab, Some(&discrete_label(x))),
                    Cell::Num(_) => s.add(&cat.vocab, None),
                }
            }
        }
    }

    /// Count one model output for CBPE.
    pub fn add_score(&mut self, calibration: &Calibration, score: f64) {
        if !score.is_finite() {
            return;
        }
        let level = calibration_level(calibration, score);
        let predicted = usize::from(score >= calibration.threshold);
        if let Some(c) = self.cbpe.as_mut().and_then(|v| v.get_mut(level)) {
            c[predicted] += 1;
        }
    }

    /// Adds another summary of the same segment and schema (associative and commutative).
    pub fn merge(&mut self, other: &SegmentSummary) {
        self.n_records += other.n_records;
        self.n_invalid += other.n_invalid;
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            match (a, b) {
                (FeatureSummary::Numeric(a), FeatureSummary::Numeric(b)) => a.merge(b),
                (FeatureSummary::Categorical(a), FeatureSummary::Categorical(b)) => a.merge(b),
                _ => {}
            }
        }
        match (&mut self.cbpe, &other.cbpe) {
            (Some(a), Some(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    x[0] += y[0];
                    x[1] += y[1];
                }
            }
            (None, Some(b)) => self.cbpe = Some(b.clone()),
            _ => {}
        }
        match (&mut self.histograms, &other.histograms) {
            (Some(a), Some(b)) => a.merge(b),
            (None, Some(b)) => self.histograms = Some(b.clone()),
            _ => {}
        }
    }
}

/// Index of the calibration level a score falls in.
pub fn calibration_level(c: &Calibration, score: f64) -> usize {
    c.upper
        .partition_point(|u| *u < score)
        .min(c.levels.len().saturating_sub(1))
}
