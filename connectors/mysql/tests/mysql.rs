//! The MySQL/MariaDB connector against a real server (MariaDB 10.11 on these machines).
//!
//! Every test creates its own database `manifold_my_<random>` through
//! `mysql://root@127.0.0.1:3306/mysql` (or `MANIFOLD_TEST_MYSQL_URL`) and drops it when it
//! ends, failed or not. A missing server fails the test: nothing here is skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use manifold_core::connector::{CollectionDefinition, Connector};
use manifold_core::data_source::DataSourceFactory;
use manifold_core::error::ErrorKind;
use manifold_core::filter::parse_filter;
use manifold_core::query::{FindOptions, add_key_tiebreaker, parse_sort};
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, FieldType};
use manifold_mysql::{
    MariaDbDialect, MySqlConnector, MySqlFactory, MySqlOptions, MySqlRepository, ServerFlavor,
    map_sqlx,
};
use manifold_sql::pool::SharedPool;
use serde_json::{Value as Json, json};
use sqlx::AssertSqlSafe;

mod common;
use common::*;

async fn exec(connector: &MySqlConnector, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(connector.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn collection(connector: &MySqlConnector, name: &str) -> Arc<Collection> {
    let all = connector.introspect().await.expect("introspection");
    Arc::new(
        all.into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("collection {name} introspected")),
    )
}

fn repository(connector: &MySqlConnector, collection: &Arc<Collection>) -> MySqlRepository {
    MySqlRepository::new(
        SharedPool::new(connector.pool().clone()),
        collection.clone(),
    )
}

fn values(c: &Collection, v: Json) -> WriteValues {
    WriteValues::from_json(c, &v, WriteKind::Create, &WriteFilter::default(), "values")
        .expect("valid values")
}

fn update_values(c: &Collection, v: Json) -> WriteValues {
    WriteValues::from_json(c, &v, WriteKind::Update, &WriteFilter::default(), "values")
        .expect("valid values")
}

fn options(c: &Collection, filter: Json, sort: &[&str]) -> FindOptions {
    let sort: Vec<String> = sort.iter().map(|s| (*s).to_owned()).collect();
    let mut sort = parse_sort(c, &sort).expect("valid sort");
    add_key_tiebreaker(c, &mut sort);
    FindOptions {
        filter: parse_filter(c, &filter).expect("valid filter"),
        sort,
        ..FindOptions::default()
    }
}

fn column(records: &[Record], name: &str) -> Vec<Json> {
    records
        .iter()
        .map(|r| r.get(name).cloned().unwrap_or(Json::Null))
        .collect()
}

#[tokio::test]
async fn introspection_maps_every_mysql_type_and_finds_keys_uniques_and_views() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    exec(
        &connector,
        "CREATE TABLE all_types (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            t_tinyint1 TINYINT(1), t_tinyint TINYINT, t_smallint SMALLINT,
            t_mediumint MEDIUMINT, t_int INT, t_int_u INT UNSIGNED,
            t_bigint BIGINT, t_bigint_u BIGINT UNSIGNED,
            t_char CHAR(3), t_varchar VARCHAR(20) NOT NULL UNIQUE,
            t_tinytext TINYTEXT, t_text TEXT, t_mediumtext MEDIUMTEXT, t_longtext LONGTEXT,
            t_float FLOAT, t_double DOUBLE, t_decimal DECIMAL(10,2),
            t_bit1 BIT(1), t_boolean BOOLEAN,
            t_date DATE, t_time TIME, t_year YEAR, t_datetime DATETIME, t_timestamp TIMESTAMP NULL,
            t_json JSON, t_enum ENUM('a','b'), t_set SET('x','y'),
            t_blob BLOB, t_binary BINARY(4), t_varbinary VARBINARY(8),
            t_defaulted INT NOT NULL DEFAULT 7, t_required INT NOT NULL,
            t_prefix_unique VARCHAR(50), UNIQUE KEY by_prefix (t_prefix_unique(10)),
            t_pair_a INT, t_pair_b INT, UNIQUE KEY by_pair (t_pair_a, t_pair_b)
        )",
    )
    .await;
    exec(
        &connector,
        "CREATE TABLE pairs (a INT NOT NULL, b VARCHAR(10) NOT NULL, note TEXT, PRIMARY KEY (a, b))",
    )
    .await;
    exec(
        &connector,
        "CREATE TABLE keyless (code VARCHAR(10) NOT NULL UNIQUE, n INT)",
    )
    .await;
    exec(
        &connector,
        "CREATE VIEW v_types AS SELECT id, t_varchar FROM all_types",
    )
    .await;

    let all = connector.introspect().await.expect("introspection");
    let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["all_types", "keyless", "pairs", "v_types"]);

    let c = &all[0];
    assert!(!c.is_view);
    let expected = [
        ("id", FieldType::Integer, "int(11)"),
        ("t_tinyint1", FieldType::Integer, "tinyint(1)"),
        ("t_tinyint", FieldType::Integer, "tinyint(4)"),
        ("t_smallint", FieldType::Integer, "smallint(6)"),
        ("t_mediumint", FieldType::Integer, "mediumint(9)"),
        ("t_int", FieldType::Integer, "int(11)"),
        ("t_int_u", FieldType::Integer, "int(10) unsigned"),
        ("t_bigint", FieldType::BigInt, "bigint(20)"),
        ("t_bigint_u", FieldType::BigInt, "bigint(20) unsigned"),
        ("t_char", FieldType::String, "char(3)"),
        ("t_varchar", FieldType::String, "varchar(20)"),
        ("t_tinytext", FieldType::Text, "tinytext"),
        ("t_text", FieldType::Text, "text"),
        ("t_mediumtext", FieldType::Text, "mediumtext"),
        ("t_longtext", FieldType::Text, "longtext"),
        ("t_float", FieldType::Float, "float"),
        ("t_double", FieldType::Double, "double"),
        ("t_decimal", FieldType::Decimal, "decimal(10,2)"),
        ("t_bit1", FieldType::Boolean, "bit(1)"),
        ("t_boolean", FieldType::Integer, "tinyint(1)"),
        ("t_date", FieldType::Date, "date"),
        ("t_time", FieldType::Time, "time"),
        ("t_year", FieldType::String, "year(4)"),
        ("t_datetime", FieldType::DateTimeNoTz, "datetime"),
        ("t_timestamp", FieldType::DateTime, "timestamp"),
        // MariaDB stores JSON as LONGTEXT CHECK (json_valid(...)).
        ("t_json", FieldType::Json, "longtext"),
        ("t_enum", FieldType::String, "enum('a','b')"),
        ("t_set", FieldType::String, "set('x','y')"),
        ("t_blob", FieldType::Binary, "blob"),
        ("t_binary", FieldType::Binary, "binary(4)"),
        ("t_varbinary", FieldType::Binary, "varbinary(8)"),
        ("t_defaulted", FieldType::Integer, "int(11)"),
        ("t_required", FieldType::Integer, "int(11)"),
    ];
    for (i, (name, field_type, raw)) in expected.iter().enumerate() {
        let f = &c.fields()[i];
        assert_eq!(f.name, *name, "column {i} in ordinal order");
        assert_eq!(f.field_type, *field_type, "{name}");
        // MySQL 8 drops integer display widths and has a real JSON type; MariaDB keeps
        // the widths and stores JSON as longtext.
        let strip = |s: &str| {
            ["(11)", "(20)", "(10)", "(4)", "(6)", "(9)"]
                .iter()
                .fold(s.to_owned(), |s, width| s.replace(width, ""))
        };
        assert!(
            f.raw_type == *raw
                || strip(&f.raw_type) == strip(raw)
                || (*name == "t_json" && f.raw_type == "json"),
            "{name}: {}",
            f.raw_type
        );
    }
    let id = c.field("id").expect("id");
    assert!(id.primary_key && id.auto_increment && id.unique);
    assert_eq!(c.single_key().map(|f| f.name.as_str()), Some("id"));
    let varchar = c.field("t_varchar").expect("t_varchar");
    assert!(varchar.unique && !varchar.allow_null && !varchar.primary_key);
    assert!(
        c.field("t_defaulted").expect("f").allow_null,
        "a default lets it be omitted"
    );
    assert!(!c.field("t_required").expect("f").allow_null);
    assert!(c.field("t_text").expect("f").allow_null);
    assert!(
        !c.field("t_prefix_unique").expect("f").unique,
        "a prefix index"
    );
    assert!(
        !c.field("t_pair_a").expect("f").unique,
        "a two-column index"
    );

    let pairs = &all[2];
    let key: Vec<&str> = pairs.primary_key().map(|f| f.name.as_str()).collect();
    assert_eq!(key, ["a", "b"]);
    assert!(pairs.single_key().is_none());
    assert!(!pairs.field("a").expect("a").unique);

    let keyless = &all[1];
    assert_eq!(
        keyless.single_key().map(|f| f.name.as_str()),
        Some("code"),
        "the only unique column addresses records"
    );

    let view = &all[3];
    assert!(view.is_view);
    assert_eq!(
        view.single_key().map(|f| f.name.as_str()),
        Some("id"),
        "a keyless view with an id column is addressed by it"
    );
    assert_eq!(
        view.field("t_varchar").expect("f").field_type,
        FieldType::String
    );
}

