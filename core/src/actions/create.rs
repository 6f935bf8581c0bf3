//! `create`: one record, many in one transaction (long bodies in batches), or records
//! with their associations.

use super::*;

/// `create`: inserts `values` (an object, or an array in one transaction).
pub struct Create;

#[async_trait::async_trait]
impl Middleware for Create {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = ActionRequest::of(ctx).await?;
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
    t: &ActionRequest,
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
async fn create_nested(t: &ActionRequest, allowed: &WriteFilter) -> Result<Json> {
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
