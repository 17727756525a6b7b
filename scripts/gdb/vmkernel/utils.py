# SPDX-License-Identifier: GPL-2.0-only
"""Shared helpers: finding kernel symbols, reading memory, Rust layouts.

Like Linux's scripts/gdb/linux/utils.py, everything is read through the
ELF's DWARF types where they are good enough: `gdb.lookup_*_symbol` on the
Rust path of a static, then field access by name. Rust specifics:

* GDB (13.x) does not match a plain name like `vmap_area_root` against the
  Rust path `vmkernel::mm::vmalloc::vmap_area_root`, so every static is
  looked up by its full path (a `#[no_mangle]` one is *also* an ELF symbol,
  which helps only for addresses, not for types).
* Items with no DWARF at all (head.S labels, linker-script symbols such as
  `_text`, `_end`, `init_pg_dir`) are ELF symbols only: their addresses come
  from `info address`.
* Rust `const`s (VMALLOC_START, PAGE_OFFSET, ...) are not in DWARF; the few
  needed are mirrored below from src/arch/arm64/memory.rs and cross-checked where
  the ELF allows it (KIMAGE_VADDR is an absolute symbol of linker.ld).
"""

import re

import gdb

# ---------------------------------------------------------------------------
# Constants mirrored from src/arch/arm64/memory.rs (Rust consts have no DWARF).
# ---------------------------------------------------------------------------
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_OFFSET = 0xFFFF_0000_0000_0000
KIMAGE_VADDR = 0xFFFF_8000_1000_0000
VMALLOC_START = KIMAGE_VADDR
VMALLOC_END = 0xFFFF_FDFF_BFFF_0000

# Full Rust paths of the statics the helpers read.
SYM = {
    "vmap_area_root": "vmkernel::mm::vmalloc::vmap_area_root",
    "vmap_purge_list": "vmkernel::mm::vmalloc::vmap_purge_list",
    "free_vmap_area_root": "vmkernel::mm::vmalloc::free_vmap_area_root",
    "__log_buf": "vmkernel::kernel::printk::__log_buf",
    "log_next": "vmkernel::kernel::printk::log_next",
    "ZONES": "vmkernel::mm::page_alloc::ZONES",
    "MEMSTART_ADDR": "vmkernel::arch::mm::mmu::MEMSTART_ADDR",
    "LINEAR_END": "vmkernel::arch::mm::mmu::LINEAR_END",
    "SWAPPER_LIVE": "vmkernel::arch::mm::mmu::SWAPPER_LIVE",
    "swapper_pg_dir": "vmkernel::arch::mm::mmu::swapper_pg_dir",
    "BOOT_INFO": "vmkernel::arch::kernel::setup::BOOT_INFO",
}

# Types, by their DWARF names.
TYPE = {
    "VmStruct": "vmkernel::mm::vmalloc::VmStruct",
    "VmapArea": "vmkernel::mm::vmap_tree::VmapArea",
    "Zone": "vmkernel::mm::buddy::Zone",
}

# vm_struct flags (src/mm/vmalloc.rs VmFlags, Linux's include/linux/vmalloc.h).
VM_IOREMAP = 0x01
VM_ALLOC = 0x02
VM_MAP = 0x04
VM_USERMAP = 0x08
VM_UNINITIALIZED = 0x20
VM_NO_GUARD = 0x40


def fail(msg):
    """Abort the current command with a message (no Python traceback)."""
    raise gdb.GdbError(msg)


def need_elf():
    if gdb.current_progspace().filename is None:
        fail("no kernel ELF loaded: start GDB on target/aarch64-unknown-none/release/vmkernel "
             "(scripts/gdb.sh does)")


def lookup(name):
    """The gdb.Symbol of a kernel static, by short name (see SYM) or full path."""
    need_elf()
    path = SYM.get(name, name)
    sym = gdb.lookup_global_symbol(path) or gdb.lookup_static_symbol(path)
    if sym is None:
        fail(f"symbol {path} not found in the ELF's debug info: is this the vmkernel ELF, "
             "built with debug info (Cargo.toml [profile.*] debug = true)?")
    return sym


def value(name):
    """The gdb.Value of a kernel static."""
    return lookup(name).value()


def lookup_type(name):
    need_elf()
    try:
        return gdb.lookup_type(TYPE.get(name, name))
    except gdb.error:
        fail(f"type {TYPE.get(name, name)} not found in the ELF's debug info")


_ADDR_RE = re.compile(r" is at (0x[0-9a-f]+)")


