//! Which evaluated reports this sidecar publishes, and when.
//!
//! Every sidecar evaluates every window (cheap) and reads the reports topic. The owner of
//! input partition 0 publishes every evaluated report the reports topic does not show yet —
//! also windows that completed while no sidecar led (a rebalance) — once it has read the
//! topic up to where it ended at start, so a restart does not republish history. A report is
//! identified by (segment, `window.end_us`); reports older than the alarm's memory are not
//! kept waiting forever.
use argus_stats::report::DriftReport;
use std::collections::{BTreeMap, HashMap};

/// The part of a report the publisher needs to know it was published.
#[derive(serde::Deserialize)]
struct ReportKey {
    segment: String,
    window: ReportWindow,
}

#[derive(serde::Deserialize)]
struct ReportWindow {
    end_us: i64,
}

/// Reports seen on the reports topic and reports waiting to be published.
#[derive(Debug, Default)]
pub(crate) struct ReportBook {
    /// Per segment, the newest window end on the reports topic (or published by us).
    reported: HashMap<String, i64>,
    /// Evaluated reports the reports topic does not show yet, by (window end, segment).
    pending: BTreeMap<(i64, String), DriftReport>,
    /// Per reports-topic partition, the end offset at start not read yet.
    reports_end: BTreeMap<i32, i64>,
    /// Pending reports whose window ends this long before the newest pending one are
    /// dropped.
    horizon_us: i64,
}

impl ReportBook {
    pub fn new(horizon_us: i64) -> Self {
        Self {
            horizon_us,
            ..Self::default()
        }
    }

    /// Where each partition of the reports topic ended at start (partitions with records
    /// only): nothing is published before they are read.
    pub fn start(&mut self, reports_end: BTreeMap<i32, i64>) {
        self.reports_end = reports_end;
    }

    /// Whether the reports topic was read up to where it ended at start.
    pub fn caught_up(&self) -> bool {
        self.reports_end.is_empty()
    }

    /// A record of the reports topic (ours or another publisher's).
    pub fn on_seen(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        if self
            .reports_end
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            self.reports_end.remove(&partition);
        }
        if let Some(seen) = payload.and_then(|p| serde_json::from_slice::<ReportKey>(p).ok()) {
            self.mark(seen.segment, seen.window.end_us);
        }
    }

    /// A report this sidecar evaluated.
    pub fn evaluated(&mut self, report: DriftReport) {
        self.pending
            .insert((report.window.end_us, report.segment.clone()), report);
    }

    /// The reports to publish now, oldest window first: none unless `leader` (this sidecar
    /// owns input partition 0) and caught up. Drops pending reports already on the topic
    /// and those beyond the horizon.
    pub fn due(&mut self, leader: bool) -> Vec<DriftReport> {
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

    /// `report` is on the reports topic now.
    pub fn published(&mut self, report: &DriftReport) {
        self.mark(report.segment.clone(), report.window.end_us);
    }

    fn mark(&mut self, segment: String, end_us: i64) {
        let e = self.reported.entry(segment).or_insert(end_us);
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
        let mut book = ReportBook::new(10 * S);
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
        let mut book = ReportBook::new(10 * S);
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
        let mut book = ReportBook::new(10 * S);
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
