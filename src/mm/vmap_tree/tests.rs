// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `vmap_tree` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

use super::*;
use crate::arch::memory::{PAGE_SIZE, PUD_SIZE, VMALLOC_END, VMALLOC_START};
use std::boxed::Box;
use std::collections::{BTreeMap, HashSet};
use std::mem::MaybeUninit;
use std::string::ToString;
use std::vec;

const P: usize = PAGE_SIZE;

/// Node cache for tests: hands out poisoned boxes, counts live nodes,
/// catches double and foreign frees, and never reuses memory (freed nodes
/// are poisoned and quarantined until the end) so that a use after free
/// shows up as garbage instead of a plausible node.
struct TrackingAlloc {
    live: HashSet<usize>,
    quarantine: Vec<usize>,
    allocs: usize,
    frees: usize,
    /// Successful allocations left before the next one fails.
    fail_after: Option<usize>,
}

impl TrackingAlloc {
    fn new() -> Self {
        Self {
            live: HashSet::new(),
            quarantine: Vec::new(),
            allocs: 0,
            frees: 0,
            fail_after: None,
        }
    }

    /// A node for the caller's own use (busy areas, freed ranges).
    fn node(&mut self, start: usize, end: usize) -> NonNull<VmapArea> {
        let saved = self.fail_after.take();
        let va = self.alloc_vmap_area_node().expect("test allocator");
        self.fail_after = saved;
        // SAFETY: a fresh box from the allocator, big and aligned enough for a VmapArea.
        unsafe { va.as_ptr().write(VmapArea::new(start, end)) };
        va
    }

    fn live(&self) -> usize {
        self.live.len()
    }
}

// SAFETY: boxes are VmapArea-sized and aligned, handed out once, and freed only when given back.
unsafe impl VmapAreaAlloc for TrackingAlloc {
    fn alloc_vmap_area_node(&mut self) -> Option<NonNull<VmapArea>> {
        if let Some(n) = self.fail_after {
            if n == 0 {
                return None;
            }
            self.fail_after = Some(n - 1);
        }
        let mut b: Box<MaybeUninit<VmapArea>> = Box::new(MaybeUninit::uninit());
        // SAFETY: the fresh box is VmapArea-sized.
        unsafe { ptr::write_bytes(b.as_mut_ptr() as *mut u8, 0xa5, core::mem::size_of::<VmapArea>()) };
        let p = Box::into_raw(b) as *mut VmapArea;
        assert!(self.live.insert(p as usize));
        self.allocs += 1;
        NonNull::new(p)
    }

    fn free_vmap_area_node(&mut self, va: NonNull<VmapArea>) {
        let a = va.as_ptr() as usize;
        assert!(self.live.remove(&a), "double free or foreign node {a:#x}");
        // SAFETY: `va` is a live box of ours being given back; nothing uses it afterwards.
        unsafe { ptr::write_bytes(va.as_ptr() as *mut u8, 0x5a, core::mem::size_of::<VmapArea>()) };
        self.quarantine.push(a);
        self.frees += 1;
    }
}

impl Drop for TrackingAlloc {
    fn drop(&mut self) {
        for a in self.quarantine.drain(..).chain(self.live.drain()) {
            // SAFETY: quarantined boxes came from Box::into_raw and are dropped once.
            drop(unsafe { Box::from_raw(a as *mut MaybeUninit<VmapArea>) });
        }
    }
}

/// xorshift64* PRNG, seeded as `seed * golden ratio | 1`.
use crate::lib::rand::XorShift64Star as Rng;

fn rng(seed: u64) -> Rng {
    Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

fn ranges(root: &VmapAreaRoot) -> Vec<(usize, usize)> {
    root.iter().map(|va| (va.va_start, va.va_end)).collect()
}

fn free_tree(alloc: &mut TrackingAlloc, ranges: &[(usize, usize)]) -> VmapAreaRoot {
    let mut root = VmapAreaRoot::new_free();
    for &(s, e) in ranges {
        let va = alloc.node(s, e);
        // SAFETY: a fresh node of `alloc`, which frees the tree's nodes.
        unsafe { merge_or_add_vmap_area(&mut root, va, alloc).unwrap() };
    }
    check_invariants(&root).unwrap();
    root
}

fn release(root: &mut VmapAreaRoot, alloc: &mut TrackingAlloc) {
    for va in root.take_all() {
        alloc.free_vmap_area_node(va);
    }
}

fn snapshot(root: &VmapAreaRoot) -> Vec<(usize, usize, usize)> {
    root.iter()
        .map(|va| (va.va_start, va.va_end, va.subtree_max_size))
        .collect()
}

/// try_alloc_vmap_area_range on a tree built from `a`'s nodes.
fn alloc_range(
    root: &mut VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
    a: &mut TrackingAlloc,
) -> Result<usize, VmapError> {
    // SAFETY: every tree in these tests is built from one TrackingAlloc's
    // nodes and used with that allocator only.
    unsafe { try_alloc_vmap_area_range(root, size, align, vstart, vend, a) }
}

/// __alloc_vmap_area on a tree built from `a`'s nodes.
fn alloc_or_vend(
    root: &mut VmapAreaRoot,
    size: usize,
    align: usize,
    vstart: usize,
    vend: usize,
    a: &mut TrackingAlloc,
) -> usize {
    // SAFETY: as in alloc_range.
    unsafe { __alloc_vmap_area(root, size, align, vstart, vend, a) }
}

const B: usize = 0x1_0000_0000;

// ---- fit types ----------------------------------------------------------

#[test]
fn classify_each_fit_type() {
    let va = VmapArea::new(B, B + 8 * P);
    assert_eq!(classify_va_fit_type(&va, B, 8 * P), FitType::FlFitType);
    assert_eq!(classify_va_fit_type(&va, B, 2 * P), FitType::LeFitType);
    assert_eq!(classify_va_fit_type(&va, B + 6 * P, 2 * P), FitType::ReFitType);
    assert_eq!(classify_va_fit_type(&va, B + 2 * P, 2 * P), FitType::NeFitType);
    assert_eq!(classify_va_fit_type(&va, B - P, 2 * P), FitType::NothingFit);
    assert_eq!(classify_va_fit_type(&va, B + 7 * P, 2 * P), FitType::NothingFit);
    assert_eq!(classify_va_fit_type(&va, B, 0), FitType::NothingFit);
    assert_eq!(classify_va_fit_type(&va, usize::MAX - P, 2 * P), FitType::NothingFit);
}

#[test]
fn adjust_full_fit_frees_the_node() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 4 * P), (B + 8 * P, B + 12 * P)]);
    assert_eq!(a.live(), 2);
    let va = root.find(B).unwrap();
    // SAFETY: `va` is a live node of `root`, whose nodes come from `a`.
    unsafe { adjust_va_to_fit_type(&mut root, va, B, 4 * P, FitType::FlFitType, &mut a).unwrap() };
    assert_eq!(ranges(&root), vec![(B + 8 * P, B + 12 * P)]);
    assert_eq!(a.live(), 1);
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
}

#[test]
fn adjust_left_and_right_edges_shrink_in_place() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 16 * P), (B + 32 * P, B + 40 * P)]);
    assert_eq!(root.max_free_size(), 16 * P);
    let va = root.find(B).unwrap();
    // SAFETY: as above.
    unsafe { adjust_va_to_fit_type(&mut root, va, B, 4 * P, FitType::LeFitType, &mut a).unwrap() };
    assert_eq!(ranges(&root)[0], (B + 4 * P, B + 16 * P));
    assert_eq!(root.max_free_size(), 12 * P);
    check_invariants(&root).unwrap();
    // SAFETY: as above.
    unsafe { adjust_va_to_fit_type(&mut root, va, B + 10 * P, 6 * P, FitType::ReFitType, &mut a).unwrap() };
    assert_eq!(ranges(&root)[0], (B + 4 * P, B + 10 * P));
    assert_eq!(root.max_free_size(), 8 * P);
    check_invariants(&root).unwrap();
    assert_eq!(a.live(), 2);
    // A fit type that does not match the range is refused.
    // SAFETY: as above.
    let e = unsafe { adjust_va_to_fit_type(&mut root, va, B + 4 * P, P, FitType::NeFitType, &mut a) };
    assert!(matches!(e, Err(VmapError::BadRange { .. })));
    release(&mut root, &mut a);
}

#[test]
fn adjust_no_edge_splits_with_one_new_node() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 16 * P)]);
    let va = root.find(B).unwrap();
    // SAFETY: as above.
    unsafe { adjust_va_to_fit_type(&mut root, va, B + 4 * P, 2 * P, FitType::NeFitType, &mut a).unwrap() };
    assert_eq!(ranges(&root), vec![(B, B + 4 * P), (B + 6 * P, B + 16 * P)]);
    assert_eq!(a.live(), 2);
    assert_eq!(root.max_free_size(), 10 * P);
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
}

#[test]
fn split_without_a_node_is_no_memory_and_changes_nothing() {
    let mut a = TrackingAlloc::new();
    let fragments: Vec<_> = (0..40).map(|i| (B + i * 64 * P, B + i * 64 * P + 32 * P)).collect();
    let mut root = free_tree(&mut a, &fragments);
    let before = snapshot(&root);
    let live = a.live();
    a.fail_after = Some(0);
    // vstart in the middle of an area forces a no-edge split.
    let r = alloc_range(&mut root, P, P, B + 5 * 64 * P + 3 * P, usize::MAX, &mut a);
    assert_eq!(r, Err(VmapError::NoMemory));
    assert_eq!(snapshot(&root), before);
    assert_eq!(a.live(), live);
    check_invariants(&root).unwrap();
    // Edge fits need no node and still work while the cache is empty.
    assert_eq!(alloc_range(&mut root, P, P, 0, usize::MAX, &mut a), Ok(B));
    a.fail_after = None;
    assert_eq!(
        alloc_range(&mut root, P, P, B + 5 * 64 * P + 3 * P, usize::MAX, &mut a),
        Ok(B + 5 * 64 * P + 3 * P)
    );
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
    assert_eq!(a.live(), 0);
}

