//! The engine a bundle runs on when neither the worker's `--engine` nor the manifest's
//! `model.engine` names one: a fixed rule on the model's graph ([`default_kind`]), so the
//! same model on the same build always runs on the same engine, and its outputs keep the
//! same last digits between starts (unlike `auto`, which times the engines at load).
//!
//! The rule follows what was measured on this project's 2-core machine (docs/bench.md,
//! "tract on the CNN, and the engine chosen by timing"):
//! - tree ensembles run over 3,000× faster on the trees engine than on tract (churn
//!   forest: 4 µs against 15 ms per call at batch 1);
//! - grouped (depthwise) convolutions are where tract loses to onnxruntime: a
//!   MobileNetV2-size CNN 2.3–3× slower, the person detector 2.7× (37.5 against 13.8 ms);
//! - elsewhere tract comes close: MobileNetV2's matrix products within 1.2× of
//!   onnxruntime's, the camera MLP a tie (27 against 26 µs). tract is pure Rust and always
//!   built, so it stays the default there.
use crate::error::ModelError;
use crate::manifest::EngineKind;
use std::path::Path;

/// What [`default_kind`] reads from a model's graph (its top-level nodes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphTraits {
    /// `ai.onnx.ml` tree-ensemble nodes (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`).
    pub tree_ensembles: usize,
    /// `Conv` nodes with `group` > 1 (depthwise and grouped convolutions).
    pub grouped_convs: usize,
    /// All nodes.
    pub nodes: usize,
}

impl GraphTraits {
    /// Reads the ONNX file at `path` (its protobuf only; nothing is built).
    pub fn read(path: &Path) -> Result<GraphTraits, ModelError> {
        let proto = super::read_proto(path)?;
        let mut traits = GraphTraits::default();
        for node in proto.graph.iter().flat_map(|g| g.node.iter()) {
            traits.nodes += 1;
            match (node.domain.as_str(), node.op_type.as_str()) {
                ("ai.onnx.ml", "TreeEnsembleClassifier" | "TreeEnsembleRegressor") => {
                    traits.tree_ensembles += 1
                }
                ("" | "ai.onnx", "Conv") => {
                    let group = node
                        .attribute
                        .iter()
                        .find(|a| a.name == "group")
                        .map_or(1, |a| a.i);
                    if group > 1 {
                        traits.grouped_convs += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(traits)
    }
}

/// The engine for a model with these `traits` when nothing names one; `onnxruntime_built`:
/// whether this build has the onnxruntime engine (cargo feature `onnxruntime`).
/// - a tree ensemble: the trees engine;
/// - grouped convolutions, and onnxruntime built: onnxruntime;
/// - anything else: tract.
///
/// The caller falls back to tract when the chosen engine does not load the model (a tree
/// ensemble with ops the trees engine does not evaluate, no `libonnxruntime` found).
pub fn default_kind(traits: &GraphTraits, onnxruntime_built: bool) -> EngineKind {
    if traits.tree_ensembles > 0 {
        EngineKind::Trees
    } else if traits.grouped_convs > 0 && onnxruntime_built {
        EngineKind::Onnxruntime
    } else {
        EngineKind::Tract
    }
}

/// Why [`default_kind`] chose `kind` for `traits`, for the load log.
pub fn reason(kind: EngineKind, traits: &GraphTraits) -> String {
    match kind {
        EngineKind::Trees => format!("{} tree ensemble node(s)", traits.tree_ensembles),
        EngineKind::Onnxruntime => format!(
            "{} grouped (depthwise) convolution(s), which tract runs 2-3x slower",
            traits.grouped_convs
        ),
        _ if traits.grouped_convs > 0 => format!(
            "{} grouped convolution(s), but this build has no onnxruntime engine",
            traits.grouped_convs
        ),
        _ => "no tree ensemble or grouped convolution".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traits(tree_ensembles: usize, grouped_convs: usize) -> GraphTraits {
        GraphTraits {
            tree_ensembles,
            grouped_convs,
            nodes: tree_ensembles + grouped_convs + 3,
        }
    }

    #[test]
    fn tree_ensembles_go_to_the_trees_engine_on_every_build() {
        assert_eq!(default_kind(&traits(1, 0), false), EngineKind::Trees);
        assert_eq!(default_kind(&traits(1, 0), true), EngineKind::Trees);
    }

    #[test]
    fn grouped_convolutions_go_to_onnxruntime_only_when_it_is_built() {
        assert_eq!(default_kind(&traits(0, 17), true), EngineKind::Onnxruntime);
        assert_eq!(default_kind(&traits(0, 17), false), EngineKind::Tract);
    }

    #[test]
    fn everything_else_stays_on_tract() {
        assert_eq!(default_kind(&traits(0, 0), true), EngineKind::Tract);
        assert_eq!(default_kind(&traits(0, 0), false), EngineKind::Tract);
        assert!(reason(EngineKind::Tract, &traits(0, 3)).contains("no onnxruntime"));
    }
}
