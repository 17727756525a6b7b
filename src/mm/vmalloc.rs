// SPDX-License-Identifier: GPL-2.0-only
//! vmalloc (Linux 5.10: mm/vmalloc.c): virtually contiguous kernel memory
//! in `[VMALLOC_START, VMALLOC_END)`, backed by pages taken one at a time
//! from the buddy allocator.
//!
//! ```text
//! vmalloc / vzalloc / vmalloc_node / __vmalloc / __vmalloc_node
//!   -> __vmalloc_node_range              size checks
//!        -> __get_vm_area_node           vm_struct + guard page
//!             -> alloc_vmap_area         vmap_area from its cache
//!                  -> __alloc_vmap_area  lowest fit in the augmented free tree
//!             -> setup_vmalloc_vm
//!        -> __vmalloc_area_node          page array, pages, map_kernel_range
//!        -> clear_vm_uninitialized_flag
//! vfree / vunmap -> __vunmap -> remove_vm_area -> free_unmap_vmap_area
//!   -> free_vmap_area_noflush (llist_add to vmap_purge_list)
//!   -> try_purge_vmap_area_lazy -> __purge_vmap_area_lazy
//!      (llist_del_all, one TLB flush for the whole batch, then
//!      merge_or_add_vmap_area)
//! ```
//!
//! Every stage keeps Linux's name, is `#[no_mangle]` and `#[inline(never)]`,
//! so `break alloc_vmap_area` works in GDB. The tree algorithms are in
//! `crate::mm::vmap_tree` (host-tested); this file owns the global trees,
//! their locks, the object caches and the page tables.
//!
//! Locking, as in 5.10 (all spinlocks; every CPU may call any entry point):
//!
//! - `vmap_area_lock`: the busy tree `vmap_area_root` and its address-sorted
//!   list (`vmap_area_list`), and each busy area's `vm` link;
//! - `free_vmap_area_lock`: the free tree `free_vmap_area_root`;
//! - `vmap_purge_lock`: serialises purges (one purger releases fragmented
//!   vmap blocks, drains the list and flushes);
//!   `try_purge_vmap_area_lazy` only trylocks it, so a CPU that
//!   crosses `lazy_max_pages()` while another purges just goes on;
//! - no lock: `vmap_purge_list`, the lazily freed areas, a lock-free llist
//!   (`llist_add` from any CPU, `llist_del_all` by the purger), and
//!   `vmap_lazy_nr`, an atomic.
//!
//! Order (outer first), never the other way round: `vmap_purge_lock` ->
//! `vmap_area_lock` or `free_vmap_area_lock` (never both at once, except
//! in the checkers, which take busy then free) -> `vmap_area_cachep`'s lock
//! -> `init_mm` (page tables) -> the zone lock of the buddy allocator.
//! The vmap block locks (vmap_block.rs: `vmap_blocks`, a
//! `vmap_block_queue`, a block's lock) sit between `vmap_purge_lock`, under
//! which a purge releases fragmented blocks, and the tree locks; a block
//! path that frees an area only trylocks `vmap_purge_lock`. No interrupt handler allocates or frees vmalloc memory (the PL011
//! RX and timer handlers do not; per-CPU work runs from the idle loop, not
//! in the IPI handler), so the vmalloc locks are taken with IRQs as they
//! are; only the per-cpu page lists mask IRQs (page_alloc.rs).

use super::gfp::{__GFP_ZERO, GFP_DMA32, GFP_KERNEL, GFP_RECLAIM_MASK, gfp_t};
use super::numa::{MAX_NUMNODES, NUMA_NO_NODE};
use super::page_alloc::{self, warn_alloc};
use super::slab::{self, KmemCache};
use super::vmap_block::purge_fragmented_blocks_allcpus;
use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
use crate::arch::memory::*;
use crate::arch::mm::mmu as paging;
use crate::arch::mm::mmu::{KernelPgtableEnv, flush_tlb_kernel_range, with_init_mm};
use crate::arch::mm::pgtable::{PAGE_KERNEL, PageProt, PgtableEnv, PgtableError, pgprot_nx};
use crate::kernel::locking::spinlock::{SpinLock, SpinLockGuard};
use crate::mm::vmap_tree::{
    self, __alloc_vmap_area, __find_vmap_area, VmapArea, VmapAreaAlloc, VmapAreaRoot, VmapOwner, insert_vmap_area,
    merge_or_add_vmap_area, merge_or_add_vmap_area_below, unlink_va,
};
use crate::{pr_err, pr_info, pr_warn};
use core::fmt::{self, Write};
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

// ---------------------------------------------------------------------------
// Linux's error returns (include/linux/err.h, errno-base.h)
// ---------------------------------------------------------------------------
//
// The Linux-named entry points that can fail in more than one way return
// what Linux returns (a pointer or ERR_PTR, an int errno) rather than a
// Result: a Result this large travels through memory the caller provides,
// and GDB's `finish` cannot find that memory again after the return
// ("Cannot access memory at address 0x5"), while a pointer or an integer
// comes back in x0 and prints. Typed `try_*` functions stay underneath.

pub const ENOMEM: i32 = 12;
pub const EBUSY: i32 = 16;
pub const EINVAL: i32 = 22;
/// The highest errno an error pointer can carry.
const MAX_ERRNO: usize = 4095;

/// A negative errno as a pointer into the last page of the address space.
#[allow(non_snake_case)]
pub fn ERR_PTR<T>(error: i32) -> *mut T {
    debug_assert!(error < 0 && error.unsigned_abs() as usize <= MAX_ERRNO);
    error as isize as usize as *mut T
}

/// Is `ptr` an [`ERR_PTR`] (rather than a pointer to an object or null)?
#[allow(non_snake_case)]
pub fn IS_ERR<T>(ptr: *const T) -> bool {
    ptr as usize >= MAX_ERRNO.wrapping_neg()
}

/// The negative errno an [`ERR_PTR`] carries.
#[allow(non_snake_case)]
pub fn PTR_ERR<T>(ptr: *const T) -> i32 {
    ptr as usize as isize as i32
}

// ---------------------------------------------------------------------------
// vm_struct and its flags
// ---------------------------------------------------------------------------

/// `vm_struct.flags` (values as in 5.10's include/linux/vmalloc.h).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(transparent)]
pub struct VmFlags(pub u32);

impl VmFlags {
    pub const VM_IOREMAP: VmFlags = VmFlags(0x01);
    pub const VM_ALLOC: VmFlags = VmFlags(0x02);
    pub const VM_MAP: VmFlags = VmFlags(0x04);
    pub const VM_USERMAP: VmFlags = VmFlags(0x08);
    pub const VM_UNINITIALIZED: VmFlags = VmFlags(0x20);
    pub const VM_NO_GUARD: VmFlags = VmFlags(0x40);
    /// Flush the TLB (and, with rodata_full, reset the direct map) at
    /// unmap, before the pages are freed: for areas set_memory_* changed.
    pub const VM_FLUSH_RESET_PERMS: VmFlags = VmFlags(0x100);

