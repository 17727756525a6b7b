// SPDX-License-Identifier: GPL-2.0-only
//! Linux's `lib/test_vmalloc.c` (as in 6.1, the kernel of the baseline in
//! ../shared/baselines) on vmkernel's vmalloc: same scenarios, same
//! sizes, alignments and random ranges, same module parameters, same
//! failure rule (a scenario fails when an allocation returns NULL) and the
//! same report:
//!
//! ```text
//! Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 100000 avg: 123456 usec
//! All test took CPU0=12345678 cycles
//! ```
//!
//! `avg` is the time of one whole run of the scenario (all loops together,
//! averaged over `test_repeat_count`), as in Linux; `cycles` are
//! generic-timer ticks (`get_cycles()` on arm64). 6.1 prints
//! `worker0=` in the last line (5.10 printed `CPU0=`); the figures mean the
//! same. One worker prints `CPU0=` as before.
//!
//! `nr_threads=N` (N > 1) has Linux's meaning: N workers at once, worker i
//! bound to CPU i (5.10's kthread_bind; here through `run_on_cpus`, the
//! work slot each CPU's idle loop runs), each running the whole mask in its
//! own shuffled order; when all are done each prints its own `Summary:`
//! lines and `All test took workerI=` line, as Linux's do_concurrent_test.
//! With no scheduler a CPU runs one worker, so N is capped at the online
//! CPUs (said on the console). The machine-readable `bench: test_vmalloc`
//! line of a scenario then carries the mean over the workers (`workers=N`),
//! the figure the SMP baseline gives.
//!
//! Differences, all reported in the output:
//! * `kvfree_rcu_2_arg_vmalloc_test` reports a quiescent state each loop
//!   (`cond_resched`), where Linux's vmalloc passes one in might_sleep();
//! * `vm_map_ram_test` (bit 10) is 6.12's; it runs here (vm_map_ram with
//!   vmap blocks, as 5.10 has it), to compare with the 6.12 baseline row;
//! * `use_huge`: no huge vmalloc mappings here (vmalloc maps 4 KiB pages);
//! * random numbers come from a seeded xorshift (`bench.seed=`), not the
//!   kernel's CRNG, so runs repeat exactly.

use super::{Rng, get_cycles, parse_bool, parse_int, ticks_to_ns};
use crate::arch::memory::PAGE_SIZE;
use crate::kernel::locking::spinlock::SpinLock;
use crate::kernel::rcu::kvfree::{kvfree_rcu_arg_1, kvfree_rcu_arg_2};
use crate::kernel::rcu::segcblist::RcuHead;
use crate::kernel::rcu::tree::cond_resched;
use crate::mm::gfp::{__GFP_ZERO, GFP_KERNEL};
use crate::mm::percpu::{__alloc_percpu, free_percpu};
use crate::mm::vmalloc::{self, __vmalloc_node, vfree, vmalloc};
use crate::mm::vmap_block::{vm_map_ram, vm_unmap_ram};
use crate::{pr_info, pr_warn};
use core::panic::Location;
use core::ptr;

/// test_vmalloc's module parameters (names, types and defaults as in 6.1).
#[derive(Clone, Debug)]
pub struct Params {
    /// Bit i runs `TEST_CASES[i]`. Default INT_MAX: everything.
    pub run_test_mask: i32,
    pub test_repeat_count: i32,
    pub test_loop_count: i32,
    /// Pages for fix_size_alloc_test; 0 means 1 (6.1's default).
    pub nr_pages: i32,
    pub sequential_test_order: bool,
    pub nr_threads: i32,
    pub use_huge: bool,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            run_test_mask: i32::MAX,
            test_repeat_count: 1,
            test_loop_count: 1_000_000,
            nr_pages: 0,
            sequential_test_order: false,
            nr_threads: 0,
            use_huge: false,
        }
    }
}

impl Params {
    /// Set one parameter from its module-parameter text.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), &'static str> {
        let int = || {
            parse_int(value)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or("bad integer for")
        };
        let boolean = || parse_bool(value).ok_or("bad boolean for");
        match name {
            "run_test_mask" => self.run_test_mask = int()?,
            "test_repeat_count" => self.test_repeat_count = int()?,
            "test_loop_count" => self.test_loop_count = int()?,
            "nr_pages" => self.nr_pages = int()?,
            "nr_threads" => self.nr_threads = int()?,
            "sequential_test_order" => self.sequential_test_order = boolean()?,
            "use_huge" => self.use_huge = boolean()?,
            _ => return Err("unknown parameter"),
        }
        Ok(())
    }
}

