//! Traces, metrics, health and JSON logs of the real `manifold` binary.
//!
//! Each test starts the binary with the standard `OTEL_*` variables pointing at an OTLP
//! receiver inside this test process (gRPC through tonic over `opentelemetry-proto`, or
//! HTTP/protobuf through poem), sends real requests, and checks the spans that arrive:
//! names, parent links and attributes, for SQLite (main), PostgreSQL, MariaDB and MongoDB
//! (SecantusDB). A test whose server is missing fails.

mod support;

use support::{free_port, inherited_settings};

use std::collections::HashMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use manifold_tests::{Backend, ScratchDatabase, server_credentials};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use poem::listener::{Acceptor, Listener};
use prost::Message as _;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    kind: i32,
    status: i32,
    attributes: HashMap<String, String>,
    service: String,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// What the receivers got, shared with the test.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Span>>>);

impl Received {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Span {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent: hex(&span.parent_span_id),
                        kind: span.kind,
                        status: span.status.map_or(0, |s| s.code),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| {
                                (
                                    kv.key.clone(),
                                    text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                                )
                            })
                            .collect(),
                        service: service.clone(),
                    });
                }
            }
        }
    }

    fn all(&self) -> Vec<Span> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits up to 15 s for the trace whose server span `server` picks, and returns it
    /// once it has stopped growing.
    async fn trace(&self, server: impl Fn(&Span) -> bool) -> (Span, Vec<Span>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(root) = self.all().into_iter().find(|s| server(s)) {
                // The batch may still hold the rest of the trace; wait for it to settle.
                let mut last = 0;
                loop {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let trace: Vec<Span> = self
                        .all()
                        .into_iter()
                        .filter(|s| s.trace_id == root.trace_id)
                        .collect();
                    if trace.len() == last || Instant::now() > deadline {
                        return (root, trace);
                    }
                    last = trace.len();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no matching server span within 15 s; received: {:#?}",
                self.all().iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC receiver on a free port.
async fn grpc_receiver() -> (Received, u16) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the gRPC receiver");
    let port = listener.local_addr().expect("local addr").port();
    let service = TraceServiceServer::new(Grpc(received.clone()));
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await;
        if let Err(e) = served {
            eprintln!("the gRPC receiver stopped: {e}");
        }
    });
    (received, port)
}

/// An OTLP/HTTP (protobuf) receiver on a free port, answering `POST /v1/traces`.
async fn http_receiver() -> (Received, u16) {
    let received = Received::default();
    let sink = received.clone();
    let endpoint = poem::endpoint::make(move |mut req: poem::Request| {
        let sink = sink.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            let body = req.take_body().into_vec().await?;
            let request = ExportTraceServiceRequest::decode(body.as_slice()).map_err(|e| {
                poem::Error::from_string(e.to_string(), poem::http::StatusCode::BAD_REQUEST)
            })?;
            sink.add(request);
            Ok::<_, poem::Error>(
                poem::Response::builder()
                    .content_type("application/x-protobuf")
                    .body(
                        ExportTraceServiceResponse {
                            partial_success: None,
                        }
                        .encode_to_vec(),
                    ),
            )
        }
    });
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind the HTTP receiver");
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .expect("local addr")
        .port();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    (received, port)
}

/// The binary, killed when the test ends; its output goes to `log`.
struct Manifold {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    /// The root user's token, sent with every request that does not carry its own.
    token: String,
    _dir: Option<tempfile::TempDir>,
}

/// The password of the user root in every process these tests start.
const ROOT_PASSWORD: &str = "telemetry-test-root";

