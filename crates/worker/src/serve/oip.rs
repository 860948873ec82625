//! The Open Inference Protocol v2 (KServe, Seldon Core 2, Triton) REST messages, written from
//! the spec (`kserve/open-inference-protocol`, `specification/protocol/inference_rest.md`),
//! and the mapping of an infer request's input tensor onto a bundle's input. Pure: no I/O.
//!
//! What a bundle exposes:
//! - input: the model's input tensor (`[input] name` of the manifest), `FP32`, shape
//!   `[-1, …]` (the manifest's shape with the batch dimension variable), already
//!   preprocessed; `data` flat in row-major order or nested. Tabular bundles also take
//!   `BYTES` of shape `[N]` (or `[N, 1]`): each element one record as a JSON object text
//!   (the producer's record format), or (an extension) the JSON object itself; the features
//!   are assembled as the worker does.
//! - outputs: `probabilities` (`FP32`, `[N, classes]`, after the bundle's postprocessing:
//!   softmax of logits, or the model's probabilities), with the class names in its
//!   `parameters.labels`; and `label` (`BYTES`, `[N]`, the top class per row).
use argus_model::manifest::Task;
use argus_model::{Classification, Classifier};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `FP32`.
pub const FP32: &str = "FP32";
/// `BYTES`.
pub const BYTES: &str = "BYTES";
/// The output holding the class probabilities.
pub const PROBABILITIES: &str = "probabilities";
/// The output holding the top class per row.
pub const LABEL: &str = "label";
/// The platform a bundle reports (its model is an ONNX file, whatever engine runs it).
pub const PLATFORM: &str = "onnx";

/// `$inference_request`.
#[derive(Debug, Clone, Deserialize)]
pub struct InferRequest {
    /// Echoed in the response.
    #[serde(default)]
    pub id: Option<String>,
    /// Request parameters; Argus reads `key` (string): the canary routing key.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// The input tensors (a bundle has one input).
    pub inputs: Vec<RequestInput>,
    /// The outputs wanted (all when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

impl InferRequest {
    /// The canary routing key, `parameters.key`.
    pub fn key(&self) -> Option<&str> {
        self.parameters.as_ref()?.get("key")?.as_str()
    }
}

/// `$request_input`.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestInput {
    /// The tensor's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its datatype (`FP32`, `BYTES`, …).
    pub datatype: String,
    /// Tensor parameters (ignored).
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// `$tensor_data`: row-major, flat or nested.
    pub data: Value,
}

/// `$request_output`.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestOutput {
    /// The output wanted.
    pub name: String,
    /// Output parameters (ignored).
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// `$inference_response`.
#[derive(Debug, Clone, Serialize)]
pub struct InferResponse {
    /// The model's name.
    pub model_name: String,
    /// The version that answered.
    pub model_version: String,
    /// The request's id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `role`: production or canary (the version's role when it answered).
    pub parameters: Map<String, Value>,
    /// The output tensors.
    pub outputs: Vec<ResponseOutput>,
}

/// `$response_output`.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseOutput {
    /// The output's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its datatype.
    pub datatype: &'static str,
    /// `labels` on `probabilities`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// Flat, row-major.
    pub data: TensorData,
}

/// Tensor contents.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TensorData {
    /// `FP32` values.
    Fp32(Vec<f32>),
    /// `BYTES` as UTF-8 strings.
    Bytes(Vec<String>),
}

/// `$metadata_server_response`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerMetadata {
    /// `argus`.
    pub name: String,
    /// The build's version.
    pub version: String,
    /// Protocol extensions supported (none).
    pub extensions: Vec<String>,
}

/// `$metadata_model_response`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetadata {
    /// The model's name.
    pub name: String,
    /// The versions serving (or the one asked for).
    pub versions: Vec<String>,
    /// [`PLATFORM`].
    pub platform: &'static str,
    /// The input tensor.
    pub inputs: Vec<MetadataTensor>,
    /// The output tensors.
    pub outputs: Vec<MetadataTensor>,
}

