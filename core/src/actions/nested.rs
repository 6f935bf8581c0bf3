//! Nested association values in `create` and `update` (`{"title": "t", "tags": [1, {"name":
//! "new"}], "author": {"name": "ann"}}`), with the semantics of the spec's actions.md §11.2.
//! The whole write runs in one unit of work: it completes, or changes nothing.
//!
//! Order matters: belongsTo targets are resolved first (their keys are the row's foreign
//! keys), then the row is written, then hasOne/hasMany targets are pointed at it and
//! belongsToMany junction rows are replaced.
//!
//! The answer carries every association the request wrote, as NocoBase's does (spec
//! actions.md, create: "nested associations written in the request are also present as
//! written"): `null` as `null`, a key as the client wrote it, an object as the target row
//! as stored afterwards (created, or linked and perhaps updated). Keys that name no row
//! were ignored, so they are left out.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value as Json, json};

use super::association::{eq, same_key, set, within};
use crate::data_source::{AssociationEvents, Unit};
use crate::error::{Error, Result};
use crate::filter::{CollectionLookup, FieldRef, Filter};
use crate::query::FindOptions;
use crate::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use crate::schema::{Association, AssociationKind, Collection};

/// Which nested objects may change the existing targets they name
/// (`updateAssociationValues`): all on create, only the listed paths on update.
#[derive(Debug, Clone)]
pub(super) struct UpdatePolicy {
    all: bool,
    paths: Vec<String>,
}

impl UpdatePolicy {
    /// Every association, at every depth (NocoBase's default for `create`).
    pub(super) fn all() -> Self {
        Self {
            all: true,
            paths: Vec::new(),
        }
    }

    /// Only `paths` (`["tags", "posts.comments"]`), NocoBase's default for `update` being
    /// none.
    pub(super) fn only(paths: Vec<String>) -> Self {
        Self { all: false, paths }
    }

    fn allows(&self, name: &str) -> bool {
        self.all || self.paths.iter().any(|p| p == name)
    }

    /// The policy one association down.
    fn inside(&self, name: &str) -> Self {
        let prefix = format!("{name}.");
        Self {
            all: self.all,
            paths: self
                .paths
                .iter()
                .filter_map(|p| p.strip_prefix(&prefix).map(str::to_owned))
                .collect(),
        }
    }
}

/// Whether `values` (an object, or an array of them) names any association of
/// `collection`.
pub(super) fn has_nested(collection: &Collection, values: &Json) -> bool {
    match values {
        Json::Object(map) => map.keys().any(|k| collection.association(k).is_some()),
        Json::Array(items) => items.iter().any(|v| has_nested(collection, v)),
        _ => false,
    }
}

