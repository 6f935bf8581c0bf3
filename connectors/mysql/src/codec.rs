//! Typed values to MySQL parameters, and MySQL cells back to API JSON.
//!
//! Decoding looks at the column type the server actually sent (a view or an expression can
//! differ from the schema) and then shapes the value by the field type. Nothing here panics
//! on a type it does not expect: it falls back to text, or to null with a warning.

use std::str::FromStr;

use base64::Engine as _;
use chrono::{NaiveDate, NaiveDateTime};
use manifold_core::error::Result;
use manifold_core::filter::FieldRef;
use manifold_core::schema::FieldType;
use manifold_core::value::{Value, float_to_json, format_instant, int_to_json, text_to_json};
use serde_json::Value as Json;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::mysql::types::MySqlTime;
use sqlx::mysql::{MySqlArguments, MySqlQueryResult, MySqlRow, MySqlTypeInfo, MySqlValueRef};
use sqlx::types::BigDecimal;
use sqlx::{Decode, Encode, MySql, Row, Type, TypeInfo, ValueRef};

use crate::error::map_sqlx;
use manifold_sql::pool::SharedPool;
use manifold_sql::sqlx_repository::Boxed;

/// A query with its arguments.
pub type MySqlQuery<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

/// The MySQL/MariaDB driver of the shared sqlx repository.
pub struct MySqlDriver;

impl manifold_sql::sqlx_repository::SqlxDriver for MySqlDriver {
    type Db = MySql;
    const DIALECT: &'static dyn manifold_sql::Dialect = &crate::MySqlDialect;

    fn prepare(sql: &manifold_sql::Sql) -> MySqlQuery<'static> {
        prepare(sql)
    }

    fn cell(row: &MySqlRow, index: usize, field: &FieldRef) -> Result<Json> {
        decode_cell(row, index, field)
    }

    fn map_error(e: sqlx::Error) -> manifold_core::Error {
        map_sqlx(e)
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    fn last_insert_id(result: &MySqlQueryResult) -> Option<i64> {
        // 0 means the table generated no key (no AUTO_INCREMENT column); an unsigned key
        // past i64::MAX cannot be read back as a Value.
        i64::try_from(result.last_insert_id())
            .ok()
            .filter(|id| *id != 0)
    }

    fn session_id(conn: &mut sqlx::MySqlConnection) -> Boxed<'_, Result<Option<u64>>> {
        Box::pin(async move {
            let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(conn)
                .await
                .map_err(map_sqlx)?;
            Ok(Some(id))
        })
    }

    fn kill_statement(pool: SharedPool<sqlx::MySql>, id: u64) -> Boxed<'static, ()> {
        Box::pin(async move {
            // The id is the server's own number for the session, not request input.
            let kill = format!("KILL QUERY {id}");
            let killed = match pool.acquire().await {
                Ok(mut connection) => {
                    sqlx::query(sqlx::AssertSqlSafe(kill))
                        .execute(&mut **connection)
                        .await
                }
                Err(e) => Err(e),
            };
            match killed {
                Ok(_) => tracing::debug!(session = id, "abandoned statement killed"),
                // The statement may have ended, or its session closed, in the meantime.
                Err(e) => tracing::debug!(session = id, "abandoned statement not killed: {e}"),
            }
        })
    }
}

/// The sqlx query for a compiled statement.
///
/// This is the one place SQL text meets the driver. `Sql` text is built only from this
/// workspace's keywords and quoted schema identifiers, with every value bound, which is
/// what `AssertSqlSafe` asserts.
pub fn prepare(sql: &manifold_sql::Sql) -> MySqlQuery<'static> {
    bind_all(
        sqlx::query(sqlx::AssertSqlSafe(sql.text.clone())),
        &sql.params,
    )
}

/// A decimal sent as MySQL's DECIMAL type with its exact digits.
///
/// Sent as text, MySQL would compare a DECIMAL column with it as doubles and lose digits
/// beyond 15 or so; typed as DECIMAL it compares exactly.
struct DecimalText(String);

