// SPDX-License-Identifier: GPL-2.0-only
//! A per-CPU chunk's area map (Linux: mm/percpu.c's `alloc_map` and
//! `bound_map` bitmaps, in units of PCPU_MIN_ALLOC_SIZE bytes, with
//! `pcpu_block_md` hints per block and for the chunk).
//!
//! Bit i of `alloc_map` is set when unit i (4 bytes) is allocated. Bit i of
//! `bound_map` is set at the start of each allocation and just past its
//! end (and may stay set inside free runs), so `free` finds an
//! allocation's length from its offset alone, as `pcpu_free_area` does.
//!
//! Allocation is first fit: the lowest start aligned as asked with enough
//! free units after it. The map is cut into blocks of a page's worth of
//! bits (Linux: PCPU_BITMAP_BLOCK_BITS); each block keeps its largest free
//! run and the free runs touching its edges, so a search skips a block in
//! one comparison when no run starting there can hold the request, and
//! only the blocks an allocation or free touched are rescanned. The chunk's
//! largest run (`contig_hint`, what the chunk slots sort by) is recomputed
//! from the block hints alone.

use alloc::vec::Vec;
use core::fmt;

/// Bytes per map bit (Linux: PCPU_MIN_ALLOC_SIZE).
pub const PCPU_MIN_ALLOC_SIZE: usize = 4;

const BITS: usize = u64::BITS as usize;

/// A misuse of the map, with the values that show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpuMapError {
    /// `off` is past the end of the map.
    OutOfRange { off: usize, nbits: usize },
    /// No allocation starts at `off` (a double free, or a pointer into the
    /// middle of one).
    NotAllocated { off: usize },
}

impl fmt::Display for PcpuMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PcpuMapError::OutOfRange { off, nbits } => {
                write!(
                    f,
                    "offset {} bytes is past the chunk's {} bytes",
                    off * PCPU_MIN_ALLOC_SIZE,
                    nbits * PCPU_MIN_ALLOC_SIZE
                )
            }
            PcpuMapError::NotAllocated { off } => {
                write!(
                    f,
                    "no allocation starts at offset {} bytes (double free?)",
                    off * PCPU_MIN_ALLOC_SIZE
                )
            }
        }
    }
}

/// Map bits per block (Linux: PCPU_BITMAP_BLOCK_BITS, a page's worth).
pub const PCPU_BITMAP_BLOCK_BITS: usize = 4096 / PCPU_MIN_ALLOC_SIZE;

/// One block's hints (Linux: struct pcpu_block_md), in bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct BlockMd {
    /// The largest free run inside the block, and where it starts.
    contig: usize,
    contig_start: usize,
    /// Free bits at the block's start and at its end.
    left_free: usize,
    right_free: usize,
}

/// The area map of one chunk; offsets and lengths are in map bits.
pub struct PcpuAreaMap {
    alloc_map: Vec<u64>,
    /// `nbits + 1` bits: the end of an allocation ending at the map's end.
    bound_map: Vec<u64>,
    md_blocks: Vec<BlockMd>,
    nbits: usize,
    first_free: usize,
    free_bits: usize,
    contig_start: usize,
    contig_bits: usize,
    nr_alloc: usize,
}

fn test_bit(map: &[u64], i: usize) -> bool {
    map[i / BITS] & (1 << (i % BITS)) != 0
}

fn set_bit(map: &mut [u64], i: usize) {
    map[i / BITS] |= 1 << (i % BITS);
}

/// Mask of bits [lo, hi) within one word (0 <= lo < hi <= 64).
fn word_mask(lo: usize, hi: usize) -> u64 {
    let upper = if hi == BITS { !0 } else { (1u64 << hi) - 1 };
    upper & !((1u64 << lo) - 1)
}

/// Set (`on`) or clear bits [start, end).
fn assign_range(map: &mut [u64], start: usize, end: usize, on: bool) {
    let mut i = start;
    while i < end {
        let w = i / BITS;
        let hi = (end - w * BITS).min(BITS);
        let m = word_mask(i % BITS, hi);
        if on {
            map[w] |= m;
        } else {
            map[w] &= !m;
        }
        i = w * BITS + hi;
    }
}

/// First bit at or after `from` whose value is `on`, or `nbits`.
fn find_next(map: &[u64], nbits: usize, from: usize, on: bool) -> usize {
    if from >= nbits {
        return nbits;
    }
    let mut w = from / BITS;
    let flip = if on { 0 } else { !0 };
    let mut word = (map[w] ^ flip) & (!0u64 << (from % BITS));
    loop {
        if word != 0 {
            return (w * BITS + word.trailing_zeros() as usize).min(nbits);
        }
        w += 1;
        if w * BITS >= nbits {
            return nbits;
        }
        word = map[w] ^ flip;
    }
}

impl PcpuAreaMap {
    /// An empty map of `nbits` units.
    pub fn new(nbits: usize) -> Self {
        Self::try_new(nbits).expect("percpu map: out of memory")
    }

