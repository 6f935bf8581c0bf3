//! Running the measurements: servers, wrk, pgbench, and reading a process's memory and CPU.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use manifold_bench::seed::{self, database_name, sqlite_file};
use manifold_bench::{Backend, CREATE_BODY, PAGE_SIZE, Queries, Scenario};
use serde::Deserialize;

use crate::Plan;
use crate::report::{Machine, Measurement, Results, Target};

/// Runs every measurement of `plan` and returns the figures.
pub async fn run(plan: &Plan) -> Result<Results> {
    let args = &plan.args;
    let work = absolute(&args.work_dir)?;
    std::fs::create_dir_all(work.join("scripts"))?;
    std::fs::create_dir_all(work.join("logs"))?;
    let manifold_bin = absolute(&args.manifold_bin)?;
    let baseline_bin = absolute(&args.baseline_bin)?;
    if !manifold_bin.exists() {
        bail!(
            "{} not found: cargo build --release --bin manifold",
            manifold_bin.display()
        );
    }
    if !args.no_baseline && !baseline_bin.exists() {
        bail!(
            "{} not found: cargo build --release -p manifold-bench --bin baseline",
            baseline_bin.display()
        );
    }
    require("wrk", &["-v"])?;
    let pgbench = !args.no_pgbench
        && plan.backends.contains(&Backend::Postgres)
        && require("pgbench", &["--version"]).is_ok();
    let started = Instant::now();
    let mut machine = Machine::read(plan, &manifold_bin).await;
    if args.seed_only {
        eprintln!("seeding only");
    }
    eprintln!(
        "machine: {} cores, {}; load average {}",
        machine.cores, machine.cpu, machine.load_before
    );
    let mut measurements = Vec::new();
    if let Some(path) = &args.merge {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let earlier: Results = serde_json::from_str(&text)?;
        measurements.extend(
            earlier
                .measurements
                .into_iter()
                .filter(|m| !(args.rows.contains(&m.rows) && plan.backends.contains(&m.backend))),
        );
    }
    for &rows in &args.rows {
        for &backend in &plan.backends {
            eprintln!("== {backend}, {rows} posts");
            let sqlite_path = work
                .join("manifold")
                .join("sources")
                .join(sqlite_file(rows));
            seed::ensure(backend, &plan.servers, &sqlite_path, rows, args.reseed).await?;
            if args.seed_only {
                continue;
            }

            seed::reset(backend, &plan.servers, &sqlite_path, rows).await?;
            let server = start_manifold(plan, &work, &manifold_bin, backend, rows)?;
            let result = measure_all(plan, &work, &server, Target::Manifold, backend, rows);
            server.stop();
            measurements.extend(result?);

            if !args.no_baseline {
                seed::reset(backend, &plan.servers, &sqlite_path, rows).await?;
                let server =
                    start_baseline(plan, &work, &baseline_bin, backend, rows, &sqlite_path)?;
                let result = measure_all(plan, &work, &server, Target::Baseline, backend, rows);
                server.stop();
                measurements.extend(result?);
            }

            if pgbench && backend == Backend::Postgres {
                seed::reset(backend, &plan.servers, &sqlite_path, rows).await?;
                // Roles are Manifold's: the member scenarios run the same SQL as root's.
                for &scenario in plan
                    .scenarios
                    .iter()
                    .filter(|s| !s.about_roles() && !s.about_sources())
                {
                    let m = run_pgbench(plan, &work, scenario, rows)
                        .with_context(|| format!("pgbench {}", scenario.name()))?;
                    eprintln!("  pgbench   {:<13} {}", scenario.name(), m.summary());
                    measurements.push(m);
                }
            }
            seed::reset(backend, &plan.servers, &sqlite_path, rows).await?;
            // Saved after every dataset, so an interrupted run can be finished with
            // `--merge` instead of being redone.
            let partial = results(plan, &machine, started, measurements.clone());
            std::fs::write(
                work.join("results.partial.json"),
                serde_json::to_string_pretty(&partial)?,
            )?;
        }
    }
    machine.load_after = load_average();
    Ok(results(plan, &machine, started, measurements))
}

