#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Build the kernel and boot it on the default QEMU machine (virt, cortex-a72,
# one CPU, 1 GiB, serial console on stdio, semihosting). Extra arguments go
# to QEMU after the defaults, and QEMU keeps the last -m/-cpu/-smp/-append:
#   scripts/run.sh                          boot into the serial shell
#   scripts/run.sh -append ktest            in-kernel tests (exit status = result)
#   scripts/run.sh -m 4G -cpu max -machine virt,virtualization=on -append poweroff
# Leave QEMU with Ctrl-A X. Without a terminal the console reads stdin
# (e.g. `printf 'meminfo\n' | scripts/run.sh`), and the end of that input
# powers the machine off: the UART cannot see end-of-file, so this script
# sends one more line, `poweroff`, after the last byte (and a newline first
# if the input did not end with one). The shell reads its input in order, so
# the commands before it run to completion first; input the kernel has not
# read yet waits in QEMU (nothing is dropped). A kernel that powers itself
# off earlier (-append ktest / poweroff) never reads that line.
# RUN_IMAGE=FILE boots that Image instead of building (scripts/test.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case ${1-} in
-h | --help)
    sed -n '3,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
esac

ensure_tools qemu-system-aarch64
image=${RUN_IMAGE:-}
if [[ -z $image ]]; then
    build_kernel >&2
    image=$KERNEL_IMAGE
fi
[[ -f $image ]] || die "no kernel Image at $image"
qemu_cmd -kernel "$image" "$@"
if [[ -t 0 ]]; then
    exec "${QEMU_CMD[@]}"
fi
# stdin is a pipe or a file: forward it unchanged, then `poweroff`. `sed -u
# '$a\'` adds a final newline only when missing, and writes each line as it
# comes (interactive pipes keep working).
exec "${QEMU_CMD[@]}" < <(
    sed -u '$a\'
    printf 'poweroff\n'
)
