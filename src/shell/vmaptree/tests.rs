// SPDX-License-Identifier: GPL-2.0-only
//! Host tests of the vmaptree writer: the text must be the tree itself, so
//! the tests rebuild the tree from the indentation and compare its in-order
//! walk with the address-sorted list.

use super::*;
use crate::mm::vmap_tree::{VmapAreaAlloc, insert_vmap_area, merge_or_add_vmap_area};
use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

const P: usize = 4096;
const BASE: usize = 0xffff_8000_1000_0000;

/// Boxes for nodes; every node is given back to its box at the end.
struct Boxes;

// SAFETY: the nodes are VmapArea boxes, freed only when given back.
unsafe impl VmapAreaAlloc for Boxes {
    fn alloc_vmap_area_node(&mut self) -> Option<NonNull<VmapArea>> {
        Some(NonNull::from(Box::leak(Box::new(VmapArea::new(0, 0)))))
    }
    fn free_vmap_area_node(&mut self, va: NonNull<VmapArea>) {
        // SAFETY: every node came from Box::leak above.
        drop(unsafe { Box::from_raw(va.as_ptr()) });
    }
}

fn node(start: usize, end: usize) -> NonNull<VmapArea> {
    NonNull::from(Box::leak(Box::new(VmapArea::new(start, end))))
}

fn release(root: &mut VmapAreaRoot) {
    for va in root.take_all() {
        Boxes.free_vmap_area_node(va);
    }
}

/// A busy tree of `n` two-page areas with one-page holes, inserted in a
/// scrambled order so that the tree has to rebalance.
fn busy_tree(n: usize) -> VmapAreaRoot {
    let mut root = VmapAreaRoot::new_busy();
    for i in 0..n {
        let k = (i * 7919) % n;
        let s = BASE + k * 3 * P;
        // SAFETY: a fresh detached node; `release` frees it.
        unsafe { insert_vmap_area(&mut root, node(s, s + 2 * P)).unwrap() };
    }
    root
}

fn text(root: &VmapAreaRoot, name: &str) -> (usize, String) {
    let mut s = String::new();
    let n = write_vmap_tree(root, name, &mut s).unwrap();
    (n, s)
}

/// (depth, side, start) of each area line.
fn parse(out: &str) -> Vec<(usize, char, usize)> {
    out.lines()
        .skip(1)
        .map(|l| {
            let trimmed = l.trim_start_matches(' ');
            let indent = l.len() - trimmed.len();
            let (depth, side, rest) = match trimmed.strip_prefix("+-") {
                Some(r) => {
                    assert_eq!(indent % 2, 0, "odd indent: {l:?}");
                    (indent / 2 + 1, r.chars().next().unwrap(), &r[2..])
                }
                None => {
                    assert_eq!(indent, 0, "a top line is not indented: {l:?}");
                    (0, 'T', trimmed)
                }
            };
            let mut w = rest.split(' ');
            let color = w.next().unwrap();
            assert!(color == "R" || color == "B", "colour {color:?} in {l:?}");
            let range = w.next().unwrap();
            let start = usize::from_str_radix(range.split('-').next().unwrap().trim_start_matches("0x"), 16).unwrap();
            (depth, side, start)
        })
        .collect()
}

/// The in-order walk of the tree the lines describe.
fn in_order(lines: &[(usize, char, usize)]) -> Vec<usize> {
    // children[i] = (left, right); a line's parent is the last line one level up.
    let mut kids: Vec<(Option<usize>, Option<usize>)> = vec![(None, None); lines.len()];
    let mut last_at: Vec<usize> = Vec::new();
    for (i, &(d, side, _)) in lines.iter().enumerate() {
        if d == 0 {
            assert_eq!(i, 0, "one top node, first");
        } else {
            let p = last_at[d - 1];
            match side {
                'L' => assert!(kids[p].0.replace(i).is_none(), "two left children"),
                'R' => assert!(kids[p].1.replace(i).is_none(), "two right children"),
                _ => panic!("side {side}"),
            }
        }
        last_at.truncate(d);
        last_at.push(i);
    }
    fn walk(i: usize, kids: &[(Option<usize>, Option<usize>)], lines: &[(usize, char, usize)], out: &mut Vec<usize>) {
        if let Some(l) = kids[i].0 {
            walk(l, kids, lines, out);
        }
        out.push(lines[i].2);
        if let Some(r) = kids[i].1 {
            walk(r, kids, lines, out);
        }
    }
    let mut out = Vec::new();
    if !lines.is_empty() {
        walk(0, &kids, lines, &mut out);
    }
    out
}

#[test]
fn empty_tree() {
    let root = VmapAreaRoot::new_free();
    let (n, s) = text(&root, "free_vmap_area_root");
    assert_eq!(n, 0);
    assert_eq!(s, "free_vmap_area_root: 0 areas, height 0\n(empty)\n");
}

#[test]
fn busy_tree_text_is_the_tree() {
    for n in [1, 2, 3, 10, 100, 1000] {
        let mut root = busy_tree(n);
        let (written, out) = text(&root, "vmap_area_root");
        assert_eq!(written, n);
        assert!(out.starts_with(&format!("vmap_area_root: {} areas, height {}\n", n, root.height())));
        let lines = parse(&out);
        assert_eq!(lines.len(), n);
        let want: Vec<usize> = root.iter().map(|va| va.va_start).collect();
        assert_eq!(in_order(&lines), want, "in-order walk of the printed tree, n={n}");
        // The deepest line is as deep as the tree is high.
        assert_eq!(lines.iter().map(|l| l.0).max().unwrap() + 1, root.height());
        // The busy tree has no subtree_max_size to show; the top is black.
        assert!(!out.contains(" max "));
        assert!(out.lines().nth(1).unwrap().starts_with("B "));
        release(&mut root);
    }
}

#[test]
fn free_tree_shows_subtree_max_size() {
    let mut root = VmapAreaRoot::new_free();
    // Holes of 1..=20 pages, a page apart.
    let mut s = BASE;
    for i in 1..=20 {
        // SAFETY: a fresh node; the tree frees merged ones through Boxes.
        unsafe { merge_or_add_vmap_area(&mut root, node(s, s + i * P), &mut Boxes).unwrap() };
        s += (i + 1) * P;
    }
    let (written, out) = text(&root, "free_vmap_area_root");
    assert_eq!(written, 20);
    let top = out.lines().nth(1).unwrap();
    // The top's subtree_max_size is the largest hole: 20 pages = 80K.
    assert!(top.ends_with(" max 80K"), "{top}");
    assert_eq!(out.lines().skip(1).filter(|l| l.contains(" max ")).count(), 20);
    let want: Vec<usize> = root.iter().map(|va| va.va_start).collect();
    assert_eq!(in_order(&parse(&out)), want);
    assert!(out.contains(" 4K max 4K\n"), "a one-page leaf hole:\n{out}");
    release(&mut root);
}

#[test]
fn human_sizes() {
    let f = |n| format!("{}", Human(n));
    assert_eq!(f(0), "0");
    assert_eq!(f(4096), "4K");
    assert_eq!(f(28 * 1024), "28K");
    assert_eq!(f(1 << 20), "1M");
    assert_eq!(f(126 << 40), "126T");
    assert_eq!(f(3 << 50), "3P");
}
