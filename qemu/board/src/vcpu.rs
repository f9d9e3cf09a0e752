//! A vCPU's state while it is not on a physical CPU: the registers the trap frame holds
//! (x0-x30, q0-q31, FPSR, FPCR) and the EL1/EL0 system registers, ELR_EL2/SPSR_EL2 and
//! VMPIDR_EL2, its PMU counters and SVE predicates that the board switches when another vCPU
//! runs.

use gunyah_rm::platform::Vmid;

use crate::boot::Frame;
use crate::sve::SveRegs;

macro_rules! sysregs {
    ($($name:ident: $reg:literal),* $(,)?) => {
        /// The EL1/EL0 system registers a vCPU owns.
        #[derive(Clone, Copy, Debug, Default)]
        #[allow(non_snake_case)]
        pub struct SysRegs { $(pub $name: u64),* }

        impl SysRegs {
            /// Read them from the CPU.
            pub fn save() -> Self {
                let mut r = SysRegs::default();
                #[cfg(target_arch = "aarch64")]
                // SAFETY: reads of EL1/EL0/EL2 system registers at EL2 have no side effects.
                unsafe {
                    $(core::arch::asm!(concat!("mrs {0}, ", $reg), out(reg) r.$name, options(nomem, nostack));)*
                }
                r
            }
            /// Load them into the CPU.
            pub fn restore(&self) {
                #[cfg(target_arch = "aarch64")]
                // SAFETY: at EL2, between two vCPUs: these registers belong to the vCPU
                // about to run and affect only EL1/EL0 (and the ERET target).
                unsafe {
                    $(core::arch::asm!(concat!("msr ", $reg, ", {0}"), in(reg) self.$name, options(nomem, nostack));)*
                }
            }
        }
    };
}

sysregs! {
    sctlr: "sctlr_el1", ttbr0: "ttbr0_el1", ttbr1: "ttbr1_el1", tcr: "tcr_el1",
    mair: "mair_el1", amair: "amair_el1", vbar: "vbar_el1", contextidr: "contextidr_el1",
    tpidr_el1: "tpidr_el1", tpidr_el0: "tpidr_el0", tpidrro: "tpidrro_el0",
    sp_el0: "sp_el0", sp_el1: "sp_el1", elr_el1: "elr_el1", spsr_el1: "spsr_el1",
    esr_el1: "esr_el1", far_el1: "far_el1", afsr0: "afsr0_el1", afsr1: "afsr1_el1",
    par: "par_el1", cpacr: "cpacr_el1", cntkctl: "cntkctl_el1", csselr: "csselr_el1",
    cntv_ctl: "cntv_ctl_el0", cntv_cval: "cntv_cval_el0",
    elr_el2: "elr_el2", spsr_el2: "spsr_el2", vmpidr: "vmpidr_el2",
}

/// A vCPU's registers and identity.
pub struct Vcpu {
    /// Its VM.
    pub vmid: Vmid,
    /// Index within the VM (its MPIDR Aff0).
    pub index: u32,
    /// Saved general-purpose and FP/SIMD registers.
    pub frame: Frame,
    /// Saved system registers.
    pub sys: SysRegs,
    /// Its two PMU counters while it is off a CPU (`vpmu.rs`).
    pub pmu: [u32; 2],
    /// Its SVE predicates, FFR and ZCR_EL1 while it is off a CPU (`sve.rs`; the Z registers
    /// are the V registers in `frame`).
    pub sve: SveRegs,
}

impl Vcpu {
    /// A vCPU of `vmid` that starts at `entry` (EL1h, interrupts masked, MMU off) with
    /// x0..x30 from `x` and SP_EL1 `sp`.
    pub fn new(vmid: Vmid, index: u32, entry: u64, x: &[u64; 31], sp: u64) -> Self {
        let mut frame = Frame::zeroed();
        frame.x[..31].copy_from_slice(x);
        let sys = SysRegs {
            sctlr: 0x30D0_0800, // RES1 bits, MMU and caches off
            sp_el1: sp,
            elr_el2: entry,
            spsr_el2: 0x3C5, // EL1h, DAIF masked
            vmpidr: (1 << 31) | index as u64,
            ..SysRegs::default()
        };
        Vcpu {
            vmid,
            index,
            frame,
            sys,
            pmu: [0; 2],
            sve: SveRegs::default(),
        }
    }
}
