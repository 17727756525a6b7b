// SPDX-License-Identifier: GPL-2.0-only
//! Memory commands: meminfo / buddyinfo / vmallocinfo, and the vmalloc
//! family by hand (vmalloc, vzalloc, vfree, vmap, vunmap, ioremap, iounmap,
//! purge). Each creating command prints the address, the pages and the
//! area's vmallocinfo line; each freeing command accepts only what was
//! created from the shell, so the kernel's own areas (the console's
//! ioremap, the image segments, page arrays) cannot be torn down by a typo.

use super::{CmdResult, Console, Shell, fail};
use crate::arch::memory::*;
use crate::arch::mm::mmu as paging;
use crate::arch::mm::pgtable::PAGE_KERNEL;
use crate::mm::{heap, page_alloc, vmalloc};
use crate::shell::line::{Args, HumanSize};
use crate::{print, println};
use alloc::vec::Vec;
use vmalloc::{VmFlags, VmStruct};

/// What the shell created, by the address it printed.
enum Kind {
    Vmalloc,
    /// The pages alloc_pages gave for the mapping (freed by vunmap).
    Vmap(Vec<PhysAddr>),
    Ioremap,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Vmalloc => "vmalloc",
            Kind::Vmap(_) => "vmap",
            Kind::Ioremap => "ioremap",
        }
    }
}

struct Area {
    addr: usize,
    kind: Kind,
}

/// The areas created from the shell.
pub struct Areas(Vec<Area>);

impl Areas {
    pub fn new() -> Self {
        Areas(Vec::new())
    }

    fn position(&self, addr: usize) -> Option<usize> {
        self.0.iter().position(|a| a.addr == addr)
    }
}

fn kb(pages: usize) -> usize {
    pages << (PAGE_SHIFT - 10)
}

/// One /proc/meminfo line: the name padded to 16 columns, the value to 8.
fn meminfo_line(name: &str, kb: usize) {
    let label = alloc::format!("{}:", name);
    println!("{:<16}{:>8} kB", label, kb);
}

pub fn meminfo(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let (free, managed) = page_alloc::nr_free_pages();
    let (vm_used, chunk, _) = vmalloc::vmalloc_stats();
    let hs = heap::heap_stats();
    meminfo_line("MemTotal", kb(managed));
    meminfo_line("MemFree", kb(free));
    // Pages taken from the buddy allocator for kmalloc (the heap's growth;
    // its boot arena is in .bss) and for vmalloc's object caches (vmap_area,
    // vm_struct, kmalloc-* page arrays).
    meminfo_line("Slab", kb(hs.grown_pages + vmalloc::slab_pages()));
    meminfo_line("PageTables", kb(paging::pgtable_pages()));
    meminfo_line("VmallocTotal", (VMALLOC_END - VMALLOC_START) >> 10);
    meminfo_line("VmallocUsed", kb(vm_used));
    // 5.10 prints 0 here; we print what the line once meant: the largest
    // free range in the vmalloc space.
    meminfo_line("VmallocChunk", chunk >> 10);
    Ok(())
}

pub fn buddyinfo(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let _ = page_alloc::buddyinfo(&mut Console);
    Ok(())
}

/// `numastat -m`'s view: each node's MemTotal/MemFree/MemUsed lines, then
/// which node each online CPU is on.
pub fn numastat(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let _ = page_alloc::node_meminfo(&mut Console);
    for cpu in (0..crate::arch::kernel::percpu::NR_CPUS).filter(|&c| crate::arch::kernel::smp::cpu_online(c)) {
        println!("cpu{}: node {}", cpu, crate::arch::mm::numa::cpu_to_node(cpu));
    }
    Ok(())
}

pub fn vmallocinfo(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let _ = vmalloc::vmallocinfo(&mut Console);
    Ok(())
}

pub fn percpu_stats(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let _ = crate::mm::percpu::percpu_stats(&mut Console);
    Ok(())
}

/// `alloc_percpu SIZE [ALIGN]`: __alloc_percpu, and where each CPU's copy is.
pub fn cmd_alloc_percpu(_: &mut Shell, args: &mut Args) -> CmdResult {
    use crate::mm::percpu;
    let size = args.size("SIZE")? as usize;
    let align = args.opt_size("ALIGN")?.unwrap_or(8) as usize;
    args.end()?;
    let p = percpu::__alloc_percpu(size, align);
    if p.is_null() {
        fail!("__alloc_percpu({}, {}) failed (the reason is above)", size, align);
    }
    print!(
        "alloc_percpu: {} bytes, align {}: __percpu {:#x};",
        size, align, p as usize
    );
    let (_, _, units) = percpu::pcpu_geometry();
    for cpu in 0..units {
        print!(" CPU{} {:#x}", cpu, percpu::per_cpu_ptr(p, cpu) as usize);
    }
    println!();
    Ok(())
}

