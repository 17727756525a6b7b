// SPDX-License-Identifier: GPL-2.0-only
//! The per-CPU allocator (Linux: mm/percpu.c, with percpu-vm.c's chunk
//! population).
//!
//! Memory is handed out in chunks. A chunk has one *unit* per possible CPU,
//! all the same size (`pcpu_unit_size`) and at the same distance from each
//! other, so one offset names "this variable on every CPU": a `__percpu`
//! pointer plus CPU `c`'s `__per_cpu_offset[c]` is CPU `c`'s copy
//! (`per_cpu_ptr`). The units of a chunk share one area map
//! (`crate::mm::percpu_map`): an allocation takes the same offset in every
//! unit.
//!
//! * The **first chunk** is set up at boot by [`setup_per_cpu_areas`], as
//!   5.10's embed allocator does: contiguous pages in the linear map, the
//!   static per-CPU data (arch `PerCpu`) copied to offset 0 of each unit,
//!   `__per_cpu_offset[cpu]` and TPIDR_EL1 pointed at them, the rest of the
//!   unit left to the dynamic allocator.
//! * **Dynamic chunks** take their address space from vmalloc
//!   (`pcpu_get_vm_areas`, congruent areas from the top of the vmalloc
//!   range; here one area, as all units form one group) and are populated
//!   a page at a time, in every unit, when an allocation first reaches
//!   that page (`pcpu_populate_chunk`).
//!
//! Chunks sit on slot lists by their largest free run (`pcpu_slot[]`, slot
//! from the run's highest bit); an allocation scans the slots that can hold
//! it, lowest first, and makes a new chunk when none can. A chunk that
//! becomes empty goes to the last slot; a second empty chunk is destroyed
//! at once (5.10 leaves that to its balance work item; there is no
//! workqueue here).
//!
//! Locking: one SpinLock, `pcpu_lock`, over the chunks and slots. 5.10
//! drops it around chunk creation and population (which may sleep, under
//! `pcpu_alloc_mutex`); nothing sleeps here, so creation and population run
//! under it. Lock order: `pcpu_lock` -> vmalloc's locks -> `zone->lock`.

use crate::arch::kernel::percpu::{self as arch_percpu, PerCpu};
use crate::arch::kernel::smp;
use crate::arch::memory::*;
use crate::arch::mm::mmu::{__va, flush_tlb_kernel_range};
use crate::arch::mm::pgtable::PAGE_KERNEL;
use crate::kernel::locking::spinlock::SpinLock;
use crate::mm::page_alloc::{__free_pages, alloc_pages};
use crate::mm::percpu_map::{PCPU_MIN_ALLOC_SIZE, PcpuAreaMap};
use crate::mm::vmalloc::{self, VmStruct};
use crate::{pr_info, pr_warn};
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::ptr;

/// The smallest unit (Linux: PCPU_MIN_UNIT_SIZE).
pub const PCPU_MIN_UNIT_SIZE: usize = 32 << 10;
/// Dynamic space the first chunk keeps beside the static data (Linux, 64-bit).
pub const PERCPU_DYNAMIC_RESERVE: usize = 28 << 10;
/// Slot numbering (Linux: PCPU_SLOT_BASE_SHIFT, PCPU_SLOT_FAIL_THRESHOLD).
const PCPU_SLOT_BASE_SHIFT: usize = 5;
const PCPU_SLOT_FAIL_THRESHOLD: usize = 3;

/// One chunk (Linux: struct pcpu_chunk).
struct PcpuChunk {
    map: PcpuAreaMap,
    /// Address of unit 0's first byte.
    base_addr: usize,
    /// The vmalloc area of a dynamic chunk (one group of units: one area);
    /// null for the first chunk.
    vm: *mut VmStruct,
    /// The array pcpu_get_vm_areas returned, for pcpu_free_vm_areas.
    vms: *mut *mut VmStruct,
    /// Bit p: page p of every unit is backed and mapped.
    populated: u64,
    /// The backing page of page p of unit u at `p * nr_units + u` (a
    /// dynamic chunk's; allocated with the chunk, so that destroying it
    /// needs no memory).
    pages: Vec<PhysAddr>,
    /// Its slot list: the slot, and the neighbours (NIL at the ends).
    slot: usize,
    prev: usize,
    next: usize,
}

