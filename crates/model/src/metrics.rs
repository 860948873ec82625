//! Metric names emitted by the model crate. The binary installs the exporter and calls
//! [`describe`].

/// Counter: tract plans built for a batch size not seen before (after start-up, each one
/// is a pause of the inference thread that builds it).
pub const PLANS_BUILT: &str = "argus_model_plans_built_total";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(PLANS_BUILT, "Inference plans built for a new batch size");
}
