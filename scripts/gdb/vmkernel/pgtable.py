# SPDX-License-Identifier: GPL-2.0-only
"""lx-pgwalk: walk the live stage-1 tables for a virtual address.

The walk starts from the register the MMU itself uses: TTBR1_EL1 for an
upper-half address, TTBR0_EL1 for a lower-half one (QEMU's gdbstub exposes
both as $TTBR1_EL1 / $TTBR0_EL1, and TCR_EL1 as $TCR_EL1). If the stub does
not expose TTBR1_EL1, the walk falls back to the kernel's own pgd,
`swapper_pg_dir`, read through its image address, and says so.

Table pages are physical addresses. GDB can only read virtual memory
(QEMU's stub translates through the current MMU, and `monitor xp` is not
reachable from GDB), so a table is read through
  * the kernel image mapping, if it lies inside the image
    (va = pa + kimage_voffset; swapper_pg_dir, init_pg_dir, ...), or
  * the linear map, once paging_init has built it:
    __va(pa) = pa - memstart_addr + PAGE_OFFSET (src/arch/arm64/mm/mmu.rs), or
  * failing both (a table outside the image before paging_init), QEMU's
    own physical read, `monitor xp` (QEMU's gdbstub forwards `monitor`
    commands to its HMP monitor), which only works against QEMU.

Each descriptor is printed as the kernel's DescFmt prints it
(src/arch/arm64/mm/pgtable.rs, the same text the kernel's Walk display uses), plus one
line with every field decoded.
"""

import re

import gdb

from vmkernel import utils

LEVEL_NAME = ["pgd", "pud", "pmd", "pte"]
OA_MASK = ((1 << 48) - 1) & ~0xFFF  # output address bits [47:12]
RES0_HI = 0x7 << 48
# MAIR_EL1 attribute slots as src/arch/arm64/mm/pgtable.rs MemType defines them
# (Linux 5.10's MT_* order); the byte itself is decoded from MAIR_EL1.
MEMTYPE_NAME = ["Normal", "Normal-Tagged", "Normal-NC", "Normal-WT", "Device-nGnRnE", "Device-nGnRE", "Device-GRE"]
MAIR_ATTR_NAME = {
    0x00: "Device-nGnRnE",
    0x04: "Device-nGnRE",
    0x08: "Device-nGRE",
    0x0C: "Device-GRE",
    0x44: "Normal-NC",
    0xBB: "Normal-WT",
    0xFF: "Normal-WB",
}
TCR_EPD0 = 1 << 7
TCR_EPD1 = 1 << 23


def level_size(level):
    return 1 << (39 - 9 * level)


def bit(v, n):
    return (v >> n) & 1


def is_valid(v):
    return bit(v, 0) == 1


def is_table(v, level):
    return level < 3 and is_valid(v) and bit(v, 1) == 1


def is_block(v, level):
    return level in (1, 2) and is_valid(v) and bit(v, 1) == 0


def is_page(v, level):
    return level == 3 and is_valid(v) and bit(v, 1) == 1


