//! The MongoDB connector against a real server: SecantusDB, a MongoDB-compatible server.
//!
//! Each test starts its own in-memory SecantusDB on a free port from `MANIFOLD_SECANTUSD`
//! (default: `.venv-mongo/bin/secantusd-py` in the workspace root) and kills it by its
//! process id when the test ends, also when it fails. A server that cannot be started
//! fails the test with the reason; nothing is skipped. See /work/shared/testing.md.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use manifold_core::connector::{CollectionDefinition, Connector};
use manifold_core::data_source::DataSourceFactory;
use manifold_core::error::{Error, ErrorKind};
use manifold_core::filter::{compare_records, key_filter, matches, parse_filter};
use manifold_core::query::{FindOptions, add_key_tiebreaker, parse_sort};
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Collection, FieldType};
use manifold_mongo::{MongoConnector, MongoFactory, MongoOptions, OBJECT_ID, SCHEMAS};
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime as BsonDate, Decimal128, Document, doc};
use serde_json::{Value as Json, json};

#[path = "support/secantus.rs"]
mod secantus;
use secantus::Secantus;

impl Secantus {
    async fn connect(&self, database: &str, extra: Json) -> MongoConnector {
        let mut options = json!({"url": self.url(), "database": database});
        if let (Some(map), Json::Object(extra)) = (options.as_object_mut(), extra) {
            map.extend(extra);
        }
        let options = MongoOptions::from_json(&options).expect("valid options");
        MongoConnector::open(&options)
            .await
            .expect("connect to SecantusDB")
    }
    /// A driver client for seeding and checking documents behind the connector's back.
    async fn raw(&self, database: &str) -> mongodb::Database {
        mongodb::Client::with_uri_str(self.url())
            .await
            .expect("raw client")
            .database(database)
    }
}

async fn collection(connector: &MongoConnector, name: &str) -> Arc<Collection> {
    let all = connector.introspect().await.expect("introspect");
    let names: Vec<String> = all.iter().map(|c| c.name().to_owned()).collect();
    Arc::new(
        all.into_iter()
            .find(|c| c.name() == name)
            .unwrap_or_else(|| panic!("collection {name} not introspected; got {names:?}")),
    )
}

fn values(collection: &Collection, kind: WriteKind, v: Json) -> WriteValues {
    WriteValues::from_json(collection, &v, kind, &WriteFilter::default(), "values")
        .expect("valid values")
}

fn find(collection: &Collection, filter: Json, sort: &[&str]) -> FindOptions {
    let items: Vec<String> = sort.iter().map(|s| (*s).to_owned()).collect();
    let mut sort = parse_sort(collection, &items).expect("valid sort");
    add_key_tiebreaker(collection, &mut sort);
    FindOptions {
        filter: parse_filter(collection, &filter).expect("valid filter"),
        sort,
        ..FindOptions::default()
    }
}

fn column(rows: &[Record], field: &str) -> Vec<Json> {
    rows.iter()
        .map(|r| r.get(field).cloned().unwrap_or(Json::Null))
        .collect()
}

async fn create_err(repo: &Arc<dyn Repository>, collection: &Collection, v: Json) -> Error {
    repo.create(&[values(collection, WriteKind::Create, v)])
        .await
        .expect_err("the create must fail")
}

fn date(s: &str) -> Bson {
    let t = chrono::DateTime::parse_from_rfc3339(s).expect("rfc3339");
    Bson::DateTime(BsonDate::from_millis(t.timestamp_millis()))
}

// ---------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn introspection_infers_fields_by_sampling_documents() {
    let server = Secantus::start();
    let raw = server.raw("intro").await;
    let author = ObjectId::new();
    raw.collection::<Document>("things")
        .insert_many([
            doc! {
                "_id": ObjectId::new(), "name": "a", "count": 1, "big": 1_i64, "ratio": 0.5,
                "price": "1.50".parse::<Decimal128>().expect("decimal"), "ok": true,
                "at": date("2023-01-01T00:00:00Z"), "author": author,
                "blob": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2] },
                "meta": {"a": 1}, "tags": ["x"], "mixed": 1, "nothing": Bson::Null,
                "$odd": 1, "dotted.name": 1,
            },
            doc! { "_id": ObjectId::new(), "name": "b", "count": 2, "mixed": "two", "late": 1 },
        ])
        .await
        .expect("seed things");
    raw.collection::<Document>("things")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"name": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .build(),
                )
                .build(),
        )
        .await
        .expect("unique index");
    raw.collection::<Document>("keyed")
        .insert_one(doc! {"_id": "k1", "v": 1})
        .await
        .expect("seed keyed");
    raw.collection::<Document>("_manifold_internal")
        .insert_one(doc! {"x": 1})
        .await
        .expect("seed internal");
    raw.create_collection("empty").await.expect("empty");
    raw.run_command(doc! {"create": "things_view", "viewOn": "things", "pipeline": []})
        .await
        .expect("view");

    let connector = server.connect("intro", json!({})).await;
    let all = connector.introspect().await.expect("introspect");
    let names: Vec<&str> = all.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "_manifold_internal",
            "empty",
            "keyed",
            "things",
            "things_view"
        ],
        "every collection, internal ones included, system ones left out"
    );

    let things = all.iter().find(|c| c.name() == "things").expect("things");
    let shape: Vec<(&str, FieldType, &str)> = things
        .fields()
        .iter()
        .map(|f| (f.name.as_str(), f.field_type, f.raw_type.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            ("_id", FieldType::String, OBJECT_ID),
            ("name", FieldType::String, "string"),
            ("count", FieldType::Integer, "int"),
            ("big", FieldType::BigInt, "long"),
            ("ratio", FieldType::Double, "double"),
            ("price", FieldType::Decimal, "decimal"),
            ("ok", FieldType::Boolean, "bool"),
            ("at", FieldType::DateTime, "date"),
            ("author", FieldType::String, OBJECT_ID),
            ("blob", FieldType::Binary, "binData"),
            ("meta", FieldType::Json, "object"),
            ("tags", FieldType::Array, "array"),
            ("mixed", FieldType::Json, "int|string"),
            ("nothing", FieldType::Json, "null"),
            ("late", FieldType::Integer, "int"),
        ]
    );
    let id = things.single_key().expect("a single key");
    assert_eq!(id.name, "_id");
    assert!(id.auto_increment && !id.allow_null);
    assert!(things.field("name").is_some_and(|f| f.unique));
    assert!(!things.is_view);

    let keyed = all.iter().find(|c| c.name() == "keyed").expect("keyed");
    let key = keyed.single_key().expect("key");
    assert_eq!(
        (key.field_type, key.auto_increment),
        (FieldType::String, false)
    );
    let empty = all.iter().find(|c| c.name() == "empty").expect("empty");
    assert_eq!(
        empty.fields().len(),
        1,
        "an empty collection has only its _id"
    );
    let view = all
        .iter()
        .find(|c| c.name() == "things_view")
        .expect("view");
    assert!(view.is_view);
    assert_eq!(view.fields().len(), things.fields().len());

    // The sample is the newest `sampleSize` documents: `late` is in the newest one only,
    // `ratio` in the oldest one only.
    let small = server.connect("intro", json!({"sampleSize": 1})).await;
    let things = collection(&small, "things").await;
    assert!(things.field("late").is_some());
    assert!(things.field("ratio").is_none());
    // The rendered records show the ObjectId reference as hex, and author filters take hex.
    let repo = small.repository(things.clone());
    let rows = repo
        .find(&find(&things, json!({"name": "b"}), &[]))
        .await
        .expect("find");
    assert_eq!(rows.len(), 1);
    let full = connector.repository(collection(&connector, "things").await);
    let things = full.collection().clone();
    let rows = full
        .find(&find(&things, json!({"author": author.to_hex()}), &[]))
        .await
        .expect("find by objectId reference");
    assert_eq!(column(&rows, "author"), [json!(author.to_hex())]);
    assert_eq!(column(&rows, "blob"), [json!("AQI=")]);
    assert_eq!(column(&rows, "price"), [json!("1.50")]);
    assert_eq!(column(&rows, "at"), [json!("2023-01-01T00:00:00.000Z")]);
    assert_eq!(column(&rows, "meta"), [json!({"a": 1})]);
    assert_eq!(
        column(&rows, "late"),
        [Json::Null],
        "a missing field reads as null"
    );
}

