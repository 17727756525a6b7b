// SPDX-License-Identifier: GPL-2.0-only
//! Tests of the boot foundation: device-tree summary, exception decoding and
//! fault recovery, timer, log ring, early descriptors.

use super::{Case, Suite, Test};
use crate::arch::kernel::setup;
use crate::arch::kernel::{timer, traps};
use crate::{kassert, kassert_eq, kexpect_fault};

pub static SUITE: Suite = Suite {
    name: "boot",
    cases: &[
        Case {
            name: "dt_memory_present",
            run: dt_memory_present,
        },
        Case {
            name: "dt_console_and_psci",
            run: dt_console_and_psci,
        },
        Case {
            name: "dt_reservations_never_allocated",
            run: dt_reservations_never_allocated,
        },
        Case {
            name: "undefined_instruction_is_caught",
            run: undefined_instruction_is_caught,
        },
        Case {
            name: "nested_fault_recovery",
            run: nested_fault_recovery,
        },
        Case {
            name: "timer_is_monotonic",
            run: timer_is_monotonic,
        },
        Case {
            name: "log_ring_holds_banner",
            run: log_ring_holds_banner,
        },
        Case {
            name: "mair_matches_memtype_enum",
            run: mair_matches_memtype_enum,
        },
    ],
};

fn dt_memory_present(t: &mut Test) {
    let m = setup::machine();
    kassert!(t, !m.memory().is_empty(), "no memory banks");
    let sum: u64 = m.memory().iter().map(|b| b.region.size).sum();
    kassert_eq!(t, sum, m.total_memory());
    // The kernel image itself must lie inside a bank.
    let text = setup::boot_info().phys_text as u64;
    kassert!(
        t,
        m.memory()
            .iter()
            .any(|b| b.region.base <= text && text < b.region.base + b.region.size),
        "kernel at {:#x} is outside every memory bank",
        text
    );
}

fn dt_console_and_psci(t: &mut Test) {
    let m = setup::machine();
    let uart = m.pl011();
    let Some(uart) = uart else {
        t.fail(file!(), line!(), format_args!("no arm,pl011 in the DT"));
        return;
    };
    kassert_eq!(
        t,
        uart.base,
        crate::drivers::tty::serial::pl011::EARLYCON_PL011_PHYS as u64
    );
    kassert!(t, m.psci().is_some(), "no /psci method");
    kassert!(t, m.cpu_count() >= 1);
}

/// Drain the page allocator to exhaustion and check that no page it hands
/// out lies in a DT reservation (/memreserve/, /reserved-memory with or
/// without no-map), then give every page back. The pages are chained
/// through their own first word, so the test itself needs no memory.
fn dt_reservations_never_allocated(t: &mut Test) {
    use crate::arch::memory::PhysAddr;
    use crate::mm::page_alloc;
    let m = setup::machine();
    let (free_before, _) = page_alloc::nr_free_pages();
    let mut head: Option<PhysAddr> = None;
    let (mut n, mut bad) = (0usize, None);
    while let Some(pa) = page_alloc::alloc_pages(0) {
        let a = pa.0 as u64;
        if bad.is_none() {
            bad = m
                .reserved()
                .iter()
                .find(|r| r.region.contains(a))
                .map(|r| (a, r.region));
        }
        let va = crate::arch::mm::mmu::__va(pa).0 as *mut usize;
        // SAFETY: alloc_pages just gave us this page: its linear-map address
        // is mapped, writable and aligned; its first word links the chain.
        unsafe { va.write(head.map_or(0, |h| h.0)) };
        head = Some(pa);
        n += 1;
    }
    while let Some(pa) = head {
        // SAFETY: every page on the chain was written above and is still
        // ours (freed only after this read).
        let next = unsafe { (crate::arch::mm::mmu::__va(pa).0 as *const usize).read() };
        page_alloc::__free_pages(pa, 0);
        head = (next != 0).then_some(PhysAddr(next));
    }
    kassert!(
        t,
        bad.is_none(),
        "page {:#x} of DT reservation {} was handed out",
        bad.unwrap().0,
        bad.unwrap().1
    );
    kassert!(
        t,
        n >= free_before / 2,
        "only {} pages allocated of {} free",
        n,
        free_before
    );
    page_alloc::drain_all_pages();
    kassert_eq!(t, page_alloc::nr_free_pages().0, free_before);
}

