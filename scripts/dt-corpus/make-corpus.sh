#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Build the device-tree corpus: QEMU's own trees for many machine
# configurations (dumpdtb), hand edits of them for the cases Linux accepts
# (scripts/dt-corpus/*.dtsi fragments + small sed edits through dtc), and
# truncated/corrupted blobs.
#
#   scripts/dt-corpus/make-corpus.sh OUT_DIR IMAGE
#
# Writes OUT_DIR/NAME.dtb for every entry and OUT_DIR/corpus.list, one
# boot per line, tab-separated:
#   NAME  MODE  QEMU_ARGS  WANT  SPEC...
# MODE: stub (the generic-loader boot stub: QEMU does not touch the DTB) or
# dtb (-kernel IMAGE -dtb NAME.dtb: QEMU edits it in place with libfdt).
# QEMU_ARGS: the machine options the boot needs (space-separated; "-" for
# none, since read collapses empty tab-separated fields).
# WANT/SPEC: as scripts/test.sh's verify_boot (0 or fail; +RE !RE 1RE).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"

OUT=${1:?usage: make-corpus.sh OUT_DIR IMAGE}
IMAGE=${2:?usage: make-corpus.sh OUT_DIR IMAGE}
mkdir -p "$OUT"
LIST=$OUT/corpus.list
: >"$LIST"
T=$'\t'
OK_SPECS=("+reboot: Power down" "!Oops|Kernel panic|BUG")

# entry NAME MODE QEMU_ARGS WANT SPEC...
entry() {
    local IFS=$T name=$1 mode=$2 args=${3:--}
    shift 3
    printf '%s\n' "$name$T$mode$T$args$T$*" >>"$LIST"
}

# dump NAME "QEMU args...": QEMU's own tree with bootargs "poweroff".
dump() {
    local name=$1 args
    read -ra args <<<"$2"
    qemu_cmd -kernel "$IMAGE" -append poweroff "${args[@]}"
    local m i
    # dumpdtb goes into the (last) -machine option list.
    m=(); for i in "${!QEMU_CMD[@]}"; do [[ ${QEMU_CMD[i]} == -machine ]] && m+=("$((i + 1))"); done
    QEMU_CMD[${m[-1]}]+=",dumpdtb=$OUT/$name.dtb"
    "${QEMU_CMD[@]}" </dev/null >"$OUT/$name.dump.log" 2>&1 || { cat "$OUT/$name.dump.log"; return 1; }
    dtc -q -I dtb -O dts -o "$OUT/$name.dts" "$OUT/$name.dtb"
}

# compile NAME: NAME.dts -> NAME.dtb
compile() { dtc -q -I dts -O dtb -o "$OUT/$1.dtb" "$OUT/$1.dts"; }

# add_nodes NAME FILE: FILE's nodes appended inside the root node.
add_nodes() {
    local dts=$OUT/$1.dts
    sed -i '$d' "$dts" # the root's closing "};"
    cat "$2" >>"$dts"
    echo "};" >>"$dts"
}

# set_memory NAME FILE: QEMU's memory node(s) replaced by FILE's.
set_memory() {
    local dts=$OUT/$1.dts
    sed -i '/^\tmemory@[0-9a-f]* {/,/^\t};/d' "$dts"
    add_nodes "$1" "$2"
}

# derive NEW FROM: a copy of FROM's source to edit.
derive() { cp "$OUT/$2.dts" "$OUT/$1.dts"; }

# require NAME REGEX: the edit really happened.
require() { grep -Eq -- "$2" "$OUT/$1.dts" || { echo "edit of $1 did not apply: $2" >&2; return 1; }; }

# ---- QEMU's own trees (booted on the machine they describe) -------------
NUMA="-object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1"
while IFS='|' read -r name dumpargs bootargs specs; do
    dump "$name" "$dumpargs"
    read -ra s <<<"$specs"
    entry "$name" stub "$bootargs" 0 "${OK_SPECS[@]}" "${s[@]//@/ }"
