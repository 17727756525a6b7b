// SPDX-License-Identifier: GPL-2.0-only
//! Exception handling (Linux: arch/arm64/kernel/traps.c, mm/fault.c): every
//! exception taken at EL1 lands in [`el1_exception`], which prints an oops
//! decoding ESR_EL1, FAR_EL1, the registers and a frame-pointer backtrace.
//!
//! Faults can be *expected*: [`catch_fault`] runs a closure and, if it
//! faults, prints the oops and returns the fault instead of dying. The
//! in-kernel tests use it to check that W^X and guard pages really fault,
//! and the shell uses it so a bad `peek` does not take the kernel down.

use super::percpu::NR_CPUS;
use crate::kernel::locking::spinlock::SpinLock;
use crate::kernel::printk;
use aarch64_cpu::registers::{Readable, TPIDRRO_EL0};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// Saved register state; layout fixed by entry.S.
#[repr(C)]
pub struct PtRegs {
    pub regs: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
    pub esr: u64,
    pub far: u64,
}

/// Which vector was taken (the `kind` passed by entry.S).
fn vector_name(kind: u64) -> &'static str {
    match kind {
        0 => "Synchronous",
        1 => "IRQ",
        2 => "FIQ",
        3 => "SError",
        0x10..=0x13 => "exception with SP_EL0 (bad mode)",
        0x20..=0x23 => "exception from lower EL, AArch64 (bad mode)",
        _ => "exception from lower EL, AArch32 (bad mode)",
    }
}

/// ESR_EL1.EC names, as Linux's esr_class_str.
pub fn esr_class_str(ec: u64) -> &'static str {
    match ec {
        0x00 => "Unknown/Uncategorized",
        0x01 => "WFI/WFE",
        0x07 => "SIMD/FP",
        0x0e => "PSTATE.IL",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "MSR/MRS (AArch64)",
        0x20 => "IABT (lower EL)",
        0x21 => "IABT (current EL)",
        0x22 => "PC Alignment",
        0x24 => "DABT (lower EL)",
        0x25 => "DABT (current EL)",
        0x26 => "SP Alignment",
        0x2c => "FP (AArch64)",
        0x2f => "SError",
        0x30 | 0x31 => "Breakpoint",
        0x32 | 0x33 => "Software Step",
        0x34 | 0x35 => "Watchpoint",
        0x3c => "BRK (AArch64)",
        _ => "UNRECOGNIZED EC",
    }
}

/// Fault status code (DFSC/IFSC) description, with the level it names.
pub fn fault_status_str(fsc: u64) -> (&'static str, Option<u64>) {
    let level = Some(fsc & 3);
    match fsc & 0x3f {
        0x00..=0x03 => ("address size fault", level),
        0x04..=0x07 => ("translation fault", level),
        0x09..=0x0b => ("access flag fault", level),
        0x0d..=0x0f => ("permission fault", level),
        0x10 => ("synchronous external abort", None),
        0x11 => ("synchronous tag check fault", None),
        0x14..=0x17 => ("synchronous external abort on table walk", level),
        0x18 => ("synchronous parity or ECC error", None),
        0x21 => ("alignment fault", None),
        0x30 => ("TLB conflict abort", None),
        0x31 => ("unsupported atomic hardware update fault", None),
        _ => ("unknown fault status", None),
    }
}

pub const EC_IABT_CUR: u64 = 0x21;
pub const EC_DABT_CUR: u64 = 0x25;

/// What a caught fault looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
    pub pc: u64,
}

impl Fault {
    pub fn ec(&self) -> u64 {
        self.esr >> 26
    }
    pub fn is_abort(&self) -> bool {
        matches!(self.ec(), EC_IABT_CUR | EC_DABT_CUR | 0x20 | 0x24)
    }
    /// (fault status description, level)
    pub fn status(&self) -> (&'static str, Option<u64>) {
        fault_status_str(self.esr & 0x3f)
    }
    pub fn is_write(&self) -> bool {
        self.ec() == EC_DABT_CUR && self.esr & (1 << 6) != 0
    }
}

