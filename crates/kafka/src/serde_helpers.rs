//! Serde helpers shared by every role's settings (durations in human form, lists written
//! as one comma-separated string in environment variables), and [`KafkaConfig`], the
//! `[kafka]` table of the configuration.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[kafka]`: the cluster every role talks to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Replication factor of the topics Argus creates; -1 = the broker's
    /// `default.replication.factor`.
    pub replication_factor: ReplicationFactor,
    /// Where a new consumer group starts: `earliest` (nothing on the topic is skipped) or
    /// `latest`.
    pub offset_reset: crate::settings::OffsetReset,
    /// librdkafka properties for every client (SASL, TLS, ...), applied after Argus's own.
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            replication_factor: ReplicationFactor::BROKER_DEFAULT,
            offset_reset: crate::settings::OffsetReset::Earliest,
            options: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The client settings: these brokers, Argus's defaults, then `options`.
    pub fn settings(&self) -> crate::KafkaSettings {
        let mut s = crate::KafkaSettings::new(&self.brokers);
        s.options.extend(self.options.clone());
        s.replication_factor = self.replication_factor.fixed();
        s.offset_reset = self.offset_reset;
        s
    }
}

/// Replication factor of the topics Argus creates: -1 (the broker's
/// `default.replication.factor`, KIP-464) or 1 to 32,767 (Kafka's is a 16-bit number). Any
/// other value is refused when the configuration is read, naming the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i32", into = "i32")]
pub struct ReplicationFactor(i32);

impl ReplicationFactor {
    /// -1: the broker decides.
    pub const BROKER_DEFAULT: ReplicationFactor = ReplicationFactor(-1);

    /// The factor to ask for, `None` for the broker's default.
    pub fn fixed(self) -> Option<i32> {
        (self.0 != -1).then_some(self.0)
    }
}

impl TryFrom<i32> for ReplicationFactor {
    type Error = String;

    fn try_from(n: i32) -> Result<Self, Self::Error> {
        if n == -1 || (1..=i32::from(i16::MAX)).contains(&n) {
            Ok(ReplicationFactor(n))
        } else {
            Err(format!(
                "replication factor {n} is invalid: use -1 (the broker's default.replication.factor) or 1 to 32767"
            ))
        }
    }
}

impl From<ReplicationFactor> for i32 {
    fn from(r: ReplicationFactor) -> i32 {
        r.0
    }
}

/// Parses a duration: humantime units (`500ms`, `20s`, `5m`, `1h 30m`, `2d`) or a bare
/// number of seconds (`3`, `0.5`). Months and years are refused (their length is not
/// fixed; in a timeout they are a typo).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("invalid duration {s:?}; use e.g. 500ms, 20s, 5m"));
    }
    let calendar = s
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|u| matches!(u, "y" | "year" | "years" | "M" | "month" | "months"));
    if calendar {
        return Err(format!(
            "invalid duration unit in {s:?}; use ms, s, m, h or d"
        ));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 500ms, 20s, 5m"))
}

/// A duration as humantime writes it (`20s`, `100ms`, `1m 30s`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurationRepr {
    Text(String),
    Secs(f64),
}

fn from_repr<E: serde::de::Error>(r: DurationRepr) -> Result<Duration, E> {
    match r {
        DurationRepr::Text(s) => parse_duration(&s).map_err(E::custom),
        DurationRepr::Secs(n) => {
            Duration::try_from_secs_f64(n).map_err(|_| E::custom(format!("invalid duration {n}")))
        }
    }
}

/// `#[serde(with = "duration")]`: humantime text, or a number of seconds.
pub mod duration {
    use super::*;
    /// Writes the duration in human form.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    /// Reads human form or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_repr(DurationRepr::deserialize(d)?)
    }
}

/// `#[serde(with = "opt_duration")]`: like [`duration`], absent = `None`.
pub mod opt_duration {
    use super::*;
    /// Writes the duration in human form, if any.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }
    /// Reads human form or a number of seconds, if present.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<DurationRepr>::deserialize(d)?
            .map(from_repr)
            .transpose()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ListRepr<T> {
    List(Vec<T>),
    Text(String),
}

/// A list written as a list, or as one comma-separated string (environment variables).
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match ListRepr::<T>::deserialize(d)? {
        ListRepr::List(v) => Ok(v),
        ListRepr::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(serde::de::Error::custom))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replication_factor_is_minus_one_or_a_positive_16_bit_number() {
        for ok in [-1, 1, 3, 32767] {
            assert_eq!(i32::from(ReplicationFactor::try_from(ok).unwrap()), ok);
        }
        for bad in [0, -2, 32768, i32::MIN] {
            let e = ReplicationFactor::try_from(bad).unwrap_err();
            assert!(e.contains(&bad.to_string()) && e.contains("-1"), "{e}");
        }
        assert_eq!(ReplicationFactor::BROKER_DEFAULT.fixed(), None);
        assert_eq!(ReplicationFactor::try_from(3).unwrap().fixed(), Some(3));
    }
}
