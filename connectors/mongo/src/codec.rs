//! Values between the API and BSON: typed [`Value`]s become the BSON a field stores, and
//! stored BSON is rendered as the API's JSON (spec http-api §6.1).

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use manifold_core::error::{Error, Result};
use manifold_core::schema::FieldType;
use manifold_core::value::{Value, format_instant, int_to_json};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, Decimal128, Document};
use serde_json::{Map, Number, Value as Json};

/// The `raw_type` of fields holding ObjectIds: their values are rendered as 24-digit hex
/// and hex strings written to or compared with them are turned back into ObjectIds.
pub const OBJECT_ID: &str = "objectId";

/// How a field stores its values: its API type, and whether it holds ObjectIds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Storage {
    pub field_type: FieldType,
    pub object_id: bool,
}

/// The BSON that a field of `storage` holds for `value`.
///
/// Integers are `int` on `integer` fields (`long` when they do not fit) and `long` on
/// `bigInt` fields; decimals are Decimal128; dates and wall-clock times are BSON dates (a
/// date at its UTC midnight, a wall-clock time as if it were UTC), so they sort and compare
/// as dates; times of day are `HH:mm:ss` text, which sorts as time; uuids are their text.
pub(crate) fn to_bson(storage: Storage, value: &Value) -> Result<Bson> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Int(i) => match storage.field_type {
            FieldType::BigInt => Bson::Int64(*i),
            _ => small_int(*i),
        },
        Value::Float(f) => Bson::Double(*f),
        Value::Decimal(s) => Bson::Decimal128(s.parse::<Decimal128>().map_err(|_| {
            Error::bad_request(format!(
                "invalid value: {s} does not fit a MongoDB decimal (34 significant digits)"
            ))
        })?),
        Value::Text(s) if storage.object_id => match ObjectId::parse_str(s) {
            Ok(id) => Bson::ObjectId(id),
            // Not an ObjectId: compare and store it as the text it is, which matches only
            // documents whose value is that text.
            Err(_) => Bson::String(s.clone()),
        },
        Value::Text(s) => Bson::String(s.clone()),
        Value::Json(j) => json_to_bson(j),
        Value::Date(d) => Bson::DateTime(mongodb::bson::DateTime::from_millis(
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis(),
        )),
        Value::DateTime(t) => {
            Bson::DateTime(mongodb::bson::DateTime::from_millis(t.timestamp_millis()))
        }
        Value::DateTimeNoTz(t) => Bson::DateTime(mongodb::bson::DateTime::from_millis(
            t.and_utc().timestamp_millis(),
        )),
        Value::Time(t) => Bson::String(t.format("%H:%M:%S").to_string()),
        Value::Uuid(u) => Bson::String(u.hyphenated().to_string()),
        Value::Bytes(b) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: b.clone(),
        }),
    })
}

/// An integer as `int` when it fits, else `long` (what most drivers and the shell store).
fn small_int(i: i64) -> Bson {
    i32::try_from(i).map_or(Bson::Int64(i), Bson::Int32)
}

/// A JSON document as BSON, literally: keys such as `$oid` are not read as extended JSON,
/// so a client cannot smuggle typed values or operators in through a `json` field.
pub(crate) fn json_to_bson(j: &Json) -> Bson {
    match j {
        Json::Null => Bson::Null,
        Json::Bool(b) => Bson::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => small_int(i),
            (None, Some(f)) => Bson::Double(f),
            (None, None) => Bson::String(n.to_string()),
        },
        Json::String(s) => Bson::String(s.clone()),
        Json::Array(items) => Bson::Array(items.iter().map(json_to_bson).collect()),
        Json::Object(map) => Bson::Document(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect::<Document>(),
        ),
    }
}

/// The API's JSON for a stored value of a field of type `field_type` (missing = null).
pub(crate) fn render(field_type: FieldType, value: Option<&Bson>) -> Json {
    match value {
        None => Json::Null,
        Some(Bson::DateTime(d)) => match instant(*d) {
            Some(t) => match field_type {
                FieldType::Date => Json::String(t.format("%Y-%m-%d").to_string()),
                FieldType::DateTimeNoTz => Json::String(t.format("%Y-%m-%d %H:%M:%S").to_string()),
                FieldType::Time => Json::String(t.format("%H:%M:%S").to_string()),
                _ => Json::String(format_instant(&t)),
            },
            None => bson_to_json(&Bson::DateTime(*d)),
        },
        Some(other) => bson_to_json(other),
    }
}

fn instant(d: mongodb::bson::DateTime) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(d.timestamp_millis()).single()
}

