//! The four middleware levels and their onion order, through real HTTP requests
//! (conformance cases MW-xx of the spec).

use std::sync::{Arc, Mutex};

use manifold_core::middleware::{Middleware, MiddlewareError, Next, Placement};
use manifold_core::resource::{ActionDefinition, ResourceDefinition, ScopedMiddleware};
use manifold_core::{Context, Result};
use manifold_tests::TestApp;
use serde_json::json;

type Log = Arc<Mutex<Vec<i64>>>;

/// Pushes `before`, runs the rest, pushes `after`.
struct Push {
    log: Log,
    before: i64,
    after: i64,
}

#[async_trait::async_trait]
impl Middleware for Push {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        self.log.lock().expect("log").push(self.before);
        next.run(ctx).await?;
        self.log.lock().expect("log").push(self.after);
        Ok(())
    }
}

/// An action handler: pushes, answers `"ok"`, continues into the app chain, pushes.
struct Handler {
    log: Log,
    before: i64,
    after: i64,
}

#[async_trait::async_trait]
impl Middleware for Handler {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        self.log.lock().expect("log").push(self.before);
        ctx.body = Some(json!("ok"));
        next.run(ctx).await?;
        self.log.lock().expect("log").push(self.after);
        Ok(())
    }
}

fn push(log: &Log, before: i64, after: i64) -> Arc<dyn Middleware> {
    Arc::new(Push {
        log: log.clone(),
        before,
        after,
    })
}

fn handler(log: &Log, before: i64, after: i64) -> Arc<dyn Middleware> {
    Arc::new(Handler {
        log: log.clone(),
        before,
        after,
    })
}

fn taken(log: &Log) -> Vec<i64> {
    std::mem::take(&mut *log.lock().expect("log"))
}

#[tokio::test]
async fn mw_21_four_levels_run_in_the_documented_onion_order() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let main = t.app.data_sources().get("main").expect("main");
    t.app
        .use_middleware(push(&log, 1, 2), Placement::default())
        .expect("app.use");
    main.resource_manager()
        .use_middleware(push(&log, 3, 4), Placement::default())
        .expect("resourceManager.use");
    main.acl()
        .use_middleware(push(&log, 5, 6), Placement::default())
        .expect("acl.use");
    main.resource_manager()
        .define(ResourceDefinition::new("test").action("list", handler(&log, 7, 8)));

    let r = t.get("/api/test:list").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"data": "ok"}));
    assert_eq!(taken(&log), [5, 3, 7, 1, 2, 8, 4, 6]);

    let r = t.get("/api/hello").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "resource hello does not exist");
    assert_eq!(
        taken(&log),
        [1, 2],
        "a request naming no resource runs only app middleware"
    );
}

#[tokio::test]
async fn mw_08_09_resource_and_manager_middleware_wrap_the_action() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let rm = t.app.data_sources().get("main").expect("main");
    let rm = rm.resource_manager();
    rm.define(
        ResourceDefinition::new("test")
            .middleware(ScopedMiddleware::all(push(&log, 1, 6)))
            .middleware(ScopedMiddleware::all(push(&log, 2, 5)))
            .action("list", handler(&log, 3, 4)),
    );
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(taken(&log), [1, 2, 3, 4, 5, 6]);

    rm.use_middleware(push(&log, 7, 8), Placement::default())
        .expect("use");
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(taken(&log), [7, 1, 2, 3, 4, 5, 6, 8]);
}

#[tokio::test]
async fn mw_13_action_middleware_runs_inside_resource_middleware() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let main = t.app.data_sources().get("main").expect("main");
    let list = ActionDefinition {
        handler: Some(handler(&log, 3, 4)),
        middlewares: vec![push(&log, 1, 2), push(&log, 9, 10)],
        ..ActionDefinition::default()
    };
    main.resource_manager().define(
        ResourceDefinition::new("test")
            .middleware(ScopedMiddleware::all(push(&log, 5, 6)))
            .middleware(ScopedMiddleware::all(push(&log, 7, 8)))
            .action_definition("list", list),
    );
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(taken(&log), [5, 7, 1, 9, 3, 4, 10, 2, 8, 6]);
}

