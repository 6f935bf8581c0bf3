//! Reads the schema of a SQLite database into collections.
//!
//! Foreign keys are read for the whole database in one query (`FOREIGN_KEYS`), not one
//! per table.

use std::collections::HashMap;

use manifold_core::error::Result;
use manifold_core::schema::{Collection, Field, FieldType, ForeignKey, TableName};
use sqlx::{Row, SqliteConnection};

use crate::error::map_sqlx;

/// The field type for a declared SQLite column type.
///
/// SQLite accepts any type name, so Manifold declares the type names below when it creates
/// a table and recognises them here: a table survives a restart with its types intact.
pub fn field_type(declared: &str) -> FieldType {
    let lower = declared.trim().to_ascii_lowercase();
    let base = lower.split('(').next().unwrap_or("").trim();
    match base {
        "varchar" | "character varying" | "char" | "character" | "nvarchar" | "nchar"
        | "string" => FieldType::String,
        "text" | "clob" | "" => FieldType::Text,
        "integer" | "int" | "smallint" | "mediumint" | "tinyint" | "int2" | "int4" => {
            FieldType::Integer
        }
        "bigint" | "int8" | "unsigned big int" => FieldType::BigInt,
        "real" | "float" => FieldType::Float,
        "double" | "double precision" => FieldType::Double,
        "decimal" | "numeric" => FieldType::Decimal,
        "boolean" | "bool" => FieldType::Boolean,
        "date" => FieldType::Date,
        "datetime" | "timestamp" | "timestamptz" | "timestamp with time zone" => {
            FieldType::DateTime
        }
        "timestamp without time zone" => FieldType::DateTimeNoTz,
        "time" => FieldType::Time,
        "json" | "jsonb" | "json_text" => FieldType::Json,
        "array" => FieldType::Array,
        "uuid" => FieldType::Uuid,
        "blob" | "binary" | "varbinary" => FieldType::Binary,
        _ => FieldType::Text,
    }
}

/// Every column of every foreign key of every table (or only of table `?1`), one row per
/// column: keys in declaration order, columns in key order.
///
/// * SQLite numbers a table's keys in reverse declaration order (the last declared is id
///   0), so `id DESC` gives declaration order, which decides association names.
/// * The target is looked up in `sqlite_master` because SQLite matches the name written in
///   `REFERENCES` case-insensitively, and a key may name a table that does not exist
///   (then `target` is NULL).
/// * `REFERENCES t` without columns means t's primary key: the key's n-th column refers to
///   the n-th primary-key column of t (`pk` in `pragma_table_info` is 1-based).
/// * A named target column is reported as written (`REFERENCES users (ID)`), and matched
///   case-insensitively too, so it is looked up among t's columns for its real spelling
///   (NULL when t has no such column). The referencing column comes back as declared.
const FOREIGN_KEYS: &str = "\
SELECT m.name AS table_name, f.id AS key_id, t.name AS target, f.\"from\" AS column_name, \
       CASE WHEN f.\"to\" IS NULL \
            THEN (SELECT p.name FROM pragma_table_info(t.name) p WHERE p.pk = f.seq + 1) \
            ELSE (SELECT p.name FROM pragma_table_info(t.name) p \
                  WHERE p.name = f.\"to\" COLLATE NOCASE) \
       END AS target_column \
FROM sqlite_master m \
JOIN pragma_foreign_key_list(m.name) f \
LEFT JOIN sqlite_master t ON t.type = 'table' AND t.name = f.\"table\" COLLATE NOCASE \
WHERE m.type = 'table' AND (?1 IS NULL OR m.name = ?1) \
ORDER BY m.name, f.id DESC, f.seq";