/// Callee-saved state for `call_with_fault_recovery` (layout in entry.S).
#[repr(C)]
struct FaultJmp {
    regs: [u64; 21],
}

unsafe extern "C" {
    fn call_with_fault_recovery(f: extern "C" fn(*mut u8), arg: *mut u8, buf: *mut FaultJmp) -> u64;
    fn fault_recover(buf: *mut FaultJmp) -> !;
}

/// Each CPU's innermost active recovery point, if any: per CPU, because a
/// recovery point lives on the stack of the CPU that set it.
static RECOVERY: [AtomicPtr<FaultJmp>; NR_CPUS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; NR_CPUS];
static RECOVERY_QUIET: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];
static LAST_FAULT: [SpinLock<Option<Fault>>; NR_CPUS] = [const { SpinLock::new(None) }; NR_CPUS];

/// This CPU's index into the recovery arrays.
fn cpu() -> usize {
    super::percpu::smp_processor_id()
}
/// Oopses printed so far (the `[#N]` of Linux's "Internal error").
static OOPS_COUNT: AtomicUsize = AtomicUsize::new(0);

/// A hook that names what an address belongs to (vmalloc registers one so
/// an oops on a guard page names the area).
pub type AddrDescriber = fn(usize, &mut dyn Write) -> fmt::Result;
static ADDR_DESCRIBER: spin::Once<AddrDescriber> = spin::Once::new();

pub fn register_addr_describer(f: AddrDescriber) {
    ADDR_DESCRIBER.call_once(|| f);
}

fn run_catching<R, F: FnOnce() -> R>(f: F, quiet: bool) -> Result<R, Fault> {
    struct Ctx<F, R> {
        f: Option<F>,
        ret: Option<R>,
    }
    extern "C" fn tramp<F: FnOnce() -> R, R>(p: *mut u8) {
        // SAFETY: call_with_fault_recovery hands back the `arg` it was given:
        // the &mut Ctx<F, R> of run_catching below, live and not otherwise
        // borrowed for the duration of the call.
        let ctx = unsafe { &mut *(p as *mut Ctx<F, R>) };
        ctx.ret = Some((ctx.f.take().unwrap())());
    }
    let mut ctx = Ctx { f: Some(f), ret: None };
    let mut buf = FaultJmp { regs: [0; 21] };
    let outer = RECOVERY[cpu()].swap(&mut buf, Ordering::SeqCst);
    let outer_quiet = RECOVERY_QUIET[cpu()].swap(quiet, Ordering::SeqCst);
    // SAFETY: tramp::<F, R> casts its argument back to the very Ctx<F, R>
    // passed here; ctx and buf are locals that outlive the call, and this
    // CPU's RECOVERY slot points at buf only until the store right after it
    // returns.
    let faulted = unsafe { call_with_fault_recovery(tramp::<F, R>, &mut ctx as *mut Ctx<F, R> as *mut u8, &mut buf) };
    RECOVERY[cpu()].store(outer, Ordering::SeqCst);
    RECOVERY_QUIET[cpu()].store(outer_quiet, Ordering::SeqCst);
    if faulted != 0 {
        // The closure was abandoned mid-way: whatever it owned is leaked,
        // never dropped twice. Callers keep such closures allocation-free.
        core::mem::forget(ctx);
        let fault = LAST_FAULT[cpu()]
            .lock()
            .take()
            .expect("recovered without a recorded fault");
        return Err(fault);
    }
    Ok(ctx.ret.take().unwrap())
}

/// Run `f`; if it takes a synchronous exception, print the oops and return
/// the fault instead of panicking.
pub fn catch_fault<R, F: FnOnce() -> R>(f: F) -> Result<R, Fault> {
    run_catching(f, false)
}

/// As [`catch_fault`] but without the oops (for probing, e.g. semihosting).
pub fn catch_fault_quiet<R, F: FnOnce() -> R>(f: F) -> Result<R, Fault> {
    run_catching(f, true)
}

