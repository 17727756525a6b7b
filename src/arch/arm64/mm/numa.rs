// SPDX-License-Identifier: GPL-2.0-only
//! NUMA on arm64 (Linux: arch/arm64/mm/numa.c): which node each CPU is on
//! (`cpu_to_node_map`, from the DT's `numa-node-id` of `/cpus/cpu@N`), and
//! `numa_off` when the DT's node ids are unusable.

use crate::arch::kernel::percpu::{NR_CPUS, smp_processor_id};
use crate::mm::numa::MAX_NUMNODES;
use crate::pr_warn;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// Linux's cpu_to_node_map, by logical CPU.
static CPU_TO_NODE: [AtomicU8; NR_CPUS] = [const { AtomicU8::new(0) }; NR_CPUS];
/// Set when the DT's node ids were unusable (Linux's numa_off).
static NUMA_OFF: AtomicBool = AtomicBool::new(false);

/// Turn NUMA off: every CPU and every page on node 0 (Linux falls back to
/// dummy_numa_init when of_numa_init fails).
pub fn set_numa_off() {
    NUMA_OFF.store(true, Ordering::Relaxed);
    CPU_TO_NODE.iter().for_each(|n| n.store(0, Ordering::Relaxed));
}

pub fn numa_off() -> bool {
    NUMA_OFF.load(Ordering::Relaxed)
}

/// Linux's early_map_cpu_to_node: the DT's `numa-node-id` of logical CPU
/// `cpu` (None: node 0). Called before the CPU allocates anything.
pub fn early_map_cpu_to_node(cpu: usize, nid: Option<u32>) {
    let mut nid = nid.unwrap_or(0) as usize;
    if nid >= MAX_NUMNODES && !numa_off() {
        pr_warn!(
            "NUMA: CPU{}: numa-node-id {} >= MAX_NUMNODES ({}); using node 0",
            cpu,
            nid,
            MAX_NUMNODES
        );
        nid = 0;
    }
    if numa_off() {
        nid = 0;
    }
    if let Some(slot) = CPU_TO_NODE.get(cpu) {
        slot.store(nid as u8, Ordering::Relaxed);
    }
}

/// Linux's cpu_to_node(): the node of logical CPU `cpu` (0 if out of range).
#[inline]
pub fn cpu_to_node(cpu: usize) -> i32 {
    CPU_TO_NODE.get(cpu).map_or(0, |n| i32::from(n.load(Ordering::Relaxed)))
}

/// Linux's numa_node_id(): the node of the CPU this runs on.
#[inline]
pub fn numa_node_id() -> i32 {
    cpu_to_node(smp_processor_id())
}
