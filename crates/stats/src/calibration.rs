//! Isotonic calibration (pool-adjacent-violators) for CBPE: fitted offline on reference
//! scores with labels, stored in the profile as a piecewise-constant map.
use crate::profile::Calibration;

/// Fit a non-decreasing step function P(label = positive | score) by PAV. Pairs with a
/// non-finite score are skipped. Returns `None` with fewer than 2 usable pairs.
pub fn fit_isotonic(
    scores: &[f64],
    positive: &[bool],
    positive_label: &str,
    threshold: f64,
) -> Option<Calibration> {
    let mut pairs: Vec<(f64, f64)> = scores
        .iter()
        .zip(positive)
        .filter(|(s, _)| s.is_finite())
        .map(|(s, y)| (*s, if *y { 1.0 } else { 0.0 }))
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let correct = pairs
        .iter()
        .filter(|(s, y)| (*s >= threshold) == (*y > 0.5))
        .count() as f64;
    let reference_accuracy = correct / pairs.len() as f64;
    // Blocks: (upper score, sum of labels, weight); equal scores start in one block.
    let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
    for (s, y) in pairs {
        match blocks.last_mut() {
            Some(last) if last.0 == s => {
                last.1 += y;
                last.2 += 1.0;
            }
            _ => blocks.push((s, y, 1.0)),
        }
        while blocks.len() >= 2 {
            let n = blocks.len();
            let (a, b) = (blocks[n - 2], blocks[n - 1]);
            if a.1 / a.2 >= b.1 / b.2 {
                blocks[n - 2] = (b.0, a.1 + b.1, a.2 + b.2);
                blocks.pop();
            } else {
                break;
            }
        }
    }
    let upper: Vec<f64> = blocks.iter().map(|b| b.0).collect();
    let levels: Vec<f64> = blocks.iter().map(|b| b.1 / b.2).collect();
    // CBPE on the reference: P(correct) = p̂ if predicted positive, else 1 − p̂.
    let finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    let estimated: f64 = finite
        .iter()
        .map(|s| {
            let i = upper.partition_point(|u| u < s).min(levels.len() - 1);
            if *s >= threshold {
                levels[i]
            } else {
                1.0 - levels[i]
            }
        })
        .sum();
    Some(Calibration {
        positive_label: positive_label.to_owned(),
        threshold,
        upper,
        levels,
        reference_accuracy,
        reference_estimated_accuracy: estimated / finite.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::calibration_level;

    #[test]
    fn pav_is_monotone_and_averages_violators() {
        let s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let y = [false, true, false, false, true, true];
        let c = fit_isotonic(&s, &y, "person", 0.5).expect("fit");
        assert!(c.levels.windows(2).all(|w| w[0] <= w[1]), "{:?}", c.levels);
        // 0.1 → 0; (0.2, 0.3, 0.4) pooled → 1/3; (0.5, 0.6) → 1.
        assert_eq!(c.levels, vec![0.0, 1.0 / 3.0, 1.0]);
        assert_eq!(c.levels[calibration_level(&c, 0.35)], 1.0 / 3.0);
        assert_eq!(c.levels[calibration_level(&c, 0.99)], 1.0);
        assert_eq!(c.levels[calibration_level(&c, -3.0)], 0.0);
        assert!((c.reference_accuracy - 5.0 / 6.0).abs() < 1e-12);
    }
}
