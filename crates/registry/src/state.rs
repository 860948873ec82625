//! The registry's state: the fold of the topic's records, last record of a key winning (as
//! compaction keeps it), a null value (tombstone) deleting the key.
//!
//! Chunk records are folded to their sizes only: [`crate::Registry::fetch`] reads the bytes
//! of the one version it needs.
use crate::error::{RegistryError, Result};
use crate::records::{DeploymentRecord, Key, VersionRecord};
use std::collections::BTreeMap;

/// Every version and deployment on the topic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryState {
    /// name → version → record.
    pub versions: BTreeMap<String, BTreeMap<String, VersionRecord>>,
    /// name → deployment.
    pub deployments: BTreeMap<String, DeploymentRecord>,
    /// (name, version) → chunk index → size in bytes.
    pub chunks: BTreeMap<(String, String), BTreeMap<u32, u64>>,
}

impl RegistryState {
    /// Folds one record in. Keys this build does not know are skipped; a value that does not
    /// parse is an error (the state is left as it was).
    pub fn apply(
        &mut self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<()> {
        let Some(parsed) = Key::parse(key) else {
            tracing::debug!(
                topic,
                key,
                offset,
                "registry record with an unknown key skipped"
            );
            return Ok(());
        };
        let bad = |source| RegistryError::BadRecord {
            topic: topic.into(),
            key: key.into(),
            offset,
            source,
        };
        match (parsed, value) {
            (Key::Version { name, version }, Some(v)) => {
                let record: VersionRecord = serde_json::from_slice(v).map_err(bad)?;
                self.versions
                    .entry(name)
                    .or_default()
                    .insert(version, record);
            }
            (Key::Version { name, version }, None) => {
                if let Some(vs) = self.versions.get_mut(&name) {
                    vs.remove(&version);
                    if vs.is_empty() {
                        self.versions.remove(&name);
                    }
                }
            }
            (Key::Deploy { name }, Some(v)) => {
                let record: DeploymentRecord = serde_json::from_slice(v).map_err(bad)?;
                self.deployments.insert(name, record);
            }
            (Key::Deploy { name }, None) => {
                self.deployments.remove(&name);
            }
            (
                Key::Chunk {
                    name,
                    version,
                    index,
                },
                Some(v),
            ) => {
                self.chunks
                    .entry((name, version))
                    .or_default()
                    .insert(index, v.len() as u64);
            }
            (
                Key::Chunk {
                    name,
                    version,
                    index,
                },
                None,
            ) => {
                if let Some(c) = self.chunks.get_mut(&(name, version)) {
                    c.remove(&index);
                }
            }
        }
        Ok(())
    }

    /// The record of `name@version`, or [`RegistryError::Unknown`].
    pub fn version(&self, name: &str, version: &str) -> Result<&VersionRecord> {
        self.versions
            .get(name)
            .and_then(|vs| vs.get(version))
            .ok_or_else(|| RegistryError::Unknown {
                name: name.into(),
                version: Some(version.into()),
            })
    }

    /// Every version of `name`, or [`RegistryError::Unknown`] when it has none.
    pub fn versions_of(&self, name: &str) -> Result<&BTreeMap<String, VersionRecord>> {
        self.versions
            .get(name)
            .ok_or_else(|| RegistryError::Unknown {
                name: name.into(),
                version: None,
            })
    }

    /// The deployment of `name`, if one was written.
    pub fn deployment(&self, name: &str) -> Option<&DeploymentRecord> {
        self.deployments.get(name)
    }

    /// Applies what a change will write, as the topic will fold it (tests and callers that
    /// keep a state between changes).
    pub fn apply_plan(&mut self, plan: &crate::transitions::Plan) {
        for v in &plan.versions {
            self.versions
                .entry(v.name.clone())
                .or_default()
                .insert(v.version.clone(), v.clone());
        }
        if let Some(d) = &plan.deployment {
            self.deployments.insert(d.name.clone(), d.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::records::DeploymentRecord;

    #[test]
    fn the_last_record_of_a_key_wins_and_a_tombstone_deletes_it() {
        let mut s = RegistryState::default();
        let mut d = DeploymentRecord::empty("m");
        d.revision = 1;
        let one = serde_json::to_vec(&d).unwrap();
        d.revision = 2;
        let two = serde_json::to_vec(&d).unwrap();
        s.apply("t", "deploy/m", Some(&one), 0).unwrap();
        s.apply("t", "deploy/m", Some(&two), 1).unwrap();
        assert_eq!(s.deployment("m").unwrap().revision, 2);
        s.apply("t", "chunk/m/1/000000", Some(b"abc"), 2).unwrap();
        s.apply("t", "chunk/m/1/000000", Some(b"abcd"), 3).unwrap();
        assert_eq!(s.chunks[&("m".into(), "1".into())][&0], 4);
        s.apply("t", "deploy/m", None, 4).unwrap();
        assert!(s.deployment("m").is_none());
        s.apply("t", "something/else", Some(b"x"), 5).unwrap();
        assert!(s.apply("t", "deploy/m", Some(b"{"), 6).is_err());
        assert!(s.deployment("m").is_none());
        assert!(matches!(
            s.version("m", "1"),
            Err(RegistryError::Unknown { .. })
        ));
    }
}
