//! The figures of a run: the machine, each measurement, the goals, and their Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use manifold_bench::{Backend, Scenario};
use serde::{Deserialize, Serialize};
use sqlx::Connection;

use crate::Plan;
use crate::run::{load_average, version_of};

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// The release `manifold` binary.
    Manifold,
    /// The poem + sqlx `baseline` binary.
    Baseline,
    /// pgbench, straight to PostgreSQL.
    Pgbench,
}

impl Target {
    /// A short lower-case label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Manifold => "manifold",
            Self::Baseline => "baseline",
            Self::Pgbench => "pgbench",
        }
    }
}

/// One scenario measured on one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// What served the requests.
    pub target: Target,
    /// The database.
    pub backend: Backend,
    /// Rows of `posts`.
    pub rows: u64,
    /// The request shape.
    pub scenario: Scenario,
    /// Concurrent connections (wrk) or clients (pgbench).
    #[serde(default)]
    pub connections: u32,
    /// Completed requests (pgbench: transactions) per second.
    pub requests_per_s: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// The server's VmHWM over warm-up and measurement, KiB.
    pub peak_kb: Option<u64>,
    /// The server's user + system CPU per request, µs.
    pub cpu_us_per_request: Option<f64>,
    /// Non-2xx answers, socket errors and timeouts (pgbench: failed transactions).
    pub errors: u64,
    /// Requests completed in the measurement.
    pub requests: u64,
    /// Size of one answer, bytes (from the probe request).
    pub bytes_per_response: Option<u64>,
}

impl Measurement {
    /// One line for the console.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            self.requests_per_s, self.p50_ms, self.p99_ms
        );
        if let Some(kb) = self.peak_kb {
            let _ = write!(s, "  peak {:>5.1} MB", kb as f64 / 1024.0);
        }
        if let Some(cpu) = self.cpu_us_per_request {
            let _ = write!(s, "  cpu {cpu:>6.0} µs/req");
        }
        if self.errors > 0 {
            let _ = write!(s, "  ERRORS {}", self.errors);
        }
        s
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// `/proc/cpuinfo` model name.
    pub cpu: String,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Distribution.
    pub os: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `manifold --version`.
    pub manifold: String,
    /// The commit measured, with `+ changes` when the tree is dirty.
    pub commit: String,
    /// PostgreSQL server version.
    pub postgres: String,
    /// MariaDB server version.
    pub mariadb: String,
    /// SQLite library version (as linked into sqlx).
    pub sqlite: String,
    /// wrk version.
    pub wrk: String,
    /// pgbench version.
    pub pgbench: String,
    /// When the run started (UTC).
    pub date: String,
    /// Load average when the run started.
    pub load_before: String,
    /// Load average when it ended.
    pub load_after: String,
}

impl Machine {
    /// Reads everything it can; what it cannot read is `unknown`.
    pub async fn read(plan: &Plan, manifold: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
            })
            .map(|kb| kb / 1024.0 / 1024.0)
            .unwrap_or(0.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|s| s.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let mut commit = version_of("git", &["rev-parse", "--short", "HEAD"]);
        if !version_of("git", &["status", "--porcelain"]).eq("unknown") {
            commit.push_str(" + uncommitted changes");
        }
        let postgres = async {
            let mut c =
                sqlx::PgConnection::connect(&format!("{}/postgres", plan.servers.postgres)).await?;
            sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&mut c)
                .await
        };
        let mariadb = async {
            let mut c = sqlx::MySqlConnection::connect(&plan.servers.mariadb).await?;
            sqlx::query_scalar::<_, String>("SELECT VERSION()")
                .fetch_one(&mut c)
                .await
        };
        let sqlite = async {
            let mut c = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
            sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                .fetch_one(&mut c)
                .await
        };
        let manifold_path = manifold.display().to_string();
        Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory_gib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
            os,
            rustc: version_of("rustc", &["--version"]),
            manifold: version_of(&manifold_path, &["--version"]),
            commit,
            postgres: postgres.await.unwrap_or_else(|_| "unknown".into()),
            mariadb: mariadb.await.unwrap_or_else(|_| "unknown".into()),
            sqlite: sqlite.await.unwrap_or_else(|_| "unknown".into()),
            wrk: version_of("wrk", &["-v"]),
            pgbench: version_of("pgbench", &["--version"]),
            date: version_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

