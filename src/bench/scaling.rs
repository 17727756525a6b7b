// SPDX-License-Identifier: GPL-2.0-only
//! How the address-space path scales with the number of busy areas: the
//! cost of one `alloc_vmap_area` + `free_vmap_area` with 10, 1 000, 10 000
//! and 100 000 busy areas, in two layouts.
//!
//! * Packed: N one-page areas (no guard page) taken back to back, as a long
//!   run of vmallocs leaves them. The free tree stays small (the space
//!   above them); the busy tree holds N nodes. "1 page": take one page
//!   above them (a left-edge fit of the big free area), insert it into the
//!   busy tree, then unlink it and merge it back.
//! * Holes: 2N one-page areas, every second one given back, so the busy
//!   tree holds N nodes and the free tree N one-page holes between them.
//!   "1 page": the lowest hole (a full fit: the free node is erased and
//!   later re-inserted, its neighbours being busy). "2 pages": no hole
//!   fits, so `find_vmap_lowest_match` must steer past all N holes to the
//!   free space above them, and the size change propagates to the root.
//!
//! Only the address space is measured: nothing is mapped, so areas go back
//! through `free_vmap_area` (Linux 5.10's direct path, used for areas that
//! never had PTEs) instead of the lazy purge, whose batching would hide the
//! per-operation cost in a periodic spike. Each figure is total ticks /
//! loops, so it includes the vmap_area cache and the three locks. The tree
//! heights are printed: the costs follow them (log n), the free tree of the
//! "holes" layout being the deepest (nodes inserted in address order give a
//! red-black tree close to its 2 log2(n) bound on the right).

use super::{Ns10, Ratio, get_cycles, ns10_per_op};
use crate::arch::memory::{PAGE_SIZE, VMALLOC_END, VMALLOC_START};
use crate::mm::vmalloc::{self, IS_ERR, alloc_vmap_area, free_vmap_area, free_vmap_area_root, vmap_area_root};
use crate::mm::vmap_tree::VmapArea;
use crate::{pr_err, pr_info};
use alloc::vec::Vec;
use core::ptr::NonNull;

pub const DEFAULT_LOOPS: usize = 10_000;

/// The numbers of busy areas measured.
pub const POINTS: [usize; 4] = [10, 1_000, 10_000, 100_000];

#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub busy: usize,
    pub busy_height: usize,
    /// Packed layout: free areas, tenths of ns per alloc+free.
    pub packed_free: usize,
    pub packed_ns10: u64,
    /// Holes layout.
    pub holes_free: usize,
    pub holes_free_height: usize,
    pub hole_ns10: u64,
    pub past_ns10: u64,
}

fn take(size: usize) -> Option<NonNull<VmapArea>> {
    let va = alloc_vmap_area(size, PAGE_SIZE, VMALLOC_START, VMALLOC_END);
    if IS_ERR(va) { None } else { NonNull::new(va) }
}

/// `n` one-page areas, or None (and nothing kept) if the space ran out.
fn take_many(n: usize) -> Option<Vec<NonNull<VmapArea>>> {
    let mut areas: Vec<NonNull<VmapArea>> = Vec::new();
    if areas.try_reserve_exact(n).is_err() {
        pr_err!("bench: scaling: no memory for {} area pointers", n);
        return None;
    }
    for _ in 0..n {
        match take(PAGE_SIZE) {
            Some(va) => areas.push(va),
            None => {
                pr_err!("bench: scaling: alloc_vmap_area failed after {} areas", areas.len());
                // SAFETY: areas from take(), each given back once and then dropped.
                areas.into_iter().for_each(|va| unsafe { free_vmap_area(va) });
                return None;
            }
        }
    }
    Some(areas)
}

/// Tenths of ns per alloc_vmap_area(size) + free_vmap_area.
fn time_alloc_free(size: usize, loops: usize) -> Option<u64> {
    let t0 = get_cycles();
    for _ in 0..loops {
        let va = take(size)?;
        // SAFETY: an area from take(), given back once and not used again.
        unsafe { free_vmap_area(va) };
    }
    Some(ns10_per_op(get_cycles() - t0, loops as u64))
}

