//! JSON messages on the result topics. Each has a JSON Schema in `schemas/`; a change to a
//! field bumps the `schema` string's version and keeps old readers working.
use serde::{Deserialize, Serialize};

/// `schema` value of a [`Prediction`] the model made (outcome `ok`).
pub const PREDICTION_SCHEMA: &str = "argus.prediction/v1";
/// `schema` value of a [`Prediction`] that v1 cannot express (outcome `stale`). Workers
/// write the oldest version that can express a record, so v1 readers keep working.
pub const PREDICTION_SCHEMA_V2: &str = "argus.prediction/v2";
/// `schema` value of a [`Prediction`] with boxes (detection models); classification
/// predictions stay v1/v2 so their readers keep working.
pub const PREDICTION_SCHEMA_V3: &str = "argus.prediction/v3";
/// `schema` value of an [`Alert`] without evidence (images).
pub const ALERT_SCHEMA: &str = "argus.alert/v1";
/// `schema` value of an [`Alert`] that carries the features the model used (records). v1
/// cannot express them; alerts without features stay v1 so v1 readers keep working.
pub const ALERT_SCHEMA_V2: &str = "argus.alert/v2";

/// Where an output came from: the input message's coordinates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRef {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Kafka key (camera or entity id), if the message had a UTF-8 key.
    pub key: Option<String>,
    /// Envelope source id, if the envelope decoded.
    pub source_id: Option<String>,
    /// Envelope sequence number, if the envelope decoded.
    pub sequence: Option<u64>,
    /// Capture time in µs since the Unix epoch, if known.
    pub capture_time_us: Option<i64>,
}

impl InputRef {
    /// Stable id of the input, `topic/partition/offset`; predictions and labels join on it.
    pub fn id(&self) -> String {
        crate::InputId {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
        }
        .to_string()
    }
}

/// The model that produced an output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Model name, from the bundle manifest.
    pub name: String,
    /// Model version, from the bundle manifest.
    pub version: String,
    /// sha256 of the ONNX file, lowercase hex.
    pub sha256: String,
}

/// One class and its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Score {
    /// Class label, from the manifest's label list.
    pub label: String,
    /// Index of the label in the model's output.
    pub index: u32,
    /// Probability, 0..=1.
    pub score: f32,
}

/// Time spent per stage, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// Waiting between consume and the start of decoding.
    pub queue_us: u64,
    /// Decoding the image payload (0 for raw pixels and records).
    pub decode_us: u64,
    /// Image or record to the model's input tensor.
    pub preprocess_us: u64,
    /// This input's share of its batch's model call (the call's time ÷ the batch size).
    pub inference_us: u64,
    /// Softmax and ranking.
    pub postprocess_us: u64,
    /// Capture time to the moment the output was built; `null` if capture time is unknown.
    pub capture_to_output_us: Option<u64>,
}

/// How an input was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionOutcome {
    /// The model ran; `top` holds its answer.
    Ok,
    /// (v2) The input was older than the worker's max age; the model did not run.
    Stale,
}

/// (v2) Why an input was not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// Always `stale` for now.
    pub reason: String,
    /// Capture time to the moment the worker reached the input, µs.
    pub age_us: u64,
    /// The worker's maximum age, µs.
    pub max_age_us: u64,
}

/// Published to `predictions` for every input the model ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// Always [`PREDICTION_SCHEMA`].
    pub schema: String,
    /// `topic/partition/offset` of the input.
    pub id: String,
    /// The input this prediction is for.
    pub input: InputRef,
    /// The model that made it.
    pub model: ModelRef,
    /// Whether the model ran (`ok`) or the input was skipped (`stale`, v2).
    pub outcome: PredictionOutcome,
    /// Best class (`None` only when the model did not run, v2).
    pub label: Option<String>,
    /// Probability of `label` (`None` only when the model did not run, v2).
    pub score: Option<f32>,
    /// The k best classes, best first (empty only when the model did not run, v2).
    pub top: Vec<Score>,
    /// Time per stage for this input.
    pub timings: Timings,
    /// Worker instance that produced it.
    pub worker: String,
    /// Wall-clock time the prediction was built, µs since the Unix epoch.
    pub produced_at_us: i64,
    /// (v2) Present when the model did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skipped>,
    /// (v3) The decoded frame's size: the coordinate system of `detections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameSize>,
    /// (v3) Detection models: the boxes found, best first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<DetectedBox>>,
}

/// (v3) A frame's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSize {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

