//! Slows and then refuses repeated failed sign-ins, per account and per client address,
//! so a password cannot be guessed at the speed of the network.
//!
//! The counts live in the shared cache ([`crate::cache`]): in process by default, and in
//! Redis when it is configured, where every replica sees the others' failures, so a
//! guesser cannot multiply its attempts by spreading them over the replicas. A count
//! expires a lockout after the last failure it counted.

use std::net::IpAddr;
use std::time::Duration;

use manifold_core::Result;

use crate::cache::{Cache, CacheNamespace};

/// The cache namespace of the failure counts.
const NAMESPACE: &str = "auth.sign-in-failures";

/// Failure counts of the recent past.
pub struct Throttle {
    max_failures: u32,
    lockout: Duration,
    failures: CacheNamespace,
}

/// What the throttle says about a sign-in attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, after waiting this long (zero on a clean record).
    Proceed(Duration),
    /// Refuse with 429 for this much longer.
    Refuse(Duration),
}

impl Throttle {
    /// A throttle that refuses after `max_failures` for `lockout`, counting in `cache`.
    pub fn new(max_failures: u32, lockout: Duration, cache: &Cache) -> Self {
        Self {
            max_failures: max_failures.max(1),
            lockout: lockout.max(Duration::from_secs(1)),
            failures: cache.namespace(NAMESPACE),
        }
    }

    fn keys(account: &str, peer: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("account:{}", account.to_lowercase())];
        if let Some(ip) = peer {
            keys.push(format!("peer:{ip}"));
        }
        keys
    }

    /// Whether an attempt for `account` from `peer` may go on. A cache that cannot be
    /// asked is an error (a 503): never a way around the count.
    pub async fn check(&self, account: &str, peer: Option<IpAddr>) -> Result<Verdict> {
        let mut worst = 0;
        for key in Self::keys(account, peer) {
            let count = self.failures.get::<u64>(&key).await?.unwrap_or(0);
            if count >= u64::from(self.max_failures) {
                if let Some(left) = self.failures.time_to_live(&key).await? {
                    return Ok(Verdict::Refuse(left));
                }
            } else {
                worst = worst.max(count);
            }
        }
        // Each failure before the lockout adds a quarter of a second.
        let worst = u32::try_from(worst).unwrap_or(u32::MAX);
        Ok(Verdict::Proceed(Duration::from_millis(250) * worst))
    }

    /// Records a failed attempt.
    pub async fn failed(&self, account: &str, peer: Option<IpAddr>) -> Result<()> {
        for key in Self::keys(account, peer) {
            self.failures.increment(&key, Some(self.lockout)).await?;
        }
        Ok(())
    }

    /// Clears the account's record after a successful sign-in.
    pub async fn succeeded(&self, account: &str) -> Result<()> {
        let key = format!("account:{}", account.to_lowercase());
        Ok(self.failures.delete(&key).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheOptions;

    #[tokio::test]
    async fn refuses_after_the_limit_then_forgives() {
        let cache = Cache::open(&CacheOptions::default()).await.expect("cache");
        let t = Throttle::new(2, Duration::from_secs(1), &cache);
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            t.check("ann", ip).await.ok(),
            Some(Verdict::Proceed(Duration::ZERO))
        );
        t.failed("ann", ip).await.expect("counted");
        assert_eq!(
            t.check("ANN", None).await.ok(),
            Some(Verdict::Proceed(Duration::from_millis(250)))
        );
        t.failed("ann", ip).await.expect("counted");
        assert!(matches!(t.check("ann", None).await, Ok(Verdict::Refuse(_))));
        assert!(
            matches!(t.check("bob", ip).await, Ok(Verdict::Refuse(_))),
            "the address too"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(t.check("ann", ip).await, Ok(Verdict::Proceed(_))));
    }
}
