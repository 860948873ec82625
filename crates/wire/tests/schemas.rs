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
        label: Some("person".into()),
        score: Some(0.9),
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
        skipped: None,
        frame: None,
        detections: None,
    }
}

fn stale() -> Prediction {
    Prediction {
        schema: PREDICTION_SCHEMA_V2.into(),
        outcome: PredictionOutcome::Stale,
        label: None,
        score: None,
        top: vec![],
        skipped: Some(Skipped {
            reason: "stale".into(),
            age_us: 9_000_000,
            max_age_us: 5_000_000,
        }),
        ..prediction()
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

fn alert() -> Alert {
    let p = prediction();
    Alert {
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
        features: None,
        detections: None,
        zone: None,
        snapshot: None,
        evidence: None,
    }
}

/// v3 alerts carry boxes, the zone rule that fired and a snapshot reference; v1 alerts
/// stay valid under v3 and v3 ones are refused by the v1 and v2 schemas.
#[test]
fn alert_v3_carries_boxes_zone_and_snapshot() {
    let v1 = validator(ALERT_JSON_SCHEMA);
    let v2 = validator(ALERT_V2_JSON_SCHEMA);
    let v3 = validator(ALERT_V3_JSON_SCHEMA);
    assert!(v3.is_valid(&serde_json::to_value(alert()).unwrap()));
    let zone = Alert {
        schema: ALERT_SCHEMA_V3.into(),
        detections: Some(vec![AlertBox {
            label: "person".into(),
            score: 0.8,
            bbox: [10.0, 20.0, 40.0, 120.0],
            track: Some(3),
            in_zone_since_us: Some(1_700_000_000_000_000),
        }]),
        zone: Some(ZoneHit {
            name: "door".into(),
            rule: "loiter".into(),
            polygon: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 200.0]],
            since_us: 1_700_000_000_000_000,
            frame: FrameSize {
                width: 768,
                height: 576,
            },
        }),
        snapshot: Some("file:///var/lib/argus/snapshots/cam-1/x.jpg".into()),
        evidence: None,
        ..alert()
    };
    let json = serde_json::to_value(&zone).unwrap();
    let errors: Vec<String> = v3.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!v1.is_valid(&json) && !v2.is_valid(&json));
    assert_eq!(serde_json::from_value::<Alert>(json.clone()).unwrap(), zone);
    let mut bad = json.clone();
    bad["zone"]["rule"] = serde_json::json!("teleport");
    assert!(!v3.is_valid(&bad));
    let mut bad = json;
    bad["zone"]["polygon"] = serde_json::json!([[0, 0], [1, 1]]);
    assert!(!v3.is_valid(&bad), "a zone has at least three corners");
}

