// SPDX-License-Identifier: GPL-2.0-only
//! Fault injection (Linux: fail_page_alloc, failslab): make the Nth
//! allocation from now fail, so tests can prove that every failure path of
//! the vmalloc pipeline unwinds completely.
//!
//! Per CPU, as Linux's fault attributes with `task-filter` set: `arm` on a
//! CPU counts and fails only that CPU's allocations, so a sweep on one CPU
//! stays exact while the other CPUs allocate (the concurrent ktests).

use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
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

/// One CPU's injection state.
struct FaultAttr {
    /// 0 = off; otherwise the allocation that gets this number fails.
    fail_at: AtomicUsize,
    /// Allocations counted since `arm`.
    count: AtomicUsize,
    injected: AtomicUsize,
}

static FAULT_ATTR: [FaultAttr; NR_CPUS] = [const {
    FaultAttr {
        fail_at: AtomicUsize::new(0),
        count: AtomicUsize::new(0),
        injected: AtomicUsize::new(0),
    }
}; NR_CPUS];

/// CPUs armed: the fast path of `should_fail` is one load of this, as
/// it was one load before injection was per CPU.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Make the `nth` (1-based) allocation of this CPU from now on fail, once.
pub fn arm(nth: usize) {
    let a = &FAULT_ATTR[smp_processor_id()];
    a.count.store(0, Ordering::Relaxed);
    a.injected.store(0, Ordering::Relaxed);
    if a.fail_at.swap(nth, Ordering::Relaxed) == 0 && nth != 0 {
        ARMED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Stop injecting on this CPU; returns (allocations seen, failures injected).
pub fn disarm() -> (usize, usize) {
    let a = &FAULT_ATTR[smp_processor_id()];
    if a.fail_at.swap(0, Ordering::Relaxed) != 0 {
        ARMED.fetch_sub(1, Ordering::Relaxed);
    }
    (a.count.load(Ordering::Relaxed), a.injected.load(Ordering::Relaxed))
}

/// Called by every allocator before it allocates. Only the running CPU's
/// state is touched (Relaxed is enough: no other CPU reads it).
#[inline]
pub fn should_fail(_site: Site) -> bool {
    if ARMED.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let a = &FAULT_ATTR[smp_processor_id()];
    let at = a.fail_at.load(Ordering::Relaxed);
    if at == 0 {
        return false;
    }
    let n = a.count.load(Ordering::Relaxed) + 1;
    a.count.store(n, Ordering::Relaxed);
    if n == at {
        a.injected.fetch_add(1, Ordering::Relaxed);
        true
    } else {
        false
    }
}
