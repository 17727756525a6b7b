# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; it defines functions and
# variables only (no cd, no side effects), so callers keep their cwd and
# relative paths given by the user stay valid.
#
#   ensure_tools            install missing host tools (apt) and the pinned Rust toolchain
#   build_kernel            cargo build + objcopy -> $KERNEL_IMAGE (the ELF stays for GDB)
#   prepare_kernel BUILD    build_kernel, or (BUILD=0) the Image from the ELF already built
#   make_image ELF IMAGE    flat arm64 Image from an ELF
#   qemu_cmd ARGS...        QEMU_CMD=(qemu + the default machine + ARGS)
#   boot_capture NAME SECS [--stdin FILE] -- ARGS...
#                           boot with a timeout, log to $LOG_DIR/NAME.log
#   write_boot_stub FILE DTB_ADDR KERNEL_ADDR
#                           32-byte AArch64 "boot loader": x0 = DTB, jump to the kernel

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
KERNEL_TRIPLE=aarch64-unknown-none
KERNEL_ELF=$TARGET_DIR/$KERNEL_TRIPLE/release/vmkernel
KERNEL_IMAGE=$TARGET_DIR/$KERNEL_TRIPLE/release/Image
LOG_DIR=$TARGET_DIR/test-logs

QEMU_BIN=${QEMU:-qemu-system-aarch64}
# The default machine, read from scripts/qemu-defaults: the one place every
# QEMU the project starts (these scripts and the host tests) takes its
# defaults from. Arguments appended after them win (see that file).
QEMU_DEFAULTS_FILE=$REPO_ROOT/scripts/qemu-defaults
mapfile -t QEMU_DEFAULTS < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$QEMU_DEFAULTS_FILE")
((${#QEMU_DEFAULTS[@]})) || { printf 'error: no QEMU defaults in %s\n' "$QEMU_DEFAULTS_FILE" >&2; exit 1; }

info() { printf '%s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# command -> Debian/Ubuntu package that provides it.
declare -A TOOL_PACKAGE=(
    [qemu-system-aarch64]=qemu-system-arm
    [dtc]=device-tree-compiler
    [gdb-multiarch]=gdb-multiarch
    [timeout]=coreutils
    [gnuplot]=gnuplot-nox
    [dot]=graphviz
    [xmllint]=libxml2-utils
)
APT_UPDATED=${APT_UPDATED:-0}

# ensure_tools [COMMAND...]: make sure the host tools (all of TOOL_PACKAGE by
# default) and the pinned Rust toolchain are there. Quiet when nothing is
# missing; installs with apt as root; otherwise prints the command and fails.
# shellcheck disable=SC2120 # the arguments are optional
ensure_tools() {
    local cmds=("$@") missing=() cmd
    ((${#cmds[@]})) || cmds=("${!TOOL_PACKAGE[@]}")
    for cmd in "${cmds[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${TOOL_PACKAGE[$cmd]:?no package known for $cmd}")
    done
    if ((${#missing[@]})); then
        # Several commands can come from one package.
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        local install=(apt-get install -y --no-install-recommends "${missing[@]}")
        if ((EUID != 0)) || ! command -v apt-get >/dev/null 2>&1; then
            info "missing host packages: ${missing[*]}"
            info "install them with:"
            info "  sudo apt-get update && sudo ${install[*]}"
            exit 1
        fi
        info "installing: ${missing[*]}"
        if ((!APT_UPDATED)); then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
            APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null || die "${install[*]} failed"
        for cmd in "${cmds[@]}"; do
            command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing ${TOOL_PACKAGE[$cmd]}"
        done
    fi
    ensure_rust
}

# The toolchain, target and llvm-tools named in rust-toolchain.toml.
ensure_rust() {
    command -v rustup >/dev/null 2>&1 || die "rustup not found; install it from https://rustup.rs"
    if [[ -x $(objcopy_path 2>/dev/null) ]] &&
        (cd "$REPO_ROOT" && rustup target list --installed 2>/dev/null) | grep -qx "$KERNEL_TRIPLE"; then
        return 0
    fi
    info "installing the Rust toolchain pinned in rust-toolchain.toml"
    # rustup >= 1.28 installs the toolchain file's toolchain with a bare
    # `toolchain install`; older rustup did it as a side effect of `show`.
    (cd "$REPO_ROOT" && { rustup toolchain install >/dev/null 2>&1 || rustup show >/dev/null; }) ||
        die "could not install the pinned Rust toolchain"
    [[ -x $(objcopy_path) ]] || die "rust-objcopy missing: run 'rustup component add llvm-tools' in $REPO_ROOT"
}

# rust-objcopy from the pinned toolchain's llvm-tools (not on PATH).
objcopy_path() {
    (
        cd "$REPO_ROOT" || exit 1
        local sysroot host
        sysroot=$(rustc --print sysroot) && host=$(rustc -vV | sed -n 's/^host: //p') || exit 1
        printf '%s\n' "$sysroot/lib/rustlib/$host/bin/rust-objcopy"
    )
}

# make_image ELF IMAGE: QEMU passes the DTB in x0 only for a flat Image (for
# an ELF it does not), so the kernel must be booted from one.
make_image() {
    local elf=$1 image=$2 objcopy
    objcopy=$(objcopy_path) || return 1
    # Write-then-rename: a QEMU started concurrently never sees half an Image.
    "$objcopy" -O binary "$elf" "$image.tmp.$$" && mv -f "$image.tmp.$$" "$image"
}

build_kernel() {
    (cd "$REPO_ROOT" && cargo build --release --bin vmkernel) || return 1
    make_image "$KERNEL_ELF" "$KERNEL_IMAGE" || return 1
    info "kernel: Image $KERNEL_IMAGE (ELF for GDB: $KERNEL_ELF)"
}

# prepare_kernel BUILD: the kernel's ELF and Image, built now (BUILD=1) or
# from the ELF an earlier build left (BUILD=0, a script's --no-build).
prepare_kernel() {
    if (($1)); then
        build_kernel >&2 || die "the kernel does not build"
    else
        [[ -f $KERNEL_ELF ]] || die "--no-build but there is no $KERNEL_ELF"
        make_image "$KERNEL_ELF" "$KERNEL_IMAGE"
    fi
}

# qemu_cmd ARGS...: sets QEMU_CMD to QEMU on the default machine plus ARGS.
qemu_cmd() {
    QEMU_CMD=("$QEMU_BIN" "${QEMU_DEFAULTS[@]}" "$@")
}

# boot_capture NAME SECS [--stdin FILE] -- QEMU_ARGS...
# Boots the default machine plus QEMU_ARGS under `timeout`, console (and
# QEMU's own errors) to $LOG_DIR/NAME.log. Writes NAME.status (QEMU's exit
# status; 124 = timed out), NAME.cmd (to reproduce) and NAME.ms (wall time),
# and sets BOOT_STATUS. Always returns 0, so it can run in the background
# under `set -e`.
boot_capture() {
    local name=$1 secs=$2 input=/dev/null
    shift 2
    while (($#)) && [[ $1 != -- ]]; do
        case $1 in
        --stdin) input=$2 && shift 2 ;;
        *) die "boot_capture: unknown option $1" ;;
        esac
    done
    [[ ${1-} == -- ]] && shift
    mkdir -p "$LOG_DIR"
    qemu_cmd "$@"
    local base=$LOG_DIR/$name start=${EPOCHREALTIME//[.,]/} status=0
    shell_quote "${QEMU_CMD[@]}" >"$base.cmd"
    # --kill-after: a QEMU that ignores SIGTERM must not hang the suite.
    timeout --kill-after=5 "$secs" "${QEMU_CMD[@]}" <"$input" >"$base.log" 2>&1 || status=$?
    echo "$status" >"$base.status"
    echo $(((${EPOCHREALTIME//[.,]/} - start) / 1000)) >"$base.ms"
    # shellcheck disable=SC2034 # read by callers
    BOOT_STATUS=$status
}

# shell_quote ARGS...: one line a shell can run; plain words stay unquoted
# (printf %q alone would escape every comma of `-device loader,file=...`).
shell_quote() {
    local a out=()
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9,._/=:+@%-]+$ ]]; then out+=("$a"); else out+=("$(printf '%q' "$a")"); fi
    done
    printf '%s\n' "${out[*]}"
}

# le32 VALUE: four little-endian bytes as \x escapes (for printf %b).
le32() {
    local v=$(($1))
    printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255))
}
le64() {
    local v=$(($1))
    le32 $((v & 0xffffffff))
    le32 $((v >> 32 & 0xffffffff))
}

# write_boot_stub FILE DTB_ADDR KERNEL_ADDR: the arm64 boot protocol in four
# instructions, for booting a hand-made DTB without QEMU's -kernel/-dtb
# handling (which rewrites /memory):
#   ldr x0, #16   (x0 = DTB address)     ldr x1, #20  (x1 = kernel address)
#   br  x1                               nop
#   .quad DTB_ADDR, KERNEL_ADDR
write_boot_stub() {
    local file=$1 dtb=$2 kernel=$3
    printf '%b' "$(le32 0x58000080)$(le32 0x580000a1)$(le32 0xd61f0020)$(le32 0xd503201f)$(le64 "$dtb")$(le64 "$kernel")" >"$file"
    [[ $(stat -c %s "$file") == 32 ]] || die "boot stub $file is not 32 bytes"
}
