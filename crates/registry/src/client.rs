//! [`Registry`]: the client every role uses to register, promote, fetch and follow model
//! versions.
//!
//! Every change reads the topic to its end, decides on that state
//! ([`crate::transitions`]) and writes the version records, then the deployment record with
//! the next revision. Kafka has no compare-and-set: two changes of one name at the same
//! moment can both write revision *n + 1*, and the later write wins. After writing a
//! deployment record the client reads the topic again and reports
//! [`RegistryError::Conflict`] when the record at the end is not its own, so the loser
//! knows; it cannot prevent the race. Run promotions from one place (a person, a CI job).
use crate::artifact::{self, Packed};
use crate::error::{RegistryError, Result};
use crate::records::{
    now, ArtifactLocation, DeploymentRecord, EvaluationRecord, HistoryEntry, Key, Lineage, Stage,
    VersionRecord, VERSION_SCHEMA,
};
use crate::settings::{RegistrySettings, RECORD_OVERHEAD_BYTES};
use crate::state::RegistryState;
use crate::transitions::{self, Change, Plan};
use crate::{metrics as m, topic, uri};
use argus_kafka::rdkafka::producer::FutureProducer;
use argus_kafka::{ensure_topics, topic_config, KafkaSettings, TopicSpec};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where `register` puts the artifact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ArtifactTarget {
    /// In the registry topic, in chunks (default).
    #[default]
    Chunks,
    /// At a URI: a `file://` path is written if absent (and must hold the same bytes if
    /// present); an `http://` one must already serve the same bytes (checked).
    Uri(String),
}

/// Who registers, why, and where the version comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
    /// Training data hash, script, parent version.
    pub lineage: Lineage,
    /// Where the artifact goes.
    pub artifact: ArtifactTarget,
}

