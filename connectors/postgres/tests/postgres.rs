//! The PostgreSQL connector against a real server.
//!
//! Each test creates its own database `manifold_pg_<random>` through
//! `postgres://postgres@127.0.0.1:5432/postgres` (or `MANIFOLD_TEST_POSTGRES_URL`) and drops
//! it afterwards, also when the test fails. A missing server fails the test: see
//! /work/shared/testing.md to start one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use manifold_core::connector::{CollectionDefinition, Connector};
use manifold_core::data_source::DataSourceFactory;
use manifold_core::error::{Error, ErrorKind};
use manifold_core::filter::parse_filter;
use manifold_core::query::{FindOptions, parse_sort};
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_postgres::{PostgresConnector, PostgresFactory, PostgresOptions, map_sqlx, prepare};
use serde_json::{Value as Json, json};

mod common;
use common::*;

async fn collection(connector: &PostgresConnector, name: &str) -> Arc<Collection> {
    let all = connector.introspect().await.expect("introspect");
    Arc::new(
        all.into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("collection {name} not introspected")),
    )
}

fn repo(connector: &PostgresConnector, collection: &Arc<Collection>) -> Arc<dyn Repository> {
    connector.repository(collection.clone())
}

fn values(collection: &Collection, kind: WriteKind, v: Json) -> WriteValues {
    WriteValues::from_json(collection, &v, kind, &WriteFilter::default(), "values")
        .expect("valid values")
}

fn find(collection: &Collection, filter: Json, sort: &[&str]) -> FindOptions {
    let sort: Vec<String> = sort.iter().map(|s| (*s).to_owned()).collect();
    FindOptions {
        filter: parse_filter(collection, &filter).expect("valid filter"),
        sort: parse_sort(collection, &sort).expect("valid sort"),
        ..FindOptions::default()
    }
}

fn field<'a>(collection: &'a Collection, name: &str) -> &'a Field {
    collection
        .field(name)
        .unwrap_or_else(|| panic!("field {name} missing"))
}

fn ids(rows: &[Record]) -> Vec<i64> {
    rows.iter()
        .map(|r| r["id"].as_i64().expect("numeric id"))
        .collect()
}

async fn create_one(repo: &Arc<dyn Repository>, v: Json) -> Record {
    let c = repo.collection().clone();
    repo.create(&[values(&c, WriteKind::Create, v)])
        .await
        .expect("create")
        .remove(0)
}

async fn create_err(repo: &Arc<dyn Repository>, v: Json) -> Error {
    let c = repo.collection().clone();
    repo.create(&[values(&c, WriteKind::Create, v)])
        .await
        .expect_err("create must fail")
}

const ALL_TYPES: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE everything (
    id serial PRIMARY KEY,
    v varchar(40), c char(3), t text, si smallint, i integer, bi bigint,
    r real, d double precision, n numeric(30, 2), n2 numeric, b boolean,
    dt date, tstz timestamptz, ts timestamp, tm time,
    j json, jb jsonb, u uuid, by bytea,
    ta text[], ia int4[], ma mood[], m mood, iv interval, ip inet,
    email varchar(100) NOT NULL UNIQUE,
    required integer NOT NULL,
    defaulted integer NOT NULL DEFAULT 3
);
CREATE TABLE ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
CREATE TABLE pairs (a integer, b text, note text, PRIMARY KEY (a, b));
CREATE TABLE keyless (code text UNIQUE, x integer);
CREATE VIEW everything_view AS SELECT id, v FROM everything;
"#;

