//! Migration 3: the replicas' heartbeats (`_manifold_replicas`) and their claims on the
//! connection totals of sources (`_manifold_connection_claims`), through which replicas
//! share a source's `maxConnectionsTotal` (`crate::connection_budget`). Frozen copies, like
//! the earlier migrations'.

use manifold_core::Result;
use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::{Collection, FieldType};

use super::{Ddl, Migration};

/// The migration.
pub(super) const MIGRATION: Migration = Migration {
    version: 3,
    name: "connection claims",
    plan,
};

const REPLICAS: &str = "_manifold_replicas";
const CLAIMS: &str = "_manifold_connection_claims";

/// Makes each table unless a partial run (MySQL/MariaDB, whose DDL commits by itself)
/// already made it.
fn plan(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    let mut statements = Vec::new();
    for table in [replicas(), claims()] {
        if !existing.iter().any(|c| c.name() == table.name) {
            statements.extend(ddl.create_table(&table)?);
        }
    }
    Ok(statements)
}

fn required(name: &str, kind: FieldType) -> FieldDefinition {
    FieldDefinition {
        allow_null: false,
        ..FieldDefinition::new(name, kind)
    }
}

/// One row per running replica: its id and its last heartbeat (milliseconds since the
/// epoch).
fn replicas() -> CollectionDefinition {
    CollectionDefinition {
        name: REPLICAS.into(),
        auto_gen_id: true,
        timestamps: false,
        fields: vec![
            required("replica", FieldType::String),
            required("seen", FieldType::BigInt),
        ],
    }
}

/// How many of a source's connections a replica holds the right to open.
fn claims() -> CollectionDefinition {
    CollectionDefinition {
        name: CLAIMS.into(),
        auto_gen_id: true,
        timestamps: false,
        fields: vec![
            required("replica", FieldType::String),
            required("source", FieldType::String),
            required("connections", FieldType::Integer),
        ],
    }
}
