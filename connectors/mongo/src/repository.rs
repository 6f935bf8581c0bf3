//! The repository of one MongoDB collection: reads through aggregation pipelines, writes
//! in multi-document transactions where the deployment has them; and the unit of work
//! whose repositories share one session and one transaction.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use manifold_core::connector::UnitOfWork;
use manifold_core::error::{Error, Result};
use manifold_core::filter::{FieldRef, Filter};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, RecordBatches, Repository, WriteValues, in_batches};
use manifold_core::schema::Collection;
use manifold_core::value::Value;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, RawDocumentBuf, Utf8Lossy, doc};
use mongodb::error::{
    Error as MongoError, ErrorKind as MongoKind, TRANSIENT_TRANSACTION_ERROR,
    UNKNOWN_TRANSACTION_COMMIT_RESULT,
};
use mongodb::options::{AggregateOptions, CountOptions, ReturnDocument};
use mongodb::{Client, ClientSession, Database};
use tracing::Instrument as _;

use crate::codec::render;
use crate::compile::Compiler;
use crate::error::map_mongo;
use crate::introspect::{Extras, INTEGER_KEY, SCHEMAS, SEQUENCE};

/// At most this many keys go into one `$in` of a delete, so a large destroy never
/// builds a command near MongoDB's 16 MB limit.
const DELETE_CHUNK: usize = 10_000;

/// How often a transaction that failed with a transient error (a write conflict, a
/// primary election) is run again before the error reaches the client.
const TRANSACTION_ATTEMPTS: u32 = 3;

