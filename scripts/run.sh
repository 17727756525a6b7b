#!/usr/bin/env bash
# Build the kernel and boot it on the default QEMU machine (virt, cortex-a72,
# one CPU, 1 GiB, serial console on stdio, semihosting). Extra arguments go
# to QEMU after the defaults, and QEMU keeps the last -m/-cpu/-smp/-append:
#   scripts/run.sh                          boot into the serial shell
#   scripts/run.sh -append ktest            in-kernel tests (exit status = result)
#   scripts/run.sh -m 4G -cpu max -machine virt,virtualization=on -append poweroff
# Leave QEMU with Ctrl-A X. Without a terminal the console reads stdin
# (e.g. `echo cmd | scripts/run.sh`).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1-} in
-h | --help)
    sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac

ensure_tools qemu-system-aarch64
build_kernel >&2
qemu_cmd -kernel "$KERNEL_IMAGE" "$@"
exec "${QEMU_CMD[@]}"
