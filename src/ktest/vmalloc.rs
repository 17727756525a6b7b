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
        Case {
            name: "vmap_is_never_executable",
            run: vmap_is_never_executable,
        },
        Case {
            name: "vunmap_takes_a_vmalloc_area",
            run: vunmap_takes_a_vmalloc_area,
        },
        Case {
            name: "vmallocinfo_shows_uninitialized_areas",
            run: vmallocinfo_shows_uninitialized_areas,
        },
        Case {
            name: "vmallocinfo_one_unpurged_line_per_area",
            run: vmallocinfo_one_unpurged_line_per_area,
        },
        Case {
            name: "exhaustion_purges_fragmented_blocks",
            run: exhaustion_purges_fragmented_blocks,
        },
        Case {
            name: "page_array_is_zeroed",
            run: page_array_is_zeroed,
        },
        Case {
            name: "kvmalloc_small_and_large_use_kmalloc",
            run: kvmalloc_small_and_large_use_kmalloc,
        },
        Case {
            name: "kvmalloc_falls_back_to_vmalloc",
            run: kvmalloc_falls_back_to_vmalloc,
        },
        Case {
            name: "kvmalloc_fault_injection_sweep",
            run: kvmalloc_fault_injection_sweep,
        },
        Case {
            name: "vmalloc_user_and_32_are_zeroed_usermap",
            run: vmalloc_user_and_32_are_zeroed_usermap,
        },
        Case {
            name: "vmalloc_user_32_fault_injection_sweep",
            run: vmalloc_user_32_fault_injection_sweep,
        },
        Case {
            name: "vread_reads_areas_and_zeroes_holes",
            run: vread_reads_areas_and_zeroes_holes,
        },
        Case {
            name: "vfree_atomic_defers_until_next_vfree",
            run: vfree_atomic_defers_until_next_vfree,
        },
        Case {
            name: "vfree_in_interrupt_is_deferred",
            run: vfree_in_interrupt_is_deferred,
        },
        Case {
            name: "vfree_atomic_refuses_what_is_not_vmalloc",
            run: vfree_atomic_refuses_what_is_not_vmalloc,
        },
        Case {
            name: "set_memory_ro_write_faults",
            run: set_memory_ro_write_faults,
        },
        Case {
            name: "set_memory_x_and_nx_on_vmalloc",
            run: set_memory_x_and_nx_on_vmalloc,
        },
        Case {
            name: "set_memory_refuses_what_is_not_vmalloc",
            run: set_memory_refuses_what_is_not_vmalloc,
        },
        Case {
            name: "vm_flush_reset_perms_flushes_at_vfree",
            run: vm_flush_reset_perms_flushes_at_vfree,
        },
        Case {
            name: "vmap_pfn_maps_device_frames_nx",
            run: vmap_pfn_maps_device_frames_nx,
        },
        Case {
            name: "vmap_pfn_fault_injection_sweep",
            run: vmap_pfn_fault_injection_sweep,
        },
        Case {
            name: "pcpu_get_vm_areas_are_congruent_and_top_down",
            run: pcpu_get_vm_areas_are_congruent_and_top_down,
        },
        Case {
            name: "pcpu_get_vm_areas_fault_injection_sweep",
            run: pcpu_get_vm_areas_fault_injection_sweep,
        },
        Case {
            name: "ioremap_uses_pmd_and_pud_blocks",
            run: ioremap_uses_pmd_and_pud_blocks,
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
            // alloc_vmap_area preloads a node for a no-edge split when this
            // CPU has none: the 3rd allocation, after the vm_struct and the
            // vmap_area. Its failure is no error (5.10: "we do not really
            // care"), so vmalloc may succeed then, and only then.
            let preloads = !vm::ne_fit_preloaded();
            fault_inject::arm(n);
            let p = vm::vmalloc(pages * PAGE_SIZE);
            let (seen, injected) = fault_inject::disarm();
            if injected != 0 && !p.is_null() && preloads && n == 3 {
                vm::vfree(p);
                n += 1;
                continue;
            }
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

// ---------------------------------------------------------------------------
// 5.10's own mechanics (issue 14)
// ---------------------------------------------------------------------------

/// 5.10's vmap maps with pgprot_nx(prot): even PAGE_KERNEL_EXEC pages are
/// not executable through a vmap.
fn vmap_is_never_executable(t: &mut Test) {
    let Some(owned) = alloc_page_vec(1) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) failed"));
        return;
    };
    // A lone `ret` at the start of the page.
    // SAFETY: a fresh page of ours, mapped writable in the linear map.
    unsafe { (paging::__va(owned.0[0]).0 as *mut u32).write_volatile(0xd65f03c0) };
    let v = vm::vmap(&owned.0, VmFlags::VM_MAP, crate::arch::mm::pgtable::PAGE_KERNEL_EXEC);
    kassert!(t, !v.is_null(), "vmap failed");
    // SAFETY: the vmap is never executable, so the branch takes an
    // instruction abort that catch_fault recovers from; were it
    // executable, the page holds a lone `ret`, which returns straight here
    // (QEMU keeps instruction fetches coherent with the data write).
    let r = traps::catch_fault(|| unsafe {
        let f: extern "C" fn() = core::mem::transmute(v);
        f()
    });
    vm::vunmap(v);
    drop(owned);
    let f = kexpect_fault!(t, r, "executing a vmap of PAGE_KERNEL_EXEC at {:p} did not fault", v);
    kassert_eq!(t, f.ec(), traps::EC_IABT_CUR);
    kassert_eq!(t, f.far as usize, v as usize);
    kassert_eq!(t, f.status().0, "permission fault");
}

/// 5.10's vunmap is __vunmap(addr, 0): any area find_vm_area finds goes,
/// a vmalloc one included, without a word; its pages and page array stay
/// allocated (the caller's to free, or leaked, as in Linux).
fn vunmap_takes_a_vmalloc_area(t: &mut Test) {
    settle();
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let area = vm::find_vm_area(p as usize);
    kassert!(t, !area.is_null());
    // SAFETY: area is non-null (asserted): p's live vm_struct.
    let (pages, nr) = unsafe { ((*area).pages, (*area).nr_pages) };
    kassert_eq!(t, nr, 2);
    let free_before = page_alloc::nr_free_pages().0;
    let log_before = crate::kernel::printk::log_len();
    vm::vunmap(p);
    let warned = crate::kernel::printk::log_contains_since(log_before, "vunmap");
    let gone = vm::find_vm_area(p as usize).is_null();
    let unmapped = vm::vmalloc_to_page(p).is_none();
    let free_after = page_alloc::nr_free_pages().0;
    // Give back what 5.10 would leak (nr_vmalloc_pages keeps counting the
    // two pages, as 5.10's does).
    for i in 0..nr {
        // SAFETY: the first nr entries of the array are the area's pages,
        // which vunmap left allocated.
        page_alloc::__free_pages(unsafe { pages.add(i).read() }, 0);
    }
    // SAFETY: the area's page array, for its nr pages, freed once here.
    unsafe { vm::free_pages_array(pages, nr) };
    settle();
    kassert!(t, !warned, "vunmap of a vmalloc area warned");
    kassert!(t, gone, "vunmap left the vmalloc area busy");
    kassert!(t, unmapped, "vunmap left {:p} mapped", p);
    kassert_eq!(t, free_after, free_before);
}

