// SPDX-License-Identifier: GPL-2.0-only
/*
 * head.S: the first instructions of the kernel (Linux: arch/arm64/kernel/head.S).
 *
 * Runs with the MMU off at whatever physical address the boot loader put the
 * Image, so only PC-relative addressing (adr/adrp) is used until
 * __primary_switched. Flow:
 *   _start (Image header) -> primary_entry -> [init_kernel_el: EL2 -> EL1]
 *   -> clear .bss -> __create_page_tables -> __cpu_setup -> __primary_switch
 *   (MMU on) -> __primary_switched (upper half) -> start_kernel (Rust)
 * A secondary CPU (PSCI CPU_ON, spin-table): secondary_entry -> [EL2 -> EL1]
 *   -> __cpu_setup -> MMU on (idmap_pg_dir + swapper_pg_dir)
 *   -> __secondary_switched -> secondary_start_kernel (Rust)
 *
 * Register use across the boot path (callee-saved, as in Linux):
 *   x21 = physical address of the FDT passed by the loader in x0
 *   x22 = exception level we were entered at (1 or 2)
 *   x23 = physical address of _text (the image's load address)
 */

    .section .head.text, "ax"
    .globl  _start
_start:
    /* arm64 Linux Image header (Documentation/arm64/booting.rst) */
    b       primary_entry           // code0: jump over the header
    .long   0                       // code1
    .quad   0                       // text_offset: load at a 2 MiB-aligned base
    .quad   _kernel_size_le         // image_size, including .bss
    .quad   0xa                     // flags: LE, 4K pages, 2 MiB-aligned anywhere in RAM
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5 (PE header offset: none)

    .section .text.primary_entry, "ax"
    .globl  primary_entry
primary_entry:
    mov     x21, x0                 // FDT pointer, preserved for start_kernel
    adrp    x23, _text              // where we were loaded

    mrs     x22, CurrentEL
    lsr     x22, x22, #2
    and     x22, x22, #3
    adr     x20, el1_entry          // where init_kernel_el2 erets to
    cmp     x22, #2
    b.eq    init_kernel_el2
    cmp     x22, #1
    b.ne    .Lunsupported_el
el1_entry:
    msr     daifset, #0xf

    /* A physical stack until the MMU is on. */
    adrp    x0, init_stack_top
    mov     sp, x0

    /* Zero .bss (the early page tables live there). */
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_stop
    add     x1, x1, :lo12:__bss_stop
1:  cmp     x0, x1
    b.hs    2f
    stp     xzr, xzr, [x0], #16
    b       1b
2:
    bl      __create_page_tables
    /*
     * .bss (the early tables, the stack) was written with the MMU off,
     * i.e. non-cacheable, straight to memory. Stale lines for it may sit in
     * the caches (from whatever ran before us), and the table walker and
     * the kernel will read it cacheable: invalidate it to the PoC.
     */
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_stop
    add     x1, x1, :lo12:__bss_stop
    bl      __inval_dcache_area
    bl      __cpu_setup             // returns the SCTLR_EL1 value in x0
    b       __primary_switch

/* We were entered at EL3 or EL0: nothing sensible can be done; park. */
.Lunsupported_el:
    wfe
    b       .Lunsupported_el

/*
 * init_kernel_el2: entered at EL2 (-machine virt,virtualization=on).
 * Configure EL2 just enough for a kernel at EL1 (no VHE, no hypervisor):
 * AArch64 EL1, the EL1 physical timer and counter untrapped, no FP/SIMD
 * traps, the GICv3 system-register interface opened to EL1 (when the CPU
 * has one), then eret to EL1h at x20 with all interrupts masked.
 */
