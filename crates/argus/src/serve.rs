//! `argus serve`: the HTTP inference server (`argus_worker::serve`) on one bundle, with
//! `/metrics` on the same port. Flags, loading and wiring only.
use crate::config::{ArgusConfig, Flags};
use crate::flags::{parse_duration, BundleArgs, FollowArgs};
use crate::{shutdown, telemetry, work, CliError};
use argus_worker::serve::{self, Server};

use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// `argus serve` flags: the model from `[worker]` (as `argus work`), the server from
/// `[serve]`.
#[derive(Debug, Args)]
pub struct ServeFlags {
    #[command(flatten)]
    pub bundle: BundleArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
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
        self.bundle.flags(f);
        self.follow.flags(f);
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
    // Predictions served over HTTP name this process as their worker.
    let id = w.worker_id.clone().unwrap_or_else(work::default_worker_id);
    let (models, follower) =
        work::starting_models(&config, work::loader(w, s.threads, &id)).await?;
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