/// End of a slot list.
const NIL: usize = usize::MAX;

/// Counters for the `percpu` shell view (Linux: percpu-stats.c).
#[derive(Clone, Copy, Default)]
pub struct PcpuStats {
    pub nr_alloc: usize,
    pub nr_dealloc: usize,
    pub nr_cur_alloc: usize,
    pub nr_max_alloc: usize,
    pub nr_chunks: usize,
    pub nr_max_chunks: usize,
    pub chunks_created: usize,
    pub chunks_destroyed: usize,
    pub populated_pages: usize,
    pub min_alloc_size: usize,
    pub max_alloc_size: usize,
}

/// Everything `pcpu_lock` guards.
struct Pcpu {
    /// Set by setup_per_cpu_areas; allocations fail before it.
    ready: bool,
    unit_size: usize,
    unit_pages: usize,
    nr_units: usize,
    static_size: usize,
    /// Linux's pcpu_base_addr: the first chunk's unit 0.
    base_addr: usize,
    nr_slots: usize,
    /// Chunk 0 is the first chunk; freed ids are reused. `free_ids` has
    /// room for every id, so that destroying a chunk needs no memory.
    chunks: Vec<Option<PcpuChunk>>,
    free_ids: Vec<usize>,
    /// (base address, id) of the dynamic chunks, sorted, for
    /// free_percpu's lookup (Linux finds the chunk through the backing
    /// page's `index`).
    by_addr: Vec<(usize, usize)>,
    /// The head of each slot's list of chunks (Linux: pcpu_slot[]).
    slots: Vec<usize>,
    stats: PcpuStats,
}

// SAFETY: the raw `vm` pointers are owned by their chunk and used only
// under pcpu_lock.
unsafe impl Send for Pcpu {}

/// Linux's pcpu_lock.
#[unsafe(no_mangle)]
static pcpu_lock: SpinLock<Pcpu> = SpinLock::new(Pcpu {
    ready: false,
    unit_size: 0,
    unit_pages: 0,
    nr_units: 0,
    static_size: 0,
    base_addr: 0,
    nr_slots: 0,
    chunks: Vec::new(),
    free_ids: Vec::new(),
    by_addr: Vec::new(),
    slots: Vec::new(),
    stats: PcpuStats {
        nr_alloc: 0,
        nr_dealloc: 0,
        nr_cur_alloc: 0,
        nr_max_alloc: 0,
        nr_chunks: 0,
        nr_max_chunks: 0,
        chunks_created: 0,
        chunks_destroyed: 0,
        populated_pages: 0,
        min_alloc_size: 0,
        max_alloc_size: 0,
    },
});

/// Linux's __pcpu_size_to_slot.
fn size_to_slot_raw(size: usize) -> usize {
    let fls = usize::BITS as usize - size.leading_zeros() as usize;
    (fls + 2).saturating_sub(PCPU_SLOT_BASE_SHIFT).max(1)
}

impl Pcpu {
    /// Linux's pcpu_size_to_slot: a wholly free chunk has the last slot.
    fn size_to_slot(&self, size: usize) -> usize {
        if size == self.unit_size {
            self.nr_slots - 1
        } else {
            size_to_slot_raw(size)
        }
    }

    /// Linux's pcpu_chunk_slot.
    fn chunk_slot(&self, c: &PcpuChunk) -> usize {
        if c.map.contig_bits() == 0 {
            return 0;
        }
        self.size_to_slot(c.map.contig_bits() * PCPU_MIN_ALLOC_SIZE)
    }

    fn chunk(&mut self, id: usize) -> &mut PcpuChunk {
        self.chunks[id].as_mut().expect("live chunk id")
    }

    fn chunk_ref(&self, id: usize) -> &PcpuChunk {
        self.chunks[id].as_ref().expect("live chunk id")
    }

