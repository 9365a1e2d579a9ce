//! Which endpoint a request is for, and which method it takes.

use std::net::IpAddr;

use hyper::{HeaderMap, Method, Response};

use super::guard::authorize;
use super::response::{self, Body};
use super::{healthz, page, promote, scrape, status};
use crate::shared::Shared;

/// Who is asking: what [`authorize`] needs for calls that change state.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub peer: IpAddr,
    pub headers: &'a HeaderMap,
}

/// The admin endpoints. Each takes one method (and `HEAD` where that is
/// `GET`); any other gets 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /`: the HTML status page.
    Page,
    /// `GET /status`: the topology as JSON.
    Status,
    /// `GET /healthz`: 200 while a primary is routable, 503 otherwise.
    Healthz,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `POST /promote/{node}`: manual promotion of a replica.
    Promote { node: &'a str },
}

impl<'a> Route<'a> {
    /// The endpoint at `path` (without the query string), if any.
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        match path {
            "/" => Some(Route::Page),
            "/status" => Some(Route::Status),
            "/healthz" => Some(Route::Healthz),
            "/metrics" => Some(Route::Metrics),
            _ => {
                let node = path.strip_prefix("/promote/")?;
                (!node.is_empty() && !node.contains('/')).then_some(Route::Promote { node })
            }
        }
    }

    /// The methods the endpoint answers, as the `Allow` header lists them.
    /// `HEAD` goes with every `GET` (RFC 9110: a load balancer's or an
    /// uptime checker's probe); hyper sends its answer without the body.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Page | Route::Status | Route::Healthz | Route::Metrics => "GET, HEAD",
            Route::Promote { .. } => "POST",
        }
    }

    pub fn accepts(self, method: &Method) -> bool {
        match self {
            Route::Page | Route::Status | Route::Healthz | Route::Metrics => {
                *method == Method::GET || *method == Method::HEAD
            }
            Route::Promote { .. } => *method == Method::POST,
        }
    }

    /// Calls that change pgrelay's state need the admin's authority.
    pub fn changes_state(self) -> bool {
        match self {
            Route::Page | Route::Status | Route::Healthz | Route::Metrics => false,
            Route::Promote { .. } => true,
        }
    }
}

