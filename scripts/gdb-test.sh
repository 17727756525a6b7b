#!/usr/bin/env bash
# The scripted GDB test (the `gdb` layer of scripts/test.sh): gdb-multiarch
# in batch mode against QEMU's gdbstub (-S, a free port) drives a session
# through the vmalloc pipeline with scripts/gdb/selftest.py, then the
# helpers' output is compared with what the kernel printed on its console.
#
#   scripts/gdb-test.sh [--no-build] [--elf ELF --image IMAGE] [--out DIR]
#
# One `PASS gdb: ...` / `FAIL gdb: ...` line per check (reasons indented
# below a FAIL), then `N passed, N failed`; exit status 0 iff none failed.
# Everything is under `timeout`, so a wedged QEMU or GDB cannot hang CI.
# Kept in DIR (default $LOG_DIR/gdb): transcript.txt (GDB's output: the
# session as a user sees it), console.log, results.txt, the snapshots.
#
# Environment: GDB_TEST_TIMEOUT (seconds for the whole session, default
# 120), GDB_TEST_APPEND (kernel command line, default ktest=vmalloc: its
# first vmalloc is the one traced; without any, the session makes one).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=gdb/lib-gdb.sh
source "$REPO_ROOT/scripts/gdb/lib-gdb.sh"

GDB_TEST_TIMEOUT=${GDB_TEST_TIMEOUT:-120}
GDB_TEST_APPEND=${GDB_TEST_APPEND:-ktest=vmalloc}

build=1
elf=
image=
out=$LOG_DIR/gdb
while (($#)); do
    case $1 in
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    --no-build) build=0 && shift ;;
    --elf) elf=${2:?} && shift 2 ;;
    --image) image=${2:?} && shift 2 ;;
    --out) out=${2:?} && shift 2 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done

PASSED=0
FAILED=0
report() { # report PASS|FAIL NAME [REASON...]
    local verdict=$1 name=$2 r
    shift 2
    printf '%s gdb: %s\n' "$verdict" "$name"
    for r in "$@"; do printf '     %s\n' "$r"; done
    if [[ $verdict == PASS ]]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
}
finish() {
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

ensure_tools qemu-system-aarch64 gdb-multiarch timeout
if [[ -z $elf ]]; then
    if ((build)); then
        build_kernel >&2 || { report FAIL "build the kernel" && finish; }
    fi
    elf=$KERNEL_ELF
    image=$KERNEL_IMAGE
    [[ -f $image ]] || make_image "$elf" "$image"
fi
[[ -f $elf && -f $image ]] || die "no kernel: $elf / $image"

rm -rf "$out"
mkdir -p "$out"

QEMU_PID=
trap stop_qemu EXIT

port=
start_qemu_gdb_free_port "$out/console.log" "$out/qemu.err" -kernel "$image" -append "$GDB_TEST_APPEND" && port=$GDB_PORT
shell_words=$(printf '%q ' "${QEMU_CMD[@]}")
echo "$shell_words" >"$out/qemu.cmd"
if [[ -z $port ]]; then
    report FAIL "QEMU starts with its gdbstub on a free port" "$(cat "$out/qemu.err")" "command: $shell_words"
    finish
    exit 1
fi

gdb_status=0
VMK_GDB_OUT=$out timeout --kill-after=5 "$GDB_TEST_TIMEOUT" \
    gdb-multiarch -nx -batch \
    -ex "set architecture aarch64" \
    -ex "set pagination off" \
    -ex "set width 0" \
    -ex "source $GDB_HELPERS" \
    -ex "target remote 127.0.0.1:$port" \
    -x "$REPO_ROOT/scripts/gdb/selftest.py" \
    "$elf" >"$out/transcript.txt" 2>&1 || gdb_status=$?

# QEMU should be gone (the kernel powered off, or selftest.py killed it).
for ((i = 0; i < 100; i++)); do
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 0.1
done
qemu_status=0
if kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
    qemu_status=timeout
else
    wait "$QEMU_PID" 2>/dev/null || qemu_status=$?
fi
QEMU_PID=

# The session's own checks.
if [[ -s $out/results.txt ]]; then
    while IFS= read -r line; do
        case $line in
        "PASS gdb: "*) PASSED=$((PASSED + 1)) && printf '%s\n' "$line" ;;
        "FAIL gdb: "*) FAILED=$((FAILED + 1)) && printf '%s\n' "$line" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$out/results.txt"