/// Any BSON value as JSON: ObjectIds as hex, dates as ISO-8601 UTC with milliseconds,
/// decimals as plain-notation strings, 64-bit integers beyond 2^53 as strings, binary as
/// base64 (UUID subtypes as UUID text), timestamps as `{t, i}`.
pub(crate) fn bson_to_json(b: &Bson) -> Json {
    match b {
        Bson::Null | Bson::Undefined | Bson::MaxKey | Bson::MinKey | Bson::DbPointer(_) => {
            Json::Null
        }
        Bson::Double(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Bson::String(s) | Bson::Symbol(s) | Bson::JavaScriptCode(s) => Json::String(s.clone()),
        Bson::JavaScriptCodeWithScope(c) => Json::String(c.code.clone()),
        Bson::Array(items) => Json::Array(items.iter().map(bson_to_json).collect()),
        Bson::Document(doc) => Json::Object(document_to_json(doc)),
        Bson::Boolean(v) => Json::Bool(*v),
        Bson::RegularExpression(r) => Json::String(format!("/{}/{}", r.pattern, r.options)),
        Bson::Int32(i) => Json::from(*i),
        Bson::Int64(i) => int_to_json(*i),
        Bson::Timestamp(ts) => serde_json::json!({"t": ts.time, "i": ts.increment}),
        Bson::Binary(bin) => match bin.subtype {
            BinarySubtype::Uuid | BinarySubtype::UuidOld if bin.bytes.len() == 16 => {
                uuid::Uuid::from_slice(&bin.bytes).map_or_else(
                    |_| Json::String(base64_text(&bin.bytes)),
                    |u| Json::String(u.hyphenated().to_string()),
                )
            }
            _ => Json::String(base64_text(&bin.bytes)),
        },
        Bson::ObjectId(id) => Json::String(id.to_hex()),
        Bson::DateTime(d) => match instant(*d) {
            Some(t) => Json::String(format_instant(&t)),
            // Beyond chrono's range: the raw milliseconds keep the value.
            None => Json::from(d.timestamp_millis()),
        },
        Bson::Decimal128(d) => Json::String(plain_decimal(&d.to_string())),
    }
}

fn base64_text(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A document as a JSON object, every value rendered by [`bson_to_json`].
pub(crate) fn document_to_json(doc: &Document) -> Map<String, Json> {
    doc.iter()
        .map(|(k, v)| (k.clone(), bson_to_json(v)))
        .collect()
}

/// A Decimal128's text in plain notation: `1.5E+3` becomes `1500` and `1E-7` becomes
/// `0.0000001`, as SQL decimals print. NaN and infinities stay as they are.
pub(crate) fn plain_decimal(text: &str) -> String {
    let Some((mantissa, exponent)) = text.split_once(['E', 'e']) else {
        return text.to_owned();
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return text.to_owned();
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as i64 + exponent;
    let len = digits.len() as i64;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point >= len {
        format!("{digits}{}", "0".repeat((point - len) as usize))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(t: FieldType) -> Storage {
        Storage {
            field_type: t,
            object_id: false,
        }
    }

    #[test]
    fn decimals_render_in_plain_notation() {
        assert_eq!(plain_decimal("1.50"), "1.50");
        assert_eq!(plain_decimal("1.5E+3"), "1500");
        assert_eq!(plain_decimal("1E+3"), "1000");
        assert_eq!(plain_decimal("-1.25E-7"), "-0.000000125");
        assert_eq!(plain_decimal("1E-7"), "0.0000001");
        assert_eq!(plain_decimal("1.2345E+2"), "123.45");
        assert_eq!(plain_decimal("NaN"), "NaN");
        let d: Decimal128 = "12345678901234567890.12".parse().expect("decimal");
        assert_eq!(
            bson_to_json(&Bson::Decimal128(d)),
            json!("12345678901234567890.12")
        );
    }

    #[test]
    fn integers_follow_the_field_width() {
        assert_eq!(
            to_bson(plain(FieldType::Integer), &Value::Int(5)),
            Ok(Bson::Int32(5))
        );
        assert_eq!(
            to_bson(plain(FieldType::Integer), &Value::Int(1 << 40)),
            Ok(Bson::Int64(1 << 40))
        );
        assert_eq!(
            to_bson(plain(FieldType::BigInt), &Value::Int(5)),
            Ok(Bson::Int64(5))
        );
        assert_eq!(
            bson_to_json(&Bson::Int64(1 << 60)),
            json!("1152921504606846976")
        );
    }

    #[test]
    fn object_id_fields_take_hex_and_keep_other_text() {
        let storage = Storage {
            field_type: FieldType::String,
            object_id: true,
        };
        let hex = "65f1c0ffee00000000000001";
        assert!(matches!(
            to_bson(storage, &Value::Text(hex.into())),
            Ok(Bson::ObjectId(id)) if id.to_hex() == hex
        ));
        assert_eq!(
            to_bson(storage, &Value::Text("abc".into())),
            Ok(Bson::String("abc".into()))
        );
    }

    #[test]
    fn json_is_taken_literally() {
        let b = json_to_bson(&json!({"$oid": "x", "n": 1, "big": 1_i64 << 40, "f": 1.5}));
        let Bson::Document(doc) = b else {
            panic!("a document")
        };
        assert_eq!(doc.get("$oid"), Some(&Bson::String("x".into())));
        assert_eq!(doc.get("n"), Some(&Bson::Int32(1)));
        assert_eq!(doc.get("big"), Some(&Bson::Int64(1 << 40)));
        assert_eq!(doc.get("f"), Some(&Bson::Double(1.5)));
    }

    #[test]
    fn dates_render_by_field_type() {
        let v = Value::coerce(FieldType::DateTime, &json!("2023-01-02T03:04:05.678Z"), "v")
            .expect("instant");
        let b = to_bson(plain(FieldType::DateTime), &v).expect("bson");
        assert_eq!(
            render(FieldType::DateTime, Some(&b)),
            json!("2023-01-02T03:04:05.678Z")
        );
        let d = Value::coerce(FieldType::Date, &json!("2023-01-02"), "v").expect("date");
        let b = to_bson(plain(FieldType::Date), &d).expect("bson");
        assert_eq!(render(FieldType::Date, Some(&b)), json!("2023-01-02"));
        assert_eq!(render(FieldType::String, None), Json::Null);
    }
}
