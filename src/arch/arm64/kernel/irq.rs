// SPDX-License-Identifier: GPL-2.0-only
//! IRQ masking and the root interrupt handler (Linux:
//! arch/arm64/include/asm/irqflags.h, arch/arm64/kernel/irq.c). The
//! interrupt controller driver (drivers/irqchip) sits above arch code, so
//! as in Linux it registers itself here: `set_handle_irq` for the root
//! handler entry.S's IRQ vector reaches, `set_smp_cross_call` for sending
//! IPIs, `set_starting_cpu` for a secondary's CPU-interface setup.

use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
use core::sync::atomic::{AtomicUsize, Ordering};

/// DAIF.I: IRQs masked.
const DAIF_I: u64 = 1 << 7;

/// Mask IRQs on this CPU and return the previous DAIF (Linux:
/// arch_local_irq_save).
#[inline(always)]
pub fn local_irq_save() -> u64 {
    let flags: u64;
    // SAFETY: reading DAIF and masking IRQs only delays interrupts. Not
    // `nomem`: the compiler must not move memory accesses across it.
    unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #2", out(reg) flags, options(nostack, preserves_flags)) };
    flags
}

/// Restore the DAIF that [`local_irq_save`] returned.
#[inline(always)]
pub fn local_irq_restore(flags: u64) {
    // SAFETY: restores a mask state this CPU had; a pending IRQ that it
    // unmasks has a handler (entry.S's vectors).
    unsafe { core::arch::asm!("msr daif, {}", in(reg) flags, options(nostack, preserves_flags)) };
}

/// Unmask IRQs (Linux: arch_local_irq_enable).
#[inline(always)]
pub fn local_irq_enable() {
    // SAFETY: the vectors are installed before any caller runs.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Mask IRQs (Linux: arch_local_irq_disable).
#[inline(always)]
pub fn local_irq_disable() {
    // SAFETY: masking only delays interrupts.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

pub fn irqs_disabled() -> bool {
    let daif: u64;
    // SAFETY: reading DAIF has no side effects.
    unsafe { core::arch::asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack, preserves_flags)) };
    daif & DAIF_I != 0
}

/// Linux's cpu_do_idle with its caller's protocol: called with IRQs
/// masked after the caller checked it has nothing to do; `wfi` wakes on a
/// pending interrupt even while it is masked, so one that arrived after the
/// check is not missed. IRQs are then unmasked for an instant to run its
/// handler, and are masked again on return.
pub fn cpu_do_idle() {
    // SAFETY: wfi only waits; the pending IRQ taken between daifclr and
    // daifset has a handler (the vectors), which saves and restores every
    // register (entry.S).
    unsafe {
        core::arch::asm!(
            "dsb sy",
            "wfi",
            "msr daifclr, #2",
            "isb",
            "msr daifset, #2",
            options(nostack)
        )
    };
}

/// [`cpu_do_idle`]'s first half, for an idle path that has work between
/// the wake-up and the handler (RCU's `default_idle_call` leaves its
/// extended quiescent state there): wait for an interrupt, IRQs masked.
pub fn arch_cpu_idle_wfi() {
    // SAFETY: wfi only waits; IRQs stay masked, so no handler runs here.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack)) };
}

/// [`cpu_do_idle`]'s second half: unmask IRQs for an instant so that a
/// pending one is handled, then mask them again.
pub fn handle_pending_irqs() {
    // SAFETY: as cpu_do_idle: the pending IRQ taken between daifclr and
    // daifset has a handler, which saves and restores every register.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb", "msr daifset, #2", options(nostack)) };
}

/// The root IRQ handler (Linux: handle_arch_irq), 0 until an irqchip sets it.
static HANDLE_ARCH_IRQ: AtomicUsize = AtomicUsize::new(0);
/// Send IPI `ipi` to the logical CPUs in `mask` (Linux: __smp_cross_call).
static SMP_CROSS_CALL: AtomicUsize = AtomicUsize::new(0);
/// Per-CPU interrupt controller setup a secondary runs as it comes up.
static STARTING_CPU: AtomicUsize = AtomicUsize::new(0);

pub fn set_handle_irq(f: fn()) {
    HANDLE_ARCH_IRQ.store(f as usize, Ordering::Release);
}

pub fn set_smp_cross_call(f: fn(u64, u32)) {
    SMP_CROSS_CALL.store(f as usize, Ordering::Release);
}

pub fn set_starting_cpu(f: fn(usize)) {
    STARTING_CPU.store(f as usize, Ordering::Release);
}

/// Is an interrupt controller driving IRQs?
pub fn have_irqchip() -> bool {
    HANDLE_ARCH_IRQ.load(Ordering::Acquire) != 0
}

/// Called from the IRQ vector; false if no irqchip is registered (the
/// caller then treats the IRQ as unexpected).
pub fn handle_arch_irq() -> bool {
    let f = HANDLE_ARCH_IRQ.load(Ordering::Acquire);
    if f == 0 {
        return false;
    }
    // SAFETY: only set_handle_irq stores here, from a `fn()`.
    let f: fn() = unsafe { core::mem::transmute(f) };
    crate::arch::kernel::percpu::this_cpu()
        .irq_count
        .fetch_add(1, Ordering::Relaxed);
    irq_enter();
    f();
    irq_exit();
    true
}

/// Interrupt handlers running on each CPU (Linux: the HARDIRQ bits of
/// preempt_count). IRQs are masked nearly everywhere here, so
/// `irqs_disabled()` cannot tell a handler from a thread; this can.
static HARDIRQ_COUNT: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// Entering an interrupt handler on this CPU (Linux: irq_enter).
#[inline]
pub fn irq_enter() {
    HARDIRQ_COUNT[smp_processor_id()].fetch_add(1, Ordering::Relaxed);
}

/// Leaving it (Linux: irq_exit).
#[inline]
pub fn irq_exit() {
    HARDIRQ_COUNT[smp_processor_id()].fetch_sub(1, Ordering::Relaxed);
}

/// Is this CPU running an interrupt handler (Linux: in_interrupt)? What
/// may not sleep or take a lock the interrupted code may hold (vfree defers
/// its work then).
#[inline]
pub fn in_interrupt() -> bool {
    in_interrupt_on(smp_processor_id())
}

/// [`in_interrupt`] for a caller that has `smp_processor_id()` at hand
/// (vfree's fast path reads it once).
#[inline(always)]
pub fn in_interrupt_on(cpu: usize) -> bool {
    HARDIRQ_COUNT[cpu].load(Ordering::Relaxed) != 0
}

/// Send `ipi` to the CPUs in `mask`; false without an irqchip.
pub fn smp_cross_call(mask: u64, ipi: u32) -> bool {
    let f = SMP_CROSS_CALL.load(Ordering::Acquire);
    if f == 0 {
        return false;
    }
    // SAFETY: only set_smp_cross_call stores here, from a `fn(u64, u32)`.
    let f: fn(u64, u32) = unsafe { core::mem::transmute(f) };
    f(mask, ipi);
    true
}

/// Run the irqchip's per-CPU setup on this (secondary) CPU.
pub fn starting_cpu(cpu: usize) {
    let f = STARTING_CPU.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: only set_starting_cpu stores here, from a `fn(usize)`.
        let f: fn(usize) = unsafe { core::mem::transmute(f) };
        f(cpu);
    }
}
