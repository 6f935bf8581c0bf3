//! The built-in actions every collection answers: `list`, `get`, `create`, `update`,
//! `destroy`, `firstOrCreate`, `updateOrCreate`; and the guard that refuses an `update` or
//! `destroy` aimed at no particular rows.
//!
//! Handlers are middleware: each sets `ctx.body` and then runs `next`, so app middleware
//! registered after the router still runs around the response.

mod association;
mod nested;

use std::sync::Arc;

use futures_util::StreamExt as _;
use serde_json::{Map, Value as Json, json};

use crate::appends::{self, Shape};
use crate::context::AssociationScope;
use crate::context::Context;
use crate::data_source::DataSource;
use crate::error::{Error, Result};
use crate::filter::{
    self, CollectionLookup, Condition, FieldRef, Filter, FilterContext, NoCollections, Predicate,
    key_filter, parse_filter_in, parse_filter_with,
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
                )));
            }
            let has_filter = params.get("filter").is_some_and(has_condition);
            let has_key = params
                .get("filterByTk")
                .is_some_and(|v| !v.is_null() && v != "" && v != &json!([]));
            let forced = name == "update" && params.flag("forceUpdate");
            if !has_filter && !has_key && !forced {
                return Err(Error::bad_request(format!(
                    "to do {name} action, filter or filterByTk is required"
                )));
            }
        }
        next.run(ctx).await
    }
}

