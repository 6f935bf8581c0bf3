//! Date operands of the filter language (spec §5): NocoBase's date strings, between forms and
//! relative objects, parsed into one UTC instant or a half-open UTC range.
//!
//! [`date_condition`] then turns a `$date*` operator and its operand into the comparisons a
//! compiler renders, so every connector shares one reading of dates and timezones.

use chrono::{
    DateTime, Datelike, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeDelta, Utc, Weekday,
};
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::filter::DateOperator;
use crate::value::format_instant;

/// A UTC offset such as `+08:00` (from an operand suffix or the `X-Timezone` header).
///
/// Accepts `±HH:MM`, `±HHMM`, `±HH` and `Z`; IANA names such as `Asia/Shanghai` are not
/// supported and give `None`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s == "Z" {
        return Some(Utc.fix());
    }
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = match b.len() {
        3 => (digits(b, 1, 2)?, 0),
        5 => (digits(b, 1, 2)?, digits(b, 3, 2)?),
        6 if b.get(3) == Some(&b':') => (digits(b, 1, 2)?, digits(b, 4, 2)?),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * i32::try_from(hours * 3600 + minutes * 60).ok()?)
}

/// What a date operand means: one instant, or the half-open range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOperand {
    /// An exact instant (the operand ended in `Z`).
    Instant(DateTime<Utc>),
    /// `[start, end)`; the flags are set only by between bounds given as exact instants, whose
    /// `(` makes the start exclusive and whose `]` makes the end inclusive.
    Range {
        /// The first instant of the range (unless `start_exclusive`).
        start: DateTime<Utc>,
        /// The first instant after the range (unless `end_inclusive`).
        end: DateTime<Utc>,
        /// The range is `(start, …`: a between operand opened with `(` on an exact instant.
        start_exclusive: bool,
        /// The range is `…, end]`: a between operand closed with `]` on an exact instant.
        end_inclusive: bool,
    },
}

/// Parses a date operand (a JSON string, a 2/3/4-element JSON array for between, or a relative
/// object `{type, unit?, number?}`) in the default timezone `tz` (None = `+00:00`) at `now`.
///
/// Errors are 400s whose message starts with `Invalid Date` and names the offending operand.
pub fn parse_date_operand(
    operand: &Json,
    tz: Option<FixedOffset>,
    now: DateTime<Utc>,
) -> Result<DateOperand> {
    let parsed = parse_any_operand(operand, tz, now)?;
    // A time zone, a week start or a relative count can move a bound out of the four-digit
    // years: MySQL cannot bind a year before 0000, and a year past 9999 sorts before every
    // other date where instants are stored as text (SQLite).
    let bounds = match parsed {
        DateOperand::Instant(t) => [t, t],
        DateOperand::Range { start, end, .. } => [start, end],
    };
    if let Some(t) = bounds.iter().find(|t| !(0..=9999).contains(&t.year())) {
        let side = if t.year() < 0 {
            "before year 0000"
        } else {
            "after year 9999"
        };
        return Err(invalid_json(operand, &format!("is out of range ({side})")));
    }
    Ok(parsed)
}

fn parse_any_operand(
    operand: &Json,
    tz: Option<FixedOffset>,
    now: DateTime<Utc>,
) -> Result<DateOperand> {
    let tz = tz.unwrap_or_else(|| Utc.fix());
    match operand {
        Json::String(s) => parse_string(s, tz),
        Json::Number(_) => parse_string(&number_text(operand)?, tz),
        Json::Array(items) => parse_between_array(operand, items, tz),
        Json::Object(map) => {
            let relative = relative_range(operand, map, tz, now)?;
            let too_far = || invalid_json(operand, "is out of range (beyond year 262143)");
            let start =
                wall_to_utc(midnight(relative.start), relative.offset).ok_or_else(too_far)?;
            let end = wall_to_utc(midnight(relative.end), relative.offset).ok_or_else(too_far)?;
            Ok(range(start, end))
        }
        Json::Null | Json::Bool(_) => Err(invalid_json(operand, EXPECTED)),
    }
}