/// One write, run as a unit by [`MongoRepository::write`].
enum Work<'a> {
    /// Insert in order, then read the stored documents back.
    Insert {
        docs: &'a [Document],
        keys: &'a [Bson],
    },
    /// Read documents by key.
    Read { keys: &'a [Bson] },
    /// Note the matching keys, update those documents, read them back in key order.
    Update {
        query: &'a Document,
        change: &'a Document,
    },
    /// Note the matching keys and delete those documents.
    Delete { query: &'a Document },
}

/// What a write produced.
enum Done {
    Documents(Vec<Document>),
    Count(u64),
}

/// A stored document as an owned [`Document`], read without serde: serde would take
/// keys such as `$oid` in stored data for extended JSON and fail. Invalid UTF-8 (which
/// other clients can store) is replaced rather than failing the whole read.
pub(crate) fn owned(raw: RawDocumentBuf) -> Result<Document, MongoError> {
    Ok(Utf8Lossy::<Document>::try_from(raw)?.0)
}

/// `doc` as a record of `fields`.
fn record_of(doc: &Document, fields: &[FieldRef]) -> Record {
    fields
        .iter()
        .map(|f| (f.name.clone(), render(f.field_type, doc.get(&f.column))))
        .collect()
}

/// What every repository of one data source shares.
pub(crate) struct Shared {
    pub client: Client,
    pub db: Database,
    /// `maxTimeMS` of every read and of the matching step of every write.
    pub max_time: Option<Duration>,
    /// Whether writes run in multi-document transactions.
    pub transactions: bool,
    /// What operation spans say about the deployment (namespace, first host).
    pub target: manifold_core::telemetry::DbAttributes,
    /// Defaults and names per collection, filled by introspection and creation, handed
    /// to each new repository (the connector's and its units' alike).
    pub extras: std::sync::Mutex<HashMap<String, Arc<Extras>>>,
}

impl Shared {
    /// The defaults and names of the collection stored as `name` (none when it was
    /// neither introspected nor created here).
    fn extras_of(&self, name: &str) -> Arc<Extras> {
        self.extras
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}

/// The session of a unit of work, shared by every repository the unit hands out; `None`
/// once the unit has committed or been dropped.
type UnitSession = Arc<tokio::sync::Mutex<Option<ClientSession>>>;

/// The session one operation runs on.
enum Lease<'a> {
    /// A session of the operation's own (a standalone repository's write). Boxed: a
    /// session is large, and every lease would be as large.
    Own(Box<ClientSession>),
    /// The unit of work's session, held for the whole operation, so the unit's
    /// repositories take turns on it.
    Shared(tokio::sync::MutexGuard<'a, Option<ClientSession>>),
}

impl Lease<'_> {
    fn session(&mut self) -> Result<&mut ClientSession> {
        match self {
            Lease::Own(session) => Ok(session),
            Lease::Shared(guard) => guard.as_mut().ok_or_else(ended),
        }
    }
}

/// A repository of a unit of work used after the unit committed or was dropped.
fn ended() -> Error {
    Error::internal("the unit of work was already committed or dropped")
}

/// Starts a transaction on `s`, whose commit may take at most `max_time` when one is set.
async fn start_transaction(
    s: &mut ClientSession,
    max_time: Option<Duration>,
) -> Result<(), MongoError> {
    match max_time {
        Some(limit) => s.start_transaction().max_commit_time(limit).await,
        None => s.start_transaction().await,
    }
}

/// Commits the transaction open on `s`.
async fn commit_transaction(s: &mut ClientSession) -> Result<(), MongoError> {
    let mut commits = 0;
    loop {
        commits += 1;
        match s.commit_transaction().await {
            Ok(()) => return Ok(()),
            // Committing again is safe: the server answers a repeated commit of the
            // same transaction with its first outcome.
            Err(e)
                if commits < TRANSACTION_ATTEMPTS
                    && e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads and writes one collection, on sessions of its own or inside a unit of work.
///
/// `update` and `destroy` first read the keys of the matching documents (under
/// `maxTimeMS`, which MongoDB's update and delete commands do not all honour), then write
/// by key; with transactions both steps are one atomic unit. `create` inserts in order and
/// reads the stored documents back.
///
/// A repository of a [`MongoUnit`] runs every operation, reads included, on the unit's
/// session inside its transaction, so it sees the unit's own uncommitted writes.
pub struct MongoRepository {
    shared: Arc<Shared>,
    coll: mongodb::Collection<Document>,
    /// The same collection, read as raw documents (see [`owned`]).
    raw: mongodb::Collection<RawDocumentBuf>,
    collection: Arc<Collection>,
    visible: Vec<FieldRef>,
    extras: Arc<Extras>,
    /// The unit of work this repository belongs to; `None`: each operation starts its own
    /// session (and each write its own transaction).
    unit: Option<UnitSession>,
}

impl MongoRepository {
    /// The repository of `collection`, inside the unit of work whose session is `unit`
    /// when there is one.
    pub(crate) fn new(
        shared: Arc<Shared>,
        collection: Arc<Collection>,
        unit: Option<UnitSession>,
    ) -> Self {
        let name = &collection.table().name;
        let coll = shared.db.collection::<Document>(name);
        let raw = shared.db.collection::<RawDocumentBuf>(name);
        let extras = shared.extras_of(name);
        let visible = FieldRef::visible(&collection);
        Self {
            shared,
            coll,
            raw,
            collection,
            visible,
            extras,
            unit,
        }
    }

    /// The session for one write: the unit's, or a new one.
    async fn lease(&self) -> Result<Lease<'_>> {
        match &self.unit {
            Some(unit) => Ok(Lease::Shared(unit.lock().await)),
            None => self
                .shared
                .client
                .start_session()
                .await
                .map(|s| Lease::Own(Box::new(s)))
                .map_err(|e| self.map(&e)),
        }
    }

    /// The session for one read: the unit's, or `None`. A standalone repository reads on
    /// the driver's implicit session, which a server without sessions goes without where
    /// an explicit one would fail the read.
    async fn read_lease(&self) -> Option<Lease<'_>> {
        match &self.unit {
            Some(unit) => Some(Lease::Shared(unit.lock().await)),
            None => None,
        }
    }

    fn map(&self, e: &MongoError) -> Error {
        map_mongo(e, &self.extras.names)
    }

    /// A client span with the OpenTelemetry database attributes; `db.query.text` is the
    /// command's shape (`shape`, rendered with every value replaced by `"?"`) and is built
    /// only when the span is recorded.
    fn span(&self, operation: &'static str, shape: Option<&[Document]>) -> tracing::Span {
        self.shared
            .target
            .span(operation, &self.collection.table().name, || {
                query_shape(operation, shape)
            })
    }

    /// Runs one operation under `span`, marking the span failed when it fails.
    async fn traced<T>(
        &self,
        span: tracing::Span,
        operation: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let outcome = operation.instrument(span.clone()).await;
        if let Err(e) = &outcome {
            manifold_core::telemetry::record_error(
                &span,
                manifold_core::telemetry::error_type(e.kind()),
                None,
            );
        }
        outcome
    }

    fn compiler(&self) -> Compiler<'_> {
        Compiler::new(&self.collection)
    }

    /// A stored document as a record of `fields` (missing fields are null, as SQL's NULL).
    fn record(&self, doc: &Document, fields: &[FieldRef]) -> Record {
        record_of(doc, fields)
    }

    fn aggregate_options(&self) -> AggregateOptions {
        let mut options = AggregateOptions::default();
        options.max_time = self.shared.max_time;
        options
    }

    fn find_options(
        &self,
        sort: Option<Document>,
        projection: Option<Document>,
    ) -> mongodb::options::FindOptions {
        let mut options = mongodb::options::FindOptions::default();
        options.max_time = self.shared.max_time;
        options.sort = sort;
        options.projection = projection;
        options
    }

    /// The keys of the documents matching `query`, in key order.
    async fn keys_in(
        &self,
        s: &mut ClientSession,
        query: Document,
    ) -> Result<Vec<Bson>, MongoError> {
        let options = self.find_options(Some(doc! {"_id": 1}), Some(doc! {"_id": 1}));
        let mut cursor = self
            .raw
            .find(query)
            .with_options(options)
            .session(&mut *s)
            .await?;
        let mut keys = Vec::new();
        while let Some(doc) = cursor.next(&mut *s).await {
            if let Some(id) = owned(doc?)?.remove("_id") {
                keys.push(id);
            }
        }
        Ok(keys)
    }

    /// The documents with these keys, in key order.
    async fn by_keys(
        &self,
        s: &mut ClientSession,
        keys: &[Bson],
    ) -> Result<Vec<Document>, MongoError> {
        let options = self.find_options(Some(doc! {"_id": 1}), None);
        let mut cursor = self
            .raw
            .find(doc! {"_id": {"$in": keys}})
            .with_options(options)
            .session(&mut *s)
            .await?;
        let mut docs = Vec::with_capacity(keys.len());
        while let Some(doc) = cursor.next(&mut *s).await {
            docs.push(owned(doc?)?);
        }
        Ok(docs)
    }

    /// Runs `work` in a session: inside a transaction (run again on transient errors) when
    /// the deployment has them, else as consecutive operations. Inside a unit of work it
    /// runs once in the unit's transaction: the server aborts a transaction on a transient
    /// error, taking the unit's earlier writes with it, so only the whole unit could be
    /// run again, by its caller.
    async fn write(&self, work: Work<'_>) -> Result<Done> {
        let own_transaction = self.unit.is_none() && self.shared.transactions;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = self.lease().await?;
            let session = lease.session()?;
            let outcome = if own_transaction {
                self.transaction(session, &work).await
            } else {
                self.run(session, &work).await
            };
            match outcome {
                Err(e)
                    if own_transaction
                        && attempt < TRANSACTION_ATTEMPTS
                        && e.contains_label(TRANSIENT_TRANSACTION_ERROR) =>
                {
                    tracing::debug!(error = %e, attempt, "retrying a mongodb transaction");
                }
                other => return other.map_err(|e| self.map(&e)),
            }
        }
    }

    async fn transaction(
        &self,
        s: &mut ClientSession,
        work: &Work<'_>,
    ) -> Result<Done, MongoError> {
        start_transaction(s, self.shared.max_time).await?;
        let done = match self.run(s, work).await {
            Ok(done) => done,
            Err(e) => {
                // The abort's own failure changes nothing: the server aborts an
                // unfinished transaction when it times out or the session ends.
                let _ = s.abort_transaction().await;
                return Err(e);
            }
        };
        commit_transaction(s).await?;
        Ok(done)
    }

    /// The steps of one write, on session `s`.
    async fn run(&self, s: &mut ClientSession, work: &Work<'_>) -> Result<Done, MongoError> {
        match work {
            Work::Insert { docs, keys } => {
                self.coll
                    .insert_many(docs.iter())
                    .ordered(true)
                    .session(&mut *s)
                    .await?;
                Ok(Done::Documents(self.by_keys(s, keys).await?))
            }
            Work::Read { keys } => Ok(Done::Documents(self.by_keys(s, keys).await?)),
            Work::Update { query, change } => {
                let keys = self.keys_in(s, (*query).clone()).await?;
                if keys.is_empty() {
                    return Ok(Done::Documents(Vec::new()));
                }
                self.coll
                    .update_many(doc! {"_id": {"$in": &keys}}, (*change).clone())
                    .session(&mut *s)
                    .await?;
                Ok(Done::Documents(self.by_keys(s, &keys).await?))
            }
            Work::Delete { query } => {
                let keys = self.keys_in(s, (*query).clone()).await?;
                let mut deleted = 0;
                for chunk in keys.chunks(DELETE_CHUNK) {
                    deleted += self
                        .coll
                        .delete_many(doc! {"_id": {"$in": chunk}})
                        .session(&mut *s)
                        .await?
                        .deleted_count;
                }
                Ok(Done::Count(deleted))
            }
        }
    }

    /// The documents of a write's outcome.
    fn documents(done: Done) -> Vec<Document> {
        match done {
            Done::Documents(docs) => docs,
            Done::Count(_) => Vec::new(),
        }
    }

    /// One new document per row: the written fields (nulls left out, so null and missing
    /// stay one thing and sparse unique indexes behave like SQL's), declared defaults for
    /// fields the row does not mention, and a new ObjectId key when none is given and the
    /// key is generated.
    ///
    /// A generated integer key takes the next of `numbers`.
    fn new_documents(
        &self,
        rows: &[WriteValues],
        mut numbers: std::ops::Range<i64>,
    ) -> Result<(Vec<Document>, Vec<bool>)> {
        let compiler = self.compiler();
        let key = self.collection.single_key();
        let mut docs = Vec::with_capacity(rows.len());
        let mut generated = Vec::with_capacity(rows.len());
        for row in rows {
            let mut doc = Document::new();
            for (field, value) in &row.0 {
                if !matches!(value, Value::Null) {
                    doc.insert(field.column.clone(), compiler.value(field, value)?);
                }
            }
            for (column, default) in &self.extras.defaults {
                if !row.0.iter().any(|(f, _)| &f.column == column) {
                    doc.insert(column.clone(), default.clone());
                }
            }
            let made = !doc.contains_key("_id");
            if made {
                match key {
                    Some(k) if k.column == "_id" && !k.auto_increment => {
                        return Err(Error::bad_request(format!("{} cannot be null", k.name)));
                    }
                    _ => {
                        // First, so the key leads the document as MongoDB itself would put it.
                        let id = numbers
                            .next()
                            .map_or_else(|| Bson::ObjectId(ObjectId::new()), Bson::Int64);
                        let mut with_key = doc! {"_id": id};
                        with_key.extend(doc);
                        doc = with_key;
                    }
                }
            }
            docs.push(doc);
            generated.push(made);
        }
        Ok((docs, generated))
    }

    /// The integer keys of the rows that come without one, when the collection's key is a
    /// generated integer: the next block of the counter kept in its stored definition.
    /// Taken outside any transaction, a unit of work's included, as SQL sequences are: a
    /// failed write leaves a gap, and units creating in one collection do not conflict on
    /// its counter.
    async fn number_keys(&self, rows: &[WriteValues]) -> Result<std::ops::Range<i64>> {
        let Some(key) = self
            .collection
            .single_key()
            .filter(|k| k.auto_increment && k.raw_type == INTEGER_KEY)
        else {
            return Ok(0..0);
        };
        let wanted = rows
            .iter()
            .filter(|row| {
                !row.0
                    .iter()
                    .any(|(f, v)| f.column == key.column && !matches!(v, Value::Null))
            })
            .count();
        if wanted == 0 {
            return Ok(0..0);
        }
        let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
        let name = &self.collection.table().name;
        let counter = self
            .shared
            .db
            .collection::<Document>(SCHEMAS)
            .find_one_and_update(doc! {"_id": name}, doc! {"$inc": {SEQUENCE: wanted}})
            .return_document(ReturnDocument::After)
            .await
            .map_err(|e| self.map(&e))?;
        let last = counter
            .as_ref()
            .and_then(|d| match d.get(SEQUENCE) {
                Some(Bson::Int64(n)) => Some(*n),
                Some(Bson::Int32(n)) => Some(i64::from(*n)),
                _ => None,
            })
            .ok_or_else(|| {
                Error::internal(format!("the key counter of collection {name} is missing"))
            })?;
        Ok(last - wanted + 1..last + 1)
    }

    /// Puts `docs` in the order of `keys` (the insertion order).
    fn in_key_order(&self, keys: &[Bson], docs: Vec<Document>) -> Result<Vec<Record>> {
        let mut by_key: HashMap<Bson, Document> = docs
            .into_iter()
            .filter_map(|d| Some((d.get("_id")?.clone(), d)))
            .collect();
        keys.iter()
            .map(|k| {
                by_key
                    .remove(k)
                    .map(|d| self.record(&d, &self.visible))
                    .ok_or_else(|| Error::internal("a created document could not be read back"))
            })
            .collect()
    }

    /// Without transactions: deletes the documents an ordered insert wrote before it
    /// failed. Only those are known to be ours; when the failure gives no position, only
    /// the documents whose keys were generated here are (a given key may be another
    /// document's).
    async fn roll_back(&self, failure: &MongoError, keys: &[Bson], generated: &[bool]) {
        let written: Vec<Bson> = match &*failure.kind {
            MongoKind::InsertMany(f) => match f.write_errors.as_deref() {
                Some([first, ..]) => keys.iter().take(first.index).cloned().collect(),
                _ => Vec::new(),
            },
            _ => keys
                .iter()
                .zip(generated)
                .filter(|(_, made)| **made)
                .map(|(k, _)| k.clone())
                .collect(),
        };
        if written.is_empty() {
            return;
        }
        if let Err(e) = self.coll.delete_many(doc! {"_id": {"$in": &written}}).await {
            tracing::error!(error = %e, collection = %self.collection.name(), "could not roll back a failed create");
        }
    }
}

