// SPDX-License-Identifier: GPL-2.0-only
//! Memblock: the boot-time physical memory map (a simplified Linux
//! `mm/memblock.c`).
//!
//! Where it sits in the boot flow: `start_kernel` fills it right after the
//! device tree is parsed: `add` every RAM bank, then `reserve` the kernel
//! image, the DTB, the DTB's `/memreserve/` and `/reserved-memory` ranges.
//! `paging_init` then takes page-table pages from it with [`Memblock::phys_alloc`]
//! (top-down, as Linux does, so the low memory stays contiguous), and
//! `mm_init` hands every [`Memblock::free_ranges`] range to the buddy
//! allocator, after which memblock is only consulted for `is_memory` checks
//! (e.g. `ioremap` refusing RAM).
//!
//! Both lists are fixed arrays kept sorted with overlapping and adjacent
//! ranges merged, because it runs before any heap exists. Unlike Linux it
//! tracks no per-region flags or NUMA node, so merging is always allowed;
//! the one flag the kernel needs, `MEMBLOCK_NOMAP`, is a third list.

use core::cmp::{max, min};
use core::fmt;

/// A physical range; the same type the device-tree layer produces, so its
/// `Display` is Linux's memblock debug format `[0x...-0x...]`.
/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// Exclusive end. Saturates rather than wraps: regions built by this
    /// crate never overflow, but a hand-made one must not panic here.
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
}

/// Linux's memblock debug format: `[0x0000000040000000-0x000000007fffffff]`
/// with an inclusive end.
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.base.wrapping_add(self.size).wrapping_sub(1);
        write!(f, "[{:#018x}-{:#018x}]", self.base, last)
    }
}

/// A bank of RAM and the NUMA node it belongs to (Linux keeps the node in
/// each memblock_region; here one `reg` entry of a memory node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemBank {
    pub region: Region,
    /// `numa-node-id` of the memory node the bank came from, if it has one.
    pub numa_node: Option<u32>,
}

/// Capacity of each of the two lists: Linux's INIT_MEMBLOCK_REGIONS (Linux
/// then doubles the arrays; a tree needing more than 128 disjoint banks or
/// reservations is refused with [`MemblockError::TooManyRegions`]).
pub const MAX_REGIONS: usize = 128;

/// Which list an operation failed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Memory,
    Reserved,
    /// The `MEMBLOCK_NOMAP` ranges (see [`Memblock::mark_nomap`]).
    Nomap,
}

impl RegionKind {
    fn name(self) -> &'static str {
        match self {
            RegionKind::Memory => "memory",
            RegionKind::Reserved => "reserved",
            RegionKind::Nomap => "nomap",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemblockError {
    /// The list is full and the range merges with nothing.
    TooManyRegions {
        kind: RegionKind,
        limit: usize,
        base: u64,
        size: u64,
    },
    ZeroSize {
        kind: RegionKind,
        base: u64,
    },
    /// `base + size` wraps past 2^64.
    Overflow {
        kind: RegionKind,
        base: u64,
        size: u64,
    },
}

impl fmt::Display for MemblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooManyRegions {
                kind,
                limit,
                base,
                size,
            } => write!(
                f,
                "memblock: cannot add {} {} (size {:#x}): the {} list already holds its limit of {} regions",
                kind.name(),
                Region::new(base, size),
                size,
                kind.name(),
                limit
            ),
            Self::ZeroSize { kind, base } => {
                write!(f, "memblock: zero-sized {} range at {:#x}", kind.name(), base)
            }
            Self::Overflow { kind, base, size } => write!(
                f,
                "memblock: {} range at {:#x} of size {:#x} wraps past the end of the 64-bit address space",
                kind.name(),
                base,
                size
            ),
        }
    }
}

/// A sorted list of disjoint, non-adjacent regions.
#[derive(Clone)]
struct RegionList {
    regions: [Region; MAX_REGIONS],
    cnt: usize,
    kind: RegionKind,
}

impl RegionList {
    const fn new(kind: RegionKind) -> Self {
        Self {
            regions: [Region::new(0, 0); MAX_REGIONS],
            cnt: 0,
            kind,
        }
    }

    fn as_slice(&self) -> &[Region] {
        &self.regions[..self.cnt]
    }

    fn check(&self, base: u64, size: u64) -> Result<u64, MemblockError> {
        if size == 0 {
            return Err(MemblockError::ZeroSize { kind: self.kind, base });
        }
        base.checked_add(size).ok_or(MemblockError::Overflow {
            kind: self.kind,
            base,
            size,
        })
    }

