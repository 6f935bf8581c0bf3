//! Data sources and their manager: the centre of Manifold.
//!
//! A [`DataSource`] is one registered database with its own schema catalogue, resource
//! manager and ACL. The [`DataSourceManager`] holds them by key, builds new ones through a
//! [`DataSourceFactory`] per type, and runs `before_add`/`after_add` hooks so that anything
//! registered once (the default actions, a plugin's actions) reaches every source.

mod manager;
mod peers;
mod router;
mod source;
mod unit;

pub use manager::{
    ConnectTarget, DataSourceFactory, DataSourceHook, DataSourceManager, DataSourceStatus,
};
pub use router::DataSourceRouter;
pub use source::{DataSource, DataSourceSettings, INTERNAL_PREFIX};
pub use unit::{AssociationEvents, MAX_EVENT_DEPTH, MAX_EVENT_ROWS, Unit};
