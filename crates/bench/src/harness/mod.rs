//! What the harnesses share: percentiles, the synthetic frame pool or records read from a
//! file and their envelopes, the model loader, the Prometheus recorder the worker's
//! histograms are read from, Ctrl-C, and the JSON results file. CPU sampling from /proc is
//! in [`cpu`]; Kafka sending and the in-process worker in [`kafka`]; the bare
//! consume → produce relay that measures the Kafka floor in [`relay`].
pub mod cpu;
pub mod kafka;
pub mod relay;

use crate::error::{runtime, usage, BenchError};
use argus_model::{Classifier, EngineOptions};
use argus_producer::records::{open, RecordsSource};
use argus_producer::{Frame, SyntheticSource};
use argus_wire::{encode_envelope, now_us};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The value at quantile `p` (0..=1) of `sorted` by nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The median of `v` (any order).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// `d` in microseconds.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Cores of this machine (1 if unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |c| c.get())
}

/// `"  met"` or `"  NOT MET"`, printed after a target.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "  met"
    } else {
        "  NOT MET"
    }
}

/// Loads a bundle on the engine `options` picks; a bad bundle or a missing engine is an
/// options error (exit 64), as in `argus work`.
pub fn load_model(path: &Path, options: &EngineOptions) -> Result<Arc<Classifier>, BenchError> {
    Classifier::load_with(path, options)
        .map(Arc::new)
        .map_err(|e| usage(e.to_string()))
}

/// The synthetic frames of a run: rendered once, then cycled.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSpec {
    /// Synthetic cameras (Kafka keys).
    pub cameras: u32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Scenes are deterministic from this seed.
    pub seed: u64,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
    /// Distinct frames rendered up front and cycled through.
    pub distinct_frames: usize,
}

impl FrameSpec {
    /// The producer's synthetic source for these frames at `fps` per camera.
    pub fn source(&self, fps: f64) -> SyntheticSource {
        SyntheticSource {
            seed: self.seed,
            cameras: self.cameras,
            fps,
            width: self.width,
            height: self.height,
            jpeg_quality: self.jpeg_quality,
            brighten: None,
        }
    }
}

/// Renders and encodes `n` distinct frames on every core.
pub async fn render_pool(source: &SyntheticSource, n: usize) -> Result<Vec<Frame>, BenchError> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || render_pool_blocking(&source, n))
        .await
        .map_err(runtime)?
}

fn render_pool_blocking(source: &SyntheticSource, n: usize) -> Result<Vec<Frame>, BenchError> {
    let cores = cores();
    let results: Vec<Vec<(usize, Result<Frame, String>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|t| {
                s.spawn(move || {
                    (t..n)
                        .step_by(cores)
                        .map(|i| {
                            let f = source.frame(i as u64, now_us()).map_err(|e| e.to_string());
                            (i, f)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut frames: Vec<(usize, Frame)> = Vec::with_capacity(n);
    for (i, f) in results.into_iter().flatten() {
        frames.push((
            i,
            f.map_err(|e| runtime(format!("JPEG encoding failed: {e}")))?,
        ));
    }
    if frames.len() != n {
        return Err(runtime("frame rendering thread failed"));
    }
    frames.sort_by_key(|(i, _)| *i);
    Ok(frames.into_iter().map(|(_, f)| f).collect())
}

/// Mean encoded payload bytes of the pool's frames.
pub fn mean_frame_bytes(pool: &[Frame]) -> f64 {
    pool.iter()
        .map(|f| match &f.envelope.payload {
            argus_wire::Payload::Encoded { bytes, .. } => bytes.len() as f64,
            _ => 0.0,
        })
        .sum::<f64>()
        / pool.len() as f64
}

/// Reads every row of `path` (CSV or JSON lines, key column `key`) as the frame `argus
/// produce` would send for it. A file that does not open or a bad row is an options error.
pub fn read_records(path: &Path, key: &str) -> Result<Vec<Frame>, BenchError> {
    let name = path
        .to_str()
        .ok_or_else(|| usage(format!("{}: the path is not UTF-8", path.display())))?;
    let source = RecordsSource::new(name, None, key).map_err(usage)?;
    let mut reader = open(&source).map_err(usage)?;
    let mut frames = Vec::new();
    while let Some(row) = reader.next_row() {
        let row = row.map_err(|e| usage(format!("{e} (the benchmark takes no bad rows)")))?;
        let index = frames.len() as u64;
        frames.push(Frame {
            key: row.key.clone(),
            envelope: row.envelope(index, now_us()),
            has_person: None,
        });
    }
    if frames.is_empty() {
        return Err(usage(format!("{}: no records", path.display())));
    }
    Ok(frames)
}

/// The bincode envelope of pool frame `frame` as message `sequence`, captured at `capture_us`.
pub fn envelope_bytes(
    frame: &Frame,
    sequence: u64,
    capture_us: i64,
) -> Result<Vec<u8>, BenchError> {
    let mut envelope = frame.envelope.clone();
    envelope.sequence = sequence;
    envelope.capture_time_us = capture_us;
    encode_envelope(&envelope).map_err(runtime)
}

/// Installs the global Prometheus recorder once (the worker's histograms are read back from
/// it) and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    argus_worker::metrics::LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            argus_worker::metrics::describe();
            argus_drift::metrics::describe();
            handle
        })
        .clone()
}

/// A token cancelled on the first SIGINT (Ctrl-C) or SIGTERM; the harnesses then stop
/// their worker and delete their topics.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received; draining");
        t.cancel();
    });
    token
}

/// /proc/loadavg's three averages.
pub fn loadavg() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// The CPU's model name from /proc/cpuinfo.
pub fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
}

/// An options error unless the folder of the `--json` file exists.
pub fn check_json_path(path: Option<&Path>) -> Result<(), BenchError> {
    let Some(path) = path else {
        return Ok(());
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(usage(format!(
            "--json {}: folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Writes `value` as pretty JSON plus a newline.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), BenchError> {
    let json = serde_json::to_string_pretty(value).map_err(runtime)?;
    std::fs::write(path, json + "\n")
        .map_err(|e| runtime(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_churn_fixture_reads_as_records() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let records = read_records(
            &root.join("tests/fixtures/churn/customers-10k.csv"),
            "customer_id",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 10_000);
        assert_eq!(records[0].key, "C7-0000000");
        assert!(matches!(
            records[0].envelope.payload,
            argus_wire::Payload::Record(_)
        ));
    }
}
