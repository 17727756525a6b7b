// SPDX-License-Identifier: GPL-2.0-only
//! RCU: grace periods, callbacks and kvfree_rcu (src/kernel/rcu/). The
//! cross-CPU cases run workers through `run_on_cpus` and order events by
//! stamps from one atomic counter; they skip on one CPU, where the
//! single-CPU cases still check the same rules on CPU 0.

use super::workers::{run_workers, worker_fail};
use super::{Case, Suite, Test};
use crate::arch::barrier::cpu_relax;
use crate::arch::kernel::percpu::NR_CPUS;
use crate::arch::kernel::setup;
use crate::arch::kernel::smp::{self, cpu_online, cpu_online_mask, num_online_cpus};
use crate::arch::kernel::timer;
use crate::arch::memory::PAGE_SIZE;
use crate::arch::mm::mmu as paging;
use crate::kernel::rcu::kvfree::{kvfree_rcu_arg_1, kvfree_rcu_arg_2, kvfree_rcu_barrier, kvfree_rcu_queued};
use crate::kernel::rcu::segcblist::{RcuHead, rcu_seq_done, rcu_seq_snap};
use crate::kernel::rcu::tree::{
    call_rcu, cond_resched, rcu_assign_pointer, rcu_barrier, rcu_callback_counts, rcu_callbacks_invoked,
    rcu_dereference, rcu_gp_seq, rcu_qs_in_reader_count, rcu_qs_pending, rcu_read_lock, rcu_read_unlock,
    synchronize_rcu,
};
use crate::mm::slab::{self, kfree, kmalloc};
use crate::mm::vmalloc::{self as vm, vmalloc};
use crate::mm::{fault_inject, heap, page_alloc, vmap_block as vb};
use crate::{kassert, kassert_eq, kskip_unless};
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

pub static SUITE: Suite = Suite {
    name: "rcu",
    cases: &[
        Case {
            name: "callback_runs_after_grace_period_one_cpu",
            run: callback_runs_after_grace_period_one_cpu,
        },
        Case {
            name: "qs_inside_reader_is_refused",
            run: qs_inside_reader_is_refused,
        },
        Case {
            name: "reader_on_cpu1_holds_synchronize_rcu_on_cpu0",
            run: reader_holds_synchronize_rcu,
        },
        Case {
            name: "callbacks_run_after_every_cpu_passed_qs",
            run: callbacks_wait_for_every_cpu,
        },
        Case {
            name: "synchronize_rcu_other_cpus_idle",
            run: synchronize_rcu_others_idle,
        },
        Case {
            name: "synchronize_rcu_with_a_cpu_offline",
            run: synchronize_rcu_cpu_offline,
        },
        Case {
            name: "kvfree_rcu_vmalloc_restores_memfree",
            run: kvfree_rcu_vmalloc_restores_memfree,
        },
        Case {
            name: "kvfree_rcu_kmalloc_restores_objects",
            run: kvfree_rcu_kmalloc_restores_objects,
        },
        Case {
            name: "kvfree_rcu_without_memory_for_a_batch",
            run: kvfree_rcu_without_memory,
        },
        Case {
            name: "kvfree_rcu_10000_from_all_cpus",
            run: kvfree_rcu_from_all_cpus,
        },
    ],
};

/// Event order across CPUs: each stamp is the next value of one counter.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn stamp() -> u64 {
    SEQ.fetch_add(1, Ordering::SeqCst) + 1
}

/// Spin for `us` microseconds of the generic timer.
fn delay_us(us: u64) {
    let start = timer::get_cycles();
    let ticks = timer::frequency() * us / 1_000_000;
    while timer::get_cycles() - start < ticks {
        cpu_relax();
    }
}

/// Wait (spinning) until `flag` is set, at most 1 s.
fn wait_flag(flag: &AtomicBool) -> bool {
    let start = timer::get_cycles();
    while !flag.load(Ordering::Acquire) {
        if timer::get_cycles() - start > timer::frequency() {
            return false;
        }
        cpu_relax();
    }
    true
}