/// A registry client. Cheap to share behind an `Arc`; every call reads the topic afresh.
pub struct Registry {
    kafka: KafkaSettings,
    settings: RegistrySettings,
    producer: FutureProducer,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("brokers", &self.kafka.brokers)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Checks the settings, creates the topic if missing (one partition,
    /// `cleanup.policy=compact`, the configured replication factor) and checks the chunk
    /// size against the topic's `max.message.bytes`.
    pub async fn open(kafka: &KafkaSettings, settings: RegistrySettings) -> Result<Registry> {
        settings.check()?;
        let topic = settings.topic.clone();
        let within = settings.timeout * 3;
        let timeout = |op| RegistryError::Timeout {
            op,
            topic: topic.clone(),
            within,
        };
        let spec = TopicSpec::new(&topic, 1).with_config("cleanup.policy", "compact");
        tokio::time::timeout(within, ensure_topics(kafka, &[spec]))
            .await
            .map_err(|_| timeout("create topic"))??;
        let max = tokio::time::timeout(within, topic_config(kafka, &topic, "max.message.bytes"))
            .await
            .map_err(|_| timeout("describe topic"))??;
        if let Some(max) = max.and_then(|v| v.parse::<u64>().ok()) {
            if settings.chunk_bytes + RECORD_OVERHEAD_BYTES > max {
                return Err(RegistryError::Settings(format!(
                    "registry.chunk_bytes {} does not fit topic {topic}'s max.message.bytes {max} (with {RECORD_OVERHEAD_BYTES} bytes of record overhead): lower it",
                    settings.chunk_bytes
                )));
            }
        }
        Self::open_existing(kafka, settings)
    }

    /// [`Registry::open`] on a topic made elsewhere, without creating or describing it
    /// (the embedded broker of `argus demo` answers neither CreateTopics nor
    /// DescribeConfigs; its caller creates the topic).
    pub fn open_existing(kafka: &KafkaSettings, settings: RegistrySettings) -> Result<Registry> {
        settings.check()?;
        let producer = kafka.producer("argus-registry")?;
        Ok(Registry {
            kafka: kafka.clone(),
            settings,
            producer,
        })
    }

    /// The settings in effect.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Every version and deployment: the topic read to its end.
    pub async fn state(&self) -> Result<RegistryState> {
        let snap = topic::read_to_end(
            &self.kafka,
            &self.settings.topic,
            self.settings.timeout,
            None,
        )
        .await?;
        Ok(snap.state)
    }

    async fn write(&self, records: &[(String, Vec<u8>)]) -> Result<()> {
        topic::write(
            &self.producer,
            &self.settings.topic,
            records,
            self.settings.timeout,
        )
        .await
    }

    /// Checks and packs the bundle in `bundle_dir`, stores its artifact and writes its
    /// version record (stage candidate). Registering the same bundle again returns the
    /// record on file; the same name and version with other bytes is
    /// [`RegistryError::AlreadyRegistered`].
    pub async fn register(
        &self,
        bundle_dir: &Path,
        opts: RegisterOptions,
    ) -> Result<VersionRecord> {
        let dir = bundle_dir.to_path_buf();
        let packed = tokio::task::spawn_blocking(move || artifact::pack(&dir))
            .await
            .map_err(|e| RegistryError::bundle(bundle_dir, e.to_string()))??;
        let (name, version) = (
            packed.manifest.name.clone(),
            packed.manifest.version.clone(),
        );
        let state = self.state().await?;
        if let Ok(existing) = state.version(&name, &version) {
            if existing.sha256 == packed.sha256 {
                tracing::info!(model = %name, version = %version, "registered already with the same artifact");
                return Ok(existing.clone());
            }
            return Err(RegistryError::AlreadyRegistered {
                name,
                version,
                existing: existing.sha256.clone(),
                new: packed.sha256,
            });
        }
        let (artifact, mut records) = self.store_artifact(&packed, &opts.artifact).await?;
        let record = new_version(&packed, artifact, opts, &now());
        records.push(version_record(&record)?);
        self.write(&records).await?;
        tracing::info!(model = %name, version = %version, sha256 = %record.sha256, bytes = packed.tar.len(), "model version registered");
        Ok(record)
    }

    /// The artifact's location and the chunk records to write (none for a URI).
    async fn store_artifact(
        &self,
        packed: &Packed,
        target: &ArtifactTarget,
    ) -> Result<(ArtifactLocation, Vec<(String, Vec<u8>)>)> {
        let (name, version) = (&packed.manifest.name, &packed.manifest.version);
        match target {
            ArtifactTarget::Chunks => {
                let size = self.settings.chunk_bytes;
                let records: Vec<(String, Vec<u8>)> = packed
                    .tar
                    .chunks(usize::try_from(size).unwrap_or(usize::MAX))
                    .enumerate()
                    .map(|(i, c)| {
                        let key = Key::Chunk {
                            name: name.clone(),
                            version: version.clone(),
                            index: i as u32,
                        };
                        (key.render(), c.to_vec())
                    })
                    .collect();
                let location = ArtifactLocation::Chunks {
                    chunks: records.len() as u32,
                    chunk_bytes: size,
                    bytes: packed.tar.len() as u64,
                };
                Ok((location, records))
            }
            ArtifactTarget::Uri(u) => {
                if let uri::ArtifactUri::File(path) = uri::ArtifactUri::parse(u)? {
                    if !path.exists() {
                        write_file(&path, &packed.tar)?;
                    }
                }
                let there = uri::read(name, version, u, self.settings.timeout).await?;
                artifact::verify(name, version, &packed.sha256, &there)?;
                Ok((ArtifactLocation::Uri { uri: u.clone() }, Vec::new()))
            }
        }
    }

    /// Writes a plan: version records, then the deployment record; with a deployment
    /// record, reads back to detect a concurrent change.
    async fn commit(&self, plan: Plan) -> Result<Plan> {
        let mut records = plan
            .versions
            .iter()
            .map(version_record)
            .collect::<Result<Vec<_>>>()?;
        if let Some(d) = &plan.deployment {
            records.push((
                Key::Deploy {
                    name: d.name.clone(),
                }
                .render(),
                to_json(d)?,
            ));
        }
        self.write(&records).await?;
        if let Some(d) = &plan.deployment {
            let state = self.state().await?;
            match state.deployment(&d.name) {
                Some(found) if found == d => {}
                found => {
                    return Err(RegistryError::Conflict {
                        name: d.name.clone(),
                        wrote: d.revision,
                        found: found.map_or(0, |f| f.revision),
                        by: found.map(|f| f.by.clone()).unwrap_or_default(),
                    })
                }
            }
            tracing::info!(model = %d.name, revision = d.revision, production = ?d.production, canary = ?d.canary.as_ref().map(|c| &c.version), shadow = ?d.shadow, by = %d.by, "model deployment changed");
        }
        Ok(plan)
    }

    /// Moves `name@version` to `stage` (see [`crate::transitions`] for the rules) and
    /// returns the deployment record in effect after it. `canary_share` is the canary's
    /// share of keys (default [`transitions::DEFAULT_CANARY_SHARE`]).
    pub async fn set_stage(
        &self,
        name: &str,
        version: &str,
        stage: Stage,
        change: Change,
        canary_share: Option<f64>,
    ) -> Result<DeploymentRecord> {
        let state = self.state().await?;
        let plan =
            transitions::plan_stage(&state, name, version, stage, &change, canary_share, &now())?;
        let plan = self.commit(plan).await?;
        Ok(plan
            .deployment
            .or_else(|| state.deployment(name).cloned())
            .unwrap_or_else(|| DeploymentRecord::empty(name)))
    }

    /// Production of `name` back to the previous production version.
    pub async fn rollback(&self, name: &str, change: Change) -> Result<DeploymentRecord> {
        let state = self.state().await?;
        let plan = transitions::plan_rollback(&state, name, &change, &now())?;
        let plan = self.commit(plan).await?;
        plan.deployment
            .ok_or_else(|| RegistryError::NothingToRollBack { name: name.into() })
    }

    /// Archives `name@version`; refused while it serves.
    pub async fn archive(
        &self,
        name: &str,
        version: &str,
        change: Change,
    ) -> Result<VersionRecord> {
        let state = self.state().await?;
        let plan = transitions::plan_archive(&state, name, version, &change, &now())?;
        first(self.commit(plan).await?, name, version)
    }

    /// Appends an evaluation to `name@version`.
    pub async fn add_evaluation(
        &self,
        name: &str,
        version: &str,
        evaluation: EvaluationRecord,
    ) -> Result<VersionRecord> {
        let state = self.state().await?;
        let plan = transitions::plan_evaluation(&state, name, version, evaluation)?;
        first(self.commit(plan).await?, name, version)
    }

    /// The bundle directory of `name@version`, unpacked under
    /// `cache_dir/<name>/<version>-<sha12>`. The artifact's sha256 is checked against the
    /// version record before anything is unpacked; a tampered, truncated or missing
    /// artifact is an error ([`RegistryError::Tampered`], [`RegistryError::Truncated`],
    /// [`RegistryError::Missing`]) and nothing is served. A cached directory is used when
    /// its model file still matches its manifest.
    pub async fn fetch(&self, name: &str, version: &str) -> Result<PathBuf> {
        let started = Instant::now();
        match self.fetch_inner(name, version).await {
            Ok((path, source)) => {
                metrics::counter!(m::FETCHES, "source" => source).increment(1);
                metrics::histogram!(m::FETCH_SECONDS, "source" => source)
                    .record(started.elapsed().as_secs_f64());
                Ok(path)
            }
            Err(e) => {
                metrics::counter!(m::FETCH_FAILURES, "reason" => e.fetch_reason()).increment(1);
                tracing::error!(model = %name, version = %version, reason = e.fetch_reason(), error = %e, "model artifact refused");
                Err(e)
            }
        }
    }

    async fn fetch_inner(&self, name: &str, version: &str) -> Result<(PathBuf, &'static str)> {
        let state = self.state().await?;
        let record = state.version(name, version)?.clone();
        let cache_dir = self.settings.cache_dir();
        let dest = artifact::cache_path(&cache_dir, name, version, &record.sha256);
        if dest.exists() {
            let d = dest.clone();
            if tokio::task::spawn_blocking(move || artifact::bundle_ok(&d))
                .await
                .unwrap_or(false)
            {
                return Ok((dest, "cache"));
            }
            std::fs::remove_dir_all(&dest).map_err(|e| RegistryError::file(&dest, e))?;
        }
        let (bytes, source) = match &record.artifact {
            ArtifactLocation::Chunks { chunks, bytes, .. } => {
                let snap = topic::read_to_end(
                    &self.kafka,
                    &self.settings.topic,
                    self.settings.timeout,
                    Some((name, version)),
                )
                .await?;
                let tar = artifact::assemble(name, version, *chunks, *bytes, &snap.chunks)?;
                (tar, "chunks")
            }
            ArtifactLocation::Uri { uri } => (
                uri::read(name, version, uri, self.settings.timeout).await?,
                "uri",
            ),
        };
        artifact::verify(name, version, &record.sha256, &bytes)?;
        let parent = cache_dir.join(name);
        let tmp = parent.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
        let (t, d) = (tmp.clone(), dest.clone());
        tokio::task::spawn_blocking(move || install(&bytes, &t, &d))
            .await
            .map_err(|e| RegistryError::bundle(&tmp, e.to_string()))??;
        Ok((dest, source))
    }

    /// Follows the deployment of `name`: see [`crate::follow`].
    pub fn follow(
        &self,
        name: &str,
    ) -> Result<tokio::sync::watch::Receiver<Option<DeploymentRecord>>> {
        crate::follow::spawn(&self.kafka, &self.settings, name)
    }
}

/// The version record of a freshly registered bundle (stage candidate, one history entry).
pub fn new_version(
    packed: &Packed,
    artifact: ArtifactLocation,
    opts: RegisterOptions,
    at: &str,
) -> VersionRecord {
    VersionRecord {
        schema: VERSION_SCHEMA.into(),
        name: packed.manifest.name.clone(),
        version: packed.manifest.version.clone(),
        sha256: packed.sha256.clone(),
        artifact,
        manifest: packed.manifest_json.clone(),
        lineage: opts.lineage,
        stage: Stage::Candidate,
        evaluations: Vec::new(),
        history: vec![HistoryEntry {
            at: at.into(),
            by: opts.by,
            action: "register".into(),
            from_stage: None,
            to_stage: Stage::Candidate,
            reason: opts.reason,
            forced: false,
            gate: None,
        }],
    }
}

/// Unpacks verified bytes into `tmp`, checks the bundle, and moves it to `dest`.
fn install(bytes: &[u8], tmp: &Path, dest: &Path) -> Result<()> {
    let result = artifact::unpack(bytes, tmp).and_then(|()| {
        if artifact::bundle_ok(tmp) {
            Ok(())
        } else {
            Err(RegistryError::bundle(
                tmp,
                "the artifact's model file does not match its manifest",
            ))
        }
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(tmp);
        return Err(e);
    }
    match std::fs::rename(tmp, dest) {
        Ok(()) => Ok(()),
        // Another fetch of the same version won the race: use its directory.
        Err(_) if artifact::bundle_ok(dest) => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(tmp);
            Err(RegistryError::file(dest, e))
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| RegistryError::file(parent, e))?;
    }
    std::fs::write(path, bytes).map_err(|e| RegistryError::file(path, e))
}

fn first(plan: Plan, name: &str, version: &str) -> Result<VersionRecord> {
    plan.versions
        .into_iter()
        .next()
        .ok_or_else(|| RegistryError::Unknown {
            name: name.into(),
            version: Some(version.into()),
        })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    // Records are plain data (strings, numbers, maps with string keys): serialising them
    // cannot fail, but the error is still typed rather than unwrapped.
    serde_json::to_vec(value).map_err(|source| RegistryError::BadRecord {
        topic: String::new(),
        key: "<being written>".into(),
        offset: -1,
        source,
    })
}

fn version_record(v: &VersionRecord) -> Result<(String, Vec<u8>)> {
    let key = Key::Version {
        name: v.name.clone(),
        version: v.version.clone(),
    };
    Ok((key.render(), to_json(v)?))
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod schema_tests;
