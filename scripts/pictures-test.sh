# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# The `pictures` layer of scripts/test.sh: the scripts that draw pictures
# (plot.sh, vmmap-svg.sh, vmaptree-dot.sh, bench.sh's CSV) run on the small
# inputs of two short boots and their outputs are checked for structure:
# every SVG parses (xmllint), the CSV has one row per figure the log
# printed, the DOT one node per area the tree reports, the recomputed
# lowest-match path ends where the kernel's next vmalloc lands, and the VA
# split shows the indices `pt` walks. Sourced by test.sh (it uses pass,
# fail, show_tail, spawn_boot, wait_boots, LOG_DIR, TEST_IMAGE and
# shell-session.sh's sh_*); defines functions only.

PICTURES_TIMEOUT=${PICTURES_TIMEOUT:-60}

# svg_ok NAME FILE: FILE exists and is well-formed XML with an <svg> root.
svg_ok() {
    local err
    if [[ ! -s $2 ]]; then
        fail "pictures: $1: $2 was not written"
        return 1
    fi
    if ! err=$(xmllint --noout "$2" 2>&1); then
        fail "pictures: $1: $2 is not well-formed XML" "$(head -n 5 <<<"$err")"
        return 1
    fi
    if ! xmllint --xpath 'name(/*)' "$2" 2>/dev/null | grep -qx svg; then
        fail "pictures: $1: the root element of $2 is not <svg>"
        return 1
    fi
}

# xcount FILE XPATH: the number of nodes XPATH selects (namespaces ignored).
xcount() {
    xmllint --xpath "count($2)" "$1" 2>/dev/null || echo -1
}

