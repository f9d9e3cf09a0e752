//! VM lifecycle requests (spec §5): allocation, the state machine of §5.2
//! with its error codes, notifications to the owner, firmware and boot
//! configuration. Driven by encoded requests; the checker runs after each.

mod common;
use common::*;

use gunyah_rm::platform::{AddressSpaces, PhysMem};

const VM: u16 = 0x80;
const MIB2: u64 = 0x20_0000;
const IMG_PA: u64 = 0x5000_0000;
const FW_PA: u64 = 0x5100_0000;

/// Allocate 0x80 and configure it (auth NONE) with a DT in a lent parcel.
fn configured(h: &mut H) -> u32 {
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let dtb = tiny_dtb(2);
    assert!(h.rm.platform_mut().write(IMG_PA + 0x100, &dtb));
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(IMG_PA, MIB2)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img, (0, 0), (0x100, dtb.len() as u64)),
    );
    img
}

#[test]
fn allocation_rules() {
    let mut h = H::new();
    h.call_fails(HLOS, VM_ALLOC, &[0, 0, 0], MSG_INVALID);
    // A specific VMID: no reply data; the VM is created in LOAD, which is not a
    // state change, so no VM_STATUS (it used to send VM_STATUS(LOAD)).
    let c = h.ok(HLOS, VM_ALLOC, &vmid_pad(10));
    assert!(c.data.is_empty());
    assert_eq!(c.notifs(), vec![]);
    // A taken or out-of-range static VMID → NORESOURCE (§12.1; was VMID_INVALID).
    h.call_fails(HLOS, VM_ALLOC, &vmid_pad(10), NORESOURCE);
    h.call_fails(HLOS, VM_ALLOC, &vmid_pad(64), NORESOURCE);
    h.call_fails(HLOS, VM_ALLOC, &vmid_pad(HLOS), NORESOURCE);
    h.call_fails(HLOS, VM_ALLOC, &vmid_pad(1), NORESOURCE);
    // Only HLOS may allocate (VM 10, in LOAD, cannot even send: it has no RM
    // queue yet; a READY VM is refused below).
    h.no_reply(10, VM_ALLOC, &vmid_pad(0));
    // 63 dynamic VMIDs: 0x80..=0xBE, then NORESOURCE.
    for i in 0..63u16 {
        let c = h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
        assert_eq!(c.u32_at(0), 0x80 + i as u32);
    }
    h.call_fails(HLOS, VM_ALLOC, &vmid_pad(0), NORESOURCE);
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(0x85));
    assert_eq!(h.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0), 0x85);
    // Dealloc of a VMID never allocated, or by a non-owner → VMID_INVALID.
    h.call_fails(HLOS, VM_DEALLOC, &vmid_pad(0x40), VMID_INVALID);
    h.no_reply(0x81, VM_DEALLOC, &vmid_pad(0x82));
    h.call_fails(HLOS, VM_DEALLOC, &vmid_pad(HLOS), VMID_INVALID);
    // A VM with an RM queue (READY) that is not HLOS: DENIED; VMID_INVALID
    // for a VM it does not own.
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(0x81));
    assert_eq!(h.ready_vm(), 0x81);
    h.call_fails(0x81, VM_ALLOC, &vmid_pad(0), DENIED);
    h.call_fails(0x81, VM_DEALLOC, &vmid_pad(0x82), VMID_INVALID);
}

