// SPDX-License-Identifier: GPL-2.0-only
//! RCU for a kernel without preemption of kernel code (Linux:
//! kernel/rcu/tree.c in spirit, with CONFIG_PREEMPT_RCU=n; far smaller).
//! docs/rcu.md describes it; in short:
//!
//! * **Readers**: [`rcu_read_lock`]/[`rcu_read_unlock`] are compiler
//!   barriers plus a per-CPU nesting count. Nothing preempts kernel code
//!   and no CPU switches tasks, so a CPU is in a read-side critical section
//!   exactly while its count is non-zero; the count also catches a
//!   quiescent state reported inside one (a bug: it is refused and
//!   counted, [`rcu_qs_in_reader_count`]).
//! * **Quiescent states**: a CPU reports one where it holds no RCU
//!   reference: at the shell prompt and at the end of each `run_on_cpus`
//!   work item ([`rcu_note_context_switch`], where Linux would switch
//!   tasks), in [`cond_resched`] (sleepable code in a long loop), and on
//!   going idle. A CPU asleep in `wfi` is in an **extended quiescent
//!   state** (Linux's dyntick-idle): [`default_idle_call`] marks it, and a
//!   grace period that starts meanwhile does not wait for it. An offline
//!   CPU ([`rcu_report_dead`]) is not waited for either.
//! * **Grace periods**: one at a time, for the whole machine. It starts
//!   when a callback waits and none runs; it waits for every CPU that was
//!   online and not idle at its start (`QS_PENDING`, Linux's
//!   rcu_node.qsmask); the CPU whose report clears the last bit ends it.
//!   No CPU drives it from a kthread or a tick: there is neither.
//! * **Callbacks** ([`call_rcu`]) sit in one list cut into segments by the
//!   grace period they wait for (segcblist.rs). DONE callbacks are invoked
//!   in queue order, one CPU at a time, by whichever CPU next passes
//!   [`rcu_core`]: a quiescent-state point or the idle entry, all places
//!   where the CPU holds no lock (Linux runs them in RCU's softirq).
//!   Callbacks run with IRQs masked, as everything here but idle does, and
//!   must not sleep (no `synchronize_rcu`), as in Linux.
//! * **Waiting** ([`synchronize_rcu`], [`rcu_barrier`]): queue a callback
//!   that marks the waiter done, then report quiescent states, run due
//!   callbacks, and sleep in `wfi` in between (an idle waiter is in an
//!   extended quiescent state); the callback wakes the waiter with an IPI.
//!   No CPU is IPI'd to force a quiescent state: every CPU but an idle one
//!   runs with IRQs masked, so an IPI would only be taken where the CPU
//!   reports one anyway.
//!
//! Lock order: `RCU_INVOKE` (callback invocation) -> `RCU_STATE`; callbacks
//! run with neither held except `RCU_INVOKE`, so they may take mm's locks
//! and call `call_rcu`.

use super::segcblist::{RcuCallback, RcuHead, RcuSegCbList, qs_mask_for_gp};
use crate::arch::kernel::irq;
use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
use crate::kernel::locking::spinlock::SpinLock;
use crate::pr_err;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, compiler_fence, fence};

/// The IPI that ends a `wfi`: arch/arm64/kernel/smp.rs's IPI_WAKEUP
/// (Linux's number 6, its handler does nothing). Named again here because
/// the idle loop there calls into RCU, and the layering forbids the cycle;
/// smp.rs asserts the two are equal.
pub const RCU_WAKEUP_IPI: u32 = 6;

/// One CPU's RCU state (Linux: struct rcu_data, the little of it needed).
#[repr(align(64))]
struct RcuData {
    /// rcu_read_lock nesting depth.
    nesting: AtomicUsize,
    /// In an extended quiescent state: idle in `wfi` (Linux:
    /// rcu_data.dynticks, even = idle).
    in_eqs: AtomicBool,
}

static RCU_DATA: [RcuData; NR_CPUS] = [const {
    RcuData {
        nesting: AtomicUsize::new(0),
        in_eqs: AtomicBool::new(false),
    }
}; NR_CPUS];

/// CPUs RCU considers online (Linux: rcu_node.qsmaskinitnext): the boot
/// CPU from the start, a secondary from [`rcu_cpu_starting`] until
/// [`rcu_report_dead`].
static RCU_ONLINE: AtomicU64 = AtomicU64::new(1);

