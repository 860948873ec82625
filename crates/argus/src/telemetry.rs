//! Tracing set-up, the Prometheus recorder, and the `/metrics` + `/healthz` endpoint.
//!
//! Two Prometheus recorders share `/metrics`: per-partition gauges (each crate's
//! `PARTITION_GAUGES`) go to one that drops a series once it has not been updated for
//! [`PARTITION_SERIES_IDLE`] — their owners refresh them every second or every librdkafka
//! statistics interval while the partition is assigned and set them to 0 once on revoke,
//! so a moved partition reads 0 at once (fleet-wide sums stay right) and is gone from
//! `/metrics` soon after. Everything else goes to one that never drops a series (build
//! and model info, counters).
use argus_worker::WorkerStats;
use axum::http::StatusCode;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::MetricKindMask;
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
    argus_registry::metrics::describe();
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

/// A per-partition gauge not updated for this long is dropped from `/metrics`: three
/// librdkafka statistics intervals (5 s, the slowest of the updates; the worker's own
/// gauges are refreshed every second).
pub const PARTITION_SERIES_IDLE: Duration = Duration::from_secs(15);

/// Whether `name` is a per-partition gauge (see the module doc).
fn is_partition_gauge(name: &str) -> bool {
    argus_worker::metrics::PARTITION_GAUGES
        .iter()
        .chain(argus_kafka::metrics::PARTITION_GAUGES)
        .chain(argus_drift::metrics::PARTITION_GAUGES)
        .any(|n| *n == name)
}

/// The recorder installed: per-partition gauges to `partitions`, the rest to `main`.
struct SplitRecorder {
    main: PrometheusRecorder,
    partitions: PrometheusRecorder,
}

impl SplitRecorder {
    fn pick(&self, name: &str) -> &PrometheusRecorder {
        if is_partition_gauge(name) {
            &self.partitions
        } else {
            &self.main
        }
    }
}

impl Recorder for SplitRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.pick(key.as_str())
            .describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.pick(key.as_str())
            .describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.pick(key.as_str())
            .describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.pick(key.name()).register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.pick(key.name()).register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.pick(key.name()).register_histogram(key, metadata)
    }
}

/// Renders both recorders of [`SplitRecorder`] as one exposition.
#[derive(Clone)]
pub struct MetricsHandle {
    main: PrometheusHandle,
    partitions: PrometheusHandle,
}

impl MetricsHandle {
    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut text = self.main.render();
        text.push_str(&self.partitions.render());
        text
    }

    /// Drains histograms and drops idle per-partition series (also done by `render`).
    pub fn run_upkeep(&self) {
        self.main.run_upkeep();
        self.partitions.run_upkeep();
    }
}

/// The recorder and its handle; per-partition gauges idle for `idle` are dropped.
fn split_recorder(idle: Duration) -> (SplitRecorder, MetricsHandle) {
    let recorder = SplitRecorder {
        main: prometheus_builder().build_recorder(),
        partitions: PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::GAUGE, Some(idle))
            .build_recorder(),
    };
    let handle = MetricsHandle {
        main: recorder.main.handle(),
        partitions: recorder.partitions.handle(),
    };
    (recorder, handle)
}

/// Installs the global recorder once and returns its handle.
pub fn metrics_handle() -> MetricsHandle {
    static HANDLE: OnceLock<MetricsHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let (recorder, handle) = split_recorder(PARTITION_SERIES_IDLE);
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "metrics recorder not installed");
            }
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

