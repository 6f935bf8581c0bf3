//! Reads the tables and views of one PostgreSQL schema into collections.
//!
//! Two catalog queries read the whole schema (columns, then primary keys, unique indexes
//! and foreign keys), so a schema with hundreds of tables loads in two round trips, not
//! one per table.

use std::collections::BTreeMap;

use manifold_core::error::{Error, Result};
use manifold_core::schema::{Collection, Field, FieldType, ForeignKey, TableName};
use manifold_core::value::Value;
use manifold_sql::Sql;
use manifold_sql::pool::SharedPool;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};

use crate::codec::prepare;
use crate::error::map_sqlx;

/// The column comment that marks a JSONB column created for an `array` field, so the
/// field reads back as `array` rather than `json`.
pub const ARRAY_COMMENT: &str = "manifold:array";

/// Every column of every table and view in schema `$1` (or only table `$2`), in ordinal
/// order. Domains are described by their base type.
const COLUMNS: &str = "\
SELECT c.relname::text AS table_name, c.relkind::text AS relkind, \
       a.attname::text AS column_name, \
       format_type(a.atttypid, a.atttypmod) AS raw_type, \
       COALESCE(bt.typname, t.typname)::text AS type_name, \
       COALESCE(bt.typtype, t.typtype)::text AS type_kind, \
       COALESCE(bt.typcategory, t.typcategory)::text AS type_category, \
       COALESCE(a.attnotnull, false) AS not_null, \
       pg_get_expr(d.adbin, d.adrelid) AS default_expr, \
       COALESCE(a.attidentity::text, '') AS identity, \
       COALESCE(a.attgenerated::text, '') AS generated, \
       col_description(c.oid, a.attnum) AS comment \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
LEFT JOIN pg_catalog.pg_attribute a \
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition \
  AND ($2::text IS NULL OR c.relname = $2) \
ORDER BY c.relname, a.attnum";

/// The key columns of every primary key, every unconditional, column-only unique index
/// and every foreign key of the tables of schema `$1` (or only of table `$2`), one row per
/// column, so keys of all kinds cost one round trip whatever the number of tables.
///
/// `kind` tells indexes (`index`) from foreign keys (`foreign`). Foreign keys come in
/// creation order (constraint oids grow as constraints are created), columns in key order,
/// with the target's schema so that keys into another schema can be left out (and logged).
/// Foreign keys with a parent (`conparentid`) are the copies PostgreSQL makes on each
/// partition of a partitioned target: the parent constraint stands for them all.
const KEYS: &str = "\
SELECT c.relname::text AS table_name, 'index'::text AS kind, i.indexrelid::int8 AS key_id, \
       i.indisprimary AS is_primary, a.attname::text AS column_name, \
       NULL::text AS constraint_name, NULL::text AS target_schema, \
       NULL::text AS target_table, NULL::text AS target_column, k.ord AS ord \
FROM pg_catalog.pg_index i \
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
WHERE n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2) \
  AND (i.indisprimary OR (i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL)) \
  AND k.ord <= i.indnkeyatts \
UNION ALL \
SELECT c.relname::text, 'foreign'::text, fk.oid::int8, false, a.attname::text, \
       fk.conname::text, tn.nspname::text, t.relname::text, ta.attname::text, u.ord \
FROM pg_catalog.pg_constraint fk \
JOIN pg_catalog.pg_class c ON c.oid = fk.conrelid \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_class t ON t.oid = fk.confrelid \
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
CROSS JOIN LATERAL unnest(fk.conkey, fk.confkey) WITH ORDINALITY AS u(attnum, target_attnum, ord) \
JOIN pg_catalog.pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = u.attnum \
JOIN pg_catalog.pg_attribute ta ON ta.attrelid = fk.confrelid AND ta.attnum = u.target_attnum \
WHERE fk.contype = 'f' AND fk.conparentid = 0 AND n.nspname = $1 \
  AND NOT c.relispartition AND ($2::text IS NULL OR c.relname = $2) \
ORDER BY table_name, kind, key_id, ord";

/// The field type for a column type, from `pg_type`: its name (`int4`, `varchar`),
/// `typtype` (`e` for enums) and `typcategory` (`A` for arrays). Unknown types are
/// strings: they are read back as their text.
pub fn field_type(type_name: &str, type_kind: &str, type_category: &str) -> FieldType {
    if type_category == "A" {
        return FieldType::Array;
    }
    if type_kind == "e" {
        return FieldType::String;
    }
    match type_name {
        "varchar" | "bpchar" | "char" | "name" | "oid" => FieldType::String,
        "text" | "citext" => FieldType::Text,
        "int2" | "int4" => FieldType::Integer,
        "int8" => FieldType::BigInt,
        "float4" => FieldType::Float,
        "float8" => FieldType::Double,
        "numeric" => FieldType::Decimal,
        "bool" => FieldType::Boolean,
        "date" => FieldType::Date,
        "timestamptz" => FieldType::DateTime,
        "timestamp" => FieldType::DateTimeNoTz,
        "time" => FieldType::Time,
        "json" | "jsonb" => FieldType::Json,
        "uuid" => FieldType::Uuid,
        "bytea" => FieldType::Binary,
        _ => FieldType::String,
    }
}

/// Every table and view of `schema` (partitions excluded, their parent included), sorted
/// by name.
pub async fn collections(pool: &SharedPool<Postgres>, schema: &str) -> Result<Vec<Collection>> {
    load(pool, schema, None).await
}

