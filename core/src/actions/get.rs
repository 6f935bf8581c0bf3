//! `get`: one record.

use super::*;

/// `get`: the first record matching `filterByTk` and `filter`, or `null`.
pub struct Get;

#[async_trait::async_trait]
impl Middleware for Get {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let t = ActionRequest::of(ctx).await?;
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
