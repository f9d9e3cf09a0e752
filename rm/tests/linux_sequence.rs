//! Scenario tests driven only by encoded RPC bytes, following Linux's
//! Gunyah driver (spec §5.6): VM start with a lent DTB parcel, demand
//! paging ranges, address layout, boot context, and teardown. Expected
//! values are written from the spec.

mod common;
use common::*;

use gunyah_rm::platform::{AddressSpaces, PhysMem, Rights};

const VM: u16 = 0x80;
const GUEST_BASE: u64 = 0x8000_0000;
const FOLIO_A: u64 = 0x5000_0000;
const FOLIO_B: u64 = 0x5020_0000;
const MIB: u64 = 0x10_0000;

fn start_vm(h: &mut H, cpus: u32) -> (u32, Vec<u8>) {
    // LNX first asks for its own VMID.
    let c = h.ok(HLOS, VM_GET_VMID, &[]);
    assert_eq!(c.data, vec![3, 0, 0, 0]);

    // VM_ALLOC_VMID(0) → 0x80. The VM is created in LOAD: not a state change, so
    // no VM_STATUS (§12 lists the notified changes; allocation is not one).
    let c = h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    assert_eq!(c.data, vec![0x80, 0, 0, 0]);
    assert_eq!(c.notifs(), vec![]);

    // The DTB, written by HLOS into the first gmem folio before lending.
    let dtb = tiny_dtb(cpus);
    assert!(h.rm.platform_mut().write(FOLIO_A + 0x1000, &dtb));

    // MEM_LEND: one ACL entry {vm, RWX}, one SGL entry per folio (two
    // physically separate 1 MiB folios). First handle is 0.
    let c = h.ok(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 7)], &[(FOLIO_A, MIB), (FOLIO_B, MIB)]),
    );
    let handle = c.u32_at(0);
    assert_eq!(handle, 0);
    // Lent memory left HLOS's stage 2 at create.
    assert_eq!(h.rm.platform().query(HLOS, FOLIO_A), None);
    assert_eq!(h.rm.platform().query(HLOS, FOLIO_B + MIB - 0x1000), None);
    assert!(h.rm.platform().query(HLOS, FOLIO_B + MIB).is_some());

    // VM_CONFIG_IMAGE(auth NONE, image 0/0, dtb at parcel offset 0x1000) → INIT.
    let c = h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, handle, (0, 0), (0x1000, dtb.len() as u64)),
    );
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 1, 0, 0))]
    );
    // VM_STATUS comes before the reply (§12).
    assert_eq!(c.msgs.last().unwrap().msg_type, 2);

    // VM_SET_DEMAND_PAGING: one range per lent binding (GPA ranges).
    let mut dp = vmid_pad(VM);
    dp.extend(le32(1));
    dp.extend(GUEST_BASE.to_le_bytes());
    dp.extend((256 * MIB).to_le_bytes());
    h.ok(HLOS, VM_SET_DEMAND_PAGING, &dp);

    // VM_SET_ADDRESS_LAYOUT(IMAGE, parcel start GPA, parcel size).
    let mut al = vmid_pad(VM);
    al.extend(le32(0));
    al.extend(GUEST_BASE.to_le_bytes());
    al.extend((2 * MIB).to_le_bytes());
    h.ok(HLOS, VM_SET_ADDRESS_LAYOUT, &al);

    // VM_INIT → READY.
    let c = h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 2, 0, 0))]
    );

    // VM_SET_BOOT_CONTEXT: PC = image base, X0 = DTB GPA.
    for (set, idx, val) in [(1u8, 0u8, GUEST_BASE), (0, 0, GUEST_BASE + 0x1000)] {
        let mut b = VM.to_le_bytes().to_vec();
        b.extend_from_slice(&[set, idx, 0, 0, 0, 0]);
        b.extend(val.to_le_bytes());
        h.ok(HLOS, VM_SET_BOOT_CONTEXT, &b);
    }

    // VM_GET_HYP_RESOURCES: one VIRTUAL_CPU (type 4) per vCPU (§12.1; the VM's own
    // RM message queues are not its manager's resources).
    let c = h.ok(HLOS, VM_GET_HYP_RESOURCES, &vmid_pad(VM));
    let n = c.u32_at(0) as usize;
    assert_eq!(n, cpus as usize);
    assert_eq!(c.data.len(), 4 + 44 * n);
    for i in 0..n {
        let e = &c.data[4 + 44 * i..4 + 44 * (i + 1)];
        let (ty, partner) = (e[0], u16::from_le_bytes([e[2], e[3]]));
        let label = u32::from_le_bytes(e[8..12].try_into().unwrap());
        assert_eq!((ty, partner, label), (4, VM, i as u32)); // VIRTUAL_CPU
    }

    // VM_START → RUNNING; the image parcel is now mapped in the guest.
    assert_eq!(h.rm.platform().query(VM, GUEST_BASE), None);
    let c = h.ok(HLOS, VM_START, &vmid_pad(VM));
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 3, 0, 0))]
    );
    let l = h.rm.platform().query(VM, GUEST_BASE + 0x1000).unwrap();
    assert_eq!(l.pa + (GUEST_BASE + 0x1000 - l.ipa), FOLIO_A + 0x1000);
    assert_eq!(l.rights, Rights::RWX);
    let l = h.rm.platform().query(VM, GUEST_BASE + MIB).unwrap();
    assert_eq!(l.pa + (GUEST_BASE + MIB - l.ipa), FOLIO_B);
    (handle, dtb)
}