fn results(
    plan: &Plan,
    machine: &Machine,
    started: Instant,
    measurements: Vec<Measurement>,
) -> Results {
    let args = &plan.args;
    Results {
        machine: machine.clone(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        connections: args.connections,
        threads: args.threads,
        pool: args.pool,
        wall_s: started.elapsed().as_secs_f64(),
        measurements,
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

fn require(tool: &str, version_args: &[&str]) -> Result<()> {
    Command::new(tool)
        .args(version_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|_| anyhow!("{tool} not found; scripts/bench.sh installs it"))
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A server process under measurement.
pub struct Server {
    child: Child,
    base: String,
    /// The headers every request sends: for Manifold, the one that routes to the dataset
    /// (`X-Data-Source: bench`) and root's token.
    headers: Vec<(String, String)>,
    /// For Manifold, the token of the benchmark's `member`, sent instead of root's in the
    /// member scenarios.
    member: Option<String>,
}

impl Server {
    /// The headers of `scenario`'s requests.
    fn headers_for(&self, scenario: Scenario) -> Vec<(String, String)> {
        match (&self.member, scenario.as_member()) {
            (Some(token), true) => self
                .headers
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "Authorization" => (k.clone(), format!("Bearer {token}")),
                    _ => (k.clone(), v.clone()),
                })
                .collect(),
            _ => self.headers.clone(),
        }
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 15 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    Command::new(bin)
        .env("MANIFOLD_ROOT_PASSWORD", ROOT_PASSWORD)
        .args(args)
        .stdout(out)
        .stderr(err)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

fn wait_listening(child: &mut Child, port: u16, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "server exited with {status}; see {}:\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "server did not listen on port {port} within 60 s; see {}",
        log.display()
    )
}

/// Answer of one HTTP call made with curl.
struct Answer {
    status: u16,
    body: String,
}

fn curl(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Answer> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-X", method, "-w", "\n%{http_code}", url]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = cmd.output().context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok(Answer {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
    })
}

/// The password of `root` in the benchmark's fresh main database (the baseline ignores it).
const ROOT_PASSWORD: &str = "bench-root-password";

/// Signs in `account` and returns its token.
fn sign_in(base: &str, account: &str, password: &str) -> Result<String> {
    let body = serde_json::json!({ "account": account, "password": password });
    let answer = curl(
        "POST",
        &format!("{base}/api/auth:signIn"),
        &[],
        Some(&body.to_string()),
    )?;
    serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["data"]["token"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            anyhow!(
                "signing in {account} answered {}: {}",
                answer.status,
                answer.body
            )
        })
}

/// Makes the role `bench_member` (on source `bench`, `posts` through a scope and a field
/// list, as a real member role is), a user with it, and returns the user's token.
fn make_member(server: &Server) -> Result<String> {
    let main_headers: Vec<(String, String)> = server
        .headers
        .iter()
        .filter(|(k, _)| k == "Authorization")
        .cloned()
        .collect();
    let post = |path: &str, body: serde_json::Value| -> Result<serde_json::Value> {
        let answer = curl(
            "POST",
            &format!("{}{path}", server.base),
            &main_headers,
            Some(&body.to_string()),
        )?;
        if answer.status != 200 {
            bail!("{path} answered {}: {}", answer.status, answer.body);
        }
        Ok(serde_json::from_str(&answer.body)?)
    };
    post(
        "/api/roles:create",
        serde_json::json!({ "name": "bench_member" }),
    )?;
    let scope = post(
        "/api/dataSources/bench/rolesResourcesScopes:create",
        serde_json::json!({ "name": "bench", "resourceName": "posts", "scope": { "id": { "$gte": 1 } } }),
    )?;
    post(
        "/api/dataSources/bench/roles:update?filterByTk=bench_member",
        serde_json::json!({ "resources": [{
            "name": "posts", "usingActionsConfig": true,
            "actions": [{ "name": "view", "fields": ["title", "score", "status"], "scope": scope["data"]["id"] }]
        }] }),
    )?;
    let password = "bench-member-password";
    post(
        "/api/users:create",
        serde_json::json!({ "username": "bench_member", "password": password, "roles": ["bench_member"] }),
    )?;
    sign_in(&server.base, "bench_member", password)
}

