//! The outputs of one input, as JSON: a `Prediction` plus an `Alert` per matching rule, a
//! stale `Prediction` (v2), or the reason it goes to the dead-letter topic. Pure: no Kafka.
//! The workers and the batch scorer (`argus score`) write the same records from here.
use crate::config::{AlertRule, WorkerConfig};
use crate::job::{Classified, Failure, Job, Stale};
use argus_model::Classifier;
use argus_wire::{
    now_us, Alert, AlertBox, AlertId, AlertRuleView, AlertView, FailureKind, FeaturesView,
    FrameSize, ModelRefJson, Payload, Prediction, PredictionOutcome, PredictionView, ScoreView,
    Skipped, Timings, ALERT_SCHEMA, ALERT_SCHEMA_V2, ALERT_SCHEMA_V3, ALERT_SCHEMA_V4,
    PREDICTION_SCHEMA, PREDICTION_SCHEMA_V2, PREDICTION_SCHEMA_V3,
};
use std::borrow::Cow;
use std::sync::Arc;

/// What became of an input before publishing.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The model ran.
    Classified(Classified),
    /// Older than `max_age` when reached; the model did not run.
    Stale(Stale),
    /// Goes to the DLQ.
    Failed(Failure),
}

/// What happened to an input whose outputs were all acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// A prediction (and this many alerts) were published.
    Predicted {
        /// Alerts published with the prediction.
        alerts: usize,
    },
    /// A stale prediction was published; the model did not run.
    Stale,
    /// The input went to the DLQ.
    DeadLettered(FailureKind),
    /// The partition was revoked before the outputs were handed over; nothing was
    /// published and the next owner redoes the input.
    Abandoned,
}

/// Builds the JSON outputs (prediction, alerts) of classified inputs.
#[derive(Debug, Clone)]
pub struct Outputs {
    worker_id: String,
    rules: Arc<Vec<AlertRule>>,
    top_k: usize,
    model: ModelRefJson,
    labels: Arc<Vec<String>>,
    /// Tabular bundles: the features alerts carry as evidence (empty for images).
    features: Arc<Vec<argus_model::manifest::Feature>>,
    /// A detection model: predictions are v3 with boxes.
    detector: bool,
}

/// The `argus-schema` header value of an alert: its body's version.
pub fn alert_schema(alert: &Alert) -> &'static str {
    if alert.schema == ALERT_SCHEMA_V4 {
        ALERT_SCHEMA_V4
    } else if alert.schema == ALERT_SCHEMA_V3 {
        ALERT_SCHEMA_V3
    } else if alert.schema == ALERT_SCHEMA_V2 {
        ALERT_SCHEMA_V2
    } else {
        ALERT_SCHEMA
    }
}

/// An alert as it is sent: its schema (the `argus-schema` header) and JSON body.
pub fn alert_json(alert: &Alert) -> (&'static str, Vec<u8>) {
    (alert_schema(alert), json(alert))
}

/// The JSON outputs of one input, ready to send.
#[derive(Debug, Clone)]
pub struct JsonOutputs {
    /// The prediction's schema (v1, or v2 for a stale prediction).
    pub prediction_schema: &'static str,
    /// The prediction, JSON.
    pub prediction: Vec<u8>,
    /// Each alert's schema (v1, or v2 with features) and JSON.
    pub alerts: Vec<(&'static str, Vec<u8>)>,
    /// The shadow version's prediction of the same input (JSON, v1), for the shadow topic.
    pub shadow: Option<Vec<u8>>,
    /// The input's capture time (µs since the Unix epoch), sent as a header.
    pub capture_us: i64,
    /// What the input counts as once these are delivered.
    pub finished: Finished,
}

/// Everything one input publishes.
#[derive(Debug, Clone)]
pub enum Rendered {
    /// A prediction and its alerts.
    Outputs(JsonOutputs),
    /// The input goes to the dead-letter topic, for this reason.
    DeadLetter(Failure),
}

impl Rendered {
    /// Adds `alerts` (as JSON, with their schema) to a prediction's outputs.
    pub fn push_alerts(&mut self, alerts: &[Alert]) {
        self.push_alert_json(alerts.iter().map(alert_json));
    }

    /// Adds alerts already serialised (schema, JSON) to a prediction's outputs.
    fn push_alert_json(&mut self, alerts: impl Iterator<Item = (&'static str, Vec<u8>)>) {
        if let Rendered::Outputs(out) = self {
            out.alerts.extend(alerts);
            if let Finished::Predicted { alerts } = &mut out.finished {
                *alerts = out.alerts.len();
            }
        }
    }

    /// Alerts among the outputs.
    pub fn alerts(&self) -> usize {
        match self {
            Rendered::Outputs(o) => o.alerts.len(),
            Rendered::DeadLetter(_) => 0,
        }
    }
}

impl Outputs {
    /// Outputs of `model` under `config`'s rules, top-k and worker id.
    pub fn new(config: &WorkerConfig, model: &Classifier) -> Self {
        Outputs {
            worker_id: config.worker_id.clone(),
            rules: Arc::new(config.rules.clone()),
            top_k: config.top_k,
            model: ModelRefJson::new(model.model_ref().clone()),
            labels: Arc::new(model.labels().to_vec()),
            features: Arc::new(model.manifest().features.clone()),
            detector: model.detection_head().is_some(),
        }
    }