/// One comparison of the column against an instant (spec §5.2).
#[derive(Debug, Clone, PartialEq)]
pub enum DateBound {
    /// `column < t`.
    Lt(DateTime<Utc>),
    /// `column <= t`.
    Lte(DateTime<Utc>),
    /// `column > t`.
    Gt(DateTime<Utc>),
    /// `column >= t`.
    Gte(DateTime<Utc>),
    /// `column = t`.
    Eq(DateTime<Utc>),
    /// `column <> t`.
    Ne(DateTime<Utc>),
}

/// The comparisons an operator needs: AND-ed, or OR-ed when `any` is set.
///
/// Only `$dateNotOn` with a range sets `any` (`c < s OR c >= e`); rendered as SQL, NULL
/// columns then match neither side, which is the required "NULL rows excluded".
#[derive(Debug, Clone, PartialEq)]
pub struct DateCondition {
    /// The comparisons, in the order start side first.
    pub bounds: Vec<DateBound>,
    /// `true`: any one bound suffices (OR); `false`: all must hold (AND).
    pub any: bool,
}

/// The condition for `op` on `operand`, as in spec §5.2.
///
/// `$dateBetween` with a single instant is a 400.
pub fn date_condition(op: DateOperator, operand: &DateOperand) -> Result<DateCondition> {
    let all = |bounds| DateCondition { bounds, any: false };
    match *operand {
        DateOperand::Instant(t) => {
            let bound = match op {
                DateOperator::DateOn => DateBound::Eq(t),
                DateOperator::DateNotOn => DateBound::Ne(t),
                DateOperator::DateBefore => DateBound::Lt(t),
                DateOperator::DateNotBefore => DateBound::Gte(t),
                DateOperator::DateAfter => DateBound::Gt(t),
                DateOperator::DateNotAfter => DateBound::Lte(t),
                // NocoBase builds a nonsensical condition here; a 400 tells the client why.
                DateOperator::DateBetween => {
                    return Err(Error::bad_request(format!(
                        "Invalid Date: $dateBetween needs a range such as \
                         [2023-01-01,2023-01-31], not the single instant {}",
                        format_instant(&t)
                    )));
                }
            };
            Ok(all(vec![bound]))
        }
        DateOperand::Range {
            start,
            end,
            start_exclusive,
            end_inclusive,
        } => {
            let inside_from = if start_exclusive {
                DateBound::Gt(start)
            } else {
                DateBound::Gte(start)
            };
            let inside_until = if end_inclusive {
                DateBound::Lte(end)
            } else {
                DateBound::Lt(end)
            };
            let before = if start_exclusive {
                DateBound::Lte(start)
            } else {
                DateBound::Lt(start)
            };
            let after = if end_inclusive {
                DateBound::Gt(end)
            } else {
                DateBound::Gte(end)
            };
            Ok(match op {
                DateOperator::DateOn | DateOperator::DateBetween => {
                    all(vec![inside_from, inside_until])
                }
                DateOperator::DateNotOn => DateCondition {
                    bounds: vec![before, after],
                    any: true,
                },
                DateOperator::DateBefore => all(vec![before]),
                DateOperator::DateNotBefore => all(vec![inside_from]),
                DateOperator::DateAfter => all(vec![after]),
                DateOperator::DateNotAfter => all(vec![inside_until]),
            })
        }
    }
}

const EXPECTED: &str = "is not a date (expected 2023, 2023Q1, 2023W01, 2023-01-12, ...)";

const RELATIVE_EXPECTED: &str = "is not a relative date (expected {\"type\": \"today\"} or \
                                 {\"type\": \"past\", \"unit\": \"day\", \"number\": 7})";

const BETWEEN_EXPECTED: &str =
    "is not a between range (expected [a,b], (a,b], [a,b) or (a,b), optionally +HH:MM)";

/// Operands come from clients and may be huge; messages repeat only this many characters.
const SHOWN_CHARS: usize = 60;

/// The precision of a date string: the calendar or clock unit it names, its range one such
/// unit long.
///
/// Declared coarse to fine, so `unit < Precision::Day` means "names less than a day".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precision {
    Year,
    Quarter,
    IsoWeek,
    LocaleWeek,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// A parsed date string before any offset is applied.
struct Wall {
    start: NaiveDateTime,
    unit: Precision,
}

