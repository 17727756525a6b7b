// SPDX-License-Identifier: GPL-2.0-only
//! arm64 stage-1 page tables (4 KiB granule, 48-bit VA, four levels) as Linux
//! 5.10 builds them: memory types and MAIR_EL1, descriptor encoding and
//! decoding, and a walker/mapper for `swapper_pg_dir`, the boot identity map
//! and the vmalloc/ioremap range.
//!
//! Levels are numbered as the architecture does and named as Linux does:
//!
//! ```text
//! level 0  pgd  512 GiB per entry   table only
//! level 1  pud    1 GiB per entry   table or 1 GiB block
//! level 2  pmd    2 MiB per entry   table or 2 MiB block
//! level 3  pte    4 KiB per entry   page
//! ```
//!
//! Everything here is portable and host-tested. The kernel supplies the
//! hardware side through [`PgtableEnv`]: where table pages come from, how to
//! reach them (the linear map), and the barriers and TLB maintenance that
//! `set_pte` and `flush_tlb_kernel_range` issue in Linux.
//!
//! In boot order: `__cpu_setup` loads [`MAIR_EL1_VALUE`]; `paging_init` uses
//! [`PageTable::map_range`] with block mappings for the linear map and
//! [`PAGE_KERNEL_ROX`]/[`PAGE_KERNEL_RO`]/[`PAGE_KERNEL`] pages for the kernel
//! segments; vmalloc uses [`PageTable::map_pages`] and
//! [`PageTable::unmap_range_allow_holes`]; ioremap uses
//! [`PageTable::map_range`] with [`PROT_DEVICE_NGNRE`].

use core::cmp::min;
use core::fmt;
use core::ptr::{read_volatile, write_volatile};

use tock_registers::register_bitfields;

use crate::arch::memory::{PAGE_SHIFT, PAGE_SIZE, PTRS_PER_TABLE, PhysAddr, VirtAddr, level_size};

// ---------------------------------------------------------------------------
// Memory types and MAIR_EL1
// ---------------------------------------------------------------------------

/// A memory type: its discriminant is the MAIR_EL1 slot (`MT_*` in Linux's
/// `asm/memory.h`) and the descriptor's AttrIndx, so the two cannot disagree.
///
/// The slots are Linux 5.10's (reordered in 5.10 for MTE so that MT_NORMAL is
/// 0): a 5.10 kernel and this one produce the same AttrIndx in their PTEs and
/// the same MAIR_EL1 value, `0x000c0400bb44ffff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MemType {
    /// Normal, inner/outer write-back read/write-allocate (RAM).
    Normal = 0,
    /// Normal memory with MTE tags. Like Linux until it detects MTE, the slot
    /// holds plain Normal (0xff); nothing here maps with it.
    NormalTagged = 1,
    /// Normal, non-cacheable (e.g. framebuffers, `pgprot_writecombine`).
    NormalNc = 2,
    /// Normal, write-through.
    NormalWt = 3,
    /// Device, non-Gathering, non-Reordering, no Early write acknowledgement.
    DeviceNgnrne = 4,
    /// Device with early write acknowledgement: what `ioremap` uses.
    DeviceNgnre = 5,
    /// Device, Gathering, Reordering, Early write acknowledgement.
    DeviceGre = 6,
}

impl MemType {
    /// Every memory type, in slot order.
    pub const ALL: [MemType; 7] = [
        MemType::Normal,
        MemType::NormalTagged,
        MemType::NormalNc,
        MemType::NormalWt,
        MemType::DeviceNgnrne,
        MemType::DeviceNgnre,
        MemType::DeviceGre,
    ];

    /// The descriptor AttrIndx (= MAIR_EL1 slot) of this type.
    pub const fn attr_index(self) -> u64 {
        self as u64
    }

    /// The 8-bit MAIR attribute (`MAIR_ATTR_*` in Linux's `asm/sysreg.h`).
    pub const fn mair_attr(self) -> u8 {
        match self {
            MemType::Normal | MemType::NormalTagged => 0xff,
            MemType::NormalNc => 0x44,
            MemType::NormalWt => 0xbb,
            MemType::DeviceNgnrne => 0x00,
            MemType::DeviceNgnre => 0x04,
            MemType::DeviceGre => 0x0c,
        }
    }

    /// The memory type whose slot is `index`, if we program that slot.
    pub const fn from_attr_index(index: u64) -> Option<MemType> {
        if index < Self::ALL.len() as u64 {
            Some(Self::ALL[index as usize])
        } else {
            None
        }
    }

    /// Short name as a kernel developer writes it.
    pub const fn name(self) -> &'static str {
        match self {
            MemType::Normal => "Normal",
            MemType::NormalTagged => "Normal-Tagged",
            MemType::NormalNc => "Normal-NC",
            MemType::NormalWt => "Normal-WT",
            MemType::DeviceNgnrne => "Device-nGnRnE",
            MemType::DeviceNgnre => "Device-nGnRE",
            MemType::DeviceGre => "Device-GRE",
        }
    }
}

const fn mair_el1_value() -> u64 {
    let mut value = 0u64;
    let mut i = 0;
    while i < MemType::ALL.len() {
        let t = MemType::ALL[i];
        // ALL must list every type exactly once, at its own slot.
        assert!(t.attr_index() == i as u64);
        value |= (t.mair_attr() as u64) << (8 * t.attr_index());
        i += 1;
    }
    value
}

/// MAIR_EL1 as `__cpu_setup` loads it, derived from [`MemType`]
/// (Linux 5.10's `MAIR_EL1_SET`: `0x000c0400bb44ffff`).
pub const MAIR_EL1_VALUE: u64 = mair_el1_value();

// ---------------------------------------------------------------------------
// Descriptor formats
// ---------------------------------------------------------------------------

