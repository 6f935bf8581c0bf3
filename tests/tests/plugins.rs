//! Plugins (issue 21): what a plugin loaded from outside the server crate registers is
//! served over HTTP, reaches every data source, its jobs run, and a plugin that cannot
//! load stops the start with its name.

use std::sync::{Arc, Mutex};

use manifold_core::acl::AllowCondition;
use manifold_core::data_source::DataSource;
use manifold_core::middleware::{Middleware, Next, Placement};
use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, DataSourceFactory, Error, Result};
use manifold_server::lifecycle::AppEvent;
use manifold_server::{Plugin, PluginContext, ServeConfig};
use manifold_tests::{Extensions, MainDb, TestApp};
use poem::http::Method;
use serde_json::json;

/// Answers `{"greeting": "hello, <name>"}` from the `name` param.
struct Greet;

#[async_trait::async_trait]
impl Middleware for Greet {
    async fn handle(&self, ctx: &mut Context, _next: Next<'_>) -> Result<()> {
        let name = ctx
            .action
            .as_ref()
            .and_then(|a| a.params.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("world")
            .to_owned();
        ctx.body = Some(json!({ "greeting": format!("hello, {name}") }));
        Ok(())
    }
}

/// Answers how many rows the request's collection holds.
struct CountRows;

#[async_trait::async_trait]
impl Middleware for CountRows {
    async fn handle(&self, ctx: &mut Context, _next: Next<'_>) -> Result<()> {
        let repository = ctx.current_repository()?;
        let count = repository.count(None).await?;
        ctx.body = Some(json!({ "rows": count }));
        Ok(())
    }
}

/// Stamps every answer with a header, before the router runs.
struct Stamp;

#[async_trait::async_trait]
impl Middleware for Stamp {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        ctx.response_headers
            .push(("x-stamped-by".into(), "greeter".into()));
        next.run(ctx).await
    }
}

/// Uses every registration a plugin has: a public resource on main, an action on every
/// collection of every source, app middleware placed before the router, and a record
/// of the sources it was given.
#[derive(Default)]
struct Greeter {
    sources: Arc<Mutex<Vec<String>>>,
    ticks: Arc<Mutex<u32>>,
}

#[async_trait::async_trait]
impl Plugin for Greeter {
    fn name(&self) -> &str {
        "greeter"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        app.main()
            .resource_manager()
            .define(ResourceDefinition::new("greetings").action("say", Arc::new(Greet)));
        app.main()
            .acl()
            .allow("greetings", "say", AllowCondition::Public);
        // Only reads, so it may be sent with GET.
        app.data_sources().declare_read_action("say");
        let sources = self.sources.clone();
        app.data_sources()
            .after_add_data_source(Arc::new(move |source: &Arc<DataSource>| {
                source
                    .resource_manager()
                    .register_action_handler("countRows", Arc::new(CountRows));
                sources
                    .lock()
                    .expect("sources")
                    .push(source.key().to_owned());
            }));
        app.use_middleware(
            Arc::new(Stamp),
            Placement::tag("stamp").after("auth").before("dataSource"),
        );
        let ticks = self.ticks.clone();
        app.scheduler()
            .add("greeter.tick", "* * * * * *", move |_job| {
                *ticks.lock().expect("ticks") += 1;
                async { Ok(()) }
            })?;
        Ok(())
    }
}

