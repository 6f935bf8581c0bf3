//! The poem endpoint: HTTP in, [`App`] in the middle, JSON out; and the server that stops
//! a request when its client goes away.

mod disconnect;

use std::net::SocketAddr;
use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::listener::{Acceptor, Listener};
use poem::{Body, Endpoint, Request, Response};

use crate::app::App;
use disconnect::{Disconnects, WatchedAcceptor};
use manifold_core::RequestInfo;

/// An endpoint serving `app` for every path, reading bodies up to `body_limit` bytes.
pub fn endpoint(app: Arc<App>, body_limit: usize) -> impl Endpoint<Output = Response> {
    endpoint_watching(app, body_limit, None)
}

fn endpoint_watching(
    app: Arc<App>,
    body_limit: usize,
    disconnects: Option<Arc<Disconnects>>,
) -> impl Endpoint<Output = Response> {
    poem::endpoint::make(move |req: Request| {
        let app = app.clone();
        let gone = disconnects
            .as_ref()
            .zip(req.remote_addr().as_socket_addr())
            .and_then(|(d, peer)| d.token(peer));
        async move {
            let response = respond(&app, req, body_limit);
            Ok::<_, poem::Error>(match gone {
                // Dropping the response future stops the action and its query.
                Some(gone) => tokio::select! {
                    r = response => r,
                    () = gone.cancelled() => json_response(
                        499,
                        &serde_json::json!({ "errors": [{ "message": "the client closed the connection" }] }),
                    ),
                },
                None => response.await,
            })
        }
    })
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
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                endpoint_watching(app, body_limit, Some(self.disconnects)),
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

async fn respond(app: &App, mut req: Request, body_limit: usize) -> Response {
    let body = match req.take_body().into_bytes_limit(body_limit).await {
        Ok(bytes) => bytes.to_vec(),
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return json_response(
                413,
                &serde_json::json!({ "errors": [{ "message": format!("request body is larger than the limit of {body_limit} bytes") }] }),
            );
        }
        Err(e) => {
            return json_response(
                400,
                &serde_json::json!({ "errors": [{ "message": format!("cannot read request body: {e}") }] }),
            );
        }
    };
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let info = RequestInfo {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        headers,
        body,
    };
    let response = app.handle(info).await;
    json_response(response.status, &response.body)
}
