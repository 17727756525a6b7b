// SPDX-License-Identifier: GPL-2.0-only
//! Tests of the memory-management core: W^X kernel tables, faults on
//! .text writes, .data execution and NULL, the buddy allocator over every
//! RAM bank, the heap and the object caches.

use super::{Case, Suite, Test};
use crate::arch::kernel::traps::{self, EC_DABT_CUR, EC_IABT_CUR};
use crate::arch::memory::*;
use crate::arch::mm::mmu as paging;
use crate::arch::mm::pgtable::Descriptor;
use crate::kernel::locking::spinlock::SpinLock;
use crate::mm::{heap, page_alloc, slab::KmemCache};
use crate::{kassert, kassert_eq, kexpect_fault, kskip_unless_free_pages};

pub static SUITE: Suite = Suite {
    name: "mm",
    cases: &[
        Case {
            name: "kernel_segments_are_wx",
            run: kernel_segments_are_wx,
        },
        Case {
            name: "linear_map_uses_blocks_and_xn",
            run: linear_map_uses_blocks_and_xn,
        },
        Case {
            name: "write_to_text_faults",
            run: write_to_text_faults,
        },
        Case {
            name: "exec_from_data_faults",
            run: exec_from_data_faults,
        },
        Case {
            name: "null_dereference_faults",
            run: null_dereference_faults,
        },
        Case {
            name: "stack_overflow_hits_the_guard_page",
            run: stack_overflow_hits_the_guard_page,
        },
        Case {
            name: "no_identity_map_remains",
            run: no_identity_map_remains,
        },
        Case {
            name: "every_order_alloc_free_restores_counts",
            run: every_order_alloc_free_restores_counts,
        },
        Case {
            name: "bad_free_is_refused",
            run: bad_free_is_refused,
        },
        Case {
            name: "every_bank_is_allocatable",
            run: every_bank_is_allocatable,
        },
        Case {
            name: "heap_grows_past_its_first_region",
            run: heap_grows_past_its_first_region,
        },
        Case {
            name: "object_cache_reuses_objects",
            run: object_cache_reuses_objects,
        },
        Case {
            name: "buddy_invariants_hold",
            run: buddy_invariants_hold,
        },
        Case {
            name: "linear_alias_of_text_and_rodata_is_read_only",
            run: linear_alias_of_text_and_rodata_is_read_only,
        },
        Case {
            name: "nomap_memory_is_not_in_the_linear_map",
            run: nomap_memory_is_not_in_the_linear_map,
        },
        Case {
            name: "fixmap_table_windows_are_closed",
            run: fixmap_table_windows_are_closed,
        },
    ],
};

/// The leaf descriptor and its level for `va` in swapper_pg_dir.
fn leaf(va: usize) -> Option<(u64, usize)> {
    paging::with_init_mm(|pt, env| {
        let w = pt.walk(env, VirtAddr(va));
        let level = w.leaf_level?;
        w.steps[level].map(|s| (s.desc, level))
    })
}

fn kernel_segments_are_wx(t: &mut Test) {
    let guard = paging::stack_guard_page();
    kassert!(t, leaf(guard).is_none(), "the stack guard page {:#x} is mapped", guard);
    for seg in paging::kernel_segments() {
        let mut va = seg.start.0;
        while va < seg.end.0 {
            if va == guard {
                va += PAGE_SIZE;
                continue;
            }
            let Some((desc, level)) = leaf(va) else {
                t.fail(file!(), line!(), format_args!("{} page {:#x} not mapped", seg.name, va));
                return;
            };
            kassert_eq!(t, level, 3); // 4 KiB granularity
            let prot = Descriptor(desc).prot();
            kassert!(
                t,
                prot == Some(seg.prot),
                "{} page {:#x}: prot {:?}, want {:?}",
                seg.name,
                va,
                prot,
                seg.prot
            );
            let p = seg.prot;
            kassert!(
                t,
                !(p.writable && p.executable),
                "{} is both writable and executable",
                seg.name
            );
            va += PAGE_SIZE;
        }
    }
    let (text, _, rodata, _) = (paging::kernel_segments()[0], 0, paging::kernel_segments()[1], 0);
    kassert!(t, text.prot.executable && !text.prot.writable, ".text must be RX");
    kassert!(t, !rodata.prot.executable && !rodata.prot.writable, ".rodata must be R");
}