    /// An empty map of `nbits` units, or None when the bitmaps cannot be
    /// allocated (chunk creation fails cleanly then).
    pub fn try_new(nbits: usize) -> Option<Self> {
        fn zeroed(words: usize) -> Option<Vec<u64>> {
            let mut v = Vec::new();
            v.try_reserve_exact(words).ok()?;
            v.resize(words, 0);
            Some(v)
        }
        let nblocks = nbits.div_ceil(PCPU_BITMAP_BLOCK_BITS);
        let mut md_blocks = Vec::new();
        md_blocks.try_reserve_exact(nblocks).ok()?;
        md_blocks.extend((0..nblocks).map(|b| {
            let len = (nbits - b * PCPU_BITMAP_BLOCK_BITS).min(PCPU_BITMAP_BLOCK_BITS);
            BlockMd {
                contig: len,
                contig_start: b * PCPU_BITMAP_BLOCK_BITS,
                left_free: len,
                right_free: len,
            }
        }));
        Some(PcpuAreaMap {
            alloc_map: zeroed(nbits.div_ceil(BITS))?,
            bound_map: zeroed((nbits + 1).div_ceil(BITS))?,
            md_blocks,
            nbits,
            first_free: 0,
            free_bits: nbits,
            contig_start: 0,
            contig_bits: nbits,
            nr_alloc: 0,
        })
    }

    pub fn nbits(&self) -> usize {
        self.nbits
    }

    /// Free units in the map (Linux: chunk->free_bytes / PCPU_MIN_ALLOC_SIZE).
    pub fn free_bits(&self) -> usize {
        self.free_bits
    }

    /// The largest free run (Linux: chunk_md.contig_hint).
    pub fn contig_bits(&self) -> usize {
        self.contig_bits
    }

    /// Live allocations (Linux's percpu stats: nr_alloc).
    pub fn nr_alloc(&self) -> usize {
        self.nr_alloc
    }

    /// Is every unit free?
    pub fn is_empty(&self) -> bool {
        self.free_bits == self.nbits
    }

    /// Linux's pcpu_find_block_fit's first check: can the largest free run
    /// hold `bits` units aligned to `align_bits`, counting from its start?
    /// A chunk that fails it is skipped without a scan, even if a smaller
    /// run elsewhere would fit (Linux's trade: a fragmented chunk is passed
    /// over rather than searched on every allocation).
    pub fn fits_contig_hint(&self, bits: usize, align_bits: usize) -> bool {
        let pad = self.contig_start.next_multiple_of(align_bits) - self.contig_start;
        pad + bits <= self.contig_bits
    }

    /// Bits [start, end) of block `b`.
    fn block_range(&self, b: usize) -> (usize, usize) {
        let start = b * PCPU_BITMAP_BLOCK_BITS;
        (start, (start + PCPU_BITMAP_BLOCK_BITS).min(self.nbits))
    }

    /// Free bits from `from` on, counting whole free blocks and the
    /// next block's left edge (how far a run that reaches the end of the
    /// block before `from` goes on).
    fn free_run_from_block(&self, mut b: usize) -> usize {
        let mut n = 0;
        while b < self.md_blocks.len() {
            let (s, e) = self.block_range(b);
            let md = &self.md_blocks[b];
            n += md.left_free;
            if md.left_free < e - s {
                break;
            }
            b += 1;
        }
        n
    }

    /// Linux's pcpu_alloc_area: the lowest start aligned to `align_bits`
    /// (a power of two) with `bits` free units, now allocated.
    pub fn alloc(&mut self, bits: usize, align_bits: usize) -> Option<usize> {
        debug_assert!(bits > 0 && align_bits.is_power_of_two());
        if bits > self.contig_bits {
            return None;
        }
        let start = self.find_fit(bits, align_bits)?;
        let end = start + bits;
        assign_range(&mut self.alloc_map, start, end, true);
        set_bit(&mut self.bound_map, start);
        assign_range(&mut self.bound_map, start + 1, end, false);
        set_bit(&mut self.bound_map, end);
        self.free_bits -= bits;
        self.nr_alloc += 1;
        if start == self.first_free {
            self.first_free = find_next(&self.alloc_map, self.nbits, end, false);
        }
        self.update_hints(start, end, true);
        Some(start)
    }

    /// The first fit, block by block from the first free bit's block.
    fn find_fit(&self, bits: usize, align_bits: usize) -> Option<usize> {
        let mut b = self.first_free / PCPU_BITMAP_BLOCK_BITS;
        while b < self.md_blocks.len() {
            let md = self.md_blocks[b];
            let (bs, be) = self.block_range(b);
            // A run that reaches the block's end continues into the next.
            let tail = if md.right_free > 0 {
                md.right_free + self.free_run_from_block(b + 1)
            } else {
                0
            };
            if md.contig >= bits || tail >= bits {
                let mut pos = bs.max(self.first_free);
                while pos < be {
                    let run = find_next(&self.alloc_map, be, pos, false);
                    if run >= be {
                        break;
                    }
                    let mut end = find_next(&self.alloc_map, be, run, true);
                    if end == be {
                        end = be + self.free_run_from_block(b + 1);
                    }
                    let aligned = run.next_multiple_of(align_bits);
                    if aligned + bits <= end {
                        return Some(aligned);
                    }
                    pos = end;
                }
            }
            b += 1;
        }
        None
    }