fn start_manifold(
    plan: &Plan,
    work: &Path,
    bin: &Path,
    backend: Backend,
    rows: u64,
) -> Result<Server> {
    let dir = work.join("manifold");
    std::fs::create_dir_all(dir.join("sources"))?;
    // A fresh main database each time, so the only registered source is this dataset.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("main.sqlite{suffix}")));
    }
    let port = plan.args.port;
    let log = work
        .join("logs")
        .join(format!("manifold-{}-{rows}.log", backend.kind()));
    let mut child = spawn(
        bin,
        &[
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--main-db".into(),
            format!("sqlite://{}", dir.join("main.sqlite").display()),
            "--log".into(),
            "warn".into(),
        ],
        &log,
    )?;
    if let Err(e) = wait_listening(&mut child, port, &log) {
        let _ = child.kill();
        return Err(e);
    }
    let base = format!("http://127.0.0.1:{port}");
    let token = match sign_in(&base, "root", ROOT_PASSWORD) {
        Ok(token) => token,
        Err(e) => {
            let _ = child.kill();
            return Err(e);
        }
    };
    let mut server = Server {
        child,
        base,
        headers: vec![
            ("X-Data-Source".into(), "bench".into()),
            ("Authorization".into(), format!("Bearer {token}")),
        ],
        member: None,
    };
    let ready = register(plan, &server, backend, rows).and_then(|()| make_member(&server));
    match ready {
        Ok(member) => {
            server.member = Some(member);
            Ok(server)
        }
        Err(e) => {
            server.stop();
            Err(e)
        }
    }
}

/// Registers the dataset as data source `bench`, and again as `bench-twin` with the
/// relation `posts.twinComments` to the twin's comments, and waits until both are loaded.
fn register(plan: &Plan, server: &Server, backend: Backend, rows: u64) -> Result<()> {
    register_as(plan, server, backend, rows, "bench")?;
    register_as(plan, server, backend, rows, "bench-twin")?;
    let auth = root_auth(server);
    let field = serde_json::json!({
        "name": "twinComments", "type": "hasMany", "target": "comments",
        "targetDataSource": "bench-twin", "foreignKey": "postId"
    });
    let answer = curl(
        "POST",
        &format!(
            "{}/api/dataSourcesCollections/bench.posts/fields:create",
            server.base
        ),
        &auth,
        Some(&field.to_string()),
    )?;
    if answer.status != 200 {
        bail!(
            "declaring posts.twinComments answered {}: {}",
            answer.status,
            answer.body
        );
    }
    Ok(())
}

/// The `Authorization` header of root, alone.
fn root_auth(server: &Server) -> Vec<(String, String)> {
    server
        .headers
        .iter()
        .filter(|(k, _)| k == "Authorization")
        .cloned()
        .collect()
}

