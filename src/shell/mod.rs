// SPDX-License-Identifier: GPL-2.0-only
//! The serial shell: what `run_init` starts when the command line asks for
//! nothing else. A prompt on the console (the ioremap()ed PL011), polled
//! input, a line editor with history (`crate::shell::line`, host-tested), and
//! commands that drive the memory-management code by hand: vmalloc and
//! friends, page-table walks, raw memory reads and writes, the log, tests.
//!
//! Robustness rules:
//! * every command runs under [`catch_fault`], so a bad `peek`/`poke` (or a
//!   bug) prints the oops and comes back to the prompt; state that must
//!   survive a fault (the areas created from the shell) lives in [`Shell`],
//!   outside the closure;
//! * bad input gives one line, `CMD: what is wrong`, and changes nothing:
//!   arguments are checked here *before* the kernel functions are called, so
//!   their own warnings only appear for real failures (out of memory);
//! * only areas created from the shell can be freed from it: the console's
//!   ioremap or a vmalloc'ed page array are refused, not torn down.

pub mod line;

#[cfg(target_os = "none")]
mod cpu;
#[cfg(target_os = "none")]
mod inspect;
#[cfg(target_os = "none")]
mod mem;
#[cfg(target_os = "none")]
mod sys;
pub mod vmaptree;

use crate::arch::kernel::traps::catch_fault;
use crate::kernel::printk;
use crate::shell::line::{ArgError, Args, Event, LineEditor, split_command};
use crate::{print, println};
use alloc::string::String;
use core::fmt::{self, Write};

pub const PROMPT: &str = "vmkernel# ";

/// Console output for code that takes a `fmt::Write` (vmallocinfo, the line
/// editor's echo): raw, no timestamps, like `print!`.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        printk::print(format_args!("{}", s));
        Ok(())
    }
}

/// Why a command did nothing: one line, printed as `CMD: msg`.
pub struct Error {
    msg: String,
    /// Append the command's usage (for argument errors).
    usage: bool,
}

pub type CmdResult = Result<(), Error>;

impl From<ArgError<'_>> for Error {
    fn from(e: ArgError<'_>) -> Self {
        Error {
            msg: alloc::format!("{}", e),
            usage: true,
        }
    }
}

impl Error {
    /// A one-line message without the usage.
    pub fn plain(msg: String) -> Self {
        Error { msg, usage: false }
    }
}

/// `Err` with a one-line message.
pub fn fail_with(args: fmt::Arguments) -> CmdResult {
    Err(Error {
        msg: alloc::fmt::format(args),
        usage: false,
    })
}

/// `return fail!(...)` in command handlers.
macro_rules! fail {
    ($($arg:tt)*) => { return $crate::shell::fail_with(format_args!($($arg)*)) };
}
pub(crate) use fail;

/// The shell's state; lives in `run`'s frame, outside the fault-catching
/// closures.
pub struct Shell {
    editor: LineEditor,
    /// Areas created from the shell (only these may be freed from it).
    areas: mem::Areas,
}

pub struct Command {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    run: fn(&mut Shell, &mut Args) -> CmdResult,
}

