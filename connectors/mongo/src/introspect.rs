//! Schemas of schemaless collections: fields inferred from a sample of documents, merged
//! with the definitions Manifold stored for the collections it created.
//!
//! Inference rules, per top-level field of the sampled documents:
//! * one BSON type: `string` → string, `int` → integer, `long` → bigInt, `double` →
//!   double, `decimal` → decimal, `bool` → boolean, `date` → datetime, `objectId` →
//!   string (raw type `objectId`: rendered as hex, hex converted back on input),
//!   `binData` → binary, embedded document → json, array → array;
//! * numbers of several types widen (`int` < `long` < `double` < `decimal`);
//! * text mixed with ObjectIds (references written as either) → string, whose equality
//!   filters match a hex operand in both forms;
//! * any other mix, or only nulls, → json;
//! * names that MongoDB queries cannot address literally (empty, starting with `$`,
//!   containing `.`) are left out;
//! * `_id` is the primary key; it is "auto-increment" (generated when absent) when it
//!   holds ObjectIds or when the collection is empty.

use std::collections::{BTreeSet, HashMap};

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::{Error, Result};
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use mongodb::IndexModel;
use mongodb::bson::{Bson, Document, doc};

use crate::codec::{OBJECT_ID, Storage, bson_to_json, to_bson};
use crate::error::Names;

/// The collection holding the definitions of collections created through Manifold, one
/// document per collection keyed by its name.
pub const SCHEMAS: &str = "_manifold_schemas";

/// The field of a [`SCHEMAS`] document counting the integer keys handed out so far.
pub(crate) const SEQUENCE: &str = "sequence";

/// The `raw_type` of a generated integer key.
pub(crate) const INTEGER_KEY: &str = "long";

/// What Manifold knows about a collection beyond its schema.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    /// Declared defaults, by stored field, applied to created documents that lack them.
    pub defaults: Vec<(String, Bson)>,
    /// Attribute and index names for error messages.
    pub names: Names,
}

/// A collection definition as stored in [`SCHEMAS`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Declared {
    pub auto_gen_id: bool,
    pub timestamps: bool,
    pub fields: Vec<FieldDefinition>,
    /// The generated key is an integer `id` numbered from [`SEQUENCE`], not an ObjectId.
    pub integer_key: bool,
}

impl From<&CollectionDefinition> for Declared {
    fn from(def: &CollectionDefinition) -> Self {
        Self {
            auto_gen_id: def.auto_gen_id,
            timestamps: def.timestamps,
            fields: def.fields.clone(),
            integer_key: false,
        }
    }
}

/// The [`SCHEMAS`] document of a definition.
pub(crate) fn declared_document(name: &str, declared: &Declared) -> Document {
    let fields: Vec<Bson> = declared
        .fields
        .iter()
        .map(|f| {
            let mut d = doc! {
                "name": &f.name,
                "type": f.field_type.name(),
                "primaryKey": f.primary_key,
                "allowNull": f.allow_null,
                "unique": f.unique,
            };
            if let Some(v) = &f.default_value {
                // Stored as the API renders it, and read back through the same parser.
                d.insert("defaultValue", crate::codec::json_to_bson(&v.to_json()));
            }
            if let Some(length) = f.length {
                d.insert("length", i64::from(length));
            }
            if let Some((precision, scale)) = f.precision {
                d.insert("precision", i32::from(precision));
                d.insert("scale", i32::from(scale));
            }
            Bson::Document(d)
        })
        .collect();
    let mut stored = doc! {
        "_id": name,
        "autoGenId": declared.auto_gen_id,
        "timestamps": declared.timestamps,
        "fields": fields,
    };
    if declared.integer_key {
        stored.insert("keyType", "integer");
    }
    stored
}

