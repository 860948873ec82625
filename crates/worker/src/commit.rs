//! The commit strategy of a worker: at-least-once ([`AckCommits`]: store the offsets of
//! acknowledged inputs, commit them explicitly in the background) or exactly-once
//! ([`TxnCommits`]: commit outputs and offsets in Kafka transactions). The worker loop calls
//! the same events on either ([`Commits`]); each strategy's rules read whole here.
use crate::metrics as m;
use crate::tracker::{Tp, Tracker};
use crate::txn::{Transactions, TxnError};
use crate::WorkerError;
use argus_kafka::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::types::RDKafkaErrorCode;
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use argus_kafka::GroupContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a revoke waits for outputs already handed to the producer. The wait blocks the
/// polling thread, and the jobs it waits for need a runtime thread: run each worker's loop
/// on its own thread (as `argus work` does) or give the runtime a spare worker thread per
/// worker running in it.
pub(crate) const REVOKE_GRACE: Duration = Duration::from_secs(2);

/// At-least-once: how often finished offsets are committed at the latest.
pub(crate) const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// Why a worker stops before it was asked to.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    /// At-least-once: an input's outputs could not be delivered.
    Undeliverable(String),
    /// Exactly-once: the transaction failed.
    Transaction(TxnError),
}

/// At-least-once: whether a commit is due with `uncommitted` finished inputs, `since` the
/// last one started. Every [`COMMIT_INTERVAL`], or sooner (after 5 ms) once a quarter of
/// the in-flight bound is finished but uncommitted — what a crash would redo stays small.
/// (Until `max_uncommitted` existed, finished inputs counted as in flight until their
/// commit was confirmed, and waiting longer stalled a fast model; the rate of commits was
/// kept when that changed.)
pub(crate) fn commit_due(uncommitted: u64, max_in_flight: usize, since: Duration) -> bool {
    uncommitted > 0
        && (since >= COMMIT_INTERVAL
            || (uncommitted as usize >= (max_in_flight / 4).max(1)
                && since >= Duration::from_millis(5)))
}

/// Exactly-once: whether the open transaction should commit now — every `interval`, and at
/// once while paused (finished inputs stay uncommitted until then, so a worker paused on
/// its uncommitted bound would otherwise wait a whole interval to resume).
pub(crate) fn txn_commit_due(since: Duration, interval: Duration, paused: bool) -> bool {
    paused || since >= interval
}

/// The strategy a worker commits with.
#[derive(Debug)]
pub(crate) enum Commits {
    AtLeastOnce(AckCommits),
    ExactlyOnce(TxnCommits),
}

impl Commits {
    /// Inputs were reported finished.
    pub(crate) fn on_finished(&mut self, paused: bool) -> Result<(), Stop> {
        match self {
            Commits::AtLeastOnce(c) => {
                c.store_finished();
                c.maybe_commit();
                Ok(())
            }
            Commits::ExactlyOnce(c) if paused => c.commit_if_due(true),
            Commits::ExactlyOnce(_) => Ok(()),
        }
    }

    /// A background commit finished (at-least-once); another may be due.
    pub(crate) fn on_committed(&mut self) {
        if let Commits::AtLeastOnce(c) = self {
            c.maybe_commit();
        }
    }

    /// The loop's clock ticked.
    pub(crate) fn on_tick(&mut self) -> Result<(), Stop> {
        match self {
            Commits::AtLeastOnce(c) => {
                c.maybe_commit();
                Ok(())
            }
            Commits::ExactlyOnce(c) => {
                if let Some(e) = c.txn.failure() {
                    return Err(Stop::Transaction(e));
                }
                c.commit_if_due(false)
            }
        }
    }

    /// An input's outputs cannot be delivered: the worker stops.
    pub(crate) fn undeliverable(&self, detail: String) -> Stop {
        match self {
            Commits::AtLeastOnce(_) => Stop::Undeliverable(detail),
            Commits::ExactlyOnce(c) => {
                let e = TxnError::outputs(detail);
                c.txn.fail(e.clone());
                Stop::Transaction(e)
            }
        }
    }

    /// While draining, how often to commit (exactly-once keeps committing so a long drain
    /// does not outlive `transaction.timeout.ms`); `None`: only at the end.
    pub(crate) fn drain_interval(&self) -> Option<Duration> {
        match self {
            Commits::AtLeastOnce(_) => None,
            Commits::ExactlyOnce(c) => Some(c.interval.max(Duration::from_millis(10))),
        }
    }

    /// Draining: inputs were reported finished.
    pub(crate) fn on_drained(&mut self) {
        if let Commits::AtLeastOnce(c) = self {
            c.store_finished();
        }
    }

    /// Draining: the drain interval passed.
    pub(crate) fn on_drain_tick(&mut self) -> Result<(), Stop> {
        match self {
            Commits::AtLeastOnce(_) => Ok(()),
            Commits::ExactlyOnce(c) => c.commit().map_err(Stop::Transaction),
        }
    }

