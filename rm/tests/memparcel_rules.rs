//! Every create/accept/notify/lookup rule of spec §3 and §7 with its error
//! code, driven by encoded requests; failed requests must change nothing.

mod common;
use common::*;

use gunyah_rm::platform::{AddressSpaces, PhysMem, Rights};
use gunyah_rm::sim::{sim_rm, SimConfig};
use gunyah_rm::RmConfig;

const VM: u16 = 0x80;
const P: u64 = 0x1000;
const BASE: u64 = 0x4400_0000;
const MIB2: u64 = 0x20_0000;

/// HLOS and VM 0x80, just allocated (LOAD: it cannot send requests yet).
fn with_vm() -> H {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    h
}

/// HLOS and VM 0x80, READY: its RM message queues exist, so it can send
/// requests (accept, release, ...).
fn with_ready_vm() -> H {
    let mut h = H::new();
    assert_eq!(h.ready_vm(), VM);
    h
}

#[test]
fn create_rules() {
    let mut h = with_vm();
    let pg = [(BASE, P)];
    let f = |h: &mut H, id, body: Vec<u8>, err| {
        h.call_fails(HLOS, id, &body, err);
    };
    // SHARE: the owner must be in the ACL; LEND/DONATE: must not.
    f(
        &mut h,
        MEM_SHARE,
        create(0, 0, 0, &[(VM, 6)], &pg),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(HLOS, 7), (VM, 6)], &pg),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_DONATE,
        create(0, 0, 0, &[(HLOS, 7)], &pg),
        ARGUMENT_INVALID,
    );
    // Empty ACL or SGL.
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[], &pg),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[]),
        ARGUMENT_INVALID,
    );
    // Duplicate and unknown VMIDs.
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6), (VM, 4)], &pg),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(0x99, 6)], &pg),
        VMID_INVALID,
    );
    // Rights: W-only, X-only, WX and 0 are rejected; IO memory may not have X.
    for r in [0u8, 1, 2, 3, 8] {
        f(
            &mut h,
            MEM_LEND,
            create(0, 0, 0, &[(VM, r)], &pg),
            ARGUMENT_INVALID,
        );
    }
    f(
        &mut h,
        MEM_LEND,
        create(1, 0, 0, &[(VM, 5)], &pg),
        ARGUMENT_INVALID,
    );
    // SANITIZE on IO memory.
    f(
        &mut h,
        MEM_LEND,
        create(1, 1, 0, &[(VM, 6)], &pg),
        ARGUMENT_INVALID,
    );
    // Unknown mem_type or flags.
    f(
        &mut h,
        MEM_LEND,
        create(2, 0, 0, &[(VM, 6)], &pg),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 4, 0, &[(VM, 6)], &pg),
        ARGUMENT_INVALID,
    );
    // Attrs: VMID must be in the ACL; NORMAL memory with DEVICE attr.
    let with_attrs = |at: &[(u16, u16)]| {
        let mut v = vec![0u8, 0, 0, 0, 0, 0, 0, 0];
        v.extend(acl(&[(VM, 6)]));
        v.extend(sgl(&pg));
        v.extend(attrs(at));
        v
    };
    f(&mut h, MEM_LEND, with_attrs(&[(0, HLOS)]), VMID_INVALID);
    // Two attrs for one VM: ARGUMENT_INVALID (§12.1; was VMID_INVALID).
    f(
        &mut h,
        MEM_LEND,
        with_attrs(&[(0, VM), (0, VM)]),
        ARGUMENT_INVALID,
    );
    f(&mut h, MEM_LEND, with_attrs(&[(1, VM)]), ARGUMENT_INVALID);
    f(&mut h, MEM_LEND, with_attrs(&[(4, VM)]), ARGUMENT_INVALID);
    // SGL (§12.1 "SGL validity"): unaligned → ARGUMENT_INVALID; size 0 and a base
    // beyond the owner's memory but below 2^44 → MEM_INVALID (the range lookup
    // fails); a base at 2^44 → ARGUMENT_INVALID; not owned → MEM_INVALID.
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(BASE + 8, P)]),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(BASE, 0x800)]),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(BASE, 0)]),
        MEM_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(1 << 40, P)]),
        MEM_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(1 << 44, P)]),
        ARGUMENT_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(0x9000_0000, P)]),
        MEM_INVALID,
    );
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(0x7FFF_F000, 2 * P)]),
        MEM_INVALID,
    );
    // IO parcel over normal RAM.
    f(
        &mut h,
        MEM_LEND,
        create(1, 0, 0, &[(VM, 6)], &pg),
        MEM_INVALID,
    );
    // Overlapping entries in one request.
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &[(BASE, 2 * P), (BASE + P, P)]),
        MEM_INVALID,
    );
    // Encoding: trailing byte, short, list overrun, > 512 entries.
    let mut b = create(0, 0, 0, &[(VM, 6)], &pg);
    b.push(0);
    f(&mut h, MEM_LEND, b, MSG_INVALID);
    f(
        &mut h,
        MEM_LEND,
        create(0, 0, 0, &[(VM, 6)], &pg)[..19].to_vec(),
        MSG_INVALID,
    );
    let mut b = create(0, 0, 0, &[(VM, 6)], &pg);
    b[16] = 2; // SGL count 2 with one entry present
    f(&mut h, MEM_LEND, b, MSG_INVALID);
    let mut b = vec![0u8, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[0x01, 0x02, 0, 0]); // ACL count 513
    b.extend_from_slice(&[0; 8]); // at least the 20-byte fixed part
    f(&mut h, MEM_LEND, b, NORESOURCE);
    // LNX always appends an empty attr list, but it may be omitted.
    let b = create(0, 0, 0, &[(VM, 6)], &pg);
    let c = h.ok(HLOS, MEM_LEND, &b[..b.len() - 4]);
    assert_eq!(c.u32_at(0), 0);
}

