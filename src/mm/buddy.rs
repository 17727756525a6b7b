// SPDX-License-Identifier: GPL-2.0-only
//! The physical page allocator core: Linux's binary buddy allocator
//! (mm/page_alloc.c) over a `struct page` array (`mem_map`).
//!
//! A [`Zone`] covers a contiguous pfn range. Its free memory is kept as
//! naturally aligned blocks of 2^order pages, one doubly-linked free list per
//! order (`free_area[order]`). The links live inside the [`Page`] of each
//! free block's first page, so allocating and freeing never touch the heap
//! and cost O(MAX_ORDER):
//!
//! * [`Zone::alloc_pages`] is `__rmqueue_smallest()` + `expand()`: take the
//!   first block of the smallest order that fits and put the unused upper
//!   halves back on the lower-order lists.
//! * [`Zone::free_pages`] is `__free_one_page()`: merge with the buddy
//!   (`pfn ^ (1 << order)`) while it is a free block of the same order inside
//!   the zone.
//! * [`Zone::free_range`] is `memblock_free_all()` -> `__free_pages_core()`:
//!   boot memory goes in as the largest aligned blocks possible, to the tail
//!   of the free lists (`FPI_TO_TAIL`, as in 5.10).
//!
//! Unlike Linux, which trusts its callers, every free is validated first: a
//! double free, a free of a page that was never handed out or a free with
//! the wrong order returns a [`BuddyError`] and changes nothing. To make that
//! O(1) the head page of an allocated block carries [`PG_ALLOCATED`] and its
//! order (Linux's stand-in is `page_count() > 0`, which cannot tell orders).
//!
//! Per-cpu page lists (Linux's `struct per_cpu_pages`), one per CPU
//! (`NR_CPUS` of them, indexed by the caller's CPU id), opt-in per zone
//! ([`Zone::set_pcp`]): order-0 frees go to the freeing CPU's short LIFO
//! list and order-0 allocations come from the allocating CPU's, refilled and
//! drained `batch` pages at a time (`rmqueue_bulk`, `free_pcppages_bulk`),
//! so single pages cycle without splitting and merging buddies. Pages on it
//! carry [`PG_PCP`]: still free memory, but allocated as far as the buddy
//! lists are concerned (as in Linux); a second free of one is caught.
//! Watermarks and migrate types are not modelled; the caller provides the
//! locking (Linux's `zone->lock`, which here also covers the pcp lists;
//! the kernel also masks IRQs while a CPU touches its own list, as Linux's
//! local_irq_save does).

use crate::mm::numa::{self, MAX_NUMNODES, NodeMask, NodeOrder};
use core::fmt;
use core::ops::Range;

/// Per-cpu page lists per zone: one per possible CPU (the arch's NR_CPUS,
/// checked against it in page_alloc.rs).
pub const NR_CPUS: usize = 8;

/// Number of orders: blocks of 2^0 ..= 2^10 pages (4 MiB with 4 KiB pages).
pub const MAX_ORDER: usize = 11;

/// Most zones a [`Zones`] set holds.
pub const MAX_ZONES: usize = 16;

/// "No page" in the free-list links.
const NONE: u32 = u32::MAX;

/// Never given to the allocator (memblock-reserved, a hole, or not yet
/// released by [`Zone::free_range`]).
pub const PG_RESERVED: u32 = 1 << 0;
/// First page of a free block; `order` says its size (Linux's `PageBuddy`).
pub const PG_BUDDY: u32 = 1 << 1;
/// First page of an allocated block; `order` says its size.
pub const PG_ALLOCATED: u32 = 1 << 2;
/// An order-0 page on the zone's per-cpu list (free, but not in the buddy
/// lists; linked through `next`/`prev` like a free block).
pub const PG_PCP: u32 = 1 << 3;

/// One `struct page`: the allocator's state for one page frame.
///
/// Only a block's first page carries state; the other pages of a free or
/// allocated block are all zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    flags: u32,
    /// Block order, valid while `PG_BUDDY` or `PG_ALLOCATED` is set.
    order: u8,
    _pad: [u8; 3],
    /// Free-list links as page indices within the zone (`NONE` = end).
    next: u32,
    prev: u32,
}

// A mem_map costs 16 bytes per 4 KiB page (0.4 %); keep it that way.
const _: () = assert!(core::mem::size_of::<Page>() == 16);

impl Page {
    /// The state every page starts in.
    pub const RESERVED: Page = Page {
        flags: PG_RESERVED,
        order: 0,
        _pad: [0; 3],
        next: NONE,
        prev: NONE,
    };

    pub const fn flags(&self) -> u32 {
        self.flags
    }
    /// The block order; meaningful only on a buddy or allocated head page.
    pub const fn order(&self) -> usize {
        self.order as usize
    }
    pub const fn is_reserved(&self) -> bool {
        self.flags & PG_RESERVED != 0
    }
    pub const fn is_buddy(&self) -> bool {
        self.flags & PG_BUDDY != 0
    }
    pub const fn is_allocated(&self) -> bool {
        self.flags & PG_ALLOCATED != 0
    }
    pub const fn is_pcp(&self) -> bool {
        self.flags & PG_PCP != 0
    }
}

/// Linux's `struct per_cpu_pages` for the one CPU: a LIFO list of order-0
/// pages (newest at the head, drained from the tail), with the high
/// watermark that triggers a drain of `batch` pages. `high == 0`: off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerCpuPages {
    count: usize,
    high: usize,
    batch: usize,
    head: u32,
    tail: u32,
}

impl PerCpuPages {
    const OFF: PerCpuPages = PerCpuPages {
        count: 0,
        high: 0,
        batch: 0,
        head: NONE,
        tail: NONE,
    };

    /// Pages on the list.
    pub const fn count(&self) -> usize {
        self.count
    }
    pub const fn high(&self) -> usize {
        self.high
    }
    pub const fn batch(&self) -> usize {
        self.batch
    }
}

/// Linux 5.10's `zone_batchsize()`: pages moved between the buddy lists
/// and the per-cpu list at a time, for a zone of `managed_pages` (4 KiB
/// pages): a quarter of 1/1024 of the zone, at most 512 KiB worth, rounded
/// to 2^n - 1 (31 for a 1 GiB zone). The high watermark is 6 * batch.
pub const fn zone_batchsize(managed_pages: usize) -> usize {
    let mut batch = managed_pages / 1024;
    if batch > 128 {
        batch = 128;
    }
    batch /= 4;
    if batch < 1 {
        batch = 1;
    }
    let x = batch + batch / 2;
    (1 << (usize::BITS - 1 - x.leading_zeros())) - 1
}

