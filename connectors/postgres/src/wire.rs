//! PostgreSQL's binary wire format, decoded by the cell's actual type: NUMERIC digits
//! exactly as stored (scale included), dates and times beyond chrono's range, network
//! types, bit strings, and arrays of any dimension.

use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime};
use manifold_core::value::{float_to_json, format_instant, int_to_json};
use serde_json::Value as Json;
use sqlx::TypeInfo;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgTypeInfo, PgTypeKind};

/// How to read a value of one PostgreSQL type from its binary form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Codec {
    /// A built-in type, by OID.
    Builtin(u32),
    /// A type whose binary form is its text (enums, `citext`).
    Text,
    /// An array of elements read with the inner codec.
    Array(Box<Codec>),
    /// Anything else; rendered as null with a warning.
    Unknown,
}

mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const POINT: u32 = 600;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const MACADDR8: u32 = 774;
    pub const MONEY: u32 = 790;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const JSONPATH: u32 = 4072;

    /// The built-in scalar types [`super::decode`] reads.
    pub const SCALARS: &[u32] = &[
        BOOL,
        BYTEA,
        CHAR,
        NAME,
        INT8,
        INT2,
        INT4,
        TEXT,
        OID,
        JSON,
        XML,
        POINT,
        CIDR,
        FLOAT4,
        FLOAT8,
        UNKNOWN,
        MACADDR8,
        MONEY,
        MACADDR,
        INET,
        BPCHAR,
        VARCHAR,
        DATE,
        TIME,
        TIMESTAMP,
        TIMESTAMPTZ,
        INTERVAL,
        TIMETZ,
        BIT,
        VARBIT,
        NUMERIC,
        UUID,
        JSONB,
        JSONPATH,
    ];

    /// [`SCALARS`] as a bit per OID below 4096 (every built-in scalar's OID is), so a
    /// cell's type is looked up in a few instructions rather than by scanning the list.
    const SCALAR_BITS: [u64; 64] = {
        let mut bits = [0u64; 64];
        let mut i = 0;
        while i < SCALARS.len() {
            let oid = SCALARS[i] as usize;
            assert!(oid < 64 * 64, "a built-in scalar's OID is below 4096");
            bits[oid / 64] |= 1 << (oid % 64);
            i += 1;
        }
        bits
    };

    /// Whether `oid` is one of [`SCALARS`].
    pub fn is_scalar(oid: u32) -> bool {
        let oid = oid as usize;
        SCALAR_BITS
            .get(oid / 64)
            .is_some_and(|word| word & (1 << (oid % 64)) != 0)
    }
}

impl Codec {
    pub(crate) fn of(type_info: &PgTypeInfo) -> Codec {
        let Some(Oid(oid)) = type_info.oid() else {
            return Codec::Unknown;
        };
        if oid::is_scalar(oid) {
            return Codec::Builtin(oid);
        }
        // sqlx names a type "?" when it could not resolve it, and `kind()` panics on such
        // a type; every type in a result row is resolved, but a panic must stay impossible.
        if type_info.name() == "?" {
            return Codec::Unknown;
        }
        match type_info.kind() {
            PgTypeKind::Array(element) => Codec::Array(Box::new(Codec::of(element))),
            PgTypeKind::Enum(_) => Codec::Text,
            PgTypeKind::Domain(base) => Codec::of(base),
            PgTypeKind::Simple if type_info.name().eq_ignore_ascii_case("citext") => Codec::Text,
            _ => Codec::Unknown,
        }
    }
}

/// A decoded cell, or why it could not be decoded.
pub(crate) type Decoded = std::result::Result<Json, String>;

/// Reads fixed-size big-endian numbers off the front of a binary value.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("value truncated: needed {n} more bytes"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i16(&mut self) -> std::result::Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> std::result::Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn f64(&mut self) -> std::result::Result<f64, String> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn exact<const N: usize>(bytes: &[u8]) -> std::result::Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

fn utf8(bytes: &[u8]) -> std::result::Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8".to_owned())
}

/// The PostgreSQL epoch (2000-01-01) that dates and timestamps count from.
fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn timestamp(micros: i64) -> std::result::Result<Option<NaiveDateTime>, String> {
    // PostgreSQL stores ±infinity as the extreme values.
    if micros == i64::MAX || micros == i64::MIN {
        return Ok(None);
    }
    pg_epoch()
        .checked_add_signed(Duration::microseconds(micros))
        .map(Some)
        .ok_or_else(|| "timestamp out of range".to_owned())
}

