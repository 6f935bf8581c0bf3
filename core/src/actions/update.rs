//! `update`: the matched records, or one with its associations.

use super::*;

/// `update` with association values, in one unit of work. Nested objects naming existing
/// targets only link them unless `updateAssociationValues` lists the association.
async fn update_nested(t: &ActionRequest) -> Result<Json> {
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
        let t = ActionRequest::of(ctx).await?;
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
