//! A [`Prediction`] that borrows its text, for the writer's hot path.
//!
//! A worker writes one prediction per input and drops it as soon as it is JSON. Built as a
//! [`Prediction`] it copies a dozen strings it already holds (the topic, key and source id,
//! the model's name, version and digest, the labels, the worker id) only to free them after
//! serialising: on a churn drain those copies were a large share of the worker's
//! allocations. [`PredictionView`] points at them instead and serialises to the same bytes
//! as the [`Prediction`] it stands for ([`PredictionView::to_owned`]); the tests below hold
//! the two to that. Readers keep deserialising [`Prediction`].
//!
//! The model reference is the same in every prediction a worker writes, so it is rendered
//! once ([`ModelRefJson`]) and copied: serde_json escaped its 64-character digest, its name
//! and its version for every output.
use crate::output::{
    DetectedBox, FrameSize, InputRef, ModelRef, Prediction, PredictionOutcome, Score, Skipped,
    Timings,
};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// An input's id, `topic/partition/offset` ([`InputRef::id`]), written without building
/// the string first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputId<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
}

impl fmt::Display for InputId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.topic, self.partition, self.offset)
    }
}

impl Serialize for InputId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A [`ModelRef`] with its JSON rendered once, for the [`PredictionView`]s of one model.
///
/// It serialises by writing that JSON as it is, which only serde_json's serializer does:
/// serialise a view holding one with serde_json.
#[derive(Debug, Clone)]
pub struct ModelRefJson {
    model: ModelRef,
    /// `None` only if rendering failed, which a `ModelRef` (three strings) cannot; the
    /// reference is then serialised each time.
    json: Option<Box<RawValue>>,
}

impl ModelRefJson {
    /// `model`, rendered.
    pub fn new(model: ModelRef) -> Self {
        let json = serde_json::value::to_raw_value(&model).ok();
        ModelRefJson { model, json }
    }

    /// The model reference.
    pub fn model(&self) -> &ModelRef {
        &self.model
    }
}

impl PartialEq for ModelRefJson {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
    }
}

impl Serialize for ModelRefJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(json) => json.serialize(s),
            None => self.model.serialize(s),
        }
    }
}

/// [`InputRef`], borrowed; the same fields in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputRefView<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Kafka key, if the message had a UTF-8 key.
    pub key: Option<&'a str>,
    /// Envelope source id, if the envelope decoded.
    pub source_id: Option<&'a str>,
    /// Envelope sequence number, if the envelope decoded.
    pub sequence: Option<u64>,
    /// Capture time in µs since the Unix epoch, if known.
    pub capture_time_us: Option<i64>,
}

impl<'a> InputRefView<'a> {
    /// The input's id, `topic/partition/offset`.
    pub fn id(&self) -> InputId<'a> {
        InputId {
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
        }
    }

    /// The owned [`InputRef`].
    pub fn to_owned(&self) -> InputRef {
        InputRef {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
            key: self.key.map(str::to_owned),
            source_id: self.source_id.map(str::to_owned),
            sequence: self.sequence,
            capture_time_us: self.capture_time_us,
        }
    }
}

/// [`Score`], borrowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreView<'a> {
    /// Class label (owned only for an index the model's labels do not name).
    pub label: Cow<'a, str>,
    /// Index of the label in the model's output.
    pub index: u32,
    /// Probability, 0..=1.
    pub score: f32,
}

/// [`Prediction`], borrowing its text; serialises to the same JSON. Field order and the
/// fields left out when empty follow [`Prediction`] exactly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionView<'a> {
    /// The schema string ([`crate::PREDICTION_SCHEMA`] or a later version).
    pub schema: &'static str,
    /// `topic/partition/offset` of the input.
    pub id: InputId<'a>,
    /// The input this prediction is for.
    pub input: InputRefView<'a>,
    /// The model that made it.
    pub model: &'a ModelRefJson,
    /// Whether the model ran.
    pub outcome: PredictionOutcome,
    /// Best class.
    pub label: Option<Cow<'a, str>>,
    /// Probability of `label`.
    pub score: Option<f32>,
    /// The k best classes, best first.
    pub top: Vec<ScoreView<'a>>,
    /// Time per stage for this input.
    pub timings: Timings,
    /// Worker instance that produced it.
    pub worker: &'a str,
    /// Wall-clock time the prediction was built, µs since the Unix epoch.
    pub produced_at_us: i64,
    /// (v2) Present when the model did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skipped>,
    /// (v3) The decoded frame's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameSize>,
    /// (v3) Detection models: the boxes found, best first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<DetectedBox>>,
}

