//! The app-level `auth` middleware: reads the token (`Authorization: Bearer …`, or
//! `?token=` for links), checks it, and names the caller in `ctx.state` for the ACL:
//! `currentUser`, `currentRole`, `currentRoles`. A token or role that is refused is
//! recorded as `authError`; the ACL answers it with 401 unless the action is public.

use std::sync::Arc;

use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, Result};
use serde_json::{Value as Json, json};

use super::store::{API_KEYS, ISSUED_TOKENS, ROLES_USERS, USERS};
use super::tokens::Claims;
use super::{Auth, as_i64, secs};

/// A verified caller, cached by token id.
#[derive(Debug)]
pub struct Session {
    /// The user record as clients see it (no hidden fields).
    pub user: Json,
    /// The user's id.
    pub user_id: i64,
    /// Every role the user has.
    pub roles: Vec<String>,
    /// The role used without `X-Role`.
    pub default_role: Option<String>,
    /// The role an API key is pinned to.
    pub pinned_role: Option<String>,
}

/// Why a presented token was not accepted (`code` of the 401 body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not ours, tampered with, or older than a password change.
    InvalidToken,
    /// Expired beyond renewal.
    ExpiredSession,
    /// Signed out, renewed already, or an API key that was destroyed.
    BlockedToken,
    /// The user is gone.
    NotExistUser,
    /// `X-Role` names a role the user does not have.
    RoleNotFound,
}

impl Refused {
    /// The `code` clients see.
    pub fn code(self) -> &'static str {
        match self {
            Refused::InvalidToken => "INVALID_TOKEN",
            Refused::ExpiredSession => "EXPIRED_SESSION",
            Refused::BlockedToken => "BLOCKED_TOKEN",
            Refused::NotExistUser => "NOT_EXIST_USER",
            Refused::RoleNotFound => "ROLE_NOT_FOUND_FOR_USER",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refused::NotExistUser => "The user does not exist. Please sign in again.",
            Refused::RoleNotFound => "The role does not belong to the user",
            _ => "Your session has expired. Please sign in again.",
        }
    }
}

/// The middleware; see the module docs.
pub struct Authenticate(pub Arc<Auth>);

#[async_trait::async_trait]
impl Middleware for Authenticate {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        if let Some(token) = token(ctx) {
            match self.0.identify(&token).await {
                Ok((claims, session, renewed)) => {
                    if let Some(new_token) = renewed {
                        ctx.response_headers.push(("x-new-token".into(), new_token));
                    }
                    match choose_roles(&session, ctx.request.header("x-role")) {
                        Ok((role, roles)) => {
                            let span = tracing::Span::current();
                            span.record("enduser.id", session.user_id);
                            span.record("manifold.role", role.as_str());
                            ctx.state.insert("currentUser".into(), session.user.clone());
                            ctx.state.insert("currentRole".into(), json!(role));
                            ctx.state.insert("currentRoles".into(), json!(roles));
                            ctx.state.insert("userRoles".into(), json!(session.roles));
                            ctx.state.insert("tokenId".into(), json!(claims.jti));
                            if claims.role_name.is_some() {
                                ctx.state.insert("apiKey".into(), Json::Bool(true));
                            }
                        }
                        Err(refused) => refuse(ctx, refused),
                    }
                }
                Err(refused) => refuse(ctx, refused),
            }
        }
        next.run(ctx).await
    }
}

fn refuse(ctx: &mut Context, refused: Refused) {
    ctx.state.insert(
        "authError".into(),
        json!({ "code": refused.code(), "message": refused.message() }),
    );
}

