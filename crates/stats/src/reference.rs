//! A feature's reference distribution, as a profile stores it and as the null tables
//! ([`crate::null`]) and evaluation ([`crate::evaluate`]) read it. Its own module so that
//! `profile` → `null` → `reference` has no cycle.
use crate::categorical::Vocabulary;
use crate::numeric::Binning;
use serde::{Deserialize, Serialize};

/// A numeric feature's reference: fine bins on reference quantiles, deciles, moments and a
/// bottom-k sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericReference {
    /// Fine bins on reference quantiles.
    pub binning: Binning,
    /// Reference deciles (percentiles 10..90, numpy 'linear', duplicates removed); each is also
    /// a fine edge, so decile counts are sums of fine bins.
    pub decile_edges: Vec<f64>,
    /// Fine-bin counts of the whole reference.
    pub bin_counts: Vec<u64>,
    /// Mean of the finite reference values.
    pub mean: f64,
    /// Population standard deviation (ddof = 0).
    pub std: f64,
    /// Bottom-k (by record hash) sample of the reference, sorted ascending.
    pub sample: Vec<f64>,
}

impl NumericReference {
    /// Decile bin of each fine bin.
    pub fn decile_of_bins(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.binning.n_bins());
        out.push(0);
        for e in &self.binning.edges {
            out.push(self.decile_edges.partition_point(|d| *d <= *e));
        }
        out
    }

    /// Sum fine-bin counts into decile counts.
    pub fn to_deciles(&self, fine: &[u64]) -> Vec<f64> {
        let map = self.decile_of_bins();
        let mut out = vec![0.0; self.decile_edges.len() + 1];
        for (i, c) in fine.iter().enumerate() {
            if let Some(d) = map.get(i).and_then(|d| out.get_mut(*d)) {
                *d += *c as f64;
            }
        }
        out
    }
}

/// A categorical feature's reference: its vocabulary and counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalReference {
    /// The reference's categories.
    pub vocab: Vocabulary,
    /// Counts per vocabulary value, then `__other_ref__`.
    pub counts: Vec<u64>,
}
