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
        memblock_check("adding a RAM bank", mb.add(b.region.base, b.region.size));
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
    page_alloc::free_area_init(info.memory());
    mem_print_memory_info();
    paging::print_vm_layout();
    vmalloc::vmalloc_init();
}

/// Move the console from its fixmap slot to an ioremap() of the PL011 the
/// device tree names; from here on every byte goes through the vmalloc
/// range. The fixmap slot is then unmapped, so a stale user would fault.
pub fn console_ioremap(info: &MachineInfo) {
    use kernel::mm::layout::{PhysAddr, FIX_EARLYCON_MEM_IDX};
    let (phys, size) = match info.pl011() {
        Some(u) => (u.base as usize, u.size as usize),
        None => (crate::EARLYCON_PL011_PHYS, crate::drivers::pl011::PL011_REG_SIZE),
    };
    let base = ioremap::ioremap(PhysAddr(phys), size);
    if base.is_null() {
        crate::pr_err!(
            "console: ioremap of the PL011 at {:#x} failed; staying on the fixmap",
            phys
        );
        return;
    }
    // SAFETY: ioremap just mapped the same UART as device memory.
    unsafe { crate::printk::console_set_base(base as usize) };
    paging::clear_fixmap(FIX_EARLYCON_MEM_IDX);
    pr_info!(
        "console [ttyAMA0]: PL011 at MMIO {:#x} now at {:#x} (ioremap); earlycon fixmap released",
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