/// `$metadata_tensor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataTensor {
    /// Its name.
    pub name: String,
    /// Its datatype.
    pub datatype: &'static str,
    /// Its shape; -1 is a variable dimension.
    pub shape: Vec<i64>,
}

/// The metadata of `model`, listing `versions`.
pub fn model_metadata(model: &Classifier, versions: Vec<String>) -> ModelMetadata {
    let m = model.manifest();
    let mut shape: Vec<i64> = vec![-1];
    shape.extend(m.input.shape.iter().skip(1).map(|&d| d as i64));
    ModelMetadata {
        name: model.model_ref().name.clone(),
        versions,
        platform: PLATFORM,
        inputs: vec![MetadataTensor {
            name: m.input.name.clone(),
            datatype: FP32,
            shape,
        }],
        outputs: vec![
            MetadataTensor {
                name: PROBABILITIES.into(),
                datatype: FP32,
                shape: vec![-1, model.labels().len() as i64],
            },
            MetadataTensor {
                name: LABEL.into(),
                datatype: BYTES,
                shape: vec![-1],
            },
        ],
    }
}

/// The answer for `results` (one per row, in order) of `model` in `role`: the outputs
/// `wanted` (probabilities, label), `id` echoed.
pub fn response(
    model: &Classifier,
    role: &str,
    id: Option<String>,
    results: &[Classification],
    wanted: (bool, bool),
) -> InferResponse {
    let labels = model.labels();
    let n = results.len();
    let mut outputs = Vec::new();
    if wanted.0 {
        let mut parameters = Map::new();
        parameters.insert("labels".into(), Value::from(labels.to_vec()));
        outputs.push(ResponseOutput {
            name: PROBABILITIES.into(),
            shape: vec![n, labels.len()],
            datatype: FP32,
            parameters: Some(parameters),
            data: TensorData::Fp32(
                results
                    .iter()
                    .flat_map(|c| c.probabilities.iter().copied())
                    .collect(),
            ),
        });
    }
    if wanted.1 {
        let top = |c: &Classification| {
            let i = c.ranking.first().copied().unwrap_or(0);
            labels.get(i).cloned().unwrap_or_else(|| i.to_string())
        };
        outputs.push(ResponseOutput {
            name: LABEL.into(),
            shape: vec![n],
            datatype: BYTES,
            parameters: None,
            data: TensorData::Bytes(results.iter().map(top).collect()),
        });
    }
    let r = model.model_ref();
    let mut parameters = Map::new();
    parameters.insert("role".into(), Value::from(role));
    InferResponse {
        model_name: r.name.clone(),
        model_version: r.version.clone(),
        id,
        parameters,
        outputs,
    }
}

/// The rows of an infer request's input, as the bundle takes them.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    /// Preprocessed input tensors, one per row.
    Tensors(Vec<Vec<f32>>),
    /// Records as JSON object texts, one per row (tabular bundles).
    Records(Vec<Vec<u8>>),
}

impl Rows {
    /// Rows in the request.
    pub fn len(&self) -> usize {
        match self {
            Rows::Tensors(t) => t.len(),
            Rows::Records(r) => r.len(),
        }
    }