fn infinity(positive: bool) -> Json {
    Json::String(if positive { "infinity" } else { "-infinity" }.into())
}

pub(crate) fn decode(codec: &Codec, bytes: &[u8]) -> Decoded {
    match codec {
        Codec::Builtin(oid) => decode_builtin(*oid, bytes),
        Codec::Text => utf8(bytes).map(Json::String),
        Codec::Array(element) => decode_array(element, bytes),
        Codec::Unknown => Err("no decoder for this type".into()),
    }
}

fn decode_builtin(oid: u32, bytes: &[u8]) -> Decoded {
    let b = bytes;
    Ok(match oid {
        oid::BOOL => Json::Bool(exact::<1>(b)?[0] != 0),
        oid::INT2 => Json::from(i16::from_be_bytes(exact(b)?)),
        oid::INT4 => Json::from(i32::from_be_bytes(exact(b)?)),
        oid::INT8 => int_to_json(i64::from_be_bytes(exact(b)?)),
        oid::OID => Json::String(u32::from_be_bytes(exact(b)?).to_string()),
        // Through its shortest decimal form, so a real 0.1 renders as 0.1, not as the
        // nearest double 0.10000000149011612.
        oid::FLOAT4 => {
            let f = f32::from_be_bytes(exact(b)?);
            float_to_json(f.to_string().parse::<f64>().unwrap_or(f64::NAN))
        }
        oid::FLOAT8 => float_to_json(f64::from_be_bytes(exact(b)?)),
        oid::NUMERIC => Json::String(numeric(b)?),
        oid::MONEY => Json::String(money(i64::from_be_bytes(exact(b)?))),
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::CHAR
        | oid::XML
        | oid::UNKNOWN => Json::String(utf8(b)?),
        oid::JSON => serde_json::from_slice(b).map_err(|e| format!("invalid json: {e}"))?,
        oid::JSONB => match b.split_first() {
            Some((1, text)) => {
                serde_json::from_slice(text).map_err(|e| format!("invalid jsonb: {e}"))?
            }
            _ => return Err("unsupported jsonb version".into()),
        },
        oid::JSONPATH => match b.split_first() {
            Some((1, text)) => Json::String(utf8(text)?),
            _ => return Err("unsupported jsonpath version".into()),
        },
        oid::UUID => Json::String(uuid::Uuid::from_bytes(exact(b)?).hyphenated().to_string()),
        oid::BYTEA => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        oid::DATE => {
            let days = i32::from_be_bytes(exact(b)?);
            if days == i32::MAX || days == i32::MIN {
                return Ok(infinity(days == i32::MAX));
            }
            let date = pg_epoch()
                .date()
                .checked_add_signed(Duration::days(i64::from(days)))
                .ok_or("date out of range")?;
            Json::String(date.format("%Y-%m-%d").to_string())
        }
        oid::TIMESTAMP => {
            let micros = i64::from_be_bytes(exact(b)?);
            match timestamp(micros)? {
                Some(t) => Json::String(t.format("%Y-%m-%d %H:%M:%S").to_string()),
                None => infinity(micros == i64::MAX),
            }
        }
        oid::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(exact(b)?);
            match timestamp(micros)? {
                Some(t) => Json::String(format_instant(&DateTime::from_naive_utc_and_offset(
                    t,
                    chrono::Utc,
                ))),
                None => infinity(micros == i64::MAX),
            }
        }
        oid::TIME => {
            // Whole seconds, as the API renders times; 24:00:00 is a valid time here.
            let secs = u64::try_from(i64::from_be_bytes(exact(b)?) / 1_000_000)
                .map_err(|_| "negative time")?;
            Json::String(format!(
                "{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            ))
        }
        oid::TIMETZ => Json::String(timetz(b)?),
        oid::INTERVAL => Json::String(interval(b)?),
        oid::INET | oid::CIDR => Json::String(inet(b)?),
        oid::MACADDR | oid::MACADDR8 => Json::String(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        oid::BIT | oid::VARBIT => Json::String(bits(b)?),
        oid::POINT => {
            let mut r = Reader(b);
            Json::String(format!("({},{})", r.f64()?, r.f64()?))
        }
        other => return Err(format!("no decoder for OID {other}")),
    })
}

/// `NUMERIC` in PostgreSQL's own text form: every stored digit, the declared scale kept
/// (`12.50` stays `12.50`), any number of digits.
fn numeric(bytes: &[u8]) -> std::result::Result<String, String> {
    let mut r = Reader(bytes);
    let ndigits = usize::try_from(r.i16()?).map_err(|_| "negative digit count")?;
    let weight = i64::from(r.i16()?);
    let sign = r.u16()?;
    let dscale = usize::from(r.u16()?);
    let digits = (0..ndigits)
        .map(|_| r.i16())
        .collect::<std::result::Result<Vec<i16>, _>>()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("bad numeric sign {other:#x}")),
    }
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return Err("numeric digit out of range".into());
    }
    // Base-10000 digit i has weight `weight - i`.
    let digit_at = |i: i64| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = String::with_capacity(ndigits * 4 + dscale + 2);
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit_at(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit_at(i)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let start = out.len();
        let mut i = weight + 1;
        while out.len() - start < dscale {
            out.push_str(&format!("{:04}", digit_at(i)));
            i += 1;
        }
        out.truncate(start + dscale);
    }
    Ok(out)
}

