//! Registered data sources: their records in the main database, and loading them.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;
use manifold_core::data_source::{DataSourceManager, DataSourceSettings, DataSourceStatus};
use manifold_core::filter::{Filter, key_filter};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::{DataSource, Error, Result};
use serde_json::{Map, Value as Json, json};

use super::hosts::HostPolicy;
use super::secrets::{mask_secrets, scrub, secret_values};
use crate::changes::{Change, ChangeFeed, kinds};
use crate::declarations::DeclarationStore;

/// The table holding data-source records in the main database.
pub const RECORDS_TABLE: &str = "_manifold_data_sources";

/// The data sources registered through the API.
pub struct Registry {
    manager: Arc<DataSourceManager>,
    records: Arc<dyn Repository>,
    hosts: HostPolicy,
    settings: DataSourceSettings,
    files_root: PathBuf,
    /// One load at a time per key, so a refresh and an update cannot interleave.
    loading: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Per key, the number of the latest load, raised again by a destroy or a disable: a
    /// load whose number is no longer the key's was overtaken, and must neither serve its
    /// source nor report a status (a source destroyed while it loaded stays gone).
    generations: DashMap<String, u64>,
    /// Per key, what the latest load started from (type, options, enabled): a change
    /// heard from another replica reloads a source only when this differs.
    loaded_with: DashMap<String, Json>,
    /// Per key, the number of declaration changes so far (see
    /// [`Registry::declarations_changed`]).
    declaration_changes: DashMap<String, u64>,
    declarations: Arc<DeclarationStore>,
    changes: Arc<ChangeFeed>,
}

impl Registry {
    /// Opens the records table in `main` (made by its migrations), and takes the changes
    /// of sources and their schemas that other replicas publish on `changes`.
    pub async fn open(
        manager: Arc<DataSourceManager>,
        main: &DataSource,
        hosts: HostPolicy,
        settings: DataSourceSettings,
        files_root: PathBuf,
        declarations: Arc<DeclarationStore>,
        changes: Arc<ChangeFeed>,
    ) -> Result<Arc<Self>> {
        let records = main.internal_table(RECORDS_TABLE)?;
        let registry = Arc::new(Self {
            manager,
            records,
            hosts,
            settings,
            files_root,
            loading: DashMap::new(),
            generations: DashMap::new(),
            loaded_with: DashMap::new(),
            declaration_changes: DashMap::new(),
            declarations,
            changes: changes.clone(),
        });
        changes.subscribe(
            &[
                kinds::DATA_SOURCE,
                kinds::DATA_SOURCE_REFRESH,
                kinds::SCHEMA,
            ],
            Arc::new(super::propagation::SourceChanges::new(&registry)),
        );
        Ok(registry)
    }

    /// Where this replica's changes are published for the others.
    pub fn changes(&self) -> &Arc<ChangeFeed> {
        &self.changes
    }

    /// The users' declarations about every source's collections.
    pub fn declarations(&self) -> &Arc<DeclarationStore> {
        &self.declarations
    }

    /// The manager the sources are added to.
    pub fn manager(&self) -> &Arc<DataSourceManager> {
        &self.manager
    }

    /// Loads every enabled record in the background; a source that is down does not delay
    /// the start, it only reports `loading-failed`.
    pub async fn load_all(self: &Arc<Self>) -> Result<()> {
        for record in self.all().await? {
            let key = str_of(&record, "key").to_owned();
            if record.get("enabled") == Some(&Json::Bool(false)) {
                self.manager.set_status(&key, DataSourceStatus::Disabled);
                continue;
            }
            self.manager.set_status(&key, DataSourceStatus::Loading);
            self.spawn_load(record);
        }
        Ok(())
    }

    /// Every stored record, ordered by key.
    pub async fn all(&self) -> Result<Vec<Record>> {
        let mut options = FindOptions::default();
        manifold_core::query::add_key_tiebreaker(self.records.collection(), &mut options.sort);
        self.records.find(&options).await
    }