def desc_fmt(v, level):
    """src/arch/arm64/mm/pgtable.rs DescFmt, character for character."""
    s = f"{LEVEL_NAME[level]} {v:#018x}"
    if not is_valid(v):
        return s + " INVALID"
    if is_table(v, level):
        s += f" TABLE next={v & OA_MASK:#x}"
        for n, name in ((59, " PXNTable"), (60, " UXNTable"), (63, " NSTable"), (55, " (new)")):
            if bit(v, n):
                s += name
        ap_table = (v >> 61) & 3
        if ap_table:
            s += f" APTable={ap_table:#b}"
        return s
    if not (is_block(v, level) or is_page(v, level)):
        return s + " RESERVED"
    kind = "PAGE" if is_page(v, level) else "BLOCK"
    s += f" {kind} pa={v & OA_MASK & ~(level_size(level) - 1):#x}"
    idx = (v >> 2) & 7
    s += f" attr{idx}={MEMTYPE_NAME[idx]}" if idx < len(MEMTYPE_NAME) else f" attr{idx}=unprogrammed"
    ap = (v >> 6) & 3
    s += " RO" if ap & 2 else " RW"
    if ap & 1:
        s += " EL0"
    pxn, uxn = bit(v, 53), bit(v, 54)
    s += {(1, 1): " XN", (1, 0): " PXN", (0, 1): " UXN", (0, 0): ""}[(pxn, uxn)]
    s += " AF" if bit(v, 10) else " !AF"
    if bit(v, 11):
        s += " nG"
    s += [" SH=non", " SH=reserved", " SH=outer", " SH=inner"][(v >> 8) & 3]
    for n, name in ((52, " CONT"), (51, " DBM"), (5, " NS")):
        if bit(v, n):
            s += name
    sw = (v >> 55) & 0xF
    if sw:
        s += f" sw={sw:#x}"
    ign = (v >> 59) & 0x1F
    if ign:
        s += f" ign={ign:#x}"
    res0 = (v & RES0_HI) | (v & OA_MASK & (level_size(level) - 1))
    if res0:
        s += f" RES0={res0:#x}"
    return s


def desc_fields(v, level, mair):
    """Every field of a descriptor spelled out (the second line of a step)."""
    if not is_valid(v):
        return "valid=0 (faults: translation fault at this level)"
    if is_table(v, level):
        return (f"valid=1 type=table next-level table pa={v & OA_MASK:#x} "
                f"PXNTable={bit(v, 59)} UXNTable={bit(v, 60)} APTable={(v >> 61) & 3:#04b} NSTable={bit(v, 63)}")
    if not (is_block(v, level) or is_page(v, level)):
        return "valid=1 type=reserved encoding (faults like an invalid entry)"
    idx = (v >> 2) & 7
    attr = (mair >> (8 * idx)) & 0xFF if mair is not None else None
    if attr is None:
        mair_s = "MAIR_EL1 not readable"
    else:
        mair_s = f"MAIR_EL1[{idx}]=0x{attr:02x} {MAIR_ATTR_NAME.get(attr, 'other')}"
    ap = (v >> 6) & 3
    ap_s = ["RW EL1", "RW EL1+EL0", "RO EL1", "RO EL1+EL0"][ap]
    sh_s = ["non-shareable", "reserved", "outer", "inner"][(v >> 8) & 3]
    pxn, uxn = bit(v, 53), bit(v, 54)
    kernel_perm = "R" + ("-" if ap & 2 else "W") + ("-" if pxn else "X")
    user_perm = ("R" + ("-" if ap & 2 else "W") if ap & 1 else "--") + ("-" if uxn else "X")
    kind = "page" if is_page(v, level) else "block"
    return (f"valid=1 type={kind} AttrIndx={idx} ({mair_s}) AP={ap:#04b} ({ap_s}) SH={(v >> 8) & 3:#04b} ({sh_s}) "
            f"AF={bit(v, 10)} nG={bit(v, 11)} PXN={pxn} UXN={uxn} "
            f"OA={v & OA_MASK & ~(level_size(level) - 1):#x} => EL1 {kernel_perm}, EL0 {user_perm}")


def register(name):
    """A system register from QEMU's gdbstub, or None if it does not expose it."""
    try:
        v = gdb.parse_and_eval(f"${name}")
    except gdb.error:
        return None
    if v.type.code == gdb.TYPE_CODE_VOID:
        return None
    return int(v) & 0xFFFFFFFFFFFFFFFF


