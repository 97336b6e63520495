//! Logs and traces: the `tracing` subscriber (text or JSON logs on stderr) and, when the
//! standard `OTEL_*` variables ask for it, an OpenTelemetry layer exporting spans over OTLP/gRPC.
//!
//! Tracing is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set, and
//! stays off with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The exporter, the
//! sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) and the resource
//! (`OTEL_SERVICE_NAME`, default `reredis`; `OTEL_RESOURCE_ATTRIBUTES`) read their variables
//! themselves. Spans: one per HTTP request; the RESP command path creates none, so commands
//! pay nothing for tracing.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{ExporterBuildError, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Keeps the exporter alive; dropping it flushes the spans still buffered.
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("reredis: flushing traces failed: {e}");
        }
    }
}

/// Whether the environment asks for traces.
pub fn otlp_requested(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let no_exporter =
        env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !disabled
        && !no_exporter
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Otlp {
    Off,
    /// Endpoint and options from the `OTEL_*` variables.
    FromEnv,
    /// This endpoint (`http://host:4317`), other options from the environment.
    Endpoint(String),
}

fn otlp_provider(otlp: &Otlp) -> Result<Option<SdkTracerProvider>, ExporterBuildError> {
    let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    let exporter = match otlp {
        Otlp::Off => return Ok(None),
        Otlp::FromEnv => builder.build()?,
        Otlp::Endpoint(e) => builder.with_endpoint(e.clone()).build()?,
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("reredis");
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

/// Installs the global subscriber, exporting traces when the environment asks for them.
/// `level` is Redis's `loglevel`; `RUST_LOG` overrides it. Call inside a Tokio runtime (the
/// OTLP exporter runs on it).
pub fn init(format: &str, level: &str) -> Guard {
    let otlp = if otlp_requested(|k| std::env::var(k).ok()) {
        Otlp::FromEnv
    } else {
        Otlp::Off
    };
    install(format, level, otlp)
}

/// [`init`] with the span destination given.
pub fn install(format: &str, level: &str, otlp: Otlp) -> Guard {
    let level = match level {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (provider, failure) = match otlp_provider(&otlp) {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("reredis")));
    if let Err(e) = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
    {
        eprintln!("reredis: logging was already set up: {e}");
    }
    if let Some(e) = failure {
        ::tracing::error!("OpenTelemetry: cannot set up the OTLP exporter, traces are off: {e}");
    } else if provider.is_some() {
        ::tracing::info!("OpenTelemetry: exporting traces over OTLP");
    }
    Guard { provider }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_set() {
        assert!(!otlp_requested(env(&[])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4317"
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4317"
        )])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }
}
