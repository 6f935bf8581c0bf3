//! A count of large requests that have finished and let go of their memory, so the binary
//! can ask its allocator to hand that memory back to the system (`main.rs`; ADR 0011).

use std::sync::atomic::{AtomicU64, Ordering};

/// A request body at least this large counts as large (1 MiB).
pub(super) const LARGE_BODY: usize = 1024 * 1024;

static FINISHED: AtomicU64 = AtomicU64::new(0);

/// How many large requests have finished since the process started: a streamed answer
/// that ended (sent, failed or abandoned), or a request with a body of at least 1 MiB.
pub fn finished() -> u64 {
    FINISHED.load(Ordering::Relaxed)
}

/// Counts one large request as finished.
pub(super) fn note() {
    FINISHED.fetch_add(1, Ordering::Relaxed);
}

/// Counts a large request as finished when dropped: held by a streamed body, so the count
/// moves however the body ends.
pub(super) struct Finished;

impl Drop for Finished {
    fn drop(&mut self) {
        note();
    }
}
