//! Mergeable summary of one numeric feature in one pane: counters, Welford moments, exact bin
//! counters on the reference's quantile edges and a bottom-k sample chosen by record hash.
//!
//! Merge rules: counters add; Welford merges by Chan et al.; the bottom-k sample of a merge is
//! the k smallest hashes of the union, which is exactly the bottom-k of all records seen, no
//! matter how records were split between sidecars or panes. Bins and the sample are therefore
//! exact; Welford is exact up to float rounding (1e-12 relative), so reports never print it.
use serde::{Deserialize, Serialize};
use std::collections::BinaryHeap;

/// Default bottom-k sample size per numeric feature and pane (the streaming sidecar's). A
/// window is merged from partials of many partitions, panes and sidecars: a bottom-k sample
/// by record hash merges exactly (the union's k smallest hashes), so the report is the same
/// however the stream was split, and its size — the partials on the panes topic, the sort and
/// tests per window — stays bounded. Offline comparison of a file needs neither and passes
/// the file's row count instead (`argus_drift::compare`).
pub const DEFAULT_SAMPLE_K: usize = 1024;

/// Streaming mean and variance (Welford), merged with Chan et al.'s formula.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Welford {
    /// Values added.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl Welford {
    /// Adds one value.
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Adds another accumulator's values (Chan et al.).
    pub fn merge(&mut self, other: &Welford) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let d = other.mean - self.mean;
        self.mean += d * nb / n;
        self.m2 += other.m2 + d * d * na * nb / n;
        self.count += other.count;
    }

    /// Population standard deviation (ddof = 0); 0 when empty.
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2.max(0.0) / self.count as f64).sqrt()
        }
    }
}

/// The `k` records with the smallest hashes, with their values: a uniform sample without
/// replacement whose merge is exact. Serialised sorted by hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "SampleRepr", from = "SampleRepr")]
pub struct BottomK {
    k: usize,
    heap: BinaryHeap<(u64, u64)>, // (hash, value bits); max-heap so the largest hash is evicted
}

#[derive(Serialize, Deserialize)]
struct SampleRepr {
    k: usize,
    hashes: Vec<u64>,
    values: Vec<f64>,
}

impl From<BottomK> for SampleRepr {
    fn from(b: BottomK) -> Self {
        let entries = b.sorted_entries();
        SampleRepr {
            k: b.k,
            hashes: entries.iter().map(|e| e.0).collect(),
            values: entries.iter().map(|e| e.1).collect(),
        }
    }
}

impl From<SampleRepr> for BottomK {
    fn from(r: SampleRepr) -> Self {
        let mut b = BottomK::new(r.k);
        for (h, v) in r.hashes.into_iter().zip(r.values) {
            b.add(h, v);
        }
        b
    }
}

impl PartialEq for BottomK {
    fn eq(&self, other: &Self) -> bool {
        self.k == other.k && self.sorted_bits() == other.sorted_bits()
    }
}

impl BottomK {
    fn sorted_bits(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self.heap.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// An empty sample keeping at most `k` values (at least 1).
    pub fn new(k: usize) -> Self {
        Self {
            k: k.max(1),
            // Capacity grows with use: `k` may come from a message.
            heap: BinaryHeap::with_capacity(k.clamp(1, 4096)),
        }
    }

    /// The most values kept.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Values kept now.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Offer one record. O(1) when the record is not among the k smallest (the common case
    /// once the sample is full). Hashes are 64-bit, so distinct records do not collide in
    /// practice; the same record offered twice is only deduplicated by `merge`.
    #[inline]
    pub fn add(&mut self, hash: u64, value: f64) {
        if self.heap.len() < self.k {
            self.heap.push((hash, value.to_bits()));
        } else if let Some(mut top) = self.heap.peek_mut() {
            if hash < top.0 {
                *top = (hash, value.to_bits());
            }
        }
    }

    /// The k smallest hashes of the union; a record present in both is kept once, so merging
    /// a summary with itself changes nothing in the sample.
    pub fn merge(&mut self, other: &BottomK) {
        if other.heap.is_empty() {
            return;
        }
        let mut all: Vec<(u64, u64)> = self
            .heap
            .drain()
            .chain(other.heap.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup_by_key(|e| e.0);
        all.truncate(self.k);
        self.heap = BinaryHeap::from(all);
    }

    /// (hash, value) sorted by hash.
    pub fn sorted_entries(&self) -> Vec<(u64, f64)> {
        let mut v: Vec<(u64, f64)> = self
            .heap
            .iter()
            .map(|&(h, b)| (h, f64::from_bits(b)))
            .collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// The sampled values, sorted ascending (total order), for KS, CvM and Wasserstein.
    pub fn sorted_values(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.heap.iter().map(|&(_, b)| f64::from_bits(b)).collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    }
}

/// Where a value falls relative to the reference: bins on the reference's fine quantile edges.
/// Bin `i` is `[edges[i-1], edges[i])`, with open outer bins, so there are `edges.len() + 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binning {
    /// Fine bin edges, increasing (reference quantiles).
    pub edges: Vec<f64>,
    /// Smallest reference value.
    pub ref_min: f64,
    /// Largest reference value.
    pub ref_max: f64,
}

impl Binning {
    /// The bin of `x`.
    #[inline]
    pub fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|e| *e <= x)
    }

