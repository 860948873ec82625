//! Per-partition bookkeeping of inputs in flight: which are running, publishing or done,
//! how far each partition is finished contiguously (the only offset that may be stored or
//! committed), and which partitions this worker still owns.
//!
//! The tracker is the authority on ownership for in-flight work: a job may hand its outputs
//! to the producer only through [`Tracker::begin_publish`], which fails once the partition
//! is being revoked. The revoke hook waits (bounded) for outputs already handed over, then
//! stores what finished contiguously and forgets the partition; everything else of that
//! partition is abandoned and will be redone by the next owner.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A partition: (topic, partition).
pub type Tp = (String, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Publishing,
    Done,
}

#[derive(Debug)]
struct Entry {
    state: State,
    since: Instant,
    /// Kafka timestamp of the input, ms since the Unix epoch.
    timestamp_ms: Option<i64>,
}

/// One owned partition.
#[derive(Debug)]
struct Part {
    generation: u64,
    revoking: bool,
    entries: BTreeMap<i64, Entry>,
    /// Entries finished (`Done`) and waiting for an earlier input.
    done: usize,
    /// Inputs finished contiguously since the partition was assigned.
    finished_total: u64,
    /// Inputs consumed since the partition was assigned.
    consumed_total: u64,
    /// Next offset to store/commit (after the contiguous finished prefix), once known.
    finished_upto: Option<i64>,
    /// Offset and Kafka timestamp of the last input consumed.
    last_consumed: Option<(i64, Option<i64>)>,
    /// Next offset stored (handed to the consumer for commit) and confirmed committed; the
    /// inputs between them are finished but would be redone after a crash, so they count
    /// as uncommitted ([`Tracker::uncommitted_window`]).
    stored_upto: i64,
    committed_upto: i64,
}

impl Part {
    /// A partition first seen at `offset` (everything before it is committed: consumption
    /// resumes from the committed offset).
    fn new(generation: u64, offset: i64) -> Self {
        Part {
            generation,
            revoking: false,
            entries: BTreeMap::new(),
            done: 0,
            finished_total: 0,
            consumed_total: 0,
            finished_upto: None,
            last_consumed: None,
            stored_upto: offset,
            committed_upto: offset,
        }
    }
}

/// What [`Tracker::snapshot`] reports per partition, for the drain signal.
#[derive(Debug, Clone, PartialEq)]
pub struct PartSnapshot {
    pub generation: u64,
    /// Inputs consumed and not yet stored: unfinished, or finished behind an unfinished one
    /// (more than [`Tracker::in_flight`] counts).
    pub in_flight: usize,
    pub consumed_total: u64,
    pub finished_total: u64,
    pub finished_upto: Option<i64>,
    /// Offset and age (since consumed) of the lowest unfinished input.
    pub oldest: Option<(i64, Duration)>,
    /// Kafka timestamp (ms) of the lowest unfinished input, if any.
    pub oldest_timestamp_ms: Option<i64>,
    /// Offset and Kafka timestamp (ms) of the last input consumed.
    pub last_consumed: Option<(i64, Option<i64>)>,
}

/// Shared bookkeeping; see the module docs.
#[derive(Debug, Default)]
pub struct Tracker {
    parts: Mutex<HashMap<Tp, Part>>,
    changed: Condvar,
}

impl Tracker {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Tp, Part>> {
        // A poisoned lock means a panic elsewhere mid-update; the data is still coherent
        // enough for bookkeeping (every update is a single map operation).
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a consumed input of `tp` (assigned in `generation`).
    #[cfg(test)]
    pub fn start(&self, tp: &Tp, generation: u64, offset: i64) {
        self.start_at(tp, generation, offset, None)
    }

