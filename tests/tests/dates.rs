//! Date operators over HTTP: units, ranges, offsets, `X-Timezone`, relative values, and
//! fields that are instants, wall-clock times or calendar dates (filters.md §5).

use manifold_tests::{TestApp, every_backend, filter};
use poem::http::Method;
use serde_json::{Value as Json, json};

const ROWS_A: [&str; 4] = [
    "2023-01-01T00:00:00.000Z",
    "2023-01-01T00:00:00.001Z",
    "2022-12-31T16:00:00.000Z",
    "2022-12-31T16:00:00.001Z",
];

async fn events(rows: &[&str]) -> TestApp {
    let t = TestApp::new().await;
    t.collection(json!({"name": "tests", "timestamps": false, "fields": [
        {"name": "date1", "type": "datetime"},
        {"name": "day", "type": "date"},
        {"name": "wall", "type": "datetimeNoTz"}
    ]}))
    .await;
    let rows: Vec<Json> = rows.iter().map(|d| json!({"date1": d})).collect();
    t.insert("tests", Json::Array(rows)).await;
    t
}

async fn count(t: &TestApp, f: Json, timezone: Option<&str>) -> usize {
    let path = format!("/api/tests:list?paginate=false&{}", filter(f.clone()));
    let headers: Vec<(&str, &str)> = timezone.map(|tz| ("x-timezone", tz)).into_iter().collect();
    let r = t.send(Method::GET, &path, &headers, None).await;
    assert_eq!(r.status, 200, "{f}: {:?}", r.body);
    r.data().as_array().map_or(0, Vec::len)
}

every_backend! {
    async fn flt_80_to_91_units_and_offsets_on_instants() {
        let t = events(&ROWS_A).await;
        let cases = [
            ("FLT-80", json!({"date1.$dateOn": "2023"}), 2),
            ("FLT-81", json!({"date1.$dateOn": "2023+08:00"}), 4),
            ("FLT-82", json!({"date1.$dateNotOn": "2023"}), 2),
            ("FLT-83", json!({"date1.$dateNotOn": "2023+08:00"}), 0),
        ];
        for (case, f, expected) in cases {
            assert_eq!(count(&t, f, None).await, expected, "{case}");
        }
        let mut rows_b = ROWS_A.to_vec();
        rows_b.push("2022-12-30T15:59:59.999Z");
        let t = events(&rows_b).await;
        let cases = [
            ("FLT-84", json!({"date1.$dateBefore": "2023"}), 3),
            ("FLT-85", json!({"date1.$dateBefore": "2023+08:00"}), 1),
            ("FLT-86", json!({"date1.$dateNotBefore": "2023"}), 2),
            ("FLT-87", json!({"date1.$dateNotBefore": "2023+08:00"}), 4),
            ("FLT-88", json!({"date1.$dateAfter": "2022"}), 2),
            ("FLT-89", json!({"date1.$dateAfter": "2022+08:00"}), 4),
            ("FLT-90", json!({"date1.$dateNotAfter": "2022"}), 3),
            ("FLT-91", json!({"date1.$dateNotAfter": "2022+08:00"}), 1),
        ];
        for (case, f, expected) in cases {
            assert_eq!(count(&t, f, None).await, expected, "{case}");
        }
    }
}

every_backend! {
    async fn flt_92_93_between_ranges_and_the_timezone_header() {
        let t = events(&[
            "2023-01-01T00:00:00.000Z",
            "2023-01-05T16:00:00.000Z",
            "2022-12-31T16:00:00.000Z",
            "2022-12-31T16:00:00.001Z",
            "2022-12-30T15:59:59.999Z",
            "2023-01-04T16:00:00.000Z",
        ])
        .await;
        let between = json!({"date1.$dateBetween": "[2023-01-01,2023-01-05]"});
        assert_eq!(count(&t, between.clone(), None).await, 3, "FLT-92");
        assert_eq!(
            count(&t, json!({"date1.$dateBetween": "[2023-01-01,2023-01-05]+08:00"}), None).await,
            4,
            "FLT-93"
        );
        // The header applies the same offset to operands that carry none.
        assert_eq!(count(&t, between.clone(), Some("+08:00")).await, 4);
        assert_eq!(count(&t, between, Some("Asia/Shanghai")).await, 4);
        assert_eq!(
            count(&t, json!({"date1.$dateBetween": ["2023-01-01", "2023-01-05", "[)"]}), None).await,
            2
        );
    }
}