/// A callback that records when it ran.
#[repr(C)]
struct Stamped {
    head: RcuHead,
    ran_at: AtomicU64,
}

/// # Safety
/// `head` is the head of a live `Stamped`.
unsafe fn stamp_callback(head: *mut RcuHead) {
    // SAFETY: head is the first field of a repr(C) Stamped the test keeps
    // alive until it has seen ran_at set (after rcu_barrier).
    let s = unsafe { &*(head as *const Stamped) };
    s.ran_at.store(stamp(), Ordering::Release);
}

impl Stamped {
    fn new() -> Self {
        Self {
            head: RcuHead::new(),
            ran_at: AtomicU64::new(0),
        }
    }

    /// Queue the callback.
    ///
    /// # Safety
    /// `self` stays put and alive until the callback ran.
    unsafe fn queue(&mut self) {
        // SAFETY: per the contract.
        unsafe { call_rcu(core::ptr::addr_of_mut!(self.head), stamp_callback) };
    }

    fn ran_at(&self) -> u64 {
        self.ran_at.load(Ordering::Acquire)
    }
}

fn callback_runs_after_grace_period_one_cpu(t: &mut Test) {
    let invoked = rcu_callbacks_invoked();
    let mut s = Stamped::new();
    // SAFETY: s lives on this frame until rcu_barrier returned.
    unsafe { s.queue() };
    let queued_at = stamp();
    rcu_barrier();
    kassert!(t, s.ran_at() > queued_at, "callback never ran or ran early");
    kassert!(t, rcu_callbacks_invoked() > invoked);
    // synchronize_rcu after it waits for a whole grace period, and the
    // same callback is not run twice.
    let ran = s.ran_at();
    let snap = rcu_seq_snap(rcu_gp_seq());
    synchronize_rcu();
    let gp = rcu_gp_seq();
    kassert!(
        t,
        rcu_seq_done(gp, snap),
        "gp_seq {} after synchronize_rcu, needed {}",
        gp,
        snap
    );
    kassert_eq!(t, s.ran_at(), ran);
}

/// The debug nesting count: a quiescent state inside a reader is refused
/// (and counted), so a callback queued inside it waits for the unlock.
fn qs_inside_reader_is_refused(t: &mut Test) {
    let refused = rcu_qs_in_reader_count();
    let mut s = Stamped::new();
    rcu_read_lock();
    // SAFETY: s lives on this frame until rcu_barrier returned.
    unsafe { s.queue() };
    // Both are bugs inside a reader: refused, counted, and the callback
    // must not run.
    cond_resched();
    synchronize_rcu();
    let early = s.ran_at();
    let counted = rcu_qs_in_reader_count() - refused;
    rcu_read_unlock();
    rcu_barrier();
    kassert_eq!(t, early, 0);
    kassert!(t, counted >= 2, "refused quiescent states counted: {}", counted);
    kassert!(t, s.ran_at() != 0, "callback never ran after the reader ended");
}

/// What the reader of the first cross-CPU case reads.
struct Obj {
    value: AtomicU64,
}

const OBJ_ALIVE: u64 = 0x600d_0b1e;
const OBJ_POISON: u64 = 0xdead_beef;

static GP_OBJ: AtomicPtr<Obj> = AtomicPtr::new(null_mut());
static READER_IN: AtomicBool = AtomicBool::new(false);
static SYNC_STARTED: AtomicBool = AtomicBool::new(false);
static T_READER_LOCK: AtomicU64 = AtomicU64::new(0);
static T_SYNC_START: AtomicU64 = AtomicU64::new(0);
static T_READER_UNLOCK: AtomicU64 = AtomicU64::new(0);
static T_SYNC_END: AtomicU64 = AtomicU64::new(0);
static READER_SAW: AtomicU64 = AtomicU64::new(0);

fn kmalloc_obj(v: u64) -> Option<*mut Obj> {
    let p = kmalloc(core::mem::size_of::<Obj>())?.as_ptr() as *mut Obj;
    // SAFETY: a fresh kmalloc object of Obj's size, 8-aligned.
    unsafe {
        p.write(Obj {
            value: AtomicU64::new(v),
        })
    };
    Some(p)
}

