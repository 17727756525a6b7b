// SPDX-License-Identifier: GPL-2.0-only
//! Locking primitives (Linux: kernel/locking/).

pub mod spinlock;
