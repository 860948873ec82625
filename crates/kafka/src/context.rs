//! Consumer context: logs and counts rebalances, commits stored offsets synchronously when
//! partitions are revoked, and keeps the current assignment for callers that must wait
//! for one (tests, the demo). Callbacks run on the polling thread.
//!
//! Every assignment of a partition gets a new *generation* number. Work started under one
//! generation must not publish or store anything once the partition has been revoked, even
//! if it comes back later: check [`GroupContext::owns`]. A revoke hook (set once by the
//! worker) runs before the revoke commit, so it can finish or abandon the revoked
//! partitions' in-flight work and store (or transactionally commit) what completed.
//!
//! It also tracks whether this member is *in the group* ([`GroupContext::in_group`], for
//! readiness): see [`Membership`].
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaResult;
use rdkafka::TopicPartitionList;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::watch;

/// Partitions currently assigned to this member, as (topic, partition).
pub type Assignment = BTreeSet<(String, i32)>;

/// Called on the polling thread when partitions are revoked, after they stopped being owned
/// and before stored offsets are committed. It gets the revoked partitions, the consumer
/// (to store offsets) and the group metadata (for transactional offset commits).
pub type RevokeHook = Box<
    dyn Fn(&[(String, i32)], &BaseConsumer<GroupContext>, Option<ConsumerGroupMetadata>)
        + Send
        + Sync,
>;

/// Called with (topic, partition, next offset) for every offset the group coordinator
/// confirmed as committed (background, asynchronous and revoke commits alike).
pub type CommitHook = Box<dyn Fn(&[(String, i32, i64)]) + Send + Sync>;

/// Whether a member is in its consumer group, from the rebalance callbacks and the
/// librdkafka statistics (every `statistics.interval.ms`). Pure, so the rules are tested
/// without a broker.
///
/// - An assignment (even an empty one: a member of a group with more members than
///   partitions gets one under the classic protocol) means joined.
/// - A lost assignment (the session expired; the member must rejoin as a new one) or a
///   rebalance error means not joined, until the next assignment.
/// - An error that says the group refused or dropped the member ([`ends_membership`]:
///   unknown member, fenced, group authorization failed) means not joined.
/// - Statistics whose group state is not `up` (the coordinator is unknown or unreachable)
///   mean not joined; `up` with join state `steady` means joined. Under the KIP-848
///   `consumer` protocol librdkafka reports an idle member (no partitions, no assignment
///   callback) as `up`/`init` indefinitely, so there `up` alone counts as joined — unless
///   the group refused or dropped the member within the last [`REJOIN_QUIET`]: statistics
///   cannot tell a refused member from an idle one.
#[derive(Debug, Default)]
pub struct Membership {
    joined: std::sync::atomic::AtomicBool,
    consumer_protocol: std::sync::atomic::AtomicBool,
    /// When the group last refused or dropped the member (`None`: never).
    last_refusal: Mutex<Option<std::time::Instant>>,
}

/// How long after the group refused or dropped a KIP-848 member its statistics alone do not
/// count it as joined again (a refusal repeats on every heartbeat, seconds apart).
pub const REJOIN_QUIET: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a client error means the group refused or dropped this member: it must rejoin
/// (unknown member id, fenced member epoch or instance id) or may not join at all (group
/// authorization failed).
pub fn ends_membership(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::UnknownMemberId
            | C::FencedMemberEpoch
            | C::FencedInstanceId
            | C::GroupAuthorizationFailed
    )
}

impl Membership {
    /// Whether the member is in its group now.
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    /// An assignment arrived (possibly empty).
    pub fn on_assign(&self) {
        self.joined.store(true, Ordering::Relaxed);
    }

    /// The assignment was lost or the rebalance failed.
    pub fn on_lost(&self) {
        self.joined.store(false, Ordering::Relaxed);
    }

    /// The group refused or dropped the member at `now` ([`ends_membership`]).
    pub fn on_refused(&self, now: std::time::Instant) {
        self.on_lost();
        if let Ok(mut last) = self.last_refusal.lock() {
            *last = Some(now);
        }
    }

