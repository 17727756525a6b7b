// SPDX-License-Identifier: GPL-2.0-only
//! Inspection commands: `pt` (a swapper_pg_dir walk, every level decoded),
//! `peek` and `poke` (raw accesses of 1, 2, 4 or 8 bytes: `-w WIDTH`,
//! default 8). Each access is one aligned load or store of exactly that
//! width, so a device's 32-bit register is read with a 32-bit access (a
//! 64-bit one would also touch the next register: QEMU's PL011 logs
//! `pl011_read: Bad offset` for it). Each access runs under its own
//! `catch_fault`, so a guard page, a hole or a read-only page prints the
//! oops, then one line saying what faulted, and the shell carries on.

use super::{CmdResult, Shell, fail};
use crate::arch::kernel::traps::{Fault, catch_fault};
use crate::arch::memory::*;
use crate::arch::mm::mmu as paging;
use crate::println;
use crate::shell::line::Args;

/// Most values one `peek` prints.
const PEEK_MAX: u64 = 512;
/// Bytes shown per output line (4 u64, 8 u32, 16 u16, 32 u8).
const BYTES_PER_LINE: usize = 32;

pub fn cmd_pt(_: &mut Shell, args: &mut Args) -> CmdResult {
    let va = args.num("VA")? as usize;
    args.end()?;
    let w = paging::with_init_mm(|pt, env| pt.walk(env, VirtAddr(va)));
    println!("{}", w);
    if va >> 48 == 0 {
        println!("  (lower half: TTBR0 walks are disabled after boot, EPD0; every access faults)");
    }
    Ok(())
}

/// `-w 1|2|4|8` before the other arguments; 8 when absent.
fn width(args: &mut Args) -> Result<usize, super::Error> {
    let mut peek = args.clone();
    if peek.word() != Some("-w") {
        return Ok(8);
    }
    args.word();
    let w = args.num("WIDTH")?;
    match w {
        1 | 2 | 4 | 8 => Ok(w as usize),
        _ => Err(super::Error::plain(alloc::format!(
            "WIDTH {} must be 1, 2, 4 or 8 (bytes)",
            w
        ))),
    }
}

fn check_aligned(addr: u64, width: usize) -> CmdResult {
    if !addr.is_multiple_of(width as u64) {
        fail!("ADDR {:#x} is not {}-byte aligned", addr, width);
    }
    Ok(())
}

/// One load of exactly `width` bytes (zero-extended).
///
/// # Safety
/// `a` must be aligned to `width`; any fault must be caught by the caller.
unsafe fn read_width(a: usize, width: usize) -> u64 {
    // SAFETY: the caller guarantees `a` is aligned for `width` and catches
    // any fault (the contract); each arm is one volatile load of exactly
    // that width, so a device register sees a single access.
    unsafe {
        match width {
            1 => core::ptr::read_volatile(a as *const u8) as u64,
            2 => core::ptr::read_volatile(a as *const u16) as u64,
            4 => core::ptr::read_volatile(a as *const u32) as u64,
            _ => core::ptr::read_volatile(a as *const u64),
        }
    }
}

/// One store of exactly `width` bytes (the value fits: checked by poke).
///
/// # Safety
/// As for [`read_width`]; and what the store overwrites is the caller's to
/// change (the shell's `poke` leaves that to its user, as /dev/mem does).
unsafe fn write_width(a: usize, width: usize, v: u64) {
    // SAFETY: as in read_width: aligned per the contract, faults caught by
    // the caller, one volatile store of exactly `width` bytes.
    unsafe {
        match width {
            1 => core::ptr::write_volatile(a as *mut u8, v as u8),
            2 => core::ptr::write_volatile(a as *mut u16, v as u16),
            4 => core::ptr::write_volatile(a as *mut u32, v as u32),
            _ => core::ptr::write_volatile(a as *mut u64, v),
        }
    }
}

/// "level 3 translation fault", "permission fault", ...
fn describe(f: &Fault) -> alloc::string::String {
    match f.status() {
        (s, Some(l)) if f.is_abort() => alloc::format!("level {} {}", l, s),
        (s, _) if f.is_abort() => alloc::string::String::from(s),
        _ => alloc::string::String::from(crate::arch::kernel::traps::esr_class_str(f.ec())),
    }
}

fn print_values(addr: usize, width: usize, values: &[u64]) {
    if values.is_empty() {
        return;
    }
    let mut line = alloc::format!("0x{:016x}:", addr);
    for v in values {
        line.push_str(&alloc::format!(" {:0w$x}", v, w = 2 * width));
    }
    println!("{}", line);
}

pub fn cmd_peek(_: &mut Shell, args: &mut Args) -> CmdResult {
    let width = width(args)?;
    let addr = args.num("ADDR")?;
    let count = args.opt_num("COUNT")?.unwrap_or(1);
    args.end()?;
    check_aligned(addr, width)?;
    if count == 0 || count > PEEK_MAX {
        fail!("COUNT {} must be from 1 to {}", count, PEEK_MAX);
    }
    if addr.checked_add(count * width as u64 - 1).is_none() {
        fail!(
            "{} x {} bytes at {:#x} wrap around the address space",
            count,
            width,
            addr
        );
    }
    let (addr, count) = (addr as usize, count as usize);
    let per_line = BYTES_PER_LINE / width;
    let mut values = [0u64; BYTES_PER_LINE];
    let mut n = 0;
    let mut line_start = addr;
    for i in 0..count {
        let a = addr + i * width;
        // SAFETY: read_width's contract: `a` is aligned (addr checked above,
        // and i * width keeps it so), and catch_fault catches any fault.
        match catch_fault(|| unsafe { read_width(a, width) }) {
            Ok(v) => {
                values[n] = v;
                n += 1;
                if n == per_line {
                    print_values(line_start, width, &values[..n]);
                    n = 0;
                    line_start = a + width;
                }
            }
            Err(f) => {
                print_values(line_start, width, &values[..n]);
                fail!(
                    "reading {:#x} faulted ({}); {} of {} {}(s) read",
                    a,
                    describe(&f),
                    i,
                    count,
                    unit(width)
                );
            }
        }
    }
    print_values(line_start, width, &values[..n]);
    Ok(())
}

/// What one access is called in messages.
fn unit(width: usize) -> &'static str {
    match width {
        1 => "byte",
        2 => "halfword",
        4 => "u32",
        _ => "word",
    }
}

pub fn cmd_poke(_: &mut Shell, args: &mut Args) -> CmdResult {
    let width = width(args)?;
    let addr = args.num("ADDR")?;
    let value = args.num("VALUE")?;
    args.end()?;
    check_aligned(addr, width)?;
    if width < 8 && value >> (8 * width) != 0 {
        fail!("VALUE {:#x} does not fit in {} byte(s)", value, width);
    }
    let a = addr as usize;
    // SAFETY: write_width's contract: aligned (checked above), and
    // catch_fault catches any fault. What the store overwrites is the
    // user's choice: poke is a debugger's tool, as Linux's /dev/mem.
    match catch_fault(|| unsafe { write_width(a, width, value) }) {
        Ok(()) => {
            println!("poke: wrote {:#0w$x} to {:#x}", value, a, w = 2 * width + 2);
            Ok(())
        }
        Err(f) => fail!("writing {:#x} faulted ({}); nothing written", a, describe(&f)),
    }
}