/// 5.10's s_show prints an area that is still being set up
/// (VM_UNINITIALIZED) like any other.
fn vmallocinfo_shows_uninitialized_areas(t: &mut Test) {
    let area = vm::get_vm_area(3 * PAGE_SIZE, VmFlags::VM_ALLOC | VmFlags::VM_UNINITIALIZED);
    kassert!(t, !area.is_null());
    let mut want = Buf::new();
    // SAFETY: area is non-null (asserted): get_vm_area's live vm_struct.
    let _ = vm::write_vm_line(&mut want, unsafe { &*area });
    let info = vmallocinfo_text();
    // SAFETY: the live area from get_vm_area, freed once, not used after.
    unsafe { vm::free_vm_area(area) };
    let want = core::str::from_utf8(&want.data).unwrap_or("?");
    kassert!(t, want.contains(" vmalloc\n"), "line {:?}", want);
    kassert!(
        t,
        info.contains(want),
        "vmallocinfo lacks the VM_UNINITIALIZED area {:?}",
        want
    );
}

/// 5.10's show_purge_info: one "unpurged vm_area" line per lazily freed
/// area, in the purge list's order (newest first), even for neighbours.
fn vmallocinfo_one_unpurged_line_per_area(t: &mut Test) {
    settle();
    let mut ps = [core::ptr::null_mut::<u8>(); 3];
    for p in ps.iter_mut() {
        *p = vm::vmalloc(PAGE_SIZE);
    }
    if ps.iter().any(|p| p.is_null()) {
        for &p in &ps {
            vm::vfree(p);
        }
        t.fail(file!(), line!(), format_args!("vmalloc(1 page) failed: {:?}", ps));
        return;
    }
    for &p in &ps {
        vm::vfree(p);
    }
    let info = vmallocinfo_text();
    settle();
    let text = core::str::from_utf8(&info.data).unwrap_or("");
    let mut at = [None; 3];
    for (i, &p) in ps.iter().enumerate() {
        let line = alloc::format!(
            "0x{:016x}-0x{:016x} {:7} unpurged vm_area\n",
            p as usize,
            p as usize + 2 * PAGE_SIZE,
            2 * PAGE_SIZE
        );
        at[i] = text.find(line.as_str());
        kassert!(t, at[i].is_some(), "no line {:?} in\n{}", line, text);
    }
    // Freed 0, 1, 2: listed 2, 1, 0.
    kassert!(
        t,
        at[2] < at[1] && at[1] < at[0],
        "unpurged lines not newest first: {:?}",
        at
    );
}

/// 5.10's overflow path: purge_vmap_area_lazy releases fragmented vmap
/// blocks before the retry, so their address space is found again.
fn exhaustion_purges_fragmented_blocks(t: &mut Test) {
    settle_blocks();
    let owned = tagged_pages_or_fail!(t, 1);
    let p = vb::vm_map_ram(&owned.0);
    if p.is_null() {
        t.fail(file!(), line!(), format_args!("vm_map_ram(1 page) failed"));
        return;
    }
    let block = p as usize & !(VMAP_BLOCK_SIZE - 1);
    // One page dirty, the rest never handed out: a fragmented block that
    // holds its 4 MiB until something purges it.
    vb::vm_unmap_ram(p, 1);
    drop(owned);
    let blocks_before = vb::vmap_block_stats().0;
    let purges_before = vm::NR_PURGES.load(Ordering::Relaxed);
    // The block's own 4 MiB is the only window: 1023 pages + the guard page.
    let q = vm::__vmalloc_node_range(
        VMAP_BLOCK_SIZE - PAGE_SIZE,
        1,
        block,
        block + VMAP_BLOCK_SIZE,
        GFP_KERNEL,
        PAGE_KERNEL,
        VmFlags::empty(),
        crate::mm::numa::NUMA_NO_NODE,
        core::panic::Location::caller(),
    );
    let purged = vm::NR_PURGES.load(Ordering::Relaxed) > purges_before;
    let blocks_after = vb::vmap_block_stats().0;
    if q != 0 {
        vm::vfree(q as *const u8);
    }
    settle();
    kassert!(t, purged, "the retry did not purge");
    kassert_eq!(t, q, block);
    kassert_eq!(t, blocks_after, blocks_before - 1);
}

/// 5.10 allocates the page array with __GFP_ZERO: an area whose pages run
/// out half-way leaves no stale entries behind it. Checked through a
/// recycled kmalloc object and a recycled vmalloc'd (vpages) array.
fn page_array_is_zeroed(t: &mut Test) {
    for &nr in &[3usize, 1024] {
        let caller = core::panic::Location::caller();
        // Dirty an array of this size, free it, and take it again: the
        // caches hand the same object (or pages) back.
        let a = vm::alloc_pages_array(
            nr,
            GFP_KERNEL | crate::mm::gfp::__GFP_ZERO,
            crate::mm::numa::NUMA_NO_NODE,
            caller,
        );
        kassert!(t, !a.is_null(), "alloc_pages_array({}) failed", nr);
        // SAFETY: a fresh array of nr entries, ours.
        unsafe { core::ptr::write_bytes(a, 0xa5, nr) };
        // SAFETY: the array from alloc_pages_array(nr), freed once.
        unsafe { vm::free_pages_array(a, nr) };
        settle();
        let b = vm::alloc_pages_array(
            nr,
            GFP_KERNEL | crate::mm::gfp::__GFP_ZERO,
            crate::mm::numa::NUMA_NO_NODE,
            caller,
        );
        kassert!(t, !b.is_null(), "alloc_pages_array({}) failed", nr);
        // SAFETY: a fresh array of nr entries, ours.
        let dirty = (0..nr).find(|&i| unsafe { b.add(i).read() }.0 != 0);
        // SAFETY: the array from alloc_pages_array(nr), freed once.
        unsafe { vm::free_pages_array(b, nr) };
        kassert!(t, dirty.is_none(), "{} entries: entry {:?} not zero", nr, dirty);
    }
}

// ---------------------------------------------------------------------------
// The rest of 5.10's API: kvmalloc, vmalloc_user/_32, vread, vfree_atomic,
// set_memory_*, vmap_pfn, huge ioremap
// ---------------------------------------------------------------------------

use crate::mm::util::{self as kv, GFP_ATOMIC};

