//! Differential test of the filter language: the same rows in SQLite, PostgreSQL, MariaDB
//! and MongoDB (SecantusDB, registered as a data source), thousands of generated filters and sorts, and every database must return the
//! same ids in the same order as the in-process reference evaluator.
//!
//! Strings in the data are lower-case ASCII letters and digits, and `$gt`-style operands
//! on text are too: ordering text beyond that follows each database's collation (MariaDB's
//! default one ignores case and orders `_` after letters), which docs/filters.md states.
//! Equality and the LIKE-based operators still get `%` and `_`, to check their escaping.
//! `label` holds mixed case, `%`, `_` and backslashes; only the `$like` family reads it,
//! with generated raw patterns, so case-sensitivity and wildcards are checked everywhere.

use std::sync::Arc;

use manifold_core::filter::{FilterContext, compare_records, matches, parse_filter_in_context};
use manifold_core::params::Params;
use manifold_core::query::FindOptions;
use manifold_core::repository::Record;
use manifold_core::schema::Collection;
use manifold_tests::{Backend, External, TestApp, enc, on_backend, on_external};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value as Json, json};

const NAMES: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "ab", "ba", "a1", "b2", "abc", "",
];
const LABELS: &[&str] = &["ab", "AB", "Ab", "a%", "A_b", "a\\b", "b", "", "aBa", "%"];
const AMOUNTS: &[f64] = &[0.5, 1.25, -2.5, 10.75, 3.0];

/// A small deterministic generator, so every run loads the same rows.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn rows() -> Vec<Json> {
    let mut r = Lcg(42);
    // Labels come from their own generator, so the other columns keep their values.
    let mut l = Lcg(7);
    (0..48)
        .map(|_| {
            let maybe = |v: Json, r: &mut Lcg| if r.next(6) == 0 { Json::Null } else { v };
            let name = json!(NAMES[r.next(NAMES.len() as u64) as usize]);
            let score = json!(r.next(21) as i64 - 5);
            let amount = json!(AMOUNTS[r.next(AMOUNTS.len() as u64) as usize]);
            let ok = json!(r.next(2) == 0);
            let at = json!(format!(
                "2023-01-0{}T{:02}:00:00.{:03}Z",
                1 + r.next(5),
                [0, 12, 23][r.next(3) as usize],
                [0, 500][r.next(2) as usize]
            ));
            let day = json!(format!("2023-01-0{}", 1 + r.next(5)));
            let tags = [
                json!(["x"]),
                json!(["x", "y"]),
                json!([1, 2]),
                json!([]),
                json!(["y", 2]),
            ][r.next(5) as usize]
                .clone();
            let label = if l.next(8) == 0 {
                Json::Null
            } else {
                json!(LABELS[l.next(LABELS.len() as u64) as usize])
            };
            json!({
                "label": label,
                "name": maybe(name, &mut r), "score": maybe(score, &mut r),
                "amount": maybe(amount, &mut r), "ok": maybe(ok, &mut r),
                "at": maybe(at, &mut r), "day": maybe(day, &mut r), "tags": maybe(tags, &mut r),
            })
        })
        .collect()
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        "[a-d1-2%_]{0,3}",
    ]
}

/// Words whose order is the same under every collation: lower-case letters and digits.
fn ordered_word() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        "[a-d1-2]{0,3}",
    ]
}

