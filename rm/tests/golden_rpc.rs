//! gmem / golden / CoW through the wire (family 0x47), with the isolation
//! checker after every step. Payloads and expected bytes are written by hand
//! from the layouts in `gunyah_rm_abi::ext` and DESIGN.md.

mod common;
use common::*;
use gunyah_rm::{AddressSpaces, PhysMem};
use sha2::{Digest, Sha256};

const MIB2: u64 = 0x20_0000;
/// Golden source in HLOS RAM (identity mapped): 4 MiB at 0x4020_0000.
const SRC: u64 = 0x4020_0000;
const GOLDEN_SIZE: u64 = 2 * MIB2;
/// Where clones map the golden image.
const CLONE_IPA: u64 = 0x8000_0000;

/// The contents the tests put in the golden source: page `i` starts with
/// 32 bytes of `i as u8 ^ 0x5A`, the rest is zero.
fn golden_bytes() -> Vec<u8> {
    let mut b = vec![0u8; GOLDEN_SIZE as usize];
    for i in 0..(GOLDEN_SIZE / 4096) as usize {
        b[i * 4096..i * 4096 + 32].fill(i as u8 ^ 0x5A);
    }
    b
}

/// A VM allocated by HLOS (LOAD: it cannot send requests yet).
fn alloc_vm(h: &mut H) -> u16 {
    let c = h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    c.u32_at(0) as u16
}

/// HLOS fills its RAM at SRC through SIM_VM_WRITE, lends it to `to` and
/// seals it. Returns (golden id, digest).
fn make_golden(h: &mut H, to: u16) -> (u32, [u8; 32]) {
    let b = golden_bytes();
    for i in 0..(GOLDEN_SIZE / 4096) as usize {
        let c = h.ok(
            HLOS,
            SIM_VM_WRITE,
            &sim_write(HLOS, SRC + i as u64 * 4096, &b[i * 4096..i * 4096 + 32]),
        );
        assert_eq!(c.data, 0u32.to_le_bytes(), "HLOS RAM is mapped: no fault");
    }
    let c = h.ok(
        HLOS,
        MEM_LEND,
        &create(0, 0, 0, &[(to, 7)], &[(SRC, GOLDEN_SIZE)]),
    );
    let handle = c.u32_at(0);
    let mut seal = handle.to_le_bytes().to_vec();
    seal.extend_from_slice(&[0; 4]);
    let c = h.ok(HLOS, GOLDEN_SEAL, &seal);
    assert_eq!(c.data.len(), 40);
    assert_eq!(&c.data[4..8], &[0; 4]);
    let digest: [u8; 32] = c.data[8..40].try_into().unwrap();
    (c.u32_at(0), digest)
}

/// Partition pages in use other than stage-2 tables.
fn held_base(u: gunyah_rm::platform::PartitionUsage) -> u64 {
    u.total - u.free - u.tables
}

fn held(h: &H) -> u64 {
    held_base(h.rm.platform().partition_usage())
}

fn stats(h: &mut H, vmid: u16) -> [u64; 4] {
    let c = h.ok(HLOS, VM_MEM_STATS, &vmid_pad(vmid));
    assert_eq!(c.data.len(), 32);
    [0, 1, 2, 3].map(|i| u64::from_le_bytes(c.data[i * 8..i * 8 + 8].try_into().unwrap()))
}

