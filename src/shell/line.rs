// SPDX-License-Identifier: GPL-2.0-only
//! The hardware-free half of the serial shell (`src/shell/` in the kernel
//! binary): number and size parsing, argument handling and the line editor.
//! It lives in the library so that it is unit-tested on the host; the
//! kernel feeds it bytes from the UART and prints what it echoes.
//!
//! * [`parse_num`]: decimal or `0x` hex, 64 bits, overflow is an error;
//! * [`parse_size`]: a number with an optional `K`/`M`/`G` suffix (powers of
//!   1024, case-insensitive), overflow is an error;
//! * [`Args`]: the words of a command line, with one-line errors that name
//!   the command and its usage;
//! * [`LineEditor`]: echo, backspace (DEL and BS), Ctrl-U, Ctrl-C, CR / LF /
//!   CRLF line ends, and a fixed-size history ring walked with the arrow
//!   keys (`ESC [ A` / `ESC [ B`, also `ESC O A` / `ESC O B`); an escape
//!   sequence cut short by a control byte (Enter, Ctrl-C) is abandoned and
//!   the byte processed;

use core::fmt::{self, Write};

// ---------------------------------------------------------------------------
// Numbers and sizes
// ---------------------------------------------------------------------------

/// Why a word is not a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumError {
    /// Nothing to parse.
    Empty,
    /// Not decimal, `0x` hex or (for sizes) a known suffix.
    Invalid,
    /// Does not fit in 64 bits.
    Overflow,
}

/// A [`NumError`] together with the word it is about, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadNumber<'a> {
    pub word: &'a str,
    pub error: NumError,
    /// Whether a K/M/G suffix was allowed (only changes the message).
    pub size: bool,
}

impl fmt::Display for BadNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            NumError::Empty => f.write_str("empty number"),
            NumError::Invalid if self.size => {
                write!(
                    f,
                    "'{}' is not a size (decimal or 0x hex, optional K/M/G suffix)",
                    self.word
                )
            }
            NumError::Invalid => write!(f, "'{}' is not a number (decimal or 0x hex)", self.word),
            NumError::Overflow => write!(f, "'{}' does not fit in 64 bits", self.word),
        }
    }
}

/// Parse decimal (`4096`) or hex (`0x1000`, `0X1000`, digits in either
/// case). `_` may separate digits (`0xffff_8000_1000_0000`), as in Rust.
pub fn parse_num(s: &str) -> Result<u64, NumError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    if s.is_empty() {
        return Err(NumError::Empty);
    }
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars() {
        if c == '_' && any {
            continue;
        }
        let d = c.to_digit(radix).ok_or(NumError::Invalid)?;
        value = value
            .checked_mul(radix as u64)
            .and_then(|v| v.checked_add(d as u64))
            .ok_or(NumError::Overflow)?;
        any = true;
    }
    if !any {
        return Err(NumError::Invalid);
    }
    Ok(value)
}

/// Parse a size: a [`parse_num`] number with an optional `K`, `M` or `G`
/// suffix (x1024, x1024², x1024³; upper or lower case).
pub fn parse_size(s: &str) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Empty);
    }
    let (num, shift) = match s.as_bytes()[s.len() - 1].to_ascii_uppercase() {
        b'K' => (&s[..s.len() - 1], 10),
        b'M' => (&s[..s.len() - 1], 20),
        b'G' => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    if num.is_empty() {
        return Err(NumError::Invalid);
    }
    let v = parse_num(num)?;
    if shift != 0 && v.leading_zeros() < shift {
        return Err(NumError::Overflow);
    }
    Ok(v << shift)
}

/// Human-readable size: `64K`, `3M`, `1G`, or bytes when not a whole K.
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        for (shift, unit) in [(30, 'G'), (20, 'M'), (10, 'K')] {
            if v != 0 && v.is_multiple_of(1 << shift) {
                return write!(f, "{}{}", v >> shift, unit);
            }
        }
        write!(f, "{}", v)
    }
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

/// One-line error of a command's arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgError<'a> {
    /// A required argument is absent.
    Missing { what: &'static str },
    /// More words than the command takes.
    Extra { word: &'a str },
    /// An argument is not a number / size.
    Bad { what: &'static str, bad: BadNumber<'a> },
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Missing { what } => write!(f, "missing {}", what),
            ArgError::Extra { word } => write!(f, "unexpected argument '{}'", word),
            ArgError::Bad { what, bad } => write!(f, "{}: {}", what, bad),
        }
    }
}

/// The words after a command's name.
#[derive(Clone)]
pub struct Args<'a> {
    words: core::str::SplitAsciiWhitespace<'a>,
}

