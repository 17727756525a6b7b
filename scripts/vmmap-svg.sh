#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Pictures of the kernel's virtual address space, drawn as SVG from the
# numbers a running kernel printed (a console log), so they match the build.
#
#   scripts/vmmap-svg.sh layout LOG OUT.svg
#       the "Virtual kernel memory layout" lines (linear map, kernel image,
#       vmalloc range, fixmap) and, zoomed in, the start of the vmalloc range
#       from the vmallocinfo lines: one box per region or area, heights on a
#       log2 scale of the size (a 4 KiB page and 128 TiB in one picture),
#       holes drawn as such
#   scripts/vmmap-svg.sh vasplit LOG OUT.svg
#       how a virtual address splits into pgd/pud/pmd/pte indices and the
#       page offset (4 KiB pages, 48-bit VA: the walk `pt` and `lx-pgwalk`
#       print), for the first ioremap address of LOG's vmallocinfo
#   scripts/vmmap-svg.sh strip LOG OUT.svg
#       the used part of the vmalloc range as a strip, to scale: busy areas,
#       lazily freed ones ("unpurged vm_area", waiting for the purge) and the
#       free holes between them; from the LAST vmallocinfo listing in LOG
#       (a boot log, or a shell session after a vfree)
#
# LOG may contain carriage returns and printk timestamps.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '3,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

FONT='font-family="sans-serif" font-size="12"'

# svg_begin W H TITLE / svg_end
svg_begin() {
    printf '<?xml version="1.0" encoding="UTF-8"?>\n'
    printf '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s>\n' "$1" "$2" "$1" "$2" "$FONT"
    printf '<title>%s</title>\n<rect x="0" y="0" width="%d" height="%d" fill="white"/>\n' "$3" "$1" "$2"
    printf '<text x="10" y="20" font-size="15" font-weight="bold">%s</text>\n' "$3"
}
svg_end() { printf '</svg>\n'; }

# clean LOG: the log without carriage returns and printk timestamps.
clean() { tr -d '\r' <"$1" | sed 's/^\[[ 0-9.]*\] //'; }

# human BYTES: 4 KiB, 1.5 MiB, 128 TiB (the size a reader compares).
human() {
    awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB PiB", u, " "); i = 1
        while (b >= 1024 && i < 6) { b /= 1024; i++ }
        if (b == int(b)) printf "%d %s", b, u[i]; else printf "%.1f %s", b, u[i] }'
}

# log_height BYTES: a box height growing with log2 of the size.
log_height() {
    awk -v b="$1" 'BEGIN { l = (b > 4096) ? log(b / 4096) / log(2) : 0; printf "%d", 16 + 7 * l }'
}

# ---------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------

# Regions of "Virtual kernel memory layout": "NAME START END" lines.
layout_regions() {
    clean "$1" | sed -n '/^Virtual kernel memory layout:/,/^[^ ]/s/^ *\([.a-z]*\) *: *\(0x[0-9a-f]*\) - \(0x[0-9a-f]*\).*/\1 \2 \3/p'
}

# vmallocinfo areas of the last listing: "START END SIZE WHAT" lines.
vmallocinfo_areas() {
    clean "$1" | awk '
        /^vmallocinfo:$/ || /^vmkernel# vmallocinfo$/ { n = 0; next }
        $1 ~ /^0x[0-9a-f]+-0x[0-9a-f]+$/ && $2 ~ /^[0-9]+$/ {
            split($1, r, "-"); what = ""
            if ($0 ~ /unpurged vm_area/) what = "lazy"
            else if ($0 ~ / ioremap/) what = "ioremap"
            else if ($0 ~ / vmalloc/) what = "vmalloc"
            else if ($0 ~ /vm_map_ram/) what = "vm_map_ram"
            else if ($0 ~ / vmap/) what = "vmap"
            line[++n] = r[1] " " r[2] " " $2 " " what " " $3
        }
        END { for (i = 1; i <= n; i++) print line[i] }'
}

