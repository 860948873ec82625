//! The registry against a real broker (`scripts/kafka start`; `ARGUS_TEST_BROKERS`, default
//! 127.0.0.1:9092): every test uses its own topic and cache directory, so they run in
//! parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_kafka::rdkafka::consumer::Consumer;
use argus_kafka::rdkafka::message::Message;
use argus_kafka::rdkafka::producer::FutureRecord;
use argus_kafka::KafkaSettings;
use argus_registry::{
    artifact, ArtifactTarget, Change, Lineage, RegisterOptions, Registry, RegistryError,
    RegistrySettings, Stage,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn kafka() -> KafkaSettings {
    KafkaSettings::new(
        std::env::var("ARGUS_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    )
}

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// `models/<name>` copied (manifest and the files it names) to `to/<dir>`, with `version` in
/// its manifest.
fn bundle(name: &str, version: &str, to: &Path) -> PathBuf {
    let dir = to.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = argus_model::Manifest::load(&models().join(name)).unwrap();
    for f in manifest.files() {
        std::fs::copy(models().join(name).join(f), dir.join(f)).unwrap();
    }
    let text = std::fs::read_to_string(models().join(name).join("manifest.toml")).unwrap();
    let text = text.replacen("version = \"1\"", &format!("version = \"{version}\""), 1);
    std::fs::write(dir.join("manifest.toml"), text).unwrap();
    dir
}

struct Fixture {
    registry: Registry,
    topic: String,
    tmp: tempfile::TempDir,
}

impl Fixture {
    async fn new(chunk_bytes: u64) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let topic = format!("argus.models.test-{}", uuid::Uuid::new_v4().simple());
        let settings = RegistrySettings {
            topic: topic.clone(),
            chunk_bytes,
            cache_dir: Some(tmp.path().join("cache")),
            ..RegistrySettings::default()
        };
        let registry = Registry::open(&kafka(), settings).await.unwrap();
        Fixture {
            registry,
            topic,
            tmp,
        }
    }

    async fn produce(&self, key: &str, value: Option<&[u8]>) {
        let producer = kafka().producer("test").unwrap();
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
            .partition(0)
            .key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    }

    /// Every (key, JSON value) of the topic, version and deploy records only.
    async fn json_records(&self) -> Vec<(String, serde_json::Value)> {
        let consumer = kafka().reader("test").unwrap();
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, 0, Duration::from_secs(10))
            .unwrap();
        let mut tpl = argus_kafka::rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, argus_kafka::rdkafka::Offset::Offset(low))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let mut next = low;
        while next < high {
            let m = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
                .await
                .unwrap()
                .unwrap();
            next = m.offset() + 1;
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            if !key.starts_with("chunk/") {
                if let Some(p) = m.payload() {
                    out.push((key, serde_json::from_slice(p).unwrap()));
                }
            }
        }
        out
    }

    async fn drop_topic(self) {
        argus_kafka::delete_topics(&kafka(), std::slice::from_ref(&self.topic))
            .await
            .unwrap();
    }
}

fn opts(by: &str) -> RegisterOptions {
    RegisterOptions {
        by: by.into(),
        reason: "trained".into(),
        lineage: Lineage::default(),
        artifact: ArtifactTarget::Chunks,
    }
}

