//! Logs, traces and metrics.
//!
//! [`Telemetry::init`] installs the process's `tracing` subscriber: log lines (text or
//! JSON) filtered by `--log`, and, when the standard `OTEL_*` variables ask for it, an
//! OpenTelemetry layer that exports the request spans over OTLP. With no OTLP variable
//! set and text logs, no span is ever created: every span callsite is disabled.
//! [`Metrics`] holds the Prometheus registry served at `/metrics`.

mod json;
mod metrics;

use std::fmt;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use json::JsonLines;
pub use metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics};

/// How log lines are written to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (`tracing_subscriber`'s default format).
    #[default]
    Text,
    /// One JSON object per line, with `trace_id` and `span_id` inside a request.
    Json,
}

/// The OTLP transport, from `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
/// `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `grpc` (port 4317 by convention).
    Grpc,
    /// `http/protobuf`, the specification's default (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

/// Why telemetry could not be set up; the service refuses to start rather than run
/// without the traces it was asked for.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An `OTEL_*` variable has a value this build does not support.
    #[error("{variable}={value:?} is not supported ({expected})")]
    Unsupported {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// Another subscriber was installed first.
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// Reads whether and how spans are exported, from the standard variables (`env` looks
/// one up; the binary passes the process environment). `None`: no exporter.
///
/// Export is on when `OTEL_TRACES_EXPORTER=otlp`, or when an OTLP endpoint variable is
/// set and `OTEL_TRACES_EXPORTER` is unset; `OTEL_SDK_DISABLED=true` and
/// `OTEL_TRACES_EXPORTER=none` turn it off whatever else is set.
pub fn export_protocol(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Protocol>, TelemetryError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let wanted = match var("OTEL_TRACES_EXPORTER") {
        Some(v) if v.eq_ignore_ascii_case("none") => return Ok(None),
        Some(v) if v.eq_ignore_ascii_case("otlp") => true,
        Some(value) => {
            return Err(TelemetryError::Unsupported {
                variable: "OTEL_TRACES_EXPORTER",
                value,
                expected: "otlp or none",
            });
        }
        None => {
            var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
                || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        }
    };
    if !wanted {
        return Ok(None);
    }
    let (variable, value) = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
        Some(v) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", v),
        None => match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(v) => ("OTEL_EXPORTER_OTLP_PROTOCOL", v),
            None => return Ok(Some(Protocol::HttpProtobuf)),
        },
    };
    match value.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Some(Protocol::Grpc)),
        "http/protobuf" => Ok(Some(Protocol::HttpProtobuf)),
        _ => Err(TelemetryError::Unsupported {
            variable,
            value,
            expected: "grpc or http/protobuf",
        }),
    }
}

/// The installed subscriber's exporting half; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    protocol: Option<Protocol>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

/// Only Manifold's spans (and its warnings, as span events) go to OpenTelemetry: driver
/// internals and per-statement debug logs would only add noise and cost.
fn exported(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("manifold") && (meta.is_span() || *meta.level() <= Level::WARN)
}

impl Telemetry {
    /// Installs the global subscriber: log lines at `log` (an `EnvFilter` directive) in
    /// `format` on standard output, and OTLP export as the `OTEL_*` variables of `env` say.
    /// Must run inside the Tokio runtime (the gRPC exporter needs it).
    pub fn init(
        log: &EnvFilter,
        format: LogFormat,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        Self::install(log, format, env, false)
    }

    /// [`Telemetry::init`] with the log lines on standard error: a `manifold` subcommand's
    /// standard output is its answer (an API key, a list), which a script reads.
    pub(crate) fn init_on_stderr(
        log: &EnvFilter,
        format: LogFormat,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        Self::install(log, format, env, true)
    }

