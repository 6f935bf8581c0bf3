//! The poem endpoint: HTTP in, [`App`] in the middle, JSON out.

use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::{Body, Endpoint, Request, Response};

use crate::app::App;
use manifold_core::RequestInfo;

/// An endpoint serving `app` for every path, reading bodies up to `body_limit` bytes.
pub fn endpoint(app: Arc<App>, body_limit: usize) -> impl Endpoint<Output = Response> {
    poem::endpoint::make(move |req: Request| {
        let app = app.clone();
        async move { Ok::<_, poem::Error>(respond(&app, req, body_limit).await) }
    })
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