    pub const fn empty() -> Self {
        VmFlags(0)
    }
    pub const fn contains(self, other: VmFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn union(self, other: VmFlags) -> VmFlags {
        VmFlags(self.0 | other.0)
    }
    pub const fn without(self, other: VmFlags) -> VmFlags {
        VmFlags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for VmFlags {
    type Output = VmFlags;
    fn bitor(self, rhs: VmFlags) -> VmFlags {
        self.union(rhs)
    }
}

/// Who asked for an area: the caller's source location (Linux keeps a
/// return address and prints it with %pS; we keep file:line, which needs no
/// symbol table at run time).
pub type Caller = &'static Location<'static>;

/// Linux's `struct vm_struct`: one mapped area.
#[repr(C)]
pub struct VmStruct {
    /// Next early area (vmlist, before vmalloc_init only).
    pub next: *mut VmStruct,
    pub addr: usize,
    /// Size including the guard page.
    pub size: usize,
    pub flags: VmFlags,
    /// Physical address of each page (Linux: struct page *pages[]).
    pub pages: *mut PhysAddr,
    pub nr_pages: usize,
    pub phys_addr: PhysAddr,
    pub caller: Caller,
}

impl VmStruct {
    /// Linux's get_vm_area_size: the usable size, without the guard page.
    pub fn get_vm_area_size(&self) -> usize {
        if self.flags.contains(VmFlags::VM_NO_GUARD) {
            self.size
        } else {
            self.size - PAGE_SIZE
        }
    }
}

// ---------------------------------------------------------------------------
// Global state
// ---------------------------------------------------------------------------

/// Busy areas (Linux: vmap_area_root + vmap_area_list, under vmap_area_lock).
#[unsafe(no_mangle)]
pub static vmap_area_root: SpinLock<VmapAreaRoot> = SpinLock::new(VmapAreaRoot::new_busy());
/// Free space, augmented with subtree_max_size (free_vmap_area_lock).
#[unsafe(no_mangle)]
pub static free_vmap_area_root: SpinLock<VmapAreaRoot> = SpinLock::new(VmapAreaRoot::new_free());
/// Lazily freed areas waiting for one batched TLB flush (5.10's
/// `vmap_purge_list`, a `struct llist_head`): a lock-free singly linked
/// list through `VmapArea::purge_next`. Any CPU pushes (`llist_add`); the
/// purger, under `vmap_purge_lock`, takes the whole list at once
/// (`llist_del_all`). Walkers (vmallocinfo, the checker) hold
/// `vmap_purge_lock`, so no node they see is merged and freed under them.
#[unsafe(no_mangle)]
pub static vmap_purge_list: AtomicPtr<VmapArea> = AtomicPtr::new(ptr::null_mut());
/// Serialises purges (5.10's `vmap_purge_lock`, a mutex there).
static VMAP_PURGE_LOCK: SpinLock<()> = SpinLock::new(());
/// The vmap_area object cache (5.10's vmap_area_cachep).
#[unsafe(no_mangle)]
pub static vmap_area_cachep: SpinLock<KmemCache> = SpinLock::new(KmemCache::new(
    "vmap_area",
    core::mem::size_of::<VmapArea>(),
    core::mem::align_of::<VmapArea>(),
));

/// vm_struct objects. Linux kzallocs them (kmalloc-64, a slab cache); the
/// general-purpose heap here scans a free list per size class on every
/// free, which made a free cost O(live objects) (see docs/performance.md).
#[unsafe(no_mangle)]
pub static vm_struct_cachep: SpinLock<KmemCache> = SpinLock::new(KmemCache::new(
    "vm_struct",
    core::mem::size_of::<VmStruct>(),
    core::mem::align_of::<VmStruct>(),
));

/// Pages held by vmalloc's object caches (vmap_area, vm_struct,
/// kmalloc-*): meminfo's Slab.
pub fn slab_pages() -> usize {
    vmap_area_cachep.lock().stats().slab_pages
        + vm_struct_cachep.lock().stats().slab_pages
        + slab::kmalloc_stats().slab_pages
}

/// Objects handed out by vmalloc's metadata caches (vm_struct + kmalloc-*),
/// for leak checks.
pub fn metadata_objects() -> usize {
    vm_struct_cachep.lock().stats().active_objs + slab::kmalloc_stats().active_objs
}

/// kzalloc(sizeof(struct vm_struct)): a cleared vm_struct, or null.
#[inline]
pub fn alloc_vm_struct(caller: Caller) -> *mut VmStruct {
    let Some(p) = vm_struct_cachep.lock().alloc() else {
        return ptr::null_mut();
    };
    let area = p.as_ptr() as *mut VmStruct;
    // SAFETY: a fresh object of the vm_struct cache: size and alignment fit.
    unsafe {
        area.write(VmStruct {
            next: ptr::null_mut(),
            addr: 0,
            size: 0,
            flags: VmFlags::empty(),
            pages: ptr::null_mut(),
            nr_pages: 0,
            phys_addr: PhysAddr(0),
            caller,
        })
    };
    area
}

/// kfree of a vm_struct from [`alloc_vm_struct`].
///
/// # Safety
///
/// `area` is null or came from [`alloc_vm_struct`] and was not freed
/// before; nothing (no busy area's owner link either) uses it afterwards.
#[inline]
pub unsafe fn free_vm_struct(area: *mut VmStruct) {
    if let Some(p) = NonNull::new(area) {
        // SAFETY: came from vm_struct_cachep and is no longer used (caller).
        unsafe { vm_struct_cachep.lock().free(p.cast()) };
    }
}

/// The page array of an area of `nr_pages` (Linux's __vmalloc_area_node:
/// kmalloc_node up to a page, else __vmalloc_node with `nested_gfp` on
/// `node`), zeroed as 5.10's `__GFP_ZERO` has it; null on failure.
pub fn alloc_pages_array(nr_pages: usize, nested_gfp: gfp_t, node: i32, caller: Caller) -> *mut PhysAddr {
    let array_size = nr_pages * core::mem::size_of::<PhysAddr>();
    if page_array_is_vmalloced(nr_pages) {
        __vmalloc_node(array_size, 1, nested_gfp, node, caller) as *mut PhysAddr
    } else {
        let Some(p) = slab::kmalloc(array_size) else {
            return ptr::null_mut();
        };
        // Zeroed entry by entry: the generic memset (compiler_builtins) goes
        // byte by byte below 16 bytes, and a 1-page area's array is 8; the
        // volatile stores keep the compiler from turning this loop back
        // into a memset call.
        let pages = p.as_ptr() as *mut PhysAddr;
        for i in 0..nr_pages {
            // SAFETY: a fresh kmalloc object of at least array_size bytes,
            // aligned for PhysAddr (kmalloc objects are 8-aligned); i < nr_pages.
            unsafe { pages.add(i).write_volatile(PhysAddr(0)) };
        }
        pages
    }
}

/// Free what [`alloc_pages_array`] returned for the same `nr_pages`
/// (Linux: kvfree). Decided by size, as the allocation was.
///
/// # Safety
///
/// `pages` is null or what [`alloc_pages_array`] returned for this
/// `nr_pages`, not freed before and not used afterwards.
pub unsafe fn free_pages_array(pages: *mut PhysAddr, nr_pages: usize) {
    let array_size = nr_pages * core::mem::size_of::<PhysAddr>();
    if page_array_is_vmalloced(nr_pages) {
        __vunmap(pages as usize, true);
    } else if let Some(p) = NonNull::new(pages) {
        // SAFETY: came from kmalloc(array_size) and is no longer used (caller).
        unsafe { slab::kfree(p.cast(), array_size) };
    }
}

/// Early areas registered before vmalloc_init (the kernel image segments).
struct VmList(*mut VmStruct);
// SAFETY: only touched at boot, under its lock.
unsafe impl Send for VmList {}
static VMLIST: SpinLock<VmList> = SpinLock::new(VmList(ptr::null_mut()));

/// Pages waiting on the purge list (Linux: vmap_lazy_nr).
static VMAP_LAZY_NR: AtomicUsize = AtomicUsize::new(0);
/// Pages backing vmalloc areas (Linux: nr_vmalloc_pages).
static NR_VMALLOC_PAGES: AtomicUsize = AtomicUsize::new(0);
/// Counters for tests and the shell.
pub static NR_PURGES: AtomicUsize = AtomicUsize::new(0);
pub static NR_LAZY_FREES: AtomicUsize = AtomicUsize::new(0);

/// The vmap_area cache seen as the node allocator of the tree code.
pub(super) struct CacheAlloc;

/// One spare `vmap_area` per CPU for the left part of a no-edge split
/// (5.10's per-CPU `ne_fit_preload_node`). `alloc_vmap_area` fills it
/// before it takes `free_vmap_area_lock`, so the allocation that may have
/// to wait is not made with the lock held.
#[unsafe(no_mangle)]
pub static ne_fit_preload_node: [AtomicPtr<VmapArea>; NR_CPUS] = [const { AtomicPtr::new(ptr::null_mut()) }; NR_CPUS];

/// Is this CPU's `ne_fit_preload_node` filled? (For the fault-injection
/// sweep: the preload is the one allocation whose failure vmalloc
/// survives, as in 5.10.)
pub fn ne_fit_preloaded() -> bool {
    !ne_fit_preload_node[smp_processor_id()]
        .load(Ordering::Relaxed)
        .is_null()
}

/// The spares parked in `ne_fit_preload_node` (objects of the vmap_area
/// cache that no tree holds).
fn ne_fit_preload_count() -> usize {
    ne_fit_preload_node
        .iter()
        .filter(|slot| !slot.load(Ordering::Relaxed).is_null())
        .count()
}

/// The node source of `__alloc_vmap_area` under `free_vmap_area_lock`:
/// a no-edge split takes `cpu`'s preloaded node and falls back to the
/// cache when there is none (5.10: `GFP_NOWAIT`).
struct NeFitPreload {
    cpu: usize,
}

// SAFETY: both sources hand out vmap_area cache objects; nodes go back to
// the cache.
unsafe impl VmapAreaAlloc for NeFitPreload {
    fn alloc_vmap_area_node(&mut self) -> Option<NonNull<VmapArea>> {
        NonNull::new(ne_fit_preload_node[self.cpu].swap(ptr::null_mut(), Ordering::Relaxed))
            .or_else(|| CacheAlloc.alloc_vmap_area_node())
    }
    fn free_vmap_area_node(&mut self, va: NonNull<VmapArea>) {
        CacheAlloc.free_vmap_area_node(va)
    }
}

// SAFETY: nodes come from the cache, are big and aligned enough for
// VmapArea, and go back to it.
unsafe impl VmapAreaAlloc for CacheAlloc {
    fn alloc_vmap_area_node(&mut self) -> Option<NonNull<VmapArea>> {
        vmap_area_cachep.lock().alloc().map(|p| p.cast())
    }
    fn free_vmap_area_node(&mut self, va: NonNull<VmapArea>) {
        // SAFETY: the tree code hands back nodes that came from alloc.
        unsafe { vmap_area_cachep.lock().free(va.cast()) }
    }
}

/// Linux's lazy_max_pages(): fls(online CPUs) * 32 MiB worth of pages
/// (more CPUs, more TLB-flush IPIs saved in Linux; the same batching here).
pub fn lazy_max_pages() -> usize {
    let cpus = crate::arch::kernel::smp::num_online_cpus().max(1);
    let fls = usize::BITS as usize - cpus.leading_zeros() as usize;
    fls * (32 * 1024 * 1024 / PAGE_SIZE)
}

// ---------------------------------------------------------------------------
// Page-table helpers
// ---------------------------------------------------------------------------

/// The kernel env with TLB flushes deferred: unmapping a vmalloc area
/// leaves the flush to the lazy purge (Linux: unmap_kernel_range_noflush).
struct NoFlushEnv(KernelPgtableEnv);

// SAFETY: delegates to the kernel env; only the leaf TLB flush is deferred
// (the lazy purge flushes before the range is reused).
unsafe impl PgtableEnv for NoFlushEnv {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        self.0.alloc_table()
    }
    fn free_table(&mut self, pa: PhysAddr) {
        self.0.free_table(pa)
    }
    fn table_ptr(&self, pa: PhysAddr, level: usize) -> *mut u64 {
        self.0.table_ptr(pa, level)
    }
    fn sync_new_entries(&mut self) {
        self.0.sync_new_entries()
    }
    fn flush_tlb_kernel_range(&mut self, _start: VirtAddr, _end: VirtAddr) {}
    fn flush_tlb_pgtable(&mut self, start: VirtAddr, end: VirtAddr) {
        self.0.flush_tlb_pgtable(start, end)
    }
}

/// Linux's map_kernel_range: map `pages` at `addr`; 0, or a negative errno
/// after saying what failed. An integer, as in Linux, so that GDB's
/// `finish` can print it (see [`ERR_PTR`]). The one caller of the page
/// table's map_pages, so that it stays inlined here as before.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn map_kernel_range(addr: usize, pages: &[PhysAddr], prot: PageProt) -> i32 {
    match with_init_mm(|pt, env| pt.map_pages(env, VirtAddr(addr), pages, prot)) {
        Ok(()) => 0,
        Err(e) => {
            pr_warn!("map_kernel_range({:#x}, {} pages): {}", addr, pages.len(), e);
            match e {
                PgtableError::NoMemory { .. } => -ENOMEM,
                PgtableError::AlreadyMapped { .. } => -EBUSY,
                _ => -EINVAL,
            }
        }
    }
}

/// Clear the PTEs of [addr, addr+size) without flushing the TLB.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn unmap_kernel_range_noflush(addr: usize, size: usize) {
    let r = with_init_mm(|pt, env| {
        let mut nf = NoFlushEnv(KernelPgtableEnv);
        let _ = env;
        pt.unmap_range_allow_holes(&mut nf, VirtAddr(addr), size)
    });
    if let Err(e) = r {
        pr_err!("unmap_kernel_range_noflush({:#x}, {:#x}): {}", addr, size, e);
    }
}

// ---------------------------------------------------------------------------
// Boot: early areas, vmalloc_init
// ---------------------------------------------------------------------------

/// Register an area that already exists before vmalloc_init (Linux:
/// vm_area_add_early; arm64 registers the kernel image segments).
///
/// # Safety
/// `vm` points to a valid VmStruct that lives forever and is on no list.
unsafe fn vm_area_add_early(vm: *mut VmStruct) {
    let mut list = VMLIST.lock();
    // SAFETY: boot-time list of leaked VmStructs, sorted by address; `vm`
    // is valid per the contract.
    unsafe {
        let mut p: *mut *mut VmStruct = &mut list.0;
        while !(*p).is_null() {
            let tmp = *p;
            if (*tmp).addr >= (*vm).addr {
                assert!(
                    (*tmp).addr >= (*vm).addr + (*vm).size,
                    "vm_area_add_early: overlapping areas"
                );
                break;
            }
            assert!(
                (*tmp).addr + (*tmp).size <= (*vm).addr,
                "vm_area_add_early: overlapping areas"
            );
            p = &mut (*tmp).next;
        }
        (*vm).next = *p;
        *p = vm;
    }
}

/// Register the kernel image segments as early vm areas (Linux:
/// map_kernel_segment's vm_area_add_early).
fn register_kernel_segments() {
    for seg in paging::kernel_segments() {
        let vm = alloc::boxed::Box::leak(alloc::boxed::Box::new(VmStruct {
            next: ptr::null_mut(),
            addr: seg.start.0,
            size: (seg.end.0 - seg.start.0).next_multiple_of(PAGE_SIZE),
            flags: VmFlags::VM_MAP | VmFlags::VM_NO_GUARD,
            pages: ptr::null_mut(),
            nr_pages: 0,
            phys_addr: paging::__pa_symbol(seg.start.0),
            caller: seg.caller,
        }));
        // SAFETY: leaked just above, on no list yet.
        unsafe { vm_area_add_early(vm) };
    }
}

/// Fill the free tree with everything between busy areas (Linux:
/// vmap_init_free_space).
fn vmap_init_free_space() {
    let busy = vmap_area_root.lock();
    let mut free = free_vmap_area_root.lock();
    let mut cursor = VMALLOC_START;
    let mut add = |start: usize, end: usize| {
        let node = CacheAlloc
            .alloc_vmap_area_node()
            .expect("vmap_init_free_space: out of memory");
        // SAFETY: a fresh node from the cache.
        unsafe {
            node.as_ptr().write(VmapArea::new(start, end));
            insert_vmap_area(&mut free, node).expect("vmap_init_free_space: overlapping free ranges");
        }
    };
    for va in busy.iter() {
        if va.va_start > cursor {
            add(cursor, va.va_start);
        }
        cursor = cursor.max(va.va_end);
    }
    if cursor < VMALLOC_END {
        add(cursor, VMALLOC_END);
    }
}

