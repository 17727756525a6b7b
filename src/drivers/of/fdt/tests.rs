// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `fdt` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

//! Host tests: real DTBs dumped by QEMU at test time, exact trees from a
//! small FDT builder, and malformed/fuzzed blobs that must never panic.

use super::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::string::{String, ToString};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec::Vec;

// ---------------------------------------------------------------- builder

/// Emits a version-17 FDT: header, memory-reservation block, structure
/// block, strings block (in that order, like dtc).
struct Builder {
    st: Vec<u8>,
    strings: Vec<u8>,
    names: Vec<(String, u32)>,
    rsv: Vec<(u64, u64)>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            st: Vec::new(),
            strings: Vec::new(),
            names: Vec::new(),
            rsv: Vec::new(),
        }
    }
    fn tok(&mut self, t: u32) -> &mut Self {
        self.st.extend_from_slice(&t.to_be_bytes());
        self
    }
    fn pad(&mut self) {
        while !self.st.len().is_multiple_of(4) {
            self.st.push(0);
        }
    }
    fn begin(&mut self, name: &str) -> &mut Self {
        self.tok(FDT_BEGIN_NODE);
        self.st.extend_from_slice(name.as_bytes());
        self.st.push(0);
        self.pad();
        self
    }
    fn end(&mut self) -> &mut Self {
        self.tok(FDT_END_NODE)
    }
    fn name_off(&mut self, name: &str) -> u32 {
        if let Some((_, off)) = self.names.iter().find(|(n, _)| n == name) {
            return *off;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.names.push((name.to_string(), off));
        off
    }
    fn prop(&mut self, name: &str, val: &[u8]) -> &mut Self {
        let off = self.name_off(name);
        self.tok(FDT_PROP).tok(val.len() as u32).tok(off);
        self.st.extend_from_slice(val);
        self.pad();
        self
    }
    fn cells(&mut self, name: &str, vals: &[u32]) -> &mut Self {
        let v: Vec<u8> = vals.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &v)
    }
    fn str(&mut self, name: &str, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.prop(name, &v)
    }
    fn strs(&mut self, name: &str, list: &[&str]) -> &mut Self {
        let mut v = Vec::new();
        for s in list {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        }
        self.prop(name, &v)
    }
    fn flag(&mut self, name: &str) -> &mut Self {
        self.prop(name, &[])
    }
    fn reserve(&mut self, addr: u64, size: u64) -> &mut Self {
        self.rsv.push((addr, size));
        self
    }
    /// The blob, with FDT_END appended to the structure block.
    fn build(&self) -> Vec<u8> {
        let mut st = self.st.clone();
        st.extend_from_slice(&FDT_END.to_be_bytes());
        self.assemble(&st)
    }
    /// The blob with the structure block exactly as emitted.
    fn build_raw(&self) -> Vec<u8> {
        self.assemble(&self.st)
    }
    fn assemble(&self, st: &[u8]) -> Vec<u8> {
        let mut rsv = Vec::new();
        for (a, s) in self.rsv.iter().chain([(0u64, 0u64)].iter()) {
            rsv.extend_from_slice(&a.to_be_bytes());
            rsv.extend_from_slice(&s.to_be_bytes());
        }
        let off_rsv = FDT_HEADER_SIZE;
        let off_struct = off_rsv + rsv.len();
        let off_strings = off_struct + st.len();
        let total = off_strings + self.strings.len();
        let mut out = Vec::with_capacity(total);
        for v in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsv as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            st.len() as u32,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&rsv);
        out.extend_from_slice(st);
        out.extend_from_slice(&self.strings);
        out
    }
}

fn set_be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

fn get_be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
}

/// (base, size) pairs as 2+2 cells.
fn regs2(list: &[(u64, u64)]) -> Vec<u32> {
    list.iter()
        .flat_map(|&(b, s)| [(b >> 32) as u32, b as u32, (s >> 32) as u32, s as u32])
        .collect()
}

/// Root with 2/2 cells and a model, as QEMU's `virt` has.
fn root(b: &mut Builder) -> &mut Builder {
    b.begin("")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2])
        .str("model", "test,board")
}

fn memory_node(b: &mut Builder, name: &str, banks: &[(u64, u64)]) {
    b.begin(name)
        .str("device_type", "memory")
        .cells("reg", &regs2(banks))
        .end();
}

fn pl011_node(b: &mut Builder) {
    b.begin("pl011@9000000")
        .strs("compatible", &["arm,pl011", "arm,primecell"])
        .cells("reg", &[0, 0x900_0000, 0, 0x1000])
        .cells("interrupts", &[0, 1, 4])
        .end();
}

/// A small complete tree: one memory node, chosen, a UART.
fn simple_blob(banks: &[(u64, u64)]) -> Vec<u8> {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", banks);
    b.begin("chosen")
        .str("bootargs", "console=ttyAMA0")
        .str("stdout-path", "/pl011@9000000")
        .end();
    pl011_node(&mut b);
    b.end();
    b.build()
}

fn err_of(blob: &[u8]) -> DtError {
    match parse(blob) {
        Ok(info) => panic!("expected an error, parsed {:?}", info),
        Err(e) => e,
    }
}

/// Deterministic xorshift64* so fuzz failures reproduce.
use crate::lib::rand::XorShift64Star as XorShift;

// ------------------------------------------------------------------ QEMU

static DUMP_SEQ: AtomicUsize = AtomicUsize::new(0);

fn temp_path(tag: &str, ext: &str) -> PathBuf {
    let n = DUMP_SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vmkernel-dt-{}-{}-{}.{}", std::process::id(), tag, n, ext))
}

/// The project's default QEMU machine (scripts/qemu-defaults, which the
/// scripts read too), so these tests start QEMU exactly as the boots do.
fn qemu_defaults() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/qemu-defaults");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {}", path, e));
    let args: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    assert!(!args.is_empty(), "no QEMU arguments in {}", path);
    args
}

/// Run `qemu-system-aarch64 <defaults> -machine virt<machine_opts>,dumpdtb=FILE
/// <args>` and return the dumped DTB.
fn qemu_dtb(tag: &str, machine_opts: &str, args: &[&str]) -> Vec<u8> {
    let file = temp_path(tag, "dtb");
    let machine = format!("virt{},dumpdtb={}", machine_opts, file.display());
    let out = Command::new("qemu-system-aarch64")
        .args(qemu_defaults())
        .args(["-machine", &machine])
        .args(args)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "qemu-system-aarch64 is not installed ({}); install the qemu-system-arm package \
             (apt-get install qemu-system-arm) to run the device-tree tests",
            e
        ),
        Err(e) => panic!("could not run qemu-system-aarch64: {}", e),
    };
    let data = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "qemu-system-aarch64 {:?} failed with {}: {}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    data.unwrap_or_else(|e| panic!("QEMU did not write {}: {}", file.display(), e))
}

