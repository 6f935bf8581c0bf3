//! Writes through an association (`/api/posts/1/tags:add`, `posts/1/comments:create`), with
//! the per-kind semantics of the spec's actions.md. Anything that takes more than one
//! statement runs in one unit of work, so it completes or changes nothing.

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::{ActionRequest, has_condition, nested};
use crate::context::{AssociationScope, Context};
use crate::data_source::Unit;
use crate::error::{Error, Result};
use crate::filter::{self, Condition, FieldRef, Filter, Predicate, key_filter};
use crate::middleware::{Middleware, Next};
use crate::query::FindOptions;
use crate::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use crate::schema::{AssociationKind, Collection};
use crate::value::Value;

fn condition(
    c: &Collection,
    column: &str,
    predicate: impl FnOnce(crate::schema::FieldType) -> Result<Predicate>,
) -> Result<Filter> {
    let field = c.require_field(column, "association")?;
    Ok(Filter::Condition(Condition {
        field: FieldRef::new(field),
        predicate: predicate(field.field_type)?,
    }))
}

pub(super) fn eq(c: &Collection, column: &str, v: &Json) -> Result<Filter> {
    condition(c, column, |ty| {
        Ok(match v {
            Json::Null => Predicate::IsNull,
            v => Predicate::Eq(Value::coerce(ty, v, column)?),
        })
    })
}

pub(super) fn within(c: &Collection, column: &str, keys: &[Json], negated: bool) -> Result<Filter> {
    condition(c, column, |ty| {
        let values = keys
            .iter()
            .map(|k| Value::coerce(ty, k, column))
            .collect::<Result<Vec<_>>>()?;
        Ok(if negated {
            Predicate::NotIn(values)
        } else {
            Predicate::In(values)
        })
    })
}

pub(super) fn set(c: &Collection, values: Json) -> Result<WriteValues> {
    WriteValues::from_json(
        c,
        &values,
        WriteKind::Update,
        &WriteFilter::default(),
        "values",
    )
}

pub(super) fn unit_source(t: &ActionRequest) -> Result<&crate::data_source::DataSource> {
    t.source
        .as_deref()
        .ok_or_else(|| Error::internal("no data source on the request"))
}

/// The association scope, or why this action needs one.
fn scope_of<'a>(t: &'a ActionRequest, action: &str) -> Result<&'a AssociationScope> {
    t.association.as_ref().ok_or_else(|| {
        Error::not_found(format!(
            "resource {} has no action {action}; it works on association resources such as /api/posts/1/tags:{action}",
            t.collection().name()
        ))
    })
}

/// The value of `column` in the source row; a 404 when the source row does not exist.
async fn own(scope: &AssociationScope, column: &str) -> Result<Json> {
    let source = &scope.source;
    let options = FindOptions {
        filter: key_filter(source, &Json::String(scope.source_id.clone()))?,
        fields: Some(vec![FieldRef::new(
            source.require_field(column, "association")?,
        )]),
        limit: Some(1),
        ..FindOptions::default()
    };
    let mut row = scope
        .source_repository
        .find(&options)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::not_found(format!(
                "{} {} does not exist",
                source.name(),
                scope.source_id
            ))
        })?;
    Ok(row.remove(column).unwrap_or(Json::Null))
}

/// `create` through the association: the new target is linked to the source.
pub(super) async fn create(t: &ActionRequest, values: &Json) -> Result<Json> {
    let scope = scope_of(t, "create")?;
    let a = &scope.association;
    let target = t.repository.collection().clone();
    let allowed = t.write_filter()?;
    let mut values = values.as_object().cloned().unwrap_or_default();
    let ds = unit_source(t)?;
    let unit = ds.begin().await?;
    let targets = unit.repository(&a.target)?;
    let created = match a.kind {
        AssociationKind::HasMany | AssociationKind::HasOne => {
            let key = own(scope, &a.source_key).await?;
            if a.kind == AssociationKind::HasOne {
                // One target at a time: the previous one is unlinked, as `set` would.
                unlink_all(&target, &targets, a.foreign_key.as_str(), &key).await?;
            }
            values.insert(a.foreign_key.clone(), key);
            create_one(&unit, ds, &target, Json::Object(values), &allowed).await?
        }
        AssociationKind::BelongsToMany => {
            let key = own(scope, &a.source_key).await?;
            let through = a.through.as_deref().unwrap_or_default();
            let pivot = values.remove(through);
            let row = create_one(&unit, ds, &target, Json::Object(values), &allowed).await?;
            let linked = row.get(&a.target_key).cloned().unwrap_or(Json::Null);
            link(&unit, scope, &key, &[(linked, pivot)]).await?;
            row
        }
        AssociationKind::BelongsTo => {
            let row = create_one(&unit, ds, &target, Json::Object(values), &allowed).await?;
            let linked = row.get(&a.target_key).cloned().unwrap_or(Json::Null);
            set_source_key(&unit, scope, linked).await?;
            row
        }
    };
    unit.commit().await?;
    Ok(Json::Object(created))
}

