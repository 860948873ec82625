//! Following a model's deployment: when the registry announces another production, canary
//! or shadow version, the follower fetches and verifies its bundle (through a
//! [`VersionSource`], the registry in production), loads it and warms every batch size
//! beside the serving versions, then swaps the whole set at once ([`Models::swap`]). Inputs
//! already routed finish on the version they took; new inputs take the new set. A version
//! that cannot be fetched, verified or loaded leaves the serving set as it is, counted in
//! [`m::MODEL_LOAD_FAILURES`] and logged with the reason; the follower waits for the next
//! announcement.
use crate::config::{AlertRule, WorkerConfig};
use crate::metrics as m;
use crate::models::{Canary, Models, Serving};
use crate::pipeline::Pipeline;
use argus_model::{Classifier, EngineOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The versions a model's deployment names (the registry's deployment record).
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// Serves every input not in the canary.
    pub production: String,
    /// A version serving `share` of the keys.
    pub canary: Option<(String, f64)>,
    /// A version scoring a copy of every input.
    pub shadow: Option<String>,
    /// Increases with every change.
    pub revision: u64,
}

/// Why a version could not be made ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFailure {
    /// The artifact could not be read (missing file, unknown version, unreachable).
    Fetch,
    /// The artifact's bytes are not the registered ones (another sha256, or truncated).
    Verify,
    /// The bundle did not load (bad manifest, model, engine).
    Load,
    /// The bundle is another model, or its labels do not fit the worker's alert rules.
    Labels,
}

impl LoadFailure {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadFailure::Fetch => "fetch",
            LoadFailure::Verify => "verify",
            LoadFailure::Load => "load",
            LoadFailure::Labels => "labels",
        }
    }
}

/// A version that could not be made ready, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("version {version} of model {model} not loaded ({}): {detail}", .reason.as_str())]
pub struct VersionError {
    /// The model.
    pub model: String,
    /// The version.
    pub version: String,
    /// The kind of failure.
    pub reason: LoadFailure,
    /// What went wrong, for people.
    pub detail: String,
}

/// A fetch that failed: its kind ([`LoadFailure::Fetch`] or [`LoadFailure::Verify`]) and
/// what happened.
pub type FetchError = (LoadFailure, String);

/// Where versions come from: fetches a version's bundle, verified, into a local directory.
pub trait VersionSource: Send + Sync {
    /// The directory of `model`'s `version` bundle, its artifact verified.
    fn fetch<'a>(
        &'a self,
        model: &'a str,
        version: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<PathBuf, FetchError>> + Send + 'a>>;
}

/// Loads bundles into pipelines the way the worker loaded its first one.
#[derive(Debug, Clone)]
pub struct Loader {
    /// Engine settings.
    pub options: EngineOptions,
    /// Decoded frame size bound.
    pub max_decoded_pixels: u64,
    /// The worker's configuration (outputs, limits, and the `--alert` rules: when there
    /// are none each version alerts on its own `[decision]`, [`AlertRule::for_bundle`]).
    pub config: Arc<WorkerConfig>,
}

impl Loader {
    /// Loads `dir`, checks it is `model`, and warms batch sizes up to the configured
    /// maximum so its first batches pay nothing. Blocking.
    pub fn load(&self, model: &str, version: &str, dir: &Path) -> Result<Pipeline, VersionError> {
        let fail = |reason, detail: String| VersionError {
            model: model.to_string(),
            version: version.to_string(),
            reason,
            detail,
        };
        let mut classifier = Classifier::load_with(dir, &self.options)
            .map_err(|e| fail(LoadFailure::Load, e.to_string()))?;
        classifier.set_max_decoded_pixels(self.max_decoded_pixels);
        let r = classifier.model_ref();
        if r.name != model || r.version != version {
            return Err(fail(
                LoadFailure::Labels,
                format!(
                    "the bundle is {}@{}, not {model}@{version}",
                    r.name, r.version
                ),
            ));
        }
        let mut config = (*self.config).clone();
        config.rules = AlertRule::for_bundle(&self.config.rules, &classifier);
        config
            .validate(classifier.labels())
            .map_err(|e| fail(LoadFailure::Labels, e))?;
        let max = self.config.max_batch.max(1);
        for batch in 1..=max {
            classifier
                .warm(batch)
                .map_err(|e| fail(LoadFailure::Load, format!("warming batch {batch}: {e}")))?;
        }
        classifier.limit_batch(max);
        let pipeline = Pipeline::new(Arc::new(classifier), &config);
        if let Some(problem) = pipeline.evidence_problem() {
            return Err(fail(LoadFailure::Load, format!("evidence: {problem}")));
        }
        Ok(pipeline)
    }
}

