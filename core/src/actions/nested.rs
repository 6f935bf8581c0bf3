//! Nested association values in `create` and `update` (`{"title": "t", "tags": [1, {"name":
//! "new"}], "author": {"name": "ann"}}`), with the semantics of the spec's actions.md §11.2.
//! The whole write runs in one unit of work: it completes, or changes nothing.
//!
//! Order matters: belongsTo targets are resolved first (their keys are the row's foreign
//! keys), then the row is written, then hasOne/hasMany targets are pointed at it and
//! belongsToMany junction rows are replaced.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value as Json, json};

use super::association::{eq, same_key, set, within};
use crate::data_source::Unit;
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
            self.resolve_belongs_to(&collection, &nested, &mut attributes, policy, allowed, at)
                .await?;
            let row = WriteValues::from_json(
                &collection,
                &Json::Object(attributes),
                WriteKind::Create,
                allowed,
                at,
            )?;
            let record = self
                .repository(&collection)?
                .create(&[row])
                .await?
                .pop()
                .ok_or_else(|| Error::internal("the created row was not returned"))?;
            self.write_to_many(&collection, &record, &nested, policy, allowed, at)
                .await?;
            Ok(record)
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
        self.resolve_belongs_to(
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
        let repository = self.repository(&collection)?;
        let records = if row.is_empty() {
            let options = FindOptions {
                filter: filter.cloned(),
                ..FindOptions::default()
            };
            repository.find(&options).await?
        } else {
            repository.update(filter, &row).await?
        };
        for record in &records {
            self.write_to_many(&collection, record, &nested, policy, allowed, "values")
                .await?;
        }
        Ok(records)
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

    /// Sets the foreign key of each belongsTo value, creating targets where asked.
    async fn resolve_belongs_to(
        &self,
        collection: &Collection,
        nested: &[(Association, Json)],
        attributes: &mut Map<String, Json>,
        policy: &UpdatePolicy,
        allowed: &WriteFilter,
        at: &str,
    ) -> Result<()> {
        for (a, value) in nested
            .iter()
            .filter(|(a, _)| a.kind == AssociationKind::BelongsTo)
        {
            let here = format!("{at}.{}", a.name);
            let target = self.target(a)?;
            let key = match value {
                Json::Null => Some(Json::Null),
                Json::Array(_) => return Err(array_refused(&here)),
                Json::Object(map) => {
                    let named = map.get(&a.target_key).filter(|k| !k.is_null());
                    let stored = match named {
                        Some(key) => self.existing(&target, &a.target_key, key).await?,
                        None => None,
                    };
                    let target_allowed = inside(allowed, &a.name);
                    let resolved = self
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
                    Some(resolved)
                }
                key => self.existing(&target, &a.target_key, key).await?,
            };
            // A key naming no target is ignored, as NocoBase does.
            if let Some(key) = key {
                collection.require_field(&a.foreign_key, "association")?;
                attributes.insert(a.foreign_key.clone(), key);
            }
        }
        Ok(())
    }

    /// Points hasOne/hasMany targets at `record` and replaces its belongsToMany links.
    async fn write_to_many(
        &self,
        collection: &Collection,
        record: &Record,
        nested: &[(Association, Json)],
        policy: &UpdatePolicy,
        allowed: &WriteFilter,
        at: &str,
    ) -> Result<()> {
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
                        let key = self
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
                        (Some(key), pivot)
                    }
                    Json::Array(_) => return Err(array_refused(&here)),
                    key => (stored(key), None),
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
        }
        Ok(())
    }

    /// The key of the target an object value names: `existing` (its key as stored, when a
    /// target has the key the object gives), updated where `policy` allows; otherwise a
    /// new target (with `foreign_key` set, for hasOne/hasMany).
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
    ) -> Result<Json> {
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
            return Ok(existing);
        }
        if let Some((column, own)) = foreign_key {
            map.insert(column.to_owned(), own);
        }
        let created = self
            .create(target.clone(), &Json::Object(map), allowed, &inner, at)
            .await?;
        created.get(&a.target_key).cloned().ok_or_else(|| {
            Error::internal(format!(
                "the new {} row has no {}",
                target.name(),
                a.target_key
            ))
        })
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
