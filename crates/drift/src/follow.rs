//! `argus drift watch --follow NAME`: the sidecar follows a model's deployment in the
//! registry. It watches the stream against the production version's reference profile
//! (the bundle's `[monitoring] profile`, else the one configured), names that version in
//! its reports, and counts only that version's predictions (a canary's scores are another
//! model's).
//!
//! When production changes, the new version's reference is fetched, verified and read
//! while the sidecar keeps running on the old one; only then is the sidecar restarted on
//! the new reference. The restart loses nothing: the sidecar's committed offsets are the
//! first record of each partition's oldest open pane, so the new run re-reads every open
//! pane in full (see [`crate::sidecar`]); partials published under the old reference are
//! not merged into the new one's windows (the aggregator keys them by reference sha256).
//! A version whose reference cannot be had leaves the old one watching, counted in
//! [`REFERENCE_LOAD_FAILURES`](crate::metrics::REFERENCE_LOAD_FAILURES) and logged with
//! the reason.
use crate::metrics as m;
use crate::sidecar::{run, DriftConfig, DriftError, DriftStats};
use argus_kafka::KafkaSettings;
use argus_registry::{DeploymentRecord, Registry};
use argus_stats::profile::Profile;
use argus_stats::report::ModelInfo;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why a version's reference could not be had (the `reason` label of
/// [`REFERENCE_LOAD_FAILURES`](crate::metrics::REFERENCE_LOAD_FAILURES)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceFailure {
    /// The artifact could not be read (Kafka, URI, cache).
    Fetch,
    /// The bytes are not the registered artifact (sha256 or length).
    Verify,
    /// The bundle names no profile (and none is configured), or the profile does not read.
    Profile,
}

impl ReferenceFailure {
    /// Every reason, for pre-registered metrics.
    pub const ALL: [ReferenceFailure; 3] = [Self::Fetch, Self::Verify, Self::Profile];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Verify => "verify",
            Self::Profile => "profile",
        }
    }
}

impl std::fmt::Display for ReferenceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sidecar watches with: the model version named in reports and its profile.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Model name and version.
    pub model: ModelInfo,
    /// The reference profile.
    pub profile: Arc<Profile>,
}

impl Reference {
    /// Whether switching from `self` to `other` needs the sidecar restarted: another
    /// version (reports name it, predictions are filtered by it) or another profile.
    pub fn differs(&self, other: &Reference) -> bool {
        self.model != other.model || self.profile.sha256 != other.profile.sha256
    }
}

/// A failed reference: [`DriftError::Reference`] with its parts.
fn failure(model: &str, version: &str, reason: ReferenceFailure, detail: String) -> DriftError {
    DriftError::Reference {
        model: model.to_owned(),
        version: version.to_owned(),
        reason,
        detail,
    }
}

/// The future of [`ReferenceSource::reference`].
pub type ReferenceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Reference, DriftError>> + Send + 'a>>;

/// Where a version's reference comes from (the registry; a test's map).
pub trait ReferenceSource: Send + Sync {
    /// The reference of `model@version`; failures are [`DriftError::Reference`].
    fn reference<'a>(&'a self, model: &'a str, version: &'a str) -> ReferenceFuture<'a>;
}

/// References from the registry: the version's artifact, fetched and verified, and the
/// profile its manifest names, or `fallback` when it names none.
#[derive(Debug, Clone)]
pub struct RegistryReferences {
    /// The registry.
    pub registry: Arc<Registry>,
    /// The profile of versions whose bundle ships none (`--profile`).
    pub fallback: Option<Arc<Profile>>,
}

impl ReferenceSource for RegistryReferences {
    fn reference<'a>(&'a self, model: &'a str, version: &'a str) -> ReferenceFuture<'a> {
        Box::pin(async move {
            let dir = self.registry.fetch(model, version).await.map_err(|e| {
                let reason = if e.is_verification() {
                    ReferenceFailure::Verify
                } else {
                    ReferenceFailure::Fetch
                };
                failure(model, version, reason, e.to_string())
            })?;
            let profile = bundle_profile(&dir, self.fallback.as_ref())
                .map_err(|detail| failure(model, version, ReferenceFailure::Profile, detail))?;
            Ok(Reference {
                model: ModelInfo {
                    id: model.to_owned(),
                    version: version.to_owned(),
                },
                profile,
            })
        })
    }
}