/// One target row from `values`, with nested associations of its own, inside the
/// request's writable fields (`whitelist`/`blacklist`, as the ACL narrowed them).
async fn create_one(
    unit: &Unit,
    ds: &crate::data_source::DataSource,
    c: &Arc<Collection>,
    values: Json,
    allowed: &WriteFilter,
) -> Result<Record> {
    nested::NestedWriter::new(unit, ds)
        .create(
            c.clone(),
            &values,
            allowed,
            &nested::UpdatePolicy::all(),
            "values",
        )
        .await
}

async fn unlink_all(
    c: &Collection,
    repo: &Arc<dyn Repository>,
    fk: &str,
    key: &Json,
) -> Result<()> {
    let values = set(c, json!({ fk: null }))?;
    repo.update(Some(&eq(c, fk, key)?), &values).await?;
    Ok(())
}

/// Points the source row's foreign key at `key` (or NULL).
async fn set_source_key(unit: &Unit, scope: &AssociationScope, key: Json) -> Result<()> {
    let source = &scope.source;
    let repo = unit.repository(source.name())?;
    let values = set(
        source,
        json!({ scope.association.foreign_key.clone(): key }),
    )?;
    let by_key = key_filter(source, &Json::String(scope.source_id.clone()))?;
    let changed = repo.update(by_key.as_ref(), &values).await?;
    if changed.is_empty() {
        return Err(Error::not_found(format!(
            "{} {} does not exist",
            source.name(),
            scope.source_id
        )));
    }
    Ok(())
}

/// Adds junction rows source→each target not yet linked, with pivot values.
async fn link(
    unit: &Unit,
    scope: &AssociationScope,
    own: &Json,
    targets: &[(Json, Option<Json>)],
) -> Result<()> {
    let a = &scope.association;
    let (Some(through), Some(other)) = (a.through.as_deref(), a.other_key.as_deref()) else {
        return Err(Error::internal("belongsToMany without a junction"));
    };
    let junction = unit.repository(through)?;
    let jc = junction.collection().clone();
    let keys: Vec<Json> = targets.iter().map(|(k, _)| k.clone()).collect();
    let existing = linked_keys(&junction, &a.foreign_key, other, own, Some(&keys)).await?;
    let mut rows = Vec::new();
    for (key, pivot) in targets {
        if existing.contains(key) || rows.iter().any(|(k, _): &(Json, WriteValues)| k == key) {
            continue;
        }
        let mut values = pivot
            .as_ref()
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        values.insert(a.foreign_key.clone(), own.clone());
        values.insert(other.to_owned(), key.clone());
        let row = WriteValues::from_json(
            &jc,
            &Json::Object(values),
            WriteKind::Create,
            &WriteFilter::default(),
            "values",
        )?;
        rows.push((key.clone(), row));
    }
    if !rows.is_empty() {
        let rows: Vec<WriteValues> = rows.into_iter().map(|(_, r)| r).collect();
        junction.create(&rows).await?;
    }
    Ok(())
}

/// The target keys the junction links `own` to (optionally only among `among`).
async fn linked_keys(
    junction: &Arc<dyn Repository>,
    fk: &str,
    other: &str,
    own: &Json,
    among: Option<&[Json]>,
) -> Result<Vec<Json>> {
    let jc = junction.collection();
    let mut filter = eq(jc, fk, own)?;
    if let Some(keys) = among {
        filter = Filter::And(vec![filter, within(jc, other, keys, false)?]);
    }
    let options = FindOptions {
        filter: Some(filter),
        fields: Some(vec![FieldRef::new(jc.require_field(other, "association")?)]),
        ..FindOptions::default()
    };
    Ok(junction
        .find(&options)
        .await?
        .into_iter()
        .filter_map(|mut r| r.remove(other))
        .collect())
}

