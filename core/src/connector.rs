//! The one trait every kind of database implements.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::filter::Operator;
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

    /// Whether this database can run filters that use `op`. Opt-in, like DataFusion's
    /// `supports_filters_pushdown`: asked once per operator when a source loads, and a
    /// client's filter (or `filterByTk`) using an operator answered `false` is refused with
    /// a 400 naming it and the source type, before any repository sees it.
    ///
    /// Core's own lookups by key (relations, appends, link actions) use `$eq` and `$in`
    /// whatever the answer, so every repository must run those.
    fn supports_operator(&self, _op: Operator) -> bool {
        true
    }

    /// Creates a table for `definition` and returns its introspected schema.
    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        Err(Error::bad_request(format!(
            "this data source cannot create collections (asked for {})",
            definition.name
        )))
    }

    /// Adds `field` as a new column of the table behind `collection`. The rows already
    /// there stay as they are, so the field must allow NULL or have a default. Opt-in:
    /// only connectors that can alter a table implement it.
    async fn add_field(&self, collection: &Collection, field: &FieldDefinition) -> Result<()> {
        Err(Error::bad_request(format!(
            "this data source cannot add fields (asked for {}.{})",
            collection.name(),
            field.name
        )))
    }

    /// Drops the table behind `collection`.
    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        Err(Error::bad_request(format!(
            "this data source cannot drop collections (asked for {})",
            collection.name()
        )))
    }

    /// Starts a unit of work: repositories whose statements all run in one transaction,
    /// committed together or not at all.
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        Err(Error::bad_request(
            "this data source cannot run several writes in one transaction",
        ))
    }

    /// Starts a unit of work that first takes an exclusive lock on `key`, held until the
    /// unit commits or is dropped: units locked on the same key run one after another, in
    /// every process that uses this database, and each one's reads see what the previous
    /// one committed. `firstOrCreate` and `updateOrCreate` run their lookup and insert in
    /// one, so two of them cannot both miss and both insert.
    ///
    /// `Ok(None)` (the default): this database offers no such lock; callers do what they
    /// can without it.
    async fn begin_locked(&self, _key: &str) -> Result<Option<Box<dyn UnitOfWork>>> {
        Ok(None)
    }

    /// Closes the pool; later calls fail.
    async fn close(&self);

    /// How full the connection pool is, for metrics; `None` when the driver does not say.
    fn pool_status(&self) -> Option<crate::telemetry::PoolStatus> {
        None
    }
}

/// Several writes across collections of one database that commit together. Dropping it
/// without [`UnitOfWork::commit`] rolls everything back.
#[async_trait::async_trait]
pub trait UnitOfWork: Send + Sync {
    /// A repository for `collection` whose statements run in this unit's transaction.
    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository>;

