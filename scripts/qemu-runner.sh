#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Cargo runner (.cargo/config.toml): `cargo run [-- QEMU_ARGS...]` calls
#   scripts/qemu-runner.sh path/to/vmkernel [QEMU_ARGS...]
# QEMU passes the DTB in x0 only for a flat Image, so convert the ELF to an
# Image next to it (the ELF stays for GDB) and boot that on the default
# machine; QEMU_ARGS come after the defaults and override them.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($#)) || die "usage: $0 KERNEL_ELF [QEMU_ARGS...]"
elf=$1
shift
[[ -f $elf ]] || die "no such kernel ELF: $elf"
ensure_tools qemu-system-aarch64
image=$(dirname "$elf")/Image
make_image "$elf" "$image"
qemu_cmd -kernel "$image" "$@"
exec "${QEMU_CMD[@]}"
