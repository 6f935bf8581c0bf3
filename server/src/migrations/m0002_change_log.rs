//! Migration 2: the change log (`_manifold_changes`), through which replicas sharing the
//! main database hear of each other's changes (`crate::changes`). Its definition is a
//! frozen copy, like migration 1's.

use manifold_core::Result;
use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::{Collection, FieldType};

use super::{Ddl, Migration};

/// The migration.
pub(super) const MIGRATION: Migration = Migration {
    version: 2,
    name: "change log",
    plan,
};

const TABLE: &str = "_manifold_changes";

/// Makes the table unless a partial run (MySQL/MariaDB, whose DDL commits by itself)
/// already made it.
fn plan(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    if existing.iter().any(|c| c.name() == TABLE) {
        return Ok(Vec::new());
    }
    ddl.create_table(&change_log())
}

/// An increasing id, what changed, which replica changed it and when (milliseconds since
/// the epoch, for pruning).
fn change_log() -> CollectionDefinition {
    let required = |name: &str, kind: FieldType| FieldDefinition {
        allow_null: false,
        ..FieldDefinition::new(name, kind)
    };
    CollectionDefinition {
        name: TABLE.into(),
        auto_gen_id: true,
        timestamps: false,
        fields: vec![
            required("kind", FieldType::String),
            FieldDefinition::new("source", FieldType::String),
            FieldDefinition::new("subject", FieldType::String),
            required("origin", FieldType::String),
            required("at", FieldType::BigInt),
        ],
    }
}
