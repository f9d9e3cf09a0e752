//! Fault decoding from ESR_EL2 values computed by hand from the Arm encoding:
//! ESR = EC[31:26] | IL[25] | ISS[24:0]; data-abort ISS: ISV[24] SAS[23:22] SSE[21] SRT[20:16]
//! SF[15] AR[14] FnV[10] EA[9] CM[8] S1PTW[7] WnR[6] DFSC[5:0].
//! DFSC: 0b0000LL address size, 0b0001LL translation, 0b0010LL access flag, 0b0011LL permission,
//! 0b010000 synchronous external abort.

use gunyah_stage2::fault::{hpfar_for_ipa, hpfar_valid, ipa_from_par};
use gunyah_stage2::{Access, AccessSize, DataSyndrome, DecodeError, Fault, FaultKind, FaultStatus};

const FAR: u64 = 0xFFFF_0000_1234_5678;

#[test]
fn write_permission_fault_level3_has_no_ipa() {
    // The CoW fault seen on QEMU: EC 0x24 (0x24 << 26 = 0x9000_0000), IL (0x0200_0000),
    // WnR (0x40), DFSC 0x0F (permission, level 3) => 0x9200_004F.
    let f = Fault::decode(0x9200_004F, FAR, 0x40_0030).unwrap();
    assert_eq!(f.status, FaultStatus::new(FaultKind::Permission, Some(3)));
    assert_eq!(f.access, Access::Write);
    assert!(f.is_write_permission_fault());
    assert_eq!(
        f.ipa, None,
        "HPFAR_EL2 is not valid for a plain permission fault"
    );
    assert_eq!(f.far, Some(FAR));
    assert!(f.needs_ipa_resolution());
    assert!(f.il32 && !f.s1ptw && !f.external && !f.cache_maintenance);
    assert_eq!(f.syndrome, None);
    assert_eq!(f.with_ipa(0x4000_3678).ipa, Some(0x4000_3678));
}

#[test]
fn translation_fault_level2_read_takes_ipa_from_hpfar_and_far() {
    // EC 0x24, IL, DFSC 0b000110 = 0x06 => 0x9200_0006. HPFAR.FIPA[47:4] = IPA >> 12 = 0x40003
    // => HPFAR = 0x40_0030. IPA = 0x4000_3000 | (FAR & 0xFFF = 0x678).
    let f = Fault::decode(0x9200_0006, FAR, 0x40_0030).unwrap();
    assert_eq!(f.status, FaultStatus::new(FaultKind::Translation, Some(2)));
    assert_eq!(f.access, Access::Read);
    assert_eq!(f.ipa, Some(0x4000_3678));
    assert!(!f.needs_ipa_resolution());
}

#[test]
fn mmio_word_store_syndrome() {
    // ISV (0x0100_0000), SAS = 2 word (2 << 22 = 0x0080_0000), SRT = 3 (0x3_0000), WnR (0x40),
    // DFSC 0x07 (translation, level 3), EC/IL 0x9200_0000 => 0x9383_0047.
    let f = Fault::decode(0x9383_0047, 0x0900_0004, 0x9_0000).unwrap();
    assert_eq!(f.access, Access::Write);
    assert_eq!(f.status, FaultStatus::new(FaultKind::Translation, Some(3)));
    assert_eq!(
        f.syndrome,
        Some(DataSyndrome {
            size: AccessSize::Word,
            sign_extend: false,
            register: 3,
            sixty_four: false,
            acquire_release: false
        })
    );
    // HPFAR 0x9_0000 => FIPA 0x9000 => IPA page 0x900_0000; FAR offset 0x004.
    assert_eq!(f.ipa, Some(0x0900_0004));
    assert_eq!(f.syndrome.unwrap().size.bytes(), 4);
}

