//! The PMU a vCPU reaches. MDCR_EL2.TPM and TPMCR trap every PMU register access from EL1
//! and EL0 (`pmu::init`), so no VM reads or resets the counters the board counts with, nor
//! sees what other VMs ran. What a VM gets instead, with ID_AA64DFR0_EL1.PMUVer hidden
//! (`idregs.rs`: no PMU for a guest that follows the architecture):
//!
//! - `PMEVCNTR0_EL0`: instructions retired at EL2 while this vCPU was on its physical CPU
//!   (its own traps and faults, and the board's interrupt handling in that time);
//! - `PMEVCNTR1_EL0`: instructions it retired at EL1;
//!
//! both its own, starting at 0, 32 bits wide as PMUv3 event counters are, kept in its record
//! while it is off a CPU (`load` / `unload` at the switch); every other PMU register reads as
//! zero and ignores writes. The two counters are the board's measurement channel (the guest
//! agents time a CoW fault and their own copy with them; QEMU counts instructions only with
//! `-icount`, else both stay 0). A counter read is itself a trap: the EL2 instructions of
//! one read are in the next value, which the agents measure and subtract.
//!
//! Pure logic, also built on the host (`tests/vpmu.rs`); the board passes the hardware
//! counter values in.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// A trapped access to a PMU or debug register, from the ISS of an ESR_EL2 with EC 0x18.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnAccess {
    /// Which of the vCPU's two counters (`PMEVCNTR0_EL0`, `PMEVCNTR1_EL0`) it names, if one.
    pub counter: Option<usize>,
    /// An MRS (else an MSR).
    pub read: bool,
    /// The general-purpose register (31: XZR).
    pub rt: u8,
}

/// The PMU register access an EC 0x18 syndrome's ISS describes, or None if it is another
/// register: op0 3 with op1 3 and CRn 9 (PMCR_EL0 .. PMOVSSET_EL0) or CRn 14 with CRm 8..=15
/// (the event counters, their types, PMCCFILTR_EL0), or op1 0, CRn 9, CRm 14 (PMINTENSET_EL1,
/// PMINTENCLR_EL1, PMMIR_EL1).
pub fn decode(iss: u64) -> Option<OwnAccess> {
    let op0 = (iss >> 20) & 3;
    let op2 = (iss >> 17) & 7;
    let op1 = (iss >> 14) & 7;
    let crn = (iss >> 10) & 0xF;
    let rt = ((iss >> 5) & 0x1F) as u8;
    let crm = (iss >> 1) & 0xF;
    let read = iss & 1 == 1;
    let pmu = op0 == 3
        && match (op1, crn) {
            (3, 9) => true,
            (3, 14) => crm >= 8,
            (0, 9) => crm == 14,
            _ => false,
        };
    if !pmu {
        return None;
    }
    // PMEVCNTR<n>_EL0 is S3_3_C14_C<8 + n / 8>_<n % 8>.
    let counter = (op1 == 3 && crn == 14 && crm == 8 && op2 < 2).then_some(op2 as usize);
    Some(OwnAccess { counter, read, rt })
}

/// One physical CPU's view of the vCPU it runs: what to add to the hardware counters to get
/// the vCPU's own (modulo 2^32).
pub struct Loaded {
    offset: [AtomicU32; 2],
}

impl Loaded {
    /// No vCPU loaded.
    pub const fn new() -> Self {
        Loaded {
            offset: [AtomicU32::new(0), AtomicU32::new(0)],
        }
    }

    /// A vCPU whose counters read `counts` starts running; the hardware counters read `hw`.
    pub fn load(&self, counts: [u32; 2], hw: [u64; 2]) {
        for i in 0..2 {
            self.offset[i].store(counts[i].wrapping_sub(hw[i] as u32), Relaxed);
        }
    }

    /// The running vCPU's counters when the hardware counters read `hw` (also what it keeps
    /// when it leaves the CPU).
    pub fn read(&self, hw: [u64; 2]) -> [u32; 2] {
        [0, 1].map(|i| (hw[i] as u32).wrapping_add(self.offset[i].load(Relaxed)))
    }
}

impl Default for Loaded {
    fn default() -> Self {
        Self::new()
    }
}

/// What a trapped PMU access gives the vCPU whose counters are `counts`: the value of an MRS
/// (0 for any register but its two counters); an MSR changes nothing.
pub fn value(access: &OwnAccess, counts: [u32; 2]) -> u64 {
    match access.counter {
        Some(i) if access.read => u64::from(counts[i]),
        _ => 0,
    }
}

/// A trapped access to a debug register (MDCR_EL2.TDA, TDOSA, TDRA: every op0 2 system
/// register, MDSCR_EL1, the OS lock, the breakpoint and watchpoint registers, DBGCLAIM, the
/// DCC): the board does not switch their state between vCPUs, so none of it reaches the
/// hardware: reads as zero, writes ignored. A VM's breakpoints and watchpoints then never
/// fire (MDSCR_EL1.MDE stays 0), and no VM sees or disturbs another's. None if it is not one.
pub fn debug_access(iss: u64) -> Option<OwnAccess> {
    ((iss >> 20) & 3 == 2).then_some(OwnAccess {
        counter: None,
        read: iss & 1 == 1,
        rt: ((iss >> 5) & 0x1F) as u8,
    })
}

/// A trapped access the board answers from the vCPU's own state: a PMU register
/// ([`decode`]) or a debug register ([`debug_access`]); None for anything else.
pub fn own_access(iss: u64) -> Option<OwnAccess> {
    decode(iss).or_else(|| debug_access(iss))
}
