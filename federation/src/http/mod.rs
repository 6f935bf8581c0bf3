//! The poem endpoint: HTTP in, [`App`] in the middle, JSON out; the server that stops a
//! request when its client goes away; and the operational endpoints beside the API:
//! `GET /metrics`, `GET /health/live`, `GET /health/ready`.

mod disconnect;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{Method, StatusCode, header};
use poem::listener::{Acceptor, Listener};
use poem::{Body, Endpoint, Request, Response};
use serde_json::json;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::app::App;
use crate::telemetry::{METRICS_CONTENT_TYPE, Metrics};
use disconnect::{Disconnects, WatchedAcceptor};
use manifold_core::RequestInfo;
use manifold_core::data_source::DataSourceStatus;

/// How long a request runs before its client's socket is watched for a hang-up: quick
/// requests never pay for watching, slow ones stop within this much of the client leaving.
const WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// Where the server finds the app: empty while the main database opens, so the health
/// endpoints answer from the first moment and API requests wait for the app.
#[derive(Clone)]
pub struct AppSlot {
    app: Arc<watch::Sender<Option<Arc<App>>>>,
}

impl AppSlot {
    /// A slot whose app is still being built.
    pub fn starting() -> Self {
        Self {
            app: Arc::new(watch::Sender::new(None)),
        }
    }

    /// A slot holding `app`.
    pub fn ready(app: Arc<App>) -> Self {
        Self {
            app: Arc::new(watch::Sender::new(Some(app))),
        }
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

/// What one endpoint shares across its requests.
struct Service {
    slot: AppSlot,
    metrics: Arc<Metrics>,
    body_limit: usize,
    disconnects: Option<Arc<Disconnects>>,
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
    endpoint_for(Service {
        slot: AppSlot::ready(app),
        metrics: Arc::new(Metrics::new()),
        body_limit,
        disconnects: None,
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
        if req.method() == Method::GET {
            match req.uri().path() {
                "/health/live" => return json_response(200, &json!({ "status": "live" })),
                "/health/ready" => return self.readiness(),
                "/metrics" => {
                    let app = self.slot.get();
                    return Response::builder()
                        .header(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)
                        .body(
                            self.metrics
                                .render(app.as_deref().map(|a| &**a.data_sources())),
                        );
                }
                _ => {}
            }
        }
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
            let response = respond(&app, req, self.body_limit);
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
        self.serve(
            AppSlot::ready(app),
            Arc::new(Metrics::new()),
            body_limit,
            shutdown,
        )
        .await
    }

    /// Serves the app of `slot` (API requests wait while it is empty; the health and
    /// metrics endpoints answer at once) until `shutdown` resolves, then drains requests
    /// for up to 10 s.
    pub async fn serve(
        self,
        slot: AppSlot,
        metrics: Arc<Metrics>,
        body_limit: usize,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let endpoint = endpoint_for(Service {
            slot,
            metrics,
            body_limit,
            disconnects: Some(self.disconnects),
        });
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                endpoint,
                shutdown,
                Some(std::time::Duration::from_secs(10)),
            )
            .await
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(bytes))
}

async fn respond(app: &App, mut req: Request, body_limit: usize) -> Answer {
    let body = match req.take_body().into_bytes_limit(body_limit).await {
        Ok(bytes) => bytes.to_vec(),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return Answer::plain(
                413,
                &json!({ "errors": [{ "message": format!("request body is larger than the limit of {body_limit} bytes") }] }),
            );
        }
        Err(e) => {
            return Answer::plain(
                400,
                &json!({ "errors": [{ "message": format!("cannot read request body: {e}") }] }),
            );
        }
    };
    let headers = req
        .headers()
        .iter()
        // Kept even when not ASCII: a garbled `Authorization` must be refused as a bad
        // token, not read as no token at all.
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
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
    let response = app.handle(info).await;
    let mut http = json_response(response.status, &response.body);
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
