//! The schema of one table or collection: its fields, their types and its key.
//!
//! A [`Collection`] is built once per data-source load (by introspection or by
//! `collections:create`) and then shared read-only behind an `Arc`, so requests never read
//! the database schema.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

use crate::error::{Error, Result};

/// The storage type of a field, in NocoBase's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Short text (`VARCHAR`).
    String,
    /// Long text.
    Text,
    /// 32-bit (or smaller) integer.
    Integer,
    /// 64-bit integer; rendered as a JSON string beyond 2^53 so clients keep every digit.
    BigInt,
    /// Single-precision float.
    Float,
    /// Double-precision float.
    Double,
    /// Exact decimal; rendered as a JSON string so no precision is lost.
    Decimal,
    /// True or false.
    Boolean,
    /// A calendar date, `YYYY-MM-DD` (NocoBase's `dateOnly`).
    Date,
    /// An instant, rendered as ISO-8601 UTC with milliseconds (NocoBase's `date`/`datetimeTz`).
    DateTime,
    /// A wall-clock timestamp without zone, `YYYY-MM-DD HH:mm:ss`.
    DateTimeNoTz,
    /// A time of day, `HH:mm:ss`.
    Time,
    /// Any JSON document.
    Json,
    /// A UUID, rendered as its lower-case hyphenated string.
    Uuid,
    /// A JSON array of scalars (NocoBase's `array`/`set`).
    Array,
    /// Binary data, rendered as base64.
    Binary,
}

impl FieldType {
    /// Every type a client can ask for in `collections:create`.
    pub const CREATABLE: &'static [FieldType] = &[
        FieldType::String,
        FieldType::Text,
        FieldType::Integer,
        FieldType::BigInt,
        FieldType::Float,
        FieldType::Double,
        FieldType::Decimal,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::DateTime,
        FieldType::DateTimeNoTz,
        FieldType::Time,
        FieldType::Json,
        FieldType::Uuid,
        FieldType::Array,
    ];

    /// The wire name (`bigInt`, `datetime`, …).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::BigInt => "bigInt",
            FieldType::Float => "float",
            FieldType::Double => "double",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::DateTimeNoTz => "datetimeNoTz",
            FieldType::Time => "time",
            FieldType::Json => "json",
            FieldType::Uuid => "uuid",
            FieldType::Array => "array",
            FieldType::Binary => "binary",
        }
    }

    /// Parses a wire name, accepting NocoBase's aliases (`dateOnly`, `datetimeTz`, `jsonb`, …).
    pub fn parse(name: &str) -> Option<FieldType> {
        Some(match name {
            "string" | "uid" | "nanoid" => FieldType::String,
            "text" => FieldType::Text,
            "integer" | "sort" => FieldType::Integer,
            "bigInt" | "snowflakeId" => FieldType::BigInt,
            "float" | "real" => FieldType::Float,
            "double" => FieldType::Double,
            "decimal" => FieldType::Decimal,
            "boolean" => FieldType::Boolean,
            "date" | "dateOnly" => FieldType::Date,
            "datetime" | "datetimeTz" => FieldType::DateTime,
            "datetimeNoTz" => FieldType::DateTimeNoTz,
            "time" => FieldType::Time,
            "json" | "jsonb" => FieldType::Json,
            "uuid" => FieldType::Uuid,
            "array" | "set" => FieldType::Array,
            "binary" | "blob" => FieldType::Binary,
            _ => return None,
        })
    }

    /// NocoBase's default UI interface for the type (metadata only).
    pub fn interface(self) -> &'static str {
        match self {
            FieldType::String => "input",
            FieldType::Text => "textarea",
            FieldType::Integer | FieldType::BigInt => "integer",
            FieldType::Float | FieldType::Double | FieldType::Decimal => "number",
            FieldType::Boolean => "checkbox",
            FieldType::Date => "dateOnly",
            FieldType::DateTime => "datetime",
            FieldType::DateTimeNoTz => "datetimeNoTz",
            FieldType::Time => "time",
            FieldType::Json | FieldType::Array => "json",
            FieldType::Uuid => "uuid",
            FieldType::Binary => "",
        }
    }

    /// Whether values of this type are text, so string operators and `''`-emptiness apply.
    pub fn is_textual(self) -> bool {
        matches!(self, FieldType::String | FieldType::Text | FieldType::Uuid)
    }

    /// Whether values of this type are numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Integer
                | FieldType::BigInt
                | FieldType::Float
                | FieldType::Double
                | FieldType::Decimal
        )
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for FieldType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One attribute of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The attribute name clients use.
    pub name: String,
    /// The physical column name (usually equal to `name`).
    pub column: String,
    /// The storage type.
    pub field_type: FieldType,
    /// The database's own type string, as introspected (`VARCHAR(255)`, `BIGINT`, …).
    pub raw_type: String,
    /// Part of the primary key.
    pub primary_key: bool,
    /// Filled by the database (auto-increment / identity / serial).
    pub auto_increment: bool,
    /// May hold NULL (or has a default, so may be omitted on create).
    pub allow_null: bool,
    /// Covered by a single-column unique constraint.
    pub unique: bool,
    /// Never rendered in responses (passwords).
    pub hidden: bool,
}

