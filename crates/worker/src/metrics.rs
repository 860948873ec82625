//! Metric names emitted by the worker. The binary installs the exporter and buckets.

/// Counter: input messages consumed. Labels: `topic`.
pub const INPUTS: &str = "argus_worker_inputs_total";
/// Counter: outputs published. Labels: `kind` (prediction, alert, dlq, shadow), `outcome`
/// (ok, error).
pub const OUTPUTS: &str = "argus_worker_outputs_total";
/// Counter: inputs sent to the DLQ. Labels: `reason`.
pub const DLQ: &str = "argus_worker_dlq_total";
/// Histogram: per input, the engine time of the model call (the whole batch) it ran in,
/// seconds: the inference latency the input saw. One sample per input; per call, see
/// [`BATCH_SECONDS`] (which adds tensor assembly and postprocessing) and [`BATCH_SIZE`].
pub const INFERENCE_SECONDS: &str = "argus_worker_inference_seconds";
/// Histogram: time an input waits in the inference queue, from being queued until its batch
/// starts (includes `max_wait` batching), seconds.
pub const INFERENCE_QUEUE_SECONDS: &str = "argus_worker_inference_queue_seconds";
/// Histogram: decode + preprocess + inference + postprocess per input, seconds.
pub const PROCESSING_SECONDS: &str = "argus_worker_processing_seconds";
/// Histogram: capture time → output acknowledged by the broker, seconds. Labels: `kind`
/// (prediction, alert).
pub const END_TO_END_SECONDS: &str = "argus_worker_end_to_end_seconds";
/// Gauge: inputs in flight.
pub const IN_FLIGHT: &str = "argus_worker_in_flight";
/// Gauge: payload bytes of the inputs in flight.
pub const IN_FLIGHT_BYTES: &str = "argus_worker_in_flight_bytes";
/// Gauge: inputs consumed and not yet committed (in flight, finished behind an unfinished
/// input, finished but not confirmed committed): what a crash would redo.
pub const UNCOMMITTED: &str = "argus_worker_uncommitted_inputs";
/// Counter: consumer errors from the broker or client.
pub const CONSUMER_ERRORS: &str = "argus_worker_consumer_errors_total";
/// Counter: offsets that could not be stored (partition revoked meanwhile, or outputs lost).
pub const OFFSET_STORE_FAILURES: &str = "argus_worker_offset_store_failures_total";

/// Counter: zone rules that fired (alerts raised). Labels: `zone`, `rule` (presence, loiter,
/// count).
pub const ZONE_ALERTS: &str = "argus_worker_zone_alerts_total";
/// Counter: rebuilds of a partition's zone rule state after an assignment. Labels:
/// `outcome` (ok, failed: started empty, skipped: no history reader).
pub const ZONE_REBUILDS: &str = "argus_worker_zone_rebuilds_total";
/// Histogram: time to rebuild a partition's zone rule state from the predictions topic,
/// seconds.
pub const ZONE_REBUILD_SECONDS: &str = "argus_worker_zone_rebuild_seconds";
/// Counter: frames replayed into zone rule state by rebuilds.
pub const ZONE_REPLAYED: &str = "argus_worker_zone_replayed_frames_total";
/// Counter: alert snapshots that could not be written (the alert goes out without one).
pub const ZONE_SNAPSHOT_FAILURES: &str = "argus_worker_zone_snapshot_failures_total";

/// Histogram: time from an alert's evidence request to its evidence (queueing included),
/// seconds. Labels: `method` (tree_shap, sampling_shapley, occlusion).
pub const EVIDENCE_SECONDS: &str = "argus_worker_evidence_seconds";
/// Counter: alerts that went out without evidence. Labels: `reason` (deadline: not ready
/// within `evidence.deadline`; saturated: the pool's queue was full; error: the explainer
/// failed; unavailable: the model has no explainer).
pub const EVIDENCE_SKIPPED: &str = "argus_worker_evidence_skipped_total";
/// Every `reason` label of [`EVIDENCE_SKIPPED`].
pub const EVIDENCE_SKIP_REASONS: &[&str] =
    &["deadline", "saturated", "backlog", "error", "unavailable"];