fn leaf() -> impl Strategy<Value = Json> {
    let score = -6i64..17;
    prop_oneof![
        (proptest::sample::select(&["$eq", "$ne"][..]), word())
            .prop_map(|(op, w)| json!({ "name": { op: w } })),
        (
            proptest::sample::select(&["$gt", "$gte", "$lt", "$lte"][..]),
            ordered_word()
        )
            .prop_map(|(op, w)| json!({ "name": { op: w } })),
        (
            proptest::sample::select(&["$in", "$notIn"][..]),
            proptest::collection::vec(word(), 0..3)
        )
            .prop_map(|(op, ws)| json!({ "name": { op: ws } })),
        (
            proptest::sample::select(
                &[
                    "$includes",
                    "$notIncludes",
                    "$startsWith",
                    "$notStartsWith",
                    "$endWith",
                    "$notEndWith"
                ][..]
            ),
            "[a-dA-D1-2%_]{1,3}",
        )
            .prop_map(|(op, w)| json!({ "name": { op: w } })),
        proptest::sample::select(&["$empty", "$notEmpty"][..])
            .prop_map(|op| json!({ "name": { op: true } })),
        (
            proptest::sample::select(&["$like", "$notLike", "$iLike", "$notILike"][..]),
            prop_oneof![
                proptest::sample::select(LABELS).prop_map(str::to_owned),
                "[abAB%_\\\\]{0,4}",
            ],
            proptest::sample::select(&["label", "name"][..]),
        )
            .prop_map(|(op, p, field)| json!({ field: { op: p } })),
        (
            proptest::sample::select(&["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"][..]),
            score.clone()
        )
            .prop_map(|(op, n)| json!({ "score": { op: n } })),
        (
            proptest::sample::select(&["$in", "$notIn"][..]),
            proptest::collection::vec(score.clone(), 0..4)
        )
            .prop_map(|(op, ns)| json!({ "score": { op: ns } })),
        (
            proptest::sample::select(&["$between", "$notBetween"][..]),
            score.clone(),
            score.clone()
        )
            .prop_map(|(op, a, b)| json!({ "score": { op: [a.min(b), a.max(b)] } })),
        proptest::sample::select(&["$empty", "$notEmpty"][..])
            .prop_map(|op| json!({ "score": { op: true } })),
        (
            proptest::sample::select(&["$eq", "$gt", "$lt", "$ne"][..]),
            proptest::sample::select(AMOUNTS)
        )
            .prop_map(|(op, a)| json!({ "amount": { op: a } })),
        (
            proptest::sample::select(&["$isTruly", "$isFalsy"][..]),
            any::<bool>()
        )
            .prop_map(|(op, b)| json!({ "ok": { op: b } })),
        any::<bool>().prop_map(|b| json!({ "ok": b })),
        (
            proptest::sample::select(
                &[
                    "$dateOn",
                    "$dateNotOn",
                    "$dateBefore",
                    "$dateNotBefore",
                    "$dateAfter",
                    "$dateNotAfter"
                ][..]
            ),
            proptest::sample::select(
                &[
                    "2023-01-02",
                    "2023-01-03T12",
                    "2023-01",
                    "2023",
                    "2023-01-04+08:00",
                    "2023-01-02T12:00:00.500Z"
                ][..]
            ),
        )
            .prop_map(|(op, d)| json!({ "at": { op: d } })),
        proptest::sample::select(
            &[
                "[2023-01-02,2023-01-03]",
                "(2023-01-01,2023-01-04)",
                "[2023-01-02,2023-01-05)"
            ][..]
        )
        .prop_map(|d| json!({ "at": { "$dateBetween": d } })),
        (
            proptest::sample::select(&["$dateOn", "$dateNotOn", "$dateBefore", "$dateAfter"][..]),
            proptest::sample::select(&["2023-01-02", "2023-01-03T12", "2023W01", "2023-01"][..]),
        )
            .prop_map(|(op, d)| json!({ "day": { op: d } })),
        (
            proptest::sample::select(&["$anyOf", "$noneOf", "$match", "$notMatch"][..]),
            proptest::collection::vec(
                prop_oneof![
                    Just(json!("x")),
                    Just(json!("y")),
                    Just(json!(1)),
                    Just(json!(2)),
                    Just(json!("1"))
                ],
                0..3
            ),
        )
            .prop_map(|(op, v)| json!({ "tags": { op: v } })),
        proptest::sample::select(&["$empty", "$notEmpty", "$arrayEmpty", "$arrayNotEmpty"][..])
            .prop_map(|op| json!({ "tags": { op: true } })),
    ]
}

fn filter() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        (
            proptest::sample::select(&["$and", "$or"][..]),
            proptest::collection::vec(inner, 1..4),
        )
            .prop_map(|(op, items)| json!({ op: items }))
    })
}

