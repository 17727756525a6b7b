// SPDX-License-Identifier: GPL-2.0-only
//! Tests of NUMA nodes: the DT's nodes as the allocator sees them, and
//! vmalloc_node placing pages on the asked node (checked page by page with
//! page_to_nid over vmalloc_to_page, and in vmallocinfo's N<node>= counts),
//! falling back to another node when the node is exhausted, and undoing
//! everything on every failure path. Cases that need two nodes skip on one.

use super::{Case, Suite, Test};
use crate::arch::memory::PAGE_SIZE;
use crate::arch::mm::numa::{cpu_to_node, numa_node_id};
use crate::mm::buddy::MAX_ORDER;
use crate::mm::numa::{MAX_NUMNODES, NUMA_NO_NODE};
use crate::mm::page_alloc::{self, NODE_DATA, page_to_nid};
use crate::mm::vmalloc as vm;
use crate::mm::{fault_inject, vmalloc};
use crate::{kassert, kassert_eq, kskip_unless};
use alloc::string::String;
use alloc::vec::Vec;

pub static SUITE: Suite = Suite {
    name: "numa",
    cases: &[
        Case {
            name: "nodes_match_the_device_tree",
            run: nodes_match_the_device_tree,
        },
        Case {
            name: "vmalloc_node_local_and_bad_node",
            run: vmalloc_node_local_and_bad_node,
        },
        Case {
            name: "vmalloc_node_places_every_page_on_the_node",
            run: vmalloc_node_places_every_page_on_the_node,
        },
        Case {
            name: "pcp_list_serves_only_its_node",
            run: pcp_list_serves_only_its_node,
        },
        Case {
            name: "exhausted_node_falls_back",
            run: exhausted_node_falls_back,
        },
        Case {
            name: "fault_injection_sweep_vmalloc_node",
            run: fault_injection_sweep_vmalloc_node,
        },
        Case {
            name: "secondary_stacks_on_their_node",
            run: secondary_stacks_on_their_node,
        },
        Case {
            name: "warn_alloc_report_and_gfp_nowarn",
            run: warn_alloc_report_and_gfp_nowarn,
        },
    ],
};

/// Free pages per node (buddy and per-cpu lists).
fn node_free() -> [usize; MAX_NUMNODES] {
    core::array::from_fn(|n| NODE_DATA(n).map_or(0, |p| p.nr_free_pages))
}

/// Pages of the vmalloc area at `p` per node, by page_to_nid over
/// vmalloc_to_page.
fn pages_per_node(p: *const u8, pages: usize) -> [usize; MAX_NUMNODES] {
    let mut count = [0; MAX_NUMNODES];
    for i in 0..pages {
        let nid = vm::vmalloc_to_page(p.wrapping_add(i * PAGE_SIZE)).and_then(page_to_nid);
        if let Some(n) = nid {
            count[n] += 1;
        }
    }
    count
}

/// The vmallocinfo line of the area at `p`.
fn vmallocinfo_line(p: *const u8) -> Option<String> {
    let mut s = String::new();
    let _ = vm::vmallocinfo(&mut s);
    let start = alloc::format!("0x{:016x}-", p as usize);
    s.lines().find(|l| l.starts_with(&start)).map(String::from)
}

/// ` N0=11 N1=5` as show_numa_info prints `count`.
fn numa_suffix(count: &[usize; MAX_NUMNODES]) -> String {
    let mut s = String::new();
    for (n, &c) in count.iter().enumerate().filter(|(_, c)| **c != 0) {
        s += &alloc::format!(" N{n}={c}");
    }
    s
}

/// A node with memory other than this CPU's, so that page tables and slab
/// pages (allocated locally) do not mix into its counts.
fn remote_node() -> Option<usize> {
    let local = numa_node_id() as usize;
    page_alloc::nodes_with_memory().iter().find(|&n| n != local)
}

fn settle() {
    vm::purge_vmap_area_lazy();
}

