//! Metric names emitted by the drift sidecar (`argus_drift_*`; the spec's `drift_*` names
//! with the project prefix). Label sets are bounded: `segment` is `*` (the fleet) or one of
//! the first `max_metric_segments` segments whose report this sidecar evaluated (see
//! [`SegmentCap`]); `feature` and `method` come from the profile.
use std::collections::BTreeSet;

/// Counter: records read. Labels: `topic`, `outcome` (sampled, skipped, late, invalid).
pub const RECORDS: &str = "argus_drift_records_total";
/// Counter: records whose pane was already final. Labels: `topic`.
pub const LATE: &str = "argus_drift_records_late_total";
/// Counter: records that yielded no features. Labels: `reason`.
pub const INVALID: &str = "argus_drift_records_invalid_total";
/// Counter: partial pane summaries published.
pub const PARTIALS: &str = "argus_drift_partials_published_total";
/// Counter: partials the broker refused (their windows lack that partition's pane).
pub const PARTIALS_FAILED: &str = "argus_drift_partials_failed_total";
/// Counter: partials rejected as duplicates (replays, overlapping offsets).
pub const DUPLICATES: &str = "argus_drift_partials_duplicate_total";
/// Gauge: partials merged into the latest window. Labels: `segment`.
pub const MERGE_PARTIALS: &str = "argus_drift_pane_merge_partials";
/// Counter: reports published. Labels: `status`.
pub const REPORTS: &str = "argus_drift_reports_total";
/// Histogram: time to merge and evaluate one window (all segments), seconds.
pub const EVAL_SECONDS: &str = "argus_drift_window_eval_seconds";
/// Gauge: a test's statistic. Labels: `segment`, `feature`, `method`.
pub const STATISTIC: &str = "argus_drift_feature_statistic";
/// Gauge: a test's p-value. Labels: `segment`, `feature`, `method`.
pub const P_VALUE: &str = "argus_drift_feature_p_value";
/// Gauge: the feature's smallest BH q-value. Labels: `segment`, `feature`.
pub const Q_VALUE: &str = "argus_drift_feature_q_value";
/// Gauge: 0 ok, 1 warn, 2 drift, −1 insufficient data. Labels: `segment`, `feature`.
pub const STATUS: &str = "argus_drift_feature_status";
/// Gauge: 1 when the window drifted (some feature significant and material). Labels: `segment`.
pub const DATASET_DRIFT: &str = "argus_drift_dataset_drift";
/// Gauge: share of tested features with status drift. Labels: `segment`.
pub const SHARE_DRIFTED: &str = "argus_drift_dataset_share_drifted";
/// Gauge: 0 ok, 1 pending, 2 firing. Labels: `segment`.
pub const ALARM: &str = "argus_drift_alarm_state";
/// Gauge: CBPE estimate. Labels: `segment`, `metric` (accuracy, accuracy_se, precision, recall, f1).
pub const CBPE: &str = "argus_drift_cbpe_estimated_metric";
/// Gauge = 1 for the reference profile in use (0 for one switched away from). Labels:
/// `reference_id`, `sha256`.
pub const REFERENCE_INFO: &str = "argus_drift_reference_info";
/// Gauge: event-time watermark lag behind the newest record, seconds, per owned partition.
/// Labels: `topic`, `partition`.
pub const WATERMARK_SECONDS: &str = "argus_drift_watermark_unix_seconds";
/// Gauge: end of the last reported window (Unix seconds). Labels: `segment`.
pub const LAST_WINDOW_END: &str = "argus_drift_last_window_end_unix_seconds";
/// Counter: segments beyond `max_metric_segments`, each counted once when its first report
/// was evaluated: still analysed and published on the reports topic, but not exported as
/// per-segment series.
pub const SEGMENTS_UNEXPORTED: &str = "argus_drift_segments_unexported_total";

/// Counter: switches to a new production version's reference (`--follow`).
pub const REFERENCE_SWITCHES: &str = "argus_drift_reference_switches_total";
/// Counter: new production versions whose reference could not be had; the old one kept
/// watching. Labels: `reason` (fetch, verify, profile).
pub const REFERENCE_LOAD_FAILURES: &str = "argus_drift_reference_load_failures_total";