fn linear_map_uses_blocks_and_xn(t: &mut Test) {
    let Some((desc, level)) = leaf(PAGE_OFFSET) else {
        t.fail(file!(), line!(), format_args!("start of the linear map not mapped"));
        return;
    };
    kassert!(
        t,
        level < 3,
        "linear map start mapped by a level-{} page, expected a block",
        level
    );
    let prot = Descriptor(desc).prot().unwrap();
    kassert!(
        t,
        prot.writable && !prot.executable,
        "linear map must be RW, XN: {:?}",
        prot
    );
    // A heap object is reachable through the linear map and translates back.
    let b = alloc::boxed::Box::new(0x5a5a_u64);
    let va = &*b as *const u64 as usize;
    let pa = paging::with_init_mm(|pt, env| pt.translate(env, VirtAddr(va)));
    kassert!(t, pa.is_some(), "heap address {:#x} untranslatable", va);
    let alias = paging::__va(pa.unwrap()).0 as *const u64;
    // SAFETY: `alias` is the linear-map address of the u64 that `b` owns
    // (translated just above): mapped, aligned, initialised, and `b` is
    // alive and not written during the read.
    kassert_eq!(t, unsafe { alias.read_volatile() }, 0x5a5a);
}

unsafe extern "C" {
    static _stext: u8;
}

fn write_to_text_faults(t: &mut Test) {
    let text = (&raw const _stext) as usize + 0x100;
    // SAFETY: .text is mapped read-only, so the store takes a permission
    // fault that catch_fault recovers from. Were W^X broken, it would write
    // a NOP (0xd503201f) over an aligned instruction of a function that
    // this test does not run, and the test reports the missing fault.
    let r = traps::catch_fault(|| unsafe { core::ptr::write_volatile(text as *mut u32, 0xd503201f) });
    let f = kexpect_fault!(t, r, "write to .text at {:#x} did not fault", text);
    kassert_eq!(t, f.ec(), EC_DABT_CUR);
    kassert_eq!(t, f.far as usize, text);
    kassert!(t, f.is_write(), "WnR not set for a write: esr {:#x}", f.esr);
    kassert_eq!(t, f.status().0, "permission fault");
    kassert_eq!(t, f.status().1, Some(3));
}

/// A `ret` instruction placed in .data: executing it must fault (XN).
#[unsafe(link_section = ".data")]
static mut DATA_RET: [u32; 2] = [0xd65f03c0, 0];

fn exec_from_data_faults(t: &mut Test) {
    let addr = core::ptr::addr_of!(DATA_RET) as usize;
    // SAFETY: .data is never executable, so the branch takes an instruction
    // abort that catch_fault recovers from; were it executable, DATA_RET
    // holds a lone `ret`, which returns straight back here.
    let r = traps::catch_fault(|| unsafe {
        let f: extern "C" fn() = core::mem::transmute(addr);
        f()
    });
    let f = kexpect_fault!(t, r, "executing .data at {:#x} did not fault", addr);
    kassert_eq!(t, f.ec(), EC_IABT_CUR);
    kassert_eq!(t, f.far as usize, addr);
    kassert_eq!(t, f.status().0, "permission fault");
}

fn null_dereference_faults(t: &mut Test) {
    // SAFETY: TTBR0 walks are disabled, so address 0 takes a translation
    // fault that catch_fault recovers from; a read changes no state even if
    // something were mapped there.
    let r = traps::catch_fault(|| unsafe { core::ptr::read_volatile(core::hint::black_box(0usize) as *const u64) });
    let f = kexpect_fault!(t, r, "NULL read did not fault");
    kassert_eq!(t, f.ec(), EC_DABT_CUR);
    kassert_eq!(t, f.far, 0);
    kassert_eq!(t, f.status().0, "translation fault");
    kassert_eq!(t, f.status().1, Some(0));
}