#[test]
fn sanitize_at_create_and_on_reclaim() {
    let mut h = with_ready_vm();
    assert!(h.rm.platform_mut().write(BASE + 0x10, b"secret"));
    assert!(h.rm.platform_mut().write(BASE + P + 0x10, b"secret"));
    // SANITIZE at create zeroes at once.
    let a = h
        .ok(HLOS, MEM_LEND, &create(0, 1, 0, &[(VM, 6)], &[(BASE, P)]))
        .u32_at(0);
    let mut buf = [0xFFu8; 6];
    assert!(h.rm.platform().read(BASE + 0x10, &mut buf));
    assert_eq!(buf, [0; 6]);
    // VALIDATE_SANITIZED passes for it.
    h.ok(
        VM,
        MEM_ACCEPT,
        &accept(a, 0, 1, 0x80 | 0x01, 0, &[], &[(0x2_0000_0000, P)], &[]),
    );
    // A parcel not sanitized keeps its data; release with SANITIZE zeroes at reclaim.
    let b = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 6)], &[(BASE + P, P)]),
        )
        .u32_at(0);
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(b, 0, 1, 0x80 | 0x01, 0, &[], &[], &[]),
        VALIDATE_FAILED,
    );
    h.ok(
        VM,
        MEM_ACCEPT,
        &accept(b, 0, 1, 0x80, 0, &[], &[(0x2_0001_0000, P)], &[]),
    );
    assert!(h.rm.platform().read(BASE + P + 0x10, &mut buf));
    assert_eq!(&buf, b"secret");
    h.ok(VM, MEM_RELEASE, &handle_flags(b, 1));
    assert!(h.rm.platform().read(BASE + P + 0x10, &mut buf));
    assert_eq!(&buf, b"secret");
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(b, 0));
    assert!(h.rm.platform().read(BASE + P + 0x10, &mut buf));
    assert_eq!(buf, [0; 6]);
    // Reclaim SANITIZE also zeroes.
    assert!(h.rm.platform_mut().write(BASE + 2 * P, b"more"));
    let c = h
        .ok(
            HLOS,
            MEM_SHARE,
            &create(0, 0, 0, &[(HLOS, 7), (VM, 4)], &[(BASE + 2 * P, P)]),
        )
        .u32_at(0);
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(c, 1));
    let mut b4 = [1u8; 4];
    assert!(h.rm.platform().read(BASE + 2 * P, &mut b4));
    assert_eq!(b4, [0; 4]);
    h.ok(VM, MEM_RELEASE, &handle_flags(a, 0));
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(a, 0));
}