#[test]
fn linux_start_and_teardown() {
    let mut h = H::new();
    let (handle, dtb) = start_vm(&mut h, 4);

    // While it runs: reclaim → MEM_INUSE, dealloc → VM_STATE.
    h.call_fails(HLOS, MEM_RECLAIM, &handle_flags(handle, 0), MEM_INUSE);
    h.call_fails(HLOS, VM_DEALLOC, &vmid_pad(VM), VM_STATE);
    let c = h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM));
    assert_eq!(c.data, vec![3, 0, 0, 0]);
    // The guest sees its DTB.
    let mut buf = vec![0u8; dtb.len()];
    assert!(h.rm.platform().read(FOLIO_A + 0x1000, &mut buf));
    assert_eq!(buf, dtb);

    // A shared buffer for the running VM: MEM_SHARED (§3.7) goes to it.
    let page = 0x6000_0000u64;
    let sh = h
        .ok(
            HLOS,
            MEM_SHARE,
            &create(0, 1, 5, &[(HLOS, 7), (VM, 6)], &[(page, 0x2000)]),
        )
        .u32_at(0);
    let c = h.ok(HLOS, MEM_NOTIFY, &notify(sh, 0x1, 0x99, &[VM]));
    let mut shared = sh.to_le_bytes().to_vec();
    shared.extend_from_slice(&[0, 2, 1, 0]); // NORMAL, SHARE, sanitized
    shared.extend_from_slice(&[3, 0, 0, 0]); // owner HLOS
    shared.extend(5u32.to_le_bytes()); // label
    shared.extend(0x99u32.to_le_bytes()); // tag
    shared.extend(acl(&[(HLOS, 7), (VM, 6)]));
    shared.extend_from_slice(&[1, 0, 0, 0]); // one region, sizes only
    shared.extend(0x2000u64.to_le_bytes());
    shared.extend(attrs(&[]));
    assert_eq!(c.notifs(), vec![(VM, N_MEM_SHARED, shared)]);
    // The guest accepts it and tells the owner.
    h.ok(VM, MEM_ACCEPT, &accept(sh, 0, 2, 0x80, 5, &[], &[], &[]));
    let c = h.ok(VM, MEM_NOTIFY, &notify(sh, 0x4, 0x99, &[]));
    let mut acc = sh.to_le_bytes().to_vec();
    acc.extend_from_slice(&[0x80, 0, 0, 0, 0x99, 0, 0, 0]);
    assert_eq!(c.notifs(), vec![(HLOS, N_MEM_ACCEPTED, acc)]);

    // Teardown: VM_STOP(force, reason 3) → VM_STATUS(EXITED), VM_EXITED{type 7}.
    let c = h.ok(HLOS, VM_STOP, &stop(VM, 1, 3));
    let mut exited = VM.to_le_bytes().to_vec();
    exited.extend_from_slice(&[7, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        c.notifs(),
        vec![
            (HLOS, N_VM_STATUS, vm_status(VM, 9, 0, 0)),
            (HLOS, N_VM_EXITED, exited)
        ]
    );

    // VM_RESET: RESETTING before the reply; MEM_RELEASED then RESET after it.
    let c = h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    let kinds: Vec<(u8, u32)> = c.msgs.iter().map(|m| (m.msg_type, m.msg_id)).collect();
    assert_eq!(
        kinds,
        vec![
            (3, N_VM_STATUS),
            (2, VM_RESET),
            (3, N_MEM_RELEASED),
            (3, N_MEM_RELEASED),
            (3, N_VM_STATUS)
        ]
    );
    assert_eq!(c.msgs[0].payload, vm_status(VM, 10, 0, 0));
    // MEM_RELEASED {handle, vmid, tag}: the image parcel (no tag), then the buffer.
    let mut rel = handle.to_le_bytes().to_vec();
    rel.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(c.msgs[2].payload, rel);
    let mut rel = sh.to_le_bytes().to_vec();
    rel.extend_from_slice(&[0x80, 0, 0, 0, 0x99, 0, 0, 0]);
    assert_eq!(c.msgs[3].payload, rel);
    assert_eq!(c.msgs[4].payload, vm_status(VM, 11, 0, 0));
    // Notifications use their own counter: consecutive seq numbers.
    assert_eq!(c.msgs[2].seq, c.msgs[0].seq.wrapping_add(1));
    assert_eq!(h.rm.platform().query(VM, GUEST_BASE), None);

    // Reclaim the DTB parcel: back in HLOS, and zeroed because the RM
    // accepted it with SANITIZE (§7.4).
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(sh, 0));
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(handle, 0));
    let l = h.rm.platform().query(HLOS, FOLIO_A + 0x1000).unwrap();
    assert_eq!(
        (l.rights, l.pa + (FOLIO_A + 0x1000 - l.ipa)),
        (Rights::RWX, FOLIO_A + 0x1000)
    );
    let mut buf = vec![0xAAu8; dtb.len()];
    assert!(h.rm.platform().read(FOLIO_A + 0x1000, &mut buf));
    assert!(buf.iter().all(|b| *b == 0));

    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
    h.call_fails(HLOS, VM_GET_STATE, &vmid_pad(VM), NORESOURCE);
    // The freed dynamic VMID is handed out again.
    let c = h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    assert_eq!(c.data, vec![0x80, 0, 0, 0]);
}

