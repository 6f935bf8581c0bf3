//! The main database's schema, versioned: migrations numbered 1..N, each recorded in the
//! table `_manifold_migrations` (version, name, applied at) when it has run, and run under
//! a database-wide lock so that any number of processes may start at once on an empty or
//! an older database.
//!
//! One file per migration (`m0001_initial.rs`, …), listed in [`MIGRATIONS`]. A migration is
//! a plan: from the schema as introspection finds it, the DDL statements that bring it to
//! the migration's version. Planning from what is there keeps a migration correct when it
//! is run again after a partial run, which can only happen on MySQL/MariaDB, whose DDL
//! commits statement by statement; on PostgreSQL and SQLite each migration and its record
//! commit in one transaction. A migration, once released, never changes: a later change
//! to the schema is a new migration.
//!
//! The lock ([`session::Session::lock`]): a PostgreSQL session advisory lock, MySQL's
//! `GET_LOCK`, each on a connection taken out of the pool for it and waiting at most
//! `--migration-lock-timeout`. SQLite has none, so an OS lock on a file beside the
//! database stands in for it; `BEGIN IMMEDIATE` around each migration (which re-reads the
//! recorded version inside it) is a second guard. The lock stays held after the
//! migrations, until `build_app` has written the built-in rows, so replicas starting
//! together do not seed them twice ([`Migrated::release`]).
//!
//! A database whose recorded version is newer than this binary's [`LATEST`] is refused,
//! by `serve` and by `manifold migrate`, naming both versions.
//!
//! Plugins' migrations ([`crate::Plugin::migrations`]) run after these, in plugin order,
//! in the same session and under the same lock, each plugin numbering its own from 1 and
//! recorded in `_manifold_plugin_migrations` under its name; a plugin whose recorded
//! version is newer than it knows is refused in the same way
//! (docs/decisions/0018-plugin-migrations.md).

mod m0001_initial;
mod m0002_change_log;
mod m0003_connection_claims;
mod m0004_job_runs;
mod m0005_plugin_migrations;
mod session;

use std::time::Duration;

use manifold_core::Result;
use manifold_core::error::ErrorKind;
use manifold_core::schema::Collection;

use crate::main_db::MainDatabase;
pub use session::Ddl;
use session::Session;

/// The table recording which migrations have run.
pub const MIGRATIONS_TABLE: &str = "_manifold_migrations";

/// The table recording which plugins' migrations have run (migration 5 makes it).
pub const PLUGIN_MIGRATIONS_TABLE: &str = "_manifold_plugin_migrations";

/// One step of the main database's schema: one of Manifold's, or one of a plugin's
/// ([`crate::Plugin::migrations`]).
pub struct Migration {
    /// Its number: migrations run in this order, 1, 2, …, each once (a plugin numbers its
    /// own from 1 too).
    pub version: i64,
    /// What it does, recorded beside the version.
    pub name: &'static str,
    /// The statements that take the schema, as introspection found it, to this version;
    /// an error (a table Manifold cannot adopt, say) changes nothing.
    pub plan: fn(&[Collection], &Ddl) -> Result<Vec<String>>,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    m0001_initial::MIGRATION,
    m0002_change_log::MIGRATION,
    m0003_connection_claims::MIGRATION,
    m0004_job_runs::MIGRATION,
    m0005_plugin_migrations::MIGRATION,
];

/// The schema version this binary brings the main database to.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// One plugin's migrations, run after Manifold's and recorded under the plugin's name.
pub struct PluginMigrations {
    /// The plugin's name ([`crate::Plugin::name`]).
    pub plugin: String,
    /// Its migrations, numbered 1, 2, … without gaps, in that order.
    pub migrations: Vec<Migration>,
}

impl PluginMigrations {
    /// The version its last migration brings its tables to (0: it has none).
    pub fn latest(&self) -> i64 {
        self.migrations.len() as i64
    }

    /// Refuses migrations out of order or with gaps: which of them ran would be unclear.
    fn check_numbering(&self) -> std::result::Result<(), MigrationError> {
        for (expected, migration) in (1..).zip(&self.migrations) {
            if migration.version != expected {
                return Err(MigrationError::PluginMisnumbered {
                    plugin: self.plugin.clone(),
                    expected,
                    found: migration.version,
                    name: migration.name,
                });
            }
        }
        Ok(())
    }
}

/// What `serve` does with the main database's schema at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MigrationMode {
    /// Run the migrations the database lacks (under the lock).
    Apply,
    /// Run none: refuse to start unless the database is at this binary's version (for
    /// deployments where `manifold migrate` runs first, with the rights to change tables).
    Check,
}

/// Why the main database's schema could not be brought to this binary's version.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The database was migrated by a newer Manifold.
    #[error(
        "the main database is at schema version {database}, newer than this manifold knows \
         (version {binary}); run the newer manifold that migrated it"
    )]
    Newer {
        /// The version recorded in the database.
        database: i64,
        /// [`LATEST`].
        binary: i64,
    },
    /// `--migrations check` found migrations still to run.
    #[error(
        "the main database is at schema version {database} and this manifold needs version \
         {binary}; run `manifold migrate` first (--migrations is check, so serve does not \
         migrate)"
    )]
    Behind {
        /// The version recorded in the database (0: none).
        database: i64,
        /// [`LATEST`].
        binary: i64,
    },
    /// Another process held the migration lock for longer than the wait allowed.
    #[error(
        "another process held the main database's migration lock for more than {}; it may \
         still be migrating: retry, or raise --migration-lock-timeout",
        humantime::format_duration(*.waited)
    )]
    LockTimeout {
        /// How long this process waited.
        waited: Duration,
    },
    /// One migration failed; on PostgreSQL and SQLite it left nothing behind.
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// Why.
        source: manifold_core::Error,
    },
    /// The database holds more of a plugin's migrations than the plugin knows.
    #[error(
        "plugin {plugin}: its tables in the main database are at version {database}, newer \
         than the plugin knows (version {plugin_latest}); run the newer build of the plugin \
         that migrated them"
    )]
    PluginNewer {
        /// The plugin's name.
        plugin: String,
        /// The plugin's version recorded in the database.
        database: i64,
        /// [`PluginMigrations::latest`].
        plugin_latest: i64,
    },
    /// `--migrations check` found migrations of a plugin still to run.
    #[error(
        "plugin {plugin}: its tables in the main database are at version {database} and it \
         needs version {plugin_latest}; run `manifold migrate` first (--migrations is \
         check, so serve does not migrate)"
    )]
    PluginBehind {
        /// The plugin's name.
        plugin: String,
        /// The plugin's version recorded in the database (0: none).
        database: i64,
        /// [`PluginMigrations::latest`].
        plugin_latest: i64,
    },
    /// A plugin's migrations are not numbered 1, 2, … in order.
    #[error(
        "plugin {plugin}: migration {name:?} is numbered {found} where {expected} was \
         expected; a plugin numbers its migrations 1, 2, … in order, without gaps"
    )]
    PluginMisnumbered {
        /// The plugin's name.
        plugin: String,
        /// The number its place in the list calls for.
        expected: i64,
        /// The number it has.
        found: i64,
        /// Its name.
        name: &'static str,
    },
    /// One of a plugin's migrations failed; on PostgreSQL and SQLite it left nothing
    /// behind, and Manifold's own migrations, run before it, stay.
    #[error("plugin {plugin}: migration {version} ({name}) failed: {source}")]
    PluginFailed {
        /// The plugin's name.
        plugin: String,
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// Why.
        source: manifold_core::Error,
    },
    /// The database could not be reached or read.
    #[error("{0}")]
    Database(#[from] manifold_core::Error),
}

impl From<MigrationError> for manifold_core::Error {
    fn from(e: MigrationError) -> Self {
        let kind = match &e {
            MigrationError::Newer { .. }
            | MigrationError::Behind { .. }
            | MigrationError::PluginNewer { .. }
            | MigrationError::PluginBehind { .. } => ErrorKind::Conflict,
            MigrationError::PluginMisnumbered { .. } => ErrorKind::Internal,
            MigrationError::LockTimeout { .. } => ErrorKind::Timeout,
            MigrationError::Failed { source, .. }
            | MigrationError::PluginFailed { source, .. }
            | MigrationError::Database(source) => source.kind(),
        };
        manifold_core::Error::new(kind, e.to_string())
    }
}

/// The main database at this binary's schema version, with the migration lock still held
/// (see [`Migrated::release`]).
pub struct Migrated {
    session: Session,
    /// The version found at start (0: none recorded).
    pub from: i64,
    /// The version now recorded: [`LATEST`].
    pub to: i64,
}

