//! `argus serve`: synchronous HTTP inference on the worker's pipeline core, for callers that
//! cannot wait on a topic. Operator's view: `docs/serving.md`.
//!
//! Layout:
//! - this file: [`Server`] (the serving set, the inference stage, readiness) and [`router`];
//!   which version answers a request ([`resolve`]).
//! - [`oip`]: the Open Inference Protocol v2 REST messages and tensor mapping (pure).
//! - `routes`: the OIP handlers: health, metadata, `…/infer`.
//! - `predict`: the convenience route `/v1/predict` (a JPEG, PNG or JSON record in, Argus's
//!   prediction JSON out).
//! - [`limits`]: body size (413), concurrency (429), timeout (504), JSON errors, metrics.
//! - [`settings`]: the `[serve]` table.
//!
//! **Versions.** The server holds an `Arc<`[`Models`]`>`: whoever swaps versions for the
//! workers (the registry follower) swaps them here the same way. Each request takes the
//! serving set once ([`Models::current`]) and is answered wholly by one version, which the
//! response names. Without a version in the path a request is routed as the worker routes an
//! input: by its key (OIP `parameters.key`, or the `argus-key` header) into the canary
//! share, else to production. A shadow version is not scored on HTTP requests (there is no
//! topic to put its answers on and the caller must not wait for it); it can be asked for
//! by its version in the path, like any serving version.
//!
//! **Batching.** Every row of every request is prepared on the request's task (images on
//! the blocking pool, as the worker does) and queued to one inference stage shared by all
//! requests, which batches rows of concurrent requests for the same version up to
//! `max_batch`, waiting at most `max_wait`.
pub mod limits;
pub mod oip;
mod predict;
mod routes;
pub mod settings;

use crate::infer::InferenceStage;
use crate::metrics as m;
use crate::models::{Models, Role, Serving};
use crate::pipeline::Pipeline;
use axum::routing::{get, post};
use axum::Router;
use limits::{ApiError, Limits};
pub use settings::ServeSettings;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The HTTP inference server's state: the versions serving and the inference stage.
#[derive(Debug)]
pub struct Server {
    models: Arc<Models>,
    settings: ServeSettings,
    inject_delay: Duration,
    /// Started by [`Server::warm`]; until then the server is alive but not ready.
    stage: OnceLock<(InferenceStage, usize)>,
    /// The offset of the next `/v1/predict` request in its prediction's input reference.
    sequence: AtomicI64,
}

impl Server {
    /// A server of `models` under `settings`; not ready until [`Server::warm`].
    /// `inject_delay` is the worker's testing aid (a sleep before every model call).
    pub fn new(models: Arc<Models>, settings: ServeSettings, inject_delay: Duration) -> Arc<Self> {
        Arc::new(Server {
            models,
            settings,
            inject_delay,
            stage: OnceLock::new(),
            sequence: AtomicI64::new(0),
        })
    }

    /// The versions serving.
    pub fn models(&self) -> &Arc<Models> {
        &self.models
    }

    /// The settings.
    pub fn settings(&self) -> &ServeSettings {
        &self.settings
    }

    /// Calibrates the batch size on the versions serving now (as the worker does: the
    /// largest size up to `max_batch` that pays off on this engine and machine), starts the
    /// inference stage with it and marks the server ready. Returns the batch size chosen.
    /// Blocking; a second call changes nothing.
    pub fn warm(&self) -> std::io::Result<usize> {
        if let Some((_, chosen)) = self.stage.get() {
            return Ok(*chosen);
        }
        let serving = self.models.current();
        let mut chosen = self.settings.max_batch;
        if chosen > 1 {
            for (_, p) in serving.pipelines() {
                let (best, measured) = p.model().best_batch(self.settings.max_batch, 3);
                let per_input: Vec<String> = measured
                    .iter()
                    .map(|(b, us)| format!("{b}:{us:.0}us"))
                    .collect();
                tracing::info!(model = %p.model().model_ref().name, version = %p.model().model_ref().version, chosen = best, per_input = %per_input.join(" "), "batch size calibrated");
                chosen = chosen.min(best);
            }
            for (_, p) in serving.pipelines() {
                p.model().limit_batch(chosen);
            }
        }
        metrics::gauge!(m::MAX_BATCH).set(chosen as f64);
        let policy = ServeSettings {
            max_batch: chosen,
            ..self.settings.clone()
        }
        .batch_policy(self.inject_delay);
        let stage = InferenceStage::start(self.settings.threads, policy)?;
        let _ = self.stage.set((stage, chosen));
        tracing::info!(
            max_batch = chosen,
            "serving: model loaded and warmed, ready"
        );
        Ok(chosen)
    }

    /// Whether the inference stage runs (the model is loaded and warmed).
    pub fn is_ready(&self) -> bool {
        self.stage.get().is_some()
    }

    /// The inference stage, or 503 while warming.
    fn stage(&self) -> Result<&InferenceStage, ApiError> {
        self.stage.get().map(|(s, _)| s).ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the model is loading and warming; retry shortly",
            )
            .retry_after(1)
        })
    }
}

/// The version that answers a request, and its role.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its pipeline.
    pub pipeline: Arc<Pipeline>,
    /// Production, canary, or shadow (asked for by version).
    pub role: Role,
}

