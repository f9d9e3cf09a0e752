//! The isolation holes found by attacking `gunyah-rm serve` from outside, one test each: every
//! one of these requests succeeded before and must be refused now. Clients are separate
//! connections to a real server, as separate VMs' tools would be.

mod common;
mod socket;
use socket::{ok_reply, ready_vm, ready_vm_with_image, request, Client, Server, HLOS};

use common::{accept, create, fault_unserved, golden_map, handle_flags, notify, vmid_pad};

const VM_RESET: u32 = 0x5600_0006;
const VM_DEALLOC: u32 = 0x5600_0002;
const VM_GET_VMID: u32 = 0x5600_0024;
const MEM_LEND: u32 = 0x5100_0012;
const MEM_ACCEPT: u32 = 0x5100_0011;
const MEM_RECLAIM: u32 = 0x5100_0015;
const MEM_NOTIFY: u32 = 0x5100_0017;
const GOLDEN_SEAL: u32 = 0x4700_0010;
const GOLDEN_MAP: u32 = 0x4700_0011;
const SIM_VM_READ: u32 = 0x4700_00F0;
const SIM_VM_WRITE: u32 = 0x4700_00F1;
const N_MEM_RECALL: u32 = 0x5110_0014;
const N_FAULT_UNSERVED: u32 = 0x4710_0003;
const MEM_INVALID: u32 = 0xA;
const VMID_INVALID: u32 = 0xD;
const DENIED: u32 = 3;

/// Send one request and return (error code, data), skipping notifications.
fn call(c: &Client, seq: u16, msg_id: u32, payload: &[u8]) -> (u32, Vec<u8>) {
    socket::call(c, seq, msg_id, payload)
}

/// HLOS's teardown of a VM (as Linux's): VM_RESET, MEM_RECLAIM of its image parcel,
/// VM_DEALLOC_VMID. Uses `seq..seq + 3`.
fn reset_and_dealloc(h: &Client, seq: u16, vm: u16, image: u32) {
    ok_reply(h, seq, VM_RESET, &vmid_pad(vm));
    ok_reply(h, seq + 1, MEM_RECLAIM, &handle_flags(image, 0));
    ok_reply(h, seq + 2, VM_DEALLOC, &vmid_pad(vm));
}

/// Whether the server refuses (closes) a connection saying hello as `vmid`.
fn refused(s: &Server, vmid: u16) -> bool {
    let c = Client::raw(&s.path);
    c.send(&socket::hello(vmid));
    c.recv().is_none()
}

/// The SIM_VM_READ payload: u16 vmid, u16 reserved, u32 length, u64 ipa.
fn sim_read(vmid: u16, len: u32, ipa: u64) -> Vec<u8> {
    common::sim_read(vmid, len, ipa)
}

/// Hole 1: HLOS deallocates VM 0x80 and allocates it again; the connection made as the first
/// 0x80 must not act as the second (it used to accept a parcel lent to the new VM and read its
/// bytes, and the real new VM's connect was refused as "already connected").
#[test]
fn a_stale_connection_cannot_act_for_a_new_vm_with_the_same_vmid() {
    let s = Server::start("stale");
    let h = Client::hello(&s.path, HLOS);
    let (vm, image) = ready_vm_with_image(&h, 1);
    assert_eq!(vm, 0x80);
    let old = Client::hello(&s.path, vm);
    assert_eq!(call(&old, 1, VM_GET_VMID, &[]), (0, vec![0x80, 0, 0, 0]));

    reset_and_dealloc(&h, 10, vm, image);
    assert_eq!(ready_vm(&h, 20), vm, "the freed VMID is handed out again");
    // A secret for the new VM: HLOS writes it into a page and lends the page.
    let secret = b"for the new 0x80 only";
    let (e, _) = call(
        &h,
        30,
        SIM_VM_WRITE,
        &common::sim_write(HLOS, 0x4900_0000, secret),
    );
    assert_eq!(e, 0);
    let (d, _) = ok_reply(
        &h,
        31,
        MEM_LEND,
        &create(0, 0, 0, &[(vm, 6)], &[(0x4900_0000, 0x1000)]),
    );
    let parcel = u32::from_le_bytes(d[..4].try_into().unwrap());

    // The old connection was closed when its VM went away: it gets nothing more, and what it
    // sends is not served.
    let _ = nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(&old.fd),
        &request(2, MEM_ACCEPT, &accept(parcel, 0, 1, 0x80, 0, &[], &[], &[])),
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    );
    assert_eq!(old.recv(), None, "the stale connection is closed");
    // The real new VM connects and accepts its parcel.
    let new = Client::hello(&s.path, vm);
    let (e, d) = call(
        &new,
        3,
        MEM_ACCEPT,
        &accept(parcel, 0, 1, 0x80, 0, &[], &[], &[]),
    );
    assert_eq!(e, 0, "the new VM accepts its parcel");
    let ipa = u64::from_le_bytes(d[4..12].try_into().unwrap());
    let (e, bytes) = call(
        &new,
        4,
        SIM_VM_READ,
        &sim_read(vm, secret.len() as u32, ipa),
    );
    assert_eq!((e, bytes.as_slice()), (0, &secret[..]));
}