    fn install(
        log: &EnvFilter,
        format: LogFormat,
        env: impl Fn(&str) -> Option<String>,
        on_stderr: bool,
    ) -> Result<Self, TelemetryError> {
        let writer = move || -> tracing_subscriber::fmt::writer::BoxMakeWriter {
            if on_stderr {
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
            } else {
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
            }
        };
        let protocol = export_protocol(&env)?;
        // JSON lines carry trace ids, which exist only where spans are recorded; without
        // an exporter the provider records them and sends them nowhere.
        let provider = match (protocol, format) {
            (Some(protocol), _) => Some(provider(Some(protocol), &env)?),
            (None, LogFormat::Json) => Some(provider(None, &env)?),
            (None, LogFormat::Text) => None,
        };
        // Log lines are events only: spans are for OpenTelemetry, and a log layer that
        // enabled them would build every span even with export off.
        // The hint keeps `log`'s level as the whole filter's: without one, `and` has none,
        // the process's maximum level becomes TRACE, and every driver's debug log
        // (sqlx formats a summary of each statement) is checked and built for nothing.
        let events = log
            .clone()
            .and(filter_fn(|meta| meta.is_event()).with_max_level_hint(LevelFilter::TRACE));
        let logs = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(writer())
                .with_filter(events)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .with_writer(writer())
                .event_format(JsonLines)
                .with_filter(events)
                .boxed(),
        };
        let spans = provider.as_ref().map(|p| {
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("manifold"))
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_level(false)
                .with_target(false)
                .with_filter(filter_fn(exported))
        });
        // Not `.with(spans)` with `spans` an `Option`: a `None` layer answers every callsite
        // with `Interest::always()`, which turns the log layer's "never" for spans into
        // "sometimes" and builds every span of every request with export off.
        match spans {
            Some(spans) => Registry::default().with(logs).with(spans).try_init()?,
            None => Registry::default().with(logs).try_init()?,
        }
        Ok(Self { provider, protocol })
    }

    /// Whether spans are exported, and how.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// Sends the spans still queued and stops the exporter (on shutdown).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("manifold: flushing traces failed: {e}");
        }
    }
}

/// The tracer provider: the batch exporter for `protocol` (endpoint, headers and timeout
/// from the exporter's own `OTEL_EXPORTER_OTLP_*` variables), or none.
fn provider(
    protocol: Option<Protocol>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    // OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins when set.
    let named = env("OTEL_SERVICE_NAME").is_some_and(|v| !v.trim().is_empty())
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name("manifold");
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    let builder = match protocol {
        Some(Protocol::Grpc) => builder.with_batch_exporter(
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()?,
        ),
        Some(Protocol::HttpProtobuf) => builder.with_batch_exporter(
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()?,
        ),
        None => builder,
    };
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(vars: &[(&str, &str)]) -> Result<Option<Protocol>, TelemetryError> {
        export_protocol(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn export_is_off_unless_an_endpoint_or_the_otlp_exporter_is_named() {
        assert_eq!(protocol(&[]).ok().flatten(), None);
        assert_eq!(protocol(&[("OTEL_SERVICE_NAME", "x")]).ok().flatten(), None);
        assert_eq!(
            protocol(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
                .ok()
                .flatten(),
            Some(Protocol::HttpProtobuf)
        );
        assert_eq!(
            protocol(&[("OTEL_TRACES_EXPORTER", "otlp")]).ok().flatten(),
            Some(Protocol::HttpProtobuf)
        );
    }

    #[test]
    fn disabling_variables_win_over_an_endpoint() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(protocol(&[endpoint, off]).ok().flatten(), None, "{off:?}");
        }
    }

    #[test]
    fn the_protocol_variable_picks_the_transport_and_bad_values_are_refused() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        assert_eq!(
            protocol(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
                .ok()
                .flatten(),
            Some(Protocol::Grpc)
        );
        assert_eq!(
            protocol(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ])
            .ok()
            .flatten(),
            Some(Protocol::HttpProtobuf)
        );
        assert!(protocol(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).is_err());
        assert!(protocol(&[("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
    }
}
