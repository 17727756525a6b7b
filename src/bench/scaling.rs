//! How the address-space path scales with the number of busy areas: the
//! cost of one `alloc_vmap_area` + `free_vmap_area` with 10, 1 000, 10 000
//! and 100 000 busy areas.
//!
//! Method. For each N, 2N one-page areas (no guard page) are taken with
//! `alloc_vmap_area` and every second one is given back with
//! `free_vmap_area`, so both trees hold about N nodes: N busy areas and N
//! one-page holes between them (plus the kernel image, the console's
//! ioremap and the free space above). Then, `loops` times each:
//!
//! * "1 page": `alloc_vmap_area(PAGE_SIZE)` takes the lowest hole (a full
//!   fit: the free node is erased), `free_vmap_area` puts it back (a new
//!   free node: nothing to merge with, its neighbours are busy);
//! * "2 pages": no hole fits, so `find_vmap_lowest_match` must steer past
//!   all N holes to the free space above them (a left-edge fit), and the
//!   free merges back into it.
//!
//! Only the address space is measured: nothing is mapped, so areas go back
//! through `free_vmap_area` (Linux 5.10's direct path, used for areas that
//! never had PTEs) instead of the lazy purge, whose batching would hide the
//! per-operation cost in a periodic spike. Each figure is total ticks /
//! loops, so it includes the vmap_area cache and the three locks.

use super::{get_cycles, ns10_per_op, Ns10, Ratio};
use crate::kmm::vmalloc::{self, alloc_vmap_area, free_vmap_area, free_vmap_area_root, vmap_area_root};
use crate::{pr_err, pr_info};
use alloc::vec::Vec;
use core::ptr::NonNull;
use kernel::mm::layout::{PAGE_SIZE, VMALLOC_END, VMALLOC_START};
use kernel::mm::vmap_tree::VmapArea;

pub const DEFAULT_LOOPS: usize = 10_000;

/// The numbers of busy areas measured.
pub const POINTS: [usize; 4] = [10, 1_000, 10_000, 100_000];

#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub busy: usize,
    pub free: usize,
    pub busy_height: usize,
    pub free_height: usize,
    /// Tenths of ns per alloc+free.
    pub hole_ns10: u64,
    pub past_ns10: u64,
}

fn take(size: usize) -> Option<NonNull<VmapArea>> {
    alloc_vmap_area(size, PAGE_SIZE, VMALLOC_START, VMALLOC_END).ok()
}

/// One data point; None if the setup ran out of memory.
fn measure(n: usize, loops: usize) -> Option<Point> {
    let mut areas: Vec<NonNull<VmapArea>> = Vec::new();
    if areas.try_reserve_exact(2 * n).is_err() {
        pr_err!("bench: scaling: no memory for {} area pointers", 2 * n);
        return None;
    }
    for _ in 0..2 * n {
        match take(PAGE_SIZE) {
            Some(va) => areas.push(va),
            None => {
                pr_err!("bench: scaling: alloc_vmap_area failed after {} areas", areas.len());
                areas.into_iter().for_each(free_vmap_area);
                return None;
            }
        }
    }
    for va in areas.iter().skip(1).step_by(2) {
        free_vmap_area(*va);
    }
    let (busy, busy_height) = {
        let b = vmap_area_root.lock();
        (b.len(), b.height())
    };
    let (free, free_height) = {
        let f = free_vmap_area_root.lock();
        (f.len(), f.height())
    };

    let run = |size: usize| -> Option<u64> {
        let t0 = get_cycles();
        for _ in 0..loops {
            let va = take(size)?;
            free_vmap_area(va);
        }
        Some(ns10_per_op(get_cycles() - t0, loops as u64))
    };
    let hole = run(PAGE_SIZE);
    let past = run(2 * PAGE_SIZE);

    for va in areas.iter().step_by(2) {
        free_vmap_area(*va);
    }
    match (hole, past) {
        (Some(hole_ns10), Some(past_ns10)) => {
            Some(Point { busy, free, busy_height, free_height, hole_ns10, past_ns10 })
        }
        _ => {
            pr_err!("bench: scaling: alloc_vmap_area failed during the measurement (N = {})", n);
            None
        }
    }
}

/// Measure every point and print the table. Returns the points measured.
pub fn run(loops: usize) -> Vec<Point> {
    vmalloc::purge_vmap_area_lazy();
    pr_info!("bench: scaling: alloc_vmap_area + free_vmap_area (address space only, no lazy purge), {} loops per point", loops);
    pr_info!("bench: scaling: {:>8} {:>8} {:>6} {:>6} {:>14} {:>6} {:>16} {:>6}",
        "busy", "free", "busy_h", "free_h", "1page_ns", "ratio", "2pages_ns", "ratio");
    let mut points = Vec::new();
    for &n in &POINTS {
        let Some(p) = measure(n, loops) else { break };
        let base = points.first().copied().unwrap_or(p);
        pr_info!("bench: scaling: {:>8} {:>8} {:>6} {:>6} {:>14} {:>6} {:>16} {:>6}",
            p.busy, p.free, p.busy_height, p.free_height,
            Ns10(p.hole_ns10), Ratio(p.hole_ns10, base.hole_ns10),
            Ns10(p.past_ns10), Ratio(p.past_ns10, base.past_ns10));
        points.push(p);
    }
    match vmalloc::check_vmalloc_invariants() {
        Ok(()) => pr_info!("bench: scaling: vmalloc invariants hold after the run"),
        Err(e) => pr_err!("bench: scaling: vmalloc invariants broken: {}", e),
    }
    points
}
