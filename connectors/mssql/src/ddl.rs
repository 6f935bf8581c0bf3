//! `CREATE TABLE` for a collection definition, in SQL Server's type names.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::error::{Error, Result};
use manifold_core::schema::{FieldType, TableName};
use manifold_core::value::{Value, format_instant};
use manifold_sql::ddl::{self, ColumnWriter};
use manifold_sql::{Dialect, SqlBuilder};

use crate::dialect::MssqlDialect;

use crate::codec::{format_numeric, parse_decimal};

/// The longest `NVARCHAR(n)`; longer strings are `NVARCHAR(MAX)`.
const MAX_NVARCHAR: u32 = 4000;

/// The column type Manifold writes for `field`; introspection reads each back to the same
/// field type (JSON and arrays by their `ISJSON` check).
fn declared_type(field: &FieldDefinition) -> Result<String> {
    Ok(match field.field_type {
        FieldType::String => match field.length.unwrap_or(255) {
            n if n <= MAX_NVARCHAR => format!("NVARCHAR({n})"),
            _ => "NVARCHAR(MAX)".into(),
        },
        FieldType::Text | FieldType::Json | FieldType::Array => "NVARCHAR(MAX)".into(),
        FieldType::Integer => "INT".into(),
        FieldType::BigInt => "BIGINT".into(),
        FieldType::Float => "REAL".into(),
        FieldType::Double => "FLOAT".into(),
        FieldType::Decimal => match field.precision {
            Some((p, _)) if p > 38 => {
                return Err(Error::bad_request(format!(
                    "field {}: SQL Server decimals have at most 38 digits of precision, not {p}",
                    field.name
                )));
            }
            Some((p, s)) => format!("DECIMAL({p}, {s})"),
            None => "DECIMAL(38, 10)".into(),
        },
        FieldType::Boolean => "BIT".into(),
        FieldType::Date => "DATE".into(),
        FieldType::DateTime => "DATETIMEOFFSET(3)".into(),
        FieldType::DateTimeNoTz => "DATETIME2(3)".into(),
        FieldType::Time => "TIME(3)".into(),
        FieldType::Uuid => "UNIQUEIDENTIFIER".into(),
        FieldType::Binary => "VARBINARY(MAX)".into(),
    })
}

/// A Unicode string literal: `N'…'` with quotes doubled (T-SQL has no backslash escapes).
fn quoted(s: &str) -> String {
    format!("N'{}'", s.replace('\'', "''"))
}

/// A default value as a SQL literal. Parameters cannot be bound in DDL, so the literal is
/// written from the typed value: numbers, decimals and bytes by us from their parsed
/// form, everything else as a quoted string in an unambiguous ISO format.
fn literal(field: &FieldDefinition, value: &Value) -> Result<String> {
    let invalid = || {
        Error::bad_request(format!(
            "field {}: the default value cannot be stored in SQL Server",
            field.name
        ))
    };
    Ok(match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f:?}"),
        Value::Float(_) => return Err(invalid()),
        Value::Decimal(s) => format_numeric(parse_decimal(s).ok_or_else(invalid)?),
        Value::Text(s) => quoted(s),
        Value::Json(j) => quoted(&j.to_string()),
        Value::Date(d) => quoted(&d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) => quoted(&format_instant(t)),
        Value::DateTimeNoTz(t) => quoted(&t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()),
        Value::Time(t) => quoted(&t.format("%H:%M:%S%.3f").to_string()),
        Value::Uuid(u) => quoted(&u.hyphenated().to_string()),
        Value::Bytes(b) => {
            if b.is_empty() {
                "0x".into()
            } else {
                format!(
                    "0x{}",
                    b.iter().map(|x| format!("{x:02X}")).collect::<String>()
                )
            }
        }
    })
}

/// Writes SQL Server columns.
pub struct MssqlColumns;

impl ColumnWriter for MssqlColumns {
    fn dialect(&self) -> &'static dyn Dialect {
        &MssqlDialect
    }

    /// T-SQL adds a column without the `COLUMN` keyword.
    fn add_column_keyword(&self) -> &str {
        " ADD "
    }

    fn id_column(&self) -> String {
        "[id] BIGINT IDENTITY(1,1) PRIMARY KEY".into()
    }

    /// `[name] TYPE [NOT NULL] [DEFAULT literal] [PRIMARY KEY] [UNIQUE] [CHECK (…)]`, in
    /// the order T-SQL documents; JSON and array columns get an `ISJSON` check, which
    /// also tells introspection what they hold.
    fn column(&self, field: &FieldDefinition, inline_key: bool) -> Result<String> {
        let mut col = SqlBuilder::new(&MssqlDialect);
        col.ident(&field.name)
            .push(" ")
            .push(&declared_type(field)?);
        if !field.allow_null {
            col.push(" NOT NULL");
        }
        if let Some(default) = &field.default_value {
            col.push(" DEFAULT ").push(&literal(field, default)?);
        }
        if inline_key {
            col.push(" PRIMARY KEY");
        }
        // A UNIQUE constraint admits one NULL in SQL Server; a nullable unique field gets
        // a filtered index instead (see `unique_indexes`), so that, as on the other
        // databases, any number of rows may leave it empty.
        if field.unique && !field.primary_key && !field.allow_null {
            col.push(" UNIQUE");
        }
        match field.field_type {
            FieldType::Json => {
                col.push(" CHECK (ISJSON(")
                    .ident(&field.name)
                    .push(") = 1)");
            }
            FieldType::Array => {
                col.push(" CHECK (ISJSON(")
                    .ident(&field.name)
                    .push(") = 1 AND LEFT(LTRIM(")
                    .ident(&field.name)
                    .push("), 1) = '[')");
            }
            _ => {}
        }
        Ok(col.finish().text)
    }
}

