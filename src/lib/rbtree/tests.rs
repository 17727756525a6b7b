// SPDX-License-Identifier: GPL-2.0-only
//! Host tests of `lib::rbtree` (`cargo htest`): the red-black rules and an
//! augmented maximum after every step of random insert/erase sequences,
//! checked against a `BTreeMap` model.

use super::*;
use crate::lib::rand::XorShift64Star;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec::Vec;

/// A test element: key, a weight, and the augmented maximum weight of its
/// subtree (what the vmap free tree does with `subtree_max_size`).
struct Item {
    key: u64,
    weight: u64,
    node: RbNode,
    max_weight: u64,
}

crate::rb_entry!(Item, node);

/// RB_DECLARE_CALLBACKS_MAX for `max_weight`.
struct MaxWeight;

/// # Safety
///
/// `n` is null or the node of a live `Item`.
unsafe fn max_of(n: Option<NonNull<RbNode>>) -> u64 {
    // SAFETY: the caller's contract.
    n.map_or(0, |n| unsafe { Item::from_rb_node(n).as_ref().max_weight })
}

// SAFETY: the callbacks read children and write only `max_weight`.
unsafe impl RbAugment for MaxWeight {
    unsafe fn compute(node: NonNull<RbNode>, exit: bool) -> bool {
        // SAFETY: `node` is the node of a live Item, its children too.
        unsafe {
            let mut item = Item::from_rb_node(node);
            let item = item.as_mut();
            let m = item.weight.max(max_of(item.node.left())).max(max_of(item.node.right()));
            if exit && m == item.max_weight {
                return true;
            }
            item.max_weight = m;
            false
        }
    }

    unsafe fn copy(old: NonNull<RbNode>, new: NonNull<RbNode>) {
        // SAFETY: both are nodes of live Items.
        unsafe { (*Item::from_rb_node(new).as_ptr()).max_weight = Item::from_rb_node(old).as_ref().max_weight };
    }
}

/// Check colours, parent links, black heights, key order and (if
/// `augmented`) every `max_weight`; returns the keys in order.
fn check(root: &RbRoot<Item>, augmented: bool) -> Vec<u64> {
    /// Returns the black height.
    fn walk(
        n: Option<NonNull<RbNode>>,
        parent: Option<NonNull<RbNode>>,
        augmented: bool,
        keys: &mut Vec<u64>,
    ) -> usize {
        let Some(n) = n else { return 1 };
        // SAFETY: nodes of the borrowed tree are live Items.
        let (node, item) = unsafe { (n.as_ref(), Item::from_rb_node(n).as_ref()) };
        assert_eq!(node.parent(), parent, "parent link of {}", item.key);
        assert!(
            node.color() == RB_RED || node.color() == RB_BLACK,
            "colour of {}",
            item.key
        );
        if node.color() == RB_RED {
            // SAFETY: as above.
            let p = parent.map(|p| unsafe { p.as_ref().color() });
            assert_ne!(p, Some(RB_RED), "red {} under a red parent", item.key);
        }
        let lh = walk(node.left(), Some(n), augmented, keys);
        if let Some(&prev) = keys.last() {
            assert!(prev < item.key, "order: {prev} before {}", item.key);
        }
        keys.push(item.key);
        let rh = walk(node.right(), Some(n), augmented, keys);
        assert_eq!(lh, rh, "black heights under {}", item.key);
        if augmented {
            // SAFETY: as above.
            let m = unsafe { item.weight.max(max_of(node.left())).max(max_of(node.right())) };
            assert_eq!(item.max_weight, m, "max_weight of {}", item.key);
        }
        lh + (node.color() == RB_BLACK) as usize
    }
    let mut keys = Vec::new();
    // SAFETY: the top node is a live Item.
    let top = root.root().map(|r| unsafe { Item::rb_node(r) });
    if let Some(t) = top {
        // SAFETY: the root is a live node.
        assert_eq!(unsafe { t.as_ref().color() }, RB_BLACK, "root is black");
    }
    walk(top, None, augmented, &mut keys);
    keys
}

fn new_item(key: u64, weight: u64) -> NonNull<Item> {
    NonNull::from(Box::leak(Box::new(Item {
        key,
        weight,
        node: RbNode::new(),
        max_weight: 0,
    })))
}

/// Insert as vmalloc's free tree does: search, link, make the path's
/// maxima include the new weight, rebalance.
fn insert(root: &mut RbRoot<Item>, item: NonNull<Item>, augmented: bool) -> bool {
    // SAFETY: `item` is a fresh leaked box.
    let (key, weight) = unsafe { (item.as_ref().key, item.as_ref().weight) };
    match root.search(|e| key.cmp(&e.key)) {
        RbSearch::Found(_) => false,
        RbSearch::Vacant(link) => {
            // SAFETY: the link is fresh, the item is unlinked and leaked
            // (pinned) until the test erases and frees it.
            unsafe {
                root.rb_link_node(item, link);
                if augmented {
                    (*item.as_ptr()).max_weight = weight;
                    let mut p = item.as_ref().node.parent();
                    while let Some(n) = p {
                        let mut e = Item::from_rb_node(n);
                        if e.as_ref().max_weight >= weight {
                            break;
                        }
                        e.as_mut().max_weight = weight;
                        p = n.as_ref().parent();
                    }
                    root.rb_insert_augmented::<MaxWeight>(item);
                } else {
                    root.rb_insert_color(item);
                }
            }
            true
        }
    }
}

