//! Device drivers. Only what the console needs: the PL011 UART.

pub mod pl011;
