//! An app middleware: every answer to a write says where its trail can be read.

use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, Result};

/// Adds `X-Audit-Trail: /api/auditLog:list` to the answers of `POST` requests.
pub struct TrailHeader;

#[async_trait::async_trait]
impl Middleware for TrailHeader {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let write = ctx.request.method.eq_ignore_ascii_case("POST");
        next.run(ctx).await?;
        if write {
            ctx.response_headers
                .push(("x-audit-trail".into(), "/api/auditLog:list".into()));
        }
        Ok(())
    }
}