fn sort() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        (
            proptest::sample::select(&["name", "score", "amount", "ok", "at", "day"][..]),
            any::<bool>(),
        )
            .prop_map(|(f, desc)| if desc { format!("-{f}") } else { f.to_owned() }),
        0..3,
    )
}

fn ids(reply: &manifold_tests::Reply) -> Vec<i64> {
    reply.column("id").iter().filter_map(Json::as_i64).collect()
}

struct Fixture {
    apps: Vec<(&'static str, TestApp)>,
    collection: Arc<Collection>,
    records: Vec<Record>,
}

async fn fixture() -> Fixture {
    let definition = json!({"name": "items", "timestamps": false, "fields": [
        {"name": "name", "type": "string"}, {"name": "label", "type": "string"}, {"name": "score", "type": "integer"},
        {"name": "amount", "type": "double"}, {"name": "ok", "type": "boolean"},
        {"name": "at", "type": "datetime"}, {"name": "day", "type": "date"},
        {"name": "tags", "type": "array"}
    ]});
    let mut apps = Vec::new();
    for (name, backend) in [
        ("SQLite", Backend::Sqlite),
        ("PostgreSQL", Backend::Postgres),
        ("MariaDB", Backend::MariaDb),
    ] {
        apps.push((name, on_backend(backend, TestApp::new()).await));
    }
    apps.push((
        "MongoDB",
        on_external(External::MongoDb, TestApp::new()).await,
    ));
    for (_, t) in &apps {
        t.collection(definition.clone()).await;
        t.insert("items", Json::Array(rows())).await;
    }
    let (collection, _) = apps[0]
        .1
        .app
        .data_sources()
        .get("main")
        .and_then(|m| m.collection("items"))
        .expect("items");
    let all = apps[0].1.get("/api/items:list?paginate=false").await;
    let records = all
        .data()
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r.as_object().cloned())
        .collect();
    Fixture {
        apps,
        collection,
        records,
    }
}

/// What the evaluator says `filter` and `sort` return.
fn expected(f: &Fixture, filter: &Json, sort: &[String]) -> Vec<i64> {
    let parsed = parse_filter_in_context(&f.collection, filter, &FilterContext::default())
        .expect("generated filters are valid");
    let params = Params::from_map(
        json!({ "sort": sort })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let order = FindOptions::from_params(&f.collection, &params)
        .expect("valid sort")
        .sort;
    let mut hits: Vec<&Record> = f
        .records
        .iter()
        .filter(|r| parsed.as_ref().is_none_or(|p| matches(p, r)))
        .collect();
    hits.sort_by(|a, b| compare_records(a, b, &order));
    hits.iter().filter_map(|r| r["id"].as_i64()).collect()
}

#[test]
fn every_database_agrees_with_the_reference_evaluator() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let f = rt.block_on(fixture());
    assert_eq!(f.records.len(), 48);
    let cases: u32 = std::env::var("MANIFOLD_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let checked = std::cell::Cell::new(0u32);
    let outcome = runner.run(&(filter(), sort()), |(filter, sort)| {
        let want = expected(&f, &filter, &sort);
        let path = format!(
            "/api/items:list?paginate=false&fields=id&filter={}&sort={}",
            enc(&filter.to_string()),
            enc(&sort.join(","))
        );
        for (backend, t) in &f.apps {
            let r = rt.block_on(t.get(&path));
            if r.status != 200 {
                return Err(TestCaseError::fail(format!(
                    "{backend} answered {}: {}\n  filter {filter}\n  sort {sort:?}",
                    r.status, r.body
                )));
            }
            let got = ids(&r);
            if got != want {
                return Err(TestCaseError::fail(format!(
                    "{backend} disagrees with the evaluator\n  filter {filter}\n  sort {sort:?}\n  got      {got:?}\n  expected {want:?}"
                )));
            }
        }
        checked.set(checked.get() + 1);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let checked = checked.get();
    println!(
        "differential: {checked} generated cases agreed on SQLite, PostgreSQL, MariaDB and MongoDB"
    );
    assert!(checked >= cases, "only {checked} cases ran");
}