/// Recurse with 1 KiB frames until the stack is gone (the smp suite uses it
/// on a secondary's 16 KiB stack too).
#[inline(never)]
pub(super) fn eat_stack(depth: usize) -> usize {
    let buf = core::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        return 0;
    }
    eat_stack(depth - 1) + buf[depth % 1024] as usize
}

fn stack_overflow_hits_the_guard_page(t: &mut Test) {
    let guard = paging::stack_guard_page();
    let log_before = crate::kernel::printk::log_len();
    let r = traps::catch_fault(|| eat_stack(100_000));
    let said = crate::kernel::printk::log_contains_since(log_before, "Kernel stack overflow");
    let f = kexpect_fault!(t, r, "128 MiB of recursion did not overflow the stack");
    kassert_eq!(t, f.ec(), EC_DABT_CUR);
    kassert!(
        t,
        guard <= f.far as usize && (f.far as usize) < guard + PAGE_SIZE,
        "fault at {:#x}, not in the guard page {:#x}",
        f.far,
        guard
    );
    kassert!(t, said, "no 'Kernel stack overflow' report");
    // And the stack works again: 1 + 2 + ... + 16.
    kassert_eq!(t, eat_stack(16), 136);
}

fn no_identity_map_remains(t: &mut Test) {
    use aarch64_cpu::registers::{Readable, TCR_EL1, TTBR0_EL1};
    kassert!(
        t,
        TCR_EL1.is_set(TCR_EL1::EPD0),
        "TCR_EL1.EPD0 clear: TTBR0 walks still on"
    );
    kassert_eq!(t, TTBR0_EL1.get(), 0);
    // The kernel's own physical address must not be reachable any more.
    let phys = setup_phys_text();
    // SAFETY: an aligned 4-byte read; with no identity map it faults and
    // catch_fault_quiet recovers; if a mapping survived, it reads the
    // kernel's own first instruction, which changes nothing.
    let r = traps::catch_fault_quiet(|| unsafe { core::ptr::read_volatile(phys as *const u32) });
    kassert!(
        t,
        r.is_err(),
        "physical address {:#x} still readable through an identity map",
        phys
    );
}

fn setup_phys_text() -> usize {
    crate::arch::kernel::setup::boot_info().phys_text
}

fn every_order_alloc_free_restores_counts(t: &mut Test) {
    for order in 0..page_alloc::MAX_ORDER {
        let before = page_alloc::free_area_counts();
        let (free_before, _) = page_alloc::nr_free_pages();
        let Some(pa) = page_alloc::alloc_pages(order) else {
            t.fail(file!(), line!(), format_args!("alloc_pages({}) failed", order));
            return;
        };
        kassert!(
            t,
            pa.is_aligned(PAGE_SIZE << order),
            "order-{} block at {:#x} misaligned",
            order,
            pa.0
        );
        kassert_eq!(t, page_alloc::nr_free_pages().0, free_before - (1 << order));
        page_alloc::__free_pages(pa, order);
        kassert_eq!(t, page_alloc::free_area_counts(), before);
        kassert_eq!(t, page_alloc::nr_free_pages().0, free_before);
    }
}

fn bad_free_is_refused(t: &mut Test) {
    let before = page_alloc::free_area_counts();
    let Some(pa) = page_alloc::alloc_pages(1) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(1) failed"));
        return;
    };
    page_alloc::__free_pages(pa, 1);
    page_alloc::__free_pages(pa, 1); // double free: warned, ignored
    kassert_eq!(t, page_alloc::free_area_counts(), before);
    // A kernel-image page was never given to the allocator.
    page_alloc::__free_pages(paging::kernel_image_phys().0, 0);
    kassert_eq!(t, page_alloc::free_area_counts(), before);
}