/// Registers the dataset as data source `key` and waits until it is loaded.
fn register_as(plan: &Plan, server: &Server, backend: Backend, rows: u64, key: &str) -> Result<()> {
    let options = match backend {
        Backend::Sqlite => serde_json::json!({ "path": sqlite_file(rows) }),
        Backend::Postgres => {
            let (user, host, port) = split_url(&plan.servers.postgres, "postgres", 5432)?;
            serde_json::json!({
                "host": host, "port": port, "database": database_name(rows),
                "username": user, "password": "", "maxConnections": plan.args.pool,
            })
        }
        Backend::MariaDb => {
            let (user, host, port) = split_url(&plan.servers.mariadb, "root", 3306)?;
            serde_json::json!({
                "host": host, "port": port, "database": database_name(rows),
                "username": user, "password": "", "maxConnections": plan.args.pool,
            })
        }
    };
    let body = serde_json::json!({ "key": key, "type": backend.kind(), "options": options });
    let auth = root_auth(server);
    let answer = curl(
        "POST",
        &format!("{}/api/dataSources:create", server.base),
        &auth,
        Some(&body.to_string()),
    )?;
    if answer.status != 200 {
        bail!(
            "dataSources:create answered {}: {}",
            answer.status,
            answer.body
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = curl(
            "GET",
            &format!("{}/api/dataSources:get/{key}", server.base),
            &auth,
            None,
        )?;
        let status = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["data"]["status"].as_str().map(str::to_string))
            .unwrap_or_default();
        match status.as_str() {
            "loaded" => return Ok(()),
            s if s.contains("failed") => bail!("data source {key} failed to load: {}", answer.body),
            _ if Instant::now() > deadline => bail!("data source {key} not loaded after 60 s"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `(user, host, port)` of `scheme://user@host:port`.
fn split_url(url: &str, default_user: &str, default_port: u16) -> Result<(String, String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (user, hostport) = match rest.split_once('@') {
        Some((u, h)) => (u.split(':').next().unwrap_or(default_user).to_string(), h),
        None => (default_user.to_string(), rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().context("port")?),
        None => (hostport.to_string(), default_port),
    };
    Ok((user, host, port))
}

fn start_baseline(
    plan: &Plan,
    work: &Path,
    bin: &Path,
    backend: Backend,
    rows: u64,
    sqlite_path: &Path,
) -> Result<Server> {
    let port = plan.args.port + 1;
    let (url, pool) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", sqlite_path.display()), 8),
        Backend::Postgres => (
            format!("{}/{}", plan.servers.postgres, database_name(rows)),
            plan.args.pool,
        ),
        Backend::MariaDb => (
            format!("{}/{}", plan.servers.mariadb, database_name(rows)),
            plan.args.pool,
        ),
    };
    let log = work
        .join("logs")
        .join(format!("baseline-{}-{rows}.log", backend.kind()));
    let mut child = spawn(
        bin,
        &[
            "--backend".into(),
            backend.kind().into(),
            "--url".into(),
            url,
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--max-connections".into(),
            pool.to_string(),
        ],
        &log,
    )?;
    if let Err(e) = wait_listening(&mut child, port, &log) {
        let _ = child.kill();
        return Err(e);
    }
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        headers: Vec::new(),
        member: None,
    })
}

fn measure_all(
    plan: &Plan,
    work: &Path,
    server: &Server,
    target: Target,
    backend: Backend,
    rows: u64,
) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    // Every scenario under the full load; simple pagination also with one connection,
    // where p50 is the request's own latency rather than the queue in front of it.
    let mut runs: Vec<(Scenario, u32)> = Vec::new();
    for &scenario in &plan.scenarios {
        if target == Target::Baseline && scenario.about_sources() {
            continue;
        }
        runs.push((scenario, plan.args.connections));
        if scenario == Scenario::ListSimple && plan.args.connections > 1 {
            runs.push((scenario, 1));
        }
    }
    for (scenario, connections) in runs {
        let label = if connections == plan.args.connections {
            scenario.name().to_string()
        } else {
            format!("{} @{connections}", scenario.name())
        };
        // One scenario that fails (a route that errors, a database that times out) is
        // reported and skipped; the others still say something.
        match measure(
            plan,
            work,
            server,
            Case {
                target,
                backend,
                rows,
                scenario,
                connections,
            },
        ) {
            Ok(m) => {
                eprintln!("  {:<9} {:<16} {}", target.label(), label, m.summary());
                out.push(m);
            }
            Err(e) => eprintln!("  {:<9} {:<16} FAILED: {e:#}", target.label(), label),
        }
    }
    Ok(out)
}

