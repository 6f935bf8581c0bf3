//! The HTTP side of the real `manifold` binary against hostile clients: slow or silent
//! connections, unreadable headers, cross-site requests, foreign `Host` names, and the
//! metrics on a listener of their own. Everything is raw HTTP/1.1 over TCP, so the bytes
//! on the wire are exactly the test's.

mod support;

use support::{free_port, inherited_settings};

use std::io::Read as _;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROOT_PASSWORD: &str = "hardening-test-root";

/// A running `manifold` on a fresh SQLite main database, signed in as root.
struct Manifold {
    child: Child,
    port: u16,
    token: String,
    /// The main database's directory, when this process made it (a replica shares one).
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Manifold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or(Json::String(self.body.clone()))
    }

    fn message(&self) -> String {
        self.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}: {}", self.status, self.body))
            .to_owned()
    }

    /// The value of response header `name` (case-insensitive), if sent.
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let raw = String::from_utf8_lossy(raw).into_owned();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

impl Manifold {
    async fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut m = Self::start_at(dir.path(), free_port(), args).await;
        m._dir = Some(dir);
        m
    }

    /// A process on `port` whose main database is the SQLite file under `dir`, which other
    /// processes may share.
    async fn start_at(dir: &std::path::Path, port: u16, args: &[&str]) -> Self {
        let log = dir.join(format!("manifold-{port}-{}.log", std::process::id()));
        let stdout = std::fs::File::create(&log).expect("log file");
        let stderr = stdout.try_clone().expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_manifold"));
        for key in inherited_settings() {
            command.env_remove(key);
        }
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--main-db")
            .arg(format!("sqlite://{}/data/main.sqlite", dir.display()))
            .args(args)
            .env("MANIFOLD_ROOT_PASSWORD", ROOT_PASSWORD)
            .stdout(stdout)
            .stderr(stderr);
        let mut child = command.spawn().expect("manifold starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut text = String::new();
                let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
                panic!("manifold exited with {status}: {text}");
            }
            assert!(Instant::now() < deadline, "manifold did not listen in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut m = Self {
            child,
            port,
            token: String::new(),
            _dir: None,
        };
        let signed_in = m
            .send(
                "POST",
                "/api/auth:signIn",
                &[("Content-Type", "application/json")],
                json!({ "account": "root", "password": ROOT_PASSWORD })
                    .to_string()
                    .as_bytes(),
            )
            .await;
        m.token = signed_in.json()["data"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {signed_in:?}"))
            .to_owned();
        m
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect")
    }

    /// One request on a connection of its own, with root's token and the given headers
    /// (raw bytes: a value may be anything).
    async fn send_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Reply {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        )
        .into_bytes();
        if !self.token.is_empty()
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            request
                .extend_from_slice(format!("Authorization: Bearer {}\r\n", self.token).as_bytes());
        }
        for (name, value) in headers {
            request.extend_from_slice(name.as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        let mut stream = self.connect().await;
        stream.write_all(&request).await.expect("send");
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
            .await
            .expect("an answer within 20 s")
            .expect("read the answer");
        parse_reply(&raw)
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.send_raw(method, path, &headers, body).await
    }

    async fn post_json(&self, path: &str, body: &Json) -> Reply {
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn count(&self, resource: &str) -> u64 {
        let r = self
            .send("GET", &format!("/api/{resource}:list?pageSize=1"), &[], b"")
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["meta"]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("{r:?}"))
    }
}

/// Reads until the server closes `stream`; returns what it sent and when it closed, or
/// panics when it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection is still open after {within:?} (got {:?})",
        String::from_utf8_lossy(&got)
    );
    (got, started.elapsed())
}

