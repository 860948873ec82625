//! The drain signal: per partition, how far behind the worker is (records and seconds), how
//! fast records arrive and finish, how long catching up will take, and whether the
//! partition is stuck on one input. Computed once a second from the tracker, the consumer's
//! positions and the partitions' high watermarks; published as gauges an autoscaler reads.
use crate::metrics as m;
use crate::tracker::{PartSnapshot, Tp};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Weight of the newest sample in the rate averages (updated about once a second).
const ALPHA: f64 = 0.3;

/// The drain gauges are capped here (one day) so they stay finite: an autoscaler reading
/// +Inf as "no value" (KEDA's Prometheus scaler does, `ignoreNullValues`) would scale in
/// exactly when it should scale out. [`m::FALLING_BEHIND`] says when the cap stands for
/// "never".
pub const DRAIN_CAP_SECONDS: f64 = 86_400.0;

/// A partition with records to read, nothing in flight and not paused whose position has
/// not moved for this long is stalled: the consumer is not returning its records (a batch
/// it cannot decompress or parse, say). Healthy partitions fetch within milliseconds.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Rates {
    generation: u64,
    /// When `finished_total` was sampled.
    at: Instant,
    high: i64,
    /// When `high` was fetched.
    high_at: Instant,
    finished_total: u64,
    arrival: f64,
    processing: f64,
    /// The consumer's position at the last update, and since when it has been there.
    position: Option<i64>,
    position_since: Instant,
}

/// The signal for one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionSignal {
    pub lag_records: i64,
    /// `None` when no timestamp is known.
    pub lag_seconds: Option<f64>,
    pub arrival_rate: f64,
    pub processing_rate: f64,
    /// `f64::INFINITY` when not catching up.
    pub drain_seconds: f64,
    pub oldest_in_flight: Option<Duration>,
    /// The lowest unfinished input has been in flight longer than `stuck_after`.
    pub stuck: bool,
    /// Records wait but the consumer's position has not moved for [`STALL_AFTER`] with
    /// nothing in flight while the worker was ready to read.
    pub stalled: bool,
    /// How long the position has stood still so (zero when not stalled).
    pub stalled_for: Duration,
    /// The consumer's position (next offset to read), if known.
    pub position: Option<i64>,
    pub in_flight: usize,
}

impl PartitionSignal {
    /// Stuck on an input or stalled: the partition makes no progress.
    pub fn blocked(&self) -> bool {
        self.stuck || self.stalled
    }
}

/// Estimated seconds to clear `lag` records: 0 when everything outstanding is already in
/// flight, +Inf when records arrive at least as fast as they finish.
pub fn drain_seconds(lag: i64, in_flight: usize, processing: f64, arrival: f64) -> f64 {
    if lag <= in_flight.max(1) as i64 {
        return 0.0;
    }
    let net = processing - arrival;
    if net > 1e-3 {
        lag as f64 / net
    } else {
        f64::INFINITY
    }
}

/// Rate state across updates.
#[derive(Debug)]
pub struct DrainSignal {
    rates: HashMap<Tp, Rates>,
    published: HashSet<Tp>,
    /// Partitions reported blocked, so each is logged once when it blocks and once when
    /// it moves again.
    blocked: HashSet<Tp>,
    stuck_after: Duration,
}

/// What the worker knows about one assigned partition at an update.
#[derive(Debug, Clone, Default)]
pub struct PartitionInputs {
    /// Next offset the consumer will return (its position), if known.
    pub position: Option<i64>,
    /// High watermark and when it was fetched, if known.
    pub high: Option<(i64, Instant)>,
    /// Where consumption starts when nothing has been consumed yet: the committed offset,
    /// else the low watermark.
    pub start: Option<i64>,
    /// The worker is not reading (paused for backpressure, or busy with what it has read):
    /// positions are expected not to move.
    pub paused: bool,
}

impl DrainSignal {
    pub fn new(stuck_after: Duration) -> Self {
        DrainSignal {
            rates: HashMap::new(),
            published: HashSet::new(),
            blocked: HashSet::new(),
            stuck_after,
        }
    }

