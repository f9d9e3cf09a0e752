//! Gunyah hypercalls (SMCCC form: `hvc #0`, x0 = 0xC600_8000 | call) and PSCI (HVC
//! conduit), as a payload for Gunyah on QEMU uses them.

/// hypervisor_identify.
pub const HYP_IDENTIFY: u64 = 0xC600_8000;
/// msgqueue_send: x1 cap, x2 size, x3 buffer, x4 flags (bit0 push) -> x0 error, x1 not_full.
pub const MSGQ_SEND: u64 = 0xC600_801B;
/// msgqueue_receive: x1 cap, x2 buffer, x3 size -> x0 error, x1 size, x2 not_empty.
pub const MSGQ_RECV: u64 = 0xC600_801C;
/// scheduler_yield: x1 control, x2 arg.
pub const SCHED_YIELD: u64 = 0xC600_803B;
/// PSCI CPU_ON (64-bit): x1 target MPIDR, x2 entry, x3 context.
pub const PSCI_CPU_ON: u64 = 0xC400_0003;
/// PSCI CPU_OFF.
pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
/// PSCI SYSTEM_OFF.
pub const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
/// Gunyah error codes.
pub const OK: u64 = 0;
/// -1.
pub const UNIMPLEMENTED: u64 = u64::MAX;
/// Bad argument.
pub const ARGUMENT_INVALID: u64 = 1;
/// Bad size.
pub const ARGUMENT_SIZE: u64 = 2;
/// Bad guest address.
pub const ADDR_INVALID: u64 = 22;
/// No such capability.
pub const CSPACE_CAP_NULL: u64 = 50;
/// Nothing to receive.
pub const MSGQUEUE_EMPTY: u64 = 60;

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