// ---- merging ------------------------------------------------------------

fn merge_case(existing: &[(usize, usize)], freed: (usize, usize), want: &[(usize, usize)], held: (usize, usize)) {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, existing);
    let va = a.node(freed.0, freed.1);
    // SAFETY: a fresh node of `a`, which frees the tree's nodes.
    let h = unsafe { merge_or_add_vmap_area(&mut root, va, &mut a).unwrap() };
    // SAFETY: the returned holder is a live node of `root`.
    let h = unsafe { h.as_ref() };
    assert_eq!((h.va_start, h.va_end), held);
    assert_eq!(ranges(&root), want);
    assert_eq!(a.live(), want.len(), "absorbed nodes must be freed");
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
    assert_eq!(a.live(), 0);
}

#[test]
fn merge_with_no_neighbour() {
    merge_case(
        &[(B, B + P), (B + 8 * P, B + 9 * P)],
        (B + 3 * P, B + 4 * P),
        &[(B, B + P), (B + 3 * P, B + 4 * P), (B + 8 * P, B + 9 * P)],
        (B + 3 * P, B + 4 * P),
    );
    merge_case(&[], (B, B + P), &[(B, B + P)], (B, B + P));
}

#[test]
fn merge_with_left_neighbour() {
    merge_case(
        &[(B, B + P), (B + 8 * P, B + 9 * P)],
        (B + P, B + 3 * P),
        &[(B, B + 3 * P), (B + 8 * P, B + 9 * P)],
        (B, B + 3 * P),
    );
}

#[test]
fn merge_with_right_neighbour() {
    merge_case(
        &[(B, B + P), (B + 8 * P, B + 9 * P)],
        (B + 5 * P, B + 8 * P),
        &[(B, B + P), (B + 5 * P, B + 9 * P)],
        (B + 5 * P, B + 9 * P),
    );
}

#[test]
fn merge_with_both_neighbours() {
    merge_case(
        &[(B, B + P), (B + 8 * P, B + 9 * P), (B + 20 * P, B + 30 * P)],
        (B + P, B + 8 * P),
        &[(B, B + 9 * P), (B + 20 * P, B + 30 * P)],
        (B, B + 9 * P),
    );
}

#[test]
fn merge_refuses_overlap_and_empty_ranges() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 4 * P)]);
    let va = a.node(B + 2 * P, B + 6 * P);
    // SAFETY: a fresh node of `a`.
    let e = unsafe { merge_or_add_vmap_area(&mut root, va, &mut a) };
    assert_eq!(
        e,
        Err(VmapError::Overlap {
            start: B + 2 * P,
            end: B + 6 * P,
            other_start: B,
            other_end: B + 4 * P
        })
    );
    assert!(e.unwrap_err().to_string().contains("overlaps 0x100000000-0x100004000"));
    // SAFETY: `va` is a fresh node of ours, not linked.
    unsafe { va.as_ptr().write(VmapArea::new(B + 9 * P, B + 9 * P)) };
    assert!(matches!(
        // SAFETY: as above.
        unsafe { merge_or_add_vmap_area(&mut root, va, &mut a) },
        Err(VmapError::BadRange { .. })
    ));
    // SAFETY: the rejected node stays the caller's and valid.
    assert!(!unsafe { va.as_ref() }.is_linked());
    a.free_vmap_area_node(va);
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
    assert_eq!(a.live(), 0);
}

#[test]
fn merge_into_purge_tree_is_not_augmented() {
    let mut a = TrackingAlloc::new();
    let mut purge = VmapAreaRoot::new_busy();
    for (s, e) in [(B, B + P), (B + 2 * P, B + 3 * P), (B + P, B + 2 * P)] {
        let va = a.node(s, e);
        // SAFETY: fresh nodes of `a`, which frees the tree's nodes.
        unsafe { merge_or_add_vmap_area(&mut purge, va, &mut a).unwrap() };
    }
    assert_eq!(ranges(&purge), vec![(B, B + 3 * P)]);
    assert_eq!(a.live(), 1);
    check_invariants(&purge).unwrap();
    // Draining into the free tree, as __purge_vmap_area_lazy does.
    let mut free = free_tree(&mut a, &[(B + 3 * P, B + 10 * P)]);
    for va in purge.take_all() {
        // SAFETY: as above.
        unsafe { merge_or_add_vmap_area(&mut free, va, &mut a).unwrap() };
    }
    assert!(purge.is_empty());
    check_invariants(&purge).unwrap();
    assert_eq!(ranges(&free), vec![(B, B + 10 * P)]);
    assert_eq!(a.live(), 1);
    release(&mut free, &mut a);
}

// ---- allocation ---------------------------------------------------------

#[test]
fn alloc_takes_lowest_fit_and_exhausts() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 16 * P)]);
    for i in 0..16 {
        assert_eq!(alloc_range(&mut root, P, P, B, B + 16 * P, &mut a), Ok(B + i * P));
        check_invariants(&root).unwrap();
    }
    assert!(root.is_empty());
    assert_eq!(a.live(), 0);
    let e = alloc_range(&mut root, P, P, B, B + 16 * P, &mut a).unwrap_err();
    assert_eq!(e, VmapError::NoSpace { size: P, align: P });
    assert_eq!(e.to_string(), "no free vmap range for 0x1000 bytes aligned to 0x1000");
}

/// The Linux-named shell returns an integer GDB can print: the address,
/// or `vend` for every failure, with the free tree untouched.
#[test]
fn linux_alloc_vmap_area_returns_vend_on_failure() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 2 * P)]);
    let vend = B + 2 * P;
    assert_eq!(alloc_or_vend(&mut root, P, P, B, vend, &mut a), B);
    assert_eq!(alloc_or_vend(&mut root, 2 * P, P, B, vend, &mut a), vend, "no space");
    assert_eq!(alloc_or_vend(&mut root, P, 3 * P, B, vend, &mut a), vend, "bad align");
    assert_eq!(alloc_or_vend(&mut root, 0, P, B, vend, &mut a), vend, "size 0");
    check_invariants(&root).unwrap();
    assert_eq!(alloc_or_vend(&mut root, P, P, B, vend, &mut a), B + P);
    assert!(root.is_empty());
    assert_eq!(a.live(), 0);
}

/// vmalloc asks for align 1: the search length is the size, and the
/// lowest hole of exactly that size wins. Page alignment costs 5.10's walk
/// `PAGE_SIZE - 1` bytes of length, so an exact-size hole is passed by
/// unless the walk happens to meet it.
#[test]
fn alloc_prefers_lowest_hole_of_exact_size() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(
        &mut a,
        &[(B, B + 2 * P), (B + 4 * P, B + 7 * P), (B + 10 * P, B + 100 * P)],
    );
    assert_eq!(alloc_range(&mut root, 3 * P, 1, 0, usize::MAX, &mut a), Ok(B + 4 * P));
    // The large hole is now the root, the 2-page hole its left child.
    assert_eq!(alloc_range(&mut root, 2 * P, P, 0, usize::MAX, &mut a), Ok(B + 10 * P));
    assert_eq!(alloc_range(&mut root, 2 * P, 1, 0, usize::MAX, &mut a), Ok(B));
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
}

#[test]
fn alloc_alignment_up_to_1g() {
    let mut a = TrackingAlloc::new();
    let start = VMALLOC_START + P;
    let mut root = free_tree(&mut a, &[(start, VMALLOC_END)]);
    let mut shift = 12;
    while shift <= 30 {
        let align = 1usize << shift;
        let addr = alloc_range(&mut root, 3 * P, align, start, VMALLOC_END, &mut a).unwrap();
        assert_eq!(addr % align, 0, "align {align:#x}");
        assert!(addr >= start);
        check_invariants(&root).unwrap();
        check_coverage(&[&root], &[(addr, addr + 3 * P)], addr.min(start), VMALLOC_END).ok();
        shift += 3;
    }
    // 1 GiB aligned 1 GiB block: the free range starts 1 page past a
    // 1 GiB boundary, so the first candidate is the next boundary.
    let addr = alloc_range(&mut root, PUD_SIZE, PUD_SIZE, start, VMALLOC_END, &mut a).unwrap();
    assert_eq!(addr % PUD_SIZE, 0);
    check_invariants(&root).unwrap();
    assert!(matches!(
        alloc_range(&mut root, P, 3 * P, start, VMALLOC_END, &mut a),
        Err(VmapError::BadRequest { .. })
    ));
    assert!(matches!(
        alloc_range(&mut root, 0, P, start, VMALLOC_END, &mut a),
        Err(VmapError::BadRequest { .. })
    ));
    release(&mut root, &mut a);
}

