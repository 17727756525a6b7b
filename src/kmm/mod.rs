//! Kernel memory management with global state (Linux: mm/ and
//! arch/arm64/mm/). Boot order, as in Linux:
//!
//! 1. [`arm64_memblock_init`]: RAM banks from the device tree minus the
//!    kernel image, the FDT, /memreserve/ and /reserved-memory (`no-map`
//!    children marked NOMAP: reserved and kept out of the linear map);
//! 2. [`paging::paging_init`]: swapper_pg_dir (tables from memblock);
//! 3. [`mm_init`]: the buddy allocator over what memblock left free
//!    (`memblock_free_all`), then the heap may grow from it.
//!
//! The portable logic these use lives in the library (`kernel::mm`), where
//! it is unit-tested on the host.

pub mod fault_inject;
pub mod heap;
pub mod ioremap;
pub mod page_alloc;
pub mod paging;
pub mod slab;
pub mod vmalloc;
pub mod vmap_block;

use crate::{pr_info, setup};
use core::sync::atomic::AtomicUsize;
use kernel::dt::MachineInfo;
use kernel::mm::layout::PAGE_SIZE;
use kernel::mm::memblock::Memblock;

static MEMBLOCK: spin::Mutex<Memblock> = spin::Mutex::new(Memblock::new());

/// TLB flushes issued by flush_tlb_kernel_range (the lazy purge's savings
/// are measured against this).
pub static TLB_FLUSHES: AtomicUsize = AtomicUsize::new(0);

pub fn memblock_lock() -> spin::MutexGuard<'static, Memblock> {
    MEMBLOCK.lock()
}

fn memblock_check(what: &str, r: Result<(), kernel::mm::memblock::MemblockError>) {
    if let Err(e) = r {
        crate::boot_fail(format_args!("memblock: {}: {}", what, e));
    }
}

/// Linux's arm64_memblock_init: RAM from the DT, minus what is in use.
pub fn arm64_memblock_init(info: &MachineInfo) {
    let mut mb = memblock_lock();
    for b in info.memory() {
        // Linux (early_init_dt_add_memory_arch) keeps only whole pages: the
        // linear map and the zones work in pages.
        let (base, size) = (b.region.base, b.region.size);
        let trimmed = kernel::mm::memblock::page_trim(base, size, PAGE_SIZE as u64);
        match trimmed {
            Some(r) if r == b.region => {}
            Some(r) => crate::pr_warn!(
                "memblock: memory bank {} is not page-aligned; using {} ({:#x} bytes dropped)",
                b.region,
                r,
                size - r.size
            ),
            None => crate::pr_warn!(
                "memblock: memory bank {} holds no whole {} KiB page; ignored",
                b.region,
                PAGE_SIZE >> 10
            ),
        }
        if let Some(r) = trimmed {
            // Overlapping or touching banks merge here, as in Linux's memblock.
            memblock_check("adding a RAM bank", mb.add(r.base, r.size));
        }
    }
    if mb.memory().is_empty() {
        crate::boot_fail(format_args!(
            "memblock: the device tree's {} memory bank(s) hold no whole page of RAM",
            info.memory().len()
        ));
    }
    let (kpa, ksize) = paging::kernel_image_phys();
    memblock_check("reserving the kernel image", mb.reserve(kpa.0 as u64, ksize as u64));
    let bi = setup::boot_info();
    memblock_check(
        "reserving the FDT",
        mb.reserve(bi.fdt_pa as u64, info.dtb_size() as u64),
    );
    for r in info.reserved() {
        match r.kind {
            // Linux's early_init_dt_reserve_memory_arch: no-map memory is
            // MEMBLOCK_NOMAP, so it gets no linear mapping at all.
            kernel::dt::ReserveKind::ReservedMemory { no_map: true } => memblock_check(
                "marking a no-map /reserved-memory region NOMAP",
                mb.mark_nomap(r.region.base, r.region.size),
            ),
            _ => memblock_check("reserving a DT reservation", mb.reserve(r.region.base, r.region.size)),
        }
    }
}