register_bitfields! [u64,
    /// Block (level 1/2) and page (level 3) descriptors, VMSAv8-64 stage 1
    /// (ARM ARM D8.3, "Translation table descriptor formats").
    pub PAGE_DESCRIPTOR [
        /// Entry is valid; otherwise every other bit is ignored by hardware.
        VALID OFFSET(0) NUMBITS(1) [],
        /// 0 = block (levels 1, 2); 1 = page (level 3). 0 at level 3 is reserved.
        TYPE OFFSET(1) NUMBITS(1) [
            Block = 0,
            TableOrPage = 1
        ],
        /// Index of the MAIR_EL1 attribute slot (see `MemType`).
        ATTR_INDX OFFSET(2) NUMBITS(3) [],
        /// Non-secure output address (ignored in the non-secure world).
        NS OFFSET(5) NUMBITS(1) [],
        /// Data access permissions: AP[2] = read-only, AP[1] = EL0 access.
        AP OFFSET(6) NUMBITS(2) [
            RW_EL1 = 0b00,
            RW_EL1_EL0 = 0b01,
            RO_EL1 = 0b10,
            RO_EL1_EL0 = 0b11
        ],
        /// Shareability (Linux sets inner shareable on every mapping).
        SH OFFSET(8) NUMBITS(2) [
            NonShareable = 0b00,
            Reserved = 0b01,
            OuterShareable = 0b10,
            InnerShareable = 0b11
        ],
        /// Access flag; a clear AF faults on first access (no hardware AF here).
        AF OFFSET(10) NUMBITS(1) [],
        /// Not global: the TLB entry is tagged with the current ASID.
        NG OFFSET(11) NUMBITS(1) [],
        /// Output address bits [47:12] (for blocks only the bits above the
        /// block size are an address; the rest are RES0).
        OUTPUT_ADDR OFFSET(12) NUMBITS(36) [],
        /// Dirty bit modifier (Linux's PTE_WRITE with hardware DBM).
        DBM OFFSET(51) NUMBITS(1) [],
        /// Contiguous hint: one of 16 adjacent entries mapping one range.
        CONT OFFSET(52) NUMBITS(1) [],
        /// Privileged execute-never.
        PXN OFFSET(53) NUMBITS(1) [],
        /// Unprivileged execute-never (XN).
        UXN OFFSET(54) NUMBITS(1) [],
        /// Software bits (Linux: DIRTY 55, SPECIAL 56, DEVMAP 57, PROT_NONE 58).
        SW OFFSET(55) NUMBITS(4) [],
        /// Ignored by hardware unless FEAT_HPDS2 is enabled (PBHA).
        IGNORED_HI OFFSET(59) NUMBITS(5) []
    ],
    /// Table descriptors at levels 0..2: point to the next-level table.
    pub TABLE_DESCRIPTOR [
        VALID OFFSET(0) NUMBITS(1) [],
        /// Must be 1 for a table descriptor.
        TYPE OFFSET(1) NUMBITS(1) [
            Block = 0,
            Table = 1
        ],
        /// Physical address bits [47:12] of the next-level table.
        NEXT_LEVEL_TABLE_ADDR OFFSET(12) NUMBITS(36) [],
        /// Software marker (an ignored bit): "table allocated by the map call
        /// in progress", so a failed call frees exactly its own tables.
        /// Never set outside a map call.
        SW_NEW OFFSET(55) NUMBITS(1) [],
        /// Hierarchical hints: limit everything below this entry.
        PXN_TABLE OFFSET(59) NUMBITS(1) [],
        UXN_TABLE OFFSET(60) NUMBITS(1) [],
        AP_TABLE OFFSET(61) NUMBITS(2) [],
        NS_TABLE OFFSET(63) NUMBITS(1) []
    ]
];

use PAGE_DESCRIPTOR as PD;
use TABLE_DESCRIPTOR as TD;

const VALID: u64 = PD::VALID::SET.value;
/// Output-address bits [47:12] of a descriptor.
pub const OA_MASK: u64 = PD::OUTPUT_ADDR::SET.value;
const SW_NEW: u64 = TD::SW_NEW::SET.value;
/// Bits [50:48]: RES0 with 48-bit output addresses.
const RES0_HI: u64 = 0x7 << 48;

/// Linux's name for the tables of `level` (0 = pgd .. 3 = pte).
pub const fn level_name(level: usize) -> &'static str {
    match level {
        0 => "pgd",
        1 => "pud",
        2 => "pmd",
        3 => "pte",
        _ => "L?",
    }
}

/// The protection of a mapping (Linux's `pgprot_t`): what the leaf
/// descriptor says apart from its output address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageProt {
    pub mem_type: MemType,
    pub writable: bool,
    pub executable: bool,
    /// Accessible from EL0. Kernel mappings never are; user mappings are also
    /// non-global (nG) and never executable at EL1 (PXN).
    pub user: bool,
}

/// Kernel data: read/write, execute-never, Normal.
pub const PAGE_KERNEL: PageProt = PageProt::kernel(MemType::Normal, true, false);
/// Kernel read-only data (`.rodata`).
pub const PAGE_KERNEL_RO: PageProt = PageProt::kernel(MemType::Normal, false, false);
/// Kernel text: read-only, executable at EL1.
pub const PAGE_KERNEL_ROX: PageProt = PageProt::kernel(MemType::Normal, false, true);
/// Read/write and executable: only for the early boot mapping, never W^X-clean.
pub const PAGE_KERNEL_EXEC: PageProt = PageProt::kernel(MemType::Normal, true, true);
/// MMIO (`ioremap`): Device-nGnRE, read/write, execute-never.
pub const PROT_DEVICE_NGNRE: PageProt = PageProt::kernel(MemType::DeviceNgnre, true, false);

/// `prot` made execute-never (Linux's `pgprot_nx`: PXN for kernel mappings).
pub const fn pgprot_nx(prot: PageProt) -> PageProt {
    PageProt {
        executable: false,
        ..prot
    }
}

impl PageProt {
    /// A kernel (EL1-only, global) protection.
    pub const fn kernel(mem_type: MemType, writable: bool, executable: bool) -> Self {
        Self {
            mem_type,
            writable,
            executable,
            user: false,
        }
    }

    /// Every descriptor bit of a leaf at `level` except the output address:
    /// valid, type, AttrIndx, AP, SH = inner, AF, nG, PXN, UXN (Linux's
    /// `PROT_DEFAULT | PTE_ATTRINDX(..) | ...`).
    pub const fn leaf_bits(self, level: usize) -> u64 {
        let mut v = PD::VALID::SET.value
            | PD::AF::SET.value
            | PD::SH::InnerShareable.value
            | PD::ATTR_INDX.val(self.mem_type.attr_index()).value;
        if level == 3 {
            v |= PD::TYPE::TableOrPage.value;
        }
        v |= match (self.writable, self.user) {
            (true, false) => PD::AP::RW_EL1.value,
            (true, true) => PD::AP::RW_EL1_EL0.value,
            (false, false) => PD::AP::RO_EL1.value,
            (false, true) => PD::AP::RO_EL1_EL0.value,
        };
        if self.user {
            // The kernel never executes user memory; user mappings are per-ASID.
            v |= PD::NG::SET.value | PD::PXN::SET.value;
            if !self.executable {
                v |= PD::UXN::SET.value;
            }
        } else {
            // EL0 must never execute kernel memory.
            v |= PD::UXN::SET.value;
            if !self.executable {
                v |= PD::PXN::SET.value;
            }
        }
        v
    }
}

/// Encode a leaf: a page at level 3, a block at level 1 (1 GiB) or 2 (2 MiB).
/// `pa` must be aligned to the level's size and below 2^48.
pub const fn pte_encode(pa: PhysAddr, prot: PageProt, level: usize) -> u64 {
    assert!(level >= 1 && level <= 3, "leaves live at levels 1..3");
    debug_assert!(pa.0 & (level_size(level) - 1) == 0 && (pa.0 as u64) & !OA_MASK == 0);
    prot.leaf_bits(level) | (pa.0 as u64 & OA_MASK)
}

/// Encode a table descriptor pointing at the next-level table at `pa`
/// (Linux's `__pmd_populate(pmdp, pa, PMD_TYPE_TABLE)`: no hierarchical hints).
pub const fn table_encode(pa: PhysAddr) -> u64 {
    TD::VALID::SET.value | TD::TYPE::Table.value | (pa.0 as u64 & OA_MASK)
}

/// A read-only view of a descriptor value, for decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Descriptor(pub u64);

impl Descriptor {
    #[inline]
    pub fn is_valid(self) -> bool {
        PD::VALID.is_set(self.0)
    }

    /// A table descriptor (only at levels 0..2).
    #[inline]
    pub fn is_table(self, level: usize) -> bool {
        level < 3 && self.is_valid() && PD::TYPE.is_set(self.0)
    }

