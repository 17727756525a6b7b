# SPDX-License-Identifier: GPL-2.0-only
"""lx-vmaptree: the free or busy vmap_area red-black tree as Graphviz DOT.

Data structures (src/mm/vmap_tree.rs, src/lib/rbtree.rs):

    free_vmap_area_root, vmap_area_root: spin::Mutex<VmapAreaRoot>
        VmapAreaRoot { root: RbRoot { rb_node: *mut RbNode }, list_head, .., count }
    VmapArea { va_start, va_end, rb_node: RbNode { rb_parent, rb_right,
               rb_left, rb_color: u8 (0 red, 1 black) }, subtree_max_size, .. }

The tree is read top-down from `root.rb_node` (each RbNode is embedded in
its VmapArea: the area is `node - offset_of!(VmapArea, rb_node)`, Linux's
rb_entry), so the picture is the tree's real shape, not one rebuilt from
the address-sorted list.

`--path SIZE[,ALIGN]` (free tree) highlights the nodes the kernel's
find_vmap_lowest_match would visit for that request on the tree as it is
now, recomputed here with the kernel's walk (src/mm/vmap_tree.rs:
find_vmap_lowest_match, 5.10's): the kernel does not record the path, but at a breakpoint before
`alloc_vmap_area` returns, with the size it was called with, this is the
path it took. The bounds are the whole tree (vstart 0, no vend).

The DOT writer and the walk are plain Python (no gdb), so the test suite
runs them on small synthetic trees (scripts/test.sh pictures).
"""

import shutil
import subprocess

PAGE_SIZE = 4096
RB_RED = 0
RB_BLACK = 1
# Stop a walk of a corrupt tree instead of recursing forever.
MAX_NODES = 1 << 20


class Area:
    """One node of a vmap_area tree, as read from the target."""

    __slots__ = ("addr", "start", "end", "max", "color", "left", "right", "parent")

    def __init__(self, addr, start, end, max_size, color):
        self.addr = addr
        self.start = start
        self.end = end
        self.max = max_size
        self.color = color
        self.left = None
        self.right = None
        self.parent = None

    @property
    def size(self):
        return self.end - self.start