/// Free list of one order (Linux's `struct free_area`, one migrate type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeArea {
    head: u32,
    tail: u32,
    nr_free: usize,
}

impl FreeArea {
    const EMPTY: FreeArea = FreeArea {
        head: NONE,
        tail: NONE,
        nr_free: 0,
    };

    /// Number of free blocks of this order.
    pub const fn nr_free(&self) -> usize {
        self.nr_free
    }
}

/// A rejected free or release. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuddyError {
    /// The page (or the end of the block) lies outside the zone(s).
    NotInZone { pfn: usize },
    /// `pfn` is not aligned to `2^order` pages.
    Misaligned { pfn: usize, order: usize },
    /// The block is already free, or overlaps a free block.
    DoubleFree { pfn: usize, order: usize },
    /// The page was never given to the allocator.
    Reserved { pfn: usize },
    /// `order >= MAX_ORDER`.
    BadOrder { order: usize },
    /// `pfn` heads an allocated block of a different order.
    OrderMismatch {
        pfn: usize,
        order: usize,
        allocated_order: usize,
    },
    /// `pfn` lies inside an allocated block but is not its first page.
    NotAllocated { pfn: usize },
}

impl fmt::Display for BuddyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuddyError::NotInZone { pfn } => write!(f, "pfn {pfn:#x} is outside the zone"),
            BuddyError::Misaligned { pfn, order } => {
                write!(f, "pfn {pfn:#x} is not aligned for an order-{order} block")
            }
            BuddyError::DoubleFree { pfn, order } => {
                write!(f, "double free: order-{order} block at pfn {pfn:#x} is already free")
            }
            BuddyError::Reserved { pfn } => write!(f, "pfn {pfn:#x} is reserved, never given to the allocator"),
            BuddyError::BadOrder { order } => write!(f, "order {order} >= MAX_ORDER ({MAX_ORDER})"),
            BuddyError::OrderMismatch {
                pfn,
                order,
                allocated_order,
            } => write!(
                f,
                "freeing pfn {pfn:#x} as order {order}, but it was allocated as order {allocated_order}"
            ),
            BuddyError::NotAllocated { pfn } => {
                write!(f, "pfn {pfn:#x} is not the first page of an allocated block")
            }
        }
    }
}

/// A broken invariant found by [`Zone::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// A free list's links are inconsistent (bad index, prev/tail mismatch,
    /// or a cycle).
    ListCorrupt { order: usize, index: u32 },
    /// A free-list entry is not a buddy head of that order.
    NotBuddy { pfn: usize, order: usize },
    /// A block head is not aligned to its order.
    Misaligned { pfn: usize, order: usize },
    /// A block extends past the end of the zone.
    OutOfZone { pfn: usize, order: usize },
    /// A page inside a block carries state of its own (overlapping blocks).
    Overlap { pfn: usize },
    /// A page belongs to no block and is not reserved.
    Orphan { pfn: usize },
    /// `nr_free` disagrees with the list or with the pages marked free.
    NrFreeMismatch {
        order: usize,
        nr_free: usize,
        counted: usize,
    },
    /// Two free buddies of the same order were left unmerged.
    Unmerged { pfn: usize, order: usize },
    /// The free page counter disagrees with the free lists.
    FreePagesMismatch { free_pages: usize, counted: usize },
    /// managed + reserved pages do not add up to the zone span, or
    /// free + allocated pages do not add up to managed.
    Conservation {
        managed: usize,
        reserved: usize,
        free: usize,
        allocated: usize,
    },
    /// The per-cpu list is badly linked, holds a page that is not an
    /// order-0 `PG_PCP` page, or disagrees with its count (index `NONE`:
    /// the pages marked `PG_PCP` do not match the list).
    PcpCorrupt { index: u32 },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckError::ListCorrupt { order, index } => {
                write!(f, "free_area[{order}] list corrupt at index {index:#x}")
            }
            CheckError::NotBuddy { pfn, order } => {
                write!(f, "pfn {pfn:#x} on free_area[{order}] is not a buddy of that order")
            }
            CheckError::Misaligned { pfn, order } => write!(f, "order-{order} block at pfn {pfn:#x} misaligned"),
            CheckError::OutOfZone { pfn, order } => {
                write!(f, "order-{order} block at pfn {pfn:#x} extends past the zone")
            }
            CheckError::Overlap { pfn } => write!(f, "pfn {pfn:#x} inside a block has state of its own"),
            CheckError::Orphan { pfn } => write!(f, "pfn {pfn:#x} belongs to no block"),
            CheckError::PcpCorrupt { index } => write!(f, "per-cpu page list corrupt at index {index:#x}"),
            CheckError::NrFreeMismatch {
                order,
                nr_free,
                counted,
            } => {
                write!(f, "free_area[{order}].nr_free is {nr_free}, counted {counted}")
            }
            CheckError::Unmerged { pfn, order } => {
                write!(f, "order-{order} buddies at pfn {pfn:#x} were not merged")
            }
            CheckError::FreePagesMismatch { free_pages, counted } => {
                write!(f, "free pages is {free_pages}, free lists hold {counted}")
            }
            CheckError::Conservation {
                managed,
                reserved,
                free,
                allocated,
            } => write!(
                f,
                "page accounting broken: managed {managed}, reserved {reserved}, free {free}, allocated {allocated}"
            ),
        }
    }
}

/// One memory zone and its buddy allocator (Linux's `struct zone`).
pub struct Zone {
    name: &'static str,
    node: u32,
    start_pfn: usize,
    spanned_pages: usize,
    mem_map: *mut Page,
    free_area: [FreeArea; MAX_ORDER],
    /// Pages ever released to the allocator (`zone->managed_pages`).
    managed_pages: usize,
    /// `NR_FREE_PAGES`: pages in the buddy lists.
    nr_free_pages: usize,
    /// The per-cpu lists, one per CPU (off unless [`Zone::set_pcp`]
    /// turned them on).
    pcp: [PerCpuPages; NR_CPUS],
}

// SAFETY: the zone exclusively owns its mem_map (contract of `Zone::new`),
// so moving it to another CPU moves sole access with it; the raw pointer is
// the only reason Send is not derived.
unsafe impl Send for Zone {}