async fn posts(connector: &MySqlConnector) -> Arc<Collection> {
    exec(
        connector,
        "CREATE TABLE posts (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            title VARCHAR(100) NOT NULL,
            score INT NULL,
            status VARCHAR(20) NULL,
            UNIQUE KEY title_unique (title)
        )",
    )
    .await;
    collection(connector, "posts").await
}

#[tokio::test]
async fn create_reads_back_generated_and_explicit_keys_in_one_transaction() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    // MySQL's dialect, whose INSERT returns no rows: created rows are read back by key.
    creates_rows_atomically(repository(&connector, &c), &c).await;
}

#[tokio::test]
async fn create_returns_rows_from_the_insert_on_mariadb() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    assert_eq!(connector.flavor(), ServerFlavor::MariaDb, "the test server");
    let c = posts(&connector).await;
    creates_rows_atomically(repository(&connector, &c).in_dialect(&MariaDbDialect), &c).await;
}

/// One row, several rows with generated and explicit keys, and a failing row that takes
/// the rows before it back.
async fn creates_rows_atomically(repo: MySqlRepository, c: &Collection) {
    let c = c.clone();

    let one = repo
        .create(&[values(&c, json!({"title": "first", "score": 1}))])
        .await
        .expect("create one");
    assert_eq!(
        Json::Object(one[0].clone()),
        json!({"id": 1, "title": "first", "score": 1, "status": null})
    );

    let many = repo
        .create(&[
            values(&c, json!({"title": "second"})),
            values(&c, json!({"title": "third", "score": 3})),
            values(&c, json!({"id": 100, "title": "hundred"})),
        ])
        .await
        .expect("create many");
    assert_eq!(column(&many, "id"), [json!(2), json!(3), json!(100)]);
    assert_eq!(column(&many, "title"), ["second", "third", "hundred"]);

    // A failing row rolls back the rows before it.
    let err = repo
        .create(&[
            values(&c, json!({"title": "kept?"})),
            values(&c, json!({"title": "first"})),
        ])
        .await
        .expect_err("duplicate title");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(repo.count(None).await.expect("count"), 4);
}