/// Linux's vmalloc_init: busy areas for the early vm_structs, then the free
/// tree; registers the oops helper that names vmalloc addresses.
pub fn vmalloc_init() {
    register_kernel_segments();
    {
        let list = VMLIST.lock();
        let mut busy = vmap_area_root.lock();
        let mut vm = list.0;
        while !vm.is_null() {
            let node = CacheAlloc.alloc_vmap_area_node().expect("vmalloc_init: out of memory");
            // SAFETY: fresh node; vm is a leaked early VmStruct.
            unsafe {
                let mut va = VmapArea::new((*vm).addr, (*vm).addr + (*vm).size);
                va.vm = VmapOwner::VmStruct(NonNull::new_unchecked(vm));
                node.as_ptr().write(va);
                insert_vmap_area(&mut busy, node).expect("vmalloc_init: early areas overlap");
                vm = (*vm).next;
            }
        }
    }
    vmap_init_free_space();
    crate::arch::kernel::traps::register_addr_describer(describe_vmalloc_addr);
    let free = free_vmap_area_root.lock();
    pr_info!(
        "vmalloc: [{:#x}-{:#x}) ready: {} early area(s), {} free range(s), lazy_max_pages {}",
        VMALLOC_START,
        VMALLOC_END,
        vmap_area_root.lock().len(),
        free.len(),
        lazy_max_pages()
    );
}

// ---------------------------------------------------------------------------
// Allocating address space
// ---------------------------------------------------------------------------

/// Take `size` bytes of address space in [vstart, vend) and put the area in
/// the busy tree. On exhaustion, purge the lazily freed areas (and the
/// fragmented vmap blocks) once and retry (Linux: alloc_vmap_area). Returns the area, or as Linux
/// ERR_PTR(-ENOMEM) when no node was left for it, ERR_PTR(-EBUSY) when no
/// range fits (said on the console).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn alloc_vmap_area(size: usize, align: usize, vstart: usize, vend: usize) -> *mut VmapArea {
    // Linux BUG_ONs these; a bad request that got through fails below as
    // "no fit" (__alloc_vmap_area checks it again).
    debug_assert!(size != 0 && size.is_multiple_of(PAGE_SIZE) && align.is_power_of_two());
    let Some(va) = CacheAlloc.alloc_vmap_area_node() else {
        return ERR_PTR(-ENOMEM);
    };
    let mut purged = false;
    let cpu = smp_processor_id();
    loop {
        // Preload this CPU with a node for a no-edge split, without the
        // lock held. A failure is no error: the split falls back to the
        // cache, and failing that the overflow path purges and retries.
        let pva = if ne_fit_preload_node[cpu].load(Ordering::Relaxed).is_null() {
            CacheAlloc.alloc_vmap_area_node()
        } else {
            None
        };
        let mut free = free_vmap_area_root.lock();
        if let Some(pva) = pva
            && ne_fit_preload_node[cpu]
                .compare_exchange(ptr::null_mut(), pva.as_ptr(), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            CacheAlloc.free_vmap_area_node(pva);
        }
        // vend means no fit (or no node for a split): Linux's "overflow".
        // SAFETY: the free tree's nodes are vmap_area cache objects, which
        // NeFitPreload frees to the cache and hands out (the preloaded one
        // or a fresh one).
        let addr = unsafe { __alloc_vmap_area(&mut free, size, align, vstart, vend, &mut NeFitPreload { cpu }) };
        drop(free);
        if addr != vend {
            // SAFETY: va is ours, fresh from the cache.
            unsafe {
                va.as_ptr().write(VmapArea::new(addr, addr + size));
                insert_vmap_area(&mut vmap_area_root.lock(), va).expect("alloc_vmap_area: busy tree overlap");
            }
            return va.as_ptr();
        }
        if !purged {
            purge_vmap_area_lazy();
            purged = true;
            continue;
        }
        CacheAlloc.free_vmap_area_node(va);
        pr_warn!(
            "vmap allocation for size {} failed: use vmalloc=<size> to increase size",
            size
        );
        return ERR_PTR(-EBUSY);
    }
}

/// Give a busy area that was never mapped straight back to the free tree,
/// with no lazy purge (Linux 5.10: free_vmap_area). Nothing to flush: no
/// PTE ever pointed into it.
///
/// # Safety
///
/// `va` came from [`alloc_vmap_area`], is still in the busy tree, and is
/// not used afterwards (its node goes back to the cache).
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn free_vmap_area(va: NonNull<VmapArea>) {
    // SAFETY: va came from alloc_vmap_area and is in the busy tree (caller);
    // after unlink_va it is ours, and its node goes back to the cache.
    unsafe {
        unlink_va(&mut vmap_area_lock(), va);
        if let Err(e) = merge_or_add_vmap_area(&mut free_vmap_area_root.lock(), va, &mut CacheAlloc) {
            pr_err!("free_vmap_area: {}; range leaked", e);
        }
    }
}

/// Tie an area to its vm_struct (Linux: setup_vmalloc_vm).
///
/// # Safety
///
/// `va` is a live area of the busy tree with no owner yet, and `vm` stays
/// valid (not freed, not moved) until `remove_vm_area` takes it off `va`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn setup_vmalloc_vm(vm: &mut VmStruct, va: NonNull<VmapArea>, flags: VmFlags, caller: Caller) {
    let _busy = vmap_area_lock();
    // SAFETY: va is in the busy tree (caller), protected by vmap_area_lock.
    let va = unsafe { &mut *va.as_ptr() };
    vm.flags = flags;
    vm.addr = va.va_start;
    vm.size = va.size();
    vm.caller = caller;
    va.vm = VmapOwner::VmStruct(NonNull::from(vm));
}

fn vmap_area_lock() -> SpinLockGuard<'static, VmapAreaRoot> {
    vmap_area_root.lock()
}

/// The vm_struct is fully set up: vmallocinfo may show it as such.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn clear_vm_uninitialized_flag(vm: &mut VmStruct) {
    // Publish the page array and mappings before the flag says so.
    core::sync::atomic::fence(Ordering::Release);
    vm.flags = vm.flags.without(VmFlags::VM_UNINITIALIZED);
}

/// Reserve address space with a guard page (unless VM_NO_GUARD) and its
/// vm_struct (Linux: __get_vm_area_node).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __get_vm_area_node(
    size: usize,
    align: usize,
    flags: VmFlags,
    start: usize,
    end: usize,
    caller: Caller,
) -> *mut VmStruct {
    let mut size = size.next_multiple_of(PAGE_SIZE);
    if size == 0 {
        return ptr::null_mut();
    }
    let mut align = align.max(1);
    if flags.contains(VmFlags::VM_IOREMAP) {
        // Natural alignment up to IOREMAP_MAX_ORDER, so big windows can
        // use block mappings (as Linux does).
        const IOREMAP_MAX_ORDER: u32 = (PUD_SHIFT) as u32;
        let order = size
            .next_power_of_two()
            .trailing_zeros()
            .clamp(PAGE_SHIFT as u32, IOREMAP_MAX_ORDER);
        align = 1 << order;
    }
    if !align.is_power_of_two() {
        pr_warn!("__get_vm_area_node: alignment {:#x} is not a power of two", align);
        return ptr::null_mut();
    }
    // kzalloc: a cleared vm_struct (fails as NULL, never aborts).
    let area = alloc_vm_struct(caller);
    if area.is_null() {
        pr_warn!(
            "get_vm_area: size {}, failed to allocate the vm_struct (caller {})",
            size,
            caller
        );
        return ptr::null_mut();
    }
    if !flags.contains(VmFlags::VM_NO_GUARD) {
        size += PAGE_SIZE;
    }
    let va = alloc_vmap_area(size, align, start, end);
    if IS_ERR(va) {
        // -EBUSY was reported by alloc_vmap_area itself.
        if PTR_ERR(va) == -ENOMEM {
            pr_warn!(
                "get_vm_area: size {}, no memory for the vmap_area (caller {})",
                size,
                caller
            );
        }
        // SAFETY: fresh from alloc_vm_struct, never published.
        unsafe { free_vm_struct(area) };
        return ptr::null_mut();
    }
    // SAFETY: not an error pointer: a live area in the busy tree.
    let va = unsafe { NonNull::new_unchecked(va) };
    // SAFETY: area is an initialised, exclusively owned VmStruct that lives
    // until remove_vm_area hands it back; va is fresh, with no owner.
    unsafe { setup_vmalloc_vm(&mut *area, va, flags, caller) };
    area
}

/// Linux's get_vm_area: address space only, caller recorded.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn get_vm_area(size: usize, flags: VmFlags) -> *mut VmStruct {
    __get_vm_area_node(size, 1, flags, VMALLOC_START, VMALLOC_END, Location::caller())
}

/// Linux's get_vm_area_caller.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn get_vm_area_caller(size: usize, flags: VmFlags, caller: Caller) -> *mut VmStruct {
    __get_vm_area_node(size, 1, flags, VMALLOC_START, VMALLOC_END, caller)
}

/// Linux's free_vm_area: undo get_vm_area (nothing was mapped by it).
///
/// # Safety
/// `area` is null or a live area returned by get_vm_area /
/// get_vm_area_caller, not freed before; it must not be used afterwards.
pub unsafe fn free_vm_area(area: *mut VmStruct) {
    if area.is_null() {
        return;
    }
    // SAFETY: per the contract, a live vm_struct.
    let addr = unsafe { (*area).addr };
    let ret = remove_vm_area(addr);
    if ret != area {
        pr_err!("free_vm_area({:#x}): area not found in the busy tree", addr);
        return;
    }
    // SAFETY: remove_vm_area took it off its area: ours, unused from now on.
    unsafe { free_vm_struct(area) };
}

// ---------------------------------------------------------------------------
// Backing pages
// ---------------------------------------------------------------------------

/// Allocate the page array, then the pages one at a time on `node`
/// (NUMA_NO_NODE: the current CPU's node; either way other nodes when it
/// runs out), then map them (Linux: __vmalloc_area_node). On any failure
/// the whole area is freed, `warn_alloc` reports it (unless __GFP_NOWARN)
/// and NULL is returned.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __vmalloc_area_node(area: &mut VmStruct, gfp_mask: gfp_t, prot: PageProt, node: i32) -> usize {
    // 5.10 also adds __GFP_NOWARN for the pages, then reports with it set,
    // which silences the report; the caller's flags decide it here.
    let nested_gfp = (gfp_mask & GFP_RECLAIM_MASK) | __GFP_ZERO;
    let zero = want_init_on_alloc(gfp_mask);
    let nr_pages = area.get_vm_area_size() >> PAGE_SHIFT;
    // The page array: kmalloc when small, else from vmalloc itself.
    let pages = alloc_pages_array(nr_pages, nested_gfp, node, area.caller);
    if pages.is_null() {
        return __vmalloc_area_fail(area, gfp_mask, AreaFailure::PageArray, nr_pages);
    }
    area.pages = pages;
    area.nr_pages = 0;
    for i in 0..nr_pages {
        // 5.10: alloc_page, or alloc_pages_node; its checks were made by
        // __vmalloc_node_range, so straight to __alloc_pages_node.
        let page = if node == NUMA_NO_NODE {
            page_alloc::alloc_pages(0)
        } else {
            page_alloc::__alloc_pages_node(node as usize, 0)
        };
        let Some(pa) = page else {
            NR_VMALLOC_PAGES.fetch_add(i, Ordering::Relaxed);
            return __vmalloc_area_fail(area, gfp_mask, AreaFailure::Pages { allocated: i }, nr_pages);
        };
        if zero {
            // SAFETY: a fresh page of ours, Normal memory in the linear map.
            unsafe { paging::clear_page(paging::__va(pa).0 as *mut u8) };
        }
        // SAFETY: i < nr_pages, the array's length.
        unsafe { pages.add(i).write(pa) };
        area.nr_pages = i + 1;
    }
    NR_VMALLOC_PAGES.fetch_add(nr_pages, Ordering::Relaxed);
    // SAFETY: the array holds nr_pages initialised entries.
    let page_slice = unsafe { core::slice::from_raw_parts(pages, nr_pages) };
    // map_kernel_range said why on failure.
    if map_kernel_range(area.addr, page_slice, prot) != 0 {
        return __vmalloc_area_fail(area, gfp_mask, AreaFailure::Map, nr_pages);
    }
    area.addr
}

/// Which step of __vmalloc_area_node failed.
enum AreaFailure {
    PageArray,
    /// After `allocated` pages.
    Pages {
        allocated: usize,
    },
    Map,
}

