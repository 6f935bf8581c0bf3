//! The recipes of docs/architecture.md ("Recipe: add an action", "Recipe: add a
//! middleware"), as the page shows them, installed on a real app and asked what the page
//! says they answer. The page's listings are excerpts of this file
//! (`server/tests/docs_listings.rs` checks it).

use std::sync::Arc;

use manifold_core::filter::parse_filter_in_context;
use manifold_core::middleware::{Middleware, Next};
use manifold_core::{Context, DataSource, DataSourceManager, Result};
use serde_json::{Value as Json, json};

/// `count`: how many records match `filter`.
struct Count;

#[async_trait::async_trait]
impl Middleware for Count {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let repository = ctx.current_repository()?;
        let raw = ctx
            .action()?
            .params
            .get("filter")
            .cloned()
            .unwrap_or(Json::Null);
        // The request's time zone and the operators its source runs apply, as they do
        // to the built-in actions.
        let filter =
            parse_filter_in_context(repository.collection(), &raw, &ctx.filter_context()?)?;
        let n = repository.count(filter.as_ref()).await?;
        ctx.body = Some(json!(n));
        next.run(ctx).await
    }
}

fn install_count(manager: &DataSourceManager) {
    manager.after_add_data_source(Arc::new(|source: &Arc<DataSource>| {
        source
            .resource_manager()
            .register_action_handler("count", Arc::new(Count));
    }));
}

use manifold_core::resource::{ActionDefinition, ResourceDefinition};

struct Ping;

#[async_trait::async_trait]
impl Middleware for Ping {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        ctx.body = Some(json!({ "pong": true }));
        next.run(ctx).await
    }
}

fn install_resources(main: &DataSource) {
    main.resource_manager()
        .define(ResourceDefinition::new("status").action("ping", Arc::new(Ping)));

    // `posts:recent`: the built-in `list` with default params.
    let mut recent = ActionDefinition::new(Arc::new(manifold_core::actions::List));
    recent.defaults = json!({ "sort": ["-id"], "pageSize": 2 })
        .as_object()
        .cloned()
        .unwrap_or_default();
    main.resource_manager()
        .define(ResourceDefinition::new("posts").action_definition("recent", recent));
}

use manifold_server::App;

use manifold_core::acl::Role;
use manifold_core::middleware::{Placement, from_fn};
use manifold_core::resource::ScopedMiddleware;

fn install_middleware(app: &App) -> Result<(), manifold_core::middleware::MiddlewareError> {
    // Level 1: every request, outside the error handler.
    app.use_middleware(
        from_fn(|ctx, next| {
            Box::pin(async move {
                let started = std::time::Instant::now();
                let result = next.run(ctx).await;
                eprintln!(
                    "{} {} took {:?}",
                    ctx.request.method,
                    ctx.request.path,
                    started.elapsed()
                );
                result
            })
        }),
        Placement::tag("timing").before("errorHandler"),
    )?;

    // Level 2: every data source, present and future.
    app.data_sources().use_middleware(
        from_fn(|ctx, next| {
            Box::pin(async move {
                ctx.state.insert("seenByLevel2".into(), Json::Bool(true));
                next.run(ctx).await
            })
        }),
        Placement::default(),
    )?;

    let main = app
        .data_sources()
        .get("main")
        .expect("main is added at start");

    // Level 3: one source's resource manager, after the permission check.
    main.resource_manager().use_middleware(
        from_fn(|ctx, next| {
            Box::pin(async move {
                let action = ctx.action()?;
                eprintln!("{}:{}", action.resource_name, action.action_name);
                next.run(ctx).await
            })
        }),
        Placement::tag("audit").after("acl"),
    )?;

    // Level 4: inside the ACL, before the permission check.
    let acl = main.acl();
    acl.clear_allow_rules();
    acl.define_role(Role {
        name: "reader".into(),
        strategy: vec!["view".into()],
        ..Role::default()
    });
    acl.use_middleware(
        from_fn(|ctx, next| {
            Box::pin(async move {
                if let Some(role) = ctx.request.header("x-role").map(str::to_owned) {
                    ctx.state.insert("currentRole".into(), Json::String(role));
                }
                next.run(ctx).await
            })
        }),
        Placement::default().before("core"),
    )?;

    // Resource and action level: part of a resource definition.
    main.resource_manager().define(
        ResourceDefinition::new("status")
            .action("ping", Arc::new(Ping))
            .middleware(ScopedMiddleware {
                middleware: from_fn(|ctx, next| Box::pin(async move { next.run(ctx).await })),
                only: vec!["ping".into()],
                except: Vec::new(),
            }),
    );
    Ok(())
}

/// `posts` holding `a` (5), `b` (2) and `c` (9), as the recipes' examples assume.
async fn posts() -> manifold_tests::TestApp {
    let t = manifold_tests::TestApp::new().await;
    t.collection(json!({"name": "posts", "fields": [
        {"name": "title", "type": "string"},
        {"name": "score", "type": "integer"},
    ]}))
    .await;
    t.insert(
        "posts",
        json!([
            {"title": "a", "score": 5},
            {"title": "b", "score": 2},
            {"title": "c", "score": 9},
        ]),
    )
    .await;
    t
}

#[tokio::test]
async fn the_action_recipes_answer_as_the_page_shows() {
    let t = posts().await;
    install_count(t.app.data_sources());
    install_resources(&t.app.data_sources().get("main").expect("main"));

    let count = t
        .post_empty("/api/posts:count?filter=%7B%22score%22%3A%7B%22%24gt%22%3A3%7D%7D")
        .await;
    assert_eq!(count.body, json!({"data": 2}), "{count:?}");
    let bad = t
        .post_empty("/api/posts:count?filter=%7B%22score%22%3A%7B%22%24gt%22%3A%22abc%22%7D%7D")
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.error().starts_with("filter.score.$gt: "), "{bad:?}");
    let ping = t.post_empty("/api/status:ping").await;
    assert_eq!(ping.body, json!({"data": {"pong": true}}), "{ping:?}");
    let recent = t.post_empty("/api/posts:recent?fields=id,title").await;
    assert_eq!(
        recent.body,
        json!({"data": [{"id": 3, "title": "c"}, {"id": 2, "title": "b"}],
               "meta": {"count": 3, "page": 1, "pageSize": 2, "totalPage": 2}}),
    );
    let by_title = t
        .post_empty("/api/posts:recent?fields=id,title&sort=title&pageSize=3")
        .await;
    assert_eq!(
        by_title.body,
        json!({"data": [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}, {"id": 3, "title": "c"}],
               "meta": {"count": 3, "page": 1, "pageSize": 3, "totalPage": 1}}),
    );
}

#[tokio::test]
async fn the_middleware_recipe_installs_at_every_level() {
    let t = posts().await;
    install_middleware(&t.app).expect("every placement is accepted");
    // The level-4 example clears the public rule; the service's root still reads, and
    // the resource-level middleware lets `status:ping` through to its handler.
    let list = t.get("/api/posts:list?fields=id&pageSize=1").await;
    assert_eq!(
        list.body,
        json!({"data": [{"id": 1}], "meta": {"count": 3, "page": 1, "pageSize": 1, "totalPage": 3}}),
    );
    let ping = t.post_empty("/api/status:ping").await;
    assert_eq!(ping.body, json!({"data": {"pong": true}}), "{ping:?}");
}
