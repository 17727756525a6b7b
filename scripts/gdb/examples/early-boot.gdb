# SPDX-License-Identifier: GPL-2.0-only
# From QEMU's first instruction to start_kernel, across the MMU switch.
#   scripts/gdb.sh --batch -x scripts/gdb/examples/early-boot.gdb -append poweroff
# (docs/debugging.md shows its output.) Each command is echoed with a '+'.
set trace-commands on
info registers pc
# A symbol breakpoint is at the link (upper-half) address: it cannot fire
# while head.S runs at the physical load address with the MMU off.
break primary_entry
# A hardware breakpoint on the physical address of _start does.
hbreak *0x40200000
continue
x/2i $pc
x/s 0x40200038
# The ELF's symbols again, shifted to the physical load address.
lx-symbols-phys
info breakpoints
break __primary_switch
continue
info registers x0 x21
continue
x/6i $pc
# Past `msr ttbr1_el1`, before `msr sctlr_el1`: TTBR1 set, MMU still off.
stepi 5
p/x $TTBR1_EL1
lx-pgwalk 0xffff800010000800
continue
bt
