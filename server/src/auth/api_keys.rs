//! API keys: long-lived tokens pinned to one of their creator's roles. A key is shown once,
//! when made; the main database keeps only its id, so a copy of it holds no usable key.
//! Each user sees and destroys only their own keys.

use std::sync::Arc;
use std::time::Duration;

use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, DataSource, Error, Result};
use serde_json::{Value as Json, json};

use super::Auth;
use super::actions::current_user_id;
use super::store::API_KEYS;
use super::tokens::Claims;

/// How many keys one user may hold (so listing them stays bounded).
pub const MAX_KEYS_PER_USER: usize = 100;

/// Registers the `apiKeys` actions on `main`.
pub fn define(auth: &Arc<Auth>, main: &DataSource) {
    let rm = main.resource_manager();
    rm.register_action_handler("apiKeys:create", Arc::new(Create(auth.clone())));
    rm.register_action_handler("apiKeys:list", Arc::new(List(auth.clone())));
    rm.register_action_handler("apiKeys:get", Arc::new(List(auth.clone())));
    rm.register_action_handler("apiKeys:destroy", Arc::new(Destroy(auth.clone())));
    for action in ["update", "firstOrCreate", "updateOrCreate"] {
        rm.register_action_handler(format!("apiKeys:{action}"), Arc::new(Unchangeable));
    }
}

/// What a key's `expiresIn` may say, for error messages.
pub const LIFETIMES: &str = "1d, 7d, 30d, 90d, never or a duration";

/// A key's lifetime from its `expiresIn` text: `never` is `Some(None)`, a duration above
/// zero `Some(Some(d))`, anything else `None`.
pub fn lifetime(text: &str) -> Option<Option<Duration>> {
    let text = text.trim();
    if text == "never" {
        return Some(None);
    }
    humantime::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .map(Some)
}

/// The lifetime a key gets when none is asked for.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

fn expires_in(value: Option<&Json>) -> Result<Option<Duration>> {
    let text = match value {
        None | Some(Json::Null) => return Ok(Some(DEFAULT_LIFETIME)),
        Some(Json::String(s)) => s.as_str(),
        Some(other) => {
            return Err(Error::bad_request(format!(
                "values.expiresIn: expected {LIFETIMES}, got {other}"
            )));
        }
    };
    lifetime(text).ok_or_else(|| {
        Error::bad_request(format!(
            "values.expiresIn: expected {LIFETIMES}, got {:?}",
            text.trim()
        ))
    })
}

impl Auth {
    /// Makes an API key of the user `user_id` acting in `role` (which the caller has
    /// checked the user holds) and returns its row's id and the key, which is not kept.
    pub(super) async fn create_api_key(
        &self,
        user_id: i64,
        role: String,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<(Json, String)> {
        let name = name.chars().take(255).collect::<String>();
        let held = self
            .store
            .find(API_KEYS, &json!({ "createdById": user_id }), &[])
            .await?
            .len();
        if held >= MAX_KEYS_PER_USER {
            return Err(Error::bad_request(format!(
                "a user holds at most {MAX_KEYS_PER_USER} API keys; destroy one first"
            )));
        }
        let now = chrono::Utc::now();
        let exp =
            lifetime.map(|d| now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let row = self
            .store
            .insert(
                API_KEYS,
                &json!({
                    "name": name, "roleName": role, "jti": jti,
                    "expiresAt": exp.map(|e| e.to_rfc3339()), "createdById": user_id,
                }),
            )
            .await?;
        let token = self.keys.sign(&Claims {
            user_id,
            jti,
            iat: now.timestamp(),
            exp: exp.map(|e| e.timestamp()),
            temp: false,
            sign_in_time: None,
            role_name: Some(role),
        })?;
        Ok((row.get("id").cloned().unwrap_or(Json::Null), token))
    }

    /// Destroys the API keys matching `filter`; they stop working at once here and on
    /// the other replicas as soon as they hear of it. Returns how many there were.
    pub(super) async fn revoke_api_keys(&self, filter: &Json) -> Result<u64> {
        let rows = self.store.find(API_KEYS, filter, &["jti"]).await?;
        let destroyed = self.store.delete(API_KEYS, filter).await?;
        for row in rows {
            if let Some(jti) = row.get("jti").and_then(Json::as_str) {
                self.sessions_ended(Some(jti)).await?;
            }
        }
        Ok(destroyed)
    }
}

struct Create(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for Create {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let user_id = current_user_id(ctx)?;
        let values = ctx
            .action()?
            .params
            .get("values")
            .cloned()
            .unwrap_or(Json::Null);
        let role = values
            .get("role")
            .and_then(|r| r.get("name").or(Some(r)))
            .and_then(Json::as_str)
            .or_else(|| values.get("roleName").and_then(Json::as_str))
            .ok_or_else(|| Error::bad_request("values.role: name the role the key acts in"))?
            .to_owned();
        let mine = ctx
            .state
            .get("userRoles")
            .and_then(Json::as_array)
            .is_some_and(|roles| roles.iter().any(|r| r.as_str() == Some(&role)));
        if !mine || ctx.state.contains_key("apiKey") {
            return Err(Error::bad_request("Role not found"));
        }
        let name = values.get("name").and_then(Json::as_str).unwrap_or("");
        let lifetime = expires_in(values.get("expiresIn"))?;
        let (id, token) = self.0.create_api_key(user_id, role, name, lifetime).await?;
        ctx.body = Some(json!({ "id": id, "token": token }));
        next.run(ctx).await
    }
}

/// `list` and `get`: the caller's own keys (never the key itself).
struct List(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for List {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let user_id = current_user_id(ctx)?;
        let action = ctx.action()?;
        let mut filter = json!({ "createdById": user_id });
        if let Some(key) = action.params.get("filterByTk") {
            filter["id"] = key.clone();
        }
        let rows = self.0.store.find(API_KEYS, &filter, &[]).await?;
        ctx.body = Some(if action.action_name == "get" {
            rows.into_iter()
                .next()
                .map(Json::Object)
                .unwrap_or(Json::Null)
        } else {
            // At most MAX_KEYS_PER_USER rows: one page holds them all.
            ctx.body_meta = Some(json!({
                "count": rows.len(), "page": 1, "pageSize": MAX_KEYS_PER_USER, "totalPage": 1,
            }));
            Json::Array(rows.into_iter().map(Json::Object).collect())
        });
        next.run(ctx).await
    }
}

/// `destroy` by `filterByTk`: the key stops working at once on this process, and on the
/// others as soon as they hear of it (within the change poll interval).
struct Destroy(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for Destroy {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let user_id = current_user_id(ctx)?;
        let key = ctx
            .action()?
            .params
            .get("filterByTk")
            .cloned()
            .ok_or_else(|| Error::bad_request("filterByTk: name the key to destroy"))?;
        let filter = json!({ "createdById": user_id, "id": key });
        let destroyed = self.0.revoke_api_keys(&filter).await?;
        if destroyed == 0 {
            return Err(Error::not_found(format!("API key {key} does not exist")));
        }
        ctx.body = Some(json!(destroyed));
        next.run(ctx).await
    }
}

struct Unchangeable;

#[async_trait::async_trait]
impl Middleware for Unchangeable {
    async fn handle(&self, _ctx: &mut Context, _next: Next<'_>) -> Result<()> {
        Err(Error::bad_request(
            "an API key cannot be changed; destroy it and create another",
        ))
    }
}
