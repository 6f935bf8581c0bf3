//! The audit trail: its table (a migration of the plugin's own) and what is read from
//! and written to it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::events::WriteEvent;
use manifold_core::filter::parse_filter;
use manifold_core::query::{FindOptions, parse_sort};
use manifold_core::repository::{WriteFilter, WriteKind};
use manifold_core::schema::{Collection, FieldType};
use manifold_core::{DataSource, Record, Repository, Result, WriteValues};
use manifold_server::migrations::{Ddl, Migration};
use serde_json::{Value as Json, json};

/// The table: internal to main (its name starts with `_`), so never a resource itself.
const TABLE: &str = "_audit_log";

/// The plugin's first migration: the audit table.
pub const MIGRATION: Migration = Migration {
    version: 1,
    name: "audit log",
    plan: create_log,
};

/// Plans from the tables as they are: nothing when a partial run already made it.
fn create_log(existing: &[Collection], ddl: &Ddl) -> Result<Vec<String>> {
    if existing.iter().any(|c| c.name() == TABLE) {
        return Ok(Vec::new());
    }
    ddl.create_table(&CollectionDefinition {
        name: TABLE.into(),
        auto_gen_id: true,
        timestamps: true,
        fields: vec![
            FieldDefinition::new("dataSource", FieldType::String),
            FieldDefinition::new("collectionName", FieldType::String),
            FieldDefinition::new("recordKey", FieldType::String),
            FieldDefinition::new("action", FieldType::String),
        ],
    })
}

/// One row of the trail, as the API shows it.
pub type AuditRow = Record;

/// Reads and writes the trail in the main database.
#[derive(Clone)]
pub struct AuditLog {
    table: Arc<dyn Repository>,
}

impl AuditLog {
    /// The trail of `main`, whose migrations made the table.
    pub fn open(main: &DataSource) -> Result<Self> {
        Ok(Self {
            table: main.internal_table(TABLE)?,
        })
    }

    fn collection(&self) -> &Collection {
        self.table.collection()
    }

    /// Records that `event`'s row was created in data source `source`.
    pub async fn record(&self, source: &str, event: &WriteEvent) -> Result<()> {
        let key = event
            .collection
            .single_key()
            .and_then(|k| event.record.get(&k.name))
            .map(|k| match k {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            });
        let row = WriteValues::from_json(
            self.collection(),
            &json!({
                "dataSource": source,
                "collectionName": event.collection.name(),
                "recordKey": key,
                "action": "create",
            }),
            WriteKind::Create,
            &WriteFilter::default(),
            "audit",
        )?;
        self.table.create(&[row]).await?;
        Ok(())
    }

    /// The trail of one record, oldest first.
    pub async fn history(
        &self,
        source: &str,
        collection: &str,
        key: &str,
    ) -> Result<Vec<AuditRow>> {
        let filter = json!({
            "dataSource": source,
            "collectionName": collection,
            "recordKey": key,
        });
        self.find(&filter, "id", None).await
    }

    /// The newest `limit` rows, newest first.
    pub async fn recent(&self, limit: u64) -> Result<Vec<AuditRow>> {
        self.find(&json!({}), "-id", Some(limit)).await
    }

    async fn find(&self, filter: &Json, sort: &str, limit: Option<u64>) -> Result<Vec<AuditRow>> {
        let options = FindOptions {
            filter: parse_filter(self.collection(), filter)?,
            sort: parse_sort(self.collection(), &[sort.to_owned()])?,
            limit,
            ..FindOptions::default()
        };
        self.table.find(&options).await
    }

    /// How many rows the trail holds.
    pub async fn count(&self) -> Result<u64> {
        self.table.count(None).await
    }

    /// Deletes the rows written before `cutoff`; returns how many.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let filter = parse_filter(
            self.collection(),
            &json!({ "createdAt": { "$lt": cutoff.to_rfc3339() } }),
        )?;
        match filter {
            Some(filter) => self.table.destroy(Some(&filter)).await,
            None => Ok(0),
        }
    }
}
