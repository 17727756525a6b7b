#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Draw the CSV files scripts/bench.sh writes as SVG charts (gnuplot).
#
#   scripts/plot.sh [--csv DIR] [--out DIR] [--ioa 0|1] [CHART...]
#
#   --csv DIR   the CSV files (default: target/bench-logs/csv, bench.sh's default)
#   --out DIR   where the SVGs go (default: target/plots)
#   --ioa V     which init_on_alloc setting to draw (default 1, as the docs' tables)
#   CHART       ratio, stages, scaling, floor (default: each one whose CSV has rows)
#
#   ratio.svg    test_vmalloc: avg_usec here / Linux's, one bar per scenario,
#                1.0x (as fast as Linux) and 0.5x (twice as fast) marked
#   stages.svg   where the time of one vmalloc+vfree goes, per size (% per stage)
#   scaling.svg  ns per alloc_vmap_area+free against busy areas (log axis),
#                one line per layout
#   floor.svg    ns per page: vmalloc+vfree against its floor (pages + PTEs alone)
#
# Prints the path of each SVG written.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CSV_DIR=$TARGET_DIR/bench-logs/csv
OUT_DIR=$TARGET_DIR/plots
IOA=1
CHARTS=()

usage() { sed -n '3,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# One look for every chart; no timestamp in the output, so regenerating from
# the same figures gives the same file.
TERMINAL='set terminal svg size 800,420 font "sans,12" background rgb "white" noenhanced'

# rows FILE: the data rows of FILE for the chosen init_on_alloc setting,
# comma-separated, without the header.
rows() {
    awk -F, -v ioa="$IOA" 'NR > 1 && $1 == ioa' "$1"
}

plot_ratio() {
    local dat=ratio.dat out=$OUT_DIR/ratio.svg
    # Scenarios with a Linux figure; the bar label is the scenario name
    # without "_test".
    rows "$CSV_DIR/test_vmalloc.csv" | awk -F, '$10 != "" { n = $2; sub(/_test$/, "", n); print n, $10 }' >"$dat"
    [[ -s $dat ]] || return 1
    # Both marks always in view, whatever the figures.
    local top
    top=$(awk 'BEGIN { m = 1.1 } $2 * 1.15 > m { m = $2 * 1.15 } END { printf "%.2f", m }' "$dat")
    gnuplot <<EOF
$TERMINAL
set output "$out"
set title "test_vmalloc: vmkernel time / Linux 6.1 time (init_on_alloc=$IOA; below 1: faster)"
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:$top]
set ylabel "ratio to Linux"
set xtics rotate by -30 noenhanced
set grid ytics
unset key
set arrow from graph 0, first 1.0 to graph 1, first 1.0 nohead lw 2 lc rgb "#c00000"
set arrow from graph 0, first 0.5 to graph 1, first 0.5 nohead lw 1 dt 2 lc rgb "#008000"
set label "1.0x (Linux)" at graph 0.01, first 1.0 offset 0,0.6 tc rgb "#c00000"
set label "0.5x" at graph 0.01, first 0.5 offset 0,0.6 tc rgb "#008000"
plot "$dat" using 0:2:xtic(1) with boxes lc rgb "#4a7ab5", \
     "" using 0:2:(sprintf("%.2f", \$2)) with labels offset 0,0.7
EOF
    printf '%s\n' "$out"
}

plot_stages() {
    local dat=stages.dat out=$OUT_DIR/stages.svg ncol
    # One row per size, one column per stage (in the order the log prints them).
    rows "$CSV_DIR/stages.csv" | awk -F, '
        { if (!($2 in sp)) { sp[$2] = 1; pages[++np] = $2 }
          if (!($3 in ss)) { ss[$3] = 1; stage[++ns] = $3 }
          v[$2, $3] = $5 }
        END { printf "pages"; for (j = 1; j <= ns; j++) printf " %s", stage[j]; printf "\n"
              for (i = 1; i <= np; i++) { printf "%s", pages[i]; for (j = 1; j <= ns; j++) printf " %s", v[pages[i], stage[j]] + 0; printf "\n" } }' >"$dat"
    (($(wc -l <"$dat") > 1)) || return 1
    ncol=$(head -1 "$dat" | wc -w)
    gnuplot <<EOF
$TERMINAL
set output "$out"
set title "Where one vmalloc+vfree spends its time, by size (init_on_alloc=$IOA)"
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.6
set yrange [0:100]
set ylabel "% of the sum of stages"
set xlabel "pages per vmalloc"
set key outside right noenhanced
set grid ytics
# One colour per stage (gnuplot's default cycle repeats after eight).
colors = "#4e79a7 #f28e2b #e15759 #76b7b2 #59a14f #edc948 #b07aa1 #ff9da7 #9c755f #bab0ac #17becf #7f7f7f"
plot for [c=2:$ncol] "$dat" using c:xtic(1) title columnheader(c) lc rgb word(colors, (c - 2) % words(colors) + 1)
EOF
    printf '%s\n' "$out"
}

