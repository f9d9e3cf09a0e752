//! N clones × M golden pages, random reads and writes through each clone's
//! real stage-2 tables, every byte compared with a model (the golden
//! contents unless that clone wrote it), the isolation checker after every
//! step. Also: clone of a clone, unmap after CoW, quota exhaustion,
//! teardown returning every page, and a proptest of random op sequences.

use std::collections::HashMap;

use gunyah_rm::cow::{FaultOutcome, Unserved};
use gunyah_rm::gmem::BindParams;
use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{default_rm, SimPlatform};
use gunyah_rm::sim_access::AccessError;
use gunyah_rm::{PhysMem, Rights, Rm};
use proptest::prelude::*;

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const TEMPLATE_RAM: u64 = 0x8000_0000;
const CLONE_IPA: u64 = 0x1_0000_0000;
const VM_ALLOC: u32 = 0x5600_0001;
const VM_DEALLOC: u32 = 0x5600_0002;

fn check(rm: &Rm<SimPlatform>) {
    let v = rm.check_isolation();
    assert!(v.is_empty(), "isolation violations: {v:#?}");
}

fn call(rm: &mut Rm<SimPlatform>, msg_id: u32, vmid: u16) {
    let mut p = vmid.to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    rm.handle_request(HLOS, 1, msg_id, &p);
    rm.run_deferred();
    let _ = rm.drain_outgoing();
}

fn alloc_vm(rm: &mut Rm<SimPlatform>) -> u16 {
    let vmid = rm.vms().free_dynamic().unwrap();
    call(rm, VM_ALLOC, 0);
    assert!(rm.vm_exists(vmid));
    vmid
}

