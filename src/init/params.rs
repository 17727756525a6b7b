// SPDX-License-Identifier: GPL-2.0-only
//! The boot parameters, in one table (Linux: `early_param`/`__setup` with
//! init/main.c's parse_early_param). Each parameter has Linux's name and
//! meaning where Linux has one; a value that does not parse gets one warning
//! line and the parameter keeps its default.
//!
//! The words that say what to run after boot (`ktest`, `ktest=FILTER`,
//! `poweroff`, the benchmarks' `test_vmalloc.*=` and `bench=`) are read by
//! `run_init` in init/main.rs.

use crate::lib::kstrtox::kstrtobool;
use crate::pr_warn;

/// One `name=value` boot parameter.
pub struct KernelParam {
    /// Without the `=`.
    pub name: &'static str,
    /// What it does, for docs and the shell.
    pub help: &'static str,
    /// Apply the value; on error, say what was expected.
    pub setup: fn(&str) -> Result<(), &'static str>,
}

/// Every boot parameter the kernel understands.
pub static KERNEL_PARAMS: &[KernelParam] = &[
    KernelParam {
        name: "loglevel",
        help: "console log level 0..8: messages below it reach the console (all go to the log)",
        setup: |v| {
            let l: u8 = v.parse().map_err(|_| "expected a number 0..8")?;
            crate::kernel::printk::set_console_loglevel(l);
            Ok(())
        },
    },
    KernelParam {
        name: "panic",
        help: "after a panic: 0 stays halted, N>0 reboots after N seconds, N<0 at once",
        setup: |v| {
            let t: i64 = v.parse().map_err(|_| "expected a number of seconds")?;
            crate::kernel::panic::set_panic_timeout(t);
            Ok(())
        },
    },
    KernelParam {
        name: "init_on_alloc",
        help: "zero every page vmalloc allocates (Linux's init_on_alloc; on by default, as Debian ships it)",
        setup: |v| {
            let on = kstrtobool(v).ok_or("expected 0 or 1")?;
            crate::mm::vmalloc::set_init_on_alloc(on);
            Ok(())
        },
    },
    KernelParam {
        name: "ktest.repeat",
        help: "run each case of the concurrent mm ktests (concurrent_mm) N times: a stress run (default 1)",
        setup: |v| {
            let n: usize = v.parse().map_err(|_| "expected a number of runs >= 1")?;
            if n == 0 {
                return Err("expected a number of runs >= 1");
            }
            crate::ktest::smp_mm::REPEAT.store(n, core::sync::atomic::Ordering::Relaxed);
            Ok(())
        },
    },
];

/// Linux's parse_early_param: apply every `name=value` word of the command
/// line that names a parameter of [`KERNEL_PARAMS`]; other words are left
/// for run_init.
pub fn parse_early_param(cmdline: &str) {
    for word in cmdline.split_ascii_whitespace() {
        let Some((name, value)) = word.split_once('=') else {
            continue;
        };
        if let Some(p) = KERNEL_PARAMS.iter().find(|p| p.name == name)
            && let Err(why) = (p.setup)(value)
        {
            pr_warn!("{}={}: {}; ignored", name, value, why);
        }
    }
}