fn posts() -> Json {
    json!({ "name": "posts", "fields": [{ "name": "title", "type": "string" }] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_connections_are_closed_within_their_limits() {
    let m = Manifold::start(&[
        "--header-read-timeout",
        "1s",
        "--body-read-timeout",
        "1s",
        "--keep-alive-timeout",
        "2s",
    ])
    .await;

    // Sends nothing at all: idle from the start.
    let mut silent = m.connect().await;
    let (got, took) = closed_within(&mut silent, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "closed too early: {took:?}"
    );

    // Half a header, one more byte every 300 ms: never idle, but never done either.
    let mut trickle = m.connect().await;
    trickle
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if trickle.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), trickle.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a header trickling forever is not closed");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}, not by the 1 s header timeout",
        started.elapsed()
    );

    // A body of 1,000 bytes announced, one sent: 408, then the connection closes.
    let mut partial = m.connect().await;
    partial
        .write_all(
            format!(
                "POST /api/auth:check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
                m.token
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    let (got, took) = closed_within(&mut partial, Duration::from_secs(6)).await;
    let reply = parse_reply(&got);
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(
        reply.message().contains("did not arrive within 1 s"),
        "{reply:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");

    // One answered request on a kept-alive connection, then silence.
    let mut kept = m.connect().await;
    kept.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).await.expect("the answer");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let (got, _) = closed_within(&mut kept, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "{got:?}");

    // A client that keeps to the limits is served as before.
    let r = m.post_json("/api/collections:create", &posts()).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_source_key_that_is_not_ascii_never_falls_back_to_main() {
    let m = Manifold::start(&[]).await;
    assert_eq!(
        m.post_json("/api/collections:create", &posts())
            .await
            .status,
        200
    );
    let body = json!({ "title": "where did this go" }).to_string();
    for key in [&b"pg\xe9"[..], b"\xe9", b"\xff\xfe", b"main\xa0", b" \xa0 "] {
        let r = m
            .send_raw(
                "POST",
                "/api/posts:create",
                &[
                    ("Content-Type", b"application/json"),
                    ("X-Data-Source", key),
                ],
                body.as_bytes(),
            )
            .await;
        assert!(
            (400..500).contains(&r.status),
            "X-Data-Source {key:?}: {r:?}"
        );
        assert!(r.message().contains("X-Data-Source"), "{r:?}");
    }
    // Two keys at once cannot pick one.
    let r = m
        .send_raw(
            "POST",
            "/api/posts:create",
            &[
                ("Content-Type", b"application/json"),
                ("X-Data-Source", b"nowhere"),
                ("X-Data-Source", b"main"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    // An unknown readable key is a 404.
    let r = m
        .send(
            "POST",
            "/api/posts:create",
            &[
                ("Content-Type", "application/json"),
                ("X-Data-Source", "pg"),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(m.count("posts").await, 0, "main was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_post_and_a_body_a_form_cannot_send() {
    let m = Manifold::start(&[]).await;
    assert_eq!(
        m.post_json("/api/collections:create", &posts())
            .await
            .status,
        200
    );
    assert_eq!(
        m.post_json("/api/posts:create", &json!({ "title": "kept" }))
            .await
            .status,
        200
    );

    for (method, path) in [
        ("GET", "/api/posts:create?values[title]=x"),
        ("GET", "/api/posts:destroy/1"),
        ("GET", "/api/posts:update/1"),
        ("GET", "/api/posts:firstOrCreate"),
        ("GET", "/api/posts:updateOrCreate"),
        ("HEAD", "/api/posts:destroy/1"),
        ("OPTIONS", "/api/posts:destroy/1"),
        ("GET", "/api/posts/1/tags:add"),
        ("GET", "/api/posts/1/tags:set"),
        ("GET", "/api/posts:move"),
        ("GET", "/api/collections:destroy/posts"),
        ("GET", "/api/collections:create?name=x"),
        ("GET", "/api/dataSources:create"),
        ("GET", "/api/dataSources:destroy/x"),
        ("GET", "/api/dataSources:refresh/main"),
        ("GET", "/api/auth:signOut"),
    ] {
        let r = m.send(method, path, &[], b"").await;
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert_eq!(
            r.header("allow").as_deref(),
            Some("POST, PUT, PATCH, DELETE")
        );
        if method != "HEAD" {
            assert!(r.message().contains("changes data"), "{r:?}");
        }
    }

    for content_type in [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "multipart/form-data; boundary=x",
        "text/plain",
        "Text/Plain;charset=utf-8",
    ] {
        for (path, body) in [
            ("/api/posts:create", &br#"{"title":"csrf"}"#[..]),
            ("/api/posts:destroy?filterByTk=1", b""),
            ("/api/collections:destroy/posts", b"x=1"),
        ] {
            let r = m
                .send("POST", path, &[("Content-Type", content_type)], body)
                .await;
            assert_eq!(r.status, 415, "{content_type} {path}: {r:?}");
            assert!(r.message().contains("application/json"), "{r:?}");
        }
    }
    // A body with no type at all (a fetch of a Blob) would be read as JSON.
    let r = m
        .send("POST", "/api/posts:create", &[], br#"{"title":"blob"}"#)
        .await;
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.message().contains("without Content-Type"), "{r:?}");
    assert_eq!(m.count("posts").await, 1, "a refused request changed data");

    // Reads stay open to GET, and a form may still carry a read's parameters.
    assert_eq!(m.send("GET", "/api/posts:list", &[], b"").await.status, 200);
    assert_eq!(m.send("GET", "/api/posts/1", &[], b"").await.status, 200);
    let r = m
        .send(
            "POST",
            "/api/posts:list",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"pageSize=1",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // A POST with no body, or with JSON, changes data as before.
    let r = m.send("POST", "/api/posts:create", &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = m
        .send(
            "POST",
            "/api/posts:update?filterByTk=1",
            &[("Content-Type", "application/json; charset=utf-8")],
            br#"{"title":"changed"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(m.count("posts").await, 2);
    // Without CORS configured, nothing says a foreign page may read the answer.
    let r = m
        .send(
            "GET",
            "/api/posts:list",
            &[("Origin", "https://evil.example")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_hosts_and_the_metrics_listener_follow_the_options() {
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let m = Manifold::start(&[
        "--cors-origins",
        "https://app.example.com,http://localhost:5173",
        "--accepted-host-headers",
        "127.0.0.1,api.example.com",
        "--metrics-listen",
        &metrics_listen,
    ])
    .await;

    // A preflight from a listed origin is answered with what it may do.
    let r = m
        .send(
            "OPTIONS",
            "/api/posts:create",
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST")),
        "{r:?}"
    );
    assert_eq!(
        r.header("access-control-allow-headers").as_deref(),
        Some("authorization, content-type")
    );
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("600"));
    // From another origin it is refused, without permissions.
    let r = m
        .send(
            "OPTIONS",
            "/api/posts:create",
            &[
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "POST"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.message().contains("evil.example"), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None);
    // A listed origin's request may be read by its page; another's may not.
    let r = m
        .send(
            "GET",
            "/api/collections:list",
            &[("Origin", "http://localhost:5173")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:5173")
    );
    assert_eq!(r.header("vary").as_deref(), Some("Origin"));
    let r = m
        .send(
            "GET",
            "/api/collections:list",
            &[("Origin", "https://evil.example")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None, "{r:?}");

    // A name the service does not answer for (DNS rebinding) is refused, health aside.
    for host in ["evil.example", "evil.example:80", "127.0.0.1.evil.example"] {
        let mut stream = m.connect().await;
        stream
            .write_all(
                format!(
                    "GET /api/collections:list HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                    m.token
                )
                .as_bytes(),
            )
            .await
            .expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let r = parse_reply(&raw);
        assert_eq!(r.status, 400, "Host {host}: {r:?}");
        assert!(r.message().contains(host), "{r:?}");
    }
    let mut stream = m.connect().await;
    stream
        .write_all(
            b"GET /health/live HTTP/1.1\r\nHost: 10.0.0.9:13000\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    assert_eq!(parse_reply(&raw).status, 200);
    let mut stream = m.connect().await;
    stream
        .write_all(
            format!(
                "GET /api/collections:list HTTP/1.1\r\nHost: API.example.com:8443\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                m.token
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    assert_eq!(parse_reply(&raw).status, 200);

    // The metrics have moved to their own listener.
    let r = m.send("GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 404, "{r:?}");
    let mut stream = TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .expect("the metrics listener");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let r = parse_reply(&raw);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body.contains("manifold_http_requests_total"),
        "{}",
        r.body
    );
    let mut stream = TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .expect("the metrics listener");
    stream
        .write_all(b"GET /api/collections:list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    assert_eq!(parse_reply(&raw).status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_silent_connections_neither_stay_nor_keep_others_out() {
    let m = Manifold::start(&["--keep-alive-timeout", "1s"]).await;
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(m.connect().await);
    }
    // Served while they sit there.
    let r = m.send("GET", "/api/collections:list", &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    for stream in &mut silent {
        closed_within(stream, Duration::from_secs(5)).await;
    }
}

#[test]
fn a_zero_timeout_is_refused_at_start() {
    for flag in [
        "--header-read-timeout",
        "--body-read-timeout",
        "--keep-alive-timeout",
        "--shutdown-grace",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_manifold"))
            .args(["serve", flag, "0s"])
            .output()
            .expect("manifold runs");
        assert_eq!(out.status.code(), Some(2), "{flag} 0s");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must be above zero"), "{flag}: {err}");
    }
}

#[test]
fn unreadable_shutdown_and_embedding_limits_are_refused_at_start() {
    for (flag, value, says) in [
        ("--shutdown-delay", "soon", "use a duration such as 10s"),
        ("--max-embedded-records", "0", "0 is not in 1.."),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_manifold"))
            .args(["serve", flag, value])
            .output()
            .expect("manifold runs");
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_serves_out_the_delay_then_drains_and_exits_zero() {
    let mut m = Manifold::start(&["--shutdown-delay", "2s", "--shutdown-grace", "5s"]).await;
    let made = m.post_json("/api/collections:create", &posts()).await;
    assert_eq!(made.status, 200, "{made:?}");
    let ready = m.send("GET", "/health/ready", &[], b"").await;
    assert_eq!(ready.status, 200, "{ready:?}");

    // A create whose body is still on its way when the signal comes.
    let body = json!({ "title": "sent across the signal" }).to_string();
    let (first, rest) = body.as_bytes().split_at(10);
    let mut in_flight = m.connect().await;
    let head = format!(
        "POST /api/posts:create HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        m.port,
        m.token,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.expect("send");
    in_flight.write_all(first).await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &m.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Out of the load balancer at once, yet still serving.
    let ready = m.send("GET", "/health/ready", &[], b"").await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (503, json!("stopping")),
        "{ready:?}"
    );
    assert_eq!(m.count("posts").await, 0);

    // After the delay: no new connections, but the request in flight completes.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(signalled.elapsed()) + Duration::from_millis(500),
    )
    .await;
    assert!(
        TcpStream::connect(("127.0.0.1", m.port)).await.is_err(),
        "connections are refused after the delay"
    );
    in_flight
        .write_all(rest)
        .await
        .expect("the rest of the body");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), in_flight.read_to_end(&mut raw))
        .await
        .expect("an answer within the grace")
        .expect("read the answer");
    let created = parse_reply(&raw);
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(
        created.json()["data"]["title"],
        json!("sent across the signal")
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = m.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "manifold did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// A round-robin TCP balancer in front of `backends` that, like a Kubernetes Service, sends
/// new connections only to backends whose `/health/ready` answered 200 at its last poll
/// (every 100 ms).
async fn ready_balancer(backends: Vec<u16>) -> (u16, tokio::task::JoinHandle<()>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind balancer");
    let port = listener.local_addr().expect("balancer address").port();
    let ready: Arc<Vec<AtomicBool>> =
        Arc::new(backends.iter().map(|_| AtomicBool::new(false)).collect());
    for (i, backend) in backends.iter().copied().enumerate() {
        let ready = ready.clone();
        tokio::spawn(async move {
            loop {
                let up = async {
                    let mut s = TcpStream::connect(("127.0.0.1", backend)).await.ok()?;
                    s.write_all(
                        b"GET /health/ready HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n",
                    )
                    .await
                    .ok()?;
                    let mut raw = Vec::new();
                    s.read_to_end(&mut raw).await.ok()?;
                    Some(raw.starts_with(b"HTTP/1.1 200"))
                };
                let up = tokio::time::timeout(Duration::from_millis(500), up)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(false);
                ready[i].store(up, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let next = Arc::new(AtomicUsize::new(0));
    let accept = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let start = next.fetch_add(1, Ordering::SeqCst);
            let chosen = (0..backends.len())
                .map(|k| (start + k) % backends.len())
                .find(|&i| ready[i].load(Ordering::SeqCst));
            let Some(i) = chosen else {
                continue;
            };
            let backend = backends[i];
            tokio::spawn(async move {
                if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", backend)).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (port, accept)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_a_readiness_balancer_fails_no_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--shutdown-delay", "1s", "--shutdown-grace", "5s"];
    let mut first = Manifold::start_at(dir.path(), free_port(), &args).await;
    let made = first.post_json("/api/collections:create", &posts()).await;
    assert_eq!(made.status, 200, "{made:?}");
    let second = Manifold::start_at(dir.path(), free_port(), &args).await;
    let (lb, balancer) = ready_balancer(vec![first.port, second.port]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Clients through the balancer, one request per connection, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (stop, token) = (stop.clone(), first.token.clone());
        clients.spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let answer = async {
                    let mut s = TcpStream::connect(("127.0.0.1", lb)).await.map_err(|e| e.to_string())?;
                    let request = format!(
                        "GET /api/posts:list?pageSize=1 HTTP/1.1\r\nHost: lb\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
                    );
                    s.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
                    let mut raw = Vec::new();
                    s.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
                    if raw.is_empty() {
                        return Err("closed without an answer".to_owned());
                    }
                    Ok(parse_reply(&raw))
                };
                match tokio::time::timeout(Duration::from_secs(5), answer).await {
                    Ok(Ok(reply)) if reply.status == 200 => ok += 1,
                    Ok(Ok(reply)) => failed.push(format!("{}: {}", reply.status, reply.body)),
                    Ok(Err(e)) => failed.push(e),
                    Err(_) => failed.push("no answer in 5 s".to_owned()),
                }
            }
            (ok, failed)
        });
    }

    // Restart the first replica under load: SIGTERM, wait for its exit, start it again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = first.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the first replica did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let port = first.port;
    drop(first);
    let restarted = Manifold::start_at(dir.path(), port, &args).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);

    let (mut ok, mut failed) = (0, Vec::new());
    for (o, f) in clients.join_all().await {
        ok += o;
        failed.extend(f);
    }
    balancer.abort();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests went through");
    drop((second, restarted));
}