/// `whitelist`/`blacklist` one association down: `tags.name` becomes `name`; a plain
/// `tags` in the whitelist allows everything inside.
fn inside(allowed: &WriteFilter, name: &str) -> WriteFilter {
    let prefix = format!("{name}.");
    let strip = |items: &[String]| -> Vec<String> {
        items
            .iter()
            .filter_map(|i| i.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    WriteFilter {
        whitelist: allowed.whitelist.as_ref().and_then(|w| {
            if w.iter().any(|i| i == name) {
                None
            } else {
                Some(strip(w))
            }
        }),
        blacklist: strip(&allowed.blacklist),
    }
}

fn permitted(allowed: &WriteFilter, name: &str) -> bool {
    let prefix = format!("{name}.");
    allowed
        .whitelist
        .as_ref()
        .is_none_or(|w| w.iter().any(|i| i == name || i.starts_with(&prefix)))
        && !allowed.blacklist.iter().any(|i| i == name)
}

/// What the answer shows for the associations a write named: `(name, value)` pairs.
type Echoes = Vec<(String, Json)>;

fn with_echoes(mut record: Record, echoes: &Echoes) -> Record {
    for (name, value) in echoes {
        record.insert(name.clone(), value.clone());
    }
    record
}

/// One write with everything it needs to recurse.
pub(super) struct NestedWriter<'u> {
    unit: &'u Unit,
    lookup: &'u dyn CollectionLookup,
}

impl<'u> NestedWriter<'u> {
    /// A writer inside `unit`, finding target collections with `lookup`.
    pub(super) fn new(unit: &'u Unit, lookup: &'u dyn CollectionLookup) -> Self {
        Self { unit, lookup }
    }

    fn target(&self, a: &Association) -> Result<Arc<Collection>> {
        self.lookup.lookup(&a.target).ok_or_else(|| {
            Error::bad_request(format!(
                "association {} points at collection {}, which does not exist",
                a.name, a.target
            ))
        })
    }

    fn repository(&self, c: &Collection) -> Result<Arc<dyn Repository>> {
        self.unit.repository(c.name())
    }

    /// Inserts one row of `collection` from `values`, with its nested associations.
    pub(super) fn create<'a>(
        &'a self,
        collection: Arc<Collection>,
        values: &'a Json,
        allowed: &'a WriteFilter,
        policy: &'a UpdatePolicy,
        at: &'a str,
    ) -> BoxFuture<'a, Result<Record>> {
        Box::pin(async move {
            let map = object(values, at)?;
            let (mut attributes, nested) = self.split(&collection, map, allowed);
            let mut echoes = self
                .resolve_belongs_to(&collection, &nested, &mut attributes, policy, allowed, at)
                .await?;
            let row = WriteValues::from_json(
                &collection,
                &Json::Object(attributes),
                WriteKind::Create,
                allowed,
                at,
            )?;
            let record = self
                .unit
                .repository_with(collection.name(), AssociationEvents::Deferred)?
                .create(&[row])
                .await?
                .pop()
                .ok_or_else(|| Error::internal("the created row was not returned"))?;
            echoes.extend(
                self.write_to_many(&collection, &record, &nested, policy, allowed, at)
                    .await?,
            );
            self.unit
                .written_with_associations(&collection, &record, true)
                .await?;
            Ok(with_echoes(record, &echoes))
        })
    }

    /// Updates the rows of `collection` matching `filter` with `values`, then their nested
    /// associations; returns the updated rows.
    pub(super) fn update<'a>(
        &'a self,
        collection: Arc<Collection>,
        filter: Option<&'a Filter>,
        values: &'a Json,
        allowed: &'a WriteFilter,
        policy: &'a UpdatePolicy,
    ) -> BoxFuture<'a, Result<Vec<Record>>> {
        Box::pin(self.update_rows(collection, filter, values, allowed, policy))
    }

    async fn update_rows(
        &self,
        collection: Arc<Collection>,
        filter: Option<&Filter>,
        values: &Json,
        allowed: &WriteFilter,
        policy: &UpdatePolicy,
    ) -> Result<Vec<Record>> {
        let map = object(values, "values")?;
        let (mut attributes, nested) = self.split(&collection, map, allowed);
        let to_one = self
            .resolve_belongs_to(
                &collection,
                &nested,
                &mut attributes,
                policy,
                allowed,
                "values",
            )
            .await?;
        let row = WriteValues::from_json(
            &collection,
            &Json::Object(attributes),
            WriteKind::Update,
            allowed,
            "values",
        )?;
        let repository = self
            .unit
            .repository_with(collection.name(), AssociationEvents::Deferred)?;
        let records = if row.is_empty() {
            let options = FindOptions {
                filter: filter.cloned(),
                ..FindOptions::default()
            };
            repository.find(&options).await?
        } else {
            repository.update(filter, &row).await?
        };
        let mut answered = Vec::with_capacity(records.len());
        for record in records {
            let mut echoes = to_one.clone();
            echoes.extend(
                self.write_to_many(&collection, &record, &nested, policy, allowed, "values")
                    .await?,
            );
            self.unit
                .written_with_associations(&collection, &record, false)
                .await?;
            answered.push(with_echoes(record, &echoes));
        }
        Ok(answered)
    }

    /// Attribute values and association values, apart.
    fn split(
        &self,
        collection: &Collection,
        map: &Map<String, Json>,
        allowed: &WriteFilter,
    ) -> (Map<String, Json>, Vec<(Association, Json)>) {
        let mut attributes = Map::new();
        let mut nested = Vec::new();
        for (key, value) in map {
            match collection.association(key) {
                Some(a) if permitted(allowed, key) => nested.push((a.clone(), value.clone())),
                Some(_) => {}
                None => {
                    attributes.insert(key.clone(), value.clone());
                }
            }
        }
        (attributes, nested)
    }

    /// Sets the foreign key of each belongsTo value, creating targets where asked; returns
    /// what the answer shows for them.
    async fn resolve_belongs_to(
        &self,
        collection: &Collection,
        nested: &[(Association, Json)],
        attributes: &mut Map<String, Json>,
        policy: &UpdatePolicy,
        allowed: &WriteFilter,
        at: &str,
    ) -> Result<Echoes> {
        let mut echoes = Echoes::new();
        for (a, value) in nested
            .iter()
            .filter(|(a, _)| a.kind == AssociationKind::BelongsTo)
        {
            let here = format!("{at}.{}", a.name);
            let target = self.target(a)?;
            let key = match value {
                Json::Null => {
                    echoes.push((a.name.clone(), Json::Null));
                    Some(Json::Null)
                }
                Json::Array(_) => return Err(array_refused(&here)),
                Json::Object(map) => {
                    let named = map.get(&a.target_key).filter(|k| !k.is_null());
                    let stored = match named {
                        Some(key) => self.existing(&target, &a.target_key, key).await?,
                        None => None,
                    };
                    let target_allowed = inside(allowed, &a.name);
                    let (resolved, created) = self
                        .resolve(
                            &target,
                            a,
                            value,
                            stored,
                            None,
                            policy,
                            &target_allowed,
                            &here,
                        )
                        .await?;
                    let row = match created {
                        Some(row) => Some(row),
                        None => self
                            .rows(&target, &a.target_key, std::slice::from_ref(&resolved))
                            .await?
                            .pop(),
                    };
                    echoes.push((a.name.clone(), row.map_or(Json::Null, Json::Object)));
                    Some(resolved)
                }
                key => {
                    let stored = self.existing(&target, &a.target_key, key).await?;
                    if stored.is_some() {
                        echoes.push((a.name.clone(), key.clone()));
                    }
                    stored
                }
            };
            // A key naming no target is ignored, as NocoBase does.
            if let Some(key) = key {
                collection.require_field(&a.foreign_key, "association")?;
                attributes.insert(a.foreign_key.clone(), key);
            }
        }
        Ok(echoes)
    }

    /// Points hasOne/hasMany targets at `record` and replaces its belongsToMany links;
    /// returns what the answer shows for them.
    async fn write_to_many(
        &self,
        collection: &Collection,
        record: &Record,
        nested: &[(Association, Json)],
        policy: &UpdatePolicy,
        allowed: &WriteFilter,
        at: &str,
    ) -> Result<Echoes> {
        let mut echoes = Echoes::new();
        for (a, value) in nested
            .iter()
            .filter(|(a, _)| a.kind != AssociationKind::BelongsTo)
        {
            let here = format!("{at}.{}", a.name);
            let own = record.get(&a.source_key).cloned().ok_or_else(|| {
                Error::internal(format!(
                    "{} row came back without {}",
                    collection.name(),
                    a.source_key
                ))
            })?;
            let items: Vec<&Json> = match (a.kind, value) {
                (_, Json::Null) => Vec::new(),
                (AssociationKind::HasOne, Json::Array(_)) => return Err(array_refused(&here)),
                (_, Json::Array(items)) => items.iter().collect(),
                (_, one) => vec![one],
            };
            let target = self.target(a)?;
            let allowed = inside(allowed, &a.name);
            // One query says which of the named targets exist, however many are named.
            let named: Vec<Json> = items
                .iter()
                .filter_map(|item| match item {
                    Json::Object(map) => map.get(&a.target_key).filter(|k| !k.is_null()).cloned(),
                    Json::Array(_) | Json::Null => None,
                    key => Some((*key).clone()),
                })
                .collect();
            let found = self.existing_keys(&target, &a.target_key, &named).await?;
            let stored = |key: &Json| found.iter().find(|f| same_key(f, key)).cloned();
            let mut keys = Vec::with_capacity(items.len());
            let mut pivots = Vec::with_capacity(items.len());
            let mut shown = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let here = format!("{here}.{i}");
                let (key, pivot) = match item {
                    Json::Object(map) => {
                        let mut map = map.clone();
                        let pivot = a.through.as_ref().and_then(|t| map.remove(t));
                        let existing = map
                            .get(&a.target_key)
                            .filter(|k| !k.is_null())
                            .and_then(stored);
                        let fk = (a.kind != AssociationKind::BelongsToMany)
                            .then(|| (a.foreign_key.as_str(), own.clone()));
                        let (key, created) = self
                            .resolve(
                                &target,
                                a,
                                &Json::Object(map),
                                existing,
                                fk,
                                policy,
                                &allowed,
                                &here,
                            )
                            .await?;
                        shown.push(match created {
                            Some(row) => Shown::Row(row),
                            None => Shown::Stored(key.clone()),
                        });
                        (Some(key), pivot)
                    }
                    Json::Array(_) => return Err(array_refused(&here)),
                    key => {
                        let found = stored(key);
                        if found.is_some() {
                            shown.push(Shown::Written((*key).clone()));
                        }
                        (found, None)
                    }
                };
                if let Some(key) = key {
                    keys.push(key);
                    pivots.push(pivot);
                }
            }
            match a.kind {
                AssociationKind::BelongsToMany => {
                    self.replace_links(a, &own, &keys, pivots).await?;
                }
                _ => self.replace_targets(&target, a, &own, &keys).await?,
            }
            // Existing targets are read after the links are written, so a hasMany
            // target shows its new foreign key; one query for all of them.
            let linked: Vec<Json> = shown
                .iter()
                .filter_map(|s| match s {
                    Shown::Stored(key) => Some(key.clone()),
                    _ => None,
                })
                .collect();
            let rows = self.rows(&target, &a.target_key, &linked).await?;
            let mut values: Vec<Json> = shown
                .into_iter()
                .filter_map(|s| match s {
                    Shown::Row(row) => Some(Json::Object(row)),
                    Shown::Written(key) => Some(key),
                    Shown::Stored(key) => rows
                        .iter()
                        .find(|r| r.get(&a.target_key).is_some_and(|k| same_key(k, &key)))
                        .cloned()
                        .map(Json::Object),
                })
                .collect();
            let value = match (a.kind, value) {
                (_, Json::Null) => Json::Null,
                (AssociationKind::HasOne, _) => values.pop().unwrap_or(Json::Null),
                _ => Json::Array(values),
            };
            echoes.push((a.name.clone(), value));
        }
        Ok(echoes)
    }

    /// The key of the target an object value names: `existing` (its key as stored, when a
    /// target has the key the object gives), updated where `policy` allows; otherwise a
    /// new target (with `foreign_key` set, for hasOne/hasMany), which comes back too.
    #[allow(clippy::too_many_arguments)]
    async fn resolve(
        &self,
        target: &Arc<Collection>,
        a: &Association,
        value: &Json,
        existing: Option<Json>,
        foreign_key: Option<(&str, Json)>,
        policy: &UpdatePolicy,
        allowed: &WriteFilter,
        at: &str,
    ) -> Result<(Json, Option<Record>)> {
        let mut map = object(value, at)?.clone();
        let inner = policy.inside(&a.name);
        if let Some(existing) = existing {
            if policy.allows(&a.name) {
                map.remove(&a.target_key);
                if !map.is_empty() {
                    let by_key = eq(target, &a.target_key, &existing)?;
                    self.update(
                        target.clone(),
                        Some(&by_key),
                        &Json::Object(map),
                        allowed,
                        &inner,
                    )
                    .await?;
                }
            }
            return Ok((existing, None));
        }
        if let Some((column, own)) = foreign_key {
            map.insert(column.to_owned(), own);
        }
        let created = self
            .create(target.clone(), &Json::Object(map), allowed, &inner, at)
            .await?;
        let key = created.get(&a.target_key).cloned().ok_or_else(|| {
            Error::internal(format!(
                "the new {} row has no {}",
                target.name(),
                a.target_key
            ))
        })?;
        Ok((key, Some(created)))
    }

    /// The rows of `target` whose `column` is one of `keys`, in one query.
    async fn rows(&self, target: &Collection, column: &str, keys: &[Json]) -> Result<Vec<Record>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let options = FindOptions {
            filter: Some(within(target, column, keys, false)?),
            ..FindOptions::default()
        };
        self.repository(target)?.find(&options).await
    }

    /// `key` as stored, when a row of `target` has it.
    async fn existing(
        &self,
        target: &Collection,
        column: &str,
        key: &Json,
    ) -> Result<Option<Json>> {
        let found = self
            .existing_keys(target, column, std::slice::from_ref(key))
            .await?;
        Ok(found.into_iter().next())
    }

    /// Those of `keys` that a row of `target` has in `column`, as stored, in one query.
    async fn existing_keys(
        &self,
        target: &Collection,
        column: &str,
        keys: &[Json],
    ) -> Result<Vec<Json>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let field = target.require_field(column, "association")?;
        let options = FindOptions {
            filter: Some(within(target, column, keys, false)?),
            fields: Some(vec![FieldRef::new(field)]),
            ..FindOptions::default()
        };
        Ok(self
            .repository(target)?
            .find(&options)
            .await?
            .into_iter()
            .filter_map(|mut r| r.remove(column))
            .collect())
    }

    /// hasOne/hasMany: exactly `keys` point at `own` afterwards; others are unlinked.
    async fn replace_targets(
        &self,
        target: &Collection,
        a: &Association,
        own: &Json,
        keys: &[Json],
    ) -> Result<()> {
        let repository = self.repository(target)?;
        let mine = eq(target, &a.foreign_key, own)?;
        let others = if keys.is_empty() {
            mine
        } else {
            Filter::And(vec![mine, within(target, &a.target_key, keys, true)?])
        };
        repository
            .update(
                Some(&others),
                &set(target, json!({ a.foreign_key.clone(): null }))?,
            )
            .await?;
        if !keys.is_empty() {
            repository
                .update(
                    Some(&within(target, &a.target_key, keys, false)?),
                    &set(target, json!({ a.foreign_key.clone(): own }))?,
                )
                .await?;
        }
        Ok(())
    }

    /// belongsToMany: the junction links `own` to exactly `keys` afterwards, with their
    /// pivot values.
    async fn replace_links(
        &self,
        a: &Association,
        own: &Json,
        keys: &[Json],
        pivots: Vec<Option<Json>>,
    ) -> Result<()> {
        let (Some(through), Some(other)) = (a.through.as_deref(), a.other_key.as_deref()) else {
            return Err(Error::internal("belongsToMany without a junction"));
        };
        let junction = self.unit.repository(through)?;
        let jc = junction.collection().clone();
        junction
            .destroy(Some(&eq(&jc, &a.foreign_key, own)?))
            .await?;
        let mut rows = Vec::with_capacity(keys.len());
        let mut seen: Vec<&Json> = Vec::with_capacity(keys.len());
        for (key, pivot) in keys.iter().zip(pivots) {
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let mut values = pivot
                .and_then(|p| p.as_object().cloned())
                .unwrap_or_default();
            values.insert(a.foreign_key.clone(), own.clone());
            values.insert(other.to_owned(), key.clone());
            rows.push(WriteValues::from_json(
                &jc,
                &Json::Object(values),
                WriteKind::Create,
                &WriteFilter::default(),
                "values",
            )?);
        }
        if !rows.is_empty() {
            junction.create(&rows).await?;
        }
        Ok(())
    }
}

/// One element of a to-many association's answer, before the rows are read.
enum Shown {
    /// A key as the client wrote it.
    Written(Json),
    /// A row created by this write (with its own nested answer).
    Row(Record),
    /// An existing target, by its stored key, to be read once the links are written.
    Stored(Json),
}

fn object<'a>(values: &'a Json, at: &str) -> Result<&'a Map<String, Json>> {
    static EMPTY: std::sync::OnceLock<Map<String, Json>> = std::sync::OnceLock::new();
    match values {
        Json::Object(map) => Ok(map),
        Json::Null => Ok(EMPTY.get_or_init(Map::new)),
        other => Err(Error::bad_request(format!(
            "{at}: expected an object of field values, got {other}"
        ))),
    }
}

fn array_refused(at: &str) -> Error {
    Error::bad_request(format!("The value of '{at}' cannot be in array format"))
}
