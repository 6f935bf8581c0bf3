//! The JSON schema of a field, of a record read from a collection, and of the values a
//! write accepts: what `swagger:get` says each collection holds.

use manifold_core::schema::{Collection, Field, FieldType};
use openapiv3::{
    AdditionalProperties, AnySchema, ArrayType, IntegerFormat, IntegerType, NumberType, ObjectType,
    ReferenceOr, Schema, SchemaData, SchemaKind, StringFormat, StringType, Type,
    VariantOrUnknownOrEmpty,
};

/// A schema of `kind`, with no other constraint.
pub fn of(kind: Type) -> Schema {
    Schema {
        schema_data: SchemaData::default(),
        schema_kind: SchemaKind::Type(kind),
    }
}

/// A schema any JSON value matches.
pub fn any() -> Schema {
    Schema {
        schema_data: SchemaData::default(),
        schema_kind: SchemaKind::Any(AnySchema::default()),
    }
}

/// A string schema with `format`.
pub fn string(format: Option<StringFormat>) -> Schema {
    of(Type::String(StringType {
        format: format.map_or(
            VariantOrUnknownOrEmpty::Empty,
            VariantOrUnknownOrEmpty::Item,
        ),
        ..StringType::default()
    }))
}

/// A string whose format is not one OpenAPI names (`date-time` without a zone, `time`).
fn string_named(format: &str) -> Schema {
    of(Type::String(StringType {
        format: VariantOrUnknownOrEmpty::Unknown(format.to_owned()),
        ..StringType::default()
    }))
}

/// An integer schema with `format`.
pub fn integer(format: IntegerFormat) -> Schema {
    of(Type::Integer(IntegerType {
        format: VariantOrUnknownOrEmpty::Item(format),
        ..IntegerType::default()
    }))
}

/// One of `schemas`.
fn one_of(schemas: Vec<Schema>) -> Schema {
    Schema {
        schema_data: SchemaData::default(),
        schema_kind: SchemaKind::OneOf {
            one_of: schemas.into_iter().map(ReferenceOr::Item).collect(),
        },
    }
}

/// An object with `properties`, open to others (appends add relation values).
pub fn object(properties: Vec<(String, Schema)>, required: Vec<String>) -> Schema {
    of(Type::Object(ObjectType {
        properties: properties
            .into_iter()
            .map(|(name, schema)| (name, ReferenceOr::Item(Box::new(schema))))
            .collect(),
        required,
        additional_properties: Some(AdditionalProperties::Any(true)),
        ..ObjectType::default()
    }))
}

/// An array of `items`.
pub fn array(items: ReferenceOr<Schema>) -> Schema {
    let items = match items {
        ReferenceOr::Item(schema) => ReferenceOr::Item(Box::new(schema)),
        ReferenceOr::Reference { reference } => ReferenceOr::Reference { reference },
    };
    of(Type::Array(ArrayType {
        items: Some(items),
        min_items: None,
        max_items: None,
        unique_items: false,
    }))
}

/// A reference to `#/components/schemas/<name>`.
pub fn reference<T>(name: &str) -> ReferenceOr<T> {
    ReferenceOr::Reference {
        reference: format!("#/components/schemas/{name}"),
    }
}

/// The record schema `name`, or null (OpenAPI 3.0 takes no `nullable` beside a `$ref`).
pub fn nullable(name: &str) -> Schema {
    Schema {
        schema_data: SchemaData {
            nullable: true,
            ..SchemaData::default()
        },
        schema_kind: SchemaKind::AllOf {
            all_of: vec![reference(name)],
        },
    }
}

/// The schema `name`, or a list of it.
pub fn one_or_many(name: &str) -> Schema {
    Schema {
        schema_data: SchemaData::default(),
        schema_kind: SchemaKind::AnyOf {
            any_of: vec![reference(name), ReferenceOr::Item(array(reference(name)))],
        },
    }
}

/// How a value of `field_type` is rendered in an answer (docs/data-sources.md's table).
fn rendered(field_type: FieldType) -> Schema {
    match field_type {
        FieldType::String | FieldType::Text => string(None),
        FieldType::Integer => integer(IntegerFormat::Int32),
        // Beyond 2^53 a big integer is a string, so clients keep every digit.
        FieldType::BigInt => one_of(vec![integer(IntegerFormat::Int64), string_named("int64")]),
        FieldType::Float | FieldType::Double => of(Type::Number(NumberType::default())),
        FieldType::Decimal => string_named("decimal"),
        FieldType::Boolean => of(Type::Boolean(Default::default())),
        FieldType::Date => string(Some(StringFormat::Date)),
        FieldType::DateTime => string(Some(StringFormat::DateTime)),
        FieldType::DateTimeNoTz => string_named("date-time-local"),
        FieldType::Time => string_named("time"),
        FieldType::Json => any(),
        FieldType::Uuid => string_named("uuid"),
        FieldType::Array => array(ReferenceOr::Item(any())),
        FieldType::Binary => string(Some(StringFormat::Byte)),
    }
}

/// What a write accepts for `field_type`: what an answer renders, and numbers where an
/// answer gives a string.
fn accepted(field_type: FieldType) -> Schema {
    match field_type {
        FieldType::Decimal => one_of(vec![
            string_named("decimal"),
            of(Type::Number(NumberType::default())),
        ]),
        other => rendered(other),
    }
}

/// The schema of `field` in a record read from its collection.
fn read(field: &Field, collection: &Collection) -> Schema {
    let mut schema = rendered(field.field_type);
    schema.schema_data.nullable = field.allow_null && !field.primary_key;
    schema.schema_data.read_only = collection.is_view || field.auto_increment;
    schema
}

/// The schema of a record of `collection`, limited to `fields` when a permission names
/// them.
pub fn record(collection: &Collection, fields: Option<&[String]>) -> Schema {
    let visible = |f: &&Field| !f.hidden && fields.is_none_or(|only| only.contains(&f.name));
    let properties = collection
        .fields()
        .iter()
        .filter(visible)
        .map(|f| (f.name.clone(), read(f, collection)))
        .collect();
    object(properties, Vec::new())
}

/// The values `create` and `update` accept for `collection`: every field a client may
/// write (not an auto-increment key), limited to `fields` when a permission names them.
/// Nothing is required: a database default or an update's absent field is not an error of
/// the document's to describe.
pub fn write(collection: &Collection, fields: Option<&[String]>) -> Schema {
    let properties = collection
        .fields()
        .iter()
        .filter(|f| !f.auto_increment && fields.is_none_or(|only| only.contains(&f.name)))
        .map(|f| {
            let mut schema = accepted(f.field_type);
            schema.schema_data.nullable = f.allow_null;
            (f.name.clone(), schema)
        })
        .collect();
    object(properties, Vec::new())
}
