//! The actions of `auth` (`signIn`, `signOut`, `check`, `changePassword`), `roles:check`,
//! and the guards on the accounts' own collections: passwords are hashed on every write,
//! and the built-in roles cannot be destroyed.

use std::sync::Arc;

use manifold_core::acl::Acl;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::{ResourceDefinition, ScopedMiddleware};
use manifold_core::{Context, DataSource, Error, ErrorKind, Result};
use serde_json::{Map, Value as Json, json};

use super::store::{BUILT_IN_ROLES, ISSUED_TOKENS, ROLES, USERS};
use super::throttle::Verdict;
use super::{Auth, api_keys, as_i64, password};

/// The one answer to a wrong account or password, so that it tells neither apart.
fn wrong_credentials() -> Error {
    Error::new(
        ErrorKind::Unauthorized,
        "The username/email or password is incorrect, please re-enter",
    )
    .with_message_id("auth-wrong-credentials", Vec::new())
}

/// Defines the actions on `main`.
pub fn define(auth: &Arc<Auth>, main: &DataSource) {
    let rm = main.resource_manager();
    rm.define(
        ResourceDefinition::new("auth")
            .action("signIn", Arc::new(SignIn(auth.clone())))
            .action("signOut", Arc::new(SignOut(auth.clone())))
            .action("check", Arc::new(Check))
            .action("changePassword", Arc::new(ChangePassword(auth.clone()))),
    );
    rm.define(
        ResourceDefinition::new(USERS).middleware(ScopedMiddleware {
            middleware: Arc::new(HashPasswords(auth.clone())),
            only: ["create", "update", "firstOrCreate", "updateOrCreate"]
                .map(String::from)
                .to_vec(),
            except: Vec::new(),
        }),
    );
    rm.define(ResourceDefinition::new(ROLES).middleware(ScopedMiddleware {
        middleware: Arc::new(KeepBuiltInRoles),
        only: vec!["destroy".into()],
        except: Vec::new(),
    }));
    rm.define(
        ResourceDefinition::new("dataSources").middleware(ScopedMiddleware {
            middleware: Arc::new(HideConnectionDetails(main.acl().clone())),
            only: vec!["list".into(), "get".into()],
            except: Vec::new(),
        }),
    );
    rm.register_action_handler("roles:check", Arc::new(RolesCheck(auth.clone())));
    api_keys::define(auth, main);
}

/// The request's `values` as an object (none is an empty one).
pub(super) fn values(ctx: &Context) -> Result<Map<String, Json>> {
    match ctx.action()?.params.get("values") {
        Some(Json::Object(map)) => Ok(map.clone()),
        None | Some(Json::Null) => Ok(Map::new()),
        Some(other) => Err(Error::bad_request(format!(
            "values: expected an object, got {other}"
        ))),
    }
}

fn text<'a>(values: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    values.get(key).and_then(Json::as_str)
}

/// The signed-in user's id, or 401.
pub fn current_user_id(ctx: &Context) -> Result<i64> {
    as_i64(ctx.state.get("currentUser").and_then(|u| u.get("id"))).ok_or_else(|| {
        Error::unauthorized(
            "EMPTY_TOKEN",
            "Unauthenticated. Please sign in to continue.",
        )
        .with_message_id("auth-sign-in-required", Vec::new())
    })
}

struct SignIn(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for SignIn {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let values = values(ctx)?;
        let account = ["account", "email", "username"]
            .iter()
            .find_map(|k| text(&values, k))
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                Error::bad_request("Please enter your username or email")
                    .with_message_id("auth-account-required", Vec::new())
            })?
            .to_owned();
        if account.len() > 255 {
            return Err(wrong_credentials());
        }
        let password = text(&values, "password").unwrap_or_default().to_owned();
        let auth = &self.0;
        let peer = ctx.request.peer;
        match auth.throttle.check(&account, peer).await? {
            Verdict::Refuse(wait) => {
                let seconds = wait.as_secs().max(1);
                ctx.response_headers
                    .push(("retry-after".into(), seconds.to_string()));
                return Err(Error::new(
                    ErrorKind::TooManyRequests,
                    format!("Too many failed sign-in attempts; try again in {seconds} seconds"),
                )
                .with_message_id(
                    "auth-too-many-attempts",
                    vec![("seconds", seconds.to_string())],
                ));
            }
            Verdict::Proceed(delay) => tokio::time::sleep(delay).await,
        }
        let mut user = auth
            .store
            .find_one(
                USERS,
                &json!({ "$or": [{ "username": account }, { "email": account }] }),
                &["password"],
            )
            .await?;
        let hash = user
            .as_mut()
            .and_then(|u| u.remove("password"))
            .and_then(|p| p.as_str().map(str::to_owned));
        let matched = password::verify(password, hash).await?;
        let Some(user) = user.filter(|_| matched) else {
            auth.throttle.failed(&account, peer).await?;
            return Err(wrong_credentials());
        };
        auth.throttle.succeeded(&account).await?;
        let id = as_i64(user.get("id")).ok_or_else(|| Error::internal("a user without an id"))?;
        // Sessions that ended long ago are forgotten here, where it costs nobody a request.
        let now = chrono::Utc::now().timestamp();
        auth.store
            .delete(ISSUED_TOKENS, &json!({ "expiresAt": { "$lt": now } }))
            .await?;
        let token = auth.issue_token(id).await?;
        ctx.body = Some(json!({ "user": user, "token": token }));
        next.run(ctx).await
    }
}

