use std::sync::Arc;

use serde_json::{Map, Value as Json};
use tracing::Instrument;
use tracing::field::Empty;

use super::manager::DataSourceManager;
use crate::context::{Action, Context};
use crate::error::{Error, Result};
use crate::middleware::{Middleware, Next};
use crate::raw_rows::RawRows;
use crate::request::{parse_query, parse_resource_path};

/// The app-level node (tag `dataSource`) that picks the data source from `X-Data-Source`,
/// resolves `/api/<resource>:<action>`, builds the action's params and runs the source's
/// chain. Its `next` becomes the tail of the action, so app middleware registered after the
/// router runs inside the action's `next`.
pub struct DataSourceRouter {
    manager: Arc<DataSourceManager>,
    prefix: String,
}

impl DataSourceRouter {
    /// A router over `manager` for paths under `prefix` (`/api`).
    pub fn new(manager: Arc<DataSourceManager>, prefix: impl Into<String>) -> Self {
        Self {
            manager,
            prefix: prefix.into(),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for DataSourceRouter {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let span = tracing::info_span!(
            target: "manifold::middleware",
            "manifold.data_source",
            manifold.data_source = Empty,
        );
        self.route(ctx, next).instrument(span).await
    }
}

impl DataSourceRouter {
    async fn route(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let key = match ctx.request.header("x-data-source").map(str::trim) {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => "main".to_owned(),
        };
        let source = self.manager.route(&key)?;
        ctx.data_source = Some(source.clone());
        tracing::Span::current().record("manifold.data_source", key.as_str());

        let path = parse_resource_path(&self.prefix, &ctx.request.path)
            .map_err(|e| Error::bad_request(e.to_string()))?;
        let Some(path) = path else {
            return next.run(ctx).await;
        };
        let Some(action_name) = path.action_for(&ctx.request.method) else {
            ctx.not_found_reason = Some(
                Error::not_found(format!(
                    "{} {} names no action",
                    ctx.request.method, ctx.request.path
                ))
                .with_message_id(
                    "route-no-action",
                    vec![
                        ("method", ctx.request.method.clone()),
                        ("path", ctx.request.path.clone()),
                    ],
                ),
            );
            return next.run(ctx).await;
        };
        // `posts/1/comments`: the rows are the association's target, read through it.
        let mut scope = None;
        let collection = match (&path.associated_name, &path.associated_index) {
            (Some(source_name), Some(source_id)) => match source.collection(source_name) {
                Some((owner, owner_repo)) => {
                    match association_target(
                        &source,
                        owner,
                        owner_repo,
                        &path.bare_resource_name,
                        source_id,
                        &action_name,
                    )? {
                        Some((target, association_scope)) => {
                            scope = Some(association_scope);
                            Some(target)
                        }
                        None => None,
                    }
                }
                None => None,
            },
            _ => source.collection(&path.resource_name),
        };
        let mut resolved = match source.resource_manager().resolve(
            &path.resource_name,
            &action_name,
            collection.is_some(),
        ) {
            Ok(r) => r,
            Err(why) => {
                ctx.not_found_reason = Some(unresolved(&why, &key));
                return next.run(ctx).await;
            }
        };

        let mut params = crate::params::Params::from_map(resolved.defaults);
        let mut incoming =
            parse_query(&ctx.request.query).map_err(|e| Error::bad_request(e.to_string()))?;
        if let Some(Json::String(raw)) = incoming.get("filter") {
            // serde_json stops at 128 levels: that is JSON too deep, not malformed JSON.
            let too_deep = serde_json::from_str::<Json>(raw)
                .is_err_and(|e| e.to_string().contains("recursion limit"));
            if too_deep {
                return Err(Error::bad_request(
                    "Invalid filter: nested too deeply (at most 128 levels of objects and lists)",
                ));
            }
            return Err(Error::bad_request(format!(
                "Invalid filter: not a JSON object: {}",
                abbreviate(raw)
            )));
        }
        let query_key_empty = matches!(incoming.get("filterByTk"), None | Some(Json::Null))
            || incoming.get("filterByTk").and_then(Json::as_str) == Some("");
        if let Some(index) = &path.resource_index
            && query_key_empty
        {
            incoming.insert("filterByTk".into(), Json::String(index.clone()));
        }
        incoming.insert(
            "resourceName".into(),
            Json::String(path.bare_resource_name.clone()),
        );
        incoming.insert("actionName".into(), Json::String(action_name.clone()));
        if let Some(index) = &path.resource_index {
            incoming.insert("resourceIndex".into(), Json::String(index.clone()));
        }
        if let Some(name) = &path.associated_name {
            incoming.insert("associatedName".into(), Json::String(name.clone()));
        }
        if let Some(index) = &path.associated_index {
            incoming.insert("associatedIndex".into(), Json::String(index.clone()));
        }
        match raw_rows(ctx) {
            // A long array stays text until something reads it (crate::raw_rows).
            Some(rows) => {
                params.merge(incoming);
                params.set_raw_values(rows);
            }
            None => {
                incoming.insert("values".into(), parse_body(ctx)?);
                params.merge(incoming);
            }
        }

        ctx.route = Some(route_of(&self.prefix, &path, &action_name));
        let resource_span = tracing::info_span!(
            target: "manifold::middleware",
            "manifold.resource",
            manifold.data_source = key.as_str(),
            manifold.resource = path.resource_name.as_str(),
            manifold.action = action_name.as_str(),
        );
        // Wrapping the handler costs allocations, so only when someone records spans.
        if !resource_span.is_disabled()
            && let Some(handler) = resolved.layers.pop()
        {
            resolved.layers.push(Arc::new(ActionSpan {
                handler,
                data_source: key.clone(),
                resource: path.resource_name.clone(),
                action: action_name.clone(),
            }));
        }

        let (collection, repository) = match collection {
            Some((c, r)) => (Some(c), Some(r)),
            None => (None, None),
        };
        ctx.action = Some(Action {
            resource_name: path.resource_name.clone(),
            action_name,
            params,
            source_id: path.associated_index.clone(),
            collection,
            repository,
            association: scope,
        });
        // The action and everything after it share one deadline, so a source that stopped
        // answering costs its own requests a 504 and nobody else anything.
        let deadline = source.settings().request_timeout;
        let chain = Next::with_tail(&resolved.layers, next)
            .run(ctx)
            .instrument(resource_span);
        match tokio::time::timeout(deadline, chain).await {
            Ok(done) => done,
            Err(_) => Err(Error::new(
                crate::error::ErrorKind::Timeout,
                format!(
                    "data source {key} did not answer within {} s",
                    deadline.as_secs_f32()
                ),
            )),
        }
    }
}

/// The handler, run inside the `manifold.action` span (opened when the handler starts, so
/// its parent is the innermost middleware span and its duration the handler's own).
struct ActionSpan {
    handler: Arc<dyn Middleware>,
    data_source: String,
    resource: String,
    action: String,
}

#[async_trait::async_trait]
impl Middleware for ActionSpan {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let span = tracing::info_span!(
            target: "manifold::middleware",
            "manifold.action",
            otel.name = format!("{}:{}", self.resource, self.action),
            manifold.data_source = self.data_source.as_str(),
            manifold.resource = self.resource.as_str(),
            manifold.action = self.action.as_str(),
        );
        self.handler.handle(ctx, next).instrument(span).await
    }
}

/// The path as a template: the names it resolved to, each record key replaced by the
/// parameter it becomes (`{filterByTk}`, `{associatedIndex}`), so the set of routes is as
/// small as the set of resources and actions.
fn route_of(prefix: &str, path: &crate::request::ResourcePath, action: &str) -> String {
    let mut route = String::with_capacity(64);
    route.push_str(prefix);
    route.push('/');
    if let Some(associated) = &path.associated_name {
        route.push_str(associated);
        route.push_str("/{associatedIndex}/");
    }
    route.push_str(&path.bare_resource_name);
    if path.action_name.is_some() {
        route.push(':');
        route.push_str(action);
    }
    if path.resource_index.is_some() {
        route.push_str("/{filterByTk}");
    }
    route
}

/// A JSON array body of more than [`crate::raw_rows::RAW_ROWS_ABOVE`] elements, taken out
/// of the request as [`RawRows`] (so its text is not held twice); any other body stays.
fn raw_rows(ctx: &mut Context) -> Option<RawRows> {
    let body = &ctx.request.body;
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return None;
    }
    match RawRows::split(std::mem::take(&mut ctx.request.body)) {
        Ok(rows) => Some(rows),
        Err(body) => {
            ctx.request.body = body;
            None
        }
    }
}

