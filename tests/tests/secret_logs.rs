//! No secret of a data source's options reaches a log line: not the ones sqlx would
//! print for URL parameters it ignores, not a failed test or load. (Its own test binary:
//! it installs the process's global subscriber.)

use manifold_tests::{CapturedLog, TestApp};
use serde_json::json;

#[tokio::test]
async fn secrets_in_urls_are_in_no_log_line() {
    let captured = CapturedLog::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let t = TestApp::new().await;
    let url =
        "postgres://postgres@127.0.0.1:5432/postgres?password=SECRET-L1&sslpassword=SECRET-L2";
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "logged", "type": "postgres", "options": {"url": url}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.settled("logged").await["status"], json!("loaded"));

    // A load that fails logs its error.
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "down", "type": "postgres", "enabled": false, "options": {
                "url": "postgres://postgres:SECRET-L3@127.0.0.1:1/postgres?sslpassword=SECRET-L4"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.post("/api/dataSources:update/down", json!({"enabled": true}))
        .await;
    assert_eq!(t.settled("down").await["status"], json!("loading-failed"));
    let r = t
        .post(
            "/api/dataSources:testConnection",
            json!({"type": "mysql", "options": {
                "url": "mysql://nobody:SECRET-L5@127.0.0.1:3306/mysql"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);

    let log = captured.text();
    assert!(
        log.contains("postgres URL parameters ignored"),
        "the capture works and names the ignored parameter: {log}"
    );
    assert!(log.contains("data source failed to load"), "{log}");
    for secret in [
        "SECRET-L1",
        "SECRET-L2",
        "SECRET-L3",
        "SECRET-L4",
        "SECRET-L5",
    ] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }
}
