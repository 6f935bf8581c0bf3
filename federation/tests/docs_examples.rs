//! The curl lines of the README's quickstart and of docs/data-sources.md, run verbatim
//! (but for the port and the test servers' credentials) against the real `manifold`
//! binary, each response checked against the `# →` line below it.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use manifold_tests::{Backend, ScratchDatabase, server_credentials};
use serde_json::Value as Json;

/// Stops the server even when an assertion fails.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The curl commands of the README's tested block, each with its expected output.
fn quickstart(readme: &str) -> Vec<Step> {
    let block = readme
        .split("federation/tests/docs_examples.rs")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README has the tested curl block");
    steps(block)
}

/// The blocks of a doc page marked `<!-- tested: <label> -->`, in order.
fn tested_blocks<'a>(page: &'a str, label: &str) -> Vec<&'a str> {
    let marker = format!("<!-- tested: {label} -->");
    page.split(&marker)
        .skip(1)
        .filter_map(|rest| rest.split("```sh").nth(1))
        .filter_map(|rest| rest.split("```").next())
        .collect()
}

/// One documented shell line.
enum Step {
    /// A curl line with the `# → ` line under it: part of the answer it must give.
    Check { command: String, expected: Json },
    /// `NAME=$(command)`: later lines see the command's output as `$NAME`.
    Capture { name: String, command: String },
}

/// Curl lines with the `# → ` line under each, and `NAME=$(…)` lines.
fn steps(block: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = block.lines().filter(|l| !l.trim().is_empty()).peekable();
    while let Some(line) = lines.next() {
        if let Some((name, rest)) = line.split_once("=$(")
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            let command = rest.strip_suffix(')').expect("`NAME=$(…)` ends with `)`");
            steps.push(Step::Capture {
                name: name.to_owned(),
                command: command.to_owned(),
            });
            continue;
        }
        assert!(line.starts_with("curl "), "unexpected README line: {line}");
        let expected = lines
            .next()
            .and_then(|l| l.strip_prefix("# → "))
            .unwrap_or_else(|| panic!("no `# → ` line after: {line}"));
        let expected = serde_json::from_str(expected)
            .unwrap_or_else(|e| panic!("bad expected JSON ({e}): {expected}"));
        steps.push(Step::Check {
            command: line.to_owned(),
            expected,
        });
    }
    steps
}

/// The shell the documented lines run in: the variables captured so far.
#[derive(Default)]
struct Shell {
    variables: Vec<(String, String)>,
}

