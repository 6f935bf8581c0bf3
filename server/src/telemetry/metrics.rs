//! The Prometheus metrics served at `GET /metrics`.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::App;

/// Request durations are mostly milliseconds (SQLite answers in well under one), so the
/// OpenTelemetry default buckets get two finer ones below 5 ms.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The labels of the request metrics, in order.
const REQUEST_LABELS: &[&str] = &[
    "http_request_method",
    "http_route",
    "http_response_status_code",
    "data_source",
];

/// Request counts and durations, and the pool gauges read at each scrape.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    refusals: IntCounterVec,
    duration: HistogramVec,
    pool_size: IntGaugeVec,
    pool_in_use: IntGaugeVec,
    pool_max: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "manifold_http_requests_total",
                "HTTP requests answered, by method, route, status and data source.",
            ),
            REQUEST_LABELS,
        );
        let refusals = IntCounterVec::new(
            Opts::new(
                "manifold_auth_refusals_total",
                "Requests refused with 401 or 403, by status and reason (the error's code: \
                 EMPTY_TOKEN, INVALID_TOKEN, …, NO_PERMISSIONS).",
            ),
            &["http_response_status_code", "reason"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_server_request_duration_seconds",
                "Time from the request's arrival to its response, by method, route, status and data source.",
            )
            .buckets(BUCKETS.to_vec()),
            REQUEST_LABELS,
        );
        let gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["data_source"]);
        let pool_size = gauge(
            "manifold_db_pool_connections",
            "Open connections (idle and in use) in the data source's pool.",
        );
        let pool_in_use = gauge(
            "manifold_db_pool_connections_in_use",
            "Connections checked out by a running operation.",
        );
        let pool_max = gauge(
            "manifold_db_pool_connections_max",
            "The most connections the data source's pool opens.",
        );
        let registry = Registry::new();
        let (requests, refusals, duration, pool_size, pool_in_use, pool_max) = match (
            requests,
            refusals,
            duration,
            pool_size,
            pool_in_use,
            pool_max,
        ) {
            (Ok(a), Ok(r), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, r, b, c, d, e),
            _ => unreachable!("the metric names and labels above are valid"),
        };
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refusals.clone()),
            Box::new(duration.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_in_use.clone()),
            Box::new(pool_max.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                unreachable!("each metric is registered once: {e}");
            }
        }
        Self {
            registry,
            requests,
            refusals,
            duration,
            pool_size,
            pool_in_use,
            pool_max,
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &str, route: &str, status: u16, data_source: &str, seconds: f64) {
        let code = status.to_string();
        let labels = [method, route, code.as_str(), data_source];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// Counts one request refused with `status` (401 or 403) for `reason`.
    pub fn refused(&self, status: u16, reason: &str) {
        let code = status.to_string();
        self.refusals
            .with_label_values(&[code.as_str(), reason])
            .inc();
    }

    /// The text exposition format (version 0.0.4), with the pools of `app`'s sources read
    /// now and its scheduled jobs' counts.
    pub fn render(&self, app: Option<&App>) -> String {
        // Sources come and go: the pool gauges are rebuilt from the ones present.
        self.pool_size.reset();
        self.pool_in_use.reset();
        self.pool_max.reset();
        let sources = app.map(|a| a.data_sources().list()).unwrap_or_default();
        for source in sources {
            if let Some(status) = source.pool_status() {
                let key = [source.key()];
                self.pool_size
                    .with_label_values(&key)
                    .set(i64::from(status.size));
                self.pool_in_use
                    .with_label_values(&key)
                    .set(i64::from(status.in_use));
                self.pool_max
                    .with_label_values(&key)
                    .set(i64::from(status.max));
            }
        }
        let mut families = self.registry.gather();
        families.extend(
            app.map(|a| a.scheduler().metric_families())
                .unwrap_or_default(),
        );
        let mut out = Vec::with_capacity(4096);
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_show_up_by_route_status_and_source() {
        let metrics = Metrics::new();
        metrics.observe("GET", "/api/posts:list", 200, "main", 0.002);
        metrics.observe("GET", "/api/posts:list", 200, "main", 0.003);
        let text = metrics.render(None);
        assert!(
            text.contains(
                r#"manifold_http_requests_total{data_source="main",http_request_method="GET",http_response_status_code="200",http_route="/api/posts:list"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("http_server_request_duration_seconds_bucket"));
    }
}
