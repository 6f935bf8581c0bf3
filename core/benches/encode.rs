//! What a request pays to turn decoded rows into the JSON response body, for 20 and 1,000
//! posts-like records (id, title, body, score, status, createdAt).
//!
//! The path it follows is the one every sqlx connector's rows take (`SqlxDriver::record`
//! over the connector's `codec::decode_cell`): each cell is rendered by its field type
//! (`int_to_json`, `format_instant`, strings copied) into a `Record` (an
//! insertion-ordered `Map<String, Json>`) cloned from the statement's `RecordTemplate`,
//! whose names were hashed once; `List` collects the records into
//! a `Json::Array` (core/src/actions/mod.rs), `dataWrapping` puts it in a `{data, meta}`
//! map (server/src/app/data_wrapping.rs), and the HTTP layer serialises it with
//! `serde_json::to_vec` (server/src/http/mod.rs). The decode from the driver's row is
//! not included (it needs a live connection; see docs/benchmarks.md). For reference, the
//! same records are also serialised straight from a `#[derive(Serialize)]` struct, which is
//! what the hand-written baseline of bench/ does.
//!
//! `cargo bench -p manifold-core --bench encode`

use std::hint::black_box;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use manifold_core::filter::FieldRef;
use manifold_core::repository::{Record, RecordTemplate};
use manifold_core::schema::{Field, FieldType};
use manifold_core::value::{Value, format_instant, int_to_json};
use serde::Serialize;
use serde_json::{Map, Value as Json, json};

/// A decoded row: the cells a driver hands over, before rendering.
struct Row {
    id: i64,
    title: String,
    body: String,
    score: i64,
    status: String,
    created_at: DateTime<Utc>,
}

const FIELDS: [(&str, FieldType); 6] = [
    ("id", FieldType::BigInt),
    ("title", FieldType::String),
    ("body", FieldType::Text),
    ("score", FieldType::Integer),
    ("status", FieldType::String),
    ("createdAt", FieldType::DateTime),
];

fn rows(n: usize) -> Vec<Row> {
    let start = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid instant");
    (1..=n as i64)
        .map(|i| Row {
            id: i,
            title: format!("Post number {i}"),
            body: format!("{}{i}", "Lorem ipsum dolor sit amet. ".repeat(4)),
            score: (i * 7919) % 1000,
            status: ["draft", "published", "archived"][(i % 3) as usize].to_string(),
            created_at: start + chrono::Duration::minutes(i),
        })
        .collect()
}

/// One cell as the codecs render it: by field type, into an owned `Json`.
fn cell(row: &Row, column: usize) -> Json {
    match column {
        0 => int_to_json(row.id),
        1 => Json::String(row.title.clone()),
        2 => Json::String(row.body.clone()),
        3 => int_to_json(row.score),
        4 => Json::String(row.status.clone()),
        _ => Json::String(format_instant(&row.created_at)),
    }
}

/// The columns of a statement: its fields and the template its records are cloned from.
struct Columns {
    fields: Vec<FieldRef>,
    template: RecordTemplate,
}

fn columns() -> Columns {
    let fields: Vec<FieldRef> = FIELDS
        .iter()
        .map(|(name, ty)| FieldRef::new(&Field::new(*name, *ty)))
        .collect();
    Columns {
        template: RecordTemplate::new(&fields),
        fields,
    }
}

/// `SqlxDriver::record`: the cells into a record cloned from the template.
fn record(row: &Row, columns: &Columns) -> Record {
    RecordTemplate::record_of(Some(&columns.template), &columns.fields, |i, _| {
        Ok::<_, std::convert::Infallible>(cell(row, i))
    })
    .unwrap_or_default()
}

/// The whole path: records, the list's array, the envelope, the bytes.
fn response(rows: &[Row], columns: &Columns) -> Vec<u8> {
    let records: Vec<Record> = rows.iter().map(|r| record(r, columns)).collect();
    let data = Json::Array(records.into_iter().map(Json::Object).collect());
    let mut envelope = Map::new();
    envelope.insert("data".into(), data);
    envelope.insert(
        "meta".into(),
        json!({ "count": 10_000, "page": 1, "pageSize": rows.len(), "totalPage": 500 }),
    );
    serde_json::to_vec(&Json::Object(envelope)).unwrap_or_default()
}

#[derive(Serialize)]
struct Post<'a> {
    id: i64,
    title: &'a str,
    body: &'a str,
    score: i64,
    status: &'a str,
    #[serde(rename = "createdAt")]
    created_at: String,
}

#[derive(Serialize)]
struct Meta {
    count: u64,
    page: u64,
    #[serde(rename = "pageSize")]
    page_size: usize,
    #[serde(rename = "totalPage")]
    total_page: u64,
}

#[derive(Serialize)]
struct Envelope<'a> {
    data: Vec<Post<'a>>,
    meta: Meta,
}

/// The baseline's way: typed structs straight to bytes.
fn derived(rows: &[Row]) -> Vec<u8> {
    let data = rows
        .iter()
        .map(|r| Post {
            id: r.id,
            title: &r.title,
            body: &r.body,
            score: r.score,
            status: &r.status,
            created_at: format_instant(&r.created_at),
        })
        .collect();
    let envelope = Envelope {
        data,
        meta: Meta {
            count: 10_000,
            page: 1,
            page_size: rows.len(),
            total_page: 500,
        },
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let columns = columns();
    let mut group = c.benchmark_group("encode posts");
    for n in [20usize, 1_000] {
        let input = rows(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("rows to records", n), &input, |b, rows| {
            b.iter(|| {
                rows.iter()
                    .map(|r| record(r, black_box(&columns)))
                    .collect::<Vec<_>>()
            })
        });
        let records = Json::Array(
            input
                .iter()
                .map(|r| Json::Object(record(r, &columns)))
                .collect(),
        );
        group.bench_with_input(
            BenchmarkId::new("records to bytes", n),
            &records,
            |b, data| b.iter(|| serde_json::to_vec(black_box(data)).unwrap_or_default()),
        );
        group.bench_with_input(
            BenchmarkId::new("rows to response bytes", n),
            &input,
            |b, rows| b.iter(|| response(black_box(rows), &columns)),
        );
        group.bench_with_input(
            BenchmarkId::new("reference: derive(Serialize) to bytes", n),
            &input,
            |b, rows| b.iter(|| derived(black_box(rows))),
        );
    }
    group.finish();

    // Request values go the other way through `Value`; its rendering is what `create` and
    // `update` answers with when a connector echoes the written values.
    let values: Vec<Value> = FIELDS
        .iter()
        .zip([
            json!(1),
            json!("Post"),
            json!("Body"),
            json!(5),
            json!("draft"),
            json!("2024-01-01T00:00:00.000Z"),
        ])
        .map(|((_, ty), v)| Value::coerce(*ty, &v, "bench").unwrap_or(Value::Null))
        .collect();
    c.bench_function("Value::to_json, one posts row", |b| {
        b.iter(|| {
            black_box(&values)
                .iter()
                .map(Value::to_json)
                .collect::<Vec<_>>()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
