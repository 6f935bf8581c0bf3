//! Reads the tables and views of one SQL Server schema into collections.
//!
//! Three catalog queries read the whole schema (columns, primary keys and unique indexes,
//! foreign keys), so a schema with hundreds of tables loads in three round trips, not one
//! per table. Any schema works, not only `dbo`.

use std::collections::BTreeMap;

use manifold_core::error::{Error, Result};
use manifold_core::schema::{Collection, Field, FieldType, ForeignKey, TableName};
use manifold_core::value::Value;
use manifold_sql::Sql;
use tiberius::{ColumnData, Row};

use crate::pool::Session;

/// Every column of every table and view in schema `@P1` (or only table `@P2`), in column
/// order. Alias types are described by their base type; `json_check` is the definition
/// of a column's `ISJSON` check, which marks the NVARCHAR(MAX) columns Manifold created
/// for `json` and `array` fields.
pub const COLUMNS: &str = "\
SELECT o.name AS table_name, o.type AS object_type, c.name AS column_name, \
COALESCE(bt.name, ut.name) AS type_name, c.max_length, c.precision, c.scale, \
c.is_nullable, c.is_identity, c.is_computed, \
CAST(CASE WHEN c.default_object_id <> 0 THEN 1 ELSE 0 END AS bit) AS has_default, \
(SELECT MAX(cc.definition) FROM sys.check_constraints cc \
WHERE cc.parent_object_id = c.object_id AND cc.parent_column_id = c.column_id \
AND LOWER(cc.definition) LIKE '%isjson(%') AS json_check \
FROM sys.objects o \
JOIN sys.schemas s ON s.schema_id = o.schema_id \
JOIN sys.columns c ON c.object_id = o.object_id \
JOIN sys.types ut ON ut.user_type_id = c.user_type_id \
LEFT JOIN sys.types bt ON bt.user_type_id = c.system_type_id AND bt.user_type_id = bt.system_type_id \
WHERE s.name = @P1 AND o.type IN ('U', 'V') AND o.is_ms_shipped = 0 \
AND (@P2 IS NULL OR o.name = @P2) \
ORDER BY o.name, c.column_id";

/// The key columns of every primary key and every unfiltered unique index (unique
/// constraints included) in schema `@P1` (or only table `@P2`), one row per column.
/// A single-column unique index filtered on `col IS NOT NULL` counts as unfiltered: it is
/// how a nullable column is made unique (a UNIQUE constraint would admit one NULL).
pub const KEYS: &str = "\
SELECT o.name AS table_name, i.index_id, i.is_primary_key, c.name AS column_name \
FROM sys.indexes i \
JOIN sys.objects o ON o.object_id = i.object_id \
JOIN sys.schemas s ON s.schema_id = o.schema_id \
JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
WHERE s.name = @P1 AND o.type IN ('U', 'V') AND o.is_ms_shipped = 0 \
AND (@P2 IS NULL OR o.name = @P2) \
AND (i.is_primary_key = 1 OR (i.is_unique = 1 AND (i.has_filter = 0 \
OR (i.filter_definition = N'(' + QUOTENAME(c.name) + N' IS NOT NULL)' \
AND (SELECT COUNT(*) FROM sys.index_columns k WHERE k.object_id = i.object_id \
AND k.index_id = i.index_id AND k.is_included_column = 0) = 1)))) \
AND ic.is_included_column = 0 AND ic.key_ordinal > 0 \
ORDER BY o.name, i.index_id, ic.key_ordinal";

/// Every column of every foreign key declared on a table of schema `@P1` (or only on
/// table `@P2`), one row per column: keys in creation order, columns in key order. The
/// target's schema is returned so keys into another schema can be left out.
pub const FOREIGN_KEYS: &str = "\
SELECT o.name AS table_name, fk.object_id AS constraint_id, fk.name AS constraint_name, \
ts.name AS target_schema, t.name AS target_table, c.name AS column_name, \
tc.name AS target_column \
FROM sys.foreign_keys fk \
JOIN sys.objects o ON o.object_id = fk.parent_object_id \
JOIN sys.schemas s ON s.schema_id = o.schema_id \
JOIN sys.objects t ON t.object_id = fk.referenced_object_id \
JOIN sys.schemas ts ON ts.schema_id = t.schema_id \
JOIN sys.foreign_key_columns fkc ON fkc.constraint_object_id = fk.object_id \
JOIN sys.columns c ON c.object_id = fkc.parent_object_id AND c.column_id = fkc.parent_column_id \
JOIN sys.columns tc ON tc.object_id = fkc.referenced_object_id AND tc.column_id = fkc.referenced_column_id \
WHERE s.name = @P1 AND (@P2 IS NULL OR o.name = @P2) \
ORDER BY o.name, fk.create_date, fk.object_id, fkc.constraint_column_id";