    /// A block descriptor (only at levels 1 and 2 with a 4 KiB granule).
    #[inline]
    pub fn is_block(self, level: usize) -> bool {
        (level == 1 || level == 2) && self.is_valid() && !PD::TYPE.is_set(self.0)
    }

    /// A page descriptor (level 3).
    #[inline]
    pub fn is_page(self, level: usize) -> bool {
        level == 3 && self.is_valid() && PD::TYPE.is_set(self.0)
    }

    /// A block or a page: the walk ends here with an output address.
    #[inline]
    pub fn is_leaf(self, level: usize) -> bool {
        self.is_block(level) || self.is_page(level)
    }

    /// Address bits [47:12], for any descriptor type.
    #[inline]
    pub fn output_addr(self) -> PhysAddr {
        PhysAddr((self.0 & OA_MASK) as usize)
    }

    /// Address of the next-level table (same bits as `output_addr`).
    #[inline]
    pub fn table_addr(self) -> PhysAddr {
        self.output_addr()
    }

    /// Start of the block or page a leaf at `level` maps (RES0 bits below
    /// the block size are not part of the address, as the hardware sees it).
    #[inline]
    pub fn leaf_addr(self, level: usize) -> PhysAddr {
        PhysAddr(self.output_addr().0 & !(level_size(level) - 1))
    }

    pub fn attr_index(self) -> u64 {
        PD::ATTR_INDX.read(self.0)
    }

    pub fn mem_type(self) -> Option<MemType> {
        MemType::from_attr_index(self.attr_index())
    }

    /// The protection a leaf grants (`None` if AttrIndx names a slot we do not
    /// program). Meaningless for tables and invalid entries.
    pub fn prot(self) -> Option<PageProt> {
        let ap = PD::AP.read(self.0);
        let user = ap & 0b01 != 0;
        let executable = if user {
            !PD::UXN.is_set(self.0)
        } else {
            !PD::PXN.is_set(self.0)
        };
        Some(PageProt {
            mem_type: self.mem_type()?,
            writable: ap & 0b10 == 0,
            executable,
            user,
        })
    }
}

/// Formats a descriptor of `level` for humans, e.g.
/// `pte 0x0060000040081703 PAGE pa=0x40081000 attr0=Normal RW XN AF SH=inner`.
///
/// Leaves show AttrIndx and its type, AP (`RW`/`RO`, `EL0` if user
/// accessible), execute-never (`XN` = PXN+UXN, else `PXN` or `UXN` alone),
/// `AF` or `!AF`, `nG`, shareability, and `CONT`, `DBM`, `NS`, software bits
/// (`sw=`), ignored high bits (`ign=`) and stray RES0 bits (`RES0=`) when set.
#[derive(Debug, Clone, Copy)]
pub struct DescFmt {
    pub desc: u64,
    pub level: usize,
}

