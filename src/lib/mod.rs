// SPDX-License-Identifier: GPL-2.0-only
//! Small generic helpers (Linux: lib/).

pub mod kfifo;
pub mod kstrtox;
pub mod rand;
pub mod rbtree;
