//! The simulator's platform seams over the real stage-2 tables: the
//! single-page replace (the copy-on-write step) and partition accounting.

use gunyah_rm::platform::{AddressSpaces, MemKind, PhysMem, Rights, Tag};
use gunyah_rm::sim::{SimConfig, SimPlatform};

mod common;
use common::seams_only::SeamsOnly;

const VM: u16 = 5;

/// `p` with VM's space mapping IPA 0x4000_0000 read-only to PA 0x4020_0000
/// (2 MiB: one level-2 block).
fn with_block<P: AddressSpaces>(mut p: P) -> P {
    p.create_space(VM).unwrap();
    p.map(
        VM,
        0x4000_0000,
        0x4020_0000,
        0x20_0000,
        Rights::R,
        MemKind::Normal,
        Tag::None,
    )
    .unwrap();
    p
}

#[test]
fn replace_page_splits_a_block_and_keeps_the_rest() {
    let mut p = with_block(SimPlatform::new(SimConfig::default()).unwrap());
    assert_eq!(p.query(VM, 0x4000_3000).unwrap().size, 0x20_0000);
    let tables = p.partition_usage().tables;
    // Replace page 3 with a private RW page from the partition.
    let private = p.alloc_page().unwrap();
    let old = p
        .replace_page(
            VM,
            0x4000_3000,
            private,
            Rights::RW,
            MemKind::Normal,
            Tag::None,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        (old.ipa, old.pa, old.size),
        (0x4000_0000, 0x4020_0000, 0x20_0000)
    );
    let l = p.query(VM, 0x4000_3000).unwrap();
    assert_eq!((l.pa, l.size, l.rights), (private, 0x1000, Rights::RW));
    // Neighbours keep the original mapping, now as pages.
    let n = p.query(VM, 0x4000_4000).unwrap();
    assert_eq!((n.pa, n.size, n.rights), (0x4020_4000, 0x1000, Rights::R));
    assert_eq!(p.query(VM, 0x4000_2000).unwrap().pa, 0x4020_2000);
    // The split took one table page from the partition.
    assert_eq!(p.partition_usage().tables, tables + 1);
    // Replacing an unmapped page maps it.
    assert_eq!(
        p.replace_page(
            VM,
            0x5000_0000,
            private,
            Rights::R,
            MemKind::Normal,
            Tag::None
        )
        .unwrap(),
        None
    );
    // Destroying the space returns every table page.
    p.destroy_space(VM).unwrap();
    p.free_page(private);
    let u = p.partition_usage();
    assert_eq!((u.total - u.free, u.tables), (0, 0));
}

#[test]
fn map_refuses_overlap_and_unmap_refuses_holes() {
    let mut p = SimPlatform::new(SimConfig::default()).unwrap();
    p.create_space(VM).unwrap();
    p.map(
        VM,
        0x4000_0000,
        0x4000_0000,
        0x2000,
        Rights::RW,
        MemKind::Normal,
        Tag::None,
    )
    .unwrap();
    let before = p.partition_usage();
    assert!(p
        .map(
            VM,
            0x4000_1000,
            0x4100_0000,
            0x2000,
            Rights::RW,
            MemKind::Normal,
            Tag::None
        )
        .is_err());
    assert!(p.unmap(VM, 0x4000_1000, 0x2000).is_err());
    assert!(p.protect(VM, 0x4000_1000, 0x2000, Rights::R).is_err());
    // Nothing changed.
    assert_eq!(p.partition_usage(), before);
    assert_eq!(p.query(VM, 0x4000_1000).unwrap().rights, Rights::RW);
    assert!(p.query(VM, 0x4000_2000).is_none());
    assert!(p.create_space(VM).is_err());
}

#[test]
fn default_replace_page_behaves_the_same() {
    // The trait's default `replace_page` (unmap + map).
    let mut p = with_block(SeamsOnly(SimPlatform::new(SimConfig::default()).unwrap()));
    let old = p
        .replace_page(
            VM,
            0x4000_3000,
            0x7000_0000,
            Rights::RW,
            MemKind::Normal,
            Tag::None,
        )
        .unwrap()
        .unwrap();
    assert_eq!((old.pa, old.size), (0x4020_0000, 0x20_0000));
    assert_eq!(
        p.query(VM, 0x4000_3000).map(|l| (l.pa, l.rights)),
        Some((0x7000_0000, Rights::RW))
    );
    assert_eq!(
        p.query(VM, 0x4000_4000).map(|l| l.pa + 0x4000_4000 - l.ipa),
        Some(0x4020_4000)
    );
    // A map that fails (misaligned PA) puts the old page back.
    assert!(p
        .replace_page(
            VM,
            0x4000_5000,
            0x7000_0800,
            Rights::RW,
            MemKind::Normal,
            Tag::None
        )
        .is_err());
    let l = p.query(VM, 0x4000_5000).unwrap();
    assert_eq!(
        (l.pa + 0x4000_5000 - l.ipa, l.rights),
        (0x4020_5000, Rights::R)
    );
}

