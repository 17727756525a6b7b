// SPDX-License-Identifier: GPL-2.0-only
//! ktest: the in-kernel test runner, selected with the boot argument `ktest`
//! (or `ktest=FILTER`, a suite name or `suite.case` prefix). Results are
//! printed in KTAP, the format of Linux's KUnit, and QEMU exits through
//! semihosting with status 0 when everything passed, 1 otherwise.
//!
//! A test is a plain `fn(&mut Test)`; the `kassert!` family records the
//! first failure with its file:line and returns from the test.
//!
//! Robustness rules (the suite runs from the shell too, any number of times):
//! * a case that cannot run on this machine (too little RAM) calls
//!   [`kskip_unless!`] and is reported `ok N name # SKIP reason`, counted as
//!   neither pass nor fail;
//! * a case leaves the kernel as it found it, on its failure paths too: what
//!   it allocated is freed before it returns (the suite passes when run
//!   three times in a row in one boot: scripts/test.sh's `ktest/repeat`);
//! * test bodies do not `unwrap`/`expect`/`panic` on anything a machine can
//!   cause (allocation failure): they record a failure and return. Each case
//!   also runs under `catch_fault`, so a case that faults unexpectedly is
//!   reported `not ok` with its oops and the suite goes on;
//! * a filter that selects nothing is an error, not an empty pass.

mod boot;
mod mm;
mod numa;
mod percpu;
mod rcu;
mod smp;
pub mod smp_mm;
mod vmalloc;
mod workers;

use crate::arch::kernel::traps;
use crate::println;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

pub struct Case {
    pub name: &'static str,
    pub run: fn(&mut Test),
}

pub struct Suite {
    pub name: &'static str,
    pub cases: &'static [Case],
}

/// Every suite, in the order they run.
static SUITES: &[&Suite] = &[
    &boot::SUITE,
    &mm::SUITE,
    &vmalloc::SUITE,
    &percpu::SUITE,
    &smp::SUITE,
    &smp_mm::SUITE,
    &numa::SUITE,
    &rcu::SUITE,
];

/// One running test: its verdict and the message of its first failure.
pub struct Test {
    failed: bool,
    skipped: bool,
    msg: [u8; 512],
    msg_len: usize,
}

impl Test {
    fn new() -> Self {
        Self {
            failed: false,
            skipped: false,
            msg: [0; 512],
            msg_len: 0,
        }
    }

    /// Record a failure (the first one's message is kept).
    pub fn fail(&mut self, file: &str, line: u32, args: fmt::Arguments) {
        if !self.failed {
            self.failed = true;
            self.msg_len = 0;
            let _ = write!(self, "EXPECTATION FAILED at {}:{}: {}", file, line, args);
        }
    }

    /// Mark the test skipped (it could not run here, e.g. too little RAM);
    /// `reason` follows `# SKIP` in the KTAP line.
    pub fn skip(&mut self, args: fmt::Arguments) {
        if !self.failed && !self.skipped {
            self.skipped = true;
            self.msg_len = 0;
            let _ = self.write_fmt(args);
        }
    }

    pub fn has_failed(&self) -> bool {
        self.failed
    }

    fn message(&self) -> &str {
        core::str::from_utf8(&self.msg[..self.msg_len]).unwrap_or("(message not UTF-8)")
    }
}

impl Write for Test {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.msg.len() - self.msg_len);
        self.msg[self.msg_len..self.msg_len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.msg_len += n;
        Ok(())
    }
}

/// Check a condition; on failure record it and return from the test.
#[macro_export]
macro_rules! kassert {
    ($t:expr, $cond:expr) => {
        if !$cond {
            $t.fail(file!(), line!(), format_args!("{}", stringify!($cond)));
            return;
        }
    };
    ($t:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            $t.fail(file!(), line!(), format_args!($($arg)+));
            return;
        }
    };
}

/// Check `left == right`; on failure print both values and return.
#[macro_export]
macro_rules! kassert_eq {
    ($t:expr, $left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    $t.fail(
                        file!(),
                        line!(),
                        format_args!(
                            "{} == {}: left {:#x?}, right {:#x?}",
                            stringify!($left),
                            stringify!($right),
                            l,
                            r
                        ),
                    );
                    return;
                }
            }
        }
    };
}

/// Skip the test (KTAP `# SKIP`) unless `cond` holds: for what a small
/// machine cannot do. The reason says what was needed and what there is.
#[macro_export]
macro_rules! kskip_unless {
    ($t:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            $t.skip(format_args!($($arg)+));
            return;
        }
    };
}

