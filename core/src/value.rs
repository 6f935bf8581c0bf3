//! Typed values: what a JSON input becomes once checked against a field's type, and how a
//! stored value is rendered back to JSON.
//!
//! Connectors bind [`Value`]s as query parameters; nothing from a request reaches SQL text.

use base64::Engine as _;
use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc,
};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::schema::FieldType;

/// A value checked against a field type, ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer.
    Int(i64),
    /// Any float.
    Float(f64),
    /// A decimal, kept as its canonical text so no precision is lost.
    Decimal(String),
    /// Text (also uuids on databases without a uuid type).
    Text(String),
    /// A JSON document.
    Json(Json),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant.
    DateTime(DateTime<Utc>),
    /// A wall-clock timestamp.
    DateTimeNoTz(NaiveDateTime),
    /// A time of day.
    Time(NaiveTime),
    /// A UUID.
    Uuid(uuid::Uuid),
    /// Binary data.
    Bytes(Vec<u8>),
}

/// JSON numbers are exact only up to 2^53 - 1; larger integers are sent as strings.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The 400 of an input that is not of its field's type. `expected` is the key of the type
/// in the catalogues' `value-type-mismatch` (`integer`, `date`, …), whose translations
/// each word it their own way; the English message words it here.
fn type_error(path: &str, expected: &'static str, got: &Json) -> Error {
    let mut shown = got.to_string();
    if shown.len() > 60 {
        let mut cut = 57;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    let phrase = match expected {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "decimal" => "a decimal number",
        "boolean" => "a boolean",
        "date" => "a date (YYYY-MM-DD)",
        "datetime" => "an ISO-8601 date-time",
        "datetime-no-tz" => "a date-time (YYYY-MM-DD HH:mm:ss)",
        "time" => "a time (HH:mm:ss)",
        "array" => "an array",
        "uuid" => "a UUID",
        "base64" => "base64 data",
        other => other,
    };
    Error::bad_request(format!("{path}: expected {phrase}, got {shown}")).with_message_id(
        "value-type-mismatch",
        vec![
            ("path", path.to_owned()),
            ("expected", expected.to_owned()),
            ("got", shown),
        ],
    )
}

impl Value {
    /// Checks `input` against `field_type` and converts it; `path` names the input in errors
    /// (`filter.score.$gt`, `values.title`).
    ///
    /// Strings are accepted for every scalar type because query-string filters carry only
    /// strings (`filter[id]=1`); numbers and booleans are accepted for text fields and
    /// compared as text, as NocoBase does (`{"name": 123}` matches `"123"`).
    pub fn coerce(field_type: FieldType, input: &Json, path: &str) -> Result<Value> {
        if input.is_null() {
            return Ok(Value::Null);
        }
        match field_type {
            FieldType::String | FieldType::Text => match input {
                Json::String(s) => Ok(Value::Text(s.clone())),
                Json::Number(n) => Ok(Value::Text(n.to_string())),
                Json::Bool(b) => Ok(Value::Text(b.to_string())),
                other => Err(type_error(path, "string", other)),
            },
            FieldType::Integer | FieldType::BigInt => {
                let parsed = match input {
                    Json::Number(n) => n.as_i64().or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                            .map(|f| f as i64)
                    }),
                    Json::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                parsed
                    .map(Value::Int)
                    .ok_or_else(|| type_error(path, "integer", input))
            }
            FieldType::Float | FieldType::Double => {
                let parsed = match input {
                    Json::Number(n) => n.as_f64(),
                    Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                    _ => None,
                };
                parsed
                    .map(Value::Float)
                    .ok_or_else(|| type_error(path, "number", input))
            }
            FieldType::Decimal => match input {
                Json::Number(n) => Ok(Value::Decimal(n.to_string())),
                Json::String(s) if is_decimal_literal(s.trim()) => {
                    Ok(Value::Decimal(s.trim().to_owned()))
                }
                other => Err(type_error(path, "decimal", other)),
            },
            FieldType::Boolean => {
                let parsed = match input {
                    Json::Bool(b) => Some(*b),
                    Json::Number(n) => match n.as_i64() {
                        Some(0) => Some(false),
                        Some(1) => Some(true),
                        _ => None,
                    },
                    Json::String(s) => match s.trim() {
                        "true" | "1" => Some(true),
                        "false" | "0" => Some(false),
                        _ => None,
                    },
                    _ => None,
                };
                parsed
                    .map(Value::Bool)
                    .ok_or_else(|| type_error(path, "boolean", input))
            }
            FieldType::Date => match input {
                Json::String(s) => parse_date(s)
                    .map(Value::Date)
                    .ok_or_else(|| type_error(path, "date", input)),
                other => Err(type_error(path, "date", other)),
            },
            FieldType::DateTime => match input {
                Json::String(s) => parse_instant(s)
                    .map(Value::DateTime)
                    .ok_or_else(|| type_error(path, "datetime", input)),
                Json::Number(n) => n
                    .as_i64()
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                    .and_then(four_digit_year)
                    .map(Value::DateTime)
                    .ok_or_else(|| type_error(path, "datetime", input)),
                other => Err(type_error(path, "datetime", other)),
            },
            FieldType::DateTimeNoTz => match input {
                Json::String(s) => parse_wall_clock(s)
                    .map(Value::DateTimeNoTz)
                    .ok_or_else(|| type_error(path, "datetime-no-tz", input)),
                other => Err(type_error(path, "datetime-no-tz", other)),
            },
            FieldType::Time => match input {
                Json::String(s) => parse_time(s)
                    .map(Value::Time)
                    .ok_or_else(|| type_error(path, "time", input)),
                other => Err(type_error(path, "time", other)),
            },
            FieldType::Json => Ok(Value::Json(input.clone())),
            FieldType::Array => match input {
                Json::Array(_) => Ok(Value::Json(input.clone())),
                other => Err(type_error(path, "array", other)),
            },
            FieldType::Uuid => match input {
                Json::String(s) => uuid::Uuid::parse_str(s.trim())
                    .map(Value::Uuid)
                    .map_err(|_| type_error(path, "uuid", input)),
                other => Err(type_error(path, "uuid", other)),
            },
            FieldType::Binary => match input {
                Json::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(Value::Bytes)
                    .map_err(|_| type_error(path, "base64", input)),
                other => Err(type_error(path, "base64", other)),
            },
        }
    }

    /// Renders the value as the API shows it (see the spec's record serialisation rules).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => int_to_json(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Value::Decimal(s) | Value::Text(s) => Json::String(s.clone()),
            Value::Json(j) => j.clone(),
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(t) => Json::String(format_instant(t)),
            Value::DateTimeNoTz(t) => Json::String(t.format("%Y-%m-%d %H:%M:%S").to_string()),
            Value::Time(t) => Json::String(t.format("%H:%M:%S").to_string()),
            Value::Uuid(u) => Json::String(u.hyphenated().to_string()),
            Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        }
    }
}