/// v4 alerts carry evidence (attributions with a plain-words summary, or saliency grids,
/// or the reason it was skipped); v1–v3 alerts stay valid under v4, v4 ones are refused by
/// the older schemas, and a v4 alert without evidence, or a v3 alert with it, is refused.
#[test]
fn alert_v4_carries_evidence_or_says_why_not() {
    let v3 = validator(ALERT_V3_JSON_SCHEMA);
    let v4 = validator(ALERT_V4_JSON_SCHEMA);
    assert!(v4.is_valid(&serde_json::to_value(alert()).unwrap()));
    let mut features = serde_json::Map::new();
    features.insert("complaints_90d".into(), 4.into());
    let tabular = Alert {
        schema: ALERT_SCHEMA_V4.into(),
        features: Some(features),
        evidence: Some(Evidence {
            space: Some("probability".into()),
            base_value: Some(0.25),
            output: Some(0.46),
            attributions: vec![Attribution {
                feature: "complaints_90d".into(),
                value: 4.into(),
                contribution: 0.21,
                bound: None,
            }],
            summary: vec!["complaints_90d = 4 raised the churn probability by 0.21".into()],
            compute_us: Some(900),
            ..Evidence::ok("tree_shap")
        }),
        ..alert()
    };
    let image = Alert {
        schema: ALERT_SCHEMA_V4.into(),
        evidence: Some(Evidence {
            space: Some("score_drop".into()),
            saliency: vec![Saliency {
                rows: 2,
                cols: 2,
                values: vec![0.1, 0.5, 0.0, -0.02],
                bbox: Some([10.0, 20.0, 40.0, 120.0]),
                peak: [0.0, 0.0, 50.0, 50.0],
                overlay: None,
            }],
            ..Evidence::ok("occlusion")
        }),
        ..alert()
    };
    let skipped = Alert {
        schema: ALERT_SCHEMA_V4.into(),
        evidence: Some(Evidence::skipped("deadline: not computed within 50 ms")),
        ..alert()
    };
    for a in [tabular, image, skipped] {
        let json = serde_json::to_value(&a).unwrap();
        let errors: Vec<String> = v4.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!v3.is_valid(&json), "v3 readers refuse v4");
        assert_eq!(serde_json::from_value::<Alert>(json.clone()).unwrap(), a);
        let mut older = json.clone();
        older["schema"] = serde_json::json!(ALERT_SCHEMA_V3);
        assert!(!v4.is_valid(&older), "evidence needs v4");
        let mut none = json;
        none.as_object_mut().unwrap().remove("evidence");
        assert!(!v4.is_valid(&none), "a v4 alert has evidence");
    }
    let mut bad = serde_json::to_value(Alert {
        schema: ALERT_SCHEMA_V4.into(),
        evidence: Some(Evidence::skipped("x")),
        ..alert()
    })
    .unwrap();
    bad["evidence"].as_object_mut().unwrap().remove("reason");
    assert!(!v4.is_valid(&bad), "skipped evidence says why");
}

#[test]
fn alert_validates_and_round_trips() {
    let v = validator(ALERT_JSON_SCHEMA);
    let alert = alert();
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

/// v2 adds stale predictions; v1 predictions stay byte-identical (no `skipped` key) and
/// valid under both the v1 schema and the v2 one, so v1 readers keep working.
#[test]
fn prediction_v2_stale_records_and_v1_compatibility() {
    let v1 = validator(PREDICTION_JSON_SCHEMA);
    let v2 = validator(PREDICTION_V2_JSON_SCHEMA);
    let ok = serde_json::to_value(prediction()).unwrap();
    assert!(ok.get("skipped").is_none());
    assert!(v1.is_valid(&ok));
    let mut ok_as_v2 = ok.clone();
    ok_as_v2["schema"] = serde_json::json!(PREDICTION_SCHEMA_V2);
    assert!(v2.is_valid(&ok_as_v2));
    let s = stale();
    let json = serde_json::to_value(&s).unwrap();
    let errors: Vec<String> = v2.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!v1.is_valid(&json), "v1 must not accept a stale record");
    assert_eq!(
        serde_json::from_value::<Prediction>(json.clone()).unwrap(),
        s
    );
    // A stale record that claims a label, or an ok one that claims a skip, is invalid.
    let mut bad = json.clone();
    bad["label"] = serde_json::json!("person");
    assert!(!v2.is_valid(&bad));
    let mut bad = ok_as_v2;
    bad["skipped"] = json["skipped"].clone();
    assert!(!v2.is_valid(&bad));
}