#[test]
fn alloc_respects_vstart_and_vend() {
    let mut a = TrackingAlloc::new();
    let mut root = free_tree(&mut a, &[(B, B + 8 * P), (B + 16 * P, B + 32 * P)]);
    // vstart inside the first hole.
    assert_eq!(
        alloc_range(&mut root, 2 * P, P, B + 5 * P, usize::MAX, &mut a),
        Ok(B + 5 * P)
    );
    // vstart past the first hole.
    assert_eq!(
        alloc_range(&mut root, P, P, B + 9 * P, usize::MAX, &mut a),
        Ok(B + 16 * P)
    );
    // vend too low for anything that is left.
    assert_eq!(
        alloc_range(&mut root, 8 * P, P, B, B + 24 * P, &mut a),
        Err(VmapError::NoSpace { size: 8 * P, align: P })
    );
    assert_eq!(alloc_range(&mut root, 8 * P, P, B, B + 25 * P, &mut a), Ok(B + 17 * P));
    // vend below vstart.
    assert!(alloc_range(&mut root, P, P, B + 20 * P, B + 10 * P, &mut a).is_err());
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
}

/// 5.10's walk takes a hole that fits only by luck (smaller than
/// `size + align - 1`) when the walk meets it, and passes it by when it
/// hangs off the walk: the answer depends on the tree's shape.
#[test]
fn lucky_aligned_small_hole_depends_on_the_walk() {
    let mut a = TrackingAlloc::new();
    let m = 16 * P;
    let lucky = (B + m, B + 2 * m); // 16 pages on a 16-page boundary
    let large = (B + 3 * m + P, B + 10 * m);
    let high = (B + 20 * m, B + 21 * m);
    // Inserted first, the lucky hole is the root: the walk starts there.
    let mut root = free_tree(&mut a, &[lucky, large]);
    assert_eq!(alloc_range(&mut root, m, m, 0, usize::MAX, &mut a), Ok(B + m));
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
    // The large hole at the root, the lucky one its left child: the left
    // subtree is too small to enter, so the large hole wins.
    let mut root = free_tree(&mut a, &[large, lucky, high]);
    assert_eq!(alloc_range(&mut root, m, m, 0, usize::MAX, &mut a), Ok(B + 4 * m));
    // Align 1: the walk is exact, Linux's own check holds.
    check_lowest_match(&root, m, 0).unwrap();
    // With nothing large left below vend, the lucky hole is not on the
    // walk either (5.10 fails here and purges; so do we).
    assert_eq!(
        alloc_range(&mut root, m, m, 0, B + 4 * m, &mut a),
        Err(VmapError::NoSpace { size: m, align: m })
    );
    check_invariants(&root).unwrap();
    release(&mut root, &mut a);
}

// ---- busy tree ----------------------------------------------------------

#[test]
fn busy_tree_insert_find_iterate_unlink() {
    let mut a = TrackingAlloc::new();
    let mut busy = VmapAreaRoot::new_busy();
    let mut nodes = Vec::new();
    for i in [5usize, 1, 9, 3, 7, 0, 8, 2, 6, 4] {
        let va = a.node(B + i * 4 * P, B + i * 4 * P + 2 * P);
        // SAFETY: fresh nodes of `a`, live until released at the end.
        unsafe { insert_vmap_area(&mut busy, va).unwrap() };
        nodes.push(va);
        check_invariants(&busy).unwrap();
    }
    assert_eq!(busy.len(), 10);
    let starts: Vec<_> = busy.iter().map(|va| va.va_start).collect();
    assert_eq!(starts, (0..10).map(|i| B + i * 4 * P).collect::<Vec<_>>());
    let third = busy.find(B + 8 * P + 123).unwrap();
    // SAFETY: `third` is a live node of `busy`.
    assert_eq!(unsafe { third.as_ref() }.va_start, B + 8 * P);
    assert!(busy.find(B + 10 * P).is_none(), "guard gap");
    assert!(__find_vmap_area(&busy, B - 1).is_null());
    assert_eq!(busy.find_exact(B + 8 * P), Some(third));
    assert_eq!(busy.find_exact(B + 9 * P), None);
    // SAFETY: as above.
    let n = unsafe { third.as_ref() };
    // SAFETY: list neighbours of a live node are live nodes of the same tree.
    assert_eq!(unsafe { n.list_next().unwrap().as_ref() }.va_start, B + 12 * P);
    // SAFETY: as above.
    assert_eq!(unsafe { n.list_prev().unwrap().as_ref() }.va_start, B + 4 * P);
    // SAFETY: the ends of a tree are live nodes of it.
    assert_eq!(unsafe { busy.first().unwrap().as_ref() }.va_start, B);
    // SAFETY: as above.
    assert_eq!(unsafe { busy.last().unwrap().as_ref() }.va_start, B + 36 * P);
    // Overlapping insert is refused.
    let dup = a.node(B + P, B + 3 * P);
    assert!(matches!(
        // SAFETY: a fresh node, rejected without being linked.
        unsafe { insert_vmap_area(&mut busy, dup) },
        Err(VmapError::Overlap { .. })
    ));
    a.free_vmap_area_node(dup);
    for va in nodes {
        // SAFETY: `va` is a live node of `busy`.
        assert!(unsafe { unlink_va(&mut busy, va) });
        // SAFETY: `va` is valid and now unlinked.
        assert!(!unsafe { unlink_va(&mut busy, va) }, "second unlink is a no-op");
        check_invariants(&busy).unwrap();
        a.free_vmap_area_node(va);
    }
    assert!(busy.is_empty() && busy.first().is_none());
    assert_eq!(a.live(), 0);
}

// ---- the checkers themselves --------------------------------------------

#[test]
fn checkers_report_corruption() {
    let mut a = TrackingAlloc::new();
    let frags: Vec<_> = (0..20)
        .map(|i| (B + i * 4 * P, B + i * 4 * P + (1 + i % 3) * P))
        .collect();
    let mut root = free_tree(&mut a, &frags);
    let victim = root.find(B + 8 * 4 * P).unwrap().as_ptr();
    // SAFETY: `victim` is a live node of `root`; every corruption is undone before the tree is used again.
    unsafe {
        let saved = (*victim).subtree_max_size;
        (*victim).subtree_max_size = 77;
        let e = check_invariants(&root).unwrap_err();
        assert!(matches!(e, InvariantError::SubtreeMax { stored: 77, .. }), "{e}");
        assert!(e.to_string().contains(&std::format!("{:#x}", victim as usize)));
        (*victim).subtree_max_size = saved;

        let saved = (*victim).va_end;
        (*victim).va_end = (*victim).va_start + 5 * P;
        let e = check_invariants(&root).unwrap_err();
        assert!(
            matches!(e, InvariantError::Overlap { .. } | InvariantError::SubtreeMax { .. }),
            "{e}"
        );
        (*victim).va_end = saved;

        root.count += 1;
        assert!(matches!(check_invariants(&root), Err(InvariantError::Count { .. })));
        root.count -= 1;

        let color = (*victim).rb_node.color();
        (*victim).rb_node.set_color_for_test(color ^ 1);
        assert!(check_invariants(&root).is_err());
        (*victim).rb_node.set_color_for_test(color);
    }
    check_invariants(&root).unwrap();

    // Coverage: the free areas of `frags` leave gaps.
    let e = check_coverage(&[&root], &[], B, B + 80 * P).unwrap_err();
    assert!(
        matches!(e, InvariantError::CoverageGap { from, .. } if from == B + P),
        "{e}"
    );
    let e = check_coverage(&[&root], &[(B, B + 2 * P)], B, B + 80 * P).unwrap_err();
    assert!(matches!(e, InvariantError::CoverageOverlap { .. }), "{e}");
    let e = check_coverage(&[&root], &[], B + P, B + 80 * P).unwrap_err();
    assert!(matches!(e, InvariantError::CoverageBounds { .. }), "{e}");
    release(&mut root, &mut a);
    check_coverage(&[&root], &[(B, B + 2 * P), (B + 2 * P, B + 3 * P)], B, B + 3 * P).unwrap();
}

// ---- property test against a model ---------------------------------------

/// Free ranges in a BTreeMap (start -> end), with first fit computed by
/// scanning, using the rule from the module docs.
struct Model {
    free: BTreeMap<usize, usize>,
}

impl Model {
    fn fit(s: usize, e: usize, size: usize, align: usize, vstart: usize, vend: usize) -> Option<usize> {
        let base = s.max(vstart);
        let nva = base.checked_add(align - 1)? / align * align;
        let end = nva.checked_add(size)?;
        (end <= e && end <= vend).then_some(nva)
    }

    /// The free range holding `[addr, addr + size)` as (start, end, addr).
    fn containing(&self, addr: usize, size: usize) -> Option<(usize, usize, usize)> {
        let (&s, &e) = self.free.range(..=addr).next_back()?;
        (addr + size <= e).then_some((s, e, addr))
    }

    /// Is there a hole that 5.10's walk cannot miss: wholly at or above
    /// `vstart`, at least `size + align - 1` bytes, its aligned block
    /// ending by `vend`? (Smaller holes fit only by luck, and only if the
    /// walk meets them.)
    fn surely_fits(&self, size: usize, align: usize, vstart: usize, vend: usize) -> bool {
        self.free
            .range(vstart..)
            .any(|(&s, &e)| e - s >= size + align - 1 && Self::fit(s, e, size, align, vstart, vend).is_some())
    }

    fn take(&mut self, (s, e, n): (usize, usize, usize), size: usize) {
        self.free.remove(&s);
        if s < n {
            self.free.insert(s, n);
        }
        if n + size < e {
            self.free.insert(n + size, e);
        }
    }

    fn give(&mut self, mut s: usize, mut e: usize) {
        if let Some((&ps, &pe)) = self.free.range(..s).next_back() {
            assert!(pe <= s, "model overlap");
            if pe == s {
                self.free.remove(&ps);
                s = ps;
            }
        }
        if let Some(&ne) = self.free.get(&e) {
            self.free.remove(&e);
            e = ne;
        }
        self.free.insert(s, e);
    }
}