/// Reads a [`SCHEMAS`] document; `None` (with a warning) when it is not one Manifold wrote.
pub(crate) fn declared_from_document(stored: &Document) -> Option<(String, Declared)> {
    let name = stored.get_str("_id").ok()?.to_owned();
    let read = || -> Result<Declared> {
        let fields = stored
            .get_array("fields")
            .map_err(|_| Error::internal("no fields array"))?
            .iter()
            .enumerate()
            .map(|(i, f)| FieldDefinition::from_json(&bson_to_json(f), &format!("fields.{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Declared {
            auto_gen_id: stored.get_bool("autoGenId").unwrap_or(true),
            timestamps: stored.get_bool("timestamps").unwrap_or(false),
            fields,
            integer_key: stored.get_str("keyType").is_ok_and(|k| k == "integer"),
        })
    };
    match read() {
        Ok(declared) => Some((name, declared)),
        Err(e) => {
            tracing::warn!(collection = %name, error = %e, "ignoring an unreadable stored collection definition");
            None
        }
    }
}

/// The BSON type a declared field is stored as (its `raw_type`).
fn stored_type(t: FieldType) -> &'static str {
    match t {
        FieldType::String | FieldType::Text | FieldType::Uuid | FieldType::Time => "string",
        FieldType::Integer => "int",
        FieldType::BigInt => "long",
        FieldType::Float | FieldType::Double => "double",
        FieldType::Decimal => "decimal",
        FieldType::Boolean => "bool",
        FieldType::Date | FieldType::DateTime | FieldType::DateTimeNoTz => "date",
        FieldType::Json => "object",
        FieldType::Array => "array",
        FieldType::Binary => "binData",
    }
}

/// The generated integer key of a collection declared with `integer_key`: attribute `id`,
/// stored as `_id`.
fn integer_key() -> Field {
    let mut id = Field::new("id", FieldType::BigInt);
    id.column = "_id".into();
    id.raw_type = INTEGER_KEY.into();
    id.primary_key = true;
    id.auto_increment = true;
    id.allow_null = false;
    id.unique = true;
    id
}

/// The generated key every document has unless a definition names its own.
fn object_id_key() -> Field {
    let mut id = Field::new("_id", FieldType::String);
    id.raw_type = OBJECT_ID.into();
    id.primary_key = true;
    id.auto_increment = true;
    id.allow_null = false;
    id.unique = true;
    id
}

/// The fields of a declared collection, in the order clients see them: the key (`_id`,
/// or the declared key field stored as `_id`), the declared fields, then `createdAt` and
/// `updatedAt` when the definition has timestamps.
pub(crate) fn declared_fields(declared: &Declared) -> Result<Vec<Field>> {
    let keys: Vec<&FieldDefinition> = declared.fields.iter().filter(|f| f.primary_key).collect();
    if keys.len() > 1 {
        return Err(Error::bad_request(
            "values.fields: a MongoDB collection has a single key (stored as _id); mark one field as primaryKey",
        ));
    }
    let mut fields = Vec::with_capacity(declared.fields.len() + 3);
    match keys.first() {
        Some(key) => {
            let mut f = Field::new(key.name.clone(), key.field_type);
            f.column = "_id".into();
            f.raw_type = stored_type(key.field_type).into();
            f.primary_key = true;
            f.allow_null = false;
            f.unique = true;
            fields.push(f);
        }
        None if declared.integer_key => fields.push(integer_key()),
        None => fields.push(object_id_key()),
    }
    for d in declared.fields.iter().filter(|f| !f.primary_key) {
        let mut f = Field::new(d.name.clone(), d.field_type);
        f.raw_type = stored_type(d.field_type).into();
        f.allow_null = d.allow_null;
        f.unique = d.unique;
        fields.push(f);
    }
    if declared.timestamps {
        for name in ["createdAt", "updatedAt"] {
            if !fields.iter().any(|f| f.name == name) {
                let mut f = Field::new(name, FieldType::DateTime);
                f.raw_type = "date".into();
                fields.push(f);
            }
        }
    }
    Ok(fields)
}

/// The `$jsonSchema` validator that keeps declared non-null fields present and non-null,
/// or `None` when every field may be null.
pub(crate) fn validator(declared: &Declared) -> Option<Document> {
    let required: Vec<&str> = declared
        .fields
        .iter()
        .filter(|f| !f.allow_null && !f.primary_key)
        .map(|f| f.name.as_str())
        .collect();
    if required.is_empty() {
        return None;
    }
    let properties: Document = required
        .iter()
        .map(|name| {
            (
                name.to_string(),
                Bson::Document(doc! {"not": {"bsonType": "null"}}),
            )
        })
        .collect();
    Some(doc! { "$jsonSchema": { "required": required, "properties": properties } })
}

/// A BSON type class, for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Int32,
    Int64,
    Double,
    Decimal,
    String,
    Bool,
    Date,
    ObjectId,
    Binary,
    Document,
    Array,
    Other,
}

