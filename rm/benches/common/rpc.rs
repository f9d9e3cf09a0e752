//! The RPC cycle of the `rpc_cycle` bench, shared with `rm/examples/rpc_profile.rs` (which
//! counts its instructions under callgrind): HLOS shares a page with a VM, the VM accepts it
//! (mapped, DONE) and releases it, HLOS reclaims it — four requests sent as encoded packets
//! through `Rm::packet_from`, four replies drained with `Rm::drain_outgoing`, every reply
//! checked to be OK. The VM is taken to READY first (VM_CONFIG_IMAGE with a DT parcel,
//! VM_INIT): only then does it have RM message queues, and before that its requests are
//! dropped unanswered.
#![allow(dead_code)]

use gunyah_rm::launch::vm_dt;
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::{PhysMem, Rm, RmConfig};
use gunyah_rm_abi::MsgId;

pub const HLOS: u16 = 3;
// The message IDs, from the wire-format crate (one place for the protocol's numbers).
const MEM_ACCEPT: u32 = MsgId::MEM_ACCEPT.0;
const MEM_LEND: u32 = MsgId::MEM_LEND.0;
const MEM_SHARE: u32 = MsgId::MEM_SHARE.0;
const MEM_RELEASE: u32 = MsgId::MEM_RELEASE.0;
const MEM_RECLAIM: u32 = MsgId::MEM_RECLAIM.0;
const VM_ALLOC_VMID: u32 = MsgId::VM_ALLOC_VMID.0;
const VM_CONFIG_IMAGE: u32 = MsgId::VM_CONFIG_IMAGE.0;
const VM_INIT: u32 = MsgId::VM_INIT.0;
/// HLOS RAM the VM's DT page is lent from (out of the way of the shared pages).
const DT_PA: u64 = 0x7F00_0000;
/// The page each cycle shares.
pub const CYCLE_PAGE: u64 = 0x4000_0000;
/// The first of the pages kept shared (one parcel each) while the cycles run.
const LIVE_BASE: u64 = 0x4800_0000;

/// One single-fragment request packet.
pub fn packet(seq: u16, id: u32, body: &[u8]) -> Vec<u8> {
    assert!(body.len() <= 232);
    let mut p = Vec::with_capacity(8 + body.len());
    p.extend_from_slice(&[0x21, 1]);
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// MEM_SHARE / MEM_LEND of one page `page` with ACL {HLOS `hlos_rights`, `vm` `vm_rights`}
/// (HLOS left out when `hlos_rights` is 0).
fn create_body(page: u64, vm: u16, vm_rights: u8, hlos_rights: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(&[0u8, 0, 0, 0, 0, 0, 0, 0]); // mem_type, reserved, flags, label
    if hlos_rights != 0 {
        v.extend_from_slice(&[2, 0, 0, 0]);
        v.extend_from_slice(&HLOS.to_le_bytes());
        v.extend_from_slice(&[hlos_rights, 0]);
    } else {
        v.extend_from_slice(&[1, 0, 0, 0]);
    }
    v.extend_from_slice(&vm.to_le_bytes());
    v.extend_from_slice(&[vm_rights, 0]);
    v.extend_from_slice(&[1, 0, 0, 0]);
    v.extend_from_slice(&page.to_le_bytes());
    v.extend_from_slice(&0x1000u64.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]); // no attrs
    v
}

/// Send one request from `from` and return its reply packet (the last packet out).
pub fn call(rm: &mut Rm<SimPlatform>, from: u16, id: u32, body: &[u8]) -> Vec<u8> {
    rm.packet_from(from, &packet(1, id, body));
    let out = rm.drain_outgoing();
    out.into_iter().last().map(|(_, p)| p).unwrap_or_default()
}

/// [`call`], asserting a reply to `id` with error code OK; returns the reply packet.
pub fn ok(rm: &mut Rm<SimPlatform>, from: u16, id: u32, body: &[u8]) -> Vec<u8> {
    let r = call(rm, from, id, body);
    assert!(
        r.len() >= 12 && r[4..8] == id.to_le_bytes() && r[8..12] == [0, 0, 0, 0],
        "request {id:#x} from {from:#x}: reply {r:02x?}"
    );
    r
}

/// An RM whose HLOS has `live` one-page parcels shared with a READY VM; returns it and the VM.
pub fn setup(live: u64) -> (Rm<SimPlatform>, u16) {
    let cfg = RmConfig {
        max_parcels_per_vm: 20_000,
        ..RmConfig::default()
    };
    let mut rm = sim_rm(SimConfig::default(), cfg).unwrap();
    let r = ok(&mut rm, HLOS, VM_ALLOC_VMID, &[0, 0, 0, 0]);
    let vm = u16::from_le_bytes([r[12], r[13]]);
    // READY: a DT lent to the VM as its image parcel, VM_CONFIG_IMAGE, VM_INIT.
    let dt = vm_dt("rpc", 1, 0x8000_0000, 0x10_0000);
    assert!(rm.platform_mut().write(DT_PA, &dt));
    let r = ok(&mut rm, HLOS, MEM_LEND, &create_body(DT_PA, vm, 7, 0));
    let img = u32::from_le_bytes(r[12..16].try_into().unwrap());
    let mut cfg_img = Vec::new();
    cfg_img.extend_from_slice(&vm.to_le_bytes());
    cfg_img.extend_from_slice(&[0, 0]);
    cfg_img.extend_from_slice(&img.to_le_bytes());
    for x in [0u64, 0, 0, dt.len() as u64] {
        cfg_img.extend_from_slice(&x.to_le_bytes());
    }
    ok(&mut rm, HLOS, VM_CONFIG_IMAGE, &cfg_img);
    let mut init = vm.to_le_bytes().to_vec();
    init.extend_from_slice(&[0, 0]);
    ok(&mut rm, HLOS, VM_INIT, &init);
    for i in 0..live {
        ok(
            &mut rm,
            HLOS,
            MEM_SHARE,
            &create_body(LIVE_BASE + i * 0x1000, vm, 6, 7),
        );
    }
    (rm, vm)
}

/// Share `page` with `vm` (HLOS RWX, VM RW), the VM accepts it (DONE: mapped at an IPA the RM
/// chooses) and releases it, HLOS reclaims it. Every reply must be OK.
pub fn cycle(rm: &mut Rm<SimPlatform>, vm: u16, page: u64) {
    let r = ok(rm, HLOS, MEM_SHARE, &create_body(page, vm, 6, 7));
    let h = u32::from_le_bytes(r[12..16].try_into().unwrap());
    let mut acc = Vec::with_capacity(24);
    acc.extend_from_slice(&h.to_le_bytes());
    acc.extend_from_slice(&[0, 2, 0x80, 0, 0, 0, 0, 0]); // normal, SHARE, DONE; label 0
    acc.extend_from_slice(&[0; 12]); // empty ACL, SGL, attr lists
    ok(rm, vm, MEM_ACCEPT, &acc);
    let mut hf = Vec::with_capacity(8);
    hf.extend_from_slice(&h.to_le_bytes());
    hf.extend_from_slice(&[0; 4]);
    ok(rm, vm, MEM_RELEASE, &hf);
    ok(rm, HLOS, MEM_RECLAIM, &hf);
}