// ---------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------

/// Seeds `people` with nulls, missing fields and awkward text, and returns its repository.
async fn people(server: &Secantus, database: &str) -> (MongoConnector, Arc<dyn Repository>) {
    let raw = server.raw(database).await;
    let d = |s: &str| s.parse::<Decimal128>().expect("decimal");
    raw.collection::<Document>("people")
        .insert_many([
            doc! {"_id": 1, "name": "Alice", "score": 10, "price": d("1.50"), "active": true,
                  "at": date("2023-01-01T00:00:00Z"), "tags": ["a", "b"]},
            doc! {"_id": 2, "name": "bob", "score": 20, "price": d("2.25"), "active": false,
                  "at": date("2023-01-15T12:00:00Z"), "tags": ["b"]},
            doc! {"_id": 3, "name": Bson::Null, "score": Bson::Null, "price": Bson::Null,
                  "active": Bson::Null, "at": Bson::Null, "tags": Bson::Null},
            doc! {"_id": 4},
            doc! {"_id": 5, "name": "", "score": 30, "tags": [], "at": date("2023-02-01T00:00:00Z")},
            doc! {"_id": 6, "name": "x.*+?()[]{}|^$\\y", "score": 5, "tags": [1, "a"],
                  "at": date("2022-12-31T23:59:59.999Z")},
            doc! {"_id": 7, "name": "50%_OFF", "score": 25, "active": true, "tags": ["a", 1, "a"]},
            doc! {"_id": 8, "name": "École", "score": 15, "price": d("1.5")},
            doc! {"_id": 9, "name": "123", "score": -1, "tags": ["c"]},
            doc! {"_id": 10, "name": "abc", "score": 12},
        ])
        .await
        .expect("seed people");
    let connector = server.connect(database, json!({})).await;
    let people = collection(&connector, "people").await;
    let repo = connector.repository(people);
    (connector, repo)
}

async fn ids(repo: &Arc<dyn Repository>, filter: Json) -> Vec<i64> {
    let c = repo.collection();
    let rows = repo
        .find(&find(c, filter.clone(), &[]))
        .await
        .unwrap_or_else(|e| panic!("{filter}: {e:?}"));
    rows.iter()
        .map(|r| r["_id"].as_i64().expect("integer ids"))
        .collect()
}

#[tokio::test]
async fn every_predicate_matches_the_reference_evaluator() {
    let server = Secantus::start();
    let (_connector, repo) = people(&server, "filters").await;
    let c = repo.collection().clone();
    let everything = repo
        .find(&find(&c, json!({}), &[]))
        .await
        .expect("all rows");
    assert_eq!(everything.len(), 10);
    let filters = [
        json!({"name": "Alice"}),
        json!({"name": null}),
        json!({"name.$eq": null}),
        json!({"name.$ne": null}),
        json!({"name.$ne": "Alice"}),
        json!({"name": 123}),
        json!({"score": [10, 20]}),
        json!({"score.$ne": [10, 20]}),
        json!({"score.$in": [10, 30]}),
        json!({"score.$in": []}),
        json!({"score.$notIn": [10, 30]}),
        json!({"score.$notIn": []}),
        json!({"score.$gt": 12}),
        json!({"score.$gte": 12}),
        json!({"score.$lt": 12}),
        json!({"score.$lte": 12}),
        json!({"score.$between": [10, 20]}),
        json!({"score.$notBetween": [10, 20]}),
        json!({"score.$empty": true}),
        json!({"score.$notEmpty": true}),
        json!({"score.$includes": "1"}),
        json!({"price": "1.5"}),
        json!({"price.$gt": "1.5"}),
        json!({"name.$includes": "B"}),
        json!({"name.$includes": ["ali", "BO"]}),
        json!({"name.$includes": ".*+?()[]"}),
        json!({"name.$includes": "{}|^$\\"}),
        json!({"name.$includes": "a.c"}),
        json!({"name.$includes": "%_o"}),
        json!({"name.$includes": "5_%"}),
        json!({"name.$includes": "éc"}),
        json!({"name.$notIncludes": "b"}),
        json!({"name.$notIncludes": ["a", "o"]}),
        json!({"name.$startsWith": "a"}),
        json!({"name.$startsWith": "x.*"}),
        json!({"name.$notStartsWith": "a"}),
        json!({"name.$endWith": "OB"}),
        json!({"name.$endWith": "^$\\y"}),
        json!({"name.$notEndWith": "c"}),
        json!({"name.$empty": true}),
        json!({"name.$notEmpty": true}),
        json!({"active.$isTruly": true}),
        json!({"active.$isFalsy": true}),
        json!({"active.$isTruly": false}),
        json!({"active": true}),
        json!({"active.$ne": true}),
        json!({"tags.$anyOf": ["a"]}),
        json!({"tags.$anyOf": ["c", 1]}),
        json!({"tags.$anyOf": ["1"]}),
        json!({"tags.$noneOf": ["a"]}),
        json!({"tags.$match": ["a", 1]}),
        json!({"tags.$match": ["b", "a", "b"]}),
        json!({"tags.$notMatch": ["a", 1]}),
        json!({"tags.$arrayEmpty": true}),
        json!({"tags.$arrayNotEmpty": true}),
        json!({"tags.$empty": true}),
        json!({"tags.$notEmpty": true}),
        json!({"at.$dateOn": "2023-01-01"}),
        json!({"at.$dateNotOn": "2023-01-01"}),
        json!({"at.$dateBefore": "2023-01-01"}),
        json!({"at.$dateNotBefore": "2023-01-01"}),
        json!({"at.$dateAfter": "2023-01-01"}),
        json!({"at.$dateNotAfter": "2023-01"}),
        json!({"at.$dateBetween": ["2023-01-01", "2023-01-31"]}),
        json!({"at.$dateOn": "2023"}),
        json!({"at.$gt": "2023-01-01T00:00:00.000Z"}),
        json!({"at.$exists": true}),
        json!({"at.$notExists": true}),
        json!({"$or": [{"score.$gt": 20}, {"name": "Alice"}]}),
        json!({"$and": [{"score.$gt": 5}, {"name.$notIncludes": "a"}]}),
        json!({"$or": [{"name": null}, {"$and": [{"score.$lt": 12}, {"active": true}]}]}),
        json!({"score": {"$gte": 10, "$lt": 25}}),
        json!({"_id.$in": [1, 3]}),
    ];
    for filter in filters {
        let parsed = parse_filter(&c, &filter)
            .expect("valid filter")
            .expect("a condition");
        let expected: Vec<i64> = everything
            .iter()
            .filter(|r| matches(&parsed, r))
            .map(|r| r["_id"].as_i64().expect("id"))
            .collect();
        assert_eq!(
            ids(&repo, filter.clone()).await,
            expected,
            "filter {filter}"
        );
    }
}

