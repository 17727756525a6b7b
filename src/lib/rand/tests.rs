// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `rand` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

use super::*;

#[test]
fn known_sequence_and_zero_seed() {
    // First outputs for seed 1, computed by hand from the recurrence.
    let mut r = XorShift64Star(1);
    let mut x: u64 = 1;
    for _ in 0..4 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        assert_eq!(r.next(), x.wrapping_mul(0x2545_f491_4f6c_dd1d));
    }
    assert_eq!(XorShift64Star::new(0).0, DEFAULT_SEED);
    let mut z = XorShift64Star::new(0);
    assert_ne!(z.next(), 0);
    assert!((0..1000).all(|_| z.below(7) < 7));
}