impl Zone {
    /// Bytes of mem_map a zone of `spanned_pages` pages needs.
    pub const fn mem_map_bytes(spanned_pages: usize) -> usize {
        spanned_pages * core::mem::size_of::<Page>()
    }

    /// A zone over `[start_pfn, start_pfn + spanned_pages)` named "Normal";
    /// every page starts `PG_reserved` until [`Zone::free_range`] releases it.
    ///
    /// # Safety
    /// `mem_map` points at `spanned_pages` writable, suitably aligned
    /// `Page`s (initialised or not) that the zone owns exclusively for its
    /// whole lifetime.
    pub unsafe fn new(start_pfn: usize, spanned_pages: usize, mem_map: *mut Page, node: u32) -> Zone {
        // Links are u32 indices and NONE must stay out of range.
        assert!(spanned_pages < NONE as usize, "zone too large for u32 page links");
        assert!(
            start_pfn.checked_add(spanned_pages).is_some(),
            "zone wraps the pfn space"
        );
        for i in 0..spanned_pages {
            // SAFETY: i < spanned_pages, and the caller promises that many
            // writable, aligned Pages at mem_map; write() because they may
            // be uninitialised (nothing to drop).
            unsafe { mem_map.add(i).write(Page::RESERVED) };
        }
        Zone {
            name: "Normal",
            node,
            start_pfn,
            spanned_pages,
            mem_map,
            free_area: [FreeArea::EMPTY; MAX_ORDER],
            managed_pages: 0,
            nr_free_pages: 0,
            pcp: [PerCpuPages::OFF; NR_CPUS],
        }
    }