/// Gauge: a realised metric of the latest judged window (ground truth joined). Labels:
/// `version`, `segment`, `metric` (accuracy, precision, recall, f1, roc_auc, pr_auc, ece).
pub const QUALITY_METRIC: &str = "argus_quality_metric";
/// Gauge: share of the window's predictions joined with a label. Labels: `version`, `segment`.
pub const QUALITY_COVERAGE: &str = "argus_quality_label_coverage";
/// Gauge: median label delay (label time − capture time) in the window, seconds. Labels:
/// `version`, `segment`.
pub const QUALITY_DELAY: &str = "argus_quality_label_delay_seconds";
/// Gauge: degradation alarm, 0 ok, 1 pending, 2 firing. Labels: `version`, `segment`.
pub const QUALITY_ALARM: &str = "argus_quality_alarm_state";
/// Gauge: CBPE's estimated accuracy minus the realised one. Labels: `version`, `segment`.
pub const QUALITY_ESTIMATE_ERROR: &str = "argus_quality_estimate_error";
/// Counter: what the join saw. Labels: `outcome` ([`JOIN_OUTCOMES`]).
pub const QUALITY_JOIN: &str = "argus_quality_join_total";
/// Gauge: predictions waiting for their label and labels held for their prediction. Labels:
/// `kind` (prediction, label).
pub const QUALITY_HELD: &str = "argus_quality_join_held";
/// Counter: quality reports published.
pub const QUALITY_REPORTS: &str = "argus_quality_reports_total";
/// Counter: degradation alerts published on the alerts topic.
pub const QUALITY_ALERTS: &str = "argus_quality_alerts_total";

/// Every `outcome` label of [`QUALITY_JOIN`]: predictions and labels taken, pairs joined,
/// labels of an id already joined, labels whose prediction never came within the horizon,
/// predictions never labelled within it, predictions delivered twice.
pub const JOIN_OUTCOMES: &[&str] = &[
    "prediction",
    "label",
    "joined",
    "duplicate_label",
    "unknown_label",
    "unlabelled",
    "duplicate_prediction",
];

/// Per-partition gauges: exported only while the partition is owned (the binary drops
/// series not updated for a while; see `argus::telemetry`).
pub const PARTITION_GAUGES: &[&str] = &[WATERMARK_SECONDS];

/// Every `reason` label of [`INVALID`] (pre-registered at 0 by [`register_defaults`]).
pub const INVALID_REASONS: &[&str] = &[
    "envelope",
    "event_time",
    "not_a_record",
    "prediction_json",
    "no_capture_time",
    "decode",
    "pane_message",
    "label_json",
    "label",
];

/// Every `outcome` label of [`RECORDS`].
/// `other_version`: a prediction of a model version other than the one watched (`--follow`).
pub const RECORD_OUTCOMES: &[&str] = &["sampled", "skipped", "late", "invalid", "other_version"];

/// Every `status` label of [`REPORTS`].
pub const REPORT_STATUSES: &[&str] = &["ok", "warn", "drift", "insufficient_data"];

