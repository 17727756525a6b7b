// SPDX-License-Identifier: GPL-2.0-only
//! paging_init (Linux: arch/arm64/mm/mmu.c): build the final kernel page
//! tables `swapper_pg_dir`, switch TTBR1 to them and retire the boot-time
//! identity map.
//!
//! * kernel segments at 4 KiB granularity, W^X (map_kernel_segment):
//!   .text RX, .rodata R, .data/.bss RW, all recorded in [`kernel_segments`]
//!   for vmalloc's `vm_area_add_early`;
//! * the linear map (map_mem): every RAM page except `MEMBLOCK_NOMAP` ones,
//!   never executable, 1 GiB / 2 MiB blocks where aligned; the alias of the
//!   image's .text/.rodata read-only and in blocks/pages of its own, so the
//!   linear map offers no writable way around W^X;
//! * the fixmap (early_fixmap_init): static tables in the image, shared by
//!   init_pg_dir and swapper_pg_dir; it holds the boot console's page.
//!
//! Table pages come from memblock until the buddy allocator exists, then
//! from `alloc_pages(0)`. memblock hands them out from the top of RAM,
//! which the boot identity map need not reach (it covers 256 GiB), so while
//! swapper_pg_dir is built every table is reached through a fixmap window
//! per level (FIX_PGD..FIX_PTE), as Linux's `pgd_set_fixmap` and friends.

use crate::arch::memory::*;
use crate::arch::mm::pgtable::{
    Descriptor, PAGE_KERNEL, PAGE_KERNEL_RO, PAGE_KERNEL_ROX, PROT_DEVICE_NGNRE, PageProt, PageTable, PgtableEnv,
    PgtableError, map_mem_plan, pte_encode, table_encode,
};
use crate::kernel::locking::spinlock::SpinLock;
use crate::mm::memblock_lock;
use crate::pr_info;
use aarch64_cpu::asm::barrier::{self, ISH, ISHST, NSH, SY};
use aarch64_cpu::registers::{ReadWriteable, TCR_EL1, TTBR0_EL1, Writeable};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

unsafe extern "C" {
    static _text: u8;
    static _stext: u8;
    static _etext: u8;
    static __start_rodata: u8;
    static __end_rodata: u8;
    static _sdata: u8;
    static _edata: u8;
    static __bss_start: u8;
    static __bss_stop: u8;
    static _end: u8;
    fn idmap_cpu_replace_ttbr1(ttbr1: usize);
    static init_stack_guard: u8;
    static mut init_pg_dir: [u64; 512];
}

/// The unmapped page below the kernel stack (head.S).
pub fn stack_guard_page() -> usize {
    sym(&raw const init_stack_guard)
}

/// A linker or asm symbol's address. Symbols are taken with `&raw const`,
/// which reads nothing and so needs no unsafe (a `&` reference to an
/// extern static would).
fn sym(s: *const u8) -> usize {
    s as usize
}

/// One segment of the kernel image as mapped by paging_init.
#[derive(Clone, Copy, Debug)]
pub struct KernelSegment {
    pub name: &'static str,
    pub start: VirtAddr,
    pub end: VirtAddr,
    pub prot: PageProt,
    /// Where the segment's mapping is defined (vmallocinfo's caller column).
    pub caller: &'static core::panic::Location<'static>,
}

/// Linear-map offset: `__va(pa) = pa - memstart_addr + PAGE_OFFSET`.
static MEMSTART_ADDR: AtomicUsize = AtomicUsize::new(0);
/// End (exclusive) of the linear map actually populated.
static LINEAR_END: AtomicUsize = AtomicUsize::new(PAGE_OFFSET);
/// Set once swapper_pg_dir is live and the linear map may be used.
static SWAPPER_LIVE: AtomicBool = AtomicBool::new(false);

/// Physical start of RAM rounded down to 1 GiB (Linux: memstart_addr).
pub fn memstart_addr() -> usize {
    MEMSTART_ADDR.load(Ordering::Relaxed)
}

