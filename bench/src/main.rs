//! `manifold-bench`: measures the release `manifold` binary against a hand-written poem +
//! sqlx baseline and pgbench, on the same machine, in one run, and writes the figures to
//! docs/benchmarks.md.
//!
//! For each row count and backend it seeds the dataset (cached between runs), starts
//! Manifold on a fresh main database, registers the dataset as data source `bench`
//! through `dataSources:create`, and drives every scenario with wrk from a second process
//! on loopback; then it does the same with the `baseline` binary, and for PostgreSQL runs
//! the same statements under pgbench. See docs/benchmarks.md.

mod report;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use manifold_bench::seed::Servers;
use manifold_bench::{Backend, Scenario};

/// Benchmark the release `manifold` binary against a poem + sqlx baseline and pgbench.
#[derive(Debug, Clone, Parser)]
#[command(name = "manifold-bench")]
pub struct Args {
    /// Row counts of `posts` to seed and measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    pub rows: Vec<u64>,

    /// Backends to measure: sqlite, postgres, mariadb (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres,mariadb")]
    pub backends: Vec<String>,

    /// Scenarios: get, list, list-simple, list-filter, list-appends, get-member,
    /// list-member, get-scoped, list-scoped, create (or all).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub scenarios: Vec<String>,

    /// How long each measurement runs (`5s`, `500ms`, `1m`).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Load before each measurement, not counted (warms caches and pools).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Concurrent HTTP connections held open by wrk.
    #[arg(long, default_value_t = 64)]
    pub connections: u32,

    /// wrk threads. The machine has 2 cores that wrk shares with the server and the
    /// database, so one is the default.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,

    /// Pool size of the PostgreSQL and MariaDB sources (Manifold's default, 10), used by
    /// Manifold, the baseline and pgbench alike. SQLite uses Manifold's default, 8.
    #[arg(long, default_value_t = 10)]
    pub pool: u32,

    /// Smoke mode: 10,000 rows, 2 s per measurement, 0.5 s warm-up.
    #[arg(long)]
    pub quick: bool,

    /// Skip pgbench.
    #[arg(long)]
    pub no_pgbench: bool,

    /// Skip the baseline.
    #[arg(long)]
    pub no_baseline: bool,

    /// Seed again even when a matching dataset is cached.
    #[arg(long)]
    pub reseed: bool,

    /// Seed (or check) the datasets, then exit without measuring.
    #[arg(long)]
    pub seed_only: bool,

    /// PostgreSQL server, without a database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub postgres: String,

    /// MariaDB server, without a database.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    pub mariadb: String,

    /// Where Manifold's main database, the SQLite datasets, scripts, logs and the results
    /// JSON go.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,

    /// The Manifold binary (`cargo build --release --bin manifold`).
    #[arg(long, default_value = "target/release/manifold")]
    pub manifold_bin: PathBuf,

    /// The baseline binary (`cargo build --release -p manifold-bench --bin baseline`).
    #[arg(long, default_value = "target/release/baseline")]
    pub baseline_bin: PathBuf,

    /// Port Manifold listens on (the baseline takes the next one).
    #[arg(long, default_value_t = 13900)]
    pub port: u16,

    /// The Markdown file whose results section is replaced.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub report: PathBuf,

    /// Print the results but leave the report file and `results.json` alone (the figures
    /// go to `results.no-report.json`).
    #[arg(long)]
    pub no_report: bool,

    /// Do not measure: rebuild the report from a results JSON of an earlier run.
    #[arg(long)]
    pub from_json: Option<PathBuf>,

    /// Keep the measurements of this earlier results JSON for the datasets this run does
    /// not measure (to redo one dataset without redoing the rest).
    #[arg(long)]
    pub merge: Option<PathBuf>,
}

/// Parses `5s`, `500ms`, `2m` or a number of seconds.
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (5s, 500ms, 1m)"))?;
    if value <= 0.0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// The resolved plan of a run.
pub struct Plan {
    /// The arguments, after `--quick`.
    pub args: Args,
    /// Backends in order.
    pub backends: Vec<Backend>,
    /// Scenarios in order.
    pub scenarios: Vec<Scenario>,
    /// Database servers.
    pub servers: Servers,
}

fn plan(mut args: Args) -> Result<Plan> {
    if args.quick {
        args.rows = vec![10_000];
        args.duration = Duration::from_secs(2);
        args.warmup = Duration::from_millis(500);
    }
    let mut backends = Vec::new();
    for name in &args.backends {
        let Some(b) = Backend::parse(name) else {
            bail!("unknown backend {name:?} (sqlite, postgres, mariadb)");
        };
        if !backends.contains(&b) {
            backends.push(b);
        }
    }
    let scenarios = if args.scenarios.iter().any(|s| s == "all") {
        Scenario::ALL.to_vec()
    } else {
        let mut out = Vec::new();
        for name in &args.scenarios {
            let Some(s) = Scenario::parse(name) else {
                bail!("unknown scenario {name:?}");
            };
            out.push(s);
        }
        // `create` adds rows; it runs last whatever the order given.
        out.sort();
        out.dedup();
        out
    };
    if args.connections < args.threads {
        bail!("--connections must be at least --threads");
    }
    let servers = Servers {
        postgres: args.postgres.trim_end_matches('/').to_string(),
        mariadb: args.mariadb.trim_end_matches('/').to_string(),
    };
    Ok(Plan {
        args,
        backends,
        scenarios,
        servers,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.from_json {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let results: report::Results = serde_json::from_str(&text)?;
        report::print(&results);
        if !args.no_report {
            report::write(&args.report, &results)?;
        }
        return Ok(());
    }
    let plan = plan(args)?;
    let results = run::run(&plan).await?;
    if plan.args.seed_only {
        return Ok(());
    }
    std::fs::create_dir_all(&plan.args.work_dir)?;
    // `results.json` is what the page was written from; a run that leaves the page alone
    // must not replace it.
    let json_path = plan.args.work_dir.join(if plan.args.no_report {
        "results.no-report.json"
    } else {
        "results.json"
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    report::print(&results);
    eprintln!("results JSON: {}", json_path.display());
    if !plan.args.no_report {
        report::write(&plan.args.report, &results)?;
        eprintln!("report: {}", plan.args.report.display());
    }
    Ok(())
}
