// SPDX-License-Identifier: GPL-2.0-only
//! TTY drivers (Linux: drivers/tty/).

pub mod serial;