done <<EOT
qemu-a53-128M|-cpu cortex-a53 -m 128M|-cpu cortex-a53 -m 128M|+RAM:@128@MiB@in@1@bank
qemu-a72-1G|-cpu cortex-a72 -m 1G|-cpu cortex-a72 -m 1G|+RAM:@1024@MiB@in@1@bank
qemu-max-4G|-cpu max -m 4G|-cpu max -m 4G|+RAM:@4096@MiB@in@1@bank
qemu-smp1|-smp 1|-smp 1|+smp:@1@CPU
qemu-smp4|-smp 4|-smp 4|+smp:@4@CPU
qemu-numa2|-smp 2 -m 2G $NUMA|-smp 2 -m 2G $NUMA|+on@node@1 +page_alloc:@2@zone +Initmem@setup@node@1@\[mem@0x0000000080000000-0x00000000bfffffff\] +smp:@Brought@up@2@nodes
qemu-virt-el2|-machine virtualization=on|-machine virtualization=on|+at@EL2, +conduit:@smc
qemu-gicv3|-machine gic-version=3|-machine gic-version=3|+RAM:@1024@MiB
qemu-a53-virt-gicv3-4G|-cpu cortex-a53 -m 4G -machine virtualization=on,gic-version=3|-cpu cortex-a53 -m 4G -machine virtualization=on,gic-version=3|+RAM:@4096@MiB
EOT
# secure=on: a CPU started by the generic loader would enter at EL3, where
# the kernel (like Linux) does not run; boot the secure tree (extra secure-only
# nodes, status = "disabled" secure UART) on the non-secure machine.
dump qemu-secure "-machine secure=on"
entry qemu-secure stub "" 0 "${OK_SPECS[@]}" "+earlycon: pl011 at MMIO 0x0000000009000000"

# ---- section 2: -dtb (QEMU edits the file with libfdt: FDT_NOPs) ---------
cp "$OUT/qemu-a72-1G.dtb" "$OUT/dtb-dump.dtb"
entry dtb-dump dtb "" 0 "${OK_SPECS[@]}" "+fdt: [0-9]+ bytes at physical .*\([1-9][0-9]* FDT_NOP token"
dtc -q -I dtb -O dts "$OUT/qemu-a72-1G.dtb" | dtc -q -I dts -O dtb -o "$OUT/dtb-dtc-roundtrip.dtb"
entry dtb-dtc-roundtrip dtb "" 0 "${OK_SPECS[@]}" "+RAM: 1024 MiB in 1 bank"
derive dtb-reserved-memory qemu-a72-1G
add_nodes dtb-reserved-memory "$HERE/reserved-memory.dtsi"
compile dtb-reserved-memory
entry dtb-reserved-memory dtb "-append ktest=boot.dt_reservations_never_allocated" 0 \
    "!Oops|Kernel panic" \
    "+reserved\[0x[0-9a-f]+\].*\[0x0000000050000000-0x00000000501fffff\].*reserved-memory, no-map" \
    "+reserved\[0x[0-9a-f]+\].*\[0x0000000060000000-0x00000000603fffff\].*reserved-memory " \
    "+ok 1 dt_reservations_never_allocated" "+ktest: 1 passed, 0 failed"

# ---- section 3: trees Linux accepts --------------------------------------
derive two-banks-hole qemu-a72-1G
set_memory two-banks-hole "$HERE/two-banks-hole.dtsi"
compile two-banks-hole
entry two-banks-hole stub "" 0 "${OK_SPECS[@]}" "+RAM: 512 MiB in 2 bank" "+page_alloc: 2 zone"

derive unaligned-bank qemu-a72-1G
set_memory unaligned-bank "$HERE/unaligned-bank.dtsi"
compile unaligned-bank
entry unaligned-bank stub "" 0 "${OK_SPECS[@]}" \
    "1memblock: memory bank \[0x0000000040000800-0x000000007ffff7ff\] is not page-aligned; using \[0x0000000040001000-0x000000007fffefff\]"

derive overlapping-banks qemu-a72-1G
set_memory overlapping-banks "$HERE/overlapping-banks.dtsi"
compile overlapping-banks
entry overlapping-banks stub "" 0 "${OK_SPECS[@]}" "+Memory: [0-9]+K/1048576K available" "+page_alloc: 1 zone"

