//! Property test of the request grammar over the real HTTP endpoint, on SQLite, PostgreSQL
//! and MariaDB: thousands of generated filters (known fields of every type, relation
//! paths, unknown fields, every operator and unknown ones, wrong operands, odd `$and`/`$or`
//! shapes, deep nesting, long lists), query parameters (`sort`, `fields`, `appends`,
//! `except`, `page`, `pageSize`, `paginate`, `filterByTk`, …) with hostile values, and
//! request bodies for the write actions (wrong types, unknown fields, nested associations
//! of the wrong shape, huge numbers, malformed JSON), sent as root and anonymously.
//!
//! Whatever comes in: no 5xx and no panic; every 4xx is `{"errors":[{"message":…}]}` with a
//! message; and a write answered 4xx leaves every table exactly as it was.
//!
//! Wide filters reach past SQLite's old expression-depth limit (up to 1,050 `$or`
//! branches or list items), and the JSON field is compared with values on MariaDB too.
//!
//! The runs are reproducible: the seed is fixed unless `MANIFOLD_TEST_FUZZ_SEED` names another
//! (to explore), and a failure prints the request. `MANIFOLD_TEST_FUZZ_CASES` sets the number
//! of requests per backend.
//!
//! The proptest runner is synchronous, so each backend is a plain `#[test]` driving its own
//! runtime (as in differential.rs) instead of `every_backend!`; the names are the same
//! (`the_service_survives_generated_requests::sqlite`, …).

use std::collections::BTreeMap;
use std::fmt;

use manifold_tests::{Backend, Reply, TestApp, enc, on_backend};
use poem::http::Method;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value as Json, json};

/// The seed of a normal run; `MANIFOLD_TEST_FUZZ_SEED` overrides it.
const SEED: u64 = 0x6d61_6e69_666f_6c64;

/// Requests per backend in a normal run; `MANIFOLD_TEST_FUZZ_CASES` overrides it.
const CASES: u32 = 4000;

/// The collections the requests may change; all of them are compared after a refused
/// write (the junction of `posts.labels` is found at start-up).
const TABLES: &[&str] = &["people", "labels", "posts", "comments"];

// ---------------------------------------------------------------------------------------
// Vocabulary.

/// How a field's operands are generated.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Date,
    Time,
    Json,
    Array,
    Relation,
    Unknown,
}

/// Filter paths on `posts`: its own fields of every type, paths through each kind of
/// relation, JSON sub-paths, and names that do not exist.
const PATHS: &[(&str, Kind)] = &[
    ("id", Kind::Int),
    ("title", Kind::Str),
    ("body", Kind::Str),
    ("code", Kind::Str),
    ("score", Kind::Int),
    ("big", Kind::Int),
    ("rating", Kind::Float),
    ("price", Kind::Float),
    ("ok", Kind::Bool),
    ("day", Kind::Date),
    ("at", Kind::Date),
    ("local", Kind::Date),
    ("createdAt", Kind::Date),
    ("clock", Kind::Time),
    ("meta", Kind::Json),
    ("meta.a", Kind::Json),
    ("meta.a.b", Kind::Json),
    ("tags", Kind::Array),
    ("ref", Kind::Str),
    ("authorId", Kind::Int),
    ("author", Kind::Relation),
    ("author.name", Kind::Str),
    ("author.age", Kind::Int),
    ("author.id", Kind::Int),
    ("comments", Kind::Relation),
    ("comments.content", Kind::Str),
    ("comments.id", Kind::Int),
    ("comments.post.title", Kind::Str),
    ("comments.post.author.name", Kind::Str),
    ("labels", Kind::Relation),
    ("labels.name", Kind::Str),
    ("nope", Kind::Unknown),
    ("author.nope", Kind::Unknown),
    ("title.nope", Kind::Unknown),
    ("comments.post.nope.x", Kind::Unknown),
    ("", Kind::Unknown),
    (".", Kind::Unknown),
    ("title.", Kind::Unknown),
    ("..title", Kind::Unknown),
    ("0", Kind::Unknown),
    ("__proto__", Kind::Unknown),
    ("title\"; DROP TABLE posts; --", Kind::Unknown),
    ("tïtle", Kind::Unknown),
];

/// Every operator of shared/spec/filters.md §2.1–2.9.
const OPERATORS: &[&str] = &[
    "$eq",
    "$ne",
    "$in",
    "$notIn",
    "$is",
    "$not",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$between",
    "$notBetween",
    "$includes",
    "$notIncludes",
    "$startsWith",
    "$notStartsWith",
    "$endWith",
    "$notEndWith",
    "$like",
    "$notLike",
    "$iLike",
    "$notILike",
    "$regexp",
    "$notRegexp",
    "$iRegexp",
    "$notIRegexp",
    "$empty",
    "$notEmpty",
    "$isTruly",
    "$isFalsy",
    "$anyOf",
    "$noneOf",
    "$match",
    "$notMatch",
    "$arrayEmpty",
    "$arrayNotEmpty",
    "$exists",
    "$notExists",
    "$dateOn",
    "$dateNotOn",
    "$dateBefore",
    "$dateNotBefore",
    "$dateAfter",
    "$dateNotAfter",
    "$dateBetween",
];

/// Operators that do not exist, or exist only in NocoBase's pass-through registry.
const UNKNOWN_OPERATORS: &[&str] = &[
    "$col",
    "$foo",
    "$EQ",
    "$",
    "$$",
    "$endsWith",
    "$not_in",
    "$contains",
    "$overlap",
    "$isCurrentUser",
    "$isVar",
    "$and",
    "$or",
    "$eq.$eq",
    "$in; DROP TABLE posts",
];

const WORDS: &[&str] = &[
    "p1", "p2", "ann", "bo", "x", "a", "", "A", "c1", "draft", "1", "-1", "true", "null",
];

const HOSTILE: &[&str] = &[
    "'",
    "\"",
    "\\",
    "%",
    "_",
    "%_%",
    "' OR '1'='1",
    "1; DROP TABLE posts; --",
    "$1",
    "?",
    "{{ctx.state}}",
    "{{$user.id}}",
    "ünïcødé ✓",
    "🙂",
    "İ",
    "\u{feff}",
    "\u{202e}abc",
    "line\nbreak",
    "a\u{0}b",
    "\u{0}",
    "\u{7f}",
    "\u{fffd}",
];

/// Date operands of filters.md §5.1, and broken ones.
const DATES: &[&str] = &[
    "2023-01-02",
    "2023",
    "2023Q2",
    "2023Q5",
    "2023W01",
    "2023W54",
    "2023w01",
    "2023-01",
    "2023-01-12T12",
    "2023-01-12 12:23",
    "2023-01-12T12:23:59",
    "2023-01-12T12:23:59.326",
    "2023-01-12T12:23:59.326Z",
    "2023+08:00",
    "2023-01-02-05:30",
    "[2023-01-01,2023-01-05]",
    "(2023,2024]",
    "[2023-01-01T00:00:00Z,2023-01-05)",
    "[2024,2023]",
    "[,]",
    "[2023",
    "2023-02-30",
    "2023-13-01",
    "2023-01-01T25:00",
    "0000-01-01",
    "0000w01",
    "0000+14:00",
    "9999",
    "9999-12-31",
    "9999-12-31T23:59:59.999Z",
    "+275760-09-13",
    "-000001-01-01",
    "2023-01-01T00:00:00+99:99",
    "2023-01-01+14:00",
    "99999",
    "1e9",
    "12:30",
    "12:30:00",
    "24:00:00",
    "23:59:59.999999999",
    "today",
    "{{$nDate.now}}",
    "{{$nDate.today}}",
    "{{$nDate.last7Days}}",
    "",
];

