# SPDX-License-Identifier: GPL-2.0-only
"""lx-dmesg: the kernel log ring (src/kernel/printk.rs).

`__log_buf` is a byte ring of LOG_BUF_LEN bytes (its DWARF array length);
`log_next` counts every byte ever written, so byte i of the log is at
`__log_buf[i % LOG_BUF_LEN]` and the ring holds bytes
[max(0, log_next - LOG_BUF_LEN), log_next). Unlike Linux 5.10's printk
records there is no per-record header: the ring is the text itself,
timestamps included, exactly what `dmesg` in the kernel prints.
"""

import gdb

from vmkernel import utils


def log_text():
    buf = utils.lookup("__log_buf")
    length = buf.type.strip_typedefs().sizeof
    nxt = utils.atomic(utils.value("log_next"))
    base = int(buf.value().address)
    start = max(0, nxt - length)
    if nxt == start:
        return b""
    a, b = start % length, nxt % length
    if nxt - start == length or a >= b:
        data = bytes(utils.read(base + a, length - a, "__log_buf")) + bytes(utils.read(base, b, "__log_buf"))
    else:
        data = bytes(utils.read(base + a, b - a, "__log_buf"))
    return data


class LxDmesg(utils.LxCommand):
    """Print the kernel log ring (__log_buf / log_next), oldest first.

Usage: lx-dmesg
The same bytes the kernel's own dmesg prints: every printk line with its
timestamp, plus raw console output (KTAP, the shell). Works from the first
instruction of start_kernel on (the ring is in .bss, mapped since head.S
turned the MMU on)."""

    def __init__(self):
        super().__init__("lx-dmesg", gdb.COMMAND_DATA)

    def run(self, arg, from_tty):
        utils.need_target()
        data = log_text()
        if not data:
            gdb.write("(the log is empty: nothing printed yet)\n")
            return
        text = data.decode("utf-8", errors="replace")
        gdb.write(text if text.endswith("\n") else text + "\n")


LxDmesg()