/// (v3) One box a detection model found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectedBox {
    /// Class label, from the manifest's label list.
    pub label: String,
    /// Index of the label in the model's labels.
    pub index: u32,
    /// The box's score, 0..=1.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels, clipped to the frame.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// The rule an alert matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Rule name, unique per worker.
    pub name: String,
    /// The label the rule watches.
    pub label: String,
    /// Minimum probability of `label` that raises an alert.
    pub threshold: f32,
}

/// Published to `alerts` when a prediction matches a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// [`ALERT_SCHEMA`], or [`ALERT_SCHEMA_V2`] when `features` is present.
    pub schema: String,
    /// `<prediction id>/<rule name>`: unique per input and rule, so duplicates after a
    /// redelivery can be recognised.
    pub id: String,
    /// Id of the prediction that matched.
    pub prediction_id: String,
    /// The input of that prediction.
    pub input: InputRef,
    /// The model that made it.
    pub model: ModelRef,
    /// The rule it matched.
    pub rule: AlertRule,
    /// The watched label and its probability.
    pub label: String,
    /// Probability of `label`.
    pub score: f32,
    /// Worker instance that raised it.
    pub worker: String,
    /// Wall-clock time the alert was built, µs since the Unix epoch.
    pub raised_at_us: i64,
    /// (v2) The record's values of the features the model used, by feature name (records
    /// only): the evidence a reader needs to act without fetching the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<serde_json::Map<String, serde_json::Value>>,
    /// (v3) The boxes behind the alert, frame pixels, best first: for a zone rule the boxes
    /// of its label in the zone, with their track ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<AlertBox>>,
    /// (v3) The zone rule that fired (zone alerts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<ZoneHit>,
    /// (v3) Where a JPEG of the frame with the boxes (and zone) drawn was stored: a
    /// `file://` URI or path, never the image itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// (v4) Why the model said so: feature attributions (records) or a saliency grid per box
    /// or label (images), or why there are none (`status: "skipped"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// `schema` value of an [`Alert`] with an `evidence` section. Workers write it only when
/// evidence is on (`--evidence`); alerts without evidence keep v1–v3.
pub const ALERT_SCHEMA_V4: &str = "argus.alert/v4";
/// JSON Schema of [`Alert`] v4 (`schemas/alert.v4.schema.json`).
pub const ALERT_V4_JSON_SCHEMA: &str = include_str!("../../../schemas/alert.v4.schema.json");

/// (v4) Whether an alert's evidence was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceStatus {
    /// Computed: see the method's fields.
    Ok,
    /// Not computed; `reason` says why (budget, pool full, no explainer, error).
    Skipped,
}

/// (v4) Why the model said so, for one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// `ok` or `skipped`.
    pub status: EvidenceStatus,
    /// Why evidence was skipped (`skipped` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `tree_shap` (exact), `sampling_shapley` (estimated, with `error_bound`) or
    /// `occlusion` (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// What the values measure: attributions in the model's output space (`probability`,
    /// `log_odds`, `logit`, `margin`, `value`); occlusion grids the drop in the label's
    /// log-odds (`log_odds_drop`, classifiers) or in the box's score (`score_drop`,
    /// detectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// The output with no feature known (attributions only): `base_value` plus every
    /// contribution is `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_value: Option<f64>,
    /// The output explained, in `space`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<f64>,
    /// Per feature, largest effect first (attributions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<Attribution>,
    /// Largest 99 % error bound of any contribution (sampled methods only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_bound: Option<f64>,
    /// The top contributions in plain words, e.g. "complaints_90d = 4 raised the churn
    /// probability by 0.21".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<String>,
    /// Occlusion saliency: one grid for the label (classifiers) or per box (detectors).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saliency: Vec<Saliency>,
    /// Time spent computing the evidence, µs (from the request, queueing included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_us: Option<u64>,
}

impl Evidence {
    /// Computed evidence of `method`, its fields to fill in.
    pub fn ok(method: &str) -> Evidence {
        Evidence {
            status: EvidenceStatus::Ok,
            reason: None,
            method: Some(method.into()),
            ..Evidence::skipped("")
        }
    }

