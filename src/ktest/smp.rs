// SPDX-License-Identifier: GPL-2.0-only
//! Tests of the SMP foundation: per-CPU data, the IPI cross-call, the
//! secondaries' vmap'd stacks, and interrupts (the generic timer's PPI).
//! On a one-CPU machine the cases that need a second CPU skip.

use super::{Case, Suite, Test};
use crate::arch::kernel::percpu::{self, NR_CPUS};
use crate::arch::kernel::smp::{self, cpu_logical_map, cpu_online, num_online_cpus, read_cpuid_mpidr};
use crate::arch::kernel::{irq, timer, traps};
use crate::drivers::irqchip;
use crate::kernel::smp::{THREAD_ALIGN, THREAD_SIZE};
use crate::{kassert, kassert_eq, kskip_unless};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub static SUITE: Suite = Suite {
    name: "smp",
    cases: &[
        Case {
            name: "every_dt_cpu_is_online",
            run: every_dt_cpu_is_online,
        },
        Case {
            name: "percpu_tpidr_points_at_own_slot",
            run: percpu_tpidr_points_at_own_slot,
        },
        Case {
            name: "cross_call_every_cpu_answers",
            run: cross_call_every_cpu_answers,
        },
        Case {
            name: "secondary_stacks_are_vmapped_with_guard",
            run: secondary_stacks_are_vmapped_with_guard,
        },
        Case {
            name: "secondary_stack_overflow_is_caught",
            run: secondary_stack_overflow_is_caught,
        },
        Case {
            name: "timer_ppi_interrupt_arrives",
            run: timer_ppi_interrupt_arrives,
        },
    ],
};

fn every_dt_cpu_is_online(t: &mut Test) {
    let dt = crate::arch::kernel::setup::machine().cpus().len().min(NR_CPUS);
    kassert_eq!(t, num_online_cpus(), dt.max(1));
    kassert_eq!(t, cpu_logical_map(0), read_cpuid_mpidr());
}

/// What each CPU recorded: (TPIDR_EL1, smp_processor_id(), MPIDR) + 1, so
/// 0 means "did not answer".
static SEEN_TPIDR: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];
static SEEN_ID: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];
static SEEN_MPIDR: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// Runs on the target CPU, in its IPI handler. `slot` is the logical id
/// the caller addressed: the answer goes there, whatever the CPU thinks.
fn record_self(slot: usize) {
    SEEN_TPIDR[slot].store(percpu::tpidr_el1() + 1, Ordering::Relaxed);
    SEEN_ID[slot].store(percpu::smp_processor_id() + 1, Ordering::Relaxed);
    SEEN_MPIDR[slot].store(read_cpuid_mpidr() + 1, Ordering::Relaxed);
}

fn clear_seen() {
    for i in 0..NR_CPUS {
        SEEN_TPIDR[i].store(0, Ordering::Relaxed);
        SEEN_ID[i].store(0, Ordering::Relaxed);
        SEEN_MPIDR[i].store(0, Ordering::Relaxed);
    }
}

fn percpu_tpidr_points_at_own_slot(t: &mut Test) {
    clear_seen();
    for cpu in (0..NR_CPUS).filter(|&c| cpu_online(c)) {
        let r = smp::smp_call_function_single(cpu, record_self, cpu);
        kassert!(t, r.is_ok(), "CPU{}: cross-call failed: {:?}", cpu, r);
        let want = percpu::per_cpu(cpu) as *const percpu::PerCpu as usize;
        kassert_eq!(t, SEEN_TPIDR[cpu].load(Ordering::Relaxed), want + 1);
        kassert_eq!(t, SEEN_ID[cpu].load(Ordering::Relaxed), cpu + 1);
    }
    // Distinct slots: no two CPUs share one.
    let seen: [usize; NR_CPUS] = core::array::from_fn(|i| SEEN_TPIDR[i].load(Ordering::Relaxed));
    for (a, &x) in seen.iter().enumerate() {
        for (b, &y) in seen.iter().enumerate().skip(a + 1) {
            kassert!(
                t,
                x == 0 || x != y,
                "CPU{} and CPU{} share TPIDR_EL1 {:#x}",
                a,
                b,
                x - 1
            );
        }
    }
}

