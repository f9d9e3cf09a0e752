//! Gunyah hypercalls (SMCCC form: `hvc #0`, x0 = 0xC600_8000 | call) and PSCI (HVC
//! conduit), as a payload for Gunyah on QEMU uses them.

#[path = "../../hvc_abi.rs"]
#[allow(dead_code)]
mod abi;
pub use abi::*;

/// PSCI CPU_ON (64-bit): x1 target MPIDR, x2 entry, x3 context.
pub const PSCI_CPU_ON: u64 = 0xC400_0003;

/// One SMCCC call: x0 = function ID, x1..x4 arguments; returns x0..x2.
#[inline(always)]
pub fn call(id: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> [u64; 3] {
    let (r0, r1, r2): (u64, u64, u64);
    // SAFETY: a hypercall to EL2, which preserves every register but x0..x3 (SMCCC).
    unsafe {
        core::arch::asm!("hvc #0",
            inout("x0") id => r0, inout("x1") a1 => r1, inout("x2") a2 => r2,
            inout("x3") a3 => _, in("x4") a4, options(nostack))
    };
    [r0, r1, r2]
}

/// One SMCCC call without arguments; returns x0..x3 (a Call UID query's four words).
#[inline(always)]
pub fn call4(id: u64) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: as `call`.
    unsafe {
        core::arch::asm!("hvc #0",
            inout("x0") id => r0, inout("x1") 0u64 => r1, inout("x2") 0u64 => r2,
            inout("x3") 0u64 => r3, options(nostack))
    };
    [r0, r1, r2, r3]
}

/// PSCI CPU_OFF: this vCPU stops for good.
pub fn cpu_off() -> ! {
    call(PSCI_CPU_OFF, 0, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}

/// PSCI SYSTEM_OFF (HLOS: the machine powers off).
pub fn system_off() -> ! {
    call(PSCI_SYSTEM_OFF, 0, 0, 0, 0);
    loop {
        core::hint::spin_loop();
    }
}
