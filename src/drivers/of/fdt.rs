// SPDX-License-Identifier: GPL-2.0-only
//! The device-tree layer: turns the flattened device tree (FDT/DTB) that QEMU
//! or a boot loader hands us in x0 into an owned [`MachineInfo`] summary.
//!
//! Where it sits in the boot flow: `setup_arch` calls [`parse_at`] on the
//! physical address from x0 right after the early console and the boot heap
//! are up, *before* `paging_init`. The summary owns its data (`Vec`s and
//! `String`s from the boot heap, which is initialised before `setup_arch`),
//! because the DTB's memory may later be unmapped or handed to the page
//! allocator. It then feeds memblock (RAM banks and reservations), the
//! console (PL011), power-off (PSCI) and the boot arguments.
//!
//! The tree walk itself is done by the `fdt` crate (0.1.5). That crate trusts
//! its input and panics (or indexes out of bounds) on malformed blobs, and a
//! panic this early is fatal, so [`parse`] first checks the header, the
//! memory-reservation block and the whole structure block itself and only
//! hands the crate a blob it can walk. Every failure is a [`DtError`] whose
//! `Display` is one sentence with the offending values.
//!
//! FDT_NOP is legal anywhere a token may stand (libfdt leaves it behind when
//! QEMU, U-Boot or firmware delete a node or property in place), but the
//! crate only skips it in some positions. So when the validator counted any,
//! [`parse`] hands the crate a compacted copy without them (header offsets
//! and sizes fixed up); a blob without NOPs is parsed in place, uncopied.
//!
//! Limits are Linux's: `/chosen/bootargs` is cut to `COMMAND_LINE_SIZE - 1`
//! bytes (with [`MachineInfo::bootargs_truncated`] saying so, for the boot
//! log), and there is no fixed cap on banks, reservations or string lengths.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use fdt::Fdt;
use fdt::node::FdtNode;

/// arm64's COMMAND_LINE_SIZE (arch/arm64/include/uapi/asm/setup.h): the
/// kernel keeps at most this many bytes of `bootargs`, including the NUL.
pub const COMMAND_LINE_SIZE: usize = 2048;

/// The FDT magic, stored big-endian in the first four bytes.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the version-17 header.
pub const FDT_HEADER_SIZE: usize = 40;
/// Largest `totalsize` we believe. Linux caps arm64 DTBs at 2 MiB; QEMU's
/// are 1 MiB. Anything near this limit is garbage, not a device tree.
pub const MAX_DTB_SIZE: usize = 64 << 20;
/// Deepest node nesting accepted (the `fdt` crate keeps a 64-entry stack).
pub const MAX_DEPTH: usize = 32;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

// ---------------------------------------------------------------------------
// Public summary types
// ---------------------------------------------------------------------------

// The physical ranges are memblock's types: the parser produces what
// memblock consumes (Linux: early_init_dt_add_memory_arch -> memblock_add).
pub use crate::mm::memblock::{MemBank, Region as MemRegion};

/// Where a reservation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveKind {
    /// An entry of the header's memory-reservation block (`/memreserve/`).
    MemReserve,
    /// A child of `/reserved-memory` with a static `reg`; `no_map` means it
    /// must not even appear in the linear map.
    ReservedMemory { no_map: bool },
}

/// A physical range that must not be handed to the page allocator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub region: MemRegion,
    pub kind: ReserveKind,
    name: String,
}

impl Reserved {
    /// Node name for `/reserved-memory` children, `""` for `/memreserve/`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// How PSCI calls reach the firmware: `hvc` when we run at EL1 under a
/// hypervisor (QEMU's default), `smc` when EL2 is ours (`virtualization=on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

/// The first `arm,pl011` UART in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pl011 {
    pub base: u64,
    pub size: u64,
    /// GIC SPI number (cell 1 of a 3-cell `interrupts`); the GIC INTID is
    /// this plus 32.
    pub irq: Option<u32>,
}

/// How a secondary CPU is started (its `enable-method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI CPU_ON through the `/psci` conduit.
    Psci,
    /// The CPU spins in firmware until its entry point is written at
    /// `cpu-release-addr` (Documentation/arm64/booting.rst).
    SpinTable { release_addr: u64 },
    /// No `enable-method`, or one this kernel does not know.
    None,
}

/// One available `/cpus/cpu@N` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuNode {
    /// MPIDR_EL1's affinity fields (Aff3 in bits 39:32), from `reg`.
    pub mpidr: u64,
    pub enable_method: EnableMethod,
    /// `numa-node-id` (Documentation/devicetree/bindings/numa.txt), if the
    /// node has one; absent means node 0, as Linux's of_node_to_nid.
    pub numa_node: Option<u32>,
}

/// Which GIC architecture the interrupt controller implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// `arm,cortex-a15-gic` (and its GICv2 kin): distributor + memory-mapped
    /// CPU interface.
    V2,
    /// `arm,gic-v3`: distributor + redistributors, CPU interface in system
    /// registers.
    V3,
}

/// The interrupt controller node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    pub version: GicVersion,
    /// GICD (base, size).
    pub dist: (u64, u64),
    /// GICv2: the CPU interface (GICC). GICv3: unused (0, 0).
    pub cpu_if: (u64, u64),
    /// GICv3: the redistributor regions (`#redistributor-regions` of them).
    pub redist: Vec<(u64, u64)>,
    /// GICv3 `redistributor-stride`, if the DT overrides the architected one.
    pub redist_stride: Option<u64>,
}

