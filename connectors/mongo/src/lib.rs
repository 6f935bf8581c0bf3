//! The MongoDB connector: the official driver's client, collections introspected by
//! sampling documents, the filter language compiled to query documents, and collections
//! created with a stored definition so they have a schema before they have documents.
//!
//! What differs from the SQL sources is written up in this crate's README.

mod codec;
mod compile;
mod error;
mod introspect;
mod options;
mod repository;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{StreamExt as _, TryStreamExt as _};
use manifold_core::connector::{CollectionDefinition, Connector, UnitOfWork};
use manifold_core::data_source::{ConnectTarget, DataSourceFactory};
use manifold_core::error::{Error, Result};
use manifold_core::repository::Repository;
use manifold_core::schema::Collection;
use mongodb::bson::{Document, RawDocumentBuf, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::results::CollectionType;
use mongodb::{Client, Database, IndexModel};
use serde_json::Value as Json;

pub use codec::OBJECT_ID;
pub use compile::{Compiler, escape_regex};
pub use introspect::SCHEMAS;
pub use options::MongoOptions;
pub use repository::{MongoRepository, MongoUnit};

use crate::error::{Names, map_mongo};
use crate::introspect::{Declared, Extras};
use crate::repository::Shared;

/// How many collections introspection samples at the same time.
const INTROSPECTION_CONCURRENCY: usize = 4;

/// A connected MongoDB database.
pub struct MongoConnector {
    shared: Arc<Shared>,
    sample_size: u32,
    /// Collections created with `autoGenId` get an integer key (`generatedKeys`).
    integer_keys: bool,
}

impl std::fmt::Debug for MongoConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConnector")
            .field("database", &self.shared.db.name())
            .field("transactions", &self.shared.transactions)
            .finish_non_exhaustive()
    }
}

fn no_names() -> Names {
    Names::default()
}

impl MongoConnector {
    /// Creates the client and reaches the server once (so a wrong address or login fails
    /// here, as a 503 naming no option value), and finds out whether writes can use
    /// transactions.
    pub async fn open(options: &MongoOptions) -> Result<Self> {
        let mut client_options = ClientOptions::parse(options.connection().clone())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "mongodb connection string rejected");
                Error::bad_request("options.url: the connection string is not supported")
            })?;
        client_options.max_pool_size = Some(options.max_connections);
        client_options.min_pool_size = Some(0);
        client_options.connect_timeout = Some(options.connect_timeout);
        client_options.server_selection_timeout = Some(options.server_selection_timeout);
        client_options.app_name = Some("manifold".into());
        let client = Client::with_options(client_options).map_err(|e| {
            tracing::warn!(error = %e, "mongodb client options rejected");
            Error::bad_request("options: the connection options are not supported")
        })?;
        let db = client.database(&options.database);
        let hello = match db.run_command(doc! {"hello": 1}).await {
            Ok(reply) => reply,
            Err(e) => {
                let mapped = map_mongo(&e, &no_names());
                client.shutdown().immediate(true).await;
                return Err(mapped);
            }
        };
        // Replica-set members and mongos routers run multi-document transactions; a
        // standalone mongod refuses them.
        let transactions = options.transactions.unwrap_or_else(|| {
            hello.contains_key("setName") || hello.get_str("msg").is_ok_and(|m| m == "isdbgrid")
        });
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                db,
                max_time: options.max_time(),
                transactions,
                target: options.db_target(),
                extras: Mutex::new(HashMap::new()),
            }),
            sample_size: options.sample_size,
            integer_keys: options.integer_keys,
        })
    }

    /// The driver's client, for tests and tools.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The database this connector serves.
    pub fn database(&self) -> &Database {
        &self.shared.db
    }

    /// Whether writes run in multi-document transactions.
    pub fn transactions(&self) -> bool {
        self.shared.transactions
    }

    fn map(&self, e: &mongodb::error::Error) -> Error {
        map_mongo(e, &no_names())
    }

    fn remember(&self, name: &str, extras: Extras) {
        self.shared
            .extras
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::new(extras));
    }

    /// The stored definitions, by collection name.
    async fn declared(&self) -> Result<HashMap<String, Declared>> {
        let docs: Vec<Document> = self
            .shared
            .db
            .collection::<RawDocumentBuf>(SCHEMAS)
            .find(doc! {})
            .await
            .map_err(|e| self.map(&e))?
            .and_then(|raw| async move { repository::owned(raw) })
            .try_collect()
            .await
            .map_err(|e| self.map(&e))?;
        Ok(docs
            .iter()
            .filter_map(introspect::declared_from_document)
            .collect())
    }

    /// Samples one collection and reads its indexes.
    async fn sample(&self, name: &str, is_view: bool) -> Result<(Vec<Document>, Vec<IndexModel>)> {
        let coll = self.shared.db.collection::<RawDocumentBuf>(name);
        let mut find = mongodb::options::FindOptions::default();
        // The newest documents (ObjectIds grow with time) show the current shape; they
        // are then read oldest first so fields keep the order documents introduced them.
        find.sort = Some(doc! {"_id": -1});
        find.limit = Some(i64::from(self.sample_size));
        find.max_time = self.shared.max_time;
        let mut sample: Vec<Document> = coll
            .find(doc! {})
            .with_options(find)
            .await
            .map_err(|e| self.map(&e))?
            .and_then(|raw| async move { repository::owned(raw) })
            .try_collect()
            .await
            .map_err(|e| self.map(&e))?;
        sample.reverse();
        let indexes = if is_view {
            Vec::new()
        } else {
            coll.list_indexes()
                .await
                .map_err(|e| self.map(&e))?
                .try_collect()
                .await
                .map_err(|e| self.map(&e))?
        };
        Ok((sample, indexes))
    }
}