/// Linux's `__va`: linear-map address of a physical address.
pub fn __va(pa: PhysAddr) -> VirtAddr {
    VirtAddr(pa.0 - memstart_addr() + PAGE_OFFSET)
}

/// Linux's `__pa` for linear-map addresses.
pub fn __pa(va: VirtAddr) -> PhysAddr {
    debug_assert!(is_linear_map_addr(va.0));
    PhysAddr(va.0 - PAGE_OFFSET + memstart_addr())
}

/// Link address minus load address of the image (Linux: `kimage_voffset`,
/// which arch/arm64/mm/mmu.c defines and head.S's `__primary_switched`
/// sets; here start_kernel sets it from head.S's third argument).
static KIMAGE_VOFFSET: AtomicUsize = AtomicUsize::new(0);

/// Record where the loader put the image (`phys_text`: its physical base).
pub fn set_kimage_voffset(phys_text: usize) {
    KIMAGE_VOFFSET.store(KIMAGE_VADDR.wrapping_sub(phys_text), Ordering::Relaxed);
}

/// `kimage_voffset`: link address minus load address of the image.
pub fn kimage_voffset() -> usize {
    KIMAGE_VOFFSET.load(Ordering::Relaxed)
}

/// Linux's `__pa_symbol`: physical address of a kernel-image symbol.
pub fn __pa_symbol(va: usize) -> PhysAddr {
    PhysAddr(va.wrapping_sub(kimage_voffset()))
}

/// End of the populated linear map (for reporting and `pt`).
pub fn linear_map_end() -> usize {
    LINEAR_END.load(Ordering::Relaxed)
}

/// The pgd of the final kernel page tables; it lives in the image, as in Linux.
#[repr(C, align(4096))]
struct PgdPage([u64; 512]);
#[unsafe(no_mangle)]
static mut swapper_pg_dir: PgdPage = PgdPage([0; 512]);

/// The kernel page tables and their lock (Linux: init_mm.page_table_lock).
pub static INIT_MM: SpinLock<Option<PageTable>> = SpinLock::new(None);

/// Page-table pages handed out, for meminfo's PageTables line.
static PGTABLE_PAGES: AtomicUsize = AtomicUsize::new(0);

pub fn pgtable_pages() -> usize {
    PGTABLE_PAGES.load(Ordering::Relaxed)
}

/// How the kernel backs the generic page-table code: table pages from
/// memblock (boot) or the buddy allocator (after mm_init), accessed through
/// the fixmap's per-level windows before the switch and the linear map
/// after; barriers and TLB maintenance as Linux's set_pte /
/// flush_tlb_kernel_range.
pub struct KernelPgtableEnv;

/// Above this many pages, one `tlbi vmalle1is` beats per-page invalidation
/// (Linux: MAX_TLBI_OPS = PTRS_PER_PTE).
const MAX_TLBI_OPS: usize = 512;

