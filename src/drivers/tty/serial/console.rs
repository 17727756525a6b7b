// SPDX-License-Identifier: GPL-2.0-only
//! The console's move onto the vmalloc range: ioremap the boot UART and
//! switch printk over to that mapping (Linux: the amba-pl011 driver's probe
//! taking over from earlycon). It needs ioremap, so unlike the register-level
//! driver beside it, it sits above mm.

use crate::arch::mm::ioremap;
use crate::arch::mm::mmu as paging;
use crate::drivers::of::fdt::MachineInfo;
use crate::pr_info;

/// Move the console from its fixmap slot to an ioremap() of its UART; from
/// here on every byte goes through the vmalloc range. The fixmap slot is
/// then unmapped, so a stale user would fault.
///
/// The console stays on the UART it booted on (the earlycon PL011): that
/// one is known to reach the user, as the boot log went through it. A DT
/// naming a PL011 elsewhere is reported, not followed -- a UART at another
/// address, even a working one, may be wired to nothing anyone reads. The
/// new mapping is checked to answer like a PL011 (PrimeCell ID registers)
/// before the console switches to it.
pub fn console_ioremap(info: &MachineInfo) {
    use crate::arch::memory::{FIX_EARLYCON_MEM_IDX, PhysAddr};
    use crate::drivers::tty::serial::pl011::{PL011_REG_SIZE, PrimeCellId};
    let phys = crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS;
    if let Some(u) = info.pl011()
        && u.base as usize != phys
    {
        crate::pr_warn!(
            "console: the DT's PL011 at {:#x} is not the boot console's UART at {:#x}; the console stays on {:#x}",
            u.base,
            phys,
            phys
        );
    }
    let base = ioremap::ioremap(PhysAddr(phys), PL011_REG_SIZE);
    if base.is_null() {
        crate::pr_err!(
            "console: ioremap of the PL011 at {:#x} failed; staying on the fixmap",
            phys
        );
        return;
    }
    // SAFETY: ioremap just mapped the UART's 4 KiB register window (non-null)
    // as device memory, as PrimeCellId::read requires; a fault is caught.
    let id = crate::arch::kernel::traps::catch_fault_quiet(|| unsafe { PrimeCellId::read(base as usize) });
    let id = match id {
        Ok(id) if id.is_pl011() => id,
        other => {
            crate::pr_err!(
                "console: the ioremap of {:#x} does not answer as a PL011 ({:x?}); staying on the fixmap",
                phys,
                other.map_err(|f| f.far)
            );
            ioremap::iounmap(base);
            return;
        }
    };
    // SAFETY: ioremap mapped this same UART as device memory (it answered
    // as a PL011 above), and the mapping stays until the console moves off
    // it: console_set_base's contract.
    unsafe { crate::kernel::printk::console_set_base(base as usize) };
    paging::clear_fixmap(FIX_EARLYCON_MEM_IDX);
    pr_info!(
        "console [ttyAMA0]: PL011 rev {} at MMIO {:#x} now at {:#x} (ioremap); earlycon fixmap released",
        id.revision(),
        phys,
        base as usize
    );
}
