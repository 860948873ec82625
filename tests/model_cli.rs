//! `argus model` as users run it, against the real broker: register, list, show, promote,
//! rollback, archive; the JSON it prints validates against the registry schemas; the exit
//! codes: 64 for what the user must fix, 1 (not a panic) when Kafka does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::{argus_bin, brokers, copy_bundle_files, repo_root, unique};
use std::process::Output;

struct Cli {
    topic: String,
    cache: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            topic: unique("argus.models.cli"),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(argus_bin())
            .arg("model")
            .args(args)
            .env("ARGUS_KAFKA__BROKERS", brokers())
            .env("ARGUS_REGISTRY__TOPIC", &self.topic)
            .env("ARGUS_REGISTRY__CACHE_DIR", self.cache.path())
            .env("ARGUS_MODEL_BY", "ci@test")
            .env("RUST_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("argus runs")
    }

    /// Runs and expects exit `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "argus model {args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn stderr(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "argus model {args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("schemas").join(file)).unwrap())
            .unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn assert_valid(v: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = v.iter_errors(value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{value:#}");
}

#[test]
fn register_promote_rollback_archive_from_the_command_line() {
    let cli = Cli::new();
    let churn = repo_root().join("models/churn");
    let v2 = cli.cache.path().join("churn-2");
    std::fs::create_dir_all(&v2).unwrap();
    copy_bundle_files(&churn, &v2);
    let manifest = std::fs::read_to_string(churn.join("manifest.toml")).unwrap();
    std::fs::write(
        v2.join("manifest.toml"),
        manifest.replacen("version = \"1\"", "version = \"2\"", 1),
    )
    .unwrap();
    let versions = validator("model-version.v1.schema.json");
    let deployments = validator("model-deployment.v1.schema.json");

    let out = cli.expect(
        0,
        &[
            "register",
            churn.to_str().unwrap(),
            "--reason",
            "baseline",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_valid(&versions, &v);
    assert_eq!(v["history"][0]["by"], "ci@test");
    cli.expect(
        0,
        &[
            "register",
            v2.to_str().unwrap(),
            "--parent",
            "1",
            "--reason",
            "retrained",
        ],
    );
    let table = cli.expect(0, &["list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.starts_with("churn")).count(),
        2,
        "{table}"
    );

    let e = cli.stderr(64, &["promote", "churn@1", "--to", "production"]);
    assert!(e.contains("gate"), "{e}");
    let e = cli.stderr(64, &["promote", "churn@1", "--to", "production", "--force"]);
    assert!(e.contains("--reason"), "{e}");
    cli.expect(
        0,
        &[
            "promote",
            "churn@1",
            "--to",
            "production",
            "--force",
            "--reason",
            "first",
        ],
    );
    let out = cli.expect(
        0,
        &[
            "promote",
            "churn@2",
            "--to",
            "production",
            "--force",
            "--reason",
            "replaces 1 (the gate runs in tests/lifecycle.rs)",
            "--json",
        ],
    );
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_valid(&deployments, &d);
    assert_eq!(
        (d["production"].as_str(), d["revision"].as_u64()),
        (Some("2"), Some(2))
    );

    let out = cli.expect(0, &["show", "churn@2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_valid(&versions, &v);
    let promoted = &v["history"][1];
    assert_eq!(
        (
            promoted["forced"].as_bool(),
            promoted["reason"].as_str(),
            promoted["gate"].is_null()
        ),
        (
            Some(true),
            Some("replaces 1 (the gate runs in tests/lifecycle.rs)"),
            true
        )
    );

    let e = cli.stderr(64, &["rollback", "churn"]);
    assert!(e.contains("--reason"), "{e}");
    let out = cli.expect(
        0,
        &["rollback", "churn", "--reason", "worse live", "--json"],
    );
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["production"], "1");
    let e = cli.stderr(64, &["archive", "churn@1", "--reason", "old"]);
    assert!(e.contains("serves as production"), "{e}");
    cli.expect(0, &["archive", "churn@2", "--reason", "worse"]);
    let shown = cli.expect(0, &["show", "churn"]);
    assert!(shown.contains("production  1"), "{shown}");

    for (args, says) in [
        (vec!["show", "churn@9"], "not registered"),
        (vec!["show", "nope"], "not registered"),
        (vec!["promote", "churn@2", "--to", "canary"], "archived"),
        (vec!["register", "/nonexistent-bundle"], "bad bundle"),
        (vec!["promote", "churn", "--to", "shadow"], "NAME@VERSION"),
    ] {
        let e = cli.stderr(64, &args);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    let e = cli.stderr(64, &["promote", "churn@1", "--to", "prod"]);
    assert!(e.contains("production"), "{e}");
}

#[test]
fn an_unreachable_broker_exits_1_with_a_message() {
    let cli = Cli::new();
    let out = std::process::Command::new(argus_bin())
        .args(["model", "list", "--brokers", "127.0.0.1:1"])
        .env("ARGUS_REGISTRY__TIMEOUT", "1s")
        .env_remove("RUST_BACKTRACE")
        .env("ARGUS_REGISTRY__CACHE_DIR", cli.cache.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is the broker reachable"), "{stderr}");
}
