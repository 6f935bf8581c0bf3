//! With text logs and no OTLP variable, the installed subscriber builds no span and asks
//! no driver for its debug logs: the request path pays nothing for telemetry that is off.
//! (Its own test binary: it installs the process's global subscriber.)

use manifold_server::telemetry::{LogFormat, Telemetry};
use tracing::Level;
use tracing_subscriber::EnvFilter;

#[tokio::test]
async fn with_export_off_no_span_is_built_and_debug_logs_are_off() {
    let _telemetry = Telemetry::init(&EnvFilter::new("warn"), LogFormat::Text, |_| None)
        .expect("the subscriber installs");

    let span = tracing::info_span!(target: "manifold::middleware", "manifold.app");
    assert!(span.is_disabled(), "an info span is built with export off");
    // sqlx asks `log` (bridged to tracing, capped at this level) whether to build its
    // per-statement summary.
    assert_eq!(
        tracing::level_filters::LevelFilter::current(),
        tracing::level_filters::LevelFilter::WARN,
        "the process's maximum level is not --log's"
    );
    assert!(!tracing::event_enabled!(target: "sqlx::query", Level::DEBUG));
    assert!(tracing::event_enabled!(target: "manifold", Level::WARN));
}
