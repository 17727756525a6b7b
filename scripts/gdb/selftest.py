"""The scripted GDB session of the `gdb` test layer (scripts/gdb-test.sh).

Run by gdb-multiarch -batch against a QEMU started with -S, after
vmkernel-gdb.py. Drives a real session through the vmalloc pipeline and
writes, into $VMK_GDB_OUT:

  results.txt      one "PASS name" / "FAIL name" line per check, reasons
                   indented below a FAIL (scripts/gdb-test.sh reports them)
  (stdout)         every command and GDB's answer, as a user would see
                   them: gdb-test.sh keeps it as transcript.txt
  dmesg-run_init.txt, vmallocinfo-run_init.txt, dmesg-end.txt
                   helper output for the comparisons against the console
                   log that gdb-test.sh makes once QEMU has exited

The vmalloc is whatever the boot arguments make the kernel do first (the
in-kernel suite `ktest=vmalloc`); if the kernel gets to machine_power_off
without any, the session makes one itself with an inferior call of
__vmalloc_node, so the test does not depend on which suites exist.
"""

import os
import re
import traceback

import gdb

from vmkernel import utils as u

OUT = os.environ.get("VMK_GDB_OUT", ".")
PAGE_SIZE = 4096
VMALLOC_START = 0xFFFF_8000_1000_0000
VMALLOC_END = 0xFFFF_FDFF_BFFF_0000
VM_ALLOC, VM_UNINITIALIZED = 0x02, 0x20

# Every stage must be breakable by its plain Linux name.
PIPELINE_NAMES = [
    "start_kernel", "paging_init", "__vmalloc_node_range", "__get_vm_area_node", "alloc_vmap_area",
    "__alloc_vmap_area", "find_vmap_lowest_match", "__vmalloc_area_node", "map_kernel_range", "vfree",
    "remove_vm_area", "__purge_vmap_area_lazy", "alloc_pages", "__free_pages",
    "vmalloc", "vzalloc", "ioremap", "vmap", "get_vm_area",
]

_results = open(os.path.join(OUT, "results.txt"), "w")
exit_code = []


def _on_exit(ev):
    exit_code.append(getattr(ev, "exit_code", None))


gdb.events.exited.connect(_on_exit)


class Abort(Exception):
    """The session cannot go on (the kernel is not where it must be)."""


def result(ok, name, *reasons):
    _results.write(f"{'PASS' if ok else 'FAIL'} gdb: {name}\n")
    if not ok:
        for r in reasons:
            for line in str(r).splitlines() or [""]:
                _results.write(f"     {line}\n")
    _results.flush()
    return ok


def note(text):
    _results.write(f"     ({text})\n")
    _results.flush()


def run(cmd, quiet=False):
    """Run a GDB command like a user and return (output, error).

    The command and its output go to GDB's stdout, which gdb-test.sh keeps
    as transcript.txt: GDB prints stop events ("Breakpoint 2, ...") and
    "Value returned" there itself even under to_string, so stdout is the
    one place where the session appears complete and in order.
    """
    if not quiet:
        gdb.write(f"(gdb) {cmd}\n")
        gdb.flush()
    try:
        out = gdb.execute(cmd, to_string=True)
        err = None
    except gdb.error as e:
        out, err = "", e
    if not quiet:
        gdb.write(out)
        if err is not None:
            gdb.write(f"{err}\n")
        gdb.flush()
    return out, err


def save(name, text):
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------

def short(n):
    return n.split("::")[-1] if n else None


def frame_names(f):
    """Short names of a frame: its DWARF name and, for #[export_name]
    functions, its symbol (lowest_match_bounded is find_vmap_lowest_match)."""
    names = set()
    if f.type() == gdb.DUMMY_FRAME:
        return {"<function called from gdb>"}
    if f.name():
        names.add(short(f.name()))
    fn = f.function()
    if fn is not None:
        names.add(short(fn.name))
        ln = getattr(fn, "linkage_name", None)
        if ln:
            names.add(short(ln))
    return names


def stack():
    out, f = [], gdb.newest_frame()
    while f is not None and len(out) < 64:
        out.append(f)
        f = f.older()
    return out


def chain_str():
    return " <- ".join("/".join(sorted(frame_names(f))) or "??" for f in stack())


def find_frame(name):
    """The first real (not inlined) frame of function `name`."""
    for f in stack():
        if name in frame_names(f) and f.type() != gdb.INLINE_FRAME:
            return f
    return None


