// SPDX-License-Identifier: GPL-2.0-only
//! vm_map_ram / vm_unmap_ram and the vmap blocks behind them (Linux 5.10:
//! the "vmap block" part of mm/vmalloc.c).
//!
//! Small, short-lived mappings (at most `VMAP_MAX_ALLOC` pages) do not each
//! get a vmap_area: they are carved out of 4 MiB **vmap blocks** by bumping
//! an offset (`vb_alloc`), rounded to a power of two of pages. Unmapping only
//! clears the PTEs and counts the range as dirty (`vb_free`): no TLB flush, no
//! tree work. When every page of a block is dirty the block's area goes to
//! the lazy purge (`free_vmap_block`), whose single flush covers it.
//! `vm_unmap_aliases` flushes what is still dirty in live blocks, together
//! with the lazy purge, in one flush; every full purge
//! (`purge_vmap_area_lazy`, also on address-space exhaustion) first releases
//! the blocks that can hand out nothing more
//! (`purge_fragmented_blocks_allcpus`).
//!
//! As in 5.10, each CPU has its own `vmap_block_queue` of blocks with free
//! pages (a CPU allocates from its own queue, under that queue's lock) and
//! each block its own lock; a block is found from an address through
//! `vmap_blocks`, here a small tree of `VmapArea` nodes whose `vm` field
//! points at the block, under its own lock (Linux's xarray has one too).
//! Lock order: `vmap_purge_lock` -> `vmap_blocks` -> a `vmap_block_queue` ->
//! a block's lock -> the vmalloc locks. 5.10 walks the queue under RCU;
//! this file predates the kernel's RCU (kernel/rcu) and does not use it:
//! `vb_alloc` holds its queue's lock for the walk (only this CPU and
//! `purge_fragmented_blocks` take it), and `vb_free` keeps the index lock from the
//! lookup to the block's release, so no block is freed under a CPU that
//! found it. Larger requests take a vmap_area of their own, without a guard
//! page, as in Linux. Both kinds show in vmallocinfo as `vm_map_ram`.

use super::slab::KmemCache;
use super::vmalloc::{
    __purge_vmap_area_lazy, CacheAlloc, IS_ERR, alloc_vmap_area, free_vmap_area_noflush, map_kernel_range,
    unlink_vmap_area, unmap_kernel_range_noflush, vmap_purge_lock,
};
use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
use crate::arch::memory::*;
use crate::arch::mm::mmu::flush_tlb_kernel_range;
use crate::arch::mm::pgtable::PAGE_KERNEL;
use crate::kernel::locking::spinlock::SpinLock;
use crate::mm::vmap_tree::{
    __find_vmap_area, VmapArea, VmapAreaAlloc, VmapAreaRoot, VmapOwner, insert_vmap_area, unlink_va,
};
use crate::pr_warn;
use core::ptr::{self, NonNull};

/// Requests up to this many pages use vmap blocks (Linux: BITS_PER_LONG).
pub const VMAP_MAX_ALLOC: usize = 64;
/// Pages per block (Linux's VMAP_BBMAP_BITS for a 48-bit vmalloc space).
pub const VMAP_BBMAP_BITS: usize = 1024;
/// 4 MiB, naturally aligned.
pub const VMAP_BLOCK_SIZE: usize = VMAP_BBMAP_BITS * PAGE_SIZE;

/// Linux's `struct vmap_block`. `va` and `index` never change once
/// the block is built; `free_prev`/`next_free` belong to the block's queue
/// (under its `vmap_block_queue` lock); `purge_next` to the purger that
/// took the block off its queue; everything else is under the block's own
/// lock.
pub struct VmapBlock {
    /// The block's area in the busy tree (its `vm` is null: "vm_map_ram").
    va: NonNull<VmapArea>,
    /// Its node in the address index `vmap_blocks`.
    index: NonNull<VmapArea>,
    /// Previous and next block with free pages on the same queue (Linux:
    /// `vb->free_list` on `vbq->free`): a doubly linked list, so a block
    /// leaves it and joins its tail in O(1).
    free_prev: *mut VmapBlock,
    next_free: *mut VmapBlock,
    /// Next block to release in `purge_fragmented_blocks` (Linux: `vb->purge`).
    purge_next: *mut VmapBlock,
    /// Linux's `vb->lock` and what it protects.
    lock: SpinLock<VbState>,
}