/// Counter: saliency overlays that could not be written (the alert goes out without one).
pub const EVIDENCE_OVERLAY_FAILURES: &str = "argus_worker_evidence_overlay_failures_total";
/// Gauge: evidence requests queued or running ÷ the pool's threads + queue (1: the next
/// request is skipped as `saturated`).
pub const EVIDENCE_POOL_SATURATION: &str = "argus_worker_evidence_pool_saturation";

/// Counter: inputs skipped as older than `max_age` (a stale prediction was published).
pub const STALE: &str = "argus_worker_stale_total";
/// Counter: inputs abandoned because their partition was revoked first.
pub const ABANDONED: &str = "argus_worker_abandoned_total";
/// Gauge: the largest batch per model call, as calibrated at start-up (≤ max_batch).
pub const MAX_BATCH: &str = "argus_worker_max_batch";
/// Histogram: inputs per model call.
pub const BATCH_SIZE: &str = "argus_worker_batch_size";
/// Histogram: time per model call (one batch), seconds: [`INFERENCE_SECONDS`] plus tensor
/// assembly and postprocessing.
pub const BATCH_SECONDS: &str = "argus_worker_batch_seconds";
/// Histogram: offset commit time (at-least-once), seconds.
pub const COMMIT_SECONDS: &str = "argus_worker_commit_seconds";
/// Counter: times the worker paused its partitions because in-flight work was full.
pub const PAUSES: &str = "argus_worker_pauses_total";
/// Gauge: 1 while the worker's partitions are paused for backpressure.
pub const PAUSED: &str = "argus_worker_paused";
/// Counter: exactly-once rejoins: a transaction the group refused because it moved on was
/// aborted and the worker rejoined with new clients.
pub const REJOINS: &str = "argus_worker_rejoins_total";
/// Counter: transaction commits (exactly-once). Labels: `outcome`.
pub const TXN_COMMITS: &str = "argus_worker_transactions_total";
/// Histogram: transaction commit time, seconds.
pub const TXN_COMMIT_SECONDS: &str = "argus_worker_transaction_commit_seconds";
/// Gauge: records not yet finished, per partition (high watermark − first unfinished).
/// Labels: `topic`, `partition`.
pub const LAG_RECORDS: &str = "argus_worker_lag_records";
/// Gauge: age of the oldest unfinished record, seconds (an upper bound when it has not
/// been consumed yet). Labels: `topic`, `partition`.
pub const LAG_SECONDS: &str = "argus_worker_lag_seconds";
/// Gauge: records arriving per second (high watermark growth). Labels: `topic`, `partition`.
pub const ARRIVAL_RATE: &str = "argus_worker_arrival_records_per_second";
/// Gauge: records finished per second. Labels: `topic`, `partition`.
pub const PROCESSING_RATE: &str = "argus_worker_processing_records_per_second";
/// Gauge: estimated seconds to catch up on one partition, capped at one day (the cap when
/// not catching up). Labels: `topic`, `partition`.
pub const PARTITION_DRAIN_SECONDS: &str = "argus_worker_partition_drain_seconds";
/// Gauge: estimated seconds for this worker to catch up on all its partitions (lag ÷
/// (processing − arrival)); 0 when caught up, capped at one day ([`FALLING_BEHIND`] = 1
/// when not catching up at all). Finite, so autoscalers act on it. For autoscalers.
pub const DRAIN_SECONDS: &str = "argus_drain_seconds";
/// Gauge: 1 while this worker has records to catch up on and they arrive at least as fast
/// as it finishes them (the drain estimate is then the cap).
pub const FALLING_BEHIND: &str = "argus_falling_behind";
/// Gauge: seconds the lowest unfinished input of a partition has been in flight.
/// Labels: `topic`, `partition`.
pub const OLDEST_IN_FLIGHT_SECONDS: &str = "argus_worker_oldest_in_flight_seconds";
/// Gauge: 1 when a partition makes no progress: its lowest unfinished input has been in
/// flight longer than `stuck_after`, or records wait but the consumer returns none for 5 s
/// (a batch it cannot decompress or parse). Labels: `topic`, `partition`.
pub const PARTITION_STUCK: &str = "argus_worker_partition_stuck";