#[test]
fn state_machine_errors() {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    // LOAD: no INIT, START, STOP, RESET, boot context.
    h.call_fails(HLOS, VM_INIT, &vmid_pad(VM), VM_STATE);
    h.call_fails(HLOS, VM_START, &vmid_pad(VM), VM_STATE);
    h.call_fails(HLOS, VM_STOP, &stop(VM, 1, 0), VM_STATE);
    h.call_fails(HLOS, VM_RESET, &vmid_pad(VM), VM_STATE);
    let mut bc = VM.to_le_bytes().to_vec();
    bc.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
    bc.extend(0x8000_0000u64.to_le_bytes());
    h.call_fails(HLOS, VM_SET_BOOT_CONTEXT, &bc, VM_STATE);
    // The VM itself has no RM queue in LOAD: whatever it sends is dropped.
    h.no_reply(VM, VM_STOP, &stop(VM, 1, 0));
    h.no_reply(VM, VM_INIT, &vmid_pad(VM));
    // VM_INIT: reserved half-word must be 0 (MSG_INVALID, §12.1; was ARGUMENT_INVALID).
    h.call_fails(HLOS, VM_INIT, &[0x80, 0, 1, 0], MSG_INVALID);
    // Non-owners get VMID_INVALID (§10 item 7), including the VM itself;
    // VM_INIT and VM_CONFIG_IMAGE are for HLOS only (DENIED). Asked by a
    // READY VM (which can send) about VM 0x80 and about itself.
    let other = h.ready_vm();
    for target in [VM, other] {
        h.call_fails(other, VM_STOP, &stop(target, 1, 0), VMID_INVALID);
        h.call_fails(other, VM_RESET, &vmid_pad(target), VMID_INVALID);
        h.call_fails(other, VM_INIT, &vmid_pad(target), DENIED);
        h.call_fails(
            other,
            VM_CONFIG_IMAGE,
            &config_image(target, 0, 0, (0, 0), (0, 0)),
            DENIED,
        );
    }
    // An unknown auth type → ARGUMENT_INVALID, and the VM is INIT_FAILED with
    // VM_STATUS(8) before the reply (§12.1; it used to change nothing).
    let c = h.call(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 3, 0, (0, 0), (0, 0)),
    );
    assert_eq!(c.err, ARGUMENT_INVALID);
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 8, 0, 0))]
    );
}

#[test]
fn platform_auth_path() {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(IMG_PA, MIB2)]),
        )
        .u32_at(0);
    // auth PLATFORM → AUTH (6).
    let c = h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 1, img, (0, 0x1000), (0x1000, 0x100)),
    );
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 6, 0, 0))]
    );
    h.call_fails(HLOS, VM_INIT, &vmid_pad(VM), VM_STATE);
    // n_params 1 but no parameter bytes → MSG_INVALID; unknown type → ARGUMENT_INVALID.
    h.call_fails(HLOS, VM_AUTH_IMAGE, &[0x80, 0, 1, 0], MSG_INVALID);
    h.call_fails(
        HLOS,
        VM_AUTH_IMAGE,
        &[0x80, 0, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0],
        ARGUMENT_INVALID,
    );
    // PAS_ID (type 0) → INIT.
    let c = h.ok(
        HLOS,
        VM_AUTH_IMAGE,
        &[0x80, 0, 1, 0, 0, 0, 0, 0, 0x34, 0x12, 0, 0],
    );
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 1, 0, 0))]
    );
    h.call_fails(HLOS, VM_AUTH_IMAGE, &[0x80, 0, 0, 0], VM_STATE);
}

#[test]
fn guest_exit_status_and_shutdown() {
    let mut h = H::new();
    configured(&mut h);
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    h.ok(HLOS, VM_START, &vmid_pad(VM));
    // HLOS itself is RUNNING (vmid 0 = self).
    assert_eq!(
        h.ok(HLOS, VM_GET_STATE, &vmid_pad(0)).data,
        vec![3, 0, 0, 0]
    );
    // VM_SET_STATUS from the guest: os RUN (4), app 1 → VM_STATUS to its owner.
    let c = h.ok(VM, VM_SET_STATUS, &[0, 4, 1, 0]);
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 3, 4, 1))]
    );
    assert_eq!(
        h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM)).data,
        vec![3, 4, 1, 0]
    );
    assert_eq!(h.ok(VM, VM_GET_STATE, &vmid_pad(0)).data, vec![3, 4, 1, 0]);
    h.call_fails(HLOS, VM_SET_STATUS, &[0, 4, 1, 0], DENIED);
    // Non-forced stop of a running VM: Gunyah's RM dies (§12.1); this RM refuses it
    // with DENIED and changes nothing (it used to send VM_SHUTDOWN to the VM).
    h.call_fails(HLOS, VM_STOP, &stop(VM, 0, 1), DENIED);
    assert_eq!(h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM)).data[0], 3);
    // The guest exits: exit code 2 is refused; RESTART flag + code 1 accepted.
    h.call_fails(VM, VM_EXIT, &[0, 0, 2, 0], ARGUMENT_INVALID);
    h.call_fails(HLOS, VM_EXIT, &[0, 0, 0, 0], DENIED);
    let c = h.ok(VM, VM_EXIT, &[1, 0, 1, 0]);
    let mut exited = VM.to_le_bytes().to_vec();
    exited.extend_from_slice(&[0, 0, 4, 0, 0, 0, 1, 0, 1, 0]);
    assert_eq!(
        c.notifs(),
        vec![
            (HLOS, N_VM_STATUS, vm_status(VM, 9, 4, 1)),
            (HLOS, N_VM_EXITED, exited)
        ]
    );
    h.call_fails(VM, VM_EXIT, &[0, 0, 0, 0], VM_STATE);
    h.call_fails(HLOS, VM_STOP, &stop(VM, 1, 0), VM_STATE);
    // EXITED → reset → dealloc.
    h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    h.call_fails(HLOS, VM_RESET, &vmid_pad(VM), VM_STATE);
    assert_eq!(h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM)).data[0], 11);
    // RESET → a new image can be configured (RESET → INIT).
    let img2 = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(0x5200_0000, MIB2)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img2, (0, 0), (0, 0x10)),
    );
    assert_eq!(h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM)).data[0], 1);
}