/// The part of a block its lock protects.
struct VbState {
    /// Pages not handed out yet (they follow the handed-out ones).
    free: usize,
    /// Pages handed out and unmapped again.
    dirty: usize,
    /// Dirty page range not yet TLB-flushed, [dirty_min, dirty_max).
    dirty_min: usize,
    dirty_max: usize,
    /// Pages currently mapped, one bit each. Linux keeps no such map; with
    /// it a double or bogus vm_unmap_ram is refused instead of freeing the
    /// block under live mappings.
    mapped: [u64; VMAP_BBMAP_BITS / 64],
}

impl VmapBlock {
    fn start(&self) -> usize {
        // SAFETY: the block's area lives as long as the block.
        unsafe { (*self.va.as_ptr()).va_start }
    }
}

impl VbState {
    fn set_mapped(&mut self, first: usize, pages: usize, on: bool) {
        for pg in first..first + pages {
            let (w, b) = (pg / 64, 1u64 << (pg % 64));
            if on {
                self.mapped[w] |= b;
            } else {
                self.mapped[w] &= !b;
            }
        }
    }

    fn all_mapped(&self, first: usize, pages: usize) -> bool {
        first + pages <= VMAP_BBMAP_BITS
            && (first..first + pages).all(|pg| self.mapped[pg / 64] & (1 << (pg % 64)) != 0)
    }

    /// Everything handed out is unmapped again, and something is left to
    /// hand out: the block can be released (Linux: purge_fragmented_blocks).
    fn fragmented(&self) -> bool {
        self.free != 0 && self.free + self.dirty == VMAP_BBMAP_BITS
    }
}

/// One CPU's list of blocks with free pages, oldest first (Linux: struct
/// vmap_block_queue, per CPU). `vb_alloc` takes only its own CPU's.
pub struct VmapBlockQueue {
    free_head: *mut VmapBlock,
    free_tail: *mut VmapBlock,
}

impl VmapBlockQueue {
    /// Append `vb` (Linux: list_add_tail_rcu on `vbq->free`).
    ///
    /// # Safety
    ///
    /// `vb` is a live block of this queue's CPU, on no list.
    unsafe fn add_tail(&mut self, vb: *mut VmapBlock) {
        // SAFETY: `vb` and the tail are live blocks (caller; the list
        // links only live blocks, under the queue's lock).
        unsafe {
            (*vb).free_prev = self.free_tail;
            (*vb).next_free = ptr::null_mut();
            if self.free_tail.is_null() {
                self.free_head = vb;
            } else {
                (*self.free_tail).next_free = vb;
            }
        }
        self.free_tail = vb;
    }

    /// Take `vb` off the list (Linux: list_del_rcu).
    ///
    /// # Safety
    ///
    /// `vb` is on this queue's list.
    unsafe fn del(&mut self, vb: *mut VmapBlock) {
        // SAFETY: `vb` and its neighbours are live blocks on this list.
        unsafe {
            let (prev, next) = ((*vb).free_prev, (*vb).next_free);
            if prev.is_null() {
                self.free_head = next;
            } else {
                (*prev).next_free = next;
            }
            if next.is_null() {
                self.free_tail = prev;
            } else {
                (*next).free_prev = prev;
            }
            (*vb).free_prev = ptr::null_mut();
            (*vb).next_free = ptr::null_mut();
        }
    }
}

// SAFETY: the raw pointers refer to live blocks; the list is only walked
// and changed under the queue's lock.
unsafe impl Send for VmapBlockQueue {}

/// Per-CPU block queues, indexed by `smp_processor_id()`.
#[unsafe(no_mangle)]
pub static vmap_block_queue: [SpinLock<VmapBlockQueue>; NR_CPUS] = [const {
    SpinLock::new(VmapBlockQueue {
        free_head: ptr::null_mut(),
        free_tail: ptr::null_mut(),
    })
}; NR_CPUS];

/// Address -> block (Linux: the vmap_blocks xarray, its lock the xarray's):
/// a small tree of `VmapArea` nodes whose `vm` points at the block.
#[unsafe(no_mangle)]
pub static vmap_blocks: SpinLock<VmapAreaRoot> = SpinLock::new(VmapAreaRoot::new_busy());

static VMAP_BLOCK_CACHEP: SpinLock<KmemCache> = SpinLock::new(KmemCache::new(
    "vmap_block",
    core::mem::size_of::<VmapBlock>(),
    core::mem::align_of::<VmapBlock>(),
));

/// Pages a request of `pages` takes from a block: the next power of two
/// (Linux: 1 << get_order(size)).
fn block_pages(pages: usize) -> usize {
    pages.next_power_of_two()
}

