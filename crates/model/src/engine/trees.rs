//! A native evaluator for ONNX-ML tree ensembles (`ai.onnx.ml.TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor`, opset 1–3), as skl2onnx writes them for scikit-learn's random
//! forests, extra trees and gradient boosting. tract runs these ops ~2000× slower than
//! onnxruntime; this engine reads the ensemble from the ONNX file and walks the trees itself.
//!
//! Semantics follow onnxruntime 1.20's CPU kernel exactly (checked against it by the fixtures
//! in `tests/fixtures/trees`): scores accumulate in `f32` tree by tree, in tree-id order;
//! node modes `BRANCH_LEQ/LT/GTE/GT/EQ/NEQ`, `nodes_missing_value_tracks_true` for NaN inputs,
//! `base_values`, aggregate functions `SUM/AVERAGE/MIN/MAX`, post transforms
//! `NONE/LOGISTIC/SOFTMAX/SOFTMAX_ZERO/PROBIT`, and the classifier's two-class special cases:
//! when the weights target one class only, onnxruntime derives the two columns from that one
//! score (`[1 - s, s]` when all weights are positive, `[-s, s]` or
//! `[logistic(-s), logistic(s)]` otherwise); a class that received no weight reads as 0.
//! A one-target regressor ignores every post transform but `PROBIT`, as onnxruntime does.
//!
//! The graph may wrap the ensemble in `Identity`, `Cast` (to float, of a float) and `Reshape`
//! (keeping one row per input) on the way from the input and to the chosen output; any other
//! op on that path, double-precision (`*_as_tensor`) attributes and the cases onnxruntime
//! leaves undefined are refused at load time with an error naming them.
//!
//! Layout: all trees' nodes in one `Vec` of 16-byte nodes. A leaf points to itself, so every
//! tree is walked a fixed number of steps (its depth) without data-dependent branches, several
//! rows in lockstep; batches go tree by tree over blocks of rows so a tree stays in cache.
use super::{Engine, EngineKind};
use crate::error::ModelError;
use crate::manifest::Manifest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tract_onnx::pb;

pub mod shap;

/// Rows walked together through one tree.
const BLOCK: usize = 32;
/// Smallest block walked in lockstep (see [`TreesEngine::walk`]).
const LOCKSTEP_MIN: usize = 8;
/// Feature index bits of [`Node::feature`]; the bits above hold the mode and the missing flag.
const FEATURE_MASK: u32 = 0x0FFF_FFFF;
const MISSING_TRUE: u32 = 1 << 31;
const MODE_SHIFT: u32 = 28;

/// Branch comparisons, in the order of the mode bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq = 0,
    Lt = 1,
    Gte = 2,
    Gt = 3,
    Eq = 4,
    Neq = 5,
}

/// One tree node. A branch goes to `yes` when `x[feature] (mode) value` holds (or `x` is NaN
/// and the node's missing values track true), else to `no`. A leaf has `yes == no == itself`
/// and, when every leaf holds at most one weight for one column, its weight in `value`.
#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    value: f32,
    yes: u32,
    no: u32,
}

/// A node still to lay out: attribute index, depth, and the parent slot whose yes (true) or
/// no (false) child it is.
type Pending = (usize, u32, Option<(usize, bool)>);

#[derive(Debug, Clone, Copy)]
struct Tree {
    root: u32,
    /// Steps from the root to the deepest leaf.
    depth: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

/// How a row's accumulated scores become its output values.
#[derive(Debug, Clone, PartialEq)]
enum Finish {
    /// A regressor with one target (onnxruntime's single-score path).
    Single { origin: f32 },
    /// A regressor with several targets.
    Targets { base: Option<Vec<f32>> },
    /// A classifier with more than two classes.
    Classes { base: Vec<f32> },
    /// A two-class classifier.
    Binary {
        base: Vec<f32>,
        /// Weights target one class id only.
        binary_case: bool,
        all_positive: bool,
    },
}

/// Whether a column receives a score on every row, on none, or it depends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    Always,
    Never,
    Sometimes,
}

/// A tree ensemble read from an ONNX file, evaluated natively. `Send + Sync`, no locks.
pub struct TreesEngine {
    nodes: Vec<Node>,
    trees: Vec<Tree>,
    /// Per node: its range in `weights` (leaves only; empty for branches).
    leaf_weights: Vec<(u32, u32)>,
    /// (column, weight) pairs of all leaves.
    weights: Vec<(u32, f32)>,
    /// Every leaf has at most one weight, all for this column: it sits in `Node::value`.
    single_column: Option<usize>,
    /// All branches are `BRANCH_LEQ` without missing-value tracking (skl2onnx's output).
    simple: bool,
    /// Per-row "has a score" flags are needed (some column is scored on some rows only, or
    /// MIN/MAX over several targets).
    track_has: bool,
    /// Per column, 1 if some leaf scores it (the flags when they are not tracked: then every
    /// column is scored on every row or on none).
    scored: Vec<u8>,
    aggregate: Aggregate,
    transform: Transform,
    finish: Finish,
    n_features: usize,
    n_outputs: usize,
    path: PathBuf,
    /// Per tree (in layout order): its ONNX tree id.
    tree_ids: Vec<i64>,
    /// Per node slot: its ONNX node id (covers and other per-node data are keyed by these).
    node_ids: Vec<i64>,
    /// Per column: the base value the finish adds (0 when none).
    base_values: Vec<f32>,
}

