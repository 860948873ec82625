//! `argus serve`: the HTTP inference server (`argus_worker::serve`) on one bundle, with
//! `/metrics` on the same port. Flags, loading and wiring only.
use crate::config::{ArgusConfig, Flags};
use crate::flags::{parse_duration, parse_rule};
use crate::{shutdown, telemetry, work, CliError};
use argus_worker::serve::{self, Server};

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `argus serve` flags: the model from `[worker]` (as `argus work`), the server from
/// `[serve]`.
#[derive(Debug, Args)]
pub struct ServeFlags {
    /// Model bundle directory (manifest.toml + model.onnx) [default: models/camera-person].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Serve the versions the registry deploys for this model instead of --model, and
    /// swap them under the running server when they change (`[registry]`).
    #[arg(long, value_name = "NAME")]
    pub follow: Option<String>,
    /// The registry topic --follow reads [default: argus.models].
    #[arg(long)]
    pub registry_topic: Option<String>,
    /// Inference engine: tract, onnxruntime or trees [default: the manifest's, else tract].
    #[arg(long)]
    pub engine: Option<argus_model::EngineKind>,
    /// The libonnxruntime shared library for `--engine onnxruntime`.
    #[arg(long)]
    pub onnxruntime_lib: Option<PathBuf>,
    /// onnxruntime intra-op threads per session (0: onnxruntime's default).
    #[arg(long)]
    pub onnxruntime_threads: Option<usize>,
    /// Alert rule LABEL>=THRESHOLD (repeatable): `/v1/predict` predictions are rendered
    /// with the worker's rules [default: the bundle's [decision]].
    #[arg(long = "alert", value_delimiter = ',', value_parser = parse_rule)]
    pub alerts: Vec<argus_worker::AlertRule>,
    /// Classes listed in each prediction's `top` [default: 5].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Pixels one encoded frame may decode to [default: 16777216].
    #[arg(long)]
    pub max_decoded_pixels: Option<u64>,
    /// Testing aid: sleep this long before every model call.
    #[arg(long, value_parser = parse_duration, hide = true)]
    pub inject_delay: Option<Duration>,
    /// Address of the HTTP API and /metrics [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Request bodies larger than this get 413 [default: 8388608 = 8 MiB].
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Requests answered at once, at most; more get 429 with Retry-After [default: 256].
    #[arg(long)]
    pub max_concurrent: Option<usize>,
    /// Requests not answered within this get 504 [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
    /// Rows per infer request, at most [default: 256].
    #[arg(long)]
    pub max_rows: Option<usize>,
    /// Inputs per model call, at most (rows of concurrent requests batch together)
    /// [default: 16].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// How long a batch may wait to fill after its first input (0: batch only what is
    /// queued, which under load is the rows that arrived while the model ran) [default: 0ms].
    #[arg(long, value_parser = parse_duration)]
    pub max_wait: Option<Duration>,
    /// Threads running the model [default: 1].
    #[arg(long)]
    pub threads: Option<usize>,
}

impl ServeFlags {
    pub fn flags(&self, f: &mut Flags) {
        f.set("worker.model", "--model", self.model.as_ref());
        f.set("worker.follow", "--follow", self.follow.as_ref());
        f.set(
            "registry.topic",
            "--registry-topic",
            self.registry_topic.as_ref(),
        );
        let engine = self.engine.map(|e| e.as_str());
        f.set("worker.engine", "--engine", engine.as_ref());
        f.set(
            "worker.onnxruntime_lib",
            "--onnxruntime-lib",
            self.onnxruntime_lib.as_ref(),
        );
        f.set(
            "worker.onnxruntime_threads",
            "--onnxruntime-threads",
            self.onnxruntime_threads.as_ref(),
        );
        f.list("worker.alerts", "--alert", &self.alerts);
        f.set("worker.top_k", "--top-k", self.top_k.as_ref());
        f.set(
            "worker.max_decoded_pixels",
            "--max-decoded-pixels",
            self.max_decoded_pixels.as_ref(),
        );
        f.duration("worker.inject_delay", "--inject-delay", self.inject_delay);
        f.set("serve.listen", "--listen", self.listen.as_ref());
        f.set(
            "serve.max_body_bytes",
            "--max-body-bytes",
            self.max_body_bytes.as_ref(),
        );
        f.set(
            "serve.max_concurrent",
            "--max-concurrent",
            self.max_concurrent.as_ref(),
        );
        f.duration(
            "serve.request_timeout",
            "--request-timeout",
            self.request_timeout,
        );
        f.set("serve.max_rows", "--max-rows", self.max_rows.as_ref());
        f.set("serve.max_batch", "--max-batch", self.max_batch.as_ref());
        f.duration("serve.max_wait", "--max-wait", self.max_wait);
        f.set("serve.threads", "--threads", self.threads.as_ref());
    }
}

/// Loads the bundle, opens the port (alive, not ready), warms, serves until a signal.
pub async fn run(config: ArgusConfig) -> Result<(), CliError> {
    let w = &config.worker;
    let s = &config.serve;
    // The bundle at --model, or the versions the registry deploys (--follow), swapped
    // under the running server as they change.
    let (models, follower) = work::starting_models(&config, work::loader(w, s.threads)).await?;
    telemetry::metrics_handle();
    argus_model::metrics::register_defaults();
    let server = Server::new(models, s.clone(), w.inject_delay);
    let listener = tokio::net::TcpListener::bind(s.listen).await.map_err(|e| {
        CliError::Usage(format!(
            "cannot listen on {}: {e}; choose another --listen",
            s.listen
        ))
    })?;
    let shutdown = shutdown::on_signal();
    if let Some((follower, updates)) = follower {
        tokio::spawn(follower.follow(updates, work::deployment, shutdown.clone()));
    }
    let app = serve::router(server.clone()).merge(telemetry::metrics_router(shutdown.clone()));
    let http = tokio::spawn(serve::run(listener, app, shutdown.clone()));
    let warm = server.clone();
    tokio::task::spawn_blocking(move || warm.warm())
        .await
        .map_err(|e| CliError::Runtime(e.into()))?
        .map_err(|e| {
            CliError::Runtime(anyhow::anyhow!("cannot start the inference threads: {e}"))
        })?;
    match http.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CliError::Runtime(e.into())),
        Err(e) => Err(CliError::Runtime(e.into())),
    }
}
