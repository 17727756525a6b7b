// SPDX-License-Identifier: GPL-2.0-only
//! The arm64 virtual memory map (Linux 5.10, 48-bit VA, 4 KiB pages) and the
//! address types and conversions every other mm module uses.
//!
//! ```text
//! 0xffff_0000_0000_0000  PAGE_OFFSET    linear map of all RAM (__va/__pa)
//! 0xffff_8000_0000_0000  PAGE_END       end of the linear-map half
//! 0xffff_8000_1000_0000  KIMAGE_VADDR   kernel image = VMALLOC_START
//! 0xffff_fdff_bfff_0000  VMALLOC_END
//! 0xffff_fdff_fe5f_9000  FIXADDR_START  fixmap (early console)
//! ```

use core::fmt;

pub const PAGE_SHIFT: usize = 12;
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
pub const PAGE_MASK: usize = !(PAGE_SIZE - 1);

/// Number of virtual address bits translated by TTBR1 (T1SZ = 64 - 48).
pub const VA_BITS: usize = 48;

/// Bits resolved by one table level (512 eight-byte entries per 4 KiB table).
pub const PTRS_PER_TABLE: usize = 512;
pub const PMD_SHIFT: usize = 21; // level 2: 2 MiB blocks
pub const PUD_SHIFT: usize = 30; // level 1: 1 GiB blocks
pub const PGDIR_SHIFT: usize = 39; // level 0
pub const PMD_SIZE: usize = 1 << PMD_SHIFT;
pub const PUD_SIZE: usize = 1 << PUD_SHIFT;
pub const PGDIR_SIZE: usize = 1 << PGDIR_SHIFT;

/// Start of the linear map: `__va(pa) = pa - PHYS_OFFSET + PAGE_OFFSET`.
pub const PAGE_OFFSET: usize = 0xffff_0000_0000_0000;
/// End of the linear-map half of the kernel VA space.
pub const PAGE_END: usize = 0xffff_8000_0000_0000;
/// Where the kernel image is linked (MODULES_END in 5.10; no modules here).
pub const KIMAGE_VADDR: usize = 0xffff_8000_1000_0000;
pub const VMALLOC_START: usize = KIMAGE_VADDR;
/// As in 5.10 for 48-bit VA: below the vmemmap, PCI I/O and fixmap regions.
pub const VMALLOC_END: usize = 0xffff_fdff_bfff_0000;
/// The fixmap: a few fixed virtual pages mapped at boot (the early console,
/// and the windows paging_init builds swapper_pg_dir through).
pub const FIXADDR_START: usize = 0xffff_fdff_fe5f_9000;
pub const FIXADDR_TOP: usize = 0xffff_fdff_fea0_0000;

// Fixmap slot indices (Linux: enum fixed_addresses), counted down from
// FIXADDR_TOP by fix_to_virt. FIX_HOLE (0) stays unmapped.
pub const FIX_HOLE: usize = 0;
/// Index of the boot console's UART page (see [`FIX_EARLYCON_MEM_BASE`]).
pub const FIX_EARLYCON_MEM_IDX: usize = 1;
/// The page-table windows paging_init reaches table pages through, whatever
/// their physical address (Linux: pte/pmd/pud/pgd_set_fixmap): no table
/// page has to lie inside the boot identity map.
pub const FIX_PTE: usize = 2;
pub const FIX_PMD: usize = 3;
pub const FIX_PUD: usize = 4;
pub const FIX_PGD: usize = 5;
pub const __END_OF_FIXED_ADDRESSES: usize = 6;

/// Virtual address of fixmap slot `idx` (Linux: `__fix_to_virt`).
pub const fn fix_to_virt(idx: usize) -> usize {
    FIXADDR_TOP - (idx << PAGE_SHIFT)
}

/// Address of the boot console's fixmap slot (what Linux calls
/// `fix_to_virt(FIX_EARLYCON_MEM_BASE)`).
pub const FIX_EARLYCON_MEM_BASE: usize = fix_to_virt(FIX_EARLYCON_MEM_IDX);

/// A physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(pub usize);

/// A kernel virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(pub usize);