impl Kind {
    fn of(b: &Bson) -> Option<Kind> {
        Some(match b {
            Bson::Null | Bson::Undefined => return None,
            Bson::Int32(_) => Kind::Int32,
            Bson::Int64(_) => Kind::Int64,
            Bson::Double(_) => Kind::Double,
            Bson::Decimal128(_) => Kind::Decimal,
            Bson::String(_) => Kind::String,
            Bson::Boolean(_) => Kind::Bool,
            Bson::DateTime(_) => Kind::Date,
            Bson::ObjectId(_) => Kind::ObjectId,
            Bson::Binary(_) => Kind::Binary,
            Bson::Document(_) => Kind::Document,
            Bson::Array(_) => Kind::Array,
            _ => Kind::Other,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Int32 => "int",
            Kind::Int64 => "long",
            Kind::Double => "double",
            Kind::Decimal => "decimal",
            Kind::String => "string",
            Kind::Bool => "bool",
            Kind::Date => "date",
            Kind::ObjectId => OBJECT_ID,
            Kind::Binary => "binData",
            Kind::Document => "object",
            Kind::Array => "array",
            Kind::Other => "other",
        }
    }

    fn is_number(self) -> bool {
        self <= Kind::Decimal
    }
}

/// The type of a field that held `kinds` across the sample.
fn resolve(kinds: &BTreeSet<Kind>) -> (FieldType, String) {
    let raw = kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("|");
    let field_type = match kinds.iter().collect::<Vec<_>>().as_slice() {
        [] => FieldType::Json,
        [only] => match only {
            Kind::Int32 => FieldType::Integer,
            Kind::Int64 => FieldType::BigInt,
            Kind::Double => FieldType::Double,
            Kind::Decimal => FieldType::Decimal,
            Kind::String | Kind::ObjectId => FieldType::String,
            Kind::Bool => FieldType::Boolean,
            Kind::Date => FieldType::DateTime,
            Kind::Binary => FieldType::Binary,
            Kind::Array => FieldType::Array,
            Kind::Document | Kind::Other => FieldType::Json,
        },
        // References some applications store as ObjectIds and others as their hex text:
        // text, whose filters match both forms (see `Compiler::equal_forms`).
        [Kind::String, Kind::ObjectId] => FieldType::String,
        many if many.iter().all(|k| k.is_number()) => match many.iter().max() {
            Some(Kind::Int64) => FieldType::BigInt,
            Some(Kind::Double) => FieldType::Double,
            Some(Kind::Decimal) => FieldType::Decimal,
            _ => FieldType::Integer,
        },
        _ => FieldType::Json,
    };
    let raw = if kinds.is_empty() {
        "null".to_owned()
    } else {
        raw
    };
    (field_type, raw)
}

/// Whether a stored field name can be used as a query path literally.
fn addressable(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('$') && !name.contains('.') && !name.contains('\0')
}

/// Fields inferred from `sample`, oldest document first (so fields keep the order in
/// which documents introduced them); `_id` first.
pub(crate) fn infer(sample: &[Document]) -> Vec<Field> {
    let mut order: Vec<String> = vec!["_id".to_owned()];
    let mut kinds: HashMap<String, BTreeSet<Kind>> = HashMap::new();
    for doc in sample {
        for (key, value) in doc {
            if !addressable(key) {
                continue;
            }
            let seen = kinds.entry(key.clone()).or_default();
            if seen.is_empty() && !order.iter().any(|k| k == key) {
                order.push(key.clone());
            }
            if let Some(kind) = Kind::of(value) {
                seen.insert(kind);
            }
        }
    }
    order
        .into_iter()
        .map(|name| {
            let seen = kinds.remove(&name).unwrap_or_default();
            if name == "_id" {
                return if seen.is_empty() || seen.iter().eq([Kind::ObjectId].iter()) {
                    object_id_key()
                } else {
                    let (field_type, raw) = resolve(&seen);
                    let mut id = Field::new("_id", field_type);
                    id.raw_type = raw;
                    id.primary_key = true;
                    id.allow_null = false;
                    id.unique = true;
                    id
                };
            }
            let (field_type, raw) = resolve(&seen);
            let mut f = Field::new(name, field_type);
            f.raw_type = raw;
            f
        })
        .collect()
}

/// The schema of collection `name` from its sample, its indexes and its stored
/// definition (whose fields and types win over the sample's), with the extras its
/// repository needs.
pub(crate) fn build(
    name: &str,
    is_view: bool,
    declared: Option<&Declared>,
    sample: &[Document],
    indexes: &[IndexModel],
) -> Result<(Collection, Extras)> {
    let mut fields = match declared {
        Some(d) => declared_fields(d)?,
        None => Vec::new(),
    };
    for f in infer(sample) {
        if !fields
            .iter()
            .any(|known| known.column == f.column || known.name == f.name)
        {
            fields.push(f);
        }
    }
    let mut names = Names::default();
    for index in indexes {
        let unique = index.options.as_ref().and_then(|o| o.unique) == Some(true);
        if !unique {
            continue;
        }
        let columns: Vec<String> = index.keys.keys().cloned().collect();
        if let [column] = columns.as_slice()
            && let Some(f) = fields.iter_mut().find(|f| &f.column == column)
        {
            f.unique = true;
        }
        if let Some(index_name) = index.options.as_ref().and_then(|o| o.name.clone()) {
            names.unique_indexes.insert(index_name, columns);
        }
    }
    for f in &fields {
        names.attributes.insert(f.column.clone(), f.name.clone());
    }
    let mut defaults = Vec::new();
    if let Some(d) = declared {
        for f in &d.fields {
            if let (Some(value), Some(field)) =
                (&f.default_value, fields.iter().find(|x| x.name == f.name))
            {
                let storage = Storage {
                    field_type: field.field_type,
                    object_id: field.raw_type == OBJECT_ID,
                };
                defaults.push((field.column.clone(), to_bson(storage, value)?));
            }
        }
    }
    let mut collection = Collection::new(name, TableName::new(name), fields)?;
    collection.is_view = is_view;
    Ok((collection, Extras { defaults, names }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifold_core::value::Value;
    use mongodb::bson::oid::ObjectId;

    fn types(fields: &[Field]) -> Vec<(String, FieldType, String)> {
        fields
            .iter()
            .map(|f| (f.name.clone(), f.field_type, f.raw_type.clone()))
            .collect()
    }

    #[test]
    fn sampling_infers_types_and_widens_numbers() {
        let sample = vec![
            doc! {"_id": ObjectId::new(), "name": "a", "n": 1, "mixed": 1, "tags": ["x"], "meta": {"a": 1}, "gone": Bson::Null},
            doc! {"_id": ObjectId::new(), "name": "b", "n": 2.5, "mixed": "one", "$bad": 1, "a.b": 2, "big": 1_i64},
        ];
        let fields = infer(&sample);
        assert_eq!(
            types(&fields),
            vec![
                ("_id".into(), FieldType::String, OBJECT_ID.into()),
                ("name".into(), FieldType::String, "string".into()),
                ("n".into(), FieldType::Double, "int|double".into()),
                ("mixed".into(), FieldType::Json, "int|string".into()),
                ("tags".into(), FieldType::Array, "array".into()),
                ("meta".into(), FieldType::Json, "object".into()),
                ("gone".into(), FieldType::Json, "null".into()),
                ("big".into(), FieldType::BigInt, "long".into()),
            ]
        );
        assert!(fields[0].primary_key && fields[0].auto_increment);
    }

    #[test]
    fn string_keys_are_not_generated() {
        let fields = infer(&[doc! {"_id": "k1"}]);
        assert!(fields[0].primary_key && !fields[0].auto_increment);
        assert_eq!(fields[0].field_type, FieldType::String);
        assert_eq!(fields[0].raw_type, "string");
    }

    #[test]
    fn declared_definitions_round_trip_and_win_over_the_sample() {
        let mut code = FieldDefinition::new("code", FieldType::String);
        code.primary_key = true;
        code.allow_null = false;
        let mut status = FieldDefinition::new("status", FieldType::String);
        status.default_value = Some(Value::Text("draft".into()));
        let declared = Declared {
            auto_gen_id: false,
            timestamps: true,
            fields: vec![
                code,
                status,
                FieldDefinition::new("score", FieldType::Integer),
            ],
            integer_key: false,
        };
        let stored = declared_document("things", &declared);
        let (name, read) = declared_from_document(&stored).expect("readable");
        assert_eq!(name, "things");
        assert_eq!(read, declared);
        let (collection, extras) = build(
            "things",
            false,
            Some(&read),
            &[doc! {"_id": "k", "score": 1.5, "extra": true}],
            &[],
        )
        .expect("builds");
        let names: Vec<&str> = collection
            .fields()
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["code", "status", "score", "createdAt", "updatedAt", "extra"]
        );
        assert_eq!(
            collection.single_key().map(|k| k.column.as_str()),
            Some("_id")
        );
        assert_eq!(
            collection.field("score").map(|f| f.field_type),
            Some(FieldType::Integer)
        );
        assert_eq!(
            extras.defaults,
            vec![("status".to_owned(), Bson::String("draft".into()))]
        );
        assert_eq!(
            extras.names.attributes.get("_id").map(String::as_str),
            Some("code")
        );
    }
}
