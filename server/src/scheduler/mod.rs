//! Scheduled jobs: handlers that run at the ticks of a cron expression, each tick once in
//! total across every replica sharing the main database (docs/decisions/0017).
//!
//! A plugin adds a job with [`Scheduler::add`] on [`crate::App::scheduler`]:
//!
//! ```no_run
//! # fn example(app: &manifold_server::App) -> manifold_core::Result<()> {
//! app.scheduler().add("purge-drafts", "0 */5 * * * *", |job| async move {
//!     tracing::info!(tick = %job.tick(), "purging drafts");
//!     Ok(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! What holds:
//!
//! - **One run per tick across replicas.** At a tick, every replica inserts the row (job,
//!   tick) into `_manifold_job_runs`; the primary key lets one insert win, and only the
//!   winner runs the job (`lease.rs`). The key is the tick, the scheduled time, not the
//!   time a replica reached it, so clocks that differ by less than the rows' retention (a
//!   day) do not matter. If the main database cannot be reached, nobody runs the tick.
//! - **Missed ticks are not caught up.** A tick that passes while no replica runs, or
//!   while this replica's run of the same job is still going, is not run later: the next
//!   run is the next tick after now (cron's usual meaning).
//! - **Runs of one job never overlap in one process**; across replicas they can, when a
//!   run lasts longer than the interval between ticks.
//! - **A failed run** (an error or a panic) is logged with the job's name and counted; the
//!   schedule goes on.
//! - **Observable**: each tick is a `manifold.job` span (name, tick, outcome), and
//!   `/metrics` counts `manifold_job_runs_total{job_name,outcome}` and times the runs.

mod error;
mod job;
mod lease;
mod metrics;
mod schedule;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::FutureExt as _;
use manifold_core::DataSource;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::SchedulerError;
use job::{Job, Runner};
use lease::Lease;
use metrics::JobMetrics;
use schedule::Schedule;

/// The longest job name: the width of the job-runs table's `job` column.
const MAX_NAME_CHARS: usize = 255;

/// What a job's handler is told of the run it is asked for.
#[derive(Debug, Clone)]
pub struct JobContext {
    name: Arc<str>,
    tick: DateTime<Utc>,
}

impl JobContext {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scheduled time of this run (a whole second), the same on every replica: what to
    /// key the run's work by, rather than the clock.
    pub fn tick(&self) -> DateTime<Utc> {
        self.tick
    }
}

/// The jobs of one application and the tasks that run them.
pub struct Scheduler {
    lease: Arc<Lease>,
    metrics: JobMetrics,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<Arc<str>, Arc<Job>>,
    running: Option<Running>,
}

/// A started scheduler: one task per job, and the signal that stops them.
struct Running {
    stop: watch::Sender<bool>,
    /// Where jobs added after the start are spawned, whatever thread adds them.
    runtime: tokio::runtime::Handle,
    tasks: Vec<JoinHandle<()>>,
}

impl Scheduler {
    /// A stopped scheduler with no job, claiming ticks in `main`'s job-runs table
    /// (migration 4 made it).
    pub fn new(main: &DataSource) -> manifold_core::Result<Self> {
        Ok(Self {
            lease: Arc::new(Lease::open(main)?),
            metrics: JobMetrics::new(),
            state: Mutex::new(State::default()),
        })
    }

    /// Adds the job `name`, run by `handler` at each tick of `cron` in UTC: five fields
    /// (minute hour day-of-month month day-of-week) or six with seconds first. Before
    /// [`Scheduler::start`] it waits for the start; after, it is scheduled at once.
    pub fn add<F, Fut>(&self, name: &str, cron: &str, handler: F) -> Result<(), SchedulerError>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = manifold_core::Result<()>> + Send + 'static,
    {
        self.add_job(name, cron, Tz::UTC, handler)
    }

    /// [`Scheduler::add`], with the fields of `cron` read in `time_zone` (an IANA name,
    /// `Europe/Paris`), daylight-saving changes included.
    pub fn add_in<F, Fut>(
        &self,
        name: &str,
        cron: &str,
        time_zone: &str,
        handler: F,
    ) -> Result<(), SchedulerError>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = manifold_core::Result<()>> + Send + 'static,
    {
        let zone = time_zone
            .parse::<Tz>()
            .map_err(|_| SchedulerError::UnknownTimeZone {
                name: name.to_owned(),
                zone: time_zone.to_owned(),
            })?;
        self.add_job(name, cron, zone, handler)
    }

    fn add_job<F, Fut>(
        &self,
        name: &str,
        cron: &str,
        zone: Tz,
        handler: F,
    ) -> Result<(), SchedulerError>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = manifold_core::Result<()>> + Send + 'static,
    {
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(SchedulerError::BadName {
                name: name.to_owned(),
            });
        }
        let schedule = Schedule::parse(cron, zone).map_err(|reason| SchedulerError::BadCron {
            name: name.to_owned(),
            expression: cron.to_owned(),
            reason,
        })?;
        let job = Arc::new(Job {
            name: Arc::from(name),
            schedule,
            handler: Arc::new(move |context| handler(context).boxed()),
        });
        let mut state = self.state();
        if state.jobs.contains_key(name) {
            return Err(SchedulerError::Duplicate {
                name: name.to_owned(),
            });
        }
        self.metrics.register(name);
        if let Some(running) = &mut state.running {
            let runner = self.runner(job.clone(), &running.stop);
            running.tasks.push(running.runtime.spawn(runner.run()));
        }
        state.jobs.insert(job.name.clone(), job);
        Ok(())
    }

    /// Starts a task per job (and for each job added later); does nothing if started.
    /// Must be called inside a Tokio runtime.
    pub fn start(&self) {
        let mut state = self.state();
        if state.running.is_some() {
            return;
        }
        let (stop, _) = watch::channel(false);
        let runtime = tokio::runtime::Handle::current();
        let tasks = state
            .jobs
            .values()
            .map(|job| runtime.spawn(self.runner(job.clone(), &stop).run()))
            .collect();
        state.running = Some(Running {
            stop,
            runtime,
            tasks,
        });
    }

    /// Stops scheduling and waits for the runs under way to finish; the jobs stay, for a
    /// later [`Scheduler::start`].
    pub async fn stop(&self) {
        let Some(running) = self.state().running.take() else {
            return;
        };
        running.stop.send_replace(true);
        for task in running.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a scheduled job's task ended abnormally");
            }
        }
    }

    /// The scheduler's metrics, for `/metrics`.
    pub(crate) fn metric_families(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.metrics.families()
    }

    fn runner(&self, job: Arc<Job>, stop: &watch::Sender<bool>) -> Runner {
        Runner {
            job,
            lease: self.lease.clone(),
            metrics: self.metrics.clone(),
            stop: stop.subscribe(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
