//! The stored roles and grants, read from the main database into every data source's ACL:
//! at start, when a source is added, and after any write to the collections that hold them
//! (so a change applies from the next request, without a restart).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use manifold_core::acl::{Grant, Role};
use manifold_core::data_source::DataSourceManager;
use manifold_core::middleware::{Middleware, Next, Placement};
use manifold_core::repository::Record;
use manifold_core::{Context, DataSource, Result};
use serde_json::{Value as Json, json};

use super::store::{
    ACTIONS, PERMISSION_COLLECTIONS, RESOURCES, ROLES, ROLES_USERS, SCOPES, SOURCE_ROLES, Store,
    USERS,
};
use super::{Auth, as_i64};

/// The rows that say what roles may do, as last read.
#[derive(Default)]
struct Snapshot {
    roles: Vec<Record>,
    source_roles: Vec<Record>,
    resources: Vec<Record>,
    actions: Vec<Record>,
    scopes: HashMap<i64, Json>,
}

/// Feeds the stored permissions into the ACLs.
pub struct Permissions {
    store: Store,
    manager: Arc<DataSourceManager>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// One reload at a time, so an older read never lands after a newer one.
    reloading: tokio::sync::Mutex<()>,
}

fn text(row: &Record, key: &str) -> String {
    row.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn truthy(row: &Record, key: &str) -> bool {
    match row.get(key) {
        Some(Json::Bool(b)) => *b,
        Some(other) => as_i64(Some(other)).is_some_and(|n| n != 0),
        None => false,
    }
}

/// A JSON column, which some databases hand back as text.
pub(super) fn json_of(row: &Record, key: &str) -> Json {
    match row.get(key) {
        Some(Json::String(s)) => serde_json::from_str(s).unwrap_or(Json::Null),
        Some(value) => value.clone(),
        None => Json::Null,
    }
}

/// A strategy object's action names (`{"actions": ["view", "update:own"]}` or `"*"`).
fn strategy_actions(strategy: &Json) -> Vec<String> {
    match strategy.get("actions") {
        Some(Json::Array(names)) => names
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Json::String(all)) if all == "*" => vec!["*".into()],
        _ => Vec::new(),
    }
}

impl Snapshot {
    /// The roles as the ACL of the source called `key` should know them.
    fn roles_for(&self, key: &str) -> Vec<Role> {
        self.roles
            .iter()
            .map(|row| {
                let name = text(row, "name");
                let strategy = self
                    .source_roles
                    .iter()
                    .find(|r| text(r, "dataSourceKey") == key && text(r, "roleName") == name)
                    .map(|r| json_of(r, "strategy"))
                    .unwrap_or_else(|| json_of(row, "strategy"));
                let mut grants: HashMap<String, Vec<Grant>> = HashMap::new();
                for resource in self.resources.iter().filter(|r| {
                    text(r, "roleName") == name
                        && source_key(r) == key
                        && truthy(r, "usingActionsConfig")
                }) {
                    let id = as_i64(resource.get("id"));
                    let granted = self
                        .actions
                        .iter()
                        .filter(|a| as_i64(a.get("rolesResourceId")) == id)
                        .map(|a| Grant {
                            action: text(a, "name"),
                            fields: match json_of(a, "fields") {
                                Json::Array(f) if !f.is_empty() => Some(
                                    f.iter()
                                        .filter_map(Json::as_str)
                                        .map(str::to_owned)
                                        .collect(),
                                ),
                                _ => None,
                            },
                            scope: as_i64(a.get("scopeId"))
                                .and_then(|s| self.scopes.get(&s).cloned()),
                        })
                        .collect();
                    grants.insert(text(resource, "name"), granted);
                }
                Role {
                    strategy: strategy_actions(&strategy),
                    allow_configure: truthy(row, "allowConfigure"),
                    grants,
                    name,
                }
            })
            .collect()
    }
}

fn source_key(row: &Record) -> String {
    match row.get("dataSourceKey").and_then(Json::as_str) {
        Some(key) if !key.is_empty() => key.to_owned(),
        _ => "main".to_owned(),
    }
}