/// # Safety
/// `p` came from kmalloc_obj and is not used afterwards.
unsafe fn kfree_obj(p: *mut Obj) {
    if let Some(p) = NonNull::new(p) {
        // SAFETY: per the contract.
        unsafe { kfree(p.cast(), core::mem::size_of::<Obj>()) };
    }
}

/// CPU 1 holds a reader across CPU 0's synchronize_rcu: CPU 0 replaces
/// the object, waits, then poisons and frees the old one. The stamps must
/// say: reader in, sync start, reader out, sync end; and the reader must
/// still see the old object intact just before it unlocks.
fn reader_holds_synchronize_rcu(t: &mut Test) {
    kskip_unless!(t, num_online_cpus() > 1, "needs a second CPU online (-smp 2 or more)");
    let Some(old) = kmalloc_obj(OBJ_ALIVE) else {
        kskip_unless!(t, false, "kmalloc failed");
        return;
    };
    let Some(new) = kmalloc_obj(OBJ_ALIVE + 1) else {
        // SAFETY: old is ours and unpublished.
        unsafe { kfree_obj(old) };
        kskip_unless!(t, false, "kmalloc failed");
        return;
    };
    rcu_assign_pointer(&GP_OBJ, old);
    for f in [&READER_IN, &SYNC_STARTED] {
        f.store(false, Ordering::Relaxed);
    }
    let reader = (1..NR_CPUS).find(|&c| cpu_online(c)).unwrap_or(1);
    // The workers share addresses, not raw pointers (which are not Sync).
    let new = new as usize;
    let ok = run_workers(t, 1 | 1 << reader, &|cpu| {
        if cpu == 0 {
            if !wait_flag(&READER_IN) {
                worker_fail(format_args!("CPU{} never entered its reader", reader));
                return;
            }
            let old = GP_OBJ.swap(new as *mut Obj, Ordering::AcqRel);
            T_SYNC_START.store(stamp(), Ordering::Relaxed);
            SYNC_STARTED.store(true, Ordering::Release);
            synchronize_rcu();
            T_SYNC_END.store(stamp(), Ordering::Relaxed);
            // SAFETY: old was allocated by kmalloc_obj; after the grace
            // period no reader holds it.
            unsafe {
                (*old).value.store(OBJ_POISON, Ordering::Relaxed);
                kfree_obj(old);
            }
        } else {
            rcu_read_lock();
            let p = rcu_dereference(&GP_OBJ);
            T_READER_LOCK.store(stamp(), Ordering::Relaxed);
            READER_IN.store(true, Ordering::Release);
            if !wait_flag(&SYNC_STARTED) {
                worker_fail(format_args!("CPU0 never started synchronize_rcu"));
            }
            // Give CPU 0 time to wait for real.
            delay_us(2000);
            // SAFETY: p was published and, inside the reader, is not freed.
            READER_SAW.store(unsafe { (*p).value.load(Ordering::Relaxed) }, Ordering::Relaxed);
            T_READER_UNLOCK.store(stamp(), Ordering::Relaxed);
            rcu_read_unlock();
        }
    });
    let cur = GP_OBJ.swap(null_mut(), Ordering::AcqRel);
    synchronize_rcu();
    // SAFETY: unpublished, and a grace period has passed.
    unsafe { kfree_obj(cur) };
    if !ok {
        return;
    }
    let (a, b, c, d) = (
        T_READER_LOCK.load(Ordering::Relaxed),
        T_SYNC_START.load(Ordering::Relaxed),
        T_READER_UNLOCK.load(Ordering::Relaxed),
        T_SYNC_END.load(Ordering::Relaxed),
    );
    kassert!(
        t,
        a < b && b < c && c < d,
        "stamps: reader lock {}, synchronize_rcu start {}, reader unlock {}, synchronize_rcu end {}",
        a,
        b,
        c,
        d
    );
    kassert_eq!(t, READER_SAW.load(Ordering::Relaxed), OBJ_ALIVE);
}