impl std::fmt::Debug for TreesEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreesEngine")
            .field("path", &self.path)
            .field("trees", &self.trees.len())
            .field("nodes", &self.nodes.len())
            .field("n_features", &self.n_features)
            .field("n_outputs", &self.n_outputs)
            .finish_non_exhaustive()
    }
}

const SUGGEST: &str = "use engine \"onnxruntime\" (or \"tract\") for this model";

fn refuse(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::bundle(path, format!("trees engine: {reason}; {SUGGEST}"))
}

/// The attributes of the tree node, by name.
struct Attrs<'a>(HashMap<&'a str, &'a pb::AttributeProto>);

impl<'a> Attrs<'a> {
    fn ints(&self, name: &str) -> &'a [i64] {
        self.0.get(name).map_or(&[], |a| a.ints.as_slice())
    }
    fn floats(&self, name: &str) -> &'a [f32] {
        self.0.get(name).map_or(&[], |a| a.floats.as_slice())
    }
    fn strings(&self, name: &str) -> Vec<String> {
        self.0.get(name).map_or(Vec::new(), |a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
    }
    fn string(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

const FLOAT: i32 = 1;

impl TreesEngine {
    /// Loads the ensemble that produces `output_name` from the ONNX file at `path`; the model
    /// must have one input, `input_name`, of `n_features` floats per row.
    pub fn from_onnx(
        path: &Path,
        input_name: &str,
        output_name: &str,
        n_features: usize,
    ) -> Result<TreesEngine, ModelError> {
        let proto = super::read_proto(path)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| refuse(path, "the model has no graph"))?;
        build(path, graph, input_name, output_name, n_features)
    }

    /// [`TreesEngine::from_onnx`] with the manifest's input name, output name and input width
    /// (the product of the input shape after the batch dimension).
    pub fn load(manifest: &Manifest, path: &Path) -> Result<TreesEngine, ModelError> {
        let n_features = manifest.input.shape.iter().skip(1).product();
        TreesEngine::from_onnx(
            path,
            &manifest.input.name,
            &manifest.output.name,
            n_features,
        )
    }

    /// Output values per input row.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Input values per row.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Trees in the ensemble.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }
}

/// Follows `Identity`, `Cast` to float and row-preserving `Reshape` back from `name`; returns
/// the tensor they start from.
fn unwrap_glue<'a>(
    path: &Path,
    graph: &'a pb::GraphProto,
    producers: &HashMap<&str, &'a pb::NodeProto>,
    mut name: &'a str,
    row_len: Option<usize>,
) -> Result<&'a str, ModelError> {
    for _ in 0..=graph.node.len() {
        let Some(node) = producers.get(name) else {
            return Ok(name);
        };
        if node.op_type.starts_with("TreeEnsemble") {
            return Ok(name);
        }
        let first = node.input.first().map(String::as_str).unwrap_or_default();
        match (node.domain.as_str(), node.op_type.as_str()) {
            ("" | "ai.onnx", "Identity") => {}
            ("" | "ai.onnx", "Cast") => {
                let to = node.attribute.iter().find(|a| a.name == "to").map(|a| a.i);
                if to != Some(i64::from(FLOAT)) {
                    return Err(refuse(
                        path,
                        format!("node {:?} casts to type {to:?}, not float", node.name),
                    ));
                }
            }
            ("" | "ai.onnx", "Reshape") => {
                let shape = node
                    .input
                    .get(1)
                    .and_then(|s| graph.initializer.iter().find(|t| &t.name == s))
                    .map(ints_of);
                let ok = match (shape, row_len) {
                    (Some(Some(dims)), Some(n)) => {
                        matches!(dims.first(), Some(-1 | 0))
                            && dims[1..].iter().all(|&d| d > 0)
                            && dims[1..].iter().product::<i64>() == n as i64
                    }
                    _ => false,
                };
                if !ok {
                    return Err(refuse(
                        path,
                        format!(
                            "Reshape node {:?} does not keep one row per input with a constant shape",
                            node.name
                        ),
                    ));
                }
            }
            (domain, op) => {
                return Err(refuse(
                    path,
                    format!(
                        "op {domain}{}{op} (node {:?}) between the input and the tree ensemble \
                         is not supported",
                        if domain.is_empty() { "" } else { "." },
                        node.name
                    ),
                ))
            }
        }
        name = first;
    }
    Err(refuse(path, "the graph has a cycle"))
}

