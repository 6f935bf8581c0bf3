//! Users' declarations about collections — options such as `simplePaginate` and relation
//! fields declared with `fields:create` — stored in the main database and laid over each
//! source's introspected schema (see `manifold_core::declarations`).

use std::sync::Arc;

use manifold_core::declarations::{
    CollectionDeclarations, Declarations, declared_association, is_remote, remote_association,
};
use manifold_core::filter::{key_filter, parse_filter};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::schema::{Association, Collection};
use manifold_core::{DataSource, Error, Result};
use serde_json::{Map, Value as Json, json};

/// Collection options, one row per collection that has any.
pub const COLLECTIONS_TABLE: &str = "_manifold_collections";
/// Declared relation fields, one row per field.
pub const FIELDS_TABLE: &str = "_manifold_fields";

/// Option keys a stored field declaration never keeps (NocoBase strips them too).
const TRANSIENT_KEYS: &[&str] = &["possibleTypes"];

/// The declarations of every data source, in the main database.
pub struct DeclarationStore {
    collections: Arc<dyn Repository>,
    fields: Arc<dyn Repository>,
    /// One change at a time, so a change is checked against the schema it lands on.
    writing: tokio::sync::Mutex<()>,
    /// Declarations made by the service itself (the accounts' relations and hidden
    /// fields), by source key: laid down before the stored ones, never stored or edited.
    built_in: std::sync::RwLock<std::collections::HashMap<String, Declarations>>,
}