fn qemu_parse(tag: &str, machine_opts: &str, args: &[&str]) -> MachineInfo {
    let dtb = qemu_dtb(tag, machine_opts, args);
    let info = parse(&dtb).unwrap_or_else(|e| panic!("QEMU's own DTB ({:?}) did not parse: {}", args, e));
    assert_eq!(info.dtb_size(), get_be32(&dtb, 4) as usize);
    info
}

/// The default machine (1 GiB), dumped once and shared by the fuzzers.
fn qemu_default() -> &'static [u8] {
    static DTB: OnceLock<Vec<u8>> = OnceLock::new();
    DTB.get_or_init(|| qemu_dtb("default", "", &["-m", "1G"]))
}

const QEMU_UART: Pl011 = Pl011 {
    base: 0x900_0000,
    size: 0x1000,
    irq: Some(1),
};

fn banks(info: &MachineInfo) -> Vec<(u64, u64, Option<u32>)> {
    info.memory()
        .iter()
        .map(|b| (b.region.base, b.region.size, b.numa_node))
        .collect()
}

/// The properties every QEMU `virt` tree has, whatever the options.
fn assert_virt_common(info: &MachineInfo) {
    assert_eq!(info.model(), "linux,dummy-virt");
    assert_eq!(info.pl011(), Some(QEMU_UART));
    assert_eq!(info.stdout_path(), "/pl011@9000000");
    assert_eq!(info.timer_frequency(), None, "QEMU leaves the frequency to CNTFRQ_EL0");
    assert!(
        info.reserved().is_empty(),
        "QEMU virt has no /memreserve/ or /reserved-memory: {:?}",
        info
    );
}

#[test]
fn qemu_128m() {
    let info = qemu_parse("128m", "", &["-m", "128M"]);
    assert_virt_common(&info);
    assert_eq!(banks(&info), [(0x4000_0000, 0x800_0000, None)]);
    assert_eq!(info.total_memory(), 128 << 20);
    assert_eq!(info.cpu_count(), 1);
    assert_eq!(info.psci(), Some(PsciConduit::Hvc));
    assert_eq!(info.bootargs(), "");
}

#[test]
fn qemu_1g() {
    let info = parse(qemu_default()).unwrap();
    assert_virt_common(&info);
    assert_eq!(banks(&info), [(0x4000_0000, 0x4000_0000, None)]);
    assert_eq!(info.total_memory(), 1 << 30);
    assert_eq!(info.dtb_size(), get_be32(qemu_default(), 4) as usize);
}

#[test]
fn qemu_4g_bank_crosses_4gib() {
    let info = qemu_parse("4g", "", &["-m", "4G"]);
    assert_virt_common(&info);
    assert_eq!(banks(&info), [(0x4000_0000, 0x1_0000_0000, None)]);
    assert_eq!(info.memory()[0].region.end(), 0x1_4000_0000);
    assert_eq!(info.total_memory(), 4 << 30);
}

#[test]
fn qemu_smp_cpu_count() {
    for n in [2usize, 4] {
        let smp = n.to_string();
        let info = qemu_parse("smp", "", &["-m", "256M", "-smp", &smp]);
        assert_virt_common(&info);
        assert_eq!(info.cpu_count(), n, "-smp {}", n);
        // QEMU numbers MPIDRs 0, 1, ... (Aff0) and starts CPUs via PSCI.
        let cpus: Vec<_> = info.cpus().iter().map(|c| (c.mpidr, c.enable_method)).collect();
        let want: Vec<_> = (0..n as u64).map(|i| (i, EnableMethod::Psci)).collect();
        assert_eq!(cpus, want, "-smp {}", n);
    }
}

#[test]
fn qemu_gic_v2_and_v3() {
    let v2 = qemu_parse("gicv2", "", &["-m", "256M", "-smp", "4"]);
    let g = v2.gic().expect("QEMU virt has a GIC");
    assert_eq!(g.version, GicVersion::V2);
    assert_eq!(g.dist, (0x800_0000, 0x1_0000));
    assert_eq!(g.cpu_if, (0x801_0000, 0x1_0000));
    let v3 = qemu_parse("gicv3", ",gic-version=3", &["-m", "256M", "-smp", "4"]);
    let g = v3.gic().expect("QEMU virt has a GIC");
    assert_eq!(g.version, GicVersion::V3);
    assert_eq!(g.dist, (0x800_0000, 0x1_0000));
    assert_eq!(g.redist, [(0x80a_0000, 0xf6_0000)]);
    assert_eq!(v3.cpus().len(), 4);
}

#[test]
fn qemu_two_numa_nodes() {
    let info = qemu_parse(
        "numa",
        "",
        &[
            "-smp",
            "2",
            "-m",
            "2G",
            "-object",
            "memory-backend-ram,id=m0,size=1G",
            "-object",
            "memory-backend-ram,id=m1,size=1G",
            "-numa",
            "node,nodeid=0,cpus=0,memdev=m0",
            "-numa",
            "node,nodeid=1,cpus=1,memdev=m1",
        ],
    );
    assert_virt_common(&info);
    // QEMU emits memory@80000000 before memory@40000000; we sort.
    assert_eq!(
        banks(&info),
        [(0x4000_0000, 0x4000_0000, Some(0)), (0x8000_0000, 0x4000_0000, Some(1))]
    );
    assert_eq!(info.cpu_count(), 2);
    assert_eq!(info.total_memory(), 2 << 30);
    // -numa node,cpus=N puts numa-node-id on the CPU nodes too.
    let nodes: Vec<_> = info.cpus().iter().map(|c| c.numa_node).collect();
    assert_eq!(nodes, [Some(0), Some(1)]);
}

/// `numa-node-id` on memory and CPU nodes: read where present, None where
/// absent (the kernel's node 0), a bad length rejected with the CPU named.
#[test]
fn numa_node_ids_of_memory_and_cpus() {
    let build = |cpu_nodes: &[Option<&[u32]>]| {
        let mut b = Builder::new();
        root(&mut b);
        b.begin("memory@40000000")
            .str("device_type", "memory")
            .cells("reg", &regs2(&[(0x4000_0000, 0x100_0000)]))
            .end();
        b.begin("memory@80000000")
            .str("device_type", "memory")
            .cells("reg", &regs2(&[(0x8000_0000, 0x100_0000)]))
            .cells("numa-node-id", &[2])
            .end();
        b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
        for (i, nid) in cpu_nodes.iter().enumerate() {
            b.begin(&format!("cpu@{}", i))
                .str("device_type", "cpu")
                .cells("reg", &[i as u32]);
            if let Some(v) = nid {
                b.cells("numa-node-id", v);
            }
            b.end();
        }
        b.end();
        b.end();
        b.build()
    };
    let info = parse(&build(&[None, Some(&[2]), Some(&[0])])).unwrap();
    assert_eq!(
        banks(&info),
        [(0x4000_0000, 0x100_0000, None), (0x8000_0000, 0x100_0000, Some(2))]
    );
    let nodes: Vec<_> = info.cpus().iter().map(|c| (c.mpidr, c.numa_node)).collect();
    assert_eq!(nodes, [(0, None), (1, Some(2)), (2, Some(0))]);

    let e = err_of(&build(&[Some(&[0, 1])]));
    assert_eq!(
        e,
        DtError::BadPropertyLength {
            node: NodeName::from("cpu@0"),
            property: "numa-node-id",
            len: 8,
            expected: 4
        }
    );
}

