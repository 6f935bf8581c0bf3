//! The built-in actions every collection answers: `list`, `get`, `create`, `update`,
//! `destroy`, `firstOrCreate`, `updateOrCreate`; and the guard that refuses an `update` or
//! `destroy` aimed at no particular rows.
//!
//! Handlers are middleware: each sets `ctx.body` and then runs `next`, so app middleware
//! registered after the router still runs around the response.

mod association;
mod create;
mod destroy;
mod get;
mod list;
mod nested;
mod or_create;
mod update;

pub use create::Create;
pub use destroy::Destroy;
pub use get::Get;
pub use list::List;
pub use or_create::{FirstOrCreate, UpdateOrCreate};
pub use update::Update;

use std::sync::Arc;

use futures_util::StreamExt as _;
use serde_json::{Map, Value as Json, json};

use crate::appends::{self, Shape};
use crate::context::AssociationScope;
use crate::context::Context;
use crate::data_source::DataSource;
use crate::error::{Error, Result};
use crate::filter::{
    self, CollectionLookup, Condition, FieldRef, Filter, FilterContext, NoCollections,
    OperatorSupport, Predicate, key_filter, key_filter_for, parse_filter_across,
    parse_filter_in_context,
};
use crate::middleware::{Middleware, Next};
use crate::params::Params;
use crate::query::FindOptions;
use crate::raw_rows::RawRows;
use crate::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use crate::schema::AssociationKind;
use crate::schema::Collection;
use crate::streamed::StreamedArray;
use crate::value::Value;

/// How many records a large answer or a bulk `create` handles at a time: `list` with
/// `paginate=false` reads, embeds and writes this many before the next; a `create` with a
/// longer array converts and inserts this many at a time, in one transaction.
pub const BATCH_ROWS: usize = 500;

/// Registers the built-in actions as global handlers of `source`'s resource manager.
pub fn register_default_actions(source: &DataSource) {
    use association::{Link, LinkAction};
    let handlers: [(&str, Arc<dyn Middleware>); 11] = [
        ("list", Arc::new(List)),
        ("get", Arc::new(Get)),
        ("create", Arc::new(Create)),
        ("update", Arc::new(Update)),
        ("destroy", Arc::new(Destroy)),
        ("firstOrCreate", Arc::new(FirstOrCreate)),
        ("updateOrCreate", Arc::new(UpdateOrCreate)),
        ("add", Arc::new(Link(LinkAction::Add))),
        ("remove", Arc::new(Link(LinkAction::Remove))),
        ("set", Arc::new(Link(LinkAction::Set))),
        ("toggle", Arc::new(Link(LinkAction::Toggle))),
    ];
    source.resource_manager().register_action_handlers(handlers);
}

/// Whether a raw filter holds at least one condition anywhere (NocoBase's `isValidFilter`,
/// in its recommended form).
pub fn has_condition(filter: &Json) -> bool {
    match filter {
        Json::Object(map) => map.iter().any(|(k, v)| match k.as_str() {
            "$and" | "$or" => match v {
                Json::Array(items) => items.iter().any(has_condition),
                other => has_condition(other),
            },
            _ => true,
        }),
        _ => false,
    }
}

/// Refuses `update`/`destroy` without a filter or `filterByTk` (before authentication, as
/// NocoBase orders it), so a forgotten parameter can never rewrite or empty a table.
pub struct ValidateFilterParams;

#[async_trait::async_trait]
impl Middleware for ValidateFilterParams {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let action = ctx.action()?;
        let name = action.action_name.as_str();
        let to_one = association::to_one_needs_no_filter(
            action.params.as_map(),
            action.association.as_ref(),
        );
        if matches!(name, "update" | "destroy") && !to_one {
            let params = &action.params;
            if let Some(f) = params.get("filter")
                && !f.is_null()
                && !has_condition(f)
            {
                return Err(Error::bad_request(format!(
                    "Invalid filter: {f} has no condition; to {name} by key use filterByTk alone"
                ))
                .with_message_id(
                    "filter-without-condition",
                    vec![("filter", f.to_string()), ("action", name.to_owned())],
                ));
            }
            let has_filter = params.get("filter").is_some_and(has_condition);
            let has_key = params
                .get("filterByTk")
                .is_some_and(|v| !v.is_null() && v != "" && v != &json!([]));
            let forced = name == "update" && params.flag("forceUpdate");
            if !has_filter && !has_key && !forced {
                return Err(Error::bad_request(format!(
                    "to do {name} action, filter or filterByTk is required"
                ))
                .with_message_id("filter-required", vec![("action", name.to_owned())]));
            }
        }
        next.run(ctx).await
    }
}