    fn slot_remove(&mut self, id: usize) {
        let (slot, prev, next) = {
            let c = self.chunk(id);
            (c.slot, c.prev, c.next)
        };
        match prev {
            NIL => self.slots[slot] = next,
            p => self.chunk(p).next = next,
        }
        if next != NIL {
            self.chunk(next).prev = prev;
        }
    }

    /// Put `id` at the head of `slot`'s list (Linux adds at the tail for
    /// moves to a higher slot; the head keeps the search on the chunk that
    /// just changed, which is also the one most likely to be populated).
    fn slot_insert(&mut self, id: usize, slot: usize) {
        let head = self.slots[slot];
        if head != NIL {
            self.chunk(head).prev = id;
        }
        let c = self.chunk(id);
        c.slot = slot;
        c.prev = NIL;
        c.next = head;
        self.slots[slot] = id;
    }

    /// Linux's pcpu_chunk_move.
    fn chunk_move(&mut self, id: usize, slot: usize) {
        if self.chunk(id).slot != slot {
            self.slot_remove(id);
            self.slot_insert(id, slot);
        }
    }

    /// Linux's pcpu_chunk_relocate: back on the slot its largest run says.
    fn chunk_relocate(&mut self, id: usize) {
        let slot = self.chunk_slot(self.chunk_ref(id));
        self.chunk_move(id, slot);
    }

    /// Take in a new chunk; None when the bookkeeping cannot grow, after
    /// destroying the chunk again.
    fn add_chunk(&mut self, chunk: PcpuChunk) -> Option<usize> {
        let base = chunk.base_addr;
        let is_first = chunk.vm.is_null();
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => {
                let ids = self.chunks.len() + 1;
                if self.chunks.try_reserve(1).is_err() || self.free_ids.try_reserve(ids).is_err() {
                    pcpu_destroy_chunk(self, chunk);
                    return None;
                }
                self.chunks.push(None);
                self.chunks.len() - 1
            }
        };
        if !is_first {
            if self.by_addr.try_reserve(1).is_err() {
                self.free_ids.push(id);
                pcpu_destroy_chunk(self, chunk);
                return None;
            }
            let at = self.by_addr.partition_point(|&(b, _)| b < base);
            self.by_addr.insert(at, (base, id));
        }
        self.chunks[id] = Some(chunk);
        self.chunk(id).slot = NIL;
        let slot = self.chunk_slot(self.chunk_ref(id));
        self.slot_insert(id, slot);
        self.stats.nr_chunks += 1;
        self.stats.nr_max_chunks = self.stats.nr_max_chunks.max(self.stats.nr_chunks);
        Some(id)
    }

    /// Take chunk `id` off the books (its memory is the caller's to free).
    fn remove_chunk(&mut self, id: usize) -> PcpuChunk {
        self.slot_remove(id);
        let chunk = self.chunks[id].take().expect("live chunk id");
        // Never fails: free_ids has room for every id (add_chunk).
        self.free_ids.push(id);
        if let Ok(at) = self.by_addr.binary_search(&(chunk.base_addr, id)) {
            self.by_addr.remove(at);
        }
        self.stats.nr_chunks -= 1;
        chunk
    }

    /// Address of `off` in unit `unit` of chunk `c` (Linux: pcpu_chunk_addr).
    fn unit_addr(&self, c: &PcpuChunk, unit: usize, off: usize) -> usize {
        c.base_addr + unit * self.unit_size + off
    }

    /// Chunk `id` may have just become empty: keep one empty chunk for the
    /// next allocation, the better populated one, and destroy the other
    /// (5.10's pcpu_balance_free, done at once).
    fn balance_empty(&mut self, id: usize) {
        let top = self.nr_slots - 1;
        if id == 0 || self.chunk_ref(id).slot != top {
            return;
        }
        let other = if self.slots[top] == id {
            self.chunk_ref(id).next
        } else {
            self.slots[top]
        };
        if other == NIL {
            return;
        }
        let pop = |c: &PcpuChunk| c.populated.count_ones();
        let victim = if pop(self.chunk_ref(other)) < pop(self.chunk_ref(id)) {
            other
        } else {
            id
        };
        let chunk = self.remove_chunk(victim);
        self.stats.chunks_destroyed += 1;
        let freed = pcpu_destroy_chunk(self, chunk);
        self.stats.populated_pages -= freed;
    }

    /// The chunk holding unit-0 address `addr`, and the offset in it.
    fn addr_to_chunk(&self, addr: usize) -> Option<(usize, usize)> {
        if addr >= self.base_addr && addr < self.base_addr + self.unit_size {
            return Some((0, addr - self.base_addr));
        }
        let at = self.by_addr.partition_point(|&(b, _)| b <= addr).checked_sub(1)?;
        let (base, id) = self.by_addr[at];
        (addr < base + self.unit_size).then_some((id, addr - base))
    }
}

