//! The commands of the documentation, run as written against the real `manifold` binary.
//!
//! A fenced block right under `<!-- tested: <label> -->` is run line by line, in page
//! order, by the test of its page; only ports, paths, database names and the test servers'
//! credentials are swapped. Under a command, each `# → ` line is part of its output, found
//! in order among the output's lines: a JSON line matches a line holding at least those
//! keys (every element of an array), any other text an equal line. A line `manifold …`
//! (after optional `NAME=value` words) starts the service with those options, stopping the
//! one before; with `# → ` lines under it, it must instead fail to start and print them.
//! `NAME=$(…)` keeps a command's output for later lines as `$NAME`; a command ending in
//! `&` runs in the background. A curl line in any other block fails
//! `every_curl_line_in_the_docs_is_run_or_marked_untested`, unless the block is marked
//! `<!-- untested: <reason> -->`.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use manifold_tests::{Backend, ScratchDatabase, server_credentials};
use serde_json::Value as Json;

/// The pages whose tested blocks the tests below run, with the labels each runs.
const TESTED: &[(&str, &[&str])] = &[
    ("README.md", &["quickstart"]),
    ("docs/api.md", &["api"]),
    ("docs/associations.md", &["associations"]),
    ("docs/configuration.md", &["configuration"]),
    ("docs/data-sources.md", &["postgres", "mariadb", "sqlite"]),
    ("docs/filters.md", &["filters"]),
    ("docs/mongodb.md", &["mongodb"]),
    ("docs/security.md", &["security"]),
];

/// How long a read whose answer does not match yet is retried: sources load in the
/// background.
const SETTLE: Duration = Duration::from_secs(15);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(page: &str) -> String {
    std::fs::read_to_string(repo().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"))
}

/// README.md and every page under docs/, as paths relative to the repository.
fn doc_pages() -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, pages: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{prefix}: {e}"));
        for entry in entries.map(|e| e.expect("a directory entry")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{prefix}/{name}");
            if entry.path().is_dir() {
                walk(&entry.path(), &path, pages);
            } else if name.ends_with(".md") {
                pages.push(path);
            }
        }
    }
    let mut pages = vec!["README.md".to_owned()];
    walk(&repo().join("docs"), "docs", &mut pages);
    pages.sort();
    pages
}

/// What the comment right above a fenced block says about it.
#[derive(Debug, PartialEq)]
enum Marker {
    Tested(String),
    Untested,
    None,
}

/// A fenced block: its marker and its lines with their 1-based line numbers.
struct Block {
    marker: Marker,
    lines: Vec<(usize, String)>,
}

