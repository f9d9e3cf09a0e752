//! The ID registers a VM reads (HCR_EL2.TID3 traps them to EL2): the CPU's own values but
//! for the features whose state the board does not switch between vCPUs, which a VM must not
//! find (Gunyah hides them the same way unless it context-switches them). Linux reads
//! these at boot and uses what they list (with SVE listed while CPTR_EL2.TZ trapped it, it
//! wrote ZCR_EL1 and its boot stopped there: SVE is now switched, `sve.rs`, and listed).
//!
//! Hidden: SME (ID_AA64PFR1_EL1.SME,
//! ID_AA64SMFR0_EL1; CPTR_EL2.TSM traps it), MTE (ID_AA64PFR1_EL1.MTE; HCR_EL2.ATA is 0, so
//! its registers trap), pointer authentication (ID_AA64ISAR1_EL1 APA/API/GPA/GPI,
//! ID_AA64ISAR2_EL1 APA3/GPA3; HCR_EL2.API/APK are 0, so its keys and instructions trap),
//! the PMU (ID_AA64DFR0_EL1.PMUVer, ID_DFR0_EL1.PerfMon; MDCR_EL2.TPM traps it, `vpmu.rs`).
//! Everything else reads as the CPU's.
//!
//! Pure logic, also built on the host (`tests/idregs.rs`).

/// A trapped MRS of an ID register (op0 3, op1 0, CRn 0, CRm 1..=7), from the ISS of an
/// ESR_EL2 with EC 0x18.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRead {
    /// CRm (1..=7).
    pub crm: u8,
    /// op2 (0..=7).
    pub op2: u8,
    /// The destination register (31: XZR).
    pub rt: u8,
}

/// The ID register read an EC 0x18 syndrome's ISS describes, or None if it is anything else
/// (a write, another register).
pub fn decode(iss: u64) -> Option<IdRead> {
    let op0 = (iss >> 20) & 3;
    let op2 = (iss >> 17) & 7;
    let op1 = (iss >> 14) & 7;
    let crn = (iss >> 10) & 0xF;
    let rt = (iss >> 5) & 0x1F;
    let crm = (iss >> 1) & 0xF;
    let read = iss & 1 == 1;
    (read && op0 == 3 && op1 == 0 && crn == 0 && (1..=7).contains(&crm)).then_some(IdRead {
        crm: crm as u8,
        op2: op2 as u8,
        rt: rt as u8,
    })
}

/// A 4-bit field at `lsb`.
const fn field(lsb: u32) -> u64 {
    0xF << lsb
}

/// What a VM reads for ID register (`crm`, `op2`) whose value on the CPU is `hw`.
pub fn vm_value(crm: u8, op2: u8, hw: u64) -> u64 {
    match (crm, op2) {
        // ID_AA64PFR1_EL1: MTE [11:8], SME [27:24], MTE_frac [43:40].
        (4, 1) => hw & !(field(8) | field(24) | field(40)),
        // ID_AA64SMFR0_EL1 (SME): nothing.
        (4, 5) => 0,
        // ID_DFR0_EL1: PerfMon [27:24]; ID_AA64DFR0_EL1: PMUVer [11:8] (the PMU traps:
        // `vpmu.rs`).
        (1, 2) => hw & !field(24),
        (5, 0) => hw & !field(8),
        // ID_AA64ISAR1_EL1: APA [7:4], API [11:8], GPA [27:24], GPI [31:28].
        (6, 1) => hw & !(field(4) | field(8) | field(24) | field(28)),
        // ID_AA64ISAR2_EL1: GPA3 [11:8], APA3 [15:12].
        (6, 2) => hw & !(field(8) | field(12)),
        _ => hw,
    }
}

macro_rules! id_regs {
    ($($crm:literal: [$($op2:literal),*]),*) => {
        /// The CPU's ID register (op0 3, op1 0, CRn 0, `crm`, `op2`), read at EL2 (0 on the
        /// host, and for any other `crm`).
        pub fn read_hw(crm: u8, op2: u8) -> u64 {
            match (crm, op2) {
                $($(($crm, $op2) => {
                    let v: u64;
                    #[cfg(target_arch = "aarch64")]
                    // SAFETY: reading an ID register at EL2 has no side effects.
                    unsafe {
                        core::arch::asm!(
                            concat!("mrs {0}, s3_0_c0_c", $crm, "_", $op2),
                            out(reg) v,
                            options(nomem, nostack)
                        )
                    };
                    #[cfg(not(target_arch = "aarch64"))]
                    {
                        v = 0;
                    }
                    v
                })*)*
                _ => 0,
            }
        }
    };
}

id_regs! {
    1: [0, 1, 2, 3, 4, 5, 6, 7],
    2: [0, 1, 2, 3, 4, 5, 6, 7],
    3: [0, 1, 2, 3, 4, 5, 6, 7],
    4: [0, 1, 2, 3, 4, 5, 6, 7],
    5: [0, 1, 2, 3, 4, 5, 6, 7],
    6: [0, 1, 2, 3, 4, 5, 6, 7],
    7: [0, 1, 2, 3, 4, 5, 6, 7]
}