    /// No rows (never returned by [`rows`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the request's one input as rows for `model`, at most `max_rows`. The error says
/// what is wrong (a 400).
pub fn rows(req: &InferRequest, model: &Classifier, max_rows: usize) -> Result<Rows, String> {
    let [input] = req.inputs.as_slice() else {
        return Err(format!(
            "the request has {} inputs; model {} takes one, {:?}",
            req.inputs.len(),
            model.model_ref().name,
            model.manifest().input.name
        ));
    };
    let expected = &model.manifest().input.name;
    let tabular = model.manifest().task == Task::Tabular;
    let shape = shape(&input.shape)?;
    let n = shape.first().copied().unwrap_or(0);
    if n == 0 || n > max_rows {
        return Err(format!(
            "input {:?} has {n} rows (shape {:?}); between 1 and {max_rows} are accepted",
            input.name, input.shape
        ));
    }
    match input.datatype.as_str() {
        FP32 => {
            if &input.name != expected {
                return Err(format!(
                    "input {:?} is not an input of model {}; its input is {expected:?}",
                    input.name,
                    model.model_ref().name
                ));
            }
            let row: Vec<usize> = model.manifest().input.shape[1..].to_vec();
            if shape[1..] != row[..] {
                return Err(format!(
                    "input {expected:?} has shape {:?}; the model takes [N, {}]",
                    input.shape,
                    row.iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let values = numbers(&input.data)?;
            let per_row = model.input_len();
            if values.len() != n * per_row {
                return Err(format!(
                    "input {expected:?} has {} values; shape {:?} needs {}",
                    values.len(),
                    input.shape,
                    n * per_row
                ));
            }
            Ok(Rows::Tensors(
                values.chunks(per_row).map(<[f32]>::to_vec).collect(),
            ))
        }
        BYTES if tabular => {
            if shape.len() > 2 || shape.get(1).is_some_and(|&d| d != 1) {
                return Err(format!(
                    "BYTES input {:?} has shape {:?}; records take [N] or [N, 1]",
                    input.name, input.shape
                ));
            }
            let records = records(&input.data)?;
            if records.len() != n {
                return Err(format!(
                    "BYTES input {:?} has {} records; shape {:?} says {n}",
                    input.name,
                    records.len(),
                    input.shape
                ));
            }
            Ok(Rows::Records(records))
        }
        other => Err(format!(
            "input {:?} has datatype {other}; model {} takes {FP32}{}",
            input.name,
            model.model_ref().name,
            if tabular {
                " (preprocessed) or BYTES (JSON records)"
            } else {
                " (preprocessed)"
            }
        )),
    }
}

fn shape(dims: &[i64]) -> Result<Vec<usize>, String> {
    if dims.is_empty() {
        return Err("input shape is empty; it needs at least the row dimension".into());
    }
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("input shape {dims:?} has a negative dimension"))
        })
        .collect()
}

/// The numbers of `data`, flattened in row-major order.
fn numbers(data: &Value) -> Result<Vec<f32>, String> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    // Depth-first, right to left onto the stack, so values come out in order.
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Number(x) => match x.as_f64() {
                Some(x) => out.push(x as f32),
                None => return Err(format!("FP32 data holds {x}, not a number")),
            },
            other => {
                return Err(format!(
                    "FP32 data must hold numbers (flat or nested arrays); found {}",
                    kind(other)
                ))
            }
        }
    }
    Ok(out)
}

