//! The records the code writes validate against `schemas/model-*.v1.schema.json` (no
//! broker: the records are built as `register` and the transitions build them).
#![allow(clippy::unwrap_used)]
use super::*;
use crate::records::now;
use crate::state::RegistryState;

fn schema(file: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(file);
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

pub(crate) fn assert_valid(validator: &jsonschema::Validator, value: &serde_json::Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{value:#}");
}

#[test]
fn registered_promoted_rolled_back_and_evaluated_records_validate() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    let versions = schema("model-version.v1.schema.json");
    let deployments = schema("model-deployment.v1.schema.json");
    let mut state = RegistryState::default();
    for (i, bundle) in ["churn", "camera-person"].into_iter().enumerate() {
        let packed = artifact::pack(&models.join(bundle)).unwrap();
        let location = if i == 0 {
            ArtifactLocation::Chunks {
                chunks: 8,
                chunk_bytes: 524_288,
                bytes: packed.tar.len() as u64,
            }
        } else {
            ArtifactLocation::Uri {
                uri: "file:///srv/models/camera-person-1.tar".into(),
            }
        };
        let opts = RegisterOptions {
            by: "ann@host".into(),
            reason: "trained".into(),
            lineage: Lineage {
                training_data_sha256: Some("ab".repeat(32)),
                script: Some("models/make_churn_model.py".into()),
                parent_version: None,
            },
            artifact: ArtifactTarget::Chunks,
        };
        let v = new_version(&packed, location, opts, &now());
        assert_valid(&versions, &serde_json::to_value(&v).unwrap());
        state
            .versions
            .entry(v.name.clone())
            .or_default()
            .insert(v.version.clone(), v.clone());
        let mut v2 = v.clone();
        v2.version = "2".into();
        state
            .versions
            .entry(v.name.clone())
            .or_default()
            .insert("2".into(), v2);
    }
    let change = Change {
        by: "ann@host".into(),
        reason: "first".into(),
        forced: true,
        gate: None,
    };
    let gated = Change {
        gate: Some(serde_json::json!({"decision": "promote", "p_value": 0.003})),
        forced: false,
        ..change.clone()
    };
    let steps: Vec<Plan> = vec![transitions::plan_stage(
        &state,
        "churn",
        "1",
        Stage::Production,
        &change,
        None,
        &now(),
    )
    .unwrap()];
    state.apply_plan(&steps[0]);
    let mut plans = steps;
    for (v, stage, c, share) in [
        ("2", Stage::Shadow, &change, None),
        ("2", Stage::Canary, &change, Some(0.2)),
        ("2", Stage::Production, &gated, None),
    ] {
        let p = transitions::plan_stage(&state, "churn", v, stage, c, share, &now()).unwrap();
        state.apply_plan(&p);
        plans.push(p);
    }
    let p = transitions::plan_rollback(&state, "churn", &change, &now()).unwrap();
    state.apply_plan(&p);
    plans.push(p);
    plans.push(transitions::plan_archive(&state, "churn", "2", &change, &now()).unwrap());
    let e = EvaluationRecord {
        metric: "roc_auc".into(),
        value: 0.8,
        ci_low: 0.79,
        ci_high: 0.81,
        n: 20000,
        test_set_sha256: "cd".repeat(32),
        evaluation_sha256: "ef".repeat(32),
        at: now(),
        by: "gate".into(),
        extra: serde_json::Map::from_iter([("method".to_string(), serde_json::json!("delong"))]),
    };
    plans.push(transitions::plan_evaluation(&state, "churn", "1", e).unwrap());
    for p in &plans {
        for v in &p.versions {
            assert_valid(&versions, &serde_json::to_value(v).unwrap());
        }
        if let Some(d) = &p.deployment {
            assert_valid(&deployments, &serde_json::to_value(d).unwrap());
        }
    }
    let d = state.deployment("churn").unwrap();
    assert_eq!(d.revision, 5);
    let mut bad = serde_json::to_value(d).unwrap();
    bad["canary"] = serde_json::json!({"version": "2", "share": 1.5});
    assert!(
        !deployments.is_valid(&bad),
        "a share of 1.5 must not validate"
    );
}