fn ints_of(t: &pb::TensorProto) -> Option<Vec<i64>> {
    const INT64: i32 = 7;
    if t.data_type != INT64 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return Some(t.int64_data.clone());
    }
    if t.raw_data.len() % 8 != 0 {
        return None;
    }
    Some(
        t.raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    )
}

fn tensor_elem_and_dims(v: &pb::ValueInfoProto) -> (i32, Option<Vec<Option<i64>>>) {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as T;
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(t)) => (
            t.elem_type,
            t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Value::DimValue(n)) => Some(n),
                        _ => None,
                    })
                    .collect()
            }),
        ),
        None => (0, None),
    }
}

fn build(
    path: &Path,
    graph: &pb::GraphProto,
    input_name: &str,
    output_name: &str,
    n_features: usize,
) -> Result<TreesEngine, ModelError> {
    // The single graph input (initializers listed as inputs by old exporters excluded).
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !graph.initializer.iter().any(|t| t.name == i.name))
        .collect();
    if inputs.len() != 1 || inputs[0].name != input_name {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(ModelError::bundle(
            path,
            format!("model inputs are {names:?}; expected one input named {input_name:?}"),
        ));
    }
    if n_features == 0 || n_features > FEATURE_MASK as usize {
        return Err(ModelError::bundle(
            path,
            format!("cannot evaluate trees on {n_features} features"),
        ));
    }
    if !graph.output.iter().any(|o| o.name == output_name) {
        let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        return Err(ModelError::bundle(
            path,
            format!("model outputs are {names:?}; there is no {output_name:?}"),
        ));
    }
    let mut producers = HashMap::new();
    for node in &graph.node {
        for o in &node.output {
            producers.insert(o.as_str(), node);
        }
    }
    // A Reshape on the way to the output must keep the ensemble's row length.
    let ensembles: Vec<&pb::NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type.starts_with("TreeEnsemble"))
        .collect();
    let width = match ensembles.as_slice() {
        [one] => ensemble_width(one).ok(),
        _ => None,
    };
    let source = unwrap_glue(path, graph, &producers, output_name, width)?;
    let node = producers.get(source).copied().ok_or_else(|| {
        refuse(
            path,
            format!("output {output_name:?} does not come from a tree ensemble"),
        )
    })?;
    let classifier = match (node.domain.as_str(), node.op_type.as_str()) {
        ("ai.onnx.ml", "TreeEnsembleClassifier") => true,
        ("ai.onnx.ml", "TreeEnsembleRegressor") => false,
        (d, op) => {
            return Err(refuse(
                path,
                format!("output {output_name:?} comes from op {d}.{op}, not a tree ensemble (TreeEnsembleClassifier/TreeEnsembleRegressor of ai.onnx.ml)"),
            ))
        }
    };
    let out_index = node.output.iter().position(|o| o == source).unwrap_or(0);
    if classifier && out_index != 1 {
        return Err(refuse(
            path,
            format!(
                "{output_name:?} is the classifier's label output; name its scores output ({:?})",
                node.output.get(1).map(String::as_str).unwrap_or("")
            ),
        ));
    }
    let x = node.input.first().map(String::as_str).unwrap_or_default();
    let x = unwrap_glue(path, graph, &producers, x, None)?;
    if x != input_name {
        return Err(refuse(
            path,
            format!("the tree ensemble reads {x:?}, not the input {input_name:?}"),
        ));
    }
    let (elem, dims) = tensor_elem_and_dims(inputs[0]);
    if elem != FLOAT {
        return Err(refuse(
            path,
            format!("input {input_name:?} has element type {elem}, not float"),
        ));
    }
    if let Some(dims) = &dims {
        let width = match dims.as_slice() {
            [_, w] => *w,
            _ => {
                return Err(ModelError::bundle(
                    path,
                    format!(
                        "input {input_name:?} has rank {}, not 2 (batch, features)",
                        dims.len()
                    ),
                ))
            }
        };
        if let Some(w) = width {
            if w != n_features as i64 {
                return Err(ModelError::bundle(
                    path,
                    format!("input {input_name:?} has {w} features per row, expected {n_features}"),
                ));
            }
        }
    }
    parse_ensemble(path, node, classifier, n_features)
}

/// Values per row of the ensemble's scores output.
fn ensemble_width(node: &pb::NodeProto) -> Result<usize, String> {
    let attr = |n: &str| node.attribute.iter().find(|a| a.name == n);
    if node.op_type == "TreeEnsembleClassifier" {
        let n = attr("classlabels_int64s").map_or(0, |a| a.ints.len())
            + attr("classlabels_strings").map_or(0, |a| a.strings.len());
        Ok(n)
    } else if node.op_type == "TreeEnsembleRegressor" {
        let n = attr("n_targets").map_or(1, |a| a.i);
        usize::try_from(n).map_err(|_| format!("n_targets is {n}"))
    } else {
        Err(format!("op {} is not a tree ensemble", node.op_type))
    }
}

