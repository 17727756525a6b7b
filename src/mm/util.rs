// SPDX-License-Identifier: GPL-2.0-only
//! kvmalloc and friends (Linux 5.10: mm/util.c): try kmalloc, which gives
//! physically contiguous memory cheaply, and fall back to vmalloc when the
//! page allocator cannot find a contiguous block; `kvfree` tells the two
//! apart by address (`is_vmalloc_addr`).
//!
//! ```text
//! kvmalloc / kvzalloc / kvmalloc_array / kvcalloc
//!   -> kvmalloc_node(size, gfp, node)
//!        -> kmalloc_node          (+__GFP_NORETRY|__GFP_NOWARN above a page)
//!        -> __vmalloc_node        (only for GFP_KERNEL-compatible requests
//!                                  above a page)
//! kvfree -> vfree (vmalloc address) or kfree
//! ```
//!
//! One difference from Linux: this kernel's `kfree` needs the object's size
//! (the kmalloc caches keep no per-page owner, which SLUB finds through
//! `virt_to_head_page()->slab_cache`). So the kmalloc half of kvmalloc keeps
//! the size in a 16-byte header in front of the object, and `kvfree(addr)`
//! reads it back; memory from `kvmalloc` must be freed with `kvfree` (as in
//! Linux), never with `kfree`.

use super::page_alloc;
use super::slab;
use super::vmalloc::{self as vm, Caller};
use crate::arch::memory::*;
use crate::arch::mm::mmu::{__pa, __va};
use core::panic::Location;
use core::ptr::{self, NonNull};

// ---------------------------------------------------------------------------
// gfp flags and nodes (Linux 5.10: include/linux/gfp.h, numa.h)
// ---------------------------------------------------------------------------
//
// The values are 5.10's, so that a flag word reads the same in GDB as in
// Linux. The vmalloc pipeline does not take gfp flags or a node yet (being
// added in parallel); until then only the bits this file acts on matter.

/// Linux's `gfp_t`.
#[allow(non_camel_case_types)]
pub type gfp_t = u32;

pub const __GFP_DMA32: gfp_t = 0x04;
pub const __GFP_HIGH: gfp_t = 0x20;
pub const __GFP_IO: gfp_t = 0x40;
pub const __GFP_FS: gfp_t = 0x80;
pub const __GFP_ZERO: gfp_t = 0x100;
pub const __GFP_ATOMIC: gfp_t = 0x200;
pub const __GFP_DIRECT_RECLAIM: gfp_t = 0x400;
pub const __GFP_KSWAPD_RECLAIM: gfp_t = 0x800;
pub const __GFP_NOWARN: gfp_t = 0x2000;
pub const __GFP_RETRY_MAYFAIL: gfp_t = 0x4000;
pub const __GFP_NORETRY: gfp_t = 0x10000;
pub const __GFP_RECLAIM: gfp_t = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
pub const GFP_KERNEL: gfp_t = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
pub const GFP_ATOMIC: gfp_t = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM;
pub const GFP_NOWAIT: gfp_t = __GFP_KSWAPD_RECLAIM;
pub const GFP_DMA32: gfp_t = __GFP_DMA32;

/// Linux's NUMA node number (`int nid`).
pub type NodeId = i32;
/// Any node (Linux: NUMA_NO_NODE).
pub const NUMA_NO_NODE: NodeId = -1;

// ---------------------------------------------------------------------------
// The kmalloc half
// ---------------------------------------------------------------------------

/// Bytes in front of a kvmalloc'd kmalloc object: its size (16, not 8, so
/// the object keeps the 16-byte alignment of the kmalloc-16+ caches).
const KV_HDR: usize = 16;

/// Pages for a kmalloc object bigger than the largest kmalloc cache
/// (Linux's kmalloc_large: straight from the page allocator).
fn kmalloc_large_order(total: usize) -> usize {
    total.div_ceil(PAGE_SIZE).next_power_of_two().trailing_zeros() as usize
}

/// kmalloc_node with a size header (see the module comment): `size` bytes,
/// zeroed with __GFP_ZERO (or init_on_alloc), or null. One allocation: a
/// kmalloc-N object up to a page with its header, else 2^order pages.
fn kvmalloc_kmalloc(size: usize, flags: gfp_t, _node: NodeId) -> *mut u8 {
    let Some(total) = size.checked_add(KV_HDR) else {
        return ptr::null_mut();
    };
    let hdr = if total <= PAGE_SIZE {
        slab::kmalloc(total).map_or(ptr::null_mut(), NonNull::as_ptr)
    } else {
        let order = kmalloc_large_order(total);
        if order >= page_alloc::MAX_ORDER {
            return ptr::null_mut();
        }
        // __GFP_NORETRY: one attempt, no reclaim (which this page allocator
        // never does anyway).
        page_alloc::alloc_pages(order).map_or(ptr::null_mut(), |pa| __va(pa).0 as *mut u8)
    };
    if hdr.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: hdr is a fresh, writable allocation of at least `total` bytes,
    // 16-byte aligned (a power-of-two kmalloc object of 16+ bytes, or pages).
    unsafe {
        (hdr as *mut usize).write(size);
        let obj = hdr.add(KV_HDR);
        if flags & __GFP_ZERO != 0 || vm::init_on_alloc() {
            ptr::write_bytes(obj, 0, size);
        }
        obj
    }
}

