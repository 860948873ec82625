//! Artifacts: a bundle directory packed as a deterministic tar, split into chunks,
//! reassembled, verified and unpacked.
//!
//! The tar holds exactly `manifest.toml`, the model file it names and (v3) the drift reference
//! profile `[monitoring]` names, sorted by name, as
//! ustar entries with mtime 0, uid/gid 0, no owner names and mode 0644: the same bundle
//! gives the same bytes, hence the same sha256, on any machine. Verification compares the
//! sha256 of the whole tar with the version record's *before* anything is unpacked;
//! unpacking writes only plain files with one-segment names (no paths, links or devices).
use crate::error::{RegistryError, Result};
use crate::records::valid_id;
use argus_model::manifest::plain_file_name;
use argus_model::Manifest;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A bundle checked and packed, ready to register.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The manifest, validated.
    pub manifest: Manifest,
    /// `manifest.toml` as JSON (what the version record carries).
    pub manifest_json: serde_json::Value,
    /// The deterministic tar.
    pub tar: Vec<u8>,
    /// sha256 of `tar`, lowercase hex.
    pub sha256: String,
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks the bundle in `dir` (manifest valid, model file present with the manifest's
/// sha256, name and version usable as keys) and packs it.
pub fn pack(dir: &Path) -> Result<Packed> {
    let manifest = Manifest::load(dir).map_err(|e| RegistryError::bundle(dir, e.to_string()))?;
    for (what, id) in [("name", &manifest.name), ("version", &manifest.version)] {
        if !valid_id(id) {
            return Err(RegistryError::bundle(
                dir,
                format!(
                    "{what} {id:?} must be 1-128 of A-Z a-z 0-9 . _ - (it is part of record keys)"
                ),
            ));
        }
    }
    let file = manifest.model.file.clone();
    if !plain_file_name(&file) || file == MANIFEST {
        return Err(RegistryError::bundle(
            dir,
            format!("model.file {file:?} must be a file name in the bundle directory (no path)"),
        ));
    }
    let text = read(&dir.join(MANIFEST))?;
    let model = read(&dir.join(&file))?;
    let actual = sha256_hex(&model);
    if actual != manifest.model.sha256 {
        return Err(RegistryError::bundle(
            dir,
            format!(
                "{file} has sha256 {actual} but the manifest says {}: fix model.sha256 or the file",
                manifest.model.sha256
            ),
        ));
    }
    let mut files = vec![(MANIFEST.to_string(), text.clone()), (file, model)];
    // The drift reference profile travels with the model ([monitoring] profile, v3).
    for extra in manifest.files().into_iter().skip(1) {
        files.push((extra.to_string(), read(&dir.join(extra))?));
    }
    let table: toml::Table = toml::from_str(&String::from_utf8_lossy(&text))
        .map_err(|e| RegistryError::bundle(dir, e.to_string()))?;
    let manifest_json =
        serde_json::to_value(table).map_err(|e| RegistryError::bundle(dir, e.to_string()))?;
    let tar = tar_files(&files)?;
    let sha256 = sha256_hex(&tar);
    Ok(Packed {
        manifest,
        manifest_json,
        tar,
        sha256,
    })
}

const MANIFEST: &str = "manifest.toml";

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| RegistryError::bundle(path, format!("cannot read: {e}")))
}

/// The deterministic tar of `files` (name, bytes), sorted by name.
pub fn tar_files(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let io = |e| RegistryError::file("<artifact tar>", e);
    for (name, bytes) in sorted {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).map_err(io)?;
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, bytes.as_slice()).map_err(io)?;
    }
    builder.into_inner().map_err(io)
}

/// Chunk count of an artifact of `bytes` bytes in chunks of `chunk_bytes`.
pub fn chunk_count(bytes: u64, chunk_bytes: u64) -> u64 {
    bytes.div_ceil(chunk_bytes.max(1)).max(1)
}

/// Reassembles chunks `0..count` into the artifact. A missing chunk or too few bytes is
/// [`RegistryError::Truncated`]; the caller still verifies the sha256.
pub fn assemble(
    name: &str,
    version: &str,
    count: u32,
    want: u64,
    chunks: &BTreeMap<u32, Vec<u8>>,
) -> Result<Vec<u8>> {
    let have: u64 = (0..count)
        .filter_map(|i| chunks.get(&i))
        .map(|c| c.len() as u64)
        .sum();
    let truncated = || RegistryError::Truncated {
        name: name.into(),
        version: version.into(),
        have,
        want,
    };
    if (0..count).any(|i| !chunks.contains_key(&i)) || have < want {
        return Err(truncated());
    }
    let mut out = Vec::with_capacity(usize::try_from(have).unwrap_or(0));
    for i in 0..count {
        out.extend_from_slice(chunks.get(&i).ok_or_else(truncated)?);
    }
    Ok(out)
}

/// Compares the artifact's sha256 with the record's: [`RegistryError::Tampered`] if not.
pub fn verify(name: &str, version: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(RegistryError::Tampered {
            name: name.into(),
            version: version.into(),
            expected: expected.into(),
            actual,
        })
    }
}

/// Unpacks a verified artifact into `dest` (created; must not exist): plain files with
/// one-segment names only.
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<()> {
    let bad = |reason: String| RegistryError::bundle(dest, reason);
    std::fs::create_dir_all(dest).map_err(|e| RegistryError::file(dest, e))?;
    let mut archive = tar::Archive::new(bytes);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("artifact tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("artifact tar: {e}")))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular || !plain_file_name(&name) {
            return Err(bad(format!("artifact entry {name:?} is not a plain file")));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("artifact entry {name}: {e}")))?;
        let path = dest.join(&name);
        std::fs::write(&path, data).map_err(|e| RegistryError::file(&path, e))?;
    }
    Ok(())
}

/// Whether `dir` holds a bundle whose model file matches its manifest (a cache hit).
pub fn bundle_ok(dir: &Path) -> bool {
    Manifest::load(dir).is_ok_and(|m| {
        std::fs::read(dir.join(&m.model.file)).is_ok_and(|b| sha256_hex(&b) == m.model.sha256)
            && m.files().iter().all(|f| dir.join(f).is_file())
    })
}

/// The cache directory of a version: `cache_dir/<name>/<version>-<sha12>`.
pub fn cache_path(cache_dir: &Path, name: &str, version: &str, sha256: &str) -> PathBuf {
    cache_dir
        .join(name)
        .join(format!("{version}-{}", sha256.get(..12).unwrap_or(sha256)))
}

#[cfg(test)]
#[path = "artifact_tests.rs"]
mod tests;
