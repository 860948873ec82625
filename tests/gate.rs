//! The promotion gate as an operator runs it (no broker): `argus model evaluate` writes the
//! same bytes twice; `argus model compare` exits 0 for a significantly better candidate, 1
//! for one that is not, 64 for evaluations of different test sets or a bad test set.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the argus binary; returns (exit code, stdout, stderr).
fn argus(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(argus_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn evaluate(bundle: &str, test_set: &Path, out: &Path) -> (i32, String, String) {
    let bundle = repo_root().join(bundle);
    argus(&[
        "model",
        "evaluate",
        bundle.to_str().unwrap(),
        "--test-set",
        test_set.to_str().unwrap(),
        "--label-column",
        "churned",
        "--id-column",
        "customer_id",
        "--out",
        out.to_str().unwrap(),
    ])
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("argus-gate"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn evaluate_and_compare_from_the_command_line() {
    let dir = scratch();
    let test_set = repo_root().join("models/gate/churn-test.csv");
    let eval = |name: &str, bundle: &str| {
        let out = dir.join(name);
        let (code, stdout, stderr) = evaluate(bundle, &test_set, &out);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(
            stdout.contains("roc_auc") && stdout.contains("<- judged"),
            "{stdout}"
        );
        out
    };
    let v1 = eval("v1.json", "models/churn");
    let v1_again = eval("v1-again.json", "models/churn");
    let v2 = eval("v2.json", "models/gate/churn-v2");
    let v3 = eval("v3.json", "models/gate/churn-v3");
    assert_eq!(
        std::fs::read(&v1).unwrap(),
        std::fs::read(&v1_again).unwrap()
    );
    let compare =
        |c: &Path, p: &Path| argus(&["model", "compare", c.to_str().unwrap(), p.to_str().unwrap()]);
    let (code, stdout, _) = compare(&v1, &v2);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    let (code, stdout, stderr) = compare(&v1, &v3);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("not significantly"), "{stderr}");
    let (code, _, stderr) = compare(&v2, &v1);
    assert_eq!(code, 1, "{stderr}");
    // JSON decision.
    let (code, stdout, _) = argus(&[
        "model",
        "compare",
        v1.to_str().unwrap(),
        v2.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let d: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(d["passed"], true);
    assert_eq!(d["test"], "delong");

    // A different test set: refused as bad input.
    let head: String = std::fs::read_to_string(&test_set)
        .unwrap()
        .lines()
        .take(200)
        .map(|l| format!("{l}\n"))
        .collect();
    let small_set = dir.join("small.csv");
    std::fs::write(&small_set, head).unwrap();
    let small = dir.join("small.json");
    assert_eq!(evaluate("models/churn", &small_set, &small).0, 0);
    let (code, _, stderr) = compare(&small, &v1);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("different test sets"), "{stderr}");
    // A bad test set: no label column.
    let (code, _, stderr) = argus(&[
        "model",
        "evaluate",
        repo_root().join("models/churn").to_str().unwrap(),
        "--test-set",
        test_set.to_str().unwrap(),
    ]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("no column \"label\""), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