macro_rules! addr_common {
    ($t:ident, $prefix:literal) => {
        impl $t {
            pub const fn new(a: usize) -> Self {
                Self(a)
            }
            pub const fn as_usize(self) -> usize {
                self.0
            }
            pub const fn add(self, n: usize) -> Self {
                Self(self.0 + n)
            }
            pub const fn page_offset(self) -> usize {
                self.0 & !PAGE_MASK
            }
            pub const fn page_align_down(self) -> Self {
                Self(self.0 & PAGE_MASK)
            }
            pub const fn page_align_up(self) -> Self {
                Self((self.0 + PAGE_SIZE - 1) & PAGE_MASK)
            }
            pub const fn is_page_aligned(self) -> bool {
                self.page_offset() == 0
            }
            pub const fn is_aligned(self, align: usize) -> bool {
                self.0 & (align - 1) == 0
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "({:#x})"), self.0)
            }
        }
        impl fmt::LowerHex for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}
addr_common!(PhysAddr, "PA");
addr_common!(VirtAddr, "VA");

impl VirtAddr {
    pub fn as_ptr<T>(self) -> *const T {
        self.0 as *const T
    }
    pub fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
    /// Index into the level-0 table (pgd) for this address.
    pub const fn pgd_index(self) -> usize {
        (self.0 >> PGDIR_SHIFT) & (PTRS_PER_TABLE - 1)
    }
    /// Index into the level-1 table (pud).
    pub const fn pud_index(self) -> usize {
        (self.0 >> PUD_SHIFT) & (PTRS_PER_TABLE - 1)
    }
    /// Index into the level-2 table (pmd).
    pub const fn pmd_index(self) -> usize {
        (self.0 >> PMD_SHIFT) & (PTRS_PER_TABLE - 1)
    }
    /// Index into the level-3 table (pte).
    pub const fn pte_index(self) -> usize {
        (self.0 >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)
    }
    /// Index into the table of `level` (0 = pgd .. 3 = pte).
    pub const fn table_index(self, level: usize) -> usize {
        (self.0 >> (PGDIR_SHIFT - 9 * level)) & (PTRS_PER_TABLE - 1)
    }
}

/// Is `va` inside `[VMALLOC_START, VMALLOC_END)`? (Linux's `is_vmalloc_addr`.)
pub const fn is_vmalloc_addr(va: usize) -> bool {
    va >= VMALLOC_START && va < VMALLOC_END
}

/// Is `va` inside the linear map?
pub const fn is_linear_map_addr(va: usize) -> bool {
    va >= PAGE_OFFSET && va < PAGE_END
}

/// Page frame number of a physical address.
pub const fn phys_to_pfn(pa: PhysAddr) -> usize {
    pa.0 >> PAGE_SHIFT
}

pub const fn pfn_to_phys(pfn: usize) -> PhysAddr {
    PhysAddr(pfn << PAGE_SHIFT)
}

/// Size of the block or page mapped by one entry of `level`.
pub const fn level_size(level: usize) -> usize {
    1 << (PGDIR_SHIFT - 9 * level)
}

// The map's invariants, checked at compile time.
const _: () = {
    assert!(PAGE_OFFSET < PAGE_END);
    assert!(PAGE_END <= KIMAGE_VADDR);
    assert!(VMALLOC_START < VMALLOC_END);
    assert!(VMALLOC_END < FIXADDR_START);
    assert!(FIX_EARLYCON_MEM_BASE >= FIXADDR_START && FIX_EARLYCON_MEM_BASE < FIXADDR_TOP);
    // Every slot inside the fixmap, and all under one 2 MiB pmd entry, so
    // one static pte table (bm_pte) serves them all.
    assert!(fix_to_virt(__END_OF_FIXED_ADDRESSES - 1) >= FIXADDR_START);
    assert!(FIXADDR_TOP.is_multiple_of(PMD_SIZE));
    assert!(__END_OF_FIXED_ADDRESSES <= PTRS_PER_TABLE);
    assert!(FIX_HOLE == 0 && FIX_EARLYCON_MEM_IDX > FIX_HOLE && FIX_PTE > FIX_EARLYCON_MEM_IDX);
    // Not the kernel image's pgd entry: the fixmap has tables of its own.
    assert!(VirtAddr(FIXADDR_START).pgd_index() != VirtAddr(KIMAGE_VADDR).pgd_index());
    assert!(is_vmalloc_addr(KIMAGE_VADDR) && !is_vmalloc_addr(VMALLOC_END));
};

#[cfg(test)]
mod tests;
