//! Slows and then refuses repeated failed sign-ins, per account and per client address,
//! so a password cannot be guessed at the speed of the network.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::sync::Cache;

/// Failure counts of the recent past, in memory (per process; see docs/security.md).
pub struct Throttle {
    max_failures: u32,
    lockout: Duration,
    failures: Cache<String, (u32, Instant)>,
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
    /// A throttle that refuses after `max_failures` for `lockout`.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            lockout,
            failures: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(lockout.max(Duration::from_secs(1)))
                .build(),
        }
    }

    fn keys(account: &str, peer: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("account:{}", account.to_lowercase())];
        if let Some(ip) = peer {
            keys.push(format!("peer:{ip}"));
        }
        keys
    }

    /// Whether an attempt for `account` from `peer` may go on.
    pub fn check(&self, account: &str, peer: Option<IpAddr>) -> Verdict {
        let mut worst = 0;
        for key in Self::keys(account, peer) {
            if let Some((count, last)) = self.failures.get(&key) {
                if count >= self.max_failures {
                    let elapsed = last.elapsed();
                    if elapsed < self.lockout {
                        return Verdict::Refuse(self.lockout - elapsed);
                    }
                    self.failures.invalidate(&key);
                } else {
                    worst = worst.max(count);
                }
            }
        }
        // Each failure before the lockout adds a quarter of a second.
        Verdict::Proceed(Duration::from_millis(250) * worst)
    }

    /// Records a failed attempt.
    pub fn failed(&self, account: &str, peer: Option<IpAddr>) {
        for key in Self::keys(account, peer) {
            let count = self.failures.get(&key).map_or(0, |(c, _)| c);
            self.failures.insert(key, (count + 1, Instant::now()));
        }
    }

    /// Clears the account's record after a successful sign-in.
    pub fn succeeded(&self, account: &str) {
        self.failures
            .invalidate(&format!("account:{}", account.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_limit_then_forgives() {
        let t = Throttle::new(2, Duration::from_millis(50));
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(t.check("ann", ip), Verdict::Proceed(Duration::ZERO));
        t.failed("ann", ip);
        assert_eq!(
            t.check("ANN", None),
            Verdict::Proceed(Duration::from_millis(250))
        );
        t.failed("ann", ip);
        assert!(matches!(t.check("ann", None), Verdict::Refuse(_)));
        assert!(
            matches!(t.check("bob", ip), Verdict::Refuse(_)),
            "the address too"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(t.check("ann", ip), Verdict::Proceed(_)));
    }
}
