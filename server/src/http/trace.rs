//! The HTTP server span of a request, with the stable HTTP semantic-convention attributes,
//! continuing the caller's trace when a W3C `traceparent` header names one.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use poem::Request;
use poem::http::{HeaderMap, Method, Version, header};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::Answer;

/// `http.request.method`: the method if it is one of the standard ones, else `_OTHER`
/// (the semantic conventions' rule, which keeps the attribute and the metric label small).
pub(super) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The server span of `req`, named `{method}` until the route is known. Disabled (and
/// costing nothing more) when no subscriber records spans. The query string is left out:
/// it carries filter values.
pub(super) fn server_span(req: &Request, method: &'static str) -> Span {
    let span = tracing::info_span!(
        target: "manifold::http",
        "http.server",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.request.method_original = Empty,
        http.route = Empty,
        http.response.status_code = Empty,
        url.path = Empty,
        url.scheme = "http",
        server.address = Empty,
        server.port = Empty,
        client.address = Empty,
        client.port = Empty,
        network.peer.address = Empty,
        network.protocol.version = Empty,
        user_agent.original = Empty,
        error.type = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    if method == "_OTHER" {
        span.record("http.request.method_original", req.method().as_str());
    }
    span.record("url.path", req.uri().path());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(split_host);
    let local = req.local_addr().as_socket_addr().copied();
    match host {
        Some((address, port)) => {
            span.record("server.address", address);
            if let Some(port) = port.or(local.map(|a| a.port())) {
                span.record("server.port", port);
            }
        }
        None => {
            if let Some(local) = local {
                span.record("server.address", local.ip().to_string());
                span.record("server.port", local.port());
            }
        }
    }
    if let Some(peer) = req.remote_addr().as_socket_addr() {
        let ip = peer.ip().to_string();
        span.record("client.address", ip.as_str());
        span.record("network.peer.address", ip.as_str());
        span.record("client.port", peer.port());
    }
    span.record(
        "network.protocol.version",
        match req.version() {
            Version::HTTP_09 => "0.9",
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            Version::HTTP_3 => "3",
            _ => "1.1",
        },
    );
    if let Some(agent) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        span.record("user_agent.original", agent);
    }
    let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed, and then there is no
        // trace to continue.
        let _ = span.set_parent(parent);
    }
    span
}

/// `host[:port]` (or `[v6]:port`) from a `Host` header.
fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => match port.parse() {
            Ok(port) => (name, Some(port)),
            Err(_) => (host, None),
        },
        None => (host, None),
    }
}

/// Records the outcome on the server span: status, route (and the span's final name
/// `{method} {route}`), and an error for a 5xx.
pub(super) fn finish(span: &Span, method: &str, answer: &Answer) {
    // One line per request for whoever turns `manifold::access` on; inside the span, so
    // JSON lines carry the request's trace id.
    span.in_scope(|| {
        tracing::debug!(
            target: "manifold::access",
            method,
            route = answer.route.as_deref().unwrap_or("unmatched"),
            status = answer.status,
            "request"
        );
    });
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", answer.status);
    if let Some(route) = &answer.route {
        span.record("http.route", route.as_str());
        // The span has started, so `otel.name` would no longer rename it: rename the
        // OpenTelemetry span itself.
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
    }
    if answer.status >= 500 {
        span.record("otel.status_code", "error");
        span.record("error.type", answer.status.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_split_into_address_and_port() {
        assert_eq!(split_host("example.com"), ("example.com", None));
        assert_eq!(split_host("example.com:8080"), ("example.com", Some(8080)));
        assert_eq!(split_host("[::1]:13000"), ("::1", Some(13000)));
        assert_eq!(split_host("[::1]"), ("::1", None));
    }

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(method_name(&Method::GET), "GET");
        let custom = Method::from_bytes(b"PURGE").expect("a valid token");
        assert_eq!(method_name(&custom), "_OTHER");
    }
}