impl Shell {
    fn output(&self, command: &str) -> std::process::Output {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(self.variables.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("sh runs curl");
        assert!(out.status.success(), "{command} failed: {out:?}");
        out
    }
}

/// Runs each step against the server on `port` after `substitutions` (also applied to
/// the expected answers); a GET whose answer does not match yet is retried for up to
/// 15 s, since sources load in the background.
fn run(port: u16, shell: &mut Shell, steps: &[Step], substitutions: &[(String, String)]) {
    let prepare = |command: &str| {
        let mut command = command.replace("127.0.0.1:13000", &format!("127.0.0.1:{port}"));
        for (from, to) in substitutions {
            command = command.replace(from, to);
        }
        command
    };
    for step in steps {
        let (command, expected) = match step {
            Step::Capture { name, command } => {
                let out = shell.output(&prepare(command));
                let value = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                assert!(!value.is_empty(), "{command} printed nothing");
                shell.variables.push((name.clone(), value));
                continue;
            }
            Step::Check { command, expected } => (prepare(command), expected),
        };
        let mut expected = expected.to_string();
        for (from, to) in substitutions {
            expected = expected.replace(from, to);
        }
        let expected: Json = serde_json::from_str(&expected).expect("expected JSON");
        let retry = !command.contains("-X POST");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = shell.output(&command);
            let body: Json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "{command}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            });
            if contains(&body, &expected) {
                break;
            }
            assert!(
                retry && Instant::now() < deadline,
                "{command}\n  got:      {body}\n  expected: {expected}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
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

/// A shell whose `$TOKEN` is root's, signed in as the README's quickstart does.
fn signed_in_shell(port: u16, password: &str) -> Shell {
    let mut shell = Shell::default();
    let sign_in = Step::Capture {
        name: "TOKEN".into(),
        command: format!(
            r#"curl -s -X POST http://127.0.0.1:13000/api/auth:signIn -H 'Content-Type: application/json' -d '{{"account":"root","password":"{password}"}}' | sed -E 's/.*"token":"([^"]+)".*/\1/'"#
        ),
    };
    run(port, &mut shell, &[sign_in], &[]);
    shell
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

fn start(port: u16, dir: &Path, root_password: &str) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_manifold"))
        .env("MANIFOLD_ROOT_PASSWORD", root_password)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--main-db")
        .arg(format!("sqlite://{}/data/main.sqlite", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("manifold starts");
    let mut server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            let mut log = String::new();
            if let Some(mut stderr) = server.0.stderr.take() {
                let _ = stderr.read_to_string(&mut log);
            }
            panic!("manifold exited with {status}: {log}");
        }
        assert!(
            Instant::now() < deadline,
            "manifold did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn readme_quickstart_curl_lines_work_against_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let steps = quickstart(&readme);
    assert!(steps.len() >= 6, "sign in, create, insert, list, get");

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _server = start(port, dir.path(), &root_password(&readme));
    assert!(
        dir.path().join("data/main.sqlite").exists(),
        "the main database is created on first start"
    );

    run(port, &mut Shell::default(), &steps, &[]);
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

#[test]
fn data_sources_page_examples_work_against_the_binary() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/data-sources.md"),
    )
    .expect("docs/data-sources.md");
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
    let (pg_user, pg_password) = server_credentials(Backend::Postgres);
    let (my_user, my_password) = server_credentials(Backend::MariaDb);
    let substitutions = [
        (
            r#""username":"postgres","password":"postgres""#.to_owned(),
            format!(r#""username":"{pg_user}","password":"{pg_password}""#),
        ),
        (
            r#""username":"root","password":"""#.to_owned(),
            format!(r#""username":"{my_user}","password":"{my_password}""#),
        ),
        (
            r#""database":"shop""#.to_owned(),
            format!(r#""database":"{}""#, shop.name()),
        ),
        (
            r#""database":"warehouse""#.to_owned(),
            format!(r#""database":"{}""#, warehouse.name()),
        ),
    ];

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let password = "docs-example-root";
    let _server = start(port, dir.path(), password);
    // The page's lines use a token in $TOKEN, as the README's quickstart gets it.
    let mut shell = signed_in_shell(port, password);
    let mut ran = 0;
    for label in ["postgres", "mariadb", "sqlite"] {
        for block in tested_blocks(&page, label) {
            let block_steps = steps(block);
            ran += block_steps.len();
            run(port, &mut shell, &block_steps, &substitutions);
        }
    }
    assert!(ran >= 12, "only {ran} documented steps were found");
    drop((shop, warehouse));
}

#[test]
fn security_page_examples_work_against_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = std::fs::read_to_string(root.join("docs/security.md")).expect("docs/security.md");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    // The page starts the service as the README does.
    let _server = start(port, dir.path(), &root_password(&readme));
    let mut shell = Shell::default();
    let mut ran = 0;
    for block in tested_blocks(&page, "security") {
        let block_steps = steps(block);
        ran += block_steps.len();
        run(port, &mut shell, &block_steps, &[]);
    }
    assert!(ran >= 19, "only {ran} documented steps were found");
}

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;

#[test]
fn mongodb_page_examples_work_against_the_binary_and_secantusdb() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = std::fs::read_to_string(root.join("docs/mongodb.md")).expect("docs/mongodb.md");
    let server = secantus::Secantus::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let password = "docs-example-root";
    let _manifold = start(port, dir.path(), password);
    let mut shell = signed_in_shell(port, password);
    // The page's server listens on 27017; the test's on a free port.
    let substitutions = [(
        "mongodb://127.0.0.1:27017".to_owned(),
        format!("mongodb://127.0.0.1:{}", server.port),
    )];
    let mut ran = 0;
    for block in tested_blocks(&page, "mongodb") {
        let block_steps = steps(block);
        ran += block_steps.len();
        run(port, &mut shell, &block_steps, &substitutions);
    }
    assert!(ran >= 5, "only {ran} documented steps were found");
}