    /// Linux's pcpu_free_area: free the allocation starting at `off` and
    /// return its length in units.
    pub fn free(&mut self, off: usize) -> Result<usize, PcpuMapError> {
        if off >= self.nbits {
            return Err(PcpuMapError::OutOfRange { off, nbits: self.nbits });
        }
        if !test_bit(&self.bound_map, off) || !test_bit(&self.alloc_map, off) {
            return Err(PcpuMapError::NotAllocated { off });
        }
        let end = find_next(&self.bound_map, self.nbits + 1, off + 1, true);
        let bits = end - off;
        // The start bit stays set, as in Linux: it may also be the end
        // bound of the allocation before, and in a free run it is inert.
        assign_range(&mut self.alloc_map, off, end, false);
        self.free_bits += bits;
        self.nr_alloc -= 1;
        self.first_free = self.first_free.min(off);
        self.update_hints(off, end, false);
        Ok(bits)
    }

    /// Rescan the blocks [start, end) touches, then the chunk's largest
    /// run from the block hints (Linux: pcpu_block_update_hint_alloc/free,
    /// pcpu_chunk_refresh_hint).
    fn update_hints(&mut self, start: usize, end: usize, allocated: bool) {
        for b in start / PCPU_BITMAP_BLOCK_BITS..=(end - 1) / PCPU_BITMAP_BLOCK_BITS {
            self.md_blocks[b] = self.scan_block(b);
        }
        // An allocation outside the largest run leaves it the largest.
        if allocated && (end <= self.contig_start || start >= self.contig_start + self.contig_bits) {
            return;
        }
        let (mut best, mut best_start) = (0, 0);
        let mut run = 0; // a run crossing into the current block
        let mut run_start = 0;
        for b in 0..self.md_blocks.len() {
            let (bs, be) = self.block_range(b);
            let md = self.md_blocks[b];
            if md.left_free == be - bs {
                if run == 0 {
                    run_start = bs;
                }
                run += be - bs;
                continue;
            }
            if run + md.left_free > best {
                (best, best_start) = (run + md.left_free, if run > 0 { run_start } else { bs });
            }
            if md.contig > best {
                (best, best_start) = (md.contig, md.contig_start);
            }
            run = md.right_free;
            run_start = be - md.right_free;
        }
        if run > best {
            (best, best_start) = (run, run_start);
        }
        self.contig_bits = best;
        self.contig_start = best_start;
    }

    /// Block `b`'s hints, from its bits.
    fn scan_block(&self, b: usize) -> BlockMd {
        let (bs, be) = self.block_range(b);
        let mut md = BlockMd::default();
        let mut pos = bs;
        while pos < be {
            let run = find_next(&self.alloc_map, be, pos, false);
            if run >= be {
                break;
            }
            let end = find_next(&self.alloc_map, be, run, true);
            if run == bs {
                md.left_free = end - run;
            }
            if end == be {
                md.right_free = end - run;
            }
            if end - run > md.contig {
                md.contig = end - run;
                md.contig_start = run;
            }
            pos = end;
        }
        md
    }

    /// Is unit `bit` allocated? (tests and the invariant check)
    pub fn is_allocated(&self, bit: usize) -> bool {
        test_bit(&self.alloc_map, bit)
    }

    /// Check the hints against the bitmaps: each block's, the free count,
    /// the first free unit and the largest run.
    pub fn check(&self) -> Result<(), alloc::string::String> {
        let free = (0..self.nbits).filter(|&i| !test_bit(&self.alloc_map, i)).count();
        let first = (0..self.nbits)
            .find(|&i| !test_bit(&self.alloc_map, i))
            .unwrap_or(self.nbits);
        let (mut best, mut run) = (0, 0);
        for i in 0..self.nbits {
            run = if test_bit(&self.alloc_map, i) { 0 } else { run + 1 };
            best = best.max(run);
        }
        for b in 0..self.md_blocks.len() {
            if self.md_blocks[b] != self.scan_block(b) {
                return Err(alloc::format!(
                    "percpu map block {} hints stale: {:?}, bits say {:?}",
                    b,
                    self.md_blocks[b],
                    self.scan_block(b)
                ));
            }
        }
        if free != self.free_bits || first != self.first_free || best != self.contig_bits {
            return Err(alloc::format!(
                "percpu map hints wrong: free {} (counted {}), first_free {} (found {}), contig {} (found {})",
                self.free_bits,
                free,
                self.first_free,
                first,
                self.contig_bits,
                best
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
