//! [`Manifold`]: a `manifold` binary in a few lines, with the plugins of one's choice.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # struct MyPlugin;
//! # #[async_trait::async_trait]
//! # impl manifold_server::Plugin for MyPlugin {
//! #     fn name(&self) -> &str { "mine" }
//! #     async fn load(&self, _: &mut manifold_server::PluginContext<'_>) -> manifold_core::Result<()> { Ok(()) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     manifold_server::Manifold::builder().plugin(Arc::new(MyPlugin)).run()
//! }
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::Plugin;
use crate::config::{Cli, Command, LogFormat};
use crate::telemetry::Telemetry;

/// The whole program: reads the command line, starts the runtime and telemetry, and
/// runs the command (`serve` by default) with the built-in plugins and the ones added.
#[derive(Default)]
pub struct Manifold {
    plugins: Vec<Arc<dyn Plugin>>,
    on_thread_park: Option<fn()>,
}

impl Manifold {
    /// A program with the built-in plugins only.
    pub fn builder() -> Self {
        Self::default()
    }

    /// Also loads `plugin` (after the built-in ones and those added before it).
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Calls `hook` whenever a runtime thread is about to park (the stock binary returns
    /// idle memory to the system there; docs/decisions/0011-returning-memory.md).
    pub fn on_thread_park(mut self, hook: fn()) -> Self {
        self.on_thread_park = Some(hook);
        self
    }

    /// Runs the command the command line asks for and returns how the process should
    /// exit; errors are printed to standard error and logged.
    pub fn run(self) -> ExitCode {
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.enable_all();
        if let Some(hook) = self.on_thread_park {
            runtime.on_thread_park(hook);
        }
        match runtime.build() {
            Ok(runtime) => runtime.block_on(self.run_command(Cli::parse())),
            Err(e) => {
                eprintln!("manifold: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn run_command(self, cli: Cli) -> ExitCode {
        let command = cli.command.unwrap_or(Command::Serve(cli.serve));
        let (log, log_format) = match &command {
            Command::Serve(config) => (config.log.as_str(), config.log_format),
            Command::Migrate(config) => (config.log.as_str(), config.log_format),
        };
        let telemetry = match init_telemetry(log, log_format) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("manifold: {e}");
                return ExitCode::FAILURE;
            }
        };
        let outcome = match command {
            Command::Serve(config) => crate::serve_with(config, self.plugins).await,
            Command::Migrate(config) => match crate::migrate(&config, &self.plugins).await {
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
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("manifold: {e}");
                ExitCode::FAILURE
            }
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
