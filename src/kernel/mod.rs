// SPDX-License-Identifier: GPL-2.0-only
//! The core kernel services every other part uses (Linux: kernel/):
//! printk and its log buffer, panic, power-off, bringing the other CPUs up.

pub mod panic;
pub mod printk;
pub mod reboot;
pub mod smp;
