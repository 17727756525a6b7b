// SPDX-License-Identifier: GPL-2.0-only
//! Object caches (Linux: kmem_cache, mm/slab_common.c) and the kmalloc-N
//! caches built from them: fixed-size kernel objects carved from order-0
//! pages with an intrusive free list. vmalloc takes its `vmap_area` and
//! `vm_struct` objects from caches like these, as 5.10 does with
//! `vmap_area_cachep`, and its small page arrays from kmalloc.
//!
//! Slab pages are kept once allocated (a cache only grows), so after a
//! warm-up allocation the cache's page count is stable.

use super::fault_inject::{self, Site};
use super::page_alloc;
use crate::arch::memory::PAGE_SIZE;
use crate::arch::mm::mmu::__va;
use crate::kernel::locking::spinlock::SpinLock;
use core::ptr::NonNull;

struct FreeObject {
    next: *mut FreeObject,
}

pub struct KmemCache {
    pub name: &'static str,
    obj_size: usize,
    free_list: *mut FreeObject,
    /// Objects handed out and not freed.
    active_objs: usize,
    /// Objects in all slabs.
    num_objs: usize,
    slab_pages: usize,
}

// SAFETY: the raw pointers only refer to slab pages the cache owns (from
// alloc_pages, never shared), so moving the cache moves sole access to them;
// every cache lives behind a lock.
unsafe impl Send for KmemCache {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabStats {
    pub active_objs: usize,
    pub num_objs: usize,
    pub slab_pages: usize,
    pub obj_size: usize,
}

impl KmemCache {
    /// A cache of `size`-byte objects aligned to `align` (Linux:
    /// kmem_cache_create). Both are rounded so the free-list link fits.
    pub const fn new(name: &'static str, size: usize, align: usize) -> Self {
        let align = if align < 8 { 8 } else { align };
        let size = if size < 8 { 8 } else { size };
        let obj_size = size.div_ceil(align) * align;
        assert!(obj_size <= PAGE_SIZE, "object caches hold objects of at most a page");
        Self {
            name,
            obj_size,
            free_list: core::ptr::null_mut(),
            active_objs: 0,
            num_objs: 0,
            slab_pages: 0,
        }
    }

    /// Add one page of objects to the free list.
    fn grow(&mut self) -> bool {
        let Some(pa) = page_alloc::alloc_pages(0) else {
            return false;
        };
        let base = __va(pa).0;
        let n = PAGE_SIZE / self.obj_size;
        for i in (0..n).rev() {
            let obj = (base + i * self.obj_size) as *mut FreeObject;
            // SAFETY: obj = base + i * obj_size with i < PAGE_SIZE / obj_size,
            // so the whole object lies in the fresh page alloc_pages gave us
            // (writable through the linear map); obj_size is a multiple of
            // the object alignment (at least a pointer's), so obj is aligned
            // for FreeObject.
            unsafe { (*obj).next = self.free_list };
            self.free_list = obj;
        }
        self.num_objs += n;
        self.slab_pages += 1;
        true
    }

    /// kmem_cache_alloc: an uninitialised object, or None when out of memory
    /// (or when fault injection says so).
    pub fn alloc(&mut self) -> Option<NonNull<u8>> {
        if fault_inject::should_fail(Site::Slab) {
            return None;
        }
        if self.free_list.is_null() && !self.grow() {
            return None;
        }
        let obj = self.free_list;
        // SAFETY: free_list is non-null here (checked above) and holds only
        // free objects of our pages, each linked through its first word.
        self.free_list = unsafe { (*obj).next };
        self.active_objs += 1;
        NonNull::new(obj as *mut u8)
    }