static READERS_READY: AtomicUsize = AtomicUsize::new(0);
static READERS_INSIDE: AtomicUsize = AtomicUsize::new(0);
static CB_QUEUED: AtomicBool = AtomicBool::new(false);
/// CPUs that had left their reader (and so reach their quiescent state).
static PASSED: AtomicU64 = AtomicU64::new(0);
static CB_SAW_PASSED: AtomicU64 = AtomicU64::new(u64::MAX);
static CB_SAW_INSIDE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// # Safety
/// `head` is the head of a live `Stamped`.
unsafe fn record_passed(head: *mut RcuHead) {
    CB_SAW_PASSED.store(PASSED.load(Ordering::Acquire), Ordering::Relaxed);
    CB_SAW_INSIDE.store(READERS_INSIDE.load(Ordering::Acquire), Ordering::Relaxed);
    // SAFETY: forwarded contract.
    unsafe { stamp_callback(head) };
}

/// Every other CPU sits in a reader when CPU 0 queues a callback; each
/// leaves it at a different time. The callback must see every one of
/// them out of its reader.
fn callbacks_wait_for_every_cpu(t: &mut Test) {
    kskip_unless!(t, num_online_cpus() > 1, "needs a second CPU online (-smp 2 or more)");
    let mask = cpu_online_mask();
    let others = (mask & !1).count_ones() as usize;
    READERS_READY.store(0, Ordering::Relaxed);
    READERS_INSIDE.store(0, Ordering::Relaxed);
    CB_QUEUED.store(false, Ordering::Relaxed);
    PASSED.store(0, Ordering::Relaxed);
    CB_SAW_PASSED.store(u64::MAX, Ordering::Relaxed);
    CB_SAW_INSIDE.store(usize::MAX, Ordering::Relaxed);
    let mut s = Stamped::new();
    let sp = SyncPtr(&mut s);
    let ok = run_workers(t, mask, &|cpu| {
        if cpu == 0 {
            let start = timer::get_cycles();
            while READERS_READY.load(Ordering::Acquire) < others {
                if timer::get_cycles() - start > timer::frequency() {
                    worker_fail(format_args!("readers never all entered"));
                    break;
                }
                cpu_relax();
            }
            let s = sp.get();
            // SAFETY: s outlives the callback: the test waits for it with
            // rcu_barrier before returning.
            unsafe { call_rcu(core::ptr::addr_of_mut!((*s).head), record_passed) };
            CB_QUEUED.store(true, Ordering::Release);
        } else {
            rcu_read_lock();
            READERS_INSIDE.fetch_add(1, Ordering::AcqRel);
            READERS_READY.fetch_add(1, Ordering::AcqRel);
            if !wait_flag(&CB_QUEUED) {
                worker_fail(format_args!("CPU0 never queued the callback"));
            }
            // Leave one after the other.
            delay_us(500 * cpu as u64);
            READERS_INSIDE.fetch_sub(1, Ordering::AcqRel);
            PASSED.fetch_or(1 << cpu, Ordering::AcqRel);
            rcu_read_unlock();
        }
    });
    rcu_barrier();
    if !ok {
        return;
    }
    kassert!(t, s.ran_at() != 0, "callback never ran");
    kassert_eq!(t, CB_SAW_PASSED.load(Ordering::Relaxed), mask & !1);
    kassert_eq!(t, CB_SAW_INSIDE.load(Ordering::Relaxed), 0);
}

/// A raw pointer the workers may share (the test keeps the target alive).
struct SyncPtr<T>(*mut T);
// SAFETY: the pointee is only touched through call_rcu/atomics, and lives
// until every worker is done.
unsafe impl<T> Sync for SyncPtr<T> {}
impl<T> SyncPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// With the other CPUs asleep in wfi (extended quiescent state), a grace
/// period needs only CPU 0: synchronize_rcu returns within a few ms.
fn synchronize_rcu_others_idle(t: &mut Test) {
    for _ in 0..3 {
        let start = timer::get_cycles();
        synchronize_rcu();
        let us = timer::ticks_to_ns(timer::get_cycles() - start) / 1000;
        kassert!(
            t,
            us < 100_000,
            "synchronize_rcu took {} us with the other CPUs idle",
            us
        );
    }
    kassert_eq!(t, rcu_qs_pending(), 0);
}

