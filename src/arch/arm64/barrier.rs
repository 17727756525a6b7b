// SPDX-License-Identifier: GPL-2.0-only
//! Waiting for another CPU (Linux: arch/arm64/include/asm/barrier.h's
//! smp_cond_load_relaxed, asm/cmpxchg.h's __cmpwait_relaxed, and
//! asm/processor.h's cpu_relax for waits with no location to watch).
//!
//! A waiter does not re-read the location in a tight loop: it arms the
//! exclusive monitor on it with a load-exclusive and sleeps in `wfe`. The
//! writer's store clears that monitor, which is an event, so the waiter
//! wakes exactly when the value may have changed. On a real core this saves
//! power and keeps the cache line from bouncing; QEMU's TCG treats `wfe` as
//! "yield to the next vCPU", so under `-icount` a waiting CPU costs no
//! instructions while the holder runs.

use core::sync::atomic::{AtomicU32, Ordering};

/// Linux's cpu_relax (arm64: asm/processor.h): a `yield` hint in a polling
/// loop that has no location to wait on (a timed wait). On a core with SMT
/// it gives the other thread the pipeline; QEMU's single-threaded TCG (as
/// under `-icount`) switches to the next vCPU on it, so the CPU being
/// waited for gets to run.
#[inline(always)]
pub fn cpu_relax() {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: a hint instruction; no memory or register effects.
    unsafe {
        core::arch::asm!("yield", options(nomem, nostack, preserves_flags))
    };
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    core::hint::spin_loop();
}

/// Linux's smp_cond_load_relaxed for a 32-bit location: load `ptr` until
/// `cond` holds for the loaded value, and return it. No ordering beyond the
/// load itself: callers that go on to use data published with the value
/// follow up with an acquiring access (as the spinlock's CAS does).
#[inline(always)]
pub fn smp_cond_load_relaxed_u32(ptr: &AtomicU32, cond: impl Fn(u32) -> bool) -> u32 {
    loop {
        let v = ptr.load(Ordering::Relaxed);
        if cond(v) {
            return v;
        }
        __cmpwait_relaxed_u32(ptr, v);
    }
}

/// Linux's __cmpwait_relaxed: return once `*ptr` may no longer be `val`
/// (spurious returns are allowed; the caller re-checks).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
fn __cmpwait_relaxed_u32(ptr: &AtomicU32, val: u32) {
    // `sevl; wfe` clears a stale event first, so the second `wfe` sleeps
    // only if the value is still `val` after the monitor was armed; any
    // store to the location after the `ldxr` clears the monitor and wakes
    // us. An interrupt also wakes us, which is harmless.
    // SAFETY: `ptr` is a valid, aligned AtomicU32 for the duration of the
    // borrow; ldxr only reads it, and the open exclusive access is never
    // paired with a store-exclusive (a later ldxr/clrex supersedes it).
    unsafe {
        core::arch::asm!(
            "sevl",
            "wfe",
            "ldxr {tmp:w}, [{ptr}]",
            "eor {tmp:w}, {tmp:w}, {val:w}",
            "cbnz {tmp:w}, 1f",
            "wfe",
            "1:",
            ptr = in(reg) ptr.as_ptr(),
            val = in(reg) val,
            tmp = out(reg) _,
            options(nostack, readonly)
        );
    }
}

/// The host build (unit tests) has no monitor to wait on: spin politely.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
#[inline(always)]
fn __cmpwait_relaxed_u32(ptr: &AtomicU32, val: u32) {
    while ptr.load(Ordering::Relaxed) == val {
        core::hint::spin_loop();
    }
}
