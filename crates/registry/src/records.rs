//! The records of the registry topic and their keys.
//!
//! Keys are UTF-8 and say what the value is:
//! - `version/{name}/{version}` → [`VersionRecord`] (JSON, schema [`VERSION_SCHEMA`]);
//! - `deploy/{name}` → [`DeploymentRecord`] (JSON, schema [`DEPLOYMENT_SCHEMA`]), the one
//!   record workers follow;
//! - `chunk/{name}/{version}/{index:06}` → raw bytes of the artifact.
//!
//! Names and versions are `[A-Za-z0-9._-]{1,128}` (not `.` or `..`): they are path
//! segments of keys and of the cache directory. The JSON shapes are pinned by
//! `schemas/model-version.v1.schema.json` and `schemas/model-deployment.v1.schema.json`.
use serde::{Deserialize, Serialize};

/// `schema` of a [`VersionRecord`].
pub const VERSION_SCHEMA: &str = "argus.model-version/v1";
/// `schema` of a [`DeploymentRecord`].
pub const DEPLOYMENT_SCHEMA: &str = "argus.model-deployment/v1";

/// Where a version is in its life. Workers follow the [`DeploymentRecord`]; a version's
/// stage mirrors it for people and tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Registered, not serving.
    Candidate,
    /// Scores a copy of the traffic; its outputs go to a separate topic.
    Shadow,
    /// Serves a share of the keys.
    Canary,
    /// Serves every key the canary does not take.
    Production,
    /// Retired: never served again (register a new version instead).
    Archived,
}

impl Stage {
    /// Every stage, in lifecycle order.
    pub const ALL: [Stage; 5] = [
        Stage::Candidate,
        Stage::Shadow,
        Stage::Canary,
        Stage::Production,
        Stage::Archived,
    ];

    /// The lowercase name used in records and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Candidate => "candidate",
            Stage::Shadow => "shadow",
            Stage::Canary => "canary",
            Stage::Production => "production",
            Stage::Archived => "archived",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                format!("stage {s:?}: use candidate, shadow, canary, production or archived")
            })
    }
}

/// Where the artifact's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArtifactLocation {
    /// In the registry topic, as `chunks` records `chunk/{name}/{version}/{index:06}`.
    Chunks {
        /// Number of chunk records (indices `0..chunks`).
        chunks: u32,
        /// Size of every chunk but the last.
        chunk_bytes: u64,
        /// Size of the whole artifact.
        bytes: u64,
    },
    /// Outside Kafka: `file:///abs/path` or `http://host[:port]/path`.
    Uri {
        /// The location.
        uri: String,
    },
}

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// sha256 of the training data, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_data_sha256: Option<String>,
    /// The training script (a path or a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The version this one was derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_version: Option<String>,
}

/// One evaluation of a version on a fixed test set (filled by `argus model evaluate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// The metric, e.g. `accuracy`, `f1`, `roc_auc`.
    pub metric: String,
    /// Its value on the test set.
    pub value: f64,
    /// Lower bound of the confidence interval.
    pub ci_low: f64,
    /// Upper bound of the confidence interval.
    pub ci_high: f64,
    /// Items in the test set.
    pub n: u64,
    /// sha256 of the test set.
    pub test_set_sha256: String,
    /// sha256 of the evaluation document (byte-identical for the same bundle and test set).
    pub evaluation_sha256: String,
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who ran it.
    pub by: String,
    /// Anything else the evaluator records (per-class figures, the method of the interval).
    #[serde(default, flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One change of a version or a deployment: who, when, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// When (RFC 3339 UTC).
    pub at: String,
    /// Who (`user@host` by default).
    pub by: String,
    /// `register`, `promote`, `demote`, `rollback`, `archive`, `evaluate`.
    pub action: String,
    /// The stage before (none when registered).
    pub from_stage: Option<Stage>,
    /// The stage after.
    pub to_stage: Stage,
    /// Why (free text; required with `forced`).
    pub reason: String,
    /// Promoted to production without a passing gate decision.
    pub forced: bool,
    /// The promotion gate's decision, as the gate wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<serde_json::Value>,
}

/// `version/{name}/{version}`: one registered version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRecord {
    /// [`VERSION_SCHEMA`].
    pub schema: String,
    /// Model name (the manifest's).
    pub name: String,
    /// Version (the manifest's).
    pub version: String,
    /// sha256 of the artifact (the deterministic tar), lowercase hex.
    pub sha256: String,
    /// Where the artifact is.
    pub artifact: ArtifactLocation,
    /// The bundle's `manifest.toml` as JSON.
    pub manifest: serde_json::Value,
    /// Where it came from.
    pub lineage: Lineage,
    /// Its stage now.
    pub stage: Stage,
    /// Evaluations, oldest first.
    pub evaluations: Vec<EvaluationRecord>,
    /// Every change, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl VersionRecord {
    /// First 12 hex digits of the artifact's sha256 (cache directory names, tables).
    pub fn sha12(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }
}

/// The canary slot of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// The version serving the canary share.
    pub version: String,
    /// Share of the keys it serves, in (0, 1).
    pub share: f64,
}

