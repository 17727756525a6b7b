// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `memblock` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

//! Exact cases for the tricky overlaps, then a per-page bitmap model
//! checked against many random maps.

use super::*;
use std::string::ToString;
use std::vec::Vec;

const K: u64 = 0x1000;

fn ranges(m: &Memblock) -> Vec<(u64, u64)> {
    m.free_ranges().collect()
}

fn pairs(rs: &[Region]) -> Vec<(u64, u64)> {
    rs.iter().map(|r| (r.base, r.end())).collect()
}

#[test]
fn add_sorts_and_merges() {
    let mut m = Memblock::new();
    m.add(0x8000_0000, 0x1000_0000).unwrap();
    m.add(0x4000_0000, 0x1000_0000).unwrap();
    m.add(0x6000_0000, 0x1000_0000).unwrap();
    assert_eq!(
        pairs(m.memory()),
        [
            (0x4000_0000, 0x5000_0000),
            (0x6000_0000, 0x7000_0000),
            (0x8000_0000, 0x9000_0000)
        ]
    );
    // Touching on both sides bridges three regions into one.
    m.add(0x5000_0000, 0x1000_0000).unwrap();
    m.add(0x7000_0000, 0x1000_0000).unwrap();
    assert_eq!(pairs(m.memory()), [(0x4000_0000, 0x9000_0000)]);
    // Contained and overlapping adds change nothing / extend.
    m.add(0x4100_0000, 0x100).unwrap();
    m.add(0x8800_0000, 0x1000_0000).unwrap();
    assert_eq!(pairs(m.memory()), [(0x4000_0000, 0x9800_0000)]);
    assert_eq!(m.total_memory(), 0x5800_0000);
    assert_eq!(m.start_of_dram(), Some(0x4000_0000));
    assert_eq!(m.end_of_dram(), Some(0x9800_0000));
}

#[test]
fn reservations_subtracted_from_unsorted_banks() {
    let mut m = Memblock::new();
    // Banks out of order, with a hole between 0x50.. and 0x60...
    m.add(0x6000_0000, 0x1000_0000).unwrap();
    m.add(0x4000_0000, 0x1000_0000).unwrap();
    m.add(0x8000_0000, 0x1000_0000).unwrap();
    // Overlapping each other inside the first bank.
    m.reserve(0x4000_0000, 0x10_0000).unwrap();
    m.reserve(0x4008_0000, 0x10_0000).unwrap();
    // Straddling the end of bank 0 into the hole and the start of bank 1.
    m.reserve(0x4fff_0000, 0x1001_0000 + 0x2000).unwrap();
    // Covering a whole bank exactly.
    m.reserve(0x8000_0000, 0x1000_0000).unwrap();
    // Entirely outside RAM.
    m.reserve(0x1000, 0x1000).unwrap();
    m.reserve(0x1_0000_0000, 0x1000).unwrap();
    assert_eq!(
        pairs(m.reserved()),
        [
            (0x1000, 0x2000),
            (0x4000_0000, 0x4018_0000),
            (0x4fff_0000, 0x6000_2000),
            (0x8000_0000, 0x9000_0000),
            (0x1_0000_0000, 0x1_0000_1000)
        ]
    );
    assert_eq!(ranges(&m), [(0x4018_0000, 0x4fff_0000), (0x6000_2000, 0x7000_0000)]);
    let mut seen = Vec::new();
    m.for_each_free_range(|s, e| seen.push((s, e)));
    assert_eq!(seen, ranges(&m));
    assert_eq!(
        m.total_reserved_in_memory(),
        0x18_0000 + 0x1_0000 + 0x2000 + 0x1000_0000
    );
    assert_eq!(
        m.total_reserved(),
        0x1000 + 0x18_0000 + 0x1001_2000 + 0x1000_0000 + 0x1000
    );
    assert!(m.is_reserved(0x4017_ffff) && !m.is_reserved(0x4018_0000));
    assert!(m.is_memory(0x6000_0000) && !m.is_memory(0x5000_0000) && !m.is_memory(0x9000_0000));
    assert!(m.intersects_memory(0x4fff_f000, 0x2000) && !m.intersects_memory(0x5000_0000, 0x1000_0000));
    assert!(!m.intersects_memory(0x900_0000, 0x1000) && !m.intersects_memory(0x4000_0000, 0));
}

