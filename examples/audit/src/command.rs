//! `manifold audit-prune --days N`: prunes the trail from the command line.

use manifold_core::{Error, Result};
use manifold_server::clap::{Arg, ArgMatches, Command, value_parser};
use manifold_server::{CliCommand, CommandContext};

use crate::AuditLog;

/// Deletes the audit rows older than `--days` and prints how many it deleted.
pub struct Prune;

#[async_trait::async_trait]
impl CliCommand for Prune {
    fn command(&self) -> Command {
        Command::new("audit-prune")
            .about("Delete audit rows older than a number of days")
            .arg(
                Arg::new("days")
                    .long("days")
                    .required(true)
                    .value_parser(value_parser!(u32)),
            )
    }

    async fn run(&self, matches: &ArgMatches, ctx: &CommandContext) -> Result<()> {
        let days = *matches
            .get_one::<u32>("days")
            .ok_or_else(|| Error::bad_request("--days is required"))?;
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        let main = ctx.main()?;
        let deleted = AuditLog::open(&main)?.prune(cutoff).await?;
        println!("deleted {deleted} audit rows older than {days} days");
        Ok(())
    }
}
