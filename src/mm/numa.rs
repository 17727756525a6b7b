// SPDX-License-Identifier: GPL-2.0-only
//! NUMA nodes (Linux: include/linux/numa.h, include/linux/topology.h,
//! arch/arm64/mm/numa.c, and build_zonelists' node order from
//! mm/page_alloc.c).
//!
//! A node is what the device tree's `numa-node-id` says: memory nodes give
//! the node of each RAM bank, `/cpus/cpu@N` nodes the node of each CPU;
//! absent means node 0 (Linux's of_node_to_nid). The zones of a node form
//! its `pg_data_t` (see `crate::mm::buddy::PglistData`). An allocation for
//! node `nid` walks `nid`'s fallback order: the node itself, then the other
//! nodes with memory by distance (Linux's find_next_best_node).
//!
//! This file is the host-tested half; the CPU-to-node map (`cpu_to_node`,
//! `numa_node_id`) is arch/arm64/mm/numa.rs, as in Linux.

use core::fmt;

/// Linux's CONFIG_NODES_SHIFT (arm64's default, 2).
pub const NODES_SHIFT: usize = 2;
/// Most nodes a machine may have; a `numa-node-id` at or above this turns
/// NUMA off (all memory and CPUs on node 0), as Linux's of_numa_init fails.
pub const MAX_NUMNODES: usize = 1 << NODES_SHIFT;
/// "Any node": allocate on the current CPU's node (include/linux/numa.h).
pub const NUMA_NO_NODE: i32 = -1;

/// Linux's distances when the DT has no `distance-map` (numa_alloc_distance
/// fills the table with these). This kernel reads no distance-map.
pub const LOCAL_DISTANCE: u32 = 10;
pub const REMOTE_DISTANCE: u32 = 20;

/// Linux's node_distance() without a distance-map.
pub const fn node_distance(from: usize, to: usize) -> u32 {
    if from == to { LOCAL_DISTANCE } else { REMOTE_DISTANCE }
}

/// A set of nodes (Linux's nodemask_t).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeMask(u32);

const _: () = assert!(MAX_NUMNODES <= u32::BITS as usize);

impl NodeMask {
    pub const NONE: NodeMask = NodeMask(0);

    pub const fn node_isset(self, nid: usize) -> bool {
        nid < MAX_NUMNODES && self.0 & (1 << nid) != 0
    }
    pub const fn with(self, nid: usize) -> NodeMask {
        if nid < MAX_NUMNODES {
            NodeMask(self.0 | (1 << nid))
        } else {
            self
        }
    }
    pub const fn nodes_weight(self) -> usize {
        self.0.count_ones() as usize
    }
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// The nodes in the set, lowest first (for_each_node_mask).
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_NUMNODES).filter(move |&n| self.node_isset(n))
    }
}

/// `0-1,3` as Linux's `%*pbl`.
impl fmt::Display for NodeMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut n = 0;
        while n < MAX_NUMNODES {
            if !self.node_isset(n) {
                n += 1;
                continue;
            }
            let start = n;
            while n + 1 < MAX_NUMNODES && self.node_isset(n + 1) {
                n += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == n {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{n}")?;
            }
            n += 1;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeMask({self})")
    }
}

/// The nodes an allocation for one node tries, in order (the node part of
/// Linux's `node_zonelists[ZONELIST_FALLBACK]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeOrder {
    nodes: [u8; MAX_NUMNODES],
    nr: u8,
}

impl NodeOrder {
    pub const EMPTY: NodeOrder = NodeOrder {
        nodes: [0; MAX_NUMNODES],
        nr: 0,
    };

    pub fn as_slice(&self) -> &[u8] {
        &self.nodes[..self.nr as usize]
    }
}

/// Linux's build_zonelists(node) node order: `nid` itself first, then, one
/// at a time, the unused node with memory (`with_memory`, N_MEMORY) that
/// find_next_best_node picks: smallest `distance(nid, n)`, plus one for a
/// node below `nid` ("prefer the next node"), so equal distances go
/// upwards from `nid` and wrap around. Left out: the penalty for nodes with
/// CPUs and the node_load interleave, which only reorder equally distant
/// nodes between different nodes' lists.
pub fn build_node_order(nid: usize, with_memory: NodeMask, distance: impl Fn(usize, usize) -> u32) -> NodeOrder {
    let mut order = NodeOrder::EMPTY;
    let mut used = NodeMask::NONE;
    if nid < MAX_NUMNODES {
        // The local node even when memoryless: it simply has no zones.
        used = used.with(nid);
        order.nodes[0] = nid as u8;
        order.nr = 1;
    }
    loop {
        let mut best: Option<(u32, usize)> = None;
        for n in with_memory.iter().filter(|&n| !used.node_isset(n)) {
            let val = distance(nid, n) + u32::from(n < nid);
            if best.is_none_or(|(b, _)| val < b) {
                best = Some((val, n));
            }
        }
        let Some((_, n)) = best else {
            break;
        };
        used = used.with(n);
        order.nodes[order.nr as usize] = n as u8;
        order.nr += 1;
    }
    order
}

#[cfg(test)]
mod tests;