#[test]
fn reservation_spanning_several_banks_and_holes() {
    let mut m = Memblock::new();
    for i in 0..4 {
        m.add(i * 0x10 * K, 4 * K).unwrap();
    }
    m.reserve(2 * K, 0x21 * K).unwrap();
    assert_eq!(ranges(&m), [(0, 2 * K), (0x23 * K, 0x24 * K), (0x30 * K, 0x34 * K)]);
    let mut none = Memblock::new();
    none.add(0, 4 * K).unwrap();
    none.reserve(0, 4 * K).unwrap();
    assert_eq!(ranges(&none), []);
    assert_eq!(none.total_reserved_in_memory(), 4 * K);
}

#[test]
fn phys_alloc_is_top_down_and_aligned() {
    let mut m = Memblock::new();
    m.add(0x4000_0000, 0x100_0000).unwrap();
    m.add(0x5000_0000, 0x10_0000).unwrap();
    m.reserve(0x500f_f000, 0x1000).unwrap();
    // Highest free range is [0x5000_0000, 0x500f_f000).
    assert_eq!(m.phys_alloc(K, K), Some(0x500f_e000));
    assert_eq!(m.phys_alloc(K, K), Some(0x500f_d000));
    // 64 KiB alignment rounds down within the range.
    assert_eq!(m.phys_alloc(0x100, 0x1_0000), Some(0x500f_0000));
    assert!(m.is_reserved(0x500f_00ff) && !m.is_reserved(0x500f_0100));
    // Too big for the high bank: falls to the lower one, at its top.
    assert_eq!(m.phys_alloc(0x20_0000, 0x20_0000), Some(0x40e0_0000));
    // Range-limited allocation stays below the limit.
    assert_eq!(m.phys_alloc_range(K, K, 0, 0x4080_0000), Some(0x407f_f000));
    assert_eq!(m.phys_alloc_range(K, K, 0x4800_0000, 0x4900_0000), None);
    // Bad arguments.
    assert_eq!(m.phys_alloc(0, K), None);
    assert_eq!(m.phys_alloc(K, 3), None);
    assert_eq!(m.phys_alloc(K, 0), None);
    // Undo one allocation.
    m.free(0x500f_e000, K).unwrap();
    assert_eq!(m.phys_alloc(K, K), Some(0x500f_e000));
}

#[test]
fn phys_alloc_exhaustion() {
    let mut m = Memblock::new();
    m.add(0, 8 * K).unwrap();
    m.reserve(3 * K, K).unwrap();
    let mut got = Vec::new();
    while let Some(a) = m.phys_alloc(K, K) {
        got.push(a);
    }
    assert_eq!(got, [7 * K, 6 * K, 5 * K, 4 * K, 2 * K, K, 0]);
    assert_eq!(ranges(&m), []);
    assert_eq!(m.phys_alloc(1, 1), None);
    assert_eq!(pairs(m.reserved()), [(0, 8 * K)]);
    let mut small = Memblock::new();
    small.add(0, 3 * K).unwrap();
    assert_eq!(small.phys_alloc(4 * K, K), None);
    // [0, 12K): the top-most 16 KiB-aligned 8 KiB block is at 0 ...
    assert_eq!(small.phys_alloc(2 * K, 4 * K), Some(0));
    // ... and [8K, 12K) holds no 16 KiB-aligned page.
    assert_eq!(small.phys_alloc(K, 4 * K), None);
}