derive forty-banks qemu-a72-1G
{
    for i in $(seq 0 39); do
        printf '\tmemory@%x {\n\t\tdevice_type = "memory";\n\t\treg = <0x00 %#x 0x00 0xc00000>;\n\t};\n' \
            $((0x40000000 + i * 0x1000000)) $((0x40000000 + i * 0x1000000))
    done
} >"$OUT/forty-banks.dtsi"
set_memory forty-banks "$OUT/forty-banks.dtsi"
compile forty-banks
entry forty-banks stub "" 0 "${OK_SPECS[@]}" "+RAM: 480 MiB in 40 bank" "+page_alloc: 16 zone"

long=$(printf 'x%.0s' $(seq 1 1071)) # "poweroff " + 1071 = 1080 bytes
derive bootargs-1080 qemu-a72-1G
sed -i "s/bootargs = \"poweroff\"/bootargs = \"poweroff $long\"/" "$OUT/bootargs-1080.dts"
require bootargs-1080 "poweroff x{1071}\""
compile bootargs-1080
entry bootargs-1080 stub "" 0 "${OK_SPECS[@]}" "+Kernel command line: poweroff x{1071}" "!truncated"

long=$(printf 'y%.0s' $(seq 1 2091)) # 2100 bytes
derive bootargs-2100 qemu-a72-1G
sed -i "s/bootargs = \"poweroff\"/bootargs = \"poweroff $long\"/" "$OUT/bootargs-2100.dts"
require bootargs-2100 "poweroff y{2091}\""
compile bootargs-2100
entry bootargs-2100 stub "" 0 "${OK_SPECS[@]}" \
    "1/chosen/bootargs is 2100 bytes; truncated to COMMAND_LINE_SIZE - 1 = 2047" "+Kernel command line: poweroff y{2038}.?$"

model=$(printf 'M%.0s' $(seq 1 200))
derive model-200 qemu-a72-1G
sed -i "s/model = \"linux,dummy-virt\"/model = \"$model\"/" "$OUT/model-200.dts"
require model-200 "M{200}"
compile model-200
entry model-200 stub "" 0 "${OK_SPECS[@]}" "+Machine model: M{200}"

derive forty-reserved qemu-a72-1G
{
    printf '\treserved-memory {\n\t\t#address-cells = <0x02>;\n\t\t#size-cells = <0x02>;\n\t\tranges;\n'
    for i in $(seq 0 39); do
        # 48-character node names (the old limit was 32).
        printf '\t\tvery-long-reserved-memory-region-name-%02d@%x {\n\t\t\treg = <0x00 %#x 0x00 0x10000>;\n%s\t\t};\n' \
            "$i" $((0x70000000 + i * 0x100000)) $((0x70000000 + i * 0x100000)) \
            "$( ((i % 2)) && printf '\t\t\tno-map;\n')"
    done
    printf '\t};\n'
} >"$OUT/forty-reserved.dtsi"
add_nodes forty-reserved "$OUT/forty-reserved.dtsi"
compile forty-reserved
entry forty-reserved stub "" 0 "${OK_SPECS[@]}" "+ reserved.cnt  = 0x28" \
    "+reserved\[0x27\].*very-long-reserved-memory-region-name-39@72700000"

derive smc-without-el3 qemu-a72-1G
sed -i 's/method = "hvc"/method = "smc"/' "$OUT/smc-without-el3.dts"
require smc-without-el3 'method = "smc"'
compile smc-without-el3
entry smc-without-el3 stub "" 0 "${OK_SPECS[@]}" \
    "1psci: DT says conduit smc but EL3 is not implemented; PSCI disabled"

# hvc while the kernel itself was entered at EL2: nothing above answers.
derive hvc-from-el2 qemu-virt-el2
sed -i 's/method = "smc"/method = "hvc"/' "$OUT/hvc-from-el2.dts"
require hvc-from-el2 'method = "hvc"'
compile hvc-from-el2
entry hvc-from-el2 stub "-machine virtualization=on" 0 "${OK_SPECS[@]}" \
    "1psci: DT says conduit hvc but the kernel was entered at EL2, so no hypervisor is there; PSCI disabled"

