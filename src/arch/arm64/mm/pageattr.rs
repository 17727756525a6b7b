// SPDX-License-Identifier: GPL-2.0-only
//! set_memory_ro/rw/x/nx (Linux 5.10: arch/arm64/mm/pageattr.c): change
//! the permissions of vmalloc'd memory, a page at a time.
//!
//! Only ranges inside one `VM_ALLOC` area are accepted, as in 5.10: those
//! are mapped with pages only, so no live block needs splitting (which
//! could cause TLB conflicts); anything else is `-EINVAL`.
//!
//! The linear-map alias of the pages keeps its permissions: 5.10 changes it
//! too only with `rodata_full` (the linear map then uses pages), while this
//! kernel maps the linear map with blocks, as 5.10 without `rodata_full`
//! (set_direct_map_*_noflush are no-ops there). For the same reason
//! `VM_FLUSH_RESET_PERMS` (mm/vmalloc.rs, `vm_remove_mappings`) has only the
//! vmalloc mapping to flush, no direct map to reset.

use super::mmu::with_init_mm;
use crate::arch::memory::*;
use crate::arch::mm::pgtable::{PAGE_KERNEL, PAGE_KERNEL_RO, PAGE_KERNEL_ROX};
use crate::mm::vmalloc::{EINVAL, VmFlags, find_vm_area};
use crate::mm::vmap_block::vm_unmap_aliases;
use crate::pr_warn;

/// AP[2]: read-only at EL1 (Linux: PTE_RDONLY).
pub const PTE_RDONLY: u64 = PAGE_KERNEL.leaf_bits(3) ^ PAGE_KERNEL_RO.leaf_bits(3);
/// Privileged execute-never (Linux: PTE_PXN).
pub const PTE_PXN: u64 = PAGE_KERNEL_RO.leaf_bits(3) ^ PAGE_KERNEL_ROX.leaf_bits(3);
const _: () = assert!(PTE_RDONLY == 1 << 7 && PTE_PXN == 1 << 53);

/// Set `set_mask` and clear `clear_mask` in the PTEs of `numpages` pages at
/// `addr` (Linux: change_memory_common). 0, or -EINVAL when the range is
/// not inside one vmalloc'd (`VM_ALLOC`) area's pages.
///
/// 5.10 also sets/clears PTE_WRITE (the DBM bit) with PTE_RDONLY; this
/// kernel uses no hardware dirty-bit management, so AP[2] alone says
/// read-only and PTE_WRITE is left out.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn change_memory_common(addr: usize, numpages: i32, set_mask: u64, clear_mask: u64) -> i32 {
    let Ok(numpages) = usize::try_from(numpages) else {
        return -EINVAL;
    };
    let mut start = addr;
    if !addr.is_multiple_of(PAGE_SIZE) {
        // Linux WARN_ON_ONCE()s and rounds down.
        pr_warn!("change_memory_common: address {:#x} is not page aligned", addr);
        start &= PAGE_MASK;
    }
    let Some(size) = numpages.checked_mul(PAGE_SIZE) else {
        return -EINVAL;
    };
    let Some(end) = start.checked_add(size) else {
        return -EINVAL;
    };
    let area = if is_vmalloc_addr(start) {
        find_vm_area(start)
    } else {
        core::ptr::null_mut()
    };
    // SAFETY: non-null checked first: a live vm_struct; the caller owns the
    // area (it is changing its permissions), so it stays live.
    // Bound by the pages, not the guard page (5.10 uses area->size, which
    // lets the range run onto the unmapped guard page).
    let ok = !area.is_null()
        && unsafe { end <= (*area).addr + (*area).get_vm_area_size() && (*area).flags.contains(VmFlags::VM_ALLOC) };
    if !ok {
        return -EINVAL;
    }
    if numpages == 0 {
        return 0;
    }
    // Lazily freed aliases of these pages (vm_map_ram blocks, areas not yet
    // purged) may still be in the TLB with other permissions: drop them.
    vm_unmap_aliases();
    match with_init_mm(|pt, env| pt.change_page_range(env, VirtAddr(start), size, set_mask, clear_mask)) {
        Ok(()) => 0,
        Err(e) => {
            pr_warn!("change_memory_common({:#x}, {} pages): {}", start, numpages, e);
            -EINVAL
        }
    }
}

/// Linux's set_memory_ro: `numpages` pages at `addr` read-only.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn set_memory_ro(addr: usize, numpages: i32) -> i32 {
    change_memory_common(addr, numpages, PTE_RDONLY, 0)
}

/// Linux's set_memory_rw: writable again.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn set_memory_rw(addr: usize, numpages: i32) -> i32 {
    change_memory_common(addr, numpages, 0, PTE_RDONLY)
}

/// Linux's set_memory_x: executable at EL1 (clears PXN).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn set_memory_x(addr: usize, numpages: i32) -> i32 {
    change_memory_common(addr, numpages, 0, PTE_PXN)
}

/// Linux's set_memory_nx: execute-never.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn set_memory_nx(addr: usize, numpages: i32) -> i32 {
    change_memory_common(addr, numpages, PTE_PXN, 0)
}

/// Keep the entry points in the ELF for GDB (--gc-sections).
#[allow(dead_code)]
struct KeepForGdb([*const (); 5]);
// SAFETY: the addresses are never used for anything but being there.
unsafe impl Sync for KeepForGdb {}
#[used]
static KEEP_FOR_GDB: KeepForGdb = KeepForGdb([
    change_memory_common as *const (),
    set_memory_ro as *const (),
    set_memory_rw as *const (),
    set_memory_x as *const (),
    set_memory_nx as *const (),
]);
