//! Metric names emitted by the Kafka plumbing ([`crate::GroupContext`] and the worker's
//! commits). The binary installs the exporter and calls [`describe`].

/// Gauge: consumer lag per assigned partition, from librdkafka statistics; set to 0 when the
/// partition is revoked so the fleet-wide sum does not count it twice. Labels: `topic`,
/// `partition`.
pub const CONSUMER_LAG: &str = "argus_kafka_consumer_lag_records";
/// Counter: rebalance events. Labels: `kind` (assign, revoke, error).
pub const REBALANCES: &str = "argus_kafka_rebalances_total";
/// Counter: offset commits that failed (on revoke, in the background, or the worker's own).
pub const COMMIT_FAILURES: &str = "argus_kafka_commit_failures_total";

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
