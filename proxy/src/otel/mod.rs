//! A span per statement (`[tracing]`): which node served it, why, how long
//! it waited for a fresh replica and for a pooled connection, and how it
//! ended — joined to the application's trace when the statement carries a
//! sqlcommenter `traceparent`.
//!
//! The OpenTelemetry API and SDK are used directly rather than through
//! `tracing-opentelemetry`: the data path holds an `Option<StatementTracer>`
//! and, when it is `None`, does nothing per statement (no span, no
//! subscriber dispatch, no allocation). When it is `Some`, the sampler
//! decides as the statement is forwarded; an unsampled statement keeps
//! nothing. Spans are exported by the SDK's batch processor on its own
//! thread (see `export`), so the data path never waits for the collector.

mod export;
mod note;
mod span;
pub mod traceparent;

pub use note::{Decision, TraceNote};
pub use span::{Routed, StatementSpan};

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};

use crate::config::TracingConfig;

/// How long one export may take before the batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Spans queued for export at most; beyond, new ones are dropped (the
/// data path never waits for the collector).
const MAX_QUEUE: usize = 8192;
/// How often queued spans are sent.
const EXPORT_INTERVAL: Duration = Duration::from_millis(500);

/// The tracer pgrelay's workers start statement spans with.
#[derive(Clone)]
pub struct StatementTracer {
    tracer: SdkTracer,
    /// `[tracing] statement_text`.
    statement_text: bool,
    /// `sample_ratio = 0`: statements without a sampled parent are left
    /// out before the SDK is asked (the sampler would say no).
    roots_off: bool,
}

impl StatementTracer {
    /// Whether spans carry the statement's text.
    pub fn keeps_text(&self) -> bool {
        self.statement_text
    }
}

impl fmt::Debug for StatementTracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatementTracer")
            .field("statement_text", &self.statement_text)
            .finish_non_exhaustive()
    }
}

/// Tracing of one running proxy: the provider (to flush at shutdown) and
/// the tracer the workers share.
pub struct Tracing {
    provider: SdkTracerProvider,
    pub tracer: StatementTracer,
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing")
            .field("tracer", &self.tracer)
            .finish_non_exhaustive()
    }
}

impl Tracing {
    /// Builds the exporter and its thread from `[tracing]`.
    pub fn start(config: &TracingConfig) -> Result<Tracing, String> {
        let client = export::OwnRuntimeClient::new(EXPORT_TIMEOUT)
            .map_err(|e| format!("starting the span exporter's runtime: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.otlp_endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("building the OTLP exporter: {e}"))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUE)
            .with_scheduled_delay(EXPORT_INTERVAL)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        Ok(Tracing::with_processor(config, processor))
    }

    /// Builds the provider around `processor` (tests pass one with an
    /// in-memory exporter).
    pub fn with_processor(
        config: &TracingConfig,
        processor: impl opentelemetry_sdk::trace::SpanProcessor + 'static,
    ) -> Tracing {
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio.0)));
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = StatementTracer {
            tracer: provider.tracer("pgrelay"),
            statement_text: config.statement_text,
            roots_off: config.sample_ratio.0 <= 0.0,
        };
        Tracing { provider, tracer }
    }

    /// Sends what is queued and stops the exporter (at most the export
    /// timeout; the proxy has stopped serving by then).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "span exporter shutdown");
        }
    }
}

#[cfg(test)]
mod tests;
