// SPDX-License-Identifier: GPL-2.0-only
//! Host tests of the callback segments and the sequence numbers.

use super::*;

/// Heads in a vector that is never resized, so their addresses stay put.
fn heads(n: usize) -> Vec<RcuHead> {
    (0..n).map(|_| RcuHead::new()).collect()
}

fn ptr(h: &mut [RcuHead], i: usize) -> *mut RcuHead {
    &mut h[i] as *mut RcuHead
}

fn drain(l: &mut RcuCbList) -> Vec<*mut RcuHead> {
    let mut v = Vec::new();
    while let Some(h) = l.dequeue() {
        v.push(h);
    }
    v
}

#[test]
fn callback_queued_before_a_gp_is_done_when_it_ends() {
    let mut h = heads(2);
    let mut s = RcuSegCbList::new();
    // SAFETY: the heads outlive the list.
    unsafe { s.enqueue(ptr(&mut h, 0)) };
    assert!(s.needs_gp());
    assert!(s.start_gp());
    assert!(s.gp_in_progress());
    assert!(!s.has_done());
    s.end_gp();
    assert!(!s.gp_in_progress());
    assert_eq!(drain(&mut s.take_done()), vec![ptr(&mut h, 0)]);
    assert!(!s.needs_gp());
}

#[test]
fn callback_queued_during_a_gp_waits_for_the_next() {
    let mut h = heads(3);
    let mut s = RcuSegCbList::new();
    // SAFETY: the heads outlive the list.
    unsafe { s.enqueue(ptr(&mut h, 0)) };
    assert!(s.start_gp());
    // SAFETY: as above.
    unsafe { s.enqueue(ptr(&mut h, 1)) };
    // A grace period runs: no second one starts.
    assert!(!s.start_gp());
    assert_eq!(s.counts(), (0, 1, 1));
    s.end_gp();
    assert_eq!(s.counts(), (1, 0, 1));
    assert_eq!(drain(&mut s.take_done()), vec![ptr(&mut h, 0)]);
    // SAFETY: as above.
    unsafe { s.enqueue(ptr(&mut h, 2)) };
    assert!(s.start_gp());
    s.end_gp();
    assert_eq!(drain(&mut s.take_done()), vec![ptr(&mut h, 1), ptr(&mut h, 2)]);
    assert_eq!(s.gp_seq, 4);
}

#[test]
fn done_callbacks_keep_queue_order_across_grace_periods() {
    let mut h = heads(6);
    let mut s = RcuSegCbList::new();
    let mut expect = Vec::new();
    for i in 0..6 {
        // SAFETY: the heads outlive the list.
        unsafe { s.enqueue(ptr(&mut h, i)) };
        expect.push(ptr(&mut h, i));
        if i % 2 == 1 {
            s.start_gp();
        }
        if i % 3 == 2 && s.gp_in_progress() {
            s.end_gp();
        }
    }
    while s.gp_in_progress() || s.needs_gp() {
        if !s.start_gp() {
            s.end_gp();
        }
    }
    assert_eq!(drain(&mut s.take_done()), expect);
}

#[test]
fn seq_snap_needs_a_whole_grace_period() {
    // Idle at 0: the next grace period (1 -> 2) serves a snapshot.
    assert_eq!(rcu_seq_snap(0), 2);
    // One in progress at 1: it started before the snapshot, so only the
    // one after it (3 -> 4) will do.
    assert_eq!(rcu_seq_snap(1), 4);
    assert!(!rcu_seq_done(2, 4));
    assert!(!rcu_seq_done(3, 4));
    assert!(rcu_seq_done(4, 4));
    assert!(rcu_seq_done(6, 4));
    // Wrap-around compares as Linux's ULONG_CMP_GE.
    assert!(rcu_seq_done(1, u64::MAX - 1));
}

#[test]
fn idle_and_offline_cpus_are_not_waited_for() {
    // CPUs 0-3 online, 2 idle: the grace period waits for 0, 1 and 3.
    assert_eq!(qs_mask_for_gp(0b1111, 0b0100), 0b1011);
    // CPU 4 offline but marked idle: irrelevant.
    assert_eq!(qs_mask_for_gp(0b0011, 0b1_0000), 0b0011);
    assert_eq!(qs_mask_for_gp(0b0001, 0b0001), 0);
}

#[test]
fn splice_and_dequeue_keep_len_and_tail() {
    let mut h = heads(4);
    let mut a = RcuCbList::new();
    let mut b = RcuCbList::new();
    // SAFETY: the heads outlive the lists.
    unsafe {
        a.enqueue(ptr(&mut h, 0));
        b.enqueue(ptr(&mut h, 1));
        b.enqueue(ptr(&mut h, 2));
    }
    a.splice(&mut b);
    assert!(b.is_empty());
    assert_eq!(a.len(), 3);
    // SAFETY: as above.
    unsafe { a.enqueue(ptr(&mut h, 3)) };
    assert_eq!(drain(&mut a), (0..4).map(|i| ptr(&mut h, i)).collect::<Vec<_>>());
    assert_eq!(a.len(), 0);
}
