//! Metric names the binary itself sets: what build is running. Process metrics (`process_*`)
//! come from the `metrics-process` collector, refreshed on every scrape.

/// Gauge, always 1: the running build. Labels: `version` (the crate version), `features`
/// (`onnxruntime` when built with that engine, else empty).
pub const BUILD_INFO: &str = "argus_build_info";

/// Registers descriptions with the installed recorder and sets [`BUILD_INFO`].
pub fn describe() {
    metrics::describe_gauge!(
        BUILD_INFO,
        "The running Argus build (always 1; see the labels)"
    );
    let features = if cfg!(feature = "onnxruntime") {
        "onnxruntime"
    } else {
        ""
    };
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "features" => features)
        .set(1.0);
}