/// Hole 2: notifications queued in `serve` for a VM that has no client connected must not be
/// delivered to the next VM given its VMID. The control (a VM that is not reset) shows the
/// queue does deliver what is held for a live VM.
#[test]
fn packets_held_for_a_vm_do_not_reach_the_next_vm_with_its_vmid() {
    let s = Server::start("held");
    let h = Client::hello(&s.path, HLOS);
    let (a, image) = ready_vm_with_image(&h, 1);
    let b = ready_vm(&h, 10);
    // A MEM_RECALL for each, held by the server (neither is connected).
    let mut seq = 20;
    let mut parcels = Vec::new();
    for (vm, pa) in [(a, 0x4900_0000u64), (b, 0x4901_0000)] {
        let (d, _) = ok_reply(
            &h,
            seq,
            MEM_LEND,
            &create(0, 0, 0x1234, &[(vm, 6)], &[(pa, 0x1000)]),
        );
        let p = u32::from_le_bytes(d[..4].try_into().unwrap());
        ok_reply(&h, seq + 1, MEM_NOTIFY, &notify(p, 0x8, 0x77, &[vm]));
        parcels.push(p);
        seq += 2;
    }
    // `a` goes away and a new VM gets its VMID.
    ok_reply(&h, seq, MEM_RECLAIM, &handle_flags(parcels[0], 0));
    reset_and_dealloc(&h, seq + 1, a, image);
    assert_eq!(ready_vm(&h, seq + 4), a);

    // The new `a`: the first packet after the hello is the reply to its own request.
    let new_a = Client::hello(&s.path, a);
    new_a.send(&request(1, VM_GET_VMID, &[]));
    let first = new_a.recv().expect("a reply");
    assert_eq!(
        (first[1] & 3, &first[4..8]),
        (2, &VM_GET_VMID.to_le_bytes()[..]),
        "a packet held for the old VM was delivered: {first:02x?}"
    );
    // The control: `b` was never reset and gets its MEM_RECALL {handle, tag 0x77}.
    let bc = Client::hello(&s.path, b);
    let n = bc.recv().expect("the held notification");
    assert_eq!((n[1] & 3, &n[4..8]), (3, &N_MEM_RECALL.to_le_bytes()[..]));
    let mut want = parcels[1].to_le_bytes().to_vec();
    want.extend_from_slice(&0x77u32.to_le_bytes());
    assert_eq!(&n[8..], &want[..]);
}

/// HLOS seals 2 MiB of its RAM (lent to `to`) as a golden image; returns its id.
fn seal(h: &Client, seq: u16, to: u16) -> u32 {
    let (e, _) = call(
        h,
        seq,
        SIM_VM_WRITE,
        &common::sim_write(HLOS, 0x4020_0000, b"golden!"),
    );
    assert_eq!(e, 0);
    let (d, _) = ok_reply(
        h,
        seq + 1,
        MEM_LEND,
        &create(0, 0, 0, &[(to, 7)], &[(0x4020_0000, 0x20_0000)]),
    );
    let mut req = d[..4].to_vec();
    req.extend_from_slice(&[0; 4]);
    let (g, _) = ok_reply(h, seq + 2, GOLDEN_SEAL, &req);
    u32::from_le_bytes(g[..4].try_into().unwrap())
}

/// Hole 3: a clone, connected as itself, mapped an image HLOS sealed into itself and read it.
/// Only the image's owner may map it, and only into itself or a VM it manages.
#[test]
fn a_clone_cannot_map_an_image_it_does_not_own() {
    let s = Server::start("golden-acl");
    let h = Client::hello(&s.path, HLOS);
    let clone = ready_vm(&h, 1);
    let other = ready_vm(&h, 10);
    let g = seal(&h, 20, clone);
    let c = Client::hello(&s.path, clone);
    for target in [clone, other] {
        let (e, _) = call(
            &c,
            1,
            GOLDEN_MAP,
            &golden_map(g, target, 0, 0, 0x8000_0000, 0x20_0000, 0xFFFF_FFFF),
        );
        assert_eq!(e, DENIED, "GOLDEN_MAP into {target:#x} by the clone");
    }
    // Nothing was mapped: the clone reads nothing there.
    let (e, _) = call(&c, 2, SIM_VM_READ, &sim_read(clone, 7, 0x8000_0000));
    assert_eq!(e, MEM_INVALID);
    // The owner maps it (read-only) and then the clone reads it.
    ok_reply(
        &h,
        30,
        GOLDEN_MAP,
        &golden_map(g, clone, 0, 0, 0x8000_0000, 0x20_0000, 0xFFFF_FFFF),
    );
    assert_eq!(
        call(&c, 3, SIM_VM_READ, &sim_read(clone, 7, 0x8000_0000)),
        (0, b"golden!".to_vec())
    );
}

