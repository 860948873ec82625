//! Tracing set-up, the Prometheus recorder, and the `/metrics` + `/healthz` endpoint.
use argus_worker::WorkerStats;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Logs to stderr, `text` or `json`; level from `RUST_LOG` (default `info`).
pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, not for log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Explicit histogram buckets, most specific first (a full-name match wins over the
/// `_seconds` suffix). Every histogram the crates emit is covered, so none is rendered as a
/// summary.
fn histogram_buckets() -> [(Matcher, &'static [f64]); 3] {
    [
        (
            Matcher::Full(argus_worker::metrics::BATCH_SIZE.into()),
            argus_worker::metrics::BATCH_SIZE_BUCKETS,
        ),
        (
            Matcher::Full(argus_drift::metrics::EVAL_SECONDS.into()),
            argus_drift::metrics::EVAL_BUCKETS,
        ),
        (
            Matcher::Suffix("_seconds".into()),
            argus_worker::metrics::LATENCY_BUCKETS,
        ),
    ]
}

/// Registers every crate's metric descriptions with the installed recorder.
fn describe_all() {
    crate::metrics::describe();
    process_collector().describe();
    argus_kafka::metrics::describe();
    argus_model::metrics::describe();
    argus_producer::metrics::describe();
    argus_worker::metrics::describe();
    argus_drift::metrics::describe();
}

/// The `process_*` collector (CPU, memory, file descriptors, threads), read per scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The exporter with [`histogram_buckets`] set.
fn prometheus_builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for (matcher, buckets) in histogram_buckets() {
        builder = match builder.set_buckets_for_metric(matcher, buckets) {
            Ok(b) => b,
            // Only empty bucket lists are refused; ours are non-empty constants (tested).
            Err(e) => unreachable!("histogram buckets refused: {e}"),
        };
    }
    builder
}

/// Installs the global Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = match prometheus_builder().install_recorder() {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            describe_all();
            handle
        })
        .clone()
}

/// Binds the metrics address; failing here is a configuration error the caller reports
/// before starting work.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen for metrics on {addr}: {e}; choose another --metrics-addr")
    })
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
///
/// - `/healthz` (liveness) is 200 while every worker has polled Kafka within the last 60 s
///   (or has not started polling yet), 503 otherwise: restart me.
/// - `/readyz` (readiness) is 200 once every worker has its model loaded and is polling
///   (it serves only after the model loaded), and no partition of theirs has been stalled
///   (records wait that the consumer does not return) for `--stuck-after`; 503 otherwise,
///   with the reason.
pub async fn serve(
    listener: tokio::net::TcpListener,
    workers: Vec<Arc<WorkerStats>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = metrics_handle();
    let upkeep = handle.clone();
    let s = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                _ = s.cancelled() => break,
            }
        }
    });
    let ready_workers = workers.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || async move {
                process_collector().collect();
                handle.render()
            }),
        )
        .route(
            "/readyz",
            get(move || async move { readiness(&ready_workers, argus_wire::now_us()) }),
        )
        .route(
            "/healthz",
            get(move || async move {
                let now = argus_wire::now_us();
                let stale = workers.iter().any(|w| !w.live(now));
                if stale {
                    (StatusCode::SERVICE_UNAVAILABLE, "worker not polling\n")
                } else {
                    (StatusCode::OK, "ok\n")
                }
            }),
        );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The `/readyz` answer for `workers` at `now_us`.
fn readiness(workers: &[Arc<WorkerStats>], now_us: i64) -> (StatusCode, String) {
    for (i, w) in workers.iter().enumerate() {
        if let Err(why) = w.readiness(now_us) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("worker {i}: {why}\n"),
            );
        }
    }
    (StatusCode::OK, "ready\n".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// Every histogram renders with the buckets chosen for it, not as a summary.
    #[test]
    fn histograms_render_with_explicit_buckets() {
        let recorder = prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_all();
            metrics::histogram!(argus_worker::metrics::BATCH_SIZE).record(3.0);
            metrics::histogram!(argus_worker::metrics::INFERENCE_SECONDS).record(0.004);
            metrics::histogram!(argus_worker::metrics::INFERENCE_QUEUE_SECONDS).record(0.001);
            metrics::histogram!(argus_drift::metrics::EVAL_SECONDS).record(0.002);
        });
        let text = handle.render();
        for (name, le) in [
            (argus_worker::metrics::BATCH_SIZE, "4"),
            (argus_worker::metrics::INFERENCE_SECONDS, "0.005"),
            (argus_worker::metrics::INFERENCE_QUEUE_SECONDS, "0.001"),
            (argus_drift::metrics::EVAL_SECONDS, "0.0025"),
        ] {
            let line = format!("{name}_bucket{{le=\"{le}\"}} 1");
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(
            !text.contains("quantile="),
            "a histogram without buckets:\n{text}"
        );
        let help = format!("# HELP {} ", argus_worker::metrics::INFERENCE_QUEUE_SECONDS);
        assert!(text.contains(&help), "described:\n{text}");
    }

    #[test]
    fn ready_once_polling_and_not_while_a_partition_is_blocked() {
        let w = Arc::new(WorkerStats::default());
        let now = 1_000_000_000_i64;
        let workers = vec![w.clone()];
        assert_eq!(readiness(&workers, now).0, StatusCode::SERVICE_UNAVAILABLE);
        w.last_poll_us.store(now as u64 - 1_000, Ordering::Relaxed);
        assert_eq!(readiness(&workers, now).0, StatusCode::OK);
        w.stalled_partitions.store(1, Ordering::Relaxed);
        let (code, body) = readiness(&workers, now);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("does not return"), "{body}");
        w.stalled_partitions.store(0, Ordering::Relaxed);
        assert_eq!(
            readiness(&workers, now + 61_000_000).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
