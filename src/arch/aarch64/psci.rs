//! PSCI (Power State Coordination Interface) calls through the conduit the
//! device tree names: `hvc` when the kernel runs at EL1 under a hypervisor
//! or QEMU's built-in firmware, `smc` when EL2 is ours (virtualization=on).

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::dt::PsciConduit;

pub const PSCI_0_2_FN_PSCI_VERSION: u64 = 0x8400_0000;
pub const PSCI_0_2_FN_SYSTEM_OFF: u64 = 0x8400_0008;
pub const PSCI_0_2_FN_SYSTEM_RESET: u64 = 0x8400_0009;

const NONE: u8 = 0;
const HVC: u8 = 1;
const SMC: u8 = 2;
static CONDUIT: AtomicU8 = AtomicU8::new(NONE);

pub fn set_conduit(c: PsciConduit) {
    CONDUIT.store(
        match c {
            PsciConduit::Hvc => HVC,
            PsciConduit::Smc => SMC,
        },
        Ordering::Relaxed,
    );
}

pub fn conduit_name() -> &'static str {
    match CONDUIT.load(Ordering::Relaxed) {
        HVC => "hvc",
        SMC => "smc",
        _ => "none",
    }
}

/// Issue a PSCI call; None when the DT named no conduit.
pub fn call(func: u64, a1: u64, a2: u64, a3: u64) -> Option<u64> {
    let mut r0 = func;
    match CONDUIT.load(Ordering::Relaxed) {
        // SAFETY: SMCCC calls clobber at most x0-x17; declare them.
        HVC => unsafe {
            core::arch::asm!("hvc #0", inout("x0") r0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _)
        },
        SMC => unsafe {
            core::arch::asm!("smc #0", inout("x0") r0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _)
        },
        _ => return None,
    }
    Some(r0)
}

/// PSCI SYSTEM_OFF. Returns only if there is no conduit or the call failed.
pub fn system_off() {
    call(PSCI_0_2_FN_SYSTEM_OFF, 0, 0, 0);
}

/// PSCI SYSTEM_RESET. Returns only if there is no conduit or the call failed.
pub fn system_reset() {
    call(PSCI_0_2_FN_SYSTEM_RESET, 0, 0, 0);
}

/// (major, minor) of the firmware's PSCI implementation.
pub fn version() -> Option<(u32, u32)> {
    call(PSCI_0_2_FN_PSCI_VERSION, 0, 0, 0).map(|v| ((v >> 16) as u32 & 0x7fff, v as u32 & 0xffff))
}
