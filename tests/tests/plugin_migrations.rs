//! Migrations for plugins (issue 21, part 7): a plugin's versioned migrations of its own
//! tables run after Manifold's, before its `load`, on every main backend; a restart runs
//! only the new ones; replicas starting together run each once; a failing one stops the
//! start naming the plugin and leaves Manifold's schema as it was; a database that holds
//! more of the plugin's migrations than it knows is refused naming both versions.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use manifold_core::Result;
use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::query::FindOptions;
use manifold_core::schema::{Collection, FieldType};
use manifold_server::migrations::{Ddl, LATEST, Migration};
use manifold_server::{AppBuilder, Plugin, PluginContext, ServeConfig};
use manifold_tests::{
    Backend, Extensions, MainDb, ROOT_PASSWORD, ScratchDatabase, TestApp, current_backend,
    every_backend, on_backend,
};
use serde_json::{Value as Json, json};

const TABLE: &str = "_audit_log";

/// Every plan run so far: (test tag, backend, version). Each test plans with its own tag,
/// so tests running side by side do not see each other's.
static PLANNED: Mutex<Vec<(u8, &'static str, i64)>> = Mutex::new(Vec::new());

fn backend_of(ddl: &Ddl) -> &'static str {
    match ddl {
        Ddl::Sqlite => "sqlite",
        Ddl::Postgres { .. } => "postgres",
        Ddl::MySql => "mysql",
    }
}

fn note<const TAG: u8>(ddl: &Ddl, version: i64) {
    PLANNED
        .lock()
        .expect("not poisoned")
        .push((TAG, backend_of(ddl), version));
}

/// The versions test `tag` planned on `ddl`'s backend, in order.
fn planned(tag: u8, backend: Backend) -> Vec<i64> {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
        Backend::MariaDb => "mysql",
    };
    PLANNED
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(t, b, _)| *t == tag && *b == name)
        .map(|(_, _, v)| *v)
        .collect()
}

fn table(existing: &[Collection]) -> Option<&Collection> {
    existing.iter().find(|c| c.name() == TABLE)
}

/// Adds `field` unless a partial run (MySQL/MariaDB) already did.
fn add_missing(existing: &[Collection], ddl: &Ddl, field: FieldDefinition) -> Result<Vec<String>> {
    let Some(log) = table(existing) else {
        return Err(manifold_core::Error::internal(format!("no table {TABLE}")));
    };
    if log.field(&field.name).is_some() {
        return Ok(Vec::new());
    }
    ddl.add_column(log.table(), &field)
}

/// Migration 1: the log, an id, what was done and when.
fn create_log<const TAG: u8>(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    note::<TAG>(ddl, 1);
    if table(existing).is_some() {
        return Ok(Vec::new());
    }
    ddl.create_table(&CollectionDefinition {
        name: TABLE.into(),
        auto_gen_id: true,
        timestamps: false,
        fields: vec![
            FieldDefinition::new("action", FieldType::String),
            FieldDefinition::new("at", FieldType::BigInt),
        ],
    })
}

/// Migration 2: who did it.
fn add_actor<const TAG: u8>(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    note::<TAG>(ddl, 2);
    add_missing(
        existing,
        ddl,
        FieldDefinition::new("actor", FieldType::String),
    )
}

/// Migration 3: details.
fn add_detail<const TAG: u8>(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    note::<TAG>(ddl, 3);
    add_missing(
        existing,
        ddl,
        FieldDefinition::new("detail", FieldType::Text),
    )
}

/// A migration whose DDL no database takes.
fn broken<const TAG: u8>(_: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    note::<TAG>(ddl, 3);
    Ok(vec!["CREATE TABLE _audit_broken (".into()])
}

/// The first `count` of the audit plugin's migrations.
fn audit<const TAG: u8>(count: usize) -> Vec<Migration> {
    [
        Migration {
            version: 1,
            name: "audit log",
            plan: create_log::<TAG>,
        },
        Migration {
            version: 2,
            name: "audit actor",
            plan: add_actor::<TAG>,
        },
        Migration {
            version: 3,
            name: "audit detail",
            plan: add_detail::<TAG>,
        },
    ]
    .into_iter()
    .take(count)
    .collect()
}