#[tokio::test]
async fn null_and_missing_fields_are_both_sql_null() {
    let server = Secantus::start();
    let (_connector, repo) = people(&server, "nulls").await;
    // Document 3 holds explicit nulls, document 4 has no fields at all.
    assert_eq!(ids(&repo, json!({"name": null})).await, [3, 4]);
    assert_eq!(ids(&repo, json!({"score.$empty": true})).await, [3, 4]);
    assert_eq!(ids(&repo, json!({"name.$empty": true})).await, [3, 4, 5]);
    assert!(
        ids(&repo, json!({"name.$notIncludes": "zzz"}))
            .await
            .iter()
            .all(|id| ![3, 4].contains(id)),
        "negated text operators exclude NULL, as in SQL"
    );
    assert_eq!(
        ids(&repo, json!({"score.$ne": 10})).await,
        [2, 3, 4, 5, 6, 7, 8, 9, 10],
        "$ne includes NULL"
    );
    assert_eq!(
        ids(&repo, json!({"tags.$noneOf": ["a"]})).await,
        [2, 3, 4, 5, 8, 9, 10],
        "$noneOf includes NULL"
    );
    assert_eq!(ids(&repo, json!({"score.$lt": 100})).await.len(), 8);
    assert_eq!(
        ids(&repo, json!({"active.$isFalsy": true})).await,
        [2, 3, 4, 5, 6, 8, 9, 10]
    );
}

#[tokio::test]
async fn text_operators_match_regex_characters_literally_and_ignore_case() {
    let server = Secantus::start();
    let (_connector, repo) = people(&server, "text").await;
    assert_eq!(ids(&repo, json!({"name.$includes": ".*+?()[]"})).await, [6]);
    assert_eq!(ids(&repo, json!({"name.$includes": "|^$\\y"})).await, [6]);
    assert_eq!(
        ids(&repo, json!({"name.$includes": "a.c"})).await,
        Vec::<i64>::new()
    );
    assert_eq!(ids(&repo, json!({"name.$includes": "ALI"})).await, [1]);
    assert_eq!(ids(&repo, json!({"name.$includes": "%_off"})).await, [7]);
    assert_eq!(ids(&repo, json!({"name.$startsWith": "x.*+"})).await, [6]);
    assert_eq!(ids(&repo, json!({"name.$endWith": "BC"})).await, [10]);
    assert_eq!(ids(&repo, json!({"name.$includes": "ÉCO"})).await, [8]);
    // Numbers are matched as text, like the SQL sources' cast.
    assert_eq!(ids(&repo, json!({"score.$includes": "5"})).await, [6, 7, 8]);
    assert_eq!(ids(&repo, json!({"score.$startsWith": "-"})).await, [9]);
}

#[tokio::test]
async fn match_is_set_equality_and_dates_compare_as_instants() {
    let server = Secantus::start();
    let (_connector, repo) = people(&server, "sets").await;
    assert_eq!(ids(&repo, json!({"tags.$match": ["a", 1]})).await, [6, 7]);
    assert_eq!(
        ids(&repo, json!({"tags.$match": [1, "a", "a"]})).await,
        [6, 7]
    );
    assert_eq!(ids(&repo, json!({"tags.$match": ["b", "a"]})).await, [1]);
    assert_eq!(ids(&repo, json!({"tags.$match": ["b"]})).await, [2]);
    assert_eq!(
        ids(&repo, json!({"tags.$notMatch": ["b"]})).await,
        [1, 3, 4, 5, 6, 7, 8, 9, 10]
    );
    assert_eq!(
        ids(
            &repo,
            json!({"at.$dateBetween": ["2023-01-01", "2023-01-31"]})
        )
        .await,
        [1, 2]
    );
    assert_eq!(ids(&repo, json!({"at.$dateOn": "2023-01"})).await, [1, 2]);
    assert_eq!(
        ids(&repo, json!({"at.$dateBefore": "2023-01-01"})).await,
        [6]
    );
    assert_eq!(
        ids(&repo, json!({"at.$dateAfter": "2023-01-15"})).await,
        [5]
    );
    assert_eq!(
        ids(&repo, json!({"at.$dateOn": "2023-01-01+08:00"})).await,
        [1, 6],
        "the range is [2022-12-31T16:00Z, 2023-01-01T16:00Z)"
    );
}

// ---------------------------------------------------------------------------------------
// Sort, projection, pagination
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sort_puts_nulls_and_missing_values_last_in_both_directions() {
    let server = Secantus::start();
    let (_connector, repo) = people(&server, "sort").await;
    let c = repo.collection().clone();
    for sort in [
        vec!["score"],
        vec!["-score"],
        vec!["name"],
        vec!["-name"],
        vec!["-active", "score"],
        vec!["at"],
        vec!["-price", "-_id"],
    ] {
        let options = find(&c, json!({}), &sort);
        let rows = repo.find(&options).await.expect("sorted find");
        let mut expected = rows.clone();
        expected.sort_by(|a, b| compare_records(a, b, &options.sort));
        assert_eq!(
            column(&rows, "_id"),
            column(&expected, "_id"),
            "sort {sort:?}"
        );
    }
    let rows = repo
        .find(&find(&c, json!({"_id.$in": [1, 2, 3, 4, 5]}), &["score"]))
        .await
        .expect("asc");
    assert_eq!(
        column(&rows, "score"),
        [json!(10), json!(20), json!(30), Json::Null, Json::Null]
    );
    assert_eq!(
        column(&rows, "_id"),
        [json!(1), json!(2), json!(5), json!(3), json!(4)]
    );
    let rows = repo
        .find(&find(&c, json!({"_id.$in": [1, 2, 3, 4, 5]}), &["-score"]))
        .await
        .expect("desc");
    assert_eq!(
        column(&rows, "score"),
        [json!(30), json!(20), json!(10), Json::Null, Json::Null]
    );
}