/// `money` as a plain decimal with two fraction digits (the text form depends on the
/// server's `lc_monetary`, which a client cannot rely on).
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Seconds with a trimmed fraction, as PostgreSQL prints them.
fn push_seconds(out: &mut String, micros_of_minute: u64) {
    let (secs, frac) = (micros_of_minute / 1_000_000, micros_of_minute % 1_000_000);
    out.push_str(&format!("{secs:02}"));
    if frac > 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn timetz(bytes: &[u8]) -> std::result::Result<String, String> {
    let mut r = Reader(bytes);
    let micros = r.i64()?;
    // Seconds *west* of UTC, so +02 is stored as -7200.
    let zone = r.i32()?;
    let micros = u64::try_from(micros).map_err(|_| "negative time")?;
    let mut out = format!(
        "{:02}:{:02}:",
        micros / 3_600_000_000,
        micros / 60_000_000 % 60
    );
    push_seconds(&mut out, micros % 60_000_000);
    let abs = zone.unsigned_abs();
    out.push(if zone <= 0 { '+' } else { '-' });
    out.push_str(&format!("{:02}", abs / 3600));
    if abs % 3600 != 0 {
        out.push_str(&format!(":{:02}", abs / 60 % 60));
        if abs % 60 != 0 {
            out.push_str(&format!(":{:02}", abs % 60));
        }
    }
    Ok(out)
}

/// `interval` in PostgreSQL's default output style (`1 year 2 mons 3 days 04:05:06.5`).
fn interval(bytes: &[u8]) -> std::result::Result<String, String> {
    let mut r = Reader(bytes);
    let micros = r.i64()?;
    let days = i64::from(r.i32()?);
    let months = i64::from(r.i32()?);
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    for (value, unit) in [(months / 12, "year"), (months % 12, "mon"), (days, "day")] {
        if value == 0 {
            continue;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        is_before = value < 0;
        is_zero = false;
    }
    if is_zero || micros != 0 {
        if !is_zero {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let abs = micros.unsigned_abs();
        out.push_str(&format!(
            "{:02}:{:02}:",
            abs / 3_600_000_000,
            abs / 60_000_000 % 60
        ));
        push_seconds(&mut out, abs % 60_000_000);
    }
    Ok(out)
}

fn inet(bytes: &[u8]) -> std::result::Result<String, String> {
    let mut r = Reader(bytes);
    let family = r.u8()?;
    let bits = r.u8()?;
    let is_cidr = r.u8()? != 0;
    let len = usize::from(r.u8()?);
    let addr = r.take(len)?;
    let (text, max_bits) = match family {
        2 => (std::net::Ipv4Addr::from(exact::<4>(addr)?).to_string(), 32),
        3 => (
            std::net::Ipv6Addr::from(exact::<16>(addr)?).to_string(),
            128,
        ),
        other => return Err(format!("unknown address family {other}")),
    };
    Ok(if is_cidr || bits != max_bits {
        format!("{text}/{bits}")
    } else {
        text
    })
}

fn bits(bytes: &[u8]) -> std::result::Result<String, String> {
    let mut r = Reader(bytes);
    let len = usize::try_from(r.i32()?).map_err(|_| "negative bit length")?;
    let data = r.rest();
    if data.len() * 8 < len {
        return Err("bit string truncated".into());
    }
    Ok((0..len)
        .map(|i| {
            if data[i / 8] & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect())
}

/// An array of any dimension as nested JSON arrays; NULL elements stay null.
fn decode_array(element: &Codec, bytes: &[u8]) -> Decoded {
    let mut r = Reader(bytes);
    let ndim = usize::try_from(r.i32()?).map_err(|_| "negative dimension count")?;
    let _has_nulls = r.i32()?;
    let _element_oid = r.u32()?;
    if ndim == 0 {
        return Ok(Json::Array(Vec::new()));
    }
    if ndim > 6 {
        return Err("too many array dimensions".into());
    }
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        dims.push(usize::try_from(r.i32()?).map_err(|_| "negative dimension")?);
        let _lower_bound = r.i32()?;
    }
    let total = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("array too large")?;
    let mut items = Vec::with_capacity(total.min(1 << 16));
    for _ in 0..total {
        let len = r.i32()?;
        items.push(if len < 0 {
            Json::Null
        } else {
            let len = usize::try_from(len).map_err(|_| "bad element length")?;
            decode(element, r.take(len)?)?
        });
    }
    // Fold the flat list into nested arrays, innermost dimension first.
    for &dim in dims.iter().skip(1).rev() {
        let mut outer = Vec::with_capacity(items.len() / dim.max(1));
        let mut iter = items.into_iter();
        loop {
            let chunk: Vec<Json> = iter.by_ref().take(dim).collect();
            if chunk.is_empty() {
                break;
            }
            outer.push(Json::Array(chunk));
        }
        items = outer;
    }
    Ok(Json::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scalar_bitset_holds_the_scalar_list_and_nothing_else() {
        for candidate in 0..10_000 {
            assert_eq!(
                oid::is_scalar(candidate),
                oid::SCALARS.contains(&candidate),
                "OID {candidate}"
            );
        }
        assert!(!oid::is_scalar(u32::MAX));
    }

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_keep_every_digit_and_their_scale() {
        assert_eq!(
            numeric(&numeric_bytes(0, 0, 2, &[12, 5000])).as_deref(),
            Ok("12.50")
        );
        assert_eq!(
            numeric(&numeric_bytes(
                4,
                0,
                2,
                &[1234, 5678, 9012, 3456, 7890, 1200]
            ))
            .as_deref(),
            Ok("12345678901234567890.12")
        );
        assert_eq!(
            numeric(&numeric_bytes(-2, 0x4000, 8, &[1234])).as_deref(),
            Ok("-0.00001234")
        );
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, &[])).as_deref(), Ok("0"));
        assert_eq!(
            numeric(&numeric_bytes(1, 0, 0, &[1])).as_deref(),
            Ok("10000")
        );
        assert_eq!(
            numeric(&numeric_bytes(0, 0xC000, 0, &[])).as_deref(),
            Ok("NaN")
        );
    }

    #[test]
    fn intervals_print_as_postgres_does() {
        let iv = |micros: i64, days: i32, months: i32| {
            let mut b = micros.to_be_bytes().to_vec();
            b.extend_from_slice(&days.to_be_bytes());
            b.extend_from_slice(&months.to_be_bytes());
            interval(&b).expect("valid interval")
        };
        assert_eq!(iv(0, 0, 0), "00:00:00");
        assert_eq!(iv(14_706_500_000, 3, 14), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(iv(0, -1, 0), "-1 days");
        assert_eq!(iv(3_600_000_000, -1, 0), "-1 days +01:00:00");
        assert_eq!(iv(-3_600_000_000, 1, 0), "1 day -01:00:00");
    }

    #[test]
    fn arrays_nest_by_dimension() {
        let mut b = Vec::new();
        for x in [2i32, 1, oid::INT4 as i32, 2, 1, 2, 1] {
            b.extend_from_slice(&x.to_be_bytes());
        }
        for x in [Some(1i32), None, Some(3), Some(4)] {
            match x {
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(
            decode_array(&Codec::Builtin(oid::INT4), &b),
            Ok(serde_json::json!([[1, null], [3, 4]]))
        );
    }

    #[test]
    fn unknown_types_render_as_null_without_panicking() {
        assert_eq!(decode(&Codec::Unknown, b"anything").ok(), None);
        assert_eq!(decode_builtin(oid::INT4, b"\x01").ok(), None);
    }
}