impl DeclarationStore {
    /// Opens the declaration tables in `main` (made by its migrations).
    pub async fn open(main: &DataSource) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            collections: main.internal_table(COLLECTIONS_TABLE)?,
            fields: main.internal_table(FIELDS_TABLE)?,
            writing: tokio::sync::Mutex::new(()),
            built_in: std::sync::RwLock::default(),
        }))
    }

    /// Declares `declarations` for the source called `source_key` on behalf of the service:
    /// applied with every refresh, before what users declared.
    pub fn declare_built_in(&self, source_key: &str, declarations: Declarations) {
        self.built_in
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source_key.to_owned(), declarations);
    }

    /// Everything declared for the source called `source_key`.
    pub async fn of_source(&self, source_key: &str) -> Result<Declarations> {
        let mut declarations = self
            .built_in
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(source_key)
            .cloned()
            .unwrap_or_default();
        for row in self.rows(&self.collections, source_key).await? {
            let entry = declarations
                .collections
                .entry(text(&row, "collectionName"))
                .or_default();
            // What the service declared wins over a stored option of the same name.
            let mut options = object(&row);
            options.extend(std::mem::take(&mut entry.options));
            entry.options = options;
        }
        for row in self.rows(&self.fields, source_key).await? {
            declarations
                .collections
                .entry(text(&row, "collectionName"))
                .or_insert_with(CollectionDeclarations::default)
                .fields
                .push(Json::Object(object(&row)));
        }
        Ok(declarations)
    }

    async fn rows(
        &self,
        repository: &Arc<dyn Repository>,
        source_key: &str,
    ) -> Result<Vec<Record>> {
        let collection = repository.collection();
        let mut options = FindOptions {
            filter: parse_filter(collection, &json!({ "dataSourceKey": source_key }))?,
            ..FindOptions::default()
        };
        options.sort = manifold_core::query::parse_sort(collection, &["createdAt".into()])?;
        manifold_core::query::add_key_tiebreaker(collection, &mut options.sort);
        repository.find(&options).await
    }

    /// Merges `patch` into the options of `collection` in `source` and applies them.
    /// Returns the live collection.
    pub async fn update_collection(
        &self,
        source: &DataSource,
        collection: &str,
        patch: &Json,
    ) -> Result<Json> {
        let patch = patch.as_object().ok_or_else(|| {
            Error::bad_request("values: expected an object of collection options")
        })?;
        if let Some(v) = patch.get("simplePaginate")
            && !v.is_boolean()
        {
            return Err(Error::bad_request(format!(
                "values.simplePaginate: expected true or false, got {v}"
            )));
        }
        let _one = self.writing.lock().await;
        require_collection(source, collection)?;
        let key = format!("{}:{collection}", source.key());
        let stored = self.find(&self.collections, &key).await?;
        let mut options = stored.as_ref().map(object).unwrap_or_default();
        for (k, v) in patch {
            if !v.is_null() {
                options.insert(k.clone(), v.clone());
            }
        }
        let row = json!({
            "key": key,
            "dataSourceKey": source.key(),
            "collectionName": collection,
            "options": options,
        });
        self.upsert(&self.collections, &key, stored.is_some(), &row)
            .await?;
        self.apply(source).await?;
        live_collection(source, collection)
    }

    /// Declares a relation field on `collection` of `source`, checked against the live
    /// schema, then stored and applied. Returns the live field.
    pub async fn create_field(
        &self,
        source: &DataSource,
        collection: &str,
        declaration: &Json,
    ) -> Result<Json> {
        let mut declaration = clean(declaration)?;
        let _one = self.writing.lock().await;
        let schema = source.collections_snapshot();
        let on = schema
            .iter()
            .find(|c| c.name() == collection)
            .ok_or_else(|| missing(source, collection))?;
        let association = checked(source, on, &schema, &mut declaration)?;
        let key = format!("{}:{collection}:{}", source.key(), association.name);
        self.upsert(
            &self.fields,
            &key,
            false,
            &field_row(source, collection, &key, &association.name, declaration),
        )
        .await?;
        self.apply(source).await?;
        live_field(source, collection, &association.name)
    }

    /// Changes a declared field: `patch` is merged into its declaration (a `null` keeps
    /// the old value), checked, stored and applied. Returns the live field.
    pub async fn update_field(
        &self,
        source: &DataSource,
        collection: &str,
        name: &str,
        patch: &Json,
    ) -> Result<Json> {
        let patch = clean(patch)?;
        let _one = self.writing.lock().await;
        let key = format!("{}:{collection}:{name}", source.key());
        let stored = self
            .find(&self.fields, &key)
            .await?
            .ok_or_else(|| not_declared(source, collection, name))?;
        let mut declaration = object(&stored);
        for (k, v) in patch {
            if k != "name" && !v.is_null() {
                declaration.insert(k, v);
            }
        }
        let mut schema = source.collections_snapshot();
        let Some(on) = schema.iter_mut().find(|c| c.name() == collection) else {
            return Err(missing(source, collection));
        };
        on.associations.retain(|a| a.name != name);
        on.remote_associations.retain(|a| a.name != name);
        let on = on.clone();
        checked(source, &on, &schema, &mut declaration)?;
        self.upsert(
            &self.fields,
            &key,
            true,
            &field_row(source, collection, &key, name, declaration),
        )
        .await?;
        self.apply(source).await?;
        live_field(source, collection, name)
    }

    /// Removes a declared field from the store and the live schema.
    pub async fn destroy_field(
        &self,
        source: &DataSource,
        collection: &str,
        name: &str,
    ) -> Result<()> {
        let _one = self.writing.lock().await;
        let key = format!("{}:{collection}:{name}", source.key());
        let filter = key_filter(self.fields.collection(), &json!(key))?;
        if self.fields.destroy(filter.as_ref()).await? == 0 {
            return Err(not_declared(source, collection, name));
        }
        self.apply(source).await
    }

    /// Forgets everything declared for a source that is being removed.
    pub async fn forget_source(&self, source_key: &str) -> Result<()> {
        let _one = self.writing.lock().await;
        for repository in [&self.collections, &self.fields] {
            let filter = parse_filter(
                repository.collection(),
                &json!({ "dataSourceKey": source_key }),
            )?;
            repository.destroy(filter.as_ref()).await?;
        }
        Ok(())
    }

    /// Forgets what was declared for a collection that was dropped.
    pub async fn forget_collection(&self, source_key: &str, collection: &str) -> Result<()> {
        let _one = self.writing.lock().await;
        for repository in [&self.collections, &self.fields] {
            let filter = parse_filter(
                repository.collection(),
                &json!({ "dataSourceKey": source_key, "collectionName": collection }),
            )?;
            repository.destroy(filter.as_ref()).await?;
        }
        Ok(())
    }

    /// Lays the stored declarations over `source` again.
    pub async fn apply(&self, source: &DataSource) -> Result<()> {
        source
            .set_declarations(self.of_source(source.key()).await?)
            .await
    }

    async fn find(&self, repository: &Arc<dyn Repository>, key: &str) -> Result<Option<Record>> {
        let options = FindOptions {
            filter: key_filter(repository.collection(), &json!(key))?,
            limit: Some(1),
            ..FindOptions::default()
        };
        Ok(repository.find(&options).await?.into_iter().next())
    }

    async fn upsert(
        &self,
        repository: &Arc<dyn Repository>,
        key: &str,
        exists: bool,
        row: &Json,
    ) -> Result<()> {
        let collection = repository.collection();
        let allowed = WriteFilter::default();
        if exists {
            let values =
                WriteValues::from_json(collection, row, WriteKind::Update, &allowed, "values")?;
            repository
                .update(key_filter(collection, &json!(key))?.as_ref(), &values)
                .await?;
        } else {
            let values =
                WriteValues::from_json(collection, row, WriteKind::Create, &allowed, "values")?;
            repository.create(&[values]).await?;
        }
        Ok(())
    }
}

fn field_row(
    source: &DataSource,
    collection: &str,
    key: &str,
    name: &str,
    mut declaration: Map<String, Json>,
) -> Json {
    declaration.insert("name".into(), json!(name));
    json!({
        "key": key,
        "dataSourceKey": source.key(),
        "collectionName": collection,
        "name": name,
        "options": declaration,
    })
}