#[async_trait::async_trait]
impl Repository for MongoRepository {
    fn collection(&self) -> &Arc<Collection> {
        &self.collection
    }

    async fn find(&self, options: &FindOptions) -> Result<Vec<Record>> {
        if options.limit == Some(0) {
            return Ok(Vec::new());
        }
        let pipeline = self.compiler().find_pipeline(options)?;
        let fields = options.fields.as_ref().unwrap_or(&self.visible);
        let span = self.span("aggregate", Some(pipeline.as_slice()));
        let docs: Vec<Document> = self
            .traced(span, async {
                let mut lease = self.read_lease().await;
                let session = lease.as_mut().map(Lease::session).transpose()?;
                let read: Result<Vec<Document>, MongoError> = async {
                    let aggregate = self
                        .raw
                        .aggregate(pipeline)
                        .with_options(self.aggregate_options())
                        .with_type::<RawDocumentBuf>();
                    let mut docs = Vec::new();
                    match session {
                        Some(s) => {
                            let mut cursor = aggregate.session(&mut *s).await?;
                            while let Some(raw) = cursor.next(&mut *s).await {
                                docs.push(owned(raw?)?);
                            }
                        }
                        None => {
                            let mut cursor = aggregate.await?;
                            while let Some(raw) = cursor.next().await {
                                docs.push(owned(raw?)?);
                            }
                        }
                    }
                    Ok(docs)
                }
                .await;
                read.map_err(|e| self.map(&e))
            })
            .await?;
        Ok(docs.iter().map(|d| self.record(d, fields)).collect())
    }