/// An offline CPU is not waited for; it is again once back online.
fn synchronize_rcu_cpu_offline(t: &mut Test) {
    kskip_unless!(t, num_online_cpus() > 1, "needs a second CPU online (-smp 2 or more)");
    let cpu = (1..NR_CPUS).rev().find(|&c| cpu_online(c)).unwrap_or(1);
    if let Err(e) = smp::cpu_down(cpu) {
        // cpu_down's wait spins; under -icount's round-robin vCPUs the
        // dying CPU may only get there later. Put it back as it was.
        let start = timer::get_cycles();
        while cpu_online(cpu) && timer::get_cycles() - start < 2 * timer::frequency() {
            cpu_relax();
        }
        if !cpu_online(cpu) {
            let _ = crate::kernel::smp::cpu_on(cpu, setup::machine());
        }
        kskip_unless!(t, false, "cpu_down({}): {}", cpu, e);
    }
    let mut s = Stamped::new();
    // SAFETY: s lives on this frame until rcu_barrier returned.
    unsafe { s.queue() };
    synchronize_rcu();
    let ran = s.ran_at();
    let pending = rcu_qs_pending();
    let up = crate::kernel::smp::cpu_on(cpu, setup::machine());
    rcu_barrier();
    kassert!(t, ran != 0, "callback did not run with CPU{} offline", cpu);
    kassert_eq!(t, pending & (1 << cpu), 0);
    kassert!(t, up.is_ok(), "CPU{} did not come back: {:?}", cpu, up);
    // Back online: a grace period waits for it (its idle loop reports).
    let mut s2 = Stamped::new();
    // SAFETY: s2 lives on this frame until rcu_barrier returned.
    unsafe { s2.queue() };
    synchronize_rcu();
    rcu_barrier();
    kassert!(t, s2.ran_at() != 0);
}

/// Free pages plus what the allocators keep once grown, measured quiet
/// (as the concurrent_mm suite's accounting).
fn accounted_pages() -> usize {
    vb::vm_unmap_aliases();
    vm::purge_vmap_area_lazy();
    page_alloc::drain_all_pages();
    page_alloc::nr_free_pages().0
        + vm::slab_pages()
        + heap::heap_stats().grown_pages
        + paging::pgtable_pages()
        + vb::vmap_block_cache_pages()
}

/// 6.1's test_kvfree_rcu: an rcu_head and 20 bytes.
#[repr(C)]
struct TestKvfreeRcu {
    rcu: RcuHead,
    array: [u8; 20],
}

const VMALLOC_OBJS: usize = 2000;

