//! What a request pays to turn its filter into SQL: parsing and checking a 20-condition
//! filter against the schema, and compiling it for each dialect.
//!
//! `cargo bench -p manifold-sql --bench filter`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use manifold_core::filter::parse_filter;
use manifold_core::params::Params;
use manifold_core::query::FindOptions;
use manifold_core::schema::{Collection, Field, FieldType, TableName};
use manifold_mssql::MssqlDialect;
use manifold_mysql::MySqlDialect;
use manifold_postgres::PostgresDialect;
use manifold_sql::{Dialect, compile};
use manifold_sqlite::SqliteDialect;
use serde_json::{Value as Json, json};

/// Every SQL connector's dialect.
const DIALECTS: [&dyn Dialect; 4] = [
    &PostgresDialect,
    &MySqlDialect,
    &SqliteDialect,
    &MssqlDialect,
];

fn collection() -> Collection {
    let mut id = Field::new("id", FieldType::BigInt);
    id.primary_key = true;
    let mut fields = vec![id];
    for (name, ty) in [
        ("title", FieldType::String),
        ("body", FieldType::Text),
        ("score", FieldType::Integer),
        ("price", FieldType::Decimal),
        ("ok", FieldType::Boolean),
        ("at", FieldType::DateTime),
        ("day", FieldType::Date),
        ("tags", FieldType::Array),
    ] {
        fields.push(Field::new(name, ty));
    }
    Collection::new("posts", TableName::new("posts"), fields).expect("valid")
}

/// Twenty conditions of every kind, nested two levels deep.
fn twenty_conditions() -> Json {
    json!({
        "$and": [
            {"title": {"$includes": "rust", "$notStartsWith": "draft"}},
            {"score": {"$gt": 3, "$lte": 100}},
            {"price": {"$between": ["1.50", "99.99"]}},
            {"ok": {"$isTruly": true}},
            {"at": {"$dateAfter": "2023-01-01"}},
            {"day": {"$dateBefore": "2024-06"}},
            {"tags": {"$anyOf": ["a", "b", "c"]}},
            {"$or": [
                {"title": {"$in": ["a", "b", "c", "d"]}},
                {"body": {"$notEmpty": true}},
                {"score": {"$notIn": [1, 2, 3]}},
                {"id": {"$ne": 7}}
            ]},
            {"$or": [
                {"title": {"$endWith": "!"}},
                {"price": {"$gte": "10"}},
                {"at": {"$dateBetween": ["2023-01-01", "2023-06-30"]}},
                {"tags": {"$noneOf": ["z"]}},
                {"day": {"$empty": true}}
            ]}
        ]
    })
}

fn bench(c: &mut Criterion) {
    let collection = collection();
    let filter = twenty_conditions();
    let params = Params::from_map(
        json!({"sort": "-score,title", "fields": "id,title,score,price"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let mut options = FindOptions::from_params(&collection, &params).expect("valid params");
    options.filter = parse_filter(&collection, &filter).expect("valid filter");
    options.limit = Some(20);

    c.bench_function("parse 20-condition filter", |b| {
        b.iter(|| parse_filter(black_box(&collection), black_box(&filter)))
    });
    c.bench_function("parse + compile 20-condition filter (PostgreSQL)", |b| {
        b.iter(|| {
            let mut o = FindOptions::from_params(&collection, &params).expect("valid");
            o.filter = parse_filter(&collection, black_box(&filter)).expect("valid");
            o.limit = Some(20);
            compile::select(&PostgresDialect, &collection, &o)
        })
    });
    for dialect in DIALECTS {
        c.bench_function(&format!("compile 20-condition select ({dialect:?})"), |b| {
            b.iter(|| compile::select(dialect, black_box(&collection), black_box(&options)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