fn forced(reason: &str) -> Change {
    Change {
        by: "ann@host".into(),
        reason: reason.into(),
        forced: true,
        gate: None,
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(file);
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_models_life_register_promote_canary_rollback_archive_fetch_and_follow() {
    let f = Fixture::new(256 * 1024).await;
    let r = &f.registry;
    let mut follow = r.follow("churn").unwrap();
    tokio::time::timeout(Duration::from_secs(20), follow.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(follow.borrow_and_update().is_none(), "no deployment yet");

    let v1 = r
        .register(&models().join("churn"), opts("ann@host"))
        .await
        .unwrap();
    let again = r
        .register(&models().join("churn"), opts("bob@host"))
        .await
        .unwrap();
    assert_eq!(
        again, v1,
        "the same bundle again returns the record on file"
    );
    let cam = r
        .register(&models().join("camera-person"), opts("ann@host"))
        .await
        .unwrap();
    assert_eq!(
        cam.artifact,
        argus_registry::ArtifactLocation::Chunks {
            chunks: 4,
            chunk_bytes: 256 * 1024,
            bytes: artifact::pack(&models().join("camera-person"))
                .unwrap()
                .tar
                .len() as u64,
        }
    );
    let v2_dir = bundle("churn", "2", f.tmp.path());
    let mut o = opts("ann@host");
    o.lineage.parent_version = Some("1".into());
    let v2 = r.register(&v2_dir, o).await.unwrap();
    assert_ne!(v1.sha256, v2.sha256);
    let state = r.state().await.unwrap();
    assert_eq!(state.versions["churn"].len(), 2);
    assert_eq!(state.versions["camera-person"].len(), 1);

    let e = r
        .set_stage("churn", "1", Stage::Production, Change::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, RegistryError::GateRequired { .. }), "{e}");
    let d = r
        .set_stage(
            "churn",
            "1",
            Stage::Production,
            forced("first release"),
            None,
        )
        .await
        .unwrap();
    assert_eq!((d.production.as_deref(), d.revision), (Some("1"), 1));
    tokio::time::timeout(Duration::from_secs(20), follow.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(follow.borrow_and_update().as_ref().unwrap().revision, 1);

    let d = r
        .set_stage("churn", "2", Stage::Canary, forced("try it"), Some(0.2))
        .await
        .unwrap();
    assert_eq!(d.canary.as_ref().unwrap().share, 0.2);
    let d = r
        .set_stage("churn", "2", Stage::Production, forced("better"), None)
        .await
        .unwrap();
    assert_eq!((d.production.as_deref(), d.revision), (Some("2"), 3));
    assert!(d.canary.is_none());
    let d = r.rollback("churn", forced("worse live")).await.unwrap();
    assert_eq!((d.production.as_deref(), d.revision), (Some("1"), 4));
    loop {
        tokio::time::timeout(Duration::from_secs(20), follow.changed())
            .await
            .unwrap()
            .unwrap();
        if follow.borrow_and_update().as_ref().unwrap().revision == 4 {
            break;
        }
    }
    let e = r.archive("churn", "1", forced("old")).await.unwrap_err();
    assert!(matches!(e, RegistryError::Transition { .. }), "{e}");
    let archived = r.archive("churn", "2", forced("worse")).await.unwrap();
    assert_eq!(archived.stage, Stage::Archived);
    let state = r.state().await.unwrap();
    let v1 = state.version("churn", "1").unwrap();
    assert_eq!(v1.stage, Stage::Production);
    let actions: Vec<&str> = v1.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, ["register", "promote", "demote", "rollback"]);
    assert!(v1.history[1].forced && v1.history[1].reason == "first release");

    let started = std::time::Instant::now();
    let dir = r.fetch("churn", "1").await.unwrap();
    let first = started.elapsed();
    assert!(
        dir.ends_with(format!("churn/1-{}", v1.sha12())),
        "{}",
        dir.display()
    );
    let m = argus_model::Manifest::load(&dir).unwrap();
    assert_eq!((m.name.as_str(), m.version.as_str()), ("churn", "1"));
    assert!(artifact::bundle_ok(&dir));
    let started = std::time::Instant::now();
    assert_eq!(r.fetch("churn", "1").await.unwrap(), dir);
    eprintln!(
        "fetch churn@1 (3.9 MB, 15 chunks): {first:?}; from the cache: {:?}",
        started.elapsed()
    );
    let e = r.fetch("churn", "9").await.unwrap_err();
    assert!(matches!(e, RegistryError::Unknown { .. }), "{e}");

    let versions = validator("model-version.v1.schema.json");
    let deployments = validator("model-deployment.v1.schema.json");
    let records = f.json_records().await;
    assert!(records.len() >= 12, "{}", records.len());
    for (key, value) in &records {
        let v = if key.starts_with("deploy/") {
            &deployments
        } else {
            &versions
        };
        let errors: Vec<String> = v.iter_errors(value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{key}: {errors:?}");
    }
    drop(follow);
    f.drop_topic().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_truncated_and_missing_artifacts_are_refused_and_never_unpacked() {
    let f = Fixture::new(512 * 1024).await;
    let r = &f.registry;
    let churn = r
        .register(&models().join("churn"), opts("ann@host"))
        .await
        .unwrap();
    let cam = r
        .register(&models().join("camera-person"), opts("ann@host"))
        .await
        .unwrap();
    let tar = f.tmp.path().join("artifacts/churn-2.tar");
    let mut o = opts("ann@host");
    o.artifact = ArtifactTarget::Uri(format!("file://{}", tar.display()));
    let uri = r
        .register(&bundle("churn", "2", f.tmp.path()), o)
        .await
        .unwrap();
    assert!(tar.exists(), "register wrote the file:// artifact");
    assert!(matches!(
        uri.artifact,
        argus_registry::ArtifactLocation::Uri { .. }
    ));
    r.fetch("churn", "2").await.unwrap();
    let cache = f.tmp.path().join("cache");
    std::fs::remove_dir_all(&cache).unwrap();

    // A different chunk written under the same key (what compaction keeps is the last one).
    f.produce("chunk/churn/1/000001", Some(&vec![7u8; 512 * 1024]))
        .await;
    match r.fetch("churn", "1").await.unwrap_err() {
        RegistryError::Tampered {
            expected, actual, ..
        } => {
            assert_eq!(expected, churn.sha256);
            assert_ne!(actual, churn.sha256);
        }
        e => panic!("{e}"),
    }
    // A chunk deleted (tombstone): the artifact is short.
    f.produce("chunk/camera-person/1/000001", None).await;
    match r.fetch("camera-person", "1").await.unwrap_err() {
        RegistryError::Truncated { have, want, .. } => {
            let argus_registry::ArtifactLocation::Chunks { bytes, .. } = cam.artifact else {
                panic!()
            };
            assert!(bytes > 512 * 1024, "two chunks");
            assert_eq!((have, want), (512 * 1024, bytes), "chunk 1 of 2 deleted");
        }
        e => panic!("{e}"),
    }
    std::fs::remove_file(&tar).unwrap();
    let e = r.fetch("churn", "2").await.unwrap_err();
    assert!(matches!(e, RegistryError::Missing { .. }), "{e}");
    assert!(e.to_string().contains("file://"), "{e}");
    std::fs::write(&tar, b"not the artifact").unwrap();
    let e = r.fetch("churn", "2").await.unwrap_err();
    assert!(matches!(e, RegistryError::Tampered { .. }), "{e}");
    let unpacked: Vec<_> = walk(&cache);
    assert!(unpacked.is_empty(), "nothing unpacked: {unpacked:?}");
    f.drop_topic().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_an_error_not_a_hang() {
    let settings = RegistrySettings {
        topic: "argus.models".into(),
        timeout: Duration::from_secs(1),
        ..RegistrySettings::default()
    };
    let started = std::time::Instant::now();
    let e = Registry::open(&KafkaSettings::new("127.0.0.1:1"), settings)
        .await
        .unwrap_err();
    assert!(!e.is_usage(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
