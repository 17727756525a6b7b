//! The physical page allocator (Linux: mm/page_alloc.c): one buddy zone per
//! RAM bank, fed with everything memblock did not reserve
//! (`memblock_free_all`). `alloc_pages(order)` / `__free_pages(page, order)`
//! hand out 2^order contiguous pages, orders 0..MAX_ORDER-1.
//!
//! The buddy logic itself (`kernel::mm::buddy`) is host-tested; this file
//! owns the global zones, the `struct page` arrays (mem_map) and the lock.

use super::fault_inject::{self, Site};
use super::paging::__va;
use crate::{pr_info, pr_warn};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::mm::buddy::{Page, Zone};
use kernel::mm::layout::*;

pub use kernel::mm::buddy::MAX_ORDER;

const MAX_ZONES: usize = 16;

struct Zones {
    zones: [Option<Zone>; MAX_ZONES],
    nr: usize,
    total_pages: usize,
}

// SAFETY: the zones' mem_map pointers refer to memory owned by the
// allocator for the life of the kernel; access is serialised by the lock.
unsafe impl Send for Zones {}

static ZONES: spin::Mutex<Zones> = spin::Mutex::new(Zones { zones: [const { None }; MAX_ZONES], nr: 0, total_pages: 0 });
static READY: AtomicBool = AtomicBool::new(false);

/// Is the buddy allocator up (memblock retired)?
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Linux's alloc_pages: physical address of 2^order contiguous pages.
#[inline(never)]
pub fn alloc_pages(order: usize) -> Option<PhysAddr> {
    if fault_inject::should_fail(Site::PageAlloc) {
        return None;
    }
    let mut z = ZONES.lock();
    let nr = z.nr;
    for zone in z.zones[..nr].iter_mut().flatten() {
        if let Some(pfn) = zone.alloc_pages(order) {
            return Some(pfn_to_phys(pfn));
        }
    }
    None
}

/// Linux's __free_pages. A bad free (double free, wrong order, a page the
/// allocator never handed out) is reported loudly and changes nothing.
#[inline(never)]
pub fn __free_pages(pa: PhysAddr, order: usize) {
    let pfn = phys_to_pfn(pa);
    let mut z = ZONES.lock();
    let nr = z.nr;
    let result = match z.zones[..nr].iter_mut().flatten().find(|zone| zone.contains(pfn)) {
        Some(zone) => zone.free_pages(pfn, order).map_err(|e| Some(e)),
        None => Err(None),
    };
    drop(z);
    match result {
        Ok(()) => {}
        Err(Some(e)) => pr_warn!("__free_pages({:#x}, order {}): {}; ignored", pa.0, order, e),
        Err(None) => pr_warn!("__free_pages({:#x}, order {}): not in any zone; ignored", pa.0, order),
    }
}

/// (free pages, managed pages) over all zones.
pub fn nr_free_pages() -> (usize, usize) {
    let z = ZONES.lock();
    z.zones[..z.nr].iter().flatten().fold((0, 0), |(f, m), zone| (f + zone.free_count(), m + zone.managed()))
}

/// Total pages of RAM (Linux: totalram before reservations = physpages).
pub fn physpages() -> usize {
    ZONES.lock().total_pages
}

/// /proc/buddyinfo.
pub fn buddyinfo(w: &mut dyn Write) -> fmt::Result {
    let z = ZONES.lock();
    for zone in z.zones[..z.nr].iter().flatten() {
        let mut s = LineBuf::new();
        zone.buddyinfo(&mut s)?;
        w.write_str(s.as_str())?;
    }
    Ok(())
}

/// Per-order free block counts summed over zones (for tests).
pub fn free_area_counts() -> [usize; MAX_ORDER] {
    let z = ZONES.lock();
    let mut c = [0; MAX_ORDER];
    for zone in z.zones[..z.nr].iter().flatten() {
        for (o, n) in c.iter_mut().enumerate() {
            *n += zone.nr_free(o);
        }
    }
    c
}

