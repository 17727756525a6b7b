// SPDX-License-Identifier: GPL-2.0-only
//! The floor under vmalloc, and where a vmalloc+vfree spends its time.
//!
//! Floor: for 1, 16, 256 and 1024 pages, the bare minimum a virtually
//! contiguous allocation needs: take the pages from the buddy allocator
//! (zeroed when init_on_alloc is on, as vmalloc zeroes them), write their
//! PTEs (`map_pages` on init_mm), then clear the PTEs (with the TLB flush
//! that reusing the same range needs) and free the pages. No vm_struct, no
//! vmap_area, no page array: one fixed range reserved beforehand. Next to
//! it, `vmalloc` + `vfree` of the same size; the ratio is what the area
//! bookkeeping costs on top.
//!
//! Stages: the same vmalloc+vfree cut into the pipeline's steps, each timed
//! on its own by calling the public function that does it:
//! `__get_vm_area_node` (vm_struct, `alloc_vmap_area`), the page array,
//! `alloc_pages` one page at a time, zeroing, `map_kernel_range`,
//! `remove_vm_area` (find, unlink, unmap, lazy free; the purge amortised),
//! `__free_pages`, freeing the page array and the vm_struct. Their sum is
//! checked against a plain vmalloc+vfree of the same size.

use super::{Ns10, Ratio, get_cycles, ns10_per_op};
use crate::arch::memory::{PAGE_SIZE, PhysAddr, VMALLOC_END, VMALLOC_START, VirtAddr};
use crate::arch::mm::mmu::{self as paging, with_init_mm};
use crate::arch::mm::pgtable::PAGE_KERNEL;
use crate::mm::gfp::{__GFP_ZERO, GFP_KERNEL};
use crate::mm::numa::NUMA_NO_NODE;
use crate::mm::page_alloc;
use crate::mm::vmalloc::{
    self, __get_vm_area_node, VmFlags, alloc_pages_array, free_pages_array, free_vm_area, free_vm_struct, get_vm_area,
    map_kernel_range, remove_vm_area, vfree, vmalloc,
};
use crate::{pr_err, pr_info};
use alloc::vec::Vec;
use core::panic::Location;

pub const DEFAULT_LOOPS: usize = 1_000;

/// Sizes of the floor comparison, in pages.
pub const FLOOR_PAGES: [usize; 4] = [1, 16, 256, 1024];
/// Sizes of the stage breakdown, in pages.
pub const STAGE_PAGES: [usize; 5] = [1, 16, 100, 256, 1024];

/// Zero a freshly allocated page the way vmalloc does.
#[inline(always)]
fn zero_page(pa: PhysAddr) {
    // SAFETY: every caller passes a page alloc_pages just gave it: ours
    // alone, and its linear-map address is page-aligned, writable Normal
    // memory, as clear_page requires.
    unsafe { paging::clear_page(paging::__va(pa).0 as *mut u8) };
}

#[derive(Clone, Copy, Debug)]
pub struct FloorPoint {
    pub pages: usize,
    pub floor_ns10: u64,
    pub vmalloc_ns10: u64,
}

/// One floor data point; None if memory ran out.
fn floor_point(n: usize, loops: usize) -> Option<FloorPoint> {
    let zero = vmalloc::init_on_alloc();
    let area = get_vm_area(n * PAGE_SIZE, VmFlags::VM_MAP);
    if area.is_null() {
        pr_err!("bench: floor: get_vm_area({} pages) failed", n);
        return None;
    }
    // SAFETY: area is a non-null vm_struct from get_vm_area, live and ours
    // until free_vm_area.
    let addr = unsafe { (*area).addr };
    let mut pages: Vec<PhysAddr> = Vec::new();
    if pages.try_reserve_exact(n).is_err() {
        // SAFETY: a live area from get_vm_area, freed once and not used
        // afterwards (free_vm_area's contract).
        unsafe { free_vm_area(area) };
        return None;
    }
    pages.resize(n, PhysAddr(0));
    let mut ok = true;
    let t0 = get_cycles();
    'outer: for _ in 0..loops {
        for (i, slot) in pages.iter_mut().enumerate() {
            let Some(pa) = page_alloc::alloc_pages(0) else {
                pr_err!("bench: floor: alloc_pages failed");
                pages[..i].iter().for_each(|&pa| page_alloc::__free_pages(pa, 0));
                ok = false;
                break 'outer;
            };
            if zero {
                zero_page(pa);
            }
            *slot = pa;
        }
        let err = map_kernel_range(addr, &pages, PAGE_KERNEL);
        if err != 0 {
            pr_err!("bench: floor: map_kernel_range failed: error {}", err);
            pages.iter().for_each(|&pa| page_alloc::__free_pages(pa, 0));
            ok = false;
            break;
        }
        if let Err(e) = with_init_mm(|pt, env| pt.unmap_range(env, VirtAddr(addr), n * PAGE_SIZE)) {
            pr_err!("bench: floor: unmap failed: {}", e);
        }
        for &pa in &pages {
            page_alloc::__free_pages(pa, 0);
        }
    }
    let floor_ticks = get_cycles() - t0;
    // SAFETY: as above: the live area from get_vm_area, freed once, not used
    // afterwards (every mapping made in the loop was unmapped in it).
    unsafe { free_vm_area(area) };
    if !ok {
        return None;
    }
    let t0 = get_cycles();
    for _ in 0..loops {
        let p = vmalloc(n * PAGE_SIZE);
        if p.is_null() {
            pr_err!("bench: floor: vmalloc({} pages) failed", n);
            return None;
        }
        vfree(p);
    }
    let vm_ticks = get_cycles() - t0;
    Some(FloorPoint {
        pages: n,
        floor_ns10: ns10_per_op(floor_ticks, loops as u64),
        vmalloc_ns10: ns10_per_op(vm_ticks, loops as u64),
    })
}

