//! Which evaluated reports this sidecar publishes, and when.
//!
//! Every sidecar evaluates every window (cheap) and reads the reports topic. The owner of
//! input partition 0 publishes every evaluated report the reports topic does not show yet —
//! also windows that completed while no sidecar led (a rebalance) — once it has read the
//! topic up to where it ended at start, so a restart does not republish history. A report is
//! identified by (segment, `window.end_us`); reports older than the alarm's memory are not
//! kept waiting forever. The same book, keyed by (version, segment) and window end, serves
//! the quality reports on the quality topic.
use crate::quality::QualityReport;
use argus_stats::report::DriftReport;
use std::collections::{BTreeMap, HashMap};

/// A report the book tracks: told apart by a series (segment, or version and segment) and
/// its window's end.
pub(crate) trait Booked {
    /// (series, window end µs).
    fn book_key(&self) -> (String, i64);
    /// The key of a record of the topic, if it is such a report.
    fn parse_key(payload: &[u8]) -> Option<(String, i64)>;
}

#[derive(serde::Deserialize)]
struct WindowEnd {
    end_us: i64,
}

/// The part of a drift report the publisher needs to know it was published.
#[derive(serde::Deserialize)]
struct DriftKey {
    segment: String,
    window: WindowEnd,
}

impl Booked for DriftReport {
    fn book_key(&self) -> (String, i64) {
        (self.segment.clone(), self.window.end_us)
    }
    fn parse_key(payload: &[u8]) -> Option<(String, i64)> {
        let k: DriftKey = serde_json::from_slice(payload).ok()?;
        Some((k.segment, k.window.end_us))
    }
}

#[derive(serde::Deserialize)]
struct VersionOnly {
    version: String,
}

/// The part of a quality report the publisher needs.
#[derive(serde::Deserialize)]
struct QualityKey {
    model: VersionOnly,
    segment: String,
    window: WindowEnd,
}

impl Booked for QualityReport {
    fn book_key(&self) -> (String, i64) {
        QualityReport::book_key(self)
    }
    fn parse_key(payload: &[u8]) -> Option<(String, i64)> {
        let k: QualityKey = serde_json::from_slice(payload).ok()?;
        Some((
            format!("{}\u{1f}{}", k.model.version, k.segment),
            k.window.end_us,
        ))
    }
}

impl Booked for crate::quality::Evaluated {
    fn book_key(&self) -> (String, i64) {
        self.report.book_key()
    }
    fn parse_key(payload: &[u8]) -> Option<(String, i64)> {
        QualityReport::parse_key(payload)
    }
}

/// Reports seen on their topic and reports waiting to be published.
#[derive(Debug)]
pub(crate) struct ReportBook<T = DriftReport> {
    /// Per series, the newest window end on the topic (or published by us).
    reported: HashMap<String, i64>,
    /// Evaluated reports the topic does not show yet, by (window end, series).
    pending: BTreeMap<(i64, String), T>,
    /// Per partition of the topic, the end offset at start not read yet.
    reports_end: BTreeMap<i32, i64>,
    /// Pending reports whose window ends this long before the newest pending one are
    /// dropped.
    horizon_us: i64,
}

impl<T: Booked> ReportBook<T> {
    pub fn new(horizon_us: i64) -> Self {
        Self {
            reported: HashMap::new(),
            pending: BTreeMap::new(),
            reports_end: BTreeMap::new(),
            horizon_us,
        }
    }

    /// Where each partition of the topic ended at start (partitions with records only):
    /// nothing is published before they are read.
    pub fn start(&mut self, reports_end: BTreeMap<i32, i64>) {
        self.reports_end = reports_end;
    }

    /// Whether the topic was read up to where it ended at start.
    pub fn caught_up(&self) -> bool {
        self.reports_end.is_empty()
    }

