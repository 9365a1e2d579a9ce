//! Building the admin server's responses: every body is complete before it
//! is sent (`Full`), with an explicit `Content-Type`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tracing::error;

pub type Body = Full<Bytes>;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// A body of `content_type` with `status`.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A one-line plain-text answer (a newline is appended).
pub fn text(status: StatusCode, line: &str) -> Response<Body> {
    with_type(status, TEXT, Bytes::from(format!("{line}\n")))
}

/// `value` as JSON.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, JSON, Bytes::from(body)),
        Err(e) => {
            error!(error = %e, "cannot serialize an admin response");
            internal_error()
        }
    }
}

/// A state-changing call refused: 401 with a `WWW-Authenticate`
/// challenge for a missing or wrong token, 403 otherwise.
pub fn refused(refusal: super::guard::Refusal) -> Response<Body> {
    use super::guard::Refusal;
    let body = serde_json::json!({ "error": refusal.reason() });
    match refusal {
        Refusal::BadToken => {
            let mut response = json(StatusCode::UNAUTHORIZED, &body);
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pgrelay\""),
            );
            response
        }
        Refusal::CrossOrigin | Refusal::NotLocal => json(StatusCode::FORBIDDEN, &body),
    }
}

pub fn internal_error() -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the pgrelay log",
    )
}

pub fn not_found(path: &str) -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        &format!("no such endpoint: {path} (try /, /status, /healthz or /metrics)"),
    )
}

/// 405 with the `Allow` header RFC 9110 asks for (`allowed`: its value).
pub fn method_not_allowed(allowed: &'static str) -> Response<Body> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed; use {allowed}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    response
}