pub fn oops_count() -> usize {
    OOPS_COUNT.load(Ordering::Relaxed)
}

/// Entry from entry.S for every exception taken to EL1.
#[unsafe(no_mangle)]
extern "C" fn el1_exception(regs: &mut PtRegs, kind: u64) {
    // An IRQ from EL1 goes to the interrupt controller's handler; entry.S
    // saved everything it may clobber and returns to the interrupted code.
    if kind == 1 && super::irq::handle_arch_irq() {
        return;
    }
    let recovery = RECOVERY[cpu()].load(Ordering::SeqCst);
    // An exception while panicking (e.g. a PSCI conduit that traps) must
    // not start a second oops, whose panic would trap again.
    if recovery.is_null() && crate::kernel::panic::in_panic() {
        crate::kernel::panic::nested_halt(format_args!(
            "{} exception during panic: ESR {:#010x} ({}), FAR {:#x}, PC {:#x}",
            vector_name(kind),
            regs.esr,
            esr_class_str(regs.esr >> 26),
            regs.far,
            regs.pc
        ));
    }
    if kind == super::KIND_STACK_OVERFLOW {
        handle_bad_stack(regs, recovery);
    }
    // Only synchronous exceptions of the current EL are recoverable.
    if kind == 0 && !recovery.is_null() {
        *LAST_FAULT[cpu()].lock() = Some(Fault {
            esr: regs.esr,
            far: regs.far,
            pc: regs.pc,
        });
        if !RECOVERY_QUIET[cpu()].load(Ordering::SeqCst) {
            print_oops(regs, kind);
            crate::pr_warn!("Fault recovered by catch_fault(); continuing");
        }
        // SAFETY: recovery points at the live FaultJmp of run_catching,
        // whose frame is below us on this stack.
        unsafe { fault_recover(recovery) };
    }
    print_oops(regs, kind);
    crate::kernel::panic::panic_fatal("Fatal exception");
}

/// The kernel stack ran into its guard page; we are on the overflow stack
/// (Linux: handle_bad_stack). A fault under catch_fault is recovered (the
/// recovery point restores a good SP); otherwise this is fatal.
fn handle_bad_stack(regs: &mut PtRegs, recovery: *mut FaultJmp) -> ! {
    // entry.S left the faulting SP (minus the frame) in TPIDRRO_EL0.
    let bad_sp = TPIDRRO_EL0.get();
    regs.sp = bad_sp + core::mem::size_of::<PtRegs>() as u64;
    let (lo, hi) = crate::arch::kernel::stacktrace::stack_bounds();
    // SAFETY: as in print_oops: one CPU, and a holder of the console lock
    // (the code that overflowed) never resumes, or is abandoned if recovered.
    unsafe { printk::force_unlock() };
    crate::pr_emerg!("Insufficient stack space to handle exception!");
    crate::pr_emerg!(
        "Kernel stack overflow: sp {:#x}, stack [{:#x}-{:#x}), guard page [{:#x}-{:#x})",
        regs.sp,
        lo,
        hi,
        lo - 4096,
        lo
    );
    print_oops(regs, 0);
    if !recovery.is_null() {
        *LAST_FAULT[cpu()].lock() = Some(Fault {
            esr: regs.esr,
            far: regs.far,
            pc: regs.pc,
        });
        crate::pr_warn!("Fault recovered by catch_fault(); continuing");
        // SAFETY: as in el1_exception: the recovery point's frame is on the
        // (good part of the) kernel stack, below which we overflowed.
        unsafe { fault_recover(recovery) };
    }
    crate::kernel::panic::panic_fatal("kernel stack overflow")
}

fn print_oops(regs: &PtRegs, kind: u64) {
    let n = OOPS_COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    // The fault may have hit while this CPU held the console lock.
    // SAFETY: force_unlock breaks only this CPU's hold, and that holder
    // will never run again (or, when recovered, was abandoned).
    unsafe { printk::force_unlock() };
    let mut w = printk::LogWriter;
    let _ = write_oops(&mut w, regs, kind, n);
}

