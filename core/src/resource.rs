//! Resources and their actions, per data source.
//!
//! Every collection is a resource automatically; code can [`define`](ResourceManager::define)
//! more. An action's handler is found in this order: a handler registered as
//! `"<resource>:<action>"`, the resource's own action, then a global handler registered as
//! `"<action>"`. The layers of one request are this manager's sorted middleware, the
//! resource's middleware, the action's middleware, then the handler.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Map, Value as Json};

use crate::middleware::{Middleware, MiddlewareChain, MiddlewareError, Placement};

/// A resource defined in code (`app:getInfo`, `dataSources`, …).
#[derive(Clone, Default)]
pub struct ResourceDefinition {
    /// The resource name; `a.b` for association resources.
    pub name: String,
    /// The resource's own actions by name.
    pub actions: HashMap<String, ActionDefinition>,
    /// When non-empty, only these actions exist.
    pub only: Vec<String>,
    /// Otherwise, these actions do not exist.
    pub except: Vec<String>,
    /// Middleware around every action of this resource.
    pub middlewares: Vec<ScopedMiddleware>,
}

impl ResourceDefinition {
    /// An empty resource called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Adds the action `name` handled by `handler`.
    pub fn action(mut self, name: impl Into<String>, handler: Arc<dyn Middleware>) -> Self {
        self.actions
            .insert(name.into(), ActionDefinition::new(handler));
        self
    }

    /// Adds the action `name` with a full definition.
    pub fn action_definition(mut self, name: impl Into<String>, action: ActionDefinition) -> Self {
        self.actions.insert(name.into(), action);
        self
    }

    /// Adds middleware around this resource's actions.
    pub fn middleware(mut self, middleware: ScopedMiddleware) -> Self {
        self.middlewares.push(middleware);
        self
    }

    fn admits(&self, action: &str) -> bool {
        if !self.only.is_empty() {
            return self.only.iter().any(|a| a == action);
        }
        !self.except.iter().any(|a| a == action)
    }
}

/// One action: a handler (or none, to use the global one), default params and middleware.
#[derive(Clone, Default)]
pub struct ActionDefinition {
    /// Runs the action; `None` falls back to the global handler of the same name.
    pub handler: Option<Arc<dyn Middleware>>,
    /// Default params, merged with the request's by the standard strategies.
    pub defaults: Map<String, Json>,
    /// Middleware around this action only, after the resource's.
    pub middlewares: Vec<Arc<dyn Middleware>>,
}

impl ActionDefinition {
    /// An action run by `handler`.
    pub fn new(handler: Arc<dyn Middleware>) -> Self {
        Self {
            handler: Some(handler),
            ..Self::default()
        }
    }
}

/// Resource middleware limited to some actions (`only` wins when non-empty).
#[derive(Clone)]
pub struct ScopedMiddleware {
    /// The middleware.
    pub middleware: Arc<dyn Middleware>,
    /// Run only for these actions.
    pub only: Vec<String>,
    /// Otherwise, skip these actions.
    pub except: Vec<String>,
}

impl ScopedMiddleware {
    /// Middleware for every action.
    pub fn all(middleware: Arc<dyn Middleware>) -> Self {
        Self {
            middleware,
            only: Vec::new(),
            except: Vec::new(),
        }
    }

    fn admits(&self, action: &str) -> bool {
        if !self.only.is_empty() {
            return self.only.iter().any(|a| a == action);
        }
        !self.except.iter().any(|a| a == action)
    }
}

/// What a request resolved to: the layers to run and the default params.
pub struct ResolvedAction {
    /// Manager middleware, resource middleware, action middleware, handler.
    pub layers: Vec<Arc<dyn Middleware>>,
    /// The action's default params.
    pub defaults: Map<String, Json>,
}

/// Why a resource request did not resolve; the router answers 404 with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// No collection or defined resource has this name.
    NoResource(String),
    /// The resource exists but has no such action (or excludes it).
    NoAction {
        /// The resource.
        resource: String,
        /// The action asked for.
        action: String,
    },
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::NoResource(r) => write!(f, "resource {r} does not exist"),
            Unresolved::NoAction { resource, action } => {
                write!(f, "resource {resource} has no action {action}")
            }
        }
    }
}