struct SignOut(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for SignOut {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        if let Some(jti) = ctx.state.get("tokenId").and_then(Json::as_str) {
            let jti = jti.to_owned();
            self.0
                .store
                .delete(ISSUED_TOKENS, &json!({ "jti": jti }))
                .await?;
            self.0.sessions_ended(Some(&jti)).await?;
        }
        ctx.body = Some(json!({}));
        next.run(ctx).await
    }
}

struct Check;

#[async_trait::async_trait]
impl Middleware for Check {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        current_user_id(ctx)?;
        let mut user = ctx.state.get("currentUser").cloned().unwrap_or(Json::Null);
        if let Some(user) = user.as_object_mut() {
            user.insert(
                "roles".into(),
                ctx.state.get("userRoles").cloned().unwrap_or(json!([])),
            );
        }
        ctx.body = Some(user);
        next.run(ctx).await
    }
}

struct ChangePassword(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for ChangePassword {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let id = current_user_id(ctx)?;
        let values = values(ctx)?;
        let old = text(&values, "oldPassword").unwrap_or_default().to_owned();
        let new = text(&values, "newPassword")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::bad_request("values.newPassword: enter the new password"))?
            .to_owned();
        if let Some(confirm) = text(&values, "confirmPassword")
            && confirm != new
        {
            return Err(Error::bad_request(
                "values.confirmPassword: the two passwords do not match",
            ));
        }
        let stored = self
            .0
            .store
            .find_one(USERS, &json!({ "id": id }), &["password"])
            .await?
            .and_then(|u| u.get("password").and_then(Json::as_str).map(str::to_owned));
        if !password::verify(old, stored).await? {
            return Err(Error::bad_request(
                "values.oldPassword: the old password is incorrect",
            ));
        }
        let hash = password::hash(new).await?;
        let now = chrono::Utc::now().timestamp_millis();
        self.0
            .store
            .update(
                USERS,
                &json!({ "id": id }),
                &json!({ "password": hash, "passwordChangeTz": now }),
            )
            .await?;
        self.0.sessions_ended(None).await?;
        ctx.body = Some(json!({}));
        next.run(ctx).await
    }
}

/// On writes to `users`: a `password` is stored only as its Argon2id hash, and changing it
/// ends the user's older sessions.
struct HashPasswords(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for HashPasswords {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let action = ctx.action_mut()?;
        let changes = action.action_name != "create";
        let mut default_roles = None;
        if let Some(mut values) = action.params.remove("values") {
            let records: Vec<&mut Json> = match &mut values {
                Json::Array(records) => records.iter_mut().collect(),
                other => vec![other],
            };
            for record in records {
                let Some(record) = record.as_object_mut() else {
                    continue;
                };
                record.remove("passwordChangeTz");
                if !changes && !record.contains_key("roles") {
                    // As in NocoBase: a new user without roles gets the default ones.
                    if default_roles.is_none() {
                        default_roles = Some(self.0.default_roles().await?);
                    }
                    record.insert("roles".into(), json!(default_roles));
                }
                match record.remove("password") {
                    None | Some(Json::Null) => {}
                    Some(Json::String(plain)) => {
                        record.insert("password".into(), json!(password::hash(plain).await?));
                        if changes {
                            record.insert(
                                "passwordChangeTz".into(),
                                json!(chrono::Utc::now().timestamp_millis()),
                            );
                        }
                    }
                    Some(other) => {
                        return Err(Error::bad_request(format!(
                            "values.password: expected a string, got {other}"
                        )));
                    }
                }
            }
            ctx.action_mut()?.params.set("values", values);
        }
        next.run(ctx).await?;
        if changes {
            self.0.forget_verified_tokens();
        }
        Ok(())
    }
}

/// Refuses to destroy `root`, `admin` and `member`.
struct KeepBuiltInRoles;

#[async_trait::async_trait]
impl Middleware for KeepBuiltInRoles {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let named = |v: &Json| v.as_str().is_some_and(|n| BUILT_IN_ROLES.contains(&n));
        match ctx.action()?.params.get("filterByTk") {
            Some(Json::Array(keys)) if !keys.iter().any(named) => {}
            Some(key) if !key.is_array() && !named(key) => {}
            Some(_) => {
                return Err(Error::bad_request(
                    "filterByTk: the built-in roles root, admin and member cannot be destroyed",
                ));
            }
            // A filter could match a built-in role: name the roles instead.
            None => {
                return Err(Error::bad_request(
                    "to destroy roles, name them with filterByTk",
                ));
            }
        }
        next.run(ctx).await
    }
}

/// `roles:check`: the current role with what it may do, on every data source.
struct RolesCheck(Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for RolesCheck {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        current_user_id(ctx)?;
        let role = ctx
            .state
            .get("currentRole")
            .and_then(Json::as_str)
            .unwrap_or("anonymous")
            .to_owned();
        let roles: Vec<String> = manifold_core::acl::current_roles(ctx)
            .into_iter()
            .map(str::to_owned)
            .collect();
        ctx.body = Some(self.0.permissions.check(&role, &roles));
        next.run(ctx).await
    }
}

/// `dataSources:list|get` for a role that may not configure: the sources without their
/// connection details (host, user, database, options), which only administrators need.
struct HideConnectionDetails(Arc<Acl>);

#[async_trait::async_trait]
impl Middleware for HideConnectionDetails {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        next.run(ctx).await?;
        let roles = manifold_core::acl::current_roles(ctx);
        if self.0.permission(&roles, "dataSources", "create").is_some() {
            return Ok(());
        }
        let hide = |source: &mut Json| {
            if let Some(source) = source.as_object_mut() {
                source.remove("options");
            }
        };
        match ctx.body.as_mut() {
            Some(Json::Array(sources)) => sources.iter_mut().for_each(hide),
            Some(source) => hide(source),
            None => {}
        }
        Ok(())
    }
}
