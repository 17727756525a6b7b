#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The shell's `vmaptree` text as a Graphviz picture, without GDB attached:
# the same DOT writer as GDB's lx-vmaptree (scripts/gdb/vmkernel/vmaptree.py),
# run by gdb-multiarch's Python (Python itself is not assumed on the host).
#
#   scripts/vmaptree-dot.sh [--path SIZE[,ALIGN]] TEXT OUT.dot
#
#   TEXT    a file holding a `vmaptree free` or `vmaptree busy` reply (a
#           console log is fine: the first tree in it is taken)
#   OUT.dot written, and OUT.svg next to it when Graphviz's dot is installed
#   --path  free tree: outline the nodes find_vmap_lowest_match visits for
#           that request on this tree (the kernel's walk, recomputed) and
#           mark the area it picks
#
# Prints "NAME: N nodes" and, with --path, "lowest match: 0x... after K nodes".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '3,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

req=
while (($#)); do
    case $1 in
    --path) req=${2:?--path needs SIZE[,ALIGN]} && shift 2 ;;
    -h | --help) usage && exit 0 ;;
    *) break ;;
    esac
done
(($# == 2)) || { usage >&2 && die "expected: TEXT OUT.dot"; }
[[ -r $1 ]] || die "vmaptree-dot: cannot read $1"
ensure_tools gdb-multiarch
# The arguments travel in the environment: no quoting into Python source.
VMAPTREE_TEXT=$1 VMAPTREE_OUT=$2 VMAPTREE_PATH=$req VMAPTREE_LIB=$REPO_ROOT/scripts/gdb \
    gdb-multiarch -nx -batch -ex 'python
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.environ["VMAPTREE_LIB"])
from vmkernel import vmaptree as t
try:
    top, name, count = t.parse_shell_text(open(os.environ["VMAPTREE_TEXT"], errors="replace").read())
    if top is None:
        raise ValueError("the tree is empty")
    kind = "free" if name.startswith("free") else "busy"
    found, path, title = None, (), f"{name}: {count} areas, height {t.height(top)}"
    req = os.environ["VMAPTREE_PATH"]
    if req:
        parts = [int(x, 0) for x in req.split(",")]
        found, path = t.lowest_match_path(top, *parts)
        title += f"; find_vmap_lowest_match(size={parts[0]:#x}): " + (f"{found.start:#x}" if found else "no fit")
    svg = t.write_dot(t.to_dot(top, kind, path, found, title), os.environ["VMAPTREE_OUT"])
    print(f"{name}: {len(t.nodes_of(top))} nodes" + (f", {svg}" if svg else ""))
    if req:
        print(f"lowest match: {found.start:#x} after {len(path)} nodes" if found else "lowest match: none")
except (ValueError, OSError) as e:
    print(f"error: vmaptree-dot: {e}", file=sys.stderr)
    gdb.execute("quit 1")
'
