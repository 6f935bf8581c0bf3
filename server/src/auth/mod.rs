//! Who is asking, and what they may do: users and roles stored in the main database,
//! sign-in with Argon2id-hashed passwords, HS256 tokens (`Authorization: Bearer`), API
//! keys pinned to a role, `X-Role`, and the stored permissions fed into every data source's
//! ACL. The contract is `shared/spec/auth.md`; docs/security.md is the user's guide.
//!
//! [`Auth::install`] wires it: the collections and their built-in rows, the app-level
//! `auth` middleware (before the router: it names the caller in `ctx.state`), the `auth`,
//! `apiKeys` and `roles:check` actions, and a before-add hook that closes each new data
//! source's ACL and gives it the stored roles.

mod actions;
mod api_keys;
mod authenticate;
pub(crate) mod commands;
mod config;
mod password;
mod permissions;
mod propagation;
mod source_roles;
mod store;
mod throttle;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use manifold_core::acl::AllowCondition;
use manifold_core::data_source::DataSourceManager;
use manifold_core::middleware::Placement;
use manifold_core::{DataSource, Error, Result};
use serde_json::{Value as Json, json};

pub use config::{AuthConfig, Secret};
pub use password::release_memory_with;
pub use store::collections;

use crate::cache::Cache;
use crate::changes::{ChangeFeed, kinds};
use crate::declarations::DeclarationStore;
use authenticate::Session;
use permissions::Permissions;
use store::Store;
use throttle::Throttle;
use tokens::{Claims, Keys};

/// The resources every data source treats as administration (`allowConfigure` or `root`).
const CONFIGURATION_RESOURCES: &[&str] = &[
    "collections",
    "dataSources",
    "dataSourcesCollections",
    "fields",
];

/// The authentication service of one process.
pub struct Auth {
    store: Store,
    keys: Keys,
    config: AuthConfig,
    throttle: Throttle,
    /// The claims of tokens whose signature was checked, by token.
    verified: TokenCache<Claims>,
    /// Verified sessions by token id: no main-database round trip on the hot path.
    sessions: TokenCache<Session>,
    permissions: Arc<Permissions>,
    /// Where changes of accounts and permissions are published for the other replicas.
    changes: Arc<ChangeFeed>,
}

/// A bounded cache of what a token (or its id) was found to stand for. Keys are hashed
/// with foldhash: with SipHash each lookup cost about 400 instructions more, and every
/// authenticated request makes two. Only tokens whose signature was checked are ever
/// inserted, so a caller cannot choose the keys to collide them.
type TokenCache<T> = moka::sync::Cache<String, Arc<T>, foldhash::quality::RandomState>;

fn token_cache<T: Send + Sync + 'static>(config: &AuthConfig) -> TokenCache<T> {
    moka::sync::Cache::builder()
        .max_capacity(config.auth_cache_size)
        .time_to_live(config.auth_cache_ttl)
        .build_with_hasher(foldhash::quality::RandomState::default())
}

impl Auth {
    /// Declares the relations of the accounts' collections (which `main`'s migrations
    /// made), creates the built-in roles and, on an empty database, the user `root`;
    /// closes every data source's ACL to what the stored roles grant. Call before `main`
    /// and any other source is added. Changes are published on `changes`, and those of
    /// other replicas applied from it.
    pub async fn install(
        manager: &Arc<DataSourceManager>,
        main: &Arc<DataSource>,
        declarations: &Arc<DeclarationStore>,
        config: &AuthConfig,
        changes: &Arc<ChangeFeed>,
        cache: &Cache,
    ) -> Result<Arc<Self>> {
        declarations.declare_built_in(main.key(), store::declarations());
        declarations.apply(main).await?;
        let store = Store::new(main.clone());
        store::seed(&store).await?;
        create_root(&store, config).await?;
        let keys = Keys::load(config.jwt_secret.as_ref().map(|s| s.0.as_str()), &store).await?;
        let permissions = Permissions::new(store.clone(), manager.clone());
        permissions.reload().await?;
        let auth = Arc::new(Self {
            store,
            keys,
            config: config.clone(),
            throttle: Throttle::new(config.sign_in_max_failures, config.sign_in_lockout, cache),
            verified: token_cache(config),
            sessions: token_cache(config),
            permissions: permissions.clone(),
            changes: changes.clone(),
        });
        changes.subscribe(
            &[kinds::PERMISSIONS, kinds::SESSIONS],
            Arc::new(propagation::AuthChanges::new(&auth)),
        );
        // `auth:check` and `roles:check` only read.
        manager.declare_read_action("check");
        let hook_permissions = permissions.clone();
        let main_key = main.key().to_owned();
        manager.before_add_data_source(Arc::new(move |source: &Arc<DataSource>| {
            guard(source, source.key() == main_key);
            hook_permissions.apply_to(source);
        }));
        actions::define(&auth, main);
        source_roles::define(&auth, main);
        permissions::watch(&auth, main);
        Ok(auth)
    }

    /// The app-level middleware that names the caller; place it before the router.
    pub fn middleware(
        self: &Arc<Self>,
    ) -> (Arc<dyn manifold_core::middleware::Middleware>, Placement) {
        (
            Arc::new(authenticate::Authenticate(self.clone())),
            Placement::tag("auth")
                .after("dataWrapping")
                .before("dataSource"),
        )
    }