/// Everything a run produced; saved as JSON so the report can be rebuilt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Seconds per measurement.
    pub duration_s: f64,
    /// Seconds of warm-up per measurement.
    pub warmup_s: f64,
    /// wrk connections.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// Pool size of network sources.
    pub pool: u32,
    /// Wall time of the whole run.
    pub wall_s: f64,
    /// The figures.
    pub measurements: Vec<Measurement>,
}

impl Results {
    /// The measurement under the run's full load (pgbench: its only one).
    fn find(
        &self,
        target: Target,
        backend: Backend,
        rows: u64,
        scenario: Scenario,
    ) -> Option<&Measurement> {
        self.measurements.iter().find(|m| {
            m.target == target
                && m.backend == backend
                && m.rows == rows
                && m.scenario == scenario
                && (m.target == Target::Pgbench || m.connections == self.connections)
        })
    }

    /// The one-connection measurement of a scenario.
    fn find_single(
        &self,
        target: Target,
        backend: Backend,
        rows: u64,
        scenario: Scenario,
    ) -> Option<&Measurement> {
        self.measurements.iter().find(|m| {
            m.target == target
                && m.backend == backend
                && m.rows == rows
                && m.scenario == scenario
                && m.connections == 1
                && m.target != Target::Pgbench
        })
    }

    fn datasets(&self) -> Vec<(u64, Backend)> {
        let mut out: Vec<(u64, Backend)> = Vec::new();
        for m in &self.measurements {
            if !out.contains(&(m.rows, m.backend)) {
                out.push((m.rows, m.backend));
            }
        }
        out
    }