#[tokio::test]
async fn find_filters_sorts_with_nulls_last_both_ways_and_windows() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    let repo = repository(&connector, &c);
    repo.create(&[
        values(&c, json!({"title": "50% off", "score": 3})),
        values(&c, json!({"title": "50 percent", "score": 2})),
        values(&c, json!({"title": "a_b", "score": null})),
        values(&c, json!({"title": "axb", "score": 1})),
        values(&c, json!({"title": "Hello World"})),
    ])
    .await
    .expect("seed");

    let titles = |rows: Vec<Record>| column(&rows, "title");
    let desc = repo
        .find(&options(&c, json!({"score": {"$ne": 0}}), &["-score"]))
        .await
        .expect("find");
    assert_eq!(
        column(&desc, "score"),
        [json!(3), json!(2), json!(1), Json::Null, Json::Null]
    );
    let asc = repo
        .find(&options(&c, json!({}), &["score"]))
        .await
        .expect("find");
    assert_eq!(
        column(&asc, "score"),
        [json!(1), json!(2), json!(3), Json::Null, Json::Null]
    );
    assert_eq!(
        column(&asc, "id")[3..],
        [json!(3), json!(5)],
        "the key breaks ties"
    );

    let found = repo
        .find(&options(&c, json!({"title": {"$includes": "50%"}}), &[]))
        .await
        .expect("find");
    assert_eq!(titles(found), ["50% off"], "% matches literally");
    let found = repo
        .find(&options(&c, json!({"title": {"$includes": "a_b"}}), &[]))
        .await
        .expect("find");
    assert_eq!(titles(found), ["a_b"], "_ matches literally");
    let found = repo
        .find(&options(
            &c,
            json!({"title": {"$includes": "HELLO w"}}),
            &[],
        ))
        .await
        .expect("find");
    assert_eq!(titles(found), ["Hello World"], "case-insensitive");
    let found = repo
        .find(&options(&c, json!({"score": {"$includes": "3"}}), &[]))
        .await
        .expect("find");
    assert_eq!(titles(found), ["50% off"], "numbers match as text");

    let found = repo
        .find(&options(
            &c,
            json!({"$or": [{"score": {"$gte": 3}}, {"title": {"$startsWith": "axb"}}]}),
            &["id"],
        ))
        .await
        .expect("find");
    assert_eq!(titles(found), ["50% off", "axb"]);

    let mut window = options(&c, json!({}), &["id"]);
    window.limit = Some(2);
    window.offset = Some(1);
    let page = repo.find(&window).await.expect("find");
    assert_eq!(column(&page, "id"), [json!(2), json!(3)]);
    window.limit = None;
    window.offset = Some(3);
    let rest = repo.find(&window).await.expect("find");
    assert_eq!(column(&rest, "id"), [json!(4), json!(5)]);

    let filter = parse_filter(&c, &json!({"score": {"$notEmpty": true}})).expect("filter");
    assert_eq!(repo.count(filter.as_ref()).await.expect("count"), 3);
    assert_eq!(repo.count(None).await.expect("count"), 5);
}

