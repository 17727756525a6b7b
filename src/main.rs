//! vmkernel: a bare-metal AArch64 kernel for QEMU `virt` whose subject is
//! Linux 5.10's arm64 memory management.
//!
//! Boot flow (Linux names): `_start`/`primary_entry` in head.S set up the
//! early page tables and turn the MMU on, then [`start_kernel`] runs in the
//! upper half: early console, device tree, and whatever the command line asks
//! for (in-kernel tests, power-off, and by default the serial shell).
#![no_std]
#![no_main]

#[path = "arch/aarch64/mod.rs"]
pub mod arch;
pub mod bench;
pub mod drivers;
pub mod kmm;
pub mod ktest;
pub mod panic;
pub mod printk;
pub mod setup;
pub mod shell;

extern crate alloc;

use arch::{cpu, psci, semihosting};
use core::fmt;

/// QEMU virt's PL011, used as the boot console before the device tree is
/// read (Linux: `earlycon=pl011,0x9000000`). Reached through the early
/// identity map; the DT's address replaces it as soon as it is parsed.
pub const EARLYCON_PL011_PHYS: usize = 0x0900_0000;

unsafe extern "C" {
    static init_stack: u8;
    static init_stack_top: u8;
}

/// Bounds of the boot stack (the only stack), for backtraces.
pub fn stack_bounds() -> (u64, u64) {
    // SAFETY: linker/asm symbols; only their addresses are taken.
    unsafe { (&init_stack as *const u8 as u64, &init_stack_top as *const u8 as u64) }
}

/// The first Rust code, entered from head.S with the MMU on, running at the
/// kernel's link address. Arguments: the loader's x0 (FDT physical address),
/// the exception level we were entered at, and the image's physical base.
#[unsafe(no_mangle)]
pub extern "C" fn start_kernel(fdt_pa: usize, boot_el: u64, phys_text: usize) -> ! {
    // SAFETY: GiB 0 is identity-mapped as device memory by head.S.
    unsafe { printk::console_init(EARLYCON_PL011_PHYS) };
    semihosting::probe();
    // Asynchronous aborts (SError) are reported from here on, as Linux
    // unmasks them early; IRQ and FIQ stay masked (everything is polled).
    // SAFETY: the vectors are installed (head.S), so an SError has a handler.
    unsafe { core::arch::asm!("msr daifclr, #4", options(nomem, nostack)) };
    kmm::heap::heap_init();
    setup::setup_arch(fdt_pa, boot_el, phys_text);
    setup::run_init()
}

/// Stop after a failed test run (not a panic: see [`panic`]): leave QEMU
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

/// Linux's `panic()` for fatal conditions outside Rust panics.
pub fn panic_fatal(msg: &str) -> ! {
    panic::panic(format_args!("{}", msg), None)
}

/// A clear one-line message and a clean stop, for bad boot input (no DT,
/// no memory, ...): nothing after this can work.
pub fn boot_fail(args: fmt::Arguments) -> ! {
    panic::panic(args, None)
}

#[panic_handler]
fn rust_panic(info: &core::panic::PanicInfo) -> ! {
    let fp: u64;
    // SAFETY: reading the frame pointer register.
    unsafe { core::arch::asm!("mov {}, x29", out(reg) fp) };
    match info.location() {
        Some(l) => panic::panic(
            format_args!("{} at {}:{}", info.message(), l.file(), l.line()),
            Some(fp),
        ),
        None => panic::panic(format_args!("{}", info.message()), Some(fp)),
    }
}