#[test]
fn mmio_load_acquire_doubleword_sign_extend_xzr() {
    // ISV 0x0100_0000 | SAS 3 (0x00C0_0000) | SSE (0x0020_0000) | SRT 31 (0x001F_0000)
    // | SF (0x8000) | AR (0x4000) | DFSC 0x05 (translation, level 1) | 0x9200_0000 => 0x93FF_C005.
    let f = Fault::decode(0x93FF_C005, 0x1000, 0x10).unwrap();
    assert_eq!(f.access, Access::Read);
    assert_eq!(f.status.level, Some(1));
    let s = f.syndrome.unwrap();
    assert_eq!(s.size, AccessSize::Doubleword);
    assert!(s.sign_extend && s.sixty_four && s.acquire_release);
    assert_eq!(s.register, 31);
    // HPFAR 0x10 => FIPA 1 => IPA 0x1000, FAR offset 0.
    assert_eq!(f.ipa, Some(0x1000));
}

#[test]
fn instruction_abort_translation_level3() {
    // EC 0x20 (0x8000_0000) | IL | IFSC 0x07 => 0x8200_0007. Bit 24 set (0x8300_0007) must not
    // produce an MMIO syndrome for an instruction abort.
    for esr in [0x8200_0007u64, 0x8300_0007] {
        let f = Fault::decode(esr, 0x4008_0000, 0x40_0800).unwrap();
        assert_eq!(f.access, Access::Execute);
        assert_eq!(f.status, FaultStatus::new(FaultKind::Translation, Some(3)));
        assert_eq!(f.ipa, Some(0x4008_0000));
        assert_eq!(f.syndrome, None);
    }
}

#[test]
fn permission_fault_on_stage1_walk_has_ipa() {
    // S1PTW (0x80) | WnR (0x40) | DFSC 0x0E (permission, level 2) | 0x9200_0000 => 0x9200_00CE.
    let f = Fault::decode(0x9200_00CE, FAR, 0x80_0010).unwrap();
    assert!(f.s1ptw);
    assert_eq!(f.status, FaultStatus::new(FaultKind::Permission, Some(2)));
    assert!(
        !f.is_write_permission_fault(),
        "an S1PTW fault is not a CoW trigger"
    );
    // HPFAR 0x80_0010 => FIPA 0x8_0001 => IPA page 0x8000_1000, + FAR offset 0x678.
    assert_eq!(f.ipa, Some(0x8000_1678));
    assert!(hpfar_valid(0x9200_00CE));
}

#[test]
fn access_flag_and_address_size_faults_have_ipa() {
    // DFSC 0x0B = access flag level 3; 0x00 = address size level 0.
    let af = Fault::decode(0x9200_000B, 0x2000, 0x20).unwrap();
    assert_eq!(af.status, FaultStatus::new(FaultKind::AccessFlag, Some(3)));
    assert_eq!(af.ipa, Some(0x2000));
    let asz = Fault::decode(0x9200_0000, 0x2000, 0x20).unwrap();
    assert_eq!(
        asz.status,
        FaultStatus::new(FaultKind::AddressSize, Some(0))
    );
    assert_eq!(asz.ipa, Some(0x2000));
}

#[test]
fn external_abort_with_fnv_has_no_far_and_no_ipa() {
    // FnV (0x400) | EA (0x200) | DFSC 0x10 (synchronous external abort) | 0x9200_0000 = 0x9200_0610.
    let f = Fault::decode(0x9200_0610, 0xDEAD_BEEF, 0x20).unwrap();
    assert_eq!(f.status, FaultStatus::new(FaultKind::SyncExternal, None));
    assert!(f.external);
    assert_eq!(f.far, None);
    assert_eq!(f.ipa, None);
    assert!(!f.needs_ipa_resolution(), "nothing to resolve without FAR");
}

#[test]
fn cache_maintenance_fault_reports_cm() {
    // CM (0x100) | WnR (0x40) | DFSC 0x0F | 0x9200_0000 => 0x9200_014F.
    let f = Fault::decode(0x9200_014F, 0x3000, 0).unwrap();
    assert!(f.cache_maintenance);
    assert_eq!(f.access, Access::Write);
}

