//! What the quality join costs the drift sidecar: CPU per prediction and per label through
//! the join, the windows and their judgement (the aggregator's part, done by every sidecar),
//! and the bytes each adds to the pane partials on the panes topic.
//!
//! `cargo run --release -p argus-drift --example quality_cost [PREDICTIONS]` (the figures in
//! `docs/quality.md` were taken with the dev profile at opt-level 3 for argus-drift and
//! argus-stats, the command given there, which builds in seconds on a warm debug target).
//! (default 1 000 000 predictions over 8 cameras and two versions, half of them labelled,
//! 100 per second of event time, 60 s panes, 5-pane windows, a 10-minute horizon).
use argus_drift::quality::{Labelled, PaneTuples, Predicted, QualityConfig, QualityTracker};
use argus_stats::live::LiveMetric;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    const S: i64 = 1_000_000;
    let pane_us = 60 * S;
    let cfg = QualityConfig {
        horizon_us: 600 * S,
        pane_us,
        window_panes: 5,
        positive: "churn".into(),
        threshold: 0.5,
        ece_bins: 10,
        floors: vec![(LiveMetric::Precision, 0.5)],
        reference: vec![(LiveMetric::Accuracy, 0.9), (LiveMetric::RocAuc, 0.85)],
        alpha: 0.01,
        min_items: 30,
    };
    // 100 predictions per second of event time; labels 30 s later, every other one.
    let rate = 100;
    let mut panes: std::collections::BTreeMap<i64, PaneTuples> = Default::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut labels = 0usize;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let event = i as i64 * S / rate;
        let truth = x % 3 == 0;
        // Right nine times in ten.
        let said = if (x >> 8) % 10 == 0 { !truth } else { truth };
        let score = if said { 0.9 } else { 0.1 };
        let id = format!("in/{}/{i}", i % 8);
        let pane = event / pane_us;
        let p = Predicted {
            id: id.clone(),
            version: if i % 2 == 0 { "1" } else { "2" }.into(),
            segment: format!("cam-{}", i % 8),
            score,
            event_us: event,
        };
        panes.entry(pane).or_default().predictions.push(p);
        if i % 2 == 0 {
            labels += 1;
            let at = event + 30 * S;
            let lp = at / pane_us;
            let l = Labelled {
                id,
                label: if truth { "churn" } else { "stay" }.into(),
                labelled_at_us: at,
            };
            // Labels land in the pane they arrive in.
            panes.entry(lp).or_default().labels.push(l);
        }
    }
    // Every sidecar reads every partial back from the panes topic.
    let json: Vec<Vec<u8>> = panes
        .values()
        .map(|p| serde_json::to_vec(p).unwrap_or_default())
        .collect();
    let bytes: usize = json.iter().map(Vec::len).sum();
    let parsing = Instant::now();
    let parsed = json
        .iter()
        .filter(|j| serde_json::from_slice::<PaneTuples>(j).is_ok())
        .count();
    let parse_s = parsing.elapsed().as_secs_f64();
    assert_eq!(parsed, panes.len());
    let mut tracker = QualityTracker::new(cfg, "churn", None, 2);
    let started = Instant::now();
    let mut reports = 0;
    for (pane, tuples) in &panes {
        let end = (pane + 1) * pane_us;
        tracker.feed_pane(end, [tuples]);
        reports += tracker.advance(end).len();
    }
    let last = panes.keys().next_back().map_or(0, |p| (p + 1) * pane_us);
    reports += tracker.advance(last + 2 * 600 * S).len();
    let took = started.elapsed();
    let (counts, _) = tracker.counts();
    let items = n + labels;
    println!(
        "{n} predictions, {labels} labels ({} joined), {reports} reports over {} panes: join and judgement {:.0} ms, {:.2} µs per prediction or label, {:.2} µs per prediction joined; partial tuples {:.0} bytes and {:.2} µs to parse per prediction or label",
        counts.joined,
        panes.len(),
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e6 / items as f64,
        took.as_secs_f64() * 1e6 / counts.joined.max(1) as f64,
        bytes as f64 / items as f64,
        parse_s * 1e6 / items as f64,
    );
}
