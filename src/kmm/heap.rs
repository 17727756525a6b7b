//! The kernel heap (kmalloc/kfree semantics): Rust's global allocator on
//! `buddy_system_allocator`'s heap. It starts on a static arena in .bss so
//! the device tree and early boot can allocate before the page allocator
//! exists.

use buddy_system_allocator::LockedHeap;

/// Size of the boot arena.
pub const HEAP_INITIAL_SIZE: usize = 512 * 1024;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_INITIAL_SIZE]);

static mut HEAP_ARENA: Arena = Arena([0; HEAP_INITIAL_SIZE]);

#[global_allocator]
pub static KERNEL_HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hand the boot arena to the heap.
pub fn heap_init() {
    // SAFETY: called once at boot; the arena is used by nothing else.
    unsafe {
        let start = core::ptr::addr_of_mut!(HEAP_ARENA) as usize;
        KERNEL_HEAP.lock().init(start, HEAP_INITIAL_SIZE);
    }
}

/// (bytes in use, bytes managed) of the heap.
pub fn heap_usage() -> (usize, usize) {
    let h = KERNEL_HEAP.lock();
    (h.stats_alloc_actual(), h.stats_total_bytes())
}