/// wrk's summary, printed by the `done` hook of the generated script.
#[derive(Debug, Deserialize)]
struct WrkSummary {
    requests: f64,
    duration_us: f64,
    p50_us: f64,
    p99_us: f64,
    status: f64,
    connect: f64,
    read: f64,
    write: f64,
    timeout: f64,
}

fn wrk_script(
    work: &Path,
    target: Target,
    scenario: Scenario,
    rows: u64,
    headers: &[(String, String)],
) -> Result<PathBuf> {
    let path = match target {
        Target::Manifold => scenario.manifold_path(),
        _ => scenario.baseline_path(),
    };
    let mut lua = String::new();
    lua.push_str(&format!("local rows = {rows}\nlocal prefix = [[{path}]]\n"));
    lua.push_str(&format!("wrk.method = \"{}\"\n", scenario.method()));
    for (k, v) in headers {
        lua.push_str(&format!("wrk.headers[\"{k}\"] = \"{v}\"\n"));
    }
    if scenario == Scenario::Create {
        lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
        lua.push_str(&format!("wrk.body = [[{CREATE_BODY}]]\n"));
    }
    lua.push_str(&format!("local random_key = {}\n", scenario.random_key()));
    lua.push_str(
        r#"local fixed = nil
function init(args)
  math.randomseed(os.time())
  if not random_key then fixed = wrk.format(nil, prefix) end
end
function request()
  if fixed then return fixed end
  return wrk.format(nil, prefix .. math.random(1, rows))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,"status":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"timeout":%.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"#,
    );
    let file = work
        .join("scripts")
        .join(format!("{}-{}.lua", target.label(), scenario.name()));
    std::fs::write(&file, lua)?;
    Ok(file)
}

