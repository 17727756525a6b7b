// SPDX-License-Identifier: GPL-2.0-only
//! The kernel heap (kmalloc/kfree semantics): Rust's global allocator on
//! `buddy_system_allocator`'s heap. It starts on a static arena in .bss, so
//! the boot path can allocate before the page allocator exists, and grows
//! from the buddy allocator (`alloc_pages`) when it runs out.
//!
//! Allocation failure is reported as a null pointer, never an abort: the
//! vmalloc pipeline uses fallible allocation (`try_reserve`, raw `alloc`) so
//! that each failure can be unwound.

use super::page_alloc;
use crate::arch::memory::PAGE_SHIFT;
use crate::arch::mm::mmu::__va;
use crate::kernel::locking::spinlock::SpinLock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of the boot arena.
pub const HEAP_INITIAL_SIZE: usize = 512 * 1024;
/// The heap grows by at least this much (order 6) at a time.
const HEAP_GROW_MIN_ORDER: usize = 6;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_INITIAL_SIZE]);

static mut HEAP_ARENA: Arena = Arena([0; HEAP_INITIAL_SIZE]);

pub struct KernelHeap {
    heap: SpinLock<buddy_system_allocator::Heap<32>>,
    /// Pages taken from the buddy allocator for the heap.
    grown_pages: AtomicUsize,
    grow_events: AtomicUsize,
}

#[global_allocator]
pub static KERNEL_HEAP: KernelHeap = KernelHeap {
    heap: SpinLock::new(buddy_system_allocator::Heap::empty()),
    grown_pages: AtomicUsize::new(0),
    grow_events: AtomicUsize::new(0),
};

/// Hand the boot arena to the heap.
pub fn heap_init() {
    // SAFETY: Heap::init wants valid, writable memory that no allocator
    // manages and that stays available: HEAP_ARENA is a static (lives
    // forever), is referenced nowhere else, and start_kernel calls heap_init
    // once, so the range was never added before.
    unsafe {
        let start = core::ptr::addr_of_mut!(HEAP_ARENA) as usize;
        KERNEL_HEAP.heap.lock().init(start, HEAP_INITIAL_SIZE);
    }
}

/// Heap figures: bytes in use by callers, bytes managed, pages grown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    pub used: usize,
    pub total: usize,
    pub grown_pages: usize,
    pub grow_events: usize,
}

pub fn heap_stats() -> HeapStats {
    let h = KERNEL_HEAP.heap.lock();
    HeapStats {
        used: h.stats_alloc_actual(),
        total: h.stats_total_bytes(),
        grown_pages: KERNEL_HEAP.grown_pages.load(Ordering::Relaxed),
        grow_events: KERNEL_HEAP.grow_events.load(Ordering::Relaxed),
    }
}

impl KernelHeap {
    /// Take a block from the page allocator big enough for `layout`.
    fn grow(&self, layout: Layout) -> bool {
        if !page_alloc::is_ready() {
            return false;
        }
        // Buddy blocks inside the heap are power-of-two sized and aligned;
        // twice the request always leaves room for one after splitting.
        let need = (layout.size().max(layout.align()) * 2).next_power_of_two();
        let order = need.trailing_zeros().saturating_sub(PAGE_SHIFT as u32) as usize;
        let order = order.max(HEAP_GROW_MIN_ORDER);
        if order >= page_alloc::MAX_ORDER {
            return false;
        }
        let Some(pa) = page_alloc::alloc_pages(order) else {
            return false;
        };
        let start = __va(pa).0;
        // SAFETY: add_to_heap wants memory that is writable, managed by no
        // other allocator and disjoint from what the heap already has:
        // alloc_pages just handed us these 2^order pages (mapped read-write
        // by the linear map), and they are never freed back, so they are
        // the heap's for good and cannot overlap the arena or an earlier
        // block.
        unsafe {
            self.heap
                .lock()
                .add_to_heap(start, start + (1usize << (order + PAGE_SHIFT)))
        };
        self.grown_pages.fetch_add(1 << order, Ordering::Relaxed);
        self.grow_events.fetch_add(1, Ordering::Relaxed);
        true
    }
}

// SAFETY: GlobalAlloc's contract is met by the buddy heap: alloc returns
// null or a block of at least layout.size() bytes aligned to layout.align()
// (Heap::alloc rounds both up to a power-of-two size class), never handed
// out twice until dealloc; the lock serialises all access to the free lists;
// neither method panics or unwinds (panic = "abort", and a failed grow
// returns null).
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if super::fault_inject::should_fail(super::fault_inject::Site::Kmalloc) {
            return core::ptr::null_mut();
        }
        loop {
            if let Ok(p) = self.heap.lock().alloc(layout) {
                return p.as_ptr();
            }
            if !self.grow(layout) {
                return core::ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc::dealloc's caller passes a non-null ptr that
        // alloc returned for this same layout and that is not freed yet,
        // which is what Heap::dealloc requires; every block alloc returns
        // came from this one heap.
        unsafe { self.heap.lock().dealloc(NonNull::new_unchecked(ptr), layout) }
    }
}