impl<'a> Args<'a> {
    pub fn new(rest: &'a str) -> Self {
        Self {
            words: rest.split_ascii_whitespace(),
        }
    }

    /// The next word, if any.
    pub fn word(&mut self) -> Option<&'a str> {
        self.words.next()
    }

    pub fn required_word(&mut self, what: &'static str) -> Result<&'a str, ArgError<'a>> {
        self.word().ok_or(ArgError::Missing { what })
    }

    /// A required number (`what` names it in the error: "ADDR").
    pub fn num(&mut self, what: &'static str) -> Result<u64, ArgError<'a>> {
        let w = self.required_word(what)?;
        parse_num(w).map_err(|error| ArgError::Bad {
            what,
            bad: BadNumber {
                word: w,
                error,
                size: false,
            },
        })
    }

    /// A required size (K/M/G suffixes allowed).
    pub fn size(&mut self, what: &'static str) -> Result<u64, ArgError<'a>> {
        let w = self.required_word(what)?;
        parse_size(w).map_err(|error| ArgError::Bad {
            what,
            bad: BadNumber {
                word: w,
                error,
                size: true,
            },
        })
    }

    /// An optional number: `None` when there are no more words.
    pub fn opt_num(&mut self, what: &'static str) -> Result<Option<u64>, ArgError<'a>> {
        match self.words.clone().next() {
            None => Ok(None),
            Some(_) => self.num(what).map(Some),
        }
    }

    /// An optional size.
    pub fn opt_size(&mut self, what: &'static str) -> Result<Option<u64>, ArgError<'a>> {
        match self.words.clone().next() {
            None => Ok(None),
            Some(_) => self.size(what).map(Some),
        }
    }

    /// Fail if words are left over.
    pub fn end(&mut self) -> Result<(), ArgError<'a>> {
        match self.word() {
            None => Ok(()),
            Some(word) => Err(ArgError::Extra { word }),
        }
    }
}

/// Split a line into the command name and the rest (both trimmed).
pub fn split_command(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
    if line.is_empty() {
        return None;
    }
    Some(match line.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&line[..i], line[i..].trim_start()),
        None => (line, ""),
    })
}

// ---------------------------------------------------------------------------
// The line editor
// ---------------------------------------------------------------------------

/// Longest line, in bytes (longer input rings the bell and is dropped).
pub const LINE_MAX: usize = 200;
/// Lines kept in the history ring.
pub const HISTORY_LEN: usize = 16;

const BS: u8 = 0x08;
const DEL: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// What one input byte did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Still editing.
    None,
    /// A line was entered (CR or LF): read it with [`LineEditor::line`].
    Line,
    /// Ctrl-C: the line was abandoned.
    Cancel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EscState {
    Normal,
    /// After ESC.
    Esc,
    /// After `ESC [` (CSI) or `ESC O` (SS3), before the final byte.
    Seq,
}

#[derive(Clone, Copy)]
struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    const EMPTY: Line = Line {
        buf: [0; LINE_MAX],
        len: 0,
    };

    fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// A line editor for a dumb serial terminal: everything it draws is plain
/// characters plus backspace-space-backspace, so a log of the session is
/// readable and any terminal renders it.
pub struct LineEditor {
    cur: Line,
    /// The line being typed when history browsing started (restored by
    /// moving down past the newest entry).
    draft: Line,
    history: [Line; HISTORY_LEN],
    /// Next slot to write in the ring, and how many slots hold lines.
    hist_next: usize,
    hist_count: usize,
    /// While browsing: how far back (1 = newest entry).
    hist_pos: usize,
    esc: EscState,
    /// The previous byte was CR: a following LF belongs to it.
    after_cr: bool,
    /// The last event was `Line`/`Cancel`: start afresh on the next byte.
    done: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> Self {
        Self {
            cur: Line::EMPTY,
            draft: Line::EMPTY,
            history: [Line::EMPTY; HISTORY_LEN],
            hist_next: 0,
            hist_count: 0,
            hist_pos: 0,
            esc: EscState::Normal,
            after_cr: false,
            done: false,
        }
    }

    /// The current line (after [`Event::Line`]: the line entered).
    pub fn line(&self) -> &str {
        self.cur.as_str()
    }