// SAFETY: PgtableEnv's promises hold: alloc_table returns a 4 KiB page
// below 2^48 that memblock or the buddy allocator gave to us alone, zeroed
// through the level-3 window and ordered by `dmb ishst` before it can be
// linked; table_ptr reaches a table through the linear map once swapper is
// live, and before that through the fixmap window of its level, which stays
// put until the next table_ptr call for that level (alloc_table moves only
// the level-3 one, as the contract allows).
unsafe impl PgtableEnv for KernelPgtableEnv {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = if crate::mm::page_alloc::is_ready() {
            crate::mm::page_alloc::alloc_pages(0)?
        } else {
            PhysAddr(memblock_lock().phys_alloc(PAGE_SIZE as u64, PAGE_SIZE as u64)? as usize)
        };
        // Before the switch a new table is zeroed through FIX_PTE (Linux's
        // early_pgtable_alloc): the PgtableEnv contract lets alloc_table
        // move the level-3 window only.
        // SAFETY: table_ptr(pa, 3) maps the fresh page just allocated (the
        // window is valid for 512 u64s = PAGE_SIZE bytes), which nothing
        // else uses yet.
        unsafe { core::ptr::write_bytes(self.table_ptr(pa, 3) as *mut u8, 0, PAGE_SIZE) };
        // The zeroes must be visible to the table walker before the table
        // is linked in (Linux: the smp_wmb in __pte_alloc).
        barrier::dmb(ISHST);
        PGTABLE_PAGES.fetch_add(1, Ordering::Relaxed);
        Some(pa)
    }

    fn free_table(&mut self, pa: PhysAddr) {
        PGTABLE_PAGES.fetch_sub(1, Ordering::Relaxed);
        if crate::mm::page_alloc::is_ready() {
            crate::mm::page_alloc::__free_pages(pa, 0);
        } else {
            if let Err(e) = memblock_lock().free(pa.0 as u64, PAGE_SIZE as u64) {
                crate::pr_warn!("free_table: returning {:#x} to memblock failed: {}", pa.0, e);
            }
        }
    }

    fn table_ptr(&self, pa: PhysAddr, level: usize) -> *mut u64 {
        if SWAPPER_LIVE.load(Ordering::Relaxed) {
            return __va(pa).0 as *mut u64;
        }
        // paging_init: the linear map does not exist yet, and the identity
        // map may not reach pa (memblock allocates from the top of RAM).
        match level {
            0 => pgd_set_fixmap(pa),
            1 => pud_set_fixmap(pa),
            2 => pmd_set_fixmap(pa),
            _ => pte_set_fixmap(pa),
        }
    }

    fn sync_new_entries(&mut self) {
        // Make the new entries visible to the table walker before any
        // access through them (set_pte for kernel mappings).
        barrier::dsb(ISHST);
        barrier::isb(SY);
    }

    fn flush_tlb_kernel_range(&mut self, start: VirtAddr, end: VirtAddr) {
        flush_tlb_kernel_range(start.0, end.0);
    }

    fn flush_tlb_pgtable(&mut self, _from: VirtAddr, _to: VirtAddr) {
        // Table entries were cleared: cached walks must go too, which the
        // last-level-only vaale1is does not cover (rare path: failed maps).
        flush_tlb_all();
    }
}

/// Zero one page (Linux: arch/arm64/lib/clear_page.S): `dc zva` over the
/// block size DCZID_EL0 advertises (64 bytes on Cortex-A53/A72), eight
/// blocks per loop iteration; 16-byte stores where DCZID_EL0.DZP prohibits
/// DC ZVA. vmalloc uses it for init_on_alloc / __GFP_ZERO pages.
///
/// # Safety
///
/// `addr` must be page-aligned, mapped as Normal memory (DC ZVA faults on
/// Device memory), writable, and the page must be the caller's.
#[inline]
pub unsafe fn clear_page(addr: *mut u8) {
    let dczid: u64;
    // (aarch64-cpu has no DCZID_EL0, hence the asm.)
    // SAFETY: reading an ID register writes no memory and changes no state.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack, preserves_flags)) };
    let end = addr as usize + PAGE_SIZE;
    if dczid & (1 << 4) == 0 {
        let bs = 4usize << (dczid & 0xf);
        if bs == 64 {
            // SAFETY: zeroes exactly [addr, addr + PAGE_SIZE): 64 blocks of
            // 64 bytes, page-aligned start, per the contract.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "dc zva, {p}", "add {p}, {p}, #64",
                    "cmp {p}, {end}",
                    "b.ne 2b",
                    p = inout(reg) addr as usize => _,
                    end = in(reg) end,
                    options(nostack),
                );
            }
        } else {
            // Any other block size (4 bytes .. 2 KiB, a power of two that
            // divides the page).
            let mut p = addr as usize;
            while p < end {
                // SAFETY: as above: p is block-aligned (bs divides the page
                // size, the page is aligned) and the block lies in the page.
                unsafe { core::arch::asm!("dc zva, {}", in(reg) p, options(nostack)) };
                p += bs;
            }
        }
        return;
    }
    // SAFETY: four 16-byte stores fill [p, p + 64) per iteration, from the
    // page-aligned start to exactly `end` (64 divides PAGE_SIZE): only the
    // caller's page, writable Normal memory per the contract.
    unsafe {
        core::arch::asm!(
            "2:",
            "stp xzr, xzr, [{p}]",
            "stp xzr, xzr, [{p}, #16]",
            "stp xzr, xzr, [{p}, #32]",
            "stp xzr, xzr, [{p}, #48]",
            "add {p}, {p}, #64",
            "cmp {p}, {end}",
            "b.ne 2b",
            p = inout(reg) addr as usize => _,
            end = in(reg) end,
            options(nostack),
        );
    }
}

