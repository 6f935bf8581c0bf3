use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::toposort::{Placement, SortError, TopoSorter};
use crate::context::Context;
use crate::error::Result;

/// One layer of the onion: does its work around `next.run(ctx)`.
///
/// Not calling `next` stops the chain (later layers and the action do not run). `Next` is
/// consumed by `run`, so a layer cannot run the rest twice.
#[async_trait::async_trait]
pub trait Middleware: Send + Sync + 'static {
    /// Handles the request, calling `next.run(ctx)` to continue.
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()>;
}

/// The rest of the onion after the current layer.
pub struct Next<'a> {
    layers: &'a [Arc<dyn Middleware>],
    tail: Option<Box<Next<'a>>>,
}

impl<'a> Next<'a> {
    /// Runs `layers` in order, then nothing.
    pub fn new(layers: &'a [Arc<dyn Middleware>]) -> Self {
        Self { layers, tail: None }
    }

    /// Runs `layers`, then continues with `tail` (how an action's `next` reaches the app
    /// middleware registered after the router).
    pub fn with_tail(layers: &'a [Arc<dyn Middleware>], tail: Next<'a>) -> Self {
        Self {
            layers,
            tail: Some(Box::new(tail)),
        }
    }

    /// Runs the rest of the onion.
    pub async fn run(self, ctx: &mut Context) -> Result<()> {
        match self.layers.split_first() {
            Some((first, rest)) => {
                first
                    .handle(
                        ctx,
                        Next {
                            layers: rest,
                            tail: self.tail,
                        },
                    )
                    .await
            }
            None => match self.tail {
                Some(tail) => Box::pin(tail.run(ctx)).await,
                None => Ok(()),
            },
        }
    }
}

type HandlerFn =
    dyn for<'a> Fn(&'a mut Context, Next<'a>) -> BoxFuture<'a, Result<()>> + Send + Sync;

struct FnMiddleware(Box<HandlerFn>);

#[async_trait::async_trait]
impl Middleware for FnMiddleware {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        (self.0)(ctx, next).await
    }
}

/// A middleware from a closure: `from_fn(|ctx, next| Box::pin(async move { next.run(ctx).await }))`.
pub fn from_fn<F>(f: F) -> Arc<dyn Middleware>
where
    F: for<'a> Fn(&'a mut Context, Next<'a>) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
{
    Arc::new(FnMiddleware(Box::new(f)))
}

/// Why a middleware registration was refused; earlier registrations keep working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MiddlewareError {
    /// A cycle or a self-reference.
    #[error(transparent)]
    Order(#[from] SortError),
    /// `before`/`after` names a tag no registered middleware has.
    #[error("middleware refers to unknown tag {tag:?}; known tags: {known}")]
    UnknownTag {
        /// The unknown name.
        tag: String,
        /// The names that exist, comma separated.
        known: String,
    },
}

/// A sorted list of middleware for one level (app, data source, resource manager, ACL).
pub struct MiddlewareChain {
    sorter: TopoSorter<Arc<dyn Middleware>>,
    sorted: Arc<[Arc<dyn Middleware>]>,
    default_group: Option<&'static str>,
}

impl fmt::Debug for MiddlewareChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiddlewareChain")
            .field("len", &self.sorter.len())
            .finish()
    }
}

impl Default for MiddlewareChain {
    fn default() -> Self {
        Self::new()
    }
}

impl MiddlewareChain {
    /// An empty chain where unpositioned middleware keeps registration order.
    pub fn new() -> Self {
        Self {
            sorter: TopoSorter::new(),
            sorted: Arc::from(Vec::new()),
            default_group: None,
        }
    }

    /// An empty chain where unpositioned middleware joins `group` (the resource manager's
    /// chain puts it in `default`, so built-ins can be placed around user middleware).
    pub fn with_default_group(group: &'static str) -> Self {
        Self {
            default_group: Some(group),
            ..Self::new()
        }
    }

    /// Adds `middleware` at `placement`.
    ///
    /// A `before`/`after` naming a tag that no middleware in this chain has is refused:
    /// a misspelt tag would otherwise silently impose nothing. Register in dependency order.
    pub fn add(
        &mut self,
        middleware: Arc<dyn Middleware>,
        mut placement: Placement,
    ) -> Result<(), MiddlewareError> {
        if placement.is_unpositioned()
            && let Some(group) = self.default_group
        {
            placement.tag = Some(group.to_owned());
        }
        let own = placement.name().map(str::to_owned);
        for tag in placement.before.iter().chain(&placement.after) {
            if Some(tag) != own.as_ref() && !self.sorter.has_group(tag) {
                return Err(MiddlewareError::UnknownTag {
                    tag: tag.clone(),
                    known: self.known_tags().join(", "),
                });
            }
        }
        self.sorter.add(middleware, placement)?;
        self.sorted = self.sorter.items().cloned().collect::<Vec<_>>().into();
        Ok(())
    }

    /// Checks that `placement` would be accepted, without adding anything.
    pub fn check(&self, placement: &Placement) -> Result<(), MiddlewareError> {
        struct Probe;
        #[async_trait::async_trait]
        impl Middleware for Probe {
            async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
                next.run(ctx).await
            }
        }
        let mut trial = Self {
            sorter: self.sorter.clone(),
            sorted: self.sorted.clone(),
            default_group: self.default_group,
        };
        trial.add(Arc::new(Probe), placement.clone())
    }

    /// The middleware in order; cheap to clone and safe to hold across a request.
    pub fn sorted(&self) -> Arc<[Arc<dyn Middleware>]> {
        self.sorted.clone()
    }

    fn known_tags(&self) -> Vec<&str> {
        self.sorter.groups()
    }
}