#[test]
fn configuration_calls() {
    let mut h = H::new();
    configured(&mut h);
    // Address layout: range ids 0/1 only, page aligned.
    let layout = |id: u32, base: u64, size: u64| {
        let mut v = vmid_pad(VM);
        v.extend(id.to_le_bytes());
        v.extend(base.to_le_bytes());
        v.extend(size.to_le_bytes());
        v
    };
    h.call_fails(
        HLOS,
        VM_SET_ADDRESS_LAYOUT,
        &layout(2, 0x8000_0000, MIB2),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        VM_SET_ADDRESS_LAYOUT,
        &layout(0, 0x8000_0800, MIB2),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        VM_SET_ADDRESS_LAYOUT,
        &layout(0, 0x8000_0000, 0),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        VM_SET_ADDRESS_LAYOUT,
        &layout(0, 0x8000_0000, MIB2)[..23],
        MSG_INVALID,
    );
    h.ok(HLOS, VM_SET_ADDRESS_LAYOUT, &layout(0, 0x8000_0000, MIB2));
    h.ok(HLOS, VM_SET_ADDRESS_LAYOUT, &layout(1, 0x9000_0000, MIB2));
    // Demand paging: size must match the count; ranges may not overlap.
    let dp = |ranges: &[(u64, u64)]| {
        let mut v = vmid_pad(VM);
        v.extend((ranges.len() as u32).to_le_bytes());
        for (b, s) in ranges {
            v.extend(b.to_le_bytes());
            v.extend(s.to_le_bytes());
        }
        v
    };
    h.call_fails(
        HLOS,
        VM_SET_DEMAND_PAGING,
        &dp(&[(0xA000_0000, MIB2)])[..20],
        MSG_INVALID,
    );
    h.call_fails(
        HLOS,
        VM_SET_DEMAND_PAGING,
        &dp(&[(0xA000_0000, MIB2), (0xA010_0000, MIB2)]),
        ARGUMENT_INVALID,
    );
    h.ok(
        HLOS,
        VM_SET_DEMAND_PAGING,
        &dp(&[(0xA000_0000, MIB2), (0xB000_0000, MIB2)]),
    );
    // Firmware: the error reply carries an extra hypervisor word (§1.3).
    let fw = |handle: u32, off: u64, size: u64| {
        let mut v = vmid_pad(VM);
        v.extend(handle.to_le_bytes());
        v.extend(off.to_le_bytes());
        v.extend(size.to_le_bytes());
        v
    };
    let c = h.call_fails(HLOS, VM_SET_FIRMWARE_MEM, &fw(77, 0, 0x1000), MEM_INVALID);
    assert_eq!(c.data.len(), 4);
    let fwh = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(FW_PA, MIB2)]),
        )
        .u32_at(0);
    let c = h.call_fails(
        HLOS,
        VM_SET_FIRMWARE_MEM,
        &fw(fwh, MIB2, 0x1000),
        ARGUMENT_INVALID,
    );
    assert_eq!(c.data, vec![1, 0, 0, 0]);
    h.ok(HLOS, VM_SET_FIRMWARE_MEM, &fw(fwh, 0, 0x1000));
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    // After VM_INIT: layout, demand paging and firmware are closed.
    h.call_fails(
        HLOS,
        VM_SET_ADDRESS_LAYOUT,
        &layout(0, 0x8000_0000, MIB2),
        VM_STATE,
    );
    h.call_fails(
        HLOS,
        VM_SET_DEMAND_PAGING,
        &dp(&[(0xC000_0000, MIB2)]),
        VM_STATE,
    );
    h.call_fails(HLOS, VM_SET_FIRMWARE_MEM, &fw(fwh, 0, 0x1000), VM_STATE);
    // Boot context: X ≤ 31, PC 0, SP ≤ 2.
    let bc = |set: u8, idx: u8| {
        let mut v = VM.to_le_bytes().to_vec();
        v.extend_from_slice(&[set, idx, 0, 0, 0, 0]);
        v.extend(0x1234u64.to_le_bytes());
        v
    };
    for (set, idx) in [(0u8, 32u8), (1, 1), (2, 3), (3, 0)] {
        h.call_fails(HLOS, VM_SET_BOOT_CONTEXT, &bc(set, idx), ARGUMENT_INVALID);
    }
    for (set, idx) in [(0u8, 31u8), (1, 0), (2, 2)] {
        h.ok(HLOS, VM_SET_BOOT_CONTEXT, &bc(set, idx));
    }
    // Hyp resources: one VIRTUAL_CPU per vCPU of the DT (2; the VM's RM queues are
    // no longer listed, §12.1); to a stranger the VM does not exist:
    // ARGUMENT_INVALID (§12.1 "unknown VMID or 0 → ARGUMENT_INVALID"; was VMID_INVALID).
    let c = h.ok(HLOS, VM_GET_HYP_RESOURCES, &vmid_pad(VM));
    assert_eq!(c.u32_at(0), 2);
    let stranger = h.ready_vm();
    h.call_fails(
        stranger,
        VM_GET_HYP_RESOURCES,
        &vmid_pad(VM),
        ARGUMENT_INVALID,
    );
    // Start: image at the IMAGE layout base, firmware at the FIRMWARE base.
    h.ok(HLOS, VM_START, &vmid_pad(VM));
    assert_eq!(
        h.rm.platform().query(VM, 0x8000_0000).map(|l| l.pa),
        Some(IMG_PA)
    );
    assert_eq!(
        h.rm.platform().query(VM, 0x9000_0000).map(|l| l.pa),
        Some(FW_PA)
    );
    // The VM can ask for its own resources by its VMID; VMID 0 is ARGUMENT_INVALID
    // (§12.1; it used to mean the caller).
    assert_eq!(h.ok(VM, VM_GET_HYP_RESOURCES, &vmid_pad(VM)).u32_at(0), 2);
    h.call_fails(VM, VM_GET_HYP_RESOURCES, &vmid_pad(0), ARGUMENT_INVALID);
    // Stop and reset: both parcels released to HLOS, in order, then RESET.
    h.ok(HLOS, VM_STOP, &stop(VM, 1, 3));
    let c = h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    let ids: Vec<u32> = c.notifs().iter().map(|n| n.1).collect();
    assert_eq!(
        ids,
        vec![N_VM_STATUS, N_MEM_RELEASED, N_MEM_RELEASED, N_VM_STATUS]
    );
    assert_eq!(h.rm.platform().query(VM, 0x8000_0000), None);
    // Everything back: reclaim both, dealloc; no partition page is lost
    // (the checker compares partition usage with the records after each step).
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(0, 0));
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(fwh, 0));
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
    let u = h.rm.platform().partition_usage();
    assert_eq!(u.total - u.free, u.tables);
}