    /// A sign-in token for the user with `user_id`, as `auth:signIn` gives (for tools and
    /// tests that already know who the caller is).
    pub async fn issue_token(&self, user_id: i64) -> Result<String> {
        let now = chrono::Utc::now();
        self.issue(user_id, now.timestamp_millis()).await
    }

    /// The id of the user called `username`, if there is one (for tools and tests that
    /// ask [`Auth::issue_token`] for a known account).
    pub async fn user_id(&self, username: &str) -> Result<Option<i64>> {
        let user = self
            .store
            .find_one(store::USERS, &json!({ "username": username }), &[])
            .await?;
        Ok(as_i64(user.as_ref().and_then(|u| u.get("id"))))
    }

    async fn issue(&self, user_id: i64, sign_in_time: i64) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + secs(self.config.token_lifetime);
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let session_end = sign_in_time / 1000 + secs(self.config.session_lifetime);
        self.store
            .insert(
                store::ISSUED_TOKENS,
                &json!({
                    "jti": jti, "userId": user_id, "signInTime": sign_in_time,
                    "expiresAt": session_end.max(exp),
                }),
            )
            .await?;
        self.keys.sign(&Claims {
            user_id,
            jti,
            iat: now,
            exp: Some(exp),
            temp: true,
            sign_in_time: Some(sign_in_time),
            role_name: None,
        })
    }

    /// The names of the roles marked `default`, given to new users created without roles.
    async fn default_roles(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .find(store::ROLES, &json!({ "default": true }), &[])
            .await?
            .iter()
            .filter_map(|role| role.get("name").and_then(Json::as_str).map(str::to_owned))
            .collect())
    }

    /// Forgets every token this process has verified, so the next request of each reads
    /// its session again (after a password or role change; tests use it to skip the wait
    /// for the cache to expire).
    pub fn forget_verified_tokens(&self) {
        self.sessions.invalidate_all();
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Closes `source`'s ACL: only stored grants, `root`, and the few public or signed-in
/// actions below are let through.
fn guard(source: &DataSource, is_main: bool) {
    let acl = source.acl();
    acl.clear_allow_rules();
    for resource in CONFIGURATION_RESOURCES {
        acl.configuration_resource(resource);
    }
    // What a signed-in caller may use is theirs to see described (openapi/).
    for action in ["get", "getUrls"] {
        acl.allow(crate::openapi::RESOURCE, action, AllowCondition::LoggedIn);
    }
    if is_main {
        for resource in store::ADMINISTERED {
            acl.configuration_resource(resource);
        }
        acl.allow("auth", "signIn", AllowCondition::Public);
        for action in ["signOut", "check", "changePassword"] {
            acl.allow("auth", action, AllowCondition::LoggedIn);
        }
        acl.allow("roles", "check", AllowCondition::LoggedIn);
        acl.allow("dataSources", "list", AllowCondition::LoggedIn);
        acl.allow("dataSources", "get", AllowCondition::LoggedIn);
        for action in ["list", "get", "create", "destroy"] {
            acl.allow(store::API_KEYS, action, AllowCondition::LoggedIn);
        }
    }
}

/// While no user holds a role (the first start, also over a `users` table of the user's
/// own, whose rows come without roles): the user `root` with every built-in role (`root`
/// the default), its password from the configuration or generated and printed once.
async fn create_root(store: &Store, config: &AuthConfig) -> Result<()> {
    if store
        .repository(store::ROLES_USERS)
        .await?
        .count(None)
        .await?
        > 0
    {
        return Ok(());
    }
    let named_root = json!({ "username": "root" });
    if store
        .find_one(store::USERS, &named_root, &[])
        .await?
        .is_some()
    {
        // Another process sharing the main database is making it (it gives the roles),
        // or the user's own table already has a root, which is not made an administrator
        // behind the operator's back.
        tracing::warn!("a user root exists but holds no role; not creating root");
        return Ok(());
    }
    let (password, generated) = match &config.root_password {
        Some(secret) => (secret.0.clone(), false),
        None => (password::generate(), true),
    };
    let hash = password::hash(password.clone()).await?;
    let created = store
        .insert(
            store::USERS,
            &json!({ "username": "root", "nickname": "Super Admin", "password": hash }),
        )
        .await;
    let user = match created {
        Ok(user) => user,
        // Another process sharing the main database made it first.
        Err(_)
            if store
                .find_one(store::USERS, &named_root, &[])
                .await?
                .is_some() =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let id = user
        .get("id")
        .cloned()
        .ok_or_else(|| Error::internal("the new user root has no id"))?;
    for role in store::BUILT_IN_ROLES {
        store
            .insert(
                store::ROLES_USERS,
                &json!({ "userId": id, "roleName": role, "default": *role == "root" }),
            )
            .await?;
    }
    if generated {
        // Standard error only, once: never the log, which may be shipped elsewhere.
        eprintln!(
            "manifold: created the user root with the password {password} \
             (shown only now; set MANIFOLD_ROOT_PASSWORD to choose it)"
        );
    }
    tracing::info!("created the user root");
    Ok(())
}

/// A JSON number or numeric string as an i64.
fn as_i64(value: Option<&Json>) -> Option<i64> {
    match value? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}