/// The current request as an action handles it: its repository, params, source, time zone
/// and association scope.
struct ActionRequest {
    repository: Arc<dyn Repository>,
    params: Params,
    source: Option<Arc<DataSource>>,
    /// `X-Timezone` read once; an unreadable header fails only requests that filter.
    filter_context: Result<FilterContext>,
    /// The operators the source runs, which `filterByTk` needs even when the time zone
    /// is unreadable.
    operators: Arc<OperatorSupport>,
    association: Option<AssociationScope>,
}

/// Which target rows an association request may see.
enum Scoped {
    /// All of them (`/api/posts/_/tags`, or no association at all).
    Unscoped,
    /// None: the source does not exist or links to nothing.
    Nothing,
    /// Those matching this filter.
    Only(Box<Filter>),
}

impl ActionRequest {
    /// The request of `ctx`, with any condition through a relation to another data
    /// source in its filter rewritten into a local `$in` on keys read there
    /// ([`crate::filter::remote`]), so every action reads a filter of local conditions.
    async fn of(ctx: &Context) -> Result<Self> {
        let mut t = Self::read(ctx)?;
        let resolved = match (t.rows_source(), t.params.get("filter")) {
            (Some(source), Some(filter))
                if !t.collection().remote_associations.is_empty() && filter.is_object() =>
            {
                let context = t.filter_context.clone()?;
                let roles = crate::acl::current_roles(ctx);
                let remote = crate::filter::remote::RemoteFilters {
                    collection: t.collection(),
                    source,
                    context: &context,
                    roles: &roles,
                    max_keys: source.settings().max_relation_filter_keys,
                };
                Some(remote.resolve(filter).await?)
            }
            _ => None,
        };
        if let Some(filter) = resolved {
            t.params.set("filter", filter);
        }
        Ok(t)
    }

    fn read(ctx: &Context) -> Result<Self> {
        let association = ctx.action()?.association.clone();
        // The rows are filtered where they live: with their source's operators.
        let target_source = association.as_ref().and_then(|a| a.target_source.as_ref());
        let operators = match target_source {
            Some(peer) => peer.operators().clone(),
            None => ctx.operators(),
        };
        let filter_context = ctx.filter_context().map(|c| FilterContext {
            operators: operators.clone(),
            ..c
        });
        Ok(Self {
            repository: ctx.current_repository()?,
            params: ctx.action()?.params.clone(),
            source: ctx.data_source.clone(),
            filter_context,
            operators,
            association,
        })
    }

    /// The source the rows read live in: the request's own, or for an association
    /// request through a relation to another source, that source.
    fn rows_source(&self) -> Option<&Arc<DataSource>> {
        self.association
            .as_ref()
            .and_then(|a| a.target_source.as_ref())
            .or(self.source.as_ref())
    }

    /// Refuses `*OrCreate` through an association (NocoBase gives it no meaning there).
    fn direct_only(&self) -> Result<()> {
        match &self.association {
            Some(scope) => Err(Error::bad_request(format!(
                "firstOrCreate and updateOrCreate work on collections, not through association {}.{}; use create",
                scope.source.name(),
                scope.association.name
            ))),
            None => Ok(()),
        }
    }