def elf_symbol_addr(name):
    """Address of an ELF symbol without DWARF (asm labels, linker symbols)."""
    need_elf()
    try:
        out = gdb.execute(f"info address {name}", to_string=True)
    except gdb.error:
        fail(f"ELF symbol {name} not found")
    m = _ADDR_RE.search(out)
    if m is None:
        # Absolute symbols (linker.ld assignments) print as "is constant"
        # in some GDB versions; fall back to the ELF symbol table value.
        m = re.search(r"(0x[0-9a-f]+)", out)
        if m is None:
            fail(f"cannot find the address of {name}: {out.strip()}")
    return int(m.group(1), 16)


# ---------------------------------------------------------------------------
# Rust layouts
# ---------------------------------------------------------------------------

def spinlock_data(v):
    """SpinLock<T> (src/kernel/locking/spinlock.rs) -> T: SpinLock { val, data: UnsafeCell { value } }."""
    return v["data"]["value"]


def spin_is_locked(v):
    """Linux's spin_is_locked on a SpinLock: its lock word is non-zero."""
    return atomic(v["val"]) != 0


def atomic(v):
    """core::sync::atomic::Atomic* -> its integer: Atomic { v: UnsafeCell { value } }."""
    return int(v["v"]["value"])


def once_get(v):
    """spin::Once<T> -> T, or None while it is not complete.

    DWARF describes Once's fields but not the meaning of `status`: spin's
    `Status` is Incomplete = 0, Running = 1, Complete = 2, Panicked = 3.
    """
    status = int(v["status"]["__0"]["v"]["value"]) if has_field(v["status"], "__0") else atomic(v["status"])
    if status != 2:
        return None
    inner = v["data"]["value"]["value"]["value"]  # UnsafeCell -> MaybeUninit -> ManuallyDrop
    # Newer std wraps ManuallyDrop's value in MaybeDangling (a tuple struct).
    while inner.type.strip_typedefs().code == gdb.TYPE_CODE_STRUCT and has_field(inner, "__0"):
        inner = inner["__0"]
    return inner


def has_field(v, name):
    t = v.type.strip_typedefs()
    return t.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) and any(f.name == name for f in t.fields())


def rust_str(v):
    """A Rust &str / *const str (a fat pointer {data_ptr, length}) as a Python str."""
    ptr = int(v["data_ptr"])
    n = int(v["length"])
    if n == 0:
        return ""
    if n > 4096:
        fail(f"string at {ptr:#x} claims {n} bytes: corrupt fat pointer?")
    return bytes(read(ptr, n, "a Rust string")).decode("utf-8", errors="replace")


def location_str(loc_ptr):
    """`core::panic::Location` -> 'file:line' (what the kernel prints for a caller)."""
    if int(loc_ptr) == 0:
        return "(null caller)"
    loc = loc_ptr.dereference()
    # Location { filename: NonNull<str> { pointer: *const str }, line, col } (Rust >= 1.88;
    # older compilers had `file: &str`).
    if has_field(loc, "filename"):
        f = loc["filename"]["pointer"]
    else:
        f = loc["file"]
    return f"{rust_str(f)}:{int(loc['line'])}"


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------

def read(addr, size, what="memory"):
    try:
        return gdb.selected_inferior().read_memory(addr, size)
    except gdb.MemoryError:
        fail(f"cannot read {what} at {addr:#x} ({size} bytes): not mapped by the current page "
             "tables (QEMU's gdbstub reads through the MMU; before the MMU is on only physical "
             "addresses work, before paging_init only the kernel image is mapped)")


def read_u64(addr, what="memory"):
    return int.from_bytes(bytes(read(addr, 8, what)), "little")


def is_vmalloc_addr(a):
    return VMALLOC_START <= a < VMALLOC_END


def need_target():
    try:
        gdb.selected_frame()
    except gdb.error:
        fail("the kernel is not running: connect first (target remote :PORT; scripts/gdb.sh does it)")


def mmu_hint():
    """Why kernel memory may be unreadable right now, judged from the pc."""
    try:
        pc = int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFFFFFFFFFF
    except gdb.error:
        return ""
    if pc < (1 << 48):
        return (f" (pc {pc:#x} is a physical address: the MMU is off or the CPU runs from the identity "
                "map, so the kernel's upper-half statics are not reachable yet; break at start_kernel)")
    return ""


class LxCommand(gdb.Command):
    """gdb.Command whose unexpected memory errors become one clear message."""

    def invoke(self, arg, from_tty):
        try:
            self.run(arg, from_tty)
        except gdb.MemoryError as e:
            fail(f"{self._name}: cannot read kernel memory: {e}{mmu_hint()}")

    def __init__(self, name, cls, *args):
        self._name = name
        super().__init__(name, cls, *args)