/// `free_percpu PTR`: a pointer alloc_percpu printed (anything else is
/// reported by free_percpu and ignored).
pub fn cmd_free_percpu(_: &mut Shell, args: &mut Args) -> CmdResult {
    let p = args.num("PTR")? as usize;
    args.end()?;
    crate::mm::percpu::free_percpu(p as *mut u8);
    Ok(())
}

fn nr_purges() -> usize {
    vmalloc::NR_PURGES.load(core::sync::atomic::Ordering::Relaxed)
}

/// What became of the freed address space: a purge ran (more than
/// lazy_max_pages were pending) or it waits on the purge list.
struct LazyNote(usize);

impl core::fmt::Display for LazyNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if nr_purges() != self.0 {
            write!(
                f,
                "lazy_max_pages ({}) exceeded: lazily freed address space purged now ({} page(s) still pending)",
                vmalloc::lazy_max_pages(),
                vmalloc::vmap_lazy_nr()
            )
        } else {
            write!(
                f,
                "address space waits for the lazy purge ({} page(s) pending)",
                vmalloc::vmap_lazy_nr()
            )
        }
    }
}

/// A copy of the interesting fields of the area containing `addr`.
struct VmInfo {
    addr: usize,
    size: usize,
    flags: VmFlags,
    caller: vmalloc::Caller,
}

impl VmInfo {
    fn kind(&self) -> &'static str {
        if self.flags.contains(VmFlags::VM_IOREMAP) {
            "ioremap"
        } else if self.flags.contains(VmFlags::VM_ALLOC) {
            "vmalloc"
        } else {
            "vmap"
        }
    }
}

fn vm_info(addr: usize) -> Option<VmInfo> {
    let vm = vmalloc::find_vm_area(addr);
    if vm.is_null() {
        return None;
    }
    // SAFETY: find_vm_area returned a non-null vm_struct of the busy tree,
    // live until vfree/vunmap, which nothing calls while this shell command
    // runs (one CPU).
    let v = unsafe { &*vm };
    Some(VmInfo {
        addr: v.addr,
        size: v.size,
        flags: v.flags,
        caller: v.caller,
    })
}

/// Print the vmallocinfo line of the area at `addr`.
fn print_vm_line(addr: usize) {
    let vm = vmalloc::find_vm_area(addr);
    if vm.is_null() {
        println!("  (no area found at {:#x}?)", addr);
        return;
    }
    // SAFETY: as in vm_info: non-null, busy, and nothing frees it meanwhile.
    let _ = vmalloc::write_vm_line(&mut Console, unsafe { &*vm as &VmStruct });
}

/// The one-line reason why `addr` is not something `cmd` may free; `want`
/// is the kind it frees and `right` the command for each other kind.
fn refuse(sh: &Shell, addr: usize, want: &str) -> CmdResult {
    if let Some(a) = sh.areas.0.iter().find(|a| a.addr == addr) {
        let right = match a.kind {
            Kind::Vmalloc => "vfree",
            Kind::Vmap(_) => "vunmap",
            Kind::Ioremap => "iounmap",
        };
        fail!("{:#x} is {} area; use {}", addr, an(a.kind.name()), right);
    }
    match vm_info(addr & PAGE_MASK) {
        None => fail!("{:#x} is not the start of {} area", addr, an(want)),
        Some(v) if v.addr != addr & PAGE_MASK || (want != "ioremap" && !addr.is_multiple_of(PAGE_SIZE)) => fail!(
            "{:#x} is not the start of {} area (it is inside the {} area 0x{:016x}-0x{:016x})",
            addr,
            an(want),
            v.kind(),
            v.addr,
            v.addr + v.size
        ),
        Some(v) => fail!(
            "{:#x} is {} area from {}:{}, not created from this shell; refusing to free it",
            addr,
            an(v.kind()),
            v.caller.file(),
            v.caller.line()
        ),
    }
}

/// "a vmalloc", "an ioremap".
fn an(kind: &str) -> alloc::string::String {
    alloc::format!(
        "{} {}",
        if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        },
        kind
    )
}

/// Total RAM in bytes as vmalloc counts it (managed pages).
fn totalram_bytes() -> u64 {
    (page_alloc::nr_free_pages().1 as u64) << PAGE_SHIFT
}

