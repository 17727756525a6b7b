// SPDX-License-Identifier: GPL-2.0-only
//! Kernel initialisation (Linux: init/): start_kernel in init/main.c's
//! order, and the table of boot parameters. init is the top of the tree: it
//! is the only part that knows the shell, ktest and the benchmarks.

pub mod main;
pub mod params;
