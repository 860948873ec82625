//! Metric names emitted by the produce loop. The binary installs the exporter and calls
//! [`describe`].

/// Counter: envelopes handed to the broker. Labels: `outcome` (ok, error).
pub const FRAMES: &str = "argus_producer_frames_total";
/// Counter: CSV / JSON-lines rows that could not be read as records and were skipped.
pub const BAD_ROWS: &str = "argus_producer_bad_rows_total";

/// Registers the counters at 0 for their known labels, so `rate(x[5m])` has a series from
/// the first scrape (call when a producing role starts).
pub fn register_defaults() {
    for outcome in ["ok", "error"] {
        metrics::counter!(FRAMES, "outcome" => outcome).absolute(0);
    }
    metrics::counter!(BAD_ROWS).absolute(0);
}

/// Registers descriptions with the installed recorder.
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(FRAMES, "Envelopes produced, by outcome");
    describe_counter!(BAD_ROWS, "Input rows skipped as unreadable");
}
