//! An [`Alert`] that borrows its text, for the writer's hot path.
//!
//! The worker's alerts are serialised as soon as they are built, unless evidence is to be
//! attached to them first. Built as [`Alert`]s they copied a dozen strings each (ids, the
//! input's topic, key and source id, the model reference, the rule, the worker id) and
//! the record's features into a map of owned names and values: 36 allocations for one
//! alert on a churn record, and 38 % of churn records raise one. [`AlertView`] points at
//! them and writes the same bytes as the [`Alert`] it stands for ([`AlertView::to_owned`]);
//! the tests below hold the two to that, as `prediction_view`'s do for predictions.
use crate::envelope::Value;
use crate::output::{Alert, AlertBox, AlertRule};
use crate::prediction_view::{InputId, InputRefView, ModelRefJson};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt;

/// An alert's id, `<prediction id>/<rule name>`, written without building the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertId<'a> {
    /// The prediction's (the input's) id.
    pub prediction: InputId<'a>,
    /// The rule's name.
    pub rule: &'a str,
}

impl fmt::Display for AlertId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prediction, self.rule)
    }
}

impl Serialize for AlertId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// [`AlertRule`], borrowed; the same fields in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlertRuleView<'a> {
    /// Rule name.
    pub name: &'a str,
    /// The label the rule watches.
    pub label: &'a str,
    /// Minimum probability of `label` that raises an alert.
    pub threshold: f32,
}

/// A record's values of a model's features, by feature name: an alert's `features` map
/// (v2), borrowed from the record. Written in name order with one entry per name, as the
/// owned map ([`serde_json::Map`], ordered by key) writes it; a feature the record lacks
/// is `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeaturesView<'a> {
    /// Sorted by name, names unique.
    values: Vec<(&'a str, Option<&'a Value>)>,
}

impl<'a> FeaturesView<'a> {
    /// The features `values` (in any order); of two values under one name the later one
    /// is kept, as inserting them into a map in order would.
    pub fn new(mut values: Vec<(&'a str, Option<&'a Value>)>) -> Self {
        values.sort_by(|a, b| a.0.cmp(b.0));
        values.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        FeaturesView { values }
    }

    /// The owned map an [`Alert`] holds.
    pub fn to_owned(&self) -> serde_json::Map<String, serde_json::Value> {
        self.values
            .iter()
            .map(|(name, v)| {
                let json = v.map_or(serde_json::Value::Null, Value::to_json);
                ((*name).to_owned(), json)
            })
            .collect()
    }
}

impl Serialize for FeaturesView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.values.len()))?;
        for (name, value) in &self.values {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// [`Alert`] as a worker raises it from a prediction, borrowing its text; serialises to
/// the same JSON. Field order and the fields left out when empty follow [`Alert`]. The
/// sections only other paths fill (a zone rule's `zone`, a `snapshot`, `evidence`) are
/// absent from a view and `None` in [`AlertView::to_owned`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView<'a> {
    /// The schema string ([`crate::ALERT_SCHEMA`] or a later version).
    pub schema: &'static str,
    /// `<prediction id>/<rule name>`.
    pub id: AlertId<'a>,
    /// Id of the prediction that matched.
    pub prediction_id: InputId<'a>,
    /// The input of that prediction.
    pub input: InputRefView<'a>,
    /// The model that made it.
    pub model: &'a ModelRefJson,
    /// The rule it matched.
    pub rule: AlertRuleView<'a>,
    /// The watched label.
    pub label: &'a str,
    /// Probability of `label`.
    pub score: f32,
    /// Worker instance that raised it.
    pub worker: &'a str,
    /// Wall-clock time the alert was built, µs since the Unix epoch.
    pub raised_at_us: i64,
    /// (v2) The record's values of the features the model used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeaturesView<'a>>,
    /// (v3) The boxes behind the alert, frame pixels, best first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<AlertBox>>,
}