#[test]
fn qemu_virtualization_uses_smc() {
    let info = qemu_parse("el2", ",virtualization=on", &["-m", "512M"]);
    assert_virt_common(&info);
    assert_eq!(info.psci(), Some(PsciConduit::Smc));
    assert_eq!(banks(&info), [(0x4000_0000, 0x2000_0000, None)]);
}

#[test]
fn qemu_append_bootargs() {
    // QEMU only accepts -append with -kernel; any file will do, the
    // DTB is dumped before the guest would run.
    let kernel = temp_path("kernel", "bin");
    std::fs::write(&kernel, [0u8; 4096]).unwrap();
    let kpath = kernel.display().to_string();
    let dtb = qemu_dtb("append", "", &["-m", "1G", "-kernel", &kpath, "-append", "foo bar"]);
    let _ = std::fs::remove_file(&kernel);
    let info = parse(&dtb).unwrap();
    assert_virt_common(&info);
    assert_eq!(info.bootargs(), "foo bar");
}

#[test]
fn qemu_parse_at_reads_header_first() {
    let dtb = qemu_default();
    // SAFETY: dtb is a whole blob: its totalsize bytes are readable and
    // nothing writes them meanwhile.
    let info = unsafe { parse_at(dtb.as_ptr()) }.unwrap();
    assert_eq!(banks(&info), [(0x4000_0000, 0x4000_0000, None)]);

    let mut bad = dtb[..64].to_vec();
    set_be32(&mut bad, 0, 0x1234_5678);
    // SAFETY: 64 readable bytes; with the magic wrong only 8 are read.
    let e = unsafe { parse_at(bad.as_ptr()) }.unwrap_err();
    let addr = bad.as_ptr() as u64;
    assert_eq!(
        e,
        DtError::BadMagic {
            found: 0x1234_5678,
            addr: Some(addr)
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("0x12345678") && msg.contains(&format!("{:#x}", addr)),
        "{}",
        msg
    );

    // A huge totalsize is refused before a slice that long is built.
    let mut huge = dtb[..64].to_vec();
    set_be32(&mut huge, 4, 0x4000_0000);
    // SAFETY: 64 readable bytes; a totalsize over 64 MiB is refused after
    // reading only the first 8.
    let e = unsafe { parse_at(huge.as_ptr()) }.unwrap_err();
    assert_eq!(e, DtError::TotalSizeTooLarge { totalsize: 0x4000_0000 });
    assert_eq!(
        // SAFETY: null is allowed, and refused before any read.
        unsafe { parse_at(core::ptr::null()) }.unwrap_err(),
        DtError::NullPointer
    );
}

// ------------------------------------------------------------ FDT_NOP

/// Offsets (into the structure block) of every token of a valid blob,
/// FDT_END included: each is a place where a NOP may legally stand.
fn token_offsets(blob: &[u8]) -> Vec<usize> {
    let (off, size) = (get_be32(blob, 8) as usize, get_be32(blob, 36) as usize);
    let s = &blob[off..off + size];
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        out.push(pos);
        let tok = get_be32(s, pos);
        pos += match tok {
            FDT_BEGIN_NODE => (4 + s[pos + 4..].iter().position(|&c| c == 0).unwrap() + 1 + 3) & !3,
            FDT_PROP => (12 + get_be32(s, pos + 4) as usize + 3) & !3,
            FDT_END => return out,
            _ => 4,
        };
    }
}

/// `blob` with `n` FDT_NOPs inserted at structure offset `at`, header
/// offsets and sizes moved as libfdt's in-place editing would leave them.
fn insert_nops(blob: &[u8], at: usize, n: usize) -> Vec<u8> {
    let off_struct = get_be32(blob, 8) as usize;
    let abs = off_struct + at;
    let mut out = blob[..abs].to_vec();
    for _ in 0..n {
        out.extend_from_slice(&FDT_NOP.to_be_bytes());
    }
    out.extend_from_slice(&blob[abs..]);
    let grow = 4 * n as u32;
    set_be32(&mut out, 4, get_be32(blob, 4) + grow);
    set_be32(&mut out, 36, get_be32(blob, 36) + grow);
    for field in [12, 16] {
        // strings / rsvmap blocks behind the insertion point move too.
        let v = get_be32(blob, field);
        if v as usize >= abs {
            set_be32(&mut out, field, v + grow);
        }
    }
    out
}

fn assert_same_with_nops(orig: &[u8], at: usize, n: usize) {
    let mut want = parse(orig).unwrap();
    let blob = insert_nops(orig, at, n);
    let got = parse(&blob).unwrap_or_else(|e| panic!("{} NOP(s) at structure offset {:#x}: {}", n, at, e));
    want.nop_count = n;
    want.dtb_size += 4 * n;
    assert_eq!(got, want, "{} NOP(s) at structure offset {:#x}", n, at);
}

/// QEMU's own tree with one NOP, and with a run of three, before every
/// token (so also between two properties of a node, before a child,
/// before END_NODE, before FDT_END) parses to the same MachineInfo.
#[test]
fn qemu_dump_with_nops_everywhere() {
    let orig = qemu_default();
    let offs = token_offsets(orig);
    assert!(offs.len() > 100, "QEMU's tree has only {} tokens?", offs.len());
    for &at in &offs {
        assert_same_with_nops(orig, at, 1);
        assert_same_with_nops(orig, at, 3);
    }
    // Every token position at once, and a NOP run before FDT_END.
    let mut blob = orig.to_vec();
    for &at in offs.iter().rev() {
        blob = insert_nops(&blob, at, 1);
    }
    let last = token_offsets(orig).len();
    let blob = insert_nops(&blob, get_be32(&blob, 36) as usize - 4, 5);
    let mut want = parse(orig).unwrap();
    want.nop_count = last + 5;
    want.dtb_size += 4 * (last + 5);
    assert_eq!(parse(&blob).unwrap(), want);
}

