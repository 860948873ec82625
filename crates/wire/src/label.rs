//! Ground truth on the labels topic (`argus.label/v1`, `schemas/label.v1.schema.json`): the
//! verified class of an input, keyed by its prediction's id (the input's
//! `topic/partition/offset`, [`crate::InputRef::id`]), with where it came from and when.
use crate::WireError;
use serde::{Deserialize, Serialize};

/// `schema` value of a [`Label`].
pub const LABEL_SCHEMA: &str = "argus.label/v1";
/// The JSON Schema of a [`Label`].
pub const LABEL_JSON_SCHEMA: &str = include_str!("../../../schemas/label.v1.schema.json");

/// Who says what the truth is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// A person labelling inputs.
    Annotator,
    /// Feedback from the field: customer service, an operator acting on an alert.
    Feedback,
    /// A system that knows the outcome (a generator, a billing system).
    System,
}

impl LabelSource {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Annotator => "annotator",
            Self::Feedback => "feedback",
            Self::System => "system",
        }
    }
}

impl std::str::FromStr for LabelSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "annotator" => Ok(Self::Annotator),
            "feedback" => Ok(Self::Feedback),
            "system" => Ok(Self::System),
            other => Err(format!(
                "unknown label source {other:?}: use annotator, feedback or system"
            )),
        }
    }
}

/// One label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// Always [`LABEL_SCHEMA`].
    pub schema: String,
    /// The labelled prediction's id: `topic/partition/offset` of its input.
    pub id: String,
    /// The input's key (camera, customer), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The true class.
    pub label: String,
    /// Who says so.
    pub source: LabelSource,
    /// When the truth became known, µs since the Unix epoch.
    pub labelled_at_us: i64,
    /// How sure the source is, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Who or what labelled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Label {
    /// A label of `id` as `label` from `source`, now.
    pub fn new(id: impl Into<String>, label: impl Into<String>, source: LabelSource) -> Label {
        Label {
            schema: LABEL_SCHEMA.into(),
            id: id.into(),
            key: None,
            label: label.into(),
            source,
            labelled_at_us: crate::now_us(),
            confidence: None,
            by: None,
        }
    }

    /// The checks the schema makes that serde does not ([`WireError::InvalidLabel`] names
    /// the field).
    pub fn validate(&self) -> Result<(), WireError> {
        let invalid = |field, detail: String| Err(WireError::InvalidLabel { field, detail });
        if self.schema != LABEL_SCHEMA {
            return invalid(
                "schema",
                format!("{:?} is not {LABEL_SCHEMA:?}", self.schema),
            );
        }
        if parse_id(&self.id).is_none() {
            return invalid(
                "id",
                format!(
                    "{:?} is not topic/partition/offset (a prediction's id)",
                    self.id
                ),
            );
        }
        if self.label.is_empty() {
            return invalid("label", "is empty".into());
        }
        if let Some(c) = self.confidence {
            if !(0.0..=1.0).contains(&c) {
                return invalid("confidence", format!("{c} is outside [0, 1]"));
            }
        }
        Ok(())
    }

    /// The Kafka key it is published with: the input's key, else the id.
    pub fn kafka_key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.id)
    }
}

/// `topic/partition/offset` → its parts (the topic may contain `/`).
pub fn parse_id(id: &str) -> Option<(&str, i32, i64)> {
    let (rest, offset) = id.rsplit_once('/')?;
    let (topic, partition) = rest.rsplit_once('/')?;
    if topic.is_empty() {
        return None;
    }
    let partition: i32 = partition.parse().ok().filter(|p| *p >= 0)?;
    let offset: i64 = offset.parse().ok().filter(|o| *o >= 0)?;
    Some((topic, partition, offset))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_topic_partition_offset() {
        assert_eq!(parse_id("frames/3/17"), Some(("frames", 3, 17)));
        assert_eq!(parse_id("a/b/0/0"), Some(("a/b", 0, 0)));
        for bad in ["frames/3", "/3/1", "frames/-1/2", "frames/1/x", ""] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_label_round_trips_and_validates() {
        let mut l = Label::new("customers/0/42", "churn", LabelSource::System);
        l.key = Some("c-42".into());
        l.validate().unwrap();
        assert_eq!(l.kafka_key(), "c-42");
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Label>(&json).unwrap(), l);
        l.confidence = Some(1.5);
        assert!(matches!(
            l.validate(),
            Err(WireError::InvalidLabel {
                field: "confidence",
                ..
            })
        ));
        l.confidence = None;
        l.id = "nope".into();
        assert!(matches!(
            l.validate(),
            Err(WireError::InvalidLabel { field: "id", .. })
        ));
        assert!(serde_json::from_str::<Label>(r#"{"schema":"argus.label/v1","id":"t/0/1","label":"x","source":"oracle","labelled_at_us":1}"#).is_err());
    }
}