/// Per-partition gauges: exported only while the partition is assigned (set to 0 on
/// revoke, then dropped by the binary once not updated for a while; see
/// `argus::telemetry`), so stale values of a moved partition are never summed.
pub const PARTITION_GAUGES: &[&str] = &[
    LAG_RECORDS,
    LAG_SECONDS,
    ARRIVAL_RATE,
    PROCESSING_RATE,
    PARTITION_DRAIN_SECONDS,
    OLDEST_IN_FLIGHT_SECONDS,
    PARTITION_STUCK,
];

/// Every `kind` label of [`OUTPUTS`].
pub const OUTPUT_KINDS: &[&str] = &["prediction", "alert", "dlq", "shadow"];

/// Counter: inputs scored, by the version that scored them. Labels: `model`, `version`,
/// `role` (production, canary, shadow): a canary's share and a shadow's coverage.
pub const MODEL_INPUTS: &str = "argus_model_inputs_total";
/// Gauge (1 per serving version): the versions serving now. Labels: `model`, `version`,
/// `role`. A swapped-out version's series is set to 0.
pub const MODEL_SERVING: &str = "argus_model_serving";
/// Counter: version changes applied or refused. Labels: `outcome` (swapped, failed).
pub const MODEL_SWAPS: &str = "argus_model_swaps_total";
/// Counter: versions that could not be fetched or loaded (the old set keeps serving).
/// Labels: `reason` (fetch, verify, load, labels).
pub const MODEL_LOAD_FAILURES: &str = "argus_model_load_failures_total";
/// Histogram: fetch + verify + load + warm of a new version beside the serving one, seconds.
pub const MODEL_PREPARE_SECONDS: &str = "argus_model_prepare_seconds";
/// Histogram: the swap itself (replacing the serving set), seconds: the only moment new
/// inputs wait for the new version.
pub const MODEL_SWAP_SECONDS: &str = "argus_model_swap_seconds";
/// Counter: inputs scored by both the primary (production or canary) and the shadow
/// version. Labels: `primary`, `shadow` (versions), `agree` (true: same top label).
pub const SHADOW_COMPARED: &str = "argus_shadow_compared_total";
/// Histogram: |primary − shadow| probability of the primary's top label, per input scored
/// by both. Labels: `primary`, `shadow` (versions).
pub const SHADOW_SCORE_DIFFERENCE: &str = "argus_shadow_score_difference";
/// Counter: inputs the shadow version failed on (the primary's outputs are unaffected).
/// Labels: `shadow` (version).
pub const SHADOW_FAILURES: &str = "argus_shadow_failures_total";
/// Every `outcome` label of [`OUTPUTS`] and [`TXN_COMMITS`].
pub const OUTCOMES: &[&str] = &["ok", "error"];

/// Counter: HTTP requests answered by `argus serve`. Labels: `route` (the route template,
/// e.g. `/v2/models/{name}/infer`; `unmatched` for no route), `code` (HTTP status).
pub const SERVE_REQUESTS: &str = "argus_serve_requests_total";
/// Histogram: time to answer an HTTP request, seconds. Labels: `route`.
pub const SERVE_REQUEST_SECONDS: &str = "argus_serve_request_seconds";
/// Gauge: HTTP requests being answered now (admitted, not yet answered).
pub const SERVE_IN_FLIGHT: &str = "argus_serve_in_flight_requests";
/// Counter: HTTP requests refused by a limit. Labels: `reason` (body_too_large,
/// overloaded, timeout).
pub const SERVE_REJECTED: &str = "argus_serve_rejected_total";
/// Every `reason` label of [`SERVE_REJECTED`].
pub const SERVE_REJECT_REASONS: &[&str] = &["body_too_large", "overloaded", "timeout"];

/// Gauge (always 1): which consumer group and worker id a process serves. Labels: `group`,
/// `worker_id`. Dashboards and alerts join on it to filter by group.
pub const WORKER_INFO: &str = "argus_worker_info";
/// The counters without labels an operator alerts on, registered at 0 by
/// [`register_defaults`].
pub const UNLABELLED_COUNTERS: [&str; 6] = [
    CONSUMER_ERRORS,
    OFFSET_STORE_FAILURES,
    STALE,
    ABANDONED,
    PAUSES,
    REJOINS,
];