/// The registry's maps hash with foldhash: every request looks names up in them, and
/// only the operator's registrations insert, so callers cannot choose colliding keys.
type NameMap<V> = foldhash::HashMap<String, V>;

#[derive(Default)]
struct Registry {
    resources: NameMap<Arc<ResourceDefinition>>,
    /// `list`: for every resource.
    handlers: NameMap<Arc<dyn Middleware>>,
    /// `posts:list`, by resource then action, so resolving needs no key built per request.
    resource_handlers: NameMap<NameMap<Arc<dyn Middleware>>>,
}

/// The resources, action handlers and middleware of one data source.
pub struct ResourceManager {
    registry: RwLock<Registry>,
    chain: RwLock<MiddlewareChain>,
}

impl Default for ResourceManager {
    fn default() -> Self {
        Self::new()
    }
}

impl ResourceManager {
    /// A manager with no resources; unpositioned middleware goes to the `default` group.
    pub fn new() -> Self {
        Self {
            registry: RwLock::default(),
            chain: RwLock::new(MiddlewareChain::with_default_group("default")),
        }
    }

    /// Defines a resource. Defining one that exists again replaces its actions and action
    /// lists but keeps the earlier definition's middleware (before the new one's), so a
    /// module can guard a resource another module defines, in either order.
    pub fn define(&self, mut resource: ResourceDefinition) {
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        if let Some(earlier) = registry.resources.get(&resource.name) {
            let mut middlewares = earlier.middlewares.clone();
            middlewares.append(&mut resource.middlewares);
            resource.middlewares = middlewares;
        }
        registry
            .resources
            .insert(resource.name.clone(), Arc::new(resource));
    }

    /// Registers a handler: `"list"` for every resource, `"posts:list"` or
    /// `"posts.comments:list"` for one (which wins over the resource's own action).
    pub fn register_action_handler(&self, name: impl Into<String>, handler: Arc<dyn Middleware>) {
        let name = name.into();
        let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
        match name.rsplit_once(':') {
            Some((resource, action)) => {
                registry
                    .resource_handlers
                    .entry(resource.to_owned())
                    .or_default()
                    .insert(action.to_owned(), handler);
            }
            None => {
                registry.handlers.insert(name, handler);
            }
        }
    }

    /// Registers several handlers at once.
    pub fn register_action_handlers<I, S>(&self, handlers: I)
    where
        I: IntoIterator<Item = (S, Arc<dyn Middleware>)>,
        S: Into<String>,
    {
        for (name, handler) in handlers {
            self.register_action_handler(name, handler);
        }
    }

    /// Adds middleware to this manager's chain (level 3).
    pub fn use_middleware(
        &self,
        middleware: Arc<dyn Middleware>,
        placement: Placement,
    ) -> Result<(), MiddlewareError> {
        let mut chain = self.chain.write().unwrap_or_else(|e| e.into_inner());
        chain.add(middleware, placement)
    }

    /// Checks that middleware at `placement` would be accepted, without adding it.
    pub fn check_placement(&self, placement: &Placement) -> Result<(), MiddlewareError> {
        self.chain
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .check(placement)
    }