/// v3 predictions carry a detector's boxes in frame pixels; classification predictions
/// (no `frame`/`detections` keys) stay v1 and v1/v2 readers reject v3 records by schema.
#[test]
fn prediction_v3_carries_boxes() {
    let v1 = validator(PREDICTION_JSON_SCHEMA);
    let v2 = validator(PREDICTION_V2_JSON_SCHEMA);
    let v3 = validator(PREDICTION_V3_JSON_SCHEMA);
    let classified = serde_json::to_value(prediction()).unwrap();
    assert!(classified.get("detections").is_none() && classified.get("frame").is_none());
    let mut p = prediction();
    p.schema = PREDICTION_SCHEMA_V3.into();
    p.frame = Some(FrameSize {
        width: 768,
        height: 576,
    });
    p.detections = Some(vec![DetectedBox {
        label: "person".into(),
        index: 0,
        score: 0.83,
        bbox: [369.9, 193.4, 405.2, 267.75],
    }]);
    let json = serde_json::to_value(&p).unwrap();
    let errors: Vec<String> = v3.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(json["detections"][0]["box"][2], serde_json::json!(405.2f32));
    assert!(!v1.is_valid(&json) && !v2.is_valid(&json));
    assert_eq!(
        serde_json::from_value::<Prediction>(json.clone()).unwrap(),
        p
    );
    let mut bad = json.clone();
    bad["detections"][0]["box"] = serde_json::json!([1.0, 2.0, 3.0]);
    assert!(!v3.is_valid(&bad), "a box has four corners' coordinates");
    let mut bad = json;
    bad["frame"]["width"] = serde_json::json!(0);
    assert!(!v3.is_valid(&bad));
}

/// v2 alerts carry the features a tabular model used; image alerts stay v1 (no `features`
/// key) and are valid under both schemas, so v1 readers keep working.
#[test]
fn alert_v2_carries_features_and_v1_alerts_stay_valid() {
    let v1 = validator(ALERT_JSON_SCHEMA);
    let v2 = validator(ALERT_V2_JSON_SCHEMA);
    let image = serde_json::to_value(alert()).unwrap();
    assert!(image.get("features").is_none());
    assert!(v1.is_valid(&image) && v2.is_valid(&image));
    let mut features = serde_json::Map::new();
    features.insert("tenure_months".into(), serde_json::json!(3));
    features.insert("monthly_charges".into(), serde_json::json!(85.38));
    features.insert("region".into(), serde_json::json!("north"));
    features.insert("autopay".into(), serde_json::json!(false));
    features.insert("senior".into(), serde_json::Value::Null);
    let record = Alert {
        schema: ALERT_SCHEMA_V2.into(),
        features: Some(features),
        ..alert()
    };
    let json = serde_json::to_value(&record).unwrap();
    let errors: Vec<String> = v2.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!v1.is_valid(&json), "v1 must not accept features");
    assert_eq!(
        serde_json::from_value::<Alert>(json.clone()).unwrap(),
        record
    );
    // v2 without features, v1 with them, or a nested feature value: invalid.
    let mut bad = json.clone();
    bad.as_object_mut().unwrap().remove("features");
    assert!(!v2.is_valid(&bad));
    let mut bad = json.clone();
    bad["schema"] = serde_json::json!(ALERT_SCHEMA);
    assert!(!v2.is_valid(&bad));
    let mut bad = json;
    bad["features"]["region"] = serde_json::json!(["north"]);
    assert!(!v2.is_valid(&bad));
}

/// Labels hold to `label.v1`: with and without the optional fields; what `validate` refuses
/// the schema refuses too.
#[test]
fn labels_match_their_schema() {
    let v = validator(LABEL_JSON_SCHEMA);
    let mut l = Label::new(input().id(), "person", LabelSource::Annotator);
    for json in [serde_json::to_value(&l).unwrap(), {
        l.key = Some("cam-1".into());
        l.confidence = Some(0.8);
        l.by = Some("ann-7".into());
        serde_json::to_value(&l).unwrap()
    }] {
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            serde_json::from_value::<Label>(json)
                .unwrap()
                .validate()
                .ok(),
            Some(())
        );
    }
    for (field, value) in [
        ("id", serde_json::json!("frames.lobby/3")),
        ("label", serde_json::json!("")),
        ("confidence", serde_json::json!(1.5)),
        ("source", serde_json::json!("oracle")),
    ] {
        let mut bad = serde_json::to_value(&l).unwrap();
        bad[field] = value;
        assert!(!v.is_valid(&bad), "{field}");
        if let Ok(parsed) = serde_json::from_value::<Label>(bad) {
            assert!(parsed.validate().is_err(), "{field}");
        }
    }
}