#[test]
fn accept_placement() {
    let mut h = with_ready_vm();
    // 4 MiB parcel: the RM picks a 2 MiB aligned IPA.
    let big = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(0x4060_0000, 2 * MIB2)]),
        )
        .u32_at(0);
    // A 12 KiB one: page aligned.
    let small = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(BASE, 3 * P)]),
        )
        .u32_at(0);
    let c = h.ok(VM, MEM_ACCEPT, &accept(small, 0, 1, 0x80, 0, &[], &[], &[]));
    let ipa_small = u64::from_le_bytes(c.data[4..12].try_into().unwrap());
    assert_eq!(ipa_small % P, 0);
    let c = h.ok(VM, MEM_ACCEPT, &accept(big, 0, 1, 0x80, 0, &[], &[], &[]));
    assert_eq!(&c.data[..4], &[1, 0, 0, 0]);
    let ipa_big = u64::from_le_bytes(c.data[4..12].try_into().unwrap());
    assert_eq!(
        u64::from_le_bytes(c.data[12..20].try_into().unwrap()),
        2 * MIB2
    );
    assert_eq!(ipa_big % MIB2, 0);
    assert!(ipa_big >= ipa_small + 3 * P || ipa_big + 2 * MIB2 <= ipa_small);
    // The 2 MiB-aligned range is mapped with blocks in the real tables.
    let l = h.rm.platform().query(VM, ipa_big).unwrap();
    assert_eq!((l.size, l.pa), (MIB2, 0x4060_0000));

    // Caller-chosen IPA overlapping an accepted range → NORESOURCE.
    let third = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(BASE + 8 * P, P)]),
        )
        .u32_at(0);
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(third, 0, 1, 0x80, 0, &[], &[(ipa_small + P, P)], &[]),
        NORESOURCE,
    );
    // map_vmid must be 0.
    let mut b = third.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 1, 0x80, 0, 0, 0, 0, 0]);
    b.extend(acl(&[]));
    b.extend(sgl_with_half(&[], VM));
    b.extend(attrs(&[]));
    h.call_fails(VM, MEM_ACCEPT, &b, ARGUMENT_INVALID);
    // Short accept → MSG_INVALID.
    h.call_fails(VM, MEM_ACCEPT, &b[..23], MSG_INVALID);
}

#[test]
fn contiguous_accept_of_scattered_regions() {
    let mut h = with_ready_vm();
    // Three separate pages → three regions.
    let s = [(BASE, P), (BASE + 4 * P, P), (BASE + 9 * P, P)];
    let hd = h
        .ok(HLOS, MEM_SHARE, &create(0, 0, 0, &[(HLOS, 7), (VM, 6)], &s))
        .u32_at(0);
    let c = h.ok(
        VM,
        MEM_ACCEPT,
        &accept(hd, 0, 2, 0x80 | 0x10, 0, &[], &[], &[]),
    );
    // One entry covering the whole parcel.
    assert_eq!(&c.data[..4], &[1, 0, 0, 0]);
    let ipa = u64::from_le_bytes(c.data[4..12].try_into().unwrap());
    assert_eq!(
        u64::from_le_bytes(c.data[12..20].try_into().unwrap()),
        3 * P
    );
    for (i, (pa, _)) in s.iter().enumerate() {
        let l = h.rm.platform().query(VM, ipa + i as u64 * P).unwrap();
        assert_eq!(l.pa + (ipa + i as u64 * P - l.ipa), *pa);
        assert_eq!(l.rights, Rights::RW);
    }
    // A caller-chosen contiguous IPA must cover the total size.
    let hd2 = h
        .ok(
            HLOS,
            MEM_SHARE,
            &create(
                0,
                0,
                0,
                &[(HLOS, 7), (VM, 6)],
                &[(BASE + 20 * P, P), (BASE + 30 * P, P)],
            ),
        )
        .u32_at(0);
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(hd2, 0, 2, 0x80 | 0x10, 0, &[], &[(0x3_0000_0000, P)], &[]),
        ARGUMENT_INVALID,
    );
    // Without MAP_CONTIGUOUS, one caller entry per region, sized to it; DONE
    // before all IPAs are given → ARGUMENT_INVALID.
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(hd2, 0, 2, 0x80, 0, &[], &[(0x3_0000_0000, P)], &[]),
        ARGUMENT_INVALID,
    );
    h.ok(
        VM,
        MEM_ACCEPT,
        &accept(
            hd2,
            0,
            2,
            0x80,
            0,
            &[],
            &[(0x3_0000_0000, P), (0x3_1000_0000, P)],
            &[],
        ),
    );
    assert_eq!(
        h.rm.platform().query(VM, 0x3_1000_0000).unwrap().pa,
        BASE + 30 * P
    );
}