    /// Sets the name /proc/buddyinfo shows ("DMA", "DMA32", "Normal", ...).
    pub fn with_name(mut self, name: &'static str) -> Zone {
        self.name = name;
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
    pub fn node(&self) -> u32 {
        self.node
    }
    pub fn start_pfn(&self) -> usize {
        self.start_pfn
    }
    /// One past the last pfn of the zone (`zone_end_pfn()`).
    pub fn end_pfn(&self) -> usize {
        self.start_pfn + self.spanned_pages
    }
    pub fn spanned_pages(&self) -> usize {
        self.spanned_pages
    }
    /// Free pages in the zone: the buddy lists (`NR_FREE_PAGES`) plus the
    /// per-cpu lists.
    pub fn free_count(&self) -> usize {
        self.nr_free_pages + self.pcp.iter().map(|p| p.count).sum::<usize>()
    }
    /// CPU 0's per-cpu list's state (every CPU's has the same high/batch).
    pub fn pcp(&self) -> PerCpuPages {
        self.pcp[0]
    }
    /// The per-cpu list of `cpu`.
    pub fn pcp_of(&self, cpu: usize) -> PerCpuPages {
        self.pcp[cpu]
    }

    /// Turn the per-cpu lists on with `high` and `batch` (Linux's
    /// `pageset_set_high_and_batch`), or off with `high == 0` (their pages go
    /// back to the buddy lists first). `batch` is clamped to 1..=high.
    pub fn set_pcp(&mut self, high: usize, batch: usize) {
        self.drain_pages();
        for pcp in &mut self.pcp {
            pcp.high = high;
            pcp.batch = batch.clamp(1, high.max(1));
        }
    }

    /// Give every page of every per-cpu list back to the buddy lists
    /// (Linux's `drain_pages_zone` on each CPU).
    pub fn drain_pages(&mut self) {
        for cpu in 0..NR_CPUS {
            let n = self.pcp[cpu].count;
            self.free_pcppages_bulk(cpu, n);
        }
    }
    /// Pages released to the allocator (`zone_managed_pages()`).
    pub fn managed(&self) -> usize {
        self.managed_pages
    }
    /// Free blocks of `order` (`free_area[order].nr_free`); 0 for a bad order.
    pub fn nr_free(&self, order: usize) -> usize {
        self.free_area.get(order).map_or(0, |a| a.nr_free)
    }
    /// Is `pfn` within the zone's span (`zone_spans_pfn()`)?
    pub fn contains(&self, pfn: usize) -> bool {
        pfn >= self.start_pfn && pfn < self.end_pfn()
    }
    /// The `struct page` of `pfn`, if the zone spans it.
    pub fn page(&self, pfn: usize) -> Option<&Page> {
        self.contains(pfn).then(|| self.pg(pfn - self.start_pfn))
    }

    #[inline]
    fn pg(&self, idx: usize) -> &Page {
        debug_assert!(idx < self.spanned_pages);
        // SAFETY: idx < spanned_pages (debug-asserted): every caller derives
        // it from a pfn it checked lies in the zone, or from the zone's own
        // free lists, which hold only in-zone indices. mem_map has
        // spanned_pages initialised Pages (Zone::new wrote them) that the
        // zone owns, and &self excludes writers.
        unsafe { &*self.mem_map.add(idx) }
    }

    #[inline]
    fn pg_mut(&mut self, idx: usize) -> &mut Page {
        debug_assert!(idx < self.spanned_pages);
        // SAFETY: in bounds and initialised as in pg(); &mut self makes this
        // the only reference into mem_map.
        unsafe { &mut *self.mem_map.add(idx) }
    }

    /// `page_is_buddy()`: is `pfn` in the zone and the head of a free block
    /// of exactly `order`?
    #[inline]
    fn page_is_buddy(&self, pfn: usize, order: usize) -> bool {
        if !self.contains(pfn) {
            return false;
        }
        let p = self.pg(pfn - self.start_pfn);
        p.is_buddy() && p.order() == order
    }

    fn add_to_free_list(&mut self, idx: usize, order: usize, to_tail: bool) {
        let i = idx as u32;
        let area = self.free_area[order];
        if to_tail {
            let p = self.pg_mut(idx);
            p.next = NONE;
            p.prev = area.tail;
            if area.tail == NONE {
                self.free_area[order].head = i;
            } else {
                self.pg_mut(area.tail as usize).next = i;
            }
            self.free_area[order].tail = i;
        } else {
            let p = self.pg_mut(idx);
            p.prev = NONE;
            p.next = area.head;
            if area.head == NONE {
                self.free_area[order].tail = i;
            } else {
                self.pg_mut(area.head as usize).prev = i;
            }
            self.free_area[order].head = i;
        }
        self.free_area[order].nr_free += 1;
    }

    fn del_from_free_list(&mut self, idx: usize, order: usize) {
        let (next, prev) = {
            let p = self.pg(idx);
            (p.next, p.prev)
        };
        if prev == NONE {
            self.free_area[order].head = next;
        } else {
            self.pg_mut(prev as usize).next = next;
        }
        if next == NONE {
            self.free_area[order].tail = prev;
        } else {
            self.pg_mut(next as usize).prev = prev;
        }
        let p = self.pg_mut(idx);
        p.next = NONE;
        p.prev = NONE;
        self.free_area[order].nr_free -= 1;
    }

    /// Marks `idx` as the head of a free block of `order` (`set_buddy_order`).
    fn set_buddy_order(&mut self, idx: usize, order: usize) {
        let p = self.pg_mut(idx);
        p.flags = PG_BUDDY;
        p.order = order as u8;
    }

    /// Turns a buddy head into a plain tail page.
    fn clear_page_state(&mut self, idx: usize) {
        let p = self.pg_mut(idx);
        p.flags = 0;
        p.order = 0;
    }

    /// Put the order-0 page `idx` at the head of `cpu`'s per-cpu list.
    #[inline]
    fn pcp_push(&mut self, cpu: usize, idx: usize) {
        let head = self.pcp[cpu].head;
        let p = self.pg_mut(idx);
        p.flags = PG_PCP;
        p.order = 0;
        p.prev = NONE;
        p.next = head;
        let pcp = &mut self.pcp[cpu];
        if head == NONE {
            pcp.tail = idx as u32;
        }
        pcp.head = idx as u32;
        pcp.count += 1;
        if head != NONE {
            self.pg_mut(head as usize).prev = idx as u32;
        }
    }

    /// Take the page at `idx` (the head or the tail) off `cpu`'s per-cpu list.
    #[inline]
    fn pcp_del(&mut self, cpu: usize, idx: usize) {
        let (next, prev) = {
            let p = self.pg(idx);
            (p.next, p.prev)
        };
        if prev == NONE {
            self.pcp[cpu].head = next;
        } else {
            self.pg_mut(prev as usize).next = next;
        }
        if next == NONE {
            self.pcp[cpu].tail = prev;
        } else {
            self.pg_mut(next as usize).prev = prev;
        }
        let p = self.pg_mut(idx);
        p.next = NONE;
        p.prev = NONE;
        p.flags = 0;
        self.pcp[cpu].count -= 1;
    }

    /// `rmqueue_bulk()`: move up to `count` order-0 pages from the buddy
    /// lists to `cpu`'s per-cpu list; returns how many it moved.
    fn rmqueue_bulk(&mut self, cpu: usize, count: usize) -> usize {
        for i in 0..count {
            let Some(idx) = self.rmqueue_smallest(0) else { return i };
            self.nr_free_pages -= 1;
            self.pcp_push(cpu, idx);
        }
        count
    }

    /// `free_pcppages_bulk()`: give the `count` oldest pages of `cpu`'s
    /// per-cpu list back to the buddy lists.
    #[inline(never)]
    fn free_pcppages_bulk(&mut self, cpu: usize, count: usize) {
        for _ in 0..count.min(self.pcp[cpu].count) {
            let idx = self.pcp[cpu].tail as usize;
            self.pcp_del(cpu, idx);
            self.nr_free_pages += 1;
            self.free_one_page(self.start_pfn + idx, 0, false);
        }
    }

    /// `buddy_merge_likely()`: if the block's buddy one order up is free, a
    /// merge is likely once our buddy comes back, so queue this block at the
    /// tail where it is less likely to be split in the meantime.
    fn buddy_merge_likely(&self, pfn: usize, order: usize) -> bool {
        if order >= MAX_ORDER - 2 {
            return false;
        }
        let combined_pfn = pfn & !(1 << order);
        self.page_is_buddy(combined_pfn ^ (1 << (order + 1)), order + 1)
    }

    /// `__free_one_page()`: insert a block whose pages are already accounted
    /// as free, merging with its buddies as far as possible.
    fn free_one_page(&mut self, mut pfn: usize, mut order: usize, fpi_to_tail: bool) {
        while order < MAX_ORDER - 1 {
            let buddy_pfn = pfn ^ (1 << order); // __find_buddy_pfn()
            if !self.page_is_buddy(buddy_pfn, order) {
                break;
            }
            let buddy_idx = buddy_pfn - self.start_pfn;
            self.del_from_free_list(buddy_idx, order);
            self.clear_page_state(buddy_idx);
            let idx = pfn - self.start_pfn;
            self.clear_page_state(idx);
            pfn &= buddy_pfn;
            order += 1;
        }
        let idx = pfn - self.start_pfn;
        self.set_buddy_order(idx, order);
        let to_tail = fpi_to_tail || self.buddy_merge_likely(pfn, order);
        self.add_to_free_list(idx, order, to_tail);
    }

    /// `expand()`: split the block at `idx` from order `high` down to `low`,
    /// giving each upper half back to the free list of its order.
    fn expand(&mut self, idx: usize, low: usize, mut high: usize) {
        while high > low {
            high -= 1;
            let half = idx + (1 << high);
            self.set_buddy_order(half, high);
            self.add_to_free_list(half, high, false);
        }
    }

    /// `__rmqueue_smallest()`: take the first block of the smallest order
    /// at least `order` off its list and split it down to `order`; returns
    /// the block's index (its head page carries no state yet).
    fn rmqueue_smallest(&mut self, order: usize) -> Option<usize> {
        for current in order..MAX_ORDER {
            let head = self.free_area[current].head;
            if head == NONE {
                continue;
            }
            let idx = head as usize;
            self.del_from_free_list(idx, current);
            self.expand(idx, order, current);
            return Some(idx);
        }
        None
    }

    /// Allocates a naturally aligned block of `2^order` pages and returns its
    /// first pfn, or `None` if no free block is large enough (`rmqueue()`:
    /// order 0 from the per-cpu list when it is on, refilled `batch` pages
    /// at a time; else `__rmqueue_smallest()`). O(MAX_ORDER), never touches
    /// the heap.
    #[inline]
    pub fn alloc_pages(&mut self, order: usize) -> Option<usize> {
        self.alloc_pages_on(0, order)
    }

    /// [`Zone::alloc_pages`] on CPU `cpu` (< [`NR_CPUS`]): order 0 comes
    /// from that CPU's per-cpu list.
    #[inline]
    pub fn alloc_pages_on(&mut self, cpu: usize, order: usize) -> Option<usize> {
        // Fast path: a page off the per-cpu list (count != 0 means it is on).
        if order == 0 && self.pcp[cpu].count != 0 {
            let idx = self.pcp[cpu].head as usize;
            self.pcp_del(cpu, idx);
            let p = self.pg_mut(idx);
            p.flags = PG_ALLOCATED;
            return Some(self.start_pfn + idx);
        }
        self.alloc_pages_slow(cpu, order)
    }

    /// Everything but a per-cpu list hit: refill, or the buddy lists.
    #[inline(never)]
    fn alloc_pages_slow(&mut self, cpu: usize, order: usize) -> Option<usize> {
        if order >= MAX_ORDER {
            return None;
        }
        let idx = if order == 0 && self.pcp[cpu].high != 0 {
            // rmqueue_pcplist()
            if self.pcp[cpu].count == 0 && self.rmqueue_bulk(cpu, self.pcp[cpu].batch) == 0 {
                return None;
            }
            let idx = self.pcp[cpu].head as usize;
            self.pcp_del(cpu, idx);
            idx
        } else {
            let idx = self.rmqueue_smallest(order)?;
            self.nr_free_pages -= 1 << order;
            idx
        };
        let p = self.pg_mut(idx);
        p.flags = PG_ALLOCATED;
        p.order = order as u8;
        Some(self.start_pfn + idx)
    }

    /// Returns the block `(pfn, order)` that [`Zone::alloc_pages`] handed
    /// out. Anything else (double free, wrong order, tail page, reserved
    /// page, ...) is rejected with nothing changed. O(MAX_ORDER).
    #[inline]
    pub fn free_pages(&mut self, pfn: usize, order: usize) -> Result<(), BuddyError> {
        self.free_pages_on(0, pfn, order)
    }

    /// [`Zone::free_pages`] on CPU `cpu` (< [`NR_CPUS`]): an order-0 page
    /// goes to that CPU's per-cpu list, whichever CPU allocated it.
    #[inline]
    pub fn free_pages_on(&mut self, cpu: usize, pfn: usize, order: usize) -> Result<(), BuddyError> {
        // Fast path: a valid order-0 page onto the per-cpu list.
        if order == 0 && self.pcp[cpu].high != 0 && self.contains(pfn) {
            let idx = pfn - self.start_pfn;
            let p = self.pg(idx);
            if p.flags == PG_ALLOCATED && p.order == 0 {
                self.pcp_push(cpu, idx);
                if self.pcp[cpu].count >= self.pcp[cpu].high {
                    self.free_pcppages_bulk(cpu, self.pcp[cpu].batch);
                }
                return Ok(());
            }
        }
        self.free_pages_slow(cpu, pfn, order)
    }

    /// Everything but a per-cpu list push: validation errors, higher
    /// orders, the list turned off.
    #[inline(never)]
    fn free_pages_slow(&mut self, cpu: usize, pfn: usize, order: usize) -> Result<(), BuddyError> {
        let ok = order < MAX_ORDER && self.contains(pfn) && {
            let p = self.pg(pfn - self.start_pfn);
            p.is_allocated() && p.order() == order
        };
        if !ok {
            return Err(self.diagnose_free(pfn, order));
        }
        let idx = pfn - self.start_pfn;
        if order == 0 && self.pcp[cpu].high != 0 {
            // free_unref_page(): onto the per-cpu list; past the high
            // watermark, the oldest batch goes back to the buddy lists.
            self.pcp_push(cpu, idx);
            if self.pcp[cpu].count >= self.pcp[cpu].high {
                self.free_pcppages_bulk(cpu, self.pcp[cpu].batch);
            }
            return Ok(());
        }
        self.clear_page_state(idx);
        self.nr_free_pages += 1 << order;
        self.free_one_page(pfn, order, false);
        Ok(())
    }

    /// Why `(pfn, order)` is not an allocated block. Slow path only.
    fn diagnose_free(&self, pfn: usize, order: usize) -> BuddyError {
        if order >= MAX_ORDER {
            return BuddyError::BadOrder { order };
        }
        if !self.contains(pfn) {
            return BuddyError::NotInZone { pfn };
        }
        if pfn & ((1 << order) - 1) != 0 {
            return BuddyError::Misaligned { pfn, order };
        }
        let p = self.pg(pfn - self.start_pfn);
        if p.is_allocated() {
            return BuddyError::OrderMismatch {
                pfn,
                order,
                allocated_order: p.order(),
            };
        }
        if p.is_buddy() || p.is_pcp() {
            return BuddyError::DoubleFree { pfn, order };
        }
        if p.is_reserved() {
            return BuddyError::Reserved { pfn };
        }
        // A tail page: blocks are aligned, so its head is pfn rounded down to
        // the order of the block containing it.
        for k in 1..MAX_ORDER {
            let head = pfn & !((1 << k) - 1);
            if head < self.start_pfn {
                break;
            }
            let h = self.pg(head - self.start_pfn);
            if h.order() == k {
                if h.is_buddy() {
                    return BuddyError::DoubleFree { pfn, order };
                }
                if h.is_allocated() {
                    return BuddyError::NotAllocated { pfn };
                }
            }
        }
        // Unreachable while the invariants hold; check() would say more.
        BuddyError::NotAllocated { pfn }
    }

    /// Releases the reserved pages `[start_pfn, end_pfn)` to the allocator
    /// (`memblock_free_all()` -> `__free_pages_core()`): they go in as the
    /// largest naturally aligned blocks possible, merging with free
    /// neighbours. Fails, changing nothing, if the range leaves the zone or
    /// any page in it was already released.
    pub fn free_range(&mut self, start_pfn: usize, end_pfn: usize) -> Result<(), BuddyError> {
        self.check_range_reserved(start_pfn, end_pfn)?;
        self.release_range(start_pfn, end_pfn);
        Ok(())
    }

    fn check_range_reserved(&self, start_pfn: usize, end_pfn: usize) -> Result<(), BuddyError> {
        if start_pfn >= end_pfn {
            return Ok(());
        }
        if !self.contains(start_pfn) {
            return Err(BuddyError::NotInZone { pfn: start_pfn });
        }
        if end_pfn > self.end_pfn() {
            return Err(BuddyError::NotInZone { pfn: self.end_pfn() });
        }
        for pfn in start_pfn..end_pfn {
            if !self.pg(pfn - self.start_pfn).is_reserved() {
                return Err(BuddyError::DoubleFree { pfn, order: 0 });
            }
        }
        Ok(())
    }

    fn release_range(&mut self, start_pfn: usize, end_pfn: usize) {
        if start_pfn >= end_pfn {
            return;
        }
        for pfn in start_pfn..end_pfn {
            self.clear_page_state(pfn - self.start_pfn);
        }
        let nr = end_pfn - start_pfn;
        self.managed_pages += nr;
        self.nr_free_pages += nr;
        // __free_pages_memory(): biggest aligned block that still fits.
        let mut pfn = start_pfn;
        while pfn < end_pfn {
            let mut order = (MAX_ORDER - 1).min(pfn.trailing_zeros() as usize);
            while pfn + (1 << order) > end_pfn {
                order -= 1;
            }
            self.free_one_page(pfn, order, true);
            pfn += 1 << order;
        }
    }

    /// Writes this zone's /proc/buddyinfo line (`frag_show_print()`):
    /// `"Node %d, zone %8s "`, then `"%6lu "` per order, then a newline.
    pub fn buddyinfo<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        write!(w, "Node {}, zone {:>8} ", self.node, self.name)?;
        for area in &self.free_area {
            write!(w, "{:>6} ", area.nr_free)?;
        }
        w.write_char('\n')
    }

