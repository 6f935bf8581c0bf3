//! Typed values to SQLite parameters, and SQLite cells back to API JSON.
//!
//! SQLite stores each cell in one of five storage classes whatever the column's declared
//! type, so decoding looks at the cell's actual class and then shapes it by the field type.

use base64::Engine as _;
use manifold_core::error::Result;
use manifold_core::filter::FieldRef;
use manifold_core::schema::FieldType;
use manifold_core::value::{Value, float_to_json, format_instant, int_to_json, text_to_json};
use serde_json::Value as Json;
use sqlx::sqlite::{SqliteArguments, SqliteRow, SqliteValueRef};
use sqlx::{Decode, Row, Sqlite, TypeInfo, ValueRef};

use crate::error::map_sqlx;

/// A query with its arguments.
pub type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// The SQLite driver of the shared sqlx repository.
pub struct SqliteDriver;

impl manifold_sql::sqlx_repository::SqlxDriver for SqliteDriver {
    type Db = Sqlite;
    const DIALECT: &'static dyn manifold_sql::Dialect = &crate::SqliteDialect;

    fn prepare(sql: &manifold_sql::Sql) -> SqliteQuery<'static> {
        prepare(sql)
    }

    fn cell(row: &SqliteRow, index: usize, field: &FieldRef) -> Result<Json> {
        decode_cell(row, index, field)
    }

    fn map_error(e: sqlx::Error) -> manifold_core::Error {
        map_sqlx(e)
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The sqlx query for a compiled statement.
///
/// This is the one place SQL text meets the driver. `Sql` text is built only from this
/// workspace's keywords and quoted schema identifiers, with every value bound, which is
/// what `AssertSqlSafe` asserts.
pub fn prepare(sql: &manifold_sql::Sql) -> SqliteQuery<'static> {
    bind_all(
        sqlx::query(sqlx::AssertSqlSafe(sql.text.clone())),
        &sql.params,
    )
}

/// Binds `values` in order. Instants are stored as canonical ISO text, so text order is
/// time order; JSON is stored as its text.
fn bind_all<'q>(mut q: SqliteQuery<'q>, values: &[Value]) -> SqliteQuery<'q> {
    for v in values {
        q = match v {
            Value::Null => q.bind(None::<String>),
            Value::Bool(b) => q.bind(*b),
            Value::Int(i) => q.bind(*i),
            Value::Float(f) => q.bind(*f),
            Value::Decimal(s) | Value::Text(s) => q.bind(s.clone()),
            Value::Json(j) => q.bind(j.to_string()),
            Value::Date(d) => q.bind(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(t) => q.bind(format_instant(t)),
            Value::DateTimeNoTz(t) => q.bind(t.format("%Y-%m-%d %H:%M:%S").to_string()),
            Value::Time(t) => q.bind(t.format("%H:%M:%S").to_string()),
            Value::Uuid(u) => q.bind(u.hyphenated().to_string()),
            Value::Bytes(b) => q.bind(b.clone()),
        };
    }
    q
}

enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// The storage class of a non-null SQLite value.
enum Class {
    Integer,
    Real,
    Blob,
    Text,
}

fn cell(raw: SqliteValueRef<'_>) -> std::result::Result<Cell, sqlx::error::BoxDynError> {
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    // The storage class is read before the value is decoded, which consumes `raw`.
    let class = match raw.type_info().name() {
        "INTEGER" => Class::Integer,
        "REAL" => Class::Real,
        "BLOB" => Class::Blob,
        _ => Class::Text,
    };
    Ok(match class {
        Class::Integer => Cell::Int(<i64 as Decode<Sqlite>>::decode(raw)?),
        Class::Real => Cell::Real(<f64 as Decode<Sqlite>>::decode(raw)?),
        Class::Blob => Cell::Blob(<Vec<u8> as Decode<Sqlite>>::decode(raw)?),
        Class::Text => Cell::Text(<String as Decode<Sqlite>>::decode(raw)?),
    })
}

fn render(field_type: FieldType, c: Cell) -> Json {
    match (field_type, c) {
        (_, Cell::Null) => Json::Null,
        (FieldType::Boolean, Cell::Int(i)) => Json::Bool(i != 0),
        (FieldType::Decimal, Cell::Int(i)) => Json::String(i.to_string()),
        (FieldType::Decimal, Cell::Real(f)) => Json::String(f.to_string()),
        (FieldType::Float | FieldType::Double, Cell::Int(i)) => float_to_json(i as f64),
        (_, Cell::Int(i)) => int_to_json(i),
        (_, Cell::Real(f)) => float_to_json(f),
        (_, Cell::Text(s)) => text_to_json(field_type, s),
        (_, Cell::Blob(b)) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

/// Decodes the cell at `index` of `row`, a column of `field`.
fn decode_cell(row: &SqliteRow, index: usize, field: &FieldRef) -> Result<Json> {
    let raw = row.try_get_raw(index).map_err(map_sqlx)?;
    let c = cell(raw).map_err(|e| map_sqlx(sqlx::Error::Decode(e)))?;
    Ok(render(field.field_type, c))
}