/// Literals a `serde_json::Value` cannot hold: a generated string `\u{1}RAW<i>` is
/// replaced by `RAW[i]` in the JSON text sent.
const RAW: &[&str] = &[
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "1e-400",
    "-0",
    "1E2",
    "0.0000000000000000000000000001",
    "4.9e-324",
];

/// Values of the `page`/`pageSize`/`filterByTk` kind.
const NUMBERISH: &[&str] = &[
    "1",
    "2",
    "3",
    "0",
    "-1",
    "-0",
    "1.5",
    "1e3",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551615",
    "4294967296",
    "2147483648",
    "abc",
    "",
    " ",
    " 1",
    "+1",
    "0x10",
    "١",
    "１",
    "NaN",
    "Infinity",
    "true",
    "null",
    "[]",
    "{}",
    "1,2",
    "%",
    "🙂",
    "00000000-0000-0000-0000-000000000000",
];

/// Fields and relations of `posts` a body may hold, and some it may not.
const WRITE_KEYS: &[(&str, Kind)] = &[
    ("title", Kind::Str),
    ("body", Kind::Str),
    ("code", Kind::Str),
    ("score", Kind::Int),
    ("big", Kind::Int),
    ("rating", Kind::Float),
    ("price", Kind::Float),
    ("ok", Kind::Bool),
    ("day", Kind::Date),
    ("at", Kind::Date),
    ("local", Kind::Date),
    ("clock", Kind::Time),
    ("meta", Kind::Json),
    ("tags", Kind::Array),
    ("ref", Kind::Str),
    ("authorId", Kind::Int),
    ("id", Kind::Int),
    ("createdAt", Kind::Date),
    ("updatedAt", Kind::Date),
    ("author", Kind::Relation),
    ("comments", Kind::Relation),
    ("labels", Kind::Relation),
    ("name", Kind::Str),
    ("age", Kind::Int),
    ("content", Kind::Str),
    ("postId", Kind::Int),
    ("post", Kind::Relation),
    ("nope", Kind::Unknown),
    ("__proto__", Kind::Unknown),
    ("", Kind::Unknown),
    ("title\"; --", Kind::Unknown),
];

// ---------------------------------------------------------------------------------------
// Values.

fn word() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(WORDS).prop_map(str::to_owned),
        2 => select(HOSTILE).prop_map(str::to_owned),
        2 => "[a-cA-C0-9%_\\\\ ]{0,6}",
        1 => "\\PC{0,12}",
        1 => (0usize..100).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

/// A string past the databases' column sizes (`VARCHAR(255)`) and index limits, of at
/// most `max` characters.
fn long_word(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        (200..max).prop_map(|n| "x".repeat(n)),
        (60..max / 3).prop_map(|n| "é🙂".repeat(n)),
    ]
    .boxed()
}

/// Integers at the edges of the databases' integer types and of a double's precision.
const EDGE_INTS: &[i64] = &[
    i32::MAX as i64,
    i32::MAX as i64 + 1,
    i32::MIN as i64 - 1,
    i64::MAX,
    i64::MIN,
    9_007_199_254_740_993,
];

fn int() -> BoxedStrategy<Json> {
    prop_oneof![
        4 => (-3i64..12).prop_map(Json::from),
        2 => select(EDGE_INTS).prop_map(Json::from),
        1 => Just(Json::from(u64::MAX)),
        1 => any::<i64>().prop_map(Json::from),
    ]
    .boxed()
}

fn float() -> BoxedStrategy<Json> {
    prop_oneof![
        select(
            &[
                0.5,
                -0.0,
                3.0,
                -2.5,
                1e20,
                -1e20,
                1e308,
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                5e-324,
                0.1
            ][..]
        )
        .prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
    ]
    .boxed()
}

fn raw() -> BoxedStrategy<Json> {
    (0..RAW.len())
        .prop_map(|i| Json::String(format!("\u{1}RAW{i}")))
        .boxed()
}

fn scalar() -> BoxedStrategy<Json> {
    prop_oneof![
        1 => Just(Json::Null),
        1 => any::<bool>().prop_map(Json::from),
        3 => int(),
        1 => float(),
        1 => raw(),
        4 => word().prop_map(Json::from),
        2 => select(DATES).prop_map(Json::from),
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(PATHS).prop_map(|(p, _)| p.to_owned()),
        1 => select(OPERATORS).prop_map(str::to_owned),
        1 => word(),
    ]
    .boxed()
}

