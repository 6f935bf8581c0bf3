//! The one place that calls into the allocator by hand: after a large request, each
//! runtime thread asks mimalloc to hand the pages that request freed back to the system,
//! and so does a blocking thread after a password hash (ADR 0011). Without it a thread
//! keeps them cached, so the process stays at its peak long after the request.
#![allow(unsafe_code)]

use std::cell::Cell;

use manifold_server::http::large_requests;

unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)`: frees the calling thread's empty pages and
    /// purges what is free; `force` also collects pages other threads freed into this one.
    fn mi_collect(force: bool);
}

thread_local! {
    /// The large-request count this thread last collected at.
    static COLLECTED_AT: Cell<u64> = const { Cell::new(0) };
}

/// Runs on every runtime thread as it goes idle: collects once per large request that
/// finished since this thread last did, and does nothing otherwise (an atomic load).
pub fn collect_if_due() {
    let finished = large_requests::finished();
    if COLLECTED_AT.get() == finished {
        return;
    }
    COLLECTED_AT.set(finished);
    collect_now();
}

/// Hands what the calling thread freed back to the system now: set as the password
/// hasher's release (a hash's 19 MiB would otherwise stay with an idle blocking thread).
pub fn collect_now() {
    // SAFETY: `mi_collect` takes no pointers and only walks the calling thread's own heap
    // and mimalloc's shared arenas under mimalloc's own synchronisation. mimalloc is this
    // process's global allocator (`main.rs`), so its symbols are linked and initialised.
    unsafe { mi_collect(true) }
}
