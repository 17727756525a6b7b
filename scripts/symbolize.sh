#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Turn kernel addresses (an oops's pc/lr and Call trace) into function+offset
# and file:line, with gdb-multiarch in batch mode on the kernel ELF.
#
#   scripts/symbolize.sh [-e ELF] < oops.txt  the pc/lr and Call trace lines of a
#                                             log (or paste the oops, then Ctrl-D)
#   scripts/symbolize.sh [-e ELF] ADDR...     exact addresses (a pc, a function)
#   scripts/symbolize.sh [-e ELF] -r ADDR...  return addresses (lr, Call trace)
#
# Return addresses (lr and every Call trace entry but the pc) are looked up
# at ADDR-4, the `bl` that made the call, so the function and line are the
# call site's: a call that never returns can be a function's last
# instruction, and ADDR itself then names the next function (the Call trace
# entry of start_kernel, whose run_init never returns, named
# unmap_kernel_range_noflush). From a log this is automatic; given on the
# command line, mark them with -r (an exact address that is a function's
# first byte gets a warning, as it is most likely a return address).
# ELF defaults to the release build; for a test-suite log use
# target/test-logs/kernel/vmkernel (the kernel it ran), for a gdb.sh session
# target/aarch64-unknown-none/debugging/vmkernel.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

elf=$KERNEL_ELF
addrs=()   # as printed
lookups=() # where to look up the line
ret=0      # -r: the addresses that follow are return addresses
while (($#)); do
    case $1 in
    -e | --elf)
        elf=${2:?-e needs an ELF}
        shift 2
        ;;
    -h | --help)
        sed -n '3,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    -r | --return) ret=1 && shift ;;
    *)
        [[ $1 =~ ^(0x)?([0-9a-fA-F]+)$ ]] || die "not a hex address: $1"
        a=0x${BASH_REMATCH[2],,}
        addrs+=("$a")
        if ((ret)); then lookups+=("$(printf '0x%x' $((a - 4)))"); else lookups+=("$a"); fi
        shift
        ;;
    esac
done
[[ -f $elf ]] || die "no kernel ELF at $elf (build it, or pass -e ELF)"
ensure_tools gdb-multiarch

if ((${#addrs[@]} == 0)); then
    # An oops from stdin: "pc : X", "lr : X", and Call trace lines " X" / " X (pc)".
    re_reg='(pc|lr) : ([0-9a-f]{16})'
    re_trace='^(\[[ 0-9.]+\])?[[:space:]]+([0-9a-f]{16})( \(pc\))?[[:space:]]*$'
    while IFS= read -r line; do
        line=${line%$'\r'}
        if [[ $line =~ $re_reg ]]; then
            a=0x${BASH_REMATCH[2]}
            [[ ${BASH_REMATCH[1]} == pc ]] && l=$a || l=$(printf '0x%x' $((a - 4)))
        elif [[ $line =~ $re_trace ]]; then
            a=0x${BASH_REMATCH[2]}
            [[ -n ${BASH_REMATCH[3]} ]] && l=$a || l=$(printf '0x%x' $((a - 4)))
        else
            continue
        fi
        addrs+=("$a")
        lookups+=("$l")
    done
    ((${#addrs[@]})) || die "no addresses given and none found on stdin"
fi

# One gdb run for all addresses; @@ lines separate the answers.
gdb_args=()
for i in "${!addrs[@]}"; do
    gdb_args+=(-ex "echo @@ $i\\n" -ex "info symbol ${lookups[i]}" -ex "info line *${lookups[i]}")
done
gdb_out=$(gdb-multiarch -batch -nx "${gdb_args[@]}" "$elf" 2>&1) || die "gdb-multiarch failed: $gdb_out"

# Rust's legacy mangling leaves a ::h<hash> suffix on every name: drop it.
i=-1
sym=() loc=()
while IFS= read -r line; do
    if [[ $line =~ ^@@\ ([0-9]+) ]]; then
        i=${BASH_REMATCH[1]}
        sym[i]="??"
        loc[i]="??"
    elif ((i < 0)); then
        continue
    elif [[ $line =~ ^(.*)\ \+\ ([0-9]+)\ in\ section ]]; then
        sym[i]="${BASH_REMATCH[1]}+${BASH_REMATCH[2]}"
    elif [[ $line =~ ^(.*)\ in\ section ]]; then
        sym[i]="${BASH_REMATCH[1]}"
    elif [[ $line =~ ^Line\ ([0-9]+)\ of\ \"([^\"]*)\" ]]; then
        loc[i]="${BASH_REMATCH[2]}:${BASH_REMATCH[1]}"
    fi
done <<<"$gdb_out"

for i in "${!addrs[@]}"; do
    s=$(sed -E 's/::h[0-9a-f]{16}//g' <<<"${sym[i]:-??}")
    note=""
    if [[ ${lookups[i]} != "${addrs[i]}" ]]; then
        note="  (call site)"
    elif [[ $s != *+* && $s != "??" ]]; then
        note="  (a function's first byte: if this is a return address, use -r)"
    fi
    printf '%s  %s  %s%s\n' "$(printf '%016x' "${addrs[i]}")" "$s" "${loc[i]:-??}" "$note"
done