/// Zone descriptions: (node, start pfn, spanned pages, free pages).
pub fn zones_info(mut f: impl FnMut(u32, usize, usize, usize)) {
    let z = ZONES.lock();
    for zone in z.zones[..z.nr].iter().flatten() {
        f(zone.node(), zone.start_pfn(), zone.spanned_pages(), zone.free_count());
    }
}

/// Run the buddy invariant checker on every zone.
pub fn check_all() -> Result<(), kernel::mm::buddy::CheckError> {
    let z = ZONES.lock();
    for zone in z.zones[..z.nr].iter().flatten() {
        zone.check()?;
    }
    Ok(())
}

struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        Self { buf: [0; 256], len: 0 }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Build the zones: one per memblock memory region, its mem_map taken from
/// memblock, then every free memblock range handed to its zone
/// (memblock_free_all). After this memblock is retired.
pub fn free_area_init(banks_node: impl Fn(u64) -> u32) {
    let mut mb = super::memblock_lock();
    let mut regions = [(0u64, 0u64); MAX_ZONES];
    let nregions = mb.memory().len();
    if nregions > MAX_ZONES {
        crate::boot_fail(format_args!("free_area_init: {} memory regions, at most {} zones supported", nregions, MAX_ZONES));
    }
    for (i, r) in mb.memory().iter().enumerate() {
        regions[i] = (r.base, r.size);
    }
    let mut z = ZONES.lock();
    for (i, &(base, size)) in regions[..nregions].iter().enumerate() {
        let start_pfn = (base as usize).div_ceil(PAGE_SIZE);
        let end_pfn = (base + size) as usize / PAGE_SIZE;
        let spanned = end_pfn - start_pfn;
        let map_bytes = (spanned * core::mem::size_of::<Page>()).next_multiple_of(PAGE_SIZE);
        let Some(map_pa) = mb.phys_alloc(map_bytes as u64, PAGE_SIZE as u64) else {
            crate::boot_fail(format_args!("free_area_init: no memory for the {} KiB mem_map of [{:#x}-{:#x})",
                map_bytes >> 10, base, base + size));
        };
        let map = __va(PhysAddr(map_pa as usize)).0 as *mut Page;
        // SAFETY: fresh memblock memory of the right size, ours forever.
        let zone = unsafe { Zone::new(start_pfn, spanned, map, banks_node(base)) };
        z.zones[i] = Some(zone);
        z.total_pages += spanned;
    }
    z.nr = nregions;
    // memblock_free_all: everything not reserved goes to the buddy lists.
    let nr = z.nr;
    let zones = &mut z.zones[..nr];
    mb.for_each_free_range(|start, end| {
        let (s, e) = ((start as usize).div_ceil(PAGE_SIZE), end as usize / PAGE_SIZE);
        if s >= e {
            return;
        }
        for zone in zones.iter_mut().flatten() {
            let zs = zone.start_pfn();
            let ze = zs + zone.spanned_pages();
            let (a, b) = (s.max(zs), e.min(ze));
            if a < b {
                if let Err(e) = zone.free_range(a, b) {
                    crate::boot_fail(format_args!("memblock_free_all: pfns [{:#x}-{:#x}): {}", a, b, e));
                }
            }
        }
    });
    drop(z);
    drop(mb);
    READY.store(true, Ordering::Release);
    let (free, managed) = nr_free_pages();
    pr_info!("page_alloc: {} zone(s), {} pages managed, {} free, MAX_ORDER {}", nregions, managed, free, MAX_ORDER);
}

/// Linux's pfn_valid: is this page frame RAM that the allocator manages
/// (or reserved inside a RAM bank)?
pub fn pfn_valid(pfn: usize) -> bool {
    let z = ZONES.lock();
    z.zones[..z.nr].iter().flatten().any(|zone| zone.contains(pfn))
}