#[tokio::test]
async fn update_returns_updated_rows_in_key_order_and_destroy_counts() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    let repo = repository(&connector, &c);
    repo.create(&[
        values(&c, json!({"id": 30, "title": "c", "status": "draft"})),
        values(&c, json!({"id": 10, "title": "a", "status": "draft"})),
        values(&c, json!({"id": 20, "title": "b", "status": "published"})),
        values(&c, json!({"id": 40, "title": "d", "status": "draft"})),
    ])
    .await
    .expect("seed");

    // The filter is on the column being changed: the rows must still come back.
    let filter = parse_filter(&c, &json!({"status": "draft"})).expect("filter");
    let updated = repo
        .update(
            filter.as_ref(),
            &update_values(&c, json!({"status": "published", "id": 99})),
        )
        .await
        .expect("update");
    assert_eq!(column(&updated, "id"), [json!(10), json!(30), json!(40)]);
    assert!(column(&updated, "status").iter().all(|s| s == "published"));

    let none = parse_filter(&c, &json!({"status": "draft"})).expect("filter");
    let updated = repo
        .update(none.as_ref(), &update_values(&c, json!({"score": 1})))
        .await
        .expect("update of nothing");
    assert!(updated.is_empty());

    let gone = parse_filter(&c, &json!({"id": {"$in": [10, 40, 77]}})).expect("filter");
    assert_eq!(repo.destroy(gone.as_ref()).await.expect("destroy"), 2);
    assert_eq!(repo.count(None).await.expect("count"), 2);
}

