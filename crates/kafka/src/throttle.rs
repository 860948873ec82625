//! Repeated client errors, logged once per cause and window.
//!
//! While a broker is away librdkafka reports the same error ("all brokers down", "broker
//! transport failure") to every poll: a worker logged two lines every 100 ms for as long as
//! the outage lasted, burying anything else. A [`LogThrottle`] lets the first occurrence of
//! each cause through, suppresses repeats for a window, and lets the next one through with
//! the number suppressed meanwhile, so an outage is a handful of lines that still say how
//! often it happened. Counters keep counting every occurrence.
use rdkafka::error::KafkaError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window used by Argus's clients.
pub const LOG_WINDOW: Duration = Duration::from_secs(30);

/// Remembers when each cause was last logged.
#[derive(Debug)]
pub struct LogThrottle {
    window: Duration,
    /// Cause → (when last logged, occurrences suppressed since).
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(LOG_WINDOW)
    }
}

impl LogThrottle {
    /// A throttle that logs each cause at most once per `window`.
    pub fn new(window: Duration) -> Self {
        LogThrottle {
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an occurrence of `cause` at `now` should be logged: `Some(n)` with the number
    /// of occurrences suppressed since it was last logged, `None` to stay quiet.
    pub fn admit(&self, cause: &str, now: Instant) -> Option<u64> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match seen.get_mut(cause) {
            Some((last, suppressed)) if now.duration_since(*last) < self.window => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let n = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                seen.insert(cause.to_string(), (now, 0));
                Some(0)
            }
        }
    }

    /// [`LogThrottle::admit`] for a Kafka error, keyed by its error code (the text of an
    /// error with no code).
    pub fn admit_error(&self, error: &KafkaError) -> Option<u64> {
        self.admit(&cause(error), Instant::now())
    }
}

/// The cause of a Kafka error: its kind and code, without the varying detail.
pub fn cause(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn first_occurrence_logs_repeats_are_counted_until_the_window_passes() {
        let t = LogThrottle::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(t.admit("AllBrokersDown", t0), Some(0));
        for i in 1..=5 {
            assert_eq!(
                t.admit("AllBrokersDown", t0 + Duration::from_millis(100 * i)),
                None
            );
        }
        // Another cause is not held back by the first.
        assert_eq!(t.admit("BrokerTransportFailure", t0), Some(0));
        // After the window: logged again, with the five suppressed.
        assert_eq!(
            t.admit("AllBrokersDown", t0 + Duration::from_secs(31)),
            Some(5)
        );
        assert_eq!(
            t.admit("AllBrokersDown", t0 + Duration::from_secs(32)),
            None
        );
    }

    #[test]
    fn errors_are_keyed_by_code_not_by_their_changing_text() {
        let a = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        let b = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(cause(&a), cause(&b));
        assert_ne!(
            cause(&a),
            cause(&KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure
            ))
        );
    }
}