/// One side of a between operand.
enum Bound {
    Instant(DateTime<Utc>),
    Range(DateTime<Utc>, DateTime<Utc>),
}

fn range(start: DateTime<Utc>, end: DateTime<Utc>) -> DateOperand {
    DateOperand::Range {
        start,
        end,
        start_exclusive: false,
        end_inclusive: false,
    }
}

fn show_str(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", Json::from(&s[..cut])),
        None => Json::from(s).to_string(),
    }
}

fn show_json(v: &Json) -> String {
    if let Json::String(s) = v {
        return show_str(s);
    }
    let text = v.to_string();
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn invalid(piece: &str, reason: &str) -> Error {
    Error::bad_request(format!("Invalid Date: {} {reason}", show_str(piece)))
}

fn invalid_json(piece: &Json, reason: &str) -> Error {
    Error::bad_request(format!("Invalid Date: {} {reason}", show_json(piece)))
}

/// The error for a `$date…` operator that does not exist.
pub(crate) fn unknown_operator(op: &str) -> Error {
    let shown = show_str(op);
    Error::bad_request(format!("Unknown date operator {shown}"))
        .with_message_id("filter-unknown-date-operator", vec![("operator", shown)])
}

fn out_of_range(piece: &str, detail: &str) -> Error {
    invalid(piece, &format!("is out of range ({detail})"))
}

/// `n` ASCII digits at `at` as a number; callers pass `n <= 9`, so it fits a `u32`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at.checked_add(n)?)?;
    part.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Integers are read as their decimal text, as NocoBase's regexes do (`2023` is a year).
fn number_text(operand: &Json) -> Result<String> {
    operand
        .as_u64()
        .map(|n| n.to_string())
        .ok_or_else(|| invalid_json(operand, EXPECTED))
}

/// Splits a trailing `±HH:MM` off `s`; only that exact shape counts, as in NocoBase.
fn split_suffix(s: &str) -> (&str, Option<&str>) {
    let b = s.as_bytes();
    let n = b.len();
    if n > 6
        && matches!(b[n - 6], b'+' | b'-')
        && b[n - 5].is_ascii_digit()
        && b[n - 4].is_ascii_digit()
        && b[n - 3] == b':'
        && b[n - 2].is_ascii_digit()
        && b[n - 1].is_ascii_digit()
    {
        // The byte at n - 6 is ASCII, so it is a char boundary.
        return (&s[..n - 6], Some(&s[n - 6..]));
    }
    (s, None)
}

fn offset_of(suffix: &str, whole: &str) -> Result<FixedOffset> {
    parse_offset(suffix).ok_or_else(|| invalid(whole, "has an invalid UTC offset"))
}

fn parse_string(s: &str, tz: FixedOffset) -> Result<DateOperand> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(invalid(s, EXPECTED));
    }
    let (body, suffix) = split_suffix(trimmed);
    if body.starts_with(['[', '(']) {
        let offset = match suffix {
            Some(suffix) => offset_of(suffix, s)?,
            None => tz,
        };
        return parse_between_string(body, s, offset);
    }
    Ok(match parse_single(trimmed, tz)? {
        Bound::Instant(t) => DateOperand::Instant(t),
        Bound::Range(start, end) => range(start, end),
    })
}

/// One date (no between form): an instant ending in `Z`, or a unit range in its suffix
/// offset or else `tz`.
fn parse_single(s: &str, tz: FixedOffset) -> Result<Bound> {
    let s = s.trim();
    let (body, suffix) = split_suffix(s);
    // An explicit Z wins over any suffix offset (PD-17).
    if let Some(wall) = body.strip_suffix('Z') {
        let wall = parse_wall(wall, s, true)?;
        return Ok(Bound::Instant(wall.start.and_utc()));
    }
    let offset = match suffix {
        Some(suffix) => offset_of(suffix, s)?,
        None => tz,
    };
    let wall = parse_wall(body, s, false)?;
    let too_far = || out_of_range(s, "beyond year 262143");
    let end = step(wall.start, wall.unit).ok_or_else(too_far)?;
    Ok(Bound::Range(
        wall_to_utc(wall.start, offset).ok_or_else(too_far)?,
        wall_to_utc(end, offset).ok_or_else(too_far)?,
    ))
}

