#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The scripted GDB test (the `gdb` layer of scripts/test.sh): gdb-multiarch
# in batch mode against QEMU's gdbstub (-S, a free port) drives a session
# through the vmalloc pipeline with scripts/gdb/selftest.py, typing shell
# commands into the kernel's serial console (a QEMU socket chardev), then
# the helpers' output is compared with what the kernel printed.
#
#   scripts/gdb-test.sh [--no-build] [--elf ELF --image IMAGE] [--out DIR]
#   scripts/gdb-test.sh --transcript FILE    the short default session
#                                            (break __get_vm_area_node, bt,
#                                            info args, finish) into FILE
#
# The kernel is the one scripts/gdb.sh debugs: the `debugging` cargo
# profile (GDB_PROFILE to change it), unless --elf/--image name one.
# One `PASS gdb: ...` / `FAIL gdb: ...` line per check (reasons indented
# below a FAIL), then `N passed, N failed`; exit status 0 iff none failed.
# Everything is under `timeout`, so a wedged QEMU or GDB cannot hang CI.
# Kept in DIR (default $LOG_DIR/gdb): transcript.txt (GDB's output: the
# session as a user sees it), console.log, results.txt, the snapshots.
#
# Environment: GDB_TEST_TIMEOUT (seconds for the whole session, default
# 240), GDB_TEST_APPEND (extra kernel command line, default none: the
# kernel boots into its serial shell, which the session drives).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=gdb/lib-gdb.sh
source "$REPO_ROOT/scripts/gdb/lib-gdb.sh"

GDB_TEST_TIMEOUT=${GDB_TEST_TIMEOUT:-240}
GDB_TEST_APPEND=${GDB_TEST_APPEND:-}

build=1
elf=
image=
out=$LOG_DIR/gdb
transcript=
while (($#)); do
    case $1 in
    -h | --help)
        sed -n '3,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    --no-build) build=0 && shift ;;
    --elf) elf=${2:?} && shift 2 ;;
    --image) image=${2:?} && shift 2 ;;
    --out) out=${2:?} && shift 2 ;;
    --transcript) transcript=${2:?--transcript needs a file} && shift 2 ;;
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
        build_profile "$GDB_PROFILE" >&2 || { report FAIL "build the kernel (profile $GDB_PROFILE)" && finish; }
    fi
    profile_paths "$GDB_PROFILE"
    elf=$PROFILE_ELF
    image=$PROFILE_IMAGE
    # Always from this ELF: a stale Image would run code GDB's symbols do
    # not describe (breakpoints at the wrong instructions).
    [[ -f $elf ]] && make_image "$elf" "$image"
fi
[[ -f $elf && -f $image ]] || die "no kernel: $elf / $image"
# A private copy: a rebuild by someone else during the session cannot
# change the ELF GDB reads under the kernel QEMU runs.
rm -rf "$out"
mkdir -p "$out"
cp -f "$elf" "$out/vmkernel"
cp -f "$image" "$out/Image"
elf=$out/vmkernel
image=$out/Image

QEMU_PID=
trap stop_qemu EXIT

# The console: a socket the session types into, everything the kernel
# prints logged to console.log (also while nobody is connected).
append=()
[[ -n $GDB_TEST_APPEND ]] && append=(-append "$GDB_TEST_APPEND")
port=
cport=$(free_port)
console_socket_args "tcp:$cport" "$out/console.log"
start_qemu_gdb_free_port /dev/null "$out/qemu.err" -kernel "$image" "${append[@]}" "${CONSOLE_ARGS[@]}" &&
    port=$GDB_PORT
PUMP_PIDS=()
trap 'stop_console_pump; stop_qemu' EXIT
if [[ -n $port ]] && ! console_pump "$cport" "$out/console.in"; then
    report FAIL "connect to the kernel console on 127.0.0.1:$cport"
    finish
    exit 1
fi
shell_words=$(printf '%q ' "${QEMU_CMD[@]}")
echo "$shell_words" >"$out/qemu.cmd"
if [[ -z $port ]]; then
    report FAIL "QEMU starts with its gdbstub on a free port" "$(cat "$out/qemu.err")" "command: $shell_words"
    finish
    exit 1
fi

mode=full
[[ -n $transcript ]] && mode=transcript
gdb_status=0
VMK_GDB_OUT=$out VMK_CONSOLE_IN=$out/console.in VMK_GDB_MODE=$mode timeout --kill-after=5 "$GDB_TEST_TIMEOUT" \
    gdb-multiarch -nx -batch \
    -ex "set architecture aarch64" \
    -ex "set pagination off" \
    -ex "set width 0" \
    -ex "set confirm off" \
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
stop_console_pump

if [[ -n $transcript ]]; then
    # For the docs: the commands and GDB's answers, no host paths.
    if grep -q '^PASS gdb: transcript' "$out/results.txt" 2>/dev/null; then
        # From the first command typed (the setup before it is not the point).
        sed -n -e "/^(gdb) /,\$p" "$out/transcript.txt" | sed -e "s|$REPO_ROOT/||g" -e "s|$TARGET_DIR|target|g" >"$transcript"
        report PASS "transcript of the default session written to $transcript"
    else
        report FAIL "transcript of the default session" "$(cat "$out/results.txt" 2>/dev/null)" \
            "$(tail -n 20 "$out/transcript.txt")"
    fi
    finish
    exit
fi

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

# The oops of `peek 0`, symbolized the way its last line says. Every Call
# trace entry is a return address; start_kernel's is the first byte after
# start_kernel (run_init never returns), which an exact lookup names as the
# next function.
check_symbolize() {
    local hint sym
    hint=$(grep -m1 -o '(symbolize: .*)' "$out/console.txt" || true)
    if [[ $hint != *"scripts/symbolize.sh < LOG"* ]]; then
        report FAIL "the oops hint suggests scripts/symbolize.sh < LOG" "hint: ${hint:-none (no oops in the log?)}"
        return
    fi
    sym=$("$REPO_ROOT/scripts/symbolize.sh" -e "$elf" <"$out/console.txt" 2>&1) || true
    printf '%s\n' "$sym" >"$out/symbolized.txt"
    if grep -q ' start_kernel+[0-9]* .*(call site)' <<<"$sym" &&
        grep -q ' vmkernel::shell::execute+[0-9]* .*(call site)' <<<"$sym" &&
        grep -q ' call_with_fault_recovery+[0-9]* .*(call site)' <<<"$sym"; then
        report PASS "the oops of 'peek 0', symbolized as its hint says: start_kernel, execute, call_with_fault_recovery named at their call sites"
    else
        report FAIL "the oops of 'peek 0', symbolized as its hint says, names start_kernel, execute, call_with_fault_recovery" \
            "$(head -n 20 <<<"$sym")"
    fi
}
check_symbolize

how=${GDB_TEST_APPEND:+-append $GDB_TEST_APPEND}
if [[ $qemu_status == 0 ]]; then
    report PASS "QEMU exited with status 0 (${how:-poweroff typed at the shell})"
else
    report FAIL "QEMU exited with status 0 (${how:-poweroff typed at the shell})" "status: $qemu_status" "command: $shell_words" \
        "$(tail -n 15 "$out/console.txt")"
fi
printf '     (transcript: %s)\n' "$out/transcript.txt"
finish