def in_order(chain, names):
    """Do `names` appear in `chain` (list of name sets) in this order, innermost first?"""
    i = 0
    for names_of_frame in chain:
        if i < len(names) and names[i] in names_of_frame:
            i += 1
    return i == len(names)


def stopped_in(name):
    try:
        return find_frame(name) is not None
    except gdb.error:
        return False


def at_top(name):
    """Is the innermost real frame (inlined frames aside) in function `name`?"""
    try:
        for f in stack():
            if name in frame_names(f):
                return True
            if f.type() != gdb.INLINE_FRAME:
                return False
    except gdb.error:
        pass
    return False


def finish_frame(name):
    """Select `name`'s frame and `finish` it; returns the returned gdb.Value or None."""
    f = find_frame(name)
    if f is None:
        raise Abort(f"no frame of {name} to finish (stack: {chain_str()})")
    f.select()
    run(f"frame {stack().index(f)}")
    # "Value returned is $N" is printed, not returned, by `finish`: put a
    # sentinel in the value history; a new last value is the return value.
    sentinel = gdb.Value(0x5E171E1)
    gdb.add_history(sentinel)
    out, err = run("finish")
    if err is not None:
        raise Abort(f"finish out of {name} failed: {err}")
    after = gdb.history(0)
    same = after.type == sentinel.type and int(after) == 0x5E171E1
    return None if same else after


def u64(v):
    return int(v) & 0xFFFFFFFFFFFFFFFF


# ---------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------

def expect_error(cmd, needle, check):
    out, err = run(cmd)
    msg = str(err) if err is not None else out
    result(err is not None and needle in msg, check, f"`{cmd}` said: {msg.strip() or '(nothing)'}",
           f"expected an error containing: {needle}")


def check_names_breakable():
    missing = []
    for n in PIPELINE_NAMES:
        out, err = run(f"break {n}", quiet=True)
        if err is not None or not re.search(r"Breakpoint \d+ at 0x", out):
            missing.append(f"break {n}: {err or out.strip()}")
    run("delete", quiet=True)
    result(not missing, f"break by plain Linux name resolves for all {len(PIPELINE_NAMES)} names "
           "(pipeline, page allocator, track_caller wrappers)", *missing)


def at_reset():
    expect_error("lx-vmallocinfo", "MMU is off",
                 "lx-vmallocinfo at QEMU's first instruction fails clearly (MMU off)")
    expect_error("lx-buddyinfo", "MMU is off", "lx-buddyinfo at QEMU's first instruction fails clearly (MMU off)")


def at_start_kernel():
    run("break start_kernel")
    out, err = run("continue")
    if not stopped_in("start_kernel"):
        raise Abort(f"did not stop at start_kernel: {err or out}")
    result(True, "break start_kernel + continue: stopped in start_kernel (upper half, MMU on)")
    expect_error("lx-vmallocinfo", "vmalloc_init has not run yet",
                 "lx-vmallocinfo at start_kernel fails clearly (busy tree empty before vmalloc_init)")
    expect_error("lx-buddyinfo", "no zones yet",
                 "lx-buddyinfo at start_kernel fails clearly (no zones before free_area_init)")
    out, err = run("lx-dmesg")
    result(err is None, "lx-dmesg at start_kernel works (the ring is in .bss)", str(err))


