// SPDX-License-Identifier: GPL-2.0-only
//! PSCI (Power State Coordination Interface) calls through the conduit the
//! device tree names: `hvc` when the kernel runs at EL1 under a hypervisor
//! or QEMU's built-in firmware, `smc` when EL2 is ours (virtualization=on).

use crate::drivers::of::fdt::PsciConduit;
use aarch64_cpu::registers::{ID_AA64PFR0_EL1, Readable};
use core::sync::atomic::{AtomicU8, Ordering};

pub const PSCI_0_2_FN_PSCI_VERSION: u64 = 0x8400_0000;
pub const PSCI_0_2_FN_SYSTEM_OFF: u64 = 0x8400_0008;
pub const PSCI_0_2_FN_SYSTEM_RESET: u64 = 0x8400_0009;
pub const PSCI_0_2_FN_CPU_OFF: u64 = 0x8400_0002;
pub const PSCI_0_2_FN64_CPU_ON: u64 = 0xc400_0003;
pub const PSCI_0_2_FN64_AFFINITY_INFO: u64 = 0xc400_0004;

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
        // SAFETY: the SMC Calling Convention lets the callee clobber x0-x17
        // only (x18-x30 and SP are preserved), and all of them are declared
        // outputs; no option says nomem, so the compiler assumes the
        // firmware may touch memory. PSCI's functions take no pointers into
        // kernel memory. An HVC with no EL2 traps as UNDEFINED, which the
        // conduit check (or the caller's fault catcher) handles.
        HVC => unsafe {
            core::arch::asm!("hvc #0", inout("x0") r0, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, out("x4") _, out("x5") _, out("x6") _, out("x7") _,
                out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
                out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _)
        },
        // SAFETY: as for HVC: SMCCC's clobbers are declared, PSCI passes no
        // kernel pointers, and an SMC without EL3 traps as UNDEFINED.
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

/// Why the conduit the device tree names cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConduitRefused {
    /// `smc` at EL1 with no EL3, and the SMC trapped as UNDEFINED (QEMU
    /// answers PSCI over SMC itself only when its own conduit is `smc`,
    /// e.g. `virtualization=on`).
    SmcWithoutEl3,
    /// `hvc` with no EL2, and the HVC trapped as UNDEFINED.
    HvcWithoutEl2,
    /// `hvc`, but we were entered at EL2 ourselves: head.S owns EL2 and
    /// installs no handler there, so nothing would answer the call.
    HvcFromOwnEl2,
}

impl core::fmt::Display for ConduitRefused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::SmcWithoutEl3 => "DT says conduit smc but EL3 is not implemented",
            Self::HvcWithoutEl2 => "DT says conduit hvc but EL2 is not implemented",
            Self::HvcFromOwnEl2 => "DT says conduit hvc but the kernel was entered at EL2, so no hypervisor is there",
        })
    }
}

/// ID_AA64PFR0_EL1.EL2/EL3 (bits 11:8 and 15:12): 0 = not implemented.
fn el_implemented(el: u32) -> bool {
    let pfr0 = ID_AA64PFR0_EL1.get();
    (pfr0 >> (4 * (el + 1))) & 0xf != 0
}

/// Use the conduit the device tree names, unless it cannot reach anything.
/// An SMC (HVC) on a CPU without EL3 (EL2) is UNDEFINED, which the panic
/// path's power-off would then hit again and again, so refuse it here. But
/// QEMU without EL3/EL2 emulates PSCI over its configured conduit, so the
/// ID registers alone are not enough: without the EL, PSCI_VERSION is tried
/// once through `version_survives` (the caller runs [`version`] under its
/// fault catcher, which sits above this file), and only a trap refuses it.
pub fn set_conduit_checked(
    c: PsciConduit,
    boot_el: u64,
    version_survives: impl FnOnce() -> bool,
) -> Result<(), ConduitRefused> {
    let missing = match c {
        PsciConduit::Hvc if boot_el >= 2 => return Err(ConduitRefused::HvcFromOwnEl2),
        PsciConduit::Hvc => (!el_implemented(2)).then_some(ConduitRefused::HvcWithoutEl2),
        PsciConduit::Smc => (!el_implemented(3)).then_some(ConduitRefused::SmcWithoutEl3),
    };
    set_conduit(c);
    if let Some(why) = missing
        && !version_survives()
    {
        CONDUIT.store(NONE, Ordering::Relaxed);
        return Err(why);
    }
    Ok(())
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

/// PSCI CPU_ON: start the CPU `mpidr` at physical `entry`, MMU off, with
/// `context_id` in x0. The PSCI return code (0 = success), sign-extended.
pub fn cpu_on(mpidr: u64, entry: u64, context_id: u64) -> Option<i64> {
    call(PSCI_0_2_FN64_CPU_ON, mpidr, entry, context_id).map(|r| r as i32 as i64)
}

/// PSCI CPU_OFF for the calling CPU. Returns only on failure.
pub fn cpu_off() -> Option<i64> {
    call(PSCI_0_2_FN_CPU_OFF, 0, 0, 0).map(|r| r as i32 as i64)
}

/// PSCI AFFINITY_INFO of CPU `mpidr`: 0 = ON, 1 = OFF, 2 = ON_PENDING.
pub fn affinity_info(mpidr: u64) -> Option<i64> {
    call(PSCI_0_2_FN64_AFFINITY_INFO, mpidr, 0, 0).map(|r| r as i32 as i64)
}