/// A metric handle taken from the recorder the first time it is used, then kept. The
/// `counter!` and `histogram!` macros look their series up on every call (they build the
/// key with its labels, hash it and lock a shard of the registry), and the worker records
/// several metrics per input: in a profile of a churn drain those lookups took about 7 %
/// of its tokio threads' CPU and ten allocations per record. Taken on first use rather
/// than when the worker is built, so a recorder installed in between still gets them.
pub(crate) struct Handle<T>(std::sync::OnceLock<T>);

impl<T> Handle<T> {
    /// The handle, made by `make` on the first call.
    pub(crate) fn get(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(make)
    }
}

impl<T> Default for Handle<T> {
    fn default() -> Self {
        Handle(std::sync::OnceLock::new())
    }
}

impl<T> std::fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Handle(taken)"
        } else {
            "Handle(not yet)"
        })
    }
}

/// One kind of output ([`OUTPUTS`]'s `kind` label) the publisher confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputKind {
    Prediction,
    Alert,
    Shadow,
}

impl OutputKind {
    /// The `kind` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OutputKind::Prediction => "prediction",
            OutputKind::Alert => "alert",
            OutputKind::Shadow => "shadow",
        }
    }
}

/// [`OUTPUTS`] and [`END_TO_END_SECONDS`] of one output kind.
struct Delivered {
    ok: metrics::Counter,
    error: metrics::Counter,
    end_to_end: metrics::Histogram,
}

/// The publisher's per-output metrics, each looked up once ([`Handle`]).
#[derive(Debug, Default)]
pub(crate) struct OutputMetrics {
    delivered: [Handle<Delivered>; 3],
}

impl OutputMetrics {
    fn delivered(&self, kind: OutputKind) -> &Delivered {
        self.delivered[kind as usize].get(|| Delivered {
            ok: metrics::counter!(OUTPUTS, "kind" => kind.as_str(), "outcome" => "ok"),
            error: metrics::counter!(OUTPUTS, "kind" => kind.as_str(), "outcome" => "error"),
            end_to_end: metrics::histogram!(END_TO_END_SECONDS, "kind" => kind.as_str()),
        })
    }

    /// Counts `n` outputs of `kind` handed over (a transaction's, acknowledged at commit).
    pub(crate) fn queued(&self, kind: OutputKind, n: u64) {
        self.delivered(kind).ok.increment(n);
    }

    /// Counts one output of `kind` acknowledged (with its age since capture, seconds) or
    /// given up on (`None`).
    pub(crate) fn confirmed(&self, kind: OutputKind, age_s: Option<f64>) {
        let d = self.delivered(kind);
        match age_s {
            Some(age) => {
                d.ok.increment(1);
                d.end_to_end.record(age);
            }
            None => d.error.increment(1),
        }
    }
}

/// The metrics one model version records per input, each looked up once ([`Handle`]).
#[derive(Debug, Default)]
pub(crate) struct VersionMetrics {
    /// [`MODEL_INPUTS`] by [`crate::models::Role`].
    inputs: [Handle<metrics::Counter>; 3],
    processing: Handle<metrics::Histogram>,
}

impl VersionMetrics {
    /// Counts one input scored by `model` in `role`.
    pub(crate) fn input(&self, model: &argus_wire::ModelRef, role: crate::models::Role) {
        self.inputs[role as usize]
            .get(|| {
                metrics::counter!(MODEL_INPUTS, "model" => model.name.clone(), "version" => model.version.clone(), "role" => role.as_str())
            })
            .increment(1);
    }

    /// Records one input's [`PROCESSING_SECONDS`].
    pub(crate) fn processing(&self, seconds: f64) {
        self.processing
            .get(|| metrics::histogram!(PROCESSING_SECONDS))
            .record(seconds);
    }
}

/// The inference threads' per-input and per-batch histograms, looked up once per thread.
pub(crate) struct StageMetrics {
    pub(crate) queue: metrics::Histogram,
    pub(crate) batch_size: metrics::Histogram,
    pub(crate) batch: metrics::Histogram,
    pub(crate) inference: metrics::Histogram,
}