#[tokio::test]
async fn introspection_maps_every_type_keys_uniques_and_views() {
    let db = TestDb::create().await;
    db.exec(ALL_TYPES).await;
    let connector = db.connect(json!({})).await;
    let all = connector.introspect().await.expect("introspect");
    let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        ["everything", "everything_view", "ident", "keyless", "pairs"]
    );

    let e = &all[0];
    assert_eq!(
        e.table(),
        &TableName {
            schema: Some("public".into()),
            name: "everything".into()
        }
    );
    let expected = [
        ("id", FieldType::Integer, "integer"),
        ("v", FieldType::String, "character varying(40)"),
        ("c", FieldType::String, "character(3)"),
        ("t", FieldType::Text, "text"),
        ("si", FieldType::Integer, "smallint"),
        ("i", FieldType::Integer, "integer"),
        ("bi", FieldType::BigInt, "bigint"),
        ("r", FieldType::Float, "real"),
        ("d", FieldType::Double, "double precision"),
        ("n", FieldType::Decimal, "numeric(30,2)"),
        ("n2", FieldType::Decimal, "numeric"),
        ("b", FieldType::Boolean, "boolean"),
        ("dt", FieldType::Date, "date"),
        ("tstz", FieldType::DateTime, "timestamp with time zone"),
        ("ts", FieldType::DateTimeNoTz, "timestamp without time zone"),
        ("tm", FieldType::Time, "time without time zone"),
        ("j", FieldType::Json, "json"),
        ("jb", FieldType::Json, "jsonb"),
        ("u", FieldType::Uuid, "uuid"),
        ("by", FieldType::Binary, "bytea"),
        ("ta", FieldType::Array, "text[]"),
        ("ia", FieldType::Array, "integer[]"),
        ("ma", FieldType::Array, "mood[]"),
        ("m", FieldType::String, "mood"),
        ("iv", FieldType::String, "interval"),
        ("ip", FieldType::String, "inet"),
        ("email", FieldType::String, "character varying(100)"),
        ("required", FieldType::Integer, "integer"),
        ("defaulted", FieldType::Integer, "integer"),
    ];
    let got: Vec<(&str, FieldType, &str)> = e
        .fields()
        .iter()
        .map(|f| (f.name.as_str(), f.field_type, f.raw_type.as_str()))
        .collect();
    assert_eq!(got, expected, "fields in ordinal order with their types");

    let id = field(e, "id");
    assert!(id.primary_key && id.auto_increment && id.unique && id.allow_null);
    assert!(field(e, "email").unique && !field(e, "email").allow_null);
    assert!(!field(e, "email").primary_key);
    assert!(!field(e, "required").allow_null);
    assert!(
        field(e, "defaulted").allow_null,
        "a default makes it optional"
    );
    assert!(field(e, "v").allow_null && !field(e, "v").unique);
    assert!(!e.is_view);

    let view = &all[1];
    assert!(view.is_view);
    assert_eq!(
        view.single_key().map(|f| f.name.as_str()),
        Some("id"),
        "a view's id column is its filterTargetKey"
    );

    let ident = &all[2];
    let id = field(ident, "id");
    assert!(id.primary_key && id.auto_increment && id.allow_null);
    assert_eq!(id.field_type, FieldType::BigInt);

    let keyless = &all[3];
    assert_eq!(
        keyless.single_key().map(|f| f.name.as_str()),
        Some("code"),
        "without a primary key the single unique column is the key"
    );

    let pairs = &all[4];
    let key: Vec<&str> = pairs.primary_key().map(|f| f.name.as_str()).collect();
    assert_eq!(key, ["a", "b"]);
    assert!(
        !field(pairs, "a").unique,
        "part of a composite key is not unique alone"
    );
    assert_eq!(pairs.to_json()["filterTargetKey"], json!(["a", "b"]));
    connector.close().await;
}

#[tokio::test]
async fn introspection_of_three_hundred_tables_takes_a_fixed_number_of_queries() {
    let db = TestDb::create().await;
    let mut setup = String::new();
    for i in 0..300 {
        setup.push_str(&format!(
            "CREATE TABLE t{i:03} (id bigserial PRIMARY KEY, name varchar(20) UNIQUE, n numeric(10,2), at timestamptz);\n"
        ));
    }
    db.exec(&setup).await;
    let connector = db.connect(json!({"maxConnections": 1})).await;
    let started = Instant::now();
    let all = connector.introspect().await.expect("introspect");
    let elapsed = started.elapsed();
    assert_eq!(all.len(), 300);
    assert!(
        all.iter()
            .all(|c| c.single_key().is_some() && c.field("name").is_some_and(|f| f.unique))
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "introspecting 300 tables took {elapsed:?}"
    );
    // sqlx reports every statement it runs as a `sqlx::query` event; count them for later
    // introspections (the connection is open and its types known by now). A thread-scoped
    // subscriber can miss events while other tests on other threads register tracing
    // callsites at the same moment, so the highest of three counts is taken: a query per
    // table would show in every one of them.
    let mut most = 0;
    for _ in 0..3 {
        let counter = QueryCounter::default();
        let statements = counter.0.clone();
        {
            let _guard = tracing::dispatcher::set_default(&tracing::Dispatch::new(counter));
            connector.introspect().await.expect("introspect again");
        }
        most = most.max(statements.load(Ordering::SeqCst));
    }
    assert_eq!(
        most, 2,
        "one query for columns, one for keys, whatever the number of tables"
    );
    connector.close().await;
}