/// The body becomes `values`: a JSON object or array, a urlencoded form, or `{}`.
///
/// `curl -d '{…}'` labels JSON as a form; a form body that starts like JSON is read as JSON
/// so those values are not silently lost.
fn parse_body(ctx: &Context) -> Result<Json> {
    let body = &ctx.request.body;
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(Json::Object(Map::new()));
    };
    let content_type = ctx.request.header("content-type").unwrap_or("");
    let looks_like_json = matches!(first, b'{' | b'[');
    if content_type.starts_with("application/x-www-form-urlencoded") && !looks_like_json {
        let text = std::str::from_utf8(body)
            .map_err(|_| Error::bad_request("form body is not valid UTF-8"))?;
        return parse_query(text)
            .map(Json::Object)
            .map_err(|e| Error::bad_request(e.to_string()));
    }
    if !(content_type.is_empty() || content_type.contains("json") || looks_like_json) {
        return Ok(Json::Object(Map::new()));
    }
    match serde_json::from_slice::<Json>(body) {
        Ok(v @ (Json::Object(_) | Json::Array(_))) => Ok(v),
        Ok(_) => Err(Error::bad_request(
            "invalid JSON, only supports object and array",
        )),
        Err(e) => Err(Error::bad_request(format!("Invalid JSON body: {e}"))),
    }
}

