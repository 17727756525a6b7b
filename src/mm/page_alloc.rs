// SPDX-License-Identifier: GPL-2.0-only
//! The physical page allocator (Linux: mm/page_alloc.c): one buddy zone per
//! RAM bank, fed with everything memblock did not reserve
//! (`memblock_free_all`). `alloc_pages(order)` / `__free_pages(page, order)`
//! hand out 2^order contiguous pages, orders 0..MAX_ORDER-1; order-0 pages
//! go through each zone's per-cpu list (sized as Linux sizes it), so that
//! vmalloc's page-at-a-time traffic does not split and merge buddies.
//!
//! The buddy logic itself (`crate::mm::buddy`) is host-tested; this file
//! owns the global zones, the `struct page` arrays (mem_map) and the lock.
//!
//! NUMA: the zones of one node form its `pg_data_t` (`NODE_DATA(nid)`);
//! `alloc_pages_node(nid, order)` walks `nid`'s zonelist (own node first,
//! then the others by distance), `alloc_pages(order)` is the current CPU's
//! node. The per-cpu lists are per zone, so they only ever hold pages of
//! their zone's node.
//!
//! SMP: the zone lock (`ZONES`, Linux's `zone->lock`) serialises the buddy
//! lists and, here, the per-cpu lists too. Each CPU has its own per-cpu
//! list per zone, indexed by `smp_processor_id()`, and touches it with IRQs
//! masked (Linux's local_irq_save in rmqueue_pcplist/free_unref_page), so
//! the CPU cannot be interrupted while it holds the zone lock: an interrupt
//! path that frees a page would otherwise spin on the lock its own CPU holds.

use super::fault_inject::{self, Site};
use crate::arch::kernel::irq::{local_irq_restore, local_irq_save};
use crate::arch::kernel::percpu::smp_processor_id;
use crate::arch::memory::*;
use crate::arch::mm::mmu::__va;
use crate::arch::mm::numa::cpu_to_node;
use crate::kernel::locking::spinlock::SpinLock;
use crate::mm::buddy::{MAX_ZONES, Page, PglistData, Zone, Zones};
use crate::mm::gfp::{__GFP_NOWARN, gfp_t};
use crate::mm::numa::{MAX_NUMNODES, NUMA_NO_NODE, NodeMask};
use crate::{pr_info, pr_warn};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

pub use crate::mm::buddy::MAX_ORDER;

// One per-cpu list per possible CPU.
const _: () = assert!(crate::mm::buddy::NR_CPUS >= crate::arch::kernel::percpu::NR_CPUS);

/// The zones and the total span of RAM in pages (Linux: physpages).
struct PgData {
    zones: Zones,
    physpages: usize,
}

// SAFETY: the zones' mem_map pointers refer to memory owned by the
// allocator for the life of the kernel; access is serialised by the lock.
unsafe impl Send for PgData {}

static ZONES: SpinLock<PgData> = SpinLock::new(PgData {
    zones: Zones::new(),
    physpages: 0,
});
static READY: AtomicBool = AtomicBool::new(false);

/// Is the buddy allocator up (memblock retired)?
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Linux's alloc_pages: physical address of 2^order contiguous pages, from
/// the current CPU's node first (alloc_pages_current's default policy).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn alloc_pages(order: usize) -> Option<PhysAddr> {
    // The body is alloc_pages' own, not an inlined helper's: `break
    // alloc_pages` must stop in alloc_pages (see __free_pages).
    if fault_inject::should_fail(Site::PageAlloc) {
        return None;
    }
    let flags = local_irq_save();
    let cpu = smp_processor_id();
    // The CPU's node is looked up only if there is more than one zone.
    let pfn = ZONES
        .lock()
        .zones
        .alloc_pages_node_with(cpu, || cpu_to_node(cpu) as usize, order);
    local_irq_restore(flags);
    pfn.map(pfn_to_phys)
}

/// Linux's alloc_pages_node: 2^order pages from node `nid`'s zonelist
/// (`nid` itself first, then the other nodes by distance); NUMA_NO_NODE is
/// the current CPU's node. A `nid` that is neither, or not below
/// MAX_NUMNODES, is a caller bug: reported, and nothing is allocated.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn alloc_pages_node(nid: i32, order: usize) -> Option<PhysAddr> {
    if nid == NUMA_NO_NODE {
        return alloc_pages(order);
    }
    if !(0..MAX_NUMNODES as i32).contains(&nid) {
        return bad_node(nid);
    }
    __alloc_pages_node(nid as usize, order)
}