#[tokio::test]
async fn a_non_default_schema_is_introspected_written_and_its_ddl_lands_there() {
    let db = TestDb::create().await;
    db.exec(
        "CREATE SCHEMA app; \
         CREATE TABLE app.things (id serial PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE public.elsewhere (id serial PRIMARY KEY);",
    )
    .await;
    let connector = db.connect(json!({"schema": "app"})).await;
    assert_eq!(connector.schema(), "app");
    let all = connector.introspect().await.expect("introspect");
    assert_eq!(all.len(), 1, "only the configured schema");
    let things = Arc::new(all.into_iter().next().expect("things"));
    assert_eq!(things.table().schema.as_deref(), Some("app"));
    let r = repo(&connector, &things);
    let row = create_one(&r, json!({"name": "a"})).await;
    assert_eq!(
        row,
        json!({"id": 1, "name": "a"})
            .as_object()
            .cloned()
            .expect("object")
    );
    assert_eq!(r.count(None).await, Ok(1));

    let def = CollectionDefinition::from_json(
        &json!({"name": "made", "fields": [{"name": "x", "type": "integer"}]}),
    )
    .expect("definition");
    let made = connector.create_collection(&def).await.expect("create");
    assert_eq!(made.table().schema.as_deref(), Some("app"));
    let found: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = 'made'",
    )
    .fetch_one(connector.pool())
    .await
    .expect("query");
    assert_eq!(found.0, 1);
    connector.close().await;

    let missing =
        PostgresOptions::from_json(&db.options(json!({"schema": "nope"}))).expect("options");
    let err = PostgresConnector::open(&missing)
        .await
        .err()
        .expect("a missing schema is refused");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message().contains("options.schema"),
        "{}",
        err.message()
    );
}

const POSTS: &str = r#"
CREATE TABLE posts (
    id bigserial PRIMARY KEY,
    title varchar(100) NOT NULL,
    score integer,
    published boolean NOT NULL DEFAULT false,
    "createdAt" timestamptz,
    "updatedAt" timestamptz
);
"#;

