//! Sending spans: OTLP/HTTP protobuf through hyper, on the batch span
//! processor's own thread. The SDK's batch thread polls the export with a
//! plain executor; hyper needs a tokio reactor, so the client brings a
//! small runtime of its own and blocks that thread (never a data-path
//! thread) on it.

use std::fmt;
use std::time::Duration;

use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

/// hyper's client on a current-thread runtime of its own.
pub(super) struct OwnRuntimeClient {
    /// `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    inner: HyperClient,
}

impl OwnRuntimeClient {
    pub(super) fn new(timeout: Duration) -> std::io::Result<OwnRuntimeClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(OwnRuntimeClient {
            runtime: Some(runtime),
            inner: HyperClient::with_default_connector(timeout, None),
        })
    }
}

impl fmt::Debug for OwnRuntimeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnRuntimeClient")
    }
}

impl Drop for OwnRuntimeClient {
    /// Dropping a runtime where blocking is not allowed panics; the last
    /// reference may go on any thread.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for OwnRuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("the exporter is shutting down")?;
        runtime.block_on(self.inner.send_bytes(request))
    }
}
