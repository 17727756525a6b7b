// SPDX-License-Identifier: GPL-2.0-only
//! ioremap (Linux: arch/arm64/mm/ioremap.c, lib/ioremap.c): device memory
//! mapped into the vmalloc range, Device-nGnRE and never-execute, in a
//! `VM_IOREMAP` area from `get_vm_area_caller`. The console's PL011 is the
//! first user: from `console_ioremap` on, every byte goes through one.

use super::mmu::with_init_mm;
use crate::arch::memory::*;
use crate::arch::mm::pgtable::{PROT_DEVICE_NGNRE, PageProt, PgtableError};
use crate::mm::page_alloc;
use crate::mm::vmalloc::{__vunmap, Caller, VmFlags, find_vm_area, get_vm_area_caller};
use crate::pr_warn;
use core::panic::Location;
use core::ptr;

/// PUD (1 GiB) block mappings for ioremap (Linux: ioremap_pud_enabled,
/// arm64's arch_ioremap_pud_supported: on unless CONFIG_PTDUMP_DEBUGFS).
pub const fn ioremap_pud_enabled() -> bool {
    true
}

/// PMD (2 MiB) block mappings for ioremap (Linux: ioremap_pmd_enabled).
pub const fn ioremap_pmd_enabled() -> bool {
    true
}

/// Map [addr, end) to the contiguous physical range at `phys` (Linux:
/// ioremap_page_range). Where a whole PUD or PMD of the range is aligned
/// in both address spaces, it becomes one block (Linux's
/// ioremap_try_huge_pud/ioremap_try_huge_pmd), after an empty table left
/// there by an earlier vunmap is freed (pud_free_pmd_page,
/// pmd_free_pte_page); PTEs elsewhere. The page-table code takes blocks
/// at both levels or at neither, so the two switches act together.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ioremap_page_range(addr: usize, end: usize, phys: PhysAddr, prot: PageProt) -> Result<(), PgtableError> {
    let huge = ioremap_pud_enabled() && ioremap_pmd_enabled();
    with_init_mm(|pt, env| {
        if huge {
            ioremap_free_empty_tables(pt, env, addr, end, phys);
        }
        pt.map_range(env, VirtAddr(addr), phys, end - addr, prot, huge)
    })
}

/// Clear the way for the blocks of [addr, end) -> phys: each whole,
/// aligned PUD or PMD of the range whose slot holds an empty table.
fn ioremap_free_empty_tables(
    pt: &mut crate::arch::mm::pgtable::PageTable,
    env: &mut super::mmu::KernelPgtableEnv,
    addr: usize,
    end: usize,
    phys: PhysAddr,
) {
    let mut a = addr.next_multiple_of(PMD_SIZE);
    while a < end && end - a >= PMD_SIZE {
        let pa = phys.0 + (a - addr);
        let size = if (a | pa).is_multiple_of(PUD_SIZE) && end - a >= PUD_SIZE {
            PUD_SIZE
        } else {
            PMD_SIZE
        };
        if (a | pa).is_multiple_of(size) {
            // ioremap_try_huge_pud/pmd: a slot still in use keeps its table
            // (and the range gets pages there).
            let _ = pt.free_empty_table(env, VirtAddr(a), if size == PUD_SIZE { 1 } else { 2 });
        }
        a += size;
    }
}

/// Map device memory into the vmalloc range (Linux: __ioremap_caller).
/// Refuses RAM; keeps the offset inside the page.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __ioremap_caller(phys: PhysAddr, size: usize, prot: PageProt, caller: Caller) -> *mut u8 {
    let offset = phys.page_offset();
    let phys_base = phys.page_align_down();
    let Some(last) = phys.0.checked_add(size.saturating_sub(1)) else {
        pr_warn!("ioremap({:#x}, {:#x}): range wraps", phys.0, size);
        return ptr::null_mut();
    };
    let size = (size + offset).next_multiple_of(PAGE_SIZE);
    if size == 0 || last >= 1 << 48 {
        pr_warn!(
            "ioremap({:#x}, {:#x}): bad size or beyond the 48-bit physical address space",
            phys.0,
            size
        );
        return ptr::null_mut();
    }
    if let Some(pfn) = (phys_to_pfn(phys_base)..=phys_to_pfn(PhysAddr(last))).find(|&p| page_alloc::pfn_valid(p)) {
        pr_warn!(
            "ioremap({:#x}, {:#x}): refusing to map RAM (pfn {:#x} is managed memory); use the linear map",
            phys.0,
            size,
            pfn
        );
        return ptr::null_mut();
    }
    let area = get_vm_area_caller(size, VmFlags::VM_IOREMAP, caller);
    if area.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: get_vm_area_caller returned a non-null vm_struct that is
    // linked in the busy tree and ours alone until __vunmap frees it.
    let addr = unsafe {
        (*area).phys_addr = phys_base;
        (*area).addr
    };
    if let Err(e) = ioremap_page_range(addr, addr + size, phys_base, prot) {
        pr_warn!("ioremap({:#x}, {:#x}): mapping failed: {}", phys.0, size, e);
        __vunmap(addr, false);
        return ptr::null_mut();
    }
    (addr + offset) as *mut u8
}

/// Linux's ioremap: Device-nGnRE, never-execute.
#[track_caller]
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ioremap(phys: PhysAddr, size: usize) -> *mut u8 {
    __ioremap_caller(phys, size, PROT_DEVICE_NGNRE, Location::caller())
}

/// Linux's iounmap: only what ioremap returned (the sub-page offset is
/// allowed); anything else warns and changes nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn iounmap(addr: *mut u8) {
    let a = addr as usize;
    let base = a & PAGE_MASK;
    let vm = if is_vmalloc_addr(a) {
        find_vm_area(base)
    } else {
        ptr::null_mut()
    };
    // SAFETY: non-null (checked first): a live vm_struct found in the busy
    // tree (single CPU: nothing frees it between the lookup and this check).
    let ok = !vm.is_null() && unsafe { (*vm).addr == base && (*vm).flags.contains(VmFlags::VM_IOREMAP) };
    if !ok {
        pr_warn!("iounmap({:#x}): not the address of a live ioremap area", a);
        return;
    }
    __vunmap(base, false);
}