#[test]
fn notify_shared_to_ready_vm_auto_accepts_and_recall() {
    let mut h = with_vm();
    // Bring the VM to READY with an image parcel holding a DT.
    let dtb = tiny_dtb(1);
    assert!(h.rm.platform_mut().write(0x5000_0000, &dtb));
    let img = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 7)], &[(0x5000_0000, MIB2)]),
        )
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    // A shared parcel notified to a READY VM is accepted on its behalf.
    let sh = h
        .ok(
            HLOS,
            MEM_SHARE,
            &create(0, 0, 0, &[(HLOS, 7), (VM, 6)], &[(BASE, P)]),
        )
        .u32_at(0);
    let c = h.ok(HLOS, MEM_NOTIFY, &notify(sh, 0x1, 0x42, &[VM]));
    let mut n = sh.to_le_bytes().to_vec();
    n.extend_from_slice(&[0x80, 0, 0, 0, 0x42, 0, 0, 0]);
    assert_eq!(c.notifs(), vec![(HLOS, N_MEM_ACCEPTED, n)]);
    let p = h.rm.parcels().get(sh).unwrap();
    let ipa = p.accepted[&VM].ipas[0];
    assert_eq!(h.rm.platform().query(VM, ipa).map(|l| l.pa), Some(BASE));
    // RECALL goes to the listed VMs with {handle, tag}.
    let c = h.ok(HLOS, MEM_NOTIFY, &notify(sh, 0x8, 0x42, &[VM]));
    let mut r = sh.to_le_bytes().to_vec();
    r.extend(0x42u32.to_le_bytes());
    assert_eq!(c.notifs(), vec![(VM, N_MEM_RECALL, r)]);
    // RECALL only by the owner.
    h.call_fails(VM, MEM_NOTIFY, &notify(sh, 0x8, 0x42, &[VM]), DENIED);
}

#[test]
fn lookup_sgl() {
    let mut h = with_ready_vm();
    let s = [(BASE, 2 * P)];
    let hd = h
        .ok(HLOS, MEM_SHARE, &create(0, 0, 0, &[(HLOS, 7), (VM, 4)], &s))
        .u32_at(0);
    let q = |label: u32, a: &[(u16, u8)], s: &[(u64, u64)]| {
        let mut v = vec![0u8, 0, 0, 0];
        v.extend(label.to_le_bytes());
        v.extend(acl(a));
        v.extend(sgl(s));
        v.extend(attrs(&[]));
        v
    };
    let c = h.ok(HLOS, MEM_LOOKUP_SGL, &q(9, &[(HLOS, 7), (VM, 4)], &s));
    assert_eq!(c.u32_at(0), hd);
    // The label was 0, so the lookup set it.
    assert_eq!(h.rm.parcels().get(hd).unwrap().label, 9);
    h.call_fails(
        HLOS,
        MEM_LOOKUP_SGL,
        &q(9, &[(VM, 4), (HLOS, 7)], &s),
        LOOKUP_FAILED,
    );
    h.call_fails(
        HLOS,
        MEM_LOOKUP_SGL,
        &q(9, &[(HLOS, 7), (VM, 4)], &[(BASE, P)]),
        LOOKUP_FAILED,
    );
    h.call_fails(
        VM,
        MEM_LOOKUP_SGL,
        &q(9, &[(HLOS, 7), (VM, 4)], &s),
        LOOKUP_FAILED,
    );
    // Only SHARING parcels match.
    h.ok(VM, MEM_ACCEPT, &accept(hd, 0, 2, 0x80, 0, &[], &[], &[]));
    h.call_fails(
        HLOS,
        MEM_LOOKUP_SGL,
        &q(9, &[(HLOS, 7), (VM, 4)], &s),
        LOOKUP_FAILED,
    );
}

#[test]
fn per_vm_parcel_limit() {
    // Default 64.
    let mut h = with_vm();
    for i in 0..64u64 {
        h.ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(VM, 6)], &[(BASE + i * P, P)]),
        );
    }
    h.call_fails(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 6)], &[(BASE + 64 * P, P)]),
        DENIED,
    );
    // Configurable.
    let cfg = RmConfig {
        max_parcels_per_vm: 2,
        ..RmConfig::default()
    };
    let mut h = H {
        rm: sim_rm(SimConfig::default(), cfg).unwrap(),
        seq: 0,
    };
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    let a = h
        .ok(HLOS, MEM_LEND, &create(0, 0, 0, &[(VM, 6)], &[(BASE, P)]))
        .u32_at(0);
    h.ok(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 6)], &[(BASE + P, P)]),
    );
    h.call_fails(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 6)], &[(BASE + 2 * P, P)]),
        DENIED,
    );
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(a, 0));
    h.ok(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 6)], &[(BASE + 2 * P, P)]),
    );
}

