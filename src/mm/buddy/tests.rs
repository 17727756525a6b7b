// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `buddy` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

use super::*;
use crate::kernel::locking::spinlock::SpinLock;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use std::collections::BTreeMap;

/// A zone over a leaked Vec<Page> (tests only; the memory is never freed).
fn zone(start_pfn: usize, spanned: usize) -> Zone {
    let mem: &'static mut [Page] = vec![Page::RESERVED; spanned].leak();
    // SAFETY: the leaked slice holds `spanned` initialised, aligned Pages,
    // lives forever and is reachable only through the zone.
    unsafe { Zone::new(start_pfn, spanned, mem.as_mut_ptr(), 0) }
}

fn counts(z: &Zone) -> [usize; MAX_ORDER] {
    core::array::from_fn(|o| z.nr_free(o))
}

/// Everything a rejected operation must leave untouched.
fn snapshot(z: &Zone) -> (Vec<Page>, [FreeArea; MAX_ORDER], usize, usize) {
    let pages = (z.start_pfn()..z.end_pfn()).map(|p| *z.page(p).unwrap()).collect();
    (pages, z.free_area, z.free_count(), z.managed())
}

#[test]
fn page_is_16_bytes() {
    assert_eq!(core::mem::size_of::<Page>(), 16);
    assert_eq!(Zone::mem_map_bytes(262144), 4 << 20);
}