/// Any JSON value, a few levels deep.
fn any_json() -> BoxedStrategy<Json> {
    scalar()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                proptest::collection::vec((key(), inner), 0..4)
                    .prop_map(|kv| Json::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A relative date object of filters.md §5.4, good or bad.
fn relative_date() -> BoxedStrategy<Json> {
    (
        select(
            &[
                "today",
                "yesterday",
                "thisWeek",
                "lastMonth",
                "nextQuarter",
                "thisYear",
                "past",
                "next",
                "eon",
                "",
            ][..],
        ),
        proptest::option::of(select(
            &["day", "week", "month", "quarter", "year", "eon"][..],
        )),
        proptest::option::of(prop_oneof![int(), float(), word().prop_map(Json::from)]),
        proptest::option::of(select(
            &["+08:00", "-05:30", "+99:00", "Europe/Paris", ""][..],
        )),
    )
        .prop_map(|(ty, unit, number, tz)| {
            let mut o = Map::new();
            o.insert("type".into(), json!(ty));
            if let Some(u) = unit {
                o.insert("unit".into(), json!(u));
            }
            if let Some(n) = number {
                o.insert("number".into(), n);
            }
            if let Some(tz) = tz {
                o.insert("timezone".into(), json!(tz));
            }
            Json::Object(o)
        })
        .boxed()
}

/// A list of `item`s: empty, short, or long.
fn list(item: BoxedStrategy<Json>) -> BoxedStrategy<Json> {
    prop_oneof![
        4 => proptest::collection::vec(item.clone(), 0..4).prop_map(Json::Array),
        1 => proptest::collection::vec(item, 50..300).prop_map(Json::Array),
    ]
    .boxed()
}

/// An operand that has a chance of suiting a field of `kind`.
fn plausible(kind: Kind) -> BoxedStrategy<Json> {
    let one = match kind {
        Kind::Str => prop_oneof![3 => word().prop_map(Json::from), 1 => int()].boxed(),
        Kind::Int => prop_oneof![
            4 => int(),
            1 => select(NUMBERISH).prop_map(Json::from),
            1 => float()
        ]
        .boxed(),
        Kind::Float => prop_oneof![float(), int()].boxed(),
        Kind::Bool => prop_oneof![
            any::<bool>().prop_map(Json::from),
            select(&["true", "false", "1", "0", "yes", ""][..]).prop_map(Json::from),
            (0i64..2).prop_map(Json::from),
        ]
        .boxed(),
        Kind::Date | Kind::Time => prop_oneof![
            6 => select(DATES).prop_map(Json::from),
            1 => relative_date(),
            1 => int(),
        ]
        .boxed(),
        Kind::Json | Kind::Unknown | Kind::Relation => any_json(),
        Kind::Array => list(prop_oneof![word().prop_map(Json::from), int()].boxed()),
    };
    let long = match kind {
        // A URL holds at most 64 KiB.
        Kind::Str => long_word(6000).prop_map(Json::from).boxed(),
        _ => one.clone(),
    };
    prop_oneof![
        6 => one.clone(),
        1 => long,
        1 => Just(Json::Null),
        2 => list(one.clone()),
        1 => (one.clone(), one).prop_map(|(a, b)| json!([a, b])),
        1 => any_json(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Filters.

/// The paths of [`PATHS`] that exist.
fn known_path() -> BoxedStrategy<(&'static str, Kind)> {
    select(PATHS)
        .prop_filter("a known path", |(_, kind)| !matches!(kind, Kind::Unknown))
        .boxed()
}

/// The operators filters.md §3 lists for a field of `kind`.
fn operators_for(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Str => &[
            "$eq",
            "$ne",
            "$in",
            "$notIn",
            "$includes",
            "$notIncludes",
            "$startsWith",
            "$notStartsWith",
            "$endWith",
            "$notEndWith",
            "$like",
            "$notLike",
            "$iLike",
            "$notILike",
            "$empty",
            "$notEmpty",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
        ],
        Kind::Int | Kind::Float => &[
            "$eq",
            "$ne",
            "$in",
            "$notIn",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$between",
            "$notBetween",
            "$empty",
            "$notEmpty",
        ],
        Kind::Bool => &["$eq", "$ne", "$isTruly", "$isFalsy", "$empty", "$notEmpty"],
        Kind::Date => &[
            "$dateOn",
            "$dateNotOn",
            "$dateBefore",
            "$dateNotBefore",
            "$dateAfter",
            "$dateNotAfter",
            "$dateBetween",
            "$eq",
            "$ne",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$between",
            "$empty",
            "$notEmpty",
        ],
        Kind::Time => &[
            "$eq",
            "$ne",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$empty",
            "$notEmpty",
        ],
        Kind::Array => &[
            "$match",
            "$notMatch",
            "$anyOf",
            "$noneOf",
            "$empty",
            "$notEmpty",
            "$arrayEmpty",
            "$arrayNotEmpty",
        ],
        Kind::Json => &["$eq", "$ne", "$empty", "$notEmpty", "$in"],
        Kind::Relation => &["$exists", "$notExists"],
        Kind::Unknown => OPERATORS,
    }
}

/// An operand of the shape `op` takes, of the type of `kind`.
fn operand(kind: Kind, op: &'static str) -> BoxedStrategy<Json> {
    let one = match kind {
        Kind::Str => word().prop_map(Json::from).boxed(),
        Kind::Int => prop_oneof![4 => (-3i64..12).prop_map(Json::from), 1 => int()].boxed(),
        Kind::Float => prop_oneof![float(), (-3i64..12).prop_map(Json::from)].boxed(),
        Kind::Bool => any::<bool>().prop_map(Json::from).boxed(),
        Kind::Date => {
            prop_oneof![8 => select(DATES).prop_map(Json::from), 1 => relative_date()].boxed()
        }
        Kind::Time => select(&["12:30:00", "00:00", "23:59:59", "12:30:00.5"][..])
            .prop_map(Json::from)
            .boxed(),
        Kind::Array => prop_oneof![
            word().prop_map(Json::from),
            (-3i64..12).prop_map(Json::from)
        ]
        .boxed(),
        Kind::Json => prop_oneof![
            word().prop_map(Json::from),
            (-3i64..12).prop_map(Json::from),
            any::<bool>().prop_map(Json::from),
            Just(Json::Null),
        ]
        .boxed(),
        Kind::Relation | Kind::Unknown => any::<bool>().prop_map(Json::from).boxed(),
    };
    match op {
        "$in" | "$notIn" | "$anyOf" | "$noneOf" | "$match" | "$notMatch" => {
            proptest::collection::vec(one, 0..5)
                .prop_map(Json::Array)
                .boxed()
        }
        "$between" | "$notBetween" => (one.clone(), one).prop_map(|(a, b)| json!([a, b])).boxed(),
        "$empty" | "$notEmpty" | "$arrayEmpty" | "$arrayNotEmpty" | "$exists" | "$notExists"
        | "$isTruly" | "$isFalsy" => any::<bool>().prop_map(Json::from).boxed(),
        "$like" | "$notLike" | "$iLike" | "$notILike" => {
            "[a-cA-C%_\\\\]{0,5}".prop_map(Json::from).boxed()
        }
        "$dateBetween" => prop_oneof![
            select(
                &[
                    "[2023-01-01,2023-01-05]",
                    "(2023,2024]",
                    "[2023-01-01T00:00:00Z,2023-02-01)"
                ][..]
            )
            .prop_map(Json::from),
            (select(DATES), select(DATES)).prop_map(|(a, b)| json!([a, b])),
        ]
        .boxed(),
        _ => one,
    }
}

/// A condition on a known path with an operator that applies to it: what a client would
/// send, so that it reaches the database.
fn clean_leaf() -> BoxedStrategy<Json> {
    known_path()
        .prop_flat_map(|(path, kind)| {
            select(operators_for(kind))
                .prop_flat_map(move |op| (Just(path), Just(op), operand(kind, op), 0..4u8))
        })
        .prop_map(|(path, op, operand, form)| match form {
            0 if op == "$eq" => json!({ path: operand }),
            1 => json!({ format!("{path}.{op}"): operand }),
            2 => {
                let mut value = json!({ op: operand });
                for segment in path.rsplit('.') {
                    value = json!({ segment: value });
                }
                value
            }
            _ => json!({ path: { op: operand } }),
        })
        .boxed()
}

/// A condition with anything in it: unknown paths and operators, wrong operands.
fn hostile_leaf() -> BoxedStrategy<Json> {
    let operator = prop_oneof![
        4 => select(OPERATORS),
        1 => select(UNKNOWN_OPERATORS),
    ];
    let typed = select(PATHS)
        .prop_flat_map(move |(path, kind)| (Just(path), operator.clone(), plausible(kind), 0..6u8));
    prop_oneof![
        8 => typed.prop_map(|(path, op, operand, form)| match form {
            // Implicit equality.
            0 => json!({ path: operand }),
            // The dotted operator.
            1 => json!({ format!("{path}.{op}"): operand }),
            // The path as nested objects.
            2 => {
                let mut value = json!({ op: operand });
                for segment in path.rsplit('.') {
                    value = json!({ segment: value });
                }
                value
            }
            // Several operators on one path.
            3 => json!({ path: { op: operand, "$ne": null } }),
            // An operator holding operators.
            4 => json!({ path: { op: { "$eq": operand } } }),
            _ => json!({ path: { op: operand } }),
        }),
        1 => (key(), any_json()).prop_map(|(k, v)| json!({ k: v })),
        1 => select(&["author", "comments", "labels", "title", "comments.post"][..])
            .prop_flat_map(|path| {
                (Just(path), select(&["$exists", "$notExists"][..]), any_json())
            })
            .prop_map(|(path, op, v)| json!({ format!("{path}.{op}"): v })),
    ]
    .boxed()
}

/// Members of several filters in one object (AND-ed).
fn merged(items: Vec<Json>) -> Json {
    let mut merged = Map::new();
    for item in items {
        if let Json::Object(o) = item {
            merged.extend(o);
        }
    }
    Json::Object(merged)
}

/// A well-formed filter of clean conditions, `$and`/`$or` nested a few levels.
fn clean_filter() -> BoxedStrategy<Json> {
    clean_leaf()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                3 => (select(&["$and", "$or"][..]), proptest::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(g, items)| json!({ g: items })),
                1 => proptest::collection::vec(inner, 2..4).prop_map(merged),
            ]
        })
        .boxed()
}

/// A filter with `$and`/`$or` in usual and odd shapes, and hostile conditions.
fn filter() -> BoxedStrategy<Json> {
    prop_oneof![2 => clean_leaf(), 1 => hostile_leaf()]
        .prop_recursive(4, 24, 4, |inner| {
            let group = select(&["$and", "$or"][..]);
            prop_oneof![
                6 => (group.clone(), proptest::collection::vec(inner.clone(), 0..4))
                    .prop_map(|(g, items)| json!({ g: items })),
                3 => proptest::collection::vec(inner.clone(), 2..4).prop_map(merged),
                // A group given an object, a scalar, or elements that are not filters.
                1 => (group.clone(), inner.clone()).prop_map(|(g, f)| json!({ g: f })),
                1 => (group.clone(), proptest::collection::vec(prop_oneof![inner.clone(), scalar(), Just(json!([])), Just(json!({}))], 1..4))
                    .prop_map(|(g, items)| json!({ g: items })),
                1 => (group.clone(), inner.clone()).prop_map(|(g, f)| json!({ g: [[f]] })),
                // A group under a field.
                1 => (group.clone(), select(PATHS), inner.clone())
                    .prop_map(|(g, (path, _), f)| json!({ path: { g: [f] } })),
                // A group inside a relation.
                1 => (group, inner).prop_map(|(g, f)| json!({ "author": { g: [f] } })),
            ]
        })
        .boxed()
}

/// A filter nested `depth` groups deep around a leaf.
fn deep_filter() -> BoxedStrategy<Json> {
    (
        prop_oneof![3 => 1usize..64, 1 => 64usize..200],
        clean_leaf(),
    )
        .prop_map(|(depth, mut f)| {
            for level in 0..depth {
                let g = if level % 2 == 0 { "$and" } else { "$or" };
                f = json!({ g: [f] });
            }
            f
        })
        .boxed()
}

/// A wide `$or`/`$and` or a long operand list.
fn wide_filter() -> BoxedStrategy<Json> {
    prop_oneof![
        (
            select(&["$and", "$or"][..]),
            proptest::collection::vec(clean_leaf(), 20..1050)
        )
            .prop_map(|(g, items)| json!({ g: items })),
        (
            known_path(),
            select(
                &[
                    "$in",
                    "$notIn",
                    "$includes",
                    "$notIncludes",
                    "$anyOf",
                    "$noneOf",
                    "$match",
                    "$startsWith"
                ][..]
            )
        )
            .prop_flat_map(|((path, kind), op)| {
                (
                    Just(path),
                    Just(op),
                    proptest::collection::vec(plausible_one(kind, false), 100..1050),
                )
            })
            .prop_map(|(path, op, items)| json!({ path: { op: items } })),
    ]
    .boxed()
}

fn any_filter() -> BoxedStrategy<Json> {
    prop_oneof![
        16 => clean_filter(),
        8 => filter(),
        1 => deep_filter(),
        1 => wide_filter(),
        1 => any_json(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Query strings.

/// A JSON text with the raw literals put in.
fn text_of(value: &Json) -> String {
    let mut text = value.to_string();
    if text.contains("\\u0001RAW") {
        for (i, literal) in RAW.iter().enumerate().rev() {
            text = text.replace(&format!("\"\\u0001RAW{i}\""), literal);
        }
    }
    text
}

/// `value` as qs brackets: `filter[title][$eq]=a`.
fn brackets(prefix: &str, value: &Json, out: &mut Vec<(String, String)>) {
    match value {
        Json::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                brackets(&format!("{prefix}[{}]", enc(k)), v, out);
            }
        }
        Json::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                brackets(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Json::String(s) => out.push((prefix.to_owned(), enc(s))),
        Json::Null => out.push((prefix.to_owned(), String::new())),
        other => out.push((prefix.to_owned(), enc(&text_of(other)))),
    }
}

/// Breaks a JSON text: cut short, a stray byte, or a known bad form.
fn malformed() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        (any_json(), any::<prop::sample::Index>()).prop_map(|(v, at)| {
            let text = text_of(&json!({ "title": v }));
            let cut = at.index(text.len().max(1));
            text.as_bytes()[..cut].to_vec()
        }),
        (
            any_json(),
            any::<prop::sample::Index>(),
            select(&[b'}', b']', b',', b':', b'"', 0xff, 0, b'\\'][..])
        )
            .prop_map(|(v, at, byte)| {
                let mut bytes = text_of(&json!([v])).into_bytes();
                let at = at.index(bytes.len());
                bytes.insert(at, byte);
                bytes
            }),
        select(
            &[
                "{\"a\":}",
                "[1,]",
                "{'title':'x'}",
                "NaN",
                "{\"title\":NaN}",
                "{\"title\":\"\\ud800\"}",
                "{\"title\":\"\\x41\"}",
                "{\"a\":1}{\"b\":2}",
                "\u{feff}{\"title\":\"x\"}",
                "{\"title\":\"x\",\"title\":5}",
                "{\"title\":1e999999}",
                "[",
                "}",
                "null",
                "true",
                "\"x\"",
                "42",
                "{\"author\":{\"name\":",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        (1usize..2000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        Just(b"\xff\xfe\x00{".to_vec()),
    ]
    .boxed()
}

fn filter_param() -> BoxedStrategy<Vec<(String, String)>> {
    prop_oneof![
        16 => any_filter().prop_map(|f| vec![("filter".to_owned(), enc(&text_of(&f)))]),
        2 => prop_oneof![clean_filter(), filter()].prop_map(|f| {
            let mut out = Vec::new();
            brackets("filter", &f, &mut out);
            out
        }),
        1 => malformed().prop_map(|b| vec![("filter".to_owned(), enc(&String::from_utf8_lossy(&b)))]),
        1 => select(&["", "null", "[]", "%22x%22", "%zz", "%ff", "{}", "%7B%7D%7D", "filter", "%7B%22title%22%3A%22%00%22%7D"][..])
            .prop_map(|v| vec![("filter".to_owned(), v.to_owned())]),
        1 => (filter(), filter()).prop_map(|(a, b)| vec![
            ("filter".to_owned(), enc(&text_of(&a))),
            ("filter".to_owned(), enc(&text_of(&b))),
        ]),
    ]
    .boxed()
}

/// Fields of `posts`, for `sort`, `fields`, `except`, `whitelist`, `blacklist` and
/// `filterKeys`.
const OWN_FIELDS: &[&str] = &[
    "id",
    "title",
    "body",
    "code",
    "score",
    "big",
    "rating",
    "price",
    "ok",
    "day",
    "at",
    "local",
    "clock",
    "meta",
    "tags",
    "ref",
    "authorId",
    "createdAt",
    "updatedAt",
];

/// Paths through relations, for `appends`, `fields`, `sort` (to-one) and
/// `updateAssociationValues`.
const RELATION_PATHS: &[&str] = &[
    "author",
    "author.name",
    "comments",
    "comments.content",
    "comments.post",
    "comments.post.author",
    "labels",
    "labels.name",
    "comments(sort[]=-id)",
    "comments(sort=-content)",
];

/// What `sort` takes: fields and paths through to-one relations.
const SORTABLE: &[&str] = &[
    "id",
    "title",
    "score",
    "rating",
    "price",
    "ok",
    "day",
    "at",
    "local",
    "clock",
    "code",
    "createdAt",
    "author.name",
    "author.age",
    "author.id",
];

/// What `fields`, `whitelist` and `blacklist` take.
const FIELDS_AND_PATHS: &[&str] = &[
    "id",
    "title",
    "body",
    "score",
    "ok",
    "day",
    "at",
    "meta",
    "tags",
    "authorId",
    "author",
    "author.name",
    "comments",
    "comments.content",
    "labels",
];

/// Names no parameter accepts, or only some do.
const BAD_NAMES: &[&str] = &[
    "author.nope",
    "comments.content",
    "labels.name",
    "comments.post.comments.post.comments.post",
    "labels.posts",
    "comments(sort=-nope)",
    "comments(fields=content)",
    "comments(",
    "author()",
    "meta.a",
    "nope",
    "",
    "-",
    "--title",
    "+title",
    " title",
    "title,",
    ",",
    "id; DROP TABLE posts; --",
    "🙂",
    "$eq",
    "__proto__",
];

/// A list of names as `a,b`, `a[]=…`, an indexed form or a JSON array: mostly `good` ones,
/// descending or not for `sort`.
fn names_param(
    param: &'static str,
    good: &'static [&'static str],
) -> BoxedStrategy<Vec<(String, String)>> {
    let name = prop_oneof![
        16 => select(good).prop_map(str::to_owned),
        1 => select(BAD_NAMES).prop_map(str::to_owned),
        1 => word(),
    ];
    let names = proptest::collection::vec((name, any::<bool>()), 0..4).prop_map(move |names| {
        names
            .into_iter()
            .map(|(n, desc)| {
                if desc && param == "sort" {
                    format!("-{n}")
                } else {
                    n
                }
            })
            .collect::<Vec<_>>()
    });
    (
        names,
        prop_oneof![6 => Just(0u8), 3 => Just(1), 1 => Just(2), 1 => Just(3)],
    )
        .prop_map(move |(names, form)| match form {
            0 => vec![(param.to_owned(), enc(&names.join(",")))],
            1 => names
                .iter()
                .map(|n| (format!("{param}[]"), enc(n)))
                .collect(),
            2 => names
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{param}[{i}]"), enc(n)))
                .collect(),
            _ => vec![(param.to_owned(), enc(&json!(names).to_string()))],
        })
        .boxed()
}

/// `page`, `pageSize` or `filterByTk`: usually a small number, sometimes not.
fn value_param(param: &'static str) -> BoxedStrategy<Vec<(String, String)>> {
    prop_oneof![
        12 => (1u32..9).prop_map(move |n| vec![(param.to_owned(), n.to_string())]),
        4 => select(NUMBERISH).prop_map(move |v| vec![(param.to_owned(), enc(v))]),
        1 => word().prop_map(move |v| vec![(param.to_owned(), enc(&v))]),
        2 => proptest::collection::vec(prop_oneof![3 => (1u32..9).prop_map(|n| n.to_string()), 1 => select(NUMBERISH).prop_map(str::to_owned)], 0..4).prop_map(move |vs| {
            vs.iter().map(|v| (format!("{param}[]"), enc(v))).collect()
        }),
        1 => (select(&["id", "title", "nope", ""][..]), select(NUMBERISH))
            .prop_map(move |(k, v)| vec![(format!("{param}[{k}]"), enc(v))]),
    ]
    .boxed()
}

/// Query parameters of reads and writes, each present or not.
fn query() -> BoxedStrategy<Vec<(String, String)>> {
    let opt = |s: BoxedStrategy<Vec<(String, String)>>, p: f64| {
        proptest::option::weighted(p, s).prop_map(Option::unwrap_or_default)
    };
    (
        (
            opt(filter_param(), 0.75),
            opt(names_param("sort", SORTABLE), 0.3),
            opt(names_param("fields", FIELDS_AND_PATHS), 0.15),
            opt(names_param("appends", RELATION_PATHS), 0.25),
            opt(names_param("except", OWN_FIELDS), 0.1),
        ),
        (
            opt(value_param("page"), 0.15),
            opt(value_param("pageSize"), 0.15),
            opt(
                select(&["true", "false", "0", "1", "", "no", "%00"][..])
                    .prop_map(|v| vec![("paginate".to_owned(), v.to_owned())])
                    .boxed(),
                0.15,
            ),
            opt(value_param("filterByTk"), 0.15),
            opt(
                prop_oneof![
                    Just(vec![("simplePaginate".to_owned(), "true".to_owned())]),
                    Just(vec![("a[b][c][d][e][f][g][h]".to_owned(), "1".to_owned())]),
                    Just(vec![("filter[".to_owned(), "1".to_owned())]),
                    Just(vec![("__proto__[x]".to_owned(), "1".to_owned())]),
                    Just(vec![("&&".to_owned(), "=".to_owned())]),
                    Just(vec![
                        ("pageSize".to_owned(), "1".to_owned()),
                        ("pageSize".to_owned(), "2".to_owned())
                    ]),
                ]
                .boxed(),
                0.05,
            ),
        ),
    )
        .prop_map(|((f, s, fi, a, e), (p, ps, pg, tk, odd))| {
            [f, s, fi, a, e, p, ps, pg, tk, odd].concat()
        })
        .boxed()
}

/// `filterKeys`, `whitelist`, `blacklist` and `updateAssociationValues` of the writes.
/// `filterKeys` is likely for `firstOrCreate`/`updateOrCreate`, which need it.
fn write_query(action: &str) -> BoxedStrategy<Vec<(String, String)>> {
    let opt = |s: BoxedStrategy<Vec<(String, String)>>, p: f64| {
        proptest::option::weighted(p, s).prop_map(Option::unwrap_or_default)
    };
    let keyed = matches!(action, "firstOrCreate" | "updateOrCreate");
    (
        opt(filter_param(), 0.3),
        opt(value_param("filterByTk"), if keyed { 0.1 } else { 0.5 }),
        opt(
            names_param("filterKeys", OWN_FIELDS),
            if keyed { 0.9 } else { 0.05 },
        ),
        opt(names_param("whitelist", FIELDS_AND_PATHS), 0.1),
        opt(names_param("blacklist", FIELDS_AND_PATHS), 0.1),
        opt(names_param("updateAssociationValues", RELATION_PATHS), 0.1),
        opt(names_param("appends", RELATION_PATHS), 0.05),
    )
        .prop_map(|(a, b, c, d, e, f, g)| [a, b, c, d, e, f, g].concat())
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Bodies.

/// A value for `key` of a body: usually of its type, sometimes anything.
fn write_value(kind: Kind) -> BoxedStrategy<Json> {
    match kind {
        Kind::Relation => relation_value(),
        Kind::Array => prop_oneof![
            3 => list(prop_oneof![word().prop_map(Json::from), int()].boxed()),
            1 => any_json(),
        ]
        .boxed(),
        kind => prop_oneof![
            12 => plausible_one(kind, true),
            3 => any_json(),
            1 => raw(),
        ]
        .boxed(),
    }
}

/// One value of the type of `kind`; strings may be `long`.
fn plausible_one(kind: Kind, long: bool) -> BoxedStrategy<Json> {
    match kind {
        Kind::Str if long => prop_oneof![8 => word(), 1 => long_word(70_000)]
            .prop_map(Json::from)
            .boxed(),
        Kind::Str => word().prop_map(Json::from).boxed(),
        Kind::Int => int(),
        Kind::Float => prop_oneof![float(), int()].boxed(),
        Kind::Bool => any::<bool>().prop_map(Json::from).boxed(),
        Kind::Date | Kind::Time => select(DATES).prop_map(Json::from).boxed(),
        _ => any_json(),
    }
}

/// A record of `people`, `comments` or `labels` nested in a post: right or wrong.
fn nested_record() -> BoxedStrategy<Json> {
    proptest::collection::vec(
        (
            select(
                &[
                    ("id", Kind::Int),
                    ("name", Kind::Str),
                    ("age", Kind::Int),
                    ("content", Kind::Str),
                    ("postId", Kind::Int),
                    ("nope", Kind::Unknown),
                    ("posts", Kind::Unknown),
                    ("post", Kind::Unknown),
                    ("author", Kind::Unknown),
                ][..],
            ),
            any::<u8>(),
        )
            .prop_flat_map(|((k, kind), _)| (Just(k), plausible_one(kind, false))),
        0..4,
    )
    .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    .boxed()
}

/// A value for `author`, `comments`, `labels` or `post`: records, keys, pairs, or the
/// wrong shape.
fn relation_value() -> BoxedStrategy<Json> {
    let item = prop_oneof![
        3 => nested_record(),
        2 => int(),
        1 => word().prop_map(Json::from),
        1 => (int(), nested_record()).prop_map(|(k, r)| json!([k, r])),
        1 => Just(Json::Null),
        1 => nested_record().prop_map(|r| json!({ "author": r, "post": { "author": r } })),
    ]
    .boxed();
    prop_oneof![
        3 => item.clone(),
        3 => proptest::collection::vec(item.clone(), 0..4).prop_map(Json::Array),
        1 => proptest::collection::vec(item, 100..300).prop_map(Json::Array),
        1 => any_json(),
    ]
    .boxed()
}

fn record() -> BoxedStrategy<Json> {
    proptest::collection::vec(
        select(WRITE_KEYS).prop_flat_map(|(k, kind)| (Just(k), write_value(kind))),
        0..7,
    )
    .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    .boxed()
}

/// A record a client would send to `posts`, `people`, `comments` or `labels`: known
/// fields of the right type, relations in one of their shapes.
fn clean_record() -> BoxedStrategy<Json> {
    let relation = prop_oneof![
        (
            select(&["author"][..]),
            prop_oneof![
                (1i64..5).prop_map(Json::from),
                word().prop_map(|n| json!({ "name": n })),
                (1i64..5).prop_map(|id| json!({ "id": id })),
                Just(Json::Null),
            ]
        ),
        (
            select(&["comments"][..]),
            proptest::collection::vec(
                prop_oneof![
                    word().prop_map(|c| json!({ "content": c })),
                    (1i64..6).prop_map(Json::from),
                ],
                0..3
            )
            .prop_map(Json::Array)
        ),
        (
            select(&["labels"][..]),
            proptest::collection::vec(
                prop_oneof![
                    word().prop_map(|n| json!({ "name": n })),
                    (1i64..4).prop_map(Json::from),
                ],
                0..3
            )
            .prop_map(Json::Array)
        ),
        (
            select(&["post"][..]),
            prop_oneof![
                (1i64..6).prop_map(Json::from),
                word().prop_map(|t| json!({ "title": t })),
            ]
        ),
    ];
    let field = prop_oneof![
        6 => select(WRITE_KEYS)
            .prop_filter("a field", |(_, kind)| !matches!(kind, Kind::Relation | Kind::Unknown))
            .prop_flat_map(|(k, kind)| (Just(k), clean_value(k, kind))),
        1 => relation,
    ];
    proptest::collection::vec(field, 0..5)
        .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
        .boxed()
}

/// A value of the right type for the field `key`.
fn clean_value(key: &str, kind: Kind) -> BoxedStrategy<Json> {
    match (key, kind) {
        ("meta", _) => any_json(),
        ("tags", _) => proptest::collection::vec(
            prop_oneof![word().prop_map(Json::from), (0i64..5).prop_map(Json::from)],
            0..4,
        )
        .prop_map(Json::Array)
        .boxed(),
        ("ref", _) => Just(json!("3f1d6a4e-7b7c-4e0f-9a55-5c3b7f1f2d10")).boxed(),
        ("day", _) => select(&["2023-01-02", "2024-02-29", "1999-12-31"][..])
            .prop_map(Json::from)
            .boxed(),
        ("at" | "createdAt" | "updatedAt", _) => select(
            &[
                "2023-01-02T12:00:00Z",
                "2023-01-02T12:00:00.123+02:00",
                "2023-01-02",
            ][..],
        )
        .prop_map(Json::from)
        .boxed(),
        ("local", _) => select(&["2023-01-02 12:00:00", "2023-01-02T12:00:00"][..])
            .prop_map(Json::from)
            .boxed(),
        ("clock", _) => select(&["12:30:00", "00:00:00", "23:59:59"][..])
            .prop_map(Json::from)
            .boxed(),
        ("id" | "authorId" | "postId", _) => (1i64..9).prop_map(Json::from).boxed(),
        ("price", _) => prop_oneof![float(), Just(json!("12.50"))].boxed(),
        (_, Kind::Int) => prop_oneof![4 => (-100i64..100).prop_map(Json::from), 1 => int()].boxed(),
        (_, kind) => plausible_one(kind, true),
    }
}

fn body() -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        10 => clean_record().prop_map(|r| Some(text_of(&r).into_bytes())),
        5 => record().prop_map(|r| Some(text_of(&r).into_bytes())),
        1 => proptest::collection::vec(clean_record(), 0..4).prop_map(|rs| Some(text_of(&json!(rs)).into_bytes())),
        1 => proptest::collection::vec(record(), 0..4).prop_map(|rs| Some(text_of(&json!(rs)).into_bytes())),
        1 => any_json().prop_map(|v| Some(text_of(&v).into_bytes())),
        2 => malformed().prop_map(Some),
        1 => Just(None),
        1 => Just(Some(Vec::new())),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Requests.

/// One generated request.
#[derive(Clone)]
struct Req {
    method: Method,
    resource: String,
    action: String,
    index: Option<String>,
    query: Vec<(String, String)>,
    content_type: Option<&'static str>,
    timezone: Option<&'static str>,
    anonymous: bool,
    body: Option<Vec<u8>>,
}

impl Req {
    fn path(&self) -> String {
        let mut path = format!("/api/{}", self.resource);
        if !self.action.is_empty() {
            path.push(':');
            path.push_str(&self.action);
        }
        if let Some(index) = &self.index {
            path.push('/');
            path.push_str(index);
        }
        if !self.query.is_empty() {
            path.push('?');
            let pairs: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            path.push_str(&pairs.join("&"));
        }
        path
    }

    /// Whether the action may change data: anything but a read.
    fn writes(&self) -> bool {
        !matches!(self.action.as_str(), "list" | "get")
    }
}

/// `text` with each run of more than 16 equal characters written `<c>{×n}`, so a long
/// generated string does not hide the rest of a failing request.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let mut n = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            n += 1;
        }
        if n > 16 {
            out.push(c);
            out.push_str(&format!("{{×{n}}}"));
        } else {
            out.extend(std::iter::repeat_n(c, n));
        }
    }
    out
}

/// How a failure prints the request: what a `curl` needs.
impl fmt::Debug for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, squeeze(&self.path()))?;
        if let Some(ct) = self.content_type {
            write!(f, "\n  Content-Type: {ct}")?;
        }
        if let Some(tz) = self.timezone {
            write!(f, "\n  X-Timezone: {tz}")?;
        }
        if self.anonymous {
            write!(f, "\n  (anonymous)")?;
        }
        if let Some(body) = &self.body {
            let text = squeeze(&String::from_utf8_lossy(body));
            let shown: String = text.chars().take(20_000).collect();
            write!(f, "\n  body ({} bytes): {shown}", body.len())?;
        }
        Ok(())
    }
}