/// A scenario: 0 on success, as Linux's test functions return.
type Case = fn(&Ctx, &mut Rng) -> i32;

/// Linux's test_case_array, in its order (bit i of run_test_mask = entry i;
/// bit 10 is 6.12's vm_map_ram_test).
const TEST_CASES: [(&str, Case); 11] = [
    ("fix_size_alloc_test", fix_size_alloc_test),
    ("full_fit_alloc_test", full_fit_alloc_test),
    ("long_busy_list_alloc_test", long_busy_list_alloc_test),
    ("random_size_alloc_test", random_size_alloc_test),
    ("fix_align_alloc_test", fix_align_alloc_test),
    ("random_size_align_alloc_test", random_size_align_alloc_test),
    ("align_shift_alloc_test", align_shift_alloc_test),
    ("pcpu_alloc_test", pcpu_alloc_test),
    ("kvfree_rcu_1_arg_vmalloc_test", kvfree_rcu_1_arg_vmalloc_test),
    ("kvfree_rcu_2_arg_vmalloc_test", kvfree_rcu_2_arg_vmalloc_test),
    ("vm_map_ram_test", vm_map_ram_test),
];

/// Names of every scenario, in mask-bit order.
pub fn test_names() -> impl Iterator<Item = &'static str> {
    TEST_CASES.iter().map(|c| c.0)
}

/// What the scenarios read (Linux: the module's globals).
struct Ctx {
    test_loop_count: i32,
    nr_pages: i32,
}

/// A scenario's return value when Ctrl-C stopped it (0: passed, -1: failed).
const INTERRUPTED: i32 = 1;

/// Poll for Ctrl-C every 1024 loops: one UART status read, lost in the
/// noise of 1024 vmalloc+vfree pairs.
#[inline(always)]
fn stop(i: i32) -> bool {
    i & 1023 == 1023 && super::interrupted()
}

/// arm64's THREAD_ALIGN with VMAP_STACK (2 * THREAD_SIZE, 16 KiB stacks):
/// fix_align_alloc_test asks for twice that.
const THREAD_ALIGN: usize = 2 * 16 * 1024;

/// The `*((__u8 *)ptr) = v` of every scenario: the memory must be usable.
#[inline(always)]
fn touch(p: *mut u8, v: u8) {
    // SAFETY: every caller passes a non-null pointer vmalloc just returned
    // and has not freed: at least one mapped, writable page.
    unsafe { ptr::write_volatile(p, v) };
}

/// __vmalloc_node(size, align, GFP_KERNEL | __GFP_ZERO, 0, caller): always
/// zeroed, whatever init_on_alloc says (as in Linux).
#[inline(always)]
fn vmalloc_node_zero(size: usize, align: usize) -> *mut u8 {
    __vmalloc_node(size, align, GFP_KERNEL | __GFP_ZERO, 0, Location::caller()) as *mut u8
}

fn random_size_align_alloc_test(c: &Ctx, rng: &mut Rng) -> i32 {
    for i in 0..c.test_loop_count {
        if stop(i) {
            return INTERRUPTED;
        }
        let rnd = rng.next_u8() as usize;
        // Maximum 1024 pages, if PAGE_SIZE is 4096.
        let align = 1usize << (rnd % 23);
        // Maximum 10 pages.
        let size = ((rnd % 10) + 1) * PAGE_SIZE;
        let p = vmalloc_node_zero(size, align);
        if p.is_null() {
            return -1;
        }
        vfree(p);
    }
    0
}

/// "This test case is supposed to be failed."
fn align_shift_alloc_test(_c: &Ctx, _rng: &mut Rng) -> i32 {
    for i in 0..usize::BITS {
        let align = 1usize << i;
        let p = vmalloc_node_zero(PAGE_SIZE, align);
        if p.is_null() {
            return -1;
        }
        vfree(p);
    }
    0
}

fn fix_align_alloc_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    for i in 0..c.test_loop_count {
        if stop(i) {
            return INTERRUPTED;
        }
        let p = vmalloc_node_zero(5 * PAGE_SIZE, THREAD_ALIGN << 1);
        if p.is_null() {
            return -1;
        }
        vfree(p);
    }
    0
}

