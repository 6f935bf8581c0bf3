//! What the tests that start the `manifold` binary share.
//!
//! Each test binary uses part of it, hence the allowance.
#![allow(dead_code)]

/// A port nothing listens on now, for a process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The variables of this process that a started `manifold` must not inherit: its own
/// settings (`MANIFOLD_*`) and OpenTelemetry's (`OTEL_*`), which would change what the
/// test starts. Remove them before setting the test's own.
pub fn inherited_settings() -> Vec<String> {
    std::env::vars()
        .map(|(key, _)| key)
        .filter(|key| key.starts_with("OTEL_") || key.starts_with("MANIFOLD_"))
        .collect()
}
