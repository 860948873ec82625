//! Metric names emitted by the registry client. The binary installs the exporter and calls
//! [`describe`].

/// Counter: artifact fetches that failed, never served. Labels: `reason` ([`FETCH_REASONS`]).
pub const FETCH_FAILURES: &str = "argus_registry_fetch_failures_total";
/// Counter: artifact fetches that returned a verified bundle. Labels: `source` ([`SOURCES`]).
pub const FETCHES: &str = "argus_registry_fetches_total";
/// Histogram: time to fetch, verify and unpack an artifact (cache hits included). Labels:
/// `source`.
pub const FETCH_SECONDS: &str = "argus_registry_fetch_seconds";
/// Gauge: revision of the deployment record a follower last saw. Labels: `model`.
pub const DEPLOYMENT_REVISION: &str = "argus_registry_deployment_revision";

/// Every `reason` of [`FETCH_FAILURES`] (see [`crate::RegistryError::fetch_reason`]).
pub const FETCH_REASONS: &[&str] = &["tampered", "truncated", "missing", "unknown", "error"];
/// Every `source` of [`FETCHES`]: the local cache, chunks from the topic, a URI.
pub const SOURCES: &[&str] = &["cache", "chunks", "uri"];

/// Registers the failure counters at 0, so `increase(x[5m])` has a series from the first
/// scrape (call when a role that fetches starts).
pub fn register_defaults() {
    for reason in FETCH_REASONS {
        metrics::counter!(FETCH_FAILURES, "reason" => *reason).absolute(0);
    }
}

/// Registers descriptions with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        FETCH_FAILURES,
        "Model artifact fetches refused or failed (never served), by reason"
    );
    describe_counter!(FETCHES, "Model artifacts fetched and verified, by source");
    describe_histogram!(
        FETCH_SECONDS,
        Unit::Seconds,
        "Time to fetch, verify and unpack a model artifact"
    );
    describe_gauge!(
        DEPLOYMENT_REVISION,
        "Revision of the model deployment record this process follows"
    );
}