/// A new block on `cpu`'s queue, its first `pages` already handed out
/// (Linux: new_vmap_block). None, with nothing allocated, on any failure.
/// Takes no block lock while it allocates; then the index's lock, then the
/// queue's, one after the other.
fn new_vmap_block(cpu: usize, pages: usize) -> Option<usize> {
    let vb = VMAP_BLOCK_CACHEP.lock().alloc()?.cast::<VmapBlock>();
    let Some(index) = CacheAlloc.alloc_vmap_area_node() else {
        // SAFETY: just allocated from this cache.
        unsafe { VMAP_BLOCK_CACHEP.lock().free(vb.cast()) };
        return None;
    };
    let va = alloc_vmap_area(VMAP_BLOCK_SIZE, VMAP_BLOCK_SIZE, VMALLOC_START, VMALLOC_END);
    if IS_ERR(va) {
        CacheAlloc.free_vmap_area_node(index);
        // SAFETY: just allocated from this cache.
        unsafe { VMAP_BLOCK_CACHEP.lock().free(vb.cast()) };
        return None;
    }
    // SAFETY: not an error pointer: a live area in the busy tree.
    let va = unsafe { NonNull::new_unchecked(va) };
    // SAFETY: fresh objects, ours; va is in the busy tree with no owner.
    // Until the block is in the index and on the queue, no other CPU can
    // reach it.
    unsafe {
        let start = (*va.as_ptr()).va_start;
        let mut st = VbState {
            free: VMAP_BBMAP_BITS - pages,
            dirty: 0,
            dirty_min: VMAP_BBMAP_BITS,
            dirty_max: 0,
            mapped: [0; VMAP_BBMAP_BITS / 64],
        };
        st.set_mapped(0, pages, true);
        let has_free = st.free != 0;
        vb.as_ptr().write(VmapBlock {
            va,
            index,
            free_prev: ptr::null_mut(),
            next_free: ptr::null_mut(),
            purge_next: ptr::null_mut(),
            lock: SpinLock::new(st),
        });
        let mut node = VmapArea::new(start, start + VMAP_BLOCK_SIZE);
        node.vm = VmapOwner::Block(vb);
        index.as_ptr().write(node);
        insert_vmap_area(&mut vmap_blocks.lock(), index).expect("vmap_blocks: overlapping blocks");
        if has_free {
            // Linux adds new blocks at the tail; newest-last keeps the
            // older, fuller blocks first in the search.
            vmap_block_queue[cpu].lock().add_tail(vb.as_ptr());
        }
        Some(start)
    }
}

/// Hand out `pages` (a power of two) from the first block with room on this
/// CPU's queue, or from a new block (Linux: vb_alloc). Lock order: the
/// queue, then each block's lock.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vb_alloc(pages: usize) -> Option<usize> {
    let cpu = smp_processor_id();
    {
        let mut q = vmap_block_queue[cpu].lock();
        let mut vb = q.free_head;
        // SAFETY: the queue links live blocks, under its lock (a block
        // leaves the queue, under this lock, before it can be freed).
        unsafe {
            while !vb.is_null() {
                let mut st = (*vb).lock.lock();
                if st.free >= pages {
                    let off = VMAP_BBMAP_BITS - st.free;
                    st.free -= pages;
                    st.set_mapped(off, pages, true);
                    let addr = (*vb).start() + off * PAGE_SIZE;
                    if st.free == 0 {
                        q.del(vb);
                    }
                    return Some(addr);
                }
                drop(st);
                vb = (*vb).next_free;
            }
        }
    }
    new_vmap_block(cpu, pages)
}

/// Release a block's objects: its area goes to the lazy purge, the block
/// and its index node back to their caches (Linux: free_vmap_block).
///
/// # Safety
///
/// `vb` is a live block already out of the index and off its queue, with
/// no live mapping left; nothing refers to it any more.
unsafe fn free_vmap_block(vb: *mut VmapBlock) {
    // SAFETY: the caller's contract: the index node and the area are the
    // block's, from the vmap_area cache, reachable from nowhere else.
    unsafe {
        let (va, index) = ((*vb).va, (*vb).index);
        CacheAlloc.free_vmap_area_node(index);
        VMAP_BLOCK_CACHEP.lock().free(NonNull::new_unchecked(vb).cast());
        unlink_vmap_area(va);
        free_vmap_area_noflush(va);
    }
}