/// The `CREATE TABLE` statement for `definition` (already validated by the core), in
/// `schema`.
pub fn create_table(definition: &CollectionDefinition, schema: &str) -> Result<String> {
    let table = TableName {
        schema: Some(schema.to_owned()),
        name: definition.name.clone(),
    };
    ddl::create_table(&MssqlColumns, &table, definition, &[])
}

/// The filtered unique indexes (`WHERE col IS NOT NULL`) of `definition`'s nullable
/// unique fields, to run after its `CREATE TABLE`. Introspection reads them back as
/// unique fields.
pub fn unique_indexes(definition: &CollectionDefinition, schema: &str) -> Vec<String> {
    let table = TableName {
        schema: Some(schema.to_owned()),
        name: definition.name.clone(),
    };
    definition
        .fields
        .iter()
        .filter(|f| f.unique && f.allow_null && !f.primary_key)
        .map(|f| {
            let mut b = SqlBuilder::new(&MssqlDialect);
            b.push("CREATE UNIQUE INDEX ")
                .ident(&format!("uq_{}", f.name))
                .push(" ON ")
                .table(&table)
                .push(" (")
                .ident(&f.name)
                .push(") WHERE ")
                .ident(&f.name)
                .push(" IS NOT NULL");
            b.finish().text
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_identity_key_fields_and_timestamps_in_the_schema() {
        let mut title = FieldDefinition::new("title", FieldType::String);
        title.allow_null = false;
        let mut status = FieldDefinition::new("status", FieldType::String);
        status.default_value = Some(Value::Text("it's a \\ draft".into()));
        let mut email = FieldDefinition::new("email", FieldType::String);
        email.unique = true;
        email.length = Some(100);
        let def = CollectionDefinition {
            name: "posts".into(),
            auto_gen_id: true,
            timestamps: true,
            fields: vec![
                title,
                status,
                email,
                FieldDefinition::new("meta", FieldType::Json),
                FieldDefinition::new("tags", FieldType::Array),
            ],
        };
        assert_eq!(
            create_table(&def, "app").expect("valid"),
            "CREATE TABLE [app].[posts] ([id] BIGINT IDENTITY(1,1) PRIMARY KEY, \
             [title] NVARCHAR(255) NOT NULL, \
             [status] NVARCHAR(255) DEFAULT N'it''s a \\ draft', \
             [email] NVARCHAR(100), \
             [meta] NVARCHAR(MAX) CHECK (ISJSON([meta]) = 1), \
             [tags] NVARCHAR(MAX) CHECK (ISJSON([tags]) = 1 AND LEFT(LTRIM([tags]), 1) = '['), \
             [createdAt] DATETIMEOFFSET(3), [updatedAt] DATETIMEOFFSET(3))"
        );
        assert_eq!(
            unique_indexes(&def, "app"),
            ["CREATE UNIQUE INDEX [uq_email] ON [app].[posts] ([email]) WHERE [email] IS NOT NULL"]
        );
    }

    #[test]
    fn every_creatable_type_has_a_sql_server_type() {
        for &t in FieldType::CREATABLE {
            let field = FieldDefinition::new("f", t);
            assert!(declared_type(&field).is_ok(), "{t}");
        }
        let mut d = FieldDefinition::new("d", FieldType::Decimal);
        assert_eq!(declared_type(&d).expect("valid"), "DECIMAL(38, 10)");
        d.precision = Some((10, 2));
        assert_eq!(declared_type(&d).expect("valid"), "DECIMAL(10, 2)");
        d.precision = Some((50, 2));
        assert!(declared_type(&d).is_err());
        let mut long = FieldDefinition::new("s", FieldType::String);
        long.length = Some(10_000);
        assert_eq!(declared_type(&long).expect("valid"), "NVARCHAR(MAX)");
    }

    #[test]
    fn composite_keys_get_a_table_constraint_and_defaults_are_literals() {
        let mut a = FieldDefinition::new("a", FieldType::Integer);
        a.primary_key = true;
        a.allow_null = false;
        let mut b = FieldDefinition::new("b", FieldType::Decimal);
        b.primary_key = true;
        b.allow_null = false;
        b.precision = Some((10, 2));
        b.default_value = Some(Value::Decimal("1.50".into()));
        let mut on = FieldDefinition::new("on", FieldType::Boolean);
        on.default_value = Some(Value::Bool(true));
        let mut blob = FieldDefinition::new("blob", FieldType::Binary);
        blob.default_value = Some(Value::Bytes(vec![0xde, 0xad]));
        let def = CollectionDefinition {
            name: "pairs".into(),
            auto_gen_id: false,
            timestamps: false,
            fields: vec![a, b, on, blob],
        };
        assert_eq!(
            create_table(&def, "dbo").expect("valid"),
            "CREATE TABLE [dbo].[pairs] ([a] INT NOT NULL, [b] DECIMAL(10, 2) NOT NULL DEFAULT 1.50, \
             [on] BIT DEFAULT 1, [blob] VARBINARY(MAX) DEFAULT 0xDEAD, PRIMARY KEY ([a], [b]))"
        );
    }
}