    /// Verifies every invariant: free lists well linked, each entry a buddy
    /// head of its order, aligned and inside the zone; blocks tile the
    /// non-reserved pages without overlap; no two free buddies left
    /// unmerged; nr_free, free and managed counts consistent. O(spanned).
    pub fn check(&self) -> Result<(), CheckError> {
        let n = self.spanned_pages;
        let mut listed_pages = 0;
        for (order, area) in self.free_area.iter().enumerate() {
            let mut prev = NONE;
            let mut cur = area.head;
            let mut count = 0;
            while cur != NONE {
                if cur as usize >= n || count >= n {
                    return Err(CheckError::ListCorrupt { order, index: cur });
                }
                let p = self.pg(cur as usize);
                if p.prev != prev {
                    return Err(CheckError::ListCorrupt { order, index: cur });
                }
                let pfn = self.start_pfn + cur as usize;
                if p.flags != PG_BUDDY || p.order() != order {
                    return Err(CheckError::NotBuddy { pfn, order });
                }
                count += 1;
                prev = cur;
                cur = p.next;
            }
            if area.tail != prev {
                return Err(CheckError::ListCorrupt {
                    order,
                    index: area.tail,
                });
            }
            if count != area.nr_free {
                return Err(CheckError::NrFreeMismatch {
                    order,
                    nr_free: area.nr_free,
                    counted: count,
                });
            }
            listed_pages += count << order;
        }
        if listed_pages != self.nr_free_pages {
            return Err(CheckError::FreePagesMismatch {
                free_pages: self.nr_free_pages,
                counted: listed_pages,
            });
        }
        // The per-cpu lists: well linked, order-0 PG_PCP pages, counted.
        for pcp in &self.pcp {
            let (mut prev, mut cur, mut count) = (NONE, pcp.head, 0);
            while cur != NONE {
                if cur as usize >= n || count >= n {
                    return Err(CheckError::PcpCorrupt { index: cur });
                }
                let p = self.pg(cur as usize);
                if p.prev != prev || p.flags != PG_PCP || p.order() != 0 {
                    return Err(CheckError::PcpCorrupt { index: cur });
                }
                count += 1;
                prev = cur;
                cur = p.next;
            }
            if pcp.tail != prev || count != pcp.count || (pcp.high == 0 && count != 0) {
                return Err(CheckError::PcpCorrupt { index: pcp.tail });
            }
        }

        // Walk the zone block by block. Every listed entry is a buddy head,
        // so matching the per-order head counts below proves the lists hold
        // exactly the free blocks.
        let mut heads = [0usize; MAX_ORDER];
        let (mut reserved, mut allocated, mut on_pcp) = (0, 0, 0);
        let mut idx = 0;
        while idx < n {
            let p = self.pg(idx);
            let pfn = self.start_pfn + idx;
            if p.flags == PG_RESERVED {
                reserved += 1;
                idx += 1;
                continue;
            }
            let order = p.order();
            if (p.flags != PG_BUDDY && p.flags != PG_ALLOCATED && p.flags != PG_PCP)
                || order >= MAX_ORDER
                || (p.flags == PG_PCP && order != 0)
            {
                return Err(CheckError::Orphan { pfn });
            }
            if p.flags == PG_PCP {
                on_pcp += 1;
            }
            if pfn & ((1 << order) - 1) != 0 {
                return Err(CheckError::Misaligned { pfn, order });
            }
            if idx + (1 << order) > n {
                return Err(CheckError::OutOfZone { pfn, order });
            }
            if p.flags == PG_BUDDY {
                heads[order] += 1;
                if order < MAX_ORDER - 1 && self.page_is_buddy(pfn ^ (1 << order), order) {
                    return Err(CheckError::Unmerged {
                        pfn: pfn & !(1 << order),
                        order,
                    });
                }
            } else {
                allocated += 1 << order;
            }
            for tail in idx + 1..idx + (1 << order) {
                if self.pg(tail).flags != 0 {
                    return Err(CheckError::Overlap {
                        pfn: self.start_pfn + tail,
                    });
                }
            }
            idx += 1 << order;
        }
        if on_pcp != self.pcp.iter().map(|p| p.count).sum::<usize>() {
            return Err(CheckError::PcpCorrupt { index: NONE });
        }
        for (order, &counted) in heads.iter().enumerate() {
            if counted != self.free_area[order].nr_free {
                return Err(CheckError::NrFreeMismatch {
                    order,
                    nr_free: self.free_area[order].nr_free,
                    counted,
                });
            }
        }
        if reserved + self.managed_pages != n || self.nr_free_pages + allocated != self.managed_pages {
            return Err(CheckError::Conservation {
                managed: self.managed_pages,
                reserved,
                free: self.nr_free_pages,
                allocated,
            });
        }
        Ok(())
    }
}

