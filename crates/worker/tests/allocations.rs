//! Allocations one input costs on the worker's hot path, counted (a counting global
//! allocator in this test binary only; no broker): rendering a churn record's prediction.
//! Counts are exact on any machine, so they can be held to a bound where a time cannot; on
//! a churn drain the allocator was the largest single part of the worker's CPU outside the
//! model (`docs/bench.md`, "CPU outside the model").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argus_kafka::RawHeaders;
use argus_model::Classifier;
use argus_worker::config::{AlertRule, WorkerConfig};
use argus_worker::pipeline::{Job, Outcome, Pipeline, Prepare, Rendered};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A churn record as a bare JSON value, read and run as the worker does.
fn classified(pipeline: &Pipeline) -> (Job, Outcome) {
    let record = br#"{"customer_id":"C7-0000005","tenure_months":12,"monthly_charges":20.69,"total_charges":261.62,"complaints_90d":0,"support_calls_30d":4,"days_since_last_interaction":13,"region":"central","plan":"basic","contract":"month_to_month","autopay":false,"senior":false}"#;
    let job = Job {
        topic: "customers".into(),
        partition: 2,
        offset: 7,
        key: Some(b"C7-0000005".to_vec()),
        value: Arc::from(&record[..]),
        headers: RawHeaders::from_pairs([(&b"content-type"[..], Some(&b"application/json"[..]))]),
        timestamp_ms: Some(1_700_000_000_000),
        received: Instant::now(),
    };
    let Prepare::Ready(ready) = pipeline.prepare(&job) else {
        panic!("the record does not prepare");
    };
    let (job, outcome) = pipeline.infer(vec![(job, ready)]).pop().unwrap();
    assert!(matches!(outcome, Outcome::Classified(_)));
    (job, outcome)
}

fn pipeline(rules: Vec<AlertRule>) -> Pipeline {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
    let model = Arc::new(Classifier::load(&dir).unwrap());
    let mut config = WorkerConfig::new("w-1", vec!["customers".into()]);
    config.rules = rules;
    Pipeline::without_evidence(model, &config)
}

/// A pipeline whose one rule alerts on every churn score.
fn alerting_pipeline() -> Pipeline {
    pipeline(vec![AlertRule {
        name: "any".into(),
        label: "churn".into(),
        threshold: 0.0,
    }])
}

/// Allocations made rendering `outcome`, after a first render has warmed the thread's
/// buffers.
fn render_allocations(pipeline: &Pipeline, job: &Job, outcome: &Outcome) -> (Rendered, u64) {
    let _warm = pipeline.render(job, outcome);
    let mut rendered = None;
    let info = allocation_counter::measure(|| rendered = Some(pipeline.render(job, outcome)));
    (rendered.unwrap(), info.count_total)
}

#[test]
fn a_prediction_renders_with_two_allocations() {
    let pipeline = pipeline(Vec::new());
    let (job, outcome) = classified(&pipeline);
    let (rendered, allocations) = render_allocations(&pipeline, &job, &outcome);
    let Rendered::Outputs(out) = rendered else {
        panic!("not a prediction");
    };
    let prediction: argus_wire::Prediction = serde_json::from_slice(&out.prediction).unwrap();
    assert_eq!(prediction.id, "customers/2/7");
    assert_eq!(prediction.input.key.as_deref(), Some("C7-0000005"));
    assert_eq!(prediction.worker, "w-1");
    // The top-k list and the JSON itself. An owned `Prediction` serialised with
    // `serde_json::to_vec` takes 19 (measured when this test was written).
    assert!(
        allocations <= 2,
        "rendering a prediction allocated {allocations} times"
    );
}

#[test]
fn an_alert_costs_four_allocations_and_copies_nothing() {
    let pipeline = alerting_pipeline();
    let (job, outcome) = classified(&pipeline);
    let (rendered, allocations) = render_allocations(&pipeline, &job, &outcome);
    assert_eq!(rendered.alerts(), 1);
    let Rendered::Outputs(out) = &rendered else {
        panic!("not a prediction");
    };
    let alert: argus_wire::Alert = serde_json::from_slice(&out.alerts[0].1).unwrap();
    assert_eq!(alert.prediction_id, "customers/2/7");
    assert_eq!(alert.id, "customers/2/7/any");
    // The prediction's 2, then the list of alerts raised, the alert's features (borrowed
    // from the record), the outputs' list of alerts and the alert's JSON. An owned
    // `Alert`, with its own strings and a map of the 11 features, took 36.
    assert!(
        allocations <= 6,
        "rendering a prediction with one alert allocated {allocations} times"
    );
}

/// The alerts written from views (no evidence wanted) and the owned alerts the evidence
/// path builds (`render_explained`, with evidence off here) are the same alert.
#[test]
fn an_alert_from_its_view_is_the_owned_alert() {
    let pipeline = alerting_pipeline();
    let (job, outcome) = classified(&pipeline);
    let alerts = |rendered: Rendered| {
        let Rendered::Outputs(out) = rendered else {
            panic!("not a prediction");
        };
        out.alerts
            .iter()
            .map(|(schema, json)| {
                let mut alert: argus_wire::Alert = serde_json::from_slice(json).unwrap();
                assert_eq!(*schema, alert.schema);
                alert.raised_at_us = 0;
                alert
            })
            .collect::<Vec<_>>()
    };
    let from_views = alerts(pipeline.render(&job, &outcome));
    let (rendered, explained) = pipeline.render_explained(&job, &outcome);
    assert_eq!(explained, 0);
    let owned = alerts(rendered);
    assert_eq!(from_views.len(), 1);
    assert_eq!(from_views, owned);
    let features = from_views[0].features.as_ref().unwrap();
    assert_eq!(features.len(), 11);
    assert_eq!(features["contract"], "month_to_month");
    assert_eq!(features["monthly_charges"], 20.69);
}
