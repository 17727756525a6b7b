// SPDX-License-Identifier: GPL-2.0-only
//! vmkernel: a bare-metal AArch64 kernel for QEMU `virt` whose subject is
//! Linux 5.10's arm64 memory management. The tree follows Linux's: someone
//! holding a Linux file finds ours at the matching path (docs/architecture.md
//! has the map and the layering rules).
//!
//! Boot flow (Linux names): `_start`/`primary_entry` in
//! arch/arm64/kernel/head.S set up the early page tables and turn the MMU on,
//! then `start_kernel` (init/main.rs) runs in the upper half: setup_arch,
//! memblock, paging_init, mm_init, the console's ioremap, then whatever the
//! command line asks for (in-kernel tests, benchmarks, power-off, and by
//! default the serial shell).
//!
//! One crate, two builds. For the kernel's target (aarch64-unknown-none)
//! everything is compiled; `src/init/main.rs` only links it. For the host,
//! `cargo htest` compiles the portable half alone (the device-tree parser,
//! the memory map and page-table format, memblock, the buddy allocator, the
//! vmap_area trees, the shell's line editor, the random numbers) and runs
//! their unit tests: modules that touch hardware or global kernel state are
//! `#[cfg(target_os = "none")]`. Plain `cargo test` builds for the kernel's
//! target, which has no test harness: that build stops with one message
//! pointing at `cargo htest`.
#![cfg_attr(any(not(test), target_os = "none"), no_std)]

#[cfg(all(test, target_os = "none"))]
compile_error!(
    "the host unit tests run on the host: use `cargo htest` (cargo test --lib --target x86_64-unknown-linux-gnu), \
     or `scripts/test.sh` for every layer; plain `cargo test` builds for aarch64-unknown-none, which has no test harness"
);

extern crate alloc;

#[path = "arch/arm64/mod.rs"]
pub mod arch;
pub mod drivers;
#[path = "lib/mod.rs"]
pub mod lib;
pub mod mm;

#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod init;
pub mod kernel;
#[cfg(target_os = "none")]
pub mod ktest;
/// The layering rules, checked as a host test (docs/architecture.md).
#[cfg(test)]
mod layering;

// On the host only the shell's line editor (pure logic) compiles.
#[cfg_attr(not(target_os = "none"), path = "shell/host.rs")]
pub mod shell;