/// Everything the kernel needs from the device tree, owned (no borrow of the
/// DTB).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MachineInfo {
    model: String,
    bootargs: String,
    /// Length of `/chosen/bootargs` when it was cut to fit COMMAND_LINE_SIZE.
    bootargs_truncated: Option<usize>,
    stdout_path: String,
    banks: Vec<MemBank>,
    reserved: Vec<Reserved>,
    pl011: Option<Pl011>,
    psci: Option<PsciConduit>,
    cpu_count: usize,
    cpus: Vec<CpuNode>,
    gic: Option<Gic>,
    timer_frequency: Option<u32>,
    dtb_size: usize,
    /// FDT_NOP tokens the structure block held (removed before the walk).
    nop_count: usize,
}

impl MachineInfo {
    /// Root `model` (QEMU: `linux,dummy-virt`); empty if absent.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// RAM banks sorted by base address (QEMU lists NUMA memory nodes in
    /// reverse order; consumers want them ascending). As the tree says:
    /// unaligned, overlapping or touching banks are left to memblock.
    pub fn memory(&self) -> &[MemBank] {
        &self.banks
    }

    /// `/memreserve/` entries first, then `/reserved-memory` regions, in
    /// tree order.
    pub fn reserved(&self) -> &[Reserved] {
        &self.reserved
    }

    /// `/chosen/bootargs` (QEMU `-append`), at most COMMAND_LINE_SIZE - 1
    /// bytes; empty if absent.
    pub fn bootargs(&self) -> &str {
        &self.bootargs
    }

    /// The full length of `/chosen/bootargs` if [`Self::bootargs`] had to be
    /// cut (Linux truncates silently; the boot log should say so).
    pub fn bootargs_truncated(&self) -> Option<usize> {
        self.bootargs_truncated
    }

    /// `/chosen/stdout-path` verbatim (may carry `:options`); empty if absent.
    pub fn stdout_path(&self) -> &str {
        &self.stdout_path
    }

    pub fn pl011(&self) -> Option<Pl011> {
        self.pl011
    }

    pub fn psci(&self) -> Option<PsciConduit> {
        self.psci
    }

    /// Available `/cpus` children with `device_type = "cpu"`.
    pub fn cpu_count(&self) -> usize {
        self.cpu_count
    }

    /// The available CPUs with a `reg`, in tree order (logical order).
    pub fn cpus(&self) -> &[CpuNode] {
        &self.cpus
    }

    /// The first available GICv2/GICv3 node.
    pub fn gic(&self) -> Option<&Gic> {
        self.gic.as_ref()
    }

    /// The architected timer's `clock-frequency`, if the tree overrides
    /// CNTFRQ_EL0 (QEMU does not).
    pub fn timer_frequency(&self) -> Option<u32> {
        self.timer_frequency
    }

    /// `totalsize` from the header: how many bytes to reserve for the DTB.
    pub fn dtb_size(&self) -> usize {
        self.dtb_size
    }

    /// How many FDT_NOP tokens the structure block held.
    pub fn nop_count(&self) -> usize {
        self.nop_count
    }

    /// Sum of all bank sizes.
    pub fn total_memory(&self) -> u64 {
        self.memory()
            .iter()
            .fold(0u64, |acc, b| acc.saturating_add(b.region.size))
    }

    fn push_reserved(&mut self, region: MemRegion, kind: ReserveKind, name: &str) {
        self.reserved.push(Reserved {
            region,
            kind,
            name: String::from(name),
        });
    }

    /// Keep at most COMMAND_LINE_SIZE - 1 bytes, cut on a char boundary.
    fn set_bootargs(&mut self, s: &str) {
        let mut cut = s.len().min(COMMAND_LINE_SIZE - 1);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.bootargs = String::from(&s[..cut]);
        self.bootargs_truncated = (cut < s.len()).then_some(s.len());
    }
}

impl fmt::Debug for MachineInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineInfo")
            .field("model", &self.model())
            .field("memory", &self.memory())
            .field("reserved", &self.reserved())
            .field("bootargs", &self.bootargs())
            .field("bootargs_truncated", &self.bootargs_truncated)
            .field("stdout_path", &self.stdout_path())
            .field("pl011", &self.pl011)
            .field("psci", &self.psci)
            .field("cpu_count", &self.cpu_count)
            .field("cpus", &self.cpus)
            .field("gic", &self.gic)
            .field("timer_frequency", &self.timer_frequency)
            .field("dtb_size", &self.dtb_size)
            .field("nop_count", &self.nop_count)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A node name copied into an error (errors outlive the DTB borrow).
/// Names longer than the buffer are cut and end in `...`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeName {
    buf: [u8; 48],
    len: u8,
}