/// The profile a bundle directory ships (`[monitoring] profile`), or `fallback`.
pub fn bundle_profile(dir: &Path, fallback: Option<&Arc<Profile>>) -> Result<Arc<Profile>, String> {
    let manifest = argus_model::Manifest::load(dir).map_err(|e| e.to_string())?;
    let Some(file) = manifest
        .monitoring
        .as_ref()
        .and_then(|m| m.profile.as_deref())
    else {
        return fallback.cloned().ok_or_else(|| {
            format!(
                "{}@{} ships no reference profile ([monitoring] profile in its manifest) and no --profile was given",
                manifest.name, manifest.version
            )
        });
    };
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Profile::from_json(&text)
        .map(Arc::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The production version a deployment names (`None` before one exists).
pub fn production(record: &Option<DeploymentRecord>) -> Option<String> {
    record.as_ref()?.production.clone()
}

/// Follows `name`'s production version from `updates` until `shutdown`: starts on the
/// version in effect (there must be one: a sidecar has nothing to compare with before),
/// switches when it changes. `config`'s model and prediction filter are set per version.
pub async fn run_following(
    config: DriftConfig,
    settings: KafkaSettings,
    name: &str,
    mut updates: watch::Receiver<Option<DeploymentRecord>>,
    source: Arc<dyn ReferenceSource>,
    shutdown: CancellationToken,
) -> Result<DriftStats, DriftError> {
    let _ = updates.changed().await;
    let first = production(&updates.borrow_and_update()).ok_or_else(|| {
        DriftError::Config(format!(
            "model {name} has no production version in the registry: promote one (argus model promote {name}@VERSION --to production)"
        ))
    })?;
    let mut current = source.reference(name, &first).await?;
    let mut stats = DriftStats::default();
    loop {
        let child = shutdown.child_token();
        let mut c = config.clone();
        c.model = current.model.clone();
        c.predictions_version = Some(current.model.version.clone());
        tracing::info!(model = %name, version = %current.model.version, profile = %current.profile.id, sha256 = %current.profile.sha256, "drift sidecar watching the production version");
        let mut task = tokio::spawn(run(
            c,
            settings.clone(),
            current.profile.clone(),
            crate::sidecar::Outputs::default(),
            child.clone(),
        ));
        let next = loop {
            tokio::select! {
                done = &mut task => return finished(done, stats),
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The registry follower ended (shutdown): run out the sidecar.
                        return finished(task.await, stats);
                    }
                    let Some(version) = production(&updates.borrow_and_update()) else {
                        tracing::warn!(model = %name, version = %current.model.version, "the deployment has no production version any more; watching the last one");
                        continue;
                    };
                    if version == current.model.version {
                        continue;
                    }
                    match source.reference(name, &version).await {
                        Ok(r) if current.differs(&r) => break r,
                        Ok(_) => {}
                        Err(e) => {
                            let reason = match &e {
                                DriftError::Reference { reason, .. } => *reason,
                                _ => ReferenceFailure::Fetch,
                            };
                            metrics::counter!(m::REFERENCE_LOAD_FAILURES, "reason" => reason.as_str()).increment(1);
                            tracing::error!(model = %name, version = %version, reason = %reason, error = %e, watching = %current.model.version, "cannot switch the drift reference to the new production version; the old one keeps watching");
                        }
                    }
                }
            }
        };
        child.cancel();
        stats.add(&finished(task.await, DriftStats::default())?);
        metrics::gauge!(m::REFERENCE_INFO, "reference_id" => current.profile.id.clone(), "sha256" => current.profile.sha256.clone()).set(0.0);
        metrics::counter!(m::REFERENCE_SWITCHES).increment(1);
        tracing::info!(model = %name, from = %current.model.version, to = %next.model.version, "drift reference switched");
        current = next;
    }
}

/// The sidecar task's end: its stats added to `stats`, or its error.
fn finished(
    done: Result<Result<DriftStats, DriftError>, tokio::task::JoinError>,
    mut stats: DriftStats,
) -> Result<DriftStats, DriftError> {
    match done {
        Ok(Ok(s)) => {
            stats.add(&s);
            Ok(stats)
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(DriftError::Config(format!("the sidecar task failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn profile(id: &str) -> Arc<Profile> {
        let mut p = (*crate::sidecar::fixtures::profile()).clone();
        p.id = id.into();
        p.sha256 = format!("sha-{id}");
        Arc::new(p)
    }

    fn reference(version: &str, profile_id: &str) -> Reference {
        Reference {
            model: ModelInfo {
                id: "churn".into(),
                version: version.into(),
            },
            profile: profile(profile_id),
        }
    }

    #[test]
    fn a_new_version_or_profile_restarts_the_sidecar() {
        let a = reference("1", "p");
        assert!(!a.differs(&reference("1", "p")));
        assert!(a.differs(&reference("2", "p")), "reports name the version");
        assert!(a.differs(&reference("1", "q")), "another reference");
    }

    #[test]
    fn a_bundle_ships_its_profile_or_the_fallback_serves() {
        let tmp = tempfile::tempdir().unwrap();
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
        for f in ["manifest.toml", "model.onnx"] {
            std::fs::copy(models.join(f), tmp.path().join(f)).unwrap();
        }
        let e = bundle_profile(tmp.path(), None).unwrap_err();
        assert!(e.contains("ships no reference profile"), "{e}");
        let fallback = profile("fallback");
        assert_eq!(
            bundle_profile(tmp.path(), Some(&fallback)).unwrap().id,
            "fallback"
        );
        let text = std::fs::read_to_string(tmp.path().join("manifest.toml")).unwrap();
        let text = text.replace("argus.bundle/v2", "argus.bundle/v3")
            + "\n[monitoring]\nprofile = \"reference.json\"\n";
        std::fs::write(tmp.path().join("manifest.toml"), text).unwrap();
        let e = bundle_profile(tmp.path(), Some(&fallback)).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::write(tmp.path().join("reference.json"), "{}").unwrap();
        assert!(bundle_profile(tmp.path(), Some(&fallback)).is_err());
        let shipped = crate::sidecar::fixtures::profile();
        std::fs::write(
            tmp.path().join("reference.json"),
            shipped.to_json().unwrap(),
        )
        .unwrap();
        let p = bundle_profile(tmp.path(), Some(&fallback)).unwrap();
        assert_eq!((&p.id, &p.sha256), (&shipped.id, &shipped.sha256));
    }
}
