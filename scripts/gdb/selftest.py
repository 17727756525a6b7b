# SPDX-License-Identifier: GPL-2.0-only
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

The kernel boots into its serial shell; the session types shell commands
into the console (a QEMU socket chardev; gdb-test.sh passes keystrokes on
from the FIFO $VMK_CONSOLE_IN) to reach each
function, as a user at the console would: `vmalloc 12345` for the traced
vmalloc, then one command per pipeline name for the per-name checks (break
NAME -> frame #0 is NAME, `info args`, `step`/`next`, `finish`), and
`poweroff` at the end. With VMK_GDB_MODE=transcript it runs only the short
default session that docs/debugging.md shows.
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
    """The last path component of a Rust name, generic arguments dropped:
    vmkernel::arch::kernel::traps::run_catching<F, R> -> run_catching."""
    if not n:
        return None
    out, depth = [], 0
    for c in n:
        if c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(c)
    return "".join(out).split("::")[-1]


class Console:
    """The kernel's serial console, as a user types into it.

    gdb-test.sh connects to QEMU's console socket, keeps it drained and
    types what is written to the FIFO $VMK_CONSOLE_IN. Bytes wait in the
    PL011 and the socket until the shell reads them, so a command can be
    typed while the kernel is stopped; it runs at the next `continue`."""

    def __init__(self, path):
        self.path = path

    def type(self, line):
        """Type `line` and Enter at the shell prompt (echoed in the transcript)."""
        if not self.path:
            raise Abort("no console input (VMK_CONSOLE_IN is not set)")
        gdb.write(f"(console) vmkernel# {line}\n")
        gdb.flush()
        with open(self.path, "wb") as f:
            f.write(line.encode() + b"\r")


console = Console(os.environ.get("VMK_CONSOLE_IN"))


def frame_names(f):
    """Short names of a frame: its DWARF name and, for #[export_name]
    functions, its symbol."""
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


def display_names(names):
    """A frame's names for a message: the readable ones (no mangled
    linkage names, whose hash changes with every build)."""
    return "/".join(sorted(n for n in names if not n.startswith(("_ZN", "_R")))) or "??"


def chain_str():
    return " <- ".join(display_names(frame_names(f)) for f in stack())


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


def arg_value(frame, name):
    """The value of `frame`'s argument `name` (a local of the same name may
    shadow it: `let size = size.next_multiple_of(PAGE_SIZE)`)."""
    b = frame.block()
    while b is not None and b.function is None:
        b = b.superblock
    for sym in b or []:
        if sym.is_argument and sym.name == name:
            return sym.value(frame)
    return None


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
    # start_kernel never returns: no finish.
    check_name("start_kernel", stopped=True, finish=False, want_args={
        "fdt_pa": lambda t: t.startswith("0x"), "phys_text": lambda t: t.startswith("0x")})
    check_name("paging_init", want_args={"uart_phys": 0x0900_0000}, returns=False)


def at_run_init():
    """After setup_arch: compare the helpers with what the kernel printed."""
    run("break vmkernel::init::main::run_init")
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
    areas = len(out.splitlines()) if err is None else -1
    # lx-vmaptree: one DOT node per area, as many as the kernel counts (the
    # busy tree: the areas lx-vmallocinfo lists; the free tree: its count
    # read through DWARF), each area once.
    free_count = int(gdb.parse_and_eval("vmkernel::mm::vmalloc::free_vmap_area_root.data.value.count"))
    for kind, want in (("busy", areas), ("free", free_count)):
        dot = os.path.join(OUT, f"vmaptree-{kind}.dot")
        out, err = run(f"lx-vmaptree {kind} --path 0x2000 {dot}" if kind == "free" else f"lx-vmaptree {kind} {dot}")
        text = open(dot).read() if err is None and os.path.exists(dot) else ""
        labels = re.findall(r'^  n\d+ \[label="(0x[0-9a-f]+)-', text, re.M)
        result(err is None and len(labels) == want and len(set(labels)) == want,
               f"lx-vmaptree {kind}: one DOT node per area ({want}), each once",
               f"{len(labels)} nodes, {len(set(labels))} distinct", str(err or out))
        if kind == "free":
            result("lowest match" in text and "penwidth=4" in text,
                   "lx-vmaptree free --path 0x2000: the walk's nodes outlined, the match marked", out)

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
            "vmkernel::mm::page_alloc::ZONES.data.value.zones.nr"))
        zones_free = 0
        for i in range(free):
            z = gdb.parse_and_eval(
                f"vmkernel::mm::page_alloc::ZONES.data.value.zones.zones[{i}]").address
            zt = gdb.lookup_type("vmkernel::mm::buddy::Zone").pointer()
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
        bi = gdb.parse_and_eval("vmkernel::arch::kernel::setup::BOOT_INFO")
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


