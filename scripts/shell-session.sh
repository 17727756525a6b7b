# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# The `shell` layer of scripts/test.sh: a scripted session on the kernel's
# serial shell. Sourced by test.sh (it uses pass/fail/show_tail, LOG_DIR,
# TEST_IMAGE, spawn_boot/verify_boot); defines functions only.
#
# How the session is driven: QEMU's stdin is a FIFO, its console goes to
# $LOG_DIR/shell-session.log. Each command is written only once the log ends
# with the prompt and has stopped growing, so each reply is exactly the bytes
# between the command and the next prompt. (Input sent early is not lost --
# see shell_stress_input -- but pacing keeps the replies apart.) Every wait is bounded; if QEMU
# dies or a reply never comes, the session stops with one failure and the
# log's tail.
#
#   sh_start NAME QEMU_ARGS...   boot, wait for the first prompt
#   sh_run CMD [SECS]            type CMD + Enter, wait for the prompt;
#                                SH_OUT = the reply lines (echo removed)
#   sh_raw BYTES [SECS]          the same for raw bytes (printf %b)
#   sh_finish                    close stdin, wait for QEMU, SH_STATUS

SH_PROMPT='vmkernel# '
SHELL_TIMEOUT=${SHELL_TIMEOUT:-120} # the whole session
SHELL_CMD_TIMEOUT=${SHELL_CMD_TIMEOUT:-20}

sh_start() {
    SH_NAME=$1
    shift
    SH_LOG=$LOG_DIR/$SH_NAME.log
    SH_SENT=$LOG_DIR/$SH_NAME.sent
    local fifo=$LOG_DIR/$SH_NAME.fifo
    rm -f "$fifo" "$SH_LOG" "$SH_SENT" "$LOG_DIR/$SH_NAME.status"
    mkfifo "$fifo"
    : >"$SH_LOG"
    : >"$SH_SENT"
    qemu_cmd "$@"
    printf '%q ' "${QEMU_CMD[@]}" >"$LOG_DIR/$SH_NAME.cmd"
    printf '< %q\n' "$SH_SENT" >>"$LOG_DIR/$SH_NAME.cmd"
    (
        st=0
        timeout --kill-after=5 "$SHELL_TIMEOUT" "${QEMU_CMD[@]}" <"$fifo" >"$SH_LOG" 2>&1 || st=$?
        echo "$st" >"$LOG_DIR/$SH_NAME.status"
    ) &
    SH_PID=$!
    # Blocks until QEMU has opened its end.
    exec {SH_FD}>"$fifo"
    SH_DEAD=""
    SH_OUT=()
    sh_wait_prompt 0 30
}

