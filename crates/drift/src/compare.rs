//! `argus drift compare`: the drift report for a current file against a reference file (or a
//! saved profile), without Kafka. The whole current file is one window; each segment present
//! in it gets one report, the fleet `*` first, then the segments in sorted order.
//!
//! The report is the sidecar's `argus.drift-report/v1` with these fixed offline values: model
//! `offline` / version `-`; window start and end at the Unix epoch (0 µs), 1 pane of 0 s,
//! every row counted and sampled (rate 1), no late records; no sidecars, partials or Kafka
//! offsets in the provenance. The alarm is a fresh k-consecutive rule after this one window,
//! so it is `firing` only for k = 1 (`pending` for a drifting window otherwise).
//!
//! Every row of the current file is tested: its sample capacity is the file's row count
//! (the sidecar's windows keep a bottom-k sample of `sample_k` = 1024 values per feature,
//! mergeable and bounded; a file is bounded already). The reference side is the profile's
//! stored sample: a saved profile's (up to its `reference_sample_max`, 100 000 by default);
//! a reference file compared directly is profiled with [`offline_settings`], which keep every
//! row (up to [`REFERENCE_SAMPLE_MAX_LIMIT`] = 10 000 000). Each test's `sample_n` in the
//! report says what was tested: [current values, reference values].
use crate::records::{profile_table, summarise_table, ColumnSpec, RecordsError, Table};
use argus_stats::alarm::ConsecutiveRule;
use argus_stats::evaluate::{evaluate, EvalConfig};
use argus_stats::profile::{Profile, ProfileSettings, FLEET, REFERENCE_SAMPLE_MAX_LIMIT};
use argus_stats::report::{rfc3339_us, DriftReport, ModelInfo, Provenance, Window};

/// Per-window false-alarm rate assumed for the alarm's expected run length.
const ALARM_P0: f64 = 0.05;

/// Profile settings for a reference file of `rows` rows compared offline: the defaults, with a
/// reference sample large enough for every row (never below the default, at most
/// [`REFERENCE_SAMPLE_MAX_LIMIT`], the most a profile may hold).
#[must_use]
pub fn offline_settings(rows: usize) -> ProfileSettings {
    let defaults = ProfileSettings::default();
    ProfileSettings {
        reference_sample_max: rows
            .max(defaults.reference_sample_max)
            .min(REFERENCE_SAMPLE_MAX_LIMIT),
        ..defaults
    }
}

/// Profile `reference` (as [`profile_table`] does, with [`offline_settings`] so that every row
/// is kept; id = the reference's file name) and compare `current` with it, one report per
/// segment.
pub fn compare(
    reference: &Table,
    current: &Table,
    spec: &ColumnSpec,
    cfg: &EvalConfig,
    k_alarm: u32,
) -> Result<Vec<DriftReport>, RecordsError> {
    let id = std::path::Path::new(&reference.source)
        .file_name()
        .map_or_else(
            || reference.source.clone(),
            |n| n.to_string_lossy().into_owned(),
        );
    let created_by = format!("argus-drift {}", env!("CARGO_PKG_VERSION"));
    let profile = profile_table(
        reference,
        spec,
        &offline_settings(reference.rows.len()),
        &id,
        &created_by,
    )?;
    compare_with_profile(&profile, current, spec.segment.as_deref(), cfg, k_alarm)
}

/// Compare `current` with a saved profile, one report per segment present in `current`
/// (`*` first, then sorted). Segments without a reference of their own use `*`'s, and say so
/// in `reference.segment`.
pub fn compare_with_profile(
    profile: &Profile,
    current: &Table,
    segment_column: Option<&str>,
    cfg: &EvalConfig,
    k_alarm: u32,
) -> Result<Vec<DriftReport>, RecordsError> {
    // Every row of the file is tested (the streaming sidecar's windows keep a bottom-k
    // sample of `sample_k` values per feature so that they stay mergeable and bounded; a
    // file is bounded already). Each test's `sample_n` says what was tested.
    let all = current.rows.len().max(profile.settings.sample_k);
    let mut summaries = summarise_table(current, profile, segment_column, all)?;
    let mut ordered = Vec::with_capacity(summaries.len());
    if let Some(fleet) = summaries.remove(FLEET) {
        ordered.push((FLEET.to_owned(), fleet));
    }
    ordered.extend(summaries);
    let epoch = rfc3339_us(0);
    let reports = ordered
        .into_iter()
        .map(|(segment, summary)| {
            let evaluation = evaluate(
                profile.reference_for(&segment).1,
                &summary,
                profile.calibration.as_ref(),
                cfg,
            );
            let alarm = ConsecutiveRule::new(k_alarm, ALARM_P0).observe(evaluation.decision());
            let window = Window {
                start: epoch.clone(),
                end: epoch.clone(),
                start_us: 0,
                end_us: 0,
                panes: 1,
                pane_seconds: 0.0,
                n_records: summary.n_records,
                n_sampled: summary.n_records,
                sample_rate: 1.0,
                late_records: 0,
            };
            let provenance = Provenance {
                sidecars_merged: 0,
                partials: 0,
                offsets: Vec::new(),
            };
            let model = ModelInfo {
                id: "offline".to_owned(),
                version: "-".to_owned(),
            };
            DriftReport::assemble(
                model, segment, window, profile, provenance, evaluation, alarm,
            )
        })
        .collect();
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_file_keeps_every_row_within_the_profile_limit() {
        let default = ProfileSettings::default();
        assert_eq!(offline_settings(10), default, "small files: the defaults");
        let big = offline_settings(250_000);
        assert_eq!(big.reference_sample_max, 250_000);
        assert_eq!(
            ProfileSettings {
                reference_sample_max: default.reference_sample_max,
                ..big
            },
            default,
            "only the reference sample grows"
        );
        assert_eq!(
            offline_settings(usize::MAX).reference_sample_max,
            REFERENCE_SAMPLE_MAX_LIMIT
        );
    }
}
