//! The one place that calls into the allocator by hand. [`Allocator`] is mimalloc asked
//! through its unaligned entry points wherever their alignment suffices (ADR 0006). And
//! after a large request, each runtime thread asks mimalloc to hand the pages that
//! request freed back to the system, and so does a blocking thread after a password hash
//! (ADR 0011). Without it a thread keeps them cached, so the process stays at its peak
//! long after the request.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ffi::c_void;

use manifold_server::http::large_requests;
use mimalloc::MiMalloc;

/// The alignment every block of mimalloc's unaligned calls has at least, when the block is
/// at least that large (mimalloc's `MI_MAX_ALIGN_SIZE`); a smaller block is aligned to its
/// size class, so `align <= size` suffices there, as for the system allocator.
const GUARANTEED_ALIGN: usize = 16;

/// mimalloc, called as the `mimalloc` crate calls it except where an allocation needs no
/// more alignment than every block has. The crate asks `mi_malloc_aligned` for every
/// allocation, which checks each block it hands out against the alignment and falls to a
/// slower path when a size class's free block is not aligned; `mi_malloc` skips both. A
/// `:get` makes about 150 allocations, and this halved the instructions they cost.
pub struct Allocator;

/// Whether mimalloc's unaligned calls give `align` for a block of `size` bytes.
fn unaligned_suffices(size: usize, align: usize) -> bool {
    align <= GUARANTEED_ALIGN && align <= size
}

// SAFETY: every block comes from mimalloc and goes back to it: `mi_free` frees blocks of
// its aligned and unaligned calls alike. The unaligned calls are used only where their
// guaranteed alignment meets the layout's; everything else goes to `MiMalloc`.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if unaligned_suffices(layout.size(), layout.align()) {
            // SAFETY: `mi_malloc` takes a size and returns a block or null.
            unsafe { mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's contract for `alloc`, passed on.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if unaligned_suffices(layout.size(), layout.align()) {
            // SAFETY: `mi_zalloc` takes a size and returns a zeroed block or null.
            unsafe { mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, so by mimalloc.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if unaligned_suffices(new_size, layout.align()) {
            // SAFETY: `ptr` is a live mimalloc block; the new block keeps the alignment
            // the layout needs, as the check above says.
            unsafe { mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's contract for `realloc`, passed on.
            unsafe { MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

unsafe extern "C" {
    /// mimalloc's `void* mi_malloc(size_t size)`.
    fn mi_malloc(size: usize) -> *mut c_void;
    /// mimalloc's `void* mi_zalloc(size_t size)`: zero-initialised.
    fn mi_zalloc(size: usize) -> *mut c_void;
    /// mimalloc's `void* mi_realloc(void* p, size_t newsize)`.
    fn mi_realloc(p: *mut c_void, newsize: usize) -> *mut c_void;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every small size and alignment come back aligned as asked, keep their
    /// contents through growth and shrinking, and zeroed ones are zero.
    #[test]
    fn blocks_are_aligned_as_their_layouts_ask() {
        let allocator = Allocator;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 15, 16, 24, 33, 100, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                // SAFETY: the layout has a non-zero size; every block is freed with it.
                unsafe {
                    let block = allocator.alloc_zeroed(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "size {size}, align {align}");
                    assert!((0..size).all(|i| *block.add(i) == 0));
                    block.write_bytes(0xAB, size);
                    let grown = allocator.realloc(block, layout, size * 3);
                    assert!(!grown.is_null());
                    assert_eq!(
                        grown as usize % align,
                        0,
                        "grown, size {size}, align {align}"
                    );
                    assert!((0..size).all(|i| *grown.add(i) == 0xAB));
                    let grown_layout = Layout::from_size_align(size * 3, align).expect("valid");
                    let shrunk = allocator.realloc(grown, grown_layout, size.div_ceil(2));
                    assert!(!shrunk.is_null());
                    assert_eq!(
                        shrunk as usize % align,
                        0,
                        "shrunk, size {size}, align {align}"
                    );
                    assert!((0..size.div_ceil(2)).all(|i| *shrunk.add(i) == 0xAB));
                    let shrunk_layout =
                        Layout::from_size_align(size.div_ceil(2), align).expect("valid");
                    allocator.dealloc(shrunk, shrunk_layout);
                }
            }
        }
    }
}
