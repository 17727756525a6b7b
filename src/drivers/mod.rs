// SPDX-License-Identifier: GPL-2.0-only
//! Device drivers (Linux: drivers/): the flattened device tree parser and
//! the PL011 console.

pub mod of;
pub mod tty;