draw_layout() {
    local log=$1 regions=() name start end size y=50 h x=20 w=300 fill label
    local vm_start= vm_end= vm_y= vm_h= prev_end=$((0xffff000000000000))
    mapfile -t regions < <(layout_regions "$log")
    ((${#regions[@]})) || die "vmmap-svg: no 'Virtual kernel memory layout' lines in $log"
    local areas=()
    mapfile -t areas < <(vmallocinfo_areas "$log")
    local body=$WORK/layout.body
    : >"$body"
    # Left column: the kernel half of the address space, from the start of
    # the linear map to the top, regions and holes in address order. The
    # image sections lie inside the vmalloc range: they are drawn on the right.
    local sorted
    sorted=$(printf '%s\n' "${regions[@]}" | awk '$1 !~ /^\./' | sort -k2,2)
    {
        printf '<text x="%d" y="42" font-weight="bold">the kernel half of the address space (box height: log2 of the size)</text>\n' "$x"
        while read -r name start end; do
            if ((start - prev_end > 0)); then
                size=$((start - prev_end))
                h=$(log_height "$size")
                printf '<rect x="%d" y="%d" width="%d" height="%d" fill="#f4f4f4" stroke="#999" stroke-dasharray="4 3"/>\n' "$x" "$y" "$w" "$h"
                printf '<text x="%d" y="%d" fill="#666">hole: %s</text>\n' $((x + 10)) $((y + h / 2 + 4)) "$(human "$size")"
                y=$((y + h))
            fi
            size=$((end - start))
            h=$(log_height "$size")
            case $name in
            linear) fill='#cfe2f3' label='linear map (all RAM, PAGE_OFFSET)' ;;
            vmalloc) fill='#d9ead3' label='vmalloc range (kernel image at its start)' ;;
            fixed) fill='#fce5cd' label='fixmap (boot console, FIX_PTE..FIX_PGD)' ;;
            *) fill='#eeeeee' label=$name ;;
            esac
            printf '<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="black"/>\n' "$x" "$y" "$w" "$h" "$fill"
            printf '<text x="%d" y="%d" font-weight="bold">%s</text>\n' $((x + 10)) $((y + h / 2 - 2)) "$label"
            printf '<text x="%d" y="%d">%s</text>\n' $((x + 10)) $((y + h / 2 + 13)) "$(human "$size")"
            printf '<text x="%d" y="%d" font-family="monospace" font-size="11">%s</text>\n' $((x + w + 6)) $((y + 10)) "$start"
            if [[ $name == vmalloc ]]; then vm_start=$start vm_end=$end vm_y=$y vm_h=$h; fi
            y=$((y + h))
            prev_end=$end
        done <<<"$sorted"
        printf '<text x="%d" y="%d" font-family="monospace" font-size="11">%s</text>\n' $((x + w + 6)) "$y" "$(printf '%#x' "$prev_end")"
    } >>"$body"
    local left_bottom=$y
    # Right column: the start of the vmalloc range, area by area.
    local rx=520 rw=300 ry=50
    {
        printf '<text x="%d" y="42" font-weight="bold">the start of the vmalloc range (vmallocinfo)</text>\n' "$rx"
        local a_start a_end a_size what caller prev=$vm_start
        # The image sections name the first three areas.
        declare -A section=()
        while read -r name start end; do section[$start]=$name; done < <(printf '%s\n' "${regions[@]}" | awk '$1 ~ /^\./')
        while read -r a_start a_end a_size what caller; do
            [[ -n $a_start ]] || continue
            if ((a_start - prev > 0)); then
                size=$((a_start - prev))
                h=$(log_height "$size")
                printf '<rect x="%d" y="%d" width="%d" height="%d" fill="#f4f4f4" stroke="#999" stroke-dasharray="4 3"/>\n' "$rx" "$ry" "$rw" "$h"
                printf '<text x="%d" y="%d" fill="#666">free: %s</text>\n' $((rx + 10)) $((ry + h / 2 + 4)) "$(human "$size")"
                ry=$((ry + h))
            fi
            h=$(log_height "$a_size")
            label=$what
            [[ -n ${section[$a_start]:-} ]] && label="kernel image ${section[$a_start]}"
            case $what in
            ioremap) fill='#fce5cd' ;;
            lazy) fill='#f9cb9c' label='lazily freed (unpurged)' ;;
            vmalloc) fill='#b6d7a8' ;;
            *) fill='#cfe2f3' ;;
            esac
            printf '<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="black"/>\n' "$rx" "$ry" "$rw" "$h" "$fill"
            printf '<text x="%d" y="%d">%s, %s</text>\n' $((rx + 8)) $((ry + h / 2 + 4)) "$label" "$(human "$a_size")"
            printf '<text x="%d" y="%d" font-family="monospace" font-size="11">%s</text>\n' $((rx + rw + 6)) $((ry + 10)) "$a_start"
            printf '<text x="%d" y="%d" font-size="10" fill="#555">%s</text>\n' $((rx + rw + 6)) $((ry + 22)) "$caller"
            ry=$((ry + h))
            prev=$a_end
        done < <(printf '%s\n' "${areas[@]}")
        if [[ -n $vm_end ]]; then
            size=$((vm_end - prev))
            printf '<rect x="%d" y="%d" width="%d" height="40" fill="#f4f4f4" stroke="#999" stroke-dasharray="4 3"/>\n' "$rx" "$ry" "$rw"
            printf '<text x="%d" y="%d" fill="#666">free to the end of the range: %s (not to scale)</text>\n' $((rx + 10)) $((ry + 24)) "$(human "$size")"
            ry=$((ry + 40))
            printf '<text x="%d" y="%d" font-family="monospace" font-size="11">%s</text>\n' $((rx + rw + 6)) "$ry" "$vm_end"
            # The zoom: lines from the top of the vmalloc box to the right column.
            printf '<line x1="%d" y1="%d" x2="%d" y2="50" stroke="#6aa84f" stroke-dasharray="3 3"/>\n' $((x + w)) "$vm_y" "$rx"
            printf '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#6aa84f" stroke-dasharray="3 3"/>\n' $((x + w)) $((vm_y + vm_h)) "$rx" "$ry"
        fi
    } >>"$body"
    local height=$((left_bottom > ry ? left_bottom : ry))
    svg_begin 1000 $((height + 30)) "vmkernel: virtual memory layout (from the boot log)"
    cat "$body"
    svg_end
}