impl NodeName {
    fn from(name: &str) -> Self {
        let mut n = NodeName { buf: [0; 48], len: 0 };
        let name = if name.is_empty() { "/" } else { name };
        if name.len() <= n.buf.len() {
            n.buf[..name.len()].copy_from_slice(name.as_bytes());
            n.len = name.len() as u8;
        } else {
            // Cut on a char boundary so the result stays valid UTF-8.
            let mut cut = n.buf.len() - 3;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            n.buf[..cut].copy_from_slice(&name.as_bytes()[..cut]);
            n.buf[cut..cut + 3].copy_from_slice(b"...");
            n.len = (cut + 3) as u8;
        }
        n
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// What is wrong inside the structure or strings block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructProblem {
    /// The block ends before FDT_END.
    UnexpectedEnd,
    UnknownToken(u32),
    NameUnterminated,
    NameNotUtf8,
    RootNameNotEmpty,
    SecondRoot,
    TooDeep {
        limit: usize,
    },
    PropertyOutsideNode,
    PropertyAfterChild,
    ValueOverrun {
        len: u32,
    },
    NameOffsetOutOfRange {
        nameoff: u32,
        strings_size: u32,
    },
    PropertyNameUnterminated {
        nameoff: u32,
    },
    PropertyNameNotUtf8 {
        nameoff: u32,
    },
    CellsLength {
        len: u32,
    },
    UnbalancedEndNode,
    EndInsideNode {
        depth: usize,
    },
}

impl fmt::Display for StructProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnexpectedEnd => write!(f, "the structure block ends before FDT_END"),
            Self::UnknownToken(t) => write!(f, "unknown token {:#x}", t),
            Self::NameUnterminated => write!(f, "a node name without a NUL terminator"),
            Self::NameNotUtf8 => write!(f, "a node name that is not UTF-8"),
            Self::RootNameNotEmpty => write!(f, "a root node whose name is not empty"),
            Self::SecondRoot => write!(f, "a second top-level node after the root"),
            Self::TooDeep { limit } => write!(f, "nodes nested deeper than {} levels", limit),
            Self::PropertyOutsideNode => write!(f, "a property outside any node"),
            Self::PropertyAfterChild => write!(f, "a property after a child node"),
            Self::ValueOverrun { len } => {
                write!(
                    f,
                    "a property value of {} bytes that runs past the end of the block",
                    len
                )
            }
            Self::NameOffsetOutOfRange { nameoff, strings_size } => write!(
                f,
                "a property name offset {:#x} outside the {}-byte strings block",
                nameoff, strings_size
            ),
            Self::PropertyNameUnterminated { nameoff } => {
                write!(
                    f,
                    "a property name at strings offset {:#x} without a NUL terminator",
                    nameoff
                )
            }
            Self::PropertyNameNotUtf8 { nameoff } => {
                write!(f, "a property name at strings offset {:#x} that is not UTF-8", nameoff)
            }
            Self::CellsLength { len } => {
                write!(f, "a #address-cells/#size-cells property of {} bytes instead of 4", len)
            }
            Self::UnbalancedEndNode => {
                write!(f, "an FDT_END_NODE without a matching FDT_BEGIN_NODE")
            }
            Self::EndInsideNode { depth } => {
                write!(f, "FDT_END while {} node(s) are still open", depth)
            }
        }
    }
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DtError {
    /// `parse_at` was given address 0.
    NullPointer,
    /// The buffer cannot even hold the header.
    TooShort {
        len: usize,
    },
    /// Not an FDT. `addr` is the address the blob was read from, if known.
    BadMagic {
        found: u32,
        addr: Option<u64>,
    },
    TotalSizeTooSmall {
        totalsize: u32,
    },
    TotalSizeTooLarge {
        totalsize: u32,
    },
    /// The header claims more bytes than the buffer holds.
    Truncated {
        totalsize: u32,
        available: usize,
    },
    UnsupportedVersion {
        version: u32,
        last_comp_version: u32,
    },
    /// A block named in the header lies outside `[40, totalsize)`.
    BlockOutOfBounds {
        block: &'static str,
        offset: u32,
        size: u32,
        totalsize: u32,
    },
    /// The memory-reservation block has no (0, 0) terminator inside the blob.
    RsvmapUnterminated {
        offset: u32,
        totalsize: u32,
    },
    /// The structure block is malformed at byte `offset` of the blob.
    Corrupt {
        offset: usize,
        problem: StructProblem,
    },
    /// The `fdt` crate refused the (already checked) blob.
    Fdt(fdt::FdtError),
    NoRootNode,
    /// No node with `device_type = "memory"`.
    NoMemoryNode,
    /// A memory node without `reg`.
    NoReg {
        node: NodeName,
    },
    /// Bank `bank` (0-based `reg` entry) of memory node `node` has size 0.
    ZeroSizedBank {
        node: NodeName,
        bank: usize,
    },
    /// `base + size` wraps past 2^64.
    RegionOverflow {
        node: NodeName,
        index: usize,
        base: u64,
        size: u64,
    },
    /// `reg` length is not a whole number of (address, size) entries.
    BadReg {
        node: NodeName,
        len: usize,
        entry_size: usize,
    },
    /// `#address-cells`/`#size-cells` other than 1 or 2 for a node we decode.
    UnsupportedCells {
        node: NodeName,
        address_cells: u32,
        size_cells: u32,
    },
    NotUtf8 {
        node: NodeName,
        property: &'static str,
    },
    BadPropertyLength {
        node: NodeName,
        property: &'static str,
        len: usize,
        expected: usize,
    },
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NullPointer => write!(f, "the device tree address is 0 (the boot loader passed no DTB in x0)"),
            Self::TooShort { len } => write!(
                f,
                "the device tree buffer is {} bytes, shorter than the {}-byte FDT header",
                len, FDT_HEADER_SIZE
            ),
            Self::BadMagic {
                found,
                addr: Some(addr),
            } => write!(
                f,
                "no device tree at {:#x}: found magic {:#010x} instead of {:#010x}",
                addr, found, FDT_MAGIC
            ),
            Self::BadMagic { found, addr: None } => {
                write!(
                    f,
                    "not a device tree: found magic {:#010x} instead of {:#010x}",
                    found, FDT_MAGIC
                )
            }
            Self::TotalSizeTooSmall { totalsize } => write!(
                f,
                "the device tree header's totalsize {} is smaller than the {}-byte header itself",
                totalsize, FDT_HEADER_SIZE
            ),
            Self::TotalSizeTooLarge { totalsize } => write!(
                f,
                "the device tree header's totalsize {:#x} is larger than the {} MiB limit",
                totalsize,
                MAX_DTB_SIZE >> 20
            ),
            Self::Truncated { totalsize, available } => write!(
                f,
                "the device tree is truncated: the header says {} bytes but only {} are available",
                totalsize, available
            ),
            Self::UnsupportedVersion {
                version,
                last_comp_version,
            } => write!(
                f,
                "unsupported device tree version {} (last compatible version {}); need version >= 16 and last compatible <= 17",
                version, last_comp_version
            ),
            Self::BlockOutOfBounds {
                block,
                offset,
                size,
                totalsize,
            } => write!(
                f,
                "the device tree {} block at offset {:#x} of size {:#x} lies outside the header-to-totalsize range [0x28, {:#x})",
                block, offset, size, totalsize
            ),
            Self::RsvmapUnterminated { offset, totalsize } => write!(
                f,
                "the device tree memory-reservation block at offset {:#x} has no terminating entry before totalsize {:#x}",
                offset, totalsize
            ),
            Self::Corrupt { offset, problem } => {
                write!(
                    f,
                    "the device tree structure is corrupt at offset {:#x}: {}",
                    offset, problem
                )
            }
            Self::Fdt(e) => write!(f, "the fdt crate rejected the device tree: {}", e),
            Self::NoRootNode => write!(f, "the device tree has no root node"),
            Self::NoMemoryNode => write!(
                f,
                "the device tree has no memory node (device_type = \"memory\"), so there is no RAM to use"
            ),
            Self::NoReg { node } => write!(f, "memory node {} has no reg property", node),
            Self::ZeroSizedBank { node, bank } => {
                write!(f, "memory node {} has a zero-sized bank (reg entry {})", node, bank)
            }
            Self::RegionOverflow {
                node,
                index,
                base,
                size,
            } => write!(
                f,
                "node {} reg entry {} (base {:#x}, size {:#x}) runs past the end of the 64-bit address space",
                node, index, base, size
            ),
            Self::BadReg { node, len, entry_size } => write!(
                f,
                "node {} has a {}-byte reg property, not a multiple of its {}-byte (address, size) entry",
                node, len, entry_size
            ),
            Self::UnsupportedCells {
                node,
                address_cells,
                size_cells,
            } => write!(
                f,
                "node {} uses #address-cells = {} and #size-cells = {}; only 1 or 2 are supported",
                node, address_cells, size_cells
            ),
            Self::NotUtf8 { node, property } => {
                write!(f, "property {} of node {} is not a UTF-8 string", property, node)
            }
            Self::BadPropertyLength {
                node,
                property,
                len,
                expected,
            } => write!(
                f,
                "property {} of node {} is {} bytes long instead of {}",
                property, node, len, expected
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Parse a DTB held in `blob` (which may be longer than the DTB).
///
/// Never panics, whatever the bytes.
pub fn parse(blob: &[u8]) -> Result<MachineInfo, DtError> {
    parse_checked(blob, None)
}

/// Parse the DTB at `ptr`, e.g. the physical address the boot loader left
/// in x0 (with the MMU off, or identity-mapped).
///
/// Only the 8 bytes of magic and totalsize are read before they are checked;
/// then exactly `totalsize` bytes are.
///
/// # Safety
///
/// `ptr` must be null (rejected with [`DtError::NullPointer`]) or readable
/// for 8 bytes; if those hold the FDT magic and a plausible `totalsize`
/// (40 bytes to 64 MiB), the `totalsize` bytes from `ptr` must be readable
/// and must not be written while this function runs.
pub unsafe fn parse_at(ptr: *const u8) -> Result<MachineInfo, DtError> {
    if ptr.is_null() {
        return Err(DtError::NullPointer);
    }
    let addr = ptr as usize as u64;
    let mut head = [0u8; 8];
    // SAFETY: the caller guarantees 8 readable bytes at `ptr`.
    unsafe { core::ptr::copy_nonoverlapping(ptr, head.as_mut_ptr(), head.len()) };
    let magic = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let totalsize = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic {
            found: magic,
            addr: Some(addr),
        });
    }
    check_totalsize(totalsize)?;
    // SAFETY: magic and totalsize are plausible, so the caller guarantees
    // `totalsize` readable, unchanging bytes.
    let blob = unsafe { core::slice::from_raw_parts(ptr, totalsize as usize) };
    parse_checked(blob, Some(addr))
}

