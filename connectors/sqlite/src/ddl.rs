//! `CREATE TABLE` for a collection definition, in SQLite's type names.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::FieldType;
use manifold_core::value::{Value, format_instant};
use manifold_sql::{Dialect, SqlBuilder};

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

/// The `CREATE TABLE` statement for `definition` (already validated by the core).
pub fn create_table(definition: &CollectionDefinition) -> String {
    let mut b = SqlBuilder::new(Dialect::Sqlite);
    b.push("CREATE TABLE ").ident(&definition.name).push(" (");
    let mut columns: Vec<String> = Vec::new();
    let keys: Vec<&FieldDefinition> = definition.fields.iter().filter(|f| f.primary_key).collect();
    if definition.auto_gen_id {
        columns.push("\"id\" INTEGER PRIMARY KEY AUTOINCREMENT".into());
    }
    for field in &definition.fields {
        let mut col = SqlBuilder::new(Dialect::Sqlite);
        col.ident(&field.name).push(" ").push(&declared_type(field));
        if field.primary_key && keys.len() == 1 && !definition.auto_gen_id {
            col.push(" PRIMARY KEY");
        }
        if !field.allow_null {
            col.push(" NOT NULL");
        }
        if field.unique && !field.primary_key {
            col.push(" UNIQUE");
        }
        if let Some(default) = &field.default_value {
            col.push(" DEFAULT ").push(&literal(default));
        }
        columns.push(col.finish().text);
    }
    if definition.timestamps {
        columns.push("\"createdAt\" DATETIME".into());
        columns.push("\"updatedAt\" DATETIME".into());
    }
    if keys.len() > 1 && !definition.auto_gen_id {
        let mut pk = SqlBuilder::new(Dialect::Sqlite);
        pk.push("PRIMARY KEY (");
        pk.join(&keys, ", ", |b, f| {
            b.ident(&f.name);
        });
        pk.push(")");
        columns.push(pk.finish().text);
    }
    b.push(&columns.join(", ")).push(")");
    b.finish().text
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
            create_table(&def),
            "CREATE TABLE \"posts\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \"title\" VARCHAR(255) NOT NULL, \"status\" VARCHAR(255) DEFAULT 'it''s draft', \"createdAt\" DATETIME, \"updatedAt\" DATETIME)"
        );
    }
}