# The benchmark tables as CSV, drawn by plot.sh.
pictures_bench() {
    local log=$LOG_DIR/pictures-bench.log dir=$LOG_DIR/pictures/csv out=$LOG_DIR/pictures/plots n want c
    rm -rf "$dir" "$out"
    if ! "$REPO_ROOT/scripts/bench.sh" --log "$log" --compare --csv "$dir" >"$LOG_DIR/pictures-bench.txt" 2>&1; then
        fail "pictures: bench.sh --log ... --csv: failed" && show_tail "$LOG_DIR/pictures-bench.txt"
        return
    fi
    local reasons=()
    want=$(tr -d '\r' <"$log" | grep -c 'bench: test_vmalloc [a-z0-9_]* passed=')
    n=$(($(wc -l <"$dir/test_vmalloc.csv") - 1))
    ((n == want && want > 0)) || reasons+=("test_vmalloc.csv: $n rows, the log has $want scenario lines")
    # Rows with a Linux figure have a ratio, the others none.
    n=$(awk -F, 'NR > 1 && ($9 == "") != ($10 == "")' "$dir/test_vmalloc.csv" | wc -l)
    ((n == 0)) || reasons+=("test_vmalloc.csv: $n rows with a Linux figure but no ratio or the reverse")
    want=$(tr -d '\r' <"$log" | grep -cE 'bench: stages: pages=[0-9]+ [a-z_]+ +[0-9.]+ ns')
    n=$(($(wc -l <"$dir/stages.csv") - 1))
    ((n == want && want > 0)) || reasons+=("stages.csv: $n rows, the log has $want stage lines")
    want=$(tr -d '\r' <"$log" | grep -cE 'bench: floor: +[0-9]+ ')
    n=$(($(wc -l <"$dir/floor.csv") - 1))
    ((n == want && want > 0)) || reasons+=("floor.csv: $n rows, the log has $want size lines")
    want=$(tr -d '\r' <"$log" | grep -cE 'bench: scaling: +[0-9]+ +[0-9]+ \| packed')
    n=$(($(wc -l <"$dir/scaling.csv") - 1))
    ((n == 3 * want && want > 0)) || reasons+=("scaling.csv: $n rows, want 3 layouts x $want points")
    n=$(awk -F, 'NR > 1 && NF != 10' "$dir/test_vmalloc.csv" | wc -l)
    ((n == 0)) || reasons+=("test_vmalloc.csv: $n rows without 10 fields")
    if ((${#reasons[@]})); then fail "pictures: bench.sh --csv: one row per figure of the log" "${reasons[@]}"; else
        pass "pictures: bench.sh --csv: one row per figure of the log (test_vmalloc, stages, floor, scaling)"
    fi

    if ! "$REPO_ROOT/scripts/plot.sh" --csv "$dir" --out "$out" >"$LOG_DIR/pictures-plot.txt" 2>&1; then
        fail "pictures: plot.sh: failed" && show_tail "$LOG_DIR/pictures-plot.txt"
        return
    fi
    reasons=()
    for c in ratio stages scaling floor; do
        svg_ok "plot.sh $c" "$out/$c.svg" || reasons+=("$c.svg")
    done
    ((${#reasons[@]})) && return
    # One bar label per scenario with a Linux figure, one legend entry per
    # stage and per scaling layout.
    reasons=()
    for c in $(awk -F, 'NR > 1 && $10 != "" { n = $2; sub(/_test$/, "", n); print n }' "$dir/test_vmalloc.csv"); do
        grep -q ">$c<" "$out/ratio.svg" || reasons+=("ratio.svg: no label for $c")
    done
    grep -q '1.0x (Linux)' "$out/ratio.svg" || reasons+=("ratio.svg: the 1.0x line is not labelled")
    for c in $(awk -F, 'NR > 1 { print $3 }' "$dir/stages.csv" | sort -u); do
        grep -q ">$c<" "$out/stages.svg" || reasons+=("stages.svg: no legend entry for $c")
    done
    for c in packed holes holes-2pages; do
        grep -q ">$c<" "$out/scaling.svg" || reasons+=("scaling.svg: no legend entry for $c")
    done
    grep -q '>vmalloc + vfree<' "$out/floor.svg" && grep -q '>floor<' "$out/floor.svg" ||
        reasons+=("floor.svg: no legend for both lines")
    if ((${#reasons[@]})); then fail "pictures: plot.sh: the charts show every scenario, stage and layout" "${reasons[@]}"; else
        pass "pictures: plot.sh: 4 SVG charts parse and show every scenario, stage and layout"
    fi
}

# reply_of CMD: the reply lines of CMD in the session log (the Nth time with
# an optional second argument N, default 1).
reply_of() {
    tr -d '\r' <"$SH_LOG" | awk -v cmd="$SH_PROMPT$1" -v nth="${2:-1}" -v p="$SH_PROMPT" '
        index($0, p) == 1 { if (on) exit; if ($0 == cmd && ++seen == nth) on = 1; next }
        on { print }'
}

# The shell's vmaptree, the DOT and the address-space pictures, from one
# session: vmaptree free/busy, vmallocinfo, pt, vmalloc 16K, vfree.
pictures_shell() {
    local dir=$LOG_DIR/pictures l io_va addr n count lines reasons=()
    sh_start pictures-shell -kernel "$TEST_IMAGE" || {
        fail "pictures: shell session did not start: $SH_DEAD"
        show_tail "$SH_LOG"
        return
    }
    sh_run "vmaptree free"
    sh_run "vmaptree busy"
    sh_run vmallocinfo
    io_va=$(printf '%s\n' "${SH_OUT[@]}" | awk '/ ioremap$/ { split($1, r, "-"); print r[1]; exit }')
    [[ -n $io_va ]] && sh_run "pt $io_va"
    # 16K + the guard page: a 20K request.
    sh_run "vmalloc 16K"
    addr=$(printf '%s\n' "${SH_OUT[@]}" | sed -n 's/^vmalloc: 16K at \(0x[0-9a-f]*\) .*/\1/p')
    [[ -n $addr ]] && sh_run "vfree $addr"
    sh_run vmallocinfo
    # poweroff never brings a prompt back: what went wrong came before it.
    local dead=$SH_DEAD
    sh_run poweroff || true
    sh_finish
    if [[ -n $dead || -z $io_va || -z $addr ]]; then
        fail "pictures: shell session: ${dead:-no ioremap line or no vmalloc address}"
        show_tail "$SH_LOG"
        return
    fi

    # The text tree: as many lines as the header counts; the busy tree holds
    # every area vmallocinfo lists.
    reply_of "vmaptree busy" >"$dir/busy.txt"
    reply_of vmallocinfo >"$dir/vmallocinfo.txt"
    reply_of "vmaptree free" >"$dir/free.txt"
    for l in free busy; do
        count=$(sed -n 's/^[a-z_]*: \([0-9]*\) areas, height [0-9]*$/\1/p' "$dir/$l.txt")
        lines=$(grep -cE '^( *\+-[LR] )?[RB] 0x' "$dir/$l.txt")
        [[ -n $count && $count == "$lines" && $count -gt 0 ]] || reasons+=("vmaptree $l: header counts '${count}' areas, $lines area lines")
    done
    n=$(grep -c '^0x' "$dir/vmallocinfo.txt")
    [[ $(sed -n 's/^vmap_area_root: \([0-9]*\) areas.*/\1/p' "$dir/busy.txt") == "$n" ]] ||
        reasons+=("vmaptree busy does not count the $n areas vmallocinfo lists")
    if ((${#reasons[@]})); then fail "pictures: shell vmaptree: one line per area, as many as the tree counts" "${reasons[@]}"; else
        pass "pictures: shell vmaptree free/busy: one line per area, busy = the vmallocinfo areas"
    fi

    # DOT: one node per area; --path ends where the kernel put the 20K.
    reasons=()
    local got
    if ! got=$("$REPO_ROOT/scripts/vmaptree-dot.sh" --path 0x5000 "$dir/free.txt" "$dir/free.dot" 2>&1); then
        fail "pictures: vmaptree-dot.sh failed" "$got"
    else
        count=$(sed -n 's/^free_vmap_area_root: \([0-9]*\) areas.*/\1/p' "$dir/free.txt")
        n=$(grep -cE '^  n[0-9]+ \[label=' "$dir/free.dot")
        ((n == count)) || reasons+=("free.dot: $n nodes, the tree counts $count")
        grep -qx "lowest match: $addr after [0-9]* nodes" <<<"$got" ||
            reasons+=("recomputed lowest match: '$(tail -1 <<<"$got")', the kernel's vmalloc 16K went to $addr")
        svg_ok "vmaptree-dot.sh free" "$dir/free.svg" || reasons+=("free.svg")
        ((${#reasons[@]} == 0)) && {
            n=$(xcount "$dir/free.svg" "//*[local-name()='g'][@class='node']")
            ((n == count)) || reasons+=("free.svg: $n node groups, the tree counts $count")
        }
        if ((${#reasons[@]})); then fail "pictures: vmaptree-dot.sh: DOT and SVG of the free tree, lowest-match path" "${reasons[@]}"; else
            pass "pictures: vmaptree-dot.sh: free tree as DOT/SVG ($count nodes); the recomputed lowest match is where vmalloc 16K landed"
        fi
    fi
    reasons=()
    if got=$("$REPO_ROOT/scripts/vmaptree-dot.sh" "$dir/busy.txt" "$dir/busy.dot" 2>&1) && svg_ok "vmaptree-dot.sh busy" "$dir/busy.svg"; then
        count=$(sed -n 's/^vmap_area_root: \([0-9]*\) areas.*/\1/p' "$dir/busy.txt")
        n=$(grep -cE '^  n[0-9]+ \[label=' "$dir/busy.dot")
        if ((n == count)) && ! grep -q subtree_max "$dir/busy.dot"; then
            pass "pictures: vmaptree-dot.sh: busy tree as DOT/SVG ($count nodes, no subtree_max_size)"
        else
            fail "pictures: vmaptree-dot.sh: busy tree" "$n nodes, the tree counts $count (or it shows subtree_max_size)"
        fi
    else
        fail "pictures: vmaptree-dot.sh busy failed" "$got"
    fi

    # The address-space pictures from the session's console.
    reasons=()
    for l in layout vasplit strip; do
        "$REPO_ROOT/scripts/vmmap-svg.sh" "$l" "$SH_LOG" "$dir/$l.svg" >/dev/null 2>"$dir/$l.err" ||
            reasons+=("vmmap-svg.sh $l: $(head -1 "$dir/$l.err")")
        [[ -s $dir/$l.svg ]] && { svg_ok "vmmap-svg.sh $l" "$dir/$l.svg" || reasons+=("$l.svg does not parse"); }
    done
    if ((${#reasons[@]})); then
        fail "pictures: vmmap-svg.sh: layout, vasplit, strip" "${reasons[@]}"
        return
    fi
    # layout: the three top-level regions; one box per vmallocinfo area.
    for l in 'linear map' 'vmalloc range' 'fixmap'; do
        grep -q ">$l" "$dir/layout.svg" || reasons+=("layout.svg: no '$l' box")
    done
    # The last vmallocinfo: the areas of the first plus the lazily freed 20K.
    reply_of vmallocinfo 2 >"$dir/vmallocinfo-2.txt"
    n=$(grep -c '^0x' "$dir/vmallocinfo-2.txt")
    got=$(xcount "$dir/strip.svg" "//*[local-name()='rect'][@class='busy' or @class='lazy']")
    ((got == n)) || reasons+=("strip.svg: $got area boxes, the last vmallocinfo lists $n")
    got=$(xcount "$dir/strip.svg" "//*[local-name()='rect'][@class='lazy']")
    want=$(grep -c 'unpurged vm_area' "$dir/vmallocinfo-2.txt")
    ((got == want && want > 0)) || reasons+=("strip.svg: $got lazily freed boxes, vmallocinfo has $want unpurged areas")
    # vasplit: the indices pt walked for the same address.
    reply_of "pt $io_va" >"$dir/pt.txt"
    local lvl
    for lvl in pgd pud pmd pte; do
        n=$(sed -n "s/^  L[0-3] $lvl\[\([0-9]*\)\].*/\1/p" "$dir/pt.txt")
        grep -q ">\[$n\]<" "$dir/vasplit.svg" && [[ -n $n ]] || reasons+=("vasplit.svg: pt walks $lvl[$n], the figure does not show [$n]")
    done
    grep -q "va = $io_va<" "$dir/vasplit.svg" || reasons+=("vasplit.svg: not drawn for $io_va")
    if ((${#reasons[@]})); then fail "pictures: vmmap-svg.sh: the pictures show what the kernel printed" "${reasons[@]}"; else
        pass "pictures: vmmap-svg.sh: layout (3 regions), strip (busy + lazily freed areas as vmallocinfo lists them), VA split (pt's indices)"
    fi
}

layer_pictures() {
    need_kernel || {
        fail "pictures: no kernel to boot (build failed)"
        return
    }
    mkdir -p "$LOG_DIR/pictures"
    spawn_boot pictures-bench "$PICTURES_TIMEOUT" -- -kernel "$TEST_IMAGE" -append \
        "bench=all bench.loops=20 test_vmalloc.test_loop_count=50 init_on_alloc=1 poweroff"
    pictures_shell
    wait_boots
    verify_boot "pictures: a short benchmark boot for the CSV" pictures-bench 0 '+bench: scaling: vmalloc invariants hold' &&
        pictures_bench
}
