//! Migration 4: the runs of scheduled jobs (`_manifold_job_runs`), one row per job and
//! tick. Its primary key is what lets exactly one replica run each tick
//! (`crate::scheduler`): the replica whose insert wins runs the job. A frozen copy, like
//! the earlier migrations'.

use manifold_core::Result;
use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::{Collection, FieldType};

use super::{Ddl, Migration};

/// The migration.
pub(super) const MIGRATION: Migration = Migration {
    version: 4,
    name: "job runs",
    plan,
};

const TABLE: &str = "_manifold_job_runs";

/// Makes the table unless a partial run (MySQL/MariaDB, whose DDL commits by itself)
/// already made it.
fn plan(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    if existing.iter().any(|c| c.name() == TABLE) {
        return Ok(Vec::new());
    }
    ddl.create_table(&job_runs())
}

/// Keyed by the job's name and its tick (milliseconds since the epoch, the scheduled time
/// rather than the time it ran, so replicas whose clocks differ claim the same row); who
/// ran it, when it started and finished (milliseconds), and how it ended (`running`, `ok`,
/// `failed`).
fn job_runs() -> CollectionDefinition {
    let key = |name: &str, kind: FieldType| FieldDefinition {
        primary_key: true,
        allow_null: false,
        ..FieldDefinition::new(name, kind)
    };
    let required = |name: &str, kind: FieldType| FieldDefinition {
        allow_null: false,
        ..FieldDefinition::new(name, kind)
    };
    CollectionDefinition {
        name: TABLE.into(),
        auto_gen_id: false,
        timestamps: false,
        fields: vec![
            key("job", FieldType::String),
            key("tick", FieldType::BigInt),
            required("owner", FieldType::String),
            required("startedAt", FieldType::BigInt),
            FieldDefinition::new("finishedAt", FieldType::BigInt),
            required("status", FieldType::String),
        ],
    }
}
