//! Metric names emitted by the model crate. The binary installs the exporter and calls
//! [`describe`].

/// Counter: tract plans built for a batch size not seen before (after start-up, each one
/// is a pause of the inference thread that builds it).
pub const PLANS_BUILT: &str = "argus_model_plans_built_total";

/// Gauge, always 1: the model a process serves. Labels: `name`, `version`, `sha256`,
/// `engine` (join on it to tell which model a fleet runs, mid canary or rollout).
pub const MODEL_INFO: &str = "argus_model_info";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(PLANS_BUILT, "Inference plans built for a new batch size");
    metrics::describe_gauge!(MODEL_INFO, "The model served (always 1; see the labels)");
}

/// Registers [`PLANS_BUILT`] at 0, so it has a series from the first scrape.
pub fn register_defaults() {
    metrics::counter!(PLANS_BUILT).absolute(0);
}

/// Sets [`MODEL_INFO`] for `model`.
pub fn record_model_info(model: &crate::Classifier) {
    let m = model.model_ref();
    metrics::gauge!(
        MODEL_INFO,
        "name" => m.name.clone(),
        "version" => m.version.clone(),
        "sha256" => m.sha256.clone(),
        "engine" => model.engine().as_str(),
    )
    .set(1.0);
}