    /// Index of the first region that ends at or after `addr`, i.e. the
    /// first that could overlap or touch a range starting at `addr`.
    fn first_reaching(&self, addr: u64) -> usize {
        self.as_slice().partition_point(|r| r.end() < addr)
    }

    /// Insert `[base, base + size)`, merging everything it overlaps or touches.
    fn insert(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        let end = self.check(base, size)?;
        let i = self.first_reaching(base);
        let (mut b, mut e) = (base, end);
        let mut j = i;
        while j < self.cnt && self.regions[j].base <= e {
            b = min(b, self.regions[j].base);
            e = max(e, self.regions[j].end());
            j += 1;
        }
        if j == i {
            if self.cnt == MAX_REGIONS {
                return Err(MemblockError::TooManyRegions {
                    kind: self.kind,
                    limit: MAX_REGIONS,
                    base,
                    size,
                });
            }
            self.regions.copy_within(i..self.cnt, i + 1);
            self.cnt += 1;
        } else {
            // Regions i..j collapse into slot i.
            self.regions.copy_within(j..self.cnt, i + 1);
            self.cnt -= j - i - 1;
        }
        self.regions[i] = Region::new(b, e - b);
        Ok(())
    }

    /// Remove `[base, base + size)`; a region straddling both ends is split,
    /// which needs one free slot.
    fn remove(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        let end = self.check(base, size)?;
        // Regions i..j overlap the range (touching is not overlapping here).
        let i = self.as_slice().partition_point(|r| r.end() <= base);
        let j = i + self.as_slice()[i..].partition_point(|r| r.base < end);
        if i == j {
            return Ok(());
        }
        let (first, last) = (self.regions[i], self.regions[j - 1]);
        let mut pieces = [Region::new(0, 0); 2];
        let mut k = 0;
        if first.base < base {
            pieces[k] = Region::new(first.base, base - first.base);
            k += 1;
        }
        if last.end() > end {
            pieces[k] = Region::new(end, last.end() - end);
            k += 1;
        }
        let new_cnt = self.cnt - (j - i) + k;
        if new_cnt > MAX_REGIONS {
            return Err(MemblockError::TooManyRegions {
                kind: self.kind,
                limit: MAX_REGIONS,
                base,
                size,
            });
        }
        self.regions.copy_within(j..self.cnt, i + k);
        self.regions[i..i + k].copy_from_slice(&pieces[..k]);
        self.cnt = new_cnt;
        Ok(())
    }

    fn contains(&self, addr: u64) -> bool {
        let i = self.as_slice().partition_point(|r| r.end() <= addr);
        i < self.cnt && self.regions[i].base <= addr
    }

    fn total(&self) -> u64 {
        self.as_slice().iter().map(|r| r.size).sum()
    }
}

/// The boot-time memory map: RAM (`memory`) and ranges that must not be
/// handed out (`reserved`). `const fn new` so it can live in a `static`.
#[derive(Clone)]
pub struct Memblock {
    memory: RegionList,
    reserved: RegionList,
    /// Linux keeps `MEMBLOCK_NOMAP` as a flag on memory regions; a list of
    /// its own keeps the memory list's merging free of flag checks.
    nomap: RegionList,
}

impl Default for Memblock {
    fn default() -> Self {
        Self::new()
    }
}

impl Memblock {
    pub const fn new() -> Self {
        Self {
            memory: RegionList::new(RegionKind::Memory),
            reserved: RegionList::new(RegionKind::Reserved),
            nomap: RegionList::new(RegionKind::Nomap),
        }
    }

    /// Register RAM (`memblock_add`). Banks may come in any order and may
    /// overlap or touch; the list stays sorted and merged.
    pub fn add(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.memory.insert(base, size)
    }

    /// Take RAM back out of the map (`memblock_remove`, e.g. for `mem=`).
    pub fn remove(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.memory.remove(base, size)
    }

    /// Mark a range as in use (`memblock_reserve`). Reservations may overlap
    /// each other and need not lie inside RAM (those outside are harmless).
    pub fn reserve(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.reserved.insert(base, size)
    }

    /// Drop a reservation again (`memblock_free`), e.g. to undo a
    /// `phys_alloc` when a later step fails.
    pub fn free(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.reserved.remove(base, size)
    }

    /// Mark RAM that must stay out of the linear map (`memblock_mark_nomap`,
    /// for `/reserved-memory` nodes with `no-map`: firmware or secure-world
    /// memory that a speculative access through a cacheable alias could
    /// disturb). The range is also reserved, so neither [`Self::phys_alloc`]
    /// nor [`Self::free_ranges`] (the page allocator's source) hands it out;
    /// Linux gets the same from `for_each_free_mem_range` skipping
    /// `MEMBLOCK_NOMAP`.
    pub fn mark_nomap(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        self.nomap.insert(base, size)?;
        if let Err(e) = self.reserved.insert(base, size) {
            // Leave no half-marked range behind.
            self.nomap.remove(base, size).ok();
            return Err(e);
        }
        Ok(())
    }

