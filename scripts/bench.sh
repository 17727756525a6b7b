#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Boot the in-kernel vmalloc benchmarks under QEMU and print their tables.
#
#   scripts/bench.sh [OPTIONS]
#
#   --loops N            test_vmalloc.test_loop_count (default 100000, as the baseline)
#   --init-on-alloc V    0, 1 (default) or both: zero vmalloc pages (Linux's init_on_alloc=)
#   --mask M             test_vmalloc.run_test_mask (default: every scenario)
#   --repeat N           test_vmalloc.test_repeat_count (default 1)
#   --nr-pages N         test_vmalloc.nr_pages (default 0: 1 page, as 6.1)
#   --smp N              QEMU -smp N (default 1)
#   --nr-threads N       test_vmalloc.nr_threads: one worker per CPU, each running the
#                        whole mask (default: unset, 1 worker); with N > 1 each scenario's
#                        figure is the mean over the workers, as in
#                        docs/baselines/linux-test_vmalloc-smp4.txt
#   --bench LIST         benchmarks, comma-separated: test_vmalloc,scaling,floor,stages
#                        (default: all of them)
#   --bench-loops N      iterations per scaling/floor/stages point (kernel default if unset)
#   --no-icount          run without -icount (real time; varies run to run)
#   --icount-opts OPTS   -icount options (default shift=0,sleep=off)
#   --verify             boot twice and check that both runs print identical figures
#   --separate           one boot per test_vmalloc scenario (as the Linux baseline's
#                        MODE=separate), plus one for the other benchmarks
#   --compare [FILE]     print the ratio to a saved baseline per scenario (default FILE:
#                        docs/baselines/linux-test_vmalloc.txt, Linux 6.1/6.12 on this QEMU);
#                        FILE may hold "KERNEL TEST AVG_USEC" rows, the baseline tool's
#                        "linux TEST ... avg_usec=N" lines or "Summary: ..." lines
#   --kernel ABI         which KERNEL rows of FILE (default: 6.1.0-56-arm64 if present, else the first)
#   --log FILE           parse a console log from an earlier run instead of booting
#   --no-build           boot the kernel already built
#   --timeout S          seconds per boot (default 3600)
#   --append "ARGS"      extra kernel command line
#   --csv DIR            where the CSV copies of the tables go (default:
#                        $TARGET_DIR/bench-logs/csv; scripts/plot.sh draws them):
#                        test_vmalloc.csv, stages.csv, floor.csv, scaling.csv
#
# Under -icount shift=0 QEMU's virtual clock advances 1 ns per guest
# instruction: the figures count instructions. sleep=off also keeps real
# time out of the clock's starting point, so two boots print identical
# figures (with plain shift=0 a figure can move by one 16 ns timer tick).
# Console logs are kept in $TARGET_DIR/bench-logs/.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOOPS=100000
INIT_ON_ALLOC=1
MASK=
REPEAT=1
NR_PAGES=0
SMP=1
NR_THREADS=
BENCHES=test_vmalloc,scaling,floor,stages
BENCH_LOOPS=
ICOUNT=1
ICOUNT_OPTS=shift=0,sleep=off
VERIFY=0
SEPARATE=0
COMPARE=
KERNEL_ABI=
FROM_LOG=
BUILD=1
TIMEOUT=3600
APPEND_EXTRA=
BENCH_LOG_DIR=$TARGET_DIR/bench-logs
CSV_DIR=

usage() { sed -n '3,42s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
    --loops) LOOPS=$2 && shift 2 ;;
    --init-on-alloc) INIT_ON_ALLOC=$2 && shift 2 ;;
    --mask) MASK=$2 && shift 2 ;;
    --repeat) REPEAT=$2 && shift 2 ;;
    --nr-pages) NR_PAGES=$2 && shift 2 ;;
    --smp) SMP=$2 && shift 2 ;;
    --nr-threads) NR_THREADS=$2 && shift 2 ;;
    --bench) BENCHES=$2 && shift 2 ;;
    --bench-loops) BENCH_LOOPS=$2 && shift 2 ;;
    --no-icount) ICOUNT=0 && shift ;;
    --icount-opts) ICOUNT_OPTS=$2 && shift 2 ;;
    --verify) VERIFY=1 && shift ;;
    --separate) SEPARATE=1 && shift ;;
    --compare)
        # The file is optional: without one, the baseline kept in the repository.
        if (($# > 1)) && [[ $2 != --* ]]; then
            COMPARE=$2 && shift 2
        else
            COMPARE=$REPO_ROOT/docs/baselines/linux-test_vmalloc.txt && shift
        fi
        ;;
    --kernel) KERNEL_ABI=$2 && shift 2 ;;
    --log) FROM_LOG=$2 && shift 2 ;;
    --no-build) BUILD=0 && shift ;;
    --timeout) TIMEOUT=$2 && shift 2 ;;
    --append) APPEND_EXTRA=$2 && shift 2 ;;
    --csv) CSV_DIR=$2 && shift 2 ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && die "unknown option: $1" ;;
    esac