/// Follows one model's deployment and swaps the worker's [`Models`].
pub struct Follower {
    model: String,
    models: Arc<Models>,
    source: Arc<dyn VersionSource>,
    loader: Loader,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower of `model` swapping `models`.
    pub fn new(
        model: impl Into<String>,
        models: Arc<Models>,
        source: Arc<dyn VersionSource>,
        loader: Loader,
    ) -> Self {
        Follower {
            model: model.into(),
            models,
            source,
            loader,
        }
    }

    /// The pipeline of `version`: the serving one if it serves already, else fetched,
    /// verified, loaded and warmed (on a blocking thread).
    pub async fn prepare(&self, version: &str) -> Result<Arc<Pipeline>, VersionError> {
        let serving = self.models.current();
        if let Some((_, p)) = serving.pipelines().find(|(_, p)| {
            let r = p.model().model_ref();
            r.name == self.model && r.version == version
        }) {
            return Ok(p.clone());
        }
        fetch_and_load(&*self.source, &self.loader, &self.model, version).await
    }

    /// The serving set of a worker that starts on `deployment`: every version fetched,
    /// verified, loaded and warmed, for [`Models::new`].
    pub async fn initial(
        model: &str,
        source: &dyn VersionSource,
        loader: &Loader,
        deployment: &Deployment,
    ) -> Result<Serving, VersionError> {
        let load = |v: String| async move { fetch_and_load(source, loader, model, &v).await };
        assemble(deployment, load).await
    }

    /// Makes `deployment` the serving set: every version ready first, then one swap. On
    /// error nothing changes.
    pub async fn apply(&self, deployment: &Deployment) -> Result<(), VersionError> {
        let started = Instant::now();
        let result = self.ready(deployment).await;
        let serving = match result {
            Ok(s) => s,
            Err(e) => {
                metrics::counter!(m::MODEL_LOAD_FAILURES, "reason" => e.reason.as_str())
                    .increment(1);
                metrics::counter!(m::MODEL_SWAPS, "outcome" => "failed").increment(1);
                tracing::error!(model = %e.model, version = %e.version, reason = e.reason.as_str(), detail = %e.detail, revision = deployment.revision, "model version not loaded; the serving versions stay");
                return Err(e);
            }
        };
        metrics::histogram!(m::MODEL_PREPARE_SECONDS).record(started.elapsed().as_secs_f64());
        let t = Instant::now();
        let old = self.models.swap(serving);
        let swap = t.elapsed();
        metrics::histogram!(m::MODEL_SWAP_SECONDS).record(swap.as_secs_f64());
        metrics::counter!(m::MODEL_SWAPS, "outcome" => "swapped").increment(1);
        record_serving(&old, 0.0);
        let new = self.models.current();
        record_serving(&new, 1.0);
        tracing::info!(model = %self.model, production = %deployment.production, canary = ?deployment.canary, shadow = ?deployment.shadow, revision = deployment.revision, prepare_ms = started.elapsed().as_millis() as u64, swap_us = swap.as_micros() as u64, "model versions swapped");
        Ok(())
    }

    async fn ready(&self, d: &Deployment) -> Result<Serving, VersionError> {
        assemble(d, |v: String| async move { self.prepare(&v).await }).await
    }