/// vmalloc'd objects, kvfree_rcu'd (both forms): inside a reader they are
/// still there and memory is not back; after the reader, the grace period
/// and kvfree_rcu_barrier, MemFree is as before.
fn kvfree_rcu_vmalloc_restores_memfree(t: &mut Test) {
    crate::kskip_unless_free_pages!(t, VMALLOC_OBJS * 3);
    kvfree_rcu_barrier();
    let before = accounted_pages();
    let mut kept: alloc::vec::Vec<*mut TestKvfreeRcu> = alloc::vec::Vec::new();
    if kept.try_reserve_exact(64).is_err() {
        kskip_unless!(t, false, "no memory for the test's vector");
    }
    let mut failed = false;
    for i in 0..VMALLOC_OBJS {
        let p = vmalloc(PAGE_SIZE) as *mut TestKvfreeRcu;
        if p.is_null() {
            failed = true;
            break;
        }
        // SAFETY: a fresh vmalloc page holds a TestKvfreeRcu.
        unsafe { (*p).array[0] = (i % 251) as u8 };
        if i % 2 == 0 {
            // SAFETY: p from vmalloc, freed once, not used again.
            unsafe { kvfree_rcu_arg_1(p) };
        } else {
            // SAFETY: as above; its rcu field is inside it.
            unsafe { kvfree_rcu_arg_2(p, core::ptr::addr_of_mut!((*p).rcu)) };
        }
    }
    // Inside a reader, two-argument calls (they never sleep) must leave
    // the objects readable until the reader ends.
    rcu_read_lock();
    for i in 0..64 {
        let p = vmalloc(PAGE_SIZE) as *mut TestKvfreeRcu;
        if p.is_null() {
            failed = true;
            break;
        }
        // SAFETY: a fresh vmalloc page; freed once below, read before the
        // reader ends.
        unsafe {
            (*p).array[0] = 0xa5 ^ i as u8;
            kvfree_rcu_arg_2(p, core::ptr::addr_of_mut!((*p).rcu));
        }
        kept.push(p);
    }
    // Let any other CPU end grace periods meanwhile.
    delay_us(1000);
    // SAFETY: every kept object was kvfree_rcu'd inside this reader, so it
    // is not freed before rcu_read_unlock.
    let intact = kept
        .iter()
        .enumerate()
        .all(|(i, &p)| unsafe { (*p).array[0] } == 0xa5 ^ i as u8);
    rcu_read_unlock();
    drop(kept);
    kvfree_rcu_barrier();
    let after = accounted_pages();
    kassert!(t, !failed, "vmalloc failed");
    kassert!(
        t,
        intact,
        "an object kvfree_rcu'd inside a reader was freed before the reader ended"
    );
    kassert_eq!(t, kvfree_rcu_queued(), 0);
    kassert_eq!(t, after, before);
    if let Err(e) = vm::check_vmalloc_invariants() {
        t.fail(file!(), line!(), format_args!("vmalloc trees: {}", e));
    }
}

/// A kmalloc'd object with an rcu_head (kmalloc-64).
#[repr(C)]
struct KObj {
    rcu: RcuHead,
    payload: [u64; 6],
}

fn kmalloc_kobj(i: usize) -> Option<*mut KObj> {
    let p = kmalloc(core::mem::size_of::<KObj>())?.as_ptr() as *mut KObj;
    // SAFETY: a fresh kmalloc object of KObj's size, 8-aligned.
    unsafe {
        p.write(KObj {
            rcu: RcuHead::new(),
            payload: [i as u64; 6],
        })
    };
    Some(p)
}

fn kvfree_rcu_kmalloc_restores_objects(t: &mut Test) {
    kvfree_rcu_barrier();
    let objs = slab::kmalloc_stats().active_objs;
    let before = accounted_pages();
    for i in 0..2000 {
        let Some(p) = kmalloc_kobj(i) else {
            t.fail(file!(), line!(), format_args!("kmalloc failed at {}", i));
            break;
        };
        if i % 2 == 0 {
            // SAFETY: p is kmalloc(size_of::<KObj>()), freed once.
            unsafe { kvfree_rcu_arg_1(p) };
        } else {
            // SAFETY: as above; its rcu field is inside it.
            unsafe { kvfree_rcu_arg_2(p, core::ptr::addr_of_mut!((*p).rcu)) };
        }
    }
    kvfree_rcu_barrier();
    kassert_eq!(t, slab::kmalloc_stats().active_objs, objs);
    kassert_eq!(t, accounted_pages(), before);
}

