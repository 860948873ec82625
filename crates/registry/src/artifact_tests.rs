//! Unit tests of packing, chunking, verification and unpacking (no broker).
#![allow(clippy::unwrap_used)]
use super::*;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// A copy of `models/<name>` (the manifest and the files it names, nothing else) in a
/// temp dir.
pub(crate) fn copy_bundle(name: &str, to: &Path) -> PathBuf {
    let dir = to.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = argus_model::Manifest::load(&models().join(name)).unwrap();
    for f in std::iter::once("manifest.toml").chain(manifest.files()) {
        std::fs::copy(models().join(name).join(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn the_same_bundle_packs_to_the_same_bytes_wherever_it_lies() {
    let a = pack(&models().join("churn")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_bundle("churn", tmp.path());
    std::fs::write(dir.join("README.md"), "not packed").unwrap();
    let b = pack(&dir).unwrap();
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(a.tar, b.tar);
    assert_eq!(a.manifest_json["name"], "churn");
    assert_eq!(a.manifest_json["model"]["engine"], "trees");
    let mut archive = tar::Archive::new(a.tar.as_slice());
    let names: Vec<(String, u64, u32, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.mtime().unwrap(),
                h.mode().unwrap(),
                h.uid().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("background.json".into(), 0, 0o644, 0),
            ("manifest.toml".into(), 0, 0o644, 0),
            ("model.onnx".into(), 0, 0o644, 0),
            ("tree_covers.json".into(), 0, 0o644, 0)
        ],
        "the manifest and the files it names (the model, [explain]'s covers and background), by name"
    );
}

#[test]
fn a_bundle_whose_model_does_not_match_its_manifest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_bundle("churn", tmp.path());
    let mut model = std::fs::read(dir.join("model.onnx")).unwrap();
    model[100] ^= 1;
    std::fs::write(dir.join("model.onnx"), model).unwrap();
    let e = pack(&dir).unwrap_err();
    assert!(
        matches!(e, RegistryError::BadBundle { .. }) && e.is_usage(),
        "{e}"
    );
    assert!(e.to_string().contains("fix model.sha256"), "{e}");
    let e = pack(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("cannot read manifest"), "{e}");
    let dir = copy_bundle("camera-person", tmp.path());
    let text = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let text = text.replace("version = \"1\"", "version = \"1/2\"");
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
    let e = pack(&dir).unwrap_err();
    assert!(e.to_string().contains("part of record keys"), "{e}");
}

#[test]
fn chunks_reassemble_and_a_missing_or_altered_chunk_is_refused() {
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let sha = sha256_hex(&bytes);
    let chunk = 4096;
    let n = chunk_count(bytes.len() as u64, chunk) as u32;
    assert_eq!(n, 3);
    assert_eq!(chunk_count(8192, 4096), 2);
    let mut chunks: BTreeMap<u32, Vec<u8>> = bytes
        .chunks(chunk as usize)
        .enumerate()
        .map(|(i, c)| (i as u32, c.to_vec()))
        .collect();
    let whole = assemble("m", "1", n, bytes.len() as u64, &chunks).unwrap();
    assert_eq!(whole, bytes);
    verify("m", "1", &sha, &whole).unwrap();

    let mut tampered = chunks.clone();
    tampered.get_mut(&1).unwrap()[0] ^= 0xff;
    let whole = assemble("m", "1", n, bytes.len() as u64, &tampered).unwrap();
    match verify("m", "1", &sha, &whole).unwrap_err() {
        RegistryError::Tampered {
            expected, actual, ..
        } => {
            assert_eq!(expected, sha);
            assert_eq!(actual, sha256_hex(&whole));
        }
        e => panic!("{e}"),
    }
    chunks.remove(&1);
    match assemble("m", "1", n, bytes.len() as u64, &chunks).unwrap_err() {
        RegistryError::Truncated { have, want, .. } => {
            assert_eq!((have, want), (10_000 - 4096, 10_000))
        }
        e => panic!("{e}"),
    }
}

#[test]
fn unpack_writes_the_bundle_and_refuses_paths() {
    let packed = pack(&models().join("camera-person")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dest = cache_path(tmp.path(), "camera-person", "1", &packed.sha256);
    assert!(dest.ends_with(format!("camera-person/1-{}", &packed.sha256[..12])));
    unpack(&packed.tar, &dest).unwrap();
    assert!(bundle_ok(&dest));
    std::fs::write(dest.join("model.onnx"), b"x").unwrap();
    assert!(!bundle_ok(&dest));

    let mut header = tar::Header::new_ustar();
    header.set_size(1);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header, "sub/evil", &b"x"[..]).unwrap();
    let evil = b.into_inner().unwrap();
    let e = unpack(&evil, &tmp.path().join("evil")).unwrap_err();
    assert!(e.to_string().contains("not a plain file"), "{e}");
}

/// A bundle's drift reference profile (v3 and later) travels in the tar, unpacks beside the model and
/// is part of a cache hit; a bundle that names a profile it lacks is refused.
#[test]
fn a_v3_bundle_carries_its_reference_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_bundle("churn", tmp.path());
    let text = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let text = text.replace("argus.bundle/v2", "argus.bundle/v3")
        + "\n[monitoring]\nprofile = \"reference.json\"\ngate_metric = \"roc_auc\"\n";
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
    let e = pack(&dir).unwrap_err();
    assert!(e.to_string().contains("reference.json"), "{e}");
    std::fs::write(dir.join("reference.json"), b"{\"profile\": 1}").unwrap();
    let packed = pack(&dir).unwrap();
    let out = tmp.path().join("out");
    unpack(&packed.tar, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("reference.json")).unwrap(),
        b"{\"profile\": 1}"
    );
    assert!(bundle_ok(&out));
    std::fs::remove_file(out.join("reference.json")).unwrap();
    assert!(
        !bundle_ok(&out),
        "a cache entry without its profile is no hit"
    );
}