fn cross_call_every_cpu_answers(t: &mut Test) {
    kskip_unless!(t, num_online_cpus() > 1, "needs a second CPU online (-smp 2 or more)");
    clear_seen();
    let before: u64 = (0..NR_CPUS)
        .map(|c| percpu::per_cpu(c).ipi_count.load(Ordering::Relaxed))
        .sum();
    // smp_call_function addresses every other CPU with its own id as info.
    let failed = {
        let mut failed = 0u64;
        for cpu in (1..NR_CPUS).filter(|&c| cpu_online(c)) {
            if smp::smp_call_function_single(cpu, record_self, cpu).is_err() {
                failed |= 1 << cpu;
            }
        }
        failed
    };
    kassert!(t, failed == 0, "CPUs that did not answer (bit mask): {:#x}", failed);
    for cpu in (1..NR_CPUS).filter(|&c| cpu_online(c)) {
        kassert_eq!(t, SEEN_MPIDR[cpu].load(Ordering::Relaxed), cpu_logical_map(cpu) + 1);
        kassert_eq!(t, SEEN_ID[cpu].load(Ordering::Relaxed), cpu + 1);
    }
    let after: u64 = (0..NR_CPUS)
        .map(|c| percpu::per_cpu(c).ipi_count.load(Ordering::Relaxed))
        .sum();
    kassert!(
        t,
        after - before >= (num_online_cpus() - 1) as u64,
        "IPIs counted: {}",
        after - before
    );
    // A CPU that is not online is refused, not waited for.
    if let Some(off) = (1..NR_CPUS).find(|&c| !cpu_online(c)) {
        let r = smp::smp_call_function_single(off, record_self, off);
        kassert_eq!(t, r, Err(smp::SmpError::NotOnline));
    }
}

fn secondary_stacks_are_vmapped_with_guard(t: &mut Test) {
    kskip_unless!(t, num_online_cpus() > 1, "needs a second CPU online (-smp 2 or more)");
    for cpu in (1..NR_CPUS).filter(|&c| cpu_online(c)) {
        let pc = percpu::per_cpu(cpu);
        let (lo, hi) = (
            pc.stack_low.load(Ordering::Relaxed),
            pc.stack_high.load(Ordering::Relaxed),
        );
        kassert!(
            t,
            crate::arch::memory::is_vmalloc_addr(lo),
            "CPU{} stack {:#x} not in vmalloc",
            cpu,
            lo
        );
        kassert_eq!(t, hi - lo, THREAD_SIZE);
        kassert!(
            t,
            lo.is_multiple_of(THREAD_ALIGN),
            "CPU{} stack {:#x} not THREAD_ALIGN-aligned",
            cpu,
            lo
        );
        // SAFETY: a read of the guard page below the stack: it must fault,
        // and the fault is caught.
        let r = traps::catch_fault_quiet(|| unsafe { core::ptr::read_volatile((lo - 8) as *const u64) });
        kassert!(t, r.is_err(), "CPU{}: the page below its stack is mapped", cpu);
    }
}

/// What the overflow on the secondary looked like: (FAR + 1, ESR + 1,
/// "Kernel stack overflow" logged, the stack works again afterwards).
static OVF_FAR: AtomicUsize = AtomicUsize::new(0);
static OVF_ESR: AtomicU64 = AtomicU64::new(0);
static OVF_SAID: AtomicUsize = AtomicUsize::new(0);
static OVF_AFTER: AtomicUsize = AtomicUsize::new(0);

/// Runs on the secondary, in its IPI handler, on its 16 KiB vmap'd stack.
fn overflow_here(_: usize) {
    let before = crate::kernel::printk::log_len();
    let r = traps::catch_fault(|| super::mm::eat_stack(100_000));
    let said = crate::kernel::printk::log_contains_since(before, "Kernel stack overflow");
    if let Err(f) = r {
        OVF_FAR.store(f.far as usize + 1, Ordering::Relaxed);
        OVF_ESR.store(f.esr + 1, Ordering::Relaxed);
    }
    OVF_SAID.store(said as usize, Ordering::Relaxed);
    OVF_AFTER.store(super::mm::eat_stack(4), Ordering::Relaxed);
}