/// The id of schema `@P1`, NULL if there is none. Upper case on purpose: built-in
/// function names are case-insensitive under every collation (catalog view names are
/// not, in a case-sensitive database), and the scripted test server matches upper case.
pub const SCHEMA_ID: &str = "SELECT SCHEMA_ID(@P1)";

/// The key columns of index or constraint `@P1` on table `@P2` (a two-part name), to
/// name the columns of a unique violation.
pub const UNIQUE_INDEX_COLUMNS: &str = "\
SELECT c.name FROM sys.indexes i \
JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id \
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id \
WHERE i.name = @P1 AND i.object_id = OBJECT_ID(@P2) AND ic.is_included_column = 0 \
ORDER BY ic.key_ordinal";

/// The statements [`collections`] runs for `schema` (and one table, if given).
pub fn statements(schema: &str, only: Option<&str>) -> [Sql; 3] {
    let params = vec![
        Value::Text(schema.to_owned()),
        only.map_or(Value::Null, |t| Value::Text(t.to_owned())),
    ];
    [COLUMNS, KEYS, FOREIGN_KEYS].map(|text| Sql {
        text: text.to_owned(),
        params: params.clone(),
    })
}

/// The field type for a column: its base type name (`nvarchar`, `datetime2`) and, for
/// character types, whether it is `(max)`. Unknown types (xml, sql_variant, geography,
/// hierarchyid, …) are strings: they are read back as their text.
pub fn field_type(type_name: &str, is_max: bool) -> FieldType {
    match type_name.to_ascii_lowercase().as_str() {
        "int" | "smallint" | "tinyint" => FieldType::Integer,
        "bigint" => FieldType::BigInt,
        "bit" => FieldType::Boolean,
        "decimal" | "numeric" | "money" | "smallmoney" => FieldType::Decimal,
        "float" => FieldType::Double,
        "real" => FieldType::Float,
        "char" | "varchar" | "nchar" | "nvarchar" if is_max => FieldType::Text,
        "char" | "varchar" | "nchar" | "nvarchar" => FieldType::String,
        "text" | "ntext" => FieldType::Text,
        "date" => FieldType::Date,
        "datetime" | "datetime2" | "smalldatetime" => FieldType::DateTimeNoTz,
        "datetimeoffset" => FieldType::DateTime,
        "time" => FieldType::Time,
        "uniqueidentifier" => FieldType::Uuid,
        "varbinary" | "binary" | "image" | "timestamp" | "rowversion" => FieldType::Binary,
        _ => FieldType::String,
    }
}

/// The type as SQL Server spells it: `nvarchar(255)`, `varchar(max)`, `decimal(10,2)`,
/// `datetime2(3)`.
pub fn raw_type(type_name: &str, max_length: i16, precision: u8, scale: u8) -> String {
    let name = type_name.to_ascii_lowercase();
    let length = |per_char: i16| {
        if max_length == -1 {
            "max".to_owned()
        } else {
            (max_length / per_char).to_string()
        }
    };
    match name.as_str() {
        "char" | "varchar" | "binary" | "varbinary" => format!("{name}({})", length(1)),
        "nchar" | "nvarchar" => format!("{name}({})", length(2)),
        "decimal" | "numeric" => format!("{name}({precision},{scale})"),
        "datetime2" | "datetimeoffset" | "time" => format!("{name}({scale})"),
        _ => name,
    }
}

/// Every table and view of `schema`, sorted by name.
pub async fn collections(session: &mut Session, schema: &str) -> Result<Vec<Collection>> {
    load(session, schema, None).await
}

/// The collection for table or view `table` of `schema`; 404 if there is none.
pub async fn collection(session: &mut Session, schema: &str, table: &str) -> Result<Collection> {
    load(session, schema, Some(table))
        .await?
        .pop()
        .ok_or_else(|| Error::not_found(format!("table {schema}.{table} not found")))
}

/// One table as read from the catalog, before it becomes a collection.
#[derive(Default)]
struct Table {
    is_view: bool,
    fields: Vec<Field>,
    primary_key: Vec<String>,
    unique: Vec<String>,
    foreign_keys: Vec<ForeignKey>,
}

