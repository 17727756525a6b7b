#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Run every test layer and end with one line: `N passed, N failed`
# (exit status 0 iff nothing failed).
#
#   scripts/test.sh [--no-build] [LAYER...]     default: every layer, in order
#   scripts/test.sh --list                      the layers
#
# Each layer prints a header and one `PASS name` / `FAIL name` line per check;
# a failure is followed by why and the tail of the console log. Logs of every
# boot (and the command that reproduces it) are kept in target/test-logs/.
#
# Environment: TEST_JOBS (parallel QEMU boots, default: number of CPUs),
# SMOKE_TIMEOUT, KTEST_TIMEOUT, BADBOOT_TIMEOUT, BENCH_TIMEOUT (seconds per boot),
# SHELL_TIMEOUT / SHELL_CMD_TIMEOUT (the shell session / one command),
# GDB_TEST_TIMEOUT (the GDB session).
#
# Adding a layer: write a function `layer_NAME` that reports through
# pass/fail (boots: spawn_boot + wait_boots + verify_boot), then add NAME
# and a one-line description to LAYERS below.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=shell-session.sh
source "$(dirname "${BASH_SOURCE[0]}")/shell-session.sh"
# shellcheck source-path=SCRIPTDIR source=pictures-test.sh
source "$(dirname "${BASH_SOURCE[0]}")/pictures-test.sh"

# The layers, in the order they run: "name|description".
LAYERS=(
    "host|host unit tests (cargo test --lib on the host triple)"
    "ktest|in-kernel tests (KTAP over the console, -append ktest)"
    "smoke|boot-smoke matrix (CPU x exception level x RAM size, -append poweroff)"
    "badboot|bad boot input must end in one clear panic line, never a hang"
    "panic|panic= and -no-reboot: a panic is told from a clean power-off, with and without semihosting"
    "dtcorpus|device-tree corpus: QEMU's trees, -dtb files, trees Linux accepts, malformed blobs (scripts/dt-corpus/)"
    "nomap|a /reserved-memory no-map region stays out of the linear map (mm ktests, DT via the boot stub)"
    "shell|scripted serial-shell session: every command, faults, bad input, line editing"
    "gdb|scripted GDB session through the vmalloc pipeline (scripts/gdb-test.sh)"
    "smp|secondary CPUs up at -smp 2/4/8: cortex-a53/a72/max, EL1/EL2, GICv2/GICv3, NUMA; cross-call and per-CPU ktests"
    "bench|short in-kernel benchmarks (test_vmalloc scenarios, scaling, floor, stages) must complete"
    "pictures|the picture scripts (plot.sh, vmmap-svg.sh, vmaptree-dot.sh, bench.sh --csv) on two short boots: SVG/DOT structure"
    "docs|the transcripts and figures in README.md and docs/ match what this build prints (scripts/docs.sh --check)"
)

TEST_JOBS=${TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-30}
KTEST_TIMEOUT=${KTEST_TIMEOUT:-120}
BADBOOT_TIMEOUT=${BADBOOT_TIMEOUT:-15}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
DTCORPUS_TIMEOUT=${DTCORPUS_TIMEOUT:-30}
TAIL_LINES=60

PASSED=0
FAILED=0
SKIPPED=0
BUILD=1
KERNEL_STATE=unbuilt # unbuilt | ok | failed
# What the boot layers run: a private copy of the kernel, so a rebuild by
# someone else halfway through the suite cannot mix two kernels in one run.
TEST_ELF=$LOG_DIR/kernel/vmkernel
TEST_IMAGE=$LOG_DIR/kernel/Image

# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------

pass() {
    PASSED=$((PASSED + 1))
    printf 'PASS %s\n' "$1"
}

# fail NAME [REASON...]
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL %s\n' "$1"
    shift
    local r
    for r in "$@"; do printf '     %s\n' "$r"; done
}

# show_tail FILE [TITLE]: the last TAIL_LINES lines, indented, for CI logs.
show_tail() {
    local file=$1 title=${2:-$1}
    printf '     --- last %d lines of %s ---\n' "$TAIL_LINES" "$title"
    if [[ -s $file ]]; then
        tail -n "$TAIL_LINES" "$file" | tr -d '\r' | sed 's/^/     | /'
    else
        printf '     | (empty)\n'
    fi
    printf '     ---\n'
}

# ---------------------------------------------------------------------------
# Kernel and boots
# ---------------------------------------------------------------------------

# need_kernel: build once per run (one check); returns 1 if there is none.
need_kernel() {
    case $KERNEL_STATE in
    ok) return 0 ;;
    failed) return 1 ;;
    esac
    local log=$LOG_DIR/build.log
    mkdir -p "$LOG_DIR/kernel"
    if ((BUILD)); then
        if build_kernel >"$log" 2>&1; then
            pass "build: cargo build --release --bin vmkernel + objcopy"
        else
            fail "build: cargo build --release --bin vmkernel + objcopy"
            show_tail "$log"
            KERNEL_STATE=failed
            return 1
        fi
    elif [[ ! -f $KERNEL_ELF ]]; then
        fail "build: --no-build but there is no $KERNEL_ELF"
        KERNEL_STATE=failed
        return 1
    else
        make_image "$KERNEL_ELF" "$KERNEL_IMAGE"
    fi
    cp -f "$KERNEL_ELF" "$TEST_ELF"
    cp -f "$KERNEL_IMAGE" "$TEST_IMAGE"
    KERNEL_STATE=ok
}

# spawn_boot NAME SECS [--stdin FILE] -- QEMU_ARGS...: boot_capture in the
# background, at most TEST_JOBS at a time. Collect with wait_boots.
spawn_boot() {
    while (($(jobs -rp | wc -l) >= TEST_JOBS)); do
        wait -n || true
    done
    boot_capture "$@" &
}

wait_boots() {
    wait
}

boot_status() { cat "$LOG_DIR/$1.status" 2>/dev/null || echo 255; } # 255: boot_capture itself failed
boot_ms() { cat "$LOG_DIR/$1.ms" 2>/dev/null || echo 0; }

