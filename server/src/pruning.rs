//! Deleting the old rows of a bookkeeping table of the main database (the change log, the
//! job runs): by whichever replica gets there first, and by each at most once an
//! interval, so that pruning costs a statement now and then, never one per write.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use manifold_core::Result;
use manifold_core::filter::parse_filter;
use manifold_core::repository::Repository;
use serde_json::json;

/// Prunes one table by one time column.
pub(crate) struct Pruner {
    table: Arc<dyn Repository>,
    /// A column of milliseconds since the epoch.
    column: &'static str,
    retention: Duration,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Pruner {
    /// Deletes `table`'s rows whose `column` is older than `retention`, at most once
    /// `every`.
    pub(crate) fn new(
        table: Arc<dyn Repository>,
        column: &'static str,
        retention: Duration,
        every: Duration,
    ) -> Self {
        Self {
            table,
            column,
            retention,
            every,
            last: Mutex::new(None),
        }
    }

    /// Deletes the expired rows, unless this process did so less than the interval ago.
    pub(crate) async fn prune(&self) -> Result<()> {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.every) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let cutoff = chrono::Utc::now().timestamp_millis()
            - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let filter = parse_filter(
            self.table.collection(),
            &json!({ self.column: { "$lt": cutoff } }),
        )?;
        self.table.destroy(filter.as_ref()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use manifold_core::repository::{WriteFilter, WriteKind, WriteValues};

    use super::*;

    /// Inserts a run of `job` at `tick` into the job-runs table.
    async fn insert(runs: &Arc<dyn Repository>, job: &str, tick: i64) {
        let row = serde_json::json!({
            "job": job, "tick": tick, "owner": "test", "startedAt": tick, "status": "ok",
        });
        let values = WriteValues::from_json(
            runs.collection(),
            &row,
            WriteKind::Create,
            &WriteFilter::default(),
            "row",
        )
        .expect("values");
        runs.create(&[values]).await.expect("insert");
    }

    #[tokio::test]
    async fn deletes_only_expired_rows_and_at_most_once_an_interval() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/main.sqlite", dir.path().display());
        let cli = crate::config::Cli::parse_from(["manifold", "--main-db", url.as_str()]);
        let app = crate::build_app(&cli.serve).await.expect("app");
        let main = app.data_sources().get("main").expect("main");
        let runs = main.internal_table("_manifold_job_runs").expect("job runs");
        let now = chrono::Utc::now().timestamp_millis();
        insert(&runs, "old", now - 120_000).await;
        insert(&runs, "new", now - 1_000).await;
        let pruner = Pruner::new(
            runs.clone(),
            "tick",
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        pruner.prune().await.expect("prune");
        assert_eq!(
            runs.count(None).await.expect("count"),
            1,
            "the old row goes"
        );

        insert(&runs, "older", now - 600_000).await;
        pruner.prune().await.expect("prune");
        assert_eq!(
            runs.count(None).await.expect("count"),
            2,
            "not again within the interval"
        );
        app.close().await;
    }
}
