//! Alarms over time. Testing every window at a per-window false-alarm rate p₀ alone gives an
//! expected run length (ERT) of 1/p₀ windows — 20 minutes at α = 0.05 and 1-minute panes. The
//! k-of-k rule fires only after `k` consecutive drifting windows; under H0 with independent
//! windows its ERT is (1 − p₀ᵏ) / ((1 − p₀)·p₀ᵏ) windows (≈ 8 420 for p₀ = 0.05, k = 3).
use crate::report::Alarm;

/// The k-consecutive alarm rule: firing after `k` drifting windows in a row, pending before.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsecutiveRule {
    k: u32,
    p0: f64,
    consecutive: u32,
}

impl ConsecutiveRule {
    /// `k` ≥ 1 consecutive windows; `p0` is the per-window false-alarm rate used for the ERT.
    pub fn new(k: u32, p0: f64) -> Self {
        Self {
            k: k.max(1),
            p0,
            consecutive: 0,
        }
    }

    /// Expected windows until a false alarm under H0 (independent windows).
    pub fn expected_run_length(k: u32, p0: f64) -> f64 {
        if p0 <= 0.0 {
            return f64::INFINITY;
        }
        if p0 >= 1.0 {
            return f64::from(k);
        }
        let pk = p0.powi(k as i32);
        (1.0 - pk) / ((1.0 - p0) * pk)
    }

    /// Feed one window's decision (`None` = insufficient data: the run is neither extended
    /// nor broken) and get the alarm state after it.
    pub fn observe(&mut self, drift: Option<bool>) -> Alarm {
        match drift {
            Some(true) => self.consecutive = self.consecutive.saturating_add(1),
            Some(false) => self.consecutive = 0,
            None => {}
        }
        self.state()
    }

    /// The rule's state as a report's [`Alarm`].
    pub fn state(&self) -> Alarm {
        let state = if self.consecutive >= self.k {
            "firing"
        } else if self.consecutive > 0 {
            "pending"
        } else {
            "ok"
        };
        Alarm {
            rule: format!("{}_consecutive", self.k),
            k: self.k,
            state: state.to_owned(),
            consecutive: self.consecutive,
            expected_run_length_windows: Self::expected_run_length(self.k, self.p0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_matches_spec() {
        let ert = ConsecutiveRule::expected_run_length(3, 0.05);
        assert!((ert - 8420.0).abs() < 1.0, "{ert}");
        assert_eq!(ConsecutiveRule::expected_run_length(1, 0.05).round(), 20.0);
    }

    /// T9: simulated mean run length under H0 (2000 runs of i.i.d. windows with p₀ = 0.05)
    /// lies within ±15 % of the formula.
    #[test]
    fn simulated_run_length_matches_formula() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
        };
        let runs = 2000;
        let mut total = 0u64;
        for _ in 0..runs {
            let mut rule = ConsecutiveRule::new(3, 0.05);
            let mut n = 0u64;
            loop {
                n += 1;
                if rule.observe(Some(next() < 0.05)).state == "firing" {
                    break;
                }
            }
            total += n;
        }
        let mean = total as f64 / runs as f64;
        let ert = ConsecutiveRule::expected_run_length(3, 0.05);
        assert!((mean / ert - 1.0).abs() < 0.15, "mean {mean} vs {ert}");
    }

    #[test]
    fn states() {
        let mut r = ConsecutiveRule::new(2, 0.05);
        assert_eq!(r.observe(Some(true)).state, "pending");
        assert_eq!(r.observe(None).state, "pending");
        assert_eq!(r.observe(Some(true)).state, "firing");
        assert_eq!(r.observe(Some(false)).state, "ok");
    }
}