    /// Reads from the aggregation's cursor, which fetches from the server a batch at a
    /// time as the stream is consumed and is closed when the stream is dropped.
    ///
    /// Inside a unit of work the documents are read whole with [`Repository::find`]: a
    /// cursor on the unit's session would hold the session until the stream is dropped,
    /// and the unit's other repositories would wait for it.
    async fn find_batches(&self, options: &FindOptions, batch: usize) -> Result<RecordBatches> {
        if self.unit.is_some() {
            return Ok(in_batches(self.find(options).await?, batch));
        }
        if options.limit == Some(0) {
            return Ok(in_batches(Vec::new(), batch));
        }
        let pipeline = self.compiler().find_pipeline(options)?;
        let fields = options
            .fields
            .clone()
            .unwrap_or_else(|| self.visible.clone());
        let span = self.span("aggregate", Some(pipeline.as_slice()));
        let cursor = self
            .traced(span, async {
                self.raw
                    .aggregate(pipeline)
                    .with_options(self.aggregate_options())
                    .with_type::<RawDocumentBuf>()
                    .await
                    .map_err(|e| self.map(&e))
            })
            .await?;
        let extras = self.extras.clone();
        let records = cursor.map(move |raw| {
            let doc = raw
                .and_then(owned)
                .map_err(|e| map_mongo(&e, &extras.names))?;
            Ok(record_of(&doc, &fields))
        });
        Ok(records
            .chunks(batch.max(1))
            .map(|chunk| chunk.into_iter().collect::<Result<Vec<Record>>>())
            .boxed())
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let query = self.compiler().filter(filter)?;
        let mut options = CountOptions::default();
        options.max_time = self.shared.max_time;
        let span = self.span("countDocuments", Some(std::slice::from_ref(&query)));
        self.traced(span, async {
            let mut lease = self.read_lease().await;
            let mut count = self.coll.count_documents(query).with_options(options);
            if let Some(lease) = &mut lease {
                count = count.session(lease.session()?);
            }
            count.await.map_err(|e| self.map(&e))
        })
        .await
    }