#[tokio::test]
async fn mw_11_12_resource_middleware_only_and_except() {
    for (first, second) in [
        (
            ScopedMiddleware {
                only: vec!["list".into()],
                except: vec![],
                middleware: Arc::new(NoOp),
            },
            ScopedMiddleware {
                only: vec!["create".into()],
                except: vec![],
                middleware: Arc::new(NoOp),
            },
        ),
        (
            ScopedMiddleware {
                only: vec![],
                except: vec!["create".into()],
                middleware: Arc::new(NoOp),
            },
            ScopedMiddleware {
                only: vec![],
                except: vec!["list".into()],
                middleware: Arc::new(NoOp),
            },
        ),
    ] {
        let t = TestApp::new().await;
        let log: Log = Log::default();
        let main = t.app.data_sources().get("main").expect("main");
        main.resource_manager().define(
            ResourceDefinition::new("test")
                .middleware(ScopedMiddleware {
                    middleware: push(&log, 1, 6),
                    ..first
                })
                .middleware(ScopedMiddleware {
                    middleware: push(&log, 2, 5),
                    ..second
                })
                .action("list", handler(&log, 3, 4))
                .action("create", handler(&log, 7, 8)),
        );
        assert_eq!(t.get("/api/test:list").await.status, 200);
        assert_eq!(taken(&log), [1, 3, 4, 6]);
        assert_eq!(t.post_empty("/api/test:create").await.status, 200);
        assert_eq!(taken(&log), [2, 7, 8, 5]);
    }
}

struct NoOp;

#[async_trait::async_trait]
impl Middleware for NoOp {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        next.run(ctx).await
    }
}

/// Pushes a fixed label; used for the tag/before/after ordering case.
struct Label(Arc<Mutex<Vec<&'static str>>>, &'static str);

#[async_trait::async_trait]
impl Middleware for Label {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        self.0.lock().expect("labels").push(self.1);
        if self.1 == "action" {
            ctx.body = Some(json!("ok"));
        }
        next.run(ctx).await
    }
}

#[tokio::test]
async fn mw_10_tags_before_and_after_order_resource_manager_middleware() {
    let t = TestApp::new().await;
    let labels = Arc::new(Mutex::new(Vec::new()));
    let main = t.app.data_sources().get("main").expect("main");
    let rm = main.resource_manager();
    let label = |s| Arc::new(Label(labels.clone(), s)) as Arc<dyn Middleware>;
    rm.use_middleware(label("parseVariables"), Placement::group("parseVariables"))
        .expect("P");
    rm.use_middleware(label("default"), Placement::default())
        .expect("D");
    rm.use_middleware(
        label("requestInterceptor"),
        Placement::default()
            .after("parseVariables")
            .before("default"),
    )
    .expect("I");
    rm.define(ResourceDefinition::new("test").action("list", label("action")));
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(
        *labels.lock().expect("labels"),
        ["parseVariables", "requestInterceptor", "default", "action"]
    );
}

#[tokio::test]
async fn mw_18_the_action_next_runs_app_middleware_registered_after_the_router() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let main = t.app.data_sources().get("main").expect("main");
    main.resource_manager()
        .define(ResourceDefinition::new("test").action("list", handler(&log, 5, 6)));
    t.app
        .use_middleware(push(&log, 3, 4), Placement::default())
        .expect("app.use");
    assert_eq!(t.get("/api/test").await.status, 200);
    assert_eq!(taken(&log), [5, 3, 4, 6]);
}

#[tokio::test]
async fn a_cycle_or_unknown_tag_is_refused_at_registration_and_the_chain_keeps_working() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let main = t.app.data_sources().get("main").expect("main");
    let rm = main.resource_manager();
    rm.define(ResourceDefinition::new("test").action("list", handler(&log, 0, 0)));
    rm.use_middleware(push(&log, 1, 2), Placement::tag("p"))
        .expect("p");
    rm.use_middleware(push(&log, 3, 4), Placement::tag("q").after("p"))
        .expect("q after p");

    let cycle = rm.use_middleware(push(&log, 9, 9), Placement::tag("p").after("q"));
    assert!(
        matches!(&cycle, Err(MiddlewareError::Order(_))),
        "{cycle:?}"
    );
    assert_eq!(
        cycle.map_err(|e| e.to_string()),
        Err("item added into group p created a dependencies error".into())
    );

    let unknown = rm.use_middleware(push(&log, 9, 9), Placement::default().before("nope"));
    let message = unknown.map_err(|e| e.to_string()).expect_err("unknown tag");
    assert!(
        message.starts_with("middleware refers to unknown tag \"nope\""),
        "{message}"
    );

    let app_unknown = t
        .app
        .use_middleware(push(&log, 9, 9), Placement::default().after("nope"));
    assert!(app_unknown.is_err());

    // Earlier registrations still run, and the refused ones never do.
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(taken(&log), [1, 3, 0, 0, 4, 2]);

    // Later registrations still work.
    rm.use_middleware(push(&log, 5, 6), Placement::tag("x"))
        .expect("the chain is not poisoned");
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(taken(&log), [1, 3, 5, 0, 0, 6, 4, 2]);
}

