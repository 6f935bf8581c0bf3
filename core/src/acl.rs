//! Access control for one data source: who may run which action on which resource, and
//! what the permission narrows (rows, visible fields, writable fields).
//!
//! The ACL is one node in the resource manager's chain. Inside it runs its own sorted chain:
//! `allow-manager` (public rules), middleware added with [`Acl::use_middleware`], and `core`,
//! the permission check. Unpositioned ACL middleware runs after `core` and sees the decision;
//! place it `before("core")` to run ahead of it. While nothing has been added, the node makes
//! the same two steps itself instead of running them as layers: every request passes here,
//! and three boxed futures cost it more than the decision does.
//!
//! The caller is whoever an authentication middleware put in `state`: `currentUser` (the
//! record), `currentRoles` (or `currentRole`; without either the role is `anonymous`) and,
//! when a presented token or role was not accepted, `authError` (`{"code","message"}`). A
//! refused request answers 401 when nobody is signed in (or the credentials were refused),
//! and 403 `No permissions` when a signed-in role lacks the permission.
//!
//! A permission ([`Permission`]) is merged into the action's params: its row filter is AND-ed
//! into `filter` (with `{{ ctx.state.currentUser.id }}`, `{{ $user.<path> }}` and
//! `{{ $nRole }}` resolved), its field list narrows `fields` and `appends` for reads and
//! `values` for writes. Link actions (`add`, `remove`, `set`, `toggle`) need `update` on the
//! source collection, whose field list must then name the relation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde_json::{Value as Json, json};

use crate::context::Context;
use crate::data_source::DataSource;
use crate::error::{Error, Result};
use crate::middleware::{Middleware, MiddlewareChain, MiddlewareError, Next, Placement};

/// When an `allow` rule applies.
#[derive(Clone)]
pub enum AllowCondition {
    /// Always.
    Public,
    /// When a middleware has set `state.currentUser`.
    LoggedIn,
    /// When the predicate holds.
    When(Arc<dyn Fn(&Context) -> bool + Send + Sync>),
}

#[derive(Clone)]
struct AllowRule {
    resource: String,
    action: String,
    condition: AllowCondition,
}

/// One permission a role holds on one resource, with what narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// `view`, `create`, `update`, `destroy`, another action name, or `*`; a `:own` suffix
    /// limits it to the rows the caller created (`createdById`).
    pub action: String,
    /// The visible fields (`view`) or the writable fields (`create`, `update`); `None` is all.
    pub fields: Option<Vec<String>>,
    /// A row filter AND-ed into the request's; it may use the variables of the module docs.
    pub scope: Option<Json>,
}

impl Grant {
    /// A grant of `action` on every row and field.
    pub fn action(action: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            ..Self::default()
        }
    }
}

impl From<&str> for Grant {
    fn from(action: &str) -> Self {
        Self::action(action)
    }
}

/// A role: a strategy over every resource, and explicit grants per resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    /// The role name (`root` may do everything).
    pub name: String,
    /// Permissions granted on every resource (`*`, or names such as `view`, `update:own`).
    pub strategy: Vec<String>,
    /// Permissions per resource; an entry overrides the strategy for that resource.
    pub grants: HashMap<String, Vec<Grant>>,
    /// May administer: the resources marked with [`Acl::configuration_resource`].
    pub allow_configure: bool,
}

/// What a granted permission narrows; the default narrows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    /// Only rows matching this filter (unresolved variables included).
    pub filter: Option<Json>,
    /// Only these fields: visible for reads, writable for writes.
    pub fields: Option<Vec<String>>,
}

impl Permission {
    /// The union of two roles' permissions: rows either may see, fields either may use.
    fn union(self, other: Permission) -> Permission {
        let filter = match (self.filter, other.filter) {
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(a), Some(b)) => Some(json!({ "$or": [a, b] })),
            _ => None,
        };
        let fields = match (self.fields, other.fields) {
            (Some(mut a), Some(b)) => {
                for f in b {
                    if !a.contains(&f) {
                        a.push(f);
                    }
                }
                Some(a)
            }
            _ => None,
        };
        Permission { filter, fields }
    }
}

