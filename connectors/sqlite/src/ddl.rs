//! `CREATE TABLE` for a collection definition, in SQLite's type names.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::Result;
use manifold_core::schema::FieldType;
use manifold_core::schema::TableName;
use manifold_core::value::{Value, format_instant};
use manifold_sql::Dialect;
use manifold_sql::ddl::{self, ColumnWriter, standard_column};

/// The declared type Manifold writes for `field`; [`crate::introspect::field_type`] reads
/// it back to the same field type.
fn declared_type(field: &FieldDefinition) -> String {
    match field.field_type {
        FieldType::String => format!("VARCHAR({})", field.length.unwrap_or(255)),
        FieldType::Text => "TEXT".into(),
        FieldType::Integer => "INTEGER".into(),
        FieldType::BigInt => "BIGINT".into(),
        FieldType::Float => "FLOAT".into(),
        FieldType::Double => "DOUBLE".into(),
        FieldType::Decimal => match field.precision {
            Some((p, s)) => format!("DECIMAL({p}, {s})"),
            None => "DECIMAL".into(),
        },
        FieldType::Boolean => "BOOLEAN".into(),
        FieldType::Date => "DATE".into(),
        FieldType::DateTime => "DATETIME".into(),
        FieldType::DateTimeNoTz => "TIMESTAMP WITHOUT TIME ZONE".into(),
        FieldType::Time => "TIME".into(),
        // "TEXT" in the name gives the column text affinity; plain JSON would be NUMERIC,
        // and SQLite would turn a bare JSON number into a lossy REAL.
        FieldType::Json => "JSON_TEXT".into(),
        FieldType::Array => "ARRAY".into(),
        FieldType::Uuid => "UUID".into(),
        FieldType::Binary => "BLOB".into(),
    }
}

/// A default value as a SQL literal. SQLite cannot bind parameters in DDL, so the literal is
/// written from the typed value: numbers and booleans by us, text with quotes doubled.
fn literal(value: &Value) -> String {
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(s) | Value::Text(s) => text(s),
        Value::Json(j) => text(&j.to_string()),
        Value::Date(d) => text(&d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) => text(&format_instant(t)),
        Value::DateTimeNoTz(t) => text(&t.format("%Y-%m-%d %H:%M:%S").to_string()),
        Value::Time(t) => text(&t.format("%H:%M:%S").to_string()),
        Value::Uuid(u) => text(&u.hyphenated().to_string()),
        Value::Bytes(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
    }
}

/// Writes SQLite columns.
pub struct SqliteColumns;

impl ColumnWriter for SqliteColumns {
    fn dialect(&self) -> &'static dyn Dialect {
        &crate::SqliteDialect
    }

    fn id_column(&self) -> String {
        "\"id\" INTEGER PRIMARY KEY AUTOINCREMENT".into()
    }

    fn column(&self, field: &FieldDefinition, inline_key: bool) -> Result<String> {
        Ok(standard_column(
            &crate::SqliteDialect,
            field,
            inline_key,
            &declared_type(field),
            field.default_value.as_ref().map(literal),
        ))
    }
}

/// The `CREATE TABLE` statement for `definition` (already validated by the core).
pub fn create_table(definition: &CollectionDefinition) -> Result<String> {
    ddl::create_table(
        &SqliteColumns,
        &TableName::new(&definition.name),
        definition,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_id_fields_and_timestamps() {
        let mut title = FieldDefinition::new("title", FieldType::String);
        title.allow_null = false;
        let mut status = FieldDefinition::new("status", FieldType::String);
        status.default_value = Some(Value::Text("it's draft".into()));
        let def = CollectionDefinition {
            name: "posts".into(),
            auto_gen_id: true,
            timestamps: true,
            fields: vec![title, status],
        };
        assert_eq!(
            create_table(&def).expect("valid"),
            "CREATE TABLE \"posts\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"title\" VARCHAR(255) NOT NULL, \"status\" VARCHAR(255) DEFAULT 'it''s draft', \"createdAt\" DATETIME, \"updatedAt\" DATETIME)"
        );
    }
}
