#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Debug the kernel: build it for debugging, start QEMU paused (-S) with its
# gdbstub on a free loopback port, and run gdb-multiarch on the kernel ELF
# with symbols, the lx-* helpers (scripts/gdb/) and a breakpoint at
# start_kernel, with the serial console next to it. Quitting GDB stops QEMU.
# Arguments after the options go to QEMU, as for run.sh:
#   scripts/gdb.sh                      then `continue` in GDB; type in the console
#   scripts/gdb.sh -append ktest        the in-kernel tests
#   PROFILE=release scripts/gdb.sh      the optimised (benchmark) build
#   scripts/gdb.sh --attach             (another terminal) this terminal becomes
#                                       the console of the running session
# Options:
#   --console MODE  where the serial console goes:
#                   auto (default): tmux if it is installed (a pane below GDB;
#                     a new tmux session when not already inside one), else attach;
#                     file when --batch or not on a terminal
#                   tmux: as above, tmux required
#                   attach: GDB here, the console on a loopback port; run
#                     `scripts/gdb.sh --attach` in a second terminal (bash only)
#                   file: $LOG_DIR/gdb-console.log only, no input (scripts)
#                   Every mode also logs the console to that file.
#   -x FILE         also run this GDB command file (repeatable)
#   --batch         gdb -batch: run the -x files, then quit
#   --no-build      use the last build of PROFILE
#   --attach [PORT] attach this terminal to the console (Ctrl-] detaches)
# Environment: PROFILE=debugging (default: opt-level 0, see Cargo.toml) | dev
# | release. docs/debugging.md has a walkthrough.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=gdb/lib-gdb.sh
source "$REPO_ROOT/scripts/gdb/lib-gdb.sh"

console="auto"
build=1
batch=()
gdb_files=()
while (($#)); do
    case $1 in
    -h | --help)
        sed -n '3,28s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    --attach)
        # The console of a running session, in this terminal.
        port=${2:-}
        [[ -n $port ]] || port=$(cat "$LOG_DIR/gdb-console.port" 2>/dev/null) ||
            die "no scripts/gdb.sh session is running (no $LOG_DIR/gdb-console.port)"
        [[ $port =~ ^[0-9]+$ ]] || die "--attach: not a port number: $port"
        [[ -t 0 ]] || die "--attach needs a terminal"
        info "(output printed before you attached: $LOG_DIR/gdb-console.log, or lx-dmesg in GDB)"
        console_attach "$port"
        exit 0
        ;;
    --console) console=${2:?--console needs auto, tmux, attach or file} && shift 2 ;;
    --console=*) console=${1#--console=} && shift ;;
    -x) gdb_files+=("${2:?-x needs a file}") && shift 2 ;;
    --batch) batch=(-batch) && shift ;;
    --no-build) build=0 && shift ;;
    --) shift && break ;;
    *) break ;; # the rest is QEMU's
    esac
done
case $console in auto | tmux | attach | file) ;; *) die "--console: auto, tmux, attach or file, not '$console'" ;; esac
if [[ $console == auto ]]; then
    if ((${#batch[@]})) || [[ ! -t 0 || ! -t 1 ]]; then
        console=file
    elif command -v tmux >/dev/null 2>&1; then
        console=tmux
    else
        console=attach
    fi
fi
[[ $console != tmux ]] || command -v tmux >/dev/null 2>&1 ||
    die "--console tmux: tmux is not installed (apt-get install tmux), or use --console attach"

PROFILE=${PROFILE:-$GDB_PROFILE}
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
console_log=$LOG_DIR/gdb-console.log
# The console always listens on a loopback port (tmux pane, --attach) and
# is always logged; with nobody attached the kernel runs on regardless.
cport=$(free_port)
console_socket_args "tcp:$cport" "$console_log"

QEMU_PID=
session=
cleanup() {
    stop_qemu
    rm -f "$LOG_DIR/gdb-console.port"
    if [[ -n $session ]]; then tmux kill-session -t "$session" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if ! start_qemu_gdb_free_port "$LOG_DIR/gdb-qemu.out" "$qemu_err" -kernel "$PROFILE_IMAGE" "${CONSOLE_ARGS[@]}" "$@"; then
    cat "$qemu_err" >&2
    die "QEMU did not start its gdbstub (command: ${QEMU_CMD[*]})"
fi
port=$GDB_PORT
echo "$cport" >"$LOG_DIR/gdb-console.port"
info "QEMU pid $QEMU_PID, gdbstub on 127.0.0.1:$port, paused at the first instruction; kernel $PROFILE_ELF ($PROFILE)"

gdb_args=(
    -q "${batch[@]}"
    -ex "set architecture aarch64"
    -ex "source $GDB_HELPERS"
    -ex "target remote 127.0.0.1:$port"
    -ex "break start_kernel"
)
for f in "${gdb_files[@]}"; do gdb_args+=(-x "$f"); done
if ((${#batch[@]} == 0)); then
    case $console in
    tmux) where="the pane below (Ctrl-b o switches panes; Ctrl-b z zooms one)" ;;
    attach) where="run 'scripts/gdb.sh --attach' in a second terminal" ;;
    file) where="$console_log (no input)" ;;
    esac
    gdb_args+=(-ex "echo \\nStopped at QEMU's first instruction. 'continue' runs to start_kernel.\\nConsole: $where.\\nhelp: lx-dmesg lx-vmallocinfo lx-pgwalk lx-buddyinfo lx-symbols-phys (docs/debugging.md)\\n")
fi
gdb_cmd=(gdb-multiarch "${gdb_args[@]}" "$PROFILE_ELF")

case $console in
file) info "console: $console_log (tail -f it; lx-dmesg in GDB shows the same)" ;;
attach) info "console: run 'scripts/gdb.sh --attach' in another terminal (127.0.0.1:$cport; log: $console_log)" ;;
tmux)
    attach_cmd="$(printf '%q' "$REPO_ROOT/scripts/gdb.sh") --attach $cport"
    if [[ -n ${TMUX-} ]]; then
        # Inside tmux: the console in a pane below this one; GDB stays here.
        tmux split-window -v -d -l 40% "$attach_cmd" || die "tmux split-window failed"
    else
        # A tmux session of its own: GDB above, the console below. Quitting
        # GDB ends the session (and then this script stops QEMU).
        session=vmkernel-gdb-$$
        tmux new-session -d -s "$session" -x "$(tput cols 2>/dev/null || echo 120)" \
            -y "$(tput lines 2>/dev/null || echo 40)" \
            "$(printf '%q ' "${gdb_cmd[@]}"); tmux kill-session -t $session" ||
            die "tmux new-session failed"
        tmux split-window -t "$session" -v -d -l 40% "$attach_cmd"
        tmux attach-session -t "$session" || true
        exit 0
    fi
    ;;
esac

# Not exec: the EXIT trap must stop QEMU when GDB quits. Ctrl-C belongs to
# GDB (it interrupts the kernel): a no-op trap, not an ignored signal, so
# GDB still gets the default disposition.
trap ':' INT
status=0
"${gdb_cmd[@]}" || status=$?
exit "$status"
