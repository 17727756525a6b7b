// SPDX-License-Identifier: GPL-2.0-only
//! `cpu`: list the CPUs, take one offline or bring it back (Linux:
//! /sys/devices/system/cpu/cpuN/online).

use super::{CmdResult, Shell, fail};
use crate::arch::kernel::percpu::{NR_CPUS, per_cpu};
use crate::arch::kernel::setup;
use crate::arch::kernel::smp::{self, cpu_logical_map, cpu_online, cpu_possible};
use crate::drivers::of::fdt::EnableMethod;
use crate::println;
use crate::shell::line::Args;
use core::sync::atomic::Ordering;

pub fn cmd_cpu(_: &mut Shell, args: &mut Args) -> CmdResult {
    match args.word() {
        None => {
            list();
            Ok(())
        }
        Some(op @ ("on" | "off")) => {
            let cpu = args.num("cpu")? as usize;
            args.end()?;
            if op == "off" {
                match smp::cpu_down(cpu) {
                    Ok(()) => println!("CPU{}: offline (PSCI CPU_OFF)", cpu),
                    Err(e) => fail!("CPU{}: {}", cpu, e),
                }
            } else {
                match crate::kernel::smp::cpu_on(cpu, setup::machine()) {
                    Ok(()) => println!("CPU{}: online (PSCI CPU_ON)", cpu),
                    Err(e) => fail!("CPU{}: {}", cpu, e),
                }
            }
            Ok(())
        }
        Some(w) => fail!("unknown subcommand '{}' (cpu, cpu on N, cpu off N)", w),
    }
}

fn list() {
    let info = setup::machine();
    println!(
        "{} CPU(s) online of {} in the device tree; interrupt controller {}",
        smp::num_online_cpus(),
        info.cpus().len(),
        crate::drivers::irqchip::gic_name()
    );
    println!("CPU  MPIDR         state    enable-method  irqs      ipis      stack");
    for cpu in (0..NR_CPUS).filter(|&c| cpu_possible(c)) {
        let pc = per_cpu(cpu);
        let mpidr = cpu_logical_map(cpu);
        let method = info.cpus().iter().find(|c| c.mpidr == mpidr).map(|c| c.enable_method);
        let method = match method {
            Some(EnableMethod::Psci) => "psci",
            Some(EnableMethod::SpinTable { .. }) => "spin-table",
            _ if cpu == 0 => "boot CPU",
            _ => "none",
        };
        println!(
            "{:<4} 0x{:010x}  {:<8} {:<14} {:<9} {:<9} {:#x}-{:#x}",
            cpu,
            mpidr,
            if cpu_online(cpu) { "online" } else { "offline" },
            method,
            pc.irq_count.load(Ordering::Relaxed),
            pc.ipi_count.load(Ordering::Relaxed),
            pc.stack_low.load(Ordering::Relaxed),
            pc.stack_high.load(Ordering::Relaxed)
        );
    }
}