impl fmt::Display for DescFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v, level) = (self.desc, self.level);
        let d = Descriptor(v);
        write!(f, "{} {:#018x}", level_name(level), v)?;
        if !d.is_valid() {
            return f.write_str(" INVALID");
        }
        if d.is_table(level) {
            write!(f, " TABLE next={:#x}", d.table_addr().0)?;
            for (set, name) in [
                (TD::PXN_TABLE.is_set(v), " PXNTable"),
                (TD::UXN_TABLE.is_set(v), " UXNTable"),
                (TD::NS_TABLE.is_set(v), " NSTable"),
                (v & SW_NEW != 0, " (new)"),
            ] {
                if set {
                    f.write_str(name)?;
                }
            }
            let ap_table = TD::AP_TABLE.read(v);
            if ap_table != 0 {
                write!(f, " APTable={ap_table:#b}")?;
            }
            return Ok(());
        }
        if !d.is_leaf(level) {
            // Type 0 at level 0 or 3: a reserved encoding, faults like an invalid one.
            return f.write_str(" RESERVED");
        }
        let kind = if d.is_page(level) { "PAGE" } else { "BLOCK" };
        write!(f, " {} pa={:#x}", kind, d.leaf_addr(level).0)?;
        match d.mem_type() {
            Some(t) => write!(f, " attr{}={}", d.attr_index(), t.name())?,
            None => write!(f, " attr{}=unprogrammed", d.attr_index())?,
        }
        let ap = PD::AP.read(v);
        f.write_str(if ap & 0b10 != 0 { " RO" } else { " RW" })?;
        if ap & 0b01 != 0 {
            f.write_str(" EL0")?;
        }
        match (PD::PXN.is_set(v), PD::UXN.is_set(v)) {
            (true, true) => f.write_str(" XN")?,
            (true, false) => f.write_str(" PXN")?,
            (false, true) => f.write_str(" UXN")?,
            (false, false) => {}
        }
        f.write_str(if PD::AF.is_set(v) { " AF" } else { " !AF" })?;
        if PD::NG.is_set(v) {
            f.write_str(" nG")?;
        }
        f.write_str(match PD::SH.read(v) {
            0b00 => " SH=non",
            0b01 => " SH=reserved",
            0b10 => " SH=outer",
            _ => " SH=inner",
        })?;
        for (set, name) in [
            (PD::CONT.is_set(v), " CONT"),
            (PD::DBM.is_set(v), " DBM"),
            (PD::NS.is_set(v), " NS"),
        ] {
            if set {
                f.write_str(name)?;
            }
        }
        let sw = PD::SW.read(v);
        if sw != 0 {
            write!(f, " sw={sw:#x}")?;
        }
        let ign = PD::IGNORED_HI.read(v);
        if ign != 0 {
            write!(f, " ign={ign:#x}")?;
        }
        let res0 = (v & RES0_HI) | (v & OA_MASK & (level_size(level) as u64 - 1));
        if res0 != 0 {
            write!(f, " RES0={res0:#x}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The environment the kernel (or a host test) provides
// ---------------------------------------------------------------------------

/// What the page-table code needs from its surroundings.
///
/// # Safety
///
/// Implementors promise, for as long as any [`PageTable`] uses them, that:
/// - `alloc_table` returns 4 KiB-aligned pages below 2^48 that nothing else
///   uses, filled with zeroes, with the zeroing ordered before any later
///   store that links the page into a live tree (Linux's `smp_wmb()` in
///   `__pte_alloc`: a `dmb ishst` after clearing the page);
/// - `table_ptr(pa, level)` returns a pointer valid for reads and writes of
///   512 `u64`s for every page `alloc_table` returned and `free_table` did
///   not take back, and for the root of any tree given to
///   [`PageTable::from_root`], until the next `table_ptr` call for the same
///   `level` (0 = pgd .. 3 = pte), or, for `level` 3, the next
///   `alloc_table`/`free_table`: an environment may reach tables through
///   one window per level (the fixmap's FIX_PGD..FIX_PTE slots while
///   swapper_pg_dir is built) and zero new tables through the level-3 one
///   (as Linux's `early_pgtable_alloc` uses FIX_PTE).
///
/// This module in turn holds at most one table pointer per level, and no
/// level-3 pointer across `alloc_table`/`free_table`.
pub unsafe trait PgtableEnv {
    /// A zeroed 4 KiB page for a new table, or None when out of memory.
    fn alloc_table(&mut self) -> Option<PhysAddr>;
    /// Take back a table page that no tree links any more (and that the TLB
    /// no longer caches: see [`PgtableEnv::flush_tlb_pgtable`]).
    fn free_table(&mut self, pa: PhysAddr);
    /// Where the kernel can access the table at `pa` (the linear map in the
    /// kernel, identity on the host).
    fn table_ptr(&self, pa: PhysAddr, level: usize) -> *mut u64;
    /// Called once after a map call wrote its valid entries (kernel:
    /// `dsb ishst; isb`, as Linux's `set_pte` does for kernel mappings).
    fn sync_new_entries(&mut self) {}
    /// Invalidate the TLB for `[start, end)` after leaf entries were cleared
    /// or replaced (kernel: `dsb ishst; tlbi vaale1is` per page, or
    /// `tlbi vmalle1is` for big ranges; `dsb ish; isb`).
    fn flush_tlb_kernel_range(&mut self, start: VirtAddr, end: VirtAddr);
    /// Invalidate the TLB *including cached table walks* for `[start, end)`
    /// after table descriptors there were cleared and before their pages are
    /// freed (Linux's `__flush_tlb_kernel_pgtable`: `tlbi vaae1is`, not the
    /// last-level-only `vaale1is`; or `vmalle1is`). Only a failed map call
    /// and [`PageTable::free_empty_table`] free tables of a live tree. The default calls
    /// `flush_tlb_kernel_range`, which is enough only if that one uses
    /// `vmalle1is`/`vaae1is`.
    fn flush_tlb_pgtable(&mut self, start: VirtAddr, end: VirtAddr) {
        self.flush_tlb_kernel_range(start, end);
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a page-table operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgtableError {
    /// No page for a new table of `level` (0 = the pgd itself).
    NoMemory { va: VirtAddr, level: usize },
    /// `va` already has a valid entry (a page, or a block that covers it).
    AlreadyMapped { va: VirtAddr, existing: u64 },
    /// Unmapping `va` found an invalid entry at `level`.
    NotMapped { va: VirtAddr, level: usize },
    /// `what` (`"va"`, `"pa"`, `"size"`, `"page"`) is not aligned to `align`.
    Misaligned {
        what: &'static str,
        value: usize,
        align: usize,
    },
    /// The range is not (entirely) in this table's half of the address space,
    /// or wraps around the top of it.
    OutOfRange { va: VirtAddr },
    /// A physical address does not fit the 48-bit output address.
    PhysOutOfRange { pa: PhysAddr },
    /// Unmapping would have to split the block at `level` that covers `va`.
    PartialBlock { va: VirtAddr, level: usize, existing: u64 },
}

impl fmt::Display for PgtableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PgtableError::NoMemory { va, level } => write!(
                f,
                "out of memory: no page for a level-{} ({}) table needed to map va {:#x}",
                level,
                level_name(level),
                va.0
            ),
            PgtableError::AlreadyMapped { va, existing } => write!(
                f,
                "va {:#x} is already mapped (existing descriptor {:#018x}); refusing to overwrite it",
                va.0, existing
            ),
            PgtableError::NotMapped { va, level } => write!(
                f,
                "va {:#x} is not mapped: its level-{} ({}) entry is invalid",
                va.0,
                level,
                level_name(level)
            ),
            PgtableError::Misaligned { what, value, align } => write!(
                f,
                "{} {:#x} is not aligned to {:#x} (it is {:#x} bytes past a boundary)",
                what,
                value,
                align,
                value & (align - 1)
            ),
            PgtableError::OutOfRange { va } => write!(
                f,
                "va {:#x} is outside this table's half of the address space (bits [63:48] must be \
                 all ones for TTBR1, all zeroes for TTBR0) or the range wraps past its end",
                va.0
            ),
            PgtableError::PhysOutOfRange { pa } => {
                write!(f, "pa {:#x} does not fit a 48-bit output address", pa.0)
            }
            PgtableError::PartialBlock { va, level, existing } => {
                let size = level_size(level);
                write!(
                    f,
                    "va {:#x} is inside the {} {} block at {:#x} (descriptor {:#018x}); \
                     unmapping part of a block would split it",
                    va.0,
                    if size >= 1 << 30 { "1 GiB" } else { "2 MiB" },
                    level_name(level),
                    va.0 & !(size - 1),
                    existing
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The tree
// ---------------------------------------------------------------------------

/// Which half of the 64-bit address space a tree translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaHalf {
    /// TTBR1: kernel addresses, bits [63:48] all ones.
    Upper,
    /// TTBR0: the boot identity map, bits [63:48] all zeroes.
    Lower,
}

impl VaHalf {
    /// Is `va` a canonical address of this half?
    pub const fn contains(self, va: usize) -> bool {
        match self {
            VaHalf::Upper => va >> 48 == 0xffff,
            VaHalf::Lower => va >> 48 == 0,
        }
    }
}

/// One level of a [`Walk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkStep {
    pub level: usize,
    /// Index of the entry in its table.
    pub index: usize,
    /// Physical address of the table holding the entry.
    pub table: PhysAddr,
    pub desc: u64,
}

/// The result of [`PageTable::walk`]: the entry read at each level until a
/// leaf or an invalid entry (no steps if `va` is outside the tree's half).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    pub va: VirtAddr,
    pub steps: [Option<WalkStep>; 4],
    /// The translation of `va`, if mapped.
    pub pa: Option<PhysAddr>,
    /// The level of the leaf that maps `va`.
    pub leaf_level: Option<usize>,
}

impl fmt::Display for Walk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "walk va {:#x}:", self.va.0)?;
        for s in self.steps.iter().flatten() {
            writeln!(
                f,
                "  L{} {}[{}] in table {:#x}: {}",
                s.level,
                level_name(s.level),
                s.index,
                s.table.0,
                DescFmt {
                    desc: s.desc,
                    level: s.level
                }
            )?;
        }
        match (self.pa, self.leaf_level, self.steps.iter().flatten().last()) {
            (Some(pa), Some(level), _) => {
                let what = match level {
                    1 => "1 GiB block",
                    2 => "2 MiB block",
                    _ => "4 KiB page",
                };
                write!(f, "  => pa {:#x} ({} at level {})", pa.0, what, level)
            }
            (_, _, Some(last)) => write!(
                f,
                "  => not mapped (no valid entry at level {}, {})",
                last.level,
                level_name(last.level)
            ),
            _ => f.write_str("  => not a canonical address of this table's half"),
        }
    }
}

/// A four-level translation table tree: its root is the pgd (what TTBRx
/// holds). The tree does not own the memory it maps, only its table pages;
/// dropping a `PageTable` leaks them (the kernel's tables live forever) —
/// call [`PageTable::destroy`] to free them.
#[derive(Debug)]
pub struct PageTable {
    root: PhysAddr,
    half: VaHalf,
}

/// Where physical addresses come from while mapping.
trait PaSource {
    /// Consecutive physical pages (blocks are possible).
    const CONTIGUOUS: bool;
    /// The physical address mapped `off` bytes into the range.
    fn pa_at(&self, off: usize) -> usize;
}

struct Contiguous(usize);

impl PaSource for Contiguous {
    const CONTIGUOUS: bool = true;
    #[inline(always)]
    fn pa_at(&self, off: usize) -> usize {
        self.0 + off
    }
}

struct PageList<'a>(&'a [PhysAddr]);