/// The relation `declaration` describes on `on`, checked against the live schemas: its
/// own source's (`schema`), and for a relation to another source, that source's.
///
/// A relation to another source is stored with its keys named, so that a refresh while
/// that source is away still applies it; one naming its own source is a plain relation.
fn checked(
    source: &DataSource,
    on: &Collection,
    schema: &[Collection],
    declaration: &mut Map<String, Json>,
) -> Result<Association> {
    if declaration.get("targetDataSource").and_then(Json::as_str) == Some(source.key()) {
        declaration.remove("targetDataSource");
    }
    let json = Json::Object(declaration.clone());
    if !is_remote(&json) {
        return declared_association(on, &json, schema)
            .map_err(|e| e.context(format!("data source {}", source.key())));
    }
    let key = declaration
        .get("targetDataSource")
        .and_then(Json::as_str)
        .unwrap_or_default();
    // An unknown source is a bad value in the body, not a missing resource; one that
    // is loading or away keeps its 503.
    let peer = source.peer(key).map_err(|e| match e.kind() {
        manifold_core::ErrorKind::NotFound => {
            Error::bad_request(format!("values.targetDataSource: {}", e.message()))
        }
        _ => e.context("values.targetDataSource"),
    })?;
    let target = match declaration.get("target").and_then(Json::as_str) {
        Some(name) => Some(peer.collection(name).map(|(c, _)| c).ok_or_else(|| {
            Error::bad_request(format!(
                "values.target: collection {name} does not exist in data source {key}"
            ))
        })?),
        None => None,
    };
    let through_source = declaration
        .get("throughDataSource")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty());
    let junction = match declaration.get("through").and_then(Json::as_str) {
        // A junction said to be elsewhere: refused below, naming the option.
        Some(_) if through_source.is_some_and(|s| s != key) => None,
        Some(name) => {
            let with_target = through_source.is_some();
            if with_target {
                peer.collection(name).map(|(c, _)| c)
            } else {
                schema
                    .iter()
                    .find(|c| c.name() == name)
                    .cloned()
                    .map(Arc::new)
            }
            .map(Some)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "values.through: collection {name} does not exist in data source {}",
                    if with_target { key } else { source.key() }
                ))
            })?
        }
        None => None,
    };
    let association = remote_association(on, &json, target.as_deref(), junction.as_deref())?;
    for (option, value) in [
        ("foreignKey", &association.foreign_key),
        ("sourceKey", &association.source_key),
        ("targetKey", &association.target_key),
    ] {
        declaration.insert(option.into(), json!(value));
    }
    Ok(association)
}

/// A declaration as stored: an object without transient keys.
fn clean(declaration: &Json) -> Result<Map<String, Json>> {
    let mut map = declaration
        .as_object()
        .cloned()
        .ok_or_else(|| Error::bad_request("values: expected an object of field options"))?;
    for key in TRANSIENT_KEYS {
        map.remove(*key);
    }
    Ok(map)
}

fn text(row: &Record, key: &str) -> String {
    row.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The stored `options` object of a row (JSON columns may come back as text).
fn object(row: &Record) -> Map<String, Json> {
    match row.get("options") {
        Some(Json::Object(map)) => map.clone(),
        Some(Json::String(s)) => serde_json::from_str(s).unwrap_or_default(),
        _ => Map::new(),
    }
}

fn require_collection(source: &DataSource, collection: &str) -> Result<()> {
    source
        .collection(collection)
        .map(|_| ())
        .ok_or_else(|| missing(source, collection))
}

fn missing(source: &DataSource, collection: &str) -> Error {
    Error::not_found(format!(
        "collection {collection} does not exist in data source {}",
        source.key()
    ))
    .with_message_id(
        "collection-not-found",
        vec![
            ("collection", collection.to_owned()),
            ("key", source.key().to_owned()),
        ],
    )
}

fn not_declared(source: &DataSource, collection: &str, name: &str) -> Error {
    let exists = source
        .collection(collection)
        .is_some_and(|(c, _)| c.field(name).is_some() || c.association(name).is_some());
    if exists {
        Error::bad_request(format!(
            "field {name} of collection {collection} comes from the database schema of data source {}; only declared relation fields can be changed here",
            source.key()
        ))
    } else {
        Error::not_found(format!(
            "collection {collection} of data source {} has no field {name}",
            source.key()
        ))
    }
}

fn live_collection(source: &DataSource, collection: &str) -> Result<Json> {
    source
        .collection(collection)
        .map(|(c, _)| c.to_json())
        .ok_or_else(|| missing(source, collection))
}

fn live_field(source: &DataSource, collection: &str, name: &str) -> Result<Json> {
    let (c, _) = source
        .collection(collection)
        .ok_or_else(|| missing(source, collection))?;
    c.relation(name)
        .map(|a| a.to_json())
        .ok_or_else(|| Error::internal(format!("declared field {name} did not apply")))
}