/// `None` only past chrono's range (year 262143).
fn wall_to_utc(wall: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    wall.checked_sub_offset(offset).map(|t| t.and_utc())
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN)
}

/// Parses the offset-less forms `2023`, `2023Q2`, `2023W01`, `2023w01`, `2023-03`,
/// `2023-01-12` and `2023-01-12T12[:23[:59[.326]]]` (`T` or space); `instant` is for the text
/// before a `Z`, which must name at least a day and may carry 1 to 9 fraction digits.
fn parse_wall(s: &str, whole: &str, instant: bool) -> Result<Wall> {
    let b = s.as_bytes();
    let not_a_date = || invalid(whole, EXPECTED);
    let year = digits(b, 0, 4)
        .and_then(|y| i32::try_from(y).ok())
        .ok_or_else(not_a_date)?;
    let wall = match (b.get(4), b.len()) {
        (None, _) => Wall {
            start: midnight(ymd(year, 1, 1, whole)?),
            unit: Precision::Year,
        },
        (Some(b'Q'), 6) => {
            let quarter = digits(b, 5, 1).ok_or_else(not_a_date)?;
            if !(1..=4).contains(&quarter) {
                return Err(out_of_range(
                    whole,
                    &format!("quarter {quarter} does not exist"),
                ));
            }
            Wall {
                start: midnight(ymd(year, (quarter - 1) * 3 + 1, 1, whole)?),
                unit: Precision::Quarter,
            }
        }
        (Some(b'W'), 7) => {
            let week = digits(b, 5, 2).ok_or_else(not_a_date)?;
            let monday = NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(|| {
                out_of_range(
                    whole,
                    &format!("week {week:02} does not exist in ISO year {year:04}"),
                )
            })?;
            Wall {
                start: midnight(monday),
                unit: Precision::IsoWeek,
            }
        }
        (Some(b'w'), 7) => {
            let week = digits(b, 5, 2).ok_or_else(not_a_date)?;
            Wall {
                start: midnight(locale_week_start(year, week, whole)?),
                unit: Precision::LocaleWeek,
            }
        }
        (Some(b'-'), _) => parse_date_time(b, year, whole, instant)?,
        _ => return Err(not_a_date()),
    };
    if instant && wall.unit < Precision::Day {
        return Err(not_a_date());
    }
    Ok(wall)
}

fn ymd(year: i32, month: u32, day: u32, whole: &str) -> Result<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        out_of_range(
            whole,
            &format!("day {day:02} does not exist in {year:04}-{month:02}"),
        )
    })
}

/// Week 1 is the Sunday-started week containing January 1 (dayjs' default `en` locale), so a
/// year has 52 or 53 of them; the week containing the next January 1 belongs to next year.
fn locale_week_start(year: i32, week: u32, whole: &str) -> Result<NaiveDate> {
    let first_sunday = |y: i32| {
        let jan1 = NaiveDate::from_ymd_opt(y, 1, 1)?;
        jan1.checked_sub_signed(TimeDelta::try_days(i64::from(
            jan1.weekday().num_days_from_sunday(),
        ))?)
    };
    let missing = || {
        out_of_range(
            whole,
            &format!("week {week:02} does not exist in week-year {year:04}"),
        )
    };
    let start = first_sunday(year).ok_or_else(missing)?;
    let next = first_sunday(year + 1).ok_or_else(missing)?;
    let weeks = (next - start).num_days() / 7;
    if week < 1 || i64::from(week) > weeks {
        return Err(missing());
    }
    start
        .checked_add_signed(TimeDelta::try_days(i64::from(week - 1) * 7).ok_or_else(missing)?)
        .ok_or_else(missing)
}