/// alloc_pages_node's report of a node id out of range, out of line so
/// that the per-page path stays short (vmalloc_node calls it per page).
#[cold]
#[inline(never)]
fn bad_node(nid: i32) -> Option<PhysAddr> {
    pr_warn!(
        "alloc_pages_node: node {} out of range (MAX_NUMNODES {}); nothing allocated",
        nid,
        MAX_NUMNODES
    );
    None
}

/// Linux's __alloc_pages_node: alloc_pages_node without the NUMA_NO_NODE
/// and range checks, for a caller that made them (vmalloc, per page). A
/// `nid` at or above MAX_NUMNODES allocates nothing on a multi-zone
/// machine.
#[inline]
pub fn __alloc_pages_node(nid: usize, order: usize) -> Option<PhysAddr> {
    if fault_inject::should_fail(Site::PageAlloc) {
        return None;
    }
    let flags = local_irq_save();
    let pfn = ZONES.lock().zones.alloc_pages_node_on(smp_processor_id(), nid, order);
    local_irq_restore(flags);
    pfn.map(pfn_to_phys)
}

/// Linux's warn_alloc: one line saying what failed, with the flags, unless
/// `gfp_mask` has __GFP_NOWARN: `<what>, mode:0xcc0(GFP_KERNEL),
/// nodemask=(null)`. Unlike Linux, not rate-limited (every failure here is
/// a test's or a user's deliberate one, and each should say so), with no
/// task name (there are no tasks), no stack dump and no show_mem.
pub fn warn_alloc(gfp_mask: gfp_t, what: fmt::Arguments<'_>) {
    if gfp_mask.contains(__GFP_NOWARN) {
        return;
    }
    pr_warn!("{}, mode:{:#x}({}), nodemask=(null)", what, gfp_mask.bits(), gfp_mask);
}

/// Each zone's pfn span and node, written once by free_area_init before
/// READY: page_to_nid reads them without the zone lock (as Linux reads the
/// node from page->flags), so it is safe from any context.
static ZONE_START: [AtomicUsize; MAX_ZONES] = [const { AtomicUsize::new(0) }; MAX_ZONES];
static ZONE_END: [AtomicUsize; MAX_ZONES] = [const { AtomicUsize::new(0) }; MAX_ZONES];
static ZONE_NID: [AtomicU32; MAX_ZONES] = [const { AtomicU32::new(0) }; MAX_ZONES];
/// Nodes with memory (Linux's node_states[N_MEMORY]).
static NODES_WITH_MEMORY: AtomicU32 = AtomicU32::new(0);

/// Linux's page_to_nid: the node of the page at `pa`; None if no zone
/// spans it.
pub fn page_to_nid(pa: PhysAddr) -> Option<usize> {
    let pfn = phys_to_pfn(pa);
    (0..MAX_ZONES)
        .take_while(|&i| ZONE_END[i].load(Ordering::Relaxed) != 0)
        .find(|&i| (ZONE_START[i].load(Ordering::Relaxed)..ZONE_END[i].load(Ordering::Relaxed)).contains(&pfn))
        .map(|i| ZONE_NID[i].load(Ordering::Relaxed) as usize)
}

/// The nodes with memory (N_MEMORY); node 0 alone before free_area_init.
pub fn nodes_with_memory() -> NodeMask {
    let bits = NODES_WITH_MEMORY.load(Ordering::Relaxed);
    (0..MAX_NUMNODES)
        .filter(|&n| bits & (1 << n) != 0)
        .fold(NodeMask::NONE.with(0), |m, n| m.with(n))
}

/// Linux's num_online_nodes(): nodes with memory.
pub fn num_online_nodes() -> usize {
    nodes_with_memory().nodes_weight()
}

/// Linux's NODE_DATA(nid): the node's zones and page counts (free pages
/// include the per-cpu lists); None for a node without memory.
#[allow(non_snake_case)]
pub fn NODE_DATA(nid: usize) -> Option<PglistData> {
    ZONES.lock().zones.node_data(nid)
}