#[test]
fn errors_and_limits() {
    let mut m = Memblock::new();
    let e = m.add(0x4000_0000, 0).unwrap_err();
    assert_eq!(
        e,
        MemblockError::ZeroSize {
            kind: RegionKind::Memory,
            base: 0x4000_0000
        }
    );
    assert!(e.to_string().contains("0x40000000"));
    let e = m.reserve(u64::MAX - 0xfff, 0x1000).unwrap_err();
    assert_eq!(
        e,
        MemblockError::Overflow {
            kind: RegionKind::Reserved,
            base: u64::MAX - 0xfff,
            size: 0x1000
        }
    );
    assert!(e.to_string().contains("0xfffffffffffff000") && e.to_string().contains("0x1000"));
    // The top page itself is fine: end == 2^64 - 1 is representable.
    m.add(u64::MAX - 0xfff, 0xfff).unwrap();

    let mut m = Memblock::new();
    for i in 0..MAX_REGIONS as u64 {
        m.add(i * 2 * K, K).unwrap();
    }
    let e = m.add(0x1000_0000, K).unwrap_err();
    assert!(matches!(
        e,
        MemblockError::TooManyRegions {
            kind: RegionKind::Memory,
            limit: MAX_REGIONS,
            ..
        }
    ));
    assert!(e.to_string().contains("128"), "{}", e);
    // Merging needs no new slot, so it still works when full.
    m.add(K, K).unwrap();
    assert_eq!(m.memory().len(), MAX_REGIONS - 1);
    assert_eq!(m.memory()[0], Region::new(0, 3 * K));
    // Splitting does need one.
    m.add(0x1000_0000, K).unwrap();
    let e = m.remove(0x1000, 0x800).unwrap_err();
    assert!(matches!(e, MemblockError::TooManyRegions { .. }));
}

#[test]
fn remove_and_free_split_and_trim() {
    let mut m = Memblock::new();
    m.add(0, 16 * K).unwrap();
    m.add(32 * K, 16 * K).unwrap();
    m.remove(4 * K, 4 * K).unwrap(); // split
    m.remove(14 * K, 20 * K).unwrap(); // trims two regions across the hole
    assert_eq!(pairs(m.memory()), [(0, 4 * K), (8 * K, 14 * K), (34 * K, 48 * K)]);
    m.remove(100 * K, K).unwrap(); // nothing there
    m.remove(0, 100 * K).unwrap();
    assert_eq!(m.memory(), []);
}

#[test]
fn dump_matches_linux_format() {
    let mut m = Memblock::new();
    m.add(0x4000_0000, 0x4000_0000).unwrap();
    m.reserve(0x4008_0000, 0x12_0000).unwrap();
    let expected = "MEMBLOCK configuration:\n \
        memory size = 0x0000000040000000 reserved size = 0x0000000000120000\n \
        memory.cnt  = 0x1\n \
        memory[0x0]\t[0x0000000040000000-0x000000007fffffff], 0x0000000040000000 bytes flags: 0x0\n \
        reserved.cnt  = 0x1\n \
        reserved[0x0]\t[0x0000000040080000-0x000000004019ffff], 0x0000000000120000 bytes flags: 0x0\n";
    assert_eq!(m.to_string(), expected);
}

// ------------------------------------------------------------ model

use crate::lib::rand::XorShift64Star as XorShift;

/// Pages in the modelled address space.
const PAGES: usize = 512;

/// Maximal runs of `true` as byte ranges.
fn runs(bits: &[bool]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bits.len() {
        if bits[i] {
            let s = i;
            while i < bits.len() && bits[i] {
                i += 1;
            }
            out.push((s as u64 * K, i as u64 * K));
        } else {
            i += 1;
        }
    }
    out
}

fn mark(bits: &mut [bool], base: u64, size: u64) {
    for p in base / K..(base + size) / K {
        bits[p as usize] = true;
    }
}

