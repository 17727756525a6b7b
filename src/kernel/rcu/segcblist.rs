// SPDX-License-Identifier: GPL-2.0-only
//! The grace-period bookkeeping that needs no CPU (Linux:
//! kernel/rcu/rcu_segcblist.c and rcu.h's rcu_seq_*, much reduced): the
//! callback list cut into segments by the grace period each segment waits
//! for, and the grace-period sequence number. Portable, so the host tests
//! (`tests.rs`) check the ordering rules tree.rs relies on.
//!
//! One list for the whole machine (Linux keeps one per CPU): callbacks are
//! queued by `call_rcu`, mostly by kvfree_rcu's batches (one callback per
//! page of pointers), so the lock that guards it is rarely contended.
//!
//! Three segments, oldest first (Linux's RCU_DONE_TAIL, RCU_WAIT_TAIL,
//! RCU_NEXT_TAIL; a single global list never needs NEXT_READY):
//! * DONE: their grace period has ended; they may be invoked;
//! * WAIT: queued before the grace period in progress started: they are
//!   DONE when it ends;
//! * NEXT: queued while a grace period was in progress (or none was):
//!   the *next* grace period, which starts after they were queued, serves
//!   them.

/// Linux's `struct rcu_head` (`callback_head`): the two words an object
/// lends to RCU from `call_rcu` until its callback runs.
#[repr(C)]
pub struct RcuHead {
    pub(crate) next: *mut RcuHead,
    /// The callback's address, or for kvfree_rcu's fallback chain the
    /// object's size and the head's offset in it (as Linux keeps the
    /// offset there).
    pub(crate) func: usize,
}

impl RcuHead {
    pub const fn new() -> Self {
        Self {
            next: core::ptr::null_mut(),
            func: 0,
        }
    }
}

impl Default for RcuHead {
    fn default() -> Self {
        Self::new()
    }
}

/// What `call_rcu` runs after the grace period: it gets the head it was
/// queued with (the object is found from it, Linux's container_of).
///
/// # Safety
/// Called once per `call_rcu`, with the head passed to it; the callback
/// owns the object from then on.
pub type RcuCallback = unsafe fn(*mut RcuHead);

/// A singly linked FIFO of heads (Linux: struct rcu_cblist).
#[derive(Debug)]
pub struct RcuCbList {
    head: *mut RcuHead,
    tail: *mut RcuHead,
    len: usize,
}