done

case $INIT_ON_ALLOC in
0 | 1) SETTINGS=("$INIT_ON_ALLOC") ;;
both) SETTINGS=(1 0) ;;
*) die "--init-on-alloc takes 0, 1 or both" ;;
esac
[[ $LOOPS =~ ^[0-9]+$ ]] || die "--loops takes a number"
[[ $SMP =~ ^[1-8]$ ]] || die "--smp takes 1..8 (the kernel's NR_CPUS)"
[[ -z $NR_THREADS || $NR_THREADS =~ ^[0-9]+$ ]] || die "--nr-threads takes a number"
[[ -z $COMPARE || -r $COMPARE ]] || die "cannot read $COMPARE"

# ---------------------------------------------------------------------------
# Baseline file: "KERNEL TEST USEC", run.sh's "linux TEST ... avg_usec=N ...
# kernel=K" or "Summary: TEST passed: ... loops: N avg: U usec".
# ---------------------------------------------------------------------------
declare -A BASE=()
BASE_LABEL=
BASE_LOOPS=

load_baseline() {
    local file=$1 want=$2 line kernels=() k
    # Plain rows: pick the kernel.
    mapfile -t kernels < <(awk '!/^#/ && NF == 3 && $3 ~ /^[0-9]+$/ { print $1 }' "$file" | awk '!seen[$0]++')
    if ((${#kernels[@]})); then
        if [[ -z $want ]]; then
            want=${kernels[0]}
            for k in "${kernels[@]}"; do [[ $k == 6.1.0-56-arm64 ]] && want=$k; done
        fi
        while read -r k t u; do
            [[ $k == "$want" ]] && BASE[$t]=$u
        done < <(awk '!/^#/ && NF == 3 && $3 ~ /^[0-9]+$/' "$file")
        BASE_LABEL="linux $want"
        # The file's comment says which loop count its figures are for.
        BASE_LOOPS=$(sed -n 's/.*test_loop_count=\([0-9]*\).*/\1/p; s/.*LOOPS=\([0-9]*\).*/\1/p' "$file" | head -1)
        [[ -n $BASE_LOOPS ]] || BASE_LOOPS=100000
    fi
    # run.sh output lines.
    while IFS= read -r line; do
        [[ $line =~ ^linux\ ([a-z0-9_]+)\ loops=([0-9]+)\ avg_usec=([0-9]+).*kernel=([^ ]+) ]] || continue
        [[ -n $want && ${BASH_REMATCH[4]} != "$want" ]] && continue
        want=${BASH_REMATCH[4]}
        BASE[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]}
        BASE_LOOPS=${BASH_REMATCH[2]}
        BASE_LABEL="linux $want"
    done <"$file"
    # Summary lines (a saved console log, Linux's or ours).
    while IFS= read -r line; do
        [[ $line =~ Summary:\ ([a-z0-9_]+)\ passed:\ [0-9]+\ failed:\ [0-9]+\ repeat:\ [0-9]+\ loops:\ ([0-9]+)\ avg:\ ([0-9]+)\ usec ]] || continue
        BASE[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]}
        BASE_LOOPS=${BASH_REMATCH[2]}
        BASE_LABEL=${BASE_LABEL:-$(basename "$file")}
    done < <(tr -d '\r' <"$file")
    ((${#BASE[@]})) || die "no baseline figures found in $file${want:+ for kernel $want}"
}

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }

# ---------------------------------------------------------------------------
# Boot and report
# ---------------------------------------------------------------------------

# cmdline INIT_ON_ALLOC [MASK [BENCHES]]
cmdline() {
    local ioa=$1 mask=${2:-$MASK} benches=${3:-$BENCHES} args extra
    args=(bench="$benches" init_on_alloc="$ioa"
        test_vmalloc.test_loop_count="$LOOPS" test_vmalloc.test_repeat_count="$REPEAT"
        test_vmalloc.nr_pages="$NR_PAGES" test_vmalloc.sequential_test_order=1)
    [[ -n $mask ]] && args+=(test_vmalloc.run_test_mask="$mask")
    [[ -n $NR_THREADS ]] && args+=(test_vmalloc.nr_threads="$NR_THREADS")
    [[ -n $BENCH_LOOPS ]] && args+=(bench.loops="$BENCH_LOOPS")
    read -ra extra <<<"$APPEND_EXTRA"
    printf '%s ' "${args[@]}" "${extra[@]}" poweroff
}

# boot NAME INIT_ON_ALLOC [MASK [BENCHES]]: one QEMU run; the log is
# $BENCH_LOG_DIR/NAME.log.
boot() {
    local name=$1 ioa=$2 qargs=(-kernel "$KERNEL_IMAGE")
    ((ICOUNT)) && qargs+=(-icount "$ICOUNT_OPTS")
    ((SMP > 1)) && qargs+=(-smp "$SMP")
    LOG_DIR=$BENCH_LOG_DIR boot_capture "$name" "$TIMEOUT" -- "${qargs[@]}" -append "$(cmdline "$ioa" "${@:3}")"
    local log=$BENCH_LOG_DIR/$name.log
    info "bench: $name: QEMU exit status $BOOT_STATUS, $(cat "$BENCH_LOG_DIR/$name.ms") ms wall; log $log"
    if ((BOOT_STATUS != 0)) || grep -Eq 'Kernel panic|Oops' "$log"; then
        tail -n 40 "$log" >&2
        die "bench: $name did not finish cleanly (status $BOOT_STATUS); reproduce: $(cat "$BENCH_LOG_DIR/$name.cmd")"
    fi
}

# run_set NAME INIT_ON_ALLOC: the whole benchmark, in one boot or (with
# --separate) one boot per scenario; $BENCH_LOG_DIR/NAME.log gets every log.
run_set() {
    local name=$1 ioa=$2 mask bit others=() b logs=()
    if ((!SEPARATE)); then
        boot "$name" "$ioa"
        return
    fi
    mask=$((${MASK:-0x7fffffff}))
    if [[ ,$BENCHES, == *,test_vmalloc,* ]]; then
        for bit in {0..10}; do
            ((mask >> bit & 1)) || continue
            boot "$name-t$bit" "$ioa" $((1 << bit)) test_vmalloc
            logs+=("$BENCH_LOG_DIR/$name-t$bit.log")
        done
    fi
    IFS=, read -ra others <<<"$BENCHES"
    for b in "${!others[@]}"; do [[ ${others[b]} == test_vmalloc ]] && unset 'others[b]'; done
    if ((${#others[@]})); then
        boot "$name-other" "$ioa" "${MASK:-0x7fffffff}" "$(IFS=, && echo "${others[*]}")"
        logs+=("$BENCH_LOG_DIR/$name-other.log")
    fi
    cat "${logs[@]}" >"$BENCH_LOG_DIR/$name.log"
}

# The figures that must repeat under icount: every Summary/cycles/bench line
# without its printk timestamp.
figures() { tr -d '\r' <"$1" | grep -E 'Summary:|All test took|bench: ' | sed 's/^\[[ 0-9.]*\] //'; }

report() {
    local log=$1 label=$2 line name passed failed loops usec ticks ns base
    printf '\n== %s\n' "$label"
    sed -n 's/^\[[ 0-9.]*\] \(test_vmalloc: run_test_mask.*\)/\1/p' "$log" | tr -d '\r'  | head -1
    if grep -q 'bench: test_vmalloc ' "$log"; then
        printf '\n%-30s %6s %6s %12s %12s %10s' scenario passed failed avg_usec cycles ns/loop
        [[ -n $COMPARE ]] && printf ' %12s %6s' "${BASE_LABEL%% *}" ratio
        printf '\n'
        while IFS= read -r line; do
            [[ $line =~ bench:\ test_vmalloc\ ([a-z0-9_]+)\ passed=([0-9]+)\ failed=([0-9]+)\ loops=([0-9]+)\ repeat=[0-9]+\ usec=([0-9]+)\ ticks=([0-9]+) ]] || continue
            name=${BASH_REMATCH[1]} passed=${BASH_REMATCH[2]} failed=${BASH_REMATCH[3]}
            loops=${BASH_REMATCH[4]} usec=${BASH_REMATCH[5]} ticks=${BASH_REMATCH[6]}
            ns=$(awk -v u="$usec" -v l="$loops" 'BEGIN { printf "%.1f", u * 1000 / l }')
            printf '%-30s %6s %6s %12s %12s %10s' "$name" "$passed" "$failed" "$usec" "$ticks" "$ns"
            if [[ -n $COMPARE ]]; then
                base=${BASE[$name]:-}
                if [[ -n $base ]]; then
                    printf ' %12s %6s' "$base" "$(ratio "$usec" "$base")"
                else
                    printf ' %12s %6s' - -
                fi
            fi
            printf '\n'
        done < <(tr -d '\r' <"$log")
        { grep -h 'Skipped: ' "$log" || true; } | tr -d '\r' | sed 's/^\[[ 0-9.]*\] /  /'
        if [[ -n $COMPARE ]]; then
            for name in "${!BASE[@]}"; do
                grep -q "Summary: $name \|Skipped: $name " "$log" ||
                    printf '  (%s: in the baseline, not run here)\n' "$name"
            done
            [[ -z $BASE_LOOPS || $BASE_LOOPS == "$LOOPS" || -n $FROM_LOG ]] ||
                printf '  note: the baseline is for %s loops, this run did %s: the ratios do not compare like with like\n' "$BASE_LOOPS" "$LOOPS"
            printf '  ratio = avg_usec here / avg_usec of %s (below 1: faster)\n' "$BASE_LABEL"
        fi
        sed -n 's/^\[[ 0-9.]*\] \(All test took.*\)/\1/p' "$log" | tr -d '\r'
    fi
    for b in scaling floor stages; do
        grep -q "bench: $b: " "$log" || continue
        printf '\n'
        tr -d '\r' <"$log" | sed -n "s/^\[[ 0-9.]*\] bench: $b: /$b: /p"
    done
}

# ---------------------------------------------------------------------------
# CSV: the same figures as report(), one file per benchmark, for plot.sh
# ---------------------------------------------------------------------------

# csv_start: empty files with their header lines (once per bench.sh run, so
# --init-on-alloc both puts both settings in one file, told apart by the
# init_on_alloc column).
csv_start() {
    CSV_DIR=${CSV_DIR:-$BENCH_LOG_DIR/csv}
    mkdir -p "$CSV_DIR" || die "cannot create $CSV_DIR"
    echo init_on_alloc,scenario,passed,failed,loops,avg_usec,cycles,ns_per_loop,linux_usec,ratio >"$CSV_DIR/test_vmalloc.csv"
    echo init_on_alloc,pages,stage,ns,percent >"$CSV_DIR/stages.csv"
    echo init_on_alloc,pages,floor_ns,vmalloc_ns,ratio >"$CSV_DIR/floor.csv"
    echo init_on_alloc,layout,busy,busy_height,free,free_height,ns,ratio >"$CSV_DIR/scaling.csv"
}

# csv_append LOG: the log's figures appended to the CSV files. The
# init_on_alloc setting is the one the log's benchmarks report.
csv_append() {
    local log=$1 ioa line name usec loops base r
    # The lines without their printk timestamps: "bench: NAME: FIELDS...".
    local lines
    lines=$(tr -d '\r' <"$log" | sed -n 's/^\[[ 0-9.]*\] \(bench: \)/\1/p')
    ioa=$(tr -d '\r' <"$log" | sed -n 's/.*init_on_alloc=\([01]\).*/\1/p' | head -1)
    while IFS= read -r line; do
        [[ $line =~ bench:\ test_vmalloc\ ([a-z0-9_]+)\ passed=([0-9]+)\ failed=([0-9]+)\ loops=([0-9]+)\ repeat=[0-9]+\ usec=([0-9]+)\ ticks=([0-9]+) ]] || continue
        name=${BASH_REMATCH[1]} loops=${BASH_REMATCH[4]} usec=${BASH_REMATCH[5]}
        base=${BASE[$name]:-} r=
        [[ -n $base ]] && r=$(ratio "$usec" "$base")
        printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$ioa" "$name" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" \
            "$loops" "$usec" "${BASH_REMATCH[6]}" "$(awk -v u="$usec" -v l="$loops" 'BEGIN { printf "%.1f", u * 1000 / l }')" \
            "$base" "$r"
    done < <(tr -d '\r' <"$log") >>"$CSV_DIR/test_vmalloc.csv"
    # "bench: stages: pages=N STAGE NS ns PCT%"
    awk -v ioa="$ioa" '$2 == "stages:" && $3 ~ /^pages=[0-9]+$/ && $6 == "ns" {
        sub(/^pages=/, "", $3); sub(/%$/, "", $7); print ioa "," $3 "," $4 "," $5 "," $7 }' <<<"$lines" >>"$CSV_DIR/stages.csv"
    # "bench: floor: PAGES FLOOR_NS VMALLOC_NS RATIO ..."
    awk -v ioa="$ioa" '$2 == "floor:" && $3 ~ /^[0-9]+$/ {
        print ioa "," $3 "," $4 "," $5 "," $6 }' <<<"$lines" >>"$CSV_DIR/floor.csv"
    # "bench: scaling: BUSY BUSY_H | packed: FREE NS RATIO | holes: FREE FREE_H NS RATIO NS2 RATIO2":
    # three layouts (packed, holes with 1-page and with 2-page requests).
    awk -v ioa="$ioa" '$2 == "scaling:" && $3 ~ /^[0-9]+$/ && NF == 17 {
        print ioa ",packed," $3 "," $4 "," $7 ",," $8 "," $9
        print ioa ",holes," $3 "," $4 "," $12 "," $13 "," $14 "," $15
        print ioa ",holes-2pages," $3 "," $4 "," $12 "," $13 "," $16 "," $17 }' <<<"$lines" >>"$CSV_DIR/scaling.csv"
}

main() {
    csv_start
    [[ -n $COMPARE ]] && load_baseline "$COMPARE" "$KERNEL_ABI"
    if [[ -n $FROM_LOG ]]; then
        report "$FROM_LOG" "$FROM_LOG"
        csv_append "$FROM_LOG"
        info "bench: CSV in $CSV_DIR"
        return
    fi
    ensure_tools qemu-system-aarch64 timeout
    prepare_kernel "$BUILD"
    mkdir -p "$BENCH_LOG_DIR"
    local ioa name tag
    tag=$( ((ICOUNT)) && echo icount || echo noicount)
    for ioa in "${SETTINGS[@]}"; do
        name=bench-$tag-ioa$ioa-loops$LOOPS
        ((SEPARATE)) && name+=-separate
        ((SMP > 1)) && name+=-smp$SMP
        [[ -n $NR_THREADS ]] && name+=-threads$NR_THREADS
        run_set "$name" "$ioa"
        csv_append "$BENCH_LOG_DIR/$name.log"
        report "$BENCH_LOG_DIR/$name.log" "init_on_alloc=$ioa, $( ((ICOUNT)) && echo "-icount $ICOUNT_OPTS" || echo 'no icount'), test_loop_count=$LOOPS$( ((SEPARATE)) && echo ', one boot per scenario')"
        if ((VERIFY)); then
            run_set "$name-2" "$ioa"
            if diff <(figures "$BENCH_LOG_DIR/$name.log") <(figures "$BENCH_LOG_DIR/$name-2.log") >"$BENCH_LOG_DIR/$name.diff"; then
                printf '\nverify: a second boot printed identical figures (%d lines compared)\n' \
                    "$(figures "$BENCH_LOG_DIR/$name.log" | wc -l)"
            else
                printf '\nverify: the second boot differs (%d lines); see %s\n' \
                    "$(grep -c '^[<>]' "$BENCH_LOG_DIR/$name.diff")" "$BENCH_LOG_DIR/$name.diff"
                ((ICOUNT)) && exit 1
            fi
        fi
    done
    info "bench: CSV in $CSV_DIR"
}

main