impl Field {
    /// A nullable, non-key field whose column equals its name.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        let name = name.into();
        Self {
            column: name.clone(),
            raw_type: String::new(),
            name,
            field_type,
            primary_key: false,
            auto_increment: false,
            allow_null: true,
            unique: false,
            hidden: false,
        }
    }

    /// The field options clients see in `collections:list` and `fields:list`.
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.field_type));
        out.insert("interface".into(), json!(self.field_type.interface()));
        if !self.raw_type.is_empty() {
            out.insert("rawType".into(), json!(self.raw_type));
        }
        if self.column != self.name {
            out.insert("field".into(), json!(self.column));
        }
        out.insert("primaryKey".into(), json!(self.primary_key));
        out.insert("autoIncrement".into(), json!(self.auto_increment));
        out.insert("allowNull".into(), json!(self.allow_null));
        out.insert("unique".into(), json!(self.unique));
        if self.hidden {
            out.insert("hidden".into(), json!(true));
        }
        Json::Object(out)
    }
}

/// Marks the fields that address a record (`primary_key`, and `unique` on a single-field
/// key): the table's primary key; without one, the key clients rely on for
/// `filterTargetKey` (spec §5.5): the single auto-increment field, else the single unique
/// field, else a view's `id` column. Connectors call it once per introspected table.
pub fn mark_key(fields: &mut [Field], primary_key: &[String], unique: &[String], is_view: bool) {
    let only = |pick: &dyn Fn(&Field) -> bool| -> Option<String> {
        match fields
            .iter()
            .filter(|f| pick(f))
            .collect::<Vec<_>>()
            .as_slice()
        {
            [one] => Some(one.name.clone()),
            _ => None,
        }
    };
    let key: Vec<String> = if primary_key.is_empty() {
        only(&|f| f.auto_increment)
            .or_else(|| only(&|f| unique.contains(&f.name)))
            .or_else(|| is_view.then(|| only(&|f| f.name == "id")).flatten())
            .into_iter()
            .collect()
    } else {
        primary_key.to_vec()
    };
    for field in fields.iter_mut() {
        field.primary_key = key.contains(&field.name);
        field.unique = (field.primary_key && key.len() == 1) || unique.contains(&field.name);
    }
}

/// Collection-level options that change how actions behave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionOptions {
    /// `list` skips COUNT and answers `meta.hasNext` (for very large tables).
    pub simple_paginate: bool,
}

/// The schema of one table, view or document collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    name: String,
    table: TableName,
    fields: Vec<Field>,
    by_name: HashMap<String, usize>,
    primary_key: Vec<usize>,
    created_at: Option<usize>,
    updated_at: Option<usize>,
    /// Behaviour options.
    pub options: CollectionOptions,
    /// True for views: read-only.
    pub is_view: bool,
    /// Foreign keys declared on the table, as introspected.
    pub foreign_keys: Vec<ForeignKey>,
    /// Relations to other collections, derived from foreign keys (see
    /// [`crate::associations`]) or declared by users.
    pub associations: Vec<Association>,
    /// Relations declared to collections of other data sources. They are kept apart from
    /// [`Collection::associations`], which every same-source path (joins, association
    /// resources, nested writes) resolves in this collection's own source; only what
    /// knows how to reach another source follows these.
    pub remote_associations: Vec<Association>,
}

/// A foreign key of a table: its columns reference columns of another table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The referencing columns, in key order.
    pub columns: Vec<String>,
    /// The referenced table (as its collection is named in the same data source).
    pub target: String,
    /// The referenced columns, in key order.
    pub target_columns: Vec<String>,
}

/// How two collections relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssociationKind {
    /// This collection's foreign key points at one target row.
    BelongsTo,
    /// One target row's foreign key points at this row (the key is unique).
    HasOne,
    /// Many target rows' foreign keys point at this row.
    HasMany,
    /// Rows of a junction table link this row to many target rows.
    BelongsToMany,
}