#[tokio::test]
async fn projection_and_pagination_select_fields_and_windows() {
    let server = Secantus::start();
    let (_connector, repo) = people(&server, "window").await;
    let c = repo.collection().clone();
    let mut options = find(&c, json!({"score.$notEmpty": true}), &["score"]);
    options.fields = Some(
        ["score", "name"]
            .iter()
            .map(|n| manifold_core::filter::FieldRef::new(c.field(n).expect("field")))
            .collect(),
    );
    options.offset = Some(2);
    options.limit = Some(3);
    let rows = repo.find(&options).await.expect("window");
    assert_eq!(
        rows.iter()
            .map(|r| Json::Object(r.clone()))
            .collect::<Vec<_>>(),
        [
            json!({"score": 10, "name": "Alice"}),
            json!({"score": 12, "name": "abc"}),
            json!({"score": 15, "name": "École"}),
        ]
    );
    options.fields = Some(Vec::new());
    let rows = repo.find(&options).await.expect("no fields");
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.is_empty()));
    options.limit = Some(0);
    assert!(repo.find(&options).await.expect("limit 0").is_empty());
    options.limit = None;
    options.offset = Some(100);
    assert!(repo.find(&options).await.expect("past the end").is_empty());
    let filter = parse_filter(&c, &json!({"score.$gt": 12})).expect("valid");
    assert_eq!(repo.count(filter.as_ref()).await, Ok(4));
    assert_eq!(repo.count(None).await, Ok(10));
}

// ---------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------

fn every_type_definition(name: &str) -> CollectionDefinition {
    CollectionDefinition::from_json(&json!({
        "name": name,
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "t", "type": "text"},
            {"name": "i", "type": "integer"},
            {"name": "b", "type": "bigInt"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "n", "type": "decimal", "precision": 30, "scale": 2},
            {"name": "ok", "type": "boolean"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "wall", "type": "datetimeNoTz"},
            {"name": "clock", "type": "time"},
            {"name": "doc", "type": "json"},
            {"name": "u", "type": "uuid"},
            {"name": "list", "type": "array"},
            {"name": "status", "type": "string", "defaultValue": "draft"},
            {"name": "email", "type": "string", "unique": true},
            {"name": "title", "type": "string", "allowNull": false, "defaultValue": "untitled"}
        ]
    }))
    .expect("valid definition")
}

#[tokio::test]
async fn every_type_round_trips_through_create_find_update_and_destroy() {
    let server = Secantus::start();
    let connector = server.connect("crud", json!({})).await;
    let created = connector
        .create_collection(&every_type_definition("items"))
        .await
        .expect("create collection");
    let names: Vec<&str> = created.fields().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names[0], "_id");
    assert_eq!(&names[names.len() - 2..], ["createdAt", "updatedAt"]);
    let items = Arc::new(created);
    let repo = connector.repository(items.clone());
    let input = json!({
        "s": "short", "t": "long text", "i": 42, "b": "9007199254740993", "f": 1.5,
        "d": 2.25, "n": "12345678901234567890.12", "ok": true, "day": "2023-05-06",
        "at": "2023-05-06T07:08:09.123+02:00", "wall": "2023-05-06 07:08:09",
        "clock": "07:08:09", "doc": {"a": [1, {"b": null}], "$oid": "not an id"},
        "u": "5f0c3b8e-4a0b-4a49-9a57-0c1d2e3f4a5b", "list": ["x", 2, true],
        "email": "a@example.com"
    });
    let rows = repo
        .create(&[values(&items, WriteKind::Create, input.clone())])
        .await
        .expect("create");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let expected = json!({
        "s": "short", "t": "long text", "i": 42, "b": "9007199254740993", "f": 1.5,
        "d": 2.25, "n": "12345678901234567890.12", "ok": true, "day": "2023-05-06",
        "at": "2023-05-06T05:08:09.123Z", "wall": "2023-05-06 07:08:09",
        "clock": "07:08:09", "doc": {"a": [1, {"b": null}], "$oid": "not an id"},
        "u": "5f0c3b8e-4a0b-4a49-9a57-0c1d2e3f4a5b", "list": ["x", 2, true],
        "status": "draft", "email": "a@example.com", "title": "untitled"
    });
    for (k, v) in expected.as_object().expect("object") {
        assert_eq!(row.get(k), Some(v), "field {k}");
    }
    let id = row["_id"].as_str().expect("hex key").to_owned();
    assert_eq!(id.len(), 24);
    assert!(row["createdAt"].as_str().is_some_and(|s| s.ends_with('Z')));

    // Stored BSON types, behind the connector's back.
    let raw = server.raw("crud").await;
    let stored = raw
        .collection::<Document>("items")
        .find_one(doc! {})
        // The driver's serde reading takes the stored `$oid` key for extended JSON.
        .projection(doc! {"doc": 0})
        .await
        .expect("raw read")
        .expect("one document");
    assert!(matches!(stored.get("_id"), Some(Bson::ObjectId(_))));
    assert!(matches!(stored.get("i"), Some(Bson::Int32(42))));
    assert!(matches!(
        stored.get("b"),
        Some(Bson::Int64(9_007_199_254_740_993))
    ));
    assert!(matches!(stored.get("n"), Some(Bson::Decimal128(_))));
    assert!(matches!(stored.get("at"), Some(Bson::DateTime(_))));
    assert!(matches!(stored.get("day"), Some(Bson::DateTime(_))));
    assert!(matches!(stored.get("list"), Some(Bson::Array(_))));

    // Every type compares in filters and the key finds the record back.
    let c = items.as_ref();
    for filter in [
        json!({"b": "9007199254740993"}),
        json!({"n.$gt": "12345678901234567890.11"}),
        json!({"day": "2023-05-06"}),
        json!({"at.$dateOn": "2023-05-06"}),
        json!({"wall.$gte": "2023-05-06 07:08:09"}),
        json!({"clock.$lt": "08:00:00"}),
        json!({"u": "5f0c3b8e-4a0b-4a49-9a57-0c1d2e3f4a5b"}),
        json!({"list.$anyOf": [2]}),
        json!({"ok.$isTruly": true}),
        json!({"f": 1.5}),
    ] {
        let rows = repo
            .find(&find(c, filter.clone(), &[]))
            .await
            .expect("find");
        assert_eq!(rows.len(), 1, "filter {filter}");
    }
    let by_key = key_filter(c, &json!(id)).expect("key filter");
    let rows = repo
        .find(&FindOptions {
            filter: by_key.clone(),
            ..FindOptions::default()
        })
        .await
        .expect("by key");
    assert_eq!(column(&rows, "_id"), [json!(id.clone())]);

    // Update: $set, null unsets, the key cannot change, the result is as stored.
    let updated = repo
        .update(
            by_key.as_ref(),
            &values(
                c,
                WriteKind::Update,
                json!({"i": 7, "s": null, "_id": "65f1c0ffee00000000000001"}),
            ),
        )
        .await
        .expect("update");
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["i"], json!(7));
    assert_eq!(updated[0]["s"], Json::Null);
    assert_eq!(updated[0]["_id"], json!(id.clone()));
    let stored = raw
        .collection::<Document>("items")
        .find_one(doc! {})
        // The driver's serde reading takes the stored `$oid` key for extended JSON.
        .projection(doc! {"doc": 0})
        .await
        .expect("raw read")
        .expect("one document");
    assert!(!stored.contains_key("s"), "null is stored as absence");
    let nothing = repo
        .update(
            parse_filter(c, &json!({"i": 1000}))
                .expect("valid")
                .as_ref(),
            &values(c, WriteKind::Update, json!({"i": 1})),
        )
        .await
        .expect("update nothing");
    assert!(nothing.is_empty());

    // Destroy returns the count.
    assert_eq!(repo.destroy(by_key.as_ref()).await, Ok(1));
    assert_eq!(repo.destroy(by_key.as_ref()).await, Ok(0));
    assert_eq!(repo.count(None).await, Ok(0));
}

