//! Deterministic record hashes: the same record gets the same hash on every sidecar, so
//! sampling decisions and bottom-k samples do not depend on which sidecar saw the record.
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// `xxh3_64(seed ‖ topic ‖ partition ‖ offset)`: the seed is xxh3's seed, the rest is hashed
/// as `topic` bytes, a 0 byte, then partition (i32 LE) and offset (i64 LE).
pub fn record_hash(seed: u64, topic: &str, partition: i32, offset: i64) -> u64 {
    let mut buf = Vec::with_capacity(topic.len() + 13);
    buf.extend_from_slice(topic.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&partition.to_le_bytes());
    buf.extend_from_slice(&offset.to_le_bytes());
    xxh3_64_with_seed(&buf, seed)
}

/// `xxh3_64(seed ‖ source ‖ event time)`: frame sampling keys on the camera and capture time,
/// so a frame re-sent at another offset makes the same decision.
pub fn frame_hash(seed: u64, source: &str, event_time_us: i64) -> u64 {
    let mut buf = Vec::with_capacity(source.len() + 9);
    buf.extend_from_slice(source.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&event_time_us.to_le_bytes());
    xxh3_64_with_seed(&buf, seed)
}

/// Hash of a category value (new-category tracking keeps the values with the smallest hashes).
pub fn value_hash(seed: u64, value: &str) -> u64 {
    xxh3_64_with_seed(value.as_bytes(), seed ^ 0x9e37_79b9_7f4a_7c15)
}

/// Keep-decision for a sampling `rate` in (0, 1]: keep iff `hash < rate·2⁶⁴`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    threshold: Option<u64>,
    rate: f64,
}

impl Sampler {
    /// `rate` is clamped to (0, 1]; 1 keeps everything.
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() {
            rate.clamp(f64::MIN_POSITIVE, 1.0)
        } else {
            1.0
        };
        let threshold = if rate >= 1.0 {
            None
        } else {
            // 2^64 as f64 is exact; the product is below it, so the cast does not saturate.
            Some((rate * 18_446_744_073_709_551_616.0) as u64)
        };
        Self { threshold, rate }
    }

    /// The share of records kept, 0..=1.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether a record with this hash is kept.
    pub fn keep(&self, hash: u64) -> bool {
        self.threshold.is_none_or(|t| hash < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_distinct() {
        assert_eq!(
            record_hash(7, "frames", 0, 1),
            record_hash(7, "frames", 0, 1)
        );
        assert_ne!(
            record_hash(7, "frames", 0, 1),
            record_hash(7, "frames", 1, 0)
        );
        assert_ne!(
            record_hash(7, "frames", 0, 1),
            record_hash(8, "frames", 0, 1)
        );
        assert_ne!(frame_hash(1, "cam-1", 5), frame_hash(1, "cam-2", 5));
    }

    #[test]
    fn sampler_rate_is_respected() {
        let s = Sampler::new(0.25);
        let kept = (0..100_000)
            .filter(|i| s.keep(record_hash(1, "t", 0, *i)))
            .count();
        assert!((kept as f64 / 100_000.0 - 0.25).abs() < 0.01, "{kept}");
        assert!(Sampler::new(1.0).keep(u64::MAX));
        assert!(Sampler::new(f64::NAN).keep(u64::MAX));
    }
}