/// The collection for table or view `table` of `schema`; 404 if there is none.
pub async fn collection(
    pool: &SharedPool<Postgres>,
    schema: &str,
    table: &str,
) -> Result<Collection> {
    load(pool, schema, Some(table))
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

async fn load(
    pool: &SharedPool<Postgres>,
    schema: &str,
    only: Option<&str>,
) -> Result<Vec<Collection>> {
    let params = vec![
        Value::Text(schema.to_owned()),
        only.map_or(Value::Null, |t| Value::Text(t.to_owned())),
    ];
    let query = |text: &str| Sql {
        text: text.to_owned(),
        params: params.clone(),
    };
    let mut connection = pool.acquire().await.map_err(map_sqlx)?;
    let columns = prepare(&query(COLUMNS))
        .fetch_all(&mut **connection)
        .await
        .map_err(map_sqlx)?;
    let keys = prepare(&query(KEYS))
        .fetch_all(&mut **connection)
        .await
        .map_err(map_sqlx)?;

    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for row in &columns {
        let name: String = get(row, "table_name")?;
        let table = tables.entry(name).or_default();
        table.is_view = matches!(get::<String>(row, "relkind")?.as_str(), "v" | "m");
        // A table without columns still comes back once, with a NULL column.
        if let Some(column) = get::<Option<String>>(row, "column_name")? {
            table.fields.push(column_field(row, column)?);
        }
    }
    let mut indexes: BTreeMap<(String, i64), (bool, Vec<String>)> = BTreeMap::new();
    let mut foreign_keys: Vec<&PgRow> = Vec::new();
    for row in &keys {
        if get::<String>(row, "kind")? == "foreign" {
            foreign_keys.push(row);
            continue;
        }
        let entry = indexes
            .entry((get(row, "table_name")?, get(row, "key_id")?))
            .or_insert_with(|| (false, Vec::new()));
        entry.0 = get(row, "is_primary")?;
        entry.1.push(get(row, "column_name")?);
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

/// Groups the foreign-key rows of `KEYS` into keys on their tables, leaving out keys into
/// another schema: their target is no collection of this data source.
fn add_foreign_keys(
    schema: &str,
    rows: &[&PgRow],
    tables: &mut BTreeMap<String, Table>,
) -> Result<()> {
    // Rows come grouped by constraint: a key starts whenever the constraint id changes.
    let mut previous: Option<i64> = None;
    let mut keys: Vec<(String, Option<ForeignKey>)> = Vec::new();
    for &row in rows {
        let id: i64 = get(row, "key_id")?;
        if previous != Some(id) {
            previous = Some(id);
            let table: String = get(row, "table_name")?;
            let target_schema: String = get(row, "target_schema")?;
            let key = if target_schema == schema {
                let target: String = get(row, "target_table")?;
                Some(ForeignKey {
                    columns: Vec::new(),
                    // Collections are named with dots replaced (see `build`).
                    target: target.replace('.', "_"),
                    target_columns: Vec::new(),
                })
            } else {
                tracing::debug!(
                    table,
                    constraint = get::<String>(row, "constraint_name")?,
                    target_schema,
                    "foreign key into another schema: left out"
                );
                None
            };
            keys.push((table, key));
        }
        if let Some((_, Some(key))) = keys.last_mut() {
            key.columns.push(get(row, "column_name")?);
            key.target_columns.push(get(row, "target_column")?);
        }
    }
    for (table, key) in keys {
        if let (Some(t), Some(key)) = (tables.get_mut(&table), key) {
            t.foreign_keys.push(key);
        }
    }
    Ok(())
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(map_sqlx)
}

fn column_field(row: &PgRow, column: String) -> Result<Field> {
    let type_name: String = get(row, "type_name")?;
    let mut field = Field::new(
        column,
        field_type(
            &type_name,
            &get::<String>(row, "type_kind")?,
            &get::<String>(row, "type_category")?,
        ),
    );
    field.raw_type = get(row, "raw_type")?;
    if field.field_type == FieldType::Json
        && get::<Option<String>>(row, "comment")?.as_deref() == Some(ARRAY_COMMENT)
    {
        field.field_type = FieldType::Array;
    }
    let default: Option<String> = get(row, "default_expr")?;
    let identity: String = get(row, "identity")?;
    let generated: String = get(row, "generated")?;
    let not_null: bool = get(row, "not_null")?;
    let default_fn = |prefix: &str| default.as_deref().is_some_and(|d| d.starts_with(prefix));
    field.auto_increment = !identity.is_empty()
        || default_fn("nextval(")
        || default_fn("uuid_generate_v4(")
        || default_fn("gen_random_uuid(");
    // A column the database fills may be omitted on create.
    field.allow_null =
        !not_null || default.is_some() || !identity.is_empty() || !generated.is_empty();
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
    fn maps_the_postgres_type_names() {
        assert_eq!(field_type("varchar", "b", "S"), FieldType::String);
        assert_eq!(field_type("text", "b", "S"), FieldType::Text);
        assert_eq!(field_type("int8", "b", "N"), FieldType::BigInt);
        assert_eq!(field_type("_int4", "b", "A"), FieldType::Array);
        assert_eq!(field_type("mood", "e", "E"), FieldType::String);
        assert_eq!(field_type("interval", "b", "T"), FieldType::String);
        assert_eq!(field_type("timestamptz", "b", "D"), FieldType::DateTime);
        assert_eq!(field_type("timestamp", "b", "D"), FieldType::DateTimeNoTz);
    }
}