impl PredictionView<'_> {
    /// The owned [`Prediction`] this view stands for.
    pub fn to_owned(&self) -> Prediction {
        Prediction {
            schema: self.schema.to_owned(),
            id: self.id.to_string(),
            input: self.input.to_owned(),
            model: self.model.model().clone(),
            outcome: self.outcome,
            label: self.label.as_ref().map(|l| l.clone().into_owned()),
            score: self.score,
            top: self
                .top
                .iter()
                .map(|s| Score {
                    label: s.label.clone().into_owned(),
                    index: s.index,
                    score: s.score,
                })
                .collect(),
            timings: self.timings,
            worker: self.worker.to_owned(),
            produced_at_us: self.produced_at_us,
            skipped: self.skipped.clone(),
            frame: self.frame,
            detections: self.detections.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::output::{PREDICTION_SCHEMA, PREDICTION_SCHEMA_V2, PREDICTION_SCHEMA_V3};

    fn model() -> ModelRefJson {
        ModelRefJson::new(ModelRef {
            name: "churn \"forest\"".into(),
            version: "v2".into(),
            sha256: "ab".repeat(32),
        })
    }

    fn view(model: &ModelRefJson) -> PredictionView<'_> {
        PredictionView {
            schema: PREDICTION_SCHEMA,
            id: InputId {
                topic: "customers",
                partition: 3,
                offset: 42,
            },
            input: InputRefView {
                topic: "customers",
                partition: 3,
                offset: 42,
                key: Some("c-7\n"),
                source_id: Some("c-7\n"),
                sequence: Some(42),
                capture_time_us: Some(1_700_000_000_000_000),
            },
            model,
            outcome: PredictionOutcome::Ok,
            label: Some("churn".into()),
            score: Some(0.75),
            top: vec![
                ScoreView {
                    label: "churn".into(),
                    index: 1,
                    score: 0.75,
                },
                ScoreView {
                    label: "stay".into(),
                    index: 0,
                    score: 0.25,
                },
            ],
            timings: Timings {
                queue_us: 1,
                decode_us: 2,
                preprocess_us: 3,
                inference_us: 4,
                postprocess_us: 5,
                capture_to_output_us: Some(6),
            },
            worker: "w-1",
            produced_at_us: 1_700_000_000_000_007,
            skipped: None,
            frame: None,
            detections: None,
        }
    }

    /// The view's JSON is the owned prediction's, byte for byte, and reads back as it.
    fn assert_same_json(v: &PredictionView<'_>) {
        let owned = v.to_owned();
        let from_view = serde_json::to_vec(v).unwrap();
        assert_eq!(
            String::from_utf8(from_view.clone()).unwrap(),
            String::from_utf8(serde_json::to_vec(&owned).unwrap()).unwrap()
        );
        let back: Prediction = serde_json::from_slice(&from_view).unwrap();
        assert_eq!(back, owned);
    }

    #[test]
    fn a_view_writes_the_predictions_bytes() {
        let m = model();
        let v = view(&m);
        assert_eq!(v.id.to_string(), v.input.to_owned().id());
        assert_same_json(&v);
    }

    #[test]
    fn a_view_without_key_or_envelope_writes_nulls_as_the_prediction_does() {
        let m = model();
        let v = PredictionView {
            input: InputRefView {
                key: None,
                source_id: None,
                sequence: None,
                capture_time_us: None,
                ..view(&m).input
            },
            timings: Timings::default(),
            ..view(&m)
        };
        assert_same_json(&v);
    }

    #[test]
    fn stale_and_detection_views_write_their_optional_fields_as_the_prediction_does() {
        let m = model();
        let stale = PredictionView {
            schema: PREDICTION_SCHEMA_V2,
            outcome: PredictionOutcome::Stale,
            label: None,
            score: None,
            top: Vec::new(),
            skipped: Some(Skipped {
                reason: "stale".into(),
                age_us: 9,
                max_age_us: 8,
            }),
            ..view(&m)
        };
        assert_same_json(&stale);
        let boxes = PredictionView {
            schema: PREDICTION_SCHEMA_V3,
            frame: Some(FrameSize {
                width: 640,
                height: 480,
            }),
            detections: Some(vec![DetectedBox {
                label: "person".into(),
                index: 0,
                score: 0.9,
                bbox: [1.0, 2.0, 3.0, 4.0],
            }]),
            ..view(&m)
        };
        assert_same_json(&boxes);
    }

    #[test]
    fn a_rendered_model_reference_writes_what_serialising_it_writes() {
        let m = model();
        assert!(m.json.is_some());
        let unrendered = ModelRefJson {
            model: m.model().clone(),
            json: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(m.model()).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&view(&m)).unwrap(),
            serde_json::to_string(&view(&unrendered)).unwrap()
        );
    }
}
