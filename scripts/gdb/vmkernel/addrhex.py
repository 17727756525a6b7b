# SPDX-License-Identifier: GPL-2.0-only
"""Kernel addresses in hex, sizes and counts in decimal.

The kernel passes most addresses as plain `usize` / `u64` (Linux's
`unsigned long`): `fdt_pa`, `phys_text`, `vstart`, `vend`, `addr`, and
`unsigned long` sizes next to them. GDB prints all of them in decimal
(`phys_text=1075838976`), and `set output-radix 16` would turn every size
and count into hex too (`size=0x3039`). This printer decides by value:
an unsigned 64-bit integer at or above ADDR_MIN (128 MiB) prints as
0x%x, anything smaller prints in decimal as before. On QEMU virt RAM starts
at 1 GiB and devices (GIC, PL011, ...) at 0x0800_0000 and up, kernel virtual addresses
are 0xffff..., and sizes in this kernel stay far below 128 MiB; a size
that large shows in hex, which reads just as well.

Printers apply to `print`, `info args`, `info locals`, `bt` and the stop
line alike. `p/d EXPR` still forces decimal; the printer is
`vmkernel-addr-hex` in `info pretty-printer`:
    disable pretty-printer global vmkernel-addr-hex
"""

import gdb
import gdb.printing

ADDR_MIN = 0x0800_0000
# Rust's and C's names for unsigned 64-bit integers.
TYPES = {"usize", "u64", "unsigned long", "unsigned long long", "uint64_t"}


class AddrHexPrinter:
    def __init__(self, val):
        self.val = val

    def to_string(self):
        return f"{int(self.val) & 0xFFFFFFFFFFFFFFFF:#x}"


class _Collection(gdb.printing.PrettyPrinter):
    def __init__(self):
        super().__init__("vmkernel-addr-hex")

    def __call__(self, val):
        if not self.enabled:
            return None
        t = val.type.strip_typedefs()
        if t.code != gdb.TYPE_CODE_INT or t.sizeof != 8 or t.name not in TYPES:
            return None
        try:
            v = int(val)
        except gdb.error:  # <optimized out>, unavailable
            return None
        return AddrHexPrinter(val) if v & 0xFFFFFFFFFFFFFFFF >= ADDR_MIN else None


def register():
    # Replace an earlier copy when the helpers are sourced again.
    gdb.pretty_printers[:] = [p for p in gdb.pretty_printers if getattr(p, "name", None) != "vmkernel-addr-hex"]
    gdb.pretty_printers.append(_Collection())


register()
