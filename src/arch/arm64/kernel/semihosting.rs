// SPDX-License-Identifier: GPL-2.0-only
//! Arm semihosting (`hlt #0xf000`), used for one thing: leaving QEMU with an
//! exit status, so test runs report pass/fail through QEMU's own exit code.
//! QEMU only honours it with `-semihosting`; otherwise `hlt` is an undefined
//! instruction, so availability is probed once (quietly) at boot.

use core::sync::atomic::{AtomicBool, Ordering};

const SYS_EXIT: u64 = 0x18;
const SYS_ERRNO: u64 = 0x13;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

static AVAILABLE: AtomicBool = AtomicBool::new(false);

/// # Safety
/// Semihosting must be enabled in QEMU, or the caller must be prepared for
/// an undefined-instruction exception; `arg` must be what `op` expects (the
/// address of its readable parameter block, or 0 for none).
unsafe fn semihost_call(op: u64, arg: u64) -> u64 {
    let mut r = op;
    // SAFETY: the caller has semihosting on or catches the trap (the
    // contract); x0 and x1, the only registers the call uses, are declared;
    // for the operations used here the host only reads guest memory (the
    // parameter block at `arg`), never writes it.
    unsafe { core::arch::asm!("hlt #0xf000", inout("x0") r, in("x1") arg, options(nostack)) };
    r
}

/// One harmless semihosting call (SYS_ERRNO). Without QEMU's
/// `-semihosting` the `hlt` is an undefined instruction: the caller runs
/// this under `catch_fault_quiet` (traps sit above this file) and reports
/// the outcome with [`set_available`].
pub fn probe() {
    // SAFETY: `probe` runs under catch_fault_quiet (see above), which
    // recovers from the undefined-instruction trap a disabled semihosting
    // gives; SYS_ERRNO takes no parameter block.
    unsafe { semihost_call(SYS_ERRNO, 0) };
}

/// Record whether [`probe`] got through.
pub fn set_available(ok: bool) {
    AVAILABLE.store(ok, Ordering::Relaxed);
}

pub fn available() -> bool {
    AVAILABLE.load(Ordering::Relaxed)
}

/// Make QEMU exit with `status`. Returns if semihosting is not available.
pub fn exit(status: u32) {
    if !available() {
        return;
    }
    let block = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
    // SAFETY: available() says the boot probe got through, so `hlt` reaches
    // the host instead of trapping; SYS_EXIT reads the two words of
    // `block`, a local that lives across the call.
    unsafe { semihost_call(SYS_EXIT, block.as_ptr() as u64) };
}
