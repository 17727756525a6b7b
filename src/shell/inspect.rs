//! Inspection commands: `pt` (a swapper_pg_dir walk, every level decoded),
//! `peek` and `poke` (raw u64 accesses). Each access runs under its own
//! `catch_fault`, so a guard page, a hole or a read-only page prints the
//! oops, then one line saying what faulted, and the shell carries on.

use super::{fail, CmdResult, Shell};
use crate::arch::traps::{catch_fault, Fault};
use crate::kmm::paging;
use crate::println;
use kernel::cmdline::Args;
use kernel::mm::layout::*;

/// Most words one `peek` prints.
const PEEK_MAX: u64 = 512;
const WORDS_PER_LINE: usize = 4;

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

fn check_aligned(addr: u64) -> CmdResult {
    if !addr.is_multiple_of(8) {
        fail!("ADDR {:#x} is not 8-byte aligned", addr);
    }
    Ok(())
}

/// "level 3 translation fault", "permission fault", ...
fn describe(f: &Fault) -> alloc::string::String {
    match f.status() {
        (s, Some(l)) if f.is_abort() => alloc::format!("level {} {}", l, s),
        (s, _) if f.is_abort() => alloc::string::String::from(s),
        _ => alloc::string::String::from(crate::arch::traps::esr_class_str(f.ec())),
    }
}

fn print_words(addr: usize, words: &[u64]) {
    if words.is_empty() {
        return;
    }
    let mut line = alloc::format!("0x{:016x}:", addr);
    for w in words {
        line.push_str(&alloc::format!(" {:016x}", w));
    }
    println!("{}", line);
}

pub fn cmd_peek(_: &mut Shell, args: &mut Args) -> CmdResult {
    let addr = args.num("ADDR")?;
    let count = args.opt_num("COUNT")?.unwrap_or(1);
    args.end()?;
    check_aligned(addr)?;
    if count == 0 || count > PEEK_MAX {
        fail!("COUNT {} must be from 1 to {}", count, PEEK_MAX);
    }
    if addr.checked_add(count * 8 - 1).is_none() {
        fail!("{} words at {:#x} wrap around the address space", count, addr);
    }
    let (addr, count) = (addr as usize, count as usize);
    let mut words = [0u64; WORDS_PER_LINE];
    let mut n = 0;
    let mut line_start = addr;
    for i in 0..count {
        let a = addr + i * 8;
        // SAFETY: any address: a fault is caught and reported.
        match catch_fault(|| unsafe { core::ptr::read_volatile(a as *const u64) }) {
            Ok(v) => {
                words[n] = v;
                n += 1;
                if n == WORDS_PER_LINE {
                    print_words(line_start, &words[..n]);
                    n = 0;
                    line_start = a + 8;
                }
            }
            Err(f) => {
                print_words(line_start, &words[..n]);
                fail!(
                    "reading {:#x} faulted ({}); {} of {} word(s) read",
                    a,
                    describe(&f),
                    i,
                    count
                );
            }
        }
    }
    print_words(line_start, &words[..n]);
    Ok(())
}

pub fn cmd_poke(_: &mut Shell, args: &mut Args) -> CmdResult {
    let addr = args.num("ADDR")?;
    let value = args.num("VALUE")?;
    args.end()?;
    check_aligned(addr)?;
    let a = addr as usize;
    // SAFETY: any address: a fault is caught and reported.
    match catch_fault(|| unsafe { core::ptr::write_volatile(a as *mut u64, value) }) {
        Ok(()) => {
            println!("poke: wrote {:#018x} to {:#x}", value, a);
            Ok(())
        }
        Err(f) => fail!("writing {:#x} faulted ({}); nothing written", a, describe(&f)),
    }
}
