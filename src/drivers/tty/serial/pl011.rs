// SPDX-License-Identifier: GPL-2.0-only
//! ARM PrimeCell PL011 UART (ARM DDI 0183), polled: the kernel console.
//!
//! The driver holds only the virtual address of the register block, so the
//! console can move from its boot mapping (identity, then the fixmap) to the
//! ioremap()ed one by swapping that address.
//!
//! # Input that is never lost
//!
//! Received bytes go from the UART into a software receive ring
//! ([`RX_RING_LEN`] bytes) whenever the driver touches the UART: in
//! [`Pl011::getc`], in [`Pl011::poll_rx`] and on every [`Pl011::putc`] (which
//! reads UARTFR anyway). Readers take bytes from the ring in arrival order.
//!
//! [`Pl011::init`] never changes `UARTLCR_H.FEN`. Changing FEN empties the
//! receive FIFO: the TRM's own recipe for reprogramming UARTCR flushes the
//! FIFOs by clearing FEN, and QEMU (hw/char/pl011.c) resets its FIFO on any
//! LCR_H write that flips FEN. Input piped into QEMU arrives from the
//! kernel's first instruction on, and no drain loop can prove that nothing
//! lands between its last read and the LCR_H write; the old driver lost the
//! 33rd byte that way in about 15 % of boots. So the FIFO mode stays as the
//! firmware (or reset) left it, and only the word length is corrected, by an
//! LCR_H write that keeps FEN as it is:
//!
//! * QEMU: with FEN clear the "FIFO" is a one-byte holding register, and
//!   QEMU's chardev holds further input back while it is full
//!   (`can_receive` = 0); with FEN set the same happens at the FIFO's depth.
//!   Either way nothing is dropped however slowly the kernel polls, as long
//!   as FEN never changes. The ring only stops draining when it is full, so
//!   back-pressure reaches the sender instead of dropping bytes.
//! * Real hardware has no such back-pressure without RTS/CTS flow control:
//!   the FIFO (32 bytes when FEN is set, which every firmware console -- TF-A,
//!   U-Boot, UEFI -- leaves on, and which Linux's pl011 earlycon also keeps as
//!   found) only buys time, and a polled driver that does not read for longer
//!   than FIFO depth x character time (2.8 ms at 115200 baud) loses input.
//!   Turning FEN on ourselves would trade a certain flush of what is already
//!   queued for a deeper FIFO later; keeping the firmware's setting loses
//!   nothing at the switch. Overruns that do happen are flagged by the UART
//!   (the OE bit of UARTDR); they are counted and reported
//!   ([`Pl011::take_overruns`]), never silent.

use crate::lib::kfifo::InputQueue;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
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
    /// Interrupt mask set/clear (1 = enabled); only RX/RT are ever enabled.
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

/// QEMU virt's PL011, used as the boot console before the device tree is
/// read (Linux: `earlycon=pl011,0x9000000`). Reached through the early
/// identity map; the console stays on this UART for good (see console.rs).
pub const EARLYCON_PL011_PHYS: usize = 0x0900_0000;

/// UARTIMSC's RXIM (bit 4) and RTIM (bit 6).
const IMSC_RX: u32 = (1 << 4) | (1 << 6);

/// Size of the register window the driver touches.
pub const PL011_REG_SIZE: usize = 0x1000;

/// Bytes the software receive ring holds.
pub const RX_RING_LEN: usize = 512;

/// `UARTPeriphID0..3` as one little-endian value for a PL011 (part 0x011,
/// designer 0x41 = ARM), revision and configuration bits masked off.
const PL011_PERIPH_ID: u32 = 0x0004_1011;
const PERIPH_ID_MASK: u32 = 0x000f_ffff;
/// `UARTPCellID0..3`: the PrimeCell component ID every PrimeCell returns.
const PRIMECELL_ID: u32 = 0xb105_f00d;
const PERIPH_ID0: usize = 0xfe0;
const PCELL_ID0: usize = 0xff0;

/// What the identification registers at 0xFE0..0xFFC say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimeCellId {
    pub periph_id: u32,
    pub pcell_id: u32,
}

impl PrimeCellId {
    /// Read the eight ID registers (each holds one byte in bits 7:0).
    ///
    /// # Safety
    /// `base` must map a 4 KiB MMIO window as device memory; the reads are
    /// 32-bit and aligned, and have no side effects on a PrimeCell.
    pub unsafe fn read(base: usize) -> Self {
        let reg = |off: usize| -> u32 {
            // SAFETY: per the contract: inside the mapped window, aligned.
            unsafe { core::ptr::read_volatile((base + off) as *const u32) & 0xff }
        };
        let word = |off: usize| (0..4).fold(0u32, |v, i| v | reg(off + 4 * i) << (8 * i));
        Self {
            periph_id: word(PERIPH_ID0),
            pcell_id: word(PCELL_ID0),
        }
    }

    /// A PL011 answers with its part number and the PrimeCell ID.
    pub fn is_pl011(&self) -> bool {
        self.pcell_id == PRIMECELL_ID && self.periph_id & PERIPH_ID_MASK == PL011_PERIPH_ID
    }