fn abbreviate(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

/// The 404 of a request that names no resource or action of source `key` (named unless
/// it is `main`).
fn unresolved(why: &crate::resource::Unresolved, key: &str) -> Error {
    use crate::resource::Unresolved;
    let on_main = key == "main";
    let message = if on_main {
        why.to_string()
    } else {
        format!("{why} in data source {key}")
    };
    let (id, mut args) = match (why, on_main) {
        (Unresolved::NoResource(resource), true) => {
            ("route-no-resource", vec![("resource", resource.clone())])
        }
        (Unresolved::NoResource(resource), false) => (
            "route-no-resource-in-source",
            vec![("resource", resource.clone())],
        ),
        (Unresolved::NoAction { resource, action }, main) => (
            if main {
                "route-no-action-of-resource"
            } else {
                "route-no-action-of-resource-in-source"
            },
            vec![("resource", resource.clone()), ("action", action.clone())],
        ),
    };
    args.push(("key", key.to_owned()));
    Error::not_found(message).with_message_id(id, args)
}

/// The target collection and scope of `owner`'s relation `name` for a request on the
/// record `source_id`: `None` when there is no such relation (the request then finds no
/// resource), an error when the relation leads to a source that cannot answer or to an
/// action it cannot run there.
fn association_target(
    source: &super::DataSource,
    owner: Arc<crate::schema::Collection>,
    owner_repository: Arc<dyn crate::repository::Repository>,
    name: &str,
    source_id: &str,
    action: &str,
) -> Result<Option<(CollectionEntry, crate::context::AssociationScope)>> {
    let Some(association) = owner.relation(name).cloned() else {
        return Ok(None);
    };
    let (target, target_source) = match &association.target_source {
        None => match source.collection(&association.target) {
            Some(target) => (target, None),
            None => return Ok(None),
        },
        Some(key) => {
            let at = format!("{}.{name}", owner.name());
            // The reads, and pointing a belongsTo's own foreign key: a write to the other
            // source cannot share a transaction with this one, so it is made there.
            let allowed = match action {
                "get" | "list" | "count" => true,
                "set" | "remove" => association.kind == crate::schema::AssociationKind::BelongsTo,
                _ => false,
            };
            if !allowed {
                return Err(Error::bad_request(format!(
                    "{at} leads to data source {key}: through it Manifold reads (get, list) \
                     and sets a belongsTo's key; send {action} to data source {key} directly"
                )));
            }
            let peer = source.peer(key).map_err(|e| e.context(&at))?;
            let target = peer.collection(&association.target).ok_or_else(|| {
                Error::not_found(format!(
                    "{at}: collection {} does not exist in data source {key}",
                    association.target
                ))
            })?;
            (target, Some(peer))
        }
    };
    // A belongsToMany's junction: with the target when declared so, else here.
    let junction_source = match (&association.through_source, &target_source) {
        (Some(_), Some(peer)) => peer.as_ref(),
        _ => source,
    };
    let through = match &association.through {
        Some(junction) => match junction_source.collection(junction) {
            Some((_, repository)) => Some(repository),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(Some((
        target,
        crate::context::AssociationScope {
            association,
            source: owner,
            source_repository: owner_repository,
            through,
            source_id: source_id.to_owned(),
            target_source,
        },
    )))
}

/// A collection with its repository, as a source hands them out.
type CollectionEntry = (
    Arc<crate::schema::Collection>,
    Arc<dyn crate::repository::Repository>,
);

#[cfg(test)]
mod tests {
    use super::route_of;
    use crate::request::parse_resource_path;

    fn route(raw: &str, method: &str) -> String {
        let path = parse_resource_path("/api", raw)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{raw} parses"));
        let action = path.action_for(method).unwrap_or_default();
        route_of("/api", &path, &action)
    }

    #[test]
    fn routes_keep_names_and_replace_record_keys() {
        assert_eq!(route("/api/posts:list", "GET"), "/api/posts:list");
        assert_eq!(route("/api/posts/17", "GET"), "/api/posts/{filterByTk}");
        assert_eq!(
            route("/api/posts:get/17", "GET"),
            "/api/posts:get/{filterByTk}"
        );
        assert_eq!(
            route("/api/posts/9/tags:add", "POST"),
            "/api/posts/{associatedIndex}/tags:add"
        );
        assert_eq!(
            route("/api/posts/9/tags/3", "DELETE"),
            "/api/posts/{associatedIndex}/tags/{filterByTk}"
        );
    }
}
