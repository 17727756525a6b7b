//! Small generic helpers (Linux: lib/).

pub mod kfifo;
pub mod kstrtox;
pub mod rand;
pub mod rbtree;
