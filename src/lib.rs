//! The portable half of the kernel: logic that does not touch hardware and is
//! therefore unit-tested on the host (`cargo htest`).
//!
//! The kernel binary (`src/main.rs`) links this library and supplies the
//! hardware side: boot code, exception vectors, drivers and the subsystems
//! with global state.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cmdline;
pub mod dt;
pub mod mm;
pub mod rand;
