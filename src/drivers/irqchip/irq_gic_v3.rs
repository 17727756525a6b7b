// SPDX-License-Identifier: GPL-2.0-only
//! The GICv3 (Linux: drivers/irqchip/irq-gic-v3.c): a distributor (GICD),
//! one redistributor per CPU (GICR, found in the DT's regions by its
//! affinity), and the CPU interface in the ICC_* system registers. CPU 0
//! ioremaps the distributor and every redistributor region; a secondary
//! only looks its own frame up in them.

use super::{IrqchipError, readl, writel};
use crate::arch::kernel::percpu::NR_CPUS;
use crate::arch::kernel::smp::{cpu_logical_map, read_cpuid_mpidr};
use crate::arch::memory::PhysAddr;
use crate::arch::mm::ioremap::ioremap;
use crate::drivers::of::fdt::Gic;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0c00;
const GICD_IROUTER: usize = 0x6000;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// Affinity routing, group 1 enabled (with one security state, as QEMU
/// virt without secure=on: Linux's ARE_NS | ENABLE_G1A | ENABLE_G1).
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1) | (1 << 0);

const GICR_CTLR: usize = 0x0000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
const GICR_CTLR_RWP: u32 = 1 << 3;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The SGI/PPI frame follows the RD frame (64 KiB each).
const SGI_BASE: usize = 0x1_0000;

const GICD_INT_DEF_PRI_X4: u32 = 0xa0a0_a0a0;
const DEFAULT_PMR_VALUE: u64 = 0xf0;

pub struct GicV3 {
    dist: usize,
    /// (virtual base, size) of each redistributor region.
    redist: Vec<(usize, usize)>,
    stride: Option<usize>,
    nr_irqs: u32,
}

/// Each logical CPU's redistributor RD frame, once found.
static GIC_RDIST: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// Spin until `reg & bit` clears (a register write has taken effect).
///
/// # Safety
/// `base + off` must be a mapped GIC register.
unsafe fn wait_for_clear(base: usize, off: usize, bit: u32) {
    // SAFETY: per the contract.
    while unsafe { readl(base, off) } & bit != 0 {
        core::hint::spin_loop();
    }
}

/// MPIDR affinity as GICD_IROUTER / GICR_TYPER write it:
/// Aff3 in 39:32, Aff2.Aff1.Aff0 in 23:0.
fn mpidr_to_affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

impl GicV3 {
    pub fn probe(gic: &Gic) -> Result<Self, IrqchipError> {
        let dist = ioremap(PhysAddr(gic.dist.0 as usize), gic.dist.1 as usize);
        if dist.is_null() {
            return Err(IrqchipError::Ioremap("GICv3 distributor", gic.dist.0));
        }
        let mut redist = Vec::with_capacity(gic.redist.len());
        for &(pa, size) in &gic.redist {
            let va = ioremap(PhysAddr(pa as usize), size as usize);
            if va.is_null() {
                return Err(IrqchipError::Ioremap("GICv3 redistributor region", pa));
            }
            redist.push((va as usize, size as usize));
        }
        let dist = dist as usize;
        // SAFETY: GICD_TYPER of the distributor just mapped.
        let typer = unsafe { readl(dist, GICD_TYPER) };
        Ok(Self {
            dist,
            redist,
            stride: gic.redist_stride.map(|s| s as usize),
            nr_irqs: (32 * ((typer & 0x1f) + 1)).min(1020),
        })
    }

    pub fn nr_irqs(&self) -> u32 {
        self.nr_irqs
    }

    /// Distributor: SPIs group 1, level, default priority, disabled,
    /// routed to CPU 0; affinity routing on (Linux: gic_dist_init).
    pub fn dist_init(&self) {
        let d = self.dist;
        // SAFETY: (all accesses below) registers of the mapped GICD for
        // INTIDs below GICD_TYPER's limit.
        unsafe {
            writel(d, GICD_CTLR, 0);
            wait_for_clear(d, GICD_CTLR, GICD_CTLR_RWP);
            for i in (32..self.nr_irqs).step_by(32) {
                writel(d, GICD_IGROUPR + (i as usize / 8), u32::MAX);
                writel(d, GICD_ICENABLER + (i as usize / 8), u32::MAX);
            }
            for i in (32..self.nr_irqs).step_by(16) {
                writel(d, GICD_ICFGR + (i as usize / 4), 0);
            }
            for i in (32..self.nr_irqs).step_by(4) {
                writel(d, GICD_IPRIORITYR + i as usize, GICD_INT_DEF_PRI_X4);
            }
            wait_for_clear(d, GICD_CTLR, GICD_CTLR_RWP);
            writel(d, GICD_CTLR, GICD_CTLR_ENABLE);
            wait_for_clear(d, GICD_CTLR, GICD_CTLR_RWP);
            let aff = mpidr_to_affinity(cpu_logical_map(0));
            for i in 32..self.nr_irqs as usize {
                core::ptr::write_volatile((d + GICD_IROUTER + i * 8) as *mut u64, aff);
            }
        }
    }

