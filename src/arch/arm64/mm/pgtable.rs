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
    /// frees tables of a live tree. The default calls
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
    // SAFETY: the PgtableEnv contract makes table_ptr valid for 512 entries.
    unsafe { env.table_ptr(table, level).add(index) }
}

#[inline(always)]
fn read_entry(p: *mut u64) -> u64 {
    // SAFETY: `p` comes from `entry_ptr` (see the PgtableEnv contract).
    unsafe { read_volatile(p) }
}

#[inline(always)]
fn write_entry(p: *mut u64, v: u64) {
    // SAFETY: `p` comes from `entry_ptr`; one aligned 64-bit store, so the
    // table walker sees either the old or the new descriptor.
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
        // SAFETY: forwarded to the caller.
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
    memory: &[crate::drivers::of::fdt::MemRegion],
    nomap: &[crate::drivers::of::fdt::MemRegion],
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
mod tests {
    use super::*;
    use crate::arch::memory::{PAGE_END, PAGE_OFFSET, PMD_SIZE, PUD_SIZE, VMALLOC_START};
    use std::alloc::{Layout, alloc_zeroed, dealloc};
    use std::cell::Cell;
    use std::collections::{BTreeMap, BTreeSet};

    // -- A tracking frame allocator over heap pages ------------------------

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Sync,
        /// A last-level flush, with the leaf descriptor at `start` at that moment.
        Flush {
            start: usize,
            end: usize,
            seen: Option<u64>,
        },
        FlushPgtable {
            start: usize,
            end: usize,
        },
    }

    /// Heap pages stand in for physical table pages (identity `table_ptr`).
    /// Freed pages are poisoned and kept (never reused) so that a double
    /// free, a free of a foreign page and any use after free are caught.
    struct TrackingEnv {
        live: BTreeSet<usize>,
        retired: BTreeSet<usize>,
        allocs: usize,
        /// Allocations still allowed; `None` = unlimited.
        fail_after: Option<usize>,
        events: Vec<Event>,
        /// Root used to record what a flushed VA's entry holds at flush time.
        probe_root: Option<PhysAddr>,
        table_ptr_calls: Cell<usize>,
    }

    fn page_layout() -> Layout {
        Layout::from_size_align(PAGE_SIZE, PAGE_SIZE).unwrap()
    }

    impl TrackingEnv {
        fn new() -> Self {
            Self {
                live: BTreeSet::new(),
                retired: BTreeSet::new(),
                allocs: 0,
                fail_after: None,
                events: Vec::new(),
                probe_root: None,
                table_ptr_calls: Cell::new(0),
            }
        }

        fn leaf_desc(&self, va: usize) -> Option<u64> {
            let pt = unsafe { PageTable::from_root(self.probe_root?) };
            let w = pt.walk(self, VirtAddr(va));
            w.steps.iter().flatten().last().map(|s| s.desc)
        }
    }

    unsafe impl PgtableEnv for TrackingEnv {
        fn alloc_table(&mut self) -> Option<PhysAddr> {
            if let Some(n) = self.fail_after {
                if n == 0 {
                    return None;
                }
                self.fail_after = Some(n - 1);
            }
            let p = unsafe { alloc_zeroed(page_layout()) } as usize;
            assert!(p != 0, "host out of memory");
            assert!(self.live.insert(p));
            self.allocs += 1;
            Some(PhysAddr(p))
        }

        fn free_table(&mut self, pa: PhysAddr) {
            assert!(!self.retired.contains(&pa.0), "double free of table page {pa:?}");
            assert!(
                self.live.remove(&pa.0),
                "free of a page that was never allocated: {pa:?}"
            );
            // Poison: 0xa5.. looks like a valid block, so stale use shows up.
            unsafe { core::ptr::write_bytes(pa.0 as *mut u8, 0xa5, PAGE_SIZE) };
            self.retired.insert(pa.0);
        }

        fn table_ptr(&self, pa: PhysAddr, _level: usize) -> *mut u64 {
            self.table_ptr_calls.set(self.table_ptr_calls.get() + 1);
            assert!(self.live.contains(&pa.0), "table_ptr({pa:?}): not a live table page");
            pa.0 as *mut u64
        }

        fn sync_new_entries(&mut self) {
            self.events.push(Event::Sync);
        }

        fn flush_tlb_kernel_range(&mut self, start: VirtAddr, end: VirtAddr) {
            let seen = self.leaf_desc(start.0);
            self.events.push(Event::Flush {
                start: start.0,
                end: end.0,
                seen,
            });
        }

        fn flush_tlb_pgtable(&mut self, start: VirtAddr, end: VirtAddr) {
            self.events.push(Event::FlushPgtable {
                start: start.0,
                end: end.0,
            });
        }
    }

    impl Drop for TrackingEnv {
        fn drop(&mut self) {
            for &p in self.live.iter().chain(self.retired.iter()) {
                unsafe { dealloc(p as *mut u8, page_layout()) };
            }
        }
    }

    fn setup() -> (TrackingEnv, PageTable) {
        let mut env = TrackingEnv::new();
        let pt = PageTable::new(&mut env).unwrap();
        env.probe_root = Some(pt.root());
        (env, pt)
    }

    fn lin(pa: usize) -> VirtAddr {
        VirtAddr(PAGE_OFFSET + pa)
    }

    /// (leaf level, descriptor) mapping `va`, if any.
    fn leaf(pt: &PageTable, env: &TrackingEnv, va: usize) -> Option<(usize, u64)> {
        let w = pt.walk(env, VirtAddr(va));
        w.leaf_level.map(|l| (l, w.steps[l].unwrap().desc))
    }

    /// A tiny deterministic PRNG (xorshift64*).
    use crate::lib::rand::XorShift64Star as Rng;

    // -- Memory types and descriptors ---------------------------------------

    #[test]
    fn mair_el1_matches_linux_5_10() {
        // Attr0 Normal ff, Attr1 Normal(tagged slot) ff, Attr2 NC 44, Attr3 WT bb,
        // Attr4 nGnRnE 00, Attr5 nGnRE 04, Attr6 GRE 0c, Attr7 unused.
        assert_eq!(MAIR_EL1_VALUE, 0x000c_0400_bb44_ffff);
        for t in MemType::ALL {
            let slot = (MAIR_EL1_VALUE >> (8 * t.attr_index())) & 0xff;
            assert_eq!(slot, t.mair_attr() as u64, "{t:?}");
            assert_eq!(MemType::from_attr_index(t.attr_index()), Some(t));
        }
        assert_eq!(MemType::Normal.attr_index(), 0);
        assert_eq!(MemType::DeviceNgnre.attr_index(), 5);
        assert_eq!(MemType::from_attr_index(7), None);
    }

    #[test]
    fn encode_kernel_prots_bit_by_bit() {
        const VALID_: u64 = 1 << 0;
        const PAGE_: u64 = 1 << 1; // type bit: page at level 3
        const AP_RO: u64 = 1 << 7; // AP[2]
        const SH_INNER: u64 = 0b11 << 8;
        const AF_: u64 = 1 << 10;
        const PXN_: u64 = 1 << 53;
        const UXN_: u64 = 1 << 54;
        let base = VALID_ | SH_INNER | AF_;
        let cases: &[(PageProt, usize, usize, u64, u64)] = &[
            // prot, level, pa, hand-built, literal
            (
                PAGE_KERNEL,
                3,
                0x4008_1000,
                base | PAGE_ | PXN_ | UXN_ | 0x4008_1000,
                0x0060_0000_4008_1703,
            ),
            (
                PAGE_KERNEL,
                2,
                0x4020_0000,
                base | PXN_ | UXN_ | 0x4020_0000,
                0x0060_0000_4020_0701,
            ),
            (
                PAGE_KERNEL,
                1,
                0x4000_0000,
                base | PXN_ | UXN_ | 0x4000_0000,
                0x0060_0000_4000_0701,
            ),
            (
                PAGE_KERNEL_RO,
                3,
                0x4008_1000,
                base | PAGE_ | AP_RO | PXN_ | UXN_ | 0x4008_1000,
                0x0060_0000_4008_1783,
            ),
            (
                PAGE_KERNEL_RO,
                2,
                0x4020_0000,
                base | AP_RO | PXN_ | UXN_ | 0x4020_0000,
                0x0060_0000_4020_0781,
            ),
            (
                PAGE_KERNEL_ROX,
                3,
                0x4008_1000,
                base | PAGE_ | AP_RO | UXN_ | 0x4008_1000,
                0x0040_0000_4008_1783,
            ),
            (
                PAGE_KERNEL_ROX,
                1,
                0x4000_0000,
                base | AP_RO | UXN_ | 0x4000_0000,
                0x0040_0000_4000_0781,
            ),
            (
                PAGE_KERNEL_EXEC,
                3,
                0x4008_1000,
                base | PAGE_ | UXN_ | 0x4008_1000,
                0x0040_0000_4008_1703,
            ),
            (
                PAGE_KERNEL_EXEC,
                2,
                0x4020_0000,
                base | UXN_ | 0x4020_0000,
                0x0040_0000_4020_0701,
            ),
            (
                PROT_DEVICE_NGNRE,
                3,
                0x0900_0000,
                base | PAGE_ | (5 << 2) | PXN_ | UXN_ | 0x0900_0000,
                0x0060_0000_0900_0717,
            ),
            (
                PROT_DEVICE_NGNRE,
                2,
                0x0800_0000,
                base | (5 << 2) | PXN_ | UXN_ | 0x0800_0000,
                0x0060_0000_0800_0715,
            ),
        ];
        for &(prot, level, pa, built, literal) in cases {
            assert_eq!(built, literal, "hand computation for {prot:?} L{level}");
            let v = pte_encode(PhysAddr(pa), prot, level);
            assert_eq!(v, literal, "{prot:?} at level {level}: {v:#018x}");
            let d = Descriptor(v);
            assert!(d.is_valid());
            assert_eq!(d.is_page(level), level == 3);
            assert_eq!(d.is_block(level), level != 3);
            assert!(d.is_leaf(level) && !d.is_table(level));
            assert_eq!(d.output_addr(), PhysAddr(pa));
            assert_eq!(d.leaf_addr(level), PhysAddr(pa));
            assert_eq!(d.prot(), Some(prot));
        }
    }

    #[test]
    fn encode_every_memtype_and_prot_at_every_level() {
        for t in MemType::ALL {
            for (writable, executable, user) in (0..8).map(|b| (b & 1 != 0, b & 2 != 0, b & 4 != 0)) {
                let prot = PageProt {
                    mem_type: t,
                    writable,
                    executable,
                    user,
                };
                for level in 1..=3 {
                    let pa = level_size(level) * 3;
                    let v = pte_encode(PhysAddr(pa), prot, level);
                    let mut want = 1 | (0b11 << 8) | (1 << 10) | (t.attr_index() << 2) | pa as u64;
                    if level == 3 {
                        want |= 1 << 1;
                    }
                    if !writable {
                        want |= 1 << 7;
                    }
                    if user {
                        want |= (1 << 6) | (1 << 11) | (1 << 53);
                        if !executable {
                            want |= 1 << 54;
                        }
                    } else {
                        want |= 1 << 54;
                        if !executable {
                            want |= 1 << 53;
                        }
                    }
                    assert_eq!(v, want, "{prot:?} L{level}");
                    assert_eq!(Descriptor(v).prot(), Some(prot));
                    assert_eq!(Descriptor(v).mem_type(), Some(t));
                    assert_eq!(Descriptor(v).leaf_addr(level), PhysAddr(pa));
                }
            }
        }
    }

    #[test]
    fn descriptor_classification_per_level() {
        let table = table_encode(PhysAddr(0x4008_2000));
        assert_eq!(table, 0x0000_0000_4008_2003);
        for level in 0..3 {
            assert!(Descriptor(table).is_table(level));
            assert!(!Descriptor(table).is_leaf(level));
        }
        // Type 1 at level 3 is a page, not a table.
        assert!(!Descriptor(table).is_table(3) && Descriptor(table).is_page(3));
        // Type 0 is a block only at levels 1 and 2.
        let block = 0x4000_0001u64;
        assert!(!Descriptor(block).is_block(0) && !Descriptor(block).is_leaf(0));
        assert!(Descriptor(block).is_block(1) && Descriptor(block).is_block(2));
        assert!(!Descriptor(block).is_block(3) && !Descriptor(block).is_leaf(3));
        // Invalid: nothing, whatever the other bits say.
        let invalid = 0x0060_0000_4008_1702u64;
        for level in 0..4 {
            let d = Descriptor(invalid);
            assert!(!d.is_valid() && !d.is_table(level) && !d.is_leaf(level));
        }
        // Stray RES0 bits below a block's size are not part of its address.
        assert_eq!(Descriptor(0x0060_0000_4020_1701).leaf_addr(2), PhysAddr(0x4020_0000));
        assert_eq!(Descriptor(0x0060_0000_4020_1701).output_addr(), PhysAddr(0x4020_1000));
        assert_eq!(Descriptor(0x1c).prot(), None); // AttrIndx 7 is not programmed
    }

    #[test]
    fn descfmt_decodes_every_field() {
        let s = |desc: u64, level: usize| format!("{}", DescFmt { desc, level });
        assert_eq!(
            s(0x0060_0000_4008_1703, 3),
            "pte 0x0060000040081703 PAGE pa=0x40081000 attr0=Normal RW XN AF SH=inner"
        );
        assert_eq!(
            s(0x0060_0000_4020_0781, 2),
            "pmd 0x0060000040200781 BLOCK pa=0x40200000 attr0=Normal RO XN AF SH=inner"
        );
        assert_eq!(
            s(0x0040_0000_4000_0781, 1),
            "pud 0x0040000040000781 BLOCK pa=0x40000000 attr0=Normal RO UXN AF SH=inner"
        );
        assert_eq!(
            s(0x0060_0000_0900_0717, 3),
            "pte 0x0060000009000717 PAGE pa=0x9000000 attr5=Device-nGnRE RW XN AF SH=inner"
        );
        let user = pte_encode(
            PhysAddr(0x4008_1000),
            PageProt {
                mem_type: MemType::NormalNc,
                writable: true,
                executable: false,
                user: true,
            },
            3,
        );
        assert_eq!(user, 0x0060_0000_4008_1f4b);
        assert_eq!(
            s(user, 3),
            "pte 0x0060000040081f4b PAGE pa=0x40081000 attr2=Normal-NC RW EL0 XN AF nG SH=inner"
        );
        let user_x = pte_encode(
            PhysAddr(0x4008_1000),
            PageProt {
                mem_type: MemType::NormalWt,
                writable: false,
                executable: true,
                user: true,
            },
            3,
        );
        assert_eq!(
            s(user_x, 3),
            "pte 0x0020000040081fcf PAGE pa=0x40081000 attr3=Normal-WT RO EL0 PXN AF nG SH=inner"
        );
        // Everything unusual at once: Device-nGnRnE, NS, SH=outer, no AF, nG,
        // no XN, CONT, DBM, software bit 55, ignored bit 59, RES0 bit 48.
        let odd = 0x0899_0000_4008_1a33;
        assert_eq!(
            s(odd, 3),
            "pte 0x0899000040081a33 PAGE pa=0x40081000 attr4=Device-nGnRnE RW !AF nG SH=outer \
             CONT DBM NS sw=0x1 ign=0x1 RES0=0x1000000000000"
        );
        assert_eq!(
            s(0x0060_0000_4020_1701, 2),
            "pmd 0x0060000040201701 BLOCK pa=0x40200000 attr0=Normal RW XN AF SH=inner RES0=0x1000"
        );
        assert_eq!(
            s(0x0000_0000_4000_051d, 2).split(' ').nth(4),
            Some("attr7=unprogrammed")
        );
        assert_eq!(s(0x0000_0000_4000_0101, 1).rsplit(' ').next(), Some("SH=reserved"));
        assert_eq!(s(0x0000_0000_4000_0101, 1).split(' ').nth(6), Some("!AF"));
        assert_eq!(s(0x0000_0000_4000_0401, 1).rsplit(' ').next(), Some("SH=non"));
        assert_eq!(s(0, 3), "pte 0x0000000000000000 INVALID");
        assert_eq!(s(0x0060_0000_4008_1702, 3), "pte 0x0060000040081702 INVALID");
        assert_eq!(s(0x1, 3), "pte 0x0000000000000001 RESERVED");
        assert_eq!(s(0x4000_0001, 0), "pgd 0x0000000040000001 RESERVED");
        assert_eq!(
            s(0x0000_0000_4008_2003, 0),
            "pgd 0x0000000040082003 TABLE next=0x40082000"
        );
        assert_eq!(
            s(0xb800_0000_4008_2003, 1),
            "pud 0xb800000040082003 TABLE next=0x40082000 PXNTable UXNTable NSTable APTable=0b1"
        );
        assert_eq!(
            s(0x0080_0000_4008_2003, 2),
            "pmd 0x0080000040082003 TABLE next=0x40082000 (new)"
        );
    }

    // -- Mapping ------------------------------------------------------------

    #[test]
    fn map_translate_walk_unmap_pages() {
        let (mut env, mut pt) = setup();
        let va = VirtAddr(VMALLOC_START + 0x10_0000);
        let pages = [PhysAddr(0x4123_4000), PhysAddr(0x4000_0000), PhysAddr(0x7fff_f000)];
        pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
        assert_eq!(env.events, [Event::Sync]);
        for (i, pa) in pages.iter().enumerate() {
            let v = va.add(i * PAGE_SIZE);
            assert_eq!(pt.translate(&env, v), Some(*pa));
            assert_eq!(pt.translate(&env, v.add(0x123)), Some(pa.add(0x123)));
            assert_eq!(leaf(&pt, &env, v.0), Some((3, pte_encode(*pa, PAGE_KERNEL, 3))));
        }
        assert_eq!(pt.translate(&env, va.add(3 * PAGE_SIZE)), None);
        assert_eq!(pt.translate(&env, VirtAddr(va.0 - PAGE_SIZE)), None);
        assert_eq!(pt.count_tables(&env), 4);

        let w = pt.walk(&env, va.add(PAGE_SIZE));
        assert_eq!(w.leaf_level, Some(3));
        assert_eq!(w.pa, Some(PhysAddr(0x4000_0000)));
        let idx: Vec<usize> = w.steps.iter().flatten().map(|s| s.index).collect();
        assert_eq!(idx, [256, 0, 128, 0x101]);
        assert_eq!(w.steps[0].unwrap().table, pt.root());

        env.events.clear();
        pt.unmap_range(&mut env, va, 3 * PAGE_SIZE).unwrap();
        assert_eq!(
            env.events,
            [Event::Flush {
                start: va.0,
                end: va.0 + 3 * PAGE_SIZE,
                seen: Some(0)
            }]
        );
        for i in 0..3 {
            assert_eq!(pt.translate(&env, va.add(i * PAGE_SIZE)), None);
        }
        // Tables are kept, as in Linux.
        assert_eq!(pt.count_tables(&env), 4);
        pt.destroy(&mut env);
        assert!(env.live.is_empty(), "leaked {} table pages", env.live.len());
    }

    #[test]
    fn block_mappings_where_aligned_pages_at_the_edges() {
        let (mut env, mut pt) = setup();
        let (pa0, pa1) = (0x4000_1000usize, 0x8020_1000usize);
        pt.map_range(&mut env, lin(pa0), PhysAddr(pa0), pa1 - pa0, PAGE_KERNEL, true)
            .unwrap();
        assert_eq!(env.events, [Event::Sync]);
        // pud[1]: pte table for the first 2 MiB (511 pages), then 511 2 MiB blocks;
        // pud[2]: one 2 MiB block, then a pte table with one page. No 1 GiB block:
        // 0x4000_1000 is not 1 GiB aligned and only 2 MiB + 4 KiB remain past 0x8000_0000.
        let expect = [
            (0x4000_0000, None),
            (0x4000_1000, Some(3)),
            (0x401f_f000, Some(3)),
            (0x4020_0000, Some(2)),
            (0x5555_5000, Some(2)),
            (0x7fff_f000, Some(2)),
            (0x8000_0000, Some(2)),
            (0x801f_f000, Some(2)),
            (0x8020_0000, Some(3)),
            (0x8020_1000, None),
        ];
        for (pa, level) in expect {
            let got = leaf(&pt, &env, lin(pa).0);
            assert_eq!(got.map(|g| g.0), level, "pa {pa:#x}");
            if let Some((level, desc)) = got {
                let base = pa & !(level_size(level) - 1);
                assert_eq!(desc, pte_encode(PhysAddr(base), PAGE_KERNEL, level));
                assert_eq!(pt.translate(&env, lin(pa + 0x10)), Some(PhysAddr(pa + 0x10)));
            }
        }
        let w = pt.walk(&env, lin(0x4000_1000));
        let idx: Vec<usize> = w.steps.iter().flatten().map(|s| s.index).collect();
        assert_eq!(idx, [0, 1, 0, 1]);
        // pgd, pud, pmd x2, pte x2
        assert_eq!(pt.count_tables(&env), 6);
        assert_eq!(env.live.len(), 6);

        // Without blocks: one pte table per 2 MiB (512 + 2).
        let mut pt2 = PageTable::new(&mut env).unwrap();
        pt2.map_range(&mut env, lin(pa0), PhysAddr(pa0), pa1 - pa0, PAGE_KERNEL, false)
            .unwrap();
        assert_eq!(pt2.count_tables(&env), 1 + 1 + 2 + 514);
        assert_eq!(leaf(&pt2, &env, lin(0x5555_5000).0).map(|l| l.0), Some(3));
        pt2.destroy(&mut env);

        // 1 GiB aligned: 1 GiB blocks at level 1 and nothing below.
        let mut pt3 = PageTable::new(&mut env).unwrap();
        pt3.map_range(
            &mut env,
            lin(0x4000_0000),
            PhysAddr(0x4000_0000),
            2 * PUD_SIZE,
            PAGE_KERNEL_RO,
            true,
        )
        .unwrap();
        assert_eq!(pt3.count_tables(&env), 2);
        assert_eq!(
            leaf(&pt3, &env, lin(0xbfff_f000).0),
            Some((1, pte_encode(PhysAddr(0x8000_0000), PAGE_KERNEL_RO, 1)))
        );
        // va aligned but pa not: no blocks.
        let mut pt4 = PageTable::new(&mut env).unwrap();
        pt4.map_range(
            &mut env,
            lin(0x4000_0000),
            PhysAddr(0x4000_1000),
            PMD_SIZE,
            PAGE_KERNEL,
            true,
        )
        .unwrap();
        assert_eq!(leaf(&pt4, &env, lin(0x4000_0000).0).map(|l| l.0), Some(3));
        assert_eq!(pt4.translate(&env, lin(0x4000_0000)), Some(PhysAddr(0x4000_1000)));

        for t in [pt, pt3, pt4] {
            t.destroy(&mut env);
        }
        assert!(env.live.is_empty());
    }

    #[test]
    fn existing_table_at_a_block_slot_is_descended_into() {
        let (mut env, mut pt) = setup();
        // Leave an empty pte table at the second 2 MiB (Linux keeps tables after unmap).
        let v = lin(0x4020_0000 + 0x5000);
        pt.map_range(&mut env, v, PhysAddr(0x1000), PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        pt.unmap_range(&mut env, v, PAGE_SIZE).unwrap();
        let tables = pt.count_tables(&env);
        pt.map_range(
            &mut env,
            lin(0x4000_0000),
            PhysAddr(0x4000_0000),
            3 * PMD_SIZE,
            PAGE_KERNEL,
            true,
        )
        .unwrap();
        assert_eq!(leaf(&pt, &env, lin(0x4000_0000).0).map(|l| l.0), Some(2));
        assert_eq!(leaf(&pt, &env, lin(0x4020_5000).0).map(|l| l.0), Some(3));
        assert_eq!(leaf(&pt, &env, lin(0x4040_0000).0).map(|l| l.0), Some(2));
        assert_eq!(pt.translate(&env, lin(0x4030_0123)), Some(PhysAddr(0x4030_0123)));
        assert_eq!(pt.count_tables(&env), tables);
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    #[test]
    fn already_mapped_is_refused_and_atomic() {
        let (mut env, mut pt) = setup();
        let va = VirtAddr(VMALLOC_START + 0x20_0000 - 2 * PAGE_SIZE);
        pt.map_range(&mut env, va, PhysAddr(0x5000_0000), 4 * PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        let before = (env.live.clone(), pt.count_tables(&env));
        // Starts 3 pages earlier (same pte table) and runs into the mapping.
        let start = VirtAddr(va.0 - 3 * PAGE_SIZE);
        env.events.clear();
        let err = pt
            .map_range(
                &mut env,
                start,
                PhysAddr(0x6000_0000),
                8 * PAGE_SIZE,
                PAGE_KERNEL_RO,
                false,
            )
            .unwrap_err();
        assert_eq!(
            err,
            PgtableError::AlreadyMapped {
                va,
                existing: pte_encode(PhysAddr(0x5000_0000), PAGE_KERNEL, 3)
            }
        );
        for i in 0..3 {
            assert_eq!(pt.translate(&env, start.add(i * PAGE_SIZE)), None);
        }
        assert_eq!(pt.translate(&env, va), Some(PhysAddr(0x5000_0000)));
        assert_eq!((env.live.clone(), pt.count_tables(&env)), before);
        // No sync for a failed call; the 3 pages it wrote were flushed.
        assert_eq!(
            env.events,
            [Event::Flush {
                start: start.0,
                end: va.0,
                seen: Some(0)
            }]
        );

        // Pages over a block: the block is what is in the way.
        let b = lin(0x4000_0000);
        pt.map_range(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL, true)
            .unwrap();
        let err = pt
            .map_pages(&mut env, b.add(0x3000), &[PhysAddr(0x1000)], PAGE_KERNEL)
            .unwrap_err();
        assert_eq!(
            err,
            PgtableError::AlreadyMapped {
                va: b.add(0x3000),
                existing: pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL, 2)
            }
        );
        // Same block again.
        let err = pt
            .map_range(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL, true)
            .unwrap_err();
        assert!(matches!(err, PgtableError::AlreadyMapped { va, .. } if va == b));
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    #[test]
    fn conflict_after_new_tables_frees_them() {
        let (mut env, mut pt) = setup();
        // Mapped page in pgd[256]; the new range starts in pgd[255] (all new tables).
        pt.map_range(
            &mut env,
            VirtAddr(PAGE_END + PAGE_SIZE),
            PhysAddr(0x1000),
            PAGE_SIZE,
            PAGE_KERNEL,
            false,
        )
        .unwrap();
        let before = env.live.clone();
        env.events.clear();
        let start = VirtAddr(PAGE_END - 3 * PAGE_SIZE);
        let err = pt.map_range(
            &mut env,
            start,
            PhysAddr(0x9000_0000),
            8 * PAGE_SIZE,
            PAGE_KERNEL,
            false,
        );
        assert!(matches!(err, Err(PgtableError::AlreadyMapped { va, .. }) if va.0 == PAGE_END + PAGE_SIZE));
        assert_eq!(env.live, before, "tables of the failed call must be freed");
        assert!(env.events.contains(&Event::FlushPgtable {
            start: start.0,
            end: PAGE_END + 2 * PAGE_SIZE
        }));
        for i in 0..8 {
            let v = start.add(i * PAGE_SIZE);
            let want = (v.0 == PAGE_END + PAGE_SIZE).then_some(PhysAddr(0x1000));
            assert_eq!(pt.translate(&env, v), want);
        }
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    #[test]
    fn no_memory_at_every_allocation_rolls_back_exactly() {
        // Crosses pgd[255] -> pgd[256]; pgd[256] already has pud/pmd tables, an
        // empty pte table at pmd[1] (left by an unmap) and a live mapping at pmd[5].
        let start = VirtAddr(PAGE_END - 2 * PMD_SIZE - 3 * PAGE_SIZE);
        let size = 4 * PMD_SIZE + 6 * PAGE_SIZE;
        let pages: Vec<PhysAddr> = (0..size / PAGE_SIZE)
            .map(|i| PhysAddr(0x8000_0000 - i * PAGE_SIZE))
            .collect();
        for use_list in [false, true] {
            let (mut env, mut pt) = setup();
            let keep = VirtAddr(PAGE_END + 5 * PMD_SIZE);
            pt.map_range(&mut env, keep, PhysAddr(0x4242_4000), PAGE_SIZE, PAGE_KERNEL, false)
                .unwrap();
            let hole = VirtAddr(PAGE_END + PMD_SIZE + 7 * PAGE_SIZE);
            pt.map_range(&mut env, hole, PhysAddr(0x4343_4000), PAGE_SIZE, PAGE_KERNEL, false)
                .unwrap();
            pt.unmap_range(&mut env, hole, PAGE_SIZE).unwrap();
            let live = env.live.clone();
            let tables = pt.count_tables(&env);
            assert_eq!(tables, 5);
            // Needed: pgd[255]: pud, pmd, 3 pte; pgd[256]: pte for pmd[0] and pmd[2].
            let needed = 7;
            for n in 0..=needed {
                env.fail_after = Some(n);
                env.events.clear();
                let allocs = env.allocs;
                let r = if use_list {
                    pt.map_pages(&mut env, start, &pages, PAGE_KERNEL)
                } else {
                    pt.map_range(&mut env, start, PhysAddr(0x1_0000_0000), size, PAGE_KERNEL, true)
                };
                assert_eq!(env.allocs - allocs, n.min(needed));
                if n < needed {
                    let err = r.unwrap_err();
                    assert!(matches!(err, PgtableError::NoMemory { .. }), "{err}");
                    assert_eq!(env.live, live, "n={n}: table pages differ");
                    assert_eq!(pt.count_tables(&env), tables);
                    for i in 0..size / PAGE_SIZE {
                        assert_eq!(pt.translate(&env, start.add(i * PAGE_SIZE)), None, "n={n} page {i}");
                    }
                    assert!(!env.events.contains(&Event::Sync));
                    if n > 0 {
                        assert!(matches!(env.events.last(), Some(Event::FlushPgtable { .. })));
                    }
                } else {
                    r.unwrap();
                    assert_eq!(pt.count_tables(&env), tables + needed);
                    for (i, pa) in pages.iter().enumerate() {
                        let want = if use_list {
                            *pa
                        } else {
                            PhysAddr(0x1_0000_0000 + i * PAGE_SIZE)
                        };
                        assert_eq!(pt.translate(&env, start.add(i * PAGE_SIZE)), Some(want));
                    }
                    // No rollback marks survive a successful call.
                    let mut marks = 0;
                    visit_range(&mut env, pt.root(), 0, start.0, start.0 + size, 2, &mut |_, p, _, _| {
                        marks += (read_entry(p) & SW_NEW != 0) as usize;
                        true
                    });
                    assert_eq!(marks, 0);
                }
                assert_eq!(pt.translate(&env, keep), Some(PhysAddr(0x4242_4000)));
            }
            match pt.map_range(
                &mut env,
                VirtAddr(PAGE_END + 9 * PMD_SIZE),
                PhysAddr(0),
                PAGE_SIZE,
                PAGE_KERNEL,
                false,
            ) {
                Err(PgtableError::NoMemory { va, level: 3 }) => {
                    assert_eq!(va.0, PAGE_END + 9 * PMD_SIZE)
                }
                r => panic!("{r:?}"),
            }
            env.fail_after = None;
            pt.destroy(&mut env);
            assert!(env.live.is_empty());
        }
    }

    #[test]
    fn replace_is_break_before_make() {
        let (mut env, mut pt) = setup();
        let va = VirtAddr(VMALLOC_START);
        pt.map_range(&mut env, va, PhysAddr(0x4000_0000), 2 * PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        let err = pt.map_range(&mut env, va, PhysAddr(0x4000_0000), PAGE_SIZE, PAGE_KERNEL_RO, false);
        assert!(matches!(err, Err(PgtableError::AlreadyMapped { .. })));
        env.events.clear();
        // Second page identical: no flush for it; a third page is new.
        pt.map_range_replace(&mut env, va, PhysAddr(0x4000_0000), PAGE_SIZE, PAGE_KERNEL_ROX, false)
            .unwrap();
        pt.map_range_replace(
            &mut env,
            va.add(PAGE_SIZE),
            PhysAddr(0x4000_1000),
            2 * PAGE_SIZE,
            PAGE_KERNEL,
            false,
        )
        .unwrap();
        // The flush saw the entry already cleared; the new one came after it.
        assert_eq!(
            env.events,
            [
                Event::Flush {
                    start: va.0,
                    end: va.0 + PAGE_SIZE,
                    seen: Some(0)
                },
                Event::Sync,
                Event::Sync
            ]
        );
        assert_eq!(
            leaf(&pt, &env, va.0),
            Some((3, pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL_ROX, 3)))
        );
        assert_eq!(pt.translate(&env, va.add(2 * PAGE_SIZE)), Some(PhysAddr(0x4000_2000)));

        // Blocks too.
        let b = lin(0x4000_0000);
        pt.map_range(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL_EXEC, true)
            .unwrap();
        env.events.clear();
        pt.map_range_replace(&mut env, b, PhysAddr(0x4000_0000), PMD_SIZE, PAGE_KERNEL_ROX, true)
            .unwrap();
        assert_eq!(
            env.events,
            [
                Event::Flush {
                    start: b.0,
                    end: b.0 + PMD_SIZE,
                    seen: Some(0)
                },
                Event::Sync
            ]
        );
        assert_eq!(
            leaf(&pt, &env, b.0),
            Some((2, pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL_ROX, 2)))
        );
        // A block is never split by a replace.
        let err = pt.map_range_replace(&mut env, b, PhysAddr(0x4000_0000), PAGE_SIZE, PAGE_KERNEL, false);
        assert!(matches!(err, Err(PgtableError::AlreadyMapped { va, .. }) if va == b));
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    #[test]
    fn unmap_blocks_holes_and_errors() {
        let (mut env, mut pt) = setup();
        let b = lin(0x4000_0000);
        pt.map_range(
            &mut env,
            b,
            PhysAddr(0x4000_0000),
            PUD_SIZE + PMD_SIZE + PAGE_SIZE,
            PAGE_KERNEL,
            true,
        )
        .unwrap();
        let err = pt.unmap_range(&mut env, b.add(PAGE_SIZE), PAGE_SIZE).unwrap_err();
        assert_eq!(
            err,
            PgtableError::PartialBlock {
                va: b.add(PAGE_SIZE),
                level: 1,
                existing: pte_encode(PhysAddr(0x4000_0000), PAGE_KERNEL, 1)
            }
        );
        let err = pt.unmap_range(&mut env, b.add(PUD_SIZE), PAGE_SIZE).unwrap_err();
        assert!(matches!(err, PgtableError::PartialBlock { level: 2, .. }));
        env.events.clear();
        pt.unmap_range(&mut env, b, PUD_SIZE + PMD_SIZE + PAGE_SIZE).unwrap();
        assert_eq!(env.events.len(), 1, "one flush per unmap: {:?}", env.events);
        assert!(matches!(env.events[0], Event::Flush { start, end, .. }
            if start == b.0 && end == b.0 + PUD_SIZE + PMD_SIZE + PAGE_SIZE));
        assert_eq!(pt.translate(&env, b), None);

        // Holes: strict reports the first one, with the level of the invalid entry.
        let err = pt.unmap_range(&mut env, b, PAGE_SIZE).unwrap_err();
        assert_eq!(err, PgtableError::NotMapped { va: b, level: 1 });
        let v = VirtAddr(VMALLOC_START);
        assert_eq!(
            pt.unmap_range(&mut env, v, PAGE_SIZE),
            Err(PgtableError::NotMapped { va: v, level: 0 })
        );
        pt.map_range(&mut env, v, PhysAddr(0x1000), 2 * PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        env.events.clear();
        let err = pt.unmap_range(&mut env, v, 3 * PAGE_SIZE).unwrap_err();
        assert_eq!(
            err,
            PgtableError::NotMapped {
                va: v.add(2 * PAGE_SIZE),
                level: 3
            }
        );
        // What was cleared before the hole was flushed.
        assert_eq!(
            env.events,
            [Event::Flush {
                start: v.0,
                end: v.0 + 2 * PAGE_SIZE,
                seen: Some(0)
            }]
        );
        assert_eq!(pt.translate(&env, v), None);

        // allow_holes: a vmap area with its guard page, across tables and a missing pmd.
        pt.map_range(&mut env, v, PhysAddr(0x1000), 2 * PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        let far = v.add(PUD_SIZE - PAGE_SIZE);
        pt.map_range(&mut env, far, PhysAddr(0x2000), PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        env.events.clear();
        let calls = env.table_ptr_calls.get();
        pt.unmap_range_allow_holes(&mut env, v, PUD_SIZE + PAGE_SIZE).unwrap();
        assert_eq!(env.events.len(), 1);
        assert_eq!(pt.translate(&env, v), None);
        assert_eq!(pt.translate(&env, far), None);
        // Holes at the pmd level are skipped a whole pmd at a time.
        assert!(
            env.table_ptr_calls.get() - calls < 40,
            "{}",
            env.table_ptr_calls.get() - calls
        );
        // Nothing mapped: no flush at all.
        env.events.clear();
        pt.unmap_range_allow_holes(&mut env, v, 4 * PAGE_SIZE).unwrap();
        assert!(env.events.is_empty());
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    #[test]
    fn misaligned_and_out_of_range() {
        let (mut env, mut pt) = setup();
        let v = VirtAddr(VMALLOC_START);
        let mis = |what, value| PgtableError::Misaligned {
            what,
            value,
            align: PAGE_SIZE,
        };
        let k = PAGE_KERNEL;
        assert_eq!(
            pt.map_range(&mut env, v.add(8), PhysAddr(0), PAGE_SIZE, k, false),
            Err(mis("va", v.0 + 8))
        );
        assert_eq!(
            pt.map_range(&mut env, v, PhysAddr(0x10), PAGE_SIZE, k, false),
            Err(mis("pa", 0x10))
        );
        assert_eq!(
            pt.map_range(&mut env, v, PhysAddr(0), 0x1800, k, false),
            Err(mis("size", 0x1800))
        );
        assert_eq!(pt.unmap_range(&mut env, v, 0x10), Err(mis("size", 0x10)));
        assert_eq!(
            pt.map_pages(&mut env, v, &[PhysAddr(0x1000), PhysAddr(0x2008)], k),
            Err(mis("page", 0x2008))
        );
        assert_eq!(
            pt.map_pages(&mut env, v, &[PhysAddr(0x1000), PhysAddr(1 << 48)], k),
            Err(PgtableError::PhysOutOfRange { pa: PhysAddr(1 << 48) })
        );
        assert_eq!(
            pt.translate(&env, v),
            None,
            "failed map_pages must leave nothing behind"
        );
        assert_eq!(
            pt.map_range(&mut env, v, PhysAddr((1 << 48) - PAGE_SIZE), 2 * PAGE_SIZE, k, false),
            Err(PgtableError::PhysOutOfRange {
                pa: PhysAddr((1 << 48) - PAGE_SIZE)
            })
        );
        // Lower-half and non-canonical addresses, and wrapping past the top.
        for bad in [0x4000_0000usize, 0x0001_0000_0000_0000, 0xfffe_ffff_ffff_f000] {
            assert_eq!(
                pt.map_range(&mut env, VirtAddr(bad), PhysAddr(0), PAGE_SIZE, k, false),
                Err(PgtableError::OutOfRange { va: VirtAddr(bad) })
            );
            assert_eq!(pt.translate(&env, VirtAddr(bad)), None);
            assert!(pt.walk(&env, VirtAddr(bad)).steps.iter().all(Option::is_none));
        }
        let top = VirtAddr(usize::MAX & PAGE_MASK_);
        assert_eq!(
            pt.map_range(&mut env, top, PhysAddr(0), 2 * PAGE_SIZE, k, false),
            Err(PgtableError::OutOfRange { va: top })
        );
        // The last page below the top is fine.
        pt.map_range(
            &mut env,
            VirtAddr(top.0 - PAGE_SIZE),
            PhysAddr(0x5000),
            PAGE_SIZE,
            k,
            false,
        )
        .unwrap();
        assert_eq!(
            pt.translate(&env, VirtAddr(top.0 - PAGE_SIZE + 1)),
            Some(PhysAddr(0x5001))
        );
        // Empty ranges do nothing.
        env.events.clear();
        pt.map_pages(&mut env, v, &[], k).unwrap();
        pt.unmap_range(&mut env, v, 0).unwrap();
        assert!(env.events.is_empty());
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    const PAGE_MASK_: usize = !(PAGE_SIZE - 1);

    #[test]
    fn identity_map_in_the_lower_half() {
        let mut env = TrackingEnv::new();
        let mut id = PageTable::new_for(&mut env, VaHalf::Lower).unwrap();
        assert_eq!(id.half(), VaHalf::Lower);
        id.map_range(
            &mut env,
            VirtAddr(0x4000_0000),
            PhysAddr(0x4000_0000),
            0x20_3000,
            PAGE_KERNEL_EXEC,
            true,
        )
        .unwrap();
        let w = id.walk(&env, VirtAddr(0x4000_1234));
        assert_eq!((w.leaf_level, w.pa), (Some(2), Some(PhysAddr(0x4000_1234))));
        assert_eq!(id.translate(&env, VirtAddr(0x4020_2fff)), Some(PhysAddr(0x4020_2fff)));
        let up = VirtAddr(PAGE_OFFSET + 0x4000_0000);
        assert_eq!(
            id.map_range(&mut env, up, PhysAddr(0), PAGE_SIZE, PAGE_KERNEL, false),
            Err(PgtableError::OutOfRange { va: up })
        );
        let edge = VirtAddr((1 << 48) - PAGE_SIZE);
        id.map_range(&mut env, edge, PhysAddr(0), PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        assert_eq!(
            id.map_range(&mut env, edge, PhysAddr(0), 2 * PAGE_SIZE, PAGE_KERNEL, false),
            Err(PgtableError::OutOfRange { va: edge })
        );
        let root = id.root();
        let again = unsafe { PageTable::from_root_for(root, VaHalf::Lower) };
        assert_eq!(
            again.translate(&env, VirtAddr(0x4000_0000)),
            Some(PhysAddr(0x4000_0000))
        );
        id.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    #[test]
    fn map_and_unmap_walk_once_per_pmd() {
        let (mut env, mut pt) = setup();
        let va = VirtAddr(VMALLOC_START + 4 * PMD_SIZE);
        let pages: Vec<PhysAddr> = (0..1024)
            .map(|i| PhysAddr(0x4000_0000 + 4096 * (i * 7 % 1024)))
            .collect();
        pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
        pt.unmap_range(&mut env, va, pages.len() * PAGE_SIZE).unwrap();
        // Tables exist now: 2 pmd spans x 4 levels, nothing else.
        let c0 = env.table_ptr_calls.get();
        pt.map_pages(&mut env, va, &pages, PAGE_KERNEL).unwrap();
        assert_eq!(env.table_ptr_calls.get() - c0, 8);
        let c1 = env.table_ptr_calls.get();
        pt.unmap_range(&mut env, va, pages.len() * PAGE_SIZE).unwrap();
        // + the flush probe's walk in the test env (4).
        assert_eq!(env.table_ptr_calls.get() - c1, 8 + 4);
        pt.destroy(&mut env);
    }

    #[test]
    fn destroy_frees_every_table() {
        let (mut env, mut pt) = setup();
        for (i, base) in [VMALLOC_START, PAGE_OFFSET, PAGE_END - PAGE_SIZE, 0xffff_ffff_ffe0_0000]
            .iter()
            .enumerate()
        {
            pt.map_range(
                &mut env,
                VirtAddr(*base),
                PhysAddr(i * 0x10_0000),
                PAGE_SIZE,
                PAGE_KERNEL,
                false,
            )
            .unwrap();
        }
        assert_eq!(pt.count_tables(&env), env.live.len());
        assert_eq!(env.live.len(), 1 + 4 * 3);
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
        assert_eq!(env.retired.len(), 13);
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn tracking_env_catches_double_free() {
        let mut env = TrackingEnv::new();
        let p = env.alloc_table().unwrap();
        env.free_table(p);
        env.free_table(p);
    }

    #[test]
    #[should_panic(expected = "never allocated")]
    fn tracking_env_catches_foreign_free() {
        let mut env = TrackingEnv::new();
        env.free_table(PhysAddr(0x4000_0000));
    }

    #[test]
    fn walk_display() {
        let (mut env, mut pt) = setup();
        let va = VirtAddr(VMALLOC_START + 0x3000);
        pt.map_range(&mut env, va, PhysAddr(0x4008_1000), PAGE_SIZE, PAGE_KERNEL, false)
            .unwrap();
        let w = pt.walk(&env, va.add(0x10));
        let t: Vec<PhysAddr> = w.steps.iter().flatten().map(|s| s.table).collect();
        let d: Vec<u64> = w.steps.iter().flatten().map(|s| s.desc).collect();
        let want = format!(
            "walk va 0xffff800010003010:\n\
             \x20 L0 pgd[256] in table {:#x}: pgd {:#018x} TABLE next={:#x}\n\
             \x20 L1 pud[0] in table {:#x}: pud {:#018x} TABLE next={:#x}\n\
             \x20 L2 pmd[128] in table {:#x}: pmd {:#018x} TABLE next={:#x}\n\
             \x20 L3 pte[3] in table {:#x}: pte 0x0060000040081703 PAGE pa=0x40081000 attr0=Normal RW XN AF SH=inner\n\
             \x20 => pa 0x40081010 (4 KiB page at level 3)",
            t[0].0, d[0], t[1].0, t[1].0, d[1], t[2].0, t[2].0, d[2], t[3].0, t[3].0
        );
        assert_eq!(format!("{w}"), want);
        let miss = format!("{}", pt.walk(&env, VirtAddr(VMALLOC_START + PMD_SIZE)));
        assert!(miss.contains("\n  L2 pmd[129] in table "), "{miss}");
        assert!(
            miss.ends_with("=> not mapped (no valid entry at level 2, pmd)"),
            "{miss}"
        );
        let bad = format!("{}", pt.walk(&env, VirtAddr(0x1234)));
        assert_eq!(
            bad,
            "walk va 0x1234:\n  => not a canonical address of this table's half"
        );
        pt.destroy(&mut env);
    }

    #[test]
    fn error_messages_say_what_and_by_how_much() {
        let va = VirtAddr(0xffff_8000_1000_0000);
        let cases = [
            (
                PgtableError::NoMemory { va, level: 3 },
                "out of memory: no page for a level-3 (pte) table needed to map va 0xffff800010000000",
            ),
            (
                PgtableError::AlreadyMapped {
                    va,
                    existing: 0x0060_0000_4008_1703,
                },
                "va 0xffff800010000000 is already mapped (existing descriptor 0x0060000040081703); \
                 refusing to overwrite it",
            ),
            (
                PgtableError::NotMapped { va, level: 2 },
                "va 0xffff800010000000 is not mapped: its level-2 (pmd) entry is invalid",
            ),
            (
                PgtableError::Misaligned {
                    what: "pa",
                    value: 0x4008_1234,
                    align: 0x1000,
                },
                "pa 0x40081234 is not aligned to 0x1000 (it is 0x234 bytes past a boundary)",
            ),
            (
                PgtableError::PhysOutOfRange { pa: PhysAddr(1 << 48) },
                "pa 0x1000000000000 does not fit a 48-bit output address",
            ),
            (
                PgtableError::PartialBlock {
                    va: va.add(0x1000),
                    level: 2,
                    existing: 0x0060_0000_4000_0701,
                },
                "va 0xffff800010001000 is inside the 2 MiB pmd block at 0xffff800010000000 \
                 (descriptor 0x0060000040000701); unmapping part of a block would split it",
            ),
        ];
        for (e, msg) in cases {
            assert_eq!(format!("{e}"), msg);
        }
        let oor = format!("{}", PgtableError::OutOfRange { va: VirtAddr(0x1000) });
        assert!(oor.starts_with("va 0x1000 is outside this table's half"), "{oor}");
    }

    // -- Randomized: against a model -----------------------------------------

    #[test]
    fn random_operations_match_a_model() {
        // 16 MiB window across the pgd[255]/pgd[256] boundary (8 pmds).
        const WIN: usize = PAGE_END - 8 * 1024 * 1024;
        const WIN_PAGES: usize = 4096;
        let (mut env, mut pt) = setup();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // page va -> pa; blocks: 2 MiB block base vas.
        let mut model: BTreeMap<usize, usize> = BTreeMap::new();
        let mut blocks: BTreeSet<usize> = BTreeSet::new();
        // Outcomes seen, so the test cannot silently stop exercising a path:
        // map ok, AlreadyMapped, NoMemory, unmap ok, PartialBlock, NotMapped, blocks made.
        let mut seen = [0usize; 7];
        let block_of = |blocks: &BTreeSet<usize>, va: usize| {
            let b = va & !(PMD_SIZE - 1);
            blocks.contains(&b).then_some(b)
        };
        for op in 0..6000 {
            if op % 150 == 0 {
                // A fresh tree now and then: new tables (NoMemory) and empty pmds (blocks).
                let old = core::mem::replace(&mut pt, PageTable::new(&mut env).unwrap());
                old.destroy(&mut env);
                assert_eq!(env.live.len(), 1, "op {op}: leaked table pages");
                env.probe_root = Some(pt.root());
                model.clear();
                blocks.clear();
            }
            let first = rng.below(WIN_PAGES);
            let max = if rng.below(8) == 0 { 1200 } else { 40 };
            let n = 1 + rng.below(max).min(WIN_PAGES - first - 1);
            let mut va = WIN + first * PAGE_SIZE;
            let fail = (rng.below(3) == 0).then(|| rng.below(4));
            env.fail_after = fail;
            let snapshot = (env.live.clone(), model.clone(), blocks.clone());
            match rng.below(20) {
                0..=7 => {
                    let pages: Vec<PhysAddr> = (0..n)
                        .map(|_| PhysAddr((rng.next() as usize & 0xff_ffff_f000) + 0x1000))
                        .collect();
                    let conflict = (0..n).map(|i| va + i * PAGE_SIZE).find(|v| model.contains_key(v));
                    let r = pt.map_pages(&mut env, VirtAddr(va), &pages, PAGE_KERNEL);
                    match (r, conflict) {
                        (Ok(()), None) => {
                            seen[0] += 1;
                            for (i, pa) in pages.iter().enumerate() {
                                model.insert(va + i * PAGE_SIZE, pa.0);
                            }
                        }
                        (Err(PgtableError::AlreadyMapped { va: e, .. }), Some(c)) => {
                            seen[1] += 1;
                            assert_eq!(e.0, c);
                        }
                        (Err(PgtableError::NoMemory { .. }), _) if fail.is_some() => seen[2] += 1,
                        (r, c) => panic!("op {op}: map_pages {va:#x}+{n}: {r:?}, conflict {c:x?}"),
                    }
                }
                8..=12 => {
                    // Contiguous, block-capable: sometimes 2 MiB aligned in va and pa.
                    let mut pa = (rng.next() as usize & 0xf_ffff_f000) + 0x1000;
                    let mut n = n;
                    if rng.below(3) != 0 {
                        va = WIN + rng.below(8) * PMD_SIZE;
                        pa &= !(PMD_SIZE - 1);
                        n = (512 + rng.below(600)).min((WIN + 16 * 1024 * 1024 - va) / PAGE_SIZE);
                    }
                    let conflict = (0..n).map(|i| va + i * PAGE_SIZE).find(|v| model.contains_key(v));
                    let r = pt.map_range(&mut env, VirtAddr(va), PhysAddr(pa), n * PAGE_SIZE, PAGE_KERNEL, true);
                    match (r, conflict) {
                        (Ok(()), None) => {
                            seen[0] += 1;
                            for i in 0..n {
                                model.insert(va + i * PAGE_SIZE, pa + i * PAGE_SIZE);
                            }
                            let mut v = va;
                            while v + PMD_SIZE <= va + n * PAGE_SIZE {
                                if v.is_multiple_of(PMD_SIZE) && (pa + v - va).is_multiple_of(PMD_SIZE) {
                                    let (level, _) = leaf(&pt, &env, v).unwrap();
                                    if level == 2 {
                                        blocks.insert(v);
                                        seen[6] += 1;
                                    }
                                }
                                v += PAGE_SIZE;
                            }
                        }
                        (Err(PgtableError::AlreadyMapped { va: e, .. }), Some(c)) => {
                            seen[1] += 1;
                            assert_eq!(e.0, c);
                        }
                        (Err(PgtableError::NoMemory { .. }), _) if fail.is_some() => seen[2] += 1,
                        (r, c) => panic!("op {op}: map_range {va:#x}+{n}: {r:?}, conflict {c:x?}"),
                    }
                }
                _ => {
                    let holes = rng.below(2) == 0;
                    let end = va + n * PAGE_SIZE;
                    // Predict: walk the pages in order like the unmapper does.
                    let mut expect = Ok(());
                    let mut v = va;
                    let mut cleared = Vec::new();
                    while v < end {
                        if let Some(b) = block_of(&blocks, v) {
                            if b != v || end - v < PMD_SIZE {
                                expect = Err(v);
                                break;
                            }
                            cleared.push((v, true));
                            v += PMD_SIZE;
                        } else if model.contains_key(&v) || holes {
                            cleared.push((v, false));
                            v += PAGE_SIZE;
                        } else {
                            expect = Err(v);
                            break;
                        }
                    }
                    let r = if holes {
                        pt.unmap_range_allow_holes(&mut env, VirtAddr(va), n * PAGE_SIZE)
                    } else {
                        pt.unmap_range(&mut env, VirtAddr(va), n * PAGE_SIZE)
                    };
                    match (&r, expect) {
                        (Ok(()), Ok(())) => seen[3] += 1,
                        (Err(PgtableError::PartialBlock { va: e, .. }), Err(x)) if e.0 == x => seen[4] += 1,
                        (Err(PgtableError::NotMapped { va: e, .. }), Err(x)) if e.0 == x && !holes => seen[5] += 1,
                        (r, x) => panic!("op {op}: unmap {va:#x}+{n} holes={holes}: {r:?}, expected {x:x?}"),
                    }
                    for (v, block) in cleared {
                        if block {
                            blocks.remove(&v);
                            for i in 0..512 {
                                model.remove(&(v + i * PAGE_SIZE));
                            }
                        } else {
                            model.remove(&v);
                        }
                    }
                }
            }
            env.fail_after = None;
            if model == snapshot.1 {
                // Failed or no-op: the table pages are exactly as before.
                assert_eq!(env.live, snapshot.0, "op {op}: table pages changed");
                assert_eq!(blocks, snapshot.2);
            }
            let check = |pt: &PageTable, env: &TrackingEnv, v: usize| {
                assert_eq!(
                    pt.translate(env, VirtAddr(v)).map(|p| p.0),
                    model.get(&v).copied(),
                    "op {op}: va {v:#x}"
                );
            };
            for i in 0..n.max(1024) {
                if first + i < WIN_PAGES {
                    check(&pt, &env, WIN + (first + i) * PAGE_SIZE);
                }
            }
            if op % 200 == 0 {
                for i in 0..WIN_PAGES {
                    check(&pt, &env, WIN + i * PAGE_SIZE);
                }
                assert_eq!(pt.count_tables(&env), env.live.len());
            }
        }
        std::eprintln!("outcomes {seen:?}");
        assert!(seen.iter().all(|&n| n >= 20), "outcomes {seen:?}");
        pt.destroy(&mut env);
        assert!(env.live.is_empty());
    }

    // -- The linear map as map_mem lays it out -------------------------------

    use crate::drivers::of::fdt::MemRegion;

    fn plan(memory: &[MemRegion], nomap: &[MemRegion], alias: (usize, usize)) -> Vec<(usize, usize, PageProt)> {
        let mut v = Vec::new();
        map_mem_plan(memory, nomap, (PhysAddr(alias.0), PhysAddr(alias.1)), |c| {
            v.push((c.start.0, c.end.0, c.prot))
        });
        v
    }

    /// QEMU virt with 4 GiB at 1 GiB, the image at +2 MiB, a no-map region
    /// that does not start or end on a page boundary.
    const RAM: MemRegion = MemRegion::new(0x4000_0000, 0x1_0000_0000);
    const ALIAS: (usize, usize) = (0x4020_0000, 0x40a3_5000);
    const NOMAP: MemRegion = MemRegion::new(0x4800_0800, 0x1000);

    #[test]
    fn map_mem_plan_splits_at_the_alias_and_around_nomap() {
        let rw = PAGE_KERNEL;
        let ro = PAGE_KERNEL_RO;
        assert_eq!(
            plan(&[RAM], &[NOMAP], ALIAS),
            vec![
                (0x4000_0000, 0x4020_0000, rw),
                (0x4020_0000, 0x40a3_5000, ro),
                (0x40a3_5000, 0x4800_0000, rw),
                // [0x4800_0800, 0x4800_1800) touches two pages: both stay out.
                (0x4800_2000, 0x1_4000_0000, rw),
            ]
        );
        // The alias is never executable, nor is the rest.
        assert!(!ro.writable && !ro.executable && rw.writable && !rw.executable);
        // No nomap: the alias still splits the range; unaligned RAM edges
        // are trimmed to whole pages; a nomap range outside RAM is ignored,
        // and one spanning two banks cuts both.
        assert_eq!(
            plan(
                &[MemRegion::new(0x4000_0100, 0x1000_0000)],
                &[MemRegion::new(0x10_0000, 0x1000)],
                ALIAS
            ),
            vec![
                (0x4000_1000, 0x4020_0000, rw),
                (0x4020_0000, 0x40a3_5000, ro),
                (0x40a3_5000, 0x5000_0000, rw),
            ]
        );
        let banks = [
            MemRegion::new(0x4000_0000, 0x4000_0000),
            MemRegion::new(0x8000_0000, 0x4000_0000),
        ];
        assert_eq!(
            plan(
                &banks,
                &[MemRegion::new(0x7fff_f000, 0x2000)],
                (0x4020_0000, 0x4040_0000)
            ),
            vec![
                (0x4000_0000, 0x4020_0000, rw),
                (0x4020_0000, 0x4040_0000, ro),
                (0x4040_0000, 0x7fff_f000, rw),
                (0x8000_1000, 0xc000_0000, rw),
            ]
        );
        // A no-map bank disappears completely.
        assert_eq!(plan(&banks[1..], &[banks[1]], ALIAS), vec![]);
    }

    /// Every leaf of the tree at `root`: (first va, level, descriptor).
    fn leaves<E: PgtableEnv + ?Sized>(env: &E, root: PhysAddr) -> Vec<(usize, usize, u64)> {
        fn rec<E: PgtableEnv + ?Sized>(
            env: &E,
            t: PhysAddr,
            level: usize,
            va: usize,
            out: &mut Vec<(usize, usize, u64)>,
        ) {
            for i in 0..PTRS_PER_TABLE {
                let e = read_entry(entry_ptr(env, t, level, i));
                let d = Descriptor(e);
                let va = va | i << (PGDIR_SHIFT_ - 9 * level);
                if d.is_table(level) {
                    rec(env, d.table_addr(), level + 1, va, out);
                } else if d.is_leaf(level) {
                    out.push((va, level, e));
                }
            }
        }
        const PGDIR_SHIFT_: usize = 39;
        let mut out = Vec::new();
        rec(env, root, 0, 0xffff << 48, &mut out);
        out
    }

    fn map_plan<E: PgtableEnv + ?Sized>(pt: &mut PageTable, env: &mut E, chunks: &[(usize, usize, PageProt)]) {
        for &(s, e, prot) in chunks {
            pt.map_range(env, lin(s), PhysAddr(s), e - s, prot, true).unwrap();
        }
    }

    #[test]
    fn linear_map_alias_gets_its_own_blocks_and_pages() {
        let (mut env, mut pt) = setup();
        let chunks = plan(&[RAM], &[NOMAP], ALIAS);
        map_plan(&mut pt, &mut env, &chunks);
        // Built at the right granularity from the start: nothing replaced,
        // so no TLB maintenance at all, one sync per map call.
        assert!(env.events.iter().all(|e| *e == Event::Sync), "{:?}", env.events);
        let all = leaves(&env, pt.root());
        let (ks, ke) = (lin(ALIAS.0).0, lin(ALIAS.1).0);
        let (ns, ne) = (lin(0x4800_0000).0, lin(0x4800_2000).0);
        let mut sizes = BTreeMap::new();
        for &(va, level, desc) in &all {
            let end = va + level_size(level);
            let prot = Descriptor(desc).prot().unwrap();
            // No leaf straddles an edge of the alias or covers no-map memory.
            assert!(
                end <= ks || va >= ke || (va >= ks && end <= ke),
                "leaf {va:#x} L{level} straddles the alias"
            );
            assert!(end <= ns || va >= ne, "leaf {va:#x} L{level} covers no-map memory");
            let in_alias = va >= ks && end <= ke;
            assert_eq!(
                prot,
                if in_alias { PAGE_KERNEL_RO } else { PAGE_KERNEL },
                "leaf {va:#x}"
            );
            assert!(!prot.executable);
            *sizes.entry((level, in_alias)).or_insert(0usize) += 1;
        }
        // Largest blocks alignment allows: [1 GiB, 2 GiB) of RAM's first GiB
        // holds the image and the hole, the other three GiB are 1 GiB blocks.
        assert_eq!(sizes.get(&(1, false)), Some(&3));
        assert_eq!(sizes.get(&(2, true)), Some(&4)); // 0x4020_0000..0x40a0_0000
        assert_eq!(sizes.get(&(3, true)), Some(&0x35)); // 0x40a0_0000..0x40a3_5000
        // RW: one 2 MiB block below the image; pages to the next 2 MiB
        // boundary after it and around the hole; 2 MiB blocks elsewhere.
        assert_eq!(
            sizes.get(&(3, false)),
            Some(&((0x40c0_0000 - 0x40a3_5000) / PAGE_SIZE + 512 - 2))
        );
        assert_eq!(
            sizes.get(&(2, false)),
            Some(&(1 + (0x4800_0000 - 0x40c0_0000) / PMD_SIZE + (0x8000_0000 - 0x4820_0000) / PMD_SIZE))
        );
        assert_eq!(pt.translate(&env, lin(0x4800_0800)), None);
        assert_eq!(pt.translate(&env, lin(0x4800_1fff)), None);
        assert_eq!(pt.translate(&env, lin(0x4800_2000)), Some(PhysAddr(0x4800_2000)));
        assert_eq!(pt.translate(&env, lin(0x47ff_f000)), Some(PhysAddr(0x47ff_f000)));
        pt.destroy(&mut env);
    }

    // -- Tables reached through one window per level (the fixmap) -----------

    /// Tables reached as paging_init reaches them before swapper_pg_dir is
    /// live: through one window per level (FIX_PGD..FIX_PTE), new tables
    /// zeroed through the level-3 one. A window is a copy written back when
    /// it moves, so any pointer used after its window moved reads or writes
    /// the wrong table, and the tree comes out different.
    struct WindowEnv {
        inner: TrackingEnv,
        win: Vec<core::cell::UnsafeCell<[u64; PTRS_PER_TABLE]>>,
        cur: [Cell<Option<usize>>; 4],
        moves: Cell<usize>,
    }

    impl WindowEnv {
        fn new() -> Self {
            Self {
                inner: TrackingEnv::new(),
                win: (0..4)
                    .map(|_| core::cell::UnsafeCell::new([0xdead_u64; PTRS_PER_TABLE]))
                    .collect(),
                cur: Default::default(),
                moves: Cell::new(0),
            }
        }

        /// Write window `level` back to its page and close it.
        fn close(&self, level: usize) {
            if let Some(old) = self.cur[level].take() {
                unsafe { core::ptr::copy_nonoverlapping(self.win[level].get() as *const u64, old as *mut u64, 512) };
                unsafe { core::ptr::write_bytes(self.win[level].get() as *mut u64, 0xee, 512) };
            }
        }

        fn open(&self, level: usize, pa: usize) -> *mut u64 {
            let w = self.win[level].get() as *mut u64;
            if self.cur[level].get() != Some(pa) {
                self.close(level);
                // Real fixmap slots alias coherently; copies cannot, so the
                // page leaves its other window (e.g. FIX_PTE after zeroing).
                for l in 0..4 {
                    if self.cur[l].get() == Some(pa) {
                        self.close(l);
                    }
                }
                unsafe { core::ptr::copy_nonoverlapping(pa as *const u64, w, 512) };
                self.cur[level].set(Some(pa));
                self.moves.set(self.moves.get() + 1);
            }
            w
        }

        fn close_all(&self) {
            (0..4).for_each(|l| self.close(l));
        }
    }

    unsafe impl PgtableEnv for WindowEnv {
        fn alloc_table(&mut self) -> Option<PhysAddr> {
            let pa = self.inner.alloc_table()?;
            // Dirty it, so only the zeroing through the window makes it a table.
            unsafe { core::ptr::write_bytes(pa.0 as *mut u8, 0x5a, PAGE_SIZE) };
            let w = self.open(3, pa.0);
            unsafe { core::ptr::write_bytes(w, 0, 512) };
            Some(pa)
        }
        fn free_table(&mut self, pa: PhysAddr) {
            self.close(3);
            for l in 0..4 {
                if self.cur[l].get() == Some(pa.0) {
                    self.close(l);
                }
            }
            self.inner.free_table(pa)
        }
        fn table_ptr(&self, pa: PhysAddr, level: usize) -> *mut u64 {
            self.inner.table_ptr(pa, level); // checks it is a live table
            self.open(level, pa.0)
        }
        fn sync_new_entries(&mut self) {
            self.inner.sync_new_entries()
        }
        fn flush_tlb_kernel_range(&mut self, start: VirtAddr, end: VirtAddr) {
            self.inner.flush_tlb_kernel_range(start, end)
        }
        fn flush_tlb_pgtable(&mut self, start: VirtAddr, end: VirtAddr) {
            self.inner.flush_tlb_pgtable(start, end)
        }
    }

    /// The same operations, tables reached directly and through per-level
    /// windows: the trees must come out identical (the generic code keeps at
    /// most one table per level in hand, as the fixmap requires).
    #[test]
    fn tables_through_per_level_windows_give_the_same_tree() {
        fn run<E: PgtableEnv>(env: &mut E, fail_after: &mut dyn FnMut(&mut E, Option<usize>)) -> PageTable {
            let mut pt = PageTable::new(env).unwrap();
            let banks = [
                MemRegion::new(0x4000_0000, 0x1_0000_0000),
                MemRegion::new(0x2_0000_0000, 0x4020_3000),
            ];
            map_plan(&mut pt, env, &plan(&banks, &[NOMAP], ALIAS));
            // vmalloc-style pages, a replace, an unmap with holes.
            let pages: Vec<PhysAddr> = (0..700).map(|i| PhysAddr(0x9000_0000 + i * 3 * PAGE_SIZE)).collect();
            pt.map_pages(env, VirtAddr(VMALLOC_START + 0x1f_f000), &pages, PAGE_KERNEL)
                .unwrap();
            let va = VirtAddr(VMALLOC_START + 0x1f_f000 + 5 * PAGE_SIZE);
            pt.map_range_replace(env, va, PhysAddr(0x1234_5000), 3 * PAGE_SIZE, PAGE_KERNEL_RO, false)
                .unwrap();
            pt.unmap_range_allow_holes(env, VirtAddr(VMALLOC_START + 0x20_0000), 0x10_0000)
                .unwrap();
            // Failed maps that allocated tables at every level: rolled back.
            for n in 0..4 {
                fail_after(env, Some(n));
                let far = VirtAddr(VMALLOC_START + (7 << 39) + 0x1234_5000);
                let r = pt.map_range(env, far, PhysAddr(0x5000_0000), 0x40_0000, PAGE_KERNEL, true);
                assert!(matches!(r, Err(PgtableError::NoMemory { .. })), "{r:?}");
            }
            fail_after(env, None);
            pt
        }
        let mut direct = TrackingEnv::new();
        let a = run(&mut direct, &mut |e, n| e.fail_after = n);
        let mut windows = WindowEnv::new();
        let b = run(&mut windows, &mut |e, n| e.inner.fail_after = n);
        windows.close_all();
        assert!(
            windows.moves.get() > 20,
            "the windows hardly moved: {}",
            windows.moves.get()
        );
        let (la, lb) = (leaves(&direct, a.root()), leaves(&windows.inner, b.root()));
        let first = la.iter().zip(&lb).position(|(x, y)| x != y);
        assert!(
            la == lb,
            "trees differ: {} vs {} leaves, first difference at {:?}",
            la.len(),
            lb.len(),
            first.map(|i| (la[i], lb[i]))
        );
        assert_eq!(direct.live.len(), windows.inner.live.len());
        assert_eq!(a.count_tables(&direct), b.count_tables(&windows.inner));
        a.destroy(&mut direct);
        b.destroy(&mut windows.inner);
        assert!(direct.live.is_empty() && windows.inner.live.is_empty());
    }
}
