// SPDX-License-Identifier: GPL-2.0-only
//! System commands: `dt`, `dmesg`, `uptime`, `ktest`, `bench`, `poweroff`,
//! `panic`.

use super::{CmdResult, Shell, fail};
use crate::arch::kernel::setup;
use crate::arch::kernel::timer;
use crate::kernel::printk;
use crate::shell::line::Args;
use crate::{print, println};
use alloc::vec::Vec;

pub fn cmd_dt(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    setup::print_machine_summary(setup::machine(), setup::boot_info().fdt_pa);
    Ok(())
}

pub fn cmd_dmesg(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    // Copy first: the ring is read under the console lock, which printing
    // needs too.
    let mut log = Vec::new();
    if log.try_reserve_exact(printk::LOG_BUF_LEN).is_err() {
        fail!("no memory for a {} KiB copy of the log", printk::LOG_BUF_LEN >> 10);
    }
    printk::for_each_log_chunk(|c| log.extend_from_slice(c));
    // If the ring wrapped, the first line is partial: skip it.
    let skip = if log.len() == printk::LOG_BUF_LEN {
        log.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)
    } else {
        0
    };
    for chunk in log[skip..].utf8_chunks() {
        print!("{}", chunk.valid());
        if !chunk.invalid().is_empty() {
            print!("\u{fffd}");
        }
    }
    // The log ends with this very command line's prompt and echo.
    if log.last() != Some(&b'\n') {
        println!();
    }
    Ok(())
}

pub fn cmd_uptime(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let ticks = timer::get_cycles();
    let ns = timer::ticks_to_ns(ticks);
    let hz = timer::frequency();
    println!(
        "up {}.{:06} s (CNTPCT_EL0 {} at {}.{:02} MHz)",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1000,
        ticks,
        hz / 1_000_000,
        (hz / 10_000) % 100
    );
    Ok(())
}

pub fn cmd_ktest(_: &mut Shell, args: &mut Args) -> CmdResult {
    let filter = args.word().unwrap_or("");
    args.end()?;
    if let Err(e) = crate::ktest::check_filter(filter) {
        fail!("{}", e);
    }
    // run_all only reports; unlike the `ktest` boot argument nothing exits.
    let failed = crate::ktest::run_all(filter);
    if failed != 0 {
        fail!("{} test(s) failed", failed);
    }
    Ok(())
}

/// Linux's test_vmalloc with its module parameters (`run_test_mask=1
/// test_loop_count=1000`, with or without the `test_vmalloc.` prefix), or
/// `bench=scaling,floor,stages`.
pub fn cmd_bench(_: &mut Shell, args: &mut Args) -> CmdResult {
    let mut params = alloc::string::String::new();
    while let Some(w) = args.word() {
        params.push_str(w);
        params.push(' ');
    }
    // Ctrl-C stops it; the benchmark's own warning says what completed.
    let _ = crate::bench::run_from_params(&params);
    Ok(())
}

pub fn cmd_poweroff(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    crate::kernel::reboot::machine_power_off()
}

/// Crash on purpose, as Linux's `echo c > /proc/sysrq-trigger`, so that a
/// user (and the smoke tests) can see what `panic=` and QEMU's `-no-reboot`
/// do with a panic.
pub fn cmd_panic(_: &mut Shell, args: &mut Args) -> CmdResult {
    let mut msg = alloc::string::String::new();
    while let Some(w) = args.word() {
        if !msg.is_empty() {
            msg.push(' ');
        }
        msg.push_str(w);
    }
    if msg.is_empty() {
        msg.push_str("sysrq triggered crash");
    }
    crate::kernel::panic::panic(format_args!("{}", msg), None)
}
