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
pub type Region = crate::drivers::of::fdt::MemRegion;

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
pub fn zone_ranges(
    memory: &[Region],
    banks: &[crate::drivers::of::fdt::MemBank],
    max_zones: usize,
) -> alloc::vec::Vec<crate::drivers::of::fdt::MemBank> {
    use crate::drivers::of::fdt::MemBank;
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
mod tests {
    //! Exact cases for the tricky overlaps, then a per-page bitmap model
    //! checked against many random maps.

    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    const K: u64 = 0x1000;

    fn ranges(m: &Memblock) -> Vec<(u64, u64)> {
        m.free_ranges().collect()
    }

    fn pairs(rs: &[Region]) -> Vec<(u64, u64)> {
        rs.iter().map(|r| (r.base, r.end())).collect()
    }

    #[test]
    fn add_sorts_and_merges() {
        let mut m = Memblock::new();
        m.add(0x8000_0000, 0x1000_0000).unwrap();
        m.add(0x4000_0000, 0x1000_0000).unwrap();
        m.add(0x6000_0000, 0x1000_0000).unwrap();
        assert_eq!(
            pairs(m.memory()),
            [
                (0x4000_0000, 0x5000_0000),
                (0x6000_0000, 0x7000_0000),
                (0x8000_0000, 0x9000_0000)
            ]
        );
        // Touching on both sides bridges three regions into one.
        m.add(0x5000_0000, 0x1000_0000).unwrap();
        m.add(0x7000_0000, 0x1000_0000).unwrap();
        assert_eq!(pairs(m.memory()), [(0x4000_0000, 0x9000_0000)]);
        // Contained and overlapping adds change nothing / extend.
        m.add(0x4100_0000, 0x100).unwrap();
        m.add(0x8800_0000, 0x1000_0000).unwrap();
        assert_eq!(pairs(m.memory()), [(0x4000_0000, 0x9800_0000)]);
        assert_eq!(m.total_memory(), 0x5800_0000);
        assert_eq!(m.start_of_dram(), Some(0x4000_0000));
        assert_eq!(m.end_of_dram(), Some(0x9800_0000));
    }

    #[test]
    fn reservations_subtracted_from_unsorted_banks() {
        let mut m = Memblock::new();
        // Banks out of order, with a hole between 0x50.. and 0x60...
        m.add(0x6000_0000, 0x1000_0000).unwrap();
        m.add(0x4000_0000, 0x1000_0000).unwrap();
        m.add(0x8000_0000, 0x1000_0000).unwrap();
        // Overlapping each other inside the first bank.
        m.reserve(0x4000_0000, 0x10_0000).unwrap();
        m.reserve(0x4008_0000, 0x10_0000).unwrap();
        // Straddling the end of bank 0 into the hole and the start of bank 1.
        m.reserve(0x4fff_0000, 0x1001_0000 + 0x2000).unwrap();
        // Covering a whole bank exactly.
        m.reserve(0x8000_0000, 0x1000_0000).unwrap();
        // Entirely outside RAM.
        m.reserve(0x1000, 0x1000).unwrap();
        m.reserve(0x1_0000_0000, 0x1000).unwrap();
        assert_eq!(
            pairs(m.reserved()),
            [
                (0x1000, 0x2000),
                (0x4000_0000, 0x4018_0000),
                (0x4fff_0000, 0x6000_2000),
                (0x8000_0000, 0x9000_0000),
                (0x1_0000_0000, 0x1_0000_1000)
            ]
        );
        assert_eq!(ranges(&m), [(0x4018_0000, 0x4fff_0000), (0x6000_2000, 0x7000_0000)]);
        let mut seen = Vec::new();
        m.for_each_free_range(|s, e| seen.push((s, e)));
        assert_eq!(seen, ranges(&m));
        assert_eq!(
            m.total_reserved_in_memory(),
            0x18_0000 + 0x1_0000 + 0x2000 + 0x1000_0000
        );
        assert_eq!(
            m.total_reserved(),
            0x1000 + 0x18_0000 + 0x1001_2000 + 0x1000_0000 + 0x1000
        );
        assert!(m.is_reserved(0x4017_ffff) && !m.is_reserved(0x4018_0000));
        assert!(m.is_memory(0x6000_0000) && !m.is_memory(0x5000_0000) && !m.is_memory(0x9000_0000));
        assert!(m.intersects_memory(0x4fff_f000, 0x2000) && !m.intersects_memory(0x5000_0000, 0x1000_0000));
        assert!(!m.intersects_memory(0x900_0000, 0x1000) && !m.intersects_memory(0x4000_0000, 0));
    }

    #[test]
    fn reservation_spanning_several_banks_and_holes() {
        let mut m = Memblock::new();
        for i in 0..4 {
            m.add(i * 0x10 * K, 4 * K).unwrap();
        }
        m.reserve(2 * K, 0x21 * K).unwrap();
        assert_eq!(ranges(&m), [(0, 2 * K), (0x23 * K, 0x24 * K), (0x30 * K, 0x34 * K)]);
        let mut none = Memblock::new();
        none.add(0, 4 * K).unwrap();
        none.reserve(0, 4 * K).unwrap();
        assert_eq!(ranges(&none), []);
        assert_eq!(none.total_reserved_in_memory(), 4 * K);
    }

    #[test]
    fn phys_alloc_is_top_down_and_aligned() {
        let mut m = Memblock::new();
        m.add(0x4000_0000, 0x100_0000).unwrap();
        m.add(0x5000_0000, 0x10_0000).unwrap();
        m.reserve(0x500f_f000, 0x1000).unwrap();
        // Highest free range is [0x5000_0000, 0x500f_f000).
        assert_eq!(m.phys_alloc(K, K), Some(0x500f_e000));
        assert_eq!(m.phys_alloc(K, K), Some(0x500f_d000));
        // 64 KiB alignment rounds down within the range.
        assert_eq!(m.phys_alloc(0x100, 0x1_0000), Some(0x500f_0000));
        assert!(m.is_reserved(0x500f_00ff) && !m.is_reserved(0x500f_0100));
        // Too big for the high bank: falls to the lower one, at its top.
        assert_eq!(m.phys_alloc(0x20_0000, 0x20_0000), Some(0x40e0_0000));
        // Range-limited allocation stays below the limit.
        assert_eq!(m.phys_alloc_range(K, K, 0, 0x4080_0000), Some(0x407f_f000));
        assert_eq!(m.phys_alloc_range(K, K, 0x4800_0000, 0x4900_0000), None);
        // Bad arguments.
        assert_eq!(m.phys_alloc(0, K), None);
        assert_eq!(m.phys_alloc(K, 3), None);
        assert_eq!(m.phys_alloc(K, 0), None);
        // Undo one allocation.
        m.free(0x500f_e000, K).unwrap();
        assert_eq!(m.phys_alloc(K, K), Some(0x500f_e000));
    }

    #[test]
    fn phys_alloc_exhaustion() {
        let mut m = Memblock::new();
        m.add(0, 8 * K).unwrap();
        m.reserve(3 * K, K).unwrap();
        let mut got = Vec::new();
        while let Some(a) = m.phys_alloc(K, K) {
            got.push(a);
        }
        assert_eq!(got, [7 * K, 6 * K, 5 * K, 4 * K, 2 * K, K, 0]);
        assert_eq!(ranges(&m), []);
        assert_eq!(m.phys_alloc(1, 1), None);
        assert_eq!(pairs(m.reserved()), [(0, 8 * K)]);
        let mut small = Memblock::new();
        small.add(0, 3 * K).unwrap();
        assert_eq!(small.phys_alloc(4 * K, K), None);
        // [0, 12K): the top-most 16 KiB-aligned 8 KiB block is at 0 ...
        assert_eq!(small.phys_alloc(2 * K, 4 * K), Some(0));
        // ... and [8K, 12K) holds no 16 KiB-aligned page.
        assert_eq!(small.phys_alloc(K, 4 * K), None);
    }

    #[test]
    fn errors_and_limits() {
        let mut m = Memblock::new();
        let e = m.add(0x4000_0000, 0).unwrap_err();
        assert_eq!(
            e,
            MemblockError::ZeroSize {
                kind: RegionKind::Memory,
                base: 0x4000_0000
            }
        );
        assert!(e.to_string().contains("0x40000000"));
        let e = m.reserve(u64::MAX - 0xfff, 0x1000).unwrap_err();
        assert_eq!(
            e,
            MemblockError::Overflow {
                kind: RegionKind::Reserved,
                base: u64::MAX - 0xfff,
                size: 0x1000
            }
        );
        assert!(e.to_string().contains("0xfffffffffffff000") && e.to_string().contains("0x1000"));
        // The top page itself is fine: end == 2^64 - 1 is representable.
        m.add(u64::MAX - 0xfff, 0xfff).unwrap();

        let mut m = Memblock::new();
        for i in 0..MAX_REGIONS as u64 {
            m.add(i * 2 * K, K).unwrap();
        }
        let e = m.add(0x1000_0000, K).unwrap_err();
        assert!(matches!(
            e,
            MemblockError::TooManyRegions {
                kind: RegionKind::Memory,
                limit: MAX_REGIONS,
                ..
            }
        ));
        assert!(e.to_string().contains("128"), "{}", e);
        // Merging needs no new slot, so it still works when full.
        m.add(K, K).unwrap();
        assert_eq!(m.memory().len(), MAX_REGIONS - 1);
        assert_eq!(m.memory()[0], Region::new(0, 3 * K));
        // Splitting does need one.
        m.add(0x1000_0000, K).unwrap();
        let e = m.remove(0x1000, 0x800).unwrap_err();
        assert!(matches!(e, MemblockError::TooManyRegions { .. }));
    }

    #[test]
    fn remove_and_free_split_and_trim() {
        let mut m = Memblock::new();
        m.add(0, 16 * K).unwrap();
        m.add(32 * K, 16 * K).unwrap();
        m.remove(4 * K, 4 * K).unwrap(); // split
        m.remove(14 * K, 20 * K).unwrap(); // trims two regions across the hole
        assert_eq!(pairs(m.memory()), [(0, 4 * K), (8 * K, 14 * K), (34 * K, 48 * K)]);
        m.remove(100 * K, K).unwrap(); // nothing there
        m.remove(0, 100 * K).unwrap();
        assert_eq!(m.memory(), []);
    }

    #[test]
    fn dump_matches_linux_format() {
        let mut m = Memblock::new();
        m.add(0x4000_0000, 0x4000_0000).unwrap();
        m.reserve(0x4008_0000, 0x12_0000).unwrap();
        let expected = "MEMBLOCK configuration:\n \
            memory size = 0x0000000040000000 reserved size = 0x0000000000120000\n \
            memory.cnt  = 0x1\n \
            memory[0x0]\t[0x0000000040000000-0x000000007fffffff], 0x0000000040000000 bytes flags: 0x0\n \
            reserved.cnt  = 0x1\n \
            reserved[0x0]\t[0x0000000040080000-0x000000004019ffff], 0x0000000000120000 bytes flags: 0x0\n";
        assert_eq!(m.to_string(), expected);
    }

    // ------------------------------------------------------------ model

    use crate::lib::rand::XorShift64Star as XorShift;

    /// Pages in the modelled address space.
    const PAGES: usize = 512;

    /// Maximal runs of `true` as byte ranges.
    fn runs(bits: &[bool]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bits.len() {
            if bits[i] {
                let s = i;
                while i < bits.len() && bits[i] {
                    i += 1;
                }
                out.push((s as u64 * K, i as u64 * K));
            } else {
                i += 1;
            }
        }
        out
    }

    fn mark(bits: &mut [bool], base: u64, size: u64) {
        for p in base / K..(base + size) / K {
            bits[p as usize] = true;
        }
    }

    #[test]
    fn free_ranges_match_page_bitmap_model() {
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        for case in 0..3000 {
            let mut m = Memblock::new();
            let mut mem = [false; PAGES];
            let mut res = [false; PAGES];
            let random_range = |rng: &mut XorShift| {
                let base = rng.below(PAGES) as u64;
                // Mostly short ranges, sometimes long ones.
                let max_len = if rng.below(4) == 0 { PAGES as u64 } else { 24 };
                let len = 1 + rng.below(max_len as usize) as u64;
                (base * K, min(len, PAGES as u64 - base) * K)
            };
            for _ in 0..1 + rng.below(12) {
                let (b, s) = random_range(&mut rng);
                m.add(b, s).unwrap();
                mark(&mut mem, b, s);
            }
            for _ in 0..rng.below(20) {
                let (b, s) = random_range(&mut rng);
                m.reserve(b, s).unwrap();
                mark(&mut res, b, s);
            }
            let free: Vec<bool> = (0..PAGES).map(|p| mem[p] && !res[p]).collect();
            assert_eq!(pairs(m.memory()), runs(&mem), "case {}", case);
            assert_eq!(pairs(m.reserved()), runs(&res), "case {}", case);
            assert_eq!(ranges(&m), runs(&free), "case {}: {:?}", case, m);
            let in_mem = (0..PAGES).filter(|&p| mem[p] && res[p]).count() as u64 * K;
            assert_eq!(m.total_reserved_in_memory(), in_mem, "case {}", case);
            assert_eq!(m.total_memory(), mem.iter().filter(|&&b| b).count() as u64 * K);

            // A few allocations: each must be the highest aligned free fit.
            let mut free = free;
            for _ in 0..rng.below(6) {
                let pages = 1 + rng.below(8);
                let align_pages = 1usize << rng.below(4);
                let want = (0..=PAGES.saturating_sub(pages))
                    .rev()
                    .filter(|p| p % align_pages == 0)
                    .find(|&p| free[p..p + pages].iter().all(|&f| f));
                let got = m.phys_alloc(pages as u64 * K, align_pages as u64 * K);
                assert_eq!(
                    got,
                    want.map(|p| p as u64 * K),
                    "case {}: alloc {} pages align {}",
                    case,
                    pages,
                    align_pages
                );
                if let Some(p) = want {
                    free[p..p + pages].iter_mut().for_each(|f| *f = false);
                }
                assert_eq!(ranges(&m), runs(&free), "case {} after alloc", case);
            }
        }
    }

    #[test]
    fn page_trim_rounds_inward_and_drops_empty() {
        assert_eq!(
            page_trim(0x4000_0000, 0x1000_0000, K),
            Some(Region::new(0x4000_0000, 0x1000_0000))
        );
        // The unaligned bank of the corpus: start up, end down.
        assert_eq!(
            page_trim(0x4000_0800, 0x1000_0000, K),
            Some(Region::new(0x4000_1000, 0xfff_f000))
        );
        assert_eq!(
            page_trim(0x4000_0000, 0x1000_0123, K),
            Some(Region::new(0x4000_0000, 0x1000_0000))
        );
        assert_eq!(page_trim(0x4000_0001, 0xfff, K), None);
        assert_eq!(page_trim(0x4000_0001, 0x1fff, K), Some(Region::new(0x4000_1000, K)));
        assert_eq!(page_trim(0x4000_0000, 0xfff, K), None);
        assert_eq!(page_trim(u64::MAX - 5, 5, K), None);
    }

    /// Overlapping and touching banks (as two overlapping memory nodes give)
    /// end up as one memblock region and one zone range; banks on two NUMA
    /// nodes that touch stay two zone ranges.
    #[test]
    fn zone_ranges_follow_merged_memblock_and_numa() {
        use crate::drivers::of::fdt::MemBank;
        let bank = |base, size, node| MemBank {
            region: Region::new(base, size),
            numa_node: node,
        };
        let banks = [
            bank(0x5000_0000, 0x2000_0000, None),
            bank(0x4000_0000, 0x2000_0000, None),
            bank(0x7000_0000, 0x1000_0000, None),
        ];
        let mut m = Memblock::new();
        for b in &banks {
            m.add(b.region.base, b.region.size).unwrap();
        }
        assert_eq!(pairs(m.memory()), [(0x4000_0000, 0x8000_0000)]);
        assert_eq!(
            zone_ranges(m.memory(), &banks, 16),
            [bank(0x4000_0000, 0x4000_0000, None)]
        );

        let numa = [
            bank(0x8000_0000, 0x4000_0000, Some(1)),
            bank(0x4000_0000, 0x4000_0000, Some(0)),
        ];
        let mut m = Memblock::new();
        for b in &numa {
            m.add(b.region.base, b.region.size).unwrap();
        }
        assert_eq!(m.memory().len(), 1);
        assert_eq!(
            zone_ranges(m.memory(), &numa, 16),
            [
                bank(0x4000_0000, 0x4000_0000, Some(0)),
                bank(0x8000_0000, 0x4000_0000, Some(1))
            ]
        );

        // A hole between two banks stays a hole; trimmed edges are respected.
        let holes = [
            bank(0x4000_0800, 0x1000_0000, None),
            bank(0x6000_0000, 0x1000_0000, None),
        ];
        let mut m = Memblock::new();
        for b in &holes {
            let r = page_trim(b.region.base, b.region.size, K).unwrap();
            m.add(r.base, r.size).unwrap();
        }
        assert_eq!(
            zone_ranges(m.memory(), &holes, 16),
            [
                bank(0x4000_1000, 0xfff_f000, None),
                bank(0x6000_0000, 0x1000_0000, None)
            ]
        );
    }

    /// 40 banks with holes into 16 zones: the smallest holes are spanned
    /// first, nodes never mix, and every bank stays inside a zone.
    #[test]
    fn zone_ranges_span_holes_beyond_max_zones() {
        use crate::drivers::of::fdt::MemBank;
        let banks: Vec<MemBank> = (0..40u64)
            .map(|i| MemBank {
                region: Region::new(
                    0x4000_0000 + i * 0x100_0000 + if i >= 20 { 0x1000_0000 } else { 0 },
                    0xc0_0000,
                ),
                numa_node: Some((i >= 20) as u32),
            })
            .collect();
        let mut m = Memblock::new();
        for b in &banks {
            m.add(b.region.base, b.region.size).unwrap();
        }
        let z = zone_ranges(m.memory(), &banks, 16);
        assert_eq!(z.len(), 16);
        assert!(z.windows(2).all(|w| w[0].region.end() <= w[1].region.base));
        for b in &banks {
            let zone = z.iter().find(|r| r.region.contains(b.region.base)).unwrap();
            assert!(zone.region.end() >= b.region.end() && zone.numa_node == b.numa_node);
        }
        // Two nodes only: at most two zones if asked for two.
        let z = zone_ranges(m.memory(), &banks, 2);
        assert_eq!(z.len(), 2);
        assert_eq!(z[0].region, Region::new(0x4000_0000, 19 * 0x100_0000 + 0xc0_0000));
    }

    /// Linux's INIT_MEMBLOCK_REGIONS: 40 disjoint banks and 100 disjoint
    /// reservations fit (the old limit was 64).
    #[test]
    fn room_for_linux_init_memblock_regions() {
        let mut m = Memblock::new();
        for i in 0..40 {
            m.add(0x4000_0000 + i * 0x100_0000, 0x80_0000).unwrap();
        }
        for i in 0..100 {
            m.reserve(0x4000_0000 + i * 2 * K, K).unwrap();
        }
        assert_eq!((m.memory().len(), m.reserved().len()), (40, 100));
    }

    #[test]
    fn mark_nomap_reserves_and_is_queryable() {
        let mut m = Memblock::new();
        m.add(0x4000_0000, 0x4000_0000).unwrap();
        m.mark_nomap(0x4800_0000, 0x10_0000).unwrap();
        m.mark_nomap(0x4810_0000, 0x1000).unwrap(); // touching: merged
        assert_eq!(m.nomap(), &[Region::new(0x4800_0000, 0x10_1000)]);
        assert!(m.is_nomap(0x4800_0000) && m.is_nomap(0x4810_0fff));
        assert!(!m.is_nomap(0x47ff_ffff) && !m.is_nomap(0x4810_1000));
        // The page allocator's source skips it, and so does phys_alloc.
        let free: Vec<(u64, u64)> = m.free_ranges().collect();
        assert_eq!(free, vec![(0x4000_0000, 0x4800_0000), (0x4810_1000, 0x8000_0000)]);
        while let Some(a) = m.phys_alloc(0x100_0000, 0x1000) {
            assert!(a + 0x100_0000 <= 0x4800_0000 || a >= 0x4810_1000, "got {:#x}", a);
        }
        // Still RAM: NOMAP memory is not removed.
        assert!(m.is_memory(0x4800_0000));
        assert!(matches!(
            m.mark_nomap(0x1000, 0),
            Err(MemblockError::ZeroSize {
                kind: RegionKind::Nomap,
                ..
            })
        ));
    }
}
