//! `toy`: a connector whose collections live in memory, declared in the source's options.
//! It exists for the tests and as the worked example of adding a connector
//! (docs/architecture.md, "Adding a connector"): a crate that depends only on
//! `manifold-core`, with a factory, a connector and a repository.
//!
//! ```json
//! {"collections": {"notes": {"fields": {"id": "integer", "title": "string"}, "primaryKey": "id"}}}
//! ```
//!
//! Filters and sorts run on core's reference evaluator ([`matches`], [`compare_records`]),
//! the one the differential tests hold every database to. It declares no relations, so no
//! filter or sort reaches across one. Rows live as long as the source.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use manifold_core::data_source::ConnectTarget;
use manifold_core::error::UNIQUE_VIOLATION;
use manifold_core::filter::{FieldRef, Filter, Operator, ValueOperator, compare_records, matches};
use manifold_core::options::option_error;
use manifold_core::query::add_key_tiebreaker;
use manifold_core::repository::Record;
use manifold_core::schema::TableName;
use manifold_core::{
    Collection, Connector, DataSourceFactory, Error, Field, FieldType, FindOptions, Repository,
    Result, WriteValues,
};
use serde_json::Value as Json;

/// Makes `toy` sources: the type clients name in `dataSources:create`.
pub struct ToyFactory;

#[async_trait::async_trait]
impl DataSourceFactory for ToyFactory {
    fn kind(&self) -> &str {
        "toy"
    }

    /// Nothing: the rows are in this process. The options are still read, so bad ones fail
    /// registration as `connect` would.
    async fn targets(&self, options: &Json) -> Result<Vec<ConnectTarget>> {
        declared_collections(options)?;
        Ok(Vec::new())
    }

    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>> {
        let collections = declared_collections(options)?;
        let tables = collections
            .iter()
            .map(|c| (c.name().to_owned(), Arc::default()))
            .collect();
        Ok(Arc::new(ToyConnector {
            collections,
            tables,
        }))
    }
}

/// One `toy` source: the declared collections and their rows.
struct ToyConnector {
    collections: Vec<Collection>,
    tables: HashMap<String, Arc<Mutex<Table>>>,
}

#[async_trait::async_trait]
impl Connector for ToyConnector {
    async fn introspect(&self) -> Result<Vec<Collection>> {
        Ok(self.collections.clone())
    }

    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        // Core asks only for introspected collections, which all have a table.
        let table = self
            .tables
            .get(collection.name())
            .cloned()
            .unwrap_or_default();
        Arc::new(ToyRepository { collection, table })
    }

    /// Not the array operators: a toy field holds no array, and declining them here shows
    /// how a connector says what it cannot run.
    fn supports_operator(&self, op: Operator) -> bool {
        !matches!(
            op,
            Operator::Value(
                ValueOperator::AnyOf
                    | ValueOperator::NoneOf
                    | ValueOperator::Match
                    | ValueOperator::NotMatch
                    | ValueOperator::ArrayEmpty
                    | ValueOperator::ArrayNotEmpty
            )
        )
    }

    async fn close(&self) {}
}

/// The rows of one collection, as the API renders them.
#[derive(Default)]
struct Table {
    rows: Vec<Record>,
    /// The largest integer key so far; a row that leaves its key out gets the next one.
    last_id: i64,
}

/// Reads and writes one toy collection; every call holds its table's lock throughout, so
/// each write is atomic.
struct ToyRepository {
    collection: Arc<Collection>,
    table: Arc<Mutex<Table>>,
}

impl ToyRepository {
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere cannot leave a table half-written: writes change it only after
        // every check has passed.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `filter` keeps `row` (no filter keeps every row).
fn kept(filter: Option<&Filter>, row: &Record) -> bool {
    filter.is_none_or(|f| matches(f, row))
}

#[async_trait::async_trait]
impl Repository for ToyRepository {
    fn collection(&self) -> &Arc<Collection> {
        &self.collection
    }