def human(n):
    for unit in ("", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{int(n)}{unit}" if n == int(n) else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def nodes_of(top):
    """Every node under `top`, in order (iterative: trees can be deep)."""
    out, stack, node = [], [], top
    while stack or node is not None:
        while node is not None:
            stack.append(node)
            node = node.left
        node = stack.pop()
        out.append(node)
        node = node.right
    return out


def height(top):
    if top is None:
        return 0
    h, level = 0, [top]
    while level:
        h += 1
        level = [c for n in level for c in (n.left, n.right) if c is not None]
    return h


def _fits(va, size, align, vstart):
    """The kernel's is_within_this_va()."""
    nva = (max(va.start, vstart) + align - 1) & ~(align - 1)
    return nva + size <= va.end


def lowest_match_path(top, size, align=1, vstart=0, vend=1 << 64):
    """(found area or None, nodes visited) of find_vmap_lowest_match
    (src/mm/vmap_tree.rs, 5.10's walk); a match whose block would end past
    `vend` is no fit, as __alloc_vmap_area decides."""
    if size <= 0 or align <= 0 or align & (align - 1):
        raise ValueError("size must be > 0 and align a power of two")

    def max_size(n):
        return n.max if n is not None else 0

    length = size + align - 1
    visited = []
    node = top
    found = None
    while node is not None and found is None:
        visited.append(node)
        if max_size(node.left) >= length and vstart < node.start:
            node = node.left
            continue
        if _fits(node, size, align, vstart):
            found = node
            break
        if max_size(node.right) >= length:
            node = node.right
            continue
        # roll back to the first right subtree that can satisfy the request
        up, node = node, None
        while up.parent is not None:
            up = up.parent
            visited.append(up)
            if _fits(up, size, align, vstart):
                found = up
                break
            if max_size(up.right) >= length and vstart <= up.start:
                node = up.right
                break
    if found is not None:
        nva = (max(found.start, vstart) + align - 1) & ~(align - 1)
        if nva + size > vend:
            found = None
    return found, visited


def to_dot(top, kind, path=(), found=None, title=None):
    """DOT text for the tree under `top`: one node per area, labelled with
    its range, size (and subtree_max_size for the free tree), filled red or
    black; the nodes of `path` outlined, `found` marked."""
    on_path = {id(n) for n in path}
    lines = [
        f'digraph vmap_{kind} {{',
        '  graph [ordering=out, fontname="sans-serif"'
        + (f', label="{title}", labelloc=t' if title else "") + '];',
        '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10, fontcolor=white];',
        '  edge [arrowsize=0.6];',
    ]
    names = {}
    for i, n in enumerate(nodes_of(top)):
        names[id(n)] = f"n{i}"
    for n in nodes_of(top):
        label = f"{n.start:#x}-\\n{n.end:#x}\\nsize {human(n.size)}"
        if kind == "free":
            label += f"\\nsubtree_max {human(n.max)}"
        fill = "#c0392b" if n.color == RB_RED else "#222222"
        attrs = [f'label="{label}"', f'fillcolor="{fill}"']
        if id(n) in on_path:
            attrs += ['penwidth=4', 'color="#f1c40f"']
        if n is found:
            attrs += ['peripheries=2', f'xlabel="lowest match"']
        lines.append(f'  {names[id(n)]} [{", ".join(attrs)}];')
    nil = 0
    for n in nodes_of(top):
        for side, child in (("L", n.left), ("R", n.right)):
            if child is not None:
                style = ' [color="#f1c40f", penwidth=3]' if id(n) in on_path and id(child) in on_path else ""
                lines.append(f'  {names[id(n)]} -> {names[id(child)]}{style};')
            elif n.left is not None or n.right is not None:
                # An invisible leaf keeps a lone child on its own side.
                lines.append(f'  nil{nil} [shape=point, style=invis]; {names[id(n)]} -> nil{nil} [style=invis];')
                nil += 1
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_shell_text(text):
    """(top Area, tree name, count) from the shell's `vmaptree` output
    (src/shell/vmaptree.rs): a header "NAME: N areas, height H", then one
    line per area, "+-L "/"+-R " and two spaces per level below the top."""
    import re
    lines = [l.rstrip("\r") for l in text.splitlines()]
    head = next((i for i, l in enumerate(lines) if re.match(r"^\w+: \d+ areas, height \d+$", l)), None)
    if head is None:
        raise ValueError("no 'NAME: N areas, height H' line")
    name, count = lines[head].split(":")[0], int(lines[head].split()[1])
    area_re = re.compile(r"^((?:  )*)(?:\+-([LR]) )?([RB]) 0x([0-9a-f]+)-0x([0-9a-f]+) \S+(?: max (\S+))?$")
    top, last_at = None, []
    for l in lines[head + 1:head + 1 + count]:
        m = area_re.match(l)
        if m is None:
            raise ValueError(f"not a vmaptree line: {l!r}")
        depth = len(m.group(1)) // 2 + (1 if m.group(2) else 0)
        a = Area(0, int(m.group(4), 16), int(m.group(5), 16), 0,
                 RB_RED if m.group(3) == "R" else RB_BLACK)
        if depth == 0:
            if top is not None:
                raise ValueError("two top nodes")
            top = a
        else:
            if depth > len(last_at):
                raise ValueError(f"line deeper than its parent: {l!r}")
            a.parent = last_at[depth - 1]
            setattr(a.parent, "left" if m.group(2) == "L" else "right", a)
        del last_at[depth:]
        last_at.append(a)
    # subtree_max_size from the exact ranges (the text rounds sizes down):
    # children before parents, i.e. the reverse of a pre-order walk.
    order, stack = [], [top] if top is not None else []
    while stack:
        n = stack.pop()
        order.append(n)
        stack += [c for c in (n.left, n.right) if c is not None]
    for n in reversed(order):
        n.max = max([n.size] + [c.max for c in (n.left, n.right) if c is not None])
    return top, name, count


def write_dot(text, path):
    """Write DOT to `path` and, when Graphviz's `dot` is there, the SVG next
    to it. Returns the SVG's path or None."""
    with open(path, "w") as f:
        f.write(text)
    dot = shutil.which("dot")
    if dot is None:
        return None
    svg = (path[:-4] if path.endswith(".dot") else path) + ".svg"
    subprocess.run([dot, "-Tsvg", "-o", svg, path], check=True)
    return svg


try:
    import gdb
except ImportError:  # the plain-Python half, under a test harness
    gdb = None

if gdb is not None:
    from vmkernel import utils

    TREES = {"free": "free_vmap_area_root", "busy": "vmap_area_root"}

    def read_tree(var):
        """(top Area or None, count the root reports) of a VmapAreaRoot."""
        root = utils.spinlock_data(utils.value(var))
        count = int(root["count"])
        va_t = utils.lookup_type("VmapArea")
        offset = next(f.bitpos // 8 for f in va_t.fields() if f.name == "rb_node")
        va_p = va_t.pointer()

        def area(node_ptr, parent):
            va = gdb.Value(node_ptr - offset).cast(va_p).dereference()
            try:
                va.fetch_lazy()
            except gdb.MemoryError:
                utils.fail(f"{var}: cannot read vmap_area at {node_ptr - offset:#x}")
            rb = va["rb_node"]
            a = Area(node_ptr - offset, int(va["va_start"]), int(va["va_end"]),
                     int(va["subtree_max_size"]), int(rb["rb_color"]))
            a.parent = parent
            return a, int(rb["rb_left"]), int(rb["rb_right"])

        top_ptr = int(root["root"]["rb_node"])
        if top_ptr == 0:
            return None, count
        top, l, r = area(top_ptr, None)
        stack, n = [(top, l, r)], 1
        while stack:
            node, l, r = stack.pop()
            for ptr, side in ((l, "left"), (r, "right")):
                if ptr == 0:
                    continue
                n += 1
                if n > MAX_NODES or n > count:
                    utils.fail(f"{var}: more nodes than its count ({count}): corrupt rb links?")
                child, cl, cr = area(ptr, node)
                setattr(node, side, child)
                stack.append((child, cl, cr))
        return top, count

    class LxVmaptree(utils.LxCommand):
        """Dump the free or busy vmap_area tree as Graphviz DOT (and SVG).

Usage: lx-vmaptree [free|busy] [--path SIZE[,ALIGN]] [FILE]
Reads free_vmap_area_root (default) or vmap_area_root from its top node
down: each node with its range, size, subtree_max_size (free tree), filled
with its red/black colour. Without FILE the DOT goes to the GDB console;
with FILE it is written there and, when Graphviz's `dot` is installed,
rendered next to it as FILE.svg (FILE minus .dot).
--path SIZE[,ALIGN]  free tree: outline the nodes find_vmap_lowest_match
                     visits for that request on the tree as it is now
                     (recomputed with the kernel's walk) and mark the match;
                     ALIGN defaults to 1, what vmalloc asks for."""

        def __init__(self):
            super().__init__("lx-vmaptree", gdb.COMMAND_DATA)

        def run(self, arg, from_tty):
            utils.need_target()
            args = gdb.string_to_argv(arg)
            kind, out, req = "free", None, None
            while args:
                a = args.pop(0)
                if a in TREES:
                    kind = a
                elif a == "--path":
                    if not args:
                        utils.fail("lx-vmaptree: --path needs SIZE[,ALIGN]")
                    try:
                        parts = [int(x, 0) for x in args.pop(0).split(",")]
                    except ValueError:
                        utils.fail("lx-vmaptree: --path takes SIZE[,ALIGN] (numbers, 0x... allowed)")
                    req = (parts[0], parts[1] if len(parts) > 1 else 1)
                elif out is None and not a.startswith("-"):
                    out = a
                else:
                    utils.fail("usage: lx-vmaptree [free|busy] [--path SIZE[,ALIGN]] [FILE]")
            if req is not None and kind != "free":
                utils.fail("lx-vmaptree: --path follows find_vmap_lowest_match, which walks the free tree")
            var = TREES[kind]
            if utils.spin_is_locked(utils.value(var)):
                gdb.write(f"warning: {var}'s lock is held: the tree may be mid-update\n")
            top, count = read_tree(var)
            if top is None:
                utils.fail(f"lx-vmaptree: {var} is empty (vmalloc_init has not run yet?)")
            nodes = len(nodes_of(top))
            found, path = None, ()
            title = f"{var}: {nodes} areas, height {height(top)}"
            if req is not None:
                try:
                    found, path = lowest_match_path(top, *req)
                except ValueError as e:
                    utils.fail(f"lx-vmaptree: --path: {e}")
                title += f"; find_vmap_lowest_match(size={req[0]:#x}, align={req[1]:#x}): " + \
                    (f"{found.start:#x}" if found else "no fit") + f" after {len(path)} nodes"
            text = to_dot(top, kind, path, found, title)
            if out is None:
                gdb.write(text)
                return
            svg = write_dot(text, out)
            gdb.write(f"lx-vmaptree: {title} -> {out}" + (f", {svg}" if svg else " (no `dot`: DOT only)") + "\n")
            if nodes != count:
                gdb.write(f"warning: {var} counts {count} areas, the tree holds {nodes}\n")

    LxVmaptree()