impl Drop for Manifold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Manifold {
    /// Starts the binary on a fresh SQLite main database with `env` (and nothing else of
    /// OpenTelemetry's from this process) and waits until it listens.
    async fn start(env: &[(&str, String)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut m = Self::start_in(dir.path(), env, args).await;
        m._dir = Some(dir);
        m
    }

    /// Starts the binary on the main database under `dir` (kept by the caller).
    async fn start_in(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Self {
        let port = free_port();
        let log = dir.join(format!("manifold-{port}.log"));
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
            .stdout(stdout)
            .stderr(stderr);
        // Export each batch quickly, so a test waits milliseconds, not five seconds.
        command.env("OTEL_BSP_SCHEDULE_DELAY", "100");
        command.env("MANIFOLD_ROOT_PASSWORD", ROOT_PASSWORD);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("manifold starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut text = String::new();
                let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
                panic!("manifold exited with {status}: {text}");
            }
            assert!(
                Instant::now() < deadline,
                "manifold did not listen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut m = Self {
            child,
            port,
            log,
            token: String::new(),
            _dir: None,
        };
        let signed_in = m
            .post(
                "/api/auth:signIn",
                json!({ "account": "root", "password": ROOT_PASSWORD }),
            )
            .await;
        m.token = signed_in["data"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in {signed_in}"))
            .to_owned();
        m
    }

    /// One HTTP/1.1 request; returns the status and the body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Json>,
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect");
        let body = body.map(Json::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: telemetry-test/1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if !self.token.is_empty()
            && !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            request.push_str(&format!("Authorization: Bearer {}\r\n", self.token));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read the answer");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"));
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        (status, body)
    }

    async fn get(&self, path: &str) -> (u16, Json) {
        let (status, body) = self.send("GET", path, &[], None).await;
        (
            status,
            serde_json::from_str(&body).unwrap_or(Json::String(body)),
        )
    }

    async fn post(&self, path: &str, body: Json) -> Json {
        let (status, text) = self.send("POST", path, &[], Some(&body)).await;
        assert_eq!(status, 200, "POST {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// Waits until `GET /health/ready` answers 200.
    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get("/health/ready").await;
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "not ready within 30 s: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until data source `key` has loaded.
    async fn loaded(&self, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get(&format!("/api/dataSources:get/{key}")).await;
            if body["data"]["status"] == json!("loaded") {
                return;
            }
            assert!(Instant::now() < deadline, "{key} did not load: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

fn grpc_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
    ]
}

fn http_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
    ]
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

fn child_of<'a>(trace: &'a [Span], parent: &Span, name: &str) -> &'a Span {
    trace
        .iter()
        .find(|s| s.parent == parent.span_id && s.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no span {name:?} under {:?}; trace: {:#?}",
                parent.name,
                trace
                    .iter()
                    .map(|s| (&s.name, &s.span_id, &s.parent))
                    .collect::<Vec<_>>()
            )
        })
}

/// Checks the chain server → app → data source → resource → ACL → action and returns
/// the action span.
fn action_span<'a>(trace: &'a [Span], server: &Span, action: &str) -> &'a Span {
    let app = child_of(trace, server, "manifold.app");
    let source = child_of(trace, app, "manifold.data_source");
    let resource = child_of(trace, source, "manifold.resource");
    let acl = child_of(trace, resource, "manifold.acl");
    child_of(trace, acl, action)
}

fn db_spans<'a>(trace: &'a [Span], action: &Span) -> Vec<&'a Span> {
    let spans: Vec<&Span> = trace
        .iter()
        .filter(|s| s.parent == action.span_id && s.kind == CLIENT)
        .collect();
    assert!(
        !spans.is_empty(),
        "no database span under {:?}",
        action.name
    );
    spans
}

/// No attribute of any received span contains one of `secrets`.
fn assert_absent(spans: &[Span], secrets: &[&str]) {
    for span in spans {
        for (key, value) in &span.attributes {
            for secret in secrets {
                assert!(
                    !value.contains(secret),
                    "span {:?} attribute {key} = {value:?} contains {secret:?}",
                    span.name
                );
            }
        }
        for secret in secrets {
            assert!(!span.name.contains(secret), "span name {:?}", span.name);
        }
    }
}

