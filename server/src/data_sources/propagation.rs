//! Changes of data sources and their schemas made on other replicas, applied here.

use std::sync::{Arc, Weak};

use manifold_core::Result;

use super::registry::Registry;
use crate::changes::{Change, ChangeHandler, kinds};

/// Applies [`kinds::DATA_SOURCE`], [`kinds::DATA_SOURCE_REFRESH`] and [`kinds::SCHEMA`].
pub struct SourceChanges {
    /// Weak: the registry publishes through the feed that holds this handler.
    registry: Weak<Registry>,
}

impl SourceChanges {
    /// The handler of `registry`'s changes.
    pub fn new(registry: &Arc<Registry>) -> Self {
        Self {
            registry: Arc::downgrade(registry),
        }
    }
}

#[async_trait::async_trait]
impl ChangeHandler for SourceChanges {
    async fn apply(&self, change: &Change) -> Result<()> {
        let (Some(registry), Some(key)) = (self.registry.upgrade(), change.source.as_deref())
        else {
            return Ok(());
        };
        match change.kind.as_str() {
            kinds::DATA_SOURCE => registry.reconcile(key).await,
            kinds::DATA_SOURCE_REFRESH => registry.refresh_here(key).await.map(|_| ()),
            kinds::SCHEMA => {
                // A load under way applies them again when it ends.
                registry.declarations_changed(key);
                match registry.manager().get(key) {
                    Some(source) => registry.declarations().apply(&source).await,
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    async fn resync(&self) -> Result<()> {
        let Some(registry) = self.registry.upgrade() else {
            return Ok(());
        };
        registry.reconcile_all().await?;
        for source in registry.manager().list() {
            registry.declarations().apply(&source).await?;
        }
        Ok(())
    }
}