/// [`audit`], with a third migration that fails.
fn audit_failing_third<const TAG: u8>(count: usize) -> Vec<Migration> {
    let mut migrations = audit::<TAG>(count.min(2));
    if count >= 3 {
        migrations.push(Migration {
            version: 3,
            name: "audit broken",
            plan: broken::<TAG>,
        });
    }
    migrations
}

/// A plugin keeping an audit log in the main database; how many of its migrations it
/// knows can change between starts.
struct Audit {
    known: Arc<AtomicUsize>,
    migrations: fn(usize) -> Vec<Migration>,
    /// The log's fields as `load` found them through `internal_table`.
    loaded_with: Arc<Mutex<Vec<String>>>,
}

impl Audit {
    fn new(known: usize, migrations: fn(usize) -> Vec<Migration>) -> Arc<Self> {
        Arc::new(Self {
            known: Arc::new(AtomicUsize::new(known)),
            migrations,
            loaded_with: Arc::default(),
        })
    }
}

#[async_trait::async_trait]
impl Plugin for Audit {
    fn name(&self) -> &str {
        "audit"
    }

    fn migrations(&self) -> Vec<Migration> {
        (self.migrations)(self.known.load(Ordering::SeqCst))
    }

    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()> {
        let log = app.main().internal_table(TABLE)?;
        let fields = log
            .collection()
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        *self.loaded_with.lock().expect("not poisoned") = fields;
        Ok(())
    }
}

fn extensions(plugin: &Arc<Audit>) -> Extensions {
    Extensions {
        connectors: Vec::new(),
        plugins: vec![plugin.clone()],
    }
}

/// Every row of the internal table `name` of main.
async fn rows(t: &TestApp, name: &str) -> Vec<Json> {
    let table = t.source().internal_table(name).expect("internal table");
    table
        .find(&FindOptions::default())
        .await
        .expect("rows read")
        .into_iter()
        .map(Json::Object)
        .collect()
}

/// The audit plugin's recorded (version, name) pairs, in order.
async fn recorded(t: &TestApp) -> Vec<(i64, String)> {
    let mut versions: Vec<_> = rows(t, "_manifold_plugin_migrations")
        .await
        .into_iter()
        .filter(|r| r["plugin"] == json!("audit"))
        .map(|r| {
            let version = r["version"].as_i64().expect("version");
            (version, r["name"].as_str().expect("name").to_owned())
        })
        .collect();
    versions.sort();
    versions
}

/// Manifold's own recorded versions, in order.
async fn manifold_versions(t: &TestApp) -> Vec<i64> {
    let mut versions: Vec<_> = rows(t, "_manifold_migrations")
        .await
        .iter()
        .map(|r| r["version"].as_i64().expect("version"))
        .collect();
    versions.sort();
    versions
}

fn named(versions: &[(i64, &str)]) -> Vec<(i64, String)> {
    versions
        .iter()
        .map(|(v, n)| (*v, (*n).to_owned()))
        .collect()
}