/// The filter of an `:own` permission.
fn own_filter() -> Json {
    json!({ "createdById": "{{ ctx.state.currentUser.id }}" })
}

/// The permission a request action needs: `get`/`list` need `view`, and so on.
pub fn permission_for(action: &str) -> &str {
    match action {
        "get" | "list" | "query" | "count" => "view",
        "firstOrCreate" | "updateOrCreate" => "create",
        "move" | "add" | "remove" | "set" | "toggle" => "update",
        other => other,
    }
}

/// Whether `action` changes which records a relation links (checked on the source).
fn is_link_action(action: &str) -> bool {
    matches!(action, "add" | "remove" | "set" | "toggle")
}

/// The access-control state of one data source.
pub struct Acl {
    rules: RwLock<Vec<AllowRule>>,
    roles: RwLock<HashMap<String, Role>>,
    configuration: RwLock<HashSet<String>>,
    chain: RwLock<MiddlewareChain>,
}

impl Acl {
    /// An ACL that allows every action: for code that embeds Manifold without
    /// authentication. The service itself starts every source [`closed`](Acl::closed).
    pub fn open() -> Arc<Self> {
        let acl = Self::closed();
        acl.allow("*", "*", AllowCondition::Public);
        acl
    }

    /// An ACL that allows nothing until rules or roles are added.
    pub fn closed() -> Arc<Self> {
        let acl = Arc::new(Self {
            rules: RwLock::default(),
            roles: RwLock::default(),
            configuration: RwLock::default(),
            chain: RwLock::new(MiddlewareChain::new()),
        });
        let mut chain = acl.chain.write().unwrap_or_else(|e| e.into_inner());
        // Both built-ins are registered in dependency order into an empty chain.
        let built_ins = [
            (
                Arc::new(AllowManager(Arc::downgrade(&acl))) as Arc<dyn Middleware>,
                Placement::tag("allow-manager"),
            ),
            (
                Arc::new(PermissionCheck(Arc::downgrade(&acl))) as Arc<dyn Middleware>,
                Placement::tag("core"),
            ),
        ];
        for (mw, placement) in built_ins {
            if let Err(e) = chain.add(mw, placement) {
                unreachable!("built-in ACL chain is acyclic: {e}");
            }
        }
        drop(chain);
        acl
    }