    /// The stored record called `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Record>> {
        let options = FindOptions {
            filter: self.by_key(key)?,
            limit: Some(1),
            ..FindOptions::default()
        };
        Ok(self.records.find(&options).await?.into_iter().next())
    }

    fn by_key(&self, key: &str) -> Result<Option<Filter>> {
        key_filter(self.records.collection(), &Json::String(key.to_owned()))
    }

    /// Checks that `kind` is known and `options` may be used: the host is allowed, a SQLite
    /// path stays inside the data directory. Returns the options to connect with.
    ///
    /// The hosts are those the type's own factory reads from the options, with the
    /// driver's parser and defaults, so the check and the connection cannot disagree;
    /// nothing connects before it.
    pub async fn vet(&self, kind: &str, options: &Json) -> Result<Json> {
        let factory = self.manager.factory(kind)?;
        if !options.is_object() {
            return Err(Error::bad_request(
                "options: expected an object of connection options",
            ));
        }
        if factory.file_based() {
            return self.file_options(kind, options);
        }
        let targets = factory
            .targets(options)
            .await
            .map_err(|e| without_secrets(e, options))?;
        self.hosts.check_targets(&targets).await?;
        Ok(options.clone())
    }

    /// File-based sources (SQLite) registered over HTTP live under the data directory: a
    /// relative `path` without `..`, so a client cannot open arbitrary files on the server.
    /// Only `path` and the pool limits are passed on; a `url` would bypass the check.
    fn file_options(&self, kind: &str, options: &Json) -> Result<Json> {
        if options.get("url").is_some() {
            return Err(Error::bad_request(format!(
                "options.url is not accepted for {kind} sources registered over HTTP; give a relative options.path"
            )));
        }
        let path = options.get("path").and_then(Json::as_str).ok_or_else(|| {
            Error::bad_request(format!(
                "options.path: a relative file name is required for {kind}"
            ))
        })?;
        let relative = Path::new(path);
        let inside = !path.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(Error::bad_request(format!(
                "options.path: {path:?} must be a relative path without `..`; it is placed under the data directory"
            )));
        }
        let mut resolved = json!({ "path": self.files_root.join(relative) });
        // maxConnectionsTotal too, so that it is refused as for any type that cannot share
        // a total rather than dropped unseen.
        for passed in [
            "maxConnections",
            manifold_core::connection_share::TOTAL_OPTION,
        ] {
            if let Some(n) = options.get(passed) {
                resolved[passed] = n.clone();
            }
        }
        Ok(resolved)
    }

    /// Tries `options` without keeping anything open.
    pub async fn test_connection(&self, kind: &str, options: &Json) -> Result<()> {
        let resolved = self.vet(kind, options).await?;
        self.manager
            .test_connection(kind, &resolved)
            .await
            .map_err(|e| {
                let e = without_secrets(e, options);
                Error::bad_request(format!("Test connection failed: {}", e.message()))
            })
    }

    /// Stores a new record after testing its connection, then loads it in the background.
    /// Answers the record as clients see it when it was stored, before the load can end,
    /// so a new source always reads `loading` (or `disabled`) however fast it loads.
    pub async fn create(self: &Arc<Self>, values: &Json) -> Result<Json> {
        let key = values
            .get("key")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::bad_request("values.key: a data source key is required"))?;
        validate_key(key)?;
        let kind = values
            .get("type")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::bad_request("values.type: a data source type is required"))?;
        let options = values.get("options").cloned().unwrap_or_else(|| json!({}));
        if self.get(key).await?.is_some() || self.manager.get(key).is_some() {
            return Err(Error::conflict(format!("data source {key} already exists")));
        }
        let enabled = !matches!(values.get("enabled"), Some(Json::Bool(false)));
        if enabled {
            self.test_connection(kind, &options).await?;
        } else {
            self.vet(kind, &options).await?;
        }
        let row = json!({
            "key": key,
            "type": kind,
            "displayName": values.get("displayName").cloned().unwrap_or_else(|| json!(key)),
            "options": options,
            "enabled": enabled,
        });
        let write = WriteValues::from_json(
            self.records.collection(),
            &row,
            WriteKind::Create,
            &WriteFilter::default(),
            "values",
        )?;
        let mut created = self.records.create(&[write]).await?;
        let record = created
            .pop()
            .ok_or_else(|| Error::internal("the record was not stored"))?;
        if enabled {
            self.manager.set_status(key, DataSourceStatus::Loading);
        } else {
            self.manager.set_status(key, DataSourceStatus::Disabled);
        }
        let shown = self.present(&record);
        if enabled {
            self.spawn_load(record);
        }
        self.publish(key).await?;
        Ok(shown)
    }

    /// Tells the other replicas that the record of `key` changed.
    async fn publish(&self, key: &str) -> Result<()> {
        self.changes
            .publish(Change::new(kinds::DATA_SOURCE).source(key))
            .await
    }

    /// Changes `displayName`, `options` (merged over the stored ones, so a write-only
    /// password survives) or `enabled`. New options are tested before they are saved.
    pub async fn update(self: &Arc<Self>, key: &str, values: &Json) -> Result<Record> {
        let old = self.get(key).await?.ok_or_else(|| no_such_source(key))?;
        let kind = str_of(&old, "type").to_owned();
        let mut row = Map::new();
        if let Some(name) = values.get("displayName") {
            row.insert("displayName".into(), name.clone());
        }
        let options_changed = values.get("options").is_some_and(|o| !o.is_null());
        let options = match values.get("options") {
            Some(Json::Object(new)) => {
                let mut merged = old
                    .get("options")
                    .and_then(Json::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in new {
                    if shown_form_of(v, merged.get(k)) {
                        // A client sending back what it was shown (`u:***@h`) means
                        // "unchanged", not "the password is now ***".
                        continue;
                    }
                    if v.is_null() {
                        merged.remove(k);
                    } else {
                        merged.insert(k.clone(), v.clone());
                    }
                }
                Json::Object(merged)
            }
            Some(Json::Null) | None => old.get("options").cloned().unwrap_or_else(|| json!({})),
            Some(other) => {
                return Err(Error::bad_request(format!(
                    "values.options: expected an object, got {other}"
                )));
            }
        };
        let was_enabled = old.get("enabled") != Some(&Json::Bool(false));
        let enabled = match values.get("enabled") {
            Some(Json::Bool(b)) => *b,
            Some(Json::Null) | None => was_enabled,
            Some(other) => {
                return Err(Error::bad_request(format!(
                    "values.enabled: expected true or false, got {other}"
                )));
            }
        };
        if options_changed && enabled {
            self.test_connection(&kind, &options).await?;
        } else if options_changed {
            // A disabled record is held to the same rules as a disabled create: what is
            // stored is only ever somewhere the source may connect to.
            self.vet(&kind, &options).await?;
        }
        row.insert("options".into(), options);
        row.insert("enabled".into(), Json::Bool(enabled));
        let write = WriteValues::from_json(
            self.records.collection(),
            &Json::Object(row),
            WriteKind::Update,
            &WriteFilter::default(),
            "values",
        )?;
        let record = self
            .records
            .update(self.by_key(key)?.as_ref(), &write)
            .await?
            .pop()
            .ok_or_else(|| no_such_source(key))?;
        if !enabled {
            self.disable(key).await;
        } else if options_changed || !was_enabled {
            self.begin_load(key);
            self.spawn_load(record.clone());
        }
        self.publish(key).await?;
        Ok(record)
    }

    /// Stops serving `key` here and says it is disabled.
    async fn disable(&self, key: &str) {
        self.supersede(key);
        self.loaded_with.remove(key);
        self.manager.set_status(key, DataSourceStatus::Disabled);
        self.manager.remove(key).await;
    }

    /// Stops serving `key` here and forgets it (its record is gone).
    async fn forget(&self, key: &str) {
        // Before the removal: a load still running then sees it was overtaken (and takes
        // its source out again if it got in first).
        self.supersede(key);
        self.loaded_with.remove(key);
        self.manager.remove(key).await;
        self.manager.clear_status(key);
    }

    /// Brings this replica's source `key` in line with its stored record, as another
    /// replica left it: loads it (again) when what it was loaded from changed or its load
    /// failed, disables it, or removes it when the record is gone.
    pub async fn reconcile(self: &Arc<Self>, key: &str) -> Result<()> {
        let Some(record) = self.get(key).await? else {
            self.forget(key).await;
            return Ok(());
        };
        if record.get("enabled") == Some(&Json::Bool(false)) {
            self.disable(key).await;
            return Ok(());
        }
        let current = self
            .loaded_with
            .get(key)
            .is_some_and(|f| *f == fingerprint(&record));
        let working = matches!(
            self.manager.status(key),
            Some(
                DataSourceStatus::Loaded | DataSourceStatus::Loading | DataSourceStatus::Reloading
            )
        );
        if !(current && working) {
            self.begin_load(key);
            self.spawn_load(record);
        }
        Ok(())
    }

    /// Reconciles every record, and removes the sources whose record is gone: after a
    /// time when this replica may have missed changes.
    pub async fn reconcile_all(self: &Arc<Self>) -> Result<()> {
        let records = self.all().await?;
        let keys: std::collections::BTreeSet<String> = records
            .iter()
            .map(|r| str_of(r, "key").to_owned())
            .collect();
        for key in &keys {
            self.reconcile(key).await?;
        }
        for source in self.manager.list() {
            if source.key() != "main" && !keys.contains(source.key()) {
                self.forget(source.key()).await;
            }
        }
        Ok(())
    }

    /// Deletes the record and closes the source.
    pub async fn destroy(&self, key: &str) -> Result<u64> {
        let deleted = self.records.destroy(self.by_key(key)?.as_ref()).await?;
        self.declarations.forget_source(key).await?;
        self.forget(key).await;
        self.publish(key).await?;
        Ok(deleted)
    }

    /// Re-reads the schema of a loaded source, or retries a failed one, in the background,
    /// here and on the other replicas. Answers this replica's status right after the
    /// decision (`reloading` when work was started).
    pub async fn refresh(self: &Arc<Self>, key: &str) -> Result<DataSourceStatus> {
        let status = self.refresh_here(key).await?;
        if status == DataSourceStatus::Reloading {
            self.changes
                .publish(Change::new(kinds::DATA_SOURCE_REFRESH).source(key))
                .await?;
        }
        Ok(status)
    }

    /// [`Registry::refresh`] on this replica only.
    pub async fn refresh_here(self: &Arc<Self>, key: &str) -> Result<DataSourceStatus> {
        if key == "main"
            && let Some(main) = self.manager.get("main")
        {
            // Main has no record and always serves; re-reading its schema is all there is.
            tokio::spawn(async move {
                if let Err(e) = main.refresh().await {
                    tracing::warn!(error = %e.message(), "refreshing main failed");
                }
            });
            return Ok(DataSourceStatus::Reloading);
        }
        let record = self.get(key).await?.ok_or_else(|| no_such_source(key))?;
        // No status: this replica has not heard of the record yet, and nobody here is
        // loading it; a refresh starts that.
        let enabled = record.get("enabled") != Some(&Json::Bool(false));
        match self.manager.status(key) {
            None
            | Some(
                DataSourceStatus::Loaded
                | DataSourceStatus::LoadingFailed(_)
                | DataSourceStatus::ReloadingFailed(_),
            ) => {}
            // Enabled on another replica since: this one had not heard yet.
            Some(DataSourceStatus::Disabled) if enabled => {}
            Some(status) => return Ok(status),
        }
        self.begin_load(key);
        match self.manager.get(key) {
            // A loaded source only re-reads its schema: its pool and requests carry on.
            Some(source) => {
                let this = self.clone();
                let key = key.to_owned();
                let generation = self.supersede(&key);
                tokio::spawn(async move {
                    let outcome = source.refresh().await;
                    if this.is_current(&key, generation) {
                        this.finish(&key, outcome);
                    }
                });
            }
            None => self.spawn_load(record),
        }
        Ok(DataSourceStatus::Reloading)
    }

    fn begin_load(&self, key: &str) {
        let next = match self.manager.status(key) {
            Some(DataSourceStatus::Loaded) if self.manager.get(key).is_some() => {
                DataSourceStatus::Reloading
            }
            _ => DataSourceStatus::Loading,
        };
        self.manager.set_status(key, next);
    }

    fn finish(&self, key: &str, outcome: Result<()>) {
        match outcome {
            Ok(()) => self.manager.set_status(key, DataSourceStatus::Loaded),
            Err(e) => {
                tracing::warn!(data_source = key, error = %e.message(), "data source failed to load");
                let message = e.message().to_owned();
                let failed = match self.manager.status(key) {
                    Some(DataSourceStatus::Reloading) => DataSourceStatus::ReloadingFailed(message),
                    _ => DataSourceStatus::LoadingFailed(message),
                };
                self.manager.set_status(key, failed);
            }
        }
    }

    /// Starts a new generation of `key`, overtaking every load before it.
    fn supersede(&self, key: &str) -> u64 {
        let mut generation = self.generations.entry(key.to_owned()).or_insert(0);
        *generation += 1;
        *generation
    }

    fn is_current(&self, key: &str, generation: u64) -> bool {
        self.generations.get(key).is_some_and(|g| *g == generation)
    }

    fn spawn_load(self: &Arc<Self>, record: Record) {
        let this = self.clone();
        let key = str_of(&record, "key").to_owned();
        let generation = self.supersede(&key);
        self.loaded_with.insert(key.clone(), fingerprint(&record));
        tokio::spawn(async move {
            let lock = this
                .loading
                .entry(key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone();
            let _one_at_a_time = lock.lock().await;
            if !this.is_current(&key, generation) {
                return;
            }
            let outcome = this.load(&record, generation).await;
            if this.is_current(&key, generation) {
                this.finish(&key, outcome);
            }
        });
    }

    /// Connects, introspects and swaps the source in; the old instance keeps serving until
    /// the new one is ready, and is closed after. A load overtaken meanwhile (`generation`
    /// is no longer the key's) leaves the source out.
    async fn load(&self, record: &Record, generation: u64) -> Result<()> {
        let key = str_of(record, "key");
        let kind = str_of(record, "type");
        let options = record.get("options").cloned().unwrap_or_else(|| json!({}));
        let resolved = self.vet(kind, &options).await?;
        let changes_seen = self.declaration_changes(key);
        let declarations = self.declarations.of_source(key).await?;
        let source = self
            .manager
            .build_declared(key, kind, &resolved, self.settings.clone(), declarations)
            .await
            .map_err(|e| without_secrets(e, &options))?;
        if !self.is_current(key, generation) {
            source.close().await;
            return Ok(());
        }
        self.manager.add(source.clone()).await?;
        // A destroy or disable between the check above and the add removed nothing yet.
        if !self.is_current(key, generation) {
            self.manager.remove(key).await;
        } else if self.declaration_changes(key) != changes_seen {
            // Declared on while it loaded: what it read may be older than that.
            self.declarations.apply(&source).await?;
        }
        Ok(())
    }

    /// Counts a change of `key`'s declarations (here or on another replica), so a load
    /// that read them before the change applies them again when it ends.
    pub fn declarations_changed(&self, key: &str) {
        *self.declaration_changes.entry(key.to_owned()).or_insert(0) += 1;
    }

    fn declaration_changes(&self, key: &str) -> u64 {
        self.declaration_changes.get(key).map_or(0, |n| *n)
    }

    /// A record as clients see it: secrets removed, this replica's status and error
    /// attached. A record this replica has not heard of yet is taken up now, so the
    /// `loading` it shows is work under way.
    pub fn present(self: &Arc<Self>, record: &Record) -> Json {
        let key = str_of(record, "key");
        let mut out = record.clone();
        if let Some(options) = out.get_mut("options") {
            *options = mask_secrets(options);
        }
        let status = self
            .manager
            .status(key)
            .unwrap_or_else(|| self.take_up(record));
        out.insert("status".into(), json!(status.name()));
        if let Some(message) = status.error_message() {
            out.insert("errorMessage".into(), json!(message));
        }
        out.insert("fixed".into(), json!(false));
        Json::Object(out)
    }

    /// Starts reconciling the source of `record`, which this replica knows no status of,
    /// and answers the status that work starts from.
    fn take_up(self: &Arc<Self>, record: &Record) -> DataSourceStatus {
        let key = str_of(record, "key").to_owned();
        if record.get("enabled") == Some(&Json::Bool(false)) {
            self.manager.set_status(&key, DataSourceStatus::Disabled);
            return DataSourceStatus::Disabled;
        }
        self.manager.set_status(&key, DataSourceStatus::Loading);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.reconcile(&key).await {
                tracing::warn!(data_source = %key, error = %e.message(), "cannot take up a data source");
                this.manager.set_status(
                    &key,
                    DataSourceStatus::LoadingFailed(e.message().to_owned()),
                );
            }
        });
        DataSourceStatus::Loading
    }

    /// The main source as a read-only record.
    pub fn present_main(&self) -> Json {
        let kind = self
            .manager
            .get("main")
            .map(|m| m.kind().to_owned())
            .unwrap_or_default();
        json!({
            "key": "main",
            "type": kind,
            "displayName": "Main",
            "options": {},
            "enabled": true,
            "fixed": true,
            "status": "loaded",
        })
    }
}

