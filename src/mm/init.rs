// SPDX-License-Identifier: GPL-2.0-only
//! The global memblock, mm_init and the Memory: line (Linux: mm/memblock.c's
//! globals, init/main.c's mm_init, mm/page_alloc.c's mem_init_print_info).

use crate::arch::memory::PAGE_SIZE;
use crate::arch::mm::mmu as paging;
use crate::arch::mm::numa;
use crate::drivers::of::fdt::MachineInfo;
use crate::kernel::locking::spinlock::{SpinLock, SpinLockGuard};
use crate::mm::memblock::{MemBank, Memblock};
use crate::mm::numa::MAX_NUMNODES;
use crate::mm::{heap, page_alloc, vmalloc};
use crate::{pr_info, pr_warn};
use core::sync::atomic::AtomicUsize;

static MEMBLOCK: SpinLock<Memblock> = SpinLock::new(Memblock::new());

/// TLB flushes issued by flush_tlb_kernel_range (the lazy purge's savings
/// are measured against this).
pub static TLB_FLUSHES: AtomicUsize = AtomicUsize::new(0);

pub fn memblock_lock() -> SpinLockGuard<'static, Memblock> {
    MEMBLOCK.lock()
}

/// Bring up the page allocator and print Linux's Memory: line.
pub fn mm_init(info: &MachineInfo) {
    // Zones span memblock's merged view (overlapping DT banks would give
    // overlapping zones), split where the NUMA node changes, holes spanned
    // when there are more ranges than zones.
    let banks = arm64_numa_init(info);
    let ranges = crate::mm::memblock::zone_ranges(memblock_lock().memory(), &banks, crate::mm::buddy::MAX_ZONES);
    page_alloc::free_area_init(&ranges);
    mem_print_memory_info();
    paging::print_vm_layout();
    vmalloc::vmalloc_init();
}

/// The DT's nodes checked (Linux: arm64_numa_init -> of_numa_init): a
/// `numa-node-id` at or above MAX_NUMNODES on a memory or CPU node turns
/// NUMA off, every bank and CPU then on node 0. Maps the boot CPU to its
/// node (the secondaries are mapped as smp_init numbers them).
fn arm64_numa_init(info: &MachineInfo) -> alloc::vec::Vec<MemBank> {
    let mut banks = info.memory().to_vec();
    let bad = banks
        .iter()
        .filter_map(|b| b.numa_node)
        .chain(info.cpus().iter().filter_map(|c| c.numa_node))
        .find(|&n| n as usize >= MAX_NUMNODES);
    if let Some(nid) = bad {
        pr_warn!(
            "NUMA: numa-node-id {} >= MAX_NUMNODES ({}); NUMA off, all memory and CPUs on node 0",
            nid,
            MAX_NUMNODES
        );
        numa::set_numa_off();
        banks.iter_mut().for_each(|b| b.numa_node = None);
    }
    let boot_mpidr = crate::arch::kernel::smp::read_cpuid_mpidr();
    let boot_node = info
        .cpus()
        .iter()
        .find(|c| c.mpidr == boot_mpidr)
        .and_then(|c| c.numa_node);
    numa::early_map_cpu_to_node(0, boot_node);
    banks
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
