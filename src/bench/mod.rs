// SPDX-License-Identifier: GPL-2.0-only
//! In-kernel benchmarks of the vmalloc pipeline, run from the boot command
//! line (after mm_init and the console's ioremap, from `run_init`) or from
//! the shell through [`run_from_params`].
//!
//! * [`test_vmalloc`]: Linux's `lib/test_vmalloc.c` (6.1) scenarios with
//!   its module parameters and its report format (`Summary: ...`,
//!   `All test took CPU0=<n> cycles`), so the figures compare with the
//!   module's own on the same QEMU;
//! * [`scaling`]: one `alloc_vmap_area` + `free_vmap_area` against 10 ..
//!   100 000 busy areas (the address-space path alone);
//! * [`floor`]: vmalloc+vfree next to the bare minimum (buddy pages + PTEs),
//!   and a stage-by-stage breakdown of where a vmalloc+vfree spends its time.
//!
//! Command line (Linux's module-parameter spelling for test_vmalloc):
//!
//! ```text
//! test_vmalloc                                 run test_vmalloc with its defaults
//! test_vmalloc.run_test_mask=N  test_vmalloc.test_loop_count=N
//! test_vmalloc.test_repeat_count=N  test_vmalloc.nr_pages=N
//! test_vmalloc.sequential_test_order=0|1  test_vmalloc.nr_threads=N
//! bench=test_vmalloc,scaling,floor,stages|all  which benchmarks (any order;
//!                                              without it, test_vmalloc.*= runs test_vmalloc)
//! bench.loops=N                                iterations per scaling/floor point
//! bench.seed=N                                 seed of the benchmark RNG
//! init_on_alloc=0|1                            parsed in setup_arch (zeroing)
//! ```
//!
//! Ctrl-C stops a run: [`interrupted`] is polled between scenarios and
//! data points, and every 1024 loops inside test_vmalloc's scenarios; what
//! completed is reported, the interrupted scenario is not (its figures would
//! be partial), and the rest is skipped. Other type-ahead stays queued for
//! the shell.
//!
//! Time is the generic timer (`get_cycles()`, CNTPCT_EL0 at CNTFRQ_EL0, as
//! Linux's `get_cycles()` on arm64). Under QEMU `-icount shift=0` virtual
//! time advances 1 ns per instruction, so figures repeat exactly run to run.

pub mod floor;
pub mod scaling;
pub mod test_vmalloc;

use crate::arch::kernel::timer;
use crate::lib::rand::XorShift64Star;
use crate::pr_warn;
use core::sync::atomic::{AtomicBool, Ordering};

/// Which benchmarks to run and with what parameters.
#[derive(Clone, Debug)]
pub struct BenchRequest {
    /// Run test_vmalloc: the bare word `test_vmalloc`, `bench=test_vmalloc`,
    /// or (without any `bench=`) a `test_vmalloc.*=` parameter.
    pub test_vmalloc: bool,
    pub scaling: bool,
    pub floor: bool,
    pub stages: bool,
    pub params: test_vmalloc::Params,
    /// Iterations per scaling / floor / stages data point.
    pub loops: Option<usize>,
    pub seed: u64,
    /// A `bench=` word was given: it alone says which benchmarks run.
    listed: bool,
    /// A test_vmalloc parameter was given.
    tv_params: bool,
}

impl Default for BenchRequest {
    fn default() -> Self {
        Self {
            test_vmalloc: false,
            scaling: false,
            floor: false,
            stages: false,
            params: test_vmalloc::Params::default(),
            loops: None,
            seed: DEFAULT_SEED,
            listed: false,
            tv_params: false,
        }
    }
}

impl BenchRequest {
    fn any(&self) -> bool {
        self.test_vmalloc || self.scaling || self.floor || self.stages
    }

    /// After all words: test_vmalloc parameters alone (no `bench=`) mean
    /// "run test_vmalloc", as loading the module with them would.
    fn finish(mut self) -> Self {
        if self.tv_params && !self.listed {
            self.test_vmalloc = true;
        }
        self
    }
}

