//! `list`: a page of records, every record (`paginate=false`, streamed past a batch), or a
//! simple page.

use super::*;

/// `list`: a page of records with `meta {count, page, pageSize, totalPage}`, or
/// `{page, pageSize, hasNext}` in simple pagination, or every record with `paginate=false`.
pub struct List;

#[async_trait::async_trait]
impl Middleware for List {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = ActionRequest::of(ctx).await?;
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
    t: &ActionRequest,
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