/// What libfdt's fdt_nop_node()/fdt_nop_property() leave behind (QEMU
/// does this to a `-dtb` file's memory nodes): a deleted node or
/// property overwritten with NOPs is simply not there.
#[test]
fn nopped_out_node_and_property_are_gone() {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    let start = b.st.len();
    memory_node(&mut b, "memory@80000000", &[(0x8000_0000, 0x100_0000)]);
    let end = b.st.len();
    b.begin("chosen");
    let pstart = b.st.len();
    b.str("bootargs", "gone");
    let pend = b.st.len();
    b.str("stdout-path", "/pl011@9000000").end();
    b.end();
    for i in (start..end).step_by(4).chain((pstart..pend).step_by(4)) {
        b.st[i..i + 4].copy_from_slice(&FDT_NOP.to_be_bytes());
    }
    let info = parse(&b.build()).unwrap();
    assert_eq!(banks(&info), [(0x4000_0000, 0x100_0000, None)]);
    assert_eq!(info.bootargs(), "");
    assert_eq!(info.stdout_path(), "/pl011@9000000");
    assert_eq!(info.nop_count(), (end - start + pend - pstart) / 4);
}

/// A NOP's bit pattern inside a name or value is data, not a token:
/// compaction must walk tokens, not scan words.
#[test]
fn nop_pattern_inside_values_is_kept() {
    let mut b = Builder::new();
    root(&mut b).tok(FDT_NOP);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x0000_0004_0000_0000)]);
    b.begin("chosen").prop("bootargs", b"\0\0\0\x04\0").end();
    b.end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(banks(&info), [(0x4000_0000, 0x4_0000_0000, None)]);
    assert_eq!(info.nop_count(), 1);
}

/// Malformed blobs with NOPs still fail with the structural error, and
/// NOPs cannot hide a missing FDT_END.
#[test]
fn nops_do_not_hide_corruption() {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.end().tok(FDT_NOP).tok(FDT_NOP);
    assert!(matches!(
        err_of(&b.build_raw()),
        DtError::Corrupt {
            problem: StructProblem::UnexpectedEnd,
            ..
        }
    ));
    let mut b = Builder::new();
    b.tok(FDT_NOP).prop("x", &[]);
    assert!(matches!(
        err_of(&b.build()),
        DtError::Corrupt {
            problem: StructProblem::PropertyOutsideNode,
            ..
        }
    ));
}

/// The cost of NOP handling: parse QEMU's tree as is (no copy) and with
/// a NOP before every token (compacted copy). Prints ns per parse;
/// `cargo htest dt::tests::nop_cost -- --nocapture` shows it.
#[test]
fn nop_cost() {
    let orig = qemu_default();
    let mut nopped = orig.to_vec();
    for &at in token_offsets(orig).iter().rev() {
        nopped = insert_nops(&nopped, at, 1);
    }
    let time = |blob: &[u8]| {
        let n = 200;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(parse(std::hint::black_box(blob)).unwrap());
        }
        t.elapsed().as_nanos() / n
    };
    let (plain, with_nops) = (time(orig), time(&nopped));
    std::println!(
        "dt parse of QEMU's tree: {} ns without NOPs, {} ns with {} NOPs (compacted copy)",
        plain,
        with_nops,
        token_offsets(orig).len()
    );
}

#[test]
fn qemu_dump_truncated() {
    let dtb = qemu_default();
    let total = get_be32(dtb, 4) as usize;
    let used = get_be32(dtb, 12) as usize + get_be32(dtb, 32) as usize; // strings end
    for len in [0, 3, 4, 39, 40, 41, 100, 1000, used - 1, used, total - 1] {
        let e = err_of(&dtb[..len]);
        match e {
            DtError::TooShort { len: l } => assert!(len < 40 && l == len),
            DtError::Truncated { totalsize, available } => {
                assert_eq!((totalsize as usize, available), (total, len))
            }
            other => panic!("length {}: unexpected {:?}", len, other),
        }
    }
    // Same, but with the header rewritten to claim only what is there.
    for len in 40..used + 8 {
        let mut cut = dtb[..len].to_vec();
        set_be32(&mut cut, 4, len as u32);
        let r = parse(&cut);
        if len < used {
            assert!(r.is_err(), "len {} parsed", len);
        } else {
            assert!(r.is_ok(), "len {}: {:?}", len, r);
        }
    }
}

#[test]
fn qemu_dump_byte_flips_never_panic() {
    let dtb = qemu_default();
    let used = get_be32(dtb, 12) as usize + get_be32(dtb, 32) as usize;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    let mut buf = dtb[..used.next_multiple_of(8) + 64].to_vec();
    let blen = buf.len() as u32;
    set_be32(&mut buf, 4, blen);
    for _ in 0..20_000 {
        let mut b = buf.clone();
        for _ in 0..1 + rng.below(6) {
            // Mostly the structure/strings blocks, sometimes the header.
            let at = if rng.below(8) == 0 {
                rng.below(FDT_HEADER_SIZE)
            } else {
                rng.below(used)
            };
            b[at] ^= 1 << rng.below(8);
        }
        match parse(&b) {
            Ok(_) => ok += 1,
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty() && !msg.contains('\n'));
                err += 1
            }
        }
    }
    assert!(ok > 0 && err > 0, "ok {} err {}", ok, err);
}

// ------------------------------------------------------- exact trees

#[test]
fn builder_simple_tree() {
    let info = parse(&simple_blob(&[(0x4000_0000, 0x1000_0000)])).unwrap();
    assert_eq!(info.model(), "test,board");
    assert_eq!(banks(&info), [(0x4000_0000, 0x1000_0000, None)]);
    assert_eq!(info.bootargs(), "console=ttyAMA0");
    assert_eq!(info.stdout_path(), "/pl011@9000000");
    // No interrupt-parent: a 12-byte specifier is taken as GIC-style.
    assert_eq!(info.pl011(), Some(QEMU_UART));
    assert_eq!(info.psci(), None);
    assert_eq!(info.cpu_count(), 0);
    assert!(info.reserved().is_empty());
}

#[test]
fn one_cell_addresses_and_sizes() {
    let mut b = Builder::new();
    b.begin("").cells("#address-cells", &[1]).cells("#size-cells", &[1]);
    b.begin("memory@80000000")
        .str("device_type", "memory")
        .cells("reg", &[0x8000_0000, 0x1000_0000, 0x4000_0000, 0x100_0000])
        .cells("numa-node-id", &[3])
        .end();
    b.end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(
        banks(&info),
        [(0x4000_0000, 0x100_0000, Some(3)), (0x8000_0000, 0x1000_0000, Some(3))]
    );
    assert_eq!(info.model(), "");
    assert_eq!(info.total_memory(), 0x1100_0000);
}