/// The collection, repository, params and source of the current request.
struct Target {
    repository: Arc<dyn Repository>,
    params: Params,
    source: Option<Arc<DataSource>>,
    /// `X-Timezone` read once; an unreadable header fails only requests that filter.
    filter_context: Result<FilterContext>,
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

impl Target {
    fn of(ctx: &Context) -> Result<Self> {
        Ok(Self {
            repository: ctx.current_repository()?,
            params: ctx.action()?.params.clone(),
            source: ctx.data_source.clone(),
            filter_context: ctx.filter_context(),
            association: ctx.action()?.association.clone(),
        })
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
        match &self.source {
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
        parse_filter_with(
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
            Some(tk) => key_filter(self.collection(), tk)?,
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
        let source = match &self.source {
            Some(source)
                if !appends.is_empty()
                    || names_relation(self.collection(), &fields)
                    || has_dot(&Some(except.clone())) =>
            {
                source
            }
            _ => {
                return Ok((
                    FindOptions::from_params_with(self.collection(), &self.params, self.lookup())?,
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
        let options = FindOptions::with_projection(
            self.collection(),
            root_fields.as_deref(),
            &root_except,
            &self.params,
            self.lookup(),
        )?;
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
            .any(|f| collection.association(f).is_some())
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

/// `list`: a page of records with `meta {count, page, pageSize, totalPage}`, or
/// `{page, pageSize, hasNext}` in simple pagination, or every record with `paginate=false`.
pub struct List;

#[async_trait::async_trait]
impl Middleware for List {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        let (mut options, shape) = t.read_shape()?;
        options.filter = t.request_filter()?;
        let to_one = t
            .association
            .as_ref()
            .is_some_and(|s| s.association.kind.is_to_one() && s.source_id != "_");
        match t.scoped().await? {
            Scoped::Unscoped => {}
            Scoped::Only(scope) => {
                options.filter = filter::and(Some(*scope), options.filter.take())
            }
            Scoped::Nothing if to_one => {
                ctx.body = Some(Json::Null);
                return next.run(ctx).await;
            }
            Scoped::Nothing => {
                options.filter = Some(Filter::Condition(nothing(t.collection())?));
            }
        }
        // A to-one association holds one record: `list` answers like `get`.
        if to_one {
            options.limit = Some(1);
            let mut rows = t.repository.find(&options).await?;
            embed(&shape, &mut rows).await?;
            ctx.body = Some(rows.pop().map(Json::Object).unwrap_or(Json::Null));
            return next.run(ctx).await;
        }
        if t.params.is_false("paginate") {
            match every_row(ctx, &t, &options, shape).await? {
                Answer::Held(rows) => ctx.body = Some(records(rows)),
                Answer::Streamed(array) => ctx.streamed = Some(array),
            }
            return next.run(ctx).await;
        }
        let settings = t
            .source
            .as_ref()
            .map(|s| s.settings().clone())
            .unwrap_or_default();
        let page = page_number(&t.params)?;
        let page_size = t
            .params
            .positive_integer("pageSize")?
            .unwrap_or(settings.default_page_size);
        if page_size > settings.max_page_size {
            return Err(Error::bad_request(format!(
                "pageSize {page_size} is larger than the maximum of {}; use page to walk further",
                settings.max_page_size
            )));
        }
        // OFFSET must fit the databases' signed 64-bit integers.
        let offset = (page - 1)
            .checked_mul(page_size)
            .filter(|o| *o <= i64::MAX as u64)
            .ok_or_else(|| {
                Error::bad_request(format!("page {page} is beyond the end of any collection"))
            })?;
        options.offset = Some(offset);
        let simple = t.params.flag("simplePaginate") || t.collection().options.simple_paginate;
        let meta;
        if simple {
            options.limit = Some(page_size + 1);
            let mut rows = t.repository.find(&options).await?;
            let has_next = rows.len() as u64 > page_size;
            rows.truncate(page_size as usize);
            embed(&shape, &mut rows).await?;
            ctx.body = Some(records(rows));
            meta = json!({ "page": page, "pageSize": page_size, "hasNext": has_next });
        } else {
            options.limit = Some(page_size);
            // One connection at a time: running the two reads side by side would make every
            // list hold two pooled connections, so a busy pool starves sooner.
            let count = t.repository.count(options.filter.as_ref()).await?;
            let mut rows = if count > offset {
                t.repository.find(&options).await?
            } else {
                Vec::new()
            };
            embed(&shape, &mut rows).await?;
            ctx.body = Some(records(rows));
            meta = json!({
                "count": count,
                "page": page,
                "pageSize": page_size,
                "totalPage": count.div_ceil(page_size),
            });
        }
        ctx.body_meta = Some(meta);
        next.run(ctx).await
    }
}

/// The records of a `list` without pagination.
enum Answer {
    /// At most two batches: held, as any other answer, so middleware can read them.
    Held(Vec<Record>),
    /// More: written as they are read.
    Streamed(StreamedArray),
}

/// Every row `options` selects, read [`BATCH_ROWS`] at a time. An answer of more than
/// two batches is streamed: each batch is embedded and written as JSON before the next is
/// read, so memory holds a batch or two rather than the table. It must be read within the
/// source's request timeout, which also bounds how long a slow reader holds the
/// connection the rows come from.
async fn every_row(
    ctx: &Context,
    t: &Target,
    options: &FindOptions,
    shape: Option<Shape>,
) -> Result<Answer> {
    let started = tokio::time::Instant::now();
    // Fused: the second batch is asked for even when the first ended the stream.
    let mut batches = t.repository.find_batches(options, BATCH_ROWS).await?.fuse();
    let mut held = batches.next().await.transpose()?.unwrap_or_default();
    let second = batches.next().await.transpose()?;
    // `X-With-ACL-Meta` lists the ids of the answered rows, so it needs them all.
    let acl_meta = ctx
        .request
        .header("x-with-acl-meta")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let Some(second) = second else {
        embed(&shape, &mut held).await?;
        return Ok(Answer::Held(held));
    };
    if acl_meta {
        held.extend(second);
        while let Some(batch) = batches.next().await.transpose()? {
            held.extend(batch);
        }
        embed(&shape, &mut held).await?;
        return Ok(Answer::Held(held));
    }
    let shape = Arc::new(shape);
    let chunks = futures_util::stream::iter([Ok(held), Ok(second)])
        .chain(batches)
        .then(move |batch| {
            let shape = shape.clone();
            async move {
                let mut rows = batch?;
                embed(&shape, &mut rows).await?;
                crate::streamed::records_chunk(rows)
            }
        })
        .boxed();
    let (key, timeout) = match &t.source {
        Some(source) => (source.key().to_owned(), source.settings().request_timeout),
        None => (
            String::new(),
            crate::data_source::DataSourceSettings::default().request_timeout,
        ),
    };
    Ok(Answer::Streamed(StreamedArray::new(chunks).until(
        started + timeout,
        format!(
            "data source {key} did not finish the answer within {} s",
            timeout.as_secs_f32()
        ),
    )))
}

/// `page`: 1-based; zero or negative means 1, anything not a number is a 400.
fn page_number(params: &Params) -> Result<u64> {
    let raw = match params.get("page") {
        None | Some(Json::Null) => return Ok(1),
        Some(Json::String(s)) if s.trim().is_empty() => return Ok(1),
        Some(v) => v,
    };
    let parsed = match raw {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed
        .map(|p| p.max(1) as u64)
        .ok_or_else(|| Error::bad_request(format!("page: expected an integer, got {raw}")))
}

/// `get`: the first record matching `filterByTk` and `filter`, or `null`.
pub struct Get;

#[async_trait::async_trait]
impl Middleware for Get {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        let (mut options, shape) = t.read_shape()?;
        options.filter = t.filter()?;
        // On a to-one association the path's index names nothing: there is one target.
        if t.association
            .as_ref()
            .is_some_and(|s| s.association.kind.is_to_one())
        {
            options.filter = t.request_filter()?;
        }
        match t.scoped().await? {
            Scoped::Unscoped => {}
            Scoped::Only(scope) => {
                options.filter = filter::and(Some(*scope), options.filter.take())
            }
            Scoped::Nothing => {
                ctx.body = Some(Json::Null);
                return next.run(ctx).await;
            }
        }
        options.limit = Some(1);
        let mut rows = t.repository.find(&options).await?;
        rows.truncate(1);
        embed(&shape, &mut rows).await?;
        ctx.body = Some(rows.pop().map(Json::Object).unwrap_or(Json::Null));
        next.run(ctx).await
    }
}

/// `create`: inserts `values` (an object, or an array in one transaction).
pub struct Create;

#[async_trait::async_trait]
impl Middleware for Create {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        t.writable()?;
        if t.association.is_some() {
            ctx.body = Some(association::create(&t, t.values()).await?);
            return next.run(ctx).await;
        }
        let allowed = t.write_filter()?;
        if let Some(rows) = t.params.raw_values()
            && let Some(text) = create_in_batches(&t, rows, &allowed).await?
        {
            ctx.streamed = Some(StreamedArray::whole(text));
            return next.run(ctx).await;
        }
        if nested::has_nested(t.collection(), t.values()) {
            ctx.body = Some(create_nested(&t, &allowed).await?);
            return next.run(ctx).await;
        }
        let (rows, many) = match t.values() {
            Json::Array(items) => (
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        WriteValues::from_json(
                            t.collection(),
                            v,
                            WriteKind::Create,
                            &allowed,
                            &format!("values.{i}"),
                        )
                    })
                    .collect::<Result<Vec<_>>>()?,
                true,
            ),
            v => (
                vec![WriteValues::from_json(
                    t.collection(),
                    v,
                    WriteKind::Create,
                    &allowed,
                    "values",
                )?],
                false,
            ),
        };
        let mut created = t.repository.create(&rows).await?;
        ctx.body = Some(if many {
            records(created)
        } else {
            created.pop().map(Json::Object).unwrap_or(Json::Null)
        });
        next.run(ctx).await
    }
}

/// `create` with an array longer than a batch, still as text ([`RawRows`]): each batch of
/// [`BATCH_ROWS`] rows is converted and inserted before the next is read, all in one unit
/// of work, so a bad row anywhere leaves the table as it was. Rows with association values
/// are written as `create` writes them alone. Returns the created records as JSON array
/// elements, or `None` where the source has no units of work (the caller then writes the
/// whole array as before).
async fn create_in_batches(
    t: &Target,
    rows: &RawRows,
    allowed: &WriteFilter,
) -> Result<Option<Vec<u8>>> {
    let source = association::unit_source(t)?;
    let unit = match source.begin().await {
        Ok(unit) => unit,
        Err(e) if e.kind() == crate::error::ErrorKind::BadRequest => return Ok(None),
        Err(e) => return Err(e),
    };
    let collection = t.repository.collection().clone();
    let repository = unit.repository(collection.name())?;
    let writer = nested::NestedWriter::new(&unit, source);
    let policy = nested::UpdatePolicy::all();
    let mut out = Vec::with_capacity(rows.text_len() + rows.text_len() / 2);
    let mut batch = Batch {
        rows: Vec::with_capacity(BATCH_ROWS),
        first: 0,
    };
    for i in 0..rows.len() {
        let at = format!("values.{i}");
        let item = rows.row(i, &at)?;
        if nested::has_nested(&collection, &item) {
            batch.insert(&repository, &mut out).await?;
            let record = writer
                .create(collection.clone(), &item, allowed, &policy, &at)
                .await?;
            separate(&mut out);
            crate::streamed::append_record(&mut out, record)?;
            continue;
        }
        if batch.rows.is_empty() {
            batch.first = i;
        }
        batch.rows.push(WriteValues::from_json(
            &collection,
            &item,
            WriteKind::Create,
            allowed,
            &at,
        )?);
        if batch.rows.len() == BATCH_ROWS {
            batch.insert(&repository, &mut out).await?;
        }
    }
    batch.insert(&repository, &mut out).await?;
    unit.commit().await?;
    Ok(Some(out))
}

/// Rows of a bulk `create` waiting to be inserted together.
struct Batch {
    rows: Vec<WriteValues>,
    /// The index in `values` of the first.
    first: usize,
}

impl Batch {
    /// Inserts the rows and appends what was created to `out`; a refusal names the rows.
    async fn insert(&mut self, repository: &Arc<dyn Repository>, out: &mut Vec<u8>) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let last = self.first + self.rows.len() - 1;
        let created = repository
            .create(&self.rows)
            .await
            .map_err(|e| e.context(format!("values.{}-{last}", self.first)))?;
        self.rows.clear();
        for record in created {
            separate(out);
            crate::streamed::append_record(out, record)?;
        }
        Ok(())
    }
}

/// A comma before the next array element, unless it is the first.
fn separate(out: &mut Vec<u8>) {
    if !out.is_empty() {
        out.push(b',');
    }
}

/// `create` with association values: the rows and everything they name, in one unit of
/// work.
async fn create_nested(t: &Target, allowed: &WriteFilter) -> Result<Json> {
    let source = association::unit_source(t)?;
    let unit = source.begin().await?;
    let writer = nested::NestedWriter::new(&unit, source);
    let collection = t.repository.collection().clone();
    let policy = nested::UpdatePolicy::all();
    let body = match t.values() {
        Json::Array(items) => {
            let mut rows = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                rows.push(
                    writer
                        .create(
                            collection.clone(),
                            item,
                            allowed,
                            &policy,
                            &format!("values.{i}"),
                        )
                        .await?,
                );
            }
            records(rows)
        }
        one => Json::Object(
            writer
                .create(collection, one, allowed, &policy, "values")
                .await?,
        ),
    };
    unit.commit().await?;
    Ok(body)
}

/// `update` with association values, in one unit of work. Nested objects naming existing
/// targets only link them unless `updateAssociationValues` lists the association.
async fn update_nested(t: &Target) -> Result<Json> {
    let source = association::unit_source(t)?;
    let filter = t.filter()?;
    let policy = nested::UpdatePolicy::only(
        t.params
            .list("updateAssociationValues")?
            .unwrap_or_default(),
    );
    let unit = source.begin().await?;
    let writer = nested::NestedWriter::new(&unit, source);
    let updated = writer
        .update(
            t.repository.collection().clone(),
            filter.as_ref(),
            t.values(),
            &t.write_filter()?,
            &policy,
        )
        .await?;
    unit.commit().await?;
    Ok(records(updated))
}

/// `update`: writes `values` to every record matching `filterByTk` and `filter`; returns
/// them as an array.
pub struct Update;

#[async_trait::async_trait]
impl Middleware for Update {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        t.writable()?;
        if t.association.is_some() {
            ctx.body = Some(association::update(&t, t.values()).await?);
            return next.run(ctx).await;
        }
        if nested::has_nested(t.collection(), t.values()) {
            ctx.body = Some(update_nested(&t).await?);
            return next.run(ctx).await;
        }
        let values = t.write_values(WriteKind::Update)?;
        let filter = t.filter()?;
        let updated = t.repository.update(filter.as_ref(), &values).await?;
        ctx.body = Some(records(updated));
        next.run(ctx).await
    }
}

/// `destroy`: deletes every record matching `filterByTk` and `filter`; returns the count.
pub struct Destroy;

#[async_trait::async_trait]
impl Middleware for Destroy {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        t.writable()?;
        if t.association.is_some() {
            ctx.body = Some(association::destroy(&t).await?);
            return next.run(ctx).await;
        }
        let filter = t.filter()?;
        let links = t
            .source
            .as_deref()
            .map(|s| association::junction_links(s, t.collection()))
            .unwrap_or_default();
        let deleted = if links.is_empty() {
            t.repository
                .destroy(filter.as_ref())
                .await
                .map_err(association::still_referenced)?
        } else {
            // belongsToMany links of the deleted rows go in the same unit: a junction row
            // pointing at nothing would still list the old target, and a restricting
            // foreign key on the junction would refuse the delete.
            let unit = association::unit_source(&t)?.begin().await?;
            let by_key =
                association::unlink_junctions(&unit, t.collection(), &links, filter.as_ref())
                    .await?;
            let deleted = unit
                .repository(t.collection().name())?
                .destroy(by_key.as_ref())
                .await
                .map_err(association::still_referenced)?;
            // A deferred foreign key is only checked here.
            unit.commit().await.map_err(association::still_referenced)?;
            deleted
        };
        ctx.body = Some(Json::from(deleted));
        next.run(ctx).await
    }
}

/// The lookup filter of `*OrCreate`: each `filterKeys` key equals its value in `values`
/// (or is NULL when `values` lacks it), within the request's `filter`, where the ACL puts
/// the caller's scope (so the lookup never answers a record outside it).
fn lookup_filter(t: &Target) -> Result<Filter> {
    let keys = filter_keys(t)?;
    let values = t.values().as_object().cloned().unwrap_or_default();
    let mut lookup = Map::new();
    for key in keys {
        let value = values.get(&key).cloned().unwrap_or(Json::Null);
        lookup.insert(key, value);
    }
    let lookup = parse_filter_in(
        t.collection(),
        &Json::Object(lookup),
        &t.filter_context.clone()?,
    )?
    .ok_or_else(|| Error::bad_request("filterKeys: no usable key"))?;
    Ok(match t.request_filter()? {
        Some(scope) => Filter::And(vec![lookup, scope]),
        None => lookup,
    })
}

/// `filterKeys`, each checked to be a field.
fn filter_keys(t: &Target) -> Result<Vec<String>> {
    let keys = t.params.list("filterKeys")?.unwrap_or_default();
    if keys.is_empty() {
        return Err(Error::bad_request(
            "filterKeys is required: name the fields that identify an existing record, e.g. filterKeys[]=title",
        ));
    }
    for key in &keys {
        t.collection().require_field(key, "filterKeys")?;
    }
    Ok(keys)
}

/// What `*OrCreate` locks: the table, and each `filterKeys` field with its value from
/// `values` as the lookup compares it. Text is lower-cased, so values that a
/// case-insensitive collation holds equal share a key (elsewhere they merely queue
/// together).
fn lock_key(t: &Target) -> Result<String> {
    use std::fmt::Write as _;
    let mut keys = filter_keys(t)?;
    keys.sort();
    keys.dedup();
    let table = t.collection().table();
    let mut key = format!(
        "{}.{}",
        table.schema.as_deref().unwrap_or_default(),
        table.name
    );
    for name in keys {
        let field = t.collection().require_field(&name, "filterKeys")?;
        let raw = t.values().get(&name).unwrap_or(&Json::Null);
        let canonical = match Value::coerce(field.field_type, raw, "filterKeys") {
            Ok(value) => value.to_json(),
            // Not a single value (a list, say): the lookup reports it, if it must.
            Err(_) => raw.clone(),
        };
        let canonical = match canonical {
            Json::String(text) => Json::String(text.to_lowercase()),
            other => other,
        };
        let _ = write!(key, "\u{1f}{}={canonical}", field.name);
    }
    Ok(key)
}

async fn find_first(repository: &Arc<dyn Repository>, filter: &Filter) -> Result<Option<Record>> {
    let mut options = FindOptions::from_params(repository.collection(), &Params::default())?;
    options.filter = Some(filter.clone());
    options.limit = Some(1);
    Ok(repository.find(&options).await?.into_iter().next())
}

async fn create_one(t: &Target, repository: &Arc<dyn Repository>) -> Result<Json> {
    let row = t.write_values(WriteKind::Create)?;
    let mut created = repository.create(&[row]).await?;
    Ok(created.pop().map(Json::Object).unwrap_or(Json::Null))
}

/// What `*OrCreate` does with the record its lookup found.
#[derive(Debug, Clone, Copy)]
enum OnFound {
    /// `firstOrCreate`: answers it unchanged.
    Answer,
    /// `updateOrCreate`: writes `values` to it (by its primary key) and answers the result.
    Update,
}

async fn found(
    t: &Target,
    repository: &Arc<dyn Repository>,
    row: Record,
    on_found: OnFound,
) -> Result<Json> {
    if let OnFound::Answer = on_found {
        return Ok(Json::Object(row));
    }
    let key = t.collection().single_key().ok_or_else(|| {
        Error::bad_request(format!(
            "updateOrCreate needs a single primary key; collection {} has none",
            t.collection().name()
        ))
    })?;
    let tk = row.get(&key.name).cloned().unwrap_or(Json::Null);
    let values = t.write_values(WriteKind::Update)?;
    let by_key = key_filter(t.collection(), &tk)?;
    let mut updated = repository.update(by_key.as_ref(), &values).await?;
    Ok(updated.pop().map(Json::Object).unwrap_or(Json::Object(row)))
}

/// `firstOrCreate` and `updateOrCreate`: the record the lookup finds, else a new one.
///
/// Most calls find the record and take no lock. A call that misses queues behind this
/// process's other calls on the same values ([`DataSource::key_locks`]), looks again, then
/// looks and inserts in one unit of work that holds the database's lock on those values
/// ([`DataSource::begin_locked`]), so no other process can insert in between. Where the
/// database has no such lock, only a unique constraint stops a second insert across
/// processes: an insert it refuses means another writer got there first, so that writer's
/// record is read and answered (updated, for `updateOrCreate`) instead.
async fn find_or_create(t: &Target, on_found: OnFound) -> Result<Json> {
    let lookup = lookup_filter(t)?;
    if let Some(row) = find_first(&t.repository, &lookup).await? {
        return found(t, &t.repository, row, on_found).await;
    }
    let source = t.source.as_deref();
    let key = lock_key(t)?;
    let _queued = match source {
        Some(source) => Some(source.key_locks().lock(key.clone()).await),
        None => None,
    };
    let attempt = match find_first(&t.repository, &lookup).await? {
        Some(row) => return found(t, &t.repository, row, on_found).await,
        None => match source {
            Some(source) => locked_find_or_create(t, source, &key, &lookup, on_found).await,
            None => create_one(t, &t.repository).await,
        },
    };
    match attempt {
        Err(e) if e.code() == Some(crate::error::UNIQUE_VIOLATION) => {
            match find_first(&t.repository, &lookup).await? {
                Some(row) => found(t, &t.repository, row, on_found).await,
                // The constraint is on other fields, or the record is outside the scope.
                None => Err(e),
            }
        }
        other => other,
    }
}

/// The lookup and the insert (or update) in one unit of work holding the database's lock
/// on `key`; a plain insert where the database has no such lock.
async fn locked_find_or_create(
    t: &Target,
    source: &DataSource,
    key: &str,
    lookup: &Filter,
    on_found: OnFound,
) -> Result<Json> {
    let Some(unit) = source.begin_locked(key).await? else {
        return create_one(t, &t.repository).await;
    };
    let repository = unit.repository(t.collection().name())?;
    let answer = match find_first(&repository, lookup).await? {
        Some(row) => found(t, &repository, row, on_found).await?,
        None => create_one(t, &repository).await?,
    };
    unit.commit().await?;
    Ok(answer)
}

/// `firstOrCreate`: the first record matching `filterKeys`, else a new one from `values`.
pub struct FirstOrCreate;

#[async_trait::async_trait]
impl Middleware for FirstOrCreate {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        t.writable()?;
        t.direct_only()?;
        ctx.body = Some(find_or_create(&t, OnFound::Answer).await?);
        next.run(ctx).await
    }
}

/// `updateOrCreate`: updates the first record matching `filterKeys` with `values`, else
/// creates one; answers the single record either way.
pub struct UpdateOrCreate;

#[async_trait::async_trait]
impl Middleware for UpdateOrCreate {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = Target::of(ctx)?;
        t.writable()?;
        t.direct_only()?;
        ctx.body = Some(find_or_create(&t, OnFound::Update).await?);
        next.run(ctx).await
    }
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
