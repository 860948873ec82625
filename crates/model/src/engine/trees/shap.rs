//! Exact path-dependent TreeSHAP on the ensemble the trees engine evaluates: the algorithm of
//! Lundberg et al. ("From local explanations to global understanding with explainable AI
//! for trees", 2020, Algorithm 2) that the `shap` package's `TreeExplainer` runs by default
//! (`feature_perturbation="tree_path_dependent"`). The result is the Shapley values of the
//! model's output for one label, which add up exactly to that output minus the base value
//! (the training data's mean output).
//!
//! The algorithm needs each node's *cover*: how much training data reached it. ONNX-ML tree
//! ensembles do not carry covers, so a bundle ships them next to the model
//! (`[explain] covers`, a [`COVERS_SCHEMA`] file: per ONNX tree id, per ONNX node id, e.g.
//! scikit-learn's `tree_.weighted_n_node_samples`); they are checked against the tree
//! structure when loaded (a parent's cover is its children's sum).
//!
//! Which output is explained follows the engine's finish: a label's probability when the
//! ensemble's scores are probabilities (random forests), the log-odds or logit before the
//! transform when there is one (gradient boosting), the value for regressors. Ensembles
//! whose output is not a sum of leaf values (MIN/MAX aggregation, the classifier cases where
//! onnxruntime combines columns) are refused: use a model-agnostic method for them.
use super::{goes_yes, Aggregate, Finish, Transform, TreesEngine, FEATURE_MASK};
use crate::error::ModelError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `schema` of a covers file.
pub const COVERS_SCHEMA: &str = "argus.tree-covers/v1";
/// Deepest tree TreeSHAP takes (its path buffer grows with the square of the depth).
pub const MAX_SHAP_DEPTH: usize = 128;

/// What an attribution's values are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// The label's probability.
    Probability,
    /// Log-odds (before a logistic transform).
    LogOdds,
    /// A logit before a softmax over the labels.
    Logit,
    /// Another score before a transform (probit, softmax with zeros).
    Margin,
    /// A regressor's value.
    Value,
}

impl Space {
    /// The space's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::Probability => "probability",
            Space::LogOdds => "log_odds",
            Space::Logit => "logit",
            Space::Margin => "margin",
            Space::Value => "value",
        }
    }
}

/// Feature attributions of one output: `base + values.sum()` is the output explained.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The output with no feature known (the mean output over the training data).
    pub base: f64,
    /// One value per model input.
    pub values: Vec<f64>,
    /// What `base` and `values` measure.
    pub space: Space,
}

