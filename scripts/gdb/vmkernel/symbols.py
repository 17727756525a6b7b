# SPDX-License-Identifier: GPL-2.0-only
"""lx-symbols-phys, $lx_va(), $lx_pa(): addresses across the MMU switch.

The ELF is linked at KIMAGE_VADDR (upper half), but head.S runs at the
physical load address with the MMU off, where a breakpoint by symbol never
fires. `lx-symbols-phys` loads the ELF's symbols a second time, shifted by
phys_text - KIMAGE_VADDR (GDB's `add-symbol-file ELF -o OFFSET`), so that
`break el1_entry` also plants a breakpoint at the physical address.
"""

import gdb

from vmkernel import utils

# QEMU virt loads an arm64 Image (text_offset 0) 2 MiB into RAM, RAM at 1 GiB.
QEMU_VIRT_PHYS_TEXT = 0x4020_0000
IMAGE_MAGIC_OFFSET = 0x38  # "ARM\x64" in the Image header


def phys_text_guess():
    """The image's physical base: recorded by setup_arch, else QEMU's default."""
    try:
        bi = utils.once_get(utils.value("BOOT_INFO"))
    except (gdb.GdbError, gdb.MemoryError):
        bi = None  # not readable yet (MMU off): use the default
    if bi is not None:
        return int(bi["phys_text"]), "recorded by setup_arch (BOOT_INFO.phys_text)"
    return QEMU_VIRT_PHYS_TEXT, "QEMU virt's load address for a flat Image"


class LxSymbolsPhys(gdb.Command):
    """Load the kernel's symbols again at their physical (MMU-off) addresses.

Usage: lx-symbols-phys [PHYS_TEXT]
PHYS_TEXT is where the Image was loaded (default: what setup_arch recorded,
else 0x40200000, QEMU virt's address for -kernel Image). Runs
    add-symbol-file ELF -o PHYS_TEXT-KIMAGE_VADDR
so that breakpoints on head.S code (primary_entry, el1_entry,
__create_page_tables, __cpu_setup, __primary_switch) get a second,
physical location that fires before the MMU is on. With the MMU off it
also checks the Image magic "ARM\\x64" at PHYS_TEXT+0x38.
Undo with: remove-symbol-file -a PHYS_TEXT"""

    def __init__(self):
        super().__init__("lx-symbols-phys", gdb.COMMAND_FILES)

    def invoke(self, arg, from_tty):
        utils.need_elf()
        if arg.strip():
            phys = int(gdb.parse_and_eval(arg)) & 0xFFFFFFFFFFFFFFFF
            how = "given"
        else:
            phys, how = phys_text_guess()
        text = utils.elf_symbol_addr("_text")
        offset = (phys - text) & 0xFFFFFFFFFFFFFFFF
        elf = gdb.current_progspace().filename
        try:
            magic = bytes(gdb.selected_inferior().read_memory(phys + IMAGE_MAGIC_OFFSET, 4))
        except (gdb.MemoryError, gdb.error):
            magic = None
        if magic is not None and magic != b"ARM\x64":
            gdb.write(f"warning: no arm64 Image magic at {phys + IMAGE_MAGIC_OFFSET:#x} "
                      f"(found {magic!r}): is the image really at {phys:#x}?\n")
        gdb.write(f"image at physical {phys:#x} ({how}); _text {text:#x}; offset {offset:#x}\n")
        gdb.execute(f"add-symbol-file {elf} -o {offset:#x}", from_tty=False)


class LxVa(gdb.Function):
    """$lx_va(PA): the linear-map address of a physical address (Linux's __va).

__va(pa) = pa - memstart_addr + PAGE_OFFSET; valid once paging_init has
built the linear map (memstart_addr is 0 before)."""

    def __init__(self):
        super().__init__("lx_va")

    def invoke(self, pa):
        memstart = utils.atomic(utils.value("MEMSTART_ADDR"))
        if memstart == 0:
            utils.fail("$lx_va: memstart_addr is 0: paging_init has not built the linear map yet")
        return gdb.Value((int(pa) - memstart + utils.PAGE_OFFSET) & 0xFFFFFFFFFFFFFFFF)


class LxPa(gdb.Function):
    """$lx_pa(VA): the physical address of a linear-map or kernel-image address."""

    def __init__(self):
        super().__init__("lx_pa")

    def invoke(self, va):
        va = int(va) & 0xFFFFFFFFFFFFFFFF
        if utils.PAGE_OFFSET <= va < utils.PAGE_OFFSET + (1 << 47):
            memstart = utils.atomic(utils.value("MEMSTART_ADDR"))
            if memstart == 0:
                utils.fail("$lx_pa: the linear map does not exist before paging_init")
            return gdb.Value(va - utils.PAGE_OFFSET + memstart)
        text, end = utils.elf_symbol_addr("_text"), utils.elf_symbol_addr("_end")
        if text <= va < end:
            phys, _ = phys_text_guess()
            return gdb.Value(va - text + phys)
        utils.fail(f"$lx_pa: {va:#x} is neither a linear-map nor a kernel-image address "
                   "(for vmalloc addresses use lx-pgwalk)")


LxSymbolsPhys()
LxVa()
LxPa()