    /// Number of bins: `edges.len() + 1`.
    pub fn n_bins(&self) -> usize {
        self.edges.len() + 1
    }
}

/// One numeric feature's summary in one pane (or a merged window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Rows seen, including null and non-finite values.
    pub n: u64,
    /// Null values.
    pub n_null: u64,
    /// Non-finite numbers (NaN, ±inf); not binned or sampled.
    pub n_nonfinite: u64,
    /// Smallest finite value, if any.
    pub min: Option<f64>,
    /// Largest finite value, if any.
    pub max: Option<f64>,
    /// Mean and variance of the finite values.
    pub moments: Welford,
    /// Counts per bin of the reference's [`Binning`].
    pub bins: Vec<u64>,
    /// Finite values below the reference's minimum.
    pub n_below_ref_min: u64,
    /// Finite values above the reference's maximum.
    pub n_above_ref_max: u64,
    /// Bottom-k sample of the finite values by record hash.
    pub sample: BottomK,
}

impl NumericSummary {
    /// An empty summary binned like `binning`, sampling up to `k` values.
    pub fn new(binning: &Binning, k: usize) -> Self {
        Self {
            n: 0,
            n_null: 0,
            n_nonfinite: 0,
            min: None,
            max: None,
            moments: Welford::default(),
            bins: vec![0; binning.n_bins()],
            n_below_ref_min: 0,
            n_above_ref_max: 0,
            sample: BottomK::new(k),
        }
    }

    /// Finite values counted (the size the tests work with).
    pub fn n_finite(&self) -> u64 {
        self.n
            .saturating_sub(self.n_null)
            .saturating_sub(self.n_nonfinite)
    }

    /// Add one record's value; `hash` is the record's hash (shared by all its features).
    #[inline]
    pub fn add(&mut self, binning: &Binning, value: Option<f64>, hash: u64) {
        self.n += 1;
        let Some(x) = value else {
            self.n_null += 1;
            return;
        };
        if !x.is_finite() {
            self.n_nonfinite += 1;
            return;
        }
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
        self.moments.add(x);
        let b = binning.bin(x);
        if let Some(c) = self.bins.get_mut(b) {
            *c += 1;
        }
        if x < binning.ref_min {
            self.n_below_ref_min += 1;
        } else if x > binning.ref_max {
            self.n_above_ref_max += 1;
        }
        self.sample.add(hash, x);
    }

    /// Adds another summary of the same feature (associative and commutative).
    pub fn merge(&mut self, other: &NumericSummary) {
        self.n += other.n;
        self.n_null += other.n_null;
        self.n_nonfinite += other.n_nonfinite;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.moments.merge(&other.moments);
        if self.bins.len() < other.bins.len() {
            self.bins.resize(other.bins.len(), 0);
        }
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
        self.n_below_ref_min += other.n_below_ref_min;
        self.n_above_ref_max += other.n_above_ref_max;
        self.sample.merge(&other.sample);
    }
}
