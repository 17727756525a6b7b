// SPDX-License-Identifier: GPL-2.0-only
//! arm64 memory management (Linux: arch/arm64/mm/): the page-table
//! format and walker (host-tested), the kernel page tables (`mmu`:
//! paging_init, map_mem, the fixmap, TLB maintenance), ioremap, and the
//! boot memory map from the device tree (`init`).

pub mod pgtable;

#[cfg(target_os = "none")]
pub mod init;
#[cfg(target_os = "none")]
pub mod ioremap;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod pageattr;