fi
if ((gdb_status == 124 || gdb_status == 137)); then
    report FAIL "the GDB session finished within ${GDB_TEST_TIMEOUT}s" "killed by timeout; see $out/transcript.txt"
elif [[ ! -s $out/results.txt ]]; then
    report FAIL "the GDB session ran (gdb-multiarch exit status $gdb_status)" "$(tail -n 20 "$out/transcript.txt")"
fi

# Compare the helpers' output with the console (CRLF on the wire).
tr -d '\r' <"$out/console.log" >"$out/console.txt"

# prefix_of SNAPSHOT: the snapshot's lines are the console's first lines.
prefix_of() {
    local n
    n=$(wc -l <"$1")
    ((n > 0)) && cmp -s <(head -n "$n" "$out/console.txt") "$1"
}
first_diff() {
    diff <(head -n "$(wc -l <"$1")" "$out/console.txt") "$1" | head -n 6 || true
}

for snap in dmesg-run_init dmesg-end; do
    where=${snap#dmesg-}
    [[ $where == end ]] && where=machine_power_off
    if [[ ! -s $out/$snap.txt ]]; then
        report FAIL "lx-dmesg at $where == the console log so far" "no snapshot (session stopped early)"
    elif prefix_of "$out/$snap.txt"; then
        report PASS "lx-dmesg at $where == the console log so far ($(wc -l <"$out/$snap.txt") lines, timestamps included)"
    else
        report FAIL "lx-dmesg at $where == the console log so far" "first differences (< console, > lx-dmesg):" "$(first_diff "$out/$snap.txt")"
    fi
done

# The kernel prints vmallocinfo at the end of setup_arch; the helper ran
# right after, at run_init: the same lines, timestamps aside.
# (One awk: a pipeline that stops reading early would die of SIGPIPE.)
awk '/\] vmallocinfo:$/ { on = 1; next }
     on && /^\[ *[0-9]+\.[0-9]+\] 0x[0-9a-f]+-0x/ { sub(/^\[[^]]*\] /, ""); print; next }
     on { exit }' "$out/console.txt" >"$out/vmallocinfo-console.txt"
if [[ ! -s $out/vmallocinfo-run_init.txt ]]; then
    report FAIL "lx-vmallocinfo == the kernel's boot vmallocinfo" "no snapshot (session stopped early)"
elif [[ -s $out/vmallocinfo-console.txt ]] && cmp -s "$out/vmallocinfo-console.txt" "$out/vmallocinfo-run_init.txt"; then
    report PASS "lx-vmallocinfo == the kernel's boot vmallocinfo, line for line ($(wc -l <"$out/vmallocinfo-console.txt") areas)"
else
    report FAIL "lx-vmallocinfo == the kernel's boot vmallocinfo" \
        "$(diff "$out/vmallocinfo-console.txt" "$out/vmallocinfo-run_init.txt" | head -n 10 || true)"
fi

if [[ $qemu_status == 0 ]]; then
    report PASS "QEMU exited with status 0 (-append $GDB_TEST_APPEND)"
else
    report FAIL "QEMU exited with status 0 (-append $GDB_TEST_APPEND)" "status: $qemu_status" "command: $shell_words" \
        "$(tail -n 15 "$out/console.txt")"
fi
printf '     (transcript: %s)\n' "$out/transcript.txt"
finish
