// SPDX-License-Identifier: GPL-2.0-only
//! Host tests of the per-CPU area map against a plain model.
use super::*;
use crate::lib::rand::XorShift64Star;

/// The model: one bool per unit, and the allocations by start.
struct Model {
    used: Vec<bool>,
    live: std::collections::BTreeMap<usize, usize>,
}

impl Model {
    fn first_fit(&self, bits: usize, align: usize) -> Option<usize> {
        (0..self.used.len())
            .step_by(align)
            .find(|&s| s + bits <= self.used.len() && self.used[s..s + bits].iter().all(|u| !u))
    }
}

#[test]
fn first_fit_alignment_and_bounds() {
    let mut m = PcpuAreaMap::new(64);
    assert_eq!(m.alloc(3, 1), Some(0));
    assert_eq!(m.alloc(1, 8), Some(8));
    assert_eq!(m.alloc(4, 1), Some(3), "the hole before the aligned one is used");
    assert_eq!(m.alloc(60, 1), None);
    assert_eq!(m.free(8), Ok(1));
    assert_eq!(m.free(8), Err(PcpuMapError::NotAllocated { off: 8 }));
    assert_eq!(
        m.free(1),
        Err(PcpuMapError::NotAllocated { off: 1 }),
        "middle of an allocation"
    );
    assert_eq!(m.free(64), Err(PcpuMapError::OutOfRange { off: 64, nbits: 64 }));
    assert_eq!(m.free(0), Ok(3));
    assert_eq!(m.free(3), Ok(4));
    assert!(m.is_empty());
    assert_eq!(m.contig_bits(), 64);
    m.check().unwrap();
}

#[test]
fn adjacent_allocations_free_with_their_own_lengths() {
    // The bound bit past one allocation is the start bit of the next.
    let mut m = PcpuAreaMap::new(200);
    let a = m.alloc(5, 1).unwrap();
    let b = m.alloc(7, 1).unwrap();
    let c = m.alloc(200 - 12, 1).unwrap();
    assert_eq!((a, b, c), (0, 5, 12));
    assert_eq!(m.contig_bits(), 0);
    assert_eq!(m.free(b), Ok(7));
    assert_eq!(m.contig_bits(), 7);
    assert_eq!(m.alloc(7, 1), Some(5));
    assert_eq!(m.free(c), Ok(188));
    assert_eq!(m.free(a), Ok(5));
    assert_eq!(m.free(b), Ok(7));
    m.check().unwrap();
}

#[test]
fn errors_say_bytes() {
    let s = alloc::format!("{}", PcpuMapError::NotAllocated { off: 10 });
    assert!(s.contains("offset 40 bytes"), "{}", s);
    let s = alloc::format!("{}", PcpuMapError::OutOfRange { off: 9000, nbits: 8192 });
    assert!(s.contains("36000") && s.contains("32768"), "{}", s);
}

#[test]
fn property_against_model() {
    // pcpu_alloc_test's shape: sizes up to a quarter page, alignments up to
    // 2 KiB, in 4-byte units, over a 32 KiB unit; frees at random.
    property(
        32 * 1024 / PCPU_MIN_ALLOC_SIZE,
        1024 / PCPU_MIN_ALLOC_SIZE,
        10,
        0x5eed_1234,
    );
}

#[test]
fn property_against_model_across_blocks() {
    // Requests up to three blocks long, and a map whose last block is
    // partial: runs that cross block edges, whole free blocks.
    property(
        5 * PCPU_BITMAP_BLOCK_BITS + 300,
        3 * PCPU_BITMAP_BLOCK_BITS,
        12,
        0x000b_10c5,
    );
}

fn property(nbits: usize, max_bits: usize, max_align_shift: u64, seed: u64) {
    let mut rng = XorShift64Star::new(seed);
    let mut m = PcpuAreaMap::new(nbits);
    let mut model = Model {
        used: vec![false; nbits],
        live: Default::default(),
    };
    for step in 0..20_000 {
        if !rng.next().is_multiple_of(3) || model.live.is_empty() {
            let bits = (rng.next() as usize % max_bits) + 1;
            let align = 1usize << (rng.next() % max_align_shift);
            let want = model.first_fit(bits, align);
            let got = m.alloc(bits, align);
            assert_eq!(got, want, "step {}: alloc({}, align {})", step, bits, align);
            if let Some(s) = got {
                model.used[s..s + bits].iter_mut().for_each(|u| *u = true);
                model.live.insert(s, bits);
            }
        } else {
            let k = rng.next() as usize % model.live.len();
            let (&s, &bits) = model.live.iter().nth(k).unwrap();
            assert_eq!(m.free(s), Ok(bits), "step {}: free({})", step, s);
            model.used[s..s + bits].iter_mut().for_each(|u| *u = false);
            model.live.remove(&s);
        }
        assert_eq!(m.nr_alloc(), model.live.len());
        if step % 97 == 0 {
            m.check().unwrap_or_else(|e| panic!("step {}: {}", step, e));
            for i in 0..nbits {
                assert_eq!(m.is_allocated(i), model.used[i], "step {}: unit {}", step, i);
            }
        }
    }
    m.check().unwrap();
}

#[test]
fn contig_hint_check_counts_alignment_from_the_runs_start() {
    let mut m = PcpuAreaMap::new(64);
    assert_eq!(m.alloc(1, 1), Some(0)); // largest run is now [1, 64)
    assert!(m.fits_contig_hint(63, 1));
    assert!(!m.fits_contig_hint(64, 1));
    assert!(m.fits_contig_hint(32, 32)); // aligned start 32, 32 units left
    assert!(!m.fits_contig_hint(33, 32));
}