/// A version that was production before, newest last: where rollback goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousProduction {
    /// The version.
    pub version: String,
    /// When it stopped being production (RFC 3339 UTC).
    pub until: String,
    /// Who replaced it.
    pub by: String,
}

/// `deploy/{name}`: what serves. One write of this record switches production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRecord {
    /// [`DEPLOYMENT_SCHEMA`].
    pub schema: String,
    /// Model name.
    pub name: String,
    /// The production version (none until the first promotion).
    pub production: Option<String>,
    /// The canary, if any.
    pub canary: Option<Canary>,
    /// The shadow version, if any.
    pub shadow: Option<String>,
    /// 1 for the first record of a name, +1 for every change.
    pub revision: u64,
    /// When (RFC 3339 UTC).
    pub changed_at: String,
    /// Who.
    pub by: String,
    /// Why.
    pub why: String,
    /// Earlier production versions, newest last (at most [`MAX_PREVIOUS`]).
    pub history: Vec<PreviousProduction>,
}

/// Earlier production versions a deployment record keeps.
pub const MAX_PREVIOUS: usize = 32;

impl DeploymentRecord {
    /// An empty deployment of `name` (revision 0: nothing written yet).
    pub fn empty(name: &str) -> Self {
        DeploymentRecord {
            schema: DEPLOYMENT_SCHEMA.into(),
            name: name.into(),
            production: None,
            canary: None,
            shadow: None,
            revision: 0,
            changed_at: String::new(),
            by: String::new(),
            why: String::new(),
            history: Vec::new(),
        }
    }

    /// The slot `version` holds in this deployment, if any.
    pub fn slot_of(&self, version: &str) -> Option<Stage> {
        if self.production.as_deref() == Some(version) {
            Some(Stage::Production)
        } else if self.canary.as_ref().is_some_and(|c| c.version == version) {
            Some(Stage::Canary)
        } else if self.shadow.as_deref() == Some(version) {
            Some(Stage::Shadow)
        } else {
            None
        }
    }
}

/// What a record key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `version/{name}/{version}`.
    Version {
        /// Model name.
        name: String,
        /// Version.
        version: String,
    },
    /// `deploy/{name}`.
    Deploy {
        /// Model name.
        name: String,
    },
    /// `chunk/{name}/{version}/{index:06}`.
    Chunk {
        /// Model name.
        name: String,
        /// Version.
        version: String,
        /// Chunk index.
        index: u32,
    },
}

impl Key {
    /// Parses a record key; `None` for keys this build does not know (skipped by readers,
    /// so a newer writer's records do not break an older reader).
    pub fn parse(key: &str) -> Option<Key> {
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            ["version", n, v] if valid_id(n) && valid_id(v) => Some(Key::Version {
                name: (*n).into(),
                version: (*v).into(),
            }),
            ["deploy", n] if valid_id(n) => Some(Key::Deploy { name: (*n).into() }),
            ["chunk", n, v, i] if valid_id(n) && valid_id(v) => Some(Key::Chunk {
                name: (*n).into(),
                version: (*v).into(),
                index: i.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// The key's text.
    pub fn render(&self) -> String {
        match self {
            Key::Version { name, version } => format!("version/{name}/{version}"),
            Key::Deploy { name } => format!("deploy/{name}"),
            Key::Chunk {
                name,
                version,
                index,
            } => format!("chunk/{name}/{version}/{index:06}"),
        }
    }
}

/// Whether `s` may be a model name or version: `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Now, RFC 3339 UTC with seconds.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_or_unsafe_keys_are_skipped() {
        for key in [
            Key::Version {
                name: "churn".into(),
                version: "1.2".into(),
            },
            Key::Deploy {
                name: "camera-person".into(),
            },
            Key::Chunk {
                name: "churn".into(),
                version: "2".into(),
                index: 7,
            },
        ] {
            assert_eq!(Key::parse(&key.render()), Some(key));
        }
        assert_eq!(
            Key::Chunk {
                name: "a".into(),
                version: "1".into(),
                index: 7
            }
            .render(),
            "chunk/a/1/000007"
        );
        for bad in [
            "version/a",
            "version/../1",
            "deploy/a b",
            "chunk/a/1/x",
            "lease/a",
            "",
        ] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn stages_parse_case_insensitively_and_name_the_choices_otherwise() {
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>().unwrap(), s);
        }
        assert_eq!("Production".parse::<Stage>().unwrap(), Stage::Production);
        assert!("prod".parse::<Stage>().unwrap_err().contains("canary"));
    }

    #[test]
    fn evaluation_extra_fields_are_kept_beside_the_fixed_ones() {
        let json = serde_json::json!({
            "metric": "accuracy", "value": 0.9, "ci_low": 0.88, "ci_high": 0.92, "n": 1000,
            "test_set_sha256": "a", "evaluation_sha256": "b", "at": "t", "by": "me",
            "method": "wilson"
        });
        let e: EvaluationRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(e.extra["method"], "wilson");
        assert_eq!(serde_json::to_value(&e).unwrap(), json);
    }
}