fn nodes_match_the_device_tree(t: &mut Test) {
    let info = crate::arch::kernel::setup::machine();
    let mut dt_nodes = crate::mm::numa::NodeMask::NONE;
    for b in info.memory() {
        dt_nodes = dt_nodes.with(b.numa_node.unwrap_or(0) as usize);
    }
    kassert_eq!(t, page_alloc::nodes_with_memory(), dt_nodes);
    kassert_eq!(t, page_alloc::num_online_nodes(), dt_nodes.nodes_weight());
    // Every bank's pages are on its node, and its node's span covers it.
    for b in info.memory() {
        let nid = b.numa_node.unwrap_or(0) as usize;
        let last = crate::arch::memory::PhysAddr((b.region.end() - PAGE_SIZE as u64) as usize);
        kassert_eq!(t, page_to_nid(last), Some(nid));
        let pgdat = NODE_DATA(nid);
        kassert!(t, pgdat.is_some(), "no NODE_DATA({}) for bank {}", nid, b.region);
        let pgdat = pgdat.unwrap_or_else(|| unreachable!());
        let pfn = last.0 / PAGE_SIZE;
        kassert!(
            t,
            (pgdat.node_start_pfn..pgdat.node_end_pfn()).contains(&pfn),
            "node {} spans pfns [{:#x}-{:#x}), not {:#x}",
            nid,
            pgdat.node_start_pfn,
            pgdat.node_end_pfn(),
            pfn
        );
    }
    // Boot CPU: the node of its /cpus entry (absent: 0).
    let mpidr = crate::arch::kernel::smp::read_cpuid_mpidr();
    let dt = info.cpus().iter().find(|c| c.mpidr == mpidr).and_then(|c| c.numa_node);
    kassert_eq!(t, cpu_to_node(0), dt.unwrap_or(0) as i32);
    kassert_eq!(t, page_to_nid(crate::arch::memory::PhysAddr(0)), None);
}

fn vmalloc_node_local_and_bad_node(t: &mut Test) {
    let local = numa_node_id() as usize;
    // Settle first: what earlier cases left lazy goes now, not inside the
    // comparison.
    settle();
    let before = vm::snapshot();
    // A node id beyond MAX_NUMNODES: refused, nothing changes.
    kassert!(t, vm::vmalloc_node(PAGE_SIZE, MAX_NUMNODES as i32).is_null());
    kassert!(t, vm::vmalloc_node(PAGE_SIZE, -2).is_null());
    settle();
    kassert!(t, vm::snapshot() == before, "a refused vmalloc_node changed the state");
    // NUMA_NO_NODE and the local node: every page local (plenty free).
    for node in [NUMA_NO_NODE, local as i32] {
        let p = vm::vzalloc_node(8 * PAGE_SIZE, node);
        kassert!(t, !p.is_null(), "vzalloc_node(8 pages, {}) failed", node);
        let count = pages_per_node(p, 8);
        let line = vmallocinfo_line(p);
        // SAFETY: p is a live 8-page vzalloc area: readable.
        let zeroed = (0..8 * PAGE_SIZE).all(|i| unsafe { p.add(i).read_volatile() } == 0);
        vm::vfree(p);
        kassert_eq!(t, count[local], 8);
        kassert!(t, zeroed, "vzalloc_node memory is not zeroed");
        let want = alloc::format!(" pages=8 vmalloc N{local}=8");
        kassert!(
            t,
            line.as_deref().is_some_and(|l| l.ends_with(&want)),
            "vmallocinfo line {:?} does not end with {:?}",
            line,
            want
        );
    }
}

fn vmalloc_node_places_every_page_on_the_node(t: &mut Test) {
    kskip_unless!(t, page_alloc::num_online_nodes() > 1, "needs two NUMA nodes");
    const PAGES: usize = 64;
    for nid in page_alloc::nodes_with_memory().iter() {
        // Warm up (page tables, object caches), then measure.
        let w = vm::vmalloc_node(PAGES * PAGE_SIZE, nid as i32);
        kassert!(t, !w.is_null());
        vm::vfree(w);
        settle();
        let before = node_free();
        let p = vm::vmalloc_node(PAGES * PAGE_SIZE, nid as i32);
        kassert!(t, !p.is_null(), "vmalloc_node({} pages, {}) failed", PAGES, nid);
        let count = pages_per_node(p, PAGES);
        let during = node_free();
        let line = vmallocinfo_line(p);
        vm::vfree(p);
        settle();
        let after = node_free();
        kassert_eq!(t, count[nid], PAGES);
        kassert!(
            t,
            during[nid] + PAGES <= before[nid],
            "node {} free {} -> {}",
            nid,
            before[nid],
            during[nid]
        );
        let want = alloc::format!(" pages={PAGES} vmalloc N{nid}={PAGES}");
        kassert!(
            t,
            line.as_deref().is_some_and(|l| l.ends_with(&want)),
            "vmallocinfo line {:?} does not end with {:?}",
            line,
            want
        );
        kassert_eq!(t, after, before);
    }
}

