// SPDX-License-Identifier: GPL-2.0-only
//! kvfree_rcu: free kmalloc'd or vmalloc'd memory after a grace period,
//! in batches (Linux 5.10: kernel/rcu/tree.c's kfree_rcu_cpu,
//! kvfree_call_rcu, kfree_rcu_monitor, kfree_rcu_work; 6.1's calling
//! convention).
//!
//! Each CPU has a `kfree_rcu_cpu` under its own lock: two channels of
//! pages of pointers (`kvfree_rcu_bulk_data`, one page each, chained when
//! one fills), channel 0 for kmalloc'd memory and channel 1 for vmalloc'd
//! (by `is_vmalloc_addr`), plus a chain of `rcu_head`s for two-argument
//! calls that found no page. The **monitor** hands everything queued to one
//! of two `kfree_rcu_cpu_work` slots and `call_rcu`s that slot's head once
//! a page's worth is queued, once the oldest pointer is 20 ms old (Linux's
//! KFREE_DRAIN_JIFFIES), when the CPU goes idle (no timer would age the
//! batch while it sleeps) and on [`kvfree_rcu_barrier`]. After the grace
//! period the slot's callback (**drain**) frees every pointer: `kfree` for
//! channel 0, `vfree` for channel 1, then the pages of pointers. With both
//! slots waiting, pages keep filling; the drain that frees a slot hands the
//! backlog over at once.
//!
//! This kernel's `kfree` takes the object's size (src/mm/slab.rs), so a
//! channel-0 entry is two words, pointer and size, and the fallback chain
//! keeps the size beside the head's offset. Pages of pointers come from
//! the page allocator and go back to it after each drain (5.10 caches a
//! few per CPU; here the page allocator's per-CPU lists do that job).
//!
//! Lock order: a CPU's `KRC` lock -> RCU's state lock (call_rcu) and the
//! zone lock (a page of pointers); the drain runs under RCU's callback
//! lock and takes `KRC` before either. Nothing is freed under `KRC`.

