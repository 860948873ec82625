//! Telemetry in one place (no broker needed): every metric name is declared once, in a
//! crate's `metrics.rs`, and described there; nowhere else in the Rust sources is a
//! `"argus_…` string literal written. The exported names are pinned below, so a rename
//! fails here until `CHANGELOG.md` and `docs/workers.md` say so and the list follows.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Files allowed to write metric names besides the `metrics.rs` modules, with the reason.
const ALLOWED: &[(&str, &str)] = &[("tests/metric_names.rs", "this test: the pinned names below")];

/// Every exported metric name. Renaming one is a breaking change for dashboards and alerts:
/// record it in `CHANGELOG.md` and `docs/workers.md`, then update this list.
const NAMES: &[&str] = &[
    "argus_build_info",
    "argus_drain_seconds",
    "argus_drift_alarm_state",
    "argus_drift_cbpe_estimated_metric",
    "argus_drift_dataset_drift",
    "argus_drift_dataset_share_drifted",
    "argus_drift_feature_p_value",
    "argus_drift_feature_q_value",
    "argus_drift_feature_statistic",
    "argus_drift_feature_status",
    "argus_drift_last_window_end_unix_seconds",
    "argus_drift_pane_merge_partials",
    "argus_drift_partials_duplicate_total",
    "argus_drift_partials_failed_total",
    "argus_drift_partials_published_total",
    "argus_drift_records_invalid_total",
    "argus_drift_records_late_total",
    "argus_drift_records_total",
    "argus_drift_reference_info",
    "argus_drift_reference_load_failures_total",
    "argus_drift_reference_switches_total",
    "argus_drift_reports_total",
    "argus_drift_segments_unexported_total",
    "argus_drift_watermark_unix_seconds",
    "argus_drift_window_eval_seconds",
    "argus_falling_behind",
    "argus_kafka_commit_failures_total",
    "argus_kafka_consumer_lag_records",
    "argus_kafka_rebalances_total",
    "argus_model_info",
    "argus_model_inputs_total",
    "argus_model_load_failures_total",
    "argus_model_plans_built_total",
    "argus_model_prepare_seconds",
    "argus_model_serving",
    "argus_model_swap_seconds",
    "argus_model_swaps_total",
    "argus_producer_bad_rows_total",
    "argus_producer_dropped_total",
    "argus_producer_frames_total",
    "argus_producer_labels_total",
    "argus_producer_source_frames_total",
    "argus_producer_source_reconnects_total",
    "argus_quality_alarm_state",
    "argus_quality_alerts_total",
    "argus_quality_estimate_error",
    "argus_quality_join_held",
    "argus_quality_join_total",
    "argus_quality_label_coverage",
    "argus_quality_label_delay_seconds",
    "argus_quality_metric",
    "argus_quality_reports_total",
    "argus_registry_deployment_revision",
    "argus_registry_fetch_failures_total",
    "argus_registry_fetch_seconds",
    "argus_registry_fetches_total",
    "argus_serve_in_flight_requests",
    "argus_serve_rejected_total",
    "argus_serve_request_seconds",
    "argus_serve_requests_total",
    "argus_shadow_compared_total",
    "argus_shadow_failures_total",
    "argus_shadow_score_difference",
    "argus_worker_abandoned_total",
    "argus_worker_arrival_records_per_second",
    "argus_worker_batch_seconds",
    "argus_worker_batch_size",
    "argus_worker_commit_seconds",
    "argus_worker_consumer_errors_total",
    "argus_worker_dlq_total",
    "argus_worker_end_to_end_seconds",
    "argus_worker_evidence_overlay_failures_total",
    "argus_worker_evidence_pool_saturation",
    "argus_worker_evidence_seconds",
    "argus_worker_evidence_skipped_total",
    "argus_worker_in_flight",
    "argus_worker_in_flight_bytes",
    "argus_worker_uncommitted_inputs",
    "argus_worker_inference_queue_seconds",
    "argus_worker_inference_seconds",
    "argus_worker_info",
    "argus_worker_inputs_total",
    "argus_worker_lag_records",
    "argus_worker_lag_seconds",
    "argus_worker_max_batch",
    "argus_worker_offset_store_failures_total",
    "argus_worker_oldest_in_flight_seconds",
    "argus_worker_outputs_total",
    "argus_worker_partition_drain_seconds",
    "argus_worker_partition_stuck",
    "argus_worker_paused",
    "argus_worker_pauses_total",
    "argus_worker_processing_records_per_second",
    "argus_worker_processing_seconds",
    "argus_worker_rejoins_total",
    "argus_worker_stale_total",
    "argus_worker_transaction_commit_seconds",
    "argus_worker_transactions_total",
    "argus_worker_zone_alerts_total",
    "argus_worker_zone_rebuild_seconds",
    "argus_worker_zone_rebuilds_total",
    "argus_worker_zone_replayed_frames_total",
    "argus_worker_zone_snapshot_failures_total",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The Rust sources of the workspace (build output, VCS data and hidden directories
/// skipped; markdown is not Rust, so docs are not walked).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source tree") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .expect("under the root")
        .to_string_lossy()
        .replace('\\', "/")
}

/// `(line number, name)` of every `"argus_…` string literal in `text`.
fn literals(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("\"argus_") {
            let tail = &rest[at + 1..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            found.push((i + 1, tail[..end].to_owned()));
            rest = &tail[end..];
        }
    }
    found
}

#[test]
fn metric_names_are_written_only_in_metrics_modules() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(
        files.len() > 50,
        "walked the workspace: {} files",
        files.len()
    );
    let mut offenders = Vec::new();
    for path in &files {
        let rel = relative(path);
        if rel.ends_with("/metrics.rs") || ALLOWED.iter().any(|(f, _)| *f == rel) {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("utf-8 source");
        for (line, name) in literals(&text) {
            offenders.push(format!("{rel}:{line}: \"{name}\""));
        }
    }
    assert!(
        offenders.is_empty(),
        "metric names belong in a crate's metrics.rs (a described constant); found:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn every_declared_metric_is_described_and_pinned() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    let mut declared = BTreeSet::new();
    for path in files.iter().filter(|p| p.ends_with("metrics.rs")) {
        let rel = relative(path);
        let text = std::fs::read_to_string(path).expect("utf-8 source");
        for line in text.lines() {
            // `pub const NAME: &str = "argus_…";`
            let Some(decl) = line.trim().strip_prefix("pub const ") else {
                continue;
            };
            let Some((ident, value)) = decl.split_once(": &str = \"") else {
                continue;
            };
            let Some(name) = value.strip_suffix("\";") else {
                continue;
            };
            if !name.starts_with("argus_") {
                continue;
            }
            let described = [
                "describe_counter!(",
                "describe_gauge!(",
                "describe_histogram!(",
            ]
            .iter()
            .any(|m| {
                text.contains(&format!("{m}{ident},"))
                    || text.contains(&format!("{m}\n        {ident},"))
            });
            assert!(described, "{rel}: {ident} ({name}) has no describe_*! call");
            assert!(
                declared.insert(name.to_owned()),
                "{name} declared twice (second time in {rel})"
            );
        }
    }
    let pinned: BTreeSet<String> = NAMES.iter().map(|s| (*s).to_owned()).collect();
    let added: Vec<_> = declared.difference(&pinned).collect();
    let gone: Vec<_> = pinned.difference(&declared).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "metric names changed (record renames in CHANGELOG.md and docs/workers.md, then \
         update NAMES): new {added:?}, gone {gone:?}"
    );
}

#[test]
fn literal_scanner_finds_names() {
    let found = literals("a(\"argus_x_total\"); b(\"other\", r#\"argus_y{le=\"1\"}\"#)");
    let names: Vec<_> = found.into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["argus_x_total", "argus_y"]);
}
