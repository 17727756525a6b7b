// SPDX-License-Identifier: GPL-2.0-only
//! `SpinLock<T>`: Linux's spinlock_t, carrying the data it guards.
//!
//! The uncontended path is the one 5.10's qspinlock takes: one
//! compare-and-swap of the lock word from 0 to "locked" (acquire), and a
//! release store of 0 to unlock. A CPU that finds the lock taken waits with
//! `smp_cond_load_relaxed` until the word reads 0, i.e. asleep in `wfe`
//! with the exclusive monitor armed on the lock word, so the holder's
//! unlocking store wakes it; then it retries the swap.
//!
//! What is left out of qspinlock is the MCS queue of waiters: the lock is
//! not FIFO-fair, so with many CPUs contending one of them can lose the
//! race repeatedly. On the 2-8 CPUs this kernel runs on it has not
//! mattered (the lock-torture ktest and the 20-repeat stress run pass with
//! it, docs/smp.md); a ticket lock was tried and cost 4-6 % on the
//! single-CPU benchmark for its extra atomic.
//!
//! A spinlock does not mask interrupts. Code that takes a lock an interrupt
//! handler may also take masks IRQs around it (Linux's spin_lock_irqsave);
//! each such lock says so where it is defined.

use crate::arch::barrier::smp_cond_load_relaxed_u32;
use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

/// The lock word's values (Linux: _Q_LOCKED_VAL).
const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;

/// A spinlock (Linux: spinlock_t) around a `T`.
pub struct SpinLock<T: ?Sized> {
    val: AtomicU32,
    data: UnsafeCell<T>,
}
// SAFETY: the lock hands out at most one guard at a time, so moving the
// lock to another CPU or sharing it between CPUs moves or shares only a `T`
// that one CPU at a time can reach: `T: Send` is all that is needed.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}
// SAFETY: as above: the guard serialises every access to the `T`.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}

/// Proof that this CPU holds a [`SpinLock`]; dropping it unlocks.
pub struct SpinLockGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
}

// SAFETY: a shared guard only gives `&T`, which is shareable if `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for SpinLockGuard<'_, T> {}

impl<T> SpinLock<T> {
    /// Linux's DEFINE_SPINLOCK / spin_lock_init: an unlocked lock.
    pub const fn new(data: T) -> Self {
        SpinLock {
            val: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(data),
        }
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Linux's spin_lock.
    #[inline(always)]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        if self
            .val
            .compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slowpath();
        }
        SpinLockGuard { lock: self }
    }

    /// Linux's queued_spin_lock_slowpath, minus the queue: sleep until the
    /// word reads unlocked, then race for it again.
    #[cold]
    #[inline(never)]
    fn lock_slowpath(&self) {
        loop {
            smp_cond_load_relaxed_u32(&self.val, |v| v == UNLOCKED);
            if self
                .val
                .compare_exchange_weak(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Linux's spin_trylock: the lock if nobody holds it.
    #[inline]
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        self.val
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SpinLockGuard { lock: self })
    }

    /// Linux's spin_is_locked.
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.val.load(Ordering::Relaxed) != UNLOCKED
    }

    /// Release a hold whose guard was forgotten (the panic path breaking
    /// its own CPU's console lock).
    ///
    /// # Safety
    ///
    /// The calling CPU holds the lock and no guard for that hold will be
    /// used or dropped afterwards.
    #[inline]
    pub unsafe fn force_unlock(&self) {
        self.unlock();
    }

    /// Linux's spin_unlock: a release store (arm64: stlr), which also
    /// clears the waiters' exclusive monitors and so wakes their `wfe`.
    #[inline(always)]
    fn unlock(&self) {
        self.val.store(UNLOCKED, Ordering::Release);
    }

    /// The data, without locking: `&mut self` proves nobody else holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: ?Sized> Deref for SpinLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this CPU holds the lock, so no other
        // reference to the data is live.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only one.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinLockGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpinLock {{ locked: {} }}", self.is_locked())
    }
}

#[cfg(test)]
mod tests;