REQUEST = 12345  # the traced `vmalloc 12345`: 4 pages with the guard page


def wait_for_shell(quiet=False):
    """Run until the serial shell's loop starts: typing earlier can lose
    bytes while the boot code still sets the UART up."""
    run("tbreak vmkernel::shell::run", quiet=quiet)
    out, err = run("continue", quiet=quiet)
    if not stopped_in("run"):
        raise Abort(f"the kernel did not reach the serial shell: {err or out}")


def trigger_vmalloc():
    """Type `vmalloc REQUEST` at the shell and run to its __get_vm_area_node."""
    # Only __get_vm_area_node calls made by __vmalloc_node_range (ioremap and
    # vmap reach it too).
    wait_for_shell()
    run("lx-break-from __vmalloc_node_range __get_vm_area_node 1")
    console.type(f"vmalloc {REQUEST}")
    out, err = run("continue")
    if not stopped_in("__get_vm_area_node"):
        raise Abort(f"`vmalloc {REQUEST}` at the shell did not reach __get_vm_area_node: {err or out}")
    return f"`vmalloc {REQUEST}` typed at the serial shell"


# What `bt` must show below a shell command: the command runs under
# catch_fault, i.e. through the asm trampoline call_with_fault_recovery,
# called from the shell's loop (run -> execute -> run_catching).
SHELL_TAIL = ["call_with_fault_recovery", "run_catching", "catch_fault", "execute", "run"]


def pipeline():
    how = trigger_vmalloc()
    note(f"vmalloc traced: {how}")
    run("bt")
    chain = [frame_names(f) for f in stack()]
    # __vmalloc_node and vmalloc tail-call __vmalloc_node_range in an
    # optimised build: their frames are gone, the next frame is their caller.
    result(in_order(chain, ["__get_vm_area_node", "__vmalloc_node_range"]),
           "bt at __get_vm_area_node: __get_vm_area_node <- __vmalloc_node_range <- caller", chain_str())
    result(in_order(chain, ["__get_vm_area_node", "__vmalloc_node_range", "vmalloc", "cmd_vmalloc"] + SHELL_TAIL),
           "bt from a shell command unwinds through the trampoline: ... <- cmd_vmalloc <- "
           "call_with_fault_recovery <- run_catching <- catch_fault <- execute <- run (the shell loop)",
           chain_str())
    # Wrong before the trampoline had CFI: "Backtrace stopped: previous frame
    # identical to this frame" right after call_with_fault_recovery.
    rng = find_frame("__vmalloc_node_range")
    if rng is None:
        raise Abort(f"__get_vm_area_node was not called from __vmalloc_node_range: {chain_str()}")
    req = None
    try:
        # The argument, not the page-rounded local that shadows it.
        v = arg_value(rng, "size")
        if v is not None and not v.is_optimized_out:
            req = int(v)
    except (gdb.error, ValueError):
        pass
    result(req == REQUEST, f"__vmalloc_node_range's `size` argument is the {REQUEST} bytes the shell asked for",
           f"size = {req}")

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
    m = re.fullmatch(r"core::option::Option<vmkernel::arch::memory::PhysAddr>::Some = "
                     r"\{__0 = vmkernel::arch::memory::PhysAddr \((0x[0-9a-f]+|\d+)\)\}", shown or "")
    result(m is not None, "finish alloc_pages prints its Option<PhysAddr> (Some = {__0 = PhysAddr (..)}) "
           "without crashing GDB 13", f"value: {shown}")
    first_page = int(m.group(1), 0) if m else None
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


# ---------------------------------------------------------------------------
# Every pipeline name: break, info args, step/next, finish
# ---------------------------------------------------------------------------

def parse_args(text):
    """`info args` output -> {name: value text} (one `name = value` per line)."""
    args = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+) = (.*)$", line)
        if m:
            args[m.group(1)] = m.group(2)
    return args


def int_of(text):
    """The integer an `info args` value shows: 12345, 0x3039, (*mut u8) 0xffff..."""
    m = re.search(r"(0x[0-9a-f]+|-?\d+)\s*$", text.strip())
    return int(m.group(1), 0) if m else None