impl Type<MySql> for DecimalText {
    fn type_info() -> MySqlTypeInfo {
        <BigDecimal as Type<MySql>>::type_info()
    }
}

impl Encode<'_, MySql> for DecimalText {
    fn encode_by_ref(&self, buf: &mut Vec<u8>) -> std::result::Result<IsNull, BoxDynError> {
        <&str as Encode<MySql>>::encode(self.0.as_str(), buf)
    }
}

/// The canonical digits of a decimal: JSON numbers may arrive in exponent form (`1e30`),
/// which is rewritten in plain digits; anything else is already plain.
fn plain_decimal(s: &str) -> String {
    if s.contains(['e', 'E'])
        && let Ok(d) = BigDecimal::from_str(s)
    {
        return d.to_plain_string();
    }
    s.to_owned()
}

/// Binds `values` in order. Instants are sent as UTC wall-clock date-times: every session
/// runs with `time_zone = '+00:00'`, so TIMESTAMP columns convert nothing and DATETIME
/// columns hold UTC.
fn bind_all<'q>(mut q: MySqlQuery<'q>, values: &[Value]) -> MySqlQuery<'q> {
    for v in values {
        q = match v {
            Value::Null => q.bind(None::<String>),
            Value::Bool(b) => q.bind(*b),
            Value::Int(i) => q.bind(*i),
            Value::Float(f) => q.bind(*f),
            Value::Decimal(s) => q.bind(DecimalText(plain_decimal(s))),
            Value::Text(s) => q.bind(s.clone()),
            Value::Json(j) => q.bind(j.to_string()),
            Value::Date(d) => q.bind(*d),
            Value::DateTime(t) => q.bind(t.naive_utc()),
            Value::DateTimeNoTz(t) => q.bind(*t),
            Value::Time(t) => q.bind(*t),
            Value::Uuid(u) => q.bind(u.hyphenated().to_string()),
            Value::Bytes(b) => q.bind(b.clone()),
        };
    }
    q
}

/// One decoded cell, by what the server sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Real(f64),
    /// Exact decimal digits as the server wrote them.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Time(MySqlTime),
}

fn decode<'r, T: Decode<'r, MySql>>(
    raw: &MySqlValueRef<'r>,
) -> std::result::Result<T, BoxDynError> {
    T::decode(raw.clone())
}

/// Decodes a raw value by its column type. sqlx's decoders handle both the text and the
/// binary protocol, so the same code reads prepared and plain statements.
pub(crate) fn cell(raw: MySqlValueRef<'_>) -> std::result::Result<Cell, BoxDynError> {
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    let ty = raw.type_info().into_owned();
    Ok(match ty.name() {
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT"
        | "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" | "YEAR" => {
            // Signed decoding sign-extends, so unsigned columns need their own decoder.
            if <u64 as Type<MySql>>::compatible(&ty) {
                let n: u64 = decode(&raw)?;
                i64::try_from(n).map_or(Cell::UInt(n), Cell::Int)
            } else {
                Cell::Int(decode(&raw)?)
            }
        }
        "FLOAT" => {
            // Through f32's shortest text, so FLOAT 0.1 reads as 0.1, not 0.100000001…
            let f: f32 = decode(&raw)?;
            Cell::Real(f.to_string().parse().unwrap_or(f64::from(f)))
        }
        "DOUBLE" => Cell::Real(decode(&raw)?),
        "DECIMAL" => Cell::Decimal(decode::<&str>(&raw)?.to_owned()),
        "DATE" => Cell::Date(decode(&raw)?),
        "DATETIME" | "TIMESTAMP" => Cell::DateTime(decode(&raw)?),
        "TIME" => Cell::Time(decode(&raw)?),
        "BIT" | "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
        | "GEOMETRY" => Cell::Bytes(decode::<&[u8]>(&raw)?.to_vec()),
        _ => {
            // CHAR, VARCHAR, TEXT, ENUM, SET, JSON and anything newer: its bytes, as text
            // when they are UTF-8.
            let bytes: &[u8] = decode(&raw)?;
            match std::str::from_utf8(bytes) {
                Ok(s) => Cell::Text(s.to_owned()),
                Err(_) => Cell::Bytes(bytes.to_vec()),
            }
        }
    })
}