fn parse_ensemble(
    path: &Path,
    node: &pb::NodeProto,
    classifier: bool,
    n_features: usize,
) -> Result<TreesEngine, ModelError> {
    let attrs = Attrs(
        node.attribute
            .iter()
            .map(|a| (a.name.as_str(), a))
            .collect(),
    );
    for a in &node.attribute {
        if a.name.ends_with("_as_tensor") && a.name != "nodes_hitrates_as_tensor" {
            return Err(refuse(
                path,
                format!(
                    "attribute {} (double-precision values) is not supported",
                    a.name
                ),
            ));
        }
    }
    let (prefix, ids_name) = if classifier {
        ("class", "class_ids")
    } else {
        ("target", "target_ids")
    };
    let n_cols = ensemble_width(node).map_err(|e| refuse(path, e))?;
    if classifier {
        if n_cols < 2 {
            return Err(refuse(
                path,
                format!("the classifier has {n_cols} class labels; at least 2 are needed"),
            ));
        }
        if !attrs.ints("classlabels_int64s").is_empty()
            && !attrs.strings("classlabels_strings").is_empty()
        {
            return Err(refuse(path, "both int64 and string class labels are set"));
        }
    } else if n_cols == 0 {
        return Err(refuse(path, "n_targets is 0"));
    }

    // Nodes.
    let tree_ids = attrs.ints("nodes_treeids");
    let node_ids = attrs.ints("nodes_nodeids");
    let features = attrs.ints("nodes_featureids");
    let values = attrs.floats("nodes_values");
    let modes = attrs.strings("nodes_modes");
    let yes_ids = attrs.ints("nodes_truenodeids");
    let no_ids = attrs.ints("nodes_falsenodeids");
    let missing = attrs.ints("nodes_missing_value_tracks_true");
    let n = tree_ids.len();
    if n == 0 {
        return Err(refuse(path, "the ensemble has no nodes"));
    }
    for (name, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_values", values.len()),
        ("nodes_modes", modes.len()),
        ("nodes_truenodeids", yes_ids.len()),
        ("nodes_falsenodeids", no_ids.len()),
    ] {
        if len != n {
            return Err(refuse(
                path,
                format!("{name} has {len} entries, nodes_treeids {n}"),
            ));
        }
    }
    if !missing.is_empty() && missing.len() != n {
        return Err(refuse(
            path,
            format!(
                "nodes_missing_value_tracks_true has {} entries, nodes_treeids {n}",
                missing.len()
            ),
        ));
    }
    let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    for i in 0..n {
        if index.insert((tree_ids[i], node_ids[i]), i).is_some() {
            return Err(refuse(
                path,
                format!(
                    "node {} of tree {} is defined twice",
                    node_ids[i], tree_ids[i]
                ),
            ));
        }
    }
    let leaf: Vec<bool> = modes.iter().map(|m| m == "LEAF").collect();

    // Weights per attribute node index.
    let w_trees = attrs.ints(&format!("{prefix}_treeids"));
    let w_nodes = attrs.ints(&format!("{prefix}_nodeids"));
    let w_ids = attrs.ints(ids_name);
    let w_values = attrs.floats(&format!("{prefix}_weights"));
    let m = w_trees.len();
    if w_nodes.len() != m || w_ids.len() != m || w_values.len() != m {
        return Err(refuse(
            path,
            format!(
                "{prefix}_treeids, {prefix}_nodeids, {ids_name} and {prefix}_weights differ in length"
            ),
        ));
    }
    let mut node_weights: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for j in 0..m {
        let i = *index.get(&(w_trees[j], w_nodes[j])).ok_or_else(|| {
            refuse(
                path,
                format!(
                    "a weight refers to node {} of tree {}, which does not exist",
                    w_nodes[j], w_trees[j]
                ),
            )
        })?;
        if !leaf[i] {
            return Err(refuse(
                path,
                format!(
                    "a weight is on node {} of tree {}, which is not a leaf",
                    w_nodes[j], w_trees[j]
                ),
            ));
        }
        let col = usize::try_from(w_ids[j])
            .ok()
            .filter(|&c| c < n_cols)
            .ok_or_else(|| {
                refuse(
                    path,
                    format!("{ids_name} {} is outside 0..{n_cols}", w_ids[j]),
                )
            })?;
        node_weights[i].push((col as u32, w_values[j]));
    }

    // Trees in tree-id order, each laid out depth-first from node 0.
    let mut roots: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..n {
        if node_ids[i] == 0 {
            roots.insert(tree_ids[i], i);
        }
    }
    let tree_set: std::collections::BTreeSet<i64> = tree_ids.iter().copied().collect();
    if let Some(t) = tree_set.iter().find(|t| !roots.contains_key(t)) {
        return Err(refuse(path, format!("tree {t} has no node 0")));
    }
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut leaf_weights: Vec<(u32, u32)> = Vec::with_capacity(n);
    let mut weights: Vec<(u32, f32)> = Vec::with_capacity(m);
    let mut trees = Vec::with_capacity(roots.len());
    let mut tree_order = Vec::with_capacity(roots.len());
    let mut slot_ids: Vec<i64> = Vec::with_capacity(n);
    let mut simple = true;
    let mut placed = vec![u32::MAX; n];
    // Per column: trees whose every reachable leaf scores it, and whether any leaf does.
    let mut always = vec![false; n_cols];
    let mut ever = vec![false; n_cols];
    let mut every_leaf_one_weight = true;
    for (&tid, &root) in &roots {
        let start = nodes.len();
        let mut depth = 0u32;
        let mut covered = vec![true; n_cols];
        // Iterative preorder: (attribute index, depth, parent slot to patch, is yes-child).
        let mut stack: Vec<Pending> = vec![(root, 0, None)];
        while let Some((i, d, parent)) = stack.pop() {
            if placed[i] != u32::MAX {
                return Err(refuse(
                    path,
                    format!("node {} of tree {tid} is reached twice", node_ids[i]),
                ));
            }
            let slot = nodes.len();
            if slot > u32::MAX as usize / 2 {
                return Err(refuse(path, "too many nodes"));
            }
            placed[i] = slot as u32;
            slot_ids.push(node_ids[i]);
            if let Some((p, is_yes)) = parent {
                if is_yes {
                    nodes[p].yes = slot as u32;
                } else {
                    nodes[p].no = slot as u32;
                }
            }
            depth = depth.max(d);
            if leaf[i] {
                let ws = &node_weights[i];
                let start_w = weights.len() as u32;
                weights.extend_from_slice(ws);
                leaf_weights.push((start_w, weights.len() as u32));
                if ws.len() > 1 {
                    every_leaf_one_weight = false;
                }
                for (c, cov) in covered.iter_mut().enumerate() {
                    let scored = ws.iter().any(|&(col, _)| col as usize == c);
                    *cov &= scored;
                    ever[c] |= scored;
                }
                if ws.is_empty() {
                    every_leaf_one_weight = false;
                }
                nodes.push(Node {
                    feature: 0,
                    value: ws.first().map_or(0.0, |w| w.1),
                    yes: slot as u32,
                    no: slot as u32,
                });
                continue;
            }
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                other => {
                    return Err(refuse(
                        path,
                        format!("node mode {other:?} is not supported"),
                    ))
                }
            };
            let feature = usize::try_from(features[i])
                .ok()
                .filter(|&f| f < n_features)
                .ok_or_else(|| {
                    ModelError::bundle(
                        path,
                        format!(
                            "node {} of tree {tid} reads feature {}, but rows have {n_features}",
                            node_ids[i], features[i]
                        ),
                    )
                })?;
            let track = missing.get(i).copied().unwrap_or(0) != 0;
            if mode != Mode::Leq || track {
                simple = false;
            }
            let flags = ((mode as u32) << MODE_SHIFT) | if track { MISSING_TRUE } else { 0 };
            leaf_weights.push((0, 0));
            nodes.push(Node {
                feature: feature as u32 | flags,
                value: values[i],
                yes: u32::MAX,
                no: u32::MAX,
            });
            let child = |id: i64| {
                index.get(&(tid, id)).copied().ok_or_else(|| {
                    refuse(
                        path,
                        format!(
                            "node {} of tree {tid} points to node {id}, which does not exist",
                            node_ids[i]
                        ),
                    )
                })
            };
            let (y, no) = (child(yes_ids[i])?, child(no_ids[i])?);
            if d + 1 > 4096 {
                return Err(refuse(path, format!("tree {tid} is deeper than 4096")));
            }
            stack.push((no, d + 1, Some((slot, false))));
            stack.push((y, d + 1, Some((slot, true))));
        }
        for (c, cov) in covered.iter().enumerate() {
            always[c] |= *cov;
        }
        trees.push(Tree {
            root: start as u32,
            depth,
        });
        tree_order.push(tid);
    }
    let coverage: Vec<Coverage> = (0..n_cols)
        .map(|c| {
            if always[c] {
                Coverage::Always
            } else if ever[c] {
                Coverage::Sometimes
            } else {
                Coverage::Never
            }
        })
        .collect();

    let transform = match attrs.string("post_transform").as_deref() {
        None | Some("NONE") => Transform::None,
        Some("LOGISTIC") => Transform::Logistic,
        Some("SOFTMAX") => Transform::Softmax,
        Some("SOFTMAX_ZERO") => Transform::SoftmaxZero,
        Some("PROBIT") => Transform::Probit,
        Some(other) => {
            return Err(refuse(
                path,
                format!("post_transform {other:?} is not supported"),
            ))
        }
    };
    let aggregate = if classifier {
        Aggregate::Sum
    } else {
        match attrs.string("aggregate_function").as_deref() {
            None | Some("SUM") => Aggregate::Sum,
            Some("AVERAGE") => Aggregate::Average,
            Some("MIN") => Aggregate::Min,
            Some("MAX") => Aggregate::Max,
            Some(other) => {
                return Err(refuse(
                    path,
                    format!("aggregate_function {other:?} is not supported"),
                ))
            }
        }
    };
    let base = attrs.floats("base_values").to_vec();
    let base_values: Vec<f32> = (0..n_cols)
        .map(|c| base.get(c).copied().unwrap_or(0.0))
        .collect();
    let single_col = {
        let cols: std::collections::BTreeSet<u32> = weights.iter().map(|w| w.0).collect();
        (cols.len() == 1).then(|| cols.first().copied().unwrap_or(0) as usize)
    };
    let all_positive = w_values.iter().all(|&w| w >= 0.0);
    let finish = if classifier {
        if n_cols == 2 {
            let binary_case = single_col.is_some();
            if base.len() > 2 {
                return Err(refuse(
                    path,
                    format!("{} base_values for two classes", base.len()),
                ));
            }
            // Class 1 without a score makes onnxruntime derive both columns from class 0's;
            // in some of those cases it leaves the second column unwritten.
            if base.len() != 2 && coverage[1] != Coverage::Always {
                if transform == Transform::Probit {
                    return Err(refuse(
                        path,
                        "PROBIT on a two-class ensemble whose weights do not always score class 1 \
                         (onnxruntime writes one column only)",
                    ));
                }
                if !binary_case && base.len() == 1 {
                    return Err(refuse(
                        path,
                        "a two-class ensemble scoring both classes, one base value and rows \
                         without a class-1 score (onnxruntime writes one column only)",
                    ));
                }
            }
            if w_values.is_empty() {
                return Err(refuse(path, "the classifier has no class weights"));
            }
            Finish::Binary {
                base,
                binary_case,
                all_positive,
            }
        } else {
            if !base.is_empty() && base.len() != n_cols {
                return Err(refuse(
                    path,
                    format!("{} base_values for {n_cols} classes", base.len()),
                ));
            }
            Finish::Classes { base }
        }
    } else if n_cols == 1 {
        if matches!(aggregate, Aggregate::Min | Aggregate::Max) && !every_leaf_one_weight {
            return Err(refuse(
                path,
                "MIN/MAX over leaves without exactly one weight is not supported",
            ));
        }
        if !every_leaf_one_weight
            && weights.len() > leaf_weights.iter().filter(|w| w.1 > w.0).count()
        {
            return Err(refuse(
                path,
                "a leaf of a one-target regressor has several weights",
            ));
        }
        Finish::Single {
            origin: if base.len() == 1 { base[0] } else { 0.0 },
        }
    } else {
        Finish::Targets {
            base: (base.len() == n_cols).then_some(base),
        }
    };
    let single_column = match &finish {
        Finish::Single { .. } => Some(0),
        Finish::Binary { .. } | Finish::Classes { .. } | Finish::Targets { .. } => {
            single_col.filter(|&c| every_leaf_one_weight && coverage[c] == Coverage::Always)
        }
    };
    let track_has: bool = match &finish {
        Finish::Single { .. } | Finish::Classes { .. } => false,
        Finish::Binary { .. } => coverage.contains(&Coverage::Sometimes),
        Finish::Targets { .. } => {
            coverage.contains(&Coverage::Sometimes)
                || matches!(aggregate, Aggregate::Min | Aggregate::Max)
        }
    };
    // The single-column fast path does not record which columns received a value, so it
    // is only for finishes that do not need that (a multi-target MIN/MAX does).
    let single_column = single_column.filter(|_| !track_has);
    tracing::debug!(path = %path.display(), trees = trees.len(), nodes = nodes.len(), "loaded tree ensemble");
    Ok(TreesEngine {
        nodes,
        trees,
        leaf_weights,
        weights,
        single_column,
        simple,
        track_has,
        scored: coverage
            .iter()
            .map(|&c| u8::from(c != Coverage::Never))
            .collect(),
        aggregate,
        transform,
        finish,
        n_features,
        n_outputs: n_cols,
        path: path.to_path_buf(),
        tree_ids: tree_order,
        node_ids: slot_ids,
        base_values,
    })
}