impl AlertView<'_> {
    /// The owned [`Alert`] this view stands for.
    pub fn to_owned(&self) -> Alert {
        Alert {
            schema: self.schema.to_owned(),
            id: self.id.to_string(),
            prediction_id: self.prediction_id.to_string(),
            input: self.input.to_owned(),
            model: self.model.model().clone(),
            rule: AlertRule {
                name: self.rule.name.to_owned(),
                label: self.rule.label.to_owned(),
                threshold: self.rule.threshold,
            },
            label: self.label.to_owned(),
            score: self.score,
            worker: self.worker.to_owned(),
            raised_at_us: self.raised_at_us,
            features: self.features.as_ref().map(FeaturesView::to_owned),
            detections: self.detections.clone(),
            zone: None,
            snapshot: None,
            evidence: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::output::{ModelRef, ALERT_SCHEMA, ALERT_SCHEMA_V2, ALERT_SCHEMA_V3};

    fn model() -> ModelRefJson {
        ModelRefJson::new(ModelRef {
            name: "churn".into(),
            version: "7".into(),
            sha256: "cd".repeat(32),
        })
    }

    fn view<'a>(model: &'a ModelRefJson, features: Option<FeaturesView<'a>>) -> AlertView<'a> {
        let input = InputRefView {
            topic: "customers",
            partition: 1,
            offset: 9,
            key: Some("C\"1"),
            source_id: Some("C\"1"),
            sequence: Some(9),
            capture_time_us: Some(1_700_000_000_000_000),
        };
        AlertView {
            schema: if features.is_some() {
                ALERT_SCHEMA_V2
            } else {
                ALERT_SCHEMA
            },
            id: AlertId {
                prediction: input.id(),
                rule: "churn-risk",
            },
            prediction_id: input.id(),
            input,
            model,
            rule: AlertRuleView {
                name: "churn-risk",
                label: "churn",
                threshold: 0.6,
            },
            label: "churn",
            score: 0.875,
            worker: "w-2",
            raised_at_us: 1_700_000_000_000_009,
            features,
            detections: None,
        }
    }

    /// The view's JSON is the owned alert's, byte for byte, and reads back as it.
    fn assert_same_json(v: &AlertView<'_>) {
        let owned = v.to_owned();
        let from_view = serde_json::to_string(v).unwrap();
        assert_eq!(from_view, serde_json::to_string(&owned).unwrap());
        let back: Alert = serde_json::from_str(&from_view).unwrap();
        assert_eq!(back, owned);
    }

    #[test]
    fn an_alert_view_writes_the_alerts_bytes() {
        let m = model();
        let v = view(&m, None);
        assert_eq!(v.id.to_string(), "customers/1/9/churn-risk");
        assert_same_json(&v);
    }

    #[test]
    fn features_are_written_by_name_with_missing_and_non_finite_values_as_null() {
        let m = model();
        let (int, text, nan, float) = (
            Value::Int(-3),
            Value::Text("month \"to\" month".into()),
            Value::Float(f64::NAN),
            Value::Float(20.69),
        );
        let features = FeaturesView::new(vec![
            ("tenure_months", Some(&int)),
            ("contract", Some(&text)),
            ("zeta", None),
            ("monthly_charges", Some(&float)),
            ("broken", Some(&nan)),
            ("autopay", Some(&Value::Bool(true))),
            ("region", Some(&Value::Null)),
        ]);
        let json = serde_json::to_value(&features).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "autopay": true, "broken": null, "contract": "month \"to\" month",
                "monthly_charges": 20.69, "region": null, "tenure_months": -3, "zeta": null,
            })
        );
        assert_same_json(&view(&m, Some(features)));
    }

    #[test]
    fn of_two_values_under_one_name_the_later_is_kept_as_in_a_map() {
        let (a, b) = (Value::Int(1), Value::Int(2));
        let features = FeaturesView::new(vec![("x", Some(&a)), ("y", None), ("x", Some(&b))]);
        let mut map = serde_json::Map::new();
        map.insert("x".into(), 1.into());
        map.insert("y".into(), serde_json::Value::Null);
        map.insert("x".into(), 2.into());
        assert_eq!(features.to_owned(), map);
        assert_eq!(
            serde_json::to_string(&features).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }

    #[test]
    fn a_detection_alert_view_writes_its_boxes_as_the_alert_does() {
        let m = model();
        let v = AlertView {
            schema: ALERT_SCHEMA_V3,
            detections: Some(vec![AlertBox {
                label: "person".into(),
                score: 0.9,
                bbox: [1.0, 2.0, 3.0, 4.0],
                track: None,
                in_zone_since_us: None,
            }]),
            ..view(&m, None)
        };
        assert_same_json(&v);
    }
}
