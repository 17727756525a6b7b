# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# Helpers shared by scripts/gdb.sh and scripts/gdb-test.sh: a free TCP port,
# QEMU paused with its gdbstub on it, and the kernel build for a profile.
# Source after scripts/lib.sh.
#
#   free_port                 print a free loopback TCP port
#   wait_listen PORT PID SECS wait until PORT is listening (0) or PID died (1)
#   start_qemu_gdb PORT OUT ERR ARGS...
#                             QEMU (defaults + ARGS) paused (-S) with its gdbstub
#                             on 127.0.0.1:PORT, in its own session; console to
#                             OUT, QEMU's messages to ERR; sets QEMU_PID
#   build_profile PROFILE     cargo build --profile PROFILE + Image; sets
#                             PROFILE_ELF and PROFILE_IMAGE (profile_paths)
#   console_socket_args WHERE LOG
#                             CONSOLE_ARGS: QEMU's serial on a socket chardev
#                             (WHERE = unix:PATH or tcp:PORT), logged to LOG
#   console_pump PORT FIFO    connect to the console on PORT: what is written
#                             to FIFO is typed, what the kernel prints is read
#                             and dropped (it is in the log); sets PUMP_PIDS
#   console_attach PORT       the console on this terminal (raw), Ctrl-] quits

# shellcheck disable=SC2034 # used by the scripts that source this file
GDB_HELPERS=$REPO_ROOT/scripts/gdb/vmkernel-gdb.py
# The build that scripts/gdb.sh debugs and scripts/gdb-test.sh tests by
# default: the `debugging` cargo profile (opt-level 0, see Cargo.toml and
# docs/debugging.md). The release build stays the benchmark build.
GDB_PROFILE=${GDB_PROFILE:-debugging}

# console_socket_args WHERE LOG: the kernel console on a listening socket
# (server=on, wait=off: the kernel runs whether or not anyone is attached;
# what it prints while nobody is goes only to LOG), every byte logged to
# LOG. -monitor none: -nographic would otherwise put QEMU's monitor on
# stdio. GDB's `monitor` command still reaches it through the gdbstub.
console_socket_args() {
    local where=$1 log=$2 sock
    case $where in
    unix:*) sock="path=${where#unix:}" ;;
    tcp:*) sock="host=127.0.0.1,port=${where#tcp:}" ;;
    *) die "console_socket_args: unix:PATH or tcp:PORT, not $where" ;;
    esac
    CONSOLE_ARGS=(-chardev "socket,id=con0,$sock,server=on,wait=off,logfile=$log,logappend=off"
        -serial chardev:con0 -monitor none)
}

# free_port: bind port 0 and report what the kernel picked. QEMU binds it a
# moment later; start_qemu_gdb notices if someone else took it meanwhile.
free_port() {
    local py='import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    if command -v python3 >/dev/null 2>&1; then
        python3 -c "$py"
    else
        # gdb-multiarch embeds Python, and we need it anyway.
        gdb-multiarch -nx -batch -ex "python $py"
    fi
}

