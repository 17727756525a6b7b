"""GDB helpers for vmkernel, in the spirit of Linux's scripts/gdb/linux/."""
