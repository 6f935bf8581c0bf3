//! The date tests: parsing, relative ranges, the operators' conditions, and a
//! round-trip property against NocoBase's variable middleware.

use super::*;
use serde_json::json;

/// [`super::date_condition`] by the operator's name, as the filter parser reaches it: a
/// name that is no date operator is the parser's 400.
fn date_condition(op: &str, operand: &DateOperand) -> Result<DateCondition> {
    match DateOperator::parse(op) {
        Some(op) => super::date_condition(op, operand),
        None => Err(unknown_operator(op)),
    }
}

// What production code does not need, the tests use to check the conditions' meaning:
// an in-memory reading of a condition, and NocoBase's between array for a relative date.

/// Resolves a relative date object into the between array NocoBase's variable middleware puts
/// in its place: `[start, end, "[)", offset]`, bounds as wall-clock `YYYY-MM-DD HH:mm:ss` text.
///
/// [`parse_date_operand`] reads the result back as the same range (VAR-01).
fn relative_to_between(
    operand: &Json,
    tz: Option<FixedOffset>,
    now: DateTime<Utc>,
) -> Result<Json> {
    let Json::Object(map) = operand else {
        return Err(invalid_json(operand, RELATIVE_EXPECTED));
    };
    let relative = relative_range(operand, map, tz.unwrap_or_else(|| Utc.fix()), now)?;
    let text = |d: NaiveDate| midnight(d).format("%Y-%m-%d %H:%M:%S").to_string();
    Ok(Json::Array(vec![
        Json::String(text(relative.start)),
        Json::String(text(relative.end)),
        Json::String("[)".to_owned()),
        Json::String(relative.offset.to_string()),
    ]))
}

impl DateBound {
    /// Whether a non-NULL column value satisfies this comparison (for in-memory evaluation).
    fn matches(&self, column: DateTime<Utc>) -> bool {
        match *self {
            DateBound::Lt(t) => column < t,
            DateBound::Lte(t) => column <= t,
            DateBound::Gt(t) => column > t,
            DateBound::Gte(t) => column >= t,
            DateBound::Eq(t) => column == t,
            DateBound::Ne(t) => column != t,
        }
    }
}

