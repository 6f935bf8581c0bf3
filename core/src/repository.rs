//! The storage interface every connector implements, one instance per collection.

use std::sync::Arc;

use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::filter::{FieldRef, Filter};
use crate::query::FindOptions;
use crate::schema::Collection;
use crate::value::Value;

/// A record as the API renders it: attribute name to JSON value, in schema order.
pub type Record = Map<String, Json>;

/// Makes the records of one statement, whose rows all share the same columns.
///
/// A record is a map keyed by name, and inserting a name hashes it. The names are
/// inserted once, into an empty record that every row's record is cloned from, so a page
/// of rows hashes each name once rather than once per row. For one row, building the
/// template costs more than it saves: [`RecordTemplate::record_of`] without one inserts
/// directly.
#[derive(Debug, Clone)]
pub struct RecordTemplate {
    empty: Record,
}

impl RecordTemplate {
    /// The template for rows whose columns are `fields`, in order.
    pub fn new(fields: &[FieldRef]) -> Self {
        Self::with_room(fields, 0)
    }

    /// [`RecordTemplate::new`] whose records have room for `room` more entries
    /// ([`crate::query::FindOptions::room`]): a record cloned from it keeps its capacity.
    pub fn with_room(fields: &[FieldRef], room: usize) -> Self {
        let mut empty = Record::with_capacity(fields.len() + room);
        for f in fields {
            empty.insert(f.name.clone(), Json::Null);
        }
        Self { empty }
    }

    /// A record of `fields` whose value at each position is `cell(position, field)`,
    /// cloned from `template` when given (it must have been made from `fields`).
    pub fn record_of<E>(
        template: Option<&Self>,
        fields: &[FieldRef],
        mut cell: impl FnMut(usize, &FieldRef) -> std::result::Result<Json, E>,
    ) -> std::result::Result<Record, E> {
        match template {
            // A name selected twice leaves the template shorter: insert instead, the
            // later value winning.
            Some(t) if t.empty.len() == fields.len() => {
                let mut out = t.empty.clone();
                for ((i, f), slot) in fields.iter().enumerate().zip(out.values_mut()) {
                    *slot = cell(i, f)?;
                }
                Ok(out)
            }
            _ => {
                let mut out = Record::with_capacity(fields.len());
                for (i, f) in fields.iter().enumerate() {
                    out.insert(f.name.clone(), cell(i, f)?);
                }
                Ok(out)
            }
        }
    }
}

/// Batches of records, read as they are asked for ([`Repository::find_batches`]).
pub type RecordBatches = BoxStream<'static, Result<Vec<Record>>>;

/// Records already read, handed out `batch` at a time.
pub fn in_batches(rows: Vec<Record>, batch: usize) -> RecordBatches {
    let mut rows = rows.into_iter();
    let batch = batch.max(1);
    let batches = std::iter::from_fn(move || {
        let next: Vec<Record> = rows.by_ref().take(batch).collect();
        (!next.is_empty()).then_some(Ok(next))
    });
    futures_util::stream::iter(batches).boxed()
}

/// Reads and writes one collection.
///
/// Implementations turn the typed inputs into parameterised queries; every write is atomic
/// (it completes, or leaves the data as it was).
#[async_trait::async_trait]
pub trait Repository: Send + Sync {
    /// The collection this repository serves.
    fn collection(&self) -> &Arc<Collection>;

    /// Rows matching `options`, rendered as records.
    async fn find(&self, options: &FindOptions) -> Result<Vec<Record>>;

    /// Rows matching `options`, in batches of at most `batch` records, read as the stream is
    /// consumed, so what is held is a batch rather than the whole answer. It returns once
    /// the first batch is read, so a query the database refuses fails here, not midway.
    ///
    /// The default reads every row with [`Repository::find`] and hands them out in batches;
    /// connectors that can read from a cursor do so.
    async fn find_batches(&self, options: &FindOptions, batch: usize) -> Result<RecordBatches> {
        Ok(in_batches(self.find(options).await?, batch))
    }

    /// How many rows match `filter`.
    async fn count(&self, filter: Option<&Filter>) -> Result<u64>;

    /// Inserts every row in one transaction and returns them as stored.
    async fn create(&self, rows: &[WriteValues]) -> Result<Vec<Record>>;

    /// Updates every row matching `filter` and returns them as stored, in key order.
    async fn update(&self, filter: Option<&Filter>, values: &WriteValues) -> Result<Vec<Record>>;

    /// Deletes every row matching `filter`; returns how many.
    async fn destroy(&self, filter: Option<&Filter>) -> Result<u64>;

