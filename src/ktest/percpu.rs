// SPDX-License-Identifier: GPL-2.0-only
//! The per-CPU allocator (mm/percpu.rs): `__alloc_percpu`/`free_percpu`
//! on the first chunk and on chunks it creates from vmalloc space, every
//! CPU's copy, and that nothing is left behind, failure paths included.

use super::{Case, Suite, Test};
use crate::arch::kernel::percpu::{self as arch_percpu, NR_CPUS};
use crate::arch::kernel::smp::{self, num_online_cpus};
use crate::arch::memory::*;
use crate::kassert;
use crate::mm::percpu::{self, __alloc_percpu, free_percpu, per_cpu_ptr, this_cpu_ptr};
use crate::mm::{fault_inject, page_alloc, vmalloc as vm};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

pub static SUITE: Suite = Suite {
    name: "percpu",
    cases: &[
        Case {
            name: "alloc_is_aligned_zeroed_and_one_unit_apart",
            run: aligned_zeroed_one_unit_apart,
        },
        Case {
            name: "every_cpu_writes_its_own_copy",
            run: every_cpu_its_own_copy,
        },
        Case {
            name: "new_chunks_populate_and_free_without_leak",
            run: new_chunks_without_leak,
        },
        Case {
            name: "fault_injection_sweep_through_chunk_creation",
            run: fault_injection_sweep,
        },
        Case {
            name: "bad_frees_are_reported_and_ignored",
            run: bad_frees_ignored,
        },
        Case {
            name: "illegal_size_or_align_fails",
            run: illegal_requests_fail,
        },
    ],
};

/// What must come back after a case: every page either free (after a
/// purge) or backing a chunk (which chunk is kept empty may change), busy
/// vmalloc areas, chunks and live allocations.
#[derive(PartialEq, Eq, Debug)]
struct State {
    free_or_populated_pages: usize,
    busy_areas: usize,
    nr_chunks: usize,
    nr_cur_alloc: usize,
}

fn state() -> State {
    vm::purge_vmap_area_lazy();
    let s = percpu::pcpu_stats();
    State {
        free_or_populated_pages: page_alloc::nr_free_pages().0 + s.populated_pages,
        busy_areas: vm::snapshot().busy_areas,
        nr_chunks: s.nr_chunks,
        nr_cur_alloc: s.nr_cur_alloc,
    }
}

fn check_invariants(t: &mut Test) {
    if let Err(e) = percpu::check_percpu_invariants() {
        t.fail(file!(), line!(), format_args!("{}", e));
    }
}

/// Units: one per possible CPU.
fn nr_units() -> usize {
    percpu::pcpu_geometry().2
}

/// Allocate `n` areas of `size` bytes (stopping at the first failure),
/// then free them: the heap's vectors and the one empty chunk kept for
/// the next allocation are in place afterwards, so a later before/after
/// comparison sees only what the case itself leaves.
fn warm_up(n: usize, size: usize) {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let p = __alloc_percpu(size, 8);
        if p.is_null() {
            break;
        }
        v.push(p);
    }
    for p in v {
        free_percpu(p);
    }
}

