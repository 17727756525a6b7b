//! Kernel memory management with global state (Linux: mm/ and
//! arch/arm64/mm/): the kernel heap, and later the page tables, the buddy
//! allocator and vmalloc. The portable logic they use lives in the library
//! (`kernel::mm`), where it is unit-tested on the host.

pub mod heap;
