#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Boot the kernel with a lot of RAM, backed by a sparse file, to check that
# early boot copes with RAM the boot identity map (256 GiB) does not reach:
#   scripts/bigmem.sh SIZE [SIZE...] [-- EXTRA QEMU ARGS]
#   scripts/bigmem.sh 255G 256G 300G 1T
# Each boot runs `-append poweroff` (BIGMEM_APPEND overrides, e.g. ktest=mm)
# under a timeout (BIGMEM_TIMEOUT, default 600 s) and prints its result and
# wall time. The file goes in BIGMEM_DIR (default /tmp) and is deleted after
# the boot; only the pages the kernel writes take disk space (its page
# metadata: 16 bytes per 4 KiB page, e.g. 4 GiB for 1 TiB; tests that touch
# every free block, like mm.every_bank_is_allocatable, can need half the RAM
# size here, as the host allocated 2 MiB of file per touched 4 MiB block).
# Not part of scripts/test.sh: it needs that disk space and up to a minute
# per boot.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sizes=()
while (($#)) && [[ $1 != -- ]]; do
    case $1 in
    -h | --help)
        sed -n '3,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *[0-9][MGT]) sizes+=("$1") ;;
    *) die "bigmem.sh: '$1' is not a size like 300G or 1T" ;;
    esac
    shift
done
[[ ${1-} == -- ]] && shift
((${#sizes[@]})) || die "usage: scripts/bigmem.sh SIZE [SIZE...] [-- QEMU ARGS]"

ensure_tools qemu-system-aarch64
build_kernel >&2
dir=${BIGMEM_DIR:-/tmp}
secs=${BIGMEM_TIMEOUT:-600}
append=${BIGMEM_APPEND:-poweroff}
mkdir -p "$LOG_DIR"
rc=0
for size in "${sizes[@]}"; do
    file=$(mktemp "$dir/vmkernel-bigmem-$size.XXXXXX")
    trap 'rm -f "$file"' EXIT
    truncate -s "$size" "$file"
    log=$LOG_DIR/bigmem-$size.log
    qemu_cmd -m "$size" -object "memory-backend-file,id=mem,size=$size,mem-path=$file,share=on" \
        -machine memory-backend=mem -kernel "$KERNEL_IMAGE" -append "$append" "$@"
    start=${EPOCHREALTIME//[.,]/}
    status=0
    timeout --kill-after=5 "$secs" "${QEMU_CMD[@]}" </dev/null >"$log" 2>&1 || status=$?
    ms=$(((${EPOCHREALTIME//[.,]/} - start) / 1000))
    used=$(du -k "$file" | cut -f1)
    rm -f "$file"
    trap - EXIT
    if [[ $append == ktest* ]]; then
        # Tests provoke (and catch) oopses on purpose: judge by the summary.
        grep -Eq '^ktest: [0-9]+ passed, 0 failed' "$log" && ok=$((status == 0)) || ok=0
    else
        grep -q 'reboot: Power down' "$log" && ! grep -Eq 'panic|Oops' "$log" && ok=$((status == 0)) || ok=0
    fi
    if ((ok)); then
        printf 'bigmem %-6s ok      %6d ms  %s  (%d MiB of the file written; log %s)\n' "$size" "$ms" \
            "$(grep -Eo 'Memory: [0-9]+K/[0-9]+K available' "$log" | head -1)" $((used / 1024)) "$log"
    else
        rc=1
        printf 'bigmem %-6s FAILED  %6d ms  status %d; log %s:\n' "$size" "$ms" "$status" "$log"
        grep -Em3 'panic|not ok|qemu' "$log" | sed 's/^/    /' || tail -n5 "$log" | sed 's/^/    /'
        ((status != 135)) || echo "    (status 135 = SIGBUS in QEMU: the file system holding $file ran out of space?)"
    fi
done
exit $rc
