//! Password hashing with Argon2id, off the async runtime: a hash takes tens of
//! milliseconds of CPU and 19 MiB of memory by design. So that a burst of sign-ins
//! cannot take every core and a multiple of 19 MiB per request, at most one hash per
//! core runs at a time; the rest wait their turn, at most [`MAX_WAIT`].

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use manifold_core::{Error, Result};
use tokio::sync::Semaphore;

/// The longest password accepted (Argon2 takes any length; this bounds the work).
pub const MAX_LENGTH: usize = 1024;

/// How long a request waits for its turn to hash before a 503.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// One turn per core: hashing is CPU-bound, so more at once only adds memory.
static TURNS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from)));

/// Run on the hashing thread after each hash (see [`release_memory_with`]).
static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets what the hashing thread calls after each hash to give the hash's memory back to
/// the system: the binary's allocator keeps what a thread frees cached in that thread,
/// and a blocking thread that goes idle never returns it (ADR 0011). Set once; later
/// calls are ignored.
pub fn release_memory_with(release: fn()) {
    let _ = RELEASE.set(release);
}

/// Runs `work` on a blocking thread when a turn is free, waiting at most [`MAX_WAIT`].
async fn in_turn<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    in_turn_within(MAX_WAIT, work).await
}

/// [`in_turn`], waiting at most `wait`.
async fn in_turn_within<T: Send + 'static>(
    wait: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let turn = tokio::time::timeout(wait, TURNS.acquire())
        .await
        .map_err(|_| {
            Error::unavailable(
                "too many passwords are being checked at once; try again in a few seconds",
            )
        })?
        .map_err(|_| Error::internal("the password turns were closed"))?;
    // The turn goes with the work, not the caller: a request cancelled when its client
    // disconnects leaves the hash running, and must not free its turn before it ends.
    tokio::task::spawn_blocking(move || {
        let out = work();
        if let Some(release) = RELEASE.get() {
            release();
        }
        drop(turn);
        out
    })
    .await
    .map_err(|e| Error::internal(format!("password hashing stopped: {e}")))
}

/// A password for an account made without one (`root` on the first start, `manifold users
/// create`): 20 random hexadecimal characters, shown once to whoever made the account.
pub fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..20].to_owned()
}

/// The PHC string (`$argon2id$v=19$…`) of `password` with a fresh salt.
pub async fn hash(password: String) -> Result<String> {
    if password.is_empty() || password.len() > MAX_LENGTH {
        return Err(Error::bad_request(format!(
            "values.password: a password is 1 to {MAX_LENGTH} bytes long"
        )));
    }
    in_turn(move || {
        let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| Error::internal(format!("password salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
    })
    .await?
}

/// Whether `password` matches the stored `hash` (compared in constant time by argon2). A
/// missing or unreadable hash is compared against a dummy one, so an unknown account
/// costs the caller the same time as a wrong password. An error only when no turn came
/// (a 503, so that a busy server does not count as a wrong password).
pub async fn verify(password: String, hash: Option<String>) -> Result<bool> {
    if password.len() > MAX_LENGTH {
        return Ok(false);
    }
    in_turn(move || {
        let stored = hash.as_deref().and_then(|h| PasswordHash::new(h).ok());
        match stored {
            Some(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            None => {
                let dummy = DUMMY.get_or_init(|| {
                    let salt = SaltString::encode_b64(&[0u8; 16]).ok();
                    salt.and_then(|s| {
                        Argon2::default()
                            .hash_password(b"-", &s)
                            .ok()
                            .map(|h| h.to_string())
                    })
                    .unwrap_or_default()
                });
                if let Ok(parsed) = PasswordHash::new(dummy) {
                    let _ = Argon2::default().verify_password(password.as_bytes(), &parsed);
                }
                false
            }
        }
    })
    .await
}

static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_one_hash_per_core_runs_at_once_and_the_rest_wait() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..4 * cores {
            let (running, most) = (running.clone(), most.clone());
            callers.spawn(in_turn(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        let done = callers.join_all().await;
        assert!(done.iter().all(Result::is_ok), "every caller got a turn");
        // Other tests of this binary may hold a turn meanwhile, so fewer is possible.
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=cores).contains(&most),
            "{most} at once on {cores} cores"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_caller_keeps_its_turn_until_its_hash_ends() {
        // A request cancelled by its client's disconnect leaves its hash running; were its
        // turn freed at once, a client could run any number of hashes by hanging up.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let work = |running: Arc<AtomicUsize>, most: Arc<AtomicUsize>| {
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
                running.fetch_sub(1, Ordering::SeqCst);
            }
        };
        let mut cancelled = tokio::task::JoinSet::new();
        for _ in 0..cores {
            cancelled.spawn(in_turn(work(running.clone(), most.clone())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancelled.abort_all();
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..cores {
            callers.spawn(in_turn(work(running.clone(), most.clone())));
        }
        assert!(callers.join_all().await.iter().all(Result::is_ok));
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=cores).contains(&most),
            "{most} at once on {cores} cores"
        );
    }

    #[tokio::test]
    async fn a_caller_that_gets_no_turn_in_time_is_told_to_retry_with_a_503() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let all = TURNS
            .acquire_many(u32::try_from(cores).expect("cores"))
            .await
            .expect("every turn");
        let refused = in_turn_within(Duration::from_millis(100), || ()).await;
        drop(all);
        let error = refused.expect_err("no turn came");
        assert_eq!(error.kind(), manifold_core::ErrorKind::Unavailable);
        assert!(error.to_string().contains("try again"), "{error}");
        in_turn_within(Duration::from_secs(5), || ())
            .await
            .expect("a turn once they are free");
    }

    #[tokio::test]
    async fn a_hash_verifies_and_a_wrong_or_missing_one_does_not() {
        let hash = hash("correct horse".into()).await.expect("hashed");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("a turn")
        );
        assert!(!verify("wrong".into(), Some(hash)).await.expect("a turn"));
        assert!(!verify("anything".into(), None).await.expect("a turn"));
        assert!(hash_is_refused(String::new()).await);
        assert!(hash_is_refused("x".repeat(MAX_LENGTH + 1)).await);
    }

    async fn hash_is_refused(password: String) -> bool {
        hash(password).await.is_err()
    }
}
