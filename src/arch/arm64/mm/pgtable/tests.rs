// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `pgtable` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

use super::*;
use crate::arch::memory::{PAGE_END, PAGE_OFFSET, PMD_SIZE, PUD_SIZE, VMALLOC_START};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

// -- A tracking frame allocator over heap pages ------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Sync,
    /// A last-level flush, with the leaf descriptor at `start` at that moment.
    Flush {
        start: usize,
        end: usize,
        seen: Option<u64>,
    },
    FlushPgtable {
        start: usize,
        end: usize,
    },
}

/// Heap pages stand in for physical table pages (identity `table_ptr`).
/// Freed pages are poisoned and kept (never reused) so that a double
/// free, a free of a foreign page and any use after free are caught.
struct TrackingEnv {
    live: BTreeSet<usize>,
    retired: BTreeSet<usize>,
    allocs: usize,
    /// Allocations still allowed; `None` = unlimited.
    fail_after: Option<usize>,
    events: Vec<Event>,
    /// Root used to record what a flushed VA's entry holds at flush time.
    probe_root: Option<PhysAddr>,
    table_ptr_calls: Cell<usize>,
}

fn page_layout() -> Layout {
    Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).unwrap()
}

impl TrackingEnv {
    fn new() -> Self {
        Self {
            live: BTreeSet::new(),
            retired: BTreeSet::new(),
            allocs: 0,
            fail_after: None,
            events: Vec::new(),
            probe_root: None,
            table_ptr_calls: Cell::new(0),
        }
    }

    fn leaf_desc(&self, va: usize) -> Option<u64> {
        // SAFETY: probe_root is the root of the tree under test, built by
        // this module through this env; the probe only walks it (read-only)
        // and is dropped before the tree is edited again.
        let pt = unsafe { PageTable::from_root(self.probe_root?) };
        let w = pt.walk(self, VirtAddr(va));
        w.steps.iter().flatten().last().map(|s| s.desc)
    }
}

// SAFETY: alloc_table returns alloc_zeroed pages (4 KiB-aligned, host
// addresses below 2^48, zeroed before the pointer is returned, so ordered
// before any link); table_ptr is the identity on live pages, which stay
// allocated until free_table (asserted), so every pointer stays valid.
unsafe impl PgtableEnv for TrackingEnv {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if let Some(n) = self.fail_after {
            if n == 0 {
                return None;
            }
            self.fail_after = Some(n - 1);
        }
        // SAFETY: page_layout() has a non-zero size.
        let p = unsafe { alloc_zeroed(page_layout()) } as usize;
        assert!(p != 0, "host out of memory");
        assert!(self.live.insert(p));
        self.allocs += 1;
        Some(PhysAddr(p))
    }

    fn free_table(&mut self, pa: PhysAddr) {
        assert!(!self.retired.contains(&pa.0), "double free of table page {pa:?}");
        assert!(
            self.live.remove(&pa.0),
            "free of a page that was never allocated: {pa:?}"
        );
        // Poison: 0xa5.. looks like a valid block, so stale use shows up.
        // SAFETY: pa was live (asserted just above): a page this env
        // allocated and still owns; it is only retired, not deallocated.
        unsafe { core::ptr::write_bytes(pa.0 as *mut u8, 0xa5, PAGE_SIZE) };
        self.retired.insert(pa.0);
    }

    fn table_ptr(&self, pa: PhysAddr, _level: usize) -> *mut u64 {
        self.table_ptr_calls.set(self.table_ptr_calls.get() + 1);
        assert!(self.live.contains(&pa.0), "table_ptr({pa:?}): not a live table page");
        pa.0 as *mut u64
    }

    fn sync_new_entries(&mut self) {
        self.events.push(Event::Sync);
    }

    fn flush_tlb_kernel_range(&mut self, start: VirtAddr, end: VirtAddr) {
        let seen = self.leaf_desc(start.0);
        self.events.push(Event::Flush {
            start: start.0,
            end: end.0,
            seen,
        });
    }

    fn flush_tlb_pgtable(&mut self, start: VirtAddr, end: VirtAddr) {
        self.events.push(Event::FlushPgtable {
            start: start.0,
            end: end.0,
        });
    }
}

impl Drop for TrackingEnv {
    fn drop(&mut self) {
        for &p in self.live.iter().chain(self.retired.iter()) {
            // SAFETY: every live or retired page came from alloc_zeroed with
            // page_layout() and is freed here once (the sets are disjoint).
            unsafe { dealloc(p as *mut u8, page_layout()) };
        }
    }
}

fn setup() -> (TrackingEnv, PageTable) {
    let mut env = TrackingEnv::new();
    let pt = PageTable::new(&mut env).unwrap();
    env.probe_root = Some(pt.root());
    (env, pt)
}

fn lin(pa: usize) -> VirtAddr {
    VirtAddr(PAGE_OFFSET + pa)
}

/// (leaf level, descriptor) mapping `va`, if any.
fn leaf(pt: &PageTable, env: &TrackingEnv, va: usize) -> Option<(usize, u64)> {
    let w = pt.walk(env, VirtAddr(va));
    w.leaf_level.map(|l| (l, w.steps[l].unwrap().desc))
}

/// A tiny deterministic PRNG (xorshift64*).
use crate::lib::rand::XorShift64Star as Rng;

// -- Memory types and descriptors ---------------------------------------

#[test]
fn mair_el1_matches_linux_5_10() {
    // Attr0 Normal ff, Attr1 Normal(tagged slot) ff, Attr2 NC 44, Attr3 WT bb,
    // Attr4 nGnRnE 00, Attr5 nGnRE 04, Attr6 GRE 0c, Attr7 unused.
    assert_eq!(MAIR_EL1_VALUE, 0x000c_0400_bb44_ffff);
    for t in MemType::ALL {
        let slot = (MAIR_EL1_VALUE >> (8 * t.attr_index())) & 0xff;
        assert_eq!(slot, t.mair_attr() as u64, "{t:?}");
        assert_eq!(MemType::from_attr_index(t.attr_index()), Some(t));
    }
    assert_eq!(MemType::Normal.attr_index(), 0);
    assert_eq!(MemType::DeviceNgnre.attr_index(), 5);
    assert_eq!(MemType::from_attr_index(7), None);
}

#[test]
fn encode_kernel_prots_bit_by_bit() {
    const VALID_: u64 = 1 << 0;
    const PAGE_: u64 = 1 << 1; // type bit: page at level 3
    const AP_RO: u64 = 1 << 7; // AP[2]
    const SH_INNER: u64 = 0b11 << 8;
    const AF_: u64 = 1 << 10;
    const PXN_: u64 = 1 << 53;
    const UXN_: u64 = 1 << 54;
    let base = VALID_ | SH_INNER | AF_;
    let cases: &[(PageProt, usize, usize, u64, u64)] = &[
        // prot, level, pa, hand-built, literal
        (
            PAGE_KERNEL,
            3,
            0x4008_1000,
            base | PAGE_ | PXN_ | UXN_ | 0x4008_1000,
            0x0060_0000_4008_1703,
        ),
        (
            PAGE_KERNEL,
            2,
            0x4020_0000,
            base | PXN_ | UXN_ | 0x4020_0000,
            0x0060_0000_4020_0701,
        ),
        (
            PAGE_KERNEL,
            1,
            0x4000_0000,
            base | PXN_ | UXN_ | 0x4000_0000,
            0x0060_0000_4000_0701,
        ),
        (
            PAGE_KERNEL_RO,
            3,
            0x4008_1000,
            base | PAGE_ | AP_RO | PXN_ | UXN_ | 0x4008_1000,
            0x0060_0000_4008_1783,
        ),
        (
            PAGE_KERNEL_RO,
            2,
            0x4020_0000,
            base | AP_RO | PXN_ | UXN_ | 0x4020_0000,
            0x0060_0000_4020_0781,
        ),
        (
            PAGE_KERNEL_ROX,
            3,
            0x4008_1000,
            base | PAGE_ | AP_RO | UXN_ | 0x4008_1000,
            0x0040_0000_4008_1783,
        ),
        (
            PAGE_KERNEL_ROX,
            1,
            0x4000_0000,
            base | AP_RO | UXN_ | 0x4000_0000,
            0x0040_0000_4000_0781,
        ),
        (
            PAGE_KERNEL_EXEC,
            3,
            0x4008_1000,
            base | PAGE_ | UXN_ | 0x4008_1000,
            0x0040_0000_4008_1703,
        ),
        (
            PAGE_KERNEL_EXEC,
            2,
            0x4020_0000,
            base | UXN_ | 0x4020_0000,
            0x0040_0000_4020_0701,
        ),
        (
            PROT_DEVICE_NGNRE,
            3,
            0x0900_0000,
            base | PAGE_ | (5 << 2) | PXN_ | UXN_ | 0x0900_0000,
            0x0060_0000_0900_0717,
        ),
        (
            PROT_DEVICE_NGNRE,
            2,
            0x0800_0000,
            base | (5 << 2) | PXN_ | UXN_ | 0x0800_0000,
            0x0060_0000_0800_0715,
        ),
    ];
    for &(prot, level, pa, built, literal) in cases {
        assert_eq!(built, literal, "hand computation for {prot:?} L{level}");
        let v = pte_encode(PhysAddr(pa), prot, level);
        assert_eq!(v, literal, "{prot:?} at level {level}: {v:#018x}");
        let d = Descriptor(v);
        assert!(d.is_valid());
        assert_eq!(d.is_page(level), level == 3);
        assert_eq!(d.is_block(level), level != 3);
        assert!(d.is_leaf(level) && !d.is_table(level));
        assert_eq!(d.output_addr(), PhysAddr(pa));
        assert_eq!(d.leaf_addr(level), PhysAddr(pa));
        assert_eq!(d.prot(), Some(prot));
    }
}