/// Free what [`kvmalloc_kmalloc`] returned.
///
/// # Safety
///
/// `obj` came from `kvmalloc_kmalloc`, is not freed yet, and is not used
/// afterwards.
unsafe fn kvmalloc_kfree(obj: *mut u8) {
    // SAFETY: the header in front of obj is ours (the caller's contract).
    let hdr = unsafe { obj.sub(KV_HDR) };
    // SAFETY: as above: written by kvmalloc_kmalloc, aligned.
    let total = unsafe { (hdr as *const usize).read() } + KV_HDR;
    if total <= PAGE_SIZE {
        // SAFETY: hdr came from kmalloc(total) and is dead from now on.
        unsafe { slab::kfree(NonNull::new_unchecked(hdr), total) };
    } else {
        page_alloc::__free_pages(__pa(VirtAddr(hdr as usize)), kmalloc_large_order(total));
    }
}

// ---------------------------------------------------------------------------
// kvmalloc
// ---------------------------------------------------------------------------

/// Linux's kvmalloc_node: kmalloc first; for more than a page, quietly
/// (`__GFP_NORETRY | __GFP_NOWARN`), then vmalloc. Requests that are not
/// GFP_KERNEL-compatible (GFP_ATOMIC, GFP_NOWAIT) never fall back: vmalloc
/// allocates its page tables and metadata as GFP_KERNEL. Memory up to a
/// page never falls back either (kmalloc of that much only fails when
/// memory is really gone). Null on failure.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn kvmalloc_node(size: usize, flags: gfp_t, node: NodeId) -> *mut u8 {
    __kvmalloc_node(size, flags, node, Location::caller())
}

/// kvmalloc_node with the caller given (the `__builtin_return_address(0)`
/// Linux passes down to `__vmalloc_node`).
pub fn __kvmalloc_node(size: usize, flags: gfp_t, node: NodeId, caller: Caller) -> *mut u8 {
    if size == 0 {
        return ptr::null_mut(); // Linux: ZERO_SIZE_PTR; nothing to hand out here
    }
    if flags & GFP_KERNEL != GFP_KERNEL {
        return kvmalloc_kmalloc(size, flags, node);
    }
    let mut kmalloc_flags = flags;
    if size > PAGE_SIZE {
        kmalloc_flags |= __GFP_NOWARN;
        if kmalloc_flags & __GFP_RETRY_MAYFAIL == 0 {
            kmalloc_flags |= __GFP_NORETRY;
        }
    }
    let ret = kvmalloc_kmalloc(size, kmalloc_flags, node);
    if !ret.is_null() || size <= PAGE_SIZE {
        return ret;
    }
    // MERGE: becomes __vmalloc_node(size, 1, flags, node, caller) once the
    // pipeline takes gfp flags and a node.
    let zero = flags & __GFP_ZERO != 0 || vm::init_on_alloc();
    vm::__vmalloc_node(size, 1, zero, caller) as *mut u8
}

/// Linux's kvmalloc: kvmalloc_node on any node.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn kvmalloc(size: usize, flags: gfp_t) -> *mut u8 {
    __kvmalloc_node(size, flags, NUMA_NO_NODE, Location::caller())
}

/// Linux's kvzalloc: kvmalloc, zeroed.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn kvzalloc(size: usize, flags: gfp_t) -> *mut u8 {
    __kvmalloc_node(size, flags | __GFP_ZERO, NUMA_NO_NODE, Location::caller())
}

/// Linux's kvzalloc_node.
#[track_caller]
#[inline(never)]
pub fn kvzalloc_node(size: usize, flags: gfp_t, node: NodeId) -> *mut u8 {
    __kvmalloc_node(size, flags | __GFP_ZERO, node, Location::caller())
}

/// Linux's kvmalloc_array: `n` elements of `size` bytes; null if the
/// product overflows.
#[track_caller]
#[inline(never)]
pub fn kvmalloc_array(n: usize, size: usize, flags: gfp_t) -> *mut u8 {
    match n.checked_mul(size) {
        Some(bytes) => __kvmalloc_node(bytes, flags, NUMA_NO_NODE, Location::caller()),
        None => ptr::null_mut(),
    }
}

/// Linux's kvcalloc: kvmalloc_array, zeroed.
#[track_caller]
#[inline(never)]
pub fn kvcalloc(n: usize, size: usize, flags: gfp_t) -> *mut u8 {
    match n.checked_mul(size) {
        Some(bytes) => __kvmalloc_node(bytes, flags | __GFP_ZERO, NUMA_NO_NODE, Location::caller()),
        None => ptr::null_mut(),
    }
}

/// Linux's kvfree: free memory from the kvmalloc family, whichever half it
/// came from (`is_vmalloc_addr`). kvfree(NULL) is a no-op.
///
/// # Safety
///
/// `addr` is null or came from the kvmalloc family, is not freed yet and
/// is not used afterwards.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn kvfree(addr: *const u8) {
    if addr.is_null() {
        return;
    }
    if is_vmalloc_addr(addr as usize) {
        vm::vfree(addr);
    } else {
        // SAFETY: not a vmalloc address, so the kmalloc half gave it out
        // (the caller's contract), and it dies here.
        unsafe { kvmalloc_kfree(addr as *mut u8) };
    }
}

/// Keep the entry points in the ELF for GDB even if nothing calls them
/// (the linker's --gc-sections would drop them).
#[allow(dead_code)]
struct KeepForGdb([*const (); 4]);
// SAFETY: the addresses are never used for anything but being there.
unsafe impl Sync for KeepForGdb {}
#[used]
static KEEP_FOR_GDB: KeepForGdb = KeepForGdb([
    kvmalloc_node as *const (),
    kvmalloc as *const (),
    kvzalloc as *const (),
    kvfree as *const (),
]);
