// SPDX-License-Identifier: GPL-2.0-only
//! Serial drivers (Linux: drivers/tty/serial/).

#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod pl011;
