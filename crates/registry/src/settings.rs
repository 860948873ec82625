//! [`RegistrySettings`]: the `[registry]` table of the configuration, defaults defined once
//! here.
use crate::error::{RegistryError, Result};
use argus_kafka::serde_helpers::duration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Default registry topic.
pub const DEFAULT_TOPIC: &str = "argus.models";
/// Default chunk size: 512 KiB.
pub const DEFAULT_CHUNK_BYTES: u64 = 512 * 1024;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_BYTES: u64 = 1024;
/// Largest chunk size accepted: 900 KiB, under librdkafka's producer `message.max.bytes`
/// (1,000,000) and the broker's default (1,048,588) with room for the key and the record
/// overhead. [`crate::Registry::open`] also checks the topic's own `max.message.bytes`.
pub const MAX_CHUNK_BYTES: u64 = 900 * 1024;
/// Bytes a chunk record needs besides the chunk (key, headers, batch overhead), at most.
pub const RECORD_OVERHEAD_BYTES: u64 = 4096;

/// `[registry]`: where model versions live and where fetched bundles are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrySettings {
    /// The compacted registry topic (created with one partition if missing).
    pub topic: String,
    /// Size of the artifact chunks written to the topic.
    pub chunk_bytes: u64,
    /// Where fetched bundles are unpacked (`<cache_dir>/<name>/<version>-<sha12>`)
    /// [default: $XDG_CACHE_HOME/argus/models, else ~/.cache/argus/models].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// How long one Kafka request (metadata, a read to the end, a delivery) may take.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            topic: DEFAULT_TOPIC.into(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            cache_dir: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl RegistrySettings {
    /// Cross-field checks; the message says what to fix.
    pub fn check(&self) -> Result<()> {
        if self.topic.trim().is_empty() {
            return Err(RegistryError::Settings("registry.topic is empty".into()));
        }
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&self.chunk_bytes) {
            return Err(RegistryError::Settings(format!(
                "registry.chunk_bytes is {}: use {MIN_CHUNK_BYTES} to {MAX_CHUNK_BYTES} (under the broker's message.max.bytes)",
                self.chunk_bytes
            )));
        }
        if self.timeout.is_zero() {
            return Err(RegistryError::Settings(
                "registry.timeout must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// The cache directory in effect.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("argus").join("models")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_pass_and_out_of_range_chunks_are_refused() {
        RegistrySettings::default().check().unwrap();
        for bytes in [0, MIN_CHUNK_BYTES - 1, MAX_CHUNK_BYTES + 1, 1 << 20] {
            let s = RegistrySettings {
                chunk_bytes: bytes,
                ..RegistrySettings::default()
            };
            assert!(s.check().unwrap_err().to_string().contains("chunk_bytes"));
        }
        let s = RegistrySettings {
            cache_dir: Some("/x".into()),
            ..RegistrySettings::default()
        };
        assert_eq!(s.cache_dir(), PathBuf::from("/x"));
        assert!(RegistrySettings::default()
            .cache_dir()
            .ends_with("argus/models"));
    }
}
