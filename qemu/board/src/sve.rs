//! SVE for VMs at one vector length, 128 bits, as Gunyah runs it on QEMU (`run-qemu.sh`:
//! `-cpu max,sve128=on`, `PLATFORM_SVE_REG_SIZE=16`). ZCR_EL2.LEN = 0 caps the length at
//! EL2, EL1 and EL0 to 128 bits, where each Z register is its V register, which every trap
//! already saves in the vCPU's frame (q0-q31); what SVE adds per vCPU is switched here when
//! another vCPU takes the CPU: P0-P15 and FFR (16 bits each at this length) and ZCR_EL1. EL2's
//! own code never touches them (it is not built with SVE), so a trap that returns to the same
//! vCPU needs none of it.
//!
//! Only where the CPU has SVE (ID_AA64PFR0_EL1.SVE): without it CPTR_EL2.TZ stays set (its
//! RES1 value) and nothing here runs.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Whether the CPU has SVE (set by [`init_cpu`] on each CPU; the same on all).
static PRESENT: AtomicBool = AtomicBool::new(false);

/// A vCPU's SVE state beyond its V registers: P0-P15 and FFR (P16 here), ZCR_EL1.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct SveRegs {
    p: [u16; 17],
    zcr: u64,
}

/// CPTR_EL2 with FP/SIMD untrapped (TFP 0) and SME trapped (TSM 1): with SVE, TZ = 0 too.
pub fn cptr_el2() -> u64 {
    let pfr0: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading an ID register at EL2 has no side effects.
    unsafe {
        core::arch::asm!("mrs {0}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        pfr0 = 0;
    }
    let sve = (pfr0 >> 32) & 0xF != 0;
    PRESENT.store(sve, Relaxed);
    if sve {
        0x32FF
    } else {
        0x33FF
    }
}

/// With SVE, after CPTR_EL2 allows it: the vector length at 128 bits (ZCR_EL2.LEN = 0).
pub fn init_cpu() {
    if !PRESENT.load(Relaxed) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: ZCR_EL2 (S3_4_C1_C2_0) exists with SVE and CPTR_EL2.TZ is 0; it only sets the
    // vector length of EL2 and the ELs below.
    unsafe {
        core::arch::asm!("msr s3_4_c1_c2_0, xzr", "isb", options(nostack))
    };
}

impl SveRegs {
    /// Read the running vCPU's from the CPU (nothing without SVE).
    pub fn save() -> Self {
        let mut r = SveRegs::default();
        if !PRESENT.load(Relaxed) {
            return r;
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: SVE is enabled at EL2 (CPTR_EL2.TZ 0) at 128 bits, so each predicate is 2
        // bytes and `#n, MUL VL` is byte offset 2n inside `r.p` (34 bytes). P0 is saved
        // before FFR is read through it; the CPU's P0 then holds FFR, which the next vCPU's
        // restore overwrites.
        unsafe {
            core::arch::asm!(
                ".arch_extension sve",
                "str p0, [{b}, #0, MUL VL]",
                "str p1, [{b}, #1, MUL VL]",
                "str p2, [{b}, #2, MUL VL]",
                "str p3, [{b}, #3, MUL VL]",
                "str p4, [{b}, #4, MUL VL]",
                "str p5, [{b}, #5, MUL VL]",
                "str p6, [{b}, #6, MUL VL]",
                "str p7, [{b}, #7, MUL VL]",
                "str p8, [{b}, #8, MUL VL]",
                "str p9, [{b}, #9, MUL VL]",
                "str p10, [{b}, #10, MUL VL]",
                "str p11, [{b}, #11, MUL VL]",
                "str p12, [{b}, #12, MUL VL]",
                "str p13, [{b}, #13, MUL VL]",
                "str p14, [{b}, #14, MUL VL]",
                "str p15, [{b}, #15, MUL VL]",
                "rdffr p0.b",
                "str p0, [{b}, #16, MUL VL]",
                "mrs {z}, s3_0_c1_c2_0",
                b = in(reg) r.p.as_mut_ptr(),
                z = out(reg) r.zcr,
                options(nostack)
            )
        };
        r
    }

    /// Load them into the CPU for the vCPU about to run (nothing without SVE).
    pub fn restore(&self) {
        if !PRESENT.load(Relaxed) {
            return;
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as in `save`; FFR is written through P0 before P0 gets its own value.
        unsafe {
            core::arch::asm!(
                ".arch_extension sve",
                "ldr p0, [{b}, #16, MUL VL]",
                "wrffr p0.b",
                "ldr p0, [{b}, #0, MUL VL]",
                "ldr p1, [{b}, #1, MUL VL]",
                "ldr p2, [{b}, #2, MUL VL]",
                "ldr p3, [{b}, #3, MUL VL]",
                "ldr p4, [{b}, #4, MUL VL]",
                "ldr p5, [{b}, #5, MUL VL]",
                "ldr p6, [{b}, #6, MUL VL]",
                "ldr p7, [{b}, #7, MUL VL]",
                "ldr p8, [{b}, #8, MUL VL]",
                "ldr p9, [{b}, #9, MUL VL]",
                "ldr p10, [{b}, #10, MUL VL]",
                "ldr p11, [{b}, #11, MUL VL]",
                "ldr p12, [{b}, #12, MUL VL]",
                "ldr p13, [{b}, #13, MUL VL]",
                "ldr p14, [{b}, #14, MUL VL]",
                "ldr p15, [{b}, #15, MUL VL]",
                "msr s3_0_c1_c2_0, {z}",
                b = in(reg) self.p.as_ptr(),
                z = in(reg) self.zcr,
                options(nostack, readonly)
            )
        };
    }
}