#[tokio::test]
async fn create_inserts_many_in_order_and_update_returns_key_order() {
    let server = Secantus::start();
    let connector = server.connect("many", json!({})).await;
    assert!(connector.transactions(), "SecantusDB acts as a replica set");
    let items = Arc::new(
        connector
            .create_collection(
                &CollectionDefinition::from_json(&json!({
                    "name": "items", "timestamps": false,
                    "fields": [{"name": "n", "type": "integer"}]
                }))
                .expect("definition"),
            )
            .await
            .expect("create collection"),
    );
    let repo = connector.repository(items.clone());
    let rows: Vec<WriteValues> = (0..50)
        .map(|n| values(&items, WriteKind::Create, json!({"n": 49 - n})))
        .collect();
    let created = repo.create(&rows).await.expect("create 50");
    assert_eq!(created.len(), 50);
    let ns: Vec<i64> = created
        .iter()
        .map(|r| r["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(
        ns,
        (0..50).rev().collect::<Vec<i64>>(),
        "the order of the input"
    );
    let updated = repo
        .update(
            parse_filter(&items, &json!({"n.$lt": 10}))
                .expect("valid")
                .as_ref(),
            &values(&items, WriteKind::Update, json!({"n": 100})),
        )
        .await
        .expect("update");
    assert_eq!(updated.len(), 10);
    let keys = column(&updated, "_id");
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(keys, sorted, "updated records come in key order");
    assert!(updated.iter().all(|r| r["n"] == json!(100)));
    // No values: the matching records, unchanged.
    let same = repo
        .update(
            parse_filter(&items, &json!({"n": 100}))
                .expect("valid")
                .as_ref(),
            &WriteValues::default(),
        )
        .await
        .expect("empty update");
    assert_eq!(same.len(), 10);
    assert_eq!(repo.destroy(None).await, Ok(50));
}

#[tokio::test]
async fn object_id_and_string_keys_are_addressed_by_their_text() {
    let server = Secantus::start();
    let raw = server.raw("keys").await;
    let oid = ObjectId::new();
    raw.collection::<Document>("docs")
        .insert_one(doc! {"_id": oid, "v": 1})
        .await
        .expect("seed docs");
    raw.collection::<Document>("named")
        .insert_many([doc! {"_id": "k1", "v": 1}, doc! {"_id": "k2", "v": 2}])
        .await
        .expect("seed named");
    let connector = server.connect("keys", json!({})).await;

    let docs = collection(&connector, "docs").await;
    let repo = connector.repository(docs.clone());
    let by_key = key_filter(&docs, &json!(oid.to_hex())).expect("key filter");
    let rows = repo
        .find(&FindOptions {
            filter: by_key,
            ..FindOptions::default()
        })
        .await
        .expect("find by ObjectId");
    assert_eq!(column(&rows, "_id"), [json!(oid.to_hex())]);
    let by_keys = key_filter(&docs, &json!([oid.to_hex(), "not-an-id"])).expect("keys");
    assert_eq!(repo.count(by_keys.as_ref()).await, Ok(1));
    // A new document gets a new ObjectId; a given hex key is stored as an ObjectId.
    let given = ObjectId::new().to_hex();
    let created = repo
        .create(&[
            values(&docs, WriteKind::Create, json!({"v": 2})),
            values(&docs, WriteKind::Create, json!({"_id": given, "v": 3})),
        ])
        .await
        .expect("create");
    assert_eq!(created[1]["_id"], json!(given));
    assert!(created[0]["_id"].as_str().is_some_and(|s| s.len() == 24));
    let stored = raw
        .collection::<Document>("docs")
        .find_one(doc! {"v": 3})
        .await
        .expect("raw")
        .expect("doc");
    assert!(matches!(stored.get("_id"), Some(Bson::ObjectId(id)) if id.to_hex() == given));

    let named = collection(&connector, "named").await;
    let repo = connector.repository(named.clone());
    let rows = repo
        .find(&FindOptions {
            filter: key_filter(&named, &json!("k2")).expect("key filter"),
            ..FindOptions::default()
        })
        .await
        .expect("find by string key");
    assert_eq!(column(&rows, "v"), [json!(2)]);
    let err = create_err(&repo, &named, json!({"v": 3})).await;
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(err.message(), "_id cannot be null");
    let created = repo
        .create(&[values(
            &named,
            WriteKind::Create,
            json!({"_id": "k3", "v": 3}),
        )])
        .await
        .expect("create with a key");
    assert_eq!(created[0]["_id"], json!("k3"));
}

#[tokio::test]
async fn a_declared_key_is_stored_as_id_and_definitions_survive_a_reconnect() {
    let server = Secantus::start();
    let connector = server.connect("declared", json!({})).await;
    let definition = CollectionDefinition::from_json(&json!({
        "name": "codes", "autoGenId": false, "timestamps": false,
        "fields": [
            {"name": "code", "type": "string", "primaryKey": true},
            {"name": "score", "type": "integer", "defaultValue": 3}
        ]
    }))
    .expect("definition");
    let codes = Arc::new(
        connector
            .create_collection(&definition)
            .await
            .expect("create"),
    );
    assert_eq!(
        codes
            .single_key()
            .map(|k| (k.name.as_str(), k.column.as_str())),
        Some(("code", "_id"))
    );
    let repo = connector.repository(codes.clone());
    let rows = repo
        .create(&[values(&codes, WriteKind::Create, json!({"code": "A-1"}))])
        .await
        .expect("create");
    assert_eq!(
        Json::Object(rows[0].clone()),
        json!({"code": "A-1", "score": 3})
    );
    let raw = server.raw("declared").await;
    let stored = raw
        .collection::<Document>("codes")
        .find_one(doc! {})
        .await
        .expect("raw")
        .expect("doc");
    assert_eq!(stored.get_str("_id").ok(), Some("A-1"));
    let err = create_err(&repo, &codes, json!({"score": 1})).await;
    assert_eq!(err.message(), "code cannot be null");
    let err = create_err(&repo, &codes, json!({"code": "A-1"})).await;
    assert_eq!(err.message(), "code already exists");

    // An empty created collection has its declared schema after a reconnect.
    connector
        .create_collection(&every_type_definition("later"))
        .await
        .expect("create later");
    let again = server.connect("declared", json!({})).await;
    let later = collection(&again, "later").await;
    assert_eq!(
        later.field("n").map(|f| f.field_type),
        Some(FieldType::Decimal)
    );
    assert_eq!(
        later.field("day").map(|f| f.field_type),
        Some(FieldType::Date)
    );
    assert!(later.field("email").is_some_and(|f| f.unique));
    let codes = collection(&again, "codes").await;
    assert_eq!(codes.single_key().map(|k| k.name.as_str()), Some("code"));
    let repo = again.repository(codes.clone());
    let rows = repo
        .create(&[values(&codes, WriteKind::Create, json!({"code": "B"}))])
        .await
        .expect("defaults survive too");
    assert_eq!(rows[0]["score"], json!(3));
    let all = again.introspect().await.expect("introspect");
    assert!(
        all.iter().any(|c| c.name() == SCHEMAS),
        "the definitions collection is listed (as internal)"
    );

    // Creating it twice is a conflict; dropping removes the collection and its definition.
    let err = again
        .create_collection(&every_type_definition("later"))
        .await
        .expect_err("exists");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    again.drop_collection(&later).await.expect("drop");
    let all = again.introspect().await.expect("introspect");
    assert!(!all.iter().any(|c| c.name() == "later"));
    let left = raw
        .collection::<Document>(SCHEMAS)
        .count_documents(doc! {"_id": "later"})
        .await
        .expect("count");
    assert_eq!(left, 0);
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn constraint_violations_are_400s_and_a_failed_batch_writes_nothing() {
    let server = Secantus::start();
    for (database, extra) in [
        ("txn", json!({})),
        ("plain", json!({"transactions": false})),
    ] {
        let connector = server.connect(database, extra).await;
        assert_eq!(connector.transactions(), database == "txn");
        let items = Arc::new(
            connector
                .create_collection(&every_type_definition("items"))
                .await
                .expect("create collection"),
        );
        let repo = connector.repository(items.clone());
        repo.create(&[values(
            &items,
            WriteKind::Create,
            json!({"email": "taken@x.io"}),
        )])
        .await
        .expect("first");
        let err = create_err(&repo, &items, json!({"email": "taken@x.io"})).await;
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_eq!(err.message(), "email already exists");
        assert!(!err.message().contains("taken@x.io"));
        // Two documents without an email do not collide (null is not a value).
        repo.create(&[
            values(&items, WriteKind::Create, json!({"s": "a"})),
            values(&items, WriteKind::Create, json!({"s": "b", "email": null})),
        ])
        .await
        .expect("nulls do not collide");
        // A batch whose third document fails leaves nothing behind.
        let batch = [
            values(
                &items,
                WriteKind::Create,
                json!({"s": "one", "email": "1@x.io"}),
            ),
            values(
                &items,
                WriteKind::Create,
                json!({"s": "two", "email": "2@x.io"}),
            ),
            values(
                &items,
                WriteKind::Create,
                json!({"s": "three", "email": "taken@x.io"}),
            ),
        ];
        let err = repo.create(&batch).await.expect_err("duplicate in batch");
        assert_eq!(err.message(), "email already exists", "{database}");
        assert_eq!(
            repo.count(None).await,
            Ok(3),
            "{database}: the batch was rolled back"
        );
        // The validator keeps declared non-null fields present.
        let err = create_err(&repo, &items, json!({"title": null})).await;
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert_eq!(err.message(), "title cannot be null");
        let first = key_filter(
            &items,
            &repo
                .find(&find(&items, json!({"email": "taken@x.io"}), &[]))
                .await
                .expect("find")[0]["_id"],
        )
        .expect("key");
        let err = repo
            .update(
                first.as_ref(),
                &values(&items, WriteKind::Update, json!({"title": null})),
            )
            .await
            .expect_err("title is required");
        assert_eq!(err.message(), "title cannot be null");
        let err = repo
            .update(
                parse_filter(&items, &json!({"s": "a"}))
                    .expect("valid")
                    .as_ref(),
                &values(&items, WriteKind::Update, json!({"email": "taken@x.io"})),
            )
            .await
            .expect_err("duplicate by update");
        assert_eq!(err.message(), "email already exists");
        let raw = server.raw(database).await;
        raw.collection::<Document>("items")
            .drop()
            .await
            .expect("cleanup");
    }
}

// ---------------------------------------------------------------------------------------
// Units of work
// ---------------------------------------------------------------------------------------

/// A collection created through `connector` from `definition`, holding `seed`, and its
/// repository.
async fn seeded(
    connector: &MongoConnector,
    definition: Json,
    seed: &[Json],
) -> (Arc<Collection>, Arc<dyn Repository>) {
    let collection = Arc::new(
        connector
            .create_collection(&CollectionDefinition::from_json(&definition).expect("definition"))
            .await
            .expect("create collection"),
    );
    let repo = connector.repository(collection.clone());
    let rows: Vec<WriteValues> = seed
        .iter()
        .map(|v| values(&collection, WriteKind::Create, v.clone()))
        .collect();
    repo.create(&rows).await.expect("seed");
    (collection, repo)
}

/// `authors` (name: Alice, Bob) and `books` (title and n: A 1, B 2), created through
/// `connector`, with their repositories.
async fn authors_and_books(
    connector: &MongoConnector,
) -> [(Arc<Collection>, Arc<dyn Repository>); 2] {
    let authors = seeded(
        connector,
        json!({"name": "authors", "timestamps": false,
               "fields": [{"name": "name", "type": "string"}]}),
        &[json!({"name": "Alice"}), json!({"name": "Bob"})],
    )
    .await;
    let books = seeded(
        connector,
        json!({"name": "books", "timestamps": false,
               "fields": [{"name": "title", "type": "string"}, {"name": "n", "type": "integer"}]}),
        &[json!({"title": "A", "n": 1}), json!({"title": "B", "n": 2})],
    )
    .await;
    [authors, books]
}

/// Every record of `repo`'s collection, in key order.
async fn all_rows(repo: &Arc<dyn Repository>) -> Vec<Record> {
    repo.find(&find(repo.collection(), json!({}), &[]))
        .await
        .expect("find all")
}

/// `filter` parsed for `collection`.
fn filter_of(collection: &Collection, filter: Json) -> Option<manifold_core::filter::Filter> {
    parse_filter(collection, &filter).expect("valid filter")
}

#[tokio::test]
async fn writes_of_a_unit_in_two_collections_are_seen_by_others_only_after_commit() {
    let server = Secantus::start();
    let connector = server.connect("unit_commit", json!({})).await;
    let [(authors, plain_authors), (books, plain_books)] = authors_and_books(&connector).await;
    let before = (all_rows(&plain_authors).await, all_rows(&plain_books).await);

    let unit = connector.begin().await.expect("begin");
    let unit_authors = unit.repository(authors.clone());
    let unit_books = unit.repository(books.clone());
    let carol = unit_authors
        .create(&[values(
            &authors,
            WriteKind::Create,
            json!({"name": "Carol"}),
        )])
        .await
        .expect("create in authors");
    assert_eq!(column(&carol, "name"), [json!("Carol")]);
    unit_books
        .create(&[values(
            &books,
            WriteKind::Create,
            json!({"title": "C", "n": 3}),
        )])
        .await
        .expect("create in books");
    let updated = unit_books
        .update(
            filter_of(&books, json!({"n": 1})).as_ref(),
            &values(&books, WriteKind::Update, json!({"n": 10})),
        )
        .await
        .expect("update in books");
    assert_eq!(column(&updated, "n"), [json!(10)]);

    assert_eq!(
        (all_rows(&plain_authors).await, all_rows(&plain_books).await),
        before,
        "before the commit, nothing of the unit shows outside it"
    );
    assert_eq!(plain_authors.count(None).await, Ok(2));

    unit.commit().await.expect("commit");
    assert_eq!(
        column(&all_rows(&plain_authors).await, "name"),
        [json!("Alice"), json!("Bob"), json!("Carol")]
    );
    let books_after = all_rows(&plain_books).await;
    assert_eq!(
        column(&books_after, "title"),
        [json!("A"), json!("B"), json!("C")]
    );
    assert_eq!(column(&books_after, "n"), [json!(10), json!(2), json!(3)]);
    assert_eq!(
        unit_authors.count(None).await.map_err(|e| e.kind()),
        Err(ErrorKind::Internal),
        "a repository of a committed unit runs nothing more"
    );
}

#[tokio::test]
async fn a_unit_dropped_without_commit_leaves_both_collections_as_they_were() {
    let server = Secantus::start();
    let connector = server.connect("unit_drop", json!({})).await;
    let [(authors, plain_authors), (books, plain_books)] = authors_and_books(&connector).await;
    let before = (all_rows(&plain_authors).await, all_rows(&plain_books).await);

    let unit = connector.begin().await.expect("begin");
    let unit_authors = unit.repository(authors.clone());
    let unit_books = unit.repository(books.clone());
    unit_authors
        .create(&[values(
            &authors,
            WriteKind::Create,
            json!({"name": "Carol"}),
        )])
        .await
        .expect("create");
    let renamed = unit_authors
        .update(
            filter_of(&authors, json!({"name": "Alice"})).as_ref(),
            &values(&authors, WriteKind::Update, json!({"name": "Alicia"})),
        )
        .await
        .expect("update");
    assert_eq!(column(&renamed, "name"), [json!("Alicia")]);
    assert_eq!(
        unit_books
            .destroy(filter_of(&books, json!({"n": 1})).as_ref())
            .await,
        Ok(1)
    );
    unit_books
        .update(
            filter_of(&books, json!({"n": 2})).as_ref(),
            &values(&books, WriteKind::Update, json!({"title": "B2"})),
        )
        .await
        .expect("update");
    drop(unit);

    assert_eq!(
        (all_rows(&plain_authors).await, all_rows(&plain_books).await),
        before,
        "a dropped unit wrote nothing"
    );
    // Its repositories outlive it, but run nothing more.
    let err = unit_books.count(None).await.expect_err("the unit ended");
    assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
    // The transaction was aborted, not left open until the server's lifetime limit: the
    // documents it wrote take other writes again (while it is open they conflict). The
    // driver sends the abort from a task of its own, so it is given a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let renamed = loop {
        let outcome = plain_authors
            .update(
                filter_of(&authors, json!({"name": "Alice"})).as_ref(),
                &values(&authors, WriteKind::Update, json!({"name": "Alicia"})),
            )
            .await;
        match outcome {
            Err(e) if e.kind() == ErrorKind::Conflict && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.expect("a plain update of a document the unit had changed"),
        }
    };
    assert_eq!(column(&renamed, "name"), [json!("Alicia")]);
    assert_eq!(
        plain_books
            .destroy(filter_of(&books, json!({"n": 1})).as_ref())
            .await,
        Ok(1)
    );
}

#[tokio::test]
async fn reads_in_a_unit_see_its_own_uncommitted_writes() {
    let server = Secantus::start();
    let connector = server.connect("unit_reads", json!({})).await;
    let [(authors, plain_authors), (books, plain_books)] = authors_and_books(&connector).await;

    let unit = connector.begin().await.expect("begin");
    let unit_authors = unit.repository(authors.clone());
    let unit_books = unit.repository(books.clone());
    unit_authors
        .create(&[values(
            &authors,
            WriteKind::Create,
            json!({"name": "Carol"}),
        )])
        .await
        .expect("create");
    assert_eq!(
        column(&all_rows(&unit_authors).await, "name"),
        [json!("Alice"), json!("Bob"), json!("Carol")]
    );
    assert_eq!(unit_authors.count(None).await, Ok(3));
    assert_eq!(
        unit_authors
            .count(filter_of(&authors, json!({"name": "Carol"})).as_ref())
            .await,
        Ok(1)
    );
    let batches: Vec<Vec<Record>> = unit_authors
        .find_batches(&find(&authors, json!({}), &[]), 2)
        .await
        .expect("find_batches")
        .map(|batch| batch.expect("batch"))
        .collect()
        .await;
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 1],
        "the uncommitted document comes in the batches too"
    );
    // An update finds the unit's own new document; one with no values reads it back.
    let renamed = unit_authors
        .update(
            filter_of(&authors, json!({"name": "Carol"})).as_ref(),
            &values(&authors, WriteKind::Update, json!({"name": "Caroline"})),
        )
        .await
        .expect("update");
    assert_eq!(column(&renamed, "name"), [json!("Caroline")]);
    let same = unit_authors
        .update(
            filter_of(&authors, json!({"name": "Caroline"})).as_ref(),
            &WriteValues::default(),
        )
        .await
        .expect("empty update");
    assert_eq!(column(&same, "name"), [json!("Caroline")]);
    assert_eq!(
        unit_books
            .destroy(filter_of(&books, json!({"n": 1})).as_ref())
            .await,
        Ok(1)
    );
    assert_eq!(column(&all_rows(&unit_books).await, "title"), [json!("B")]);
    assert_eq!(unit_books.count(None).await, Ok(1));

    assert_eq!(
        plain_authors.count(None).await,
        Ok(2),
        "nothing shows outside"
    );
    assert_eq!(
        plain_books.count(None).await,
        Ok(2),
        "nothing shows outside"
    );
    unit.commit().await.expect("commit");
    assert_eq!(
        column(&all_rows(&plain_authors).await, "name"),
        [json!("Alice"), json!("Bob"), json!("Caroline")]
    );
    assert_eq!(column(&all_rows(&plain_books).await, "title"), [json!("B")]);
}