impl PaSource for PageList<'_> {
    const CONTIGUOUS: bool = false;
    #[inline(always)]
    fn pa_at(&self, off: usize) -> usize {
        self.0[off >> PAGE_SHIFT].0
    }
}

/// First address of the next `size`-aligned span after `va`, capped at `hi`
/// (and at the top of the address space).
#[inline(always)]
fn next_boundary(va: usize, size: usize, hi: usize) -> usize {
    let next = (va | (size - 1)).wrapping_add(1);
    if next == 0 || next > hi { hi } else { next }
}

/// Entry `index` of the table at `table`.
#[inline(always)]
fn entry_ptr<E: PgtableEnv + ?Sized>(env: &E, table: PhysAddr, level: usize, index: usize) -> *mut u64 {
    debug_assert!(index < PTRS_PER_TABLE && level < 4);
    // SAFETY: the PgtableEnv contract makes table_ptr valid for 512 entries,
    // and index < 512: every caller passes a 9-bit index (pgd_index() and
    // friends mask it; checked above in debug builds).
    unsafe { env.table_ptr(table, level).add(index) }
}

#[inline(always)]
fn read_entry(p: *mut u64) -> u64 {
    // SAFETY: every caller passes a pointer from `entry_ptr`, still valid:
    // this module uses it before its level's next `table_ptr` call (the
    // PgtableEnv contract); an aligned 64-bit read.
    unsafe { read_volatile(p) }
}

#[inline(always)]
fn write_entry(p: *mut u64, v: u64) {
    // SAFETY: `p` comes from `entry_ptr` and is still valid (as in
    // read_entry); one aligned 64-bit store, so the table walker sees either
    // the old or the new descriptor.
    unsafe { write_volatile(p, v) }
}

/// Visit the entries of `table` (at `level`) that overlap `[lo, hi)`, and the
/// tables below them down to `max_level`. `f(env, entry, level, entry_va)`
/// returns whether to descend into the entry if it is (still) a table.
/// For the cold paths (commit, rollback); recursion is at most four deep.
fn visit_range<E: PgtableEnv + ?Sized>(
    env: &mut E,
    table: PhysAddr,
    level: usize,
    lo: usize,
    hi: usize,
    max_level: usize,
    f: &mut dyn FnMut(&mut E, *mut u64, usize, usize) -> bool,
) {
    let size = level_size(level);
    let mut va = lo;
    while va < hi {
        let next = next_boundary(va, size, hi);
        let p = entry_ptr(env, table, level, VirtAddr(va).table_index(level));
        if f(env, p, level, va & !(size - 1)) && level < max_level {
            let d = Descriptor(read_entry(p));
            if d.is_table(level) {
                visit_range(env, d.table_addr(), level + 1, va, next, max_level, f);
            }
        }
        va = next;
    }
}

/// Free the table at `table` (of `level`) and every table below it.
fn free_subtree<E: PgtableEnv + ?Sized>(env: &mut E, table: PhysAddr, level: usize) {
    if level < 3 {
        for i in 0..PTRS_PER_TABLE {
            let d = Descriptor(read_entry(entry_ptr(env, table, level, i)));
            if d.is_table(level) {
                free_subtree(env, d.table_addr(), level + 1);
            }
        }
    }
    env.free_table(table);
}

/// Does the table at `table` (of `level`), with every table below it, hold
/// no valid leaf?
fn subtree_is_empty<E: PgtableEnv + ?Sized>(env: &E, table: PhysAddr, level: usize) -> bool {
    (0..PTRS_PER_TABLE).all(|i| {
        let d = Descriptor(read_entry(entry_ptr(env, table, level, i)));
        if d.is_table(level) {
            subtree_is_empty(env, d.table_addr(), level + 1)
        } else {
            !d.is_valid()
        }
    })
}

fn count_subtree<E: PgtableEnv + ?Sized>(env: &E, table: PhysAddr, level: usize) -> usize {
    let mut n = 1;
    if level < 3 {
        for i in 0..PTRS_PER_TABLE {
            let d = Descriptor(read_entry(entry_ptr(env, table, level, i)));
            if d.is_table(level) {
                n += count_subtree(env, d.table_addr(), level + 1);
            }
        }
    }
    n
}

fn misaligned(what: &'static str, value: usize) -> PgtableError {
    PgtableError::Misaligned {
        what,
        value,
        align: PAGE_SIZE,
    }
}

impl PageTable {
    /// Allocate an empty tree for kernel (TTBR1) addresses.
    pub fn new<E: PgtableEnv + ?Sized>(env: &mut E) -> Result<Self, PgtableError> {
        Self::new_for(env, VaHalf::Upper)
    }

    /// Allocate an empty tree for `half` (`VaHalf::Lower` for an identity map).
    pub fn new_for<E: PgtableEnv + ?Sized>(env: &mut E, half: VaHalf) -> Result<Self, PgtableError> {
        let root = env.alloc_table().ok_or(PgtableError::NoMemory {
            va: VirtAddr(0),
            level: 0,
        })?;
        Ok(Self { root, half })
    }

    /// Adopt an existing kernel (TTBR1) tree rooted at `root`.
    ///
    /// # Safety
    ///
    /// `root` must be a pgd whose tables (all reachable through the env's
    /// `table_ptr`) were built by this module or follow its invariants
    /// (invalid entries are zero, no `SW_NEW` marks), and no other
    /// `PageTable` may modify the same tree at the same time.
    pub unsafe fn from_root(root: PhysAddr) -> Self {
        // SAFETY: from_root_for has the same contract, which our caller
        // upholds.
        unsafe { Self::from_root_for(root, VaHalf::Upper) }
    }

    /// [`PageTable::from_root`] for a tree of `half`.
    ///
    /// # Safety
    ///
    /// As for [`PageTable::from_root`].
    pub unsafe fn from_root_for(root: PhysAddr, half: VaHalf) -> Self {
        Self { root, half }
    }

    /// The pgd's physical address: what TTBRx_EL1 gets (with ASID 0).
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    pub fn half(&self) -> VaHalf {
        self.half
    }

    /// Check a range and return its exclusive end.
    fn check_range(&self, va: VirtAddr, size: usize) -> Result<usize, PgtableError> {
        if !va.is_page_aligned() {
            return Err(misaligned("va", va.0));
        }
        if size & (PAGE_SIZE - 1) != 0 {
            return Err(misaligned("size", size));
        }
        if !self.half.contains(va.0) {
            return Err(PgtableError::OutOfRange { va });
        }
        match va.0.checked_add(size) {
            Some(end) if size == 0 || self.half.contains(end - 1) => Ok(end),
            _ => Err(PgtableError::OutOfRange { va }),
        }
    }