#[tokio::test]
async fn a_plugin_defines_resources_actions_and_middleware() {
    let greeter = Arc::new(Greeter::default());
    let sources = greeter.sources.clone();
    let ticks = greeter.ticks.clone();
    let t = TestApp::with_plugins(vec![greeter]).await;

    // A resource of its own, open to anonymous callers because the plugin granted it.
    let r = t
        .main_as("", Method::GET, "/api/greetings:say?name=ada", None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data(), &json!({ "greeting": "hello, ada" }));
    assert_eq!(r.header("x-stamped-by"), Some("greeter"));

    // An action on every collection; the ACL still guards it like any other action.
    t.collection(json!({ "name": "notes", "fields": [{ "name": "title", "type": "string" }] }))
        .await;
    t.insert("notes", json!([{ "title": "a" }, { "title": "b" }]))
        .await;
    let r = t.main(Method::POST, "/api/notes:countRows", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data(), &json!({ "rows": 2 }));
    let r = t
        .main_as("", Method::POST, "/api/notes:countRows", None)
        .await;
    assert_eq!(r.status, 401, "anonymous: {:?}", r.body);
    // Not declared as only reading: a link cannot trigger it.
    let r = t.main(Method::GET, "/api/notes:countRows", None).await;
    assert_eq!(r.status, 405, "{:?}", r.body);

    // The hook reached main, and reaches a source registered later.
    assert_eq!(*sources.lock().expect("sources"), ["main"]);
    t.register_source("extra", "sqlite", json!({ "path": "plugin-extra.sqlite" }))
        .await;
    assert_eq!(*sources.lock().expect("sources"), ["main", "extra"]);
    let r = t.on("extra", Method::GET, "/api/greetings:say", None).await;
    assert_eq!(r.status, 404, "greetings is main's only: {:?}", r.body);

    // Its job runs every second once the app is up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while *ticks.lock().expect("ticks") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not run twice in 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A plugin whose `load` fails, or whose middleware names a tag nobody has.
struct Broken {
    name: &'static str,
    fails: bool,
}

#[async_trait::async_trait]
impl Plugin for Broken {
    fn name(&self) -> &str {
        self.name
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        if self.fails {
            return Err(Error::bad_request("the licence file is missing"));
        }
        app.use_middleware(Arc::new(Stamp), Placement::tag("late").after("nosuchtag"));
        Ok(())
    }
}

/// Offers the toy connector's source type, as a connector crate's plugin would.
struct Toys;

#[async_trait::async_trait]
impl Plugin for Toys {
    fn name(&self) -> &str {
        "toys"
    }

    fn connectors(&self) -> Vec<Arc<dyn DataSourceFactory>> {
        vec![Arc::new(manifold_toy::ToyFactory)]
    }

    async fn load(&self, _app: &mut PluginContext<'_>) -> Result<()> {
        Ok(())
    }
}

async fn start_error(plugins: Vec<Arc<dyn Plugin>>) -> String {
    let extensions = Extensions {
        connectors: Vec::new(),
        plugins,
    };
    match MainDb::create()
        .await
        .start_offering(|_| {}, extensions)
        .await
    {
        Ok(_) => panic!("the app started"),
        Err((_, e)) => e.to_string(),
    }
}

#[tokio::test]
async fn a_plugin_that_cannot_load_stops_the_start_and_is_named() {
    let e = start_error(vec![Arc::new(Broken {
        name: "licensing",
        fails: true,
    })])
    .await;
    assert!(
        e.contains("plugin licensing") && e.contains("the licence file is missing"),
        "{e}"
    );

    let e = start_error(vec![Arc::new(Broken {
        name: "misplaced",
        fails: false,
    })])
    .await;
    assert!(
        e.contains("plugin misplaced") && e.contains("nosuchtag"),
        "{e}"
    );

    let e = start_error(vec![Arc::new(Toys), Arc::new(Toys)]).await;
    assert!(e.contains("two plugins are named \"toys\""), "{e}");

    let e = start_error(vec![Arc::new(Broken {
        name: "openapi",
        fails: false,
    })])
    .await;
    assert!(e.contains("two plugins are named \"openapi\""), "{e}");

    let e = start_error(vec![Arc::new(Broken {
        name: "auth",
        fails: false,
    })])
    .await;
    assert!(e.contains("two plugins are named \"auth\""), "{e}");
}

#[test]
fn the_stock_application_is_composed_of_the_built_in_plugins() {
    let names: Vec<String> = manifold_server::built_in_plugins()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "auth",
            "actions",
            "collections",
            "data-sources",
            "openapi",
            "account-commands"
        ]
    );
}

