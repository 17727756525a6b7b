# SPDX-License-Identifier: GPL-2.0-only
"""lx-buddyinfo: free blocks per order per zone (src/mm/buddy.rs).

The zones live in `vmkernel::mm::page_alloc::ZONES`, a
spin::Mutex<PgData { zones: Zones { zones: [Option<Zone>; N], nr } }>.
The output is the kernel's Zone::buddyinfo, i.e. Linux's /proc/buddyinfo:
    Node 0, zone   Normal      3      2 ...
"""

import gdb

from vmkernel import utils


def zones():
    """The live `Zone` values, in the kernel's zone order."""
    pg = utils.spinlock_data(utils.value("ZONES"))
    zs = pg["zones"]
    nr = int(zs["nr"])
    arr = zs["zones"]
    zone_t = utils.lookup_type("Zone")
    elem_t = arr.type.strip_typedefs().target()
    out = []
    for i in range(nr):
        # Raw layout instead of the enum: GDB 13 hits an internal error
        # ("gdbtypes.h: field: Assertion idx >= 0") reading the variant of a
        # niche-optimised Option<Zone>. Option<Zone> has Zone's layout (the
        # niche is `name`'s non-null data pointer): a null name means None.
        addr = int(arr.address) + i * elem_t.sizeof
        z = gdb.Value(addr).cast(zone_t.pointer()).dereference()
        if int(z["name"]["data_ptr"]) == 0:
            continue
        out.append(z)
    return out


def buddyinfo_lines():
    lines = []
    for z in zones():
        fa = z["free_area"]
        n = fa.type.strip_typedefs().range()[1] + 1
        counts = "".join(f"{int(fa[o]['nr_free']):>6} " for o in range(n))
        lines.append(f"Node {int(z['node'])}, zone {utils.rust_str(z['name']):>8} {counts}")
    return lines


class LxBuddyinfo(utils.LxCommand):
    """Free blocks of each order in each zone, as /proc/buddyinfo.

Usage: lx-buddyinfo
One line per zone: "Node N, zone NAME" then free_area[order].nr_free for
order 0 .. MAX_ORDER-1. Needs free_area_init (mm_init) to have run."""

    def __init__(self):
        super().__init__("lx-buddyinfo", gdb.COMMAND_DATA)

    def run(self, arg, from_tty):
        utils.need_target()
        zs = utils.value("ZONES")
        if int(utils.spinlock_data(zs)["zones"]["nr"]) == 0:
            utils.fail("lx-buddyinfo: no zones yet: the buddy allocator is built by free_area_init "
                       "in mm_init, after paging_init (break later, e.g. at vmalloc_init)")
        if utils.spin_is_locked(zs):
            gdb.write("warning: the zone lock is held (the kernel is inside the allocator): "
                      "counts may be mid-update\n")
        for line in buddyinfo_lines():
            gdb.write(line + "\n")


LxBuddyinfo()
