// SPDX-License-Identifier: GPL-2.0-only
//! printk: the kernel log. Every message gets a Linux-style timestamp from
//! the generic timer (`[    0.001234] `), goes into the in-memory ring
//! `__log_buf` (which `dmesg` and the GDB helper `lx-dmesg` read) and, if its
//! level passes `console_loglevel`, out on the console UART.

use crate::arch::kernel::irq::{local_irq_restore, local_irq_save};
use crate::arch::kernel::percpu::smp_processor_id;
use crate::arch::kernel::timer;
use crate::drivers::tty::serial::pl011::Pl011;
use crate::kernel::locking::spinlock::{SpinLock, SpinLockGuard};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Linux's log levels.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// Messages with a level below this reach the console (`loglevel=`).
static CONSOLE_LOGLEVEL: AtomicU8 = AtomicU8::new(7);

pub fn set_console_loglevel(l: u8) {
    CONSOLE_LOGLEVEL.store(l.min(8), Ordering::Relaxed);
}

/// Size of the log ring. A power of two, so the GDB helper can mask.
pub const LOG_BUF_LEN: usize = 1 << 17;

/// The log ring (read by `dmesg` and by scripts/gdb's lx-dmesg): byte
/// `i` of the log lives at `__log_buf[i % LOG_BUF_LEN]`; `log_next` is the
/// total number of bytes ever written.
#[unsafe(no_mangle)]
static mut __log_buf: [u8; LOG_BUF_LEN] = [0; LOG_BUF_LEN];
#[unsafe(no_mangle)]
static log_next: AtomicUsize = AtomicUsize::new(0);

struct Console {
    uart: Option<Pl011>,
}

static CONSOLE: SpinLock<Console> = SpinLock::new(Console { uart: None });

/// The console lock, held with IRQs masked on this CPU (Linux's
/// spin_lock_irqsave): the PL011 receive interrupt's handler takes it, and
/// would spin for ever on a CPU that already holds it.
struct ConsoleGuard {
    guard: core::mem::ManuallyDrop<SpinLockGuard<'static, Console>>,
    flags: u64,
}

/// The logical CPU holding the console lock (usize::MAX: none), so that
/// [`force_unlock`] breaks only this CPU's own hold.
static CONSOLE_OWNER: AtomicUsize = AtomicUsize::new(usize::MAX);

fn console_lock() -> ConsoleGuard {
    let flags = local_irq_save();
    let guard = core::mem::ManuallyDrop::new(CONSOLE.lock());
    CONSOLE_OWNER.store(smp_processor_id(), Ordering::Relaxed);
    ConsoleGuard { guard, flags }
}

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        CONSOLE_OWNER.store(usize::MAX, Ordering::Relaxed);
        // SAFETY: dropped exactly once, here; IRQs come back only after
        // the lock is released.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        local_irq_restore(self.flags);
    }
}

impl core::ops::Deref for ConsoleGuard {
    type Target = Console;
    fn deref(&self) -> &Console {
        &self.guard
    }
}

impl core::ops::DerefMut for ConsoleGuard {
    fn deref_mut(&mut self) -> &mut Console {
        &mut self.guard
    }
}

/// Start the console on a UART mapped at `base`.
///
/// # Safety
/// `base` must map a PL011 as device memory from now on.
pub unsafe fn console_init(base: usize) {
    let report = {
        let mut c = console_lock();
        // SAFETY: Pl011::new wants `base` to map a PL011 as device memory
        // while the value is used, which is console_init's own contract.
        let mut uart = unsafe { Pl011::new(base) };
        let report = uart.init();
        c.uart = Some(uart);
        report
    };
    crate::pr_info!(
        "pl011: boot console at {:#x}: LCR_H {:#x} CR {:#x} as found; FIFOs {} (FEN is never changed: that would flush received input)",
        base,
        report.lcr_h,
        report.cr,
        if report.fifo { "on" } else { "off" }
    );
}

/// Move the console to another mapping of the same UART.
///
/// # Safety
/// As for `console_init`.
pub unsafe fn console_set_base(base: usize) {
    let mut c = console_lock();
    if let Some(u) = c.uart.as_mut() {
        // SAFETY: set_base wants what Pl011::new does; console_set_base's
        // caller promises it for `base`.
        unsafe { u.set_base(base) };
    }
}