impl StageMetrics {
    /// Handles from the installed recorder.
    pub(crate) fn new() -> Self {
        StageMetrics {
            queue: metrics::histogram!(INFERENCE_QUEUE_SECONDS),
            batch_size: metrics::histogram!(BATCH_SIZE),
            batch: metrics::histogram!(BATCH_SECONDS),
            inference: metrics::histogram!(INFERENCE_SECONDS),
        }
    }
}

/// The handles the worker loop updates on every event, looked up once: a `gauge!` or
/// `counter!` call looks its series up in the recorder's registry each time (a hash of the
/// name and labels, a lock), and the loop runs several times per input.
pub(crate) struct LoopMetrics {
    pub(crate) in_flight: metrics::Gauge,
    pub(crate) in_flight_bytes: metrics::Gauge,
    pub(crate) uncommitted: metrics::Gauge,
    /// [`INPUTS`] per input topic.
    inputs: std::collections::HashMap<String, metrics::Counter>,
}

impl LoopMetrics {
    /// Handles from the installed recorder (install it first: handles taken before count
    /// nowhere).
    pub(crate) fn new() -> Self {
        LoopMetrics {
            in_flight: metrics::gauge!(IN_FLIGHT),
            in_flight_bytes: metrics::gauge!(IN_FLIGHT_BYTES),
            uncommitted: metrics::gauge!(UNCOMMITTED),
            inputs: std::collections::HashMap::new(),
        }
    }

    /// Counts one input consumed from `topic`.
    pub(crate) fn input(&mut self, topic: &str) {
        match self.inputs.get(topic) {
            Some(c) => c.increment(1),
            None => {
                let c = metrics::counter!(INPUTS, "topic" => topic.to_string());
                c.increment(1);
                self.inputs.insert(topic.to_string(), c);
            }
        }
    }
}