/// Bring up the page allocator and print Linux's Memory: line.
pub fn mm_init(info: &MachineInfo) {
    // Zones span memblock's merged view (overlapping DT banks would give
    // overlapping zones), split where the NUMA node changes, holes spanned
    // when there are more ranges than zones.
    let ranges =
        kernel::mm::memblock::zone_ranges(memblock_lock().memory(), info.memory(), kernel::mm::buddy::MAX_ZONES);
    page_alloc::free_area_init(&ranges);
    mem_print_memory_info();
    paging::print_vm_layout();
    vmalloc::vmalloc_init();
}

/// Move the console from its fixmap slot to an ioremap() of its UART; from
/// here on every byte goes through the vmalloc range. The fixmap slot is
/// then unmapped, so a stale user would fault.
///
/// The console stays on the UART it booted on (the earlycon PL011): that
/// one is known to reach the user, as the boot log went through it. A DT
/// naming a PL011 elsewhere is reported, not followed -- a UART at another
/// address, even a working one, may be wired to nothing anyone reads. The
/// new mapping is checked to answer like a PL011 (PrimeCell ID registers)
/// before the console switches to it.
pub fn console_ioremap(info: &MachineInfo) {
    use crate::drivers::pl011::{PrimeCellId, PL011_REG_SIZE};
    use kernel::mm::layout::{PhysAddr, FIX_EARLYCON_MEM_IDX};
    let phys = crate::EARLYCON_PL011_PHYS;
    if let Some(u) = info.pl011() {
        if u.base as usize != phys {
            crate::pr_warn!(
                "console: the DT's PL011 at {:#x} is not the boot console's UART at {:#x}; the console stays on {:#x}",
                u.base,
                phys,
                phys
            );
        }
    }
    let base = ioremap::ioremap(PhysAddr(phys), PL011_REG_SIZE);
    if base.is_null() {
        crate::pr_err!(
            "console: ioremap of the PL011 at {:#x} failed; staying on the fixmap",
            phys
        );
        return;
    }
    // SAFETY: a 4 KiB device mapping made just now; a fault is caught.
    let id = crate::arch::traps::catch_fault_quiet(|| unsafe { PrimeCellId::read(base as usize) });
    let id = match id {
        Ok(id) if id.is_pl011() => id,
        other => {
            crate::pr_err!(
                "console: the ioremap of {:#x} does not answer as a PL011 ({:x?}); staying on the fixmap",
                phys,
                other.map_err(|f| f.far)
            );
            ioremap::iounmap(base);
            return;
        }
    };
    // SAFETY: ioremap just mapped the same UART as device memory.
    unsafe { crate::printk::console_set_base(base as usize) };
    paging::clear_fixmap(FIX_EARLYCON_MEM_IDX);
    pr_info!(
        "console [ttyAMA0]: PL011 rev {} at MMIO {:#x} now at {:#x} (ioremap); earlycon fixmap released",
        id.revision(),
        phys,
        base as usize
    );
}

/// `Memory: 1011904K/1048576K available (1024K kernel code, ...)`.
pub fn mem_print_memory_info() {
    let (free, _managed) = page_alloc::nr_free_pages();
    let physpages = page_alloc::physpages();
    let (code, rwdata, rodata, bss) = paging::image_sizes();
    let k = |pages: usize| pages * PAGE_SIZE / 1024;
    pr_info!(
        "Memory: {}K/{}K available ({}K kernel code, {}K rwdata, {}K rodata, {}K bss, {}K reserved, {} page-table pages)",
        k(free),
        k(physpages),
        code / 1024,
        rwdata / 1024,
        rodata / 1024,
        bss / 1024,
        k(physpages - free),
        paging::pgtable_pages()
    );
    let h = heap::heap_stats();
    pr_info!(
        "kmalloc heap: {}K managed ({}K boot arena + {} page(s) grown), {} bytes in use",
        h.total / 1024,
        heap::HEAP_INITIAL_SIZE / 1024,
        h.grown_pages,
        h.used
    );
}