    /// Is `addr` inside a `MEMBLOCK_NOMAP` range? (The negation of Linux's
    /// `memblock_is_map_memory` for RAM.)
    pub fn is_nomap(&self, addr: u64) -> bool {
        self.nomap.contains(addr)
    }

    /// `MEMBLOCK_NOMAP` ranges, ascending and merged.
    pub fn nomap(&self) -> &[Region] {
        self.nomap.as_slice()
    }

    /// RAM regions, ascending.
    pub fn memory(&self) -> &[Region] {
        self.memory.as_slice()
    }

    /// Reserved regions, ascending.
    pub fn reserved(&self) -> &[Region] {
        self.reserved.as_slice()
    }

    /// RAM minus reservations as `(start, end)` pairs, ascending, `end`
    /// exclusive; Linux's `for_each_free_mem_range`.
    pub fn free_ranges(&self) -> FreeRanges<'_> {
        FreeRanges {
            memory: self.memory(),
            reserved: self.reserved(),
            mi: 0,
            ri: 0,
            cursor: 0,
        }
    }

    /// Calls `f(start, end)` for every free range, ascending.
    pub fn for_each_free_range(&self, mut f: impl FnMut(u64, u64)) {
        for (start, end) in self.free_ranges() {
            f(start, end);
        }
    }

    /// Early allocation of `size` bytes aligned to `align` (a power of two),
    /// taken from the top of the highest free range that fits, as Linux's
    /// default top-down `memblock_phys_alloc`. The block is recorded as
    /// reserved. `None` if nothing fits (or `size` is 0, or `align` is not a
    /// power of two, or the reserved list is full).
    pub fn phys_alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        self.phys_alloc_range(size, align, 0, u64::MAX)
    }

    /// As [`Self::phys_alloc`], restricted to `[start, end)`
    /// (`memblock_phys_alloc_range`), e.g. to stay inside what is mapped.
    pub fn phys_alloc_range(&mut self, size: u64, align: u64, start: u64, end: u64) -> Option<u64> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let mut found = None;
        for (s, e) in self.free_ranges() {
            let (s, e) = (max(s, start), min(e, end));
            if e <= s || e - s < size {
                continue;
            }
            let cand = (e - size) & !(align - 1);
            // Ranges ascend, so a later fit is always a higher one.
            if cand >= s {
                found = Some(cand);
            }
        }
        let base = found?;
        self.reserve(base, size).ok()?;
        Some(base)
    }

    /// Bytes of RAM.
    pub fn total_memory(&self) -> u64 {
        self.memory.total()
    }

    /// Bytes of all reservations, inside RAM or not (Linux's
    /// `reserved.total_size`).
    pub fn total_reserved(&self) -> u64 {
        self.reserved.total()
    }

    /// Reserved bytes that lie inside RAM: what the page allocator loses.
    pub fn total_reserved_in_memory(&self) -> u64 {
        let free: u64 = self.free_ranges().map(|(s, e)| e - s).sum();
        self.total_memory() - free
    }

    /// Lowest RAM address (`memblock_start_of_DRAM`).
    pub fn start_of_dram(&self) -> Option<u64> {
        self.memory().first().map(|r| r.base)
    }

    /// End of the highest RAM region, exclusive (`memblock_end_of_DRAM`).
    pub fn end_of_dram(&self) -> Option<u64> {
        self.memory().last().map(|r| r.end())
    }

    /// Is `addr` RAM (`memblock_is_memory`)?
    pub fn is_memory(&self, addr: u64) -> bool {
        self.memory.contains(addr)
    }

    /// Is `addr` reserved (`memblock_is_reserved`)?
    pub fn is_reserved(&self, addr: u64) -> bool {
        self.reserved.contains(addr)
    }

    /// Does `[base, base + size)` touch RAM anywhere? (`ioremap` refuses
    /// such ranges.)
    pub fn intersects_memory(&self, base: u64, size: u64) -> bool {
        let end = base.saturating_add(size);
        let i = self.memory().partition_point(|r| r.end() <= base);
        size != 0 && i < self.memory.cnt && self.memory()[i].base < end
    }
}

/// The whole pages of a RAM bank, as Linux's early_init_dt_add_memory_arch
/// trims it before memblock_add: start rounded up, end rounded down to
/// `page_size` (a power of two). `None` if no whole page is left.
pub fn page_trim(base: u64, size: u64, page_size: u64) -> Option<Region> {
    let mask = page_size - 1;
    let start = base.checked_add(mask)? & !mask;
    let end = base.saturating_add(size) & !mask;
    (end > start).then(|| Region::new(start, end - start))
}

