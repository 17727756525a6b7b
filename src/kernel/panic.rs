// SPDX-License-Identifier: GPL-2.0-only
//! panic() and what happens after it (Linux: kernel/panic.c,
//! kernel/reboot.c's emergency_restart).
//!
//! Every fatal path ends here: Rust panics, an unrecoverable exception
//! ("Fatal exception"), bad boot input. The `panic=` boot argument means
//! what it means in Linux:
//!
//! | `panic=` | after the panic message |
//! | --- | --- |
//! | `0` | stay halted (Linux's default) |
//! | `N > 0` | "Rebooting in N seconds..", then reboot |
//! | `N < 0` | reboot at once |
//!
//! A reboot is PSCI SYSTEM_RESET, which QEMU started with `-no-reboot`
//! turns into an exit; the console says `reboot: Restarting system` first,
//! so a log tells a panic from a clean `reboot: Power down`.
//!
//! Without `panic=` on the command line, a kernel started with QEMU's
//! `-semihosting` (as every script of this project starts it) leaves QEMU
//! with exit status 1, so a test harness sees the failure whatever the PSCI
//! conduit; without semihosting it stays halted, as Linux does.
//!
//! The panic path cannot re-enter itself: a second panic, or an exception
//! taken while panicking (a PSCI conduit that traps, a console that faults),
//! prints one line and halts.

use crate::arch::kernel::{cpu, psci, semihosting, timer};
use crate::kernel::printk;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The `panic=` value; `PANIC_TIMEOUT_UNSET` until the command line sets it.
static PANIC_TIMEOUT: AtomicI64 = AtomicI64::new(PANIC_TIMEOUT_UNSET);
const PANIC_TIMEOUT_UNSET: i64 = i64::MIN;
/// Set by the first panic; anything fatal after it only halts.
static PANICKING: AtomicBool = AtomicBool::new(false);
/// Set by the first nested failure: a third one halts without a word.
static NESTED: AtomicBool = AtomicBool::new(false);

/// Linux's `panic()` for fatal conditions outside Rust panics.
pub fn panic_fatal(msg: &str) -> ! {
    panic(format_args!("{}", msg), None)
}

/// A clear one-line message and a clean stop, for bad boot input (no DT,
/// no memory, ...): nothing after this can work.
pub fn boot_fail(args: fmt::Arguments) -> ! {
    panic(args, None)
}

/// Rust's panics (a failed `expect`, an overflow in a debug build) are
/// kernel panics, with the location and a call trace.
#[cfg(not(test))]
#[panic_handler]
fn rust_panic(info: &core::panic::PanicInfo) -> ! {
    let fp: u64;
    // Raw asm, not aarch64-cpu's FP.get(): that is only #[inline], so in
    // the opt-level=0 debugging build it runs out of line and would return
    // its own (already popped) frame record instead of this one.
    // SAFETY: copying x29 into another register reads no memory and changes
    // no state; the value is only walked later by the bounds-checked
    // unwinder.
    unsafe { core::arch::asm!("mov {}, x29", out(reg) fp) };
    match info.location() {
        Some(l) => panic(
            format_args!("{} at {}:{}", info.message(), l.file(), l.line()),
            Some(fp),
        ),
        None => panic(format_args!("{}", info.message()), Some(fp)),
    }
}

/// `panic=N` from the boot command line.
pub fn set_panic_timeout(secs: i64) {
    PANIC_TIMEOUT.store(secs, Ordering::Relaxed);
}

/// The `panic=` value in force, if the command line gave one.
pub fn panic_timeout() -> Option<i64> {
    match PANIC_TIMEOUT.load(Ordering::Relaxed) {
        PANIC_TIMEOUT_UNSET => None,
        t => Some(t),
    }
}

/// True once panic() has started: the exception handler then halts
/// instead of printing a second oops.
pub fn in_panic() -> bool {
    PANICKING.load(Ordering::Relaxed)
}

/// Linux's `panic()`: print why, optionally a call trace, then stop as
/// `panic=` says.
pub fn panic(args: fmt::Arguments, backtrace_fp: Option<u64>) -> ! {
    if PANICKING.swap(true, Ordering::SeqCst) {
        nested_halt(format_args!("panic during panic: {}", args));
    }
    // If this CPU held the console, that holder is not coming back.
    // SAFETY: force_unlock breaks the lock only if this CPU holds it, and
    // then the holder is an outer frame of ours (e.g. a panic inside
    // printk) that panic() never returns to: force_unlock's contract. A torn
    // line beats a deadlock here.
    unsafe { printk::force_unlock() };
    crate::pr_emerg!("Kernel panic - not syncing: {}", args);
    if let Some(fp) = backtrace_fp {
        let mut w = printk::LogWriter;
        let _ = fmt::Write::write_str(&mut w, "Call trace:\n");
        let _ = crate::arch::kernel::stacktrace::backtrace_from(&mut w, fp);
    }
    after_panic(args)
}

/// An exception (or a second panic) while panicking: one line, then halt.
/// Nothing here may fault or call PSCI again.
pub fn nested_halt(args: fmt::Arguments) -> ! {
    if NESTED.swap(true, Ordering::SeqCst) {
        // Printing the one line faulted too.
        cpu::halt()
    }
    // SAFETY: as in panic(): this never returns either, so the first
    // panic's console user, an outer frame, never runs again.
    unsafe { printk::force_unlock() };
    crate::pr_emerg!("{}; halting", args);
    cpu::halt()
}

fn after_panic(args: fmt::Arguments) -> ! {
    match panic_timeout() {
        None if semihosting::available() => {
            // The project's scripts: QEMU's exit status carries the failure.
            semihosting::exit(1);
            end_halted(args)
        }
        None | Some(0) => end_halted(args),
        Some(t) => {
            if t > 0 {
                crate::pr_emerg!("Rebooting in {} seconds..", t);
                delay_seconds(t as u64);
            }
            emergency_restart()
        }
    }
}

fn end_halted(args: fmt::Arguments) -> ! {
    crate::pr_emerg!("---[ end Kernel panic - not syncing: {} ]---", args);
    cpu::halt()
}

/// Reboot now, from a state nothing else can be trusted in.
pub fn emergency_restart() -> ! {
    crate::pr_emerg!("reboot: Restarting system");
    psci::system_reset();
    crate::pr_emerg!(
        "reboot: PSCI SYSTEM_RESET unavailable (conduit {}); halting",
        psci::conduit_name()
    );
    semihosting::exit(1);
    cpu::halt()
}

/// Busy-wait on the generic counter (interrupts are off; Linux's panic
/// path spins in mdelay too).
fn delay_seconds(secs: u64) {
    let end = timer::get_cycles().saturating_add(secs.saturating_mul(timer::frequency()));
    while timer::get_cycles() < end {
        core::hint::spin_loop();
    }
}
