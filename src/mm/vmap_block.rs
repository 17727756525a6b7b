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
//! `vm_unmap_aliases` flushes what is still dirty in live blocks and releases
//! blocks that can hand out nothing more.
//!
//! Linux keeps blocks per CPU and finds a block from an address with an
//! xarray; with one CPU here there is one queue, and the address index is a
//! small tree of `VmapArea` nodes (`vmap_blocks`) whose `vm` field points at
//! the block. Larger requests take a vmap_area of their own, without a guard
//! page, as in Linux. Both kinds show in vmallocinfo as `vm_map_ram`.

use super::slab::KmemCache;
use super::vmalloc::{
    CacheAlloc, IS_ERR, alloc_vmap_area, free_vmap_area_noflush, map_kernel_range, purge_vmap_area_lazy,
    unlink_vmap_area, unmap_kernel_range_noflush,
};
use crate::arch::memory::*;
use crate::arch::mm::mmu::flush_tlb_kernel_range;
use crate::arch::mm::pgtable::PAGE_KERNEL;
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

/// Linux's `struct vmap_block`.
pub struct VmapBlock {
    /// The block's area in the busy tree (its `vm` is null: "vm_map_ram").
    va: NonNull<VmapArea>,
    /// Its node in the address index `vmap_blocks`.
    index: NonNull<VmapArea>,
    /// Pages not handed out yet (they follow the handed-out ones).
    free: usize,
    /// Pages handed out and unmapped again.
    dirty: usize,
    /// Dirty page range not yet TLB-flushed, [dirty_min, dirty_max).
    dirty_min: usize,
    dirty_max: usize,
    /// Next block with free pages (Linux: vbq->free list).
    next_free: *mut VmapBlock,
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
}

/// The block queue and the address index (Linux: the per-CPU
/// vmap_block_queue and the vmap_blocks xarray).
pub struct VmapBlocks {
    index: VmapAreaRoot,
    free_head: *mut VmapBlock,
}

// SAFETY: the raw pointers refer to blocks owned by this structure, which
// lives behind its lock.
unsafe impl Send for VmapBlocks {}

#[unsafe(no_mangle)]
pub static vmap_blocks: spin::Mutex<VmapBlocks> = spin::Mutex::new(VmapBlocks {
    index: VmapAreaRoot::new_busy(),
    free_head: ptr::null_mut(),
});

static VMAP_BLOCK_CACHEP: spin::Mutex<KmemCache> = spin::Mutex::new(KmemCache::new(
    "vmap_block",
    core::mem::size_of::<VmapBlock>(),
    core::mem::align_of::<VmapBlock>(),
));

/// Pages a request of `pages` takes from a block: the next power of two
/// (Linux: 1 << get_order(size)).
fn block_pages(pages: usize) -> usize {
    pages.next_power_of_two()
}

/// A new block, its first `1 << order` pages already handed out (Linux:
/// new_vmap_block). None, with nothing allocated, on any failure.
fn new_vmap_block(vbs: &mut VmapBlocks, pages: usize) -> Option<usize> {
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
    unsafe {
        let start = (*va.as_ptr()).va_start;
        vb.as_ptr().write(VmapBlock {
            va,
            index,
            free: VMAP_BBMAP_BITS - pages,
            dirty: 0,
            dirty_min: VMAP_BBMAP_BITS,
            dirty_max: 0,
            next_free: ptr::null_mut(),
            mapped: [0; VMAP_BBMAP_BITS / 64],
        });
        (*vb.as_ptr()).set_mapped(0, pages, true);
        let mut node = VmapArea::new(start, start + VMAP_BLOCK_SIZE);
        node.vm = VmapOwner::Block(vb);
        index.as_ptr().write(node);
        insert_vmap_area(&mut vbs.index, index).expect("vmap_blocks: overlapping blocks");
        if (*vb.as_ptr()).free != 0 {
            // Linux adds new blocks at the tail; newest-last keeps the
            // older, fuller blocks first in the search.
            let mut p: *mut *mut VmapBlock = &mut vbs.free_head;
            while !(*p).is_null() {
                p = &mut (**p).next_free;
            }
            *p = vb.as_ptr();
        }
        Some(start)
    }
}

/// Hand out `pages` (a power of two) from the first block with room, or
/// from a new block (Linux: vb_alloc).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vb_alloc(pages: usize) -> Option<usize> {
    let mut vbs = vmap_blocks.lock();
    let mut p: *mut *mut VmapBlock = &mut vbs.free_head;
    // SAFETY: the free list links blocks owned by vmap_blocks, under its lock.
    unsafe {
        while !(*p).is_null() {
            let vb = &mut **p;
            if vb.free >= pages {
                let off = VMAP_BBMAP_BITS - vb.free;
                vb.free -= pages;
                vb.set_mapped(off, pages, true);
                let addr = vb.start() + off * PAGE_SIZE;
                if vb.free == 0 {
                    *p = vb.next_free;
                    vb.next_free = ptr::null_mut();
                }
                return Some(addr);
            }
            p = &mut vb.next_free;
        }
    }
    new_vmap_block(&mut vbs, pages)
}

/// Unlink a block from the free list (it may not be on it).
///
/// # Safety
///
/// `vb` is a live block of `vbs`.
unsafe fn unlink_free(vbs: &mut VmapBlocks, vb: *mut VmapBlock) {
    let mut p: *mut *mut VmapBlock = &mut vbs.free_head;
    // SAFETY: the free list links blocks owned by `vbs` (as in vb_alloc);
    // `vb` is one of them (caller).
    unsafe {
        while !(*p).is_null() {
            if *p == vb {
                *p = (*vb).next_free;
                (*vb).next_free = ptr::null_mut();
                return;
            }
            p = &mut (**p).next_free;
        }
    }
}