#[test]
fn seal_map_and_cow_through_sim_write() {
    let mut h = H::new();
    let vm = alloc_vm(&mut h);
    let (g, digest) = make_golden(&mut h, vm);
    let expect: [u8; 32] = Sha256::digest(golden_bytes()).into();
    assert_eq!(digest, expect);
    // After sealing, HLOS no longer maps the source.
    let c = h.call(HLOS, SIM_VM_READ, &sim_read(HLOS, 4, SRC));
    assert_eq!(c.err, MEM_INVALID);
    assert_eq!(c.data, SRC.to_le_bytes());

    let c = h.ok(HLOS, GMEM_CREATE, &gmem_create(16 * 4096, 0, vm, 0));
    let gmem = c.u32_at(0);
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 1, 0, CLONE_IPA, GOLDEN_SIZE, gmem),
    );
    // Launch cost is per 2 MiB: one block maps the whole image.
    let leaf = AddressSpaces::query(h.rm.platform(), vm, CLONE_IPA + 0x3000).unwrap();
    assert_eq!((leaf.ipa, leaf.size, leaf.pa), (CLONE_IPA, MIB2, SRC));
    assert!(!leaf.rights.writable());

    // Read through the clone's stage 2.
    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(vm, 40, CLONE_IPA + 3 * 4096));
    let mut want = vec![3 ^ 0x5A; 32];
    want.extend_from_slice(&[0; 8]);
    assert_eq!(c.data, want);

    // The first write copies the page: faults_served 1, COW_BROKEN to HLOS.
    let c = h.ok(
        HLOS,
        SIM_VM_WRITE,
        &sim_write(vm, CLONE_IPA + 0x1008, b"hello"),
    );
    assert_eq!(c.data, 1u32.to_le_bytes());
    let n = c.notifs();
    assert_eq!(n.len(), 1);
    let mut cb = vec![0u8; 8];
    cb[0..2].copy_from_slice(&vm.to_le_bytes());
    cb[4] = 1; // count
    cb.extend_from_slice(&(CLONE_IPA + 0x1000).to_le_bytes());
    assert_eq!(n[0], (HLOS, N_COW_BROKEN, cb));
    // A second write to the same page needs no copy.
    let c = h.ok(HLOS, SIM_VM_WRITE, &sim_write(vm, CLONE_IPA + 0x1010, b"!"));
    assert_eq!(c.data, 0u32.to_le_bytes());
    assert!(c.notifs().is_empty());

    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(vm, 24, CLONE_IPA + 0x1000));
    let mut want = vec![1 ^ 0x5A; 8];
    want.extend_from_slice(b"hello");
    want.extend_from_slice(&[1 ^ 0x5A; 3]);
    want.extend_from_slice(b"!");
    want.extend_from_slice(&[1 ^ 0x5A; 7]);
    assert_eq!(c.data, want);
    // The golden page itself is unchanged.
    let mut gp = [0u8; 16];
    assert!(PhysMem::read(h.rm.platform(), SRC + 0x1008, &mut gp));
    assert_eq!(gp, [1 ^ 0x5A; 16]);

    // Only the written page was split out; the second block stays a block.
    let p = h.rm.platform();
    let l = AddressSpaces::query(p, vm, CLONE_IPA + 0x3000).unwrap();
    assert_eq!((l.size, l.pa), (4096, SRC + 0x3000));
    let l = AddressSpaces::query(p, vm, CLONE_IPA + MIB2).unwrap();
    assert_eq!(l.size, MIB2);
    let l = AddressSpaces::query(p, vm, CLONE_IPA + 0x1000).unwrap();
    assert!(l.rights.writable() && l.pa != SRC + 0x1000);

    assert_eq!(stats(&mut h, vm), [0, 1023, 1, 16]);
    assert_eq!(h.rm.golden_share_count(g, 1), 0);
    assert_eq!(h.rm.golden_share_count(g, 2), 1);
}

