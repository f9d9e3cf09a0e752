//! The board's console (the PL011 of QEMU virt at 0x0900_0000, through `arm-pl011-uart`,
//! one lock so lines from several CPUs do not interleave) and the semihosting exit.

use core::fmt::{self, Write};
use core::ptr::NonNull;

use arm_pl011_uart::{PL011Registers, Uart};
use safe_mmio::UniqueMmioPointer;

const PL011_BASE: usize = 0x0900_0000;

static UART: crate::percpu::Lock<Option<Uart<'static>>> = crate::percpu::Lock::new(None);

/// Write formatted text to the PL011 (whole, under the console lock).
pub fn write(args: fmt::Arguments<'_>) {
    let _ = UART.lock().get_or_insert_with(new_uart).write_fmt(args);
}

fn new_uart() -> Uart<'static> {
    // SAFETY: the PL011 of QEMU virt, device memory in EL2's stage 1, used only through this
    // one instance (under the lock); HLOS writes it too, which only mixes output.
    let regs = unsafe {
        UniqueMmioPointer::new(NonNull::new_unchecked(PL011_BASE as *mut PL011Registers))
    };
    Uart::new(regs)
}

/// Print a line to the PL011.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        $crate::console::write(format_args!("{}\n", format_args!($($arg)*)));
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
    // Never wait for the console lock here: the failing CPU may hold it.
    if let Some(mut g) = UART.try_lock() {
        let _ = writeln!(g.get_or_insert_with(new_uart), "qemu board: FAIL: {what}");
    }
    exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail(format_args!("panic: {info}"))
}

/// [`crate::percpu::Lock::most_overtaken`] of the console's lock, for the board's summary.
pub fn lock_most_overtaken() -> u64 {
    UART.most_overtaken()
}