/// A page's fenced blocks, and the line numbers of markers that stand above no block or
/// are malformed.
fn blocks(page: &str) -> (Vec<Block>, Vec<usize>) {
    let mut blocks = Vec::new();
    let mut bad_markers = Vec::new();
    let mut open: Option<Block> = None;
    // The marker on the last non-blank line outside a block, if that line is one.
    let mut marker: Option<(usize, Marker)> = None;
    for (index, line) in page.lines().enumerate() {
        let number = index + 1;
        let fence = line.trim_start().starts_with("```");
        if let Some(block) = open.as_mut() {
            if fence {
                blocks.extend(open.take());
            } else {
                block.lines.push((number, line.to_owned()));
            }
            continue;
        }
        if fence {
            let marker = marker.take().map_or(Marker::None, |(_, m)| m);
            open = Some(Block {
                marker,
                lines: Vec::new(),
            });
            continue;
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Some((at, _)) = marker.take() {
            bad_markers.push(at);
        }
        let comment = text
            .strip_prefix("<!--")
            .and_then(|t| t.strip_suffix("-->"))
            .map(str::trim);
        if let Some(label) = comment.and_then(|c| c.strip_prefix("tested:")) {
            let label = label.trim();
            if label.is_empty() || label.contains(' ') {
                bad_markers.push(number);
            } else {
                marker = Some((number, Marker::Tested(label.to_owned())));
            }
        } else if let Some(reason) = comment.and_then(|c| c.strip_prefix("untested:")) {
            if reason.trim().is_empty() {
                bad_markers.push(number);
            } else {
                marker = Some((number, Marker::Untested));
            }
        }
    }
    bad_markers.extend(marker.map(|(at, _)| at));
    (blocks, bad_markers)
}

/// A command line: curl, or a command substitution that runs curl.
fn is_curl(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("curl ") || line.contains("$(curl ")
}

/// One command of a tested block and the `# → ` lines under it.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The commands of a page's blocks marked `<!-- tested: <label> -->`, in page order.
fn tested_steps(page_name: &str, page: &str, label: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let (blocks, _) = blocks(page);
    for block in blocks {
        if block.marker != Marker::Tested(label.to_owned()) {
            continue;
        }
        let first = steps.len();
        for (number, line) in block.lines {
            if let Some(expected) = line.strip_prefix("# → ") {
                let Some(step) = steps[first..].last_mut() else {
                    panic!("{page_name}:{number}: a `# → ` line under no command");
                };
                step.expected.push(expected.to_owned());
                continue;
            }
            let text = line.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if let Some(step) = steps[first..].last_mut()
                && step.expected.is_empty()
                && let Some(head) = step.command.strip_suffix('\\')
            {
                step.command = format!("{head}{text}");
                continue;
            }
            steps.push(Step {
                line: number,
                command: text.to_owned(),
                expected: Vec::new(),
            });
        }
    }
    steps
}

/// `NAME=$(command)`: the name and the command.
fn capture(command: &str) -> Option<(&str, &str)> {
    let (name, rest) = command.split_once("=$(")?;
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    Some((name, rest.strip_suffix(')')?)).filter(|_| name_ok)
}

/// `[NAME=value …] manifold [serve] …`: the assignments, and what follows `manifold`. Any
/// other subcommand (`manifold users list`) is an ordinary command, which runs and ends.
fn serve_command(command: &str) -> Option<(Vec<&str>, &str)> {
    let mut assignments = Vec::new();
    let mut rest = command;
    loop {
        let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        if word == "manifold" {
            let first = tail.split_whitespace().next().unwrap_or("");
            let serves = first.is_empty() || first == "serve" || first.starts_with('-');
            return serves.then_some((assignments, tail));
        }
        let (name, _) = word.split_once('=')?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            return None;
        }
        assignments.push(word);
        rest = tail;
    }
}

/// A curl line that only reads, so it may be sent again until sources have loaded.
fn reads_only(command: &str) -> bool {
    command.starts_with("curl ")
        && !command.contains(" -X ")
        && (!command.contains(" -d ") || command.contains(" -G"))
}

/// Each expected line is found, in order, among the output's lines.
fn output_matches(output: &str, expected: &[String]) -> bool {
    let mut lines = output.lines().map(|l| l.trim_end_matches('\r'));
    expected
        .iter()
        .all(|e| lines.any(|line| line_matches(line, e)))
}

fn line_matches(actual: &str, expected: &str) -> bool {
    match serde_json::from_str::<Json>(expected) {
        Ok(e @ (Json::Object(_) | Json::Array(_))) => {
            serde_json::from_str::<Json>(actual).is_ok_and(|a| contains(&a, &e))
        }
        _ => actual.trim() == expected.trim(),
    }
}