/// Whether branch `node` sends `x` to its `yes` child (any mode).
#[inline(always)]
fn goes_yes(node: &Node, x: f32) -> bool {
    let t = node.value;
    let hit = match (node.feature >> MODE_SHIFT) & 0x7 {
        0 => x <= t,
        1 => x < t,
        2 => x >= t,
        3 => x > t,
        4 => x == t,
        _ => x != t,
    };
    hit || (node.feature & MISSING_TRUE != 0 && x.is_nan())
}

impl TreesEngine {
    /// Walks `tree` for the rows of `block` (each `n_features` long); leaves in `at`.
    /// Blocks of at least [`LOCKSTEP_MIN`] rows go down together for the tree's full depth
    /// (leaves loop on themselves), which keeps several independent loads in flight; fewer
    /// rows stop at their leaf.
    #[inline(always)]
    fn walk<const SIMPLE: bool>(&self, tree: Tree, block: &[f32], at: &mut [u32]) {
        let nf = self.n_features;
        if at.len() < LOCKSTEP_MIN {
            for (r, i) in at.iter_mut().enumerate() {
                *i = self.walk_one::<SIMPLE>(tree.root, &block[r * nf..(r + 1) * nf]);
            }
            return;
        }
        at.fill(tree.root);
        for _ in 0..tree.depth {
            for (r, i) in at.iter_mut().enumerate() {
                let node = &self.nodes[*i as usize];
                let x = block[r * nf + (node.feature & FEATURE_MASK) as usize];
                let yes = if SIMPLE {
                    x <= node.value
                } else {
                    goes_yes(node, x)
                };
                *i = if yes { node.yes } else { node.no };
            }
        }
    }

