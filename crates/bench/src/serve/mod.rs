//! The serve bench: `argus serve` against the Python server users would write
//! (`bench/python/serve_baseline.py`: FastAPI + uvicorn + onnxruntime), same bundle, same
//! Open Inference Protocol v2 requests, same load generator ([`load`]), in one run.
//!
//! Per bundle: both servers are started on loopback ports and waited for
//! (`/v2/health/ready`); one request checks that they answer the same probabilities; a warm-up
//! run; then per client count, `rounds` closed-loop runs of `requests` each, alternating which
//! server goes first; the medians over rounds of throughput and p50/p99 latency are reported
//! with Argus's value divided by Python's (throughput above 1 and latency below 1 favour
//! Argus). Inputs: churn's parity rows (`models/churn/fixtures/parity.csv`), or an image
//! bundle's fixture frames preprocessed by the bundle — one row per request.
pub mod load;

use crate::error::{runtime, usage};
use crate::harness::{cores, loadavg, median, percentile};
use crate::BenchError;
use argus_model::{Classifier, EngineOptions};
use argus_wire::{ImageFormat, Payload};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct ServeBenchOptions {
    /// The `argus` binary.
    pub argus: PathBuf,
    /// Extra `argus serve` flags (e.g. `--engine onnxruntime`).
    pub argus_args: Vec<String>,
    /// The Python of the baseline's venv.
    pub python: PathBuf,
    /// The baseline server script.
    pub script: PathBuf,
    /// Bundles to serve.
    pub models: Vec<PathBuf>,
    /// Client counts (closed loop, one connection each).
    pub clients: Vec<usize>,
    /// Requests per run.
    pub requests: usize,
    /// Runs per server and client count.
    pub rounds: usize,
    /// Model threads of each server (Argus `--threads`, onnxruntime intra-op threads).
    pub threads: usize,
    /// Markdown report (stdout too).
    pub out: Option<PathBuf>,
}

/// A server process, killed when dropped.
#[derive(Debug)]
struct Server {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> Result<SocketAddr, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(runtime)
}

fn spawn(name: &'static str, mut cmd: Command, addr: SocketAddr) -> Result<Server, BenchError> {
    let log = std::env::temp_dir().join(format!("argus-serve-bench-{name}.log"));
    let file = std::fs::File::create(&log).map_err(runtime)?;
    let child = cmd
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| usage(format!("cannot start {name} ({cmd:?}): {e}")))?;
    tracing::info!(server = name, %addr, log = %log.display(), "started");
    Ok(Server { name, child, addr })
}