    /// Map `[va, va + size)` to `[pa, pa + size)` with `prot`.
    ///
    /// With `block_mappings`, 1 GiB and 2 MiB blocks are used wherever va, pa
    /// and the remaining size allow (the linear map) and 4 KiB pages at the
    /// unaligned edges; where a table already exists at a block-capable slot
    /// the mapping continues inside it. Tables are allocated on demand.
    ///
    /// Atomic: on error everything this call mapped is cleared again and every
    /// table page it allocated is freed (after a [`PgtableEnv::flush_tlb_pgtable`]),
    /// so the tree and free memory are as before. A valid entry in the way is
    /// [`PgtableError::AlreadyMapped`]. On success [`PgtableEnv::sync_new_entries`]
    /// is called once.
    pub fn map_range<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        pa: PhysAddr,
        size: usize,
        prot: PageProt,
        block_mappings: bool,
    ) -> Result<(), PgtableError> {
        self.map_range_inner(env, va, pa, size, prot, block_mappings, false)
    }

    /// [`PageTable::map_range`] that may replace existing leaves of the same
    /// size, break-before-make: the old entry is cleared, the TLB flushed for
    /// it ([`PgtableEnv::flush_tlb_kernel_range`]), then the new entry written.
    /// Identical entries are left alone. It never splits a block or replaces a
    /// table by a block ([`PgtableError::AlreadyMapped`]). On error the range
    /// is left unmapped: replaced mappings are not restored.
    pub fn map_range_replace<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        pa: PhysAddr,
        size: usize,
        prot: PageProt,
        block_mappings: bool,
    ) -> Result<(), PgtableError> {
        self.map_range_inner(env, va, pa, size, prot, block_mappings, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn map_range_inner<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        pa: PhysAddr,
        size: usize,
        prot: PageProt,
        block_mappings: bool,
        replace: bool,
    ) -> Result<(), PgtableError> {
        let end = self.check_range(va, size)?;
        if !pa.is_page_aligned() {
            return Err(misaligned("pa", pa.0));
        }
        match pa.0.checked_add(size) {
            Some(pa_end) if pa_end <= 1 << 48 => {}
            _ => return Err(PgtableError::PhysOutOfRange { pa }),
        }
        self.map_inner(env, va.0, end, &Contiguous(pa.0), prot, block_mappings, replace)
    }

    /// Map `pages` (not necessarily contiguous) at `va`, one PTE each: vmap
    /// and vmalloc's `vmap_pages_range`. Atomic like [`PageTable::map_range`];
    /// a page that is misaligned or beyond 2^48 fails the whole call.
    pub fn map_pages<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        pages: &[PhysAddr],
        prot: PageProt,
    ) -> Result<(), PgtableError> {
        let size = pages
            .len()
            .checked_mul(PAGE_SIZE)
            .ok_or(PgtableError::OutOfRange { va })?;
        let end = self.check_range(va, size)?;
        self.map_inner(env, va.0, end, &PageList(pages), prot, false, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn map_inner<E: PgtableEnv + ?Sized, S: PaSource>(
        &mut self,
        env: &mut E,
        start: usize,
        end: usize,
        src: &S,
        prot: PageProt,
        blocks: bool,
        replace: bool,
    ) -> Result<(), PgtableError> {
        if start == end {
            return Ok(());
        }
        let mut progress = start;
        let mut new_tables = 0;
        match self.map_walk(
            env,
            start,
            end,
            src,
            prot,
            blocks,
            replace,
            &mut progress,
            &mut new_tables,
        ) {
            Ok(()) => {
                if new_tables != 0 {
                    self.commit_new_tables(env, start, end);
                }
                env.sync_new_entries();
                Ok(())
            }
            Err(e) => {
                self.rollback(env, start, progress, end);
                Err(e)
            }
        }
    }

    /// The hot path: one walk from the root per leaf table (per 2 MiB of
    /// pages), then consecutive entries in a tight loop. `progress` is where
    /// it stopped: on error every leaf in `[start, progress)` was written by
    /// this call.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn map_walk<E: PgtableEnv + ?Sized, S: PaSource>(
        &mut self,
        env: &mut E,
        start: usize,
        end: usize,
        src: &S,
        prot: PageProt,
        blocks: bool,
        replace: bool,
        progress: &mut usize,
        new_tables: &mut usize,
    ) -> Result<(), PgtableError> {
        let page_bits = prot.leaf_bits(3);
        let block_bits = prot.leaf_bits(2); // identical for levels 1 and 2
        let mut va = start;
        // Make `progress` exact on every exit.
        macro_rules! fail {
            ($e:expr) => {{
                *progress = va;
                return Err($e);
            }};
        }
        while va < end {
            let mut table = self.root;
            let mut level = 0;
            // Below a table this call allocated: new tables need no mark.
            let mut in_new = false;
            loop {
                let size = level_size(level);
                let idx = VirtAddr(va).table_index(level);
                let p = entry_ptr(env, table, level, idx);
                let e = read_entry(p);
                let d = Descriptor(e);

                if S::CONTIGUOUS
                    && blocks
                    && (level == 1 || level == 2)
                    && (va | src.pa_at(va - start)) & (size - 1) == 0
                    && end - va >= size
                    && (!d.is_valid() || (replace && d.is_block(level)))
                {
                    // Consecutive blocks in this table while they fit.
                    let mut p = p;
                    for _ in idx..PTRS_PER_TABLE {
                        if end - va < size {
                            break;
                        }
                        let old = Descriptor(read_entry(p));
                        let new = block_bits | src.pa_at(va - start) as u64;
                        if old.is_valid() {
                            if old.is_table(level) {
                                break; // the next walk descends into it
                            }
                            if !(replace && old.is_block(level)) {
                                fail!(PgtableError::AlreadyMapped {
                                    va: VirtAddr(va),
                                    existing: old.0
                                });
                            }
                            if old.0 != new {
                                write_entry(p, 0);
                                env.flush_tlb_kernel_range(VirtAddr(va), VirtAddr(va + size));
                            }
                        }
                        write_entry(p, new);
                        va += size;
                        p = p.wrapping_add(1);
                    }
                    break;
                }

                if level == 3 {
                    // Consecutive PTEs: the loop vmalloc's speed depends on.
                    let n = min(PTRS_PER_TABLE - idx, (end - va) >> PAGE_SHIFT);
                    let mut p = p;
                    for _ in 0..n {
                        let pa = src.pa_at(va - start);
                        if !S::CONTIGUOUS && (pa as u64) & !OA_MASK != 0 {
                            if pa & (PAGE_SIZE - 1) != 0 {
                                fail!(misaligned("page", pa));
                            }
                            fail!(PgtableError::PhysOutOfRange { pa: PhysAddr(pa) });
                        }
                        let new = page_bits | pa as u64;
                        let old = read_entry(p);
                        if old & VALID != 0 {
                            if !replace {
                                fail!(PgtableError::AlreadyMapped {
                                    va: VirtAddr(va),
                                    existing: old
                                });
                            }
                            if old != new {
                                write_entry(p, 0);
                                env.flush_tlb_kernel_range(VirtAddr(va), VirtAddr(va + PAGE_SIZE));
                            }
                        }
                        write_entry(p, new);
                        va += PAGE_SIZE;
                        p = p.wrapping_add(1);
                    }
                    break;
                }

                if d.is_table(level) {
                    in_new |= e & SW_NEW != 0;
                    table = d.table_addr();
                    level += 1;
                    continue;
                }
                if d.is_valid() {
                    // A block (or a reserved encoding) covers va.
                    fail!(PgtableError::AlreadyMapped {
                        va: VirtAddr(va),
                        existing: e
                    });
                }
                let Some(new) = env.alloc_table() else {
                    fail!(PgtableError::NoMemory {
                        va: VirtAddr(va),
                        level: level + 1
                    });
                };
                *new_tables += 1;
                write_entry(p, table_encode(new) | if in_new { 0 } else { SW_NEW });
                in_new = true;
                table = new;
                level += 1;
            }
        }
        *progress = end;
        Ok(())
    }

    /// After a successful map: clear the marks on the tables it allocated.
    fn commit_new_tables<E: PgtableEnv + ?Sized>(&mut self, env: &mut E, start: usize, end: usize) {
        visit_range(env, self.root, 0, start, end, 2, &mut |_, p, level, _| {
            let e = read_entry(p);
            if Descriptor(e).is_table(level) && e & SW_NEW != 0 {
                write_entry(p, e & !SW_NEW);
                return false; // tables below a new one carry no marks
            }
            true
        });
    }

    /// Undo a failed map whose leaves in `[start, written_end)` were written by
    /// it: clear them, unlink the tables it allocated, flush, free those tables.
    fn rollback<E: PgtableEnv + ?Sized>(&mut self, env: &mut E, start: usize, written_end: usize, end: usize) {
        // Tables allocated for the entry that failed lie at written_end.
        let scan_end = min(end, written_end + PAGE_SIZE);
        let (mut leaves, mut tables) = (false, false);
        // Pass 1: disable. A new subtree's link keeps its address but loses
        // VALID, so pass 2 can still find and free it.
        visit_range(env, self.root, 0, start, scan_end, 3, &mut |_, p, level, entry_va| {
            let e = read_entry(p);
            let d = Descriptor(e);
            if d.is_table(level) {
                if e & SW_NEW != 0 {
                    write_entry(p, e & !VALID);
                    tables = true;
                    return false;
                }
                return true;
            }
            if d.is_valid() && entry_va >= start && entry_va < written_end {
                write_entry(p, 0);
                leaves = true;
            }
            false
        });
        if tables {
            env.flush_tlb_pgtable(VirtAddr(start), VirtAddr(scan_end));
        } else if leaves {
            env.flush_tlb_kernel_range(VirtAddr(start), VirtAddr(written_end));
        }
        if !tables {
            return;
        }
        // Pass 2: free the disabled subtrees, now that no walk can reach them.
        visit_range(env, self.root, 0, start, scan_end, 2, &mut |env, p, level, _| {
            let e = read_entry(p);
            if e & (VALID | SW_NEW) == SW_NEW {
                free_subtree(env, Descriptor(e).table_addr(), level + 1);
                write_entry(p, 0);
                return false;
            }
            true
        });
    }

    /// Clear `[va, va + size)` (pages, or whole blocks), then flush the TLB
    /// once for the range; table pages are kept, as Linux's `vunmap_range`
    /// does. Any hole is [`PgtableError::NotMapped`]; part of a block is
    /// [`PgtableError::PartialBlock`]. Not atomic: on error the entries before
    /// the failing address were cleared (and flushed).
    pub fn unmap_range<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        size: usize,
    ) -> Result<(), PgtableError> {
        self.unmap_inner(env, va, size, false)
    }

    /// [`PageTable::unmap_range`] that skips holes: what vunmap needs, since a
    /// vmap area includes its unmapped guard page.
    pub fn unmap_range_allow_holes<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        size: usize,
    ) -> Result<(), PgtableError> {
        self.unmap_inner(env, va, size, true)
    }

    fn unmap_inner<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        size: usize,
        allow_holes: bool,
    ) -> Result<(), PgtableError> {
        let end = self.check_range(va, size)?;
        let start = va.0;
        let mut va = start;
        let mut cleared = false;
        let res = self.unmap_walk(env, &mut va, end, allow_holes, &mut cleared);
        if cleared {
            env.flush_tlb_kernel_range(VirtAddr(start), VirtAddr(va));
        }
        res
    }

    #[inline(always)]
    fn unmap_walk<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: &mut usize,
        end: usize,
        allow_holes: bool,
        cleared: &mut bool,
    ) -> Result<(), PgtableError> {
        'spans: while *va < end {
            let mut table = self.root;
            for level in 0..4 {
                let size = level_size(level);
                let idx = VirtAddr(*va).table_index(level);
                let p = entry_ptr(env, table, level, idx);
                if level == 3 {
                    // Consecutive PTEs; holes here are skipped (or reported)
                    // without another walk.
                    let n = min(PTRS_PER_TABLE - idx, (end - *va) >> PAGE_SHIFT);
                    let mut p = p;
                    for _ in 0..n {
                        let old = read_entry(p);
                        if old & VALID == 0 {
                            if !allow_holes {
                                return Err(PgtableError::NotMapped {
                                    va: VirtAddr(*va),
                                    level: 3,
                                });
                            }
                        } else {
                            *cleared = true;
                        }
                        if old != 0 {
                            write_entry(p, 0);
                        }
                        *va += PAGE_SIZE;
                        p = p.wrapping_add(1);
                    }
                    continue 'spans;
                }
                let d = Descriptor(read_entry(p));
                if d.is_table(level) {
                    table = d.table_addr();
                    continue;
                }
                if !d.is_leaf(level) {
                    if !allow_holes {
                        return Err(PgtableError::NotMapped {
                            va: VirtAddr(*va),
                            level,
                        });
                    }
                    // Skip this and the following invalid entries of this
                    // table without walking again from the root.
                    let mut p = p;
                    loop {
                        *va = next_boundary(*va, size, end);
                        if *va >= end || VirtAddr(*va).table_index(level) == 0 {
                            break;
                        }
                        p = p.wrapping_add(1);
                        if read_entry(p) & VALID != 0 {
                            break;
                        }
                    }
                    continue 'spans;
                }
                // A block: only as a whole.
                if *va & (size - 1) != 0 || end - *va < size {
                    return Err(PgtableError::PartialBlock {
                        va: VirtAddr(*va),
                        level,
                        existing: d.0,
                    });
                }
                write_entry(p, 0);
                *cleared = true;
                *va += size;
                continue 'spans;
            }
        }
        Ok(())
    }

    /// Walk `va`: each level's entry until a leaf or an invalid entry.
    pub fn walk<E: PgtableEnv + ?Sized>(&self, env: &E, va: VirtAddr) -> Walk {
        let mut w = Walk {
            va,
            steps: [None; 4],
            pa: None,
            leaf_level: None,
        };
        if !self.half.contains(va.0) {
            return w;
        }
        let mut table = self.root;
        for level in 0..4 {
            let index = va.table_index(level);
            let desc = read_entry(entry_ptr(env, table, level, index));
            w.steps[level] = Some(WalkStep {
                level,
                index,
                table,
                desc,
            });
            let d = Descriptor(desc);
            if d.is_table(level) {
                table = d.table_addr();
                continue;
            }
            if d.is_leaf(level) {
                w.leaf_level = Some(level);
                w.pa = Some(PhysAddr(d.leaf_addr(level).0 | (va.0 & (level_size(level) - 1))));
            }
            break;
        }
        w
    }

    /// The physical address `va` maps to, if any.
    pub fn translate<E: PgtableEnv + ?Sized>(&self, env: &E, va: VirtAddr) -> Option<PhysAddr> {
        if !self.half.contains(va.0) {
            return None;
        }
        let mut table = self.root;
        for level in 0..4 {
            let d = Descriptor(read_entry(entry_ptr(env, table, level, va.table_index(level))));
            if d.is_table(level) {
                table = d.table_addr();
            } else if d.is_leaf(level) {
                return Some(PhysAddr(d.leaf_addr(level).0 | (va.0 & (level_size(level) - 1))));
            } else {
                return None;
            }
        }
        None
    }

    /// Set `set` and clear `clear` in the descriptor of every page in
    /// `[va, va + size)`, then flush the TLB once for the range (Linux:
    /// `apply_to_page_range` with arm64's `change_page_range`, then
    /// `flush_tlb_kernel_range`). Only permission bits may change this way
    /// (no break-before-make is needed for them). All or nothing: every page
    /// must be a mapped level-3 page, else nothing changes and the error is
    /// [`PgtableError::NotMapped`] or, for a block (which would have to be
    /// split), [`PgtableError::PartialBlock`].
    pub fn change_page_range<E: PgtableEnv + ?Sized>(
        &mut self,
        env: &mut E,
        va: VirtAddr,
        size: usize,
        set: u64,
        clear: u64,
    ) -> Result<(), PgtableError> {
        let end = self.check_range(va, size)?;
        for a in (va.0..end).step_by(PAGE_SIZE) {
            let w = self.walk(env, VirtAddr(a));
            match w.leaf_level {
                Some(3) => {}
                Some(level) => {
                    return Err(PgtableError::PartialBlock {
                        va: VirtAddr(a),
                        level,
                        existing: w.steps[level].map_or(0, |s| s.desc),
                    });
                }
                None => {
                    let level = w.steps.iter().flatten().last().map_or(0, |s| s.level);
                    return Err(PgtableError::NotMapped { va: VirtAddr(a), level });
                }
            }
        }
        for a in (va.0..end).step_by(PAGE_SIZE) {
            // Checked above: the walk ends in a level-3 page.
            let Some(pte) = self.walk(env, VirtAddr(a)).steps[3] else {
                unreachable!("change_page_range: {:#x} was a level-3 page a moment ago", a)
            };
            let p = entry_ptr(env, pte.table, 3, pte.index);
            write_entry(p, (pte.desc & !clear) | set);
        }
        if end > va.0 {
            env.flush_tlb_kernel_range(va, VirtAddr(end));
        }
        Ok(())
    }

    /// Make the entry of `level` (1: pud, 2: pmd) that covers `va` free for
    /// a block: if it points to a table that maps nothing (every entry
    /// below invalid, as after vunmap, which keeps tables), unlink the
    /// table, flush the walk caches for it and free it with its subtables
    /// (Linux: pud_free_pmd_page, pmd_free_pte_page, which ioremap calls
    /// before it puts a block there). True if the entry is invalid now;
    /// false if it holds a block, or a table that still maps something (left
    /// alone), or `va` is outside the tree or no table leads to the entry.
    pub fn free_empty_table<E: PgtableEnv + ?Sized>(&mut self, env: &mut E, va: VirtAddr, level: usize) -> bool {
        if !(1..=2).contains(&level) || !self.half.contains(va.0) {
            return false;
        }
        let mut table = self.root;
        for l in 0..level {
            let d = Descriptor(read_entry(entry_ptr(env, table, l, va.table_index(l))));
            if !d.is_table(l) {
                // No table down to `level`: the entry is free when nothing
                // (not even a block above) covers it.
                return !d.is_valid();
            }
            table = d.table_addr();
        }
        let p = entry_ptr(env, table, level, va.table_index(level));
        let d = Descriptor(read_entry(p));
        if !d.is_valid() {
            return true;
        }
        if !d.is_table(level) || !subtree_is_empty(env, d.table_addr(), level + 1) {
            return false;
        }
        write_entry(p, 0);
        let size = level_size(level);
        let start = va.0 & !(size - 1);
        env.flush_tlb_pgtable(VirtAddr(start), VirtAddr(start + size));
        free_subtree(env, d.table_addr(), level + 1);
        true
    }

    /// Free every table page of this tree, root included (not the memory it
    /// maps). No TLB maintenance: the tree must not be live in a TTBR.
    pub fn destroy<E: PgtableEnv + ?Sized>(self, env: &mut E) {
        free_subtree(env, self.root, 0);
    }

    /// Number of table pages in this tree, root included (counted by walking).
    pub fn count_tables<E: PgtableEnv + ?Sized>(&self, env: &E) -> usize {
        count_subtree(env, self.root, 0)
    }
}