/// The benchmark RNG's default seed: fixed, so that runs under icount are
/// identical (Linux seeds from the DT's rng-seed, which QEMU changes on
/// every boot; see docs/performance.md).
pub const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Linux's module-parameter integer parsing (kstrtoint with base 0:
/// decimal, 0x.. hex, 0.. octal, optional sign).
pub fn parse_int(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).ok()?
    } else {
        s.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

pub use crate::lib::kstrtox::kstrtobool as parse_bool;

/// Apply one `name=value` (or bare `name`) word to `req`. `prefixed`: the
/// test_vmalloc parameters must carry their `test_vmalloc.` module prefix
/// (the boot command line); without it both spellings are accepted.
/// Returns false for words that are not ours.
fn apply_word(req: &mut BenchRequest, word: &str, prefixed: bool) -> bool {
    let (name, value) = match word.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (word, None),
    };
    if name == "test_vmalloc" && value.is_none() {
        req.test_vmalloc = true;
        return true;
    }
    if name == "bench" {
        req.listed = true;
        for b in value.unwrap_or("all").split(',') {
            match b {
                "all" => {
                    req.test_vmalloc = true;
                    req.scaling = true;
                    req.floor = true;
                    req.stages = true;
                }
                "test_vmalloc" => req.test_vmalloc = true,
                "scaling" => req.scaling = true,
                "floor" => req.floor = true,
                "stages" => req.stages = true,
                "" => {}
                other => pr_warn!(
                    "bench: unknown benchmark '{}' (known: test_vmalloc, scaling, floor, stages, all)",
                    other
                ),
            }
        }
        return true;
    }
    if let Some(p) = name.strip_prefix("bench.") {
        let Some(v) = value.and_then(parse_int) else {
            pr_warn!("bench: {}: needs an integer value", word);
            return true;
        };
        match p {
            "loops" if v > 0 => req.loops = Some(v as usize),
            "seed" => req.seed = v as u64,
            _ => pr_warn!("bench: {}: unknown parameter or bad value", word),
        }
        return true;
    }
    let param = match name.strip_prefix("test_vmalloc.") {
        Some(p) => p,
        None if !prefixed => name,
        None => return false,
    };
    match req.params.set(param, value.unwrap_or("")) {
        Ok(()) => {
            req.tv_params = true;
            true
        }
        Err(e) => {
            // Linux: "test_vmalloc: unknown parameter 'x' ignored"
            pr_warn!("test_vmalloc: {} '{}' ignored", e, word);
            true
        }
    }
}

/// What the boot command line asks of the benchmarks; None if nothing.
pub fn parse_cmdline(args: &str) -> Option<BenchRequest> {
    let mut req = BenchRequest::default();
    for w in args.split_ascii_whitespace() {
        apply_word(&mut req, w, true);
    }
    let req = req.finish();
    req.any().then_some(req)
}

/// Ctrl-C seen during the current run.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const CTRL_C: u8 = 0x03;

/// Has Ctrl-C been typed since the run started? Polls the console (one
/// UART status read), taking only the Ctrl-C out of the input.
pub fn interrupted() -> bool {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return true;
    }
    if crate::kernel::printk::console_take_byte(CTRL_C) {
        INTERRUPTED.store(true, Ordering::Relaxed);
        return true;
    }
    false
}

