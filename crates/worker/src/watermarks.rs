//! Lag and drain inputs of the worker: the broker's watermarks and committed offsets of the
//! assigned partitions, refreshed in the background, turned into the drain signal.
use crate::drain::{DrainSignal, PartitionInputs};
use crate::tracker::{Tp, Tracker};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use argus_kafka::GroupContext;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The latest watermarks per assigned partition.
pub(crate) type Highs = Arc<Mutex<HashMap<Tp, Watermarks>>>;

/// Recomputes and publishes the drain signal from positions, watermarks and the tracker;
/// returns how many partitions have been stalled for `stuck_after` (readiness).
pub(crate) fn update_drain(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Tracker,
    highs: &Mutex<HashMap<Tp, Watermarks>>,
    drain: &mut DrainSignal,
    paused: bool,
    worker: &str,
) -> usize {
    let Ok(positions) = consumer.position() else {
        return 0;
    };
    let highs = highs.lock().map(|h| h.clone()).unwrap_or_default();
    let assigned: HashMap<Tp, PartitionInputs> = positions
        .elements()
        .iter()
        .map(|e| {
            let tp = (e.topic().to_string(), e.partition());
            let position = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let w = highs.get(&tp);
            let inputs = PartitionInputs {
                position,
                high: w.map(|w| (w.high, w.at)),
                start: w.and_then(|w| w.committed.or(Some(w.low))),
                paused,
            };
            (tp, inputs)
        })
        .collect();
    let signals = drain.update(
        Instant::now(),
        argus_wire::now_us() / 1000,
        &assigned,
        &tracker.snapshot(),
    );
    drain.publish(&signals);
    drain.log_blocked(worker, &signals);
    drain.unready(&signals)
}

/// What the broker said about one partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watermarks {
    low: i64,
    high: i64,
    /// The group's committed offset, if any.
    committed: Option<i64>,
    at: Instant,
}

/// Keeps the watermarks and committed offsets of the assigned partitions fresh (every 2 s);
/// cached values from fetches would go stale while partitions are paused.
pub(crate) async fn watch_watermarks(
    consumer: Arc<StreamConsumer<GroupContext>>,
    highs: Arc<Mutex<HashMap<Tp, Watermarks>>>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let consumer = consumer.clone();
        let stop = shutdown.clone();
        let fetched = tokio::task::spawn_blocking(move || {
            let committed: HashMap<Tp, i64> = consumer
                .committed(Duration::from_secs(1))
                .map(|tpl| {
                    tpl.elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let assigned: Vec<Tp> = consumer
                .assignment()
                .map(|a: TopicPartitionList| {
                    a.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            assigned
                .into_iter()
                .take_while(|_| !stop.is_cancelled())
                .map(|(t, p)| {
                    let w = consumer
                        .fetch_watermarks(&t, p, Duration::from_secs(1))
                        .ok()
                        .filter(|(_, high)| *high >= 0)
                        .map(|(low, high)| Watermarks {
                            low,
                            high,
                            committed: committed.get(&(t.clone(), p)).copied(),
                            at: Instant::now(),
                        });
                    ((t, p), w)
                })
                .collect::<Vec<(Tp, Option<Watermarks>)>>()
        })
        .await;
        if let (Ok(fetched), Ok(mut h)) = (fetched, highs.lock()) {
            // Keep the last known value when a fetch failed; forget revoked partitions.
            let assigned: std::collections::HashSet<&Tp> =
                fetched.iter().map(|(tp, _)| tp).collect();
            h.retain(|tp, _| assigned.contains(tp));
            for (tp, w) in &fetched {
                if let Some(w) = w {
                    h.insert(tp.clone(), *w);
                }
            }
        }
    }
}