struct Config {
    start: usize,
    end: usize,
    /// Sizes are 1 .. 2^max_order pages (log-uniform).
    max_order: usize,
    /// Alignments up to PAGE_SIZE << max_align_shift.
    max_align_shift: usize,
    target_busy: usize,
}

struct World {
    a: TrackingAlloc,
    free: VmapAreaRoot,
    busy: VmapAreaRoot,
    purge: VmapAreaRoot,
    /// Lazily freed areas chained through purge_next (the other purge flavour).
    chain: *mut VmapArea,
    chain_ranges: Vec<(usize, usize)>,
    busy_list: Vec<(usize, usize)>,
    model: Model,
    start: usize,
    end: usize,
    stats: Stats,
}

/// What a property run exercised.
#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    allocs: usize,
    frees: usize,
    no_memory: usize,
    no_space: usize,
    lowest_match_checks: usize,
    purges: usize,
    /// Allocations by fit type: FL, LE, RE, NE.
    fits: [usize; 4],
    /// Allocations from a hole smaller than size + align - 1 (a fit by luck).
    fallback: usize,
    /// Frees into the free tree merged with: nothing, prev, next, both.
    merges: [usize; 4],
    max_free_nodes: usize,
    max_busy_nodes: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.allocs += o.allocs;
        self.frees += o.frees;
        self.no_memory += o.no_memory;
        self.no_space += o.no_space;
        self.lowest_match_checks += o.lowest_match_checks;
        self.purges += o.purges;
        self.fallback += o.fallback;
        for i in 0..4 {
            self.fits[i] += o.fits[i];
            self.merges[i] += o.merges[i];
        }
        self.max_free_nodes = self.max_free_nodes.max(o.max_free_nodes);
        self.max_busy_nodes = self.max_busy_nodes.max(o.max_busy_nodes);
    }
}

impl World {
    fn new(start: usize, end: usize) -> Self {
        let mut a = TrackingAlloc::new();
        let mut free = VmapAreaRoot::new_free();
        let va = a.node(start, end);
        // SAFETY: fresh nodes of `a`, which frees the tree's nodes.
        unsafe { merge_or_add_vmap_area(&mut free, va, &mut a).unwrap() };
        let mut model = Model { free: BTreeMap::new() };
        model.free.insert(start, end);
        Self {
            a,
            free,
            busy: VmapAreaRoot::new_busy(),
            purge: VmapAreaRoot::new_busy(),
            chain: ptr::null_mut(),
            chain_ranges: Vec::new(),
            busy_list: Vec::new(),
            model,
            start,
            end,
            stats: Stats::default(),
        }
    }

    fn check(&self, ctx: &str) {
        let fail = |what: &str, e: InvariantError| panic!("{ctx}: {what}: {e}");
        check_invariants(&self.free).unwrap_or_else(|e| fail("free tree", e));
        check_invariants(&self.busy).unwrap_or_else(|e| fail("busy tree", e));
        check_invariants(&self.purge).unwrap_or_else(|e| fail("purge tree", e));
        check_coverage(
            &[&self.free, &self.busy, &self.purge],
            &self.chain_ranges,
            self.start,
            self.end,
        )
        .unwrap_or_else(|e| fail("coverage", e));
        assert!(
            self.free
                .iter()
                .map(|va| (va.va_start, va.va_end))
                .eq(self.model.free.iter().map(|(&s, &e)| (s, e))),
            "{ctx}: free tree differs from the model"
        );
        let nodes = self.free.len() + self.busy.len() + self.purge.len() + self.chain_ranges.len();
        assert_eq!(self.a.live(), nodes, "{ctx}: node leak or loss");
    }

    /// Move every lazily freed area into the free tree (__purge_vmap_area_lazy).
    fn purge(&mut self) {
        for va in self.purge.take_all() {
            // SAFETY: `va` is a fresh node of `self.a`.
            let (s, e) = unsafe { (va.as_ref().va_start, va.as_ref().va_end) };
            // SAFETY: as above.
            unsafe { merge_or_add_vmap_area(&mut self.free, va, &mut self.a).unwrap() };
            self.model.give(s, e);
        }
        let mut p = self.chain;
        self.chain = ptr::null_mut();
        while let Some(va) = NonNull::new(p) {
            // SAFETY: the node comes from `self.a`, which frees the tree's nodes.
            unsafe {
                p = (*va.as_ptr()).purge_next;
                (*va.as_ptr()).purge_next = ptr::null_mut();
                let (s, e) = (va.as_ref().va_start, va.as_ref().va_end);
                merge_or_add_vmap_area(&mut self.free, va, &mut self.a).unwrap();
                self.model.give(s, e);
            }
        }
        self.chain_ranges.clear();
        self.stats.purges += 1;
    }

    fn alloc(&mut self, rng: &mut Rng, cfg: &Config) {
        let order = rng.below(cfg.max_order + 1);
        let pages = 1 + rng.below(1 << order);
        let size = pages * P;
        let align = if rng.chance(60) {
            P
        } else {
            P << rng.below(cfg.max_align_shift + 1)
        };
        let span = self.end - self.start;
        let vstart = if rng.chance(15) {
            self.start + rng.below(span / P) * P
        } else {
            self.start
        };
        let vend = if rng.chance(10) {
            vstart + rng.below((self.end - vstart) / P + 1) * P
        } else {
            self.end
        };
        let inject = rng.chance(5);
        let mut purged = false;
        loop {
            let before = if inject { Some(snapshot(&self.free)) } else { None };
            if inject {
                self.a.fail_after = Some(0);
            }
            let got = alloc_range(&mut self.free, size, align, vstart, vend, &mut self.a);
            self.a.fail_after = None;
            let ctx = || std::format!("alloc size {size:#x} align {align:#x} vstart {vstart:#x} vend {vend:#x}");
            // Which address is right is the trace test's business (against
            // a transcription of 5.10); here: a valid block of free space,
            // and failure only when 5.10's walk may fail too.
            match got {
                Err(VmapError::NoMemory) => {
                    assert!(inject, "{}: NoMemory without fault injection", ctx());
                    assert_eq!(Some(snapshot(&self.free)), before, "{}: tree changed", ctx());
                    self.stats.no_memory += 1;
                    return;
                }
                Ok(addr) => {
                    let w = self
                        .model
                        .containing(addr, size)
                        .unwrap_or_else(|| panic!("{}: {addr:#x} is not free in the model", ctx()));
                    assert!(
                        addr % align == 0 && addr >= vstart && addr + size <= vend,
                        "{}: bad block {addr:#x}",
                        ctx()
                    );
                    let (s, e, n) = w;
                    assert!(!inject || s == n || n + size == e, "{}: split without a node", ctx());
                    self.model.take(w, size);
                    let va = self.a.node(addr, addr + size);
                    // SAFETY: a fresh node of `self.a`, live until released.
                    unsafe { insert_vmap_area(&mut self.busy, va).unwrap() };
                    self.busy_list.push((addr, addr + size));
                    self.stats.allocs += 1;
                    self.stats.fits[match (s == n, n + size == e) {
                        (true, true) => 0,
                        (true, false) => 1,
                        (false, true) => 2,
                        (false, false) => 3,
                    }] += 1;
                    if e - s < size + align - 1 {
                        self.stats.fallback += 1;
                    }
                    self.stats.max_free_nodes = self.stats.max_free_nodes.max(self.free.len());
                    self.stats.max_busy_nodes = self.stats.max_busy_nodes.max(self.busy.len());
                    return;
                }
                Err(VmapError::NoSpace { .. }) => {
                    assert!(
                        !self.model.surely_fits(size, align, vstart, vend),
                        "{}: a large enough hole was missed",
                        ctx()
                    );
                    // alloc_vmap_area's overflow path: purge once, retry.
                    if purged || (self.purge.is_empty() && self.chain.is_null()) {
                        self.stats.no_space += 1;
                        return;
                    }
                    self.purge();
                    purged = true;
                }
                Err(e) => panic!("{}: {e}", ctx()),
            }
        }
    }

    fn free_one(&mut self, rng: &mut Rng) {
        let i = rng.below(self.busy_list.len());
        let (s, e) = self.busy_list.swap_remove(i);
        let probe = s + rng.below((e - s) / P) * P + rng.below(P);
        let va = self.busy.find(probe).expect("busy area not found");
        // SAFETY: `va` is a live node of the busy tree.
        assert_eq!(unsafe { (va.as_ref().va_start, va.as_ref().va_end) }, (s, e));
        assert_eq!(self.busy.find_exact(s), Some(va));
        // SAFETY: as above.
        assert!(unsafe { unlink_va(&mut self.busy, va) });
        match rng.below(10) {
            0..=6 => {
                let with_prev = self.model.free.range(..s).next_back().is_some_and(|(_, &pe)| pe == s);
                let with_next = self.model.free.contains_key(&e);
                self.stats.merges[with_prev as usize + 2 * with_next as usize] += 1;
                // SAFETY: `va` was just unlinked and is a node of `self.a`.
                unsafe { merge_or_add_vmap_area(&mut self.free, va, &mut self.a).unwrap() };
                self.model.give(s, e);
            }
            // SAFETY: as above.
            7 | 8 => unsafe {
                merge_or_add_vmap_area(&mut self.purge, va, &mut self.a).unwrap();
            },
            _ => {
                // SAFETY: `va` is ours until it goes on the chain.
                unsafe { (*va.as_ptr()).purge_next = self.chain };
                self.chain = va.as_ptr();
                self.chain_ranges.push((s, e));
            }
        }
        self.stats.frees += 1;
    }

