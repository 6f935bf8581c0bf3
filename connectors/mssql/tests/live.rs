//! The CRUD suite against a real SQL Server, when `MSSQL_URL` holds an ADO.NET connection
//! string, e.g.
//! `server=tcp:127.0.0.1,1433;user=sa;password=…;encrypt=DANGER_PLAINTEXT;TrustServerCertificate=true`
//! (see `connectors/mssql/README.md` and `deploy/compose.mssql.yml`).
//!
//! Without it the suite prints one line saying SQL Server was not exercised, and passes:
//! no SQL Server can run on the project's machines. Everything happens in one test, in a
//! schema of its own (`manifold_<random>`), dropped at the end.

use std::io::Write as _;
use std::sync::Arc;

use manifold_core::connector::{CollectionDefinition, Connector};
use manifold_core::data_source::DataSourceFactory;
use manifold_core::error::{ErrorKind, Result};
use manifold_core::filter::parse_filter;
use manifold_core::query::{FindOptions, parse_sort};
use manifold_core::repository::{Record, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, FieldType};
use manifold_mssql::{MssqlConnector, MssqlFactory, MssqlOptions};
use manifold_sql::Sql;
use serde_json::{Value as Json, json};

const NOT_EXERCISED: &str = "SQL Server was not exercised: set MSSQL_URL to run the live suite";