#[test]
fn free_range_unaligned_counts_and_merges() {
    let mut z = zone(0x40000, 2048);
    z.free_range(0x40003, 0x40403).unwrap();
    // 0x40003 o0, 0x40004 o2, 0x40008 o3 ... 0x40200 o9, 0x40400 o1, 0x40402 o0.
    assert_eq!(counts(&z), [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    assert_eq!((z.free_count(), z.managed()), (1024, 1024));
    z.check().unwrap();

    // Filling the hole merges everything up to one order-10 block.
    z.free_range(0x40000, 0x40003).unwrap();
    assert_eq!(counts(&z), [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(z.free_count(), 1027);
    z.check().unwrap();

    z.free_range(0x40403, 0x40800).unwrap();
    assert_eq!(counts(&z), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    assert_eq!((z.free_count(), z.managed()), (2048, 2048));
    z.check().unwrap();
}

#[test]
fn buddies_outside_the_zone_never_merge() {
    // Zone [0x40001, 0x403e9): 1000 pages, unaligned at both ends.
    let mut z = zone(0x40001, 1000);
    z.free_range(0x40001, 0x403e9).unwrap();
    // o0 @1, o1 @2, o2 @4, o3 @8, o4 @0x10, o5 @0x20, o6 @0x40, o7 @0x80,
    // o8 @0x100 (buddy @0 outside), o8 @0x200, o7 @0x300, o6 @0x380,
    // o5 @0x3c0, o3 @0x3e0, o0 @0x3e8 (buddy @0x3e9 outside).
    assert_eq!(counts(&z), [2, 1, 1, 2, 1, 2, 2, 2, 2, 0, 0]);
    assert_eq!(z.free_count(), 1000);
    z.check().unwrap();
}

#[test]
fn alloc_free_every_order_restores_counts() {
    let mut z = zone(0x40001, 1000);
    z.free_range(0x40001, 0x403e9).unwrap();
    let before = counts(&z);
    for order in 0..MAX_ORDER {
        match z.alloc_pages(order) {
            Some(pfn) => {
                assert_eq!(pfn & ((1 << order) - 1), 0, "order {order} misaligned");
                assert!(z.contains(pfn) && z.contains(pfn + (1 << order) - 1));
                assert_eq!(z.free_count(), 1000 - (1 << order));
                z.check().unwrap();
                z.free_pages(pfn, order).unwrap();
            }
            None => assert!(order >= 9, "order {order} should fit"),
        }
        z.check().unwrap();
        assert_eq!(counts(&z), before, "order {order}");
        assert_eq!(z.free_count(), 1000);
    }
    // Exhaust each order, free everything in reverse: same state again.
    for order in 0..MAX_ORDER {
        let mut got = Vec::new();
        while let Some(pfn) = z.alloc_pages(order) {
            got.push(pfn);
        }
        assert!((order..MAX_ORDER).all(|o| z.nr_free(o) == 0));
        z.check().unwrap();
        for &pfn in got.iter().rev() {
            z.free_pages(pfn, order).unwrap();
        }
        z.check().unwrap();
        assert_eq!(counts(&z), before, "order {order}");
    }
}

#[test]
fn split_and_merge() {
    let mut z = zone(0x40000, 1024);
    z.free_range(0x40000, 0x40400).unwrap();
    assert_eq!(counts(&z), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

    // Splitting an order-10 block leaves one block of every lower order.
    assert_eq!(z.alloc_pages(0), Some(0x40000));
    assert_eq!(counts(&z), [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    assert_eq!(z.alloc_pages(0), Some(0x40001));
    assert_eq!(counts(&z), [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    assert_eq!(z.alloc_pages(3), Some(0x40008));
    assert_eq!(counts(&z), [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]);
    z.check().unwrap();

    z.free_pages(0x40000, 0).unwrap();
    assert_eq!(counts(&z), [1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]);
    // 0x40001 comes back: 0+1 -> o1, +2 -> o2, +4 -> o3, then stops at
    // 0x40008 which is still allocated.
    z.free_pages(0x40001, 0).unwrap();
    assert_eq!(counts(&z), [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]);
    z.check().unwrap();
    z.free_pages(0x40008, 3).unwrap();
    assert_eq!(counts(&z), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(z.free_count(), 1024);
    z.check().unwrap();
}

#[test]
fn exhaustion_returns_none() {
    let mut z = zone(0x40000, 1024);
    assert_eq!(z.alloc_pages(0), None, "nothing released yet");
    z.free_range(0x40000, 0x40400).unwrap();
    assert_eq!(z.alloc_pages(MAX_ORDER), None);
    let big = z.alloc_pages(10).unwrap();
    assert_eq!(z.alloc_pages(0), None);
    assert_eq!(z.free_count(), 0);
    z.free_pages(big, 10).unwrap();
    let mut n = 0;
    while z.alloc_pages(0).is_some() {
        n += 1;
    }
    assert_eq!(n, z.managed());
    assert_eq!(z.alloc_pages(1), None);
    z.check().unwrap();
}

#[test]
fn bad_frees_are_detected_and_change_nothing() {
    let mut z = zone(0x40000, 1024);
    z.free_range(0x40000, 0x40200).unwrap(); // 0x40200.. stays reserved
    let a = z.alloc_pages(2).unwrap();
    let b = z.alloc_pages(0).unwrap();
    z.free_pages(b, 0).unwrap();
    let snap = snapshot(&z);
    let cases = [
        (b, 0, BuddyError::DoubleFree { pfn: b, order: 0 }),
        (a, 11, BuddyError::BadOrder { order: 11 }),
        (a + 1, 2, BuddyError::Misaligned { pfn: a + 1, order: 2 }),
        (
            a,
            1,
            BuddyError::OrderMismatch {
                pfn: a,
                order: 1,
                allocated_order: 2,
            },
        ),
        (
            a,
            3,
            BuddyError::OrderMismatch {
                pfn: a,
                order: 3,
                allocated_order: 2,
            },
        ),
        (a + 2, 1, BuddyError::NotAllocated { pfn: a + 2 }),
        (a + 3, 0, BuddyError::NotAllocated { pfn: a + 3 }),
        (0x40100, 0, BuddyError::DoubleFree { pfn: 0x40100, order: 0 }), // head of a free block
        (0x40101, 0, BuddyError::DoubleFree { pfn: 0x40101, order: 0 }), // inside a free block
        (0x40300, 0, BuddyError::Reserved { pfn: 0x40300 }),
        (0x40200, 9, BuddyError::Reserved { pfn: 0x40200 }),
        (0x3ffff, 0, BuddyError::NotInZone { pfn: 0x3ffff }),
        (0x40400, 0, BuddyError::NotInZone { pfn: 0x40400 }),
    ];
    for (pfn, order, err) in cases {
        assert_eq!(z.free_pages(pfn, order), Err(err), "free({pfn:#x}, {order})");
        assert!(snapshot(&z) == snap, "free({pfn:#x}, {order}) changed state");
        z.check().unwrap();
    }
    // Releasing twice or outside the zone is caught as well.
    assert_eq!(
        z.free_range(0x401ff, 0x40201),
        Err(BuddyError::DoubleFree { pfn: 0x401ff, order: 0 })
    );
    assert_eq!(
        z.free_range(0x40300, 0x40401),
        Err(BuddyError::NotInZone { pfn: 0x40400 })
    );
    assert_eq!(
        z.free_range(0x3ff00, 0x40001),
        Err(BuddyError::NotInZone { pfn: 0x3ff00 })
    );
    assert!(snapshot(&z) == snap);
    z.free_pages(a, 2).unwrap();
    assert_eq!(z.free_pages(a, 2), Err(BuddyError::DoubleFree { pfn: a, order: 2 }));
    z.check().unwrap();
    assert_eq!(z.free_count(), 512);
}

#[test]
fn error_messages_carry_values() {
    let e = BuddyError::Misaligned { pfn: 0x40001, order: 2 };
    assert_eq!(alloc::format!("{e}"), "pfn 0x40001 is not aligned for an order-2 block");
    let e = BuddyError::DoubleFree { pfn: 0x40000, order: 3 };
    assert_eq!(
        alloc::format!("{e}"),
        "double free: order-3 block at pfn 0x40000 is already free"
    );
}

#[test]
fn buddyinfo_matches_linux_format() {
    let mut z = zone(0x40001, 1000).with_name("DMA");
    z.free_range(0x40001, 0x403e9).unwrap();
    let mut s = String::new();
    z.buddyinfo(&mut s).unwrap();
    // printf("Node %d, zone %8s ", 0, "DMA"); printf("%6lu ", n) x 11; "\n"
    assert_eq!(
        s,
        "Node 0, zone      DMA      2      1      1      2      1      2      2      2      2      0      0 \n"
    );

    let mut z = zone(0x80000, 4096);
    z.free_range(0x80000, 0x81000).unwrap();
    for _ in 0..3 {
        z.alloc_pages(0).unwrap();
    }
    let mut s = String::new();
    z.buddyinfo(&mut s).unwrap();
    assert_eq!(
        s,
        "Node 0, zone   Normal      1      0      1      1      1      1      1      1      1      1      3 \n"
    );
}

/// Seeded PRNG so failures reproduce.
use crate::lib::rand::XorShift64Star as XorShift;

#[test]
fn randomized_against_model() {
    randomized(None);
}

/// The same with the per-cpu list on (a small high watermark, so the
/// refills and drains happen often).
#[test]
fn randomized_against_model_with_pcp() {
    randomized(Some((12, 5)));
}

fn randomized(pcp: Option<(usize, usize)>) {
    let (start, spanned) = (0x40013, 1500);
    let mut z = zone(start, spanned);
    if let Some((high, batch)) = pcp {
        z.set_pcp(high, batch);
    }
    // Two released ranges with a reserved hole between them.
    z.free_range(start + 5, start + 700).unwrap();
    z.free_range(start + 760, start + spanned - 3).unwrap();
    let managed = z.managed();
    assert_eq!(managed, 695 + 737);

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut model: BTreeMap<usize, usize> = BTreeMap::new(); // pfn -> order
    let mut allocated = 0usize;
    let mut freed_recently: Vec<(usize, usize)> = Vec::new();
    for op in 0..100_000 {
        let r = rng.below(100);
        if r < 50 || model.is_empty() {
            // Small orders dominate, as in a real kernel.
            let order = match rng.below(10) {
                0..=5 => 0,
                6 | 7 => rng.below(3),
                _ => rng.below(MAX_ORDER),
            };
            match z.alloc_pages(order) {
                Some(pfn) => {
                    let end = pfn + (1 << order);
                    assert_eq!(pfn & ((1 << order) - 1), 0);
                    assert!(pfn >= start && end <= start + spanned, "op {op}");
                    assert!(!(start + 700..start + 760).contains(&pfn), "op {op}: reserved hole");
                    if let Some((&p, &o)) = model.range(..end).next_back() {
                        assert!(p + (1 << o) <= pfn, "op {op}: overlap with {p:#x}");
                    }
                    model.insert(pfn, order);
                    allocated += 1 << order;
                }
                None => assert!((order..MAX_ORDER).all(|o| z.nr_free(o) == 0), "op {op}"),
            }
        } else if r < 95 {
            let k = rng.below(model.len());
            let (&pfn, &order) = model.iter().nth(k).unwrap();
            z.free_pages(pfn, order).unwrap();
            model.remove(&pfn);
            allocated -= 1 << order;
            freed_recently.push((pfn, order));
            if freed_recently.len() > 16 {
                freed_recently.remove(0);
            }
        } else {
            // A bogus free: a stale block (unless reallocated since), a
            // tail page or a wrong order. Must fail and change nothing.
            let before = (counts(&z), z.free_count());
            let (pfn, order) = match rng.below(3) {
                0 if !freed_recently.is_empty() => freed_recently[rng.below(freed_recently.len())],
                1 => {
                    let (&p, &o) = model.iter().nth(rng.below(model.len())).unwrap();
                    (p, (o + 1 + rng.below(MAX_ORDER - 1)) % MAX_ORDER)
                }
                _ => {
                    let (&p, &o) = model.iter().nth(rng.below(model.len())).unwrap();
                    (p + 1 + rng.below(1 << o), 0)
                }
            };
            if model.get(&pfn) != Some(&order) {
                assert!(
                    z.free_pages(pfn, order).is_err(),
                    "op {op}: bogus free({pfn:#x}, {order}) accepted"
                );
                assert_eq!((counts(&z), z.free_count()), before, "op {op}");
            }
        }
        assert_eq!(z.free_count() + allocated, managed, "op {op}");
        if let Err(e) = z.check() {
            panic!("op {op}: {e}");
        }
    }
    for (pfn, order) in core::mem::take(&mut model) {
        z.free_pages(pfn, order).unwrap();
    }
    z.check().unwrap();
    assert_eq!(z.free_count(), managed);
    // Drained, the buddy lists hold everything, fully merged: the same
    // blocks as releasing the two ranges into a fresh zone.
    z.drain_pages();
    z.check().unwrap();
    let mut fresh = zone(start, spanned);
    fresh.free_range(start + 5, start + 700).unwrap();
    fresh.free_range(start + 760, start + spanned - 3).unwrap();
    assert_eq!(counts(&z), counts(&fresh));
}

#[test]
fn zone_batchsize_as_linux_5_10() {
    assert_eq!(zone_batchsize(262144), 31); // 1 GiB
    assert_eq!(zone_batchsize(260608), 31);
    assert_eq!(zone_batchsize(32768), 7); // 128 MiB: 32 / 4 = 8 -> 12 -> 8 - 1
    // 16 MiB: 4 / 4 = 1 -> 1 -> 1 - 1 = 0, a high watermark of 0: off.
    assert_eq!(zone_batchsize(4096), 0);
    assert_eq!(zone_batchsize(1 << 30), 31); // capped at 512 KiB worth
}

#[test]
fn pcp_cycles_single_pages_without_touching_the_buddy_lists() {
    let mut z = zone(0x1000, 256);
    z.free_range(0x1000, 0x1100).unwrap();
    z.set_pcp(8, 3);
    let fresh = counts(&z);
    // The first order-0 allocation refills `batch` pages.
    let a = z.alloc_pages(0).unwrap();
    assert_eq!(z.pcp().count(), 2);
    assert_eq!(z.free_count(), 255);
    z.check().unwrap();
    let after_refill = counts(&z);
    // Free and allocate again: the same page comes back (LIFO) and the
    // buddy lists do not change.
    z.free_pages(a, 0).unwrap();
    assert_eq!(z.pcp().count(), 3);
    assert_eq!(z.free_count(), 256);
    assert_eq!(z.alloc_pages(0), Some(a));
    assert_eq!(counts(&z), after_refill);
    // A page on the per-cpu list cannot be freed again.
    z.free_pages(a, 0).unwrap();
    let before = (counts(&z), z.free_count(), z.pcp());
    assert_eq!(z.free_pages(a, 0), Err(BuddyError::DoubleFree { pfn: a, order: 0 }));
    assert_eq!((counts(&z), z.free_count(), z.pcp()), before);
    // Higher orders bypass the list.
    let b = z.alloc_pages(2).unwrap();
    assert_eq!(z.pcp().count(), 3);
    z.free_pages(b, 2).unwrap();
    // Filling the list to `high` drains the oldest `batch` pages.
    let pages: Vec<usize> = (0..6).map(|_| z.alloc_pages(0).unwrap()).collect();
    assert_eq!(z.pcp().count(), 0);
    for &p in &pages {
        z.free_pages(p, 0).unwrap();
        assert!(z.pcp().count() < 8);
        z.check().unwrap();
    }
    assert_eq!(z.free_count(), 256);
    z.drain_pages();
    assert_eq!(z.pcp().count(), 0);
    assert_eq!(counts(&z), fresh);
    z.check().unwrap();
}

#[test]
fn pcp_refill_takes_what_is_left_and_off_drains() {
    let mut z = zone(0x2000, 4);
    z.free_range(0x2000, 0x2004).unwrap();
    z.set_pcp(60, 10);
    let got: Vec<usize> = core::iter::from_fn(|| z.alloc_pages(0)).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(z.free_count(), 0);
    z.check().unwrap();
    for &p in &got {
        z.free_pages(p, 0).unwrap();
    }
    assert_eq!(z.pcp().count(), 4);
    assert_eq!(z.nr_free(2), 0);
    // Turning the list off gives its pages back.
    z.set_pcp(0, 0);
    assert_eq!(z.pcp().count(), 0);
    assert_eq!(z.nr_free(2), 1);
    z.check().unwrap();
}

#[test]
fn pcp_lists_are_per_cpu() {
    let mut z = zone(0x3000, 256);
    z.free_range(0x3000, 0x3100).unwrap();
    z.set_pcp(8, 3);
    // CPU 1's refill does not fill CPU 0's list.
    let a = z.alloc_pages_on(1, 0).unwrap();
    assert_eq!((z.pcp_of(0).count(), z.pcp_of(1).count()), (0, 2));
    // A page allocated on CPU 1 and freed on CPU 2 goes to CPU 2's list,
    // and CPU 2 gets it back first (LIFO); CPU 1 never sees it.
    z.free_pages_on(2, a, 0).unwrap();
    assert_eq!((z.pcp_of(1).count(), z.pcp_of(2).count()), (2, 1));
    assert_eq!(z.free_count(), 256);
    z.check().unwrap();
    let b = z.alloc_pages_on(1, 0).unwrap();
    assert_ne!(b, a);
    assert_eq!(z.alloc_pages_on(2, 0), Some(a));
    // A page on another CPU's list is still caught as a double free.
    z.free_pages_on(3, a, 0).unwrap();
    assert_eq!(
        z.free_pages_on(0, a, 0),
        Err(BuddyError::DoubleFree { pfn: a, order: 0 })
    );
    z.free_pages_on(0, b, 0).unwrap();
    z.check().unwrap();
    // drain_pages empties every CPU's list.
    z.drain_pages();
    assert!((0..NR_CPUS).all(|cpu| z.pcp_of(cpu).count() == 0));
    assert_eq!(z.nr_free(8), 1);
    z.check().unwrap();
}

fn zone_named(start: usize, spanned: usize, node: u32, name: &'static str) -> Zone {
    let mem: &'static mut [Page] = vec![Page::RESERVED; spanned].leak();
    // SAFETY: as in zone(): a leaked slice of `spanned` Pages that only the
    // zone reaches.
    unsafe { Zone::new(start, spanned, mem.as_mut_ptr(), node) }.with_name(name)
}

#[test]
fn zones_route_alloc_and_free() {
    let mut zs = Zones::new();
    // Added out of order; kept in zone order.
    assert_eq!(zs.add(zone_named(0x40400, 2048, 0, "Normal")), Ok(0));
    assert_eq!(zs.add(zone_named(0x40000, 1024, 0, "DMA")), Ok(0));
    assert_eq!(
        zs.add(zone_named(0x40200, 16, 0, "X")),
        Err(ZonesError::Overlap { index: 0 })
    );
    assert_eq!(zs.len(), 2);
    assert_eq!(zs.get(0).unwrap().name(), "DMA");

    // A range partly outside every zone changes nothing.
    assert_eq!(
        zs.free_range(0x40000, 0x40c01),
        Err(BuddyError::NotInZone { pfn: 0x40c00 })
    );
    assert_eq!(zs.managed(), 0);
    // One release spanning both zones is split at the boundary.
    zs.free_range(0x40000, 0x40c00).unwrap();
    assert_eq!((zs.get(0).unwrap().nr_free(10), zs.get(1).unwrap().nr_free(10)), (1, 2));
    assert_eq!((zs.free_count(), zs.managed(), zs.nr_free(10)), (3072, 3072, 3));

    // Zonelist: Normal before DMA; boot memory queued at the tail.
    assert_eq!(zs.alloc_pages(10), Some(0x40400));
    assert_eq!(zs.alloc_pages(10), Some(0x40800));
    assert_eq!(zs.alloc_pages(10), Some(0x40000));
    assert_eq!(zs.alloc_pages(10), None);
    assert_eq!(zs.free_count(), 0);

    zs.free_pages(0x40000, 10).unwrap();
    assert_eq!(zs.get(0).unwrap().free_count(), 1024);
    zs.free_pages(0x40800, 10).unwrap();
    assert_eq!(zs.get(1).unwrap().free_count(), 1024);
    assert_eq!(zs.free_pages(0x50000, 0), Err(BuddyError::NotInZone { pfn: 0x50000 }));
    assert_eq!(
        zs.free_pages(0x40800, 10),
        Err(BuddyError::DoubleFree {
            pfn: 0x40800,
            order: 10
        })
    );
    assert_eq!(zs.alloc_pages(0), Some(0x40800));
    zs.check().unwrap();

    let mut s = String::new();
    zs.buddyinfo(&mut s).unwrap();
    assert_eq!(
        s,
        "Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      1 \n\
         Node 0, zone   Normal      1      1      1      1      1      1      1      1      1      1      0 \n"
    );
}

#[test]
fn zones_prefer_lower_nodes_then_higher_zones() {
    let mut zs = Zones::new();
    zs.add(zone_named(0x100000, 1024, 1, "Normal")).unwrap();
    zs.add(zone_named(0x40000, 1024, 0, "DMA")).unwrap();
    zs.add(zone_named(0x80000, 1024, 0, "DMA32")).unwrap();
    let names: Vec<_> = zs.iter().map(|z| (z.node(), z.name())).collect();
    assert_eq!(names, [(0, "DMA"), (0, "DMA32"), (1, "Normal")]);
    for i in 0..3 {
        let z = zs.get(i).unwrap();
        let (s, e) = (z.start_pfn(), z.end_pfn());
        zs.free_range(s, e).unwrap();
    }
    assert_eq!(zs.alloc_pages(10), Some(0x80000));
    assert_eq!(zs.alloc_pages(10), Some(0x40000));
    assert_eq!(zs.alloc_pages(10), Some(0x100000));
    assert_eq!(zs.alloc_pages(0), None);
    assert_eq!(zs.zone_of(0x100010), Some(2));
    assert_eq!(zs.zone_of(0x60000), None);
}

// The kernel keeps the zones in a static lock (Linux's zone->lock).
static _ZONES: SpinLock<Zones> = SpinLock::new(Zones::new());

#[test]
fn zones_capacity() {
    let mut zs = Zones::new();
    for i in 0..MAX_ZONES {
        zs.add(zone_named(i * 0x1000, 8, 0, "Normal")).unwrap();
    }
    assert_eq!(zs.add(zone_named(0x100000, 8, 0, "Normal")), Err(ZonesError::Full));
    assert_eq!(zs.len(), MAX_ZONES);
}

#[test]
fn check_catches_corruption() {
    let mut z = zone(0x40000, 64);
    z.free_range(0x40000, 0x40040).unwrap();
    let a = z.alloc_pages(0).unwrap();
    z.check().unwrap();
    // Pretend a tail page of a free block got marked allocated.
    z.pg_mut(5).flags = PG_ALLOCATED;
    assert!(z.check().is_err());
    z.pg_mut(5).flags = 0;
    z.free_area[0].nr_free += 1;
    assert!(matches!(z.check(), Err(CheckError::NrFreeMismatch { order: 0, .. })));
    z.free_area[0].nr_free -= 1;
    z.nr_free_pages += 1;
    assert!(matches!(z.check(), Err(CheckError::FreePagesMismatch { .. })));
    z.nr_free_pages -= 1;
    z.free_pages(a, 0).unwrap();
    z.check().unwrap();
}

/// Two nodes with per-cpu lists: an allocation for a node takes that node's
/// pages (never a page of another node parked on the CPU's per-cpu list),
/// falls back by the node order when the node is exhausted, and the node
/// summaries count what each node holds.
#[test]
fn node_allocation_falls_back_by_node_order() {
    let mut zs = Zones::new();
    zs.add(zone_named(0x80000, 64, 1, "Normal")).unwrap();
    zs.add(zone_named(0x40000, 64, 0, "DMA32")).unwrap();
    zs.add(zone_named(0x40100, 64, 0, "Normal")).unwrap();
    for i in 0..3 {
        let z = zs.get(i).unwrap();
        let (s, e) = (z.start_pfn(), z.end_pfn());
        zs.free_range(s, e).unwrap();
    }
    // Zones this small get no per-cpu lists from setup_pcp; force them on.
    for i in 0..3 {
        zs.get_mut(i).unwrap().set_pcp(6, 2);
    }
    assert_eq!(zs.nodes_with_memory().to_string(), "0-1");
    assert_eq!((zs.node_order(0), zs.node_order(1)), (&[0u8, 1][..], &[1u8, 0][..]));
    // A memoryless node starts its walk at the next node with memory.
    assert_eq!(zs.node_order(2), [2, 0, 1]);
    assert_eq!(zs.node_zone_range(0), 0..2);
    assert_eq!(zs.node_zone_range(1), 2..3);
    assert!(zs.node_zone_range(3).is_empty());

    let nid = |zs: &Zones, pfn: usize| zs.get(zs.zone_of(pfn).unwrap()).unwrap().node();
    // A node-0 page freed on CPU 0 sits on CPU 0's per-cpu list of its zone.
    let p0 = zs.alloc_pages_node_on(0, 0, 0).unwrap();
    assert_eq!(nid(&zs, p0), 0);
    zs.free_pages_on(0, p0, 0).unwrap();
    assert_ne!(zs.get(1).unwrap().pcp_of(0).count(), 0);
    // Node 1 from CPU 0 must not get it.
    let p1 = zs.alloc_pages_node_on(0, 1, 0).unwrap();
    assert_eq!(nid(&zs, p1), 1);
    zs.free_pages_on(0, p1, 0).unwrap();
    // Exhaust node 1 (64 pages, one of them on CPU 0's list), then the
    // next allocation for it comes from node 0's highest zone first.
    let mut got = Vec::new();
    for _ in 0..64 {
        got.push(zs.alloc_pages_node_on(0, 1, 0).unwrap());
    }
    assert!(got.iter().all(|&p| (0x80000..0x80040).contains(&p)));
    let n1 = zs.node_data(1).unwrap();
    assert_eq!((n1.nr_free_pages, n1.managed_pages), (0, 64));
    let fb = zs.alloc_pages_node_on(0, 1, 0).unwrap();
    assert!((0x40100..0x40140).contains(&fb), "fell back to {fb:#x}");
    // Node 0's Normal zone exhausted too: its DMA32 zone, then nothing.
    for _ in 0..63 {
        assert!((0x40100..0x40140).contains(&zs.alloc_pages_node_on(0, 1, 0).unwrap()));
    }
    assert!((0x40000..0x40040).contains(&zs.alloc_pages_node_on(0, 1, 0).unwrap()));
    assert_eq!(zs.alloc_pages_node_on(1, 1, 6), None);

    let n0 = zs.node_data(0).unwrap();
    assert_eq!(
        (n0.node_start_pfn, n0.node_spanned_pages, n0.node_present_pages),
        (0x40000, 0x140, 128)
    );
    assert_eq!((n0.managed_pages, n0.nr_free_pages, n0.zones), (128, 63, 0..2));
    assert_eq!(zs.node_data(2), None);
    for p in got {
        zs.free_pages_on(1, p, 0).unwrap();
    }
    assert_eq!(zs.node_data(1).unwrap().nr_free_pages, 64);
    zs.check().unwrap();

    // Zones of a node beyond MAX_NUMNODES are refused.
    assert_eq!(
        zs.add(zone_named(0x100000, 8, MAX_NUMNODES as u32, "Normal"))
            .map(|_| ()),
        Err(ZonesError::BadNode {
            node: MAX_NUMNODES as u32
        })
    );
}