/// Linux's __free_pages. A bad free (double free, wrong order, a page the
/// allocator never handed out) is reported loudly and changes nothing.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn __free_pages(pa: PhysAddr, order: usize) {
    // The pfn first: a first statement that starts with spin's
    // #[inline(always)] lock would make `break __free_pages` stop "in" the
    // inlined lock, even at opt-level 0.
    let pfn = phys_to_pfn(pa);
    let flags = local_irq_save();
    let r = ZONES.lock().zones.free_pages_on(smp_processor_id(), pfn, order);
    local_irq_restore(flags);
    if let Err(e) = r {
        pr_warn!("__free_pages({:#x}, order {}): {}; ignored", pa.0, order, e);
    }
}

/// Pages handed to the allocator at boot (Linux: _totalram_pages, read
/// without the zone lock by totalram_pages()).
static TOTALRAM_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Linux's totalram_pages(): managed pages over all zones.
#[inline]
pub fn totalram_pages() -> usize {
    TOTALRAM_PAGES.load(Ordering::Relaxed)
}

/// (free pages, managed pages) over all zones.
pub fn nr_free_pages() -> (usize, usize) {
    let z = ZONES.lock();
    (z.zones.free_count(), z.zones.managed())
}

/// Pages spanned by RAM (Linux: physpages).
pub fn physpages() -> usize {
    ZONES.lock().physpages
}

/// /sys/devices/system/node/nodeN/meminfo's first lines for every node
/// with memory (`Node 0 MemTotal:  1024000 kB`, MemFree, MemUsed).
pub fn node_meminfo(w: &mut dyn Write) -> fmt::Result {
    let kb = |pages: usize| pages * (PAGE_SIZE / 1024);
    for pgdat in (0..MAX_NUMNODES).filter_map(NODE_DATA) {
        let n = pgdat.node_id;
        writeln!(w, "Node {} MemTotal:       {:>8} kB", n, kb(pgdat.managed_pages))?;
        writeln!(w, "Node {} MemFree:        {:>8} kB", n, kb(pgdat.nr_free_pages))?;
        writeln!(
            w,
            "Node {} MemUsed:        {:>8} kB",
            n,
            kb(pgdat.managed_pages - pgdat.nr_free_pages)
        )?;
    }
    Ok(())
}

/// /proc/buddyinfo.
pub fn buddyinfo(w: &mut dyn Write) -> fmt::Result {
    let z = ZONES.lock();
    z.zones.buddyinfo(&mut WriteAdapter(w))
}

/// Adapts `&mut dyn Write` to the generic `W: Write` the buddy code takes.
struct WriteAdapter<'a>(&'a mut dyn Write);

impl Write for WriteAdapter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
}

/// Free blocks per order summed over zones, after draining the per-cpu
/// lists into the buddy lists (`drain_all_pages()`), so that the counts
/// describe all free memory (for tests).
pub fn free_area_counts() -> [usize; MAX_ORDER] {
    let mut z = ZONES.lock();
    z.zones.drain_all_pages();
    core::array::from_fn(|o| z.zones.nr_free(o))
}

/// Give the per-cpu lists back to the buddy lists (Linux: drain_all_pages).
pub fn drain_all_pages() {
    ZONES.lock().zones.drain_all_pages();
}

/// Zone descriptions: (node, start pfn, spanned pages, free pages).
pub fn zones_info(mut f: impl FnMut(u32, usize, usize, usize)) {
    let z = ZONES.lock();
    for zone in z.zones.iter() {
        f(zone.node(), zone.start_pfn(), zone.spanned_pages(), zone.free_count());
    }
}

/// Run the buddy invariant checker on every zone.
pub fn check_all() -> Result<(), (usize, crate::mm::buddy::CheckError)> {
    ZONES.lock().zones.check()
}