/// `update` through the association. To-many: every matching target (an array); a
/// `values.<junction>` object also updates the pivot rows. To-one: the one target.
pub(super) async fn update(t: &ActionRequest, values: &Json) -> Result<Json> {
    let scope = scope_of(t, "update")?;
    let a = &scope.association;
    let target = t.collection().clone();
    let mut values = values.as_object().cloned().unwrap_or_default();
    let pivot = a
        .through
        .as_deref()
        .and_then(|through| values.remove(through));
    let scoped = match t.scoped().await? {
        super::Scoped::Only(f) => *f,
        _ => {
            return if a.kind.is_to_one() {
                Err(Error::not_found("The record does not exist"))
            } else {
                Ok(json!([]))
            };
        }
    };
    let request = if a.kind.is_to_one() {
        t.request_filter()?
    } else {
        t.filter()?
    };
    let matching = filter::and(Some(scoped), request);
    let write = WriteValues::from_json(
        &target,
        &Json::Object(values),
        WriteKind::Update,
        &t.write_filter()?,
        "values",
    )?;
    let ds = unit_source(t)?;
    let unit = ds.begin().await?;
    let updated = unit
        .repository(&a.target)?
        .update(matching.as_ref(), &write)
        .await?;
    if let (Some(pivot), Some(through), Some(other)) =
        (pivot, a.through.as_deref(), a.other_key.as_deref())
    {
        let junction = unit.repository(through)?;
        let jc = junction.collection().clone();
        let keys: Vec<Json> = updated
            .iter()
            .filter_map(|r| r.get(&a.target_key).cloned())
            .collect();
        let key = own(scope, &a.source_key).await?;
        let scope_rows = Filter::And(vec![
            eq(&jc, &a.foreign_key, &key)?,
            within(&jc, other, &keys, false)?,
        ]);
        let pivot_values = WriteValues::from_json(
            &jc,
            &pivot,
            WriteKind::Update,
            &WriteFilter::default(),
            "values",
        )?;
        junction.update(Some(&scope_rows), &pivot_values).await?;
    }
    unit.commit().await?;
    if a.kind.is_to_one() {
        return updated
            .into_iter()
            .next()
            .map(Json::Object)
            .ok_or_else(|| Error::not_found("The record does not exist"));
    }
    Ok(Json::Array(updated.into_iter().map(Json::Object).collect()))
}

/// `destroy` through the association: deletes the matching targets and every junction
/// row that points at them. `remove` only unlinks.
pub(super) async fn destroy(t: &ActionRequest) -> Result<Json> {
    let scope = scope_of(t, "destroy")?;
    let a = &scope.association;
    let scoped = match t.scoped().await? {
        super::Scoped::Only(f) => *f,
        _ if a.kind.is_to_one() => return Err(Error::not_found("The record does not exist")),
        _ => return Ok(json!(true)),
    };
    let request = if a.kind.is_to_one() {
        t.request_filter()?
    } else {
        t.filter()?
    };
    let matching = filter::and(Some(scoped), request);
    let ds = unit_source(t)?;
    let unit = ds.begin().await?;
    let targets = unit.repository(&a.target)?;
    // Every link to these targets goes with them, not only this source's, and those of
    // their other belongsToMany relations too.
    let links = junction_links(ds, t.collection());
    let matching = unlink_junctions(&unit, t.collection(), &links, matching.as_ref()).await?;
    let deleted = targets
        .destroy(matching.as_ref())
        .await
        .map_err(still_referenced)?;
    unit.commit().await.map_err(still_referenced)?;
    if a.kind.is_to_one() && deleted == 0 {
        return Err(Error::not_found("The record does not exist"));
    }
    Ok(json!(true))
}

/// A junction column that points at rows of one collection: deleting such a row must
/// delete the junction rows that hold its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JunctionLink {
    /// The junction collection.
    junction: String,
    /// The junction column holding the key.
    column: String,
    /// The column of the pointed-at collection whose value the junction holds.
    key: String,
}

