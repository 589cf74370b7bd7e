//! The kernel console port (COM1, a 16550 UART driven through `uart_16550`) and the logger.
//!
//! Output: [`print!`]/[`println!`] and the `log` macros write under an [`IrqMutex`], so
//! lines from threads and interrupt handlers never interleave mid-line. The fatal-error path
//! uses [`emergency_writer`], which takes the port even if the interrupted code held it.
//!
//! Input: the UART raises IRQ 4 when bytes arrive; the handler moves them into a fixed ring
//! (no allocation in interrupt context) and wakes the console thread. Bytes arriving while the
//! ring is full are dropped and counted.

use crate::arch::irq::IrqMutex;
use crate::sched::WaitQueue;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::IER;
use uart_16550::{Config, Uart16550};

const COM1: u16 = 0x3f8;
/// ISA IRQ line of COM1.
pub const COM1_IRQ: u8 = 4;
/// Input ring size: a pasted command line fits many times over.
const RX_RING: usize = 1024;

static PORT: IrqMutex<Option<Uart16550<PioBackend>>> = IrqMutex::new(None);
static RX: IrqMutex<Ring> = IrqMutex::new(Ring { buf: [0; RX_RING], head: 0, len: 0 });
static RX_WAIT: WaitQueue = WaitQueue::new();
static RX_DROPPED: AtomicU64 = AtomicU64::new(0);
/// The interrupt vector IRQ 4 was routed to (0 until routed).
static RX_VECTOR: AtomicU8 = AtomicU8::new(0);

struct Ring {
    buf: [u8; RX_RING],
    head: usize,
    len: usize,
}

/// Sets up COM1 at 115200 8N1 with the FIFO; receive interrupts are enabled later by
/// [`enable_rx_interrupt`] once the I/O APIC routes IRQ 4.
pub fn init() {
    // SAFETY: 0x3f8..0x3ff is COM1 on every PC-compatible machine; only this module uses it.
    let mut uart = match unsafe { Uart16550::new_port(COM1) } {
        Ok(u) => u,
        Err(_) => return,
    };
    let config = Config { baud_rate: uart_16550::BaudRate::Baud115200, ..Config::default() };
    if uart.init(config).is_ok() {
        *PORT.lock() = Some(uart);
    }
}

/// Enables receive interrupts once IRQ 4 is routed to `vector`.
pub fn enable_rx_interrupt(vector: u8) {
    RX_VECTOR.store(vector, Ordering::Relaxed);
    if let Some(uart) = PORT.lock().as_mut() {
        uart.enable_interrupts(IER::DATA_READY);
    }
}

/// IRQ 4 handler: drain the UART into the ring.
pub fn on_interrupt() {
    let mut got = false;
    let mut port = PORT.lock();
    let Some(uart) = port.as_mut() else { return };
    let mut rx = RX.lock();
    while let Ok(byte) = uart.try_receive_byte() {
        if rx.len == RX_RING {
            RX_DROPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let tail = (rx.head + rx.len) % RX_RING;
        rx.buf[tail] = byte;
        rx.len += 1;
        got = true;
    }
    drop(rx);
    drop(port);
    if got {
        RX_WAIT.wake_all();
    }
}

/// Blocks the calling thread until a byte of input is available.
pub fn read_byte() -> u8 {
    loop {
        let mut out = None;
        RX_WAIT.wait_until(|| {
            let mut rx = RX.lock();
            if rx.len > 0 {
                out = Some(rx.buf[rx.head]);
                rx.head = (rx.head + 1) % RX_RING;
                rx.len -= 1;
                true
            } else {
                false
            }
        });
        if let Some(b) = out {
            return b;
        }
    }
}

/// Receive interrupts taken since boot.
pub fn rx_interrupts() -> u64 {
    match RX_VECTOR.load(Ordering::Relaxed) {
        0 => 0,
        v => crate::arch::trap::count(v),
    }
}

pub fn rx_dropped() -> u64 {
    RX_DROPPED.load(Ordering::Relaxed)
}

fn write_bytes(uart: &mut Uart16550<PioBackend>, s: &[u8]) {
    for &b in s {
        if b == b'\n' {
            uart.send_bytes_exact(b"\r\n");
        } else {
            uart.send_bytes_exact(&[b]);
        }
    }
}

struct Locked;

impl Write for Locked {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(uart) = PORT.lock().as_mut() {
            write_bytes(uart, s.as_bytes());
        }
        Ok(())
    }
}

/// Formats into the port, holding the lock for the whole message so lines never interleave.
pub fn print_fmt(args: fmt::Arguments) {
    let mut port = PORT.lock();
    if let Some(uart) = port.as_mut() {
        struct W<'a>(&'a mut Uart16550<PioBackend>);
        impl Write for W<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                write_bytes(self.0, s.as_bytes());
                Ok(())
            }
        }
        let _ = W(uart).write_fmt(args);
    }
}

/// Writer for the fatal path: breaks the port lock (its holder will never run again).
pub fn emergency_writer() -> impl Write {
    // SAFETY: called only when the kernel is about to stop; the interrupted holder of the
    // lock will not resume, and interrupts are disabled on the fatal path.
    unsafe { PORT.force_unlock() };
    Locked
}

/// Waits until the UART has sent everything (so the last line survives QEMU's exit).
pub fn flush() {
    if let Some(mut port) = PORT.try_lock() {
        if let Some(uart) = port.as_mut() {
            for _ in 0..100_000 {
                if uart.lsr().contains(uart_16550::spec::registers::LSR::TRANSMITTER_EMPTY) {
                    break;
                }
            }
        }
    }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::print_fmt(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `log` backend: `[seconds.micros] LEVEL target: message`.
struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let us = crate::time::uptime_us();
        print_fmt(format_args!(
            "[{:>5}.{:06}] {:<5} {}: {}\n",
            us / 1_000_000,
            us % 1_000_000,
            record.level(),
            record.target(),
            record.args()
        ));
    }

    fn flush(&self) {}
}

pub fn init_logger(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