/// CPUs that still owe the grace period in progress a quiescent state
/// (Linux: rcu_node.qsmask). Zero while none runs.
static QS_PENDING: AtomicU64 = AtomicU64::new(0);

/// The callback list and the grace-period number (Linux: rcu_state plus
/// the per-CPU segcblists, merged).
struct RcuState {
    cbs: RcuSegCbList,
    /// Callbacks queued and invoked since boot (rcu_barrier's count).
    queued: u64,
}

// SAFETY: the raw head pointers in the list belong to callbacks handed to
// call_rcu, whose contract keeps them valid until invoked; the state is
// only reached under RCU_STATE's lock.
unsafe impl Send for RcuState {}

static RCU_STATE: SpinLock<RcuState> = SpinLock::new(RcuState {
    cbs: RcuSegCbList::new(),
    queued: 0,
});

/// Held while DONE callbacks are taken off and invoked, so that they run
/// in queue order even when several CPUs pass rcu_core at once (what
/// rcu_barrier relies on). Others try-lock it and leave the work to the
/// holder.
static RCU_INVOKE: SpinLock<()> = SpinLock::new(());

/// DONE callbacks are waiting to be invoked (a lock-free hint for the
/// quiescent-state points' fast path).
static HAVE_DONE: AtomicBool = AtomicBool::new(false);
/// Mirror of the grace-period number, for readers outside the lock.
static GP_SEQ: AtomicU64 = AtomicU64::new(0);
/// Callbacks invoked since boot.
static INVOKED: AtomicU64 = AtomicU64::new(0);
/// Quiescent states refused because the CPU was inside a read-side
/// critical section (each is a bug in the caller).
static QS_IN_READER: AtomicU64 = AtomicU64::new(0);
static QS_IN_READER_WARNED: AtomicBool = AtomicBool::new(false);

/// kvfree_rcu's batch monitor (kvfree.rs, which sits above mm and so above
/// this file): called from rcu_core with `idle` = the CPU is about to
/// sleep, so a batch that would otherwise age unseen is handed over now.
static KVFREE_MONITOR: AtomicUsize = AtomicUsize::new(0);

/// Register kvfree_rcu's monitor (done by its first use).
pub fn rcu_set_kvfree_monitor(f: fn(bool)) {
    KVFREE_MONITOR.store(f as usize, Ordering::Release);
}

fn this_rcu_data() -> &'static RcuData {
    &RCU_DATA[smp_processor_id()]
}