use super::segcblist::RcuHead;
use super::tree::{call_rcu, cond_resched, rcu_barrier, rcu_set_kvfree_monitor, synchronize_rcu};
use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
use crate::arch::kernel::timer;
use crate::arch::memory::{PAGE_SIZE, VirtAddr, is_vmalloc_addr};
use crate::arch::mm::mmu::{__pa, __va};
use crate::kernel::locking::spinlock::SpinLock;
use crate::mm::page_alloc::{__free_pages, alloc_pages};
use crate::mm::slab::kfree;
use crate::mm::vmalloc::vfree;
use core::cell::UnsafeCell;
use core::ptr::{NonNull, null_mut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Batches in flight per CPU (Linux: KFREE_N_BATCHES).
const KFREE_N_BATCHES: usize = 2;
/// kmalloc'd and vmalloc'd memory (Linux: FREE_N_CHANNELS).
const FREE_N_CHANNELS: usize = 2;
/// Pointers in one page of pointers (Linux: KVFREE_BULK_MAX_ENTR).
pub const KVFREE_BULK_MAX_ENTR: usize = (PAGE_SIZE - 2 * core::mem::size_of::<usize>()) / core::mem::size_of::<usize>();
/// A batch older than this goes to a grace period (Linux:
/// KFREE_DRAIN_JIFFIES = HZ / 50).
const KFREE_DRAIN_MS: u64 = 20;

/// One page of pointers (Linux: struct kvfree_rcu_bulk_data).
#[repr(C)]
struct KvfreeRcuBulkData {
    nr_records: usize,
    next: *mut KvfreeRcuBulkData,
    records: [usize; KVFREE_BULK_MAX_ENTR],
}
const _: () = assert!(core::mem::size_of::<KvfreeRcuBulkData>() == PAGE_SIZE);

/// Words one object takes in channel `chan`'s records.
const fn record_words(chan: usize) -> usize {
    if chan == 0 { 2 } else { 1 }
}

/// A batch handed to a grace period (Linux: struct kfree_rcu_cpu_work,
/// without its rcu_head, which lives in `KRW_HEADS`).
struct KfreeRcuCpuWork {
    bkvhead_free: [*mut KvfreeRcuBulkData; FREE_N_CHANNELS],
    head_free: *mut RcuHead,
    /// Handed to call_rcu and not drained yet.
    busy: bool,
}

/// One CPU's batches (Linux: struct kfree_rcu_cpu).
struct KfreeRcuCpu {
    /// Two-argument calls that found no page: chained through their heads.
    head: *mut RcuHead,
    bkvhead: [*mut KvfreeRcuBulkData; FREE_N_CHANNELS],
    krw_arr: [KfreeRcuCpuWork; KFREE_N_BATCHES],
    /// Objects queued and not handed over yet.
    count: usize,
}

// SAFETY: the pointers are pages of pointers this CPU's batch owns and
// objects handed to kvfree_rcu; they are only reached under the lock.
unsafe impl Send for KfreeRcuCpu {}

impl KfreeRcuCpu {
    const fn new() -> Self {
        Self {
            head: null_mut(),
            bkvhead: [null_mut(); FREE_N_CHANNELS],
            krw_arr: [const {
                KfreeRcuCpuWork {
                    bkvhead_free: [null_mut(); FREE_N_CHANNELS],
                    head_free: null_mut(),
                    busy: false,
                }
            }; KFREE_N_BATCHES],
            count: 0,
        }
    }

    fn has_pending(&self) -> bool {
        self.count != 0
    }
}

static KRC: [SpinLock<KfreeRcuCpu>; NR_CPUS] = [const { SpinLock::new(KfreeRcuCpu::new()) }; NR_CPUS];

/// The batches' rcu_heads, outside the lock: RCU writes a queued head's
/// link while other CPUs hold the lock.
struct KrwHead(UnsafeCell<RcuHead>);
// SAFETY: a head is written only by its owner: the CPU that queues it
// (under KRC's lock, while its slot is not busy), RCU while it is queued,
// the drain once invoked.
unsafe impl Sync for KrwHead {}
static KRW_HEADS: [[KrwHead; KFREE_N_BATCHES]; NR_CPUS] =
    [const { [const { KrwHead(UnsafeCell::new(RcuHead::new())) }; KFREE_N_BATCHES] }; NR_CPUS];

/// When the oldest pointer queued on each CPU was queued (timer ticks,
/// 0 = nothing queued): the monitor's lock-free check.
static KRC_FIRST_TS: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

static MONITOR_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Free one object now: `vfree` or `kfree` by its address.
///
/// # Safety
/// `ptr` came from vmalloc, or from kmalloc(`size`), and is not used
/// afterwards.
unsafe fn kvfree_one(ptr: *mut u8, size: usize) {
    if is_vmalloc_addr(ptr as usize) {
        vfree(ptr);
    } else if let Some(p) = NonNull::new(ptr) {
        // SAFETY: per the contract, a kmalloc(size) object nobody uses.
        unsafe { kfree(p, size) };
    }
}

/// Queue `ptr` in channel `chan`'s page, adding a page if it is full
/// (Linux: add_ptr_to_bulk_krc_lock). False if no page could be had.
fn add_ptr_to_bulk_krc_lock(krcp: &mut KfreeRcuCpu, chan: usize, ptr: *mut u8, size: usize) -> bool {
    let words = record_words(chan);
    let mut bnode = krcp.bkvhead[chan];
    // SAFETY: bnode, when not null, is this channel's current page of
    // pointers, owned by the batch.
    if bnode.is_null() || unsafe { (*bnode).nr_records } + words > KVFREE_BULK_MAX_ENTR {
        let Some(pa) = alloc_pages(0) else {
            return false;
        };
        let new = __va(pa).0 as *mut KvfreeRcuBulkData;
        // SAFETY: a fresh page from the page allocator, reached through
        // the linear map, as large as a KvfreeRcuBulkData and page-aligned.
        unsafe {
            (*new).nr_records = 0;
            (*new).next = bnode;
        }
        krcp.bkvhead[chan] = new;
        bnode = new;
    }
    // SAFETY: bnode is the batch's page with room for `words` more.
    unsafe {
        let n = (*bnode).nr_records;
        (*bnode).records[n] = ptr as usize;
        if words == 2 {
            (*bnode).records[n + 1] = size;
        }
        (*bnode).nr_records = n + words;
    }
    true
}

/// Hand everything `krcp` has queued to a free batch slot and a grace
/// period (Linux: kfree_rcu_monitor -> queue_kfree_rcu_work). False if
/// both slots are still waiting: their drain hands it over.
fn kfree_rcu_monitor(krcp: &mut KfreeRcuCpu, cpu: usize) -> bool {
    if !krcp.has_pending() {
        return true;
    }
    let Some(i) = krcp.krw_arr.iter().position(|w| !w.busy) else {
        return false;
    };
    let krw = &mut krcp.krw_arr[i];
    krw.bkvhead_free = krcp.bkvhead;
    krw.head_free = krcp.head;
    krw.busy = true;
    krcp.bkvhead = [null_mut(); FREE_N_CHANNELS];
    krcp.head = null_mut();
    krcp.count = 0;
    KRC_FIRST_TS[cpu].store(0, Ordering::Relaxed);
    // SAFETY: the slot was not busy, so its head is not queued; it is a
    // static, valid forever; kfree_rcu_work takes the batch back.
    unsafe { call_rcu(KRW_HEADS[cpu][i].0.get(), kfree_rcu_work) };
    true
}

/// Which CPU's slot `head` is.
fn krw_of(head: *mut RcuHead) -> Option<(usize, usize)> {
    (0..NR_CPUS)
        .flat_map(|c| (0..KFREE_N_BATCHES).map(move |i| (c, i)))
        .find(|&(c, i)| KRW_HEADS[c][i].0.get() == head)
}

/// The drain: a batch's grace period is over, free it (Linux:
/// kfree_rcu_work and kvfree_rcu_bulk).
///
/// # Safety
/// `head` is a slot head in KRW_HEADS that kfree_rcu_monitor queued.
unsafe fn kfree_rcu_work(head: *mut RcuHead) {
    let Some((cpu, i)) = krw_of(head) else {
        crate::pr_err!("kvfree_rcu: callback with a head {:p} that is no batch's", head);
        return;
    };
    let (bkvhead, mut h) = {
        let mut krcp = KRC[cpu].lock();
        let krw = &mut krcp.krw_arr[i];
        let b = krw.bkvhead_free;
        let h = krw.head_free;
        krw.bkvhead_free = [null_mut(); FREE_N_CHANNELS];
        krw.head_free = null_mut();
        krw.busy = false;
        // A backlog that filled while both slots waited goes now.
        kfree_rcu_monitor(&mut krcp, cpu);
        (b, h)
    };
    for (chan, &first) in bkvhead.iter().enumerate() {
        let mut bnode = first;
        while !bnode.is_null() {
            // SAFETY: the batch's pages of pointers, now ours alone; each
            // record pair/word is an object queued by kvfree_call_rcu,
            // whose grace period is over.
            unsafe {
                let n = (*bnode).nr_records;
                let mut j = 0;
                while j < n {
                    let ptr = (*bnode).records[j] as *mut u8;
                    if chan == 0 {
                        kvfree_one(ptr, (*bnode).records[j + 1]);
                    } else {
                        vfree(ptr);
                    }
                    j += record_words(chan);
                }
                let next = (*bnode).next;
                __free_pages(__pa(VirtAddr(bnode as usize)), 0);
                bnode = next;
            }
        }
    }
    while !h.is_null() {
        // SAFETY: a head chained by kvfree_call_rcu, inside its object;
        // func holds (size << 32) | offset of the head in the object.
        unsafe {
            let next = (*h).next;
            let func = (*h).func;
            let ptr = (h as usize - (func & 0xffff_ffff)) as *mut u8;
            kvfree_one(ptr, func >> 32);
            h = next;
        }
    }
}

/// rcu_core's call on each CPU: hand over an aged batch, or any batch
/// when the CPU is about to sleep.
fn kfree_rcu_monitor_hook(idle: bool) {
    let cpu = smp_processor_id();
    let ts = KRC_FIRST_TS[cpu].load(Ordering::Relaxed);
    if ts == 0 {
        return;
    }
    if !idle && timer::get_cycles().wrapping_sub(ts) < timer::frequency() * KFREE_DRAIN_MS / 1000 {
        return;
    }
    kfree_rcu_monitor(&mut KRC[cpu].lock(), cpu);
}

/// Free `ptr` after a grace period (Linux 6.1: kvfree_call_rcu). `head`:
/// the two-argument form, an rcu_head inside the object, used when no
/// page of pointers can be had; None: the one-argument form, which may
/// sleep (it reports a quiescent state, and without memory it waits for a
/// grace period itself). `size` is what the object was kmalloc'd with
/// (ignored for vmalloc'd memory, as vfree finds the area).
///
/// # Safety
/// `ptr` is null, or came from vmalloc or kmalloc(`size`) and is freed
/// once; nothing uses it once readers that may see it are done. `head`
/// lies inside the object. The one-argument form is not called inside a
/// read-side critical section (reported if it is).
pub unsafe fn kvfree_call_rcu(head: Option<NonNull<RcuHead>>, ptr: *mut u8, size: usize) {
    if ptr.is_null() {
        return;
    }
    if !MONITOR_REGISTERED.load(Ordering::Relaxed) {
        MONITOR_REGISTERED.store(true, Ordering::Relaxed);
        rcu_set_kvfree_monitor(kfree_rcu_monitor_hook);
    }
    let chan = is_vmalloc_addr(ptr as usize) as usize;
    let cpu = smp_processor_id();
    let mut krcp = KRC[cpu].lock();
    if !add_ptr_to_bulk_krc_lock(&mut krcp, chan, ptr, size) {
        match head {
            Some(h) => {
                let h = h.as_ptr();
                let offset = h as usize - ptr as usize;
                debug_assert!(offset < 1 << 32 && size < 1 << 32);
                // SAFETY: the caller's head, inside the object, ours until
                // the drain frees the object.
                unsafe {
                    (*h).func = (size << 32) | offset;
                    (*h).next = krcp.head;
                }
                krcp.head = h;
            }
            None => {
                // No memory for the batch: wait here (Linux does the same
                // for the head-less form).
                drop(krcp);
                synchronize_rcu();
                // SAFETY: the caller's contract; a grace period has passed.
                unsafe { kvfree_one(ptr, size) };
                return;
            }
        }
    }
    krcp.count += 1;
    if KRC_FIRST_TS[cpu].load(Ordering::Relaxed) == 0 {
        KRC_FIRST_TS[cpu].store(timer::get_cycles() | 1, Ordering::Relaxed);
    }
    if krcp.count >= KVFREE_BULK_MAX_ENTR {
        kfree_rcu_monitor(&mut krcp, cpu);
    }
    drop(krcp);
    if head.is_none() {
        // might_sleep(): a quiescent state, and due batches drain.
        cond_resched();
    }
}

/// `kvfree_rcu(ptr)`: the one-argument form (Linux's kvfree_rcu_arg_1).
/// `T` is the allocated type: `kmalloc(size_of::<T>())`, or any vmalloc'd
/// area.
///
/// # Safety
/// As [`kvfree_call_rcu`] with no head.
pub unsafe fn kvfree_rcu_arg_1<T>(ptr: *mut T) {
    // SAFETY: forwarded contract.
    unsafe { kvfree_call_rcu(None, ptr as *mut u8, core::mem::size_of::<T>()) }
}

/// `kvfree_rcu(ptr, rhf)`: the two-argument form (Linux's
/// kvfree_rcu_arg_2), `rhf` the object's rcu_head field. Never sleeps.
///
/// # Safety
/// As [`kvfree_call_rcu`]; `rhf` points into `*ptr`.
pub unsafe fn kvfree_rcu_arg_2<T>(ptr: *mut T, rhf: *mut RcuHead) {
    // SAFETY: forwarded contract.
    unsafe { kvfree_call_rcu(NonNull::new(rhf), ptr as *mut u8, core::mem::size_of::<T>()) }
}

/// Wait until everything kvfree_rcu'd before this call is freed (Linux
/// 6.12: kvfree_rcu_barrier): hand every CPU's batch to a grace period,
/// wait for the callbacks, again until no batch is left anywhere.
pub fn kvfree_rcu_barrier() {
    loop {
        let mut busy = false;
        for (cpu, k) in KRC.iter().enumerate() {
            let mut krcp = k.lock();
            if !kfree_rcu_monitor(&mut krcp, cpu) || krcp.krw_arr.iter().any(|w| w.busy) {
                busy = true;
            }
        }
        rcu_barrier();
        if !busy {
            return;
        }
    }
}

/// Objects queued on every CPU and not yet handed to a grace period.
pub fn kvfree_rcu_queued() -> usize {
    KRC.iter().map(|k| k.lock().count).sum()
}