#[tokio::test]
async fn a_write_conflict_fails_the_later_unit_at_once_and_the_earlier_one_commits() {
    let server = Secantus::start();
    let connector = server.connect("unit_conflict", json!({})).await;
    let [(authors, plain_authors), _] = authors_and_books(&connector).await;
    let alice = filter_of(&authors, json!({"name": "Alice"}));

    let first = connector.begin().await.expect("begin first");
    first
        .repository(authors.clone())
        .update(
            alice.as_ref(),
            &values(&authors, WriteKind::Update, json!({"name": "Alicia"})),
        )
        .await
        .expect("the first unit's update");
    let second = connector.begin().await.expect("begin second");
    let err = second
        .repository(authors.clone())
        .update(
            alice.as_ref(),
            &values(&authors, WriteKind::Update, json!({"name": "Alina"})),
        )
        .await
        .expect_err("the second unit writes the same document");
    // Not retried inside the unit: the server discarded the unit's transaction with it.
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err:?}");
    drop(second);
    first.commit().await.expect("the first unit commits");
    assert_eq!(
        column(&all_rows(&plain_authors).await, "name"),
        [json!("Alicia"), json!("Bob")]
    );
}

#[tokio::test]
async fn begin_without_transactions_is_a_400() {
    let server = Secantus::start();
    let connector = server
        .connect("unit_none", json!({"transactions": false}))
        .await;
    assert!(!connector.transactions());
    let err = match connector.begin().await {
        Ok(_) => panic!("begin must be refused without transactions"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::BadRequest, "{err:?}");
    assert!(
        err.message()
            .starts_with("this data source cannot run several writes in one transaction"),
        "{err:?}"
    );
    assert!(err.message().contains("transactions: false"), "{err:?}");
}

#[tokio::test]
async fn an_expired_max_time_is_a_timeout_on_every_operation() {
    let server = Secantus::start();
    let (connector, repo) = people(&server, "slow").await;
    let c = repo.collection().clone();
    let admin = connector.client().database("admin");
    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "alwaysOn"})
        .await
        .expect("failpoint on");
    let filter = parse_filter(&c, &json!({"score.$gt": 1})).expect("valid");
    let timeouts: Vec<(&str, Error)> = vec![
        (
            "find",
            repo.find(&find(&c, json!({}), &["score"]))
                .await
                .expect_err("find"),
        ),
        (
            "count",
            repo.count(filter.as_ref()).await.expect_err("count"),
        ),
        (
            "update",
            repo.update(
                filter.as_ref(),
                &values(&c, WriteKind::Update, json!({"score": 1})),
            )
            .await
            .expect_err("update"),
        ),
        (
            "destroy",
            repo.destroy(filter.as_ref()).await.expect_err("destroy"),
        ),
        (
            "introspect",
            connector.introspect().await.expect_err("introspect"),
        ),
    ];
    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "off"})
        .await
        .expect("failpoint off");
    for (operation, err) in timeouts {
        assert_eq!(err.kind(), ErrorKind::Timeout, "{operation}: {err:?}");
        assert_eq!(
            err.message(),
            "the query took longer than the statement timeout"
        );
    }
    assert_eq!(repo.count(None).await, Ok(10), "nothing was changed");

    // With the statement timeout off, no maxTimeMS is sent, so nothing expires.
    let untimed = server
        .connect("slow", json!({"statementTimeoutMs": 0}))
        .await;
    let repo = untimed.repository(c.clone());
    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "alwaysOn"})
        .await
        .expect("failpoint on");
    let outcome = repo.count(None).await;
    admin
        .run_command(doc! {"configureFailPoint": "maxTimeAlwaysTimeOut", "mode": "off"})
        .await
        .expect("failpoint off");
    assert_eq!(outcome, Ok(10));
}