def at_run_init():
    """After setup_arch: compare the helpers with what the kernel printed."""
    run("break vmkernel::setup::run_init")
    out, err = run("continue")
    if not stopped_in("run_init"):
        raise Abort(f"did not stop at run_init: {err or out}")
    out, err = run("lx-dmesg")
    save("dmesg-run_init.txt", out)
    result(err is None and "vmallocinfo:" in out, "lx-dmesg at run_init shows the boot log",
           str(err or out[-500:]))
    out, err = run("lx-vmallocinfo")
    save("vmallocinfo-run_init.txt", out)
    result(err is None and out.strip() != "", "lx-vmallocinfo at run_init lists the boot areas", str(err))

    out, err = run("lx-buddyinfo")
    save("buddyinfo.txt", out)
    lines = out.splitlines()
    bad = [l for l in lines if not re.fullmatch(r"Node \d+, zone +\S+ (?: *\d+ ){11}", l)]
    result(err is None and lines and not bad,
           "lx-buddyinfo prints Linux's /proc/buddyinfo format (Node N, zone NAME, 11 orders)",
           str(err or ""), *bad)
    # The free pages the lines add up to, against the zones' own counters
    # read through DWARF.
    if err is None and lines and not bad:
        listed = sum(int(c) << o for l in lines for o, c in enumerate(l.split()[4:]))
        free = int(gdb.parse_and_eval(
            "vmkernel::kmm::page_alloc::ZONES.inner.data.value.zones.nr"))
        zones_free = 0
        for i in range(free):
            z = gdb.parse_and_eval(
                f"vmkernel::kmm::page_alloc::ZONES.inner.data.value.zones.zones[{i}]").address
            zt = gdb.lookup_type("kernel::mm::buddy::Zone").pointer()
            zones_free += int(z.cast(zt).dereference()["nr_free_pages"])
        result(listed == zones_free, "lx-buddyinfo: sum of nr_free << order == the zones' nr_free_pages",
               f"buddyinfo adds up to {listed} pages, zones say {zones_free}")

    out, err = run("lx-pgwalk start_kernel")
    save("pgwalk-text.txt", out)
    m = re.search(r"L3 pte\[\d+\] in table 0x[0-9a-f]+: pte 0x[0-9a-f]{16} PAGE pa=(0x[0-9a-f]+) attr0=Normal RO UXN AF", out)
    rx = "EL1 R-X" in out
    ok = err is None and m is not None and rx
    reasons = [str(err or out)]
    if ok:
        # The page must be the one the image was loaded at.
        bi = gdb.parse_and_eval("vmkernel::setup::BOOT_INFO")
        phys_text = int(u.once_get(bi)["phys_text"])
        sk = u.elf_symbol_addr("start_kernel")
        want = (phys_text + sk - u.elf_symbol_addr("_text")) & ~(PAGE_SIZE - 1)
        ok = int(m.group(1), 16) == want
        reasons = [f"pte maps pa {m.group(1)}, expected {want:#x} (phys_text {phys_text:#x})"]
    result(ok, "lx-pgwalk start_kernel: level-3 page, Normal, RO + executable (R-X), pa = image load address + offset",
           *reasons)
    out, err = run("lx-pgwalk 0x1000")
    result(err is None and "TCR_EL1.EPD0 = 1" in out,
           "lx-pgwalk of a lower-half address reports TTBR0 walks disabled (EPD0, no identity map)",
           str(err or out))


def trigger_vmalloc():
    """Run to the first vmalloc's __get_vm_area_node; returns how it was triggered."""
    # Only __get_vm_area_node calls made by __vmalloc_node_range (ioremap and
    # vmap reach it too).
    run("lx-break-from __vmalloc_node_range __get_vm_area_node 1")
    run("break vmkernel::machine_power_off")
    out, err = run("continue")
    if stopped_in("__get_vm_area_node"):
        return "the kernel's own vmalloc (boot arguments)"
    if not stopped_in("machine_power_off"):
        raise Abort(f"stopped neither in __get_vm_area_node nor in machine_power_off: {err or out}")
    # No vmalloc in this boot: make one from GDB, with the caller Location
    # of the last busy area (the console's ioremap) as `caller`.
    note("no vmalloc before machine_power_off in this boot: the session calls __vmalloc_node(8192) itself")
    run("set $caller = (vmkernel::kmm::vmalloc::vmap_area_root.inner.data.value.list_tail.vm "
        "as *mut vmkernel::kmm::vmalloc::VmStruct).caller")
    out, err = run("call vmkernel::kmm::vmalloc::__vmalloc_node(8192, 1, true, $caller)")
    if not stopped_in("__get_vm_area_node"):
        raise Abort(f"the inferior call did not reach __get_vm_area_node: {err or out}")
    return "an inferior call of __vmalloc_node from GDB (no vmalloc in this boot)"


