//! Exactly-once mode: consume → infer → produce in Kafka transactions.
//!
//! One transaction is open at a time. Jobs queue their outputs into it under the shared
//! side of [`Transactions::gate`] and mark their input finished in the tracker inside the
//! same critical section. A commit takes the gate exclusively, takes from the tracker the
//! contiguous finished prefix of every partition, sends those offsets to the transaction
//! (with the consumer's group metadata, so a member fenced by a rebalance cannot commit:
//! KIP-447), commits, and opens the next transaction. Outputs of an input therefore become
//! visible to `read_committed` readers in the same transaction that commits its offset, and
//! an input whose offset is not committed has no visible outputs.
//!
//! Failures are not retried in place: the transaction is aborted and the worker stops with
//! a [`TxnError`], so its supervisor restarts it from the last committed offsets. The
//! transactional id is stable per worker (`argus-<group>-<worker id>`), so the restarted
//! worker fences its predecessor (a zombie can no longer commit) and aborts what it left
//! open. What a failure means is read from librdkafka's error code ([`TxnErrorKind`]),
//! never from its message text: a group that moved on (a rebalance fenced this member's
//! generation) is an expected event the binary answers by rejoining.
use crate::metrics as m;
use crate::tracker::{Tp, Tracker};
use argus_kafka::rdkafka::consumer::ConsumerGroupMetadata;
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::producer::{FutureProducer, Producer};
use argus_kafka::rdkafka::types::RDKafkaErrorCode;
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

/// What kind of transaction failure stopped a worker; decides what its supervisor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnErrorKind {
    /// The consumer group moved on while the transaction was open (a member joined or
    /// left, fencing this member's generation: KIP-447). The transaction is aborted; new
    /// clients rejoin and redo its inputs from the committed offsets.
    GroupMovedOn,
    /// Another producer with the same transactional id took over (a second worker with
    /// this worker id, or a restart of this one). This instance must stop.
    Fenced,
    /// An input's outputs could not be queued or delivered.
    Outputs,
    /// Any other broker or client error (timeouts, authorisation, a fatal producer error).
    Broker,
}

impl TxnErrorKind {
    /// The kind of a librdkafka error code met while sending offsets to, committing or
    /// beginning a transaction.
    pub fn of_code(code: RDKafkaErrorCode) -> Self {
        match code {
            RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId => TxnErrorKind::GroupMovedOn,
            RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed => TxnErrorKind::Fenced,
            _ => TxnErrorKind::Broker,
        }
    }
}

/// A transaction failure: its kind (from the error code) and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct TxnError {
    /// What the failure means for the worker.
    pub kind: TxnErrorKind,
    /// What failed, for the operator.
    pub detail: String,
}

impl TxnError {
    /// A failure of a transactional call (`what` says which), typed by its error code.
    pub fn kafka(what: &str, e: &KafkaError) -> Self {
        TxnError {
            kind: e
                .rdkafka_error_code()
                .map_or(TxnErrorKind::Broker, TxnErrorKind::of_code),
            detail: format!("{what}: {e}"),
        }
    }

    /// An input's outputs could not be queued or delivered.
    pub fn outputs(detail: String) -> Self {
        TxnError {
            kind: TxnErrorKind::Outputs,
            detail,
        }
    }

    /// Whether the group moved on (see [`TxnErrorKind::GroupMovedOn`]).
    pub fn group_moved_on(&self) -> bool {
        self.kind == TxnErrorKind::GroupMovedOn
    }
}

/// The open transaction of one worker.
pub struct Transactions {
    producer: FutureProducer,
    gate: RwLock<()>,
    dirty: AtomicBool,
    failed: Mutex<Option<TxnError>>,
    timeout: Duration,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions").finish_non_exhaustive()
    }
}

/// The transactional id of a worker: stable across its restarts, distinct per worker.
pub fn transactional_id(group: &str, worker_id: &str) -> String {
    format!("argus-{group}-{worker_id}")
}

impl Transactions {
    /// Initialises transactions on `producer` (fencing any earlier producer with the same
    /// transactional id and aborting its open transaction) and begins the first one.
    /// Blocking.
    pub fn init(producer: FutureProducer, timeout: Duration) -> Result<Self, KafkaError> {
        producer.init_transactions(timeout)?;
        producer.begin_transaction()?;
        Ok(Transactions {
            producer,
            gate: RwLock::new(()),
            dirty: AtomicBool::new(false),
            failed: Mutex::new(None),
            timeout,
        })
    }

