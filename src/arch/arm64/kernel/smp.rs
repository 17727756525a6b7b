// SPDX-License-Identifier: GPL-2.0-only
//! SMP on arm64 (Linux: arch/arm64/kernel/smp.c, psci.c's cpu_ops): the
//! logical CPU map, the secondaries' way in (`secondary_data`, then
//! [`secondary_start_kernel`] from head.S), their idle loop, IPIs and the
//! cross-call built on them, and CPU hot-unplug through PSCI CPU_OFF.
//!
//! Until mm is SMP-safe (the second half of this work), a secondary touches
//! no mm state once it is up: it prints its banner, sets up its GIC CPU
//! interface, then only idles in `wfi` and answers IPIs. Its stacks were
//! allocated for it by CPU 0 (kernel/smp.rs).

use crate::arch::kernel::percpu::{NR_CPUS, PerCpu, per_cpu, smp_processor_id, this_cpu};
use crate::arch::kernel::{cpu, irq, psci, setup, timer};
use crate::arch::memory::KIMAGE_VADDR;
use crate::drivers::of::fdt::MachineInfo;
use crate::kernel::locking::spinlock::SpinLock;
use crate::kernel::rcu::tree as rcu;
use crate::{pr_err, pr_info, pr_warn};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ReadWriteable, TCR_EL1, TTBR0_EL1, Writeable};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// IPI numbers = GIC SGI numbers (Linux: enum ipi_msg_type).
pub const IPI_CALL_FUNC: u32 = 1;
pub const IPI_CPU_STOP: u32 = 2;
/// Wake an idle CPU to look at its work slot (Linux's IPI_WAKEUP number;
/// the handler does nothing, leaving `wfi` is the point).
pub const IPI_WAKEUP: u32 = 6;
const _: () = assert!(IPI_WAKEUP == crate::kernel::rcu::tree::RCU_WAKEUP_IPI);

/// What head.S's `__secondary_switched` reads to find its per-CPU slot
/// (and through it its stack) (Linux: struct secondary_data).
#[repr(C)]
pub struct SecondaryData {
    percpu: AtomicUsize,
}
pub const SECONDARY_DATA_PERCPU: usize = core::mem::offset_of!(SecondaryData, percpu);

#[unsafe(no_mangle)]
pub static secondary_data: SecondaryData = SecondaryData {
    percpu: AtomicUsize::new(0),
};

/// Bit `cpu` set: the CPU is in the device tree and has a slot (possible),
/// is running and answering IPIs (online).
static CPU_POSSIBLE: AtomicU64 = AtomicU64::new(1);
static CPU_ONLINE: AtomicU64 = AtomicU64::new(1);
/// Logical CPUs the device tree listed (set_nr_cpu_ids).
static NR_CPU_IDS: AtomicUsize = AtomicUsize::new(1);

pub fn cpu_online(cpu: usize) -> bool {
    cpu < NR_CPUS && CPU_ONLINE.load(Ordering::Acquire) & (1 << cpu) != 0
}

pub fn cpu_possible(cpu: usize) -> bool {
    cpu < NR_CPUS && CPU_POSSIBLE.load(Ordering::Acquire) & (1 << cpu) != 0
}

/// The online CPUs as a bit mask (Linux: cpu_online_mask), as
/// `run_on_cpus` takes them.
pub fn cpu_online_mask() -> u64 {
    CPU_ONLINE.load(Ordering::Acquire)
}

pub fn num_online_cpus() -> usize {
    CPU_ONLINE.load(Ordering::Acquire).count_ones() as usize
}

pub fn nr_cpu_ids() -> usize {
    NR_CPU_IDS.load(Ordering::Relaxed)
}

/// MPIDR_EL1's affinity bits (Aff3 moved down next to Aff2, as in `reg`).
pub const MPIDR_HWID_MASK: u64 = 0xff_00ff_ffff;

pub fn read_cpuid_mpidr() -> u64 {
    cpu::mpidr() & MPIDR_HWID_MASK
}

