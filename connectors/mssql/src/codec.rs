//! Typed values to SQL Server parameters, and SQL Server cells back to API JSON.
//!
//! Parameters are built as tiberius [`ColumnData`] directly, so each is declared to the
//! server with the type that assigns and compares correctly (`datetimeoffset` for
//! instants, `datetime2` for wall-clock times, `numeric(p,s)` with every digit for
//! decimals). Cells are decoded from their raw TDS form with checked arithmetic: an
//! unexpected type or an out-of-range value becomes null with a warning, never a panic.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use manifold_core::error::{Error, Result};
use manifold_core::filter::FieldRef;
use manifold_core::repository::Record;
use manifold_core::schema::FieldType;
use manifold_core::value::{Value, float_to_json, format_instant, int_to_json, text_to_json};
use serde_json::Value as Json;
use tiberius::ColumnData;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime2, DateTimeOffset, Time};

/// The most digits a SQL Server `decimal` holds.
const MAX_DECIMAL_DIGITS: usize = 38;

/// Days from 0001-01-01 to 9999-12-31, the range of `date` and `datetime2`.
const MAX_DAYS: i64 = 3_652_058;

fn epoch_0001() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN)
}

fn epoch_1900() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// Binds `value` as a parameter. `hint` is the type of the column the value is written
/// to, when known: it types NULLs, which SQL Server otherwise could not assign to every
/// column (an `nvarchar` NULL is refused by a `varbinary` column).
pub fn bind(value: &Value, hint: Option<FieldType>) -> Result<ColumnData<'static>> {
    Ok(match value {
        Value::Null => typed_null(hint),
        Value::Bool(b) => ColumnData::Bit(Some(*b)),
        Value::Int(i) => ColumnData::I64(Some(*i)),
        Value::Float(f) => ColumnData::F64(Some(*f)),
        Value::Decimal(s) => ColumnData::Numeric(Some(parse_decimal(s).ok_or_else(|| {
            Error::bad_request(format!(
                "invalid value: {s:?} is not a decimal SQL Server can hold (at most {MAX_DECIMAL_DIGITS} digits)"
            ))
        })?)),
        Value::Text(s) => ColumnData::String(Some(Cow::Owned(s.clone()))),
        Value::Json(j) => ColumnData::String(Some(Cow::Owned(j.to_string()))),
        Value::Date(d) => ColumnData::Date(Some(date(*d)?)),
        Value::DateTime(t) => ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
            datetime2(&t.naive_utc())?,
            0,
        ))),
        Value::DateTimeNoTz(t) => ColumnData::DateTime2(Some(datetime2(t)?)),
        Value::Time(t) => ColumnData::Time(Some(time(t))),
        Value::Uuid(u) => ColumnData::Guid(Some(*u)),
        Value::Bytes(b) => ColumnData::Binary(Some(Cow::Owned(b.clone()))),
    })
}

/// A NULL of the column's type (`nvarchar` when unknown, which every text-like and most
/// other columns accept).
fn typed_null(hint: Option<FieldType>) -> ColumnData<'static> {
    match hint {
        Some(FieldType::Integer) => ColumnData::I32(None),
        Some(FieldType::BigInt) => ColumnData::I64(None),
        Some(FieldType::Float) => ColumnData::F32(None),
        Some(FieldType::Double) => ColumnData::F64(None),
        Some(FieldType::Decimal) => ColumnData::Numeric(None),
        Some(FieldType::Boolean) => ColumnData::Bit(None),
        Some(FieldType::Date) => ColumnData::Date(None),
        Some(FieldType::DateTime) => ColumnData::DateTimeOffset(None),
        Some(FieldType::DateTimeNoTz) => ColumnData::DateTime2(None),
        Some(FieldType::Time) => ColumnData::Time(None),
        Some(FieldType::Uuid) => ColumnData::Guid(None),
        Some(FieldType::Binary) => ColumnData::Binary(None),
        Some(FieldType::String | FieldType::Text | FieldType::Json | FieldType::Array) | None => {
            ColumnData::String(None)
        }
    }
}

fn out_of_range(what: &str) -> Error {
    Error::bad_request(format!(
        "invalid value: {what} is outside SQL Server's range (0001-01-01 to 9999-12-31)"
    ))
}

fn date(d: NaiveDate) -> Result<Date> {
    let days = d.signed_duration_since(epoch_0001()).num_days();
    if !(0..=MAX_DAYS).contains(&days) {
        return Err(out_of_range("the date"));
    }
    // In range, so it fits the three bytes `Date::new` asserts.
    Ok(Date::new(days as u32))
}