init_kernel_el2:
    mov     x0, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64
    msr     hcr_el2, x0
    mrs     x0, cnthctl_el2
    orr     x0, x0, #3              // EL1PCTEN | EL1PCEN
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr
    mov     x0, #0x33ff             // CPTR_EL2: RES1 bits, TFP = 0
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    ldr     x0, =SCTLR_EL1_RES1     // MMU and caches off at EL1 for now
    msr     sctlr_el1, x0
    /* ID_AA64PFR0_EL1.GIC: ICC_* system registers exist (GICv3). Let EL1
     * use them (ICC_SRE_EL2.SRE and .Enable) and keep virtual interrupts
     * off (ICH_HCR_EL2 = 0), as Linux's el2_setup does. */
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4
    cbz     x0, 7f
    mrs     x0, S3_4_C12_C9_5       // ICC_SRE_EL2
    orr     x0, x0, #(1 << 0)       // SRE
    orr     x0, x0, #(1 << 3)       // Enable: EL1 may set ICC_SRE_EL1.SRE
    msr     S3_4_C12_C9_5, x0
    isb
    msr     S3_4_C12_C11_0, xzr     // ICH_HCR_EL2
7:  mov     x0, #0x3c5              // SPSR: EL1h, D A I F masked
    msr     spsr_el2, x0
    msr     elr_el2, x20
    isb
    eret

/*
 * __create_page_tables: the early tables, built with physical addresses.
 *
 *  TTBR0 (idmap_pg_dir): an identity map of the low 256 GiB in 1 GiB blocks
 *    so the instruction after the MMU switch still fetches, the FDT stays
 *    readable and the boot console (device memory in GiB 0) keeps working
 *    until paging_init replaces all of this. RAM may go on above 256 GiB:
 *    paging_init reaches page-table pages through the fixmap, not this.
 *  TTBR1 (init_pg_dir): the image at KIMAGE_VADDR in 2 MiB blocks, RWX for
 *    now; paging_init remaps it W^X at 4 KiB granularity.
 */
__create_page_tables:
    /* idmap: pgd[0] -> idmap_pud */
    adrp    x0, idmap_pg_dir
    adrp    x1, idmap_pud
    orr     x2, x1, #PMD_TYPE_TABLE
    str     x2, [x0]
    /* pud[0]: GiB 0 as Device-nGnRE (the UART and other MMIO on virt) */
    ldr     x2, =EARLY_DEVICE_BLOCK
    str     x2, [x1]
    /* pud[1..256]: Normal memory */
    ldr     x3, =EARLY_NORMAL_BLOCK
    mov     x4, #1