/// __vmalloc_area_node's `fail:` label: the report (warn_alloc), then the
/// whole area freed. Out of line, so the allocation path pays nothing for
/// the report's formatting.
#[cold]
#[inline(never)]
fn __vmalloc_area_fail(area: &mut VmStruct, gfp_mask: gfp_t, what: AreaFailure, nr_pages: usize) -> usize {
    let size = nr_pages * PAGE_SIZE;
    match what {
        AreaFailure::PageArray => warn_alloc(
            gfp_mask,
            format_args!(
                "vmalloc: allocation failure: {} bytes, failed to allocate page array",
                size
            ),
        ),
        AreaFailure::Pages { allocated } => warn_alloc(
            gfp_mask,
            format_args!(
                "vmalloc: allocation failure, allocated {} of {} bytes",
                allocated * PAGE_SIZE,
                size
            ),
        ),
        AreaFailure::Map => warn_alloc(
            gfp_mask,
            format_args!("vmalloc: allocation failure: {} bytes, failed to map pages", size),
        ),
    }
    __vfree_area(area);
    0
}

/// Free a vm_struct that is still in the busy tree, with whatever pages it
/// has so far (the failure path of __vmalloc_area_node).
fn __vfree_area(area: &mut VmStruct) {
    __vunmap(area.addr, true);
}

// ---------------------------------------------------------------------------
// The vmalloc family
// ---------------------------------------------------------------------------

/// Total RAM in pages (Linux: totalram_pages()).
fn totalram_pages() -> usize {
    page_alloc::totalram_pages()
}

/// The core: `size` bytes in [start, end) aligned to `align`, with `prot`,
/// pages from `node` (NUMA_NO_NODE: the current CPU's), zeroed if
/// `gfp_mask` has __GFP_ZERO or init_on_alloc is on (Linux:
/// __vmalloc_node_range). Returns 0 on failure, reported by warn_alloc
/// unless `gfp_mask` has __GFP_NOWARN.
#[unsafe(no_mangle)]
#[inline(never)]
#[allow(clippy::too_many_arguments)] // Linux's signature, argument for argument
pub fn __vmalloc_node_range(
    size: usize,
    align: usize,
    start: usize,
    end: usize,
    gfp_mask: gfp_t,
    prot: PageProt,
    vm_flags: VmFlags,
    node: i32,
    caller: Caller,
) -> usize {
    let real_size = size;
    let size = size.next_multiple_of(PAGE_SIZE);
    // One test for a node that is neither NUMA_NO_NODE (-1) nor below
    // MAX_NUMNODES: Linux would BUG in alloc_pages_node; refuse before
    // reserving anything.
    let bad_node = (node as u32).wrapping_add(1) > MAX_NUMNODES as u32;
    if size == 0 || (size >> PAGE_SHIFT) > totalram_pages() || bad_node {
        let why = if bad_node {
            RangeFailure::BadNode(node)
        } else {
            RangeFailure::Size { zero: size == 0 }
        };
        return __vmalloc_node_range_fail(gfp_mask, real_size, why);
    }
    let area = __get_vm_area_node(
        size,
        align,
        VmFlags::VM_ALLOC | VmFlags::VM_UNINITIALIZED | vm_flags,
        start,
        end,
        caller,
    );
    if area.is_null() {
        return __vmalloc_node_range_fail(gfp_mask, real_size, RangeFailure::NoVmArea(caller));
    }
    // SAFETY: area is live and ours until returned.
    let area = unsafe { &mut *area };
    let addr = __vmalloc_area_node(area, gfp_mask, prot, node);
    if addr == 0 {
        return 0;
    }
    clear_vm_uninitialized_flag(area);
    addr
}

/// Why __vmalloc_node_range refused or failed before the pages.
enum RangeFailure {
    /// Zero-sized, or more than total RAM.
    Size { zero: bool },
    /// A node id neither NUMA_NO_NODE nor below MAX_NUMNODES.
    BadNode(i32),
    /// __get_vm_area_node failed.
    NoVmArea(Caller),
}

/// __vmalloc_node_range's `fail:` label (warn_alloc), out of line so the
/// allocation path pays nothing for the report's formatting. Returns 0.
#[cold]
#[inline(never)]
fn __vmalloc_node_range_fail(gfp_mask: gfp_t, size: usize, why: RangeFailure) -> usize {
    match why {
        RangeFailure::Size { zero } => warn_alloc(
            gfp_mask,
            format_args!(
                "vmalloc: allocation failure: {} bytes, {} (RAM is {} pages)",
                size,
                if zero {
                    "zero-sized allocation"
                } else {
                    "exceeds total RAM"
                },
                totalram_pages()
            ),
        ),
        RangeFailure::BadNode(node) => warn_alloc(
            gfp_mask,
            format_args!(
                "vmalloc: allocation failure: {} bytes, no node {} (MAX_NUMNODES {})",
                size, node, MAX_NUMNODES
            ),
        ),
        RangeFailure::NoVmArea(caller) => warn_alloc(
            gfp_mask,
            format_args!(
                "vmalloc: allocation failure: {} bytes, no vm area (caller {})",
                size, caller
            ),
        ),
    }
    0
}

/// Linux's __vmalloc_node: anywhere in the vmalloc range.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __vmalloc_node(size: usize, align: usize, gfp_mask: gfp_t, node: i32, caller: Caller) -> usize {
    __vmalloc_node_range(
        size,
        align,
        VMALLOC_START,
        VMALLOC_END,
        gfp_mask,
        PAGE_KERNEL,
        VmFlags::empty(),
        node,
        caller,
    )
}

/// Linux's __vmalloc(size, gfp): pages from the current CPU's node.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __vmalloc(size: usize, gfp_mask: gfp_t) -> *mut u8 {
    __vmalloc_node(size, 1, gfp_mask, NUMA_NO_NODE, Location::caller()) as *mut u8
}

/// Linux's vmalloc: `size` bytes of virtually contiguous memory, or null.
/// Pages are zeroed when `init_on_alloc` is on (the default, as on Debian).
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmalloc(size: usize) -> *mut u8 {
    __vmalloc_node(size, 1, GFP_KERNEL, NUMA_NO_NODE, Location::caller()) as *mut u8
}

/// Linux's vzalloc: as vmalloc, always zeroed.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vzalloc(size: usize) -> *mut u8 {
    __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE, Location::caller()) as *mut u8
}

/// Linux's vmalloc_node: as vmalloc, every page from node `node` while it
/// has free pages (then the next nodes in its fallback order).
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmalloc_node(size: usize, node: i32) -> *mut u8 {
    __vmalloc_node(size, 1, GFP_KERNEL, node, Location::caller()) as *mut u8
}

/// Linux's vzalloc_node: as vmalloc_node, always zeroed.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vzalloc_node(size: usize, node: i32) -> *mut u8 {
    __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, node, Location::caller()) as *mut u8
}

/// Aligned vmalloc (test_vmalloc's __vmalloc_node(size, align, ...)).
#[track_caller]
#[inline(never)]
pub fn vmalloc_aligned(size: usize, align: usize) -> *mut u8 {
    __vmalloc_node(size, align, GFP_KERNEL, NUMA_NO_NODE, Location::caller()) as *mut u8
}

/// Every entry point of the pipeline, kept in the ELF even in a build where
/// nothing calls it yet: the linker's `--gc-sections` drops unreferenced
/// functions, and `break vfree` in GDB should always find its target.
#[allow(dead_code)]
struct KeepForGdb([*const (); 17]);
// SAFETY: the addresses are never used for anything but being there.
unsafe impl Sync for KeepForGdb {}
#[used]
static KEEP_FOR_GDB: KeepForGdb = KeepForGdb([
    __vmalloc_node_range as *const (),
    __vmalloc_node as *const (),
    __vmalloc as *const (),
    vmalloc as *const (),
    vzalloc as *const (),
    vmalloc_node as *const (),
    vzalloc_node as *const (),
    __vmalloc_area_node as *const (),
    map_kernel_range as *const (),
    get_vm_area as *const (),
    vmap as *const (),
    vfree as *const (),
    vunmap as *const (),
    crate::arch::mm::ioremap::iounmap as *const (),
    crate::arch::mm::ioremap::ioremap as *const (),
    remove_vm_area as *const (),
    vmalloc_to_page as *const (),
]);

static INIT_ON_ALLOC: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// `init_on_alloc=`: zero every vmalloc page (default on, as a hardening
/// measure and as Debian ships Linux).
pub fn init_on_alloc() -> bool {
    INIT_ON_ALLOC.load(Ordering::Relaxed)
}

pub fn set_init_on_alloc(on: bool) {
    INIT_ON_ALLOC.store(on, Ordering::Relaxed);
}

/// Linux's want_init_on_alloc(): zero the pages of this allocation?
#[inline]
pub fn want_init_on_alloc(gfp_mask: gfp_t) -> bool {
    gfp_mask.contains(__GFP_ZERO) || init_on_alloc()
}

/// Map `pages` contiguously (Linux: vmap). The pages stay the caller's.
/// The mapping is never executable, whatever `prot` says (5.10:
/// `pgprot_nx(prot)`): vmap'd data must not become kernel text.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmap(pages: &[PhysAddr], flags: VmFlags, prot: PageProt) -> *mut u8 {
    let count = pages.len();
    if count == 0 || count > totalram_pages() {
        pr_warn!("vmap: bad page count {}", count);
        return ptr::null_mut();
    }
    let area = get_vm_area_caller(count << PAGE_SHIFT, flags, Location::caller());
    if area.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: live area, ours.
    let addr = unsafe { (*area).addr };
    // map_kernel_range said why on failure.
    if map_kernel_range(addr, pages, pgprot_nx(prot)) != 0 {
        pr_warn!("vmap: mapping {} pages failed", count);
        vunmap(addr as *mut u8);
        return ptr::null_mut();
    }
    addr as *mut u8
}

// ---------------------------------------------------------------------------
// Freeing
// ---------------------------------------------------------------------------

/// Linux's find_vmap_area: the busy area containing `addr`.
pub fn find_vmap_area(addr: usize) -> Option<NonNull<VmapArea>> {
    NonNull::new(__find_vmap_area(&vmap_area_lock(), addr))
}

/// Linux's find_vm_area: the vm_struct of the area containing `addr`.
pub fn find_vm_area(addr: usize) -> *mut VmStruct {
    let busy = vmap_area_lock();
    let va = __find_vmap_area(&busy, addr);
    if va.is_null() {
        ptr::null_mut()
    } else {
        // SAFETY: live node under the lock.
        unsafe { (*va).vm.vm_struct().map_or(ptr::null_mut(), NonNull::as_ptr) }
    }
}

/// Detach the area starting at `addr` from its vm_struct and unmap it; the
/// address space goes to the purge list (Linux: remove_vm_area). Only the
/// exact start of a live area is accepted.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn remove_vm_area(addr: usize) -> *mut VmStruct {
    let mut busy = vmap_area_lock();
    let va = __find_vmap_area(&busy, addr);
    let Some(va) = NonNull::new(va) else {
        return ptr::null_mut();
    };
    // SAFETY: nodes of the busy tree are live under the lock.
    let area = unsafe { &mut *va.as_ptr() };
    let VmapOwner::VmStruct(vm) = area.vm else {
        return ptr::null_mut();
    };
    if area.va_start != addr {
        return ptr::null_mut();
    }
    area.vm = VmapOwner::None;
    // SAFETY: `va` is linked into the busy tree, whose lock we hold; once
    // unlinked the node is ours and goes to the purge list.
    unsafe {
        unlink_va(&mut busy, va);
        drop(busy);
        free_unmap_vmap_area(va);
    }
    vm.as_ptr()
}