    fn scenarios(&self) -> Vec<Scenario> {
        let mut out: Vec<Scenario> = self.measurements.iter().map(|m| m.scenario).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A goal of issue #9 and how it came out.
struct Goal {
    name: &'static str,
    dataset: String,
    measured: String,
    target: String,
    met: Option<bool>,
    /// Shown beside the goals, with no target to meet.
    informational: bool,
}

const PRIMARY_ROWS: u64 = 10_000;
const SIMPLE_ROWS: u64 = 1_000_000;

/// A goal on one measurement's throughput as a share of another's (Manifold and the
/// baseline, or a member and root): met at `at_least`, or shown for information only
/// when there is none.
fn throughput_goal(
    name: &'static str,
    dataset: String,
    (manifold, baseline): (Option<&Measurement>, Option<&Measurement>),
    at_least: Option<f64>,
) -> Goal {
    let (measured, met) = match (manifold, baseline) {
        (Some(m), Some(b)) if b.requests_per_s > 0.0 => {
            let ratio = m.requests_per_s / b.requests_per_s;
            (
                format!(
                    "{ratio:.2} ({:.0} / {:.0} req/s)",
                    m.requests_per_s, b.requests_per_s
                ),
                Some(at_least.is_none_or(|at_least| ratio >= at_least)),
            )
        }
        _ => ("not measured".into(), None),
    };
    Goal {
        name,
        dataset,
        measured,
        target: at_least.map_or("none: the database's share".into(), |at_least| {
            format!("≥ {at_least}")
        }),
        met,
        informational: at_least.is_none(),
    }
}

fn goals_for(r: &Results, backend: Backend) -> Vec<Goal> {
    let mut goals = Vec::new();
    let dataset = format!("{backend}, {}", rows_label(PRIMARY_ROWS));
    let get = (
        r.find(Target::Manifold, backend, PRIMARY_ROWS, Scenario::Get),
        r.find(Target::Baseline, backend, PRIMARY_ROWS, Scenario::Get),
    );
    goals.push(throughput_goal(
        "`:get` throughput, Manifold / baseline",
        dataset.clone(),
        get,
        Some(0.8),
    ));
    let (measured, met) = match get {
        (Some(m), Some(b)) if b.p99_ms > 0.0 => {
            let ratio = m.p99_ms / b.p99_ms;
            (
                format!("{ratio:.2}× ({:.2} / {:.2} ms)", m.p99_ms, b.p99_ms),
                Some(ratio <= 1.5),
            )
        }
        _ => ("not measured".into(), None),
    };
    goals.push(Goal {
        name: "`:get` p99, Manifold / baseline",
        dataset: dataset.clone(),
        measured,
        target: "≤ 1.5×".into(),
        met,
        informational: false,
    });
    goals.push(throughput_goal(
        "`:list` pageSize 20 throughput, Manifold / baseline",
        dataset,
        (
            r.find(Target::Manifold, backend, PRIMARY_ROWS, Scenario::List),
            r.find(Target::Baseline, backend, PRIMARY_ROWS, Scenario::List),
        ),
        Some(0.7),
    ));
    // Permissions must not cost what NocoBase's do (nocobase/nocobase#7174: its member
    // role is several times slower than admin). The goal compares the member with root
    // asking the same filter and fields, so both send the database the same statements
    // and the ratio is what the ACL costs. Against root's plain request the ratio also
    // holds what the database pays for the scope's WHERE (a filtered COUNT walks the rows
    // where an unfiltered one has a fast path): shown, with no target, since no server in
    // front of the database can make that cheaper.
    for (name, as_member, as_root, at_least) in [
        (
            "`:get` as a member / as root asking the same filter and fields",
            Scenario::GetMember,
            Scenario::GetScoped,
            Some(0.9),
        ),
        (
            "`:list` as a member / as root asking the same filter and fields",
            Scenario::ListMember,
            Scenario::ListScoped,
            Some(0.9),
        ),
        (
            "`:get` as a member (scope and field list) / as root",
            Scenario::GetMember,
            Scenario::Get,
            None,
        ),
        (
            "`:list` as a member (scope and field list) / as root",
            Scenario::ListMember,
            Scenario::List,
            None,
        ),
    ] {
        goals.push(throughput_goal(
            name,
            format!("{backend}, {}", rows_label(PRIMARY_ROWS)),
            (
                r.find(Target::Manifold, backend, PRIMARY_ROWS, as_member),
                r.find(Target::Manifold, backend, PRIMARY_ROWS, as_root),
            ),
            at_least,
        ));
    }
    // A relation to another source costs its own pool's connection and a lookup of the
    // other source; the bound is 0.8 of the same append within one source.
    goals.push(throughput_goal(
        "`:list` with one append from another source / within one source",
        format!("{backend}, {}", rows_label(PRIMARY_ROWS)),
        (
            r.find(
                Target::Manifold,
                backend,
                PRIMARY_ROWS,
                Scenario::ListCrossAppend,
            ),
            r.find(
                Target::Manifold,
                backend,
                PRIMARY_ROWS,
                Scenario::ListLocalAppend,
            ),
        ),
        Some(0.8),
    ));
    let peak = r
        .measurements
        .iter()
        .filter(|m| m.target == Target::Manifold && m.backend == backend)
        .filter_map(|m| m.peak_kb.map(|kb| (kb, m)))
        .max_by_key(|(kb, _)| *kb);
    let (measured, met) = match peak {
        Some((kb, m)) => (
            format!(
                "{:.1} MB (`{}`, {})",
                kb as f64 / 1024.0,
                m.scenario.name(),
                rows_label(m.rows)
            ),
            Some(kb < 64 * 1024),
        ),
        None => ("not measured".into(), None),
    };
    goals.push(Goal {
        name: "Manifold peak memory (VmHWM), highest scenario",
        dataset: format!("{backend}, every dataset, {} connections", r.connections),
        measured,
        target: "< 64 MB".into(),
        met,
        informational: false,
    });
    let single = r.find_single(Target::Manifold, backend, SIMPLE_ROWS, Scenario::ListSimple);
    let loaded = r.find(Target::Manifold, backend, SIMPLE_ROWS, Scenario::ListSimple);
    let (measured, met) = match (single, loaded) {
        (Some(s), loaded) => (
            format!(
                "{:.2} ms at 1 connection{}",
                s.p50_ms,
                loaded.map_or(String::new(), |l| format!(
                    " ({:.2} ms at {} connections)",
                    l.p50_ms, r.connections
                ))
            ),
            Some(s.p50_ms < 5.0),
        ),
        (None, Some(l)) => (
            format!("{:.2} ms at {} connections", l.p50_ms, r.connections),
            Some(l.p50_ms < 5.0),
        ),
        (None, None) => ("not measured".into(), None),
    };
    goals.push(Goal {
        name: "`:list` simplePaginate p50",
        dataset: format!("{backend}, {}", rows_label(SIMPLE_ROWS)),
        measured,
        target: "< 5 ms".into(),
        met,
        informational: false,
    });
    goals
}

fn rows_label(rows: u64) -> String {
    match rows {
        r if r >= 1_000_000 && r % 1_000_000 == 0 => format!("{}M rows", r / 1_000_000),
        r if r >= 1_000 && r % 1_000 == 0 => format!("{}k rows", r / 1_000),
        r => format!("{r} rows"),
    }
}

fn verdict(goal: &Goal) -> &'static str {
    if goal.informational && goal.met.is_some() {
        return "for information";
    }
    match goal.met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn opt_mb(kb: Option<u64>) -> String {
    kb.map_or("–".into(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

fn opt_cpu(cpu: Option<f64>) -> String {
    cpu.map_or("–".into(), |c| format!("{c:.0}"))
}

/// The Markdown of the results section.
pub fn markdown(r: &Results) -> String {
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(s, "## Results of the last run\n");
    let _ = writeln!(
        s,
        "Generated by `manifold-bench` on {} (commit {}); the whole run took {:.0} s.\n",
        m.date, m.commit, r.wall_s
    );
    let _ = writeln!(s, "Command: `{}`\n", r.command);
    let _ = writeln!(s, "| Machine | |\n| --- | --- |");
    let _ = writeln!(s, "| CPU | {} × {} |", m.cores, m.cpu);
    let _ = writeln!(s, "| Memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(s, "| OS, kernel | {}, Linux {} |", m.os, m.kernel);
    let _ = writeln!(s, "| Rust | {} |", m.rustc);
    let _ = writeln!(s, "| Manifold | {} |", m.manifold);
    let _ = writeln!(
        s,
        "| Databases | PostgreSQL {}, MariaDB {}, SQLite {} |",
        m.postgres, m.mariadb, m.sqlite
    );
    let _ = writeln!(s, "| Load generators | {}; {} |", m.wrk, m.pgbench);
    let _ = writeln!(
        s,
        "| Load average (1, 5, 15 min) | {} at the start, {} at the end |",
        m.load_before, m.load_after
    );
    let _ = writeln!(
        s,
        "| Settings | {} s per measurement after {} s warm-up; wrk {} thread(s), {} connections; pools of {} (SQLite 8); pgbench {} clients |\n",
        r.duration_s, r.warmup_s, r.threads, r.connections, r.pool, r.pool
    );

    let _ = writeln!(s, "### Goals\n");
    let _ = writeln!(
        s,
        "| Goal | Dataset | Measured | Target | |\n| --- | --- | --- | --- | --- |"
    );
    for g in goals_for(r, Backend::Postgres) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            g.name,
            g.dataset,
            g.measured,
            g.target,
            verdict(&g)
        );
    }
    let _ = writeln!(
        s,
        "\nThe same goals on the other databases (for information; the goals are set on PostgreSQL):\n"
    );
    let _ = writeln!(
        s,
        "| Goal | Dataset | Measured | Target | |\n| --- | --- | --- | --- | --- |"
    );
    for backend in [Backend::Sqlite, Backend::MariaDb] {
        for g in goals_for(r, backend) {
            if g.met.is_none() {
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                g.name,
                g.dataset,
                g.measured,
                g.target,
                verdict(&g)
            );
        }
    }

    let _ = writeln!(s, "\n### Every measurement\n");
    let _ = writeln!(
        s,
        "Latencies in ms, peak memory (VmHWM of the server process) in MB, server CPU in µs per request; \
         \"ratio\" is Manifold's throughput over the baseline's. pgbench runs the baseline's statements \
         straight against PostgreSQL with as many clients as the pool has connections.\n"
    );
    for (rows, backend) in r.datasets() {
        let _ = writeln!(s, "#### {backend}, {}\n", rows_label(rows));
        let pg = r
            .measurements
            .iter()
            .any(|x| x.target == Target::Pgbench && x.backend == backend && x.rows == rows);
        let mut header = String::from(
            "| Scenario | Manifold req/s | p50 | p99 | peak MB | CPU µs | Baseline req/s | p50 | p99 | peak MB | CPU µs | ratio |",
        );
        let mut rule = String::from(
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        );
        if pg {
            header.push_str(" pgbench tps | p50 | p99 |");
            rule.push_str(" ---: | ---: | ---: |");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        for scenario in r.scenarios() {
            let man = r.find(Target::Manifold, backend, rows, scenario);
            let base = r.find(Target::Baseline, backend, rows, scenario);
            let cells = |x: Option<&Measurement>| match x {
                Some(x) if x.requests == 0 => format!(
                    "none completed{} | – | – | {} | –",
                    if x.errors > 0 {
                        format!(" ({} errors)", x.errors)
                    } else {
                        String::new()
                    },
                    opt_mb(x.peak_kb)
                ),
                Some(x) => format!(
                    "{:.0}{} | {:.2} | {:.2} | {} | {}",
                    x.requests_per_s,
                    if x.errors > 0 {
                        format!(" ({} errors)", x.errors)
                    } else {
                        String::new()
                    },
                    x.p50_ms,
                    x.p99_ms,
                    opt_mb(x.peak_kb),
                    opt_cpu(x.cpu_us_per_request)
                ),
                None => "– | – | – | – | –".into(),
            };
            let ratio = match (man, base) {
                (Some(a), Some(b)) if b.requests_per_s > 0.0 && a.requests > 0 => {
                    format!("{:.2}", a.requests_per_s / b.requests_per_s)
                }
                _ => "–".into(),
            };
            let _ = write!(
                s,
                "| `{}` | {} | {} | {} |",
                scenario.name(),
                cells(man),
                cells(base),
                ratio
            );
            if pg {
                match r.find(Target::Pgbench, backend, rows, scenario) {
                    Some(p) => {
                        let _ = write!(
                            s,
                            " {:.0} | {:.2} | {:.2} |",
                            p.requests_per_s, p.p50_ms, p.p99_ms
                        );
                    }
                    None => s.push_str(" – | – | – |"),
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }
    let singles = r
        .measurements
        .iter()
        .any(|m| m.connections == 1 && m.target != Target::Pgbench);
    if singles {
        let _ = writeln!(
            s,
            "#### One connection\n\nThe same requests one at a time: the latency of the request itself, without the queue that {} connections build on 2 cores.\n",
            r.connections
        );
        let _ = writeln!(
            s,
            "| Dataset | Scenario | Manifold req/s | p50 | p99 | Baseline req/s | p50 | p99 |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for (rows, backend) in r.datasets() {
            for scenario in r.scenarios() {
                let man = r.find_single(Target::Manifold, backend, rows, scenario);
                let base = r.find_single(Target::Baseline, backend, rows, scenario);
                if man.is_none() && base.is_none() {
                    continue;
                }
                let cells = |x: Option<&Measurement>| {
                    x.map_or("– | – | –".into(), |x| {
                        format!(
                            "{:.0} | {:.2} | {:.2}",
                            x.requests_per_s, x.p50_ms, x.p99_ms
                        )
                    })
                };
                let _ = writeln!(
                    s,
                    "| {backend}, {} | `{}` | {} | {} |",
                    rows_label(rows),
                    scenario.name(),
                    cells(man),
                    cells(base)
                );
            }
        }
        s.push('\n');
    }
    let _ = writeln!(s, "Scenarios:\n");
    for scenario in r.scenarios() {
        let _ = writeln!(s, "- `{}`: {}", scenario.name(), scenario.describe());
    }
    s
}

/// Prints the results section to stdout.
pub fn print(r: &Results) {
    println!("{}", markdown(r));
}

const BEGIN: &str =
    "<!-- bench:results:begin (written by manifold-bench; edits inside are lost) -->";
const END: &str = "<!-- bench:results:end -->";

/// Replaces the results section of `path` (between the markers), or appends one.
pub fn write(path: &PathBuf, r: &Results) -> Result<()> {
    let section = format!("{BEGIN}\n{}{END}", markdown(r));
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &text[..a], &text[b + END.len()..]),
        _ => format!("{}\n{section}\n", text.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