async fn load(session: &mut Session, schema: &str, only: Option<&str>) -> Result<Vec<Collection>> {
    let [columns_sql, keys_sql, foreign_keys_sql] = statements(schema, only);
    let text_hints = [FieldType::String, FieldType::String];
    let columns = session.query(&columns_sql, &text_hints).await?;
    let keys = session.query(&keys_sql, &text_hints).await?;
    let foreign_keys = session.query(&foreign_keys_sql, &text_hints).await?;

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for row in &columns {
        let name = text(row, 0)?;
        let table = tables.entry(name).or_default();
        table.is_view = text(row, 1)?.trim() == "V";
        table.fields.push(column_field(row)?);
    }
    let mut indexes: BTreeMap<(String, i64), (bool, Vec<String>)> = BTreeMap::new();
    for row in &keys {
        let entry = indexes
            .entry((text(row, 0)?, int(row, 1)?))
            .or_insert_with(|| (false, Vec::new()));
        entry.0 = flag(row, 2)?;
        entry.1.push(text(row, 3)?);
    }
    for ((table, _), (is_primary, columns)) in indexes {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        if is_primary {
            t.primary_key = columns;
        } else if let [only] = columns.as_slice() {
            t.unique.push(only.clone());
        }
    }
    add_foreign_keys(schema, &foreign_keys, &mut tables)?;
    tables
        .into_iter()
        .map(|(name, table)| build(schema, name, table))
        .collect()
}

/// Groups the rows of [`FOREIGN_KEYS`] into keys on their tables, leaving out keys into
/// another schema: their target is no collection of this data source.
fn add_foreign_keys(
    schema: &str,
    rows: &[Row],
    tables: &mut BTreeMap<String, Table>,
) -> Result<()> {
    // Rows come grouped by constraint: a key starts whenever the constraint id changes.
    let mut previous: Option<i64> = None;
    let mut keys: Vec<(String, Option<ForeignKey>)> = Vec::new();
    for row in rows {
        let id = int(row, 1)?;
        if previous != Some(id) {
            previous = Some(id);
            let table = text(row, 0)?;
            let target_schema = text(row, 3)?;
            let key = if target_schema == schema {
                Some(ForeignKey {
                    columns: Vec::new(),
                    // Collections are named with dots replaced (see `build`).
                    target: text(row, 4)?.replace('.', "_"),
                    target_columns: Vec::new(),
                })
            } else {
                tracing::debug!(
                    table,
                    constraint = text(row, 2)?,
                    target_schema,
                    "foreign key into another schema: left out"
                );
                None
            };
            keys.push((table, key));
        }
        if let Some((_, Some(key))) = keys.last_mut() {
            key.columns.push(text(row, 5)?);
            key.target_columns.push(text(row, 6)?);
        }
    }
    for (table, key) in keys {
        if let (Some(t), Some(key)) = (tables.get_mut(&table), key) {
            t.foreign_keys.push(key);
        }
    }
    Ok(())
}

fn cell(row: &Row, i: usize) -> Result<&ColumnData<'static>> {
    row.cells()
        .nth(i)
        .map(|(_, data)| data)
        .ok_or_else(|| Error::internal(format!("catalog row has no column {i}")))
}

fn catalog_error(i: usize) -> Error {
    Error::internal(format!("unexpected catalog value in column {i}"))
}

fn text(row: &Row, i: usize) -> Result<String> {
    match cell(row, i)? {
        ColumnData::String(Some(s)) => Ok(s.to_string()),
        _ => Err(catalog_error(i)),
    }
}

fn optional_text(row: &Row, i: usize) -> Result<Option<String>> {
    match cell(row, i)? {
        ColumnData::String(s) => Ok(s.as_ref().map(|s| s.to_string())),
        _ => Err(catalog_error(i)),
    }
}

fn int(row: &Row, i: usize) -> Result<i64> {
    match cell(row, i)? {
        ColumnData::U8(Some(v)) => Ok(i64::from(*v)),
        ColumnData::I16(Some(v)) => Ok(i64::from(*v)),
        ColumnData::I32(Some(v)) => Ok(i64::from(*v)),
        ColumnData::I64(Some(v)) => Ok(*v),
        _ => Err(catalog_error(i)),
    }
}

fn flag(row: &Row, i: usize) -> Result<bool> {
    match cell(row, i)? {
        ColumnData::Bit(v) => Ok(v.unwrap_or(false)),
        _ => int(row, i).map(|v| v != 0),
    }
}