fn parse_checked(blob: &[u8], addr: Option<u64>) -> Result<MachineInfo, DtError> {
    let mut hdr = check_header(blob, addr)?;
    let blob = &blob[..hdr.totalsize as usize];
    let rsvmap_len = check_rsvmap(blob, &hdr)?;
    let walk = check_structure(blob, &hdr)?;
    let mut info = if walk.nops == 0 && hdr.version >= 17 {
        extract(&Fdt::new(blob).map_err(DtError::Fdt)?)?
    } else {
        // A version-16 header has no size_dt_struct: the walk found the end.
        hdr.size_dt_struct = walk.struct_len as u32;
        let packed = compact(blob, &hdr, rsvmap_len);
        extract(&Fdt::new(&packed).map_err(DtError::Fdt)?)?
    };
    info.dtb_size = hdr.totalsize as usize;
    info.nop_count = walk.nops;
    Ok(info)
}

/// A copy of a validated blob that fdt 0.1.5 can walk: header, reservation
/// block, structure block without its FDT_NOP tokens, strings block, packed
/// in that order (libfdt's `fdt_pack` layout) under a version-17 header
/// with the offsets and sizes fixed up. Only the structure block is
/// re-walked, token by token, because a NOP's bit pattern can also occur
/// inside names and property values.
fn compact(blob: &[u8], hdr: &Header, rsvmap_len: usize) -> Vec<u8> {
    let sect = |off: u32, len: usize| blob.get(off as usize..off as usize + len).unwrap_or(&[]);
    let s = sect(hdr.off_dt_struct, hdr.size_dt_struct as usize);
    let strings = sect(hdr.off_dt_strings, hdr.size_dt_strings as usize);
    let rsvmap = sect(hdr.off_mem_rsvmap, rsvmap_len);
    let mut out = Vec::with_capacity(FDT_HEADER_SIZE + rsvmap.len() + s.len() + strings.len());
    out.extend_from_slice(&blob[..FDT_HEADER_SIZE]);
    out.extend_from_slice(rsvmap);
    let off_struct = out.len();
    let mut pos = 0;
    while let Some(tok) = be32(s, pos) {
        // Lengths as check_structure established them; it guarantees the
        // walk stays inside `s` and ends at FDT_END.
        let len = match tok {
            FDT_BEGIN_NODE => {
                let name_len = s[pos + 4..].iter().position(|&c| c == 0).unwrap_or(0);
                (4 + name_len + 1 + 3) & !3
            }
            FDT_PROP => (12 + be32(s, pos + 4).unwrap_or(0) as usize + 3) & !3,
            _ => 4,
        };
        let next = (pos + len).min(s.len());
        if tok != FDT_NOP {
            out.extend_from_slice(&s[pos..next]);
        }
        if tok == FDT_END {
            break;
        }
        pos = next;
    }
    let size_struct = out.len() - off_struct;
    let off_strings = out.len();
    out.extend_from_slice(strings);
    let total = out.len();
    for (field, v) in [
        (1, total),
        (2, off_struct),
        (3, off_strings),
        (4, FDT_HEADER_SIZE),
        (5, 17),
        (8, strings.len()),
        (9, size_struct),
    ] {
        out[4 * field..4 * field + 4].copy_from_slice(&(v as u32).to_be_bytes());
    }
    out
}

