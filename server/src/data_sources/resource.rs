//! `dataSources:*`, `dataSources/<key>/collections:*` and
//! `dataSourcesCollections/<key>.<collection>/fields:*`, all on the main data source.

use std::future::Future;
use std::sync::Arc;

use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, DataSource, Error, Params, Result};
use serde_json::{Value as Json, json};

use super::registry::Registry;
use crate::changes::{Change, kinds};

/// What an action answers: the body and, for lists, the meta.
type Answer = (Json, Option<Json>);

/// Adapts an async function of the registry and the params into an action handler.
struct Action<F> {
    registry: Arc<Registry>,
    run: F,
}

#[async_trait::async_trait]
impl<F, Fut> Middleware for Action<F>
where
    F: Fn(Arc<Registry>, Params) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Answer>> + Send,
{
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let params = ctx.action()?.params.clone();
        let (body, meta) = (self.run)(self.registry.clone(), params).await?;
        ctx.body = Some(body);
        ctx.body_meta = meta;
        next.run(ctx).await
    }
}

fn action<F, Fut>(registry: &Arc<Registry>, run: F) -> Arc<dyn Middleware>
where
    F: Fn(Arc<Registry>, Params) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Answer>> + Send + 'static,
{
    Arc::new(Action {
        registry: registry.clone(),
        run,
    })
}

fn values(params: &Params) -> Json {
    params.get("values").cloned().unwrap_or_else(|| json!({}))
}

fn required(params: &Params, key: &str, example: &str) -> Result<String> {
    match params.get(key) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Error::bad_request(format!(
            "{key}: required, e.g. {example}"
        ))),
    }
}

fn key_param(params: &Params) -> Result<String> {
    required(params, "filterByTk", "/api/dataSources:get/erp")
}

/// A page of `items` with NocoBase's list meta.
fn page(params: &Params, items: Vec<Json>) -> Result<Answer> {
    if params.is_false("paginate") {
        return Ok((Json::Array(items), None));
    }
    let page = params.positive_integer("page")?.unwrap_or(1);
    let page_size = params.positive_integer("pageSize")?.unwrap_or(20);
    if page_size > 1000 {
        return Err(Error::bad_request(format!(
            "pageSize {page_size} is larger than the maximum of 1000"
        )));
    }
    let count = items.len() as u64;
    let start = ((page - 1) * page_size).min(count) as usize;
    let rows: Vec<Json> = items
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .collect();
    Ok((
        Json::Array(rows),
        Some(json!({
            "count": count,
            "page": page,
            "pageSize": page_size,
            "totalPage": count.div_ceil(page_size),
        })),
    ))
}

/// The loaded source behind `key`, or why it cannot be read (404, or 503 while loading or
/// after a failure).
fn loaded(registry: &Registry, key: &str) -> Result<Arc<DataSource>> {
    registry.manager().route(key)
}