/// Linux's flush_tlb_all: every EL1 entry, cached walks included, on every
/// CPU of the inner-shareable domain.
pub fn flush_tlb_all() {
    crate::mm::TLB_FLUSHES.fetch_add(1, Ordering::Relaxed);
    barrier::dsb(ISHST);
    // SAFETY: invalidating TLB entries only drops cached translations, which
    // the walker refetches from the page tables; it changes no memory.
    unsafe { core::arch::asm!("tlbi vmalle1is", options(nostack, preserves_flags)) };
    barrier::dsb(ISH);
    barrier::isb(SY);
}

/// Linux's flush_tlb_kernel_range: broadcast invalidation of [start, end).
pub fn flush_tlb_kernel_range(start: usize, end: usize) {
    let pages = (end - start).div_ceil(PAGE_SIZE);
    if pages > MAX_TLBI_OPS {
        flush_tlb_all();
        return;
    }
    crate::mm::TLB_FLUSHES.fetch_add(1, Ordering::Relaxed);
    barrier::dsb(ISHST);
    let mut va = start & PAGE_MASK;
    while va < end {
        // vaale1is: by VA, all ASIDs, last level only, inner shareable.
        // SAFETY: as in flush_tlb_all: dropping cached translations changes
        // no memory; the operand is just a page number.
        unsafe {
            core::arch::asm!("tlbi vaale1is, {}", in(reg) (va >> PAGE_SHIFT) & ((1 << 44) - 1), options(nostack, preserves_flags))
        };
        va += PAGE_SIZE;
    }
    barrier::dsb(ISH);
    barrier::isb(SY);
}

// ---------------------------------------------------------------------------
// The fixmap (Linux: arch/arm64/mm/mmu.c early_fixmap_init, __set_fixmap)
// ---------------------------------------------------------------------------

#[repr(C, align(4096))]
struct TablePage([u64; 512]);

/// The fixmap's own tables (Linux: bm_pud, bm_pmd, bm_pte): in the image, so
/// they exist before any allocator and are reachable through the image
/// mapping in init_pg_dir and swapper_pg_dir alike. All fixmap slots lie
/// under one pmd entry (checked in layout.rs), so one pte table suffices.
static mut BM_PUD: TablePage = TablePage([0; 512]);
static mut BM_PMD: TablePage = TablePage([0; 512]);
static mut BM_PTE: TablePage = TablePage([0; 512]);

/// Physical page each table window (FIX_PGD, FIX_PUD, FIX_PMD, FIX_PTE by
/// level) maps, or NO_WINDOW. Only paging_init's single CPU uses them.
const NO_WINDOW: usize = usize::MAX;
static FIXMAP_WINDOW: [AtomicUsize; 4] = [const { AtomicUsize::new(NO_WINDOW) }; 4];
const FIX_TABLE_SLOT: [usize; 4] = [FIX_PGD, FIX_PUD, FIX_PMD, FIX_PTE];

fn bm_pte_entry(idx: usize) -> *mut u64 {
    debug_assert!(idx != FIX_HOLE && idx < __END_OF_FIXED_ADDRESSES);
    let va = VirtAddr(fix_to_virt(idx));
    // SAFETY: pte_index() < 512, so the offset stays inside the static
    // BM_PTE; only a raw pointer is made (no reference to the static mut,
    // which the table walker reads behind the compiler's back).
    unsafe { (&raw mut BM_PTE.0).cast::<u64>().add(va.pte_index()) }
}

