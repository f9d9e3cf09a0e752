//! Start level, root concatenation, VTCR_EL2 and VTTBR_EL2 for several IPA sizes, checked
//! against values computed by hand from the Arm encoding:
//! VTCR_EL2 = RES1[31] | VS[19] | PS[18:16] | TG0[15:14]=00 (4K) | SH0[13:12]=11 (inner)
//!          | ORGN0[11:10]=01 | IRGN0[9:8]=01 (WB RA WA) | SL0[7:6] | T0SZ[5:0].

mod common;
use common::*;
use gunyah_stage2::host::{HostArena, RecordingTlb};
use gunyah_stage2::{
    AddressSpace, Attrs, Error, Geometry, MapFlags, PaRange, Stage2Config, VmidBits,
};

#[test]
fn start_level_and_concatenation_for_every_ipa_size() {
    // (ipa bits, start level, root tables): level 2 resolves IPA bits 21+, one table 30 bits;
    // level 1: 30+, one table 39 bits; level 0: 39+, one table 48 bits. Tables = 2^(bits - 30/39).
    let expected = [
        (32, 2, 4),
        (33, 2, 8),
        (34, 2, 16),
        (35, 1, 1),
        (36, 1, 1),
        (39, 1, 1),
        (40, 1, 2),
        (41, 1, 4),
        (42, 1, 8),
        (43, 1, 16),
        (44, 0, 1),
        (47, 0, 1),
        (48, 0, 1),
    ];
    for (bits, level, tables) in expected {
        let g = Geometry::new(bits).unwrap();
        assert_eq!(
            (g.start_level(), g.root_tables()),
            (level, tables),
            "{bits} bits"
        );
    }
    assert_eq!(Geometry::new(36).unwrap().root_entries(), 64); // 2^(36-30)
    assert_eq!(Geometry::new(44).unwrap().root_entries(), 32); // 2^(44-39)
}

#[test]
fn ipa_sizes_outside_32_to_48_rejected() {
    assert_eq!(Geometry::new(31), Err(Error::InvalidIpaBits(31)));
    assert_eq!(Geometry::new(49), Err(Error::InvalidIpaBits(49)));
    assert_eq!(Geometry::new(0), Err(Error::InvalidIpaBits(0)));
}

#[test]
fn vtcr_32_bit_ipa_pa40() {
    // T0SZ = 64-32 = 32 = 0x20; SL0 = 0 (level 2); 0x100 | 0x400 | 0x3000 = 0x3500;
    // PS = 0b010 << 16 = 0x20000; VS = 1 << 19 = 0x80000; RES1 = 0x8000_0000.
    let c = Stage2Config::new(32, PaRange::Bits40, 1);
    assert_eq!(
        c.vtcr().unwrap(),
        0x8000_0000 | 0x8_0000 | 0x2_0000 | 0x3500 | 0x20
    );
    assert_eq!(c.vtcr().unwrap(), 0x800A_3520);
}

#[test]
fn vtcr_40_bit_ipa_pa40_vmid8() {
    // T0SZ = 24 = 0x18; SL0 = 1 (level 1) -> 0x40; PS 0b010 -> 0x20000; VS = 0.
    let c = Stage2Config {
        ipa_bits: 40,
        pa_range: PaRange::Bits40,
        vmid: 9,
        vmid_bits: VmidBits::Eight,
    };
    assert_eq!(c.vtcr().unwrap(), 0x8002_3558);
}

#[test]
fn vtcr_36_bit_ipa_pa36() {
    // T0SZ = 28 = 0x1C; SL0 = 1 -> 0x40; PS 0b001 -> 0x10000; VS -> 0x80000.
    let c = Stage2Config::new(36, PaRange::Bits36, 1);
    assert_eq!(c.vtcr().unwrap(), 0x8009_355C);
}

#[test]
fn vtcr_44_bit_ipa_pa44() {
    // T0SZ = 20 = 0x14; SL0 = 2 (level 0) -> 0x80; PS 0b100 -> 0x40000; VS -> 0x80000.
    let c = Stage2Config::new(44, PaRange::Bits44, 1);
    assert_eq!(c.vtcr().unwrap(), 0x800C_3594);
}

#[test]
fn vtcr_48_bit_ipa_pa48() {
    // T0SZ = 16 = 0x10; SL0 = 2 -> 0x80; PS 0b101 -> 0x50000; VS -> 0x80000.
    let c = Stage2Config::new(48, PaRange::Bits48, 1);
    assert_eq!(c.vtcr().unwrap(), 0x800D_3590);
}

#[test]
fn vtcr_34_bit_ipa_pa42_vmid8() {
    // T0SZ = 30 = 0x1E; SL0 = 0 (level 2, 16 tables); PS 0b011 -> 0x30000; VS = 0.
    let c = Stage2Config {
        ipa_bits: 34,
        pa_range: PaRange::Bits42,
        vmid: 1,
        vmid_bits: VmidBits::Eight,
    };
    assert_eq!(c.vtcr().unwrap(), 0x8003_351E);
}

#[test]
fn ipa_larger_than_pa_range_rejected() {
    let c = Stage2Config::new(44, PaRange::Bits40, 1);
    assert_eq!(
        c.vtcr(),
        Err(Error::IpaExceedsPaRange {
            ipa_bits: 44,
            pa_bits: 40
        })
    );
    let r = AddressSpace::new(HostArena::new(ARENA_BASE, 16), RecordingTlb::new(), c);
    assert!(matches!(r, Err(Error::IpaExceedsPaRange { .. })));
}