# sh_wait_prompt FROM SECS: wait until the log, grown past FROM bytes, ends
# with the prompt and did not grow for one poll. Sets SH_DEAD on failure.
sh_wait_prompt() {
    local from=$1 deadline=$((SECONDS + $2)) size prev=-1
    while ((SECONDS < deadline)); do
        size=$(stat -c %s "$SH_LOG")
        if ((size > from)) && [[ $(tail -c ${#SH_PROMPT} "$SH_LOG") == "$SH_PROMPT" ]]; then
            ((size == prev)) && return 0
            prev=$size
        else
            prev=-1
        fi
        if ! kill -0 "$SH_PID" 2>/dev/null; then
            sleep 0.2 # let the last bytes land
            SH_DEAD="QEMU exited (status $(cat "$LOG_DIR/$SH_NAME.status" 2>/dev/null || echo '?'))"
            return 1
        fi
        sleep 0.05
    done
    SH_DEAD="no prompt within $2 s"
    return 1
}

# sh_raw BYTES [SECS]: send BYTES (printf %b), wait for the prompt, and set
# SH_OUT to the reply lines without the echo line and the final prompt.
sh_raw() {
    [[ -z $SH_DEAD ]] || return 1
    local from bytes=$1 secs=${2:-$SHELL_CMD_TIMEOUT}
    from=$(stat -c %s "$SH_LOG")
    printf '%s\n' "$bytes" >>"$SH_SENT"
    # shellcheck disable=SC2059 # BYTES is a %b string on purpose
    if ! { printf '%b' "$bytes" >&"$SH_FD"; } 2>/dev/null; then
        SH_DEAD="writing to QEMU's stdin failed"
        return 1
    fi
    sh_wait_prompt "$from" "$secs" || return 1
    local size reply
    size=$(stat -c %s "$SH_LOG")
    reply=$(tail -c +$((from + 1)) "$SH_LOG" | head -c $((size - from - ${#SH_PROMPT})) | tr -d '\r')
    mapfile -t SH_OUT <<<"$reply"
    SH_ECHO=${SH_OUT[0]-}
    SH_OUT=("${SH_OUT[@]:1}")
    # A reply that is only a newline leaves one empty element.
    if ((${#SH_OUT[@]} == 1)) && [[ -z ${SH_OUT[0]} ]]; then SH_OUT=(); fi
}

sh_run() {
    sh_raw "$1\n" "${2:-}"
}

sh_finish() {
    exec {SH_FD}>&-
    wait "$SH_PID" 2>/dev/null || true
    SH_STATUS=$(cat "$LOG_DIR/$SH_NAME.status" 2>/dev/null || echo '?')
}

# ---------------------------------------------------------------------------
# Expectations on the last reply; `verdict NAME` reports them as one check.
# ---------------------------------------------------------------------------

SH_REASONS=()

# out_has ERE: some reply line matches.
out_has() {
    local l
    for l in "${SH_OUT[@]}"; do [[ $l =~ $1 ]] && return 0; done
    SH_REASONS+=("no reply line matches: $1")
}

# out_lacks ERE: no reply line matches.
out_lacks() {
    local l
    for l in "${SH_OUT[@]}"; do
        if [[ $l =~ $1 ]]; then
            SH_REASONS+=("unexpected reply line: $l")
            return 0
        fi
    done
}

# out_one_line ERE: the reply is exactly one line, matching.
out_one_line() {
    if ((${#SH_OUT[@]} != 1)); then
        SH_REASONS+=("expected exactly one reply line, got ${#SH_OUT[@]}")
    elif ! [[ ${SH_OUT[0]} =~ $1 ]]; then
        SH_REASONS+=("reply '${SH_OUT[0]}' does not match: $1")
    fi
}

# expect COND DESCRIPTION: an arithmetic condition.
expect() {
    (($1)) || SH_REASONS+=("$2")
}

# out_capture ERE: BASH_REMATCH of the first matching reply line (returns 1
# and records a reason if none matches).
out_capture() {
    local l
    for l in "${SH_OUT[@]}"; do [[ $l =~ $1 ]] && return 0; done
    SH_REASONS+=("no reply line matches: $1")
    return 1
}

verdict() {
    if [[ -n $SH_DEAD ]]; then
        SH_REASONS+=("session ended: $SH_DEAD")
    fi
    if ((${#SH_REASONS[@]} == 0)); then
        pass "shell: $1"
    else
        local shown=("${SH_OUT[@]:0:20}")
        fail "shell: $1" "${SH_REASONS[@]}" "command: $SH_ECHO" "${shown[@]/#/| }"
    fi
    SH_REASONS=()
}

# meminfo_kb NAME: the value of a meminfo line in the last reply.
meminfo_kb() {
    local l re="^$1: +([0-9]+) kB$"
    for l in "${SH_OUT[@]}"; do
        if [[ $l =~ $re ]]; then
            echo "${BASH_REMATCH[1]}"
            return
        fi
    done
    echo -1
}

# snap_meminfo P: MemFree, PageTables and Slab of the last reply into
# P_free, P_pt and P_slab (globals; the session reads them).
# shellcheck disable=SC2034 # assigned through printf -v
snap_meminfo() {
    printf -v "$1_free" '%s' "$(meminfo_kb MemFree)"
    printf -v "$1_pt" '%s' "$(meminfo_kb PageTables)"
    printf -v "$1_slab" '%s' "$(meminfo_kb Slab)"
}

hex() { printf '0x%x' "$(($1))"; }

# ---------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------

SHELL_COMMANDS=(help meminfo buddyinfo numastat vmallocinfo vmaptree vmalloc vzalloc vfree vmap vunmap ioremap iounmap purge
    pt peek poke dt dmesg uptime history ktest bench poweroff)

# The checks, in order; returns 1 when the session died (the caller reports).
# shellcheck disable=SC2154 # m0_free etc. are set by snap_meminfo
shell_session() {
    local l c a z m io al txt con b f0 n up1 up2 re

    sh_run help || return 1
    for c in "${SHELL_COMMANDS[@]}"; do
        re="^  $c( |$)"
        out_has "$re"
    done
    verdict "help lists all ${#SHELL_COMMANDS[@]} commands, one line each"

    sh_run meminfo || return 1
    for l in MemTotal MemFree Slab PageTables VmallocTotal VmallocUsed VmallocChunk; do
        out_has "^$l: +[0-9]+ kB$"
    done
    l=$(meminfo_kb MemTotal) # 1 GiB less what the kernel reserved
    expect "l > 900000 && l <= 1048576" "MemTotal $l kB, want a little under 1048576 kB"
    out_has '^VmallocUsed: +0 kB$'
    verdict "meminfo: /proc/meminfo lines (MemTotal ~1 GiB, VmallocUsed 0)"

    sh_run buddyinfo || return 1
    out_one_line '^Node 0, zone +Normal( +[0-9]+){11} *$'
    verdict "buddyinfo: one zone, 11 orders"

    sh_run numastat || return 1
    for l in MemTotal MemFree MemUsed; do
        out_has "^Node 0 $l: +[0-9]+ kB$"
    done
    out_lacks '^Node [1-9]'
    out_has '^cpu0: node 0$'
    verdict "numastat: one node's MemTotal/MemFree/MemUsed, CPU 0 on node 0"

    sh_run vmallocinfo || return 1
    out_has '^0x[0-9a-f]{16}-0x[0-9a-f]{16} +[0-9]+ src/drivers/tty/serial/console.rs:[0-9]+ phys=0x0000000009000000 ioremap$'
    out_has '^0xffff800010000000-0x[0-9a-f]{16} +[0-9]+ .* vmap$'
    verdict "vmallocinfo: kernel image segments and the console's ioremap"
    [[ ${SH_OUT[0]} =~ ^(0x[0-9a-f]{16})- ]] && txt=${BASH_REMATCH[1]}
    out_capture '^(0x[0-9a-f]{16})-0x[0-9a-f]{16} +[0-9]+ src/drivers/tty/serial/console.rs:[0-9]+ .*ioremap$' && con=${BASH_REMATCH[1]}
    SH_REASONS=()

    # --- vmalloc, and MemFree accounting -------------------------------
    sh_run meminfo || return 1
    snap_meminfo m0
    sh_run 'vmalloc 64K' || return 1
    out_capture '^vmalloc: 64K at (0x[0-9a-f]{16}) \(16 page\(s\) \+ guard page\)$' && a=${BASH_REMATCH[1]}
    out_has "^$a-$(printf '0x%016x' $((a + 0x11000))) +69632 src/shell/mem.rs:[0-9]+ pages=16 vmalloc N0=16$"
    verdict "vmalloc 64K: address, 16 pages + guard, its vmallocinfo line"
    sh_run meminfo || return 1
    snap_meminfo m1
    expect "m0_free - m1_free == 64 + (m1_pt - m0_pt) + (m1_slab - m0_slab)" \
        "MemFree $m0_free -> $m1_free kB; PageTables $m0_pt -> $m1_pt; Slab $m0_slab -> $m1_slab (want 64 kB of pages + tables + slab)"
    out_has '^VmallocUsed: +64 kB$'
    verdict "meminfo after vmalloc 64K: MemFree down by 64 kB (+ page tables/slab), VmallocUsed 64 kB"

    sh_run "poke $(hex "a + 8") 0x1122334455667788" || return 1
    out_one_line "^poke: wrote 0x1122334455667788 to $(hex "a + 8")$"
    verdict "poke into the vmalloc area"
    sh_run "peek $a 2" || return 1
    out_one_line "^$(printf '0x%016x' "$a"): [0-9a-f]{16} 1122334455667788$"
    verdict "peek reads the poked word back"
    sh_run "poke -w 1 $(hex "a + 9") 0xab" || return 1
    out_one_line "^poke: wrote 0xab to $(hex "a + 9")$"
    sh_run "poke -w 2 $(hex "a + 12") 0xcdef" || return 1
    out_one_line "^poke: wrote 0xcdef to $(hex "a + 12")$"
    sh_run "peek $(hex "a + 8")" || return 1
    out_one_line '^0x[0-9a-f]{16}: 1122cdef5566ab88$'
    verdict "poke -w 1 / -w 2 change exactly one byte / halfword of the word"
    sh_run "peek -w 2 $(hex "a + 8") 4" || return 1
    out_one_line '^0x[0-9a-f]{16}: ab88 5566 cdef 1122$'
    sh_run "peek -w 1 $(hex "a + 8") 8" || return 1
    out_one_line '^0x[0-9a-f]{16}: 88 ab 66 55 ef cd 22 11$'
    verdict "peek -w 2 / -w 1 read halfwords and bytes in address order"
    sh_run "poke $(hex "a + 8") 0x1122334455667788" || return 1

    sh_run 'vzalloc 3M' || return 1
    out_capture '^vzalloc: 3M at (0x[0-9a-f]{16}) \(768 page\(s\) \+ guard page\)$' && z=${BASH_REMATCH[1]}
    out_has ' pages=768 vmalloc vpages N0=768$'
    verdict "vzalloc 3M: 768 pages, page array itself vmalloc'ed (vpages)"
    sh_run "peek $(hex "z + 0x2ffe0") 4" || return 1
    out_one_line '^0x[0-9a-f]{16}: 0000000000000000 0000000000000000 0000000000000000 0000000000000000$'
    verdict "vzalloc'ed memory reads as zeroes up to its last word"

    sh_run 'vmalloc 8K 2M' || return 1
    out_capture '^vmalloc: 8K at (0x[0-9a-f]{16}) ' && al=${BASH_REMATCH[1]}
    expect "${al:-1} % 0x200000 == 0" "address ${al:-none} is not 2 MiB aligned"
    verdict "vmalloc 8K 2M: 2 MiB-aligned address"

    sh_run 'vmap 4' || return 1
    out_capture '^vmap: 4 page\(s\) at (0x[0-9a-f]{16}), pfns( 0x[0-9a-f]+){4}$' && m=${BASH_REMATCH[1]}
    out_has "^$m-0x[0-9a-f]{16} +20480 src/shell/mem.rs:[0-9]+ vmap$"
    verdict "vmap 4: four alloc_pages(0) pages mapped, vmallocinfo line"
    sh_run "poke $m 0x5a5a" || return 1
    sh_run "peek $m" || return 1
    out_one_line '^0x[0-9a-f]{16}: 0000000000005a5a$'
    verdict "the vmap area is writable and readable"

    sh_run 'ioremap 0x9000000 4K' || return 1
    out_capture '^ioremap: phys 0x9000000 size 4K at (0x[0-9a-f]{16}) \(1 page\(s\) Device-nGnRE' && io=${BASH_REMATCH[1]}
    out_has "^$io-0x[0-9a-f]{16} +8192 src/shell/mem.rs:[0-9]+ phys=0x0000000009000000 ioremap$"
    verdict "ioremap of the PL011: address and vmallocinfo line"
    sh_run "peek $(hex "io + 0xfe0")" || return 1
    out_one_line '^0x[0-9a-f]{16}: 0000001000000011$'
    verdict "peek through the ioremap reads the PL011's PeriphID0/1 (0x11, 0x10)"
    sh_run "peek -w 4 $(hex "io + 0xfe0") 8" || return 1
    out_one_line '^0x[0-9a-f]{16}: 00000011 00000010 000000[0-9a-f]4 00000000 0000000d 000000f0 00000005 000000b1$'
    verdict "peek -w 4: the eight PrimeCell ID registers, one 32-bit access each"
    # The session runs with -d guest_errors: QEMU reports bad accesses.
    sh_run "peek $(hex "io + 0x18")" || return 1
    out_has '^pl011_read: Bad offset 0?x?1c'
    verdict "peek (64-bit) of UARTFR also touches offset 0x1c: QEMU logs 'pl011_read: Bad offset'"
    sh_run "peek -w 4 $(hex "io + 0x18")" || return 1
    out_one_line '^0x[0-9a-f]{16}: [0-9a-f]{8}$'
    out_lacks 'Bad offset'
    verdict "peek -w 4 of UARTFR: one 32-bit access (QEMU logs no 'pl011_read: Bad offset')"

    # --- page-table walks ----------------------------------------------
    sh_run "pt $a" || return 1
    out_has '^  L0 pgd\[256\] in table 0x[0-9a-f]+: pgd 0x[0-9a-f]{16} TABLE'
    out_has '^  L3 pte\[[0-9]+\] in table 0x[0-9a-f]+: pte 0x[0-9a-f]{16} PAGE pa=0x[0-9a-f]+ attr0=Normal RW XN '
    out_has '^  => pa 0x[0-9a-f]+ \(4 KiB page at level 3\)$'
    verdict "pt on a vmalloc address: four levels decoded down to a 4 KiB page"
    sh_run "pt $(hex "a + 0x10000")" || return 1
    out_has '^  => not mapped \(no valid entry at level 3, pte\)$'
    verdict "pt on the guard page: not mapped at level 3"
    sh_run 'pt 0xffff000000000000' || return 1
    out_has '^  => pa 0x40000000 \((1 GiB|2 MiB) block at level [12]\)$'
    verdict "pt on the linear map: a block mapping of RAM"

    # --- faults: oops, then back to the prompt with everything intact ---
    sh_run "peek $(hex "a + 0xfff8") 2" || return 1
    out_has "^\[ *[0-9]+\.[0-9]+\] Unable to handle kernel paging request at virtual address $(printf '%016x' $((a + 0x10000)))$"
    out_has 'FSC = 0x07: level 3 translation fault$'
    out_has "is in the GUARD PAGE of area $a-"
    out_has 'Internal error: Oops: '
    out_has 'Fault recovered by catch_fault'
    out_has '^0x[0-9a-f]{16}: [0-9a-f]{16}$'
    out_has "^peek: reading $(hex "a + 0x10000") faulted \(level 3 translation fault\); 1 of 2 word\(s\) read$"
    verdict "peek across the end into the guard page: the word before, the oops, one line"
    sh_run vmallocinfo || return 1
    out_has "^$a-0x[0-9a-f]{16} +69632 src/shell/mem.rs:[0-9]+ pages=16 vmalloc N0=16$"
    verdict "after the fault: the shell runs the next command; the area is still listed"
    sh_run "peek $(hex "a + 8")" || return 1
    out_one_line '^0x[0-9a-f]{16}: 1122334455667788$'
    verdict "after the fault: the area still holds what was written"

    sh_run "peek $txt" || return 1
    out_capture '^0x[0-9a-f]{16}: ([0-9a-f]{16})$'
    local text_word=${BASH_REMATCH[1]-}
    SH_REASONS=()
    sh_run "poke $(hex "txt + 0x100") 0" || return 1
    out_has 'FSC = 0x0f: level 3 permission fault$'
    out_has 'WnR = 1 \(write\)'
    out_has "^poke: writing $(hex "txt + 0x100") faulted \(level 3 permission fault\); nothing written$"
    verdict "poke to .text: permission-fault oops, one line, back to the prompt"
    sh_run "peek $txt" || return 1
    out_one_line "^0x[0-9a-f]{16}: ${text_word:-missing}$"
    verdict "after the .text fault: the kernel keeps running, .text unchanged"

    sh_run 'peek 0xffff900000000000' || return 1
    out_has 'Unable to handle kernel paging request at virtual address ffff900000000000'
    out_has '^peek: reading 0xffff900000000000 faulted \(level [0-3] translation fault\); 0 of 1 word\(s\) read$'
    verdict "peek at an unmapped vmalloc-range address: oops, one line"
    sh_run 'peek 0' || return 1
    out_has 'Unable to handle kernel NULL pointer dereference at virtual address 0000000000000000'
    out_has '^peek: reading 0x0 faulted'
    verdict "peek at NULL: oops, one line"

    # --- bad input: one line each, nothing changes ------------------------
    sh_run vmallocinfo || return 1
    local vi_before=("${SH_OUT[@]}")
    sh_run meminfo || return 1
    local mi_before=("${SH_OUT[@]}")
    local bad=(
        'frobnicate|^frobnicate: unknown command \(type .help. for the list\)$'
        'vmalloc|^vmalloc: missing SIZE \(usage: vmalloc SIZE \[ALIGN\]\)$'
        'vmalloc 12q|^vmalloc: SIZE: .12q. is not a size'
        'vmalloc 0x|^vmalloc: SIZE: .0x. is not a size'
        'vmalloc 4KB|^vmalloc: SIZE: .4KB. is not a size'
        'vmalloc 99999999999999999999|^vmalloc: SIZE: .99999999999999999999. does not fit in 64 bits'
        'vmalloc 20000000000000000G|^vmalloc: SIZE: .20000000000000000G. does not fit in 64 bits'
        'vmalloc 0|^vmalloc: SIZE must not be zero$'
        'vmalloc 2G|^vmalloc: SIZE 2G is more than the [0-9]+ kB of RAM$'
        'vmalloc 4K 3|^vmalloc: ALIGN 0x3 must be a power of two'
        'vmalloc 4K 8K 1|^vmalloc: unexpected argument .1.'
        'vzalloc 0|^vzalloc: SIZE must not be zero$'
        'vfree|^vfree: missing ADDR'
        'vfree 0xffff800012345000|^vfree: 0xffff800012345000 is not the start of a vmalloc area$'
        "vfree $(hex "a + 8")|^vfree: $(hex "a + 8") is not the start of a vmalloc area \\(it is inside the vmalloc area $a-"
        "vfree $m|^vfree: $m is a vmap area; use vunmap$"
        "vfree $con|^vfree: $con is an ioremap area from src/drivers/tty/serial/console.rs:[0-9]+, not created from this shell; refusing"
        "vfree $txt|^vfree: $txt is a vmap area from .*, not created from this shell; refusing"
        "vunmap $a|^vunmap: $a is a vmalloc area; use vfree$"
        "iounmap $con|^iounmap: $con is an ioremap area from src/drivers/tty/serial/console.rs:[0-9]+, not created from this shell; refusing"
        'iounmap 0x1000|^iounmap: 0x1000 is not the start of an ioremap area$'
        'vmap 0|^vmap: NPAGES must not be zero$'
        'vmap 99999999999|^vmap: 99999999999 pages is more than the [0-9]+ free pages$'
        'ioremap 0x9000000|^ioremap: missing SIZE'
        'ioremap 0x9000000 0|^ioremap: SIZE must not be zero$'
        'ioremap 0xfffffffffffff000 8K|^ioremap: .* goes beyond the 48-bit physical address space$'
        'ioremap 0x40000000 4K|^ioremap: \[0x40000000-0x40001000\) overlaps RAM'
        "peek $(hex "a + 4")|^peek: ADDR $(hex "a + 4") is not 8-byte aligned$"
        "peek $a 0|^peek: COUNT 0 must be from 1 to 512$"
        "peek $a 513|^peek: COUNT 513 must be from 1 to 512$"
        'peek 0xg|^peek: ADDR: .0xg. is not a number'
        "poke $a|^poke: missing VALUE"
        "poke $a 0x1ffffffffffffffff|^poke: VALUE: .0x1ffffffffffffffff. does not fit in 64 bits"
        'pt|^pt: missing VA \(usage: pt VA\)$'
        "peek -w 3 $a|^peek: WIDTH 3 must be 1, 2, 4 or 8 \\(bytes\\)$"
        "peek -w 4 $(hex "a + 2")|^peek: ADDR $(hex "a + 2") is not 4-byte aligned$"
        "poke -w 1 $a 0x100|^poke: VALUE 0x100 does not fit in 1 byte\\(s\\)$"
        "peek -w|^peek: missing WIDTH"
        'ktest nosuch|^ktest: filter .nosuch. matches no test \(suites: boot, mm, vmalloc'
        'meminfo now|^meminfo: unexpected argument .now.'
    )
    local spec
    for spec in "${bad[@]}"; do
        sh_run "${spec%%|*}" || return 1
        out_one_line "${spec#*|}"
        verdict "bad input '${spec%%|*}': one clear line"
    done
    sh_run vmallocinfo || return 1
    [[ "${SH_OUT[*]}" == "${vi_before[*]}" ]] || SH_REASONS+=("vmallocinfo changed across the bad commands")
    sh_run meminfo || return 1
    [[ "${SH_OUT[*]}" == "${mi_before[*]}" ]] || SH_REASONS+=("meminfo changed across the bad commands")
    verdict "bad input changed nothing (vmallocinfo and meminfo identical before and after)"

    # --- line editing (raw bytes) ----------------------------------------
    sh_raw 'uptimX\x7fe\n' || return 1
    out_one_line '^up [0-9]+\.[0-9]{6} s '
    verdict "line editing: DEL erases a character"
    sh_raw 'meminfoo\x08\n' || return 1
    out_has '^MemTotal:'
    verdict "line editing: BS erases a character"
    sh_raw 'vfree 0x1234\x15uptime\n' || return 1
    out_one_line '^up [0-9]+\.[0-9]{6} s '
    verdict "line editing: Ctrl-U kills the line"
    sh_raw 'vfree 0x1234\x03' || return 1
    expect "${#SH_OUT[@]} == 0" "Ctrl-C printed a reply"
    [[ $SH_ECHO == 'vfree 0x1234^C' ]] || SH_REASONS+=("echo '$SH_ECHO', want 'vfree 0x1234^C'")
    verdict "line editing: Ctrl-C abandons the line, new prompt"
    sh_raw 'uptime\x1b[\r' || return 1
    out_one_line '^up [0-9]+\.[0-9]{6} s '
    verdict "line editing: Enter after 'ESC [' ends the escape sequence and runs the line"
    sh_raw 'vfree 0x1234\x1b[1;\x03' || return 1
    expect "${#SH_OUT[@]} == 0" "Ctrl-C after 'ESC [ 1 ;' printed a reply"
    verdict "line editing: Ctrl-C inside an escape sequence abandons the line"
    sh_raw '\x1b[A\n' || return 1
    out_one_line '^up [0-9]+\.[0-9]{6} s '
    verdict "history: Up recalls the last command (uptime)"
    sh_raw '\x1b[A\x1b[A\n' || return 1
    out_has '^MemTotal:'
    verdict "history: Up Up recalls the one before (meminfo)"
    # The ring now ends: uptime, meminfo (recalled lines are entered again).
    sh_raw '\x1b[A\x1b[A\x1b[B\n' || return 1
    out_has '^MemTotal:'
    verdict "history: Up Up Down is the newest entry again (meminfo)"
    sh_raw 'uptime\r\n' || return 1
    out_one_line '^up [0-9]+\.[0-9]{6} s '
    [[ $(tail -c 200 "$SH_LOG" | tr -d '\r') != *"$SH_PROMPT"$'\n'"$SH_PROMPT" ]] || SH_REASONS+=("an empty prompt line: CRLF ran two commands")
    verdict "CRLF ends one line (no empty second command)"
    sh_raw 'uptime\r' || return 1
    out_one_line '^up [0-9]+\.[0-9]{6} s \(CNTPCT_EL0 ([0-9]+) '
    [[ ${SH_OUT[0]-} =~ CNTPCT_EL0\ ([0-9]+) ]] && up1=${BASH_REMATCH[1]}
    verdict "CR alone ends a line"
    sh_run uptime || return 1
    [[ ${SH_OUT[0]-} =~ CNTPCT_EL0\ ([0-9]+) ]] && up2=${BASH_REMATCH[1]}
    expect "${up2:-0} > ${up1:-0}" "uptime did not advance: ${up1:-?} -> ${up2:-?}"
    verdict "uptime advances"
    sh_run history || return 1
    out_has '^ +[0-9]+  uptime$'
    [[ ${SH_OUT[-1]-} =~ ^\ +16\ \ history$ ]] || SH_REASONS+=("last history line '${SH_OUT[-1]-}', want entry 16 'history'")
    expect "${#SH_OUT[@]} == 16" "history holds ${#SH_OUT[@]} lines, want 16 (the ring size)"
    verdict "history: the last 16 lines"

    # --- freeing, and MemFree coming back ----------------------------------
    sh_run meminfo || return 1
    snap_meminfo m0
    sh_run 'vmalloc 256K' || return 1
    out_capture '^vmalloc: 256K at (0x[0-9a-f]{16}) ' && b=${BASH_REMATCH[1]}
    verdict "vmalloc 256K"
    sh_run "vfree $b" || return 1
    out_one_line "^vfree: freed $b-0x[0-9a-f]{16}: 64 page\\(s\\), 64 free pages more; address space waits for the lazy purge \\([0-9]+ page\\(s\\) pending\\)$"
    verdict "vfree: 64 pages back at once, address space pending the lazy purge"
    sh_run meminfo || return 1
    snap_meminfo m1
    expect "m1_free == m0_free - (m1_pt - m0_pt) - (m1_slab - m0_slab)" \
        "MemFree $m0_free -> $m1_free kB, PageTables $m0_pt -> $m1_pt, Slab $m0_slab -> $m1_slab: pages not all returned"
    verdict "meminfo after vmalloc+vfree: MemFree back (page tables kept, counted in PageTables)"
    sh_run vmallocinfo || return 1
    out_has "^0x[0-9a-f]{16}-0x[0-9a-f]{16} +[0-9]+ unpurged vm_area$"
    out_lacks "^$b-.* vmalloc( N[0-9]+=[0-9]+)*$"
    verdict "vmallocinfo: the freed range is an unpurged vm_area"
    sh_run purge || return 1
    out_one_line '^purge: [1-9][0-9]* lazily freed page\(s\) of address space back in the free tree \(1 TLB flush\(es\)\)'
    verdict "purge: lazily freed areas back in the free tree with one TLB flush"
    sh_run vmallocinfo || return 1
    out_lacks 'unpurged'
    verdict "vmallocinfo after purge: no unpurged areas"
    sh_run 'vmalloc 256K' || return 1
    out_capture '^vmalloc: 256K at (0x[0-9a-f]{16}) ' && f0=${BASH_REMATCH[1]}
    [[ ${f0-} == "$b" ]] || SH_REASONS+=("got ${f0:-nothing}, want the purged range's $b back")
    verdict "after purge, vmalloc 256K reuses the same address (lowest fit)"
    sh_run meminfo || return 1
    snap_meminfo m2
    sh_run "vfree $b" || return 1
    sh_run meminfo || return 1
    snap_meminfo m3
    expect "m1_free - m2_free == 256 && m3_free == m1_free && m3_pt == m1_pt" \
        "MemFree $m1_free -> $m2_free -> $m3_free kB, PageTables $m1_pt -> $m3_pt (want -256 then back, tables reused)"
    verdict "warm vmalloc 256K + vfree: MemFree exactly -256 kB, then exactly back"

    sh_run "vunmap $m" || return 1
    out_one_line "^vunmap: unmapped $m-0x[0-9a-f]{16} and freed its 4 page\\(s\\);"
    verdict "vunmap: unmapped and its 4 pages freed"
    sh_run "vunmap $m" || return 1
    out_one_line "^vunmap: $m is not the start of a vmap area$"
    verdict "vunmap twice: one clear line"
    sh_run "iounmap $io" || return 1
    out_one_line "^iounmap: unmapped $(printf '0x%016x' "$io")-"
    verdict "iounmap of the shell's ioremap"
    sh_run "vfree $a" || return 1
    out_has '^vfree: freed .*16 page\(s\), 16 free pages more'
    sh_run "vfree $z" || return 1
    out_has '^vfree: freed .*768 page\(s\), 770 free pages more'
    sh_run "vfree $al" || return 1
    out_has '^vfree: freed .*2 page\(s\), 2 free pages more'
    verdict "vfree of every remaining area (the 3M one frees its vmalloc'ed page array too)"
    sh_run "vfree $a" || return 1
    out_one_line "^vfree: $a is not the start of a vmalloc area$"
    verdict "vfree twice: one clear line, no allocator warning"
    sh_run meminfo || return 1
    out_has '^VmallocUsed: +0 kB$'
    verdict "meminfo: VmallocUsed back to 0"

    # --- the rest ---------------------------------------------------------
    sh_run dt || return 1
    out_has 'Machine model: linux,dummy-virt$'
    out_has 'RAM: 1024 MiB in 1 bank\(s\)$'
    verdict "dt: the device-tree summary"
    sh_run dmesg || return 1
    out_has '^\[ *[0-9]+\.[0-9]{6}\] Booting vmkernel on physical CPU'
    out_has 'Internal error: Oops: '
    out_has "^${SH_PROMPT}dmesg$"
    verdict "dmesg: the log ring from the banner to this command"
    # Fill the 128 KiB log ring past wrapping (each dmesg re-logs the log),
    # then the boot suite, whose log-ring case must still pass.
    for n in 1 2 3 4; do sh_run dmesg 60 >/dev/null || return 1; done
    sh_run 'ktest boot' 120 || return 1
    out_has '^    # Subtest: boot$'
    out_has '^ktest: [1-9][0-9]* passed, 0 failed$'
    out_lacks '^    # Subtest: mm$'
    out_has '^    ok [0-9]+ log_ring_holds_banner$'
    verdict "ktest boot: the filtered suite runs from the shell (log ring wrapped by 4 x dmesg)"
    sh_run ktest 180 || return 1
    out_capture '^ktest: ([0-9]+) passed, ([0-9]+) failed$' && n="${BASH_REMATCH[1]} passed, ${BASH_REMATCH[2]} failed"
    out_has '^ktest: [1-9][0-9]* passed, 0 failed$'
    out_lacks 'reboot: Power down'
    verdict "ktest: every suite passes from the shell (${n:-no summary}) and QEMU keeps running"
    sh_run uptime || return 1
    out_one_line '^up '
    verdict "the shell still answers after ktest"
    sh_run 'bench run_test_mask=5 test_loop_count=200' 120 || return 1
    out_has 'Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 200 avg: [0-9]+ usec$'
    out_has 'Summary: long_busy_list_alloc_test passed: 1 failed: 0 repeat: 1 loops: 200 avg: [0-9]+ usec$'
    out_has 'All test took CPU0=[0-9]+ cycles$'
    out_lacks 'Oops|panic'
    verdict "bench: test_vmalloc with Linux's module parameters from the shell"

    sh_raw 'poweroff\n' 30
    [[ ${SH_DEAD-} == QEMU\ exited* ]] && SH_DEAD=""
    sh_finish
    grep -q 'reboot: Power down' "$SH_LOG" || SH_REASONS+=("no 'reboot: Power down'")
    [[ $SH_STATUS == 0 ]] || SH_REASONS+=("QEMU exit status $SH_STATUS, want 0")
    SH_OUT=()
    verdict "poweroff: QEMU exits with status 0"
    return 0
}

# Piped input without any pacing, as in `echo -e 'help\npoweroff' | scripts/run.sh`:
# several boots at once, since losing the first byte was a race.
SHELL_PIPE_BOOTS=${SHELL_PIPE_BOOTS:-6}

shell_pipe_boots() {
    local i input=$LOG_DIR/shell-pipe.in
    printf 'help\r\nmeminfo\npoweroff\n' >"$input"
    for ((i = 1; i <= SHELL_PIPE_BOOTS; i++)); do
        spawn_boot "shell-pipe-$i" 30 --stdin "$input" -- -kernel "$TEST_IMAGE"
    done
    wait_boots
    for ((i = 1; i <= SHELL_PIPE_BOOTS; i++)); do
        verify_boot "shell: piped 'help, meminfo, poweroff' (boot $i of $SHELL_PIPE_BOOTS): read in order, exit 0" \
            "shell-pipe-$i" 0 "1^${SH_PROMPT}help"$'\r?$' '+^  poweroff +power' "1^${SH_PROMPT}meminfo"$'\r?$' \
            '+^MemFree: +[0-9]+ kB' "1^${SH_PROMPT}poweroff"$'\r?$' '+reboot: Power down' \
            '!unknown command' "!^${SH_PROMPT}"$'\r?$'
    done
}

# Console input that never loses a byte: the short form of
# scripts/stress-input.sh (long lines piped in while the kernel boots).
SHELL_STRESS_BOOTS=${SHELL_STRESS_BOOTS:-10}

shell_stress_input() {
    local log=$LOG_DIR/shell-stress-input.log line n=0 status=0
    STRESS_BOOTS=$SHELL_STRESS_BOOTS STRESS_JOBS=$TEST_JOBS STRESS_DELAY_MAX=15 STRESS_DIR=$LOG_DIR/shell-stress-input \
        "$REPO_ROOT/scripts/stress-input.sh" --image "$TEST_IMAGE" >"$log" 2>&1 || status=$?
    while IFS= read -r line; do
        case $line in
        "PASS "*) pass "shell: ${line#PASS }" && n=$((n + 1)) ;;
        "FAIL "*) fail "shell: ${line#FAIL }" && n=$((n + 1)) ;;
        "stress-input: "*) printf '     (%s)\n' "$line" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$log"
    ((n > 0)) || {
        fail "shell: scripts/stress-input.sh ran no boot (exit status $status)"
        show_tail "$log"
    }
}

# scripts/run.sh with input from a pipe or a file: the end of the input
# powers the machine off, after the commands before it have finished.
shell_run_sh_eof() {
    local log=$LOG_DIR/shell-run-sh-pipe.log status=0 reasons=()
    printf 'meminfo\nbench run_test_mask=1 test_loop_count=20000\nuptime' |
        RUN_IMAGE=$TEST_IMAGE timeout --kill-after=5 60 "$REPO_ROOT/scripts/run.sh" >"$log" 2>&1 || status=$?
    ((status == 0)) || reasons+=("exit status $status (124: timed out: the end of the input did not power off)")
    grep -Eq '^MemFree: +[0-9]+ kB' "$log" || reasons+=("no meminfo reply")
    grep -Eq 'Summary: fix_size_alloc_test passed: 1 failed: 0 repeat: 1 loops: 20000' "$log" ||
        reasons+=("the bench before the end of input did not finish")
    grep -Eq '^up [0-9]+\.[0-9]+ s' "$log" || reasons+=("the last line (no newline at its end) did not run")
    grep -q "^${SH_PROMPT}poweroff" "$log" || reasons+=("no 'poweroff' line after the input")
    grep -q 'reboot: Power down' "$log" || reasons+=("no 'reboot: Power down'")
    if ((${#reasons[@]} == 0)); then
        pass "shell: scripts/run.sh fed by a pipe: commands run to the end, then poweroff, exit 0"
    else
        fail "shell: scripts/run.sh fed by a pipe" "${reasons[@]}"
        show_tail "$log"
    fi
    log=$LOG_DIR/shell-run-sh-file.log status=0 reasons=()
    printf 'vmalloc 64K\nvmallocinfo\n' >"$LOG_DIR/shell-run-sh-file.in"
    RUN_IMAGE=$TEST_IMAGE timeout --kill-after=5 60 "$REPO_ROOT/scripts/run.sh" <"$LOG_DIR/shell-run-sh-file.in" >"$log" 2>&1 || status=$?
    ((status == 0)) || reasons+=("exit status $status")
    grep -Eq ' pages=16 vmalloc' "$log" || reasons+=("no vmallocinfo reply")
    grep -q 'reboot: Power down' "$log" || reasons+=("no 'reboot: Power down'")
    if ((${#reasons[@]} == 0)); then
        pass "shell: scripts/run.sh < FILE: powers off at the end of the file, exit 0"
    else
        fail "shell: scripts/run.sh < FILE" "${reasons[@]}"
        show_tail "$log"
    fi
}

# Ctrl-C stops a long bench (defaults: minutes) and the shell goes on with
# the input typed after it.
shell_bench_ctrl_c() {
    local log=$LOG_DIR/shell-bench-ctrl-c.log status=0 t0=$SECONDS
    qemu_cmd -kernel "$TEST_IMAGE"
    shell_quote "${QEMU_CMD[@]}" >"$LOG_DIR/shell-bench-ctrl-c.cmd"
    : >"$log"
    {
        printf 'bench\n'
        # Ctrl-C once the benchmark runs (then 1 s into it), not earlier.
        local deadline=$((SECONDS + 30))
        until grep -q 'test_vmalloc: run_test_mask=' "$log" || ((SECONDS > deadline)); do sleep 0.1; done
        sleep 1
        printf '\003uptime\npoweroff\n'
    } | timeout --kill-after=5 60 "${QEMU_CMD[@]}" >"$log" 2>&1 || status=$?
    echo "$status" >"$LOG_DIR/shell-bench-ctrl-c.status"
    verify_boot "shell: Ctrl-C stops 'bench' (default loop counts) in $((SECONDS - t0)) s, reports what completed; the next command runs" \
        shell-bench-ctrl-c 0 '1bench: interrupted by Ctrl-C during test_vmalloc; completed: none; not run: ' \
        '+Interrupted: [a-z0-9_]+ stopped by Ctrl-C; no figures' '+All test took CPU0=' "1^${SH_PROMPT}uptime"$'\r?$' \
        '+^up [0-9]+\.[0-9]+ s' '+reboot: Power down' '!panic|Oops'
}

# A DT whose PL011 is elsewhere: the console stays on the boot UART (says
# so) and keeps answering. Booted through the raw-loader stub, as the bad
# DTBs of the badboot layer (QEMU's -dtb would edit the tree).
shell_moved_uart() {
    local dir=$LOG_DIR/shell-moved-uart
    rm -rf "$dir" && mkdir -p "$dir"
    if ! {
        qemu_cmd -kernel "$TEST_IMAGE" -machine "dumpdtb=$dir/good.dtb" && "${QEMU_CMD[@]}" </dev/null &&
            dtc -q -I dtb -O dts -o "$dir/good.dts" "$dir/good.dtb" &&
            sed 's/reg = <0x00 0x9000000 0x00 0x1000>;/reg = <0x00 0x9100000 0x00 0x1000>;/' "$dir/good.dts" >"$dir/moved.dts" &&
            grep -q 'reg = <0x00 0x9100000 0x00 0x1000>;' "$dir/moved.dts" &&
            dtc -q -I dts -O dtb -o "$dir/moved.dtb" "$dir/moved.dts" &&
            write_boot_stub "$dir/stub.bin" 0x48000000 0x40200000
    } >"$dir/make.log" 2>&1; then
        fail "shell: make a DTB with the PL011 moved to 0x9100000 (QEMU dumpdtb + dtc)"
        show_tail "$dir/make.log"
        return
    fi
    printf 'uptime\npoweroff\n' >"$dir/in"
    boot_capture shell-moved-uart 30 --stdin "$dir/in" -- \
        -device "loader,file=$TEST_IMAGE,addr=0x40200000,force-raw=on" \
        -device "loader,file=$dir/moved.dtb,addr=0x48000000,force-raw=on" \
        -device "loader,file=$dir/stub.bin,addr=0x40100000,force-raw=on" -device "loader,addr=0x40100000,cpu-num=0"
    verify_boot "shell: DT names a PL011 at 0x9100000: the console stays on 0x9000000, says so, and answers" \
        shell-moved-uart 0 "+console: the DT's PL011 at 0x9100000 is not the boot console's UART at 0x9000000; the console stays on 0x9000000" \
        '+console \[ttyAMA0\]: PL011 rev [0-9]+ at MMIO 0x9000000 now at 0x[0-9a-f]+ \(ioremap\)' \
        '+^up [0-9]+\.[0-9]+ s' '+reboot: Power down' '!panic|Oops'
}

shell_layer_main() {
    if ! sh_start shell-session -kernel "$TEST_IMAGE" -d guest_errors; then
        fail "shell: boot to the first prompt" "$SH_DEAD" "reproduce: $(cat "$LOG_DIR/shell-session.cmd")"
        show_tail "$SH_LOG"
        sh_finish
        return
    fi
    pass "shell: boot to the first prompt"
    trap '' PIPE
    if ! shell_session; then
        fail "shell: scripted session ran to the end" "$SH_DEAD" "last command: $(tail -n 1 "$SH_SENT")" \
            "reproduce: $(cat "$LOG_DIR/shell-session.cmd")"
        show_tail "$SH_LOG"
        kill "$SH_PID" 2>/dev/null || true
        sh_finish
    fi
    trap - PIPE
    shell_pipe_boots
    shell_stress_input
    shell_run_sh_eof
    shell_bench_ctrl_c
    shell_moved_uart
}
