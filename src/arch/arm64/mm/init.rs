// SPDX-License-Identifier: GPL-2.0-only
//! arm64_memblock_init (Linux: arch/arm64/mm/init.c): the physical memory
//! map from the device tree, handed to memblock before any page table is
//! built.

use crate::arch::memory::PAGE_SIZE;
use crate::arch::mm::mmu as paging;
use crate::drivers::of::fdt::MachineInfo;
use crate::mm::memblock_lock;

fn memblock_check(what: &str, r: Result<(), crate::mm::memblock::MemblockError>) {
    if let Err(e) = r {
        crate::kernel::panic::boot_fail(format_args!("memblock: {}: {}", what, e));
    }
}

/// Linux's arm64_memblock_init: RAM from the DT, minus what is in use.
pub fn arm64_memblock_init(info: &MachineInfo, fdt_pa: usize) {
    let mut mb = memblock_lock();
    for b in info.memory() {
        // Linux (early_init_dt_add_memory_arch) keeps only whole pages: the
        // linear map and the zones work in pages.
        let (base, size) = (b.region.base, b.region.size);
        let trimmed = crate::mm::memblock::page_trim(base, size, PAGE_SIZE as u64);
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
        crate::kernel::panic::boot_fail(format_args!(
            "memblock: the device tree's {} memory bank(s) hold no whole page of RAM",
            info.memory().len()
        ));
    }
    let (kpa, ksize) = paging::kernel_image_phys();
    memblock_check("reserving the kernel image", mb.reserve(kpa.0 as u64, ksize as u64));
    memblock_check("reserving the FDT", mb.reserve(fdt_pa as u64, info.dtb_size() as u64));
    for r in info.reserved() {
        match r.kind {
            // Linux's early_init_dt_reserve_memory_arch: no-map memory is
            // MEMBLOCK_NOMAP, so it gets no linear mapping at all.
            crate::drivers::of::fdt::ReserveKind::ReservedMemory { no_map: true } => memblock_check(
                "marking a no-map /reserved-memory region NOMAP",
                mb.mark_nomap(r.region.base, r.region.size),
            ),
            _ => memblock_check("reserving a DT reservation", mb.reserve(r.region.base, r.region.size)),
        }
    }
}