/// Allocate every free page (largest blocks first), check each zone ran
/// dry and the pages add up, then give everything back. The blocks are
/// chained through their own first word, so no other memory is needed.
fn every_bank_is_allocatable(t: &mut Test) {
    let (free_before, _) = page_alloc::nr_free_pages();
    let counts_before = page_alloc::free_area_counts();
    let mut head: usize = 0; // pa of the last block, 0 = none
    let mut got = 0usize;
    for order in (0..page_alloc::MAX_ORDER).rev() {
        while let Some(pa) = page_alloc::alloc_pages(order) {
            let va = paging::__va(pa).0 as *mut usize;
            // SAFETY: alloc_pages just gave us this block (at least one
            // page): its linear-map address is mapped, writable and aligned
            // for two words.
            unsafe {
                va.write(head);
                va.add(1).write(order);
            }
            head = pa.0;
            got += 1 << order;
        }
    }
    let mut per_zone_ok = true;
    let mut zones = 0;
    page_alloc::zones_info(|_, _, _, free| {
        per_zone_ok &= free == 0;
        zones += 1;
    });
    let (free_mid, _) = page_alloc::nr_free_pages();
    while head != 0 {
        let va = paging::__va(PhysAddr(head)).0 as *const usize;
        // SAFETY: every block on the chain got its two words written above
        // and stays ours until the __free_pages after this read.
        let (next, order) = unsafe { (va.read(), va.add(1).read()) };
        page_alloc::__free_pages(PhysAddr(head), order);
        head = next;
    }
    kassert!(
        t,
        per_zone_ok,
        "a zone still had free pages after allocating everything"
    );
    // One zone per RAM bank of the device tree (NUMA nodes stay apart).
    kassert_eq!(t, zones, crate::arch::kernel::setup::machine().memory().len());
    kassert_eq!(t, free_mid, 0);
    kassert_eq!(t, got, free_before);
    kassert_eq!(t, page_alloc::nr_free_pages().0, free_before);
    kassert_eq!(t, page_alloc::free_area_counts(), counts_before);
}

/// The heap never gives pages back, so "grows" is measured against its
/// free space now, not against the boot arena: allocate 1 MiB chunks until
/// the heap has had to take a block from the page allocator (at most its
/// free space in chunks, plus two), check every chunk, free them all. Each
/// run grows the heap by one block (2 MiB), so the suite can run again.
fn heap_grows_past_its_first_region(t: &mut Test) {
    const CHUNK: usize = 1 << 20;
    let before = heap::heap_stats();
    kskip_unless_free_pages!(t, 4 * 2 * CHUNK / PAGE_SIZE);
    let max_chunks = (before.total - before.used) / CHUNK + 2;
    let mut chunks: alloc::vec::Vec<alloc::vec::Vec<u64>> = alloc::vec::Vec::new();
    kassert!(t, chunks.try_reserve_exact(max_chunks).is_ok());
    let mut failed_at = None;
    while chunks.len() < max_chunks && heap::heap_stats().grow_events == before.grow_events {
        let mut v: alloc::vec::Vec<u64> = alloc::vec::Vec::new();
        if v.try_reserve_exact(CHUNK / 8).is_err() {
            failed_at = Some(chunks.len());
            break;
        }
        let tag = chunks.len() as u64;
        v.extend((0..CHUNK as u64 / 8).map(|i| i ^ tag << 40 ^ 0xdead_beef));
        chunks.push(v);
    }
    let intact = chunks.iter().enumerate().all(|(c, v)| {
        v.iter()
            .enumerate()
            .all(|(i, &x)| x == i as u64 ^ (c as u64) << 40 ^ 0xdead_beef)
    });
    let during = heap::heap_stats();
    let n = chunks.len();
    drop(chunks);
    kassert!(
        t,
        failed_at.is_none(),
        "1 MiB chunk {} failed: the heap could not grow ({:?})",
        failed_at.unwrap_or(0),
        during
    );
    kassert!(t, intact, "heap data corrupted");
    kassert!(
        t,
        during.grow_events > before.grow_events && during.total > before.total,
        "heap did not grow after {} chunks of 1 MiB with {} bytes free: {:?} -> {:?}",
        n,
        before.total - before.used,
        before,
        during
    );
    kassert_eq!(t, heap::heap_stats().used, before.used);
}