#[test]
fn free_ranges_match_page_bitmap_model() {
    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    for case in 0..3000 {
        let mut m = Memblock::new();
        let mut mem = [false; PAGES];
        let mut res = [false; PAGES];
        let random_range = |rng: &mut XorShift| {
            let base = rng.below(PAGES) as u64;
            // Mostly short ranges, sometimes long ones.
            let max_len = if rng.below(4) == 0 { PAGES as u64 } else { 24 };
            let len = 1 + rng.below(max_len as usize) as u64;
            (base * K, min(len, PAGES as u64 - base) * K)
        };
        for _ in 0..1 + rng.below(12) {
            let (b, s) = random_range(&mut rng);
            m.add(b, s).unwrap();
            mark(&mut mem, b, s);
        }
        for _ in 0..rng.below(20) {
            let (b, s) = random_range(&mut rng);
            m.reserve(b, s).unwrap();
            mark(&mut res, b, s);
        }
        let free: Vec<bool> = (0..PAGES).map(|p| mem[p] && !res[p]).collect();
        assert_eq!(pairs(m.memory()), runs(&mem), "case {}", case);
        assert_eq!(pairs(m.reserved()), runs(&res), "case {}", case);
        assert_eq!(ranges(&m), runs(&free), "case {}: {:?}", case, m);
        let in_mem = (0..PAGES).filter(|&p| mem[p] && res[p]).count() as u64 * K;
        assert_eq!(m.total_reserved_in_memory(), in_mem, "case {}", case);
        assert_eq!(m.total_memory(), mem.iter().filter(|&&b| b).count() as u64 * K);

        // A few allocations: each must be the highest aligned free fit.
        let mut free = free;
        for _ in 0..rng.below(6) {
            let pages = 1 + rng.below(8);
            let align_pages = 1usize << rng.below(4);
            let want = (0..=PAGES.saturating_sub(pages))
                .rev()
                .filter(|p| p % align_pages == 0)
                .find(|&p| free[p..p + pages].iter().all(|&f| f));
            let got = m.phys_alloc(pages as u64 * K, align_pages as u64 * K);
            assert_eq!(
                got,
                want.map(|p| p as u64 * K),
                "case {}: alloc {} pages align {}",
                case,
                pages,
                align_pages
            );
            if let Some(p) = want {
                free[p..p + pages].iter_mut().for_each(|f| *f = false);
            }
            assert_eq!(ranges(&m), runs(&free), "case {} after alloc", case);
        }
    }
}

#[test]
fn page_trim_rounds_inward_and_drops_empty() {
    assert_eq!(
        page_trim(0x4000_0000, 0x1000_0000, K),
        Some(Region::new(0x4000_0000, 0x1000_0000))
    );
    // The unaligned bank of the corpus: start up, end down.
    assert_eq!(
        page_trim(0x4000_0800, 0x1000_0000, K),
        Some(Region::new(0x4000_1000, 0xfff_f000))
    );
    assert_eq!(
        page_trim(0x4000_0000, 0x1000_0123, K),
        Some(Region::new(0x4000_0000, 0x1000_0000))
    );
    assert_eq!(page_trim(0x4000_0001, 0xfff, K), None);
    assert_eq!(page_trim(0x4000_0001, 0x1fff, K), Some(Region::new(0x4000_1000, K)));
    assert_eq!(page_trim(0x4000_0000, 0xfff, K), None);
    assert_eq!(page_trim(u64::MAX - 5, 5, K), None);
}

/// Overlapping and touching banks (as two overlapping memory nodes give)
/// end up as one memblock region and one zone range; banks on two NUMA
/// nodes that touch stay two zone ranges.
#[test]
fn zone_ranges_follow_merged_memblock_and_numa() {
    use crate::drivers::of::fdt::MemBank;
    let bank = |base, size, node| MemBank {
        region: Region::new(base, size),
        numa_node: node,
    };
    let banks = [
        bank(0x5000_0000, 0x2000_0000, None),
        bank(0x4000_0000, 0x2000_0000, None),
        bank(0x7000_0000, 0x1000_0000, None),
    ];
    let mut m = Memblock::new();
    for b in &banks {
        m.add(b.region.base, b.region.size).unwrap();
    }
    assert_eq!(pairs(m.memory()), [(0x4000_0000, 0x8000_0000)]);
    assert_eq!(
        zone_ranges(m.memory(), &banks, 16),
        [bank(0x4000_0000, 0x4000_0000, None)]
    );

    let numa = [
        bank(0x8000_0000, 0x4000_0000, Some(1)),
        bank(0x4000_0000, 0x4000_0000, Some(0)),
    ];
    let mut m = Memblock::new();
    for b in &numa {
        m.add(b.region.base, b.region.size).unwrap();
    }
    assert_eq!(m.memory().len(), 1);
    assert_eq!(
        zone_ranges(m.memory(), &numa, 16),
        [
            bank(0x4000_0000, 0x4000_0000, Some(0)),
            bank(0x8000_0000, 0x4000_0000, Some(1))
        ]
    );

    // A hole between two banks stays a hole; trimmed edges are respected.
    let holes = [
        bank(0x4000_0800, 0x1000_0000, None),
        bank(0x6000_0000, 0x1000_0000, None),
    ];
    let mut m = Memblock::new();
    for b in &holes {
        let r = page_trim(b.region.base, b.region.size, K).unwrap();
        m.add(r.base, r.size).unwrap();
    }
    assert_eq!(
        zone_ranges(m.memory(), &holes, 16),
        [
            bank(0x4000_1000, 0xfff_f000, None),
            bank(0x6000_0000, 0x1000_0000, None)
        ]
    );
}