    /// The PL011 revision (UARTPeriphID2 bits 7:4): r1p5 is 3.
    pub fn revision(&self) -> u32 {
        (self.periph_id >> 20) & 0xf
    }
}

/// How `init` found and left the UART (for the boot log).
#[derive(Clone, Copy, Debug)]
pub struct InitReport {
    /// UARTLCR_H and UARTCR before `init` touched them.
    pub lcr_h: u32,
    pub cr: u32,
    /// FIFOs enabled (as found, never changed).
    pub fifo: bool,
}

pub struct Pl011 {
    base: usize,
    rx: InputQueue<RX_RING_LEN>,
    /// Bytes the UART reports as lost (UARTDR.OE), not yet reported.
    overruns: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must map a PL011's registers as device memory for as long as
    /// this value (or a later `set_base`) is used.
    pub const unsafe fn new(base: usize) -> Self {
        Self {
            base,
            rx: InputQueue::new(),
            overruns: 0,
        }
    }

    fn regs(&self) -> &Pl011Regs {
        // SAFETY: `new`'s (and set_base's) contract: base maps this PL011's
        // registers as device memory while self is used; Pl011Regs is their
        // layout (register_structs! checks the offsets) and only volatile
        // accesses through its cells touch them.
        unsafe { &*(self.base as *const Pl011Regs) }
    }

    pub fn base(&self) -> usize {
        self.base
    }

    /// Move to another mapping of the same UART (boot map -> ioremap).
    /// Nothing is reprogrammed, so nothing queued in the UART is lost.
    ///
    /// # Safety
    /// As for `new`.
    pub unsafe fn set_base(&mut self, base: usize) {
        self.flush();
        self.poll_rx();
        self.base = base;
    }

    /// 8-bit words, transmitter and receiver on, interrupts masked, the
    /// FIFO mode (FEN) and the baud rate divisor left as found (see the
    /// module doc: changing FEN flushes the receive FIFO; QEMU ignores the
    /// divisor). Bytes already received stay in the UART until read.
    pub fn init(&mut self) -> InitReport {
        self.flush();
        self.poll_rx();
        let r = self.regs();
        let report = InitReport {
            lcr_h: r.lcr_h.get(),
            cr: r.cr.get(),
            fifo: r.lcr_h.is_set(LCR_H::FEN),
        };
        r.imsc.set(0);
        r.icr.set(0x7ff);
        if !r.lcr_h.matches_all(LCR_H::WLEN::EightBit) {
            // Same FEN as found: this write cannot flush the FIFO.
            r.lcr_h.modify(LCR_H::WLEN::EightBit);
        }
        if !r.cr.matches_all(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET) {
            // Enabling never touches the FIFOs.
            r.cr.modify(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        }
        report
    }

    /// Unmask the receive and receive-timeout interrupts (UARTIMSC RXIM,
    /// RTIM): the line goes high while received bytes wait in the UART and
    /// drops once [`Pl011::poll_rx`] has read them, so the handler only
    /// drains; it never writes UARTICR, which could clear the interrupt of
    /// a byte that arrived after the drain and leave it unannounced.
    pub fn enable_rx_irq(&mut self) {
        let r = self.regs();
        r.imsc.set(r.imsc.get() | IMSC_RX);
    }

    /// Move what the UART has received into the ring (until it is full:
    /// then the UART holds the rest, and QEMU holds back the sender).
    pub fn poll_rx(&mut self) {
        while !self.rx.is_full() && !self.regs().fr.is_set(FR::RXFE) {
            self.read_dr();
        }
    }

    fn read_dr(&mut self) {
        let d = self.regs().dr.extract();
        if d.is_set(DR::OE) {
            // The byte is valid; at least one before it was lost.
            self.overruns += 1;
        }
        // Callers only read UARTDR when the queue has room.
        let stored = self.rx.push(d.read(DR::DATA) as u8);
        debug_assert!(stored);
    }

    pub fn putc(&mut self, c: u8) {
        loop {
            let fr = self.regs().fr.extract();
            // Reading FR anyway: take a received byte while we are here, so
            // long output does not leave input sitting in a small FIFO.
            if !fr.is_set(FR::RXFE) && !self.rx.is_full() {
                self.read_dr();
            }
            if !fr.is_set(FR::TXFF) {
                break;
            }
            core::hint::spin_loop();
        }
        self.regs().dr.set(c as u32);
    }

    /// Wait until every queued byte has left the shifter.
    pub fn flush(&self) {
        let r = self.regs();
        while r.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }

    /// The oldest received byte, if any (polled).
    pub fn getc(&mut self) -> Option<u8> {
        if self.rx.is_empty() {
            self.poll_rx();
        }
        self.rx.pop()
    }

    /// Take the oldest received `b` out of the input (the rest keeps its
    /// order): how a long-running command notices Ctrl-C without eating
    /// what was typed ahead for the shell.
    pub fn take_byte(&mut self, b: u8) -> bool {
        self.poll_rx();
        self.rx.remove_first(b)
    }

    /// Receive overruns seen since the last call.
    pub fn take_overruns(&mut self) -> usize {
        core::mem::take(&mut self.overruns)
    }
}
