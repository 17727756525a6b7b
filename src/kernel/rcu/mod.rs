// SPDX-License-Identifier: GPL-2.0-only
//! Read-copy update (Linux: kernel/rcu/, include/linux/rcupdate.h) for a
//! kernel without preemption of kernel code: grace periods from quiescent
//! states (tree.rs), the callback segments they advance (segcblist.rs,
//! portable and host-tested) and kvfree_rcu's batches (kvfree.rs, which
//! sits above mm). docs/rcu.md describes the design and its limits.

#[cfg(target_os = "none")]
pub mod kvfree;
pub mod segcblist;
#[cfg(target_os = "none")]
pub mod tree;