#[tokio::test]
async fn a_plugin_offers_a_connector() {
    let t = TestApp::with_plugins(vec![Arc::new(Toys)]).await;
    let options = json!({"collections": {"notes": {
        "fields": {"id": "integer", "title": "string"}, "primaryKey": "id"
    }}});
    t.register_source("toybox", "toy", options).await;
    let r = t
        .on(
            "toybox",
            Method::POST,
            "/api/notes:create",
            Some(json!({"title": "from a plugin's connector"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["title"], json!("from a plugin's connector"));
}

/// Records the application events it sees, and the sources removed; its `beforeStart`
/// handler fails when asked to.
struct Lifecycle {
    seen: Arc<Mutex<Vec<String>>>,
    fail_start: bool,
}

#[async_trait::async_trait]
impl Plugin for Lifecycle {
    fn name(&self) -> &str {
        "lifecycle"
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        for event in [
            AppEvent::BeforeStart,
            AppEvent::AfterStart,
            AppEvent::BeforeStop,
            AppEvent::AfterStop,
        ] {
            let (seen, fail) = (self.seen.clone(), self.fail_start);
            app.on(event, move |app| {
                let seen = seen.clone();
                async move {
                    // The sources are still open at every event, afterStop included.
                    let main = app.data_sources().get("main").expect("main");
                    let (_, users) = main.collection("users").expect("users");
                    users.count(None).await?;
                    seen.lock().expect("seen").push(event.name().to_owned());
                    if fail && event == AppEvent::BeforeStart {
                        return Err(Error::bad_request("not today"));
                    }
                    Ok(())
                }
            });
        }
        let seen = self.seen.clone();
        app.data_sources()
            .after_remove_data_source(Arc::new(move |source: &Arc<DataSource>| {
                seen.lock()
                    .expect("seen")
                    .push(format!("afterRemoveDataSource {}", source.key()));
            }));
        Ok(())
    }
}

/// A configuration on a fresh SQLite file, listening on a free port.
fn served_config(dir: &tempfile::TempDir) -> ServeConfig {
    let mut config = ServeConfig {
        main_db: format!("sqlite://{}", dir.path().join("main.sqlite").display()),
        listen: "127.0.0.1:0".parse().expect("address"),
        ..ServeConfig::default()
    };
    config.auth.root_password = Some(manifold_server::auth::Secret("lifecycle-root-1".into()));
    config
}

#[tokio::test]
async fn application_events_fire_as_the_service_starts_and_stops() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let plugin = Arc::new(Lifecycle {
        seen: seen.clone(),
        fail_start: false,
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(manifold_server::serve_until(
        served_config(&dir),
        vec![plugin],
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !seen
        .lock()
        .expect("seen")
        .contains(&"afterStart".to_owned())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no afterStart in 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.send(()).expect("still serving");
    serving.await.expect("joined").expect("served and stopped");
    assert_eq!(
        *seen.lock().expect("seen"),
        ["beforeStart", "afterStart", "beforeStop", "afterStop"]
    );
}

#[tokio::test]
async fn a_failing_before_start_handler_stops_the_start_naming_its_plugin() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let plugin = Arc::new(Lifecycle {
        seen: seen.clone(),
        fail_start: true,
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let e = manifold_server::serve_until(served_config(&dir), vec![plugin], std::future::pending())
        .await
        .expect_err("the start fails");
    assert_eq!(
        e.to_string(),
        "cannot start: plugin lifecycle: beforeStart: not today"
    );
    assert_eq!(*seen.lock().expect("seen"), ["beforeStart"]);
}

#[tokio::test]
async fn removing_a_source_runs_the_after_remove_hooks() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let plugin = Arc::new(Lifecycle {
        seen: seen.clone(),
        fail_start: false,
    });
    let t = TestApp::with_plugins(vec![plugin]).await;
    t.register_source("gone", "sqlite", json!({ "path": "gone.sqlite" }))
        .await;
    let r = t
        .main(
            Method::POST,
            "/api/dataSources:destroy?filterByTk=gone",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(*seen.lock().expect("seen"), ["afterRemoveDataSource gone"]);
}