#[tokio::test]
async fn an_unreachable_server_is_a_503_that_names_no_password() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    for options in [
        json!({"url": format!("mongodb://app:s3cr3t-pw@127.0.0.1:{port}/app"),
               "serverSelectionTimeoutMs": 300}),
        json!({"host": "127.0.0.1", "port": port, "database": "app", "username": "app",
               "password": "s3cr3t-pw", "serverSelectionTimeoutMs": 300, "connectTimeoutMs": 300}),
    ] {
        let started = std::time::Instant::now();
        let err = connect_err(&options).await;
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
        assert_eq!(err.message(), "the data source cannot be reached");
        assert!(!err.message().contains("s3cr3t"));
        assert!(started.elapsed() < Duration::from_secs(10));
        let parsed = MongoOptions::from_json(&options).expect("valid");
        assert!(!format!("{parsed:?}").contains("s3cr3t-pw"));
    }
    // A server that goes away after the connector opened.
    let server = Secantus::start();
    let connector = server
        .connect("gone", json!({"serverSelectionTimeoutMs": 300}))
        .await;
    let items = Arc::new(
        connector
            .create_collection(&every_type_definition("items"))
            .await
            .expect("create"),
    );
    drop(server);
    let repo = connector.repository(items.clone());
    let err = repo.count(None).await.expect_err("server is gone");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert_eq!(err.message(), "the data source cannot be reached");
    connector.close().await;
}