    fn teardown(mut self) {
        while let Some((s, e)) = self.busy_list.pop() {
            let va = self.busy.find_exact(s).unwrap();
            // SAFETY: chained nodes are live nodes of `self.a`, each on the chain once.
            unsafe {
                unlink_va(&mut self.busy, va);
                merge_or_add_vmap_area(&mut self.free, va, &mut self.a).unwrap();
            }
            self.model.give(s, e);
        }
        self.purge();
        self.check("teardown");
        assert_eq!(ranges(&self.free), vec![(self.start, self.end)]);
        release(&mut self.free, &mut self.a);
        assert_eq!(self.a.live(), 0, "every node accounted for");
        assert_eq!(self.a.allocs, self.a.frees);
    }
}

fn run_property(seed: u64, ops: usize, cfg: &Config) -> Stats {
    let mut rng = rng(seed);
    let mut w = World::new(cfg.start, cfg.end);
    for op in 0..ops {
        let busy = w.busy_list.len();
        let p_alloc = if busy == 0 {
            100
        } else if busy < cfg.target_busy {
            60
        } else {
            35
        };
        if rng.chance(p_alloc) {
            w.alloc(&mut rng, cfg);
        } else if rng.chance(3) {
            w.purge();
        } else {
            w.free_one(&mut rng);
        }
        w.check(&std::format!("seed {seed} op {op}"));
        if op % 16 == 0 {
            let order = rng.below(cfg.max_order + 1);
            let size = (1 + rng.below(1 << order)) * P;
            let vstart = if rng.chance(50) {
                cfg.start
            } else {
                cfg.start + rng.below((cfg.end - cfg.start) / P) * P
            };
            check_lowest_match(&w.free, size, vstart).unwrap_or_else(|e| panic!("seed {seed} op {op}: {e}"));
            // Linux's own check: align 1, arbitrary vstart.
            check_lowest_match(&w.free, size, vstart + rng.below(P)).unwrap();
            w.stats.lowest_match_checks += 1;
        }
    }
    let stats = w.stats;
    w.teardown();
    stats
}

#[test]
fn property_against_model() {
    let configs = [
        // Small space: exhaustion and purge-and-retry are frequent.
        Config {
            start: 0x4000_0000,
            end: 0x4000_0000 + 4096 * P,
            max_order: 6,
            max_align_shift: 6,
            target_busy: 150,
        },
        // The real vmalloc range with alignments up to 1 GiB.
        Config {
            start: VMALLOC_START,
            end: VMALLOC_END,
            max_order: 10,
            max_align_shift: 18,
            target_busy: 300,
        },
        // Medium, many small areas: deep trees, lots of merging.
        Config {
            start: VMALLOC_START,
            end: VMALLOC_START + (1 << 30),
            max_order: 4,
            max_align_shift: 4,
            target_busy: 600,
        },
    ];
    let mut total = Stats::default();
    let mut ops = 0;
    for seed in 1..=12u64 {
        let cfg = &configs[seed as usize % configs.len()];
        let n = 10_000;
        let s = run_property(seed, n, cfg);
        total.add(&s);
        ops += n;
    }
    std::println!("{ops} ops: {total:?}");
    assert!(ops >= 100_000);
    // Every path must have been exercised.
    let t = &total;
    assert!(
        t.no_memory > 0 && t.no_space > 0 && t.purges > 0 && t.fallback > 0,
        "{t:?}"
    );
    assert!(
        t.fits.iter().all(|&n| n > 0) && t.merges.iter().all(|&n| n > 0),
        "{t:?}"
    );
}

// ---- scaling -------------------------------------------------------------

fn max_rb_height(n: usize) -> usize {
    // A red-black tree with n nodes is at most 2 * log2(n + 1) high.
    2 * (usize::BITS - (n + 1).leading_zeros()) as usize
}

#[test]
fn scaling_100k_busy_areas_stay_balanced() {
    const N: usize = 100_000;
    let mut a = TrackingAlloc::new();
    // Ascending inserts (the worst case for an unbalanced tree) and
    // shuffled inserts.
    let mut asc = VmapAreaRoot::new_busy();
    let mut shuffled = VmapAreaRoot::new_busy();
    let mut order: Vec<usize> = (0..N).collect();
    let mut rng = rng(99);
    for i in (1..N).rev() {
        order.swap(i, rng.below(i + 1));
    }
    for (i, &j) in order.iter().enumerate() {
        let va = a.node(B + i * 2 * P, B + i * 2 * P + P);
        // SAFETY: fresh nodes of `a`, live until released.
        unsafe { insert_vmap_area(&mut asc, va).unwrap() };
        let va = a.node(B + j * 2 * P, B + j * 2 * P + P);
        // SAFETY: as above.
        unsafe { insert_vmap_area(&mut shuffled, va).unwrap() };
    }
    for root in [&asc, &shuffled] {
        check_invariants(root).unwrap();
        assert_eq!(root.len(), N);
        assert!(root.height() <= max_rb_height(N), "height {}", root.height());
        assert!(root.find(B + 77_777 * 2 * P + 5).is_some());
    }
    // Remove half in random order.
    for &j in order.iter().take(N / 2) {
        let va = shuffled.find_exact(B + j * 2 * P).unwrap();
        // SAFETY: `va` is a live node of `shuffled`.
        unsafe { unlink_va(&mut shuffled, va) };
        a.free_vmap_area_node(va);
    }
    check_invariants(&shuffled).unwrap();
    assert!(shuffled.height() <= max_rb_height(N / 2));

    // A free tree fragmented into 100k holes, then merged back.
    let mut free = free_tree(&mut a, &[(B, B + 2 * N * P)]);
    let mut addrs = Vec::with_capacity(2 * N);
    for _ in 0..2 * N {
        addrs.push(alloc_range(&mut free, P, P, 0, usize::MAX, &mut a).unwrap());
    }
    assert!(free.is_empty());
    for &addr in addrs.iter().step_by(2) {
        let va = a.node(addr, addr + P);
        // SAFETY: fresh nodes of `a`, which frees the tree's nodes.
        unsafe { merge_or_add_vmap_area(&mut free, va, &mut a).unwrap() };
    }
    check_invariants(&free).unwrap();
    assert_eq!(free.len(), N);
    assert!(free.height() <= max_rb_height(N), "height {}", free.height());
    check_lowest_match(&free, P, B + N * P + 1).unwrap();
    assert!(find_vmap_lowest_match(&free, 2 * P, P, 0).is_null());
    for &addr in addrs.iter().skip(1).step_by(2) {
        let va = a.node(addr, addr + P);
        // SAFETY: as above.
        unsafe { merge_or_add_vmap_area(&mut free, va, &mut a).unwrap() };
    }
    assert_eq!(ranges(&free), vec![(B, B + 2 * N * P)]);
    check_invariants(&free).unwrap();

    release(&mut free, &mut a);
    release(&mut asc, &mut a);
    release(&mut shuffled, &mut a);
    assert_eq!(a.live(), 0);
}

#[test]
fn node_layout_is_stable() {
    // The kernel's object cache and GDB scripts rely on this layout.
    assert_eq!(core::mem::offset_of!(VmapArea, va_start), 0);
    assert_eq!(core::mem::offset_of!(VmapArea, va_end), 8);
    // 88 before the owner became an enum: its tag costs a word.
    assert_eq!(core::mem::size_of::<VmapArea>(), 96);
    assert_eq!(core::mem::size_of::<VmapOwner>(), 16);
    assert_eq!(FitType::NeFitType as u8, 4);
    assert_eq!(VmapError::NoMemory.to_string(), "no memory for a vmap_area node");
}

// ---- trace replay against a transcription of Linux 5.10 ------------------

/// A separate, line-by-line transcription of 5.10's free-tree functions
/// (mm/vmalloc.c: `find_va_links`, `link_va`, `unlink_va`,
/// `augment_tree_propagate_from`, `merge_or_add_vmap_area`,
/// `is_within_this_va`, `find_vmap_lowest_match`, `classify_va_fit_type`,
/// `adjust_va_to_fit_type`, `__alloc_vmap_area`), on its own node type and
/// augmentation callbacks. It shares only lib/rbtree.c (`lib::rbtree`),
/// as 5.10's file shares it with the rest of the kernel: for `align > 1`
/// 5.10's answer depends on the tree's shape (a hole that fits by luck is
/// taken only if the walk meets it), so a model without the same red-black
/// tree could not say which address Linux picks.
mod linux510 {
    use crate::lib::rbtree::{self, RbAugment, RbEntry, RbNode, RbRoot, RbSearch};
    use core::ptr::{self, NonNull};
    use std::boxed::Box;
    use std::vec::Vec;

    #[repr(C)]
    pub struct Va {
        pub va_start: usize,
        pub va_end: usize,
        pub rb_node: RbNode,
        pub subtree_max_size: usize,
    }
    crate::rb_entry!(Va, rb_node);

    fn va_size(va: &Va) -> usize {
        va.va_end - va.va_start
    }

    /// # Safety
    /// `n` is `None` or a live node.
    unsafe fn get_subtree_max_size(n: Option<NonNull<RbNode>>) -> usize {
        // SAFETY: the caller's contract.
        n.map_or(0, |n| unsafe { Va::from_rb_node(n).as_ref().subtree_max_size })
    }

    /// RB_DECLARE_CALLBACKS_MAX(static, free_vmap_area_rb_augment_cb,
    /// struct vmap_area, rb_node, unsigned long, subtree_max_size, va_size).
    struct Cb;

