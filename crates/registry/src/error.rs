//! The registry's one error type.
use crate::records::Stage;
use std::path::PathBuf;

/// Everything that can go wrong with the registry. [`RegistryError::is_usage`] says which
/// errors are the caller's to fix (the CLI exits 64 on them).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bundle directory is not a valid bundle (manifest, model hash, names).
    #[error("bad bundle {path}: {reason}")]
    BadBundle {
        /// The bundle directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The registry settings are invalid.
    #[error("bad registry settings: {0}")]
    Settings(String),
    /// No version record for this name (and version).
    #[error("model {name}{}: not registered", version.as_deref().map(|v| format!("@{v}")).unwrap_or_default())]
    Unknown {
        /// Model name.
        name: String,
        /// Version, when one was named.
        version: Option<String>,
    },
    /// The version is registered already with another artifact.
    #[error("model {name}@{version} is registered already with artifact sha256 {existing}; this bundle's is {new}: bump the manifest's version")]
    AlreadyRegistered {
        /// Model name.
        name: String,
        /// Version.
        version: String,
        /// sha256 on record.
        existing: String,
        /// sha256 of the bundle offered.
        new: String,
    },
    /// The stage change is not allowed; `reason` says why and what to do instead.
    #[error("model {name}@{version}: cannot go from {from} to {to}: {reason}")]
    Transition {
        /// Model name.
        name: String,
        /// Version.
        version: String,
        /// Its stage now.
        from: Stage,
        /// The stage asked for.
        to: Stage,
        /// Why not.
        reason: String,
    },
    /// Promotion to production without a gate decision and without `forced`.
    #[error("model {name}@{version}: promotion to production needs the promotion gate's decision, or forced with a reason")]
    GateRequired {
        /// Model name.
        name: String,
        /// Version.
        version: String,
    },
    /// Rollback with no earlier production version to go back to.
    #[error("model {name}: no earlier production version to roll back to")]
    NothingToRollBack {
        /// Model name.
        name: String,
    },
    /// The artifact's sha256 is not the one on record: never served.
    #[error("artifact of {name}@{version} is tampered: sha256 is {actual}, the registry says {expected}")]
    Tampered {
        /// Model name.
        name: String,
        /// Version.
        version: String,
        /// sha256 on record.
        expected: String,
        /// sha256 of the bytes read.
        actual: String,
    },
    /// Chunks are missing: fewer bytes than on record. Never served.
    #[error(
        "artifact of {name}@{version} is truncated: {have} of {want} bytes in the registry topic"
    )]
    Truncated {
        /// Model name.
        name: String,
        /// Version.
        version: String,
        /// Bytes found.
        have: u64,
        /// Bytes on record.
        want: u64,
    },
    /// The artifact's URI does not answer with the file.
    #[error("artifact of {name}@{version} is missing at {uri}: {reason}")]
    Missing {
        /// Model name.
        name: String,
        /// Version.
        version: String,
        /// Where it should be.
        uri: String,
        /// What happened.
        reason: String,
    },
    /// An artifact URI this build cannot read.
    #[error("artifact URI {uri}: {reason}")]
    BadUri {
        /// The URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// A record on the topic does not parse.
    #[error("record {key} at offset {offset} of {topic} does not parse: {source}")]
    BadRecord {
        /// The topic.
        topic: String,
        /// The record's key.
        key: String,
        /// Its offset.
        offset: i64,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// Another writer changed the deployment at the same time.
    #[error("deployment of {name} changed concurrently: wrote revision {wrote}, the topic now ends with revision {found} by {by}; look at `argus model show {name}` and retry")]
    Conflict {
        /// Model name.
        name: String,
        /// Revision written.
        wrote: u64,
        /// Revision found after writing.
        found: u64,
        /// Who wrote what was found.
        by: String,
    },
    /// Kafka set-up (clients, topics).
    #[error(transparent)]
    Kafka(#[from] argus_kafka::KafkaSetupError),
    /// A Kafka read or write failed.
    #[error("Kafka {op} on {topic}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: argus_kafka::rdkafka::error::KafkaError,
    },
    /// Kafka did not answer in time.
    #[error("Kafka {op} on {topic}: no answer within {within:?} (is the broker reachable?)")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The topic.
        topic: String,
        /// How long we waited.
        within: std::time::Duration,
    },
    /// A local file operation (cache, bundle) failed.
    #[error("{path}: {source}")]
    File {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Whether the caller must change something (name, version, stage, bundle, settings)
    /// rather than retry: the CLI exits 64 on these.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RegistryError::BadBundle { .. }
                | RegistryError::Settings(_)
                | RegistryError::Unknown { .. }
                | RegistryError::AlreadyRegistered { .. }
                | RegistryError::Transition { .. }
                | RegistryError::GateRequired { .. }
                | RegistryError::NothingToRollBack { .. }
                | RegistryError::BadUri { .. }
        )
    }

    /// Whether the bytes were there but are not the registered artifact (another sha256, or
    /// fewer bytes than registered): verification refused them.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            RegistryError::Tampered { .. } | RegistryError::Truncated { .. }
        )
    }

    /// Which `reason` label of the fetch-failure counter this error is.
    pub fn fetch_reason(&self) -> &'static str {
        match self {
            RegistryError::Tampered { .. } => "tampered",
            RegistryError::Truncated { .. } => "truncated",
            RegistryError::Missing { .. } => "missing",
            RegistryError::Unknown { .. } => "unknown",
            _ => "error",
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::File {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bundle(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        RegistryError::BadBundle {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The registry's result type.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