    /// Lets `action` on `resource` through without a grant when `condition` holds; either
    /// may be `*`.
    pub fn allow(&self, resource: &str, action: &str, condition: AllowCondition) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(AllowRule {
                resource: resource.to_owned(),
                action: action.to_owned(),
                condition,
            });
    }

    /// Removes every allow rule (for operators that grant through roles only).
    pub fn clear_allow_rules(&self) {
        self.rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Adds or replaces a role.
    pub fn define_role(&self, role: Role) {
        self.roles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(role.name.clone(), role);
    }

    /// Replaces every role at once, so a request never sees half of a reload.
    pub fn replace_roles(&self, roles: impl IntoIterator<Item = Role>) {
        let roles = roles.into_iter().map(|r| (r.name.clone(), r)).collect();
        *self.roles.write().unwrap_or_else(|e| e.into_inner()) = roles;
    }

    /// A copy of the role called `name`, if defined.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Marks `resource` (and its association resources, `resource.*`) as administration:
    /// only roles with `allow_configure` (and `root`) may use it, whatever their strategy.
    pub fn configuration_resource(&self, resource: &str) {
        self.configuration
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(resource.to_owned());
    }

    fn is_configuration(&self, resource: &str) -> bool {
        let head = resource.split('.').next().unwrap_or(resource);
        self.configuration
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(head)
    }

    /// Whether `role` may run `action` on `resource`.
    pub fn can(&self, role: &str, resource: &str, action: &str) -> bool {
        self.permission(&[role], resource, action).is_some()
    }

    /// What the union of `roles` may do with `action` on `resource`; `None` when no role
    /// may. `root` may do everything, unnarrowed.
    pub fn permission(&self, roles: &[&str], resource: &str, action: &str) -> Option<Permission> {
        if roles.contains(&"root") {
            return Some(Permission::default());
        }
        let defined = self.roles.read().unwrap_or_else(|e| e.into_inner());
        let configuration = self.is_configuration(resource);
        roles
            .iter()
            .filter_map(|name| defined.get(*name))
            .filter_map(|role| role_permission(role, configuration, resource, action))
            .reduce(Permission::union)
    }

    /// What `roles` hold for `action` on the relation `association` of the collection
    /// `source`. Linking changes the source record, so a link action needs `update` there
    /// with the relation among its fields; any other action needs `view` on the source and
    /// the action on the target. `None` when the source grant is missing.
    fn association_grant(
        &self,
        roles: &[&str],
        source: &str,
        association: &crate::schema::Association,
        action: &str,
    ) -> Option<AssociationGrant> {
        if is_link_action(action) {
            return self
                .permission(roles, source, "update")
                .filter(|p| {
                    p.fields
                        .as_ref()
                        .is_none_or(|f| f.contains(&association.name))
                })
                .map(AssociationGrant::Link);
        }
        let source = self.permission(roles, source, "view")?;
        Some(AssociationGrant::Through {
            source,
            target: self.permission(roles, &association.target, action),
        })
    }

    /// Whether `roles` may run `action` on the relation `association` of the collection
    /// `source` (the rule the permission check applies, before any row is looked at).
    pub fn permits_association(
        &self,
        roles: &[&str],
        source: &str,
        association: &crate::schema::Association,
        action: &str,
    ) -> bool {
        match self.association_grant(roles, source, association, action) {
            Some(AssociationGrant::Link(_)) => true,
            Some(AssociationGrant::Through { target, .. }) => target.is_some(),
            None => false,
        }
    }

    /// Adds middleware inside the ACL node (level 4). Unpositioned middleware runs after
    /// the permission check (`core`), so it sees the decision; NocoBase leaves this to
    /// registration order, which makes it run before or after depending on what came first.
    pub fn use_middleware(
        &self,
        middleware: Arc<dyn Middleware>,
        mut placement: Placement,
    ) -> Result<(), MiddlewareError> {
        if placement.is_unpositioned() {
            placement = Placement::group("prep").after("core");
        } else if placement.tag.is_none() && placement.group.is_none() {
            placement.group = Some("prep".to_owned());
        }
        self.chain
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .add(middleware, placement)
    }

    /// The node to put in a resource manager's chain.
    pub fn node(self: &Arc<Self>) -> Arc<dyn Middleware> {
        Arc::new(AclNode(self.clone()))
    }

    /// Whether an allow rule (`auth:signIn` for anyone, `swagger:get` for the signed-in)
    /// lets the caller of `ctx` run `action` on `resource`, whatever the caller's roles.
    pub fn allowed_by_rule(&self, ctx: &Context, resource: &str, action: &str) -> bool {
        let rules = self.rules.read().unwrap_or_else(|e| e.into_inner());
        rules.iter().any(|r| {
            (r.resource == "*" || r.resource == resource)
                && (r.action == "*" || r.action == action)
                && match &r.condition {
                    AllowCondition::Public => true,
                    AllowCondition::LoggedIn => ctx.state.contains_key("currentUser"),
                    AllowCondition::When(f) => f(ctx),
                }
        })
    }
}

