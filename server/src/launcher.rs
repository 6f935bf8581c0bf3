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

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches};
use manifold_core::{Error, Result};
use tracing_subscriber::EnvFilter;

use crate::commands::{CliCommand, CommandContext};
use crate::config::{Cli, Command, LogFormat};
use crate::telemetry::Telemetry;
use crate::{AppBuilder, Plugin, ServeConfig};

/// The whole program: reads the command line, starts the runtime and telemetry, and
/// runs the command (`serve` by default) with the built-in plugins and the ones added.
#[derive(Default)]
pub struct Manifold {
    plugins: Vec<Arc<dyn Plugin>>,
    on_thread_park: Option<fn()>,
}

/// A plugin's subcommand in the `manifold` command tree.
struct PluginCommand {
    name: String,
    plugin: String,
    command: Arc<dyn CliCommand>,
}

/// What the command line asks for, parsed before the runtime starts.
enum Invocation {
    BuiltIn(Command),
    Plugin {
        command: PluginCommand,
        matches: clap::ArgMatches,
        config: ServeConfig,
    },
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

    /// The `manifold` command tree: `serve`, `migrate` and every plugin's subcommands
    /// (what `--help` lists). A subcommand name taken twice is an error naming both owners.
    pub fn command(&self) -> Result<clap::Command> {
        self.command_tree().map(|(tree, _)| tree)
    }

    /// Runs the command the command line asks for and returns how the process should
    /// exit; errors are printed to standard error and logged.
    pub fn run(self) -> ExitCode {
        self.run_with_args(std::env::args_os())
    }

    /// [`Manifold::run`] with `args` as the command line (the program's name first), for
    /// tests and programs that build their own.
    pub fn run_with_args<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let invocation = match self.parse(args) {
            Ok(invocation) => invocation,
            Err(code) => return code,
        };
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        runtime.enable_all();
        if let Some(hook) = self.on_thread_park {
            runtime.on_thread_park(hook);
        }
        match runtime.build() {
            Ok(runtime) => runtime.block_on(self.run_invocation(invocation)),
            Err(e) => {
                eprintln!("manifold: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        }
    }

    /// The built-in and the added plugins, in load order.
    fn all_plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let mut plugins = crate::built_in_plugins();
        plugins.extend(self.plugins.iter().cloned());
        plugins
    }

    fn command_tree(&self) -> Result<(clap::Command, Vec<PluginCommand>)> {
        let mut tree = Cli::command();
        // Whose each name is, for the message of a clash.
        let mut owners: Vec<(String, String)> = tree
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .chain(["help".to_owned()])
            .map(|name| (name.clone(), format!("the built-in command {name:?}")))
            .collect();
        let mut commands = Vec::new();
        for plugin in self.all_plugins() {
            for command in plugin.commands() {
                let subcommand = command.command();
                let name = subcommand.get_name().to_owned();
                if let Some((_, owner)) = owners.iter().find(|(taken, _)| *taken == name) {
                    return Err(Error::internal(format!(
                        "plugin {:?}: its command {name:?} clashes with {owner}",
                        plugin.name()
                    )));
                }
                owners.push((
                    name.clone(),
                    format!("plugin {:?}'s command {name:?}", plugin.name()),
                ));
                // The service options come last in the command's help, under a heading.
                let subcommand = subcommand.next_help_heading("Service options");
                tree = tree.subcommand(with_service_options(subcommand));
                commands.push(PluginCommand {
                    name,
                    plugin: plugin.name().to_owned(),
                    command,
                });
            }
        }
        Ok((tree, commands))
    }

    /// Parses `args` against the command tree; an `Err` is the exit code once clap or a
    /// clash has been reported (0 after `--help` and `--version`).
    fn parse<I, T>(&self, args: I) -> std::result::Result<Invocation, ExitCode>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let (tree, commands) = self.command_tree().map_err(|e| {
            eprintln!("manifold: {e}");
            ExitCode::FAILURE
        })?;
        let clap_failed = |e: clap::Error| {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        };
        let matches = tree.try_get_matches_from(args).map_err(clap_failed)?;
        if let Some((name, sub)) = matches.subcommand()
            && let Some(at) = commands.iter().position(|c| c.name == name)
        {
            let config = ServeConfig::from_arg_matches(sub).map_err(clap_failed)?;
            let matches = sub.clone();
            let mut commands = commands;
            let command = commands.swap_remove(at);
            return Ok(Invocation::Plugin {
                command,
                matches,
                config,
            });
        }
        let cli = Cli::from_arg_matches(&matches).map_err(clap_failed)?;
        Ok(Invocation::BuiltIn(
            cli.command.unwrap_or(Command::Serve(cli.serve)),
        ))
    }