// ---------------------------------------------------------------------------
// Validation: make sure the fdt crate's unchecked walk cannot go wrong
// ---------------------------------------------------------------------------

struct Header {
    totalsize: u32,
    off_dt_struct: u32,
    off_dt_strings: u32,
    off_mem_rsvmap: u32,
    version: u32,
    size_dt_strings: u32,
    /// For version 16 (no such field): everything up to totalsize, until
    /// the walk finds FDT_END.
    size_dt_struct: u32,
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    let hi = be32(b, off)? as u64;
    let lo = be32(b, off.checked_add(4)?)? as u64;
    Some(hi << 32 | lo)
}

fn check_totalsize(totalsize: u32) -> Result<(), DtError> {
    if (totalsize as usize) < FDT_HEADER_SIZE {
        return Err(DtError::TotalSizeTooSmall { totalsize });
    }
    if totalsize as usize > MAX_DTB_SIZE {
        return Err(DtError::TotalSizeTooLarge { totalsize });
    }
    Ok(())
}

fn check_header(blob: &[u8], addr: Option<u64>) -> Result<Header, DtError> {
    let Some(magic) = be32(blob, 0) else {
        return Err(DtError::TooShort { len: blob.len() });
    };
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic { found: magic, addr });
    }
    if blob.len() < FDT_HEADER_SIZE {
        return Err(DtError::TooShort { len: blob.len() });
    }
    let field = |i: usize| be32(blob, 4 * i).unwrap_or(0);
    let (version, last_comp_version) = (field(5), field(6));
    let mut hdr = Header {
        totalsize: field(1),
        off_dt_struct: field(2),
        off_dt_strings: field(3),
        off_mem_rsvmap: field(4),
        version,
        size_dt_strings: field(8),
        size_dt_struct: field(9),
    };
    check_totalsize(hdr.totalsize)?;
    if hdr.totalsize as usize > blob.len() {
        return Err(DtError::Truncated {
            totalsize: hdr.totalsize,
            available: blob.len(),
        });
    }
    // Version 16 is the first with relative node names (what the crate and
    // the DTSpec grammar expect); 17 added size_dt_struct. A later version
    // is fine as long as it stays readable by a version-17 reader.
    if version < 16 || last_comp_version > 17 {
        return Err(DtError::UnsupportedVersion {
            version,
            last_comp_version,
        });
    }
    if version == 16 {
        hdr.size_dt_struct = hdr.totalsize.saturating_sub(hdr.off_dt_struct);
    }
    for (block, offset, size) in [
        ("structure", hdr.off_dt_struct, hdr.size_dt_struct),
        ("strings", hdr.off_dt_strings, hdr.size_dt_strings),
        ("memory-reservation", hdr.off_mem_rsvmap, 0),
    ] {
        let end = offset as u64 + size as u64;
        if (offset as usize) < FDT_HEADER_SIZE || end > hdr.totalsize as u64 {
            return Err(DtError::BlockOutOfBounds {
                block,
                offset,
                size,
                totalsize: hdr.totalsize,
            });
        }
    }
    Ok(hdr)
}

/// Returns the block's length, terminator included.
fn check_rsvmap(blob: &[u8], hdr: &Header) -> Result<usize, DtError> {
    let mut off = hdr.off_mem_rsvmap as usize;
    loop {
        match (be64(blob, off), be64(blob, off + 8)) {
            (Some(0), Some(0)) => return Ok(off + 16 - hdr.off_mem_rsvmap as usize),
            (Some(_), Some(_)) => off += 16,
            _ => {
                return Err(DtError::RsvmapUnterminated {
                    offset: hdr.off_mem_rsvmap,
                    totalsize: hdr.totalsize,
                });
            }
        }
    }
}

/// What [`check_structure`] learnt about a well-formed structure block.
struct StructWalk {
    nops: usize,
    /// Bytes up to and including FDT_END.
    struct_len: usize,
}

/// A C string starting at `off` in `b`, as the fdt crate reads it: up to the
/// first NUL anywhere in the rest of the block.
fn cstr_at(b: &[u8], off: usize) -> Option<Result<&str, ()>> {
    let rest = b.get(off..)?;
    let nul = rest.iter().position(|&c| c == 0)?;
    Some(core::str::from_utf8(&rest[..nul]).map_err(|_| ()))
}

