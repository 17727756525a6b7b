// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `kfifo` (`cargo htest`).

use super::InputQueue;

const CTRL_C: u8 = 0x03;

#[test]
fn input_queue_keeps_order_and_removes_one() {
    let mut q = InputQueue::<8>::new();
    for &b in b"ab\x03cd\x03" {
        assert!(q.push(b));
    }
    assert!(q.remove_first(CTRL_C));
    let mut out = Vec::new();
    while let Some(b) = q.pop() {
        out.push(b);
    }
    assert_eq!(out, b"abcd\x03");
    assert!(!q.remove_first(CTRL_C));
}

#[test]
fn input_queue_refuses_when_full_and_wraps_without_loss() {
    let mut q = InputQueue::<16>::new();
    let mut next_in = 0u8;
    let mut next_out = 0u8;
    for _ in 0..10 {
        while q.push(next_in) {
            next_in = next_in.wrapping_add(1);
        }
        assert!(q.is_full());
        assert_eq!(q.len(), 16);
        for _ in 0..5 {
            assert_eq!(q.pop(), Some(next_out));
            next_out = next_out.wrapping_add(1);
        }
    }
    // Removal across the wrap point keeps the rest in order.
    let target = next_out.wrapping_add(8);
    let want: Vec<u8> = (0..q.len() as u8)
        .map(|i| next_out.wrapping_add(i))
        .filter(|&b| b != target)
        .collect();
    assert!(q.remove_first(target));
    let mut got = Vec::new();
    while let Some(b) = q.pop() {
        got.push(b);
    }
    assert_eq!(got, want);
    assert_eq!(got.last().map(|b| b.wrapping_add(1)), Some(next_in));
}
