// SPDX-License-Identifier: GPL-2.0-only
//! Links the kernel binary with `linker.ld` (only for the bare-metal target,
//! so that host unit tests of the library link normally).
fn main() {
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    // The compiler version, for the boot banner.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc unknown".into());
    println!("cargo:rustc-env=VMKERNEL_RUSTC_VERSION={version}");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.ends_with("-none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    }
}