/// Walk the structure block with the DTSpec grammar
/// `node := BEGIN_NODE name PROP* node* END_NODE`, root name empty, one
/// root, then FDT_END; check every name and value stays inside its block.
/// This is exactly what fdt 0.1.5 assumes without checking. FDT_NOP may
/// stand wherever a token may; they are counted for [`compact`].
fn check_structure(blob: &[u8], hdr: &Header) -> Result<StructWalk, DtError> {
    let base = hdr.off_dt_struct as usize;
    let s = &blob[base..base + hdr.size_dt_struct as usize];
    let strings_off = hdr.off_dt_strings as usize;
    let strings = &blob[strings_off..strings_off + hdr.size_dt_strings as usize];

    let mut pos = 0usize;
    let mut depth = 0usize;
    let mut nops = 0usize;
    let mut root_done = false;
    // Bit d set: the open node at depth d already has a child, so no more
    // properties may follow (the crate's skip logic would assert).
    let mut has_child: u64 = 0;
    let fail = |pos: usize, problem| {
        Err(DtError::Corrupt {
            offset: base + pos,
            problem,
        })
    };

    loop {
        let Some(tok) = be32(s, pos) else {
            return fail(pos, StructProblem::UnexpectedEnd);
        };
        match tok {
            FDT_BEGIN_NODE => {
                if root_done {
                    return fail(pos, StructProblem::SecondRoot);
                }
                let name = match cstr_at(s, pos + 4) {
                    None => return fail(pos, StructProblem::NameUnterminated),
                    Some(Err(())) => return fail(pos, StructProblem::NameNotUtf8),
                    Some(Ok(n)) => n,
                };
                if depth == 0 && !name.is_empty() {
                    return fail(pos, StructProblem::RootNameNotEmpty);
                }
                if depth >= MAX_DEPTH {
                    return fail(pos, StructProblem::TooDeep { limit: MAX_DEPTH });
                }
                if depth > 0 {
                    has_child |= 1 << depth;
                }
                depth += 1;
                has_child &= !(1 << depth);
                pos = (pos + 4 + name.len() + 1 + 3) & !3;
            }
            FDT_PROP => {
                if depth == 0 {
                    return fail(pos, StructProblem::PropertyOutsideNode);
                }
                if has_child & (1 << depth) != 0 {
                    return fail(pos, StructProblem::PropertyAfterChild);
                }
                let (Some(len), Some(nameoff)) = (be32(s, pos + 4), be32(s, pos + 8)) else {
                    return fail(pos, StructProblem::UnexpectedEnd);
                };
                let value_end = pos as u64 + 12 + len as u64;
                if value_end > s.len() as u64 {
                    return fail(pos, StructProblem::ValueOverrun { len });
                }
                if nameoff as usize >= strings.len() {
                    return fail(
                        pos,
                        StructProblem::NameOffsetOutOfRange {
                            nameoff,
                            strings_size: strings.len() as u32,
                        },
                    );
                }
                let name = match cstr_at(strings, nameoff as usize) {
                    None => return fail(pos, StructProblem::PropertyNameUnterminated { nameoff }),
                    Some(Err(())) => return fail(pos, StructProblem::PropertyNameNotUtf8 { nameoff }),
                    Some(Ok(n)) => n,
                };
                // The crate `expect`s four bytes for these wherever it
                // computes cell sizes.
                if (name == "#address-cells" || name == "#size-cells") && len != 4 {
                    return fail(pos, StructProblem::CellsLength { len });
                }
                pos = (value_end as usize + 3) & !3;
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return fail(pos, StructProblem::UnbalancedEndNode);
                }
                depth -= 1;
                root_done = depth == 0;
                pos += 4;
            }
            FDT_END => {
                if depth != 0 {
                    return fail(pos, StructProblem::EndInsideNode { depth });
                }
                if !root_done {
                    return Err(DtError::NoRootNode);
                }
                return Ok(StructWalk {
                    nops,
                    struct_len: pos + 4,
                });
            }
            FDT_NOP => {
                nops += 1;
                pos += 4;
            }
            other => return fail(pos, StructProblem::UnknownToken(other)),
        }
    }
}

// ---------------------------------------------------------------------------
// Extraction (on a validated blob)
// ---------------------------------------------------------------------------

type Node<'b, 'a> = FdtNode<'b, 'a>;

fn extract(fdt: &Fdt<'_>) -> Result<MachineInfo, DtError> {
    let mut info = MachineInfo::default();
    // find_node("/") cannot fall back to alias resolution: the root is
    // validated to exist with an empty name.
    let root = fdt.find_node("/").ok_or(DtError::NoRootNode)?;

    if let Some(model) = prop_str(root, "model")? {
        info.model = String::from(model);
    }

    for (i, r) in fdt.memory_reservations().enumerate() {
        // The crate stops at the (0, 0) terminator; an empty entry reserves
        // nothing.
        if r.size() == 0 {
            continue;
        }
        let (base, size) = (r.address() as usize as u64, r.size() as u64);
        let region = checked_region(base, size, "/memreserve/", i)?;
        info.push_reserved(region, ReserveKind::MemReserve, "");
    }

    let root_cells = cells(root);
    for child in root.children() {
        if !available(child)? {
            continue;
        }
        if prop_str(child, "device_type")? == Some("memory") {
            add_memory_node(&mut info, child, root_cells)?;
        }
        match base_name(child.name) {
            "reserved-memory" => add_reserved_memory(&mut info, child)?,
            "chosen" => {
                if let Some(s) = prop_str(child, "bootargs")? {
                    info.set_bootargs(s);
                }
                if let Some(s) = prop_str(child, "stdout-path")? {
                    info.stdout_path = String::from(s);
                }
            }
            "cpus" => {
                let ccells = cells(child);
                for cpu in child.children() {
                    if available(cpu)? && prop_str(cpu, "device_type")? == Some("cpu") {
                        info.cpu_count += 1;
                        if let Some(c) = cpu_node(cpu, ccells)? {
                            info.cpus.push(c);
                        }
                    }
                }
            }
            _ => {}
        }
        if info.psci.is_none() && has_compatible_prefix(child, "arm,psci") {
            info.psci = match prop_str(child, "method")? {
                Some("hvc") => Some(PsciConduit::Hvc),
                Some("smc") => Some(PsciConduit::Smc),
                _ => None,
            };
        }
        if info.gic.is_none() {
            info.gic = gic_node(child, root_cells)?;
        }
        if info.timer_frequency.is_none()
            && (has_compatible(child, "arm,armv8-timer") || has_compatible(child, "arm,armv7-timer"))
        {
            info.timer_frequency = prop_u32(child, "clock-frequency")?;
        }
    }

    if info.banks.is_empty() {
        return Err(DtError::NoMemoryNode);
    }
    // Stable, so banks at the same base keep tree order.
    info.banks.sort_by_key(|b| b.region.base);

    let root_iparent = prop_u32(root, "interrupt-parent")?;
    info.pl011 = find_pl011(fdt, root, root_iparent, 0)?;
    Ok(info)
}