    async fn run_invocation(self, invocation: Invocation) -> ExitCode {
        let (log, log_format) = match &invocation {
            Invocation::BuiltIn(Command::Serve(config)) => (config.log.as_str(), config.log_format),
            Invocation::BuiltIn(Command::Migrate(config)) => {
                (config.log.as_str(), config.log_format)
            }
            Invocation::Plugin { config, .. } => (config.log.as_str(), config.log_format),
        };
        let on_stderr = matches!(invocation, Invocation::Plugin { .. });
        let telemetry = match init_telemetry(log, log_format, on_stderr) {
            Ok(telemetry) => telemetry,
            Err(e) => {
                eprintln!("manifold: {e}");
                return ExitCode::FAILURE;
            }
        };
        let outcome = match invocation {
            Invocation::BuiltIn(Command::Serve(config)) => {
                crate::serve_with(config, self.plugins).await
            }
            Invocation::BuiltIn(Command::Migrate(config)) => {
                match crate::migrate(&config, &self.plugins).await {
                    Ok((from, to)) => {
                        if from == to {
                            tracing::info!(
                                version = to,
                                "the main database's schema is up to date"
                            );
                        } else {
                            tracing::info!(from, to, "the main database's schema is migrated");
                        }
                        Ok(())
                    }
                    Err(e) => Err(std::io::Error::other(format!("cannot migrate: {e}"))),
                }
            }
            Invocation::Plugin {
                command,
                matches,
                config,
            } => run_plugin_command(command, &matches, config, self.plugins)
                .await
                .map_err(std::io::Error::other),
        };
        // Spans still queued are sent before the process ends.
        telemetry.shutdown();
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // A command's log is on standard error already, where the line below goes.
                if !on_stderr {
                    tracing::error!("{e}");
                }
                eprintln!("manifold: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

/// `command` with the options of `manifold serve`, also accepted after its own
/// subcommands (`manifold users create --main-db …`).
fn with_service_options(command: clap::Command) -> clap::Command {
    // `augment_args` sets the command's about to the options' own; the command keeps its.
    let about = command.get_about().cloned();
    let long_about = command.get_long_about().cloned();
    let mut command = ServeConfig::augment_args(command)
        .about(None::<&str>)
        .long_about(None::<&str>);
    if let Some(about) = about {
        command = command.about(about);
    }
    if let Some(long_about) = long_about {
        command = command.long_about(long_about);
    }
    let ids: Vec<clap::Id> = ServeConfig::augment_args(clap::Command::new("options"))
        .get_arguments()
        .map(|arg| arg.get_id().clone())
        .collect();
    for id in ids {
        command = command.mut_arg(id, |arg| arg.global(true));
    }
    // Warnings only unless asked: a command's log is noise around its answer.
    command.mut_arg("log", |log| log.default_value("warn"))
}

/// Builds the application as `serve` would, without jobs, runs `command` with it, and
/// closes it; the error says which command failed.
async fn run_plugin_command(
    command: PluginCommand,
    matches: &clap::ArgMatches,
    config: ServeConfig,
    plugins: Vec<Arc<dyn Plugin>>,
) -> std::result::Result<(), String> {
    let name = &command.name;
    tracing::debug!(command = %name, plugin = %command.plugin, "running a plugin command");
    let app = plugins
        .into_iter()
        .fold(AppBuilder::new(&config).without_jobs(), AppBuilder::plugin)
        .build()
        .await
        .map_err(|e| format!("{name}: cannot open the application: {e}"))?;
    let context = CommandContext { app, config };
    let outcome = command.command.run(matches, &context).await;
    context.app.close().await;
    outcome.map_err(|e| format!("{name}: {e}"))
}

/// The log filter `log` (info when it does not parse, said on standard error) and the
/// trace export the OpenTelemetry variables ask for.
fn init_telemetry(
    log: &str,
    format: LogFormat,
    on_stderr: bool,
) -> std::result::Result<Telemetry, String> {
    let filter = EnvFilter::try_new(log).unwrap_or_else(|e| {
        eprintln!("manifold: --log {log:?} is not a valid filter ({e}); using info");
        EnvFilter::new("info")
    });
    let env = |name: &str| std::env::var(name).ok();
    let telemetry = if on_stderr {
        Telemetry::init_on_stderr(&filter, format, env)
    } else {
        Telemetry::init(&filter, format, env)
    }
    .map_err(|e| e.to_string())?;
    if let Some(protocol) = telemetry.protocol() {
        tracing::info!(?protocol, "exporting traces over OTLP");
    }
    Ok(telemetry)
}