fn random_size_alloc_test(c: &Ctx, rng: &mut Rng) -> i32 {
    for i in 0..c.test_loop_count {
        if stop(i) {
            return INTERRUPTED;
        }
        let n = rng.inclusive(1, 100) as usize;
        let p = vmalloc(n * PAGE_SIZE);
        if p.is_null() {
            return -1;
        }
        touch(p, 1);
        vfree(p);
    }
    0
}

/// Linux 6.1's pcpu_alloc_test: 35 000 per-CPU areas of 1..PAGE_SIZE/4
/// bytes, aligned to 2..2048, then all freed (test_loop_count unused).
fn pcpu_alloc_test(_c: &Ctx, rng: &mut Rng) -> i32 {
    const N: usize = 35_000;
    let pcpu = vmalloc(core::mem::size_of::<*mut u8>() * N) as *mut *mut u8;
    if pcpu.is_null() {
        return -1;
    }
    let mut rv = 0;
    for i in 0..N {
        if stop(i as i32) {
            // Free what was allocated so far before leaving.
            for j in 0..i {
                // SAFETY: slots 0..i were written below.
                free_percpu(unsafe { pcpu.add(j).read() });
            }
            vfree(pcpu as *const u8);
            return INTERRUPTED;
        }
        let size = rng.below((PAGE_SIZE / 4) as u32) as usize + 1;
        let align = 1usize << (rng.below(11) + 1);
        let p = __alloc_percpu(size, align);
        if p.is_null() {
            rv = -1;
        }
        // SAFETY: pcpu is a live vmalloc area of N pointers and i < N.
        unsafe { pcpu.add(i).write(p) };
    }
    for i in 0..N {
        // SAFETY: every slot was written above (null ones are ignored).
        free_percpu(unsafe { pcpu.add(i).read() });
    }
    vfree(pcpu as *const u8);
    rv
}

fn long_busy_list_alloc_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    const N: usize = 15000;
    let ptr = vmalloc(core::mem::size_of::<*mut u8>() * N) as *mut *mut u8;
    if ptr.is_null() {
        return -1;
    }
    for i in 0..N {
        // SAFETY: ptr is a live vmalloc area of N pointers (page-aligned,
        // so aligned for them) and i < N; write() needs no initialised slot.
        unsafe { ptr.add(i).write(vmalloc(PAGE_SIZE)) };
    }
    let mut rv = -1;
    'leave: {
        for i in 0..c.test_loop_count {
            if stop(i) {
                rv = INTERRUPTED;
                break 'leave;
            }
            let p1 = vmalloc(100 * PAGE_SIZE);
            if p1.is_null() {
                break 'leave;
            }
            let p2 = vmalloc(PAGE_SIZE);
            if p2.is_null() {
                vfree(p1);
                break 'leave;
            }
            touch(p1, 0);
            touch(p2, 1);
            vfree(p1);
            vfree(p2);
        }
        rv = 0;
    }
    for i in 0..N {
        // SAFETY: i < N, and slot i was written by the first loop.
        vfree(unsafe { ptr.add(i).read() });
    }
    vfree(ptr as *mut u8);
    rv
}

fn full_fit_alloc_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    // fls(num_online_cpus()) * 32 MiB worth of pages, as Linux (the
    // lazy_max_pages() of as many CPUs).
    let cpus = crate::arch::kernel::smp::num_online_cpus().max(1);
    let fls = (usize::BITS - cpus.leading_zeros()) as usize;
    let junk_length = fls * (32 * 1024 * 1024 / PAGE_SIZE);
    let ptr = vmalloc(core::mem::size_of::<*mut u8>() * junk_length) as *mut *mut u8;
    if ptr.is_null() {
        return -1;
    }
    let junk_ptr = vmalloc(core::mem::size_of::<*mut u8>() * junk_length) as *mut *mut u8;
    if junk_ptr.is_null() {
        vfree(ptr as *mut u8);
        return -1;
    }
    for i in 0..junk_length {
        // SAFETY: both are live vmalloc areas of junk_length pointers
        // (page-aligned) and i < junk_length; write() needs no initialised
        // slot.
        unsafe {
            ptr.add(i).write(vmalloc(PAGE_SIZE));
            junk_ptr.add(i).write(vmalloc(PAGE_SIZE));
        }
    }
    for i in 0..junk_length {
        // SAFETY: i < junk_length, and slot i was written above.
        vfree(unsafe { junk_ptr.add(i).read() });
    }
    let mut rv = -1;
    'error: {
        for i in 0..c.test_loop_count {
            if stop(i) {
                rv = INTERRUPTED;
                break 'error;
            }
            let tmp = vmalloc(PAGE_SIZE);
            if tmp.is_null() {
                break 'error;
            }
            touch(tmp, 1);
            vfree(tmp);
        }
        rv = 0;
    }
    for i in 0..junk_length {
        // SAFETY: i < junk_length, and slot i was written before the loop.
        vfree(unsafe { ptr.add(i).read() });
    }
    vfree(ptr as *mut u8);
    vfree(junk_ptr as *mut u8);
    rv
}

