//! `manifold`: the service binary.

use clap::Parser;
use manifold_federation::config::{Cli, Command};
use manifold_federation::telemetry::Telemetry;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod allocator;

fn main() -> std::process::ExitCode {
    // The runtime `#[tokio::main]` would build, plus a hook that returns a large request's
    // memory to the system once each thread is idle.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(allocator::collect_if_due)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("manifold: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
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
