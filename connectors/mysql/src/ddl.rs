//! `CREATE TABLE` for a collection definition, in MySQL/MariaDB types.
//!
//! Instants (`datetime` fields, `createdAt`, `updatedAt`) are stored as `DATETIME(3)` holding
//! UTC, not as `TIMESTAMP(3)`: a TIMESTAMP ends in January 2038 on MariaDB 10.11 and MySQL,
//! and depending on `explicit_defaults_for_timestamp` the first TIMESTAMP column of a table
//! silently gets `DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP`. DATETIME has
//! neither problem, and since every session runs in UTC, writes and comparisons of instants
//! need no conversion. The column carries the comment `manifold:datetime` so introspection
//! reads it back as an instant rather than as a wall-clock `datetimeNoTz`; booleans, uuids
//! and arrays, whose MySQL types alone read back as integer, string and json, are marked
//! the same way.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::{Error, Result};
use manifold_core::schema::{FieldType, TableName};
use manifold_core::value::Value;
use manifold_sql::ddl::{self, ColumnWriter};
use manifold_sql::{Dialect, SqlBuilder};

use crate::introspect::TYPE_MARKER;

/// The longest VARCHAR a utf8mb4 row can hold (65,535 bytes / 4).
const MAX_VARCHAR: u32 = 16_383;

/// Without a precision, decimals are DECIMAL(38, 10): 28 integer digits hold any amount of
/// money or count, 10 fraction digits any rate, and 38 is the largest precision PostgreSQL,
/// SQL Server and MySQL all accept, so values move between data sources unchanged. (MySQL's
/// bare DECIMAL is DECIMAL(10, 0), which would silently round every fraction away.)
const DEFAULT_DECIMAL: (u8, u8) = (38, 10);

/// MySQL allows at most 30 digits after the point.
const MAX_DECIMAL_SCALE: u8 = 30;

/// The column type for `field`, and the marker comment that makes it introspect back to the
/// same field type when the MySQL type alone would not.
fn declared_type(field: &FieldDefinition) -> Result<(String, Option<FieldType>)> {
    let plain = |t: &str| Ok((t.to_owned(), None));
    let marked = |t: &str| Ok((t.to_owned(), Some(field.field_type)));
    match field.field_type {
        FieldType::String => {
            let length = field.length.unwrap_or(255);
            if length > MAX_VARCHAR {
                return Err(Error::bad_request(format!(
                    "field {}: a string holds at most {MAX_VARCHAR} characters on MySQL; use type text",
                    field.name
                )));
            }
            plain(&format!("VARCHAR({length})"))
        }
        // MEDIUMTEXT (16 MB) rather than TEXT (64 KB), which rich text outgrows.
        FieldType::Text => plain("MEDIUMTEXT"),
        FieldType::Integer => plain("INT"),
        FieldType::BigInt => plain("BIGINT"),
        FieldType::Float => plain("FLOAT"),
        FieldType::Double => plain("DOUBLE"),
        FieldType::Decimal => {
            let (precision, scale) = field.precision.unwrap_or(DEFAULT_DECIMAL);
            if scale > MAX_DECIMAL_SCALE {
                return Err(Error::bad_request(format!(
                    "field {}: MySQL allows a decimal scale of at most {MAX_DECIMAL_SCALE}",
                    field.name
                )));
            }
            plain(&format!("DECIMAL({precision}, {scale})"))
        }
        FieldType::Boolean => marked("BOOLEAN"),
        FieldType::Date => plain("DATE"),
        FieldType::DateTime => marked("DATETIME(3)"),
        FieldType::DateTimeNoTz => plain("DATETIME"),
        FieldType::Time => plain("TIME"),
        FieldType::Json => plain("JSON"),
        FieldType::Array => marked("JSON"),
        FieldType::Uuid => marked("CHAR(36)"),
        FieldType::Binary => plain("BLOB"),
    }
}

/// Types stored as TEXT/BLOB/JSON, which MySQL cannot index without a prefix length and
/// which take defaults only as expressions.
fn is_lob(field_type: FieldType) -> bool {
    matches!(
        field_type,
        FieldType::Text | FieldType::Json | FieldType::Array | FieldType::Binary
    )
}

/// A text literal. MySQL cannot bind parameters in DDL, so it is written here: quotes
/// doubled, and backslashes and NULs escaped, because sessions run with backslash escapes
/// on (`NO_BACKSLASH_ESCAPES` is removed from `sql_mode` at connect).
fn text_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A default value as a SQL literal, written from the typed value: numbers and booleans by
/// us, everything else as an escaped text literal.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(s) | Value::Text(s) => text_literal(s),
        Value::Json(j) => text_literal(&j.to_string()),
        Value::Date(d) => text_literal(&d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) => {
            text_literal(&t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        }
        Value::DateTimeNoTz(t) => text_literal(&t.format("%Y-%m-%d %H:%M:%S").to_string()),
        Value::Time(t) => text_literal(&t.format("%H:%M:%S").to_string()),
        Value::Uuid(u) => text_literal(&u.hyphenated().to_string()),
        Value::Bytes(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
    }
}

