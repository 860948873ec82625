//! Backpressure decisions, pure: when the worker stops taking messages, pauses its
//! partitions and resumes them.
//!
//! Full for a moment (inputs in flight, their bytes, or the uncommitted window at their
//! bound): take no more messages.
//! Full for longer than `pause_after` (a slow model, a stalled output): pause every assigned
//! partition and keep polling, so the member stays in the group however long the stall
//! lasts. Resume once half the in-flight work has finished. (Pausing drops librdkafka's
//! prefetched messages and resuming refetches them, which costs up to a second, so short
//! stalls are better ridden out without it.)
use std::time::{Duration, Instant};

/// What the worker should do with its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing changes.
    Keep,
    /// Pause every assigned partition (keep polling).
    Pause,
    /// Resume the paused partitions.
    Resume,
}

/// Backpressure state of one worker.
#[derive(Debug, Clone)]
pub(crate) struct Backpressure {
    limits: Load,
    pause_after: Duration,
    paused: bool,
    /// Since when in-flight work has been full (not paused yet).
    full_since: Option<Instant>,
}

/// The worker's load, or its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Inputs consumed and not finished.
    pub(crate) in_flight: usize,
    /// Their payload bytes.
    pub(crate) bytes: usize,
    /// Inputs consumed and not committed (what a crash would redo): the unfinished, the
    /// finished waiting behind an unfinished one, the finished not yet committed.
    pub(crate) uncommitted: usize,
}

impl Load {
    fn reaches(&self, limits: &Load) -> bool {
        self.in_flight >= limits.in_flight
            || self.bytes >= limits.bytes
            || self.uncommitted >= limits.uncommitted
    }

    fn within_half(&self, limits: &Load) -> bool {
        self.in_flight <= limits.in_flight / 2
            && self.bytes <= limits.bytes / 2
            && self.uncommitted <= limits.uncommitted / 2
    }
}

impl Backpressure {
    pub(crate) fn new(limits: Load, pause_after: Duration) -> Self {
        Backpressure {
            limits,
            pause_after,
            paused: false,
            full_since: None,
        }
    }

    /// Whether the partitions are paused.
    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    /// Whether the worker may take a message now: not while in-flight work is full (while
    /// paused it polls anyway, to stay in the group; paused partitions yield nothing).
    pub(crate) fn taking(&self) -> bool {
        self.full_since.is_none()
    }

    /// The decision for `load` at `now`. The caller reports whether a pause or resume it
    /// was told to do took effect.
    pub(crate) fn decide(&mut self, now: Instant, load: Load) -> Action {
        if self.paused {
            if load.within_half(&self.limits) {
                return Action::Resume;
            }
        } else if load.reaches(&self.limits) {
            let since = *self.full_since.get_or_insert(now);
            if now.duration_since(since) >= self.pause_after {
                return Action::Pause;
            }
        } else {
            self.full_since = None;
        }
        Action::Keep
    }

    /// The partitions were paused.
    pub(crate) fn did_pause(&mut self) {
        self.paused = true;
    }

    /// The partitions were resumed.
    pub(crate) fn did_resume(&mut self) {
        self.paused = false;
        self.full_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp() -> Backpressure {
        let limits = Load {
            in_flight: 100,
            bytes: 1000,
            uncommitted: 400,
        };
        Backpressure::new(limits, Duration::from_secs(1))
    }

    /// `in_flight` inputs of `bytes`, none finished behind them.
    fn load(in_flight: usize, bytes: usize) -> Load {
        Load {
            in_flight,
            bytes,
            uncommitted: in_flight,
        }
    }

    /// Finished inputs waiting behind a slow one (an alert awaiting its evidence) are not
    /// in flight, but they are in the uncommitted window, which has its own bound.
    #[test]
    fn the_uncommitted_window_alone_fills_the_worker() {
        let mut b = bp();
        let t0 = Instant::now();
        let behind = |uncommitted| Load {
            in_flight: 3,
            bytes: 30,
            uncommitted,
        };
        assert_eq!(b.decide(t0, behind(399)), Action::Keep);
        assert!(b.taking());
        assert_eq!(b.decide(t0, behind(400)), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_secs(1), behind(400)),
            Action::Pause
        );
        b.did_pause();
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), behind(201)),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), behind(200)),
            Action::Resume
        );
    }

    #[test]
    fn full_stops_taking_then_pauses_after_pause_after() {
        let mut b = bp();
        let t0 = Instant::now();
        assert_eq!(b.decide(t0, load(99, 0)), Action::Keep);
        assert!(b.taking());
        // Full: stop taking at once, but do not pause yet.
        assert_eq!(b.decide(t0, load(100, 0)), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_millis(999), load(100, 0)),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_secs(1), load(100, 0)),
            Action::Pause
        );
        b.did_pause();
        assert!(b.paused());
    }

    #[test]
    fn a_short_stall_takes_again_without_pausing() {
        let mut b = bp();
        let t0 = Instant::now();
        assert_eq!(b.decide(t0, load(100, 0)), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_millis(300), load(60, 0)),
            Action::Keep
        );
        assert!(b.taking());
        // The clock restarts: a new stall needs a full pause_after again.
        assert_eq!(
            b.decide(t0 + Duration::from_millis(400), load(100, 0)),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_millis(1300), load(100, 0)),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_millis(1400), load(100, 0)),
            Action::Pause
        );
    }

    #[test]
    fn bytes_alone_fill_the_worker() {
        let mut b = bp();
        let t0 = Instant::now();
        assert_eq!(b.decide(t0, load(1, 1000)), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), load(1, 1000)),
            Action::Pause
        );
    }

    #[test]
    fn resumes_at_half_of_both_bounds() {
        let mut b = bp();
        let t0 = Instant::now();
        b.decide(t0, load(100, 0));
        assert_eq!(
            b.decide(t0 + Duration::from_secs(1), load(100, 900)),
            Action::Pause
        );
        b.did_pause();
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), load(51, 0)),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), load(50, 501)),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), load(50, 500)),
            Action::Resume
        );
        // Until the resume took effect the decision stays.
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), load(10, 0)),
            Action::Resume
        );
        b.did_resume();
        assert!(!b.paused());
        assert!(b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_secs(3), load(10, 0)),
            Action::Keep
        );
    }

    #[test]
    fn a_failed_pause_is_asked_again() {
        let mut b = bp();
        let t0 = Instant::now();
        b.decide(t0, load(100, 0));
        assert_eq!(
            b.decide(t0 + Duration::from_secs(1), load(100, 0)),
            Action::Pause
        );
        // The consumer refused (no assignment yet): not paused, asked again next time.
        assert!(!b.paused());
        assert_eq!(
            b.decide(t0 + Duration::from_secs(1), load(100, 0)),
            Action::Pause
        );
    }
}