    /// Lines in the history, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        let start = (self.hist_next + HISTORY_LEN - self.hist_count) % HISTORY_LEN;
        (0..self.hist_count).map(move |i| self.history[(start + i) % HISTORY_LEN].as_str())
    }

    /// Feed one input byte; echo and redraw go to `out`.
    pub fn feed(&mut self, b: u8, out: &mut dyn Write) -> Event {
        if self.done {
            self.done = false;
            self.cur.len = 0;
            self.hist_pos = 0;
        }
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.esc {
            // A control byte (Enter, Ctrl-C, ...) or a non-ASCII byte cannot
            // be part of an escape sequence: abandon the sequence and
            // process the byte, so a stray ESC never swallows a command.
            _ if self.esc != EscState::Normal && !(0x20..=0x7e).contains(&b) => {
                self.esc = EscState::Normal;
            }
            EscState::Esc => {
                // `ESC [` (CSI) or `ESC O` (SS3) start a sequence; any other
                // printable byte completes a two-byte one (Alt-key): dropped.
                self.esc = if b == b'[' || b == b'O' {
                    EscState::Seq
                } else {
                    EscState::Normal
                };
                return Event::None;
            }
            EscState::Seq => {
                // Parameters and intermediates (0x20..0x3f) until the final
                // byte 0x40..0x7e.
                if (0x40..=0x7e).contains(&b) {
                    self.esc = EscState::Normal;
                    match b {
                        b'A' => self.history_up(out),
                        b'B' => self.history_down(out),
                        _ => {} // cursor left/right, Home, ...: not supported
                    }
                }
                return Event::None;
            }
            EscState::Normal => {}
        }
        match b {
            b'\n' if after_cr => Event::None,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                let _ = out.write_str("\n");
                self.push_history();
                self.done = true;
                Event::Line
            }
            CTRL_C => {
                let _ = out.write_str("^C\n");
                self.done = true;
                Event::Cancel
            }
            CTRL_U => {
                self.erase(out, self.cur.len);
                self.cur.len = 0;
                Event::None
            }
            BS | DEL => {
                if self.cur.len > 0 {
                    self.erase(out, 1);
                    self.cur.len -= 1;
                }
                Event::None
            }
            ESC => {
                self.esc = EscState::Esc;
                Event::None
            }
            b'\t' => self.insert(b' ', out),
            0x20..=0x7e => self.insert(b, out),
            _ => Event::None, // other control bytes, non-ASCII
        }
    }

    fn insert(&mut self, b: u8, out: &mut dyn Write) -> Event {
        if self.cur.len >= LINE_MAX {
            let _ = out.write_char(BEL as char);
            return Event::None;
        }
        self.cur.buf[self.cur.len] = b;
        self.cur.len += 1;
        let _ = out.write_char(b as char);
        Event::None
    }

    fn erase(&self, out: &mut dyn Write, n: usize) {
        for _ in 0..n {
            let _ = out.write_str("\x08 \x08");
        }
    }

    /// Replace what is on screen (and in the buffer) with `line`.
    fn replace(&mut self, line: Line, out: &mut dyn Write) {
        self.erase(out, self.cur.len);
        self.cur = line;
        let _ = out.write_str(self.cur.as_str());
    }

    /// The entry `back` lines back (1 = newest).
    fn hist_entry(&self, back: usize) -> Line {
        self.history[(self.hist_next + HISTORY_LEN - back) % HISTORY_LEN]
    }

    fn history_up(&mut self, out: &mut dyn Write) {
        if self.hist_pos >= self.hist_count {
            let _ = out.write_char(BEL as char);
            return;
        }
        if self.hist_pos == 0 {
            self.draft = self.cur;
        }
        self.hist_pos += 1;
        self.replace(self.hist_entry(self.hist_pos), out);
    }

    fn history_down(&mut self, out: &mut dyn Write) {
        if self.hist_pos == 0 {
            let _ = out.write_char(BEL as char);
            return;
        }
        self.hist_pos -= 1;
        let line = if self.hist_pos == 0 {
            self.draft
        } else {
            self.hist_entry(self.hist_pos)
        };
        self.replace(line, out);
    }

    /// Remember a non-blank line, unless it repeats the newest entry.
    fn push_history(&mut self) {
        let line = self.cur.as_str();
        if line.trim().is_empty() {
            return;
        }
        if self.hist_count > 0 && self.hist_entry(1).as_str() == line {
            return;
        }
        self.history[self.hist_next] = self.cur;
        self.hist_next = (self.hist_next + 1) % HISTORY_LEN;
        self.hist_count = (self.hist_count + 1).min(HISTORY_LEN);
    }
}

// The host build loads this file through #[path] (shell/host.rs), which
// makes it resolve child modules as a mod.rs would: name the file.
#[cfg(test)]
#[path = "line/tests.rs"]
mod tests;