#[test]
fn image_parcel_must_be_lent_to_the_vm_alone() {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let dtb = tiny_dtb(1);
    assert!(h.rm.platform_mut().write(IMG_PA, &dtb));
    // A shared (not lent) image parcel is refused by VM_CONFIG_IMAGE itself: "a
    // parcel not lent to that VM → MEM_INVALID", and the VM is INIT_FAILED (§12.1;
    // it used to be accepted and fail at VM_START). It cannot be reset (Gunyah's RM
    // dies there); it is deallocated.
    let shared = h
        .ok(
            HLOS,
            MEM_SHARE,
            &create(0, 0, 0, &[(HLOS, 7), (VM, 7)], &[(IMG_PA, MIB2)]),
        )
        .u32_at(0);
    let c = h.call(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, shared, (0, 0), (0, dtb.len() as u64)),
    );
    assert_eq!(c.err, MEM_INVALID);
    assert_eq!(h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM)).data[0], 8);
    h.call_fails(HLOS, VM_RESET, &vmid_pad(VM), VM_STATE);
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(shared, 0));
    assert_eq!(h.ok(HLOS, VM_ALLOC, &vmid_pad(0)).u32_at(0), VM as u32);
    // Lent to the VM and another one (not to the VM alone) → VM_START fails with
    // NORESOURCE.
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7), (VM + 1, 7)], &[(IMG_PA, MIB2)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    let c = h.call(HLOS, VM_START, &vmid_pad(VM));
    assert_eq!(c.err, NORESOURCE);
    assert_eq!(h.ok(HLOS, VM_GET_STATE, &vmid_pad(VM)).data[0], 8);
    // INIT_FAILED → dealloc needs a reset first.
    h.call_fails(HLOS, VM_DEALLOC, &vmid_pad(VM), VM_STATE);
    h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
}