/// Every junction column that points at `collection`: its own belongsToMany relations
/// and those of other collections that target it, declared or introspected alike (a
/// relation may be known from one side only).
pub(super) fn junction_links(
    source: &crate::data_source::DataSource,
    collection: &Collection,
) -> Vec<JunctionLink> {
    let mut links: Vec<JunctionLink> = Vec::new();
    let mut push = |link: JunctionLink| {
        if link.junction != collection.name() && !links.contains(&link) {
            links.push(link);
        }
    };
    for owner in source.collections() {
        for a in &owner.associations {
            let (AssociationKind::BelongsToMany, Some(through), Some(other)) =
                (a.kind, a.through.as_deref(), a.other_key.as_deref())
            else {
                continue;
            };
            if owner.name() == collection.name() {
                push(JunctionLink {
                    junction: through.to_owned(),
                    column: a.foreign_key.clone(),
                    key: a.source_key.clone(),
                });
            }
            if a.target == collection.name() {
                push(JunctionLink {
                    junction: through.to_owned(),
                    column: other.to_owned(),
                    key: a.target_key.clone(),
                });
            }
        }
    }
    links
}

/// Inside `unit`, deletes the junction rows of `links` that point at rows of
/// `collection` matching `filter`, before those rows are deleted in the same unit.
///
/// Returns the filter to delete the rows with: by primary key when there is one, since
/// `filter` may go through a belongsToMany relation whose junction rows are gone by then
/// (`{"tags.name": "a"}` would match nothing any more).
pub(super) async fn unlink_junctions(
    unit: &Unit,
    collection: &Collection,
    links: &[JunctionLink],
    filter: Option<&Filter>,
) -> Result<Option<Filter>> {
    let primary: Vec<&crate::schema::Field> = collection.primary_key().collect();
    let primary = match primary.as_slice() {
        [one] => Some(one.name.clone()),
        _ => None,
    };
    let mut key_fields: Vec<FieldRef> = Vec::new();
    for name in links.iter().map(|l| &l.key).chain(primary.as_ref()) {
        let field = FieldRef::new(collection.require_field(name, "association")?);
        if !key_fields.iter().any(|f| f.name == field.name) {
            key_fields.push(field);
        }
    }
    let options = FindOptions {
        filter: filter.cloned(),
        fields: Some(key_fields),
        ..FindOptions::default()
    };
    let rows = unit.repository(collection.name())?.find(&options).await?;
    if rows.is_empty() {
        return Ok(filter.cloned());
    }
    let keys_of = |column: &str| -> Vec<Json> {
        rows.iter()
            .filter_map(|r| r.get(column).filter(|k| !k.is_null()).cloned())
            .collect()
    };
    for link in links {
        let keys = keys_of(&link.key);
        if keys.is_empty() {
            continue;
        }
        let junction = unit.repository(&link.junction)?;
        let jc = junction.collection().clone();
        junction
            .destroy(Some(&within(&jc, &link.column, &keys, false)?))
            .await?;
    }
    Ok(match primary {
        Some(pk) => Some(within(collection, &pk, &keys_of(&pk), false)?),
        None => filter.cloned(),
    })
}

/// A failed delete as the client should see it: a foreign-key violation while deleting
/// can only mean that another row still references a deleted one, which is a conflict
/// with the data (409), not bad input.
pub(super) fn still_referenced(e: Error) -> Error {
    if e.code() == Some(crate::error::FOREIGN_KEY_VIOLATION) {
        Error::conflict(format!(
            "the record is still referenced, so nothing was deleted: {}",
            e.message()
        ))
        .with_code(crate::error::FOREIGN_KEY_VIOLATION)
    } else {
        e
    }
}

/// Which link action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    /// Link the given targets, keeping existing links.
    Add,
    /// Unlink the given targets (to-one: unlink the target).
    Remove,
    /// Link exactly the given targets.
    Set,
    /// belongsToMany: unlink the given targets if all are linked, else link them all.
    Toggle,
}

/// `add`, `remove`, `set`, `toggle` on an association resource.
pub struct Link(pub LinkAction);