    // SAFETY: reads the children's values, writes only the node's own.
    unsafe impl RbAugment for Cb {
        unsafe fn compute(node: NonNull<RbNode>, exit: bool) -> bool {
            // SAFETY: a live node and live children (callback contract).
            unsafe {
                let va = Va::from_rb_node(node).as_ptr();
                let n = &*node.as_ptr();
                let max = va_size(&*va)
                    .max(get_subtree_max_size(n.left()))
                    .max(get_subtree_max_size(n.right()));
                if exit && (*va).subtree_max_size == max {
                    return true;
                }
                (*va).subtree_max_size = max;
                false
            }
        }

        unsafe fn copy(old: NonNull<RbNode>, new: NonNull<RbNode>) {
            // SAFETY: live nodes (callback contract).
            unsafe {
                (*Va::from_rb_node(new).as_ptr()).subtree_max_size = Va::from_rb_node(old).as_ref().subtree_max_size
            };
        }
    }

    /// 5.10's `enum fit_type`, its names kept.
    #[allow(clippy::enum_variant_names)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum FitType {
        NothingFit,
        FlFitType,
        LeFitType,
        ReFitType,
        NeFitType,
    }

    /// `free_vmap_area_root` with its nodes (kmem_cache_alloc/free are
    /// Box::into_raw/from_raw).
    pub struct FreeTree {
        root: RbRoot<Va>,
        pub nodes: usize,
    }

    impl FreeTree {
        pub fn new(start: usize, end: usize) -> Self {
            let mut t = Self {
                root: RbRoot::new(),
                nodes: 0,
            };
            let va = t.kmem_cache_alloc(start, end);
            // SAFETY: a fresh node.
            unsafe { t.merge_or_add_vmap_area(va) };
            t
        }

        fn kmem_cache_alloc(&mut self, start: usize, end: usize) -> NonNull<Va> {
            self.nodes += 1;
            NonNull::from(Box::leak(Box::new(Va {
                va_start: start,
                va_end: end,
                rb_node: RbNode::new(),
                subtree_max_size: 0,
            })))
        }

        /// # Safety
        /// `va` came from kmem_cache_alloc and is in no tree.
        unsafe fn kmem_cache_free(&mut self, va: NonNull<Va>) {
            self.nodes -= 1;
            // SAFETY: the caller's contract.
            drop(unsafe { Box::from_raw(va.as_ptr()) });
        }

        pub fn top(&self) -> Option<NonNull<Va>> {
            self.root.root()
        }

        /// find_va_links(va, root, NULL, &parent); an overlap is a bug here.
        fn find_va_links(&self, start: usize, end: usize) -> rbtree::RbLink<Va> {
            match self.root.search_by(
                |tmp| start < tmp.va_end && end <= tmp.va_start,
                |tmp| end > tmp.va_start && start >= tmp.va_end,
            ) {
                RbSearch::Vacant(link) => link,
                RbSearch::Found(_) => panic!("vmalloc bug: {start:#x}-{end:#x} overlaps"),
            }
        }

        /// link_va for the free tree: subtree_max_size is zeroed after the
        /// insertion, and the caller's augment_tree_propagate_from fills
        /// the path in from the bottom. (A freed area's value is 0 before,
        /// too: its `vm`, which shares the word, was cleared.)
        ///
        /// # Safety
        /// `va` is a live node in no tree; `link` is fresh.
        unsafe fn link_va(&mut self, va: NonNull<Va>, link: rbtree::RbLink<Va>) {
            // SAFETY: the caller's contract.
            unsafe {
                (*va.as_ptr()).subtree_max_size = 0;
                self.root.rb_link_node(va, link);
                self.root.rb_insert_augmented::<Cb>(va);
                (*va.as_ptr()).subtree_max_size = 0;
            }
        }

        /// # Safety
        /// `va` is in this tree.
        unsafe fn unlink_va(&mut self, va: NonNull<Va>) {
            // SAFETY: the caller's contract.
            unsafe { self.root.rb_erase_augmented::<Cb>(va) }
        }

        /// # Safety
        /// `va` is in this tree.
        unsafe fn augment_tree_propagate_from(&self, va: NonNull<Va>) {
            // SAFETY: the caller's contract.
            unsafe { Cb::propagate(Va::rb_node(va).as_ptr(), ptr::null_mut()) }
        }

        /// # Safety
        /// `va` is a node of this cache in no tree.
        pub unsafe fn merge_or_add_vmap_area(&mut self, mut va: NonNull<Va>) {
            // SAFETY: (whole function) `va` is ours (caller); nodes reached
            // through the tree are live.
            unsafe {
                let (start, end) = (va.as_ref().va_start, va.as_ref().va_end);
                let link = self.find_va_links(start, end);
                let mut merged = false;
                // get_va_next_sibling(): no parent means an empty tree.
                if let Some(parent) = link.parent() {
                    // The list entry after the link: the parent if we hang
                    // on its left, else the parent's successor (or the head).
                    let next = if link.is_left() {
                        Some(parent)
                    } else {
                        rbtree::rb_next(parent)
                    };
                    if let Some(sibling) = next
                        && sibling.as_ref().va_start == va.as_ref().va_end
                    {
                        (*sibling.as_ptr()).va_start = va.as_ref().va_start;
                        self.kmem_cache_free(va);
                        va = sibling;
                        merged = true;
                    }
                    // next->prev: the entry before `next`, or the last one
                    // when `next` is the list head.
                    let prev = match next {
                        Some(n) => rbtree::rb_prev(n),
                        None => self.root.last(),
                    };
                    if let Some(sibling) = prev
                        && sibling.as_ref().va_end == va.as_ref().va_start
                    {
                        if merged {
                            self.unlink_va(va);
                        }
                        (*sibling.as_ptr()).va_end = va.as_ref().va_end;
                        self.kmem_cache_free(va);
                        va = sibling;
                        merged = true;
                    }
                }
                if !merged {
                    self.link_va(va, link);
                }
                self.augment_tree_propagate_from(va);
            }
        }

        fn is_within_this_va(va: &Va, size: usize, align: usize, vstart: usize) -> bool {
            let align_up = |x: usize| x.wrapping_add(align - 1) & !(align - 1);
            let nva_start_addr = if va.va_start > vstart {
                align_up(va.va_start)
            } else {
                align_up(vstart)
            };
            // Can be overflowed due to big size or alignment.
            if nva_start_addr.wrapping_add(size) < nva_start_addr || nva_start_addr < vstart {
                return false;
            }
            nva_start_addr + size <= va.va_end
        }

        fn find_vmap_lowest_match(&self, size: usize, align: usize, vstart: usize) -> Option<NonNull<Va>> {
            let mut node = self.root.root();
            let length = size + align - 1;
            // SAFETY: nodes reached through the tree's links are live.
            unsafe {
                while let Some(n) = node {
                    let va = n.as_ref();
                    let left = va.rb_node.left();
                    if get_subtree_max_size(left) >= length && vstart < va.va_start {
                        node = rbtree::rb_left(n);
                    } else {
                        if Self::is_within_this_va(va, size, align, vstart) {
                            return Some(n);
                        }
                        if get_subtree_max_size(va.rb_node.right()) >= length {
                            node = rbtree::rb_right(n);
                            continue;
                        }
                        let mut up = Some(n);
                        loop {
                            up = rbtree::rb_parent(up.unwrap());
                            node = up;
                            let Some(p) = up else { break };
                            let va = p.as_ref();
                            if Self::is_within_this_va(va, size, align, vstart) {
                                return Some(p);
                            }
                            if get_subtree_max_size(va.rb_node.right()) >= length && vstart <= va.va_start {
                                node = rbtree::rb_right(p);
                                break;
                            }
                        }
                    }
                }
            }
            None
        }

        fn classify_va_fit_type(va: &Va, nva_start_addr: usize, size: usize) -> FitType {
            if nva_start_addr < va.va_start || nva_start_addr + size > va.va_end {
                return FitType::NothingFit;
            }
            if va.va_start == nva_start_addr {
                if va.va_end == nva_start_addr + size {
                    FitType::FlFitType
                } else {
                    FitType::LeFitType
                }
            } else if va.va_end == nva_start_addr + size {
                FitType::ReFitType
            } else {
                FitType::NeFitType
            }
        }

        /// # Safety
        /// `va` is in this tree.
        unsafe fn adjust_va_to_fit_type(&mut self, va: NonNull<Va>, nva_start_addr: usize, size: usize, ty: FitType) {
            let v = va.as_ptr();
            let mut lva = None;
            // SAFETY: `va` is a live node of this tree (caller).
            unsafe {
                match ty {
                    FitType::FlFitType => {
                        self.unlink_va(va);
                        self.kmem_cache_free(va);
                    }
                    FitType::LeFitType => (*v).va_start += size,
                    FitType::ReFitType => (*v).va_end = nva_start_addr,
                    FitType::NeFitType => {
                        lva = Some(self.kmem_cache_alloc((*v).va_start, nva_start_addr));
                        (*v).va_start = nva_start_addr + size;
                    }
                    FitType::NothingFit => unreachable!(),
                }
                if ty != FitType::FlFitType {
                    self.augment_tree_propagate_from(va);
                    if let Some(lva) = lva {
                        // insert_vmap_area_augment(lva, &va->rb_node, ...):
                        // the search from va ends in the one vacant slot
                        // for lva's range, the same the root's search finds.
                        let link = self.find_va_links(lva.as_ref().va_start, lva.as_ref().va_end);
                        self.link_va(lva, link);
                        self.augment_tree_propagate_from(lva);
                    }
                }
            }
        }

        /// The start address, or `vend` on failure.
        pub fn __alloc_vmap_area(&mut self, size: usize, align: usize, vstart: usize, vend: usize) -> usize {
            let Some(va) = self.find_vmap_lowest_match(size, align, vstart) else {
                return vend;
            };
            // SAFETY: a live node of this tree.
            let v = unsafe { va.as_ref() };
            let nva_start_addr = if v.va_start > vstart {
                (v.va_start + align - 1) & !(align - 1)
            } else {
                (vstart + align - 1) & !(align - 1)
            };
            // Check the "vend" restriction.
            if nva_start_addr + size > vend {
                return vend;
            }
            let ty = Self::classify_va_fit_type(v, nva_start_addr, size);
            if ty == FitType::NothingFit {
                return vend;
            }
            // SAFETY: as above.
            unsafe { self.adjust_va_to_fit_type(va, nva_start_addr, size, ty) };
            nva_start_addr
        }

        /// Give `[start, end)` back (free_vmap_area / the purge's merge).
        pub fn free(&mut self, start: usize, end: usize) {
            let va = self.kmem_cache_alloc(start, end);
            // SAFETY: a fresh node.
            unsafe { self.merge_or_add_vmap_area(va) };
        }

        /// Every `subtree_max_size` recomputed from scratch; the free ranges
        /// in order.
        pub fn check(&self) -> Vec<(usize, usize)> {
            /// # Safety
            /// `n` is `None` or a live node.
            unsafe fn walk(n: Option<NonNull<Va>>, out: &mut Vec<(usize, usize)>) -> usize {
                let Some(n) = n else { return 0 };
                // SAFETY: live nodes, live links.
                unsafe {
                    let l = walk(rbtree::rb_left(n), out);
                    let va = n.as_ref();
                    out.push((va.va_start, va.va_end));
                    let r = walk(rbtree::rb_right(n), out);
                    let max = va_size(va).max(l).max(r);
                    assert_eq!(va.subtree_max_size, max, "5.10 model: stale subtree_max_size");
                    max
                }
            }
            let mut out = Vec::new();
            // SAFETY: the root's nodes are live.
            unsafe { walk(self.root.root(), &mut out) };
            out
        }
    }

    impl Drop for FreeTree {
        fn drop(&mut self) {
            while let Some(va) = self.root.first() {
                // SAFETY: a node of this tree, freed once.
                unsafe {
                    self.root.rb_erase_augmented::<Cb>(va);
                    self.kmem_cache_free(va);
                }
            }
        }
    }
}