/// Hook the fixmap's tables into init_pg_dir, the tables we run on (Linux:
/// early_fixmap_init). paging_init later links the same bm_pud into
/// swapper_pg_dir, so the fixmap survives the switch unchanged.
pub fn early_fixmap_init() {
    // The 2 MiB below FIXADDR_TOP, where every slot lies.
    let va = VirtAddr(FIXADDR_TOP - PAGE_SIZE);
    let pud_pa = __pa_symbol(core::ptr::addr_of!(BM_PUD) as usize);
    let pmd_pa = __pa_symbol(core::ptr::addr_of!(BM_PMD) as usize);
    let pte_pa = __pa_symbol(core::ptr::addr_of!(BM_PTE) as usize);
    // SAFETY: every pointer stays inside a 512-entry static table
    // (init_pg_dir from head.S, BM_PUD, BM_PMD; the indices are < 512), made
    // with &raw so no reference to a static mut exists. Boot, one CPU, and
    // the entries are invalid until written (checked for the pgd), so no
    // TLB maintenance is needed, only the barriers below before first use.
    unsafe {
        let pgd = (&raw mut init_pg_dir).cast::<u64>().add(va.pgd_index());
        let old = core::ptr::read_volatile(pgd);
        if old != 0 {
            crate::kernel::panic::boot_fail(format_args!(
                "early_fixmap_init: init_pg_dir[{}] for the fixmap at {:#x} is already {:#018x}",
                va.pgd_index(),
                va.0,
                old
            ));
        }
        core::ptr::write_volatile(
            (&raw mut BM_PMD.0).cast::<u64>().add(va.pmd_index()),
            table_encode(pte_pa),
        );
        core::ptr::write_volatile(
            (&raw mut BM_PUD.0).cast::<u64>().add(va.pud_index()),
            table_encode(pmd_pa),
        );
        core::ptr::write_volatile(pgd, table_encode(pud_pa));
    }
    barrier::dsb(ISHST);
    barrier::isb(SY);
}

/// Map fixmap slot `idx` to `pa` (Linux: __set_fixmap). A slot that still
/// maps something else is broken first (cleared, TLB flushed), since the
/// architecture wants break-before-make when a valid entry changes its
/// output address; then set_pte's `dsb ishst; isb` publishes the new one.
pub fn __set_fixmap(idx: usize, pa: PhysAddr, prot: PageProt) {
    let ptep = bm_pte_entry(idx);
    let va = fix_to_virt(idx);
    let new = pte_encode(PhysAddr(pa.0 & PAGE_MASK), prot, 3);
    // SAFETY: ptep points at the slot's entry inside the static BM_PTE (see
    // bm_pte_entry); aligned volatile 64-bit accesses, so the table walker
    // sees the old or the new descriptor, never a torn one; one CPU, so no
    // other writer races this read-modify-write.
    unsafe {
        let old = core::ptr::read_volatile(ptep);
        if old == new {
            return;
        }
        if Descriptor(old).is_valid() {
            core::ptr::write_volatile(ptep, 0);
            flush_tlb_kernel_range(va, va + PAGE_SIZE);
        }
        core::ptr::write_volatile(ptep, new);
    }
    barrier::dsb(ISHST);
    barrier::isb(SY);
}

/// Unmap fixmap slot `idx` (Linux: clear_fixmap): clear, then flush it.
pub fn clear_fixmap(idx: usize) {
    let va = fix_to_virt(idx);
    // SAFETY: as in __set_fixmap: an aligned entry inside BM_PTE, one CPU.
    unsafe { core::ptr::write_volatile(bm_pte_entry(idx), 0) };
    flush_tlb_kernel_range(va, va + PAGE_SIZE);
}

/// Point the window of `level` at the table page `pa`; reuses the mapping
/// when it already shows that page.
fn table_set_fixmap(level: usize, pa: PhysAddr) -> *mut u64 {
    let slot = FIX_TABLE_SLOT[level];
    if FIXMAP_WINDOW[level].load(Ordering::Relaxed) != pa.0 {
        __set_fixmap(slot, pa, PAGE_KERNEL);
        FIXMAP_WINDOW[level].store(pa.0, Ordering::Relaxed);
    }
    fix_to_virt(slot) as *mut u64
}