/// Caches live as long as the kernel (their slab pages are never given
/// back), so the test's cache is static too: running the suite again from
/// the shell reuses its pages instead of leaking new ones.
static KTEST_CACHE: SpinLock<KmemCache> = SpinLock::new(KmemCache::new("ktest_obj", 48, 16));

fn object_cache_reuses_objects(t: &mut Test) {
    let mut c = KTEST_CACHE.lock();
    let base = c.stats();
    kassert_eq!(t, base.active_objs, 0);
    let mut objs = [core::ptr::null_mut::<u8>(); 200];
    let mut got = 0;
    for o in objs.iter_mut() {
        match c.alloc() {
            Some(p) => *o = p.as_ptr(),
            None => break,
        }
        got += 1;
    }
    let misaligned = objs[..got].iter().find(|p| !(**p as usize).is_multiple_of(16)).copied();
    if got < objs.len() || misaligned.is_some() {
        for o in &objs[..got] {
            // SAFETY: objs[..got] are non-null objects this cache's alloc
            // returned, each freed once here and not used again (free's
            // contract).
            unsafe { c.free(core::ptr::NonNull::new_unchecked(*o)) };
        }
        kassert!(t, got == objs.len(), "kmem_cache alloc failed after {} objects", got);
        kassert!(
            t,
            misaligned.is_none(),
            "object {:p} misaligned",
            misaligned.unwrap_or_default()
        );
    }
    let s = c.stats();
    kassert_eq!(t, s.active_objs, 200);
    kassert_eq!(t, s.slab_pages, base.slab_pages.max(200usize.div_ceil(PAGE_SIZE / 48)));
    for o in objs.iter() {
        // SAFETY: all 200 objects came from this cache's alloc (got ==
        // 200 here, else the branch above returned), each freed once.
        unsafe { c.free(core::ptr::NonNull::new_unchecked(*o)) };
    }
    kassert_eq!(t, c.stats().active_objs, 0);
    let Some(again) = c.alloc() else {
        t.fail(file!(), line!(), format_args!("kmem_cache alloc after free failed"));
        return;
    };
    let reused = objs.contains(&again.as_ptr());
    // SAFETY: `again` came from this cache's alloc just above, freed once.
    unsafe { c.free(again) };
    kassert!(t, reused, "freed objects not reused");
    kassert_eq!(t, c.stats().slab_pages, s.slab_pages);
    kassert_eq!(t, c.stats().active_objs, 0);
}

fn buddy_invariants_hold(t: &mut Test) {
    if let Err((zone, e)) = page_alloc::check_all() {
        t.fail(file!(), line!(), format_args!("zone {}: {}", zone, e));
    }
}

unsafe extern "C" {
    static __start_rodata: u8;
    static __end_rodata: u8;
}

/// A string in .rodata whose linear alias the test tries to overwrite.
static RODATA_WORD: u64 = 0x0123_4567_89ab_cdef;