/// Skip unless `pages` pages are free in the buddy allocator.
#[macro_export]
macro_rules! kskip_unless_free_pages {
    ($t:expr, $pages:expr) => {{
        let need: usize = $pages;
        let free = $crate::mm::page_alloc::nr_free_pages().0;
        $crate::kskip_unless!(
            $t,
            free >= need,
            "needs {} MiB of free pages, {} MiB free",
            need >> (20 - $crate::arch::memory::PAGE_SHIFT),
            free >> (20 - $crate::arch::memory::PAGE_SHIFT)
        );
    }};
}

/// The fault held by a `catch_fault` result; if the code did not fault,
/// record that as the test's failure (with the message) and return.
#[macro_export]
macro_rules! kexpect_fault {
    ($t:expr, $r:expr, $($arg:tt)+) => {
        match $r {
            Err(f) => f,
            Ok(_) => {
                $t.fail(file!(), line!(), format_args!($($arg)+));
                return;
            }
        }
    };
}

fn selected(filter: &str, suite: &str, case: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    match filter.split_once('.') {
        Some((s, c)) => s == suite && case.starts_with(c),
        None => suite.starts_with(filter),
    }
}

/// The last run_all selected no test (its one line already said why).
static NOTHING_RAN: AtomicBool = AtomicBool::new(false);

/// Why a filter selects nothing: one line naming the filter and the suites.
pub fn check_filter(filter: &str) -> Result<(), alloc::string::String> {
    if SUITES
        .iter()
        .any(|s| s.cases.iter().any(|c| selected(filter, s.name, c.name)))
    {
        return Ok(());
    }
    let mut names = alloc::string::String::new();
    for (i, s) in SUITES.iter().enumerate() {
        if i != 0 {
            names.push_str(", ");
        }
        names.push_str(s.name);
    }
    Err(alloc::format!(
        "filter '{}' matches no test (suites: {}; a filter is a suite name prefix or suite.case prefix)",
        filter,
        names
    ))
}

/// Run every selected test, print KTAP, and return the number of failures.
/// A filter that selects nothing prints one line and counts as one failure.
pub fn run_all(filter: &str) -> usize {
    if let Err(e) = check_filter(filter) {
        println!("ktest: {}", e);
        NOTHING_RAN.store(true, Ordering::Relaxed);
        return 1;
    }
    NOTHING_RAN.store(false, Ordering::Relaxed);
    let suites: usize = SUITES
        .iter()
        .filter(|s| s.cases.iter().any(|c| selected(filter, s.name, c.name)))
        .count();
    println!("KTAP version 1");
    println!("1..{}", suites);
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut n = 0;
    for suite in SUITES {
        let cases = suite.cases.iter().filter(|c| selected(filter, suite.name, c.name));
        let total = cases.clone().count();
        if total == 0 {
            continue;
        }
        n += 1;
        println!("    KTAP version 1");
        println!("    # Subtest: {}", suite.name);
        println!("    1..{}", total);
        let (mut sp, mut sf, mut ss) = (0, 0, 0);
        for (i, case) in cases.enumerate() {
            let mut t = Test::new();
            // A fault the case did not expect: report it, go on.
            if let Err(f) = traps::catch_fault(|| (case.run)(&mut t)) {
                t.failed = false;
                t.fail(
                    file!(),
                    line!(),
                    format_args!(
                        "unexpected fault at pc {:#x} (far {:#x}, esr {:#x}); the case was abandoned there",
                        f.pc, f.far, f.esr
                    ),
                );
            }
            if t.failed {
                println!("    # {}: {}", case.name, t.message());
                println!("    not ok {} {}", i + 1, case.name);
                sf += 1;
            } else if t.skipped {
                println!("    ok {} {} # SKIP {}", i + 1, case.name, t.message());
                ss += 1;
            } else {
                println!("    ok {} {}", i + 1, case.name);
                sp += 1;
            }
        }
        println!(
            "    # {}: pass:{} fail:{} skip:{} total:{}",
            suite.name, sp, sf, ss, total
        );
        println!("{} {} {}", if sf == 0 { "ok" } else { "not ok" }, n, suite.name);
        passed += sp;
        failed += sf;
        skipped += ss;
    }
    println!(
        "# Totals: pass:{} fail:{} skip:{} total:{}",
        passed,
        failed,
        skipped,
        passed + failed + skipped
    );
    // Skips are in the Totals line above; this one stays as scripts parse it.
    println!("ktest: {} passed, {} failed", passed, failed);
    failed
}

/// Leave QEMU with the test result as its exit status.
pub fn exit_with_result(failed: usize) -> ! {
    if !crate::arch::kernel::semihosting::available() {
        crate::pr_warn!("ktest: QEMU was started without -semihosting; the exit status cannot carry the result");
    }
    if failed == 0 {
        crate::kernel::reboot::machine_power_off()
    }
    if !NOTHING_RAN.load(Ordering::Relaxed) {
        crate::pr_err!("ktest: {} test(s) failed", failed);
    }
    crate::kernel::reboot::machine_fail_stop()
}
