// SPDX-License-Identifier: GPL-2.0-only
//! Interrupt controllers (Linux: drivers/irqchip/): the GICv2
//! (`irq_gic.rs`, Linux's irq-gic.c, `arm,cortex-a15-gic`) and the GICv3
//! (`irq_gic_v3.rs`, irq-gic-v3.c,
//! `arm,gic-v3`), chosen from the device tree and mapped with ioremap by
//! [`irqchip_init`] on CPU 0. Each secondary sets up its own CPU interface
//! (and GICv3 redistributor) through the `starting_cpu` hook, without
//! touching mm. The root handler acknowledges an interrupt, hands SGIs
//! (IPIs) to arch/arm64/kernel/smp.rs and everything else to the handler
//! [`request_irq`] registered for its INTID.

pub mod irq_gic;
pub mod irq_gic_v3;

use crate::arch::kernel::{irq, smp};
use crate::drivers::of::fdt::{GicVersion, MachineInfo};
use crate::{pr_err, pr_info};
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Once;

/// The INTIDs handlers can be registered for: SGIs, PPIs and the first
/// 32 SPIs (QEMU virt's PL011 is SPI 1 = INTID 33).
pub const NR_IRQ_HANDLERS: usize = 64;
/// The EL1 physical timer's PPI (Linux: ARCH_TIMER_PHYS_NONSECURE_PPI, PPI 14).
pub const ARCH_TIMER_PHYS_PPI: u32 = 30;

static HANDLERS: [AtomicUsize; NR_IRQ_HANDLERS] = [const { AtomicUsize::new(0) }; NR_IRQ_HANDLERS];

enum Chip {
    V2(irq_gic::GicV2),
    V3(irq_gic_v3::GicV3),
}

static CHIP: Once<Chip> = Once::new();

/// Why the interrupt controller could not be set up.
#[derive(Debug)]
pub enum IrqchipError {
    NoGicNode,
    Ioremap(&'static str, u64),
    NoRedistributor(u64),
}

impl core::fmt::Display for IrqchipError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoGicNode => write!(f, "no arm,cortex-a15-gic or arm,gic-v3 node in the device tree"),
            Self::Ioremap(what, pa) => write!(f, "ioremap of the {} at {:#x} failed", what, pa),
            Self::NoRedistributor(mpidr) => {
                write!(f, "no redistributor for MPIDR {:#x} in the DT's regions", mpidr)
            }
        }
    }
}

/// Probe the GIC the device tree names, map it, initialise the
/// distributor and CPU 0's interface, and register the root handler, the
/// IPI sender and the secondaries' per-CPU setup (Linux: irqchip_init).
pub fn irqchip_init(info: &MachineInfo) -> Result<(), IrqchipError> {
    let gic = info.gic().ok_or(IrqchipError::NoGicNode)?;
    let chip = match gic.version {
        GicVersion::V2 => Chip::V2(irq_gic::GicV2::probe(gic)?),
        GicVersion::V3 => Chip::V3(irq_gic_v3::GicV3::probe(gic)?),
    };
    let chip = CHIP.call_once(|| chip);
    match chip {
        Chip::V2(g) => {
            g.dist_init();
            g.cpu_init(0);
            pr_info!(
                "GIC: GICv2 at {:#x} (CPU interface {:#x}), {} irqs",
                gic.dist.0,
                gic.cpu_if.0,
                g.nr_irqs()
            );
        }
        Chip::V3(g) => {
            g.dist_init();
            g.cpu_init(0).map_err(IrqchipError::NoRedistributor)?;
            pr_info!(
                "GICv3: {} SPIs implemented; {} redistributor region(s), first at {:#x}",
                g.nr_irqs() - 32,
                gic.redist.len(),
                gic.redist[0].0
            );
        }
    }
    irq::set_smp_cross_call(send_ipi);
    irq::set_starting_cpu(starting_cpu);
    irq::set_handle_irq(handle_irq);
    Ok(())
}

fn chip() -> Option<&'static Chip> {
    CHIP.get()
}