    /// One line for a person: the top contribution in words, the saliency peak, or why
    /// there is no evidence.
    pub fn headline(&self) -> String {
        if self.status == EvidenceStatus::Skipped {
            return format!(
                "evidence skipped ({})",
                self.reason.as_deref().unwrap_or("no reason given")
            );
        }
        if let Some(first) = self.summary.first() {
            return format!("because {first}");
        }
        let peaks: Vec<String> = self
            .saliency
            .iter()
            .map(|s| {
                let drop = s.values.iter().copied().fold(f32::MIN, f32::max);
                let [x1, y1, x2, y2] = s.peak;
                let what = match self.space.as_deref() {
                    Some("log_odds_drop") => "log-odds",
                    _ => "score",
                };
                format!("[{x1:.0},{y1:.0},{x2:.0},{y2:.0}] ({what} -{drop:.2} when hidden)")
            })
            .collect();
        if peaks.is_empty() {
            "evidence: nothing to show".into()
        } else {
            format!("salient region {}", peaks.join(", "))
        }
    }

    /// Evidence that was not computed, and why.
    pub fn skipped(reason: impl Into<String>) -> Evidence {
        Evidence {
            status: EvidenceStatus::Skipped,
            reason: Some(reason.into()),
            method: None,
            space: None,
            base_value: None,
            output: None,
            attributions: Vec::new(),
            error_bound: None,
            summary: Vec::new(),
            saliency: Vec::new(),
            compute_us: None,
        }
    }
}

/// (v4) One feature's contribution to the output explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribution {
    /// The feature's name (a category's one-hot inputs count as one feature).
    pub feature: String,
    /// Its value in the record.
    pub value: serde_json::Value,
    /// How much it moved the output from the base value (signed, in `space`).
    pub contribution: f64,
    /// 99 % error bound of `contribution` (sampled methods only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
}

/// (v4) Occlusion saliency: how much the label's score drops when each cell of a grid over
/// the frame is blanked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saliency {
    /// Grid rows.
    pub rows: u32,
    /// Grid columns.
    pub cols: u32,
    /// Drop of the score per cell when it is blanked, row-major (negative: blanking it
    /// raised the score), in the evidence's `space`.
    pub values: Vec<f32>,
    /// The box explained (detectors), `[x1, y1, x2, y2]` in frame pixels.
    #[serde(default, rename = "box", skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f32; 4]>,
    /// The cell with the largest drop, `[x1, y1, x2, y2]` in frame pixels.
    pub peak: [f32; 4],
    /// Where a PNG of the frame with the grid drawn over it was written (`file://` URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
}

/// (v3) A box in an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertBox {
    /// Class label.
    pub label: String,
    /// The box's score.
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Its track id on the camera (zone alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<u64>,
    /// When its track entered the zone, µs since the Unix epoch (loiter alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_zone_since_us: Option<i64>,
}

/// (v3) The zone rule behind an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneHit {
    /// The zone's name.
    pub name: String,
    /// `presence`, `loiter` or `count`.
    pub rule: String,
    /// The zone's corners in frame pixels.
    pub polygon: Vec<[f32; 2]>,
    /// Since when the rule's condition holds, µs since the Unix epoch (capture time).
    pub since_us: i64,
    /// The frame's size, pixels.
    pub frame: FrameSize,
}

/// `schema` value of an [`Alert`] with boxes: a detection model's alert (the boxes of the
/// label that made it) or a zone rule's (`zone`, the tracked boxes in it, a snapshot
/// reference). Other alerts stay v1/v2.
pub const ALERT_SCHEMA_V3: &str = "argus.alert/v3";

/// JSON Schema of [`Prediction`] v1 (`schemas/prediction.schema.json`).
pub const PREDICTION_JSON_SCHEMA: &str = include_str!("../../../schemas/prediction.schema.json");
/// JSON Schema of [`Prediction`] v2 (`schemas/prediction.v2.schema.json`).
pub const PREDICTION_V2_JSON_SCHEMA: &str =
    include_str!("../../../schemas/prediction.v2.schema.json");
/// JSON Schema of [`Prediction`] v3 (`schemas/prediction.v3.schema.json`).
pub const PREDICTION_V3_JSON_SCHEMA: &str =
    include_str!("../../../schemas/prediction.v3.schema.json");
/// JSON Schema of [`Alert`] v1 (`schemas/alert.schema.json`).
pub const ALERT_JSON_SCHEMA: &str = include_str!("../../../schemas/alert.schema.json");
/// JSON Schema of [`Alert`] v3 (`schemas/alert.v3.schema.json`).
pub const ALERT_V3_JSON_SCHEMA: &str = include_str!("../../../schemas/alert.v3.schema.json");
/// JSON Schema of [`Alert`] v2 (`schemas/alert.v2.schema.json`).
pub const ALERT_V2_JSON_SCHEMA: &str = include_str!("../../../schemas/alert.v2.schema.json");
