//! The portable half of the kernel: logic that does not touch hardware and is
//! therefore unit-tested on the host (`cargo htest`).
//!
//! The kernel binary (`src/main.rs`) links this library and supplies the
//! hardware side: boot code, exception vectors, drivers and the subsystems
//! with global state.
//!
//! Its tests run on the host only. Plain `cargo test` builds for the
//! kernel's target (aarch64-unknown-none, from .cargo/config.toml), which
//! has no `std` and no test harness: that build stops with one message
//! pointing at `cargo htest` instead of a thousand missing-macro errors.
#![cfg_attr(any(not(test), target_os = "none"), no_std)]

#[cfg(all(test, target_os = "none"))]
compile_error!(
    "the host unit tests run on the host: use `cargo htest` (cargo test --lib --target x86_64-unknown-linux-gnu), \
     or `scripts/test.sh` for every layer; plain `cargo test` builds for aarch64-unknown-none, which has no test harness"
);

#[cfg(not(all(test, target_os = "none")))]
extern crate alloc;

#[cfg(not(all(test, target_os = "none")))]
pub mod cmdline;
#[cfg(not(all(test, target_os = "none")))]
pub mod dt;
#[cfg(not(all(test, target_os = "none")))]
pub mod mm;
#[cfg(not(all(test, target_os = "none")))]
pub mod rand;