async fn wait_ready(s: &mut Server, within: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut c) = load::Connection::open(s.addr).await {
            if matches!(c.request("GET", "/v2/health/ready", b"").await, Ok(a) if a.status == 200) {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = s.child.try_wait() {
            return Err(runtime(format!(
                "{} exited ({status}) before it was ready",
                s.name
            )));
        }
        if Instant::now() > deadline {
            return Err(runtime(format!("{} not ready within {within:?}", s.name)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One OIP v2 infer body per input row of the bundle's fixtures.
fn bodies(dir: &Path) -> Result<Vec<Vec<u8>>, BenchError> {
    let model =
        Classifier::load_with(dir, &EngineOptions::default()).map_err(|e| usage(e.to_string()))?;
    let m = model.manifest();
    let mut shape: Vec<usize> = vec![1];
    shape.extend(&m.input.shape[1..]);
    let rows: Vec<Vec<f32>> = if m.task == argus_model::manifest::Task::Tabular {
        let text = std::fs::read_to_string(dir.join("fixtures/parity.csv")).map_err(runtime)?;
        let width = model.input_len();
        text.lines()
            .skip(1)
            .map(|l| {
                l.split(',')
                    .take(width)
                    .map(|x| x.parse().unwrap_or(0.0))
                    .collect()
            })
            .collect()
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("fixtures"))
            .map_err(runtime)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let bytes = std::fs::read(f).map_err(runtime)?;
                let payload = Payload::Encoded {
                    format: ImageFormat::Jpeg,
                    bytes,
                };
                model
                    .prepare(&payload)
                    .map(|p| p.data)
                    .map_err(|e| runtime(e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    if rows.is_empty() {
        return Err(usage(format!("{}: no fixture rows to send", dir.display())));
    }
    Ok(rows
        .iter()
        .map(|r| {
            json!({"inputs": [{"name": m.input.name, "shape": shape, "datatype": "FP32", "data": r}]})
                .to_string()
                .into_bytes()
        })
        .collect())
}

fn probabilities(body: &[u8]) -> Vec<f64> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    v["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "probabilities"))
        .and_then(|o| o["data"].as_array())
        .map(|d| d.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// Medians over rounds: throughput, p50, p99 (ms), errors.
#[derive(Debug, Clone, Copy)]
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

/// Runs the bench and writes the report.
pub async fn run(o: ServeBenchOptions) -> Result<(), BenchError> {
    if o.requests == 0 || o.rounds == 0 || o.clients.is_empty() {
        return Err(usage("--requests, --rounds and --clients must be positive"));
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Serve bench: `argus serve` vs FastAPI + uvicorn + onnxruntime\n\n\
         Machine: {} cores, load average before: {}. {} requests per run, {} rounds \
         (medians), model threads {} on both sides, one row per request, keep-alive \
         connections, closed loop. Ratios are Argus ÷ Python (throughput > 1 and latency \
         < 1 favour Argus). Argus flags: `{}`.\n",
        cores(),
        loadavg().unwrap_or_else(|| "?".into()),
        o.requests,
        o.rounds,
        o.threads,
        o.argus_args.join(" ")
    );
    for dir in &o.models {
        let bodies = Arc::new(bodies(dir)?);
        let name = Classifier::load(dir)
            .map_err(|e| usage(e.to_string()))?
            .model_ref()
            .name
            .clone();
        let path = format!("/v2/models/{name}/infer");
        let argus_addr = free_addr()?;
        let mut argus = Command::new(&o.argus);
        argus
            .args(["serve", "--model"])
            .arg(dir)
            .args([
                "--listen",
                &argus_addr.to_string(),
                "--threads",
                &o.threads.to_string(),
            ])
            .args(["--max-concurrent", "4096"])
            .args(&o.argus_args)
            .env("RUST_LOG", "warn");
        let py_addr = free_addr()?;
        let mut py = Command::new(&o.python);
        py.arg(&o.script).arg("--model").arg(dir).args([
            "--port",
            &py_addr.port().to_string(),
            "--threads",
            &o.threads.to_string(),
        ]);
        let mut servers = [
            spawn("argus", argus, argus_addr)?,
            spawn("python", py, py_addr)?,
        ];
        for s in servers.iter_mut() {
            wait_ready(s, Duration::from_secs(120)).await?;
        }
        // Same answers first.
        let mut answers = Vec::new();
        for s in &servers {
            let mut c = load::Connection::open(s.addr).await?;
            let a = c.request("POST", &path, &bodies[0]).await?;
            if a.status != 200 {
                return Err(runtime(format!(
                    "{} answered {}: {}",
                    s.name,
                    a.status,
                    String::from_utf8_lossy(&a.body)
                )));
            }
            answers.push(probabilities(&a.body));
        }
        let max_diff = answers[0]
            .iter()
            .zip(&answers[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f64, f64::max);
        for s in &servers {
            load::run(s.addr, &path, bodies.clone(), 4, 300).await?;
        }
        let _ = writeln!(
            report,
            "## {name} (`{}`)\n\nFirst answer: max |Δp| Argus vs Python = {max_diff:.1e}.\n\n\
             | clients | Argus req/s | Python req/s | req/s × | Argus p50 ms | Python p50 ms | p50 × | Argus p99 ms | Python p99 ms | p99 × | errors A/P |\n\
             |---|---|---|---|---|---|---|---|---|---|---|",
            dir.display()
        );
        for &clients in &o.clients {
            let mut runs: [Vec<load::LoadResult>; 2] = [Vec::new(), Vec::new()];
            for round in 0..o.rounds {
                let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for i in order {
                    let r = load::run(servers[i].addr, &path, bodies.clone(), clients, o.requests)
                        .await?;
                    tracing::info!(
                        server = servers[i].name,
                        clients,
                        round,
                        rps = r.throughput(),
                        "run"
                    );
                    runs[i].push(r);
                }
            }
            let [a, p] = runs.map(|rs| Summary {
                rps: median(
                    &rs.iter()
                        .map(load::LoadResult::throughput)
                        .collect::<Vec<_>>(),
                ),
                p50: median(
                    &rs.iter()
                        .map(|r| percentile(&r.latencies_ms, 0.5))
                        .collect::<Vec<_>>(),
                ),
                p99: median(
                    &rs.iter()
                        .map(|r| percentile(&r.latencies_ms, 0.99))
                        .collect::<Vec<_>>(),
                ),
                errors: rs.iter().map(|r| r.errors).sum(),
            });
            let _ = writeln!(
                report,
                "| {clients} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} |",
                a.rps, p.rps, a.rps / p.rps, a.p50, p.p50, a.p50 / p.p50, a.p99, p.p99, a.p99 / p.p99, a.errors, p.errors
            );
        }
        report.push('\n');
    }
    print!("{report}");
    if let Some(out) = &o.out {
        std::fs::write(out, &report).map_err(runtime)?;
    }
    Ok(())
}
