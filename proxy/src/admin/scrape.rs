//! `GET /metrics`: the proxy's registry in Prometheus text format.

use bytes::Bytes;
use hyper::{Response, StatusCode};
use tracing::error;

use super::response::{self, Body};
use crate::metrics::{CONTENT_TYPE, Metrics};

pub fn respond(metrics: &Metrics) -> Response<Body> {
    match metrics.encode() {
        Ok(text) => response::with_type(StatusCode::OK, CONTENT_TYPE, Bytes::from(text)),
        Err(e) => {
            error!(error = %e, "cannot encode the metrics");
            response::internal_error()
        }
    }
}
