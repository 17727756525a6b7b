// SPDX-License-Identifier: GPL-2.0-only
//! The kernel binary: everything is in the library (src/lib.rs); this only
//! links it, with `linker.ld` (build.rs). The entry point is `_start` in
//! arch/arm64/kernel/head.S, which ends in `start_kernel` (init/main.rs).
#![no_std]
#![no_main]

// Linking the library brings in head.S, the vectors, start_kernel and the
// panic handler.
extern crate vmkernel;
