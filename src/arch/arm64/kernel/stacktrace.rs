// SPDX-License-Identifier: GPL-2.0-only
//! The kernel stack's bounds and a frame-pointer backtrace (Linux:
//! arch/arm64/kernel/stacktrace.c). Frame pointers are always on
//! (.cargo/config.toml), so every frame record is {previous fp, lr}.

use core::fmt::{self, Write};

unsafe extern "C" {
    static init_stack: u8;
    static init_stack_top: u8;
}

/// Bounds of the boot stack (the only stack), for backtraces.
pub fn stack_bounds() -> (u64, u64) {
    // Only the symbols' addresses are taken (`&raw const` reads nothing, so
    // it needs no unsafe).
    ((&raw const init_stack) as u64, (&raw const init_stack_top) as u64)
}

/// Walk AAPCS64 frame records ({previous fp, lr}) starting at `fp`.
pub fn backtrace_from(w: &mut dyn Write, mut fp: u64) -> fmt::Result {
    let (lo, hi) = stack_bounds();
    for _ in 0..32 {
        if fp == 0 || !fp.is_multiple_of(16) || fp < lo || fp + 16 > hi {
            break;
        }
        // SAFETY: fp lies inside the kernel stack (checked above).
        let (next, lr) = unsafe { (*(fp as *const u64), *((fp + 8) as *const u64)) };
        if lr == 0 {
            break;
        }
        writeln!(w, " {:016x}", lr)?;
        if next <= fp {
            break;
        }
        fp = next;
    }
    Ok(())
}
