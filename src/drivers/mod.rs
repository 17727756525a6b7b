// SPDX-License-Identifier: GPL-2.0-only
//! Device drivers (Linux: drivers/): the flattened device tree parser and
//! the PL011 console, the GIC.

#[cfg(target_os = "none")]
pub mod irqchip;
pub mod of;
pub mod tty;
