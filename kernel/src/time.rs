//! Time: the TSC, calibrated once against the PIT, is the clock; the local APIC timer
//! (see `arch::apic`) provides the periodic tick that drives preemption and sleep.
//!
//! Under TCG the TSC follows host time; under `-icount shift=0` it counts guest
//! instructions (1 per ns of virtual time), which is what `make bench` relies on.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// PIT input clock (Hz), fixed by the PC architecture.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms keeps boot fast and gives ~0.01% resolution.
const CALIBRATE_MS: u64 = 10;

#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear in ring 0 anyway.
    unsafe { core::arch::x86_64::_rdtsc() }
}

pub fn record_boot_tsc() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

/// Measures the TSC frequency with PIT channel 2 in one-shot mode (no interrupts needed).
pub fn calibrate_tsc() -> u64 {
    let count = (PIT_HZ * CALIBRATE_MS / 1000) as u16;
    let mut gate: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and its gate on every PC; nothing else uses
    // channel 2 (the speaker), so programming it cannot disturb other devices.
    let hz = unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01); // gate on, speaker off
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        // Restart the count: pulse the gate low then high.
        let g = gate.read();
        gate.write(g & !0x01);
        gate.write(g | 0x01);
        let start = rdtsc();
        while gate.read() & 0x20 == 0 {}
        let end = rdtsc();
        (end - start) * 1000 / CALIBRATE_MS
    };
    TSC_HZ.store(hz, Ordering::Relaxed);
    US_PER_TSC.store(((1_000_000u128 << 32) / hz.max(1) as u128) as u64, Ordering::Relaxed);
    hz
}

/// µs per TSC tick as a 32.32 fixed-point number: [`tsc_to_us`] multiplies and shifts
/// instead of dividing (it runs on every context switch).
static US_PER_TSC: AtomicU64 = AtomicU64::new(0);

/// TSC ticks to microseconds, rounded down (0 before calibration); a multiply and a shift.
#[inline]
pub fn tsc_to_us(ticks: u64) -> u64 {
    ((ticks as u128 * US_PER_TSC.load(Ordering::Relaxed) as u128) >> 32) as u64
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// TSC ticks to nanoseconds (0 before calibration).
pub fn tsc_to_ns(ticks: u64) -> u64 {
    let hz = tsc_hz();
    if hz == 0 {
        return 0;
    }
    ((ticks as u128) * 1_000_000_000 / hz as u128) as u64
}

/// Nanoseconds to TSC ticks, saturating at `u64::MAX` (a domain may ask for any duration).
pub fn ns_to_tsc(ns: u64) -> u64 {
    ((ns as u128) * tsc_hz() as u128 / 1_000_000_000).min(u64::MAX as u128) as u64
}

pub fn uptime_ns() -> u64 {
    tsc_to_ns(rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed)))
}

pub fn uptime_us() -> u64 {
    uptime_ns() / 1000
}