/// The foreign keys of every table (or only of `only`), by table name.
async fn foreign_keys(
    conn: &mut SqliteConnection,
    only: Option<&str>,
) -> Result<HashMap<String, Vec<ForeignKey>>> {
    let rows = sqlx::query(FOREIGN_KEYS)
        .bind(only)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    // (table, key id) → the key so far, or None once a column of it proved unresolvable.
    let mut keys: Vec<((String, i64), Option<ForeignKey>)> = Vec::new();
    for row in &rows {
        let table: String = row.try_get("table_name").map_err(map_sqlx)?;
        let id: i64 = row.try_get("key_id").map_err(map_sqlx)?;
        let target: Option<String> = row.try_get("target").map_err(map_sqlx)?;
        let column: String = row.try_get("column_name").map_err(map_sqlx)?;
        let target_column: Option<String> = row.try_get("target_column").map_err(map_sqlx)?;
        // Rows come grouped by key, so a new key starts whenever (table, id) changes.
        if keys
            .last()
            .is_none_or(|(at, _)| at.0 != table || at.1 != id)
        {
            if target.is_none() {
                tracing::debug!(table, column, "foreign key to a missing table: skipped");
            }
            keys.push((
                (table.clone(), id),
                target.as_ref().map(|target| ForeignKey {
                    columns: Vec::new(),
                    target: target.clone(),
                    target_columns: Vec::new(),
                }),
            ));
        }
        let Some((_, slot)) = keys.last_mut() else {
            continue;
        };
        match (slot.as_mut(), target_column) {
            (Some(key), Some(target_column)) => {
                key.columns.push(column);
                key.target_columns.push(target_column);
            }
            (Some(_), None) => {
                // `REFERENCES t` where t has no primary key (or fewer key columns), or no
                // such column: SQLite itself reports a "foreign key mismatch" on write.
                tracing::debug!(
                    table,
                    column,
                    "foreign key without a target column: skipped"
                );
                *slot = None;
            }
            // Already skipped (missing table, or an earlier column without a target).
            (None, _) => {}
        }
    }
    let mut out: HashMap<String, Vec<ForeignKey>> = HashMap::new();
    for ((table, _), key) in keys {
        if let Some(key) = key {
            out.entry(table).or_default().push(key);
        }
    }
    Ok(out)
}

/// Every user table and view, sorted by name.
pub async fn collections(conn: &mut SqliteConnection) -> Result<Vec<Collection>> {
    let tables = sqlx::query(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let mut out = Vec::with_capacity(tables.len());
    for row in tables {
        let name: String = row.try_get("name").map_err(map_sqlx)?;
        let kind: String = row.try_get("type").map_err(map_sqlx)?;
        out.push(columns_of(conn, &name, kind == "view").await?);
    }
    let mut keys = foreign_keys(conn, None).await?;
    for collection in &mut out {
        collection.foreign_keys = keys.remove(collection.name()).unwrap_or_default();
    }
    Ok(out)
}

/// The collection for one table or view, its foreign keys included.
pub async fn collection(
    conn: &mut SqliteConnection,
    table: &str,
    is_view: bool,
) -> Result<Collection> {
    let mut collection = columns_of(conn, table, is_view).await?;
    collection.foreign_keys = foreign_keys(conn, Some(table))
        .await?
        .remove(table)
        .unwrap_or_default();
    Ok(collection)
}

/// The collection for one table or view, without its foreign keys.
async fn columns_of(conn: &mut SqliteConnection, table: &str, is_view: bool) -> Result<Collection> {
    let columns = sqlx::query(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let unique_columns = single_column_unique(conn, table).await?;
    let key_columns = columns
        .iter()
        .filter(|r| r.try_get::<i64, _>("pk").unwrap_or(0) > 0)
        .count();

    let mut fields = Vec::with_capacity(columns.len());
    for row in &columns {
        let name: String = row.try_get("name").map_err(map_sqlx)?;
        let declared: String = row.try_get("type").map_err(map_sqlx)?;
        let not_null: i64 = row.try_get("notnull").map_err(map_sqlx)?;
        let default: Option<String> = row.try_get("dflt_value").map_err(map_sqlx)?;
        let pk: i64 = row.try_get("pk").map_err(map_sqlx)?;
        let mut field = Field::new(name.clone(), field_type(&declared));
        field.raw_type = declared.clone();
        field.primary_key = pk > 0;
        // An INTEGER PRIMARY KEY is SQLite's rowid: filled automatically.
        field.auto_increment =
            pk > 0 && key_columns == 1 && declared.eq_ignore_ascii_case("integer");
        field.allow_null = not_null == 0 || default.is_some() || field.auto_increment;
        field.unique = field.primary_key && key_columns == 1 || unique_columns.contains(&name);
        fields.push(field);
    }
    let mut collection = Collection::new(table, TableName::new(table), fields)?;
    collection.is_view = is_view;
    Ok(collection)
}

async fn single_column_unique(conn: &mut SqliteConnection, table: &str) -> Result<Vec<String>> {
    let indexes = sqlx::query("SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1")
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_sqlx)?;
    let mut out = Vec::new();
    for index in indexes {
        let index: String = index.try_get("name").map_err(map_sqlx)?;
        let cols = sqlx::query("SELECT name FROM pragma_index_info(?)")
            .bind(&index)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_sqlx)?;
        if let [only] = cols.as_slice() {
            out.push(only.try_get::<String, _>("name").map_err(map_sqlx)?);
        }
    }
    Ok(out)
}
