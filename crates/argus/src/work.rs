//! `argus work`: one worker process.
use crate::config::ArgusConfig;
use crate::{shutdown, telemetry, CliError};
use argus_kafka::TopicSpec;
use argus_model::{Classifier, EngineOptions};
use argus_registry::{DeploymentRecord, Registry};
use argus_worker::follow::{Deployment, FetchError, Follower, LoadFailure, Loader, VersionSource};
use argus_worker::{Models, Serving, WorkerConfig, WorkerSettings, WorkerStats};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// Loads a bundle on the engine `options` picks, decoding frames of at most
/// `max_decoded_pixels`; a bad bundle or a missing engine is a configuration error (exit 64).
pub fn load_model(
    path: &Path,
    options: &EngineOptions,
    max_decoded_pixels: u64,
) -> Result<Arc<Classifier>, CliError> {
    let mut model =
        Classifier::load_with(path, options).map_err(|e| CliError::Usage(e.to_string()))?;
    model.set_max_decoded_pixels(max_decoded_pixels);
    Ok(Arc::new(model))
}

/// The run loop's configuration from the `[worker]` settings, checked (once) against the
/// model's labels.
pub fn worker_config(
    worker_id: String,
    settings: &WorkerSettings,
    bundle: &Classifier,
) -> Result<WorkerConfig, CliError> {
    let c = settings.config(
        worker_id,
        argus_worker::AlertRule::for_bundle(&settings.alerts, bundle),
    );
    c.validate(bundle.labels()).map_err(CliError::Usage)?;
    Ok(c)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "argus".into())
}

/// Default worker id: `hostname-pid`.
pub fn default_worker_id() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// The cluster accepts these settings: wrong credentials or TLS are a configuration error
/// (exit 64); a cluster that does not answer yet is only logged.
pub async fn preflight(settings: &argus_kafka::KafkaSettings) -> Result<(), CliError> {
    argus_kafka::startup_check(settings)
        .await
        .map_err(|p| CliError::Usage(p.to_string()))
}

/// The registry as the worker's source of versions: fetch (sha256 verified) into the cache.
struct RegistrySource(Arc<Registry>);

impl VersionSource for RegistrySource {
    fn fetch<'a>(
        &'a self,
        model: &'a str,
        version: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<PathBuf, FetchError>> + Send + 'a>> {
        Box::pin(async move {
            self.0.fetch(model, version).await.map_err(|e| {
                let reason = if e.is_verification() {
                    LoadFailure::Verify
                } else {
                    LoadFailure::Fetch
                };
                (reason, e.to_string())
            })
        })
    }
}

/// What a deployment record asks the worker to serve (`None` before a production exists).
pub fn deployment(record: &Option<DeploymentRecord>) -> Option<Deployment> {
    let r = record.as_ref()?;
    Some(Deployment {
        production: r.production.clone()?,
        canary: r.canary.as_ref().map(|c| (c.version.clone(), c.share)),
        shadow: r.shadow.clone(),
        revision: r.revision,
    })
}

/// The versions a worker starts on: the bundle at `worker.model`, or with `worker.follow`
/// the model's deployment in the registry (and the follower that keeps them current).
pub async fn starting_models(
    config: &ArgusConfig,
    loader: Loader,
) -> Result<
    (
        Arc<Models>,
        Option<(Follower, watch::Receiver<Option<DeploymentRecord>>)>,
    ),
    CliError,
> {
    let w = &config.worker;
    let Some(name) = &w.follow else {
        let model = load_model(&w.model, &loader.options, w.max_decoded_pixels)?;
        let mut c = (*loader.config).clone();
        c.rules = argus_worker::AlertRule::for_bundle(&w.alerts, &model);
        let pipeline = argus_worker::pipeline::Pipeline::new(model, &c);
        if let Some(problem) = pipeline.evidence_problem() {
            return Err(CliError::Usage(format!(
                "--evidence: {problem}; add an [explain] section to the bundle or turn evidence off"
            )));
        }
        return Ok((Models::new(Serving::production(Arc::new(pipeline))), None));
    };
    argus_registry::metrics::register_defaults();
    let registry = Registry::open(&config.kafka.settings(), config.registry.clone())
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let (models, follower, updates) = follow_registry(Arc::new(registry), name, loader).await?;
    Ok((models, Some((follower, updates))))
}

/// The versions `registry` deploys for `name`, loaded, and the follower that keeps them
/// current (spawn its `follow` with the returned updates). A model without a production
/// version is a usage error saying how to make one.
pub async fn follow_registry(
    registry: Arc<Registry>,
    name: &str,
    loader: Loader,
) -> Result<
    (
        Arc<Models>,
        Follower,
        watch::Receiver<Option<DeploymentRecord>>,
    ),
    CliError,
