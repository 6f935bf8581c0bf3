//! `firstOrCreate` and `updateOrCreate`: look up by `filterKeys`, and create what is not
//! there, under a lock so that two callers never both create.

use super::*;

/// The lookup filter of `*OrCreate`: each `filterKeys` key equals its value in `values`
/// (or is NULL when `values` lacks it), within the request's `filter`, where the ACL puts
/// the caller's scope (so the lookup never answers a record outside it).
fn lookup_filter(t: &ActionRequest) -> Result<Filter> {
    let keys = filter_keys(t)?;
    let values = t.values().as_object().cloned().unwrap_or_default();
    let mut lookup = Map::new();
    for key in keys {
        let value = values.get(&key).cloned().unwrap_or(Json::Null);
        lookup.insert(key, value);
    }
    let lookup = parse_filter_in_context(
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
fn filter_keys(t: &ActionRequest) -> Result<Vec<String>> {
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
fn lock_key(t: &ActionRequest) -> Result<String> {
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

async fn create_one(t: &ActionRequest, repository: &Arc<dyn Repository>) -> Result<Json> {
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
    t: &ActionRequest,
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
async fn find_or_create(t: &ActionRequest, on_found: OnFound) -> Result<Json> {
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
    t: &ActionRequest,
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
        let t = ActionRequest::of(ctx).await?;
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
        let t = ActionRequest::of(ctx).await?;
        t.writable()?;
        t.direct_only()?;
        ctx.body = Some(find_or_create(&t, OnFound::Update).await?);
        next.run(ctx).await
    }
}
