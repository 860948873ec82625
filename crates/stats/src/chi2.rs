//! Pearson chi-square test of independence / homogeneity, a port of
//! `scipy.stats.chi2_contingency` (scipy 1.17.1, `lambda_=None`) with defined, NaN-free
//! behaviour on degenerate tables.

use crate::special::chi2_sf;

/// Result of [`chi2_contingency`] / [`chi2_homogeneity`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chi2Result {
    /// Pearson statistic `Σ (O − E)² / E` (after Yates' correction when it applies).
    pub statistic: f64,
    /// `chi2.sf(statistic, dof)`, or 1 for a degenerate table.
    pub p_value: f64,
    /// Degrees of freedom `(r − 1)(c − 1)` of the table actually tested (0 when degenerate).
    pub dof: usize,
}

const DEGENERATE: Chi2Result = Chi2Result {
    statistic: 0.0,
    p_value: 1.0,
    dof: 0,
};

/// Pearson chi-square test on an r×c contingency table: reproduces
/// `scipy.stats.chi2_contingency(table, correction=correction)` of scipy 1.17.1.
///
/// `E_ij = R_i C_j / T` (row sums × column sums / total, as `expected_freq`),
/// `dof = (r − 1)(c − 1)`; when `dof == 1` and `correction`, Yates' continuity correction moves
/// every observed count towards its expectation by `min(0.5, |E − O|)`; then
/// `statistic = Σ (O − E)² / E` and `p = chi2.sf(statistic, dof)` ([`chi2_sf`], accurate deep
/// into the tail).
///
/// Degenerate tables (scipy raises on any zero expected frequency) are defined here as:
/// all-zero columns are dropped first (they carry no information); then if fewer than 2 columns
/// or fewer than 2 rows remain, any row sums to 0, or the table is ragged, empty, or holds a
/// negative or non-finite count, the result is `statistic 0, p 1, dof 0`. Never NaN, never
/// panics. (A single row, or a single column after dropping, is scipy's own `dof == 0` case,
/// which also returns 0 and 1.)
#[must_use]
pub fn chi2_contingency(table: &[Vec<f64>], correction: bool) -> Chi2Result {
    let r = table.len();
    if r == 0 {
        return DEGENERATE;
    }
    let c_all = table[0].len();
    if table
        .iter()
        .any(|row| row.len() != c_all || row.iter().any(|v| !v.is_finite() || *v < 0.0))
    {
        return DEGENERATE;
    }
    let keep: Vec<usize> = (0..c_all)
        .filter(|&j| table.iter().any(|row| row[j] != 0.0))
        .collect();
    let c = keep.len();
    if r < 2 || c < 2 {
        return DEGENERATE;
    }
    let obs: Vec<Vec<f64>> = table
        .iter()
        .map(|row| keep.iter().map(|&j| row[j]).collect())
        .collect();
    let row_sums: Vec<f64> = obs.iter().map(|row| row.iter().sum()).collect();
    if row_sums.iter().any(|&s| s <= 0.0) {
        return DEGENERATE;
    }
    let col_sums: Vec<f64> = (0..c).map(|j| obs.iter().map(|row| row[j]).sum()).collect();
    let total: f64 = obs.iter().flatten().sum();
    let dof = (r - 1) * (c - 1);
    let yates = dof == 1 && correction;
    let mut stat = 0.0;
    for (i, row) in obs.iter().enumerate() {
        for (j, &o) in row.iter().enumerate() {
            // numpy: reduce(np.multiply, margsums) / observed.sum()
            let e = row_sums[i] * col_sums[j] / total;
            let o = if yates {
                let diff = e - o;
                o + diff.abs().min(0.5) * np_sign(diff)
            } else {
                o
            };
            let d = o - e;
            stat += d * d / e;
        }
    }
    if !stat.is_finite() {
        return DEGENERATE;
    }
    Chi2Result {
        statistic: stat,
        p_value: chi2_sf(stat, dof as f64).clamp(0.0, 1.0),
        dof,
    }
}