/// A float as JSON: a number, or `null` for NaN and the infinities, which JSON cannot hold.
pub fn float_to_json(f: f64) -> Json {
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .unwrap_or(Json::Null)
}

/// An integer as JSON: a number while exact, a string beyond 2^53 - 1.
pub fn int_to_json(i: i64) -> Json {
    if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i) {
        Json::from(i)
    } else {
        Json::String(i.to_string())
    }
}

/// A value the database handed back as text, as the API shows a field of `field_type`
/// (api.md §8): integers and floats as numbers when the text is one, booleans from `t`,
/// `true` or `1`, JSON parsed, instants in the canonical form; any other type, or text that
/// does not parse, as the text itself. Every SQL connector renders its text cells here, so
/// these rules live in one place.
pub fn text_to_json(field_type: FieldType, text: String) -> Json {
    match field_type {
        FieldType::Integer | FieldType::BigInt => match text.parse::<i64>() {
            Ok(i) => int_to_json(i),
            Err(_) => Json::String(text),
        },
        // `NaN` and `inf` parse as floats but have no JSON number: they stay text.
        FieldType::Float | FieldType::Double => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => float_to_json(f),
            _ => Json::String(text),
        },
        FieldType::Boolean => Json::Bool(matches!(text.as_str(), "t" | "true" | "1")),
        FieldType::Json | FieldType::Array => {
            serde_json::from_str(&text).unwrap_or(Json::String(text))
        }
        FieldType::DateTime => match parse_instant(&text) {
            Some(t) => Json::String(format_instant(&t)),
            None => Json::String(text),
        },
        _ => Json::String(text),
    }
}

/// An instant in the API's canonical form, `2023-01-01T00:00:00.000Z`.
///
/// Connectors that store instants as text (SQLite) store exactly this form, so text order
/// is time order.
pub fn format_instant(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn is_decimal_literal(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !int.is_empty() && all_digits(int) && frac.is_none_or(|f| !f.is_empty() && all_digits(f))
}

/// `t` if its year is one of the four-digit years (0000 to 9999) every backend can store;
/// chrono's `%Y` also reads signed and longer years (`-000001`), which MySQL cannot bind.
fn four_digit_year<T: Datelike>(t: T) -> Option<T> {
    (0..=9999).contains(&t.year()).then_some(t)
}

/// Parses `YYYY-MM-DD` (a longer date-time string keeps its date part).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
        .ok()
        .and_then(four_digit_year)
}

/// Parses an instant: RFC 3339 with an offset, or a zone-less date or date-time read as UTC.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let instant = if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        t.with_timezone(&Utc)
    } else if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z") {
        t.with_timezone(&Utc)
    } else {
        parse_wall_clock(s)?.and_utc()
    };
    four_digit_year(instant)
}

