//! Subcommands of the `manifold` binary that plugins add (`manifold <command>`), beside
//! the built-in `serve` and `migrate`: docs/decisions/0019-cli-commands.md.
//!
//! A [`CliCommand`] describes its arguments with a `clap::Command` and runs with a
//! [`CommandContext`]: the application built as `manifold serve` would build it from the
//! same options (main database opened and migrated, plugins loaded), without listening
//! and without running scheduled jobs.

use std::sync::Arc;

use manifold_core::{DataSource, Error, Result};

use crate::{App, ServeConfig};

/// One subcommand of `manifold`, offered by a plugin through [`crate::Plugin::commands`].
#[async_trait::async_trait]
pub trait CliCommand: Send + Sync {
    /// The subcommand's name, help and arguments. The options of `manifold serve`
    /// (`--main-db` and the rest, with their variables) are added to it, so a command
    /// must not define an argument of the same name.
    fn command(&self) -> clap::Command;

    /// Runs the command with what the command line gave it. An error is printed as
    /// `manifold: <command>: <error>` and the process exits with 1.
    async fn run(&self, matches: &clap::ArgMatches, ctx: &CommandContext) -> Result<()>;
}

/// What a [`CliCommand`] runs with: the application and its configuration.
pub struct CommandContext {
    pub(crate) app: Arc<App>,
    pub(crate) config: ServeConfig,
}

impl CommandContext {
    /// The application, built from the command's service options as `manifold serve`
    /// builds it, with every plugin loaded; it does not listen, nor run scheduled jobs.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The main data source (`--main-db`), migrated to this binary's schema.
    pub fn main(&self) -> Result<Arc<DataSource>> {
        self.app
            .data_sources()
            .get("main")
            .ok_or_else(|| Error::internal("the application has no main data source"))
    }

    /// The service options the command was given.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }
}
