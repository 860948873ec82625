//! The JSON outputs hold to the schemas in `schemas/`.
#![allow(clippy::unwrap_used)]
use argus_wire::*;

fn input() -> InputRef {
    InputRef {
        topic: "frames.lobby".into(),
        partition: 3,
        offset: 17,
        key: Some("cam-1".into()),
        source_id: Some("cam-1".into()),
        sequence: Some(9),
        capture_time_us: Some(1_700_000_000_000_000),
    }
}

fn model() -> ModelRef {
    ModelRef {
        name: "camera-person".into(),
        version: "1".into(),
        sha256: "ab".repeat(32),
    }
}

fn prediction() -> Prediction {
    Prediction {
        schema: PREDICTION_SCHEMA.into(),
        id: input().id(),
        input: input(),
        model: model(),
        outcome: PredictionOutcome::Ok,
        label: "person".into(),
        score: 0.9,
        top: vec![
            Score {
                label: "person".into(),
                index: 1,
                score: 0.9,
            },
            Score {
                label: "empty".into(),
                index: 0,
                score: 0.1,
            },
        ],
        timings: Timings {
            inference_us: 120,
            capture_to_output_us: None,
            ..Timings::default()
        },
        worker: "w-1".into(),
        produced_at_us: 1_700_000_000_100_000,
    }
}

fn validator(schema: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&serde_json::from_str(schema).unwrap()).unwrap()
}

#[test]
fn prediction_validates_and_round_trips() {
    let v = validator(PREDICTION_JSON_SCHEMA);
    let p = prediction();
    let json = serde_json::to_value(&p).unwrap();
    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(serde_json::from_value::<Prediction>(json).unwrap(), p);
}

#[test]
fn alert_validates_and_round_trips() {
    let v = validator(ALERT_JSON_SCHEMA);
    let p = prediction();
    let alert = Alert {
        schema: ALERT_SCHEMA.into(),
        id: format!("{}/person", p.id),
        prediction_id: p.id.clone(),
        input: p.input.clone(),
        model: p.model.clone(),
        rule: AlertRule {
            name: "person".into(),
            label: "person".into(),
            threshold: 0.5,
        },
        label: "person".into(),
        score: 0.9,
        worker: "w-1".into(),
        raised_at_us: 1,
    };
    let json = serde_json::to_value(&alert).unwrap();
    assert!(
        v.is_valid(&json),
        "{:?}",
        v.iter_errors(&json)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(serde_json::from_value::<Alert>(json).unwrap(), alert);
}

#[test]
fn schemas_reject_what_the_code_would_never_write() {
    let v = validator(PREDICTION_JSON_SCHEMA);
    let mut json = serde_json::to_value(prediction()).unwrap();
    json["score"] = serde_json::json!(1.5);
    assert!(!v.is_valid(&json));
    let mut json = serde_json::to_value(prediction()).unwrap();
    json["model"]["sha256"] = serde_json::json!("xyz");
    assert!(!v.is_valid(&json));
    let mut json = serde_json::to_value(prediction()).unwrap();
    json.as_object_mut().unwrap().remove("input");
    assert!(!v.is_valid(&json));
}
