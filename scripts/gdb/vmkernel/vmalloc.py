# SPDX-License-Identifier: GPL-2.0-only
"""lx-vmallocinfo: /proc/vmallocinfo from the busy tree and the purge list.

Data structures (src/mm/vmalloc.rs, src/mm/vmap_tree.rs):

    vmap_area_root: spin::Mutex<VmapAreaRoot>
        VmapAreaRoot { root, list_head, list_tail, count, augmented }
    VmapArea { va_start, va_end, rb_node: RbNode { rb_parent, rb_right,
               rb_left, rb_color }, subtree_max_size, list_prev, list_next,
               vm: VmapOwner, purge_next }
    VmapOwner: #[repr(usize)] enum { None = 0, VmStruct(NonNull<VmStruct>) = 1,
               Block(NonNull<VmapBlock>) = 2 }: a tag word, then the pointer
    VmStruct { next, addr, size, flags: VmFlags(u32), pages, nr_pages,
               phys_addr: PhysAddr(usize), caller: &'static Location }

`VmapArea.vm` is read as its two words rather than through GDB's Rust enum
support, which resolves the variant only for some values (see rustenum.py).
The lines are the kernel's write_vm_line(), byte for byte:

    0x<start>-0x<end> <size:7> <file>:<line> [pages=N] [phys=0x%016x] [ioremap] [vmalloc] [vmap] [user] [vpages]
"""

import gdb

from vmkernel import utils

# Stop a walk of a corrupt list instead of looping forever.
MAX_AREAS = 1 << 20


def walk_list(root_value, what):
    """VmapArea values of a VmapAreaRoot, in address (list) order."""
    root = utils.spinlock_data(root_value)
    va = root["list_head"]
    count = int(root["count"])
    n = 0
    while int(va) != 0:
        if n >= MAX_AREAS or n >= count:
            utils.fail(f"{what}: list longer than its count ({count}): corrupt list_next links?")
        try:
            node = va.dereference()
            node.fetch_lazy()
        except gdb.MemoryError:
            utils.fail(f"{what}: cannot read vmap_area at {int(va):#x} (list_next of area #{n}); "
                       "the nodes live in the linear map, which exists only after paging_init")
        yield node
        va = node["list_next"]
        n += 1


# VmapOwner's discriminants (src/mm/vmap_tree.rs).
OWNER_NONE = 0
OWNER_VM_STRUCT = 1
OWNER_BLOCK = 2


def owner(va):
    """(tag, pointer) of a VmapArea's `vm: VmapOwner`."""
    words = va["vm"].address.cast(gdb.lookup_type("u64").pointer())
    tag = int(words[0])
    if tag not in (OWNER_NONE, OWNER_VM_STRUCT, OWNER_BLOCK):
        utils.fail(f"vmap_area at {int(va.address):#x}: VmapOwner tag {tag}: corrupt node?")
    return tag, int(words[1])


def vm_flags(vm):
    # VmFlags is a #[repr(transparent)] tuple struct: VmFlags(u32).
    f = vm["flags"]
    return int(f["__0"]) if utils.has_field(f, "__0") else int(f)


