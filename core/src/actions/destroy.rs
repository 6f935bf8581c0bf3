//! `destroy`: the matched records, with the junction rows that named them.

use super::*;

/// `destroy`: deletes every record matching `filterByTk` and `filter`; returns the count.
pub struct Destroy;

#[async_trait::async_trait]
impl Middleware for Destroy {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = ActionRequest::of(ctx).await?;
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