    /// One row down one tree, stopping at the leaf.
    #[inline(always)]
    fn walk_one<const SIMPLE: bool>(&self, root: u32, row: &[f32]) -> u32 {
        let mut i = root;
        // Bounded: trees were checked acyclic at load, and only leaves point to themselves.
        loop {
            let node = &self.nodes[i as usize];
            let x = row[(node.feature & FEATURE_MASK) as usize];
            let yes = if SIMPLE {
                x <= node.value
            } else {
                goes_yes(node, x)
            };
            let next = if yes { node.yes } else { node.no };
            if next == i {
                return i;
            }
            i = next;
        }
    }

    fn accumulate<const SIMPLE: bool>(&self, input: &[f32], out: &mut [f32], has: &mut [u8]) {
        let nf = self.n_features;
        let no = self.n_outputs;
        let mut at = [0u32; BLOCK];
        for (b, block) in input.chunks(BLOCK * nf).enumerate() {
            let rows = block.len() / nf;
            let at = &mut at[..rows];
            let row0 = b * BLOCK;
            for (t, &tree) in self.trees.iter().enumerate() {
                self.walk::<SIMPLE>(tree, block, at);
                if let Some(c) = self.single_column {
                    for (r, &i) in at.iter().enumerate() {
                        let v = self.nodes[i as usize].value;
                        let s = &mut out[(row0 + r) * no + c];
                        match self.aggregate {
                            Aggregate::Sum | Aggregate::Average => *s += v,
                            Aggregate::Min => *s = if t == 0 || v < *s { v } else { *s },
                            Aggregate::Max => *s = if t == 0 || v > *s { v } else { *s },
                        }
                    }
                    continue;
                }
                for (r, &i) in at.iter().enumerate() {
                    let (a, z) = self.leaf_weights[i as usize];
                    let row = (row0 + r) * no;
                    for &(c, v) in &self.weights[a as usize..z as usize] {
                        let k = row + c as usize;
                        let s = &mut out[k];
                        match self.aggregate {
                            Aggregate::Sum | Aggregate::Average => *s += v,
                            Aggregate::Min => {
                                if has.get(k).is_none_or(|&h| h == 0) || v < *s {
                                    *s = v
                                }
                            }
                            Aggregate::Max => {
                                if has.get(k).is_none_or(|&h| h == 0) || v > *s {
                                    *s = v
                                }
                            }
                        }
                        if let Some(h) = has.get_mut(k) {
                            *h = 1;
                        }
                    }
                }
            }
        }
    }