impl std::fmt::Debug for LoopMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopMetrics")
            .field("input_topics", &self.inputs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Registers the counters an operator alerts on at 0 for their known labels (every DLQ
/// reason, every output kind and outcome, the worker's `input_topics`), so `rate(x[5m])`
/// has a series from the first scrape. Call when a worker role starts.
pub fn register_defaults(input_topics: &[String]) {
    use metrics::counter;
    for topic in input_topics {
        counter!(INPUTS, "topic" => topic.clone()).absolute(0);
    }
    for kind in OUTPUT_KINDS {
        for outcome in OUTCOMES {
            counter!(OUTPUTS, "kind" => *kind, "outcome" => *outcome).absolute(0);
        }
    }
    for outcome in OUTCOMES {
        counter!(TXN_COMMITS, "outcome" => *outcome).absolute(0);
    }
    for reason in argus_wire::FailureKind::ALL {
        counter!(DLQ, "reason" => reason.as_str()).absolute(0);
    }
    for name in UNLABELLED_COUNTERS {
        counter!(name).absolute(0);
    }
}

/// Registers [`SERVE_REJECTED`] at 0 for every reason and [`SERVE_IN_FLIGHT`] at 0, so
/// alerts on them have a series from the first scrape. Call when `argus serve` starts.
pub fn register_serve_defaults() {
    for reason in SERVE_REJECT_REASONS {
        metrics::counter!(SERVE_REJECTED, "reason" => *reason).absolute(0);
    }
    metrics::gauge!(SERVE_IN_FLIGHT).set(0.0);
}

/// Registers [`EVIDENCE_SKIPPED`] at 0 for every reason and [`EVIDENCE_POOL_SATURATION`]
/// at 0. Call when a worker with evidence on starts.
pub fn register_evidence_defaults() {
    for reason in EVIDENCE_SKIP_REASONS {
        metrics::counter!(EVIDENCE_SKIPPED, "reason" => *reason).absolute(0);
    }
    metrics::gauge!(EVIDENCE_POOL_SATURATION).set(0.0);
    metrics::counter!(EVIDENCE_OVERLAY_FAILURES).absolute(0);
}

/// Sets [`WORKER_INFO`]: this process is worker `worker_id` of `group`.
pub fn record_worker_info(group: &str, worker_id: &str) {
    metrics::gauge!(
        WORKER_INFO,
        "group" => group.to_owned(),
        "worker_id" => worker_id.to_owned()
    )
    .set(1.0);
}

/// Registers descriptions and units with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(INPUTS, "Input messages consumed");
    describe_histogram!(
        EVIDENCE_SECONDS,
        Unit::Seconds,
        "Time from an alert's evidence request to its evidence (queueing included), by method"
    );
    describe_counter!(
        EVIDENCE_SKIPPED,
        "Alerts that went out without evidence, by reason (deadline, saturated, backlog, error, unavailable)"
    );
    describe_counter!(
        EVIDENCE_OVERLAY_FAILURES,
        "Saliency overlays that could not be written (the alert went out without one)"
    );
    describe_gauge!(
        EVIDENCE_POOL_SATURATION,
        "Evidence requests queued or running / the evidence pool's threads + queue (1: new requests are skipped)"
    );
    describe_counter!(ZONE_ALERTS, "Zone rules that fired, by zone and rule");
    describe_counter!(
        ZONE_REBUILDS,
        "Rebuilds of a partition's zone rule state after an assignment, by outcome (ok, failed, skipped)"
    );
    describe_histogram!(
        ZONE_REBUILD_SECONDS,
        Unit::Seconds,
        "Time to rebuild a partition's zone rule state from the predictions topic"
    );
    describe_counter!(
        ZONE_REPLAYED,
        "Frames replayed into zone rule state by rebuilds"
    );
    describe_counter!(
        ZONE_SNAPSHOT_FAILURES,
        "Alert snapshots that could not be written (the alert went out without one)"
    );
    describe_counter!(
        SERVE_REQUESTS,
        "HTTP requests answered by argus serve, by route and status code"
    );
    describe_histogram!(
        SERVE_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route"
    );
    describe_gauge!(SERVE_IN_FLIGHT, "HTTP requests being answered now");
    describe_counter!(
        SERVE_REJECTED,
        "HTTP requests refused by a limit (body size, concurrency, timeout), by reason"
    );
    describe_counter!(OUTPUTS, "Outputs published, by kind and outcome");
    describe_counter!(
        MODEL_INPUTS,
        "Inputs scored, by model version and role (production, canary, shadow)"
    );
    describe_gauge!(MODEL_SERVING, "1 for each model version serving, by role");
    describe_counter!(MODEL_SWAPS, "Model version changes, swapped or failed");
    describe_counter!(
        MODEL_LOAD_FAILURES,
        "Model versions that could not be fetched, verified or loaded, by reason"
    );
    describe_histogram!(
        MODEL_PREPARE_SECONDS,
        Unit::Seconds,
        "Fetch, verify, load and warm of a new model version beside the serving one"
    );
    describe_histogram!(
        MODEL_SWAP_SECONDS,
        Unit::Seconds,
        "Time to replace the serving model versions"
    );
    describe_counter!(
        SHADOW_COMPARED,
        "Inputs scored by primary and shadow versions, by whether the top labels agree"
    );
    describe_histogram!(
        SHADOW_SCORE_DIFFERENCE,
        "Absolute difference of the primary's top-label probability, primary vs shadow"
    );
    describe_counter!(SHADOW_FAILURES, "Inputs the shadow model version failed on");
    describe_counter!(DLQ, "Inputs sent to the dead-letter topic, by reason");
    describe_histogram!(
        INFERENCE_SECONDS,
        Unit::Seconds,
        "Per input, the engine time of the model call (whole batch) it ran in"
    );
    describe_histogram!(
        INFERENCE_QUEUE_SECONDS,
        Unit::Seconds,
        "Time an input waits from being queued for inference until its batch starts"
    );
    describe_histogram!(
        PROCESSING_SECONDS,
        Unit::Seconds,
        "Decode, preprocess, inference and postprocess time per input"
    );
    describe_histogram!(
        END_TO_END_SECONDS,
        Unit::Seconds,
        "Capture time to output acknowledged by the broker"
    );
    describe_gauge!(IN_FLIGHT, "Inputs consumed and not yet finished");
    describe_gauge!(
        IN_FLIGHT_BYTES,
        Unit::Bytes,
        "Payload bytes of the inputs consumed and not yet finished"
    );
    describe_gauge!(
        UNCOMMITTED,
        "Inputs consumed and not yet committed: what a crash would redo (bounded by max_uncommitted)"
    );
    describe_counter!(CONSUMER_ERRORS, "Errors reported by the Kafka consumer");
    describe_counter!(STALE, "Inputs older than max_age, not run");
    describe_counter!(
        ABANDONED,
        "Inputs abandoned because their partition was revoked"
    );
    describe_histogram!(BATCH_SIZE, "Inputs per model call");
    describe_gauge!(
        MAX_BATCH,
        "Largest batch per model call, calibrated at start-up on this engine and machine"
    );
    describe_histogram!(
        BATCH_SECONDS,
        Unit::Seconds,
        "Time per model call, with tensor assembly and postprocessing"
    );
    describe_counter!(PAUSES, "Partition pauses for backpressure");
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Offset commit time");
    describe_gauge!(PAUSED, "1 while partitions are paused for backpressure");
    describe_gauge!(
        WORKER_INFO,
        "The consumer group and worker id this process serves (always 1; see the labels)"
    );
    describe_counter!(TXN_COMMITS, "Transaction commits, by outcome");
    describe_counter!(
        REJOINS,
        "Rejoins after a transaction the group refused because it moved on"
    );
    describe_histogram!(TXN_COMMIT_SECONDS, Unit::Seconds, "Transaction commit time");
    describe_gauge!(LAG_RECORDS, "Records not yet finished, per partition");
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest unfinished record"
    );
    describe_gauge!(ARRIVAL_RATE, "Records arriving per second, per partition");
    describe_gauge!(
        PROCESSING_RATE,
        "Records finished per second, per partition"
    );
    describe_gauge!(
        PARTITION_DRAIN_SECONDS,
        Unit::Seconds,
        "Estimated time to catch up on a partition"
    );
    describe_gauge!(
        DRAIN_SECONDS,
        Unit::Seconds,
        "Estimated time for this worker to catch up, capped at one day"
    );
    describe_gauge!(
        FALLING_BEHIND,
        "1 while records arrive at least as fast as this worker finishes them"
    );
    describe_gauge!(
        OLDEST_IN_FLIGHT_SECONDS,
        Unit::Seconds,
        "Time the lowest unfinished input of a partition has been in flight"
    );
    describe_gauge!(
        PARTITION_STUCK,
        "1 when a partition makes no progress (stuck on an input, or the consumer returns none of its records)"
    );
    describe_counter!(
        OFFSET_STORE_FAILURES,
        "Offsets not stored (partition revoked, or outputs undeliverable)"
    );
}