plot_scaling() {
    local dat=scaling.dat out=$OUT_DIR/scaling.svg layouts=() l i=0 plots=()
    rows "$CSV_DIR/scaling.csv" | awk -F, '{ print $2, $3, $7 }' >"$dat"
    [[ -s $dat ]] || return 1
    mapfile -t layouts < <(awk '!seen[$1]++ { print $1 }' "$dat")
    # gnuplot's index needs blank-line-separated blocks: one per layout.
    for l in "${layouts[@]}"; do
        awk -v l="$l" '$1 == l { print $2, $3 }' "$dat" >"scaling-$i.dat"
        plots+=("\"scaling-$i.dat\" using 1:2 with linespoints lw 2 pt 7 title \"$l\"")
        i=$((i + 1))
    done
    gnuplot <<EOF
$TERMINAL
set output "$out"
set title "alloc_vmap_area + free_vmap_area against the number of busy areas (init_on_alloc=$IOA)"
set logscale x 10
set xlabel "busy vmap areas (log scale)"
set ylabel "ns per allocation + free"
set yrange [0:*]
set grid
set key top left noenhanced
plot $(IFS=, && echo "${plots[*]}")
EOF
    printf '%s\n' "$out"
}

plot_floor() {
    local dat=floor.dat out=$OUT_DIR/floor.svg
    # pages, floor ns/page, vmalloc ns/page
    rows "$CSV_DIR/floor.csv" | awk -F, '{ printf "%s %.1f %.1f\n", $2, $3 / $2, $4 / $2 }' >"$dat"
    [[ -s $dat ]] || return 1
    gnuplot <<EOF
$TERMINAL
set output "$out"
set title "vmalloc+vfree against its floor: buddy pages + map + unmap + free (init_on_alloc=$IOA)"
set logscale x 2
set xlabel "pages per allocation (log scale)"
set ylabel "ns per page"
set yrange [0:*]
set grid
set key top right
plot "$dat" using 1:3 with linespoints lw 2 pt 7 title "vmalloc + vfree", \
     "$dat" using 1:2 with linespoints lw 2 pt 5 title "floor"
EOF
    printf '%s\n' "$out"
}

main() {
    while (($#)); do
        case $1 in
        --csv) CSV_DIR=$2 && shift 2 ;;
        --out) OUT_DIR=$2 && shift 2 ;;
        --ioa) IOA=$2 && shift 2 ;;
        -h | --help) usage && return 0 ;;
        ratio | stages | scaling | floor) CHARTS+=("$1") && shift ;;
        *) usage >&2 && die "unknown option or chart: $1" ;;
        esac
    done
    [[ $IOA == 0 || $IOA == 1 ]] || die "--ioa takes 0 or 1"
    ensure_tools gnuplot
    mkdir -p "$OUT_DIR" || die "cannot create $OUT_DIR"
    OUT_DIR=$(cd "$OUT_DIR" && pwd)
    CSV_DIR=$(cd "$CSV_DIR" 2>/dev/null && pwd) || die "plot: no directory $CSV_DIR"
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    # gnuplot writes the plot command, data file name included, into the
    # SVG: from inside $WORK the names are the same on every run.
    cd "$WORK" || die "plot: cannot enter $WORK"
    local c file explicit=$((${#CHARTS[@]}))
    ((explicit)) || CHARTS=(ratio stages scaling floor)
    for c in "${CHARTS[@]}"; do
        case $c in
        ratio) file=test_vmalloc.csv ;;
        *) file=$c.csv ;;
        esac
        if [[ ! -r $CSV_DIR/$file ]]; then
            ((explicit)) && die "plot: no $CSV_DIR/$file (run scripts/bench.sh first)"
            continue
        fi
        if ! "plot_$c"; then
            # A chart asked for by name must be drawn; the default set draws
            # what the CSV files hold.
            ((explicit)) && die "plot: $CSV_DIR/$file has no rows for init_on_alloc=$IOA"
            info "plot: $c: no rows for init_on_alloc=$IOA in $CSV_DIR/$file, skipped"
        fi
    done
}

main "$@"
