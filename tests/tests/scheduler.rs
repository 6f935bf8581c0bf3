//! Scheduled jobs (server/src/scheduler): a job ticking every second runs once a second;
//! two replicas sharing a PostgreSQL or MariaDB main database run each tick exactly once
//! between them; a failing or panicking job keeps its schedule, is logged and counted in
//! `/metrics`; bad expressions, unknown zones and duplicate names are refused, named.
//!
//! Every run records its tick in memory and, through the scheduler, a row in the main
//! database's `_manifold_job_runs`; both are checked.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use manifold_core::query::FindOptions;
use manifold_core::{Error, ErrorKind};
use manifold_server::scheduler::{JobContext, SchedulerError};
use manifold_tests::{Backend, CapturedLog, TestApp, on_backend};
use serde_json::Value as Json;

const EVERY_SECOND: &str = "*/1 * * * * *";

/// The ticks runs were asked for, on any replica.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<DateTime<Utc>>>>);

impl Runs {
    fn record(&self, job: &JobContext) {
        self.0.lock().expect("runs lock").push(job.tick());
    }

    fn ticks(&self) -> Vec<DateTime<Utc>> {
        self.0.lock().expect("runs lock").clone()
    }
}

/// Registers `name` on `t`, recording each run in `runs`.
fn recorded(t: &TestApp, name: &str, runs: &Runs) {
    let runs = runs.clone();
    t.app
        .scheduler()
        .add(name, EVERY_SECOND, move |job| {
            let runs = runs.clone();
            async move {
                runs.record(&job);
                Ok(())
            }
        })
        .expect("the job is added");
}

/// Asserts `ticks` are whole seconds, none twice, one second apart from first to last.
fn assert_each_second_once(ticks: &[DateTime<Utc>]) {
    let distinct: BTreeSet<_> = ticks.iter().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick ran twice: {ticks:?}");
    let ordered: Vec<_> = distinct.into_iter().collect();
    for tick in &ordered {
        assert_eq!(tick.timestamp_subsec_nanos(), 0, "{tick}");
    }
    for pair in ordered.windows(2) {
        assert_eq!(
            (*pair[1] - *pair[0]).num_seconds(),
            1,
            "a tick was missed: {ordered:?}"
        );
    }
}

/// The rows of `job` in `_manifold_job_runs`, as (tick in ms, owner, status).
async fn job_rows(t: &TestApp, job: &str) -> Vec<(i64, String, String)> {
    let main = t.app.data_sources().get("main").expect("main source");
    let table = main
        .internal_table("_manifold_job_runs")
        .expect("migration 4 made the table");
    let mut rows: Vec<_> = table
        .find(&FindOptions::default())
        .await
        .expect("rows are read")
        .iter()
        .filter(|r| r.get("job").and_then(Json::as_str) == Some(job))
        .map(|r| {
            let text = |k: &str| r.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
            let tick = match r.get("tick") {
                Some(Json::Number(n)) => n.as_i64().expect("an integer tick"),
                Some(Json::String(s)) => s.parse().expect("an integer tick"),
                other => panic!("tick {other:?}"),
            };
            (tick, text("owner"), text("status"))
        })
        .collect();
    rows.sort();
    rows
}

/// The value of `manifold_job_runs_total` for `job` and `outcome` in `/metrics`.
async fn runs_counted(t: &TestApp, job: &str, outcome: &str) -> u64 {
    let text = t.metrics().await;
    let series = format!("manifold_job_runs_total{{job_name=\"{job}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .expect("a count")
}

#[tokio::test]
async fn an_every_second_job_runs_once_a_second_on_sqlite() {
    let t = TestApp::new().await;
    let runs = Runs::default();
    recorded(&t, "heartbeat", &runs);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    t.app.scheduler().stop().await;

    let ticks = runs.ticks();
    assert!((3..=4).contains(&ticks.len()), "{ticks:?}");
    assert_each_second_once(&ticks);
    let rows = job_rows(&t, "heartbeat").await;
    let recorded: Vec<i64> = ticks.iter().map(DateTime::timestamp_millis).collect();
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        recorded,
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.2 == "ok"), "{rows:?}");
    assert_eq!(
        runs_counted(&t, "heartbeat", "ok").await,
        ticks.len() as u64
    );
    assert_eq!(runs_counted(&t, "heartbeat", "failed").await, 0);

    // Stopped means stopped: no run after stop returned.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(runs.ticks().len(), ticks.len());
}

/// Two replicas on one main database of `backend`, each with the same job: over about
/// four seconds, every tick ran once in total, and each replica skipped the ticks the
/// other ran.
async fn two_replicas_run_each_tick_once(backend: Backend) {
    on_backend(backend, async {
        let a = TestApp::new().await;
        let b = a.replica().await;
        let runs = Runs::default();
        recorded(&a, "shared", &runs);
        recorded(&b, "shared", &runs);
        tokio::time::sleep(Duration::from_millis(4200)).await;
        a.app.scheduler().stop().await;
        b.app.scheduler().stop().await;

        let ticks = runs.ticks();
        assert!(ticks.len() >= 4, "{ticks:?}");
        assert_each_second_once(&ticks);

        let rows = job_rows(&a, "shared").await;
        assert_eq!(rows.len(), ticks.len(), "{rows:?}");
        assert!(rows.iter().all(|r| r.2 == "ok"), "{rows:?}");
        let ok_a = runs_counted(&a, "shared", "ok").await;
        let ok_b = runs_counted(&b, "shared", "ok").await;
        assert_eq!(ok_a + ok_b, ticks.len() as u64);
        // Both replicas saw every tick but the first or last one: the one that lost each
        // skipped it.
        let skipped = runs_counted(&a, "shared", "skipped-elsewhere").await
            + runs_counted(&b, "shared", "skipped-elsewhere").await;
        assert!(
            skipped + 2 >= ticks.len() as u64,
            "{skipped} skipped of {}",
            ticks.len()
        );
    })
    .await;
}

