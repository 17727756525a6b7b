// SPDX-License-Identifier: GPL-2.0-only
//! setup_arch (Linux: arch/arm64/kernel/setup.c): identify the CPU, read the
//! device tree the loader handed over (x0), pick the PSCI conduit and the
//! timer frequency, and print the machine summary. start_kernel
//! (init/main.rs) goes on with memblock, paging_init and mm_init.

use crate::arch::kernel::{cpu, psci, timer, traps};
use crate::drivers::of::fdt::{self as dt, MachineInfo, ReserveKind};
use crate::kernel::panic::boot_fail;
use crate::{pr_info, pr_notice, pr_warn};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;

/// The parsed device tree, kept for the life of the kernel.
static MACHINE: Once<MachineInfo> = Once::new();
/// How long `dt::parse_at` took at boot (the NOP-compaction cost shows here).
static FDT_PARSE_NS: AtomicU64 = AtomicU64::new(0);
/// Physical address of the FDT and of the kernel image.
static BOOT_INFO: Once<BootInfo> = Once::new();

#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    pub fdt_pa: usize,
    pub boot_el: u64,
    pub phys_text: usize,
}

pub fn machine() -> &'static MachineInfo {
    MACHINE.get().expect("machine() before setup_arch")
}

pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot_info() before setup_arch")
}

/// Highest physical address the early identity map covers (head.S).
const IDMAP_LIMIT: usize = 256 << 30;

pub fn setup_arch(fdt_pa: usize, boot_el: u64, phys_text: usize) -> &'static MachineInfo {
    let midr = cpu::midr();
    pr_info!(
        "Booting vmkernel on physical CPU 0x{:010x} [0x{:08x}]",
        cpu::mpidr() & 0xff_00ff_ffff,
        midr
    );
    pr_info!(
        "vmkernel version {} ({}) {} at EL{}, running at EL{}",
        env!("CARGO_PKG_VERSION"),
        env!("VMKERNEL_RUSTC_VERSION"),
        cpu::cpu_name(midr),
        boot_el,
        cpu::current_el()
    );
    BOOT_INFO.call_once(|| BootInfo {
        fdt_pa,
        boot_el,
        phys_text,
    });

    if fdt_pa == 0 || !fdt_pa.is_multiple_of(8) || fdt_pa >= IDMAP_LIMIT {
        boot_fail(format_args!(
            "no device tree: x0 = {:#x} at entry is not a plausible FDT address (the loader must pass the DTB's physical address in x0, as the arm64 boot protocol says)",
            fdt_pa
        ));
    }
    // The header read itself may fault (x0 pointing at a hole): catch it.
    let t0 = timer::get_cycles();
    // SAFETY: fdt_pa is 8-aligned, below the identity map's limit, and any
    // fault on reading it is caught; nothing writes the DTB meanwhile.
    let parsed = traps::catch_fault_quiet(|| unsafe { dt::parse_at(fdt_pa as *const u8) });
    FDT_PARSE_NS.store(timer::ticks_to_ns(timer::get_cycles() - t0), Ordering::Relaxed);
    let info = match parsed {
        Err(f) => boot_fail(format_args!(
            "no device tree: reading x0 = {:#x} faulted (FAR {:#x}); the loader must pass the DTB's physical address in x0",
            fdt_pa, f.far
        )),
        Ok(Err(e)) => boot_fail(format_args!("bad device tree at {:#x}: {}", fdt_pa, e)),
        Ok(Ok(info)) => info,
    };
    let info = MACHINE.call_once(|| info);

    if let Some(c) = info.psci()
        && let Err(why) = psci::set_conduit_checked(c, boot_el, || traps::catch_fault_quiet(psci::version).is_ok())
    {
        pr_warn!("psci: {}; PSCI disabled", why);
    }
    if let Some(len) = info.bootargs_truncated() {
        pr_warn!(
            "Kernel command line: /chosen/bootargs is {} bytes; truncated to COMMAND_LINE_SIZE - 1 = {}",
            len,
            dt::COMMAND_LINE_SIZE - 1
        );
    }
    if let Some(hz) = info.timer_frequency() {
        timer::set_frequency(hz as u64);
    }
    info
}

/// The device-tree summary (boot log, and the shell's `dt`).
pub fn print_machine_summary(info: &MachineInfo, fdt_pa: usize) {
    pr_info!("Machine model: {}", info.model());
    match info.pl011() {
        Some(u) => {
            pr_info!(
                "earlycon: pl011 at MMIO 0x{:016x} (size {:#x}, irq {})",
                u.base,
                u.size,
                u.irq.map_or(-1, |i| i as i64)
            );
            if u.base as usize != crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS {
                pr_warn!(
                    "console: DT's PL011 at {:#x} differs from the boot console at {:#x}; keeping the boot console",
                    u.base,
                    crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS
                );
            }
        }
        None => pr_warn!(
            "console: no arm,pl011 node in the device tree; keeping the boot console at {:#x}",
            crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS
        ),
    }
    match (info.psci(), psci::conduit_name()) {
        (None, _) => pr_warn!("psci: no /psci node; power-off will not be possible"),
        (Some(c), "none") => pr_warn!("psci: DT's conduit {:?} refused at setup; no PSCI", c),
        (Some(_), name) => match psci::version() {
            Some((maj, min)) => pr_info!("psci: PSCIv{}.{} detected in firmware (conduit: {})", maj, min, name),
            None => pr_warn!("psci: conduit {} did not answer PSCI_VERSION", name),
        },
    }
    pr_info!("smp: {} CPU(s) in the device tree", info.cpu_count());
    pr_info!(
        "arch_timer: cp15 timer running at {}.{:02}MHz ({})",
        timer::frequency() / 1_000_000,
        (timer::frequency() / 10_000) % 100,
        if info.timer_frequency().is_some() {
            "from DT"
        } else {
            "CNTFRQ_EL0"
        }
    );
    pr_info!(
        "fdt: {} bytes at physical {:#x}, parsed in {} us ({} FDT_NOP token(s) compacted away)",
        info.dtb_size(),
        fdt_pa,
        FDT_PARSE_NS.load(Ordering::Relaxed) / 1000,
        info.nop_count()
    );
    pr_notice!("Kernel command line: {}", info.bootargs());
    pr_info!("MEMBLOCK configuration:");
    pr_info!(
        " memory size = {:#x} reserved size = {:#x}",
        info.total_memory(),
        info.reserved().iter().map(|r| r.region.size).sum::<u64>()
    );
    pr_info!(" memory.cnt  = {:#x}", info.memory().len());
    for (i, b) in info.memory().iter().enumerate() {
        match b.numa_node {
            Some(n) => pr_info!(
                " memory[{:#x}]\t{}, {:#x} bytes on node {}",
                i,
                b.region,
                b.region.size,
                n
            ),
            None => pr_info!(" memory[{:#x}]\t{}, {:#x} bytes", i, b.region, b.region.size),
        }
    }
    pr_info!(" reserved.cnt  = {:#x}", info.reserved().len());
    for (i, r) in info.reserved().iter().enumerate() {
        let kind = match r.kind {
            ReserveKind::MemReserve => "/memreserve/",
            ReserveKind::ReservedMemory { no_map: true } => "reserved-memory, no-map",
            ReserveKind::ReservedMemory { no_map: false } => "reserved-memory",
        };
        pr_info!(
            " reserved[{:#x}]\t{}, {:#x} bytes ({} {})",
            i,
            r.region,
            r.region.size,
            kind,
            r.name()
        );
    }
    let total = info.total_memory();
    pr_info!("RAM: {} MiB in {} bank(s)", total >> 20, info.memory().len());
}