fn base64(b: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A BIT(n) value: big-endian bytes.
fn bits(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

/// `HH:mm:ss` for times of day; MySQL's TIME is an interval, so others keep its own form
/// (`-12:00:00`, `100:00:00`).
fn time(t: &MySqlTime) -> String {
    if t.is_valid_time_of_day() {
        format!("{:02}:{:02}:{:02}", t.hours(), t.minutes(), t.seconds())
    } else {
        format!("{t:.0}")
    }
}

fn bytes_as_text(field_type: FieldType, b: Vec<u8>) -> Json {
    match String::from_utf8(b) {
        Ok(s) => render(field_type, Cell::Text(s)),
        Err(e) => base64(e.as_bytes()),
    }
}

/// Shapes a cell as the API shows a value of `field_type`.
pub(crate) fn render(field_type: FieldType, c: Cell) -> Json {
    use FieldType as F;
    match (field_type, c) {
        (_, Cell::Null) => Json::Null,
        (F::Boolean, Cell::Int(i)) => Json::Bool(i != 0),
        (F::Boolean, Cell::UInt(_)) => Json::Bool(true),
        (F::Boolean, Cell::Bytes(b)) => Json::Bool(bits(&b) != 0),
        (F::Binary, Cell::Bytes(b)) => base64(&b),
        (F::Binary, Cell::Text(s)) => base64(s.as_bytes()),
        (F::Json | F::Array, Cell::Bytes(b)) => match serde_json::from_slice(&b) {
            Ok(j) => j,
            Err(_) => base64(&b),
        },
        (F::DateTime, Cell::DateTime(t)) => Json::String(format_instant(&t.and_utc())),
        (F::DateTime, Cell::Date(d)) => d
            .and_hms_opt(0, 0, 0)
            .map_or(Json::Null, |t| Json::String(format_instant(&t.and_utc()))),
        (F::Date, Cell::DateTime(t)) => Json::String(t.format("%Y-%m-%d").to_string()),
        (_, Cell::DateTime(t)) => Json::String(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        (_, Cell::Date(d)) => Json::String(d.format("%Y-%m-%d").to_string()),
        (_, Cell::Time(t)) => Json::String(time(&t)),
        // Text fields show every value as text (YEAR, or a number in a string column).
        (F::String | F::Text | F::Uuid, Cell::Int(i)) => Json::String(i.to_string()),
        (F::String | F::Text | F::Uuid, Cell::UInt(u)) => Json::String(u.to_string()),
        (F::String | F::Text | F::Uuid, Cell::Real(f)) => Json::String(f.to_string()),
        (F::Decimal, Cell::Int(i)) => Json::String(i.to_string()),
        (F::Decimal, Cell::UInt(u)) => Json::String(u.to_string()),
        (F::Decimal, Cell::Real(f)) => Json::String(f.to_string()),
        (F::Float | F::Double, Cell::Int(i)) => float_to_json(i as f64),
        (F::Float | F::Double, Cell::Decimal(s)) => {
            s.parse().map_or(Json::String(s), float_to_json)
        }
        (F::Integer | F::BigInt, Cell::Bytes(b)) if b.len() <= 8 => int_json(bits(&b)),
        (_, Cell::Int(i)) => int_to_json(i),
        // Beyond i64::MAX, so beyond 2^53 too: always a string.
        (_, Cell::UInt(u)) => Json::String(u.to_string()),
        (_, Cell::Real(f)) => float_to_json(f),
        (_, Cell::Decimal(s)) => Json::String(s),
        (_, Cell::Text(s)) => text_to_json(field_type, s),
        (_, Cell::Bytes(b)) => bytes_as_text(field_type, b),
    }
}

fn int_json(u: u64) -> Json {
    i64::try_from(u).map_or(Json::String(u.to_string()), int_to_json)
}

/// Decodes the cell at `index` of `row`, a column of `field`.
fn decode_cell(row: &MySqlRow, index: usize, field: &FieldRef) -> Result<Json> {
    let raw = row.try_get_raw(index).map_err(map_sqlx)?;
    Ok(match cell(raw.clone()) {
        Ok(c) => render(field.field_type, c),
        Err(e) => fallback(raw, field, &e),
    })
}

/// A cell sqlx could not decode as its type (a date with a zero month, say): its text when
/// the server sent text, else null, and a warning either way. Prepared statements send
/// dates and times as binary structs, whose bytes are not text even when they are UTF-8,
/// so only printable bytes count as text.
fn fallback(raw: MySqlValueRef<'_>, f: &FieldRef, e: &BoxDynError) -> Json {
    let type_name = raw.type_info().name().to_owned();
    tracing::warn!(field = %f.name, column_type = %type_name, error = %e, "undecodable mysql value");
    match <&[u8] as Decode<MySql>>::decode(raw) {
        Ok(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) if !s.chars().any(char::is_control) => Json::String(s.to_owned()),
            _ => Json::Null,
        },
        Err(_) => Json::Null,
    }
}

/// The text of column `i` of an information_schema row, whatever string type the server
/// used for it (MySQL 8 sends some as binary strings).
pub(crate) fn text_at(row: &MySqlRow, i: usize) -> Result<Option<String>> {
    let raw = row.try_get_raw(i).map_err(map_sqlx)?;
    Ok(
        match cell(raw).map_err(|e| map_sqlx(sqlx::Error::Decode(e)))? {
            Cell::Null => None,
            Cell::Text(s) | Cell::Decimal(s) => Some(s),
            Cell::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Cell::Int(i) => Some(i.to_string()),
            Cell::UInt(u) => Some(u.to_string()),
            Cell::Real(f) => Some(f.to_string()),
            Cell::Date(d) => Some(d.to_string()),
            Cell::DateTime(t) => Some(t.to_string()),
            Cell::Time(t) => Some(t.to_string()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_render_by_field_type() {
        assert_eq!(render(FieldType::Boolean, Cell::Int(1)), json!(true));
        assert_eq!(render(FieldType::Integer, Cell::Int(1)), json!(1));
        assert_eq!(render(FieldType::String, Cell::Int(2024)), json!("2024"));
        assert_eq!(
            render(FieldType::BigInt, Cell::Int(1 << 60)),
            json!("1152921504606846976")
        );
        assert_eq!(
            render(FieldType::BigInt, Cell::UInt(u64::MAX)),
            json!("18446744073709551615")
        );
        assert_eq!(
            render(FieldType::Decimal, Cell::Decimal("1.5000".into())),
            json!("1.5000")
        );
        assert_eq!(
            render(FieldType::Boolean, Cell::Bytes(vec![1])),
            json!(true)
        );
        assert_eq!(
            render(FieldType::Binary, Cell::Bytes(vec![0, 255])),
            json!("AP8=")
        );
        assert_eq!(
            render(FieldType::Json, Cell::Text("{\"a\":[1]}".into())),
            json!({"a": [1]})
        );
    }

    #[test]
    fn exponent_decimals_are_written_in_plain_digits() {
        assert_eq!(plain_decimal("1e3"), "1000");
        assert_eq!(plain_decimal("-12.50"), "-12.50");
    }

    #[test]
    fn times_outside_a_day_keep_mysql_interval_form() {
        let t = MySqlTime::new(sqlx::mysql::types::MySqlTimeSign::Negative, 100, 2, 3, 0)
            .expect("valid interval");
        assert_eq!(time(&t), "-100:02:03");
    }
}