/// A key in a path: a known one, a hostile one, or nothing.
fn index() -> BoxedStrategy<String> {
    prop_oneof![
        16 => (1i64..9).prop_map(|n| n.to_string()),
        2 => select(NUMBERISH).prop_map(enc),
        1 => word().prop_map(|w| enc(&w)),
        1 => select(&["%zz", "%ff", "%252F", "a%2Fb", "%00", "_"][..]).prop_map(str::to_owned),
    ]
    .boxed()
}

/// `posts` most of the time, another collection, a relation resource, or nothing known.
fn resource() -> BoxedStrategy<String> {
    prop_oneof![
        16 => Just("posts".to_owned()),
        3 => select(&["people", "comments", "labels"][..]).prop_map(str::to_owned),
        5 => (index(), select(&["comments", "labels", "author"][..]))
            .prop_map(|(i, r)| format!("posts/{i}/{r}")),
        1 => index().prop_map(|i| format!("comments/{i}/post")),
        1 => prop_oneof![
            select(&["nope", "posts_nope", "_manifold_data_sources", "Posts", "po%73ts", "%zz", "posts.comments"][..])
                .prop_map(str::to_owned),
            (index(), select(&["posts/", "people/", "comments/"][..]), select(&["nope", "posts", "author", ""][..]))
                .prop_map(|(i, a, r)| format!("{a}{i}/{r}")),
        ],
    ]
    .boxed()
}