#[test]
fn quota_exhaustion_and_writes_without_cow() {
    let mut h = H::new();
    let vm = alloc_vm(&mut h);
    let (g, _) = make_golden(&mut h, vm);
    let gmem = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(2 * 4096, 0, vm, 0))
        .u32_at(0);
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 1, 0, CLONE_IPA, MIB2, gmem),
    );
    // Read-only mapping of the second half.
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 0, MIB2, CLONE_IPA + MIB2, MIB2, 0xFFFF_FFFF),
    );
    for i in 0..2u64 {
        let c = h.ok(
            HLOS,
            SIM_VM_WRITE,
            &sim_write(vm, CLONE_IPA + i * 4096, b"x"),
        );
        assert_eq!(c.data, 1u32.to_le_bytes());
    }
    let used = h.rm.platform().partition_usage();
    // The third copy is over quota: MEM_INVALID with the page, QUOTA_EXHAUSTED to HLOS.
    let c = h.call(
        HLOS,
        SIM_VM_WRITE,
        &sim_write(vm, CLONE_IPA + 0x2FFF, b"yz"),
    );
    assert_eq!(c.err, MEM_INVALID);
    assert_eq!(c.data, (CLONE_IPA + 0x2000).to_le_bytes());
    let mut q = vm.to_le_bytes().to_vec();
    q.extend_from_slice(&[0, 0]);
    q.extend_from_slice(&gmem.to_le_bytes());
    q.extend_from_slice(&(CLONE_IPA + 0x2000).to_le_bytes());
    q.extend_from_slice(&2u64.to_le_bytes());
    assert_eq!(
        c.notifs(),
        vec![
            (HLOS, N_QUOTA_EXHAUSTED, q),
            (
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(vm, 4, 1, CLONE_IPA + 0x2000)
            )
        ]
    );
    assert_eq!(h.rm.platform().partition_usage(), used, "nothing leaked");
    // A write that spans into the next page: the bytes before the fault land.
    let c = h.call(
        HLOS,
        SIM_VM_WRITE,
        &sim_write(vm, CLONE_IPA + 0x1FFE, b"abcd"),
    );
    assert_eq!(c.err, MEM_INVALID);
    assert_eq!(c.data, (CLONE_IPA + 0x2000).to_le_bytes());
    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(vm, 2, CLONE_IPA + 0x1FFE));
    assert_eq!(c.data, b"ab");
    // Read-only mapping: the write is never served; the manager is told why.
    let c = h.call(HLOS, SIM_VM_WRITE, &sim_write(vm, CLONE_IPA + MIB2, b"x"));
    assert_eq!(c.err, MEM_INVALID);
    assert_eq!(c.data, (CLONE_IPA + MIB2).to_le_bytes());
    assert_eq!(
        c.notifs(),
        vec![(
            HLOS,
            N_FAULT_UNSERVED,
            fault_unserved(vm, 1, 1, CLONE_IPA + MIB2)
        )]
    );
    assert_eq!(stats(&mut h, vm), [0, 1022, 2, 2]);
}

#[test]
fn release_is_refused_while_mapped_then_memory_goes_home() {
    let mut h = H::new();
    let vm = h.ready_vm();
    let (g, _) = make_golden(&mut h, vm);
    let gmem = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(8 * 4096, 0, vm, 0))
        .u32_at(0);
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 1, 0, CLONE_IPA, GOLDEN_SIZE, gmem),
    );
    h.ok(
        HLOS,
        SIM_VM_WRITE,
        &sim_write(vm, CLONE_IPA + MIB2 + 0x5000, b"w"),
    );
    let mut rel = g.to_le_bytes().to_vec();
    rel.extend_from_slice(&[0; 4]);
    h.call_fails(HLOS, GOLDEN_RELEASE, &rel, MEM_INUSE);
    // The clone may not release it.
    h.call_fails(vm, GOLDEN_RELEASE, &rel, DENIED);
    // Unmap the half with the copy (after CoW), then the rest.
    let before = h.rm.platform().partition_usage();
    h.ok(
        HLOS,
        GOLDEN_UNMAP,
        &id_vmid_range(g, vm, CLONE_IPA + MIB2, MIB2),
    );
    assert_eq!(
        h.rm.platform().partition_usage().free,
        before.free + 1 + 1,
        "the copy and its split table page went back"
    );
    h.call_fails(HLOS, GOLDEN_RELEASE, &rel, MEM_INUSE);
    // Unmapping what is not mapped is refused.
    h.call_fails(
        HLOS,
        GOLDEN_UNMAP,
        &id_vmid_range(g, vm, CLONE_IPA + MIB2, 4096),
        MEM_INVALID,
    );
    h.ok(HLOS, GOLDEN_UNMAP, &id_vmid_range(g, vm, CLONE_IPA, MIB2));
    h.ok(HLOS, GOLDEN_RELEASE, &rel);
    h.call_fails(HLOS, GOLDEN_RELEASE, &rel, HANDLE_INVALID);
    // HLOS has its RAM back, with the contents.
    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(HLOS, 4, SRC + 0x7000));
    assert_eq!(c.data, [7 ^ 0x5A; 4]);
    h.ok(HLOS, SIM_VM_WRITE, &sim_write(HLOS, SRC, b"mine again"));
}

