// SPDX-License-Identifier: GPL-2.0-only
//! Host unit tests of `line` (`cargo htest`), kept apart so that the
//! algorithm file reads as the algorithm.

use super::*;
use alloc::string::String;
use alloc::vec::Vec;

#[test]
fn numbers_decimal_and_hex() {
    assert_eq!(parse_num("0"), Ok(0));
    assert_eq!(parse_num("4096"), Ok(4096));
    assert_eq!(parse_num("0x1000"), Ok(0x1000));
    assert_eq!(parse_num("0X1000"), Ok(0x1000));
    assert_eq!(parse_num("0xDeadBeef"), Ok(0xdead_beef));
    assert_eq!(parse_num("0xffff_8000_1000_0000"), Ok(0xffff_8000_1000_0000));
    assert_eq!(parse_num("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(parse_num("0xffffffffffffffff"), Ok(u64::MAX));
}

#[test]
fn numbers_reject_garbage() {
    assert_eq!(parse_num(""), Err(NumError::Empty));
    assert_eq!(parse_num("0x"), Err(NumError::Invalid));
    assert_eq!(parse_num("12z"), Err(NumError::Invalid));
    assert_eq!(parse_num("0x12g"), Err(NumError::Invalid));
    assert_eq!(parse_num("-1"), Err(NumError::Invalid));
    assert_eq!(parse_num("+1"), Err(NumError::Invalid));
    assert_eq!(parse_num("_1"), Err(NumError::Invalid));
    assert_eq!(parse_num("0x_"), Err(NumError::Invalid));
    assert_eq!(parse_num("1.5"), Err(NumError::Invalid));
    assert_eq!(parse_num("4K"), Err(NumError::Invalid)); // suffixes are for sizes
    assert_eq!(parse_num(" 1"), Err(NumError::Invalid));
}

#[test]
fn numbers_overflow() {
    assert_eq!(parse_num("18446744073709551616"), Err(NumError::Overflow));
    assert_eq!(parse_num("0x10000000000000000"), Err(NumError::Overflow));
    assert_eq!(parse_num("99999999999999999999999"), Err(NumError::Overflow));
}

#[test]
fn sizes_with_suffixes() {
    assert_eq!(parse_size("4096"), Ok(4096));
    assert_eq!(parse_size("4k"), Ok(4096));
    assert_eq!(parse_size("4K"), Ok(4096));
    assert_eq!(parse_size("2m"), Ok(2 << 20));
    assert_eq!(parse_size("2M"), Ok(2 << 20));
    assert_eq!(parse_size("1g"), Ok(1 << 30));
    assert_eq!(parse_size("1G"), Ok(1 << 30));
    assert_eq!(parse_size("0x10K"), Ok(16 << 10));
    assert_eq!(parse_size("0"), Ok(0)); // zero is a valid number; commands reject it
    assert_eq!(parse_size("16383G"), Ok(16383 << 30));
}

#[test]
fn sizes_reject_garbage_and_overflow() {
    assert_eq!(parse_size(""), Err(NumError::Empty));
    assert_eq!(parse_size("K"), Err(NumError::Invalid));
    assert_eq!(parse_size("4KB"), Err(NumError::Invalid));
    assert_eq!(parse_size("4T"), Err(NumError::Invalid));
    assert_eq!(parse_size("4 K"), Err(NumError::Invalid));
    assert_eq!(parse_size("0x"), Err(NumError::Invalid));
    // 2^54 K = 2^64: one past the top.
    assert_eq!(parse_size("18014398509481984K"), Err(NumError::Overflow));
    assert_eq!(parse_size("18014398509481983K"), Ok(18014398509481983 << 10));
    assert_eq!(parse_size("17179869184G"), Err(NumError::Overflow)); // 2^34 G
    assert_eq!(parse_size("0xffffffffffffffffM"), Err(NumError::Overflow));
    assert_eq!(parse_size("99999999999999999999K"), Err(NumError::Overflow));
}

#[test]
fn human_sizes() {
    assert_eq!(alloc::format!("{}", HumanSize(4096)), "4K");
    assert_eq!(alloc::format!("{}", HumanSize(3 << 20)), "3M");
    assert_eq!(alloc::format!("{}", HumanSize(1 << 30)), "1G");
    assert_eq!(alloc::format!("{}", HumanSize(1000)), "1000");
    assert_eq!(alloc::format!("{}", HumanSize(0)), "0");
}

#[test]
fn bad_number_messages() {
    let e = Args::new("12q").num("ADDR").unwrap_err();
    assert_eq!(
        alloc::format!("{}", e),
        "ADDR: '12q' is not a number (decimal or 0x hex)"
    );
    let e = Args::new("4X").size("SIZE").unwrap_err();
    assert_eq!(
        alloc::format!("{}", e),
        "SIZE: '4X' is not a size (decimal or 0x hex, optional K/M/G suffix)"
    );
    let e = Args::new("99999999999999999999").num("VALUE").unwrap_err();
    assert_eq!(
        alloc::format!("{}", e),
        "VALUE: '99999999999999999999' does not fit in 64 bits"
    );
    let e = Args::new("").num("ADDR").unwrap_err();
    assert_eq!(alloc::format!("{}", e), "missing ADDR");
    let e = Args::new("1 2")
        .opt_num("COUNT")
        .and_then(|_| Args::new("1 2").end())
        .unwrap_err();
    assert_eq!(alloc::format!("{}", e), "unexpected argument '1'");
}

#[test]
fn args_sequence() {
    let mut a = Args::new("  64K   0x2000 ");
    assert_eq!(a.size("SIZE"), Ok(64 << 10));
    assert_eq!(a.opt_size("ALIGN"), Ok(Some(0x2000)));
    assert_eq!(a.opt_size("ALIGN"), Ok(None));
    assert_eq!(a.end(), Ok(()));
    let mut a = Args::new("1 2");
    assert_eq!(a.num("A"), Ok(1));
    assert_eq!(a.end(), Err(ArgError::Extra { word: "2" }));
}

#[test]
fn split_commands() {
    assert_eq!(split_command(""), None);
    assert_eq!(split_command("   "), None);
    assert_eq!(split_command("help"), Some(("help", "")));
    assert_eq!(split_command("  vmalloc  64K 4K  "), Some(("vmalloc", "64K 4K")));
}

/// Feed `input`; return the lines entered ("^C" for a cancel) and the echo.
fn run(ed: &mut LineEditor, input: &[u8]) -> (Vec<String>, String) {
    let mut out = String::new();
    let mut lines = Vec::new();
    for &b in input {
        match ed.feed(b, &mut out) {
            Event::Line => lines.push(String::from(ed.line())),
            Event::Cancel => lines.push(String::from("^C")),
            Event::None => {}
        }
    }
    (lines, out)
}

#[test]
fn cr_lf_and_crlf_end_one_line_each() {
    let mut ed = LineEditor::new();
    let (lines, out) = run(&mut ed, b"a\rb\nc\r\nd\n\re\r\r");
    // CRLF is one end; LF CR is two; CR CR is two.
    assert_eq!(lines, ["a", "b", "c", "d", "", "e", ""]);
    assert_eq!(out, "a\nb\nc\nd\n\ne\n\n");
}

#[test]
fn backspace_del_and_ctrl_u() {
    let mut ed = LineEditor::new();
    let (lines, out) = run(&mut ed, b"helq\x7fp\r");
    assert_eq!(lines, ["help"]);
    assert_eq!(out, "helq\x08 \x08p\n");
    let (lines, _) = run(&mut ed, b"ab\x08\x08\x08\x08c\n");
    assert_eq!(lines, ["c"]);
    let (lines, out) = run(&mut ed, b"junk\x15ok\n");
    assert_eq!(lines, ["ok"]);
    assert_eq!(out, "junk\x08 \x08\x08 \x08\x08 \x08\x08 \x08ok\n");
}

#[test]
fn ctrl_c_abandons_the_line() {
    let mut ed = LineEditor::new();
    let (lines, out) = run(&mut ed, b"vfree 0x1\x03meminfo\n");
    assert_eq!(lines, ["^C", "meminfo"]);
    assert_eq!(out, "vfree 0x1^C\nmeminfo\n");
    // A cancelled line is not in the history.
    assert_eq!(ed.history().collect::<Vec<_>>(), ["meminfo"]);
}

#[test]
fn tabs_are_spaces_and_other_controls_are_ignored() {
    let mut ed = LineEditor::new();
    let (lines, _) = run(&mut ed, b"peek\t0x10\x00\x02\xff\n");
    assert_eq!(lines, ["peek 0x10"]);
}

#[test]
fn overlong_lines_ring_the_bell() {
    let mut ed = LineEditor::new();
    let mut input = alloc::vec![b'x'; LINE_MAX + 5];
    input.push(b'\n');
    let (lines, out) = run(&mut ed, &input);
    assert_eq!(lines[0].len(), LINE_MAX);
    assert_eq!(out.matches('\x07').count(), 5);
}

#[test]
fn history_up_and_down() {
    let mut ed = LineEditor::new();
    run(&mut ed, b"one\ntwo\nthree\n");
    // Up twice: "two".
    let (lines, _) = run(&mut ed, b"\x1b[A\x1b[A\n");
    assert_eq!(lines, ["two"]);
    // "two" was re-entered: newest is now "two", then "three".
    let (lines, _) = run(&mut ed, b"\x1b[A\x1b[A\n");
    assert_eq!(lines, ["three"]);
    // Up, up, down = newest again; SS3 form too.
    let (lines, _) = run(&mut ed, b"\x1bOA\x1bOA\x1bOB\n");
    assert_eq!(lines, ["three"]);
    // The draft comes back after going down past the newest entry.
    let (lines, out) = run(&mut ed, b"dra\x1b[A\x1b[Bft\n");
    assert_eq!(lines, ["draft"]);
    assert_eq!(
        out,
        "dra\x08 \x08\x08 \x08\x08 \x08three\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08draft\n"
    );
    // Beyond the oldest entry: bell, line unchanged.
    let (lines, out) = run(&mut ed, b"\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\n");
    assert_eq!(lines, ["one"]);
    assert!(out.contains('\x07'));
    // Down with no browsing: bell only.
    let (_, out) = run(&mut ed, b"\x1b[B");
    assert_eq!(out, "\x07");
}

#[test]
fn history_skips_blank_and_repeated_lines() {
    let mut ed = LineEditor::new();
    run(&mut ed, b"a\n\n   \na\nb\na\n");
    assert_eq!(ed.history().collect::<Vec<_>>(), ["a", "b", "a"]);
}

#[test]
fn history_ring_keeps_the_newest() {
    let mut ed = LineEditor::new();
    for i in 0..HISTORY_LEN + 5 {
        run(&mut ed, alloc::format!("cmd{}\n", i).as_bytes());
    }
    let h: Vec<_> = ed.history().collect();
    assert_eq!(h.len(), HISTORY_LEN);
    assert_eq!(h[0], "cmd5");
    assert_eq!(h[HISTORY_LEN - 1], alloc::format!("cmd{}", HISTORY_LEN + 4));
    // Up HISTORY_LEN times reaches the oldest kept; once more rings.
    let mut input = alloc::vec::Vec::new();
    for _ in 0..HISTORY_LEN + 1 {
        input.extend_from_slice(b"\x1b[A");
    }
    input.push(b'\n');
    let (lines, out) = run(&mut ed, &input);
    assert_eq!(lines, ["cmd5"]);
    assert_eq!(out.matches('\x07').count(), 1);
}

#[test]
fn unknown_escape_sequences_are_swallowed() {
    let mut ed = LineEditor::new();
    // Right arrow, Delete (ESC [ 3 ~), a lone ESC followed by a letter.
    let (lines, _) = run(&mut ed, b"ab\x1b[C\x1b[3~c\x1bxd\n");
    assert_eq!(lines, ["abcd"]);
}

#[test]
fn enter_and_ctrl_c_abandon_an_escape_sequence() {
    let mut ed = LineEditor::new();
    // ESC [ then Enter: the line is entered, not swallowed.
    let (lines, out) = run(&mut ed, b"uptime\x1b[\r");
    assert_eq!(lines, ["uptime"]);
    assert_eq!(out, "uptime\n");
    // ESC [ 1 ; then Ctrl-C: the line is abandoned at once.
    let (lines, _) = run(&mut ed, b"junk\x1b[1;\x03");
    assert_eq!(lines, ["^C"]);
    // A lone ESC then Enter.
    let (lines, _) = run(&mut ed, b"help\x1b\n");
    assert_eq!(lines, ["help"]);
    // ESC O then LF; the editor is back to normal afterwards.
    let (lines, _) = run(&mut ed, b"ab\x1bO\nc\n");
    assert_eq!(lines, ["ab", "c"]);
    // Backspace inside a sequence is processed too.
    let (lines, _) = run(&mut ed, b"abx\x1b[\x7f\n");
    assert_eq!(lines, ["ab"]);
    // A non-ASCII byte ends the sequence and is ignored as usual; the
    // next bytes are text again.
    let (lines, _) = run(&mut ed, b"a\x1b[\xffA\n");
    assert_eq!(lines, ["aA"]);
}
