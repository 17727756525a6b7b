# SPDX-License-Identifier: GPL-2.0-only
"""A pretty-printer for Rust enums that keeps GDB 13 alive.

GDB 12/13 (Debian 12's gdb-multiarch is 13.1) dies with an internal error
("gdbtypes.h: field: Assertion `idx >= 0 && idx < num_fields ()' failed")
when it prints some Rust enums itself: the value `finish` returns from a
function returning Option/Result (e.g. `finish` out of alloc_pages), and
niche-encoded ones such as the Option<Zone> array in
vmkernel::mm::page_alloc::ZONES. This printer formats every Rust enum
without GDB's variant printing:

* a value GDB could resolve (it read it from target memory) has one
  variant field: print that variant and its fields;
* a value GDB holds itself (a returned value) is unresolved, all variants
  listed. Python cannot see DWARF's discriminant values, so only Option and
  Result are decoded (their variants are declared in discriminant order:
  None/Some, Ok/Err), when the tag does not overlap the payload (a tagged
  layout) or, for Option, when the niche is a whole 64-bit word (a pointer
  or NonZero niche: None is 0). Anything else is printed as its
  discriminant with a hint, instead of crashing.

Disable with `disable pretty-printer global vmkernel-rust-enum`.
"""

import gdb
import gdb.printing


def _variants(t):
    """The variant fields of a Rust enum type, or None if `t` is not one."""
    t = t.strip_typedefs()
    if t.code != gdb.TYPE_CODE_STRUCT:
        return None
    fs = t.fields()
    if len(fs) < 2 or fs[0].name is not None or not fs[0].artificial:
        return None
    vs = fs[1:]
    for f in vs:
        if not f.name or f.type.strip_typedefs().code != gdb.TYPE_CODE_STRUCT or not str(f.type).endswith("::" + f.name):
            return None
    return vs


def _overlaps(discr, variants):
    lo, hi = discr.bitpos, discr.bitpos + 8 * discr.type.sizeof
    for v in variants:
        for g in v.type.strip_typedefs().fields():
            if g.bitpos < hi and lo < g.bitpos + 8 * max(g.type.sizeof, 1):
                return True
    return False


class RustEnumPrinter:
    def __init__(self, val, variants):
        self.val = val
        self.variants = variants
        self.active = None
        self.note = None
        if len(variants) == 1:
            self.active = variants[0]
            return
        t = val.type.strip_typedefs()
        discr = t.fields()[0]
        base = str(t).split("<", 1)[0]
        tag = int(val[discr])
        names = [v.name for v in variants]
        if base in ("core::option::Option", "core::result::Result") and names in (["None", "Some"], ["Ok", "Err"]):
            if not _overlaps(discr, variants):
                if 0 <= tag < 2:
                    self.active = variants[tag]
                    return
            elif base == "core::option::Option" and discr.type.sizeof == 8:
                self.active = variants[0] if tag == 0 else variants[1]
                return
        self.note = (f"<{t}: discriminant {tag:#x}; GDB 13 cannot resolve the variant of a value it holds "
                     "itself (e.g. a returned enum): look at the registers ($x0, $x1)>")

    def to_string(self):
        if self.active is None:
            return self.note
        return str(self.active.type)

    def children(self):
        if self.active is None:
            return
        v = self.val[self.active]
        for g in v.type.strip_typedefs().fields():
            yield g.name, v[g]


def lookup(val):
    try:
        vs = _variants(val.type)
    except (gdb.error, RuntimeError):
        return None
    if vs is None:
        return None
    return RustEnumPrinter(val, vs)


class _Collection(gdb.printing.PrettyPrinter):
    def __init__(self):
        super().__init__("vmkernel-rust-enum")

    def __call__(self, val):
        return lookup(val) if self.enabled else None


def register():
    # Replace an earlier copy when the helpers are sourced again.
    gdb.pretty_printers[:] = [p for p in gdb.pretty_printers if getattr(p, "name", None) != "vmkernel-rust-enum"]
    gdb.pretty_printers.insert(0, _Collection())


register()