/// The versions of `name` serving in `serving`, with their roles.
pub fn versions(serving: &Serving, name: &str) -> Vec<(String, Role)> {
    serving
        .pipelines()
        .filter(|(_, p)| p.model().model_ref().name == name)
        .map(|(role, p)| (p.model().model_ref().version.clone(), role))
        .collect()
}

/// The version of model `name` that answers: `version` if it is serving (404 if not), else
/// the one `key` routes to (canary share, else production). 404 for a model not served.
pub fn resolve(
    serving: &Serving,
    name: &str,
    version: Option<&str>,
    key: Option<&[u8]>,
) -> Result<Chosen, ApiError> {
    let production = serving.production.model().model_ref();
    let serving_versions = versions(serving, name);
    if serving_versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "model {name:?} is not served here; this server serves {:?}",
            production.name
        )));
    }
    let Some(version) = version else {
        let route = serving.route(key);
        return Ok(Chosen {
            pipeline: route.primary,
            role: route.role,
        });
    };
    serving
        .pipelines()
        .find(|(_, p)| {
            let r = p.model().model_ref();
            r.name == name && r.version == version
        })
        .map(|(role, p)| Chosen {
            pipeline: p.clone(),
            role,
        })
        .ok_or_else(|| {
            let list: Vec<String> = serving_versions
                .iter()
                .map(|(v, r)| format!("{v} ({})", r.as_str()))
                .collect();
            ApiError::not_found(format!(
                "version {version:?} of model {name:?} is not serving; serving: {}",
                list.join(", ")
            ))
        })
}

/// The HTTP API of `server`: the OIP v2 routes and `/v1/predict`, with the limits and
/// metrics. The binary adds `/metrics`.
pub fn router(server: Arc<Server>) -> Router {
    let s = &server.settings;
    let limits = Arc::new(Limits::new(
        s.max_concurrent,
        s.request_timeout,
        s.retry_after_seconds,
    ));
    let inference = Router::new()
        .route("/v2/models/{name}/infer", post(routes::infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(routes::infer_version),
        )
        .route("/v1/predict", post(predict::predict))
        .route("/v1/models/{name}/predict", post(predict::predict_model))
        .route(
            "/v1/models/{name}/versions/{version}/predict",
            post(predict::predict_version),
        )
        .route_layer(axum::middleware::from_fn_with_state(limits, limits::admit));
    Router::new()
        .route("/v2/health/live", get(routes::live))
        .route("/v2/health/ready", get(routes::ready))
        .route("/v2", get(routes::server_metadata))
        .route("/v2/models/{name}", get(routes::model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(routes::model_version_metadata),
        )
        .route("/v2/models/{name}/ready", get(routes::model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(routes::model_version_ready),
        )
        .merge(inference)
        .fallback(routes::no_route)
        .with_state(server)
        .layer(axum::middleware::from_fn(limits::observe))
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving HTTP inference (OIP v2 and /v1/predict)");
    }
    m::register_serve_defaults();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::WorkerSettings;
    use crate::models::Canary;
    use argus_model::Classifier;
    use std::path::PathBuf;

    fn pipeline(version: &str) -> Arc<Pipeline> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
        let tmp = std::env::temp_dir().join(format!(
            "argus-serve-resolve-{}-{version}",
            std::process::id()
        ));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::copy(dir.join("model.onnx"), tmp.join("model.onnx")).unwrap();
        let manifest = std::fs::read_to_string(dir.join("manifest.toml"))
            .unwrap()
            .replacen("version = \"1\"", &format!("version = \"{version}\""), 1);
        std::fs::write(tmp.join("manifest.toml"), manifest).unwrap();
        let model = Arc::new(Classifier::load(&tmp).unwrap());
        let config = WorkerSettings::default().config("t", Vec::new());
        Arc::new(Pipeline::without_evidence(model, &config))
    }

    #[test]
    fn a_version_in_the_path_must_be_serving_and_without_one_the_key_routes() {
        let serving = Serving {
            production: pipeline("1"),
            canary: Some(Canary {
                pipeline: pipeline("2"),
                share: 1.0,
            }),
            shadow: Some(pipeline("3")),
            revision: 7,
        };
        let version = |c: Chosen| c.pipeline.model().model_ref().version.clone();
        assert_eq!(
            version(resolve(&serving, "churn", Some("1"), None).unwrap()),
            "1"
        );
        let shadow = resolve(&serving, "churn", Some("3"), None).unwrap();
        assert_eq!(
            (version(shadow.clone()), shadow.role),
            ("3".into(), Role::Shadow)
        );
        // Share 1.0: every key goes to the canary; no key, to production.
        let keyed = resolve(&serving, "churn", None, Some(b"c-1")).unwrap();
        assert_eq!(
            (version(keyed.clone()), keyed.role),
            ("2".into(), Role::Canary)
        );
        assert_eq!(
            version(resolve(&serving, "churn", None, None).unwrap()),
            "1"
        );
        let e = resolve(&serving, "churn", Some("9"), None).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        assert!(
            e.message.contains("1 (production), 2 (canary), 3 (shadow)"),
            "{}",
            e.message
        );
        let e = resolve(&serving, "fraud", None, None).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        assert!(e.message.contains("\"churn\""), "{}", e.message);
    }
}
