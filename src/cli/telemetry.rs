//! Logging, and the optional export of spans to an OpenTelemetry collector.
//!
//! Log lines go to stderr as text or JSON (`--log-format`), written by a background thread from
//! a bounded queue (lines past 128 000 waiting are dropped rather than blocking a request), with
//! ANSI colours only when stderr is a terminal. When `telemetry.otlp_endpoint` is
//! set, `serve` also exports every span (a request's `request` span with its id, method and
//! route; a call's `call` span with its run id and tenant) over OTLP/HTTP in batches, from the
//! batch processor's own thread. Nothing is exported, and nothing needs installing, by default.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the spans it is in.
    Json,
}

/// Flushes exported spans and queued log lines when dropped (at the end of `main`).
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
    _lines: tracing_appender::non_blocking::WorkerGuard,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: flushing spans to the OTLP collector failed: {error}");
        }
    }
}

/// The collector URL spans are posted to: `/v1/traces` under the base URL.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    match base.ends_with("/v1/traces") {
        true => base.to_owned(),
        false => format!("{base}/v1/traces"),
    }
}

/// Installs the global subscriber: `default_filter` unless `RUST_LOG` says otherwise, lines
/// in `format`, and spans exported to `otlp_endpoint` when one is given.
///
/// # Errors
/// When the OTLP exporter cannot be built (a malformed endpoint).
pub(crate) fn init(
    format: LogFormat,
    default_filter: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    let (writer, lines_guard) = tracing_appender::non_blocking(stderr);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().boxed(),
    };
    let provider = otlp_endpoint
        .map(|endpoint| {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(traces_url(endpoint))
                .build()
                .context("building the OTLP exporter")?;
            anyhow::Ok(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name("warden")
                            .build(),
                    )
                    .build(),
            )
        })
        .transpose()?;
    let spans = provider
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("warden")));
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(spans)
        .init();
    Ok(Telemetry {
        provider,
        _lines: lines_guard,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_go_to_v1_traces_under_the_endpoint() {
        assert_eq!(
            super::traces_url("http://c:4318"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://c:4318/"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            super::traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
