//! PL011 output (QEMU virt, data register at 0x0900_0000) and semihosting exit.

use core::fmt::{self, Write};

const PL011_DR: u64 = 0x0900_0000;

/// Writes to the PL011.
pub struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: the PL011 data register of QEMU virt, device memory in EL2's stage 1.
            unsafe { core::ptr::write_volatile(PL011_DR as *mut u32, b as u32) };
        }
        Ok(())
    }
}

/// Print to the PL011.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Uart, $($arg)*);
    }};
}

/// End QEMU with `code` as its exit status (semihosting SYS_EXIT, extended form).
pub fn exit(code: u32) -> ! {
    let block = [0x20026u64, code as u64];
    #[cfg(target_arch = "aarch64")]
    // SAFETY: semihosting SYS_EXIT; QEMU runs with -semihosting, so this does not return.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(noreturn))
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = block;
        loop {}
    }
}

/// Report a failed check and exit with status 1.
pub fn fail(what: fmt::Arguments<'_>) -> ! {
    let _ = writeln!(Uart, "qemu board: FAIL: {what}");
    exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Uart, "qemu board: FAIL: panic: {info}");
    exit(1)
}
