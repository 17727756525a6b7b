#!/usr/bin/env bash
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

# The layers, in the order they run: "name|description".
LAYERS=(
    "host|host unit tests (cargo test --lib on the host triple)"
    "ktest|in-kernel tests (KTAP over the console, -append ktest)"
    "smoke|boot-smoke matrix (CPU x exception level x RAM size, -append poweroff)"
    "badboot|bad boot input must end in one clear panic line, never a hang"
    "shell|scripted serial-shell session: every command, faults, bad input, line editing"
    "gdb|scripted GDB session through the vmalloc pipeline (scripts/gdb-test.sh)"
    "bench|short in-kernel benchmarks (test_vmalloc scenarios, scaling, floor, stages) must complete"
)

TEST_JOBS=${TEST_JOBS:-$(nproc 2>/dev/null || echo 2)}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-30}
KTEST_TIMEOUT=${KTEST_TIMEOUT:-120}
BADBOOT_TIMEOUT=${BADBOOT_TIMEOUT:-15}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
TAIL_LINES=60

PASSED=0
FAILED=0
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
KTEST_MACHINES=(
    "default|"
    "4G|-m 4G"
    "numa|-smp 2 -m 2G -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1"
)

# check_ktest MACHINE BOOT: one check per KTAP test line (indented four
# spaces: test level), then one for the run itself.
check_ktest() {
    local machine=$1 boot=$2 log=$LOG_DIR/$2.log
    local line suite="" np=0 nf=0 sum_p="" sum_f="" status reasons=() out=()
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
            else
                np=$((np + 1))
                pass "$name${BASH_REMATCH[3]:+ # SKIP${BASH_REMATCH[5]}}"
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
        reasons+=("summary says $sum_p passed, $sum_f failed; KTAP lines say $np passed, $nf failed")
    fi
    ((np + nf > 0)) || reasons+=("no KTAP test lines")
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
    wait_boots
    for spec in "${KTEST_MACHINES[@]}"; do
        name=${spec%%|*}
        check_ktest "$name" "ktest-$name"
        printf '     (%s: %s ms)\n' "$name" "$(boot_ms "ktest-$name")"
    done
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

# Scenarios that must pass (Summary ... passed: 1 failed: 0), the one that
# fails by design in Linux too, and the ones vmkernel cannot run.
BENCH_PASS=(fix_size_alloc_test full_fit_alloc_test long_busy_list_alloc_test random_size_alloc_test
    fix_align_alloc_test random_size_align_alloc_test vm_map_ram_test)
BENCH_XFAIL=align_shift_alloc_test
BENCH_NA=(pcpu_alloc_test kvfree_rcu_1_arg_vmalloc_test kvfree_rcu_2_arg_vmalloc_test)

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
        for n in "${BENCH_NA[@]}"; do specs+=("1Skipped: $n not applicable: "); done
        # Rows for 10 (ratio 1.00 by definition) up to 100000 busy areas.
        specs+=('1bench: scaling: +[0-9]+ +[0-9]+ \| packed: +[0-9]+ +[0-9.]+ +1\.00 \| holes: +[0-9]+ +[0-9]+ +[0-9.]+ +1\.00 +[0-9.]+ +1\.00'
            '1bench: scaling: +100[0-9]{3} +[0-9]+ \| packed: .* \| holes: +100000 ')
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

usage() {
    sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
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
    printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
    ((FAILED == 0))
}

main "$@"