    async fn find(&self, options: &FindOptions) -> Result<Vec<Record>> {
        let table = self.table();
        let mut rows: Vec<&Record> = table
            .rows
            .iter()
            .filter(|row| kept(options.filter.as_ref(), row))
            .collect();
        rows.sort_by(|a, b| compare_records(a, b, &options.sort));
        let fields = match &options.fields {
            Some(fields) => fields.clone(),
            None => FieldRef::visible(&self.collection),
        };
        let offset = usize::try_from(options.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = options
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(rows
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|row| project(row, &fields))
            .collect())
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let table = self.table();
        Ok(table.rows.iter().filter(|row| kept(filter, row)).count() as u64)
    }

    async fn create(&self, rows: &[WriteValues]) -> Result<Vec<Record>> {
        let mut table = self.table();
        let mut last_id = table.last_id;
        let mut created: Vec<Record> = Vec::with_capacity(rows.len());
        for values in rows {
            let mut row: Record = self
                .collection
                .fields()
                .iter()
                .map(|f| (f.name.clone(), Json::Null))
                .collect();
            write(&mut row, values);
            if let Some(key) = self.collection.single_key() {
                let id = match row.get(&key.name).filter(|id| !id.is_null()) {
                    Some(id) => id.clone(),
                    None if key.auto_increment => Json::from(last_id + 1),
                    None => {
                        return Err(Error::bad_request(format!(
                            "values.{}: the key is required",
                            key.name
                        )));
                    }
                };
                let taken = |r: &Record| r.get(&key.name) == Some(&id);
                if table.rows.iter().chain(&created).any(taken) {
                    return Err(
                        Error::bad_request(format!("{} {id} already exists", key.name))
                            .with_code(UNIQUE_VIOLATION),
                    );
                }
                last_id = last_id.max(id.as_i64().unwrap_or(last_id));
                row.insert(key.name.clone(), id);
            }
            created.push(row);
        }
        // Only now, every row checked: a refused batch leaves the table as it was.
        table.last_id = last_id;
        table.rows.extend(created.iter().cloned());
        Ok(created)
    }

    async fn update(&self, filter: Option<&Filter>, values: &WriteValues) -> Result<Vec<Record>> {
        let mut table = self.table();
        let mut updated = Vec::new();
        for row in table.rows.iter_mut().filter(|row| kept(filter, row)) {
            write(row, values);
            updated.push(row.clone());
        }
        let mut by_key = Vec::new();
        add_key_tiebreaker(&self.collection, &mut by_key);
        updated.sort_by(|a, b| compare_records(a, b, &by_key));
        Ok(updated)
    }

    async fn destroy(&self, filter: Option<&Filter>) -> Result<u64> {
        let mut table = self.table();
        let before = table.rows.len();
        table.rows.retain(|row| !kept(filter, row));
        Ok((before - table.rows.len()) as u64)
    }
}

/// Writes checked `values` into `row`, rendered as the API renders them.
fn write(row: &mut Record, values: &WriteValues) {
    for (field, value) in &values.0 {
        row.insert(field.name.clone(), value.to_json());
    }
}

/// `row` with only `fields`, in their order.
fn project(row: &Record, fields: &[FieldRef]) -> Record {
    fields
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                row.get(&f.name).cloned().unwrap_or(Json::Null),
            )
        })
        .collect()
}

/// Reads `options.collections`: each collection's `fields` (name to type, in order) and
/// its `primaryKey`, one of them. An integer key the client leaves out is generated.
fn declared_collections(options: &Json) -> Result<Vec<Collection>> {
    let declared = options
        .get("collections")
        .and_then(Json::as_object)
        .ok_or_else(|| option_error("collections", "an object of collections by name"))?;
    declared
        .iter()
        .map(|(name, spec)| {
            let at = format!("collections.{name}");
            let key = spec
                .get("primaryKey")
                .and_then(Json::as_str)
                .ok_or_else(|| option_error(&format!("{at}.primaryKey"), "a field name"))?;
            let types = spec
                .get("fields")
                .and_then(Json::as_object)
                .ok_or_else(|| option_error(&format!("{at}.fields"), "an object of types"))?;
            let fields = types
                .iter()
                .map(|(field, ty)| declared_field(field, ty, key, &at))
                .collect::<Result<Vec<_>>>()?;
            if !fields.iter().any(|f| f.primary_key) {
                return Err(option_error(
                    &format!("{at}.primaryKey"),
                    "the name of one of its fields",
                ));
            }
            Collection::new(name.as_str(), TableName::new(name.as_str()), fields)
        })
        .collect()
}