impl AssociationKind {
    /// The wire name (`belongsTo`, …).
    pub fn name(self) -> &'static str {
        match self {
            AssociationKind::BelongsTo => "belongsTo",
            AssociationKind::HasOne => "hasOne",
            AssociationKind::HasMany => "hasMany",
            AssociationKind::BelongsToMany => "belongsToMany",
        }
    }

    /// Whether the association holds at most one target.
    pub fn is_to_one(self) -> bool {
        matches!(self, AssociationKind::BelongsTo | AssociationKind::HasOne)
    }
}

/// A relation from this collection (the source) to another (the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// The name clients use in paths, `appends` and filters (`author`, `comments`).
    pub name: String,
    /// What kind of relation.
    pub kind: AssociationKind,
    /// The target collection.
    pub target: String,
    /// The foreign-key column: on the source for belongsTo, on the target for
    /// hasOne/hasMany, on the junction (pointing at the source) for belongsToMany.
    pub foreign_key: String,
    /// The source column the foreign key refers to (hasOne, hasMany, belongsToMany).
    pub source_key: String,
    /// The target column referred to (belongsTo, belongsToMany).
    pub target_key: String,
    /// The junction collection (belongsToMany).
    pub through: Option<String>,
    /// The junction column pointing at the target (belongsToMany).
    pub other_key: Option<String>,
    /// The data source the target lives in, for a relation to another source
    /// (`targetDataSource`); `None` for the collection's own source.
    pub target_source: Option<String>,
    /// For a belongsToMany to another source whose junction lives with the target
    /// (`throughDataSource`): that source. `None` when the junction is in this
    /// collection's own source.
    pub through_source: Option<String>,
}

impl Association {
    /// The association as clients see it among a collection's fields.
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.kind.name()));
        out.insert("target".into(), json!(self.target));
        out.insert("foreignKey".into(), json!(self.foreign_key));
        out.insert("sourceKey".into(), json!(self.source_key));
        out.insert("targetKey".into(), json!(self.target_key));
        if let Some(through) = &self.through {
            out.insert("through".into(), json!(through));
        }
        if let Some(other) = &self.other_key {
            out.insert("otherKey".into(), json!(other));
        }
        if let Some(source) = &self.target_source {
            out.insert("targetDataSource".into(), json!(source));
        }
        if let Some(source) = &self.through_source {
            out.insert("throughDataSource".into(), json!(source));
        }
        Json::Object(out)
    }
}

/// Where a collection lives in its database: an optional schema and a table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    /// Database schema (`public`, `dbo`, …); `None` means the connection's default.
    pub schema: Option<String>,
    /// The physical table name.
    pub name: String,
}

impl TableName {
    /// A table in the default schema.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            schema: None,
            name: name.into(),
        }
    }
}

impl Collection {
    /// Builds a collection; fails when two fields share a name.
    pub fn new(name: impl Into<String>, table: TableName, fields: Vec<Field>) -> Result<Self> {
        let name = name.into();
        let mut by_name = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            if by_name.insert(f.name.clone(), i).is_some() {
                return Err(Error::bad_request(format!(
                    "collection {name} has two fields named {}",
                    f.name
                )));
            }
        }
        let primary_key = (0..fields.len())
            .filter(|&i| fields[i].primary_key)
            .collect();
        // Timestamps are recognised by convention so they survive a restart without
        // separate metadata: a datetime field with one of these names is filled on write.
        let find_ts = |names: &[&str]| {
            names.iter().find_map(|n| {
                by_name
                    .get(*n)
                    .copied()
                    .filter(|&i| fields[i].field_type == FieldType::DateTime)
            })
        };
        let created_at = find_ts(&["createdAt", "created_at"]);
        let updated_at = find_ts(&["updatedAt", "updated_at"]);
        Ok(Self {
            name,
            table,
            fields,
            by_name,
            primary_key,
            created_at,
            updated_at,
            options: CollectionOptions::default(),
            is_view: false,
            foreign_keys: Vec::new(),
            associations: Vec::new(),
            remote_associations: Vec::new(),
        })
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The physical table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// All fields in schema order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The field called `name`, if any.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    /// Marks the field called `name` hidden: never rendered, filtered or sorted by, but
    /// still written. Returns false when there is no such field.
    pub fn hide_field(&mut self, name: &str) -> bool {
        match self.by_name.get(name) {
            Some(&i) => {
                self.fields[i].hidden = true;
                true
            }
            None => false,
        }
    }