#[tokio::test]
async fn every_type_round_trips_exactly_and_filters_compare_exactly() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    exec(
        &connector,
        "CREATE TABLE vals (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            dec_wide DECIMAL(65,30) NULL, dec_money DECIMAL(20,6) NULL,
            big BIGINT NULL, big_u BIGINT UNSIGNED NULL,
            ts TIMESTAMP(3) NULL, dt DATETIME NULL, d DATE NULL, tm TIME NULL,
            j JSON NULL, u CHAR(36) NULL, flag BIT(1) NULL, tiny TINYINT(1) NULL,
            yr YEAR NULL, en ENUM('red','green') NULL, bin BLOB NULL,
            f FLOAT NULL, db DOUBLE NULL, txt TEXT NULL,
            cs VARCHAR(20) COLLATE utf8mb4_bin NULL
        )",
    )
    .await;
    let c = collection(&connector, "vals").await;
    let repo = repository(&connector, &c);
    let wide = "12345678901234567890123456789012345.123456789012345678901234567890";
    let input = json!({
        "dec_wide": wide,
        "dec_money": "10.100000",
        "big": 1_152_921_504_606_846_976_i64,
        "ts": "2023-01-01T08:00:00.123+08:00",
        "dt": "2023-05-06 07:08:09",
        "d": "2023-05-06",
        "tm": "07:08:09",
        "j": {"a": [1, 2, {"b": null}], "s": "x"},
        "u": "6f1c1c8e-7b4e-4c1e-9f1a-2b3c4d5e6f70",
        "flag": true,
        "tiny": 1,
        "yr": "2024",
        "en": "green",
        "bin": "AAEC/w==",
        "f": 0.1,
        "db": 0.1,
        "txt": "ünïcødé 😀 \\ '",
        "cs": "Case\nSensitive"
    });
    let created = repo
        .create(&[values(&c, input.clone())])
        .await
        .expect("create");
    let mut expected = input.as_object().expect("object").clone();
    expected.insert("id".into(), json!(1));
    expected.insert("big".into(), json!("1152921504606846976"));
    expected.insert("ts".into(), json!("2023-01-01T00:00:00.123Z"));
    expected.insert("big_u".into(), Json::Null);
    for (name, value) in &expected {
        assert_eq!(created[0].get(name), Some(value), "{name}");
    }

    exec(
        &connector,
        "INSERT INTO vals (id, dec_money, big, big_u) VALUES (2, 1.5, -1152921504606846976, 18446744073709551615)",
    )
    .await;
    let rows = repo
        .find(&options(&c, json!({"id": 2}), &[]))
        .await
        .expect("find");
    assert_eq!(rows[0].get("dec_money"), Some(&json!("1.500000")));
    assert_eq!(rows[0].get("big"), Some(&json!("-1152921504606846976")));
    assert_eq!(rows[0].get("big_u"), Some(&json!("18446744073709551615")));

    // Values chrono cannot hold never panic: a zero day reads as null, a TIME beyond a day
    // keeps MySQL's interval form.
    exec(
        &connector,
        "INSERT INTO vals (id, d, tm) VALUES (3, '2023-05-00', '-100:02:03')",
    )
    .await;
    let rows = repo
        .find(&options(&c, json!({"id": 3}), &[]))
        .await
        .expect("find");
    assert_eq!(rows[0].get("d"), Some(&Json::Null));
    assert_eq!(rows[0].get("tm"), Some(&json!("-100:02:03")));

    let count = |filter: Json| {
        let c = c.clone();
        let repo = &repo;
        async move {
            let filter = parse_filter(&c, &filter).expect("filter");
            repo.count(filter.as_ref()).await.expect("count")
        }
    };
    // Decimals compare as decimals, not doubles: the last digit matters.
    assert_eq!(count(json!({"dec_wide": wide})).await, 1);
    let off_by_one = wide.replace("67890123456789012345.1", "67890123456789012345.2");
    assert_eq!(count(json!({"dec_wide": off_by_one})).await, 0);
    assert_eq!(count(json!({"big": "1152921504606846976"})).await, 1);
    assert_eq!(
        count(json!({"big": 1_152_921_504_606_846_977_i64})).await,
        0
    );
    assert_eq!(count(json!({"ts": "2023-01-01T00:00:00.123Z"})).await, 1);
    assert_eq!(
        count(json!({"ts": {"$gt": "2022-12-31T23:00:00-02:00"}})).await,
        0
    );
    assert_eq!(
        count(json!({"dt": {"$lt": "2023-05-06 07:08:10"}})).await,
        1
    );
    assert_eq!(count(json!({"d": "2023-05-06"})).await, 1);
    assert_eq!(count(json!({"flag": true})).await, 1);
    assert_eq!(count(json!({"bin": "AAEC/w=="})).await, 1);
    assert_eq!(count(json!({"en": "GREEN"})).await, 1);
}

#[tokio::test]
async fn create_collection_with_every_creatable_type_then_write_and_read() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let definition = CollectionDefinition::from_json(&json!({
        "name": "everything",
        "fields": [
            {"name": "s", "type": "string", "length": 40, "unique": true, "allowNull": false},
            {"name": "t", "type": "text", "defaultValue": "it's a \\ test"},
            {"name": "i", "type": "integer", "defaultValue": 7},
            {"name": "b", "type": "bigInt"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "m", "type": "decimal", "precision": 12, "scale": 4},
            {"name": "m2", "type": "decimal"},
            {"name": "ok", "type": "boolean", "defaultValue": true},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "wall", "type": "datetimeNoTz"},
            {"name": "tm", "type": "time"},
            {"name": "doc", "type": "json"},
            {"name": "u", "type": "uuid"},
            {"name": "tags", "type": "array"}
        ]
    }))
    .expect("valid definition");
    let created = connector
        .create_collection(&definition)
        .await
        .expect("create collection");
    for requested in &definition.fields {
        let field = created.field(&requested.name).expect("field exists");
        assert_eq!(field.field_type, requested.field_type, "{}", requested.name);
    }
    assert_eq!(created.single_key().map(|f| f.name.as_str()), Some("id"));
    assert!(created.single_key().is_some_and(|f| f.auto_increment));
    assert!(created.created_at().is_some() && created.updated_at().is_some());
    assert!(
        created
            .field("s")
            .is_some_and(|f| f.unique && !f.allow_null)
    );
    // Every DDL type is covered, so nothing creatable was left out.
    for t in FieldType::CREATABLE {
        assert!(
            definition.fields.iter().any(|f| f.field_type == *t),
            "{t} is tested"
        );
    }

    let c = Arc::new(created);
    let repo = connector.repository(c.clone());
    let row = repo
        .create(&[values(
            &c,
            json!({
                "s": "hello", "b": "9007199254740993", "f": 1.5, "d": 2.25,
                "m": "12345678.1234", "m2": 3, "day": "2024-02-29",
                "at": "2024-02-29T23:59:59.999-01:00", "wall": "2024-02-29 12:00:00",
                "tm": "23:59:59", "doc": {"k": ["v"]},
                "u": "6F1C1C8E-7B4E-4C1E-9F1A-2B3C4D5E6F70", "tags": ["x", "y"]
            }),
        )])
        .await
        .expect("write");
    let row = &row[0];
    let expect = json!({
        "id": 1, "s": "hello", "t": "it's a \\ test", "i": 7,
        "b": "9007199254740993", "f": 1.5, "d": 2.25, "m": "12345678.1234",
        "m2": "3.0000000000", "ok": true, "day": "2024-02-29",
        "at": "2024-03-01T00:59:59.999Z", "wall": "2024-02-29 12:00:00", "tm": "23:59:59",
        "doc": {"k": ["v"]}, "u": "6f1c1c8e-7b4e-4c1e-9f1a-2b3c4d5e6f70", "tags": ["x", "y"]
    });
    for (name, value) in expect.as_object().expect("object") {
        assert_eq!(row.get(name), Some(value), "{name}");
    }
    let created_at = row
        .get("createdAt")
        .and_then(Json::as_str)
        .expect("createdAt filled");
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );

    let by_uuid =
        parse_filter(&c, &json!({"u": "6F1C1C8E-7B4E-4C1E-9F1A-2B3C4D5E6F70"})).expect("filter");
    assert_eq!(repo.count(by_uuid.as_ref()).await.expect("count"), 1);

    // Re-introspection sees the same types (the marker comments survive a restart).
    let again = collection(&connector, "everything").await;
    for field in c.fields() {
        assert_eq!(
            again.field(&field.name).map(|f| f.field_type),
            Some(field.field_type),
            "{}",
            field.name
        );
    }

    let err = connector
        .create_collection(&definition)
        .await
        .expect_err("exists");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{}", err.message());

    connector.drop_collection(&c).await.expect("drop");
    let left = connector.introspect().await.expect("introspection");
    assert!(left.iter().all(|c| c.name() != "everything"));
}

