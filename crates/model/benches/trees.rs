//! µs per row of the native tree engine at batch 1 and 64, and of onnxruntime (built with
//! `--features onnxruntime` and `ORT_DYLIB_PATH` set) on the same model and rows.
//!
//!     env -u RUST_BACKTRACE ORT_DYLIB_PATH=$(bash scripts/onnxruntime-lib) \
//!         cargo bench -p argus-model --bench trees --features onnxruntime
//!
//! The model: `ARGUS_TREES_BENCH_MODEL` (a bundle directory or an .onnx file), else
//! `models/churn` (100-tree random forest, 20 inputs). An .onnx file needs
//! `ARGUS_TREES_BENCH_IO=input,output,n_features` (default `X,probabilities,19`, matching
//! `make_fixtures.py --bench DIR`'s forest).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
use argus_model::engine::trees::TreesEngine;
use argus_model::engine::Engine;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Deterministic rows around the usual feature scale (LCG, roughly N(0, 2)).
fn rows(n: usize, width: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..n * width)
        .map(|_| {
            let mut s = 0.0f32;
            for _ in 0..4 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                s += (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            s * 3.5
        })
        .collect()
}

/// Real encoded rows if the bundle has them (`fixtures/parity.csv`: `f0..f{width-1}`
/// columns, e.g. the churn bundle's 176 test customers and 24 rows on split thresholds),
/// repeated to `n` rows; random rows put one-hot columns off 0/1 and take other paths.
fn real_rows(dir: &std::path::Path, n: usize, width: usize) -> Option<Vec<f32>> {
    let text = std::fs::read_to_string(dir.join("fixtures/parity.csv")).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let cols: Vec<usize> = (0..width)
        .map(|i| header.iter().position(|h| *h == format!("f{i}")))
        .collect::<Option<_>>()?;
    let table: Vec<Vec<f32>> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            cols.iter().map(|&c| cells.get(c)?.parse().ok()).collect()
        })
        .collect::<Option<_>>()?;
    (!table.is_empty()).then(|| table.iter().cycle().take(n).flatten().copied().collect())
}

/// Median µs per row over repeated runs of `batch` rows for about `budget`.
fn time(engine: &dyn Engine, x: &[f32], width: usize, batch: usize, budget: Duration) -> f64 {
    let n_rows = x.len() / width;
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < budget || samples.len() < 20 {
        let r = (i * batch) % (n_rows - batch + 1);
        let chunk = &x[r * width..(r + batch) * width];
        let t = Instant::now();
        for _ in 0..8 {
            black_box(engine.run(batch, black_box(chunk)).unwrap());
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / (8 * batch) as f64);
        i += 1;
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    if std::env::var_os("RUST_BACKTRACE").is_some() {
        println!("note: RUST_BACKTRACE is set; unset it for timing");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("ARGUS_TREES_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/churn"));
    let bundle = target.is_dir();
    let (engine, file) = if bundle {
        let manifest = argus_model::Manifest::load(&target).expect("bundle manifest");
        let file = target.join(&manifest.model.file);
        (TreesEngine::load(&manifest, &file).unwrap(), file)
    } else {
        let io = std::env::var("ARGUS_TREES_BENCH_IO").unwrap_or("X,probabilities,19".into());
        let parts: Vec<&str> = io.split(',').collect();
        let e =
            TreesEngine::from_onnx(&target, parts[0], parts[1], parts[2].parse().unwrap()).unwrap();
        (e, target.clone())
    };
    let width = engine.n_features();
    println!(
        "model {} ({} trees, {width} features, {} outputs)",
        file.display(),
        engine.n_trees(),
        engine.n_outputs()
    );
    let x = match real_rows(&target, 4096, width).filter(|_| bundle) {
        Some(x) => {
            println!("rows: the bundle's fixtures/parity.csv (real encoded records), repeated");
            x
        }
        None => {
            println!("rows: synthetic (deterministic, roughly N(0, 2))");
            rows(4096, width)
        }
    };
    // Rounds alternate the engines (and batch sizes), so machine drift on a shared VM
    // falls on both alike; the median over rounds is reported.
    let ort = ort_engine(bundle, &target);
    if let Some(o) = &ort {
        let a = o.run(64, &x[..64 * width]).unwrap();
        let b = engine.run(64, &x[..64 * width]).unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        println!("onnxruntime vs trees on 64 rows: worst |Δ| {worst:.2e}");
    }
    let mut engines: Vec<(&str, &dyn Engine)> = vec![("trees", &engine)];
    if let Some(o) = &ort {
        engines.push(("onnxruntime", o.as_ref()));
    }
    let rounds = 7;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); engines.len() * 2];
    for round in 0..rounds {
        for k in 0..engines.len() {
            let e = (k + round) % engines.len();
            for (j, batch) in [1usize, 64].into_iter().enumerate() {
                let us = time(engines[e].1, &x, width, batch, Duration::from_millis(300));
                samples[e * 2 + j].push(us);
            }
        }
    }
    let mut med = |i: usize| {
        samples[i].sort_by(f64::total_cmp);
        samples[i][samples[i].len() / 2]
    };
    let trees = [med(0), med(1)];
    for (j, batch) in [1, 64].into_iter().enumerate() {
        println!("trees        batch {batch:>2}: {:8.3} µs/row", trees[j]);
    }
    if engines.len() > 1 {
        for (j, batch) in [1, 64].into_iter().enumerate() {
            let us = med(2 + j);
            println!(
                "onnxruntime  batch {batch:>2}: {us:8.3} µs/row  (trees is {:.1}× faster)",
                us / trees[j]
            );
        }
    }
}

/// onnxruntime on the same bundle (1 session, 1 intra-op thread), if this build has it and
/// `ORT_DYLIB_PATH` is set.
#[cfg(feature = "onnxruntime")]
fn ort_engine(bundle: bool, target: &std::path::Path) -> Option<Box<dyn Engine>> {
    use argus_model::engine::onnxruntime::OrtEngine;
    use argus_model::EngineOptions;
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        println!("onnxruntime: skipped (set ORT_DYLIB_PATH, e.g. $(bash scripts/onnxruntime-lib))");
        return None;
    }
    if !bundle {
        println!("onnxruntime: needs a bundle directory (OrtEngine is built from a manifest); see benches/trees_ort.py");
        return None;
    }
    let manifest = argus_model::Manifest::load(target).unwrap();
    let file = target.join(&manifest.model.file);
    let options = EngineOptions {
        concurrency: 1,
        intra_threads: 1,
        ..Default::default()
    };
    match OrtEngine::load(&manifest, &file, &options) {
        Ok(e) => Some(Box::new(e)),
        Err(e) => {
            println!("onnxruntime: cannot load: {e}");
            None
        }
    }
}

#[cfg(not(feature = "onnxruntime"))]
fn ort_engine(_: bool, _: &std::path::Path) -> Option<Box<dyn Engine>> {
    println!(
        "onnxruntime: not in this build (--features onnxruntime); or run benches/trees_ort.py"
    );
    None
}