#[async_trait::async_trait]
impl Connector for MongoConnector {
    async fn introspect(&self) -> Result<Vec<Collection>> {
        let specs: Vec<_> = self
            .shared
            .db
            .list_collections()
            .await
            .map_err(|e| self.map(&e))?
            .try_collect()
            .await
            .map_err(|e| self.map(&e))?;
        let listed: Vec<(String, bool)> = specs
            .into_iter()
            .filter(|s| !s.name.starts_with("system."))
            .map(|s| (s.name, matches!(s.collection_type, CollectionType::View)))
            .collect();
        let declared = if listed.iter().any(|(name, _)| name == SCHEMAS) {
            self.declared().await?
        } else {
            HashMap::new()
        };
        let mut built: Vec<(Collection, Extras)> = futures_util::stream::iter(listed)
            .map(|(name, is_view)| {
                let declared = declared.get(&name);
                async move {
                    let (sample, indexes) = self.sample(&name, is_view).await?;
                    introspect::build(&name, is_view, declared, &sample, &indexes)
                }
            })
            .buffer_unordered(INTROSPECTION_CONCURRENCY)
            .try_collect()
            .await?;
        built.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        let mut out = Vec::with_capacity(built.len());
        for (collection, extras) in built {
            self.remember(collection.name(), extras);
            out.push(collection);
        }
        Ok(out)
    }

    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(MongoRepository::new(self.shared.clone(), collection, None))
    }

    /// Creates the collection (with a `$jsonSchema` validator for non-null fields and a
    /// sparse unique index per unique field) and stores its definition in [`SCHEMAS`].
    ///
    /// MongoDB cannot do this atomically; when a later step fails the collection is
    /// dropped again.
    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        let mut declared = Declared::from(definition);
        declared.integer_key = self.integer_keys
            && definition.auto_gen_id
            && !definition.fields.iter().any(|f| f.primary_key);
        let (collection, extras) =
            introspect::build(&definition.name, false, Some(&declared), &[], &[])?;
        let db = &self.shared.db;
        let exists = |name: &str| {
            Error::conflict(format!("collection {name} already exists in the database"))
        };
        // Checked first: some servers answer `create` of an existing collection with ok.
        let existing = db
            .list_collection_names()
            .filter(doc! {"name": &definition.name})
            .await
            .map_err(|e| self.map(&e))?;
        if !existing.is_empty() {
            return Err(exists(&definition.name));
        }
        let mut create = mongodb::options::CreateCollectionOptions::default();
        create.validator = introspect::validator(&declared);
        match db
            .create_collection(&definition.name)
            .with_options(create)
            .await
        {
            Ok(()) => {}
            Err(e) if matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if c.code == 48) => {
                return Err(exists(&definition.name));
            }
            Err(e) => return Err(self.map(&e)),
        }
        let finish = async {
            let coll = db.collection::<Document>(&definition.name);
            for field in collection
                .fields()
                .iter()
                .filter(|f| f.unique && !f.primary_key)
            {
                let mut options = IndexOptions::default();
                options.unique = Some(true);
                // Sparse: documents without the field (null is stored as absence) do not
                // collide, as several NULLs do not in SQL.
                options.sparse = Some(true);
                options.name = Some(format!("{}_1", field.column));
                let index = IndexModel::builder()
                    .keys(doc! {field.column.clone(): 1})
                    .options(options)
                    .build();
                coll.create_index(index).await?;
            }
            let stored = introspect::declared_document(&definition.name, &declared);
            db.collection::<Document>(SCHEMAS)
                .replace_one(doc! {"_id": &definition.name}, stored)
                .upsert(true)
                .await?;
            Ok::<(), mongodb::error::Error>(())
        };
        if let Err(e) = finish.await {
            let mapped = self.map(&e);
            if let Err(drop_error) = db.collection::<Document>(&definition.name).drop().await {
                tracing::error!(error = %drop_error, collection = %definition.name, "could not drop a half-created collection");
            }
            return Err(mapped);
        }
        let mut extras = extras;
        for f in collection
            .fields()
            .iter()
            .filter(|f| f.unique && !f.primary_key)
        {
            extras
                .names
                .unique_indexes
                .insert(format!("{}_1", f.column), vec![f.column.clone()]);
        }
        self.remember(&definition.name, extras);
        Ok(collection)
    }

    /// Drops the collection (or view) and its stored definition.
    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        let name = &collection.table().name;
        self.shared
            .db
            .collection::<Document>(name)
            .drop()
            .await
            .map_err(|e| self.map(&e))?;
        self.shared
            .db
            .collection::<Document>(SCHEMAS)
            .delete_one(doc! {"_id": name})
            .await
            .map_err(|e| self.map(&e))?;
        self.shared
            .extras
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        Ok(())
    }

    /// One session with one transaction for every repository of the unit (see
    /// [`MongoUnit`]). Refused (400) where writes do not run in transactions: a standalone
    /// `mongod`, or `"transactions": false`.
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        if !self.shared.transactions {
            return Err(Error::bad_request(
                "this data source cannot run several writes in one transaction: \
                 the MongoDB deployment has no transactions (a standalone mongod, or \
                 the option transactions: false)",
            ));
        }
        Ok(Box::new(MongoUnit::begin(self.shared.clone()).await?))
    }

    async fn close(&self) {
        // Immediate: operations still running fail at once instead of holding the close.
        self.shared.client.clone().shutdown().immediate(true).await;
    }
}

/// Builds MongoDB data sources (type `mongodb`) from the options
/// [`MongoOptions::from_json`] reads.
pub struct MongoFactory;

#[async_trait::async_trait]
impl DataSourceFactory for MongoFactory {
    fn kind(&self) -> &str {
        "mongodb"
    }

    async fn targets(&self, options: &Json) -> Result<Vec<ConnectTarget>> {
        MongoOptions::from_json(options)?.targets()
    }

    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>> {
        let options = MongoOptions::from_json(options)?;
        Ok(Arc::new(MongoConnector::open(&options).await?))
    }
}