/// Find the large vm_map_ram area (no owner) that starts at `addr` and is
/// `size` bytes long and take it out of the busy tree, all under one hold
/// of vmap_area_lock (the unlink half of Linux's vm_unmap_ram for
/// non-block areas). The node is the caller's afterwards.
pub(super) fn unlink_vm_map_ram_area(addr: usize, size: usize) -> Result<NonNull<VmapArea>, &'static str> {
    let mut busy = vmap_area_lock();
    let Some(va) = NonNull::new(__find_vmap_area(&busy, addr)) else {
        return Err("no vmap area there");
    };
    // SAFETY: nodes of the busy tree are live under the lock.
    let (start, end, vm) = unsafe { ((*va.as_ptr()).va_start, (*va.as_ptr()).va_end, (*va.as_ptr()).vm) };
    if start != addr || end - start != size || !vm.is_none() {
        return Err("not a vm_map_ram area of that size");
    }
    // SAFETY: `va` is linked into the busy tree, whose lock we hold.
    unsafe { unlink_va(&mut busy, va) };
    Ok(va)
}

/// Take an area out of the busy tree; false if it was not in it (Linux
/// does this inside free_vmap_area_noflush).
///
/// # Safety
///
/// `va` is a live node that, if linked at all, is linked into the busy tree.
pub(super) unsafe fn unlink_vmap_area(va: NonNull<VmapArea>) -> bool {
    // SAFETY: the caller's contract is unlink_va's.
    unsafe { unlink_va(&mut vmap_area_lock(), va) }
}

/// Unmap without flushing, then queue for the lazy purge
/// (Linux: free_unmap_vmap_area).
///
/// # Safety
///
/// As for [`free_vmap_area_noflush`].
unsafe fn free_unmap_vmap_area(va: NonNull<VmapArea>) {
    // SAFETY: va was just unlinked; we own it (caller).
    let size = unsafe { va.as_ref() }.size();
    // SAFETY: as above.
    let start = unsafe { va.as_ref() }.va_start;
    unmap_kernel_range_noflush(start, size);
    // SAFETY: the caller's contract.
    unsafe { free_vmap_area_noflush(va) };
}

/// Put an unlinked area on the purge list; purge when too much is pending
/// (Linux: free_vmap_area_noflush).
///
/// # Safety
///
/// `va` is a node of the vmap_area cache that is in no tree and on no
/// list, its owner cleared; the caller does not use it afterwards (a purge
/// may merge it into a neighbour and free it at once).
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn free_vmap_area_noflush(va: NonNull<VmapArea>) {
    // SAFETY: va is detached and ours (caller).
    let nr = unsafe { va.as_ref() }.size() >> PAGE_SHIFT;
    let nr_lazy = VMAP_LAZY_NR.fetch_add(nr, Ordering::Relaxed) + nr;
    NR_LAZY_FREES.fetch_add(1, Ordering::Relaxed);
    // SAFETY: va is ours until it is on the list (caller), and the list
    // takes any node from the vmap_area cache.
    unsafe { llist_add(va) };
    if nr_lazy > lazy_max_pages() {
        try_purge_vmap_area_lazy();
    }
}

/// Push `va` onto `vmap_purge_list` (Linux: llist_add): lock-free, from
/// any CPU, concurrent with other pushes and with `llist_del_all`.
///
/// # Safety
///
/// `va` is a live node of the vmap_area cache, in no tree and on no list;
/// it belongs to the list (and to the purger that takes it) from now on.
unsafe fn llist_add(va: NonNull<VmapArea>) {
    let mut head = vmap_purge_list.load(Ordering::Relaxed);
    loop {
        // SAFETY: until the exchange succeeds the node is still only ours.
        unsafe { (*va.as_ptr()).purge_next = head };
        // Release: the node's fields (and the unmapped PTEs) are visible to
        // the purger that takes the list with Acquire.
        match vmap_purge_list.compare_exchange_weak(head, va.as_ptr(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => head = now,
        }
    }
}

/// Take every node off `vmap_purge_list` at once (Linux: llist_del_all).
fn llist_del_all() -> *mut VmapArea {
    vmap_purge_list.swap(ptr::null_mut(), Ordering::Acquire)
}

/// Walk the purge list (for vmallocinfo and the checkers). The caller holds
/// `vmap_purge_lock`, so no purge frees the nodes under the walk; pushes
/// that race with it only add nodes in front of the head it started from.
fn for_each_lazy_area(_purge: &SpinLockGuard<'static, ()>, mut f: impl FnMut(&VmapArea)) {
    let mut cur = vmap_purge_list.load(Ordering::Acquire);
    while !cur.is_null() {
        // SAFETY: nodes on the list are live until a purge takes them, and
        // no purge runs while the caller holds vmap_purge_lock.
        let va = unsafe { &*cur };
        f(va);
        cur = va.purge_next;
    }
}

/// Linux's vmap_purge_lock. A function, not `.lock()` in place: spin's
/// `lock` is `#[inline(always)]`, so as the first statement of a
/// Linux-named function it would be inlined even at opt-level 0, and
/// `break purge_vmap_area_lazy` would stop "in" spin's lock (GDB names the
/// inlined callee that owns the first instruction after the prologue).
#[inline(never)]
pub(super) fn vmap_purge_lock() -> SpinLockGuard<'static, ()> {
    VMAP_PURGE_LOCK.lock()
}

/// Flush the TLB once for every lazily freed area, and for `[start, end)`
/// as well (vm_unmap_aliases' dirty vmap-block range; `usize::MAX, 0` for
/// none), and give their address space back to the free tree (Linux:
/// __purge_vmap_area_lazy). False, with nothing flushed, if no area was
/// waiting. The caller holds `vmap_purge_lock`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __purge_vmap_area_lazy(start: usize, end: usize) -> bool {
    let list = llist_del_all();
    if list.is_null() {
        return false;
    }
    // One flush over [lowest start, highest end) covers every area. Each
    // area is merged on its own, in list order, as 5.10 does: joining
    // neighbours first would save tree work but change the free tree's
    // shape, and with it the address 5.10's search picks.
    let (mut start, mut end) = (start, end);
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: the nodes taken off the list are ours (llist_del_all).
        let va = unsafe { &*cur };
        start = start.min(va.va_start);
        end = end.max(va.va_end);
        cur = va.purge_next;
    }
    // Broadcast to the inner-shareable domain (tlbi vaale1is/vmalle1is):
    // every CPU's TLB drops the stale entries, no IPI needed.
    flush_tlb_kernel_range(start, end);
    let mut free = free_vmap_area_root.lock();
    let mut cur = list;
    // The node the previous area went into: areas freed one after another
    // lie just below each other on the list, and merging one under the
    // last needs no search (same result: merge_or_add_vmap_area_below).
    let mut last: Option<NonNull<VmapArea>> = None;
    while let Some(va) = NonNull::new(cur) {
        // SAFETY: ours, as above; the successor is read before the node
        // may be merged into a neighbour and freed.
        let (nr, next) = unsafe {
            let v = &mut *va.as_ptr();
            let next = v.purge_next;
            v.purge_next = ptr::null_mut();
            ((v.va_end - v.va_start) >> PAGE_SHIFT, next)
        };
        // SAFETY: a detached node of the cache, ours; `last` is the node
        // the previous merge returned, still in the free tree (the free
        // tree's lock is held throughout, and merges only free the nodes
        // they absorb, never the one they return).
        let r = unsafe {
            match last {
                Some(hint) => merge_or_add_vmap_area_below(&mut free, va, &mut CacheAlloc, hint),
                None => merge_or_add_vmap_area(&mut free, va, &mut CacheAlloc),
            }
        };
        match r {
            Ok(holder) => {
                VMAP_LAZY_NR.fetch_sub(nr, Ordering::Relaxed);
                last = Some(holder);
            }
            Err(e) => pr_err!("__purge_vmap_area_lazy: {}; range leaked", e),
        }
        cur = next;
    }
    NR_PURGES.fetch_add(1, Ordering::Relaxed);
    true
}

/// Purge now, waiting for a purge another CPU runs: first the vmap blocks
/// that can hand out nothing more, then every lazily freed area (Linux:
/// purge_vmap_area_lazy).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn purge_vmap_area_lazy() {
    vfree_deferred_flush_all();
    let _purge = vmap_purge_lock();
    purge_fragmented_blocks_allcpus();
    __purge_vmap_area_lazy(usize::MAX, 0);
}

/// Purge unless another CPU is already purging (Linux:
/// try_purge_vmap_area_lazy): that purge takes our areas too, or the next.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn try_purge_vmap_area_lazy() {
    if let Some(_purge) = VMAP_PURGE_LOCK.try_lock() {
        __purge_vmap_area_lazy(usize::MAX, 0);
    }
}

/// Pages waiting for the lazy purge.
pub fn vmap_lazy_nr() -> usize {
    VMAP_LAZY_NR.load(Ordering::Relaxed)
}

/// Unmap and free an area; with `deallocate_pages` also its pages and page
/// array (Linux: __vunmap).
#[inline(never)]
pub(crate) fn __vunmap(addr: usize, deallocate_pages: bool) {
    if addr == 0 {
        return;
    }
    if !addr.is_multiple_of(PAGE_SIZE) {
        pr_warn!("Trying to vfree() bad address ({:#x})", addr);
        return;
    }
    let area = vm_remove_mappings(addr, deallocate_pages);
    if area.is_null() {
        pr_err!("Trying to vfree() nonexistent vm area ({:#x})", addr);
        return;
    }
    // SAFETY: removed from the tree: the vm_struct is ours.
    let area_ref = unsafe { &mut *area };
    if deallocate_pages && !area_ref.pages.is_null() {
        for i in 0..area_ref.nr_pages {
            // SAFETY: the first nr_pages entries are initialised.
            page_alloc::__free_pages(unsafe { area_ref.pages.add(i).read() }, 0);
        }
        NR_VMALLOC_PAGES.fetch_sub(area_ref.nr_pages, Ordering::Relaxed);
        kvfree_pages(area_ref);
    }
    // SAFETY: removed from its area by remove_vm_area: ours, unused from now on.
    unsafe { free_vm_struct(area) };
}

/// Does an area of `nr_pages` keep its page array in vmalloc memory (more
/// than a page of entries) rather than in a kmalloc cache? Linux's kvfree
/// decides by is_vmalloc_addr(); here the kernel image (with the heap's
/// boot arena) lies inside the vmalloc range, so the size decides.
pub fn page_array_is_vmalloced(nr_pages: usize) -> bool {
    nr_pages * core::mem::size_of::<PhysAddr>() > PAGE_SIZE
}

/// Free the page array: vfree when it came from vmalloc, else the heap
/// (Linux: kvfree).
fn kvfree_pages(area: &mut VmStruct) {
    let pages = area.pages;
    area.pages = ptr::null_mut();
    // SAFETY: only __vmalloc_area_node sets `pages`, from alloc_pages_array
    // for this area's size; it was just cleared, so it is freed once.
    unsafe { free_pages_array(pages, area.get_vm_area_size() >> PAGE_SHIFT) };
}

/// Release a vmalloc area (Linux: vfree). vfree(NULL) is a no-op; an
/// address that is not the start of a live area warns and changes nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vfree(addr: *const u8) {
    let a = addr as usize;
    if a == 0 {
        return;
    }
    let cpu = smp_processor_id();
    if crate::arch::kernel::irq::in_interrupt_on(cpu) {
        __vfree_deferred(a);
        return;
    }
    if VFREE_DEFERRED[cpu].load(Ordering::Relaxed) != 0 {
        free_work(cpu);
    }
    if let Some(kind) = area_kind_mismatch(a) {
        pr_warn!("vfree({:#x}): this is a {} area; use {}", a, kind.0, kind.1);
        return;
    }
    __vunmap(a, true);
}

/// Release the area that starts at `addr`, leaving its pages alone
/// (Linux: vunmap). Like 5.10's `__vunmap(addr, 0)` it takes any area
/// `find_vm_area` finds, whatever made it: for a vmalloc area the pages
/// and the page array stay allocated (the caller's bug, as in Linux).
/// Bad and unknown addresses are reported by `__vunmap`.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vunmap(addr: *const u8) {
    __vunmap(addr as usize, false);
}