#[test]
fn bad_requests_change_nothing() {
    let mut h = H::new();
    let vm = h.ready_vm();
    let (g, _) = make_golden(&mut h, vm);
    h.call_fails(
        HLOS,
        GMEM_CREATE,
        &gmem_create(4096, 0, vm, 1),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_CREATE,
        &gmem_create(0, 0, vm, 0),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_CREATE,
        &gmem_create(4097, 0, vm, 0),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_CREATE,
        &gmem_create(4096, 1, vm, 0),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_CREATE,
        &gmem_create(4096, 0, 0x9F, 0),
        VMID_INVALID,
    );
    h.call_fails(HLOS, GMEM_CREATE, &gmem_create(4096, 0, HLOS, 0), DENIED);
    // A VM cannot give itself a pool (its owner sets its quota).
    h.call_fails(vm, GMEM_CREATE, &gmem_create(4096, 0, 0, 0), DENIED);
    h.call_fails(vm, GMEM_CREATE, &gmem_create(4096, 0, vm, 0), DENIED);
    h.call_fails(
        HLOS,
        GMEM_CREATE,
        &gmem_create(4096, 0, vm, 0)[..15],
        MSG_INVALID,
    );
    let gmem = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(4 * 4096, 0, vm, 0))
        .u32_at(0);
    // Binding: out of the pool, bad perms, unknown pool, bad flags.
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 6, 0, 0, 0x1000_0000, 5 * 4096),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 2, 0, 0, 0x1000_0000, 4096),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem + 9, vm, 6, 0, 0, 0x1000_0000, 4096),
        HANDLE_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 6, 2, 0, 0x1000_0000, 4096),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, HLOS, 6, 0, 0, 0x1000_0000, 4096),
        DENIED,
    );
    let c = h.ok(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 6, 0, 0, 0x1000_0000, 2 * 4096),
    );
    assert!(
        c.u32_at(0) >= 0x4742_0000,
        "binding handles have their own range"
    );
    // The same pool pages twice; the same IPAs twice.
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 6, 1, 4096, 0x2000_0000, 4096),
        MEM_INUSE,
    );
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 6, 1, 2 * 4096, 0x1000_1000, 4096),
        MEM_INVALID,
    );
    let gmem2 = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(4096, 0, vm, 0))
        .u32_at(0);
    h.ok(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem2, vm, 6, 0, 0, 0x3000_0000, 4096),
    );
    // Golden map: into a used range, beyond the image, COW without a pool,
    // with another VM's pool, unknown image, bad flags.
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 1, 0, 0x1000_0000, MIB2, gmem),
        MEM_INVALID,
    );
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 1, 4096, CLONE_IPA, GOLDEN_SIZE, gmem),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 1, 0, CLONE_IPA, MIB2, 0xFFFF_FFFF),
        ARGUMENT_INVALID,
    );
    let other = alloc_vm(&mut h);
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, other, 1, 0, CLONE_IPA, MIB2, gmem),
        DENIED,
    );
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g + 1, vm, 1, 0, CLONE_IPA, MIB2, gmem),
        HANDLE_INVALID,
    );
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, vm, 4, 0, CLONE_IPA, MIB2, gmem),
        ARGUMENT_INVALID,
    );
    // Only the image's owner (HLOS, which sealed it) may map it: a VM may
    // not map it into another VM, nor into itself.
    h.call_fails(
        vm,
        GOLDEN_MAP,
        &golden_map(g, other, 0, 0, CLONE_IPA, MIB2, 0xFFFF_FFFF),
        DENIED,
    );
    h.call_fails(
        vm,
        GOLDEN_MAP,
        &golden_map(g, vm, 0, 0, CLONE_IPA, MIB2, 0xFFFF_FFFF),
        DENIED,
    );
    // A protected VM refuses images its config does not name.
    h.rm.set_vm_protected(other, vec![[0xAB; 32]]).unwrap();
    h.call_fails(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, other, 0, 0, CLONE_IPA, MIB2, 0xFFFF_FFFF),
        DENIED,
    );
    let digest = h.rm.golden(g).unwrap().digest;
    h.rm.set_vm_protected(other, vec![digest]).unwrap();
    h.ok(
        HLOS,
        GOLDEN_MAP,
        &golden_map(g, other, 0, 0, CLONE_IPA, MIB2, 0xFFFF_FFFF),
    );
    // SIM accesses: unknown VM, zero length, wrapping range.
    h.call_fails(HLOS, SIM_VM_READ, &sim_read(0x9F, 4, 0), VMID_INVALID);
    h.call_fails(
        HLOS,
        SIM_VM_READ,
        &sim_read(vm, 0, CLONE_IPA),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        SIM_VM_WRITE,
        &sim_write(vm, u64::MAX - 1, b"abc"),
        ARGUMENT_INVALID,
    );
    h.call_fails(
        HLOS,
        SIM_VM_READ,
        &sim_read(vm, 14613, CLONE_IPA),
        ARGUMENT_INVALID,
    );
    // Stats of a VM that is not the caller's.
    h.call_fails(vm, VM_MEM_STATS, &vmid_pad(other), VMID_INVALID);
    // Unbind must name a binding exactly.
    h.call_fails(
        HLOS,
        GMEM_UNBIND,
        &id_vmid_range(gmem, vm, 0x1000_0000, 4096),
        MEM_INVALID,
    );
    h.call_fails(
        HLOS,
        GMEM_UNBIND,
        &id_vmid_range(gmem2, vm, 0x1000_0000, 2 * 4096),
        MEM_INVALID,
    );
}