fn table_clear_fixmap(level: usize) {
    clear_fixmap(FIX_TABLE_SLOT[level]);
    FIXMAP_WINDOW[level].store(NO_WINDOW, Ordering::Relaxed);
}

/// The table page at `pa` through FIX_PGD (Linux: pgd_set_fixmap).
pub fn pgd_set_fixmap(pa: PhysAddr) -> *mut u64 {
    table_set_fixmap(0, pa)
}
/// The table page at `pa` through FIX_PUD (Linux: pud_set_fixmap).
pub fn pud_set_fixmap(pa: PhysAddr) -> *mut u64 {
    table_set_fixmap(1, pa)
}
/// The table page at `pa` through FIX_PMD (Linux: pmd_set_fixmap).
pub fn pmd_set_fixmap(pa: PhysAddr) -> *mut u64 {
    table_set_fixmap(2, pa)
}
/// The table page at `pa` through FIX_PTE (Linux: pte_set_fixmap).
pub fn pte_set_fixmap(pa: PhysAddr) -> *mut u64 {
    table_set_fixmap(3, pa)
}
pub fn pgd_clear_fixmap() {
    table_clear_fixmap(0)
}
pub fn pud_clear_fixmap() {
    table_clear_fixmap(1)
}
pub fn pmd_clear_fixmap() {
    table_clear_fixmap(2)
}
pub fn pte_clear_fixmap() {
    table_clear_fixmap(3)
}

static SEGMENTS: spin::Once<[KernelSegment; 3]> = spin::Once::new();

/// The kernel image segments as mapped (for vm_area_add_early and the
/// layout report).
pub fn kernel_segments() -> &'static [KernelSegment; 3] {
    SEGMENTS.call_once(|| {
        // (map_kernel_segment in Linux: one call per segment.)
        let here = core::panic::Location::caller();
        let seg = |name, start: *const u8, end: *const u8, prot| KernelSegment {
            name,
            start: VirtAddr(sym(start)),
            end: VirtAddr(sym(end)),
            prot,
            caller: here,
        };
        [
            seg(".text", &raw const _text, &raw const _etext, PAGE_KERNEL_ROX),
            seg(
                ".rodata",
                &raw const __start_rodata,
                &raw const __end_rodata,
                PAGE_KERNEL_RO,
            ),
            seg(".data", &raw const _sdata, &raw const _end, PAGE_KERNEL),
        ]
    })
}

/// Sizes for the Memory: line: (code, rwdata, rodata, bss), in bytes.
pub fn image_sizes() -> (usize, usize, usize, usize) {
    (
        sym(&raw const _etext) - sym(&raw const _stext),
        sym(&raw const _edata) - sym(&raw const _sdata),
        sym(&raw const __end_rodata) - sym(&raw const __start_rodata),
        sym(&raw const __bss_stop) - sym(&raw const __bss_start),
    )
}

/// Physical range of the linear alias that must be read-only: the image's
/// .text and .rodata (Linux: [_text, __init_begin) in map_mem).
pub fn linear_text_alias_phys() -> (PhysAddr, PhysAddr) {
    // __end_rodata is page-aligned (linker.ld).
    let (start, end) = (sym(&raw const _text), sym(&raw const __end_rodata));
    (__pa_symbol(start), __pa_symbol(end))
}

/// Physical extent of the kernel image.
pub fn kernel_image_phys() -> (PhysAddr, usize) {
    let (start, end) = (sym(&raw const _text), sym(&raw const _end));
    (__pa_symbol(start), end - start)
}

fn check(what: &str, r: Result<(), PgtableError>) {
    if let Err(e) = r {
        crate::kernel::panic::boot_fail(format_args!("paging_init: mapping {} failed: {}", what, e));
    }
}