/// The tree's shape: (depth, start, end, colour) of every node, in order.
///
/// # Safety
///
/// `n` is `None` or a live node of a borrowed tree.
unsafe fn shape<T: RbEntry>(
    n: Option<NonNull<T>>,
    depth: usize,
    f: &dyn Fn(&T) -> (usize, usize, u8),
    out: &mut Vec<(usize, usize, usize, u8)>,
) {
    let Some(n) = n else { return };
    // SAFETY: live nodes and links (caller).
    unsafe {
        shape(rbtree::rb_left(n), depth + 1, f, out);
        let (s, e, c) = f(n.as_ref());
        out.push((depth, s, e, c));
        shape(rbtree::rb_right(n), depth + 1, f, out);
    }
}

/// What the search before this change did (lowest hole of at least
/// `size + align - min(align, PAGE_SIZE)`, else the lowest that fits at
/// all), to show the trace tells the two apart.
fn old_rule(free: &[(usize, usize)], size: usize, align: usize, vstart: usize, vend: usize) -> Option<usize> {
    let scan = |min: usize| {
        free.iter()
            .filter(|&&(s, e)| e - s >= min)
            .find_map(|&(s, e)| Model::fit(s, e, size, align, vstart, vend))
    };
    scan(size + align - align.min(P)).or_else(|| scan(size))
}

#[derive(Default, Debug)]
struct TraceStats {
    allocs: usize,
    failures: usize,
    frees: usize,
    purges: usize,
    /// Steps where the old search would have chosen another address.
    differs_from_old: usize,
}

/// Replay one random trace through [`__alloc_vmap_area`] /
/// [`merge_or_add_vmap_area`] and through the 5.10 transcription, asserting
/// the same address (or the same failure) at every step and the same tree,
/// node for node, after every step.
fn replay_trace(
    seed: u64,
    steps: usize,
    start: usize,
    end: usize,
    max_pages: usize,
    max_align_shift: usize,
) -> TraceStats {
    let mut rng = rng(seed);
    let mut a = TrackingAlloc::new();
    let mut ours = VmapAreaRoot::new_free();
    // SAFETY: a fresh node of `a`.
    unsafe { merge_or_add_vmap_area(&mut ours, a.node(start, end), &mut a).unwrap() };
    let mut linux = linux510::FreeTree::new(start, end);
    let mut busy: Vec<(usize, usize)> = Vec::new();
    // vmap_purge_list: pushed at the head, merged from the head (LIFO).
    let mut lazy: Vec<(usize, usize)> = Vec::new();
    let mut lazy_pages = 0;
    let lazy_max = (end - start) / P / 16;
    let mut st = TraceStats::default();
    let purge = |ours: &mut VmapAreaRoot,
                 linux: &mut linux510::FreeTree,
                 a: &mut TrackingAlloc,
                 lazy: &mut Vec<(usize, usize)>,
                 st: &mut TraceStats| {
        while let Some((s, e)) = lazy.pop() {
            // SAFETY: a fresh node of `a`.
            unsafe { merge_or_add_vmap_area(ours, a.node(s, e), a).unwrap() };
            linux.free(s, e);
        }
        st.purges += 1;
    };
    for step in 0..steps {
        let ctx = |what: &str| std::format!("seed {seed} step {step}: {what}");
        if busy.is_empty() || rng.chance(55) {
            let span = 1 + rng.below(max_pages);
            let pages = 1 + rng.below(span);
            let size = pages * P;
            // Unaligned (vmalloc's align 1), page-aligned, or aligned up
            // to PAGE_SIZE << max_align_shift.
            let align = match rng.below(10) {
                0..=2 => 1,
                3..=4 => P,
                _ => P << rng.below(max_align_shift + 1),
            };
            let vstart = if rng.chance(10) {
                start + rng.below((end - start) / P) * P
            } else {
                start
            };
            let vend = end;
            let mut retried = false;
            loop {
                let free_before: Vec<(usize, usize)> = ranges(&ours);
                let got = alloc_or_vend(&mut ours, size, align, vstart, vend, &mut a);
                let want = linux.__alloc_vmap_area(size, align, vstart, vend);
                assert_eq!(
                    got,
                    want,
                    "{}",
                    ctx(&std::format!(
                        "size {size:#x} align {align:#x} vstart {vstart:#x}: ours {got:#x}, 5.10 {want:#x}"
                    ))
                );
                let old = old_rule(&free_before, size, align, vstart, vend).unwrap_or(vend);
                if old != got {
                    st.differs_from_old += 1;
                }
                if got != vend {
                    busy.push((got, got + size));
                    st.allocs += 1;
                    break;
                }
                // alloc_vmap_area's overflow: purge, retry once.
                if retried {
                    st.failures += 1;
                    break;
                }
                purge(&mut ours, &mut linux, &mut a, &mut lazy, &mut st);
                lazy_pages = 0;
                retried = true;
            }
        } else {
            let (s, e) = busy.swap_remove(rng.below(busy.len()));
            st.frees += 1;
            if rng.chance(80) {
                // vfree: unmapped now, merged at the next purge.
                lazy.push((s, e));
                lazy_pages += (e - s) / P;
                if lazy_pages > lazy_max {
                    purge(&mut ours, &mut linux, &mut a, &mut lazy, &mut st);
                    lazy_pages = 0;
                }
            } else {
                // free_vmap_area: never mapped, straight back.
                // SAFETY: a fresh node of `a`.
                unsafe { merge_or_add_vmap_area(&mut ours, a.node(s, e), &mut a).unwrap() };
                linux.free(s, e);
            }
        }
        check_invariants(&ours).unwrap_or_else(|e| panic!("{}", ctx(&e.to_string())));
        assert_eq!(ranges(&ours), linux.check(), "{}", ctx("free ranges differ"));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        // SAFETY: both tops are live nodes of borrowed trees.
        unsafe {
            shape(
                ours.root.root(),
                0,
                &|va: &VmapArea| (va.va_start, va.va_end, va.rb_node.color()),
                &mut x,
            );
            shape(
                linux.top(),
                0,
                &|va: &linux510::Va| (va.va_start, va.va_end, va.rb_node.color()),
                &mut y,
            );
        }
        assert_eq!(x, y, "{}", ctx("tree shapes differ"));
        assert_eq!(a.live(), linux.nodes, "{}", ctx("node counts differ"));
    }
    release(&mut ours, &mut a);
    st
}

/// Item of issue 14: for aligned and unaligned requests, our
/// find_vmap_lowest_match + __alloc_vmap_area pick the address 5.10 picks.
#[test]
fn trace_replay_matches_linux_5_10() {
    let mut total = TraceStats::default();
    for seed in 1..=8u64 {
        // Small spaces fragment and exhaust (purge-and-retry, failures);
        // the real range brings alignments up to 1 GiB.
        let s = match seed % 3 {
            0 => replay_trace(seed, 4000, VMALLOC_START, VMALLOC_END, 256, 18),
            1 => replay_trace(seed, 4000, 0x4000_0000, 0x4000_0000 + 2048 * P, 32, 5),
            _ => replay_trace(seed, 4000, VMALLOC_START, VMALLOC_START + (1 << 28), 64, 8),
        };
        total.allocs += s.allocs;
        total.failures += s.failures;
        total.frees += s.frees;
        total.purges += s.purges;
        total.differs_from_old += s.differs_from_old;
    }
    std::println!("{total:?}");
    assert!(
        total.allocs > 10_000 && total.frees > 8_000 && total.purges > 0 && total.failures > 0,
        "{total:?}"
    );
    // The trace is discriminating: the previous search chose another
    // address for some of these requests.
    assert!(total.differs_from_old > 0, "{total:?}");
}