/// 6.12's vm_map_ram_test: `nr_pages` (default 1) pages mapped with
/// vm_map_ram, written, unmapped, test_loop_count times. The pages come
/// one by one from alloc_pages (Linux: alloc_pages_bulk_array), outside the
/// timed loop either way.
fn vm_map_ram_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    let n = if c.nr_pages > 0 { c.nr_pages as usize } else { 1 };
    let mut pages: alloc::vec::Vec<crate::arch::memory::PhysAddr> = alloc::vec::Vec::new();
    if pages.try_reserve_exact(n).is_err() {
        return -1;
    }
    while pages.len() < n {
        match crate::mm::page_alloc::alloc_pages(0) {
            Some(pa) => pages.push(pa),
            None => break,
        }
    }
    let mut ret = if pages.len() == n { 0 } else { -1 };
    if ret == 0 {
        for i in 0..c.test_loop_count {
            if stop(i) {
                ret = INTERRUPTED;
                break;
            }
            let p = vm_map_ram(&pages);
            if p.is_null() {
                ret = -1;
                break;
            }
            touch(p, b'a');
            vm_unmap_ram(p, n);
        }
    }
    for &pa in &pages {
        crate::mm::page_alloc::__free_pages(pa, 0);
    }
    ret
}

/// 6.1's `struct test_kvfree_rcu`: an rcu_head and 20 bytes.
#[repr(C)]
struct TestKvfreeRcu {
    rcu: RcuHead,
    array: [u8; 20],
}

/// vmalloc one page, write it, kvfree_rcu(p): the one-argument form, which
/// may sleep, so it reports a quiescent state itself, and the batches it
/// hands to grace periods drain inside the loop, as Linux's do between the
/// test thread's time slices on one CPU.
fn kvfree_rcu_1_arg_vmalloc_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    for i in 0..c.test_loop_count {
        if stop(i) {
            return INTERRUPTED;
        }
        let p = vmalloc(PAGE_SIZE) as *mut TestKvfreeRcu;
        if p.is_null() {
            return -1;
        }
        // SAFETY: p is a fresh, mapped vmalloc page; array is in it.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*p).array[0]), b'a') };
        // SAFETY: p came from vmalloc, is freed once and not used again;
        // we are in no read-side critical section.
        unsafe { kvfree_rcu_arg_1(p) };
    }
    0
}

/// As the one-argument test with kvfree_rcu(p, rcu). The two-argument
/// form never sleeps, so it reports no quiescent state; Linux's loop
/// passes one in vmalloc (might_sleep -> cond_resched -> rcu_all_qs on a
/// kernel without preemptible RCU), which vmkernel's vmalloc lacks, so the
/// loop reports it here.
fn kvfree_rcu_2_arg_vmalloc_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    for i in 0..c.test_loop_count {
        if stop(i) {
            return INTERRUPTED;
        }
        let p = vmalloc(PAGE_SIZE) as *mut TestKvfreeRcu;
        if p.is_null() {
            return -1;
        }
        cond_resched();
        // SAFETY: p is a fresh, mapped vmalloc page; array is in it.
        unsafe { ptr::write_volatile(ptr::addr_of_mut!((*p).array[0]), b'a') };
        // SAFETY: p came from vmalloc, is freed once and not used again;
        // its rcu field lies inside it.
        unsafe { kvfree_rcu_arg_2(p, ptr::addr_of_mut!((*p).rcu)) };
    }
    0
}

fn fix_size_alloc_test(c: &Ctx, _rng: &mut Rng) -> i32 {
    let size = (if c.nr_pages > 0 { c.nr_pages as usize } else { 1 }) * PAGE_SIZE;
    for i in 0..c.test_loop_count {
        if stop(i) {
            return INTERRUPTED;
        }
        let p = vmalloc(size);
        if p.is_null() {
            return -1;
        }
        touch(p, 0);
        vfree(p);
    }
    0
}

