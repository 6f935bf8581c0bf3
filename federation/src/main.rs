//! `manifold`: the service binary.

use clap::Parser;
use manifold_federation::config::{Cli, Command};
use manifold_federation::telemetry::Telemetry;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Command::Serve(config) = cli.command.unwrap_or(Command::Serve(cli.serve));
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!(
            "manifold: --log {:?} is not a valid filter ({e}); using info",
            config.log
        );
        EnvFilter::new("info")
    });
    let telemetry =
        match Telemetry::init(&filter, config.log_format, |name| std::env::var(name).ok()) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("manifold: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
    if let Some(protocol) = telemetry.protocol() {
        tracing::info!(?protocol, "exporting traces over OTLP");
    }
    let outcome = manifold_federation::serve(config).await;
    // Spans still queued are sent before the process ends.
    telemetry.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("manifold: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