const MMIO: u64 = 0x0A00_0000;

/// HLOS with 2 MiB of device memory at 0x0A000000 (QEMU virt's virtio-mmio area).
fn with_mmio() -> H {
    let cfg = RmConfig {
        hlos_mmio: vec![(MMIO, MMIO, MIB2)],
        ..RmConfig::default()
    };
    let mut h = H {
        rm: sim_rm(SimConfig::default(), cfg).unwrap(),
        seq: 0,
    };
    h.check();
    assert_eq!(h.ready_vm(), VM);
    h
}

#[test]
fn io_parcels() {
    let mut h = with_mmio();
    let dev = [(MMIO, P)];
    let with_attrs = |mem_type: u8, a: &[(u16, u8)], s: &[(u64, u64)], at: &[(u16, u16)]| {
        let mut v = vec![mem_type, 0, 0, 0, 0, 0, 0, 0];
        v.extend(acl(a));
        v.extend(sgl(s));
        v.extend(attrs(at));
        v
    };
    // Device memory is IO: a NORMAL parcel over it, or a NORMAL attr, fails.
    h.call_fails(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(VM, 6)], &dev),
        MEM_INVALID,
    );
    h.call_fails(
        HLOS,
        MEM_LEND,
        &with_attrs(1, &[(VM, 6)], &dev, &[(0, VM)]),
        ARGUMENT_INVALID,
    );
    // IO may not be executable or sanitized; a donation's rights must be
    // exactly the maximum, RW for IO (wrong rights → DENIED).
    h.call_fails(
        HLOS,
        MEM_LEND,
        &create(1, 0, 0, &[(VM, 7)], &dev),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        MEM_LEND,
        &create(1, 1, 0, &[(VM, 6)], &dev),
        ARGUMENT_INVALID,
    );
    h.call_fails(HLOS, MEM_DONATE, &create(1, 0, 0, &[(VM, 7)], &dev), DENIED);
    let hd = h
        .ok(HLOS, MEM_LEND, &with_attrs(1, &[(VM, 6)], &dev, &[(1, VM)]))
        .u32_at(0);
    // Accept: no MAP_CONTIGUOUS, no SANITIZE on IO.
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(hd, 1, 1, 0x80 | 0x10, 0, &[], &[], &[]),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        VM,
        MEM_ACCEPT,
        &accept(hd, 1, 1, 0x80 | 0x20, 0, &[], &[], &[]),
        ARGUMENT_INVALID,
    );
    // VALIDATE_ACL_ATTR with the DEVICE attr.
    let c = h.ok(
        VM,
        MEM_ACCEPT,
        &accept(hd, 1, 1, 0x80 | 0x02, 0, &[(VM, 6)], &[], &[(1, VM)]),
    );
    let ipa = u64::from_le_bytes(c.data[4..12].try_into().unwrap());
    let l = h.rm.platform().query(VM, ipa).unwrap();
    assert_eq!(
        (l.pa, l.rights, l.kind),
        (MMIO, Rights::RW, gunyah_rm::MemKind::Device)
    );
    assert_eq!(h.rm.platform().query(HLOS, MMIO), None);
    h.call_fails(VM, MEM_RELEASE, &handle_flags(hd, 1), ARGUMENT_INVALID);
    h.ok(VM, MEM_RELEASE, &handle_flags(hd, 0));
    h.call_fails(HLOS, MEM_RECLAIM, &handle_flags(hd, 1), ARGUMENT_INVALID);
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(hd, 0));
    let l = h.rm.platform().query(HLOS, MMIO).unwrap();
    assert_eq!((l.rights, l.kind), (Rights::RW, gunyah_rm::MemKind::Device));
    // A donation of IO memory needs RW (the maximum for IO).
    let d = h
        .ok(HLOS, MEM_DONATE, &create(1, 0, 0, &[(VM, 6)], &dev))
        .u32_at(0);
    h.ok(
        VM,
        MEM_ACCEPT,
        &accept(d, 1, 0, 0x80, 0, &[], &[(0x2_0000_0000, P)], &[]),
    );
    assert!(h.rm.parcels().get(d).is_none());
    // The VM goes away: the device page returns to HLOS.
    h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(VM));
    assert_eq!(
        h.rm.platform().query(HLOS, MMIO).map(|l| l.kind),
        Some(gunyah_rm::MemKind::Device)
    );
}