#[tokio::test]
async fn the_repository_creates_finds_counts_updates_and_destroys() {
    let db = TestDb::create().await;
    db.exec(POSTS).await;
    let connector = db.connect(json!({})).await;
    let posts = collection(&connector, "posts").await;
    let r = repo(&connector, &posts);

    let first = create_one(&r, json!({"title": "first", "score": 5})).await;
    assert_eq!(first["id"], json!(1));
    assert_eq!(
        first["published"],
        json!(false),
        "RETURNING gives the default"
    );
    assert!(
        first["createdAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );

    let many: Vec<WriteValues> = [
        json!({"title": "b", "score": 3, "published": true}),
        json!({"title": "c", "score": null}),
        json!({"title": "d", "score": 9, "published": true}),
    ]
    .into_iter()
    .map(|v| values(&posts, WriteKind::Create, v))
    .collect();
    let created = r.create(&many).await.expect("create many");
    assert_eq!(ids(&created), [2, 3, 4]);
    assert_eq!(created[1]["score"], Json::Null);

    // One transaction: a failing row leaves nothing behind.
    let bad: Vec<WriteValues> = [json!({"title": "ok"}), json!({"score": 1})]
        .into_iter()
        .map(|v| values(&posts, WriteKind::Create, v))
        .collect();
    let err = r.create(&bad).await.expect_err("second row lacks a title");
    assert_eq!(err.message(), "title cannot be null");
    assert_eq!(r.count(None).await, Ok(4));

    let mut options = find(&posts, json!({"score": {"$gt": 1}}), &["-score"]);
    let rows = r.find(&options).await.expect("find");
    assert_eq!(ids(&rows), [4, 1, 2]);
    options.limit = Some(1);
    options.offset = Some(1);
    assert_eq!(ids(&r.find(&options).await.expect("window")), [1]);
    let nulls_last = find(&posts, json!({}), &["score"]);
    assert_eq!(ids(&r.find(&nulls_last).await.expect("find")), [2, 1, 4, 3]);
    let text = find(&posts, json!({"title": {"$includes": "IRS"}}), &[]);
    assert_eq!(ids(&r.find(&text).await.expect("ilike")), [1]);
    let filter = parse_filter(
        &posts,
        &json!({"$or": [{"published": true}, {"score": null}]}),
    )
    .expect("filter");
    assert_eq!(r.count(filter.as_ref()).await, Ok(3));

    let filter = parse_filter(&posts, &json!({"published": true})).expect("filter");
    let changed = r
        .update(
            filter.as_ref(),
            &values(
                &posts,
                WriteKind::Update,
                json!({"title": "pub", "score": 0}),
            ),
        )
        .await
        .expect("update");
    assert_eq!(ids(&changed), [2, 4], "updated rows come back in key order");
    assert!(
        changed
            .iter()
            .all(|row| row["title"] == json!("pub") && row["score"] == json!(0))
    );

    let gone = parse_filter(&posts, &json!({"id": {"$in": [1, 3]}})).expect("filter");
    assert_eq!(r.destroy(gone.as_ref()).await, Ok(2));
    assert_eq!(r.count(None).await, Ok(2));
    connector.close().await;
}

const ROUND_TRIP: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE rt (
    id bigserial PRIMARY KEY,
    n numeric(40, 2), n_free numeric, bi bigint, i integer, si smallint,
    r real, dp double precision, b boolean,
    tstz timestamptz, ts timestamp, d date, tm time,
    j json, jb jsonb, u uuid, bin bytea,
    v varchar(200), c char(4), t text, m mood,
    ta text[], ia2 integer[], na numeric[], ma mood[], iv interval, ip inet, cidr_ cidr,
    mac macaddr, tz timetz, money_ money, bits bit varying(8), x xml, pt point
);
"#;

#[tokio::test]
async fn every_type_round_trips_exactly_and_compares_in_filters() {
    let db = TestDb::create().await;
    db.exec(ROUND_TRIP).await;
    let connector = db.connect(json!({})).await;
    let rt = collection(&connector, "rt").await;
    let r = repo(&connector, &rt);
    let input = json!({
        "n": "12345678901234567890.12",
        "n_free": "123456789012345678901234567890.000100",
        "bi": "1152921504606846976",
        "i": 2147483647,
        "si": -32768,
        "r": 0.1,
        "dp": 0.1,
        "b": true,
        "tstz": "2023-06-30T12:34:56.789-02:00",
        "ts": "2023-01-02 03:04:05",
        "d": "2023-01-02",
        "tm": "13:14:15",
        "j": {"b": 1, "a": [1, 2, {"c": null}]},
        "jb": {"b": 1, "a": [1, 2, {"c": null}]},
        "u": "6F1C2A9E-0B7D-4C55-9D0E-3A2B1C4D5E6F",
        "bin": "AAEC/w==",
        "v": "héllo 'quoted' \\ back",
        "c": "ab",
        "t": "a long text\nwith lines",
        "m": "happy"
    });
    let row = create_one(&r, input.clone()).await;
    let expected = json!({
        "id": 1,
        "n": "12345678901234567890.12",
        "n_free": "123456789012345678901234567890.000100",
        "bi": "1152921504606846976",
        "i": 2147483647,
        "si": -32768,
        "r": 0.1,
        "dp": 0.1,
        "b": true,
        "tstz": "2023-06-30T14:34:56.789Z",
        "ts": "2023-01-02 03:04:05",
        "d": "2023-01-02",
        "tm": "13:14:15",
        "j": {"b": 1, "a": [1, 2, {"c": null}]},
        "jb": {"a": [1, 2, {"c": null}], "b": 1},
        "u": "6f1c2a9e-0b7d-4c55-9d0e-3a2b1c4d5e6f",
        "bin": "AAEC/w==",
        "v": "héllo 'quoted' \\ back",
        "c": "ab  ",
        "t": "a long text\nwith lines",
        "m": "happy",
        "ta": null, "ia2": null, "na": null, "ma": null, "iv": null, "ip": null,
        "cidr_": null, "mac": null, "tz": null, "money_": null, "bits": null, "x": null,
        "pt": null
    });
    assert_eq!(
        Json::Object(row),
        expected,
        "RETURNING renders the API forms"
    );
    let read = r.find(&FindOptions::default()).await.expect("find");
    assert_eq!(
        Json::Object(read[0].clone()),
        expected,
        "SELECT renders the same"
    );

    // A second row with trailing zeros and the other big-integer edge.
    let small = create_one(
        &r,
        json!({"n": "12.50", "n_free": "0.00001234", "bi": -1152921504606846976_i64}),
    )
    .await;
    assert_eq!(small["n"], json!("12.50"));
    assert_eq!(small["n_free"], json!("0.00001234"));
    assert_eq!(small["bi"], json!("-1152921504606846976"));

    // Every typed value compares correctly against its column.
    for (filter, want) in [
        (json!({"n": "12345678901234567890.12"}), vec![1]),
        (json!({"n": "12.5"}), vec![2]),
        (json!({"n": {"$gt": "100"}}), vec![1]),
        (json!({"bi": "1152921504606846976"}), vec![1]),
        (json!({"si": -32768}), vec![1]),
        (json!({"dp": 0.1}), vec![1]),
        (json!({"b": true}), vec![1]),
        (json!({"tstz": "2023-06-30T14:34:56.789Z"}), vec![1]),
        (
            json!({"tstz": {"$gt": "2023-06-30T16:00:00+02:00"}}),
            vec![1],
        ),
        (json!({"ts": "2023-01-02 03:04:05"}), vec![1]),
        (json!({"d": {"$gte": "2023-01-02"}}), vec![1]),
        (json!({"tm": "13:14:15"}), vec![1]),
        (
            json!({"jb": {"$eq": {"b": 1, "a": [1, 2, {"c": null}]}}}),
            vec![1],
        ),
        (
            json!({"u": "6f1c2a9e-0b7d-4c55-9d0e-3a2b1c4d5e6f"}),
            vec![1],
        ),
        (json!({"u": {"$includes": "0b7d"}}), vec![1]),
        (json!({"v": "héllo 'quoted' \\ back"}), vec![1]),
        (json!({"c": "ab"}), vec![1]),
        (json!({"m": "happy"}), vec![1]),
        (json!({"m": {"$in": ["sad", "happy"]}}), vec![1]),
    ] {
        let rows = r.find(&find(&rt, filter.clone(), &[])).await;
        let rows = rows.unwrap_or_else(|e| panic!("{filter}: {e:?}"));
        assert_eq!(ids(&rows), want, "{filter}");
    }

    // Filters PostgreSQL cannot run as compiled today (no ILIKE on enums, no `=` on
    // `json`, no `''` for a uuid) must be a clean 400 rather than a 500, or work.
    for (filter, want) in [
        (json!({"m": {"$includes": "APP"}}), vec![1]),
        (
            json!({"j": {"$eq": {"b": 1, "a": [1, 2, {"c": null}]}}}),
            vec![1],
        ),
        (json!({"u": {"$empty": true}}), vec![2]),
    ] {
        match r.find(&find(&rt, filter.clone(), &[])).await {
            Ok(rows) => assert_eq!(ids(&rows), want, "{filter}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::BadRequest, "{filter}: {}", e.message()),
        }
    }

    // Types the API cannot write are still read, as their text (or JSON arrays).
    db.exec(
        r#"UPDATE rt SET ta = '{a,NULL,"c d"}', ia2 = '{{1,2},{3,4}}', na = '{1.50,NULL}',
               ma = '{sad,ok}', iv = '1 year 2 mons 3 days 04:05:06.5', ip = '192.168.0.1/24',
               cidr_ = '10.0.0.0/8', mac = '08:00:2b:01:02:03', tz = '04:05:06+02',
               money_ = '12.34', bits = B'101', x = '<a>b</a>', pt = '(1.5,-2)'
           WHERE id = 1"#,
    )
    .await;
    let rows = r
        .find(&find(&rt, json!({"id": 1}), &[]))
        .await
        .expect("find");
    let row = &rows[0];
    assert_eq!(row["ta"], json!(["a", null, "c d"]));
    assert_eq!(row["ia2"], json!([[1, 2], [3, 4]]));
    assert_eq!(row["na"], json!(["1.50", null]));
    assert_eq!(row["ma"], json!(["sad", "ok"]));
    let as_text: (String, String, String, String, String, String, String) = sqlx::query_as(
        "SELECT iv::text, ip::text, cidr_::text, mac::text, tz::text, bits::text, x::text FROM rt WHERE id = 1",
    )
    .fetch_one(connector.pool())
    .await
    .expect("text forms");
    assert_eq!(row["iv"], json!(as_text.0));
    assert_eq!(row["ip"], json!(as_text.1));
    assert_eq!(row["cidr_"], json!(as_text.2));
    assert_eq!(row["mac"], json!(as_text.3));
    assert_eq!(row["tz"], json!(as_text.4));
    assert_eq!(row["bits"], json!(as_text.5));
    assert_eq!(row["x"], json!(as_text.6));
    assert_eq!(row["money_"], json!("12.34"));
    assert_eq!(row["pt"], json!("(1.5,-2)"));
    connector.close().await;
}

#[tokio::test]
async fn null_is_accepted_by_every_column_type_in_any_order() {
    let db = TestDb::create().await;
    db.exec(ROUND_TRIP).await;
    // One connection, so every round meets the statements the earlier ones cached.
    let connector = db.connect(json!({"maxConnections": 1})).await;
    let rt = collection(&connector, "rt").await;
    let r = repo(&connector, &rt);
    let writable = [
        "n", "n_free", "bi", "i", "si", "r", "dp", "b", "tstz", "ts", "d", "tm", "j", "jb", "u",
        "bin", "v", "c", "t", "m",
    ];
    let nulls: serde_json::Map<String, Json> = writable
        .iter()
        .map(|k| ((*k).to_owned(), Json::Null))
        .collect();
    let typed = json!({
        "n": "1.00", "n_free": "2", "bi": 3, "i": 4, "si": 5, "r": 1.5, "dp": 2.5, "b": false,
        "tstz": "2024-01-01T00:00:00Z", "ts": "2024-01-01 00:00:00", "d": "2024-01-01",
        "tm": "00:00:01", "j": [1], "jb": {"k": "v"}, "u": "00000000-0000-0000-0000-000000000001",
        "bin": "AA==", "v": "v", "c": "c", "t": "t", "m": "ok"
    });
    // The same statement text runs with NULLs, then values, then NULLs again: the typed
    // run must not inherit the parameter types PostgreSQL inferred for the NULLs.
    for (i, v) in [
        Json::Object(nulls.clone()),
        typed.clone(),
        Json::Object(nulls.clone()),
        typed,
    ]
    .into_iter()
    .enumerate()
    {
        let row = create_one(&r, v.clone()).await;
        for k in writable {
            if v[k].is_null() {
                assert_eq!(row[k], Json::Null, "round {i}: {k}");
            } else {
                assert!(!row[k].is_null(), "round {i}: {k}");
            }
        }
    }
    let filter = parse_filter(&rt, &json!({"id": 2})).expect("filter");
    let cleared = r
        .update(
            filter.as_ref(),
            &values(&rt, WriteKind::Update, Json::Object(nulls)),
        )
        .await
        .expect("update to null");
    assert!(writable.iter().all(|k| cleared[0][*k].is_null()));
    let empty = find(
        &rt,
        json!({"v": {"$empty": true}, "j": {"$empty": true}}),
        &[],
    );
    assert_eq!(r.find(&empty).await.map(|rows| rows.len()).ok(), Some(3));
    connector.close().await;
}

#[tokio::test]
async fn create_collection_builds_every_creatable_type_then_writes_and_reads() {
    let db = TestDb::create().await;
    let connector = db.connect(json!({})).await;
    let definition = CollectionDefinition::from_json(&json!({
        "name": "things",
        "fields": [
            {"name": "title", "type": "string", "length": 20, "allowNull": false, "unique": true},
            {"name": "body", "type": "text", "defaultValue": "it's \\ here"},
            {"name": "count", "type": "integer", "defaultValue": 7},
            {"name": "big", "type": "bigInt"},
            {"name": "ratio", "type": "float"},
            {"name": "precise", "type": "double"},
            {"name": "price", "type": "decimal", "precision": 12, "scale": 2, "defaultValue": "9.90"},
            {"name": "loose", "type": "decimal"},
            {"name": "done", "type": "boolean", "defaultValue": false},
            {"name": "day", "type": "dateOnly", "defaultValue": "2024-02-29"},
            {"name": "at", "type": "datetime", "defaultValue": "2024-01-01T00:00:00Z"},
            {"name": "wall", "type": "datetimeNoTz"},
            {"name": "clock", "type": "time", "defaultValue": "12:00:00"},
            {"name": "meta", "type": "json", "defaultValue": {"a": "it's"}},
            {"name": "ref", "type": "uuid"},
            {"name": "tags", "type": "array", "defaultValue": ["x"]}
        ]
    }))
    .expect("definition");
    let created = connector
        .create_collection(&definition)
        .await
        .expect("create");
    let types: Vec<(&str, FieldType)> = created
        .fields()
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    assert_eq!(
        types,
        [
            ("id", FieldType::BigInt),
            ("title", FieldType::String),
            ("body", FieldType::Text),
            ("count", FieldType::Integer),
            ("big", FieldType::BigInt),
            ("ratio", FieldType::Float),
            ("precise", FieldType::Double),
            ("price", FieldType::Decimal),
            ("loose", FieldType::Decimal),
            ("done", FieldType::Boolean),
            ("day", FieldType::Date),
            ("at", FieldType::DateTime),
            ("wall", FieldType::DateTimeNoTz),
            ("clock", FieldType::Time),
            ("meta", FieldType::Json),
            ("ref", FieldType::Uuid),
            ("tags", FieldType::Array),
            ("createdAt", FieldType::DateTime),
            ("updatedAt", FieldType::DateTime),
        ]
    );
    let id = field(&created, "id");
    assert!(id.primary_key && id.auto_increment);
    assert_eq!(field(&created, "title").raw_type, "character varying(20)");
    assert!(field(&created, "title").unique && !field(&created, "title").allow_null);
    assert_eq!(field(&created, "price").raw_type, "numeric(12,2)");
    assert!(created.created_at().is_some() && created.updated_at().is_some());

    let created = Arc::new(created);
    let r = repo(&connector, &created);
    let row = create_one(
        &r,
        json!({"title": "one", "big": "1152921504606846976", "ratio": 0.5, "precise": 0.25,
               "loose": "1.000", "wall": "2024-03-01 10:00:00",
               "ref": "00000000-0000-0000-0000-00000000000a", "tags": [1, "two", null]}),
    )
    .await;
    assert_eq!(row["id"], json!(1));
    assert_eq!(row["body"], json!("it's \\ here"));
    assert_eq!(row["count"], json!(7));
    assert_eq!(row["price"], json!("9.90"));
    assert_eq!(row["loose"], json!("1.000"));
    assert_eq!(row["done"], json!(false));
    assert_eq!(row["day"], json!("2024-02-29"));
    assert_eq!(row["at"], json!("2024-01-01T00:00:00.000Z"));
    assert_eq!(row["clock"], json!("12:00:00"));
    assert_eq!(row["meta"], json!({"a": "it's"}));
    assert_eq!(row["tags"], json!([1, "two", null]));
    assert_eq!(row["big"], json!("1152921504606846976"));
    assert!(row["createdAt"].as_str().is_some_and(|s| s.ends_with('Z')));
    let again = r.find(&FindOptions::default()).await.expect("find");
    assert_eq!(again[0], row);

    let err = connector
        .create_collection(&definition)
        .await
        .expect_err("the table exists");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(err.message(), "table already exists");

    connector.drop_collection(&created).await.expect("drop");
    assert!(connector.introspect().await.expect("introspect").is_empty());
    connector.close().await;
}

#[tokio::test]
async fn drop_collection_drops_views_too() {
    let db = TestDb::create().await;
    db.exec(
        "CREATE TABLE base (id int PRIMARY KEY); \
         CREATE VIEW plain AS SELECT id FROM base; \
         CREATE MATERIALIZED VIEW frozen AS SELECT id FROM base;",
    )
    .await;
    let connector = db.connect(json!({})).await;
    for name in ["plain", "frozen"] {
        let view = collection(&connector, name).await;
        assert!(view.is_view, "{name}");
        connector.drop_collection(&view).await.expect("drop view");
    }
    let names: Vec<String> = connector
        .introspect()
        .await
        .expect("introspect")
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(names, ["base"]);
    connector.close().await;
}

#[tokio::test]
async fn constraint_and_value_errors_map_to_400s_without_echoing_values() {
    let db = TestDb::create().await;
    db.exec(
        "CREATE TABLE owners (id serial PRIMARY KEY); \
         CREATE TABLE people (id serial PRIMARY KEY, email varchar(40) NOT NULL UNIQUE, \
            code varchar(3), amount numeric(4, 2), \
            owner integer CONSTRAINT people_owner_fk REFERENCES owners(id));",
    )
    .await;
    let connector = db.connect(json!({})).await;
    let people = collection(&connector, "people").await;
    let r = repo(&connector, &people);
    create_one(&r, json!({"email": "secret@example.com"})).await;

    let err = create_err(&r, json!({"code": "x"})).await;
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "email cannot be null")
    );

    let err = create_err(&r, json!({"email": "secret@example.com"})).await;
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "email already exists")
    );

    let err = create_err(&r, json!({"email": "b@x", "owner": 42})).await;
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message().contains("people_owner_fk"),
        "{}",
        err.message()
    );

    let err = create_err(&r, json!({"email": "c@x", "code": "toolong"})).await;
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message().starts_with("invalid value: "),
        "{}",
        err.message()
    );

    let err = create_err(&r, json!({"email": "d@x", "amount": "12345"})).await;
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(
        err.message().starts_with("invalid value: "),
        "{}",
        err.message()
    );

    let err = create_err(&r, json!({"email": "nul\u{0}byte"})).await;
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{}", err.message());

    // A schema that no longer matches the table: unknown columns and tables.
    let mut stale = people.fields().to_vec();
    stale.push(Field::new("gone", FieldType::Integer));
    let stale =
        Arc::new(Collection::new("people", people.table().clone(), stale).expect("collection"));
    let err = repo(&connector, &stale)
        .find(&FindOptions::default())
        .await
        .expect_err("no such column");
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::BadRequest,
            "Invalid SQL column or table reference"
        )
    );
    let missing = Arc::new(
        Collection::new(
            "ghost",
            TableName::new("ghost"),
            vec![Field::new("id", FieldType::Integer)],
        )
        .expect("collection"),
    );
    let err = repo(&connector, &missing)
        .count(None)
        .await
        .expect_err("no such table");
    assert_eq!(err.message(), "Invalid SQL column or table reference");
    connector.close().await;
}