#[tokio::test]
async fn data_source_level_middleware_reaches_every_source_present_and_future() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let manager = t.app.data_sources().clone();
    manager
        .use_middleware(push(&log, 1, 2), Placement::default())
        .expect("dataSourceManager.use");
    let second = manager
        .build(
            "ds1",
            "sqlite",
            &json!({"path": t.dir.path().join("ds1.sqlite")}),
            Default::default(),
        )
        .await
        .expect("ds1");
    manager.add(second).await.expect("add");
    for key in ["main", "ds1"] {
        let source = manager.get(key).expect("source");
        source
            .resource_manager()
            .define(ResourceDefinition::new("test").action("list", handler(&log, 7, 8)));
        let r = t
            .send(
                poem::http::Method::GET,
                "/api/test:list",
                &[("x-data-source", key)],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{key}: {:?}", r.body);
        assert_eq!(taken(&log), [1, 7, 8, 2], "{key}");
    }
}

#[tokio::test]
async fn acl_middleware_placed_before_core_runs_before_the_permission_check() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let main = t.app.data_sources().get("main").expect("main");
    main.acl()
        .use_middleware(push(&log, 1, 2), Placement::default())
        .expect("after core");
    main.acl()
        .use_middleware(push(&log, 3, 4), Placement::default().before("core"))
        .expect("before core");
    main.resource_manager()
        .define(ResourceDefinition::new("test").action("list", handler(&log, 5, 6)));
    assert_eq!(t.get("/api/test:list").await.status, 200);
    assert_eq!(taken(&log), [3, 1, 5, 6, 2, 4]);

    // A caller the ACL refuses: only the middleware before the check runs, and the 403
    // unwinds through it.
    let nobody = powerless_user(&t).await;
    taken(&log);
    main.acl().clear_allow_rules();
    let r = as_user(&t, &nobody, poem::http::Method::GET, "/api/test:list").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error(), "No permissions");
    assert_eq!(taken(&log), [3]);
}

/// Signs in a new user whose only role may do nothing; its token.
async fn powerless_user(t: &TestApp) -> String {
    let r = t.post("/api/roles:create", json!({"name": "nobody"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.new_user("nobody", &["nobody"]).await
}

/// `method path` on the main source as the holder of `token`.
async fn as_user(
    t: &TestApp,
    token: &str,
    method: poem::http::Method,
    path: &str,
) -> manifold_tests::Reply {
    t.main_as(&format!("Bearer {token}"), method, path, Some(json!({})))
        .await
}

/// Sets `state.currentRole` to `role` (what an authentication middleware would do).
struct AsRole(&'static str);

#[async_trait::async_trait]
impl Middleware for AsRole {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        ctx.state.insert("currentRole".into(), json!(self.0));
        ctx.state.insert("currentRoles".into(), json!([self.0]));
        next.run(ctx).await
    }
}

#[tokio::test]
async fn without_acl_middleware_allow_rules_and_roles_still_decide() {
    let t = TestApp::new().await;
    let log: Log = Log::default();
    let main = t.app.data_sources().get("main").expect("main");
    main.resource_manager().define(
        ResourceDefinition::new("test")
            .action("list", handler(&log, 1, 2))
            .action("create", handler(&log, 3, 4)),
    );
    assert_eq!(t.get("/api/test:list").await.status, 200, "root");

    let nobody = powerless_user(&t).await;
    main.acl().clear_allow_rules();
    let r = as_user(&t, &nobody, poem::http::Method::GET, "/api/test:list").await;
    assert_eq!((r.status, r.error()), (403, "No permissions"));

    main.acl().define_role(manifold_core::acl::Role {
        name: "reader".into(),
        strategy: vec!["view".into()],
        ..Default::default()
    });
    main.resource_manager()
        .use_middleware(
            Arc::new(AsRole("reader")),
            Placement::default().before("acl"),
        )
        .expect("before the ACL");
    let r = as_user(&t, &nobody, poem::http::Method::GET, "/api/test:list").await;
    assert_eq!(r.status, 200, "view is granted");
    let r = as_user(&t, &nobody, poem::http::Method::POST, "/api/test:create").await;
    assert_eq!((r.status, r.error()), (403, "No permissions"));
    assert_eq!(taken(&log), [1, 2, 1, 2], "only the admitted requests ran");
}