/// If `addr` starts a live area that vmalloc did not make, name it and the
/// right function (a vfree of an ioremap would free device "pages").
fn area_kind_mismatch(addr: usize) -> Option<(&'static str, &'static str)> {
    let busy = vmap_area_lock();
    let va = __find_vmap_area(&busy, addr);
    if va.is_null() {
        return None;
    }
    // SAFETY: live node and vm_struct under the lock.
    unsafe {
        let VmapOwner::VmStruct(vm) = (*va).vm else {
            return None;
        };
        if (*va).va_start != addr {
            return None;
        }
        let flags = vm.as_ref().flags;
        if !flags.contains(VmFlags::VM_ALLOC) {
            return Some(if flags.contains(VmFlags::VM_IOREMAP) {
                ("ioremap", "iounmap()")
            } else {
                ("vmap", "vunmap()")
            });
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------

/// Linux's vmalloc_to_page: the page backing a vmalloc address.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmalloc_to_page(addr: *const u8) -> Option<PhysAddr> {
    let a = addr as usize;
    if !is_vmalloc_addr(a) {
        return None;
    }
    with_init_mm(|pt, env| pt.translate(env, VirtAddr(a & PAGE_MASK)))
}

/// Linux's vmalloc_to_pfn.
pub fn vmalloc_to_pfn(addr: *const u8) -> Option<usize> {
    vmalloc_to_page(addr).map(phys_to_pfn)
}

/// Statistics for meminfo: (VmallocUsed pages, largest free chunk, busy areas).
pub fn vmalloc_stats() -> (usize, usize, usize) {
    let used = NR_VMALLOC_PAGES.load(Ordering::Relaxed);
    let chunk = free_vmap_area_root.lock().max_free_size();
    let busy = vmap_area_lock().len();
    (used, chunk, busy)
}

// ---------------------------------------------------------------------------
// vmallocinfo
// ---------------------------------------------------------------------------

/// /proc/vmallocinfo (5.10's s_show), address-ordered, then the areas
/// waiting for the lazy purge, one line each in the purge list's order
/// (5.10's show_purge_info: newest first, so that part is not sorted).
/// Areas still being set up (`VM_UNINITIALIZED`) are shown as they are,
/// as 5.10's s_show does.
pub fn vmallocinfo(w: &mut dyn Write) -> fmt::Result {
    let busy = vmap_area_lock();
    for va in busy.iter() {
        let VmapOwner::VmStruct(vm) = va.vm else {
            writeln!(
                w,
                "0x{:016x}-0x{:016x} {:7} vm_map_ram",
                va.va_start,
                va.va_end,
                va.va_end - va.va_start
            )?;
            continue;
        };
        // SAFETY: live vm_struct under vmap_area_lock.
        write_vm_line(w, unsafe { vm.as_ref() })?;
    }
    drop(busy);
    let mut res = Ok(());
    for_each_lazy_area(&vmap_purge_lock(), |va| {
        if res.is_ok() {
            res = writeln!(
                w,
                "0x{:016x}-0x{:016x} {:7} unpurged vm_area",
                va.va_start,
                va.va_end,
                va.va_end - va.va_start
            );
        }
    });
    res
}

/// One vmallocinfo line for `v`.
pub fn write_vm_line(w: &mut dyn Write, v: &VmStruct) -> fmt::Result {
    write!(w, "0x{:016x}-0x{:016x} {:7}", v.addr, v.addr + v.size, v.size)?;
    write!(w, " {}:{}", v.caller.file(), v.caller.line())?;
    if v.nr_pages != 0 {
        write!(w, " pages={}", v.nr_pages)?;
    }
    if v.phys_addr.0 != 0 {
        write!(w, " phys=0x{:016x}", v.phys_addr.0)?;
    }
    if v.flags.contains(VmFlags::VM_IOREMAP) {
        write!(w, " ioremap")?;
    }
    if v.flags.contains(VmFlags::VM_ALLOC) {
        write!(w, " vmalloc")?;
    }
    if v.flags.contains(VmFlags::VM_MAP) {
        write!(w, " vmap")?;
    }
    if v.flags.contains(VmFlags::VM_USERMAP) {
        write!(w, " user")?;
    }
    if !v.pages.is_null() && page_array_is_vmalloced(v.get_vm_area_size() >> PAGE_SHIFT) {
        write!(w, " vpages")?;
    }
    show_numa_info(w, v)?;
    writeln!(w)
}

/// 5.10's show_numa_info (CONFIG_NUMA): ` N<node>=<pages>` for each node
/// that holds pages of the area (only vmalloc areas have a page array),
/// lowest node first.
fn show_numa_info(w: &mut dyn Write, v: &VmStruct) -> fmt::Result {
    if v.pages.is_null() || v.flags.contains(VmFlags::VM_UNINITIALIZED) {
        return Ok(());
    }
    // Pairs with the Release fence of clear_vm_uninitialized_flag.
    core::sync::atomic::fence(Ordering::Acquire);
    let mut counters = [0usize; MAX_NUMNODES];
    // SAFETY: a live area's page array holds nr_pages entries
    // (__vmalloc_area_node filled them before clearing VM_UNINITIALIZED).
    let pages = unsafe { core::slice::from_raw_parts(v.pages, v.nr_pages) };
    for &pa in pages {
        if let Some(nid) = page_alloc::page_to_nid(pa) {
            counters[nid] += 1;
        }
    }
    for (nid, &n) in counters.iter().enumerate() {
        if n != 0 {
            write!(w, " N{}={}", nid, n)?;
        }
    }
    Ok(())
}

/// Oops helper: say which vmalloc area (or guard page) `addr` is in. Uses
/// try_lock: the fault may have hit with the lock held.
fn describe_vmalloc_addr(addr: usize, w: &mut dyn Write) -> fmt::Result {
    if !is_vmalloc_addr(addr) {
        return Ok(());
    }
    let Some(busy) = vmap_area_root.try_lock() else {
        return writeln!(
            w,
            "vmalloc: {:#x} is in the vmalloc range (area lookup skipped: lock held)",
            addr
        );
    };
    let va = __find_vmap_area(&busy, addr);
    if va.is_null() {
        return writeln!(
            w,
            "vmalloc: {:#x} is in the vmalloc range but in no busy area (free or lazily freed)",
            addr
        );
    }
    // SAFETY: live node (and vm_struct) under the lock.
    let (start, end, owner) = unsafe { ((*va).va_start, (*va).va_end, (*va).vm) };
    let VmapOwner::VmStruct(vm) = owner else {
        return writeln!(
            w,
            "vmalloc: {:#x} is inside vmap area 0x{:016x}-0x{:016x} (no vm_struct)",
            addr, start, end
        );
    };
    // SAFETY: as above.
    let v = unsafe { vm.as_ref() };
    let guard = !v.flags.contains(VmFlags::VM_NO_GUARD) && addr >= end - PAGE_SIZE;
    write!(
        w,
        "vmalloc: {:#x} is {} ",
        addr,
        if guard {
            "in the GUARD PAGE of area"
        } else {
            "inside area"
        }
    )?;
    write_vm_line(w, v)
}

/// Invariant checks for tests (Linux's DEBUG_AUGMENT_* checks plus
/// coverage of the whole range).
pub fn check_vmalloc_invariants() -> Result<(), alloc::string::String> {
    use alloc::format;
    // The lock order: the purge lock (no purge moves areas meanwhile), then
    // busy, then free. Every lock is held until the end, so the three sets
    // of areas are one consistent picture even with other CPUs allocating.
    let purge = vmap_purge_lock();
    let busy = vmap_area_lock();
    let free = free_vmap_area_root.lock();
    let mut lazy = alloc::vec::Vec::new();
    for_each_lazy_area(&purge, |va| lazy.push((va.va_start, va.va_end)));
    vmap_tree::check_invariants(&busy).map_err(|e| format!("busy tree: {}", e))?;
    vmap_tree::check_invariants(&free).map_err(|e| format!("free tree: {}", e))?;
    vmap_tree::check_coverage(&[&*busy, &*free], &lazy, VMALLOC_START, VMALLOC_END)
        .map_err(|e| format!("coverage: {}", e))?;
    for &size in &[PAGE_SIZE, 3 * PAGE_SIZE, PMD_SIZE, PUD_SIZE] {
        vmap_tree::check_lowest_match(&free, size, VMALLOC_START).map_err(|e| format!("lowest match: {}", e))?;
    }
    Ok(())
}

/// Snapshot of the allocator state that a failed vmalloc must leave
/// unchanged (fault-injection tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmallocSnapshot {
    pub free_pages: usize,
    pub heap_used: usize,
    pub busy_areas: usize,
    pub free_areas: usize,
    pub purge_areas: usize,
    pub max_free: usize,
    pub cache_active: usize,
    /// vm_structs and small page arrays handed out (their caches).
    pub metadata_objects: usize,
    pub vmalloc_pages: usize,
    pub pgtable_pages: usize,
}

pub fn snapshot() -> VmallocSnapshot {
    let busy_areas = vmap_area_lock().len();
    let (free_areas, max_free) = {
        let f = free_vmap_area_root.lock();
        (f.len(), f.max_free_size())
    };
    VmallocSnapshot {
        free_pages: page_alloc::nr_free_pages().0,
        heap_used: super::heap::heap_stats().used,
        busy_areas,
        free_areas,
        purge_areas: {
            let mut n = 0;
            for_each_lazy_area(&vmap_purge_lock(), |_| n += 1);
            n
        },
        max_free,
        // The per-CPU ne_fit_preload spares are the cache's, in effect: a
        // failed vmalloc may have used one up or parked a new one.
        cache_active: vmap_area_cachep.lock().stats().active_objs - ne_fit_preload_count(),
        metadata_objects: metadata_objects(),
        vmalloc_pages: NR_VMALLOC_PAGES.load(Ordering::Relaxed),
        pgtable_pages: paging::pgtable_pages(),
    }
}

// ---------------------------------------------------------------------------
// vmalloc_user, vmalloc_32, vmalloc_32_user, vread (5.10's API, part 2)
// ---------------------------------------------------------------------------

/// Linux's SHMLBA on arm64 (asm-generic/shmparam.h): the alignment of
/// memory that may be mapped to user space.
pub const SHMLBA: usize = PAGE_SIZE;

/// The highest physical address GFP_DMA32 pages may end at.
const DMA32_LIMIT: usize = 1 << 32;

/// Linux's vmalloc_user: zeroed (it may be mapped to user space without
/// leaking data) and marked VM_USERMAP (remap_vmalloc_range's permission).
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmalloc_user(size: usize) -> *mut u8 {
    __vmalloc_node_range(
        size,
        SHMLBA,
        VMALLOC_START,
        VMALLOC_END,
        GFP_KERNEL | __GFP_ZERO,
        PAGE_KERNEL,
        VmFlags::VM_USERMAP,
        NUMA_NO_NODE,
        Location::caller(),
    ) as *mut u8
}

/// 5.10's GFP_VMALLOC32 on arm64 (CONFIG_ZONE_DMA32): kernel pages below
/// 4 GiB.
const GFP_VMALLOC32: gfp_t = GFP_DMA32.union(GFP_KERNEL);

/// The GFP_DMA32 half of vmalloc_32: every page below 4 GiB. This page
/// allocator has no ZONE_DMA32 (its zones are the DT's memory banks, not
/// split at 4 GiB), so it cannot be asked for low pages; instead the area
/// is checked, and one with a page above 4 GiB is freed and the call fails,
/// so vmalloc_32 never hands out memory a 32-bit device cannot reach. On
/// QEMU virt all RAM lies below 4 GiB up to -m 3G (RAM starts at 1 GiB).
fn vmalloc_dma32_check(addr: usize) -> usize {
    if addr == 0 {
        return 0;
    }
    let area = find_vm_area(addr);
    // SAFETY: the area was just allocated by our caller and is live; its
    // page array holds nr_pages entries.
    let high = unsafe {
        let pages = core::slice::from_raw_parts((*area).pages, (*area).nr_pages);
        pages.iter().find(|pa| pa.0 + PAGE_SIZE > DMA32_LIMIT).copied()
    };
    if let Some(pa) = high {
        pr_warn!(
            "vmalloc_32: page {:#x} is above 4 GiB and there is no ZONE_DMA32 to ask for lower ones",
            pa.0
        );
        vfree(addr as *const u8);
        return 0;
    }
    addr
}

/// Linux's vmalloc_32: pages a 32-bit device can address (GFP_DMA32 on
/// arm64), zeroed when init_on_alloc is on as vmalloc's.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmalloc_32(size: usize) -> *mut u8 {
    vmalloc_dma32_check(__vmalloc_node(size, 1, GFP_VMALLOC32, NUMA_NO_NODE, Location::caller())) as *mut u8
}