#[test]
fn start_fails_on_garbage_dtb_and_vm_can_be_reset() {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    // Lend a parcel holding no DTB (zeros).
    let handle = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(FOLIO_A, MIB)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, handle, (0, 0), (0, 0x100)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    // Any failure at VM_START → NORESOURCE and INIT_FAILED (§12).
    let c = h.call(HLOS, VM_START, &vmid_pad(VM));
    assert_eq!(c.err, NORESOURCE);
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 8, 0, 0))]
    );
    assert_eq!(h.rm.platform().query(VM, 0x1_0000_0000), None);
    // LNX teardown for INIT_FAILED: reclaim, reset, dealloc.
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(handle, 0));
    let c = h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    assert_eq!(c.notifs().last().unwrap().2, vm_status(VM, 11, 0, 0));
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
}

#[test]
fn config_image_failures() {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    // Mis-sized → MSG_INVALID, no state change.
    h.call_fails(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, 0, (0, 0), (0, 0))[..39],
        MSG_INVALID,
    );
    // Unknown VMID → VMID_INVALID.
    h.call_fails(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(0x90, 0, 0, (0, 0), (0, 0)),
        VMID_INVALID,
    );
    let handle = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(FOLIO_A, MIB)]),
        )
        .u32_at(0);
    // Past the argument checks every failure moves the VM to INIT_FAILED with
    // VM_STATUS(8) before the reply (§12.1; a DT range beyond the parcel used to
    // leave the VM in LOAD): a DT range beyond the parcel → ARGUMENT_INVALID.
    let c = h.call(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, handle, (0, 0), (MIB - 0x10, 0x20)),
    );
    assert_eq!(c.err, ARGUMENT_INVALID);
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 8, 0, 0))]
    );
    let c = h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM));
    assert_eq!(c.data[0], 8);
    // A VM that failed VM_CONFIG_IMAGE cannot be reset (Gunyah's RM dies there;
    // VM_STATE here) but can be deallocated.
    h.call_fails(HLOS, VM_RESET, &vmid_pad(VM), VM_STATE);
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
    // Unknown image parcel → MEM_INVALID and the VM becomes INIT_FAILED.
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let c = h.call(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, handle + 7, (0, 0), (0, 0x10)),
    );
    assert_eq!(c.err, MEM_INVALID);
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 8, 0, 0))]
    );
    let c = h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM));
    assert_eq!(c.data[0], 8);
}