#[test]
fn demand_paged_binding_and_unbind() {
    let mut h = H::new();
    let vm = alloc_vm(&mut h);
    let base = h.rm.platform().partition_usage();
    let gmem = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(4 * 4096, 0, vm, 0))
        .u32_at(0);
    let ram = 0x4000_0000u64;
    h.ok(
        HLOS,
        GMEM_BIND,
        &gmem_bind(gmem, vm, 6, 1, 0, ram, 3 * 4096),
    );
    assert_eq!(stats(&mut h, vm), [0, 0, 0, 4]);
    // First touch (a read) populates a zero page.
    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(vm, 8, ram + 0x10));
    assert_eq!(c.data, [0; 8]);
    let c = h.ok(HLOS, SIM_VM_WRITE, &sim_write(vm, ram + 0xFFC, b"spanning"));
    assert_eq!(c.data, 1u32.to_le_bytes(), "only the second page was new");
    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(vm, 8, ram + 0xFFC));
    assert_eq!(c.data, b"spanning");
    assert_eq!(stats(&mut h, vm), [2, 0, 0, 4]);
    h.ok(HLOS, SIM_VM_WRITE, &sim_write(vm, ram + 0x2000, b"3"));
    // Outside every binding: not served, and the manager is told.
    let dp = 0x5000_0000u64;
    let c = h.call(HLOS, SIM_VM_READ, &sim_read(vm, 1, dp));
    assert_eq!(
        (c.err, c.data.clone()),
        (MEM_INVALID, dp.to_le_bytes().to_vec())
    );
    assert_eq!(
        c.notifs(),
        vec![(HLOS, N_FAULT_UNSERVED, fault_unserved(vm, 2, 1, dp))]
    );
    // A VM_SET_DEMAND_PAGING range is served from the VM's pool too.
    let mut req = vm.to_le_bytes().to_vec();
    req.extend_from_slice(&[0, 0]);
    req.extend_from_slice(&1u32.to_le_bytes());
    req.extend_from_slice(&dp.to_le_bytes());
    req.extend_from_slice(&(8 * 4096u64).to_le_bytes());
    h.ok(HLOS, VM_SET_DEMAND_PAGING, &req);
    let c = h.ok(HLOS, SIM_VM_WRITE, &sim_write(vm, dp + 0x10, b"dp"));
    assert_eq!(c.data, 1u32.to_le_bytes());
    assert_eq!(stats(&mut h, vm), [4, 0, 0, 4]);
    // Quota (4 pages) reached: the next page is not served.
    let c = h.call(HLOS, SIM_VM_READ, &sim_read(vm, 1, dp + 0x3000));
    assert_eq!(
        (c.err, c.data.clone()),
        (MEM_INVALID, (dp + 0x3000).to_le_bytes().to_vec())
    );
    let mut q = vm.to_le_bytes().to_vec();
    q.extend_from_slice(&[0, 0]);
    q.extend_from_slice(&gmem.to_le_bytes());
    q.extend_from_slice(&(dp + 0x3000).to_le_bytes());
    q.extend_from_slice(&4u64.to_le_bytes());
    assert_eq!(
        c.notifs(),
        vec![
            (HLOS, N_QUOTA_EXHAUSTED, q),
            (
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(vm, 4, 1, dp + 0x3000)
            )
        ]
    );
    // Bound memory is never visible in HLOS.
    let pa = AddressSpaces::query(h.rm.platform(), vm, ram).unwrap().pa;
    let mut hl = Vec::new();
    AddressSpaces::for_each_leaf(h.rm.platform(), HLOS, &mut |l| hl.push(*l));
    assert!(hl.iter().all(|l| pa < l.pa || pa >= l.pa + l.size));
    // Unbind returns the binding's pages (the pool stays).
    h.ok(HLOS, GMEM_UNBIND, &id_vmid_range(gmem, vm, ram, 3 * 4096));
    assert_eq!(stats(&mut h, vm), [1, 0, 0, 4]);
    assert_eq!(held(&h), held_base(base) + 1);
    // Deallocation returns the rest.
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(vm));
    assert_eq!(held(&h), held_base(base));
}

