//! Reads the schema of the configured MySQL/MariaDB database into collections.
//!
//! The whole database is read in a fixed number of information_schema queries (tables,
//! columns, indexes, foreign keys, and on MariaDB check constraints), never one per table,
//! so a database with hundreds of tables loads in the same few round trips.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

use manifold_core::error::Result;
use manifold_core::schema::{Collection, Field, FieldType, ForeignKey, TableName};
use manifold_sql::pool::SharedPool;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlConnection};

use crate::codec::text_at;
use crate::error::map_sqlx;

/// The column comment with which Manifold marks a column whose field type the MySQL type
/// alone cannot tell (`manifold:datetime`, `manifold:boolean`, `manifold:uuid`,
/// `manifold:array`), so a collection it created keeps its types across a restart.
pub const TYPE_MARKER: &str = "manifold:";

/// Which server a pool talks to; they differ in JSON columns and statement timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFlavor {
    /// Oracle MySQL (5.7, 8.x, 9.x).
    MySql,
    /// MariaDB (10.x, 11.x).
    MariaDb,
}

impl ServerFlavor {
    /// The flavor of a server from its `VERSION()` string.
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            ServerFlavor::MariaDb
        } else {
            ServerFlavor::MySql
        }
    }
}

/// The field type of a column from information_schema's `DATA_TYPE` and `COLUMN_TYPE`
/// (the type map of the data-sources spec, §5.3).
pub fn field_type(data_type: &str, column_type: &str) -> FieldType {
    let data_type = data_type.trim().to_ascii_lowercase();
    match data_type.as_str() {
        // TINYINT(1) included: the spec maps it to integer, like NocoBase.
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" => FieldType::Integer,
        "bigint" => FieldType::BigInt,
        "char" | "varchar" => FieldType::String,
        "tinytext" | "text" | "mediumtext" | "longtext" => FieldType::Text,
        "float" => FieldType::Float,
        "double" | "real" | "double precision" => FieldType::Double,
        "decimal" | "numeric" | "fixed" => FieldType::Decimal,
        "bit" if column_type.trim().eq_ignore_ascii_case("bit(1)") => FieldType::Boolean,
        // Wider BIT(n) holds a number of up to 64 bits.
        "bit" => FieldType::BigInt,
        "bool" | "boolean" => FieldType::Boolean,
        "date" => FieldType::Date,
        "time" => FieldType::Time,
        "year" => FieldType::String,
        "datetime" => FieldType::DateTimeNoTz,
        "timestamp" => FieldType::DateTime,
        "json" => FieldType::Json,
        "enum" | "set" => FieldType::String,
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "binary" | "varbinary" => {
            FieldType::Binary
        }
        // Spatial and future types are served as their text.
        _ => FieldType::String,
    }
}

/// The field type a `manifold:<type>` comment asks for, when the storage type can hold it.
fn marked_type(data_type: &str, comment: &str) -> Option<FieldType> {
    let wanted = FieldType::parse(comment.trim().strip_prefix(TYPE_MARKER)?)?;
    let data_type = data_type.to_ascii_lowercase();
    let fits = match wanted {
        FieldType::DateTime => matches!(data_type.as_str(), "datetime" | "timestamp"),
        FieldType::Boolean => matches!(data_type.as_str(), "tinyint" | "bit"),
        FieldType::Uuid => matches!(data_type.as_str(), "char" | "varchar"),
        FieldType::Array => matches!(data_type.as_str(), "json" | "longtext"),
        _ => false,
    };
    fits.then_some(wanted)
}

struct ColumnRow {
    name: String,
    data_type: String,
    column_type: String,
    nullable: bool,
    has_default: bool,
    auto_increment: bool,
    comment: String,
}

