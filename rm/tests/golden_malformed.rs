//! Bad extension requests (family 0x47) never panic and never change
//! state: each is sent truncated, with single bytes flipped and as random
//! bytes, by HLOS and by a running guest, on a system with a golden image,
//! a pool, a binding, a mapping and a CoW copy. Every request gets exactly
//! one reply; every failure leaves the full state dump unchanged, except a
//! SIM_VM_WRITE that faulted part-way (bytes and copies before the faulting
//! page stay, as on hardware); the isolation checker runs after each.

mod common;
use common::mutate::{self, Rng};
use common::*;

const VM: u16 = 0x80;
const GMEM_CREATE: u32 = 0x4700_0001;
const GMEM_BIND: u32 = 0x4700_0002;
const GMEM_UNBIND: u32 = 0x4700_0003;
const GOLDEN_SEAL: u32 = 0x4700_0010;
const GOLDEN_MAP: u32 = 0x4700_0011;
const GOLDEN_UNMAP: u32 = 0x4700_0012;
const GOLDEN_RELEASE: u32 = 0x4700_0013;
const VM_MEM_STATS: u32 = 0x4700_0020;
const SIM_VM_READ: u32 = 0x4700_00F0;
const SIM_VM_WRITE: u32 = 0x4700_00F1;
const CLONE_IPA: u64 = 0x8000_0000;

fn le(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// VM 0x80 running; golden 0 (2 MiB of HLOS RAM) mapped CoW at CLONE_IPA
/// with one copy; pool 0 (16 pages) with a 2-page binding; parcel 2 (HLOS,
/// lent to the VM, not sealed) for GOLDEN_SEAL.
fn world() -> H {
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
    let g = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(0x4020_0000, 0x20_0000)]),
        )
        .u32_at(0);
    h.ok(HLOS, GOLDEN_SEAL, &le(&[&g.to_le_bytes(), &[0; 4]]));
    h.ok(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 7)], &[(0x4060_0000, 0x20_0000)]),
    );
    for (id, body) in templates().into_iter().take(3) {
        h.ok(HLOS, id, &body);
    }
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &le(&[
            &0u32.to_le_bytes(),
            &VM.to_le_bytes(),
            &1u16.to_le_bytes(),
            &0u64.to_le_bytes(),
            &CLONE_IPA.to_le_bytes(),
            &0x20_0000u64.to_le_bytes(),
            &0u32.to_le_bytes(),
            &[0; 4],
        ]),
    );
    h.ok(HLOS, SIM_VM_WRITE, &sim_write(CLONE_IPA + 0x3000, b"copy"));
    h
}

fn sim_write(ipa: u64, data: &[u8]) -> Vec<u8> {
    le(&[
        &VM.to_le_bytes(),
        &[0, 0],
        &(data.len() as u32).to_le_bytes(),
        &ipa.to_le_bytes(),
        data,
    ])
}

/// A valid-looking payload for each extension request.
fn templates() -> Vec<(u32, Vec<u8>)> {
    let range = |id: u32, ipa: u64, size: u64| {
        le(&[
            &id.to_le_bytes(),
            &VM.to_le_bytes(),
            &[0, 0],
            &ipa.to_le_bytes(),
            &size.to_le_bytes(),
        ])
    };
    vec![
        (
            GMEM_CREATE,
            le(&[
                &(16 * 4096u64).to_le_bytes(),
                &[0; 4],
                &VM.to_le_bytes(),
                &[0, 0],
            ]),
        ),
        (
            GMEM_BIND,
            le(&[
                &0u32.to_le_bytes(),
                &VM.to_le_bytes(),
                &[6, 0],
                &0u64.to_le_bytes(),
                &0x9000_0000u64.to_le_bytes(),
                &0x2000u64.to_le_bytes(),
            ]),
        ),
        (
            GMEM_BIND,
            le(&[
                &0u32.to_le_bytes(),
                &VM.to_le_bytes(),
                &[6, 1],
                &0x2000u64.to_le_bytes(),
                &0x9100_0000u64.to_le_bytes(),
                &0x2000u64.to_le_bytes(),
            ]),
        ),
        (GMEM_UNBIND, range(0, 0x9000_0000, 0x2000)),
        (GOLDEN_SEAL, le(&[&2u32.to_le_bytes(), &[0; 4]])),
        (
            GOLDEN_MAP,
            le(&[
                &0u32.to_le_bytes(),
                &VM.to_le_bytes(),
                &1u16.to_le_bytes(),
                &0u64.to_le_bytes(),
                &0xA000_0000u64.to_le_bytes(),
                &0x1000u64.to_le_bytes(),
                &0u32.to_le_bytes(),
                &[0; 4],
            ]),
        ),
        (GOLDEN_UNMAP, range(0, CLONE_IPA, 0x20_0000)),
        (GOLDEN_RELEASE, le(&[&0u32.to_le_bytes(), &[0; 4]])),
        (VM_MEM_STATS, vmid_pad(VM)),
        (
            SIM_VM_READ,
            le(&[
                &VM.to_le_bytes(),
                &[0, 0],
                &16u32.to_le_bytes(),
                &CLONE_IPA.to_le_bytes(),
            ]),
        ),
        (SIM_VM_WRITE, sim_write(CLONE_IPA + 0x5000, b"data")),
    ]
}

fn try_one(h: &mut H, from: u16, id: u32, body: &[u8]) {
    let before = h.rm.snapshot();
    let c = h.call(from, id, body);
    if c.err == OK {
        return;
    }
    if id == SIM_VM_WRITE && c.err == MEM_INVALID {
        // May have written and copied pages before the faulting one.
        assert_eq!(c.data.len(), 8, "MEM_INVALID carries the faulting IPA");
        return;
    }
    // A simulated access that faults tells the manager (QUOTA_EXHAUSTED,
    // FAULT_UNSERVED); nothing else may be sent for a failed request.
    let fault_note = c
        .notifs()
        .iter()
        .all(|n| n.1 == 0x4710_0002 || n.1 == 0x4710_0003);
    assert!(
        c.notifs().is_empty() || (id == SIM_VM_READ && fault_note),
        "{id:#x} {body:02x?}: failure sent notifications {:?}",
        c.notifs()
    );
    if c.notifs().is_empty() {
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
    mutate::truncated(&templates(), [HLOS, VM], world, try_one);
}

#[test]
fn flipped_bytes() {
    let mut r = Rng(0x600D_F00D);
    mutate::flipped(&mut r, 40, &templates(), [HLOS, VM], world, try_one);
}

#[test]
fn random_bytes() {
    let mut r = Rng(0xBAD_5EED);
    mutate::random(&mut r, 30, 60, &templates(), [HLOS, VM], world, try_one);
}