#[test]
fn too_many_vcpus_fail_init() {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let dtb = tiny_dtb(300);
    assert!(h.rm.platform_mut().write(IMG_PA, &dtb));
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(IMG_PA, MIB2)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img, (0, 0), (0, dtb.len() as u64)),
    );
    // 300 vCPUs is more than the RM creates (256): NORESOURCE, INIT_FAILED.
    let c = h.call(HLOS, VM_INIT, &vmid_pad(VM));
    assert_eq!(c.err, NORESOURCE);
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_VM_STATUS, vm_status(VM, 8, 0, 0))]
    );
    // 256 is fine, and VM_GET_HYP_RESOURCES still fits one (fragmented) reply.
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(img, 0));
    h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    let dtb = tiny_dtb(256);
    assert!(h.rm.platform_mut().write(IMG_PA, &dtb));
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(IMG_PA, MIB2)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    let c = h.ok(HLOS, VM_GET_HYP_RESOURCES, &vmid_pad(VM));
    assert_eq!(c.u32_at(0), 256);
    assert_eq!(c.data.len(), 4 + 256 * 44);
}

#[test]
fn start_accepts_private_parcels() {
    let mut h = H::new();
    let img = configured(&mut h);
    // Private: lent to the VM alone, RWX, NORMAL, label 0 → accepted at start.
    let private = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(0x5400_0000, MIB2)]),
        )
        .u32_at(0);
    // Donated the same way → ownership moves to the VM at start.
    let donated = h
        .ok(
            HLOS,
            MEM_DONATE,
            &create(0, 0, 0, &[(VM, 7)], &[(0x5600_0000, 0x1000)]),
        )
        .u32_at(0);
    // Not private (a label, or less than RWX), but lent to the VM: accepted at
    // start too, after the private ones, where the RM picks (§12.1 "VM_START and
    // parcels already lent to the VM"; they used to be left for the guest).
    let labelled = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 9, &[(VM, 7)], &[(0x5800_0000, 0x1000)]),
        )
        .u32_at(0);
    let ro = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 5)], &[(0x5900_0000, 0x1000)]),
        )
        .u32_at(0);
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    h.ok(HLOS, VM_START, &vmid_pad(VM));
    let p = h.rm.parcels();
    assert!(p.get(img).unwrap().accepted[&VM].mapped);
    let acc = &p.get(private).unwrap().accepted[&VM];
    assert!(acc.mapped);
    // RM-chosen IPA for a 2 MiB parcel is 2 MiB aligned.
    assert_eq!(acc.ipas[0] % MIB2, 0);
    assert_eq!(
        h.rm.platform().query(VM, acc.ipas[0]).map(|l| l.pa),
        Some(0x5400_0000)
    );
    assert!(p.get(donated).is_none());
    // The donated parcel is now the VM's own memory.
    let owned =
        h.rm.vm_space(VM)
            .unwrap()
            .ranges()
            .any(|r| matches!(r.state, gunyah_rm::space::State::Owned(o) if o.pa == 0x5600_0000));
    assert!(owned);
    assert!(p.get(labelled).unwrap().accepted[&VM].mapped);
    assert!(p.get(ro).unwrap().accepted[&VM].mapped);
    // The private parcel cannot be reclaimed while the VM holds it.
    h.call_fails(HLOS, MEM_RECLAIM, &handle_flags(private, 0), MEM_INUSE);
    // Teardown: reset releases image and private parcels; the donated page
    // goes back to HLOS when the VM's memory is destroyed.
    h.ok(HLOS, VM_STOP, &stop(VM, 1, 0));
    let c = h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    let released = c.notifs().iter().filter(|n| n.1 == N_MEM_RELEASED).count();
    assert_eq!(released, 4);
    assert_eq!(
        h.rm.platform().query(HLOS, 0x5600_0000).map(|l| l.pa),
        Some(0x5600_0000)
    );
    for hd in [img, private, labelled, ro] {
        h.ok(HLOS, MEM_RECLAIM, &handle_flags(hd, 0));
    }
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
}

