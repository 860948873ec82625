//! Records → model input for tabular bundles, as the manifest's `[[features]]` say: each
//! feature is read from the record field of the same name, in manifest order; `int` and
//! `float` become one column (the value as `f32`), `bool` one column of 1.0 / 0.0, and a
//! `category` one column per listed value (one-hot). A field that is missing, null, of the
//! wrong type, not finite or not a listed category is an error naming the feature, and the
//! input goes to the dead-letter topic; nothing is guessed. Fields the model does not use
//! are ignored.
use crate::manifest::{Feature, FeatureKind};
use argus_wire::{Record, Value};

/// Why a record cannot be scored: which feature, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feature {feature:?} {reason}")]
pub struct FeatureError {
    /// The feature's name.
    pub feature: String,
    /// What is wrong with its value ("is missing", "is not a number", …).
    pub reason: String,
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Int(i) => format!("the integer {i}"),
        Value::Float(x) => format!("the number {x}"),
        Value::Text(t) => format!("the text {t:?}"),
    }
}

/// The record's value for `name`: the first field of that name.
pub fn field<'a>(record: &'a Record, name: &str) -> Option<&'a Value> {
    record
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| &f.value)
}

/// Writes the features of `record` into `out` (exactly the features' total width).
pub fn assemble(
    features: &[Feature],
    record: &Record,
    out: &mut [f32],
) -> Result<(), FeatureError> {
    let mut at = 0usize;
    for f in features {
        let width = f.width();
        let slot = out.get_mut(at..at + width).ok_or_else(|| FeatureError {
            feature: f.name.clone(),
            reason: "does not fit the model input (manifest and model disagree)".into(),
        })?;
        encode(f, field(record, &f.name), slot).map_err(|reason| FeatureError {
            feature: f.name.clone(),
            reason,
        })?;
        at += width;
    }
    Ok(())
}

fn finite(x: f64) -> Result<f64, String> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("is {x}; it must be a finite number"))
    }
}

fn encode(f: &Feature, value: Option<&Value>, slot: &mut [f32]) -> Result<(), String> {
    let value = match value {
        None => return Err("is missing from the record".into()),
        Some(Value::Null) => return Err("is null; the model needs a value".into()),
        Some(v) => v,
    };
    match f.kind {
        FeatureKind::Float => {
            let x = match value {
                Value::Float(x) => finite(*x)?,
                Value::Int(i) => *i as f64,
                other => return Err(format!("must be a number, got {}", describe(other))),
            };
            // As numpy's astype(float32): round to nearest.
            slot[0] = x as f32;
        }
        FeatureKind::Int => {
            let x = match value {
                Value::Int(i) => *i as f64,
                Value::Float(x) if finite(*x)?.fract() == 0.0 => *x,
                other => return Err(format!("must be a whole number, got {}", describe(other))),
            };
            slot[0] = x as f32;
        }
        FeatureKind::Bool => {
            slot[0] = match value {
                Value::Bool(b) => f32::from(u8::from(*b)),
                Value::Int(0) => 0.0,
                Value::Int(1) => 1.0,
                other => return Err(format!("must be true or false, got {}", describe(other))),
            };
        }
        FeatureKind::Category => {
            let label: std::borrow::Cow<'_, str> = match value {
                Value::Text(t) => t.as_str().into(),
                Value::Int(i) => i.to_string().into(),
                Value::Bool(b) => b.to_string().into(),
                other => {
                    return Err(format!(
                        "must be one of {}, got {}",
                        f.categories.join(", "),
                        describe(other)
                    ))
                }
            };
            let i = f
                .categories
                .iter()
                .position(|c| *c == label)
                .ok_or_else(|| {
                    format!(
                        "has the value {label:?}, which is not one of its categories ({})",
                        f.categories.join(", ")
                    )
                })?;
            slot.fill(0.0);
            slot[i] = 1.0;
        }
    }
    Ok(())
}