    /// The last commit after the drain. `stopping`: the worker was asked to stop (then a
    /// transaction refused because the group moved on is a clean stop: the next owners
    /// redo its inputs).
    pub(crate) fn finish(
        &mut self,
        failure: Option<Stop>,
        stopping: bool,
    ) -> Result<(), WorkerError> {
        match self {
            Commits::AtLeastOnce(c) => {
                c.store_finished();
                c.commit_sync();
                match failure {
                    Some(
                        Stop::Undeliverable(reason)
                        | Stop::Transaction(TxnError { detail: reason, .. }),
                    ) => Err(WorkerError::Undeliverable(reason)),
                    None => Ok(()),
                }
            }
            Commits::ExactlyOnce(c) => c.finish(failure, stopping),
        }
    }
}

/// At-least-once commits: offsets of the contiguous finished prefix are stored as inputs
/// finish and committed explicitly, one commit at a time on the blocking pool.
pub(crate) struct AckCommits {
    consumer: Arc<StreamConsumer<GroupContext>>,
    tracker: Arc<Tracker>,
    max_in_flight: usize,
    last_commit: Instant,
    committing: Arc<AtomicBool>,
    /// Notified when a background commit finishes.
    committed: Arc<Notify>,
}

impl std::fmt::Debug for AckCommits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckCommits").finish_non_exhaustive()
    }
}

impl AckCommits {
    pub(crate) fn new(
        consumer: Arc<StreamConsumer<GroupContext>>,
        tracker: Arc<Tracker>,
        max_in_flight: usize,
        committed: Arc<Notify>,
    ) -> Self {
        AckCommits {
            consumer,
            tracker,
            max_in_flight,
            last_commit: Instant::now(),
            committing: Arc::new(AtomicBool::new(false)),
            committed,
        }
    }

    /// Stores, per partition, the offset after its contiguous finished prefix.
    fn store_finished(&self) {
        for ((topic, partition), next) in self.tracker.advance_all() {
            // `store_offset` stores offset + 1. Fails if the partition was revoked
            // meanwhile: the next owner redoes those inputs.
            if let Err(e) = self.consumer.store_offset(&topic, partition, next - 1) {
                metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
                tracing::debug!(topic = %topic, partition, error = %e, "offset not stored");
            }
        }
    }

    /// Commits the finished offsets if a commit is due ([`commit_due`]) and none is running.
    /// Synchronous on the blocking pool, with explicit offsets: its result is the
    /// confirmation (librdkafka skips re-committing offsets it believes committed, so its
    /// commit callbacks alone cannot confirm everything).
    fn maybe_commit(&mut self) {
        if self.committing.load(Ordering::Acquire)
            || !commit_due(
                self.tracker.uncommitted(),
                self.max_in_flight,
                self.last_commit.elapsed(),
            )
        {
            return;
        }
        let points = self.tracker.commit_points();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &points {
            if tpl
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
        self.last_commit = Instant::now();
        self.committing.store(true, Ordering::Release);
        let (consumer, tracker, committing, committed) = (
            self.consumer.clone(),
            self.tracker.clone(),
            self.committing.clone(),
            self.committed.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let result = consumer.commit(&tpl, CommitMode::Sync);
            metrics::histogram!(m::COMMIT_SECONDS).record(t.elapsed().as_secs_f64());
            match result {
                Ok(()) => {
                    for (tp, next) in &points {
                        tracker.committed(tp, *next);
                    }
                }
                Err(e) => {
                    metrics::counter!(argus_kafka::metrics::COMMIT_FAILURES).increment(1);
                    tracing::warn!(error = %e, "offset commit failed; retrying");
                }
            }
            committing.store(false, Ordering::Release);
            // In-flight room may have opened: wake the loop.
            committed.notify_one();
        });
    }

    /// The final synchronous commit of everything stored.
    fn commit_sync(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed"),
            // Everything stored was already committed in the background.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                tracing::info!("offsets already committed")
            }
            Err(e) => tracing::warn!(error = %e, "final commit failed"),
        }
    }

    /// On revoke: wait briefly for outputs already handed over, then store what finished
    /// contiguously. Returns the inputs abandoned.
    fn revoke(tracker: &Tracker, base: &BaseConsumer<GroupContext>, revoked: &[Tp]) -> usize {
        let (finished, abandoned) = tracker.revoke(revoked, REVOKE_GRACE);
        for ((topic, partition), next) in finished {
            // `store_offset` stores offset + 1.
            if let Err(e) = base.store_offset(&topic, partition, next - 1) {
                metrics::counter!(m::OFFSET_STORE_FAILURES).increment(1);
                tracing::warn!(topic = %topic, partition, error = %e, "offset not stored on revoke");
            }
        }
        abandoned
    }
}

/// Exactly-once commits: the open transaction commits every `interval` with the offsets of
/// the contiguous finished prefix (see [`Transactions`]).
pub(crate) struct TxnCommits {
    consumer: Arc<StreamConsumer<GroupContext>>,
    tracker: Arc<Tracker>,
    txn: Arc<Transactions>,
    interval: Duration,
    last_commit: Instant,
}

impl std::fmt::Debug for TxnCommits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCommits").finish_non_exhaustive()
    }
}