#[test]
fn dealloc_returns_every_page_and_drops_share_counts() {
    let mut h = H::new();
    let base = h.rm.platform().partition_usage();
    let a = alloc_vm(&mut h);
    let b = alloc_vm(&mut h);
    let (g, _) = make_golden(&mut h, a);
    for vm in [a, b] {
        let gm = h
            .ok(HLOS, GMEM_CREATE, &gmem_create(64 * 4096, 0, vm, 0))
            .u32_at(0);
        h.ok(
            HLOS,
            GOLDEN_MAP,
            &golden_map(g, vm, 1, 0, CLONE_IPA, GOLDEN_SIZE, gm),
        );
        h.ok(
            HLOS,
            GMEM_BIND,
            &gmem_bind(gm, vm, 6, 0, 0, 0x4000_0000, 8 * 4096),
        );
        for p in [0u64, 5, 511, 512, 1000] {
            h.ok(
                HLOS,
                SIM_VM_WRITE,
                &sim_write(vm, CLONE_IPA + p * 4096, &[vm as u8; 9]),
            );
        }
    }
    assert_eq!(h.rm.golden_share_count(g, 5), 0);
    assert_eq!(h.rm.golden_share_count(g, 6), 2);
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(a));
    assert_eq!(h.rm.golden_share_count(g, 5), 0, "b still has its copy");
    assert_eq!(h.rm.golden_share_count(g, 6), 1);
    // b still reads its own copy and the golden elsewhere.
    let c = h.ok(HLOS, SIM_VM_READ, &sim_read(b, 10, CLONE_IPA + 5 * 4096));
    let mut want = vec![b as u8; 9];
    want.push(5 ^ 0x5A);
    assert_eq!(c.data, want);
    h.ok(HLOS, VM_DEALLOC, &vmid_pad(b));
    let mut rel = g.to_le_bytes().to_vec();
    rel.extend_from_slice(&[0; 4]);
    h.ok(HLOS, GOLDEN_RELEASE, &rel);
    assert_eq!(held(&h), held_base(base), "every page came back");
}