// ---------------------------------------------------------------------------
// The first chunk
// ---------------------------------------------------------------------------

/// Linux's setup_per_cpu_areas with pcpu_embed_first_chunk: the first chunk
/// in the linear map, the static per-CPU data moved onto it, TPIDR_EL1 of
/// the boot CPU switched over. Runs once, on CPU 0, before the secondaries
/// start (they are given their unit by `per_cpu`). A failure here leaves
/// every CPU on its static slot and the dynamic allocator off: loud, but
/// not fatal.
pub fn setup_per_cpu_areas() {
    let nr_units = smp::nr_cpu_ids();
    let static_size = core::mem::size_of::<PerCpu>().next_multiple_of(PCPU_MIN_ALLOC_SIZE);
    let unit_size = (static_size + PERCPU_DYNAMIC_RESERVE)
        .next_multiple_of(PAGE_SIZE)
        .max(PCPU_MIN_UNIT_SIZE);
    let unit_pages = unit_size / PAGE_SIZE;
    assert!(
        unit_pages <= 64,
        "percpu: a {}-page unit does not fit the populated bitmap",
        unit_pages
    );
    let bytes = nr_units * unit_size;
    let order = bytes.div_ceil(PAGE_SIZE).next_power_of_two().trailing_zeros() as usize;
    let Some(pa) = alloc_pages(order) else {
        pr_warn!(
            "percpu: no memory for the first chunk ({} units of {} bytes, order {}); static per-CPU slots kept, __alloc_percpu disabled",
            nr_units,
            unit_size,
            order
        );
        return;
    };
    let base = __va(pa).0;
    // SAFETY: the 2^order pages are fresh from the buddy allocator and
    // mapped by the linear map; nothing else refers to them.
    unsafe { ptr::write_bytes(base as *mut u8, 0, bytes) };

    let mut map = PcpuAreaMap::new(unit_size / PCPU_MIN_ALLOC_SIZE);
    let static_off = map.alloc(static_size / PCPU_MIN_ALLOC_SIZE, 1);
    assert_eq!(static_off, Some(0), "percpu: the static area must start the unit");

    // Copy each CPU's static slot into its unit and switch the offsets over
    // with IRQs masked: the IRQ entry path counts into this CPU's slot.
    let flags = crate::arch::kernel::irq::local_irq_save();
    for cpu in 0..nr_units {
        let unit = base + cpu * unit_size;
        // SAFETY: the source is CPU `cpu`'s static slot, the destination a
        // 64-byte aligned, unshared unit of the fresh chunk, at least
        // size_of::<PerCpu>() long; only CPU 0 runs and IRQs are masked, so
        // the slot does not change under the copy.
        unsafe { ptr::copy_nonoverlapping(arch_percpu::per_cpu(cpu) as *const PerCpu, unit as *mut PerCpu, 1) };
        arch_percpu::set_per_cpu_offset(cpu, unit);
    }
    // SAFETY: unit 0 now holds CPU 0's data, copied above with IRQs masked.
    unsafe { arch_percpu::set_my_cpu_offset(base) };
    crate::arch::kernel::irq::local_irq_restore(flags);

    let mut p = pcpu_lock.lock();
    p.unit_size = unit_size;
    p.unit_pages = unit_pages;
    p.nr_units = nr_units;
    p.static_size = static_size;
    p.base_addr = base;
    p.nr_slots = size_to_slot_raw(unit_size) + 2;
    let nr_slots = p.nr_slots;
    p.slots = alloc::vec![NIL; nr_slots];
    let first = PcpuChunk {
        map,
        base_addr: base,
        vm: ptr::null_mut(),
        vms: ptr::null_mut(),
        populated: if unit_pages == 64 { !0 } else { (1 << unit_pages) - 1 },
        pages: Vec::new(),
        slot: NIL,
        prev: NIL,
        next: NIL,
    };
    // The bookkeeping of an empty allocator grows from nothing at boot; the
    // first chunk is never destroyed (add_chunk would only do that to a
    // chunk with a vmalloc area).
    assert_eq!(p.add_chunk(first), Some(0), "percpu: the first chunk is chunk 0");
    p.ready = true;
    drop(p);
    // Linux: "percpu: Embedded 31 pages/cpu s87704 r8192 d31080 u126976".
    pr_info!(
        "percpu: Embedded {} pages/cpu s{} r0 d{} u{} ({} unit(s) at {:#x}, phys {:#x})",
        unit_pages,
        static_size,
        unit_size - static_size,
        unit_size,
        nr_units,
        base,
        pa.0
    );
}