fn pcp_list_serves_only_its_node(t: &mut Test) {
    let Some(remote) = remote_node() else {
        t.skip(format_args!("needs two NUMA nodes"));
        return;
    };
    let local = numa_node_id() as usize;
    // A local page parked on this CPU's per-cpu list...
    let a = page_alloc::alloc_pages(0);
    kassert!(t, a.is_some());
    let a = a.unwrap_or_else(|| unreachable!());
    kassert_eq!(t, page_to_nid(a), Some(local));
    page_alloc::__free_pages(a, 0);
    // ...is not what an allocation for the remote node gets.
    let b = page_alloc::alloc_pages_node(remote as i32, 0);
    kassert!(t, b.is_some());
    let b = b.unwrap_or_else(|| unreachable!());
    page_alloc::__free_pages(b, 0);
    kassert_eq!(t, page_to_nid(b), Some(remote));
}

/// Takes every free page of `nid` (largest blocks first) until an
/// allocation for it comes from another node; returns (pa, order) blocks.
fn exhaust_node(nid: usize) -> Option<Vec<(crate::arch::memory::PhysAddr, usize)>> {
    // Pages on other CPUs' per-cpu lists are not this CPU's to take.
    page_alloc::drain_all_pages();
    let mut held = Vec::new();
    for order in (0..MAX_ORDER).rev() {
        while let Some(pa) = page_alloc::alloc_pages_node(nid as i32, order) {
            if page_to_nid(pa) != Some(nid) {
                page_alloc::__free_pages(pa, order);
                break;
            }
            if held.try_reserve(1).is_err() {
                page_alloc::__free_pages(pa, order);
                release(held);
                return None;
            }
            held.push((pa, order));
        }
    }
    Some(held)
}

fn release(held: Vec<(crate::arch::memory::PhysAddr, usize)>) {
    for (pa, order) in held {
        page_alloc::__free_pages(pa, order);
    }
}

fn exhausted_node_falls_back(t: &mut Test) {
    let Some(remote) = remote_node() else {
        t.skip(format_args!("needs two NUMA nodes"));
        return;
    };
    const PAGES: usize = 16;
    const LEFT: usize = 5;
    let w = vm::vmalloc_node(PAGES * PAGE_SIZE, remote as i32);
    kassert!(t, !w.is_null());
    vm::vfree(w);
    settle();
    let before = node_free();
    let held = exhaust_node(remote);
    kassert!(t, held.is_some(), "no memory to record the exhausted node's pages");
    let mut held = held.unwrap_or_default();
    let on_node = NODE_DATA(remote).map_or(usize::MAX, |p| p.nr_free_pages);
    // Give back LEFT single pages (an order-0 block if there is one).
    let mut returned = 0;
    while returned < LEFT {
        let Some(i) = held.iter().rposition(|&(_, o)| o == 0) else {
            break;
        };
        page_alloc::__free_pages(held.swap_remove(i).0, 0);
        returned += 1;
    }
    let p = vm::vmalloc_node(PAGES * PAGE_SIZE, remote as i32);
    let count = if p.is_null() {
        [0; MAX_NUMNODES]
    } else {
        pages_per_node(p, PAGES)
    };
    // The result is usable memory.
    let usable = !p.is_null()
        && (0..PAGES).all(|i| {
            let q = p.wrapping_add(i * PAGE_SIZE);
            // SAFETY: page i of the live PAGES-page area at p.
            unsafe {
                q.write_volatile(i as u8 ^ 0x5a);
                q.read_volatile() == i as u8 ^ 0x5a
            }
        });
    let line = if p.is_null() { None } else { vmallocinfo_line(p) };
    if !p.is_null() {
        vm::vfree(p);
    }
    release(held);
    settle();
    let after = node_free();
    kassert!(t, !p.is_null(), "vmalloc_node on an exhausted node failed");
    kassert_eq!(t, on_node, 0);
    kassert!(t, usable, "the fallback pages are not usable memory");
    kassert_eq!(t, count[remote], returned);
    kassert_eq!(t, count.iter().sum::<usize>(), PAGES);
    let want = alloc::format!(" pages={PAGES} vmalloc{}", numa_suffix(&count));
    kassert!(
        t,
        line.as_deref().is_some_and(|l| l.ends_with(&want)),
        "vmallocinfo line {:?} does not end with {:?}",
        line,
        want
    );
    kassert_eq!(t, after, before);
}