/// A guest's DT is untrusted input: one without `/cpus` (which made the fdt
/// crate panic at VM_INIT) or with a property name offset past its strings
/// block must not bring the RM down. VM_INIT falls back to one vCPU;
/// VM_START refuses the malformed blob (NORESOURCE, INIT_FAILED).
#[test]
fn a_guest_dt_without_cpus_or_with_bad_offsets_does_not_panic() {
    // Empty root, no /cpus.
    let mut dtb = Vec::new();
    for w in [0xd00d_feedu32, 72, 56, 72, 40, 17, 16, 0, 0, 16] {
        dtb.extend_from_slice(&w.to_be_bytes());
    }
    dtb.extend_from_slice(&[0; 16]);
    for w in [1u32, 0, 2, 9] {
        dtb.extend_from_slice(&w.to_be_bytes());
    }
    // tiny_dtb(1) with the `device_type` property's name offset pointed past
    // the strings block: struct block at 56; root node 8 bytes, its
    // `compatible` property 12 + 20, `cpus` 12, `cpu@0` 12, then the
    // property token and length before the name offset.
    let mut bad = tiny_dtb(1);
    let nameoff = 56 + 8 + 32 + 12 + 12 + 8;
    assert_eq!(&bad[nameoff..nameoff + 4], &11u32.to_be_bytes());
    bad[nameoff..nameoff + 4].copy_from_slice(&0x1000u32.to_be_bytes());
    for (i, dt) in [dtb, bad].into_iter().enumerate() {
        let mut h = H::new();
        h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
        assert!(h.rm.platform_mut().write(IMG_PA, &dt));
        let img = h
            .ok(
                HLOS,
                MEM_LEND,
                &create(0, 0, 0, &[(VM, 7)], &[(IMG_PA, MIB2)]),
            )
            .u32_at(0);
        h.ok(
            HLOS,
            VM_CONFIG_IMAGE,
            &config_image(VM, 0, img, (0, 0), (0, dt.len() as u64)),
        );
        h.ok(HLOS, VM_INIT, &vmid_pad(VM));
        // One vCPU.
        assert_eq!(h.ok(HLOS, VM_GET_HYP_RESOURCES, &vmid_pad(VM)).u32_at(0), 1);
        let start = h.call(HLOS, VM_START, &vmid_pad(VM));
        if i == 0 {
            assert_eq!(start.err, OK, "an empty but well-formed DT starts");
        } else {
            assert_eq!(start.err, NORESOURCE);
            assert_eq!(h.rm.vm_state(VM), Some(gunyah_rm::vm::VmState::InitFailed));
        }
    }
}