/// One role's permission for `action` on `resource`: administration needs
/// `allow_configure`; an explicit grant on the resource overrides the strategy.
fn role_permission(
    role: &Role,
    configuration: bool,
    resource: &str,
    action: &str,
) -> Option<Permission> {
    if role.allow_configure && configuration {
        return Some(Permission::default());
    }
    let needed = permission_for(action);
    if let Some(grants) = role.grants.get(resource) {
        return grants.iter().find_map(|g| {
            let own = admits(&g.action, needed, action)?;
            let mut filter = g
                .scope
                .clone()
                .filter(|s| s.as_object().is_none_or(|o| !o.is_empty()));
            if own {
                filter = Some(match filter {
                    Some(scope) => json!({ "$and": [scope, own_filter()] }),
                    None => own_filter(),
                });
            }
            Some(Permission {
                filter,
                fields: g.fields.clone().filter(|f| !f.is_empty()),
            })
        });
    }
    if configuration {
        return None;
    }
    role.strategy.iter().find_map(|entry| {
        let own = admits(entry, needed, action)?;
        Some(Permission {
            filter: own.then(own_filter),
            fields: None,
        })
    })
}

/// Whether a granted name admits the request: `Some(own)` when it does, `own` telling
/// whether only the caller's own rows are admitted.
fn admits(granted: &str, needed: &str, action: &str) -> Option<bool> {
    let (name, own) = match granted.strip_suffix(":own") {
        Some(name) => (name, true),
        None => (granted, false),
    };
    (name == "*" || name == needed || name == action).then_some(own)
}

struct AclNode(Arc<Acl>);

/// How many middleware an ACL's chain holds before any is added: `allow-manager` and `core`.
const BUILT_INS: usize = 2;

#[async_trait::async_trait]
impl Middleware for AclNode {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let inner = self
            .0
            .chain
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .sorted();
        let span = tracing::info_span!(target: "manifold::middleware", "manifold.acl");
        // With only the built-ins there is nothing to interleave: decide here rather than
        // through two more layers, the same decision in the same order, on every request.
        if inner.len() == BUILT_INS {
            self.0.apply_allow_rules(ctx)?;
            if let Some(source) = self.0.check_permission(ctx)? {
                source.verify(ctx).await?;
            }
            tracing::Instrument::instrument(next.run(ctx), span).await?;
        } else {
            tracing::Instrument::instrument(Next::with_tail(&inner, next).run(ctx), span).await?;
        }
        self.0.add_allowed_actions(ctx).await
    }
}

/// The roles the caller acts in: `state.currentRoles`, else `state.currentRole`, else
/// `anonymous`.
pub fn current_roles(ctx: &Context) -> Vec<&str> {
    if let Some(Json::Array(roles)) = ctx.state.get("currentRoles") {
        return roles.iter().filter_map(Json::as_str).collect();
    }
    vec![
        ctx.state
            .get("currentRole")
            .and_then(Json::as_str)
            .unwrap_or("anonymous"),
    ]
}