/// Linux's shuffle_array (note: j is drawn below i, not up to i).
fn shuffle_array(arr: &mut [usize], rng: &mut Rng) {
    for i in (1..arr.len()).rev() {
        let j = rng.below(i as u32) as usize;
        arr.swap(i, j);
    }
}

#[derive(Clone, Copy, Default)]
struct CaseData {
    passed: i32,
    failed: i32,
    usec: u64,
    ticks: u64,
}

/// One result, for callers that want the numbers (tests, the shell).
#[derive(Clone, Copy, Debug)]
pub struct CaseResult {
    pub name: &'static str,
    pub passed: i32,
    pub failed: i32,
    pub usec: u64,
    pub ticks: u64,
}

/// Linux's test_func + do_concurrent_test: run the selected scenarios on
/// `nr_threads` workers (one per CPU), then print each worker's summary.
/// Returns the results of the scenarios that ran (with several workers,
/// the mean over them).
pub fn run(p: &Params, seed: u64) -> alloc::vec::Vec<CaseResult> {
    let mut p = p.clone();
    // init_test_configurtion()
    let online = crate::arch::kernel::smp::num_online_cpus().max(1);
    let nr_threads = (p.nr_threads.max(1) as usize).min(online);
    if p.nr_threads as usize > online {
        pr_warn!(
            "test_vmalloc: nr_threads={}: {} CPU(s) online and one worker per CPU (no scheduler); using {} workers",
            p.nr_threads,
            online,
            nr_threads
        );
    }
    if p.test_repeat_count <= 0 {
        p.test_repeat_count = 1;
    }
    if p.test_loop_count <= 0 {
        p.test_loop_count = 1;
    }
    if p.use_huge {
        pr_warn!(
            "test_vmalloc: use_huge=1: no huge vmalloc mappings in vmkernel; fix_size_alloc_test maps 4 KiB pages"
        );
    }
    let ctx = Ctx {
        test_loop_count: p.test_loop_count,
        nr_pages: p.nr_pages,
    };
    pr_info!(
        "test_vmalloc: run_test_mask={:#x} test_loop_count={} test_repeat_count={} nr_pages={} sequential_test_order={} init_on_alloc={} seed={:#x}{}",
        p.run_test_mask,
        p.test_loop_count,
        p.test_repeat_count,
        p.nr_pages,
        p.sequential_test_order as u8,
        vmalloc::init_on_alloc() as u8,
        seed,
        if nr_threads > 1 {
            alloc::format!(" nr_threads={}", nr_threads)
        } else {
            alloc::string::String::new()
        }
    );

    if nr_threads == 1 {
        let w = test_func(&p, &ctx, seed);
        return report(&p, &[w], false);
    }
    // Worker i on CPU i; each fills its own slot.
    let slots: [SpinLock<Option<WorkerRun>>; crate::arch::kernel::percpu::NR_CPUS] =
        [const { SpinLock::new(None) }; crate::arch::kernel::percpu::NR_CPUS];
    let cpus: alloc::vec::Vec<usize> = (0..crate::arch::kernel::percpu::NR_CPUS)
        .filter(|&c| crate::arch::kernel::smp::cpu_online(c))
        .take(nr_threads)
        .collect();
    let mask = cpus.iter().fold(0u64, |m, &c| m | 1 << c);
    let failed = crate::arch::kernel::smp::run_on_cpus(mask, &|cpu| {
        let worker = cpus.iter().position(|&c| c == cpu).unwrap_or(0);
        // Worker 0 draws what the one-worker run draws.
        let w = test_func(&p, &ctx, seed ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        *slots[worker].lock() = Some(w);
    });
    if failed != 0 {
        pr_warn!("test_vmalloc: CPUs {:#x} did not run their worker", failed);
    }
    let runs: alloc::vec::Vec<WorkerRun> = slots.iter().filter_map(|s| s.lock().take()).collect();
    report(&p, &runs, true)
}

/// One worker's figures (Linux: struct test_driver).
struct WorkerRun {
    data: [CaseData; TEST_CASES.len()],
    /// Scenarios that ran to the end (Ctrl-C can stop the run).
    completed: [bool; TEST_CASES.len()],
    stopped_in: Option<&'static str>,
    start: u64,
    stop: u64,
}

/// Linux's test_func: the selected scenarios, in this worker's order.
fn test_func(p: &Params, ctx: &Ctx, seed: u64) -> WorkerRun {
    let mut rng = Rng::new(seed);
    let mut order: [usize; TEST_CASES.len()] = core::array::from_fn(|i| i);
    if !p.sequential_test_order {
        shuffle_array(&mut order, &mut rng);
    }
    let selected = |i: usize| (p.run_test_mask as u32 >> i) & 1 != 0;
    let mut data = [CaseData::default(); TEST_CASES.len()];
    let mut completed = [false; TEST_CASES.len()];
    let mut stopped_in: Option<&'static str> = None;
    let start = get_cycles();
    'scenarios: for &index in &order {
        if !selected(index) {
            continue;
        }
        let f = TEST_CASES[index].1;
        if super::interrupted() {
            break;
        }
        let kt = get_cycles();
        for _ in 0..p.test_repeat_count {
            match f(ctx, &mut rng) {
                0 => data[index].passed += 1,
                INTERRUPTED => {
                    stopped_in = Some(TEST_CASES[index].0);
                    break 'scenarios;
                }
                _ => data[index].failed += 1,
            }
        }
        completed[index] = true;
        let ticks = get_cycles() - kt;
        data[index].ticks = ticks / p.test_repeat_count as u64;
        data[index].usec = ticks_to_ns(ticks) / 1000 / p.test_repeat_count as u64;
    }
    let stop = get_cycles();
    WorkerRun {
        data,
        completed,
        stopped_in,
        start,
        stop,
    }
}