/// Run what `req` selects, in a fixed order; Ctrl-C stops it (see the
/// module doc). Returns false if it was interrupted.
pub fn run(req: &BenchRequest) -> bool {
    INTERRUPTED.store(false, Ordering::Relaxed);
    let mut done: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    let mut skipped: alloc::vec::Vec<&str> = alloc::vec::Vec::new();
    let mut stopped: Option<&str> = None;
    let mut step = |name: &'static str, selected: bool, f: &mut dyn FnMut()| {
        if !selected {
            return;
        }
        if interrupted() {
            skipped.push(name);
            return;
        }
        f();
        // A benchmark stopped halfway reports what it finished itself.
        if interrupted() {
            stopped = Some(name);
        } else {
            done.push(name);
        }
    };
    step("test_vmalloc", req.test_vmalloc, &mut || {
        test_vmalloc::run(&req.params, req.seed);
    });
    step("scaling", req.scaling, &mut || {
        scaling::run(req.loops.unwrap_or(scaling::DEFAULT_LOOPS));
    });
    step("floor", req.floor, &mut || {
        floor::run_floor(req.loops.unwrap_or(floor::DEFAULT_LOOPS));
    });
    step("stages", req.stages, &mut || {
        floor::run_stages(req.loops.unwrap_or(floor::DEFAULT_LOOPS));
    });
    if !interrupted() {
        return true;
    }
    let list = |v: &[&str]| {
        if v.is_empty() {
            alloc::string::String::from("none")
        } else {
            v.join(", ")
        }
    };
    match stopped {
        Some(name) => pr_warn!(
            "bench: interrupted by Ctrl-C during {}; completed: {}; not run: {}",
            name,
            list(&done),
            list(&skipped)
        ),
        None => pr_warn!(
            "bench: interrupted by Ctrl-C before it started; not run: {}",
            list(&skipped)
        ),
    }
    false
}

/// Boot hook (run_init): run the benchmarks the command line asks for.
/// Returns whether anything ran.
pub fn run_from_cmdline(args: &str) -> bool {
    match parse_cmdline(args) {
        Some(req) => {
            run(&req);
            true
        }
        None => false,
    }
}

/// Entry point for the shell: `params` in the module-parameter spelling,
/// with or without the `test_vmalloc.` prefix, e.g.
/// `run_test_mask=1 test_loop_count=1000` or `bench=scaling bench.loops=500`.
/// Without a `bench=` word, test_vmalloc runs. Returns false if Ctrl-C
/// interrupted it.
pub fn run_from_params(params: &str) -> bool {
    let mut req = BenchRequest::default();
    for w in params.split_ascii_whitespace() {
        apply_word(&mut req, w, false);
    }
    let mut req = req.finish();
    if !req.any() && !req.listed {
        req.test_vmalloc = true;
    }
    run(&req)
}

/// The benchmarks' stand-in for get_random_u32(): the shared xorshift64*,
/// deterministic for a given seed, with Linux's range helpers on top.
pub struct Rng(XorShift64Star);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(XorShift64Star::new(if seed == 0 { DEFAULT_SEED } else { seed }))
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0.next()
    }
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    #[inline]
    pub fn next_u8(&mut self) -> u8 {
        self.0.next_u8()
    }
    /// Uniform in [0, n) (Linux's get_random_u32_below / prandom_u32_max).
    #[inline]
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u32() as u64 * n as u64) >> 32) as u32
    }
    /// Uniform in [lo, hi] (get_random_u32_inclusive).
    #[inline]
    pub fn inclusive(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }
}

/// The generic-timer counter (Linux's get_cycles()).
#[inline(always)]
pub fn get_cycles() -> u64 {
    timer::get_cycles()
}

/// Counter ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    timer::ticks_to_ns(ticks)
}

/// ns with one decimal, as "1234.5", for per-operation figures.
pub struct Ns10(pub u64);

impl core::fmt::Display for Ns10 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = alloc::format!("{}.{}", self.0 / 10, self.0 % 10);
        f.pad(&s)
    }
}

/// Average ns per operation, in tenths: `ticks` for `ops` operations.
pub fn ns10_per_op(ticks: u64, ops: u64) -> u64 {
    let ns = ticks as u128 * 1_000_000_000 * 10 / timer::frequency() as u128;
    (ns / ops.max(1) as u128) as u64
}

/// A ratio a/b with two decimals, as "1.23".
pub struct Ratio(pub u64, pub u64);

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let r = if self.1 == 0 {
            0
        } else {
            (self.0 as u128 * 100 + self.1 as u128 / 2) / self.1 as u128
        } as u64;
        let s = alloc::format!("{}.{:02}", r / 100, r % 100);
        f.pad(&s)
    }
}
