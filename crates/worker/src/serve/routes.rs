//! The handlers of `argus serve`: OIP v2 health, metadata and infer, and the convenience
//! route `/v1/predict`. Each request takes the serving set once and is answered by one
//! version ([`super::resolve`]); rows are prepared here and scored on the shared
//! inference stage.
use super::limits::{read_body, ApiError};
use super::oip::{self, InferRequest, InferResponse, ResponseOutput, Rows, TensorData};
use super::{resolve, versions, Chosen, Server};
use crate::job::{Failure, Job, Prepare};
use crate::metrics as m;
use crate::outputs::Rendered;
use crate::pipeline::{classified, Pipeline};
use argus_kafka::RawHeader;
use argus_model::{Classification, Prepared};
use argus_wire::{BareKind, FailureKind, Payload};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The header carrying the canary routing key (a camera or customer id).
pub const KEY_HEADER: &str = "argus-key";

type Answer = Result<Response, ApiError>;

/// `GET /v2/health/live`: 200 while the process answers.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// `GET /v2/health/ready`: 200 once the model is loaded and warmed, 400 before (the spec
/// answers "false" with a 4xx).
pub async fn ready(State(s): State<Arc<Server>>) -> Answer {
    s.stage()
        .map(|_| StatusCode::OK.into_response())
        .map_err(|e| ApiError::bad_request(e.message))
}

/// `GET /v2`: server metadata.
pub async fn server_metadata() -> Response {
    json(&oip::ServerMetadata {
        name: "argus".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: Vec::new(),
    })
}

/// `value` as a JSON answer (200).
fn json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {e}"),
        )
        .into_response(),
    }
}

/// `GET /v2/models/{name}`: every version serving.
pub async fn model_metadata(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Answer {
    let serving = s.models.current();
    let chosen = resolve(&serving, &name, None, None)?;
    let all = versions(&serving, &name)
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    Ok(json(&oip::model_metadata(chosen.pipeline.model(), all)))
}

/// `GET /v2/models/{name}/versions/{version}`.
pub async fn model_version_metadata(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Answer {
    let chosen = resolve(&s.models.current(), &name, Some(&version), None)?;
    Ok(json(&oip::model_metadata(
        chosen.pipeline.model(),
        vec![version],
    )))
}

/// `GET /v2/models/{name}/ready`.
pub async fn model_ready(State(s): State<Arc<Server>>, Path(name): Path<String>) -> Answer {
    resolve(&s.models.current(), &name, None, None)?;
    ready(State(s)).await
}

/// `GET /v2/models/{name}/versions/{version}/ready`.
pub async fn model_version_ready(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
) -> Answer {
    resolve(&s.models.current(), &name, Some(&version), None)?;
    ready(State(s)).await
}

/// No route: 404 with the routes there are.
pub async fn no_route() -> ApiError {
    ApiError::not_found(
        "no such route; see /v2, /v2/models/{name}[/versions/{version}][/ready|/infer], \
         /v2/health/live|ready, /v1/predict",
    )
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(
    State(s): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    infer_on(&s, &name, None, &headers, body).await
}

/// `POST /v2/models/{name}/versions/{version}/infer`.
pub async fn infer_version(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    infer_on(&s, &name, Some(&version), &headers, body).await
}

async fn infer_on(
    s: &Server,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Answer {
    let bytes = read_body(headers, body, s.settings.max_body_bytes).await?;
    let req: InferRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed inference request JSON: {e}")))?;
    let key = req.key().map(str::to_owned).or_else(|| header_key(headers));
    let serving = s.models.current();
    let chosen = resolve(&serving, name, version, key.as_deref().map(str::as_bytes))?;
    let model = chosen.pipeline.model();
    let (want_probabilities, want_label) =
        oip::wanted_outputs(&req).map_err(ApiError::bad_request)?;
    let rows = oip::rows(&req, model, s.settings.max_rows).map_err(ApiError::bad_request)?;
    let n = rows.len();
    let prepared = prepare_rows(&chosen.pipeline, rows).await?;
    let results = score(s, &chosen, prepared).await?;
    let labels = model.labels();
    let mut outputs = Vec::new();
    if want_probabilities {
        let mut parameters = Map::new();
        parameters.insert("labels".into(), Value::from(labels.to_vec()));
        outputs.push(ResponseOutput {
            name: oip::PROBABILITIES.into(),
            shape: vec![n, labels.len()],
            datatype: oip::FP32,
            parameters: Some(parameters),
            data: TensorData::Fp32(
                results
                    .iter()
                    .flat_map(|c| c.probabilities.iter().copied())
                    .collect(),
            ),
        });
    }
    if want_label {
        outputs.push(ResponseOutput {
            name: oip::LABEL.into(),
            shape: vec![n],
            datatype: oip::BYTES,
            parameters: None,
            data: TensorData::Bytes(
                results
                    .iter()
                    .map(|c| {
                        let top = c.ranking.first().copied().unwrap_or(0);
                        labels.get(top).cloned().unwrap_or_else(|| top.to_string())
                    })
                    .collect(),
            ),
        });
    }
    let r = model.model_ref();
    let mut parameters = Map::new();
    parameters.insert("role".into(), Value::from(chosen.role.as_str()));
    Ok(json(&InferResponse {
        model_name: r.name.clone(),
        model_version: r.version.clone(),
        id: req.id,
        parameters,
        outputs,
    }))
}

/// Rows as the model's prepared inputs: tensors as they are, records through the bundle's
/// feature assembly (the worker's).
async fn prepare_rows(pipeline: &Pipeline, rows: Rows) -> Result<Vec<Prepared>, ApiError> {
    match rows {
        Rows::Tensors(t) => Ok(t
            .into_iter()
            .map(|data| Prepared {
                data,
                decode_us: 0,
                preprocess_us: 0,
            })
            .collect()),
        Rows::Records(records) => records
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let record = argus_wire::bare::json_record(text)
                    .map_err(|e| ApiError::bad_request(format!("record {i}: {e}")))?;
                pipeline
                    .model()
                    .prepare(&Payload::Record(record))
                    .map_err(|e| failure_error(&format!("record {i}: {e}"), e.failure_kind()))
            })
            .collect(),
    }
}

/// Scores prepared rows on the inference stage (batched with other requests' rows).
async fn score(
    s: &Server,
    chosen: &Chosen,
    prepared: Vec<Prepared>,
) -> Result<Vec<Classification>, ApiError> {
    let stage = s.stage()?;
    let model = chosen.pipeline.model();
    let replies: Vec<_> = prepared
        .into_iter()
        .map(|p| stage.submit(model.clone(), p))
        .collect();
    let r = model.model_ref();
    let mut out = Vec::with_capacity(replies.len());
    for reply in replies {
        match reply.await {
            Ok(Ok(c)) => out.push(c),
            Ok(Err(f)) => return Err(failure_error(&f.detail, f.kind)),
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the inference stage stopped",
                ))
            }
        }
        metrics::counter!(m::MODEL_INPUTS, "model" => r.name.clone(), "version" => r.version.clone(), "role" => chosen.role.as_str())
            .increment(1);
    }
    Ok(out)
}