#[test]
fn default_cells_are_two_and_one() {
    let mut b = Builder::new();
    b.begin("");
    b.begin("memory")
        .str("device_type", "memory")
        .cells("reg", &[1, 0, 0x2000_0000])
        .end();
    b.end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(banks(&info), [(0x1_0000_0000, 0x2000_0000, None)]);
}

#[test]
fn memory_found_by_device_type_not_name() {
    let mut b = Builder::new();
    root(&mut b);
    b.begin("ram@40000000")
        .str("device_type", "memory")
        .cells("reg", &regs2(&[(0x4000_0000, 0x1000)]))
        .end();
    b.begin("memory@0")
        .str("device_type", "not-memory")
        .cells("reg", &regs2(&[(0, 0x1000)]))
        .end();
    b.begin("memory@50000000")
        .str("device_type", "memory")
        .str("status", "disabled")
        .cells("reg", &regs2(&[(0x5000_0000, 0x1000)]))
        .end();
    b.end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(banks(&info), [(0x4000_0000, 0x1000, None)]);
}

#[test]
fn reserved_memory_and_memreserve() {
    let mut b = Builder::new();
    b.reserve(0x4800_0000, 0x1_0000).reserve(0x4900_0000, 0x2000);
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x4000_0000)]);
    b.begin("reserved-memory")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[1])
        .flag("ranges");
    b.begin("secmon@5e000000")
        .cells("reg", &[0, 0x5e00_0000, 0x20_0000])
        .flag("no-map")
        .end();
    b.begin("ramoops@5f000000")
        .strs("compatible", &["ramoops"])
        .cells("reg", &[0, 0x5f00_0000, 0x1_0000, 0, 0x5f10_0000, 0x1_0000])
        .end();
    b.begin("off@60000000")
        .cells("reg", &[0, 0x6000_0000, 0x1000])
        .str("status", "disabled")
        .end();
    b.begin("linux,cma")
        .strs("compatible", &["shared-dma-pool"])
        .cells("size", &[0x100_0000])
        .flag("reusable")
        .end();
    b.end();
    b.end();
    let info = parse(&b.build()).unwrap();
    let got: Vec<_> = info
        .reserved()
        .iter()
        .map(|r| (r.region.base, r.region.size, r.kind, r.name()))
        .collect();
    let rm = |no_map| ReserveKind::ReservedMemory { no_map };
    assert_eq!(
        got,
        [
            (0x4800_0000, 0x1_0000, ReserveKind::MemReserve, ""),
            (0x4900_0000, 0x2000, ReserveKind::MemReserve, ""),
            (0x5e00_0000, 0x20_0000, rm(true), "secmon@5e000000"),
            (0x5f00_0000, 0x1_0000, rm(false), "ramoops@5f000000"),
            (0x5f10_0000, 0x1_0000, rm(false), "ramoops@5f000000"),
        ]
    );
}

#[test]
fn psci_timer_cpus() {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("firmware-psci")
        .strs("compatible", &["arm,psci-1.0", "arm,psci-0.2"])
        .str("method", "smc")
        .end();
    b.begin("timer")
        .strs("compatible", &["arm,armv8-timer"])
        .cells("clock-frequency", &[62_500_000])
        .end();
    b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
    b.begin("cpu-map")
        .begin("cluster0")
        .begin("core0")
        .cells("cpu", &[1])
        .end()
        .end()
        .end();
    for (i, status) in ["okay", "okay", "disabled"].iter().enumerate() {
        b.begin(&format!("cpu@{}", i))
            .str("device_type", "cpu")
            .cells("reg", &[i as u32])
            .str("status", status)
            .end();
    }
    b.end();
    b.end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(info.psci(), Some(PsciConduit::Smc));
    assert_eq!(info.timer_frequency(), Some(62_500_000));
    assert_eq!(info.cpu_count(), 2);
    assert_eq!(info.pl011(), None);
}

#[test]
fn psci_without_method_is_none() {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("psci").strs("compatible", &["arm,psci"]).end();
    b.end();
    assert_eq!(parse(&b.build()).unwrap().psci(), None);
}

#[test]
fn nested_pl011_with_inherited_interrupt_parent() {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("intc@8000000")
        .cells("phandle", &[7])
        .cells("#interrupt-cells", &[3])
        .flag("interrupt-controller")
        .end();
    b.begin("soc")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        .cells("interrupt-parent", &[7]);
    b.begin("serial@1000")
        .strs("compatible", &["arm,pl011"])
        .str("status", "disabled")
        .cells("reg", &[0x1000, 0x100])
        .end();
    b.begin("bus")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        .flag("ranges");
    b.begin("serial@fe201000")
        .strs("compatible", &["arm,pl011", "arm,primecell"])
        .cells("reg", &[0xfe20_1000, 0x200])
        .cells("interrupts", &[0, 121, 4])
        .end();
    b.end();
    b.end();
    b.end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(
        info.pl011(),
        Some(Pl011 {
            base: 0xfe20_1000,
            size: 0x200,
            irq: Some(121)
        })
    );
}

#[test]
fn pl011_ppi_or_one_cell_interrupt_has_no_spi() {
    let mut b = Builder::new();
    root(&mut b).cells("interrupt-parent", &[1]);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("ic")
        .cells("phandle", &[1])
        .cells("#interrupt-cells", &[1])
        .end();
    b.begin("pl011@9000000")
        .strs("compatible", &["arm,pl011"])
        .cells("reg", &[0, 0x900_0000, 0, 0x1000])
        .cells("interrupts", &[5])
        .end();
    b.end();
    assert_eq!(
        parse(&b.build()).unwrap().pl011(),
        Some(Pl011 {
            base: 0x900_0000,
            size: 0x1000,
            irq: None
        })
    );
}

/// Linux has no fixed bank limit (memblock grows its arrays); neither
/// do we: 40 banks (the old limit was 32) all arrive, sorted.
#[test]
fn forty_memory_banks() {
    let mut many: Vec<(u64, u64)> = (0..40u64).map(|i| (0x4000_0000 + i * 0x10_0000, 0x1000)).collect();
    many.reverse();
    let info = parse(&simple_blob(&many)).unwrap();
    assert_eq!(info.memory().len(), 40);
    assert!(info.memory().windows(2).all(|w| w[0].region.base < w[1].region.base));
    assert_eq!(info.total_memory(), 40 * 0x1000);
}

#[test]
fn memreserve_overflow_and_empty_entries() {
    let mut b = Builder::new();
    b.reserve(0x4000_0000, 0).reserve(0xffff_ffff_ffff_f000, 0x2000);
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.end();
    let e = err_of(&b.build());
    assert_eq!(
        e,
        DtError::RegionOverflow {
            node: NodeName::from("/memreserve/"),
            index: 1,
            base: 0xffff_ffff_ffff_f000,
            size: 0x2000
        }
    );
}