// ---------------------------------------------------------------------------
// Chunk creation and population (Linux: mm/percpu-vm.c)
// ---------------------------------------------------------------------------

/// Linux's pcpu_create_chunk: address space for every unit, nothing
/// populated yet.
fn pcpu_create_chunk(p: &Pcpu) -> Option<PcpuChunk> {
    let map = PcpuAreaMap::try_new(p.unit_size / PCPU_MIN_ALLOC_SIZE)?;
    let mut pages = Vec::new();
    pages.try_reserve_exact(p.unit_pages * p.nr_units).ok()?;
    pages.resize(p.unit_pages * p.nr_units, PhysAddr(0));
    // One group holding every unit (5.10 has a group per NUMA node when
    // the first chunk's units are spread over nodes; here they are one
    // contiguous allocation), at group offset 0.
    let vms = vmalloc::pcpu_get_vm_areas(&[0], &[p.nr_units * p.unit_size], PAGE_SIZE);
    if vms.is_null() {
        return None;
    }
    // SAFETY: pcpu_get_vm_areas returned an array of one live area.
    let vm = unsafe { vms.read() };
    // SAFETY: a live area fresh from vmalloc, owned by this chunk.
    let base_addr = unsafe { (*vm).addr };
    Some(PcpuChunk {
        map,
        base_addr,
        vm,
        vms,
        populated: 0,
        pages,
        slot: NIL,
        prev: NIL,
        next: NIL,
    })
}

/// Linux's pcpu_populate_chunk: back pages [start, end) of every unit that
/// are not yet backed. All or nothing: on failure what this call mapped is
/// unmapped and freed again. Returns the pages it backed.
fn pcpu_populate_chunk(p: &Pcpu, c: &mut PcpuChunk, start: usize, end: usize) -> Result<usize, ()> {
    let todo = |page: usize| c.populated & (1 << page) == 0;
    let mut err = None;
    'pages: for page in (start..end).filter(|&pg| todo(pg)) {
        for unit in 0..p.nr_units {
            let addr = p.unit_addr(c, unit, page * PAGE_SIZE);
            let Some(pa) = alloc_pages(0) else {
                err = Some((page, unit));
                break 'pages;
            };
            if vmalloc::map_kernel_range(addr, &[pa], PAGE_KERNEL) != 0 {
                __free_pages(pa, 0);
                err = Some((page, unit));
                break 'pages;
            }
            c.pages[page * p.nr_units + unit] = pa;
        }
    }
    let Some((bad_page, bad_unit)) = err else {
        let n = (start..end).filter(|&pg| todo(pg)).count() * p.nr_units;
        for page in start..end {
            c.populated |= 1 << page;
        }
        return Ok(n);
    };
    // Unwind: every unit of the pages before `bad_page`, and the units of
    // `bad_page` before `bad_unit`.
    let mapped = |page: usize, unit: usize| todo(page) && (page < bad_page || (page == bad_page && unit < bad_unit));
    for page in start..=bad_page {
        for unit in (0..p.nr_units).filter(|&u| mapped(page, u)) {
            vmalloc::unmap_kernel_range_noflush(p.unit_addr(c, unit, page * PAGE_SIZE), PAGE_SIZE);
        }
    }
    flush_tlb_kernel_range(c.base_addr, c.base_addr + p.nr_units * p.unit_size);
    for page in start..=bad_page {
        for unit in (0..p.nr_units).filter(|&u| mapped(page, u)) {
            __free_pages(
                core::mem::replace(&mut c.pages[page * p.nr_units + unit], PhysAddr(0)),
                0,
            );
        }
    }
    Err(())
}