class TableReader:
    """Reads table pages by physical address through a virtual mapping."""

    def __init__(self, ttbr_base):
        self.notes = []
        self.text = utils.elf_symbol_addr("_text")
        self.end = utils.elf_symbol_addr("_end")
        self.phys_text = self._phys_text(ttbr_base)
        try:
            self.linear = utils.atomic(utils.value("SWAPPER_LIVE")) != 0
            self.memstart = utils.atomic(utils.value("MEMSTART_ADDR"))
            self.linear_end = utils.atomic(utils.value("LINEAR_END"))
        except gdb.MemoryError:
            # The statics themselves are unreachable: the MMU is still off
            # (head.S), so there is no linear map either.
            self.linear = False
            self.memstart = self.linear_end = 0
            self.notes.append("kernel statics unreadable (MMU off): no linear map yet")

    def _phys_text(self, ttbr_base):
        try:
            bi = utils.once_get(utils.value("BOOT_INFO"))
        except gdb.MemoryError:
            bi = None
        if bi is not None:
            return int(bi["phys_text"])
        # Before setup_arch records it: TTBR1 points at a page table inside
        # the image (init_pg_dir, later swapper_pg_dir), and the image is
        # loaded 2 MiB-aligned (Image header flags), so the one table symbol
        # whose image offset gives a 2 MiB-aligned base is the one in use.
        for name in ("init_pg_dir", "swapper_pg_dir", "reserved_pg_dir", "idmap_pg_dir"):
            try:
                off = utils.elf_symbol_addr(name) - self.text
            except gdb.GdbError:
                continue
            base = ttbr_base - off
            if base >= 0 and base % (2 << 20) == 0:
                self.notes.append(f"image load address {base:#x} inferred from TTBR ({name}); "
                                  "setup_arch has not recorded it yet")
                return base
        return None

    def va_of(self, pa):
        """(virtual address, how) for a table page, or (None, why-not)."""
        size = self.end - self.text
        if self.phys_text is not None and self.phys_text <= pa < self.phys_text + size:
            return pa - self.phys_text + self.text, "image"
        if self.linear:
            va = pa - self.memstart + utils.PAGE_OFFSET
            if utils.PAGE_OFFSET <= va < self.linear_end:
                return va, "linear map"
            return None, (f"pa {pa:#x} is outside RAM's linear map "
                          f"[{utils.PAGE_OFFSET:#x}, {self.linear_end:#x}): corrupt descriptor?")
        return None, (f"pa {pa:#x} is not in the kernel image and the linear map does not exist yet "
                      "(paging_init builds it)")

    def entry(self, table_pa, index, level):
        """The descriptor at table_pa[index] and a note on how it was read."""
        va, how = self.va_of(table_pa)
        what = f"{LEVEL_NAME[level]} entry"
        if va is not None:
            try:
                return utils.read_u64(va + 8 * index, what), how
            except gdb.GdbError:
                pass  # try QEMU's physical read below
        v = phys_read_u64(table_pa + 8 * index)
        if v is None:
            utils.fail(f"cannot read the {what} at pa {table_pa + 8 * index:#x}: "
                       f"{how if va is None else 'the ' + how + ' read failed'}, and QEMU's "
                       "`monitor xp` did not answer (not connected to QEMU?)")
        return v, "QEMU monitor xp"


def phys_read_u64(pa):
    """A physical read through QEMU's monitor (`monitor xp /1gx PA`), or None."""
    try:
        out = gdb.execute(f"monitor xp /1gx {pa:#x}", to_string=True)
    except gdb.error:
        return None
    m = re.search(r"^[0-9a-f]+:\s*(0x[0-9a-f]+)", out, re.M)
    return int(m.group(1), 16) if m else None