#[test]
fn encode_every_memtype_and_prot_at_every_level() {
    for t in MemType::ALL {
        for (writable, executable, user) in (0..8).map(|b| (b & 1 != 0, b & 2 != 0, b & 4 != 0)) {
            let prot = PageProt {
                mem_type: t,
                writable,
                executable,
                user,
            };
            for level in 1..=3 {
                let pa = level_size(level) * 3;
                let v = pte_encode(PhysAddr(pa), prot, level);
                let mut want = 1 | (0b11 << 8) | (1 << 10) | (t.attr_index() << 2) | pa as u64;
                if level == 3 {
                    want |= 1 << 1;
                }
                if !writable {
                    want |= 1 << 7;
                }
                if user {
                    want |= (1 << 6) | (1 << 11) | (1 << 53);
                    if !executable {
                        want |= 1 << 54;
                    }
                } else {
                    want |= 1 << 54;
                    if !executable {
                        want |= 1 << 53;
                    }
                }
                assert_eq!(v, want, "{prot:?} L{level}");
                assert_eq!(Descriptor(v).prot(), Some(prot));
                assert_eq!(Descriptor(v).mem_type(), Some(t));
                assert_eq!(Descriptor(v).leaf_addr(level), PhysAddr(pa));
            }
        }
    }
}

#[test]
fn descriptor_classification_per_level() {
    let table = table_encode(PhysAddr(0x4008_2000));
    assert_eq!(table, 0x0000_0000_4008_2003);
    for level in 0..3 {
        assert!(Descriptor(table).is_table(level));
        assert!(!Descriptor(table).is_leaf(level));
    }
    // Type 1 at level 3 is a page, not a table.
    assert!(!Descriptor(table).is_table(3) && Descriptor(table).is_page(3));
    // Type 0 is a block only at levels 1 and 2.
    let block = 0x4000_0001u64;
    assert!(!Descriptor(block).is_block(0) && !Descriptor(block).is_leaf(0));
    assert!(Descriptor(block).is_block(1) && Descriptor(block).is_block(2));
    assert!(!Descriptor(block).is_block(3) && !Descriptor(block).is_leaf(3));
    // Invalid: nothing, whatever the other bits say.
    let invalid = 0x0060_0000_4008_1702u64;
    for level in 0..4 {
        let d = Descriptor(invalid);
        assert!(!d.is_valid() && !d.is_table(level) && !d.is_leaf(level));
    }
    // Stray RES0 bits below a block's size are not part of its address.
    assert_eq!(Descriptor(0x0060_0000_4020_1701).leaf_addr(2), PhysAddr(0x4020_0000));
    assert_eq!(Descriptor(0x0060_0000_4020_1701).output_addr(), PhysAddr(0x4020_1000));
    assert_eq!(Descriptor(0x1c).prot(), None); // AttrIndx 7 is not programmed
}

#[test]
fn descfmt_decodes_every_field() {
    let s = |desc: u64, level: usize| format!("{}", DescFmt { desc, level });
    assert_eq!(
        s(0x0060_0000_4008_1703, 3),
        "pte 0x0060000040081703 PAGE pa=0x40081000 attr0=Normal RW XN AF SH=inner"
    );
    assert_eq!(
        s(0x0060_0000_4020_0781, 2),
        "pmd 0x0060000040200781 BLOCK pa=0x40200000 attr0=Normal RO XN AF SH=inner"
    );
    assert_eq!(
        s(0x0040_0000_4000_0781, 1),
        "pud 0x0040000040000781 BLOCK pa=0x40000000 attr0=Normal RO UXN AF SH=inner"
    );
    assert_eq!(
        s(0x0060_0000_0900_0717, 3),
        "pte 0x0060000009000717 PAGE pa=0x9000000 attr5=Device-nGnRE RW XN AF SH=inner"
    );
    let user = pte_encode(
        PhysAddr(0x4008_1000),
        PageProt {
            mem_type: MemType::NormalNc,
            writable: true,
            executable: false,
            user: true,
        },
        3,
    );
    assert_eq!(user, 0x0060_0000_4008_1f4b);
    assert_eq!(
        s(user, 3),
        "pte 0x0060000040081f4b PAGE pa=0x40081000 attr2=Normal-NC RW EL0 XN AF nG SH=inner"
    );
    let user_x = pte_encode(
        PhysAddr(0x4008_1000),
        PageProt {
            mem_type: MemType::NormalWt,
            writable: false,
            executable: true,
            user: true,
        },
        3,
    );
    assert_eq!(
        s(user_x, 3),
        "pte 0x0020000040081fcf PAGE pa=0x40081000 attr3=Normal-WT RO EL0 PXN AF nG SH=inner"
    );
    // Everything unusual at once: Device-nGnRnE, NS, SH=outer, no AF, nG,
    // no XN, CONT, DBM, software bit 55, ignored bit 59, RES0 bit 48.
    let odd = 0x0899_0000_4008_1a33;
    assert_eq!(
        s(odd, 3),
        "pte 0x0899000040081a33 PAGE pa=0x40081000 attr4=Device-nGnRnE RW !AF nG SH=outer \
         CONT DBM NS sw=0x1 ign=0x1 RES0=0x1000000000000"
    );
    assert_eq!(
        s(0x0060_0000_4020_1701, 2),
        "pmd 0x0060000040201701 BLOCK pa=0x40200000 attr0=Normal RW XN AF SH=inner RES0=0x1000"
    );
    assert_eq!(
        s(0x0000_0000_4000_051d, 2).split(' ').nth(4),
        Some("attr7=unprogrammed")
    );
    assert_eq!(s(0x0000_0000_4000_0101, 1).rsplit(' ').next(), Some("SH=reserved"));
    assert_eq!(s(0x0000_0000_4000_0101, 1).split(' ').nth(6), Some("!AF"));
    assert_eq!(s(0x0000_0000_4000_0401, 1).rsplit(' ').next(), Some("SH=non"));
    assert_eq!(s(0, 3), "pte 0x0000000000000000 INVALID");
    assert_eq!(s(0x0060_0000_4008_1702, 3), "pte 0x0060000040081702 INVALID");
    assert_eq!(s(0x1, 3), "pte 0x0000000000000001 RESERVED");
    assert_eq!(s(0x4000_0001, 0), "pgd 0x0000000040000001 RESERVED");
    assert_eq!(
        s(0x0000_0000_4008_2003, 0),
        "pgd 0x0000000040082003 TABLE next=0x40082000"
    );
    assert_eq!(
        s(0xb800_0000_4008_2003, 1),
        "pud 0xb800000040082003 TABLE next=0x40082000 PXNTable UXNTable NSTable APTable=0b1"
    );
    assert_eq!(
        s(0x0080_0000_4008_2003, 2),
        "pmd 0x0080000040082003 TABLE next=0x40082000 (new)"
    );
}

// -- Mapping ------------------------------------------------------------

#[test]
fn map_translate_walk_unmap_pages() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr(VMALLOC_START + 0x10_0000);
    let pages = [PhysAddr(0x4123_4000), PhysAddr(0x4000_0000), PhysAddr(0x7fff_f000)];
    pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
    assert_eq!(env.events, [Event::Sync]);
    for (i, pa) in pages.iter().enumerate() {
        let v = va.add(i * PAGE_SIZE);
        assert_eq!(pt.translate(&env, v), Some(*pa));
        assert_eq!(pt.translate(&env, v.add(0x123)), Some(pa.add(0x123)));
        assert_eq!(leaf(&pt, &env, v.0), Some((3, pte_encode(*pa, PAGE_KERNEL, 3))));
    }
    assert_eq!(pt.translate(&env, va.add(3 * PAGE_SIZE)), None);
    assert_eq!(pt.translate(&env, VirtAddr(va.0 - PAGE_SIZE)), None);
    assert_eq!(pt.count_tables(&env), 4);

    let w = pt.walk(&env, va.add(PAGE_SIZE));
    assert_eq!(w.leaf_level, Some(3));
    assert_eq!(w.pa, Some(PhysAddr(0x4000_0000)));
    let idx: Vec<usize> = w.steps.iter().flatten().map(|s| s.index).collect();
    assert_eq!(idx, [256, 0, 128, 0x101]);
    assert_eq!(w.steps[0].unwrap().table, pt.root());

    env.events.clear();
    pt.unmap_range(&mut env, va, 3 * PAGE_SIZE).unwrap();
    assert_eq!(
        env.events,
        [Event::Flush {
            start: va.0,
            end: va.0 + 3 * PAGE_SIZE,
            seen: Some(0)
        }]
    );
    for i in 0..3 {
        assert_eq!(pt.translate(&env, va.add(i * PAGE_SIZE)), None);
    }
    // Tables are kept, as in Linux.
    assert_eq!(pt.count_tables(&env), 4);
    pt.destroy(&mut env);
    assert!(env.live.is_empty(), "leaked {} table pages", env.live.len());
}