/// Release a block: its area goes to the lazy purge, its objects back to
/// their caches (Linux: free_vmap_block).
///
/// # Safety
///
/// `vb` is a live block of `vbs` with no live mapping left; the caller does
/// not use it afterwards.
unsafe fn free_vmap_block(vbs: &mut VmapBlocks, vb: *mut VmapBlock) {
    // SAFETY: vb is a live block of vbs (caller).
    unsafe { unlink_free(vbs, vb) };
    // SAFETY: vb is a live block of vmap_blocks; its index node is in
    // vbs.index and its area in the busy tree, both from the vmap_area
    // cache; after this nothing refers to any of them.
    unsafe {
        let (va, index) = ((*vb).va, (*vb).index);
        unlink_va(&mut vbs.index, index);
        CacheAlloc.free_vmap_area_node(index);
        VMAP_BLOCK_CACHEP.lock().free(NonNull::new_unchecked(vb).cast());
        unlink_vmap_area(va);
        free_vmap_area_noflush(va);
    }
}

/// Unmap `pages` at `addr` in its block and count them dirty; free the
/// block when all of it is dirty (Linux: vb_free).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vb_free(addr: usize, pages: usize) {
    let mut vbs = vmap_blocks.lock();
    let node = __find_vmap_area(&vbs.index, addr);
    if node.is_null() {
        drop(vbs);
        pr_warn!(
            "vm_unmap_ram({:#x}, {} pages): not in a vmap block; ignored",
            addr,
            pages
        );
        return;
    }
    // SAFETY: index nodes are live under the lock.
    let Some(vb) = unsafe { (*node).vm }.block() else {
        unreachable!("vmap_blocks: index node without a block");
    };
    let vb = vb.as_ptr();
    // SAFETY: index nodes point at their live block, under the lock.
    let vbr = unsafe { &mut *vb };
    let offset = (addr - vbr.start()) / PAGE_SIZE;
    if !vbr.all_mapped(offset, pages) {
        drop(vbs);
        pr_warn!(
            "vm_unmap_ram({:#x}, {} pages): not a live vm_map_ram range of its block (bad size or double unmap); ignored",
            addr,
            pages
        );
        return;
    }
    vbr.set_mapped(offset, pages, false);
    unmap_kernel_range_noflush(addr, pages * PAGE_SIZE);
    vbr.dirty_min = vbr.dirty_min.min(offset);
    vbr.dirty_max = vbr.dirty_max.max(offset + pages);
    vbr.dirty += pages;
    if vbr.dirty == VMAP_BBMAP_BITS {
        // SAFETY: a live block of vmap_blocks, all of it unmapped.
        unsafe { free_vmap_block(&mut vbs, vb) };
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
    if !__find_vmap_area(&vmap_blocks.lock().index, addr).is_null() {
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

/// Flush the TLB for every dirty range of live blocks, release blocks that
/// can hand out nothing more, then purge the lazily freed areas (Linux:
/// vm_unmap_aliases, with purge_fragmented_blocks_allcpus).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vm_unmap_aliases() {
    let (mut start, mut end) = (usize::MAX, 0);
    {
        let mut vbs = vmap_blocks.lock();
        let mut dead: [*mut VmapBlock; 16] = [ptr::null_mut(); 16];
        loop {
            let mut n = 0;
            for node in vbs.index.iter() {
                let Some(vb) = node.vm.block() else {
                    unreachable!("vmap_blocks: index node without a block");
                };
                let vb = vb.as_ptr();
                // SAFETY: index nodes point at live blocks, under the lock.
                let b = unsafe { &mut *vb };
                if b.dirty_max > b.dirty_min {
                    start = start.min(b.start() + b.dirty_min * PAGE_SIZE);
                    end = end.max(b.start() + b.dirty_max * PAGE_SIZE);
                    b.dirty_min = VMAP_BBMAP_BITS;
                    b.dirty_max = 0;
                }
                // Fragmented: everything handed out is unmapped again.
                if b.free + b.dirty == VMAP_BBMAP_BITS && n < dead.len() {
                    dead[n] = vb;
                    n += 1;
                }
            }
            for &vb in &dead[..n] {
                // SAFETY: a live block of vmap_blocks (collected above, each
                // once) whose handed-out pages are all unmapped.
                unsafe { free_vmap_block(&mut vbs, vb) };
            }
            if n < dead.len() {
                break;
            }
        }
    }
    if start < end {
        flush_tlb_kernel_range(start, end);
    }
    purge_vmap_area_lazy();
}

/// (live blocks, blocks on the free list) for tests and the shell.
pub fn vmap_block_stats() -> (usize, usize) {
    let vbs = vmap_blocks.lock();
    let mut on_free = 0;
    let mut p = vbs.free_head;
    while !p.is_null() {
        on_free += 1;
        // SAFETY: as in vb_alloc.
        p = unsafe { (*p).next_free };
    }
    (vbs.index.len(), on_free)
}

/// Objects the vmap_block cache holds (for the fault-injection snapshot).
/// Pages the vmap_block object cache holds (kept once grown).
pub fn vmap_block_cache_pages() -> usize {
    VMAP_BLOCK_CACHEP.lock().stats().slab_pages
}

pub fn vmap_block_cache_active() -> usize {
    VMAP_BLOCK_CACHEP.lock().stats().active_objs
}
