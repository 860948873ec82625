//! The OIP v2 handlers of `argus serve`: health, metadata and infer (the convenience route
//! is in `predict`). Each request takes the serving set once and is answered by one
//! version ([`super::resolve`]); rows are prepared here and scored on the shared
//! inference stage.
use super::limits::{read_body, ApiError};
use super::oip::{self, InferRequest, Rows};
use super::{resolve, versions, Chosen, Server};
use crate::metrics as m;
use crate::pipeline::Pipeline;
use argus_model::{Classification, Prepared};
use argus_wire::{FailureKind, Payload};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The header carrying the canary routing key (a camera or customer id).
pub const KEY_HEADER: &str = "argus-key";

pub(super) type Answer = Result<Response, ApiError>;

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
pub(super) fn json<T: serde::Serialize>(value: &T) -> Response {
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
    let prepared = prepare_rows(&chosen.pipeline, rows).await?;
    let results = score(s, &chosen, prepared).await?;
    Ok(json(&oip::response(
        model,
        chosen.role.as_str(),
        req.id,
        &results,
        (want_probabilities, want_label),
    )))
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
                frame: None,
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
pub(super) async fn score(
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
pub(super) fn failure_error(detail: &str, kind: FailureKind) -> ApiError {
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

pub(super) fn header_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
