// SPDX-License-Identifier: GPL-2.0-only
//! Open Firmware / device tree support (Linux: drivers/of/).

pub mod fdt;