/// The linear map must not be a writable (or executable) way around W^X:
/// writes to the alias of .text and .rodata take a permission fault, and
/// no block or page of the linear map straddles the alias's edges.
fn linear_alias_of_text_and_rodata_is_read_only(t: &mut Test) {
    let text = (&raw const _stext) as usize + 0x100;
    let rodata = core::ptr::addr_of!(RODATA_WORD) as usize;
    let (ro_start, ro_end) = ((&raw const __start_rodata) as usize, (&raw const __end_rodata) as usize);
    kassert!(
        t,
        ro_start <= rodata && rodata < ro_end,
        "RODATA_WORD at {:#x} is not in .rodata [{:#x}, {:#x})",
        rodata,
        ro_start,
        ro_end
    );
    for (what, addr) in [(".text", text), (".rodata", rodata)] {
        let alias = paging::__va(paging::__pa_symbol(addr)).0;
        // Readable, and the same bytes as the image.
        // SAFETY: `addr` lies in the image's .text/.rodata (mapped, and
        // aligned: _stext + 0x100, a u64 static) and `alias` is its linear
        // alias; aligned 4-byte reads of memory nothing writes.
        let (a, b) = unsafe {
            (
                core::ptr::read_volatile(alias as *const u32),
                core::ptr::read_volatile(addr as *const u32),
            )
        };
        kassert_eq!(t, a, b);
        // SAFETY: the alias is read-only, so the store takes a permission
        // fault that catch_fault recovers from; were it writable, the store
        // puts back the value just read, changing nothing.
        let r = traps::catch_fault(|| unsafe { core::ptr::write_volatile(alias as *mut u32, a) });
        let f = kexpect_fault!(
            t,
            r,
            "write to the linear alias {:#x} of {} {:#x} did not fault",
            alias,
            what,
            addr
        );
        kassert_eq!(t, f.ec(), EC_DABT_CUR);
        kassert_eq!(t, f.far as usize, alias);
        kassert!(t, f.is_write(), "WnR not set for a write: esr {:#x}", f.esr);
        kassert_eq!(t, f.status().0, "permission fault");
        let Some((desc, _)) = leaf(alias) else {
            t.fail(
                file!(),
                line!(),
                format_args!("alias {:#x} of {} not mapped", alias, what),
            );
            return;
        };
        let prot = Descriptor(desc).prot().unwrap();
        kassert!(t, !prot.writable && !prot.executable, "alias of {}: {:?}", what, prot);
    }
    // The leaves at the alias's edges end at the edges.
    let (ks, ke) = paging::linear_text_alias_phys();
    let (ks, ke) = (paging::__va(ks).0, paging::__va(ke).0);
    for (va, inside) in [(ks, true), (ke - PAGE_SIZE, true), (ke, false), (ks - PAGE_SIZE, false)] {
        let Some((desc, level)) = leaf(va) else {
            t.fail(
                file!(),
                line!(),
                format_args!("linear map {:#x} next to the text alias not mapped", va),
            );
            return;
        };
        let size = level_size(level);
        let (start, end) = (va & !(size - 1), (va & !(size - 1)) + size);
        kassert!(
            t,
            if inside {
                start >= ks && end <= ke
            } else {
                end <= ks || start >= ke
            },
            "the level-{} leaf [{:#x}, {:#x}) straddles the text alias [{:#x}, {:#x})",
            level,
            start,
            end,
            ks,
            ke
        );
        let prot = Descriptor(desc).prot().unwrap();
        kassert_eq!(t, prot.writable, !inside);
        kassert!(t, !prot.executable, "linear map {:#x} executable", va);
    }
    // The alias of .data stays writable (the heap and page tables need it).
    static mut DATA_WORD: u64 = 7;
    let alias = paging::__va(paging::__pa_symbol(core::ptr::addr_of!(DATA_WORD) as usize)).0 as *mut u64;
    // SAFETY: `alias` is the linear-map address of DATA_WORD (writable, so
    // mapped and aligned), a static only this test touches, through raw
    // pointers only (no reference to the static mut is made).
    unsafe {
        alias.write_volatile(42);
        kassert_eq!(t, core::ptr::addr_of!(DATA_WORD).read_volatile(), 42);
    }
}