#[test]
fn unknown_and_malformed_requests() {
    let mut h = H::new();
    let c = h.call(HLOS, 0x5600_00FE, &[1, 2, 3]);
    assert_eq!((c.err, c.data.len()), (UNIMPLEMENTED, 0));
    // Header announcing 63 continuations, bad api byte, stray continuation,
    // abandoned partial: no reply; the next request is answered normally.
    let mut junk = request_packets(1, VM_GET_VMID, &[]);
    junk[0][1] = (63 << 2) | 1;
    assert!(h.send_packets(HLOS, &junk).is_empty());
    assert!(h
        .send_packets(HLOS, &[vec![0x22, 1, 0, 0, 0x24, 0, 0, 0x56]])
        .is_empty());
    assert!(h
        .send_packets(HLOS, &[vec![0x21, 4, 0, 0, 0x24, 0, 0, 0x56]])
        .is_empty());
    let partial = request_packets(9, MEM_SHARE, &[0u8; 300]);
    assert!(h.send_packets(HLOS, &partial[..1]).is_empty());
    assert!(h.send_packets(HLOS, &[vec![1, 2, 3]]).is_empty());
    let c = h.ok(HLOS, VM_GET_VMID, &[]);
    assert_eq!(c.data, vec![3, 0, 0, 0]);
}

/// Pages HLOS shares: every other page from 0x6000_0000, so each is its own region.
fn scattered(n: u64) -> Vec<(u64, u64)> {
    (0..n)
        .map(|i| (0x6000_0000 + 2 * i * 0x1000, 0x1000))
        .collect()
}

#[test]
fn multi_fragment_share_and_accept_with_incomplete() {
    let mut h = H::new();
    assert_eq!(h.ready_vm(), VM);
    // 600 entries: LNX sends the first 512 with APPEND (0x2) ...
    let pages = scattered(600);
    let body = {
        let mut v = vec![0u8, 0, 0x2, 0];
        v.extend(le32(0x1234));
        v.extend(acl(&[(HLOS, 7), (VM, 6)]));
        v.extend(sgl(&pages[..512]));
        v.extend(attrs(&[]));
        v
    };
    assert!(body.len() > 232 * 35, "must span many fragments");
    let handle = h.ok(HLOS, MEM_SHARE, &body).u32_at(0);
    // Accepting before the SGL is final is refused.
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(handle, 0, 2, 0, 0, &[], &[], &[]),
        DENIED,
    );
    // ... then MEM_APPEND with the rest and END (0x1).
    let mut ap = handle.to_le_bytes().to_vec();
    ap.extend_from_slice(&[1, 0, 0, 0]);
    ap.extend(sgl(&pages[512..]));
    h.ok(HLOS, MEM_APPEND, &ap);
    // Further appends are refused.
    h.call_fails(HLOS, MEM_APPEND, &ap, DENIED);

    // The VM accepts letting the RM choose IPAs: 512 entries + INCOMPLETE.
    let c = h.ok(VM, MEM_ACCEPT, &accept(handle, 0, 2, 0, 0, &[], &[], &[]));
    let count = u16::from_le_bytes([c.data[0], c.data[1]]) as usize;
    assert_eq!((count, c.data[2] & 1), (512, 1));
    assert_eq!(c.data.len(), 4 + 16 * 512);
    let mut ipas = Vec::new();
    for i in 0..count {
        let e = &c.data[4 + 16 * i..];
        let ipa = u64::from_le_bytes(e[..8].try_into().unwrap());
        let size = u64::from_le_bytes(e[8..16].try_into().unwrap());
        assert_eq!(size, 0x1000);
        assert_eq!(ipa % 0x1000, 0);
        ipas.push(ipa);
    }
    // Not mapped until DONE; but the parcel is SHARED, so reclaim is refused.
    assert_eq!(h.rm.platform().query(VM, ipas[0]), None);
    h.call_fails(HLOS, MEM_RECLAIM, &handle_flags(handle, 0), MEM_INUSE);
    // Second call: the remaining 88, not incomplete.
    let c = h.ok(VM, MEM_ACCEPT, &accept(handle, 0, 2, 0, 0, &[], &[], &[]));
    assert_eq!(
        (u16::from_le_bytes([c.data[0], c.data[1]]), c.data[2] & 1),
        (88, 0)
    );
    // Final call with DONE maps everything.
    let c = h.ok(
        VM,
        MEM_ACCEPT,
        &accept(handle, 0, 2, 0x80, 0, &[], &[], &[]),
    );
    assert_eq!(&c.data[..4], &[0, 0, 0, 0]);
    let l = h.rm.platform().query(VM, ipas[5]).unwrap();
    assert_eq!(
        (l.pa + (ipas[5] - l.ipa), l.rights),
        (0x6000_0000 + 10 * 0x1000, Rights::RW)
    );
    // Shared: HLOS keeps its mapping.
    assert!(h.rm.platform().query(HLOS, 0x6000_0000).is_some());
    // A second DONE accept is refused.
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(handle, 0, 2, 0x80, 0, &[], &[], &[]),
        DENIED,
    );
    h.ok(VM, MEM_RELEASE, &handle_flags(handle, 0));
    assert_eq!(h.rm.platform().query(VM, ipas[5]), None);
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(handle, 0));
}
