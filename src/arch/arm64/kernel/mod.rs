// SPDX-License-Identifier: GPL-2.0-only
//! arm64 kernel support (Linux: arch/arm64/kernel/): the boot assembly
//! (`head.S`), the exception vectors (`entry.S`), traps and the oops, the
//! stack and its backtrace, setup_arch, the generic timer, PSCI and
//! semihosting.

pub mod cpu;
pub mod irq;
pub mod percpu;
pub mod psci;
pub mod semihosting;
pub mod setup;
pub mod smp;
pub mod stacktrace;
pub mod timer;
pub mod traps;

use crate::arch::memory::{KIMAGE_VADDR, PhysAddr, VirtAddr};
use crate::arch::mm::pgtable::{MAIR_EL1_VALUE, PAGE_KERNEL_EXEC, PROT_DEVICE_NGNRE, pte_encode};
use aarch64_cpu::registers::{SCTLR_EL1, TCR_EL1};

/// Early 1 GiB / 2 MiB block descriptors for head.S (before any Rust runs),
/// from the same encoder as every later mapping: Normal executable memory
/// for the image and RAM, Device-nGnRE never-execute for GiB 0's MMIO.
pub const EARLY_NORMAL_BLOCK: u64 = pte_encode(PhysAddr::new(0), PAGE_KERNEL_EXEC, 1);
pub const EARLY_DEVICE_BLOCK: u64 = pte_encode(PhysAddr::new(0), PROT_DEVICE_NGNRE, 1);

/// SCTLR_EL1 bits that are RES1 in ARMv8.0 (Linux's SCTLR_EL1_RES1: bits
/// 11, 20, 22, 23, 28, 29, later EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE).
/// aarch64-cpu names none of these fields, so they stay numbers.
const SCTLR_EL1_RES1: u64 = (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);
/// MMU on, data and instruction caches on, SP alignment checking. The
/// values are `const`, for head.S's `.equ`: tock-registers' `FieldValue`
/// constants are const, but their `+` is not, hence `.value` and `|`.
const SCTLR_EL1_MMU_ON: u64 = SCTLR_EL1_RES1
    | SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::I::Cacheable.value;

/// TCR_EL1: 48-bit VA in both halves (T0SZ = T1SZ = 16), 4 KiB granules,
/// inner-shareable write-back write-allocate walks. IPS is filled in at run
/// time from ID_AA64MMFR0_EL1.PARange.
const TCR_EL1_VALUE: u64 = TCR_EL1::T0SZ.val(16).value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::T1SZ.val(16).value
    | TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH1::Inner.value
    | TCR_EL1::TG1::KiB_4.value;

// The field constants must give the very bits head.S always loaded.
const _: () = assert!(SCTLR_EL1_MMU_ON == 0x30d0_180d);
const _: () = assert!(TCR_EL1_VALUE == 0xb510_3510);

/// CPU 0's stack: 2^INIT_STACK_SHIFT bytes in .bss, right above its guard
/// page (head.S). The vector entry spots an overflow by comparing SP with
/// the per-CPU stack bottom (entry.S), which works for it and for the
/// secondaries' vmap'd stacks alike.
pub const INIT_STACK_SHIFT: usize = 17;
pub const INIT_STACK_SIZE: usize = 1 << INIT_STACK_SHIFT;
/// Where an exception taken on an overflowed stack is handled.
const OVERFLOW_STACK_SIZE: usize = 16 * 1024;
/// `kind` that entry.S passes for an exception taken on an overflowed stack.
pub const KIND_STACK_OVERFLOW: u64 = 0x40;

core::arch::global_asm!(
    ".equ MAIR_EL1_VALUE, {mair}",
    ".equ TCR_EL1_VALUE, {tcr}",
    ".equ SCTLR_EL1_RES1, {sctlr_res1}",
    ".equ SCTLR_EL1_MMU_ON, {sctlr_on}",
    ".equ PMD_TYPE_TABLE, 3",
    ".equ EARLY_NORMAL_BLOCK, {normal_block}",
    ".equ EARLY_DEVICE_BLOCK, {device_block}",
    ".equ KIMAGE_PGD_INDEX, {pgd_idx}",
    ".equ KIMAGE_PUD_INDEX, {pud_idx}",
    ".equ KIMAGE_PMD_INDEX, {pmd_idx}",
    ".equ INIT_STACK_SIZE, {stack}",
    ".equ OVERFLOW_STACK_SIZE, {ostack}",
    ".equ PCPU_CPU, {pcpu_cpu}",
    ".equ PCPU_STACK_LOW, {pcpu_low}",
    ".equ PCPU_STACK_HIGH, {pcpu_high}",
    ".equ PCPU_OVERFLOW_STACK_TOP, {pcpu_ovf}",
    ".equ SECONDARY_DATA_PERCPU, {sd_percpu}",
    include_str!("head.S"),
    mair = const MAIR_EL1_VALUE,
    tcr = const TCR_EL1_VALUE,
    sctlr_res1 = const SCTLR_EL1_RES1,
    sctlr_on = const SCTLR_EL1_MMU_ON,
    normal_block = const EARLY_NORMAL_BLOCK,
    device_block = const EARLY_DEVICE_BLOCK,
    pgd_idx = const VirtAddr::new(KIMAGE_VADDR).pgd_index(),
    pud_idx = const VirtAddr::new(KIMAGE_VADDR).pud_index(),
    pmd_idx = const VirtAddr::new(KIMAGE_VADDR).pmd_index(),
    stack = const INIT_STACK_SIZE,
    ostack = const OVERFLOW_STACK_SIZE,
    pcpu_cpu = const percpu::PCPU_CPU,
    pcpu_low = const percpu::PCPU_STACK_LOW,
    pcpu_high = const percpu::PCPU_STACK_HIGH,
    pcpu_ovf = const percpu::PCPU_OVERFLOW_STACK_TOP,
    sd_percpu = const smp::SECONDARY_DATA_PERCPU,
);

core::arch::global_asm!(
    ".equ KIND_STACK_OVERFLOW, {overflow}",
    ".equ PCPU_STACK_LOW, {pcpu_low}",
    ".equ PCPU_OVERFLOW_STACK_TOP, {pcpu_ovf}",
    include_str!("entry.S"),
    overflow = const KIND_STACK_OVERFLOW,
    pcpu_low = const percpu::PCPU_STACK_LOW,
    pcpu_ovf = const percpu::PCPU_OVERFLOW_STACK_TOP,
);
