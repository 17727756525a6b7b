// SPDX-License-Identifier: GPL-2.0-only
//! Fault injection (Linux: fail_page_alloc, failslab): make the Nth
//! allocation from now fail, so tests can prove that every failure path of
//! the vmalloc pipeline unwinds completely.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Which allocator is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// alloc_pages (buddy allocator), including page-table pages.
    PageAlloc,
    /// kmem_cache_alloc (object caches).
    Slab,
    /// The kernel heap (kmalloc).
    Kmalloc,
}

/// 0 = off; otherwise the allocation that gets this number fails.
static FAIL_AT: AtomicUsize = AtomicUsize::new(0);
/// Allocations counted since `arm`.
static COUNT: AtomicUsize = AtomicUsize::new(0);
static INJECTED: AtomicUsize = AtomicUsize::new(0);

/// Make the `nth` (1-based) allocation from now on fail, once.
pub fn arm(nth: usize) {
    COUNT.store(0, Ordering::SeqCst);
    INJECTED.store(0, Ordering::SeqCst);
    FAIL_AT.store(nth, Ordering::SeqCst);
}

/// Stop injecting; returns (allocations seen, failures injected).
pub fn disarm() -> (usize, usize) {
    FAIL_AT.store(0, Ordering::SeqCst);
    (COUNT.load(Ordering::SeqCst), INJECTED.load(Ordering::SeqCst))
}

/// Called by every allocator before it allocates.
#[inline]
pub fn should_fail(_site: Site) -> bool {
    let at = FAIL_AT.load(Ordering::Relaxed);
    if at == 0 {
        return false;
    }
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if n == at {
        INJECTED.fetch_add(1, Ordering::SeqCst);
        true
    } else {
        false
    }
}