/// Parses a zone-less date-time (`T` or space separated, optional seconds and fraction),
/// or a bare date as midnight.
pub fn parse_wall_clock(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    let formats = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    let wall_clock = formats
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| t.naive_utc()))
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    four_digit_year(wall_clock)
}

/// Parses `HH:mm:ss` or `HH:mm`.
pub fn parse_time(s: &str) -> Option<NaiveTime> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_cells_render_as_their_field_type_when_they_read_as_one() {
        let text = |t: FieldType, s: &str| text_to_json(t, s.to_owned());
        assert_eq!(text(FieldType::Integer, "42"), json!(42));
        assert_eq!(
            text(FieldType::BigInt, "9007199254740993"),
            json!("9007199254740993")
        );
        assert_eq!(text(FieldType::Integer, "4x"), json!("4x"));
        assert_eq!(text(FieldType::Double, "0.25"), json!(0.25));
        assert_eq!(text(FieldType::Double, "NaN"), json!("NaN"));
        assert_eq!(text(FieldType::Float, "inf"), json!("inf"));
        assert_eq!(text(FieldType::Boolean, "t"), json!(true));
        assert_eq!(text(FieldType::Boolean, "1"), json!(true));
        assert_eq!(text(FieldType::Boolean, "no"), json!(false));
        assert_eq!(text(FieldType::Json, "[1, 2]"), json!([1, 2]));
        assert_eq!(text(FieldType::Json, "[1,"), json!("[1,"));
        assert_eq!(
            text(FieldType::DateTime, "2024-03-01 10:20:30+02:00"),
            json!("2024-03-01T08:20:30.000Z")
        );
        assert_eq!(text(FieldType::String, "42"), json!("42"));
    }

    #[test]
    fn query_string_numbers_coerce_to_integers() {
        assert_eq!(
            Value::coerce(FieldType::Integer, &json!("42"), "f"),
            Ok(Value::Int(42))
        );
        assert_eq!(
            Value::coerce(FieldType::BigInt, &json!(3.0), "f"),
            Ok(Value::Int(3))
        );
    }

    #[test]
    fn dates_have_four_digit_years() {
        for text in [
            "-000001-01-01 00:00:00",
            "-0001-01-01",
            "-001-01-01",
            "+10000-01-01",
        ] {
            assert_eq!(parse_wall_clock(text), None, "{text}");
            assert_eq!(parse_instant(text), None, "{text}");
            assert_eq!(parse_date(text), None, "{text}");
        }
        assert!(parse_wall_clock("0000-01-01 00:00:00").is_some());
        assert!(parse_instant("9999-12-31T23:59:59.999Z").is_some());
        assert!(parse_date("0000-01-01").is_some());
    }

    #[test]
    fn wrong_types_name_the_path() {
        let err = Value::coerce(FieldType::Integer, &json!("abc"), "filter.score.$gt")
            .expect_err("abc is no integer");
        assert_eq!(
            err.message(),
            "filter.score.$gt: expected an integer, got \"abc\""
        );
        assert!(Value::coerce(FieldType::Boolean, &json!("yes"), "v").is_err());
        assert!(Value::coerce(FieldType::Decimal, &json!("1.2.3"), "v").is_err());
        assert!(Value::coerce(FieldType::Uuid, &json!("nope"), "v").is_err());
        assert!(Value::coerce(FieldType::Array, &json!({"a": 1}), "v").is_err());
    }

    #[test]
    fn numbers_compare_as_text_on_string_fields() {
        assert_eq!(
            Value::coerce(FieldType::String, &json!(123), "f"),
            Ok(Value::Text("123".into()))
        );
    }

    #[test]
    fn instants_render_in_utc_with_milliseconds() {
        let v = Value::coerce(
            FieldType::DateTime,
            &json!("2023-01-01T08:00:00+08:00"),
            "f",
        )
        .expect("valid instant");
        assert_eq!(v.to_json(), json!("2023-01-01T00:00:00.000Z"));
        let v = Value::coerce(FieldType::DateTime, &json!("2023-01-01"), "f").expect("date");
        assert_eq!(v.to_json(), json!("2023-01-01T00:00:00.000Z"));
    }

    #[test]
    fn big_integers_render_as_strings() {
        assert_eq!(
            int_to_json(9_007_199_254_740_991),
            json!(9_007_199_254_740_991_i64)
        );
        assert_eq!(
            int_to_json(9_007_199_254_740_992),
            json!("9007199254740992")
        );
    }

    #[test]
    fn decimals_keep_their_digits() {
        assert_eq!(
            Value::coerce(FieldType::Decimal, &json!("12345678901234567890.12"), "f")
                .map(|v| v.to_json()),
            Ok(json!("12345678901234567890.12"))
        );
    }
}