def walk(va):
    """Walk `va`; returns (lines, leaf_level or None, pa or None)."""
    lines = [f"walk va {va:#x}:"]
    upper = bit(va, 55) == 1
    top = va >> 48
    if (upper and top != 0xFFFF) or (not upper and top != 0):
        lines.append("  => not a canonical address of this table's half")
        return lines, None, None
    ttbr_name = "TTBR1_EL1" if upper else "TTBR0_EL1"
    ttbr = register(ttbr_name)
    tcr = register("TCR_EL1")
    mair = register("MAIR_EL1")
    if ttbr is None:
        if not upper:
            utils.fail("QEMU's gdbstub does not expose TTBR0_EL1: cannot walk a lower-half address")
        sw = utils.lookup("swapper_pg_dir")
        root_va = int(sw.value().address)
        reader = TableReader(0)
        if reader.phys_text is None:
            utils.fail("$TTBR1_EL1 is not readable and the image load address is unknown yet")
        root = root_va - reader.text + reader.phys_text
        lines.append(f"  ($TTBR1_EL1 not exposed by the gdbstub: walking swapper_pg_dir at pa {root:#x} instead)")
    else:
        if tcr is not None and tcr & (TCR_EPD1 if upper else TCR_EPD0):
            epd = "EPD1" if upper else "EPD0"
            lines.append(f"  {ttbr_name} = {ttbr:#x}, but TCR_EL1.{epd} = 1: walks of this half are disabled, "
                         "any access faults at level 0"
                         + (" (paging_init retired the identity map)" if not upper else ""))
            return lines, None, None
        root = ttbr & OA_MASK
        if root == 0:
            utils.fail(f"{ttbr_name} is 0: the MMU is not set up yet (break after __primary_switch, "
                       "e.g. at start_kernel)")
        reader = TableReader(root)
        lines.append(f"  {ttbr_name} = {ttbr:#x} (pgd at pa {root:#x})")
    for note in reader.notes:
        lines.append(f"  ({note})")
    table = root
    for level in range(4):
        index = (va >> (39 - 9 * level)) & 511
        v, how = reader.entry(table, index, level)
        if how == "QEMU monitor xp":
            tva, why = reader.va_of(table)
            if tva is not None:
                why = f"its {why} address {tva:#x} is not readable (MMU off?)"
            lines.append(f"  (table {table:#x} read with QEMU's monitor xp: {why})")
        lines.append(f"  L{level} {LEVEL_NAME[level]}[{index}] in table {table:#x}: {desc_fmt(v, level)}")
        lines.append(f"       {desc_fields(v, level, mair)}")
        if is_table(v, level):
            table = v & OA_MASK
            continue
        if is_block(v, level) or is_page(v, level):
            pa = (v & OA_MASK & ~(level_size(level) - 1)) | (va & (level_size(level) - 1))
            what = {1: "1 GiB block", 2: "2 MiB block"}.get(level, "4 KiB page")
            lines.append(f"  => pa {pa:#x} ({what} at level {level})")
            return lines, level, pa
        lines.append(f"  => not mapped (no valid entry at level {level}, {LEVEL_NAME[level]})")
        return lines, None, None
    return lines, None, None


def parse_address(arg):
    try:
        v = gdb.parse_and_eval(arg)
    except gdb.error as e:
        # In Rust mode a bare name resolves relative to the current frame's
        # module (`start_kernel` is found only inside vmkernel::); the ELF
        # symbol table knows every #[no_mangle] name and asm label.
        if re.fullmatch(r"[A-Za-z_$.][\w$.]*", arg.strip()):
            return utils.elf_symbol_addr(arg.strip())
        utils.fail(f"lx-pgwalk: cannot evaluate {arg!r}: {e}")
    t = v.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_FUNC:
        return int(v.address)
    return int(v) & 0xFFFFFFFFFFFFFFFF


class LxPgwalk(utils.LxCommand):
    """Walk the live page tables for a virtual address, level by level.

Usage: lx-pgwalk VA
VA is any GDB expression: 0xffff800010000000, $pc, a pointer variable, or a
function name (start_kernel). Starts at TTBR1_EL1 (TTBR0_EL1 for lower-half
addresses) and prints, for pgd/pud/pmd/pte, the table's physical address,
the index, the descriptor as the kernel's DescFmt prints it, and every
field decoded: valid, table/block/page, AttrIndx with the MAIR_EL1 byte
and its memory type, AP, SH, AF, nG, PXN, UXN and the output address."""

    def __init__(self):
        super().__init__("lx-pgwalk", gdb.COMMAND_DATA, gdb.COMPLETE_EXPRESSION)

    def run(self, arg, from_tty):
        if not arg.strip():
            utils.fail("usage: lx-pgwalk VA")
        utils.need_target()
        va = parse_address(arg)
        lines, _, _ = walk(va)
        gdb.write("\n".join(lines) + "\n")


LxPgwalk()