def check_name(name, trigger=None, want_args=None, stopped=False, returns=True, finish=True):
    """The checks every pipeline name gets, as a user would run them.

    break NAME (+ the shell command `trigger`), continue: frame #0 must be
    NAME itself, not an inlined callee. `info args` must show `want_args`
    ({arg: int or predicate}). `step` must enter a callee of NAME or move to
    another line of NAME, and (back in NAME) `next` to another line.
    `finish` must come back to the frame that called NAME and, unless NAME
    returns nothing (`returns=False`), print "Value returned". Returns the
    returned gdb.Value (or None)."""
    want_args = want_args or {}
    if not stopped:
        run("delete", quiet=True)
        run(f"break {name}")
        if trigger:
            console.type(trigger)
        out, err = run("continue")
        if not stopped_in(name):
            result(False, f"break {name}: frame #0 is {name}",
                   f"did not stop in {name} ({'`' + trigger + '`' if trigger else 'boot'}): {err or out}")
            return None
        run("delete", quiet=True)
    f0 = gdb.newest_frame()
    result(f0.type() != gdb.INLINE_FRAME and name in frame_names(f0), f"break {name}: frame #0 is {name}",
           f"frame #0 is {display_names(frame_names(f0))}"
           f"{' (an inlined callee)' if f0.type() == gdb.INLINE_FRAME else ''}; stack: {chain_str()}")
    fr = find_frame(name)
    fr.select()
    caller = fr.older()
    caller_names = frame_names(caller) if caller is not None else set()

    out, err = run("info args")
    args = parse_args(out)
    bad = []
    for arg, want in want_args.items():
        shown = args.get(arg)
        if shown is None:
            bad.append(f"no argument `{arg}` in: {out.strip() or err}")
        elif callable(want):
            if not want(shown):
                bad.append(f"{arg} = {shown}: not what the caller passed")
        elif int_of(shown) != want:
            bad.append(f"{arg} = {shown}, expected {want} ({want:#x})")
    what = ", ".join(a if callable(w) else f"{a} = {w:#x}" if w >= 0x0800_0000 else f"{a} = {w}"
                     for a, w in want_args.items()) or "its arguments"
    result(err is None and not bad, f"{name}: info args shows {what}", *bad, str(err or ""))

    # step: into a callee of NAME, or to another line of NAME.
    moved = []
    line0, pc0 = gdb.selected_frame().find_sal().line, gdb.selected_frame().pc()
    out, err = run("step")
    f = gdb.newest_frame()
    if fr.is_valid() and f == fr:
        # Back from a callee without line info (core's precompiled code),
        # GDB stops at the next statement boundary, which can be a later
        # statement on the same line (`a || b.is_power_of_two()`).
        ok_step = f.find_sal().line != line0 or f.pc() > pc0
        moved.append(f"step: line {line0} -> {f.find_sal().line} in {name} (pc {pc0:#x} -> {f.pc():#x})")
    else:
        ok_step = fr.is_valid() and f.older() == fr
        moved.append(f"step: line {line0} of {name} -> {display_names(frame_names(f))} "
                     f"line {f.find_sal().line} (caller {display_names(frame_names(f.older())) if f.older() else '?'})")
        if ok_step:
            run("finish")  # back to NAME, mid-line
    ok_next = False
    if fr.is_valid() and gdb.newest_frame() == fr:
        # Rust puts each call of a line like `a().b().map(|r| ..)` in its
        # own line-table row, and GDB's `next` stops at each row's start: a
        # few `next`s on one line are normal, going backwards is not.
        line1, pc1 = fr.find_sal().line, fr.pc()
        for _ in range(4):
            out, err = run("next")
            if err is not None or not fr.is_valid() or gdb.newest_frame() != fr or fr.pc() <= pc1:
                break
            if fr.find_sal().line != line1:
                ok_next = True
                break
            pc1 = fr.pc()
        moved.append(f"next: line {line1} -> {fr.find_sal().line if fr.is_valid() else '(left ' + name + ')'}")
    result(ok_step and ok_next, f"{name}: step enters a callee or the next line, next goes to another line of {name}",
           *moved, str(err or ""))
    if not finish:
        return None

    if not fr.is_valid():
        result(False, f"finish from {name}: back in its caller, value printed", f"{name}'s frame is gone: {chain_str()}")
        return None
    value = finish_frame(name)
    back = gdb.newest_frame()
    ok = frame_names(back) == caller_names and (value is not None or not returns)
    value_text = f"Value returned: {value}" if value is not None else "no value"
    result(ok, f"finish from {name}: back in {display_names(caller_names)}, "
           f"{'Value returned printed' if returns else 'returns nothing'}",
           f"now in {display_names(frame_names(back))}; {value_text}")
    return value