fn str_of<'a>(record: &'a Record, key: &str) -> &'a str {
    record.get(key).and_then(Json::as_str).unwrap_or("")
}

/// What a load of `record` starts from: a change elsewhere in the record (its display
/// name) needs no reload.
fn fingerprint(record: &Record) -> Json {
    json!([
        record.get("type"),
        record.get("options"),
        record.get("enabled")
    ])
}

/// The error with every secret of `options` that its message might quote replaced by
/// `***`: drivers' messages are not ours to vouch for.
fn without_secrets(e: Error, options: &Json) -> Error {
    let secrets = secret_values(options);
    if secrets.is_empty() {
        return e;
    }
    let scrubbed = Error::new(e.kind(), scrub(e.message(), &secrets));
    match e.code() {
        Some(code) => scrubbed.with_code(code),
        None => scrubbed,
    }
}

/// Whether `new` is the masked form of the stored option `old` (and not `old` itself).
fn shown_form_of(new: &Json, old: Option<&Json>) -> bool {
    match (new, old) {
        (Json::String(new), Some(Json::String(old))) => {
            new != old && *new == super::secrets::mask_url(old)
        }
        _ => false,
    }
}

/// Keys are what clients send in `X-Data-Source`: short, plain, and never `main`.
fn validate_key(key: &str) -> Result<()> {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !plain {
        return Err(Error::bad_request(format!(
            "values.key: {key:?} is not a valid key: use 1 to 64 letters, digits, _ or -"
        )));
    }
    if key == "main" {
        return Err(Error::conflict("data source main already exists"));
    }
    Ok(())
}

/// The 404 of a data source that is not registered.
fn no_such_source(key: &str) -> Error {
    Error::not_found(format!("data source {key} does not exist"))
        .with_message_id("data-source-not-found", vec![("key", key.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_names() {
        assert!(validate_key("erp-2024_a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_key("main").is_err());
    }
}
