//! Unit tests of the stage transitions (no broker).
#![allow(clippy::unwrap_used)]
use super::*;
use crate::records::{ArtifactLocation, Lineage, VERSION_SCHEMA};

pub(crate) fn version(name: &str, v: &str) -> VersionRecord {
    VersionRecord {
        schema: VERSION_SCHEMA.into(),
        name: name.into(),
        version: v.into(),
        sha256: "ab".repeat(32),
        artifact: ArtifactLocation::Chunks {
            chunks: 1,
            chunk_bytes: 524_288,
            bytes: 10,
        },
        manifest: serde_json::json!({"name": name, "version": v}),
        lineage: Lineage::default(),
        stage: Stage::Candidate,
        evaluations: Vec::new(),
        history: Vec::new(),
    }
}

fn state(versions: &[&str]) -> RegistryState {
    let mut s = RegistryState::default();
    for v in versions {
        s.versions
            .entry("m".into())
            .or_default()
            .insert((*v).into(), version("m", v));
    }
    s
}

fn forced() -> Change {
    Change {
        by: "ann@host".into(),
        reason: "first release".into(),
        forced: true,
        gate: None,
    }
}

fn step(s: &mut RegistryState, v: &str, to: Stage, share: Option<f64>) -> Plan {
    let plan = plan_stage(s, "m", v, to, &forced(), share, "2026-12-04T00:00:00Z").unwrap();
    s.apply_plan(&plan);
    plan
}

fn stage(s: &RegistryState, v: &str) -> Stage {
    s.version("m", v).unwrap().stage
}

#[test]
fn production_needs_a_gate_decision_or_force_with_a_reason() {
    let s = state(&["1"]);
    let at = "t";
    for change in [
        Change::default(),
        Change {
            forced: true,
            reason: "  ".into(),
            ..Change::default()
        },
    ] {
        let e = plan_stage(&s, "m", "1", Stage::Production, &change, None, at).unwrap_err();
        assert!(matches!(e, RegistryError::GateRequired { .. }), "{e}");
    }
    let gated = Change {
        gate: Some(serde_json::json!({"decision": "promote", "p_value": 0.001})),
        ..Change::default()
    };
    let plan = plan_stage(&s, "m", "1", Stage::Production, &gated, None, at).unwrap();
    let h = plan.versions[0].history.last().unwrap();
    assert!(!h.forced);
    assert_eq!(h.gate.as_ref().unwrap()["p_value"], 0.001);
    let plan = plan_stage(&s, "m", "1", Stage::Production, &forced(), None, at).unwrap();
    let h = plan.versions[0].history.last().unwrap();
    assert!(h.forced && h.reason == "first release");
    assert_eq!(h.from_stage, Some(Stage::Candidate));
    assert_eq!(h.to_stage, Stage::Production);
    let d = plan.deployment.unwrap();
    assert_eq!((d.production.as_deref(), d.revision), (Some("1"), 1));
}

#[test]
fn promoting_demotes_the_previous_production_and_rollback_returns_to_it() {
    let mut s = state(&["1", "2", "3"]);
    step(&mut s, "1", Stage::Production, None);
    step(&mut s, "2", Stage::Canary, Some(0.2));
    assert_eq!(stage(&s, "2"), Stage::Canary);
    let d = s.deployment("m").unwrap();
    assert_eq!(d.canary.as_ref().unwrap().share, 0.2);
    assert_eq!(d.revision, 2);
    let plan = step(&mut s, "2", Stage::Production, None);
    assert_eq!(plan.versions.len(), 2, "2 promoted, 1 demoted");
    let d = s.deployment("m").unwrap().clone();
    assert_eq!(d.production.as_deref(), Some("2"));
    assert!(d.canary.is_none(), "promoted from the canary slot");
    assert_eq!(d.history.last().unwrap().version, "1");
    assert_eq!(
        (stage(&s, "1"), stage(&s, "2")),
        (Stage::Candidate, Stage::Production)
    );
    let plan = plan_rollback(&s, "m", &forced(), "t2").unwrap();
    s.apply_plan(&plan);
    let d = s.deployment("m").unwrap();
    assert_eq!((d.production.as_deref(), d.revision), (Some("1"), 4));
    assert!(d.history.is_empty());
    assert_eq!(
        (stage(&s, "1"), stage(&s, "2")),
        (Stage::Production, Stage::Candidate)
    );
    assert_eq!(
        s.version("m", "1").unwrap().history.last().unwrap().action,
        "rollback"
    );
    let e = plan_rollback(&s, "m", &forced(), "t3").unwrap_err();
    assert!(matches!(e, RegistryError::NothingToRollBack { .. }), "{e}");
}

