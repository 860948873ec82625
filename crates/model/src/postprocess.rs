//! Output numbers → probabilities → top-k.
use crate::manifest::OutputKind;

/// Numerically stable softmax in place (max subtracted first).
pub fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        let n = values.len() as f32;
        values.iter_mut().for_each(|v| *v = 1.0 / n);
        return;
    }
    let mut sum = 0.0;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// Turns raw outputs into probabilities according to the manifest's output kind.
pub fn probabilities(kind: OutputKind, mut raw: Vec<f32>) -> Vec<f32> {
    match kind {
        OutputKind::Logits => softmax(&mut raw),
        OutputKind::Probabilities => raw.iter_mut().for_each(|v| {
            *v = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            }
        }),
    }
    raw
}

/// Indices of the `k` largest probabilities, best first; ties keep the lower index first.
pub fn top_k(probs: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_matches_reference_values() {
        // numpy: exp(x - max) / sum for x = [1, 2, 3]
        let mut v = vec![1.0f32, 2.0, 3.0];
        softmax(&mut v);
        let expected = [0.090_030_57, 0.244_728_48, 0.665_240_94];
        for (a, b) in v.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn softmax_is_stable_for_huge_logits() {
        let mut v = vec![1000.0f32, 1000.0];
        softmax(&mut v);
        assert_eq!(v, vec![0.5, 0.5]);
        let mut v = vec![f32::NEG_INFINITY, f32::NEG_INFINITY];
        softmax(&mut v);
        assert_eq!(v, vec![0.5, 0.5]);
    }

    #[test]
    fn top_k_orders_and_truncates() {
        assert_eq!(top_k(&[0.1, 0.7, 0.2], 2), vec![1, 2]);
        assert_eq!(top_k(&[0.5, 0.5], 5), vec![0, 1]);
        assert!(top_k(&[], 3).is_empty());
    }

    #[test]
    fn probabilities_are_clamped() {
        let p = probabilities(OutputKind::Probabilities, vec![1.2, -0.1, f32::NAN]);
        assert_eq!(p, vec![1.0, 0.0, 0.0]);
    }
}