fn aligned_zeroed_one_unit_apart(t: &mut Test) {
    let (unit_size, _, units) = percpu::pcpu_geometry();
    kassert!(
        t,
        units >= 1 && unit_size >= percpu::PCPU_MIN_UNIT_SIZE,
        "geometry {} x {}",
        units,
        unit_size
    );
    for &size in &[1usize, 4, 13, 64, 1000, PAGE_SIZE, 20_000] {
        for &align in &[1usize, 4, 8, 64, 1024, PAGE_SIZE] {
            let p = __alloc_percpu(size, align);
            kassert!(t, !p.is_null(), "__alloc_percpu({}, {}) failed", size, align);
            let base = per_cpu_ptr(p, 0) as usize;
            for cpu in 0..units {
                let a = per_cpu_ptr(p, cpu);
                let ok_align = (a as usize).is_multiple_of(align);
                let ok_apart = a as usize == base + cpu * unit_size;
                // SAFETY: CPU `cpu`'s copy of a live `size`-byte allocation.
                let bytes = unsafe { core::slice::from_raw_parts_mut(a, size) };
                let zeroed = bytes.iter().all(|&b| b == 0);
                bytes.fill(0xa5);
                if !(ok_align && ok_apart && zeroed) {
                    free_percpu(p);
                    t.fail(
                        file!(),
                        line!(),
                        format_args!(
                            "__alloc_percpu({}, {}): CPU{}'s copy at {:#x}: aligned {}, one unit from CPU0's {}, zeroed {}",
                            size, align, cpu, a as usize, ok_align, ok_apart, zeroed
                        ),
                    );
                    return;
                }
            }
            free_percpu(p);
        }
    }
    // A freed area comes back zeroed although it was written.
    let p = __alloc_percpu(256, 64);
    kassert!(t, !p.is_null());
    // SAFETY: CPU 0's copy of a live 256-byte allocation.
    let zero = unsafe { core::slice::from_raw_parts(per_cpu_ptr(p, 0), 256) }
        .iter()
        .all(|&b| b == 0);
    free_percpu(p);
    kassert!(t, zero, "a reused per-CPU area was not zeroed");
    check_invariants(t);
}

fn every_cpu_its_own_copy(t: &mut Test) {
    crate::kskip_unless!(t, num_online_cpus() > 1, "one CPU online");
    let p = __alloc_percpu(8, 8);
    kassert!(t, !p.is_null());
    let bad = AtomicUsize::new(usize::MAX);
    let mask = smp::cpu_online_mask();
    let cookie = p as usize; // a __percpu pointer is just a number to share
    let missed = smp::run_on_cpus(mask, &|cpu| {
        let p = cookie as *mut u8;
        let mine = this_cpu_ptr(p) as *mut u64;
        // TPIDR_EL1 is this CPU's per-cpu offset, and this_cpu_ptr agrees
        // with per_cpu_ptr for the running CPU.
        if mine != per_cpu_ptr(p, cpu) as *mut u64 || arch_percpu::tpidr_el1() != arch_percpu::per_cpu_offset(cpu) {
            bad.store(cpu, Ordering::Relaxed);
        }
        // SAFETY: this CPU's copy of a live 8-byte, 8-aligned allocation.
        unsafe { mine.write_volatile(0x1111 * cpu as u64 + 7) };
    });
    let ran = mask & !missed;
    let wrong = bad.load(Ordering::Relaxed);
    let mut msg = String::new();
    for cpu in 0..NR_CPUS {
        if ran & (1 << cpu) == 0 {
            continue;
        }
        // SAFETY: CPU `cpu`'s copy, written by that CPU inside run_on_cpus,
        // which returned after it finished.
        let v = unsafe { (per_cpu_ptr(p, cpu) as *const u64).read_volatile() };
        if v != 0x1111 * cpu as u64 + 7 {
            let _ = write!(msg, " CPU{} holds {:#x};", cpu, v);
        }
    }
    free_percpu(p);
    kassert!(
        t,
        wrong == usize::MAX,
        "CPU{}: this_cpu_ptr or TPIDR_EL1 disagrees with its per_cpu_offset",
        wrong
    );
    kassert!(
        t,
        ran.count_ones() as usize == num_online_cpus(),
        "only CPUs {:#x} ran",
        ran
    );
    kassert!(t, msg.is_empty(), "copies overwritten by another CPU:{}", msg);
}