// ---------------------------------------------------------------------------
// The linear map's layout (Linux: arch/arm64/mm/mmu.c, map_mem)
// ---------------------------------------------------------------------------

/// One physically contiguous piece of the linear map and its protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearChunk {
    pub start: PhysAddr,
    /// Exclusive.
    pub end: PhysAddr,
    pub prot: PageProt,
}

/// How 5.10's `map_mem` lays out the linear map, as the pieces to map, in
/// ascending order:
///
/// * every page of `memory` except those touching a `nomap` range
///   (`MEMBLOCK_NOMAP`: not even a speculative cacheable alias may exist);
/// * `[text_alias.0, text_alias.1)`, the linear alias of the kernel's text
///   and rodata, as a chunk of its own with `PAGE_KERNEL_RO` (what
///   `mark_linear_text_alias_ro` leaves; nothing here patches text, so it
///   is read-only from the start);
/// * everything else `PAGE_KERNEL` (RW, never executable).
///
/// Mapping each chunk with [`PageTable::map_range`] and block mappings gives
/// the largest blocks alignment allows, and no block can straddle the
/// alias's edges or cover a no-map page: the alias is built at the right
/// granularity from the start, so no block is ever split (no
/// break-before-make on a live linear map). Partial pages at the edges of a
/// memory range are left out, partial pages of a no-map range are left out
/// whole. `memory` and `nomap` must be sorted and disjoint (memblock's
/// lists are).
pub fn map_mem_plan(
    memory: &[crate::mm::memblock::Region],
    nomap: &[crate::mm::memblock::Region],
    text_alias: (PhysAddr, PhysAddr),
    mut f: impl FnMut(LinearChunk),
) {
    let page_down = |a: u64| a & !(PAGE_SIZE as u64 - 1);
    let page_up = |a: u64| a.saturating_add(PAGE_SIZE as u64 - 1) & !(PAGE_SIZE as u64 - 1);
    let (ks, ke) = (text_alias.0.0 as u64, text_alias.1.0 as u64);
    // Split one mapped piece around the text alias.
    let mut emit = |s: u64, e: u64| {
        let mut put = |s: u64, e: u64, prot| {
            if s < e {
                f(LinearChunk {
                    start: PhysAddr(s as usize),
                    end: PhysAddr(e as usize),
                    prot,
                })
            }
        };
        put(s, e.min(ks), PAGE_KERNEL);
        put(s.max(ks), e.min(ke), PAGE_KERNEL_RO);
        put(s.max(ke), e, PAGE_KERNEL);
    };
    for m in memory {
        let (s, e) = (page_up(m.base), page_down(m.end()));
        let mut cursor = s;
        for n in nomap.iter().filter(|n| n.end() > s && n.base < e) {
            let (ns, ne) = (page_down(n.base), page_up(n.end()));
            if ns > cursor {
                emit(cursor, ns.min(e));
            }
            cursor = cursor.max(ne);
        }
        if cursor < e {
            emit(cursor, e);
        }
    }
}

#[cfg(test)]
mod tests;
