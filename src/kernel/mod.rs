// SPDX-License-Identifier: GPL-2.0-only
//! The core kernel services every other part uses (Linux: kernel/):
//! printk and its log buffer, panic, power-off, bringing the other CPUs up,
//! RCU, and the locks (which the host build needs too).

pub mod locking;
#[cfg(target_os = "none")]
pub mod panic;
#[cfg(target_os = "none")]
pub mod printk;
pub mod rcu;
#[cfg(target_os = "none")]
pub mod reboot;
#[cfg(target_os = "none")]
pub mod smp;