/// Reject zero and sizes beyond RAM (vmalloc would refuse them too, with a
/// warning of its own; the shell's one line is enough).
fn check_size(size: u64) -> CmdResult {
    if size == 0 {
        fail!("SIZE must not be zero");
    }
    let ram = totalram_bytes();
    if size > ram {
        fail!("SIZE {} is more than the {} kB of RAM", HumanSize(size), ram >> 10);
    }
    Ok(())
}

fn report_alloc(what: &str, size: u64, addr: usize) {
    let pages = (size as usize).div_ceil(PAGE_SIZE);
    println!(
        "{}: {} at {:#x} ({} page(s) + guard page)",
        what,
        HumanSize(size),
        addr,
        pages
    );
    print_vm_line(addr);
}

pub fn cmd_vmalloc(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let size = args.size("SIZE")?;
    let align = args.opt_size("ALIGN")?;
    args.end()?;
    check_size(size)?;
    if let Some(a) = align
        && (!a.is_power_of_two() || a > PUD_SIZE as u64)
    {
        fail!("ALIGN {:#x} must be a power of two from 1 to 1G", a);
    }
    let p = match align {
        Some(a) => vmalloc::vmalloc_aligned(size as usize, a as usize),
        None => vmalloc::vmalloc(size as usize),
    };
    if p.is_null() {
        fail!("allocating {} failed (nothing was kept)", HumanSize(size));
    }
    sh.areas.0.push(Area {
        addr: p as usize,
        kind: Kind::Vmalloc,
    });
    report_alloc("vmalloc", size, p as usize);
    Ok(())
}

pub fn cmd_vzalloc(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let size = args.size("SIZE")?;
    args.end()?;
    check_size(size)?;
    let p = vmalloc::vzalloc(size as usize);
    if p.is_null() {
        fail!("allocating {} failed (nothing was kept)", HumanSize(size));
    }
    sh.areas.0.push(Area {
        addr: p as usize,
        kind: Kind::Vmalloc,
    });
    report_alloc("vzalloc", size, p as usize);
    Ok(())
}

pub fn cmd_vfree(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let addr = args.num("ADDR")? as usize;
    args.end()?;
    let Some(i) = sh
        .areas
        .position(addr)
        .filter(|&i| matches!(sh.areas.0[i].kind, Kind::Vmalloc))
    else {
        return refuse(sh, addr, "vmalloc");
    };
    let v = vm_info(addr).expect("a shell vmalloc area vanished");
    let pages = (v.size - PAGE_SIZE) / PAGE_SIZE;
    let free_before = page_alloc::nr_free_pages().0;
    let purges = nr_purges();
    vmalloc::vfree(addr as *const u8);
    sh.areas.0.swap_remove(i);
    let returned = page_alloc::nr_free_pages().0 as isize - free_before as isize;
    println!(
        "vfree: freed 0x{:016x}-0x{:016x}: {} page(s), {} free pages more; {}",
        v.addr,
        v.addr + v.size,
        pages,
        returned,
        LazyNote(purges)
    );
    Ok(())
}

pub fn cmd_vmap(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let n = args.num("NPAGES")?;
    args.end()?;
    if n == 0 {
        fail!("NPAGES must not be zero");
    }
    let free = page_alloc::nr_free_pages().0 as u64;
    if n > free {
        fail!("{} pages is more than the {} free pages", n, free);
    }
    let n = n as usize;
    let mut pages = Vec::new();
    if pages.try_reserve_exact(n).is_err() {
        fail!("no memory for an array of {} pages", n);
    }
    for i in 0..n {
        match page_alloc::alloc_pages(0) {
            Some(pa) => pages.push(pa),
            None => {
                for &pa in &pages {
                    page_alloc::__free_pages(pa, 0);
                }
                fail!("alloc_pages(0) failed after {} of {} pages (all given back)", i, n);
            }
        }
    }
    let p = vmalloc::vmap(&pages, VmFlags::VM_MAP, PAGE_KERNEL);
    if p.is_null() {
        for &pa in &pages {
            page_alloc::__free_pages(pa, 0);
        }
        fail!("vmap of {} pages failed (pages given back)", n);
    }
    print!("vmap: {} page(s) at {:#x}, pfns", n, p as usize);
    for pa in pages.iter().take(8) {
        print!(" {:#x}", phys_to_pfn(*pa));
    }
    println!("{}", if n > 8 { " ..." } else { "" });
    print_vm_line(p as usize);
    sh.areas.0.push(Area {
        addr: p as usize,
        kind: Kind::Vmap(pages),
    });
    Ok(())
}

