// SPDX-License-Identifier: GPL-2.0-only
//! xorshift64* (Marsaglia's xorshift with Vigna's multiplier): the one small
//! deterministic PRNG shared by the host property tests, the in-kernel tests
//! and the benchmarks. Deterministic on purpose: a failing random sequence
//! repeats from its seed. Not for anything that needs unpredictability.

/// The generator's state; it must not be zero (zero is xorshift's fixed
/// point), which [`XorShift64Star::new`] guarantees.
#[derive(Clone, Debug)]
pub struct XorShift64Star(pub u64);

/// What [`XorShift64Star::new`] uses for a zero seed (the golden ratio).
pub const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl XorShift64Star {
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 { DEFAULT_SEED } else { seed })
    }

    #[inline]
    #[allow(clippy::should_implement_trait)] // an endless stream, not an Iterator
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }

    #[inline]
    pub fn next_u8(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }

    /// Uniform enough in [0, n) for tests (modulo bias is negligible for the
    /// small n used here). `n` must not be 0.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    #[inline]
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests;
