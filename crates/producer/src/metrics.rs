//! Metric names emitted by the produce loop. The binary installs the exporter and calls
//! [`describe`].

/// Counter: envelopes handed to the broker. Labels: `outcome` (ok, error).
pub const FRAMES: &str = "argus_producer_frames_total";
/// Counter: frames dropped by the outage policy. Labels: `reason` (`backlog_full`: the
/// oldest waiting frame when the backlog was full; `expired`: not delivered within
/// `message.timeout.ms`).
pub const DROPPED: &str = "argus_producer_dropped_total";
/// Counter: CSV / JSON-lines rows that could not be read as records and were skipped.
pub const BAD_ROWS: &str = "argus_producer_bad_rows_total";

/// Registers descriptions with the installed recorder.
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(FRAMES, "Envelopes produced, by outcome");
    describe_counter!(BAD_ROWS, "Input rows skipped as unreadable");
    describe_counter!(
        DROPPED,
        "Frames dropped while the broker was not taking them (outage policy), by reason"
    );
}
