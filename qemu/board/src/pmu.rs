//! The PMU's instruction counters: counter 0 counts instructions retired at EL2 only,
//! counter 1 at EL1 only. QEMU counts instructions only with `-icount`; without it both
//! read 0 and the board reports the figures as unavailable.

/// Set up both counters and let EL1 read them (MDCR_EL2.HPMN = all counters, no traps).
pub fn init() {
    const INST_RETIRED: u64 = 0x08;
    const P: u64 = 1 << 31; // do not count at EL1
    const U: u64 = 1 << 30; // do not count at EL0
    const NSH: u64 = 1 << 27; // count at EL2
    #[cfg(target_arch = "aarch64")]
    // SAFETY: PMU and MDCR_EL2 register writes at EL2; they only affect counting and EL1/EL0
    // access to the PMU.
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
            n = in(reg) n,
            t0 = in(reg) INST_RETIRED | P | U | NSH,
            t1 = in(reg) INST_RETIRED | U,
            en = in(reg) 0b11u64,
            cr = in(reg) 0b11u64, // E: enable, P: reset the event counters
        );
    }
}

/// Instructions retired at EL2 so far (counter 0); readable at EL1 too.
#[inline(always)]
pub fn el2_instructions() -> u64 {
    let v: u64;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: reading a PMU counter has no side effects (EL1 access allowed by `init`).
    unsafe {
        core::arch::asm!("isb", "mrs {0}, pmevcntr0_el0", out(reg) v, options(nostack))
    };
    #[cfg(not(target_arch = "aarch64"))]
    {
        v = 0;
    }
    v
}