pub fn cmd_vunmap(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let addr = args.num("ADDR")? as usize;
    args.end()?;
    let Some(i) = sh
        .areas
        .position(addr)
        .filter(|&i| matches!(sh.areas.0[i].kind, Kind::Vmap(_)))
    else {
        return refuse(sh, addr, "vmap");
    };
    let v = vm_info(addr).expect("a shell vmap area vanished");
    let purges = nr_purges();
    vmalloc::vunmap(addr as *const u8);
    let area = sh.areas.0.swap_remove(i);
    let Kind::Vmap(pages) = area.kind else { unreachable!() };
    for &pa in &pages {
        page_alloc::__free_pages(pa, 0);
    }
    println!(
        "vunmap: unmapped 0x{:016x}-0x{:016x} and freed its {} page(s); {}",
        v.addr,
        v.addr + v.size,
        pages.len(),
        LazyNote(purges)
    );
    Ok(())
}

/// Largest window the shell ioremaps.
const IOREMAP_MAX: u64 = 1 << 30;

pub fn cmd_ioremap(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let phys = args.num("PHYS")?;
    let size = args.size("SIZE")?;
    args.end()?;
    if size == 0 {
        fail!("SIZE must not be zero");
    }
    if size > IOREMAP_MAX {
        fail!(
            "SIZE {} is too big (the shell maps at most {})",
            HumanSize(size),
            HumanSize(IOREMAP_MAX)
        );
    }
    let Some(end) = phys.checked_add(size).filter(|&e| e <= 1 << 48) else {
        fail!(
            "[{:#x}, +{:#x}) goes beyond the 48-bit physical address space",
            phys,
            size
        );
    };
    for b in crate::arch::kernel::setup::machine().memory() {
        let (bs, be) = (b.region.base, b.region.base + b.region.size);
        if phys < be && bs < end {
            fail!(
                "[{:#x}-{:#x}) overlaps RAM [{:#x}-{:#x}); RAM is already mapped at {:#x} (linear map)",
                phys,
                end,
                bs,
                be,
                paging::__va(PhysAddr(phys.max(bs) as usize)).0
            );
        }
    }
    let p = crate::arch::mm::ioremap::ioremap(PhysAddr(phys as usize), size as usize);
    if p.is_null() {
        fail!("mapping [{:#x}-{:#x}) failed (nothing was kept)", phys, end);
    }
    sh.areas.0.push(Area {
        addr: p as usize,
        kind: Kind::Ioremap,
    });
    let pages = ((phys as usize % PAGE_SIZE) + size as usize).div_ceil(PAGE_SIZE);
    println!(
        "ioremap: phys {:#x} size {} at {:#x} ({} page(s) Device-nGnRE, XN, + guard page)",
        phys,
        HumanSize(size),
        p as usize,
        pages
    );
    print_vm_line(p as usize);
    Ok(())
}

pub fn cmd_iounmap(sh: &mut Shell, args: &mut Args) -> CmdResult {
    let addr = args.num("ADDR")? as usize;
    args.end()?;
    let Some(i) = sh
        .areas
        .position(addr)
        .filter(|&i| matches!(sh.areas.0[i].kind, Kind::Ioremap))
    else {
        return refuse(sh, addr, "ioremap");
    };
    let v = vm_info(addr).expect("a shell ioremap area vanished");
    let purges = nr_purges();
    crate::arch::mm::ioremap::iounmap(addr as *mut u8);
    sh.areas.0.swap_remove(i);
    println!(
        "iounmap: unmapped 0x{:016x}-0x{:016x}; {}",
        v.addr,
        v.addr + v.size,
        LazyNote(purges)
    );
    Ok(())
}

pub fn cmd_purge(_: &mut Shell, args: &mut Args) -> CmdResult {
    args.end()?;
    let before = vmalloc::vmap_lazy_nr();
    let flushes = crate::mm::TLB_FLUSHES.load(core::sync::atomic::Ordering::Relaxed);
    vmalloc::purge_vmap_area_lazy();
    let flushes = crate::mm::TLB_FLUSHES.load(core::sync::atomic::Ordering::Relaxed) - flushes;
    println!(
        "purge: {} lazily freed page(s) of address space back in the free tree ({} TLB flush(es)); lazy_max_pages {}",
        before - vmalloc::vmap_lazy_nr(),
        flushes,
        vmalloc::lazy_max_pages()
    );
    Ok(())
}