fn new_chunks_without_leak(t: &mut Test) {
    const N: usize = 300; // 300 KiB a unit: several 32 KiB chunks
    warm_up(N, 1024);
    let before = state();
    let populated_before = percpu::pcpu_stats().populated_pages;
    let created = percpu::pcpu_stats().chunks_created;
    let mut v = Vec::with_capacity(N);
    for _ in 0..N {
        let p = __alloc_percpu(1024, 8);
        if p.is_null() {
            break;
        }
        v.push(p);
    }
    let during = percpu::pcpu_stats();
    let units = nr_units();
    check_invariants(t);
    for &p in &v {
        free_percpu(p);
    }
    let got = v.len();
    drop(v);
    let after = state();
    kassert!(t, got == N, "only {} of {} 1 KiB allocations succeeded", got, N);
    kassert!(
        t,
        during.nr_chunks >= before.nr_chunks + 8,
        "{} chunks for {} KiB a unit (from {})",
        during.nr_chunks,
        N,
        before.nr_chunks
    );
    kassert!(t, during.chunks_created > created, "no chunk created");
    // Every unit backs what the first chunk could not hold.
    let (unit_size, _, _) = percpu::pcpu_geometry();
    let need = (N * 1024 - unit_size) / PAGE_SIZE * units;
    kassert!(
        t,
        during.populated_pages >= need && during.populated_pages > populated_before,
        "{} pages populated for {} KiB on {} unit(s), {} expected at least",
        during.populated_pages,
        N,
        units,
        need
    );
    kassert!(
        t,
        after == before,
        "state changed\n    before {:?}\n    after  {:?}",
        before,
        after
    );
    check_invariants(t);
}

/// The sequence the sweep fails at every allocation in turn: enough 1 KiB
/// areas (100 KiB a unit) to fill the first chunk and the empty one kept,
/// and need new chunks (vm_struct, vmap_area, pages).
fn sweep_sequence(out: &mut Vec<*mut u8>) -> bool {
    for _ in 0..100 {
        let p = __alloc_percpu(1024, 8);
        if p.is_null() {
            return false;
        }
        out.push(p);
    }
    true
}

fn fault_injection_sweep(t: &mut Test) {
    let mut v: Vec<*mut u8> = Vec::with_capacity(128);
    // Warm up: the chunk kept empty is destroyed by the sequence's own
    // frees, so each trial below starts from the same state.
    sweep_sequence(&mut v);
    v.drain(..).for_each(free_percpu);
    let before = state();
    let mut n = 1;
    loop {
        let created = percpu::pcpu_stats().chunks_created;
        fault_inject::arm(n);
        let ok = sweep_sequence(&mut v);
        let (seen, injected) = fault_inject::disarm();
        let made = percpu::pcpu_stats().chunks_created - created;
        v.drain(..).for_each(free_percpu);
        let after = state();
        if injected == 0 {
            kassert!(t, ok, "the sequence failed without an injected failure");
            kassert!(
                t,
                made >= 1,
                "the clean run created no chunk ({} allocations seen)",
                seen
            );
            break;
        }
        kassert!(t, !ok, "failing allocation {} went unnoticed", n);
        kassert!(
            t,
            after == before,
            "failing allocation {}: state changed\n    before {:?}\n    after  {:?}",
            n,
            before,
            after
        );
        n += 1;
        kassert!(t, n < 10_000, "the sweep does not end");
    }
    check_invariants(t);
}

fn bad_frees_ignored(t: &mut Test) {
    let p = __alloc_percpu(64, 8);
    kassert!(t, !p.is_null());
    let s0 = percpu::pcpu_stats();
    free_percpu(p.wrapping_add(4)); // inside the allocation
    free_percpu(0x1234 as *mut u8); // no chunk
    let s1 = percpu::pcpu_stats();
    free_percpu(p);
    free_percpu(p); // double free
    let s2 = percpu::pcpu_stats();
    kassert!(
        t,
        s1.nr_dealloc == s0.nr_dealloc && s1.nr_cur_alloc == s0.nr_cur_alloc,
        "a bad free released something"
    );
    kassert!(
        t,
        s2.nr_dealloc == s0.nr_dealloc + 1,
        "{} frees counted, 1 expected",
        s2.nr_dealloc - s0.nr_dealloc
    );
    check_invariants(t);
}

fn illegal_requests_fail(t: &mut Test) {
    let (unit_size, _, _) = percpu::pcpu_geometry();
    for &(size, align) in &[(0usize, 8usize), (unit_size, 8), (64, 3), (64, 2 * PAGE_SIZE)] {
        let p = __alloc_percpu(size, align);
        if !p.is_null() {
            free_percpu(p);
        }
        kassert!(t, p.is_null(), "__alloc_percpu({}, {}) succeeded", size, align);
    }
}