def vm_line(vm):
    """The kernel's write_vm_line() for one VmStruct."""
    addr, size = int(vm["addr"]), int(vm["size"])
    s = f"0x{addr:016x}-0x{addr + size:016x} {size:7}"
    s += " " + utils.location_str(vm["caller"])
    nr_pages = int(vm["nr_pages"])
    if nr_pages:
        s += f" pages={nr_pages}"
    pa = vm["phys_addr"]
    phys = int(pa["__0"]) if utils.has_field(pa, "__0") else int(pa)
    if phys:
        s += f" phys=0x{phys:016x}"
    flags = vm_flags(vm)
    if flags & utils.VM_IOREMAP:
        s += " ioremap"
    if flags & utils.VM_ALLOC:
        s += " vmalloc"
    if flags & utils.VM_MAP:
        s += " vmap"
    if flags & utils.VM_USERMAP:
        s += " user"
    # The kernel's page_array_is_vmalloced(): the array is vmalloc'd when it
    # needs more than a page (the heap's boot arena is inside the vmalloc
    # range, so the address cannot tell).
    usable = size if flags & utils.VM_NO_GUARD else size - utils.PAGE_SIZE
    if int(vm["pages"]) and (usable // utils.PAGE_SIZE) * 8 > utils.PAGE_SIZE:
        s += " vpages"
    return s


def vmallocinfo_lines(show_uninitialized=False):
    vm_t = utils.lookup_type("VmStruct").pointer()
    lines = []
    for va in walk_list(utils.value("vmap_area_root"), "vmap_area_root"):
        start, end = int(va["va_start"]), int(va["va_end"])
        tag, ptr = owner(va)
        if tag != OWNER_VM_STRUCT:
            lines.append(f"0x{start:016x}-0x{end:016x} {end - start:7} vm_map_ram")
            continue
        vm = gdb.Value(ptr).cast(vm_t).dereference()
        if show_uninitialized and vm_flags(vm) & utils.VM_UNINITIALIZED:
            # Being set up (between __get_vm_area_node and the end of
            # __vmalloc_node_range): listed as any other, as 5.10's s_show.
            lines.append(vm_line(vm) + "  <- VM_UNINITIALIZED (being set up)")
            continue
        lines.append(vm_line(vm))
    # In list order, newest first, as 5.10's show_purge_info.
    for start, end in walk_purge_list():
        lines.append(f"0x{start:016x}-0x{end:016x} {end - start:7} unpurged vm_area")
    return lines


def walk_purge_list():
    """(start, end) of each lazily freed area on vmap_purge_list, an llist
    (an AtomicPtr head, linked through VmapArea.purge_next)."""
    va = utils.value("vmap_purge_list")["p"]["value"]
    n = 0
    while int(va) != 0:
        if n >= MAX_AREAS:
            utils.fail("vmap_purge_list: longer than any real list: corrupt purge_next links?")
        try:
            node = va.dereference()
            node.fetch_lazy()
        except gdb.MemoryError:
            utils.fail(f"vmap_purge_list: cannot read vmap_area at {int(va):#x} (area #{n})")
        yield int(node["va_start"]), int(node["va_end"])
        va = node["purge_next"]
        n += 1


class LxVmallocinfo(utils.LxCommand):
    """Print /proc/vmallocinfo as the kernel would, from its busy tree and purge list.

Usage: lx-vmallocinfo [-a]
Walks vmap_area_root's address-sorted list (list_head -> list_next) and
prints each area's vm_struct in the kernel's vmallocinfo format, then the
lazily freed areas of vmap_purge_list as "unpurged vm_area".
-a  mark the areas still being set up (VM_UNINITIALIZED), which the
    kernel lists like the others: useful at a breakpoint inside the
    vmalloc pipeline."""

    def __init__(self):
        super().__init__("lx-vmallocinfo", gdb.COMMAND_DATA)

    def run(self, arg, from_tty):
        utils.need_target()
        args = gdb.string_to_argv(arg)
        if args not in ([], ["-a"]):
            utils.fail("usage: lx-vmallocinfo [-a]")
        busy = utils.value("vmap_area_root")
        if int(utils.spinlock_data(busy)["count"]) == 0:
            utils.fail("lx-vmallocinfo: vmap_area_root is empty: vmalloc_init has not run yet "
                       "(it registers the kernel image segments in mm_init, after paging_init)")
        if utils.spin_is_locked(busy):
            gdb.write("warning: vmap_area_lock is held (the kernel is inside the vmalloc code): "
                      "the list may be mid-update\n")
        for line in vmallocinfo_lines(show_uninitialized=bool(args)):
            gdb.write(line + "\n")


LxVmallocinfo()