/// The hardware id of logical CPU `cpu` (Linux: cpu_logical_map()).
pub fn cpu_logical_map(cpu: usize) -> u64 {
    per_cpu(cpu).mpidr.load(Ordering::Relaxed)
}

/// Record logical CPU `cpu` = MPIDR `mpidr` (Linux: smp_init_cpus, which
/// keeps the boot CPU at 0 and the others in device-tree order).
pub fn set_cpu_logical_map(cpu: usize, mpidr: u64) {
    per_cpu(cpu).mpidr.store(mpidr, Ordering::Relaxed);
    CPU_POSSIBLE.fetch_or(1 << cpu, Ordering::AcqRel);
    NR_CPU_IDS.fetch_max(cpu + 1, Ordering::Relaxed);
}

/// Linux's smp_init_cpus (called at the end of setup_arch there, right
/// after setup_arch here): the boot CPU is logical CPU 0, the device tree's
/// other CPUs get 1, 2, ... in tree order, up to NR_CPUS. This fixes the
/// possible CPUs, which setup_per_cpu_areas gives a unit each; smp_init
/// later brings them up in the same order.
pub fn smp_init_cpus(info: &MachineInfo) {
    let boot_mpidr = read_cpuid_mpidr();
    set_cpu_logical_map(0, boot_mpidr);
    let mut cpu = 1;
    for c in info.cpus().iter().filter(|c| c.mpidr != boot_mpidr) {
        if cpu >= NR_CPUS {
            pr_warn!(
                "smp: CPU with MPIDR {:#x}: NR_CPUS = {} reached; not brought up",
                c.mpidr,
                NR_CPUS
            );
            continue;
        }
        set_cpu_logical_map(cpu, c.mpidr);
        cpu += 1;
    }
}

/// The physical address of a symbol in the image (head.S's code runs
/// there with the MMU off).
fn pa_symbol(va: usize) -> u64 {
    (setup::boot_info().phys_text + (va - KIMAGE_VADDR)) as u64
}

unsafe extern "C" {
    fn secondary_entry();
}

/// Where a secondary starts, as a physical address.
pub fn secondary_entry_pa() -> u64 {
    pa_symbol(secondary_entry as *const () as usize)
}

/// Give `cpu` its stacks and point `secondary_data` at its slot, before
/// it is started. `stack` is [low, high); `overflow_top` the top of its
/// overflow stack.
pub fn prepare_secondary(cpu: usize, stack: (usize, usize), overflow_top: usize) {
    let pc: &PerCpu = per_cpu(cpu);
    pc.stack_low.store(stack.0, Ordering::Relaxed);
    pc.stack_high.store(stack.1, Ordering::Relaxed);
    pc.overflow_stack_top.store(overflow_top, Ordering::Relaxed);
    pc.die.store(false, Ordering::Relaxed);
    pc.call_func.store(0, Ordering::Relaxed);
    // Release: the secondary reads the fields after it reads this pointer.
    secondary_data
        .percpu
        .store(pc as *const PerCpu as usize, Ordering::Release);
}

/// PSCI return codes (PSCI spec, table 6) as Linux's psci_to_linux_errno.
pub fn psci_error_name(ret: i64) -> &'static str {
    match ret {
        -1 => "NOT_SUPPORTED",
        -2 => "INVALID_PARAMETERS",
        -3 => "DENIED",
        -4 => "ALREADY_ON",
        -5 => "ON_PENDING",
        -6 => "INTERNAL_FAILURE",
        -7 => "NOT_PRESENT",
        -8 => "DISABLED",
        -9 => "INVALID_ADDRESS",
        _ => "unknown error",
    }
}

/// PSCI CPU_ON for the CPU with hardware id `mpidr` (Linux:
/// cpu_psci_cpu_boot). Err carries the PSCI return code.
pub fn cpu_psci_cpu_boot(mpidr: u64) -> Result<(), i64> {
    match psci::cpu_on(mpidr, secondary_entry_pa(), 0) {
        None => Err(-1),
        Some(0) => Ok(()),
        Some(r) => Err(r),
    }
}