/// 40 `/memreserve/` entries plus 40 `/reserved-memory` children with
/// 40-byte names (the old limits were 32 regions and 32-byte names).
#[test]
fn many_reservations_with_long_names() {
    let mut b = Builder::new();
    for i in 0..40u64 {
        b.reserve(0x4000_0000 + i * 0x2000, 0x1000);
    }
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("reserved-memory")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2])
        .flag("ranges");
    let names: Vec<String> = (0..40u64)
        .map(|i| format!("{:r<30}@{:08x}", "region", 0x4080_0000 + i * 0x1000))
        .collect();
    for (i, n) in names.iter().enumerate() {
        b.begin(n)
            .cells("reg", &regs2(&[(0x4080_0000 + i as u64 * 0x1000, 0x1000)]))
            .end();
    }
    b.end().end();
    let info = parse(&b.build()).unwrap();
    assert_eq!(info.reserved().len(), 80);
    assert!(
        info.reserved()[..40]
            .iter()
            .all(|r| r.kind == ReserveKind::MemReserve && r.name().is_empty())
    );
    for (r, n) in info.reserved()[40..].iter().zip(&names) {
        assert_eq!(r.name(), n);
        assert_eq!(r.name().len(), 39);
        assert_eq!(r.kind, ReserveKind::ReservedMemory { no_map: false });
    }
}

fn chosen_blob(bootargs: &str, stdout: &str, model: &str) -> Vec<u8> {
    let mut b = Builder::new();
    b.begin("").cells("#size-cells", &[2]).str("model", model);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("chosen")
        .str("bootargs", bootargs)
        .str("stdout-path", stdout)
        .end();
    b.end();
    b.build()
}

/// Strings are owned copies of any length; only bootargs is cut, at
/// COMMAND_LINE_SIZE - 1 bytes as Linux's early_init_dt_scan_chosen.
#[test]
fn strings_are_copied_and_bootargs_cut_at_command_line_size() {
    for len in [0, 512, 513, 1080, COMMAND_LINE_SIZE - 1] {
        let args = "a".repeat(len);
        let path = "p".repeat(300);
        let model = "m".repeat(200);
        let blob = chosen_blob(&args, &path, &model);
        let info = parse(&blob).unwrap();
        drop(blob); // the summary owns its strings
        assert_eq!(
            (info.bootargs(), info.stdout_path(), info.model()),
            (&*args, &*path, &*model)
        );
        assert_eq!(info.bootargs_truncated(), None);
    }
    for len in [COMMAND_LINE_SIZE, 2100, 10_000] {
        let args: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let info = parse(&chosen_blob(&args, "x", "m")).unwrap();
        assert_eq!(info.bootargs(), &args[..COMMAND_LINE_SIZE - 1]);
        assert_eq!(info.bootargs_truncated(), Some(len));
    }
    // Cut on a char boundary: 2046 ASCII bytes, then a 3-byte char.
    let args = format!("{}\u{20ac}tail", "a".repeat(COMMAND_LINE_SIZE - 2));
    let info = parse(&chosen_blob(&args, "x", "m")).unwrap();
    assert_eq!(info.bootargs(), "a".repeat(COMMAND_LINE_SIZE - 2));
    assert_eq!(info.bootargs_truncated(), Some(args.len()));
}

#[test]
fn non_utf8_bootargs() {
    let mut b = Builder::new();
    root(&mut b);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x100_0000)]);
    b.begin("chosen").prop("bootargs", &[0xff, 0xfe, 0]).end();
    b.end();
    let e = err_of(&b.build());
    assert_eq!(
        e,
        DtError::NotUtf8 {
            node: NodeName::from("chosen"),
            property: "bootargs"
        }
    );
}

// --------------------------------------------------- semantic errors

#[test]
fn no_memory_node() {
    let mut b = Builder::new();
    root(&mut b);
    b.begin("chosen").end();
    pl011_node(&mut b);
    b.end();
    let e = err_of(&b.build());
    assert_eq!(e, DtError::NoMemoryNode);
    assert!(e.to_string().contains("memory"), "{}", e);
}