/// Linux's pcpu_depopulate_chunk + pcpu_destroy_chunk: unmap and free
/// every backed page, then give the address space back. Returns the pages
/// freed.
fn pcpu_destroy_chunk(p: &Pcpu, c: PcpuChunk) -> usize {
    let len = p.nr_units * p.unit_size;
    vmalloc::unmap_kernel_range_noflush(c.base_addr, len);
    flush_tlb_kernel_range(c.base_addr, c.base_addr + len);
    let mut freed = 0;
    for page in (0..p.unit_pages).filter(|&pg| c.populated & (1 << pg) != 0) {
        for unit in 0..p.nr_units {
            __free_pages(c.pages[page * p.nr_units + unit], 0);
            freed += 1;
        }
    }
    // SAFETY: the chunk's own areas, unmapped above and not used again.
    unsafe { vmalloc::pcpu_free_vm_areas(c.vms, 1) };
    freed
}

// ---------------------------------------------------------------------------
// __alloc_percpu / free_percpu
// ---------------------------------------------------------------------------

/// Linux's per_cpu_ptr: CPU `cpu`'s copy of the `__percpu` pointer `ptr`.
#[inline]
pub fn per_cpu_ptr(ptr: *mut u8, cpu: usize) -> *mut u8 {
    ptr.wrapping_add(arch_percpu::per_cpu_offset(cpu))
}

/// Linux's this_cpu_ptr.
#[inline]
pub fn this_cpu_ptr(ptr: *mut u8) -> *mut u8 {
    per_cpu_ptr(ptr, arch_percpu::smp_processor_id())
}