/// The records of `data`: strings (JSON object texts) or objects, flat or nested.
fn records(data: &Value) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::String(s) => out.push(s.clone().into_bytes()),
            Value::Object(_) => out.push(v.to_string().into_bytes()),
            other => {
                return Err(format!(
                    "BYTES data must hold records (JSON object texts, or objects); found {}",
                    kind(other)
                ))
            }
        }
    }
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The outputs to return: all when the request names none; an unknown name is an error.
pub fn wanted_outputs(req: &InferRequest) -> Result<(bool, bool), String> {
    let Some(outputs) = &req.outputs else {
        return Ok((true, true));
    };
    let (mut probabilities, mut label) = (false, false);
    for o in outputs {
        match o.name.as_str() {
            PROBABILITIES => probabilities = true,
            LABEL => label = true,
            other => {
                return Err(format!(
                    "output {other:?} is not an output of this model; it has {PROBABILITIES:?} and {LABEL:?}"
                ))
            }
        }
    }
    Ok((probabilities, label))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::path::PathBuf;

    fn churn() -> Classifier {
        Classifier::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn"))
            .unwrap()
    }

    fn request(v: Value) -> InferRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn flat_and_nested_fp32_data_give_the_same_rows() {
        let m = churn();
        let row: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let flat: Vec<f32> = row.iter().chain(&row).copied().collect();
        let a = request(serde_json::json!({"inputs": [
            {"name": "features", "shape": [2, 20], "datatype": "FP32", "data": flat}]}));
        let b = request(serde_json::json!({"inputs": [
            {"name": "features", "shape": [2, 20], "datatype": "FP32", "data": [row, row]}]}));
        let want = Rows::Tensors(vec![row.clone(), row.clone()]);
        assert_eq!(rows(&a, &m, 8).unwrap(), want);
        assert_eq!(rows(&b, &m, 8).unwrap(), want);
    }

    #[test]
    fn wrong_name_shape_count_datatype_or_rows_are_refused_with_the_reason() {
        let m = churn();
        let input = |name: &str, shape: Value, datatype: &str, data: Value| {
            request(serde_json::json!({"inputs": [
                {"name": name, "shape": shape, "datatype": datatype, "data": data}]}))
        };
        let zeros = |n: usize| Value::from(vec![0.0; n]);
        let cases = [
            (input("x", [1, 20].into(), FP32, zeros(20)), "not an input"),
            (
                input("features", [1, 19].into(), FP32, zeros(19)),
                "[N, 20]",
            ),
            (
                input("features", [1, 20].into(), FP32, zeros(19)),
                "needs 20",
            ),
            (
                input("features", [1, 20].into(), "INT64", zeros(20)),
                "datatype INT64",
            ),
            (
                input("features", [9, 20].into(), FP32, zeros(180)),
                "between 1 and 8",
            ),
            (
                input("features", [0, 20].into(), FP32, zeros(0)),
                "between 1 and 8",
            ),
            (
                input("features", [-1, 20].into(), FP32, zeros(20)),
                "negative",
            ),
            (
                input("features", [1, 20].into(), FP32, "a".into()),
                "numbers",
            ),
            (
                input("features", [1, 1].into(), BYTES, Value::from(vec![1])),
                "records",
            ),
            (
                input("features", [2].into(), BYTES, Value::from(vec!["{}"])),
                "says 2",
            ),
        ];
        for (req, why) in cases {
            let e = rows(&req, &m, 8).unwrap_err();
            assert!(e.contains(why), "{e:?} should say {why:?}");
        }
        let two = request(serde_json::json!({"inputs": []}));
        assert!(rows(&two, &m, 8).unwrap_err().contains("0 inputs"));
    }

    #[test]
    fn tabular_bytes_take_record_texts_and_objects() {
        let m = churn();
        let req = request(
            serde_json::json!({"inputs": [{"name": "records", "shape": [2],
            "datatype": "BYTES", "data": ["{\"a\":1}", {"a": 2}]}]}),
        );
        assert_eq!(
            rows(&req, &m, 8).unwrap(),
            Rows::Records(vec![b"{\"a\":1}".to_vec(), b"{\"a\":2}".to_vec()])
        );
    }

    #[test]
    fn outputs_default_to_all_and_unknown_names_are_refused() {
        let r = |o: Value| request(serde_json::json!({"inputs": [], "outputs": o}));
        assert_eq!(
            wanted_outputs(&request(serde_json::json!({"inputs": []}))),
            Ok((true, true))
        );
        assert_eq!(
            wanted_outputs(&r(serde_json::json!([{"name": "label"}]))),
            Ok((false, true))
        );
        assert!(wanted_outputs(&r(serde_json::json!([{"name": "logits"}]))).is_err());
    }

    #[test]
    fn metadata_has_a_variable_batch_dimension() {
        let m = churn();
        let md = model_metadata(&m, vec!["1".into()]);
        assert_eq!(md.inputs[0].shape, vec![-1, 20]);
        assert_eq!(md.outputs[0].shape, vec![-1, 2]);
        assert_eq!(md.platform, "onnx");
    }
}