/// Wait up to `timeout_ms` for `cpu` to mark itself online (Linux:
/// wait_for_completion_timeout(&cpu_running, ...)).
pub fn wait_for_online(cpu: usize, timeout_ms: u64) -> bool {
    wait_until(timeout_ms, || cpu_online(cpu))
}

fn wait_until(timeout_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = timer::get_cycles();
    let ticks = timer::frequency() * timeout_ms / 1000;
    loop {
        if done() {
            return true;
        }
        if timer::get_cycles() - start > ticks {
            return done();
        }
        crate::arch::barrier::cpu_relax();
    }
}

/// The first Rust code on a secondary CPU, from head.S with the MMU on,
/// on its own stack, TPIDR_EL1 pointing at its slot (Linux:
/// secondary_start_kernel).
#[unsafe(no_mangle)]
pub extern "C" fn secondary_start_kernel(cpu: usize) -> ! {
    // No identity map any more, as on CPU 0 after paging_init: TTBR0 walks
    // off, so a NULL dereference faults here too. This code runs from the
    // upper half (TTBR1); nothing on this CPU uses TTBR0 after head.S's
    // MMU switch.
    TCR_EL1.modify(TCR_EL1::EPD0::DisableTTBR0Walks);
    barrier::isb(barrier::SY);
    TTBR0_EL1.set(0);
    barrier::isb(barrier::SY);
    // SAFETY: dropping this CPU's cached translations (the identity map's
    // among them) changes no memory; TTBR1's are refetched from swapper.
    unsafe { core::arch::asm!("tlbi vmalle1", options(nostack, preserves_flags)) };
    barrier::dsb(barrier::NSH);
    barrier::isb(barrier::SY);
    // SError reporting on, as on CPU 0 (start_kernel).
    // SAFETY: unmasking SError changes no memory; the vectors are installed
    // (head.S set VBAR_EL1 before branching here).
    unsafe { core::arch::asm!("msr daifclr, #4", options(nomem, nostack)) };
    let mpidr = read_cpuid_mpidr();
    irq::starting_cpu(cpu);
    pr_info!(
        "CPU{}: Booted secondary processor 0x{:010x} [0x{:08x}]",
        cpu,
        mpidr,
        cpu::midr()
    );
    rcu::rcu_cpu_starting(cpu);
    CPU_ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    cpu_idle_loop()
}

/// A secondary's idle (Linux: do_idle): sleep in `wfi` until an IPI, run
/// it, run queued work, and power off when asked to.
fn cpu_idle_loop() -> ! {
    let me = this_cpu();
    loop {
        irq::local_irq_disable();
        if me.die.load(Ordering::Acquire) {
            cpu_die();
        }
        let work = me.work.load(Ordering::Acquire);
        if work != 0 {
            // SAFETY: run_on_cpus stored the address of a live
            // `&(dyn Fn(usize) + Sync)` and keeps it alive until we clear
            // the slot below.
            let f = unsafe { *(work as *const &(dyn Fn(usize) + Sync)) };
            f(smp_processor_id());
            // The work item returned: as a kthread switching out.
            rcu::rcu_note_context_switch();
            let from = me.work_from.load(Ordering::Relaxed);
            me.work.store(0, Ordering::Release);
            // The requester sleeps in wfi until the last worker is done
            // (Linux: complete()).
            irq::smp_cross_call(1 << from, IPI_WAKEUP);
            continue;
        }
        // A slot filled after the check above still wakes us: its
        // IPI_WAKEUP is pending, and wfi returns on it even while masked.
        rcu::default_idle_call();
    }
}

/// One `run_on_cpus` at a time (one work slot per CPU).
static WORK_LOCK: SpinLock<()> = SpinLock::new(());