/// Buckets for the evaluation histogram (seconds).
pub const EVAL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Describe every metric (call once after installing a recorder).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RECORDS, "Records read by the drift sidecar, by outcome");
    describe_counter!(LATE, "Records whose event-time pane was already final");
    describe_counter!(INVALID, "Records that yielded no features, by reason");
    describe_counter!(PARTIALS, "Partial pane summaries published");
    describe_counter!(PARTIALS_FAILED, "Partial pane summaries the broker refused");
    describe_counter!(DUPLICATES, "Partial pane summaries rejected as duplicates");
    describe_gauge!(MERGE_PARTIALS, "Partials merged into the latest window");
    describe_counter!(REPORTS, "Drift reports published, by dataset status");
    describe_histogram!(
        EVAL_SECONDS,
        metrics::Unit::Seconds,
        "Window merge and evaluation time"
    );
    describe_gauge!(STATISTIC, "Drift test statistic per feature and method");
    describe_gauge!(P_VALUE, "Drift test p-value per feature and method");
    describe_gauge!(Q_VALUE, "Benjamini-Hochberg q-value per feature");
    describe_gauge!(
        STATUS,
        "Feature status: 0 ok, 1 warn, 2 drift, -1 insufficient data"
    );
    describe_gauge!(DATASET_DRIFT, "1 when the window drifted");
    describe_gauge!(SHARE_DRIFTED, "Share of tested features that drifted");
    describe_gauge!(ALARM, "Alarm state: 0 ok, 1 pending, 2 firing");
    describe_gauge!(CBPE, "Label-free performance estimate (CBPE)");
    describe_gauge!(REFERENCE_INFO, "The reference profile in use");
    describe_counter!(
        REFERENCE_SWITCHES,
        "Switches to a new production version's drift reference (--follow)"
    );
    describe_counter!(
        REFERENCE_LOAD_FAILURES,
        "New production versions whose drift reference could not be had, by reason; the old one kept watching"
    );
    describe_gauge!(
        WATERMARK_SECONDS,
        "Event-time watermark per owned partition (Unix seconds)"
    );
    describe_gauge!(
        LAST_WINDOW_END,
        "End of the last evaluated window (Unix seconds)"
    );
    describe_gauge!(
        QUALITY_METRIC,
        "Realised model quality of the latest judged window, from ground-truth labels"
    );
    describe_gauge!(
        QUALITY_COVERAGE,
        "Share of the window's predictions joined with a label"
    );
    describe_gauge!(
        QUALITY_DELAY,
        metrics::Unit::Seconds,
        "Median label delay (label time minus capture time) in the window"
    );
    describe_gauge!(
        QUALITY_ALARM,
        "Quality degradation alarm: 0 ok, 1 pending, 2 firing"
    );
    describe_gauge!(
        QUALITY_ESTIMATE_ERROR,
        "CBPE estimated accuracy minus the realised accuracy"
    );
    describe_counter!(
        QUALITY_JOIN,
        "Predictions and labels seen by the quality join, by outcome"
    );
    describe_gauge!(
        QUALITY_HELD,
        "Predictions waiting for their label and labels held for their prediction"
    );
    describe_counter!(QUALITY_REPORTS, "Quality reports published");
    describe_counter!(QUALITY_ALERTS, "Quality degradation alerts published");
    describe_counter!(
        SEGMENTS_UNEXPORTED,
        "Segments beyond max_metric_segments: analysed and reported, not exported per segment"
    );
}

/// Registers the counters an operator alerts on at 0 for their known labels, so
/// `rate(x[5m])` has a series from the first scrape: `topics` are the watched topics.
pub fn register_defaults(topics: &[&str]) {
    use metrics::counter;
    for topic in topics {
        for outcome in RECORD_OUTCOMES {
            counter!(RECORDS, "topic" => topic.to_string(), "outcome" => *outcome).absolute(0);
        }
        counter!(LATE, "topic" => topic.to_string()).absolute(0);
    }
    for reason in INVALID_REASONS {
        counter!(INVALID, "reason" => *reason).absolute(0);
    }
    for status in REPORT_STATUSES {
        counter!(REPORTS, "status" => *status).absolute(0);
    }
    for name in [
        PARTIALS,
        PARTIALS_FAILED,
        DUPLICATES,
        SEGMENTS_UNEXPORTED,
        REFERENCE_SWITCHES,
    ] {
        counter!(name).absolute(0);
    }
    for outcome in JOIN_OUTCOMES {
        counter!(QUALITY_JOIN, "outcome" => *outcome).absolute(0);
    }
    counter!(QUALITY_REPORTS).absolute(0);
    counter!(QUALITY_ALERTS).absolute(0);
    for reason in crate::follow::ReferenceFailure::ALL {
        counter!(REFERENCE_LOAD_FAILURES, "reason" => reason.as_str()).absolute(0);
    }
}

