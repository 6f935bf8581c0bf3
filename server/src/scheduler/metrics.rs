//! The scheduler's Prometheus metrics, served at `/metrics` beside the HTTP ones.
//!
//! The job's label is `job_name`, not `job`: Prometheus gives every scraped series a
//! `job` label of its own (the scrape job), and renames a clashing one to `exported_job`.

use prometheus::core::Collector as _;
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Runs last from milliseconds (a cache refresh) to many minutes (a nightly export).
const BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// How one tick ended for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// This process ran the job and it succeeded.
    Ok,
    /// This process ran the job and it returned an error or panicked.
    Failed,
    /// Another process claimed the tick.
    SkippedElsewhere,
    /// The main database could not be asked who runs the tick, so nobody here ran it.
    LeaseFailed,
}

impl Outcome {
    const ALL: [Self; 4] = [
        Self::Ok,
        Self::Failed,
        Self::SkippedElsewhere,
        Self::LeaseFailed,
    ];

    /// The `outcome` label (and the span's `manifold.job.outcome`).
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::SkippedElsewhere => "skipped-elsewhere",
            Self::LeaseFailed => "lease-failed",
        }
    }
}

/// Run counts by job and outcome, and the durations of the runs of this process.
#[derive(Clone)]
pub(super) struct JobMetrics {
    runs: IntCounterVec,
    duration: HistogramVec,
}

impl JobMetrics {
    pub(super) fn new() -> Self {
        let runs = IntCounterVec::new(
            Opts::new(
                "manifold_job_runs_total",
                "Ticks of scheduled jobs seen by this process, by job and outcome (ok, failed, \
                 skipped-elsewhere: another replica ran it, lease-failed: the main database \
                 could not say who runs it, so it did not run here).",
            ),
            &["job_name", "outcome"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "manifold_job_run_duration_seconds",
                "How long the runs of scheduled jobs in this process took, by job.",
            )
            .buckets(BUCKETS.to_vec()),
            &["job_name"],
        );
        match (runs, duration) {
            (Ok(runs), Ok(duration)) => Self { runs, duration },
            _ => unreachable!("the metric names and labels above are valid"),
        }
    }

    /// Shows `job` at 0 for every outcome, so a rate over its first failure is not lost.
    pub(super) fn register(&self, job: &str) {
        for outcome in Outcome::ALL {
            self.runs.with_label_values(&[job, outcome.label()]);
        }
    }

    /// Counts one tick of `job`.
    pub(super) fn count(&self, job: &str, outcome: Outcome) {
        self.runs.with_label_values(&[job, outcome.label()]).inc();
    }

    /// Records how long a run of `job` took.
    pub(super) fn time(&self, job: &str, seconds: f64) {
        self.duration.with_label_values(&[job]).observe(seconds);
    }

    /// The current values, for the `/metrics` text; none before a job is added (the text
    /// encoder refuses a family without a series).
    pub(super) fn families(&self) -> Vec<MetricFamily> {
        let mut families = self.runs.collect();
        families.extend(self.duration.collect());
        families.retain(|f| !f.get_metric().is_empty());
        families
    }
}
