# SPDX-License-Identifier: GPL-2.0-only
# Loader for vmkernel's GDB helpers (Linux: vmlinux-gdb.py).
#   (gdb) source scripts/gdb/vmkernel-gdb.py
# scripts/gdb.sh does this for you. Commands: lx-dmesg, lx-vmallocinfo, lx-break-from,
# lx-pgwalk, lx-buddyinfo, lx-symbols-phys; functions $lx_va(), $lx_pa().
# `help lx-<name>` explains each.
import os
import sys

import gdb

# No __pycache__ next to the sources.
sys.dont_write_bytecode = True

# This file's directory. Not __file__: GDB does not update it for a script
# sourced from another Python script; the code object's filename is right.
_here = os.path.dirname(os.path.abspath(sys._getframe().f_code.co_filename))
if _here not in sys.path:
    sys.path.insert(0, _here)

# Re-sourcing reloads the modules (handy while editing them).
for _m in [m for m in sys.modules if m == "vmkernel" or m.startswith("vmkernel.")]:
    del sys.modules[_m]

import vmkernel.utils  # noqa: E402,F401
import vmkernel.dmesg  # noqa: E402,F401
import vmkernel.vmalloc  # noqa: E402,F401
import vmkernel.vmaptree  # noqa: E402,F401
import vmkernel.pgtable  # noqa: E402,F401
import vmkernel.buddy  # noqa: E402,F401
import vmkernel.symbols  # noqa: E402,F401
import vmkernel.rustenum  # noqa: E402,F401
import vmkernel.addrhex  # noqa: E402,F401
import vmkernel.breakpoints  # noqa: E402,F401

gdb.write("vmkernel helpers: lx-dmesg lx-vmallocinfo lx-vmaptree lx-pgwalk lx-buddyinfo lx-break-from lx-symbols-phys $lx_va() $lx_pa()\n")
