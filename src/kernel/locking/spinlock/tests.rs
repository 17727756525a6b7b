// SPDX-License-Identifier: GPL-2.0-only
use super::SpinLock;
use std::sync::Arc;
use std::thread;

#[test]
fn lock_excludes_other_threads() {
    // A read-modify-write that is not atomic on its own: lost updates show
    // up as a short count if two threads are ever inside at once.
    const THREADS: usize = 4;
    const ROUNDS: usize = 50_000;
    let lock = Arc::new(SpinLock::new((0usize, 0usize)));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let lock = Arc::clone(&lock);
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let mut g = lock.lock();
                    let v = g.0;
                    std::hint::black_box(&mut *g);
                    g.0 = v + 1;
                    g.1 += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let g = lock.lock();
    assert_eq!(*g, (THREADS * ROUNDS, THREADS * ROUNDS));
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after() {
    let lock = SpinLock::new(7);
    let g = lock.lock();
    assert!(lock.is_locked());
    assert!(lock.try_lock().is_none());
    drop(g);
    assert!(!lock.is_locked());
    let g = lock.try_lock().expect("free lock");
    assert_eq!(*g, 7);
}

#[test]
fn a_waiter_proceeds_once_the_holder_unlocks() {
    let lock = Arc::new(SpinLock::new(0u32));
    let g = lock.lock();
    let waiter = {
        let lock = Arc::clone(&lock);
        thread::spawn(move || *lock.lock() + 1)
    };
    thread::sleep(std::time::Duration::from_millis(20));
    assert!(!waiter.is_finished(), "the waiter got past a held lock");
    drop(g);
    assert_eq!(waiter.join().unwrap(), 1);
}

#[test]
fn force_unlock_releases_a_forgotten_hold() {
    let lock = SpinLock::new(());
    core::mem::forget(lock.lock());
    assert!(lock.is_locked());
    // SAFETY: this thread holds the lock and the guard was forgotten.
    unsafe { lock.force_unlock() };
    assert!(lock.try_lock().is_some());
}
