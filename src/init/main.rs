// SPDX-License-Identifier: GPL-2.0-only
//! start_kernel (Linux: init/main.c): the first Rust code, and the boot in
//! init/main.c's order, then `run_init`, which starts what the command line
//! asks for.

use crate::arch::kernel::{semihosting, setup, traps};
use crate::arch::mm::{init::arm64_memblock_init, mmu::paging_init};
use crate::drivers::tty::serial::{console::console_ioremap, pl011::EARLYCON_PL011_PHYS};
use crate::kernel::printk;
use crate::{mm, pr_info};

/// The first Rust code, entered from head.S with the MMU on, running at the
/// kernel's link address. Arguments: the loader's x0 (FDT physical address),
/// the exception level we were entered at, and the image's physical base.
///
/// Linux does memblock and paging_init inside setup_arch; here start_kernel
/// calls them itself, so that arch/arm64/kernel stays below mm (see
/// docs/architecture.md). The order is Linux's.
#[unsafe(no_mangle)]
pub extern "C" fn start_kernel(fdt_pa: usize, boot_el: u64, phys_text: usize) -> ! {
    crate::arch::mm::mmu::set_kimage_voffset(phys_text);
    // SAFETY: head.S identity-maps GiB 0, where QEMU virt's PL011 sits, as
    // Device-nGnRE, and that mapping lasts until paging_init moves the
    // console to the fixmap (console_set_base): console_init's contract.
    unsafe { printk::console_init(EARLYCON_PL011_PHYS) };
    // Without QEMU's -semihosting the probe's `hlt` traps: caught, quietly.
    semihosting::set_available(traps::catch_fault_quiet(semihosting::probe).is_ok());
    // Asynchronous aborts (SError) are reported from here on, as Linux
    // unmasks them early; IRQ and FIQ stay masked: CPU 0 takes IRQs only
    // in its idle wait (cpu_do_idle), where it holds nothing.
    // `msr daifclr, #4` (Linux's local_async_enable) clears DAIF.A alone in
    // one instruction; aarch64-cpu's DAIF.modify would be a read-modify-write.
    // SAFETY: unmasking SError changes no memory; head.S installed the
    // vectors before branching here, so a pending SError reaches
    // el1_exception and is reported, not taken through a stale VBAR_EL1.
    unsafe { core::arch::asm!("msr daifclr, #4", options(nomem, nostack)) };
    mm::heap::heap_init();
    let info = setup::setup_arch(fdt_pa, boot_el, phys_text);
    crate::arch::kernel::smp::smp_init_cpus(info);
    super::params::parse_early_param(info.bootargs());
    setup::print_machine_summary(info, fdt_pa);
    arm64_memblock_init(info, fdt_pa);
    // The console is still on the identity-mapped UART at this point.
    paging_init(printk::console_base().unwrap_or(EARLYCON_PL011_PHYS));
    mm::mm_init(info);
    // After mm_init, not before it as in Linux: the first chunk comes from
    // the buddy allocator here, not from memblock.
    mm::percpu::setup_per_cpu_areas();
    console_ioremap(info);
    init_irq(info);
    crate::kernel::smp::smp_init(info);
    pr_info!("vmallocinfo:");
    let _ = mm::vmalloc::vmallocinfo(&mut printk::LogWriter);
    run_init()
}

/// The interrupt controller, then the console's receive interrupt (Linux:
/// init_IRQ, then the PL011 driver's request_irq). Without either the
/// kernel still works, polling the console as before.
fn init_irq(info: &crate::drivers::of::fdt::MachineInfo) {
    use crate::drivers::irqchip;
    if let Err(e) = irqchip::irqchip_init(info) {
        crate::pr_warn!("irqchip: {}; no interrupts, the console is polled", e);
        return;
    }
    let Some(spi) = info.pl011().and_then(|u| u.irq) else {
        crate::pr_warn!("console: the DT's PL011 has no SPI; the console is polled");
        return;
    };
    match irqchip::request_irq(32 + spi, printk::console_rx_irq) {
        Ok(()) => {
            printk::console_enable_rx_irq();
            pr_info!(
                "console [ttyAMA0]: receive interrupt on SPI {} (INTID {})",
                spi,
                32 + spi
            );
        }
        Err(e) => crate::pr_warn!("console: SPI {}: {}; the console is polled", spi, e),
    }
}

/// What the command line asked for, in Linux's spirit of `init=`: the
/// in-kernel tests (`ktest`, `ktest=FILTER`), the benchmarks
/// (`test_vmalloc.*=`, `bench=`), `poweroff`, and by default the shell.
pub fn run_init() -> ! {
    let args = setup::machine().bootargs();
    let mut words = args.split_ascii_whitespace();
    if let Some(filter) = words.clone().find_map(|w| {
        if w == "ktest" {
            Some("")
        } else {
            w.strip_prefix("ktest=")
        }
    }) {
        let failed = crate::ktest::run_all(filter);
        crate::ktest::exit_with_result(failed);
    }
    crate::bench::run_from_cmdline(args);
    if words.any(|w| w == "poweroff") {
        crate::kernel::reboot::machine_power_off();
    }
    crate::shell::run()
}