impl DateCondition {
    /// Whether a non-NULL column value satisfies the condition (for in-memory evaluation).
    fn matches(&self, column: DateTime<Utc>) -> bool {
        if self.any {
            self.bounds.iter().any(|b| b.matches(column))
        } else {
            self.bounds.iter().all(|b| b.matches(column))
        }
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

fn tz(s: &str) -> Option<FixedOffset> {
    Some(parse_offset(s).expect("test offset"))
}

/// A Wednesday, so this/last/next week all differ from this/last/next day.
fn now() -> DateTime<Utc> {
    at("2024-04-17T10:00:00Z")
}

fn parse(operand: &Json, tz: Option<FixedOffset>) -> DateOperand {
    parse_date_operand(operand, tz, now())
        .unwrap_or_else(|e| panic!("{operand} should parse: {}", e.message()))
}

fn span_at(operand: &Json, tz: Option<FixedOffset>, now: DateTime<Utc>) -> [String; 2] {
    match parse_date_operand(operand, tz, now) {
        Ok(DateOperand::Range {
            start,
            end,
            start_exclusive: false,
            end_inclusive: false,
        }) => [format_instant(&start), format_instant(&end)],
        other => panic!("{operand} should be a plain range, got {other:?}"),
    }
}

fn span(operand: &Json, tz: Option<FixedOffset>) -> [String; 2] {
    span_at(operand, tz, now())
}

fn assert_span(operand: Json, tz: Option<FixedOffset>, start: &str, end: &str) {
    assert_eq!(span(&operand, tz), [start, end], "operand {operand}");
}

fn error_of(operand: Json) -> String {
    match parse_date_operand(&operand, None, now()) {
        Ok(parsed) => panic!("{operand} should be rejected, got {parsed:?}"),
        Err(e) => {
            assert_eq!(e.kind(), crate::error::ErrorKind::BadRequest);
            e.message().to_owned()
        }
    }
}

fn assert_rejected(operand: Json) {
    let message = error_of(operand.clone());
    assert!(
        message.starts_with("Invalid Date"),
        "{operand}: unexpected message {message}"
    );
}

// --- parse_offset -------------------------------------------------------------------

#[test]
fn offsets_parse_in_colon_compact_hour_and_z_forms() {
    let east = |s: i32| FixedOffset::east_opt(s);
    assert_eq!(parse_offset("+08:00"), east(8 * 3600));
    assert_eq!(parse_offset("-05:30"), east(-(5 * 3600 + 30 * 60)));
    assert_eq!(parse_offset("+0800"), east(8 * 3600));
    assert_eq!(parse_offset("-0330"), east(-(3 * 3600 + 30 * 60)));
    assert_eq!(parse_offset("+09"), east(9 * 3600));
    assert_eq!(parse_offset("Z"), east(0));
    assert_eq!(parse_offset("-00:00"), east(0));
    assert_eq!(parse_offset(" +08:00 "), east(8 * 3600));
}

#[test]
fn offsets_reject_iana_names_and_malformed_values() {
    for bad in [
        "",
        "Asia/Shanghai",
        "UTC",
        "08:00",
        "+8:00",
        "+24:00",
        "+08:60",
        "+08:0",
        "+08-00",
        "++08:00",
        "z",
        "+０８:00",
    ] {
        assert_eq!(parse_offset(bad), None, "{bad:?}");
    }
}

// --- PD-01 .. PD-25 -----------------------------------------------------------------

#[test]
fn pd01_null_and_empty_string_are_invalid_dates() {
    assert_rejected(json!(null));
    assert_rejected(json!(""));
    assert_rejected(json!("   "));
    assert_eq!(
        error_of(json!("abc")),
        "Invalid Date: \"abc\" is not a date (expected 2023, 2023Q1, 2023W01, 2023-01-12, ...)"
    );
}

#[test]
fn pd02_year_is_a_utc_year_range() {
    assert_span(
        json!("2023"),
        None,
        "2023-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.000Z",
    );
}

#[test]
fn pd03_year_with_suffix_or_timezone_shifts_by_the_offset() {
    for (operand, zone) in [(json!("2023+08:00"), None), (json!("2023"), tz("+08:00"))] {
        assert_span(
            operand,
            zone,
            "2022-12-31T16:00:00.000Z",
            "2023-12-31T16:00:00.000Z",
        );
    }
}

#[test]
fn pd04_quarters_span_three_months() {
    assert_span(
        json!("2023Q1"),
        None,
        "2023-01-01T00:00:00.000Z",
        "2023-04-01T00:00:00.000Z",
    );
    assert_span(
        json!("2023Q2"),
        None,
        "2023-04-01T00:00:00.000Z",
        "2023-07-01T00:00:00.000Z",
    );
}

#[test]
fn pd05_quarter_with_offset() {
    assert_span(
        json!("2023Q1+08:00"),
        None,
        "2022-12-31T16:00:00.000Z",
        "2023-03-31T16:00:00.000Z",
    );
}

#[test]
fn pd06_iso_week_one_starts_on_the_first_monday_week() {
    assert_span(
        json!("2023W01"),
        None,
        "2023-01-02T00:00:00.000Z",
        "2023-01-09T00:00:00.000Z",
    );
}

#[test]
fn pd07_iso_week_with_offset() {
    assert_span(
        json!("2023W01+08:00"),
        None,
        "2023-01-01T16:00:00.000Z",
        "2023-01-08T16:00:00.000Z",
    );
}

#[test]
fn pd08_iso_week_sixteen_of_2024() {
    assert_span(
        json!("2024W16"),
        None,
        "2024-04-15T00:00:00.000Z",
        "2024-04-22T00:00:00.000Z",
    );
    assert_span(
        json!("2024W16+08:00"),
        None,
        "2024-04-14T16:00:00.000Z",
        "2024-04-21T16:00:00.000Z",
    );
}

#[test]
fn pd09_locale_week_one_is_the_sunday_week_containing_january_first() {
    assert_span(
        json!("2023w01"),
        None,
        "2023-01-01T00:00:00.000Z",
        "2023-01-08T00:00:00.000Z",
    );
}

#[test]
fn pd10_locale_week_sixteen_of_2024() {
    assert_span(
        json!("2024w16"),
        None,
        "2024-04-14T00:00:00.000Z",
        "2024-04-21T00:00:00.000Z",
    );
    assert_span(
        json!("2024w16+08:00"),
        None,
        "2024-04-13T16:00:00.000Z",
        "2024-04-20T16:00:00.000Z",
    );
}

#[test]
fn pd11_month_and_month_with_offset() {
    assert_span(
        json!("2023-03"),
        None,
        "2023-03-01T00:00:00.000Z",
        "2023-04-01T00:00:00.000Z",
    );
    assert_span(
        json!("2023-03+08:00"),
        None,
        "2023-02-28T16:00:00.000Z",
        "2023-03-31T16:00:00.000Z",
    );
}

#[test]
fn pd12_day_and_day_with_offset() {
    assert_span(
        json!("2023-01-12"),
        None,
        "2023-01-12T00:00:00.000Z",
        "2023-01-13T00:00:00.000Z",
    );
    assert_span(
        json!("2023-01-12+08:00"),
        None,
        "2023-01-11T16:00:00.000Z",
        "2023-01-12T16:00:00.000Z",
    );
}

#[test]
fn pd13_hour_with_t_or_space_and_with_offset() {
    for operand in ["2023-01-12T12", "2023-01-12 12"] {
        assert_span(
            json!(operand),
            None,
            "2023-01-12T12:00:00.000Z",
            "2023-01-12T13:00:00.000Z",
        );
        assert_span(
            json!(format!("{operand}+08:00")),
            None,
            "2023-01-12T04:00:00.000Z",
            "2023-01-12T05:00:00.000Z",
        );
        assert_span(
            json!(operand),
            tz("+08:00"),
            "2023-01-12T04:00:00.000Z",
            "2023-01-12T05:00:00.000Z",
        );
    }
}

#[test]
fn pd14_minute_and_minute_with_offset() {
    assert_span(
        json!("2023-01-12T12:23"),
        None,
        "2023-01-12T12:23:00.000Z",
        "2023-01-12T12:24:00.000Z",
    );
    assert_span(
        json!("2023-01-12 12:23+08:00"),
        None,
        "2023-01-12T04:23:00.000Z",
        "2023-01-12T04:24:00.000Z",
    );
}

#[test]
fn pd15_second_and_second_with_offset() {
    assert_span(
        json!("2023-01-12T12:23:59"),
        None,
        "2023-01-12T12:23:59.000Z",
        "2023-01-12T12:24:00.000Z",
    );
    assert_span(
        json!("2023-01-12T12:23:59+08:00"),
        None,
        "2023-01-12T04:23:59.000Z",
        "2023-01-12T04:24:00.000Z",
    );
}

#[test]
fn pd16_millisecond_and_millisecond_with_offset() {
    assert_span(
        json!("2023-01-12T12:23:59.326"),
        None,
        "2023-01-12T12:23:59.326Z",
        "2023-01-12T12:23:59.327Z",
    );
    assert_span(
        json!("2023-01-12T12:23:59.326+08:00"),
        None,
        "2023-01-12T04:23:59.326Z",
        "2023-01-12T04:23:59.327Z",
    );
}

#[test]
fn pd17_z_instant_ignores_timezone_option_and_suffix() {
    let expected = DateOperand::Instant(at("2023-01-12T12:23:59.326Z"));
    for zone in [None, tz("+08:00"), tz("-05:00")] {
        assert_eq!(parse(&json!("2023-01-12T12:23:59.326Z"), zone), expected);
        assert_eq!(
            parse(&json!("2023-01-12T12:23:59.326Z+08:00"), zone),
            expected
        );
    }
}

#[test]
fn pd18_inclusive_between_string_and_arrays() {
    for operand in [
        json!("[2023,2024]"),
        json!(["2023", "2024"]),
        json!(["2023", "2024", "[]"]),
    ] {
        assert_span(
            operand,
            None,
            "2023-01-01T00:00:00.000Z",
            "2025-01-01T00:00:00.000Z",
        );
    }
}

#[test]
fn pd19_open_start_takes_the_end_of_the_first_bound() {
    for operand in [json!("(2023,2024]"), json!(["2023", "2024", "(]"])] {
        assert_span(
            operand,
            None,
            "2024-01-01T00:00:00.000Z",
            "2025-01-01T00:00:00.000Z",
        );
    }
}

#[test]
fn pd20_open_end_takes_the_start_of_the_second_bound() {
    for operand in [json!("[2023,2024)"), json!(["2023", "2024", "[)"])] {
        assert_span(
            operand,
            None,
            "2023-01-01T00:00:00.000Z",
            "2024-01-01T00:00:00.000Z",
        );
    }
}

#[test]
fn pd21_open_both_ends() {
    for operand in [json!("(2023,2026)"), json!(["2023", "2026", "()"])] {
        assert_span(
            operand,
            None,
            "2024-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.000Z",
        );
    }
}

#[test]
fn pd22_between_with_offset_suffix_or_fourth_element() {
    for operand in [
        json!("[2023,2024]+08:00"),
        json!(["2023", "2024", "[]", "+08:00"]),
    ] {
        assert_span(
            operand,
            None,
            "2022-12-31T16:00:00.000Z",
            "2024-12-31T16:00:00.000Z",
        );
    }
}

#[test]
fn pd23_open_start_between_with_offset() {
    assert_span(
        json!("(2023,2024]+08:00"),
        None,
        "2023-12-31T16:00:00.000Z",
        "2024-12-31T16:00:00.000Z",
    );
}

#[test]
fn pd24_open_end_between_with_offset() {
    assert_span(
        json!("[2023,2024)+08:00"),
        None,
        "2022-12-31T16:00:00.000Z",
        "2023-12-31T16:00:00.000Z",
    );
}

#[test]
fn pd25_open_both_ends_with_offset() {
    assert_span(
        json!("(2023,2026)+08:00"),
        None,
        "2023-12-31T16:00:00.000Z",
        "2025-12-31T16:00:00.000Z",
    );
}

// --- more operand forms -------------------------------------------------------------

#[test]
fn between_uses_the_default_timezone_unless_the_operand_names_one() {
    let utc8 = [
        "2022-12-31T16:00:00.000Z".to_owned(),
        "2024-12-31T16:00:00.000Z".to_owned(),
    ];
    assert_eq!(span(&json!("[2023,2024]"), tz("+08:00")), utc8);
    assert_eq!(span(&json!(["2023", "2024"]), tz("+08:00")), utc8);
    assert_eq!(
        span(&json!(["2023", "2024", "[]", "+08:00"]), tz("-05:00")),
        utc8
    );
    assert_eq!(span(&json!("[2023,2024]+08:00"), tz("-05:00")), utc8);
    // A bound's own suffix beats the array's offset.
    assert_eq!(
        span(&json!(["2023+08:00", "2024", "[]", "+00:00"]), None),
        ["2022-12-31T16:00:00.000Z", "2025-01-01T00:00:00.000Z"]
    );
    // A null op or offset means the defaults.
    assert_eq!(
        span(&json!(["2023", "2024", null, null]), tz("+08:00")),
        utc8
    );
}

#[test]
fn between_bounds_may_mix_units_and_carry_spaces() {
    assert_span(
        json!("[2023-01, 2023-03-15 12]"),
        None,
        "2023-01-01T00:00:00.000Z",
        "2023-03-15T13:00:00.000Z",
    );
}

#[test]
fn between_instant_bounds_keep_their_brackets_as_flags() {
    let operand = json!(["2023-01-01T00:00:00.000Z", "2023-01-02T00:00:00.000Z", "(]"]);
    assert_eq!(
        parse(&operand, None),
        DateOperand::Range {
            start: at("2023-01-01T00:00:00Z"),
            end: at("2023-01-02T00:00:00Z"),
            start_exclusive: true,
            end_inclusive: true,
        }
    );
    // An instant start with a range end: only the instant side carries a flag, and the
    // offset applies to the range side only.
    assert_eq!(
        parse(&json!("(2023-01-01T00:00:00Z,2023-01-05]+08:00"), None),
        DateOperand::Range {
            start: at("2023-01-01T00:00:00Z"),
            end: at("2023-01-05T16:00:00Z"),
            start_exclusive: true,
            end_inclusive: false,
        }
    );
}

#[test]
fn z_instants_accept_any_precision_from_a_day_to_nanoseconds() {
    for (operand, expected) in [
        ("2023-01-12T12:23:59Z", "2023-01-12T12:23:59Z"),
        ("2023-01-12 12:23Z", "2023-01-12T12:23:00Z"),
        ("2023-01-12T12:23:59.3Z", "2023-01-12T12:23:59.300Z"),
        (
            "2023-01-12T12:23:59.123456789Z",
            "2023-01-12T12:23:59.123456789Z",
        ),
        ("2023-01-12Z", "2023-01-12T00:00:00Z"),
    ] {
        assert_eq!(
            parse(&json!(operand), tz("+08:00")),
            DateOperand::Instant(at(expected)),
            "{operand}"
        );
    }
    for coarse in [
        "2023Z",
        "2023-01Z",
        "2023Q1Z",
        "2023W01Z",
        "Z",
        "2023-01-12T12:23:59.1234567890Z",
    ] {
        assert_rejected(json!(coarse));
    }
}

#[test]
fn integer_operands_read_as_their_text() {
    assert_span(
        json!(2023),
        None,
        "2023-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.000Z",
    );
    assert_span(
        json!([2023, 2024]),
        None,
        "2023-01-01T00:00:00.000Z",
        "2025-01-01T00:00:00.000Z",
    );
    assert_rejected(json!(2023.5));
    assert_rejected(json!(-2023));
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert_span(
        json!(" 2023-01-12 "),
        None,
        "2023-01-12T00:00:00.000Z",
        "2023-01-13T00:00:00.000Z",
    );
}

#[test]
fn year_edges_stay_in_range() {
    assert_span(
        json!("9998"),
        tz("-05:00"),
        "9998-01-01T05:00:00.000Z",
        "9999-01-01T05:00:00.000Z",
    );
    assert_span(
        json!("0000-01-02+08:00"),
        None,
        "0000-01-01T16:00:00.000Z",
        "0000-01-02T16:00:00.000Z",
    );
    // A span reaching past the four-digit years (bounds_outside_…).
    assert_rejected(json!("9999"));
    assert_rejected(json!("0000+08:00"));
    assert_rejected(json!("10000"));
    assert_rejected(json!("+2023"));
}

#[test]
fn leap_day_and_fifty_three_week_years_are_accepted() {
    assert_span(
        json!("2024-02-29"),
        None,
        "2024-02-29T00:00:00.000Z",
        "2024-03-01T00:00:00.000Z",
    );
    // 2020 has 53 ISO weeks; W53 ends on 2021-01-04.
    assert_span(
        json!("2020W53"),
        None,
        "2020-12-28T00:00:00.000Z",
        "2021-01-04T00:00:00.000Z",
    );
    // 2022 starts on a Saturday, so its locale week 53 is Dec 25-31.
    assert_span(
        json!("2022w53"),
        None,
        "2022-12-25T00:00:00.000Z",
        "2023-01-01T00:00:00.000Z",
    );
}

#[test]
fn out_of_range_fields_are_invalid_dates() {
    for operand in [
        "2023-13",
        "2023-00",
        "2023-02-29",
        "2023-01-32",
        "2023-01-00",
        "2023-01-12T24",
        "2023-01-12T12:60",
        "2023-01-12T12:23:60",
        "2023Q0",
        "2023Q5",
        "2023W00",
        "2023W53",
        "2023W54",
        "2023w00",
        "2023w53",
        "2023w54",
        "2023-13-01T12Z",
    ] {
        let message = error_of(json!(operand));
        assert!(
            message.starts_with(&format!("Invalid Date: \"{operand}\" is out of range (")),
            "{operand}: {message}"
        );
    }
}

#[test]
fn bounds_outside_the_four_digit_years_are_out_of_range() {
    for operand in [
        json!("0000-01-01+14:00"),
        json!("0000w01"),
        json!("[0000-01-01,9999-12-31]+14:00"),
        json!({"type": "past", "unit": "quarter", "number": 40000}),
    ] {
        let message = error_of(operand.clone());
        assert!(
            message.ends_with("is out of range (before year 0000)"),
            "{operand}: {message}"
        );
    }
    for operand in [
        json!("9999"),
        json!("9999-12-31"),
        json!("9999-12-31T23:00-12:00"),
    ] {
        let message = error_of(operand.clone());
        assert!(
            message.ends_with("is out of range (after year 9999)"),
            "{operand}: {message}"
        );
    }
    for operand in [json!("0000"), json!("9998"), json!("9999-12-30-12:00")] {
        assert!(
            parse_date_operand(&operand, None, now()).is_ok(),
            "{operand}"
        );
    }
}

#[test]
fn malformed_shapes_are_invalid_dates() {
    for operand in [
        json!("abc"),
        json!("2023-1-12"),
        json!("2023-01-12T1"),
        json!("2023-01-12X12"),
        json!("2023-01-12T12:23:59.32"),
        json!("2023-01-12T12:23:59.3261"),
        json!("2023-01-12T12:23:59."),
        json!("2023+08"),
        json!("2023+25:00"),
        json!("[2023]"),
        json!("[2023,2024,2025]"),
        json!("[2023,2024"),
        json!("{2023,2024}"),
        json!("[,2024]"),
        json!("[[2023,2024],2025]"),
        json!("+08:00"),
        json!(true),
        json!({}),
        json!({"start": "2023"}),
        json!([]),
        json!(["2023"]),
        json!(["2023", "2024", "[]", "+08:00", "extra"]),
        json!(["2023", "2024", "[>"]),
        json!(["2023", "2024", "[]", "Asia/Shanghai"]),
        json!(["2023", "2024", 1]),
        json!(["2023", null]),
        json!([["2023", "2024"], "2025"]),
        json!(["[2023,2024]", "2025"]),
    ] {
        assert_rejected(operand);
    }
}

#[test]
fn error_messages_truncate_long_operands() {
    let long = "9".repeat(10_000);
    let message = error_of(json!(long));
    assert!(message.starts_with("Invalid Date: \"999"), "{message}");
    assert!(message.len() < 200, "{}", message.len());
    let message = error_of(json!(["x".repeat(10_000), "2024"]));
    assert!(message.len() < 200, "{}", message.len());
}

// --- relative values ----------------------------------------------------------------

fn relative(operand: Json, zone: Option<FixedOffset>) -> [String; 2] {
    span(&operand, zone)
}

#[test]
fn today_yesterday_tomorrow_in_utc_and_offsets() {
    let utc = [
        (
            "today",
            "2024-04-17T00:00:00.000Z",
            "2024-04-18T00:00:00.000Z",
        ),
        (
            "yesterday",
            "2024-04-16T00:00:00.000Z",
            "2024-04-17T00:00:00.000Z",
        ),
        (
            "tomorrow",
            "2024-04-18T00:00:00.000Z",
            "2024-04-19T00:00:00.000Z",
        ),
    ];
    for (kind, start, end) in utc {
        assert_eq!(relative(json!({"type": kind}), None), [start, end]);
    }
    assert_eq!(
        relative(json!({"type": "today"}), tz("+08:00")),
        ["2024-04-16T16:00:00.000Z", "2024-04-17T16:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "today"}), tz("-05:00")),
        ["2024-04-17T05:00:00.000Z", "2024-04-18T05:00:00.000Z"]
    );
}

#[test]
fn today_near_midnight_follows_the_local_day_of_the_offset() {
    // 20:00Z is already 04:00 on the 18th in +08:00.
    assert_eq!(
        span_at(
            &json!({"type": "today"}),
            tz("+08:00"),
            at("2024-04-17T20:00:00Z")
        ),
        ["2024-04-17T16:00:00.000Z", "2024-04-18T16:00:00.000Z"]
    );
    // 02:00Z is still 21:00 on the 16th in -05:00.
    assert_eq!(
        span_at(
            &json!({"type": "today"}),
            tz("-05:00"),
            at("2024-04-17T02:00:00Z")
        ),
        ["2024-04-16T05:00:00.000Z", "2024-04-17T05:00:00.000Z"]
    );
    // Exactly local midnight belongs to the new day.
    assert_eq!(
        span_at(
            &json!({"type": "today"}),
            tz("+08:00"),
            at("2024-04-17T16:00:00Z")
        ),
        ["2024-04-17T16:00:00.000Z", "2024-04-18T16:00:00.000Z"]
    );
}

#[test]
fn weeks_are_iso_weeks_starting_monday() {
    assert_eq!(
        relative(json!({"type": "thisWeek"}), None),
        ["2024-04-15T00:00:00.000Z", "2024-04-22T00:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "lastWeek"}), None),
        ["2024-04-08T00:00:00.000Z", "2024-04-15T00:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "lastWeek"}), tz("+08:00")),
        ["2024-04-07T16:00:00.000Z", "2024-04-14T16:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "nextWeek"}), tz("-05:00")),
        ["2024-04-22T05:00:00.000Z", "2024-04-29T05:00:00.000Z"]
    );
    // On a Sunday the ISO week is the one that started six days earlier.
    assert_eq!(
        span_at(
            &json!({"type": "thisWeek"}),
            None,
            at("2024-04-21T23:00:00Z")
        ),
        ["2024-04-15T00:00:00.000Z", "2024-04-22T00:00:00.000Z"]
    );
}

#[test]
fn months_quarters_and_years() {
    for (kind, start, end) in [
        ("thisMonth", "2024-04-01", "2024-05-01"),
        ("lastMonth", "2024-03-01", "2024-04-01"),
        ("nextMonth", "2024-05-01", "2024-06-01"),
        ("thisQuarter", "2024-04-01", "2024-07-01"),
        ("lastQuarter", "2024-01-01", "2024-04-01"),
        ("nextQuarter", "2024-07-01", "2024-10-01"),
        ("thisYear", "2024-01-01", "2025-01-01"),
        ("lastYear", "2023-01-01", "2024-01-01"),
        ("nextYear", "2025-01-01", "2026-01-01"),
    ] {
        assert_eq!(
            relative(json!({"type": kind}), None),
            [
                format!("{start}T00:00:00.000Z"),
                format!("{end}T00:00:00.000Z")
            ],
            "{kind}"
        );
    }
    assert_eq!(
        relative(json!({"type": "thisQuarter"}), tz("+08:00")),
        ["2024-03-31T16:00:00.000Z", "2024-06-30T16:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "thisQuarter"}), tz("-05:00")),
        ["2024-04-01T05:00:00.000Z", "2024-07-01T05:00:00.000Z"]
    );
}

#[test]
fn past_n_days_are_the_whole_days_before_today() {
    let past7 = json!({"type": "past", "unit": "day", "number": 7});
    assert_eq!(
        relative(past7.clone(), None),
        ["2024-04-10T00:00:00.000Z", "2024-04-17T00:00:00.000Z"]
    );
    assert_eq!(
        relative(past7.clone(), tz("+08:00")),
        ["2024-04-09T16:00:00.000Z", "2024-04-16T16:00:00.000Z"]
    );
    assert_eq!(
        relative(past7, tz("-05:00")),
        ["2024-04-10T05:00:00.000Z", "2024-04-17T05:00:00.000Z"]
    );
}

#[test]
fn next_n_months_are_the_whole_months_after_this_one() {
    let next2 = json!({"type": "next", "unit": "month", "number": 2});
    assert_eq!(
        relative(next2.clone(), None),
        ["2024-05-01T00:00:00.000Z", "2024-07-01T00:00:00.000Z"]
    );
    assert_eq!(
        relative(next2.clone(), tz("+08:00")),
        ["2024-04-30T16:00:00.000Z", "2024-06-30T16:00:00.000Z"]
    );
    assert_eq!(
        relative(next2, tz("-05:00")),
        ["2024-05-01T05:00:00.000Z", "2024-07-01T05:00:00.000Z"]
    );
}

#[test]
fn past_and_next_default_to_one_day_and_cover_other_units() {
    assert_eq!(
        relative(json!({"type": "past"}), None),
        ["2024-04-16T00:00:00.000Z", "2024-04-17T00:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "past", "unit": "week"}), None),
        ["2024-04-08T00:00:00.000Z", "2024-04-15T00:00:00.000Z"]
    );
    assert_eq!(
        relative(
            json!({"type": "past", "unit": "quarter", "number": 2}),
            None
        ),
        ["2023-10-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "next", "unit": "year", "number": "1"}), None),
        ["2025-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "next", "unit": "week", "number": 2}), None),
        ["2024-04-22T00:00:00.000Z", "2024-05-06T00:00:00.000Z"]
    );
    assert_eq!(
        span_at(
            &json!({"type": "past", "unit": "month", "number": 3}),
            None,
            at("2024-02-10T00:00:00Z")
        ),
        ["2023-11-01T00:00:00.000Z", "2024-02-01T00:00:00.000Z"]
    );
}

#[test]
fn include_current_extends_past_and_next_over_the_current_unit() {
    assert_eq!(
        relative(
            json!({"type": "past", "unit": "day", "number": 7, "includeCurrent": true}),
            None
        ),
        ["2024-04-11T00:00:00.000Z", "2024-04-18T00:00:00.000Z"]
    );
    assert_eq!(
        relative(
            json!({"type": "next", "unit": "month", "number": 2, "includeCurrent": true}),
            None
        ),
        ["2024-04-01T00:00:00.000Z", "2024-06-01T00:00:00.000Z"]
    );
}

#[test]
fn a_timezone_key_in_the_object_beats_the_default() {
    assert_eq!(
        relative(json!({"type": "today", "timezone": "+08:00"}), tz("-05:00")),
        ["2024-04-16T16:00:00.000Z", "2024-04-17T16:00:00.000Z"]
    );
    assert_eq!(
        relative(json!({"type": "today", "timezone": null}), tz("-05:00")),
        ["2024-04-17T05:00:00.000Z", "2024-04-18T05:00:00.000Z"]
    );
}

#[test]
fn bad_relative_objects_are_invalid_dates() {
    for operand in [
        json!({"type": "someday"}),
        json!({"type": 1}),
        json!({"type": "past", "unit": "hour"}),
        json!({"type": "past", "number": 0}),
        json!({"type": "past", "number": -1}),
        json!({"type": "past", "number": 1.5}),
        json!({"type": "past", "number": "abc"}),
        json!({"type": "past", "number": 5_000_000_000_u64}),
        json!({"type": "next", "unit": "year", "number": 4_000_000_000_u64}),
        json!({"type": "past", "includeCurrent": "yes"}),
        json!({"type": "today", "timezone": "Asia/Shanghai"}),
        json!({"type": "today", "timezone": 8}),
    ] {
        assert_rejected(operand);
    }
}

#[test]
fn var01_relative_objects_become_four_element_between_arrays() {
    let today = json!({"type": "today"});
    let between = relative_to_between(&today, tz("+08:00"), now()).expect("today resolves");
    assert_eq!(
        between,
        json!(["2024-04-17 00:00:00", "2024-04-18 00:00:00", "[)", "+08:00"])
    );
    // The array means the same range as the object it replaces, whatever the default.
    for zone in [None, tz("-05:00")] {
        assert_eq!(
            parse(&between, zone),
            parse(&today, tz("+08:00")),
            "default {zone:?}"
        );
    }
    let past = json!({"type": "past", "unit": "week", "number": 2});
    let between = relative_to_between(&past, None, now()).expect("past resolves");
    assert_eq!(
        between,
        json!(["2024-04-01 00:00:00", "2024-04-15 00:00:00", "[)", "+00:00"])
    );
    assert_eq!(parse(&between, None), parse(&past, None));
    assert!(relative_to_between(&json!("2023"), None, now()).is_err());
}

// --- operators (spec §5.2) ----------------------------------------------------------

const OPERATORS: [&str; 7] = [
    "$dateOn",
    "$dateNotOn",
    "$dateBefore",
    "$dateNotBefore",
    "$dateAfter",
    "$dateNotAfter",
    "$dateBetween",
];

#[test]
fn instant_operands_compare_directly() {
    let t = at("2023-01-12T12:23:59.326Z");
    let operand = DateOperand::Instant(t);
    for (op, bound) in [
        ("$dateOn", DateBound::Eq(t)),
        ("$dateNotOn", DateBound::Ne(t)),
        ("$dateBefore", DateBound::Lt(t)),
        ("$dateNotBefore", DateBound::Gte(t)),
        ("$dateAfter", DateBound::Gt(t)),
        ("$dateNotAfter", DateBound::Lte(t)),
    ] {
        assert_eq!(
            date_condition(op, &operand),
            Ok(DateCondition {
                bounds: vec![bound],
                any: false
            }),
            "{op}"
        );
    }
}

#[test]
fn between_with_an_instant_is_a_bad_request() {
    let err = date_condition("$dateBetween", &DateOperand::Instant(now()))
        .expect_err("between needs a range");
    assert_eq!(err.kind(), crate::error::ErrorKind::BadRequest);
    assert!(
        err.message().starts_with("Invalid Date"),
        "{}",
        err.message()
    );
}

#[test]
fn unknown_operators_are_bad_requests() {
    let operand = parse(&json!("2023"), None);
    for op in ["$eq", "$dateon", ""] {
        let err = date_condition(op, &operand).expect_err("unknown operator");
        assert_eq!(err.kind(), crate::error::ErrorKind::BadRequest);
    }
}

#[test]
fn range_operands_follow_the_spec_table() {
    let (s, e) = (at("2023-01-01T00:00:00Z"), at("2024-01-01T00:00:00Z"));
    let operand = range(s, e);
    let all = |bounds| DateCondition { bounds, any: false };
    for (op, expected) in [
        ("$dateOn", all(vec![DateBound::Gte(s), DateBound::Lt(e)])),
        (
            "$dateBetween",
            all(vec![DateBound::Gte(s), DateBound::Lt(e)]),
        ),
        (
            "$dateNotOn",
            DateCondition {
                bounds: vec![DateBound::Lt(s), DateBound::Gte(e)],
                any: true,
            },
        ),
        ("$dateBefore", all(vec![DateBound::Lt(s)])),
        ("$dateNotBefore", all(vec![DateBound::Gte(s)])),
        ("$dateAfter", all(vec![DateBound::Gte(e)])),
        ("$dateNotAfter", all(vec![DateBound::Lt(e)])),
    ] {
        assert_eq!(date_condition(op, &operand), Ok(expected), "{op}");
    }
}

#[test]
fn between_instant_brackets_become_strict_and_inclusive_bounds() {
    let operand = parse(
        &json!("(2023-01-01T00:00:00.000Z,2023-01-02T00:00:00.000Z]"),
        None,
    );
    let (s, e) = (at("2023-01-01T00:00:00Z"), at("2023-01-02T00:00:00Z"));
    assert_eq!(
        date_condition("$dateBetween", &operand),
        Ok(DateCondition {
            bounds: vec![DateBound::Gt(s), DateBound::Lte(e)],
            any: false
        })
    );
    assert_eq!(
        date_condition("$dateNotOn", &operand),
        Ok(DateCondition {
            bounds: vec![DateBound::Lte(s), DateBound::Gt(e)],
            any: true
        })
    );
    let cond = date_condition("$dateBetween", &operand).expect("range");
    assert!(!cond.matches(s));
    assert!(cond.matches(e));
    // Complementary operators partition every instant.
    for c in [s, e, at("2023-01-01T12:00:00Z"), at("2022-01-01T00:00:00Z")] {
        for (yes, no) in [
            ("$dateOn", "$dateNotOn"),
            ("$dateBefore", "$dateNotBefore"),
            ("$dateAfter", "$dateNotAfter"),
        ] {
            let a = date_condition(yes, &operand).expect("range");
            let b = date_condition(no, &operand).expect("range");
            assert_ne!(a.matches(c), b.matches(c), "{yes}/{no} at {c}");
        }
    }
}

// --- FLT-80 .. FLT-93 ---------------------------------------------------------------

const ROWS_A: [&str; 4] = [
    "2023-01-01T00:00:00.000Z",
    "2023-01-01T00:00:00.001Z",
    "2022-12-31T16:00:00.000Z",
    "2022-12-31T16:00:00.001Z",
];

const ROWS_B: [&str; 5] = [
    "2023-01-01T00:00:00.000Z",
    "2023-01-01T00:00:00.001Z",
    "2022-12-31T16:00:00.000Z",
    "2022-12-31T16:00:00.001Z",
    "2022-12-30T15:59:59.999Z",
];

const ROWS_BETWEEN: [&str; 6] = [
    "2023-01-01T00:00:00.000Z",
    "2023-01-05T16:00:00.000Z",
    "2022-12-31T16:00:00.000Z",
    "2022-12-31T16:00:00.001Z",
    "2022-12-30T15:59:59.999Z",
    "2023-01-04T16:00:00.000Z",
];

/// Rows matching `op operand` with DB timezone +00:00 and no X-Timezone, as in the
/// NocoBase tests.
fn count(rows: &[&str], op: &str, operand: &str) -> usize {
    let parsed = parse(&json!(operand), None);
    let condition = date_condition(op, &parsed).expect("condition");
    rows.iter().filter(|r| condition.matches(at(r))).count()
}

#[test]
fn flt80_to_flt83_date_on_and_not_on() {
    assert_eq!(count(&ROWS_A, "$dateOn", "2023"), 2, "FLT-80");
    assert_eq!(count(&ROWS_A, "$dateOn", "2023+08:00"), 4, "FLT-81");
    assert_eq!(count(&ROWS_A, "$dateNotOn", "2023"), 2, "FLT-82");
    assert_eq!(count(&ROWS_A, "$dateNotOn", "2023+08:00"), 0, "FLT-83");
}

#[test]
fn flt84_to_flt87_date_before_and_not_before() {
    assert_eq!(count(&ROWS_B, "$dateBefore", "2023"), 3, "FLT-84");
    assert_eq!(count(&ROWS_B, "$dateBefore", "2023+08:00"), 1, "FLT-85");
    assert_eq!(count(&ROWS_B, "$dateNotBefore", "2023"), 2, "FLT-86");
    assert_eq!(count(&ROWS_B, "$dateNotBefore", "2023+08:00"), 4, "FLT-87");
}

#[test]
fn flt88_to_flt91_date_after_and_not_after() {
    assert_eq!(count(&ROWS_B, "$dateAfter", "2022"), 2, "FLT-88");
    assert_eq!(count(&ROWS_B, "$dateAfter", "2022+08:00"), 4, "FLT-89");
    assert_eq!(count(&ROWS_B, "$dateNotAfter", "2022"), 3, "FLT-90");
    assert_eq!(count(&ROWS_B, "$dateNotAfter", "2022+08:00"), 1, "FLT-91");
}

#[test]
fn flt92_flt93_date_between_days_in_utc_and_plus_eight() {
    let between = "[2023-01-01,2023-01-05]";
    assert_eq!(count(&ROWS_BETWEEN, "$dateBetween", between), 3, "FLT-92");
    assert_eq!(
        count(&ROWS_BETWEEN, "$dateBetween", &format!("{between}+08:00")),
        4,
        "FLT-93"
    );
}

// --- hostile input ------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn hostile_strings() -> Vec<String> {
    const PIECES: [&str; 32] = [
        "0",
        "1",
        "2",
        "3",
        "9",
        "2023",
        "-",
        ":",
        ".",
        "T",
        " ",
        "Z",
        "Q",
        "W",
        "w",
        "+",
        "+08:00",
        "-05:30",
        "(",
        "[",
        "]",
        ")",
        ",",
        "é",
        "日",
        "🙂",
        "\u{0}",
        "\u{301}",
        "99999999999",
        "-00",
        "\n",
        "１",
    ];
    const SEEDS: [&str; 12] = [
        "2023",
        "2023Q2",
        "2023W01",
        "2023w01",
        "2023-03",
        "2023-01-12",
        "2023-01-12T12:23:59.326",
        "2023-01-12 12:23+08:00",
        "2023-01-12T12:23:59.326Z",
        "[2023,2024]+08:00",
        "(2023-01-01T00:00:00Z,2023-01-05]",
        "9999-12-31T23:59:59.999",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    for _ in 0..300 {
        let mut s = String::new();
        for _ in 0..rng.below(12) {
            s.push_str(PIECES[rng.below(PIECES.len())]);
        }
        out.push(s);
    }
    // Mutations of valid inputs reach deeper into the parser than random text.
    for _ in 0..300 {
        let mut chars: Vec<char> = SEEDS[rng.below(SEEDS.len())].chars().collect();
        for _ in 0..1 + rng.below(3) {
            let piece: Vec<char> = PIECES[rng.below(PIECES.len())].chars().collect();
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 => {
                    chars.splice(at..at, piece);
                }
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => {
                    chars.splice(at..=at, piece);
                }
                _ => chars.extend(piece),
            }
        }
        out.push(chars.into_iter().collect());
    }
    out.extend([
        "2".repeat(100_000),
        "[".repeat(50_000),
        format!("({})", "2023,".repeat(10_000)),
        format!("{}Z", "2023-01-12T12:23:59.".repeat(1_000)),
        format!("2023-01-12T12:23:59.{}Z", "1".repeat(1_000)),
        "é".repeat(10_000),
        "9999-12-31T23:59:59.999-23:59".to_owned(),
        "0000-01-01T00:00:00.000+23:59".to_owned(),
        "[0000,9999]-23:59".to_owned(),
        "(9999,9999]-23:59".to_owned(),
    ]);
    out
}

fn check_no_panic(operand: &Json, zone: Option<FixedOffset>, at_time: DateTime<Utc>) {
    match parse_date_operand(operand, zone, at_time) {
        Ok(parsed) => {
            for op in OPERATORS {
                let _ = date_condition(op, &parsed);
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), crate::error::ErrorKind::BadRequest);
            assert!(e.message().starts_with("Invalid Date"), "{}", e.message());
            assert!(e.message().len() < 400, "{}", e.message().len());
        }
    }
}

#[test]
fn hostile_strings_never_panic_and_fail_as_invalid_dates() {
    let strings = hostile_strings();
    assert!(strings.len() >= 600);
    let zones = [None, tz("+23:59"), tz("-23:59")];
    for (i, s) in strings.iter().enumerate() {
        let zone = zones[i % zones.len()];
        check_no_panic(&json!(s), zone, now());
        check_no_panic(&json!([s, "2024", "(]", "+08:00"]), zone, now());
        let _ = parse_offset(s);
    }
}

#[test]
fn hostile_relative_objects_and_extreme_clocks_never_panic() {
    let extremes = [
        now(),
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        DateTime::<Utc>::UNIX_EPOCH,
    ];
    let kinds = [
        "today",
        "yesterday",
        "tomorrow",
        "thisWeek",
        "lastWeek",
        "nextWeek",
        "thisMonth",
        "lastMonth",
        "nextMonth",
        "thisQuarter",
        "lastQuarter",
        "nextQuarter",
        "thisYear",
        "lastYear",
        "nextYear",
        "past",
        "next",
    ];
    for at_time in extremes {
        for kind in kinds {
            for unit in ["day", "week", "month", "quarter", "year"] {
                for number in [json!(1), json!(4_294_967_295_u64), json!("12")] {
                    for include in [false, true] {
                        let operand = json!({
                            "type": kind, "unit": unit, "number": number,
                            "includeCurrent": include, "timezone": "-23:59",
                        });
                        check_no_panic(&operand, tz("+23:59"), at_time);
                        let _ = relative_to_between(&operand, None, at_time);
                    }
                }
            }
        }
    }
}