    /// Computes the signal for every assigned partition. `now_ms` is wall-clock time (ms
    /// since the Unix epoch) for ages from Kafka timestamps.
    pub fn update(
        &mut self,
        now: Instant,
        now_ms: i64,
        assigned: &HashMap<Tp, PartitionInputs>,
        tracker: &HashMap<Tp, PartSnapshot>,
    ) -> HashMap<Tp, PartitionSignal> {
        self.rates.retain(|tp, _| assigned.contains_key(tp));
        let mut out = HashMap::new();
        for (tp, inputs) in assigned {
            let snap = tracker.get(tp);
            let finished_total = snap.map_or(0, |s| s.finished_total);
            let generation = snap.map_or(0, |s| s.generation);
            let in_flight = snap.map_or(0, |s| s.in_flight);
            let oldest = snap.and_then(|s| s.oldest);
            // First unfinished offset: the oldest in flight, else the next to consume.
            let next_unfinished = oldest
                .map(|(o, _)| o)
                .or(inputs.position)
                .or_else(|| snap.and_then(|s| s.finished_upto))
                .or(inputs.start);
            let Some((high, high_at)) = inputs.high else {
                continue;
            };
            // Unknown start: report nothing rather than a lag of 0.
            let Some(next_unfinished) = next_unfinished else {
                continue;
            };
            let lag = (high - next_unfinished).max(0);
            let fresh = Rates {
                generation,
                at: now,
                high,
                high_at,
                finished_total,
                arrival: 0.0,
                processing: 0.0,
                position: inputs.position,
                position_since: now,
            };
            let r = self.rates.entry(tp.clone()).or_insert(fresh);
            if r.generation != generation {
                // Reassigned since the last update: start the averages again.
                *r = fresh;
            }
            // Each rate is sampled over the interval of its own source: watermarks arrive
            // less often than updates run, and reusing a stale one would read as 0 arrivals.
            let dt_high = high_at.saturating_duration_since(r.high_at).as_secs_f64();
            if dt_high >= 0.2 {
                let arrival = (high - r.high).max(0) as f64 / dt_high;
                r.arrival += ALPHA * (arrival - r.arrival);
                r.high = high;
                r.high_at = high_at;
            }
            let dt = now.saturating_duration_since(r.at).as_secs_f64();
            if dt >= 0.2 {
                let processing = finished_total.saturating_sub(r.finished_total) as f64 / dt;
                r.processing += ALPHA * (processing - r.processing);
                r.at = now;
                r.finished_total = finished_total;
            }
            let lag_seconds = if lag == 0 {
                Some(0.0)
            } else {
                snap.and_then(|s| {
                    s.oldest_timestamp_ms
                        .or_else(|| s.last_consumed.and_then(|(_, ts)| ts))
                })
                .map(|ts| ((now_ms - ts).max(0)) as f64 / 1000.0)
            };
            let stuck = oldest.is_some_and(|(_, age)| age >= self.stuck_after);
            if r.position != inputs.position || inputs.paused || in_flight > 0 {
                r.position = inputs.position;
                r.position_since = now;
            }
            // More than one record: the last offset of a transactionally written partition
            // is a commit marker the consumer never returns, a lag of 1 that never drains.
            // A partition whose first fetch fails (a corrupt batch at the committed offset)
            // never gets a position: "none" that does not move is a stall too.
            let still = now.saturating_duration_since(r.position_since);
            let stalled = lag > 1 && still >= STALL_AFTER;
            out.insert(
                tp.clone(),
                PartitionSignal {
                    lag_records: lag,
                    lag_seconds,
                    arrival_rate: r.arrival,
                    processing_rate: r.processing,
                    drain_seconds: drain_seconds(lag, in_flight, r.processing, r.arrival),
                    oldest_in_flight: oldest.map(|(_, age)| age),
                    stuck,
                    stalled,
                    stalled_for: if stalled { still } else { Duration::ZERO },
                    position: inputs.position,
                    in_flight,
                },
            );
        }
        out
    }

    /// Partitions stalled for `stuck_after` or longer: what readiness fails on. (An input
    /// in flight that long is overload, not unreadiness: it shows in the gauge only.)
    pub fn unready(&self, signals: &HashMap<Tp, PartitionSignal>) -> usize {
        signals
            .values()
            .filter(|s| s.stalled && s.stalled_for >= self.stuck_after)
            .count()
    }