fn column(field: &FieldDefinition, inline_key: bool) -> Result<String> {
    let (declared, marker) = declared_type(field)?;
    if is_lob(field.field_type) && (field.unique || field.primary_key) {
        return Err(Error::bad_request(format!(
            "field {}: MySQL cannot make a {} field unique or a primary key; use a string field",
            field.name, field.field_type
        )));
    }
    let mut col = SqlBuilder::new(&crate::MySqlDialect);
    col.ident(&field.name).push(" ").push(&declared);
    // Key columns are NOT NULL whatever was asked: MySQL refuses a nullable key column.
    col.push(if field.allow_null && !field.primary_key {
        " NULL"
    } else {
        " NOT NULL"
    });
    if let Some(default) = &field.default_value {
        let literal = literal(default);
        if is_lob(field.field_type) {
            // TEXT/BLOB/JSON defaults must be expressions on MySQL 8.
            col.push(" DEFAULT (").push(&literal).push(")");
        } else {
            col.push(" DEFAULT ").push(&literal);
        }
    }
    if inline_key {
        col.push(" PRIMARY KEY");
    } else if field.unique && !field.primary_key {
        col.push(" UNIQUE");
    }
    if let Some(marker) = marker {
        col.push(" COMMENT ")
            .push(&text_literal(&format!("{TYPE_MARKER}{}", marker.name())));
    }
    Ok(col.finish().text)
}

/// Writes MySQL columns.
pub struct MySqlColumns;

impl ColumnWriter for MySqlColumns {
    fn dialect(&self) -> &'static dyn Dialect {
        &crate::MySqlDialect
    }

    fn id_column(&self) -> String {
        "`id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY".into()
    }

    fn column(&self, field: &FieldDefinition, inline_key: bool) -> Result<String> {
        column(field, inline_key)
    }

    fn table_options(&self) -> &str {
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    }
}

/// The `CREATE TABLE` statement for `definition` (already validated by the core), or a 400
/// for what MySQL cannot store as asked.
pub fn create_table(definition: &CollectionDefinition) -> Result<String> {
    ddl::create_table(
        &MySqlColumns,
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
        title.unique = true;
        let mut status = FieldDefinition::new("status", FieldType::String);
        status.default_value = Some(Value::Text("it's \\ draft".into()));
        let def = CollectionDefinition {
            name: "posts".into(),
            auto_gen_id: true,
            timestamps: true,
            fields: vec![title, status],
        };
        assert_eq!(
            create_table(&def).expect("valid"),
            "CREATE TABLE `posts` (`id` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             `title` VARCHAR(255) NOT NULL UNIQUE, \
             `status` VARCHAR(255) NULL DEFAULT 'it''s \\\\ draft', \
             `createdAt` DATETIME(3) NULL COMMENT 'manifold:datetime', \
             `updatedAt` DATETIME(3) NULL COMMENT 'manifold:datetime') \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
    }

    #[test]
    fn unique_text_is_refused() {
        let mut body = FieldDefinition::new("body", FieldType::Text);
        body.unique = true;
        let def = CollectionDefinition {
            name: "notes".into(),
            auto_gen_id: true,
            timestamps: false,
            fields: vec![body],
        };
        let err = create_table(&def).expect_err("refused");
        assert_eq!(err.kind(), manifold_core::ErrorKind::BadRequest);
        assert!(err.message().contains("body"), "{}", err.message());
    }

    #[test]
    fn composite_keys_and_decimals() {
        let mut a = FieldDefinition::new("a", FieldType::Integer);
        a.primary_key = true;
        let mut b = FieldDefinition::new("b", FieldType::Uuid);
        b.primary_key = true;
        let amount = FieldDefinition::new("amount", FieldType::Decimal);
        let def = CollectionDefinition {
            name: "pairs".into(),
            auto_gen_id: false,
            timestamps: false,
            fields: vec![a, b, amount],
        };
        assert_eq!(
            create_table(&def).expect("valid"),
            "CREATE TABLE `pairs` (`a` INT NOT NULL, `b` CHAR(36) NOT NULL COMMENT 'manifold:uuid', \
             `amount` DECIMAL(38, 10) NULL, PRIMARY KEY (`a`, `b`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        );
    }
}