/// The fault-injection sweep for any allocating function: fail its 1st,
/// 2nd, ... allocation in turn. Each failure must return null and leave the
/// allocator state (after a purge) exactly as before, with the trees
/// consistent. `fallback(n, p)` says whether a success despite injected
/// failure `n` is legitimate (kvmalloc falling back to vmalloc); such a
/// result is freed and must leave nothing behind either. Returns how many
/// allocations the request made.
fn sweep_allocation(
    t: &mut Test,
    what: &str,
    alloc: &dyn Fn() -> usize,
    free: &dyn Fn(usize),
    fallback: &dyn Fn(usize, usize) -> bool,
) -> usize {
    sweep_allocation_with(t, what, alloc, free, fallback, &|| ())
}

/// [`sweep_allocation`], with `extra()` (say, each NUMA node's free pages)
/// compared before and after each failure too.
pub(super) fn sweep_allocation_with<S: PartialEq + core::fmt::Debug>(
    t: &mut Test,
    what: &str,
    alloc: &dyn Fn() -> usize,
    free: &dyn Fn(usize),
    fallback: &dyn Fn(usize, usize) -> bool,
    extra: &dyn Fn() -> S,
) -> usize {
    // Warm up: object caches and page tables for this size exist.
    let w = alloc();
    if w == 0 {
        t.fail(
            file!(),
            line!(),
            format_args!("{}: failed without an injected failure", what),
        );
        return 0;
    }
    free(w);
    settle();
    let before = (vm::snapshot(), extra());
    let mut n = 1;
    loop {
        fault_inject::arm(n);
        let p = alloc();
        let (seen, injected) = fault_inject::disarm();
        if injected == 0 {
            if p == 0 {
                t.fail(
                    file!(),
                    line!(),
                    format_args!("{}: failed without an injected failure", what),
                );
            } else {
                free(p);
            }
            return seen;
        }
        if p != 0 {
            let ok = fallback(n, p);
            free(p);
            if !ok {
                t.fail(
                    file!(),
                    line!(),
                    format_args!("{}: succeeded at {:#x} although allocation {} failed", what, p, n),
                );
                return seen;
            }
        }
        settle();
        let after = (vm::snapshot(), extra());
        if after != before {
            t.fail(
                file!(),
                line!(),
                format_args!(
                    "{}, failing allocation {}: state changed\n    before {:?}\n    after  {:?}",
                    what, n, before, after
                ),
            );
            return seen;
        }
        if let Err(e) = vm::check_vmalloc_invariants() {
            t.fail(
                file!(),
                line!(),
                format_args!("{}, failing allocation {}: {}", what, n, e),
            );
            return seen;
        }
        n += 1;
        if n >= 5000 {
            t.fail(file!(), line!(), format_args!("{}: sweep did not terminate", what));
            return seen;
        }
    }
}

/// Never a legitimate success under injection.
fn no_fallback(_n: usize, _p: usize) -> bool {
    false
}

fn kvfree_addr(p: usize) {
    // SAFETY: every caller passes what the kvmalloc family returned,
    // freed once here.
    unsafe { kv::kvfree(p as *const u8) }
}

/// Fill `len` bytes at `p` with a pattern and check it reads back.
///
/// # Safety
///
/// `[p, p + len)` is writable memory the caller owns.
unsafe fn pattern_round_trip(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        for i in 0..len {
            p.add(i).write_volatile(i as u8 ^ 0x5a);
        }
        (0..len).all(|i| p.add(i).read_volatile() == i as u8 ^ 0x5a)
    }
}

/// # Safety
///
/// `[p, p + len)` is readable memory the caller owns.
unsafe fn all_zero(p: *const u8, len: usize) -> bool {
    // SAFETY: the caller's contract.
    (0..len).all(|i| unsafe { p.add(i).read_volatile() } == 0)
}

fn kvmalloc_small_and_large_use_kmalloc(t: &mut Test) {
    const SIZES: [usize; 4] = [1, 100, PAGE_SIZE, 3 * PAGE_SIZE];
    // Warm up: the kmalloc caches have a slab for each size.
    for &size in &SIZES {
        kvfree_addr(kv::kvmalloc(size, GFP_KERNEL) as usize);
    }
    settle();
    let before = vm::snapshot();
    for &size in &SIZES {
        let p = kv::kvmalloc(size, GFP_KERNEL);
        kassert!(t, !p.is_null(), "kvmalloc({}) failed", size);
        let a = p as usize;
        // SAFETY: kvmalloc gave us `size` bytes at p.
        let ok = unsafe { pattern_round_trip(p, size) };
        kvfree_addr(a);
        kassert!(t, ok, "kvmalloc({}) memory does not hold a pattern", size);
        kassert!(
            t,
            is_linear_map_addr(a) && a.is_multiple_of(16),
            "kvmalloc({}) = {:#x}: not a 16-byte aligned kmalloc (linear map) address",
            size,
            a
        );
    }
    let z = kv::kvzalloc(2 * PAGE_SIZE, GFP_KERNEL);
    kassert!(t, !z.is_null());
    // SAFETY: kvzalloc gave us 2 pages at z.
    let zeroed = unsafe { all_zero(z, 2 * PAGE_SIZE) };
    kvfree_addr(z as usize);
    kassert!(t, zeroed, "kvzalloc memory is not zeroed");
    // SAFETY: kvfree(NULL) is a no-op.
    unsafe { kv::kvfree(core::ptr::null()) };
    kassert!(
        t,
        kv::kvmalloc_array(usize::MAX / 2, 3, GFP_KERNEL).is_null(),
        "overflow"
    );
    kassert!(t, kv::kvmalloc(0, GFP_KERNEL).is_null(), "kvmalloc(0)");
    settle();
    kassert_eq!(t, vm::snapshot(), before);
}

fn kvmalloc_falls_back_to_vmalloc(t: &mut Test) {
    // Warm up both halves (slab pages, page tables).
    vm::vfree(vm::vmalloc(5 * PAGE_SIZE));
    kvfree_addr(kv::kvmalloc(PAGE_SIZE, GFP_KERNEL) as usize);
    settle();
    let before = vm::snapshot();
    // The kmalloc attempt is the first allocation: fail it.
    fault_inject::arm(1);
    let p = kv::kvzalloc(5 * PAGE_SIZE, GFP_KERNEL);
    fault_inject::disarm();
    kassert!(t, !p.is_null(), "no vmalloc fallback after the kmalloc attempt failed");
    let a = p as usize;
    // SAFETY: kvzalloc gave us 5 pages at p.
    let (zeroed, rw) = unsafe { (all_zero(p, 5 * PAGE_SIZE), pattern_round_trip(p, 5 * PAGE_SIZE)) };
    let area = vm::find_vm_area(a);
    // SAFETY: non-null checked first: the live area of p.
    let is_vmalloc = !area.is_null() && unsafe { (*area).addr == a && (*area).flags.contains(VmFlags::VM_ALLOC) };
    kvfree_addr(a);
    kassert!(t, is_vmalloc, "fallback {:#x} is not a vmalloc area", a);
    kassert!(t, zeroed && rw, "fallback memory: zeroed {} pattern {}", zeroed, rw);
    // Up to a page, and for GFP_ATOMIC at any size, there is no fallback.
    for &(size, gfp) in &[(PAGE_SIZE, GFP_KERNEL), (5 * PAGE_SIZE, GFP_ATOMIC)] {
        fault_inject::arm(1);
        let q = kv::kvmalloc(size, gfp);
        fault_inject::disarm();
        if !q.is_null() {
            kvfree_addr(q as usize);
        }
        kassert!(t, q.is_null(), "kvmalloc({}, {:?}) fell back to vmalloc", size, gfp);
    }
    settle();
    kassert_eq!(t, vm::snapshot(), before);
}