every_backend! {
    #[skip(mongodb, mssql)]
    async fn a_plugins_migrations_run_before_it_loads_and_a_restart_runs_only_new_ones() {
        let plugin = Audit::new(2, audit::<1>);
        let t = TestApp::with_plugins(vec![plugin.clone()]).await;
        let columns = t.columns(TABLE).await;
        for column in ["id", "action", "at", "actor"] {
            assert!(columns.iter().any(|c| c == column), "{column} in {columns:?}");
        }
        assert_eq!(
            recorded(&t).await,
            named(&[(1, "audit log"), (2, "audit actor")])
        );
        assert_eq!(manifold_versions(&t).await, (1..=LATEST).collect::<Vec<_>>());
        // load found the table, with both migrations' columns, as an internal table.
        let loaded = plugin.loaded_with.lock().expect("not poisoned").clone();
        assert!(loaded.iter().any(|f| f == "actor"), "{loaded:?}");
        assert!(t.source().collection(TABLE).is_none(), "an internal table is no resource");
        let listed = t.get("/api/collections:list?paginate=false").await;
        assert!(!listed.body.to_string().contains(TABLE), "{}", listed.body);

        plugin.known.store(3, Ordering::SeqCst);
        let t = t.restart().await;
        assert!(t.columns(TABLE).await.iter().any(|c| c == "detail"));
        assert_eq!(
            recorded(&t).await,
            named(&[(1, "audit log"), (2, "audit actor"), (3, "audit detail")])
        );
        assert_eq!(planned(1, current_backend()), [1, 2, 3], "each migration planned once");
        let loaded = plugin.loaded_with.lock().expect("not poisoned").clone();
        assert!(loaded.iter().any(|f| f == "detail"), "{loaded:?}");
    }
}

every_backend! {
    #[skip(mongodb, mssql)]
    async fn a_failing_migration_stops_the_start_naming_the_plugin_and_a_newer_record_is_refused() {
        let db = MainDb::create().await;
        let failing = Audit::new(3, audit_failing_third::<2>);
        let (db, e) = match db.start_offering(|_| {}, extensions(&failing)).await {
            Ok(_) => panic!("a migration with bad DDL stops the start"),
            Err(refused) => refused,
        };
        let message = e.to_string();
        assert!(
            message.contains("plugin audit: migration 3 (audit broken) failed"),
            "{message}"
        );
        assert!(failing.loaded_with.lock().expect("not poisoned").is_empty(), "no load");

        // The plugin's migrations 1 and 2 are recorded; a build that knows only the first
        // is refused, naming the plugin and both versions.
        let older = Audit::new(1, audit::<2>);
        let (db, e) = match db.start_offering(|_| {}, extensions(&older)).await {
            Ok(_) => panic!("a plugin older than its tables is refused"),
            Err(refused) => refused,
        };
        let message = e.to_string();
        assert!(
            message.starts_with("plugin audit:")
                && message.contains("version 2")
                && message.contains("version 1"),
            "{message}"
        );

        // Manifold's own schema is whole: the app starts without the plugin.
        let t = match db.start().await {
            Ok(t) => t,
            Err((_, e)) => panic!("starts without the plugin: {e}"),
        };
        assert_eq!(manifold_versions(&t).await, (1..=LATEST).collect::<Vec<_>>());
        assert_eq!(
            recorded(&t).await,
            named(&[(1, "audit log"), (2, "audit actor")])
        );
        let r = t.get("/api/users:list").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
}

/// The configuration of a test app on `main_db`.
fn config(main_db: String) -> ServeConfig {
    let mut config = ServeConfig {
        main_db,
        ..ServeConfig::default()
    };
    config.auth.root_password = Some(manifold_server::auth::Secret(ROOT_PASSWORD.into()));
    config
}

#[tokio::test]
async fn two_replicas_starting_together_on_postgres_run_each_migration_once() {
    on_backend(Backend::Postgres, async {
        let scratch = ScratchDatabase::create(Backend::Postgres).await;
        let config = config(scratch.url());
        let first = Audit::new(2, audit::<3>);
        let second = Audit::new(2, audit::<3>);
        let (a, b) = tokio::join!(
            AppBuilder::new(&config).plugin(first.clone()).build(),
            AppBuilder::new(&config).plugin(second.clone()).build(),
        );
        let (a, b) = (
            a.expect("first replica starts"),
            b.expect("second replica starts"),
        );
        assert_eq!(
            planned(3, Backend::Postgres),
            [1, 2],
            "each migration planned once"
        );
        for plugin in [&first, &second] {
            let loaded = plugin.loaded_with.lock().expect("not poisoned").clone();
            assert!(loaded.iter().any(|f| f == "actor"), "{loaded:?}");
        }
        a.close().await;
        b.close().await;
    })
    .await;
}