/// Run `f(cpu)` on every online CPU of `mask` at once, each from its idle
/// loop (as a thread, not in interrupt context, IRQs masked as everywhere
/// here), the calling CPU included if it is in the mask, and wait for all
/// of them however long they take. The stand-in for one kthread bound to
/// each CPU (Linux's test_vmalloc, the lock torture tests). Returns the
/// CPUs of `mask` that did not run it (offline, or no IPIs).
pub fn run_on_cpus(mask: u64, f: &(dyn Fn(usize) + Sync)) -> u64 {
    let me = smp_processor_id();
    let _g = WORK_LOCK.lock();
    let slot: &(dyn Fn(usize) + Sync) = f;
    let addr = &slot as *const &(dyn Fn(usize) + Sync) as usize;
    let mut started = 0u64;
    let mut failed = 0u64;
    for cpu in (0..NR_CPUS).filter(|&c| c != me && mask & (1 << c) != 0) {
        if !cpu_online(cpu) || !irq::have_irqchip() {
            failed |= 1 << cpu;
            continue;
        }
        per_cpu(cpu).work_from.store(me, Ordering::Relaxed);
        per_cpu(cpu).work.store(addr, Ordering::Release);
        started |= 1 << cpu;
    }
    if started != 0 {
        irq::smp_cross_call(started, IPI_WAKEUP);
    }
    if mask & (1 << me) != 0 {
        f(me);
    }
    // `slot` (and `f`) must outlive every reader: wait for each slot to
    // clear, or for its CPU to go offline (it then never read it). Asleep
    // in wfi, as Linux's wait_for_completion sleeps: each worker sends
    // IPI_WAKEUP when done, and a waiter that spun instead would take
    // time from the workers wherever CPUs share a core (QEMU's round-robin
    // vCPUs under -icount: every broadcast TLBI then waits for a spinning
    // CPU 0's whole time slice).
    let flags = irq::local_irq_save();
    for cpu in (0..NR_CPUS).filter(|&c| started & (1 << c) != 0) {
        while per_cpu(cpu).work.load(Ordering::Acquire) != 0 {
            if !cpu_online(cpu) {
                if per_cpu(cpu)
                    .work
                    .compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    failed |= 1 << cpu;
                }
                break;
            }
            // An IPI_WAKEUP sent after the check above is pending and
            // ends the wfi at once.
            rcu::default_idle_call();
        }
    }
    irq::local_irq_restore(flags);
    failed
}

/// Power this CPU off (Linux: cpu_die -> cpu_psci_cpu_die). Runs with IRQs
/// masked, after its IPI was acknowledged. Returns only if CPU_OFF failed,
/// in which case the CPU goes back online.
fn cpu_die() {
    let cpu = smp_processor_id();
    CPU_ONLINE.fetch_and(!(1 << cpu), Ordering::AcqRel);
    rcu::rcu_report_dead(cpu);
    this_cpu().die.store(false, Ordering::Release);
    let ret = psci::cpu_off();
    pr_err!("CPU{}: PSCI CPU_OFF returned {:?}; staying online", cpu, ret);
    rcu::rcu_cpu_starting(cpu);
    CPU_ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
}

/// Why a cross-call or hot-plug request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// No such logical CPU, or it is not online (not up, or powered off).
    NotOnline,
    /// The boot CPU stays (as Linux without CONFIG_BOOTPARAM_HOTPLUG_CPU0).
    BootCpu,
    /// No interrupt controller: IPIs cannot be sent.
    NoIrqchip,
    /// The CPU did not answer within the timeout.
    Timeout,
}

impl core::fmt::Display for SmpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotOnline => "CPU not online",
            Self::BootCpu => "the boot CPU cannot be taken offline",
            Self::NoIrqchip => "no interrupt controller, so no IPIs",
            Self::Timeout => "CPU did not answer within 1 s",
        })
    }
}

/// Serialises cross-calls (one call slot per target CPU).
static CALL_LOCK: SpinLock<()> = SpinLock::new(());

