//! The `collections` resource of the main data source: create, list, read and drop tables.

use std::sync::Arc;

use manifold_core::connector::CollectionDefinition;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, DataSource, Error, Result};
use serde_json::Value as Json;

/// Defines `collections:list|get|create|destroy` on `source`.
pub fn define(source: &DataSource) {
    let mut resource = ResourceDefinition::new("collections")
        .action("list", Arc::new(List))
        .action("get", Arc::new(Get))
        .action("create", Arc::new(Create))
        .action("destroy", Arc::new(Destroy));
    resource.only = vec![
        "list".into(),
        "get".into(),
        "create".into(),
        "destroy".into(),
    ];
    source.resource_manager().define(resource);
}

fn source(ctx: &Context) -> Result<Arc<DataSource>> {
    ctx.data_source
        .clone()
        .ok_or_else(|| Error::internal("no data source on the request"))
}

fn name_param(ctx: &Context) -> Result<String> {
    let action = ctx.action()?;
    match action.params.get("filterByTk") {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::bad_request(format!(
            "filterByTk: name the collection, e.g. /api/collections:{}/posts",
            action.action_name
        ))),
    }
}

struct List;

#[async_trait::async_trait]
impl Middleware for List {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let collections = source(ctx)?.collections();
        ctx.body_meta = Some(serde_json::json!({ "count": collections.len() }));
        ctx.body = Some(Json::Array(
            collections.iter().map(|c| c.to_json()).collect(),
        ));
        next.run(ctx).await
    }
}

struct Get;

#[async_trait::async_trait]
impl Middleware for Get {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let name = name_param(ctx)?;
        ctx.body = Some(
            source(ctx)?
                .collection(&name)
                .map(|(c, _)| c.to_json())
                .unwrap_or(Json::Null),
        );
        next.run(ctx).await
    }
}

struct Create;

#[async_trait::async_trait]
impl Middleware for Create {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let values = ctx
            .action()?
            .params
            .get("values")
            .cloned()
            .unwrap_or(Json::Null);
        let definition = CollectionDefinition::from_json(&values)?;
        let collection = source(ctx)?.define_collection(&definition).await?;
        ctx.body = Some(collection.to_json());
        next.run(ctx).await
    }
}

struct Destroy;

#[async_trait::async_trait]
impl Middleware for Destroy {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let name = name_param(ctx)?;
        source(ctx)?.drop_collection(&name).await?;
        ctx.body = Some(Json::from(1));
        next.run(ctx).await
    }
}