    /// Logs each partition once when it becomes blocked (with its offset and the likely
    /// cause) and once when it moves again. Returns how many are blocked.
    pub fn log_blocked(&mut self, worker: &str, signals: &HashMap<Tp, PartitionSignal>) -> usize {
        let now_blocked: HashSet<Tp> = signals
            .iter()
            .filter(|(_, s)| s.blocked())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in now_blocked.difference(&self.blocked) {
            let s = &signals[tp];
            if s.stuck {
                tracing::error!(
                    worker, topic = %tp.0, partition = tp.1,
                    oldest_in_flight_s = s.oldest_in_flight.map_or(0.0, |d| d.as_secs_f64()),
                    "partition stuck: its lowest unfinished input has not finished"
                );
            } else {
                tracing::error!(
                    worker, topic = %tp.0, partition = tp.1, offset = s.position,
                    lag_records = s.lag_records,
                    "partition stalled: records wait at this offset but the consumer returns none (see the consumer errors logged: a batch it cannot decompress or parse?)"
                );
            }
        }
        for tp in self.blocked.difference(&now_blocked) {
            if signals.contains_key(tp) {
                tracing::info!(worker, topic = %tp.0, partition = tp.1, "partition moving again");
            }
        }
        self.blocked = now_blocked;
        self.blocked.len()
    }