/// Linux's map_mem: the linear map of all RAM but `MEMBLOCK_NOMAP`, the
/// alias of .text/.rodata read-only (mark_linear_text_alias_ro's result;
/// there is no alternatives patching that would need it writable first),
/// laid out by [`map_mem_plan`] so no block straddles the alias or covers
/// no-map memory, and no block ever has to be split later.
fn map_mem(pt: &mut PageTable, env: &mut KernelPgtableEnv) {
    // memblock's lists, copied out: mapping allocates from memblock.
    let (memory, nomap) = {
        let mb = memblock_lock();
        let copy = |list: &[crate::mm::memblock::Region]| {
            let mut a = [crate::mm::memblock::Region::new(0, 0); crate::mm::memblock::MAX_REGIONS];
            a[..list.len()].copy_from_slice(list);
            (a, list.len())
        };
        (copy(mb.memory()), copy(mb.nomap()))
    };
    let (memory, nomap) = (&memory.0[..memory.1], &nomap.0[..nomap.1]);
    let mut linear_end = PAGE_OFFSET;
    map_mem_plan(memory, nomap, linear_text_alias_phys(), |c| {
        let (va, size) = (__va(c.start), c.end.0 - c.start.0);
        let r = pt.map_range(env, va, c.start, size, c.prot, true);
        if let Err(e) = r {
            crate::kernel::panic::boot_fail(format_args!(
                "map_mem: linear map of [{:#x}-{:#x}) ({}) at {:#x}: {}",
                c.start.0,
                c.end.0,
                if c.prot.writable { "RW" } else { "RO text alias" },
                va.0,
                e
            ));
        }
        linear_end = linear_end.max(va.0 + size);
    });
    for n in nomap {
        pr_info!("map_mem: {} NOMAP: left out of the linear map", n);
    }
    LINEAR_END.store(linear_end, Ordering::Relaxed);
}

