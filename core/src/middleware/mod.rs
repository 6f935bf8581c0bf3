//! Onion middleware and its ordering.
//!
//! A [`Middleware`] gets the request [`Context`](crate::Context) and a [`Next`] that runs
//! everything after it; code after `next.run(ctx).await` runs on the way back out. Chains are
//! kept sorted by [`toposort`] from each registration's [`Placement`].

mod chain;
pub mod toposort;

pub use chain::{Middleware, MiddlewareChain, MiddlewareError, Next, from_fn};
pub use toposort::Placement;