/// Why [`Zones::add`] refused a zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZonesError {
    /// Already [`MAX_ZONES`] zones.
    Full,
    /// The new zone's span overlaps the zone at this index.
    Overlap { index: usize },
    /// The zone's node is not below [`MAX_NUMNODES`].
    BadNode { node: u32 },
}

impl fmt::Display for ZonesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ZonesError::Full => write!(f, "already {MAX_ZONES} zones"),
            ZonesError::Overlap { index } => write!(f, "zone overlaps zone {index}"),
            ZonesError::BadNode { node } => write!(f, "node {node} >= MAX_NUMNODES ({MAX_NUMNODES})"),
        }
    }
}

/// All zones of the system in a fixed array (no heap), kept in Linux's
/// order: by node, then by address, which on arm64 is zone index order
/// (DMA, DMA32, Normal). The zones of one node are therefore adjacent:
/// `node_zones[nid]` is that node's slice of the array, its `pg_data_t`'s
/// `node_zones` ([`Zones::node_data`]).
pub struct Zones {
    zones: [Option<Zone>; MAX_ZONES],
    nr: usize,
    /// Indices of each node's zones (empty: no memory on the node).
    node_zones: [(u8, u8); MAX_NUMNODES],
    /// Each node's fallback order (Linux's node_zonelists[ZONELIST_FALLBACK],
    /// by node; within a node the highest zone is tried first).
    zonelists: [NodeOrder; MAX_NUMNODES],
}

