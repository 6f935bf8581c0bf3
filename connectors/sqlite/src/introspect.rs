//! Reads the schema of a SQLite database into collections.

use manifold_core::error::Result;
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use sqlx::{Row, SqlitePool};

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

/// Every user table and view, sorted by name.
pub async fn collections(pool: &SqlitePool) -> Result<Vec<Collection>> {
    let tables = sqlx::query(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(map_sqlx)?;
    let mut out = Vec::with_capacity(tables.len());
    for row in tables {
        let name: String = row.try_get("name").map_err(map_sqlx)?;
        let kind: String = row.try_get("type").map_err(map_sqlx)?;
        out.push(collection(pool, &name, kind == "view").await?);
    }
    Ok(out)
}

/// The collection for one table or view.
pub async fn collection(pool: &SqlitePool, table: &str, is_view: bool) -> Result<Collection> {
    let columns = sqlx::query(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(map_sqlx)?;
    let unique_columns = single_column_unique(pool, table).await?;
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

async fn single_column_unique(pool: &SqlitePool, table: &str) -> Result<Vec<String>> {
    let indexes = sqlx::query("SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1")
        .bind(table)
        .fetch_all(pool)
        .await
        .map_err(map_sqlx)?;
    let mut out = Vec::new();
    for index in indexes {
        let index: String = index.try_get("name").map_err(map_sqlx)?;
        let cols = sqlx::query("SELECT name FROM pragma_index_info(?)")
            .bind(&index)
            .fetch_all(pool)
            .await
            .map_err(map_sqlx)?;
        if let [only] = cols.as_slice() {
            out.push(only.try_get::<String, _>("name").map_err(map_sqlx)?);
        }
    }
    Ok(out)
}