#[tokio::test]
async fn drop_collection_drops_views_too() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    exec(
        &connector,
        "CREATE VIEW titles AS SELECT id, title FROM posts",
    )
    .await;
    let view = collection(&connector, "titles").await;
    connector.drop_collection(&view).await.expect("drop view");
    connector.drop_collection(&c).await.expect("drop table");
    assert!(connector.introspect().await.expect("introspect").is_empty());
}

#[tokio::test]
async fn not_null_violations_are_400_naming_the_column() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    let repo = repository(&connector, &c);

    let err = repo
        .create(&[values(&c, json!({"title": null}))])
        .await
        .expect_err("explicit null");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "title cannot be null")
    );
    let err = repo
        .create(&[values(&c, json!({"score": 1}))])
        .await
        .expect_err("missing value without default (1364)");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "title cannot be null")
    );
}

#[tokio::test]
async fn duplicate_values_are_400_naming_the_key_never_the_value() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    let repo = repository(&connector, &c);
    repo.create(&[values(&c, json!({"id": 1, "title": "secret-title"}))])
        .await
        .expect("seed");

    let err = repo
        .create(&[values(&c, json!({"title": "secret-title"}))])
        .await
        .expect_err("duplicate");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "title_unique already exists")
    );
    let err = repo
        .create(&[values(&c, json!({"id": 1, "title": "other"}))])
        .await
        .expect_err("duplicate key");
    assert_eq!(err.message(), "primary key already exists");
    assert!(!err.message().contains("secret"));
}

#[tokio::test]
async fn invalid_values_are_400_naming_the_column() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    exec(
        &connector,
        "CREATE TABLE small (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(3), n TINYINT, d DATE)",
    )
    .await;
    let c = collection(&connector, "small").await;
    let repo = repository(&connector, &c);

    let err = repo
        .create(&[values(&c, json!({"code": "toolong"}))])
        .await
        .expect_err("1406");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "invalid value: code is too long")
    );
    let err = repo
        .create(&[values(&c, json!({"n": 1000}))])
        .await
        .expect_err("1264");
    assert_eq!(err.message(), "invalid value: n is out of range");

    // The repository checks types before MySQL can; raw statements reach 1366 and 1292.
    let raw = |sql: &'static str| {
        let pool = connector.pool().clone();
        async move {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(map_sqlx)
        }
    };
    let err = raw("INSERT INTO small (n) VALUES ('secret-abc')")
        .await
        .expect_err("1366");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::BadRequest, "invalid value: n has the wrong type")
    );
    let err = raw("INSERT INTO small (d) VALUES ('2023-13-45')")
        .await
        .expect_err("1292");
    assert_eq!(
        err.message(),
        "invalid value: d is not a valid value of its type"
    );
}