/// Which segments get per-segment series: the fleet (`*`) always, then the first `max`
/// segments to report, for the life of the process (a segment never flaps in and out).
/// Segments beyond are still evaluated and published on the reports topic; each is counted
/// once in [`SEGMENTS_UNEXPORTED`].
#[derive(Debug, Clone)]
pub struct SegmentCap {
    max: usize,
    exported: BTreeSet<String>,
    refused: BTreeSet<String>,
}

impl SegmentCap {
    /// At most `max` segments besides `*`.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            exported: BTreeSet::new(),
            refused: BTreeSet::new(),
        }
    }

    /// Whether `segment` gets series; counts a segment refused for the first time.
    pub fn admit(&mut self, segment: &str) -> bool {
        if segment == argus_stats::profile::FLEET || self.exported.contains(segment) {
            return true;
        }
        if self.exported.len() < self.max {
            self.exported.insert(segment.to_owned());
            return true;
        }
        if self.refused.insert(segment.to_owned()) {
            metrics::counter!(SEGMENTS_UNEXPORTED).increment(1);
        }
        false
    }
}

/// Exports `r` as gauges when `cap` admits its segment (the report counter always counts).
pub fn record_capped(cap: &mut SegmentCap, r: &argus_stats::report::DriftReport) {
    if cap.admit(&r.segment) {
        record_report(r);
    } else {
        metrics::counter!(REPORTS, "status" => status_label(r.dataset.status)).increment(1);
    }
}

fn status_label(s: argus_stats::report::Status) -> &'static str {
    match s {
        argus_stats::report::Status::Ok => "ok",
        argus_stats::report::Status::Warn => "warn",
        argus_stats::report::Status::Drift => "drift",
        argus_stats::report::Status::InsufficientData => "insufficient_data",
    }
}

/// Export one report as gauges.
pub fn record_report(r: &argus_stats::report::DriftReport) {
    use metrics::{counter, gauge};
    let seg = r.segment.clone();
    for f in &r.features {
        let labels = [("segment", seg.clone()), ("feature", f.name.clone())];
        gauge!(STATUS, &labels).set(f.status.gauge());
        let mut min_q: Option<f64> = None;
        for t in &f.tests {
            let l = [
                ("segment", seg.clone()),
                ("feature", f.name.clone()),
                ("method", t.method.clone()),
            ];
            gauge!(STATISTIC, &l).set(t.statistic);
            if let Some(p) = t.p_value {
                gauge!(P_VALUE, &l).set(p);
            }
            if let Some(q) = t.q_value {
                min_q = Some(min_q.map_or(q, |m: f64| m.min(q)));
            }
        }
        if let Some(q) = min_q {
            gauge!(Q_VALUE, &labels).set(q);
        }
    }
    let s = [("segment", seg.clone())];
    gauge!(DATASET_DRIFT, &s).set(if r.dataset.drift { 1.0 } else { 0.0 });
    gauge!(SHARE_DRIFTED, &s).set(r.dataset.share_drifted);
    gauge!(ALARM, &s).set(match r.alarm.state.as_str() {
        "firing" => 2.0,
        "pending" => 1.0,
        _ => 0.0,
    });
    gauge!(MERGE_PARTIALS, &s).set(r.provenance.partials as f64);
    gauge!(LAST_WINDOW_END, &s).set(r.window.end_us as f64 / 1e6);
    if let Some(p) = &r.performance_estimate {
        for (m, v) in [
            ("accuracy", p.accuracy),
            ("accuracy_se", p.accuracy_se),
            ("precision", p.precision),
            ("recall", p.recall),
            ("f1", p.f1),
        ] {
            gauge!(CBPE, &[("segment", seg.clone()), ("metric", m.to_owned())]).set(v);
        }
    }
    counter!(REPORTS, "status" => status_label(r.dataset.status)).increment(1);
}

