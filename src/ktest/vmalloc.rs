// SPDX-License-Identifier: GPL-2.0-only
//! Tests of the vmalloc subsystem: every API, guard pages, ioremap, the
//! fault-injection sweep over the pipeline's allocations, a 10k-area churn
//! with the invariant checker, and the lazy purge's batching.

use super::{Case, Suite, Test};
use crate::arch::kernel::traps;
use crate::arch::memory::*;
use crate::arch::mm::pgtable::PAGE_KERNEL;
use crate::arch::mm::{ioremap, mmu as paging};
use crate::mm::gfp::GFP_KERNEL;
use crate::mm::numa::NUMA_NO_NODE;
use crate::mm::vmalloc::{self as vm, VmFlags};
use crate::mm::{TLB_FLUSHES, fault_inject, page_alloc};
use crate::{kassert, kassert_eq, kexpect_fault, kskip_unless_free_pages};
use core::sync::atomic::Ordering;

pub static SUITE: Suite = Suite {
    name: "vmalloc",
    cases: &[
        Case {
            name: "vmalloc_maps_every_page",
            run: vmalloc_maps_every_page,
        },
        Case {
            name: "vzalloc_zeroes",
            run: vzalloc_zeroes,
        },
        Case {
            name: "multi_mib_write_read_back",
            run: multi_mib_write_read_back,
        },
        Case {
            name: "alignment_is_honoured",
            run: alignment_is_honoured,
        },
        Case {
            name: "guard_page_faults_and_is_named",
            run: guard_page_faults_and_is_named,
        },
        Case {
            name: "vfree_null_is_noop",
            run: vfree_null_is_noop,
        },
        Case {
            name: "vfree_bad_address_changes_nothing",
            run: vfree_bad_address_changes_nothing,
        },
        Case {
            name: "double_vfree_is_caught",
            run: double_vfree_is_caught,
        },
        Case {
            name: "zero_and_huge_sizes_fail",
            run: zero_and_huge_sizes_fail,
        },
        Case {
            name: "ioremap_refuses_ram",
            run: ioremap_refuses_ram,
        },
        Case {
            name: "ioremap_keeps_offset_and_reaches_device",
            run: ioremap_keeps_offset_and_reaches_device,
        },
        Case {
            name: "vmap_aliases_pages",
            run: vmap_aliases_pages,
        },
        Case {
            name: "get_vm_area_and_free_vm_area",
            run: get_vm_area_and_free_vm_area,
        },
        Case {
            name: "vmallocinfo_lists_areas",
            run: vmallocinfo_lists_areas,
        },
        Case {
            name: "big_page_array_comes_from_vmalloc",
            run: big_page_array_comes_from_vmalloc,
        },
        Case {
            name: "fault_injection_sweep",
            run: fault_injection_sweep,
        },
        Case {
            name: "churn_10k_areas_with_invariants",
            run: churn_10k_areas_with_invariants,
        },
        Case {
            name: "lazy_purge_batches_tlb_flushes",
            run: lazy_purge_batches_tlb_flushes,
        },
        Case {
            name: "exhaustion_purges_and_retries",
            run: exhaustion_purges_and_retries,
        },
        Case {
            name: "vm_map_ram_small_uses_blocks",
            run: vm_map_ram_small_uses_blocks,
        },
        Case {
            name: "vm_map_ram_block_released_when_all_dirty",
            run: vm_map_ram_block_released_when_all_dirty,
        },
        Case {
            name: "vm_map_ram_large_has_own_area",
            run: vm_map_ram_large_has_own_area,
        },
        Case {
            name: "vm_unmap_ram_bad_input_changes_nothing",
            run: vm_unmap_ram_bad_input_changes_nothing,
        },
        Case {
            name: "vm_unmap_aliases_flushes_dirty_ranges",
            run: vm_unmap_aliases_flushes_dirty_ranges,
        },
        Case {
            name: "vm_map_ram_fault_injection_sweep",
            run: vm_map_ram_fault_injection_sweep,
        },
    ],
};