/// `#address-cells`/`#size-cells` a node gives its children (DTSpec
/// defaults 2 and 1 when absent).
fn cells(node: Node<'_, '_>) -> (usize, usize) {
    let c = node.cell_sizes();
    (c.address_cells, c.size_cells)
}

fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// A string property up to its first NUL.
fn prop_str<'a>(node: Node<'_, 'a>, name: &'static str) -> Result<Option<&'a str>, DtError> {
    let Some(p) = node.property(name) else {
        return Ok(None);
    };
    let end = p.value.iter().position(|&c| c == 0).unwrap_or(p.value.len());
    match core::str::from_utf8(&p.value[..end]) {
        Ok(s) => Ok(Some(s)),
        Err(_) => Err(DtError::NotUtf8 {
            node: NodeName::from(node.name),
            property: name,
        }),
    }
}

fn prop_u32(node: Node<'_, '_>, name: &'static str) -> Result<Option<u32>, DtError> {
    let Some(p) = node.property(name) else {
        return Ok(None);
    };
    match be32(p.value, 0) {
        Some(v) if p.value.len() == 4 => Ok(Some(v)),
        _ => Err(DtError::BadPropertyLength {
            node: NodeName::from(node.name),
            property: name,
            len: p.value.len(),
            expected: 4,
        }),
    }
}

/// DTSpec `status`: absent, "okay" or "ok" means the device is usable.
fn available(node: Node<'_, '_>) -> Result<bool, DtError> {
    Ok(matches!(prop_str(node, "status")?, None | Some("okay") | Some("ok")))
}

fn has_compatible(node: Node<'_, '_>, what: &str) -> bool {
    node.compatible().is_some_and(|c| c.all().any(|s| s == what))
}

fn has_compatible_prefix(node: Node<'_, '_>, prefix: &str) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| s.starts_with(prefix)))
}

fn checked_region(base: u64, size: u64, node: &str, index: usize) -> Result<MemRegion, DtError> {
    match base.checked_add(size) {
        Some(_) => Ok(MemRegion::new(base, size)),
        None => Err(DtError::RegionOverflow {
            node: NodeName::from(node),
            index,
            base,
            size,
        }),
    }
}

/// The `(base, size)` entries of `node`'s `reg`, decoded with the cell
/// sizes of its parent; `None` if it has no `reg`.
fn reg<'a>(node: Node<'_, 'a>, parent_cells: (usize, usize)) -> Result<Option<RegIter<'a>>, DtError> {
    let Some(p) = node.property("reg") else {
        return Ok(None);
    };
    let (ac, sc) = parent_cells;
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) {
        return Err(DtError::UnsupportedCells {
            node: NodeName::from(node.name),
            address_cells: ac as u32,
            size_cells: sc as u32,
        });
    }
    let entry_size = (ac + sc) * 4;
    if p.value.len() % entry_size != 0 {
        return Err(DtError::BadReg {
            node: NodeName::from(node.name),
            len: p.value.len(),
            entry_size,
        });
    }
    Ok(Some(RegIter { data: p.value, ac, sc }))
}

struct RegIter<'a> {
    data: &'a [u8],
    ac: usize,
    sc: usize,
}

impl Iterator for RegIter<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let read = |b: &[u8], cells: usize| {
            if cells == 1 {
                be32(b, 0).map(u64::from)
            } else {
                be64(b, 0)
            }
        };
        let addr = read(self.data, self.ac)?;
        let size = read(self.data.get(self.ac * 4..)?, self.sc)?;
        self.data = self.data.get((self.ac + self.sc) * 4..)?;
        Some((addr, size))
    }
}

fn add_memory_node(info: &mut MachineInfo, node: Node<'_, '_>, root_cells: (usize, usize)) -> Result<(), DtError> {
    let numa_node = prop_u32(node, "numa-node-id")?;
    let Some(entries) = reg(node, root_cells)? else {
        return Err(DtError::NoReg {
            node: NodeName::from(node.name),
        });
    };
    let mut any = false;
    for (i, (base, size)) in entries.enumerate() {
        if size == 0 {
            return Err(DtError::ZeroSizedBank {
                node: NodeName::from(node.name),
                bank: i,
            });
        }
        let region = checked_region(base, size, node.name, i)?;
        info.banks.push(MemBank { region, numa_node });
        any = true;
    }
    if !any {
        // An empty `reg` is as useless as a missing one.
        return Err(DtError::NoReg {
            node: NodeName::from(node.name),
        });
    }
    Ok(())
}