> {
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let state = registry.state().await.map_err(|e| usage(&e))?;
    let Some(start) = deployment(&state.deployment(name).cloned()) else {
        return Err(CliError::Usage(format!(
            "model {name} has no production version in the registry topic {}: register and promote one (argus model register BUNDLE; argus model promote {name}@VERSION --to production)",
            registry.settings().topic
        )));
    };
    let updates = registry.follow(name).map_err(|e| usage(&e))?;
    let source: Arc<dyn VersionSource> = Arc::new(RegistrySource(registry));
    let serving = Follower::initial(name, &*source, &loader, &start)
        .await
        .map_err(|e| usage(&e))?;
    tracing::info!(model = %name, production = %start.production, canary = ?start.canary, shadow = ?start.shadow, revision = start.revision, "following the model's deployment in the registry");
    let models = Models::new(serving);
    let follower = Follower::new(name.to_owned(), models.clone(), source, loader);
    Ok((models, follower, updates))
}

/// How every version is loaded: the engine with `threads` threads, the `[worker]` limits,
/// the --alert rules or else each version's own `[decision]`, and `worker_id` named in
/// every prediction and alert.
pub fn loader(w: &WorkerSettings, threads: usize, worker_id: &str) -> Loader {
    Loader {
        options: w.engine_options(threads),
        max_decoded_pixels: w.max_decoded_pixels,
        config: Arc::new(w.config(worker_id, w.alerts.clone())),
    }
}

pub async fn run(config: ArgusConfig) -> Result<(), CliError> {
    let w = &config.worker;
    // Exactly-once and static membership need an id that survives restarts: the hostname
    // (a pod name) unless one is given.
    let worker_id = w.worker_id.clone().unwrap_or_else(|| {
        if w.exactly_once || w.static_membership {
            hostname()
        } else {
            default_worker_id()
        }
    });
    let loader = loader(w, w.inference_threads, &worker_id);
    let (models, follower) = starting_models(&config, loader).await?;
    let model = models.current().production.model().clone();
    let group = w.group.clone();
    let mut run_config = worker_config(worker_id.clone(), w, &model)?;
    let mut settings = config.kafka.settings();
    preflight(&settings).await?;
    // Zone rule state is rebuilt from the predictions topic after a rebalance.
    run_config.zones.history = Some(settings.clone());
    if w.group_protocol != "classic" {
        settings
            .consumer_options
            .insert("group.protocol".into(), w.group_protocol.clone());
    }
    if w.static_membership {
        settings
            .consumer_options
            .insert("group.instance.id".into(), worker_id.clone());
    }
    let clients = || {
        let (consumer, producer) = if w.exactly_once {
            let txn_id = argus_worker::transactional_id(&group, &worker_id);
            (
                settings.transactional_consumer(&group, &worker_id),
                settings.transactional_producer(&worker_id, &txn_id),
            )
        } else {
            (
                settings.consumer(&group, &worker_id),
                settings.producer(&worker_id),
            )
        };
        Ok::<_, CliError>((
            consumer.map_err(|e| CliError::Usage(e.to_string()))?,
            producer.map_err(|e| CliError::Usage(e.to_string()))?,
        ))
    };
    let (consumer, producer) = clients()?;
    telemetry::metrics_handle();
    argus_kafka::metrics::register_defaults();
    argus_model::metrics::register_defaults();
    argus_worker::metrics::register_defaults(&run_config.input_topics);
    argus_worker::metrics::record_worker_info(&group, &worker_id);
    let shutdown = shutdown::on_signal();
    if w.create_topics > 0 {
        let specs: Vec<TopicSpec> = w
            .topics
            .iter()
            .map(|t| TopicSpec::new(t, w.create_topics))
            .collect();
        argus_kafka::ensure_topics(&settings, &specs)
            .await
            .map_err(|e| CliError::Runtime(e.into()))?;
    }
    let listener = telemetry::bind(w.metrics_addr)
        .await
        .map_err(CliError::Usage)?;
    let stats = Arc::new(WorkerStats::default());
    // The endpoints stay up through the drain and stop when the worker has stopped.
    let server_stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(telemetry::serve(
        listener,
        vec![stats.clone()],
        server_stop.clone(),
    ));
    if let Some((follower, updates)) = follower {
        tokio::spawn(follower.follow(updates, deployment, shutdown.clone()));
    }
    let mut clients_now = Some((consumer, producer));
    let result = loop {
        let (consumer, producer) = match clients_now.take() {
            Some(c) => c,
            None => clients()?,
        };
        let result = argus_worker::run_models(
            run_config.clone(),
            consumer,
            producer,
            models.clone(),
            stats.clone(),
            shutdown.clone(),
        )
        .await;
        match result {
            // Exactly-once: a transaction whose offsets the group refused because it had
            // moved on (a member joined or left while it was open) is aborted; new clients
            // rejoin and redo its inputs from the committed offsets, as a restart would.
            Err(e) if !shutdown.is_cancelled() && e.rejoin() => {
                tracing::warn!(worker = %worker_id, error = %e, "transaction aborted by a rebalance; rejoining with new clients");
                metrics::counter!(argus_worker::metrics::REJOINS).increment(1);
            }
            other => break other,
        }
    };
    server_stop.cancel();
    match server.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics endpoint failed"),
        Err(e) => tracing::warn!(error = %e, "metrics endpoint task failed"),
        Ok(Ok(())) => {}
    }
    result.map_err(|e| match e {
        argus_worker::WorkerError::Config(m) => CliError::Usage(m),
        other => CliError::Runtime(other.into()),
    })
}