    /// Builds the prediction and alerts for a classified input.
    pub fn outputs(&self, job: &Job, c: &Classified) -> (Prediction, Vec<Alert>) {
        let prediction = self.prediction_view(job, c);
        let alerts = self.alert_views(&prediction, c);
        (
            prediction.to_owned(),
            alerts.iter().map(AlertView::to_owned).collect(),
        )
    }

    /// The prediction of a classified input, borrowing its text from the input and from
    /// these outputs: what is serialised for every input, so it copies no strings.
    pub fn prediction_view<'a>(&'a self, job: &'a Job, c: &'a Classified) -> PredictionView<'a> {
        let input = job.input_view(Some(&c.envelope));
        let probs = &c.classification.probabilities;
        let label_of = |i: usize| match self.labels.get(i) {
            Some(l) => Cow::Borrowed(l.as_str()),
            None => Cow::Owned(i.to_string()),
        };
        let top = c
            .classification
            .ranking
            .iter()
            .take(self.top_k.max(1))
            .map(|&i| ScoreView {
                label: label_of(i),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                score: probs[i],
            })
            .collect();
        let best = c.classification.ranking.first().copied().unwrap_or(0);
        let now = now_us();
        let t = c.classification.timings;
        let mut prediction = PredictionView {
            schema: PREDICTION_SCHEMA,
            id: input.id(),
            input,
            model: &self.model,
            outcome: PredictionOutcome::Ok,
            label: Some(label_of(best)),
            score: Some(c.classification.probability(best)),
            top,
            timings: Timings {
                queue_us: c.queue_us,
                decode_us: t.decode_us + c.envelope_us,
                preprocess_us: t.preprocess_us,
                inference_us: t.inference_us,
                postprocess_us: t.postprocess_us,
                capture_to_output_us: u64::try_from(now.saturating_sub(c.envelope.capture_time_us))
                    .ok(),
            },
            worker: &self.worker_id,
            produced_at_us: now,
            skipped: None,
            frame: None,
            detections: None,
        };
        if self.detector {
            // A detection model's prediction is v3 with the frame's size and its boxes.
            prediction.schema = PREDICTION_SCHEMA_V3;
            prediction.frame = c
                .classification
                .frame
                .map(|(width, height)| FrameSize { width, height });
            prediction.detections = Some(argus_model::detection::detected_boxes(
                &c.classification.detections,
                &self.labels,
            ));
        }
        prediction
    }