fn request() -> BoxedStrategy<Req> {
    let read = (
        resource(),
        select(&["list", "get"][..]),
        proptest::option::weighted(0.3, index()),
        query(),
    )
        .prop_map(|(resource, action, index, query)| Req {
            method: Method::GET,
            resource,
            action: action.to_owned(),
            index,
            query,
            content_type: None,
            timezone: None,
            anonymous: false,
            body: None,
        });
    let write = select(
        &[
            "create",
            "update",
            "destroy",
            "firstOrCreate",
            "updateOrCreate",
        ][..],
    )
    .prop_flat_map(|action| {
        (
            resource(),
            Just(action),
            proptest::option::weighted(0.2, index()),
            write_query(action),
            body(),
        )
    })
    .prop_map(|(resource, action, index, query, body)| Req {
        method: Method::POST,
        resource,
        action: action.to_owned(),
        index,
        query,
        content_type: Some("application/json"),
        timezone: None,
        anonymous: false,
        body,
    });
    let link = (
        (index(), select(&["comments", "labels", "author"][..])),
        select(&["add", "remove", "set", "toggle"][..]),
        write_query("add"),
        prop_oneof![
            3 => relation_value().prop_map(|v| Some(text_of(&v).into_bytes())),
            1 => body(),
        ],
    )
        .prop_map(|((i, r), action, query, body)| Req {
            method: Method::POST,
            resource: format!("posts/{i}/{r}"),
            action: action.to_owned(),
            index: None,
            query,
            content_type: Some("application/json"),
            timezone: None,
            anonymous: false,
            body,
        });
    let odd = (
        resource(),
        select(
            &[
                "",
                "list",
                "get",
                "create",
                "destroy",
                "count",
                "nope",
                "list:list",
                "%zz",
                "LIST",
                "%6Cist",
            ][..],
        ),
        select(
            &[
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ][..],
        ),
        proptest::option::weighted(0.5, index()),
        query(),
        body(),
    )
        .prop_map(|(resource, action, method, index, query, body)| Req {
            method,
            resource,
            action: action.to_owned(),
            index,
            query,
            content_type: Some("application/json"),
            timezone: None,
            anonymous: false,
            body,
        });
    (
        prop_oneof![10 => read, 7 => write, 2 => link, 1 => odd]
            // What a URL can hold (http's limit; servers allow far less).
            .prop_filter("URL too long", |r| r.path().len() < 60_000),
        proptest::option::weighted(
            0.1,
            select(
                &[
                    "+08:00",
                    "-05:30",
                    "Z",
                    "+99:99",
                    "Asia/Tokyo",
                    "garbage",
                    "",
                    "+14:00",
                ][..],
            ),
        ),
        proptest::option::weighted(
            0.08,
            select(
                &[
                    "text/plain",
                    "application/json; charset=latin1",
                    "application/x-www-form-urlencoded",
                    "application/xml",
                    "",
                    "ünicode",
                ][..],
            ),
        ),
        proptest::bool::weighted(0.08),
    )
        .prop_map(|(mut req, timezone, content_type, anonymous)| {
            req.timezone = timezone;
            if req.body.is_some() && content_type.is_some() {
                req.content_type = content_type;
            }
            req.anonymous = anonymous;
            req
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------
// The running service.

struct Fuzz {
    t: TestApp,
    /// Every row of every table the requests may change, as the API lists them.
    snapshot: BTreeMap<String, Json>,
    tables: Vec<String>,
    /// How many answers had each status, for the summary.
    statuses: BTreeMap<u16, u32>,
}

impl Fuzz {
    async fn start() -> Self {
        let t = TestApp::new().await;
        t.collection(json!({"name": "people", "fields": [
            {"name": "name", "type": "string", "unique": true},
            {"name": "age", "type": "integer"}
        ]}))
        .await;
        t.collection(json!({"name": "labels", "fields": [{"name": "name", "type": "string"}]}))
            .await;
        t.collection(json!({"name": "posts", "fields": [
            {"name": "title", "type": "string"},
            {"name": "body", "type": "text"},
            {"name": "code", "type": "string", "unique": true},
            {"name": "score", "type": "integer"},
            {"name": "big", "type": "bigInt"},
            {"name": "rating", "type": "double"},
            {"name": "price", "type": "decimal"},
            {"name": "ok", "type": "boolean"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "local", "type": "datetimeNoTz"},
            {"name": "clock", "type": "time"},
            {"name": "meta", "type": "json"},
            {"name": "tags", "type": "array"},
            {"name": "ref", "type": "uuid"},
            {"name": "author", "type": "belongsTo", "target": "people"},
            {"name": "labels", "type": "belongsToMany", "target": "labels"}
        ]}))
        .await;
        t.collection(json!({"name": "comments", "fields": [
            {"name": "content", "type": "string"},
            {"name": "post", "type": "belongsTo", "target": "posts"}
        ]}))
        .await;
        let r = t
            .post(
                "/api/dataSourcesCollections/main.posts/fields:create",
                json!({"name": "comments", "type": "hasMany", "target": "comments", "foreignKey": "postId"}),
            )
            .await;
        assert_eq!(r.status, 200, "posts.comments: {:?}", r.body);
        let r = t.get("/api/collections:get/posts").await;
        let through = r.data()["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == json!("labels")))
            .and_then(|f| f["through"].as_str())
            .unwrap_or_else(|| panic!("a junction for posts.labels: {:?}", r.body))
            .to_owned();
        let mut tables: Vec<String> = TABLES.iter().map(|s| (*s).to_owned()).collect();
        tables.push(through);
        let mut f = Self {
            t,
            snapshot: BTreeMap::new(),
            tables,
            statuses: BTreeMap::new(),
        };
        f.seed().await;
        f.snapshot = f.read_all().await;
        f
    }

    /// Rows for the generated keys (1 to 8) and filters to find.
    async fn seed(&self) {
        let t = &self.t;
        t.insert(
            "people",
            json!([{"name": "ann", "age": 30}, {"name": "bo"}, {"name": "cy", "age": -1}]),
        )
        .await;
        t.insert("labels", json!([{"name": "x"}, {"name": "y"}]))
            .await;
        t.insert(
            "posts",
            json!([
                {"title": "p1", "body": "b", "score": 1, "big": 9_007_199_254_740_993_i64, "rating": 0.5,
                 "price": "1.25", "ok": true, "day": "2023-01-02", "at": "2023-01-02T12:00:00Z",
                 "local": "2023-01-02 12:00:00", "clock": "12:30:00", "meta": {"a": {"b": 1}},
                 "tags": ["x", 1], "ref": "3f1d6a4e-7b7c-4e0f-9a55-5c3b7f1f2d10", "code": "c1",
                 "authorId": 1, "labels": [1, 2]},
                {"title": "p2", "score": 2, "ok": false, "meta": [1, 2], "tags": [], "authorId": 2},
                {"title": "", "meta": "s"},
                {"title": "p4", "score": -3, "meta": null, "tags": ["y"], "authorId": 1, "labels": [2]},
                {}
            ]),
        )
        .await;
        t.insert(
            "comments",
            json!([{"content": "c1", "postId": 1}, {"content": "c2", "postId": 1}, {"content": "c3", "postId": 2}]),
        )
        .await;
    }

    async fn read_all(&self) -> BTreeMap<String, Json> {
        let mut all = BTreeMap::new();
        for table in &self.tables {
            let r = self
                .t
                .get(&format!("/api/{table}:list?paginate=false"))
                .await;
            assert_eq!(r.status, 200, "listing {table}: {:?}", r.body);
            all.insert(table.clone(), r.data().clone());
        }
        all
    }

    fn rows(&self, table: &str) -> usize {
        self.snapshot
            .get(table)
            .and_then(Json::as_array)
            .map_or(0, Vec::len)
    }

    /// Sends `req` and checks the answer.
    async fn check(&mut self, req: &Req) -> Result<(), TestCaseError> {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = req.content_type {
            headers.push(("content-type", ct));
        }
        if let Some(tz) = req.timezone {
            headers.push(("x-timezone", tz));
        }
        if req.anonymous {
            headers.push(("authorization", ""));
        }
        let r = self
            .t
            .send(req.method.clone(), &req.path(), &headers, req.body.clone())
            .await;
        *self.statuses.entry(r.status).or_default() += 1;
        let fail = |what: &str, r: &Reply| {
            TestCaseError::fail(format!(
                "{what}\n  request: {req:?}\n  answer: {} {}",
                r.status, r.body
            ))
        };
        if r.status >= 500 {
            return Err(fail("a 5xx", &r));
        }
        if (400..500).contains(&r.status) {
            let errors = r.body["errors"].as_array();
            let shaped = errors.is_some_and(|errors| {
                !errors.is_empty()
                    && errors
                        .iter()
                        .all(|e| e["message"].as_str().is_some_and(|m| !m.trim().is_empty()))
            });
            if !shaped {
                return Err(fail(
                    "a 4xx without {\"errors\":[{\"message\":…}]} and a message",
                    &r,
                ));
            }
        }
        if req.writes() {
            let now = self.read_all().await;
            if (400..500).contains(&r.status) && now != self.snapshot {
                let changed: Vec<&String> = now
                    .keys()
                    .filter(|k| now.get(*k) != self.snapshot.get(*k))
                    .collect();
                let message = format!(
                    "a write answered {} changed {changed:?}\n  request: {req:?}\n  answer: {}",
                    r.status, r.body
                );
                self.snapshot = now;
                return Err(TestCaseError::fail(message));
            }
            self.snapshot = now;
            self.replenish().await;
        }
        Ok(())
    }

    /// Puts rows back when the generated destroys have emptied a table, so later requests
    /// still find something.
    async fn replenish(&mut self) {
        if self.rows("posts") < 3 || self.rows("people") < 2 || self.rows("comments") < 2 {
            let t = &self.t;
            for (table, row) in [
                ("people", json!({"age": 5})),
                (
                    "posts",
                    json!({"title": "again", "authorId": null, "score": 7}),
                ),
                (
                    "posts",
                    json!({"title": "again", "labels": [{"name": "z"}]}),
                ),
                ("comments", json!({"content": "again"})),
                ("comments", json!({"content": "again too"})),
            ] {
                if self.rows(table) < 3 {
                    let r = t.post(&format!("/api/{table}:create"), row).await;
                    // 409: a generated key took the largest id; the table stays as it is.
                    assert!(
                        matches!(r.status, 200 | 409),
                        "{table}:create failed: {:?}",
                        r.body
                    );
                }
            }
            self.snapshot = self.read_all().await;
        }
    }
}

fn run(backend: Backend) {
    let seed = std::env::var("MANIFOLD_TEST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let cases = std::env::var("MANIFOLD_TEST_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CASES);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fuzz = std::cell::RefCell::new(rt.block_on(on_backend(backend, Fuzz::start())));
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // The seed reproduces a run; a file of past failures would only add cases that
        // the seed already makes.
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..Config::default()
    });
    let sent = std::cell::Cell::new(0u32);
    let started = std::time::Instant::now();
    let outcome = runner.run(&request(), |req| {
        sent.set(sent.get() + 1);
        rt.block_on(fuzz.borrow_mut().check(&req))
    });
    if let Err(e) = outcome {
        panic!("{backend:?}, MANIFOLD_TEST_FUZZ_SEED={seed}: {e}");
    }
    let f = fuzz.borrow();
    println!(
        "fuzz {backend:?}: {} requests in {:.1?} (seed {seed}); statuses {:?}; rows left: {:?}",
        sent.get(),
        started.elapsed(),
        f.statuses,
        f.tables
            .iter()
            .map(|t| (t.as_str(), f.rows(t)))
            .collect::<Vec<_>>()
    );
    assert!(sent.get() >= cases, "only {} requests ran", sent.get());
}

mod the_service_survives_generated_requests {
    use super::*;

    #[test]
    fn sqlite() {
        run(Backend::Sqlite);
    }

    #[test]
    fn postgres() {
        run(Backend::Postgres);
    }

    #[test]
    fn mariadb() {
        run(Backend::MariaDb);
    }
}
