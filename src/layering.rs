// SPDX-License-Identifier: GPL-2.0-only
//! The layering check (a host test, run by `cargo htest`): every file of the
//! kernel belongs to a layer, and may import only from its own layer or the
//! layers below; the components (one per row of [`LAYERS`]) form no import
//! cycle. docs/architecture.md explains the layers; this table is the rule.
//!
//! An import is any `crate::` path (in `use` or inline), a `super::` path,
//! and a use of a macro that another file defines (`pr_info!`, `kassert!`,
//! ...). The check reads the source text; it is deliberately simple (no
//! macro expansion), so the table is conservative rather than clever.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// (module path prefix, layer, what the layer is). A file's component is
/// the longest prefix that matches its module path (directories as in
/// `src/`, `arch` standing for `arch/arm64`). Lower layers know nothing of
/// higher ones.
const LAYERS: &[(&str, u8, &str)] = &[
    // 0: portable logic with no global state, compiled and tested on the host.
    ("lib", 0, "generic helpers"),
    ("arch/arm64/memory", 0, "the virtual memory map"),
    (
        "arch/arm64/barrier",
        0,
        "smp_cond_load_relaxed (waiting in wfe), cpu_relax",
    ),
    ("kernel/locking", 0, "spinlock_t"),
    (
        "kernel/rcu/segcblist",
        0,
        "RCU's callback segments and grace-period numbers",
    ),
    ("arch/arm64/mm/pgtable", 0, "page-table format and walker"),
    ("mm/memblock", 0, "memblock's algorithm"),
    ("mm/buddy", 0, "the buddy allocator's algorithm"),
    ("mm/numa", 0, "NUMA node masks and fallback order"),
    ("mm/percpu_map", 0, "a per-CPU chunk's area map"),
    ("shell/line", 0, "the shell's line editor"),
    ("shell/host", 0, "the host build's shell"),
    // Files that only declare their directory's modules.
    ("arch/arm64", 0, "module declarations"),
    ("drivers", 0, "module declarations"),
    ("drivers/of", 1, "the device-tree parser (feeds memblock's types)"),
    // 2: the CPU and the console hardware, no printing.
    ("arch/arm64/kernel", 2, "boot assembly, vectors, CPU registers"),
    ("arch/arm64/kernel/cpu", 2, "CPU identification, halt"),
    ("arch/arm64/kernel/timer", 2, "the generic timer"),
    ("arch/arm64/kernel/psci", 2, "PSCI calls"),
    ("arch/arm64/kernel/semihosting", 2, "semihosting exit"),
    ("arch/arm64/kernel/stacktrace", 2, "stack bounds, backtrace"),
    ("arch/arm64/kernel/percpu", 2, "per-CPU data behind TPIDR_EL1"),
    ("arch/arm64/kernel/irq", 2, "IRQ masking, idle, the irqchip hooks"),
    ("drivers/tty/serial/pl011", 2, "the PL011 registers"),
    // 3: printk, panic, power-off.
    ("kernel", 3, "printk, panic, reboot"),
    // 4: exception handling and setup_arch, which print and panic.
    ("arch/arm64/kernel/traps", 4, "traps, the oops, catch_fault"),
    ("arch/arm64/kernel/setup", 4, "setup_arch"),
    (
        "arch/arm64/kernel/smp",
        4,
        "secondary entry, idle loop, IPIs, cross-calls, CPU_OFF",
    ),
    (
        "kernel/rcu",
        4,
        "RCU: readers, quiescent states, grace periods, call_rcu",
    ),
    // 5: memory management, generic and arm64.
    ("mm", 5, "page_alloc, slab, heap, vmalloc, vmap blocks"),
    (
        "arch/arm64/mm",
        5,
        "paging_init, map_mem, fixmap, ioremap, memblock init",
    ),
    // 6: drivers that need mm.
    ("drivers/tty/serial/console", 6, "the console's ioremap"),
    ("drivers/irqchip", 6, "GICv2 and GICv3, mapped with ioremap"),
    (
        "kernel/rcu/kvfree",
        6,
        "kvfree_rcu's batches, freed with kfree and vfree",
    ),
    (
        "kernel/smp",
        6,
        "smp_init: vmap'd stacks for the secondaries, CPU_ON, spin-table",
    ),
    // 7: the tools a user drives.
    ("shell", 7, "the serial shell"),
    ("ktest", 7, "in-kernel tests"),
    ("bench", 7, "benchmarks"),
    // 8: init wires everything together; only it knows the tools.
    ("init", 8, "start_kernel, boot parameters, run_init"),
];

