//! Manifold's model: collections and fields, the filter language, repositories, resources
//! and actions, onion middleware, access control and data sources.
//!
//! This crate knows no database driver and no HTTP library. Connectors implement
//! [`Connector`] and [`Repository`]; the service turns HTTP requests into a [`Context`] and
//! runs it through the app chain, whose `dataSource` node is the [`DataSourceRouter`].

pub mod acl;
pub mod actions;
pub mod appends;
pub mod associations;
pub mod connection_share;
pub mod connector;
pub mod context;
pub mod data_source;
pub mod dates;
pub mod declarations;
pub mod error;
pub mod events;
pub mod filter;
pub mod key_lock;
pub mod middleware;
pub mod options;
pub mod params;
pub mod query;
pub mod raw_rows;
pub mod repository;
pub mod request;
pub mod resource;
pub mod schema;
pub mod streamed;
pub mod telemetry;
pub mod value;

pub use acl::Acl;
pub use connector::{CollectionDefinition, Connector, FieldDefinition, UnitOfWork};
pub use context::{Action, Context, RequestInfo};
pub use data_source::{DataSource, DataSourceFactory, DataSourceManager, DataSourceRouter};
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use middleware::{Middleware, Next, Placement};
pub use params::Params;
pub use query::FindOptions;
pub use repository::{Record, Repository, WriteValues};
pub use resource::{ResourceDefinition, ResourceManager};
pub use schema::{Collection, Field, FieldType};
pub use value::Value;