impl Acl {
    /// `X-With-ACL-Meta: true` on `list` or `get`: which of the answered rows the roles may
    /// view, update and destroy, as `meta.allowedActions` (`{"update": [ids], …}`), so a
    /// client shows only the buttons that will work. One query per scoped action.
    async fn add_allowed_actions(&self, ctx: &mut Context) -> Result<()> {
        let asked = ctx
            .request
            .header("x-with-acl-meta")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let action = ctx.action()?;
        if !asked || !matches!(action.action_name.as_str(), "list" | "get") {
            return Ok(());
        }
        let (Some(collection), Some(repository)) = (&action.collection, &action.repository) else {
            return Ok(());
        };
        let Some(key) = collection.single_key() else {
            return Ok(());
        };
        let ids: Vec<Json> = match &ctx.body {
            Some(Json::Array(rows)) => rows
                .iter()
                .filter_map(|r| r.get(&key.name).cloned())
                .collect(),
            Some(row @ Json::Object(_)) => row.get(&key.name).cloned().into_iter().collect(),
            _ => Vec::new(),
        };
        let roles = current_roles(ctx);
        let resource = collection.name();
        let mut allowed = serde_json::Map::new();
        for permission_name in ["view", "update", "destroy"] {
            let ids_allowed = match self.permission(&roles, resource, permission_name) {
                None => Vec::new(),
                Some(Permission { filter: None, .. }) => ids.clone(),
                Some(Permission {
                    filter: Some(_), ..
                }) if ids.is_empty() => Vec::new(),
                Some(Permission {
                    filter: Some(scope),
                    ..
                }) => {
                    let scope = resolve_variables(ctx, &scope);
                    let within = json!({ "$and": [scope, { key.name.as_str(): { "$in": ids } }] });
                    let options = crate::query::FindOptions {
                        filter: crate::filter::parse_filter(collection, &within)?,
                        fields: Some(vec![crate::filter::FieldRef::new(key)]),
                        ..crate::query::FindOptions::default()
                    };
                    repository
                        .find(&options)
                        .await?
                        .into_iter()
                        .filter_map(|row| row.get(&key.name).cloned())
                        .collect()
                }
            };
            allowed.insert(permission_name.into(), Json::Array(ids_allowed));
        }
        let meta = ctx.body_meta.get_or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("allowedActions".into(), Json::Object(allowed));
        }
        Ok(())
    }

    /// `allow-manager`: marks the request `permissionSkipped` when an allow rule admits it.
    fn apply_allow_rules(&self, ctx: &mut Context) -> Result<()> {
        let action = ctx.action()?;
        if self.allowed_by_rule(ctx, &action.resource_name, &action.action_name) {
            ctx.state
                .insert("permissionSkipped".into(), Json::Bool(true));
        }
        Ok(())
    }

    /// `core`: unless an allow rule admitted the request, its roles need the permission,
    /// which is then merged into the action's params. For an association request, the
    /// source row it goes through must also be inside the roles' scope on the source
    /// collection: the returned check says which row, to be verified before the action.
    fn check_permission(&self, ctx: &mut Context) -> Result<Option<SourceInScope>> {
        stamp_user(ctx)?;
        if ctx.state.get("permissionSkipped") == Some(&Json::Bool(true)) {
            return Ok(None);
        }
        let action = ctx.action()?;
        let name = action.action_name.as_str();
        let roles = current_roles(ctx);
        let (source_check, permission) = match &action.association {
            Some(scope) => {
                match self.association_grant(&roles, scope.source.name(), &scope.association, name)
                {
                    Some(AssociationGrant::Link(permission)) => {
                        return SourceInScope::of(ctx, scope, &permission);
                    }
                    Some(AssociationGrant::Through { source, target }) => {
                        let source_check = SourceInScope::of(ctx, scope, &source)?;
                        // The rows of a relation to another source are granted there.
                        let target = match &scope.target_source {
                            Some(peer) => {
                                peer.acl()
                                    .permission(&roles, &scope.association.target, name)
                            }
                            None => target,
                        };
                        (source_check, target)
                    }
                    None => return Err(refusal(ctx)),
                }
            }
            None => (None, self.permission(&roles, &action.resource_name, name)),
        };
        let Some(permission) = permission else {
            return Err(refusal(ctx));
        };
        let needed = permission_for(name);
        let appends = match needed {
            "view" => self.viewable_appends(ctx, &roles)?,
            _ => None,
        };
        narrow(ctx, permission, appends)?;
        Ok(source_check)
    }

    /// The requested `appends` whose every hop leads to a collection the roles may view
    /// (`None` when nothing was requested).
    fn viewable_appends(&self, ctx: &Context, roles: &[&str]) -> Result<Option<Vec<String>>> {
        let action = ctx.action()?;
        let Some(requested) = action.params.list("appends")? else {
            return Ok(None);
        };
        let rows_source = action
            .association
            .as_ref()
            .and_then(|a| a.target_source.as_ref())
            .or(ctx.data_source.as_ref());
        let (Some(collection), Some(source)) = (&action.collection, rows_source) else {
            return Ok(Some(requested));
        };
        // Each hop is granted by the ACL of the source its target lives in: a relation to
        // another source is seen only by roles that may list its target there.
        let viewable = |path: &str| {
            let mut current = collection.clone();
            let mut at: Arc<DataSource> = source.clone();
            for hop in path.split('.') {
                let Some(association) = current.relation(hop) else {
                    // Not a relation: the action reports it.
                    return true;
                };
                if let Some(key) = &association.target_source {
                    match at.peer(key) {
                        Ok(peer) => at = peer,
                        // The action reports the source's absence.
                        Err(_) => return true,
                    }
                }
                let own = ctx
                    .data_source
                    .as_ref()
                    .is_some_and(|o| Arc::ptr_eq(&at, o));
                let acl: &Acl = if own { self } else { at.acl() };
                if acl.permission(roles, &association.target, "list").is_none() {
                    return false;
                }
                match crate::filter::CollectionLookup::lookup(&*at, &association.target) {
                    Some(next) => current = next,
                    None => return true,
                }
            }
            true
        };
        Ok(Some(
            requested.into_iter().filter(|p| viewable(p)).collect(),
        ))
    }
}