#[test]
fn zero_sized_bank_names_node_and_bank() {
    let e = err_of(&simple_blob(&[(0x4000_0000, 0x1000), (0x5000_0000, 0)]));
    assert_eq!(
        e,
        DtError::ZeroSizedBank {
            node: NodeName::from("memory@40000000"),
            bank: 1
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("memory@40000000") && msg.contains("entry 1"), "{}", msg);
}

#[test]
fn memory_node_without_reg() {
    let mut b = Builder::new();
    root(&mut b);
    b.begin("memory@40000000").str("device_type", "memory").end();
    b.end();
    let e = err_of(&b.build());
    assert_eq!(
        e,
        DtError::NoReg {
            node: NodeName::from("memory@40000000")
        }
    );
    assert!(e.to_string().contains("memory@40000000"));

    let mut b = Builder::new();
    root(&mut b);
    b.begin("memory@0").str("device_type", "memory").prop("reg", &[]).end();
    b.end();
    assert_eq!(
        err_of(&b.build()),
        DtError::NoReg {
            node: NodeName::from("memory@0")
        }
    );
}

#[test]
fn bad_reg_shapes() {
    let mut b = Builder::new();
    root(&mut b);
    b.begin("memory@0")
        .str("device_type", "memory")
        .cells("reg", &[0, 0, 1])
        .end();
    b.end();
    let e = err_of(&b.build());
    assert_eq!(
        e,
        DtError::BadReg {
            node: NodeName::from("memory@0"),
            len: 12,
            entry_size: 16
        }
    );

    let mut b = Builder::new();
    b.begin("").cells("#address-cells", &[3]).cells("#size-cells", &[2]);
    b.begin("memory@0")
        .str("device_type", "memory")
        .cells("reg", &[0, 0, 0, 0, 1])
        .end();
    b.end();
    let e = err_of(&b.build());
    assert_eq!(
        e,
        DtError::UnsupportedCells {
            node: NodeName::from("memory@0"),
            address_cells: 3,
            size_cells: 2
        }
    );

    let e = err_of(&simple_blob(&[(0xffff_ffff_ffff_f000, 0x2000)]));
    assert_eq!(
        e,
        DtError::RegionOverflow {
            node: NodeName::from("memory@40000000"),
            index: 0,
            base: 0xffff_ffff_ffff_f000,
            size: 0x2000
        }
    );

    let mut b = Builder::new();
    root(&mut b);
    b.begin("memory@0")
        .str("device_type", "memory")
        .cells("reg", &regs2(&[(0, 1)]))
        .cells("numa-node-id", &[0, 1])
        .end();
    b.end();
    let e = err_of(&b.build());
    assert_eq!(
        e,
        DtError::BadPropertyLength {
            node: NodeName::from("memory@0"),
            property: "numa-node-id",
            len: 8,
            expected: 4
        }
    );
}

// ------------------------------------------------- malformed blobs

#[test]
fn bad_magic_reports_found_value() {
    let mut blob = simple_blob(&[(0x4000_0000, 0x1000)]);
    set_be32(&mut blob, 0, 0xdead_beef);
    let e = err_of(&blob);
    assert_eq!(
        e,
        DtError::BadMagic {
            found: 0xdead_beef,
            addr: None
        }
    );
    assert!(e.to_string().contains("0xdeadbeef"), "{}", e);
    // A little-endian FDT is caught the same way.
    let mut le = simple_blob(&[(0x4000_0000, 0x1000)]);
    le[..4].copy_from_slice(&FDT_MAGIC.to_le_bytes());
    assert!(err_of(&le).to_string().contains("0xedfe0dd0"));
}

#[test]
fn header_checks() {
    let good = simple_blob(&[(0x4000_0000, 0x1000)]);
    assert_eq!(err_of(&good[..2]), DtError::TooShort { len: 2 });
    assert_eq!(err_of(&good[..20]), DtError::TooShort { len: 20 });

    let mut b = good.clone();
    set_be32(&mut b, 4, 39);
    assert_eq!(err_of(&b), DtError::TotalSizeTooSmall { totalsize: 39 });
    set_be32(&mut b, 4, (MAX_DTB_SIZE + 1) as u32);
    let e = err_of(&b);
    assert_eq!(
        e,
        DtError::TotalSizeTooLarge {
            totalsize: (MAX_DTB_SIZE + 1) as u32
        }
    );
    assert!(e.to_string().contains("64 MiB"), "{}", e);

    let mut b = good.clone();
    set_be32(&mut b, 4, good.len() as u32 + 1);
    let e = err_of(&b);
    assert_eq!(
        e,
        DtError::Truncated {
            totalsize: good.len() as u32 + 1,
            available: good.len()
        }
    );

    // Version 15 (full-path node names) is too old; version 16 (no
    // size_dt_struct: the header field is garbage) and a later version
    // that is still version-17 compatible are read like the original.
    let mut b = good.clone();
    set_be32(&mut b, 20, 15);
    assert_eq!(
        err_of(&b),
        DtError::UnsupportedVersion {
            version: 15,
            last_comp_version: 16
        }
    );
    let want = parse(&good).unwrap();
    let mut b = good.clone();
    set_be32(&mut b, 20, 16);
    set_be32(&mut b, 36, 0xdead_beef);
    assert_eq!(parse(&b).unwrap(), want);
    let mut b = good.clone();
    set_be32(&mut b, 20, 18);
    set_be32(&mut b, 24, 17);
    assert_eq!(parse(&b).unwrap(), want);
    let mut b = good.clone();
    set_be32(&mut b, 24, 18);
    assert_eq!(
        err_of(&b),
        DtError::UnsupportedVersion {
            version: 17,
            last_comp_version: 18
        }
    );

    let mut b = good.clone();
    set_be32(&mut b, 36, good.len() as u32); // size_dt_struct
    assert!(matches!(
        err_of(&b),
        DtError::BlockOutOfBounds { block: "structure", .. }
    ));
    let mut b = good.clone();
    set_be32(&mut b, 12, u32::MAX); // off_dt_strings
    assert!(matches!(err_of(&b), DtError::BlockOutOfBounds { block: "strings", .. }));
    let mut b = good.clone();
    set_be32(&mut b, 16, 8); // off_mem_rsvmap inside the header
    assert!(matches!(
        err_of(&b),
        DtError::BlockOutOfBounds {
            block: "memory-reservation",
            ..
        }
    ));
    // A reservation map that runs into the structure block and beyond.
    let mut b = good.clone();
    set_be32(&mut b, 16, good.len() as u32 - 8);
    assert!(matches!(err_of(&b), DtError::RsvmapUnterminated { .. }));
}

/// Wrap a hand-written structure block (tokens) into a blob.
fn corrupt(f: impl FnOnce(&mut Builder)) -> StructProblem {
    let mut b = Builder::new();
    f(&mut b);
    match err_of(&b.build_raw()) {
        DtError::Corrupt { problem, .. } => problem,
        other => panic!("expected Corrupt, got {:?}", other),
    }
}

#[test]
fn structure_grammar_is_enforced() {
    let mem = |b: &mut Builder| memory_node(b, "memory@0", &[(0, 0x1000)]);
    assert_eq!(
        corrupt(|b| {
            b.begin("");
            mem(b);
            b.end();
        }),
        StructProblem::UnexpectedEnd
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("").tok(7);
        }),
        StructProblem::UnknownToken(7)
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("x");
            mem(b);
            b.end().tok(FDT_END);
        }),
        StructProblem::RootNameNotEmpty
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("");
            mem(b);
            b.end().begin("").end().tok(FDT_END);
        }),
        StructProblem::SecondRoot
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("");
            mem(b);
            b.str("late", "x").end().tok(FDT_END);
        }),
        StructProblem::PropertyAfterChild
    );
    assert_eq!(
        corrupt(|b| {
            b.str("x", "y").tok(FDT_END);
        }),
        StructProblem::PropertyOutsideNode
    );
    assert_eq!(
        corrupt(|b| {
            b.end().tok(FDT_END);
        }),
        StructProblem::UnbalancedEndNode
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("");
            mem(b);
            b.tok(FDT_END);
        }),
        StructProblem::EndInsideNode { depth: 1 }
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("").prop("#size-cells", &[0, 0, 0, 1, 0]);
            mem(b);
            b.end().tok(FDT_END);
        }),
        StructProblem::CellsLength { len: 5 }
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("").tok(FDT_PROP).tok(4).tok(0x1000).tok(0).end().tok(FDT_END);
        }),
        StructProblem::NameOffsetOutOfRange {
            nameoff: 0x1000,
            strings_size: 0
        }
    );
    assert_eq!(
        corrupt(|b| {
            b.begin("").tok(FDT_PROP).tok(0x100).tok(0).end().tok(FDT_END);
        }),
        StructProblem::ValueOverrun { len: 0x100 }
    );
    // Node name bytes that are not UTF-8.
    assert_eq!(
        corrupt(|b| {
            b.begin("")
                .tok(FDT_BEGIN_NODE)
                .tok(0xff00_0000)
                .end()
                .end()
                .tok(FDT_END);
        }),
        StructProblem::NameNotUtf8
    );
    // A name with no NUL before the block ends.
    assert_eq!(
        corrupt(|b| {
            b.begin("").tok(FDT_BEGIN_NODE).tok(0x4141_4141);
        }),
        StructProblem::NameUnterminated
    );
    // An empty structure block has no root at all.
    let mut b = Builder::new();
    b.tok(FDT_END);
    assert_eq!(err_of(&b.build_raw()), DtError::NoRootNode);
}