/// Rows that form one subsystem for the cycle check. Memory management is
/// one subsystem in two directories, as in Linux: the generic half calls
/// the arch half's page-table and TLB hooks, the arch half calls memblock,
/// the page allocator and get_vm_area (ioremap).
const SUBSYSTEMS: &[(&str, &str)] = &[("arch/arm64/mm", "mm")];

fn subsystem(prefix: &'static str) -> &'static str {
    SUBSYSTEMS
        .iter()
        .find(|(p, _)| *p == prefix)
        .map_or(prefix, |(_, s)| *s)
}

/// Macros exported at the crate root, and the module that defines each.
const MACROS: &[(&str, &str)] = &[
    ("printk", "kernel/printk"),
    ("pr_emerg", "kernel/printk"),
    ("pr_err", "kernel/printk"),
    ("pr_warn", "kernel/printk"),
    ("pr_notice", "kernel/printk"),
    ("pr_info", "kernel/printk"),
    ("pr_debug", "kernel/printk"),
    ("print", "kernel/printk"),
    ("println", "kernel/printk"),
    ("kassert", "ktest"),
    ("kassert_eq", "ktest"),
    ("kexpect_fault", "ktest"),
    ("kskip_unless", "ktest"),
    ("kskip_unless_free_pages", "ktest"),
];

/// The kernel's source files: (module path, text). Test files and the two
/// crate roots are left out (the roots only declare modules).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {}", dir.display(), e)) {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if rel == "lib.rs" || rel == "main.rs" || rel == "layering.rs" || rel.ends_with("/tests.rs") {
            continue;
        }
        let module = rel.trim_end_matches(".rs").trim_end_matches("/mod").to_string();
        out.push((module, fs::read_to_string(&f).unwrap()));
    }
    out
}

/// The row of [`LAYERS`] a module belongs to: the longest matching prefix.
fn component(module: &str) -> Option<&'static (&'static str, u8, &'static str)> {
    LAYERS
        .iter()
        .filter(|(p, _, _)| module == *p || module.starts_with(&format!("{}/", p)))
        .max_by_key(|(p, _, _)| p.len())
}

/// Drop comments and string literals, so that prose and messages that
/// mention a path are not taken for imports.
fn strip_comments_and_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut in_str = false;
        let mut prev = ' ';
        for c in code.chars() {
            if c == '"' && prev != '\\' && prev != '\'' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Every module path a file refers to, as segments after `crate::` (with
/// `use crate::{a::b, c}` groups expanded one level) or resolved from
/// `super::`.
fn referenced_paths(module: &str, code: &str, is_dir_module: bool) -> Vec<Vec<String>> {
    let ident = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| p.trim().to_string())
            .take_while(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect()
    };
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (start, _) in code.match_indices("crate::") {
        if start > 0 && (bytes[start - 1] == b'$' || bytes[start - 1].is_ascii_alphanumeric()) {
            continue;
        }
        let rest = &code[start + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segs = ident(item.trim());
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
        } else {
            let segs = ident(rest);
            // `crate::a::{b, c}`: the group's items hang off `a`.
            let after = &rest[segs.iter().map(|s| s.len() + 2).sum::<usize>().min(rest.len())..];
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let mut s = segs.clone();
                    s.extend(ident(item.trim()));
                    out.push(s);
                }
            } else if !segs.is_empty() {
                out.push(segs);
            }
        }
    }
    // super:: relative to this module (a mod.rs file is its directory).
    let mut parent: Vec<String> = module.split('/').map(String::from).collect();
    if !is_dir_module {
        parent.pop();
    }
    for (start, _) in code.match_indices("super::") {
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b':') {
            continue;
        }
        let segs = ident(&code[start + "super::".len()..]);
        if segs.first().is_some_and(|s| s != "*") {
            let mut p = parent.clone();
            p.extend(segs);
            // `arch` in a module path stands for the directory arch/arm64.
            if p.first().is_some_and(|s| s == "arch") && p.get(1).is_some_and(|s| s == "arm64") {
                p.remove(1);
            }
            out.push(p);
        }
    }
    out
}