/// The grants an association request goes through (see [`Acl::permits_association`]).
enum AssociationGrant {
    /// A link action: `update` on the source collection.
    Link(Permission),
    /// Any other: `view` on the source collection, and the action on the target (`None`
    /// when the roles lack it).
    Through {
        source: Permission,
        target: Option<Permission>,
    },
}

/// The source row of an association request (`posts/3` in `posts/3/comments:list`) and
/// the scope it must be inside.
pub struct SourceInScope {
    repository: Arc<dyn crate::repository::Repository>,
    filter: crate::filter::Filter,
}

impl SourceInScope {
    /// The check for `scope`'s source row under `permission`; `None` when the permission
    /// has no row filter or the request is not about one source row (`posts/_/…`).
    fn of(
        ctx: &Context,
        scope: &crate::context::AssociationScope,
        permission: &Permission,
    ) -> Result<Option<Self>> {
        let (Some(filter), false) = (&permission.filter, scope.source_id == "_") else {
            return Ok(None);
        };
        let resolved = resolve_variables(ctx, filter);
        let in_scope = crate::filter::parse_filter(&scope.source, &resolved)?;
        let by_key =
            crate::filter::key_filter(&scope.source, &Json::String(scope.source_id.clone()))?;
        let parts: Vec<crate::filter::Filter> = in_scope.into_iter().chain(by_key).collect();
        Ok(Some(Self {
            repository: scope.source_repository.clone(),
            filter: crate::filter::Filter::And(parts),
        }))
    }

    /// 403 (401 for an anonymous caller) unless the source row is inside the scope.
    async fn verify(self, ctx: &Context) -> Result<()> {
        if self.repository.count(Some(&self.filter)).await? == 0 {
            return Err(refusal(ctx));
        }
        Ok(())
    }
}

/// 401 when nobody (or nobody accepted) is signed in, else 403.
fn refusal(ctx: &Context) -> Error {
    if let Some(Json::Object(failure)) = ctx.state.get("authError") {
        // The code says why, and so which catalogue message translates the refusal
        // (server/locales/*/manifold.ftl); the auth middleware words them the same way.
        // A code of someone else's carries a message of theirs, which stays as it is.
        let (code, message_id) = match failure.get("code").and_then(Json::as_str) {
            Some("INVALID_TOKEN") => ("INVALID_TOKEN", Some("auth-session-expired")),
            Some("EXPIRED_SESSION") => ("EXPIRED_SESSION", Some("auth-session-expired")),
            Some("BLOCKED_TOKEN") => ("BLOCKED_TOKEN", Some("auth-session-expired")),
            Some("NOT_EXIST_USER") => ("NOT_EXIST_USER", Some("auth-user-gone")),
            Some("ROLE_NOT_FOUND_FOR_USER") => {
                ("ROLE_NOT_FOUND_FOR_USER", Some("auth-role-not-of-user"))
            }
            _ => ("INVALID_TOKEN", None),
        };
        let message = failure.get("message").and_then(Json::as_str);
        let error = Error::unauthorized(
            code,
            message.unwrap_or("Your session has expired. Please sign in again."),
        );
        return match (message_id, message) {
            (Some(id), _) => error.with_message_id(id, Vec::new()),
            (None, None) => error.with_message_id("auth-session-expired", Vec::new()),
            (None, Some(_)) => error,
        };
    }
    if !ctx.state.contains_key("currentUser") {
        return Error::unauthorized(
            "EMPTY_TOKEN",
            "Unauthenticated. Please sign in to continue.",
        )
        .with_message_id("auth-sign-in-required", Vec::new());
    }
    no_permission()
}