/// Linux's vmalloc_32_user: vmalloc_32, zeroed and VM_USERMAP.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmalloc_32_user(size: usize) -> *mut u8 {
    let addr = __vmalloc_node_range(
        size,
        SHMLBA,
        VMALLOC_START,
        VMALLOC_END,
        GFP_VMALLOC32 | __GFP_ZERO,
        PAGE_KERNEL,
        VmFlags::VM_USERMAP,
        NUMA_NO_NODE,
        Location::caller(),
    );
    vmalloc_dma32_check(addr) as *mut u8
}

/// Copy `count` bytes of one area from `addr`, page by page: a mapped page
/// is read through its mapping, a hole reads as zeroes (Linux:
/// aligned_vread). The caller holds vmap_area_lock with the area in the
/// busy tree, so nothing unmaps it meanwhile (remove_vm_area unlinks the
/// area under that lock before it unmaps).
///
/// # Safety
///
/// `buf` is valid for `count` bytes of writes; `[addr, addr + count)` lies
/// inside one live area (not an ioremap) whose lock the caller holds.
unsafe fn aligned_vread(buf: *mut u8, addr: usize, count: usize) {
    let (mut buf, mut addr, mut count) = (buf, addr, count);
    while count != 0 {
        let offset = addr & !PAGE_MASK;
        let length = (PAGE_SIZE - offset).min(count);
        let mapped = with_init_mm(|pt, env| pt.translate(env, VirtAddr(addr))).is_some();
        // SAFETY: buf has room for `length` more bytes (caller); a mapped
        // page of a live area is readable memory (Normal, as every
        // non-ioremap area maps), and stays mapped while the caller holds
        // vmap_area_lock.
        unsafe {
            if mapped {
                ptr::copy_nonoverlapping(addr as *const u8, buf, length);
            } else {
                ptr::write_bytes(buf, 0, length);
            }
            buf = buf.add(length);
        }
        addr += length;
        count -= length;
    }
}

/// Linux's vread: read `count` bytes of vmalloc space at `addr` into `buf`
/// (/proc/kcore's reader). What no area covers, holes inside areas,
/// vm_map_ram areas (no vm_struct) and VM_IOREMAP areas (reading device
/// memory has side effects) all read as zeroes. Returns `count` (0 when
/// `addr` is past every area: nothing was read).
///
/// # Safety
///
/// `buf` is valid for `count` bytes of writes and does not overlap the
/// vmalloc memory read.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn vread(buf: *mut u8, addr: *const u8, count: usize) -> usize {
    let buf_start = buf;
    let mut buf = buf;
    let mut addr = addr as usize;
    // Don't allow overflow.
    let mut count = if addr.checked_add(count).is_none() {
        addr.wrapping_neg()
    } else {
        count
    };
    let buflen = count;
    let busy = vmap_area_lock();
    for va in busy.iter() {
        if count == 0 {
            break;
        }
        let VmapOwner::VmStruct(vm) = va.vm else {
            continue;
        };
        // SAFETY: a live vm_struct under vmap_area_lock.
        let vm = unsafe { vm.as_ref() };
        let vaddr = vm.addr;
        let vend = vaddr + vm.get_vm_area_size();
        if addr >= vend {
            continue;
        }
        if addr < vaddr {
            // The gap before this area reads as zeroes.
            let n = (vaddr - addr).min(count);
            // SAFETY: buf has `count` bytes of room left (caller).
            unsafe {
                ptr::write_bytes(buf, 0, n);
                buf = buf.add(n);
            }
            addr += n;
            count -= n;
            if count == 0 {
                break;
            }
        }
        let n = (vend - addr).min(count);
        if vm.flags.contains(VmFlags::VM_IOREMAP) {
            // An ioremap area is treated as a memory hole.
            // SAFETY: as above.
            unsafe { ptr::write_bytes(buf, 0, n) };
        } else {
            // SAFETY: [addr, addr + n) is inside this live area, whose
            // lock we hold; buf has room for n bytes.
            unsafe { aligned_vread(buf, addr, n) };
        }
        // SAFETY: as above.
        buf = unsafe { buf.add(n) };
        addr += n;
        count -= n;
    }
    drop(busy);
    if buf == buf_start {
        return 0;
    }
    // Zero-fill what lies past the last area.
    let done = buf as usize - buf_start as usize;
    if done != buflen {
        // SAFETY: within the caller's buffer of buflen bytes.
        unsafe { ptr::write_bytes(buf, 0, buflen - done) };
    }
    buflen
}

// ---------------------------------------------------------------------------
// vfree_atomic and the deferred free lists (5.10's API, part 3)
// ---------------------------------------------------------------------------
//
// 5.10 keeps a per-CPU `vfree_deferred` (an llist plus a work item): an
// interrupt handler cannot take vmalloc's locks (the code it interrupted
// may hold them), so vfree from interrupt context and vfree_atomic push
// the area onto the list, the link living in the area's own first word,
// and the work item frees them later in process context. There are no
// work queues here; the list is drained where such a work item would get
// to run: by the next vfree on the same CPU (the work is per CPU, as
// schedule_work queues it) and by every purge_vmap_area_lazy, for all
// CPUs, so that the exhaustion retry in alloc_vmap_area, vm_unmap_aliases
// and the tests' purge find no area still pending.

/// Each CPU's deferred areas (Linux: `vfree_deferred.list`): a lock-free
/// singly linked list through the first word of each area, 0 = empty.
static VFREE_DEFERRED: [AtomicUsize; crate::arch::kernel::percpu::NR_CPUS] =
    [const { AtomicUsize::new(0) }; crate::arch::kernel::percpu::NR_CPUS];

/// Queue `addr` for a later vfree on this CPU (Linux: __vfree_deferred):
/// no lock, no allocation, fit for interrupt context. As in Linux the area
/// itself carries the link, so only what vmalloc returned may come here (an
/// unaligned or foreign address is refused at once, with a warning).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __vfree_deferred(addr: usize) {
    if !addr.is_multiple_of(PAGE_SIZE) || !is_vmalloc_addr(addr) {
        pr_warn!("Trying to vfree() bad address ({:#x})", addr);
        return;
    }
    // Check that a vmalloc area starts here when the busy tree is free to
    // look at (only trylock: the interrupted code may hold its lock), so
    // that the link is not written into a vmap'd or ioremap'd area.
    if let Some(busy) = vmap_area_root.try_lock() {
        let va = __find_vmap_area(&busy, addr);
        // SAFETY: a live node and its vm_struct, under the lock.
        let ok = !va.is_null()
            && unsafe {
                (*va).va_start == addr
                    && matches!((*va).vm, VmapOwner::VmStruct(vm) if vm.as_ref().flags.contains(VmFlags::VM_ALLOC))
            };
        if !ok {
            drop(busy);
            pr_warn!("vfree_atomic({:#x}): not the start of a vmalloc area; ignored", addr);
            return;
        }
    }
    let head = &VFREE_DEFERRED[smp_processor_id()];
    let mut old = head.load(Ordering::Relaxed);
    loop {
        // SAFETY: addr is the start of a live vmalloc area (the caller's
        // contract, as Linux's), mapped read-write, whose contents die with
        // this free: its first word may carry the link.
        unsafe { (addr as *mut usize).write_volatile(old) };
        // Release: the link is visible to whoever takes the list.
        match head.compare_exchange_weak(old, addr, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => old = now,
        }
    }
}

/// Free every area deferred on `cpu` (Linux: free_work, run by the work
/// item). Process context only. Any CPU may drain any CPU's list: taking
/// it is one atomic swap (llist_del_all).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn free_work(cpu: usize) {
    let head = &VFREE_DEFERRED[cpu];
    if head.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut node = head.swap(0, Ordering::Acquire);
    while node != 0 {
        // SAFETY: the areas on the list are still mapped (nothing freed
        // them: only this drain does, once, after taking them off the
        // list), and the first word of each is its link.
        let next = unsafe { (node as *const usize).read_volatile() };
        // As vfree: never free the "pages" of a vmap or ioremap area.
        if let Some(kind) = area_kind_mismatch(node) {
            pr_warn!("vfree({:#x}): this is a {} area; use {}", node, kind.0, kind.1);
        } else {
            __vunmap(node, true);
        }
        node = next;
    }
}

/// Drain every CPU's deferred list.
pub fn vfree_deferred_flush_all() {
    for cpu in 0..VFREE_DEFERRED.len() {
        free_work(cpu);
    }
}

/// Areas waiting on the deferred lists (for tests).
///
/// # Safety
///
/// No CPU drains a deferred list meanwhile (no vfree, no purge): the walk
/// reads each area's link, and a drain frees the areas.
pub unsafe fn vfree_deferred_pending() -> usize {
    let mut n = 0;
    for head in &VFREE_DEFERRED {
        let mut node = head.load(Ordering::Acquire);
        while node != 0 {
            n += 1;
            // SAFETY: nothing drains (the caller's contract), so the area
            // is still mapped and its first word is its link.
            node = unsafe { (node as *const usize).read_volatile() };
        }
    }
    n
}

/// Linux's vfree_atomic: vfree from a context that must not sleep or take
/// vmalloc's locks; the area is freed later (see above). NULL is a no-op.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vfree_atomic(addr: *const u8) {
    let a = addr as usize;
    if a == 0 {
        return;
    }
    __vfree_deferred(a);
}

// ---------------------------------------------------------------------------
// VM_FLUSH_RESET_PERMS (5.10's API, part 4; set_memory_* are in
// arch/arm64/mm/pageattr.rs)
// ---------------------------------------------------------------------------

/// Linux's set_vm_flush_reset_perms: the area at `addr` (which set_memory_*
/// will make read-only or executable) gets flushed from the TLB when it is
/// freed, before its pages go back, so no stale entry keeps the old
/// permissions for pages that are then reused.
pub fn set_vm_flush_reset_perms(addr: *const u8) {
    let busy = vmap_area_lock();
    let va = __find_vmap_area(&busy, addr as usize);
    if va.is_null() {
        return;
    }
    // SAFETY: a live node and its vm_struct, under vmap_area_lock.
    unsafe {
        if let VmapOwner::VmStruct(mut vm) = (*va).vm {
            let vm = vm.as_mut();
            vm.flags = vm.flags | VmFlags::VM_FLUSH_RESET_PERMS;
        }
    }
}

/// Unmap the area at `addr` and detach its vm_struct (remove_vm_area);
/// for a VM_FLUSH_RESET_PERMS area also [`vm_reset_perms`] (Linux 5.10:
/// vm_remove_mappings). Returns the vm_struct, or null if `addr` starts no
/// area. Inlined into __vunmap: every vfree passes here, and the flag test
/// is all the common case pays.
#[inline(always)]
pub fn vm_remove_mappings(addr: usize, deallocate_pages: bool) -> *mut VmStruct {
    let area = remove_vm_area(addr);
    // SAFETY: non-null checked first: remove_vm_area handed it to us.
    if !area.is_null() && unsafe { (*area).flags }.contains(VmFlags::VM_FLUSH_RESET_PERMS) {
        vm_reset_perms(deallocate_pages);
    }
    area
}

/// The VM_FLUSH_RESET_PERMS half of vm_remove_mappings (split out under
/// 6.1's name, vm_reset_perms): flush the area's range from the TLB now,
/// before its pages are freed, rather than at the lazy purge. The direct
/// map's permissions never changed here (set_memory_* leave the
/// block-mapped linear alias alone, as 5.10 without rodata_full), so the
/// flush is all there is to do, with or without `deallocate_pages`.
#[cold]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vm_reset_perms(deallocate_pages: bool) {
    let _ = deallocate_pages;
    // The area is on the purge list now: purging it flushes its range.
    crate::mm::vmap_block::vm_unmap_aliases();
}

