// SPDX-License-Identifier: GPL-2.0-only
//! Small CPU helpers: identification, halting, interrupt masking.

use aarch64_cpu::registers::{CurrentEL, MIDR_EL1, MPIDR_EL1, Readable};

/// Park this CPU forever. Interrupts are masked and none is enabled, so
/// `wfi` sleeps for good (QEMU then idles the host thread; `wfe` would be
/// a yield that spins it).
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}

pub fn midr() -> u64 {
    MIDR_EL1.get()
}

pub fn mpidr() -> u64 {
    MPIDR_EL1.get()
}

pub fn current_el() -> u64 {
    CurrentEL.read(CurrentEL::EL)
}

/// A name for the MIDR's part number (the CPUs QEMU virt is tested with).
pub fn cpu_name(midr: u64) -> &'static str {
    let implementer = (midr >> 24) & 0xff;
    let part = (midr >> 4) & 0xfff;
    match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd04) => "Cortex-A35",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4f) => "Neoverse-V2",
        (0x41, 0xd87) => "Cortex-A725",
        (0x00, 0x051) => "QEMU max",
        _ => "unknown CPU",
    }
}
