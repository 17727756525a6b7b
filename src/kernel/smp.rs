// SPDX-License-Identifier: GPL-2.0-only
//! Bringing the secondary CPUs up (Linux: kernel/smp.c's smp_init,
//! kernel/cpu.c's cpu_up, kernel/fork.c's alloc_thread_stack_node for the
//! idle threads' stacks, arch/arm64/kernel/smp_spin_table.c).
//!
//! CPU 0 does everything that needs mm before it starts a CPU: the
//! secondary's THREAD_SIZE stack and its overflow stack come from
//! `__vmalloc_node_range` (CONFIG_VMAP_STACK: THREAD_ALIGN-aligned, with
//! vmalloc's guard page below), so the secondary itself allocates nothing.

use crate::arch::kernel::percpu::NR_CPUS;
use crate::arch::kernel::smp::{
    self, cpu_online, cpu_psci_cpu_boot, prepare_secondary, psci_error_name, read_cpuid_mpidr, secondary_entry_pa,
    wait_for_online,
};
use crate::arch::memory::{VMALLOC_END, VMALLOC_START};
use crate::arch::mm::numa::cpu_to_node;
use crate::arch::mm::pgtable::PAGE_KERNEL;
use crate::drivers::of::fdt::{EnableMethod, MachineInfo};
use crate::mm::gfp::{__GFP_ZERO, GFP_KERNEL};
use crate::mm::vmalloc::{__vmalloc_node_range, VmFlags, vfree};
use crate::{pr_err, pr_info};
use core::panic::Location;
use core::sync::atomic::Ordering;

/// Linux arm64's THREAD_SHIFT with 4 KiB pages and no KASAN: 16 KiB stacks.
pub const THREAD_SHIFT: usize = 14;
pub const THREAD_SIZE: usize = 1 << THREAD_SHIFT;
/// CONFIG_VMAP_STACK aligns stacks to twice their size.
pub const THREAD_ALIGN: usize = 2 * THREAD_SIZE;
/// Each secondary's overflow stack (CPU 0's is in head.S, the same size).
pub const OVERFLOW_STACK_SIZE: usize = 16 * 1024;
/// How long a CPU gets to come online (Linux waits 5 s; QEMU needs far less).
const CPU_UP_TIMEOUT_MS: u64 = 1000;

/// A vmap'd stack: [low, high), its pages on `node` (Linux's
/// alloc_thread_stack_node for an idle task: the CPU's own node).
/// `track_caller`: vmallocinfo names the caller (the thread stack or the
/// overflow stack).
#[track_caller]
fn alloc_stack(size: usize, align: usize, node: i32) -> Option<(usize, usize)> {
    let low = __vmalloc_node_range(
        size,
        align,
        VMALLOC_START,
        VMALLOC_END,
        GFP_KERNEL | __GFP_ZERO,
        PAGE_KERNEL,
        VmFlags::empty(),
        node,
        Location::caller(),
    );
    (low != 0).then_some((low, low + size))
}

/// Why a CPU did not come up.
enum CpuUpError {
    NoStack,
    NoEnableMethod,
    Psci(i64),
    SpinTable(u64),
    Timeout,
}

/// Start logical CPU `cpu` = `mpidr` and wait for it (Linux: __cpu_up).
fn cpu_up(cpu: usize, mpidr: u64, method: EnableMethod) -> Result<(), CpuUpError> {
    if method == EnableMethod::None {
        return Err(CpuUpError::NoEnableMethod);
    }
    let pc = crate::arch::kernel::percpu::per_cpu(cpu);
    // A CPU brought up before (`cpu on` after `cpu off`) keeps its stacks.
    if pc.stack_low.load(Ordering::Relaxed) == 0 {
        let node = cpu_to_node(cpu);
        let Some(stack) = alloc_stack(THREAD_SIZE, THREAD_ALIGN, node) else {
            return Err(CpuUpError::NoStack);
        };
        let Some(ovf) = alloc_stack(OVERFLOW_STACK_SIZE, crate::arch::memory::PAGE_SIZE, node) else {
            vfree(stack.0 as *const u8);
            return Err(CpuUpError::NoStack);
        };
        prepare_secondary(cpu, stack, ovf.1);
    } else {
        prepare_secondary(
            cpu,
            (
                pc.stack_low.load(Ordering::Relaxed),
                pc.stack_high.load(Ordering::Relaxed),
            ),
            pc.overflow_stack_top.load(Ordering::Relaxed),
        );
    }
    match method {
        EnableMethod::Psci => cpu_psci_cpu_boot(mpidr).map_err(CpuUpError::Psci)?,
        EnableMethod::SpinTable { release_addr } => smp_spin_table_cpu_boot(release_addr)?,
        EnableMethod::None => unreachable!(),
    }
    if wait_for_online(cpu, CPU_UP_TIMEOUT_MS) {
        Ok(())
    } else {
        Err(CpuUpError::Timeout)
    }
}

