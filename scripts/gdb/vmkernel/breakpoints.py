# SPDX-License-Identifier: GPL-2.0-only
"""lx-break-from: a breakpoint that stops only when a given caller is on the stack.

`break __get_vm_area_node if $_any_caller_matches("__vmalloc_node_range", 3)`
would be GDB's own way, but on this bare-metal target it fails with
"evaluation of this expression requires the program to have a function
malloc" (GDB needs target memory for the string argument in Rust mode), so
the check runs in Python instead.
"""

import gdb

from vmkernel import utils


def frame_matches(f, name):
    """Does frame `f` belong to function `name` (last path segment or symbol)?"""
    cands = []
    if f.name():
        cands.append(f.name())
    fn = f.function()
    if fn is not None:
        cands.append(fn.name)
        ln = getattr(fn, "linkage_name", None)
        if ln:
            cands.append(ln)
    return any(c == name or c.endswith("::" + name) for c in cands)


class CallerBreakpoint(gdb.Breakpoint):
    def __init__(self, spec, caller, depth):
        self.caller = caller
        self.depth = depth
        super().__init__(spec)

    def stop(self):
        # Depth counts real frames: an optimised build stacks many inlined
        # frames (atomics, lock guards) on top of the function itself.
        f = gdb.newest_frame()
        while f is not None and f.type() == gdb.INLINE_FRAME:
            f = f.older()  # up to the breakpoint's own function
        f = f.older() if f is not None else None
        real = 0
        while f is not None and real < self.depth:
            if frame_matches(f, self.caller):
                return True
            if f.type() != gdb.INLINE_FRAME:
                real += 1
            f = f.older()
        return False


class LxBreakFrom(gdb.Command):
    """Break at LOCATION only when it was called (directly or not) from CALLER.

Usage: lx-break-from CALLER LOCATION [DEPTH]
Stops at LOCATION only if CALLER is among the DEPTH (default 8) function
frames above it (functions inlined into them are searched too, and do not
count towards DEPTH). Examples:
  lx-break-from __vmalloc_node_range __get_vm_area_node   (not ioremap's)
  lx-break-from __vmalloc_area_node alloc_pages           (vmalloc's pages only)
Delete it like any breakpoint."""

    def __init__(self):
        super().__init__("lx-break-from", gdb.COMMAND_BREAKPOINTS, gdb.COMPLETE_LOCATION)

    def invoke(self, arg, from_tty):
        args = gdb.string_to_argv(arg)
        if len(args) not in (2, 3):
            utils.fail("usage: lx-break-from CALLER LOCATION [DEPTH]")
        depth = int(args[2]) if len(args) == 3 else 8
        bp = CallerBreakpoint(args[1], args[0], depth)
        frames = "the direct caller" if depth == 1 else f"the {depth} callers above it"
        gdb.write(f"(breakpoint {bp.number} stops only when {args[0]} is {frames})\n")


LxBreakFrom()
