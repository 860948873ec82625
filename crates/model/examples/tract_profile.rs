//! Where tract spends a model call, by operator: builds the plan the tract engine builds
//! (concrete batch, `into_optimized`), runs it on a blank input and times each node.
//! `bench/op_profile.py` puts this next to onnxruntime's own profile of the same model.
//!
//!     cargo run --release -p argus-model --example tract_profile -- BUNDLE_DIR [BATCH] [RUNS]
//!
//! (`bench/op_profile.py` builds it with bench/run's features, so tract compiles once.)
//!
//! Prints one JSON object: {"batch", "runs", "per_call_ms", "ops": {op name: ms per call}}.
use argus_model::manifest::Manifest;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{eval, SimpleState};

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: tract_profile BUNDLE_DIR [BATCH] [RUNS]");
        std::process::exit(64);
    };
    let batch: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let runs: usize = args.next().map_or(Ok(30), |s| s.parse())?;
    let manifest = Manifest::load(&dir)?;
    let mut shape = manifest.input.shape.clone();
    shape[0] = batch;
    let mut model = tract_onnx::onnx().model_for_path(dir.join(&manifest.model.file))?;
    model.set_input_fact(0, f32::fact(shape.clone()).into())?;
    model.select_outputs_by_name(manifest.output_names())?;
    let plan = model.into_optimized()?.into_runnable()?;
    let input: Tensor = tract_ndarray::ArrayD::<f32>::zeros(shape).into();
    let mut state = SimpleState::new(&plan)?;
    let mut ops: BTreeMap<String, Duration> = BTreeMap::new();
    let mut total = Duration::ZERO;
    for run in 0..runs + 2 {
        let warm = run < 2;
        let started = Instant::now();
        state.run_plan_with_eval(tvec!(input.clone().into()), |ctx, st, node, inputs| {
            let t = Instant::now();
            let out = eval(ctx, st, node, inputs);
            if !warm {
                *ops.entry(node.op().name().to_string()).or_default() += t.elapsed();
            }
            out
        })?;
        if !warm {
            total += started.elapsed();
        }
    }
    let per_call = |d: Duration| d.as_secs_f64() * 1e3 / runs as f64;
    let ops: BTreeMap<String, f64> = ops.into_iter().map(|(k, d)| (k, per_call(d))).collect();
    println!(
        "{}",
        serde_json::json!({"batch": batch, "runs": runs, "per_call_ms": per_call(total), "ops": ops})
    );
    Ok(())
}
