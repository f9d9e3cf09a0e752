//! The ID registers a VM reads (`qemu/board/src/idregs.rs`), on the host: the trapped MRS is
//! decoded from its syndrome, and the features whose state the board does not switch are
//! hidden while the rest reads as the CPU's.

#[path = "../src/idregs.rs"]
#[allow(dead_code)]
mod idregs;

use idregs::{decode, vm_value, IdRead};

/// The ISS of a trapped MRS/MSR (EC 0x18) of S<op0>_<op1>_C<crn>_C<crm>_<op2> with Rt `rt`.
fn iss(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> u64 {
    (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | read as u64
}

#[test]
fn id_register_reads_are_decoded_and_nothing_else() {
    // mrs x3, id_aa64pfr0_el1 (S3_0_C0_C4_0).
    assert_eq!(
        decode(iss(3, 0, 0, 4, 0, 3, true)),
        Some(IdRead {
            crm: 4,
            op2: 0,
            rt: 3
        })
    );
    // mrs xzr, id_aa64isar2_el1; the reserved ID space (CRm 7) too.
    assert_eq!(decode(iss(3, 0, 0, 6, 2, 31, true)).map(|r| r.rt), Some(31));
    assert!(decode(iss(3, 0, 0, 7, 7, 0, true)).is_some());
    // Not ID group 3: MIDR_EL1 (CRm 0), an MSR, ZCR_EL1 (S3_0_C1_C2_0), ICC_SGI1R_EL1
    // (S3_0_C12_C11_5), CTR_EL0 (op1 3).
    for not in [
        iss(3, 0, 0, 0, 0, 1, true),
        iss(3, 0, 0, 4, 0, 1, false),
        iss(3, 0, 1, 2, 0, 1, true),
        iss(3, 0, 12, 11, 5, 1, false),
        iss(3, 3, 0, 0, 1, 1, true),
        iss(2, 0, 0, 4, 0, 1, true),
    ] {
        assert_eq!(decode(not), None, "{not:#x}");
    }
}

#[test]
fn features_the_board_does_not_switch_are_hidden() {
    // QEMU 7.2's -cpu max (values read on it): SVE, SME, MTE and PAuth all listed.
    let pfr0 = 0x1101_0011_1111_2222u64; // SVE 1 at [35:32], GIC 1, AdvSIMD, FP, EL0-3
                                         // SVE is switched (at 128 bits, `sve.rs`): listed as the CPU has it.
    assert_eq!(vm_value(4, 0, pfr0), pfr0, "SVE listed");
    assert_eq!(vm_value(4, 4, 0x0110_0110_0001_0011), 0x0110_0110_0001_0011);
    let pfr1 = 0x0000_0100_1100_0321u64; // SME 1 [27:24], MTE 3 [11:8], SSBS 2, BT 1
    let v = vm_value(4, 1, pfr1);
    assert_eq!((v >> 24) & 0xF, 0, "SME hidden");
    assert_eq!((v >> 8) & 0xF, 0, "MTE hidden");
    assert_eq!((v >> 40) & 0xF, 0, "MTE_frac hidden");
    assert_eq!(v & 0xFF, 0x21, "SSBS and BT kept");
    assert_eq!(vm_value(4, 5, 0x8ff1_0000_0000_0000), 0, "no SME features");
    // DPB 1 [3:0], APA 1, API 1, JSCVT 1 [15:12], FCMA, LRCPC, GPA 1, GPI 1, FRINTTS...
    let isar1 = 0x0011_2120_1111_1111u64;
    assert_eq!(
        vm_value(6, 1, isar1),
        0x0011_2120_0011_1001,
        "PAuth hidden, the rest kept"
    );
    let isar2 = 0x0000_0000_0000_1100u64;
    assert_eq!(vm_value(6, 2, isar2), 0, "APA3 and GPA3 hidden");
    // ID_AA64DFR0_EL1 of QEMU 7.2's -cpu max: PMUVer 6 (PMUv3p5) [11:8] hidden (the PMU
    // traps), DebugVer, BRPs 5, WRPs 3, CTX_CMPs 1 kept; ID_DFR0_EL1's PerfMon [27:24].
    let dfr0 = 0x0000_0000_1030_5606u64;
    assert_eq!(vm_value(5, 0, dfr0), 0x0000_0000_1030_5006, "PMUVer hidden");
    assert_eq!(vm_value(1, 2, 0x0600_3000), 0x0000_3000, "PerfMon hidden");
    // The rest as the CPU has it: ID_AA64MMFR0_EL1, ID_AA64DFR1_EL1, AArch32 ID registers.
    for (crm, op2) in [(7, 0), (5, 1), (1, 0), (3, 0), (6, 0)] {
        assert_eq!(
            vm_value(crm, op2, 0x1234_5678_9abc_def0),
            0x1234_5678_9abc_def0
        );
    }
}