fn statement(text: &str) -> Sql {
    Sql {
        text: text.to_owned(),
        params: Vec::new(),
    }
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

fn column(rows: &[Record], name: &str) -> Vec<Json> {
    rows.iter().map(|r| r[name].clone()).collect()
}

#[tokio::test]
async fn sql_server_live_suite() {
    let Ok(url) = std::env::var("MSSQL_URL") else {
        // Straight to stdout, past the test harness's capture, so every run shows it.
        let _ = writeln!(std::io::stdout(), "{NOT_EXERCISED}");
        return;
    };
    let schema = format!(
        "manifold_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let admin = MssqlConnector::open(
        &MssqlOptions::from_json(&json!({"url": url})).expect("MSSQL_URL is a valid ADO string"),
    )
    .await
    .expect("SQL Server is reachable at MSSQL_URL");
    admin
        .execute(&statement(&format!("CREATE SCHEMA [{schema}]")))
        .await
        .expect("create the test schema");

    let outcome = suite(&url, &schema).await;

    // Tables first (the suite drops what it created; this catches a failure midway).
    let cleanup = format!(
        "DECLARE @sql nvarchar(max) = N''; \
         SELECT @sql += N'DROP TABLE ' + QUOTENAME(s.name) + N'.' + QUOTENAME(t.name) + N'; ' \
         FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id WHERE s.name = N'{schema}'; \
         EXEC sp_executesql @sql; DROP SCHEMA [{schema}];"
    );
    if let Err(e) = admin.execute(&statement(&cleanup)).await {
        eprintln!("could not drop test schema {schema}: {e}");
    }
    admin.close().await;
    if let Err(e) = outcome {
        panic!("live suite failed: {e}");
    }
}

/// Runs every step; a step's failure is an assertion panic or an error returned here.
async fn suite(url: &str, schema: &str) -> Result<()> {
    let options = json!({"url": url, "schema": schema, "statementTimeoutMs": 5000});
    MssqlFactory.test_connection(&options).await?;
    let connector = MssqlConnector::open(&MssqlOptions::from_json(&options)?).await?;

    // -- create_collection with every creatable type ------------------------------------
    let definition = CollectionDefinition::from_json(&json!({
        "name": "things",
        "fields": [
            {"name": "title", "type": "string", "allowNull": false, "length": 20},
            {"name": "email", "type": "string", "unique": true},
            {"name": "body", "type": "text"},
            {"name": "n", "type": "integer"},
            {"name": "big", "type": "bigInt"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "price", "type": "decimal", "precision": 38, "scale": 4},
            {"name": "ok", "type": "boolean"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "wall", "type": "datetimeNoTz"},
            {"name": "clock", "type": "time"},
            {"name": "meta", "type": "json"},
            {"name": "tags", "type": "array"},
            {"name": "uid", "type": "uuid"},
            {"name": "status", "type": "string", "defaultValue": "it's new"}
        ]
    }))?;
    let created = connector.create_collection(&definition).await?;
    let types: Vec<(&str, FieldType)> = created
        .fields()
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    for (name, expected) in [
        ("id", FieldType::BigInt),
        ("title", FieldType::String),
        ("body", FieldType::Text),
        ("n", FieldType::Integer),
        ("big", FieldType::BigInt),
        ("f", FieldType::Float),
        ("d", FieldType::Double),
        ("price", FieldType::Decimal),
        ("ok", FieldType::Boolean),
        ("day", FieldType::Date),
        ("at", FieldType::DateTime),
        ("wall", FieldType::DateTimeNoTz),
        ("clock", FieldType::Time),
        ("meta", FieldType::Json),
        ("tags", FieldType::Array),
        ("uid", FieldType::Uuid),
        ("createdAt", FieldType::DateTime),
    ] {
        assert!(types.contains(&(name, expected)), "{name}: {types:?}");
    }
    let id = created.field("id").expect("id");
    assert!(id.primary_key && id.auto_increment);
    assert!(created.field("email").is_some_and(|f| f.unique));
    assert!(created.field("title").is_some_and(|f| !f.allow_null));
    let introspected = connector.introspect().await?;
    assert!(introspected.iter().any(|c| c.name() == "things"));
    let things = Arc::new(created);
    let repo = connector.repository(things.clone());

    // -- every type round-trips exactly ---------------------------------------------------
    let row = json!({
        "title": "first", "email": "a@x.io", "body": "ünïcode ✓ and a long text",
        "n": -7, "big": "9007199254740993", "f": 0.1, "d": 1.5e300,
        "price": "12345678901234567890123456789012.1234", "ok": true,
        "day": "2024-02-29", "at": "2023-01-01T08:00:00.123+08:00",
        "wall": "2023-05-06 07:08:09", "clock": "12:34:56",
        "meta": {"a": [1, {"b": null}]}, "tags": ["x", 1, true],
        "uid": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
    });
    let first = repo
        .create(&[values(&things, WriteKind::Create, row)])
        .await?
        .remove(0);
    let expected = json!({
        "title": "first", "email": "a@x.io", "body": "ünïcode ✓ and a long text",
        "n": -7, "big": "9007199254740993", "f": 0.1, "d": 1.5e300,
        "price": "12345678901234567890123456789012.1234", "ok": true,
        "day": "2024-02-29", "at": "2023-01-01T00:00:00.123Z",
        "wall": "2023-05-06 07:08:09", "clock": "12:34:56",
        "meta": {"a": [1, {"b": null}]}, "tags": ["x", 1, true],
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "status": "it's new"
    });
    for (key, value) in expected.as_object().expect("object") {
        assert_eq!(&first[key], value, "{key} as returned by OUTPUT INSERTED");
    }
    assert!(first["id"].is_number());
    assert!(
        first["createdAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    let read = repo
        .find(&find(&things, json!({"id": first["id"].clone()}), &[]))
        .await?;
    assert_eq!(read, vec![first.clone()], "read back as written");

    // -- filters and sort (NULLs last both ways) ------------------------------------------
    let more = [
        json!({"title": "b", "n": 3, "tags": ["y"], "price": "1.5"}),
        json!({"title": "c", "n": null, "tags": [], "price": "2"}),
        json!({"title": "d%_[x]", "n": 10, "tags": ["x", "y"]}),
    ];
    let rows: Vec<WriteValues> = more
        .iter()
        .map(|v| values(&things, WriteKind::Create, v.clone()))
        .collect();
    assert_eq!(repo.create(&rows).await?.len(), 3);
    let titles = |rows: &[Record]| column(rows, "title");
    let asc = repo.find(&find(&things, json!({}), &["n"])).await?;
    assert_eq!(
        titles(&asc),
        [json!("first"), json!("b"), json!("d%_[x]"), json!("c")]
    );
    let desc = repo.find(&find(&things, json!({}), &["-n"])).await?;
    assert_eq!(
        titles(&desc),
        [json!("d%_[x]"), json!("b"), json!("first"), json!("c")]
    );
    for (filter, expected) in [
        (json!({"n": {"$gt": 0}}), vec!["b", "d%_[x]"]),
        (json!({"n": {"$ne": 3}}), vec!["first", "c", "d%_[x]"]),
        (json!({"n": null}), vec!["c"]),
        (json!({"title": {"$includes": "%_[x"}}), vec!["d%_[x]"]),
        (json!({"title": {"$startsWith": "FI"}}), vec!["first"]),
        (json!({"tags": {"$anyOf": ["y"]}}), vec!["b", "d%_[x]"]),
        (json!({"tags": {"$match": ["y", "x"]}}), vec!["d%_[x]"]),
        (json!({"tags": {"$arrayEmpty": true}}), vec!["c"]),
        (json!({"price": {"$gte": "1.5"}}), vec!["first", "b", "c"]),
        (json!({"at": {"$dateOn": "2023-01-01"}}), vec!["first"]),
        (json!({"ok": {"$isFalsy": true}}), vec!["b", "c", "d%_[x]"]),
        (
            json!({"uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}),
            vec!["first"],
        ),
    ] {
        let found = repo.find(&find(&things, filter.clone(), &["id"])).await?;
        let expected: Vec<Json> = expected.into_iter().map(Json::from).collect();
        assert_eq!(titles(&found), expected, "{filter}");
    }
    let page = FindOptions {
        offset: Some(1),
        limit: Some(2),
        ..find(&things, json!({}), &["id"])
    };
    assert_eq!(titles(&repo.find(&page).await?), [json!("b"), json!("c")]);
    let all_ids: Vec<i64> = (0..3000).collect();
    let big_in = parse_filter(&things, &json!({"id": {"$in": &all_ids[..1500]}}))?;
    assert_eq!(repo.count(big_in.as_ref()).await?, 4, "chunked IN lists");
    let too_many = parse_filter(&things, &json!({"id": {"$in": all_ids}}))?;
    assert_eq!(
        repo.count(too_many.as_ref()).await.map_err(|e| e.kind()),
        Err(ErrorKind::BadRequest)
    );

    // -- update returns rows in key order; destroy counts ---------------------------------
    let filter = parse_filter(&things, &json!({"title": {"$in": ["c", "b"]}}))?;
    let updated = repo
        .update(
            filter.as_ref(),
            &values(&things, WriteKind::Update, json!({"n": 99, "meta": [1]})),
        )
        .await?;
    assert_eq!(titles(&updated), [json!("b"), json!("c")]);
    assert_eq!(column(&updated, "n"), [json!(99), json!(99)]);
    assert_eq!(column(&updated, "meta"), [json!([1]), json!([1])]);
    let nulled = repo
        .update(
            parse_filter(&things, &json!({"title": "b"}))?.as_ref(),
            &values(
                &things,
                WriteKind::Update,
                json!({"uid": null, "at": null, "price": null}),
            ),
        )
        .await?;
    assert_eq!(
        nulled[0]["uid"],
        Json::Null,
        "typed NULLs assign to every column"
    );

    // -- errors ----------------------------------------------------------------------------
    let create_err = |v: Json| {
        let repo = repo.clone();
        let things = things.clone();
        async move {
            repo.create(&[values(&things, WriteKind::Create, v)])
                .await
                .expect_err("refused")
        }
    };
    let dup = create_err(json!({"title": "x", "email": "a@x.io"})).await;
    assert_eq!(
        (dup.kind(), dup.message()),
        (ErrorKind::BadRequest, "email already exists")
    );
    let null = create_err(json!({"email": "z@x.io"})).await;
    assert_eq!(
        (null.kind(), null.message()),
        (ErrorKind::BadRequest, "title cannot be null")
    );
    let long = create_err(json!({"title": "x".repeat(30)})).await;
    assert_eq!(long.kind(), ErrorKind::BadRequest, "{}", long.message());
    assert!(!long.message().contains("xxxxxxxxxx"), "{}", long.message());
    // A failing row rolls back the whole create.
    let before = repo.count(None).await?;
    let batch = [
        values(&things, WriteKind::Create, json!({"title": "ok-1"})),
        values(
            &things,
            WriteKind::Create,
            json!({"title": "ok-2", "email": "a@x.io"}),
        ),
    ];
    assert!(repo.create(&batch).await.is_err());
    assert_eq!(repo.count(None).await?, before, "atomic create");
    // And the pooled connection serves on after the rollback.
    assert_eq!(
        repo.destroy(parse_filter(&things, &json!({"title": "b"}))?.as_ref())
            .await?,
        1
    );
    assert_eq!(repo.count(None).await?, before - 1);
    // A unit of work: dropped, it rolls back; committed, its writes stay.
    let before = repo.count(None).await?;
    let unit = connector.begin().await?;
    unit.repository(things.clone())
        .create(&[values(
            &things,
            WriteKind::Create,
            json!({"title": "in-unit"}),
        )])
        .await?;
    drop(unit);
    assert_eq!(repo.count(None).await?, before, "a dropped unit rolls back");
    let unit = connector.begin().await?;
    unit.repository(things.clone())
        .create(&[
            values(&things, WriteKind::Create, json!({"title": "unit-1"})),
            values(&things, WriteKind::Create, json!({"title": "unit-2"})),
        ])
        .await?;
    unit.commit().await?;
    assert_eq!(
        repo.count(None).await?,
        before + 2,
        "a committed unit stays"
    );
    let again = connector
        .create_collection(&definition)
        .await
        .expect_err("exists");
    assert_eq!(again.kind(), ErrorKind::Conflict);

    // -- types Manifold does not create, from a table made by hand -----------------------
    connector
        .execute(&statement(&format!(
            "CREATE TABLE [{schema}].[legacy] ([id] INT IDENTITY(1,1) PRIMARY KEY, \
             [data] VARBINARY(MAX), [doc] XML, [cash] MONEY, [old] DATETIME, \
             [small] SMALLDATETIME, [tiny] TINYINT, [fixed] NCHAR(3), [ro] ROWVERSION)"
        )))
        .await?;
    let legacy = Arc::new(
        connector
            .introspect()
            .await?
            .into_iter()
            .find(|c| c.name() == "legacy")
            .expect("legacy introspected"),
    );
    let types: Vec<(&str, FieldType)> = legacy
        .fields()
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    assert_eq!(
        types,
        [
            ("id", FieldType::Integer),
            ("data", FieldType::Binary),
            ("doc", FieldType::String),
            ("cash", FieldType::Decimal),
            ("old", FieldType::DateTimeNoTz),
            ("small", FieldType::DateTimeNoTz),
            ("tiny", FieldType::Integer),
            ("fixed", FieldType::String),
            ("ro", FieldType::Binary),
        ]
    );
    let legacy_repo = connector.repository(legacy.clone());
    let written = legacy_repo
        .create(&[values(
            &legacy,
            WriteKind::Create,
            json!({"data": "AQID", "doc": "<a>1</a>", "cash": "12.3456", "old": "2020-01-02 03:04:05",
                   "small": "2020-01-02 03:04:00", "tiny": 255, "fixed": "ab"}),
        )])
        .await?
        .remove(0);
    assert_eq!(written["data"], json!("AQID"));
    assert_eq!(written["doc"], json!("<a>1</a>"));
    assert_eq!(written["cash"], json!("12.3456"));
    assert_eq!(written["old"], json!("2020-01-02 03:04:05"));
    assert_eq!(written["small"], json!("2020-01-02 03:04:00"));
    assert_eq!(written["tiny"], json!(255));
    assert_eq!(written["fixed"], json!("ab "));
    assert!(
        written["ro"].is_string(),
        "rowversion is filled by the server"
    );
    // NULL typed as varbinary: an nvarchar NULL would be refused by this column.
    let cleared = legacy_repo
        .update(
            parse_filter(&legacy, &json!({"id": written["id"].clone()}))?.as_ref(),
            &values(
                &legacy,
                WriteKind::Update,
                json!({"data": null, "cash": null, "old": null}),
            ),
        )
        .await?;
    assert_eq!(cleared[0]["data"], Json::Null);
    connector.drop_collection(&legacy).await?;

    connector.drop_collection(&things).await?;
    assert!(
        !connector
            .introspect()
            .await?
            .iter()
            .any(|c| c.name() == "things")
    );
    connector.close().await;
    Ok(())
}
