// SPDX-License-Identifier: GPL-2.0-only
//! Per-CPU data (Linux: arch/arm64/include/asm/percpu.h, the per-cpu
//! offset in TPIDR_EL1). Linux copies a per-CPU section once per CPU and
//! keeps `__per_cpu_offset[cpu]` in TPIDR_EL1; here the static per-CPU
//! variables are the fields of one struct, `PerCpu`, at offset 0 of each
//! CPU's unit of the per-CPU first chunk (mm/percpu.rs), and TPIDR_EL1
//! holds this CPU's `__per_cpu_offset`, i.e. the address of its `PerCpu`.
//!
//! Before `setup_per_cpu_areas` builds the first chunk, every CPU's data is
//! its slot of the static [`__per_cpu_area`] (Linux's boot CPU runs on the
//! per-CPU section's original copy the same way). head.S points TPIDR_EL1
//! at CPU 0's slot before the first exception can be taken, because the
//! vector entry reads the stack bounds from it (entry.S); a secondary gets
//! its unit's address from `secondary_data` in `__secondary_switched`.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Most CPUs this kernel brings up (Linux: CONFIG_NR_CPUS). QEMU virt's
/// GICv2 stops at 8; more CPUs in the device tree are reported and skipped.
pub const NR_CPUS: usize = 8;

/// One CPU's data. The first fields are read by entry.S and head.S at the
/// offsets exported below, so the layout is fixed (`repr(C)`).
#[repr(C, align(64))]
pub struct PerCpu {
    /// Logical CPU id (Linux: smp_processor_id()).
    pub cpu: AtomicUsize,
    /// Lowest valid SP of this CPU's kernel stack: an exception that finds
    /// SP below it after taking its frame ran into the guard page (entry.S).
    pub stack_low: AtomicUsize,
    /// One past the stack's top (backtraces stop there).
    pub stack_high: AtomicUsize,
    /// Where entry.S moves SP when the kernel stack overflowed.
    pub overflow_stack_top: AtomicUsize,
    /// This CPU's MPIDR_EL1 affinity (Linux: cpu_logical_map(cpu)).
    pub mpidr: AtomicU64,
    /// A cross-call to run: `fn(info)` as usize, 0 when none is pending.
    pub call_func: AtomicUsize,
    pub call_info: AtomicUsize,
    /// Interrupts taken on this CPU, and IPIs among them.
    pub irq_count: AtomicU64,
    pub ipi_count: AtomicU64,
    /// Asked to power itself off (`cpu off N`): the idle loop does it.
    pub die: AtomicBool,
    /// Long-running work for the idle loop (`run_on_cpus`): the address of
    /// a `&(dyn Fn(usize) + Sync)` on the requester's stack, 0 when none.
    /// The CPU clears it when the work returned.
    pub work: AtomicUsize,
    /// Who queued `work`: the CPU to wake (IPI_WAKEUP) once it is done.
    pub work_from: AtomicUsize,
}

impl PerCpu {
    const fn new(cpu: usize) -> Self {
        Self {
            cpu: AtomicUsize::new(cpu),
            stack_low: AtomicUsize::new(0),
            stack_high: AtomicUsize::new(0),
            overflow_stack_top: AtomicUsize::new(0),
            mpidr: AtomicU64::new(0),
            call_func: AtomicUsize::new(0),
            call_info: AtomicUsize::new(0),
            irq_count: AtomicU64::new(0),
            ipi_count: AtomicU64::new(0),
            die: AtomicBool::new(false),
            work: AtomicUsize::new(0),
            work_from: AtomicUsize::new(0),
        }
    }
}

/// Offsets of the fields head.S and entry.S use.
pub const PCPU_CPU: usize = core::mem::offset_of!(PerCpu, cpu);
pub const PCPU_STACK_LOW: usize = core::mem::offset_of!(PerCpu, stack_low);
pub const PCPU_STACK_HIGH: usize = core::mem::offset_of!(PerCpu, stack_high);
pub const PCPU_OVERFLOW_STACK_TOP: usize = core::mem::offset_of!(PerCpu, overflow_stack_top);

/// Every possible CPU's slot, indexed by the logical id.
#[unsafe(no_mangle)]
pub static __per_cpu_area: [PerCpu; NR_CPUS] = {
    let mut a = [const { PerCpu::new(0) }; NR_CPUS];
    let mut i = 0;
    while i < NR_CPUS {
        a[i] = PerCpu::new(i);
        i += 1;
    }
    a
};

/// Each CPU's unit in the first chunk, i.e. its `PerCpu` (Linux:
/// `__per_cpu_offset[]`); 0 until setup_per_cpu_areas: the static slot.
#[unsafe(no_mangle)]
static __per_cpu_offset: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// Linux's per_cpu_offset(cpu): what `per_cpu_ptr` adds to a `__percpu`
/// pointer for CPU `cpu`.
#[inline]
pub fn per_cpu_offset(cpu: usize) -> usize {
    __per_cpu_offset[cpu].load(Ordering::Relaxed)
}

/// Record CPU `cpu`'s unit (setup_per_cpu_areas, once, before the CPU is
/// started and with its static slot copied there).
pub fn set_per_cpu_offset(cpu: usize, unit: usize) {
    __per_cpu_offset[cpu].store(unit, Ordering::Release);
}

/// Linux's set_my_cpu_offset: point this CPU's TPIDR_EL1 at `unit`.
///
/// # Safety
///
/// `unit` holds a `PerCpu` for this CPU that lives for the rest of the
/// kernel, with the values of the one TPIDR_EL1 pointed at so far (the
/// entry code and every `this_cpu()` read it from then on), and IRQs are
/// masked while the copy and the switch happen.
pub unsafe fn set_my_cpu_offset(unit: usize) {
    // SAFETY: per the contract, `unit` is a valid PerCpu for this CPU.
    unsafe { core::arch::asm!("msr tpidr_el1, {}", in(reg) unit, options(nostack, preserves_flags)) };
}

/// This CPU's slot (Linux: this_cpu_ptr()).
pub fn this_cpu() -> &'static PerCpu {
    let p: usize;
    // SAFETY: reading TPIDR_EL1 has no side effects.
    unsafe { core::arch::asm!("mrs {}, tpidr_el1", out(reg) p, options(nomem, nostack, preserves_flags)) };
    // SAFETY: head.S points TPIDR_EL1 at an element of __per_cpu_area
    // before any Rust code runs on a CPU, and nothing else writes it.
    unsafe { &*(p as *const PerCpu) }
}

/// The slot of logical CPU `cpu` (Linux: per_cpu_ptr()).
pub fn per_cpu(cpu: usize) -> &'static PerCpu {
    match per_cpu_offset(cpu) {
        0 => &__per_cpu_area[cpu],
        // SAFETY: a non-zero offset is the address of CPU `cpu`'s PerCpu in
        // the first chunk, which is never freed (set_per_cpu_offset).
        unit => unsafe { &*(unit as *const PerCpu) },
    }
}

/// Logical id of the running CPU (Linux: smp_processor_id()).
pub fn smp_processor_id() -> usize {
    this_cpu().cpu.load(Ordering::Relaxed)
}

/// TPIDR_EL1 as read on this CPU (the per-CPU ktest compares it with the
/// slot's address).
pub fn tpidr_el1() -> usize {
    this_cpu() as *const PerCpu as usize
}
