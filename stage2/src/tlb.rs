//! TLB maintenance for stage-2 changes.
//!
//! The address space decides *what* to invalidate (one IPA per removed or changed leaf, or the
//! whole VMID when a batch would exceed [`MAX_TLBI_IPAS`]); an implementation of
//! [`TlbMaintenance`] decides *how*. On hardware (`HwTlb`, aarch64 only) that is
//! `DSB ISHST; TLBI IPAS2E1IS (per IPA); DSB ISH; TLBI VMALLE1IS; DSB ISH; ISB` with the target
//! VMID loaded in VTTBR_EL2, or `DSB ISHST; TLBI VMALLS12E1IS; DSB ISH; ISB` for the whole VMID.

/// Largest number of per-IPA invalidations issued in one batch; more becomes a whole-VMID
/// invalidation (one table of pages, as Hafnium's MAX_TLBI_OPS).
pub const MAX_TLBI_IPAS: usize = 512;

/// Stage-2 TLB maintenance for one VM, identified by its VTTBR_EL2 value (VMID in bits 63:48).
///
/// Both operations must be complete (all CPUs in the inner-shareable domain have dropped the
/// entries) when they return: the caller writes new descriptors or frees table pages right after.
pub trait TlbMaintenance {
    /// Invalidate stage-2 entries (including walk caches) for each IPA in `ipas` (each the base of
    /// a removed or changed block, page or table), then all combined stage-1+2 entries of the
    /// VMID (`TLBI VMALLE1IS`; IPA-based invalidation does not remove those). `ipas` holds at
    /// most [`MAX_TLBI_IPAS`] addresses and is never empty.
    fn invalidate_ipas(&mut self, vttbr: u64, ipas: &[u64]);

    /// Invalidate every stage-1 and stage-2 entry of the VMID (`TLBI VMALLS12E1IS`).
    fn invalidate_vmid(&mut self, vttbr: u64);

    /// Called once at the end of every operation that wrote descriptors: make those writes
    /// visible to hardware table walkers before the guest runs again (`DSB ISH; ISB`; a
    /// translation table walk is a separate observer). The default does nothing.
    fn sync_writes(&mut self, vttbr: u64) {
        let _ = vttbr;
    }
}

/// VMID of a VTTBR_EL2 value.
pub const fn vttbr_vmid(vttbr: u64) -> u16 {
    (vttbr >> 48) as u16
}

#[cfg(target_arch = "aarch64")]
pub use hw::HwTlb;

#[cfg(target_arch = "aarch64")]
mod hw {
    use super::TlbMaintenance;
    use aarch64_cpu::registers::{Readable, Writeable, VTTBR_EL2};
    use core::arch::asm;

    /// TLB maintenance with the real instructions. TLBI by IPA applies to the VMID in
    /// VTTBR_EL2, so each call loads the target VM's VTTBR_EL2 and restores the previous value.
    #[derive(Debug)]
    pub struct HwTlb(());

    impl HwTlb {
        /// # Safety
        /// Only usable at EL2, with no other code on this CPU changing VTTBR_EL2 concurrently
        /// (the RM's per-VM lock serialises callers).
        pub const unsafe fn new() -> HwTlb {
            HwTlb(())
        }

        fn with_vttbr(vttbr: u64, f: impl FnOnce()) {
            let saved = VTTBR_EL2.get();
            VTTBR_EL2.set(vttbr);
            // SAFETY: ISB only synchronises context; it has no memory effects.
            unsafe { asm!("isb", options(nostack, preserves_flags)) };
            f();
            VTTBR_EL2.set(saved);
            // SAFETY: as above.
            unsafe { asm!("isb", options(nostack, preserves_flags)) };
        }
    }

    impl TlbMaintenance for HwTlb {
        fn invalidate_ipas(&mut self, vttbr: u64, ipas: &[u64]) {
            HwTlb::with_vttbr(vttbr, || {
                // SAFETY: barriers and TLB maintenance at EL2 (constructor contract); they only
                // drop cached translations of the VMID just loaded.
                unsafe {
                    asm!("dsb ishst", options(nostack, preserves_flags));
                    for &ipa in ipas {
                        // Xt[35:0] = IPA[47:12].
                        asm!("tlbi ipas2e1is, {0}", in(reg) ipa >> 12, options(nostack, preserves_flags));
                    }
                    asm!(
                        "dsb ish",
                        "tlbi vmalle1is",
                        "dsb ish",
                        "isb",
                        options(nostack, preserves_flags)
                    );
                }
            });
        }

        fn sync_writes(&mut self, _vttbr: u64) {
            // SAFETY: barriers only.
            unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
        }

        fn invalidate_vmid(&mut self, vttbr: u64) {
            HwTlb::with_vttbr(vttbr, || {
                // SAFETY: as in `invalidate_ipas`.
                unsafe {
                    asm!(
                        "dsb ishst",
                        "tlbi vmalls12e1is",
                        "dsb ish",
                        "isb",
                        options(nostack, preserves_flags)
                    );
                }
            });
        }
    }
}