/// A time of day in 100 ns increments (scale 7, the finest SQL Server keeps); a leap
/// second is held at 23:59:59.9999999.
fn time(t: &NaiveTime) -> Time {
    let nanos = u64::from(t.num_seconds_from_midnight()) * 1_000_000_000
        + u64::from(t.nanosecond().min(999_999_999));
    Time::new(nanos / 100, 7)
}

fn datetime2(t: &NaiveDateTime) -> Result<DateTime2> {
    Ok(DateTime2::new(date(t.date())?, time(&t.time())))
}

/// Parses a decimal literal (`-12.50`, `1e3`, `.5`) into its digits and scale, keeping
/// the scale written (`12.50` has scale 2), for a SQL Server `decimal`.
pub fn parse_decimal(text: &str) -> Option<Numeric> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    let mut digits = format!("{int_part}{frac_part}");
    let mut scale = i32::try_from(frac_part.len()).ok()? - exponent;
    if scale < 0 {
        let zeros = usize::try_from(-scale).ok()?;
        if zeros > MAX_DECIMAL_DIGITS {
            return None;
        }
        digits.push_str(&"0".repeat(zeros));
        scale = 0;
    }
    let significant = digits.trim_start_matches('0');
    // The digits that must be kept: the integer part and the whole scale.
    let kept = significant.len().max(usize::try_from(scale).ok()?);
    if kept > MAX_DECIMAL_DIGITS || scale > i32::from(Numeric::MAX_NUMERIC_SCALE) {
        return None;
    }
    let magnitude: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    Some(Numeric::new_with_scale(value, u8::try_from(scale).ok()?))
}

/// A `decimal` as its exact text, the declared scale kept (`12.50`).
pub fn format_numeric(n: Numeric) -> String {
    let value = n.value();
    let scale = usize::from(n.scale());
    let digits = value.unsigned_abs().to_string();
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int_part, frac_part) = padded.split_at(padded.len() - scale);
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// Decodes a row whose columns are `fields`, in order.
pub fn record(row: &tiberius::Row, fields: &[FieldRef]) -> Result<Record> {
    if row.len() != fields.len() {
        return Err(Error::internal(format!(
            "the database returned {} columns where {} were selected",
            row.len(),
            fields.len()
        )));
    }
    let mut out = Record::with_capacity(fields.len());
    for ((_, data), field) in row.cells().zip(fields) {
        out.insert(field.name.clone(), cell(data, field.field_type));
    }
    Ok(out)
}

/// One cell as API JSON, rendered for the field's type where the type matters (a
/// `datetime2` read as an instant, JSON text parsed); never fails.
pub fn cell(data: &ColumnData<'_>, field_type: FieldType) -> Json {
    let decoded = match data {
        ColumnData::U8(v) => v.map(Json::from),
        ColumnData::I16(v) => v.map(Json::from),
        ColumnData::I32(v) => v.map(Json::from),
        ColumnData::I64(v) => v.map(int_to_json),
        // Through its shortest decimal form, so a real 0.1 renders as 0.1, not as the
        // nearest double 0.10000000149011612.
        ColumnData::F32(v) => {
            v.map(|f| float_to_json(f.to_string().parse::<f64>().unwrap_or(f64::NAN)))
        }
        ColumnData::F64(v) => v.map(|f| {
            if field_type == FieldType::Decimal {
                // tiberius reads `money` as a double; money has four decimals.
                Json::String(format!("{f:.4}"))
            } else {
                float_to_json(f)
            }
        }),
        ColumnData::Bit(v) => v.map(Json::Bool),
        ColumnData::String(v) => v.as_ref().map(|s| text(s, field_type)),
        ColumnData::Guid(v) => v.map(|u| Json::String(u.hyphenated().to_string())),
        ColumnData::Binary(v) => v
            .as_ref()
            .map(|b| Json::String(base64::engine::general_purpose::STANDARD.encode(b))),
        ColumnData::Numeric(v) => v.map(|n| Json::String(format_numeric(n))),
        ColumnData::Xml(v) => v.as_ref().map(|x| Json::String(x.to_string())),
        ColumnData::DateTime(v) => v.map(|dt| {
            wall_clock(
                legacy_datetime(dt.days(), dt.seconds_fragments()),
                field_type,
                "datetime",
            )
        }),
        ColumnData::SmallDateTime(v) => v.map(|dt| {
            wall_clock(
                small_datetime(dt.days(), dt.seconds_fragments()),
                field_type,
                "smalldatetime",
            )
        }),
        ColumnData::Time(v) => v.map(time_of_day),
        ColumnData::Date(v) => v.map(|d| calendar_date(d, field_type)),
        ColumnData::DateTime2(v) => {
            v.map(|dt| wall_clock(datetime2_value(dt), field_type, "datetime2"))
        }
        ColumnData::DateTimeOffset(v) => v.map(|dto| instant(dto, field_type)),
    };
    decoded.unwrap_or(Json::Null)
}