// ---- pcpu_get_vm_areas' search -----------------------------------------

/// The highest aligned base at which every area lies inside one free range
/// of `free` within [vstart, vend), by trying every candidate.
fn pcpu_base_brute_force(
    free: &[(usize, usize)],
    offsets: &[usize],
    sizes: &[usize],
    align: usize,
    vstart: usize,
    vend: usize,
) -> Option<usize> {
    let last_end = offsets.iter().zip(sizes).map(|(o, s)| o + s).max().unwrap();
    let lo = vstart.next_multiple_of(align);
    let hi = (vend & !(align - 1)).checked_sub(last_end)?;
    let mut base = hi & !(align - 1);
    loop {
        if base < lo {
            return None;
        }
        let fits = offsets
            .iter()
            .zip(sizes)
            .all(|(&o, &s)| free.iter().any(|&(fs, fe)| fs <= base + o && base + o + s <= fe));
        if fits {
            return Some(base);
        }
        base = base.checked_sub(align)?;
    }
}

#[test]
fn pvm_find_va_enclose_addr_and_end_from_reverse() {
    let mut alloc = TrackingAlloc::new();
    let root = free_tree(
        &mut alloc,
        &[(B, B + 4 * P), (B + 8 * P, B + 9 * P), (B + 16 * P, B + 32 * P)],
    );
    let start_of = |va: *mut VmapArea| {
        // SAFETY: non-null results are live nodes of `root`.
        (!va.is_null()).then(|| unsafe { (*va).va_start })
    };
    // SAFETY: `va` is null or a node of `root` (every call below).
    let end_from = |va: &mut *mut VmapArea, align, end| unsafe { pvm_determine_end_from_reverse(va, align, end) };
    assert_eq!(start_of(pvm_find_va_enclose_addr(&root, B - 1)), None);
    assert_eq!(start_of(pvm_find_va_enclose_addr(&root, B + 2 * P)), Some(B));
    // The end is included, as in Linux.
    assert_eq!(start_of(pvm_find_va_enclose_addr(&root, B + 4 * P)), Some(B));
    assert_eq!(start_of(pvm_find_va_enclose_addr(&root, B + 6 * P)), Some(B));
    assert_eq!(start_of(pvm_find_va_enclose_addr(&root, B + 40 * P)), Some(B + 16 * P));
    // From the top area down, 4-page aligned ends: 32 fits in the top one.
    let mut va = pvm_find_va_enclose_addr(&root, B + 40 * P);
    assert_eq!(end_from(&mut va, 4 * P, B + 64 * P), B + 32 * P);
    // From the one-page area: no 4-page aligned end with room there, so
    // the walk moves down to the first area.
    let mut va = pvm_find_va_enclose_addr(&root, B + 9 * P);
    assert_eq!(end_from(&mut va, 4 * P, B + 64 * P), B + 4 * P);
    assert_eq!(start_of(va), Some(B));
    // The end is capped at vmalloc_end.
    let mut va = pvm_find_va_enclose_addr(&root, B + 40 * P);
    assert_eq!(end_from(&mut va, P, B + 20 * P), B + 20 * P);
    let mut none = ptr::null_mut();
    assert_eq!(end_from(&mut none, P, B + 20 * P), 0);
    let mut root = root;
    release(&mut root, &mut alloc);
}

#[test]
fn pcpu_base_is_the_highest_congruent_fit() {
    let (vstart, vend) = (B, B + 1024 * P);
    // Hand-made: three 2-page areas 8 pages apart; the top free range is
    // too short for the whole group, so the group lands lower, congruent.
    let mut alloc = TrackingAlloc::new();
    let free = [
        (B, B + 100 * P),
        (B + 200 * P, B + 230 * P),
        (B + 1000 * P, B + 1010 * P),
    ];
    let mut root = free_tree(&mut alloc, &free);
    let (offsets, sizes) = ([0, 8 * P, 16 * P], [2 * P, 2 * P, 2 * P]);
    let base = pcpu_get_vm_areas_base(&root, &offsets, &sizes, P, vstart, vend);
    assert_eq!(base, Some(B + 212 * P));
    assert_eq!(base, pcpu_base_brute_force(&free, &offsets, &sizes, P, vstart, vend));
    // Nothing fits a group wider than every free range.
    assert_eq!(
        pcpu_get_vm_areas_base(&root, &[0, 200 * P], &[P, P], P, vstart, vend),
        pcpu_base_brute_force(&free, &[0, 200 * P], &[P, P], P, vstart, vend)
    );
    assert_eq!(pcpu_get_vm_areas_base(&root, &[0], &[101 * P], P, vstart, vend), None);
    release(&mut root, &mut alloc);

    // Random free spaces and groups against the brute force.
    let mut r = rng(0x9c9a);
    for round in 0..3000 {
        let mut free = Vec::new();
        let mut a = vstart + (r.next() % 8) as usize * P;
        while a < vend {
            let len = (1 + r.next() % 64) as usize * P;
            let e = (a + len).min(vend);
            free.push((a, e));
            a = e + (1 + r.next() % 32) as usize * P;
        }
        let align = P << (r.next() % 3);
        let nr = 1 + (r.next() % 4) as usize;
        let (mut offsets, mut sizes) = (Vec::new(), Vec::new());
        let mut off = 0;
        for _ in 0..nr {
            off += (r.next() % 8) as usize * align;
            let size = (1 + r.next() % 4) as usize * align;
            offsets.push(off);
            sizes.push(size);
            off += size;
        }
        // Any order of areas, as the per-CPU allocator may pass them.
        offsets.reverse();
        sizes.reverse();
        let mut root = free_tree(&mut alloc, &free);
        let got = pcpu_get_vm_areas_base(&root, &offsets, &sizes, align, vstart, vend);
        let want = pcpu_base_brute_force(&free, &offsets, &sizes, align, vstart, vend);
        assert_eq!(
            got, want,
            "round {round}: free {free:x?} offsets {offsets:x?} sizes {sizes:x?} align {align:#x}"
        );
        release(&mut root, &mut alloc);
    }
}

// ---- the purge's merge under the last node ------------------------------

/// The tree's shape with the augmentation.
fn shape_of(root: &VmapAreaRoot) -> Vec<(usize, usize, usize, u8, usize)> {
    let mut out = Vec::new();
    // SAFETY: the top is a live node of the borrowed tree.
    unsafe {
        shape(
            root.root.root(),
            0,
            &|va: &VmapArea| (va.va_start, va.va_end, va.rb_node.color()),
            &mut out,
        )
    };
    let sizes: Vec<usize> = root.iter().map(|va| va.subtree_max_size).collect();
    out.iter()
        .zip(sizes)
        .map(|(&(d, s, e, c), m)| (d, s, e, c, m))
        .collect()
}

#[test]
fn merge_below_the_last_node_matches_the_full_merge() {
    // Random free trees; then runs of adjacent ranges freed top-down (the
    // order of a purge list), some touching a free area below, some not
    // adjacent to the last one at all: merged with the hint into one tree
    // and by the full search into a copy, node for node the same.
    let mut r = rng(77);
    for round in 0..300 {
        let mut a = TrackingAlloc::new();
        let mut holes = Vec::new();
        let mut at = B;
        for _ in 0..(1 + r.below(40)) {
            at += PAGE_SIZE * (1 + r.below(8));
            let len = PAGE_SIZE * (1 + r.below(4));
            holes.push((at, at + len));
            at += len;
        }
        let mut fast = free_tree(&mut a, &holes);
        let mut full = free_tree(&mut a, &holes);
        // The busy gaps between the holes, each cut into pieces freed from
        // the top down; now and then a piece is skipped (freed later, out
        // of order) so that the hint does not touch.
        let mut pieces = Vec::new();
        for w in holes.windows(2) {
            let (mut s, e) = (w[0].1, w[1].0);
            let mut cuts = Vec::new();
            while s < e {
                let n = (PAGE_SIZE * (1 + r.below(3))).min(e - s);
                cuts.push((s, s + n));
                s += n;
            }
            cuts.reverse();
            pieces.extend(cuts);
        }
        let mut later = Vec::new();
        pieces.retain(|&p| {
            let keep = r.below(7) != 0;
            if !keep {
                later.push(p);
            }
            keep
        });
        pieces.extend(later);
        let mut last_fast: Option<NonNull<VmapArea>> = None;
        for (i, &(s, e)) in pieces.iter().enumerate() {
            let (v1, v2) = (a.node(s, e), a.node(s, e));
            // SAFETY: fresh nodes of `a`; the hints are nodes the previous
            // merge into the same tree returned, still linked.
            unsafe {
                let h1 = match last_fast {
                    Some(h) => merge_or_add_vmap_area_below(&mut fast, v1, &mut a, h),
                    None => merge_or_add_vmap_area(&mut fast, v1, &mut a),
                };
                last_fast = Some(h1.unwrap());
                merge_or_add_vmap_area(&mut full, v2, &mut a).unwrap();
            }
            assert_eq!(
                shape_of(&fast),
                shape_of(&full),
                "round {round}, piece {i} [{s:#x}, {e:#x})"
            );
            check_invariants(&fast).unwrap();
        }
        assert_eq!(
            ranges(&fast),
            vec![(holes[0].0, holes[holes.len() - 1].1)],
            "round {round}"
        );
        release(&mut fast, &mut a);
        release(&mut full, &mut a);
    }
}