/// Linux's pcpu_alloc: `size` zeroed bytes on every possible CPU, aligned
/// to `align`, as a `__percpu` pointer (only `per_cpu_ptr` and
/// `this_cpu_ptr` turn it into memory). Null on failure, with the reason.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn pcpu_alloc(size: usize, align: usize) -> *mut u8 {
    let mut p = pcpu_lock.lock();
    if !p.ready {
        drop(p);
        pr_warn!("percpu: allocation of {} bytes before setup_per_cpu_areas", size);
        return ptr::null_mut();
    }
    // Linux's checks, and its warning.
    if size == 0 || size > p.unit_size - p.static_size || !align.is_power_of_two() || align > PAGE_SIZE {
        drop(p);
        pr_warn!(
            "percpu: illegal size ({}) or align ({}) for percpu allocation",
            size,
            align
        );
        return ptr::null_mut();
    }
    let align = align.max(PCPU_MIN_ALLOC_SIZE);
    let size = size.next_multiple_of(PCPU_MIN_ALLOC_SIZE);
    let bits = size / PCPU_MIN_ALLOC_SIZE;
    let align_bits = align / PCPU_MIN_ALLOC_SIZE;

    let mut found = None;
    'search: for slot in p.size_to_slot(size)..p.nr_slots {
        let mut id = p.slots[slot];
        while id != NIL {
            let next = p.chunk_ref(id).next;
            let c = p.chunk(id);
            let got = if c.map.fits_contig_hint(bits, align_bits) {
                c.map.alloc(bits, align_bits)
            } else {
                None
            };
            match got {
                Some(off) => {
                    found = Some((id, off * PCPU_MIN_ALLOC_SIZE));
                    break 'search;
                }
                // Too fragmented for small requests: park it in slot 0
                // until a free in it moves it back (Linux does the same).
                None if slot < PCPU_SLOT_FAIL_THRESHOLD => p.chunk_move(id, 0),
                None => {}
            }
            id = next;
        }
    }
    let (id, off) = match found {
        Some(f) => f,
        None => {
            let Some(chunk) = pcpu_create_chunk(&p) else {
                drop(p);
                pr_warn!(
                    "percpu: allocation failed, size={} align={}: failed to allocate new chunk",
                    size,
                    align
                );
                return ptr::null_mut();
            };
            let id = match p.add_chunk(chunk) {
                Some(id) => id,
                None => {
                    drop(p);
                    pr_warn!(
                        "percpu: allocation failed, size={} align={}: no memory to track a new chunk",
                        size,
                        align
                    );
                    return ptr::null_mut();
                }
            };
            p.stats.chunks_created += 1;
            let off = p
                .chunk(id)
                .map
                .alloc(bits, align_bits)
                .expect("an empty chunk fits any legal size");
            (id, off * PCPU_MIN_ALLOC_SIZE)
        }
    };

    let (start, end) = (off / PAGE_SIZE, (off + size).div_ceil(PAGE_SIZE));
    let mut chunk = p.chunks[id].take().expect("live chunk id");
    let populated = pcpu_populate_chunk(&p, &mut chunk, start, end);
    p.chunks[id] = Some(chunk);
    let Ok(new_pages) = populated else {
        let _ = p.chunk(id).map.free(off / PCPU_MIN_ALLOC_SIZE);
        p.chunk_relocate(id);
        p.balance_empty(id);
        drop(p);
        pr_warn!(
            "percpu: allocation failed, size={} align={}: failed to populate",
            size,
            align
        );
        return ptr::null_mut();
    };
    p.stats.populated_pages += new_pages;
    p.chunk_relocate(id);

    let c = p.chunk_ref(id);
    for unit in 0..p.nr_units {
        // SAFETY: [off, off + size) of each unit was just allocated in the
        // map (nobody else owns it) and populated above.
        unsafe { ptr::write_bytes(p.unit_addr(c, unit, off) as *mut u8, 0, size) };
    }
    let cookie = (c.base_addr + off).wrapping_sub(p.base_addr);
    let s = &mut p.stats;
    s.nr_alloc += 1;
    s.nr_cur_alloc += 1;
    s.nr_max_alloc = s.nr_max_alloc.max(s.nr_cur_alloc);
    s.min_alloc_size = if s.min_alloc_size == 0 {
        size
    } else {
        s.min_alloc_size.min(size)
    };
    s.max_alloc_size = s.max_alloc_size.max(size);
    cookie as *mut u8
}

/// Linux's __alloc_percpu.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __alloc_percpu(size: usize, align: usize) -> *mut u8 {
    pcpu_alloc(size, align)
}

/// Linux's free_percpu. A pointer that is not the start of a live
/// allocation is reported and ignored.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn free_percpu(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    let mut p = pcpu_lock.lock();
    let addr = (ptr as usize).wrapping_add(p.base_addr);
    let Some((id, off)) = p.addr_to_chunk(addr) else {
        drop(p);
        pr_warn!("free_percpu({:#x}): not in any per-CPU chunk; ignored", ptr as usize);
        return;
    };
    if let Err(e) = p.chunk(id).map.free(off / PCPU_MIN_ALLOC_SIZE) {
        drop(p);
        pr_warn!("free_percpu({:#x}): {}; ignored", ptr as usize, e);
        return;
    }
    p.stats.nr_dealloc += 1;
    p.stats.nr_cur_alloc -= 1;
    p.chunk_relocate(id);
    p.balance_empty(id);
}

// ---------------------------------------------------------------------------
// Statistics (Linux: percpu-stats.c) and the invariant check
// ---------------------------------------------------------------------------

/// (unit_size, static_size, nr_units) as set up at boot; zeros before.
pub fn pcpu_geometry() -> (usize, usize, usize) {
    let p = pcpu_lock.lock();
    (p.unit_size, p.static_size, p.nr_units)
}

