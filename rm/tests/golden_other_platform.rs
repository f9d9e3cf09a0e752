//! The extension on a platform that is not the simulator: SIM_VM_READ and
//! SIM_VM_WRITE answer UNIMPLEMENTED, while gmem, golden images and the
//! fault path work through the platform seams alone (the default
//! unmap + map `replace_page`).

use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{SimConfig, SimPlatform};
use gunyah_rm::{AddressSpaces, PhysMem, Rights, Rm, RmConfig};
use gunyah_stage2::Access;

mod common;
use common::golden_setup::{alloc_vm, seal_lent};
use common::seams_only::SeamsOnly;

/// The simulator's tables and memory, without its guest-access simulation
/// or its single-entry replace (as a hardware or hypercall backend would be).
type Plain = SeamsOnly<SimPlatform>;

const HLOS: u16 = 3;
const SRC: u64 = 0x4020_0000;

fn reply_err(rm: &mut Rm<Plain>, msg_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    rm.handle_request(HLOS, 7, msg_id, payload);
    let out = rm.drain_outgoing();
    assert_eq!(out.len(), 1);
    let p = &out[0].1;
    // 8-byte header, then u32 err.
    assert_eq!(&p[4..8], &msg_id.to_le_bytes());
    (
        u32::from_le_bytes(p[8..12].try_into().unwrap()),
        p[12..].to_vec(),
    )
}

#[test]
fn sim_requests_are_unimplemented_and_cow_still_works() {
    let cfg = SimConfig::default();
    let rc = RmConfig {
        hlos_ram: Some((cfg.hlos_ram.0, cfg.hlos_ram.0, cfg.hlos_ram.1)),
        ..RmConfig::default()
    };
    let mut rm = Rm::new(SeamsOnly(SimPlatform::new(cfg).unwrap()), rc).unwrap();
    let mut read = vec![3, 0, 0, 0];
    read.extend_from_slice(&16u32.to_le_bytes());
    read.extend_from_slice(&SRC.to_le_bytes());
    assert_eq!(
        reply_err(&mut rm, 0x4700_00F0, &read),
        (0xFFFF_FFFF, vec![])
    );
    let mut write = vec![3, 0, 0, 0];
    write.extend_from_slice(&2u32.to_le_bytes());
    write.extend_from_slice(&SRC.to_le_bytes());
    write.extend_from_slice(b"hi");
    assert_eq!(
        reply_err(&mut rm, 0x4700_00F1, &write),
        (0xFFFF_FFFF, vec![])
    );
    assert!(rm.vm_write(HLOS, SRC, b"hi").is_err());

    // Golden image from HLOS RAM, a clone, and a CoW fault through the seams.
    assert!(rm.platform_mut().write(SRC + 0x1000, b"golden"));
    let vm = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, vm, SRC, 0x20_0000);
    let pool = rm.gmem_create(HLOS, 4 * 4096, 0, vm).unwrap();
    rm.golden_map(HLOS, MapParams::cow(g, vm, 0, 0x8000_0000, 0x20_0000, pool))
        .unwrap();
    let out = rm.handle_access_fault(vm, 0x8000_1004, Access::Write);
    let FaultOutcome::Copied { pa } = out else {
        panic!("{out:?}");
    };
    let mut b = [0u8; 6];
    assert!(rm.platform().read(pa, &mut b));
    assert_eq!(&b, b"golden");
    let l = rm.platform().query(vm, 0x8000_1000).unwrap();
    assert_eq!((l.pa, l.size, l.rights), (pa, 4096, Rights::RW));
    let l = rm.platform().query(vm, 0x8000_2000).unwrap();
    assert_eq!((l.pa, l.rights), (SRC + 0x2000, Rights::R));
    assert_eq!(
        rm.handle_access_fault(vm, 0x8000_1008, Access::Write),
        FaultOutcome::Retry
    );
    let v = rm.check_isolation();
    assert!(v.is_empty(), "{v:#?}");
}

/// (size, writable) of `vmid`'s leaves in `[ipa, ipa + size)`.
fn leaf_sizes<P: AddressSpaces>(p: &P, vmid: u16, ipa: u64, size: u64) -> Vec<(u64, bool)> {
    let mut v = Vec::new();
    p.for_each_leaf(vmid, &mut |l| {
        if l.ipa >= ipa && l.ipa < ipa + size {
            v.push((l.size, l.rights.writable()));
        }
    });
    v
}

/// Eagerly bind 4 MiB at a 2 MiB-aligned IPA of a new VM; returns the VM.
fn bind_4mib<P: gunyah_rm::Platform>(rm: &mut Rm<P>) -> u16 {
    let vm = alloc_vm(rm);
    let g = rm.gmem_create(HLOS, 4 << 20, 0, vm).unwrap();
    let b = gunyah_rm::gmem::BindParams {
        gmem: g,
        vmid: vm,
        rights: Rights::RW,
        demand: false,
        offset: 0,
        ipa: 0x8020_0000,
        size: 4 << 20,
    };
    rm.gmem_bind(HLOS, b).unwrap();
    vm
}

#[test]
fn eager_binds_use_blocks_where_the_platform_has_runs_and_pages_otherwise() {
    let cfg = SimConfig::default();
    let rc = RmConfig {
        hlos_ram: Some((cfg.hlos_ram.0, cfg.hlos_ram.0, cfg.hlos_ram.1)),
        ..RmConfig::default()
    };
    // The simulator hands out 2 MiB runs: two read-write blocks.
    let mut rm = Rm::new(SimPlatform::new(cfg.clone()).unwrap(), rc.clone()).unwrap();
    let vm = bind_4mib(&mut rm);
    assert_eq!(
        leaf_sizes(rm.platform(), vm, 0x8020_0000, 4 << 20),
        vec![(2 << 20, true); 2]
    );
    assert!(rm.check_isolation().is_empty());
    // Through the seams alone (no `alloc_contiguous`): page by page, 1024
    // read-write pages, all reading as zeros.
    let mut rm = Rm::new(SeamsOnly(SimPlatform::new(cfg).unwrap()), rc).unwrap();
    let vm = bind_4mib(&mut rm);
    assert_eq!(
        leaf_sizes(rm.platform(), vm, 0x8020_0000, 4 << 20),
        vec![(4096, true); 1024]
    );
    let mut pa = 0;
    rm.platform().for_each_leaf(vm, &mut |l| pa = l.pa);
    let mut buf = vec![0xffu8; 4096];
    assert!(rm.platform().read(pa, &mut buf));
    assert_eq!(buf, vec![0u8; 4096]);
    assert!(rm.check_isolation().is_empty());
}