/// COLUMNS' row: table, type, column, type name, max_length, precision, scale,
/// nullable, identity, computed, has_default, json_check.
fn column_field(row: &Row) -> Result<Field> {
    let type_name = text(row, 3)?;
    let max_length = i16::try_from(int(row, 4)?).unwrap_or(0);
    let precision = u8::try_from(int(row, 5)?).unwrap_or(0);
    let scale = u8::try_from(int(row, 6)?).unwrap_or(0);
    let mut field = Field::new(text(row, 2)?, field_type(&type_name, max_length == -1));
    field.raw_type = raw_type(&type_name, max_length, precision, scale);
    if let Some(check) = optional_text(row, 11)? {
        // The `array` check also requires a leading `[`.
        field.field_type = if check.contains("'['") {
            FieldType::Array
        } else {
            FieldType::Json
        };
    }
    let identity = flag(row, 8)?;
    let computed = flag(row, 9)?;
    field.auto_increment = identity;
    // A column the database fills may be omitted on create.
    field.allow_null = flag(row, 7)?
        || flag(row, 10)?
        || identity
        || computed
        || matches!(type_name.as_str(), "timestamp" | "rowversion");
    Ok(field)
}

/// The collection for one table, its key marked by the shared rule.
fn build(schema: &str, name: String, mut table: Table) -> Result<Collection> {
    manifold_core::schema::mark_key(
        &mut table.fields,
        &table.primary_key,
        &table.unique,
        table.is_view,
    );
    // Dots would read as association paths in filters.
    let mut collection = Collection::new(
        name.replace('.', "_"),
        TableName {
            schema: Some(schema.to_owned()),
            name,
        },
        table.fields,
    )?;
    collection.is_view = table.is_view;
    collection.foreign_keys = table.foreign_keys;
    Ok(collection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_sql_server_type_names() {
        assert_eq!(field_type("int", false), FieldType::Integer);
        assert_eq!(field_type("tinyint", false), FieldType::Integer);
        assert_eq!(field_type("bigint", false), FieldType::BigInt);
        assert_eq!(field_type("bit", false), FieldType::Boolean);
        assert_eq!(field_type("money", false), FieldType::Decimal);
        assert_eq!(field_type("numeric", false), FieldType::Decimal);
        assert_eq!(field_type("float", false), FieldType::Double);
        assert_eq!(field_type("real", false), FieldType::Float);
        assert_eq!(field_type("nvarchar", false), FieldType::String);
        assert_eq!(field_type("nvarchar", true), FieldType::Text);
        assert_eq!(field_type("varchar", true), FieldType::Text);
        assert_eq!(field_type("ntext", false), FieldType::Text);
        assert_eq!(field_type("date", false), FieldType::Date);
        assert_eq!(field_type("datetime", false), FieldType::DateTimeNoTz);
        assert_eq!(field_type("smalldatetime", false), FieldType::DateTimeNoTz);
        assert_eq!(field_type("datetime2", false), FieldType::DateTimeNoTz);
        assert_eq!(field_type("datetimeoffset", false), FieldType::DateTime);
        assert_eq!(field_type("time", false), FieldType::Time);
        assert_eq!(field_type("uniqueidentifier", false), FieldType::Uuid);
        assert_eq!(field_type("varbinary", true), FieldType::Binary);
        assert_eq!(field_type("image", false), FieldType::Binary);
        assert_eq!(field_type("xml", false), FieldType::String);
        assert_eq!(field_type("geography", false), FieldType::String);
    }

    #[test]
    fn raw_types_read_as_sql_server_writes_them() {
        assert_eq!(raw_type("nvarchar", 510, 0, 0), "nvarchar(255)");
        assert_eq!(raw_type("nvarchar", -1, 0, 0), "nvarchar(max)");
        assert_eq!(raw_type("varbinary", -1, 0, 0), "varbinary(max)");
        assert_eq!(raw_type("decimal", 9, 10, 2), "decimal(10,2)");
        assert_eq!(raw_type("datetimeoffset", 10, 34, 3), "datetimeoffset(3)");
        assert_eq!(raw_type("int", 4, 10, 0), "int");
    }

    #[test]
    fn keyless_tables_fall_back_to_identity_then_unique_columns() {
        let mut id = Field::new("n", FieldType::Integer);
        id.auto_increment = true;
        let table = Table {
            is_view: false,
            fields: vec![id, Field::new("email", FieldType::String)],
            primary_key: Vec::new(),
            unique: vec!["email".into()],
            foreign_keys: Vec::new(),
        };
        let c = build("sales", "my.table".into(), table).expect("valid");
        assert_eq!(c.name(), "my_table");
        assert_eq!(c.table().schema.as_deref(), Some("sales"));
        assert_eq!(c.single_key().map(|f| f.name.as_str()), Some("n"));
        assert!(c.field("email").is_some_and(|f| f.unique));

        let view = Table {
            is_view: true,
            fields: vec![Field::new("id", FieldType::BigInt)],
            ..Table::default()
        };
        let v = build("dbo", "v".into(), view).expect("valid");
        assert!(v.is_view);
        assert_eq!(v.single_key().map(|f| f.name.as_str()), Some("id"));
    }
}
