//! The plugin's actions: `history` on every collection, and the `auditLog` resource.

use std::time::Duration;

use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, Error, Result};
use manifold_server::cache::CacheNamespace;
use serde_json::{Value as Json, json};

use crate::AuditLog;

/// `<collection>:history?filterByTk=1`: the trail of one record, oldest first.
pub struct History {
    log: AuditLog,
}

impl History {
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

#[async_trait::async_trait]
impl Middleware for History {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let action = ctx.action()?;
        let key = match action.params.get("filterByTk") {
            Some(Json::String(s)) => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            _ => {
                let resource = action.resource_name.clone();
                return Err(Error::bad_request(format!(
                    "{resource}:history needs filterByTk, the key of one record"
                ))
                .with_message_id("audit-history-needs-key", vec![("resource", resource)]));
            }
        };
        let source = ctx
            .data_source
            .as_ref()
            .map(|s| s.key().to_owned())
            .unwrap_or_else(|| "main".to_owned());
        let rows = self
            .log
            .history(&source, &action.resource_name, &key)
            .await?;
        ctx.body = Some(Json::Array(rows.into_iter().map(Json::Object).collect()));
        next.run(ctx).await
    }
}

/// `auditLog:list`: the newest 100 rows, newest first.
pub struct List {
    log: AuditLog,
}

impl List {
    pub fn new(log: AuditLog) -> Self {
        Self { log }
    }
}

#[async_trait::async_trait]
impl Middleware for List {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let rows = self.log.recent(100).await?;
        ctx.body = Some(Json::Array(rows.into_iter().map(Json::Object).collect()));
        next.run(ctx).await
    }
}

/// `auditLog:stats`: how many rows the trail holds, counted at most every ten seconds
/// (the count is kept in the shared cache, so replicas share it too).
pub struct Stats {
    log: AuditLog,
    cache: CacheNamespace,
}

impl Stats {
    pub fn new(log: AuditLog, cache: CacheNamespace) -> Self {
        Self { log, cache }
    }
}

/// How long a count is served from the cache.
const STATS_TTL: Duration = Duration::from_secs(10);

#[async_trait::async_trait]
impl Middleware for Stats {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let rows: u64 = self
            .cache
            .get_or_insert_with("rows", Some(STATS_TTL), || self.log.count())
            .await?;
        ctx.body = Some(json!({ "rows": rows }));
        next.run(ctx).await
    }
}
