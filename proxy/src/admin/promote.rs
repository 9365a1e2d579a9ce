//! `POST /promote/{node}`: manual promotion of a replica. It comes with
//! failover (a later issue); until then it says so instead of pretending.

use hyper::{Response, StatusCode};
use serde::Serialize;

use super::response::{self, Body};

#[derive(Debug, Serialize)]
struct Refusal<'a> {
    node: &'a str,
    error: &'static str,
}

pub fn respond(node: &str) -> Response<Body> {
    response::json(
        StatusCode::NOT_IMPLEMENTED,
        &Refusal {
            node,
            error: "manual promotion is not implemented yet: it comes with failover",
        },
    )
}
