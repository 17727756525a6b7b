// SPDX-License-Identifier: GPL-2.0-only
//! The shell as the host build sees it: only its line editor, which is pure
//! logic with unit tests, and the vmaptree writer (src/lib.rs explains the
//! two builds).

#[path = "line.rs"]
pub mod line;

#[path = "vmaptree.rs"]
pub mod vmaptree;