/// Export one quality report as gauges.
pub fn record_quality(r: &crate::quality::QualityReport) {
    use metrics::gauge;
    let vs = [
        ("version", r.model.version.clone()),
        ("segment", r.segment.clone()),
    ];
    gauge!(QUALITY_COVERAGE, &vs).set(r.coverage);
    if let Some(d) = r.label_delay_p50_seconds {
        gauge!(QUALITY_DELAY, &vs).set(d);
    }
    gauge!(QUALITY_ALARM, &vs).set(match r.alarm.state.as_str() {
        "firing" => 2.0,
        "pending" => 1.0,
        _ => 0.0,
    });
    if let Some(e) = &r.estimate {
        gauge!(QUALITY_ESTIMATE_ERROR, &vs).set(e.error);
    }
    if let Some(q) = &r.metrics {
        let values = argus_stats::live::LiveMetric::ALL
            .iter()
            .filter_map(|m| q.value(*m).map(|v| (m.as_str(), v)))
            .chain([("ece", q.ece)]);
        for (metric, v) in values {
            let l = [
                ("version", r.model.version.clone()),
                ("segment", r.segment.clone()),
                ("metric", metric.to_owned()),
            ];
            gauge!(QUALITY_METRIC, &l).set(v);
        }
    }
}

/// Export the join's counts (cumulative since the sidecar started reading the panes topic)
/// and what it holds now.
pub fn record_join(c: &crate::quality::JoinCounts, held: (usize, usize)) {
    use metrics::{counter, gauge};
    for (outcome, n) in [
        ("prediction", c.predictions),
        ("label", c.labels),
        ("joined", c.joined),
        ("duplicate_label", c.duplicate_labels),
        ("unknown_label", c.unknown_labels),
        ("unlabelled", c.unlabelled),
        ("duplicate_prediction", c.duplicate_predictions),
    ] {
        counter!(QUALITY_JOIN, "outcome" => outcome).absolute(n);
    }
    gauge!(QUALITY_HELD, "kind" => "prediction").set(held.0 as f64);
    gauge!(QUALITY_HELD, "kind" => "label").set(held.1 as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    fn counter_value(snapshotter: &metrics_util::debugging::Snapshotter, name: &str) -> u64 {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find_map(|(k, _, _, v)| match v {
                DebugValue::Counter(n) if k.key().name() == name => Some(n),
                _ => None,
            })
            .unwrap_or(0)
    }

    #[test]
    fn the_fleet_and_the_first_segments_are_exported_the_rest_counted_once() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let admitted = metrics::with_local_recorder(&recorder, || {
            let mut cap = SegmentCap::new(2);
            [
                "cam-a", "*", "cam-b", "cam-c", "cam-a", "cam-d", "cam-c", "*", "cam-b",
            ]
            .map(|s| cap.admit(s))
        });
        assert_eq!(
            admitted,
            [true, true, true, false, true, false, false, true, true]
        );
        assert_eq!(counter_value(&snapshotter, SEGMENTS_UNEXPORTED), 2);
    }

    #[test]
    fn a_cap_of_zero_exports_only_the_fleet() {
        let recorder = DebuggingRecorder::new();
        metrics::with_local_recorder(&recorder, || {
            let mut cap = SegmentCap::new(0);
            assert!(cap.admit("*"));
            assert!(!cap.admit("cam-a"));
        });
    }

    #[test]
    fn defaults_register_every_known_counter_at_zero() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || register_defaults(&["frames"]));
        let snap = snapshotter.snapshot().into_vec();
        let series = |name: &str| {
            snap.iter()
                .filter(|(k, _, _, v)| k.key().name() == name && *v == DebugValue::Counter(0))
                .count()
        };
        assert_eq!(series(RECORDS), RECORD_OUTCOMES.len());
        assert_eq!(series(INVALID), INVALID_REASONS.len());
        assert_eq!(series(REPORTS), REPORT_STATUSES.len());
        for name in [
            LATE,
            PARTIALS,
            PARTIALS_FAILED,
            DUPLICATES,
            SEGMENTS_UNEXPORTED,
        ] {
            assert_eq!(series(name), 1, "{name}");
        }
    }
}