/// Hole 4: a clone read HLOS's RAM and another clone's memory, and wrote into them.
#[test]
fn sim_accesses_only_for_the_vm_itself_or_its_manager() {
    let s = Server::start("sim-acl");
    let h = Client::hello(&s.path, HLOS);
    let a = ready_vm(&h, 1);
    let b = ready_vm(&h, 10);
    let (e, _) = call(
        &h,
        20,
        SIM_VM_WRITE,
        &common::sim_write(HLOS, 0x4A00_0000, b"hlos"),
    );
    assert_eq!(e, 0);
    let ca = Client::hello(&s.path, a);
    assert_eq!(
        call(&ca, 1, SIM_VM_READ, &sim_read(HLOS, 4, 0x4A00_0000)).0,
        VMID_INVALID
    );
    assert_eq!(
        call(
            &ca,
            2,
            SIM_VM_WRITE,
            &common::sim_write(HLOS, 0x4A00_0000, b"evil")
        )
        .0,
        VMID_INVALID
    );
    assert_eq!(
        call(&ca, 3, SIM_VM_READ, &sim_read(b, 4, 0)).0,
        VMID_INVALID
    );
    // HLOS's RAM is untouched; HLOS may read it, and `a` may touch its own memory.
    assert_eq!(
        call(&h, 21, SIM_VM_READ, &sim_read(HLOS, 4, 0x4A00_0000)),
        (0, b"hlos".to_vec())
    );
    assert_eq!(call(&ca, 4, SIM_VM_READ, &sim_read(a, 4, 0)).0, MEM_INVALID);
}

/// Hole 5: a VM that was only allocated (LOAD) connected and sent any request. Its RM queues
/// exist from VM_INIT (as in Gunyah's RM) until its reset; only then may it connect.
#[test]
fn a_vm_connects_only_while_its_rm_queues_exist() {
    let s = Server::start("when");
    let h = Client::hello(&s.path, HLOS);
    let (d, _) = ok_reply(&h, 1, 0x5600_0001, &[0, 0, 0, 0]);
    let vm = u16::from_le_bytes([d[0], d[1]]);
    assert!(refused(&s, vm), "a VM in LOAD may not connect");
    ok_reply(&h, 2, VM_DEALLOC, &vmid_pad(vm));
    let vm = ready_vm(&h, 10);
    let c = Client::hello(&s.path, vm);
    assert_eq!(call(&c, 1, VM_GET_VMID, &[]).0, 0);
    // Reset destroys the queues: the connection is closed and a new one refused.
    ok_reply(&h, 20, VM_RESET, &vmid_pad(vm));
    assert_eq!(c.recv(), None, "the connection of a reset VM is closed");
    assert!(refused(&s, vm), "a reset VM may not connect");
}

/// Hole 6: a write to a read-only golden mapping was refused, but nobody was told. The manager
/// now gets FAULT_UNSERVED {vmid, why 1 (no CoW), action 1 (abort injected), page IPA}.
#[test]
fn an_unserved_fault_is_reported_to_the_manager() {
    let s = Server::start("unserved");
    let h = Client::hello(&s.path, HLOS);
    let clone = ready_vm(&h, 1);
    let g = seal(&h, 10, clone);
    ok_reply(
        &h,
        20,
        GOLDEN_MAP,
        &golden_map(g, clone, 0, 0, 0x8000_0000, 0x20_0000, 0xFFFF_FFFF),
    );
    let c = Client::hello(&s.path, clone);
    let (e, d) = call(
        &c,
        1,
        SIM_VM_WRITE,
        &common::sim_write(clone, 0x8000_1010, b"w"),
    );
    assert_eq!((e, d), (MEM_INVALID, 0x8000_1000u64.to_le_bytes().to_vec()));
    // HLOS's next packet is the notification.
    let n = h.recv().expect("a notification to the manager");
    assert_eq!(
        (n[1] & 3, &n[4..8]),
        (3, &N_FAULT_UNSERVED.to_le_bytes()[..])
    );
    assert_eq!(&n[8..], &fault_unserved(clone, 1, 1, 0x8000_1000)[..]);
}