fn held(rm: &Rm<SimPlatform>) -> u64 {
    let u = rm.platform().partition_usage();
    u.total - u.free - u.tables
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A template VM whose `pages` pages of eagerly bound pool memory hold
/// `contents`, sealed into a golden image. Returns (template, golden id).
fn sealed_template(rm: &mut Rm<SimPlatform>, contents: &[u8]) -> (u16, u32) {
    let pages = contents.len() as u64 / PAGE;
    let t = alloc_vm(rm);
    let pool = rm.gmem_create(HLOS, pages * PAGE, 0, t).unwrap();
    rm.gmem_bind(
        HLOS,
        BindParams {
            gmem: pool,
            vmid: t,
            rights: Rights::RWX,
            demand: false,
            offset: 0,
            ipa: TEMPLATE_RAM,
            size: pages * PAGE,
        },
    )
    .unwrap();
    for (i, chunk) in contents.chunks(4000).enumerate() {
        rm.vm_write(t, TEMPLATE_RAM + i as u64 * 4000, chunk)
            .unwrap();
    }
    check(rm);
    let (g, digest) = rm
        .golden_seal_vm(HLOS, t, &[(TEMPLATE_RAM, pages * PAGE)])
        .unwrap();
    use sha2::Digest;
    assert_eq!(digest, <[u8; 32]>::from(sha2::Sha256::digest(contents)));
    // The template's pool pages moved into the image: the pool is empty.
    assert_eq!(rm.gmem(pool).unwrap().used_pages(), 0);
    check(rm);
    (t, g)
}

/// The system under test plus its model.
struct World {
    rm: Rm<SimPlatform>,
    /// Per clone: (vmid, image contents it maps, private pages it wrote,
    /// pages it may still copy).
    clones: Vec<Clone>,
}

struct Clone {
    vmid: u16,
    image: Vec<u8>,
    written: HashMap<u64, Vec<u8>>,
    pool: u32,
    quota_left: u64,
}

impl World {
    fn expect(&self, c: usize, page: u64) -> Vec<u8> {
        let cl = &self.clones[c];
        cl.written.get(&page).cloned().unwrap_or_else(|| {
            cl.image[(page * PAGE) as usize..((page + 1) * PAGE) as usize].to_vec()
        })
    }

    fn read(&mut self, c: usize, page: u64, off: u64, len: u64) {
        let vmid = self.clones[c].vmid;
        let mut buf = vec![0u8; len as usize];
        self.rm
            .vm_read(vmid, CLONE_IPA + page * PAGE + off, &mut buf)
            .unwrap();
        let want = self.expect(c, page);
        assert_eq!(
            buf,
            want[off as usize..(off + len) as usize],
            "clone {c} page {page}"
        );
    }

    fn write(&mut self, c: usize, page: u64, off: u64, data: &[u8]) {
        let vmid = self.clones[c].vmid;
        let fresh = !self.clones[c].written.contains_key(&page);
        let r = self.rm.vm_write(vmid, CLONE_IPA + page * PAGE + off, data);
        if fresh && self.clones[c].quota_left == 0 {
            match r {
                Err(AccessError::Fault {
                    ipa,
                    outcome: FaultOutcome::Abort(Unserved::QuotaExhausted { gmem }),
                    served: 0,
                }) => {
                    assert_eq!(ipa, CLONE_IPA + page * PAGE);
                    assert_eq!(gmem, self.clones[c].pool);
                }
                other => panic!("expected quota exhaustion, got {other:?}"),
            }
            return;
        }
        assert_eq!(r, Ok(fresh as u32), "clone {c} page {page}");
        let mut p = self.expect(c, page);
        p[off as usize..off as usize + data.len()].copy_from_slice(data);
        let cl = &mut self.clones[c];
        if fresh {
            cl.quota_left -= 1;
        }
        cl.written.insert(page, p);
    }

    /// Every byte of every clone, and the golden pages themselves.
    fn verify_all(&mut self, pages: u64) {
        for c in 0..self.clones.len() {
            for page in 0..pages {
                self.read(c, page, 0, PAGE);
            }
        }
    }
}

fn random_contents(rng: &mut Rng, pages: u64) -> Vec<u8> {
    let mut v = vec![0u8; (pages * PAGE) as usize];
    for (i, b) in v.iter_mut().enumerate() {
        // Mostly structured, some random: every page differs.
        *b = if i % 7 == 0 {
            rng.next() as u8
        } else {
            (i / 4096) as u8 ^ (i as u8)
        };
    }
    v
}

/// One op: (clone, page, offset, len, write?, byte).
type Op = (usize, u64, u64, u64, bool, u8);

fn run(clones: usize, pages: u64, quota: &[u64], ops: &[Op], seed: u64) -> World {
    let mut rng = Rng(seed | 1);
    let mut rm = default_rm();
    let image = random_contents(&mut rng, pages);
    let (_t, g) = sealed_template(&mut rm, &image);
    let mut w = World {
        rm,
        clones: Vec::new(),
    };
    for c in 0..clones {
        let vmid = alloc_vm(&mut w.rm);
        let q = quota[c % quota.len()];
        let pool = w.rm.gmem_create(HLOS, q.max(1) * PAGE, 0, vmid).unwrap();
        let p = MapParams::cow(g, vmid, 0, CLONE_IPA, pages * PAGE, pool);
        w.rm.golden_map(HLOS, p).unwrap();
        // A zero quota is modelled as a one-page pool already used up.
        let quota_left = if q == 0 {
            let burn = w.rm.gmem_bind(
                HLOS,
                BindParams {
                    gmem: pool,
                    vmid,
                    rights: Rights::RW,
                    demand: false,
                    offset: 0,
                    ipa: 0x4000_0000,
                    size: PAGE,
                },
            );
            assert!(burn.is_ok());
            0
        } else {
            q
        };
        w.clones.push(Clone {
            vmid,
            image: image.clone(),
            written: HashMap::new(),
            pool,
            quota_left,
        });
        check(&w.rm);
    }
    for &(c, page, off, len, is_write, byte) in ops {
        let c = c % clones;
        let page = page % pages;
        let off = off % PAGE;
        let len = 1 + len % (PAGE - off);
        if is_write {
            w.write(c, page, off, &vec![byte; len as usize]);
        } else {
            w.read(c, page, off, len);
        }
        check(&w.rm);
    }
    w
}

#[test]
fn clones_read_and_write_against_a_model() {
    const N: usize = 6;
    const M: u64 = 1024; // 4 MiB: two 2 MiB blocks per clone
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let ops: Vec<Op> = (0..400)
        .map(|_| {
            (
                rng.below(N as u64) as usize,
                // Favour a few hot pages so clones write the same pages.
                if rng.below(3) == 0 {
                    rng.below(8)
                } else {
                    rng.below(M)
                },
                rng.below(PAGE),
                rng.below(64),
                rng.below(2) == 0,
                rng.next() as u8,
            )
        })
        .collect();
    // Clone 5 has a pool of 4 pages: it runs out.
    let mut w = run(N, M, &[1000, 1000, 1000, 1000, 1000, 4], &ops, 7);
    w.verify_all(M);
    // Share counts: each golden page is mapped by the clones that did not copy it.
    let g =
        w.rm.golden_mappings(w.clones[0].vmid)
            .next()
            .unwrap()
            .golden();
    for page in 0..M {
        let copies = w
            .clones
            .iter()
            .filter(|c| c.written.contains_key(&page))
            .count() as u64;
        assert_eq!(w.rm.golden_share_count(g, page), N as u64 - copies);
    }
    let copied: u64 = w.clones.iter().map(|c| c.written.len() as u64).sum();
    assert!(copied > 50, "the run made copies ({copied})");
    assert!(w.clones[5].quota_left == 0, "clone 5 exhausted its quota");
    let stats = w.rm.mem_stats(w.clones[0].vmid).unwrap();
    assert_eq!(stats.cow_copied_pages, w.clones[0].written.len() as u64);
    assert_eq!(
        stats.golden_mapped_pages,
        M - w.clones[0].written.len() as u64
    );
}

#[test]
fn clone_of_a_clone_unmap_after_cow_and_teardown() {
    let pages = 600u64;
    let ops: Vec<Op> = (0..60u64)
        .map(|i| (0, i * 7, i * 13, 100, true, i as u8))
        .collect();
    let base_rm = default_rm();
    let base = held(&base_rm);
    drop(base_rm);
    let mut w = run(2, pages, &[500], &ops, 11);
    assert_eq!(held(&w.rm) - base, pages + 60, "image + clone 0's copies");
    // Seal clone 0's view (golden pages it kept + its copies) as a new image.
    let c0 = w.clones[0].vmid;
    let view: Vec<u8> = (0..pages).flat_map(|p| w.expect(0, p)).collect();
    let (g2, _) =
        w.rm.golden_seal_vm(HLOS, c0, &[(CLONE_IPA, pages * PAGE)])
            .unwrap();
    check(&w.rm);
    assert_eq!(w.rm.golden(g2).unwrap().size, pages * PAGE);
    // Clone 0 lost the range; give it the new image back, copy-on-write.
    let mut buf = [0u8; 1];
    assert!(w.rm.vm_read(c0, CLONE_IPA, &mut buf).is_err());
    w.rm.golden_map(
        HLOS,
        MapParams::cow(g2, c0, 0, CLONE_IPA, pages * PAGE, w.clones[0].pool),
    )
    .unwrap();
    w.clones[0].image = view.clone();
    w.clones[0].written.clear();
    w.clones[0].quota_left = 500;
    // A third VM clones the clone.
    let c2 = alloc_vm(&mut w.rm);
    let pool = w.rm.gmem_create(HLOS, 100 * PAGE, 0, c2).unwrap();
    w.rm.golden_map(
        HLOS,
        MapParams::cow(g2, c2, 0, CLONE_IPA, pages * PAGE, pool),
    )
    .unwrap();
    w.clones.push(Clone {
        vmid: c2,
        image: view,
        written: HashMap::new(),
        pool,
        quota_left: 100,
    });
    check(&w.rm);
    for i in 0..40u64 {
        w.write(2, i * 11 % pages, 5, &[0xC2; 30]);
        w.write(0, i * 5 % pages, 9, &[0xC0; 3]);
        check(&w.rm);
    }
    w.verify_all(pages);
    // Unmap after CoW: the middle of clone 2's mapping, copies included.
    let before = w.rm.gmem(pool).unwrap().used_pages();
    let copies_inside = w.clones[2]
        .written
        .keys()
        .filter(|p| (100..200).contains(*p))
        .count() as u64;
    assert!(copies_inside > 0);
    let g2_id = g2;
    w.rm.golden_unmap(HLOS, g2_id, c2, CLONE_IPA + 100 * PAGE, 100 * PAGE)
        .unwrap();
    check(&w.rm);
    assert_eq!(
        w.rm.gmem(pool).unwrap().used_pages(),
        before - copies_inside
    );
    let r = w.rm.vm_read(c2, CLONE_IPA + 150 * PAGE, &mut buf);
    assert!(matches!(
        r,
        Err(AccessError::Fault {
            outcome: FaultOutcome::Abort(Unserved::Unmapped),
            ..
        })
    ));
    // Both ends of the cut still work.
    w.read(2, 99, 0, PAGE);
    w.read(2, 200, 0, PAGE);
    // Mapped again, the range shows the image, not the old copies.
    w.rm.golden_map(
        HLOS,
        MapParams::cow(g2, c2, 100 * PAGE, CLONE_IPA + 100 * PAGE, 100 * PAGE, pool),
    )
    .unwrap();
    w.clones[2].written.retain(|p, _| !(100..200).contains(p));
    w.verify_all(pages);
    check(&w.rm);
    // Release is refused while mapped; teardown returns every page.
    assert_eq!(
        w.rm.golden_release(HLOS, g2),
        Err(gunyah_rm_abi::RmError::MemInuse)
    );
    for c in &w.clones {
        call(&mut w.rm, VM_DEALLOC, c.vmid);
        check(&w.rm);
    }
    let g1 = 0; // the first image sealed in a fresh RM
    w.rm.golden_release(HLOS, g2).unwrap();
    w.rm.golden_release(HLOS, g1).unwrap();
    check(&w.rm);
    // Only the template's (now empty) records remain: every page is back.
    assert_eq!(held(&w.rm), base);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_ops_match_the_model(
        ops in prop::collection::vec(
            (0usize..3, 0u64..40, 0u64..4096, 0u64..200, any::<bool>(), any::<u8>()),
            1..60,
        ),
        quota in prop::collection::vec(0u64..6, 1..3),
    ) {
        let mut w = run(3, 40, &quota, &ops, 3);
        w.verify_all(40);
    }
}

#[test]
fn stop_vm_policy_and_no_leak_on_refusal() {
    use gunyah_rm::config::FaultAction;
    let mut rng = Rng(5);
    let mut rm = default_rm();
    let image = random_contents(&mut rng, 16);
    let (_t, g) = sealed_template(&mut rm, &image);
    let vm = alloc_vm(&mut rm);
    let pool = rm.gmem_create(HLOS, 8 * PAGE, 0, vm).unwrap();
    let mut p = MapParams::cow(g, vm, 0, CLONE_IPA, 16 * PAGE, pool);
    p.cow_quota = Some(1);
    p.fault_action = FaultAction::StopVm;
    rm.golden_map(HLOS, p).unwrap();
    assert_eq!(rm.vm_write(vm, CLONE_IPA, b"a"), Ok(1));
    let used = rm.platform().partition_usage();
    let before = rm.snapshot();
    // The mapping's own copy quota (1) is exhausted although the pool has room.
    // The VM is not running (LOAD), so it cannot be stopped: abort instead.
    let r = rm.handle_access_fault(vm, CLONE_IPA + PAGE, gunyah_stage2::Access::Write);
    assert_eq!(
        r,
        FaultOutcome::Abort(Unserved::QuotaExhausted { gmem: pool })
    );
    assert_eq!(rm.platform().partition_usage(), used);
    let after = rm.snapshot();
    assert_eq!(before.tables, after.tables, "no mapping changed");
    check(&rm);
}

#[test]
fn config_mapping_digest_quota_and_exec() {
    use gunyah_rm::config::{FaultAction, GoldenMode, ResolvedMapping};
    use gunyah_rm::AddressSpaces;
    let mut rng = Rng(9);
    let mut rm = default_rm();
    let image = random_contents(&mut rng, 16);
    let (_t, g) = sealed_template(&mut rm, &image);
    let digest = rm.golden(g).unwrap().digest;
    let vm = alloc_vm(&mut rm);
    let pool = rm.gmem_create(HLOS, 64 * PAGE, 0, vm).unwrap();
    let mut m = ResolvedMapping {
        template: 0,
        golden_name: "zygote-golden".into(),
        golden_size: 16 * PAGE,
        offset: 4 * PAGE,
        size: 8 * PAGE,
        ipa: CLONE_IPA,
        mode: GoldenMode::CopyOnWrite { quota_pages: 2 },
        fault_action: FaultAction::InjectAbort,
        executable: true,
        digest: Some([0x11; 32]),
    };
    let before = rm.snapshot();
    assert_eq!(
        rm.golden_map(HLOS, MapParams::from_config(g, vm, &m, Some(pool))),
        Err(gunyah_rm_abi::RmError::ValidateFailed)
    );
    assert_eq!(before, rm.snapshot(), "a refused mapping changes nothing");
    m.digest = Some(digest);
    rm.golden_map(HLOS, MapParams::from_config(g, vm, &m, Some(pool)))
        .unwrap();
    check(&rm);
    let l = rm.platform().query(vm, CLONE_IPA).unwrap();
    assert_eq!(l.rights, Rights::RX);
    // Offset 4 pages into the image.
    let mut b = [0u8; 16];
    rm.vm_read(vm, CLONE_IPA, &mut b).unwrap();
    assert_eq!(b[..], image[4 * PAGE as usize..4 * PAGE as usize + 16]);
    // The mapping's own quota (2 copies) applies although the pool has 64 pages.
    assert_eq!(rm.vm_write(vm, CLONE_IPA, b"a"), Ok(1));
    assert_eq!(rm.vm_write(vm, CLONE_IPA + PAGE, b"b"), Ok(1));
    let r = rm.vm_write(vm, CLONE_IPA + 2 * PAGE, b"c");
    assert!(matches!(
        r,
        Err(AccessError::Fault {
            outcome: FaultOutcome::Abort(Unserved::QuotaExhausted { .. }),
            ..
        })
    ));
    // Copies stay executable; golden pages never become writable.
    assert_eq!(
        rm.platform().query(vm, CLONE_IPA).unwrap().rights,
        Rights::RWX
    );
    assert_eq!(
        rm.platform()
            .query(vm, CLONE_IPA + 2 * PAGE)
            .unwrap()
            .rights,
        Rights::RX
    );
    check(&rm);
    // A read-only config mapping never copies.
    m.mode = GoldenMode::ReadOnly;
    m.ipa = CLONE_IPA + 0x100_0000;
    rm.golden_map(HLOS, MapParams::from_config(g, vm, &m, Some(pool)))
        .unwrap();
    let r = rm.vm_write(vm, m.ipa, b"x");
    assert!(matches!(
        r,
        Err(AccessError::Fault {
            outcome: FaultOutcome::Abort(Unserved::NoCow),
            ..
        })
    ));
    check(&rm);
}

#[test]
fn simulator_whole_page_copy() {
    let mut rm = default_rm();
    let p = rm.platform_mut();
    let (a, b, c) = (0x4000_0000u64, 0x4000_1000u64, 0x4000_2000u64);
    let data: Vec<u8> = (0..PAGE).map(|i| (i * 7) as u8).collect();
    assert!(p.write(a, &data));
    assert!(p.write(b, &[9; 100]));
    // Whole page over a resident page, then over an absent one.
    assert!(p.copy(b, a, PAGE));
    assert!(p.copy(c, a, PAGE));
    for pa in [a, b, c] {
        let mut buf = vec![0u8; PAGE as usize];
        assert!(p.read(pa, &mut buf));
        assert_eq!(buf, data);
    }
    // A zero (never written) page copies as zeros; a page onto itself is a no-op.
    assert!(p.copy(b, 0x4000_5000, PAGE));
    assert!(p.copy(a, a, PAGE));
    let mut buf = vec![1u8; PAGE as usize];
    assert!(p.read(b, &mut buf));
    assert!(buf.iter().all(|&x| x == 0));
    assert!(p.read(a, &mut buf));
    assert_eq!(buf, data);
    // Dropped pages are reused and read back as zeros when rewritten in part.
    assert!(p.zero(c, PAGE));
    assert!(p.write(c + 8, &[5]));
    let mut buf = [1u8; 16];
    assert!(p.read(c, &mut buf));
    assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    // Not memory: refused.
    assert!(!p.copy(0x10, a, PAGE));
}

#[test]
fn a_split_mapping_shares_its_copy_quota() {
    let mut rng = Rng(13);
    let mut rm = default_rm();
    let image = random_contents(&mut rng, 8);
    let (_t, g) = sealed_template(&mut rm, &image);
    let vm = alloc_vm(&mut rm);
    let pool = rm.gmem_create(HLOS, 64 * PAGE, 0, vm).unwrap();
    let mut p = MapParams::cow(g, vm, 0, CLONE_IPA, 8 * PAGE, pool);
    p.cow_quota = Some(4);
    rm.golden_map(HLOS, p).unwrap();
    assert_eq!(rm.vm_write(vm, CLONE_IPA + 6 * PAGE, b"x"), Ok(1));
    // Unmapping the first half splits the mapping: 3 copies of headroom are
    // shared by size (the kept half gets 1), the copy stays with its half.
    rm.golden_unmap(HLOS, g, vm, CLONE_IPA, 4 * PAGE).unwrap();
    check(&rm);
    let m = rm.golden_mappings(vm).next().unwrap();
    assert_eq!(
        (m.ipa, m.copies(), m.cow_quota()),
        (CLONE_IPA + 4 * PAGE, 1, Some(2))
    );
    assert_eq!(rm.vm_write(vm, CLONE_IPA + 5 * PAGE, b"y"), Ok(1));
    let r = rm.vm_write(vm, CLONE_IPA + 7 * PAGE, b"z");
    assert!(matches!(
        r,
        Err(AccessError::Fault {
            outcome: FaultOutcome::Abort(Unserved::QuotaExhausted { .. }),
            ..
        })
    ));
    check(&rm);
}