// ---------------------------------------------------------------------------
// vmap_pfn (5.10's API, part 5; CONFIG_VMAP_PFN)
// ---------------------------------------------------------------------------
//
// remap_vmalloc_range/remap_vmalloc_range_partial (mapping a VM_USERMAP
// area into a user vma) are left out: there is no user space here.

/// Map the page frames `pfns` (not RAM: device or other memory without a
/// struct page, as 5.10 insists) contiguously, never executable (Linux:
/// vmap_pfn, a VM_IOREMAP area). Null on failure, with what failed said;
/// release with vunmap.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn vmap_pfn(pfns: &[usize], prot: PageProt) -> *mut u8 {
    let count = pfns.len();
    if count == 0 || count > (VMALLOC_END - VMALLOC_START) >> PAGE_SHIFT {
        pr_warn!("vmap_pfn: bad page count {}", count);
        return ptr::null_mut();
    }
    if let Some(&pfn) = pfns.iter().find(|&&pfn| page_alloc::pfn_valid(pfn)) {
        // 5.10 WARN_ON_ONCE()s: RAM has a struct page, use vmap.
        pr_warn!("vmap_pfn: pfn {:#x} is RAM (pfn_valid); use vmap() for pages", pfn);
        return ptr::null_mut();
    }
    let area = get_vm_area_caller(count << PAGE_SHIFT, VmFlags::VM_IOREMAP, Location::caller());
    if area.is_null() {
        return ptr::null_mut();
    }
    // pgprot_nx: never executable.
    let prot = PageProt {
        executable: false,
        ..prot
    };
    // SAFETY: a live area, ours until freed.
    let addr = unsafe { (*area).addr };
    for (i, &pfn) in pfns.iter().enumerate() {
        // map_kernel_range says why on failure.
        if map_kernel_range(addr + (i << PAGE_SHIFT), &[pfn_to_phys(pfn)], prot) != 0 {
            // SAFETY: the live area from get_vm_area_caller, freed once;
            // remove_vm_area unmaps what was mapped of it.
            unsafe { free_vm_area(area) };
            return ptr::null_mut();
        }
    }
    addr as *mut u8
}

/// Keep the entry points of 5.10's API parts 2-5 in the ELF for GDB
/// (--gc-sections), as KEEP_FOR_GDB does for the pipeline.
#[allow(dead_code)]
struct KeepApiForGdb([*const (); 12]);
// SAFETY: the addresses are never used for anything but being there.
unsafe impl Sync for KeepApiForGdb {}
#[used]
static KEEP_API_FOR_GDB: KeepApiForGdb = KeepApiForGdb([
    vmalloc_user as *const (),
    vmalloc_32 as *const (),
    vmalloc_32_user as *const (),
    vread as *const (),
    __vfree_deferred as *const (),
    free_work as *const (),
    vfree_atomic as *const (),
    vm_reset_perms as *const (),
    vmap_pfn as *const (),
    map_kernel_range as *const (),
    pcpu_get_vm_areas as *const (),
    pcpu_free_vm_areas as *const (),
]);

// ---------------------------------------------------------------------------
// pcpu_get_vm_areas / pcpu_free_vm_areas (5.10's API, part 6)
// ---------------------------------------------------------------------------

/// Most areas one pcpu_get_vm_areas call takes: its two arrays are kmalloc
/// objects of at most a page (5.10 kcallocs them).
pub const PCPU_MAX_VMS: usize = PAGE_SIZE / core::mem::size_of::<usize>();

/// Linux's pcpu_get_vm_areas: `offsets.len()` areas at the same offsets
/// from one `align`ed base (congruent: the per-CPU allocator's chunks, one
/// area per group of CPUs), placed as high in the vmalloc range as they fit
/// (top-down, where they least disturb vmalloc's bottom-up allocations).
/// `offsets` and `sizes` are `align`ed and do not overlap; the areas carry
/// VM_ALLOC and no guard page, and nothing is mapped. Returns a kmalloc'd
/// array of `offsets.len()` vm_structs, or null (the request is bad, no
/// base fits even after a purge, or memory ran out); release with
/// [`pcpu_free_vm_areas`]. The areas' caller is pcpu_get_vm_areas itself,
/// as in 5.10, so vmallocinfo names it (not the chunk code above it).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pcpu_get_vm_areas(offsets: &[usize], sizes: &[usize], align: usize) -> *mut *mut VmStruct {
    let nr_vms = offsets.len();
    let caller = Location::caller();
    // 5.10 BUG_ON()s a bad request; here it is refused.
    let bad = nr_vms == 0
        || nr_vms != sizes.len()
        || nr_vms > PCPU_MAX_VMS
        || !align.is_power_of_two()
        || !align.is_multiple_of(PAGE_SIZE)
        || (0..nr_vms).any(|i| {
            !offsets[i].is_multiple_of(align)
                || !sizes[i].is_multiple_of(align)
                || sizes[i] == 0
                || offsets[i].checked_add(sizes[i]).is_none()
                || (i + 1..nr_vms).any(|j| offsets[j] < offsets[i] + sizes[i] && offsets[i] < offsets[j] + sizes[j])
        });
    if bad {
        pr_warn!("pcpu_get_vm_areas: bad request ({} areas, align {:#x})", nr_vms, align);
        return ptr::null_mut();
    }
    let last_end = (0..nr_vms).map(|i| offsets[i] + sizes[i]).max().unwrap_or(0);
    if (VMALLOC_END & !(align - 1)) - VMALLOC_START.next_multiple_of(align) < last_end {
        pr_warn!("pcpu_get_vm_areas: {:#x} bytes do not fit the vmalloc range", last_end);
        return ptr::null_mut();
    }
    let array_size = nr_vms * core::mem::size_of::<*mut VmStruct>();
    // kcalloc x 2.
    let Some(vms) = slab::kmalloc(array_size).map(|p| p.cast::<*mut VmStruct>()) else {
        return ptr::null_mut();
    };
    let Some(vas) = slab::kmalloc(array_size).map(|p| p.cast::<*mut VmapArea>()) else {
        // SAFETY: kmalloc'd just above, never handed out.
        unsafe { slab::kfree(vms.cast(), array_size) };
        return ptr::null_mut();
    };
    // SAFETY: two fresh arrays of nr_vms pointers each, ours alone.
    let (vms_s, vas_s) = unsafe {
        ptr::write_bytes(vms.as_ptr(), 0, nr_vms);
        ptr::write_bytes(vas.as_ptr(), 0, nr_vms);
        (
            core::slice::from_raw_parts_mut(vms.as_ptr(), nr_vms),
            core::slice::from_raw_parts_mut(vas.as_ptr(), nr_vms),
        )
    };
    let free_all = |vms_s: &mut [*mut VmStruct], vas_s: &mut [*mut VmapArea]| {
        for area in 0..nr_vms {
            if let Some(va) = NonNull::new(vas_s[area]) {
                CacheAlloc.free_vmap_area_node(va);
            }
            // SAFETY: null or fresh from alloc_vm_struct, never published.
            unsafe { free_vm_struct(vms_s[area]) };
        }
        // SAFETY: the two kmalloc'd arrays, dead from here.
        unsafe {
            slab::kfree(vas.cast(), array_size);
            slab::kfree(vms.cast(), array_size);
        }
    };
    for area in 0..nr_vms {
        vas_s[area] = CacheAlloc
            .alloc_vmap_area_node()
            .map_or(ptr::null_mut(), NonNull::as_ptr);
        vms_s[area] = alloc_vm_struct(caller);
        if vas_s[area].is_null() || vms_s[area].is_null() {
            free_all(vms_s, vas_s);
            return ptr::null_mut();
        }
    }
    let mut purged = false;
    loop {
        let mut free = free_vmap_area_root.lock();
        let base = vmap_tree::pcpu_get_vm_areas_base(&free, offsets, sizes, align, VMALLOC_START, VMALLOC_END);
        // Carve each area out of its free area (an NE split takes a node
        // from the cache, and may fail).
        let mut carved = 0;
        if let Some(base) = base {
            while carved < nr_vms {
                let (start, size) = (base + offsets[carved], sizes[carved]);
                let va = vmap_tree::pvm_find_va_enclose_addr(&free, start);
                let Some(va) = NonNull::new(va) else { break };
                // SAFETY: a live node of the free tree, under its lock.
                let fit = vmap_tree::classify_va_fit_type(unsafe { va.as_ref() }, start, size);
                if fit == vmap_tree::FitType::NothingFit {
                    pr_err!(
                        "pcpu_get_vm_areas: {:#x}+{:#x} does not fit where the search put it",
                        start,
                        size
                    );
                    break;
                }
                // SAFETY: as above; the free tree's nodes are the cache's.
                if unsafe { vmap_tree::adjust_va_to_fit_type(&mut free, va, start, size, fit, &mut CacheAlloc) }
                    .is_err()
                {
                    break;
                }
                // SAFETY: our node for this area, fresh from the cache.
                unsafe { vas_s[carved].write(VmapArea::new(start, start + size)) };
                carved += 1;
            }
        }
        if base.is_some() && carved == nr_vms {
            drop(free);
            let mut busy = vmap_area_lock();
            for area in 0..nr_vms {
                // SAFETY: the node carries the range just carved out of the
                // free tree, so it overlaps no busy area; the vm_struct is
                // ours and lives until pcpu_free_vm_areas (setup_vmalloc_vm
                // under the lock already held: 5.10's setup_vmalloc_vm_locked).
                unsafe {
                    let va = NonNull::new_unchecked(vas_s[area]);
                    insert_vmap_area(&mut busy, va).expect("pcpu_get_vm_areas: busy tree overlap");
                    let vm = &mut *vms_s[area];
                    vm.flags = VmFlags::VM_ALLOC;
                    vm.addr = (*va.as_ptr()).va_start;
                    vm.size = sizes[area];
                    vm.caller = caller;
                    (*va.as_ptr()).vm = VmapOwner::VmStruct(NonNull::new_unchecked(vm));
                }
            }
            drop(busy);
            // SAFETY: kmalloc'd above; the nodes now belong to the busy tree.
            unsafe { slab::kfree(vas.cast(), array_size) };
            return vms.as_ptr();
        }
        // Recovery: give back what was carved (the nodes go with it).
        for slot in vas_s.iter_mut().take(carved) {
            // SAFETY: the node holds a range carved from the free tree and
            // is in no tree; merging may free it, so the slot forgets it.
            let r = unsafe { merge_or_add_vmap_area(&mut free, NonNull::new_unchecked(*slot), &mut CacheAlloc) };
            if let Err(e) = r {
                pr_err!("pcpu_get_vm_areas: {}; range leaked", e);
            }
            *slot = ptr::null_mut();
        }
        drop(free);
        if purged {
            free_all(vms_s, vas_s);
            return ptr::null_mut();
        }
        purge_vmap_area_lazy();
        purged = true;
        for slot in vas_s.iter_mut().filter(|s| s.is_null()) {
            match CacheAlloc.alloc_vmap_area_node() {
                Some(va) => *slot = va.as_ptr(),
                None => {
                    free_all(vms_s, vas_s);
                    return ptr::null_mut();
                }
            }
        }
    }
}

/// Linux's pcpu_free_vm_areas: free each area of a [`pcpu_get_vm_areas`]
/// result, then the array.
///
/// # Safety
///
/// `vms` is what pcpu_get_vm_areas returned for `nr_vms` areas, not freed
/// before, and neither it nor its areas are used afterwards.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn pcpu_free_vm_areas(vms: *mut *mut VmStruct, nr_vms: usize) {
    let Some(array) = NonNull::new(vms) else {
        return;
    };
    for i in 0..nr_vms {
        // SAFETY: the array holds nr_vms live areas (caller), each freed once.
        unsafe { free_vm_area(vms.add(i).read()) };
    }
    // SAFETY: kmalloc'd by pcpu_get_vm_areas for nr_vms pointers.
    unsafe { slab::kfree(array.cast(), nr_vms * core::mem::size_of::<usize>()) };
}
