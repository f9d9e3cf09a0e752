//! The PMU's instruction counters: counter 0 counts instructions retired at EL2 only,
//! counter 1 at EL1 only. QEMU counts instructions only with `-icount`; without it both
//! read 0 and the board reports the figures as unavailable. VMs do not reach them: their
//! PMU and debug register accesses trap (`vpmu.rs` gives each vCPU its own two counters).

/// MDCR_EL2: TPMCR, TPM (PMU accesses from EL1 and EL0 trap), TDA, TDOSA, TDRA (debug
/// register accesses trap), above HPMN in bits [4:0].
const TRAPS: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);

/// Set up both counters; every PMU and debug register access from a VM traps to EL2
/// (MDCR_EL2.HPMN = all counters, so EL2's own accesses reach every one).
pub fn init() {
    const INST_RETIRED: u64 = 0x08;
    const P: u64 = 1 << 31; // do not count at EL1
    const U: u64 = 1 << 30; // do not count at EL0
    const NSH: u64 = 1 << 27; // count at EL2
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PMU and MDCR_EL2 register writes at EL2; they only affect counting and EL1/EL0
    // access to the PMU and the debug registers.
    unsafe {
        let pmcr: u64;
        core::arch::asm!("mrs {0}, pmcr_el0", out(reg) pmcr);
        let n = (pmcr >> 11) & 0x1F;
        core::arch::asm!(
            "msr mdcr_el2, {n}",
            "msr pmevtyper0_el0, {t0}",
            "msr pmevtyper1_el0, {t1}",
            "msr pmcntenset_el0, {en}",
            "msr pmcr_el0, {cr}",
            "isb",
            n = in(reg) n | TRAPS,
            t0 = in(reg) INST_RETIRED | P | U | NSH,
            t1 = in(reg) INST_RETIRED | U,
            en = in(reg) 0b11u64,
            cr = in(reg) 0b11u64, // E: enable, P: reset the event counters
        );
    }
}

/// Both counters: instructions retired at EL2 and at EL1 on this CPU so far.
#[inline(always)]
pub fn counters() -> [u64; 2] {
    let (a, b): (u64, u64);
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading PMU counters at EL2 has no side effects.
    unsafe {
        core::arch::asm!(
            "isb",
            "mrs {0}, pmevcntr0_el0",
            "mrs {1}, pmevcntr1_el0",
            out(reg) a,
            out(reg) b,
            options(nostack)
        )
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        (a, b) = (0, 0);
    }
    [a, b]
}

/// Instructions retired at EL2 so far (counter 0).
#[inline(always)]
pub fn el2_instructions() -> u64 {
    let v: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading a PMU counter at EL2 has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {0}, pmevcntr0_el0", out(reg) v, options(nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        v = 0;
    }
    v
}
