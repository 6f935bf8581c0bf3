//! Migration 5: the record of plugins' migrations (`_manifold_plugin_migrations`), one row
//! per plugin and version, beside Manifold's own `_manifold_migrations` rather than in it,
//! so that an older Manifold reading its highest version never sees a plugin's
//! (docs/decisions/0018-plugin-migrations.md). Written like the version table itself, with
//! the time of each run defaulted by the database; a frozen copy, like the earlier
//! migrations'.

use manifold_core::Result;
use manifold_core::schema::Collection;

use super::{Ddl, Migration, PLUGIN_MIGRATIONS_TABLE};

/// The migration.
pub(super) const MIGRATION: Migration = Migration {
    version: 5,
    name: "plugin migrations",
    plan,
};

/// Makes the table unless a partial run (MySQL/MariaDB, whose DDL commits by itself)
/// already made it.
fn plan(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    if existing.iter().any(|c| c.name() == PLUGIN_MIGRATIONS_TABLE) {
        return Ok(Vec::new());
    }
    let table = ddl.quoted_table(PLUGIN_MIGRATIONS_TABLE);
    Ok(vec![match ddl {
        Ddl::Sqlite => format!(
            "CREATE TABLE {table} (\"plugin\" VARCHAR(255) NOT NULL, \
             \"version\" BIGINT NOT NULL, \"name\" VARCHAR(255) NOT NULL, \
             \"appliedAt\" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
             PRIMARY KEY (\"plugin\", \"version\"))"
        ),
        Ddl::Postgres { .. } => format!(
            "CREATE TABLE {table} (\"plugin\" VARCHAR(255) NOT NULL, \
             \"version\" BIGINT NOT NULL, \"name\" VARCHAR(255) NOT NULL, \
             \"appliedAt\" TIMESTAMPTZ NOT NULL DEFAULT now(), \
             PRIMARY KEY (\"plugin\", \"version\"))"
        ),
        // The session's time zone is UTC (the connector sets it).
        Ddl::MySql => format!(
            "CREATE TABLE {table} (`plugin` VARCHAR(255) NOT NULL, \
             `version` BIGINT NOT NULL, `name` VARCHAR(255) NOT NULL, \
             `appliedAt` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), \
             PRIMARY KEY (`plugin`, `version`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    }])
}
