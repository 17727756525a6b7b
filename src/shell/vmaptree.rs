// SPDX-License-Identifier: GPL-2.0-only
//! `vmaptree [free|busy]`: a vmap_area red-black tree as an indented text
//! tree, the console's counterpart of GDB's `lx-vmaptree` (which draws it
//! with Graphviz). One line per area, children indented below their parent,
//! the left child (lower addresses) first:
//!
//! ```text
//! free_vmap_area_root: 3 areas, height 2
//! B 0xffff8000101a1000-0xfffffdffbfff0000 126T max 126T
//! +-L R 0xffff800010169000-0xffff800010170000 28K max 28K
//! +-R R ...
//! ```
//!
//! `B`/`R` is the node's colour; `max` (free tree only) its
//! `subtree_max_size`, which `find_vmap_lowest_match` follows down. The
//! writer is portable (host-tested in `vmaptree/tests.rs`); the command
//! itself takes the tree's lock and prints to the console.

use crate::lib::rbtree::{RB_BLACK, RB_RED, RbEntry, RbNode};
use crate::mm::vmap_tree::{VmapArea, VmapAreaRoot};
use core::fmt::{self, Write};
use core::ptr::NonNull;

/// The node at the top of `root`'s tree: climbed to from the lowest area,
/// through the public list and parent links (the root field is private to
/// vmap_tree).
fn top(root: &VmapAreaRoot) -> Option<NonNull<VmapArea>> {
    let first = root.first()?;
    // SAFETY: `first` is a live area of the borrowed tree, so its embedded
    // RbNode is too, and every parent link of a linked node points to the
    // RbNode of another live area of the same tree (rbtree's contract).
    unsafe {
        let mut n: NonNull<RbNode> = <VmapArea as RbEntry>::rb_node(first);
        while let Some(p) = n.as_ref().parent() {
            n = p;
        }
        Some(VmapArea::from_rb_node(n))
    }
}

/// Children of `va` (left, right).
///
/// # Safety
///
/// `va` is a live area linked into a tree the caller has borrowed.
unsafe fn children(va: NonNull<VmapArea>) -> [Option<NonNull<VmapArea>>; 2] {
    // SAFETY: by the caller's contract `va` and its links are live; a child
    // link points to the RbNode embedded in another area of the tree.
    unsafe {
        let n = <VmapArea as RbEntry>::rb_node(va).as_ref();
        [n.left(), n.right()].map(|c| c.map(|c| VmapArea::from_rb_node(c)))
    }
}

/// Colour letter of a linked node.
///
/// # Safety
///
/// As [`children`].
unsafe fn color(va: NonNull<VmapArea>) -> char {
    // SAFETY: the caller's contract.
    match unsafe { <VmapArea as RbEntry>::rb_node(va).as_ref() }.color() {
        RB_RED => 'R',
        RB_BLACK => 'B',
        _ => '?',
    }
}

/// `n` bytes as the shell prints sizes: 4K, 28K, 1M, 126T (rounded down).
struct Human(usize);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let units = ["", "K", "M", "G", "T", "P"];
        let (mut n, mut i) = (self.0, 0);
        while n >= 1024 && i + 1 < units.len() {
            n /= 1024;
            i += 1;
        }
        write!(f, "{}{}", n, units[i])
    }
}

/// Write `root`'s tree, titled `name`, one line per area; returns the number
/// of areas written (which a caller can compare with `root.len()`).
pub fn write_vmap_tree(root: &VmapAreaRoot, name: &str, w: &mut dyn Write) -> Result<usize, fmt::Error> {
    let augmented = root.is_augmented();
    writeln!(w, "{}: {} areas, height {}", name, root.len(), root.height())?;
    let Some(top) = top(root) else {
        writeln!(w, "(empty)")?;
        return Ok(0);
    };
    // Depth-first, left before right, with an explicit stack: the depth is
    // at most 2*log2(n+1), but a corrupt tree must not overflow the stack.
    // Entries: (area, depth, "L"/"R"/"" for the top).
    let mut stack: alloc::vec::Vec<(NonNull<VmapArea>, usize, &str)> = alloc::vec![(top, 0, "")];
    let mut written = 0;
    while let Some((va, depth, side)) = stack.pop() {
        written += 1;
        if written > root.len() {
            writeln!(
                w,
                "vmaptree: more nodes than the tree counts ({}): corrupt links?",
                root.len()
            )?;
            return Err(fmt::Error);
        }
        // SAFETY: `va` came from the top of the borrowed tree down its links.
        let (a, c, kids) = unsafe { (va.as_ref(), color(va), children(va)) };
        for _ in 1..depth {
            w.write_str("  ")?;
        }
        if depth > 0 {
            write!(w, "+-{} ", side)?;
        }
        write!(w, "{} {:#x}-{:#x} {}", c, a.va_start, a.va_end, Human(a.size()))?;
        if augmented {
            write!(w, " max {}", Human(a.subtree_max_size))?;
        }
        w.write_char('\n')?;
        // Right pushed first so that the left subtree prints first.
        if let Some(r) = kids[1] {
            stack.push((r, depth + 1, "R"));
        }
        if let Some(l) = kids[0] {
            stack.push((l, depth + 1, "L"));
        }
    }
    Ok(written)
}

#[cfg(target_os = "none")]
pub fn cmd_vmaptree(_: &mut super::Shell, args: &mut super::line::Args) -> super::CmdResult {
    use crate::mm::vmalloc;
    let which = args.word().unwrap_or("free");
    args.end()?;
    let (root, name) = match which {
        "free" => (&vmalloc::free_vmap_area_root, "free_vmap_area_root"),
        "busy" => (&vmalloc::vmap_area_root, "vmap_area_root"),
        _ => return super::fail_with(format_args!("'{}': expected free or busy", which)),
    };
    // Printed under the tree's lock, as vmallocinfo does: a snapshot
    // taken without it could follow freed nodes.
    let tree = root.lock();
    let _ = write_vmap_tree(&tree, name, &mut super::Console);
    Ok(())
}

#[cfg(test)]
#[path = "vmaptree/tests.rs"]
mod tests;
