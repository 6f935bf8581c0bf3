//! Sharing a source's `maxConnectionsTotal` among the live replicas of one main database.
//!
//! Every replica writes a heartbeat to `_manifold_replicas` each [`BEAT`]; a replica whose
//! heartbeat is older than [`LEASE`] is dead, and its rows and claims are deleted by the
//! next replica to look. A replica may open a source's connections only up to its claim in
//! `_manifold_connection_claims`, and the claims of live replicas never add up to more than
//! the total:
//!
//! - a claim grows only in a transaction holding the main database's lock on the budget,
//!   which checks what the other live replicas claim, and the replica's gate
//!   ([`ConnectionShare`]) grows after that commits;
//! - a claim shrinks only after the gate has shrunk and the idle connections above it are
//!   closed;
//! - a replica that cannot write its heartbeat for [`FENCE_AFTER`] shrinks every gate to
//!   0 before the others may count it dead and take its connections.
//!
//! Each live replica's fair part is the total divided by the number of live replicas (the
//! remainder to the first ones by id). A replica above its part gives back on its next
//! step; one below it takes what is free. A replica that joins a source whose total is in
//! use therefore serves it after at most two heartbeats. Liveness compares the replicas'
//! wall clocks, which must agree to well under a [`LEASE`] (NTP does).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use manifold_core::connection_share::{ConnectionBudget, ConnectionShare};
use manifold_core::filter::parse_filter;
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteFilter, WriteKind, WriteValues};
use manifold_core::{DataSource, Error, Result};
use serde_json::{Value as Json, json};

/// How often a replica writes its heartbeat and rebalances its shares.
pub const BEAT: Duration = Duration::from_secs(1);

/// How long after its last heartbeat a replica counts as dead.
pub const LEASE: Duration = Duration::from_secs(5);

/// How long a replica goes without writing its heartbeat before it stops using its
/// shares: early enough that its gates are shut before the others count it dead.
pub const FENCE_AFTER: Duration = Duration::from_secs(3);

const REPLICAS: &str = "_manifold_replicas";
const CLAIMS: &str = "_manifold_connection_claims";

/// The key of the main database's lock that claims grow under.
const LOCK_KEY: &str = "manifold:connection-budget";

/// This replica's side of the budget: its shares, and the step that keeps them within the
/// totals.
pub struct ReplicaBudget {
    main: Arc<DataSource>,
    replica: String,
    shares: Mutex<HashMap<String, Weak<ConnectionShare>>>,
    /// One step at a time.
    stepping: tokio::sync::Mutex<()>,
    last_beat: Mutex<Instant>,
}

impl ReplicaBudget {
    /// The budget of a replica of `main` (migration 3 made its tables). Call
    /// [`ReplicaBudget::start`] to begin the heartbeats.
    pub fn new(main: Arc<DataSource>) -> Arc<Self> {
        Arc::new(Self {
            main,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            shares: Mutex::new(HashMap::new()),
            stepping: tokio::sync::Mutex::new(()),
            last_beat: Mutex::new(Instant::now()),
        })
    }

