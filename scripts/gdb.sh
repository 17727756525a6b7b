#!/usr/bin/env bash
# Debug the kernel: build it, start QEMU paused (-S) with its gdbstub on a
# free loopback port, and run gdb-multiarch on the kernel ELF with symbols,
# the lx-* helpers (scripts/gdb/) and a breakpoint at start_kernel. Quitting
# GDB stops QEMU. Arguments after the options go to QEMU, as for run.sh:
#   scripts/gdb.sh                              then `continue` in GDB
#   scripts/gdb.sh -append ktest                the in-kernel tests
#   PROFILE=debugging scripts/gdb.sh            opt-level 0: exact stepping
#   scripts/gdb.sh --console pty -m 4G          console on a pseudo-terminal
# Options:
#   --console file|pty|tcp  where the kernel console goes (GDB owns this
#                           terminal): file (default) = $LOG_DIR/gdb-console.log
#                           (`tail -f` it; lx-dmesg shows the same), pty = a
#                           pseudo-terminal to attach to (screen/picocom),
#                           tcp = a second free port (`nc 127.0.0.1 PORT`)
#   -x FILE                 also run this GDB command file (repeatable)
#   --batch                 gdb -batch: run the -x files, then quit
#   --no-build              use the last build of PROFILE
# Environment: PROFILE=release (default) | dev | debugging.
# docs/debugging.md has a walkthrough.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=gdb/lib-gdb.sh
source "$REPO_ROOT/scripts/gdb/lib-gdb.sh"

console="file"
build=1
batch=()
gdb_files=()
while (($#)); do
    case $1 in
    -h | --help)
        sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    --console) console=${2:?--console needs file, pty or tcp} && shift 2 ;;
    --console=*) console=${1#--console=} && shift ;;
    -x) gdb_files+=("${2:?-x needs a file}") && shift 2 ;;
    --batch) batch=(-batch) && shift ;;
    --no-build) build=0 && shift ;;
    --) shift && break ;;
    *) break ;; # the rest is QEMU's
    esac
done
case $console in file | pty | tcp) ;; *) die "--console: file, pty or tcp, not '$console'" ;; esac

PROFILE=${PROFILE:-release}
ensure_tools qemu-system-aarch64 gdb-multiarch
if ((build)); then
    build_profile "$PROFILE" >&2 || die "build failed"
else
    profile_paths "$PROFILE"
    [[ -f $PROFILE_ELF ]] || die "--no-build: no $PROFILE_ELF"
    make_image "$PROFILE_ELF" "$PROFILE_IMAGE"
fi

mkdir -p "$LOG_DIR"
qemu_err=$LOG_DIR/gdb-qemu.err
console_args=()
console_log=/dev/null
case $console in
file)
    console_log=$LOG_DIR/gdb-console.log
    console_args=(-serial "file:$console_log" -monitor none)
    ;;
pty) console_args=(-serial pty -monitor none) ;;
tcp)
    cport=$(free_port)
    console_args=(-serial "tcp:127.0.0.1:$cport,server=on,wait=off" -monitor none)
    ;;
esac

QEMU_PID=
trap stop_qemu EXIT
trap 'exit 130' INT TERM

if ! start_qemu_gdb_free_port "$LOG_DIR/gdb-qemu.out" "$qemu_err" -kernel "$PROFILE_IMAGE" "${console_args[@]}" "$@"; then
    cat "$qemu_err" >&2
    die "QEMU did not start its gdbstub (command: ${QEMU_CMD[*]})"
fi
port=$GDB_PORT

case $console in
file) info "console: $console_log (tail -f it in another terminal; lx-dmesg in GDB)" ;;
pty)
    pts=$(cat "$LOG_DIR/gdb-qemu.out" "$qemu_err" | grep -o '/dev/pts/[0-9]*' | head -1 || true)
    info "console: ${pts:-a pseudo-terminal (see $LOG_DIR/gdb-qemu.out)}  (screen ${pts:-/dev/pts/N}, or picocom)"
    ;;
tcp) info "console: nc 127.0.0.1 $cport   (output before you connect is dropped)" ;;
esac
info "QEMU pid $QEMU_PID, gdbstub on 127.0.0.1:$port, paused at the first instruction"

gdb_args=(
    -q "${batch[@]}"
    -ex "set architecture aarch64"
    -ex "source $GDB_HELPERS"
    -ex "target remote 127.0.0.1:$port"
    -ex "break start_kernel"
)
for f in "${gdb_files[@]}"; do gdb_args+=(-x "$f"); done
if ((${#batch[@]} == 0)); then
    gdb_args+=(-ex "echo \\nStopped at QEMU's first instruction. 'continue' runs to start_kernel;\\nhelp: lx-dmesg lx-vmallocinfo lx-pgwalk lx-buddyinfo lx-symbols-phys (docs/debugging.md)\\n")
fi
# Not exec: the EXIT trap must stop QEMU when GDB quits. Ctrl-C belongs to
# GDB (it interrupts the kernel): a no-op trap, not an ignored signal, so
# GDB still gets the default disposition.
trap ':' INT
status=0
gdb-multiarch "${gdb_args[@]}" "$PROFILE_ELF" || status=$?
exit "$status"
