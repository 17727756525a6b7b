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

/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MemRegion {
    pub base: u64,
    pub size: u64,
}

impl MemRegion {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// Exclusive end. Saturates rather than wraps: regions built by this
    /// crate never overflow, but a hand-made one must not panic here.
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
}

/// Linux's memblock debug format: `[0x0000000040000000-0x000000007fffffff]`
/// with an inclusive end.
impl fmt::Display for MemRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.base.wrapping_add(self.size).wrapping_sub(1);
        write!(f, "[{:#018x}-{:#018x}]", self.base, last)
    }
}

/// One `reg` entry of a `device_type = "memory"` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemBank {
    pub region: MemRegion,
    /// `numa-node-id` of the memory node the bank came from, if it has one.
    pub numa_node: Option<u32>,
}

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
                for cpu in child.children() {
                    if available(cpu)? && prop_str(cpu, "device_type")? == Some("cpu") {
                        info.cpu_count += 1;
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
mod tests {
    //! Host tests: real DTBs dumped by QEMU at test time, exact trees from a
    //! small FDT builder, and malformed/fuzzed blobs that must never panic.

    use super::*;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::string::{String, ToString};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::vec::Vec;

    // ---------------------------------------------------------------- builder

    /// Emits a version-17 FDT: header, memory-reservation block, structure
    /// block, strings block (in that order, like dtc).
    struct Builder {
        st: Vec<u8>,
        strings: Vec<u8>,
        names: Vec<(String, u32)>,
        rsv: Vec<(u64, u64)>,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                st: Vec::new(),
                strings: Vec::new(),
                names: Vec::new(),
                rsv: Vec::new(),
            }
        }
        fn tok(&mut self, t: u32) -> &mut Self {
            self.st.extend_from_slice(&t.to_be_bytes());
            self
        }
        fn pad(&mut self) {
            while !self.st.len().is_multiple_of(4) {
                self.st.push(0);
            }
        }
        fn begin(&mut self, name: &str) -> &mut Self {
            self.tok(FDT_BEGIN_NODE);
            self.st.extend_from_slice(name.as_bytes());
            self.st.push(0);
            self.pad();
            self
        }
        fn end(&mut self) -> &mut Self {
            self.tok(FDT_END_NODE)
        }
        fn name_off(&mut self, name: &str) -> u32 {
            if let Some((_, off)) = self.names.iter().find(|(n, _)| n == name) {
                return *off;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            self.names.push((name.to_string(), off));
            off
        }
        fn prop(&mut self, name: &str, val: &[u8]) -> &mut Self {
            let off = self.name_off(name);
            self.tok(FDT_PROP).tok(val.len() as u32).tok(off);
            self.st.extend_from_slice(val);
            self.pad();
            self
        }
        fn cells(&mut self, name: &str, vals: &[u32]) -> &mut Self {
            let v: Vec<u8> = vals.iter().flat_map(|c| c.to_be_bytes()).collect();
            self.prop(name, &v)
        }
        fn str(&mut self, name: &str, s: &str) -> &mut Self {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            self.prop(name, &v)
        }
        fn strs(&mut self, name: &str, list: &[&str]) -> &mut Self {
            let mut v = Vec::new();
            for s in list {
                v.extend_from_slice(s.as_bytes());
                v.push(0);
            }
            self.prop(name, &v)
        }
        fn flag(&mut self, name: &str) -> &mut Self {
            self.prop(name, &[])
        }
        fn reserve(&mut self, addr: u64, size: u64) -> &mut Self {
            self.rsv.push((addr, size));
            self
        }
        /// The blob, with FDT_END appended to the structure block.
        fn build(&self) -> Vec<u8> {
            let mut st = self.st.clone();
            st.extend_from_slice(&FDT_END.to_be_bytes());
            self.assemble(&st)
        }
        /// The blob with the structure block exactly as emitted.
        fn build_raw(&self) -> Vec<u8> {
            self.assemble(&self.st)
        }
        fn assemble(&self, st: &[u8]) -> Vec<u8> {
            let mut rsv = Vec::new();
            for (a, s) in self.rsv.iter().chain([(0u64, 0u64)].iter()) {
                rsv.extend_from_slice(&a.to_be_bytes());
                rsv.extend_from_slice(&s.to_be_bytes());
            }
            let off_rsv = FDT_HEADER_SIZE;
            let off_struct = off_rsv + rsv.len();
            let off_strings = off_struct + st.len();
            let total = off_strings + self.strings.len();
            let mut out = Vec::with_capacity(total);
            for v in [
                FDT_MAGIC,
                total as u32,
                off_struct as u32,
                off_strings as u32,
                off_rsv as u32,
                17,
                16,
                0,
                self.strings.len() as u32,
                st.len() as u32,
            ] {
                out.extend_from_slice(&v.to_be_bytes());
            }
            out.extend_from_slice(&rsv);
            out.extend_from_slice(st);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    fn set_be32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn get_be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// (base, size) pairs as 2+2 cells.
    fn regs2(list: &[(u64, u64)]) -> Vec<u32> {
        list.iter()
            .flat_map(|&(b, s)| [(b >> 32) as u32, b as u32, (s >> 32) as u32, s as u32])
            .collect()
    }

    /// Root with 2/2 cells and a model, as QEMU's `virt` has.
    fn root(b: &mut Builder) -> &mut Builder {
        b.begin("")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .str("model", "test,board")
    }

    fn memory_node(b: &mut Builder, name: &str, banks: &[(u64, u64)]) {
        b.begin(name)
            .str("device_type", "memory")
            .cells("reg", &regs2(banks))
            .end();
    }

    fn pl011_node(b: &mut Builder) {
        b.begin("pl011@9000000")
            .strs("compatible", &["arm,pl011", "arm,primecell"])
            .cells("reg", &[0, 0x900_0000, 0, 0x1000])
            .cells("interrupts", &[0, 1, 4])
            .end();
    }

    /// A small complete tree: one memory node, chosen, a UART.
    fn simple_blob(banks: &[(u64, u64)]) -> Vec<u8> {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", banks);
        b.begin("chosen")
            .str("bootargs", "console=ttyAMA0")
            .str("stdout-path", "/pl011@9000000")
            .end();
        pl011_node(&mut b);
        b.end();
        b.build()
    }

    fn err_of(blob: &[u8]) -> DtError {
        match parse(blob) {
            Ok(info) => panic!("expected an error, parsed {:?}", info),
            Err(e) => e,
        }
    }

    /// Deterministic xorshift64* so fuzz failures reproduce.
    use crate::lib::rand::XorShift64Star as XorShift;

    // ------------------------------------------------------------------ QEMU

    static DUMP_SEQ: AtomicUsize = AtomicUsize::new(0);

    fn temp_path(tag: &str, ext: &str) -> PathBuf {
        let n = DUMP_SEQ.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("vmkernel-dt-{}-{}-{}.{}", std::process::id(), tag, n, ext))
    }

    /// The project's default QEMU machine (scripts/qemu-defaults, which the
    /// scripts read too), so these tests start QEMU exactly as the boots do.
    fn qemu_defaults() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/qemu-defaults");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {}", path, e));
        let args: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        assert!(!args.is_empty(), "no QEMU arguments in {}", path);
        args
    }

    /// Run `qemu-system-aarch64 <defaults> -machine virt<machine_opts>,dumpdtb=FILE
    /// <args>` and return the dumped DTB.
    fn qemu_dtb(tag: &str, machine_opts: &str, args: &[&str]) -> Vec<u8> {
        let file = temp_path(tag, "dtb");
        let machine = format!("virt{},dumpdtb={}", machine_opts, file.display());
        let out = Command::new("qemu-system-aarch64")
            .args(qemu_defaults())
            .args(["-machine", &machine])
            .args(args)
            .stdin(Stdio::null())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "qemu-system-aarch64 is not installed ({}); install the qemu-system-arm package \
                 (apt-get install qemu-system-arm) to run the device-tree tests",
                e
            ),
            Err(e) => panic!("could not run qemu-system-aarch64: {}", e),
        };
        let data = std::fs::read(&file);
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "qemu-system-aarch64 {:?} failed with {}: {}",
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        data.unwrap_or_else(|e| panic!("QEMU did not write {}: {}", file.display(), e))
    }

    fn qemu_parse(tag: &str, machine_opts: &str, args: &[&str]) -> MachineInfo {
        let dtb = qemu_dtb(tag, machine_opts, args);
        let info = parse(&dtb).unwrap_or_else(|e| panic!("QEMU's own DTB ({:?}) did not parse: {}", args, e));
        assert_eq!(info.dtb_size(), get_be32(&dtb, 4) as usize);
        info
    }

    /// The default machine (1 GiB), dumped once and shared by the fuzzers.
    fn qemu_default() -> &'static [u8] {
        static DTB: OnceLock<Vec<u8>> = OnceLock::new();
        DTB.get_or_init(|| qemu_dtb("default", "", &["-m", "1G"]))
    }

    const QEMU_UART: Pl011 = Pl011 {
        base: 0x900_0000,
        size: 0x1000,
        irq: Some(1),
    };

    fn banks(info: &MachineInfo) -> Vec<(u64, u64, Option<u32>)> {
        info.memory()
            .iter()
            .map(|b| (b.region.base, b.region.size, b.numa_node))
            .collect()
    }

    /// The properties every QEMU `virt` tree has, whatever the options.
    fn assert_virt_common(info: &MachineInfo) {
        assert_eq!(info.model(), "linux,dummy-virt");
        assert_eq!(info.pl011(), Some(QEMU_UART));
        assert_eq!(info.stdout_path(), "/pl011@9000000");
        assert_eq!(info.timer_frequency(), None, "QEMU leaves the frequency to CNTFRQ_EL0");
        assert!(
            info.reserved().is_empty(),
            "QEMU virt has no /memreserve/ or /reserved-memory: {:?}",
            info
        );
    }

    #[test]
    fn qemu_128m() {
        let info = qemu_parse("128m", "", &["-m", "128M"]);
        assert_virt_common(&info);
        assert_eq!(banks(&info), [(0x4000_0000, 0x800_0000, None)]);
        assert_eq!(info.total_memory(), 128 << 20);
        assert_eq!(info.cpu_count(), 1);
        assert_eq!(info.psci(), Some(PsciConduit::Hvc));
        assert_eq!(info.bootargs(), "");
    }

    #[test]
    fn qemu_1g() {
        let info = parse(qemu_default()).unwrap();
        assert_virt_common(&info);
        assert_eq!(banks(&info), [(0x4000_0000, 0x4000_0000, None)]);
        assert_eq!(info.total_memory(), 1 << 30);
        assert_eq!(info.dtb_size(), get_be32(qemu_default(), 4) as usize);
    }

    #[test]
    fn qemu_4g_bank_crosses_4gib() {
        let info = qemu_parse("4g", "", &["-m", "4G"]);
        assert_virt_common(&info);
        assert_eq!(banks(&info), [(0x4000_0000, 0x1_0000_0000, None)]);
        assert_eq!(info.memory()[0].region.end(), 0x1_4000_0000);
        assert_eq!(info.total_memory(), 4 << 30);
    }

    #[test]
    fn qemu_smp_cpu_count() {
        for n in [2usize, 4] {
            let smp = n.to_string();
            let info = qemu_parse("smp", "", &["-m", "256M", "-smp", &smp]);
            assert_virt_common(&info);
            assert_eq!(info.cpu_count(), n, "-smp {}", n);
        }
    }

    #[test]
    fn qemu_two_numa_nodes() {
        let info = qemu_parse(
            "numa",
            "",
            &[
                "-smp",
                "2",
                "-m",
                "2G",
                "-object",
                "memory-backend-ram,id=m0,size=1G",
                "-object",
                "memory-backend-ram,id=m1,size=1G",
                "-numa",
                "node,nodeid=0,cpus=0,memdev=m0",
                "-numa",
                "node,nodeid=1,cpus=1,memdev=m1",
            ],
        );
        assert_virt_common(&info);
        // QEMU emits memory@80000000 before memory@40000000; we sort.
        assert_eq!(
            banks(&info),
            [(0x4000_0000, 0x4000_0000, Some(0)), (0x8000_0000, 0x4000_0000, Some(1))]
        );
        assert_eq!(info.cpu_count(), 2);
        assert_eq!(info.total_memory(), 2 << 30);
    }

    #[test]
    fn qemu_virtualization_uses_smc() {
        let info = qemu_parse("el2", ",virtualization=on", &["-m", "512M"]);
        assert_virt_common(&info);
        assert_eq!(info.psci(), Some(PsciConduit::Smc));
        assert_eq!(banks(&info), [(0x4000_0000, 0x2000_0000, None)]);
    }

    #[test]
    fn qemu_append_bootargs() {
        // QEMU only accepts -append with -kernel; any file will do, the
        // DTB is dumped before the guest would run.
        let kernel = temp_path("kernel", "bin");
        std::fs::write(&kernel, [0u8; 4096]).unwrap();
        let kpath = kernel.display().to_string();
        let dtb = qemu_dtb("append", "", &["-m", "1G", "-kernel", &kpath, "-append", "foo bar"]);
        let _ = std::fs::remove_file(&kernel);
        let info = parse(&dtb).unwrap();
        assert_virt_common(&info);
        assert_eq!(info.bootargs(), "foo bar");
    }

    #[test]
    fn qemu_parse_at_reads_header_first() {
        let dtb = qemu_default();
        let info = unsafe { parse_at(dtb.as_ptr()) }.unwrap();
        assert_eq!(banks(&info), [(0x4000_0000, 0x4000_0000, None)]);

        let mut bad = dtb[..64].to_vec();
        set_be32(&mut bad, 0, 0x1234_5678);
        let e = unsafe { parse_at(bad.as_ptr()) }.unwrap_err();
        let addr = bad.as_ptr() as u64;
        assert_eq!(
            e,
            DtError::BadMagic {
                found: 0x1234_5678,
                addr: Some(addr)
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("0x12345678") && msg.contains(&format!("{:#x}", addr)),
            "{}",
            msg
        );

        // A huge totalsize is refused before a slice that long is built.
        let mut huge = dtb[..64].to_vec();
        set_be32(&mut huge, 4, 0x4000_0000);
        let e = unsafe { parse_at(huge.as_ptr()) }.unwrap_err();
        assert_eq!(e, DtError::TotalSizeTooLarge { totalsize: 0x4000_0000 });
        assert_eq!(
            unsafe { parse_at(core::ptr::null()) }.unwrap_err(),
            DtError::NullPointer
        );
    }

    // ------------------------------------------------------------ FDT_NOP

    /// Offsets (into the structure block) of every token of a valid blob,
    /// FDT_END included: each is a place where a NOP may legally stand.
    fn token_offsets(blob: &[u8]) -> Vec<usize> {
        let (off, size) = (get_be32(blob, 8) as usize, get_be32(blob, 36) as usize);
        let s = &blob[off..off + size];
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            out.push(pos);
            let tok = get_be32(s, pos);
            pos += match tok {
                FDT_BEGIN_NODE => (4 + s[pos + 4..].iter().position(|&c| c == 0).unwrap() + 1 + 3) & !3,
                FDT_PROP => (12 + get_be32(s, pos + 4) as usize + 3) & !3,
                FDT_END => return out,
                _ => 4,
            };
        }
    }

    /// `blob` with `n` FDT_NOPs inserted at structure offset `at`, header
    /// offsets and sizes moved as libfdt's in-place editing would leave them.
    fn insert_nops(blob: &[u8], at: usize, n: usize) -> Vec<u8> {
        let off_struct = get_be32(blob, 8) as usize;
        let abs = off_struct + at;
        let mut out = blob[..abs].to_vec();
        for _ in 0..n {
            out.extend_from_slice(&FDT_NOP.to_be_bytes());
        }
        out.extend_from_slice(&blob[abs..]);
        let grow = 4 * n as u32;
        set_be32(&mut out, 4, get_be32(blob, 4) + grow);
        set_be32(&mut out, 36, get_be32(blob, 36) + grow);
        for field in [12, 16] {
            // strings / rsvmap blocks behind the insertion point move too.
            let v = get_be32(blob, field);
            if v as usize >= abs {
                set_be32(&mut out, field, v + grow);
            }
        }
        out
    }

    fn assert_same_with_nops(orig: &[u8], at: usize, n: usize) {
        let mut want = parse(orig).unwrap();
        let blob = insert_nops(orig, at, n);
        let got = parse(&blob).unwrap_or_else(|e| panic!("{} NOP(s) at structure offset {:#x}: {}", n, at, e));
        want.nop_count = n;
        want.dtb_size += 4 * n;
        assert_eq!(got, want, "{} NOP(s) at structure offset {:#x}", n, at);
    }

    /// QEMU's own tree with one NOP, and with a run of three, before every
    /// token (so also between two properties of a node, before a child,
    /// before END_NODE, before FDT_END) parses to the same MachineInfo.
    #[test]
    fn qemu_dump_with_nops_everywhere() {
        let orig = qemu_default();
        let offs = token_offsets(orig);
        assert!(offs.len() > 100, "QEMU's tree has only {} tokens?", offs.len());
        for &at in &offs {
            assert_same_with_nops(orig, at, 1);
            assert_same_with_nops(orig, at, 3);
        }
        // Every token position at once, and a NOP run before FDT_END.
        let mut blob = orig.to_vec();
        for &at in offs.iter().rev() {
            blob = insert_nops(&blob, at, 1);
        }
        let last = token_offsets(orig).len();
        let blob = insert_nops(&blob, get_be32(&blob, 36) as usize - 4, 5);
        let mut want = parse(orig).unwrap();
        want.nop_count = last + 5;
        want.dtb_size += 4 * (last + 5);
        assert_eq!(parse(&blob).unwrap(), want);
    }

    /// What libfdt's fdt_nop_node()/fdt_nop_property() leave behind (QEMU
    /// does this to a `-dtb` file's memory nodes): a deleted node or
    /// property overwritten with NOPs is simply not there.
    #[test]
    fn nopped_out_node_and_property_are_gone() {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        let start = b.st.len();
        memory_node(&mut b, "memory@80000000", &[(0x8000_0000, 0x100_0000)]);
        let end = b.st.len();
        b.begin("chosen");
        let pstart = b.st.len();
        b.str("bootargs", "gone");
        let pend = b.st.len();
        b.str("stdout-path", "/pl011@9000000").end();
        b.end();
        for i in (start..end).step_by(4).chain((pstart..pend).step_by(4)) {
            b.st[i..i + 4].copy_from_slice(&FDT_NOP.to_be_bytes());
        }
        let info = parse(&b.build()).unwrap();
        assert_eq!(banks(&info), [(0x4000_0000, 0x100_0000, None)]);
        assert_eq!(info.bootargs(), "");
        assert_eq!(info.stdout_path(), "/pl011@9000000");
        assert_eq!(info.nop_count(), (end - start + pend - pstart) / 4);
    }

    /// A NOP's bit pattern inside a name or value is data, not a token:
    /// compaction must walk tokens, not scan words.
    #[test]
    fn nop_pattern_inside_values_is_kept() {
        let mut b = Builder::new();
        root(&mut b).tok(FDT_NOP);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x0000_0004_0000_0000)]);
        b.begin("chosen").prop("bootargs", b"\0\0\0\x04\0").end();
        b.end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(banks(&info), [(0x4000_0000, 0x4_0000_0000, None)]);
        assert_eq!(info.nop_count(), 1);
    }

    /// Malformed blobs with NOPs still fail with the structural error, and
    /// NOPs cannot hide a missing FDT_END.
    #[test]
    fn nops_do_not_hide_corruption() {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.end().tok(FDT_NOP).tok(FDT_NOP);
        assert!(matches!(
            err_of(&b.build_raw()),
            DtError::Corrupt {
                problem: StructProblem::UnexpectedEnd,
                ..
            }
        ));
        let mut b = Builder::new();
        b.tok(FDT_NOP).prop("x", &[]);
        assert!(matches!(
            err_of(&b.build()),
            DtError::Corrupt {
                problem: StructProblem::PropertyOutsideNode,
                ..
            }
        ));
    }

    /// The cost of NOP handling: parse QEMU's tree as is (no copy) and with
    /// a NOP before every token (compacted copy). Prints ns per parse;
    /// `cargo htest dt::tests::nop_cost -- --nocapture` shows it.
    #[test]
    fn nop_cost() {
        let orig = qemu_default();
        let mut nopped = orig.to_vec();
        for &at in token_offsets(orig).iter().rev() {
            nopped = insert_nops(&nopped, at, 1);
        }
        let time = |blob: &[u8]| {
            let n = 200;
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(parse(std::hint::black_box(blob)).unwrap());
            }
            t.elapsed().as_nanos() / n
        };
        let (plain, with_nops) = (time(orig), time(&nopped));
        std::println!(
            "dt parse of QEMU's tree: {} ns without NOPs, {} ns with {} NOPs (compacted copy)",
            plain,
            with_nops,
            token_offsets(orig).len()
        );
    }

    #[test]
    fn qemu_dump_truncated() {
        let dtb = qemu_default();
        let total = get_be32(dtb, 4) as usize;
        let used = get_be32(dtb, 12) as usize + get_be32(dtb, 32) as usize; // strings end
        for len in [0, 3, 4, 39, 40, 41, 100, 1000, used - 1, used, total - 1] {
            let e = err_of(&dtb[..len]);
            match e {
                DtError::TooShort { len: l } => assert!(len < 40 && l == len),
                DtError::Truncated { totalsize, available } => {
                    assert_eq!((totalsize as usize, available), (total, len))
                }
                other => panic!("length {}: unexpected {:?}", len, other),
            }
        }
        // Same, but with the header rewritten to claim only what is there.
        for len in 40..used + 8 {
            let mut cut = dtb[..len].to_vec();
            set_be32(&mut cut, 4, len as u32);
            let r = parse(&cut);
            if len < used {
                assert!(r.is_err(), "len {} parsed", len);
            } else {
                assert!(r.is_ok(), "len {}: {:?}", len, r);
            }
        }
    }

    #[test]
    fn qemu_dump_byte_flips_never_panic() {
        let dtb = qemu_default();
        let used = get_be32(dtb, 12) as usize + get_be32(dtb, 32) as usize;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut err) = (0, 0);
        let mut buf = dtb[..used.next_multiple_of(8) + 64].to_vec();
        let blen = buf.len() as u32;
        set_be32(&mut buf, 4, blen);
        for _ in 0..20_000 {
            let mut b = buf.clone();
            for _ in 0..1 + rng.below(6) {
                // Mostly the structure/strings blocks, sometimes the header.
                let at = if rng.below(8) == 0 {
                    rng.below(FDT_HEADER_SIZE)
                } else {
                    rng.below(used)
                };
                b[at] ^= 1 << rng.below(8);
            }
            match parse(&b) {
                Ok(_) => ok += 1,
                Err(e) => {
                    let msg = e.to_string();
                    assert!(!msg.is_empty() && !msg.contains('\n'));
                    err += 1
                }
            }
        }
        assert!(ok > 0 && err > 0, "ok {} err {}", ok, err);
    }

    // ------------------------------------------------------- exact trees

    #[test]
    fn builder_simple_tree() {
        let info = parse(&simple_blob(&[(0x4000_0000, 0x1000_0000)])).unwrap();
        assert_eq!(info.model(), "test,board");
        assert_eq!(banks(&info), [(0x4000_0000, 0x1000_0000, None)]);
        assert_eq!(info.bootargs(), "console=ttyAMA0");
        assert_eq!(info.stdout_path(), "/pl011@9000000");
        // No interrupt-parent: a 12-byte specifier is taken as GIC-style.
        assert_eq!(info.pl011(), Some(QEMU_UART));
        assert_eq!(info.psci(), None);
        assert_eq!(info.cpu_count(), 0);
        assert!(info.reserved().is_empty());
    }

    #[test]
    fn one_cell_addresses_and_sizes() {
        let mut b = Builder::new();
        b.begin("").cells("#address-cells", &[1]).cells("#size-cells", &[1]);
        b.begin("memory@80000000")
            .str("device_type", "memory")
            .cells("reg", &[0x8000_0000, 0x1000_0000, 0x4000_0000, 0x100_0000])
            .cells("numa-node-id", &[3])
            .end();
        b.end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(
            banks(&info),
            [(0x4000_0000, 0x100_0000, Some(3)), (0x8000_0000, 0x1000_0000, Some(3))]
        );
        assert_eq!(info.model(), "");
        assert_eq!(info.total_memory(), 0x1100_0000);
    }

    #[test]
    fn default_cells_are_two_and_one() {
        let mut b = Builder::new();
        b.begin("");
        b.begin("memory")
            .str("device_type", "memory")
            .cells("reg", &[1, 0, 0x2000_0000])
            .end();
        b.end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(banks(&info), [(0x1_0000_0000, 0x2000_0000, None)]);
    }

    #[test]
    fn memory_found_by_device_type_not_name() {
        let mut b = Builder::new();
        root(&mut b);
        b.begin("ram@40000000")
            .str("device_type", "memory")
            .cells("reg", &regs2(&[(0x4000_0000, 0x1000)]))
            .end();
        b.begin("memory@0")
            .str("device_type", "not-memory")
            .cells("reg", &regs2(&[(0, 0x1000)]))
            .end();
        b.begin("memory@50000000")
            .str("device_type", "memory")
            .str("status", "disabled")
            .cells("reg", &regs2(&[(0x5000_0000, 0x1000)]))
            .end();
        b.end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(banks(&info), [(0x4000_0000, 0x1000, None)]);
    }

    #[test]
    fn reserved_memory_and_memreserve() {
        let mut b = Builder::new();
        b.reserve(0x4800_0000, 0x1_0000).reserve(0x4900_0000, 0x2000);
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x4000_0000)]);
        b.begin("reserved-memory")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[1])
            .flag("ranges");
        b.begin("secmon@5e000000")
            .cells("reg", &[0, 0x5e00_0000, 0x20_0000])
            .flag("no-map")
            .end();
        b.begin("ramoops@5f000000")
            .strs("compatible", &["ramoops"])
            .cells("reg", &[0, 0x5f00_0000, 0x1_0000, 0, 0x5f10_0000, 0x1_0000])
            .end();
        b.begin("off@60000000")
            .cells("reg", &[0, 0x6000_0000, 0x1000])
            .str("status", "disabled")
            .end();
        b.begin("linux,cma")
            .strs("compatible", &["shared-dma-pool"])
            .cells("size", &[0x100_0000])
            .flag("reusable")
            .end();
        b.end();
        b.end();
        let info = parse(&b.build()).unwrap();
        let got: Vec<_> = info
            .reserved()
            .iter()
            .map(|r| (r.region.base, r.region.size, r.kind, r.name()))
            .collect();
        let rm = |no_map| ReserveKind::ReservedMemory { no_map };
        assert_eq!(
            got,
            [
                (0x4800_0000, 0x1_0000, ReserveKind::MemReserve, ""),
                (0x4900_0000, 0x2000, ReserveKind::MemReserve, ""),
                (0x5e00_0000, 0x20_0000, rm(true), "secmon@5e000000"),
                (0x5f00_0000, 0x1_0000, rm(false), "ramoops@5f000000"),
                (0x5f10_0000, 0x1_0000, rm(false), "ramoops@5f000000"),
            ]
        );
    }

    #[test]
    fn psci_timer_cpus() {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("firmware-psci")
            .strs("compatible", &["arm,psci-1.0", "arm,psci-0.2"])
            .str("method", "smc")
            .end();
        b.begin("timer")
            .strs("compatible", &["arm,armv8-timer"])
            .cells("clock-frequency", &[62_500_000])
            .end();
        b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
        b.begin("cpu-map")
            .begin("cluster0")
            .begin("core0")
            .cells("cpu", &[1])
            .end()
            .end()
            .end();
        for (i, status) in ["okay", "okay", "disabled"].iter().enumerate() {
            b.begin(&format!("cpu@{}", i))
                .str("device_type", "cpu")
                .cells("reg", &[i as u32])
                .str("status", status)
                .end();
        }
        b.end();
        b.end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(info.psci(), Some(PsciConduit::Smc));
        assert_eq!(info.timer_frequency(), Some(62_500_000));
        assert_eq!(info.cpu_count(), 2);
        assert_eq!(info.pl011(), None);
    }

    #[test]
    fn psci_without_method_is_none() {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("psci").strs("compatible", &["arm,psci"]).end();
        b.end();
        assert_eq!(parse(&b.build()).unwrap().psci(), None);
    }

    #[test]
    fn nested_pl011_with_inherited_interrupt_parent() {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("intc@8000000")
            .cells("phandle", &[7])
            .cells("#interrupt-cells", &[3])
            .flag("interrupt-controller")
            .end();
        b.begin("soc")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1])
            .cells("interrupt-parent", &[7]);
        b.begin("serial@1000")
            .strs("compatible", &["arm,pl011"])
            .str("status", "disabled")
            .cells("reg", &[0x1000, 0x100])
            .end();
        b.begin("bus")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[1])
            .flag("ranges");
        b.begin("serial@fe201000")
            .strs("compatible", &["arm,pl011", "arm,primecell"])
            .cells("reg", &[0xfe20_1000, 0x200])
            .cells("interrupts", &[0, 121, 4])
            .end();
        b.end();
        b.end();
        b.end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(
            info.pl011(),
            Some(Pl011 {
                base: 0xfe20_1000,
                size: 0x200,
                irq: Some(121)
            })
        );
    }

    #[test]
    fn pl011_ppi_or_one_cell_interrupt_has_no_spi() {
        let mut b = Builder::new();
        root(&mut b).cells("interrupt-parent", &[1]);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("ic")
            .cells("phandle", &[1])
            .cells("#interrupt-cells", &[1])
            .end();
        b.begin("pl011@9000000")
            .strs("compatible", &["arm,pl011"])
            .cells("reg", &[0, 0x900_0000, 0, 0x1000])
            .cells("interrupts", &[5])
            .end();
        b.end();
        assert_eq!(
            parse(&b.build()).unwrap().pl011(),
            Some(Pl011 {
                base: 0x900_0000,
                size: 0x1000,
                irq: None
            })
        );
    }

    /// Linux has no fixed bank limit (memblock grows its arrays); neither
    /// do we: 40 banks (the old limit was 32) all arrive, sorted.
    #[test]
    fn forty_memory_banks() {
        let mut many: Vec<(u64, u64)> = (0..40u64).map(|i| (0x4000_0000 + i * 0x10_0000, 0x1000)).collect();
        many.reverse();
        let info = parse(&simple_blob(&many)).unwrap();
        assert_eq!(info.memory().len(), 40);
        assert!(info.memory().windows(2).all(|w| w[0].region.base < w[1].region.base));
        assert_eq!(info.total_memory(), 40 * 0x1000);
    }

    #[test]
    fn memreserve_overflow_and_empty_entries() {
        let mut b = Builder::new();
        b.reserve(0x4000_0000, 0).reserve(0xffff_ffff_ffff_f000, 0x2000);
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.end();
        let e = err_of(&b.build());
        assert_eq!(
            e,
            DtError::RegionOverflow {
                node: NodeName::from("/memreserve/"),
                index: 1,
                base: 0xffff_ffff_ffff_f000,
                size: 0x2000
            }
        );
    }

    /// 40 `/memreserve/` entries plus 40 `/reserved-memory` children with
    /// 40-byte names (the old limits were 32 regions and 32-byte names).
    #[test]
    fn many_reservations_with_long_names() {
        let mut b = Builder::new();
        for i in 0..40u64 {
            b.reserve(0x4000_0000 + i * 0x2000, 0x1000);
        }
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("reserved-memory")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .flag("ranges");
        let names: Vec<String> = (0..40u64)
            .map(|i| format!("{:r<30}@{:08x}", "region", 0x4080_0000 + i * 0x1000))
            .collect();
        for (i, n) in names.iter().enumerate() {
            b.begin(n)
                .cells("reg", &regs2(&[(0x4080_0000 + i as u64 * 0x1000, 0x1000)]))
                .end();
        }
        b.end().end();
        let info = parse(&b.build()).unwrap();
        assert_eq!(info.reserved().len(), 80);
        assert!(
            info.reserved()[..40]
                .iter()
                .all(|r| r.kind == ReserveKind::MemReserve && r.name().is_empty())
        );
        for (r, n) in info.reserved()[40..].iter().zip(&names) {
            assert_eq!(r.name(), n);
            assert_eq!(r.name().len(), 39);
            assert_eq!(r.kind, ReserveKind::ReservedMemory { no_map: false });
        }
    }

    fn chosen_blob(bootargs: &str, stdout: &str, model: &str) -> Vec<u8> {
        let mut b = Builder::new();
        b.begin("").cells("#size-cells", &[2]).str("model", model);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("chosen")
            .str("bootargs", bootargs)
            .str("stdout-path", stdout)
            .end();
        b.end();
        b.build()
    }

    /// Strings are owned copies of any length; only bootargs is cut, at
    /// COMMAND_LINE_SIZE - 1 bytes as Linux's early_init_dt_scan_chosen.
    #[test]
    fn strings_are_copied_and_bootargs_cut_at_command_line_size() {
        for len in [0, 512, 513, 1080, COMMAND_LINE_SIZE - 1] {
            let args = "a".repeat(len);
            let path = "p".repeat(300);
            let model = "m".repeat(200);
            let blob = chosen_blob(&args, &path, &model);
            let info = parse(&blob).unwrap();
            drop(blob); // the summary owns its strings
            assert_eq!(
                (info.bootargs(), info.stdout_path(), info.model()),
                (&*args, &*path, &*model)
            );
            assert_eq!(info.bootargs_truncated(), None);
        }
        for len in [COMMAND_LINE_SIZE, 2100, 10_000] {
            let args: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let info = parse(&chosen_blob(&args, "x", "m")).unwrap();
            assert_eq!(info.bootargs(), &args[..COMMAND_LINE_SIZE - 1]);
            assert_eq!(info.bootargs_truncated(), Some(len));
        }
        // Cut on a char boundary: 2046 ASCII bytes, then a 3-byte char.
        let args = format!("{}\u{20ac}tail", "a".repeat(COMMAND_LINE_SIZE - 2));
        let info = parse(&chosen_blob(&args, "x", "m")).unwrap();
        assert_eq!(info.bootargs(), "a".repeat(COMMAND_LINE_SIZE - 2));
        assert_eq!(info.bootargs_truncated(), Some(args.len()));
    }

    #[test]
    fn non_utf8_bootargs() {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
        b.begin("chosen").prop("bootargs", &[0xff, 0xfe, 0]).end();
        b.end();
        let e = err_of(&b.build());
        assert_eq!(
            e,
            DtError::NotUtf8 {
                node: NodeName::from("chosen"),
                property: "bootargs"
            }
        );
    }

    // --------------------------------------------------- semantic errors

    #[test]
    fn no_memory_node() {
        let mut b = Builder::new();
        root(&mut b);
        b.begin("chosen").end();
        pl011_node(&mut b);
        b.end();
        let e = err_of(&b.build());
        assert_eq!(e, DtError::NoMemoryNode);
        assert!(e.to_string().contains("memory"), "{}", e);
    }

    #[test]
    fn zero_sized_bank_names_node_and_bank() {
        let e = err_of(&simple_blob(&[(0x4000_0000, 0x1000), (0x5000_0000, 0)]));
        assert_eq!(
            e,
            DtError::ZeroSizedBank {
                node: NodeName::from("memory@40000000"),
                bank: 1
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("memory@40000000") && msg.contains("entry 1"), "{}", msg);
    }

    #[test]
    fn memory_node_without_reg() {
        let mut b = Builder::new();
        root(&mut b);
        b.begin("memory@40000000").str("device_type", "memory").end();
        b.end();
        let e = err_of(&b.build());
        assert_eq!(
            e,
            DtError::NoReg {
                node: NodeName::from("memory@40000000")
            }
        );
        assert!(e.to_string().contains("memory@40000000"));

        let mut b = Builder::new();
        root(&mut b);
        b.begin("memory@0").str("device_type", "memory").prop("reg", &[]).end();
        b.end();
        assert_eq!(
            err_of(&b.build()),
            DtError::NoReg {
                node: NodeName::from("memory@0")
            }
        );
    }

    #[test]
    fn bad_reg_shapes() {
        let mut b = Builder::new();
        root(&mut b);
        b.begin("memory@0")
            .str("device_type", "memory")
            .cells("reg", &[0, 0, 1])
            .end();
        b.end();
        let e = err_of(&b.build());
        assert_eq!(
            e,
            DtError::BadReg {
                node: NodeName::from("memory@0"),
                len: 12,
                entry_size: 16
            }
        );

        let mut b = Builder::new();
        b.begin("").cells("#address-cells", &[3]).cells("#size-cells", &[2]);
        b.begin("memory@0")
            .str("device_type", "memory")
            .cells("reg", &[0, 0, 0, 0, 1])
            .end();
        b.end();
        let e = err_of(&b.build());
        assert_eq!(
            e,
            DtError::UnsupportedCells {
                node: NodeName::from("memory@0"),
                address_cells: 3,
                size_cells: 2
            }
        );

        let e = err_of(&simple_blob(&[(0xffff_ffff_ffff_f000, 0x2000)]));
        assert_eq!(
            e,
            DtError::RegionOverflow {
                node: NodeName::from("memory@40000000"),
                index: 0,
                base: 0xffff_ffff_ffff_f000,
                size: 0x2000
            }
        );

        let mut b = Builder::new();
        root(&mut b);
        b.begin("memory@0")
            .str("device_type", "memory")
            .cells("reg", &regs2(&[(0, 1)]))
            .cells("numa-node-id", &[0, 1])
            .end();
        b.end();
        let e = err_of(&b.build());
        assert_eq!(
            e,
            DtError::BadPropertyLength {
                node: NodeName::from("memory@0"),
                property: "numa-node-id",
                len: 8,
                expected: 4
            }
        );
    }

    // ------------------------------------------------- malformed blobs

    #[test]
    fn bad_magic_reports_found_value() {
        let mut blob = simple_blob(&[(0x4000_0000, 0x1000)]);
        set_be32(&mut blob, 0, 0xdead_beef);
        let e = err_of(&blob);
        assert_eq!(
            e,
            DtError::BadMagic {
                found: 0xdead_beef,
                addr: None
            }
        );
        assert!(e.to_string().contains("0xdeadbeef"), "{}", e);
        // A little-endian FDT is caught the same way.
        let mut le = simple_blob(&[(0x4000_0000, 0x1000)]);
        le[..4].copy_from_slice(&FDT_MAGIC.to_le_bytes());
        assert!(err_of(&le).to_string().contains("0xedfe0dd0"));
    }

    #[test]
    fn header_checks() {
        let good = simple_blob(&[(0x4000_0000, 0x1000)]);
        assert_eq!(err_of(&good[..2]), DtError::TooShort { len: 2 });
        assert_eq!(err_of(&good[..20]), DtError::TooShort { len: 20 });

        let mut b = good.clone();
        set_be32(&mut b, 4, 39);
        assert_eq!(err_of(&b), DtError::TotalSizeTooSmall { totalsize: 39 });
        set_be32(&mut b, 4, (MAX_DTB_SIZE + 1) as u32);
        let e = err_of(&b);
        assert_eq!(
            e,
            DtError::TotalSizeTooLarge {
                totalsize: (MAX_DTB_SIZE + 1) as u32
            }
        );
        assert!(e.to_string().contains("64 MiB"), "{}", e);

        let mut b = good.clone();
        set_be32(&mut b, 4, good.len() as u32 + 1);
        let e = err_of(&b);
        assert_eq!(
            e,
            DtError::Truncated {
                totalsize: good.len() as u32 + 1,
                available: good.len()
            }
        );

        // Version 15 (full-path node names) is too old; version 16 (no
        // size_dt_struct: the header field is garbage) and a later version
        // that is still version-17 compatible are read like the original.
        let mut b = good.clone();
        set_be32(&mut b, 20, 15);
        assert_eq!(
            err_of(&b),
            DtError::UnsupportedVersion {
                version: 15,
                last_comp_version: 16
            }
        );
        let want = parse(&good).unwrap();
        let mut b = good.clone();
        set_be32(&mut b, 20, 16);
        set_be32(&mut b, 36, 0xdead_beef);
        assert_eq!(parse(&b).unwrap(), want);
        let mut b = good.clone();
        set_be32(&mut b, 20, 18);
        set_be32(&mut b, 24, 17);
        assert_eq!(parse(&b).unwrap(), want);
        let mut b = good.clone();
        set_be32(&mut b, 24, 18);
        assert_eq!(
            err_of(&b),
            DtError::UnsupportedVersion {
                version: 17,
                last_comp_version: 18
            }
        );

        let mut b = good.clone();
        set_be32(&mut b, 36, good.len() as u32); // size_dt_struct
        assert!(matches!(
            err_of(&b),
            DtError::BlockOutOfBounds { block: "structure", .. }
        ));
        let mut b = good.clone();
        set_be32(&mut b, 12, u32::MAX); // off_dt_strings
        assert!(matches!(err_of(&b), DtError::BlockOutOfBounds { block: "strings", .. }));
        let mut b = good.clone();
        set_be32(&mut b, 16, 8); // off_mem_rsvmap inside the header
        assert!(matches!(
            err_of(&b),
            DtError::BlockOutOfBounds {
                block: "memory-reservation",
                ..
            }
        ));
        // A reservation map that runs into the structure block and beyond.
        let mut b = good.clone();
        set_be32(&mut b, 16, good.len() as u32 - 8);
        assert!(matches!(err_of(&b), DtError::RsvmapUnterminated { .. }));
    }

    /// Wrap a hand-written structure block (tokens) into a blob.
    fn corrupt(f: impl FnOnce(&mut Builder)) -> StructProblem {
        let mut b = Builder::new();
        f(&mut b);
        match err_of(&b.build_raw()) {
            DtError::Corrupt { problem, .. } => problem,
            other => panic!("expected Corrupt, got {:?}", other),
        }
    }

    #[test]
    fn structure_grammar_is_enforced() {
        let mem = |b: &mut Builder| memory_node(b, "memory@0", &[(0, 0x1000)]);
        assert_eq!(
            corrupt(|b| {
                b.begin("");
                mem(b);
                b.end();
            }),
            StructProblem::UnexpectedEnd
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("").tok(7);
            }),
            StructProblem::UnknownToken(7)
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("x");
                mem(b);
                b.end().tok(FDT_END);
            }),
            StructProblem::RootNameNotEmpty
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("");
                mem(b);
                b.end().begin("").end().tok(FDT_END);
            }),
            StructProblem::SecondRoot
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("");
                mem(b);
                b.str("late", "x").end().tok(FDT_END);
            }),
            StructProblem::PropertyAfterChild
        );
        assert_eq!(
            corrupt(|b| {
                b.str("x", "y").tok(FDT_END);
            }),
            StructProblem::PropertyOutsideNode
        );
        assert_eq!(
            corrupt(|b| {
                b.end().tok(FDT_END);
            }),
            StructProblem::UnbalancedEndNode
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("");
                mem(b);
                b.tok(FDT_END);
            }),
            StructProblem::EndInsideNode { depth: 1 }
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("").prop("#size-cells", &[0, 0, 0, 1, 0]);
                mem(b);
                b.end().tok(FDT_END);
            }),
            StructProblem::CellsLength { len: 5 }
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("").tok(FDT_PROP).tok(4).tok(0x1000).tok(0).end().tok(FDT_END);
            }),
            StructProblem::NameOffsetOutOfRange {
                nameoff: 0x1000,
                strings_size: 0
            }
        );
        assert_eq!(
            corrupt(|b| {
                b.begin("").tok(FDT_PROP).tok(0x100).tok(0).end().tok(FDT_END);
            }),
            StructProblem::ValueOverrun { len: 0x100 }
        );
        // Node name bytes that are not UTF-8.
        assert_eq!(
            corrupt(|b| {
                b.begin("")
                    .tok(FDT_BEGIN_NODE)
                    .tok(0xff00_0000)
                    .end()
                    .end()
                    .tok(FDT_END);
            }),
            StructProblem::NameNotUtf8
        );
        // A name with no NUL before the block ends.
        assert_eq!(
            corrupt(|b| {
                b.begin("").tok(FDT_BEGIN_NODE).tok(0x4141_4141);
            }),
            StructProblem::NameUnterminated
        );
        // An empty structure block has no root at all.
        let mut b = Builder::new();
        b.tok(FDT_END);
        assert_eq!(err_of(&b.build_raw()), DtError::NoRootNode);
    }

    #[test]
    fn nesting_depth_limit() {
        let nest = |levels: usize| {
            let mut b = Builder::new();
            root(&mut b);
            memory_node(&mut b, "memory@0", &[(0, 0x1000)]);
            for i in 1..levels {
                b.begin(&format!("n{}", i));
            }
            for _ in 0..levels {
                b.end();
            }
            b.build()
        };
        assert!(parse(&nest(MAX_DEPTH)).is_ok());
        let e = err_of(&nest(MAX_DEPTH + 1));
        assert!(
            matches!(
                e,
                DtError::Corrupt {
                    problem: StructProblem::TooDeep { limit: MAX_DEPTH },
                    ..
                }
            ),
            "{:?}",
            e
        );
    }

    #[test]
    fn garbage_structure_block() {
        let good = simple_blob(&[(0x4000_0000, 0x1000)]);
        let (s0, s1) = (get_be32(&good, 8) as usize, get_be32(&good, 12) as usize);
        let mut rng = XorShift(42);
        for _ in 0..2000 {
            let mut b = good.clone();
            for byte in &mut b[s0..s1] {
                *byte = rng.next() as u8;
            }
            assert!(parse(&b).is_err());
        }
    }

    #[test]
    fn every_truncation_of_a_small_blob_fails_cleanly() {
        let good = simple_blob(&[(0x4000_0000, 0x1000)]);
        for len in 0..good.len() {
            assert!(parse(&good[..len]).is_err(), "len {}", len);
            if len >= FDT_HEADER_SIZE {
                let mut cut = good[..len].to_vec();
                set_be32(&mut cut, 4, len as u32);
                assert!(parse(&cut).is_err(), "patched len {}", len);
            }
        }
        assert!(parse(&good).is_ok());
    }

    #[test]
    fn small_blob_byte_flips_never_panic() {
        let mut b = Builder::new();
        b.reserve(0x4800_0000, 0x1000);
        root(&mut b).cells("interrupt-parent", &[1]);
        memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x1000_0000)]);
        b.begin("intc")
            .cells("phandle", &[1])
            .cells("#interrupt-cells", &[3])
            .end();
        b.begin("reserved-memory")
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2]);
        b.begin("fw@48100000")
            .cells("reg", &regs2(&[(0x4810_0000, 0x1000)]))
            .flag("no-map")
            .end();
        b.end();
        b.begin("psci")
            .strs("compatible", &["arm,psci-1.0"])
            .str("method", "hvc")
            .end();
        b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
        b.begin("cpu@0").str("device_type", "cpu").cells("reg", &[0]).end();
        b.end();
        b.begin("chosen").str("bootargs", "ktest").end();
        pl011_node(&mut b);
        b.end();
        let good = b.build();
        assert!(parse(&good).is_ok());
        let mut rng = XorShift(7);
        for _ in 0..50_000 {
            let mut m = good.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(m.len());
                m[at] ^= 1 << rng.below(8);
            }
            if let Err(e) = parse(&m) {
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(1234);
        for _ in 0..5000 {
            let len = rng.below(512);
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the time give it a plausible header so the deeper checks run.
            if len >= FDT_HEADER_SIZE && rng.below(2) == 0 {
                set_be32(&mut b, 0, FDT_MAGIC);
                set_be32(&mut b, 4, len as u32);
                set_be32(&mut b, 20, 17);
                set_be32(&mut b, 24, 16);
                for field in [8usize, 12, 16, 32, 36] {
                    set_be32(&mut b, field, rng.below(len) as u32);
                }
            }
            let _ = parse(&b);
        }
    }

    // ---------------------------------------------------------- display

    #[test]
    fn mem_region_display_like_memblock() {
        assert_eq!(
            MemRegion::new(0x4000_0000, 0x4000_0000).to_string(),
            "[0x0000000040000000-0x000000007fffffff]"
        );
        assert_eq!(
            MemRegion::new(0x4000_0000, 0x1_0000_0000).to_string(),
            "[0x0000000040000000-0x000000013fffffff]"
        );
        let r = MemRegion::new(0x1000, 0x2000);
        assert_eq!(r.end(), 0x3000);
        assert!(r.contains(0x1000) && r.contains(0x2fff) && !r.contains(0x3000));
    }

    #[test]
    fn error_messages_are_one_sentence_with_values() {
        let n = NodeName::from("memory@40000000");
        let cases: &[(DtError, &[&str])] = &[
            (DtError::NullPointer, &["0"]),
            (DtError::TooShort { len: 7 }, &["7", "40"]),
            (
                DtError::BadMagic {
                    found: 0xfeedface,
                    addr: Some(0x4800_0000),
                },
                &["0xfeedface", "0x48000000", "0xd00dfeed"],
            ),
            (DtError::TotalSizeTooSmall { totalsize: 12 }, &["12"]),
            (
                DtError::Truncated {
                    totalsize: 4096,
                    available: 100,
                },
                &["4096", "100"],
            ),
            (
                DtError::UnsupportedVersion {
                    version: 2,
                    last_comp_version: 1,
                },
                &["2", "1"],
            ),
            (
                DtError::BlockOutOfBounds {
                    block: "strings",
                    offset: 0x99,
                    size: 4,
                    totalsize: 0x80,
                },
                &["strings", "0x99", "0x80"],
            ),
            (
                DtError::Corrupt {
                    offset: 0x48,
                    problem: StructProblem::UnknownToken(0x77),
                },
                &["0x48", "0x77"],
            ),
            (DtError::Fdt(fdt::FdtError::BufferTooSmall), &["fdt"]),
            (DtError::ZeroSizedBank { node: n, bank: 3 }, &["memory@40000000", "3"]),
            (
                DtError::UnsupportedCells {
                    node: n,
                    address_cells: 3,
                    size_cells: 0,
                },
                &["3", "0", "memory@40000000"],
            ),
        ];
        for (e, needles) in cases {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && !msg.ends_with('.'), "{:?}", msg);
            for needle in *needles {
                assert!(msg.contains(needle), "{:?} lacks {:?}", msg, needle);
            }
        }
        // Over-long node names are cut visibly, never silently.
        let long = NodeName::from(&"x".repeat(100));
        assert!(long.as_str().ends_with("...") && long.as_str().len() == 48);
    }
}