impl TxnCommits {
    pub(crate) fn new(
        consumer: Arc<StreamConsumer<GroupContext>>,
        tracker: Arc<Tracker>,
        txn: Arc<Transactions>,
        interval: Duration,
    ) -> Self {
        TxnCommits {
            consumer,
            tracker,
            txn,
            interval,
            last_commit: Instant::now(),
        }
    }

    fn commit(&self) -> Result<(), TxnError> {
        self.txn
            .commit(
                &self.tracker,
                Vec::new(),
                self.consumer.group_metadata().as_ref(),
            )
            .map(|_| ())
    }

    fn commit_if_due(&mut self, paused: bool) -> Result<(), Stop> {
        if txn_commit_due(self.last_commit.elapsed(), self.interval, paused) {
            self.commit().map_err(Stop::Transaction)?;
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    fn finish(&self, failure: Option<Stop>, stopping: bool) -> Result<(), WorkerError> {
        let failure = match failure {
            Some(Stop::Transaction(e)) => Some(e),
            Some(Stop::Undeliverable(detail)) => Some(TxnError::outputs(detail)),
            None => None,
        };
        match failure.map_or_else(|| self.commit(), Err) {
            Ok(()) => {
                tracing::info!("final transaction committed");
                Ok(())
            }
            Err(e) => {
                self.txn.abort();
                if stopping && e.group_moved_on() {
                    // Stopping while other members come and go: the group took the
                    // partitions before the last commit. Its outputs are aborted (never
                    // visible) and the next owners redo those inputs: a clean stop.
                    tracing::warn!(error = %e, "last transaction aborted: the group moved on while this worker was stopping; the next owners redo its inputs");
                    Ok(())
                } else {
                    Err(WorkerError::Transaction(e))
                }
            }
        }
    }
}

/// On revoke: stop new outputs for the revoked partitions, wait briefly for outputs already
/// handed over, then store (or transactionally commit) what finished contiguously.
pub(crate) fn install_revoke_hook(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Arc<Tracker>,
    txn: Option<Arc<Transactions>>,
) {
    let tracker = tracker.clone();
    consumer
        .context()
        .set_revoke_hook(Box::new(move |revoked, base, group| {
            let abandoned = match &txn {
                Some(t) => match t.revoke_and_commit(&tracker, revoked, group.as_ref()) {
                    Ok(abandoned) => abandoned,
                    Err(e) => {
                        tracing::error!(error = %e, "transaction commit on revoke failed; the worker stops");
                        0
                    }
                },
                None => AckCommits::revoke(&tracker, base, revoked),
            };
            if abandoned > 0 {
                metrics::counter!(m::ABANDONED).increment(abandoned as u64);
                tracing::info!(abandoned, "in-flight inputs of revoked partitions abandoned; their next owner redoes them");
            }
        }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_once_commits_every_interval_or_at_a_quarter_of_the_bound() {
        let ms = Duration::from_millis;
        // Nothing finished: never.
        assert!(!commit_due(0, 1024, ms(10_000)));
        // A few finished: at the interval.
        assert!(!commit_due(10, 1024, ms(99)));
        assert!(commit_due(10, 1024, ms(100)));
        // A quarter of the in-flight bound finished: after 5 ms already.
        assert!(!commit_due(256, 1024, ms(4)));
        assert!(commit_due(256, 1024, ms(5)));
        assert!(!commit_due(255, 1024, ms(50)));
        // A tiny bound still needs one finished input.
        assert!(commit_due(1, 2, ms(5)));
        assert!(commit_due(1, 1, ms(5)));
    }

    #[test]
    fn exactly_once_commits_every_interval_and_at_once_while_paused() {
        let ms = Duration::from_millis;
        assert!(!txn_commit_due(ms(99), ms(100), false));
        assert!(txn_commit_due(ms(100), ms(100), false));
        assert!(txn_commit_due(ms(0), ms(100), true));
    }

    #[test]
    fn revoke_keeps_the_finished_prefix_and_abandons_the_rest() {
        // What the at-least-once revoke stores: the contiguous finished prefix of each
        // revoked partition; everything after it is abandoned for the next owner.
        let tracker = Tracker::new();
        let a: Tp = ("in".into(), 0);
        let b: Tp = ("in".into(), 1);
        for o in 10..15 {
            tracker.start(&a, 1, o);
        }
        tracker.start(&b, 1, 7);
        for o in [10, 11, 13] {
            assert!(tracker.begin_publish(&a, 1, o));
            assert!(tracker.finish(&a, 1, o));
        }
        let (finished, abandoned) = tracker.revoke(std::slice::from_ref(&a), Duration::ZERO);
        assert_eq!(finished, vec![(a.clone(), 12)]);
        // 12 and 14 unfinished, 13 finished beyond the gap: all redone by the next owner.
        assert_eq!(abandoned, 3);
        // Partition b is untouched and a refuses late work.
        assert!(!tracker.begin_publish(&a, 1, 12));
        assert!(tracker.begin_publish(&b, 1, 7));
    }
}