/// Each worker's `Summary:` lines and cycles (do_concurrent_test's report),
/// then one machine-readable line per scenario: the worker's figures, or
/// with several workers their mean.
fn report(p: &Params, runs: &[WorkerRun], several: bool) -> alloc::vec::Vec<CaseResult> {
    let selected = |i: usize| (p.run_test_mask as u32 >> i) & 1 != 0;
    let mut results = alloc::vec::Vec::new();
    for (worker, w) in runs.iter().enumerate() {
        let (data, completed, stopped_in) = (&w.data, &w.completed, w.stopped_in);
        for (j, (name, _)) in TEST_CASES.iter().enumerate() {
            if !selected(j) {
                continue;
            }
            match completed[j] {
                false => pr_info!(
                    "Interrupted: {} {}",
                    name,
                    if stopped_in == Some(*name) {
                        "stopped by Ctrl-C; no figures"
                    } else {
                        "not run (Ctrl-C)"
                    }
                ),
                true => {
                    let d = data[j];
                    pr_info!(
                        "Summary: {} passed: {} failed: {} repeat: {} loops: {} avg: {} usec",
                        name,
                        d.passed,
                        d.failed,
                        p.test_repeat_count,
                        p.test_loop_count,
                        d.usec
                    );
                    if worker == 0 {
                        results.push(CaseResult {
                            name,
                            passed: 0,
                            failed: 0,
                            usec: 0,
                            ticks: 0,
                        });
                    }
                    if let Some(r) = results.iter_mut().find(|r| r.name == *name) {
                        r.passed += d.passed;
                        r.failed += d.failed;
                        r.usec += d.usec;
                        r.ticks += d.ticks;
                    }
                }
            }
        }
        if several {
            pr_info!("All test took worker{}={} cycles", worker, w.stop - w.start);
        } else {
            pr_info!("All test took CPU0={} cycles", w.stop - w.start);
        }
    }
    // The mean over the workers (a scenario one worker did not complete
    // has no figures from it and is left out).
    let workers = runs.len() as u64;
    results.retain(|r| {
        runs.iter().all(|w| {
            TEST_CASES
                .iter()
                .position(|c| c.0 == r.name)
                .is_some_and(|j| w.completed[j])
        })
    });
    for r in &mut results {
        r.usec /= workers;
        r.ticks /= workers;
    }
    // Machine-readable detail for scripts/bench.sh: ticks per scenario.
    for r in &results {
        pr_info!(
            "bench: test_vmalloc {} passed={} failed={} loops={} repeat={} usec={} ticks={} init_on_alloc={}{}",
            r.name,
            r.passed,
            r.failed,
            p.test_loop_count,
            p.test_repeat_count,
            r.usec,
            r.ticks,
            vmalloc::init_on_alloc() as u8,
            if several {
                alloc::format!(" workers={}", workers)
            } else {
                alloc::string::String::new()
            }
        );
    }
    results
}