fn secondary_stack_overflow_is_caught(t: &mut Test) {
    kskip_unless!(t, num_online_cpus() > 1, "needs a second CPU online (-smp 2 or more)");
    let cpu = (1..NR_CPUS).find(|&c| cpu_online(c)).unwrap_or(1);
    for a in [&OVF_FAR, &OVF_SAID, &OVF_AFTER] {
        a.store(0, Ordering::Relaxed);
    }
    OVF_ESR.store(0, Ordering::Relaxed);
    let r = smp::smp_call_function_single(cpu, overflow_here, 0);
    kassert!(t, r.is_ok(), "CPU{}: cross-call failed: {:?}", cpu, r);
    let lo = percpu::per_cpu(cpu).stack_low.load(Ordering::Relaxed);
    let far = OVF_FAR.load(Ordering::Relaxed);
    kassert!(t, far != 0, "CPU{}: 100 MiB of recursion did not fault", cpu);
    let far = far - 1;
    kassert!(
        t,
        lo - crate::arch::memory::PAGE_SIZE <= far && far < lo,
        "CPU{}: fault at {:#x}, not in the guard page below its stack {:#x}",
        cpu,
        far,
        lo
    );
    kassert_eq!(t, (OVF_ESR.load(Ordering::Relaxed) - 1) >> 26, traps::EC_DABT_CUR);
    kassert!(
        t,
        OVF_SAID.load(Ordering::Relaxed) == 1,
        "CPU{}: no 'Kernel stack overflow' report",
        cpu
    );
    // 4 + 3 + 2 + 1: the stack works again on that CPU.
    kassert_eq!(t, OVF_AFTER.load(Ordering::Relaxed), 10);
}

static TIMER_IRQS: AtomicUsize = AtomicUsize::new(0);
/// The counter when the handler ran (CNTPCT_EL0).
static TIMER_IRQ_AT: AtomicU64 = AtomicU64::new(0);

/// The PPI handler: count, note when, and stop the timer (its line is level).
fn timer_irq() {
    TIMER_IRQ_AT.store(timer::get_cycles(), Ordering::Relaxed);
    TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: CNTP_CTL_EL0.IMASK: masks this CPU's timer output.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", "isb", in(reg) 2u64, options(nostack)) };
}

fn timer_ppi_interrupt_arrives(t: &mut Test) {
    kskip_unless!(t, irq::have_irqchip(), "no interrupt controller");
    TIMER_IRQS.store(0, Ordering::Relaxed);
    let r = irqchip::request_irq(irqchip::ARCH_TIMER_PHYS_PPI, timer_irq);
    kassert!(t, r.is_ok(), "request_irq: {:?}", r);
    // Due 1 ms from now, as an absolute compare value: the architecture
    // raises the timer's interrupt only once CNTPCT_EL0 >= CNTP_CVAL_EL0,
    // so the handler's own counter reading can be checked against it
    // whatever the host's scheduling does to the wait.
    let due = timer::get_cycles() + (timer::frequency() / 1000).max(1);
    // SAFETY: the EL1 physical timer is ours (head.S opens it at EL2):
    // fire once at `due`, interrupt unmasked.
    unsafe {
        core::arch::asm!("msr cntp_cval_el0, {}", "msr cntp_ctl_el0, {}", "isb", in(reg) due, in(reg) 1u64, options(nostack))
    };
    let limit = due + timer::frequency(); // give up 1 s after it was due
    let flags = irq::local_irq_save();
    while TIMER_IRQS.load(Ordering::Relaxed) == 0 && timer::get_cycles() < limit {
        irq::cpu_do_idle();
    }
    irq::local_irq_restore(flags);
    // SAFETY: timer off.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, xzr", "isb", options(nostack)) };
    irqchip::free_irq(irqchip::ARCH_TIMER_PHYS_PPI);
    let n = TIMER_IRQS.load(Ordering::Relaxed);
    kassert!(t, n == 1, "{} timer PPI(s) within 1 s of the compare value, want 1", n);
    let at = TIMER_IRQ_AT.load(Ordering::Relaxed);
    kassert!(
        t,
        at >= due,
        "the handler ran at counter {:#x}, {} ticks before the compare value {:#x}",
        at,
        due - at,
        due
    );
}
