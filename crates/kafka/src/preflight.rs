//! The start-up check that the cluster accepts this client: metadata requests with the
//! role's settings until one succeeds, failing fast on what no retry fixes — authentication
//! (wrong SASL credentials or mechanism) and TLS (unknown CA, a client certificate the
//! broker refuses). Without it a worker with a wrong password starts and runs on, logging
//! "Authentication failure" twice a second; with it, start-up stops naming the cause.
//!
//! A broker that does not answer at all is not fatal here ([`ClusterProblem::fatal`] is
//! false): brokers start after workers in many deployments, and librdkafka reconnects.
use crate::KafkaSettings;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the cluster did not accept the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterProblem {
    /// SASL authentication failed.
    #[error(
        "Kafka at {brokers} refused the credentials: {reason}. Check sasl.mechanism, \
         sasl.username and sasl.password (and security.protocol=sasl_ssl or sasl_plaintext)"
    )]
    Authentication {
        /// The bootstrap servers.
        brokers: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error(
        "TLS with Kafka at {brokers} failed: {reason}. Check ssl.ca.location (the CA that \
         signed the broker's certificate) and, where the broker asks for client certificates, \
         ssl.certificate.location and ssl.key.location"
    )]
    Tls {
        /// The bootstrap servers.
        brokers: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// The client configuration itself is refused (a property librdkafka does not know, or
    /// a value it rejects); the message names the property, never its value.
    #[error("{0}")]
    Config(String),
    /// No broker answered a metadata request in time.
    #[error("no answer from Kafka at {brokers} within {within:?}: {reason}")]
    Unreachable {
        /// The bootstrap servers.
        brokers: String,
        /// How long the check waited.
        within: Duration,
        /// The last error seen, if any.
        reason: String,
    },
}

impl ClusterProblem {
    /// Whether retrying cannot help: the configuration has to change.
    pub fn fatal(&self) -> bool {
        !matches!(self, ClusterProblem::Unreachable { .. })
    }
}

/// The first error that no retry fixes, if any: authentication before TLS.
pub fn classify(brokers: &str, errors: &[(RDKafkaErrorCode, String)]) -> Option<ClusterProblem> {
    let find = |pred: fn(RDKafkaErrorCode) -> bool| {
        errors
            .iter()
            .find(|(code, _)| pred(*code))
            .map(|(_, reason)| reason.clone())
    };
    if let Some(reason) = find(|c| {
        matches!(
            c,
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState
        )
    }) {
        return Some(ClusterProblem::Authentication {
            brokers: brokers.to_owned(),
            reason,
        });
    }
    find(|c| c == RDKafkaErrorCode::SSL).map(|reason| ClusterProblem::Tls {
        brokers: brokers.to_owned(),
        reason,
    })
}

/// Records the errors librdkafka reports while the check runs.
#[derive(Debug, Default)]
struct Recorder {
    errors: Mutex<Vec<(RDKafkaErrorCode, String)>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        if let Some(code) = error.rdkafka_error_code() {
            if let Ok(mut e) = self.errors.lock() {
                e.push((code, reason.to_owned()));
            }
        }
    }

    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _log_message: &str) {
        // The check's own client is quiet: its errors come back as one `ClusterProblem`.
    }
}

impl ConsumerContext for Recorder {}

/// How long [`startup_check`] waits for the cluster before going on without it.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// The start-up check every role runs: `Err` (stop, exit 64) only for a problem no retry
/// fixes; a cluster that does not answer within [`STARTUP_WAIT`] is logged and the caller
/// goes on (its clients keep trying).
pub async fn startup_check(settings: &KafkaSettings) -> Result<(), ClusterProblem> {
    let s = settings.clone();
    let checked = tokio::task::spawn_blocking(move || check_cluster(&s, STARTUP_WAIT))
        .await
        .unwrap_or_else(|e| {
            Err(ClusterProblem::Unreachable {
                brokers: settings.brokers.clone(),
                within: Duration::ZERO,
                reason: format!("the check did not finish: {e}"),
            })
        });
    match checked {
        Err(p) if p.fatal() => Err(p),
        Err(p) => {
            tracing::warn!(problem = %p, "Kafka does not answer yet; the clients keep trying");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// Asks the cluster for metadata with `settings` until it answers (`Ok`), an error no retry
/// fixes is seen, or `within` passes. Blocking: call it from a blocking thread.
pub fn check_cluster(settings: &KafkaSettings, within: Duration) -> Result<(), ClusterProblem> {
    let brokers = settings.brokers.clone();
    let consumer: BaseConsumer<Recorder> = settings
        .client_config("argus-preflight")
        .create_with_context(Recorder::default())
        .map_err(|error| {
            ClusterProblem::Config(
                crate::KafkaSetupError::Client {
                    role: "client",
                    brokers: brokers.clone(),
                    error,
                }
                .to_string(),
            )
        })?;
    let start = Instant::now();
    loop {
        let answer = consumer.fetch_metadata(None, Duration::from_millis(500));
        // Error events reach `Recorder::error` only when the client's queue is served.
        let _ = consumer.poll(Duration::ZERO);
        let seen = consumer
            .context()
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let problem = classify(&brokers, &seen);
        let last = match (answer, problem) {
            // A broker answered: one refusing us (say, mid certificate rotation) is logged.
            (Ok(_), Some(p)) => {
                tracing::warn!(problem = %p, "one broker refused the client; others answered");
                return Ok(());
            }
            (Ok(_), None) => return Ok(()),
            (Err(_), Some(p)) => return Err(p),
            (Err(e), None) => seen
                .last()
                .map_or_else(|| e.to_string(), |(_, r)| r.clone()),
        };
        if start.elapsed() >= within {
            return Err(ClusterProblem::Unreachable {
                brokers,
                within,
                reason: last,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn authentication_and_tls_errors_are_fatal_and_named() {
        let auth = vec![
            (
                RDKafkaErrorCode::BrokerTransportFailure,
                "Disconnected".to_owned(),
            ),
            (
                RDKafkaErrorCode::Authentication,
                "SASL authentication error: Authentication failed".to_owned(),
            ),
        ];
        let p = classify("b:9094", &auth).unwrap();
        assert!(p.fatal());
        assert!(p.to_string().contains("sasl.password"), "{p}");
        assert!(p.to_string().contains("Authentication failed"), "{p}");
        let tls = vec![(
            RDKafkaErrorCode::SSL,
            "SSL handshake failed: certificate verify failed".to_owned(),
        )];
        let p = classify("b:9095", &tls).unwrap();
        assert!(matches!(p, ClusterProblem::Tls { .. }) && p.fatal());
        assert!(p.to_string().contains("ssl.ca.location"), "{p}");
    }

    #[test]
    fn transport_errors_are_retried_not_fatal() {
        let down = vec![(
            RDKafkaErrorCode::AllBrokersDown,
            "1/1 brokers are down".to_owned(),
        )];
        assert_eq!(classify("b:9092", &down), None);
        let p = ClusterProblem::Unreachable {
            brokers: "b:9092".into(),
            within: Duration::from_secs(5),
            reason: "1/1 brokers are down".into(),
        };
        assert!(!p.fatal());
    }
}