#[derive(Default)]
struct TableInfo {
    is_view: bool,
    columns: Vec<ColumnRow>,
    /// Primary-key columns, in key order.
    primary: Vec<String>,
    /// Columns covered alone by a unique index.
    unique: HashSet<String>,
    /// MariaDB columns constrained by `json_valid(col)`: its JSON columns.
    json_checked: HashSet<String>,
    /// Foreign keys into this database, in constraint order.
    foreign_keys: Vec<ForeignKey>,
}

/// One index of a table.
struct IndexInfo {
    unique: bool,
    /// Its columns in order; `None` for an expression or a column prefix.
    columns: Vec<Option<String>>,
}

/// A `WHERE` restricted to the connection's database and, when given, one table.
fn scoped(sql: &str, schema_column: &str, table: Option<&str>, tail: &str) -> String {
    let mut out = format!("{sql} WHERE {schema_column} = DATABASE()");
    if table.is_some() {
        out.push_str(" AND TABLE_NAME = ?");
    }
    out.push(' ');
    out.push_str(tail);
    out
}

async fn fetch(
    connection: &mut MySqlConnection,
    sql: String,
    table: Option<&str>,
) -> Result<Vec<MySqlRow>> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(table) = table {
        q = q.bind(table.to_owned());
    }
    q.fetch_all(connection).await.map_err(map_sqlx)
}

fn required(row: &MySqlRow, i: usize) -> Result<String> {
    Ok(text_at(row, i)?.unwrap_or_default())
}