# wait_listen PORT PID SECS: is PORT in LISTEN state on 127.0.0.1 (read from
# /proc/net/tcp, so no connection is made: QEMU's gdbstub takes exactly
# one)? Fails as soon as PID exits or after SECS seconds.
wait_listen() {
    local port=$1 pid=$2 secs=$3 hex i
    hex=$(printf '%04X' "$port")
    for ((i = 0; i < secs * 20; i++)); do
        # local_address is 0100007F:PORT, state 0A = LISTEN
        grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A " /proc/net/tcp 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# start_qemu_gdb PORT OUT ERR [QEMU_ARGS...]: QEMU stopped at its first
# instruction (-S) with the gdbstub on 127.0.0.1:PORT (never 0.0.0.0). Its
# own session (setsid), so Ctrl-C in GDB interrupts the kernel, not QEMU.
# Returns 1 if QEMU did not start listening (e.g. the port was taken).
start_qemu_gdb() {
    local port=$1 out=$2 err=$3
    shift 3
    qemu_cmd "$@" -gdb "tcp:127.0.0.1:$port" -S
    setsid "${QEMU_CMD[@]}" </dev/null >"$out" 2>"$err" &
    QEMU_PID=$!
    if ! wait_listen "$port" "$QEMU_PID" 10; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
        return 1
    fi
}

# start_qemu_gdb_free_port OUT ERR [QEMU_ARGS...]: start_qemu_gdb on a free
# port. A port free a moment ago may be taken by the time QEMU binds it, so
# try three. Sets GDB_PORT; returns 1 if QEMU never listened.
start_qemu_gdb_free_port() {
    local p
    GDB_PORT=
    for _ in 1 2 3; do
        p=$(free_port)
        if start_qemu_gdb "$p" "$@"; then
            GDB_PORT=$p
            return 0
        fi
    done
    return 1
}

# stop_qemu: the EXIT trap of the GDB scripts: QEMU must not outlive GDB.
stop_qemu() {
    if [[ -n ${QEMU_PID-} ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
}

# profile_paths PROFILE: PROFILE_ELF and PROFILE_IMAGE of a cargo profile
# (cargo puts the dev profile in debug/).
profile_paths() {
    local dir=$1
    [[ $1 == dev ]] && dir=debug
    PROFILE_ELF=$TARGET_DIR/$KERNEL_TRIPLE/$dir/vmkernel
    PROFILE_IMAGE=$TARGET_DIR/$KERNEL_TRIPLE/$dir/Image
}

# build_profile PROFILE: build the kernel with a cargo profile and make its
# Image: release (the default build: opt-level 3, debug info), dev
# (opt-level 1, debug assertions) or debugging (opt-level 0); see
# docs/debugging.md for the trade-off.
build_profile() {
    (cd "$REPO_ROOT" && cargo build --profile "$1" --bin vmkernel) || return 1
    profile_paths "$1"
    make_image "$PROFILE_ELF" "$PROFILE_IMAGE" || return 1
    info "kernel ($1): Image $PROFILE_IMAGE, ELF $PROFILE_ELF"
}

# console_pump PORT FIFO: keep the console socket drained (QEMU stalls the
# guest once nobody reads what it writes) and type whatever is written to
# FIFO. Bash's /dev/tcp: no extra tool needed.
console_pump() {
    local port=$1 fifo=$2
    rm -f "$fifo"
    mkfifo "$fifo" || return 1
    exec {PUMP_SOCK}<>"/dev/tcp/127.0.0.1/$port" || return 1
    # Read-write, so the FIFO never reaches EOF between two writers.
    exec {PUMP_FIFO}<>"$fifo"
    PUMP_PIDS=()
    cat <&"$PUMP_SOCK" >/dev/null &
    PUMP_PIDS+=($!)
    cat <&"$PUMP_FIFO" >&"$PUMP_SOCK" &
    PUMP_PIDS+=($!)
    exec {PUMP_SOCK}>&- {PUMP_FIFO}>&-
}

stop_console_pump() {
    local p
    for p in "${PUMP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PUMP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PUMP_PIDS=()
}

# console_attach PORT: the kernel console on this terminal. The terminal is
# raw (every key goes to the kernel's line editor, Ctrl-C included); Ctrl-]
# detaches, as in telnet. Only bash and stty.
console_attach() {
    local port=$1 sock reader c saved
    exec {sock}<>"/dev/tcp/127.0.0.1/$port" || die "no console on 127.0.0.1:$port (is scripts/gdb.sh running?)"
    cat <&"$sock" &
    reader=$!
    saved=$(stty -g)
    stty raw -echo
    printf 'console attached: Ctrl-] detaches\r\n'
    while kill -0 "$reader" 2>/dev/null; do
        IFS= read -rsn1 -t 1 c || { (($? > 128)) && continue; } || break
        [[ $c == $'\x1d' ]] && break
        # read -n1 returns the delimiter (newline) as an empty string.
        printf '%s' "${c:-$'\n'}" >&"$sock"
    done
    stty "$saved"
    kill "$reader" 2>/dev/null || true
    exec {sock}>&-
    printf '\nconsole detached\n'
}