    /// Sets the gauges; partitions no longer assigned are set to 0 once (their new owner
    /// reports them) and, no longer updated, are dropped from `/metrics` by the binary
    /// ([`PARTITION_GAUGES`](crate::metrics::PARTITION_GAUGES)). Returns the worker's drain
    /// estimate (uncapped).
    pub fn publish(&mut self, signals: &HashMap<Tp, PartitionSignal>) -> f64 {
        for tp in self.published.iter() {
            if !signals.contains_key(tp) {
                let labels = [("topic", tp.0.clone()), ("partition", tp.1.to_string())];
                for name in [
                    m::LAG_RECORDS,
                    m::LAG_SECONDS,
                    m::ARRIVAL_RATE,
                    m::PROCESSING_RATE,
                    m::PARTITION_DRAIN_SECONDS,
                    m::OLDEST_IN_FLIGHT_SECONDS,
                    m::PARTITION_STUCK,
                ] {
                    metrics::gauge!(name, &labels).set(0.0);
                }
            }
        }
        self.published = signals.keys().cloned().collect();
        // The worker's total first: a scrape between the two never pairs a partition's new
        // stuck flag or lag with the total of the update before (seen as a flaky test).
        let (mut lag, mut in_flight, mut processing, mut arrival) = (0i64, 0usize, 0.0, 0.0);
        for s in signals.values() {
            lag += s.lag_records;
            in_flight += s.in_flight;
            processing += s.processing_rate;
            arrival += s.arrival_rate;
        }
        let total = drain_seconds(lag, in_flight, processing, arrival);
        metrics::gauge!(m::DRAIN_SECONDS).set(total.min(DRAIN_CAP_SECONDS));
        metrics::gauge!(m::FALLING_BEHIND).set(if total.is_infinite() { 1.0 } else { 0.0 });
        for (tp, s) in signals {
            let labels = [("topic", tp.0.clone()), ("partition", tp.1.to_string())];
            metrics::gauge!(m::LAG_RECORDS, &labels).set(s.lag_records as f64);
            if let Some(secs) = s.lag_seconds {
                metrics::gauge!(m::LAG_SECONDS, &labels).set(secs);
            }
            metrics::gauge!(m::ARRIVAL_RATE, &labels).set(s.arrival_rate);
            metrics::gauge!(m::PROCESSING_RATE, &labels).set(s.processing_rate);
            metrics::gauge!(m::PARTITION_DRAIN_SECONDS, &labels)
                .set(s.drain_seconds.min(DRAIN_CAP_SECONDS));
            metrics::gauge!(m::OLDEST_IN_FLIGHT_SECONDS, &labels)
                .set(s.oldest_in_flight.map_or(0.0, |d| d.as_secs_f64()));
            metrics::gauge!(m::PARTITION_STUCK, &labels).set(if s.blocked() { 1.0 } else { 0.0 });
        }
        total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tp() -> Tp {
        ("in".into(), 0)
    }

    fn snap(finished_total: u64, oldest: Option<(i64, Duration)>, ts: Option<i64>) -> PartSnapshot {
        PartSnapshot {
            generation: 1,
            in_flight: usize::from(oldest.is_some()),
            consumed_total: finished_total + 1,
            finished_total,
            finished_upto: None,
            oldest,
            oldest_timestamp_ms: ts,
            last_consumed: None,
        }
    }

    #[test]
    fn drain_estimate() {
        assert_eq!(drain_seconds(0, 0, 10.0, 5.0), 0.0);
        assert_eq!(drain_seconds(8, 8, 10.0, 5.0), 0.0);
        assert_eq!(drain_seconds(1000, 10, 150.0, 50.0), 10.0);
        assert_eq!(drain_seconds(1000, 10, 50.0, 50.0), f64::INFINITY);
    }

    #[test]
    fn rates_lag_and_stuck_from_successive_updates() {
        let mut d = DrainSignal::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let assigned = |pos, high, at| {
            HashMap::from([(
                tp(),
                PartitionInputs {
                    position: Some(pos),
                    high: Some((high, at)),
                    start: None,
                    paused: false,
                },
            )])
        };
        let s0 = HashMap::from([(tp(), snap(0, Some((0, Duration::ZERO)), Some(1_000)))]);
        d.update(t0, 1_000, &assigned(1, 100, t0), &s0);
        // One second later: 100 more records arrived, 50 finished, input 50 in flight for
        // 40 s (stuck), its timestamp 4 s old.
        let s1 = HashMap::from([(
            tp(),
            snap(50, Some((50, Duration::from_secs(40))), Some(1_000)),
        )]);
        let t1 = t0 + Duration::from_secs(1);
        let out = d.update(t1, 5_000, &assigned(51, 200, t1), &s1);
        let s = out[&tp()];
        assert_eq!(s.lag_records, 150);
        assert_eq!(s.lag_seconds, Some(4.0));
        assert!((s.arrival_rate - 30.0).abs() < 1e-9, "{}", s.arrival_rate);
        assert!((s.processing_rate - 15.0).abs() < 1e-9);
        assert_eq!(s.drain_seconds, f64::INFINITY);
        assert!(s.stuck);
        let total = d.publish(&out);
        assert_eq!(total, f64::INFINITY);
        // A second later the watermark has not been refetched: arrival keeps its value
        // instead of reading as 0 (which would swing the drain estimate).
        let t2 = t1 + Duration::from_secs(1);
        let out = d.update(t2, 6_000, &assigned(61, 200, t1), &s1);
        assert!((out[&tp()].arrival_rate - 30.0).abs() < 1e-9);
    }

    #[test]
    fn a_partition_not_consumed_yet_reports_its_backlog_from_the_committed_offset() {
        let mut d = DrainSignal::new(Duration::from_secs(30));
        let now = Instant::now();
        let inputs = PartitionInputs {
            position: None,
            high: Some((500, now)),
            start: Some(120),
            paused: false,
        };
        let out = d.update(now, 0, &HashMap::from([(tp(), inputs)]), &HashMap::new());
        assert_eq!(out[&tp()].lag_records, 380);
        // Without any known start, nothing is reported (rather than a lag of 0).
        let unknown = PartitionInputs {
            position: None,
            high: Some((500, now)),
            start: None,
            paused: false,
        };
        let out = d.update(now, 0, &HashMap::from([(tp(), unknown)]), &HashMap::new());
        assert!(out.is_empty());
    }

    /// A partition whose position does not move while records wait is stalled after
    /// `STALL_AFTER` — unless it is paused or has inputs in flight — and logged once.
    #[test]
    fn a_partition_whose_records_never_come_is_stalled_within_seconds() {
        let mut d = DrainSignal::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |pos: i64, paused: bool| {
            HashMap::from([(
                tp(),
                PartitionInputs {
                    position: Some(pos),
                    high: Some((100, t0)),
                    start: None,
                    paused,
                },
            )])
        };
        let idle = HashMap::from([(tp(), snap(0, None, None))]);
        let busy = HashMap::from([(tp(), snap(0, Some((40, Duration::from_secs(1))), None))]);
        let step = |d: &mut DrainSignal,
                    secs: u64,
                    pos: i64,
                    paused: bool,
                    snap: &HashMap<Tp, PartSnapshot>| {
            d.update(t0 + Duration::from_secs(secs), 0, &at(pos, paused), snap)[&tp()]
        };
        assert!(!step(&mut d, 0, 40, false, &idle).stalled);
        assert!(!step(&mut d, 4, 40, false, &idle).stalled);
        let s = step(&mut d, 6, 40, false, &idle);
        assert!(s.stalled && s.blocked() && !s.stuck);
        assert_eq!(d.log_blocked("w", &HashMap::from([(tp(), s)])), 1);
        // Moving again clears it.
        let s = step(&mut d, 7, 41, false, &idle);
        assert!(!s.stalled);
        assert_eq!(d.log_blocked("w", &HashMap::from([(tp(), s)])), 0);
        // Paused (backpressure) or with an input in flight, a still position is expected.
        assert!(!step(&mut d, 20, 41, true, &idle).stalled);
        assert!(!step(&mut d, 40, 41, false, &busy).stalled);
        // Caught up (no lag): nothing to stall on.
        let mut caught_up = at(100, false);
        caught_up.get_mut(&tp()).unwrap().position = Some(100);
        let out = d.update(t0 + Duration::from_secs(60), 0, &caught_up, &idle);
        assert!(!out[&tp()].stalled);
        // One record left that never comes (a transaction's commit marker): not stalled.
        let mut marker = at(99, false);
        marker.get_mut(&tp()).unwrap().position = Some(99);
        d.update(t0 + Duration::from_secs(61), 0, &marker, &idle);
        let out = d.update(t0 + Duration::from_secs(80), 0, &marker, &idle);
        assert!(!out[&tp()].stalled);
    }

    /// The first fetch after assignment fails (a corrupt batch at the committed offset):
    /// the consumer never has a position, the lag from the committed offset never drains.
    #[test]
    fn a_partition_that_never_gets_a_position_is_stalled_too() {
        let mut d = DrainSignal::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let never_read = HashMap::from([(
            tp(),
            PartitionInputs {
                position: None,
                high: Some((100, t0)),
                start: Some(40),
                paused: false,
            },
        )]);
        let idle = HashMap::from([(tp(), snap(0, None, None))]);
        let s = d.update(t0, 0, &never_read, &idle)[&tp()];
        assert_eq!(s.lag_records, 60);
        assert!(!s.stalled, "not at once: the first fetch takes a moment");
        let s = d.update(t0 + Duration::from_secs(6), 0, &never_read, &idle)[&tp()];
        assert!(s.stalled && s.position.is_none(), "{s:?}");
    }

    #[test]
    fn the_drain_gauge_stays_finite_and_falling_behind_says_so() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut d = DrainSignal::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let signal = PartitionSignal {
            lag_records: 1000,
            lag_seconds: None,
            arrival_rate: 50.0,
            processing_rate: 40.0,
            drain_seconds: f64::INFINITY,
            oldest_in_flight: None,
            stuck: false,
            stalled: false,
            stalled_for: Duration::ZERO,
            position: Some(1),
            in_flight: 0,
        };
        let _ = t0;
        let total =
            metrics::with_local_recorder(&recorder, || d.publish(&HashMap::from([(tp(), signal)])));
        assert_eq!(total, f64::INFINITY);
        let gauges: HashMap<String, f64> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(k, ..)| k.key().labels().count() == 0)
            .filter_map(|(k, _, _, v)| match v {
                metrics_util::debugging::DebugValue::Gauge(g) => {
                    Some((k.key().name().to_owned(), g.into_inner()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(gauges[m::DRAIN_SECONDS], DRAIN_CAP_SECONDS);
        assert_eq!(gauges[m::FALLING_BEHIND], 1.0);
    }
}
