//! Shared fixtures for Manifold's end-to-end tests: a real service on a temporary SQLite
//! main database, driven through its real HTTP endpoint.

use std::sync::Arc;

use manifold_federation::{App, ServeConfig, build_app, http};
use poem::http::Method;
use poem::{Endpoint, EndpointExt, Request};
use serde_json::{Value as Json, json};

/// A running app with its own temporary main database.
pub struct TestApp {
    /// The application, for registering middleware and resources in tests.
    pub app: Arc<App>,
    endpoint: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    /// The directory holding the main database; removed on drop.
    pub dir: tempfile::TempDir,
}

/// A response: status and parsed JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Json,
}

impl Reply {
    /// `body.data`.
    pub fn data(&self) -> &Json {
        &self.body["data"]
    }

    /// `body.errors[0].message`, or "" when there is none.
    pub fn error(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or("")
    }

    /// The values of `field` across `data` (an array of records).
    pub fn column(&self, field: &str) -> Vec<Json> {
        self.data()
            .as_array()
            .map(|rows| rows.iter().map(|r| r[field].clone()).collect())
            .unwrap_or_default()
    }
}

/// Percent-encodes a query value (a JSON filter, a sort list).
pub fn enc(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

/// `filter=<encoded JSON>`.
pub fn filter(f: Json) -> String {
    format!("filter={}", enc(&f.to_string()))
}

impl TestApp {
    /// A fresh app with an empty main database.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A fresh app whose configuration `tweak` adjusts.
    pub async fn with(tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServeConfig {
            main_db: format!("sqlite://{}/main.sqlite", dir.path().display()),
            ..ServeConfig::default()
        };
        tweak(&mut config);
        Self::open(dir, &config).await
    }

    /// An app on an existing directory (to test a restart).
    pub async fn open(dir: tempfile::TempDir, config: &ServeConfig) -> Self {
        let app = build_app(config).await.expect("app starts");
        let endpoint = http::endpoint(app.clone(), config.body_limit).boxed();
        Self { app, endpoint, dir }
    }

    /// Sends a request; `path` includes the query string.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri_str(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = match body {
            Some(bytes) => builder.body(bytes),
            None => builder.finish(),
        };
        let response = self.endpoint.call(request).await.expect("endpoint answers");
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .into_string()
            .await
            .expect("readable body");
        let body = if text.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Reply { status, body }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Json) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// `POST path` with no body.
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, &[], None).await
    }

    /// Creates a collection through the API and asserts it worked.
    pub async fn collection(&self, definition: Json) {
        let r = self.post("/api/collections:create", definition).await;
        assert_eq!(r.status, 200, "collections:create failed: {:?}", r.body);
    }

    /// Inserts records through the API and asserts it worked.
    pub async fn insert(&self, collection: &str, rows: Json) -> Json {
        let r = self.post(&format!("/api/{collection}:create"), rows).await;
        assert_eq!(r.status, 200, "{collection}:create failed: {:?}", r.body);
        r.data().clone()
    }

    /// The number of rows of `collection`, read through the API.
    pub async fn count(&self, collection: &str) -> u64 {
        let r = self
            .get(&format!("/api/{collection}:list?pageSize=1"))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["meta"]["count"].as_u64().expect("count")
    }
}

/// `posts(title string, score integer, status string default "draft")` with id and
/// timestamps, the fixture most action tests start from.
pub fn posts_definition() -> Json {
    json!({
        "name": "posts",
        "fields": [
            {"name": "title", "type": "string"},
            {"name": "score", "type": "integer"},
            {"name": "status", "type": "string", "defaultValue": "draft"}
        ]
    })
}

impl TestApp {
    /// Polls `dataSources:get/<key>` until its status is no longer `loading`/`reloading`,
    /// and returns the record.
    pub async fn settled(&self, key: &str) -> Json {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/api/dataSources:get/{key}")).await;
            let status = r.data()["status"].as_str().unwrap_or("").to_owned();
            if !matches!(status.as_str(), "loading" | "reloading") {
                return r.data().clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "data source {key} still {status} after 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Sends `method path` to the data source `key`.
    pub async fn on(&self, key: &str, method: Method, path: &str, body: Option<Json>) -> Reply {
        let headers = [("x-data-source", key), ("content-type", "application/json")];
        self.send(
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }
}