    /// The alerts `prediction` (of `c`) raises: one per rule whose label scores at its
    /// threshold or more, borrowing their text as the prediction does. Most inputs raise
    /// none.
    fn alert_views<'a>(
        &'a self,
        prediction: &PredictionView<'a>,
        c: &'a Classified,
    ) -> Vec<AlertView<'a>> {
        let id = prediction.id;
        // Records: the features the model used, as evidence (built only if an alert fires).
        let evidence = || match &c.envelope.payload {
            Payload::Record(r) if !self.features.is_empty() => Some(FeaturesView::new(
                argus_model::tabular::feature_values(&self.features, r),
            )),
            _ => None,
        };
        self.rules
            .iter()
            .filter_map(|rule| {
                let i = self.labels.iter().position(|l| *l == rule.label)?;
                let score = c.classification.probability(i);
                if score < rule.threshold {
                    return None;
                }
                let features = evidence();
                // Detectors: the boxes of the label at the rule's threshold or more.
                let detections = self.detector.then(|| {
                    c.classification
                        .detections
                        .iter()
                        .filter(|d| d.class == i && d.score >= rule.threshold)
                        .map(|d| AlertBox {
                            label: rule.label.clone(),
                            score: d.score,
                            bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                            track: None,
                            in_zone_since_us: None,
                        })
                        .collect()
                });
                Some(AlertView {
                    schema: if detections.is_some() {
                        ALERT_SCHEMA_V3
                    } else if features.is_some() {
                        ALERT_SCHEMA_V2
                    } else {
                        ALERT_SCHEMA
                    },
                    id: AlertId {
                        prediction: id,
                        rule: &rule.name,
                    },
                    prediction_id: id,
                    input: prediction.input,
                    model: &self.model,
                    rule: AlertRuleView {
                        name: &rule.name,
                        label: &rule.label,
                        threshold: rule.threshold,
                    },
                    label: &rule.label,
                    score,
                    worker: &self.worker_id,
                    raised_at_us: prediction.produced_at_us,
                    features,
                    detections,
                })
            })
            .collect()
    }

    /// The (v2) prediction for an input that was too old to run.
    pub fn stale_prediction(&self, job: &Job, stale: &Stale) -> Prediction {
        let Stale {
            envelope,
            age_us,
            max_age_us,
            queue_us,
        } = stale;
        let input = job.input_ref(Some(envelope));
        let now = now_us();
        Prediction {
            schema: PREDICTION_SCHEMA_V2.into(),
            id: input.id(),
            input,
            model: self.model.model().clone(),
            outcome: PredictionOutcome::Stale,
            label: None,
            score: None,
            top: Vec::new(),
            timings: Timings {
                queue_us: *queue_us,
                capture_to_output_us: u64::try_from(now.saturating_sub(envelope.capture_time_us))
                    .ok(),
                ..Timings::default()
            },
            worker: self.worker_id.clone(),
            produced_at_us: now,
            skipped: Some(Skipped {
                reason: "stale".into(),
                age_us: *age_us,
                max_age_us: *max_age_us,
            }),
            frame: None,
            detections: None,
        }
    }

    /// Renders what one input publishes.
    pub fn render(&self, job: &Job, outcome: &Outcome) -> Rendered {
        let Outcome::Classified(c) = outcome else {
            return self.render_split(job, outcome).0;
        };
        // Alerts are serialised from their views: nothing is copied for them.
        let prediction = self.prediction_view(job, c);
        let alerts = self.alert_views(&prediction, c);
        let mut rendered = Rendered::Outputs(predicted(&prediction, c, alerts.len()));
        rendered.push_alert_json(alerts.iter().map(|alert| (alert.schema, json(alert))));
        rendered
    }

    /// [`Outputs::render`] with the alerts still to add ([`Rendered::push_alerts`]), for a
    /// caller that attaches evidence to them first.
    pub fn render_split(&self, job: &Job, outcome: &Outcome) -> (Rendered, Vec<Alert>) {
        let rendered = match outcome {
            Outcome::Classified(c) => {
                let prediction = self.prediction_view(job, c);
                let alerts = self.alert_views(&prediction, c);
                let rendered = Rendered::Outputs(predicted(&prediction, c, alerts.len()));
                return (rendered, alerts.iter().map(AlertView::to_owned).collect());
            }
            Outcome::Stale(stale) => {
                let p = self.stale_prediction(job, stale);
                Rendered::Outputs(JsonOutputs {
                    prediction_schema: PREDICTION_SCHEMA_V2,
                    prediction: json(&p),
                    alerts: Vec::new(),
                    shadow: None,
                    capture_us: stale.envelope.capture_time_us,
                    finished: Finished::Stale,
                })
            }
            Outcome::Failed(f) => Rendered::DeadLetter(f.clone()),
        };
        (rendered, Vec::new())
    }
}

/// A classified input's outputs with its prediction and room for `alerts` alerts (none
/// added yet).
fn predicted(prediction: &PredictionView<'_>, c: &Classified, alerts: usize) -> JsonOutputs {
    JsonOutputs {
        prediction_schema: prediction.schema,
        prediction: json(prediction),
        alerts: Vec::with_capacity(alerts),
        shadow: None,
        capture_us: c.envelope.capture_time_us,
        finished: Finished::Predicted { alerts: 0 },
    }
}

/// Bytes the per-thread serialising buffer starts with: a classifier's prediction is
/// 600–700 bytes, and `serde_json::to_vec` starts at 128 and grows (and copies) three
/// times on the way.
const JSON_CAPACITY: usize = 1024;

/// A per-thread buffer that grew past this (an alert with a snapshot) is given back after
/// use rather than kept.
const JSON_KEEP: usize = 64 * 1024;

thread_local! {
    /// Where [`json`] writes before copying out: one buffer per thread, reused.
    static JSON_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `value` as JSON, in a vector of exactly its length; empty if it cannot be serialised
/// (never for the wire types, which have no maps with non-string keys).
///
/// Written into a per-thread buffer and copied out once. A fresh vector of
/// [`JSON_CAPACITY`] per output cost a request of 1 kB or more, and glibc's malloc
/// consolidates its free lists before every such request (`malloc_consolidate` was 4 % of
/// the worker's reactor threads on a churn drain); a prediction's exact 600–700 bytes stay
/// below that size.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let write = |buf: &mut Vec<u8>| {
        buf.clear();
        let out = match serde_json::to_writer(&mut *buf, value) {
            Ok(()) => buf.to_vec(),
            Err(_) => Vec::new(),
        };
        if buf.capacity() > JSON_KEEP {
            *buf = Vec::new();
        }
        out
    };
    JSON_BUFFER
        .try_with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => {
                if buf.capacity() == 0 {
                    buf.reserve(JSON_CAPACITY);
                }
                write(&mut buf)
            }
            // Only if serialising `value` serialised something else through here.
            Err(_) => write(&mut Vec::with_capacity(JSON_CAPACITY)),
        })
        .unwrap_or_else(|_| write(&mut Vec::with_capacity(JSON_CAPACITY)))
}