/// A secondary's CPU interface (Linux: gic_starting_cpu).
fn starting_cpu(cpu: usize) {
    match chip() {
        Some(Chip::V2(g)) => g.cpu_init(cpu),
        Some(Chip::V3(g)) => {
            if let Err(mpidr) = g.cpu_init(cpu) {
                pr_err!(
                    "GICv3: CPU{}: no redistributor for MPIDR {:#x}; no interrupts here",
                    cpu,
                    mpidr
                );
            }
        }
        None => {}
    }
}

fn send_ipi(mask: u64, ipi: u32) {
    match chip() {
        Some(Chip::V2(g)) => g.send_sgi(mask, ipi),
        Some(Chip::V3(g)) => g.send_sgi(mask, ipi),
        None => {}
    }
}

/// The root IRQ handler: acknowledge, dispatch, end, until none is pending
/// (Linux: gic_handle_irq).
fn handle_irq() {
    loop {
        let (ack, intid) = match chip() {
            Some(Chip::V2(g)) => g.ack(),
            Some(Chip::V3(g)) => g.ack(),
            None => return,
        };
        if intid >= 1020 {
            return; // spurious, or nothing (more) pending
        }
        if intid < 16 {
            eoi(ack);
            smp::handle_ipi(intid);
            continue;
        }
        match HANDLERS.get(intid as usize).map(|h| h.load(Ordering::Acquire)) {
            Some(f) if f != 0 => {
                // SAFETY: request_irq stores only `fn()`s.
                let f: fn() = unsafe { core::mem::transmute(f) };
                f();
            }
            _ => {
                pr_err!("irq {}: nobody cared; disabling it", intid);
                disable_irq(intid);
            }
        }
        eoi(ack);
    }
}

fn eoi(ack: u32) {
    match chip() {
        Some(Chip::V2(g)) => g.eoi(ack),
        Some(Chip::V3(g)) => g.eoi(ack),
        None => {}
    }
}

/// Install `handler` for `intid` and enable it (level-triggered, routed
/// to CPU 0 if an SPI; a PPI only on the calling CPU). Linux:
/// request_irq + enable_irq.
pub fn request_irq(intid: u32, handler: fn()) -> Result<(), &'static str> {
    if intid < 16 || intid as usize >= NR_IRQ_HANDLERS {
        return Err("INTID out of the range handlers can be registered for");
    }
    let Some(c) = chip() else {
        return Err("no interrupt controller");
    };
    HANDLERS[intid as usize].store(handler as usize, Ordering::Release);
    match c {
        Chip::V2(g) => g.enable(intid),
        Chip::V3(g) => g.enable(intid),
    }
    Ok(())
}

/// Disable `intid` (a PPI: on the calling CPU) and drop its handler.
pub fn free_irq(intid: u32) {
    disable_irq(intid);
    if let Some(h) = HANDLERS.get(intid as usize) {
        h.store(0, Ordering::Release);
    }
}

fn disable_irq(intid: u32) {
    match chip() {
        Some(Chip::V2(g)) => g.disable(intid),
        Some(Chip::V3(g)) => g.disable(intid),
        None => {}
    }
}

/// "GICv2" / "GICv3" / "none", for the shell's `cpu`.
pub fn gic_name() -> &'static str {
    match chip() {
        Some(Chip::V2(_)) => "GICv2",
        Some(Chip::V3(_)) => "GICv3",
        None => "none",
    }
}

/// 32-bit MMIO helpers on an ioremap'd base.
///
/// # Safety
/// `base + off` must be a mapped, 4-byte aligned GIC register.
unsafe fn readl(base: usize, off: usize) -> u32 {
    // SAFETY: per the contract.
    unsafe { core::ptr::read_volatile((base + off) as *const u32) }
}

/// # Safety
/// As for [`readl`].
unsafe fn writel(base: usize, off: usize, v: u32) {
    // SAFETY: per the contract.
    unsafe { core::ptr::write_volatile((base + off) as *mut u32, v) }
}