/// The HTTP error of an input the pipeline could not score.
fn failure_error(detail: &str, kind: FailureKind) -> ApiError {
    let status = match kind {
        FailureKind::Oversize => StatusCode::PAYLOAD_TOO_LARGE,
        FailureKind::Model => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        FailureKind::Decode | FailureKind::Schema | FailureKind::Shape | FailureKind::Feature => {
            StatusCode::BAD_REQUEST
        }
    };
    ApiError::new(status, format!("{kind}: {detail}"))
}

fn header_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `POST /v1/predict`: the production (or canary, by key) version.
pub async fn predict(State(s): State<Arc<Server>>, headers: HeaderMap, body: Body) -> Answer {
    let name = s
        .models
        .current()
        .production
        .model()
        .model_ref()
        .name
        .clone();
    predict_on(&s, &name, None, &headers, body).await
}

/// `POST /v1/models/{name}/predict`.
pub async fn predict_model(
    State(s): State<Arc<Server>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    predict_on(&s, &name, None, &headers, body).await
}

/// `POST /v1/models/{name}/versions/{version}/predict`.
pub async fn predict_version(
    State(s): State<Arc<Server>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    predict_on(&s, &name, Some(&version), &headers, body).await
}

/// A JPEG, PNG or JSON record in, through the worker's prepare → infer → render; the
/// prediction JSON (`argus.prediction/v1`) out. Its input reference is topic `http`,
/// partition 0, offset = this server's request sequence, key = the `argus-key` header.
async fn predict_on(
    s: &Server,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Answer {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if BareKind::from_content_type(&content_type).is_none() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {content_type:?}: send image/jpeg, image/png or application/json (a record)"
            ),
        ));
    }
    let bytes = read_body(headers, body, s.settings.max_body_bytes).await?;
    let key = header_key(headers);
    let chosen = resolve(
        &s.models.current(),
        name,
        version,
        key.as_deref().map(str::as_bytes),
    )?;
    let job = Job {
        topic: "http".into(),
        partition: 0,
        offset: s.sequence.fetch_add(1, Ordering::Relaxed),
        key: key.map(String::into_bytes),
        value: Arc::from(&bytes[..]),
        headers: vec![RawHeader {
            name: b"content-type".to_vec(),
            value: Some(content_type.into_bytes()),
        }],
        timestamp_ms: Some(argus_wire::now_us() / 1000),
        received: Instant::now(),
    };
    let pipeline = chosen.pipeline.clone();
    let (job, prepared) = if pipeline.model().cheap_to_prepare() {
        let p = pipeline.prepare(&job);
        (job, p)
    } else {
        tokio::task::spawn_blocking(move || {
            let p = pipeline.prepare(&job);
            (job, p)
        })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("preparing the input failed: {e}"),
            )
        })?
    };
    let outcome = match prepared {
        Prepare::Ready(ready) => {
            let result = score(s, &chosen, vec![ready.prepared.clone()])
                .await?
                .pop()
                .ok_or_else(|| Failure {
                    kind: FailureKind::Model,
                    detail: "no output".into(),
                });
            classified(ready, result)
        }
        Prepare::Stale(stale) => crate::outputs::Outcome::Stale(stale),
        Prepare::Failed(f) => return Err(failure_error(&f.detail, f.kind)),
    };
    match chosen.pipeline.render(&job, &outcome) {
        Rendered::Outputs(o) => Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            o.prediction,
        )
            .into_response()),
        Rendered::DeadLetter(f) => Err(failure_error(&f.detail, f.kind)),
    }
}
