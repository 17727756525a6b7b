// SPDX-License-Identifier: GPL-2.0-only
//! The kernel stack's bounds and a frame-pointer backtrace (Linux:
//! arch/arm64/kernel/stacktrace.c). Frame pointers are always on
//! (.cargo/config.toml), so every frame record is {previous fp, lr}.

use core::fmt::{self, Write};

use core::sync::atomic::Ordering;

/// Bounds of this CPU's kernel stack (CPU 0: the boot stack in .bss; a
/// secondary: its vmap'd stack), for backtraces, from its per-CPU slot.
pub fn stack_bounds() -> (u64, u64) {
    let pc = super::percpu::this_cpu();
    (
        pc.stack_low.load(Ordering::Relaxed) as u64,
        pc.stack_high.load(Ordering::Relaxed) as u64,
    )
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