/// Every command, in the order `help` lists them.
static COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "",
        help: "list the commands",
        run: help,
    },
    Command {
        name: "meminfo",
        args: "",
        help: "memory summary in /proc/meminfo format",
        run: mem::meminfo,
    },
    Command {
        name: "buddyinfo",
        args: "",
        help: "free blocks per order, as /proc/buddyinfo",
        run: mem::buddyinfo,
    },
    Command {
        name: "numastat",
        args: "",
        help: "per-node memory, as /sys/devices/system/node/node*/meminfo, and each CPU's node",
        run: mem::numastat,
    },
    Command {
        name: "vmallocinfo",
        args: "",
        help: "every vmalloc-range area, as /proc/vmallocinfo",
        run: mem::vmallocinfo,
    },
    Command {
        name: "percpu",
        args: "",
        help: "per-CPU allocator: unit geometry, counters, one line per chunk (Linux's percpu_stats)",
        run: mem::percpu_stats,
    },
    Command {
        name: "alloc_percpu",
        args: "SIZE [ALIGN]",
        help: "__alloc_percpu(SIZE, ALIGN = 8): zeroed SIZE bytes on every CPU; prints the __percpu pointer and each CPU's copy",
        run: mem::cmd_alloc_percpu,
    },
    Command {
        name: "free_percpu",
        args: "PTR",
        help: "free_percpu(PTR), PTR as alloc_percpu printed it",
        run: mem::cmd_free_percpu,
    },
    Command {
        name: "vmaptree",
        args: "[free|busy]",
        help: "the free (default) or busy vmap_area rb-tree, indented: colour, range, size, subtree_max_size",
        run: vmaptree::cmd_vmaptree,
    },
    Command {
        name: "vmalloc",
        args: "SIZE [ALIGN]",
        help: "vmalloc SIZE bytes (K/M/G suffixes), optionally aligned",
        run: mem::cmd_vmalloc,
    },
    Command {
        name: "vzalloc",
        args: "SIZE",
        help: "vzalloc SIZE bytes (zeroed)",
        run: mem::cmd_vzalloc,
    },
    Command {
        name: "vfree",
        args: "ADDR",
        help: "vfree an area vmalloc/vzalloc returned here",
        run: mem::cmd_vfree,
    },
    Command {
        name: "vmap",
        args: "NPAGES",
        help: "alloc_pages(0) NPAGES times and vmap them",
        run: mem::cmd_vmap,
    },
    Command {
        name: "vunmap",
        args: "ADDR",
        help: "vunmap an area vmap returned here and free its pages",
        run: mem::cmd_vunmap,
    },
    Command {
        name: "ioremap",
        args: "PHYS SIZE",
        help: "map device memory (Device-nGnRE, XN); RAM is refused",
        run: mem::cmd_ioremap,
    },
    Command {
        name: "iounmap",
        args: "ADDR",
        help: "unmap an area ioremap returned here",
        run: mem::cmd_iounmap,
    },
    Command {
        name: "purge",
        args: "",
        help: "purge lazily freed vmap areas now (one TLB flush)",
        run: mem::cmd_purge,
    },
    Command {
        name: "pt",
        args: "VA",
        help: "walk swapper_pg_dir for VA, decoding each level",
        run: inspect::cmd_pt,
    },
    Command {
        name: "peek",
        args: "[-w 1|2|4|8] ADDR [COUNT]",
        help: "read COUNT (default 1, max 512) values of WIDTH bytes (default 8) at ADDR, one access each",
        run: inspect::cmd_peek,
    },
    Command {
        name: "poke",
        args: "[-w 1|2|4|8] ADDR VALUE",
        help: "write VALUE at ADDR with one access of WIDTH bytes (default 8)",
        run: inspect::cmd_poke,
    },
    Command {
        name: "cpu",
        args: "[on N|off N]",
        help: "list the CPUs; take CPU N offline or bring it back (PSCI CPU_OFF / CPU_ON)",
        run: cpu::cmd_cpu,
    },
    Command {
        name: "dt",
        args: "",
        help: "the device-tree summary printed at boot",
        run: sys::cmd_dt,
    },
    Command {
        name: "dmesg",
        args: "",
        help: "the kernel log ring",
        run: sys::cmd_dmesg,
    },
    Command {
        name: "uptime",
        args: "",
        help: "time since reset (generic timer)",
        run: sys::cmd_uptime,
    },
    Command {
        name: "history",
        args: "",
        help: "the command history (up/down arrows recall it)",
        run: cmd_history,
    },
    Command {
        name: "ktest",
        args: "[FILTER]",
        help: "run the in-kernel tests (suite or suite.case prefix)",
        run: sys::cmd_ktest,
    },
    Command {
        name: "bench",
        args: "[PARAM=VALUE...]",
        help: "test_vmalloc (run_test_mask=, test_loop_count=, nr_pages=, ...) or bench=scaling,floor,stages",
        run: sys::cmd_bench,
    },
    Command {
        name: "poweroff",
        args: "",
        help: "power the machine off (QEMU exits with status 0)",
        run: sys::cmd_poweroff,
    },
    Command {
        name: "panic",
        args: "[MESSAGE...]",
        help: "panic on purpose (Linux's sysrq 'c'): shows what panic= and -no-reboot do",
        run: sys::cmd_panic,
    },
];

fn help(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    println!("Commands (numbers: decimal or 0x hex; sizes: K/M/G suffixes):");
    for c in COMMANDS {
        let usage = alloc::format!("{} {}", c.name, c.args);
        println!("  {:<22} {}", usage.trim_end(), c.help);
    }
    println!("Line editing: Backspace, Ctrl-U (kill line), Ctrl-C (abandon line), Up/Down (history).");
    Ok(())
}

fn cmd_history(sh: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    for (i, l) in sh.editor.history().enumerate() {
        println!("{:5}  {}", i + 1, l);
    }
    Ok(())
}

/// Wait for one byte from the console. With the PL011's receive
/// interrupt wired, the CPU sleeps in `wfi` until a byte arrives (the
/// check and the sleep run with IRQs masked, so a byte arriving in
/// between still wakes it); without it, the console is polled.
fn getc() -> u8 {
    let idle = printk::console_rx_irq_enabled();
    loop {
        if let Some(b) = printk::console_getc() {
            return b;
        }
        if idle {
            crate::kernel::rcu::tree::default_idle_call();
        } else {
            core::hint::spin_loop();
        }
    }
}

/// Run one command line.
fn execute(sh: &mut Shell, line: &str) {
    let Some((name, rest)) = split_command(line) else {
        return;
    };
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == name) else {
        println!("{}: unknown command (type 'help' for the list)", name);
        return;
    };
    let mut args = Args::new(rest);
    match catch_fault(|| (cmd.run)(sh, &mut args)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.usage => println!("{}: {} (usage: {} {})", cmd.name, e.msg, cmd.name, cmd.args),
        Ok(Err(e)) => println!("{}: {}", cmd.name, e.msg),
        Err(f) => println!(
            "{}: aborted by a fault at pc {:#x} (far {:#x}); back to the prompt",
            cmd.name, f.pc, f.far
        ),
    }
}

/// The shell's main loop; never returns (`poweroff` ends it).
pub fn run() -> ! {
    let mut sh = Shell {
        editor: LineEditor::new(),
        areas: mem::Areas::new(),
    };
    crate::pr_info!("vmkernel: serial shell on the console; type 'help' for the commands");
    let mut line = String::new();
    loop {
        // Between two commands: a quiescent state, and RCU's due work.
        crate::kernel::rcu::tree::rcu_note_context_switch();
        print!("{}", PROMPT);
        loop {
            match sh.editor.feed(getc(), &mut Console) {
                Event::None => continue,
                Event::Cancel => break,
                Event::Line => {
                    line.clear();
                    line.push_str(sh.editor.line());
                    execute(&mut sh, &line);
                    break;
                }
            }
        }
    }
}