#[test]
fn block_mappings_where_aligned_pages_at_the_edges() {
    let (mut env, mut pt) = setup();
    let (pa0, pa1) = (0x4000_1000usize, 0x8020_1000usize);
    pt.map_range(&mut env, lin(pa0), PhysAddr(pa0), pa1 - pa0, PAGE_KERNEL, true)
        .unwrap();
    assert_eq!(env.events, [Event::Sync]);
    // pud[1]: pte table for the first 2 MiB (511 pages), then 511 2 MiB blocks;
    // pud[2]: one 2 MiB block, then a pte table with one page. No 1 GiB block:
    // 0x4000_1000 is not 1 GiB aligned and only 2 MiB + 4 KiB remain past 0x8000_0000.
    let expect = [
        (0x4000_0000, None),
        (0x4000_1000, Some(3)),
        (0x401f_f000, Some(3)),
        (0x4020_0000, Some(2)),
        (0x5555_5000, Some(2)),
        (0x7fff_f000, Some(2)),
        (0x8000_0000, Some(2)),
        (0x801f_f000, Some(2)),
        (0x8020_0000, Some(3)),
        (0x8020_1000, None),
    ];
    for (pa, level) in expect {
        let got = leaf(&pt, &env, lin(pa).0);
        assert_eq!(got.map(|g| g.0), level, "pa {pa:#x}");
        if let Some((level, desc)) = got {
            let base = pa & !(level_size(level) - 1);
            assert_eq!(desc, pte_encode(PhysAddr(base), PAGE_KERNEL, level));
            assert_eq!(pt.translate(&env, lin(pa + 0x10)), Some(PhysAddr(pa + 0x10)));
        }
    }
    let w = pt.walk(&env, lin(0x4000_1000));
    let idx: Vec<usize> = w.steps.iter().flatten().map(|s| s.index).collect();
    assert_eq!(idx, [0, 1, 0, 1]);
    // pgd, pud, pmd x2, pte x2
    assert_eq!(pt.count_tables(&env), 6);
    assert_eq!(env.live.len(), 6);

    // Without blocks: one pte table per 2 MiB (512 + 2).
    let mut pt2 = PageTable::new(&mut env).unwrap();
    pt2.map_range(&mut env, lin(pa0), PhysAddr(pa0), pa1 - pa0, PAGE_KERNEL, false)
        .unwrap();
    assert_eq!(pt2.count_tables(&env), 1 + 1 + 2 + 514);
    assert_eq!(leaf(&pt2, &env, lin(0x5555_5000).0).map(|l| l.0), Some(3));
    pt2.destroy(&mut env);

    // 1 GiB aligned: 1 GiB blocks at level 1 and nothing below.
    let mut pt3 = PageTable::new(&mut env).unwrap();
    pt3.map_range(
        &mut env,
        lin(0x4000_0000),
        PhysAddr(0x4000_0000),
        2 * PUD_SIZE,
        PAGE_KERNEL_RO,
        true,
    )
    .unwrap();
    assert_eq!(pt3.count_tables(&env), 2);
    assert_eq!(
        leaf(&pt3, &env, lin(0xbfff_f000).0),
        Some((1, pte_encode(PhysAddr(0x8000_0000), PAGE_KERNEL_RO, 1)))
    );
    // va aligned but pa not: no blocks.
    let mut pt4 = PageTable::new(&mut env).unwrap();
    pt4.map_range(
        &mut env,
        lin(0x4000_0000),
        PhysAddr(0x4000_1000),
        PMD_SIZE,
        PAGE_KERNEL,
        true,
    )
    .unwrap();
    assert_eq!(leaf(&pt4, &env, lin(0x4000_0000).0).map(|l| l.0), Some(3));
    assert_eq!(pt4.translate(&env, lin(0x4000_0000)), Some(PhysAddr(0x4000_1000)));

    for t in [pt, pt3, pt4] {
        t.destroy(&mut env);
    }
    assert!(env.live.is_empty());
}

