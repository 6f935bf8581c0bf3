//! Who runs a tick: a row per job and tick in the main database's `_manifold_job_runs`
//! (migration 4), whose primary key lets exactly one insert win. The winner runs the job
//! and records how it ended; every other replica skips the tick.
//!
//! Rows are kept for [`RETENTION`] (a recent history for operators) and deleted by
//! whichever replica prunes first, at most once a [`PRUNE_EVERY`] per process. A tick's
//! row is only needed until every replica has passed that tick, seconds later, so the
//! retention is far longer than any clock skew that could make a replica reach a tick late.

use std::sync::Arc;
use std::time::Duration;

use manifold_core::error::UNIQUE_VIOLATION;
use manifold_core::filter::parse_filter;
use manifold_core::repository::{Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::{DataSource, Result};
use serde_json::{Value as Json, json};

use crate::pruning::Pruner;

/// The table of job runs in the main database.
pub(super) const JOB_RUNS_TABLE: &str = "_manifold_job_runs";

/// How long a run's row is kept: a day bounds a job ticking every second to 86,400 rows.
const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How often one process deletes expired rows.
const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Whether this process won a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// This process inserted the row: it runs the job.
    Won,
    /// Another process has the row.
    Lost,
}

/// This process's side of the job-runs table.
pub(super) struct Lease {
    runs: Arc<dyn Repository>,
    /// This process, as the rows it wins name it.
    owner: String,
    pruner: Pruner,
}

impl Lease {
    /// The lease over `main`'s job-runs table, claiming as a new owner id.
    pub(super) fn open(main: &DataSource) -> Result<Self> {
        let runs = main.internal_table(JOB_RUNS_TABLE)?;
        Ok(Self {
            pruner: Pruner::new(runs.clone(), "tick", RETENTION, PRUNE_EVERY),
            runs,
            owner: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// Inserts the row of `job` at `tick` (milliseconds since the epoch); the unique key
    /// lets one process win, whatever the timing.
    pub(super) async fn claim(&self, job: &str, tick: i64) -> Result<Claim> {
        let row = self.values(
            json!({
                "job": job,
                "tick": tick,
                "owner": self.owner,
                "startedAt": chrono::Utc::now().timestamp_millis(),
                "status": "running",
            }),
            WriteKind::Create,
        )?;
        match self.runs.create(&[row]).await {
            Ok(_) => Ok(Claim::Won),
            Err(e) if e.code() == Some(UNIQUE_VIOLATION) => Ok(Claim::Lost),
            Err(e) => Err(e),
        }
    }

    /// Records how the run of `job` at `tick` ended.
    pub(super) async fn finish(&self, job: &str, tick: i64, status: &str) -> Result<()> {
        let filter = parse_filter(self.runs.collection(), &json!({ "job": job, "tick": tick }))?;
        let values = self.values(
            json!({
                "finishedAt": chrono::Utc::now().timestamp_millis(),
                "status": status,
            }),
            WriteKind::Update,
        )?;
        self.runs.update(filter.as_ref(), &values).await?;
        Ok(())
    }

    /// Deletes the rows of ticks older than [`RETENTION`], unless this process did so less
    /// than a [`PRUNE_EVERY`] ago.
    pub(super) async fn prune(&self) -> Result<()> {
        self.pruner.prune().await
    }

    fn values(&self, row: Json, kind: WriteKind) -> Result<WriteValues> {
        WriteValues::from_json(
            self.runs.collection(),
            &row,
            kind,
            &WriteFilter::default(),
            "job run",
        )
    }
}