fn posts() -> Json {
    json!({"name": "posts", "fields": [{"name": "title", "type": "string"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_request_is_one_trace_of_server_middleware_action_and_statement_spans() {
    let (received, port) = grpc_receiver().await;
    let mut env = grpc_env(port);
    env.push(("OTEL_SERVICE_NAME", "manifold-under-test".into()));
    let m = Manifold::start(&env, &[]).await;
    m.ready().await;
    m.post("/api/collections:create", posts()).await;
    m.post("/api/posts:create", json!({"title": "secret-title-value"}))
        .await;
    let filter = r#"{"title":{"$eq":"secret-filter-value"}}"#;
    let path = format!("/api/posts:list?filter={}", percent_encode(filter));
    let (status, body) = m.send("GET", &path, &[], None).await;
    assert_eq!(status, 200, "{body}");

    let (server, trace) = received.trace(|s| s.name == "GET /api/posts:list").await;
    assert_eq!(server.kind, SERVER);
    assert_eq!(
        server.parent, "",
        "a request without traceparent starts a trace"
    );
    assert_eq!(server.service, "manifold-under-test");
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/api/posts:list"),
        ("url.path", "/api/posts:list"),
        ("url.scheme", "http"),
        ("http.response.status_code", "200"),
        ("server.address", "127.0.0.1"),
        ("server.port", m.port.to_string().as_str()),
        ("client.address", "127.0.0.1"),
        ("user_agent.original", "telemetry-test/1"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(server.attr(key), value, "{key} of {server:#?}");
    }
    let app = child_of(&trace, &server, "manifold.app");
    assert_eq!(app.attr("enduser.id"), "1", "the caller: {app:#?}");
    assert_eq!(app.attr("manifold.role"), "root");
    let action = action_span(&trace, &server, "posts:list");
    assert_eq!(action.attr("manifold.data_source"), "main");
    assert_eq!(action.attr("manifold.resource"), "posts");
    assert_eq!(action.attr("manifold.action"), "list");
    let statements = db_spans(&trace, action);
    for db in &statements {
        assert_eq!(db.attr("db.system.name"), "sqlite", "{db:#?}");
        assert_eq!(db.attr("db.namespace"), "main.sqlite");
        assert_eq!(db.attr("db.collection.name"), "posts");
        assert_eq!(db.attr("db.operation.name"), "SELECT");
        assert!(db.attr("db.query.text").starts_with("SELECT"), "{db:#?}");
        assert!(db.name.starts_with("SELECT posts"), "{}", db.name);
    }
    // count, then find only when the count reaches the page: the filter matches nothing.
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(statements[0].attr("db.query.text").contains('?'));
    assert!(trace.iter().all(|s| s.trace_id == server.trace_id));
    // The sign-in that opened this test is traced too, without the password or the token.
    assert_absent(
        &received.all(),
        &[
            "secret-title-value",
            "secret-filter-value",
            ROOT_PASSWORD,
            &m.token,
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_marks_its_span_as_an_error() {
    let (received, port) = http_receiver().await;
    let m = Manifold::start(&http_env(port), &[]).await;
    m.ready().await;
    m.post("/api/collections:create", posts()).await;
    m.post("/api/posts:create", json!({"id": 1, "title": "first"}))
        .await;
    let (status, body) = m
        .send(
            "POST",
            "/api/posts:create",
            &[],
            Some(&json!({"id": 1, "title": "second-secret"})),
        )
        .await;
    assert!(status >= 400, "{status} {body}");
    let (server, trace) = received
        .trace(|s| {
            s.name == "POST /api/posts:create"
                && s.attr("http.response.status_code") == status.to_string()
        })
        .await;
    let action = action_span(&trace, &server, "posts:create");
    let failed = db_spans(&trace, action)
        .into_iter()
        .find(|s| s.status == STATUS_ERROR)
        .unwrap_or_else(|| panic!("no failed statement span in {trace:#?}"));
    assert_eq!(failed.attr("db.operation.name"), "INSERT");
    assert!(!failed.attr("error.type").is_empty(), "{failed:#?}");
    assert_absent(&received.all(), &["second-secret"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_is_continued_and_json_logs_carry_its_ids() {
    let (received, port) = http_receiver().await;
    let m = Manifold::start(
        &http_env(port),
        &[
            "--log-format",
            "json",
            "--log",
            "info,manifold::access=debug",
        ],
    )
    .await;
    m.ready().await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let (status, _) = m
        .send(
            "GET",
            "/api/collections:list",
            &[("traceparent", &format!("00-{trace_id}-{parent}-01"))],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (server, _) = received
        .trace(|s| s.name == "GET /api/collections:list")
        .await;
    assert_eq!(server.trace_id, trace_id);
    assert_eq!(server.parent, parent);

    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = m.log();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .find(|l| {
                l["target"] == json!("manifold::access")
                    && l["fields"]["route"] == json!("/api/collections:list")
            });
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "no access line in {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(line["trace_id"], json!(trace_id), "{line}");
    assert_eq!(line["span_id"], json!(server.span_id), "{line}");
    assert_eq!(line["level"], json!("DEBUG"));
    assert_eq!(line["fields"]["route"], json!("/api/collections:list"));
    // Lines outside a request carry no trace id.
    let startup = m
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .find(|l| l["message"] == json!("manifold listening"))
        .expect("a start-up line");
    assert!(startup.get("trace_id").is_none(), "{startup}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_trace_ids_even_without_an_exporter() {
    let m = Manifold::start(
        &[],
        &["--log-format", "json", "--log", "manifold::access=debug"],
    )
    .await;
    m.ready().await;
    let (status, _) = m.send("GET", "/api/collections:list", &[], None).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = m.log();
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .find(|l| l["target"] == json!("manifold::access"));
        if let Some(line) = line {
            let id = line["trace_id"].as_str().unwrap_or_default();
            assert_eq!(id.len(), 32, "{line}");
            assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no access line in {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers `key` of `kind` on a scratch database holding `orders`, and checks the span
/// tree of `orders:list` on it.
async fn check_sql_source(backend: Backend, kind: &str, system: &str) {
    let db = ScratchDatabase::create(backend).await;
    let url = db.url();
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.expect("postgres");
            sqlx::query("CREATE TABLE orders (id serial primary key, customer text)")
                .execute(&pool)
                .await
                .expect("create");
            sqlx::query("INSERT INTO orders (customer) VALUES ('secret-customer')")
                .execute(&pool)
                .await
                .expect("insert");
            pool.close().await;
        }
        _ => {
            let pool = sqlx::MySqlPool::connect(&url).await.expect("mariadb");
            sqlx::query("CREATE TABLE orders (id int auto_increment primary key, customer text)")
                .execute(&pool)
                .await
                .expect("create");
            sqlx::query("INSERT INTO orders (customer) VALUES ('secret-customer')")
                .execute(&pool)
                .await
                .expect("insert");
            pool.close().await;
        }
    }
    let (received, receiver) = grpc_receiver().await;
    let m = Manifold::start(&grpc_env(receiver), &[]).await;
    let (user, password) = server_credentials(backend);
    let server_port = if backend == Backend::Postgres {
        5432
    } else {
        3306
    };
    m.post(
        "/api/dataSources:create",
        json!({"key": "ext", "type": kind, "options": {
            "host": "127.0.0.1", "port": server_port, "database": db.name(),
            "username": user, "password": password,
        }}),
    )
    .await;
    m.loaded("ext").await;
    let filter = percent_encode(r#"{"customer":{"$ne":"secret-filter-value"}}"#);
    let (status, body) = m
        .send(
            "GET",
            &format!("/api/orders:list?filter={filter}"),
            &[("X-Data-Source", "ext")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (server, trace) = received.trace(|s| s.name == "GET /api/orders:list").await;
    let action = action_span(&trace, &server, "orders:list");
    assert_eq!(action.attr("manifold.data_source"), "ext");
    let statements = db_spans(&trace, action);
    assert_eq!(statements.len(), 2, "count and find: {statements:#?}");
    let namespace = if backend == Backend::Postgres {
        format!("{}|public", db.name())
    } else {
        db.name().to_owned()
    };
    for s in statements {
        assert_eq!(s.attr("db.system.name"), system, "{s:#?}");
        assert_eq!(s.attr("db.namespace"), namespace);
        assert_eq!(s.attr("db.collection.name"), "orders");
        assert_eq!(s.attr("db.operation.name"), "SELECT");
        assert_eq!(s.attr("server.address"), "127.0.0.1");
        assert_eq!(s.attr("server.port"), server_port.to_string());
        let text = s.attr("db.query.text");
        assert!(
            text.starts_with("SELECT") && text.contains("orders"),
            "{text}"
        );
    }
    let mut secrets = vec!["secret-customer", "secret-filter-value"];
    if !password.is_empty() {
        secrets.push(password.as_str());
    }
    assert_absent(&received.all(), &secrets);
    drop(m);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_have_client_spans() {
    check_sql_source(Backend::Postgres, "postgres", "postgresql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_statements_have_client_spans() {
    check_sql_source(Backend::MariaDb, "mariadb", "mariadb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_operations_have_client_spans_with_the_command_shape() {
    let server = secantus::Secantus::start();
    let client = mongodb::Client::with_uri_str(server.url())
        .await
        .expect("mongodb client");
    client
        .database("manifold_otel")
        .collection::<mongodb::bson::Document>("posts")
        .insert_one(mongodb::bson::doc! {"title": "secret-title-value"})
        .await
        .expect("seed a document");
    let (received, port) = grpc_receiver().await;
    let m = Manifold::start(&grpc_env(port), &[]).await;
    m.post(
        "/api/dataSources:create",
        json!({"key": "docs", "type": "mongodb", "options": {
            "url": server.url(), "database": "manifold_otel", "serverSelectionTimeoutMs": 2000
        }}),
    )
    .await;
    m.loaded("docs").await;
    let filter = percent_encode(r#"{"title":{"$ne":"secret-filter-value"}}"#);
    let (status, body) = m
        .send(
            "GET",
            &format!("/api/posts:list?filter={filter}"),
            &[("X-Data-Source", "docs")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (server_span, trace) = received.trace(|s| s.name == "GET /api/posts:list").await;
    let action = action_span(&trace, &server_span, "posts:list");
    let operations = db_spans(&trace, action);
    let names: Vec<&str> = operations
        .iter()
        .map(|s| s.attr("db.operation.name"))
        .collect();
    assert!(names.contains(&"countDocuments"), "{names:?}");
    assert!(names.contains(&"aggregate"), "{names:?}");
    for s in &operations {
        assert_eq!(s.attr("db.system.name"), "mongodb");
        assert_eq!(s.attr("db.namespace"), "manifold_otel");
        assert_eq!(s.attr("db.collection.name"), "posts");
        assert_eq!(s.attr("server.address"), "127.0.0.1");
        assert_eq!(s.attr("server.port"), server.port.to_string());
        let text = s.attr("db.query.text");
        assert!(text.contains("title") && text.contains("\"?\""), "{text}");
    }
    assert_absent(
        &received.all(),
        &["secret-title-value", "secret-filter-value"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_status_and_source_and_show_the_pools() {
    let m = Manifold::start(&[], &[]).await;
    m.ready().await;
    m.post("/api/collections:create", posts()).await;
    for _ in 0..3 {
        assert_eq!(m.get("/api/posts:list").await.0, 200);
    }
    // A missing record is `{"data": null}`, as in NocoBase; its key is no label.
    assert_eq!(m.get("/api/posts/7").await.0, 200);
    assert_eq!(m.get("/api/nothing_here:list").await.0, 404);
    let (status, _) = m
        .send(
            "GET",
            "/api/posts:list",
            &[("Authorization", "Bearer nonsense")],
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = m
        .send("GET", "/api/posts:list", &[("Authorization", "")], None)
        .await;
    assert_eq!(status, 401);
    let (status, text) = m.send("GET", "/metrics", &[], None).await;
    assert_eq!(status, 200);
    for expected in [
        r#"manifold_auth_refusals_total{http_response_status_code="401",reason="INVALID_TOKEN"} 1"#,
        r#"manifold_auth_refusals_total{http_response_status_code="401",reason="EMPTY_TOKEN"} 1"#,
        r#"manifold_http_requests_total{data_source="main",http_request_method="GET",http_response_status_code="200",http_route="/api/posts:list"} 3"#,
        r#"manifold_http_requests_total{data_source="main",http_request_method="GET",http_response_status_code="200",http_route="/api/posts/{filterByTk}"} 1"#,
        r#"manifold_http_requests_total{data_source="main",http_request_method="GET",http_response_status_code="404",http_route="unmatched"} 1"#,
        r#"http_server_request_duration_seconds_count{data_source="main",http_request_method="GET",http_response_status_code="200",http_route="/api/posts:list"} 3"#,
        r#"http_server_request_duration_seconds_bucket{data_source="main",http_request_method="GET",http_response_status_code="200",http_route="/api/posts:list",le="+Inf"} 3"#,
        r#"manifold_db_pool_connections_max{data_source="main"} 8"#,
        r#"manifold_db_pool_connections_in_use{data_source="main"} 0"#,
        "# TYPE http_server_request_duration_seconds histogram",
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(text.contains(r#"manifold_db_pool_connections{data_source="main"}"#));
    assert!(
        !text.contains("nothing_here"),
        "an unknown resource is no label: {text}"
    );
}

/// A TCP relay to `upstream` that holds every connection until the gate opens.
async fn gated_relay(upstream: u16) -> (u16, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let port = listener.local_addr().expect("addr").port();
    let (gate, _) = tokio::sync::watch::channel(true);
    let opened = gate.subscribe();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut opened = opened.clone();
            tokio::spawn(async move {
                if opened.wait_for(|open| *open).await.is_err() {
                    return;
                }
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_registered_sources_to_load() {
    let db = ScratchDatabase::create(Backend::Postgres).await;
    let (relay, gate) = gated_relay(5432).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (user, password) = server_credentials(Backend::Postgres);
    {
        let m = Manifold::start_in(dir.path(), &[], &[]).await;
        assert_eq!(m.get("/health/live").await.0, 200);
        m.ready().await;
        m.post(
            "/api/dataSources:create",
            json!({"key": "slow", "type": "postgres", "options": {
                "host": "127.0.0.1", "port": relay, "database": db.name(),
                "username": user, "password": password, "acquireTimeoutMs": 60000,
            }}),
        )
        .await;
        m.loaded("slow").await;
    }
    // The next start loads `slow` from the registry, through a relay that holds it.
    gate.send_replace(false);
    let restarted = Manifold::start_in(dir.path(), &[], &[]).await;
    let (status, body) = restarted.get("/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["dataSources"]["slow"], json!("loading"), "{body}");
    assert_eq!(body["dataSources"]["main"], json!("loaded"), "{body}");
    assert_eq!(restarted.get("/health/live").await.0, 200);
    gate.send_replace(true);
    restarted.ready().await;
    let (_, body) = restarted.get("/health/ready").await;
    assert_eq!(body["dataSources"]["slow"], json!("loaded"), "{body}");
    drop(restarted);
    drop(db);
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An append through a relation to another data source: one trace holds the statements
/// of both databases, under the same action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_source_append_is_one_trace_over_both_databases() {
    let db = ScratchDatabase::create(Backend::Postgres).await;
    let pool = sqlx::PgPool::connect(&db.url()).await.expect("postgres");
    for statement in [
        "CREATE TABLE authors (id serial primary key, name text)",
        "INSERT INTO authors (name) VALUES ('ann')",
    ] {
        sqlx::query(statement).execute(&pool).await.expect("seed");
    }
    pool.close().await;
    let (received, receiver) = grpc_receiver().await;
    let m = Manifold::start(&grpc_env(receiver), &[]).await;
    let (user, password) = server_credentials(Backend::Postgres);
    m.post(
        "/api/dataSources:create",
        json!({"key": "crm", "type": "postgres", "options": {
            "host": "127.0.0.1", "port": 5432, "database": db.name(),
            "username": user, "password": password,
        }}),
    )
    .await;
    m.loaded("crm").await;
    m.post(
        "/api/collections:create",
        json!({"name": "posts", "fields": [
            {"name": "title", "type": "string"}, {"name": "authorId", "type": "integer"}
        ]}),
    )
    .await;
    m.post("/api/posts:create", json!({"title": "one", "authorId": 1}))
        .await;
    m.post(
        "/api/dataSourcesCollections/main.posts/fields:create",
        json!({"name": "author", "type": "belongsTo", "target": "authors",
               "targetDataSource": "crm", "foreignKey": "authorId"}),
    )
    .await;
    let (status, body) = m
        .send("GET", "/api/posts:list?appends=author", &[], None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""author":{"id":1,"name":"ann"}"#), "{body}");
    let (server, trace) = received.trace(|s| s.name == "GET /api/posts:list").await;
    let action = action_span(&trace, &server, "posts:list");
    let systems: Vec<(&str, &str)> = db_spans(&trace, action)
        .iter()
        .map(|s| (s.attr("db.system.name"), s.attr("db.collection.name")))
        .collect();
    assert_eq!(
        systems,
        [
            ("sqlite", "posts"),
            ("sqlite", "posts"),
            ("postgresql", "authors")
        ],
        "count and page on main, the authors on crm, in one trace"
    );
    drop(m);
    drop(db);
}
