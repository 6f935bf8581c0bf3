//! The README's quickstart curl lines, run verbatim (but for the port) against the real
//! `manifold` binary, with each response checked against the `# →` line below it.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
fn quickstart(readme: &str) -> Vec<(String, Json)> {
    let block = readme
        .split("federation/tests/readme.rs")
        .nth(1)
        .and_then(|rest| rest.split("```sh").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("README has the tested curl block");
    let mut steps = Vec::new();
    let mut lines = block.lines().filter(|l| !l.trim().is_empty()).peekable();
    while let Some(line) = lines.next() {
        assert!(line.starts_with("curl "), "unexpected README line: {line}");
        let expected = lines
            .next()
            .and_then(|l| l.strip_prefix("# → "))
            .unwrap_or_else(|| panic!("no `# → ` line after: {line}"));
        let expected = serde_json::from_str(expected)
            .unwrap_or_else(|e| panic!("bad expected JSON ({e}): {expected}"));
        steps.push((line.to_owned(), expected));
    }
    steps
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

fn start(port: u16, dir: &Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_manifold"))
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
    assert!(steps.len() >= 4, "create, insert, list, get");

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _server = start(port, dir.path());
    assert!(
        dir.path().join("data/main.sqlite").exists(),
        "the main database is created on first start"
    );

    for (command, expected) in steps {
        let command = command.replace("127.0.0.1:13000", &format!("127.0.0.1:{port}"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .expect("sh runs curl");
        assert!(out.status.success(), "{command} failed: {out:?}");
        let body: Json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{command}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert!(
            contains(&body, &expected),
            "{command}\n  got:      {body}\n  expected: {expected}"
        );
    }
}
