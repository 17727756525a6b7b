// SPDX-License-Identifier: GPL-2.0-only
//! The GICv2 (Linux: drivers/irqchip/irq-gic.c): a distributor (GICD) and
//! a memory-mapped CPU interface (GICC), both ioremap'd by CPU 0.

use super::{IrqchipError, readl, writel};
use crate::arch::kernel::percpu::NR_CPUS;
use crate::arch::memory::PhysAddr;
use crate::arch::mm::ioremap::ioremap;
use crate::drivers::of::fdt::Gic;
use core::sync::atomic::{AtomicU8, Ordering};

const GICD_CTLR: usize = 0x000;
const GICD_TYPER: usize = 0x004;
const GICD_ISENABLER: usize = 0x100;
const GICD_ICENABLER: usize = 0x180;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;
const GICD_ICFGR: usize = 0xc00;
const GICD_SGIR: usize = 0xf00;

const GICC_CTLR: usize = 0x00;
const GICC_PMR: usize = 0x04;
const GICC_BPR: usize = 0x08;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;

/// Linux's GICD_INT_DEF_PRI (0xa0) in every byte, and the priority mask
/// that lets it through (DEFAULT_PMR_VALUE).
const GICD_INT_DEF_PRI_X4: u32 = 0xa0a0_a0a0;
const DEFAULT_PMR_VALUE: u32 = 0xf0;

pub struct GicV2 {
    dist: usize,
    cpu: usize,
    nr_irqs: u32,
}

/// Each logical CPU's CPU-interface bit in GICD_ITARGETSR / GICD_SGIR's
/// target list (Linux: gic_cpu_map), read on that CPU.
static GIC_CPU_MAP: [AtomicU8; NR_CPUS] = [const { AtomicU8::new(0) }; NR_CPUS];

impl GicV2 {
    pub fn probe(gic: &Gic) -> Result<Self, IrqchipError> {
        let dist = ioremap(PhysAddr(gic.dist.0 as usize), gic.dist.1 as usize);
        if dist.is_null() {
            return Err(IrqchipError::Ioremap("GICv2 distributor", gic.dist.0));
        }
        let cpu = ioremap(PhysAddr(gic.cpu_if.0 as usize), gic.cpu_if.1 as usize);
        if cpu.is_null() {
            return Err(IrqchipError::Ioremap("GICv2 CPU interface", gic.cpu_if.0));
        }
        let dist = dist as usize;
        // SAFETY: GICD_TYPER of the distributor just mapped.
        let typer = unsafe { readl(dist, GICD_TYPER) };
        let nr_irqs = (32 * ((typer & 0x1f) + 1)).min(1020);
        Ok(Self {
            dist,
            cpu: cpu as usize,
            nr_irqs,
        })
    }

    pub fn nr_irqs(&self) -> u32 {
        self.nr_irqs
    }

    /// Distributor: every SPI level-triggered, default priority, routed
    /// to CPU 0, disabled; then on (Linux: gic_dist_init).
    pub fn dist_init(&self) {
        let d = self.dist;
        // SAFETY: (all register accesses below) offsets inside the mapped
        // GICD, for INTIDs below GICD_TYPER's limit.
        unsafe {
            writel(d, GICD_CTLR, 0);
            let cpumask = u32::from(gic_get_cpumask(d)) * 0x0101_0101;
            for i in (32..self.nr_irqs).step_by(16) {
                writel(d, GICD_ICFGR + (i as usize / 16) * 4, 0);
            }
            for i in (32..self.nr_irqs).step_by(4) {
                writel(d, GICD_ITARGETSR + i as usize, cpumask);
                writel(d, GICD_IPRIORITYR + i as usize, GICD_INT_DEF_PRI_X4);
            }
            for i in (32..self.nr_irqs).step_by(32) {
                writel(d, GICD_ICENABLER + (i as usize / 8), u32::MAX);
            }
            writel(d, GICD_CTLR, 1);
        }
    }

    /// This CPU's banked SGIs/PPIs and its CPU interface (Linux:
    /// gic_cpu_init).
    pub fn cpu_init(&self, cpu: usize) {
        let (d, c) = (self.dist, self.cpu);
        // SAFETY: banked GICD registers and the GICC, all mapped.
        unsafe {
            GIC_CPU_MAP[cpu].store(gic_get_cpumask(d), Ordering::Release);
            writel(d, GICD_ICENABLER, 0xffff_0000); // PPIs off
            writel(d, GICD_ISENABLER, 0x0000_ffff); // SGIs on
            for i in (0..32).step_by(4) {
                writel(d, GICD_IPRIORITYR + i, GICD_INT_DEF_PRI_X4);
            }
            writel(c, GICC_PMR, DEFAULT_PMR_VALUE);
            writel(c, GICC_BPR, 0);
            writel(c, GICC_CTLR, 1);
        }
    }

    /// (GICC_IAR value, INTID).
    pub fn ack(&self) -> (u32, u32) {
        // SAFETY: GICC_IAR of the mapped CPU interface.
        let iar = unsafe { readl(self.cpu, GICC_IAR) };
        (iar, iar & 0x3ff)
    }

    pub fn eoi(&self, iar: u32) {
        // SAFETY: GICC_EOIR of the mapped CPU interface.
        unsafe { writel(self.cpu, GICC_EOIR, iar) };
    }

    pub fn enable(&self, intid: u32) {
        // SAFETY: GICD_ISENABLERn for an INTID the caller bounds-checked.
        unsafe { writel(self.dist, GICD_ISENABLER + (intid as usize / 32) * 4, 1 << (intid % 32)) };
    }

    pub fn disable(&self, intid: u32) {
        // SAFETY: as in enable.
        unsafe { writel(self.dist, GICD_ICENABLER + (intid as usize / 32) * 4, 1 << (intid % 32)) };
    }

    /// Raise SGI `ipi` on the logical CPUs in `mask` (Linux:
    /// gic_ipi_send_mask).
    pub fn send_sgi(&self, mask: u64, ipi: u32) {
        let targets = (0..NR_CPUS)
            .filter(|&c| mask & (1 << c) != 0)
            .fold(0u32, |m, c| m | u32::from(GIC_CPU_MAP[c].load(Ordering::Acquire)));
        // SAFETY: a barrier, then GICD_SGIR of the mapped distributor. The
        // dsb makes the caller's stores (the call slot) visible to the
        // target before the SGI can reach it.
        unsafe {
            core::arch::asm!("dsb ishst", options(nostack, preserves_flags));
            writel(self.dist, GICD_SGIR, (targets << 16) | ipi);
        }
    }
}

/// This CPU's interface bit: the first non-zero byte of the banked
/// GICD_ITARGETSR0..7 (Linux: gic_get_cpumask).
///
/// # Safety
/// `dist` must be the mapped distributor.
unsafe fn gic_get_cpumask(dist: usize) -> u8 {
    (0..32)
        .step_by(4)
        .map(|i| {
            // SAFETY: per the contract.
            let v = unsafe { readl(dist, GICD_ITARGETSR + i) };
            let v = v | (v >> 16);
            (v | (v >> 8)) as u8
        })
        .find(|&m| m != 0)
        .unwrap_or(0)
}