/// The 403 of a caller who is signed in but not granted the action.
fn no_permission() -> Error {
    Error::forbidden("No permissions").with_message_id("acl-no-permission", Vec::new())
}

/// Merges a permission into the action's params: the row filter (variables resolved) into
/// `filter`, the field list into `fields`/`appends` for reads or `values` for writes.
fn narrow(ctx: &mut Context, permission: Permission, appends: Option<Vec<String>>) -> Result<()> {
    let filter = permission
        .filter
        .as_ref()
        .map(|filter| resolve_variables(ctx, filter));
    let action = ctx.action_mut()?;
    let needed = permission_for(&action.action_name).to_owned();
    if let Some(filter) = filter {
        if let (Some(collection), Some(fields)) = (&action.collection, filter.as_object()) {
            // An `:own` permission on a collection that records no creator admits nothing.
            if fields.contains_key("createdById") && collection.field("createdById").is_none() {
                return Err(no_permission());
            }
        }
        let merged = match action.params.remove("filter") {
            Some(requested) if !is_empty_filter(&requested) => {
                json!({ "$and": [requested, filter] })
            }
            _ => filter,
        };
        action.params.set("filter", merged);
    }
    if let Some(appends) = appends {
        action.params.set("appends", json!(appends));
    }
    let Some(allowed) = permission.fields else {
        return Ok(());
    };
    match needed.as_str() {
        "view" => {
            let collection = action.collection.clone();
            let always = collection.iter().flat_map(|c| {
                c.primary_key()
                    .map(|f| f.name.clone())
                    .chain(c.created_at().map(|f| f.name.clone()))
                    .chain(c.updated_at().map(|f| f.name.clone()))
                    .collect::<Vec<_>>()
            });
            let mut visible: Vec<String> = allowed.clone();
            for f in always {
                if !visible.contains(&f) {
                    visible.push(f);
                }
            }
            let is_relation = |name: &str| {
                collection
                    .as_ref()
                    .is_some_and(|c| c.association(name).is_some())
            };
            let (relations, columns): (Vec<String>, Vec<String>) =
                visible.into_iter().partition(|f| is_relation(f));
            let fields = match action.params.list("fields")? {
                Some(requested) => requested
                    .into_iter()
                    .filter(|f| columns.contains(f))
                    .collect::<Vec<_>>(),
                None => columns.clone(),
            };
            let fields = if fields.is_empty() { columns } else { fields };
            action.params.set("fields", json!(fields));
            if let Some(requested) = action.params.list("appends")? {
                let kept: Vec<String> = requested
                    .into_iter()
                    .filter(|a| relations.iter().any(|r| a.split('.').next() == Some(r)))
                    .collect();
                action.params.set("appends", json!(kept));
            }
        }
        "create" | "update" => {
            let whitelist = match action.params.list("whitelist")? {
                Some(requested) => requested
                    .into_iter()
                    .filter(|f| allowed.contains(f))
                    .collect(),
                None => allowed,
            };
            action.params.set("whitelist", json!(whitelist));
        }
        _ => {}
    }
    Ok(())
}