# ---------------------------------------------------------------------------
# vasplit
# ---------------------------------------------------------------------------

draw_vasplit() {
    local log=$1 va
    va=$(vmallocinfo_areas "$log" | awk '$4 == "ioremap" { print $1; exit }')
    [[ -n $va ]] || va=$(vmallocinfo_areas "$log" | awk '{ print $1; exit }')
    [[ -n $va ]] || die "vmmap-svg: no vmallocinfo lines in $log to take an address from"
    local v=$((va))
    # Fields, high bit to low bit: name, high, low, colour, what it is.
    local fields=(
        "sign|63|48|#eeeeee|all ones: TTBR1_EL1 (kernel half)"
        "pgd|47|39|#cfe2f3|L0 index: pgd[]"
        "pud|38|30|#d9ead3|L1 index: pud[]"
        "pmd|29|21|#fff2cc|L2 index: pmd[]"
        "pte|20|12|#fce5cd|L3 index: pte[]"
        "offset|11|0|#ead1dc|byte in the 4 KiB page"
    )
    local x0=20 bitw=14 y=70 f name hi lo fill what x w idx bits
    svg_begin $((x0 * 2 + 64 * bitw)) 300 "How a virtual address splits (4 KiB pages, 48-bit VA, 4 levels)"
    printf '<text x="%d" y="45" font-family="monospace" font-size="14">va = %s</text>\n' "$x0" "$va"
    for f in "${fields[@]}"; do
        IFS='|' read -r name hi lo fill what <<<"$f"
        x=$((x0 + (63 - hi) * bitw)) w=$(((hi - lo + 1) * bitw))
        idx=$(((v >> lo) & ((1 << (hi - lo + 1)) - 1)))
        bits=$(awk -v n="$idx" -v k=$((hi - lo + 1)) 'BEGIN { s = ""; for (i = 0; i < k; i++) { s = (n % 2) s; n = int(n / 2) } print s }')
        printf '<rect x="%d" y="%d" width="%d" height="40" fill="%s" stroke="black"/>\n' "$x" "$y" "$w" "$fill"
        printf '<text x="%d" y="%d" text-anchor="middle" font-family="monospace" font-size="%d">%s</text>\n' $((x + w / 2)) $((y + 25)) $((hi - lo + 1 > 12 ? 11 : 13)) "$bits"
        printf '<text x="%d" y="%d" font-size="10">%d</text>\n' $((x + 2)) $((y - 4)) "$hi"
        printf '<text x="%d" y="%d" font-weight="bold" text-anchor="middle">%s</text>\n' $((x + w / 2)) $((y + 62)) "$name"
        if [[ $name == offset ]]; then
            printf '<text x="%d" y="%d" text-anchor="middle" font-family="monospace">%#x</text>\n' $((x + w / 2)) $((y + 80)) "$idx"
        elif [[ $name != sign ]]; then
            printf '<text x="%d" y="%d" text-anchor="middle" font-family="monospace">[%d]</text>\n' $((x + w / 2)) $((y + 80)) "$idx"
        fi
        printf '<text x="%d" y="%d" text-anchor="middle" font-size="10">%s</text>\n' $((x + w / 2)) $((y + 96)) "${what%%:*}"
        [[ $what == *:* ]] && printf '<text x="%d" y="%d" text-anchor="middle" font-size="10">%s</text>\n' $((x + w / 2)) $((y + 108)) "${what#*: }"
    done
    local pgd=$(((v >> 39) & 511)) pud=$(((v >> 30) & 511)) pmd=$(((v >> 21) & 511)) pte=$(((v >> 12) & 511))
    printf '<text x="%d" y="%d" font-family="monospace">vmkernel# pt %s</text>\n' "$x0" $((y + 140)) "$va"
    printf '<text x="%d" y="%d" font-family="monospace">  L0 pgd[%d] ... L1 pud[%d] ... L2 pmd[%d] ... L3 pte[%d] ... =&gt; pa + %#x</text>\n' \
        "$x0" $((y + 158)) "$pgd" "$pud" "$pmd" "$pte" $((v & 4095))
    printf '<text x="%d" y="%d" font-size="11" fill="#555">A block mapping stops early: a 1 GiB L1 block uses bits 29..0 as its offset, a 2 MiB L2 block bits 20..0.</text>\n' "$x0" $((y + 185))
    svg_end
}

