//! Secured clusters on the real broker (`scripts/kafka` opens a SASL_SSL listener with SCRAM
//! and PLAIN users and an mTLS listener; `scripts/test` exports their settings): the
//! `argus` binary produces and works through them, reads the password from the
//! environment, and a wrong password stops start-up with exit 64 naming the cause — never
//! printing the password.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use argus_kafka::rdkafka::Message;
use argus_wire::Prediction;
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run the tests through scripts/test, which exports `scripts/kafka secure-env`")
    })
}

/// `argus` with SASL_SSL flags for `mechanism`; the password comes from the environment
/// (`ARGUS_KAFKA__OPTIONS__SASL_PASSWORD`), as it should in production.
fn sasl_command(mechanism: &str, password: &str) -> Command {
    let mut c = Command::new(argus_bin());
    c.env("ARGUS_KAFKA__OPTIONS__SASL_PASSWORD", password)
        .env("ARGUS_KAFKA__BROKERS", env("ARGUS_TEST_SASL_SSL_BROKERS"))
        .env("ARGUS_KAFKA__OPTIONS__SECURITY_PROTOCOL", "sasl_ssl")
        .env("ARGUS_KAFKA__OPTIONS__SASL_MECHANISM", mechanism)
        .env(
            "ARGUS_KAFKA__OPTIONS__SASL_USERNAME",
            env("ARGUS_TEST_SASL_USER"),
        )
        .env(
            "ARGUS_KAFKA__OPTIONS__SSL_CA_LOCATION",
            env("ARGUS_TEST_CA"),
        )
        .env_remove("ARGUS_BROKERS")
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "info");
    c
}

/// `argus produce` of `count` synthetic frames to `topic`, with `extra` produce flags.
fn produce_args(topic: &str, count: u32, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["produce", "--topic", topic, "--count", &count.to_string()]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend_from_slice(extra);
    args.push("synthetic".to_owned());
    args
}

fn work_args(topics: &Topics, group: &str) -> Vec<String> {
    let model = repo_root().join("models/camera-person");
    let mut args: Vec<String> = ["work", "--group", group, "--input", &topics.input]
        .iter()
        .chain(topics.output_flags().iter())
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(
        [
            "--worker-id",
            "w-secure",
            "--metrics-addr",
            "127.0.0.1:0",
            "--create-topics",
            "0",
            "--model",
            model.to_str().unwrap(),
            "--inference-threads",
            "1",
        ]
        .map(str::to_owned),
    );
    args
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn predicted(topic: &str, n: usize) -> BTreeSet<(i32, i64)> {
    let ids = |m: &[argus_kafka::rdkafka::message::OwnedMessage]| {
        m.iter()
            .filter_map(|m| serde_json::from_slice::<Prediction>(m.payload()?).ok())
            .map(|p| (p.input.partition, p.input.offset))
            .collect::<BTreeSet<_>>()
    };
    ids(&read_until(topic, Duration::from_secs(90), |m| {
        ids(m).len() >= n
    }))
}

/// Produce and work over SASL_SSL with each SCRAM mechanism and PLAIN: every frame
/// predicted (read back on the plaintext listener of the same broker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_work_over_sasl_ssl() {
    let password = env("ARGUS_TEST_SASL_PASSWORD");
    let topics = Topics::create(2).await;
    let mut sent = 0;
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] {
        let out = sasl_command(mechanism, &password)
            .args(produce_args(&topics.input, 10, &[]))
            .output()
            .unwrap();
        assert!(out.status.success(), "{mechanism}: {}", show(&out));
        sent += 10;
    }
    let mut worker = sasl_command("SCRAM-SHA-512", &password)
        .args(work_args(&topics, &unique("secure")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = predicted(&topics.predictions, sent);
    let _ = worker.kill();
    let out = worker.wait_with_output().unwrap();
    assert_eq!(
        got.len(),
        sent,
        "every frame predicted over SASL_SSL\n{}",
        show(&out)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&password),
        "the password appears in the worker's log"
    );
}

/// Wrong credentials stop `argus work` and `argus produce` at start-up: exit 64, the cause
/// named, the password not printed.
#[test]
fn a_wrong_password_fails_start_up_clearly() {
    let wrong = "not-the-password-9f2c";
    let topics = Topics {
        input: unique("frames"),
        predictions: unique("predictions"),
        alerts: unique("alerts"),
        dlq: unique("dlq"),
    };
    for args in [
        work_args(&topics, &unique("secure")),
        produce_args(&topics.input, 1, &[]),
    ] {
        let started = Instant::now();
        let mut child = sasl_command("SCRAM-SHA-512", wrong)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let text = show(&out);
        assert_eq!(out.status.code(), Some(64), "{} {text}", args[0]);
        assert!(text.contains("refused the credentials"), "{text}");
        assert!(text.contains("sasl.password"), "says what to check: {text}");
        assert!(!text.contains(wrong), "password printed: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
    }
}

/// mTLS: a client certificate signed by the cluster's CA gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_over_mutual_tls() {
    let topics = Topics::create(1).await;
    let flags: Vec<String> = [
        "--brokers".to_owned(),
        env("ARGUS_TEST_MTLS_BROKERS"),
        "-X".to_owned(),
        "security.protocol=ssl".to_owned(),
        "-X".to_owned(),
        format!("ssl.ca.location={}", env("ARGUS_TEST_CA")),
        "-X".to_owned(),
        format!("ssl.certificate.location={}", env("ARGUS_TEST_CLIENT_CERT")),
        "-X".to_owned(),
        format!("ssl.key.location={}", env("ARGUS_TEST_CLIENT_KEY")),
    ]
    .into();
    let out = Command::new(argus_bin())
        .args(produce_args(&topics.input, 5, &flags))
        .env_remove("ARGUS_BROKERS")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let got = read_until(&topics.input, Duration::from_secs(30), |m| m.len() >= 5);
    assert_eq!(got.len(), 5);
}