fn run_wrk(
    plan: &Plan,
    script: &Path,
    base: &str,
    duration: Duration,
    connections: u32,
) -> Result<WrkSummary> {
    let ms = duration.as_millis().max(1);
    let out = Command::new("wrk")
        .args([
            "-t",
            &plan.args.threads.min(connections).to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", ms.div_ceil(1000)),
            "--timeout",
            "10s",
            "-s",
        ])
        .arg(script)
        .arg(base)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCHJSON "))
        .ok_or_else(|| {
            anyhow!(
                "wrk printed no summary: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(serde_json::from_str(line)?)
}

/// One measurement to take: what serves, which dataset, which requests, how many at once.
#[derive(Debug, Clone, Copy)]
struct Case {
    target: Target,
    backend: Backend,
    rows: u64,
    scenario: Scenario,
    connections: u32,
}

fn measure(plan: &Plan, work: &Path, server: &Server, case: Case) -> Result<Measurement> {
    let Case {
        target,
        backend,
        rows,
        scenario,
        connections,
    } = case;
    let headers = server.headers_for(scenario);
    let path = match target {
        Target::Manifold => scenario.manifold_path(),
        _ => scenario.baseline_path(),
    };
    let probe_path = if scenario.random_key() {
        format!("{path}{}", rows / 2)
    } else {
        path
    };
    let body = (scenario == Scenario::Create).then_some(CREATE_BODY);
    // Requests of the previous scenario that wrk gave up on may still hold the pool (a
    // database does not stop a statement because its client left); wait for them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let answer = curl(
            scenario.method(),
            &format!("{}{probe_path}", server.base),
            &headers,
            body,
        )?;
        if answer.status == 200 {
            break answer;
        }
        if Instant::now() > deadline {
            bail!("probe answered {}: {}", answer.status, answer.body);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    check_shape(scenario, &answer.body)?;
    let script = wrk_script(work, target, scenario, rows, &headers)?;
    let pid = server.pid();
    reset_peak(pid);
    if !plan.args.warmup.is_zero() {
        run_wrk(plan, &script, &server.base, plan.args.warmup, connections)?;
    }
    let cpu_before = cpu_ticks(pid);
    let summary = run_wrk(plan, &script, &server.base, plan.args.duration, connections)?;
    let cpu_after = cpu_ticks(pid);
    let peak_kb = peak_kb(pid);
    let secs = summary.duration_us / 1e6;
    let cpu_us_per_request = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if summary.requests > 0.0 => {
            Some((b - a) as f64 * 1e6 / clock_ticks() / summary.requests)
        }
        _ => None,
    };
    Ok(Measurement {
        target,
        backend,
        rows,
        scenario,
        connections,
        requests_per_s: if secs > 0.0 {
            summary.requests / secs
        } else {
            0.0
        },
        p50_ms: summary.p50_us / 1000.0,
        p99_ms: summary.p99_us / 1000.0,
        peak_kb,
        cpu_us_per_request,
        errors: (summary.status + summary.connect + summary.read + summary.write + summary.timeout)
            as u64,
        requests: summary.requests as u64,
        bytes_per_response: Some(answer.body.len() as u64),
    })
}

/// Fails when a probe's answer is not what the scenario should return, so a broken route
/// cannot be measured as a fast one.
fn check_shape(scenario: Scenario, body: &str) -> Result<()> {
    let v: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("answer is not JSON: {body}"))?;
    let data = &v["data"];
    let ok = match scenario {
        Scenario::Get | Scenario::Create => data["id"].is_number(),
        // The member's field list: the key and the granted fields, nothing else.
        Scenario::GetMember | Scenario::GetScoped => {
            data["id"].is_number() && data.get("body").is_none()
        }
        Scenario::ListMember | Scenario::ListScoped => data.as_array().is_some_and(|a| {
            a.len() as u64 == PAGE_SIZE && a.iter().all(|p| p.get("body").is_none())
        }),
        Scenario::List | Scenario::ListFilter => {
            data.as_array().is_some_and(|a| a.len() as u64 == PAGE_SIZE)
                && v["meta"]["count"].is_number()
        }
        Scenario::ListSimple => {
            data.as_array().is_some_and(|a| a.len() as u64 == PAGE_SIZE)
                && v["meta"]["hasNext"] == serde_json::Value::Bool(true)
        }
        Scenario::ListLocalAppend | Scenario::ListCrossAppend => {
            let field = if scenario == Scenario::ListLocalAppend {
                "comments"
            } else {
                "twinComments"
            };
            data.as_array().is_some_and(|a| {
                a.len() as u64 == PAGE_SIZE
                    && a.iter()
                        .all(|p| p[field].as_array().is_some_and(|c| c.len() == 2))
            })
        }
        Scenario::ListAppends => data.as_array().is_some_and(|a| {
            a.len() as u64 == PAGE_SIZE
                && a.iter().all(|p| {
                    p["tags"].as_array().is_some_and(|t| t.len() == 2)
                        && p["comments"].as_array().is_some_and(|c| c.len() == 2)
                })
        }),
    };
    if !ok {
        bail!(
            "unexpected answer for {}: {}",
            scenario.name(),
            body.chars().take(400).collect::<String>()
        );
    }
    Ok(())
}

/// Resets the process's peak resident set (VmHWM) to its current size, so each
/// scenario's peak is its own.
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
}

fn peak_kb(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM")
}