    /// Turns one row's accumulated scores (`row`, with "has a score" flags `has`, all set when
    /// not tracked) into its output values, in place.
    fn finish_row(&self, row: &mut [f32], has: &mut [u8]) {
        let n_trees = self.trees.len() as f32;
        match &self.finish {
            Finish::Single { origin } => {
                let s = &mut row[0];
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Min | Aggregate::Max => *s += *origin,
                    Aggregate::Average => *s = *s / n_trees + *origin,
                }
                if self.transform == Transform::Probit {
                    *s = probit(*s);
                }
            }
            Finish::Targets { base } => {
                for (k, s) in row.iter_mut().enumerate() {
                    let b = base.as_ref().map_or(0.0, |b| b[k]);
                    match self.aggregate {
                        Aggregate::Sum => *s += b,
                        Aggregate::Average => *s = *s / n_trees + b,
                        Aggregate::Min | Aggregate::Max => {
                            *s = b + if has[k] != 0 { *s } else { 0.0 };
                        }
                    }
                }
                read_has(row, has);
                transform_all(self.transform, row);
            }
            Finish::Classes { base } => {
                for (s, b) in row.iter_mut().zip(base) {
                    *s += b;
                }
                transform_all(self.transform, row);
            }
            Finish::Binary {
                base,
                binary_case,
                all_positive,
            } => {
                let (mut s0, mut s1) = (row[0], row[1]);
                let (h0, mut h1) = (has[0] != 0, has[1] != 0);
                let mut single = false;
                let mut mixed = !*binary_case || !*all_positive;
                match base.as_slice() {
                    [b0, b1] => {
                        if h1 {
                            s1 = b1 + s0;
                            s0 = -s1;
                            h1 = true;
                        } else {
                            s1 += b1;
                            s0 += b0;
                        }
                    }
                    [b0] => {
                        s0 += b0;
                        single = !h1;
                    }
                    _ => {
                        single = !h1;
                        mixed |= !*binary_case;
                    }
                }
                let v0 = if h0 { s0 } else { 0.0 };
                if single {
                    // Refused at load where onnxruntime writes one column (PROBIT, or two
                    // classes scored with one base value).
                    if !mixed {
                        row[0] = 1.0 - v0;
                        row[1] = v0;
                    } else if self.transform == Transform::Logistic {
                        row[0] = logistic(-v0);
                        row[1] = logistic(v0);
                    } else {
                        row[0] = -v0;
                        row[1] = v0;
                    }
                } else {
                    row[0] = v0;
                    row[1] = if h1 { s1 } else { 0.0 };
                    transform_all(self.transform, row);
                }
            }
        }
    }

    fn evaluate(&self, batch: usize, input: &[f32]) -> Vec<f32> {
        let no = self.n_outputs;
        let mut out = vec![0f32; batch * no];
        let mut has = if self.track_has {
            vec![0u8; batch * no]
        } else {
            Vec::new()
        };
        if self.simple {
            self.accumulate::<true>(input, &mut out, &mut has);
        } else {
            self.accumulate::<false>(input, &mut out, &mut has);
        }
        // "Has a score" flags: tracked per row when they vary, else constant per column.
        let mut flags = self.scored.clone();
        for (r, row) in out.chunks_mut(no).enumerate() {
            if self.track_has {
                flags.copy_from_slice(&has[r * no..(r + 1) * no]);
            }
            self.finish_row(row, &mut flags);
        }
        out
    }
}

