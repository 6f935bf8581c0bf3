//! The change log: one row per change of shared state, in the main database.

use std::sync::Arc;
use std::time::Duration;

use manifold_core::filter::parse_filter;
use manifold_core::query::{FindOptions, add_key_tiebreaker, parse_sort};
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::{DataSource, Error, Result};
use serde_json::{Value as Json, json};

use super::Change;
use crate::pruning::Pruner;

/// The table of the change log in the main database.
pub const CHANGES_TABLE: &str = "_manifold_changes";

/// How long entries are kept. A replica that could not read the log for longer than
/// [`RESYNC_AFTER`] re-reads everything instead, so entries it missed may be gone.
pub const RETENTION: Duration = Duration::from_secs(60 * 60);

/// After this long without a successful read, a replica re-reads all shared state rather
/// than trust the log to still hold what it missed.
pub const RESYNC_AFTER: Duration = Duration::from_secs(10 * 60);

/// How often one process deletes expired entries (after a publish).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One entry as read back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its place in the log.
    pub id: i64,
    /// The replica that made the change.
    pub origin: String,
    /// What changed.
    pub change: Change,
}

/// Reads and writes [`CHANGES_TABLE`].
pub struct ChangeLog {
    entries: Arc<dyn Repository>,
    pruner: Pruner,
}

impl ChangeLog {
    /// Opens the log in `main` (made by migration 2).
    pub async fn open(main: &DataSource) -> Result<Self> {
        let entries = main.internal_table(CHANGES_TABLE)?;
        Ok(Self {
            pruner: Pruner::new(entries.clone(), "at", RETENTION, PRUNE_EVERY),
            entries,
        })
    }

    /// Appends `change` made by `origin`; returns its id.
    pub async fn append(&self, change: &Change, origin: &str) -> Result<i64> {
        let row = json!({
            "kind": change.kind,
            "source": change.source,
            "subject": change.subject,
            "origin": origin,
            "at": chrono::Utc::now().timestamp_millis(),
        });
        let values = WriteValues::from_json(
            self.entries.collection(),
            &row,
            WriteKind::Create,
            &WriteFilter::default(),
            "change",
        )?;
        let created = self.entries.create(&[values]).await?;
        created
            .first()
            .and_then(|r| as_i64(r.get("id")))
            .ok_or_else(|| Error::internal("the change log gave no id"))
    }

    /// The entries after `id`, oldest first, at most `limit`.
    pub async fn after(&self, id: i64, limit: u64) -> Result<Vec<Entry>> {
        let collection = self.entries.collection();
        let mut options = FindOptions {
            filter: parse_filter(collection, &json!({ "id": { "$gt": id } }))?,
            limit: Some(limit),
            ..FindOptions::default()
        };
        add_key_tiebreaker(collection, &mut options.sort);
        Ok(self
            .entries
            .find(&options)
            .await?
            .iter()
            .filter_map(entry)
            .collect())
    }

    /// The id of the newest entry, 0 when the log is empty.
    pub async fn latest(&self) -> Result<i64> {
        let collection = self.entries.collection();
        let options = FindOptions {
            sort: parse_sort(collection, &["-id".into()])?,
            limit: Some(1),
            ..FindOptions::default()
        };
        let newest = self.entries.find(&options).await?;
        Ok(newest
            .first()
            .and_then(|r| as_i64(r.get("id")))
            .unwrap_or(0))
    }

    /// Deletes entries older than [`RETENTION`], at most once a [`PRUNE_EVERY`] per process.
    pub async fn prune(&self) -> Result<()> {
        self.pruner.prune().await
    }
}

fn entry(row: &Record) -> Option<Entry> {
    let text = |key: &str| row.get(key).and_then(Json::as_str).map(str::to_owned);
    Some(Entry {
        id: as_i64(row.get("id"))?,
        origin: text("origin")?,
        change: Change {
            kind: text("kind")?,
            source: text("source"),
            subject: text("subject"),
        },
    })
}

/// A JSON number or numeric string (a big integer may come back as either) as an i64.
fn as_i64(value: Option<&Json>) -> Option<i64> {
    match value? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}