pub fn console_base() -> Option<usize> {
    console_lock().uart.as_ref().map(|u| u.base())
}

/// Break the console lock after a fault inside printk (oops path) -- only
/// if this CPU holds it: a lock another CPU holds is released in its time,
/// and breaking it would interleave two users.
///
/// # Safety
/// Only when this CPU's holder of the lock can never run again (it was
/// interrupted for good, or abandoned by fault recovery).
pub unsafe fn force_unlock() {
    if CONSOLE.is_locked() && CONSOLE_OWNER.load(Ordering::Relaxed) == smp_processor_id() {
        CONSOLE_OWNER.store(usize::MAX, Ordering::Relaxed);
        // SAFETY: the caller promises the holder (this CPU, checked above)
        // never runs again, so no guard is left to touch the console after
        // we take it over.
        unsafe { CONSOLE.force_unlock() };
    }
}

fn log_store(bytes: &[u8]) {
    let mut next = log_next.load(Ordering::Relaxed);
    for &b in bytes {
        // SAFETY: __log_buf's only writer is this function, and its callers
        // hold the console lock (one CPU), so no other access to the ring
        // overlaps this store; the index is reduced mod LOG_BUF_LEN.
        unsafe { (*core::ptr::addr_of_mut!(__log_buf))[next % LOG_BUF_LEN] = b };
        next += 1;
    }
    log_next.store(next, Ordering::Release);
}

struct LineWriter<'a> {
    console: &'a mut Console,
    to_console: bool,
}

impl Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        log_store(s.as_bytes());
        if self.to_console
            && let Some(u) = self.console.uart.as_mut()
        {
            for b in s.bytes() {
                if b == b'\n' {
                    u.putc(b'\r');
                }
                u.putc(b);
            }
        }
        Ok(())
    }
}

fn write_timestamp(w: &mut dyn Write) -> fmt::Result {
    let ns = timer::uptime_ns();
    write!(w, "[{:5}.{:06}] ", ns / 1_000_000_000, (ns % 1_000_000_000) / 1000)
}

/// One log message: timestamp, text, newline.
pub fn printk(level: Level, args: fmt::Arguments) {
    let mut c = console_lock();
    let to_console = (level as u8) < CONSOLE_LOGLEVEL.load(Ordering::Relaxed);
    let mut w = LineWriter {
        console: &mut c,
        to_console,
    };
    let _ = write_timestamp(&mut w);
    let _ = w.write_fmt(args);
    let _ = w.write_str("\n");
}

/// Raw console output without a timestamp (the shell, KTAP).
pub fn print(args: fmt::Arguments) {
    let mut c = console_lock();
    let mut w = LineWriter {
        console: &mut c,
        to_console: true,
    };
    let _ = w.write_fmt(args);
}

/// Writer used by the oops path: timestamps each line, like printk.
pub struct LogWriter;

impl Write for LogWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut c = console_lock();
        let mut w = LineWriter {
            console: &mut c,
            to_console: true,
        };
        let at_line_start = {
            let n = log_next.load(Ordering::Relaxed);
            // SAFETY: we hold the console lock, which log_store (the ring's
            // only writer) needs, so the byte is not being written; the
            // index is reduced mod LOG_BUF_LEN.
            n == 0 || unsafe { (*core::ptr::addr_of!(__log_buf))[(n - 1) % LOG_BUF_LEN] } == b'\n'
        };
        if at_line_start && !s.is_empty() && s != "\n" {
            write_timestamp(&mut w)?;
        }
        w.write_str(s)
    }
}

/// Read one byte from the console, if one arrived. Receive overruns the
/// UART flagged (bytes lost before the driver could read them) are
/// reported here, once each.
pub fn console_getc() -> Option<u8> {
    let (b, lost) = {
        let mut c = console_lock();
        match c.uart.as_mut() {
            Some(u) => (u.getc(), u.take_overruns()),
            None => (None, 0),
        }
    };
    if lost != 0 {
        crate::pr_warn!(
            "console: {} receive overrun(s): input was lost before it could be read",
            lost
        );
    }
    b
}