#[test]
fn vmid_wider_than_8_bits_rejected_without_vs() {
    let c = Stage2Config {
        ipa_bits: 40,
        pa_range: PaRange::Bits40,
        vmid: 256,
        vmid_bits: VmidBits::Eight,
    };
    assert_eq!(c.vtcr(), Err(Error::VmidTooLarge(256)));
    let c16 = Stage2Config {
        vmid_bits: VmidBits::Sixteen,
        ..c
    };
    assert!(c16.vtcr().is_ok());
}

#[test]
fn vttbr_holds_root_and_vmid() {
    // VMID 0x1234 in bits 63:48; root PA in BADDR.
    assert_eq!(
        gunyah_stage2::vttbr(0x8001_0000, 0x1234),
        0x1234_0000_8001_0000
    );
    let vm = vm_with(40, 64);
    assert_eq!(vm.vttbr(), (7u64 << 48) | vm.root_pa());
    assert_eq!(vm.vtcr(), 0x800D_3558); // 40 bits, PS 48 (0b101 -> 0x50000), VS.
}

#[test]
fn concatenated_root_is_contiguous_and_aligned() {
    for (bits, tables) in [(32u8, 4usize), (34, 16), (40, 2), (43, 16), (48, 1)] {
        let vm = vm_with(bits, 64);
        assert_eq!(vm.table_pages(), tables);
        assert_eq!(
            vm.root_pa() % (tables as u64 * K4),
            0,
            "{bits} bits root alignment"
        );
        let mut roots = Vec::new();
        vm.for_each_table(&mut |pa, level| {
            assert_eq!(level, vm.geometry().start_level());
            roots.push(pa);
        });
        let expect: Vec<u64> = (0..tables as u64).map(|i| vm.root_pa() + i * K4).collect();
        assert_eq!(roots, expect);
        check_invariants(&vm);
    }
}

#[test]
fn root_allocation_failure_reported() {
    let mut arena = HostArena::new(ARENA_BASE, 16);
    arena.fail_nth_allocation(1);
    let r = AddressSpace::new(
        arena,
        RecordingTlb::new(),
        Stage2Config::new(40, PaRange::Bits40, 1),
    );
    assert!(matches!(r, Err(Error::NoMemory)));
}

#[test]
fn destroy_returns_every_page_and_invalidates_vmid() {
    let mut vm = vm_with(32, 256);
    vm.map(
        0x1000_0000,
        0x40_0000,
        0x1_0000_0000,
        gunyah_stage2::Attrs::normal_rw(),
        gunyah_stage2::MapFlags::PAGES,
    )
    .unwrap();
    assert!(vm.table_pages() > 4);
    let (arena, tlb) = vm.destroy();
    assert_eq!(arena.pages_in_use(), 0);
    assert_eq!(tlb.vmid_invalidations(), 1);
}

/// An empty 40-bit space (two concatenated root pages) given 39 bits in place keeps its first
/// root page, gives the second back as known zero, and then translates and refuses as a 39-bit
/// space made new would; a space that maps anything, or a larger IPA size, is left alone.
#[test]
fn an_empty_space_shrinks_its_ipa_size_in_place() {
    let mut vm = vm();
    let root = vm.root_pa();
    assert_eq!((vm.table_pages(), vm.memory().pages_in_use()), (2, 2));
    let cfg39 = Stage2Config::new(39, PaRange::Bits48, 7);
    take_trace(&mut vm);
    assert_eq!(vm.reconfigure_empty(cfg39), Ok(true));
    assert_eq!(vm.root_pa(), root, "the root stays where it was");
    assert_eq!((vm.table_pages(), vm.memory().pages_in_use()), (1, 1));
    assert!(
        vm.memory().is_known_zero(root + K4),
        "the freed root page is known zero"
    );
    assert_eq!(
        tlbi_vmids(&take_trace(&mut vm)),
        1,
        "the VMID's TLB entries invalidated"
    );
    // The same VTCR and limits as a 39-bit space made new.
    let fresh = vm_with(39, 16);
    assert_eq!(vm.vtcr(), fresh.vtcr());
    assert_eq!(vm.geometry(), fresh.geometry());
    let top = (1u64 << 39) - K4;
    vm.map(top, K4, 0x1_0000_0000, Attrs::normal_rw(), MapFlags::PAGES)
        .unwrap();
    assert_eq!(vm.query(top).map(|l| l.pa), Some(0x1_0000_0000));
    assert!(matches!(
        vm.map(
            1 << 39,
            K4,
            0x1_0000_0000,
            Attrs::normal_rw(),
            MapFlags::PAGES
        ),
        Err(Error::IpaOutOfRange { .. })
    ));
    check_invariants(&vm);
    // Not empty now: nothing changes.
    let cfg36 = Stage2Config::new(36, PaRange::Bits48, 7);
    assert_eq!(vm.reconfigure_empty(cfg36), Ok(false));
    assert_eq!(vm.geometry(), fresh.geometry());
    // Empty again, but 40 bits needs two root pages: left to a new space.
    vm.unmap(top, K4).unwrap();
    let cfg40 = Stage2Config::new(40, PaRange::Bits48, 7);
    assert_eq!(vm.reconfigure_empty(cfg40), Ok(false));
    assert_eq!(vm.geometry(), fresh.geometry());
    // Destroyed, every page is back.
    let (arena, _) = vm.destroy();
    assert_eq!(arena.pages_in_use(), 0);
}
