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

#[path = "../../sve_predicates.rs"]
mod predicates;

/// Whether the CPU has SVE (set by [`init_cpu`] on each CPU; the same on all).
static PRESENT: AtomicBool = AtomicBool::new(false);

/// A vCPU's SVE state beyond its V registers: P0-P15 and FFR (P16 here), ZCR_EL1.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct SveRegs {
    p: predicates::Predicates,
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
    /// Read the running vCPU's from the CPU (nothing without SVE). The CPU's P0 then holds
    /// what it held; the next vCPU's restore overwrites all of them.
    pub fn save() -> Self {
        let mut r = SveRegs::default();
        if !PRESENT.load(Relaxed) {
            return r;
        }
        // SAFETY: SVE is enabled at EL2 (CPTR_EL2.TZ 0) at 128 bits (ZCR_EL2.LEN 0, `init_cpu`).
        unsafe { predicates::save(&mut r.p) };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: ZCR_EL1 (S3_0_C1_C2_0) exists with SVE; reading it has no side effects.
        unsafe {
            core::arch::asm!("mrs {0}, s3_0_c1_c2_0", out(reg) r.zcr, options(nomem, nostack))
        };
        r
    }

    /// Load them into the CPU for the vCPU about to run (nothing without SVE).
    pub fn restore(&self) {
        if !PRESENT.load(Relaxed) {
            return;
        }
        // SAFETY: as in `save`.
        unsafe { predicates::load(&self.p) };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: ZCR_EL1 only sets the vector length of EL1/EL0 (at most ZCR_EL2's).
        unsafe {
            core::arch::asm!("msr s3_0_c1_c2_0, {0}", in(reg) self.zcr, options(nomem, nostack))
        };
    }
}
