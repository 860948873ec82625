//! Tracing set-up, the Prometheus recorder, and the `/metrics` + `/healthz` endpoint.
use argus_worker::WorkerStats;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Logs to stderr, `text` or `json`; level from `RUST_LOG` (default `info`).
pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the global Prometheus recorder once and returns its handle.
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

/// Binds the metrics address; failing here is a configuration error the caller reports
/// before starting work.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen for metrics on {addr}: {e}; choose another --metrics-addr")
    })
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`. `/healthz` is 200 while
/// every worker has polled Kafka within the last 60 s (or has not started polling yet), 503
/// otherwise.
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
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { handle.render() }))
        .route(
            "/healthz",
            get(move || async move {
                let now = argus_wire::now_us().max(0) as u64;
                let stale = workers.iter().any(|w| {
                    let last = w.last_poll_us.load(Ordering::Relaxed);
                    last != 0 && now.saturating_sub(last) > 60_000_000
                });
                if stale {
                    (StatusCode::SERVICE_UNAVAILABLE, "worker not polling\n")
                } else {
                    (StatusCode::OK, "ok\n")
                }
            }),
        );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics and /healthz");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