const _: () = assert!(MAX_ZONES <= u8::MAX as usize);

/// A node's summary (Linux's `pg_data_t`, `struct pglist_data`): its zones
/// and what they span and hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PglistData {
    pub node_id: usize,
    /// Lowest pfn of the node's zones (`node_start_pfn`).
    pub node_start_pfn: usize,
    /// Pages from `node_start_pfn` to the end of its last zone, holes
    /// between zones included (`node_spanned_pages`).
    pub node_spanned_pages: usize,
    /// Pages spanned by its zones, holes excluded (`node_present_pages`).
    pub node_present_pages: usize,
    /// Pages released to the allocator (sum of `zone_managed_pages`).
    pub managed_pages: usize,
    /// Free pages, buddy and per-cpu lists (`NR_FREE_PAGES` of the node).
    pub nr_free_pages: usize,
    /// Indices of its zones in the [`Zones`] array (`node_zones`).
    pub zones: Range<usize>,
}

impl PglistData {
    /// One past the node's last pfn (`pgdat_end_pfn()`).
    pub fn node_end_pfn(&self) -> usize {
        self.node_start_pfn + self.node_spanned_pages
    }
}

impl Default for Zones {
    fn default() -> Self {
        Self::new()
    }
}

impl Zones {
    pub const fn new() -> Zones {
        Zones {
            zones: [const { None }; MAX_ZONES],
            nr: 0,
            node_zones: [(0, 0); MAX_NUMNODES],
            zonelists: [NodeOrder::EMPTY; MAX_NUMNODES],
        }
    }

    /// Adds a zone, keeping (node, start_pfn) order; returns its index.
    /// Indices of later zones shift, so add every zone before using them.
    pub fn add(&mut self, zone: Zone) -> Result<usize, ZonesError> {
        if self.nr == MAX_ZONES {
            return Err(ZonesError::Full);
        }
        if zone.node as usize >= MAX_NUMNODES {
            return Err(ZonesError::BadNode { node: zone.node });
        }
        if let Some(index) = self
            .iter()
            .position(|z| zone.start_pfn < z.end_pfn() && z.start_pfn < zone.end_pfn())
        {
            return Err(ZonesError::Overlap { index });
        }
        let key = (zone.node, zone.start_pfn);
        let at = self.iter().position(|z| (z.node, z.start_pfn) > key).unwrap_or(self.nr);
        self.zones[at..=self.nr].rotate_right(1);
        self.zones[at] = Some(zone);
        self.nr += 1;
        self.build_all_zonelists();
        Ok(at)
    }

    /// Recompute each node's zone slice and fallback order (Linux's
    /// build_all_zonelists), after the set of zones changed.
    fn build_all_zonelists(&mut self) {
        let mut node_zones = [(0u8, 0u8); MAX_NUMNODES];
        let mut with_memory = NodeMask::NONE;
        for (i, z) in self.iter().enumerate() {
            let n = z.node as usize;
            if !with_memory.node_isset(n) {
                node_zones[n] = (i as u8, i as u8);
                with_memory = with_memory.with(n);
            }
            node_zones[n].1 = i as u8 + 1;
        }
        self.node_zones = node_zones;
        for nid in 0..MAX_NUMNODES {
            self.zonelists[nid] = numa::build_node_order(nid, with_memory, numa::node_distance);
        }
    }

    /// The nodes that have memory (Linux's `node_states[N_MEMORY]`).
    pub fn nodes_with_memory(&self) -> NodeMask {
        self.iter().fold(NodeMask::NONE, |m, z| m.with(z.node as usize))
    }

    /// Node `nid`'s fallback order (nodes only).
    pub fn node_order(&self, nid: usize) -> &[u8] {
        self.zonelists.get(nid).map_or(&[], NodeOrder::as_slice)
    }

    /// Indices of node `nid`'s zones (empty if it has no memory).
    pub fn node_zone_range(&self, nid: usize) -> Range<usize> {
        self.node_zones.get(nid).map_or(0..0, |&(s, e)| s as usize..e as usize)
    }

    /// Linux's NODE_DATA(nid): the node's zones and counts; None for a node
    /// without memory.
    pub fn node_data(&self, nid: usize) -> Option<PglistData> {
        let zones = self.node_zone_range(nid);
        if zones.is_empty() {
            return None;
        }
        let mut pgdat = PglistData {
            node_id: nid,
            node_start_pfn: usize::MAX,
            node_spanned_pages: 0,
            node_present_pages: 0,
            managed_pages: 0,
            nr_free_pages: 0,
            zones: zones.clone(),
        };
        let mut end = 0;
        for z in zones.filter_map(|i| self.get(i)) {
            pgdat.node_start_pfn = pgdat.node_start_pfn.min(z.start_pfn);
            end = end.max(z.end_pfn());
            pgdat.node_present_pages += z.spanned_pages;
            pgdat.managed_pages += z.managed();
            pgdat.nr_free_pages += z.free_count();
        }
        pgdat.node_spanned_pages = end - pgdat.node_start_pfn;
        Some(pgdat)
    }