    /// [`Tracker::start`] with the input's Kafka timestamp (ms), for lag in seconds.
    pub fn start_at(&self, tp: &Tp, generation: u64, offset: i64, timestamp_ms: Option<i64>) {
        let mut parts = self.lock();
        let part = parts
            .entry(tp.clone())
            .or_insert_with(|| Part::new(generation, offset));
        if part.generation != generation {
            // Reassigned: whatever the old generation left behind is not ours any more.
            *part = Part::new(generation, offset);
        }
        part.consumed_total += 1;
        part.last_consumed = Some((offset, timestamp_ms));
        let replaced = part.entries.insert(
            offset,
            Entry {
                state: State::Running,
                since: Instant::now(),
                timestamp_ms,
            },
        );
        if replaced.is_some_and(|e| e.state == State::Done) {
            part.done -= 1;
        }
    }

    /// Whether the job may hand its outputs to the producer; if so it is marked publishing
    /// until [`Tracker::finish`]. False once the partition is revoked or reassigned.
    pub fn begin_publish(&self, tp: &Tp, generation: u64, offset: i64) -> bool {
        let mut parts = self.lock();
        match parts.get_mut(tp) {
            Some(p) if p.generation == generation && !p.revoking => {
                match p.entries.get_mut(&offset) {
                    Some(e) => {
                        if e.state == State::Done {
                            p.done -= 1;
                        }
                        e.state = State::Publishing;
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// The job's outputs are acknowledged (or, in a transaction, queued). False if the
    /// partition is no longer ours in that generation.
    pub fn finish(&self, tp: &Tp, generation: u64, offset: i64) -> bool {
        let mut parts = self.lock();
        let ok = match parts.get_mut(tp) {
            Some(p) if p.generation == generation => match p.entries.get_mut(&offset) {
                Some(e) => {
                    if e.state != State::Done {
                        e.state = State::Done;
                        p.done += 1;
                    }
                    true
                }
                None => false,
            },
            _ => false,
        };
        drop(parts);
        self.changed.notify_all();
        ok
    }

    /// The job ended without outputs (its partition was revoked first): forget it without
    /// finishing, so nothing after it is stored.
    pub fn abandon(&self, tp: &Tp, generation: u64, offset: i64) {
        let mut parts = self.lock();
        if let Some(p) = parts.get_mut(tp) {
            if p.generation == generation {
                if let Some(e) = p.entries.get_mut(&offset) {
                    if e.state == State::Done {
                        p.done -= 1;
                    }
                    e.state = State::Running;
                }
            }
        }
        drop(parts);
        self.changed.notify_all();
    }

    /// Pops the contiguous finished prefix of `part`; returns the next offset to commit.
    fn advance_part(part: &mut Part) -> Option<i64> {
        let mut last = None;
        while let Some(entry) = part.entries.first_entry() {
            if entry.get().state != State::Done {
                break;
            }
            last = Some(*entry.key());
            entry.remove();
            part.done -= 1;
            part.finished_total += 1;
        }
        let next = last.map(|o| o + 1);
        if let Some(n) = next {
            part.finished_upto = next;
            part.stored_upto = part.stored_upto.max(n);
        }
        next
    }

    /// The group coordinator confirmed `next` as committed for `tp`.
    pub fn committed(&self, tp: &Tp, next: i64) {
        if let Some(p) = self.lock().get_mut(tp) {
            p.committed_upto = p.committed_upto.max(next);
        }
    }

    /// Per partition with finished, uncommitted inputs: the next offset to commit.
    pub fn commit_points(&self) -> Vec<(Tp, i64)> {
        self.lock()
            .iter()
            .filter(|(_, p)| p.stored_upto > p.committed_upto)
            .map(|(tp, p)| (tp.clone(), p.stored_upto))
            .collect()
    }

    /// Inputs finished and stored but not yet confirmed committed.
    pub fn uncommitted(&self) -> u64 {
        self.lock()
            .values()
            .map(|p| (p.stored_upto - p.committed_upto).max(0) as u64)
            .sum()
    }

    /// For every owned partition whose finished prefix grew: the next offset to commit.
    pub fn advance_all(&self) -> Vec<(Tp, i64)> {
        let mut parts = self.lock();
        parts
            .iter_mut()
            .filter_map(|(tp, p)| Self::advance_part(p).map(|o| (tp.clone(), o)))
            .collect()
    }

    /// Revocation: no more outputs may start for `tps`; waits up to `grace` for outputs
    /// already handed to the producer, then returns the next offset to commit for each
    /// partition whose finished prefix grew, forgets the partitions and reports how many
    /// inputs were abandoned.
    pub fn revoke(&self, tps: &[Tp], grace: Duration) -> (Vec<(Tp, i64)>, usize) {
        let mut parts = self.lock();
        for tp in tps {
            if let Some(p) = parts.get_mut(tp) {
                p.revoking = true;
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            let publishing = tps.iter().any(|tp| {
                parts
                    .get(tp)
                    .is_some_and(|p| p.entries.values().any(|e| e.state == State::Publishing))
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if !publishing || left.is_zero() {
                break;
            }
            parts = self
                .changed
                .wait_timeout(parts, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let mut commit = Vec::new();
        let mut abandoned = 0;
        for tp in tps {
            if let Some(mut p) = parts.remove(tp) {
                if let Some(o) = Self::advance_part(&mut p) {
                    commit.push((tp.clone(), o));
                }
                abandoned += p.entries.len();
            }
        }
        (commit, abandoned)
    }

    /// Inputs consumed and not yet committed: unfinished, finished but waiting for an
    /// earlier input, and finished but not yet confirmed committed. A crash redoes at most
    /// these, so bounding this bounds duplicates.
    pub fn uncommitted_window(&self) -> usize {
        self.lock()
            .values()
            .map(|p| p.entries.len() + (p.stored_upto - p.committed_upto).max(0) as usize)
            .sum()
    }

    /// Inputs consumed and not yet finished (running or publishing): the work in flight.
    pub fn in_flight(&self) -> usize {
        self.lock()
            .values()
            .map(|p| p.entries.len().saturating_sub(p.done))
            .sum()
    }

    /// Per-partition state for the drain signal.
    pub fn snapshot(&self) -> HashMap<Tp, PartSnapshot> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(tp, p)| {
                let first = p.entries.iter().find(|(_, e)| e.state != State::Done);
                let oldest = first.map(|(o, e)| (*o, now.saturating_duration_since(e.since)));
                let oldest_timestamp_ms = first.and_then(|(_, e)| e.timestamp_ms);
                (
                    tp.clone(),
                    PartSnapshot {
                        generation: p.generation,
                        in_flight: p.entries.len(),
                        consumed_total: p.consumed_total,
                        finished_total: p.finished_total,
                        finished_upto: p.finished_upto,
                        oldest,
                        oldest_timestamp_ms,
                        last_consumed: p.last_consumed,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("in".to_string(), p)
    }

    #[test]
    fn offsets_advance_only_over_a_contiguous_finished_prefix() {
        let t = Tracker::new();
        for o in 10..15 {
            t.start(&tp(0), 1, o);
        }
        for o in [11, 12, 14] {
            assert!(t.begin_publish(&tp(0), 1, o));
            assert!(t.finish(&tp(0), 1, o));
        }
        // 10 is unfinished: nothing may be committed, whatever finished after it.
        assert!(t.advance_all().is_empty());
        assert_eq!(t.uncommitted_window(), 5);
        // In flight: 10 and 13, not the finished ones waiting behind 10.
        assert_eq!(t.in_flight(), 2);
        t.begin_publish(&tp(0), 1, 10);
        t.finish(&tp(0), 1, 10);
        assert_eq!(t.advance_all(), vec![(tp(0), 13)]);
        // Stored but not committed: still counted in the window.
        assert_eq!(t.uncommitted_window(), 5);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.uncommitted(), 3);
        t.committed(&tp(0), 13);
        assert_eq!(t.uncommitted_window(), 2);
        assert_eq!(t.in_flight(), 1);
        let snap = &t.snapshot()[&tp(0)];
        assert_eq!(snap.oldest.unwrap().0, 13);
        assert_eq!((snap.consumed_total, snap.finished_total), (5, 3));
    }

    /// An offset consumed again in the same generation (its entry replaced) and published
    /// twice keeps the count of finished entries right: nothing is counted twice.
    #[test]
    fn an_input_seen_twice_is_counted_once() {
        let t = Tracker::new();
        for o in 0..3 {
            t.start(&tp(0), 1, o);
        }
        assert!(t.begin_publish(&tp(0), 1, 1));
        assert!(t.finish(&tp(0), 1, 1));
        // A second copy of offset 1 replaces the finished entry ...
        t.start(&tp(0), 1, 1);
        assert_eq!(t.in_flight(), 3);
        // ... an old task finishing it, then the new one publishing and finishing it.
        assert!(t.finish(&tp(0), 1, 1));
        assert_eq!(t.in_flight(), 2);
        assert!(t.begin_publish(&tp(0), 1, 1));
        assert_eq!(t.in_flight(), 3);
        assert!(t.finish(&tp(0), 1, 1));
        for o in [0, 2] {
            assert!(t.begin_publish(&tp(0), 1, o));
            assert!(t.finish(&tp(0), 1, o));
        }
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.advance_all(), vec![(tp(0), 3)]);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.uncommitted_window(), 3);
        // Abandoning a finished entry (never done by the worker, but possible) too.
        t.start(&tp(0), 1, 3);
        t.begin_publish(&tp(0), 1, 3);
        t.finish(&tp(0), 1, 3);
        t.abandon(&tp(0), 1, 3);
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn partitions_are_independent() {
        let t = Tracker::new();
        t.start(&tp(0), 1, 0);
        t.start(&tp(1), 2, 0);
        t.begin_publish(&tp(1), 2, 0);
        t.finish(&tp(1), 2, 0);
        // Partition 0's slow input does not hold partition 1 back.
        assert_eq!(t.advance_all(), vec![(tp(1), 1)]);
    }

    #[test]
    fn revoked_or_reassigned_partitions_refuse_late_work() {
        let t = Tracker::new();
        for o in 0..3 {
            t.start(&tp(0), 1, o);
        }
        t.begin_publish(&tp(0), 1, 0);
        t.finish(&tp(0), 1, 0);
        let (commit, abandoned) = t.revoke(&[tp(0)], Duration::ZERO);
        assert_eq!(commit, vec![(tp(0), 1)]);
        assert_eq!(abandoned, 2);
        // Work of the old generation can neither publish nor finish.
        assert!(!t.begin_publish(&tp(0), 1, 1));
        assert!(!t.finish(&tp(0), 1, 2));
        // The partition comes back in a new generation: old offsets are not ours.
        t.start(&tp(0), 7, 5);
        assert!(!t.begin_publish(&tp(0), 1, 5));
        assert!(t.begin_publish(&tp(0), 7, 5));
    }

    #[test]
    fn revoke_waits_for_outputs_already_handed_over() {
        let t = std::sync::Arc::new(Tracker::new());
        t.start(&tp(0), 1, 0);
        t.start(&tp(0), 1, 1);
        assert!(t.begin_publish(&tp(0), 1, 0));
        let t2 = t.clone();
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            t2.finish(&tp(0), 1, 0)
        });
        let (commit, abandoned) = t.revoke(&[tp(0)], Duration::from_secs(5));
        assert!(finisher.join().unwrap());
        // Input 0 was publishing and is finished and committed; input 1 is abandoned.
        assert_eq!(commit, vec![(tp(0), 1)]);
        assert_eq!(abandoned, 1);
    }
}