/// The record's values of the model's features, in manifest order, borrowed (`None` for a
/// feature the record lacks): the evidence an alert carries
/// ([`argus_wire::FeaturesView`]).
pub fn feature_values<'a>(
    features: &'a [Feature],
    record: &'a Record,
) -> Vec<(&'a str, Option<&'a Value>)> {
    features
        .iter()
        .map(|f| (f.name.as_str(), field(record, &f.name)))
        .collect()
}

/// [`feature_values`] as JSON, owned; a feature the record lacks is `null`.
pub fn evidence(features: &[Feature], record: &Record) -> Vec<(String, serde_json::Value)> {
    feature_values(features, record)
        .into_iter()
        .map(|(name, v)| {
            (
                name.to_owned(),
                v.map_or(serde_json::Value::Null, Value::to_json),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use argus_wire::Field;

    fn features() -> Vec<Feature> {
        vec![
            Feature {
                name: "tenure".into(),
                kind: FeatureKind::Int,
                categories: vec![],
            },
            Feature {
                name: "charges".into(),
                kind: FeatureKind::Float,
                categories: vec![],
            },
            Feature {
                name: "autopay".into(),
                kind: FeatureKind::Bool,
                categories: vec![],
            },
            Feature {
                name: "region".into(),
                kind: FeatureKind::Category,
                categories: vec!["north".into(), "south".into(), "east".into()],
            },
        ]
    }

    fn record(fields: &[(&str, Value)]) -> Record {
        Record {
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: (*n).into(),
                    value: v.clone(),
                })
                .collect(),
        }
    }

    fn good() -> Vec<(&'static str, Value)> {
        vec![
            ("customer_id", Value::Text("C1".into())),
            ("region", Value::Text("east".into())),
            ("charges", Value::Float(70.15)),
            ("autopay", Value::Bool(true)),
            ("tenure", Value::Int(12)),
        ]
    }

    #[test]
    fn features_are_assembled_in_manifest_order_whatever_the_record_order() {
        let mut out = vec![f32::NAN; 6];
        assemble(&features(), &record(&good()), &mut out).unwrap();
        assert_eq!(out, vec![12.0, 70.15f64 as f32, 1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn widening_is_allowed_where_it_loses_nothing() {
        let mut r = good();
        r[2].1 = Value::Int(70);
        r[4].1 = Value::Float(12.0);
        r[3].1 = Value::Int(0);
        let mut out = vec![0.0; 6];
        assemble(&features(), &record(&r), &mut out).unwrap();
        assert_eq!(&out[..3], &[12.0, 70.0, 0.0]);
    }

    #[test]
    fn every_bad_value_names_its_feature() {
        let cases: Vec<(usize, Option<Value>, &str, &str)> = vec![
            (4, None, "tenure", "missing"),
            (4, Some(Value::Null), "tenure", "null"),
            (4, Some(Value::Float(2.5)), "tenure", "whole number"),
            (
                4,
                Some(Value::Text("ten".into())),
                "tenure",
                "the text \"ten\"",
            ),
            (2, Some(Value::Float(f64::NAN)), "charges", "finite"),
            (
                2,
                Some(Value::Text("70".into())),
                "charges",
                "must be a number",
            ),
            (3, Some(Value::Int(2)), "autopay", "true or false"),
            (
                1,
                Some(Value::Text("atlantis".into())),
                "region",
                "not one of its categories (north, south, east)",
            ),
            (1, Some(Value::Float(1.0)), "region", "must be one of"),
        ];
        for (i, v, feature, words) in cases {
            let mut r = good();
            match v {
                Some(v) => r[i].1 = v,
                None => {
                    r.remove(i);
                }
            }
            let mut out = vec![0.0; 6];
            let e = assemble(&features(), &record(&r), &mut out).unwrap_err();
            assert_eq!(e.feature, feature);
            assert!(e.to_string().contains(words), "{e}");
            assert!(
                e.to_string().starts_with(&format!("feature {feature:?}")),
                "{e}"
            );
        }
    }

    #[test]
    fn evidence_lists_the_model_features_with_their_values() {
        let e = evidence(&features(), &record(&good()[1..]));
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tenure", "charges", "autopay", "region"]);
        assert_eq!(e[0].1, serde_json::json!(12));
        assert_eq!(e[3].1, serde_json::json!("east"));
    }
}