    /// The rows the association request may see, reading the source row or the junction
    /// when the path's key is not enough.
    async fn scoped(&self) -> Result<Scoped> {
        let Some(scope) = &self.association else {
            return Ok(Scoped::Unscoped);
        };
        if scope.source_id == "_" {
            return Ok(Scoped::Unscoped);
        }
        let a = &scope.association;
        let target = self.collection();
        let own_column = match a.kind {
            AssociationKind::BelongsTo => &a.foreign_key,
            _ => &a.source_key,
        };
        let Some(own) = source_value(scope, own_column).await? else {
            return Ok(Scoped::Nothing);
        };
        let condition = |column: &str, predicate: Predicate| -> Result<Filter> {
            let field = target.require_field(column, "association")?;
            Ok(Filter::Condition(Condition {
                field: FieldRef::new(field),
                predicate,
            }))
        };
        let coerce = |column: &str, v: &Json| -> Result<Value> {
            let field = target.require_field(column, "association")?;
            Value::coerce(field.field_type, v, "association key")
        };
        Ok(match a.kind {
            AssociationKind::HasMany | AssociationKind::HasOne => Scoped::Only(Box::new(
                condition(&a.foreign_key, Predicate::Eq(coerce(&a.foreign_key, &own)?))?,
            )),
            AssociationKind::BelongsTo => Scoped::Only(Box::new(condition(
                &a.target_key,
                Predicate::Eq(coerce(&a.target_key, &own)?),
            )?)),
            AssociationKind::BelongsToMany => {
                let (Some(through), Some(other)) = (&scope.through, &a.other_key) else {
                    return Ok(Scoped::Nothing);
                };
                let junction = through.collection();
                let fk = junction.require_field(&a.foreign_key, "association")?;
                let options = FindOptions {
                    filter: Some(Filter::Condition(Condition {
                        field: FieldRef::new(fk),
                        predicate: Predicate::Eq(Value::coerce(
                            fk.field_type,
                            &own,
                            "association key",
                        )?),
                    })),
                    fields: Some(vec![FieldRef::new(
                        junction.require_field(other, "association")?,
                    )]),
                    ..FindOptions::default()
                };
                let keys = through
                    .find(&options)
                    .await?
                    .iter()
                    .filter_map(|r| r.get(other).cloned())
                    .map(|k| coerce(&a.target_key, &k))
                    .collect::<Result<Vec<_>>>()?;
                if keys.is_empty() {
                    Scoped::Nothing
                } else {
                    Scoped::Only(Box::new(condition(&a.target_key, Predicate::In(keys))?))
                }
            }
        })
    }

    fn collection(&self) -> &Collection {
        self.repository.collection()
    }

    /// Where filter and sort paths find the collections associations point at.
    fn lookup(&self) -> &dyn CollectionLookup {
        match self.rows_source() {
            Some(source) => source.as_ref(),
            None => &NoCollections,
        }
    }

    /// `filter` alone.
    fn request_filter(&self) -> Result<Option<Filter>> {
        let filter = self.params.get("filter").unwrap_or(&Json::Null);
        if filter.is_null() {
            return Ok(None);
        }
        parse_filter_across(
            self.collection(),
            filter,
            &self.filter_context.clone()?,
            self.lookup(),
        )
    }

    /// `filter` AND `filterByTk`.
    fn filter(&self) -> Result<Option<Filter>> {
        let from_filter = self.request_filter()?;
        let from_key = match self.params.get("filterByTk") {
            Some(Json::String(s)) if s.is_empty() => None,
            Some(tk) => key_filter_for(self.collection(), tk, &self.operators)?,
            None => None,
        };
        Ok(filter::and(from_filter, from_key))
    }

    /// The root query's projection and order, and the appends to embed after it.
    fn read_shape(&self) -> Result<(FindOptions, Option<Shape>)> {
        let fields = match self.params.get("fields") {
            // `fields=` (empty) asks for nothing in particular: every attribute.
            Some(Json::String(s)) if s.is_empty() => None,
            _ => self.params.list("fields")?,
        };
        let except = self.params.list("except")?.unwrap_or_default();
        let appends = self.params.list("appends")?.unwrap_or_default();
        let most = self
            .source
            .as_ref()
            .map_or(4, |s| s.settings().max_append_depth);
        if let Some(deep) = appends.iter().find(|a| a.split('.').count() > most) {
            return Err(Error::bad_request(format!(
                "appends: {deep} goes through more than {most} relations (the limit, \
                 MANIFOLD_MAX_APPEND_DEPTH)"
            )));
        }
        let source = match self.rows_source() {
            Some(source)
                if !appends.is_empty()
                    || names_relation(self.collection(), &fields)
                    || has_dot(&Some(except.clone())) =>
            {
                source
            }
            _ => {
                return Ok((
                    FindOptions::from_params_across(
                        self.collection(),
                        &self.params,
                        self.lookup(),
                    )?,
                    None,
                ));
            }
        };
        let (shape, root_fields, root_except) = appends::shape(
            source,
            self.repository.collection(),
            fields,
            except,
            appends,
        )?;
        let mut options = FindOptions::with_projection(
            self.collection(),
            root_fields.as_deref(),
            &root_except,
            &self.params,
            self.lookup(),
        )?;
        options.room = shape.room();
        Ok((options, (!shape.is_empty()).then_some(shape)))
    }