/// `expected` is contained in `actual`: objects key by key, arrays element by element.
fn contains(actual: &Json, expected: &Json) -> bool {
    match (actual, expected) {
        (Json::Object(a), Json::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        (Json::Array(a), Json::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| contains(x, y))
        }
        _ => actual == expected,
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A process killed when the test ends, also when it fails.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Stops the process and returns what it wrote to stderr.
    fn stderr(&mut self) -> String {
        let _ = self.0.kill();
        let mut log = String::new();
        if let Some(mut stderr) = self.0.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        log
    }
}

/// Runs the tested lines of pages: the service they start, the variables they set, and
/// what went wrong (collected, so one run reports every wrong line of a page).
struct Runner {
    page: String,
    dir: tempfile::TempDir,
    substitutions: Vec<(String, String)>,
    variables: Vec<(String, String)>,
    /// Where the service listens when a line does not say: the documented default.
    listen: String,
    server: Option<Process>,
    background: Vec<Process>,
    failures: Vec<String>,
    /// Cleared after the first failure: the lines after it run against a state the page
    /// did not expect, and waiting for each would only slow the report.
    retry: bool,
    ran: usize,
}

impl Runner {
    /// A runner for `page`, in a new directory: every documented port of the service is
    /// swapped for a free one, then `substitutions` are applied in order.
    fn new(page: &str, substitutions: Vec<(String, String)>) -> Self {
        let text = read(page);
        // 13000 always: it is where a service started without `--listen` goes.
        let mut ports = BTreeSet::from([13000]);
        for (at, _) in text.match_indices("127.0.0.1:") {
            let digits: String = text[at + 10..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse::<u16>()
                && ((13000..14000).contains(&port) || port == 9464)
            {
                ports.insert(port);
            }
        }
        let mut mapped = Vec::new();
        for port in ports {
            let free = free_port();
            mapped.push((format!("127.0.0.1:{port}"), format!("127.0.0.1:{free}")));
            mapped.push((format!("0.0.0.0:{port}"), format!("127.0.0.1:{free}")));
        }
        mapped.extend(substitutions);
        let mut runner = Self {
            page: page.to_owned(),
            dir: tempfile::tempdir().expect("temp dir"),
            substitutions: mapped,
            variables: Vec::new(),
            listen: String::new(),
            server: None,
            background: Vec::new(),
            failures: Vec::new(),
            retry: true,
            ran: 0,
        };
        runner.listen = runner.substitute("127.0.0.1:13000");
        runner
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn substitute(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for (from, to) in &self.substitutions {
            text = text.replace(from, to);
        }
        text
    }

    fn fail(&mut self, line: usize, message: String) {
        self.failures
            .push(format!("{}:{line}: {message}", self.page));
        self.retry = false;
    }

    /// Starts the service as the README does, on `data/main.sqlite` in the directory.
    fn start(&mut self, root_password: &str) {
        let command = format!(
            "MANIFOLD_ROOT_PASSWORD={root_password} manifold serve --main-db sqlite://{}/data/main.sqlite",
            self.dir().display()
        );
        self.serve(0, &command, &[]);
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
    }

    /// Keeps root's token in `$TOKEN`, signed in as the README's quickstart does.
    fn sign_in(&mut self, password: &str) {
        let step = Step {
            line: 0,
            command: format!(
                r#"TOKEN=$(curl -s -X POST http://127.0.0.1:13000/api/auth:signIn -H 'Content-Type: application/json' -d '{{"account":"root","password":"{password}"}}' | sed -E 's/.*"token":"([^"]+)".*/\1/')"#
            ),
            expected: Vec::new(),
        };
        self.step(&step);
    }

    /// Runs the page's blocks marked with `label`, in page order.
    fn run(&mut self, label: &str) {
        let steps = tested_steps(&self.page, &read(&self.page), label);
        for step in &steps {
            self.step(step);
        }
        self.ran += steps.len();
    }

    fn shell(&self, command: &str) -> Command {
        // `manifold` in an ordinary command (`manifold users list`, `… | manifold …`) is
        // the binary under test.
        let binaries = Path::new(env!("CARGO_BIN_EXE_manifold"))
            .parent()
            .expect("the binary's directory");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(binaries.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .expect("a PATH");
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(command)
            .env("PATH", path)
            .current_dir(self.dir())
            .envs(self.variables.iter().map(|(k, v)| (k, v)));
        shell
    }

    fn output(&self, command: &str) -> Output {
        self.shell(command)
            .stdin(Stdio::null())
            .output()
            .expect("sh runs")
    }

    fn step(&mut self, step: &Step) {
        let command = self.substitute(&step.command);
        let expected: Vec<String> = step.expected.iter().map(|e| self.substitute(e)).collect();
        if let Some((name, inner)) = capture(&command) {
            let out = self.output(inner);
            let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !out.status.success() || value.is_empty() {
                self.fail(step.line, format!("{command}\n  printed nothing: {out:?}"));
            }
            self.variables.push((name.to_owned(), value));
            return;
        }
        if serve_command(&command).is_some() {
            self.serve(step.line, &command, &expected);
            return;
        }
        if let Some(command) = command.strip_suffix('&') {
            let child = self
                .shell(command)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh starts");
            self.background.push(Process(child));
            return;
        }
        if command.starts_with("curl ") && expected.is_empty() {
            self.fail(
                step.line,
                format!("{command}\n  has no `# → ` line: show what it answers"),
            );
            return;
        }
        let deadline = Instant::now() + SETTLE;
        loop {
            let out = self.output(&command);
            let stdout = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && output_matches(&stdout, &expected) {
                return;
            }
            if out.status.success()
                && self.retry
                && reads_only(&command)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            self.fail(
                step.line,
                format!(
                    "{command}\n  expected: {}\n  got ({}):\n{stdout}{stderr}",
                    expected.join("\n            "),
                    out.status
                ),
            );
            return;
        }
    }

    /// `[NAME=value …] manifold …`: stops the running service and starts this one. With
    /// expected lines, it must fail to start and print them on stderr.
    fn serve(&mut self, line: usize, command: &str, expected: &[String]) {
        self.server = None;
        let Some((assignments, rest)) = serve_command(command) else {
            panic!("not a manifold command: {command}");
        };
        let script = format!(
            "{} exec {} {rest}",
            assignments.join(" "),
            env!("CARGO_BIN_EXE_manifold")
        );
        let listen = command
            .split_once("--listen ")
            .or_else(|| command.split_once("MANIFOLD_LISTEN="))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or(&self.listen)
            .to_owned();
        let child = self
            .shell(&script)
            .env("MANIFOLD_LISTEN", &self.listen)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("manifold starts");
        let mut process = Process(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        if !expected.is_empty() {
            let status = loop {
                match process.0.try_wait() {
                    Ok(Some(status)) => break Some(status),
                    _ if Instant::now() > deadline => break None,
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            };
            let log = process.stderr();
            match status {
                Some(status) if !status.success() && output_matches(&log, expected) => {}
                _ => self.fail(
                    line,
                    format!(
                        "{command}\n  expected it to stop with: {}\n  got ({status:?}):\n{log}",
                        expected.join("\n")
                    ),
                ),
            }
            return;
        }
        let addr: SocketAddr = listen
            .parse()
            .unwrap_or_else(|e| panic!("{command}: listen address {listen}: {e}"));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = matches!(process.0.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let log = process.stderr();
                self.fail(
                    line,
                    format!("{command}\n  did not listen on {listen}:\n{log}"),
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.server = Some(process);
    }

    /// Stops everything; fails with every wrong line, or when fewer than `at_least`
    /// commands ran.
    fn finish(mut self, at_least: usize) {
        self.server = None;
        self.background.clear();
        assert!(
            self.failures.is_empty(),
            "{} line(s) of {} did not do what the page says:\n\n{}",
            self.failures.len(),
            self.page,
            self.failures.join("\n\n")
        );
        assert!(
            self.ran >= at_least,
            "only {} documented commands of {} ran",
            self.ran,
            self.page
        );
    }
}

/// The root password the README starts the service with.
fn root_password(readme: &str) -> String {
    readme
        .split("MANIFOLD_ROOT_PASSWORD=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the README sets MANIFOLD_ROOT_PASSWORD")
        .to_owned()
}

/// Runs `statements` in the scratch database `db`.
async fn seed(db: &ScratchDatabase, backend: Backend, statements: &[&str]) {
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url()).await.expect("postgres");
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&pool)
                    .await
                    .expect("seed");
            }
            pool.close().await;
        }
        _ => {
            let pool = sqlx::MySqlPool::connect(&db.url()).await.expect("mariadb");
            for s in statements {
                sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&pool)
                    .await
                    .expect("seed");
            }
            pool.close().await;
        }
    }
}

/// Swaps a page's PostgreSQL and MariaDB logins (`"username":"postgres","password":"postgres"`,
/// `"username":"root","password":""`) for the test servers'.
fn login_substitutions() -> Vec<(String, String)> {
    let (pg_user, pg_password) = server_credentials(Backend::Postgres);
    let (my_user, my_password) = server_credentials(Backend::MariaDb);
    vec![
        (
            r#""username":"postgres","password":"postgres""#.to_owned(),
            format!(r#""username":"{pg_user}","password":"{pg_password}""#),
        ),
        (
            r#""username":"root","password":"""#.to_owned(),
            format!(r#""username":"{my_user}","password":"{my_password}""#),
        ),
    ]
}

#[test]
fn readme_quickstart_curl_lines_work_against_the_binary() {
    let readme = read("README.md");
    let mut runner = Runner::new("README.md", Vec::new());
    runner.start(&root_password(&readme));
    assert!(
        runner.dir().join("data/main.sqlite").exists(),
        "the main database is created on first start"
    );
    runner.run("quickstart");
    runner.finish(6);
}

#[test]
fn data_sources_page_examples_work_against_the_binary() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (shop, warehouse) = runtime.block_on(async {
        let shop = ScratchDatabase::create(Backend::Postgres).await;
        seed(&shop, Backend::Postgres, &[
            "CREATE TABLE orders (id serial primary key, customer text, total numeric(10,2))",
            "INSERT INTO orders (customer, total) VALUES ('Ann', 120.50), ('Bo', 250.00), ('Cat', 80.00)",
        ])
        .await;
        let warehouse = ScratchDatabase::create(Backend::MariaDb).await;
        seed(&warehouse, Backend::MariaDb, &[
            "CREATE TABLE stock (sku varchar(20) primary key, qty int, updated_at datetime)",
            "INSERT INTO stock VALUES ('A-1', 5, '2024-03-01 09:30:00'), ('B-2', 7, '2024-03-02 10:00:00')",
        ])
        .await;
        (shop, warehouse)
    });
    let mut substitutions = login_substitutions();
    substitutions.push((
        r#""database":"shop""#.to_owned(),
        format!(r#""database":"{}""#, shop.name()),
    ));
    substitutions.push((
        r#""database":"warehouse""#.to_owned(),
        format!(r#""database":"{}""#, warehouse.name()),
    ));
    let mut runner = Runner::new("docs/data-sources.md", substitutions);
    let password = "docs-example-root";
    runner.start(password);
    // The page's lines use a token in $TOKEN, as the README's quickstart gets it.
    runner.sign_in(password);
    for label in ["postgres", "mariadb", "sqlite"] {
        runner.run(label);
    }
    runner.finish(12);
    drop((shop, warehouse));
}

#[test]
fn security_page_examples_work_against_the_binary() {
    let readme = read("README.md");
    let mut runner = Runner::new("docs/security.md", Vec::new());
    // The page starts the service as the README does.
    runner.start(&root_password(&readme));
    runner.run("security");
    runner.finish(19);
}

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;

#[test]
fn mongodb_page_examples_work_against_the_binary_and_secantusdb() {
    let server = secantus::Secantus::start();
    // The page's server listens on 27017; the test's on a free port.
    let substitutions = vec![(
        "mongodb://127.0.0.1:27017".to_owned(),
        format!("mongodb://127.0.0.1:{}", server.port),
    )];
    let mut runner = Runner::new("docs/mongodb.md", substitutions);
    let password = "docs-example-root";
    runner.start(password);
    runner.sign_in(password);
    runner.run("mongodb");
    runner.finish(5);
}

#[test]
fn api_page_examples_work_against_the_binary() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // §10's registered databases: a table, and a view that takes 20 s to read.
    let (pg, my) =
        runtime.block_on(async {
            let pg = ScratchDatabase::create(Backend::Postgres).await;
            seed(
                &pg,
                Backend::Postgres,
                &[
                    "CREATE TABLE items (id serial primary key, name text NOT NULL)",
                    "INSERT INTO items (name) VALUES ('bolt'), ('nut')",
                    "CREATE VIEW slow AS SELECT 1 AS id, pg_sleep(20)::text AS s",
                ],
            )
            .await;
            let my = ScratchDatabase::create(Backend::MariaDb).await;
            seed(&my, Backend::MariaDb, &[
            "CREATE TABLE items (id int auto_increment primary key, name varchar(50) NOT NULL)",
            "INSERT INTO items (name) VALUES ('bolt'), ('nut')",
            "CREATE VIEW slow AS SELECT 1 AS id, SLEEP(20) AS s",
        ])
        .await;
            (pg, my)
        });
    let mut runner = Runner::new("docs/api.md", Vec::new());
    let dir = runner.dir().display().to_string();
    let mut substitutions = vec![
        ("/tmp/manifold-docs".to_owned(), dir),
        (
            r#""database":"mdocs_pg""#.to_owned(),
            format!(r#""database":"{}""#, pg.name()),
        ),
        (
            r#""database":"mdocs_my""#.to_owned(),
            format!(r#""database":"{}""#, my.name()),
        ),
    ];
    substitutions.extend(login_substitutions());
    runner.substitutions.extend(substitutions);
    runner.run("api");
    runner.finish(160);
    drop((pg, my));
}

#[test]
fn filters_page_examples_work_against_the_binary() {
    let mut runner = Runner::new("docs/filters.md", Vec::new());
    // The page starts the service as the README does.
    runner.start(&root_password(&read("README.md")));
    runner.run("filters");
    runner.finish(40);
}

#[test]
fn associations_page_examples_work_against_the_binary() {
    let mut runner = Runner::new("docs/associations.md", Vec::new());
    // The page starts the service as the README does, with its data under ./data.
    runner.start(&root_password(&read("README.md")));
    runner.run("associations");
    runner.finish(40);
}

#[test]
fn configuration_page_examples_work_against_the_binary() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The page's PostgreSQL main database, empty.
    let main_db = runtime.block_on(ScratchDatabase::create(Backend::Postgres));
    let server = main_db
        .url()
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/"))
        .expect("a database URL");
    let mut runner = Runner::new("docs/configuration.md", Vec::new());
    let dir = runner.dir().display().to_string();
    runner.substitutions.extend([
        ("/tmp/manifold-docs".to_owned(), dir),
        (
            "postgres://postgres@127.0.0.1:5432/mdocs_main".to_owned(),
            main_db.url(),
        ),
        ("postgres://postgres@127.0.0.1:5432/".to_owned(), server),
    ]);
    runner.run("configuration");
    runner.finish(29);
    drop(main_db);
}

/// One option of `manifold serve --help`: its flag, variable and default.
struct HelpOption {
    flag: String,
    variable: Option<String>,
    default: Option<String>,
}

fn serve_help() -> Vec<HelpOption> {
    let out = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .args(["serve", "--help"])
        .output()
        .expect("manifold serve --help");
    assert!(out.status.success(), "manifold serve --help: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut options: Vec<HelpOption> = Vec::new();
    for line in help.lines() {
        let text = line.trim();
        let flag = text
            .split_whitespace()
            .find(|w| w.starts_with("--"))
            .filter(|_| text.starts_with('-'));
        if let Some(flag) = flag {
            options.push(HelpOption {
                flag: flag.trim_end_matches(',').to_owned(),
                variable: None,
                default: None,
            });
        } else if let Some(option) = options.last_mut() {
            if let Some(variable) = text.strip_prefix("[env: ") {
                option.variable = Some(
                    variable
                        .trim_end_matches(']')
                        .trim_end_matches('=')
                        .to_owned(),
                );
            } else if let Some(default) = text.strip_prefix("[default: ") {
                option.default = Some(default.trim_end_matches(']').to_owned());
            }
        }
    }
    options
}

/// The first `code` span of a table cell, when the cell starts with one.
fn code_span(cell: &str) -> Option<&str> {
    cell.trim().strip_prefix('`')?.split('`').next()
}

#[test]
fn configuration_page_lists_every_serve_option_with_its_variable_and_default() {
    let help = serve_help();
    let page = read("docs/configuration.md");
    let mut documented = BTreeSet::new();
    let mut problems = Vec::new();
    for (index, line) in page.lines().enumerate() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `--flag` | `VARIABLE` | default | meaning |
        let [_, flag, variable, default, ..] = cells.as_slice() else {
            continue;
        };
        let (Some(flag), Some(variable)) = (code_span(flag), code_span(variable)) else {
            continue;
        };
        if !flag.starts_with("--") {
            continue;
        }
        documented.insert(flag.to_owned());
        let at = index + 1;
        let Some(option) = help.iter().find(|o| o.flag == flag) else {
            problems.push(format!(
                "configuration.md:{at}: {flag} is not an option of `manifold serve`"
            ));
            continue;
        };
        if option.variable.as_deref() != Some(variable) {
            problems.push(format!(
                "configuration.md:{at}: {flag} reads {:?}, not {variable}",
                option.variable
            ));
        }
        if option.default.as_deref() != code_span(default) {
            problems.push(format!(
                "configuration.md:{at}: {flag} defaults to {:?}, the page says {default}",
                option.default
            ));
        }
    }
    for option in &help {
        if option.flag != "--help" && !documented.contains(&option.flag) {
            problems.push(format!(
                "{} is missing from configuration.md's options table",
                option.flag
            ));
        }
    }
    // Every variable the pages name, and every option of a `manifold` line they show.
    let variables: BTreeSet<&str> = help.iter().filter_map(|o| o.variable.as_deref()).collect();
    let flags: BTreeSet<&str> = help.iter().map(|o| o.flag.as_str()).collect();
    for page_name in doc_pages() {
        let text = read(&page_name);
        for (at, _) in text.match_indices("MANIFOLD_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.starts_with("MANIFOLD_TEST_") && !variables.contains(name.as_str()) {
                problems.push(format!(
                    "{page_name}: {name} is not a variable of `manifold serve`"
                ));
            }
        }
        let (blocks, _) = blocks(&text);
        for (number, line) in blocks.iter().flat_map(|b| &b.lines) {
            let Some((_, rest)) = serve_command(line.trim()) else {
                continue;
            };
            for word in rest.split_whitespace().filter(|w| w.starts_with("--")) {
                let flag = word.split('=').next().unwrap_or(word);
                if !flags.contains(flag) && flag != "--version" {
                    problems.push(format!(
                        "{page_name}:{number}: {flag} is not an option of `manifold serve`"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_curl_line_in_the_docs_is_run_or_marked_untested() {
    let mut problems = Vec::new();
    for page_name in doc_pages() {
        let text = read(&page_name);
        let (blocks, bad_markers) = blocks(&text);
        for at in bad_markers {
            problems.push(format!(
                "{page_name}:{at}: a marker must be `<!-- tested: <label> -->` or \
                 `<!-- untested: <reason> -->`, right above a fenced block"
            ));
        }
        for block in blocks {
            match &block.marker {
                Marker::Tested(label) => {
                    let run = TESTED.iter().any(|(page, labels)| {
                        *page == page_name && labels.contains(&label.as_str())
                    });
                    if !run {
                        let at = block.lines.first().map_or(0, |(n, _)| *n);
                        problems.push(format!(
                            "{page_name}:{at}: no test runs blocks labelled {label} on this page (see TESTED)"
                        ));
                    }
                }
                Marker::Untested => {}
                Marker::None => {
                    for (number, line) in block.lines.iter().filter(|(_, l)| is_curl(l)) {
                        problems.push(format!("{page_name}:{number}: {}", line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "curl lines no test runs; mark their block `<!-- tested: <label> -->` and give each a \
         `# → ` line, or, when it cannot run here, `<!-- untested: <reason> -->`:\n{}",
        problems.join("\n")
    );
}
