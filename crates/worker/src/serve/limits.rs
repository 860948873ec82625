//! The limits of `argus serve` and its error answers, so a request can neither crash nor
//! hang the server:
//!
//! - body larger than `max_body_bytes`: 413, from `Content-Length` before reading, or
//!   while reading a body sent without one ([`read_body`]);
//! - more than `max_concurrent` requests being answered: 429 with `Retry-After`, at once
//!   (no queue: the inference stage's batching is the only waiting);
//! - not answered within `request_timeout`: 504 (the body read counts: a client that sends
//!   slowly is cut off too).
//!
//! Every error is JSON `{"error": "..."}` ([`ApiError`]), logged at debug (client errors)
//! or warn (server side). [`observe`] counts every answer by route and status and times it.
use crate::metrics as m;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// An HTTP error answer: a status and what went wrong, sent as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
    /// `Retry-After`, seconds (429, 503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed or does not fit the model.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such model or version serving.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// Asks the client to retry after `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), error = %self.message, "request refused");
        }
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut resp = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// The concurrency and time limits, shared by every request.
#[derive(Debug)]
pub struct Limits {
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    timeout: Duration,
    retry_after: u32,
}

impl Limits {
    /// `max_concurrent` requests at once, each answered within `timeout`; a refused one is
    /// asked to retry after `retry_after` seconds.
    pub fn new(max_concurrent: usize, timeout: Duration, retry_after: u32) -> Self {
        Limits {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            timeout,
            retry_after,
        }
    }
}

/// Middleware of the inference routes: admits the request if a slot is free (else 429),
/// and answers 504 if it is not done within the timeout.
pub async fn admit(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
        metrics::counter!(m::SERVE_REJECTED, "reason" => "overloaded").increment(1);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "server busy: {} requests are being answered (serve.max_concurrent); retry later",
                limits.max_concurrent
            ),
        )
        .retry_after(limits.retry_after)
        .into_response();
    };
    let gauge = metrics::gauge!(m::SERVE_IN_FLIGHT);
    gauge.increment(1.0);
    let answer = tokio::time::timeout(limits.timeout, next.run(req)).await;
    gauge.decrement(1.0);
    drop(permit);
    match answer {
        Ok(resp) => resp,
        Err(_) => {
            metrics::counter!(m::SERVE_REJECTED, "reason" => "timeout").increment(1);
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "not answered within {:?} (serve.request_timeout)",
                    limits.timeout
                ),
            )
            .into_response()
        }
    }
}

/// Middleware of every route: counts the answer by route template and status, and times it.
pub async fn observe(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics::histogram!(m::SERVE_REQUEST_SECONDS, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        m::SERVE_REQUESTS,
        "route" => route,
        "code" => resp.status().as_str().to_owned()
    )
    .increment(1);
    resp
}

/// Reads a request body of at most `max` bytes: 413 if `Content-Length` says more, or
/// once more arrives; 400 if the body cannot be read.
pub async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let too_large = |what: String| {
        metrics::counter!(m::SERVE_REJECTED, "reason" => "body_too_large").increment(1);
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what}; at most {max} bytes are accepted (serve.max_body_bytes)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > max as u64) {
        return Err(too_large(format!("request body of {n} bytes")));
    }
    // One byte over the limit tells "too large" from "exactly the limit".
    match axum::body::to_bytes(body, max.saturating_add(1)).await {
        Ok(b) if b.len() > max => Err(too_large("request body too large".into())),
        Ok(b) => Ok(b),
        // `to_bytes` fails on the limit or on a broken transfer; without a declared
        // length, running past the limit is the likely one.
        Err(e) if declared.is_none() => Err(too_large(format!(
            "request body unreadable or too large ({e})"
        ))),
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_and_at_the_limit_are_read() {
        let none = HeaderMap::new();
        let b = read_body(&none, Body::from(vec![1u8; 10]), 10)
            .await
            .unwrap();
        assert_eq!(b.len(), 10);
        let e = read_body(&none, Body::from(vec![1u8; 11]), 10)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, HeaderValue::from(1_000_000u32));
        let e = read_body(&declared, Body::empty(), 10).await.unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.message.contains("1000000 bytes"), "{}", e.message);
    }

    #[tokio::test]
    async fn errors_are_json_with_retry_after_when_asked() {
        let resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy")
            .retry_after(2)
            .into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(resp.into_body(), 1000).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"error": "busy"}));
    }
}
