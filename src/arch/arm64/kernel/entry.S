// SPDX-License-Identifier: GPL-2.0-only
/*
 * entry.S: the EL1 exception vector table and the fault-recovery trampoline
 * (Linux: arch/arm64/kernel/entry.S).
 *
 * Every vector saves a struct pt_regs on the current (SP_EL1) stack and
 * calls el1_exception(regs, kind) in Rust, which may edit the saved regs;
 * the return path restores them and erets.
 *
 * pt_regs layout (must match arch::aarch64::traps::PtRegs):
 *   0: x0..x30, 248: sp, 256: pc (ELR_EL1), 264: pstate (SPSR_EL1),
 *   272: esr, 280: far; 288 bytes in all.
 */
    .equ    S_FRAME_SIZE, 288
    .equ    S_SP, 248
    .equ    S_PC, 256
    .equ    S_ESR, 272
    .equ    S_FPSIMD_SIZE, 528      // q0-q31, fpsr, fpcr (IRQs only)

    .macro  kernel_ventry kind
    .balign 0x80
    sub     sp, sp, #S_FRAME_SIZE
    .if \kind < 4
    /*
     * Exceptions on the kernel stack: did SP run into the guard page?
     * Compare SP with this CPU's stack bottom (per-CPU data, TPIDR_EL1),
     * so CPU 0's 128 KiB boot stack and the secondaries' 16 KiB vmap'd
     * stacks are checked alike. TPIDR_EL0 (no user space here) lends a
     * register, as in Linux's overflow path.
     */
    msr     tpidr_el0, x0
    mrs     x0, tpidr_el1
    ldr     x0, [x0, #PCPU_STACK_LOW]
    cmp     sp, x0
    mrs     x0, tpidr_el0
    b.lo    el1_stack_overflow
    .endif
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       el1_entry_common
    .endm

    .text
    .balign 2048
    .globl  vectors
vectors:
    /* current EL with SP_EL0: never used by this kernel */
    kernel_ventry 0x10              // sync
    kernel_ventry 0x11              // irq
    kernel_ventry 0x12              // fiq
    kernel_ventry 0x13              // serror
    /* current EL with SP_ELx: the kernel itself */
    kernel_ventry 0                 // sync
    kernel_ventry 1                 // irq
    kernel_ventry 2                 // fiq
    kernel_ventry 3                 // serror
    /* lower EL, AArch64 and AArch32: no user space here */
    kernel_ventry 0x20
    kernel_ventry 0x21
    kernel_ventry 0x22
    kernel_ventry 0x23
    kernel_ventry 0x30
    kernel_ventry 0x31
    kernel_ventry 0x32
    kernel_ventry 0x33

/*
 * The stack overflowed (SP in or below the guard page): save the registers
 * on this CPU's overflow stack instead. Entered with every register as
 * interrupted and SP = the bad SP with the frame taken. TPIDR_EL0 and
 * TPIDRRO_EL0 (unused otherwise) carry x0 and the bad SP across the
 * switch; Rust reads the latter. TPIDR_EL1 is the per-CPU pointer: kept.
 */
el1_stack_overflow:
    msr     tpidr_el0, x0
    mov     x0, sp
    msr     tpidrro_el0, x0
    mrs     x0, tpidr_el1
    ldr     x0, [x0, #PCPU_OVERFLOW_STACK_TOP]
    mov     sp, x0
    sub     sp, sp, #S_FRAME_SIZE
    mrs     x0, tpidr_el0
    stp     x0, x1, [sp, #0]
    mov     x1, #KIND_STACK_OVERFLOW
    b       el1_entry_common

el1_entry_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    add     x2, sp, #S_FRAME_SIZE   // the interrupted sp
    stp     x30, x2, [sp, #240]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #S_PC]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #S_ESR]
    mov     x0, sp                  // regs
    /*
     * An IRQ returns to the code it interrupted, whose FP/SIMD registers
     * the Rust handler may use (the target has FP enabled): save them all.
     * A synchronous exception either recovers through fault_recover (which
     * restores the callee-saved d8-d15) or never returns.
     */
    mov     x19, x1                 // the kind, across the call (x19 is saved above)
    cmp     x1, #1
    b.ne    1f
    sub     sp, sp, #S_FPSIMD_SIZE
    stp     q0, q1, [sp, #16]
    stp     q2, q3, [sp, #48]
    stp     q4, q5, [sp, #80]
    stp     q6, q7, [sp, #112]
    stp     q8, q9, [sp, #144]
    stp     q10, q11, [sp, #176]
    stp     q12, q13, [sp, #208]
    stp     q14, q15, [sp, #240]
    stp     q16, q17, [sp, #272]
    stp     q18, q19, [sp, #304]
    stp     q20, q21, [sp, #336]
    stp     q22, q23, [sp, #368]
    stp     q24, q25, [sp, #400]
    stp     q26, q27, [sp, #432]
    stp     q28, q29, [sp, #464]
    stp     q30, q31, [sp, #496]
    mrs     x2, fpsr
    mrs     x3, fpcr
    stp     x2, x3, [sp, #0]
1:  ldr     x2, [x0, #S_PC]
    /* A frame record so backtraces walk from the handler into the
     * interrupted code: (fp, pc of the faulting instruction). */
    stp     x29, x2, [sp, #-16]!
    mov     x29, sp
    bl      el1_exception
    add     sp, sp, #16
    cmp     x19, #1
    b.ne    2f
    ldp     q0, q1, [sp, #16]
    ldp     q2, q3, [sp, #48]
    ldp     q4, q5, [sp, #80]
    ldp     q6, q7, [sp, #112]
    ldp     q8, q9, [sp, #144]
    ldp     q10, q11, [sp, #176]
    ldp     q12, q13, [sp, #208]
    ldp     q14, q15, [sp, #240]
    ldp     q16, q17, [sp, #272]
    ldp     q18, q19, [sp, #304]
    ldp     q20, q21, [sp, #336]
    ldp     q22, q23, [sp, #368]
    ldp     q24, q25, [sp, #400]
    ldp     q26, q27, [sp, #432]
    ldp     q28, q29, [sp, #464]
    ldp     q30, q31, [sp, #496]
    ldp     x2, x3, [sp, #0]
    msr     fpsr, x2
    msr     fpcr, x3
    add     sp, sp, #S_FPSIMD_SIZE

2:  ldp     x2, x3, [sp, #S_PC]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    add     sp, sp, #S_FRAME_SIZE
    eret

/*
 * u64 call_with_fault_recovery(void (*fn)(void *), void *arg, struct fault_jmp *buf)
 *
 * Calls fn(arg) and returns 0. If a fault handler decides to recover (an
 * expected fault in a test, a bad address in a shell command), it calls
 * fault_recover(buf), which restores the callee-saved state saved here and
 * makes this function return 1 instead. Being one asm function, the Rust
 * caller sees an ordinary call that returns once.
 *
 * struct fault_jmp: x19..x30 (0..95), sp (96), d8..d15 (104..167).
 *
 * The CFI lets GDB (and any DWARF unwinder) walk from fn back through this
 * frame to the Rust caller (the shell loop, the ktest runner): without it
 * GDB's prologue analysis finds no frame here and `bt` stops with
 * "previous frame identical to this frame". The frame record (x29, x30)
 * it pushes is also what the oops's frame-pointer Call trace follows.
 */
    .globl  call_with_fault_recovery
    .type   call_with_fault_recovery, %function
call_with_fault_recovery:
    .cfi_startproc
    /* Entry: CFA = sp, return address in x30 (the DWARF default rule). */
    stp     x19, x20, [x2, #0]
    stp     x21, x22, [x2, #16]
    stp     x23, x24, [x2, #32]
    stp     x25, x26, [x2, #48]
    stp     x27, x28, [x2, #64]
    stp     x29, x30, [x2, #80]
    mov     x3, sp
    str     x3, [x2, #96]
    stp     d8, d9, [x2, #104]
    stp     d10, d11, [x2, #120]
    stp     d12, d13, [x2, #136]
    stp     d14, d15, [x2, #152]
    stp     x29, x30, [sp, #-16]!
    .cfi_def_cfa_offset 16
    .cfi_offset x29, -16
    .cfi_offset x30, -8
    mov     x29, sp
    .cfi_def_cfa x29, 16
    mov     x3, x0
    mov     x0, x1
    blr     x3
    /* Back from fn: x29 is ours again; the CFA follows sp from here. */
    .cfi_def_cfa sp, 16
    ldp     x29, x30, [sp], #16
    .cfi_def_cfa_offset 0
    .cfi_restore x29
    .cfi_restore x30
    mov     x0, #0
    ret
    .cfi_endproc
    .size   call_with_fault_recovery, . - call_with_fault_recovery

/* void fault_recover(struct fault_jmp *buf): never returns. */
    .globl  fault_recover
fault_recover:
    ldp     x19, x20, [x0, #0]
    ldp     x21, x22, [x0, #16]
    ldp     x23, x24, [x0, #32]
    ldp     x25, x26, [x0, #48]
    ldp     x27, x28, [x0, #64]
    ldp     x29, x30, [x0, #80]
    ldr     x1, [x0, #96]
    mov     sp, x1
    ldp     d8, d9, [x0, #104]
    ldp     d10, d11, [x0, #120]
    ldp     d12, d13, [x0, #136]
    ldp     d14, d15, [x0, #152]
    mov     x0, #1
    ret