#[tokio::test]
async fn foreign_key_violations_are_400() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    exec(
        &connector,
        "CREATE TABLE parents (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB",
    )
    .await;
    exec(
        &connector,
        "CREATE TABLE children (id INT AUTO_INCREMENT PRIMARY KEY, parentId INT NOT NULL,
         CONSTRAINT fk_parent FOREIGN KEY (parentId) REFERENCES parents (id)) ENGINE=InnoDB",
    )
    .await;
    let parents = collection(&connector, "parents").await;
    let children = collection(&connector, "children").await;
    let parent_repo = repository(&connector, &parents);
    let child_repo = repository(&connector, &children);

    let err = child_repo
        .create(&[values(&children, json!({"parentId": 42}))])
        .await
        .expect_err("1452");
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::BadRequest,
            "parentId: the referenced record does not exist"
        )
    );
    parent_repo
        .create(&[values(&parents, json!({"name": "p"}))])
        .await
        .expect("parent");
    child_repo
        .create(&[values(&children, json!({"parentId": 1}))])
        .await
        .expect("child");
    let err = parent_repo
        .destroy(
            parse_filter(&parents, &json!({"id": 1}))
                .expect("f")
                .as_ref(),
        )
        .await
        .expect_err("1451");
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::BadRequest,
            "the record is still referenced by children"
        )
    );
}

#[tokio::test]
async fn slow_statements_hit_the_statement_timeout() {
    let db = TestDb::create().await;
    let connector = db.connector_with(json!({"statementTimeoutMs": 300})).await;
    exec(
        &connector,
        "CREATE VIEW slow AS SELECT SLEEP(5) AS s, 1 AS id",
    )
    .await;
    let c = collection(&connector, "slow").await;
    let repo = repository(&connector, &c);
    let started = Instant::now();
    let err = repo
        .find(&FindOptions::default())
        .await
        .expect_err("timed out");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(4));
    // The connection is still good afterwards.
    assert!(
        repository(&connector, &posts(&connector).await)
            .count(None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn unknown_tables_and_columns_are_400() {
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    exec(&connector, "ALTER TABLE posts DROP COLUMN status").await;
    let err = repository(&connector, &c)
        .find(&FindOptions::default())
        .await
        .expect_err("1054");
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::BadRequest,
            "Invalid SQL column or table reference"
        )
    );
    exec(&connector, "DROP TABLE posts").await;
    let err = repository(&connector, &c)
        .count(None)
        .await
        .expect_err("1146");
    assert_eq!(err.message(), "Invalid SQL column or table reference");
}

#[tokio::test]
async fn exhausted_and_closed_pools_are_503() {
    let db = TestDb::create().await;
    let connector = db
        .connector_with(json!({"maxConnections": 1, "acquireTimeoutMs": 300}))
        .await;
    let c = posts(&connector).await;
    let repo = repository(&connector, &c);
    let held = connector
        .pool()
        .acquire()
        .await
        .expect("the only connection");
    let err = repo.count(None).await.expect_err("pool timed out");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.message());
    drop(held);
    assert_eq!(repo.count(None).await.expect("free again"), 0);

    connector.close().await;
    let err = repo.count(None).await.expect_err("closed");
    assert_eq!(
        (err.kind(), err.message()),
        (
            ErrorKind::Unavailable,
            "the data source cannot be reached: the data source is closed"
        )
    );
}