/// Build swapper_pg_dir, switch to it, drop the identity map, move the boot
/// console to the fixmap. Called once, with memblock populated.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn paging_init(uart_phys: usize) {
    let mut env = KernelPgtableEnv;
    let mem_start = memblock_lock().memory().first().map(|r| r.base as usize).unwrap_or(0);
    MEMSTART_ADDR.store(mem_start & !(PUD_SIZE - 1), Ordering::Relaxed);
    early_fixmap_init();

    let pgd_pa = __pa_symbol(core::ptr::addr_of!(swapper_pg_dir) as usize);
    // SAFETY: from_root wants a tree that follows this module's invariants
    // and no other editor: swapper_pg_dir is a zeroed (empty) pgd in .bss,
    // reached through the fixmap windows like every table, and `pt` is the
    // only PageTable ever made for it.
    let mut pt = unsafe { PageTable::from_root(pgd_pa) };
    // The fixmap keeps its tables: swapper's entry for it is init_pg_dir's
    // (Linux's map_kernel copies the pgd entry the same way).
    let fix_pgd_index = VirtAddr(FIXADDR_TOP - PAGE_SIZE).pgd_index();
    // SAFETY: pgd_set_fixmap maps swapper_pg_dir's page at FIX_PGD and
    // returns it as 512 u64s; fix_pgd_index < 512; an aligned volatile
    // store, and swapper is not live yet, so no walker uses it.
    unsafe {
        let pgdp = pgd_set_fixmap(pgd_pa);
        let bm_pud = __pa_symbol(core::ptr::addr_of!(BM_PUD) as usize);
        core::ptr::write_volatile(pgdp.add(fix_pgd_index), table_encode(bm_pud));
    }

    // Kernel image: W^X at page granularity (map_kernel_segment). The
    // stack's guard page inside .bss stays unmapped, so an overflow faults.
    let guard = stack_guard_page();
    for seg in kernel_segments() {
        let mut map = |start: usize, end: usize| {
            check(
                seg.name,
                pt.map_range(
                    &mut env,
                    VirtAddr(start),
                    __pa_symbol(start),
                    end - start,
                    seg.prot,
                    false,
                ),
            );
        };
        if seg.start.0 <= guard && guard < seg.end.0 {
            map(seg.start.0, guard);
            map(guard + PAGE_SIZE, seg.end.0);
        } else {
            map(seg.start.0, seg.end.0);
        }
    }
    map_mem(&mut pt, &mut env);
    // The boot console's fixmap slot, in the shared bm_pte.
    __set_fixmap(FIX_EARLYCON_MEM_IDX, PhysAddr(uart_phys), PROT_DEVICE_NGNRE);
    // Done with the windows (Linux: pgd_clear_fixmap before the switch).
    pte_clear_fixmap();
    pmd_clear_fixmap();
    pud_clear_fixmap();
    pgd_clear_fixmap();

    // Switch TTBR1 from init_pg_dir to swapper_pg_dir. The two map the
    // image with different block sizes, so the switch goes through an
    // empty TTBR1 and a full TLB flush, running from the identity map
    // (Linux: cpu_replace_ttbr1 / idmap_cpu_replace_ttbr1).
    // SAFETY: the function is position-independent leaf asm, mapped by the
    // identity map at its physical address; swapper maps everything the
    // kernel touches from here on.
    unsafe {
        let f: unsafe extern "C" fn(usize) =
            core::mem::transmute(__pa_symbol(idmap_cpu_replace_ttbr1 as *const () as usize).0);
        f(pgd_pa.0);
    }
    SWAPPER_LIVE.store(true, Ordering::Relaxed);
    *INIT_MM.lock() = Some(pt);

    // The console moves to the fixmap before TTBR0 walks stop.
    // SAFETY: __set_fixmap above mapped the UART's page at this slot as
    // Device-nGnRE, and the slot is never remapped: console_set_base's
    // contract (a PL011 mapped as device memory from now on).
    unsafe { crate::kernel::printk::console_set_base(FIX_EARLYCON_MEM_BASE + (uart_phys & !PAGE_MASK)) };

    // No more identity map: TTBR0 walks off, so a NULL dereference faults.
    // Nothing runs from TTBR0 any more (we are in the upper half, the
    // console and the FDT copy are reached through TTBR1).
    TCR_EL1.modify(TCR_EL1::EPD0::DisableTTBR0Walks);
    barrier::isb(SY);
    TTBR0_EL1.set(0);
    barrier::isb(SY);
    // SAFETY: dropping this CPU's cached translations (the identity map's
    // among them) changes no memory; TTBR1's are refetched from swapper.
    unsafe { core::arch::asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(NSH);
    barrier::isb(SY);
    pr_info!(
        "paging_init: swapper_pg_dir at {:#x} live; identity map retired (TCR_EL1.EPD0 set); console at fixmap {:#x}",
        pgd_pa.0,
        FIX_EARLYCON_MEM_BASE
    );
}

/// Run `f` on the kernel page tables under init_mm's lock.
pub fn with_init_mm<R>(f: impl FnOnce(&mut PageTable, &mut KernelPgtableEnv) -> R) -> R {
    let mut guard = INIT_MM.lock();
    let pt = guard.as_mut().expect("kernel page tables used before paging_init");
    f(pt, &mut KernelPgtableEnv)
}

/// Print the virtual kernel memory layout, as Linux did at boot.
pub fn print_vm_layout() {
    fn line(name: &str, start: usize, end: usize) {
        let size = end - start;
        if size >= 1 << 30 {
            pr_info!(
                "    {:<8}: 0x{:016x} - 0x{:016x}   ({:6} GB)",
                name,
                start,
                end,
                size >> 30
            );
        } else if size >= 1 << 20 {
            pr_info!(
                "    {:<8}: 0x{:016x} - 0x{:016x}   ({:6} MB)",
                name,
                start,
                end,
                size >> 20
            );
        } else {
            pr_info!(
                "    {:<8}: 0x{:016x} - 0x{:016x}   ({:6} kB)",
                name,
                start,
                end,
                size >> 10
            );
        }
    }
    pr_info!("Virtual kernel memory layout:");
    line("linear", PAGE_OFFSET, linear_map_end());
    for s in kernel_segments() {
        line(s.name, s.start.0, s.end.0);
    }
    line("vmalloc", VMALLOC_START, VMALLOC_END);
    line("fixed", FIXADDR_START, FIXADDR_TOP);
}
