// SPDX-License-Identifier: GPL-2.0-only
//! A fixed-size byte FIFO (Linux: lib/kfifo.c), used as the console's
//! software receive ring.

/// A fixed ring of `N` received bytes, oldest first: the console driver's
/// software receive buffer (drivers/tty/serial/pl011.rs says why it exists).
pub struct InputQueue<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for InputQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> InputQueue<N> {
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            head: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Append `b`; refused (false) when full: the caller leaves the byte
    /// where it is (in the UART) instead of dropping it.
    pub fn push(&mut self, b: u8) -> bool {
        if self.is_full() {
            return false;
        }
        self.buf[(self.head + self.len) % N] = b;
        self.len += 1;
        true
    }

    pub fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let b = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(b)
    }

    /// Remove the oldest `b`, keeping the order of everything else
    /// (Ctrl-C taken out of type-ahead by a long-running command).
    pub fn remove_first(&mut self, b: u8) -> bool {
        let Some(i) = (0..self.len).find(|&i| self.buf[(self.head + i) % N] == b) else {
            return false;
        };
        for j in i..self.len - 1 {
            self.buf[(self.head + j) % N] = self.buf[(self.head + j + 1) % N];
        }
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests;