/// Defines every resource on `main`.
pub fn define(main: &DataSource, registry: &Arc<Registry>) {
    let rm = main.resource_manager();
    let mut data_sources = ResourceDefinition::new("dataSources")
        .action(
            "list",
            action(registry, |r, p| async move {
                let mut items = Vec::new();
                if p.get("filter").is_none() {
                    items.push(r.present_main());
                }
                let filter = p.get("filter").cloned();
                for record in r.all().await? {
                    let shown = r.present(&record);
                    if filter.as_ref().is_none_or(|f| matches_simple(&shown, f)) {
                        items.push(shown);
                    }
                }
                page(&p, items)
            }),
        )
        .action(
            "get",
            action(registry, |r, p| async move {
                let key = key_param(&p)?;
                if key == "main" {
                    return Ok((r.present_main(), None));
                }
                let Some(record) = r.get(&key).await? else {
                    return Ok((Json::Null, None));
                };
                let mut shown = r.present(&record);
                let appends = p.list("appends")?.unwrap_or_default();
                if appends.iter().any(|a| a == "collections")
                    && let Some(source) = r.manager().get(&key)
                {
                    shown["collections"] =
                        Json::Array(source.collections().iter().map(|c| c.to_json()).collect());
                }
                Ok((shown, None))
            }),
        )
        .action(
            "create",
            action(registry, |r, p| async move {
                Ok((r.create(&values(&p)).await?, None))
            }),
        )
        .action(
            "update",
            action(registry, |r, p| async move {
                let key = key_param(&p)?;
                if key == "main" {
                    return Err(Error::bad_request("data source main cannot be changed"));
                }
                let record = r.update(&key, &values(&p)).await?;
                Ok((Json::Array(vec![r.present(&record)]), None))
            }),
        )
        .action(
            "destroy",
            action(registry, |r, p| async move {
                let key = key_param(&p)?;
                if key == "main" {
                    return Err(Error::bad_request("data source main cannot be destroyed"));
                }
                Ok((json!(r.destroy(&key).await?), None))
            }),
        )
        .action(
            "testConnection",
            action(registry, |r, p| async move {
                let v = values(&p);
                let kind = v.get("type").and_then(Json::as_str).ok_or_else(|| {
                    Error::bad_request("values.type: a data source type is required")
                })?;
                let options = v.get("options").cloned().unwrap_or_else(|| json!({}));
                r.test_connection(kind, &options).await?;
                Ok((json!({ "success": true }), None))
            }),
        )
        .action(
            "refresh",
            action(registry, |r, p| async move {
                let key = key_param(&p)?;
                let status = r.refresh(&key).await?;
                Ok((json!({ "status": status.name() }), None))
            }),
        );
    data_sources.only = [
        "list",
        "get",
        "create",
        "update",
        "destroy",
        "testConnection",
        "refresh",
    ]
    .map(String::from)
    .to_vec();
    rm.define(data_sources);

    let collections = ResourceDefinition::new("dataSources.collections")
        .action(
            "list",
            action(registry, |r, p| async move {
                let key = required(
                    &p,
                    "associatedIndex",
                    "/api/dataSources/erp/collections:list",
                )?;
                let source = loaded(&r, &key)?;
                page(
                    &p,
                    source.collections().iter().map(|c| c.to_json()).collect(),
                )
            }),
        )
        .action(
            "get",
            action(registry, |r, p| async move {
                let key = required(
                    &p,
                    "associatedIndex",
                    "/api/dataSources/erp/collections:get/orders",
                )?;
                let name = key_param(&p)?;
                let source = loaded(&r, &key)?;
                Ok((
                    source
                        .collection(&name)
                        .map(|(c, _)| c.to_json())
                        .unwrap_or(Json::Null),
                    None,
                ))
            }),
        );
    let mut collections = collections.action(
        "update",
        action(registry, |r, p| async move {
            let key = required(
                &p,
                "associatedIndex",
                "/api/dataSources/erp/collections:update/orders",
            )?;
            let name = key_param(&p)?;
            let source = loaded(&r, &key)?;
            let collection = r
                .declarations()
                .update_collection(&source, &name, &values(&p))
                .await?;
            schema_changed(&r, &key, &name).await?;
            Ok((collection, None))
        }),
    );
    collections.only = vec!["list".into(), "get".into(), "update".into()];
    rm.define(collections);

    let fields = ResourceDefinition::new("dataSourcesCollections.fields");
    let fields = field_actions(fields, registry);
    let mut main_fields = ResourceDefinition::new("collections.fields");
    for (name, definition) in &fields.actions {
        if let Some(handler) = &definition.handler {
            main_fields = main_fields.action(name.clone(), Arc::new(OfMain(handler.clone())));
        }
    }
    main_fields.only = fields.only.clone();
    rm.define(fields);
    // NocoBase's clients edit main's fields as `collections/<name>/fields:*`.
    rm.define(main_fields);
}

/// An action of `collections/<name>/fields`: the same as
/// `dataSourcesCollections/main.<name>/fields`, with the same stored declarations.
struct OfMain(Arc<dyn Middleware>);

#[async_trait::async_trait]
impl Middleware for OfMain {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let params = &mut ctx.action_mut()?.params;
        if let Some(Json::String(name)) = params.get("associatedIndex").cloned() {
            params.set("associatedIndex", Json::String(format!("main.{name}")));
        }
        self.0.handle(ctx, next).await
    }
}

