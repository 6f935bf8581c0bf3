//! Access control for one data source: who may run which action on which resource.
//!
//! The ACL is one node in the resource manager's chain. Inside it runs its own sorted chain:
//! `allow-manager` (public rules), middleware added with [`Acl::use_middleware`], and `core`,
//! the permission check that answers 403 `No permissions`. Unpositioned ACL middleware runs
//! after `core` and sees the decision; place it `before("core")` to run ahead of it. While
//! nothing has been added, the node makes the same two steps itself instead of running
//! them as layers: every request passes here, and three boxed futures cost it more than
//! the decision does.
//!
//! Authentication is out of Manifold's scope for now, so a data source starts with one rule,
//! `allow("*", "*")`; an operator who plugs in authentication replaces it with roles.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value as Json;

use crate::context::Context;
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

/// A role: a strategy over every resource, and explicit grants per resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Role {
    /// The role name (`root` may do everything).
    pub name: String,
    /// Permissions granted on every resource (`*`, or names such as `view`, `create`).
    pub strategy: Vec<String>,
    /// Permissions per resource; an entry overrides the strategy for that resource.
    pub grants: HashMap<String, Vec<String>>,
}

/// The permission a request action needs: `get`/`list` need `view`, and so on.
pub fn permission_for(action: &str) -> &str {
    match action {
        "get" | "list" | "query" => "view",
        "firstOrCreate" | "updateOrCreate" => "create",
        "move" | "add" | "remove" | "set" | "toggle" => "update",
        other => other,
    }
}

/// The access-control state of one data source.
pub struct Acl {
    rules: RwLock<Vec<AllowRule>>,
    roles: RwLock<HashMap<String, Role>>,
    chain: RwLock<MiddlewareChain>,
}

impl Acl {
    /// An ACL that allows every action (see the module docs for why).
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

    /// Whether `role` may run `action` on `resource`.
    pub fn can(&self, role: &str, resource: &str, action: &str) -> bool {
        if role == "root" {
            return true;
        }
        let roles = self.roles.read().unwrap_or_else(|e| e.into_inner());
        let Some(role) = roles.get(role) else {
            return false;
        };
        let needed = permission_for(action);
        let grants = |list: &[String]| list.iter().any(|p| p == "*" || p == needed || p == action);
        match role.grants.get(resource) {
            Some(explicit) => grants(explicit),
            None => grants(&role.strategy),
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

    fn allowed_by_rule(&self, ctx: &Context, resource: &str, action: &str) -> bool {
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
            self.0.check_permission(ctx)?;
            return tracing::Instrument::instrument(next.run(ctx), span).await;
        }
        tracing::Instrument::instrument(Next::with_tail(&inner, next).run(ctx), span).await
    }
}

impl Acl {
    /// `allow-manager`: marks the request `permissionSkipped` when an allow rule admits it.
    fn apply_allow_rules(&self, ctx: &mut Context) -> Result<()> {
        let action = ctx.action()?;
        if self.allowed_by_rule(ctx, &action.resource_name, &action.action_name) {
            ctx.state
                .insert("permissionSkipped".into(), Json::Bool(true));
        }
        Ok(())
    }

    /// `core`: unless an allow rule admitted the request, its role needs the permission.
    fn check_permission(&self, ctx: &Context) -> Result<()> {
        if ctx.state.get("permissionSkipped") == Some(&Json::Bool(true)) {
            return Ok(());
        }
        let role = ctx
            .state
            .get("currentRole")
            .and_then(Json::as_str)
            .unwrap_or("anonymous");
        let action = ctx.action()?;
        // Association requests are checked against the target collection.
        let resource = match &action.association {
            Some(scope) => scope.association.target.as_str(),
            None => &action.resource_name,
        };
        if self.can(role, resource, &action.action_name) {
            Ok(())
        } else {
            Err(Error::forbidden("No permissions"))
        }
    }
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
        self.0
            .upgrade()
            .ok_or_else(|| Error::internal("the ACL was dropped mid-request"))?
            .check_permission(ctx)?;
        next.run(ctx).await
    }
}