3:  orr     x2, x3, x4, lsl #30
    str     x2, [x1, x4, lsl #3]
    add     x4, x4, #1
    cmp     x4, #256
    b.lo    3b

    /* kernel: init_pg_dir[pgd_index(KIMAGE_VADDR)] -> init_pud -> init_pmd */
    adrp    x0, init_pg_dir
    adrp    x1, init_pud
    adrp    x2, init_pmd
    orr     x3, x1, #PMD_TYPE_TABLE
    str     x3, [x0, #(KIMAGE_PGD_INDEX * 8)]
    orr     x3, x2, #PMD_TYPE_TABLE
    str     x3, [x1, #(KIMAGE_PUD_INDEX * 8)]
    /* pmd[KIMAGE_PMD_INDEX + i] = block(_text + i * 2 MiB), 16 blocks = 32 MiB */
    ldr     x3, =EARLY_NORMAL_BLOCK
    orr     x3, x3, x23             // _text is 2 MiB aligned (header flag bit 3)
    add     x2, x2, #(KIMAGE_PMD_INDEX * 8)
    mov     x4, #16
4:  str     x3, [x2], #8
    add     x3, x3, #(1 << 21)
    subs    x4, x4, #1
    b.ne    4b
    dsb     ishst                   // tables visible to the walker before it runs
    ret

/*
 * __inval_dcache_area(start = x0, end = x1): dc ivac every data cache line
 * of [start, end) (Linux: arch/arm64/mm/cache.S). Leaf, no stack.
 */
__inval_dcache_area:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4         // DminLine: log2(words) of the smallest line
    mov     x2, #4
    lsl     x2, x2, x3              // line size in bytes
    sub     x3, x2, #1
    bic     x0, x0, x3              // align the start down to a line
    dmb     sy                      // order the earlier stores first
6:  dc      ivac, x0
    add     x0, x0, x2
    cmp     x0, x1
    b.lo    6b
    dsb     sy
    ret

/*
 * __cpu_setup (Linux: arch/arm64/mm/proc.S): MAIR, TCR and the FP/SIMD
 * enable; returns the SCTLR_EL1 value that turns the MMU on.
 */
__cpu_setup:
    tlbi    vmalle1
    dsb     nsh
    mov     x0, #(3 << 20)          // CPACR_EL1.FPEN: no FP/SIMD traps
    msr     cpacr_el1, x0
    msr     mdscr_el1, xzr
    ldr     x0, =MAIR_EL1_VALUE
    msr     mair_el1, x0
    ldr     x0, =TCR_EL1_VALUE
    /* IPS = the CPU's PARange, capped at 48 bits (our descriptors' limit). */
    mrs     x1, id_aa64mmfr0_el1
    and     x1, x1, #0xf
    cmp     x1, #5
    mov     x2, #5
    csel    x1, x1, x2, ls
    bfi     x0, x1, #32, #3
    msr     tcr_el1, x0
    isb
    ldr     x0, =SCTLR_EL1_MMU_ON
    ret

/*
 * enable_mmu ttbr1_table: with x0 = the SCTLR_EL1 value from __cpu_setup,
 * load the identity map into TTBR0 (this code's own addresses) and
 * ttbr1_table into TTBR1, turn the MMU on, and drop instructions fetched
 * with it off (Linux: __enable_mmu). CPU 0 enters with init_pg_dir, a
 * secondary with swapper_pg_dir.
 */
.macro enable_mmu ttbr1_table
    adrp    x1, \ttbr1_table
    adrp    x2, idmap_pg_dir
    msr     ttbr0_el1, x2
    msr     ttbr1_el1, x1
    isb
    msr     sctlr_el1, x0
    isb
    ic      iallu                   // drop instructions fetched with the MMU off
    dsb     nsh
    isb
.endm

/*
 * __primary_switch: turn the MMU on, then jump to the link-time (upper
 * half) address. The literal below holds an absolute virtual address.
 */
__primary_switch:
    enable_mmu init_pg_dir
    ldr     x8, =__primary_switched
    br      x8

    .text
/* Now running at KIMAGE_VADDR. */
__primary_switched:
    .cfi_startproc
    .cfi_undefined x30              // the outermost frame: debuggers stop here
    ldr     x0, =init_stack_top
    mov     sp, x0
    /* CPU 0's per-CPU slot, with its stack bounds, before any exception
     * can be taken (entry.S reads them). */
    ldr     x1, =__per_cpu_area
    msr     tpidr_el1, x1
    ldr     x2, =init_stack
    str     x2, [x1, #PCPU_STACK_LOW]
    str     x0, [x1, #PCPU_STACK_HIGH]
    ldr     x2, =overflow_stack_top
    str     x2, [x1, #PCPU_OVERFLOW_STACK_TOP]
    ldr     x0, =vectors
    msr     vbar_el1, x0
    isb
    mov     x29, xzr                // terminate the frame-pointer chain
    mov     x30, xzr
    mov     x0, x21                 // physical FDT address from the loader
    mov     x1, x22                 // boot EL
    mov     x2, x23                 // physical load address of _text
    bl      start_kernel
5:  wfe                             // start_kernel does not return
    b       5b
    .cfi_endproc
    .ltorg

/*
 * secondary_entry: where PSCI CPU_ON (or a spin-table release) starts a
 * secondary CPU, MMU off, at its physical address, at EL2 or EL1
 * (Linux: secondary_entry / secondary_startup).
 *
 * The MMU goes on with swapper_pg_dir in TTBR1 and the boot identity map
 * idmap_pg_dir in TTBR0, as Linux does: CPU 0 retired the identity map
 * from its own TTBR0 in paging_init, but the table itself stays in .bss,
 * untouched, for exactly this switch. The secondary drops TTBR0 again in
 * secondary_start_kernel. Everything else (stack, per-CPU slot) it reads
 * after the switch, through the caches, from secondary_data, which CPU 0
 * filled before CPU_ON.
 */
    .pushsection .text.primary_entry, "ax"
    .globl  secondary_entry
secondary_entry:
    mrs     x22, CurrentEL
    lsr     x22, x22, #2
    and     x22, x22, #3
    adr     x20, secondary_el1
    cmp     x22, #2
    b.eq    init_kernel_el2
    cmp     x22, #1
    b.ne    .Lunsupported_el
secondary_el1:
    msr     daifset, #0xf
    bl      __cpu_setup             // same MAIR/TCR as CPU 0; x0 = SCTLR_EL1
    enable_mmu swapper_pg_dir
    ldr     x8, =__secondary_switched
    br      x8
    .ltorg
    .popsection

/* Now running at KIMAGE_VADDR on the secondary. */
__secondary_switched:
    .cfi_startproc
    .cfi_undefined x30
    ldr     x0, =vectors
    msr     vbar_el1, x0
    isb
    ldr     x0, =secondary_data
    ldr     x1, [x0, #SECONDARY_DATA_PERCPU]
    msr     tpidr_el1, x1           // this CPU's per-CPU slot
    ldr     x2, [x1, #PCPU_STACK_HIGH]
    mov     sp, x2                  // its vmap'd stack
    mov     x29, xzr
    mov     x30, xzr
    ldr     x0, [x1, #PCPU_CPU]
    bl      secondary_start_kernel
8:  wfe                             // secondary_start_kernel does not return
    b       8b
    .cfi_endproc
    .ltorg

/*
 * idmap_cpu_replace_ttbr1(ttbr1 physical address): called at its PHYSICAL
 * address through the identity map, so it keeps running while TTBR1 is
 * swapped. TTBR1 first points at an empty table and the TLB is flushed, so
 * no entry of the old tables (2 MiB blocks) can coexist with the new ones
 * (4 KiB pages) for the same address. Leaf, no stack: the stack is a TTBR1
 * address, unmapped in the window.
 */
    .globl  idmap_cpu_replace_ttbr1
idmap_cpu_replace_ttbr1:
    adrp    x1, reserved_pg_dir
    msr     ttbr1_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     ttbr1_el1, x0
    isb
    ret

/*
 * The early page tables and CPU 0's stacks, in one 256 KiB-aligned region
 * of .bss (the secondaries' stacks are vmap'd, kernel/smp.rs):
 *
 *   region + 0        tables, then CPU 0's overflow stack
 *   region + 124 KiB  init_stack_guard (left unmapped by paging_init)
 *   region + 128 KiB  init_stack .. init_stack_top (128 KiB); kernel_ventry
 *                     (entry.S) takes an SP below init_stack as an overflow.
 */
    .section .bss.page_aligned, "aw", %nobits
    .balign 2 * INIT_STACK_SIZE
    .globl  idmap_pg_dir, init_pg_dir, reserved_pg_dir
    .globl  overflow_stack, overflow_stack_top, init_stack_guard, init_stack, init_stack_top
idmap_pg_dir:   .skip 4096
reserved_pg_dir: .skip 4096
idmap_pud:      .skip 4096
init_pg_dir:    .skip 4096
init_pud:       .skip 4096
init_pmd:       .skip 4096
overflow_stack: .skip OVERFLOW_STACK_SIZE
overflow_stack_top:
    .org INIT_STACK_SIZE - 4096
init_stack_guard: .skip 4096
init_stack:     .skip INIT_STACK_SIZE
init_stack_top:
