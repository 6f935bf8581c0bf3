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

mod m0001_initial;
mod m0002_change_log;
mod m0003_connection_claims;
mod m0004_job_runs;
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

/// One step of the main database's schema.
pub struct Migration {
    /// Its number: migrations run in this order, 1, 2, …, each once.
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
];

/// The schema version this binary brings the main database to.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

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
    /// The database could not be reached or read.
    #[error("{0}")]
    Database(#[from] manifold_core::Error),
}

impl From<MigrationError> for manifold_core::Error {
    fn from(e: MigrationError) -> Self {
        let kind = match &e {
            MigrationError::Newer { .. } | MigrationError::Behind { .. } => ErrorKind::Conflict,
            MigrationError::LockTimeout { .. } => ErrorKind::Timeout,
            MigrationError::Failed { source, .. } | MigrationError::Database(source) => {
                source.kind()
            }
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
/// version and, in [`MigrationMode::Apply`], runs every migration it lacks.
pub async fn run(
    database: &MainDatabase,
    mode: MigrationMode,
    wait: Duration,
) -> std::result::Result<Migrated, MigrationError> {
    let mut session = Session::open(database, wait).await?;
    if let Err(e) = session.lock(wait).await {
        session.release().await;
        return Err(e);
    }
    match migrate(&mut session, mode).await {
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

/// Runs what `session`'s database lacks; returns the version it was at.
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
        return Err(MigrationError::Newer {
            database: from,
            binary: LATEST,
        });
    }
    if from == LATEST {
        return Ok(from);
    }
    if mode == MigrationMode::Check {
        return Err(MigrationError::Behind {
            database: from,
            binary: LATEST,
        });
    }
    if !recorded {
        session.create_migrations_table().await?;
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        session.begin().await?;
        match apply(session, migration).await {
            Ok(()) => session.commit().await?,
            Err(e) => {
                session.rollback().await;
                return Err(e);
            }
        }
    }
    Ok(from)
}

/// Runs `migration` inside the transaction `session` has begun, unless the version read
/// inside it says another process ran it first (SQLite has no lock but this one).
async fn apply(
    session: &mut Session,
    migration: &Migration,
) -> std::result::Result<(), MigrationError> {
    let current = session.version().await?;
    if current > LATEST {
        return Err(MigrationError::Newer {
            database: current,
            binary: LATEST,
        });
    }
    if current >= migration.version {
        return Ok(());
    }
    let failed = |source| MigrationError::Failed {
        version: migration.version,
        name: migration.name,
        source,
    };
    let existing = session.introspect().await?;
    let statements = (migration.plan)(&existing, session.ddl()).map_err(failed)?;
    for statement in &statements {
        session.execute(statement).await.map_err(failed)?;
    }
    session
        .record(migration.version, migration.name)
        .await
        .map_err(failed)?;
    tracing::info!(
        version = migration.version,
        name = migration.name,
        statements = statements.len(),
        "main database migrated"
    );
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
}
