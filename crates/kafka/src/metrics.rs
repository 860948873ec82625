//! Metric names emitted by the Kafka plumbing ([`crate::GroupContext`] and the worker's
//! commits). The binary installs the exporter and calls [`describe`].

/// Gauge: consumer lag per assigned partition, from librdkafka statistics; set to 0 when the
/// partition is revoked so the fleet-wide sum does not count it twice, then dropped from
/// `/metrics` (see [`PARTITION_GAUGES`]). Labels: `topic`, `partition`.
pub const CONSUMER_LAG: &str = "argus_kafka_consumer_lag_records";
/// Counter: rebalance events. Labels: `kind` (assign, revoke, error).
pub const REBALANCES: &str = "argus_kafka_rebalances_total";
/// Counter: offset commits that failed (on revoke, in the background, or the worker's own).
pub const COMMIT_FAILURES: &str = "argus_kafka_commit_failures_total";

/// Per-partition gauges: exported only while the partition is assigned (the binary drops
/// series not updated for a while; see `argus::telemetry`).
pub const PARTITION_GAUGES: &[&str] = &[CONSUMER_LAG];

/// Every `kind` label of [`REBALANCES`].
pub const REBALANCE_KINDS: &[&str] = &["assign", "revoke", "error"];

/// Registers the counters an operator alerts on at 0, so `rate(x[5m])` has a series from
/// the first scrape (call when a consumer role starts).
pub fn register_defaults() {
    for kind in REBALANCE_KINDS {
        metrics::counter!(REBALANCES, "kind" => *kind).absolute(0);
    }
    metrics::counter!(COMMIT_FAILURES).absolute(0);
}

/// Registers descriptions with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        CONSUMER_LAG,
        "Consumer lag per assigned partition (librdkafka statistics)"
    );
    describe_counter!(REBALANCES, "Consumer group rebalance events, by kind");
    describe_counter!(COMMIT_FAILURES, "Offset commits that failed");
}