    async fn create(&self, rows: &[WriteValues]) -> Result<Vec<Record>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let numbers = self.number_keys(rows).await?;
        let (docs, generated) = self.new_documents(rows, numbers)?;
        let keys: Vec<Bson> = docs.iter().filter_map(|d| d.get("_id").cloned()).collect();
        let span = self.span("insertMany", docs.get(..1));
        // A unit of work exists only where the deployment has transactions.
        if self.shared.transactions {
            let done = self
                .traced(
                    span,
                    self.write(Work::Insert {
                        docs: &docs,
                        keys: &keys,
                    }),
                )
                .await?;
            return self.in_key_order(&keys, Self::documents(done));
        }
        self.traced(span, async {
            if let Err(e) = self.coll.insert_many(&docs).ordered(true).await {
                self.roll_back(&e, &keys, &generated).await;
                return Err(self.map(&e));
            }
            let done = self.write(Work::Read { keys: &keys }).await?;
            self.in_key_order(&keys, Self::documents(done))
        })
        .await
    }

    async fn update(&self, filter: Option<&Filter>, values: &WriteValues) -> Result<Vec<Record>> {
        let query = self.compiler().filter(filter)?;
        if values.is_empty() {
            let options = FindOptions {
                filter: filter.cloned(),
                sort: self
                    .collection
                    .primary_key()
                    .map(|k| manifold_core::query::SortKey {
                        field: FieldRef::new(k),
                        descending: false,
                    })
                    .collect(),
                ..FindOptions::default()
            };
            return self.find(&options).await;
        }
        let compiler = self.compiler();
        let mut set = Document::new();
        let mut unset = Document::new();
        for (field, value) in &values.0 {
            match value {
                // Null is stored as absence, as on create.
                Value::Null => {
                    unset.insert(field.column.clone(), "");
                }
                v => {
                    set.insert(field.column.clone(), compiler.value(field, v)?);
                }
            }
        }
        let mut change = Document::new();
        if !set.is_empty() {
            change.insert("$set", set);
        }
        if !unset.is_empty() {
            change.insert("$unset", unset);
        }
        let span = self.span("updateMany", Some(&[query.clone(), change.clone()][..]));
        let done = self
            .traced(
                span,
                self.write(Work::Update {
                    query: &query,
                    change: &change,
                }),
            )
            .await?;
        Ok(Self::documents(done)
            .iter()
            .map(|d| self.record(d, &self.visible))
            .collect())
    }

    async fn destroy(&self, filter: Option<&Filter>) -> Result<u64> {
        let query = self.compiler().filter(filter)?;
        let span = self.span("deleteMany", Some(std::slice::from_ref(&query)));
        let done = self
            .traced(span, self.write(Work::Delete { query: &query }))
            .await?;
        Ok(match done {
            Done::Count(n) => n,
            Done::Documents(_) => 0,
        })
    }
}