/// `YYYY-MM` and longer; `b` starts with a checked `YYYY-`.
fn parse_date_time(b: &[u8], year: i32, whole: &str, instant: bool) -> Result<Wall> {
    let not_a_date = || invalid(whole, EXPECTED);
    let field = |at: usize| digits(b, at, 2).ok_or_else(not_a_date);
    let sep = |at: usize, allowed: &[u8]| match b.get(at) {
        Some(c) if allowed.contains(c) => Ok(()),
        _ => Err(not_a_date()),
    };

    // Read the whole shape first, so "2023-13-xx" is "not a date" rather than "month 13".
    let month = field(5)?;
    let (mut day, mut hour, mut minute, mut second, mut nanos) = (1, 0, 0, 0, 0);
    let unit = if b.len() == 7 {
        Precision::Month
    } else {
        sep(7, b"-")?;
        day = field(8)?;
        if b.len() == 10 {
            Precision::Day
        } else {
            sep(10, b"T ")?;
            hour = field(11)?;
            if b.len() == 13 {
                Precision::Hour
            } else {
                sep(13, b":")?;
                minute = field(14)?;
                if b.len() == 16 {
                    Precision::Minute
                } else {
                    sep(16, b":")?;
                    second = field(17)?;
                    if b.len() == 19 {
                        Precision::Second
                    } else {
                        sep(19, b".")?;
                        let count = b.len() - 20;
                        // Ranges need exactly milliseconds (NocoBase's `.SSS`); an instant
                        // may carry any RFC 3339 precision down to nanoseconds.
                        let allowed = if instant { 1..=9 } else { 3..=3 };
                        if !allowed.contains(&count) {
                            return Err(not_a_date());
                        }
                        let fraction = digits(b, 20, count).ok_or_else(not_a_date)?;
                        // count is 1..=9, so the scale is at most 10^8 and cannot overflow.
                        nanos = fraction * 10u32.pow(9 - count as u32);
                        Precision::Millisecond
                    }
                }
            }
        }
    };

    if !(1..=12).contains(&month) {
        return Err(out_of_range(
            whole,
            &format!("month {month:02} does not exist"),
        ));
    }
    let date = ymd(year, month, day, whole)?;
    let checks = [
        (hour, 23, "hour"),
        (minute, 59, "minute"),
        (second, 59, "second"),
    ];
    for (value, max, name) in checks {
        if value > max {
            return Err(out_of_range(
                whole,
                &format!("{name} {value:02} does not exist"),
            ));
        }
    }
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).ok_or_else(not_a_date)?;
    Ok(Wall {
        start: date.and_time(time),
        unit,
    })
}

/// The wall-clock start of the unit after the one starting at `start`; `None` past chrono's
/// range.
fn step(start: NaiveDateTime, unit: Precision) -> Option<NaiveDateTime> {
    let delta = match unit {
        Precision::Year => return start.checked_add_months(Months::new(12)),
        Precision::Quarter => return start.checked_add_months(Months::new(3)),
        Precision::Month => return start.checked_add_months(Months::new(1)),
        Precision::IsoWeek | Precision::LocaleWeek => TimeDelta::try_days(7)?,
        Precision::Day => TimeDelta::try_days(1)?,
        Precision::Hour => TimeDelta::try_hours(1)?,
        Precision::Minute => TimeDelta::try_minutes(1)?,
        Precision::Second => TimeDelta::try_seconds(1)?,
        Precision::Millisecond => TimeDelta::try_milliseconds(1)?,
    };
    start.checked_add_signed(delta)
}

fn parse_between_string(body: &str, whole: &str, offset: FixedOffset) -> Result<DateOperand> {
    let b = body.as_bytes();
    let (Some(&open), Some(&close)) = (b.first(), b.last()) else {
        return Err(invalid(whole, BETWEEN_EXPECTED));
    };
    if b.len() < 2 || !matches!(close, b')' | b']') {
        return Err(invalid(whole, BETWEEN_EXPECTED));
    }
    // Both brackets are ASCII, so these are char boundaries.
    let inner = &body[1..body.len() - 1];
    let mut parts = inner.split(',');
    let (Some(first), Some(second), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid(whole, BETWEEN_EXPECTED));
    };
    let first = parse_single(first, offset)?;
    let second = parse_single(second, offset)?;
    Ok(between(first, second, open, close))
}

