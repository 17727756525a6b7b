// SPDX-License-Identifier: GPL-2.0-only
//! The ARM generic timer: the counter behind printk timestamps and every
//! measurement in the kernel (Linux's `get_cycles()` on arm64 reads it too).

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
use core::sync::atomic::{AtomicU64, Ordering};

static FREQ_HZ: AtomicU64 = AtomicU64::new(0);

/// Counter frequency in Hz (CNTFRQ_EL0, or the DT's value if it overrides).
pub fn frequency() -> u64 {
    let f = FREQ_HZ.load(Ordering::Relaxed);
    if f != 0 {
        return f;
    }
    let f = CNTFRQ_EL0.get().max(1);
    FREQ_HZ.store(f, Ordering::Relaxed);
    f
}

/// Use the DT's /timer clock-frequency instead of CNTFRQ_EL0 (firmware
/// that did not program CNTFRQ is the reason the property exists).
pub fn set_frequency(hz: u64) {
    if hz != 0 {
        FREQ_HZ.store(hz, Ordering::Relaxed);
    }
}

/// The physical counter, ordered after earlier instructions (isb), like
/// Linux's `__arch_counter_get_cntpct`.
#[inline(always)]
pub fn get_cycles() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// Nanoseconds since the counter started (QEMU starts it at machine reset).
pub fn uptime_ns() -> u64 {
    ticks_to_ns(get_cycles())
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * 1_000_000_000) / frequency() as u128) as u64
}