    /// Applies every newer deployment `updates` announces (as `deployment` reads it; `None`:
    /// nothing to serve yet) until `shutdown`. A failed revision is not retried; the next
    /// announcement is.
    pub async fn follow<T: Send + Sync>(
        self,
        mut updates: watch::Receiver<T>,
        deployment: impl Fn(&T) -> Option<Deployment>,
        shutdown: CancellationToken,
    ) {
        record_serving(&self.models.current(), 1.0);
        loop {
            let next = deployment(&updates.borrow_and_update());
            if let Some(d) = next {
                if d.revision > self.models.current().revision {
                    // Errors are counted and logged in `apply`.
                    let _ = self.apply(&d).await;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = updates.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Fetches `version` of `model` from `source` and loads it with `loader`.
async fn fetch_and_load(
    source: &dyn VersionSource,
    loader: &Loader,
    model: &str,
    version: &str,
) -> Result<Arc<Pipeline>, VersionError> {
    let fail = |reason, detail| VersionError {
        model: model.to_string(),
        version: version.to_string(),
        reason,
        detail,
    };
    let dir = source
        .fetch(model, version)
        .await
        .map_err(|(reason, detail)| fail(reason, detail))?;
    let (loader, m, v) = (loader.clone(), model.to_string(), version.to_string());
    let loaded = tokio::task::spawn_blocking(move || loader.load(&m, &v, &dir))
        .await
        .map_err(|e| fail(LoadFailure::Load, format!("load task failed: {e}")))??;
    Ok(Arc::new(loaded))
}

/// The serving set of `d`, each version's pipeline from `load`.
async fn assemble<F, Fut>(d: &Deployment, load: F) -> Result<Serving, VersionError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Arc<Pipeline>, VersionError>>,
{
    let production = load(d.production.clone()).await?;
    let canary = match &d.canary {
        Some((version, share)) => Some(Canary {
            pipeline: load(version.clone()).await?,
            share: *share,
        }),
        None => None,
    };
    let shadow = match &d.shadow {
        Some(version) => Some(load(version.clone()).await?),
        None => None,
    };
    Ok(Serving {
        production,
        canary,
        shadow,
        revision: d.revision,
    })
}

/// Sets [`m::MODEL_SERVING`] for every version of `serving` to `value`.
fn record_serving(serving: &Serving, value: f64) {
    for (role, p) in serving.pipelines() {
        let r = p.model().model_ref();
        metrics::gauge!(m::MODEL_SERVING, "model" => r.name.clone(), "version" => r.version.clone(), "role" => role.as_str())
            .set(value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashMap;

    fn churn() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn")
    }

    /// A copy of the churn bundle as `version`.
    fn churn_as(dir: &Path, version: &str) -> PathBuf {
        let out = dir.join(version);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(churn().join("model.onnx"), out.join("model.onnx")).unwrap();
        let manifest = std::fs::read_to_string(churn().join("manifest.toml")).unwrap();
        let manifest = manifest.replace("version = \"1\"", &format!("version = \"{version}\""));
        std::fs::write(out.join("manifest.toml"), manifest).unwrap();
        out
    }

    struct Fake(HashMap<String, Result<PathBuf, FetchError>>);

    impl VersionSource for Fake {
        fn fetch<'a>(
            &'a self,
            _model: &'a str,
            version: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<PathBuf, FetchError>> + Send + 'a>> {
            let r = self
                .0
                .get(version)
                .cloned()
                .unwrap_or_else(|| Err((LoadFailure::Fetch, "no such version".into())));
            Box::pin(async move { r })
        }
    }

    fn deployment(production: &str, revision: u64) -> Deployment {
        Deployment {
            production: production.into(),
            canary: None,
            shadow: None,
            revision,
        }
    }

    fn version(serving: &Serving, key: &[u8]) -> String {
        serving
            .route(Some(key))
            .primary
            .model()
            .model_ref()
            .version
            .clone()
    }

    #[tokio::test]
    async fn swaps_to_a_good_version_and_keeps_serving_through_bad_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Arc::new(WorkerConfig::new("w", vec!["in".into()]));
        let loader = Loader {
            options: EngineOptions::default(),
            max_decoded_pixels: 1 << 24,
            config: config.clone(),
        };
        let v1 = loader.load("churn", "1", &churn()).unwrap();
        let models = Models::new(Serving::production(Arc::new(v1)));
        let mut versions = HashMap::new();
        versions.insert("2".to_string(), Ok(churn_as(tmp.path(), "2")));
        versions.insert(
            "3".to_string(),
            Err((LoadFailure::Verify, "sha256 differs".into())),
        );
        // A bundle whose manifest says version 4 registered as 5.
        versions.insert("5".to_string(), Ok(churn_as(tmp.path(), "4")));
        let broken = churn_as(tmp.path(), "6");
        std::fs::write(broken.join("model.onnx"), b"not onnx").unwrap();
        versions.insert("6".to_string(), Ok(broken));
        let follower = Follower::new("churn", models.clone(), Arc::new(Fake(versions)), loader);

        follower.apply(&deployment("2", 1)).await.unwrap();
        assert_eq!(version(&models.current(), b"k"), "2");
        assert_eq!(models.current().revision, 1);

        for (v, reason) in [
            ("3", LoadFailure::Verify),
            ("5", LoadFailure::Labels),
            ("6", LoadFailure::Load),
            ("7", LoadFailure::Fetch),
        ] {
            let e = follower.apply(&deployment(v, 2)).await.unwrap_err();
            assert_eq!(e.reason, reason, "{e}");
            assert_eq!(version(&models.current(), b"k"), "2", "still serving 2");
            assert_eq!(models.current().revision, 1);
        }

        // Canary and shadow: keys split by hash, the shadow is the production loaded once.
        let d = Deployment {
            production: "2".into(),
            canary: Some(("1".into(), 0.5)),
            shadow: Some("2".into()),
            revision: 3,
        };
        // "1" is not serving any more and the fake has no "1": fetch fails, nothing changes.
        assert_eq!(
            follower.apply(&d).await.unwrap_err().reason,
            LoadFailure::Fetch
        );
    }

    #[tokio::test]
    async fn follow_applies_newer_revisions_only() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Arc::new(WorkerConfig::new("w", vec!["in".into()]));
        let loader = Loader {
            options: EngineOptions::default(),
            max_decoded_pixels: 1 << 24,
            config,
        };
        let v1 = loader.load("churn", "1", &churn()).unwrap();
        let models = Models::new(Serving::production(Arc::new(v1)));
        let mut versions = HashMap::new();
        versions.insert("1".to_string(), Ok(churn()));
        versions.insert("2".to_string(), Ok(churn_as(tmp.path(), "2")));
        let follower = Follower::new("churn", models.clone(), Arc::new(Fake(versions)), loader);
        let (tx, rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(follower.follow(rx, Clone::clone, stop.clone()));
        let wait_for = |v: &'static str, rev: u64| {
            let models = models.clone();
            async move {
                for _ in 0..500 {
                    let s = models.current();
                    if s.revision == rev {
                        return version(&s, b"k") == v;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                false
            }
        };
        tx.send(Some(Deployment {
            production: "1".into(),
            canary: Some(("2".into(), 0.2)),
            shadow: None,
            revision: 4,
        }))
        .unwrap();
        assert!(wait_for("1", 4).await);
        let s = models.current();
        assert_eq!(s.revision, 4);
        let canary = s.canary.as_ref().unwrap();
        assert_eq!(canary.pipeline.model().model_ref().version, "2");
        // Keys are split by the canary hash.
        let on_canary = (0..1000)
            .filter(|i| version(&s, format!("c{i}").as_bytes()) == "2")
            .count();
        assert!((120..280).contains(&on_canary), "{on_canary}");
        // An older revision is ignored; a newer one (rollback to 1 alone) applies.
        tx.send(Some(deployment("2", 3))).unwrap();
        tx.send(Some(deployment("1", 5))).unwrap();
        assert!(wait_for("1", 5).await);
        assert!(models.current().canary.is_none());
        stop.cancel();
        task.await.unwrap();
    }
}
