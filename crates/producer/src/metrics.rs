//! Metric names emitted by the produce loop. The binary installs the exporter and calls
//! [`describe`].

/// Counter: envelopes handed to the broker. Labels: `outcome` (ok, error).
pub const FRAMES: &str = "argus_producer_frames_total";
/// Counter: frames dropped by the outage policy. Labels: `reason` (`backlog_full`: the
/// oldest waiting frame when the backlog was full; `expired`: not delivered within
/// `message.timeout.ms`).
pub const DROPPED: &str = "argus_producer_dropped_total";
/// [`DROPPED`] reason: the oldest waiting frame, when the backlog was full.
pub const DROPPED_BACKLOG_FULL: &str = "backlog_full";
/// [`DROPPED`] reason: not delivered within `message.timeout.ms`.
pub const DROPPED_EXPIRED: &str = "expired";
/// Counter: CSV / JSON-lines rows that could not be read as records and were skipped.
pub const BAD_ROWS: &str = "argus_producer_bad_rows_total";

/// Counter: restarts of a video source's ffmpeg (the stream ended, failed or stalled).
/// Labels: `camera`.
pub const SOURCE_RECONNECTS: &str = "argus_producer_source_reconnects_total";
/// Counter: frames read from a video source, before the outage policy and the size
/// check. Labels: `camera`.
pub const SOURCE_FRAMES: &str = "argus_producer_source_frames_total";

/// Counter: labels handled by `argus label`. Labels: `outcome` (ok, error, bad).
pub const LABELS: &str = "argus_producer_labels_total";

/// Registers the counters at 0 for their known labels, so `rate(x[5m])` has a series from
/// the first scrape (call when a producing role starts).
pub fn register_defaults() {
    for outcome in ["ok", "error"] {
        metrics::counter!(FRAMES, "outcome" => outcome).absolute(0);
    }
    metrics::counter!(BAD_ROWS).absolute(0);
    for outcome in ["ok", "error", "bad"] {
        metrics::counter!(LABELS, "outcome" => outcome).absolute(0);
    }
    for reason in [DROPPED_BACKLOG_FULL, DROPPED_EXPIRED] {
        metrics::counter!(DROPPED, "reason" => reason).absolute(0);
    }
}

/// Registers descriptions with the installed recorder.
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(FRAMES, "Envelopes produced, by outcome");
    describe_counter!(BAD_ROWS, "Input rows skipped as unreadable");
    describe_counter!(
        LABELS,
        "Ground-truth labels published (ok), refused by the broker (error) or skipped as bad rows"
    );
    describe_counter!(
        SOURCE_RECONNECTS,
        "Restarts of a video source's ffmpeg after the stream ended, failed or stalled, by camera"
    );
    describe_counter!(
        SOURCE_FRAMES,
        "Frames read from a video source (before the outage policy), by camera"
    );
    describe_counter!(
        DROPPED,
        "Frames dropped while the broker was not taking them (outage policy), by reason"
    );
}