    /// A record of the topic (ours or another publisher's).
    pub fn on_seen(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        if self
            .reports_end
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            self.reports_end.remove(&partition);
        }
        if let Some((series, end)) = payload.and_then(T::parse_key) {
            self.mark(series, end);
        }
    }

    /// A report this sidecar evaluated.
    pub fn evaluated(&mut self, report: T) {
        let (series, end) = report.book_key();
        self.pending.insert((end, series), report);
    }

    /// The reports to publish now, oldest window first: none unless `leader` (this sidecar
    /// owns input partition 0) and caught up. Drops pending reports already on the topic
    /// and those beyond the horizon.
    pub fn due(&mut self, leader: bool) -> Vec<T> {
        let reported = &self.reported;
        self.pending
            .retain(|(end, seg), _| reported.get(seg).is_none_or(|r| end > r));
        let horizon = self.pending.keys().map(|k| k.0).max().unwrap_or(0) - self.horizon_us;
        self.pending.retain(|(end, _), _| *end >= horizon);
        if leader && self.caught_up() {
            std::mem::take(&mut self.pending).into_values().collect()
        } else {
            Vec::new()
        }
    }

    /// `report` is on the topic now.
    pub fn published(&mut self, report: &T) {
        let (series, end) = report.book_key();
        self.mark(series, end);
    }

    fn mark(&mut self, series: String, end_us: i64) {
        let e = self.reported.entry(series).or_insert(end_us);
        *e = (*e).max(end_us);
    }

    #[cfg(test)]
    pub fn pending(&self) -> Vec<(i64, String)> {
        self.pending.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::report;
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn nothing_is_due_before_leading_and_catching_up() {
        let mut book: ReportBook = ReportBook::new(10 * S);
        book.start(BTreeMap::from([(0, 3)]));
        book.evaluated(report("*", 2 * S));
        assert!(book.due(true).is_empty(), "reports topic not read yet");
        book.on_seen(0, 1, None);
        assert!(!book.caught_up());
        book.on_seen(0, 2, Some(b"not a report"));
        assert!(book.caught_up());
        assert!(book.due(false).is_empty(), "not the leader");
        assert_eq!(book.pending(), [(2 * S, "*".to_owned())]);
        let due: Vec<(String, i64)> = book
            .due(true)
            .into_iter()
            .map(|r| (r.segment, r.window.end_us))
            .collect();
        assert_eq!(due, [("*".to_owned(), 2 * S)]);
        assert!(book.pending().is_empty());
    }

    #[test]
    fn windows_on_the_reports_topic_are_not_published_again() {
        let mut book: ReportBook = ReportBook::new(10 * S);
        for (seg, end) in [("*", 4 * S), ("*", 5 * S), ("*", 6 * S), ("cam", 5 * S)] {
            book.evaluated(report(seg, end));
        }
        // Another publisher's report for the fleet up to 5 s, and ours for `cam`.
        let seen = serde_json::to_vec(&report("*", 5 * S)).expect("json");
        book.on_seen(0, 0, Some(&seen));
        book.published(&report("cam", 5 * S));
        let due: Vec<(String, i64)> = book
            .due(true)
            .into_iter()
            .map(|r| (r.segment, r.window.end_us))
            .collect();
        assert_eq!(due, [("*".to_owned(), 6 * S)]);
        // A re-evaluated older window (a replay) stays unpublished.
        book.evaluated(report("*", 3 * S));
        assert!(book.due(true).is_empty());
    }

    #[test]
    fn pending_reports_beyond_the_horizon_are_dropped() {
        let mut book: ReportBook = ReportBook::new(10 * S);
        book.start(BTreeMap::from([(0, 1)]));
        for end in [S, 9 * S, 12 * S, 20 * S] {
            book.evaluated(report("*", end));
        }
        assert!(book.due(true).is_empty());
        // The newest is at 20 s: those ending before 10 s are dropped.
        assert_eq!(
            book.pending(),
            [(12 * S, "*".to_owned()), (20 * S, "*".to_owned())]
        );
    }
}