#[async_trait::async_trait]
impl Middleware for Link {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = ActionRequest::of(ctx).await?;
        let name = format!("{:?}", self.0).to_lowercase();
        let scope = scope_of(&t, &name)?;
        let keys = link_keys(&t, scope)?;
        let existing = existing_targets(&t, scope, &keys).await?;
        let ds = unit_source(&t)?;
        let unit = ds.begin().await?;
        run_link(&t, &unit, scope, self.0, existing).await?;
        unit.commit().await?;
        ctx.body = Some(if self.0 == LinkAction::Toggle {
            json!("ok")
        } else {
            json!({})
        });
        // `{}` is the whole answer, not `{"data": {}}`.
        ctx.without_data_wrapping = self.0 != LinkAction::Toggle;
        next.run(ctx).await
    }
}

/// The keys a link action names: `filterByTk`, else `filterByTks`, else the body; each a
/// key, a `{<targetKey>: …}` or `{"tk": …}` object, or a `[key, {pivot}]` pair; `"1,2"` is
/// split.
fn link_keys(t: &ActionRequest, scope: &AssociationScope) -> Result<Vec<(Json, Option<Json>)>> {
    let raw = [
        t.params.get("filterByTk"),
        t.params.get("filterByTks"),
        t.params.get("values"),
    ]
    .into_iter()
    .flatten()
    .find(|v| match v {
        Json::Null => false,
        Json::String(s) => !s.is_empty(),
        Json::Object(m) => !m.is_empty(),
        _ => true,
    })
    .cloned()
    .unwrap_or(Json::Array(Vec::new()));
    let target_key = &scope.association.target_key;
    let one = |v: &Json| -> Result<(Json, Option<Json>)> {
        match v {
            Json::Array(pair) if pair.len() == 2 && pair[1].is_object() => {
                Ok((pair[0].clone(), Some(pair[1].clone())))
            }
            // NocoBase's clients name the target by the literal key `tk` as often as by
            // the target key's own name; both mean the same target.
            Json::Object(m) => {
                let key = match (m.get(target_key.as_str()), m.get("tk")) {
                    (Some(a), Some(b)) if !same_key(a, b) => {
                        return Err(Error::bad_request(format!(
                            "values: {v} names two targets: {target_key:?} is {a} and \"tk\" is {b}"
                        )));
                    }
                    (Some(k), _) | (None, Some(k)) => k,
                    (None, None) => {
                        return Err(Error::bad_request(format!(
                            "values: an object names its target by {target_key:?} or \"tk\""
                        )));
                    }
                };
                match key {
                    Json::String(_) | Json::Number(_) => Ok((key.clone(), None)),
                    other => Err(Error::bad_request(format!(
                        "values: {other} does not name a target"
                    ))),
                }
            }
            Json::String(_) | Json::Number(_) => Ok((v.clone(), None)),
            other => Err(Error::bad_request(format!(
                "values: {other} does not name a target"
            ))),
        }
    };
    match &raw {
        Json::Array(items) => items.iter().map(one).collect(),
        Json::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| (Json::String(p.to_owned()), None))
            .collect()),
        Json::Object(m) if m.is_empty() => Ok(Vec::new()),
        other => Ok(vec![one(other)?]),
    }
}

/// Whether a key as the client wrote it (`"3"`) and as the database stored it (`3`) are
/// the same key.
pub(super) fn same_key(a: &Json, b: &Json) -> bool {
    a == b || a.to_string().trim_matches('"') == b.to_string().trim_matches('"')
}

/// The named targets that exist, with their keys as stored (missing ones are skipped).
async fn existing_targets(
    t: &ActionRequest,
    scope: &AssociationScope,
    keys: &[(Json, Option<Json>)],
) -> Result<Vec<(Json, Option<Json>)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let target_key = &scope.association.target_key;
    let c = t.collection();
    let wanted: Vec<Json> = keys.iter().map(|(k, _)| k.clone()).collect();
    let options = FindOptions {
        filter: Some(within(c, target_key, &wanted, false)?),
        fields: Some(vec![FieldRef::new(
            c.require_field(target_key, "association")?,
        )]),
        ..FindOptions::default()
    };
    let found: Vec<Json> = t
        .repository
        .find(&options)
        .await?
        .into_iter()
        .filter_map(|mut r| r.remove(target_key))
        .collect();
    Ok(keys
        .iter()
        .filter_map(|(k, pivot)| {
            found
                .iter()
                .find(|f| same_key(f, k))
                .map(|f| (f.clone(), pivot.clone()))
        })
        .collect())
}