fn parse_between_array(operand: &Json, items: &[Json], tz: FixedOffset) -> Result<DateOperand> {
    let (first, second, op, offset) = match items {
        [a, b] => (a, b, None, None),
        [a, b, op] => (a, b, Some(op), None),
        [a, b, op, offset] => (a, b, Some(op), Some(offset)),
        _ => {
            return Err(invalid_json(
                operand,
                "is not a between range (expected [start, end, \"[]\", \"+08:00\"] with 2 to 4 \
                 elements)",
            ));
        }
    };
    let offset = match offset {
        None | Some(Json::Null) => tz,
        Some(Json::String(s)) => parse_offset(s).ok_or_else(|| {
            invalid(
                s,
                "is not a UTC offset (expected +HH:MM; IANA names are not supported)",
            )
        })?,
        Some(other) => return Err(invalid_json(other, "is not a UTC offset (expected +HH:MM)")),
    };
    let (open, close) = match op {
        None | Some(Json::Null) => (b'[', b']'),
        Some(Json::String(op)) => match op.as_bytes() {
            [open @ (b'[' | b'('), close @ (b']' | b')')] => (*open, *close),
            _ => {
                return Err(invalid(
                    op,
                    "is not a between operator (expected [], [), (] or ())",
                ));
            }
        },
        Some(other) => {
            return Err(invalid_json(
                other,
                "is not a between operator (expected [], [), (] or ())",
            ));
        }
    };
    let bound = |item: &Json| match item {
        Json::String(s) => parse_single(s, offset),
        Json::Number(_) => parse_single(&number_text(item)?, offset),
        other => Err(invalid_json(other, EXPECTED)),
    };
    Ok(between(bound(first)?, bound(second)?, open, close))
}

/// Spec §5.1: `[`/`(` take the start/end of the first bound's unit, `]`/`)` the end/start of
/// the second's; an exact-instant bound keeps its bracket as an inclusive/exclusive flag.
fn between(first: Bound, second: Bound, open: u8, close: u8) -> DateOperand {
    let (start, start_exclusive) = match first {
        Bound::Instant(t) => (t, open == b'('),
        Bound::Range(s, e) => (if open == b'(' { e } else { s }, false),
    };
    let (end, end_inclusive) = match second {
        Bound::Instant(t) => (t, close == b']'),
        Bound::Range(s, e) => (if close == b')' { s } else { e }, false),
    };
    DateOperand::Range {
        start,
        end,
        start_exclusive,
        end_inclusive,
    }
}

/// The calendar units relative values move in.
#[derive(Debug, Clone, Copy)]
enum Period {
    Day,
    IsoWeek,
    Month,
    Quarter,
    Year,
}

/// A relative value resolved to whole local days `[start, end)` in `offset`.
struct Relative {
    start: NaiveDate,
    end: NaiveDate,
    offset: FixedOffset,
}

fn relative_range(
    operand: &Json,
    map: &Map<String, Json>,
    tz: FixedOffset,
    now: DateTime<Utc>,
) -> Result<Relative> {
    let Some(Json::String(kind)) = map.get("type") else {
        return Err(invalid_json(operand, RELATIVE_EXPECTED));
    };
    // An explicit key in the object is more specific than the request's default timezone.
    let offset = match map.get("timezone") {
        None | Some(Json::Null) => tz,
        Some(Json::String(s)) => parse_offset(s).ok_or_else(|| {
            invalid(
                s,
                "is not a UTC offset (expected +HH:MM; IANA names are not supported)",
            )
        })?,
        Some(other) => return Err(invalid_json(other, "is not a UTC offset (expected +HH:MM)")),
    };
    let (period, from, to) = match kind.as_str() {
        "today" => (Period::Day, 0, 1),
        "yesterday" => (Period::Day, -1, 0),
        "tomorrow" => (Period::Day, 1, 2),
        "thisWeek" => (Period::IsoWeek, 0, 1),
        "lastWeek" => (Period::IsoWeek, -1, 0),
        "nextWeek" => (Period::IsoWeek, 1, 2),
        "thisMonth" => (Period::Month, 0, 1),
        "lastMonth" => (Period::Month, -1, 0),
        "nextMonth" => (Period::Month, 1, 2),
        "thisQuarter" => (Period::Quarter, 0, 1),
        "lastQuarter" => (Period::Quarter, -1, 0),
        "nextQuarter" => (Period::Quarter, 1, 2),
        "thisYear" => (Period::Year, 0, 1),
        "lastYear" => (Period::Year, -1, 0),
        "nextYear" => (Period::Year, 1, 2),
        "past" | "next" => {
            let period = relative_unit(map.get("unit"))?;
            let number = relative_number(map.get("number"))?;
            let include_current = relative_flag(map.get("includeCurrent"))?;
            match (kind.as_str(), include_current) {
                ("past", false) => (period, -number, 0),
                ("past", true) => (period, 1 - number, 1),
                (_, false) => (period, 1, number + 1),
                (_, true) => (period, 0, number),
            }
        }
        _ => {
            return Err(invalid(
                kind,
                "is not a relative date type (expected today, yesterday, tomorrow, \
                 this/last/next Week, Month, Quarter or Year, past or next)",
            ));
        }
    };
    let too_far = || invalid_json(operand, "is out of range (beyond year 262143)");
    // Not `with_timezone(..).date_naive()`: that panics when `now` sits at chrono's limits.
    let today = now
        .naive_utc()
        .checked_add_offset(offset)
        .ok_or_else(too_far)?
        .date();
    let base = period_start(today, period).ok_or_else(too_far)?;
    Ok(Relative {
        start: shift(base, period, from).ok_or_else(too_far)?,
        end: shift(base, period, to).ok_or_else(too_far)?,
        offset,
    })
}