/// Unmap `pages` at `addr` in its block and count them dirty; free the
/// block when all of it is dirty (Linux: vb_free). Lock order: the index,
/// then the block. The index lock is held throughout, so a block cannot
/// be freed between its lookup and its lock.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vb_free(addr: usize, pages: usize) {
    let mut index = vmap_blocks.lock();
    let node = __find_vmap_area(&index, addr);
    if node.is_null() {
        drop(index);
        pr_warn!(
            "vm_unmap_ram({:#x}, {} pages): not in a vmap block; ignored",
            addr,
            pages
        );
        return;
    }
    // SAFETY: index nodes are live under the index lock.
    let Some(vb) = unsafe { (*node).vm }.block() else {
        unreachable!("vmap_blocks: index node without a block");
    };
    let vb = vb.as_ptr();
    // SAFETY: index nodes point at their live block, under the index lock.
    let (start, mut st) = unsafe { ((*vb).start(), (*vb).lock.lock()) };
    let offset = (addr - start) / PAGE_SIZE;
    if !st.all_mapped(offset, pages) {
        drop(st);
        drop(index);
        pr_warn!(
            "vm_unmap_ram({:#x}, {} pages): not a live vm_map_ram range of its block (bad size or double unmap); ignored",
            addr,
            pages
        );
        return;
    }
    st.set_mapped(offset, pages, false);
    unmap_kernel_range_noflush(addr, pages * PAGE_SIZE);
    st.dirty_min = st.dirty_min.min(offset);
    st.dirty_max = st.dirty_max.max(offset + pages);
    st.dirty += pages;
    // All dirty means all handed out: the block is on no queue.
    let dead = st.dirty == VMAP_BBMAP_BITS;
    drop(st);
    if dead {
        // SAFETY: the block's index node is in the index, whose lock we
        // hold; once out, no CPU can find the block.
        unsafe { unlink_va(&mut index, (*vb).index) };
    }
    drop(index);
    if dead {
        // SAFETY: out of the index, on no queue, all of it unmapped.
        unsafe { free_vmap_block(vb) };
    }
}

/// Map `pages` contiguously in kernel space for a short while (Linux:
/// vm_map_ram). The pages stay the caller's; undo with [`vm_unmap_ram`]
/// and the same count.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vm_map_ram(pages: &[PhysAddr]) -> *mut u8 {
    let count = pages.len();
    if count == 0 {
        pr_warn!("vm_map_ram: zero pages");
        return ptr::null_mut();
    }
    let addr = if count <= VMAP_MAX_ALLOC {
        match vb_alloc(block_pages(count)) {
            Some(a) => a,
            None => return ptr::null_mut(),
        }
    } else {
        let va = alloc_vmap_area(count * PAGE_SIZE, PAGE_SIZE, VMALLOC_START, VMALLOC_END);
        if IS_ERR(va) {
            return ptr::null_mut();
        }
        // SAFETY: not an error pointer: a live busy area, ours.
        unsafe { (*va).va_start }
    };
    // map_kernel_range said why on failure.
    let err = map_kernel_range(addr, pages, PAGE_KERNEL);
    if err != 0 {
        pr_warn!(
            "vm_map_ram: mapping {} pages at {:#x} failed: error {}",
            count,
            addr,
            err
        );
        vm_unmap_ram(addr as *const u8, count);
        return ptr::null_mut();
    }
    addr as *mut u8
}

/// Undo [`vm_map_ram`] (Linux: vm_unmap_ram). The TLB flush is deferred:
/// to the block's release for small mappings, to the lazy purge for large.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vm_unmap_ram(mem: *const u8, count: usize) {
    let addr = mem as usize;
    if count == 0 || !addr.is_multiple_of(PAGE_SIZE) || !is_vmalloc_addr(addr) {
        pr_warn!("vm_unmap_ram({:#x}, {}): bad address or count; ignored", addr, count);
        return;
    }
    if count <= VMAP_MAX_ALLOC {
        vb_free(addr, block_pages(count));
        return;
    }
    if !__find_vmap_area(&vmap_blocks.lock(), addr).is_null() {
        pr_warn!(
            "vm_unmap_ram({:#x}, {}): that is a vmap block, not a large vm_map_ram area; ignored",
            addr,
            count
        );
        return;
    }
    // Found, checked and unlinked under one hold of vmap_area_lock, so a
    // racing (buggy) second vm_unmap_ram of the area cannot free it under us.
    let va = match super::vmalloc::unlink_vm_map_ram_area(addr, count * PAGE_SIZE) {
        Ok(va) => va,
        Err(why) => {
            pr_warn!("vm_unmap_ram({:#x}, {}): {}; ignored", addr, count, why);
            return;
        }
    };
    let (start, end) = (addr, addr + count * PAGE_SIZE);
    unmap_kernel_range_noflush(start, end - start);
    // SAFETY: unlinked above, owner-less, from the vmap_area cache; not
    // used again.
    unsafe { free_vmap_area_noflush(va) };
}

