//! HLOS's console: the PL011 its DT names (passed through by the hypervisor), and the
//! semihosting exit a failed check ends the run with.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

static UART: AtomicU64 = AtomicU64::new(0);

/// Use the PL011 data register at `base` (from the DT), if any.
pub fn init(base: Option<u64>) {
    UART.store(base.unwrap_or(0), Ordering::Relaxed);
}

/// Writes to the PL011.
pub struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let dr = UART.load(Ordering::Relaxed);
        if dr == 0 {
            return Ok(());
        }
        for b in s.bytes() {
            // SAFETY: the PL011 data register from HLOS's DT, device memory in its stage 1
            // (VA 0..1 GiB) and passed through by the hypervisor.
            unsafe { core::ptr::write_volatile(dr as *mut u32, b as u32) };
        }
        Ok(())
    }
}

/// Print a line to the PL011, prefixed "hlos: ".
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::Uart, "hlos: ");
        let _ = writeln!($crate::console::Uart, $($arg)*);
    }};
}

/// Report a failed check and end QEMU with status 1 (semihosting SYS_EXIT, extended form).
pub fn fail(what: fmt::Arguments<'_>) -> ! {
    let _ = writeln!(Uart, "hlos: FAIL: {what}");
    let block = [0x20026u64, 1];
    // SAFETY: semihosting SYS_EXIT; QEMU runs with -semihosting, so this does not return.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(noreturn))
    }
}