fn time_of_day(t: Time) -> Json {
    match time_of_day_nanos(t) {
        Some(nanos) => {
            let secs = nanos / 1_000_000_000;
            Json::String(format!(
                "{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ))
        }
        None => undecodable("time", "time out of range"),
    }
}

fn calendar_date(d: Date, field_type: FieldType) -> Json {
    match days_after(epoch_0001(), i64::from(d.days())) {
        Some(date) if field_type == FieldType::DateTime => date
            .and_hms_opt(0, 0, 0)
            .map(|t| Json::String(format_instant(&t.and_utc())))
            .unwrap_or(Json::Null),
        Some(date) => Json::String(date.format("%Y-%m-%d").to_string()),
        None => undecodable("date", "date out of range"),
    }
}

/// A `datetimeoffset`: its date and time are stored in UTC; the offset only says where
/// the value was written, and the API renders instants in UTC.
fn instant(dto: DateTimeOffset, field_type: FieldType) -> Json {
    match datetime2_value(dto.datetime2()) {
        Some(utc) if field_type == FieldType::DateTimeNoTz => {
            Json::String(utc.format("%Y-%m-%d %H:%M:%S").to_string())
        }
        Some(utc) => Json::String(format_instant(&DateTime::<Utc>::from_naive_utc_and_offset(
            utc, Utc,
        ))),
        None => undecodable("datetimeoffset", "value out of range"),
    }
}

fn text(s: &str, field_type: FieldType) -> Json {
    // JSON columns are NVARCHAR(MAX) text here; a value that is not JSON (written by
    // another client) is shown as the text it is.
    text_to_json(field_type, s.to_owned())
}

/// A wall-clock value: `YYYY-MM-DD HH:mm:ss`, or read as UTC for a `datetime` field.
fn wall_clock(value: Option<NaiveDateTime>, field_type: FieldType, sql_type: &str) -> Json {
    match value {
        Some(t) if field_type == FieldType::DateTime => Json::String(format_instant(&t.and_utc())),
        Some(t) if field_type == FieldType::Date => Json::String(t.format("%Y-%m-%d").to_string()),
        Some(t) => Json::String(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        None => undecodable(sql_type, "value out of range"),
    }
}

/// The date `days` after `base`, if it is one SQL Server can hold (0001-01-01 to
/// 9999-12-31).
fn days_after(base: NaiveDate, days: i64) -> Option<NaiveDate> {
    base.checked_add_signed(chrono::Duration::try_days(days)?)
        .filter(|d| d.signed_duration_since(epoch_0001()).num_days() <= MAX_DAYS)
}

fn time_of_day_nanos(t: Time) -> Option<u64> {
    let scale = u32::from(t.scale());
    if scale > 9 {
        return None;
    }
    let nanos = t.increments().checked_mul(10u64.pow(9 - scale))?;
    (nanos < 86_400 * 1_000_000_000).then_some(nanos)
}

fn naive_time(nanos: u64) -> Option<NaiveTime> {
    NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(nanos / 1_000_000_000).ok()?,
        u32::try_from(nanos % 1_000_000_000).ok()?,
    )
}

fn datetime2_value(dt: DateTime2) -> Option<NaiveDateTime> {
    let date = days_after(epoch_0001(), i64::from(dt.date().days()))?;
    let time = naive_time(time_of_day_nanos(dt.time())?)?;
    Some(NaiveDateTime::new(date, time))
}

/// `datetime`: days since 1900-01-01 and 1/300 s ticks, rounded to the millisecond as
/// SQL Server shows it (.003, .007, .010).
fn legacy_datetime(days: i32, ticks: u32) -> Option<NaiveDateTime> {
    let date = days_after(epoch_1900(), i64::from(days))?;
    let millis = (u64::from(ticks) * 10 + 1) / 3;
    let time = naive_time(millis.checked_mul(1_000_000)?)?;
    Some(NaiveDateTime::new(date, time))
}

/// `smalldatetime`: days since 1900-01-01 and minutes since midnight.
fn small_datetime(days: u16, minutes: u16) -> Option<NaiveDateTime> {
    let date = days_after(epoch_1900(), i64::from(days))?;
    let time = naive_time(u64::from(minutes) * 60 * 1_000_000_000)?;
    Some(NaiveDateTime::new(date, time))
}

/// Logs a cell that cannot be decoded (once per type and reason, so a large result does
/// not flood the log) and renders it as null.
fn undecodable(sql_type: &str, reason: &str) -> Json {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let key = format!("{sql_type}: {reason}");
    let first = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .map(|mut seen| seen.len() < 1024 && seen.insert(key.clone()))
        .unwrap_or(true);
    if first {
        tracing::warn!(sql_type, reason, "sql server value rendered as null");
    }
    Json::Null
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Option<(i128, u8)> {
        parse_decimal(s).map(|n| (n.value(), n.scale()))
    }

    #[test]
    fn decimals_keep_every_digit_and_their_scale() {
        assert_eq!(dec("12.50"), Some((1250, 2)));
        assert_eq!(dec("-0.001"), Some((-1, 3)));
        assert_eq!(dec("+7"), Some((7, 0)));
        assert_eq!(dec(".5"), Some((5, 1)));
        assert_eq!(dec("1e3"), Some((1000, 0)));
        assert_eq!(dec("1.5E-2"), Some((15, 3)));
        assert_eq!(
            dec("12345678901234567890123456789012345678"),
            Some((12_345_678_901_234_567_890_123_456_789_012_345_678, 0))
        );
        assert_eq!(dec("123456789012345678901234567890123456789"), None);
        assert_eq!(dec("0.000000000000000000000000000000000000001"), None);
        assert_eq!(dec("1.2.3"), None);
        assert_eq!(dec("abc"), None);
        assert_eq!(dec("."), None);
        assert_eq!(dec("1e99999"), None);

        let round_trip = |s: &str| parse_decimal(s).map(format_numeric);
        assert_eq!(round_trip("12.50").as_deref(), Some("12.50"));
        assert_eq!(round_trip("-0.001").as_deref(), Some("-0.001"));
        assert_eq!(round_trip("0").as_deref(), Some("0"));
        assert_eq!(
            round_trip("12345678901234567890.123456789012345678").as_deref(),
            Some("12345678901234567890.123456789012345678")
        );
        assert_eq!(format_numeric(Numeric::new_with_scale(-5, 3)), "-0.005");
    }

    #[test]
    fn values_bind_with_the_right_sql_types() {
        let bound = |v: Value| bind(&v, None).expect("bindable");
        assert!(matches!(
            bound(Value::Bool(true)),
            ColumnData::Bit(Some(true))
        ));
        assert!(matches!(bound(Value::Int(1 << 40)), ColumnData::I64(Some(v)) if v == 1 << 40));
        assert!(matches!(
            bound(Value::Decimal("12.50".into())),
            ColumnData::Numeric(Some(n)) if n.value() == 1250 && n.scale() == 2
        ));
        let instant = DateTime::parse_from_rfc3339("2023-01-01T08:00:00+08:00")
            .expect("valid")
            .with_timezone(&Utc);
        let ColumnData::DateTimeOffset(Some(dto)) = bound(Value::DateTime(instant)) else {
            panic!("instants bind as datetimeoffset");
        };
        assert_eq!(dto.offset(), 0);
        assert_eq!(
            cell(&ColumnData::DateTimeOffset(Some(dto)), FieldType::DateTime),
            json!("2023-01-01T00:00:00.000Z")
        );
        let wall = NaiveDateTime::parse_from_str("2023-05-06 07:08:09", "%Y-%m-%d %H:%M:%S")
            .expect("valid");
        let data = bound(Value::DateTimeNoTz(wall));
        assert!(matches!(data, ColumnData::DateTime2(Some(_))));
        assert_eq!(
            cell(&data, FieldType::DateTimeNoTz),
            json!("2023-05-06 07:08:09")
        );
        let u = uuid::Uuid::parse_str("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").expect("uuid");
        assert!(matches!(bound(Value::Uuid(u)), ColumnData::Guid(Some(_))));
        assert!(matches!(
            bound(Value::Json(json!({"a": [1]}))),
            ColumnData::String(Some(s)) if s == "{\"a\":[1]}"
        ));
        assert!(bind(&Value::Decimal("1e40".into()), None).is_err());
        let too_late = NaiveDate::from_ymd_opt(10_000, 1, 1).expect("chrono has it");
        assert!(bind(&Value::Date(too_late), None).is_err());
    }

    #[test]
    fn nulls_take_the_type_of_their_column() {
        assert!(matches!(
            bind(&Value::Null, Some(FieldType::Binary)),
            Ok(ColumnData::Binary(None))
        ));
        assert!(matches!(
            bind(&Value::Null, Some(FieldType::Uuid)),
            Ok(ColumnData::Guid(None))
        ));
        assert!(matches!(
            bind(&Value::Null, Some(FieldType::DateTime)),
            Ok(ColumnData::DateTimeOffset(None))
        ));
        assert!(matches!(
            bind(&Value::Null, None),
            Ok(ColumnData::String(None))
        ));
    }

    #[test]
    fn cells_render_as_the_api_specifies() {
        assert_eq!(
            cell(
                &ColumnData::I64(Some(9_007_199_254_740_993)),
                FieldType::BigInt
            ),
            json!("9007199254740993")
        );
        assert_eq!(
            cell(&ColumnData::I64(Some(42)), FieldType::BigInt),
            json!(42)
        );
        assert_eq!(
            cell(&ColumnData::F32(Some(0.1)), FieldType::Float),
            json!(0.1)
        );
        assert_eq!(
            cell(&ColumnData::F64(Some(f64::NAN)), FieldType::Double),
            Json::Null
        );
        assert_eq!(
            cell(&ColumnData::F64(Some(12.5)), FieldType::Decimal),
            json!("12.5000")
        );
        assert_eq!(
            cell(
                &ColumnData::Numeric(Some(Numeric::new_with_scale(1250, 2))),
                FieldType::Decimal
            ),
            json!("12.50")
        );
        let u = uuid::Uuid::parse_str("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").expect("uuid");
        assert_eq!(
            cell(&ColumnData::Guid(Some(u)), FieldType::Uuid),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(
            cell(
                &ColumnData::Binary(Some(Cow::Borrowed(&[1, 2, 3][..]))),
                FieldType::Binary
            ),
            json!("AQID")
        );
        assert_eq!(
            cell(
                &ColumnData::String(Some("[1,\"a\"]".into())),
                FieldType::Array
            ),
            json!([1, "a"])
        );
        assert_eq!(
            cell(
                &ColumnData::String(Some("not json".into())),
                FieldType::Json
            ),
            json!("not json")
        );
        assert_eq!(
            cell(&ColumnData::String(None), FieldType::String),
            Json::Null
        );
        // 2024-02-29 is 738_944 days after 0001-01-01.
        let day = NaiveDate::from_ymd_opt(2024, 2, 29).expect("valid");
        let date_data = ColumnData::Date(Some(date(day).expect("in range")));
        assert_eq!(cell(&date_data, FieldType::Date), json!("2024-02-29"));
        assert_eq!(
            cell(
                &ColumnData::Time(Some(Time::new(452_965, 1))),
                FieldType::Time
            ),
            json!("12:34:56")
        );
        // datetime: 1900-01-02 00:00:01.003 (301 ticks of 1/300 s).
        let legacy = ColumnData::DateTime(Some(tiberius::time::DateTime::new(1, 301)));
        assert_eq!(
            cell(&legacy, FieldType::DateTimeNoTz),
            json!("1900-01-02 00:00:01")
        );
        assert_eq!(
            cell(&legacy, FieldType::DateTime),
            json!("1900-01-02T00:00:01.003Z")
        );
        let small = ColumnData::SmallDateTime(Some(tiberius::time::SmallDateTime::new(2, 61)));
        assert_eq!(
            cell(&small, FieldType::DateTimeNoTz),
            json!("1900-01-03 01:01:00")
        );
    }

    #[test]
    fn offsets_do_not_move_the_instant_and_bad_values_do_not_panic() {
        // 2023-01-01 00:00 UTC written at +08:00: the stored date and time are UTC.
        let utc = NaiveDateTime::parse_from_str("2023-01-01 00:00:00", "%Y-%m-%d %H:%M:%S")
            .expect("valid");
        let dto = DateTimeOffset::new(datetime2(&utc).expect("in range"), 480);
        assert_eq!(
            cell(&ColumnData::DateTimeOffset(Some(dto)), FieldType::DateTime),
            json!("2023-01-01T00:00:00.000Z")
        );
        // A time past midnight, an absurd scale and an out-of-range date become null.
        assert_eq!(
            cell(
                &ColumnData::Time(Some(Time::new(u64::MAX, 7))),
                FieldType::Time
            ),
            Json::Null
        );
        assert_eq!(
            cell(&ColumnData::Time(Some(Time::new(1, 200))), FieldType::Time),
            Json::Null
        );
        assert_eq!(
            cell(
                &ColumnData::Date(Some(Date::new(0x00FF_FFFF))),
                FieldType::Date
            ),
            Json::Null
        );
        let far = ColumnData::DateTime(Some(tiberius::time::DateTime::new(i32::MAX, u32::MAX)));
        assert_eq!(cell(&far, FieldType::DateTime), Json::Null);
    }
}
