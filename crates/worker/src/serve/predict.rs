//! The convenience route of `argus serve`: `POST /v1/predict` (and per model or version), a
//! JPEG, PNG or JSON record in, Argus's prediction JSON (`argus.prediction/v1`) out, through
//! the worker's prepare (the body read as a bare Kafka value), the shared inference stage and
//! the worker's rendering.
use super::limits::{read_body, ApiError};
use super::routes::{failure_error, header_key, score, Answer};
use super::{resolve, Server};
use crate::job::{Failure, Job, Prepare};
use crate::outputs::{Outcome, Rendered};
use crate::pipeline::{classified, Pipeline};
use argus_kafka::RawHeaders;
use argus_wire::{BareKind, FailureKind};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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
    let offset = s.sequence.fetch_add(1, Ordering::Relaxed);
    let job = http_job(offset, key, content_type, &bytes);
    let (job, prepared) = prepare(chosen.pipeline.clone(), job).await?;
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
        Prepare::Stale(stale) => Outcome::Stale(stale),
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

/// A request body as the worker's input: topic `http`, partition 0, `offset`, the key, the
/// body as a bare value of `content_type`, received now.
fn http_job(offset: i64, key: Option<String>, content_type: String, body: &[u8]) -> Job {
    Job {
        topic: "http".into(),
        partition: 0,
        offset,
        key: key.map(String::into_bytes),
        value: Arc::from(body),
        headers: RawHeaders::from_pairs([(&b"content-type"[..], Some(content_type.as_bytes()))]),
        timestamp_ms: Some(argus_wire::now_us() / 1000),
        received: Instant::now(),
    }
}

/// The worker's stage 1 for `job`: inline for records (microseconds), on the blocking pool
/// for images (decode and resize), as the worker runs it.
async fn prepare(pipeline: Arc<Pipeline>, job: Job) -> Result<(Job, Prepare), ApiError> {
    if pipeline.model().cheap_to_prepare() {
        let p = pipeline.prepare(&job);
        return Ok((job, p));
    }
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
    })
}