impl Permissions {
    /// Permissions read from `store`, applied to the sources of `manager`.
    pub fn new(store: Store, manager: Arc<DataSourceManager>) -> Arc<Self> {
        Arc::new(Self {
            store,
            manager,
            snapshot: RwLock::default(),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Reads every stored role and grant again and gives each source's ACL its roles.
    pub async fn reload(&self) -> Result<()> {
        let _one = self.reloading.lock().await;
        let all = json!({});
        let snapshot = Snapshot {
            roles: self.store.find(ROLES, &all, &[]).await?,
            source_roles: self.store.find(SOURCE_ROLES, &all, &[]).await?,
            resources: self.store.find(RESOURCES, &all, &[]).await?,
            actions: self.store.find(ACTIONS, &all, &[]).await?,
            scopes: self
                .store
                .find(SCOPES, &all, &[])
                .await?
                .iter()
                .filter_map(|s| Some((as_i64(s.get("id"))?, json_of(s, "scope"))))
                .collect(),
        };
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        for source in self.manager.list() {
            self.apply_to(&source);
        }
        Ok(())
    }

    /// Whether a data source called `key` is registered and loaded.
    pub fn source_exists(&self, key: &str) -> bool {
        self.manager.get(key).is_some()
    }

    /// Gives `source`'s ACL the roles as last read.
    pub fn apply_to(&self, source: &DataSource) {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        source.acl().replace_roles(snapshot.roles_for(source.key()));
    }

    /// The answer of `roles:check` for `role` (acting as `roles`).
    pub fn check(&self, role: &str, roles: &[String]) -> Json {
        let snapshot = self
            .snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let root = roles.iter().any(|r| r == "root");
        let mut data_sources = serde_json::Map::new();
        let mut keys: Vec<String> = self
            .manager
            .list()
            .iter()
            .map(|s| s.key().to_owned())
            .collect();
        keys.sort();
        let mut allow_configure = root;
        let mut main_strategy = Vec::new();
        for key in keys {
            let defined = snapshot.roles_for(&key);
            let mine: Vec<&Role> = defined.iter().filter(|r| roles.contains(&r.name)).collect();
            let mut strategy: Vec<String> = Vec::new();
            let mut resources: Vec<String> = Vec::new();
            for r in &mine {
                allow_configure |= r.allow_configure;
                for a in &r.strategy {
                    if !strategy.contains(a) {
                        strategy.push(a.clone());
                    }
                }
                for name in r.grants.keys() {
                    if !resources.contains(name) {
                        resources.push(name.clone());
                    }
                }
            }
            if root {
                strategy = vec!["*".into()];
            }
            resources.sort();
            if key == "main" {
                main_strategy = strategy.clone();
            }
            data_sources.insert(
                key,
                json!({ "strategy": { "actions": strategy }, "resources": resources }),
            );
        }
        let anonymous = snapshot
            .roles
            .iter()
            .any(|r| text(r, "name") == "anonymous");
        json!({
            "role": role,
            "roleMode": if role == "__union__" { "allow-use-union" } else { "default" },
            "availableActions": ["create", "view", "update", "destroy"],
            "actionAlias": {
                "get": "view", "list": "view", "count": "view",
                "firstOrCreate": "create", "updateOrCreate": "create",
                "add": "update", "remove": "update", "set": "update", "toggle": "update",
            },
            "allowAll": root,
            "allowConfigure": allow_configure,
            "allowAnonymous": anonymous,
            "strategy": { "actions": main_strategy },
            "meta": { "dataSources": data_sources },
        })
    }
}

/// Reloads the permissions (and forgets verified sessions, whose roles may have changed)
/// after every write to the collections that hold them, on every replica.
pub fn watch(auth: &Arc<Auth>, main: &DataSource) {
    let watcher = Arc::new(Watch(auth.clone()));
    if let Err(e) = main
        .resource_manager()
        .use_middleware(watcher, Placement::tag("permissions-watch").after("acl"))
    {
        unreachable!("the permissions watcher is placed after the ACL: {e}");
    }
}

struct Watch(Arc<Auth>);

fn touches_permissions(ctx: &Context) -> Option<bool> {
    let action = ctx.action().ok()?;
    if matches!(
        action.action_name.as_str(),
        "list" | "get" | "count" | "query"
    ) {
        return None;
    }
    let head = action.resource_name.split('.').next().unwrap_or_default();
    let target = action
        .association
        .as_ref()
        .map(|a| a.association.target.as_str());
    let names = [Some(head), target];
    let permissions = names
        .iter()
        .flatten()
        .any(|n| PERMISSION_COLLECTIONS.contains(n) || *n == ROLES_USERS);
    let accounts = names
        .iter()
        .flatten()
        .any(|n| *n == USERS || *n == ROLES_USERS);
    (permissions || accounts).then_some(permissions)
}

#[async_trait::async_trait]
impl Middleware for Watch {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let touched = touches_permissions(ctx);
        next.run(ctx).await?;
        match touched {
            Some(true) => self.0.permissions_changed().await?,
            Some(false) => self.0.sessions_ended(None).await?,
            None => {}
        }
        Ok(())
    }
}
