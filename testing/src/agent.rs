//! A client of the `:action` API, signed in or anonymous.

use std::sync::Arc;

use poem::http::Method;
use poem::{Endpoint, Request};
use serde_json::{Value as Json, json};

use crate::error::HarnessError;
use crate::params::query_string;
use crate::reply::Reply;

/// What every agent of one server shares.
pub(crate) struct Shared {
    pub endpoint: Arc<poem::endpoint::BoxEndpoint<'static, poem::Response>>,
}

/// Sends requests as one caller: with its token (if any) and the headers it was given.
#[derive(Clone)]
pub struct Agent {
    shared: Arc<Shared>,
    token: Option<String>,
    headers: Vec<(String, String)>,
}

impl Agent {
    pub(crate) fn new(shared: Arc<Shared>, token: Option<String>) -> Self {
        Self {
            shared,
            token,
            headers: Vec::new(),
        }
    }

    /// The same caller, also sending `name: value` with every request (`X-Locale`,
    /// `X-Data-Source`, …).
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The bearer token this agent sends, if it is signed in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Signs in with `account` and `password` (`auth:signIn`) and returns an agent that
    /// sends the token it got, with this agent's headers.
    pub async fn sign_in(&self, account: &str, password: &str) -> Result<Agent, HarnessError> {
        let r = self
            .post(
                "/api/auth:signIn",
                json!({ "account": account, "password": password }),
            )
            .await?;
        let token = r.data()["token"].as_str().map(str::to_owned);
        match token {
            Some(token) if r.status == 200 => Ok(Agent {
                shared: self.shared.clone(),
                token: Some(token),
                headers: self.headers.clone(),
            }),
            _ => Err(HarnessError::SignIn {
                account: account.to_owned(),
                status: r.status,
                body: r.body,
            }),
        }
    }

    /// The actions of resource `name` (`posts`, or an association such as `posts/1/tags`).
    pub fn resource(&self, name: &str) -> Resource {
        Resource {
            agent: self.clone(),
            name: name.to_owned(),
        }
    }

    /// `GET path` (with its query string).
    pub async fn get(&self, path: &str) -> Result<Reply, HarnessError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post(&self, path: &str, body: Json) -> Result<Reply, HarnessError> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Json>,
    ) -> Result<Reply, HarnessError> {
        let mut builder = Request::builder().method(method).uri_str(path);
        if let Some(token) = &self.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = match body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => builder.finish(),
        };
        let response = self
            .shared
            .endpoint
            .call(request)
            .await
            .map_err(|e| HarnessError::Request(format!("{path}: {e}")))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = response
            .into_body()
            .into_string()
            .await
            .map_err(|e| HarnessError::Request(format!("{path}: reading the answer: {e}")))?;
        let body = serde_json::from_str(&text).unwrap_or(Json::Null);
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }
}

/// The actions of one resource, as NocoBase's `agent.resource('posts')` offers them,
/// sent as the agent it came from.
pub struct Resource {
    agent: Agent,
    name: String,
}

impl Resource {
    /// `name:action` with `params` (a JSON object: `filter`, `appends`, `filterByTk`, …)
    /// in the query string and `values` as the body (`None`: a `GET`).
    pub async fn action(
        &self,
        action: &str,
        params: Json,
        values: Option<Json>,
    ) -> Result<Reply, HarnessError> {
        let query = query_string(&params);
        let mut path = format!("/api/{}:{action}", self.name);
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        match values {
            Some(values) => self.agent.post(&path, values).await,
            None => self.agent.get(&path).await,
        }
    }

    /// `list` with `params`.
    pub async fn list(&self, params: Json) -> Result<Reply, HarnessError> {
        self.action("list", params, None).await
    }

    /// `get` of the record whose key is `key`.
    pub async fn get(&self, key: Json) -> Result<Reply, HarnessError> {
        self.action("get", json!({ "filterByTk": key }), None).await
    }

    /// `create` with `values` (an object, or an array of them).
    pub async fn create(&self, values: Json) -> Result<Reply, HarnessError> {
        self.action("create", json!({}), Some(values)).await
    }

    /// `update` of the record whose key is `key` with `values`.
    pub async fn update(&self, key: Json, values: Json) -> Result<Reply, HarnessError> {
        self.action("update", json!({ "filterByTk": key }), Some(values))
            .await
    }

    /// `destroy` of the record whose key is `key`.
    pub async fn destroy(&self, key: Json) -> Result<Reply, HarnessError> {
        self.action("destroy", json!({ "filterByTk": key }), Some(json!({})))
            .await
    }
}