/// Enter a read-side critical section (Linux: rcu_read_lock; with
/// CONFIG_PREEMPT_RCU=n only preempt_disable, here a compiler barrier and
/// the debug nesting count).
#[inline(always)]
pub fn rcu_read_lock() {
    let d = this_rcu_data();
    d.nesting
        .store(d.nesting.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
}

/// Leave a read-side critical section (Linux: rcu_read_unlock).
#[inline(always)]
pub fn rcu_read_unlock() {
    compiler_fence(Ordering::SeqCst);
    let d = this_rcu_data();
    let n = d.nesting.load(Ordering::Relaxed);
    if n == 0 {
        pr_err!(
            "rcu: rcu_read_unlock() without rcu_read_lock() on CPU{}",
            smp_processor_id()
        );
        return;
    }
    d.nesting.store(n - 1, Ordering::Relaxed);
}

/// Is this CPU inside a read-side critical section (Linux:
/// rcu_read_lock_held)?
pub fn rcu_read_lock_held() -> bool {
    this_rcu_data().nesting.load(Ordering::Relaxed) != 0
}

/// Publish `p` to readers (Linux: rcu_assign_pointer): a release store,
/// so its initialisation is visible before the pointer.
#[inline(always)]
pub fn rcu_assign_pointer<T>(slot: &AtomicPtr<T>, p: *mut T) {
    slot.store(p, Ordering::Release);
}

/// Read an RCU-protected pointer inside a read-side critical section
/// (Linux: rcu_dereference; an acquire load stands for the address
/// dependency Linux relies on).
#[inline(always)]
pub fn rcu_dereference<T>(slot: &AtomicPtr<T>) -> *mut T {
    slot.load(Ordering::Acquire)
}

/// The caller is not in a read-side critical section; false (and the
/// quiescent state refused, counted and reported once) if it is.
fn check_not_in_reader(what: &str) -> bool {
    let n = this_rcu_data().nesting.load(Ordering::Relaxed);
    if n == 0 {
        return true;
    }
    QS_IN_READER.fetch_add(1, Ordering::Relaxed);
    if !QS_IN_READER_WARNED.swap(true, Ordering::Relaxed) {
        pr_err!(
            "rcu: {} inside an RCU read-side critical section on CPU{} (nesting {}); quiescent state not reported (reported once)",
            what,
            smp_processor_id(),
            n
        );
    }
    false
}

/// Quiescent states refused so far because the CPU was in a reader.
pub fn rcu_qs_in_reader_count() -> u64 {
    QS_IN_READER.load(Ordering::Relaxed)
}

/// Clear `mask` from the CPUs the grace period waits for; the caller
/// whose clear empties the mask ends the grace period. `st`: the state,
/// when the caller holds RCU_STATE already (grace-period start).
fn rcu_report_qs_mask(mask: u64, st: Option<&mut RcuState>) {
    let prev = QS_PENDING.fetch_and(!mask, Ordering::AcqRel);
    if prev & mask == 0 || prev & !mask != 0 {
        return;
    }
    // We cleared the last bit: the grace period is over.
    match st {
        Some(st) => rcu_gp_end(st),
        None => rcu_gp_end(&mut RCU_STATE.lock()),
    }
}

/// Report this CPU's quiescent state if the grace period waits for it
/// (Linux: rcu_qs + rcu_report_qs_rdp). The fast path is one load.
fn rcu_qs(cpu: usize) {
    if QS_PENDING.load(Ordering::Acquire) & (1 << cpu) == 0 {
        return;
    }
    rcu_report_qs_mask(1 << cpu, None);
}

/// Start a grace period if callbacks wait for one and none runs (Linux:
/// rcu_gp_init). Called with RCU_STATE held.
fn rcu_start_gp(st: &mut RcuState) {
    if !st.cbs.start_gp() {
        return;
    }
    GP_SEQ.store(st.cbs.gp_seq, Ordering::Relaxed);
    let online = RCU_ONLINE.load(Ordering::Acquire);
    // Dekker with default_idle_call: we publish the mask, then read each
    // CPU's idle flag; it sets its flag, then reads the mask. One of us
    // sees the other, so an idle CPU is either skipped here or reports
    // itself.
    QS_PENDING.store(online, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    let mut eqs = 0u64;
    for cpu in (0..NR_CPUS).filter(|&c| online & (1 << c) != 0) {
        if RCU_DATA[cpu].in_eqs.load(Ordering::SeqCst) {
            eqs |= 1 << cpu;
        }
    }
    let skip = online & !qs_mask_for_gp(online, eqs);
    if skip != 0 {
        rcu_report_qs_mask(skip, Some(st));
    }
}

/// The grace period ended: advance the callbacks and start the next one
/// if more wait (Linux: rcu_gp_cleanup). Called with RCU_STATE held.
fn rcu_gp_end(st: &mut RcuState) {
    st.cbs.end_gp();
    GP_SEQ.store(st.cbs.gp_seq, Ordering::Relaxed);
    HAVE_DONE.store(true, Ordering::Release);
    rcu_start_gp(st);
}

/// Queue `func(head)` to run after a grace period (Linux: call_rcu). Never
/// sleeps and never runs callbacks itself, so it may be called with locks
/// held and from a callback.
///
/// # Safety
/// `head` is valid, not queued already, and stays valid (with the object
/// around it) until `func` runs; `func` may free it.
pub unsafe fn call_rcu(head: *mut RcuHead, func: RcuCallback) {
    let flags = irq::local_irq_save();
    let mut st = RCU_STATE.lock();
    // SAFETY: the caller keeps head valid until the callback runs.
    unsafe {
        (*head).func = func as usize;
        st.cbs.enqueue(head);
    }
    st.queued += 1;
    rcu_start_gp(&mut st);
    drop(st);
    irq::local_irq_restore(flags);
}

/// Invoke every DONE callback, in queue order (Linux: rcu_do_batch).
fn rcu_do_batch() {
    let Some(_inv) = RCU_INVOKE.try_lock() else {
        // Another CPU is at it; it rechecks before it lets go.
        return;
    };
    while HAVE_DONE.load(Ordering::Acquire) {
        let mut done = {
            let flags = irq::local_irq_save();
            let mut st = RCU_STATE.lock();
            HAVE_DONE.store(false, Ordering::Relaxed);
            let d = st.cbs.take_done();
            drop(st);
            irq::local_irq_restore(flags);
            d
        };
        while let Some(h) = done.dequeue() {
            // SAFETY: call_rcu stored a RcuCallback in func, and the head
            // is valid until its callback runs, which is now, once.
            unsafe {
                let f: RcuCallback = core::mem::transmute::<usize, RcuCallback>((*h).func);
                f(h);
            }
            INVOKED.fetch_add(1, Ordering::Release);
        }
    }
}

/// RCU's deferred work on this CPU (Linux: rcu_core, the RCU softirq):
/// invoke due callbacks, and let kvfree_rcu's monitor look at this CPU's
/// batch. Only where the CPU holds no lock.
pub fn rcu_core(idle: bool) {
    if HAVE_DONE.load(Ordering::Acquire) {
        rcu_do_batch();
    }
    let m = KVFREE_MONITOR.load(Ordering::Acquire);
    if m != 0 {
        // SAFETY: only rcu_set_kvfree_monitor stores here, from a fn(bool).
        let f: fn(bool) = unsafe { core::mem::transmute::<usize, fn(bool)>(m) };
        f(idle);
    }
}

/// This CPU passed a quiescent state (Linux: rcu_all_qs, what
/// cond_resched reports on a kernel without preemptible RCU).
pub fn rcu_all_qs() {
    if check_not_in_reader("quiescent state (rcu_all_qs)") {
        rcu_qs(smp_processor_id());
    }
}

/// A context switch, as far as RCU can tell: the end of a `run_on_cpus`
/// work item, the shell between two commands (Linux:
/// rcu_note_context_switch, then the softirq that runs callbacks).
pub fn rcu_note_context_switch() {
    rcu_all_qs();
    rcu_core(false);
}

/// Linux's cond_resched() on a kernel without preemption, for sleepable
/// code in a long loop: a quiescent state (rcu_all_qs), and the deferred
/// work a reschedule would let run, which here is RCU's: due callbacks
/// and kvfree_rcu's batch (what ksoftirqd and the kvfree_rcu kworker get
/// the CPU for in Linux).
pub fn cond_resched() {
    rcu_note_context_switch();
}

/// Going idle (Linux: rcu_idle_enter, from do_idle): report a quiescent
/// state, run due work, then enter the extended quiescent state. Returns
/// false if callbacks ran here (one may be what the caller waits for) or
/// became due meanwhile: the caller then skips this `wfi` and comes back.
fn rcu_idle_enter() -> bool {
    let cpu = smp_processor_id();
    if !check_not_in_reader("idle entry") {
        // Sleeping in a reader is a bug; sleep, but stay visible to grace
        // periods so that they keep waiting for the reader.
        return true;
    }
    rcu_qs(cpu);
    let invoked = INVOKED.load(Ordering::Relaxed);
    rcu_core(true);
    RCU_DATA[cpu].in_eqs.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    // A grace period that started before it could see the flag waits for
    // us: report now (see rcu_start_gp).
    rcu_qs(cpu);
    !HAVE_DONE.load(Ordering::Acquire) && INVOKED.load(Ordering::Relaxed) == invoked
}

/// Woken up (Linux: rcu_idle_exit): leave the extended quiescent state
/// before anything can enter a reader (the IRQ handler runs after this).
fn rcu_idle_exit() {
    RCU_DATA[smp_processor_id()].in_eqs.store(false, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// Sleep in `wfi` as an RCU-idle CPU (Linux: kernel/sched/idle.c's
/// default_idle_call: rcu_idle_enter, arch_cpu_idle, rcu_idle_exit). Same
/// protocol as `irq::cpu_do_idle`: called with IRQs masked after the
/// caller checked it has nothing to do; returns with them masked.
pub fn default_idle_call() {
    if rcu_idle_enter() {
        irq::arch_cpu_idle_wfi();
    }
    // Out of the extended quiescent state before the IRQ that woke us is
    // handled: a handler may enter a reader.
    rcu_idle_exit();
    irq::handle_pending_irqs();
}

/// This CPU is coming online (Linux: rcu_cpu_starting): grace periods
/// that start from now on wait for it.
pub fn rcu_cpu_starting(cpu: usize) {
    RCU_DATA[cpu].nesting.store(0, Ordering::Relaxed);
    RCU_DATA[cpu].in_eqs.store(false, Ordering::SeqCst);
    RCU_ONLINE.fetch_or(1 << cpu, Ordering::SeqCst);
}

/// This CPU is going offline (Linux: rcu_report_dead), after it left the
/// online mask: the grace period in progress stops waiting for it, and
/// due callbacks run before it goes.
pub fn rcu_report_dead(cpu: usize) {
    RCU_ONLINE.fetch_and(!(1 << cpu), Ordering::SeqCst);
    rcu_report_qs_mask(1 << cpu, None);
    rcu_core(true);
}

/// What a waiter queues (Linux: struct rcu_synchronize).
#[repr(C)]
struct RcuSynchronize {
    head: RcuHead,
    done: AtomicBool,
    cpu: usize,
}

/// The waiter's callback (Linux: wakeme_after_rcu).
///
/// # Safety
/// `head` is the head of a live RcuSynchronize (queued by wait_rcu_gp).
unsafe fn wakeme_after_rcu(head: *mut RcuHead) {
    // SAFETY: head is the first field of a repr(C) RcuSynchronize that
    // stays alive until `done` is seen set; `cpu` is read before that.
    let rs = unsafe { &*(head as *const RcuSynchronize) };
    let cpu = rs.cpu;
    rs.done.store(true, Ordering::Release);
    if cpu != smp_processor_id() {
        irq::smp_cross_call(1 << cpu, RCU_WAKEUP_IPI);
    }
}

/// Queue a wake-up callback and wait until it ran, reporting this CPU's
/// quiescent states and running due callbacks meanwhile.
fn wait_rcu_gp() {
    let mut rs = RcuSynchronize {
        head: RcuHead::new(),
        done: AtomicBool::new(false),
        cpu: smp_processor_id(),
    };
    // Only through this pointer from here on: RCU writes the head.
    let rs: *mut RcuSynchronize = &mut rs;
    // SAFETY: rs lives on this stack frame until `done` is set, which is
    // the callback's last access to it; the head is queued once.
    unsafe { call_rcu(core::ptr::addr_of_mut!((*rs).head), wakeme_after_rcu) };
    let flags = irq::local_irq_save();
    loop {
        rcu_note_context_switch();
        // SAFETY: rs is alive (this frame); `done` is atomic.
        if unsafe { (*rs).done.load(Ordering::Acquire) } {
            break;
        }
        if irq::have_irqchip() {
            // The callback's IPI, if it comes after the check above, is
            // pending and ends this wfi at once.
            default_idle_call();
        } else {
            core::hint::spin_loop();
        }
    }
    irq::local_irq_restore(flags);
}

/// Wait for a grace period (Linux: synchronize_rcu): every read-side
/// critical section that began before this call has ended when it
/// returns. May sleep (in `wfi`); not from a reader: there it would wait
/// for itself forever, so it reports the bug and returns at once.
pub fn synchronize_rcu() {
    if !check_not_in_reader("synchronize_rcu()") {
        return;
    }
    wait_rcu_gp();
}

/// Wait until every callback queued before this call has been invoked
/// (Linux: rcu_barrier). Callbacks run in queue order, one CPU at a time,
/// so waiting for one queued now is enough.
pub fn rcu_barrier() {
    if !check_not_in_reader("rcu_barrier()") {
        return;
    }
    wait_rcu_gp();
}

/// The grace-period number (even: none in progress) and the callbacks
/// invoked since boot, for tests and the shell.
pub fn rcu_gp_seq() -> u64 {
    GP_SEQ.load(Ordering::Relaxed)
}

pub fn rcu_callbacks_invoked() -> u64 {
    INVOKED.load(Ordering::Acquire)
}

/// CPUs the grace period in progress still waits for.
pub fn rcu_qs_pending() -> u64 {
    QS_PENDING.load(Ordering::Acquire)
}

/// Callbacks queued and not yet invoked: (done, waiting for the current
/// grace period, waiting for the next).
pub fn rcu_callback_counts() -> (usize, usize, usize) {
    let flags = irq::local_irq_save();
    let c = RCU_STATE.lock().cbs.counts();
    irq::local_irq_restore(flags);
    c
}