/// The answer to `method path`; a `HEAD` gets the `GET` answer whole, and
/// hyper leaves out its body but not its `Content-Length`. Every handler
/// but `/promote` reads state the proxy already holds and answers at once;
/// a promotion waits for the monitor's failover task.
pub async fn respond(
    method: &Method,
    path: &str,
    caller: Caller<'_>,
    shared: &Shared,
) -> Response<Body> {
    let Some(route) = Route::parse(path) else {
        return response::not_found(path);
    };
    if !route.accepts(method) {
        return response::method_not_allowed(route.allow());
    }
    if route.changes_state() {
        let config = shared.config();
        if let Err(refusal) = authorize(caller.peer, caller.headers, config.admin.token.as_ref()) {
            tracing::warn!(peer = %caller.peer, %path, reason = refusal.reason(),
                "admin call refused");
            return response::refused(refusal);
        }
    }
    match route {
        Route::Page => {
            let topology = shared.topology.load();
            let budget = page::Budget::from(&shared.config().routing);
            page::respond(&status::current(&topology), budget)
        }
        Route::Status => status::respond(
            &shared.topology.load(),
            shared.config().failover.synchronous.is_some(),
        ),
        Route::Healthz => healthz::respond(&shared.topology.load(), shared.drain.is_cancelled()),
        Route::Metrics => scrape::respond(&shared.metrics),
        Route::Promote { node } => promote::respond(node, shared).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hyper::StatusCode;
    use hyper::header::{ALLOW, CONTENT_TYPE};
    use pgrelay_health::{FailoverControl, NodeRole, NodeStatus, Topology, TopologyCell};

    use super::*;
    use crate::config::Config;

    fn shared() -> Shared {
        let config = Config::from_toml_str(
            "[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n[auth]\nmode = \"trust\"\n",
            &|_| None,
        )
        .expect("config");
        let topology = Topology::initial(vec![("pg1".into(), "127.0.0.1:5432".into())]);
        // No failover task: promotions find it gone, as while stopping.
        let (failover, _) = FailoverControl::channel();
        Shared::new(
            Arc::new(config),
            Arc::new(TopologyCell::new(topology)),
            failover,
        )
        .expect("shared")
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// A curl on this host.
    async fn respond(method: &Method, path: &str, shared: &Shared) -> Response<Body> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            hyper::header::HeaderValue::from_static("127.0.0.1:9187"),
        );
        let caller = Caller {
            peer: LOCAL,
            headers: &headers,
        };
        super::respond(method, path, caller, shared).await
    }

    fn primary_found(shared: &Shared) {
        let nodes = vec![NodeStatus {
            role: NodeRole::Primary,
            healthy: true,
            ..NodeStatus::new("pg1".into(), "127.0.0.1:5432".into())
        }];
        shared
            .topology
            .publish(shared.topology.load().with_nodes(nodes));
    }

    #[test]
    fn paths_map_to_routes() {
        assert_eq!(Route::parse("/"), Some(Route::Page));
        assert_eq!(Route::parse("/status"), Some(Route::Status));
        assert_eq!(Route::parse("/healthz"), Some(Route::Healthz));
        assert_eq!(Route::parse("/metrics"), Some(Route::Metrics));
        assert_eq!(
            Route::parse("/promote/pg2"),
            Some(Route::Promote { node: "pg2" })
        );
        for path in [
            "",
            "//",
            "/index.html",
            "/status/",
            "/promote/",
            "/promote/a/b",
            "/statusx",
        ] {
            assert_eq!(Route::parse(path), None, "{path:?}");
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_wrong_methods_405() {
        let shared = shared();
        let missing = respond(&Method::GET, "/nope", &shared).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let post = respond(&Method::POST, "/status", &shared).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        let get = respond(&Method::GET, "/promote/pg1", &shared).await;
        assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(get.headers()[ALLOW], "POST");
    }

    #[tokio::test]
    async fn each_endpoint_answers_with_its_content_type() {
        let shared = shared();
        let status = respond(&Method::GET, "/status", &shared).await;
        assert_eq!(status.status(), StatusCode::OK);
        assert_eq!(status.headers()[CONTENT_TYPE], "application/json");
        let page = respond(&Method::GET, "/", &shared).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let metrics = respond(&Method::GET, "/metrics", &shared).await;
        assert_eq!(metrics.status(), StatusCode::OK);
        assert_eq!(metrics.headers()[CONTENT_TYPE], prometheus::TEXT_FORMAT);
        let promote = respond(&Method::POST, "/promote/pg1", &shared).await;
        assert_eq!(promote.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(promote.headers()[CONTENT_TYPE], "application/json");
        let unknown = respond(&Method::POST, "/promote/pg9", &shared).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn head_answers_as_get_on_every_read() {
        let shared = shared();
        for path in ["/", "/status", "/healthz", "/metrics"] {
            let get = respond(&Method::GET, path, &shared).await;
            let head = respond(&Method::HEAD, path, &shared).await;
            assert_eq!(head.status(), get.status(), "{path}");
            assert_eq!(head.headers(), get.headers(), "{path}");
        }
        let promote = respond(&Method::HEAD, "/promote/pg1", &shared).await;
        assert_eq!(promote.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(promote.headers()[ALLOW], "POST");
    }

    #[tokio::test]
    async fn promote_is_guarded_and_reads_are_not() {
        let shared = shared();
        let remote = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));
        let headers = HeaderMap::new();
        let caller = Caller {
            peer: remote,
            headers: &headers,
        };
        let promote = super::respond(&Method::POST, "/promote/pg1", caller, &shared).await;
        assert_eq!(promote.status(), StatusCode::FORBIDDEN);
        let status = super::respond(&Method::GET, "/status", caller, &shared).await;
        assert_eq!(status.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn healthz_follows_the_primary_and_the_drain() {
        let shared = shared();
        let healthz = async || respond(&Method::GET, "/healthz", &shared).await.status();
        assert_eq!(healthz().await, StatusCode::SERVICE_UNAVAILABLE);
        primary_found(&shared);
        assert_eq!(healthz().await, StatusCode::OK);
        shared.drain.cancel();
        assert_eq!(healthz().await, StatusCode::SERVICE_UNAVAILABLE);
    }
}