every_backend! {
    async fn calendar_dates_and_wall_clock_times_ignore_the_header() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "tests", "timestamps": false, "fields": [
            {"name": "day", "type": "date"},
            {"name": "wall", "type": "datetimeNoTz"}
        ]}))
        .await;
        t.insert(
            "tests",
            json!([
                {"day": "2023-01-11", "wall": "2023-01-11 23:30:00"},
                {"day": "2023-01-12", "wall": "2023-01-12 00:00:00"},
                {"day": "2023-01-13", "wall": "2023-01-12 23:59:59"}
            ]),
        )
        .await;
        for tz in [None, Some("+08:00"), Some("-05:00")] {
            assert_eq!(count(&t, json!({"day.$dateOn": "2023-01-12"}), tz).await, 1, "{tz:?}");
            assert_eq!(count(&t, json!({"wall.$dateOn": "2023-01-12"}), tz).await, 2, "{tz:?}");
        }
        assert_eq!(count(&t, json!({"day.$dateAfter": "2023-01-12"}), None).await, 1);
        assert_eq!(count(&t, json!({"day.$dateNotBefore": "2023-01-12T12"}), None).await, 1);
        assert_eq!(count(&t, json!({"day.$dateBefore": "2023-01"}), None).await, 0);
        assert_eq!(count(&t, json!({"day.$dateOn": "2023W02"}), None).await, 3);
        assert_eq!(count(&t, json!({"day.$dateNotOn": "2023-01-12"}), None).await, 2);
    }
}

every_backend! {
    async fn relative_operands_resolve_against_now() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "tests", "timestamps": false, "fields": [{"name": "at", "type": "datetime"}]}))
            .await;
        let now = chrono::Utc::now();
        let long_ago = now - chrono::Duration::days(400);
        t.insert(
            "tests",
            json!([{"at": manifold_core::value::format_instant(&now)},
                   {"at": manifold_core::value::format_instant(&long_ago)}]),
        )
        .await;
        assert_eq!(count(&t, json!({"at": {"$dateOn": {"type": "today"}}}), None).await, 1);
        assert_eq!(
            count(&t, json!({"at": {"$dateBefore": {"type": "past", "unit": "month", "number": 6}}}), None).await,
            1
        );
    }
}

#[tokio::test]
async fn bad_dates_and_zones_are_400s_naming_the_path() {
    let t = events(&ROWS_A).await;
    let bad = [
        (
            json!({"date1.$dateOn": "yesterday-ish"}),
            "filter.date1.$dateOn: Invalid Date",
        ),
        (
            json!({"date1.$dateOn": "2023-13"}),
            "filter.date1.$dateOn: Invalid Date",
        ),
        (
            json!({"date1.$dateBetween": "2023-01-01T00:00:00.000Z"}),
            "filter.date1.$dateBetween: Invalid Date",
        ),
        (
            json!({"date1.$dateOn": null}),
            "filter.date1.$dateOn: Invalid Date",
        ),
        (
            json!({"id.$dateOn": "2023"}),
            "filter.id.$dateOn: date operators apply to date and datetime fields",
        ),
    ];
    for (f, message) in bad {
        let r = t
            .get(&format!("/api/tests:list?{}", filter(f.clone())))
            .await;
        assert_eq!(r.status, 400, "{f}: {:?}", r.body);
        assert!(r.error().starts_with(message), "{f}: {}", r.error());
    }
    let mars = [
        ("x-timezone", "Mars/Olympus"),
        ("content-type", "application/json"),
    ];
    let path = format!(
        "/api/tests:list?{}",
        filter(json!({"date1.$dateOn": "2023"}))
    );
    let r = t.send(Method::GET, &path, &mars, None).await;
    assert_eq!(r.status, 400);
    assert!(
        r.error()
            .starts_with("X-Timezone: unknown time zone \"Mars/Olympus\""),
        "{}",
        r.error()
    );
    // The header only matters where a filter is read.
    let body = br#"{"date1": "2024-01-01T00:00:00Z"}"#.to_vec();
    let r = t
        .send(Method::POST, "/api/tests:create", &mars, Some(body))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

every_backend! {
    async fn bounds_outside_the_four_digit_years_are_a_400() {
        let t = events(&ROWS_A).await;
        // MySQL cannot bind a year before 0000 (each of the first four was a MariaDB 500),
        // and a year past 9999 sorts before every other date stored as text (SQLite).
        for (f, timezone, message) in [
            (json!({"date1.$dateBefore": "0000-01-01+14:00"}), None, "is out of range (before year 0000)"),
            (json!({"date1.$dateOn": "0000"}), Some("+08:00"), "is out of range (before year 0000)"),
            (json!({"date1.$dateOn": "0000w01"}), None, "is out of range (before year 0000)"),
            (json!({"date1.$dateOn": {"type": "past", "unit": "quarter", "number": 40000}}), None, "is out of range (before year 0000)"),
            (json!({"date1.$dateAfter": "9999-12-31"}), None, "is out of range (after year 9999)"),
            (json!({"date1.$gt": -99_999_999_999_999_i64}), None, "expected an ISO-8601 date-time"),
        ] {
            let path = format!("/api/tests:list?{}", filter(f.clone()));
            let headers: Vec<(&str, &str)> = timezone.map(|tz| ("x-timezone", tz)).into_iter().collect();
            let r = t.send(Method::GET, &path, &headers, None).await;
            assert_eq!(r.status, 400, "{f}: {:?}", r.body);
            assert!(r.error().contains(message), "{f}: {}", r.error());
        }
        assert_eq!(count(&t, json!({"date1.$dateNotAfter": "9999-12-30"}), None).await, 4);
        assert_eq!(count(&t, json!({"date1.$dateBefore": "1000"}), None).await, 0);
    }
}