fn undefined_instruction_is_caught(t: &mut Test) {
    let before = traps::oops_count();
    // SAFETY: `udf` is permanently undefined: it traps before changing any
    // state, and catch_fault resumes after the closure.
    let r = traps::catch_fault(|| unsafe { core::arch::asm!("udf #0x42") });
    let f = kexpect_fault!(t, r, "udf did not trap");
    kassert_eq!(t, f.ec(), 0); // Unknown reason
    kassert_eq!(t, traps::oops_count(), before + 1);
}

fn nested_fault_recovery(t: &mut Test) {
    let outer = traps::catch_fault_quiet(|| {
        // SAFETY: as above: the trap changes nothing, the inner catcher
        // recovers.
        let inner = traps::catch_fault_quiet(|| unsafe { core::arch::asm!("udf #1") });
        let inner_ok = inner.is_err();
        // SAFETY: the same trap, recovered by the outer catch_fault_quiet
        // (the inner one was popped when it returned).
        unsafe { core::arch::asm!("udf #2") };
        inner_ok
    });
    kassert!(t, outer.is_err(), "outer fault not caught");
    // And a clean closure returns its value.
    kassert_eq!(t, traps::catch_fault_quiet(|| 41 + 1), Ok(42));
}

fn timer_is_monotonic(t: &mut Test) {
    let a = timer::get_cycles();
    let mut x = 0u64;
    for i in 0..10_000u64 {
        x = x.wrapping_add(core::hint::black_box(i));
    }
    core::hint::black_box(x);
    let b = timer::get_cycles();
    kassert!(t, b > a, "counter did not advance: {} -> {}", a, b);
    kassert!(
        t,
        timer::frequency() >= 1_000_000,
        "implausible CNTFRQ {}",
        timer::frequency()
    );
}

/// Is `needle` in the log ring (what is still there, oldest first)?
fn log_ring_contains(needle: &[u8]) -> bool {
    let mut found = false;
    let mut window = alloc::vec::Vec::with_capacity(needle.len());
    crate::kernel::printk::for_each_log_chunk(|chunk| {
        for &b in chunk {
            if window.len() == needle.len() {
                window.remove(0);
            }
            window.push(b);
            found |= window == needle;
        }
    });
    found
}

/// The banner is in `__log_buf` while the ring has not wrapped; once more
/// than LOG_BUF_LEN bytes were logged (a long shell session) it has rightly
/// been overwritten, and the ring must hold the newest lines instead.
fn log_ring_holds_banner(t: &mut Test) {
    use crate::kernel::printk::{LOG_BUF_LEN, log_len};
    let wrapped = log_len() > LOG_BUF_LEN;
    kassert!(
        t,
        wrapped || log_ring_contains(b"Booting vmkernel"),
        "banner not in __log_buf although only {} bytes were logged",
        log_len()
    );
    let before = log_len();
    let stamp = crate::arch::kernel::timer::get_cycles();
    crate::pr_info!("ktest: log ring marker {:#x}", stamp);
    let marker = alloc::format!("ktest: log ring marker {:#x}\n", stamp);
    kassert!(t, log_len() > before, "log_next did not advance");
    kassert!(
        t,
        log_ring_contains(marker.as_bytes()),
        "the newest line is not in __log_buf (log_next {}, wrapped {})",
        log_len(),
        wrapped
    );
}

fn mair_matches_memtype_enum(t: &mut Test) {
    use crate::arch::mm::pgtable::{MAIR_EL1_VALUE, MemType};
    use aarch64_cpu::registers::{MAIR_EL1, Readable};
    kassert_eq!(t, MAIR_EL1.get(), MAIR_EL1_VALUE);
    // Normal write-back and Device-nGnRE sit where the descriptors say.
    let attr = |m: MemType| (MAIR_EL1.get() >> (8 * m.attr_index())) & 0xff;
    kassert_eq!(t, attr(MemType::Normal), 0xff);
    kassert_eq!(t, attr(MemType::DeviceNgnre), 0x04);
}
