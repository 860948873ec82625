//! Backpressure decisions, pure: when the worker stops taking messages, pauses its
//! partitions and resumes them.
//!
//! Full for a moment (in-flight inputs or bytes at their bound): take no more messages.
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
    max_in_flight: usize,
    max_bytes: usize,
    pause_after: Duration,
    paused: bool,
    /// Since when in-flight work has been full (not paused yet).
    full_since: Option<Instant>,
}

impl Backpressure {
    pub(crate) fn new(max_in_flight: usize, max_bytes: usize, pause_after: Duration) -> Self {
        Backpressure {
            max_in_flight,
            max_bytes,
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

    /// The decision for `in_flight` inputs holding `bytes` at `now`. The caller reports
    /// whether a pause or resume it was told to do took effect.
    pub(crate) fn decide(&mut self, now: Instant, in_flight: usize, bytes: usize) -> Action {
        if self.paused {
            if in_flight <= self.max_in_flight / 2 && bytes <= self.max_bytes / 2 {
                return Action::Resume;
            }
        } else if in_flight >= self.max_in_flight || bytes >= self.max_bytes {
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
        Backpressure::new(100, 1000, Duration::from_secs(1))
    }

    #[test]
    fn full_stops_taking_then_pauses_after_pause_after() {
        let mut b = bp();
        let t0 = Instant::now();
        assert_eq!(b.decide(t0, 99, 0), Action::Keep);
        assert!(b.taking());
        // Full: stop taking at once, but do not pause yet.
        assert_eq!(b.decide(t0, 100, 0), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_millis(999), 100, 0),
            Action::Keep
        );
        assert_eq!(b.decide(t0 + Duration::from_secs(1), 100, 0), Action::Pause);
        b.did_pause();
        assert!(b.paused());
    }

    #[test]
    fn a_short_stall_takes_again_without_pausing() {
        let mut b = bp();
        let t0 = Instant::now();
        assert_eq!(b.decide(t0, 100, 0), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_millis(300), 60, 0),
            Action::Keep
        );
        assert!(b.taking());
        // The clock restarts: a new stall needs a full pause_after again.
        assert_eq!(
            b.decide(t0 + Duration::from_millis(400), 100, 0),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_millis(1300), 100, 0),
            Action::Keep
        );
        assert_eq!(
            b.decide(t0 + Duration::from_millis(1400), 100, 0),
            Action::Pause
        );
    }

    #[test]
    fn bytes_alone_fill_the_worker() {
        let mut b = bp();
        let t0 = Instant::now();
        assert_eq!(b.decide(t0, 1, 1000), Action::Keep);
        assert!(!b.taking());
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), 1, 1000),
            Action::Pause
        );
    }

    #[test]
    fn resumes_at_half_of_both_bounds() {
        let mut b = bp();
        let t0 = Instant::now();
        b.decide(t0, 100, 0);
        assert_eq!(
            b.decide(t0 + Duration::from_secs(1), 100, 900),
            Action::Pause
        );
        b.did_pause();
        assert_eq!(b.decide(t0 + Duration::from_secs(2), 51, 0), Action::Keep);
        assert_eq!(b.decide(t0 + Duration::from_secs(2), 50, 501), Action::Keep);
        assert_eq!(
            b.decide(t0 + Duration::from_secs(2), 50, 500),
            Action::Resume
        );
        // Until the resume took effect the decision stays.
        assert_eq!(b.decide(t0 + Duration::from_secs(2), 10, 0), Action::Resume);
        b.did_resume();
        assert!(!b.paused());
        assert!(b.taking());
        assert_eq!(b.decide(t0 + Duration::from_secs(3), 10, 0), Action::Keep);
    }

    #[test]
    fn a_failed_pause_is_asked_again() {
        let mut b = bp();
        let t0 = Instant::now();
        b.decide(t0, 100, 0);
        assert_eq!(b.decide(t0 + Duration::from_secs(1), 100, 0), Action::Pause);
        // The consumer refused (no assignment yet): not paused, asked again next time.
        assert!(!b.paused());
        assert_eq!(b.decide(t0 + Duration::from_secs(1), 100, 0), Action::Pause);
    }
}