    /// Makes every field visible again (for the service's own lookups of hidden values).
    pub fn unhide_all(&mut self) {
        for field in &mut self.fields {
            field.hidden = false;
        }
    }

    /// The field called `name`, or a 400 naming it and the collection.
    pub fn require_field(&self, name: &str, context: &str) -> Result<&Field> {
        self.field(name).ok_or_else(|| {
            Error::bad_request(format!(
                "{context}: unknown field {name:?} in collection {}",
                self.name
            ))
        })
    }

    /// Primary-key fields, in schema order (empty for keyless tables).
    pub fn primary_key(&self) -> impl ExactSizeIterator<Item = &Field> {
        self.primary_key.iter().map(|&i| &self.fields[i])
    }

    /// The single primary-key field that `filterByTk` addresses, if the key is not composite.
    pub fn single_key(&self) -> Option<&Field> {
        match self.primary_key.as_slice() {
            [i] => Some(&self.fields[*i]),
            _ => None,
        }
    }

    /// The field filled with the creation time, if the collection has one.
    pub fn created_at(&self) -> Option<&Field> {
        self.created_at.map(|i| &self.fields[i])
    }

    /// The field filled with the last update time, if the collection has one.
    pub fn updated_at(&self) -> Option<&Field> {
        self.updated_at.map(|i| &self.fields[i])
    }

    /// The association called `name`, if any.
    pub fn association(&self, name: &str) -> Option<&Association> {
        self.associations.iter().find(|a| a.name == name)
    }

    /// The relation to another data source called `name`, if any.
    pub fn remote_association(&self, name: &str) -> Option<&Association> {
        self.remote_associations.iter().find(|a| a.name == name)
    }

    /// The relation called `name`, to this source or another.
    pub fn relation(&self, name: &str) -> Option<&Association> {
        self.association(name)
            .or_else(|| self.remote_association(name))
    }

    /// Whether a field or a relation of either kind is called `name`.
    pub fn has_name(&self, name: &str) -> bool {
        self.field(name).is_some()
            || self.association(name).is_some()
            || self.remote_association(name).is_some()
    }

    /// The collection as clients see it in `collections:list`.
    pub fn to_json(&self) -> Json {
        let key: Vec<&str> = self.primary_key().map(|f| f.name.as_str()).collect();
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("tableName".into(), json!(self.table.name));
        if let Some(schema) = &self.table.schema {
            out.insert("schema".into(), json!(schema));
        }
        out.insert(
            "filterTargetKey".into(),
            match key.as_slice() {
                [] => Json::Null,
                [one] => json!(one),
                many => json!(many),
            },
        );
        out.insert("view".into(), json!(self.is_view));
        out.insert("simplePaginate".into(), json!(self.options.simple_paginate));
        out.insert(
            "fields".into(),
            Json::Array(
                self.fields
                    .iter()
                    .map(Field::to_json)
                    .chain(self.associations.iter().map(Association::to_json))
                    .chain(self.remote_associations.iter().map(Association::to_json))
                    .collect(),
            ),
        );
        Json::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(fields: &[Field]) -> Vec<&str> {
        fields
            .iter()
            .filter(|f| f.primary_key)
            .map(|f| f.name.as_str())
            .collect()
    }

    #[test]
    fn key_fallbacks_follow_the_spec_order() {
        let field = |name: &str, auto: bool| {
            let mut f = Field::new(name, FieldType::Integer);
            f.auto_increment = auto;
            f
        };
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

        let mut fields = vec![field("a", false), field("b", false)];
        mark_key(&mut fields, &names(&["a", "b"]), &[], false);
        assert_eq!(keys(&fields), ["a", "b"], "a composite primary key");
        assert!(
            !fields[0].unique,
            "a member of a composite key is not unique alone"
        );

        let mut fields = vec![field("id", false), field("seq", true), field("code", false)];
        mark_key(&mut fields, &[], &names(&["code"]), false);
        assert_eq!(
            keys(&fields),
            ["seq"],
            "the single auto-increment field first"
        );

        let mut fields = vec![field("id", false), field("code", false)];
        mark_key(&mut fields, &[], &names(&["code"]), false);
        assert_eq!(keys(&fields), ["code"], "else the single unique field");

        let mut fields = vec![field("id", false), field("x", false)];
        mark_key(&mut fields, &[], &[], true);
        assert_eq!(keys(&fields), ["id"], "else a view's id");
        mark_key(&mut fields, &[], &[], false);
        assert!(
            keys(&fields).is_empty(),
            "a table gets no key by name alone"
        );
    }
}
