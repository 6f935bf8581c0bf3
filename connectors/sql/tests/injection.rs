//! Nothing from a request reaches SQL text: hostile strings as filter values, for every
//! operator and every dialect, end up only among the bound parameters.

use manifold_core::filter::parse_filter;
use manifold_core::params::Params;
use manifold_core::query::FindOptions;
use manifold_core::repository::{WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_mssql::MssqlDialect;
use manifold_mysql::MySqlDialect;
use manifold_postgres::PostgresDialect;
use manifold_sql::{Dialect, compile};
use manifold_sqlite::SqliteDialect;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// Every SQL connector's dialect.
const DIALECTS: [&dyn Dialect; 4] = [
    &PostgresDialect,
    &MySqlDialect,
    &SqliteDialect,
    &MssqlDialect,
];

/// Every hostile string carries this marker; it must never appear in SQL text.
const MARK: &str = "Zq9x";

fn collection() -> Collection {
    let mut id = Field::new("id", FieldType::BigInt);
    id.primary_key = true;
    Collection::new(
        "posts",
        TableName::new("posts"),
        vec![
            id,
            Field::new("title", FieldType::String),
            Field::new("body", FieldType::Text),
            Field::new("meta", FieldType::Json),
            Field::new("tags", FieldType::Array),
        ],
    )
    .expect("valid")
}

fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("`".to_owned()),
        Just("]".to_owned()),
        Just("\\".to_owned()),
        Just(";".to_owned()),
        Just("--".to_owned()),
        Just("/*".to_owned()),
        Just("%".to_owned()),
        Just("_".to_owned()),
        Just("$1".to_owned()),
        Just("?".to_owned()),
        Just("@P1".to_owned()),
        Just("\0".to_owned()),
        Just(" OR 1=1".to_owned()),
        Just("); DROP TABLE posts; --".to_owned()),
        "\\PC{0,6}",
    ];
    proptest::collection::vec(pieces, 0..6)
        .prop_map(|p| format!("{}{MARK}{}", p.join(""), p.join("")))
}

fn operator() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "$eq",
            "$ne",
            "$in",
            "$notIn",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$includes",
            "$notIncludes",
            "$startsWith",
            "$notStartsWith",
            "$endWith",
            "$notEndWith",
        ][..],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_values_are_always_bound(
        op in operator(),
        value in hostile(),
        field in proptest::sample::select(&["title", "body"][..]),
        as_list in any::<bool>(),
    ) {
        let c = collection();
        let takes_list = !matches!(op, "$gt" | "$gte" | "$lt" | "$lte");
        let operand = if as_list && takes_list { json!([value.clone(), "x"]) } else { json!(value.clone()) };
        let filter = json!({ field: { op: operand } });
        let parsed = parse_filter(&c, &filter).expect("values of the right type are accepted");
        let options = FindOptions { filter: parsed.clone(), limit: Some(10), ..FindOptions::default() };
        let values = WriteValues::from_json(
            &c,
            &json!({ "title": value, "meta": { "k": value } }),
            WriteKind::Update,
            &WriteFilter::default(),
            "values",
        )
        .expect("valid values");
        for dialect in DIALECTS {
            for sql in [
                compile::select(dialect, &c, &options),
                compile::count(dialect, &c, parsed.as_ref()),
                compile::update(dialect, &c, &values, parsed.as_ref(), None),
                compile::delete(dialect, &c, parsed.as_ref()),
                compile::insert(dialect, &c, &values, None),
            ] {
                prop_assert!(!sql.text.contains(MARK), "{dialect:?}: {}", sql.text);
                prop_assert!(!sql.params.is_empty());
            }
        }
    }

    #[test]
    fn hostile_names_and_operators_are_refused_before_any_sql(
        name in hostile(),
        op in hostile(),
    ) {
        let c = collection();
        for filter in [
            json!({ name.clone(): 1 }),
            json!({ "title": { format!("${op}"): 1 } }),
            json!({ "$or": [{ name.clone(): { "$eq": 1 } }] }),
        ] {
            let err = parse_filter(&c, &filter).expect_err("unknown names are refused");
            prop_assert_eq!(err.kind(), manifold_core::ErrorKind::BadRequest);
        }
        let params = Params::from_map(
            json!({ "sort": format!("-{name}") }).as_object().cloned().unwrap_or_default(),
        );
        prop_assert!(FindOptions::from_params(&c, &params).is_err());
        let params = Params::from_map(
            json!({ "fields": [name] }).as_object().cloned().unwrap_or_default(),
        );
        prop_assert!(FindOptions::from_params(&c, &params).is_err());
    }
}

#[test]
fn a_json_filter_value_is_bound_too() {
    let c = collection();
    let value = Json::String(format!("'{MARK}"));
    let parsed =
        parse_filter(&c, &json!({ "meta": { "$eq": { "a": value } } })).expect("json equality");
    let options = FindOptions {
        filter: parsed,
        ..FindOptions::default()
    };
    for dialect in DIALECTS {
        assert!(!compile::select(dialect, &c, &options).text.contains(MARK));
    }
}

#[test]
fn lock_keys_are_bound_never_written_into_the_text() {
    let key = "posts'; DROP TABLE posts; --";
    for dialect in DIALECTS {
        let lock = dialect.key_lock(key, std::time::Duration::from_secs(3));
        for sql in [&lock.before_begin, &lock.after_begin, &lock.release]
            .into_iter()
            .flatten()
        {
            assert!(!sql.text.contains("DROP"), "{dialect:?}: {}", sql.text);
        }
        if let Some(lock) = dialect.session_lock(key, std::time::Duration::from_secs(2)) {
            for sql in [&lock.acquire, &lock.release] {
                assert!(!sql.text.contains("DROP"), "{dialect:?}: {}", sql.text);
            }
            assert_eq!(lock.acquire.params[0], lock.release.params[0]);
        }
    }
    // The databases that serve as the main one have a session lock for its migrations.
    assert!(
        PostgresDialect
            .session_lock(key, std::time::Duration::ZERO)
            .is_some()
    );
    assert!(
        MySqlDialect
            .session_lock(key, std::time::Duration::ZERO)
            .is_some()
    );
    assert!(
        SqliteDialect
            .session_lock(key, std::time::Duration::ZERO)
            .is_none()
    );
}