/// Static `/reserved-memory` children. Children with only `size` (placed
/// dynamically by Linux) reserve nothing yet and are skipped.
fn add_reserved_memory(info: &mut MachineInfo, rmem: Node<'_, '_>) -> Result<(), DtError> {
    let rcells = cells(rmem);
    for child in rmem.children() {
        if !available(child)? {
            continue;
        }
        let no_map = child.property("no-map").is_some();
        let Some(entries) = reg(child, rcells)? else {
            continue;
        };
        for (i, (base, size)) in entries.enumerate() {
            if size == 0 {
                continue;
            }
            let region = checked_region(base, size, child.name, i)?;
            info.push_reserved(region, ReserveKind::ReservedMemory { no_map }, child.name);
        }
    }
    Ok(())
}

/// A `/cpus` child: MPIDR from `reg` (`#address-cells` 1 or 2 of `/cpus`,
/// no size cells), and how to start it. None without a usable `reg`.
fn cpu_node(cpu: Node<'_, '_>, (ac, _): (usize, usize)) -> Result<Option<CpuNode>, DtError> {
    let Some(p) = cpu.property("reg") else {
        return Ok(None);
    };
    let mpidr = match (ac, p.value.len()) {
        (1, 4) => be32(p.value, 0).map(u64::from),
        (2, 8) => be64(p.value, 0),
        _ => None,
    };
    let Some(mpidr) = mpidr else {
        return Ok(None);
    };
    let enable_method = match prop_str(cpu, "enable-method")? {
        Some("psci") => EnableMethod::Psci,
        Some("spin-table") => match cpu.property("cpu-release-addr") {
            Some(r) if r.value.len() == 8 => EnableMethod::SpinTable {
                release_addr: be64(r.value, 0).unwrap_or(0),
            },
            Some(r) if r.value.len() == 4 => EnableMethod::SpinTable {
                release_addr: be32(r.value, 0).map_or(0, u64::from),
            },
            _ => EnableMethod::None,
        },
        _ => EnableMethod::None,
    };
    let numa_node = prop_u32(cpu, "numa-node-id")?;
    Ok(Some(CpuNode {
        mpidr,
        enable_method,
        numa_node,
    }))
}

/// A GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`) or GICv3 (`arm,gic-v3`)
/// node at the root: its register regions.
fn gic_node(node: Node<'_, '_>, root_cells: (usize, usize)) -> Result<Option<Gic>, DtError> {
    let version = if has_compatible(node, "arm,gic-v3") {
        GicVersion::V3
    } else if has_compatible(node, "arm,cortex-a15-gic") || has_compatible(node, "arm,gic-400") {
        GicVersion::V2
    } else {
        return Ok(None);
    };
    let Some(regs) = reg(node, root_cells)? else {
        return Ok(None);
    };
    let regs: Vec<(u64, u64)> = regs.collect();
    let Some(&dist) = regs.first() else {
        return Ok(None);
    };
    let gic = match version {
        GicVersion::V2 => Gic {
            version,
            dist,
            cpu_if: match regs.get(1) {
                Some(&c) => c,
                None => return Ok(None),
            },
            redist: Vec::new(),
            redist_stride: None,
        },
        GicVersion::V3 => {
            let n = prop_u32(node, "#redistributor-regions")?.unwrap_or(1) as usize;
            let redist: Vec<(u64, u64)> = regs.iter().skip(1).take(n).copied().collect();
            if redist.is_empty() {
                return Ok(None);
            }
            let redist_stride = match node.property("redistributor-stride") {
                Some(p) if p.value.len() == 8 => be64(p.value, 0),
                Some(p) if p.value.len() == 4 => be32(p.value, 0).map(u64::from),
                _ => None,
            };
            Gic {
                version,
                dist,
                cpu_if: (0, 0),
                redist,
                redist_stride,
            }
        }
    };
    Ok(Some(gic))
}

/// Depth-first search for the first available `arm,pl011`, tracking the
/// inherited `interrupt-parent` (the crate only looks one level up).
/// Recursion depth is bounded by the validator's MAX_DEPTH.
fn find_pl011(
    fdt: &Fdt<'_>,
    parent: Node<'_, '_>,
    iparent: Option<u32>,
    depth: usize,
) -> Result<Option<Pl011>, DtError> {
    if depth > MAX_DEPTH {
        return Ok(None);
    }
    let pcells = cells(parent);
    for node in parent.children() {
        if !available(node)? {
            continue;
        }
        let ip = prop_u32(node, "interrupt-parent")?.or(iparent);
        if has_compatible(node, "arm,pl011") {
            // The address is taken as-is: QEMU puts the UART at the root,
            // where no `ranges` translation applies.
            if let Some((base, size)) = reg(node, pcells)?.and_then(|mut r| r.next()) {
                return Ok(Some(Pl011 {
                    base,
                    size,
                    irq: gic_spi(fdt, node, ip),
                }));
            }
        }
        if let Some(p) = find_pl011(fdt, node, ip, depth + 1)? {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

/// The SPI number of a GIC-style 3-cell specifier `<type number flags>`
/// with type 0 (SPI).
fn gic_spi(fdt: &Fdt<'_>, node: Node<'_, '_>, iparent: Option<u32>) -> Option<u32> {
    let ints = node.property("interrupts")?.value;
    let icells = iparent
        .and_then(|ph| fdt.find_phandle(ph))
        .and_then(|ic| ic.interrupt_cells())
        .unwrap_or(if ints.len() == 12 { 3 } else { 0 });
    if icells != 3 || be32(ints, 0)? != 0 {
        return None;
    }
    be32(ints, 4)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests;
