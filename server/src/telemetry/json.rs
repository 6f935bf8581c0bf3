//! One JSON object per log line, carrying the OpenTelemetry trace and span ids of the
//! request it was written in, so log lines and traces can be joined.

use std::fmt;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format: `timestamp`, `level`, `target`, `message`, the event's other
/// fields under `fields`, and `trace_id`/`span_id`/`span` inside a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

struct Fields<'a>(&'a mut Map<String, Json>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Json::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Json::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Json::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Json::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Json::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Json::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        let mut line = Map::new();
        line.insert("timestamp".into(), Json::from(timestamp));
        line.insert("level".into(), Json::from(meta.level().as_str()));
        line.insert("target".into(), Json::from(meta.target()));
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Json::Object(fields));
        }
        // The current span, as the OpenTelemetry layer sees it: the log layer itself
        // records no spans (see `Telemetry::init`).
        let current = tracing::Span::current();
        if let Some(span) = current.metadata() {
            line.insert("span".into(), Json::from(span.name()));
        }
        let context = current.context();
        let span_context = opentelemetry::trace::TraceContextExt::span(&context)
            .span_context()
            .clone();
        if span_context.is_valid() {
            line.insert(
                "trace_id".into(),
                Json::from(span_context.trace_id().to_string()),
            );
            line.insert(
                "span_id".into(),
                Json::from(span_context.span_id().to_string()),
            );
        }
        writeln!(writer, "{}", Json::Object(line))
    }
}