fn kvmalloc_fault_injection_sweep(t: &mut Test) {
    for &size in &[64usize, PAGE_SIZE, 5 * PAGE_SIZE, 600 * PAGE_SIZE] {
        // The fallback's first use must not count as a leak.
        vm::vfree(vm::vmalloc(size));
        let seen = sweep_allocation(
            t,
            "kvmalloc",
            &|| kv::kvmalloc(size, GFP_KERNEL) as usize,
            &kvfree_addr,
            // Only the first (kmalloc) failure of a request above a page
            // may be survived, through vmalloc.
            &|n, p| n == 1 && size > PAGE_SIZE && is_vmalloc_addr(p),
        );
        if t.has_failed() {
            return;
        }
        kassert!(t, seen >= 1, "kvmalloc({}): no allocation seen", size);
    }
    // GFP_ATOMIC above a page: kmalloc (pages) only, no fallback.
    let seen = sweep_allocation(
        t,
        "kvzalloc(5 pages) GFP_ATOMIC",
        &|| kv::kvzalloc(5 * PAGE_SIZE, GFP_ATOMIC) as usize,
        &kvfree_addr,
        &no_fallback,
    );
    kassert!(t, seen >= 1);
}

/// A vmalloc area's pages (the area must be live).
fn area_pages(addr: usize) -> alloc::vec::Vec<PhysAddr> {
    let area = vm::find_vm_area(addr);
    if area.is_null() {
        return alloc::vec::Vec::new();
    }
    // SAFETY: non-null: the live area of addr; its array holds nr_pages.
    unsafe { core::slice::from_raw_parts((*area).pages, (*area).nr_pages).to_vec() }
}

fn area_flags(addr: usize) -> VmFlags {
    let area = vm::find_vm_area(addr);
    if area.is_null() {
        return VmFlags::empty();
    }
    // SAFETY: non-null: the live area of addr.
    unsafe { (*area).flags }
}

/// Does RAM reach above 4 GiB (QEMU virt from -m 4G on)? There
/// vmalloc_32 cannot be served: no ZONE_DMA32 to ask for low pages.
fn ram_above_4g() -> bool {
    crate::arch::kernel::setup::machine()
        .memory()
        .iter()
        .any(|b| b.region.base + b.region.size > 1 << 32)
}

fn vmalloc_user_and_32_are_zeroed_usermap(t: &mut Test) {
    const N: usize = 4 * PAGE_SIZE;
    let init = vm::init_on_alloc();
    let high_ram = ram_above_4g();
    for (name, f) in [
        ("vmalloc_user", vm::vmalloc_user as fn(usize) -> *mut u8),
        ("vmalloc_32_user", vm::vmalloc_32_user),
        ("vmalloc_32", vm::vmalloc_32),
    ] {
        // Dirty pages go back to the per-cpu list, and come out first.
        vm::set_init_on_alloc(false);
        let d = vm::vmalloc(N);
        if !d.is_null() {
            // SAFETY: vmalloc gave us N bytes at d.
            unsafe { core::ptr::write_bytes(d, 0xa5, N) };
            vm::vfree(d);
        }
        settle();
        let log = crate::kernel::printk::log_len();
        let p = f(N);
        vm::set_init_on_alloc(init);
        if p.is_null() && high_ram && name.starts_with("vmalloc_32") {
            // It may fail here, but only for that reason, and must say so.
            kassert!(
                t,
                crate::kernel::printk::log_contains_since(log, "is above 4 GiB"),
                "{}({}) failed, not for a page above 4 GiB",
                name,
                N
            );
            continue;
        }
        kassert!(t, !p.is_null(), "{}({}) failed", name, N);
        let a = p as usize;
        // SAFETY: N bytes at p are ours until the vfree.
        let zeroed = unsafe { all_zero(p, N) };
        let flags = area_flags(a);
        let pages = area_pages(a);
        vm::vfree(p);
        let user = name.ends_with("_user");
        kassert!(t, !user || zeroed, "{}: memory not zeroed", name);
        kassert!(
            t,
            !zeroed || user,
            "{}: zeroed with init_on_alloc off: the dirty pages were not reused, so the check above proves nothing",
            name
        );
        kassert!(
            t,
            flags.contains(VmFlags::VM_ALLOC) && flags.contains(VmFlags::VM_USERMAP) == user,
            "{}: flags {:?}",
            name,
            flags
        );
        kassert_eq!(t, pages.len(), N / PAGE_SIZE);
        if name.starts_with("vmalloc_32") {
            let high = pages.iter().find(|pa| pa.0 + PAGE_SIZE > 1 << 32);
            kassert!(t, high.is_none(), "{}: page {:x?} above 4 GiB", name, high);
        }
    }
}

fn vmalloc_user_32_fault_injection_sweep(t: &mut Test) {
    for (name, f) in [
        ("vmalloc_user", vm::vmalloc_user as fn(usize) -> *mut u8),
        ("vmalloc_32", vm::vmalloc_32),
        ("vmalloc_32_user", vm::vmalloc_32_user),
    ] {
        if ram_above_4g() && name.starts_with("vmalloc_32") {
            // Its success depends on where the pages come from there: the
            // sweep needs a request that succeeds without injection.
            continue;
        }
        for &pages in &[1usize, 600] {
            let seen = sweep_allocation(
                t,
                name,
                &|| f(pages * PAGE_SIZE) as usize,
                &|p| vm::vfree(p as *const u8),
                &no_fallback,
            );
            if t.has_failed() {
                return;
            }
            kassert!(t, seen >= pages + 2, "{}: only {} allocations seen", name, seen);
        }
    }
}

/// vread into a fresh buffer; (returned count, buffer).
fn vread_vec(addr: usize, count: usize) -> (usize, alloc::vec::Vec<u8>) {
    let mut buf = alloc::vec![0xeeu8; count];
    // SAFETY: buf holds count bytes and is heap memory, not vmalloc space.
    let n = unsafe { vm::vread(buf.as_mut_ptr(), addr as *const u8, count) };
    (n, buf)
}

