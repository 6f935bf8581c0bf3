//! The one trait every kind of database implements.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::schema::{Collection, FieldType};

/// A live connection to one database: reads its schema and hands out repositories.
///
/// Like DataFusion's `TableProvider`, this is the single seam between the model and a
/// driver: the SQL, MongoDB and other connectors each implement it once.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Reads every table, view or collection and its fields. Called at load and refresh
    /// only, never per request.
    async fn introspect(&self) -> Result<Vec<Collection>>;

    /// The repository for `collection`.
    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository>;

    /// Creates a table for `definition` and returns its introspected schema.
    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        Err(Error::bad_request(format!(
            "this data source cannot create collections (asked for {})",
            definition.name
        )))
    }

    /// Drops the table behind `collection`.
    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        Err(Error::bad_request(format!(
            "this data source cannot drop collections (asked for {})",
            collection.name()
        )))
    }

    /// Closes the pool; later calls fail.
    async fn close(&self);
}

/// A new collection as `collections:create` or `define_collection` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionDefinition {
    /// Table and resource name.
    pub name: String,
    /// Add an auto-increment `id` primary key (default true).
    pub auto_gen_id: bool,
    /// Add `createdAt`/`updatedAt`, filled on write (default true).
    pub timestamps: bool,
    /// The user's fields.
    pub fields: Vec<FieldDefinition>,
}

/// One field of a new collection.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDefinition {
    /// Column and attribute name.
    pub name: String,
    /// Storage type.
    pub field_type: FieldType,
    /// Part of the primary key.
    pub primary_key: bool,
    /// May be NULL (default true).
    pub allow_null: bool,
    /// Single-column unique constraint.
    pub unique: bool,
    /// A literal default value.
    pub default_value: Option<crate::value::Value>,
    /// `decimal` precision and scale.
    pub precision: Option<(u8, u8)>,
    /// `string` length (default 255).
    pub length: Option<u32>,
}

impl FieldDefinition {
    /// A nullable field of `field_type`.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self {
            name: name.into(),
            field_type,
            primary_key: false,
            allow_null: true,
            unique: false,
            default_value: None,
            precision: None,
            length: None,
        }
    }
}