impl RcuCbList {
    pub const fn new() -> Self {
        Self {
            head: core::ptr::null_mut(),
            tail: core::ptr::null_mut(),
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Append `h`.
    ///
    /// # Safety
    /// `h` is valid, not on any list, and stays valid until taken off.
    pub unsafe fn enqueue(&mut self, h: *mut RcuHead) {
        // SAFETY: the caller gives us h; tail, when not null, is the last
        // head of this list, valid by the same contract.
        unsafe {
            (*h).next = core::ptr::null_mut();
            if self.tail.is_null() {
                self.head = h;
            } else {
                (*self.tail).next = h;
            }
        }
        self.tail = h;
        self.len += 1;
    }

    /// Append all of `other` (emptying it).
    pub fn splice(&mut self, other: &mut RcuCbList) {
        if other.is_empty() {
            return;
        }
        if self.tail.is_null() {
            self.head = other.head;
        } else {
            // SAFETY: tail is this list's last head, valid per enqueue's
            // contract.
            unsafe { (*self.tail).next = other.head };
        }
        self.tail = other.tail;
        self.len += other.len;
        *other = RcuCbList::new();
    }

    /// Take the first head off.
    pub fn dequeue(&mut self) -> Option<*mut RcuHead> {
        let h = self.head;
        if h.is_null() {
            return None;
        }
        // SAFETY: h is on this list, valid per enqueue's contract.
        self.head = unsafe { (*h).next };
        if self.head.is_null() {
            self.tail = core::ptr::null_mut();
        }
        self.len -= 1;
        Some(h)
    }
}

impl Default for RcuCbList {
    fn default() -> Self {
        Self::new()
    }
}

/// The grace-period sequence number (Linux: rcu_state.gp_seq with
/// RCU_SEQ_CTR_SHIFT = 1): even while no grace period runs, odd while one
/// does; each grace period adds 2.
pub fn rcu_seq_in_progress(s: u64) -> bool {
    s & 1 != 0
}

/// The `gp_seq` at which a full grace period that starts after `s` was
/// read has ended (Linux: rcu_seq_snap): the end of the next one if none
/// runs, else the end of the one after the current.
pub fn rcu_seq_snap(s: u64) -> u64 {
    (s + 3) & !1
}

/// Has the grace period `snap` asked for ended (Linux: rcu_seq_done)?
pub fn rcu_seq_done(cur: u64, snap: u64) -> bool {
    cur.wrapping_sub(snap) as i64 >= 0
}

/// The callbacks in segments, and the sequence number that moves them.
pub struct RcuSegCbList {
    pub gp_seq: u64,
    done: RcuCbList,
    wait: RcuCbList,
    next: RcuCbList,
}

impl RcuSegCbList {
    pub const fn new() -> Self {
        Self {
            gp_seq: 0,
            done: RcuCbList::new(),
            wait: RcuCbList::new(),
            next: RcuCbList::new(),
        }
    }

    /// Queue a callback for the next grace period that starts (Linux:
    /// rcu_segcblist_enqueue).
    ///
    /// # Safety
    /// As [`RcuCbList::enqueue`].
    pub unsafe fn enqueue(&mut self, h: *mut RcuHead) {
        // SAFETY: forwarded contract.
        unsafe { self.next.enqueue(h) };
    }

    pub fn gp_in_progress(&self) -> bool {
        rcu_seq_in_progress(self.gp_seq)
    }

    /// Does a grace period need to start: callbacks wait for one and none
    /// runs (Linux: rcu_future_gp_cleanup / needs_gp)?
    pub fn needs_gp(&self) -> bool {
        !self.gp_in_progress() && !self.next.is_empty()
    }

    /// Start a grace period: everything queued so far waits for it (Linux:
    /// rcu_gp_init + rcu_accelerate_cbs). False if one runs already or
    /// nothing waits.
    pub fn start_gp(&mut self) -> bool {
        if !self.needs_gp() {
            return false;
        }
        self.gp_seq += 1;
        let mut next = core::mem::take(&mut self.next);
        self.wait.splice(&mut next);
        true
    }

    /// The grace period in progress ended: its callbacks are DONE (Linux:
    /// rcu_gp_cleanup + rcu_advance_cbs).
    pub fn end_gp(&mut self) {
        debug_assert!(self.gp_in_progress(), "end_gp without a grace period");
        self.gp_seq += 1;
        let mut wait = core::mem::take(&mut self.wait);
        self.done.splice(&mut wait);
    }

    pub fn has_done(&self) -> bool {
        !self.done.is_empty()
    }

    /// Take every DONE callback, in queue order (Linux:
    /// rcu_segcblist_extract_done_cbs).
    pub fn take_done(&mut self) -> RcuCbList {
        core::mem::take(&mut self.done)
    }

    /// Callbacks not yet invoked: (done, waiting for the current grace
    /// period, waiting for the next).
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.done.len(), self.wait.len(), self.next.len())
    }
}

impl Default for RcuSegCbList {
    fn default() -> Self {
        Self::new()
    }
}

/// The CPUs a new grace period waits for: online, and not in an extended
/// quiescent state (idle in `wfi`) when it starts, Linux's dyntick-idle
/// snapshot in rcu_gp_init/force_qs_rnp.
pub fn qs_mask_for_gp(online: u64, eqs: u64) -> u64 {
    online & !eqs
}

#[cfg(test)]
mod tests;