    /// Statistics arrived at `now` with this group `state` and `join_state`.
    pub fn on_stats(&self, state: &str, join_state: &str, now: std::time::Instant) {
        if state != "up" {
            self.joined.store(false, Ordering::Relaxed);
        } else if join_state == "steady" {
            self.joined.store(true, Ordering::Relaxed);
        } else if self.consumer_protocol.load(Ordering::Relaxed) {
            let refused_lately = self
                .last_refusal
                .lock()
                .ok()
                .and_then(|last| *last)
                .is_some_and(|at| now.saturating_duration_since(at) < REJOIN_QUIET);
            if !refused_lately {
                self.joined.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The member uses the KIP-848 `consumer` protocol (see the type's rules).
    pub fn set_consumer_protocol(&self, on: bool) {
        self.consumer_protocol.store(on, Ordering::Relaxed);
    }
}

/// Context of every Argus group member.
pub struct GroupContext {
    member: String,
    assignment: Mutex<Assignment>,
    /// Generation of each owned partition, by topic (looked up by `&str` for every
    /// input, without building a key).
    owned: Mutex<HashMap<String, HashMap<i32, u64>>>,
    next_generation: AtomicU64,
    revoke_hook: OnceLock<RevokeHook>,
    commit_hook: OnceLock<CommitHook>,
    /// Whether to commit stored offsets on revoke (off in transactional mode).
    commit_on_revoke: std::sync::atomic::AtomicBool,
    tx: watch::Sender<Assignment>,
    rx: watch::Receiver<Assignment>,
    commit_failures: Arc<std::sync::atomic::AtomicU64>,
    /// Client errors repeat on every poll while a broker is away: logged once per cause
    /// and window.
    errors: crate::throttle::LogThrottle,
    membership: Membership,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext")
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

impl GroupContext {
    /// A context for the member named `member` (used in logs).
    pub fn new(member: &str) -> Self {
        let (tx, rx) = watch::channel(Assignment::new());
        GroupContext {
            member: member.to_string(),
            assignment: Mutex::new(Assignment::new()),
            owned: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            revoke_hook: OnceLock::new(),
            commit_hook: OnceLock::new(),
            commit_on_revoke: std::sync::atomic::AtomicBool::new(true),
            tx,
            rx,
            commit_failures: Arc::default(),
            errors: crate::throttle::LogThrottle::default(),
            membership: Membership::default(),
        }
    }

    /// Whether this member is in its consumer group now ([`Membership`]).
    pub fn in_group(&self) -> bool {
        self.membership.joined()
    }

    /// Takes note of a client or consumer error: one that says the group refused or dropped
    /// this member ([`ends_membership`]) ends its membership. Client errors come here by
    /// themselves; the consumer loop passes the errors its poll returns.
    pub fn note_error(&self, error: &rdkafka::error::KafkaError) {
        if error.rdkafka_error_code().is_some_and(ends_membership) {
            self.membership.on_refused(std::time::Instant::now());
        }
    }

    /// The member uses the KIP-848 `consumer` protocol (membership is read differently).
    pub fn set_consumer_protocol(&self, on: bool) {
        self.membership.set_consumer_protocol(on);
    }

    /// Watches the assignment; changes after every rebalance.
    pub fn assignment(&self) -> watch::Receiver<Assignment> {
        self.rx.clone()
    }

    /// The generation of `topic`/`partition` if this member owns it now.
    pub fn generation(&self, topic: &str, partition: i32) -> Option<u64> {
        self.owned.lock().ok()?.get(topic)?.get(&partition).copied()
    }

    /// Whether this member still owns `topic`/`partition` in `generation`.
    pub fn owns(&self, topic: &str, partition: i32, generation: u64) -> bool {
        self.generation(topic, partition) == Some(generation)
    }

    /// Installs the revoke hook; only the first call has an effect (returns false after).
    pub fn set_revoke_hook(&self, hook: RevokeHook) -> bool {
        self.revoke_hook.set(hook).is_ok()
    }

    /// Installs the commit hook; only the first call has an effect (returns false after).
    pub fn set_commit_hook(&self, hook: CommitHook) -> bool {
        self.commit_hook.set(hook).is_ok()
    }

    /// Turns the synchronous commit of stored offsets on revoke on or off (transactional
    /// workers commit offsets inside their transactions instead).
    pub fn set_commit_on_revoke(&self, on: bool) {
        self.commit_on_revoke.store(on, Ordering::Relaxed);
    }

    fn update_owned(&self, tpl: &TopicPartitionList, add: bool) {
        let Ok(mut owned) = self.owned.lock() else {
            return;
        };
        for e in tpl.elements() {
            if add {
                let g = self.next_generation.fetch_add(1, Ordering::Relaxed);
                owned
                    .entry(e.topic().to_string())
                    .or_default()
                    .insert(e.partition(), g);
            } else if let Some(partitions) = owned.get_mut(e.topic()) {
                partitions.remove(&e.partition());
                if partitions.is_empty() {
                    owned.remove(e.topic());
                }
            }
        }
    }

    fn update(&self, tpl: &TopicPartitionList, add: bool) {
        let Ok(mut current) = self.assignment.lock() else {
            return;
        };
        for e in tpl.elements() {
            let tp = (e.topic().to_string(), e.partition());
            if add {
                current.insert(tp);
            } else {
                // The new owner reports this partition's lag now; a stale value here
                // would be counted twice when lag is summed across the fleet. Not updated
                // any more, the series then leaves /metrics (`PARTITION_GAUGES`).
                metrics::gauge!(
                    crate::metrics::CONSUMER_LAG,
                    "topic" => tp.0.clone(),
                    "partition" => tp.1.to_string()
                )
                .set(0.0);
                current.remove(&tp);
            }
        }
        self.tx.send_replace(current.clone());
    }
}

impl ClientContext for GroupContext {
    /// librdkafka statistics (every `statistics.interval.ms`): per-partition consumer lag,
    /// the first signal an operator or an autoscaler reads.
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(group) = &statistics.cgrp {
            self.membership
                .on_stats(&group.state, &group.join_state, std::time::Instant::now());
        }
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal "unassigned" bucket; lag -1 = unknown.
                if *partition < 0 || p.consumer_lag < 0 || p.fetch_state == "none" {
                    continue;
                }
                metrics::gauge!(
                    crate::metrics::CONSUMER_LAG,
                    "topic" => topic.clone(),
                    "partition" => partition.to_string()
                )
                .set(p.consumer_lag as f64);
            }
        }
    }

    /// Client-level errors are logged, except "end of partition" events, which consumers
    /// that ask for them (`enable.partition.eof`) receive as messages and
    /// are not errors.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.note_error(&error);
        if matches!(error, rdkafka::error::KafkaError::PartitionEOF(_)) {
            tracing::trace!(member = %self.member, reason, "end of partition");
            return;
        }
        if let Some(suppressed) = self.errors.admit_error(&error) {
            tracing::error!(
                member = %self.member,
                error = %error,
                reason,
                suppressed,
                "librdkafka error (repeats of this cause are logged at most every {} s, with the number suppressed)",
                crate::throttle::LOG_WINDOW.as_secs()
            );
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                metrics::counter!(crate::metrics::REBALANCES, "kind" => "revoke").increment(1);
                tracing::info!(member = %self.member, partitions = tpl.count(), "partitions revoked");
                if consumer.assignment_lost() {
                    self.membership.on_lost();
                }
                // From here on, work of these partitions neither publishes nor stores.
                self.update_owned(tpl, false);
                if let Some(hook) = self.revoke_hook.get() {
                    let revoked: Vec<(String, i32)> = tpl
                        .elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect();
                    hook(&revoked, consumer, consumer.group_metadata());
                }
                if self.commit_on_revoke.load(Ordering::Relaxed) {
                    // Commit what has been stored before the partitions go to another member.
                    match consumer.commit_consumer_state(CommitMode::Sync) {
                        Ok(()) => {}
                        // Nothing stored since the last commit.
                        Err(rdkafka::error::KafkaError::ConsumerCommit(
                            rdkafka::types::RDKafkaErrorCode::NoOffset,
                        )) => {}
                        Err(e) => {
                            self.commit_failures
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            metrics::counter!(crate::metrics::COMMIT_FAILURES).increment(1);
                            tracing::warn!(member = %self.member, error = %e, "commit on revoke failed; inputs since the last commit will be redelivered");
                        }
                    }
                }
                self.update(tpl, false);
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => {
                metrics::counter!(crate::metrics::REBALANCES, "kind" => "error").increment(1);
                self.membership.on_lost();
                tracing::warn!(member = %self.member, error = %e, "rebalance error");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            metrics::counter!(crate::metrics::REBALANCES, "kind" => "assign").increment(1);
            tracing::info!(member = %self.member, partitions = tpl.count(), "partitions assigned");
            self.membership.on_assign();
            self.update_owned(tpl, true);
            self.update(tpl, true);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if result.is_ok() {
            if let Some(hook) = self.commit_hook.get() {
                let committed: Vec<(String, i32, i64)> = offsets
                    .elements()
                    .iter()
                    .filter(|e| e.error().is_ok())
                    .filter_map(|e| match e.offset() {
                        rdkafka::Offset::Offset(o) => {
                            Some((e.topic().to_string(), e.partition(), o))
                        }
                        _ => None,
                    })
                    .collect();
                hook(&committed);
            }
        }
        if let Err(e) = result {
            if !matches!(
                e,
                rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset
                )
            ) {
                metrics::counter!(crate::metrics::COMMIT_FAILURES).increment(1);
                tracing::warn!(member = %self.member, error = %e, "offset commit failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ends_membership, Membership, REJOIN_QUIET};
    use rdkafka::types::RDKafkaErrorCode;
    use std::time::{Duration, Instant};

    #[test]
    fn a_refused_kip848_member_is_not_joined_until_refusals_stop() {
        let m = Membership::default();
        m.set_consumer_protocol(true);
        let t0 = Instant::now();
        m.on_stats("up", "init", t0);
        assert!(m.joined());
        m.on_refused(t0);
        assert!(!m.joined());
        m.on_stats("up", "init", t0 + Duration::from_secs(5));
        assert!(
            !m.joined(),
            "statistics cannot tell a refused member from an idle one"
        );
        m.on_stats("up", "init", t0 + REJOIN_QUIET + Duration::from_secs(1));
        assert!(m.joined(), "no refusal for a while: heartbeating again");
        m.on_refused(t0 + REJOIN_QUIET + Duration::from_secs(2));
        m.on_assign();
        assert!(m.joined(), "an assignment is proof of membership");
    }

    #[test]
    fn group_refusals_end_membership_other_errors_do_not() {
        for code in [
            RDKafkaErrorCode::UnknownMemberId,
            RDKafkaErrorCode::FencedMemberEpoch,
            RDKafkaErrorCode::FencedInstanceId,
            RDKafkaErrorCode::GroupAuthorizationFailed,
        ] {
            assert!(ends_membership(code), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert!(!ends_membership(code), "{code:?}");
        }
    }

    #[test]
    fn an_assignment_joins_and_a_loss_leaves() {
        let m = Membership::default();
        assert!(!m.joined(), "not joined before any callback");
        m.on_assign();
        assert!(m.joined());
        m.on_lost();
        assert!(!m.joined());
    }

    #[test]
    fn classic_statistics_join_only_when_steady() {
        let m = Membership::default();
        m.on_stats("up", "init", Instant::now());
        assert!(!m.joined(), "up but not yet through the join");
        m.on_stats("up", "wait-join", Instant::now());
        assert!(!m.joined());
        m.on_stats("up", "steady", Instant::now());
        assert!(m.joined());
        m.on_stats("query-coord", "steady", Instant::now());
        assert!(!m.joined(), "coordinator lost");
    }

    #[test]
    fn consumer_protocol_counts_an_idle_heartbeating_member() {
        let m = Membership::default();
        m.set_consumer_protocol(true);
        m.on_stats("wait-coord", "init", Instant::now());
        assert!(!m.joined());
        m.on_stats("up", "init", Instant::now());
        assert!(m.joined(), "KIP-848 idle members stay in `init`");
    }

    #[test]
    fn statistics_in_a_join_do_not_undo_an_assignment() {
        let m = Membership::default();
        m.on_assign();
        m.on_stats("up", "wait-sync", Instant::now());
        assert!(m.joined(), "a rebalance in progress keeps the member");
    }
}