/// Release the blocks of `cpu`'s queue that can hand out nothing more:
/// every page handed out is unmapped again, some were never handed out
/// (Linux: purge_fragmented_blocks). Such a block would otherwise hold its
/// 4 MiB until it is used up. Lock order: the queue, then each block; the
/// index only after both are let go.
fn purge_fragmented_blocks(cpu: usize) {
    let mut purge: *mut VmapBlock = ptr::null_mut();
    {
        let mut q = vmap_block_queue[cpu].lock();
        let mut vb = q.free_head;
        // SAFETY: the queue links live blocks, under its lock.
        unsafe {
            while !vb.is_null() {
                let next = (*vb).next_free;
                let mut st = (*vb).lock.lock();
                if st.fragmented() {
                    // Nothing more to hand out, nothing to purge again.
                    st.free = 0;
                    st.dirty = VMAP_BBMAP_BITS;
                    st.dirty_min = 0;
                    st.dirty_max = VMAP_BBMAP_BITS;
                    q.del(vb);
                    (*vb).purge_next = purge;
                    purge = vb;
                }
                drop(st);
                vb = next;
            }
        }
    }
    if purge.is_null() {
        return;
    }
    {
        let mut index = vmap_blocks.lock();
        let mut vb = purge;
        while !vb.is_null() {
            // SAFETY: a live block taken off its queue above (only here);
            // its index node is in the index, whose lock we hold. Once out,
            // no CPU can find it.
            unsafe {
                unlink_va(&mut index, (*vb).index);
                vb = (*vb).purge_next;
            }
        }
    }
    while !purge.is_null() {
        let vb = purge;
        // SAFETY: out of the index and off its queue, nothing mapped; the
        // link is read before the block is freed.
        unsafe {
            purge = (*vb).purge_next;
            free_vmap_block(vb);
        }
    }
}

/// [`purge_fragmented_blocks`] on every CPU's queue (Linux:
/// purge_fragmented_blocks_allcpus). The caller holds `vmap_purge_lock`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn purge_fragmented_blocks_allcpus() {
    for cpu in 0..NR_CPUS {
        purge_fragmented_blocks(cpu);
    }
}

/// Flush the TLB for every dirty range of live blocks, release the blocks
/// that can hand out nothing more, and purge the lazily freed areas, with
/// one flush for all of it (Linux: vm_unmap_aliases -> _vm_unmap_aliases).
///
/// 5.10 looks only at the blocks on the queues, those with pages left to
/// hand out; this walks every block through the index, so a full block's
/// dirty pages are flushed too (5.10 leaves their stale TLB entries; 6.5
/// fixed it). As in 5.10 the dirty range is not reset: a later call
/// flushes it again. Lock order: the index, then a block; then
/// `vmap_purge_lock`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vm_unmap_aliases() {
    let (mut start, mut end) = (usize::MAX, 0);
    let mut flush = false;
    {
        let index = vmap_blocks.lock();
        for node in index.iter() {
            let Some(vb) = node.vm.block() else {
                unreachable!("vmap_blocks: index node without a block");
            };
            let vb = vb.as_ptr();
            // SAFETY: index nodes point at live blocks, under the index lock.
            unsafe {
                let st = (*vb).lock.lock();
                if st.dirty != 0 {
                    start = start.min((*vb).start() + st.dirty_min * PAGE_SIZE);
                    end = end.max((*vb).start() + st.dirty_max * PAGE_SIZE);
                    flush = true;
                }
            }
        }
    }
    let _purge = vmap_purge_lock();
    purge_fragmented_blocks_allcpus();
    // One flush: the purge's covers the dirty range too; only with
    // nothing to purge is the dirty range flushed on its own.
    if !__purge_vmap_area_lazy(start, end) && flush {
        flush_tlb_kernel_range(start, end);
    }
}

/// (live blocks, blocks on the free list) for tests and the shell.
pub fn vmap_block_stats() -> (usize, usize) {
    let blocks = vmap_blocks.lock().len();
    let mut on_free = 0;
    for q in &vmap_block_queue {
        let q = q.lock();
        let mut p = q.free_head;
        while !p.is_null() {
            on_free += 1;
            // SAFETY: as in vb_alloc.
            p = unsafe { (*p).next_free };
        }
    }
    (blocks, on_free)
}

/// Objects the vmap_block cache holds (for the fault-injection snapshot).
/// Pages the vmap_block object cache holds (kept once grown).
pub fn vmap_block_cache_pages() -> usize {
    VMAP_BLOCK_CACHEP.lock().stats().slab_pages
}

pub fn vmap_block_cache_active() -> usize {
    VMAP_BLOCK_CACHEP.lock().stats().active_objs
}