#[tokio::test]
async fn two_replicas_on_postgres_run_each_tick_once() {
    two_replicas_run_each_tick_once(Backend::Postgres).await;
}

#[tokio::test]
async fn two_replicas_on_mariadb_run_each_tick_once() {
    two_replicas_run_each_tick_once(Backend::MariaDb).await;
}

/// The job fails on its first run and panics on its second; it still runs at every tick,
/// each failure is a warning naming the job and the error, a `manifold.job` span, a
/// `failed` row and a `failed` count.
#[tokio::test]
async fn a_failing_job_keeps_its_schedule_and_is_counted() {
    // The process's subscriber, not one for this thread: callsites other tests' threads
    // reach first could be left disabled for a thread's own (tracing caches interest per
    // callsite). The other tests' lines land here too; only this job's are read.
    let captured = CapturedLog::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("manifold=info"))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let t = TestApp::new().await;
    let runs = Runs::default();
    let seen = runs.clone();
    t.app
        .scheduler()
        .add("flaky", EVERY_SECOND, move |job| {
            let seen = seen.clone();
            async move {
                seen.record(&job);
                match seen.ticks().len() {
                    1 => Err(Error::internal("the report server said no")),
                    2 => panic!("the job panicked"),
                    _ => Ok(()),
                }
            }
        })
        .expect("the job is added");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    t.app.scheduler().stop().await;

    let ticks = runs.ticks();
    assert!(ticks.len() >= 3, "the schedule went on: {ticks:?}");
    assert_each_second_once(&ticks);
    assert_eq!(runs_counted(&t, "flaky", "failed").await, 2);
    assert_eq!(
        runs_counted(&t, "flaky", "ok").await,
        ticks.len() as u64 - 2
    );
    assert!(
        t.metrics()
            .await
            .contains("manifold_job_run_duration_seconds_count{job_name=\"flaky\"}")
    );
    let statuses: Vec<String> = job_rows(&t, "flaky")
        .await
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(statuses[..2], ["failed", "failed"], "{statuses:?}");
    assert!(statuses[2..].iter().all(|s| s == "ok"), "{statuses:?}");

    let log = captured.text();
    let log: String = log
        .lines()
        .filter(|l| l.contains("flaky"))
        .map(|l| format!("{l}\n"))
        .collect();
    let failed = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("scheduled job failed"))
        .unwrap_or_else(|| panic!("no warning of the failure:\n{log}"));
    assert!(
        failed.contains("flaky") && failed.contains("the report server said no"),
        "{failed}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("scheduled job panicked")),
        "{log}"
    );
    let spans: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("manifold.job{") && l.contains("close"))
        .collect();
    assert!(spans.len() >= ticks.len(), "{log}");
    assert!(
        spans
            .iter()
            .all(|l| l.contains("manifold.job.name=\"flaky\"") && l.contains("manifold.job.tick=")),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .any(|l| l.contains("manifold.job.outcome=\"failed\"")),
        "{spans:?}"
    );
}

#[tokio::test]
async fn bad_expressions_zones_and_duplicate_names_are_refused_by_name() {
    let t = TestApp::new().await;
    let scheduler = t.app.scheduler();
    let noop = |_: JobContext| async { Ok(()) };

    for bad in ["61 * * * * *", "every minute", "", "0 0 0 30 2 *"] {
        let e = scheduler
            .add("nightly-export", bad, noop)
            .expect_err("refused");
        assert!(matches!(e, SchedulerError::BadCron { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains("nightly-export") && message.contains(&format!("{bad:?}")),
            "{message}"
        );
        assert_eq!(Error::from(e).kind(), ErrorKind::BadRequest);
    }

    let e = scheduler
        .add_in("nightly-export", "0 0 3 * * *", "Mars/Olympus_Mons", noop)
        .expect_err("refused");
    let message = e.to_string();
    assert!(
        message.contains("nightly-export") && message.contains("Mars/Olympus_Mons"),
        "{message}"
    );

    let e = scheduler.add("", "0 * * * *", noop).expect_err("refused");
    assert!(matches!(e, SchedulerError::BadName { .. }), "{e:?}");

    scheduler
        .add_in("nightly-export", "0 0 3 * * *", "Europe/Paris", noop)
        .expect("a good job is added");
    let e = scheduler
        .add("nightly-export", "0 * * * *", noop)
        .expect_err("refused");
    let message = e.to_string();
    assert!(
        message.contains("\"nightly-export\"") && message.contains("already exists"),
        "{message}"
    );
    assert_eq!(Error::from(e).kind(), ErrorKind::Conflict);
}
