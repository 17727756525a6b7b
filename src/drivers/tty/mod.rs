//! TTY drivers (Linux: drivers/tty/).

pub mod serial;