fn is_empty_filter(filter: &Json) -> bool {
    match filter {
        Json::Null => true,
        Json::Object(o) => o.is_empty(),
        Json::String(s) => s.trim().is_empty() || s.trim() == "{}",
        _ => false,
    }
}

/// Records who writes: `createdById` on create and `updatedById` on every write, where the
/// collection has those fields and someone is signed in (what `:own` permissions read).
fn stamp_user(ctx: &mut Context) -> Result<()> {
    let Some(user_id) = ctx
        .state
        .get("currentUser")
        .and_then(|u| u.get("id"))
        .cloned()
    else {
        return Ok(());
    };
    let action = ctx.action_mut()?;
    let Some(collection) = action.collection.clone() else {
        return Ok(());
    };
    let creates = matches!(
        action.action_name.as_str(),
        "create" | "firstOrCreate" | "updateOrCreate"
    );
    let updates = creates || matches!(action.action_name.as_str(), "update");
    let mut stamps = Vec::new();
    if creates && collection.field("createdById").is_some() {
        stamps.push("createdById");
    }
    if updates && collection.field("updatedById").is_some() {
        stamps.push("updatedById");
    }
    if stamps.is_empty() {
        return Ok(());
    }
    fn stamp(values: &mut Json, stamps: &[&str], user_id: &Json) {
        match values {
            Json::Object(record) => {
                for name in stamps {
                    record.insert((*name).to_owned(), user_id.clone());
                }
            }
            Json::Array(records) => records.iter_mut().for_each(|r| stamp(r, stamps, user_id)),
            _ => {}
        }
    }
    if let Some(mut values) = action.params.remove("values") {
        stamp(&mut values, &stamps, &user_id);
        action.params.set("values", values);
    }
    Ok(())
}

/// A permission filter with its variables replaced: a string that is wholly
/// `{{ ctx.state.currentUser.<path> }}`, `{{ $user.<path> }}` or `{{ $nRole }}` becomes the
/// value it names (`null` when there is none); other strings stay as they are (the filter
/// parser reads date variables itself).
pub fn resolve_variables(ctx: &Context, filter: &Json) -> Json {
    match filter {
        Json::String(s) => match variable(s) {
            Some(name) => resolve_variable(ctx, name),
            None => filter.clone(),
        },
        Json::Array(items) => {
            Json::Array(items.iter().map(|i| resolve_variables(ctx, i)).collect())
        }
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_variables(ctx, v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn variable(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (inner.starts_with("ctx.state.currentUser") || inner.starts_with("$user") || inner == "$nRole")
        .then_some(inner)
}

fn resolve_variable(ctx: &Context, name: &str) -> Json {
    if name == "$nRole" {
        return match ctx.state.get("currentRole") {
            Some(role) => role.clone(),
            None => json!(current_roles(ctx)),
        };
    }
    let path = name
        .strip_prefix("ctx.state.currentUser")
        .or_else(|| name.strip_prefix("$user"))
        .unwrap_or_default();
    let mut value = ctx.state.get("currentUser").unwrap_or(&Json::Null);
    for segment in path.split('.').filter(|s| !s.is_empty()) {
        value = value.get(segment).unwrap_or(&Json::Null);
    }
    value.clone()
}

struct AllowManager(std::sync::Weak<Acl>);

#[async_trait::async_trait]
impl Middleware for AllowManager {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        if let Some(acl) = self.0.upgrade() {
            acl.apply_allow_rules(ctx)?;
        }
        next.run(ctx).await
    }
}

struct PermissionCheck(std::sync::Weak<Acl>);

#[async_trait::async_trait]
impl Middleware for PermissionCheck {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let source = self
            .0
            .upgrade()
            .ok_or_else(|| Error::internal("the ACL was dropped mid-request"))?
            .check_permission(ctx)?;
        if let Some(source) = source {
            source.verify(ctx).await?;
        }
        next.run(ctx).await
    }
}