impl Attribution {
    /// The output explained: base plus every attribution.
    pub fn output(&self) -> f64 {
        self.base + self.values.iter().sum::<f64>()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoversFile {
    schema: String,
    #[serde(default)]
    #[allow(dead_code)]
    source: String,
    trees: Vec<Vec<f64>>,
}

/// A label's output as an accumulated column: `offset + sign * (column's sum + base)`.
#[derive(Debug, Clone, Copy)]
struct Target {
    column: usize,
    sign: f64,
    offset: f64,
    space: Space,
}

/// TreeSHAP for one tree ensemble with its covers. `Send + Sync`.
#[derive(Debug)]
pub struct TreeShap {
    engine: TreesEngine,
    /// Per node slot: its cover.
    covers: Vec<f64>,
    /// Per column: the cover-weighted mean of the summed leaves (before the base value).
    expected: Vec<f64>,
    /// Per node slot: its cover over its parent's (1 for a root), the share of the
    /// parent's training rows that went its way.
    fractions: Vec<f64>,
    /// Leaf values are multiplied by this (1 / trees for AVERAGE).
    scale: f64,
    max_depth: usize,
    /// The path weights' constant factors, per path length and position.
    ratios: Ratios,
}

/// For a path of `d` features (plus the root's dummy, `d + 1` elements) and a position
/// `i < d` on it: `(i + 1) / (d + 1)`, `(d - i) / (d + 1)` and their inverses, looked up
/// instead of divided in EXTEND, UNWIND and the leaf sums (one row's walk takes about
/// `leaves × depth²` of them).
#[derive(Debug, Clone)]
struct Ratios {
    width: usize,
    /// `(i + 1) / (d + 1)`, and its inverse.
    up: Vec<f64>,
    up_inv: Vec<f64>,
    /// `(d - i) / (d + 1)`, and its inverse.
    down: Vec<f64>,
    down_inv: Vec<f64>,
}

impl Ratios {
    /// For paths up to `max` features.
    fn new(max: usize) -> Ratios {
        let width = max + 1;
        let mut r = Ratios {
            width,
            up: vec![0.0; width * width],
            up_inv: vec![0.0; width * width],
            down: vec![0.0; width * width],
            down_inv: vec![0.0; width * width],
        };
        for d in 0..width {
            let d1 = (d + 1) as f64;
            for i in 0..d {
                let k = d * width + i;
                r.up[k] = (i + 1) as f64 / d1;
                r.up_inv[k] = d1 / (i + 1) as f64;
                r.down[k] = (d - i) as f64 / d1;
                r.down_inv[k] = d1 / (d - i) as f64;
            }
        }
        r
    }

    /// The row of path length `d`: (up, up_inv, down, down_inv), indexed by position.
    fn at(&self, d: usize) -> (&[f64], &[f64], &[f64], &[f64]) {
        let a = d * self.width;
        let z = a + self.width;
        (
            &self.up[a..z],
            &self.up_inv[a..z],
            &self.down[a..z],
            &self.down_inv[a..z],
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct PathElem {
    feature: i64,
    zero: f64,
    one: f64,
    weight: f64,
}

impl TreeShap {
    /// TreeSHAP for `engine` with the covers in the [`COVERS_SCHEMA`] file at `path`.
    pub fn load(engine: TreesEngine, path: &Path) -> Result<TreeShap, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::bundle(path, format!("cannot read the tree covers: {e}")))?;
        let file: CoversFile = serde_json::from_str(&text).map_err(|e| {
            ModelError::bundle(
                path,
                format!("not a tree covers file ({COVERS_SCHEMA}): {e}"),
            )
        })?;
        if file.schema != COVERS_SCHEMA {
            return Err(ModelError::bundle(
                path,
                format!(
                    "schema is {:?}; this build reads {COVERS_SCHEMA:?}",
                    file.schema
                ),
            ));
        }
        TreeShap::new(engine, &file.trees).map_err(|reason| ModelError::bundle(path, reason))
    }

    /// TreeSHAP for `engine` with covers per ONNX tree id, per ONNX node id.
    pub fn new(engine: TreesEngine, covers: &[Vec<f64>]) -> Result<TreeShap, String> {
        if !matches!(engine.aggregate, Aggregate::Sum | Aggregate::Average) {
            return Err("TreeSHAP needs an ensemble that sums (or averages) its trees; this one takes the MIN or MAX".into());
        }
        let mut per_slot = vec![0.0f64; engine.nodes.len()];
        let mut max_depth = 0usize;
        for (t, tree) in engine.trees.iter().enumerate() {
            let tid = engine.tree_ids[t];
            let cov = usize::try_from(tid)
                .ok()
                .and_then(|i| covers.get(i))
                .ok_or_else(|| {
                    format!(
                        "no covers for tree {tid} (the file has {} trees; the model {})",
                        covers.len(),
                        engine.trees.len()
                    )
                })?;
            let end = engine
                .trees
                .get(t + 1)
                .map_or(engine.nodes.len(), |n| n.root as usize);
            for (slot, &id) in engine
                .node_ids
                .iter()
                .enumerate()
                .take(end)
                .skip(tree.root as usize)
            {
                let c = usize::try_from(id)
                    .ok()
                    .and_then(|i| cov.get(i))
                    .copied()
                    .ok_or_else(|| format!("no cover for node {id} of tree {tid}"))?;
                if !c.is_finite() || c < 0.0 {
                    return Err(format!("node {id} of tree {tid} has cover {c}"));
                }
                per_slot[slot] = c;
            }
            for slot in tree.root as usize..end {
                let n = engine.nodes[slot];
                if n.yes as usize == slot {
                    continue;
                }
                let (c, y, no) = (
                    per_slot[slot],
                    per_slot[n.yes as usize],
                    per_slot[n.no as usize],
                );
                if c <= 0.0 || (c - y - no).abs() > 1e-6 * c.max(1.0) {
                    return Err(format!(
                        "node {} of tree {tid} has cover {c} but its children {y} + {no}: the covers are not from this model",
                        engine.node_ids[slot]
                    ));
                }
            }
            max_depth = max_depth.max(tree.depth as usize);
        }
        if max_depth > MAX_SHAP_DEPTH {
            return Err(format!(
                "a tree is {max_depth} deep; TreeSHAP takes trees up to {MAX_SHAP_DEPTH}"
            ));
        }
        let scale = match engine.aggregate {
            Aggregate::Average => 1.0 / engine.trees.len().max(1) as f64,
            _ => 1.0,
        };
        let mut fractions = vec![1.0f64; engine.nodes.len()];
        for (slot, n) in engine.nodes.iter().enumerate() {
            if n.yes as usize != slot {
                let c = per_slot[slot];
                fractions[n.yes as usize] = per_slot[n.yes as usize] / c;
                fractions[n.no as usize] = per_slot[n.no as usize] / c;
            }
        }
        let mut shap = TreeShap {
            expected: Vec::new(),
            covers: per_slot,
            fractions,
            scale,
            ratios: Ratios::new(max_depth + 3),
            max_depth,
            engine,
        };
        shap.expected = (0..shap.engine.n_outputs)
            .map(|c| shap.mean_leaves(c as u32))
            .collect();
        Ok(shap)
    }

    /// The ensemble explained.
    pub fn engine(&self) -> &TreesEngine {
        &self.engine
    }

    /// Whether label `label`'s output can be explained (see [`TreeShap::explain`]).
    pub fn supports(&self, label: usize) -> bool {
        self.target(label).is_some()
    }

    /// The Shapley values of `row`'s output for `label` (an index into the model's outputs).
    pub fn explain(&self, row: &[f32], label: usize) -> Result<Attribution, String> {
        let e = &self.engine;
        if row.len() != e.n_features {
            return Err(format!(
                "the row has {} values, the model takes {}",
                row.len(),
                e.n_features
            ));
        }
        let target = self.target(label).ok_or_else(|| {
            format!("output {label} of this ensemble is not a sum of its trees' leaves")
        })?;
        let mut phi = vec![0.0f64; e.n_features];
        let d = self.max_depth + 3;
        let mut buf = vec![PathElem::default(); (d + 1) * (d + 2) / 2 + d];
        for tree in &e.trees {
            self.recurse(
                &mut Walk {
                    row,
                    column: target.column as u32,
                    phi: &mut phi,
                },
                &mut buf,
                tree.root,
                0,
                0,
                (1.0, 1.0, -1),
            );
        }
        let base = f64::from(e.base_values[target.column]) + self.expected[target.column];
        Ok(Attribution {
            base: target.offset + target.sign * base,
            values: phi.into_iter().map(|v| target.sign * v).collect(),
            space: target.space,
        })
    }

    /// How `label`'s output derives from the accumulated columns, if it is one of them.
    fn target(&self, label: usize) -> Option<Target> {
        let e = &self.engine;
        let classifier_space = match e.transform {
            Transform::None => Space::Probability,
            Transform::Logistic => Space::LogOdds,
            Transform::Softmax | Transform::SoftmaxZero => Space::Logit,
            Transform::Probit => Space::Margin,
        };
        let plain = |space| {
            (label < e.n_outputs).then_some(Target {
                column: label,
                sign: 1.0,
                offset: 0.0,
                space,
            })
        };
        match &e.finish {
            Finish::Single { .. } => (label == 0).then_some(Target {
                column: 0,
                sign: 1.0,
                offset: 0.0,
                space: if e.transform == Transform::Probit {
                    Space::Margin
                } else {
                    Space::Value
                },
            }),
            Finish::Targets { .. } if !e.track_has => plain(match e.transform {
                Transform::None => Space::Value,
                Transform::Logistic => Space::LogOdds,
                _ => Space::Margin,
            }),
            Finish::Targets { .. } => None,
            Finish::Classes { .. } => plain(classifier_space),
            Finish::Binary {
                base,
                binary_case,
                all_positive,
            } => {
                let only_first = e.weights.iter().all(|w| w.0 == 0);
                if *binary_case && only_first && base.len() <= 1 && label < 2 {
                    // onnxruntime's one-score case: class 1 reads the score, class 0 its
                    // complement (1 - s) or its negation.
                    let (space, offset) = if *all_positive {
                        (Space::Probability, 1.0)
                    } else if e.transform == Transform::Logistic {
                        (Space::LogOdds, 0.0)
                    } else {
                        (Space::Margin, 0.0)
                    };
                    Some(if label == 1 {
                        Target {
                            column: 0,
                            sign: 1.0,
                            offset: 0.0,
                            space,
                        }
                    } else {
                        Target {
                            column: 0,
                            sign: -1.0,
                            offset,
                            space,
                        }
                    })
                } else if !binary_case && base.is_empty() && !e.track_has {
                    plain(classifier_space)
                } else {
                    None
                }
            }
        }
    }

    /// A leaf's value for `column` (times the aggregation's scale).
    fn leaf_value(&self, slot: usize, column: u32) -> f64 {
        let (a, z) = self.engine.leaf_weights[slot];
        let sum: f64 = self.engine.weights[a as usize..z as usize]
            .iter()
            .filter(|w| w.0 == column)
            .map(|w| f64::from(w.1))
            .sum();
        sum * self.scale
    }

    /// Σ over trees of the cover-weighted mean of `column`'s leaf values.
    fn mean_leaves(&self, column: u32) -> f64 {
        let e = &self.engine;
        let mut total = 0.0;
        for (t, tree) in e.trees.iter().enumerate() {
            let end = e
                .trees
                .get(t + 1)
                .map_or(e.nodes.len(), |n| n.root as usize);
            let root = self.covers[tree.root as usize];
            if root <= 0.0 {
                continue;
            }
            for slot in tree.root as usize..end {
                if e.nodes[slot].yes as usize == slot {
                    total += self.covers[slot] / root * self.leaf_value(slot, column);
                }
            }
        }
        total
    }

    /// Algorithm 2's RECURSE for the node at `slot`. The path of the parent starts at
    /// `parent` in `buf`, with `depth` unique features; `incoming` is the parent's split
    /// (zero fraction, one fraction, feature).
    fn recurse(
        &self,
        walk: &mut Walk<'_>,
        buf: &mut [PathElem],
        slot: u32,
        depth: usize,
        parent: usize,
        incoming: (f64, f64, i64),
    ) {
        let at = parent + depth + 1;
        buf.copy_within(parent..parent + depth + 1, at);
        let path = &mut buf[at..];
        extend(path, depth, incoming, self.ratios.at(depth));
        let node = self.engine.nodes[slot as usize];
        if node.yes == slot {
            let v = self.leaf_value(slot as usize, walk.column);
            if v != 0.0 {
                let ratios = self.ratios.at(depth);
                for i in 1..=depth {
                    let w = unwound_sum(path, depth, i, ratios);
                    let el = path[i];
                    walk.phi[el.feature as usize] += w * (el.one - el.zero) * v;
                }
            }
            return;
        }
        let feature = i64::from(node.feature & FEATURE_MASK);
        let x = walk.row[feature as usize];
        let (hot, cold) = if goes_yes(&node, x) {
            (node.yes, node.no)
        } else {
            (node.no, node.yes)
        };
        let hot_zero = self.fractions[hot as usize];
        let cold_zero = self.fractions[cold as usize];
        let (mut in_zero, mut in_one) = (1.0, 1.0);
        let mut depth = depth;
        if let Some(k) = (0..=depth).find(|&k| path[k].feature == feature) {
            in_zero = path[k].zero;
            in_one = path[k].one;
            unwind(path, depth, k, self.ratios.at(depth));
            depth -= 1;
        }
        self.recurse(
            walk,
            buf,
            hot,
            depth + 1,
            at,
            (hot_zero * in_zero, in_one, feature),
        );
        self.recurse(
            walk,
            buf,
            cold,
            depth + 1,
            at,
            (cold_zero * in_zero, 0.0, feature),
        );
    }
}

/// One row's walk: its values, the column explained, the attributions so far.
struct Walk<'a> {
    row: &'a [f32],
    column: u32,
    phi: &'a mut [f64],
}

/// The constant factors of one path length (see [`Ratios::at`]).
type Row<'a> = (&'a [f64], &'a [f64], &'a [f64], &'a [f64]);

/// Adds a feature to the path (EXTEND): `incoming` is its (zero fraction, one fraction,
/// feature); `r` the ratios of path length `depth`.
fn extend(path: &mut [PathElem], depth: usize, incoming: (f64, f64, i64), r: Row<'_>) {
    let (zero, one, feature) = incoming;
    let (up, _, down, _) = r;
    path[depth] = PathElem {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    };
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * up[i];
        path[i].weight = zero * path[i].weight * down[i];
    }
}

/// Removes the feature at `index` from the path (UNWIND); `r` the ratios of path length
/// `depth`.
fn unwind(path: &mut [PathElem], depth: usize, index: usize, r: Row<'_>) {
    let PathElem { one, zero, .. } = path[index];
    let (_, up_inv, down, down_inv) = r;
    let mut next = path[depth].weight;
    if one != 0.0 {
        let inv_one = 1.0 / one;
        for i in (0..depth).rev() {
            let tmp = path[i].weight;
            path[i].weight = next * up_inv[i] * inv_one;
            next = tmp - path[i].weight * zero * down[i];
        }
    } else {
        let inv_zero = 1.0 / zero;
        for i in (0..depth).rev() {
            path[i].weight = path[i].weight * down_inv[i] * inv_zero;
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
}

/// The total weight of the path with the feature at `index` unwound, without unwinding it;
/// `r` the ratios of path length `depth`.
fn unwound_sum(path: &[PathElem], depth: usize, index: usize, r: Row<'_>) -> f64 {
    let PathElem { one, zero, .. } = path[index];
    let (_, up_inv, down, down_inv) = r;
    let mut total = 0.0;
    if one != 0.0 {
        let inv_one = 1.0 / one;
        let mut next = path[depth].weight;
        for i in (0..depth).rev() {
            let tmp = next * up_inv[i] * inv_one;
            total += tmp;
            next = path[i].weight - tmp * zero * down[i];
        }
    } else {
        let inv_zero = 1.0 / zero;
        for i in (0..depth).rev() {
            total += path[i].weight * inv_zero * down_inv[i];
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Exact Shapley values by enumerating every coalition, for a path-dependent value
    /// function computed by walking the tree (a missing feature's split follows covers).
    fn brute_force(shap: &TreeShap, row: &[f32], column: u32) -> Vec<f64> {
        let e = &shap.engine;
        let n = e.n_features;
        let value = |known: u32| -> f64 {
            let mut total = 0.0;
            for tree in &e.trees {
                total += cond_value(shap, tree.root, row, known, column);
            }
            total
        };
        let fact = |k: usize| (1..=k).product::<usize>() as f64;
        (0..n)
            .map(|i| {
                let mut phi = 0.0;
                for s in 0u32..(1 << n) {
                    if s & (1 << i) != 0 {
                        continue;
                    }
                    let k = s.count_ones() as usize;
                    let w = fact(k) * fact(n - k - 1) / fact(n);
                    phi += w * (value(s | (1 << i)) - value(s));
                }
                phi
            })
            .collect()
    }

    fn cond_value(shap: &TreeShap, slot: u32, row: &[f32], known: u32, column: u32) -> f64 {
        let node = shap.engine.nodes[slot as usize];
        if node.yes == slot {
            return shap.leaf_value(slot as usize, column);
        }
        let f = node.feature & FEATURE_MASK;
        if known & (1 << f) != 0 {
            let next = if goes_yes(&node, row[f as usize]) {
                node.yes
            } else {
                node.no
            };
            return cond_value(shap, next, row, known, column);
        }
        let c = shap.covers[slot as usize];
        let (y, n) = (node.yes, node.no);
        shap.covers[y as usize] / c * cond_value(shap, y, row, known, column)
            + shap.covers[n as usize] / c * cond_value(shap, n, row, known, column)
    }

    /// A hand-built ensemble: two trees over three features, one feature split twice on a
    /// path (the case UNWIND handles).
    fn toy() -> TreeShap {
        use super::super::{Node, Tree};
        let branch = |f: u32, v: f32, yes: u32, no: u32| Node {
            feature: f,
            value: v,
            yes,
            no,
        };
        let leaf = |slot: u32, v: f32| Node {
            feature: 0,
            value: v,
            yes: slot,
            no: slot,
        };
        // Tree 0: x0 <= 0.5 ? (x1 <= 0.5 ? 1 : (x0 <= 0.2 ? 3 : 4)) : 2
        // Tree 1: x2 <= 0.5 ? -1 : 0.5
        let nodes = vec![
            branch(0, 0.5, 1, 6),
            branch(1, 0.5, 2, 3),
            leaf(2, 1.0),
            branch(0, 0.2, 4, 5),
            leaf(4, 3.0),
            leaf(5, 4.0),
            leaf(6, 2.0),
            branch(2, 0.5, 8, 9),
            leaf(8, -1.0),
            leaf(9, 0.5),
        ];
        let leaf_weights: Vec<(u32, u32)> = {
            let mut w = Vec::new();
            let mut k = 0u32;
            for (i, n) in nodes.iter().enumerate() {
                if n.yes as usize == i {
                    w.push((k, k + 1));
                    k += 1;
                } else {
                    w.push((0, 0));
                }
            }
            w
        };
        let weights = nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.yes as usize == *i)
            .map(|(_, n)| (0u32, n.value))
            .collect();
        let engine = TreesEngine {
            nodes,
            trees: vec![Tree { root: 0, depth: 3 }, Tree { root: 7, depth: 1 }],
            leaf_weights,
            weights,
            single_column: Some(0),
            simple: true,
            track_has: false,
            scored: vec![1],
            aggregate: Aggregate::Sum,
            transform: Transform::None,
            finish: Finish::Single { origin: 0.0 },
            n_features: 3,
            n_outputs: 1,
            path: "toy".into(),
            tree_ids: vec![0, 1],
            node_ids: vec![0, 1, 2, 3, 4, 5, 6, 0, 1, 2],
            base_values: vec![0.0],
        };
        let covers = vec![
            vec![100.0, 60.0, 25.0, 35.0, 10.0, 25.0, 40.0],
            vec![100.0, 70.0, 30.0],
        ];
        TreeShap::new(engine, &covers).unwrap()
    }

    #[test]
    fn tree_shap_equals_brute_force_shapley_values() {
        let shap = toy();
        for row in [
            [0.1f32, 0.9, 0.9],
            [0.3, 0.9, 0.1],
            [0.9, 0.1, 0.6],
            [0.1, 0.1, 0.1],
        ] {
            let a = shap.explain(&row, 0).unwrap();
            let exact = brute_force(&shap, &row, 0);
            for (got, want) in a.values.iter().zip(&exact) {
                assert!(
                    (got - want).abs() < 1e-12,
                    "{row:?}: {:?} vs {exact:?}",
                    a.values
                );
            }
            let out = f64::from(shap.engine.evaluate(1, &row)[0]);
            assert!((a.output() - out).abs() < 1e-6, "{} vs {out}", a.output());
        }
    }

    #[test]
    fn the_base_value_is_the_cover_weighted_mean_output() {
        let shap = toy();
        let tree0 = (25.0 * 1.0 + 10.0 * 3.0 + 25.0 * 4.0 + 40.0 * 2.0) / 100.0;
        let tree1 = (-70.0 + 30.0 * 0.5) / 100.0;
        let a = shap.explain(&[0.0, 0.0, 0.0], 0).unwrap();
        assert!((a.base - (tree0 + tree1)).abs() < 1e-12);
        assert_eq!(a.space, Space::Value);
    }

    #[test]
    fn covers_that_do_not_fit_the_trees_are_refused() {
        let shap = toy();
        let engine = shap.engine;
        let bad = vec![
            vec![100.0, 60.0, 25.0, 30.0, 10.0, 25.0, 40.0],
            vec![100.0, 70.0, 30.0],
        ];
        let e = TreeShap::new(engine, &bad).unwrap_err();
        assert!(e.contains("not from this model"), "{e}");
    }
}