#[test]
fn unserved_write_stops_a_running_clone_with_stop_vm_policy() {
    let mut h = H::new();
    let vm = alloc_vm(&mut h);
    // Boot the clone: DTB in HLOS RAM (through SIM_VM_WRITE), lent, configured, started.
    let dtb = tiny_dtb(1);
    let img = 0x4800_0000u64;
    h.ok(HLOS, SIM_VM_WRITE, &sim_write(HLOS, img, &dtb));
    let handle = h
        .ok(HLOS, MEM_LEND, &create(0, 0, 0, &[(vm, 7)], &[(img, MIB2)]))
        .u32_at(0);
    h.ok(
        HLOS,
        VM_CONFIG_IMAGE,
        &config_image(vm, 0, handle, (0, 0), (0, dtb.len() as u64)),
    );
    h.ok(HLOS, VM_INIT, &vmid_pad(vm));
    h.ok(HLOS, VM_START, &vmid_pad(vm));
    assert_eq!(h.rm.vm_state(vm), Some(gunyah_rm::vm::VmState::Running));

    let (g, _) = make_golden(&mut h, vm);
    let pool = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(64 * 4096, 0, vm, 0))
        .u32_at(0);
    // Config-driven mapping: a per-mapping copy quota of 1 and fault-action stop-vm.
    let mut p = gunyah_rm::golden::MapParams::cow(g, vm, 0, CLONE_IPA, GOLDEN_SIZE, pool);
    p.cow_quota = Some(1);
    p.fault_action = gunyah_rm::config::FaultAction::StopVm;
    h.rm.golden_map(HLOS, p).unwrap();
    h.check();
    let c = h.ok(HLOS, SIM_VM_WRITE, &sim_write(vm, CLONE_IPA, b"1"));
    assert_eq!(c.data, 1u32.to_le_bytes());
    let c = h.call(HLOS, SIM_VM_WRITE, &sim_write(vm, CLONE_IPA + 4096, b"2"));
    assert_eq!(
        (c.err, c.data.clone()),
        (MEM_INVALID, (CLONE_IPA + 4096).to_le_bytes().to_vec())
    );
    // QUOTA_EXHAUSTED (quota = the mapping's 1 page), then VM_STATUS EXITED and
    // VM_EXITED {vmid, exit_type 5, reason size 4, reason 3 = BUS_ERROR}.
    let mut q = vm.to_le_bytes().to_vec();
    q.extend_from_slice(&[0, 0]);
    q.extend_from_slice(&pool.to_le_bytes());
    q.extend_from_slice(&(CLONE_IPA + 4096).to_le_bytes());
    q.extend_from_slice(&1u64.to_le_bytes());
    let mut exited = vm.to_le_bytes().to_vec();
    exited.extend_from_slice(&5u16.to_le_bytes());
    exited.extend_from_slice(&4u32.to_le_bytes());
    exited.extend_from_slice(&3u32.to_le_bytes());
    assert_eq!(
        c.notifs(),
        vec![
            (HLOS, N_QUOTA_EXHAUSTED, q),
            (HLOS, N_VM_STATUS, vm_status(vm, 9, 0, 0)),
            (HLOS, N_VM_EXITED, exited),
            (
                HLOS,
                N_FAULT_UNSERVED,
                fault_unserved(vm, 4, 2, CLONE_IPA + 4096)
            ),
        ]
    );
    assert_eq!(h.rm.vm_state(vm), Some(gunyah_rm::vm::VmState::Exited));
    // Reset tears the clone down: copies back, share counts dropped.
    h.ok(HLOS, VM_RESET, &vmid_pad(vm));
    assert_eq!(h.rm.golden_share_count(g, 0), 0);
    assert!(!h.rm.golden(g).unwrap().mapped());
    assert_eq!(
        h.rm.gmem(pool).unwrap().used_pages(),
        0,
        "the pool survives a reset, empty"
    );
}

#[test]
fn record_limits_per_vm() {
    let mut h = H::new();
    let vm = alloc_vm(&mut h);
    for _ in 0..64 {
        h.ok(HLOS, GMEM_CREATE, &gmem_create(4096, 0, vm, 0));
    }
    // MAX_GMEM_PER_VM = 64.
    h.call_fails(HLOS, GMEM_CREATE, &gmem_create(4096, 0, vm, 0), NORESOURCE);
    // Another VM still gets pools.
    let other = alloc_vm(&mut h);
    h.ok(HLOS, GMEM_CREATE, &gmem_create(4096, 0, other, 0));
    // MAX_RANGES_PER_VM = 1024 bindings and mappings together.
    let big = h
        .ok(HLOS, GMEM_CREATE, &gmem_create(2048 * 4096, 0, other, 0))
        .u32_at(0);
    for i in 0..1024u64 {
        h.rm.gmem_bind(
            HLOS,
            gunyah_rm::gmem::BindParams {
                gmem: big,
                vmid: other,
                rights: gunyah_rm::Rights::RW,
                demand: true,
                offset: i * 4096,
                ipa: 0x1_0000_0000 + i * 0x2000,
                size: 4096,
            },
        )
        .unwrap();
    }
    h.check();
    h.call_fails(
        HLOS,
        GMEM_BIND,
        &gmem_bind(big, other, 6, 1, 1024 * 4096, 0x2_0000_0000, 4096),
        NORESOURCE,
    );
}