/// The PL011 receive interrupt (drivers/irqchip dispatches it): move what
/// the UART received into the input ring, which ends the interrupt.
pub fn console_rx_irq() {
    if let Some(u) = console_lock().uart.as_mut() {
        u.poll_rx();
    }
}

/// Set once the console's receive interrupt is wired: idle may sleep.
static CONSOLE_RX_IRQ: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Let the console's UART interrupt on receive (once its IRQ is wired).
pub fn console_enable_rx_irq() {
    if let Some(u) = console_lock().uart.as_mut() {
        u.enable_rx_irq();
        CONSOLE_RX_IRQ.store(true, Ordering::Release);
    }
}

/// Does a received byte raise an interrupt (so waiting may `wfi`)?
pub fn console_rx_irq_enabled() -> bool {
    CONSOLE_RX_IRQ.load(Ordering::Acquire)
}

/// Take the oldest pending `b` out of the console input (other type-ahead
/// keeps its order): a long-running command polls this for Ctrl-C.
pub fn console_take_byte(b: u8) -> bool {
    console_lock().uart.as_mut().is_some_and(|u| u.take_byte(b))
}

/// Copy the log ring (oldest first) through `f`, in at most two slices.
pub fn for_each_log_chunk(mut f: impl FnMut(&[u8])) {
    let _c = console_lock();
    let next = log_next.load(Ordering::Acquire);
    let start = next.saturating_sub(LOG_BUF_LEN);
    // SAFETY: `_c` holds the console lock, which log_store (the ring's only
    // writer) needs, so no mutable access exists while `buf` lives.
    let buf = unsafe { &*core::ptr::addr_of!(__log_buf) };
    let (a, b) = (start % LOG_BUF_LEN, next % LOG_BUF_LEN);
    if next - start == LOG_BUF_LEN || a > b {
        f(&buf[a..]);
        f(&buf[..b]);
    } else {
        f(&buf[a..b]);
    }
}

#[macro_export]
macro_rules! printk {
    ($lvl:expr, $($arg:tt)*) => { $crate::kernel::printk::printk($lvl, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! pr_emerg { ($($arg:tt)*) => { $crate::printk!($crate::kernel::printk::Level::Emerg, $($arg)*) }; }
#[macro_export]
macro_rules! pr_err { ($($arg:tt)*) => { $crate::printk!($crate::kernel::printk::Level::Err, $($arg)*) }; }
#[macro_export]
macro_rules! pr_warn { ($($arg:tt)*) => { $crate::printk!($crate::kernel::printk::Level::Warning, $($arg)*) }; }
#[macro_export]
macro_rules! pr_notice { ($($arg:tt)*) => { $crate::printk!($crate::kernel::printk::Level::Notice, $($arg)*) }; }
#[macro_export]
macro_rules! pr_info { ($($arg:tt)*) => { $crate::printk!($crate::kernel::printk::Level::Info, $($arg)*) }; }
#[macro_export]
macro_rules! pr_debug { ($($arg:tt)*) => { $crate::printk!($crate::kernel::printk::Level::Debug, $($arg)*) }; }
#[macro_export]
macro_rules! print { ($($arg:tt)*) => { $crate::kernel::printk::print(format_args!($($arg)*)) }; }
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::kernel::printk::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Total bytes ever logged (a position in the log for [`log_contains_since`]).
pub fn log_len() -> usize {
    log_next.load(Ordering::Acquire)
}

/// Has `needle` been logged since position `since` (from [`log_len`])?
/// Only the part still in the ring is searched.
pub fn log_contains_since(since: usize, needle: &str) -> bool {
    let _c = console_lock();
    let next = log_next.load(Ordering::Acquire);
    let start = since.max(next.saturating_sub(LOG_BUF_LEN));
    let n = needle.as_bytes();
    // SAFETY: `_c` holds the console lock, which log_store (the ring's only
    // writer) needs, so no mutable access exists while `buf` lives.
    let buf = unsafe { &*core::ptr::addr_of!(__log_buf) };
    let byte = |i: usize| buf[i % LOG_BUF_LEN];
    (start..next.saturating_sub(n.len() - 1).max(start)).any(|i| n.iter().enumerate().all(|(j, &b)| byte(i + j) == b))
}
