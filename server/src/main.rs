//! `manifold`: the service binary.

use clap::Parser;
use manifold_server::config::{Cli, Command, LogFormat};
use manifold_server::telemetry::Telemetry;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod allocator;

fn main() -> std::process::ExitCode {
    manifold_server::auth::release_memory_with(allocator::collect_now);
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
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let (log, log_format) = match &command {
        Command::Serve(config) => (config.log.as_str(), config.log_format),
        Command::Migrate(config) => (config.log.as_str(), config.log_format),
    };
    let telemetry = match init_telemetry(log, log_format) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("manifold: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = match command {
        Command::Serve(config) => manifold_server::serve(config).await,
        Command::Migrate(config) => match manifold_server::migrate(&config).await {
            Ok((from, to)) => {
                if from == to {
                    tracing::info!(version = to, "the main database's schema is up to date");
                } else {
                    tracing::info!(from, to, "the main database's schema is migrated");
                }
                Ok(())
            }
            Err(e) => Err(std::io::Error::other(format!("cannot migrate: {e}"))),
        },
    };
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

/// The log filter `log` (info when it does not parse, said on standard error) and the
/// trace export the OpenTelemetry variables ask for.
fn init_telemetry(log: &str, format: LogFormat) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(log).unwrap_or_else(|e| {
        eprintln!("manifold: --log {log:?} is not a valid filter ({e}); using info");
        EnvFilter::new("info")
    });
    let telemetry = Telemetry::init(&filter, format, |name| std::env::var(name).ok())
        .map_err(|e| e.to_string())?;
    if let Some(protocol) = telemetry.protocol() {
        tracing::info!(?protocol, "exporting traces over OTLP");
    }
    Ok(telemetry)
}
