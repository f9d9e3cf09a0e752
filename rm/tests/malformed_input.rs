//! Bad input never panics and never changes state: every request the RM
//! handles is sent truncated, with single bytes flipped and as random
//! bytes, by HLOS and by a running guest. Every request gets exactly one
//! reply echoing its seq and msg_id; every failure leaves the full state
//! dump unchanged; the isolation checker runs after each.

mod common;
use common::mutate::{self, Rng};
use common::*;

const VM: u16 = 0x80;

/// HLOS with VM 0x80 running (image parcel 0) and a shared parcel 1.
fn running() -> H {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let dtb = tiny_dtb(1);
    assert!(gunyah_rm::platform::PhysMem::write(
        h.rm.platform_mut(),
        0x5000_0000,
        &dtb
    ));
    h.ok(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 7)], &[(0x5000_0000, 0x20_0000)]),
    );
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, 0, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    h.ok(HLOS, VM_START, &vmid_pad(VM));
    h.ok(
        HLOS,
        MEM_SHARE,
        &create(0, 0, 0, &[(HLOS, 7), (VM, 6)], &[(0x4800_0000, 0x2000)]),
    );
    h
}

/// A valid-looking payload for each request the RM handles.
fn templates() -> Vec<(u32, Vec<u8>)> {
    let mut bc = VM.to_le_bytes().to_vec();
    bc.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
    bc.extend(5u64.to_le_bytes());
    let mut layout = vmid_pad(VM);
    layout.extend(0u32.to_le_bytes());
    layout.extend(0x8000_0000u64.to_le_bytes());
    layout.extend(0x20_0000u64.to_le_bytes());
    let mut dp = vmid_pad(VM);
    dp.extend(1u32.to_le_bytes());
    dp.extend(0x8000_0000u64.to_le_bytes());
    dp.extend(0x20_0000u64.to_le_bytes());
    let mut fw = vmid_pad(VM);
    fw.extend(1u32.to_le_bytes());
    fw.extend(0u64.to_le_bytes());
    fw.extend(0x1000u64.to_le_bytes());
    let mut ap = 1u32.to_le_bytes().to_vec();
    ap.extend_from_slice(&[1, 0, 0, 0]);
    ap.extend(sgl(&[(0x4900_0000, 0x1000)]));
    let mut lk = vec![0u8, 0, 0, 0, 0, 0, 0, 0];
    lk.extend(acl(&[(HLOS, 7), (VM, 6)]));
    lk.extend(sgl(&[(0x4800_0000, 0x2000)]));
    lk.extend(attrs(&[]));
    vec![
        (
            MEM_SHARE,
            create(0, 0, 0, &[(HLOS, 7), (VM, 6)], &[(0x4A00_0000, 0x1000)]),
        ),
        (
            MEM_LEND,
            create(0, 1, 0, &[(VM, 6)], &[(0x4A00_0000, 0x1000)]),
        ),
        (
            MEM_DONATE,
            create(0, 0, 0, &[(VM, 7)], &[(0x4A00_0000, 0x1000)]),
        ),
        (MEM_ACCEPT, accept(1, 0, 2, 0x80, 0, &[], &[], &[])),
        (MEM_RELEASE, handle_flags(1, 0)),
        (MEM_RECLAIM, handle_flags(1, 0)),
        (MEM_NOTIFY, notify(1, 0x1, 3, &[VM])),
        (MEM_APPEND, ap),
        (MEM_LOOKUP_SGL, lk),
        (VM_ALLOC, vmid_pad(0)),
        (VM_DEALLOC, vmid_pad(VM)),
        (VM_CONFIG_IMAGE, config_image(VM, 0, 0, (0, 0), (0, 0x100))),
        (VM_AUTH_IMAGE, vec![0x80, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]),
        (VM_INIT, vmid_pad(VM)),
        (VM_START, vmid_pad(VM)),
        (VM_STOP, stop(VM, 0, 0)),
        (VM_RESET, vmid_pad(VM)),
        (VM_EXIT, vec![0, 0, 0, 0]),
        (VM_GET_STATE, vmid_pad(VM)),
        (VM_SET_STATUS, vec![0, 4, 0, 0]),
        (VM_GET_HYP_RESOURCES, vmid_pad(VM)),
        (VM_GET_ID, vmid_pad(VM)),
        (VM_LOOKUP_NAME, vec![4, 0, 0, 0, b'H', b'L', b'O', b'S']),
        (
            VM_LOOKUP_URI,
            vec![6, 0, 0, 0, b'v', b'm', b':', b'/', b'/', b'x', 0, 0],
        ),
        (VM_LOOKUP_GUID, vec![0; 16]),
        (VM_GET_VMID, vec![]),
        (VM_SET_BOOT_CONTEXT, bc),
        (VM_SET_FIRMWARE_MEM, fw),
        (VM_SET_DEMAND_PAGING, dp),
        (VM_SET_ADDRESS_LAYOUT, layout),
    ]
}

fn try_one(h: &mut H, from: u16, id: u32, body: &[u8]) {
    let before = h.rm.snapshot();
    let c = h.call(from, id, body);
    if c.err != OK {
        assert!(
            c.notifs().is_empty(),
            "{id:#x} {body:02x?}: failure sent notifications"
        );
        assert_eq!(
            before,
            h.rm.snapshot(),
            "{id:#x} {body:02x?}: failure ({:#x}) changed state",
            c.err
        );
    }
}

#[test]
fn truncated_payloads() {
    mutate::truncated(&templates(), [HLOS, VM], running, try_one);
}

#[test]
fn flipped_bytes() {
    let mut r = Rng(0x1234_5678);
    mutate::flipped(&mut r, 40, &templates(), [HLOS, VM], running, try_one);
}

#[test]
fn random_bytes() {
    let mut r = Rng(0xDEAD_BEEF);
    mutate::random(&mut r, 30, 90, &templates(), [HLOS, VM], running, try_one);
}