    /// Find the RD frame whose GICR_TYPER affinity is `mpidr` (Linux:
    /// gic_populate_rdist).
    fn find_rdist(&self, mpidr: u64) -> Option<usize> {
        let want = {
            let a = mpidr_to_affinity(mpidr);
            ((a >> 32) << 24) | (a & 0xff_ffff)
        };
        for &(base, size) in &self.redist {
            let mut off = 0;
            while off + 2 * SGI_BASE <= size {
                let rd = base + off;
                // SAFETY: GICR_TYPER of a frame inside a mapped region.
                let typer = unsafe { core::ptr::read_volatile((rd + GICR_TYPER) as *const u64) };
                if typer >> 32 == want {
                    return Some(rd);
                }
                if typer & GICR_TYPER_LAST != 0 {
                    break;
                }
                off += self.stride.unwrap_or(if typer & GICR_TYPER_VLPIS != 0 {
                    4 * SGI_BASE
                } else {
                    2 * SGI_BASE
                });
            }
        }
        None
    }

    /// This CPU's redistributor (awake, SGIs on, PPIs off) and its ICC_*
    /// interface (Linux: gic_cpu_init + gic_cpu_sys_reg_init). Err(MPIDR)
    /// when no redistributor matches this CPU.
    pub fn cpu_init(&self, cpu: usize) -> Result<(), u64> {
        let mpidr = read_cpuid_mpidr();
        let rd = self.find_rdist(mpidr).ok_or(mpidr)?;
        GIC_RDIST[cpu].store(rd, Ordering::Release);
        let sgi = rd + SGI_BASE;
        // SAFETY: this CPU's RD and SGI frames, mapped; then the GICv3 CPU
        // interface registers, which EL1 may use (head.S opened them when
        // entered at EL2).
        unsafe {
            let w = readl(rd, GICR_WAKER) & !GICR_WAKER_PROCESSOR_SLEEP;
            writel(rd, GICR_WAKER, w);
            wait_for_clear(rd, GICR_WAKER, GICR_WAKER_CHILDREN_ASLEEP);
            writel(sgi, GICD_IGROUPR, u32::MAX);
            writel(sgi, GICD_ICENABLER, 0xffff_0000);
            writel(sgi, GICD_ISENABLER, 0x0000_ffff);
            for i in (0..32).step_by(4) {
                writel(sgi, GICD_IPRIORITYR + i, GICD_INT_DEF_PRI_X4);
            }
            wait_for_clear(rd, GICR_CTLR, GICR_CTLR_RWP);

            let mut sre: u64;
            core::arch::asm!("mrs {}, S3_0_C12_C12_5", out(reg) sre); // ICC_SRE_EL1
            core::arch::asm!("msr S3_0_C12_C12_5, {}", "isb", in(reg) sre | 1);
            core::arch::asm!("msr S3_0_C4_C6_0, {}", in(reg) DEFAULT_PMR_VALUE); // ICC_PMR_EL1
            core::arch::asm!("msr S3_0_C12_C12_3, xzr"); // ICC_BPR1_EL1
            core::arch::asm!("msr S3_0_C12_C12_4, xzr"); // ICC_CTLR_EL1: EOImode 0
            core::arch::asm!("msr S3_0_C12_C12_7, {}", "isb", in(reg) 1u64); // ICC_IGRPEN1_EL1
        }
        Ok(())
    }

    /// (ICC_IAR1_EL1 value, INTID).
    pub fn ack(&self) -> (u32, u32) {
        let iar: u64;
        // SAFETY: acknowledging is what the IRQ handler is for.
        unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", out(reg) iar, options(nostack)) };
        (iar as u32, (iar & 0xff_ffff) as u32)
    }

    pub fn eoi(&self, iar: u32) {
        // SAFETY: ends the interrupt just acknowledged.
        unsafe { core::arch::asm!("msr S3_0_C12_C12_1, {}", "isb", in(reg) u64::from(iar), options(nostack)) };
    }

    fn enable_reg(&self, intid: u32, set: bool) {
        let (base, off) = if intid < 32 {
            let cpu = crate::arch::kernel::percpu::smp_processor_id();
            (GIC_RDIST[cpu].load(Ordering::Acquire) + SGI_BASE, 0)
        } else {
            (self.dist, (intid as usize / 32) * 4)
        };
        if base == SGI_BASE {
            return; // this CPU has no redistributor
        }
        let reg = if set { GICD_ISENABLER } else { GICD_ICENABLER };
        // SAFETY: GICR_ISENABLER0 of this CPU's frame, or GICD_ISENABLERn.
        unsafe { writel(base, reg + off, 1 << (intid % 32)) };
    }

    pub fn enable(&self, intid: u32) {
        self.enable_reg(intid, true);
    }

    pub fn disable(&self, intid: u32) {
        self.enable_reg(intid, false);
    }

    /// Raise SGI `ipi` on the CPUs in `mask` through ICC_SGI1R_EL1, one
    /// write per target (Linux: gic_ipi_send_mask, unbatched).
    pub fn send_sgi(&self, mask: u64, ipi: u32) {
        // SAFETY: makes the caller's stores visible before the SGI.
        unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
        for cpu in (0..NR_CPUS).filter(|&c| mask & (1 << c) != 0) {
            let mpidr = cpu_logical_map(cpu);
            let aff0 = mpidr & 0xff;
            let val = (((mpidr >> 32) & 0xff) << 48)
                | (((mpidr >> 16) & 0xff) << 32)
                | ((aff0 >> 4) << 44)
                | (u64::from(ipi) << 24)
                | (((mpidr >> 8) & 0xff) << 16)
                | (1 << (aff0 & 0xf));
            // SAFETY: ICC_SGI1R_EL1 only raises the SGI.
            unsafe { core::arch::asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) val, options(nostack)) };
        }
    }
}
