//! Ending the run: QEMU's `isa-debug-exit` device at port 0xf4.
//!
//! Writing `v` makes QEMU exit with status `(v << 1) | 1`: 0x10 → 33 (pass), 0x11 → 35
//! (fail). Without the device (a real machine) the write does nothing and we halt.

use x86_64::instructions::port::Port;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Pass = 0x10,
    Fail = 0x11,
}

pub fn exit(code: ExitCode) -> ! {
    crate::serial::flush();
    // SAFETY: port 0xf4 is the debug-exit device (or nothing); writing it has no other effect.
    unsafe { Port::<u32>::new(0xf4).write(code as u32) };
    halt_forever()
}

pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