fn write_oops(w: &mut dyn Write, regs: &PtRegs, kind: u64, n: usize) -> fmt::Result {
    let esr = regs.esr;
    let ec = esr >> 26;
    let is_abort = kind == 0 && matches!(ec, EC_IABT_CUR | EC_DABT_CUR | 0x20 | 0x24);
    if kind != 0 {
        writeln!(
            w,
            "Bad mode in {} handler detected, code 0x{:08x} -- {}",
            vector_name(kind),
            esr,
            esr_class_str(ec)
        )?;
    } else if is_abort {
        let what = if regs.far < 4096 {
            "NULL pointer dereference"
        } else {
            "paging request"
        };
        writeln!(
            w,
            "Unable to handle kernel {} at virtual address {:016x}",
            what, regs.far
        )?;
    } else {
        writeln!(
            w,
            "Unexpected synchronous exception: {} at pc {:016x}",
            esr_class_str(ec),
            regs.pc
        )?;
    }
    writeln!(w, "{}", if is_abort { "Mem abort info:" } else { "Exception info:" })?;
    writeln!(w, "  ESR = 0x{:08x}", esr)?;
    writeln!(
        w,
        "  EC = 0x{:02x}: {}, IL = {} bits",
        ec,
        esr_class_str(ec),
        if esr & (1 << 25) != 0 { 32 } else { 16 }
    )?;
    if is_abort {
        let (status, level) = fault_status_str(esr & 0x3f);
        writeln!(w, "  SET = {}, FnV = {}", (esr >> 11) & 3, (esr >> 10) & 1)?;
        writeln!(w, "  EA = {}, S1PTW = {}", (esr >> 9) & 1, (esr >> 7) & 1)?;
        match level {
            Some(l) => writeln!(w, "  FSC = 0x{:02x}: level {} {}", esr & 0x3f, l, status)?,
            None => writeln!(w, "  FSC = 0x{:02x}: {}", esr & 0x3f, status)?,
        }
        if ec == EC_DABT_CUR || ec == 0x24 {
            writeln!(w, "Data abort info:")?;
            writeln!(w, "  ISV = {}, ISS = 0x{:08x}", (esr >> 24) & 1, esr & 0x1ff_ffff)?;
            writeln!(
                w,
                "  CM = {}, WnR = {} ({})",
                (esr >> 8) & 1,
                (esr >> 6) & 1,
                if esr & (1 << 6) != 0 { "write" } else { "read" }
            )?;
        }
        if let Some(describe) = ADDR_DESCRIBER.get() {
            describe(regs.far as usize, w)?;
        }
    }
    writeln!(w, "Internal error: Oops: {:08x} [#{}]", esr, n)?;
    writeln!(w, "pc : {:016x}", regs.pc)?;
    writeln!(w, "lr : {:016x}", regs.regs[30])?;
    writeln!(
        w,
        "sp : {:016x}  pstate : {:08x}  far : {:016x}",
        regs.sp, regs.pstate, regs.far
    )?;
    // x29..x0, three per line, highest first (as Linux's __show_regs).
    let mut i: isize = 29;
    while i >= 0 {
        for j in 0..3 {
            let r = i - j;
            if r < 0 {
                break;
            }
            write!(w, "x{:<2}: {:016x} ", r, regs.regs[r as usize])?;
        }
        writeln!(w)?;
        i -= 3;
    }
    writeln!(w, "Call trace:")?;
    writeln!(w, " {:016x} (pc)", regs.pc)?;
    super::stacktrace::backtrace_from(w, regs.regs[29])?;
    // The log, not the bare addresses: from a log symbolize.sh looks return
    // addresses up at their call (ADDR-4); a bare ADDR is taken as exact
    // and names the next function after a call that never returns.
    writeln!(w, "(symbolize: scripts/symbolize.sh < LOG, or paste this oops into it)")
}