fn vread_reads_areas_and_zeroes_holes(t: &mut Test) {
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let guard = VmallocGuard(p);
    let a = p as usize;
    for i in 0..2 * PAGE_SIZE {
        // SAFETY: 2 pages at p are ours.
        unsafe { p.add(i).write(i as u8 | 1) };
    }
    // 100 bytes before (a gap or the guard page of the area below: no
    // area data), the area, then its guard page.
    let (n, buf) = vread_vec(a - 100, 100 + 3 * PAGE_SIZE);
    kassert_eq!(t, n, 100 + 3 * PAGE_SIZE);
    kassert!(
        t,
        buf[..100].iter().all(|&b| b == 0),
        "the gap before the area is not zero"
    );
    let data = &buf[100..100 + 2 * PAGE_SIZE];
    let bad = (0..2 * PAGE_SIZE).find(|&i| data[i] != i as u8 | 1);
    kassert!(t, bad.is_none(), "area byte {:?} read wrong", bad);
    kassert!(
        t,
        buf[100 + 2 * PAGE_SIZE..].iter().all(|&b| b == 0),
        "the guard page did not read as zero"
    );
    // An unaligned piece in the middle.
    let (n, buf) = vread_vec(a + PAGE_SIZE - 3, 7);
    kassert_eq!(t, n, 7);
    let want: alloc::vec::Vec<u8> = (PAGE_SIZE - 3..PAGE_SIZE + 4).map(|i| i as u8 | 1).collect();
    kassert_eq!(t, buf, want);
    drop(guard);

    // A hole inside an area: a VM_MAP area with only its second page mapped.
    let Some(pg) = alloc_page_vec(1) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) failed"));
        return;
    };
    // SAFETY: the page is ours, mapped in the linear map.
    unsafe { core::ptr::write_bytes(paging::__va(pg.0[0]).0 as *mut u8, 0x3c, PAGE_SIZE) };
    let area = vm::get_vm_area(2 * PAGE_SIZE, VmFlags::VM_MAP);
    kassert!(t, !area.is_null());
    // SAFETY: non-null (asserted): get_vm_area's live area.
    let base = unsafe { (*area).addr };
    let r = vm::map_kernel_range(base + PAGE_SIZE, &pg.0, PAGE_KERNEL);
    let (n, buf) = vread_vec(base, 2 * PAGE_SIZE);
    vm::vunmap(base as *const u8);
    drop(pg);
    kassert_eq!(t, r, 0);
    kassert_eq!(t, n, 2 * PAGE_SIZE);
    kassert!(
        t,
        buf[..PAGE_SIZE].iter().all(|&b| b == 0),
        "the unmapped page is not zero"
    );
    kassert!(
        t,
        buf[PAGE_SIZE..].iter().all(|&b| b == 0x3c),
        "the mapped page read wrong"
    );

    // An ioremap area is skipped: the PL011's PeriphID0 (0x11) reads as 0.
    let uart = crate::arch::kernel::setup::machine()
        .pl011()
        .map(|u| u.base as usize)
        .unwrap_or(crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS);
    let io = ioremap::ioremap(PhysAddr(uart), PAGE_SIZE);
    kassert!(t, !io.is_null());
    let (n, buf) = vread_vec(io as usize + 0xfe0, 4);
    ioremap::iounmap(io);
    kassert_eq!(t, n, 4);
    kassert_eq!(t, buf, [0u8; 4]);

    // Past every area: nothing read.
    let (n, _) = vread_vec(VMALLOC_END - 64, 64);
    kassert_eq!(t, n, 0);
}

fn vfree_atomic_defers_until_next_vfree(t: &mut Test) {
    settle();
    // Warm up (both sizes' page-array caches), so the snapshot after is
    // comparable.
    vm::vfree(vm::vmalloc(3 * PAGE_SIZE));
    vm::vfree(vm::vmalloc(PAGE_SIZE));
    settle();
    let before = vm::snapshot();
    let p = vm::vmalloc(3 * PAGE_SIZE);
    let q = vm::vmalloc(PAGE_SIZE);
    kassert!(t, !p.is_null() && !q.is_null());
    vm::vfree_atomic(core::ptr::null());
    vm::vfree_atomic(p);
    // SAFETY: one CPU runs tests; nothing drains until the vfree below.
    let pending = unsafe { vm::vfree_deferred_pending() };
    let still_there = !vm::find_vm_area(p as usize).is_null();
    // The next vfree on this CPU runs the deferred work first.
    vm::vfree(q);
    let gone = vm::find_vm_area(p as usize).is_null();
    // SAFETY: as above.
    let pending_after = unsafe { vm::vfree_deferred_pending() };
    settle();
    kassert_eq!(t, pending, 1);
    kassert!(t, still_there, "vfree_atomic freed at once");
    kassert!(t, gone, "the next vfree did not drain the deferred list");
    kassert_eq!(t, pending_after, 0);
    kassert_eq!(t, vm::snapshot(), before);
}

fn vfree_in_interrupt_is_deferred(t: &mut Test) {
    use crate::arch::kernel::irq;
    vm::vfree(vm::vmalloc(2 * PAGE_SIZE));
    settle();
    let before = vm::snapshot();
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    // As an interrupt handler runs (handle_arch_irq's irq_enter/irq_exit).
    irq::irq_enter();
    let in_irq = irq::in_interrupt();
    vm::vfree(p);
    irq::irq_exit();
    let still_there = !vm::find_vm_area(p as usize).is_null();
    // SAFETY: one CPU runs tests; nothing drains until the purge below.
    let pending = unsafe { vm::vfree_deferred_pending() };
    // A purge (what a failing allocation and vm_unmap_aliases run) drains
    // every CPU's list.
    settle();
    let gone = vm::find_vm_area(p as usize).is_null();
    kassert!(t, in_irq && !irq::in_interrupt(), "in_interrupt() wrong");
    kassert!(t, still_there, "vfree in interrupt context freed at once");
    kassert_eq!(t, pending, 1);
    kassert!(t, gone, "purge_vmap_area_lazy did not drain the deferred list");
    kassert_eq!(t, vm::snapshot(), before);
}

use crate::arch::mm::pageattr;

