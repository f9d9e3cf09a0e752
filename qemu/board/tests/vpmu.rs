//! The PMU and debug registers a VM reaches (`qemu/board/src/vpmu.rs`), on the host: which
//! trapped accesses are the PMU's and which the debug registers', and each vCPU's own two
//! counters across switches.

#[path = "../src/vpmu.rs"]
#[allow(dead_code)]
mod vpmu;

use vpmu::{debug_access, decode, own_access, value, Loaded, OwnAccess};

/// The ISS of a trapped MRS/MSR (EC 0x18) of S<op0>_<op1>_C<crn>_C<crm>_<op2> with Rt `rt`.
fn iss(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> u64 {
    (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | read as u64
}

#[test]
fn pmu_registers_are_decoded_and_only_they() {
    // mrs x4, pmevcntr0_el0 (S3_3_C14_C8_0) and pmevcntr1_el0: the vCPU's two counters.
    for n in 0..2 {
        assert_eq!(
            decode(iss(3, 3, 14, 8, n, 4, true)),
            Some(OwnAccess {
                counter: Some(n as usize),
                read: true,
                rt: 4
            })
        );
    }
    // PMCR_EL0 (S3_3_C9_C12_0), PMCCNTR_EL0 (C9_C13_0), PMEVCNTR2 and PMEVCNTR30
    // (C14_C11_6), PMEVTYPER0 (C14_C12_0), PMCCFILTR (C14_C15_7), PMINTENSET_EL1
    // (S3_0_C9_C14_1), PMUSERENR_EL0 (S3_3_C9_C14_0): PMU, no counter of the vCPU's.
    for (op1, crn, crm, op2) in [
        (3, 9, 12, 0),
        (3, 9, 13, 0),
        (3, 14, 8, 2),
        (3, 14, 11, 6),
        (3, 14, 12, 0),
        (3, 14, 15, 7),
        (0, 9, 14, 1),
        (3, 9, 14, 0),
    ] {
        let a = decode(iss(3, op1, crn, crm, op2, 0, false));
        assert_eq!(
            a,
            Some(OwnAccess {
                counter: None,
                read: false,
                rt: 0
            }),
            "S3_{op1}_C{crn}_C{crm}_{op2}"
        );
    }
    // Not the PMU: ID_AA64DFR0_EL1, CNTV_CTL_EL0 (S3_3_C14_C3_1), an SGI register
    // (S3_0_C12_C11_5), MDSCR_EL1 (op0 2), PAR_EL1 (S3_0_C7_C4_0).
    for (op0, op1, crn, crm, op2) in [
        (3, 0, 0, 5, 0),
        (3, 3, 14, 3, 1),
        (3, 0, 12, 11, 5),
        (2, 0, 0, 2, 2),
        (3, 0, 7, 4, 0),
    ] {
        assert_eq!(decode(iss(op0, op1, crn, crm, op2, 1, true)), None);
    }
}

#[test]
fn a_read_gets_the_vcpus_counter_and_nothing_else() {
    let counts = [7, 11];
    let read = |counter, read| {
        value(
            &OwnAccess {
                counter,
                read,
                rt: 0,
            },
            counts,
        )
    };
    assert_eq!(read(Some(0), true), 7);
    assert_eq!(read(Some(1), true), 11);
    assert_eq!(read(None, true), 0, "PMCR_EL0 and the rest read as zero");
    assert_eq!(read(Some(0), false), 0, "a write changes nothing");
}

#[test]
fn each_vcpu_counts_only_while_it_runs() {
    let cpu = Loaded::new();
    // vCPU A starts on the CPU with its counters at 0; the hardware counters have run since
    // boot (other VMs, EL2).
    cpu.load([0, 0], [1_000_000, 5_000_000]);
    assert_eq!(cpu.read([1_000_000, 5_000_000]), [0, 0]);
    assert_eq!(cpu.read([1_000_300, 5_002_000]), [300, 2_000]);
    let a = cpu.read([1_000_500, 5_004_000]);
    assert_eq!(a, [500, 4_000]);
    // B runs: starts from its own values, sees none of A's.
    cpu.load([40, 60], [1_000_500, 5_004_000]);
    assert_eq!(cpu.read([1_009_500, 5_104_000]), [9_040, 100_060]);
    // A again, later: goes on from where it left, B's time not in it.
    cpu.load(a, [2_000_000, 9_000_000]);
    assert_eq!(cpu.read([2_000_010, 9_000_020]), [510, 4_020]);
    // 32-bit counters, as PMUv3's event counters: the hardware's wrap is not seen.
    cpu.load([100, 100], [u64::from(u32::MAX) - 5, 0]);
    assert_eq!(cpu.read([u64::from(u32::MAX) + 5, 1]), [110, 101]);
}

#[test]
fn debug_registers_are_read_as_zero_and_write_ignored() {
    let debug = |read, rt| {
        Some(OwnAccess {
            counter: None,
            read,
            rt,
        })
    };
    // mrs x2, mdscr_el1 (S2_0_C0_C2_2): a read into x2; msr dbgbvr0_el1 (S2_0_C0_C0_4): a
    // write; msr oslar_el1 (S2_0_C1_C0_4).
    assert_eq!(debug_access(iss(2, 0, 0, 2, 2, 2, true)), debug(true, 2));
    assert_eq!(debug_access(iss(2, 0, 0, 0, 4, 2, false)), debug(false, 2));
    assert_eq!(debug_access(iss(2, 0, 1, 0, 4, 0, false)), debug(false, 0));
    // A debug read names no counter of the vCPU's: it reads as zero.
    assert_eq!(value(&debug(true, 2).unwrap(), [7, 11]), 0);
    // op0 3 (an ID register, the PMU) is not one.
    assert_eq!(debug_access(iss(3, 0, 0, 5, 0, 2, true)), None);
    assert_eq!(debug_access(iss(3, 3, 9, 12, 0, 2, true)), None);
}

#[test]
fn the_board_answers_pmu_and_debug_accesses_and_nothing_else() {
    // PMEVCNTR1_EL0, MDSCR_EL1: the vCPU's own; ID_AA64DFR0_EL1, CNTV_CTL_EL0: not.
    assert_eq!(
        own_access(iss(3, 3, 14, 8, 1, 4, true)).and_then(|a| a.counter),
        Some(1)
    );
    assert!(own_access(iss(2, 0, 0, 2, 2, 2, true)).is_some());
    assert_eq!(own_access(iss(3, 0, 0, 5, 0, 1, true)), None);
    assert_eq!(own_access(iss(3, 3, 14, 3, 1, 1, true)), None);
}