    /// Writes a heartbeat and rebalances every [`BEAT`] until the budget is dropped.
    pub fn start(self: &Arc<Self>) {
        let budget = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(BEAT);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(budget) = budget.upgrade() else {
                    return;
                };
                budget.step_logged().await;
            }
        });
    }

    /// Gives back every claim of this replica (at shutdown, after the pools closed), so
    /// the others need not wait out the lease.
    pub async fn leave(&self) {
        let _one = self.stepping.lock().await;
        let outcome = async {
            for table in [CLAIMS, REPLICAS] {
                let rows = self.main.internal_table(table)?;
                let mine = parse_filter(rows.collection(), &json!({ "replica": &self.replica }))?;
                rows.destroy(mine.as_ref()).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cannot give back this replica's connection claims");
        }
    }

    async fn step_logged(&self) {
        match self.step().await {
            Ok(()) => *self.last_beat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now(),
            Err(e) => {
                let silent = self
                    .last_beat
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed();
                tracing::warn!(error = %e, "cannot write this replica's heartbeat");
                if silent >= FENCE_AFTER {
                    for share in self.live_shares().into_values() {
                        share.resize(0).await;
                    }
                }
            }
        }
    }

    /// The shares still in use, by source; forgets the given-up ones.
    fn live_shares(&self) -> BTreeMap<String, Arc<ConnectionShare>> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        shares.retain(|_, share| share.upgrade().is_some_and(|s| !s.is_given_up()));
        shares
            .iter()
            .filter_map(|(source, share)| Some((source.clone(), share.upgrade()?)))
            .collect()
    }

    /// One heartbeat: records this replica as live, drops the dead ones, grows the claims
    /// that may grow, then shrinks the gates that must and lowers their claims after.
    async fn step(&self) -> Result<()> {
        let _one = self.stepping.lock().await;
        let shares = self.live_shares();
        let unit = self.main.begin_locked(LOCK_KEY).await?.ok_or_else(|| {
            Error::internal("the main database offers no lock to share connections under")
        })?;
        let replicas = unit.internal_table(REPLICAS)?;
        let claims = unit.internal_table(CLAIMS)?;
        let now = chrono::Utc::now().timestamp_millis();
        let live = beat(&replicas, &self.replica, now).await?;
        let mut held: Vec<Claim> = Vec::new();
        let mut gone: Vec<Json> = Vec::new();
        for row in claims.find(&FindOptions::default()).await? {
            let Some(claim) = Claim::read(&row) else {
                continue;
            };
            let mine_and_given_up =
                claim.replica == self.replica && !shares.contains_key(&claim.source);
            if mine_and_given_up || !live.contains(&claim.replica) {
                gone.extend(row.get("id").cloned());
            } else {
                held.push(claim);
            }
        }
        if !gone.is_empty() {
            let filter = parse_filter(claims.collection(), &json!({ "id": { "$in": gone } }))?;
            claims.destroy(filter.as_ref()).await?;
        }

        let rank = live.iter().position(|r| *r == self.replica).unwrap_or(0);
        let mut grow = Vec::new();
        let mut shrink = Vec::new();
        for (source, share) in &shares {
            let total = share.total();
            let fair = fair_part(total, live.len(), rank);
            let mine = held
                .iter()
                .find(|c| c.replica == self.replica && c.source == *source);
            let others: u32 = held
                .iter()
                .filter(|c| c.replica != self.replica && c.source == *source)
                .map(|c| c.connections)
                .sum();
            let target = fair.min(total.saturating_sub(others));
            let claimed = mine.map_or(0, |c| c.connections);
            if target > claimed {
                set_claim(&claims, &self.replica, source, target, mine.is_some()).await?;
                grow.push((share.clone(), target));
            } else if target < claimed {
                shrink.push((source.clone(), share.clone(), target));
            } else if share.size() < claimed {
                // A source removed and added again before its old claim was given back.
                grow.push((share.clone(), claimed));
            }
        }
        unit.commit().await?;

        for (share, size) in grow {
            share.resize(size).await;
        }
        if !shrink.is_empty() {
            let claims = self.main.internal_table(CLAIMS)?;
            for (source, share, size) in shrink {
                share.resize(size).await;
                set_claim(&claims, &self.replica, &source, size, true).await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ConnectionBudget for ReplicaBudget {
    async fn share(&self, source: &str, total: u32) -> Result<Arc<ConnectionShare>> {
        let existing = self
            .live_shares()
            .remove(source)
            .inspect(|share| share.set_total(total));
        let share = existing.unwrap_or_else(|| {
            let share = ConnectionShare::new(total);
            self.shares
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(source.to_owned(), Arc::downgrade(&share));
            share
        });
        // Sized now rather than at the next heartbeat: the connector checks a connection
        // as it opens.
        self.step_logged().await;
        Ok(share)
    }
}

/// One replica's claim on one source's total.
struct Claim {
    replica: String,
    source: String,
    connections: u32,
}

impl Claim {
    fn read(row: &Record) -> Option<Self> {
        let text = |key: &str| row.get(key).and_then(Json::as_str).map(str::to_owned);
        Some(Self {
            replica: text("replica")?,
            source: text("source")?,
            connections: u32::try_from(as_i64(row.get("connections"))?).ok()?,
        })
    }
}

/// The part of `total` that the replica at `rank` among `live` replicas may hold: an even
/// split, the remainder going to the first.
fn fair_part(total: u32, live: usize, rank: usize) -> u32 {
    let live = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
    let rank = u32::try_from(rank).unwrap_or(u32::MAX);
    total / live + u32::from(rank < total % live)
}

/// Writes `replica`'s heartbeat, deletes the rows of dead replicas, and returns the live
/// ones' ids, sorted.
async fn beat(replicas: &Arc<dyn Repository>, replica: &str, now: i64) -> Result<Vec<String>> {
    let collection = replicas.collection();
    let mine = parse_filter(collection, &json!({ "replica": replica }))?;
    let seen = values(collection, json!({ "seen": now }), WriteKind::Update)?;
    if replicas.update(mine.as_ref(), &seen).await?.is_empty() {
        let row = values(
            collection,
            json!({ "replica": replica, "seen": now }),
            WriteKind::Create,
        )?;
        replicas.create(&[row]).await?;
    }
    let cutoff = now - i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
    let dead = parse_filter(collection, &json!({ "seen": { "$lt": cutoff } }))?;
    replicas.destroy(dead.as_ref()).await?;
    let mut live: Vec<String> = replicas
        .find(&FindOptions::default())
        .await?
        .iter()
        .filter_map(|r| r.get("replica").and_then(Json::as_str).map(str::to_owned))
        .collect();
    live.sort();
    live.dedup();
    Ok(live)
}

/// Sets `replica`'s claim on `source` to `connections`.
async fn set_claim(
    claims: &Arc<dyn Repository>,
    replica: &str,
    source: &str,
    connections: u32,
    exists: bool,
) -> Result<()> {
    let collection = claims.collection();
    if exists {
        let filter = parse_filter(collection, &json!({ "replica": replica, "source": source }))?;
        let set = values(
            collection,
            json!({ "connections": connections }),
            WriteKind::Update,
        )?;
        claims.update(filter.as_ref(), &set).await?;
    } else {
        let row = values(
            collection,
            json!({ "replica": replica, "source": source, "connections": connections }),
            WriteKind::Create,
        )?;
        claims.create(&[row]).await?;
    }
    Ok(())
}

fn values(
    collection: &manifold_core::schema::Collection,
    row: Json,
    kind: WriteKind,
) -> Result<WriteValues> {
    WriteValues::from_json(collection, &row, kind, &WriteFilter::default(), "claim")
}

/// A JSON number or numeric string as an i64.
fn as_i64(value: Option<&Json>) -> Option<i64> {
    match value? {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::fair_part;

    #[test]
    fn the_fair_parts_add_up_to_the_total() {
        for total in [1, 7, 8, 10] {
            for live in 1..=12 {
                let parts: u32 = (0..live).map(|rank| fair_part(total, live, rank)).sum();
                assert_eq!(parts, total, "total {total} among {live}");
            }
        }
        assert_eq!(fair_part(8, 2, 0), 4);
        assert_eq!(fair_part(8, 3, 0), 3);
        assert_eq!(fair_part(8, 3, 2), 2);
        assert_eq!(fair_part(2, 3, 2), 0);
    }
}