#[tokio::test]
async fn a_slow_statement_hits_the_statement_timeout() {
    let db = TestDb::create().await;
    db.exec("CREATE VIEW slow AS SELECT 1 AS id, (SELECT 'x'::text FROM pg_sleep(3)) AS s;")
        .await;
    let connector = db.connect(json!({"statementTimeoutMs": 100})).await;
    let slow = collection(&connector, "slow").await;
    let started = Instant::now();
    let err = repo(&connector, &slow)
        .find(&FindOptions::default())
        .await
        .expect_err("the view sleeps past the timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        err.message(),
        "the query took longer than the statement timeout"
    );

    let raw = prepare(&manifold_sql::Sql {
        text: "SELECT pg_sleep(1)".into(),
        params: Vec::new(),
    })
    .execute(connector.pool())
    .await
    .expect_err("pg_sleep past the timeout");
    assert_eq!(map_sqlx(raw).kind(), ErrorKind::Timeout);
    connector.close().await;
}

#[tokio::test]
async fn unreachable_servers_and_bad_logins_are_503s_without_the_password() {
    let db = TestDb::create().await;
    let password = "hunter2-Very-Secret";
    let factory = PostgresFactory;
    assert_eq!(factory.kind(), "postgres");

    let closed_port = json!({
        "host": "127.0.0.1", "port": 1, "database": "x", "username": "postgres",
        "password": password, "acquireTimeoutMs": 300
    });
    let missing_db = json!({
        "url": with_database(&db.url, "manifold_pg_does_not_exist"),
        "password": password, "acquireTimeoutMs": 2000
    });
    let in_url = json!({
        "url": format!("postgres://postgres:{password}@127.0.0.1:1/x"), "acquireTimeoutMs": 300
    });
    for options in [closed_port, missing_db, in_url] {
        let started = Instant::now();
        let err = factory
            .connect(&options)
            .await
            .err()
            .expect("cannot connect");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.message());
        assert!(
            err.message()
                .starts_with("the data source cannot be reached"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains(password), "{}", err.message());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    let err = factory
        .connect(&json!({"host": "h", "database": "d", "username": "u", "password": 5}))
        .await
        .err()
        .expect("bad option");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(err.message().contains("options.password"));

    let connector = factory
        .connect(&db.options(json!({})))
        .await
        .expect("connects");
    assert!(connector.introspect().await.expect("introspect").is_empty());
    connector.close().await;
}

#[tokio::test]
async fn an_exhausted_pool_is_a_503_and_a_closed_one_cannot_be_reached() {
    let db = TestDb::create().await;
    db.exec(POSTS).await;
    let connector = db
        .connect(json!({"maxConnections": 1, "acquireTimeoutMs": 200}))
        .await;
    let posts = collection(&connector, "posts").await;
    let r = repo(&connector, &posts);
    let held = connector
        .pool()
        .acquire()
        .await
        .expect("the only connection");
    let err = r.count(None).await.expect_err("no free connection");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    drop(held);
    assert_eq!(r.count(None).await, Ok(0));

    connector.close().await;
    let err = r.count(None).await.expect_err("closed");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Unavailable, "the data source cannot be reached")
    );
}