/// Self-check of the zeroing both sides use: a page full of 0xff must come
/// back all zero. Returns false (and says so) otherwise.
fn check_clear_page() -> bool {
    let Some(pa) = page_alloc::alloc_pages(0) else {
        return true;
    };
    let va = paging::__va(pa).0 as *mut u8;
    // SAFETY: va is the linear-map address of a page alloc_pages just gave
    // us: page-aligned, writable Normal memory, PAGE_SIZE bytes, ours alone
    // (clear_page's contract); every access stays inside it.
    let bad = unsafe {
        core::ptr::write_bytes(va, 0xff, PAGE_SIZE);
        paging::clear_page(va);
        (0..PAGE_SIZE).find(|&i| va.add(i).read_volatile() != 0)
    };
    page_alloc::__free_pages(pa, 0);
    if let Some(i) = bad {
        pr_err!(
            "bench: floor: clear_page check failed: byte {:#x} of the page is not zero",
            i
        );
    }
    bad.is_none()
}

/// Measure and print the floor table.
pub fn run_floor(loops: usize) -> Vec<FloorPoint> {
    vmalloc::purge_vmap_area_lazy();
    check_clear_page();
    pr_info!(
        "bench: floor: buddy pages{} + map_pages + unmap + free vs vmalloc+vfree, init_on_alloc={}, {} loops per size",
        if vmalloc::init_on_alloc() { " (zeroed)" } else { "" },
        vmalloc::init_on_alloc() as u8,
        loops
    );
    pr_info!(
        "bench: floor: {:>6} {:>12} {:>12} {:>6} {:>14} {:>14}",
        "pages",
        "floor_ns",
        "vmalloc_ns",
        "ratio",
        "floor_ns/page",
        "vmalloc_ns/pg"
    );
    let mut out = Vec::new();
    for &n in &FLOOR_PAGES {
        if super::interrupted() {
            break;
        }
        let Some(p) = floor_point(n, loops) else { break };
        pr_info!(
            "bench: floor: {:>6} {:>12} {:>12} {:>6} {:>14} {:>14}",
            n,
            Ns10(p.floor_ns10),
            Ns10(p.vmalloc_ns10),
            Ratio(p.vmalloc_ns10, p.floor_ns10),
            Ns10(p.floor_ns10 / n as u64),
            Ns10(p.vmalloc_ns10 / n as u64)
        );
        out.push(p);
    }
    out
}

/// The stages of one vmalloc+vfree, in pipeline order.
const STAGES: [&str; 9] = [
    "get_vm_area",    // __get_vm_area_node: kzalloc vm_struct + alloc_vmap_area + setup_vmalloc_vm
    "page_array",     // kmalloc (or a nested vmalloc) of the page array
    "alloc_pages",    // buddy, one page at a time
    "zero",           // init_on_alloc zeroing
    "map",            // map_kernel_range
    "remove_vm_area", // find + unlink + unmap + free_vmap_area_noflush (+ purge, amortised)
    "free_pages",     // __free_pages, one at a time
    "free_array",     // kfree / vfree of the page array
    "free_vm",        // kfree of the vm_struct (free_vm_struct)
];

/// One row of the stage breakdown: tenths of ns per vmalloc+vfree for each
/// stage, their sum, and the measured total.
#[derive(Clone, Copy, Debug)]
pub struct StageRow {
    pub pages: usize,
    pub stage_ns10: [u64; STAGES.len()],
    pub sum_ns10: u64,
    pub measured_ns10: u64,
}