/// The five actions on a collection's fields.
fn field_actions(fields: ResourceDefinition, registry: &Arc<Registry>) -> ResourceDefinition {
    let fields = fields
        .action(
            "list",
            action(registry, |r, p| async move {
                let collection = collection_of(&r, &p)?;
                let mut fields: Vec<Json> =
                    collection["fields"].as_array().cloned().unwrap_or_default();
                fields.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                Ok((Json::Array(fields), None))
            }),
        )
        .action(
            "get",
            action(registry, |r, p| async move {
                let collection = collection_of(&r, &p)?;
                let name = key_param(&p)?;
                let field = collection["fields"]
                    .as_array()
                    .and_then(|fs| fs.iter().find(|f| f["name"] == json!(name)))
                    .cloned()
                    .unwrap_or(Json::Null);
                Ok((field, None))
            }),
        );
    let mut fields = fields
        .action(
            "create",
            action(registry, |r, p| async move {
                let (source, name) = source_and_collection(&r, &p)?;
                let field = r
                    .declarations()
                    .create_field(&source, &name, &values(&p))
                    .await?;
                schema_changed(&r, source.key(), &name).await?;
                Ok((field, None))
            }),
        )
        .action(
            "update",
            action(registry, |r, p| async move {
                let (source, name) = source_and_collection(&r, &p)?;
                let field = key_param(&p)?;
                let updated = r
                    .declarations()
                    .update_field(&source, &name, &field, &values(&p))
                    .await?;
                schema_changed(&r, source.key(), &name).await?;
                Ok((updated, None))
            }),
        )
        .action(
            "destroy",
            action(registry, |r, p| async move {
                let (source, name) = source_and_collection(&r, &p)?;
                let field = key_param(&p)?;
                r.declarations()
                    .destroy_field(&source, &name, &field)
                    .await?;
                schema_changed(&r, source.key(), &name).await?;
                Ok((json!("ok"), None))
            }),
        );
    fields.only = ["list", "get", "create", "update", "destroy"]
        .map(String::from)
        .to_vec();
    fields
}

/// Tells the other replicas that declarations on `collection` of source `key` changed.
async fn schema_changed(registry: &Registry, key: &str, collection: &str) -> Result<()> {
    registry.declarations_changed(key);
    registry
        .changes()
        .publish(Change::new(kinds::SCHEMA).source(key).subject(collection))
        .await
}

/// The source and collection name in a `<key>.<collection>` association index.
fn source_and_collection(
    registry: &Registry,
    params: &Params,
) -> Result<(Arc<DataSource>, String)> {
    let example = "/api/dataSourcesCollections/erp.orders/fields:list";
    let index = required(params, "associatedIndex", example)?;
    let (key, name) = index.split_once('.').ok_or_else(|| {
        Error::bad_request(format!(
            "name the collection as <key>.<collection>, e.g. {example}"
        ))
    })?;
    Ok((loaded(registry, key)?, name.to_owned()))
}

/// The collection named by `<key>.<collection>` in the association index.
fn collection_of(registry: &Registry, params: &Params) -> Result<Json> {
    let (source, name) = source_and_collection(registry, params)?;
    let key = source.key();
    let name = name.as_str();
    source
        .collection(name)
        .map(|(c, _)| c.to_json())
        .ok_or_else(|| {
            Error::not_found(format!(
                "collection {name} does not exist in data source {key}"
            ))
            .with_message_id(
                "collection-not-found",
                vec![("collection", name.to_owned()), ("key", key.to_owned())],
            )
        })
}

/// A small in-memory filter for the handful of record fields (`type`, `key`, `status`,
/// `enabled`): equality and `$ne`, as the data-source list needs.
fn matches_simple(record: &Json, filter: &Json) -> bool {
    let Some(conditions) = filter.as_object() else {
        return true;
    };
    conditions.iter().all(|(path, expected)| {
        let (field, op) = match path.split_once(".$") {
            Some((f, op)) => (f, op),
            None => (path.as_str(), "eq"),
        };
        let (op, expected) = match expected {
            Json::Object(inner) if inner.len() == 1 => {
                let (k, v) = inner
                    .iter()
                    .next()
                    .map(|(k, v)| (k.trim_start_matches('$'), v))
                    .unwrap_or(("eq", expected));
                (k, v)
            }
            _ => (op, expected),
        };
        let actual = &record[field];
        match op {
            "ne" => actual != expected,
            _ => actual == expected,
        }
    })
}