#[tokio::test]
async fn options_debug_masks_the_password() {
    let options = PostgresOptions::from_json(&json!({
        "host": "db.internal", "port": "6543", "database": "erp", "username": "reader",
        "password": "p@ss-w0rd!", "schema": "sales", "maxConnections": 3
    }))
    .expect("valid options");
    let shown = format!("{options:?}");
    assert!(!shown.contains("p@ss-w0rd!"), "{shown}");
    assert!(shown.contains("password: Some(\"***\")"), "{shown}");
    assert!(
        shown.contains("host: \"db.internal\"") && shown.contains("port: 6543"),
        "{shown}"
    );
    assert_eq!(options.schema, "sales");
    assert_eq!(options.max_connections, 3);

    let from_url = PostgresOptions::from_json(&json!({"url": "postgresql://reader:p%40ss@db/erp"}))
        .expect("valid url");
    let shown = format!("{from_url:?}");
    assert!(
        !shown.contains("p%40ss") && !shown.contains("p@ss"),
        "{shown}"
    );
    assert!(shown.contains("\"***\""), "{shown}");
}

/// A connector sharing a connection total never has more connections open than its
/// share, however many reads run at once; a shrink waits for reads in flight and closes
/// the idle connections above the new size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connector_stays_within_its_share() {
    use manifold_core::connection_share::ConnectionShare;
    let db = TestDb::create().await;
    db.exec("CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) SELECT 'x' FROM generate_series(1, 2000);")
        .await;
    let share = ConnectionShare::new(8);
    share.resize(3).await;
    let options =
        PostgresOptions::from_json(&db.options(json!({"acquireTimeoutMs": 300}))).expect("options");
    let connector = PostgresConnector::open_sharing(&options, share.clone())
        .await
        .expect("open");
    let table = collection(&connector, "t").await;
    let repository = connector.repository(table);
    let reads = |n: usize| {
        let repository = repository.clone();
        async move {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let repository = repository.clone();
                    tokio::spawn(async move {
                        repository
                            .find(&FindOptions::default())
                            .await
                            .expect("read")
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.expect("task").len(), 2000);
            }
        }
    };
    reads(40).await;
    assert_eq!(
        connector.pool().size(),
        3,
        "the pool grew to the share, no further"
    );
    share.resize(1).await;
    assert_eq!(
        connector.pool().size(),
        1,
        "the shrink closed the idle ones"
    );
    reads(10).await;
    assert_eq!(connector.pool().size(), 1);
    // A share with no place left: a read waits out the acquire timeout and gets the
    // pool's own answer, a 503.
    share.resize(0).await;
    let refused = repository
        .find(&FindOptions::default())
        .await
        .expect_err("no place in the share");
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    connector.close().await;
    assert!(share.is_given_up(), "a closed connector gives its share up");
}
