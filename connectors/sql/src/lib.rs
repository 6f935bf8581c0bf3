//! SQL shared by every SQL connector: one compiler from Manifold's [`FindOptions`], filters
//! and writes to parameterised SQL. Each connector implements [`Dialect`] for its
//! database in its own crate; this crate names no database.
//!
//! Values only ever enter a statement through [`SqlBuilder::bind`]; identifiers only come
//! from the introspected schema and are always quoted.
//!
//! [`FindOptions`]: manifold_core::FindOptions

mod builder;
pub mod compile;
pub mod ddl;
mod dialect;
mod joins;
pub mod lock;
#[cfg(feature = "sqlx")]
pub mod pool;
pub mod rows;
#[cfg(feature = "sqlx")]
pub mod sqlx_repository;

pub use builder::{Sql, SqlBuilder};
pub use dialect::{Dialect, Returning};