    /// The rows linked through a junction to any of `sources`, each with the source key it
    /// is linked to, in one query (`None`: not supported here; the caller reads the junction
    /// and the rows separately). Ordered by primary key; `fields` limits the attributes.
    async fn find_linked(
        &self,
        _link: &Link<'_>,
        _sources: &[Value],
        _fields: Option<&[FieldRef]>,
    ) -> Result<Option<Vec<(Json, Record)>>> {
        Ok(None)
    }
}

/// How a junction table links source rows to this repository's rows.
#[derive(Debug, Clone, Copy)]
pub struct Link<'a> {
    /// The junction collection.
    pub junction: &'a Collection,
    /// The junction column holding the source key.
    pub source_column: &'a FieldRef,
    /// The junction column holding this collection's key.
    pub target_column: &'a FieldRef,
    /// The column of this collection the junction points at.
    pub target_key: &'a FieldRef,
}

/// Column values to write, checked against the schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteValues(pub Vec<(FieldRef, Value)>);

/// Which keys of `values` may be written.
#[derive(Debug, Clone, Default)]
pub struct WriteFilter {
    /// Only these keys, when given.
    pub whitelist: Option<Vec<String>>,
    /// Never these keys.
    pub blacklist: Vec<String>,
}

/// Whether the values are for a new row or an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// `create`: fills `createdAt` and `updatedAt`.
    Create,
    /// `update`: fills `updatedAt`; the primary key may not change.
    Update,
}

impl WriteValues {
    /// Checks a `values` object against `collection`.
    ///
    /// Keys that are not fields are ignored (NocoBase's behaviour, so clients can send back
    /// records they read, appends included); a value of the wrong type is a 400 naming it.
    pub fn from_json(
        collection: &Collection,
        values: &Json,
        kind: WriteKind,
        allowed: &WriteFilter,
        at: &str,
    ) -> Result<Self> {
        let map = match values {
            Json::Object(map) => map,
            Json::Null => &Map::new(),
            other => {
                return Err(Error::bad_request(format!(
                    "{at}: expected an object of field values, got {other}"
                )));
            }
        };
        let now = chrono::Utc::now();
        let mut out = Vec::with_capacity(map.len() + 2);
        for (key, value) in map {
            let Some(field) = collection.field(key) else {
                continue;
            };
            let permitted = allowed
                .whitelist
                .as_ref()
                .is_none_or(|w| w.iter().any(|k| k == key))
                && !allowed.blacklist.iter().any(|k| k == key);
            let managed =
                Some(field) == collection.created_at() || Some(field) == collection.updated_at();
            if !permitted || managed || (kind == WriteKind::Update && field.primary_key) {
                continue;
            }
            out.push((
                FieldRef::new(field),
                Value::coerce(field.field_type, value, &format!("{at}.{key}"))?,
            ));
        }
        if kind == WriteKind::Create
            && let Some(field) = collection.created_at()
        {
            out.push((FieldRef::new(field), Value::DateTime(now)));
        }
        if let Some(field) = collection.updated_at() {
            out.push((FieldRef::new(field), Value::DateTime(now)));
        }
        Ok(Self(out))
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType};
    use serde_json::json;

    fn fields(names: &[&str]) -> Vec<FieldRef> {
        names
            .iter()
            .map(|n| FieldRef::new(&Field::new(*n, FieldType::BigInt)))
            .collect()
    }

    fn build(template: Option<&RecordTemplate>, fields: &[FieldRef]) -> Record {
        RecordTemplate::record_of(template, fields, |i, _| Ok::<_, Error>(json!(i))).expect("cells")
    }

    #[test]
    fn a_template_makes_the_record_inserting_would() {
        let columns = fields(&["id", "title", "score"]);
        let template = RecordTemplate::new(&columns);
        let with = build(Some(&template), &columns);
        assert_eq!(with, build(None, &columns));
        let order: Vec<&String> = with.keys().collect();
        assert_eq!(order, ["id", "title", "score"]);
        // Room for appends changes the capacity, not the record.
        let roomy = RecordTemplate::with_room(&columns, 2);
        let mut grown = build(Some(&roomy), &columns);
        assert_eq!(grown, with);
        grown.insert("tags".into(), json!([]));
        assert_eq!(grown.keys().next_back().map(String::as_str), Some("tags"));
        // A name selected twice: one entry, the later value, with or without a template.
        let twice = fields(&["id", "title", "id"]);
        let template = RecordTemplate::new(&twice);
        assert_eq!(build(Some(&template), &twice), build(None, &twice));
        assert_eq!(build(None, &twice)["id"], json!(2));
    }
}