#[tokio::test]
async fn a_rejected_login_is_a_503_that_names_no_password() {
    let dir = ScratchDir::new();
    let path = dir.0.to_string_lossy().to_string();
    // Users are provisioned without auth, then the server restarts with it.
    let setup = Secantus::start_with(&["--storage-path", &path]);
    setup
        .raw("admin")
        .await
        .run_command(doc! {"createUser": "app", "pwd": "right-pw", "roles": ["root"]})
        .await
        .expect("create user");
    setup.stop();
    let server = Secantus::start_with(&["--storage-path", &path, "--auth"]);
    let err = connect_err(&json!({
        "url": format!("mongodb://app:wrong-pw@127.0.0.1:{}/app", server.port),
        "serverSelectionTimeoutMs": 2000
    }))
    .await;
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(
        err.message()
            .starts_with("the data source cannot be reached"),
        "{err:?}"
    );
    assert!(!err.message().contains("wrong-pw"));
    let ok = MongoFactory
        .connect(&json!({
            "host": "127.0.0.1", "port": server.port, "database": "app",
            "username": "app", "password": "right-pw"
        }))
        .await
        .expect("the right password connects");
    assert!(ok.introspect().await.expect("introspect").is_empty());
    ok.close().await;
    // The server goes before its directory.
    drop(server);
    drop(dir);
}

/// The error of a connection that must fail.
async fn connect_err(options: &Json) -> Error {
    match MongoFactory.connect(options).await {
        Ok(_) => panic!("the connection must fail"),
        Err(e) => e,
    }
}

/// A fresh directory for an on-disk server, removed on drop (also when the test fails).
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("manifold-secantus-{}", ObjectId::new().to_hex()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn the_factory_builds_connectors_of_kind_mongodb() {
    let server = Secantus::start();
    assert_eq!(MongoFactory.kind(), "mongodb");
    MongoFactory
        .test_connection(&json!({"url": server.url(), "database": "probe"}))
        .await
        .expect("test connection");
    let err = connect_err(&json!({"url": server.url()})).await;
    assert!(err.message().contains("options.database"), "{err:?}");
    let connector = MongoFactory
        .connect(&json!({"url": format!("{}/named", server.url())}))
        .await
        .expect("the database from the URL path");
    assert!(connector.introspect().await.expect("introspect").is_empty());
    connector.close().await;
    let shown = format!(
        "{:?}",
        MongoOptions::from_json(&json!({
            "url": "mongodb://u:pw-in-url@127.0.0.1:1/db", "password": "pw-given"
        }))
        .expect("valid")
    );
    assert!(
        !shown.contains("pw-in-url") && !shown.contains("pw-given"),
        "{shown}"
    );
    assert!(shown.contains("\"***\""), "{shown}");
}
