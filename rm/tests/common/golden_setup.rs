//! A golden image set up the way HLOS does it: a VM allocated with VM_ALLOC,
//! a range of HLOS RAM lent to it and sealed. Shared by the tests (through
//! `common`) and the examples (which include this file with `#[path]`).
#![allow(dead_code)]

use gunyah_rm::memparcel::{AclEntry, CreateReq, TransType};
use gunyah_rm::{Platform, Rights, Rm, Vmid};

/// HLOS's VMID.
const HLOS: Vmid = 3;
/// VM_ALLOC's message ID (spec §2).
const VM_ALLOC: u32 = 0x5600_0001;

/// Allocate the next free dynamic VMID by HLOS's VM_ALLOC (the reply is dropped).
pub fn alloc_vm<P: Platform>(rm: &mut Rm<P>) -> Vmid {
    let vm = rm.vms().free_dynamic().unwrap();
    rm.handle_request(HLOS, 1, VM_ALLOC, &[0, 0, 0, 0]);
    let _ = rm.drain_outgoing();
    vm
}

/// Lend HLOS RAM `[src, src+size)` to `vm` (RWX) and seal the parcel as a
/// golden image; returns the image's ID.
pub fn seal_lent<P: Platform>(rm: &mut Rm<P>, vm: Vmid, src: u64, size: u64) -> u32 {
    let h = rm
        .mem_create(
            HLOS,
            &CreateReq {
                trans: TransType::Lend,
                mem_type: 0,
                flags: 0,
                label: 0,
                acl: vec![AclEntry {
                    vmid: vm,
                    rights: Rights::RWX,
                }],
                sgl: vec![(src, size)],
                attrs: vec![],
            },
        )
        .unwrap();
    rm.golden_seal(HLOS, h, 0).unwrap().0
}