/// `numpy.sign` for finite values: −1, 0 or +1.
fn np_sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Chi-square test of homogeneity of two count vectors over the same K categories (the 2×K
/// table `[reference; current]`), as used for binned numeric and categorical drift:
/// `scipy.stats.chi2_contingency([reference, current], correction=correction)` (scipy 1.17.1)
/// after dropping the categories that are zero in both rows.
///
/// Vectors of different lengths are zero-padded to the longer one. Degenerate cases (either
/// row all zero, fewer than 2 non-empty categories) give `statistic 0, p 1, dof 0`; see
/// [`chi2_contingency`].
#[must_use]
pub fn chi2_homogeneity(reference: &[f64], current: &[f64], correction: bool) -> Chi2Result {
    let k = reference.len().max(current.len());
    let pad = |v: &[f64]| -> Vec<f64> {
        let mut out = v.to_vec();
        out.resize(k, 0.0);
        out
    };
    chi2_contingency(&[pad(reference), pad(current)], correction)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_tables_are_defined() {
        assert_eq!(chi2_contingency(&[], true), DEGENERATE);
        assert_eq!(chi2_contingency(&[vec![]], true), DEGENERATE);
        assert_eq!(chi2_contingency(&[vec![1.0, 2.0]], true), DEGENERATE);
        assert_eq!(
            chi2_contingency(&[vec![0.0, 0.0], vec![0.0, 0.0]], false),
            DEGENERATE
        );
        assert_eq!(
            chi2_contingency(&[vec![0.0, 0.0], vec![1.0, 3.0]], false),
            DEGENERATE
        );
        assert_eq!(
            chi2_contingency(&[vec![5.0, 0.0], vec![3.0, 0.0]], false),
            DEGENERATE
        );
        assert_eq!(
            chi2_contingency(&[vec![1.0, 2.0], vec![3.0]], false),
            DEGENERATE
        );
        assert_eq!(
            chi2_contingency(&[vec![1.0, -2.0], vec![3.0, 1.0]], false),
            DEGENERATE
        );
        assert_eq!(
            chi2_contingency(&[vec![1.0, f64::NAN], vec![3.0, 1.0]], false),
            DEGENERATE
        );
        assert_eq!(chi2_homogeneity(&[], &[], true), DEGENERATE);
        assert_eq!(chi2_homogeneity(&[0.0, 0.0], &[1.0, 2.0], true), DEGENERATE);
        assert_eq!(chi2_homogeneity(&[4.0, 0.0], &[1.0, 0.0], true), DEGENERATE);
    }

    #[test]
    fn zero_columns_are_dropped() {
        let with = chi2_homogeneity(&[10.0, 0.0, 20.0, 5.0], &[12.0, 0.0, 9.0, 7.0], false);
        let without = chi2_homogeneity(&[10.0, 20.0, 5.0], &[12.0, 9.0, 7.0], false);
        assert_eq!(with, without);
        assert_eq!(with.dof, 2);
    }

    #[test]
    fn identical_rows_give_zero() {
        let r = chi2_homogeneity(&[10.0, 20.0, 30.0], &[10.0, 20.0, 30.0], true);
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.dof, 2);
    }

    #[test]
    fn yates_only_for_dof_one() {
        let t = [vec![10.0, 20.0], vec![30.0, 25.0]];
        let a = chi2_contingency(&t, true);
        let b = chi2_contingency(&t, false);
        assert!(a.statistic < b.statistic);
        let t3 = [vec![10.0, 20.0, 5.0], vec![30.0, 25.0, 9.0]];
        assert_eq!(chi2_contingency(&t3, true), chi2_contingency(&t3, false));
    }

    #[test]
    fn length_mismatch_is_padded() {
        let a = chi2_homogeneity(&[10.0, 20.0], &[12.0, 18.0, 5.0], false);
        let b = chi2_homogeneity(&[10.0, 20.0, 0.0], &[12.0, 18.0, 5.0], false);
        assert_eq!(a, b);
        assert_eq!(a.dof, 2);
    }
}