/// User plus system CPU time of the process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after it are counted from its ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The pgbench script of a scenario: the baseline's PostgreSQL statements with literals.
fn pgbench_script(scenario: Scenario, rows: u64) -> String {
    let q = Queries::new(Backend::Postgres, PAGE_SIZE as usize);
    let page = |limit: u64| fill(&q.page, &[limit.to_string(), "0".into()]);
    let ids: Vec<String> = (1..=PAGE_SIZE).map(|i| i.to_string()).collect();
    let lines = match scenario {
        Scenario::Get | Scenario::GetMember | Scenario::GetScoped => vec![
            format!("\\set id random(1, {rows})"),
            fill(&q.get, &[":id".into()]),
        ],
        Scenario::List | Scenario::ListMember | Scenario::ListScoped => {
            vec![q.count.clone(), page(PAGE_SIZE)]
        }
        Scenario::ListSimple => vec![page(PAGE_SIZE + 1)],
        Scenario::ListFilter => vec![
            fill(&q.count_filtered, &["'published'".into(), "900".into()]),
            fill(
                &q.page_filtered,
                &[
                    "'published'".into(),
                    "900".into(),
                    PAGE_SIZE.to_string(),
                    "0".into(),
                ],
            ),
        ],
        Scenario::ListAppends | Scenario::ListLocalAppend | Scenario::ListCrossAppend => vec![
            q.count.clone(),
            page(PAGE_SIZE),
            fill(&q.tags_of, &ids),
            fill(&q.comments_of, &ids),
        ],
        Scenario::Create => vec![fill(
            &q.insert,
            &[
                "'Written by the benchmark'".into(),
                "'Lorem ipsum dolor sit amet, consectetur adipiscing elit.'".into(),
                "500".into(),
                "'draft'".into(),
                "'2024-06-01T12:00:00.000Z'".into(),
            ],
        )],
    };
    lines
        .into_iter()
        .map(|l| {
            // Meta-commands (`\set`) end at the line's end; SQL needs its semicolon.
            if l.starts_with('\\') {
                format!("{l}\n")
            } else {
                format!("{l};\n")
            }
        })
        .collect::<String>()
}

/// Replaces `$1`…`$n` by `values`, highest first so `$1` does not eat `$10`.
fn fill(sql: &str, values: &[String]) -> String {
    let mut out = sql.to_string();
    for (i, v) in values.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), v);
    }
    out
}

fn run_pgbench(plan: &Plan, work: &Path, scenario: Scenario, rows: u64) -> Result<Measurement> {
    let script = work
        .join("scripts")
        .join(format!("pgbench-{}.sql", scenario.name()));
    std::fs::write(&script, pgbench_script(scenario, rows))?;
    let logs = work.join("pgbench-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs)?;
    let (user, host, port) = split_url(&plan.servers.postgres, "postgres", 5432)?;
    let secs = plan.args.duration.as_secs().max(1);
    let out = Command::new("pgbench")
        .current_dir(&logs)
        .args([
            "-n",
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-U",
            &user,
            "-M",
            "prepared",
            "-c",
            &plan.args.pool.to_string(),
            "-j",
            "1",
            "-T",
            &secs.to_string(),
            "-l",
            "--log-prefix",
            "tx",
            "-f",
        ])
        .arg(&script)
        .arg(database_name(rows))
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no tps in pgbench output: {text}"))?;
    // Per-transaction log lines: client, transaction, latency (µs), script, epoch, µs.
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    for entry in std::fs::read_dir(&logs)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            match line.split_whitespace().nth(2) {
                Some(v) => match v.parse::<u64>() {
                    Ok(us) => latencies.push(us),
                    Err(_) => failed += 1,
                },
                None => failed += 1,
            }
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i] as f64 / 1000.0
    };
    Ok(Measurement {
        target: Target::Pgbench,
        backend: Backend::Postgres,
        rows,
        scenario,
        connections: plan.args.pool,
        requests_per_s: tps,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        peak_kb: None,
        cpu_us_per_request: None,
        errors: failed,
        requests: latencies.len() as u64,
        bytes_per_response: None,
    })
}

/// A command's first output line, or `unknown`.
pub fn version_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).to_string();
            if text.trim().is_empty() {
                text = String::from_utf8_lossy(&o.stderr).to_string();
            }
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
