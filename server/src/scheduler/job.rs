//! One job and the task that runs it: sleep until its next tick, claim the tick, run the
//! handler if the claim was won, record the outcome, repeat.
//!
//! The task awaits each run before it looks for the next tick, so runs of one job never
//! overlap in a process; ticks that pass during a long run are skipped (here; another
//! replica may take them). The next tick is always after both the clock and the last tick,
//! so a clock stepped back never runs a tick twice.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use manifold_core::telemetry::{error_type, record_error};
use tokio::sync::watch;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::JobContext;
use super::lease::{Claim, Lease};
use super::metrics::{JobMetrics, Outcome};
use super::schedule::Schedule;

/// A job's handler, boxed.
pub(super) type Handler =
    Arc<dyn Fn(JobContext) -> BoxFuture<'static, manifold_core::Result<()>> + Send + Sync>;

/// A registered job.
pub(super) struct Job {
    pub(super) name: Arc<str>,
    pub(super) schedule: Schedule,
    pub(super) handler: Handler,
}

/// What a job's task needs besides the job; none of it keeps the scheduler alive, so a
/// dropped scheduler's tasks end (their stop channel closes).
pub(super) struct Runner {
    pub(super) job: Arc<Job>,
    pub(super) lease: Arc<Lease>,
    pub(super) metrics: JobMetrics,
    pub(super) stop: watch::Receiver<bool>,
}

impl Runner {
    /// Runs the job at each of its ticks until the scheduler stops.
    pub(super) async fn run(mut self) {
        let mut after = Utc::now();
        loop {
            let tick = match self.job.schedule.next_after(after) {
                Ok(tick) => tick,
                Err(e) => {
                    tracing::warn!(job = %self.job.name, error = %e, "scheduled job has no next tick; it stops");
                    return;
                }
            };
            if !self.sleep_until(tick).await {
                return;
            }
            self.tick(tick).await;
            after = Utc::now().max(tick);
        }
    }

    /// Sleeps until the wall clock reaches `tick` (re-checked on waking: the timer follows
    /// a monotonic clock, which may drift from it); `false` when the scheduler stops first.
    async fn sleep_until(&mut self, tick: DateTime<Utc>) -> bool {
        loop {
            if *self.stop.borrow() {
                return false;
            }
            let Ok(left) = (tick - Utc::now()).to_std() else {
                return true;
            };
            if left.is_zero() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Claims `tick` and, if this process won it, runs the job, in a `manifold.job` span.
    async fn tick(&self, tick: DateTime<Utc>) {
        let name = &*self.job.name;
        let span = tracing::info_span!(
            target: "manifold::scheduler",
            "manifold.job",
            otel.name = Empty,
            otel.kind = "internal",
            otel.status_code = Empty,
            manifold.job.name = name,
            manifold.job.tick = Empty,
            manifold.job.outcome = Empty,
            error.type = Empty,
        );
        if !span.is_disabled() {
            span.record("otel.name", format!("job {name}"));
            span.record("manifold.job.tick", tick.to_rfc3339().as_str());
        }
        let outcome = self.claim_and_run(tick).instrument(span.clone()).await;
        span.record("manifold.job.outcome", outcome.label());
        self.metrics.count(name, outcome);
    }

    async fn claim_and_run(&self, tick: DateTime<Utc>) -> Outcome {
        let name = &*self.job.name;
        let key = tick.timestamp_millis();
        match self.lease.claim(name, key).await {
            Ok(Claim::Won) => {}
            Ok(Claim::Lost) => return Outcome::SkippedElsewhere,
            Err(e) => {
                // Running without the row could run the tick twice; skipping it is the
                // lesser harm, and the metric shows it.
                tracing::warn!(job = name, %tick, error = %e, "cannot claim a tick of a scheduled job; not run");
                record_error(&tracing::Span::current(), error_type(e.kind()), None);
                return Outcome::LeaseFailed;
            }
        }
        let context = JobContext {
            name: self.job.name.clone(),
            tick,
        };
        let started = Instant::now();
        // A panic, in the handler or the future it returns, is a failed run, not the end
        // of the job's task.
        let ran = AssertUnwindSafe(async { (self.job.handler)(context).await })
            .catch_unwind()
            .await;
        self.metrics.time(name, started.elapsed().as_secs_f64());
        let outcome = match ran {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(e)) => {
                tracing::warn!(job = name, %tick, error = %e, "scheduled job failed");
                record_error(&tracing::Span::current(), error_type(e.kind()), None);
                Outcome::Failed
            }
            Err(_) => {
                tracing::warn!(job = name, %tick, "scheduled job panicked");
                record_error(&tracing::Span::current(), "panic", None);
                Outcome::Failed
            }
        };
        let status = if outcome == Outcome::Ok {
            "ok"
        } else {
            "failed"
        };
        if let Err(e) = self.lease.finish(name, key, status).await {
            tracing::warn!(job = name, %tick, error = %e, "cannot record how a scheduled job ended");
        }
        if let Err(e) = self.lease.prune().await {
            tracing::warn!(error = %e, "cannot delete old runs of scheduled jobs");
        }
        outcome
    }
}