/// A unit of work: one session with one transaction, which every repository it hands out
/// reads and writes in. Dropped without [`UnitOfWork::commit`], its session ends and the
/// driver aborts the transaction.
pub struct MongoUnit {
    shared: Arc<Shared>,
    session: UnitSession,
}

impl MongoUnit {
    /// Starts a session and a transaction on it; only where the deployment has
    /// transactions (the caller checks).
    pub(crate) async fn begin(shared: Arc<Shared>) -> Result<Self> {
        let names = crate::error::Names::default();
        let mut session = shared
            .client
            .start_session()
            .await
            .map_err(|e| map_mongo(&e, &names))?;
        start_transaction(&mut session, shared.max_time)
            .await
            .map_err(|e| map_mongo(&e, &names))?;
        Ok(Self {
            shared,
            session: Arc::new(tokio::sync::Mutex::new(Some(session))),
        })
    }
}

#[async_trait::async_trait]
impl UnitOfWork for MongoUnit {
    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(MongoRepository::new(
            self.shared.clone(),
            collection,
            Some(self.session.clone()),
        ))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let mut session = self.session.lock().await.take().ok_or_else(ended)?;
        commit_transaction(&mut session)
            .await
            .map_err(|e| map_mongo(&e, &crate::error::Names::default()))
    }
}

