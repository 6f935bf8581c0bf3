//! Conditions through a relation to another data source (`{"author.name": "ann"}` where
//! `author` lives in `crm`): no join reaches another database, so the matching keys are
//! read from the other source first and the condition becomes a local `$in` on them.
//!
//! This runs on the filter's JSON, before it is parsed against the collection, so the
//! parser and every connector keep seeing plain local conditions. It covers to-one
//! relations (belongsTo, hasOne) at the top of the filter and inside `$and`/`$or`; a
//! to-many one, or one reached through a local relation, is left for the parser to
//! refuse with a clear 400.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value as Json, json};

use super::parse::parse_filter_at;
use super::{FieldRef, FilterContext};
use crate::data_source::DataSource;
use crate::error::{Error, Result};
use crate::query::FindOptions;
use crate::schema::{Association, AssociationKind, Collection};

/// The most conditions through relations to other sources one filter may hold: each
/// is a read on another database before the request's own, so a filter of thousands
/// would be thousands of reads. More is a 400.
pub const MAX_REMOTE_CONDITIONS: usize = 16;

/// What resolving a filter needs besides the filter itself.
pub struct RemoteFilters<'a> {
    /// The collection the filter is on.
    pub collection: &'a Collection,
    /// Its source, through which the other sources are reached.
    pub source: &'a DataSource,
    /// The request's time zone and clock; operators are the other source's.
    pub context: &'a FilterContext,
    /// The caller's roles, checked against the other source's grants.
    pub roles: &'a [&'a str],
    /// The most keys one condition may collect (the source's
    /// `max_relation_filter_keys`); more is a 400.
    pub max_keys: usize,
}

impl RemoteFilters<'_> {
    /// `filter` with every condition through a to-one relation to another source
    /// replaced by an `$in` on the local key.
    pub async fn resolve(&self, filter: &Json) -> Result<Json> {
        let conditions = self.count(filter);
        if conditions > MAX_REMOTE_CONDITIONS {
            return Err(Error::bad_request(format!(
                "filter: {conditions} conditions go through relations to other data sources; \
                 at most {MAX_REMOTE_CONDITIONS} may, each being a read there"
            )));
        }
        match filter {
            Json::Object(map) => Ok(Json::Object(self.object(map, "filter").await?)),
            other => Ok(other.clone()),
        }
    }

    /// How many conditions of `filter` go through relations to other sources.
    fn count(&self, filter: &Json) -> usize {
        let Json::Object(map) = filter else {
            return 0;
        };
        map.iter()
            .map(|(key, value)| match (key.as_str(), value) {
                ("$and" | "$or", Json::Array(items)) => items.iter().map(|i| self.count(i)).sum(),
                ("$and" | "$or", nested) => self.count(nested),
                _ => {
                    let first = key.split('.').next().unwrap_or(key);
                    usize::from(self.collection.remote_association(first).is_some())
                }
            })
            .sum()
    }

    fn object<'s>(
        &'s self,
        map: &'s Map<String, Json>,
        at: &'s str,
    ) -> BoxFuture<'s, Result<Map<String, Json>>> {
        Box::pin(async move {
            let mut out = Map::with_capacity(map.len());
            let mut resolved = Vec::new();
            for (key, value) in map {
                let here = format!("{at}.{key}");
                if key == "$and" || key == "$or" {
                    out.insert(key.clone(), self.group(value, &here).await?);
                    continue;
                }
                let (first, rest) = key.split_once('.').unwrap_or((key, ""));
                match self.collection.remote_association(first) {
                    Some(a) if a.kind.is_to_one() => {
                        let inner = match (rest.is_empty(), value) {
                            (false, _) => json!({ rest: value }),
                            (true, Json::Object(_)) => value.clone(),
                            (true, other) => {
                                return Err(Error::bad_request(format!(
                                    "{here}: {first} is a relation to data source {}; give \
                                     it a filter object such as {{\"{first}\": {{\"id\": …}}}}, \
                                     not {other}",
                                    a.target_source.as_deref().unwrap_or_default()
                                )));
                            }
                        };
                        resolved.push(self.condition(a, &inner, &format!("{at}.{first}")).await?);
                    }
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            if !resolved.is_empty() {
                // Beside any `$and` already there: one local key may be named twice.
                match out.remove("$and") {
                    Some(Json::Array(items)) => resolved.extend(items),
                    Some(other) => resolved.push(other),
                    None => {}
                }
                out.insert("$and".into(), Json::Array(resolved));
            }
            Ok(out)
        })
    }

    async fn group(&self, value: &Json, at: &str) -> Result<Json> {
        match value {
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(match item {
                        Json::Object(map) => {
                            Json::Object(self.object(map, &format!("{at}.{i}")).await?)
                        }
                        other => other.clone(),
                    });
                }
                Ok(Json::Array(out))
            }
            Json::Object(map) => Ok(Json::Object(self.object(map, at).await?)),
            other => Ok(other.clone()),
        }
    }

    /// `{local key: {"$in": [keys of the targets matching inner]}}`.
    async fn condition(&self, a: &Association, inner: &Json, at: &str) -> Result<Json> {
        let key = a.target_source.as_deref().unwrap_or_default();
        let peer = self
            .source
            .peer(key)
            .map_err(|e| e.context(at.to_owned()))?;
        let (target, repository) = peer.collection(&a.target).ok_or_else(|| {
            Error::not_found(format!(
                "{at}: collection {} does not exist in data source {key}",
                a.target
            ))
        })?;
        if peer
            .acl()
            .permission(self.roles, target.name(), "list")
            .is_none()
        {
            return Err(Error::forbidden(format!(
                "{at}: no permission to read {} in data source {key}",
                target.name()
            )));
        }
        let (local, remote) = match a.kind {
            AssociationKind::BelongsTo => (&a.foreign_key, &a.target_key),
            _ => (&a.source_key, &a.foreign_key),
        };
        let context = FilterContext {
            operators: peer.operators().clone(),
            ..self.context.clone()
        };
        let filter = parse_filter_at(&target, inner, &context, &*peer, at)?;
        let field = target.require_field(remote, at)?;
        let options = FindOptions {
            filter,
            fields: Some(vec![FieldRef::new(field)]),
            limit: Some(self.max_keys as u64 + 1),
            ..FindOptions::default()
        };
        let rows = repository.find(&options).await?;
        if rows.len() > self.max_keys {
            return Err(Error::bad_request(format!(
                "{at}: more than {} records of {} in data source {key} match; narrow the \
                 condition (the limit, MANIFOLD_MAX_RELATION_FILTER_KEYS)",
                self.max_keys,
                target.name()
            )));
        }
        let mut keys: Vec<Json> = rows
            .into_iter()
            .filter_map(|mut r| r.shift_remove(remote.as_str()))
            .filter(|k| !k.is_null())
            .collect();
        keys.dedup();
        Ok(json!({ local.as_str(): { "$in": keys } }))
    }
}