/// `/reserved-memory` nodes with `no-map` are MEMBLOCK_NOMAP: no linear
/// mapping at all, so `__va` of them takes a translation fault. QEMU's own
/// device tree has none: the case skips then (the DT corpus boots have one).
fn nomap_memory_is_not_in_the_linear_map(t: &mut Test) {
    let nomap: alloc::vec::Vec<_> = crate::mm::memblock_lock().nomap().to_vec();
    if nomap.is_empty() {
        t.skip(format_args!("no no-map /reserved-memory region in this device tree"));
        return;
    }
    for r in nomap {
        for pa in [r.base as usize, (r.end() - 1) as usize] {
            let va = paging::__va(PhysAddr(pa)).0;
            kassert!(t, leaf(va).is_none(), "no-map {} has a linear mapping at {:#x}", r, va);
            // SAFETY: no-map memory has no linear mapping (checked just
            // above), so the read takes a translation fault that
            // catch_fault recovers from; a read changes nothing anyway.
            let res = traps::catch_fault(|| unsafe { core::ptr::read_volatile(va as *const u8) });
            let f = kexpect_fault!(t, res, "reading no-map {} through __va {:#x} did not fault", r, va);
            kassert_eq!(t, f.ec(), EC_DABT_CUR);
            kassert_eq!(t, f.far as usize, va);
            kassert_eq!(t, f.status().0, "translation fault");
        }
        // Not a valid pfn (arm64's pfn_valid is memblock_is_map_memory), so
        // ioremap, which refuses RAM, lets a driver map it.
        let pfn = phys_to_pfn(PhysAddr(r.base as usize));
        kassert!(t, !page_alloc::pfn_valid(pfn), "pfn_valid({:#x}) of no-map {}", pfn, r);
        let p = crate::arch::mm::ioremap::ioremap(PhysAddr(r.base as usize), r.size as usize);
        kassert!(t, !p.is_null(), "ioremap of no-map {} refused", r);
        // SAFETY: ioremap just mapped the region (non-null) as device
        // memory; one aligned 8-byte read inside its first page, of RAM
        // that nothing in the kernel uses (it is no-map); a fault would be
        // caught.
        let res = traps::catch_fault(|| unsafe { core::ptr::read_volatile(((p as usize) & !7) as *const u64) });
        crate::arch::mm::ioremap::iounmap(p);
        kassert!(t, res.is_ok(), "reading no-map {} through ioremap faulted", r);
        // Nor does the page allocator get it: memblock_free_all skips it.
        kassert!(
            t,
            crate::mm::memblock_lock().is_reserved(r.base),
            "no-map {} not reserved",
            r
        );
    }
}

/// paging_init's page-table windows are closed once swapper_pg_dir is live
/// (a stale window would be a writable alias of some table page), and the
/// boot console's slot is released once the console is ioremap'd.
fn fixmap_table_windows_are_closed(t: &mut Test) {
    for (name, idx) in [
        ("FIX_PGD", FIX_PGD),
        ("FIX_PUD", FIX_PUD),
        ("FIX_PMD", FIX_PMD),
        ("FIX_PTE", FIX_PTE),
    ] {
        let va = fix_to_virt(idx);
        kassert!(t, leaf(va).is_none(), "{} window at {:#x} still mapped", name, va);
    }
    kassert!(
        t,
        leaf(FIX_EARLYCON_MEM_BASE).is_none(),
        "earlycon fixmap slot still mapped"
    );
    // The fixmap's tables are reachable: a slot can still be used.
    paging::__set_fixmap(
        FIX_PTE,
        PhysAddr(paging::__pa_symbol(core::ptr::addr_of!(RODATA_WORD) as usize).0),
        crate::arch::mm::pgtable::PAGE_KERNEL_RO,
    );
    let va = fix_to_virt(FIX_PTE) + (core::ptr::addr_of!(RODATA_WORD) as usize & !PAGE_MASK);
    // SAFETY: __set_fixmap just mapped RODATA_WORD's page at FIX_PTE, so va
    // is RODATA_WORD's address in that window: mapped and aligned.
    let v = unsafe { core::ptr::read_volatile(va as *const u64) };
    paging::clear_fixmap(FIX_PTE);
    kassert_eq!(t, v, RODATA_WORD);
    kassert!(
        t,
        leaf(fix_to_virt(FIX_PTE)).is_none(),
        "FIX_PTE still mapped after clear_fixmap"
    );
}