/// `/metrics` (the Prometheus exposition of every series), with the recorder's upkeep
/// running until `shutdown`: the worker's endpoint and `argus serve`'s port share it.
pub fn metrics_router(shutdown: CancellationToken) -> axum::Router {
    let handle = metrics_handle();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                _ = shutdown.cancelled() => break,
            }
        }
    });
    axum::Router::new().route(
        "/metrics",
        get(move || async move {
            process_collector().collect();
            handle.render()
        }),
    )
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown`.
///
/// - `/healthz` (liveness) is 200 while every worker has polled Kafka within the last 60 s
///   (or has not started polling yet), 503 otherwise: restart me.
/// - `/readyz` (readiness) is 200 once every worker has its model loaded, is polling (it
///   serves only after the model loaded) and is a member of its consumer group (idle
///   members too; `argus_kafka::Membership`), and no partition of theirs has been stalled
///   (records wait that the consumer does not return) for `--stuck-after`; 503 otherwise,
///   with the reason.
pub async fn serve(
    listener: tokio::net::TcpListener,
    workers: Vec<Arc<WorkerStats>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ready_workers = workers.clone();
    let app = metrics_router(shutdown.clone())
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

    /// A partition whose gauges stop being updated (revoked: set to 0 once) leaves
    /// `/metrics`; an owned one, refreshed, stays; other gauges never leave.
    #[test]
    fn idle_partition_series_are_dropped_and_other_series_kept() {
        use argus_worker::metrics::{LAG_RECORDS, PARTITION_STUCK};
        let idle = Duration::from_secs(1);
        let (recorder, handle) = split_recorder(idle);
        let set = |partition: &str, v: f64| {
            metrics::with_local_recorder(&recorder, || {
                let labels = [
                    ("topic", "in".to_owned()),
                    ("partition", partition.to_owned()),
                ];
                metrics::gauge!(LAG_RECORDS, &labels).set(v);
                metrics::gauge!(PARTITION_STUCK, &labels).set(0.0);
            });
        };
        metrics::with_local_recorder(&recorder, || {
            describe_all();
            crate::metrics::describe();
            metrics::gauge!(argus_worker::metrics::MAX_BATCH).set(8.0);
            metrics::counter!(argus_worker::metrics::INPUTS).increment(1);
        });
        set("0", 5.0);
        set("1", 0.0);
        let lag = |p: &str, v: &str| format!("{LAG_RECORDS}{{topic=\"in\",partition=\"{p}\"}} {v}");
        let text = handle.render();
        assert!(
            text.contains(&lag("0", "5")) && text.contains(&lag("1", "0")),
            "{text}"
        );
        // Partition 0 is refreshed past the timeout; partition 1 is not.
        let until = std::time::Instant::now() + 2 * idle;
        while std::time::Instant::now() < until {
            set("0", 4.0);
            handle.render();
            std::thread::sleep(idle / 10);
        }
        let text = handle.render();
        assert!(text.contains(&lag("0", "4")), "{text}");
        assert!(!text.contains("partition=\"1\""), "{text}");
        assert!(
            text.contains(&format!("{} 8", argus_worker::metrics::MAX_BATCH)),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 1", argus_worker::metrics::INPUTS)),
            "{text}"
        );
        assert!(text.contains(&format!("# HELP {LAG_RECORDS} ")), "{text}");
        // No partition refreshed: no sample of the family is left.
        std::thread::sleep(2 * idle);
        let text = handle.render();
        assert!(!text.contains(&format!("{LAG_RECORDS}{{")), "{text}");
    }

    #[test]
    fn every_partition_gauge_is_a_declared_gauge_family() {
        for name in argus_worker::metrics::PARTITION_GAUGES
            .iter()
            .chain(argus_kafka::metrics::PARTITION_GAUGES)
            .chain(argus_drift::metrics::PARTITION_GAUGES)
        {
            assert!(is_partition_gauge(name));
        }
        assert!(!is_partition_gauge(argus_worker::metrics::DRAIN_SECONDS));
        assert!(!is_partition_gauge(argus_model::metrics::MODEL_INFO));
    }

    /// The counters an operator alerts on render at 0 before anything happened.
    #[test]
    fn known_counters_render_at_zero_before_any_input() {
        let (recorder, handle) = split_recorder(PARTITION_SERIES_IDLE);
        metrics::with_local_recorder(&recorder, || {
            describe_all();
            argus_kafka::metrics::register_defaults();
            argus_model::metrics::register_defaults();
            argus_producer::metrics::register_defaults();
            argus_worker::metrics::register_defaults(&["frames".to_owned()]);
            argus_drift::metrics::register_defaults(&["frames"]);
        });
        let text = handle.render();
        for line in [
            format!("{}{{reason=\"decode\"}} 0", argus_worker::metrics::DLQ),
            format!("{}{{kind=\"revoke\"}} 0", argus_kafka::metrics::REBALANCES),
            format!("{} 0", argus_kafka::metrics::COMMIT_FAILURES),
            format!("{} 0", argus_worker::metrics::CONSUMER_ERRORS),
            format!("{} 0", argus_model::metrics::PLANS_BUILT),
            format!("{}{{outcome=\"error\"}} 0", argus_producer::metrics::FRAMES),
            format!("{}{{status=\"drift\"}} 0", argus_drift::metrics::REPORTS),
            format!("{} 0", argus_drift::metrics::SEGMENTS_UNEXPORTED),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn ready_once_polling_in_the_group_and_not_while_a_partition_is_blocked() {
        let w = Arc::new(WorkerStats::default());
        let now = 1_000_000_000_i64;
        let workers = vec![w.clone()];
        assert_eq!(readiness(&workers, now).0, StatusCode::SERVICE_UNAVAILABLE);
        w.last_poll_us.store(now as u64 - 1_000, Ordering::Relaxed);
        let (code, body) = readiness(&workers, now);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "polling, not joined");
        assert!(body.contains("not a member"), "{body}");
        w.in_group.store(true, Ordering::Relaxed);
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
