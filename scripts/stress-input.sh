#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Console-input stress test: boot many times with piped input whose bytes
# arrive while the kernel boots, and check that every byte arrived.
#
#   STRESS_BOOTS=200 scripts/stress-input.sh [--no-build] [--image IMAGE]
#
# Each boot gets STRESS_LINES long command lines (unknown commands of ~150
# bytes, distinct per boot and line), then `poweroff`. The shell answers an
# unknown command with `WORD: unknown command ...`, so a reply with the whole
# WORD proves every byte of that line arrived, in order. Input starts after a
# delay that differs per boot (0 .. STRESS_DELAY_MAX hundredths of a second,
# default 30: before QEMU is up, during the kernel's boot, at the prompt), so
# bytes land at every stage of boot.
#
# Prints one PASS/FAIL line per boot (a failure names the missing lines)
# and a summary: `stress-input: B boots, N bytes sent, L line(s) lost, F boot(s) failed`.
# Exit status 0 iff nothing was lost. Environment: STRESS_BOOTS (default
# 200), STRESS_LINES (default 4), STRESS_JOBS (parallel QEMUs, default
# nproc), STRESS_TIMEOUT (seconds per boot, default 30), STRESS_DELAY_MAX,
# STRESS_DIR (logs; default target/test-logs/stress-input).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BOOTS=${STRESS_BOOTS:-200}
LINES=${STRESS_LINES:-4}
JOBS=${STRESS_JOBS:-$(nproc 2>/dev/null || echo 2)}
SECS=${STRESS_TIMEOUT:-30}
DELAY_MAX=${STRESS_DELAY_MAX:-30}
build=1
image=$KERNEL_IMAGE
while (($#)); do
    case $1 in
    --no-build) build=0 && shift ;;
    --image) image=$2 && build=0 && shift 2 ;;
    -h | --help) sed -n '3,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" && exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done
((BOOTS > 0 && LINES > 0 && DELAY_MAX > 0 && DELAY_MAX <= 99)) ||
    die "STRESS_BOOTS and STRESS_LINES must be positive, STRESS_DELAY_MAX from 1 to 99"
ensure_tools qemu-system-aarch64
((build == 0)) || build_kernel >&2 || die "kernel build failed"
[[ -f $image ]] || die "no kernel Image at $image"

dir=${STRESS_DIR:-$LOG_DIR/stress-input}
rm -rf "$dir"
mkdir -p "$dir"

# word BOOT LINE: a 150-byte command word, unique per boot and line, with
# every printable byte class the shell accepts (no spaces: one word).
word() {
    local w
    w=$(printf 'stress-b%04d-l%02d-' "$1" "$2")
    while ((${#w} < 150)); do w+="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_.,:=+-"; done
    printf '%s' "${w:0:150}"
}

# boot_one I: one boot; the console log in $dir/I.log, QEMU's status in I.status.
boot_one() {
    local i=$1 l delay
    for ((l = 1; l <= LINES; l++)); do printf '%s\n' "$(word "$i" "$l")"; done >"$dir/$i.in"
    printf 'poweroff\n' >>"$dir/$i.in"
    delay=$(printf '0.%02d' $(((i * 7) % DELAY_MAX)))
    qemu_cmd -kernel "$image"
    local st=0
    { sleep "$delay" && cat "$dir/$i.in"; } | timeout --kill-after=5 "$SECS" "${QEMU_CMD[@]}" >"$dir/$i.log" 2>&1 || st=$?
    echo "$st" >"$dir/$i.status"
}

for ((i = 1; i <= BOOTS; i++)); do
    while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
    boot_one "$i" &
done
wait

bytes=0 lost=0 failed=0
for ((i = 1; i <= BOOTS; i++)); do
    bytes=$((bytes + $(stat -c %s "$dir/$i.in")))
    reasons=()
    # Not `tr | grep -q`: under pipefail, grep's early exit fails the pipe.
    tr -d '\r' <"$dir/$i.log" >"$dir/$i.txt"
    for ((l = 1; l <= LINES; l++)); do
        w=$(word "$i" "$l")
        if ! grep -qxF -- "$w: unknown command (type 'help' for the list)" "$dir/$i.txt"; then
            reasons+=("line $l: no reply naming all 150 bytes of it")
            lost=$((lost + 1))
        fi
    done
    st=$(cat "$dir/$i.status")
    [[ $st == 0 ]] || reasons+=("QEMU exit status $st (124: timed out; was 'poweroff' lost?)")
    grep -q 'reboot: Power down' "$dir/$i.log" || reasons+=("no 'reboot: Power down'")
    if ((${#reasons[@]} == 0)); then
        printf 'PASS stress-input: boot %d of %d (input after %s s): every byte of %d lines arrived\n' \
            "$i" "$BOOTS" "$(printf '0.%02d' $(((i * 7) % DELAY_MAX)))" "$LINES"
    else
        failed=$((failed + 1))
        printf 'FAIL stress-input: boot %d of %d\n' "$i" "$BOOTS"
        printf '     %s\n' "${reasons[@]}" "log: $dir/$i.log, input: $dir/$i.in"
    fi
done
printf 'stress-input: %d boots, %d bytes sent, %d line(s) lost, %d boot(s) failed\n' "$BOOTS" "$bytes" "$lost" "$failed"
((failed == 0))