/// The vCPU walker the multi-threaded tests use (`SimMmu`, lock-free atomic loads) and the
/// stage-2 crate's `simulate_access` (the walk SIM_VM_READ/WRITE take) agree on every IPA and
/// access: pages, blocks, read-only, device, unmapped, and IPAs at and beyond 2^ipa_bits (a
/// level-0 translation fault, as the architecture's input-size check gives).
#[test]
fn the_vcpu_walker_and_the_simulated_access_agree() {
    use gunyah_rm::sim_mmu::SimMmu;
    use gunyah_stage2::Access;
    let mut p = with_block(SimPlatform::new(SimConfig::default()).unwrap());
    p.map(
        VM,
        0x8000_0000,
        0x4100_0000,
        0x1000,
        Rights::RW,
        MemKind::Normal,
        Tag::None,
    )
    .unwrap();
    p.map(
        VM,
        0x8000_2000,
        0x4100_2000,
        0x1000,
        Rights::RX,
        MemKind::Normal,
        Tag::None,
    )
    .unwrap();
    p.map(
        VM,
        0x9000_0000,
        0x0900_0000,
        0x1000,
        Rights::RW,
        MemKind::Device,
        Tag::None,
    )
    .unwrap();
    let mmu = SimMmu::for_vm(&p, VM).unwrap();
    let limit = p.ipa_limit();
    let mut ipas = vec![
        0,
        0x3FFF_F000,
        0x4000_0000,
        0x4000_3008,
        0x401F_FFF8,
        0x4020_0000,
        0x8000_0000,
        0x8000_1000,
        0x8000_2010,
        0x9000_0000,
        limit - 8,
        limit,
        limit + 0x1000,
        u64::MAX - 7,
    ];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ipas.push((x % (limit * 2)) & !7);
    }
    for ipa in ipas {
        for access in [Access::Read, Access::Write, Access::Execute] {
            assert_eq!(
                mmu.translate(ipa, access),
                p.simulate_access(VM, ipa, access).unwrap(),
                "ipa {ipa:#x} {access:?}"
            );
        }
    }
    assert_eq!(
        mmu.translate(limit, Access::Read),
        Err(gunyah_stage2::FaultStatus::new(
            gunyah_stage2::FaultKind::Translation,
            Some(0)
        ))
    );
}

/// The simulator's memory is backed by host pages only where something was written: reads of
/// untouched memory, sealing and mapping a large image into many clones, and copies of pages
/// that read as zeros cost nothing; each written page and each copy of one costs one page.
#[test]
fn simulated_memory_is_backed_only_where_written() {
    use common::golden_setup::{alloc_vm, seal_lent};
    use gunyah_rm::cow::FaultOutcome;
    use gunyah_rm::golden::MapParams;
    use gunyah_stage2::Access;

    const HLOS: u16 = 3;
    const GIB: u64 = 1 << 30;
    const PAGE: u64 = 4096;
    let sim = SimConfig {
        hlos_ram: (0x4000_0000, 4 * GIB),
        partition_base: 0x2_0000_0000,
        partition_pages: 1 << 20,
        ipa_bits: 40,
    };
    let mut rm = gunyah_rm::sim::sim_rm(sim, gunyah_rm::RmConfig::default()).unwrap();
    let backed = |rm: &gunyah_rm::Rm<SimPlatform>| rm.platform().arena().lock().backed_pages();
    let b0 = backed(&rm);
    // Reading 16 MiB of HLOS RAM that nobody wrote: zeros, nothing backed.
    let mut buf = vec![0xffu8; 16 << 20];
    assert!(rm.platform().read(0x4000_0000, &mut buf));
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(backed(&rm), b0);
    // Three bytes across a page boundary back two pages; writing them again backs none.
    let src = 0x4000_0000;
    rm.vm_write(HLOS, src + PAGE - 1, &[1, 2, 3]).unwrap();
    assert_eq!(backed(&rm), b0 + 2);
    rm.vm_write(HLOS, src + PAGE, &[9]).unwrap();
    assert_eq!(backed(&rm), b0 + 2);
    // 8 more data pages spread over a 64 MiB image (sealing hashes every byte: kept small
    // for debug builds; the 4 GiB of HLOS RAM around it are what stays unbacked).
    let image = 64 << 20;
    let data: Vec<u64> = (0..8).map(|k| 2 + k * (image / PAGE / 8)).collect();
    for &p in &data {
        rm.vm_write(HLOS, src + p * PAGE, &(p + 7).to_le_bytes())
            .unwrap();
    }
    assert_eq!(backed(&rm), b0 + 10);
    // Seal the image and map it copy-on-write into 8 clones: nothing more backed.
    let owner = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, owner, src, image);
    let clones: Vec<u16> = (0..8)
        .map(|_| {
            let v = alloc_vm(&mut rm);
            let pool = rm.gmem_create(HLOS, 64 * PAGE, 0, v).unwrap();
            rm.golden_map(HLOS, MapParams::cow(g, v, 0, 0x80_0000_0000, image, pool))
                .unwrap();
            v
        })
        .collect();
    assert_eq!(backed(&rm), b0 + 10);
    // Every clone writes the 8 data pages and 8 pages that read as zeros: the copies of data
    // pages back one page each (8 × 8), the copies of zero pages none.
    let zeros: Vec<u64> = data.iter().map(|p| p + 3).collect();
    for &v in &clones {
        for &p in data.iter().chain(&zeros) {
            let o = rm.handle_access_fault(v, 0x80_0000_0000 + p * PAGE, Access::Write);
            assert!(matches!(o, FaultOutcome::Copied { .. }), "{o:?}");
        }
    }
    assert_eq!(backed(&rm), b0 + 10 + 8 * 8);
    // The copies hold the golden contents; the zero pages' copies read as zeros.
    for &v in &clones {
        for &p in &data {
            let mut b = [0u8; 8];
            rm.vm_read(v, 0x80_0000_0000 + p * PAGE, &mut b).unwrap();
            assert_eq!(u64::from_le_bytes(b), p + 7);
        }
        let mut b = [0xffu8; 8];
        rm.vm_read(v, 0x80_0000_0000 + zeros[0] * PAGE, &mut b)
            .unwrap();
        assert_eq!(b, [0; 8]);
    }
    assert!(rm.check_isolation().is_empty());
}
