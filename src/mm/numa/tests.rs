// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `numa`: the node fallback order.

use super::*;
use alloc::string::ToString;
use alloc::vec::Vec;

fn mask(nodes: &[usize]) -> NodeMask {
    nodes.iter().fold(NodeMask::NONE, |m, &n| m.with(n))
}

fn order(nid: usize, with_memory: &[usize]) -> Vec<u8> {
    build_node_order(nid, mask(with_memory), node_distance)
        .as_slice()
        .to_vec()
}

#[test]
fn own_node_first_then_the_next_ones_upwards() {
    assert_eq!(order(0, &[0]), [0]);
    assert_eq!(order(0, &[0, 1]), [0, 1]);
    assert_eq!(order(1, &[0, 1]), [1, 0]);
    // Equal distances: "prefer the next node", wrapping around.
    assert_eq!(order(2, &[0, 1, 2, 3]), [2, 3, 0, 1]);
    assert_eq!(order(3, &[0, 1, 2, 3]), [3, 0, 1, 2]);
}

#[test]
fn memoryless_node_keeps_its_place_and_others_are_skipped() {
    // Node 1 has CPUs but no memory: first in its own list (no zones there),
    // never in another node's list.
    assert_eq!(order(1, &[0, 2]), [1, 2, 0]);
    assert_eq!(order(0, &[0, 2]), [0, 2]);
    // Out of range: no local node, the nodes with memory in ID order.
    assert_eq!(order(MAX_NUMNODES, &[1, 0]), [0, 1]);
}

#[test]
fn distance_decides_before_node_id() {
    // A distance-map where node 0 is far from 1 and near 3.
    let dist = |a: usize, b: usize| match (a.min(b), a.max(b)) {
        _ if a == b => LOCAL_DISTANCE,
        (0, 3) => 15,
        (0, 1) => 40,
        _ => REMOTE_DISTANCE,
    };
    let o = build_node_order(0, mask(&[0, 1, 2, 3]), dist);
    assert_eq!(o.as_slice(), [0, 3, 2, 1]);
}

#[test]
fn nodemask_prints_as_pbl() {
    assert_eq!(mask(&[]).to_string(), "");
    assert_eq!(mask(&[0]).to_string(), "0");
    assert_eq!(mask(&[0, 1, 3]).to_string(), "0-1,3");
    assert_eq!(mask(&[0, 1, 2, 3]).to_string(), "0-3");
    assert_eq!(mask(&[0, 9]).nodes_weight(), 1);
    assert_eq!(mask(&[1, 3]).iter().collect::<Vec<_>>(), [1, 3]);
}