    /// kmem_cache_free.
    ///
    /// # Safety
    /// `p` must come from `alloc` on this cache and not be used afterwards.
    pub unsafe fn free(&mut self, p: NonNull<u8>) {
        let obj = p.as_ptr() as *mut FreeObject;
        // SAFETY: per the contract p came from this cache's alloc (so it is
        // an aligned object inside one of our pages) and nobody uses it any
        // more, so its first word may become the free-list link.
        unsafe { (*obj).next = self.free_list };
        self.free_list = obj;
        self.active_objs -= 1;
    }

    pub fn stats(&self) -> SlabStats {
        SlabStats {
            active_objs: self.active_objs,
            num_objs: self.num_objs,
            slab_pages: self.slab_pages,
            obj_size: self.obj_size,
        }
    }
}

impl Drop for KmemCache {
    /// Caches are meant to live in statics: there is no kmem_cache_destroy
    /// that could give slab pages back, so dropping a cache that has any
    /// leaks them, and says so.
    fn drop(&mut self) {
        if self.slab_pages != 0 {
            crate::pr_warn!(
                "kmem_cache {}: dropped with {} slab page(s), {} object(s) in use: the pages are leaked",
                self.name,
                self.slab_pages,
                self.active_objs
            );
        }
    }
}

/// Linux's kmalloc-8 .. kmalloc-4k caches: small allocations from
/// power-of-two object caches (vmalloc's page arrays of up to a page). The
/// general-purpose heap is not used there: its free scans a per-size free
/// list, which made each vfree cost O(live areas) (docs/performance.md).
static KMALLOC_CACHES: [SpinLock<KmemCache>; 10] = [
    SpinLock::new(KmemCache::new("kmalloc-8", 8, 8)),
    SpinLock::new(KmemCache::new("kmalloc-16", 16, 8)),
    SpinLock::new(KmemCache::new("kmalloc-32", 32, 8)),
    SpinLock::new(KmemCache::new("kmalloc-64", 64, 8)),
    SpinLock::new(KmemCache::new("kmalloc-128", 128, 8)),
    SpinLock::new(KmemCache::new("kmalloc-256", 256, 8)),
    SpinLock::new(KmemCache::new("kmalloc-512", 512, 8)),
    SpinLock::new(KmemCache::new("kmalloc-1k", 1024, 8)),
    SpinLock::new(KmemCache::new("kmalloc-2k", 2048, 8)),
    SpinLock::new(KmemCache::new("kmalloc-4k", 4096, 8)),
];

/// Linux's kmalloc_index for 1 ..= PAGE_SIZE bytes.
#[inline(always)]
fn kmalloc_index(size: usize) -> usize {
    debug_assert!(size != 0 && size <= PAGE_SIZE);
    (size.max(8).next_power_of_two().trailing_zeros() - 3) as usize
}

/// kmalloc of 1 ..= PAGE_SIZE bytes (8-byte aligned), or None.
#[inline]
pub fn kmalloc(size: usize) -> Option<NonNull<u8>> {
    KMALLOC_CACHES[kmalloc_index(size)].lock().alloc()
}

/// kfree.
///
/// # Safety
/// `p` came from [`kmalloc`] with the same `size` and is not used afterwards.
#[inline]
pub unsafe fn kfree(p: NonNull<u8>, size: usize) {
    // SAFETY: per the contract p came from kmalloc(size), i.e. from the
    // cache kmalloc_index(size) picks, and is not used afterwards: free's
    // contract on that cache.
    unsafe { KMALLOC_CACHES[kmalloc_index(size)].lock().free(p) }
}

/// The kmalloc caches together (slab pages, objects in use).
pub fn kmalloc_stats() -> SlabStats {
    KMALLOC_CACHES.iter().fold(
        SlabStats {
            active_objs: 0,
            num_objs: 0,
            slab_pages: 0,
            obj_size: 0,
        },
        |acc, c| {
            let s = c.lock().stats();
            SlabStats {
                active_objs: acc.active_objs + s.active_objs,
                num_objs: acc.num_objs + s.num_objs,
                slab_pages: acc.slab_pages + s.slab_pages,
                obj_size: 0,
            }
        },
    )
}
