//! Stage transitions, decided on a [`RegistryState`] without Kafka: each returns the
//! [`Plan`] of records to write (version records first, then the deployment record, whose
//! one write switches what serves).
//!
//! The rules:
//! - **production** needs the promotion gate's decision (`gate`) or `forced` with a
//!   non-empty reason. The previous production version goes back to *candidate* and onto
//!   the deployment's `history` (where rollback looks). A version promoted from the canary
//!   or shadow slot leaves that slot.
//! - **canary** takes a share in (0, 1) (default [`DEFAULT_CANARY_SHARE`]); an earlier
//!   canary version goes back to candidate. Promoting the canary again changes its share.
//! - **shadow**: likewise, one shadow version at a time.
//! - **candidate**: takes a version out of the canary or shadow slot. Production is never
//!   demoted this way: promote another version or roll back, so a name that had a
//!   production version always has one.
//! - **rollback**: production goes back to the newest earlier production version that is
//!   not archived (archived ones are dropped from the history); the version rolled back
//!   from becomes a candidate. No gate: the target served before.
//! - **archived**: refused while the version serves (production, canary or shadow);
//!   archived versions never serve again (register a new version instead).
use crate::error::{RegistryError, Result};
use crate::records::{
    Canary, DeploymentRecord, EvaluationRecord, HistoryEntry, PreviousProduction, Stage,
    VersionRecord, MAX_PREVIOUS,
};
use crate::state::RegistryState;

/// Canary share when none is given.
pub const DEFAULT_CANARY_SHARE: f64 = 0.1;

/// Who changes what, and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Change {
    /// Who (`user@host` by default in the CLI).
    pub by: String,
    /// Why.
    pub reason: String,
    /// Promote to production without a passing gate decision (needs a reason).
    pub forced: bool,
    /// The promotion gate's decision, recorded as given.
    pub gate: Option<serde_json::Value>,
}

/// The records a change writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Version records to write, the one changed first.
    pub versions: Vec<VersionRecord>,
    /// The new deployment record (none when what serves does not change).
    pub deployment: Option<DeploymentRecord>,
}

fn entry(change: &Change, action: &str, from: Stage, to: Stage, at: &str) -> HistoryEntry {
    HistoryEntry {
        at: at.into(),
        by: change.by.clone(),
        action: action.into(),
        from_stage: Some(from),
        to_stage: to,
        reason: change.reason.clone(),
        forced: change.forced,
        gate: change.gate.clone(),
    }
}

/// Moves a version record to `to`, recording the change.
fn moved(
    mut v: VersionRecord,
    to: Stage,
    action: &str,
    change: &Change,
    at: &str,
) -> VersionRecord {
    let from = v.stage;
    v.history.push(entry(change, action, from, to, at));
    v.stage = to;
    v
}

fn refuse(v: &VersionRecord, to: Stage, reason: impl Into<String>) -> RegistryError {
    RegistryError::Transition {
        name: v.name.clone(),
        version: v.version.clone(),
        from: v.stage,
        to,
        reason: reason.into(),
    }
}

/// A version that leaves its slot because another takes it: back to candidate.
fn displaced(
    state: &RegistryState,
    name: &str,
    version: Option<&str>,
    by_version: &str,
    change: &Change,
    at: &str,
) -> Option<VersionRecord> {
    let old = state.version(name, version?).ok()?.clone();
    let why = Change {
        reason: format!("replaced by {by_version}: {}", change.reason),
        forced: false,
        gate: None,
        ..change.clone()
    };
    Some(moved(old, Stage::Candidate, "demote", &why, at))
}