/// Collects text in a fixed buffer (tests search the output of vmallocinfo).
struct Buf {
    data: alloc::vec::Vec<u8>,
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.data.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl Buf {
    fn new() -> Self {
        Buf {
            data: alloc::vec::Vec::new(),
        }
    }
    fn contains(&self, needle: &str) -> bool {
        self.data.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

fn vmallocinfo_text() -> Buf {
    let mut b = Buf::new();
    let _ = vm::vmallocinfo(&mut b);
    b
}

/// Purge lazily freed areas so the trees are in their settled state.
fn settle() {
    vm::purge_vmap_area_lazy();
}

/// vfree()s its area when dropped, so a failing check cannot leak it.
struct VmallocGuard(*const u8);

impl Drop for VmallocGuard {
    fn drop(&mut self) {
        vm::vfree(self.0);
    }
}

/// Order-0 pages freed when dropped.
struct Pages(alloc::vec::Vec<PhysAddr>);

impl Drop for Pages {
    fn drop(&mut self) {
        free_pages(&self.0);
    }
}

/// `n` order-0 pages, or None (nothing kept) if the allocator runs dry.
fn alloc_page_vec(n: usize) -> Option<Pages> {
    let mut v = alloc::vec::Vec::new();
    v.try_reserve_exact(n).ok()?;
    let mut pages = Pages(v);
    for _ in 0..n {
        pages.0.push(page_alloc::alloc_pages(0)?);
    }
    Some(pages)
}

fn vmalloc_maps_every_page(t: &mut Test) {
    let p = vm::vmalloc(3 * PAGE_SIZE);
    kassert!(t, !p.is_null(), "vmalloc(3 pages) failed");
    let guard = VmallocGuard(p);
    let a = p as usize;
    kassert!(
        t,
        is_vmalloc_addr(a) && a.is_multiple_of(PAGE_SIZE),
        "bad address {:#x}",
        a
    );
    let area = vm::find_vm_area(a);
    kassert!(t, !area.is_null(), "find_vm_area({:#x}) found nothing", a);
    // SAFETY: area is non-null (asserted above): the busy vm_struct of p,
    // live until `guard` vfrees it.
    let (size, nr, flags) = unsafe { ((*area).size, (*area).nr_pages, (*area).flags) };
    kassert_eq!(t, size, 4 * PAGE_SIZE); // 3 pages + guard
    kassert_eq!(t, nr, 3);
    kassert!(
        t,
        flags.contains(VmFlags::VM_ALLOC) && !flags.contains(VmFlags::VM_UNINITIALIZED),
        "flags {:?}",
        flags
    );
    for i in 0..3 {
        let va = a + i * PAGE_SIZE;
        let Some(pa) = vm::vmalloc_to_page(va as *const u8) else {
            t.fail(file!(), line!(), format_args!("page {} of {:#x} not mapped", i, a));
            return;
        };
        kassert_eq!(t, vm::vmalloc_to_pfn(va as *const u8), Some(phys_to_pfn(pa)));
        // Write through vmalloc, read through the linear map.
        // SAFETY: va is page i of our live 3-page vmalloc area and pa the
        // page it maps (vmalloc_to_page said so), whose linear-map alias is
        // mapped too; both 8-byte accesses are aligned and in the page.
        unsafe {
            ((va + 8) as *mut u64).write_volatile(0x1234_0000 + i as u64);
            kassert_eq!(
                t,
                ((paging::__va(pa).0 + 8) as *const u64).read_volatile(),
                0x1234_0000 + i as u64
            );
        }
    }
    kassert!(
        t,
        vm::vmalloc_to_page((a + 3 * PAGE_SIZE) as *const u8).is_none(),
        "guard page is mapped"
    );
    drop(guard);
    kassert!(t, vm::find_vm_area(a).is_null(), "area still busy after vfree");
}

fn vzalloc_zeroes(t: &mut Test) {
    // Dirty some pages first so the allocator hands back used memory.
    let d = vm::vmalloc(8 * PAGE_SIZE);
    kassert!(t, !d.is_null());
    // SAFETY: d is a non-null (asserted) vmalloc area of 8 writable pages,
    // ours until the vfree below.
    unsafe { core::ptr::write_bytes(d, 0xa5, 8 * PAGE_SIZE) };
    vm::vfree(d);
    let p = vm::vzalloc(8 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    // SAFETY: p is a non-null (asserted) vzalloc area of 8 initialised
    // (zeroed) pages; the slice is dropped before the vfree.
    let s = unsafe { core::slice::from_raw_parts(p, 8 * PAGE_SIZE) };
    let nonzero = s.iter().position(|&b| b != 0);
    vm::vfree(p);
    kassert!(t, nonzero.is_none(), "vzalloc byte {} not zero", nonzero.unwrap_or(0));
}

fn multi_mib_write_read_back(t: &mut Test) {
    const SIZE: usize = 8 << 20;
    let p = vm::vmalloc(SIZE) as *mut u64;
    kassert!(t, !p.is_null(), "vmalloc(8 MiB) failed");
    let words = SIZE / 8;
    // SAFETY: p is a non-null (asserted) vmalloc area of SIZE bytes, i.e.
    // `words` aligned u64s, and every index is < words; it is freed only
    // on the way out, after the last access.
    unsafe {
        for i in (0..words).step_by(64) {
            p.add(i).write_volatile(i as u64 * 0x9e37_79b9);
        }
        for i in (0..words).step_by(64) {
            if p.add(i).read_volatile() != i as u64 * 0x9e37_79b9 {
                vm::vfree(p as *const u8);
                t.fail(file!(), line!(), format_args!("word {} read back wrong", i));
                return;
            }
        }
    }
    vm::vfree(p as *const u8);
}

fn alignment_is_honoured(t: &mut Test) {
    for &align in &[PAGE_SIZE * 4, PMD_SIZE, 1 << 24] {
        let p = vm::vmalloc_aligned(2 * PAGE_SIZE, align);
        kassert!(t, !p.is_null(), "vmalloc_aligned(2 pages, {:#x}) failed", align);
        let ok = (p as usize).is_multiple_of(align);
        vm::vfree(p);
        kassert!(t, ok, "{:p} not aligned to {:#x}", p, align);
    }
}

fn guard_page_faults_and_is_named(t: &mut Test) {
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let guard = p as usize + 2 * PAGE_SIZE;
    let log_before = crate::kernel::printk::log_len();
    // SAFETY: the guard page after a 2-page area is never mapped, so the read
    // takes a translation fault that catch_fault recovers from; a read
    // changes nothing anyway.
    let r = traps::catch_fault(|| unsafe { core::ptr::read_volatile(guard as *const u8) });
    let named = crate::kernel::printk::log_contains_since(log_before, "in the GUARD PAGE of area");
    vm::vfree(p);
    let f = kexpect_fault!(t, r, "guard page {:#x} did not fault", guard);
    kassert_eq!(t, f.far as usize, guard);
    kassert_eq!(t, f.status().0, "translation fault");
    kassert!(t, named, "the oops did not name the vmalloc area of the guard page");
}

fn vfree_null_is_noop(t: &mut Test) {
    settle();
    let before = vm::snapshot();
    vm::vfree(core::ptr::null());
    vm::vunmap(core::ptr::null());
    kassert_eq!(t, vm::snapshot(), before);
}

fn vfree_bad_address_changes_nothing(t: &mut Test) {
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    settle();
    let before = vm::snapshot();
    vm::vfree((p as usize + PAGE_SIZE) as *const u8); // inside, not the start
    vm::vfree((p as usize + 8) as *const u8); // not page aligned
    vm::vfree((VMALLOC_END - PAGE_SIZE) as *const u8); // nothing there
    let after = vm::snapshot();
    vm::vfree(p);
    kassert_eq!(t, after, before);
}

fn double_vfree_is_caught(t: &mut Test) {
    let p = vm::vmalloc(PAGE_SIZE);
    kassert!(t, !p.is_null());
    vm::vfree(p);
    settle();
    let before = vm::snapshot();
    let log_before = crate::kernel::printk::log_len();
    vm::vfree(p);
    kassert!(
        t,
        crate::kernel::printk::log_contains_since(log_before, "Trying to vfree() nonexistent vm area"),
        "no warning"
    );
    kassert_eq!(t, vm::snapshot(), before);
}

fn zero_and_huge_sizes_fail(t: &mut Test) {
    settle();
    let before = vm::snapshot();
    kassert!(t, vm::vmalloc(0).is_null(), "vmalloc(0) succeeded");
    let ram = page_alloc::nr_free_pages().1 * PAGE_SIZE;
    kassert!(
        t,
        vm::vmalloc(ram + PAGE_SIZE).is_null(),
        "vmalloc beyond RAM succeeded"
    );
    kassert_eq!(t, vm::snapshot(), before);
}

fn ioremap_refuses_ram(t: &mut Test) {
    settle();
    let before = vm::snapshot();
    let ram = crate::arch::kernel::setup::machine().memory()[0].region.base as usize;
    kassert!(
        t,
        ioremap::ioremap(PhysAddr(ram), PAGE_SIZE).is_null(),
        "ioremap of RAM at {:#x} succeeded",
        ram
    );
    kassert!(
        t,
        ioremap::ioremap(PhysAddr(ram - PAGE_SIZE), 2 * PAGE_SIZE).is_null(),
        "ioremap straddling RAM succeeded"
    );
    kassert_eq!(t, vm::snapshot(), before);
}

fn ioremap_keeps_offset_and_reaches_device(t: &mut Test) {
    let uart = crate::arch::kernel::setup::machine()
        .pl011()
        .map(|u| u.base as usize)
        .unwrap_or(crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS);
    // UARTFR at offset 0x18; UARTPeriphID0 at 0xfe0 reads 0x11 on a PL011.
    let p = ioremap::ioremap(PhysAddr(uart + 0xfe0), 4);
    kassert!(t, !p.is_null(), "ioremap of the PL011 failed");
    kassert_eq!(t, p as usize & !PAGE_MASK, 0xfe0);
    // SAFETY: p is non-null (asserted): ioremap mapped UARTPeriphID0 as
    // device memory, and an aligned 32-bit read of an ID register has no
    // side effects.
    let id0 = unsafe { (p as *const u32).read_volatile() } & 0xff;
    let area = vm::find_vm_area(p as usize);
    kassert!(t, !area.is_null(), "find_vm_area({:p}) found no ioremap area", p);
    // SAFETY: non-null (asserted): the busy area of p, live until iounmap.
    let (flags, phys) = unsafe { ((*area).flags, (*area).phys_addr) };
    ioremap::iounmap(p);
    kassert_eq!(t, id0, 0x11);
    kassert!(t, flags.contains(VmFlags::VM_IOREMAP), "flags {:?}", flags);
    kassert_eq!(t, phys.0, uart);
    kassert!(t, vm::find_vm_area(p as usize).is_null(), "iounmap left the area busy");
}

fn vmap_aliases_pages(t: &mut Test) {
    let Some(mut owned) = alloc_page_vec(4) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) x 4 failed"));
        return;
    };
    // Scatter the order so vmap has to map non-contiguous pages.
    owned.0.swap(0, 3);
    let pages = owned.0.clone();
    let v = vm::vmap(&pages, VmFlags::VM_MAP, PAGE_KERNEL);
    kassert!(t, !v.is_null(), "vmap failed");
    let mut bad = None;
    for (i, pa) in pages.iter().enumerate() {
        // SAFETY: v is non-null (asserted): page i of the vmap area maps
        // *pa, a page we own, whose linear alias is mapped too; aligned
        // 8-byte accesses inside the page.
        let back = unsafe {
            ((v as usize + i * PAGE_SIZE) as *mut u64).write_volatile(0xabc0 + i as u64);
            (paging::__va(*pa).0 as *const u64).read_volatile()
        };
        let mapped = vm::vmalloc_to_page((v as usize + i * PAGE_SIZE) as *const u8);
        if bad.is_none() && (back != 0xabc0 + i as u64 || mapped != Some(*pa)) {
            bad = Some((i, back, mapped));
        }
    }
    let free_before = page_alloc::nr_free_pages().0;
    vm::vunmap(v);
    // vunmap leaves the pages to their owner.
    let free_after = page_alloc::nr_free_pages().0;
    drop(owned);
    kassert!(
        t,
        bad.is_none(),
        "page (index, linear-map word, vmalloc_to_page) {:x?} wrong",
        bad
    );
    kassert_eq!(t, free_after, free_before);
}

fn get_vm_area_and_free_vm_area(t: &mut Test) {
    let area = vm::get_vm_area(5 * PAGE_SIZE, VmFlags::VM_MAP);
    kassert!(t, !area.is_null());
    // SAFETY: area is non-null (asserted): get_vm_area's live vm_struct,
    // ours until free_vm_area.
    let (addr, size) = unsafe { ((*area).addr, (*area).size) };
    kassert_eq!(t, size, 6 * PAGE_SIZE);
    kassert!(t, is_vmalloc_addr(addr));
    kassert_eq!(t, vm::find_vm_area(addr + 4 * PAGE_SIZE), area);
    // SAFETY: the live area from get_vm_area, freed once, not used after.
    unsafe { vm::free_vm_area(area) };
    kassert!(t, vm::find_vm_area(addr).is_null());
}

fn vmallocinfo_lists_areas(t: &mut Test) {
    let p = vm::vmalloc(5 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let info = vmallocinfo_text();
    let mut line = Buf::new();
    let _ = core::fmt::Write::write_fmt(
        &mut line,
        format_args!(
            "0x{:016x}-0x{:016x}   24576 src/ktest/vmalloc.rs:",
            p as usize,
            p as usize + 6 * PAGE_SIZE
        ),
    );
    let want = core::str::from_utf8(&line.data).unwrap_or("");
    // 5.10 with CONFIG_NUMA: the pages' node counts end the line.
    let nid = crate::arch::mm::numa::numa_node_id();
    let has_line = info.contains(want) && info.contains(&alloc::format!(" pages=5 vmalloc N{nid}=5\n"));
    let has_uart = info.contains(" ioremap\n") && info.contains("phys=0x0000000009000000");
    let has_text = info.contains(" vmap\n");
    vm::vfree(p);
    let after = vmallocinfo_text();
    let unpurged = after.contains("unpurged vm_area");
    kassert!(t, has_line, "no vmallocinfo line starting {}", want);
    kassert!(t, has_uart, "the ioremapped PL011 is not listed");
    kassert!(t, has_text, "the kernel segments are not listed");
    kassert!(t, unpurged, "a freed area is not listed as unpurged");
}

fn big_page_array_comes_from_vmalloc(t: &mut Test) {
    // 1024 pages -> an 8 KiB page array: allocated with vmalloc (vpages).
    let p = vm::vmalloc(1024 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let area = vm::find_vm_area(p as usize);
    kassert!(t, !area.is_null(), "find_vm_area({:p}) found nothing", p);
    // SAFETY: non-null (asserted): the busy area of p, live until the vfree.
    let pages = unsafe { (*area).pages } as usize;
    let info = vmallocinfo_text();
    vm::vfree(p);
    kassert!(
        t,
        is_vmalloc_addr(pages),
        "page array at {:#x} is not a vmalloc address",
        pages
    );
    let nid = crate::arch::mm::numa::numa_node_id();
    kassert!(
        t,
        info.contains(&alloc::format!(" pages=1024 vmalloc vpages N{nid}=1024\n")),
        "no vpages line"
    );
}

/// For each request, fail its 1st, 2nd, ... allocation in turn; after each
/// failure the allocator state must equal the state before.
fn fault_injection_sweep(t: &mut Test) {
    for &pages in &[1usize, 3, 600] {
        // Warm up: object caches and page tables for this size exist.
        let w = vm::vmalloc(pages * PAGE_SIZE);
        kassert!(t, !w.is_null());
        vm::vfree(w);
        settle();
        let before = vm::snapshot();
        let mut n = 1;
        loop {
            fault_inject::arm(n);
            let p = vm::vmalloc(pages * PAGE_SIZE);
            let (seen, injected) = fault_inject::disarm();
            if injected == 0 {
                // Every allocation of the request succeeded: the sweep is done.
                kassert!(t, !p.is_null(), "vmalloc failed without an injected failure");
                kassert!(
                    t,
                    seen >= pages + 2,
                    "only {} allocations seen for {} pages",
                    seen,
                    pages
                );
                vm::vfree(p);
                break;
            }
            kassert!(
                t,
                p.is_null(),
                "vmalloc({} pages) succeeded although allocation {} failed",
                pages,
                n
            );
            settle();
            let after = vm::snapshot();
            kassert!(
                t,
                after == before,
                "{} pages, failing allocation {}: state changed\n    before {:?}\n    after  {:?}",
                pages,
                n,
                before,
                after
            );
            if let Err(e) = vm::check_vmalloc_invariants() {
                t.fail(
                    file!(),
                    line!(),
                    format_args!("{} pages, failing allocation {}: {}", pages, n, e),
                );
                return;
            }
            n += 1;
            kassert!(t, n < 5000, "sweep did not terminate");
        }
    }
}

/// Reproducible pseudo-random churn.
use crate::lib::rand::XorShift64Star as Rng;

fn churn_10k_areas_with_invariants(t: &mut Test) {
    const N: usize = 10_000;
    // About N/2 areas of 1..4 pages live at once; with tables, 128 MiB.
    kskip_unless_free_pages!(t, N * 5 / 2 * 5 / 4);
    let mut slots: alloc::vec::Vec<usize> = alloc::vec::Vec::new();
    kassert!(t, slots.try_reserve_exact(N).is_ok());
    slots.resize(N, 0);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut live = 0usize;
    let mut frees = 0usize;
    let flushes_before = TLB_FLUSHES.load(Ordering::Relaxed);
    for op in 0..3 * N {
        let i = (rng.next() % N as u64) as usize;
        if slots[i] == 0 {
            let pages = 1 + (rng.next() % 4) as usize;
            let p = vm::vmalloc(pages * PAGE_SIZE);
            if p.is_null() {
                t.fail(
                    file!(),
                    line!(),
                    format_args!("vmalloc failed at op {} with {} live areas", op, live),
                );
                break;
            }
            slots[i] = p as usize;
            live += 1;
        } else {
            vm::vfree(slots[i] as *const u8);
            slots[i] = 0;
            live -= 1;
            frees += 1;
        }
        if op % 2500 == 0
            && let Err(e) = vm::check_vmalloc_invariants()
        {
            t.fail(file!(), line!(), format_args!("op {}: {}", op, e));
            break;
        }
    }
    for s in slots.iter_mut().filter(|s| **s != 0) {
        vm::vfree(*s as *const u8);
        *s = 0;
        frees += 1;
    }
    if t.has_failed() {
        return;
    }
    let flushes = TLB_FLUSHES.load(Ordering::Relaxed) - flushes_before;
    crate::pr_info!(
        "ktest: churn: {} vfree()s, {} TLB flush(es): {} flushes saved by the lazy purge",
        frees,
        flushes,
        frees.saturating_sub(flushes)
    );
    kassert!(
        t,
        flushes < frees / 100,
        "{} TLB flushes for {} frees: the purge did not batch",
        flushes,
        frees
    );
    if let Err(e) = vm::check_vmalloc_invariants() {
        t.fail(file!(), line!(), format_args!("after churn: {}", e));
    }
    settle();
    if let Err(e) = vm::check_vmalloc_invariants() {
        t.fail(file!(), line!(), format_args!("after purge: {}", e));
    }
}

fn lazy_purge_batches_tlb_flushes(t: &mut Test) {
    settle();
    // 3000 on one CPU (lazy_max_pages() 8192): 15000 lazy pages cross it
    // once. lazy_max_pages() grows with fls(online CPUs), n with it.
    let n = 3000 * vm::lazy_max_pages() / (32 * 1024 * 1024 / PAGE_SIZE);
    // 4 pages each, plus page tables and vm_structs: a 64 MiB machine.
    kskip_unless_free_pages!(t, n * 4 * 5 / 4);
    let mut ptrs: alloc::vec::Vec<usize> = alloc::vec::Vec::new();
    kassert!(t, ptrs.try_reserve_exact(n).is_ok());
    for i in 0..n {
        let p = vm::vmalloc(4 * PAGE_SIZE); // 5 pages of address space each
        if p.is_null() {
            for &q in &ptrs {
                vm::vfree(q as *const u8);
            }
            settle();
            t.fail(
                file!(),
                line!(),
                format_args!("vmalloc(4 pages) number {} of {} failed", i + 1, n),
            );
            return;
        }
        ptrs.push(p as usize);
    }
    let flushes_before = TLB_FLUSHES.load(Ordering::Relaxed);
    let purges_before = vm::NR_PURGES.load(Ordering::Relaxed);
    for &p in &ptrs {
        vm::vfree(p as *const u8);
    }
    let flushes = TLB_FLUSHES.load(Ordering::Relaxed) - flushes_before;
    let purges = vm::NR_PURGES.load(Ordering::Relaxed) - purges_before;
    // n * 5 pages: one purge past lazy_max_pages(), the rest pending.
    crate::pr_info!(
        "ktest: {} vfree()s caused {} TLB flush(es) in {} purge(s); {} pages still lazy",
        n,
        flushes,
        purges,
        vm::vmap_lazy_nr()
    );
    kassert!(t, purges >= 1, "lazy_max_pages exceeded but nothing was purged");
    kassert!(
        t,
        flushes <= purges,
        "{} flushes for {} purges: frees flushed individually",
        flushes,
        purges
    );
    kassert!(t, flushes * 100 < n, "{} flushes for {} frees: no batching", flushes, n);
    kassert!(
        t,
        vm::vmap_lazy_nr() <= vm::lazy_max_pages(),
        "lazy pages {} over the limit",
        vm::vmap_lazy_nr()
    );
    settle();
    kassert_eq!(t, vm::vmap_lazy_nr(), 0);
}

fn exhaustion_purges_and_retries(t: &mut Test) {
    // A small window [start, start + 8 pages): fill it, free lazily, and the
    // next allocation must purge and succeed instead of failing.
    settle();
    let a = vm::get_vm_area(64 * PAGE_SIZE, VmFlags::VM_MAP);
    kassert!(t, !a.is_null());
    // SAFETY: a is non-null (asserted): get_vm_area's live vm_struct; only
    // its address range is kept.
    let start = unsafe { (*a).addr };
    // SAFETY: the live area from get_vm_area, freed once, not used after.
    unsafe { vm::free_vm_area(a) };
    settle();
    let end = start + 8 * PAGE_SIZE;
    let caller = core::panic::Location::caller();
    let alloc_in_window = |pages: usize| {
        vm::__vmalloc_node_range(
            pages * PAGE_SIZE,
            1,
            start,
            end,
            GFP_KERNEL,
            PAGE_KERNEL,
            VmFlags::empty(),
            NUMA_NO_NODE,
            caller,
        )
    };
    let p = alloc_in_window(4);
    kassert!(t, p != 0, "first allocation in the window failed");
    vm::vfree(p as *const u8); // now lazily freed: the window looks full
    let purges_before = vm::NR_PURGES.load(Ordering::Relaxed);
    let q = alloc_in_window(6);
    let purged = vm::NR_PURGES.load(Ordering::Relaxed) > purges_before;
    if q != 0 {
        vm::vfree(q as *const u8);
    }
    kassert!(t, q != 0, "allocation after lazy free failed: no purge-and-retry");
    kassert!(t, purged, "the retry did not purge");
}

// ---------------------------------------------------------------------------
// vm_map_ram and vmap blocks
// ---------------------------------------------------------------------------

use crate::mm::vmap_block::{self as vb, VMAP_BBMAP_BITS, VMAP_BLOCK_SIZE};

/// `N` fresh pages, each tagged in its first word with its index; None
/// (nothing kept) if the allocator runs dry.
fn tagged_pages<const N: usize>() -> Option<Pages> {
    let pages = alloc_page_vec(N)?;
    for (i, &pa) in pages.0.iter().enumerate() {
        // SAFETY: alloc_page_vec just gave us these pages: each linear-map
        // address is mapped, writable and aligned.
        unsafe { (paging::__va(pa).0 as *mut u64).write_volatile(0x7a90_0000 + i as u64) };
    }
    Some(pages)
}

/// `tagged_pages` or fail the test and return.
macro_rules! tagged_pages_or_fail {
    ($t:expr, $n:literal) => {
        match tagged_pages::<$n>() {
            Some(p) => p,
            None => {
                $t.fail(file!(), line!(), format_args!("alloc_pages(0) x {} failed", $n));
                return;
            }
        }
    };
}

fn free_pages(pages: &[PhysAddr]) {
    for &pa in pages {
        page_alloc::__free_pages(pa, 0);
    }
}

/// No live blocks: fragmented ones released, dirty ranges flushed.
fn settle_blocks() {
    vb::vm_unmap_aliases();
}

fn vm_map_ram_small_uses_blocks(t: &mut Test) {
    settle_blocks();
    let owned = tagged_pages_or_fail!(t, 3);
    let pages = &owned.0[..];
    let p1 = vb::vm_map_ram(pages);
    let p2 = vb::vm_map_ram(&pages[..1]);
    let ok = !p1.is_null() && !p2.is_null();
    let (blocks, _) = vb::vmap_block_stats();
    let info = vmallocinfo_text();
    let (w1, w2) = if ok {
        // SAFETY: p1 maps 3 pages and p2 one (both non-null, so mapped);
        // both aligned reads stay inside those mappings, of pages we own
        // and nothing else writes.
        unsafe {
            (
                (p1.add(2 * PAGE_SIZE) as *const u64).read_volatile(),
                (p2 as *const u64).read_volatile(),
            )
        }
    } else {
        (0, 0)
    };
    if ok {
        vb::vm_unmap_ram(p1, 3);
        vb::vm_unmap_ram(p2, 1);
    }
    let gone = vm::vmalloc_to_page(p1).is_none();
    drop(owned);
    kassert!(t, ok, "vm_map_ram failed");
    kassert!(
        t,
        (p1 as usize).is_multiple_of(VMAP_BLOCK_SIZE),
        "first mapping {:p} is not at its block's start",
        p1
    );
    // 3 pages take a power of two (4) from the block; the next follows.
    kassert_eq!(t, p2 as usize, p1 as usize + 4 * PAGE_SIZE);
    kassert_eq!(t, blocks, 1);
    kassert_eq!(t, w1, 0x7a90_0002);
    kassert_eq!(t, w2, 0x7a90_0000);
    kassert!(
        t,
        info.contains(" 4194304 vm_map_ram\n"),
        "the block is not listed as vm_map_ram"
    );
    kassert!(t, gone, "vm_unmap_ram left the PTE in place");
}

fn vm_map_ram_block_released_when_all_dirty(t: &mut Test) {
    settle_blocks();
    let busy_before = vm::vmalloc_stats().2;
    let owned = tagged_pages_or_fail!(t, 1);
    let pages = &owned.0[..];
    let mut first = 0usize;
    let mut released = false;
    for i in 0..VMAP_BBMAP_BITS {
        let p = vb::vm_map_ram(pages);
        if p.is_null() {
            t.fail(file!(), line!(), format_args!("vm_map_ram failed at {}", i));
            break;
        }
        if i == 0 {
            first = p as usize;
        } else if p as usize != first + i * PAGE_SIZE {
            t.fail(
                file!(),
                line!(),
                format_args!("mapping {} at {:p}, expected the next page of the block", i, p),
            );
            vb::vm_unmap_ram(p, 1);
            break;
        }
        vb::vm_unmap_ram(p, 1);
        if i == VMAP_BBMAP_BITS - 1 {
            released = vb::vmap_block_stats().0 == 0;
        }
    }
    drop(owned);
    if t.has_failed() {
        return;
    }
    kassert!(t, released, "a fully dirty block was not released");
    kassert_eq!(t, vm::vmalloc_stats().2, busy_before);
    let info = vmallocinfo_text();
    kassert!(
        t,
        info.contains(" 4194304 unpurged vm_area\n"),
        "the released block is not waiting for the lazy purge"
    );
}

fn vm_map_ram_large_has_own_area(t: &mut Test) {
    let Some(owned) = alloc_page_vec(100) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) x 100 failed"));
        return;
    };
    let pages = &owned.0[..];
    let p = vb::vm_map_ram(pages);
    let found = vm::find_vmap_area(p as usize);
    // SAFETY: find_vmap_area returned a vmap_area of the busy tree, live
    // until vm_unmap_ram below (one CPU: nothing else frees it meanwhile).
    let shape = found.map(|va| unsafe {
        (
            (*va.as_ptr()).va_start,
            (*va.as_ptr()).va_end,
            (*va.as_ptr()).vm.is_none(),
        )
    });
    let mapped = (0..100).all(|i| vm::vmalloc_to_page((p as usize + i * PAGE_SIZE) as *const u8) == Some(pages[i]));
    if !p.is_null() {
        vb::vm_unmap_ram(p, 100);
    }
    let gone = vm::find_vmap_area(p as usize).is_none();
    drop(owned);
    kassert!(t, !p.is_null(), "vm_map_ram(100 pages) failed");
    // Its own area, exactly 100 pages (no guard page), no vm_struct.
    kassert_eq!(t, shape, Some((p as usize, p as usize + 100 * PAGE_SIZE, true)));
    kassert!(t, mapped, "some page is not mapped where expected");
    kassert!(t, gone, "vm_unmap_ram left the area busy");
}

fn vm_unmap_ram_bad_input_changes_nothing(t: &mut Test) {
    settle_blocks();
    let owned = tagged_pages_or_fail!(t, 2);
    let pages = &owned.0[..];
    let small = vb::vm_map_ram(&pages[..1]);
    let big_pages: alloc::vec::Vec<PhysAddr> = (0..70).map(|_| pages[1]).collect();
    let big = vb::vm_map_ram(&big_pages);
    if small.is_null() || big.is_null() {
        if !small.is_null() {
            vb::vm_unmap_ram(small, 1);
        }
        if !big.is_null() {
            vb::vm_unmap_ram(big, 70);
        }
        t.fail(
            file!(),
            line!(),
            format_args!("vm_map_ram failed: small {:p}, big {:p}", small, big),
        );
        return;
    }
    settle();
    let before = (vm::snapshot(), vb::vmap_block_stats());
    let log_before = crate::kernel::printk::log_len();
    vb::vm_unmap_ram((small as usize + PAGE_SIZE) as *const u8, 1); // never handed out
    vb::vm_unmap_ram(big, 69); // wrong count: taken as a small one, not in a block
    vb::vm_unmap_ram((big as usize + PAGE_SIZE) as *const u8, 70); // not the start
    vb::vm_unmap_ram(core::ptr::null(), 1);
    // The whole block as if it were a large mapping.
    let block = (small as usize) & !(VMAP_BLOCK_SIZE - 1);
    vb::vm_unmap_ram(block as *const u8, VMAP_BBMAP_BITS);
    let warned = crate::kernel::printk::log_contains_since(log_before, "vm_unmap_ram(");
    let after = (vm::snapshot(), vb::vmap_block_stats());
    vb::vm_unmap_ram(small, 1);
    vb::vm_unmap_ram(big, 70);
    let log_double = crate::kernel::printk::log_len();
    vb::vm_unmap_ram(small, 1); // double unmap: refused
    let double_refused = crate::kernel::printk::log_contains_since(log_double, "double unmap");
    drop(owned);
    kassert!(t, double_refused, "a double vm_unmap_ram was not refused");
    kassert_eq!(t, after, before);
    kassert!(t, warned, "bad vm_unmap_ram calls did not warn");
}

fn vm_unmap_aliases_flushes_dirty_ranges(t: &mut Test) {
    settle_blocks();
    let owned = tagged_pages_or_fail!(t, 1);
    let pages = &owned.0[..];
    let a = vb::vm_map_ram(pages);
    let b = vb::vm_map_ram(pages);
    if a.is_null() || b.is_null() {
        for p in [a, b].into_iter().filter(|p| !p.is_null()) {
            vb::vm_unmap_ram(p, 1);
        }
        t.fail(file!(), line!(), format_args!("vm_map_ram failed: {:p}, {:p}", a, b));
        return;
    }
    vb::vm_unmap_ram(a, 1); // dirty, not flushed; b keeps the block alive
    let flushes = TLB_FLUSHES.load(Ordering::Relaxed);
    vb::vm_unmap_aliases();
    let flushed = TLB_FLUSHES.load(Ordering::Relaxed) > flushes;
    let still_live = vb::vmap_block_stats().0;
    vb::vm_unmap_ram(b, 1);
    vb::vm_unmap_aliases(); // now fragmented: released
    let after = vb::vmap_block_stats().0;
    drop(owned);
    kassert!(t, flushed, "vm_unmap_aliases did not flush the dirty range");
    kassert_eq!(t, still_live, 1);
    kassert_eq!(t, after, 0);
}

/// As fault_injection_sweep, for vm_map_ram: a small request that has to
/// create a block, and a large one with its own area.
fn vm_map_ram_fault_injection_sweep(t: &mut Test) {
    let Some(owned) = alloc_page_vec(100) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) x 100 failed"));
        return;
    };
    let pages = &owned.0[..];
    for &count in &[1usize, 100] {
        // Warm up, then settle: no live block, caches warm.
        let w = vb::vm_map_ram(&pages[..count]);
        kassert!(t, !w.is_null());
        vb::vm_unmap_ram(w, count);
        settle_blocks();
        let before = (vm::snapshot(), vb::vmap_block_stats(), vb::vmap_block_cache_active());
        let mut n = 1;
        loop {
            fault_inject::arm(n);
            let p = vb::vm_map_ram(&pages[..count]);
            let (_, injected) = fault_inject::disarm();
            if injected == 0 {
                kassert!(t, !p.is_null(), "vm_map_ram failed without an injected failure");
                vb::vm_unmap_ram(p, count);
                break;
            }
            // A failed split node is retried after a purge (alloc_vmap_area
            // does that, as in Linux): success is allowed, but must then
            // unmap cleanly like any other.
            if !p.is_null() {
                vb::vm_unmap_ram(p, count);
            }
            settle_blocks();
            let after = (vm::snapshot(), vb::vmap_block_stats(), vb::vmap_block_cache_active());
            kassert!(
                t,
                after == before,
                "{} pages, failing allocation {}: state changed\n    before {:?}\n    after  {:?}",
                count,
                n,
                before,
                after
            );
            n += 1;
            kassert!(t, n < 100, "sweep did not terminate");
        }
        kassert!(t, n > 1, "{} pages: no allocation to fail", count);
    }
    settle_blocks();
    drop(owned);
    if let Err(e) = vm::check_vmalloc_invariants() {
        t.fail(file!(), line!(), format_args!("{}", e));
    }
}