/// The ranges the page allocator's zones should span: memblock's merged
/// view of RAM, split where the device tree's banks change NUMA node.
/// `banks` are the DT banks (any order, possibly overlapping); a stretch of
/// RAM takes the node of the first bank (in base order) that covers it.
///
/// At most `max_zones` ranges come back: beyond that, neighbours on the same
/// node are joined across their hole, smallest hole first, as Linux's zones
/// span holes anyway (the hole's pages are never freed to the allocator,
/// because they are in no memblock free range).
pub fn zone_ranges(memory: &[Region], banks: &[MemBank], max_zones: usize) -> alloc::vec::Vec<MemBank> {
    let mut sorted: alloc::vec::Vec<&MemBank> = banks.iter().collect();
    sorted.sort_by_key(|b| b.region.base);
    let mut out: alloc::vec::Vec<MemBank> = alloc::vec::Vec::new();
    for r in memory {
        let mut cursor = r.base;
        while cursor < r.end() {
            // The first bank covering `cursor`, else the next one to start.
            let cover = sorted
                .iter()
                .find(|b| b.region.base <= cursor && cursor < b.region.end());
            let (node, end) = match cover {
                Some(b) => (b.numa_node, min(b.region.end(), r.end())),
                None => {
                    let next = sorted
                        .iter()
                        .map(|b| b.region.base)
                        .filter(|&base| base > cursor)
                        .min()
                        .unwrap_or(r.end());
                    (None, min(next, r.end()))
                }
            };
            match out.last_mut() {
                Some(last) if last.numa_node == node && last.region.end() == cursor => {
                    last.region.size += end - cursor;
                }
                _ => out.push(MemBank {
                    region: Region::new(cursor, end - cursor),
                    numa_node: node,
                }),
            }
            cursor = end;
        }
    }
    while out.len() > max_zones {
        let join = (1..out.len())
            .filter(|&i| out[i - 1].numa_node == out[i].numa_node)
            .min_by_key(|&i| out[i].region.base - out[i - 1].region.end());
        let Some(i) = join else { break };
        out[i - 1].region.size = out[i].region.end() - out[i - 1].region.base;
        out.remove(i);
    }
    out
}

/// Iterator behind [`Memblock::free_ranges`]: one merge-walk over the two
/// sorted lists, no allocation.
pub struct FreeRanges<'a> {
    memory: &'a [Region],
    reserved: &'a [Region],
    mi: usize,
    ri: usize,
    /// Everything below this address has been emitted or is reserved.
    cursor: u64,
}

impl Iterator for FreeRanges<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        while let Some(m) = self.memory.get(self.mi) {
            let start = max(self.cursor, m.base);
            let end = m.end();
            if start >= end {
                self.mi += 1;
                continue;
            }
            // `start` only grows, so reservations behind it are done for good.
            while self.reserved.get(self.ri).is_some_and(|r| r.end() <= start) {
                self.ri += 1;
            }
            match self.reserved.get(self.ri) {
                Some(r) if r.base < end => {
                    self.cursor = r.end();
                    if r.base > start {
                        return Some((start, r.base));
                    }
                }
                _ => {
                    self.cursor = end;
                    self.mi += 1;
                    return Some((start, end));
                }
            }
        }
        None
    }
}

/// Linux's `__memblock_dump_all` format (memblock=debug); `<TAB>` is a tab:
///
/// ```text
/// MEMBLOCK configuration:
///  memory size = 0x0000000040000000 reserved size = 0x0000000000012000
///  memory.cnt  = 0x1
///  memory[0x0]<TAB>[0x0000000040000000-0x000000007fffffff], 0x0000000040000000 bytes flags: 0x0
///  ...
/// ```
impl fmt::Display for Memblock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "MEMBLOCK configuration:")?;
        writeln!(
            f,
            " memory size = {:#018x} reserved size = {:#018x}",
            self.total_memory(),
            self.total_reserved()
        )?;
        for list in [&self.memory, &self.reserved] {
            let name = list.kind.name();
            writeln!(f, " {}.cnt  = {:#x}", name, list.cnt)?;
            for (i, r) in list.as_slice().iter().enumerate() {
                writeln!(f, " {}[{:#x}]\t{}, {:#018x} bytes flags: 0x0", name, i, r, r.size)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Memblock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memblock")
            .field("memory", &self.memory())
            .field("reserved", &self.reserved())
            .field("nomap", &self.nomap())
            .finish()
    }
}

#[cfg(test)]
mod tests;
