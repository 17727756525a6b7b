// SPDX-License-Identifier: GPL-2.0-only
//! Generic memory management (Linux: mm/). Boot order, as in Linux:
//!
//! 1. `arm64_memblock_init` (arch/arm64/mm/init.rs): RAM banks from the
//!    device tree minus the kernel image, the FDT, /memreserve/ and
//!    /reserved-memory (`no-map` children marked NOMAP);
//! 2. `paging_init` (arch/arm64/mm/mmu.rs): swapper_pg_dir, tables from memblock;
//! 3. [`mm_init`]: the buddy allocator over what memblock left free
//!    (`memblock_free_all`), then the heap may grow from it, then vmalloc.
//!
//! The algorithms with no global state (`buddy`, `memblock`, `numa`'s node
//! order, `vmap_tree`)
//! are compiled for the host too and unit-tested there (`cargo htest`); the
//! rest is kernel-only.

pub mod buddy;
pub mod gfp;
pub mod memblock;
pub mod numa;
pub mod percpu_map;
pub mod vmap_tree;

#[cfg(target_os = "none")]
pub mod fault_inject;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod page_alloc;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub mod slab;
#[cfg(target_os = "none")]
pub mod util;
#[cfg(target_os = "none")]
pub mod vmalloc;
#[cfg(target_os = "none")]
pub mod vmap_block;

#[cfg(target_os = "none")]
mod init;
#[cfg(target_os = "none")]
pub use init::*;