fn relative_unit(unit: Option<&Json>) -> Result<Period> {
    Ok(match unit {
        // NocoBase's default.
        None | Some(Json::Null) => Period::Day,
        Some(Json::String(u)) => match u.as_str() {
            "day" => Period::Day,
            "week" | "isoWeek" => Period::IsoWeek,
            "month" => Period::Month,
            "quarter" => Period::Quarter,
            "year" => Period::Year,
            _ => {
                return Err(invalid(
                    u,
                    "is not a relative date unit (expected day, week, month, quarter or year)",
                ));
            }
        },
        Some(other) => {
            return Err(invalid_json(
                other,
                "is not a relative date unit (expected day, week, month, quarter or year)",
            ));
        }
    })
}

/// A positive count of units; strings are accepted because query-string filters carry only
/// strings.
fn relative_number(number: Option<&Json>) -> Result<i64> {
    let parsed = match number {
        None | Some(Json::Null) => return Ok(1),
        Some(Json::Number(n)) => n.as_u64(),
        Some(Json::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    parsed
        .filter(|n| *n >= 1)
        .and_then(|n| u32::try_from(n).ok())
        .map(i64::from)
        .ok_or_else(|| {
            let shown = number.cloned().unwrap_or(Json::Null);
            invalid_json(
                &shown,
                "is not a valid relative date number (expected a positive integer)",
            )
        })
}

fn relative_flag(flag: Option<&Json>) -> Result<bool> {
    match flag {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(Json::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(invalid_json(
            other,
            "is not a valid includeCurrent flag (expected true or false)",
        )),
    }
}

fn period_start(day: NaiveDate, period: Period) -> Option<NaiveDate> {
    match period {
        Period::Day => Some(day),
        Period::IsoWeek => day.checked_sub_signed(TimeDelta::try_days(i64::from(
            day.weekday().num_days_from_monday(),
        ))?),
        Period::Month => day.with_day(1),
        Period::Quarter => NaiveDate::from_ymd_opt(day.year(), (day.month0() / 3) * 3 + 1, 1),
        Period::Year => NaiveDate::from_ymd_opt(day.year(), 1, 1),
    }
}

/// `start` moved by `count` whole periods; `None` past chrono's range.
fn shift(start: NaiveDate, period: Period, count: i64) -> Option<NaiveDate> {
    let months = match period {
        Period::Day => return start.checked_add_signed(TimeDelta::try_days(count)?),
        Period::IsoWeek => {
            return start.checked_add_signed(TimeDelta::try_days(count.checked_mul(7)?)?);
        }
        Period::Month => count,
        Period::Quarter => count.checked_mul(3)?,
        Period::Year => count.checked_mul(12)?,
    };
    let step = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        start.checked_add_months(step)
    } else {
        start.checked_sub_months(step)
    }
}

#[cfg(test)]
mod tests;
