# SPDX-License-Identifier: GPL-2.0-only
"""GDB helpers for vmkernel, in the spirit of Linux's scripts/gdb/linux/."""