    /// Shared side of the gate: hold it while queueing an input's outputs and marking it
    /// finished. Never hold it across an `.await`.
    pub fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the open transaction holds outputs.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Records a failure that makes the open transaction uncommittable (the first one
    /// recorded wins).
    pub fn fail(&self, reason: TxnError) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(reason);
        }
    }

    /// Why the worker must stop, if it must.
    pub fn failure(&self) -> Option<TxnError> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Commits the open transaction with the tracker's finished offsets plus `extra`
    /// (offsets of partitions being revoked, already taken from the tracker) and begins
    /// the next one. Returns the number of partitions whose offsets were committed.
    /// Blocking. After an error the worker must stop (see the module docs).
    pub fn commit(
        &self,
        tracker: &Tracker,
        extra: Vec<(Tp, i64)>,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<usize, TxnError> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        self.commit_exclusive(tracker, extra, group)
    }

    /// Revocation: with the gate held exclusively (so no job is between queueing its
    /// outputs and marking its input finished), forgets the revoked partitions in the
    /// tracker and commits their finished offsets together with everything else finished.
    /// Returns the number of inputs abandoned.
    pub fn revoke_and_commit(
        &self,
        tracker: &Tracker,
        revoked: &[Tp],
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<usize, TxnError> {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        let (finished, abandoned) = tracker.revoke(revoked, Duration::ZERO);
        self.commit_exclusive(tracker, finished, group)?;
        Ok(abandoned)
    }

    /// [`Transactions::commit`] with the gate already held exclusively.
    fn commit_exclusive(
        &self,
        tracker: &Tracker,
        extra: Vec<(Tp, i64)>,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<usize, TxnError> {
        if let Some(reason) = self.failure() {
            let _ = self.producer.abort_transaction(self.timeout);
            return Err(reason);
        }
        let mut offsets = tracker.advance_all();
        offsets.extend(extra);
        if offsets.is_empty() && !self.dirty.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let t = Instant::now();
        let result = (|| {
            if !offsets.is_empty() {
                let group = group.ok_or_else(|| TxnError {
                    kind: TxnErrorKind::Broker,
                    detail: "no consumer group metadata: cannot commit offsets in a transaction"
                        .into(),
                })?;
                let mut tpl = TopicPartitionList::new();
                for ((topic, partition), next) in &offsets {
                    tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                        .map_err(|e| {
                            TxnError::kafka(&format!("bad offset {topic}/{partition}/{next}"), &e)
                        })?;
                }
                self.producer
                    .send_offsets_to_transaction(&tpl, group, self.timeout)
                    .map_err(|e| {
                        TxnError::kafka("sending offsets to the transaction failed", &e)
                    })?;
            }
            self.producer
                .commit_transaction(self.timeout)
                .map_err(|e| TxnError::kafka("committing the transaction failed", &e))?;
            self.producer
                .begin_transaction()
                .map_err(|e| TxnError::kafka("beginning a transaction failed", &e))
        })();
        match result {
            Ok(()) => {
                for (tp, next) in &offsets {
                    tracker.committed(tp, *next);
                }
                self.dirty.store(false, Ordering::Relaxed);
                metrics::counter!(m::TXN_COMMITS, "outcome" => "ok").increment(1);
                metrics::histogram!(m::TXN_COMMIT_SECONDS).record(t.elapsed().as_secs_f64());
                Ok(offsets.len())
            }
            Err(reason) => {
                metrics::counter!(m::TXN_COMMITS, "outcome" => "error").increment(1);
                // Nothing of this transaction becomes visible; its inputs are redone.
                let _ = self.producer.abort_transaction(self.timeout);
                self.fail(reason.clone());
                Err(reason)
            }
        }
    }

    /// Aborts the open transaction (at shutdown after an error). Blocking.
    pub fn abort(&self) {
        let _exclusive = self.gate.write().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.producer.abort_transaction(self.timeout) {
            tracing::warn!(error = %e, "aborting the transaction failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fenced_generation_means_the_group_moved_on() {
        for code in [
            RDKafkaErrorCode::IllegalGeneration,
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::RebalanceInProgress,
            RDKafkaErrorCode::FencedInstanceId,
        ] {
            assert_eq!(
                TxnErrorKind::of_code(code),
                TxnErrorKind::GroupMovedOn,
                "{code:?}"
            );
        }
        let e = TxnError::kafka(
            "sending offsets to the transaction failed",
            &KafkaError::ConsumerCommit(RDKafkaErrorCode::IllegalGeneration),
        );
        assert!(e.group_moved_on());
        assert!(e
            .detail
            .starts_with("sending offsets to the transaction failed: "));
    }

    #[test]
    fn other_failures_do_not_rejoin() {
        assert_eq!(
            TxnErrorKind::of_code(RDKafkaErrorCode::ProducerFenced),
            TxnErrorKind::Fenced
        );
        assert_eq!(
            TxnErrorKind::of_code(RDKafkaErrorCode::InvalidProducerEpoch),
            TxnErrorKind::Fenced
        );
        for code in [
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::MessageSizeTooLarge,
        ] {
            assert_eq!(
                TxnErrorKind::of_code(code),
                TxnErrorKind::Broker,
                "{code:?}"
            );
        }
        // A message that merely mentions a generation is not a code: no rejoin.
        let e = TxnError::kafka("committing the transaction failed", &KafkaError::Canceled);
        assert_eq!(e.kind, TxnErrorKind::Broker);
        assert!(!TxnError::outputs("generation id is not valid".into()).group_moved_on());
    }
}