fn erase(root: &mut RbRoot<Item>, item: NonNull<Item>, augmented: bool) {
    // SAFETY: `item` is linked into `root`; freed only after the erase.
    unsafe {
        if augmented {
            root.rb_erase_augmented::<MaxWeight>(item);
        } else {
            root.rb_erase(item);
        }
        assert!(!item.as_ref().node.is_linked());
        drop(Box::from_raw(item.as_ptr()));
    }
}

fn random_sequence(seed: u64, augmented: bool) {
    let mut rng = XorShift64Star::new(seed);
    let mut root = RbRoot::<Item>::new();
    let mut model: BTreeMap<u64, u64> = BTreeMap::new();
    for step in 0..3000 {
        let key = rng.next() % 400;
        if !rng.next().is_multiple_of(3) {
            let weight = rng.next() % 1000;
            let item = new_item(key, weight);
            let inserted = insert(&mut root, item, augmented);
            assert_eq!(inserted, !model.contains_key(&key), "step {step}");
            if inserted {
                model.insert(key, weight);
            } else {
                // SAFETY: never linked.
                drop(unsafe { Box::from_raw(item.as_ptr()) });
            }
        } else if let Some(item) = root.find(|e| key.cmp(&e.key)) {
            assert!(
                model.remove(&key).is_some(),
                "step {step}: found {key} not in the model"
            );
            erase(&mut root, item, augmented);
        } else {
            assert!(!model.contains_key(&key), "step {step}: {key} not found");
        }
        let keys = check(&root, augmented);
        assert!(keys.iter().copied().eq(model.keys().copied()), "step {step}");
        assert!(root.iter().map(|e| e.key).eq(model.keys().copied()));
        if augmented {
            let top = root.root().map_or(0, |r| {
                // SAFETY: a live node of the tree.
                unsafe { r.as_ref().max_weight }
            });
            assert_eq!(top, model.values().copied().max().unwrap_or(0), "step {step}");
        }
        let n = model.len();
        assert!(root.height() <= 2 * (usize::BITS - (n + 1).leading_zeros()) as usize);
    }
    // Walk both ways, then empty the tree.
    let fwd: Vec<u64> = root.iter().map(|e| e.key).collect();
    let mut back = Vec::new();
    let mut cur = root.last();
    while let Some(c) = cur {
        // SAFETY: `c` is linked into the unchanged tree.
        unsafe {
            back.push(c.as_ref().key);
            cur = rb_prev(c);
        }
    }
    back.reverse();
    assert_eq!(fwd, back);
    // SAFETY: the first node is a live node of the tree.
    let first = root.first().map(|f| unsafe { f.as_ref().key });
    assert_eq!(first, fwd.first().copied());
    while let Some(f) = root.first() {
        erase(&mut root, f, augmented);
        check(&root, augmented);
    }
    assert!(root.is_empty());
}

#[test]
fn random_insert_erase_plain() {
    for seed in 1..=4 {
        random_sequence(seed, false);
    }
}

#[test]
fn random_insert_erase_augmented() {
    for seed in 11..=14 {
        random_sequence(seed, true);
    }
}

#[test]
fn ascending_and_descending_inserts_stay_balanced() {
    for desc in [false, true] {
        let mut root = RbRoot::<Item>::new();
        for i in 0..1000u64 {
            let k = if desc { 1000 - i } else { i };
            assert!(insert(&mut root, new_item(k, k), true));
        }
        check(&root, true);
        assert!(root.height() <= 2 * 10);
        while let Some(r) = root.root() {
            erase(&mut root, r, true);
            check(&root, true);
        }
    }
}

#[test]
fn checker_catches_a_wrong_colour_and_a_wrong_maximum() {
    let mut root = RbRoot::<Item>::new();
    for k in 0..20 {
        insert(&mut root, new_item(k, k), true);
    }
    let victim = root.find(|e| 7u64.cmp(&e.key)).unwrap();
    // SAFETY: `victim` is a live node; the corruption is undone before the
    // tree is used again.
    unsafe {
        let saved = victim.as_ref().max_weight;
        (*victim.as_ptr()).max_weight = 999;
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&root, true))).is_err());
        (*victim.as_ptr()).max_weight = saved;
        let c = victim.as_ref().node.color();
        (*victim.as_ptr()).node.set_color_for_test(c ^ 1);
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&root, true))).is_err());
        (*victim.as_ptr()).node.set_color_for_test(c);
    }
    check(&root, true);
    while let Some(f) = root.first() {
        erase(&mut root, f, true);
    }
}
