//! The registered sources, held by the manager and shared weakly with every source it
//! holds, so a relation declared to another source reaches that source at request time
//! with the same answers a request routed there gets.

use std::sync::Arc;

use dashmap::DashMap;

use super::manager::DataSourceStatus;
use super::source::DataSource;
use crate::error::{Error, Result};

/// Every added source by key, and what is known of sources not (or no longer) serving.
#[derive(Default)]
pub(super) struct SourceTable {
    pub(super) sources: DashMap<String, Arc<DataSource>>,
    pub(super) statuses: DashMap<String, DataSourceStatus>,
}

impl SourceTable {
    /// Where the source called `key` is: its recorded status, `Loaded` for a source added
    /// without one (main), `None` when nothing is known of it.
    pub(super) fn status(&self, key: &str) -> Option<DataSourceStatus> {
        self.statuses.get(key).map(|s| s.clone()).or_else(|| {
            self.sources
                .contains_key(key)
                .then_some(DataSourceStatus::Loaded)
        })
    }

    /// The source called `key`, or the error a request for it should get: 404 when no such
    /// source is registered, 503 while it loads or after it failed or was disabled.
    pub(super) fn route(&self, key: &str) -> Result<Arc<DataSource>> {
        if let Some(source) = self.sources.get(key) {
            return Ok(source.clone());
        }
        Err(match self.status(key) {
            None => Error::not_found(format!("data source {key} does not exist"))
                .with_message_id("data-source-not-found", vec![("key", key.to_owned())]),
            Some(DataSourceStatus::Disabled) => {
                Error::unavailable(format!("data source {key} is disabled"))
            }
            Some(DataSourceStatus::LoadingFailed(m) | DataSourceStatus::ReloadingFailed(m)) => {
                Error::unavailable(format!("data source {key} failed to load: {m}"))
            }
            Some(_) => {
                Error::unavailable(format!("data source {key} is loading; retry in a moment"))
            }
        })
    }
}