async fn run_link(
    t: &ActionRequest,
    unit: &Unit,
    scope: &AssociationScope,
    action: LinkAction,
    targets: Vec<(Json, Option<Json>)>,
) -> Result<()> {
    let a = &scope.association;
    let c = t.collection().clone();
    let keys: Vec<Json> = targets.iter().map(|(k, _)| k.clone()).collect();
    match a.kind {
        AssociationKind::BelongsToMany => {
            let key = own(scope, &a.source_key).await?;
            let (Some(through), Some(other)) = (a.through.as_deref(), a.other_key.as_deref())
            else {
                return Err(Error::internal("belongsToMany without a junction"));
            };
            let junction = unit.repository(through)?;
            let jc = junction.collection().clone();
            let mine = eq(&jc, &a.foreign_key, &key)?;
            let unlink = |keys: &[Json], negated: bool| -> Result<Filter> {
                Ok(Filter::And(vec![
                    mine.clone(),
                    within(&jc, other, keys, negated)?,
                ]))
            };
            match action {
                LinkAction::Add => link(unit, scope, &key, &targets).await?,
                LinkAction::Remove => {
                    if !keys.is_empty() {
                        junction.destroy(Some(&unlink(&keys, false)?)).await?;
                    }
                }
                LinkAction::Set => {
                    // Replace: drop every link, then write exactly the given ones (with
                    // their pivot values).
                    junction.destroy(Some(&mine)).await?;
                    link(unit, scope, &key, &targets).await?;
                }
                LinkAction::Toggle => {
                    let linked =
                        linked_keys(&junction, &a.foreign_key, other, &key, Some(&keys)).await?;
                    if !keys.is_empty() && keys.iter().all(|k| linked.contains(k)) {
                        junction.destroy(Some(&unlink(&keys, false)?)).await?;
                    } else {
                        link(unit, scope, &key, &targets).await?;
                    }
                }
            }
        }
        AssociationKind::HasMany | AssociationKind::HasOne => {
            let key = own(scope, &a.source_key).await?;
            let repo = unit.repository(&a.target)?;
            let fk = a.foreign_key.as_str();
            let link_to =
                |keys: &[Json]| -> Result<Filter> { within(&c, &a.target_key, keys, false) };
            match action {
                LinkAction::Add if a.kind == AssociationKind::HasMany && !keys.is_empty() => {
                    repo.update(Some(&link_to(&keys)?), &set(&c, json!({ fk: key }))?)
                        .await?;
                }
                LinkAction::Remove => {
                    let mut which = eq(&c, fk, &key)?;
                    if a.kind == AssociationKind::HasMany {
                        which = Filter::And(vec![which, link_to(&keys)?]);
                    }
                    if a.kind == AssociationKind::HasOne || !keys.is_empty() {
                        repo.update(Some(&which), &set(&c, json!({ fk: null }))?)
                            .await?;
                    }
                }
                LinkAction::Set => {
                    unlink_all(&c, &repo, fk, &key).await?;
                    let chosen: Vec<Json> = if a.kind == AssociationKind::HasOne {
                        keys.into_iter().take(1).collect()
                    } else {
                        keys
                    };
                    if !chosen.is_empty() {
                        repo.update(Some(&link_to(&chosen)?), &set(&c, json!({ fk: key }))?)
                            .await?;
                    }
                }
                // hasOne add and hasMany/hasOne toggle are no-ops, as on NocoBase's main source.
                _ => {}
            }
        }
        AssociationKind::BelongsTo => match action {
            LinkAction::Set => {
                let key = keys.into_iter().next().unwrap_or(Json::Null);
                set_source_key(unit, scope, key).await?;
            }
            LinkAction::Remove => set_source_key(unit, scope, Json::Null).await?,
            LinkAction::Add | LinkAction::Toggle => {}
        },
    }
    Ok(())
}

/// Whether a write through a to-one association may omit `filterByTk` and `filter`: its
/// target is already one row.
pub(super) fn to_one_needs_no_filter(
    params: &Map<String, Json>,
    scope: Option<&AssociationScope>,
) -> bool {
    scope.is_some_and(|s| s.association.kind.is_to_one())
        && !params.get("filter").is_some_and(has_condition)
}