#[test]
fn existing_table_at_a_block_slot_is_descended_into() {
    let (mut env, mut pt) = setup();
    // Leave an empty pte table at the second 2 MiB (Linux keeps tables after unmap).
    let v = lin(0x4020_0000 + 0x5000);
    pt.map_range(&mut env, v, PhysAddr(0x1000), PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    pt.unmap_range(&mut env, v, PAGE_SIZE).unwrap();
    let tables = pt.count_tables(&env);
    pt.map_range(
        &mut env,
        lin(0x4000_0000),
        PhysAddr(0x4000_0000),
        3 * PMD_SIZE,
        PAGE_KERNEL,
        true,
    )
    .unwrap();
    assert_eq!(leaf(&pt, &env, lin(0x4000_0000).0).map(|l| l.0), Some(2));
    assert_eq!(leaf(&pt, &env, lin(0x4020_5000).0).map(|l| l.0), Some(3));
    assert_eq!(leaf(&pt, &env, lin(0x4040_0000).0).map(|l| l.0), Some(2));
    assert_eq!(pt.translate(&env, lin(0x4030_0123)), Some(PhysAddr(0x4030_0123)));
    assert_eq!(pt.count_tables(&env), tables);
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

#[test]
fn already_mapped_is_refused_and_atomic() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr(VMALLOC_START + 0x20_0000 - 2 * PAGE_SIZE);
    pt.map_range(&mut env, va, PhysAddr(0x5000_0000), 4 * PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    let before = (env.live.clone(), pt.count_tables(&env));
    // Starts 3 pages earlier (same pte table) and runs into the mapping.
    let start = VirtAddr(va.0 - 3 * PAGE_SIZE);
    env.events.clear();
    let err = pt
        .map_range(
            &mut env,
            start,
            PhysAddr(0x6000_0000),
            8 * PAGE_SIZE,
            PAGE_KERNEL_RO,
            false,
        )
        .unwrap_err();
    assert_eq!(
        err,
        PgtableError::AlreadyMapped {
            va,
            existing: pte_encode(PhysAddr(0x5000_0000), PAGE_KERNEL, 3)
        }
    );
    for i in 0..3 {
        assert_eq!(pt.translate(&env, start.add(i * PAGE_SIZE)), None);
    }
    assert_eq!(pt.translate(&env, va), Some(PhysAddr(0x5000_0000)));
    assert_eq!((env.live.clone(), pt.count_tables(&env)), before);
    // No sync for a failed call; the 3 pages it wrote were flushed.
    assert_eq!(
        env.events,
        [Event::Flush {
            start: start.0,
            end: va.0,
            seen: Some(0)
        }]
    );

    // Pages over a block: the block is what is in the way.
    let b = lin(0x4000_0000);
    pt.map_range(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL, true)
        .unwrap();
    let err = pt
        .map_pages(&mut env, b.add(0x3000), &[PhysAddr(0x1000)], PAGE_KERNEL)
        .unwrap_err();
    assert_eq!(
        err,
        PgtableError::AlreadyMapped {
            va: b.add(0x3000),
            existing: pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL, 2)
        }
    );
    // Same block again.
    let err = pt
        .map_range(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL, true)
        .unwrap_err();
    assert!(matches!(err, PgtableError::AlreadyMapped { va, .. } if va == b));
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

#[test]
fn conflict_after_new_tables_frees_them() {
    let (mut env, mut pt) = setup();
    // Mapped page in pgd[256]; the new range starts in pgd[255] (all new tables).
    pt.map_range(
        &mut env,
        VirtAddr(PAGE_END + PAGE_SIZE),
        PhysAddr(0x1000),
        PAGE_SIZE,
        PAGE_KERNEL,
        false,
    )
    .unwrap();
    let before = env.live.clone();
    env.events.clear();
    let start = VirtAddr(PAGE_END - 3 * PAGE_SIZE);
    let err = pt.map_range(
        &mut env,
        start,
        PhysAddr(0x9000_0000),
        8 * PAGE_SIZE,
        PAGE_KERNEL,
        false,
    );
    assert!(matches!(err, Err(PgtableError::AlreadyMapped { va, .. }) if va.0 == PAGE_END + PAGE_SIZE));
    assert_eq!(env.live, before, "tables of the failed call must be freed");
    assert!(env.events.contains(&Event::FlushPgtable {
        start: start.0,
        end: PAGE_END + 2 * PAGE_SIZE
    }));
    for i in 0..8 {
        let v = start.add(i * PAGE_SIZE);
        let want = (v.0 == PAGE_END + PAGE_SIZE).then_some(PhysAddr(0x1000));
        assert_eq!(pt.translate(&env, v), want);
    }
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

#[test]
fn no_memory_at_every_allocation_rolls_back_exactly() {
    // Crosses pgd[255] -> pgd[256]; pgd[256] already has pud/pmd tables, an
    // empty pte table at pmd[1] (left by an unmap) and a live mapping at pmd[5].
    let start = VirtAddr(PAGE_END - 2 * PMD_SIZE - 3 * PAGE_SIZE);
    let size = 4 * PMD_SIZE + 6 * PAGE_SIZE;
    let pages: Vec<PhysAddr> = (0..size / PAGE_SIZE)
        .map(|i| PhysAddr(0x8000_0000 - i * PAGE_SIZE))
        .collect();
    for use_list in [false, true] {
        let (mut env, mut pt) = setup();
        let keep = VirtAddr(PAGE_END + 5 * PMD_SIZE);
        pt.map_range(&mut env, keep, PhysAddr(0x4242_4000), PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        let hole = VirtAddr(PAGE_END + PMD_SIZE + 7 * PAGE_SIZE);
        pt.map_range(&mut env, hole, PhysAddr(0x4343_4000), PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        pt.unmap_range(&mut env, hole, PAGE_SIZE).unwrap();
        let live = env.live.clone();
        let tables = pt.count_tables(&env);
        assert_eq!(tables, 5);
        // Needed: pgd[255]: pud, pmd, 3 pte; pgd[256]: pte for pmd[0] and pmd[2].
        let needed = 7;
        for n in 0..=needed {
            env.fail_after = Some(n);
            env.events.clear();
            let allocs = env.allocs;
            let r = if use_list {
                pt.map_pages(&mut env, start, &pages, PAGE_KERNEL)
            } else {
                pt.map_range(&mut env, start, PhysAddr(0x1_0000_0000), size, PAGE_KERNEL, true)
            };
            assert_eq!(env.allocs - allocs, n.min(needed));
            if n < needed {
                let err = r.unwrap_err();
                assert!(matches!(err, PgtableError::NoMemory { .. }), "{err}");
                assert_eq!(env.live, live, "n={n}: table pages differ");
                assert_eq!(pt.count_tables(&env), tables);
                for i in 0..size / PAGE_SIZE {
                    assert_eq!(pt.translate(&env, start.add(i * PAGE_SIZE)), None, "n={n} page {i}");
                }
                assert!(!env.events.contains(&Event::Sync));
                if n > 0 {
                    assert!(matches!(env.events.last(), Some(Event::FlushPgtable { .. })));
                }
            } else {
                r.unwrap();
                assert_eq!(pt.count_tables(&env), tables + needed);
                for (i, pa) in pages.iter().enumerate() {
                    let want = if use_list {
                        *pa
                    } else {
                        PhysAddr(0x1_0000_0000 + i * PAGE_SIZE)
                    };
                    assert_eq!(pt.translate(&env, start.add(i * PAGE_SIZE)), Some(want));
                }
                // No rollback marks survive a successful call.
                let mut marks = 0;
                visit_range(&mut env, pt.root(), 0, start.0, start.0 + size, 2, &mut |_, p, _, _| {
                    marks += (read_entry(p) & SW_NEW != 0) as usize;
                    true
                });
                assert_eq!(marks, 0);
            }
            assert_eq!(pt.translate(&env, keep), Some(PhysAddr(0x4242_4000)));
        }
        match pt.map_range(
            &mut env,
            VirtAddr(PAGE_END + 9 * PMD_SIZE),
            PhysAddr(0),
            PAGE_SIZE,
            PAGE_KERNEL,
            false,
        ) {
            Err(PgtableError::NoMemory { va, level: 3 }) => {
                assert_eq!(va.0, PAGE_END + 9 * PMD_SIZE)
            }
            r => panic!("{r:?}"),
        }
        env.fail_after = None;
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }
}

#[test]
fn replace_is_break_before_make() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr(VMALLOC_START);
    pt.map_range(&mut env, va, PhysAddr(0x4000_0000), 2 * PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    let err = pt.map_range(&mut env, va, PhysAddr(0x4000_0000), PAGE_SIZE, PAGE_KERNEL_RO, false);
    assert!(matches!(err, Err(PgtableError::AlreadyMapped { .. })));
    env.events.clear();
    // Second page identical: no flush for it; a third page is new.
    pt.map_range_replace(&mut env, va, PhysAddr(0x4000_0000), PAGE_SIZE, PAGE_KERNEL_ROX, false)
        .unwrap();
    pt.map_range_replace(
        &mut env,
        va.add(PAGE_SIZE),
        PhysAddr(0x4000_1000),
        2 * PAGE_SIZE,
        PAGE_KERNEL,
        false,
    )
    .unwrap();
    // The flush saw the entry already cleared; the new one came after it.
    assert_eq!(
        env.events,
        [
            Event::Flush {
                start: va.0,
                end: va.0 + PAGE_SIZE,
                seen: Some(0)
            },
            Event::Sync,
            Event::Sync
        ]
    );
    assert_eq!(
        leaf(&pt, &env, va.0),
        Some((3, pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL_ROX, 3)))
    );
    assert_eq!(pt.translate(&env, va.add(2 * PAGE_SIZE)), Some(PhysAddr(0x4000_2000)));

    // Blocks too.
    let b = lin(0x4000_0000);
    pt.map_range(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL_EXEC, true)
        .unwrap();
    env.events.clear();
    pt.map_range_replace(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL_ROX, true)
        .unwrap();
    assert_eq!(
        env.events,
        [
            Event::Flush {
                start: b.0,
                end: b.0 + PMD_SIZE,
                seen: Some(0)
            },
            Event::Sync
        ]
    );
    assert_eq!(
        leaf(&pt, &env, b.0),
        Some((2, pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL_ROX, 2)))
    );
    // A block is never split by a replace.
    let err = pt.map_range_replace(&mut env, b, PhysAddr(0x4000_0000), PAGE_SIZE, PAGE_KERNEL, false);
    assert!(matches!(err, Err(PgtableError::AlreadyMapped { va, .. }) if va == b));
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

#[test]
fn unmap_blocks_holes_and_errors() {
    let (mut env, mut pt) = setup();
    let b = lin(0x4000_0000);
    pt.map_range(
        &mut env,
        b,
        PhysAddr(0x4000_0000),
        PUD_SIZE + PMD_SIZE + PAGE_SIZE,
        PAGE_KERNEL,
        true,
    )
    .unwrap();
    let err = pt.unmap_range(&mut env, b.add(PAGE_SIZE), PAGE_SIZE).unwrap_err();
    assert_eq!(
        err,
        PgtableError::PartialBlock {
            va: b.add(PAGE_SIZE),
            level: 1,
            existing: pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL, 1)
        }
    );
    let err = pt.unmap_range(&mut env, b.add(PUD_SIZE), PAGE_SIZE).unwrap_err();
    assert!(matches!(err, PgtableError::PartialBlock { level: 2, .. }));
    env.events.clear();
    pt.unmap_range(&mut env, b, PUD_SIZE + PMD_SIZE + PAGE_SIZE).unwrap();
    assert_eq!(env.events.len(), 1, "one flush per unmap: {:?}", env.events);
    assert!(matches!(env.events[0], Event::Flush { start, end, .. }
        if start == b.0 && end == b.0 + PUD_SIZE + PMD_SIZE + PAGE_SIZE));
    assert_eq!(pt.translate(&env, b), None);

    // Holes: strict reports the first one, with the level of the invalid entry.
    let err = pt.unmap_range(&mut env, b, PAGE_SIZE).unwrap_err();
    assert_eq!(err, PgtableError::NotMapped { va: b, level: 1 });
    let v = VirtAddr(VMALLOC_START);
    assert_eq!(
        pt.unmap_range(&mut env, v, PAGE_SIZE),
        Err(PgtableError::NotMapped { va: v, level: 0 })
    );
    pt.map_range(&mut env, v, PhysAddr(0x1000), 2 * PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    env.events.clear();
    let err = pt.unmap_range(&mut env, v, 3 * PAGE_SIZE).unwrap_err();
    assert_eq!(
        err,
        PgtableError::NotMapped {
            va: v.add(2 * PAGE_SIZE),
            level: 3
        }
    );
    // What was cleared before the hole was flushed.
    assert_eq!(
        env.events,
        [Event::Flush {
            start: v.0,
            end: v.0 + 2 * PAGE_SIZE,
            seen: Some(0)
        }]
    );
    assert_eq!(pt.translate(&env, v), None);

    // allow_holes: a vmap area with its guard page, across tables and a missing pmd.
    pt.map_range(&mut env, v, PhysAddr(0x1000), 2 * PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    let far = v.add(PUD_SIZE - PAGE_SIZE);
    pt.map_range(&mut env, far, PhysAddr(0x2000), PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    env.events.clear();
    let calls = env.table_ptr_calls.get();
    pt.unmap_range_allow_holes(&mut env, v, PUD_SIZE + PAGE_SIZE).unwrap();
    assert_eq!(env.events.len(), 1);
    assert_eq!(pt.translate(&env, v), None);
    assert_eq!(pt.translate(&env, far), None);
    // Holes at the pmd level are skipped a whole pmd at a time.
    assert!(
        env.table_ptr_calls.get() - calls < 40,
        "{}",
        env.table_ptr_calls.get() - calls
    );
    // Nothing mapped: no flush at all.
    env.events.clear();
    pt.unmap_range_allow_holes(&mut env, v, 4 * PAGE_SIZE).unwrap();
    assert!(env.events.is_empty());
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

#[test]
fn misaligned_and_out_of_range() {
    let (mut env, mut pt) = setup();
    let v = VirtAddr(VMALLOC_START);
    let mis = |what, value| PgtableError::Misaligned {
        what,
        value,
        align: PAGE_SIZE,
    };
    let k = PAGE_KERNEL;
    assert_eq!(
        pt.map_range(&mut env, v.add(8), PhysAddr(0), PAGE_SIZE, k, false),
        Err(mis("va", v.0 + 8))
    );
    assert_eq!(
        pt.map_range(&mut env, v, PhysAddr(0x10), PAGE_SIZE, k, false),
        Err(mis("pa", 0x10))
    );
    assert_eq!(
        pt.map_range(&mut env, v, PhysAddr(0), 0x1800, k, false),
        Err(mis("size", 0x1800))
    );
    assert_eq!(pt.unmap_range(&mut env, v, 0x10), Err(mis("size", 0x10)));
    assert_eq!(
        pt.map_pages(&mut env, v, &[PhysAddr(0x1000), PhysAddr(0x2008)], k),
        Err(mis("page", 0x2008))
    );
    assert_eq!(
        pt.map_pages(&mut env, v, &[PhysAddr(0x1000), PhysAddr(1 << 48)], k),
        Err(PgtableError::PhysOutOfRange { pa: PhysAddr(1 << 48) })
    );
    assert_eq!(
        pt.translate(&env, v),
        None,
        "failed map_pages must leave nothing behind"
    );
    assert_eq!(
        pt.map_range(&mut env, v, PhysAddr((1 << 48) - PAGE_SIZE), 2 * PAGE_SIZE, k, false),
        Err(PgtableError::PhysOutOfRange {
            pa: PhysAddr((1 << 48) - PAGE_SIZE)
        })
    );
    // Lower-half and non-canonical addresses, and wrapping past the top.
    for bad in [0x4000_0000usize, 0x0001_0000_0000_0000, 0xfffe_ffff_ffff_f000] {
        assert_eq!(
            pt.map_range(&mut env, VirtAddr(bad), PhysAddr(0), PAGE_SIZE, k, false),
            Err(PgtableError::OutOfRange { va: VirtAddr(bad) })
        );
        assert_eq!(pt.translate(&env, VirtAddr(bad)), None);
        assert!(pt.walk(&env, VirtAddr(bad)).steps.iter().all(Option::is_none));
    }
    let top = VirtAddr(usize::MAX & PAGE_MASK_);
    assert_eq!(
        pt.map_range(&mut env, top, PhysAddr(0), 2 * PAGE_SIZE, k, false),
        Err(PgtableError::OutOfRange { va: top })
    );
    // The last page below the top is fine.
    pt.map_range(
        &mut env,
        VirtAddr(top.0 - PAGE_SIZE),
        PhysAddr(0x5000),
        PAGE_SIZE,
        k,
        false,
    )
    .unwrap();
    assert_eq!(
        pt.translate(&env, VirtAddr(top.0 - PAGE_SIZE + 1)),
        Some(PhysAddr(0x5001))
    );
    // Empty ranges do nothing.
    env.events.clear();
    pt.map_pages(&mut env, v, &[], k).unwrap();
    pt.unmap_range(&mut env, v, 0).unwrap();
    assert!(env.events.is_empty());
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

const PAGE_MASK_: usize = !(PAGE_SIZE - 1);

#[test]
fn identity_map_in_the_lower_half() {
    let mut env = TrackingEnv::new();
    let mut id = PageTable::new_for(&mut env, VaHalf::Lower).unwrap();
    assert_eq!(id.half(), VaHalf::Lower);
    id.map_range(
        &mut env,
        VirtAddr(0x4000_0000),
        PhysAddr(0x4000_0000),
        0x20_3000,
        PAGE_KERNEL_EXEC,
        true,
    )
    .unwrap();
    let w = id.walk(&env, VirtAddr(0x4000_1234));
    assert_eq!((w.leaf_level, w.pa), (Some(2), Some(PhysAddr(0x4000_1234))));
    assert_eq!(id.translate(&env, VirtAddr(0x4020_2fff)), Some(PhysAddr(0x4020_2fff)));
    let up = VirtAddr(PAGE_OFFSET + 0x4000_0000);
    assert_eq!(
        id.map_range(&mut env, up, PhysAddr(0), PAGE_SIZE, PAGE_KERNEL, false),
        Err(PgtableError::OutOfRange { va: up })
    );
    let edge = VirtAddr((1 << 48) - PAGE_SIZE);
    id.map_range(&mut env, edge, PhysAddr(0), PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    assert_eq!(
        id.map_range(&mut env, edge, PhysAddr(0), 2 * PAGE_SIZE, PAGE_KERNEL, false),
        Err(PgtableError::OutOfRange { va: edge })
    );
    let root = id.root();
    // SAFETY: root is the identity tree just built by this module through
    // env, and `id` makes no further edits while `again` exists.
    let again = unsafe { PageTable::from_root_for(root, VaHalf::Lower) };
    assert_eq!(
        again.translate(&env, VirtAddr(0x4000_0000)),
        Some(PhysAddr(0x4000_0000))
    );
    id.destroy(&mut env);
    assert!(env.live.is_empty());
}

#[test]
fn map_and_unmap_walk_once_per_pmd() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr(VMALLOC_START + 4 * PMD_SIZE);
    let pages: Vec<PhysAddr> = (0..1024)
        .map(|i| PhysAddr(0x4000_0000 + 4096 * (i * 7 % 1024)))
        .collect();
    pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
    pt.unmap_range(&mut env, va, pages.len() * PAGE_SIZE).unwrap();
    // Tables exist now: 2 pmd spans x 4 levels, nothing else.
    let c0 = env.table_ptr_calls.get();
    pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
    assert_eq!(env.table_ptr_calls.get() - c0, 8);
    let c1 = env.table_ptr_calls.get();
    pt.unmap_range(&mut env, va, pages.len() * PAGE_SIZE).unwrap();
    // + the flush probe's walk in the test env (4).
    assert_eq!(env.table_ptr_calls.get() - c1, 8 + 4);
    pt.destroy(&mut env);
}

#[test]
fn destroy_frees_every_table() {
    let (mut env, mut pt) = setup();
    for (i, base) in [VMALLOC_START, PAGE_OFFSET, PAGE_END - PAGE_SIZE, 0xffff_ffff_ffe0_0000]
        .iter()
        .enumerate()
    {
        pt.map_range(
            &mut env,
            VirtAddr(*base),
            PhysAddr(i * 0x10_0000),
            PAGE_SIZE,
            PAGE_KERNEL,
            false,
        )
        .unwrap();
    }
    assert_eq!(pt.count_tables(&env), env.live.len());
    assert_eq!(env.live.len(), 1 + 4 * 3);
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
    assert_eq!(env.retired.len(), 13);
}

#[test]
#[should_panic(expected = "double free")]
fn tracking_env_catches_double_free() {
    let mut env = TrackingEnv::new();
    let p = env.alloc_table().unwrap();
    env.free_table(p);
    env.free_table(p);
}

#[test]
#[should_panic(expected = "never allocated")]
fn tracking_env_catches_foreign_free() {
    let mut env = TrackingEnv::new();
    env.free_table(PhysAddr(0x4000_0000));
}

#[test]
fn walk_display() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr(VMALLOC_START + 0x3000);
    pt.map_range(&mut env, va, PhysAddr(0x4008_1000), PAGE_SIZE, PAGE_KERNEL, false)
        .unwrap();
    let w = pt.walk(&env, va.add(0x10));
    let t: Vec<PhysAddr> = w.steps.iter().flatten().map(|s| s.table).collect();
    let d: Vec<u64> = w.steps.iter().flatten().map(|s| s.desc).collect();
    let want = format!(
        "walk va 0xffff800010003010:\n\
         \x20 L0 pgd[256] in table {:#x}: pgd {:#018x} TABLE next={:#x}\n\
         \x20 L1 pud[0] in table {:#x}: pud {:#018x} TABLE next={:#x}\n\
         \x20 L2 pmd[128] in table {:#x}: pmd {:#018x} TABLE next={:#x}\n\
         \x20 L3 pte[3] in table {:#x}: pte 0x0060000040081703 PAGE pa=0x40081000 attr0=Normal RW XN AF SH=inner\n\
         \x20 => pa 0x40081010 (4 KiB page at level 3)",
        t[0].0, d[0], t[1].0, t[1].0, d[1], t[2].0, t[2].0, d[2], t[3].0, t[3].0
    );
    assert_eq!(format!("{w}"), want);
    let miss = format!("{}", pt.walk(&env, VirtAddr(VMALLOC_START + PMD_SIZE)));
    assert!(miss.contains("\n  L2 pmd[129] in table "), "{miss}");
    assert!(
        miss.ends_with("=> not mapped (no valid entry at level 2, pmd)"),
        "{miss}"
    );
    let bad = format!("{}", pt.walk(&env, VirtAddr(0x1234)));
    assert_eq!(
        bad,
        "walk va 0x1234:\n  => not a canonical address of this table's half"
    );
    pt.destroy(&mut env);
}

#[test]
fn error_messages_say_what_and_by_how_much() {
    let va = VirtAddr(0xffff_8000_1000_0000);
    let cases = [
        (
            PgtableError::NoMemory { va, level: 3 },
            "out of memory: no page for a level-3 (pte) table needed to map va 0xffff800010000000",
        ),
        (
            PgtableError::AlreadyMapped {
                va,
                existing: 0x0060_0000_4008_1703,
            },
            "va 0xffff800010000000 is already mapped (existing descriptor 0x0060000040081703); \
             refusing to overwrite it",
        ),
        (
            PgtableError::NotMapped { va, level: 2 },
            "va 0xffff800010000000 is not mapped: its level-2 (pmd) entry is invalid",
        ),
        (
            PgtableError::Misaligned {
                what: "pa",
                value: 0x4008_1234,
                align: 0x1000,
            },
            "pa 0x40081234 is not aligned to 0x1000 (it is 0x234 bytes past a boundary)",
        ),
        (
            PgtableError::PhysOutOfRange { pa: PhysAddr(1 << 48) },
            "pa 0x1000000000000 does not fit a 48-bit output address",
        ),
        (
            PgtableError::PartialBlock {
                va: va.add(0x1000),
                level: 2,
                existing: 0x0060_0000_4000_0701,
            },
            "va 0xffff800010001000 is inside the 2 MiB pmd block at 0xffff800010000000 \
             (descriptor 0x0060000040000701); unmapping part of a block would split it",
        ),
    ];
    for (e, msg) in cases {
        assert_eq!(format!("{e}"), msg);
    }
    let oor = format!("{}", PgtableError::OutOfRange { va: VirtAddr(0x1000) });
    assert!(oor.starts_with("va 0x1000 is outside this table's half"), "{oor}");
}

// -- Randomized: against a model -----------------------------------------

#[test]
fn random_operations_match_a_model() {
    // 16 MiB window across the pgd[255]/pgd[256] boundary (8 pmds).
    const WIN: usize = PAGE_END - 8 * 1024 * 1024;
    const WIN_PAGES: usize = 4096;
    let (mut env, mut pt) = setup();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // page va -> pa; blocks: 2 MiB block base vas.
    let mut model: BTreeMap<usize, usize> = BTreeMap::new();
    let mut blocks: BTreeSet<usize> = BTreeSet::new();
    // Outcomes seen, so the test cannot silently stop exercising a path:
    // map ok, AlreadyMapped, NoMemory, unmap ok, PartialBlock, NotMapped, blocks made.
    let mut seen = [0usize; 7];
    let block_of = |blocks: &BTreeSet<usize>, va: usize| {
        let b = va & !(PMD_SIZE - 1);
        blocks.contains(&b).then_some(b)
    };
    for op in 0..6000 {
        if op % 150 == 0 {
            // A fresh tree now and then: new tables (NoMemory) and empty pmds (blocks).
            let old = core::mem::replace(&mut pt, PageTable::new(&mut env).unwrap());
            old.destroy(&mut env);
            assert_eq!(env.live.len(), 1, "op {op}: leaked table pages");
            env.probe_root = Some(pt.root());
            model.clear();
            blocks.clear();
        }
        let first = rng.below(WIN_PAGES);
        let max = if rng.below(8) == 0 { 1200 } else { 40 };
        let n = 1 + rng.below(max).min(WIN_PAGES - first - 1);
        let mut va = WIN + first * PAGE_SIZE;
        let fail = (rng.below(3) == 0).then(|| rng.below(4));
        env.fail_after = fail;
        let snapshot = (env.live.clone(), model.clone(), blocks.clone());
        match rng.below(20) {
            0..=7 => {
                let pages: Vec<PhysAddr> = (0..n)
                    .map(|_| PhysAddr((rng.next() as usize & 0xff_ffff_f000) + 0x1000))
                    .collect();
                let conflict = (0..n).map(|i| va + i * PAGE_SIZE).find(|v| model.contains_key(v));
                let r = pt.map_pages(&mut env, VirtAddr(va), &pages, PAGE_KERNEL);
                match (r, conflict) {
                    (Ok(()), None) => {
                        seen[0] += 1;
                        for (i, pa) in pages.iter().enumerate() {
                            model.insert(va + i * PAGE_SIZE, pa.0);
                        }
                    }
                    (Err(PgtableError::AlreadyMapped { va: e, .. }), Some(c)) => {
                        seen[1] += 1;
                        assert_eq!(e.0, c);
                    }
                    (Err(PgtableError::NoMemory { .. }), _) if fail.is_some() => seen[2] += 1,
                    (r, c) => panic!("op {op}: map_pages {va:#x}+{n}: {r:?}, conflict {c:x?}"),
                }
            }
            8..=12 => {
                // Contiguous, block-capable: sometimes 2 MiB aligned in va and pa.
                let mut pa = (rng.next() as usize & 0xf_ffff_f000) + 0x1000;
                let mut n = n;
                if rng.below(3) != 0 {
                    va = WIN + rng.below(8) * PMD_SIZE;
                    pa &= !(PMD_SIZE - 1);
                    n = (512 + rng.below(600)).min((WIN + 16 * 1024 * 1024 - va) / PAGE_SIZE);
                }
                let conflict = (0..n).map(|i| va + i * PAGE_SIZE).find(|v| model.contains_key(v));
                let r = pt.map_range(&mut env, VirtAddr(va), PhysAddr(pa), n * PAGE_SIZE, PAGE_KERNEL, true);
                match (r, conflict) {
                    (Ok(()), None) => {
                        seen[0] += 1;
                        for i in 0..n {
                            model.insert(va + i * PAGE_SIZE, pa + i * PAGE_SIZE);
                        }
                        let mut v = va;
                        while v + PMD_SIZE <= va + n * PAGE_SIZE {
                            if v.is_multiple_of(PMD_SIZE) && (pa + v - va).is_multiple_of(PMD_SIZE) {
                                let (level, _) = leaf(&pt, &env, v).unwrap();
                                if level == 2 {
                                    blocks.insert(v);
                                    seen[6] += 1;
                                }
                            }
                            v += PAGE_SIZE;
                        }
                    }
                    (Err(PgtableError::AlreadyMapped { va: e, .. }), Some(c)) => {
                        seen[1] += 1;
                        assert_eq!(e.0, c);
                    }
                    (Err(PgtableError::NoMemory { .. }), _) if fail.is_some() => seen[2] += 1,
                    (r, c) => panic!("op {op}: map_range {va:#x}+{n}: {r:?}, conflict {c:x?}"),
                }
            }
            _ => {
                let holes = rng.below(2) == 0;
                let end = va + n * PAGE_SIZE;
                // Predict: walk the pages in order like the unmapper does.
                let mut expect = Ok(());
                let mut v = va;
                let mut cleared = Vec::new();
                while v < end {
                    if let Some(b) = block_of(&blocks, v) {
                        if b != v || end - v < PMD_SIZE {
                            expect = Err(v);
                            break;
                        }
                        cleared.push((v, true));
                        v += PMD_SIZE;
                    } else if model.contains_key(&v) || holes {
                        cleared.push((v, false));
                        v += PAGE_SIZE;
                    } else {
                        expect = Err(v);
                        break;
                    }
                }
                let r = if holes {
                    pt.unmap_range_allow_holes(&mut env, VirtAddr(va), n * PAGE_SIZE)
                } else {
                    pt.unmap_range(&mut env, VirtAddr(va), n * PAGE_SIZE)
                };
                match (&r, expect) {
                    (Ok(()), Ok(())) => seen[3] += 1,
                    (Err(PgtableError::PartialBlock { va: e, .. }), Err(x)) if e.0 == x => seen[4] += 1,
                    (Err(PgtableError::NotMapped { va: e, .. }), Err(x)) if e.0 == x && !holes => seen[5] += 1,
                    (r, x) => panic!("op {op}: unmap {va:#x}+{n} holes={holes}: {r:?}, expected {x:x?}"),
                }
                for (v, block) in cleared {
                    if block {
                        blocks.remove(&v);
                        for i in 0..512 {
                            model.remove(&(v + i * PAGE_SIZE));
                        }
                    } else {
                        model.remove(&v);
                    }
                }
            }
        }
        env.fail_after = None;
        if model == snapshot.1 {
            // Failed or no-op: the table pages are exactly as before.
            assert_eq!(env.live, snapshot.0, "op {op}: table pages changed");
            assert_eq!(blocks, snapshot.2);
        }
        let check = |pt: &PageTable, env: &TrackingEnv, v: usize| {
            assert_eq!(
                pt.translate(env, VirtAddr(v)).map(|p| p.0),
                model.get(&v).copied(),
                "op {op}: va {v:#x}"
            );
        };
        for i in 0..n.max(1024) {
            if first + i < WIN_PAGES {
                check(&pt, &env, WIN + (first + i) * PAGE_SIZE);
            }
        }
        if op % 200 == 0 {
            for i in 0..WIN_PAGES {
                check(&pt, &env, WIN + i * PAGE_SIZE);
            }
            assert_eq!(pt.count_tables(&env), env.live.len());
        }
    }
    std::eprintln!("outcomes {seen:?}");
    assert!(seen.iter().all(|&n| n >= 20), "outcomes {seen:?}");
    pt.destroy(&mut env);
    assert!(env.live.is_empty());
}

// -- The linear map as map_mem lays it out -------------------------------

use crate::drivers::of::fdt::MemRegion;

fn plan(memory: &[MemRegion], nomap: &[MemRegion], alias: (usize, usize)) -> Vec<(usize, usize, PageProt)> {
    let mut v = Vec::new();
    map_mem_plan(memory, nomap, (PhysAddr(alias.0), PhysAddr(alias.1)), |c| {
        v.push((c.start.0, c.end.0, c.prot))
    });
    v
}

/// QEMU virt with 4 GiB at 1 GiB, the image at +2 MiB, a no-map region
/// that does not start or end on a page boundary.
const RAM: MemRegion = MemRegion::new(0x4000_0000, 0x1_0000_0000);
const ALIAS: (usize, usize) = (0x4020_0000, 0x40a3_5000);
const NOMAP: MemRegion = MemRegion::new(0x4800_0800, 0x1000);

#[test]
fn map_mem_plan_splits_at_the_alias_and_around_nomap() {
    let rw = PAGE_KERNEL;
    let ro = PAGE_KERNEL_RO;
    assert_eq!(
        plan(&[RAM], &[NOMAP], ALIAS),
        vec![
            (0x4000_0000, 0x4020_0000, rw),
            (0x4020_0000, 0x40a3_5000, ro),
            (0x40a3_5000, 0x4800_0000, rw),
            // [0x4800_0800, 0x4800_1800) touches two pages: both stay out.
            (0x4800_2000, 0x1_4000_0000, rw),
        ]
    );
    // The alias is never executable, nor is the rest.
    assert!(!ro.writable && !ro.executable && rw.writable && !rw.executable);
    // No nomap: the alias still splits the range; unaligned RAM edges
    // are trimmed to whole pages; a nomap range outside RAM is ignored,
    // and one spanning two banks cuts both.
    assert_eq!(
        plan(
            &[MemRegion::new(0x4000_0100, 0x1000_0000)],
            &[MemRegion::new(0x10_0000, 0x1000)],
            ALIAS
        ),
        vec![
            (0x4000_1000, 0x4020_0000, rw),
            (0x4020_0000, 0x40a3_5000, ro),
            (0x40a3_5000, 0x5000_0000, rw),
        ]
    );
    let banks = [
        MemRegion::new(0x4000_0000, 0x4000_0000),
        MemRegion::new(0x8000_0000, 0x4000_0000),
    ];
    assert_eq!(
        plan(
            &banks,
            &[MemRegion::new(0x7fff_f000, 0x2000)],
            (0x4020_0000, 0x4040_0000)
        ),
        vec![
            (0x4000_0000, 0x4020_0000, rw),
            (0x4020_0000, 0x4040_0000, ro),
            (0x4040_0000, 0x7fff_f000, rw),
            (0x8000_1000, 0xc000_0000, rw),
        ]
    );
    // A no-map bank disappears completely.
    assert_eq!(plan(&banks[1..], &[banks[1]], ALIAS), vec![]);
}

/// Every leaf of the tree at `root`: (first va, level, descriptor).
fn leaves<E: PgtableEnv + ?Sized>(env: &E, root: PhysAddr) -> Vec<(usize, usize, u64)> {
    fn rec<E: PgtableEnv + ?Sized>(env: &E, t: PhysAddr, level: usize, va: usize, out: &mut Vec<(usize, usize, u64)>) {
        for i in 0..PTRS_PER_TABLE {
            let e = read_entry(entry_ptr(env, t, level, i));
            let d = Descriptor(e);
            let va = va | i << (PGDIR_SHIFT_ - 9 * level);
            if d.is_table(level) {
                rec(env, d.table_addr(), level + 1, va, out);
            } else if d.is_leaf(level) {
                out.push((va, level, e));
            }
        }
    }
    const PGDIR_SHIFT_: usize = 39;
    let mut out = Vec::new();
    rec(env, root, 0, 0xffff << 48, &mut out);
    out
}

fn map_plan<E: PgtableEnv + ?Sized>(pt: &mut PageTable, env: &mut E, chunks: &[(usize, usize, PageProt)]) {
    for &(s, e, prot) in chunks {
        pt.map_range(env, lin(s), PhysAddr(s), e - s, prot, true).unwrap();
    }
}

#[test]
fn linear_map_alias_gets_its_own_blocks_and_pages() {
    let (mut env, mut pt) = setup();
    let chunks = plan(&[RAM], &[NOMAP], ALIAS);
    map_plan(&mut pt, &mut env, &chunks);
    // Built at the right granularity from the start: nothing replaced,
    // so no TLB maintenance at all, one sync per map call.
    assert!(env.events.iter().all(|e| *e == Event::Sync), "{:?}", env.events);
    let all = leaves(&env, pt.root());
    let (ks, ke) = (lin(ALIAS.0).0, lin(ALIAS.1).0);
    let (ns, ne) = (lin(0x4800_0000).0, lin(0x4800_2000).0);
    let mut sizes = BTreeMap::new();
    for &(va, level, desc) in &all {
        let end = va + level_size(level);
        let prot = Descriptor(desc).prot().unwrap();
        // No leaf straddles an edge of the alias or covers no-map memory.
        assert!(
            end <= ks || va >= ke || (va >= ks && end <= ke),
            "leaf {va:#x} L{level} straddles the alias"
        );
        assert!(end <= ns || va >= ne, "leaf {va:#x} L{level} covers no-map memory");
        let in_alias = va >= ks && end <= ke;
        assert_eq!(
            prot,
            if in_alias { PAGE_KERNEL_RO } else { PAGE_KERNEL },
            "leaf {va:#x}"
        );
        assert!(!prot.executable);
        *sizes.entry((level, in_alias)).or_insert(0usize) += 1;
    }
    // Largest blocks alignment allows: [1 GiB, 2 GiB) of RAM's first GiB
    // holds the image and the hole, the other three GiB are 1 GiB blocks.
    assert_eq!(sizes.get(&(1, false)), Some(&3));
    assert_eq!(sizes.get(&(2, true)), Some(&4)); // 0x4020_0000..0x40a0_0000
    assert_eq!(sizes.get(&(3, true)), Some(&0x35)); // 0x40a0_0000..0x40a3_5000
    // RW: one 2 MiB block below the image; pages to the next 2 MiB
    // boundary after it and around the hole; 2 MiB blocks elsewhere.
    assert_eq!(
        sizes.get(&(3, false)),
        Some(&((0x40c0_0000 - 0x40a3_5000) / PAGE_SIZE + 512 - 2))
    );
    assert_eq!(
        sizes.get(&(2, false)),
        Some(&(1 + (0x4800_0000 - 0x40c0_0000) / PMD_SIZE + (0x8000_0000 - 0x4820_0000) / PMD_SIZE))
    );
    assert_eq!(pt.translate(&env, lin(0x4800_0800)), None);
    assert_eq!(pt.translate(&env, lin(0x4800_1fff)), None);
    assert_eq!(pt.translate(&env, lin(0x4800_2000)), Some(PhysAddr(0x4800_2000)));
    assert_eq!(pt.translate(&env, lin(0x47ff_f000)), Some(PhysAddr(0x47ff_f000)));
    pt.destroy(&mut env);
}

// -- Tables reached through one window per level (the fixmap) -----------

/// Tables reached as paging_init reaches them before swapper_pg_dir is
/// live: through one window per level (FIX_PGD..FIX_PTE), new tables
/// zeroed through the level-3 one. A window is a copy written back when
/// it moves, so any pointer used after its window moved reads or writes
/// the wrong table, and the tree comes out different.
struct WindowEnv {
    inner: TrackingEnv,
    win: Vec<core::cell::UnsafeCell<[u64; PTRS_PER_TABLE]>>,
    cur: [Cell<Option<usize>>; 4],
    moves: Cell<usize>,
}

impl WindowEnv {
    fn new() -> Self {
        Self {
            inner: TrackingEnv::new(),
            win: (0..4)
                .map(|_| core::cell::UnsafeCell::new([0xdead_u64; PTRS_PER_TABLE]))
                .collect(),
            cur: Default::default(),
            moves: Cell::new(0),
        }
    }

    /// Write window `level` back to its page and close it.
    fn close(&self, level: usize) {
        if let Some(old) = self.cur[level].take() {
            // SAFETY: the window is a 512-entry array of ours, `old` a live
            // table page (see open(); free_table closes a page's windows
            // before freeing it): distinct allocations, no overlap.
            unsafe { core::ptr::copy_nonoverlapping(self.win[level].get() as *const u64, old as *mut u64, 512) };
            // SAFETY: the window's own 512 entries; no pointer into it is
            // used after close (the PgtableEnv contract).
            unsafe { core::ptr::write_bytes(self.win[level].get() as *mut u64, 0xee, 512) };
        }
    }

    fn open(&self, level: usize, pa: usize) -> *mut u64 {
        let w = self.win[level].get() as *mut u64;
        if self.cur[level].get() != Some(pa) {
            self.close(level);
            // Real fixmap slots alias coherently; copies cannot, so the
            // page leaves its other window (e.g. FIX_PTE after zeroing).
            for l in 0..4 {
                if self.cur[l].get() == Some(pa) {
                    self.close(l);
                }
            }
            // SAFETY: pa is a live table page (table_ptr has inner check it
            // first; alloc_table passes a fresh one) and w the window's 512
            // entries: distinct allocations.
            unsafe { core::ptr::copy_nonoverlapping(pa as *const u64, w, 512) };
            self.cur[level].set(Some(pa));
            self.moves.set(self.moves.get() + 1);
        }
        w
    }

    fn close_all(&self) {
        (0..4).for_each(|l| self.close(l));
    }
}

// SAFETY: TrackingEnv's pages, reached through one window per level: a
// window pointer is valid for 512 entries until the next open() of its
// level, which is the contract's per-level rule; alloc_table zeroes the page
// through window 3 only, and close() writes it back before anything else
// reads the page directly.
unsafe impl PgtableEnv for WindowEnv {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = self.inner.alloc_table()?;
        // Dirty it, so only the zeroing through the window makes it a table.
        // SAFETY: a page inner just allocated for us (PAGE_SIZE bytes).
        unsafe { core::ptr::write_bytes(pa.0 as *mut u8, 0x5a, PAGE_SIZE) };
        let w = self.open(3, pa.0);
        // SAFETY: w is window 3's 512 entries, now showing pa.
        unsafe { core::ptr::write_bytes(w, 0, 512) };
        Some(pa)
    }
    fn free_table(&mut self, pa: PhysAddr) {
        self.close(3);
        for l in 0..4 {
            if self.cur[l].get() == Some(pa.0) {
                self.close(l);
            }
        }
        self.inner.free_table(pa)
    }
    fn table_ptr(&self, pa: PhysAddr, level: usize) -> *mut u64 {
        self.inner.table_ptr(pa, level); // checks it is a live table
        self.open(level, pa.0)
    }
    fn sync_new_entries(&mut self) {
        self.inner.sync_new_entries()
    }
    fn flush_tlb_kernel_range(&mut self, start: VirtAddr, end: VirtAddr) {
        self.inner.flush_tlb_kernel_range(start, end)
    }
    fn flush_tlb_pgtable(&mut self, start: VirtAddr, end: VirtAddr) {
        self.inner.flush_tlb_pgtable(start, end)
    }
}

/// The same operations, tables reached directly and through per-level
/// windows: the trees must come out identical (the generic code keeps at
/// most one table per level in hand, as the fixmap requires).
#[test]
fn tables_through_per_level_windows_give_the_same_tree() {
    fn run<E: PgtableEnv>(env: &mut E, fail_after: &mut dyn FnMut(&mut E, Option<usize>)) -> PageTable {
        let mut pt = PageTable::new(env).unwrap();
        let banks = [
            MemRegion::new(0x4000_0000, 0x1_0000_0000),
            MemRegion::new(0x2_0000_0000, 0x4020_3000),
        ];
        map_plan(&mut pt, env, &plan(&banks, &[NOMAP], ALIAS));
        // vmalloc-style pages, a replace, an unmap with holes.
        let pages: Vec<PhysAddr> = (0..700).map(|i| PhysAddr(0x9000_0000 + i * 3 * PAGE_SIZE)).collect();
        pt.map_pages(env, VirtAddr(VMALLOC_START + 0x1f_f000), &pages, PAGE_KERNEL)
            .unwrap();
        let va = VirtAddr(VMALLOC_START + 0x1f_f000 + 5 * PAGE_SIZE);
        pt.map_range_replace(env, va, PhysAddr(0x1234_5000), 3 * PAGE_SIZE, PAGE_KERNEL_RO, false)
            .unwrap();
        pt.unmap_range_allow_holes(env, VirtAddr(VMALLOC_START + 0x20_0000), 0x10_0000)
            .unwrap();
        // Failed maps that allocated tables at every level: rolled back.
        for n in 0..4 {
            fail_after(env, Some(n));
            let far = VirtAddr(VMALLOC_START + (7 << 39) + 0x1234_5000);
            let r = pt.map_range(env, far, PhysAddr(0x5000_0000), 0x40_0000, PAGE_KERNEL, true);
            assert!(matches!(r, Err(PgtableError::NoMemory { .. })), "{r:?}");
        }
        fail_after(env, None);
        pt
    }
    let mut direct = TrackingEnv::new();
    let a = run(&mut direct, &mut |e, n| e.fail_after = n);
    let mut windows = WindowEnv::new();
    let b = run(&mut windows, &mut |e, n| e.inner.fail_after = n);
    windows.close_all();
    assert!(
        windows.moves.get() > 20,
        "the windows hardly moved: {}",
        windows.moves.get()
    );
    let (la, lb) = (leaves(&direct, a.root()), leaves(&windows.inner, b.root()));
    let first = la.iter().zip(&lb).position(|(x, y)| x != y);
    assert!(
        la == lb,
        "trees differ: {} vs {} leaves, first difference at {:?}",
        la.len(),
        lb.len(),
        first.map(|i| (la[i], lb[i]))
    );
    assert_eq!(direct.live.len(), windows.inner.live.len());
    assert_eq!(a.count_tables(&direct), b.count_tables(&windows.inner));
    a.destroy(&mut direct);
    b.destroy(&mut windows.inner);
    assert!(direct.live.is_empty() && windows.inner.live.is_empty());
}

#[test]
fn change_page_range_sets_and_clears_bits_all_or_nothing() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr(VMALLOC_START + 0x20_0000);
    let pages = [PhysAddr(0x4123_4000), PhysAddr(0x4000_0000), PhysAddr(0x7fff_f000)];
    pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
    // PAGE_KERNEL -> PAGE_KERNEL_RO is one bit (AP[2]), and -> ROX one more (PXN).
    let rdonly = PAGE_KERNEL.leaf_bits(3) ^ PAGE_KERNEL_RO.leaf_bits(3);
    let pxn = PAGE_KERNEL_RO.leaf_bits(3) ^ PAGE_KERNEL_ROX.leaf_bits(3);
    assert_eq!((rdonly.count_ones(), pxn.count_ones()), (1, 1));
    env.events.clear();
    pt.change_page_range(&mut env, va, 3 * PAGE_SIZE, rdonly, 0).unwrap();
    for (i, pa) in pages.iter().enumerate() {
        assert_eq!(
            leaf(&pt, &env, va.0 + i * PAGE_SIZE),
            Some((3, pte_encode(*pa, PAGE_KERNEL_RO, 3)))
        );
    }
    // One flush for the range, seen after the change.
    assert_eq!(
        env.events,
        [Event::Flush {
            start: va.0,
            end: va.0 + 3 * PAGE_SIZE,
            seen: Some(pte_encode(pages[0], PAGE_KERNEL_RO, 3))
        }]
    );
    pt.change_page_range(&mut env, va.add(PAGE_SIZE), PAGE_SIZE, 0, pxn)
        .unwrap();
    assert_eq!(
        leaf(&pt, &env, va.0 + PAGE_SIZE),
        Some((3, pte_encode(pages[1], PAGE_KERNEL_ROX, 3)))
    );
    // A hole after the pages: nothing changes, not even the mapped ones.
    env.events.clear();
    assert_eq!(
        pt.change_page_range(&mut env, va, 4 * PAGE_SIZE, 0, rdonly),
        Err(PgtableError::NotMapped {
            va: va.add(3 * PAGE_SIZE),
            level: 3
        })
    );
    assert!(env.events.is_empty());
    assert_eq!(
        leaf(&pt, &env, va.0),
        Some((3, pte_encode(pages[0], PAGE_KERNEL_RO, 3)))
    );
    // A block would have to be split: refused.
    let bva = VirtAddr((VMALLOC_START + 2 * PMD_SIZE) & !(PMD_SIZE - 1));
    pt.map_range(&mut env, bva, PhysAddr(0x8000_0000), PMD_SIZE, PAGE_KERNEL, true)
        .unwrap();
    assert!(matches!(
        pt.change_page_range(&mut env, bva, PAGE_SIZE, rdonly, 0),
        Err(PgtableError::PartialBlock { level: 2, .. })
    ));
    assert_eq!(
        leaf(&pt, &env, bva.0),
        Some((2, pte_encode(PhysAddr(0x8000_0000), PAGE_KERNEL, 2)))
    );
    pt.destroy(&mut env);
}

#[test]
fn translate_and_walk_inside_pmd_and_pud_blocks() {
    let (mut env, mut pt) = setup();
    // 1 GiB + 2 MiB, both aligned: one PUD block, then one PMD block.
    let va = VirtAddr((VMALLOC_START + 2 * PUD_SIZE) & !(PUD_SIZE - 1));
    let pa = PhysAddr(0x1_0000_0000);
    pt.map_range(&mut env, va, pa, PUD_SIZE + PMD_SIZE, PROT_DEVICE_NGNRE, true)
        .unwrap();
    for off in [0, 0x1234, PUD_SIZE - 8, PUD_SIZE, PUD_SIZE + 0x1f_f000] {
        assert_eq!(pt.translate(&env, va.add(off)), Some(pa.add(off)), "offset {:#x}", off);
    }
    assert_eq!(leaf(&pt, &env, va.0 + 0x5000).map(|l| l.0), Some(1));
    assert_eq!(leaf(&pt, &env, va.0 + PUD_SIZE + 0x5000).map(|l| l.0), Some(2));
    assert_eq!(
        pt.walk(&env, va.add(PUD_SIZE + 0x5123)).pa,
        Some(pa.add(PUD_SIZE + 0x5123))
    );
    assert_eq!(pt.translate(&env, va.add(PUD_SIZE + PMD_SIZE)), None);
    // Unmapping takes whole blocks, and never part of one.
    assert!(matches!(
        pt.unmap_range(&mut env, va.add(PUD_SIZE), PAGE_SIZE),
        Err(PgtableError::PartialBlock { level: 2, .. })
    ));
    pt.unmap_range(&mut env, va, PUD_SIZE + PMD_SIZE).unwrap();
    assert_eq!(pt.translate(&env, va.add(PUD_SIZE)), None);
    pt.destroy(&mut env);
}

#[test]
fn free_empty_table_makes_room_for_a_block() {
    let (mut env, mut pt) = setup();
    let va = VirtAddr((VMALLOC_START + 4 * PUD_SIZE) & !(PUD_SIZE - 1));
    // No table down there: the slot is free already.
    assert!(pt.free_empty_table(&mut env, va, 2));
    // A page mapped and unmapped leaves its PTE table (as vunmap does).
    pt.map_pages(&mut env, va.add(PAGE_SIZE), &[PhysAddr(0x4000_0000)], PAGE_KERNEL)
        .unwrap();
    let tables = pt.count_tables(&env);
    // Still mapped: refused, nothing freed.
    assert!(!pt.free_empty_table(&mut env, va, 2));
    assert_eq!(pt.count_tables(&env), tables);
    pt.unmap_range(&mut env, va.add(PAGE_SIZE), PAGE_SIZE).unwrap();
    // A block cannot go over the table...
    assert!(matches!(
        pt.map_range(&mut env, va, PhysAddr(0x8000_0000), PMD_SIZE, PROT_DEVICE_NGNRE, true),
        Ok(())
    ));
    assert_eq!(
        leaf(&pt, &env, va.0).map(|l| l.0),
        Some(3),
        "mapped inside the old table"
    );
    pt.unmap_range(&mut env, va, PMD_SIZE).unwrap();
    // ...until the empty table is freed, with a walk-cache flush first.
    env.events.clear();
    assert!(pt.free_empty_table(&mut env, va, 2));
    assert_eq!(pt.count_tables(&env), tables - 1);
    assert_eq!(
        env.events,
        [Event::FlushPgtable {
            start: va.0,
            end: va.0 + PMD_SIZE
        }]
    );
    pt.map_range(&mut env, va, PhysAddr(0x8000_0000), PMD_SIZE, PROT_DEVICE_NGNRE, true)
        .unwrap();
    assert_eq!(leaf(&pt, &env, va.0).map(|l| l.0), Some(2));
    // A block in the slot is not a table to free.
    assert!(!pt.free_empty_table(&mut env, va, 2));
    pt.unmap_range(&mut env, va, PMD_SIZE).unwrap();
    // The PUD slot above: its PMD table (now empty) goes, subtables too.
    pt.map_pages(&mut env, va.add(3 * PMD_SIZE), &[PhysAddr(0x4000_0000)], PAGE_KERNEL)
        .unwrap();
    pt.unmap_range(&mut env, va.add(3 * PMD_SIZE), PAGE_SIZE).unwrap();
    let before = pt.count_tables(&env);
    assert!(pt.free_empty_table(&mut env, va, 1));
    assert_eq!(pt.count_tables(&env), before - 2);
    pt.map_range(&mut env, va, PhysAddr(0x1_0000_0000), PUD_SIZE, PROT_DEVICE_NGNRE, true)
        .unwrap();
    assert_eq!(leaf(&pt, &env, va.0 + PMD_SIZE).map(|l| l.0), Some(1));
    // Bad levels are refused.
    assert!(!pt.free_empty_table(&mut env, va, 3));
    assert!(!pt.free_empty_table(&mut env, va, 0));
    pt.destroy(&mut env);
}