/// 40 banks with holes into 16 zones: the smallest holes are spanned
/// first, nodes never mix, and every bank stays inside a zone.
#[test]
fn zone_ranges_span_holes_beyond_max_zones() {
    use crate::drivers::of::fdt::MemBank;
    let banks: Vec<MemBank> = (0..40u64)
        .map(|i| MemBank {
            region: Region::new(
                0x4000_0000 + i * 0x100_0000 + if i >= 20 { 0x1000_0000 } else { 0 },
                0xc0_0000,
            ),
            numa_node: Some((i >= 20) as u32),
        })
        .collect();
    let mut m = Memblock::new();
    for b in &banks {
        m.add(b.region.base, b.region.size).unwrap();
    }
    let z = zone_ranges(m.memory(), &banks, 16);
    assert_eq!(z.len(), 16);
    assert!(z.windows(2).all(|w| w[0].region.end() <= w[1].region.base));
    for b in &banks {
        let zone = z.iter().find(|r| r.region.contains(b.region.base)).unwrap();
        assert!(zone.region.end() >= b.region.end() && zone.numa_node == b.numa_node);
    }
    // Two nodes only: at most two zones if asked for two.
    let z = zone_ranges(m.memory(), &banks, 2);
    assert_eq!(z.len(), 2);
    assert_eq!(z[0].region, Region::new(0x4000_0000, 19 * 0x100_0000 + 0xc0_0000));
}

/// Linux's INIT_MEMBLOCK_REGIONS: 40 disjoint banks and 100 disjoint
/// reservations fit (the old limit was 64).
#[test]
fn room_for_linux_init_memblock_regions() {
    let mut m = Memblock::new();
    for i in 0..40 {
        m.add(0x4000_0000 + i * 0x100_0000, 0x80_0000).unwrap();
    }
    for i in 0..100 {
        m.reserve(0x4000_0000 + i * 2 * K, K).unwrap();
    }
    assert_eq!((m.memory().len(), m.reserved().len()), (40, 100));
}

#[test]
fn mark_nomap_reserves_and_is_queryable() {
    let mut m = Memblock::new();
    m.add(0x4000_0000, 0x4000_0000).unwrap();
    m.mark_nomap(0x4800_0000, 0x10_0000).unwrap();
    m.mark_nomap(0x4810_0000, 0x1000).unwrap(); // touching: merged
    assert_eq!(m.nomap(), &[Region::new(0x4800_0000, 0x10_1000)]);
    assert!(m.is_nomap(0x4800_0000) && m.is_nomap(0x4810_0fff));
    assert!(!m.is_nomap(0x47ff_ffff) && !m.is_nomap(0x4810_1000));
    // The page allocator's source skips it, and so does phys_alloc.
    let free: Vec<(u64, u64)> = m.free_ranges().collect();
    assert_eq!(free, vec![(0x4000_0000, 0x4800_0000), (0x4810_1000, 0x8000_0000)]);
    while let Some(a) = m.phys_alloc(0x100_0000, 0x1000) {
        assert!(a + 0x100_0000 <= 0x4800_0000 || a >= 0x4810_1000, "got {:#x}", a);
    }
    // Still RAM: NOMAP memory is not removed.
    assert!(m.is_memory(0x4800_0000));
    assert!(matches!(
        m.mark_nomap(0x1000, 0),
        Err(MemblockError::ZeroSize {
            kind: RegionKind::Nomap,
            ..
        })
    ));
}
