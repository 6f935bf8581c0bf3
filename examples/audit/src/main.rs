//! The `manifold` binary with the audit plugin: everything `manifold` does, plus
//! `manifold audit-prune` and the audit trail.

fn main() -> std::process::ExitCode {
    manifold_server::Manifold::builder()
        .plugin(std::sync::Arc::new(
            manifold_example_audit::AuditPlugin::default(),
        ))
        .run()
}