    /// Makes every write of the unit permanent.
    async fn commit(self: Box<Self>) -> Result<()>;
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

/// Checks a name used for a new table or column: letters, digits and `_`, starting with a
/// letter or `_`, at most 63 characters (PostgreSQL's limit), and not reserved.
///
/// DDL is the one place a name comes from the request rather than the schema, so it is held
/// to this strict shape before it is (also) quoted.
pub fn validate_identifier(name: &str, what: &str) -> Result<()> {
    let mut chars = name.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if !well_formed {
        return Err(Error::bad_request(format!(
            "{what} {name:?} is not a valid name: use letters, digits and _, start with a letter or _, at most 63 characters"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("sqlite_") || lower.starts_with("_manifold") {
        return Err(Error::bad_request(format!("{what} {name:?} is reserved")));
    }
    Ok(())
}

impl CollectionDefinition {
    /// Reads `{name, fields: [{name, type, allowNull?, unique?, primaryKey?, defaultValue?,
    /// length?, precision?, scale?}], autoGenId?, timestamps?}` and checks it.
    pub fn from_json(input: &serde_json::Value) -> Result<Self> {
        use serde_json::Value as Json;
        let obj = input
            .as_object()
            .ok_or_else(|| Error::bad_request("values: expected a collection object"))?;
        let name = obj
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::bad_request("values.name: a collection name is required"))?;
        validate_identifier(name, "collection name")?;
        let flag = |key: &str, default: bool| -> Result<bool> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(Json::Bool(b)) => Ok(*b),
                Some(other) => Err(Error::bad_request(format!(
                    "values.{key}: expected true or false, got {other}"
                ))),
            }
        };
        let auto_gen_id = flag("autoGenId", true)?;
        let timestamps = flag("timestamps", true)?;
        let raw_fields = match obj.get("fields") {
            None | Some(Json::Null) => &Vec::new(),
            Some(Json::Array(items)) => items,
            Some(other) => {
                return Err(Error::bad_request(format!(
                    "values.fields: expected an array of fields, got {other}"
                )));
            }
        };
        let mut reserved: Vec<&str> = Vec::new();
        if auto_gen_id {
            reserved.push("id");
        }
        if timestamps {
            reserved.extend(["createdAt", "updatedAt"]);
        }
        let mut fields: Vec<FieldDefinition> = Vec::with_capacity(raw_fields.len());
        for (i, raw) in raw_fields.iter().enumerate() {
            let at = format!("values.fields.{i}");
            let field = FieldDefinition::from_json(raw, &at)?;
            if reserved.contains(&field.name.as_str()) {
                return Err(Error::bad_request(format!(
                    "{at}.name: {:?} is added automatically (autoGenId/timestamps); turn that option off to define it yourself",
                    field.name
                )));
            }
            if fields.iter().any(|f| f.name == field.name) {
                return Err(Error::bad_request(format!(
                    "{at}.name: field {:?} is defined twice",
                    field.name
                )));
            }
            fields.push(field);
        }
        if auto_gen_id && fields.iter().any(|f| f.primary_key) {
            return Err(Error::bad_request(
                "values.fields: a primaryKey field needs autoGenId: false",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            auto_gen_id,
            timestamps,
            fields,
        })
    }
}

impl FieldDefinition {
    /// Reads one field of a collection definition; `at` names it in errors.
    pub fn from_json(raw: &serde_json::Value, at: &str) -> Result<Self> {
        use serde_json::Value as Json;
        let obj = raw
            .as_object()
            .ok_or_else(|| Error::bad_request(format!("{at}: expected a field object")))?;
        let name = obj
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::bad_request(format!("{at}.name: a field name is required")))?;
        validate_identifier(name, "field name")?;
        let type_name = obj
            .get("type")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::bad_request(format!("{at}.type: a field type is required")))?;
        let field_type = FieldType::parse(type_name)
            .filter(|t| FieldType::CREATABLE.contains(t))
            .ok_or_else(|| {
                let names: Vec<&str> = FieldType::CREATABLE.iter().map(|t| t.name()).collect();
                Error::bad_request(format!(
                    "{at}.type: unknown field type {type_name:?}; supported: {}",
                    names.join(", ")
                ))
            })?;
        let bool_opt = |key: &str, default: bool| -> Result<bool> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(Json::Bool(b)) => Ok(*b),
                Some(other) => Err(Error::bad_request(format!(
                    "{at}.{key}: expected true or false, got {other}"
                ))),
            }
        };
        let small_int = |key: &str, max: u64| -> Result<Option<u64>> {
            match obj.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=max).contains(n))
                    .map(Some)
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "{at}.{key}: expected an integer from 1 to {max}, got {v}"
                        ))
                    }),
            }
        };
        let mut field = FieldDefinition::new(name, field_type);
        field.primary_key = bool_opt("primaryKey", false)?;
        field.allow_null = bool_opt("allowNull", !field.primary_key)?;
        field.unique = bool_opt("unique", false)?;
        field.length = small_int("length", 65_535)?.map(|n| n as u32);
        if let Some(precision) = small_int("precision", 65)? {
            let scale = match obj.get("scale") {
                None | Some(Json::Null) => 0,
                Some(v) => v.as_u64().filter(|s| *s <= precision).ok_or_else(|| {
                    Error::bad_request(format!(
                        "{at}.scale: expected an integer from 0 to the precision, got {v}"
                    ))
                })?,
            };
            field.precision = Some((precision as u8, scale as u8));
        }
        if let Some(default) = obj.get("defaultValue").filter(|v| !v.is_null()) {
            field.default_value = Some(crate::value::Value::coerce(
                field_type,
                default,
                &format!("{at}.defaultValue"),
            )?);
        }
        Ok(field)
    }
}