    /// Every resource defined here or given a handler of its own (`posts:publish`), with
    /// the actions it answers, sorted by name: what a description of the API lists beside
    /// the collections.
    pub fn resources(&self) -> Vec<(String, Vec<String>)> {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = registry
            .resources
            .keys()
            .chain(registry.resource_handlers.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let definition = registry.resources.get(name);
                let mut actions: Vec<String> = definition
                    .into_iter()
                    .flat_map(|d| d.actions.keys().chain(d.only.iter()))
                    .chain(
                        registry
                            .resource_handlers
                            .get(name)
                            .into_iter()
                            .flat_map(|a| a.keys()),
                    )
                    .filter(|action| definition.is_none_or(|d| d.admits(action)))
                    .filter(|action| {
                        let own = definition
                            .and_then(|d| d.actions.get(*action))
                            .is_some_and(|a| a.handler.is_some());
                        own || registry
                            .resource_handlers
                            .get(name)
                            .is_some_and(|a| a.contains_key(*action))
                            || registry.handlers.contains_key(*action)
                    })
                    .cloned()
                    .collect();
                actions.sort();
                actions.dedup();
                (name.clone(), actions)
            })
            .collect()
    }

    /// Resolves `resource:action`. `is_collection` says whether a collection of that name
    /// exists (collections are resources without being defined).
    pub fn resolve(
        &self,
        resource: &str,
        action: &str,
        is_collection: bool,
    ) -> Result<ResolvedAction, Unresolved> {
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let definition = registry.resources.get(resource);
        if definition.is_none() && !is_collection {
            return Err(Unresolved::NoResource(resource.to_owned()));
        }
        let no_action = || Unresolved::NoAction {
            resource: resource.to_owned(),
            action: action.to_owned(),
        };
        if definition.is_some_and(|d| !d.admits(action)) {
            return Err(no_action());
        }
        let own = definition.and_then(|d| d.actions.get(action));
        let handler = registry
            .resource_handlers
            .get(resource)
            .and_then(|actions| actions.get(action))
            .or_else(|| own.and_then(|a| a.handler.as_ref()))
            .or_else(|| registry.handlers.get(action))
            .cloned()
            .ok_or_else(no_action)?;

        let chain = self
            .chain
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .sorted();
        let mut layers = Vec::with_capacity(chain.len() + 4);
        layers.extend(chain.iter().cloned());
        if let Some(d) = definition {
            layers.extend(
                d.middlewares
                    .iter()
                    .filter(|m| m.admits(action))
                    .map(|m| m.middleware.clone()),
            );
        }
        if let Some(a) = own {
            layers.extend(a.middlewares.iter().cloned());
        }
        layers.push(handler);
        Ok(ResolvedAction {
            layers,
            defaults: own.map(|a| a.defaults.clone()).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::middleware::Next;

    struct Nothing;

    #[async_trait::async_trait]
    impl Middleware for Nothing {
        async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> crate::error::Result<()> {
            next.run(ctx).await
        }
    }

    #[test]
    fn resources_lists_each_resource_with_the_actions_it_answers() {
        let manager = ResourceManager::new();
        let nothing = || Arc::new(Nothing) as Arc<dyn Middleware>;
        manager.register_action_handlers([("list", nothing()), ("apiKeys:create", nothing())]);
        let mut auth = ResourceDefinition::new("auth")
            .action("signIn", nothing())
            .action("check", nothing())
            .action("hidden", nothing());
        auth.only = vec![
            "signIn".into(),
            "check".into(),
            "list".into(),
            "nowhere".into(),
        ];
        manager.define(auth);
        manager.define(ResourceDefinition::new("users"));
        assert_eq!(
            manager.resources(),
            [
                ("apiKeys".to_owned(), vec!["create".to_owned()]),
                (
                    "auth".to_owned(),
                    vec!["check".to_owned(), "list".to_owned(), "signIn".to_owned()]
                ),
                ("users".to_owned(), vec![]),
            ]
        );
    }

    #[test]
    fn a_handler_for_one_resource_wins_over_the_one_for_every_resource() {
        let manager = ResourceManager::new();
        let every: Arc<dyn Middleware> = Arc::new(Nothing);
        let posts: Arc<dyn Middleware> = Arc::new(Nothing);
        let comments: Arc<dyn Middleware> = Arc::new(Nothing);
        manager.register_action_handlers([
            ("list", every.clone()),
            ("posts:list", posts.clone()),
            ("posts.comments:list", comments.clone()),
        ]);
        let handler = |resource: &str, action: &str| {
            manager
                .resolve(resource, action, true)
                .ok()
                .and_then(|r| r.layers.last().cloned())
        };
        let is = |got: Option<Arc<dyn Middleware>>, want: &Arc<dyn Middleware>| {
            got.is_some_and(|got| Arc::ptr_eq(&got, want))
        };
        assert!(is(handler("posts", "list"), &posts));
        assert!(is(handler("posts.comments", "list"), &comments));
        assert!(is(handler("users", "list"), &every));
        assert!(handler("posts", "get").is_none(), "no handler for get");
    }
}