/// Values of columns without a score read as 0 (onnxruntime's `ScoreValue` conversion).
fn read_has(row: &mut [f32], has: &[u8]) {
    for (s, h) in row.iter_mut().zip(has) {
        if *h == 0 {
            *s = 0.0;
        }
    }
}

fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

/// onnxruntime's approximate inverse error function (ml_common.h), constants included.
#[allow(clippy::approx_constant, clippy::excessive_precision)]
fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (3.14159f32 * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147f32 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sgn * v3.sqrt()
}

#[allow(clippy::excessive_precision, clippy::approx_constant)]
fn probit(x: f32) -> f32 {
    1.414_213_56_f32 * erf_inv(2.0 * x - 1.0)
}

fn transform_all(t: Transform, row: &mut [f32]) {
    match t {
        Transform::None => {}
        Transform::Logistic => row.iter_mut().for_each(|s| *s = logistic(*s)),
        Transform::Probit => row.iter_mut().for_each(|s| *s = probit(*s)),
        Transform::Softmax => {
            let max = row
                .iter()
                .fold(-f32::MAX, |m, &s| if s > m { s } else { m });
            let mut sum = 0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            row.iter_mut().for_each(|s| *s /= sum);
        }
        Transform::SoftmaxZero => {
            let max = row
                .iter()
                .fold(-f32::MAX, |m, &s| if s > m { s } else { m });
            let exp_neg_max = (-max).exp();
            let mut sum = 0f32;
            for s in row.iter_mut() {
                if *s > 0.000_000_1 || *s < -0.000_000_1 {
                    *s = (*s - max).exp();
                    sum += *s;
                } else {
                    *s *= exp_neg_max;
                }
            }
            row.iter_mut().for_each(|s| *s /= sum);
        }
    }
}

impl Engine for TreesEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Trees
    }

    fn run(&self, batch: usize, input: &[f32]) -> Result<Vec<f32>, ModelError> {
        if batch.checked_mul(self.n_features) != Some(input.len()) {
            return Err(ModelError::Shape {
                reason: format!(
                    "{} input values for a batch of {batch} rows of {} features",
                    input.len(),
                    self.n_features
                ),
            });
        }
        Ok(self.evaluate(batch, input))
    }
}