# ---------------------------------------------------------------------------
# strip
# ---------------------------------------------------------------------------

draw_strip() {
    local log=$1 areas=() first last span
    mapfile -t areas < <(vmallocinfo_areas "$log")
    ((${#areas[@]})) || die "vmmap-svg: no vmallocinfo lines in $log"
    first=$(printf '%s\n' "${areas[@]}" | awk '{ print $1 }' | sort | head -1)
    last=$(printf '%s\n' "${areas[@]}" | awk '{ print $2 }' | sort | tail -1)
    span=$((last - first))
    local x0=20 w=960 y=60 h=50 a_start a_end a_size what caller x1 x2 fill prev=$first
    local nbusy=0 nlazy=0 nfree=0
    local body=$WORK/strip.body
    : >"$body"
    while read -r a_start a_end a_size what caller; do
        # Holes between listed areas: free in the free tree.
        if ((a_start - prev > 0)); then
            x1=$(awk -v o=$((prev - first)) -v s="$span" -v x="$x0" -v w="$w" 'BEGIN { printf "%.2f", x + w * o / s }')
            x2=$(awk -v o=$((a_start - first)) -v s="$span" -v x="$x0" -v w="$w" 'BEGIN { printf "%.2f", x + w * o / s }')
            printf '<rect class="free" x="%s" y="%d" width="%s" height="%d" fill="#eeeeee" stroke="#999"><title>free %s</title></rect>\n' \
                "$x1" "$y" "$(awk -v a="$x1" -v b="$x2" 'BEGIN { printf "%.2f", b - a }')" "$h" "$(human $((a_start - prev)))" >>"$body"
            nfree=$((nfree + 1))
        fi
        x1=$(awk -v o=$((a_start - first)) -v s="$span" -v x="$x0" -v w="$w" 'BEGIN { printf "%.2f", x + w * o / s }')
        x2=$(awk -v o=$((a_end - first)) -v s="$span" -v x="$x0" -v w="$w" 'BEGIN { printf "%.2f", x + w * o / s }')
        if [[ $what == lazy ]]; then
            fill='#e69138' nlazy=$((nlazy + 1))
        else
            fill='#3d85c6' nbusy=$((nbusy + 1))
        fi
        printf '<rect class="%s" x="%s" y="%d" width="%s" height="%d" fill="%s" stroke="black" stroke-width="0.5"><title>%s-%s %s %s %s</title></rect>\n' \
            "$([[ $what == lazy ]] && echo lazy || echo busy)" "$x1" "$y" "$(awk -v a="$x1" -v b="$x2" 'BEGIN { printf "%.2f", (b - a < 1) ? 1 : b - a }')" "$h" "$fill" \
            "$a_start" "$a_end" "$(human "$a_size")" "$what" "$caller" >>"$body"
        ((a_end > prev)) && prev=$a_end
    done < <(printf '%s\n' "${areas[@]}" | sort)
    svg_begin 1000 190 "vmallocinfo as a strip: the used part of the vmalloc range, to scale"
    cat "$body"
    printf '<text x="%d" y="%d" font-family="monospace" font-size="11">%s</text>\n' "$x0" $((y + h + 16)) "$first"
    printf '<text x="%d" y="%d" font-family="monospace" font-size="11" text-anchor="end">%s</text>\n' $((x0 + w)) $((y + h + 16)) "$last"
    printf '<text x="%d" y="%d" text-anchor="middle">%s</text>\n' $((x0 + w / 2)) $((y + h + 16)) "$(human "$span")"
    local ly=$((y + h + 45))
    printf '<rect x="%d" y="%d" width="14" height="14" fill="#3d85c6"/><text x="%d" y="%d">busy (%d)</text>\n' "$x0" $((ly - 11)) $((x0 + 20)) "$ly" "$nbusy"
    printf '<rect x="%d" y="%d" width="14" height="14" fill="#e69138"/><text x="%d" y="%d">lazily freed, waiting for the purge (%d)</text>\n' $((x0 + 120)) $((ly - 11)) $((x0 + 140)) "$ly" "$nlazy"
    printf '<rect x="%d" y="%d" width="14" height="14" fill="#eeeeee" stroke="#999"/><text x="%d" y="%d">free (%d holes; the rest of the range above is free too)</text>\n' $((x0 + 420)) $((ly - 11)) $((x0 + 440)) "$ly" "$nfree"
    svg_end
}

main() {
    (($# == 1)) && [[ $1 == -h || $1 == --help ]] && usage && return 0
    (($# == 3)) || { usage >&2 && die "expected: KIND LOG OUT.svg"; }
    local kind=$1 log=$2 out=$3
    [[ -r $log ]] || die "vmmap-svg: cannot read $log"
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    case $kind in
    layout | vasplit | strip) "draw_$kind" "$log" >"$out.tmp" ;;
    *) usage >&2 && die "unknown picture: $kind (layout, vasplit, strip)" ;;
    esac
    mv -f "$out.tmp" "$out"
    printf '%s\n' "$out"
}

main "$@"
