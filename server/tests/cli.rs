//! `manifold users …` and `manifold api-keys …` through the real binary, on a SQLite main
//! database: a user the command line creates signs in over HTTP, a password it sets
//! replaces the old one (and ends the old sessions of a running service), an API key it
//! creates is accepted as a Bearer token until it revokes it, and a wrong username, role
//! or key id is a clear error with a non-zero exit.

mod support;

use support::{free_port, inherited_settings, request};

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::net::TcpStream;

const ROOT_PASSWORD: &str = "cli-test-root";

/// A main database in a directory of its own.
struct Main {
    dir: tempfile::TempDir,
}

impl Main {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}/data/main.sqlite", self.dir.path().display())
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `manifold <args> --main-db <this>`, with `stdin` written to it.
    fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = manifold(self.path());
        command
            .args(args)
            .args(["--main-db", &self.url()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("manifold starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("manifold ends")
    }

    /// [`Main::cli`] that must succeed; its standard output.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "manifold {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// [`Main::cli`] that must fail with exit code 1; its standard error.
    fn fails(&self, args: &[&str], stdin: &str) -> String {
        let out = self.cli(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(1),
            "manifold {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("UTF-8")
    }
}

/// The binary, without this process's settings, with a known root password.
fn manifold(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manifold"));
    for key in inherited_settings() {
        command.env_remove(key);
    }
    command
        .env("MANIFOLD_ROOT_PASSWORD", ROOT_PASSWORD)
        .current_dir(dir);
    command
}

/// The only JSON line of `out`.
fn json_line(out: &str) -> Json {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {out}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{out}: {e}"))
}

/// A running `manifold serve` on a main database.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the service on `main` and waits until it is ready. Its token cache lives a
    /// second, so what the command line changes reaches it in a second.
    async fn start(main: &Main) -> Self {
        let port = free_port();
        let log = main.path().join(format!("serve-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = manifold(main.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--main-db", &main.url()])
            .env("MANIFOLD_AUTH_CACHE_TTL", "1s")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("manifold starts");
        let mut server = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("manifold exited with {status}: {}", server.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok()
                && server.send("GET", "/health/ready", None, None).await.0 == 200
            {
                return server;
            }
            assert!(Instant::now() < deadline, "not ready: {}", server.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request; the status and the JSON body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Json>,
    ) -> (u16, Json) {
        let authorization = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let reply = request(self.port, method, path, &headers, body).await;
        (reply.status, reply.body)
    }

    /// `auth:signIn`: the status and the token, if one was given.
    async fn sign_in(&self, account: &str, password: &str) -> (u16, Option<String>) {
        let body = json!({ "account": account, "password": password });
        let (status, answer) = self
            .send("POST", "/api/auth:signIn", None, Some(&body))
            .await;
        let token = answer["data"]["token"].as_str().map(str::to_owned);
        (status, token)
    }

    /// The status of `auth:check` as `token`, once it is `status` (within 10 s: the
    /// service trusts a token it verified for its cache's lifetime).
    async fn check_becomes(&self, token: &str, status: u16) -> Json {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (got, body) = self.send("GET", "/api/auth:check", Some(token), None).await;
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "auth:check stayed {got} ({body}), not {status}: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_user_the_cli_creates_signs_in_and_a_password_it_sets_replaces_the_old() {
    let main = Main::new();
    let created = json_line(&main.ok(
        &[
            "users",
            "create",
            "--username",
            "ann",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "first-password\n",
    ));
    assert_eq!(created["username"], "ann");
    assert_eq!(created["roles"], json!(["admin"]));
    assert!(created.get("password").is_none(), "{created}");
    // Without --password-stdin a password is generated and shown once.
    let generated = json_line(&main.ok(&["users", "create", "--username", "bo"], ""));
    assert_eq!(generated["roles"], json!(["member"]), "the default role");
    let bo_password = generated["password"]
        .as_str()
        .expect("a password")
        .to_owned();

    let server = Server::start(&main).await;
    let (status, token) = server.sign_in("ann", "first-password").await;
    assert_eq!(status, 200, "{}", server.log());
    let token = token.expect("a token");
    let me = server.check_becomes(&token, 200).await;
    assert_eq!(me["data"]["username"], "ann");
    assert_eq!(server.sign_in("bo", &bo_password).await.0, 200);

    // While the service runs: the old password and its session stop working.
    let changed = json_line(&main.ok(
        &[
            "users",
            "set-password",
            "--username",
            "ann",
            "--password-stdin",
        ],
        "second-password\n",
    ));
    assert_eq!(changed["username"], "ann");
    assert_eq!(server.sign_in("ann", "first-password").await.0, 401);
    assert_eq!(server.sign_in("ann", "second-password").await.0, 200);
    server.check_becomes(&token, 401).await;

    let listed = main.ok(&["users", "list"], "");
    assert!(
        !listed.contains("argon2") && !listed.contains("password"),
        "{listed}"
    );
    let users: Vec<Json> = listed
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let names: Vec<&str> = users
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["root", "ann", "bo"]);
    assert_eq!(users[1]["roles"], json!(["admin"]));
}

#[tokio::test]
async fn an_api_key_the_cli_creates_works_until_it_is_revoked() {
    let main = Main::new();
    main.ok(
        &[
            "users",
            "create",
            "--username",
            "ci-bot",
            "--role",
            "member",
        ],
        "",
    );
    let out = main.cli(
        &[
            "api-keys",
            "create",
            "--username",
            "ci-bot",
            "--role",
            "member",
            "--name",
            "deploys",
            "--expires-in",
            "7d",
        ],
        "",
    );
    assert!(out.status.success(), "{out:?}");
    // The key alone on standard output; what was made on standard error.
    let key = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    assert_eq!(key.split('.').count(), 3, "a JWT: {key}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("shown only now"), "{note}");

    let server = Server::start(&main).await;
    let me = server.check_becomes(&key, 200).await;
    assert_eq!(me["data"]["username"], "ci-bot");

    let listed = json_line(&main.ok(&["api-keys", "list", "--username", "ci-bot"], ""));
    assert_eq!(listed["name"], "deploys");
    assert_eq!(listed["roleName"], "member");
    assert!(listed.get("jti").is_none(), "{listed}");
    let id = listed["id"].as_i64().expect("an id").to_string();
    let revoked = json_line(&main.ok(&["api-keys", "revoke", "--id", &id], ""));
    assert_eq!(
        revoked["revoked"],
        json!(id.parse::<i64>().expect("a number"))
    );
    server.check_becomes(&key, 401).await;
    assert_eq!(
        main.ok(&["api-keys", "list", "--username", "ci-bot"], ""),
        ""
    );

    let again = main.fails(&["api-keys", "revoke", "--id", &id], "");
    assert!(
        again.contains(&format!("api-keys: --id: no API key has the id {id}")),
        "{again}"
    );
}

#[test]
fn a_wrong_username_role_or_input_is_a_clear_error() {
    let main = Main::new();
    let err = main.fails(
        &[
            "users",
            "set-password",
            "--username",
            "nobody",
            "--password-stdin",
        ],
        "whatever\n",
    );
    assert!(
        err.contains(r#"manifold: users: --username: no user is called "nobody""#),
        "{err}"
    );
    let err = main.fails(&["api-keys", "list", "--username", "nobody"], "");
    assert!(err.contains(r#"no user is called "nobody""#), "{err}");

    main.ok(&["users", "create", "--username", "cy"], "");
    let err = main.fails(&["users", "create", "--username", "cy"], "");
    assert!(err.contains(r#"a user is already called "cy""#), "{err}");
    let err = main.fails(
        &["users", "create", "--username", "di", "--role", "owner"],
        "",
    );
    assert!(
        err.contains(r#"--role: no role is called "owner""#),
        "{err}"
    );
    let err = main.fails(
        &["users", "create", "--username", "di", "--password-stdin"],
        "",
    );
    assert!(err.contains("standard input holds no password"), "{err}");
    // Input without a line break is read no further than a password may be long.
    let err = main.fails(
        &["users", "create", "--username", "di", "--password-stdin"],
        &"x".repeat(4000),
    );
    assert!(err.contains("password"), "{err}");
    assert!(err.contains("1024"), "{err}");
    let err = main.fails(
        &[
            "api-keys",
            "create",
            "--username",
            "cy",
            "--role",
            "root",
            "--name",
            "x",
        ],
        "",
    );
    assert!(
        err.contains(r#"--role: the user "cy" does not hold the role "root""#),
        "{err}"
    );

    // A password is never an argument; clap refuses a bad lifetime before anything runs.
    let out = main.cli(
        &[
            "api-keys",
            "create",
            "--username",
            "cy",
            "--role",
            "member",
            "--name",
            "x",
            "--expires-in",
            "soon",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--expires-in"));

    let help = manifold(main.path())
        .arg("--help")
        .output()
        .expect("manifold runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for line in ["users ", "api-keys ", "serve ", "migrate "] {
        assert!(help.contains(line), "--help lists {line}: {help}");
    }
}