/// Promotes or demotes `name@version` to `to` (archiving: [`plan_archive`]).
pub fn plan_stage(
    state: &RegistryState,
    name: &str,
    version: &str,
    to: Stage,
    change: &Change,
    canary_share: Option<f64>,
    at: &str,
) -> Result<Plan> {
    let v = state.version(name, version)?.clone();
    if to == Stage::Archived {
        return plan_archive(state, name, version, change, at);
    }
    if v.stage == Stage::Archived {
        return Err(refuse(
            &v,
            to,
            "archived versions never serve again; register a new version",
        ));
    }
    let mut dep = state
        .deployment(name)
        .cloned()
        .unwrap_or_else(|| DeploymentRecord::empty(name));
    let slot = dep.slot_of(version);
    if slot == Some(Stage::Production) {
        return Err(refuse(
            &v,
            to,
            "it is production: promote another version or roll back",
        ));
    }
    let mut others = Vec::new();
    match to {
        Stage::Production => {
            let forced_with_reason = change.forced && !change.reason.trim().is_empty();
            if change.gate.is_none() && !forced_with_reason {
                return Err(RegistryError::GateRequired {
                    name: name.into(),
                    version: version.into(),
                });
            }
            clear_slot(&mut dep, slot);
            if let Some(prev) = dep.production.take() {
                others.extend(displaced(state, name, Some(&prev), version, change, at));
                dep.history.push(PreviousProduction {
                    version: prev,
                    until: at.into(),
                    by: change.by.clone(),
                });
                let excess = dep.history.len().saturating_sub(MAX_PREVIOUS);
                dep.history.drain(..excess);
            }
            dep.production = Some(version.into());
        }
        Stage::Canary => {
            let share = canary_share.unwrap_or(DEFAULT_CANARY_SHARE);
            if !(share > 0.0 && share < 1.0) {
                return Err(refuse(&v, to, format!("share {share} is not in (0, 1)")));
            }
            if dep
                .canary
                .as_ref()
                .is_some_and(|c| c.version == version && c.share == share)
            {
                return Err(refuse(
                    &v,
                    to,
                    format!("it is the canary at share {share} already"),
                ));
            }
            clear_slot(&mut dep, slot.filter(|s| *s != Stage::Canary));
            let prev = dep
                .canary
                .take()
                .map(|c| c.version)
                .filter(|p| p != version);
            others.extend(displaced(state, name, prev.as_deref(), version, change, at));
            dep.canary = Some(Canary {
                version: version.into(),
                share,
            });
        }
        Stage::Shadow => {
            if slot == Some(Stage::Shadow) {
                return Err(refuse(&v, to, "it is the shadow already"));
            }
            clear_slot(&mut dep, slot);
            let prev = dep.shadow.take();
            others.extend(displaced(state, name, prev.as_deref(), version, change, at));
            dep.shadow = Some(version.into());
        }
        Stage::Candidate => {
            if slot.is_none() {
                return Err(refuse(&v, to, "it is a candidate already"));
            }
            clear_slot(&mut dep, slot);
        }
        Stage::Archived => unreachable!("handled above"),
    }
    let action = if to == Stage::Candidate {
        "demote"
    } else {
        "promote"
    };
    let mut versions = vec![moved(v, to, action, change, at)];
    versions.extend(others);
    Ok(Plan {
        versions,
        deployment: Some(next_revision(dep, change, at)),
    })
}

fn clear_slot(dep: &mut DeploymentRecord, slot: Option<Stage>) {
    match slot {
        Some(Stage::Canary) => dep.canary = None,
        Some(Stage::Shadow) => dep.shadow = None,
        _ => {}
    }
}

fn next_revision(mut dep: DeploymentRecord, change: &Change, at: &str) -> DeploymentRecord {
    dep.revision += 1;
    dep.changed_at = at.into();
    dep.by = change.by.clone();
    dep.why = change.reason.clone();
    dep
}

/// Production of `name` back to the previous production version.
pub fn plan_rollback(state: &RegistryState, name: &str, change: &Change, at: &str) -> Result<Plan> {
    state.versions_of(name)?;
    let nothing = || RegistryError::NothingToRollBack { name: name.into() };
    let mut dep = state.deployment(name).cloned().ok_or_else(nothing)?;
    let current = dep.production.clone().ok_or_else(nothing)?;
    let target = loop {
        let prev = dep.history.pop().ok_or_else(nothing)?;
        match state.version(name, &prev.version) {
            Ok(v) if v.stage != Stage::Archived && prev.version != current => break v.clone(),
            _ => continue,
        }
    };
    let slot = dep.slot_of(&target.version);
    clear_slot(&mut dep, slot);
    dep.production = Some(target.version.clone());
    let mut versions = vec![moved(target, Stage::Production, "rollback", change, at)];
    if let Ok(cur) = state.version(name, &current) {
        versions.push(moved(cur.clone(), Stage::Candidate, "rollback", change, at));
    }
    Ok(Plan {
        versions,
        deployment: Some(next_revision(dep, change, at)),
    })
}

/// Archives `name@version`; refused while it serves.
pub fn plan_archive(
    state: &RegistryState,
    name: &str,
    version: &str,
    change: &Change,
    at: &str,
) -> Result<Plan> {
    let v = state.version(name, version)?.clone();
    if v.stage == Stage::Archived {
        return Err(refuse(&v, Stage::Archived, "it is archived already"));
    }
    if let Some(slot) = state.deployment(name).and_then(|d| d.slot_of(version)) {
        return Err(refuse(
            &v,
            Stage::Archived,
            format!("it serves as {slot}: promote another version or roll back first"),
        ));
    }
    Ok(Plan {
        versions: vec![moved(v, Stage::Archived, "archive", change, at)],
        deployment: None,
    })
}

/// Adds an evaluation to `name@version` (its stage does not change).
pub fn plan_evaluation(
    state: &RegistryState,
    name: &str,
    version: &str,
    evaluation: EvaluationRecord,
) -> Result<Plan> {
    let mut v = state.version(name, version)?.clone();
    let change = Change {
        by: evaluation.by.clone(),
        reason: format!(
            "{} = {} on test set {}",
            evaluation.metric, evaluation.value, evaluation.test_set_sha256
        ),
        ..Change::default()
    };
    v.history
        .push(entry(&change, "evaluate", v.stage, v.stage, &evaluation.at));
    v.evaluations.push(evaluation);
    Ok(Plan {
        versions: vec![v],
        deployment: None,
    })
}

#[cfg(test)]
#[path = "transitions_tests.rs"]
mod tests;