impl Drop for MongoUnit {
    /// Ends the session now, which aborts a transaction not committed, even while
    /// repositories of the unit are still held. A session busy with an operation (a
    /// repository running on another task) ends when its last repository goes instead.
    fn drop(&mut self) {
        if let Ok(mut session) = self.session.try_lock() {
            session.take();
        }
    }
}

/// `db.query.text` for a MongoDB operation: the command name and its documents with every
/// value replaced by `"?"` (an array of values becomes one `"?"`), so the text shows the
/// operators and field names a query used and never what it compared them with.
pub(crate) fn query_shape(operation: &str, documents: Option<&[Document]>) -> String {
    let shaped: Vec<Bson> = documents
        .unwrap_or_default()
        .iter()
        .map(|d| Bson::Document(shape_document(d)))
        .collect();
    format!("{operation} {}", Bson::Array(shaped))
}

fn shape_document(document: &Document) -> Document {
    document
        .iter()
        .map(|(k, v)| (k.clone(), shape(v)))
        .collect()
}

fn shape(value: &Bson) -> Bson {
    match value {
        Bson::Document(d) => Bson::Document(shape_document(d)),
        Bson::Array(items)
            if items
                .iter()
                .any(|i| matches!(i, Bson::Document(_) | Bson::Array(_))) =>
        {
            Bson::Array(items.iter().map(shape).collect())
        }
        Bson::Array(_) => Bson::Array(vec![Bson::String("?".into())]),
        _ => Bson::String("?".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_shape_keeps_operators_and_names_and_drops_every_value() {
        let filter = doc! {
            "$and": [{"title": {"$eq": "secret title"}}, {"_id": {"$in": [1, 2, 3]}}],
            "n": 42,
        };
        let text = query_shape("countDocuments", Some(std::slice::from_ref(&filter)));
        assert_eq!(
            text,
            r#"countDocuments [{ "$and": [{ "title": { "$eq": "?" } }, { "_id": { "$in": ["?"] } }], "n": "?" }]"#
        );
        assert!(!text.contains("secret") && !text.contains("42"));
    }
}
