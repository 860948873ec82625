//! Helpers shared by the reference-value tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
use serde_json::Value;

/// `got` equals the reference `want` to 1e-9, relative.
#[track_caller]
pub fn close(got: f64, want: &Value, what: &str) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number"));
    let tol = 1e-9 * want.abs().max(1e-300);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, want {want:e}"
    );
}