impl Migrated {
    /// Gives the lock back and closes its connection. Dropping this instead closes the
    /// connection too, which ends the lock with it.
    pub async fn release(self) {
        self.session.release().await;
    }
}

/// Takes the migration lock on `database` (waiting at most `wait`), checks the recorded
/// versions and, in [`MigrationMode::Apply`], runs every migration they lack: Manifold's,
/// then each of `plugins`' in order.
pub async fn run(
    database: &MainDatabase,
    mode: MigrationMode,
    wait: Duration,
    plugins: &[PluginMigrations],
) -> std::result::Result<Migrated, MigrationError> {
    // A misnumbered list is the plugin's bug: refused before the database is touched.
    for plugin in plugins {
        plugin.check_numbering()?;
    }
    let mut session = Session::open(database, wait).await?;
    if let Err(e) = session.lock(wait).await {
        session.release().await;
        return Err(e);
    }
    let mut outcome = migrate(&mut session, mode).await;
    if outcome.is_ok() {
        for plugin in plugins {
            if let Err(e) = migrate_plugin(&mut session, mode, plugin).await {
                outcome = Err(e);
                break;
            }
        }
    }
    match outcome {
        Ok(from) => Ok(Migrated {
            session,
            from,
            to: LATEST,
        }),
        Err(e) => {
            session.release().await;
            Err(e)
        }
    }
}

/// Whose migrations a step belongs to, which says where its version is recorded and how
/// its errors read.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Manifold,
    Plugin { name: &'a str, latest: i64 },
}

impl Owner<'_> {
    fn latest(self) -> i64 {
        match self {
            Self::Manifold => LATEST,
            Self::Plugin { latest, .. } => latest,
        }
    }

    /// The version recorded for this owner (0: none).
    async fn version(self, session: &mut Session) -> Result<i64> {
        match self {
            Self::Manifold => session.version().await,
            Self::Plugin { name, .. } => session.plugin_version(name).await,
        }
    }

    async fn record(self, session: &mut Session, migration: &Migration) -> Result<()> {
        match self {
            Self::Manifold => session.record(migration.version, migration.name).await,
            Self::Plugin { name, .. } => {
                session
                    .record_plugin(name, migration.version, migration.name)
                    .await
            }
        }
    }

    fn newer(self, database: i64) -> MigrationError {
        match self {
            Self::Manifold => MigrationError::Newer {
                database,
                binary: LATEST,
            },
            Self::Plugin { name, latest } => MigrationError::PluginNewer {
                plugin: name.to_owned(),
                database,
                plugin_latest: latest,
            },
        }
    }

    fn behind(self, database: i64) -> MigrationError {
        match self {
            Self::Manifold => MigrationError::Behind {
                database,
                binary: LATEST,
            },
            Self::Plugin { name, latest } => MigrationError::PluginBehind {
                plugin: name.to_owned(),
                database,
                plugin_latest: latest,
            },
        }
    }

    fn failed(self, migration: &Migration, source: manifold_core::Error) -> MigrationError {
        match self {
            Self::Manifold => MigrationError::Failed {
                version: migration.version,
                name: migration.name,
                source,
            },
            Self::Plugin { name, .. } => MigrationError::PluginFailed {
                plugin: name.to_owned(),
                version: migration.version,
                name: migration.name,
                source,
            },
        }
    }
}

/// Runs what `session`'s database lacks of Manifold's migrations; returns the version it
/// was at.
async fn migrate(
    session: &mut Session,
    mode: MigrationMode,
) -> std::result::Result<i64, MigrationError> {
    let recorded = session.has_migrations_table().await?;
    let from = if recorded {
        session.version().await?
    } else {
        0
    };
    if from > LATEST {
        return Err(Owner::Manifold.newer(from));
    }
    if from == LATEST {
        return Ok(from);
    }
    if mode == MigrationMode::Check {
        return Err(Owner::Manifold.behind(from));
    }
    if !recorded {
        session.create_migrations_table().await?;
    }
    run_each(session, Owner::Manifold, MIGRATIONS, from).await?;
    Ok(from)
}

/// Runs what `session`'s database lacks of `plugin`'s migrations (Manifold's have run, so
/// their table exists).
async fn migrate_plugin(
    session: &mut Session,
    mode: MigrationMode,
    plugin: &PluginMigrations,
) -> std::result::Result<(), MigrationError> {
    let owner = Owner::Plugin {
        name: &plugin.plugin,
        latest: plugin.latest(),
    };
    let from = owner.version(session).await?;
    if from > owner.latest() {
        return Err(owner.newer(from));
    }
    if from == owner.latest() {
        return Ok(());
    }
    if mode == MigrationMode::Check {
        return Err(owner.behind(from));
    }
    run_each(session, owner, &plugin.migrations, from).await
}