/// Release a CPU held by the boot loader's spin-table: write the entry
/// point to its `cpu-release-addr`, clean it to the point of coherency
/// (the waiting CPU reads with its MMU off) and wake it with `sev`
/// (Linux: smp_spin_table_cpu_prepare + cpu_boot). The release address is
/// RAM the loader reserved, reached through the linear map (Linux's
/// ioremap_cache returns the same); a fault (an address outside the
/// linear map) is caught and reported.
fn smp_spin_table_cpu_boot(release_addr: u64) -> Result<(), CpuUpError> {
    if !release_addr.is_multiple_of(8) {
        return Err(CpuUpError::SpinTable(release_addr));
    }
    let va = crate::arch::mm::mmu::__va(crate::arch::memory::PhysAddr(release_addr as usize)).0;
    let entry = secondary_entry_pa();
    // SAFETY: an 8-aligned address the DT gives as the CPU's mailbox; a
    // fault is caught. The cache clean makes it visible to a reader with
    // its MMU (and caches) off.
    let wrote = crate::arch::kernel::traps::catch_fault_quiet(|| unsafe {
        core::ptr::write_volatile(va as *mut u64, entry.to_le());
        core::arch::asm!("dc civac, {}", "dsb sy", "sev", in(reg) va, options(nostack));
    });
    wrote.map_err(|_| CpuUpError::SpinTable(release_addr))
}

/// Bring every CPU the device tree lists up (Linux: smp_init). CPU 0 is
/// the boot CPU; the others get the logical ids 1, 2, ... in tree order.
pub fn smp_init(info: &MachineInfo) {
    // smp_init_cpus (at boot) gave the DT's CPUs their logical ids in this
    // same order; CPUs past NR_CPUS were reported there.
    let boot_mpidr = read_cpuid_mpidr();
    pr_info!("smp: Bringing up secondary CPUs ...");
    let others = info.cpus().iter().filter(|c| c.mpidr != boot_mpidr).take(NR_CPUS - 1);
    for (cpu, c) in (1..).zip(others) {
        // Before cpu_up: its stacks go on its node.
        crate::arch::mm::numa::early_map_cpu_to_node(cpu, c.numa_node);
        match cpu_up(cpu, c.mpidr, c.enable_method) {
            Ok(()) => {}
            Err(CpuUpError::NoStack) => pr_err!("CPU{}: failed to allocate its stacks; skipped", cpu),
            Err(CpuUpError::NoEnableMethod) => pr_err!(
                "CPU{}: MPIDR {:#x} has no enable-method this kernel knows (psci, spin-table); skipped",
                cpu,
                c.mpidr
            ),
            Err(CpuUpError::Psci(e)) => {
                pr_err!(
                    "CPU{}: failed to boot: PSCI CPU_ON returned {} ({})",
                    cpu,
                    e,
                    psci_error_name(e)
                )
            }
            Err(CpuUpError::SpinTable(a)) => {
                pr_err!(
                    "CPU{}: failed to boot: its cpu-release-addr {:#x} is not writable RAM",
                    cpu,
                    a
                )
            }
            Err(CpuUpError::Timeout) => pr_err!("CPU{}: failed to come online", cpu),
        }
    }
    let n = smp::num_online_cpus();
    // The nodes with memory, as the allocator built them (NUMA off: 1).
    let nodes = crate::mm::page_alloc::num_online_nodes();
    pr_info!(
        "smp: Brought up {} node{}, {} CPU{}",
        nodes,
        if nodes == 1 { "" } else { "s" },
        n,
        if n == 1 { "" } else { "s" }
    );
}

/// `cpu on N` after `cpu off N`: start it again on its stacks.
pub fn cpu_on(cpu: usize, info: &MachineInfo) -> Result<(), &'static str> {
    if cpu == 0 || cpu >= smp::nr_cpu_ids() || !smp::cpu_possible(cpu) {
        return Err("no such secondary CPU");
    }
    if cpu_online(cpu) {
        return Err("already online");
    }
    let mpidr = smp::cpu_logical_map(cpu);
    let method = info
        .cpus()
        .iter()
        .find(|c| c.mpidr == mpidr)
        .map_or(EnableMethod::None, |c| c.enable_method);
    match cpu_up(cpu, mpidr, method) {
        Ok(()) => Ok(()),
        Err(CpuUpError::Psci(e)) => {
            pr_err!(
                "CPU{}: failed to boot: PSCI CPU_ON returned {} ({})",
                cpu,
                e,
                psci_error_name(e)
            );
            Err("PSCI CPU_ON failed")
        }
        Err(CpuUpError::Timeout) => Err("the CPU did not come online within 1 s"),
        Err(_) => Err("cannot start this CPU"),
    }
}