/// Reads `table`, or every table and view when `None`.
async fn read(
    pool: &SharedPool<MySql>,
    flavor: ServerFlavor,
    table: Option<&str>,
) -> Result<BTreeMap<String, TableInfo>> {
    let mut connection = pool.acquire().await.map_err(map_sqlx)?;
    let connection: &mut MySqlConnection = &mut connection;
    let mut tables: BTreeMap<String, TableInfo> = BTreeMap::new();
    let rows = fetch(
        connection,
        scoped(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES",
            "TABLE_SCHEMA",
            table,
            // MariaDB sequences are tables of one row of counters, not data.
            "AND TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED')",
        ),
        table,
    )
    .await?;
    for row in &rows {
        let name = required(row, 0)?;
        let kind = required(row, 1)?;
        tables.insert(
            name,
            TableInfo {
                is_view: kind.eq_ignore_ascii_case("VIEW"),
                ..TableInfo::default()
            },
        );
    }

    let rows = fetch(
        connection,
        scoped(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
             COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT FROM information_schema.COLUMNS",
            "TABLE_SCHEMA",
            table,
            "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        ),
        table,
    )
    .await?;
    for row in &rows {
        let Some(info) = tables.get_mut(&required(row, 0)?) else {
            continue;
        };
        let extra = required(row, 6)?.to_ascii_lowercase();
        info.columns.push(ColumnRow {
            name: required(row, 1)?,
            data_type: required(row, 2)?,
            column_type: required(row, 3)?,
            nullable: required(row, 4)?.eq_ignore_ascii_case("YES"),
            has_default: text_at(row, 5)?.is_some(),
            auto_increment: extra.contains("auto_increment"),
            comment: required(row, 7)?,
        });
    }

    let rows = fetch(
        connection,
        scoped(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART \
             FROM information_schema.STATISTICS",
            "TABLE_SCHEMA",
            table,
            "ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        ),
        table,
    )
    .await?;
    let mut indexes: BTreeMap<(String, String), IndexInfo> = BTreeMap::new();
    for row in &rows {
        let key = (required(row, 0)?, required(row, 1)?);
        let unique = text_at(row, 2)?.as_deref() == Some("0");
        // A prefix index (`UNIQUE (title(10))`) does not make the whole column unique.
        let prefix = text_at(row, 4)?.is_some();
        let column = text_at(row, 3)?.filter(|_| !prefix);
        indexes
            .entry(key)
            .or_insert(IndexInfo {
                unique,
                columns: Vec::new(),
            })
            .columns
            .push(column);
    }
    for ((table_name, index), IndexInfo { unique, columns }) in indexes {
        let Some(info) = tables.get_mut(&table_name) else {
            continue;
        };
        if index == "PRIMARY" {
            info.primary = columns.into_iter().flatten().collect();
        } else if let (true, [Some(only)]) = (unique, columns.as_slice()) {
            info.unique.insert(only.clone());
        }
    }

    let rows = fetch(
        connection,
        scoped(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, \
             REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME, TABLE_SCHEMA \
             FROM information_schema.KEY_COLUMN_USAGE",
            "TABLE_SCHEMA",
            table,
            "AND REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
        ),
        table,
    )
    .await?;
    add_foreign_keys(&rows, &mut tables)?;

    if flavor == ServerFlavor::MariaDb {
        // MariaDB's JSON is an alias of LONGTEXT with a column check `json_valid(col)`.
        let rows = fetch(
            connection,
            scoped(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE \
                 FROM information_schema.CHECK_CONSTRAINTS",
                "CONSTRAINT_SCHEMA",
                table,
                "",
            ),
            table,
        )
        .await?;
        for row in &rows {
            let Some(info) = tables.get_mut(&required(row, 0)?) else {
                continue;
            };
            let clause: String = required(row, 2)?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            for column in &info.columns {
                let expected = format!(
                    "json_valid(`{}`)",
                    column.name.replace('`', "``").to_ascii_lowercase()
                );
                if clause == expected {
                    info.json_checked.insert(column.name.clone());
                }
            }
        }
    }
    Ok(tables)
}

/// Groups the rows of the KEY_COLUMN_USAGE query into keys on their tables, leaving out keys
/// into another database: their target is no collection of this data source.
fn add_foreign_keys(rows: &[MySqlRow], tables: &mut BTreeMap<String, TableInfo>) -> Result<()> {
    // Rows come grouped by (table, constraint): a key starts whenever that pair changes.
    let mut keys: Vec<((String, String), Option<ForeignKey>)> = Vec::new();
    for row in rows {
        let at = (required(row, 0)?, required(row, 1)?);
        if keys.last().is_none_or(|(last, _)| *last != at) {
            let target_schema = required(row, 3)?;
            let key = if target_schema == required(row, 6)? {
                Some(ForeignKey {
                    columns: Vec::new(),
                    // Collections are named with dots replaced (see `build`).
                    target: required(row, 4)?.replace('.', "_"),
                    target_columns: Vec::new(),
                })
            } else {
                tracing::debug!(
                    table = at.0,
                    constraint = at.1,
                    target_schema,
                    "foreign key into another database: left out"
                );
                None
            };
            keys.push((at, key));
        }
        if let Some((_, Some(key))) = keys.last_mut() {
            key.columns.push(required(row, 2)?);
            key.target_columns.push(required(row, 5)?);
        }
    }
    // Generated names (`posts_ibfk_1`, …) number keys in declaration order, which decides
    // association names; compared as text, `_10` would sort before `_2`.
    keys.sort_by(|((table_a, a), _), ((table_b, b), _)| {
        table_a.cmp(table_b).then_with(|| natural_order(a, b))
    });
    for ((table, _), key) in keys {
        if let (Some(info), Some(key)) = (tables.get_mut(&table), key) {
            info.foreign_keys.push(key);
        }
    }
    Ok(())
}

/// Compares names by their text without trailing digits, then by those digits as a number.
fn natural_order(a: &str, b: &str) -> Ordering {
    let split = |s: &str| {
        let stem = s.trim_end_matches(|c: char| c.is_ascii_digit());
        let digits = s[stem.len()..].trim_start_matches('0');
        (stem.to_owned(), digits.len(), digits.to_owned())
    };
    split(a).cmp(&split(b))
}

/// Builds the collection of one table from what [`read`] found.
fn build(table: &str, info: TableInfo) -> Result<Collection> {
    let mut fields: Vec<Field> = info
        .columns
        .iter()
        .map(|c| {
            let mut field_type = field_type(&c.data_type, &c.column_type);
            if info.json_checked.contains(&c.name) {
                field_type = FieldType::Json;
            }
            if let Some(marked) = marked_type(&c.data_type, &c.comment) {
                field_type = marked;
            }
            let mut field = Field::new(c.name.clone(), field_type);
            field.raw_type = c.column_type.clone();
            field.auto_increment = c.auto_increment;
            // As NocoBase: a column with a default may be omitted, so it "allows null".
            field.allow_null = c.nullable || c.has_default || c.auto_increment;
            field
        })
        .collect();
    let unique: Vec<String> = info.unique.iter().cloned().collect();
    manifold_core::schema::mark_key(&mut fields, &info.primary, &unique, info.is_view);
    // Resource names may not contain dots (the spec replaces them by `_`).
    let mut collection = Collection::new(table.replace('.', "_"), TableName::new(table), fields)
        .map_err(|e| e.context(format!("table {table} introspection error")))?;
    collection.is_view = info.is_view;
    collection.foreign_keys = info.foreign_keys;
    Ok(collection)
}

/// Every user table and view of the connection's database, sorted by name.
pub async fn collections(
    pool: &SharedPool<MySql>,
    flavor: ServerFlavor,
) -> Result<Vec<Collection>> {
    read(pool, flavor, None)
        .await?
        .into_iter()
        .map(|(name, info)| build(&name, info))
        .collect()
}

/// The collection of one table or view, or a 404 when it does not exist.
pub async fn collection(
    pool: &SharedPool<MySql>,
    flavor: ServerFlavor,
    table: &str,
) -> Result<Collection> {
    let mut tables = read(pool, flavor, Some(table)).await?;
    let info = tables.remove(table).ok_or_else(|| {
        manifold_core::error::Error::not_found(format!("table {table} does not exist"))
    })?;
    build(table, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_type_map_holds() {
        let cases = [
            ("tinyint", "tinyint(1)", FieldType::Integer),
            ("int", "int(10) unsigned", FieldType::Integer),
            ("bigint", "bigint(20) unsigned", FieldType::BigInt),
            ("varchar", "varchar(255)", FieldType::String),
            ("mediumtext", "mediumtext", FieldType::Text),
            ("double", "double", FieldType::Double),
            ("decimal", "decimal(38,10)", FieldType::Decimal),
            ("bit", "bit(1)", FieldType::Boolean),
            ("bit", "bit(8)", FieldType::BigInt),
            ("year", "year(4)", FieldType::String),
            ("datetime", "datetime(3)", FieldType::DateTimeNoTz),
            ("timestamp", "timestamp", FieldType::DateTime),
            ("enum", "enum('a','b')", FieldType::String),
            ("varbinary", "varbinary(16)", FieldType::Binary),
            ("geometry", "geometry", FieldType::String),
        ];
        for (data_type, column_type, expected) in cases {
            assert_eq!(
                field_type(data_type, column_type),
                expected,
                "{column_type}"
            );
        }
    }

    #[test]
    fn generated_constraint_names_sort_by_their_number() {
        let mut names = ["posts_ibfk_10", "posts_ibfk_2", "posts_ibfk_1", "fk_author"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            names,
            ["fk_author", "posts_ibfk_1", "posts_ibfk_2", "posts_ibfk_10"]
        );
    }

    #[test]
    fn markers_apply_only_to_fitting_storage() {
        assert_eq!(
            marked_type("datetime", "manifold:datetime"),
            Some(FieldType::DateTime)
        );
        assert_eq!(
            marked_type("tinyint", "manifold:boolean"),
            Some(FieldType::Boolean)
        );
        assert_eq!(marked_type("int", "manifold:datetime"), None);
        assert_eq!(marked_type("datetime", "a user comment"), None);
    }
}
