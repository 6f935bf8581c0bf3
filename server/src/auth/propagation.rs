//! Changes of accounts and permissions: applied on the replica that made them, published
//! for the others, and applied there when heard, so a revocation holds on every replica
//! within the change poll interval rather than the token cache's lifetime.

use std::sync::{Arc, Weak};

use manifold_core::Result;

use super::Auth;
use crate::changes::{Change, ChangeHandler, kinds};

impl Auth {
    /// After a write to roles, grants, scopes or role assignments: reloads the ACLs and
    /// forgets the verified tokens (their roles may have changed), here and everywhere.
    pub(super) async fn permissions_changed(&self) -> Result<()> {
        self.permissions.reload().await?;
        self.forget_verified_tokens();
        self.changes.publish(Change::new(kinds::PERMISSIONS)).await
    }

    /// After a sign-out or an API key's revocation (`Some(token id)`), or a change of
    /// users or passwords (`None`: every token): the tokens are checked again on their
    /// next request, here and everywhere.
    pub(super) async fn sessions_ended(&self, token_id: Option<&str>) -> Result<()> {
        let mut change = Change::new(kinds::SESSIONS);
        match token_id {
            Some(jti) => {
                self.sessions.invalidate(jti);
                change = change.subject(jti);
            }
            None => self.forget_verified_tokens(),
        }
        self.changes.publish(change).await
    }
}

/// Applies [`kinds::PERMISSIONS`] and [`kinds::SESSIONS`] heard from other replicas.
pub struct AuthChanges {
    /// Weak: the service publishes through the feed that holds this handler.
    auth: Weak<Auth>,
}

impl AuthChanges {
    /// The handler of `auth`'s changes.
    pub fn new(auth: &Arc<Auth>) -> Self {
        Self {
            auth: Arc::downgrade(auth),
        }
    }
}

#[async_trait::async_trait]
impl ChangeHandler for AuthChanges {
    async fn apply(&self, change: &Change) -> Result<()> {
        let Some(auth) = self.auth.upgrade() else {
            return Ok(());
        };
        match (change.kind.as_str(), change.subject.as_deref()) {
            (kinds::PERMISSIONS, _) => {
                auth.permissions.reload().await?;
                auth.forget_verified_tokens();
            }
            (kinds::SESSIONS, Some(jti)) => auth.sessions.invalidate(jti),
            (kinds::SESSIONS, None) => auth.forget_verified_tokens(),
            _ => {}
        }
        Ok(())
    }

    async fn resync(&self) -> Result<()> {
        if let Some(auth) = self.auth.upgrade() {
            auth.permissions.reload().await?;
            auth.forget_verified_tokens();
        }
        Ok(())
    }
}