/// The bearer token of the request, if it carries one.
fn token(ctx: &Context) -> Option<String> {
    if let Some(value) = ctx.request.header("authorization") {
        let value = value.trim();
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    ctx.request
        .query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The role(s) the caller acts in: an API key's pinned role; else `X-Role` (one of the
/// user's roles, or `__union__` for all of them); else the default role or the first.
fn choose_roles(session: &Session, asked: Option<&str>) -> Result<(String, Vec<String>), Refused> {
    if let Some(pinned) = &session.pinned_role {
        if !session.roles.contains(pinned) {
            return Err(Refused::RoleNotFound);
        }
        return Ok((pinned.clone(), vec![pinned.clone()]));
    }
    match asked
        .map(str::trim)
        .filter(|r| !r.is_empty() && *r != "anonymous")
    {
        Some("__union__") => Ok(("__union__".into(), session.roles.clone())),
        Some(role) if session.roles.iter().any(|r| r == role) => {
            Ok((role.to_owned(), vec![role.to_owned()]))
        }
        Some(_) => Err(Refused::RoleNotFound),
        None => {
            let role = session
                .default_role
                .clone()
                .or_else(|| session.roles.first().cloned());
            Ok(match role {
                Some(role) => (role.clone(), vec![role]),
                None => ("anonymous".into(), Vec::new()),
            })
        }
    }
}

impl Auth {
    /// Checks `token`: signature, session or key still on record, user still there and
    /// without a later password change, expiry (renewing a sign-in token inside its
    /// window). Returns the claims, the session and the new token if it was renewed.
    async fn identify(
        &self,
        token: &str,
    ) -> Result<(Arc<Claims>, Arc<Session>, Option<String>), Refused> {
        let claims = self.verified_claims(token)?;
        let now = chrono::Utc::now().timestamp();
        let expired = claims.exp.is_some_and(|exp| exp <= now);
        let session = match self.sessions.get(&claims.jti) {
            Some(session) => session,
            None => {
                let session = Arc::new(self.load_session(&claims).await?);
                self.sessions.insert(claims.jti.clone(), session.clone());
                session
            }
        };
        if !expired {
            return Ok((claims, session, None));
        }
        let renewable = claims.temp
            && claims.role_name.is_none()
            && claims
                .sign_in_time
                .is_some_and(|t| t / 1000 + secs(self.config.session_lifetime) > now)
            && claims
                .exp
                .is_some_and(|exp| exp + secs(self.config.token_renewal_window) > now);
        if !renewable {
            return Err(Refused::ExpiredSession);
        }
        // Each token renews once: whoever deletes its row first gets the new one.
        self.sessions.invalidate(&claims.jti);
        let deleted = self
            .store
            .delete(ISSUED_TOKENS, &json!({ "jti": claims.jti }))
            .await
            .map_err(|_| Refused::BlockedToken)?;
        if deleted == 0 {
            return Err(Refused::BlockedToken);
        }
        let sign_in_time = claims.sign_in_time.unwrap_or(now * 1000);
        let renewed = self
            .issue(claims.user_id, sign_in_time)
            .await
            .map_err(|_| Refused::BlockedToken)?;
        Ok((claims, session, Some(renewed)))
    }

    /// The claims of `token` if its signature is ours. A signature check costs more than
    /// the rest of a cached request, and its answer for one token never changes (the
    /// secret is fixed for the life of the process), so accepted tokens are remembered;
    /// refused ones are not, so garbage cannot fill the cache.
    fn verified_claims(&self, token: &str) -> Result<Arc<Claims>, Refused> {
        if let Some(claims) = self.verified.get(token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.keys.verify(token).ok_or(Refused::InvalidToken)?);
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    async fn load_session(&self, claims: &Claims) -> Result<Session, Refused> {
        // A failure to read is a refusal too: never a way in.
        let failed = |e: manifold_core::Error| {
            tracing::warn!("cannot check a token: {e}");
            Refused::InvalidToken
        };
        let on_record = match &claims.role_name {
            Some(_) => {
                let key = self
                    .store
                    .find_one(API_KEYS, &json!({ "jti": claims.jti }), &["jti"])
                    .await
                    .map_err(failed)?;
                key.filter(|k| as_i64(k.get("createdById")) == Some(claims.user_id))
                    .is_some()
            }
            None => self
                .store
                .find_one(ISSUED_TOKENS, &json!({ "jti": claims.jti }), &[])
                .await
                .map_err(failed)?
                .is_some_and(|t| as_i64(t.get("userId")) == Some(claims.user_id)),
        };
        if !on_record {
            return Err(Refused::BlockedToken);
        }
        let mut user = self
            .store
            .find_one(
                USERS,
                &json!({ "id": claims.user_id }),
                &["passwordChangeTz"],
            )
            .await
            .map_err(failed)?
            .ok_or(Refused::NotExistUser)?;
        let changed = as_i64(user.remove("passwordChangeTz").as_ref()).unwrap_or(0);
        // A sign-in token knows its session's start to the millisecond; an API key only
        // its issue second, so one made in the second of the change is kept.
        let older = match claims.sign_in_time {
            Some(signed_in) => changed > signed_in,
            None => changed / 1000 > claims.iat,
        };
        if older {
            return Err(Refused::InvalidToken);
        }
        let links = self
            .store
            .find(ROLES_USERS, &json!({ "userId": claims.user_id }), &[])
            .await
            .map_err(failed)?;
        let roles: Vec<String> = links
            .iter()
            .filter_map(|l| l.get("roleName").and_then(Json::as_str).map(str::to_owned))
            .collect();
        let default_role = links
            .iter()
            .find(|l| {
                l.get("default") == Some(&Json::Bool(true)) || as_i64(l.get("default")) == Some(1)
            })
            .and_then(|l| l.get("roleName").and_then(Json::as_str).map(str::to_owned));
        Ok(Session {
            user: Json::Object(user),
            user_id: claims.user_id,
            roles,
            default_role,
            pinned_role: claims.role_name.clone(),
        })
    }
}