/// No page for a batch (fault injection fails it): the two-argument form
/// chains the object through its rcu_head, the one-argument form waits
/// for a grace period and frees at once. Both free everything.
fn kvfree_rcu_without_memory(t: &mut Test) {
    kvfree_rcu_barrier();
    let objs = slab::kmalloc_stats().active_objs;
    let before = accounted_pages();
    for (i, two) in [(0, true), (1, false), (2, true), (3, false)] {
        let v = vmalloc(PAGE_SIZE) as *mut TestKvfreeRcu;
        let k = kmalloc_kobj(i);
        kassert!(t, !v.is_null() && k.is_some(), "allocation failed");
        let k = k.unwrap_or(null_mut());
        for p in [v as *mut u8, k as *mut u8] {
            // The batch is empty (barrier): the next allocation on this
            // CPU is the page of pointers.
            kvfree_rcu_barrier();
            fault_inject::arm(1);
            // SAFETY: each object is freed once; the heads are inside.
            unsafe {
                if p == v as *mut u8 {
                    if two {
                        kvfree_rcu_arg_2(v, core::ptr::addr_of_mut!((*v).rcu));
                    } else {
                        kvfree_rcu_arg_1(v);
                    }
                } else if two {
                    kvfree_rcu_arg_2(k, core::ptr::addr_of_mut!((*k).rcu));
                } else {
                    kvfree_rcu_arg_1(k);
                }
            }
            let (_, injected) = fault_inject::disarm();
            kassert_eq!(t, injected, 1);
        }
    }
    kvfree_rcu_barrier();
    kassert_eq!(t, slab::kmalloc_stats().active_objs, objs);
    kassert_eq!(t, accounted_pages(), before);
}

/// 10 000 kvfree_rcu calls over all CPUs at once: vmalloc'd and kmalloc'd,
/// both forms; then everything is freed, nothing leaked, trees consistent.
const ALL_CPUS_CALLS: usize = 10_000;
static CALLS_DONE: AtomicUsize = AtomicUsize::new(0);

fn kvfree_rcu_from_all_cpus(t: &mut Test) {
    crate::kskip_unless_free_pages!(t, ALL_CPUS_CALLS * 2);
    kvfree_rcu_barrier();
    let objs = slab::kmalloc_stats().active_objs;
    let before = accounted_pages();
    let n = num_online_cpus().max(1);
    let per_cpu = ALL_CPUS_CALLS.div_ceil(n);
    CALLS_DONE.store(0, Ordering::Relaxed);
    let ok = run_workers(t, cpu_online_mask(), &|cpu| {
        for i in 0..per_cpu {
            let kind = (i + cpu) % 4;
            if kind < 2 {
                let p = vmalloc(PAGE_SIZE) as *mut TestKvfreeRcu;
                if p.is_null() {
                    worker_fail(format_args!("CPU{}: vmalloc failed at {}", cpu, i));
                    return;
                }
                // SAFETY: a fresh vmalloc page, freed once, not used
                // again; its rcu field is inside it.
                unsafe {
                    (*p).array[0] = cpu as u8;
                    if kind == 0 {
                        kvfree_rcu_arg_1(p);
                    } else {
                        kvfree_rcu_arg_2(p, core::ptr::addr_of_mut!((*p).rcu));
                    }
                }
            } else {
                let Some(p) = kmalloc_kobj(i) else {
                    worker_fail(format_args!("CPU{}: kmalloc failed at {}", cpu, i));
                    return;
                };
                // SAFETY: kmalloc(size_of::<KObj>()), freed once, not used
                // again; its rcu field is inside it.
                unsafe {
                    if kind == 2 {
                        kvfree_rcu_arg_1(p);
                    } else {
                        kvfree_rcu_arg_2(p, core::ptr::addr_of_mut!((*p).rcu));
                    }
                }
            }
            CALLS_DONE.fetch_add(1, Ordering::Relaxed);
        }
    });
    kvfree_rcu_barrier();
    if !ok {
        return;
    }
    kassert!(t, CALLS_DONE.load(Ordering::Relaxed) >= ALL_CPUS_CALLS);
    kassert_eq!(t, kvfree_rcu_queued(), 0);
    // Every batch drained: no callback left in any segment.
    kassert_eq!(t, rcu_callback_counts(), (0, 0, 0));
    kassert_eq!(t, slab::kmalloc_stats().active_objs, objs);
    kassert_eq!(t, accounted_pages(), before);
    if let Err(e) = vm::check_vmalloc_invariants() {
        t.fail(file!(), line!(), format_args!("vmalloc trees: {}", e));
    }
}