/// As vmalloc.fault_injection_sweep, through vmalloc_node on a remote node
/// (or node 0 on one node): fail the 1st, 2nd, ... allocation in turn;
/// each failure leaves the vmalloc state and every node's free pages as
/// they were.
fn fault_injection_sweep_vmalloc_node(t: &mut Test) {
    let nid = remote_node().unwrap_or(0) as i32;
    for &pages in &[1usize, 3, 600] {
        super::vmalloc::sweep_allocation_with(
            t,
            &alloc::format!("vmalloc_node({} pages, {})", pages, nid),
            &|| vm::vmalloc_node(pages * PAGE_SIZE, nid) as usize,
            &|p| vm::vfree(p as *const u8),
            &|_, _| false,
            &node_free,
        );
        if t.has_failed() {
            return;
        }
    }
}

/// Each secondary CPU's vmap'd thread stack is on the CPU's node (Linux:
/// alloc_thread_stack_node with the idle task's node).
fn secondary_stacks_on_their_node(t: &mut Test) {
    use crate::arch::kernel::percpu::{NR_CPUS, per_cpu};
    use crate::arch::kernel::smp::cpu_online;
    use crate::kernel::smp::THREAD_SIZE;
    use core::sync::atomic::Ordering;
    let cpus: Vec<usize> = (1..NR_CPUS).filter(|&c| cpu_online(c)).collect();
    kskip_unless!(t, !cpus.is_empty(), "needs a second CPU online (-smp 2 or more)");
    for cpu in cpus {
        let low = per_cpu(cpu).stack_low.load(Ordering::Relaxed);
        kassert!(t, low != 0, "CPU{} has no stack", cpu);
        let count = pages_per_node(low as *const u8, THREAD_SIZE / PAGE_SIZE);
        let node = cpu_to_node(cpu) as usize;
        kassert_eq!(t, count[node], THREAD_SIZE / PAGE_SIZE);
    }
}

/// A failed vmalloc is reported by warn_alloc with its flags, as 5.10
/// prints them, unless the caller passed __GFP_NOWARN; __GFP_ZERO zeroes
/// even with init_on_alloc off.
fn warn_alloc_report_and_gfp_nowarn(t: &mut Test) {
    use crate::kernel::printk::{log_contains_since, log_len};
    use crate::mm::gfp::{__GFP_NOWARN, __GFP_ZERO, GFP_KERNEL};
    let before = log_len();
    kassert!(t, vm::__vmalloc(0, GFP_KERNEL | __GFP_ZERO).is_null());
    kassert!(
        t,
        log_contains_since(before, "vmalloc: allocation failure: 0 bytes, zero-sized allocation")
            && log_contains_since(before, "mode:0xdc0(GFP_KERNEL|__GFP_ZERO), nodemask=(null)"),
        "no warn_alloc report with the flags"
    );
    let before = log_len();
    kassert!(t, vm::__vmalloc(0, GFP_KERNEL | __GFP_NOWARN).is_null());
    fault_inject::arm(3);
    let p = vm::__vmalloc(4 * PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN);
    let (_, injected) = fault_inject::disarm();
    if !p.is_null() {
        vm::vfree(p);
    }
    kassert!(
        t,
        injected == 1 && p.is_null(),
        "the injected failure did not fail __vmalloc"
    );
    kassert!(
        t,
        !log_contains_since(before, "vmalloc: allocation failure"),
        "__GFP_NOWARN allocation failures were reported"
    );
    // __GFP_ZERO with init_on_alloc off: still zeroed. Dirty pages first so
    // that a page handed out again would show it.
    let dirty = vm::vmalloc(4 * PAGE_SIZE);
    kassert!(t, !dirty.is_null());
    // SAFETY: a live 4-page vmalloc area, writable.
    unsafe { core::ptr::write_bytes(dirty, 0xa5, 4 * PAGE_SIZE) };
    vm::vfree(dirty);
    let was = vmalloc::init_on_alloc();
    vmalloc::set_init_on_alloc(false);
    let p = vm::__vmalloc(4 * PAGE_SIZE, GFP_KERNEL | __GFP_ZERO);
    vmalloc::set_init_on_alloc(was);
    kassert!(t, !p.is_null());
    // SAFETY: a live 4-page vmalloc area, readable.
    let zeroed = (0..4 * PAGE_SIZE).all(|i| unsafe { p.add(i).read_volatile() } == 0);
    vm::vfree(p);
    kassert!(t, zeroed, "__GFP_ZERO memory is not zeroed with init_on_alloc off");
}
