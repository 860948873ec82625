//! Metric names emitted by the worker. The binary installs the exporter and buckets.

/// Counter: input messages consumed. Labels: `topic`.
pub const INPUTS: &str = "argus_worker_inputs_total";
/// Counter: outputs published. Labels: `kind` (prediction, alert, dlq), `outcome` (ok, error).
pub const OUTPUTS: &str = "argus_worker_outputs_total";
/// Counter: inputs sent to the DLQ. Labels: `reason`.
pub const DLQ: &str = "argus_worker_dlq_total";
/// Histogram: model inference time per input, seconds.
pub const INFERENCE_SECONDS: &str = "argus_worker_inference_seconds";
/// Histogram: decode + preprocess + inference + postprocess per input, seconds.
pub const PROCESSING_SECONDS: &str = "argus_worker_processing_seconds";
/// Histogram: capture time → output acknowledged by the broker, seconds. Labels: `kind`
/// (prediction, alert).
pub const END_TO_END_SECONDS: &str = "argus_worker_end_to_end_seconds";
/// Gauge: inputs in flight.
pub const IN_FLIGHT: &str = "argus_worker_in_flight";
/// Counter: consumer errors from the broker or client.
pub const CONSUMER_ERRORS: &str = "argus_worker_consumer_errors_total";
/// Counter: offsets that could not be stored (partition revoked meanwhile, or outputs lost).
pub const OFFSET_STORE_FAILURES: &str = "argus_worker_offset_store_failures_total";

/// Registers descriptions and units with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(INPUTS, "Input messages consumed");
    describe_counter!(OUTPUTS, "Outputs published, by kind and outcome");
    describe_counter!(DLQ, "Inputs sent to the dead-letter topic, by reason");
    describe_histogram!(
        INFERENCE_SECONDS,
        Unit::Seconds,
        "Model inference time per input"
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
    describe_counter!(CONSUMER_ERRORS, "Errors reported by the Kafka consumer");
    describe_counter!(
        OFFSET_STORE_FAILURES,
        "Offsets not stored (partition revoked, or outputs undeliverable)"
    );
}

/// Histogram buckets (seconds) for the latency histograms above.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];