# verify_boot CHECK BOOT WANT [SPEC...]: one check on a finished boot.
#   WANT: 0 (exit status must be 0) or fail (must be non-zero, not a timeout)
#   SPEC: +RE  a line must match the extended regex RE
#         !RE  no line may match RE
#         1RE  exactly one line matches RE
# A failure lists every unmet expectation and the console log's tail.
verify_boot() {
    local check=$1 boot=$2 want=$3
    shift 3
    local log=$LOG_DIR/$boot.log status spec re n m reasons=()
    status=$(boot_status "$boot")
    case $status in
    124 | 137) reasons+=("timed out (QEMU killed by timeout, status $status)") ;;
    0) [[ $want == 0 ]] || reasons+=("exit status 0, expected a failure status") ;;
    *) [[ $want == fail ]] || reasons+=("exit status $status, expected 0") ;;
    esac
    for spec in "$@"; do
        re=${spec:1}
        case $spec in
        +*) grep -Eq -- "$re" "$log" || reasons+=("missing a line matching: $re") ;;
        !*) if m=$(grep -Em1 -- "$re" "$log"); then reasons+=("unexpected line: ${m//$'\r'/}"); fi ;;
        1*)
            n=$(grep -Ec -- "$re" "$log" || true)
            ((n == 1)) || reasons+=("$n lines match (expected exactly 1): $re")
            ;;
        *) die "verify_boot: bad spec '$spec'" ;;
        esac
    done
    if ((${#reasons[@]} == 0)); then
        pass "$check"
    else
        fail "$check" "${reasons[@]}" "reproduce: $(cat "$LOG_DIR/$boot.cmd")"
        show_tail "$log"
    fi
}

# ---------------------------------------------------------------------------
# Layer: host unit tests
# ---------------------------------------------------------------------------

layer_host() {
    local log=$LOG_DIR/host.log host status=0 line t p f np=0 nf=0
    mkdir -p "$LOG_DIR"
    host=$(cd "$REPO_ROOT" && rustc -vV | sed -n 's/^host: //p')
    (cd "$REPO_ROOT" && cargo test --lib --target "$host" --no-fail-fast) >"$log" 2>&1 || status=$?
    # One line per test as cargo reports it; counts from `test result:`.
    while IFS= read -r line; do
        case $line in
        "test "*" ... ok") t=${line#test } && printf 'PASS host: %s\n' "${t% ... ok}" ;;
        "test "*" ... FAILED") t=${line#test } && printf 'FAIL host: %s\n' "${t% ... FAILED}" ;;
        "test result: "*)
            p=$(sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p' <<<"$line")
            f=$(sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p' <<<"$line")
            np=$((np + ${p:-0}))
            nf=$((nf + ${f:-0}))
            ;;
        esac
    done <"$log"
    PASSED=$((PASSED + np))
    FAILED=$((FAILED + nf))
    if ((nf > 0)); then
        printf '     %d host test(s) failed\n' "$nf"
        show_tail "$log"
    elif ((status != 0)); then
        # Did not compile, or a test binary crashed before its summary.
        fail "host: cargo test --lib --target $host (exit status $status)"
        show_tail "$log"
    elif ((np == 0)); then
        fail "host: cargo test ran no tests"
        show_tail "$log"
    fi
}

# ---------------------------------------------------------------------------
# Layer: in-kernel tests
# ---------------------------------------------------------------------------

# "name|QEMU args after the defaults" (no spaces inside one argument).
# 32M: the cases that need more RAM must SKIP (with a reason), the rest pass.
KTEST_MACHINES=(
    "default|"
    "32M|-m 32M"
    "4G|-m 4G"
    "smp4|-smp 4"
    "numa|-smp 2 -m 2G -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1"
    "numa-4G|-smp 2 -m 4G -object memory-backend-ram,id=m0,size=2G -object memory-backend-ram,id=m1,size=2G -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1"
)

# skip NAME: a check that could not run here (counted as neither).
skip() {
    SKIPPED=$((SKIPPED + 1))
    printf 'SKIP %s\n' "$1"
}

# check_ktest MACHINE BOOT: one check per KTAP test line (indented four
# spaces: test level), then one for the run itself.
check_ktest() {
    local machine=$1 boot=$2 log=$LOG_DIR/$2.log
    local line suite="" np=0 nf=0 ns=0 sum_p="" sum_f="" status reasons=() out=()
    local re_case='^    (not )?ok [0-9]+ ([^#]*[^# ])( # (SKIP|skip)(.*))?' re_sum='^ktest: ([0-9]+) passed, ([0-9]+) failed'
    while IFS= read -r line; do
        line=${line%$'\r'}
        if [[ $line =~ ^"    # Subtest: "(.*) ]]; then
            suite=${BASH_REMATCH[1]}
            out=()
        elif [[ $line =~ $re_case ]]; then
            local name="ktest/$machine: $suite${suite:+.}${BASH_REMATCH[2]}"
            if [[ -n ${BASH_REMATCH[1]} ]]; then
                nf=$((nf + 1))
                # The test's own output (its oops, its EXPECTATION FAILED line).
                local from=$((${#out[@]} > TAIL_LINES ? ${#out[@]} - TAIL_LINES : 0))
                fail "$name" "${out[@]:from}"
            elif [[ -n ${BASH_REMATCH[3]} ]]; then
                skip "$name # SKIP${BASH_REMATCH[5]}"
            else
                np=$((np + 1))
                pass "$name"
            fi
            out=()
        elif [[ $line =~ $re_sum ]]; then
            sum_p=${BASH_REMATCH[1]} sum_f=${BASH_REMATCH[2]}
        else
            out+=("$line")
        fi
    done <"$log"
    status=$(boot_status "$boot")
    case $status in
    124 | 137) reasons+=("timed out after ${KTEST_TIMEOUT}s") ;;
    0) ;;
    *) reasons+=("QEMU exit status $status") ;;
    esac
    if [[ -z $sum_p ]]; then
        reasons+=("no 'ktest: N passed, N failed' line: the kernel crashed or hung")
    elif ((sum_p != np || sum_f != nf)); then
        reasons+=("summary says $sum_p passed, $sum_f failed; KTAP lines say $np passed, $nf failed ($ns skipped)")
    fi
    ((np + nf + ns > 0)) || reasons+=("no KTAP test lines")
    local check="ktest/$machine: run complete (summary line, exit status 0)"
    if ((${#reasons[@]} == 0)); then
        pass "$check"
    else
        fail "$check" "${reasons[@]}" "reproduce: $(cat "$LOG_DIR/$boot.cmd")"
        show_tail "$log"
    fi
}

layer_ktest() {
    need_kernel || {
        fail "ktest: no kernel to boot (build failed)"
        return
    }
    local spec name args
    for spec in "${KTEST_MACHINES[@]}"; do
        name=${spec%%|*}
        read -ra args <<<"${spec#*|}"
        spawn_boot "ktest-$name" "$KTEST_TIMEOUT" -- -kernel "$TEST_IMAGE" "${args[@]}" -append ktest
    done
    spawn_boot ktest-nomatch "$KTEST_TIMEOUT" -- -kernel "$TEST_IMAGE" -append ktest=nosuch
    wait_boots
    for spec in "${KTEST_MACHINES[@]}"; do
        name=${spec%%|*}
        check_ktest "$name" "ktest-$name"
        printf '     (%s: %s ms)\n' "$name" "$(boot_ms "ktest-$name")"
    done
    ktest_nomatch
    ktest_repeat
}

# A filter that selects nothing is an error: one line naming the filter and
# the suites, a failure exit status, no empty KTAP plan.
ktest_nomatch() {
    verify_boot "ktest: -append ktest=nosuch fails with one line naming the filter and the suites" ktest-nomatch fail \
        "1^ktest: filter 'nosuch' matches no test \\(suites: boot, mm, vmalloc" '!^1\.\.0' '!^KTAP' '!panic|Oops'
}

# Every case leaves the kernel as it found it: the whole suite three times
# in one boot, from the shell (input from a file through scripts/run.sh,
# which powers off at its end). Each run must report the same counts.
KTEST_REPEAT=${KTEST_REPEAT:-3}

ktest_repeat() {
    local log=$LOG_DIR/ktest-repeat.log input=$LOG_DIR/ktest-repeat.in status=0 sums reasons=() i
    for ((i = 0; i < KTEST_REPEAT; i++)); do printf 'ktest\n'; done >"$input"
    printf 'RUN_IMAGE=%q scripts/run.sh < %q\n' "$TEST_IMAGE" "$input" >"$LOG_DIR/ktest-repeat.cmd"
    RUN_IMAGE=$TEST_IMAGE timeout --kill-after=5 $((KTEST_TIMEOUT * KTEST_REPEAT)) \
        "$REPO_ROOT/scripts/run.sh" <"$input" >"$log" 2>&1 || status=$?
    mapfile -t sums < <(tr -d '\r' <"$log" | grep -E '^ktest: [0-9]+ passed, [0-9]+ failed$' || true)
    ((status == 0)) || reasons+=("exit status $status (124: timed out)")
    ((${#sums[@]} == KTEST_REPEAT)) || reasons+=("${#sums[@]} summary lines, want $KTEST_REPEAT")
    for i in "${!sums[@]}"; do
        [[ ${sums[i]} == "${sums[0]}" && ${sums[i]} == *" 0 failed" ]] ||
            reasons+=("run $((i + 1)): '${sums[i]}', run 1: '${sums[0]}'")
    done
    if grep -q '^    not ok' "$log"; then reasons+=("failing cases: $(grep '^    not ok' "$log" | tr -d '\r' | sort | uniq -c | tr -s ' ' | paste -sd ';')"); fi
    grep -q 'reboot: Power down' "$log" || reasons+=("no 'reboot: Power down' after the input ended")
    if ((${#reasons[@]} == 0)); then
        pass "ktest/repeat: the whole suite $KTEST_REPEAT times in one boot (shell), same result each time (${sums[0]#ktest: })"
    else
        fail "ktest/repeat: the whole suite $KTEST_REPEAT times in one boot (shell)" "${reasons[@]}" "reproduce: $(cat "$LOG_DIR/ktest-repeat.cmd")"
        show_tail "$log"
    fi
}

# ---------------------------------------------------------------------------
# Layer: boot-smoke matrix
# ---------------------------------------------------------------------------

# -cpu value -> the name the banner prints for it.
declare -A SMOKE_CPUS=([cortex-a53]="Cortex-A53" [cortex-a72]="Cortex-A72" [max]="QEMU max")
SMOKE_CPU_ORDER=(cortex-a53 cortex-a72 max)
SMOKE_MEMS=(128M 1G 4G)
# What every `-append poweroff` boot must (+) and must not (!) print;
# see verify_boot. Placeholders, filled in per configuration:
#   @CPU@ banner CPU name  @EL@ entry EL  @CONDUIT@ psci conduit
#   @MIB@ RAM in MiB  @KIB@ RAM in KiB  @BANK@ bank range  @SIZE@ bank size (hex)
SMOKE_CHECKS=(
    '+Booting vmkernel on physical CPU 0x0+ \[0x[0-9a-f]{8}\]'
    '+vmkernel version [^ ]+ \(rustc .*\) @CPU@ at EL@EL@, running at EL1'
    '+Machine model: linux,dummy-virt'
    '+psci: PSCIv[0-9]+\.[0-9]+ detected in firmware \(conduit: @CONDUIT@\)'
    '+ memory\[0x0\][[:space:]]+@BANK@, @SIZE@ bytes'
    '+RAM: @MIB@ MiB in 1 bank\(s\)'
    '+reboot: Power down'
    '!panic|Oops'
)

# mem_bytes 128M|1G|4G
mem_bytes() {
    local v=${1%[MG]}
    case $1 in
    *G) echo $((v << 30)) ;;
    *M) echo $((v << 20)) ;;
    *) die "mem_bytes: $1" ;;
    esac
}

layer_smoke() {
    need_kernel || {
        fail "smoke: no kernel to boot (build failed)"
        return
    }
    local cpu el mem machine configs=() c
    for cpu in "${SMOKE_CPU_ORDER[@]}"; do
        for el in 1 2; do
            machine=virt
            ((el == 1)) || machine=virt,virtualization=on
            for mem in "${SMOKE_MEMS[@]}"; do
                c="smoke-$cpu-el$el-$mem"
                configs+=("$c|$cpu|$el|$mem")
                spawn_boot "$c" "$SMOKE_TIMEOUT" -- -kernel "$TEST_IMAGE" \
                    -machine "$machine" -cpu "$cpu" -m "$mem" -append poweroff
            done
        done
    done
    wait_boots
    local spec s checks bytes bank conduit ms_total=0
    for spec in "${configs[@]}"; do
        IFS='|' read -r c cpu el mem <<<"$spec"
        bytes=$(mem_bytes "$mem")
        bank=$(printf '\\[0x%016x-0x%016x\\]' 0x40000000 $((0x40000000 + bytes - 1)))
        conduit=hvc
        ((el == 1)) || conduit=smc
        checks=()
        for s in "${SMOKE_CHECKS[@]}"; do
            s=${s//@CPU@/${SMOKE_CPUS[$cpu]}}
            s=${s//@EL@/$el}
            s=${s//@CONDUIT@/$conduit}
            s=${s//@MIB@/$((bytes >> 20))}
            s=${s//@KIB@/$((bytes >> 10))}
            s=${s//@BANK@/$bank}
            s=${s//@SIZE@/$(printf '%#x' "$bytes")}
            checks+=("$s")
        done
        verify_boot "smoke: -cpu $cpu, EL$el, -m $mem" "$c" 0 "${checks[@]}"
        ms_total=$((ms_total + $(boot_ms "$c")))
    done
    printf '     (%d boots, %d ms of QEMU time, %d at a time)\n' "${#configs[@]}" "$ms_total" "$TEST_JOBS"
}

# ---------------------------------------------------------------------------
# Layer: bad boot input
# ---------------------------------------------------------------------------

# Where our stand-in boot loader puts things. Not at the bottom of RAM:
# without -kernel, QEMU's virt board itself loads its DTB at 0x40000000 (for
# firmware), and overlapping ROM blobs are a fatal QEMU error.
STUB_ADDR=0x40100000
BAD_DTB_ADDR=0x48000000
BAD_KERNEL_ADDR=0x40200000 # 2 MiB aligned, as the Image header's text_offset 0 asks

# "boot name|expected-panic regex (matched on the panic line)|how the DTB is made"
BADBOOT_CASES=(
    "corrupt-dtb|bad device tree at $BAD_DTB_ADDR: .*structure is corrupt|valid header, 0xff over bytes 0x100..0x200"
    "no-memory-node|bad device tree at $BAD_DTB_ADDR: .*no memory node|/memory node removed"
    "zero-size-bank|bad device tree at $BAD_DTB_ADDR: .*zero-sized bank|/memory reg size cells set to 0"
)

# make_bad_dtbs DIR: good.dtb from QEMU's own dump (with bootargs poweroff),
# and the bad variants, edited as source with dtc. Explicit `|| return`:
# it runs as an `if` condition, where `set -e` does not apply.
make_bad_dtbs() {
    local dir=$1 node='/^\tmemory@[0-9a-f]* {/,/^\t};/' # dtc indents top-level nodes one tab
    qemu_cmd -kernel "$TEST_IMAGE" -append poweroff -machine "dumpdtb=$dir/good.dtb"
    "${QEMU_CMD[@]}" </dev/null || return 1
    dtc -q -I dtb -O dts -o "$dir/good.dts" "$dir/good.dtb" || return 1
    grep -q "^$(printf '\t')memory@" "$dir/good.dts" || { echo "no memory node in QEMU's DTB?"; return 1; }

    sed "${node}d" "$dir/good.dts" >"$dir/no-memory-node.dts" || return 1
    if grep -q 'device_type = "memory"' "$dir/no-memory-node.dts"; then
        echo "sed did not remove the memory node" && return 1
    fi

    sed "${node}s/reg = <\\(0x[0-9a-f]* 0x[0-9a-f]*\\) 0x[0-9a-f]* 0x[0-9a-f]*>/reg = <\\1 0x00 0x00>/" \
        "$dir/good.dts" >"$dir/zero-size-bank.dts" || return 1
    grep -q 'reg = <0x00 0x40000000 0x00 0x00>' "$dir/zero-size-bank.dts" ||
        { echo "sed did not zero the memory reg size" && return 1; }

    dtc -q -I dts -O dtb -o "$dir/no-memory-node.dtb" "$dir/no-memory-node.dts" || return 1
    dtc -q -I dts -O dtb -o "$dir/zero-size-bank.dtb" "$dir/zero-size-bank.dts" || return 1
    # Header intact (magic, sizes), structure block (from 0x40) garbage.
    cp -f "$dir/good.dtb" "$dir/corrupt-dtb.dtb" || return 1
    head -c 256 /dev/zero | tr '\0' '\377' |
        dd of="$dir/corrupt-dtb.dtb" bs=1 seek=256 conv=notrunc status=none || return 1
    write_boot_stub "$dir/stub.bin" "$BAD_DTB_ADDR" "$BAD_KERNEL_ADDR"
}

# stub_args DTB: load Image, DTB and stub as raw blobs; the last loader sets
# CPU 0's PC to the stub. No -kernel, so QEMU does not touch the DTB.
stub_args() {
    STUB_ARGS=(
        -device "loader,file=$TEST_IMAGE,addr=$BAD_KERNEL_ADDR,force-raw=on"
        -device "loader,file=$1,addr=$BAD_DTB_ADDR,force-raw=on"
        -device "loader,file=$LOG_DIR/badboot/stub.bin,addr=$STUB_ADDR,force-raw=on"
        -device "loader,addr=$STUB_ADDR,cpu-num=0"
    )
}

layer_badboot() {
    need_kernel || {
        fail "badboot: no kernel to boot (build failed)"
        return
    }
    local dir=$LOG_DIR/badboot spec name re how
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! (make_bad_dtbs "$dir") >"$dir/make.log" 2>&1; then
        fail "badboot: make the test DTBs (QEMU dumpdtb + dtc)"
        show_tail "$dir/make.log"
        return
    fi
    local panic='Kernel panic - not syncing:'
    # The ELF: QEMU boots it but passes no DTB in x0.
    spawn_boot badboot-elf-no-dtb "$BADBOOT_TIMEOUT" -- -kernel "$TEST_ELF" -append poweroff
    # The stand-in loader must first work with a good DTB.
    stub_args "$dir/good.dtb"
    spawn_boot badboot-stub-good-dtb "$BADBOOT_TIMEOUT" -- "${STUB_ARGS[@]}"
    for spec in "${BADBOOT_CASES[@]}"; do
        name=${spec%%|*}
        stub_args "$dir/$name.dtb"
        spawn_boot "badboot-$name" "$BADBOOT_TIMEOUT" -- "${STUB_ARGS[@]}"
    done
    wait_boots
    verify_boot "badboot: boot stub + good DTB boots (x0 = $BAD_DTB_ADDR, kernel at $BAD_KERNEL_ADDR)" \
        badboot-stub-good-dtb 0 '+Booting vmkernel' "+fdt: [0-9]+ bytes at physical $BAD_DTB_ADDR" \
        '+RAM: 1024 MiB in 1 bank\(s\)' '+reboot: Power down' '!panic|Oops'
    verify_boot "badboot: ELF booted directly (no DTB in x0) -> 'no device tree'" \
        badboot-elf-no-dtb fail "1$panic" "+$panic no device tree" '!Oops'
    for spec in "${BADBOOT_CASES[@]}"; do
        IFS='|' read -r name re how <<<"$spec"
        verify_boot "badboot: $name ($how)" "badboot-$name" fail "1$panic" "+$panic $re" '!Oops'
    done
}

# ---------------------------------------------------------------------------
# Layer: what a panic does (Linux's panic=, QEMU's -no-reboot, semihosting)
# ---------------------------------------------------------------------------

PANIC_TIMEOUT=${PANIC_TIMEOUT:-20}

layer_panic() {
    need_kernel || {
        fail "panic: no kernel to boot (build failed)"
        return
    }
    local dir=$LOG_DIR/panic nosemi=(-semihosting-config enable=off)
    local p='Kernel panic - not syncing: '
    mkdir -p "$dir"
    # The shell's `panic` command is Linux's sysrq 'c'.
    printf 'panic smoke test\n' >"$dir/panic.in"
    spawn_boot panic-semihosting "$PANIC_TIMEOUT" --stdin "$dir/panic.in" -- -kernel "$TEST_IMAGE"
    spawn_boot panic-reboot-now "$PANIC_TIMEOUT" --stdin "$dir/panic.in" -- -kernel "$TEST_IMAGE" \
        "${nosemi[@]}" -no-reboot -append panic=-1
    spawn_boot panic-reboot-after-1s "$PANIC_TIMEOUT" --stdin "$dir/panic.in" -- -kernel "$TEST_IMAGE" \
        "${nosemi[@]}" -no-reboot -append panic=1
    spawn_boot panic-poweroff-no-semihosting "$PANIC_TIMEOUT" -- -kernel "$TEST_IMAGE" "${nosemi[@]}" -append poweroff
    # panic=0 (Linux's default) stays halted: QEMU is still there at the timeout.
    spawn_boot panic-stays-halted 5 --stdin "$dir/panic.in" -- -kernel "$TEST_IMAGE" "${nosemi[@]}" -append panic=0
    wait_boots
    verify_boot "panic: with -semihosting a panic exits with status 1" panic-semihosting fail \
        "1${p}smoke test" '!reboot: (Power down|Restarting)' '!Oops'
    verify_boot "panic: panic=-1 -no-reboot, no semihosting: reboots at once (QEMU exits), log says Restarting" \
        panic-reboot-now 0 "1${p}smoke test" '1reboot: Restarting system' '!reboot: Power down' '!Rebooting in'
    verify_boot "panic: panic=1: 'Rebooting in 1 seconds..', then restarts" panic-reboot-after-1s 0 \
        "1${p}smoke test" '+Rebooting in 1 seconds\.\.' '1reboot: Restarting system' '!reboot: Power down'
    verify_boot "panic: a clean power-off without semihosting says Power down, never Restarting" \
        panic-poweroff-no-semihosting 0 '1reboot: Power down' '!reboot: Restarting' '!Kernel panic'
    local log=$LOG_DIR/panic-stays-halted.log st
    st=$(boot_status panic-stays-halted)
    if [[ $st == 124 ]] && grep -q "^\[[ 0-9.]*\] ---\[ end ${p}smoke test \]---" "$log" &&
        ! grep -q 'reboot:' "$log"; then
        pass "panic: panic=0 stays halted after '---[ end Kernel panic ...]---' (QEMU still running at 5 s)"
    else
        fail "panic: panic=0 stays halted after '---[ end Kernel panic ...]---'" "status $st (want 124: still running)" \
            "reproduce: $(cat "$LOG_DIR/panic-stays-halted.cmd")"
        show_tail "$log"
    fi
}

# ---------------------------------------------------------------------------
# Layer: device-tree corpus
# ---------------------------------------------------------------------------

# Where the corpus boot stub puts things: the DTB inside the first 128 MiB
# (the smallest machine), and inside bank 4 of the 40-bank tree.
DTC_STUB_ADDR=0x40100000
DTC_DTB_ADDR=0x44000000
DTC_KERNEL_ADDR=0x40200000

# dtcorpus_boot_args NAME MODE EXTRA: DTCORPUS_ARGS for one corpus boot.
dtcorpus_boot_args() {
    local dir=$LOG_DIR/dtcorpus name=$1 mode=$2 extra=()
    [[ $3 == - ]] || read -ra extra <<<"$3"
    case $mode in
    stub)
        DTCORPUS_ARGS=(
            -device "loader,file=$TEST_IMAGE,addr=$DTC_KERNEL_ADDR,force-raw=on"
            -device "loader,file=$dir/$name.dtb,addr=$DTC_DTB_ADDR,force-raw=on"
            -device "loader,file=$dir/stub.bin,addr=$DTC_STUB_ADDR,force-raw=on"
            -device "loader,addr=$DTC_STUB_ADDR,cpu-num=0"
            "${extra[@]}"
        )
        ;;
    dtb) DTCORPUS_ARGS=(-kernel "$TEST_IMAGE" -dtb "$dir/$name.dtb" -append poweroff "${extra[@]}") ;;
    *) die "dtcorpus: bad mode $mode for $name" ;;
    esac
}

layer_dtcorpus() {
    need_kernel || {
        fail "dtcorpus: no kernel to boot (build failed)"
        return
    }
    local dir=$LOG_DIR/dtcorpus line name mode extra want specs n=0 ms_total=0
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! "$REPO_ROOT/scripts/dt-corpus/make-corpus.sh" "$dir" "$TEST_IMAGE" >"$dir/make.log" 2>&1; then
        fail "dtcorpus: build the corpus (scripts/dt-corpus/make-corpus.sh: QEMU dumpdtb + dtc)"
        show_tail "$dir/make.log"
        return
    fi
    write_boot_stub "$dir/stub.bin" "$DTC_DTB_ADDR" "$DTC_KERNEL_ADDR"
    while IFS=$'\t' read -r name mode extra want _; do
        dtcorpus_boot_args "$name" "$mode" "$extra"
        spawn_boot "dtcorpus-$name" "$DTCORPUS_TIMEOUT" -- "${DTCORPUS_ARGS[@]}"
    done <"$dir/corpus.list"
    wait_boots
    while IFS= read -r line; do
        IFS=$'\t' read -r name mode extra want specs <<<"$line"
        IFS=$'\t' read -ra specs <<<"$specs"
        # Never more than one Oops, whatever the case expects.
        local oops
        oops=$(grep -c 'Internal error: Oops' "$LOG_DIR/dtcorpus-$name.log" || true)
        ((oops <= 1)) || specs+=("!Internal error: Oops")
        [[ $extra != - ]] || extra=""
        verify_boot "dtcorpus: $name ($mode${extra:+ $extra}) -> $([[ $want == 0 ]] && echo 'powers off' || echo 'one panic line')" \
            "dtcorpus-$name" "$want" "${specs[@]}"
        ms_total=$((ms_total + $(boot_ms "dtcorpus-$name")))
        n=$((n + 1))
    done <"$dir/corpus.list"
    printf '     (%d device trees, %d ms of QEMU time, %d at a time)\n' "$n" "$ms_total" "$TEST_JOBS"
}

# ---------------------------------------------------------------------------
# Layer: linear map with a no-map /reserved-memory region
# ---------------------------------------------------------------------------

# The no-map region: not page-aligned at either end, so both partial pages
# must stay unmapped; away from the stub's DTB and kernel addresses.
NOMAP_REGION_BASE=0x60000800
NOMAP_REGION_SIZE=0x1000

# make_nomap_dtb DIR: QEMU's DTB (bootargs ktest=mm) plus a /reserved-memory
# node with one no-map child and one ordinary child, via dtc.
make_nomap_dtb() {
    local dir=$1 tab
    tab=$(printf '\t')
    qemu_cmd -kernel "$TEST_IMAGE" -append ktest=mm -machine "dumpdtb=$dir/base.dtb"
    "${QEMU_CMD[@]}" </dev/null || return 1
    dtc -q -I dtb -O dts -o "$dir/base.dts" "$dir/base.dtb" || return 1
    [[ $(tail -n1 "$dir/base.dts") == "};" ]] || { echo "base.dts does not end with the root's '};'"; return 1; }
    {
        sed '$d' "$dir/base.dts"
        cat <<EOF
${tab}reserved-memory {
${tab}${tab}#address-cells = <0x02>;
${tab}${tab}#size-cells = <0x02>;
${tab}${tab}ranges;
${tab}${tab}secmon@${NOMAP_REGION_BASE#0x} {
${tab}${tab}${tab}reg = <0x00 $NOMAP_REGION_BASE 0x00 $NOMAP_REGION_SIZE>;
${tab}${tab}${tab}no-map;
${tab}${tab}};
${tab}${tab}shmem@50000000 {
${tab}${tab}${tab}reg = <0x00 0x50000000 0x00 0x200000>;
${tab}${tab}};
${tab}};
};
EOF
    } >"$dir/nomap.dts" || return 1
    dtc -q -I dts -O dtb -o "$dir/nomap.dtb" "$dir/nomap.dts" || return 1
    write_boot_stub "$dir/stub.bin" "$BAD_DTB_ADDR" "$BAD_KERNEL_ADDR"
}

layer_nomap() {
    need_kernel || {
        fail "nomap: no kernel to boot (build failed)"
        return
    }
    local dir=$LOG_DIR/nomap
    rm -rf "$dir"
    mkdir -p "$dir" "$LOG_DIR/badboot"
    if ! (make_nomap_dtb "$dir") >"$dir/make.log" 2>&1; then
        fail "nomap: make the DTB (QEMU dumpdtb + dtc)"
        show_tail "$dir/make.log"
        return
    fi
    cp -f "$dir/stub.bin" "$LOG_DIR/badboot/stub.bin" # where stub_args looks
    stub_args "$dir/nomap.dtb"
    spawn_boot nomap-ktest "$KTEST_TIMEOUT" -- "${STUB_ARGS[@]}"
    wait_boots
    # The case must run (not SKIP) and pass, along with the rest of mm.
    verify_boot "nomap: mm.nomap_memory_is_not_in_the_linear_map runs and passes" nomap-ktest 0 \
        "+map_mem: \\[0x0*${NOMAP_REGION_BASE#0x}-0x[0-9a-f]+\\] NOMAP: left out of the linear map" \
        '+^    ok [0-9]+ nomap_memory_is_not_in_the_linear_map[[:space:]]*$' \
        '+^    ok [0-9]+ linear_alias_of_text_and_rodata_is_read_only[[:space:]]*$' \
        '+^ktest: [0-9]+ passed, 0 failed' '!not ok' '!SKIP'
}

# ---------------------------------------------------------------------------
# Layer: serial shell (the session is in scripts/shell-session.sh)
# ---------------------------------------------------------------------------

layer_shell() {
    need_kernel || {
        fail "shell: no kernel to boot (build failed)"
        return
    }
    shell_layer_main
}

# ---------------------------------------------------------------------------
# Layer: scripted GDB session
# ---------------------------------------------------------------------------

# scripts/gdb-test.sh prints one PASS/FAIL line per check; report them here.
# It tests the build scripts/gdb.sh debugs (the `debugging` profile), which
# gdb-test.sh builds itself (--no-build: the last one) and copies for the run.
layer_gdb() {
    local log=$LOG_DIR/gdb-test.log line status=0 n=0 failed_before=$FAILED build=()
    ((BUILD)) || build=(--no-build)
    mkdir -p "$LOG_DIR"
    timeout --kill-after=5 $((${GDB_TEST_TIMEOUT:-240} + 120)) "$REPO_ROOT/scripts/gdb-test.sh" \
        "${build[@]}" --out "$LOG_DIR/gdb" >"$log" 2>&1 || status=$?
    while IFS= read -r line; do
        case $line in
        "PASS "*) pass "${line#PASS }" && n=$((n + 1)) ;;
        "FAIL "*) fail "${line#FAIL }" && n=$((n + 1)) ;;
        *" passed, "*" failed") ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$log"
    if ((n == 0 || (status != 0 && FAILED == failed_before))); then
        fail "gdb: scripts/gdb-test.sh stopped early (exit status $status)"
        show_tail "$log"
    fi
}

# ---------------------------------------------------------------------------
# Layer: benchmarks (short form; no timing is asserted)
# ---------------------------------------------------------------------------

# Scenarios that must pass (Summary ... passed: 1 failed: 0), and the one
# that fails by design in Linux too.
BENCH_PASS=(fix_size_alloc_test full_fit_alloc_test long_busy_list_alloc_test random_size_alloc_test
    fix_align_alloc_test random_size_align_alloc_test pcpu_alloc_test kvfree_rcu_1_arg_vmalloc_test
    kvfree_rcu_2_arg_vmalloc_test vm_map_ram_test)
BENCH_XFAIL=align_shift_alloc_test

# ---------------------------------------------------------------------------
# Layer: SMP bring-up
# ---------------------------------------------------------------------------

SMP_TIMEOUT=${SMP_TIMEOUT:-60}
# "name|CPUs|-cpu|EL|gic-version|NUMA nodes|-append": a matrix that covers
# every CPU model, both ELs, both GICs and NUMA without every combination
# at -smp 8 (slow under TCG). The ktest rows also run the smp suite.
SMP_MATRIX=(
    "a53-smp2-el1-gic2|2|cortex-a53|1|2|1|poweroff"
    "a72-smp4-el2-gic3|4|cortex-a72|2|3|1|poweroff"
    "max-smp4-el1-gic3|4|max|1|3|1|poweroff"
    "a53-smp4-el2-gic2|4|cortex-a53|2|2|1|poweroff"
    "a72-smp8-el1-gic2|8|cortex-a72|1|2|1|poweroff"
    "max-smp8-el2-gic3|8|max|2|3|1|poweroff"
    "a72-smp4-numa-gic3|4|cortex-a72|1|3|2|poweroff"
    "ktest-max-smp4-el2-gic3|4|max|2|3|1|ktest=smp"
    "ktest-a72-smp8-el1-gic2|8|cortex-a72|1|2|1|ktest=smp"
)

# write_spin_stub FILE DTB_ADDR KERNEL_ADDR RELEASE_ADDR: a boot loader that
# holds CPU 1 in a spin-table (Documentation/arm64/booting.rst) before it
# enters the kernel on CPU 0, in hand-encoded instructions (stub at X):
#   X+0x00  ldr x0, =PSCI CPU_ON64   mov x1, #1   ldr x2, =X+0x20   mov x3, #0
#   X+0x10  hvc #0                   (CPU 1 now runs the loop at X+0x20)
#   X+0x14  ldr x0, =DTB   ldr x1, =KERNEL   br x1
#   X+0x20  1: wfe   ldr x1, =RELEASE   ldr x1, [x1]   cbz x1, 1b   br x1
#   X+0x34  nop x3, then the literals at X+0x40
write_spin_stub() {
    local file=$1 dtb=$2 kernel=$3 release=$4 base=$5
    printf '%b' "$(le32 0x58000200)$(le32 0xd2800021)$(le32 0x58000202)$(le32 0xd2800003)" \
        "$(le32 0xd4000002)$(le32 0x580001e0)$(le32 0x58000201)$(le32 0xd61f0020)" \
        "$(le32 0xd503205f)$(le32 0x580001e1)$(le32 0xf9400021)$(le32 0xb4ffffa1)" \
        "$(le32 0xd61f0020)$(le32 0xd503201f)$(le32 0xd503201f)$(le32 0xd503201f)" \
        "$(le64 0xc4000003)$(le64 $((base + 0x20)))$(le64 "$dtb")$(le64 "$kernel")$(le64 "$release")" >"$file"
    [[ $(stat -c %s "$file") == 104 ]] || die "spin-table stub $file is not 104 bytes"
}

# A device tree whose CPU 1 is released from a spin-table (by the stub
# above), CPU 2 names a spin-table nobody polls (it never comes online) and
# CPU 3 has no enable-method: two CPUs up, two reported, boot goes on.
smp_spin_table() {
    local dir=$LOG_DIR/smp-spin-table release=0x7ffff000
    rm -rf "$dir" && mkdir -p "$dir"
    if ! {
        qemu_cmd -smp 4 -machine "dumpdtb=$dir/smp4.dtb" && "${QEMU_CMD[@]}" </dev/null &&
            dtc -q -I dtb -O dts -o "$dir/smp4.dts" "$dir/smp4.dtb" &&
            sed -e "1a /memreserve/ $release 0x1000;" \
                -e '/cpu@1 {/,/};/ s/enable-method = "psci";/enable-method = "spin-table"; cpu-release-addr = <0x00 '"$release"'>;/' \
                -e '/cpu@2 {/,/};/ s/enable-method = "psci";/enable-method = "spin-table"; cpu-release-addr = <0x00 0x7ffff800>;/' \
                -e '/cpu@3 {/,/};/ { /enable-method = "psci";/d; }' "$dir/smp4.dts" >"$dir/spin.dts" &&
            [[ $(grep -c spin-table "$dir/spin.dts") == 2 ]] &&
            dtc -q -I dts -O dtb -o "$dir/spin.dtb" "$dir/spin.dts" &&
            write_spin_stub "$dir/stub.bin" 0x48000000 0x40200000 "$release" 0x40100000
    } >"$dir/make.log" 2>&1; then
        fail "smp: make a spin-table DTB (QEMU dumpdtb + dtc) and its boot stub"
        show_tail "$dir/make.log"
        return
    fi
    printf 'cpu\npoweroff\n' >"$dir/in"
    spawn_boot smp-spin-table "$SMP_TIMEOUT" --stdin "$dir/in" -- -smp 4 \
        -device "loader,file=$TEST_IMAGE,addr=0x40200000,force-raw=on" \
        -device "loader,file=$dir/spin.dtb,addr=0x48000000,force-raw=on" \
        -device "loader,file=$dir/stub.bin,addr=0x40100000,force-raw=on" -device "loader,addr=0x40100000,cpu-num=0"
}

layer_smp() {
    need_kernel || {
        fail "smp: no kernel to boot (build failed)"
        return
    }
    local spec name n cpu el gic nodes append machine numa boots=() last
    for spec in "${SMP_MATRIX[@]}"; do
        IFS='|' read -r name n cpu el gic nodes append <<<"$spec"
        machine=virt,gic-version=$gic
        ((el == 1)) || machine+=,virtualization=on
        numa=()
        if ((nodes == 2)); then
            numa=(-m 2G -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G
                -numa "node,nodeid=0,cpus=0-$((n / 2 - 1)),memdev=m0" -numa "node,nodeid=1,cpus=$((n / 2))-$((n - 1)),memdev=m1")
        fi
        spawn_boot "smp-$name" "$SMP_TIMEOUT" -- -kernel "$TEST_IMAGE" -machine "$machine" -cpu "$cpu" \
            -smp "$n" "${numa[@]}" -append "$append"
        boots+=("$spec")
    done
    # Hot-unplug and back from the shell, then the cross-call ktests again.
    local input=$LOG_DIR/smp-hotplug.input
    mkdir -p "$LOG_DIR"
    printf '%s\n' 'cpu off 3' cpu 'cpu on 3' 'ktest smp' 'cpu off 0' poweroff >"$input"
    spawn_boot smp-hotplug "$SMP_TIMEOUT" --stdin "$input" -- -kernel "$TEST_IMAGE" \
        -machine virt,gic-version=3,virtualization=on -cpu cortex-a72 -smp 4
    smp_spin_table
    wait_boots
    if [[ -f $LOG_DIR/smp-spin-table.status ]]; then
        verify_boot "smp: spin-table CPU 1 released, CPU 2 never comes online, CPU 3 without enable-method" \
            smp-spin-table 0 "+CPU1: Booted secondary processor 0x0000000001" \
            "+CPU2: failed to come online" \
            "+CPU3: MPIDR 0x3 has no enable-method this kernel knows \(psci, spin-table\); skipped" \
            "+smp: Brought up 1 node, 2 CPUs" "+^1 +0x0000000001  online   spin-table" \
            "+reboot: Power down" "!panic|Oops"
    fi
    verify_boot "smp: shell 'cpu off 3', 'cpu on 3', then ktest smp (-smp 4 GICv3 EL2)" smp-hotplug 0 \
        "+CPU3: shutdown" "+CPU3: offline \(PSCI CPU_OFF\)" \
        "+^3 +0x0000000003  offline  psci" "+3 CPU\(s\) online of 4" \
        "+CPU3: online \(PSCI CPU_ON\)" "+ktest: 6 passed, 0 failed" \
        "+cpu: CPU0: the boot CPU cannot be taken offline" "+reboot: Power down" \
        "1Internal error: Oops" "!panic|failed to|didn't die|nobody cared"
    local node_word=node checks label
    for spec in "${boots[@]}"; do
        IFS='|' read -r name n cpu el gic nodes append <<<"$spec"
        node_word=node
        ((nodes == 1)) || node_word=nodes
        last=$(printf '0x%010x' $((n - 1)))
        checks=(
            "+smp: $n CPU\(s\) in the device tree"
            "+smp: Brought up $nodes $node_word, $n CPUs"
            "+CPU$((n - 1)): Booted secondary processor $last \[0x[0-9a-f]{8}\]"
            "1GIC(v3)?: "
            "+reboot: Power down"
            "!panic|failed to|didn't die|nobody cared"
        )
        if [[ $append == ktest=smp ]]; then
            # One oops: the secondary's stack overflow the ktest provokes.
            checks+=("+ktest: 6 passed, 0 failed" "!# SKIP" "1Internal error: Oops")
        else
            checks+=("!Oops")
        fi
        label="-smp $n -cpu $cpu EL$el GICv$gic"
        ((nodes == 1)) || label+=" NUMA ($nodes nodes)"
        verify_boot "smp: $label ($append)" "smp-$name" 0 "${checks[@]}"
    done
}

layer_bench() {
    need_kernel || {
        fail "bench: no kernel to boot (build failed)"
        return
    }
    local ioa specs n
    for ioa in 1 0; do
        spawn_boot "bench-ioa$ioa" "$BENCH_TIMEOUT" -- -kernel "$TEST_IMAGE" -append \
            "bench=all bench.loops=20 test_vmalloc.test_loop_count=50 test_vmalloc.test_repeat_count=2 init_on_alloc=$ioa poweroff"
    done
    wait_boots
    for ioa in 1 0; do
        specs=('!panic|Oops|Trying to vfree|invariants broken|bench: [a-z]+: .*failed' '1All test took CPU0=[0-9]+ cycles'
            "+test_vmalloc: run_test_mask=0x7fffffff test_loop_count=50 test_repeat_count=2 .* init_on_alloc=$ioa "
            "1Summary: $BENCH_XFAIL passed: [0-9]+ failed: [0-9]+ repeat: 2 loops: 50 avg: [0-9]+ usec"
            '+vmap allocation for size 8192 failed' '+bench: scaling: vmalloc invariants hold')
        for n in "${BENCH_PASS[@]}"; do specs+=("1Summary: $n passed: 2 failed: 0 repeat: 2 loops: 50 avg: [0-9]+ usec"); done
        # Rows for 10 (ratio 1.00 by definition) up to 100000 busy areas.
        specs+=('1bench: scaling: +[0-9]+ +[0-9]+ \| packed: +[0-9]+ +[0-9.]+ +1\.00 \| holes: +[0-9]+ +[0-9]+ +[0-9.]+ +1\.00 +[0-9.]+ +1\.00'
            '1bench: scaling: +100[0-9]{3} +[0-9]+ \| packed: .* \| holes: +100[0-9]{3} ')
        for n in 1 16 256 1024; do specs+=("1bench: floor: +$n +[0-9.]+ +[0-9.]+ +[0-9.]+ "); done
        for n in 1 16 100 256 1024; do specs+=("1bench: stages: pages=$n measured_ns=[0-9.]+ sum_of_stages_ns="); done
        verify_boot "bench: init_on_alloc=$ioa: every scenario reports, no failures (align_shift fails as in Linux)" \
            "bench-ioa$ioa" 0 "${specs[@]}"
        printf '     (%s ms)\n' "$(boot_ms "bench-ioa$ioa")"
    done
}

# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Layer: docs that cannot go stale
# ---------------------------------------------------------------------------

layer_docs() {
    need_kernel || {
        fail "docs: no kernel to boot (build failed)"
        return
    }
    local out=$LOG_DIR/docs-check.log
    # The kernel under test is the one scripts/docs.sh would build.
    if "$REPO_ROOT/scripts/docs.sh" --check --no-build >"$out" 2>&1; then
        pass "docs: every generated block in README.md and docs/ matches this build ($(grep -c '^docs: generating' "$out") generators)"
    else
        fail "docs: README.md or docs/ no longer match what the build prints; run scripts/docs.sh and commit the result"
        show_tail "$out"
    fi
}

usage() {
    sed -n '3,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    printf '\nLayers:\n'
    local l
    for l in "${LAYERS[@]}"; do printf '  %-8s %s\n' "${l%%|*}" "${l#*|}"; done
}

main() {
    local selected=() arg l known
    for arg in "$@"; do
        case $arg in
        -h | --help | --list)
            usage
            exit 0
            ;;
        --no-build) BUILD=0 ;;
        -*)
            usage >&2
            exit 2
            ;;
        *)
            known=0
            for l in "${LAYERS[@]}"; do [[ ${l%%|*} == "$arg" ]] && known=1; done
            ((known)) || {
                printf 'unknown layer: %s\n\n' "$arg" >&2
                usage >&2
                exit 2
            }
            selected+=("$arg")
            ;;
        esac
    done
    if ((${#selected[@]} == 0)); then
        for l in "${LAYERS[@]}"; do selected+=("${l%%|*}"); done
    fi

    ensure_tools
    mkdir -p "$LOG_DIR"
    local t0=$SECONDS t name
    for l in "${LAYERS[@]}"; do
        name=${l%%|*}
        [[ " ${selected[*]} " == *" $name "* ]] || continue
        printf '\n=== %s: %s\n' "$name" "${l#*|}"
        t=$SECONDS
        "layer_$name"
        printf '=== %s done in %ds\n' "$name" $((SECONDS - t))
    done
    printf '\nlogs: %s; total time %ds\n' "$LOG_DIR" $((SECONDS - t0))
    ((SKIPPED == 0)) || printf '(%d check(s) skipped: not possible on that machine; counted as neither)\n' "$SKIPPED"
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