    pub fn len(&self) -> usize {
        self.nr
    }
    pub fn is_empty(&self) -> bool {
        self.nr == 0
    }
    pub fn get(&self, index: usize) -> Option<&Zone> {
        self.zones.get(index).and_then(Option::as_ref)
    }
    pub fn get_mut(&mut self, index: usize) -> Option<&mut Zone> {
        self.zones.get_mut(index).and_then(Option::as_mut)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones[..self.nr].iter().flatten()
    }
    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Zone> {
        self.zones[..self.nr].iter_mut().flatten()
    }

    /// Index of the zone spanning `pfn` (`page_zone()`).
    pub fn zone_of(&self, pfn: usize) -> Option<usize> {
        self.iter().position(|z| z.contains(pfn))
    }

    /// Allocates `2^order` pages for node 0 on CPU 0; see
    /// [`Zones::alloc_pages_node_on`].
    #[inline]
    pub fn alloc_pages(&mut self, order: usize) -> Option<usize> {
        self.alloc_pages_node_on(0, 0, order)
    }

    /// [`Zones::alloc_pages`] on CPU `cpu`: its per-cpu lists.
    #[inline]
    pub fn alloc_pages_on(&mut self, cpu: usize, order: usize) -> Option<usize> {
        self.alloc_pages_node_on(cpu, 0, order)
    }

    /// Allocates `2^order` pages for node `nid` on CPU `cpu` (its per-cpu
    /// lists) from the first zone in `nid`'s zonelist that has a large
    /// enough free block. The zonelist is Linux's (build_zonelists):
    /// `nid`'s own zones, then the other nodes' by distance
    /// ([`numa::build_node_order`]); within a node the highest zone first
    /// (`build_zonerefs_node()`), so DMA zones are used last. A node
    /// without memory starts at the next best node. `nid` below
    /// [`MAX_NUMNODES`] is the caller's check (on a one-zone machine any
    /// `nid` gets that zone).
    #[inline]
    pub fn alloc_pages_node_on(&mut self, cpu: usize, nid: usize, order: usize) -> Option<usize> {
        self.alloc_pages_node_with(cpu, || nid, order)
    }

    /// [`Zones::alloc_pages_node_on`] with the node computed only when
    /// there is a zonelist to walk (more than one zone), so that finding
    /// "this CPU's node" costs nothing on a one-zone machine.
    #[inline(always)]
    pub fn alloc_pages_node_with(&mut self, cpu: usize, nid: impl FnOnce() -> usize, order: usize) -> Option<usize> {
        // One zone: no zonelist to walk.
        if self.nr == 1 {
            return self.zones[0].as_mut().and_then(|z| z.alloc_pages_on(cpu, order));
        }
        self.alloc_pages_zonelist(cpu, nid(), order)
    }

    #[inline(never)]
    fn alloc_pages_zonelist(&mut self, cpu: usize, nid: usize, order: usize) -> Option<usize> {
        let order_list = *self.zonelists.get(nid)?;
        for &n in order_list.as_slice() {
            for i in self.node_zone_range(n as usize).rev() {
                if let Some(pfn) = self.get_mut(i).and_then(|z| z.alloc_pages_on(cpu, order)) {
                    return Some(pfn);
                }
            }
        }
        None
    }

    /// Frees a block to the zone that spans `pfn`; see [`Zone::free_pages`].
    #[inline]
    pub fn free_pages(&mut self, pfn: usize, order: usize) -> Result<(), BuddyError> {
        self.free_pages_on(0, pfn, order)
    }

    /// [`Zones::free_pages`] on CPU `cpu`: its per-cpu lists.
    #[inline]
    pub fn free_pages_on(&mut self, cpu: usize, pfn: usize, order: usize) -> Result<(), BuddyError> {
        if self.nr == 1
            && let Some(z) = self.zones[0].as_mut()
            && z.contains(pfn)
        {
            return z.free_pages_on(cpu, pfn, order);
        }
        let i = self.zone_of(pfn).ok_or(BuddyError::NotInZone { pfn })?;
        self.zones[i]
            .as_mut()
            .map_or(Err(BuddyError::NotInZone { pfn }), |z| z.free_pages_on(cpu, pfn, order))
    }

    /// Releases `[start_pfn, end_pfn)` to whichever zones span it; see
    /// [`Zone::free_range`]. The whole range must be covered by zones and
    /// still reserved, else nothing changes.
    pub fn free_range(&mut self, start_pfn: usize, end_pfn: usize) -> Result<(), BuddyError> {
        let mut pfn = start_pfn;
        while pfn < end_pfn {
            let z = self
                .zone_of(pfn)
                .and_then(|i| self.get(i))
                .ok_or(BuddyError::NotInZone { pfn })?;
            let end = end_pfn.min(z.end_pfn());
            z.check_range_reserved(pfn, end)?;
            pfn = end;
        }
        for z in self.iter_mut() {
            let (s, e) = (start_pfn.max(z.start_pfn), end_pfn.min(z.end_pfn()));
            z.release_range(s, e);
        }
        Ok(())
    }

    /// Turn on every zone's per-cpu list with Linux's sizes for it
    /// ([`zone_batchsize`], high = 6 * batch; off where batch is 0).
    pub fn setup_pcp(&mut self) {
        for z in self.iter_mut() {
            let batch = zone_batchsize(z.managed());
            z.set_pcp(6 * batch, batch);
        }
    }

    /// Every per-cpu list back to the buddy lists (`drain_all_pages()`).
    pub fn drain_all_pages(&mut self) {
        self.iter_mut().for_each(Zone::drain_pages);
    }

    /// Total free pages (buddy lists and per-cpu lists).
    pub fn free_count(&self) -> usize {
        self.iter().map(Zone::free_count).sum()
    }
    /// Total managed pages (`totalram_pages()`).
    pub fn managed(&self) -> usize {
        self.iter().map(Zone::managed).sum()
    }
    /// Free blocks of `order` over all zones.
    pub fn nr_free(&self, order: usize) -> usize {
        self.iter().map(|z| z.nr_free(order)).sum()
    }

    /// The whole of /proc/buddyinfo: one line per zone, in zone order.
    pub fn buddyinfo<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        self.iter().try_for_each(|z| z.buddyinfo(w))
    }

    /// [`Zone::check`] on every zone; the error names the zone index.
    pub fn check(&self) -> Result<(), (usize, CheckError)> {
        self.iter()
            .enumerate()
            .try_for_each(|(i, z)| z.check().map_err(|e| (i, e)))
    }
}

#[cfg(test)]
mod tests;