/// Spec §12.1, the memparcel lines observed on Gunyah's RM: MEM_APPEND with no
/// entries, MEM_NOTIFY(ACCEPTED/RELEASED) from a SHARE's owner, and VM_START taking a
/// parcel still open for MEM_APPEND.
#[test]
fn observed_append_notify_and_start_rules() {
    let mut h = with_vm();
    // Created open for APPEND (flags 0x2), lent to VM.
    let open = h
        .ok(HLOS, MEM_LEND, &create(0, 2, 0, &[(VM, 7)], &[(BASE, P)]))
        .u32_at(0);
    let append = |handle: u32, flags: u8, entries: &[(u64, u64)]| {
        let mut v = handle.to_le_bytes().to_vec();
        v.extend_from_slice(&[flags, 0, 0, 0]);
        v.extend(sgl(entries));
        v
    };
    // 0 entries → ARGUMENT_INVALID (as an empty SGL on create); no list header →
    // MSG_INVALID; a page already in the parcel → MEM_INVALID.
    h.call_fails(HLOS, MEM_APPEND, &append(open, 0, &[]), ARGUMENT_INVALID);
    h.call_fails(HLOS, MEM_APPEND, &append(open, 0, &[])[..8], MSG_INVALID);
    h.call_fails(
        HLOS,
        MEM_APPEND,
        &append(open, 0, &[(BASE, P)]),
        MEM_INVALID,
    );
    h.ok(HLOS, MEM_APPEND, &append(open, 0, &[(BASE + P, P)]));

    // A SHARE's owner is in its ACL: NOTIFY(ACCEPTED) → MEM_RELEASED (it never
    // accepted), NOTIFY(RELEASED) → OK and MEM_RELEASED back to the owner.
    let sh = h
        .ok(
            HLOS,
            MEM_SHARE,
            &create(0, 0, 0, &[(HLOS, 7), (VM, 6)], &[(BASE + 8 * P, P)]),
        )
        .u32_at(0);
    h.call_fails(HLOS, MEM_NOTIFY, &notify(sh, 0x4, 7, &[]), MEM_RELEASED);
    let c = h.ok(HLOS, MEM_NOTIFY, &notify(sh, 0x2, 7, &[]));
    let mut want = sh.to_le_bytes().to_vec();
    want.extend_from_slice(&[3, 0, 0, 0, 7, 0, 0, 0]);
    assert_eq!(c.notifs(), vec![(HLOS, N_MEM_RELEASED, want)]);
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(sh, 0));

    // VM_START accepts the parcel still open for APPEND; the owner can no longer
    // append (DENIED) or reclaim it (MEM_INUSE); after the VM's reset it is final.
    let dtb = tiny_dtb(1);
    let dt_pa = ready_vm_image_pa(VM);
    assert!(h.rm.platform_mut().write(dt_pa, &dtb));
    let img = h
        .ok(HLOS, MEM_LEND, &create(0, 0, 0, &[(VM, 7)], &[(dt_pa, P)]))
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(VM, 0, img, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(VM));
    h.ok(HLOS, VM_START, &vmid_pad(VM));
    assert!(h.rm.parcels().get(open).unwrap().accepted[&VM].mapped);
    h.call_fails(
        HLOS,
        MEM_APPEND,
        &append(open, 1, &[(BASE + 2 * P, P)]),
        DENIED,
    );
    h.call_fails(HLOS, MEM_RECLAIM, &handle_flags(open, 0), MEM_INUSE);
    h.ok(HLOS, VM_STOP, &stop(VM, 1, 0));
    h.ok(HLOS, VM_RESET, &vmid_pad(VM));
    h.call_fails(
        HLOS,
        MEM_APPEND,
        &append(open, 1, &[(BASE + 2 * P, P)]),
        DENIED,
    );
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(open, 0));
    h.ok(HLOS, MEM_RECLAIM, &handle_flags(img, 0));
}