/// One declared field: `"title": "string"`. Arrays are not kept (see
/// [`ToyConnector::supports_operator`]).
fn declared_field(name: &str, ty: &Json, key: &str, at: &str) -> Result<Field> {
    let field_type = ty
        .as_str()
        .and_then(FieldType::parse)
        .filter(|t| *t != FieldType::Array)
        .ok_or_else(|| {
            option_error(
                &format!("{at}.fields.{name}"),
                "a field type other than array",
            )
        })?;
    let mut field = Field::new(name, field_type);
    if name == key {
        field.primary_key = true;
        field.unique = true;
        field.allow_null = false;
        field.auto_increment = matches!(field_type, FieldType::Integer | FieldType::BigInt);
    }
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifold_core::filter::parse_filter;
    use manifold_core::repository::WriteKind;
    use serde_json::json;

    fn options() -> Json {
        json!({"collections": {"notes": {
            "fields": {"id": "integer", "title": "string", "done": "boolean"},
            "primaryKey": "id"
        }}})
    }

    #[tokio::test]
    async fn rows_written_are_read_back_filtered_and_in_order() {
        let connector = ToyFactory.connect(&options()).await.expect("connects");
        let notes = Arc::new(connector.introspect().await.expect("declared").remove(0));
        let repository = connector.repository(notes.clone());
        let rows = [json!({"title": "b"}), json!({"title": "a", "done": true})]
            .iter()
            .map(|v| {
                WriteValues::from_json(&notes, v, WriteKind::Create, &Default::default(), "values")
            })
            .collect::<Result<Vec<_>>>()
            .expect("valid values");
        let created = repository.create(&rows).await.expect("created");
        assert_eq!(
            created[1],
            json!({"id": 2, "title": "a", "done": true})
                .as_object()
                .cloned()
                .expect("an object")
        );

        let mut options =
            FindOptions::from_params(&notes, &manifold_core::Params::default()).expect("no params");
        options.filter =
            parse_filter(&notes, &json!({"title": {"$in": ["a", "b"]}})).expect("valid");
        options.sort.insert(
            0,
            manifold_core::query::SortKey {
                field: FieldRef::new(notes.field("title").expect("declared")),
                descending: false,
            },
        );
        let titles: Vec<Json> = repository
            .find(&options)
            .await
            .expect("found")
            .iter()
            .map(|r| r["title"].clone())
            .collect();
        assert_eq!(titles, [json!("a"), json!("b")]);

        let again = repository.create(&rows[..1]).await.expect("a third row");
        assert_eq!(again[0]["id"], json!(3));
        let duplicate = WriteValues::from_json(
            &notes,
            &json!({"id": 1}),
            WriteKind::Create,
            &Default::default(),
            "values",
        )
        .expect("valid");
        let refused = repository
            .create(&[duplicate])
            .await
            .expect_err("id 1 exists");
        assert_eq!(refused.code(), Some(UNIQUE_VIOLATION));
        assert_eq!(repository.count(None).await, Ok(3));
    }

    #[tokio::test]
    async fn bad_options_name_the_option() {
        let refused = |options: Json| async move {
            ToyFactory
                .targets(&options)
                .await
                .expect_err("refused")
                .message()
                .to_owned()
        };
        assert_eq!(
            refused(json!({})).await,
            "options.collections: expected an object of collections by name"
        );
        assert_eq!(
            refused(
                json!({"collections": {"n": {"fields": {"id": "integer"}, "primaryKey": "nope"}}})
            )
            .await,
            "options.collections.n.primaryKey: expected the name of one of its fields"
        );
        assert_eq!(
            refused(
                json!({"collections": {"n": {"fields": {"id": "vector"}, "primaryKey": "id"}}})
            )
            .await,
            "options.collections.n.fields.id: expected a field type other than array"
        );
    }
}