def in_vmalloc_range(text):
    v = int_of(text)
    return v is not None and VMALLOC_START <= v < VMALLOC_END


def per_name():
    """The per-name checks of the pipeline reached from the shell (start_kernel
    and paging_init were checked during boot)."""
    run("delete")
    addrs = []
    for name, want in [
        ("vmalloc", {"size": REQUEST}),
        ("__vmalloc_node_range", {"size": REQUEST, "start": VMALLOC_START, "end": VMALLOC_END}),
        ("__get_vm_area_node", {"size": 4 * PAGE_SIZE}),   # page-rounded by __vmalloc_node_range
        ("alloc_vmap_area", {"size": 5 * PAGE_SIZE}),      # + the guard page
        ("__alloc_vmap_area", {"size": 5 * PAGE_SIZE, "vstart": VMALLOC_START, "vend": VMALLOC_END}),
        ("find_vmap_lowest_match", {"size": 5 * PAGE_SIZE}),
        ("__vmalloc_area_node", {"area": lambda t: int_of(t) is not None}),
        ("map_kernel_range", {"addr": in_vmalloc_range}),
        ("alloc_pages", {"order": 0}),
    ]:
        v = check_name(name, f"vmalloc {REQUEST}", want)
        if name in ("vmalloc", "__vmalloc_node_range", "__vmalloc_area_node") and v is not None and u64(v):
            addrs.append(u64(v))
    check_name("vzalloc", "vzalloc 8192", {"size": 8192})
    if len(addrs) < 3:
        result(False, "vfree, remove_vm_area, __free_pages: areas to free", f"only {len(addrs)} addresses: {addrs}")
    else:
        check_name("vfree", f"vfree {addrs[0]:#x}", {"addr": addrs[0]}, returns=False)
        check_name("remove_vm_area", f"vfree {addrs[1]:#x}", {"addr": addrs[1]})
        check_name("__free_pages", f"vfree {addrs[2]:#x}", {"order": 0}, returns=False)
    check_name("__purge_vmap_area_lazy", "purge")
    check_name("ioremap", "ioremap 0x9010000 4096", {"size": 4096})
    # A slice prints as its elements: three PhysAddr.
    check_name("vmap", "vmap 3", {"pages": lambda t: len(re.findall(r"PhysAddr \(0x[0-9a-f]+\)", t)) == 3})

    # From inside a ktest run by the shell's `ktest` command: get_vm_area.
    run("delete", quiet=True)
    run("break get_vm_area")
    console.type("ktest vmalloc.get_vm_area_and_free_vm_area")
    run("continue")
    if stopped_in("get_vm_area"):
        run("bt")
        chain = [frame_names(f) for f in stack()]
        result(in_order(chain, ["get_vm_area", "get_vm_area_and_free_vm_area", "run_all", "cmd_ktest"] + SHELL_TAIL),
               "bt from inside a ktest (shell `ktest`): get_vm_area <- the test case <- run_all (the ktest runner) "
               "<- cmd_ktest <- call_with_fault_recovery <- ... <- run (the shell loop)", chain_str())
    check_name("get_vm_area", want_args={"size": 5 * PAGE_SIZE}, stopped=stopped_in("get_vm_area"))


def to_the_end():
    """Remove the pipeline breakpoints, stop at machine_power_off for the last
    log, then let the kernel exit."""
    run("delete")
    run("break vmkernel::kernel::reboot::machine_power_off")
    # An oops for gdb-test.sh to symbolize as the oops's hint says.
    console.type("peek 0")
    console.type("poweroff")
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


def transcript_session():
    """The short default session docs/debugging.md shows: break
    __get_vm_area_node, reach it from the shell, bt, info args, finish."""
    run("break start_kernel", quiet=True)
    run("continue", quiet=True)
    wait_for_shell(quiet=True)
    run("delete", quiet=True)
    run("break __get_vm_area_node")
    console.type(f"vmalloc {REQUEST}")
    run("continue")
    run("bt")
    run("info args")
    run("finish")
    ok = stopped_in("__vmalloc_node_range")
    result(ok, "transcript: break __get_vm_area_node, bt, info args, finish back in __vmalloc_node_range",
           chain_str())
    run("kill", quiet=True)


def main():
    try:
        if os.environ.get("VMK_GDB_MODE") == "transcript":
            transcript_session()
            return
        check_names_breakable()
        at_reset()
        at_start_kernel()
        at_run_init()
        pipeline()
        per_name()
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