/// Make the instructions just written at `[addr, addr + len)` visible to
/// instruction fetch (Linux: flush_icache_range).
fn flush_icache_range(addr: usize, len: usize) {
    let mut a = addr & !63;
    while a < addr + len {
        // SAFETY: cache maintenance by VA on our own mapped memory: cleans
        // the data cache line to the point of unification and invalidates
        // the instruction cache line; no memory contents change.
        unsafe { core::arch::asm!("dc cvau, {0}", "ic ivau, {0}", in(reg) a, options(nostack, preserves_flags)) };
        a += 64;
    }
    // SAFETY: barriers only.
    unsafe { core::arch::asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

fn set_memory_ro_write_faults(t: &mut Test) {
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let guard = VmallocGuard(p);
    let a = p as usize;
    vm::set_vm_flush_reset_perms(p);
    // SAFETY: 2 pages at p are ours.
    unsafe { (p.add(PAGE_SIZE) as *mut u64).write_volatile(0x1234) };
    kassert_eq!(t, pageattr::set_memory_ro(a, 2), 0);
    // SAFETY: the page is mapped read-only now: the write takes a
    // permission fault that catch_fault recovers from, and changes nothing.
    let r = traps::catch_fault(|| unsafe { (p.add(PAGE_SIZE) as *mut u64).write_volatile(0x5678) });
    // SAFETY: still mapped (read-only): a read is fine.
    let back = unsafe { (p.add(PAGE_SIZE) as *const u64).read_volatile() };
    let f = kexpect_fault!(t, r, "write to a set_memory_ro page did not fault");
    kassert_eq!(t, f.far as usize, a + PAGE_SIZE);
    kassert_eq!(t, f.status().0, "permission fault");
    kassert_eq!(t, back, 0x1234);
    kassert_eq!(t, pageattr::set_memory_rw(a, 2), 0);
    // SAFETY: writable again.
    let r = traps::catch_fault(|| unsafe { (p.add(PAGE_SIZE) as *mut u64).write_volatile(0x5678) });
    kassert!(t, r.is_ok(), "set_memory_rw did not make the page writable");
    drop(guard);
}

fn set_memory_x_and_nx_on_vmalloc(t: &mut Test) {
    let p = vm::vmalloc(PAGE_SIZE);
    kassert!(t, !p.is_null());
    let guard = VmallocGuard(p);
    let a = p as usize;
    vm::set_vm_flush_reset_perms(p);
    // mov x0, #42; ret
    // SAFETY: the page at p is ours and writable.
    unsafe {
        (p as *mut u32).write_volatile(0xd280_0540);
        (p.add(4) as *mut u32).write_volatile(0xd65f_03c0);
    }
    flush_icache_range(a, 8);
    // SAFETY: p holds a complete function of this signature (above); it
    // runs only if the page is executable, else the instruction abort is
    // recovered by catch_fault.
    let f: extern "C" fn() -> u64 = unsafe { core::mem::transmute(p) };
    let r = traps::catch_fault(|| f());
    let fault = kexpect_fault!(t, r, "executing a vmalloc (PAGE_KERNEL, nx) page did not fault");
    kassert_eq!(t, fault.pc as usize, a);
    kassert_eq!(t, pageattr::set_memory_ro(a, 1), 0);
    kassert_eq!(t, pageattr::set_memory_x(a, 1), 0);
    let r = traps::catch_fault(|| f());
    kassert!(
        t,
        matches!(r, Ok(42)),
        "set_memory_x: the code did not run: {:?}",
        r.err()
    );
    kassert_eq!(t, pageattr::set_memory_nx(a, 1), 0);
    let r = traps::catch_fault(|| f());
    let fault = kexpect_fault!(t, r, "executing a set_memory_nx page did not fault");
    kassert_eq!(t, fault.pc as usize, a);
    kassert_eq!(t, pageattr::set_memory_rw(a, 1), 0);
    drop(guard);
}

fn set_memory_refuses_what_is_not_vmalloc(t: &mut Test) {
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    let guard = VmallocGuard(p);
    let a = p as usize;
    let linear = paging::__va(PhysAddr(
        crate::arch::kernel::setup::machine().memory()[0].region.base as usize,
    ))
    .0;
    let Some(pg) = alloc_page_vec(1) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) failed"));
        return;
    };
    let v = vm::vmap(&pg.0, VmFlags::VM_MAP, PAGE_KERNEL);
    kassert!(t, !v.is_null());
    let einval = -vm::EINVAL;
    let r = [
        pageattr::set_memory_ro(a, 3),                       // onto the guard page
        pageattr::set_memory_ro(a + PAGE_SIZE, 2),           // past the end
        pageattr::set_memory_ro(linear, 1),                  // the linear map
        pageattr::set_memory_ro(v as usize, 1),              // a vmap area (not VM_ALLOC)
        pageattr::set_memory_ro(VMALLOC_END - PAGE_SIZE, 1), // no area
        pageattr::set_memory_ro(a, -1),
    ];
    let zero = pageattr::set_memory_ro(a, 0);
    vm::vunmap(v);
    drop(pg);
    // SAFETY: the pages at p are still ours and writable (nothing changed).
    let w = traps::catch_fault(|| unsafe { (p as *mut u64).write_volatile(1) });
    drop(guard);
    kassert_eq!(t, r, [einval; 6]);
    kassert_eq!(t, zero, 0);
    kassert!(t, w.is_ok(), "a refused set_memory_ro changed the mapping");
}

fn vm_flush_reset_perms_flushes_at_vfree(t: &mut Test) {
    settle();
    let p = vm::vmalloc(PAGE_SIZE);
    kassert!(t, !p.is_null());
    vm::set_vm_flush_reset_perms(p);
    kassert!(t, area_flags(p as usize).contains(VmFlags::VM_FLUSH_RESET_PERMS));
    kassert_eq!(t, pageattr::set_memory_ro(p as usize, 1), 0);
    // Warm the TLB with the read-only translation.
    // SAFETY: mapped, readable.
    let _ = unsafe { (p as *const u64).read_volatile() };
    let flushes = TLB_FLUSHES.load(Ordering::Relaxed);
    vm::vfree(p);
    let flushed = TLB_FLUSHES.load(Ordering::Relaxed) > flushes;
    let lazy = vm::vmap_lazy_nr();
    // With the flush done, the old address faults at once (a stale TLB
    // entry, which QEMU keeps like hardware, would let the read through).
    // SAFETY: an unmapped address: the read faults and is recovered.
    let r = traps::catch_fault_quiet(|| unsafe { (p as *const u64).read_volatile() });
    kassert!(t, flushed, "vfree of a VM_FLUSH_RESET_PERMS area did not flush the TLB");
    kassert_eq!(t, lazy, 0);
    kassert!(t, r.is_err(), "the freed area is still reachable through the TLB");
}

fn uart_phys() -> usize {
    crate::arch::kernel::setup::machine()
        .pl011()
        .map(|u| u.base as usize)
        .unwrap_or(crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS)
}