fn stage_row(n: usize, loops: usize) -> Option<StageRow> {
    let zero = vmalloc::init_on_alloc();
    let caller = Location::caller();
    let size = n * PAGE_SIZE;
    let mut ticks = [0u64; STAGES.len()];
    for _ in 0..loops {
        let mut t = [0u64; STAGES.len() + 1];
        t[0] = get_cycles();
        let area = __get_vm_area_node(
            size,
            1,
            VmFlags::VM_ALLOC | VmFlags::VM_UNINITIALIZED,
            VMALLOC_START,
            VMALLOC_END,
            caller,
        );
        t[1] = get_cycles();
        if area.is_null() {
            pr_err!("bench: stages: __get_vm_area_node({} pages) failed", n);
            return None;
        }
        // SAFETY: area is a non-null vm_struct from __get_vm_area_node,
        // live and ours until it is freed below.
        let addr = unsafe { (*area).addr };
        let pages = alloc_pages_array(n, GFP_KERNEL | __GFP_ZERO, NUMA_NO_NODE, caller);
        t[2] = get_cycles();
        if pages.is_null() {
            // SAFETY: the live area from __get_vm_area_node (as get_vm_area),
            // freed once and not used afterwards.
            unsafe { free_vm_area(area) };
            return None;
        }
        for i in 0..n {
            let Some(pa) = page_alloc::alloc_pages(0) else {
                pr_err!("bench: stages: alloc_pages failed");
                return None;
            };
            // SAFETY: pages is a non-null array of n PhysAddrs from
            // alloc_pages_array, i < n; write() needs no initialised slot.
            unsafe { pages.add(i).write(pa) };
        }
        t[3] = get_cycles();
        if zero {
            for i in 0..n {
                // SAFETY: i < n, and the loop above wrote every slot.
                zero_page(unsafe { pages.add(i).read() });
            }
        }
        t[4] = get_cycles();
        // SAFETY: pages holds n PhysAddrs, all written above, and the array
        // is neither freed nor written while the slice lives.
        let slice = unsafe { core::slice::from_raw_parts(pages, n) };
        let err = map_kernel_range(addr, slice, PAGE_KERNEL);
        if err != 0 {
            pr_err!("bench: stages: map_kernel_range failed: error {}", err);
            return None;
        }
        t[5] = get_cycles();
        let vm = remove_vm_area(addr);
        t[6] = get_cycles();
        for &pa in slice {
            page_alloc::__free_pages(pa, 0);
        }
        t[7] = get_cycles();
        // SAFETY: `pages` came from alloc_pages_array(n) above and its
        // pages were just freed; nothing uses it again.
        unsafe { free_pages_array(pages, n) };
        t[8] = get_cycles();
        // SAFETY: remove_vm_area handed the vm_struct back: ours, unused after.
        unsafe { free_vm_struct(vm) };
        t[9] = get_cycles();
        for s in 0..STAGES.len() {
            ticks[s] += t[s + 1] - t[s];
        }
    }
    let t0 = get_cycles();
    for _ in 0..loops {
        let p = vmalloc(size);
        if p.is_null() {
            return None;
        }
        vfree(p);
    }
    let measured = get_cycles() - t0;
    let stage_ns10 = ticks.map(|t| ns10_per_op(t, loops as u64));
    Some(StageRow {
        pages: n,
        stage_ns10,
        sum_ns10: ns10_per_op(ticks.iter().sum(), loops as u64),
        measured_ns10: ns10_per_op(measured, loops as u64),
    })
}

/// Measure and print the stage breakdown.
pub fn run_stages(loops: usize) -> Vec<StageRow> {
    vmalloc::purge_vmap_area_lazy();
    pr_info!(
        "bench: stages: ns per vmalloc+vfree by stage, init_on_alloc={}, {} loops per size",
        vmalloc::init_on_alloc() as u8,
        loops
    );
    let mut out = Vec::new();
    for &n in &STAGE_PAGES {
        if super::interrupted() {
            break;
        }
        let Some(r) = stage_row(n, loops) else { break };
        pr_info!(
            "bench: stages: pages={} measured_ns={} sum_of_stages_ns={} ({}x of measured)",
            n,
            Ns10(r.measured_ns10),
            Ns10(r.sum_ns10),
            Ratio(r.sum_ns10, r.measured_ns10)
        );
        for (s, name) in STAGES.iter().enumerate() {
            let pct10 = (r.stage_ns10[s] * 1000).checked_div(r.sum_ns10).unwrap_or(0);
            pr_info!(
                "bench: stages: pages={} {:<15} {:>12} ns {:>3}.{}%",
                n,
                name,
                Ns10(r.stage_ns10[s]),
                pct10 / 10,
                pct10 % 10
            );
        }
        out.push(r);
    }
    out
}
