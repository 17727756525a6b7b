//! ARM PrimeCell PL011 UART (ARM DDI 0183), polled: the kernel console.
//!
//! The driver holds only the virtual address of the register block, so the
//! console can move from its boot mapping (identity, then the fixmap) to the
//! ioremap()ed one by swapping that address.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    /// Data register.
    DR [
        DATA OFFSET(0) NUMBITS(8) [],
        FE OFFSET(8) NUMBITS(1) [],
        PE OFFSET(9) NUMBITS(1) [],
        BE OFFSET(10) NUMBITS(1) [],
        OE OFFSET(11) NUMBITS(1) []
    ],
    /// Flag register.
    FR [
        /// Transmit FIFO empty.
        TXFE OFFSET(7) NUMBITS(1) [],
        /// Receive FIFO full.
        RXFF OFFSET(6) NUMBITS(1) [],
        /// Transmit FIFO full: wait before writing DR.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty: nothing to read.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// Line control.
    LCR_H [
        /// Word length.
        WLEN OFFSET(5) NUMBITS(2) [FiveBit = 0, SixBit = 1, SevenBit = 2, EightBit = 3],
        /// FIFOs enabled.
        FEN OFFSET(4) NUMBITS(1) []
    ],
    /// Control register.
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ],
    /// Interrupt mask set/clear (1 = enabled); all masked: we poll.
    IMSC [
        ALL OFFSET(0) NUMBITS(11) []
    ]
}

register_structs! {
    pub Pl011Regs {
        (0x00 => dr: ReadWrite<u32, DR::Register>),
        (0x04 => rsr_ecr: ReadWrite<u32>),
        (0x08 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: ReadWrite<u32>),
        (0x28 => fbrd: ReadWrite<u32>),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => ifls: ReadWrite<u32>),
        (0x38 => imsc: ReadWrite<u32, IMSC::Register>),
        (0x3c => ris: ReadOnly<u32>),
        (0x40 => mis: ReadOnly<u32>),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// Size of the register window the driver touches.
pub const PL011_REG_SIZE: usize = 0x1000;

/// Most bytes kept from before `init` (the receive FIFO's depth).
const EARLY_RX_MAX: usize = 32;

pub struct Pl011 {
    base: usize,
    /// Bytes that were already received when `init` ran. Changing
    /// LCR_H.FEN empties the receive FIFO (QEMU does), and input piped into
    /// QEMU can arrive before the kernel's first instruction; `getc` hands
    /// these out first, so the first typed byte is not lost.
    early_rx: [u8; EARLY_RX_MAX],
    early_len: u8,
    early_pos: u8,
}

impl Pl011 {
    /// # Safety
    /// `base` must map a PL011's registers as device memory for as long as
    /// this value (or a later `set_base`) is used.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            base,
            early_rx: [0; EARLY_RX_MAX],
            early_len: 0,
            early_pos: 0,
        }
    }

    fn regs(&self) -> &Pl011Regs {
        // SAFETY: per `new`'s contract.
        unsafe { &*(self.base as *const Pl011Regs) }
    }

    pub fn base(&self) -> usize {
        self.base
    }

    /// Move to another mapping of the same UART (boot map -> ioremap).
    ///
    /// # Safety
    /// As for `new`.
    pub unsafe fn set_base(&mut self, base: usize) {
        self.flush();
        self.base = base;
    }

    /// 8N1 with FIFOs, transmitter and receiver on, interrupts masked.
    /// The baud rate divisor is left as firmware set it (QEMU ignores it).
    pub fn init(&mut self) {
        self.flush();
        // Keep what arrived before us: the FEN write below drops it.
        let mut n = self.early_len as usize;
        while n < EARLY_RX_MAX && !self.regs().fr.is_set(FR::RXFE) {
            self.early_rx[n] = self.regs().dr.read(DR::DATA) as u8;
            n += 1;
        }
        self.early_len = n as u8;
        let r = self.regs();
        r.cr.set(0);
        r.imsc.set(0);
        r.icr.set(0x7ff);
        r.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        r.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    pub fn putc(&mut self, c: u8) {
        let r = self.regs();
        while r.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        r.dr.set(c as u32);
    }

    /// Wait until every queued byte has left the shifter.
    pub fn flush(&self) {
        let r = self.regs();
        while r.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }

    /// A received byte, if any (polled).
    pub fn getc(&mut self) -> Option<u8> {
        if self.early_pos < self.early_len {
            self.early_pos += 1;
            return Some(self.early_rx[self.early_pos as usize - 1]);
        }
        let r = self.regs();
        if r.fr.is_set(FR::RXFE) {
            None
        } else {
            Some(r.dr.read(DR::DATA) as u8)
        }
    }
}