#[tokio::test]
async fn bad_connection_options_are_503_without_the_password() {
    let db = TestDb::create().await;
    let secret = "hunter2-s3cret";
    let admin = admin_url();
    let (_, rest) = admin.split_once("://").expect("scheme");
    let authority = rest.split('/').next().expect("authority");
    let host_port = authority.rsplit('@').next().expect("host");

    let cases = [
        // Nothing listens on port 1.
        json!({"host": "127.0.0.1", "port": 1, "database": db.name, "username": "root",
               "password": secret, "acquireTimeoutMs": 300}),
        // No such user.
        json!({"url": format!("mysql://manifold_nobody:{secret}@{host_port}/{}", db.name)}),
        // No such database.
        json!({"url": format!("{}_missing", db.url()), "password": secret}),
        // TLS demanded where none can be had (the test server has no certificate, and
        // this build may have no TLS backend at all).
        json!({"url": db.url(), "ssl": true}),
    ];
    for options in cases {
        let err = match MySqlFactory::mysql().connect(&options).await {
            Ok(_) => panic!("{options} connected"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.message());
        assert!(
            err.message()
                .starts_with("the data source cannot be reached"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains(secret), "{}", err.message());
        let tested = MySqlFactory::mariadb().test_connection(&options).await;
        assert!(tested.is_err_and(|e| !e.message().contains(secret)));
    }
}

#[tokio::test]
async fn debug_output_masks_the_password() {
    let options = MySqlOptions::from_json(&json!({
        "host": "db.internal", "database": "erp", "username": "app", "password": "p@ss-w0rd!"
    }))
    .expect("valid");
    let shown = format!("{options:?}");
    assert!(!shown.contains("p@ss-w0rd!"), "{shown}");
    assert!(shown.contains("password: \"***\""), "{shown}");
    assert!(shown.contains("db.internal"), "{shown}");
}

#[tokio::test]
async fn factories_serve_both_kinds_and_connect_with_sessions_in_utc() {
    let db = TestDb::create().await;
    assert_eq!(MySqlFactory::mysql().kind(), "mysql");
    assert_eq!(MySqlFactory::mariadb().kind(), "mariadb");
    let connector = MySqlFactory::mariadb()
        .connect(&json!({"url": db.url(), "statementTimeoutMs": 1500}))
        .await
        .expect("connects");
    assert!(connector.introspect().await.expect("introspect").is_empty());
    connector.close().await;

    let connector = db.connector_with(json!({"statementTimeoutMs": 1500})).await;
    let timeout_variable = match connector.flavor() {
        ServerFlavor::MariaDb => "CAST(@@SESSION.max_statement_time AS CHAR)",
        ServerFlavor::MySql => "CAST(@@SESSION.max_execution_time AS CHAR)",
    };
    let row: (String, String, String) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT @@SESSION.time_zone, @@SESSION.sql_mode, {timeout_variable}"
    )))
    .fetch_one(connector.pool())
    .await
    .expect("session variables");
    assert_eq!(row.0, "+00:00");
    assert!(row.1.contains("STRICT_TRANS_TABLES"), "{}", row.1);
    assert!(!row.1.contains("NO_BACKSLASH_ESCAPES"), "{}", row.1);
    assert!(row.2 == "1500" || row.2.starts_with("1.5"), "{}", row.2);
}

/// A connector sharing a connection total never has more connections open than its
/// share, however many reads run at once; a shrink waits for reads in flight and closes
/// the idle connections above the new size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_connector_stays_within_its_share() {
    use manifold_core::connection_share::ConnectionShare;
    let db = TestDb::create().await;
    let share = ConnectionShare::new(8);
    share.resize(3).await;
    let options = MySqlOptions::from_json(&json!({ "url": db.url() })).expect("options");
    let connector = MySqlConnector::open_sharing(&options, share.clone())
        .await
        .expect("open");
    exec(
        &connector,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
    )
    .await;
    exec(
        &connector,
        "INSERT INTO t (v) SELECT 'x' FROM information_schema.COLUMNS LIMIT 1000",
    )
    .await;
    let rows = collection(&connector, "t").await;
    let repository = connector.repository(rows);
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
                assert!(!task.await.expect("task").is_empty());
            }
        }
    };
    reads(40).await;
    // The test's own statements above ran through the raw pool, outside the share.
    assert!(connector.pool().size() <= 3, "{}", connector.pool().size());
    share.resize(1).await;
    assert_eq!(
        connector.pool().size(),
        1,
        "the shrink closed the idle ones"
    );
    reads(10).await;
    assert_eq!(connector.pool().size(), 1);
    connector.close().await;
    assert!(share.is_given_up(), "a closed connector gives its share up");
}

#[tokio::test]
async fn a_warm_connection_learns_its_session_id_once() {
    // A read that may run long learns its session's id, to kill its statement if its
    // client leaves; a connection reused from the warm list keeps the id it learned.
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let c = posts(&connector).await;
    let repo = repository(&connector, &c);
    // Counted by text: a connection the pool opens or pings meanwhile (the machine may be
    // slow enough for the warm window to pass) runs statements of its own.
    let asks_id = |texts: &[String]| {
        texts
            .iter()
            .filter(|t| t.contains("CONNECTION_ID()"))
            .count()
    };
    let (first, count) = statement_texts_of(repo.count(None)).await;
    assert_eq!(count.expect("count"), 0);
    assert_eq!(asks_id(&first), 1, "the first read asks its id: {first:?}");
    let (second, count) = statement_texts_of(repo.count(None)).await;
    assert_eq!(count.expect("count"), 0);
    assert_eq!(
        asks_id(&second),
        0,
        "the warm connection knows it: {second:?}"
    );
    assert!(
        second.iter().any(|t| t.contains("COUNT(")),
        "the count ran: {second:?}"
    );
}