def pipeline():
    how = trigger_vmalloc()
    note(f"vmalloc traced: {how}")
    run("bt")
    chain = [frame_names(f) for f in stack()]
    # __vmalloc_node and vmalloc tail-call __vmalloc_node_range in an
    # optimised build: their frames are gone, the next frame is their caller.
    result(in_order(chain, ["__get_vm_area_node", "__vmalloc_node_range"]),
           "bt at __get_vm_area_node: __get_vm_area_node <- __vmalloc_node_range <- caller", chain_str())
    rng = find_frame("__vmalloc_node_range")
    if rng is None:
        raise Abort(f"__get_vm_area_node was not called from __vmalloc_node_range: {chain_str()}")
    req = None
    try:
        v = rng.read_var("size")
        if not v.is_optimized_out:
            req = int(v)
    except (gdb.error, ValueError):
        pass

    # Down into the free-tree search.
    run("tbreak find_vmap_lowest_match")
    run("continue")
    chain = [frame_names(f) for f in stack()]
    run("bt")
    result(in_order(chain, ["find_vmap_lowest_match", "__alloc_vmap_area", "alloc_vmap_area",
                            "__get_vm_area_node", "__vmalloc_node_range"]),
           "bt at find_vmap_lowest_match: <- __alloc_vmap_area <- alloc_vmap_area <- __get_vm_area_node "
           "<- __vmalloc_node_range", chain_str())
    run("info args")
    free_va = finish_frame("find_vmap_lowest_match")
    result(free_va is not None and u64(free_va) != 0, "finish find_vmap_lowest_match: a free vmap_area",
           f"returned {free_va}")
    if free_va is not None and u64(free_va):
        run("p *$")

    area = finish_frame("__get_vm_area_node")
    if area is None or u64(area) == 0:
        raise Abort(f"__get_vm_area_node returned {area}")
    run("p *$")
    vm = area.dereference()
    addr, size = u64(vm["addr"]), u64(vm["size"])
    flags = int(vm["flags"]["__0"])
    reasons = [f"addr {addr:#x} size {size:#x} flags {flags:#x} requested {req}"]
    ok = VMALLOC_START <= addr and addr + size <= VMALLOC_END and addr % PAGE_SIZE == 0
    ok = ok and flags & (VM_ALLOC | VM_UNINITIALIZED) == (VM_ALLOC | VM_UNINITIALIZED)
    if req is not None:
        ok = ok and size == -(-req // PAGE_SIZE) * PAGE_SIZE + PAGE_SIZE
    result(ok, "finish __get_vm_area_node: vm_struct in the vmalloc range, VM_ALLOC|VM_UNINITIALIZED, "
           "size = request + guard page", *reasons)

    run("break __vmalloc_area_node")
    run("continue")
    run("bt")
    chain = [frame_names(f) for f in stack()]
    ok = in_order(chain, ["__vmalloc_area_node", "__vmalloc_node_range"])
    ok = ok and not any("__get_vm_area_node" in c for c in chain)
    result(ok, "bt at __vmalloc_area_node: __vmalloc_area_node <- __vmalloc_node_range "
           "(__get_vm_area_node has returned)", chain_str())
    f = find_frame("__vmalloc_area_node")
    f.select()
    run(f"frame {stack().index(f)}")
    run("info args")
    arg = f.read_var("area")
    result(u64(arg) == u64(area), "__vmalloc_area_node's `area` argument is what __get_vm_area_node returned",
           f"area = {u64(arg):#x}, __get_vm_area_node returned {u64(area):#x}")

    # Step through a few lines, then into the page allocator and the mapper.
    moved = []
    for cmd in ("next", "next", "next", "step"):
        before = gdb.selected_frame().find_sal().line
        out, err = run(cmd)
        moved.append(f"{cmd}: line {before} -> {gdb.selected_frame().find_sal().line} {err or ''}".strip())
    ok = stopped_in("__vmalloc_area_node") and all("error" not in m.lower() for m in moved)
    result(ok, "next/next/next/step inside __vmalloc_area_node", *moved, chain_str())
    run("bt 1")
    if "__vmalloc_area_node" not in frame_names(gdb.newest_frame()):
        run("finish")  # `step` went into a callee (an unoptimised build does)
    # The page allocator as called by this vmalloc only (the heap may call it too).
    run("lx-break-from __vmalloc_area_node alloc_pages 1")
    bp = gdb.breakpoints()[-1].number
    run("continue")
    run(f"delete {bp}")
    chain = [frame_names(f) for f in stack()]
    result(in_order(chain, ["alloc_pages", "__vmalloc_area_node", "__vmalloc_node_range"]),
           "alloc_pages (lx-break-from __vmalloc_area_node): the buddy allocator called from __vmalloc_area_node", chain_str())
    run("bt 3")
    # alloc_pages returns Option<PhysAddr>: GDB 13 alone dies printing it
    # (see scripts/gdb/vmkernel/rustenum.py).
    page = finish_frame("alloc_pages")
    shown = str(page) if page is not None else None
    m = re.fullmatch(r"core::option::Option<kernel::mm::layout::PhysAddr>::Some = "
                     r"\{__0 = kernel::mm::layout::PhysAddr \((\d+)\)\}", shown or "")
    result(m is not None, "finish alloc_pages prints its Option<PhysAddr> (Some = {__0 = PhysAddr (..)}) "
           "without crashing GDB 13", f"value: {shown}")
    first_page = int(m.group(1)) if m else None
    run("tbreak map_kernel_range")
    run("continue")
    chain = [frame_names(f) for f in stack()]
    result(in_order(chain, ["map_kernel_range", "__vmalloc_area_node"]),
           "tbreak map_kernel_range: the PTEs are written from __vmalloc_area_node", chain_str())
    f = find_frame("map_kernel_range")
    if f is not None:
        f.select()
        run(f"frame {stack().index(f)}")
        run("info args")
    # Not `finish` here: map_kernel_range returns a Result, and GDB reads
    # aggregate return values by the C ABI ("Cannot access memory at
    # address 0x7"). __vmalloc_area_node returns a plain usize.

    ret = finish_frame("__vmalloc_area_node")
    got = u64(ret) if ret is not None else None
    result(got == addr and VMALLOC_START <= addr < VMALLOC_END,
           "finish __vmalloc_area_node: returns the area's address, inside [VMALLOC_START, VMALLOC_END)",
           f"returned {got if got is None else hex(got)}, area addr {addr:#x}")

    # Back in __vmalloc_node_range: once it returns, the area is published.
    finish_frame("__vmalloc_node_range")
    out, err = run("lx-vmallocinfo")
    nr = size // PAGE_SIZE - 1
    line = next((l for l in out.splitlines() if l.startswith(f"0x{addr:016x}-")), None)
    ok = line is not None and f" pages={nr} vmalloc" in line
    result(ok, f"lx-vmallocinfo after __vmalloc_node_range returned: the new area with pages={nr} vmalloc",
           f"line: {line}", str(err or ""))
    out, err = run(f"lx-pgwalk {addr:#x}")
    pages0 = u64(vm["pages"].dereference()["__0"]) if u64(vm["pages"]) else None
    m = re.search(r"L3 pte\[\d+\] .* PAGE pa=(0x[0-9a-f]+) attr0=Normal RW XN AF SH=inner", out)
    ok = err is None and m is not None and pages0 is not None and int(m.group(1), 16) == pages0
    result(ok, "lx-pgwalk of the new area: level-3 page, Normal RW XN, pa = area->pages[0]",
           f"pages[0] = {pages0 if pages0 is None else hex(pages0)}", str(err or out))
    if first_page is not None and pages0 is not None:
        result(first_page == pages0, "the first page alloc_pages returned is area->pages[0]",
               f"alloc_pages gave {first_page:#x}, pages[0] = {pages0:#x}")
    out, err = run(f"lx-pgwalk {addr + size - PAGE_SIZE:#x}")
    result(err is None and "=> not mapped (no valid entry at level 3, pte)" in out,
           "lx-pgwalk of the guard page: not mapped at level 3", str(err or out))
    run(f"x/2gx {addr:#x}")


def to_the_end():
    """Remove the pipeline breakpoints, stop at machine_power_off for the last
    log, then let the kernel exit."""
    run("delete")
    run("break vmkernel::machine_power_off")
    # After an inferior call, the first continue returns to where GDB made
    # the call (a silent stop): continue until the kernel itself gets there.
    for _ in range(5):
        if at_top("machine_power_off") and not any(f.type() == gdb.DUMMY_FRAME for f in stack()):
            break
        out, err = run("continue")
        if exit_code or err is not None:
            break
    if at_top("machine_power_off"):
        out, err = run("lx-dmesg")
        save("dmesg-end.txt", out)
    run("delete")
    for _ in range(3):
        if exit_code:
            break
        out, err = run("continue")
        if err is not None:
            break
    result(exit_code == [0], "continue to the end: the kernel powers off, QEMU exits with status 0",
           f"exit code {exit_code}")


def main():
    try:
        check_names_breakable()
        at_reset()
        at_start_kernel()
        at_run_init()
        pipeline()
        to_the_end()
    except Abort as e:
        result(False, "session aborted", str(e))
    except Exception:  # a bug here must be a FAIL line, not a silent stop
        result(False, "session aborted by an exception in selftest.py", traceback.format_exc())
    finally:
        _results.close()
        # Never leave QEMU running.
        try:
            gdb.execute("kill", to_string=True)
        except gdb.error:
            pass


main()