fn vmap_pfn_maps_device_frames_nx(t: &mut Test) {
    use crate::arch::mm::pgtable::{Descriptor, PAGE_KERNEL_EXEC, PROT_DEVICE_NGNRE};
    settle();
    let uart = phys_to_pfn(PhysAddr(uart_phys()));
    // The PL011 twice, then a flash page (QEMU virt's flash is at 0).
    let pfns = [uart, uart, 0x10];
    let mut prot = PROT_DEVICE_NGNRE;
    prot.executable = true; // vmap_pfn must take that away
    let p = vm::vmap_pfn(&pfns, prot);
    kassert!(t, !p.is_null(), "vmap_pfn failed");
    let a = p as usize;
    let flags = area_flags(a);
    let mapped: alloc::vec::Vec<Option<usize>> = (0..3)
        .map(|i| vm::vmalloc_to_pfn((a + i * PAGE_SIZE) as *const u8))
        .collect();
    let desc = paging::with_init_mm(|pt, env| pt.walk(env, VirtAddr(a)))
        .leaf_level
        .and_then(|l| paging::with_init_mm(|pt, env| pt.walk(env, VirtAddr(a))).steps[l])
        .map(|s| s.desc);
    // SAFETY: both pages map the PL011 as device memory; UARTPeriphID0 is
    // a side-effect-free 32-bit ID register.
    let ids = unsafe {
        [
            ((a + 0xfe0) as *const u32).read_volatile() & 0xff,
            ((a + PAGE_SIZE + 0xfe0) as *const u32).read_volatile() & 0xff,
        ]
    };
    vm::vunmap(p);
    kassert!(t, flags.contains(VmFlags::VM_IOREMAP), "flags {:?}", flags);
    kassert_eq!(t, mapped, [Some(uart), Some(uart), Some(0x10)]);
    kassert_eq!(t, ids, [0x11, 0x11]);
    let prot = desc.and_then(|d| Descriptor(d).prot());
    kassert!(
        t,
        prot.is_some_and(|p| !p.executable && p.mem_type == PROT_DEVICE_NGNRE.mem_type),
        "descriptor {:x?}: not device memory, or executable",
        desc
    );
    kassert!(t, vm::find_vm_area(a).is_null(), "vunmap left the area");
    // RAM is refused: it has struct pages (use vmap).
    let before = vm::snapshot();
    let ram = phys_to_pfn(PhysAddr(
        crate::arch::kernel::setup::machine().memory()[0].region.base as usize,
    ));
    kassert!(
        t,
        vm::vmap_pfn(&[0x10, ram], PAGE_KERNEL_EXEC).is_null(),
        "vmap_pfn of RAM"
    );
    kassert!(t, vm::vmap_pfn(&[], PAGE_KERNEL).is_null(), "vmap_pfn of nothing");
    kassert_eq!(t, vm::snapshot(), before);
}

fn vmap_pfn_fault_injection_sweep(t: &mut Test) {
    // 600 flash pfns: several page-table pages' worth in a fresh range.
    let pfns: alloc::vec::Vec<usize> = (0..600).collect();
    let seen = sweep_allocation(
        t,
        "vmap_pfn(600)",
        &|| vm::vmap_pfn(&pfns, crate::arch::mm::pgtable::PROT_DEVICE_NGNRE) as usize,
        &|p| vm::vunmap(p as *const u8),
        // A failed split node (the naturally aligned VM_IOREMAP area is cut
        // from the middle of a free range) is retried after a purge, as
        // alloc_vmap_area does in Linux: success is allowed, if complete.
        &|_, p| {
            vm::vmalloc_to_pfn(p as *const u8) == Some(0)
                && vm::vmalloc_to_pfn((p + 599 * PAGE_SIZE) as *const u8) == Some(599)
        },
    );
    kassert!(t, seen >= 2, "only {} allocations seen", seen);
}

/// The areas of a pcpu_get_vm_areas result: (addr, size, flags) each, in
/// an array (no heap: the tests compare heap use before and after).
fn pcpu_areas<const N: usize>(vms: *mut *mut vm::VmStruct) -> [(usize, usize, VmFlags); N] {
    core::array::from_fn(|i| {
        // SAFETY: the caller passes a live result of N areas.
        unsafe {
            let v = &*vms.add(i).read();
            (v.addr, v.size, v.flags)
        }
    })
}

fn pcpu_get_vm_areas_are_congruent_and_top_down(t: &mut Test) {
    settle();
    let align = 16 * PAGE_SIZE;
    // The per-CPU allocator's shape: one unit per group, listed in any order.
    let offsets = [4 * align, 0, align];
    let sizes = [2 * align, align, 3 * align];
    // The highest aligned end of free space the group can reach.
    let top = {
        let free = vm::free_vmap_area_root.lock();
        free.last().map(|va| {
            // SAFETY: a live node of the free tree, under its lock.
            let va = unsafe { va.as_ref() };
            (va.va_end.min(VMALLOC_END) & !(align - 1), va.size())
        })
    };
    // Warm up the caches, then compare states around the real call.
    // SAFETY: pcpu_get_vm_areas's result for 3 areas, freed once.
    unsafe { vm::pcpu_free_vm_areas(vm::pcpu_get_vm_areas(&offsets, &sizes, align), 3) };
    settle();
    let before = vm::snapshot();
    let vms = vm::pcpu_get_vm_areas(&offsets, &sizes, align);
    kassert!(t, !vms.is_null(), "pcpu_get_vm_areas failed");
    let areas = pcpu_areas::<3>(vms);
    let found = areas.map(|a| !vm::find_vm_area(a.0 + a.1 - 1).is_null());
    let invariants = vm::check_vmalloc_invariants();
    // SAFETY: the live result of 3 areas, freed once, not used afterwards.
    unsafe { vm::pcpu_free_vm_areas(vms, 3) };
    let gone = areas.iter().all(|a| vm::find_vm_area(a.0).is_null());
    settle();
    let after = vm::snapshot();
    let base = areas[0].0.wrapping_sub(offsets[0]);
    for (i, &(addr, size, flags)) in areas.iter().enumerate() {
        kassert_eq!(t, addr, base + offsets[i]);
        kassert_eq!(t, size, sizes[i]);
        kassert!(t, flags == VmFlags::VM_ALLOC, "area {}: flags {:?}", i, flags);
        kassert!(
            t,
            addr >= VMALLOC_START && addr + size <= VMALLOC_END,
            "area {} [{:#x}, {:#x}) outside the vmalloc range",
            i,
            addr,
            addr + size
        );
    }
    kassert!(
        t,
        base.is_multiple_of(align),
        "base {:#x} not aligned to {:#x}",
        base,
        align
    );
    // Top-down: the group ends at the top of the free space if it fits there.
    if let Some((top_end, top_size)) = top
        && top_size >= 6 * align + align
    {
        kassert_eq!(t, base + 6 * align, top_end);
    }
    kassert!(
        t,
        found.iter().all(|&f| f),
        "an area is not in the busy tree: {:?}",
        found
    );
    kassert!(t, invariants.is_ok(), "{:?}", invariants);
    kassert!(t, gone, "pcpu_free_vm_areas left an area busy");
    kassert_eq!(t, after, before);
    // Bad requests are refused and change nothing.
    for (o, s, a) in [
        (&[0usize, PAGE_SIZE][..], &[2 * PAGE_SIZE, PAGE_SIZE][..], PAGE_SIZE), // overlap
        (&[0][..], &[PAGE_SIZE][..], 3 * PAGE_SIZE),                            // align not a power of 2
        (&[PAGE_SIZE][..], &[PAGE_SIZE][..], 2 * PAGE_SIZE),                    // offset misaligned
        (&[0][..], &[VMALLOC_END - VMALLOC_START + PAGE_SIZE][..], PAGE_SIZE),  // too big
        (&[][..], &[][..], PAGE_SIZE),
    ] {
        kassert!(
            t,
            vm::pcpu_get_vm_areas(o, s, a).is_null(),
            "bad request {:x?} {:x?} {:#x} accepted",
            o,
            s,
            a
        );
    }
    kassert_eq!(t, vm::snapshot(), before);
}