/// The global counters.
pub fn pcpu_stats() -> PcpuStats {
    pcpu_lock.lock().stats
}

/// Linux's /sys/kernel/debug/percpu_stats, abridged: the geometry, the
/// global counters and one line per chunk.
pub fn percpu_stats(w: &mut dyn Write) -> fmt::Result {
    let p = pcpu_lock.lock();
    if !p.ready {
        return writeln!(w, "percpu: not set up");
    }
    let s = p.stats;
    writeln!(w, "Percpu Memory Statistics")?;
    writeln!(
        w,
        "  unit_size {}  static_size {}  dyn_size {}  atom_size {}  nr_units {}",
        p.unit_size,
        p.static_size,
        p.unit_size - p.static_size,
        PAGE_SIZE,
        p.nr_units
    )?;
    writeln!(
        w,
        "  nr_alloc {}  nr_dealloc {}  nr_cur_alloc {}  nr_max_alloc {}",
        s.nr_alloc, s.nr_dealloc, s.nr_cur_alloc, s.nr_max_alloc
    )?;
    writeln!(
        w,
        "  nr_chunks {}  nr_max_chunks {}  created {}  destroyed {}  populated_pages {}  min_alloc_size {}  max_alloc_size {}",
        s.nr_chunks,
        s.nr_max_chunks,
        s.chunks_created,
        s.chunks_destroyed,
        s.populated_pages,
        s.min_alloc_size,
        s.max_alloc_size
    )?;
    writeln!(
        w,
        "  chunk               slot  nr_alloc  free_bytes  contig_bytes  populated"
    )?;
    for c in p.chunks.iter().flatten() {
        writeln!(
            w,
            "  {:#018x}  {:>4}  {:>8}  {:>10}  {:>12}  {:>3}/{}{}",
            c.base_addr,
            c.slot,
            // The first chunk's static area is an allocation of its map.
            c.map.nr_alloc() - usize::from(c.vm.is_null()),
            c.map.free_bits() * PCPU_MIN_ALLOC_SIZE,
            c.map.contig_bits() * PCPU_MIN_ALLOC_SIZE,
            c.populated.count_ones(),
            p.unit_pages,
            if c.vm.is_null() { "  <- first chunk" } else { "" }
        )?;
    }
    Ok(())
}

/// Check every chunk's map hints, that each chunk sits on the slot its
/// largest free run says (or slot 0, where a failed search parks it), that
/// the slot lists hold each chunk once, and that at most one dynamic chunk
/// is empty.
pub fn check_percpu_invariants() -> Result<(), alloc::string::String> {
    let p = pcpu_lock.lock();
    let mut listed = 0;
    for (slot, &head) in p.slots.iter().enumerate() {
        let (mut id, mut prev) = (head, NIL);
        while id != NIL {
            let c = p.chunk_ref(id);
            if c.slot != slot || c.prev != prev {
                return Err(alloc::format!("chunk {:#x}: slot list {} is broken", c.base_addr, slot));
            }
            listed += 1;
            if listed > p.chunks.len() {
                return Err(alloc::format!("slot list {} loops", slot));
            }
            (prev, id) = (id, c.next);
        }
    }
    let live = p.chunks.iter().flatten().count();
    if listed != live {
        return Err(alloc::format!("{} chunks on the slot lists, {} live", listed, live));
    }
    for c in p.chunks.iter().flatten() {
        c.map
            .check()
            .map_err(|e| alloc::format!("chunk {:#x}: {}", c.base_addr, e))?;
        let want = p.chunk_slot(c);
        if c.slot != want && c.slot != 0 {
            return Err(alloc::format!(
                "chunk {:#x} on slot {}, its largest run says {}",
                c.base_addr,
                c.slot,
                want
            ));
        }
    }
    let empty = p
        .chunks
        .iter()
        .flatten()
        .filter(|c| !c.vm.is_null() && c.map.is_empty())
        .count();
    if empty > 1 {
        return Err(alloc::format!("{} empty chunks kept (at most one)", empty));
    }
    Ok(())
}