/// Histogram buckets (inputs) for [`BATCH_SIZE`].
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Histogram buckets (seconds) for the latency histograms above.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn defaults_register_alerting_counters_at_zero_for_every_known_label() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            register_defaults(&["frames".to_owned()]);
        });
        let zeros: Vec<(String, Vec<String>)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(_, _, _, v)| *v == DebugValue::Counter(0))
            .map(|(k, _, _, _)| {
                let labels = k.key().labels().map(|l| l.value().to_owned()).collect();
                (k.key().name().to_owned(), labels)
            })
            .collect();
        let has = |name: &str, labels: &[&str]| {
            zeros
                .iter()
                .any(|(n, l)| n == name && l.iter().map(String::as_str).eq(labels.iter().copied()))
        };
        for reason in argus_wire::FailureKind::ALL {
            assert!(has(DLQ, &[reason.as_str()]), "dlq {reason}");
        }
        assert!(has(INPUTS, &["frames"]));
        assert!(has(OUTPUTS, &["dlq", "error"]));
        assert!(has(TXN_COMMITS, &["error"]));
        for name in UNLABELLED_COUNTERS {
            assert!(has(name, &[]), "{name}");
        }
        assert_eq!(
            zeros.len(),
            1 + OUTPUT_KINDS.len() * OUTCOMES.len()
                + OUTCOMES.len()
                + argus_wire::FailureKind::ALL.len()
                + 6
        );
    }

    /// Every series in `snapshotter`: name, label values, value.
    fn series(
        snapshotter: &metrics_util::debugging::Snapshotter,
    ) -> Vec<(String, Vec<String>, DebugValue)> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| {
                let labels = k.key().labels().map(|l| l.value().to_owned()).collect();
                (k.key().name().to_owned(), labels, v)
            })
            .collect()
    }

    #[test]
    fn kept_output_and_version_handles_record_each_kind_and_role_in_its_own_series() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let model = argus_wire::ModelRef {
            name: "churn".into(),
            version: "2".into(),
            sha256: String::new(),
        };
        metrics::with_local_recorder(&recorder, || {
            let outputs = OutputMetrics::default();
            outputs.confirmed(OutputKind::Prediction, Some(0.25));
            outputs.confirmed(OutputKind::Prediction, Some(0.5));
            outputs.confirmed(OutputKind::Alert, None);
            outputs.queued(OutputKind::Alert, 3);
            outputs.confirmed(OutputKind::Shadow, Some(1.0));
            let version = VersionMetrics::default();
            version.input(&model, crate::models::Role::Production);
            version.input(&model, crate::models::Role::Production);
            version.input(&model, crate::models::Role::Shadow);
            version.processing(0.001);
        });
        let all = series(&snapshotter);
        let counter = |name: &str, labels: &[&str]| {
            all.iter().find_map(|(n, l, v)| match v {
                DebugValue::Counter(c)
                    if n == name && l.iter().map(String::as_str).eq(labels.iter().copied()) =>
                {
                    Some(*c)
                }
                _ => None,
            })
        };
        let samples = |name: &str, labels: &[&str]| {
            all.iter().find_map(|(n, l, v)| match v {
                DebugValue::Histogram(h)
                    if n == name && l.iter().map(String::as_str).eq(labels.iter().copied()) =>
                {
                    Some(h.iter().map(|x| x.into_inner()).collect::<Vec<f64>>())
                }
                _ => None,
            })
        };
        assert_eq!(counter(OUTPUTS, &["prediction", "ok"]), Some(2));
        assert_eq!(counter(OUTPUTS, &["alert", "ok"]), Some(3));
        assert_eq!(counter(OUTPUTS, &["alert", "error"]), Some(1));
        assert_eq!(counter(OUTPUTS, &["shadow", "ok"]), Some(1));
        assert_eq!(
            samples(END_TO_END_SECONDS, &["prediction"]),
            Some(vec![0.25, 0.5])
        );
        assert_eq!(samples(END_TO_END_SECONDS, &["shadow"]), Some(vec![1.0]));
        assert_eq!(
            counter(MODEL_INPUTS, &["churn", "2", "production"]),
            Some(2)
        );
        assert_eq!(counter(MODEL_INPUTS, &["churn", "2", "shadow"]), Some(1));
        assert_eq!(counter(MODEL_INPUTS, &["churn", "2", "canary"]), None);
        assert_eq!(samples(PROCESSING_SECONDS, &[]), Some(vec![0.001]));
    }

    #[test]
    fn the_loop_counts_inputs_per_topic_and_sets_its_gauges_through_kept_handles() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let mut lm = LoopMetrics::new();
            lm.input("frames");
            lm.input("frames");
            lm.input("records");
            lm.in_flight.set(7.0);
            lm.uncommitted.set(9.0);
        });
        let values = series(&snapshotter);
        let counter = |topic: &str| {
            values.iter().find_map(|(n, l, v)| match v {
                metrics_util::debugging::DebugValue::Counter(c) if n == INPUTS && l == &[topic] => {
                    Some(*c)
                }
                _ => None,
            })
        };
        let gauge = |name: &str| {
            values.iter().find_map(|(n, _, v)| match v {
                metrics_util::debugging::DebugValue::Gauge(g) if n == name => Some(g.into_inner()),
                _ => None,
            })
        };
        assert_eq!(counter("frames"), Some(2));
        assert_eq!(counter("records"), Some(1));
        assert_eq!(gauge(IN_FLIGHT), Some(7.0));
        assert_eq!(gauge(UNCOMMITTED), Some(9.0));
    }
}