fn pcpu_get_vm_areas_fault_injection_sweep(t: &mut Test) {
    let align = 16 * PAGE_SIZE;
    let offsets = [0, 2 * align, 5 * align, 9 * align];
    let sizes = [align, 2 * align, align, 3 * align];
    let seen = sweep_allocation(
        t,
        "pcpu_get_vm_areas(4)",
        &|| vm::pcpu_get_vm_areas(&offsets, &sizes, align) as usize,
        // SAFETY: the result for 4 areas, freed once.
        &|p| unsafe { vm::pcpu_free_vm_areas(p as *mut *mut vm::VmStruct, 4) },
        // A failed split node is retried after a purge, as in 5.10.
        &|n, p| {
            let a = pcpu_areas::<4>(p as *mut *mut vm::VmStruct);
            n > 10 && (0..4).all(|i| a[i].0 - offsets[i] == a[0].0 && a[i].1 == sizes[i])
        },
    );
    kassert!(t, seen >= 10, "only {} allocations seen", seen);
}

/// (leaf level, pa) of the kernel mapping of `va`.
fn leaf_of(va: usize) -> (Option<usize>, Option<PhysAddr>) {
    let w = paging::with_init_mm(|pt, env| pt.walk(env, VirtAddr(va)));
    (w.leaf_level, w.pa)
}

fn ioremap_uses_pmd_and_pud_blocks(t: &mut Test) {
    // QEMU virt's flash: 2 x 64 MiB at physical 0, not RAM. Mapping it
    // reads nothing.
    const FLASH: usize = 0;
    // Leave a PTE table behind in a 2 MiB slot of vmalloc space first, as
    // any vmalloc/vfree does (vunmap keeps tables): ioremap must free it
    // (pmd_free_pte_page) to put its block there.
    let p = vm::vmalloc_aligned(PAGE_SIZE, PMD_SIZE);
    kassert!(t, !p.is_null());
    let slot = p as usize;
    vm::vfree(p);
    settle();
    for (phys, size, level) in [
        (FLASH + PMD_SIZE, PMD_SIZE, 2usize),
        (FLASH, 4 * PMD_SIZE, 2),
        (0, PUD_SIZE, 1),
    ] {
        let tables = paging::pgtable_pages();
        let io = ioremap::ioremap(PhysAddr(phys), size);
        kassert!(t, !io.is_null(), "ioremap({:#x}, {:#x}) failed", phys, size);
        let a = io as usize;
        let tables_during = paging::pgtable_pages();
        let leaves: alloc::vec::Vec<(Option<usize>, Option<PhysAddr>)> = (0..size / PMD_SIZE.min(size))
            .map(|i| leaf_of(a + i * PMD_SIZE + 0x1234 * 8))
            .collect();
        let pfn = vm::vmalloc_to_pfn((a + size - PAGE_SIZE + 5) as *const u8);
        let area_ok = area_flags(a).contains(VmFlags::VM_IOREMAP);
        ioremap::iounmap(io);
        let after = leaf_of(a);
        for (i, &(lvl, pa)) in leaves.iter().enumerate() {
            let off = i * PMD_SIZE + 0x1234 * 8;
            kassert_eq!(t, lvl, Some(level));
            kassert_eq!(t, pa, Some(PhysAddr(phys + off)));
        }
        kassert_eq!(t, pfn, Some(phys_to_pfn(PhysAddr(phys + size - PAGE_SIZE))));
        kassert!(t, area_ok, "not a VM_IOREMAP area");
        // Blocks need no PTE table (the slot test below takes one away).
        kassert!(
            t,
            tables_during <= tables + 1,
            "{:#x} bytes of blocks took {} new table pages",
            size,
            tables_during - tables
        );
        kassert_eq!(t, after, (None, None));
        kassert!(t, vm::find_vm_area(a).is_null(), "iounmap left the area");
    }
    // The slot the vmalloc area used gets a block too when ioremap lands
    // there (the lowest 2 MiB-aligned fit, which the purge made free).
    let io = ioremap::ioremap(PhysAddr(FLASH + PMD_SIZE), PMD_SIZE);
    kassert!(t, !io.is_null());
    let (lvl, _) = leaf_of(io as usize);
    let a = io as usize;
    ioremap::iounmap(io);
    if a == slot {
        kassert_eq!(t, lvl, Some(2));
    }
    // Not aligned in physical space: pages, as before.
    let io = ioremap::ioremap(PhysAddr(FLASH + PAGE_SIZE), PMD_SIZE);
    kassert!(t, !io.is_null());
    let (lvl, pa) = leaf_of(io as usize);
    ioremap::iounmap(io);
    kassert_eq!(t, (lvl, pa), (Some(3), Some(PhysAddr(FLASH + PAGE_SIZE))));
}

fn vfree_atomic_refuses_what_is_not_vmalloc(t: &mut Test) {
    let Some(pg) = alloc_page_vec(1) else {
        t.fail(file!(), line!(), format_args!("alloc_pages(0) failed"));
        return;
    };
    // SAFETY: our page, mapped in the linear map.
    unsafe { (paging::__va(pg.0[0]).0 as *mut u64).write_volatile(0x7777) };
    let v = vm::vmap(&pg.0, VmFlags::VM_MAP, PAGE_KERNEL);
    kassert!(t, !v.is_null());
    let p = vm::vmalloc(2 * PAGE_SIZE);
    kassert!(t, !p.is_null());
    settle();
    let before = vm::snapshot();
    let log = crate::kernel::printk::log_len();
    vm::vfree_atomic(v); // a vmap area: its page is not vmalloc's
    vm::vfree_atomic((p as usize + PAGE_SIZE) as *const u8); // inside an area
    vm::vfree_atomic((p as usize + 8) as *const u8); // unaligned
    // SAFETY: one CPU runs tests; nothing drains meanwhile.
    let pending = unsafe { vm::vfree_deferred_pending() };
    // SAFETY: the vmap'd page is ours.
    let word = unsafe { (paging::__va(pg.0[0]).0 as *const u64).read_volatile() };
    let warned = crate::kernel::printk::log_contains_since(log, "not the start of a vmalloc area");
    settle();
    let after = vm::snapshot();
    vm::vunmap(v);
    vm::vfree(p);
    drop(pg);
    kassert_eq!(t, pending, 0);
    kassert_eq!(t, word, 0x7777);
    kassert!(t, warned, "no warning");
    kassert_eq!(t, after, before);
}