#[test]
fn non_abort_exception_classes_rejected() {
    // EC 0x16 (HVC64) << 26 = 0x5800_0000; EC 0x25 (data abort, same EL) = 0x9400_0000 | IL.
    assert_eq!(
        Fault::decode(0x5800_0000, 0, 0),
        Err(DecodeError::NotLowerElAbort { ec: 0x16 })
    );
    assert_eq!(
        Fault::decode(0x9600_0000, 0, 0),
        Err(DecodeError::NotLowerElAbort { ec: 0x25 })
    );
    assert_eq!(
        Fault::decode(0x8600_0000, 0, 0),
        Err(DecodeError::NotLowerElAbort { ec: 0x21 })
    );
}

#[test]
fn hpfar_ns_bit_and_high_bits_ignored() {
    // KVM marks a valid saved HPFAR with bit 63; the IPA comes from FIPA[47:4] only.
    let f = Fault::decode(0x9200_0007, 0x10, (1 << 63) | 0x40_0030).unwrap();
    assert_eq!(f.ipa, Some(0x4000_3010));
}

#[test]
fn fsc_table() {
    let cases = [
        (0x00, FaultKind::AddressSize, Some(0)),
        (0x03, FaultKind::AddressSize, Some(3)),
        (0x04, FaultKind::Translation, Some(0)),
        (0x07, FaultKind::Translation, Some(3)),
        (0x09, FaultKind::AccessFlag, Some(1)),
        (0x0D, FaultKind::Permission, Some(1)),
        (0x10, FaultKind::SyncExternal, None),
        (0x11, FaultKind::TagCheck, None),
        (0x15, FaultKind::SyncExternalOnWalk, Some(1)),
        (0x18, FaultKind::ParityOrEcc, None),
        (0x1E, FaultKind::ParityOrEccOnWalk, Some(2)),
        (0x21, FaultKind::Alignment, None),
        (0x30, FaultKind::TlbConflict, None),
        (0x31, FaultKind::UnsupportedAtomicUpdate, None),
        (0x22, FaultKind::Other(0x22), None),
    ];
    for (fsc, kind, level) in cases {
        assert_eq!(
            FaultStatus::from_fsc(fsc),
            FaultStatus::new(kind, level),
            "fsc {fsc:#x}"
        );
    }
    for fsc in 0u8..64 {
        assert_eq!(FaultStatus::from_fsc(fsc).fsc(), fsc, "round trip {fsc:#x}");
    }
}

#[test]
fn synthesized_esr_matches_hardware_encoding() {
    let perm3 = FaultStatus::new(FaultKind::Permission, Some(3));
    assert_eq!(perm3.esr_for(Access::Write), 0x9200_004F);
    assert_eq!(perm3.esr_for(Access::Read), 0x9200_000F);
    // Instruction abort: EC 0x20 => 0x8000_0000 | IL 0x0200_0000 | IFSC 0x0F.
    assert_eq!(perm3.esr_for(Access::Execute), 0x8200_000F);
    // HPFAR for IPA 0x1_2345_6789: FIPA = 0x12345 6 => << 4.
    assert_eq!(hpfar_for_ipa(0x1_2345_6789), 0x123_4560);
    let t = FaultStatus::new(FaultKind::Translation, Some(1));
    let f = Fault::decode(
        t.esr_for(Access::Read),
        0x1_2345_6789,
        hpfar_for_ipa(0x1_2345_6789),
    )
    .unwrap();
    assert_eq!(f.ipa, Some(0x1_2345_6789));
}

#[test]
fn ipa_from_par_el1() {
    // Success: F = 0, ATTR[63:56] = 0xFF, PA[47:12] = 0x4000_5, SH[8:7] = 0b11 (0x180).
    assert_eq!(
        ipa_from_par(0xFF00_0000_4000_5180, 0xFFFF_8000_0000_0ABC),
        Some(0x4000_5ABC)
    );
    // Failure: F = 1 (with FST in [6:1]).
    assert_eq!(ipa_from_par(0x0000_0000_0000_0809, 0x1234), None);
}
