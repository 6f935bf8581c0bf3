//! `swagger:get` and `swagger:getUrls`: an OpenAPI 3.0 document of every data source, as
//! NocoBase's `plugin-api-doc` serves for its main source only. `X-Data-Source` (or
//! `?dataSource=`) picks the source; `?ns=` the part (see [`document::Namespace`]). The
//! document is built per request from the schema in memory, so it follows
//! `collections:create`, a refresh or a declared relation at once, and it shows the
//! caller only what the caller's roles may use.

mod document;
mod schemas;

use std::sync::Arc;

use manifold_core::acl::current_roles;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, DataSource, DataSourceManager, Error, Result};
use serde_json::{Value as Json, json};

pub use document::Namespace;

use crate::app::API_PREFIX;

/// The resource's name, as NocoBase's.
pub const RESOURCE: &str = "swagger";

/// The built-in plugin that gives every source the `swagger` resource.
pub struct OpenApiPlugin;

#[async_trait::async_trait]
impl crate::Plugin for OpenApiPlugin {
    fn name(&self) -> &str {
        "openapi"
    }

    async fn load(&self, app: &mut crate::PluginContext<'_>) -> Result<()> {
        define(app.data_sources());
        Ok(())
    }
}

/// Defines `swagger` on every source `manager` adds, main included.
fn define(manager: &Arc<DataSourceManager>) {
    manager.declare_read_action("getUrls");
    let weak = Arc::downgrade(manager);
    manager.after_add_data_source(Arc::new(move |source: &Arc<DataSource>| {
        let mut resource = ResourceDefinition::new(RESOURCE)
            .action("get", Arc::new(Get(weak.clone())))
            .action("getUrls", Arc::new(GetUrls(weak.clone())));
        resource.only = vec!["get".into(), "getUrls".into()];
        source.resource_manager().define(resource);
    }));
}

/// The source a document is asked of: `?dataSource=<key>`, else the request's.
fn described(
    ctx: &Context,
    manager: &std::sync::Weak<DataSourceManager>,
) -> Result<Arc<DataSource>> {
    let asked = text_param(ctx, "dataSource")?.filter(|k| !k.is_empty());
    match asked {
        Some(key) => manager
            .upgrade()
            .ok_or_else(|| Error::unavailable("the server is stopping"))?
            .route(key),
        None => ctx
            .data_source
            .clone()
            .ok_or_else(|| Error::internal("no data source on the request")),
    }
}

/// The query parameter `name`, trimmed; one that is not text (`ns[]=a`) is a 400.
fn text_param<'a>(ctx: &'a Context, name: &str) -> Result<Option<&'a str>> {
    match ctx.action()?.params.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(text)) => Ok(Some(text.trim())),
        Some(other) => Err(Error::bad_request(format!(
            "{name}: expected text, got {other}"
        ))),
    }
}

struct Get(std::sync::Weak<DataSourceManager>);

#[async_trait::async_trait]
impl Middleware for Get {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let source = described(ctx, &self.0)?;
        let ns = Namespace::parse(text_param(ctx, "ns")?)?;
        let roles = current_roles(ctx);
        let acl = source.acl();
        let core = source
            .resource_manager()
            .resources()
            .into_iter()
            .map(|(resource, actions)| {
                let allowed = actions
                    .into_iter()
                    .filter(|action| {
                        acl.allowed_by_rule(ctx, &resource, action)
                            || acl.permission(&roles, &resource, action).is_some()
                    })
                    .collect::<Vec<_>>();
                (resource, allowed)
            })
            .filter(|(_, actions)| !actions.is_empty())
            .collect();
        let manager = self
            .0
            .upgrade()
            .ok_or_else(|| Error::unavailable("the server is stopping"))?;
        let describe = document::Describe {
            key: source.key(),
            reads: &manager,
            collections: source.collections(),
            acl,
            roles,
            prefix: API_PREFIX,
            is_main: source.key() == "main",
            core,
        };
        let document = describe.document(&ns)?;
        let body = serde_json::to_value(&document)
            .map_err(|e| Error::internal(format!("the OpenAPI document: {e}")))?;
        ctx.body = Some(body);
        ctx.without_data_wrapping = true;
        next.run(ctx).await
    }
}

struct GetUrls(std::sync::Weak<DataSourceManager>);

#[async_trait::async_trait]
impl Middleware for GetUrls {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let source = described(ctx, &self.0)?;
        let key = source.key();
        let url = |ns: Option<&str>| {
            let mut url = format!("{API_PREFIX}/{RESOURCE}:get");
            let mut query = Vec::new();
            if let Some(ns) = ns {
                query.push(format!("ns={}", encode(ns)));
            }
            if key != "main" {
                query.push(format!("dataSource={}", encode(key)));
            }
            if !query.is_empty() {
                url.push('?');
                url.push_str(&query.join("&"));
            }
            url
        };
        let roles = current_roles(ctx);
        let mut urls = vec![json!({ "name": format!("Manifold API - {key}"), "url": url(None) })];
        urls.push(
            json!({ "name": format!("Manifold API - {key} core"), "url": url(Some("core")) }),
        );
        urls.push(json!({ "name": format!("Manifold API - {key} collections"), "url": url(Some("collections")) }));
        let mut names: Vec<String> = source
            .collections()
            .iter()
            .map(|c| c.name().to_owned())
            .filter(|name| {
                ["list", "get"]
                    .iter()
                    .any(|a| source.acl().permission(&roles, name, a).is_some())
            })
            .collect();
        names.sort();
        for name in names {
            urls.push(json!({
                "name": format!("Collection API - {name}"),
                "url": url(Some(&format!("collections/{name}"))),
            }));
        }
        ctx.body = Some(Json::Array(urls));
        next.run(ctx).await
    }
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
