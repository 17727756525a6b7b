// SPDX-License-Identifier: GPL-2.0-only
//! Power-off and the stop after a failed test run (Linux: kernel/reboot.c).

use crate::arch::kernel::{cpu, psci, semihosting};
use crate::{pr_emerg, pr_info};

/// Stop after a failed test run (not a panic: see [`super::panic`]): leave QEMU
/// with a failure status when semihosting is on, else power off through
/// PSCI (the console's `ktest: N test(s) failed` says why), else park.
pub fn machine_fail_stop() -> ! {
    semihosting::exit(1);
    psci::system_off();
    pr_emerg!("---[ end Kernel panic: system halted ]---");
    cpu::halt()
}

/// Power off (status 0 under semihosting).
pub fn machine_power_off() -> ! {
    pr_info!("reboot: Power down");
    semihosting::exit(0);
    psci::system_off();
    pr_emerg!(
        "reboot: PSCI SYSTEM_OFF unavailable (conduit {}); halting",
        psci::conduit_name()
    );
    cpu::halt()
}