/// Run `func(info)` on `cpu` and wait for it to finish (Linux:
/// smp_call_function_single with wait = 1). On the calling CPU it runs
/// directly; elsewhere it runs in the target's IPI handler, IRQs masked.
pub fn smp_call_function_single(cpu: usize, func: fn(usize), info: usize) -> Result<(), SmpError> {
    if cpu == smp_processor_id() {
        let flags = irq::local_irq_save();
        func(info);
        irq::local_irq_restore(flags);
        return Ok(());
    }
    if !cpu_online(cpu) {
        return Err(SmpError::NotOnline);
    }
    if !irq::have_irqchip() {
        return Err(SmpError::NoIrqchip);
    }
    let _g = CALL_LOCK.lock();
    let pc = per_cpu(cpu);
    pc.call_info.store(info, Ordering::Relaxed);
    pc.call_func.store(func as usize, Ordering::Release);
    irq::smp_cross_call(1 << cpu, IPI_CALL_FUNC);
    if wait_until(1000, || pc.call_func.load(Ordering::Acquire) == 0) {
        Ok(())
    } else {
        // Withdraw the call, unless the target took it meanwhile.
        let _ = pc
            .call_func
            .compare_exchange(func as usize, 0, Ordering::AcqRel, Ordering::Acquire);
        Err(SmpError::Timeout)
    }
}

/// Run `func(info)` on every other online CPU, one after the other
/// (Linux: smp_call_function with wait = 1). Returns the CPUs that failed.
pub fn smp_call_function(func: fn(usize), info: usize) -> u64 {
    let me = smp_processor_id();
    let mut failed = 0;
    for cpu in (0..NR_CPUS).filter(|&c| c != me && cpu_online(c)) {
        if smp_call_function_single(cpu, func, info).is_err() {
            failed |= 1 << cpu;
        }
    }
    failed
}

/// An IPI arrived (Linux: do_handle_IPI), called by the irqchip driver
/// with the SGI number, IRQs masked.
pub fn handle_ipi(ipinr: u32) {
    let me = this_cpu();
    me.ipi_count.fetch_add(1, Ordering::Relaxed);
    match ipinr {
        IPI_CALL_FUNC => {
            let f = me.call_func.load(Ordering::Acquire);
            if f != 0 {
                // SAFETY: smp_call_function_single stored a `fn(usize)`.
                let func: fn(usize) = unsafe { core::mem::transmute(f) };
                func(me.call_info.load(Ordering::Relaxed));
                me.call_func.store(0, Ordering::Release);
            }
        }
        // The idle loop powers the CPU off once the IPI is acknowledged.
        IPI_CPU_STOP => me.die.store(true, Ordering::Release),
        // The idle loop looks at its work slot once wfi returns.
        IPI_WAKEUP => {}
        _ => pr_err!(
            "CPU{}: Unknown IPI message 0x{:x}",
            me.cpu.load(Ordering::Relaxed),
            ipinr
        ),
    }
}

/// Take `cpu` offline through PSCI CPU_OFF (Linux: cpu_down ->
/// __cpu_die, which waits for AFFINITY_INFO to say OFF).
pub fn cpu_down(cpu: usize) -> Result<(), SmpError> {
    if cpu == 0 {
        return Err(SmpError::BootCpu);
    }
    if !cpu_online(cpu) {
        return Err(SmpError::NotOnline);
    }
    if !irq::have_irqchip() {
        return Err(SmpError::NoIrqchip);
    }
    irq::smp_cross_call(1 << cpu, IPI_CPU_STOP);
    let mpidr = cpu_logical_map(cpu);
    // AFFINITY_INFO: 1 = OFF. Our own bookkeeping goes first (cpu_die
    // clears the online bit before CPU_OFF).
    if wait_until(1000, || !cpu_online(cpu) && psci::affinity_info(mpidr) == Some(1)) {
        pr_info!("CPU{}: shutdown", cpu);
        Ok(())
    } else {
        pr_err!("CPU{}: didn't die", cpu);
        Err(SmpError::Timeout)
    }
}