#[test]
fn nesting_depth_limit() {
    let nest = |levels: usize| {
        let mut b = Builder::new();
        root(&mut b);
        memory_node(&mut b, "memory@0", &[(0, 0x1000)]);
        for i in 1..levels {
            b.begin(&format!("n{}", i));
        }
        for _ in 0..levels {
            b.end();
        }
        b.build()
    };
    assert!(parse(&nest(MAX_DEPTH)).is_ok());
    let e = err_of(&nest(MAX_DEPTH + 1));
    assert!(
        matches!(
            e,
            DtError::Corrupt {
                problem: StructProblem::TooDeep { limit: MAX_DEPTH },
                ..
            }
        ),
        "{:?}",
        e
    );
}

#[test]
fn garbage_structure_block() {
    let good = simple_blob(&[(0x4000_0000, 0x1000)]);
    let (s0, s1) = (get_be32(&good, 8) as usize, get_be32(&good, 12) as usize);
    let mut rng = XorShift(42);
    for _ in 0..2000 {
        let mut b = good.clone();
        for byte in &mut b[s0..s1] {
            *byte = rng.next() as u8;
        }
        assert!(parse(&b).is_err());
    }
}

#[test]
fn every_truncation_of_a_small_blob_fails_cleanly() {
    let good = simple_blob(&[(0x4000_0000, 0x1000)]);
    for len in 0..good.len() {
        assert!(parse(&good[..len]).is_err(), "len {}", len);
        if len >= FDT_HEADER_SIZE {
            let mut cut = good[..len].to_vec();
            set_be32(&mut cut, 4, len as u32);
            assert!(parse(&cut).is_err(), "patched len {}", len);
        }
    }
    assert!(parse(&good).is_ok());
}

#[test]
fn small_blob_byte_flips_never_panic() {
    let mut b = Builder::new();
    b.reserve(0x4800_0000, 0x1000);
    root(&mut b).cells("interrupt-parent", &[1]);
    memory_node(&mut b, "memory@40000000", &[(0x4000_0000, 0x1000_0000)]);
    b.begin("intc")
        .cells("phandle", &[1])
        .cells("#interrupt-cells", &[3])
        .end();
    b.begin("reserved-memory")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2]);
    b.begin("fw@48100000")
        .cells("reg", &regs2(&[(0x4810_0000, 0x1000)]))
        .flag("no-map")
        .end();
    b.end();
    b.begin("psci")
        .strs("compatible", &["arm,psci-1.0"])
        .str("method", "hvc")
        .end();
    b.begin("cpus").cells("#address-cells", &[1]).cells("#size-cells", &[0]);
    b.begin("cpu@0").str("device_type", "cpu").cells("reg", &[0]).end();
    b.end();
    b.begin("chosen").str("bootargs", "ktest").end();
    pl011_node(&mut b);
    b.end();
    let good = b.build();
    assert!(parse(&good).is_ok());
    let mut rng = XorShift(7);
    for _ in 0..50_000 {
        let mut m = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(m.len());
            m[at] ^= 1 << rng.below(8);
        }
        if let Err(e) = parse(&m) {
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(1234);
    for _ in 0..5000 {
        let len = rng.below(512);
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half the time give it a plausible header so the deeper checks run.
        if len >= FDT_HEADER_SIZE && rng.below(2) == 0 {
            set_be32(&mut b, 0, FDT_MAGIC);
            set_be32(&mut b, 4, len as u32);
            set_be32(&mut b, 20, 17);
            set_be32(&mut b, 24, 16);
            for field in [8usize, 12, 16, 32, 36] {
                set_be32(&mut b, field, rng.below(len) as u32);
            }
        }
        let _ = parse(&b);
    }
}

// ---------------------------------------------------------- display

#[test]
fn mem_region_display_like_memblock() {
    assert_eq!(
        MemRegion::new(0x4000_0000, 0x4000_0000).to_string(),
        "[0x0000000040000000-0x000000007fffffff]"
    );
    assert_eq!(
        MemRegion::new(0x4000_0000, 0x1_0000_0000).to_string(),
        "[0x0000000040000000-0x000000013fffffff]"
    );
    let r = MemRegion::new(0x1000, 0x2000);
    assert_eq!(r.end(), 0x3000);
    assert!(r.contains(0x1000) && r.contains(0x2fff) && !r.contains(0x3000));
}

#[test]
fn error_messages_are_one_sentence_with_values() {
    let n = NodeName::from("memory@40000000");
    let cases: &[(DtError, &[&str])] = &[
        (DtError::NullPointer, &["0"]),
        (DtError::TooShort { len: 7 }, &["7", "40"]),
        (
            DtError::BadMagic {
                found: 0xfeedface,
                addr: Some(0x4800_0000),
            },
            &["0xfeedface", "0x48000000", "0xd00dfeed"],
        ),
        (DtError::TotalSizeTooSmall { totalsize: 12 }, &["12"]),
        (
            DtError::Truncated {
                totalsize: 4096,
                available: 100,
            },
            &["4096", "100"],
        ),
        (
            DtError::UnsupportedVersion {
                version: 2,
                last_comp_version: 1,
            },
            &["2", "1"],
        ),
        (
            DtError::BlockOutOfBounds {
                block: "strings",
                offset: 0x99,
                size: 4,
                totalsize: 0x80,
            },
            &["strings", "0x99", "0x80"],
        ),
        (
            DtError::Corrupt {
                offset: 0x48,
                problem: StructProblem::UnknownToken(0x77),
            },
            &["0x48", "0x77"],
        ),
        (DtError::Fdt(fdt::FdtError::BufferTooSmall), &["fdt"]),
        (DtError::ZeroSizedBank { node: n, bank: 3 }, &["memory@40000000", "3"]),
        (
            DtError::UnsupportedCells {
                node: n,
                address_cells: 3,
                size_cells: 0,
            },
            &["3", "0", "memory@40000000"],
        ),
    ];
    for (e, needles) in cases {
        let msg = e.to_string();
        assert!(!msg.contains('\n') && !msg.ends_with('.'), "{:?}", msg);
        for needle in *needles {
            assert!(msg.contains(needle), "{:?} lacks {:?}", msg, needle);
        }
    }
    // Over-long node names are cut visibly, never silently.
    let long = NodeName::from(&"x".repeat(100));
    assert!(long.as_str().ends_with("...") && long.as_str().len() == 48);
}
