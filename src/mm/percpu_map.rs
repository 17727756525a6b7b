// SPDX-License-Identifier: GPL-2.0-only
//! A per-CPU chunk's area map (Linux: mm/percpu.c's `alloc_map` and
//! `bound_map` bitmaps, in units of PCPU_MIN_ALLOC_SIZE bytes).
//!
//! Bit i of `alloc_map` is set when unit i (4 bytes) is allocated. Bit i of
//! `bound_map` is set at the start of each allocation and just past its
//! end (and may stay set inside free runs), so `free` finds an allocation's length from its offset alone, as
//! `pcpu_free_area` does. Allocation is first fit from `first_free`, the
//! lowest aligned start with enough free units after it.
//!
//! Linux keeps per-page block hints so that a search rarely scans the whole
//! map. This map keeps the chunk-wide ones only: `first_free` and the
//! largest free run (`contig_hint`), exact at all times, which is what the
//! chunk slots are sorted by. A unit is 32 KiB here, so a full rescan of the
//! map is 128 words; it is done only when an allocation cuts into the
//! largest run.

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

/// The area map of one chunk; offsets and lengths are in map bits.
pub struct PcpuAreaMap {
    alloc_map: Vec<u64>,
    /// `nbits + 1` bits: the end of an allocation ending at the map's end.
    bound_map: Vec<u64>,
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

/// One past the last set bit below `before`, or 0 if none.
fn find_prev_one_end(map: &[u64], before: usize) -> usize {
    if before == 0 {
        return 0;
    }
    let mut w = (before - 1) / BITS;
    let hi = before - w * BITS;
    let mut word = map[w] & word_mask(0, hi);
    loop {
        if word != 0 {
            return w * BITS + (BITS - word.leading_zeros() as usize);
        }
        if w == 0 {
            return 0;
        }
        w -= 1;
        word = map[w];
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
        Some(PcpuAreaMap {
            alloc_map: zeroed(nbits.div_ceil(BITS))?,
            bound_map: zeroed((nbits + 1).div_ceil(BITS))?,
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

    /// Linux's pcpu_alloc_area: the lowest start aligned to `align_bits`
    /// (a power of two) with `bits` free units, now allocated.
    pub fn alloc(&mut self, bits: usize, align_bits: usize) -> Option<usize> {
        debug_assert!(bits > 0 && align_bits.is_power_of_two());
        if bits > self.contig_bits {
            return None;
        }
        let mut pos = self.first_free;
        let start = loop {
            let run = find_next(&self.alloc_map, self.nbits, pos, false);
            if run >= self.nbits {
                return None;
            }
            let end = find_next(&self.alloc_map, self.nbits, run, true);
            let aligned = run.next_multiple_of(align_bits);
            if aligned + bits <= end {
                break aligned;
            }
            pos = end;
        };
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
        // Only a cut into the largest run can lower the largest run.
        if start < self.contig_start + self.contig_bits && end > self.contig_start {
            self.rescan_contig();
        }
        Some(start)
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
        // The freed units join their free neighbours into one run.
        let run_start = find_prev_one_end(&self.alloc_map, off);
        let run_end = find_next(&self.alloc_map, self.nbits, end, true);
        if run_end - run_start > self.contig_bits {
            self.contig_start = run_start;
            self.contig_bits = run_end - run_start;
        }
        Ok(bits)
    }

    /// Recompute the largest free run from scratch (lowest one on ties).
    fn rescan_contig(&mut self) {
        let (mut best_start, mut best) = (0, 0);
        let mut pos = self.first_free;
        while pos < self.nbits {
            let run = find_next(&self.alloc_map, self.nbits, pos, false);
            if run >= self.nbits {
                break;
            }
            let end = find_next(&self.alloc_map, self.nbits, run, true);
            if end - run > best {
                best = end - run;
                best_start = run;
            }
            pos = end;
        }
        self.contig_start = best_start;
        self.contig_bits = best;
    }

    /// Is unit `bit` allocated? (tests and the invariant check)
    pub fn is_allocated(&self, bit: usize) -> bool {
        test_bit(&self.alloc_map, bit)
    }

    /// Check the hints against the bitmaps: the free count, the first free
    /// unit and the largest run.
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