/// Build the zones: one per RAM bank of the device tree (so each NUMA
/// node's memory stays its own zone, as Linux keeps memblock regions of
/// different nodes apart), each mem_map taken from memblock; then hand
/// every free memblock range to the buddy lists (memblock_free_all).
/// After this memblock is retired.
pub fn free_area_init(banks: &[crate::drivers::of::fdt::MemBank]) {
    let mut mb = super::memblock_lock();
    let mut z = ZONES.lock();
    for bank in banks {
        let (base, size) = (bank.region.base, bank.region.size);
        let start_pfn = (base as usize).div_ceil(PAGE_SIZE);
        let end_pfn = (base + size) as usize / PAGE_SIZE;
        if end_pfn <= start_pfn {
            continue; // less than a page: nothing to manage
        }
        let spanned = end_pfn - start_pfn;
        let map_bytes = Zone::mem_map_bytes(spanned).next_multiple_of(PAGE_SIZE);
        let Some(map_pa) = mb.phys_alloc(map_bytes as u64, PAGE_SIZE as u64) else {
            crate::kernel::panic::boot_fail(format_args!(
                "free_area_init: no memory for the {} KiB mem_map of [{:#x}-{:#x})",
                map_bytes >> 10,
                base,
                base + size
            ));
        };
        let map = __va(PhysAddr(map_pa as usize)).0 as *mut Page;
        // SAFETY: map is the linear-map address of memblock memory just
        // reserved for `spanned` Pages (mem_map_bytes, page-aligned), never
        // freed and used by nothing else: Zone::new's contract.
        let zone = unsafe { Zone::new(start_pfn, spanned, map, bank.numa_node.unwrap_or(0)) };
        if let Err(e) = z.zones.add(zone) {
            crate::kernel::panic::boot_fail(format_args!(
                "free_area_init: zone for [{:#x}-{:#x}): {}",
                base,
                base + size,
                e
            ));
        }
        z.physpages += spanned;
    }
    // memblock_free_all: everything not reserved goes to the buddy lists.
    let zones = &mut z.zones;
    mb.for_each_free_range(|start, end| {
        let (s, e) = ((start as usize).div_ceil(PAGE_SIZE), end as usize / PAGE_SIZE);
        if s < e
            && let Err(err) = zones.free_range(s, e)
        {
            crate::kernel::panic::boot_fail(format_args!("memblock_free_all: pfns [{:#x}-{:#x}): {}", s, e, err));
        }
    });
    // Per-cpu lists for order-0 pages (Linux's pageset_init/zone_pcp_init).
    z.zones.setup_pcp();
    for (i, zone) in z.zones.iter().enumerate() {
        ZONE_START[i].store(zone.start_pfn(), Ordering::Relaxed);
        ZONE_END[i].store(zone.end_pfn(), Ordering::Relaxed);
        ZONE_NID[i].store(zone.node(), Ordering::Relaxed);
    }
    NODES_WITH_MEMORY.store(z.zones.nodes_with_memory().bits(), Ordering::Relaxed);
    TOTALRAM_PAGES.store(z.zones.managed(), Ordering::Relaxed);
    let pcp = z.zones.get(0).map(|zone| zone.pcp());
    // Not a Vec: the heap may grow from the zones, whose lock is held.
    let nodes: [Option<PglistData>; MAX_NUMNODES] = core::array::from_fn(|n| z.zones.node_data(n));
    drop(z);
    drop(mb);
    READY.store(true, Ordering::Release);
    for pgdat in nodes.iter().flatten() {
        // mm/page_alloc.c's free_area_init_node line.
        pr_info!(
            "Initmem setup node {} [mem {:#018x}-{:#018x}]",
            pgdat.node_id,
            pfn_to_phys(pgdat.node_start_pfn).0,
            pfn_to_phys(pgdat.node_end_pfn()).0 - 1
        );
    }
    let (free, managed) = nr_free_pages();
    pr_info!(
        "page_alloc: {} zone(s), {} pages managed, {} free, MAX_ORDER {}",
        zones_len(),
        managed,
        free,
        MAX_ORDER
    );
    if let Some(p) = pcp {
        pr_info!(
            "page_alloc: per-cpu page lists: high {}, batch {} (zone 0)",
            p.high(),
            p.batch()
        );
    }
}

fn zones_len() -> usize {
    ZONES.lock().zones.len()
}

/// Linux's pfn_valid: is this page frame RAM that the allocator manages
/// (or reserved inside a RAM bank)? As arm64's (memblock_is_map_memory),
/// MEMBLOCK_NOMAP memory is not: it has no linear mapping, and a driver
/// reaches it with ioremap/memremap instead.
pub fn pfn_valid(pfn: usize) -> bool {
    // memblock first, then the zones: the order free_area_init takes them.
    // A page partly no-map is not in the linear map either (map_mem_plan).
    let pa = pfn_to_phys(pfn).0 as u64;
    if super::memblock_lock()
        .nomap()
        .iter()
        .any(|r| r.base < pa + PAGE_SIZE as u64 && r.end() > pa)
    {
        return false;
    }
    ZONES.lock().zones.zone_of(pfn).is_some()
}
