//! Typed values to PostgreSQL parameters, and PostgreSQL cells back to API JSON.
//!
//! sqlx talks to PostgreSQL in the binary wire format. Parameters are sent with the type
//! that compares and assigns correctly against the column they meet; result cells are
//! decoded by [`crate::wire`] from their binary form by the cell's actual PostgreSQL type.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use manifold_core::error::Result;
use manifold_core::filter::FieldRef;
use manifold_core::schema::FieldType;
use manifold_core::value::{Value, text_to_json};
use serde_json::Value as Json;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgRow, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Encode, Postgres, Row, Type, TypeInfo, ValueRef};

use crate::error::map_sqlx;
use crate::wire::{Codec, decode};

/// A query with its arguments.
pub type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The PostgreSQL driver of the shared sqlx repository.
pub struct PostgresDriver;

impl manifold_sql::sqlx_repository::SqlxDriver for PostgresDriver {
    type Db = Postgres;
    const DIALECT: &'static dyn manifold_sql::Dialect = &crate::PostgresDialect;

    fn prepare(sql: &manifold_sql::Sql) -> PgQuery<'static> {
        prepare(sql)
    }

    fn cell(row: &PgRow, index: usize, field: &FieldRef) -> Result<Json> {
        decode_cell(row, index, field)
    }

    fn map_error(e: sqlx::Error) -> manifold_core::Error {
        map_sqlx(e)
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The sqlx query for a compiled statement.
///
/// This is the one place SQL text meets the driver. `Sql` text is built only from this
/// workspace's keywords and quoted schema identifiers, with every value bound, which is
/// what `AssertSqlSafe` asserts.
pub fn prepare(sql: &manifold_sql::Sql) -> PgQuery<'static> {
    // PostgreSQL fixes parameter types when a statement is parsed, and sqlx caches parsed
    // statements by their text alone. An untyped NULL takes its column's type (say int4)
    // at parse time; a later run of the same text with a typed value in that slot (an
    // int8) would reuse that statement and send bytes of the wrong type. So the text
    // names the NULL slots, and each pattern of NULLs is its own cached statement.
    // (Not caching such statements is no way out: sqlx resolves a new enum type with a
    // simple query, which destroys the unnamed statement it is about to execute.)
    let nulls: Vec<String> = sql
        .params
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v, Value::Null))
        .map(|(i, _)| format!("${}", i + 1))
        .collect();
    let text = if nulls.is_empty() {
        sql.text.clone()
    } else {
        format!("{} /* null: {} */", sql.text, nulls.join(","))
    };
    bind_all(sqlx::query(sqlx::AssertSqlSafe(text)), &sql.params)
}

/// A parameter whose type PostgreSQL infers from where it is used, sent as text bytes.
///
/// NULL this way is accepted by every column type. Text this way takes the type of the
/// column it meets: `varchar`, `char(n)`, `citext`, or a user enum, none of which would
/// accept or compare with a parameter declared `text`.
struct Untyped(Option<String>);

impl Type<Postgres> for Untyped {
    fn type_info() -> PgTypeInfo {
        // OID 0 means "unspecified" in the protocol's Parse message.
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl Encode<'_, Postgres> for Untyped {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> std::result::Result<IsNull, BoxDynError> {
        match &self.0 {
            Some(text) => {
                buf.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }
}

/// Binds `values` in order, each with the PostgreSQL type that compares and assigns
/// correctly against its column (int8 and float8 widen to any integer or float column;
/// JSON is jsonb, which also assigns into `json` columns).
fn bind_all<'q>(mut q: PgQuery<'q>, values: &[Value]) -> PgQuery<'q> {
    for v in values {
        q = match v {
            Value::Null => q.bind(Untyped(None)),
            Value::Bool(b) => q.bind(*b),
            Value::Int(i) => q.bind(*i),
            Value::Float(f) => q.bind(*f),
            Value::Decimal(s) => match s.parse::<sqlx::types::BigDecimal>() {
                Ok(d) => q.bind(d),
                Err(_) => {
                    // The core only builds decimals from checked literals. Should one slip
                    // through, as `text` it fails to parse against a numeric column (a
                    // 400), rather than reaching the server as malformed NUMERIC bytes.
                    tracing::warn!("decimal parameter is not a decimal literal");
                    q.bind(s.clone())
                }
            },
            Value::Text(s) => q.bind(Untyped(Some(s.clone()))),
            Value::Json(j) => q.bind(sqlx::types::Json(j.clone())),
            Value::Date(d) => q.bind(*d),
            Value::DateTime(t) => q.bind(*t),
            Value::DateTimeNoTz(t) => q.bind(*t),
            Value::Time(t) => q.bind(*t),
            Value::Uuid(u) => q.bind(*u),
            Value::Bytes(b) => q.bind(b.clone()),
        };
    }
    q
}

/// Decodes the cell at `index` of `row`, a column of `field`.
fn decode_cell(row: &PgRow, index: usize, field: &FieldRef) -> Result<Json> {
    let raw = row.try_get_raw(index).map_err(map_sqlx)?;
    Ok(cell(&raw, field.field_type))
}

/// One cell as API JSON; never fails: what cannot be decoded is logged and becomes null.
fn cell(raw: &PgValueRef<'_>, field_type: FieldType) -> Json {
    if raw.is_null() {
        return Json::Null;
    }
    let Ok(bytes) = raw.as_bytes() else {
        return Json::Null;
    };
    let type_info = raw.type_info();
    // Prepared statements answer in the binary format; the text format is handled so a
    // change in sqlx cannot break decoding.
    if raw.format() == PgValueFormat::Text {
        return match std::str::from_utf8(bytes) {
            Ok(text) => text_to_json(field_type, text.to_owned()),
            Err(_) => undecodable(type_info.name(), "text cell is not UTF-8"),
        };
    }
    let codec = Codec::of(&type_info);
    match decode(&codec, bytes) {
        Ok(json) => json,
        Err(reason) => undecodable(type_info.name(), &reason),
    }
}

/// Logs a cell that cannot be decoded (once per type and reason, so a large result does
/// not flood the log) and renders it as null.
fn undecodable(type_name: &str, reason: &str) -> Json {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let key = format!("{type_name}: {reason}");
    let first = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .map(|mut seen| seen.len() < 1024 && seen.insert(key.clone()))
        .unwrap_or(true);
    if first {
        tracing::warn!(
            pg_type = type_name,
            reason,
            "postgres value rendered as null"
        );
    }
    Json::Null
}