/// (busy areas, busy tree height, free areas, free tree height).
fn tree_shapes() -> (usize, usize, usize, usize) {
    let (busy, busy_h) = {
        let b = vmap_area_root.lock();
        (b.len(), b.height())
    };
    let f = free_vmap_area_root.lock();
    (busy, busy_h, f.len(), f.height())
}

/// One data point; None if the setup ran out of memory or space.
fn measure(n: usize, loops: usize) -> Option<Point> {
    // Packed: n areas back to back.
    let areas = take_many(n)?;
    let (busy, busy_height, packed_free, _) = tree_shapes();
    let packed = time_alloc_free(PAGE_SIZE, loops);
    // SAFETY: areas from take(), each given back once and then dropped.
    areas.into_iter().for_each(|va| unsafe { free_vmap_area(va) });

    // Holes: 2n areas, every second one given back.
    let areas = take_many(2 * n)?;
    for va in areas.iter().skip(1).step_by(2) {
        // SAFETY: an area from take(), given back once and not used again.
        unsafe { free_vmap_area(*va) };
    }
    let (_, _, holes_free, holes_free_height) = tree_shapes();
    let hole = time_alloc_free(PAGE_SIZE, loops);
    let past = time_alloc_free(2 * PAGE_SIZE, loops);
    for va in areas.iter().step_by(2) {
        // SAFETY: an area from take(), given back once and not used again.
        unsafe { free_vmap_area(*va) };
    }
    match (packed, hole, past) {
        (Some(packed_ns10), Some(hole_ns10), Some(past_ns10)) => Some(Point {
            busy,
            busy_height,
            packed_free,
            packed_ns10,
            holes_free,
            holes_free_height,
            hole_ns10,
            past_ns10,
        }),
        _ => {
            pr_err!(
                "bench: scaling: alloc_vmap_area failed during the measurement (N = {})",
                n
            );
            None
        }
    }
}

/// Measure every point and print the table. Returns the points measured.
pub fn run(loops: usize) -> Vec<Point> {
    vmalloc::purge_vmap_area_lazy();
    pr_info!(
        "bench: scaling: alloc_vmap_area + free_vmap_area (address space only, no lazy purge), {} loops per point",
        loops
    );
    pr_info!(
        "bench: scaling: {:>7} {:>6} | packed: {:>5} {:>10} {:>5} | holes: {:>7} {:>6} {:>10} {:>5} {:>10} {:>5}",
        "busy",
        "busy_h",
        "free",
        "1page_ns",
        "ratio",
        "free",
        "free_h",
        "1page_ns",
        "ratio",
        "2pages_ns",
        "ratio"
    );
    let mut points: Vec<Point> = Vec::new();
    for &n in &POINTS {
        if super::interrupted() {
            break;
        }
        let Some(p) = measure(n, loops) else { break };
        let base = points.first().copied().unwrap_or(p);
        pr_info!(
            "bench: scaling: {:>7} {:>6} | packed: {:>5} {:>10} {:>5} | holes: {:>7} {:>6} {:>10} {:>5} {:>10} {:>5}",
            p.busy,
            p.busy_height,
            p.packed_free,
            Ns10(p.packed_ns10),
            Ratio(p.packed_ns10, base.packed_ns10),
            p.holes_free,
            p.holes_free_height,
            Ns10(p.hole_ns10),
            Ratio(p.hole_ns10, base.hole_ns10),
            Ns10(p.past_ns10),
            Ratio(p.past_ns10, base.past_ns10)
        );
        points.push(p);
    }
    match vmalloc::check_vmalloc_invariants() {
        Ok(()) => pr_info!("bench: scaling: vmalloc invariants hold after the run"),
        Err(e) => pr_err!("bench: scaling: vmalloc invariants broken: {}", e),
    }
    points
}