    fn write_filter(&self) -> Result<WriteFilter> {
        Ok(WriteFilter {
            whitelist: self.params.list("whitelist")?,
            blacklist: self.params.list("blacklist")?.unwrap_or_default(),
        })
    }

    /// The request's `values` checked for a `kind` write, within its whitelist/blacklist.
    fn write_values(&self, kind: WriteKind) -> Result<WriteValues> {
        WriteValues::from_json(
            self.collection(),
            self.values(),
            kind,
            &self.write_filter()?,
            "values",
        )
    }

    /// Refuses writes to views, which the database would refuse less clearly.
    fn writable(&self) -> Result<()> {
        if self.collection().is_view {
            return Err(Error::bad_request(format!(
                "collection {} is a view and cannot be written",
                self.collection().name()
            )));
        }
        Ok(())
    }

    fn values(&self) -> &Json {
        self.params.get("values").unwrap_or(&Json::Null)
    }
}

/// The value of `column` in the association's source row: the path's key itself when
/// `column` is the source's primary key, else read from the source row (`None` when the
/// row does not exist or the value is NULL).
async fn source_value(scope: &AssociationScope, column: &str) -> Result<Option<Json>> {
    let source = &scope.source;
    let key = source.single_key().ok_or_else(|| {
        Error::bad_request(format!(
            "collection {} has no single primary key to address a source row by",
            source.name()
        ))
    })?;
    if key.name == column {
        return Ok(Some(Json::String(scope.source_id.clone())));
    }
    let field = source.require_field(column, "association")?;
    let options = FindOptions {
        filter: key_filter(source, &Json::String(scope.source_id.clone()))?,
        fields: Some(vec![FieldRef::new(field)]),
        limit: Some(1),
        ..FindOptions::default()
    };
    let row = scope
        .source_repository
        .find(&options)
        .await?
        .into_iter()
        .next();
    Ok(row
        .and_then(|mut r| r.remove(column))
        .filter(|v| !v.is_null()))
}

/// A condition no row satisfies (`key IN ()`), for a scope that admits nothing.
fn nothing(collection: &Collection) -> Result<Condition> {
    let field = collection
        .primary_key()
        .next()
        .or_else(|| collection.fields().first())
        .ok_or_else(|| Error::internal("a collection without fields"))?;
    Ok(Condition {
        field: FieldRef::new(field),
        predicate: Predicate::In(Vec::new()),
    })
}

/// Whether any item names something inside an association (`tags.name`).
fn has_dot(items: &Option<Vec<String>>) -> bool {
    items.iter().flatten().any(|i| i.contains('.'))
}

/// Whether `fields` reaches into a relation: `author.name`, or `author` alone (the whole
/// related record, filters.md §6).
fn names_relation(collection: &Collection, fields: &Option<Vec<String>>) -> bool {
    has_dot(fields)
        || fields
            .iter()
            .flatten()
            .any(|f| collection.relation(f).is_some())
}

/// Embeds the appends of `shape` into `rows`.
async fn embed(shape: &Option<Shape>, rows: &mut [Record]) -> Result<()> {
    match shape {
        Some(shape) => shape.load(rows).await,
        None => Ok(()),
    }
}

fn records(rows: Vec<Record>) -> Json {
    Json::Array(rows.into_iter().map(Json::Object).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_valid_filter_cases() {
        for invalid in [
            json!(null),
            json!({}),
            json!({"$and": []}),
            json!({"$or": []}),
            json!({"$and": [{}]}),
            json!({"$or": [{}]}),
            json!({"$and": [{"$or": []}]}),
            json!({"$or": [{"$and": []}]}),
            json!({"$and": [{}], "$or": [{"$and": [], "$or": []}]}),
        ] {
            assert!(!has_condition(&invalid), "{invalid}");
        }
        for valid in [
            json!({"$and": [{"name": {"$eq": "test"}}]}),
            json!({"$or": [{"name": {"$eq": "test"}}]}),
            json!({"$and": [{"$or": [{"name": {"$eq": "test"}}]}]}),
            json!({"$or": [{"$and": [{"name": {"$eq": "test"}}]}]}),
            json!({"$and": [], "$or": [{"name": "test"}]}),
        ] {
            assert!(has_condition(&valid), "{valid}");
        }
    }
}