/// Runs each of `migrations` above version `from`, each in its own transaction.
async fn run_each(
    session: &mut Session,
    owner: Owner<'_>,
    migrations: &[Migration],
    from: i64,
) -> std::result::Result<(), MigrationError> {
    for migration in migrations.iter().filter(|m| m.version > from) {
        session.begin().await?;
        match apply(session, owner, migration).await {
            Ok(()) => session.commit().await?,
            Err(e) => {
                session.rollback().await;
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Runs `migration` inside the transaction `session` has begun, unless the version read
/// inside it says another process ran it first (SQLite has no lock but this one).
async fn apply(
    session: &mut Session,
    owner: Owner<'_>,
    migration: &Migration,
) -> std::result::Result<(), MigrationError> {
    let current = owner.version(session).await?;
    if current > owner.latest() {
        return Err(owner.newer(current));
    }
    if current >= migration.version {
        return Ok(());
    }
    let existing = session.introspect().await?;
    let statements =
        (migration.plan)(&existing, session.ddl()).map_err(|e| owner.failed(migration, e))?;
    for statement in &statements {
        session
            .execute(statement)
            .await
            .map_err(|e| owner.failed(migration, e))?;
    }
    owner
        .record(session, migration)
        .await
        .map_err(|e| owner.failed(migration, e))?;
    match owner {
        Owner::Manifold => tracing::info!(
            version = migration.version,
            name = migration.name,
            statements = statements.len(),
            "main database migrated"
        ),
        Owner::Plugin { name, .. } => tracing::info!(
            plugin = name,
            version = migration.version,
            name = migration.name,
            statements = statements.len(),
            "plugin's tables migrated"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_run_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i64 + 1, "{}", migration.name);
        }
        assert_eq!(LATEST, MIGRATIONS.len() as i64);
    }

    #[test]
    fn the_messages_name_both_versions_and_what_to_do() {
        let newer = MigrationError::Newer {
            database: 7,
            binary: 1,
        }
        .to_string();
        assert!(
            newer.contains("schema version 7") && newer.contains("version 1"),
            "{newer}"
        );
        let behind = MigrationError::Behind {
            database: 0,
            binary: 1,
        }
        .to_string();
        assert!(behind.contains("manifold migrate"), "{behind}");
        let waited = MigrationError::LockTimeout {
            waited: Duration::from_secs(120),
        }
        .to_string();
        assert!(
            waited.contains("2m") && waited.contains("--migration-lock-timeout"),
            "{waited}"
        );
    }

    #[test]
    fn a_plugins_errors_name_it_and_its_versions() {
        let newer = MigrationError::PluginNewer {
            plugin: "audit".into(),
            database: 3,
            plugin_latest: 2,
        }
        .to_string();
        assert!(
            newer.starts_with("plugin audit:")
                && newer.contains("version 3")
                && newer.contains("version 2"),
            "{newer}"
        );
        let behind = MigrationError::PluginBehind {
            plugin: "audit".into(),
            database: 1,
            plugin_latest: 2,
        }
        .to_string();
        assert!(
            behind.starts_with("plugin audit:") && behind.contains("manifold migrate"),
            "{behind}"
        );
    }

    fn nothing(_: &[Collection], _: &Ddl) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    #[test]
    fn a_plugins_migrations_are_numbered_from_one_without_gaps() {
        let plugin = |versions: &[i64]| PluginMigrations {
            plugin: "audit".into(),
            migrations: versions
                .iter()
                .map(|&version| Migration {
                    version,
                    name: "step",
                    plan: nothing,
                })
                .collect(),
        };
        assert!(plugin(&[]).check_numbering().is_ok());
        assert!(plugin(&[1, 2, 3]).check_numbering().is_ok());
        let gap = plugin(&[1, 3]).check_numbering().map_err(|e| e.to_string());
        assert!(
            gap.as_ref()
                .is_err_and(|e| e.starts_with("plugin audit:") && e.contains("numbered 3")),
            "{gap:?}"
        );
        assert!(plugin(&[0]).check_numbering().is_err());
    }
}
