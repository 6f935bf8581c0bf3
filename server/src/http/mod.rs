//! The poem endpoint: HTTP in, [`App`] in the middle, JSON out; the server that stops a
//! request when its client goes away; and the operational endpoints beside the API:
//! `GET /metrics`, `GET /health/live`, `GET /health/ready`.

mod connection;
mod cors;
mod disconnect;
pub mod large_requests;
mod rules;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream;
use manifold_core::streamed::StreamedArray;
use poem::http::{Method, StatusCode, header};
use poem::listener::{Acceptor, Listener};
use poem::{Body, Endpoint, Request, Response};
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::app::App;
use crate::telemetry::{METRICS_CONTENT_TYPE, Metrics};
pub use connection::ConnectionLimits;
pub use cors::CorsOrigins;
use disconnect::{Disconnects, WatchedAcceptor};
use manifold_core::RequestInfo;
use manifold_core::data_source::DataSourceStatus;
pub use rules::HostNames;

/// How long a request runs before its client's socket is watched for a hang-up: quick
/// requests never pay for watching, slow ones stop within this much of the client leaving.
const WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// Where the server finds the app: empty while the main database opens, so the health
/// endpoints answer from the first moment and API requests wait for the app.
#[derive(Clone)]
pub struct AppSlot {
    app: Arc<watch::Sender<Option<Arc<App>>>>,
    /// Set when shutdown begins: readiness answers 503 from then on, while requests are
    /// still served, so a load balancer stops sending before connections are refused.
    stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl AppSlot {
    /// A slot whose app is still being built.
    pub fn starting() -> Self {
        Self {
            app: Arc::new(watch::Sender::new(None)),
            stopping: Arc::default(),
        }
    }

    /// A slot holding `app`.
    pub fn ready(app: Arc<App>) -> Self {
        Self {
            app: Arc::new(watch::Sender::new(Some(app))),
            stopping: Arc::default(),
        }
    }

    /// Marks the service as shutting down: `/health/ready` answers 503 from now on.
    pub fn begin_stopping(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Puts the built app in; waiting requests go on.
    pub fn set(&self, app: Arc<App>) {
        self.app.send_replace(Some(app));
    }

    /// The app, if built.
    pub fn get(&self) -> Option<Arc<App>> {
        self.app.borrow().clone()
    }

    /// The app, once built. Waits forever if it never is, but then the process is on its
    /// way out (`serve` returns when building fails).
    async fn wait(&self) -> Arc<App> {
        if let Some(app) = self.get() {
            return app;
        }
        let mut rx = self.app.subscribe();
        loop {
            if let Some(app) = rx.borrow_and_update().clone() {
                return app;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How the HTTP side treats requests and connections; every field has a documented default
/// (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Header, body and keep-alive timeouts.
    pub limits: ConnectionLimits,
    /// Origins allowed to call from a browser; none by default.
    pub cors: CorsOrigins,
    /// Accepted `Host` names; any by default.
    pub hosts: HostNames,
    /// Whether `GET /metrics` is served beside the API (not when it has a listener of its
    /// own).
    pub metrics_with_api: bool,
    /// How long requests in flight may run on once the service stops accepting.
    pub drain: std::time::Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            body_limit: 10 * 1024 * 1024,
            limits: ConnectionLimits::default(),
            cors: CorsOrigins::default(),
            hosts: HostNames::default(),
            metrics_with_api: true,
            drain: std::time::Duration::from_secs(10),
        }
    }
}

impl HttpOptions {
    /// The options `config` asks for, or what is wrong with them.
    pub fn from_config(config: &crate::ServeConfig) -> Result<Self, String> {
        Ok(Self {
            body_limit: config.body_limit,
            limits: ConnectionLimits {
                header_read_timeout: config.header_read_timeout,
                body_read_timeout: config.body_read_timeout,
                keep_alive_timeout: config.keep_alive_timeout,
            },
            cors: CorsOrigins::parse(&config.cors_origins)
                .map_err(|e| format!("--cors-origins: {e}"))?,
            hosts: HostNames::parse(&config.accepted_host_headers)
                .map_err(|e| format!("--accepted-host-headers: {e}"))?,
            metrics_with_api: config.metrics_listen.is_none(),
            drain: config.shutdown_grace,
        })
    }
}

/// Which requests a listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Api,
    /// Only `GET /metrics`.
    Metrics,
}

/// What one endpoint shares across its requests.
struct Service {
    slot: AppSlot,
    metrics: Arc<Metrics>,
    options: HttpOptions,
    disconnects: Option<Arc<Disconnects>>,
    role: Role,
}

/// An answered API request, with what the span and the metrics need to know of it.
struct Answer {
    response: Response,
    status: u16,
    route: Option<String>,
    data_source: Option<String>,
    /// Why a 401 or 403 refused the caller (its `code`), for the refusal metric.
    refusal: Option<String>,
}

impl Answer {
    fn refused(refusal: rules::Refusal) -> Self {
        let mut answer = Self::plain(
            refusal.status,
            &json!({ "errors": [{ "message": refusal.message }] }),
        );
        if let Some(allow) = refusal.allow {
            answer
                .response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        answer
    }

    fn plain(status: u16, body: &serde_json::Value) -> Self {
        Self {
            response: json_response(status, body),
            status,
            route: None,
            refusal: None,
            data_source: None,
        }
    }
}

/// An endpoint serving `app` for every path, reading bodies up to `body_limit` bytes.
pub fn endpoint(app: Arc<App>, body_limit: usize) -> impl Endpoint<Output = Response> {
    endpoint_with(
        app,
        HttpOptions {
            body_limit,
            ..HttpOptions::default()
        },
    )
}

/// An endpoint serving `app` for every path under `options`.
pub fn endpoint_with(app: Arc<App>, options: HttpOptions) -> impl Endpoint<Output = Response> {
    endpoint_for(Service {
        slot: AppSlot::ready(app),
        metrics: Arc::new(Metrics::new()),
        options,
        disconnects: None,
        role: Role::Api,
    })
}

fn endpoint_for(service: Service) -> impl Endpoint<Output = Response> {
    let service = Arc::new(service);
    poem::endpoint::make(move |req: Request| {
        let service = service.clone();
        async move { Ok::<_, poem::Error>(service.serve(req).await) }
    })
}

impl Service {
    async fn serve(&self, req: Request) -> Response {
        let is_get = req.method() == Method::GET;
        if self.role == Role::Metrics {
            if is_get && req.uri().path() == "/metrics" {
                return self.render_metrics();
            }
            return json_response(
                404,
                &json!({ "errors": [{ "message": "this listener serves only GET /metrics" }] }),
            );
        }
        if is_get {
            match req.uri().path() {
                "/health/live" => return json_response(200, &json!({ "status": "live" })),
                "/health/ready" => return self.readiness(),
                "/metrics" if self.options.metrics_with_api => {
                    if let Some(refused) = self.host_refusal(&req) {
                        return refused;
                    }
                    return self.render_metrics();
                }
                _ => {}
            }
        }
        if let Some(refused) = self.host_refusal(&req) {
            return refused;
        }
        let cors = &self.options.cors;
        if cors.is_preflight(&req) {
            return cors.preflight(&req);
        }
        let origin = cors.origin_of(&req);
        let mut response = Box::pin(self.answer(req)).await;
        cors.decorate(origin, &mut response);
        response
    }

    fn render_metrics(&self) -> Response {
        let app = self.slot.get();
        Response::builder()
            .header(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)
            .body(self.metrics.render(app.as_deref()))
    }

    /// Refuses a request for a host this service does not answer for, so that a name an
    /// attacker points at it (DNS rebinding) does not reach the API from a browser.
    fn host_refusal(&self, req: &Request) -> Option<Response> {
        let hosts = &self.options.hosts;
        if hosts.is_any() {
            return None;
        }
        let message = match rules::requested_host(req) {
            Some(host) if hosts.accepts(&host) => return None,
            Some(host) => {
                format!("Host {host} is not served here (see MANIFOLD_ACCEPTED_HOST_HEADERS)")
            }
            None => "the request names no readable Host".to_owned(),
        };
        Some(json_response(
            400,
            &json!({ "errors": [{ "message": message }] }),
        ))
    }

    /// An API request, traced, metered, and stopped when its client leaves.
    async fn answer(&self, req: Request) -> Response {
        let started = Instant::now();
        let method = trace::method_name(req.method());
        let span = trace::server_span(&req, method);
        let gone = self
            .disconnects
            .as_ref()
            .zip(req.remote_addr().as_socket_addr())
            .and_then(|(d, peer)| d.watch(peer));
        let answer = async {
            let app = self.slot.wait().await;
            // Boxed, as is every large future held across an await here: a future is
            // copied whole each time it moves, and unboxed these add up to tens of
            // kilobytes per request.
            let response = Box::pin(respond(&app, req, &self.options));
            match gone {
                // Dropping the response future stops the action and its query.
                Some(gone) => tokio::select! {
                    r = response => r,
                    () = gone.closed_after(WATCH_AFTER) => Answer::plain(
                        499,
                        &json!({ "errors": [{ "message": "the client closed the connection" }] }),
                    ),
                },
                None => response.await,
            }
        }
        .instrument(span.clone())
        .await;
        trace::finish(&span, method, &answer);
        self.metrics.observe(
            method,
            answer.route.as_deref().unwrap_or("unmatched"),
            answer.status,
            answer.data_source.as_deref().unwrap_or("none"),
            started.elapsed().as_secs_f64(),
        );
        if let Some(reason) = &answer.refusal {
            self.metrics.refused(answer.status, reason);
        }
        answer.response
    }

    /// 200 once the app is built and no source is still on its first load; 503 before,
    /// with what is still loading. A source that failed to load has finished loading: it
    /// answers 503 itself, and the others should not be taken out of service for it.
    fn readiness(&self) -> Response {
        if self.slot.is_stopping() {
            return json_response(
                503,
                &json!({ "status": "stopping", "reason": "the service is shutting down" }),
            );
        }
        let Some(app) = self.slot.get() else {
            return json_response(
                503,
                &json!({ "status": "starting", "reason": "the main database is being opened" }),
            );
        };
        let statuses = app.data_sources().statuses();
        let loading = statuses
            .iter()
            .any(|(_, s)| matches!(s, DataSourceStatus::Loading));
        let sources: serde_json::Map<String, serde_json::Value> = statuses
            .iter()
            .map(|(key, status)| (key.clone(), json!(status.name())))
            .collect();
        if loading {
            json_response(
                503,
                &json!({ "status": "loading", "reason": "data sources are still loading", "dataSources": sources }),
            )
        } else {
            json_response(200, &json!({ "status": "ready", "dataSources": sources }))
        }
    }
}

/// A bound server: its address, and the future that serves until `shutdown` resolves.
pub struct Server {
    /// Where it listens (useful when bound to port 0).
    pub local_addr: SocketAddr,
    acceptor: WatchedAcceptor,
    disconnects: Arc<Disconnects>,
}

impl Server {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let inner = poem::listener::TcpListener::bind(addr)
            .into_acceptor()
            .await?;
        let local_addr = inner
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(addr);
        let disconnects = Arc::new(Disconnects::default());
        Ok(Self {
            local_addr,
            acceptor: WatchedAcceptor::new(inner, disconnects.clone()),
            disconnects,
        })
    }

    /// Serves `app` until `shutdown` resolves, then drains requests for up to 10 s.
    pub async fn run(
        self,
        app: Arc<App>,
        body_limit: usize,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let options = HttpOptions {
            body_limit,
            ..HttpOptions::default()
        };
        self.serve(
            AppSlot::ready(app),
            Arc::new(Metrics::new()),
            options,
            shutdown,
        )
        .await
    }

    /// Serves the app of `slot` (API requests wait while it is empty; the health and
    /// metrics endpoints answer at once) until `shutdown` resolves, then lets requests in
    /// flight finish for up to the options' `drain` time.
    pub async fn serve(
        self,
        slot: AppSlot,
        metrics: Arc<Metrics>,
        options: HttpOptions,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let disconnects = Some(self.disconnects.clone());
        self.run_role(slot, metrics, options, disconnects, Role::Api, shutdown)
            .await
    }

    /// Serves only `GET /metrics` (`--metrics-listen`) until `shutdown` resolves.
    pub async fn serve_metrics(
        self,
        slot: AppSlot,
        metrics: Arc<Metrics>,
        options: HttpOptions,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.run_role(slot, metrics, options, None, Role::Metrics, shutdown)
            .await
    }

    async fn run_role(
        self,
        slot: AppSlot,
        metrics: Arc<Metrics>,
        options: HttpOptions,
        disconnects: Option<Arc<Disconnects>>,
        role: Role,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let limits = options.limits;
        let drain = options.drain;
        let service = Arc::new(Service {
            slot,
            metrics,
            options,
            disconnects,
            role,
        });
        let mut acceptor = self.acceptor;
        let (stop, stopping) = watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = acceptor.accept() => match accepted {
                    Ok((io, local, remote, scheme)) => {
                        let peer = connection::Peer { local, remote, scheme };
                        connections.spawn(connection::serve(
                            io,
                            peer,
                            service.clone(),
                            limits,
                            stopping.clone(),
                        ));
                    }
                    Err(e) => {
                        // Out of descriptors, most likely: wait for connections to close
                        // rather than spin on the error.
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // No new connections; the open ones finish what they run, within the drain time.
        drop(acceptor);
        stop.send_replace(true);
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(drain, drained).await.is_err() {
            connections.abort_all();
        }
        Ok(())
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(bytes))
}

/// A response whose JSON array is written as its chunks come. An error after the first
/// byte cannot become a 4xx any more: the body stops there with an error, so the
/// connection is cut without the closing chunk and the client sees an incomplete answer
/// rather than a shorter valid one.
fn streamed_response(status: u16, array: StreamedArray) -> Response {
    let (before, chunks, after) = array.into_parts();
    let mut first = true;
    let elements = chunks.map(move |chunk| match chunk {
        Ok(chunk) if chunk.is_empty() => Ok(Bytes::new()),
        Ok(mut chunk) => {
            if !std::mem::replace(&mut first, false) {
                chunk.insert(0, b',');
            }
            Ok(Bytes::from(chunk))
        }
        Err(e) => {
            tracing::error!(error = %e.message(), "a streamed answer failed after it began; its body is cut short");
            Err(std::io::Error::other(e.message().to_owned()))
        }
    });
    let finished = large_requests::Finished;
    let body = stream::iter([Ok(Bytes::from(before))])
        .chain(elements)
        .chain(stream::iter([Ok(Bytes::from(after))]))
        .map(move |chunk| {
            // Owned by the body, so dropped with it however it ends.
            let _ = &finished;
            chunk
        });
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from_bytes_stream(body))
}

fn refused(req: &Request, refusal: rules::Refusal) -> Answer {
    tracing::debug!(
        status = refusal.status,
        error = %refusal.message,
        path = req.uri().path(),
        "request refused"
    );
    Answer::refused(refusal)
}

/// The request's body, read within the body limits; or the answer that refuses it.
async fn read_body(req: &mut Request, options: &HttpOptions) -> Result<Vec<u8>, Answer> {
    let body = req.take_body();
    // Most requests have none; reading one would cost a zeroed 4 KiB buffer and a timer.
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let body_limit = options.body_limit;
    let timeout = options.limits.body_read_timeout;
    let read = Box::pin(tokio::time::timeout(
        timeout,
        body.into_bytes_limit(body_limit),
    ));
    let Ok(read) = read.await else {
        let mut answer = Answer::plain(
            408,
            &json!({ "errors": [{ "message": format!("the request body did not arrive within {} s", timeout.as_secs_f32()) }] }),
        );
        // The rest of the body may still come; the connection cannot be reused.
        answer.response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return Err(answer);
    };
    match read {
        Ok(bytes) => Ok(Vec::from(bytes)),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(Answer::plain(
            413,
            &json!({ "errors": [{ "message": format!("request body is larger than the limit of {body_limit} bytes") }] }),
        )),
        Err(e) => Err(Answer::plain(
            400,
            &json!({ "errors": [{ "message": format!("cannot read request body: {e}") }] }),
        )),
    }
}

async fn respond(app: &App, mut req: Request, options: &HttpOptions) -> Answer {
    let checked =
        rules::check_data_source(&req).and_then(|()| rules::check_action(&req, app.data_sources()));
    let changes = match checked {
        Ok(changes) => changes,
        Err(refusal) => return refused(&req, refusal),
    };
    let body = match read_body(&mut req, options).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    if let Err(refusal) = rules::check_untyped_body(&req, changes.as_deref(), &body) {
        return refused(&req, refusal);
    }
    let headers = req
        .headers()
        .iter()
        // Kept even when not ASCII: a garbled `Authorization` must be refused as a bad
        // token, not read as no token at all.
        .map(|(k, v)| {
            let value = match std::str::from_utf8(v.as_bytes()) {
                Ok(text) => text.to_owned(),
                Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            };
            (k.as_str().to_owned(), value)
        })
        .collect();
    let info = RequestInfo {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        headers,
        body,
        peer: req.remote_addr().as_socket_addr().map(|a| a.ip()),
    };
    let large = info.body.len() >= large_requests::LARGE_BODY;
    let mut response = app.handle(info).await;
    if large {
        large_requests::note();
    }
    let mut http = match response.streamed.take() {
        Some(array) => streamed_response(response.status, array),
        None => json_response(response.status, &response.body),
    };
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            header::HeaderValue::from_str(value),
        ) {
            http.headers_mut().append(name, value);
        }
    }
    let refusal = match response.status {
        401 => Some(
            response.body["errors"][0]["code"]
                .as_str()
                .unwrap_or("UNAUTHORIZED")
                .to_owned(),
        ),
        403 => Some("NO_PERMISSIONS".to_owned()),
        _ => None,
    };
    Answer {
        response: http,
        status: response.status,
        route: response.route,
        data_source: response.data_source,
        refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(items: Vec<manifold_core::Result<&'static str>>) -> StreamedArray {
        StreamedArray::new(
            stream::iter(items.into_iter().map(|i| i.map(|s| s.as_bytes().to_vec()))).boxed(),
        )
    }

    #[tokio::test]
    async fn a_streamed_array_is_written_as_one_json_document() {
        let array = chunks(vec![Ok("1,2"), Ok(""), Ok("3")]).enclose(b"{\"data\":", b"}");
        let response = streamed_response(200, array);
        let body = response
            .into_body()
            .into_bytes()
            .await
            .expect("a whole body");
        assert_eq!(&body[..], b"{\"data\":[1,2,3]}");
    }

    #[tokio::test]
    async fn an_error_after_the_first_chunk_cuts_the_body_short() {
        let array = chunks(vec![
            Ok("1"),
            Err(manifold_core::Error::internal("the database went away")),
            Ok("2"),
        ]);
        let response = streamed_response(200, array);
        assert!(
            response.into_body().into_bytes().await.is_err(),
            "the body must fail, not end as valid JSON"
        );
    }
}