#[test]
fn rollback_skips_archived_versions() {
    let mut s = state(&["1", "2", "3"]);
    step(&mut s, "1", Stage::Production, None);
    step(&mut s, "2", Stage::Production, None);
    step(&mut s, "3", Stage::Production, None);
    let plan = plan_archive(&s, "m", "2", &forced(), "t").unwrap();
    assert!(plan.deployment.is_none());
    s.apply_plan(&plan);
    let plan = plan_rollback(&s, "m", &forced(), "t").unwrap();
    assert_eq!(
        plan.deployment.as_ref().unwrap().production.as_deref(),
        Some("1")
    );
}

#[test]
fn serving_versions_cannot_be_archived_and_archived_ones_never_serve() {
    let mut s = state(&["1", "2", "3"]);
    step(&mut s, "1", Stage::Production, None);
    step(&mut s, "2", Stage::Shadow, None);
    for v in ["1", "2"] {
        let e = plan_archive(&s, "m", v, &forced(), "t").unwrap_err();
        assert!(
            matches!(e, RegistryError::Transition { .. }) && e.is_usage(),
            "{e}"
        );
        assert!(e.to_string().contains("serves as"), "{e}");
    }
    let plan = plan_stage(&s, "m", "3", Stage::Archived, &forced(), None, "t").unwrap();
    s.apply_plan(&plan);
    for to in [
        Stage::Production,
        Stage::Canary,
        Stage::Shadow,
        Stage::Candidate,
        Stage::Archived,
    ] {
        let e = plan_stage(&s, "m", "3", to, &forced(), None, "t").unwrap_err();
        assert!(matches!(e, RegistryError::Transition { .. }), "{to}: {e}");
    }
}

#[test]
fn one_canary_and_one_shadow_at_a_time_the_displaced_go_back_to_candidate() {
    let mut s = state(&["1", "2", "3"]);
    step(&mut s, "1", Stage::Canary, None);
    assert_eq!(
        s.deployment("m").unwrap().canary.as_ref().unwrap().share,
        DEFAULT_CANARY_SHARE
    );
    step(&mut s, "2", Stage::Canary, Some(0.3));
    assert_eq!(stage(&s, "1"), Stage::Candidate);
    assert_eq!(
        s.version("m", "1").unwrap().history.last().unwrap().reason,
        "replaced by 2: first release"
    );
    step(&mut s, "2", Stage::Canary, Some(0.5));
    assert_eq!(
        s.deployment("m").unwrap().canary.as_ref().unwrap().share,
        0.5
    );
    step(&mut s, "2", Stage::Shadow, None);
    let d = s.deployment("m").unwrap();
    assert!(d.canary.is_none());
    assert_eq!(d.shadow.as_deref(), Some("2"));
    step(&mut s, "3", Stage::Shadow, None);
    assert_eq!(
        (stage(&s, "2"), stage(&s, "3")),
        (Stage::Candidate, Stage::Shadow)
    );
    step(&mut s, "3", Stage::Candidate, None);
    assert!(s.deployment("m").unwrap().shadow.is_none());
    for share in [0.0, 1.0, -0.1, f64::NAN] {
        let e = plan_stage(&s, "m", "1", Stage::Canary, &forced(), Some(share), "t").unwrap_err();
        assert!(e.to_string().contains("not in (0, 1)"), "{e}");
    }
    let e = plan_stage(&s, "m", "1", Stage::Candidate, &forced(), None, "t").unwrap_err();
    assert!(e.to_string().contains("candidate already"), "{e}");
}

#[test]
fn production_is_not_demoted_directly_and_unknown_names_are_named() {
    let mut s = state(&["1"]);
    step(&mut s, "1", Stage::Production, None);
    for to in [
        Stage::Candidate,
        Stage::Canary,
        Stage::Shadow,
        Stage::Production,
    ] {
        let e = plan_stage(&s, "m", "1", to, &forced(), None, "t").unwrap_err();
        assert!(e.to_string().contains("roll back"), "{e}");
    }
    let e = plan_stage(&s, "m", "9", Stage::Shadow, &forced(), None, "t").unwrap_err();
    assert_eq!(e.to_string(), "model m@9: not registered");
    let e = plan_rollback(&s, "x", &forced(), "t").unwrap_err();
    assert_eq!(e.to_string(), "model x: not registered");
}

#[test]
fn evaluations_are_appended_with_a_history_entry() {
    let s = state(&["1"]);
    let e = EvaluationRecord {
        metric: "accuracy".into(),
        value: 0.9,
        ci_low: 0.89,
        ci_high: 0.91,
        n: 100,
        test_set_sha256: "cd".repeat(32),
        evaluation_sha256: "ef".repeat(32),
        at: "t".into(),
        by: "gate".into(),
        extra: serde_json::Map::new(),
    };
    let plan = plan_evaluation(&s, "m", "1", e.clone()).unwrap();
    let v = &plan.versions[0];
    assert_eq!(v.evaluations, vec![e]);
    assert_eq!(v.history.last().unwrap().action, "evaluate");
    assert_eq!(v.stage, Stage::Candidate);
}
