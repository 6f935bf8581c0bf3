//! What connectors need to emit OpenTelemetry database client spans: the facts about the
//! database a repository talks to, fixed at connection time, and the span itself.
//!
//! Spans are plain `tracing` spans whose field names follow the OpenTelemetry semantic
//! conventions; the service decides whether anything records them. With no subscriber
//! interested, [`DbAttributes::span`] returns a disabled span and formats nothing.

use tracing::field::Empty;

/// The database a repository runs statements on: the `db.*` and `server.*` attributes of
/// its spans. Built once when the connector opens; never holds a URL or a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbAttributes {
    /// `db.system.name`: `sqlite`, `postgresql`, `mysql`, `mariadb`,
    /// `microsoft.sql_server` or `mongodb`.
    pub system: &'static str,
    /// `db.namespace`: the database (and schema, as `database|schema`) or file name.
    pub namespace: Option<String>,
    /// `server.address`: the host name or IP the connector dialled.
    pub server_address: Option<String>,
    /// `server.port`.
    pub server_port: Option<u16>,
}

impl DbAttributes {
    /// A target of `system` with nothing else known.
    pub fn new(system: &'static str) -> Self {
        Self {
            system,
            namespace: None,
            server_address: None,
            server_port: None,
        }
    }

    /// Sets `db.namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets `server.address` and `server.port`.
    pub fn server(mut self, address: impl Into<String>, port: u16) -> Self {
        self.server_address = Some(address.into());
        self.server_port = Some(port);
        self
    }

    /// A client span for one statement: `operation` (`SELECT`, `find`, …) on `collection`.
    /// `query` renders `db.query.text` (parameterised, never a bound value) and is only
    /// called when the span is recorded.
    pub fn span(
        &self,
        operation: &'static str,
        collection: &str,
        query: impl FnOnce() -> String,
    ) -> tracing::Span {
        let span = tracing::info_span!(
            target: "manifold::db",
            "db",
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = self.system,
            db.namespace = Empty,
            db.collection.name = Empty,
            db.operation.name = operation,
            db.query.text = Empty,
            db.response.status_code = Empty,
            server.address = Empty,
            server.port = Empty,
            error.type = Empty,
        );
        if span.is_disabled() {
            return span;
        }
        span.record("otel.name", format!("{operation} {collection}"));
        span.record("db.collection.name", collection);
        span.record("db.query.text", query());
        if let Some(namespace) = &self.namespace {
            span.record("db.namespace", namespace.as_str());
        }
        if let Some(address) = &self.server_address {
            span.record("server.address", address.as_str());
        }
        if let Some(port) = self.server_port {
            span.record("server.port", port);
        }
        span
    }
}

/// Marks `span` failed: `otel.status_code` error, `error.type` (a low-cardinality class
/// such as a SQLSTATE or a driver error kind) and, when the database gave one,
/// `db.response.status_code`.
pub fn record_error(span: &tracing::Span, error_type: &str, status_code: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "error");
    span.record("error.type", error_type);
    if let Some(code) = status_code {
        span.record("db.response.status_code", code);
    }
}

/// `error.type` for a core error: its kind, in snake case (`bad_request`, `timeout`, …).
pub fn error_type(kind: crate::error::ErrorKind) -> &'static str {
    use crate::error::ErrorKind;
    match kind {
        ErrorKind::BadRequest => "bad_request",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::Conflict => "conflict",
        ErrorKind::PayloadTooLarge => "payload_too_large",
        ErrorKind::TooManyRequests => "too_many_requests",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Internal => "internal",
    }
}

/// A connection pool's occupancy, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open (idle and in use).
    pub size: u32,
    /// Connections checked out by a running operation.
    pub in_use: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_without_subscriber_is_disabled_and_renders_no_query() {
        let target = DbAttributes::new("sqlite").namespace("main");
        let span = target.span("SELECT", "posts", || {
            unreachable!("the query text is rendered only for a recorded span")
        });
        assert!(span.is_disabled());
        record_error(&span, "23505", Some("23505"));
    }
}