# A numa-node-id beyond MAX_NUMNODES (4): NUMA off, one node, as Linux's
# failed of_numa_init.
derive numa-node-id-7 qemu-numa2
sed -i '/^\tmemory@80000000 {/,/^\t};/s/numa-node-id = <0x01>/numa-node-id = <0x07>/' "$OUT/numa-node-id-7.dts"
require numa-node-id-7 'numa-node-id = <0x07>'
compile numa-node-id-7
entry numa-node-id-7 stub "-smp 2 -m 2G" 0 "${OK_SPECS[@]}" \
    "1NUMA: numa-node-id 7 >= MAX_NUMNODES \(4\); NUMA off, all memory and CPUs on node 0" \
    "+Initmem setup node 0 \[mem 0x0000000040000000-0x00000000bfffffff\]" "!Initmem setup node 1" \
    "+smp: Brought up 1 node, 2 CPUs"

# A second bank smaller than a page: dropped with one line.
derive sub-page-bank qemu-a72-1G
printf '\tmemory@80000000 {\n\t\tdevice_type = "memory";\n\t\treg = <0x00 0x80000400 0x00 0x800>;\n\t};\n' \
    >"$OUT/sub-page-bank.dtsi"
add_nodes sub-page-bank "$OUT/sub-page-bank.dtsi"
compile sub-page-bank
entry sub-page-bank stub "" 0 "${OK_SPECS[@]}" \
    "1memblock: memory bank \[0x0000000080000400-0x0000000080000bff\] holds no whole 4 KiB page; ignored" \
    "+Memory: [0-9]+K/1048576K available"

derive pl011-elsewhere qemu-a72-1G
sed -i -e 's/pl011@9000000/pl011@9100000/g' -e '/^\tpl011@9100000 {/,/^\t};/s/reg = <0x00 0x9000000 /reg = <0x00 0x9100000 /' \
    "$OUT/pl011-elsewhere.dts"
require pl011-elsewhere 'reg = <0x00 0x9100000 0x00 0x1000>'
compile pl011-elsewhere
entry pl011-elsewhere stub "" 0 "${OK_SPECS[@]}" "+PL011 at 0x9100000 differs from the boot console"

# ---- malformed blobs: one panic line, failure status ---------------------
PANIC='Kernel panic - not syncing: bad device tree'
good=$OUT/qemu-a72-1G.dtb
size=$(stat -c %s "$good")
# be32 FILE OFFSET VALUE
be32() { printf '%b' "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($3 >> 24 & 255)) $(($3 >> 16 & 255)) $(($3 >> 8 & 255)) $(($3 & 255)))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
rd32() { od -An -tu1 -j "$2" -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}'; }
off_struct=$(rd32 "$good" 8)
head -c $((off_struct + 600)) "$good" >"$OUT/bad-truncated.dtb"
entry bad-truncated stub "" fail "1Kernel panic - not syncing:" "+$PANIC" "!Oops"
cp "$good" "$OUT/bad-version.dtb" && be32 "$OUT/bad-version.dtb" 20 1 && be32 "$OUT/bad-version.dtb" 24 1
entry bad-version stub "" fail "1Kernel panic - not syncing:" "+$PANIC.*unsupported device tree version 1" "!Oops"
cp "$good" "$OUT/bad-struct-offset.dtb" && be32 "$OUT/bad-struct-offset.dtb" 8 $((size + 64))
entry bad-struct-offset stub "" fail "1Kernel panic - not syncing:" "+$PANIC.*structure block" "!Oops"
cp "$good" "$OUT/bad-token.dtb" && be32 "$OUT/bad-token.dtb" "$off_struct" 0x77
entry bad-token stub "" fail "1Kernel panic - not syncing:" "+$PANIC.*unknown token 0x77" "!Oops"
cp "$good" "$OUT/bad-magic.dtb" && be32 "$OUT/bad-magic.dtb" 0 0xdeadbeef
entry bad-magic stub "" fail "1Kernel panic - not syncing:" "+$PANIC.*magic 0xdeadbeef" "!Oops"
cp "$good" "$OUT/bad-strings.dtb" && be32 "$OUT/bad-strings.dtb" 32 $((size * 4))
entry bad-strings stub "" fail "1Kernel panic - not syncing:" "+$PANIC.*strings block" "!Oops"
echo "corpus: $(wc -l <"$LIST") boots in $LIST"
