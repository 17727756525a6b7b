// SPDX-License-Identifier: GPL-2.0-only
//! Test workers on several CPUs at once (`run_on_cpus`) and their failures.
//! A worker cannot call `t.fail`: the `Test` lives on CPU 0's stack and is
//! not `Sync`. It records its first failure with [`worker_fail`] instead,
//! and [`run_workers`] turns that, or a CPU that did not run the work, into
//! the test's failure.

use super::Test;
use crate::arch::kernel::smp;
use crate::kernel::locking::spinlock::SpinLock;
use alloc::string::String;
use core::fmt::Write;

/// The first failure a worker saw in the current `run_workers`.
static FIRST_ERROR: SpinLock<Option<String>> = SpinLock::new(None);

/// Record a worker's failure (only the first one of a run is kept).
pub fn worker_fail(args: core::fmt::Arguments) {
    let mut e = FIRST_ERROR.lock();
    if e.is_none() {
        let mut s = String::new();
        let _ = s.write_fmt(args);
        *e = Some(s);
    }
}

/// Run `f` on the CPUs of `mask`; a CPU that did not run it, or a worker's
/// failure, fails the test (and returns false).
pub fn run_workers(t: &mut Test, mask: u64, f: &(dyn Fn(usize) + Sync)) -> bool {
    *FIRST_ERROR.lock() = None;
    let failed = smp::run_on_cpus(mask, f);
    if failed != 0 {
        t.fail(
            file!(),
            line!(),
            format_args!("run_on_cpus: CPUs {:#x} did not run the work", failed),
        );
        return false;
    }
    if let Some(e) = FIRST_ERROR.lock().take() {
        t.fail(file!(), line!(), format_args!("{}", e));
        return false;
    }
    true
}
