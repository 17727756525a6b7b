//! Open Firmware / device tree support (Linux: drivers/of/).

pub mod fdt;
