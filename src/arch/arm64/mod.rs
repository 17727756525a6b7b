// SPDX-License-Identifier: GPL-2.0-only
//! arm64 (Linux: arch/arm64/): the memory map and page-table format are
//! plain data and compile for the host too; the boot code, exception
//! handling and the MMU setup are kernel-only.

pub mod barrier;
pub mod memory;
pub mod mm;

#[cfg(target_os = "none")]
pub mod kernel;