/// The module a `crate::` path lands in: the longest prefix of its
/// segments that is a module of the tree.
fn resolve(segs: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut path: Vec<String> = segs.to_vec();
    if path.first().is_some_and(|s| s == "arch") {
        path.insert(1, "arm64".into());
    }
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("/"))
        .find(|p| modules.contains(p))
}

/// (importing module, imported module) for every import in the tree.
fn imports() -> Vec<(String, String)> {
    let files = sources();
    let mut modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    // Directories whose mod.rs is declaration-only still count as modules.
    for (m, _) in &files {
        let mut p = m.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            modules.insert(p.to_string());
        }
    }
    let mut out = Vec::new();
    for (module, text) in &files {
        let code = strip_comments_and_strings(text);
        let dir_module = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(module).is_dir();
        for segs in referenced_paths(module, &code, dir_module) {
            // `crate::pr_info!` and friends are macros, handled below.
            if segs.len() == 1 && MACROS.iter().any(|(m, _)| *m == segs[0]) {
                continue;
            }
            if let Some(target) = resolve(&segs, &modules) {
                out.push((module.clone(), target));
            }
        }
        for (mac, home) in MACROS {
            let used = code.match_indices(&format!("{}!", mac)).any(|(i, _)| {
                let b = code.as_bytes();
                i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
            });
            let defines = code.contains(&format!("macro_rules! {}", mac));
            if used && !defines {
                out.push((module.clone(), home.to_string()));
            }
        }
    }
    out
}

#[test]
fn every_file_has_a_layer() {
    let missing: Vec<String> = sources()
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| component(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "files in no layer (add them to LAYERS in src/layering.rs): {:?}",
        missing
    );
}

#[test]
fn no_layer_imports_a_higher_one() {
    let mut bad = Vec::new();
    for (from, to) in imports() {
        let (Some(f), Some(t)) = (component(&from), component(&to)) else {
            continue;
        };
        if t.1 > f.1 {
            bad.push(format!(
                "{} (layer {}, {}) imports {} (layer {}, {})",
                from, f.1, f.2, to, t.1, t.2
            ));
        }
    }
    bad.sort();
    bad.dedup();
    assert!(
        bad.is_empty(),
        "lower layers importing higher ones:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn components_form_no_import_cycle() {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in imports() {
        if let (Some(f), Some(t)) = (component(&from), component(&to)) {
            let (f, t) = (subsystem(f.0), subsystem(t.0));
            if f != t {
                edges.entry(f).or_default().insert(t);
            }
        }
    }
    // Depth-first search; a back edge is a cycle.
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        state.insert(n, 1);
        stack.push(n);
        for &m in edges.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let i = stack.iter().position(|&s| s == m).unwrap();
                    let mut cycle = stack[i..].to_vec();
                    cycle.push(m);
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    for &(n, _, _) in LAYERS {
        let n = subsystem(n);
        if !state.contains_key(n)
            && let Some(c) = visit(n, &edges, &mut state, &mut Vec::new())
        {
            panic!("import cycle between components: {}", c.join(" -> "));
        }
    }
}

/// The check itself must catch what it is for: an upward import and a
/// cycle in a made-up tree.
#[test]
fn the_check_sees_upward_imports() {
    let code = strip_comments_and_strings(
        "use crate::{pr_info, mm::vmalloc};\n// crate::init::main in a comment\nlet s = \"crate::shell\";\nsuper::traps::catch_fault(f);\n",
    );
    let refs = referenced_paths("arch/arm64/kernel/psci", &code, false);
    let modules: BTreeSet<String> = [
        "mm",
        "mm/vmalloc",
        "arch",
        "arch/arm64",
        "arch/arm64/kernel",
        "arch/arm64/kernel/traps",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let targets: Vec<String> = refs.iter().filter_map(|s| resolve(s, &modules)).collect();
    assert!(targets.contains(&"mm/vmalloc".to_string()), "{:?}", targets);
    assert!(
        targets.contains(&"arch/arm64/kernel/traps".to_string()),
        "{:?}",
        targets
    );
    assert!(
        !targets.iter().any(|t| t.starts_with("init") || t.starts_with("shell")),
        "{:?}",
        targets
    );
    // psci (layer 2) importing traps (layer 4) and vmalloc (layer 5) is upward.
    let psci = component("arch/arm64/kernel/psci").unwrap().1;
    assert!(component("arch/arm64/kernel/traps").unwrap().1 > psci);
    assert!(component("mm/vmalloc").unwrap().1 > psci);
}
