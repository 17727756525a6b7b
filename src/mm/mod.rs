//! Portable memory-management logic: the virtual memory map, page-table
//! descriptors and walker, the boot-time memory map (memblock) and the vmap
//! area trees. Everything here is host-testable; the kernel binary supplies
//! the allocators, barriers and TLB maintenance through small traits.

pub mod buddy;
pub mod layout;
pub mod memblock;
pub mod pgtable;
pub mod vmap_tree;
