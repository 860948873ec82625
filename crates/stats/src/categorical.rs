//! Mergeable summary of one categorical feature (also binary, predicted class and discrete
//! numeric) in one pane.
//!
//! Reference categories get exact counters by vocabulary index. Values the reference never
//! saw are counted exactly in `n_new_total`; which new values they were is kept as the
//! `NEW_K` distinct new values with the smallest value hashes, each with its exact count.
//! This replaces the spec's SpaceSaving sketch: SpaceSaving's merge depends on arrival order
//! and split, while a value among the k smallest hashes of the union is among the k smallest of
//! every part that saw it, so kept counts are exact and the merge is split-independent.
use crate::hash::value_hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Distinct new values tracked per feature and pane.
pub const NEW_K: usize = 64;

/// The reference's vocabulary as the summaries see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Reference categories with their own counter, most frequent first (at most `K_ref`).
    pub values: Vec<String>,
    /// Hashes (sorted) of the remaining reference categories, counted together as
    /// `__other_ref__`; a value found here is not new.
    pub other_hashes: Vec<u64>,
    /// Seed of `value_hash` for `other_hashes` and new-value tracking.
    pub seed: u64,
}

impl Vocabulary {
    /// `Some(index)` for a reference category (`values.len()` = `__other_ref__`), `None` if new.
    pub fn lookup(&self, value: &str) -> Option<usize> {
        if let Some(i) = self.values.iter().position(|v| v == value) {
            return Some(i);
        }
        let h = value_hash(self.seed, value);
        self.other_hashes
            .binary_search(&h)
            .ok()
            .map(|_| self.values.len())
    }
}

/// One categorical feature's summary in one pane (or merged window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSummary {
    /// Rows seen, including nulls.
    pub n: u64,
    /// Null values.
    pub n_null: u64,
    /// One counter per reference category, then `__other_ref__`.
    pub counts: Vec<u64>,
    /// Values the reference never saw (all of them, not only those tracked in `new_values`).
    pub n_new_total: u64,
    /// Up to `NEW_K` new values with the smallest hashes: value → (hash, exact count).
    pub new_values: BTreeMap<String, (u64, u64)>,
}

impl CategoricalSummary {
    /// An empty summary with one counter per category of `vocab`.
    pub fn new(vocab: &Vocabulary) -> Self {
        Self {
            n: 0,
            n_null: 0,
            counts: vec![0; vocab.values.len() + 1],
            n_new_total: 0,
            new_values: BTreeMap::new(),
        }
    }

    /// Non-null rows.
    pub fn n_present(&self) -> u64 {
        self.n.saturating_sub(self.n_null)
    }

    /// Adds one value (`None`: null).
    pub fn add(&mut self, vocab: &Vocabulary, value: Option<&str>) {
        self.n += 1;
        let Some(v) = value else {
            self.n_null += 1;
            return;
        };
        match vocab.lookup(v) {
            Some(i) => {
                if let Some(c) = self.counts.get_mut(i) {
                    *c += 1;
                }
            }
            None => {
                self.n_new_total += 1;
                let h = value_hash(vocab.seed, v);
                self.offer_new(v, h, 1);
            }
        }
    }

    fn offer_new(&mut self, value: &str, hash: u64, count: u64) {
        if let Some(e) = self.new_values.get_mut(value) {
            e.1 += count;
            return;
        }
        if self.new_values.len() < NEW_K {
            self.new_values.insert(value.to_owned(), (hash, count));
            return;
        }
        // Full: replace the largest hash if this one is smaller.
        let Some((worst_value, worst_hash)) = self
            .new_values
            .iter()
            .max_by_key(|(_, (h, _))| *h)
            .map(|(v, (h, _))| (v.clone(), *h))
        else {
            return;
        };
        if hash < worst_hash {
            self.new_values.remove(&worst_value);
            self.new_values.insert(value.to_owned(), (hash, count));
        }
    }

    /// Adds another summary of the same feature (associative and commutative).
    pub fn merge(&mut self, other: &CategoricalSummary) {
        self.n += other.n;
        self.n_null += other.n_null;
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n_new_total += other.n_new_total;
        for (v, (h, c)) in &other.new_values {
            self.offer_new(v, *h, *c);
        }
    }

    /// New values by descending count (ties by value), at most `n`.
    pub fn top_new(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .new_values
            .iter()
            .map(|(k, (_, c))| (k.clone(), *c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}
