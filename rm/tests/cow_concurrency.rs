//! Concurrent copy-on-write: several vCPU threads walk clones' real
//! stage-2 tables without the RM's lock (as the MMU does) and fault into
//! the RM when a write hits a golden page: the RM behind a mutex (the first
//! test), or [`ConcurrentRm`] (its concurrent fault path; vCPUs of different
//! VMs and of one VM). Each page must be copied exactly once per VM; a vCPU
//! whose fault was already served (by another vCPU, or which saw an entry mid
//! break-before-make) just retries. No timing: the vCPUs of a VM go in step
//! (a barrier per page) so they collide.

use std::sync::{Arc, Barrier, Mutex};

use gunyah_rm::concurrent::ConcurrentRm;
use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{default_rm, SimPlatform};
use gunyah_rm::sim_mmu::SimMmu;
use gunyah_rm::Rm;
use gunyah_stage2::{Access, Fault, FaultKind};

mod common;
use common::golden_setup::{alloc_vm, seal_lent};

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const SRC: u64 = 0x4020_0000;
const IMAGE: u64 = 0x40_0000; // 4 MiB: two 2 MiB blocks in the clone
const CLONE_IPA: u64 = 0x8000_0000;

fn golden_byte(page: u64, off: u64) -> u8 {
    (page as u8).wrapping_mul(31) ^ (off as u8)
}

/// A clone mapping a sealed 4 MiB image copy-on-write. Returns (rm, vmid, golden).
fn setup(pool_pages: u64) -> (Rm<SimPlatform>, u16, u32) {
    let mut rm = default_rm();
    for p in 0..IMAGE / PAGE {
        let bytes: Vec<u8> = (0..PAGE).map(|o| golden_byte(p, o)).collect();
        rm.vm_write(HLOS, SRC + p * PAGE, &bytes).unwrap();
    }
    let vm = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, vm, SRC, IMAGE);
    let pool = rm.gmem_create(HLOS, pool_pages * PAGE, 0, vm).unwrap();
    rm.golden_map(HLOS, MapParams::cow(g, vm, 0, CLONE_IPA, IMAGE, pool))
        .unwrap();
    assert!(rm.check_isolation().is_empty());
    (rm, vm, g)
}

/// The fault a vCPU's write at `ipa` raises, as the platform decodes it
/// (stage 1 off, so the IPA of a permission fault is FAR_EL2 itself).
fn decoded(status: gunyah_stage2::FaultStatus, ipa: u64) -> Fault {
    let hpfar = (ipa >> 12) << 4;
    let f = Fault::decode(status.esr_for(Access::Write), ipa, hpfar).unwrap();
    if f.needs_ipa_resolution() {
        f.with_ipa(ipa)
    } else {
        f
    }
}

#[derive(Debug, Default)]
struct Seen {
    copies: Vec<u64>,
    retries: u64,
    translation_faults: u64,
}

#[test]
fn concurrent_writes_make_exactly_one_copy_per_page() {
    const VCPUS: usize = 4;
    // Hot pages in both blocks: the first copy in a block splits it while
    // other vCPUs walk through it.
    let pages: Vec<u64> = (0..100)
        .map(|i| i * 5)
        .chain((0..100).map(|i| 512 + i * 5))
        .collect();
    let (rm, vm, g) = setup(1024);
    let mmu = SimMmu::for_vm(rm.platform(), vm).unwrap();
    let data = rm.platform().arena().clone();
    let rm = Arc::new(Mutex::new(rm));
    let barrier = Arc::new(Barrier::new(VCPUS));
    let threads: Vec<_> = (0..VCPUS)
        .map(|t| {
            let (rm, mmu, data, barrier, pages) = (
                rm.clone(),
                mmu.clone(),
                data.clone(),
                barrier.clone(),
                pages.clone(),
            );
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                barrier.wait();
                // Every vCPU walks the same pages in the same order, in step, so they collide.
                for &page in &pages {
                    barrier.wait();
                    let ipa = CLONE_IPA + page * PAGE + t as u64 * 8;
                    let mut tries = 0;
                    loop {
                        match mmu.translate(ipa, Access::Write) {
                            Ok(pa) => {
                                assert!(data.lock().write(pa, &[t as u8 + 1; 8]));
                                break;
                            }
                            Err(status) => {
                                let f = decoded(status, ipa);
                                let out = rm.lock().unwrap().handle_fault(vm, &f);
                                match out {
                                    FaultOutcome::Copied { .. } => seen.copies.push(page),
                                    FaultOutcome::Retry => seen.retries += 1,
                                    other => panic!("vCPU {t} page {page}: {other:?}"),
                                }
                                if status.kind == FaultKind::Translation {
                                    // Only a walk racing break-before-make sees
                                    // an invalid entry here; it must retry.
                                    seen.translation_faults += 1;
                                    assert_eq!(out, FaultOutcome::Retry);
                                }
                                tries += 1;
                                assert!(tries < 100, "vCPU {t} never got page {page}");
                            }
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let seen: Vec<Seen> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut rm = Arc::try_unwrap(rm).ok().unwrap().into_inner().unwrap();
    let mut copies: Vec<u64> = seen.iter().flat_map(|s| s.copies.clone()).collect();
    copies.sort();
    let mut want = pages.clone();
    want.sort();
    assert_eq!(copies, want, "exactly one copy per page");
    let retries: u64 = seen.iter().map(|s| s.retries).sum();
    assert_eq!(rm.fault_counters().retries, retries);
    assert_eq!(rm.fault_counters().cow_copies, pages.len() as u64);
    eprintln!(
        "{} copies, {} retries ({} translation faults seen mid break-before-make)",
        copies.len(),
        retries,
        seen.iter().map(|s| s.translation_faults).sum::<u64>()
    );
    assert!(rm.check_isolation().is_empty());
    // Every vCPU's bytes are in the one private copy; the rest is golden.
    for &p in &pages {
        let mut buf = vec![0u8; PAGE as usize];
        rm.vm_read(vm, CLONE_IPA + p * PAGE, &mut buf).unwrap();
        for (o, b) in buf.iter().enumerate() {
            let t = o / 8;
            let want = if t < VCPUS {
                t as u8 + 1
            } else {
                golden_byte(p, o as u64)
            };
            assert_eq!(*b, want, "page {p} offset {o}");
        }
        assert_eq!(rm.golden_share_count(g, p), 0);
    }
    // The golden pages themselves never changed.
    let mut buf = vec![0u8; 16];
    gunyah_rm::PhysMem::read(rm.platform(), SRC + 7 * PAGE, &mut buf);
    assert_eq!(buf, (0..16).map(|o| golden_byte(7, o)).collect::<Vec<_>>());
}

#[test]
fn a_fault_that_raced_break_before_make_retries() {
    let (mut rm, vm, _g) = setup(16);
    let ipa = CLONE_IPA + 3 * PAGE;
    let mmu = SimMmu::for_vm(rm.platform(), vm).unwrap();
    let status = mmu.translate(ipa, Access::Write).unwrap_err();
    assert_eq!(status.kind, FaultKind::Permission);
    assert_eq!(
        status.level,
        Some(2),
        "the golden image is mapped with 2 MiB blocks"
    );
    // vCPU 0's fault is served...
    let first = rm.handle_fault(vm, &decoded(status, ipa));
    assert!(matches!(first, FaultOutcome::Copied { .. }));
    let used = rm.gmem(0).unwrap().used_pages();
    // ...vCPU 1 faulted on the same page before the new entry was visible:
    // with the stale permission fault, and with the translation fault a walk
    // sees while the entry is invalid (break-before-make).
    let stale = rm.handle_fault(vm, &decoded(status, ipa + 8));
    let mid_bbm = decoded(
        gunyah_stage2::FaultStatus::new(FaultKind::Translation, Some(3)),
        ipa + 16,
    );
    assert_eq!(
        mid_bbm.ipa,
        Some(ipa + 16),
        "HPFAR is valid for translation faults"
    );
    let raced = rm.handle_fault(vm, &mid_bbm);
    assert_eq!((stale, raced), (FaultOutcome::Retry, FaultOutcome::Retry));
    assert_eq!(rm.gmem(0).unwrap().used_pages(), used, "no second copy");
    // Both retry and succeed.
    let pa = mmu.translate(ipa + 8, Access::Write).unwrap();
    assert_eq!(Ok(pa + 8), mmu.translate(ipa + 16, Access::Write));
    assert!(rm.check_isolation().is_empty());
}

#[test]
fn decoded_faults_route_by_kind() {
    let (mut rm, vm, _g) = setup(16);
    let ipa = CLONE_IPA + 9 * PAGE;
    // A stage-2 fault on the guest's stage-1 table walk (S1PTW, ESR bit 7) in a
    // golden page is served as a write: the table page is copied.
    let esr = (0x24u64 << 26) | (1 << 7) | 0x0E; // DABT_LOW, S1PTW, permission fault level 2
    let f = Fault::decode(esr, 0x1234, (ipa >> 12) << 4).unwrap();
    assert!(f.s1ptw && f.ipa == Some(ipa | 0x234));
    assert!(matches!(
        rm.handle_fault(vm, &f),
        FaultOutcome::Copied { .. }
    ));
    // A permission fault whose IPA the platform did not resolve is reported.
    let esr = (0x24u64 << 26) | (1 << 6) | 0x0F; // DABT_LOW, WnR, permission fault level 3
    let f = Fault::decode(esr, ipa + PAGE, 0).unwrap();
    assert_eq!(f.ipa, None);
    assert_eq!(rm.handle_fault(vm, &f), FaultOutcome::Report);
    // An alignment fault is not the RM's business.
    let esr = (0x24u64 << 26) | (1 << 6) | 0x21;
    let f = Fault::decode(esr, ipa, (ipa >> 12) << 4).unwrap();
    assert_eq!(rm.handle_fault(vm, &f), FaultOutcome::Report);
    // A fault of an unknown VM is reported.
    let f = decoded(
        gunyah_stage2::FaultStatus::new(FaultKind::Permission, Some(3)),
        ipa,
    );
    assert_eq!(rm.handle_fault(0x9F, &f), FaultOutcome::Report);
    assert!(rm.check_isolation().is_empty());
}

/// `n` clones, each mapping one sealed 4 MiB image copy-on-write with its own pool of
/// `pool_pages`. Returns (rm, the clones, golden).
fn setup_clones(n: usize, pool_pages: u64) -> (Rm<SimPlatform>, Vec<u16>, u32) {
    let (mut rm, first, g) = setup(pool_pages);
    let mut vms = vec![first];
    for _ in 1..n {
        let vm = alloc_vm(&mut rm);
        let pool = rm.gmem_create(HLOS, pool_pages * PAGE, 0, vm).unwrap();
        rm.golden_map(HLOS, MapParams::cow(g, vm, 0, CLONE_IPA, IMAGE, pool))
            .unwrap();
        vms.push(vm);
    }
    let _ = rm.drain_outgoing();
    assert!(rm.check_isolation().is_empty());
    (rm, vms, g)
}

/// COW_BROKEN IPAs per VM in the RM's outgoing packets (all to HLOS).
fn cow_broken(out: Vec<(u16, Vec<u8>)>) -> std::collections::BTreeMap<u16, Vec<u64>> {
    let mut by_vm = std::collections::BTreeMap::<u16, Vec<u64>>::new();
    for m in common::decode_outgoing(out) {
        if m.msg_id != common::N_COW_BROKEN {
            continue;
        }
        assert_eq!(m.to, HLOS);
        let vm = u16::from_le_bytes([m.payload[0], m.payload[1]]);
        let n = u32::from_le_bytes(m.payload[4..8].try_into().unwrap()) as usize;
        assert_eq!(m.payload.len(), 8 + 8 * n);
        let ipas = m.payload[8..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
        by_vm.entry(vm).or_default().extend(ipas);
    }
    by_vm
}

/// `vms` clones with `per_vm` vCPU threads each fault on `pages` through one
/// [`ConcurrentRm`] (no lock of the test's own): every vCPU writes its own 8 bytes of every
/// page, the vCPUs of one VM in step so they collide on each page. Exactly one copy per
/// (VM, page), every vCPU's bytes in it, the records exact, the isolation checker clean.
fn faults_from_threads(vms: usize, per_vm: usize, pages: &[u64]) {
    let (rm, clones, g) = setup_clones(vms, IMAGE / PAGE);
    let mmus: Vec<SimMmu> = clones
        .iter()
        .map(|&vm| SimMmu::for_vm(rm.platform(), vm).unwrap())
        .collect();
    let data = rm.platform().arena().clone();
    let rm = ConcurrentRm::new(rm);
    let barrier = Barrier::new(vms * per_vm);
    let seen: Vec<(usize, Seen)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..vms * per_vm)
            .map(|t| {
                let (v, slot) = (t / per_vm, t % per_vm);
                let (rm, mmu, data, barrier, vm) = (&rm, &mmus[v], &data, &barrier, clones[v]);
                s.spawn(move || {
                    let mut seen = Seen::default();
                    barrier.wait();
                    for &page in pages {
                        barrier.wait();
                        let ipa = CLONE_IPA + page * PAGE + slot as u64 * 8;
                        let mut tries = 0;
                        loop {
                            match mmu.translate(ipa, Access::Write) {
                                Ok(pa) => {
                                    assert!(data.lock().write(pa, &[t as u8 + 1; 8]));
                                    break;
                                }
                                Err(status) => {
                                    match rm.handle_fault(vm, &decoded(status, ipa)) {
                                        FaultOutcome::Copied { .. } => seen.copies.push(page),
                                        FaultOutcome::Retry => seen.retries += 1,
                                        other => panic!("vCPU {t} page {page}: {other:?}"),
                                    }
                                    tries += 1;
                                    assert!(tries < 100, "vCPU {t} never got page {page}");
                                }
                            }
                        }
                    }
                    (v, seen)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(
        rm.exclusive_faults(),
        0,
        "every copy and retry served by the concurrent path"
    );
    let mut rm = rm.into_inner();
    let mut want = pages.to_vec();
    want.sort();
    for (v, &vm) in clones.iter().enumerate() {
        let mut copies: Vec<u64> = seen
            .iter()
            .filter(|(w, _)| *w == v)
            .flat_map(|(_, s)| s.copies.clone())
            .collect();
        copies.sort();
        assert_eq!(copies, want, "VM {vm}: exactly one copy per page");
        let stats = rm.mem_stats(vm).unwrap();
        assert_eq!(stats.cow_copied_pages, pages.len() as u64, "VM {vm}");
        assert_eq!(stats.quota_used_pages, pages.len() as u64, "VM {vm}");
    }
    let retries: u64 = seen.iter().map(|(_, s)| s.retries).sum();
    let c = rm.fault_counters();
    assert_eq!(c.cow_copies, (vms * pages.len()) as u64);
    assert_eq!(c.retries, retries);
    assert_eq!(c.unserved, 0);
    assert!(rm.check_isolation().is_empty());
    // Every copy is announced once, in the order the VM's copies were made (batches of 512
    // sent as they filled, the rest now).
    let broken = cow_broken(rm.drain_outgoing());
    for &vm in &clones {
        let mut ipas = broken.get(&vm).cloned().unwrap_or_default();
        ipas.sort();
        let want: Vec<u64> = want.iter().map(|p| CLONE_IPA + p * PAGE).collect();
        assert_eq!(ipas, want, "COW_BROKEN of VM {vm}");
    }
    for (v, &vm) in clones.iter().enumerate() {
        for &p in pages {
            let mut buf = vec![0u8; PAGE as usize];
            rm.vm_read(vm, CLONE_IPA + p * PAGE, &mut buf).unwrap();
            for (o, b) in buf.iter().enumerate() {
                let slot = o / 8;
                let want = if slot < per_vm {
                    (v * per_vm + slot) as u8 + 1
                } else {
                    golden_byte(p, o as u64)
                };
                assert_eq!(*b, want, "VM {vm} page {p} offset {o}");
            }
        }
    }
    for p in 0..IMAGE / PAGE {
        assert_eq!(
            rm.golden_share_count(g, p),
            vms as u64 - {
                if pages.contains(&p) {
                    vms as u64
                } else {
                    0
                }
            }
        );
    }
}

/// Pages in both 2 MiB blocks of the image (the first copy in each splits it).
fn spread_pages() -> Vec<u64> {
    (0..64)
        .map(|i| i * 7)
        .chain((0..64).map(|i| 512 + i * 7))
        .collect()
}

#[test]
fn vcpus_of_different_vms_fault_at_once() {
    faults_from_threads(4, 1, &spread_pages());
}

#[test]
fn vcpus_of_one_vm_fault_on_the_same_pages_at_once() {
    faults_from_threads(1, 4, &spread_pages());
}

#[test]
fn two_vms_with_two_vcpus_each() {
    faults_from_threads(2, 2, &spread_pages());
}

#[test]
fn a_full_cow_broken_batch_is_sent_from_the_concurrent_path() {
    // 600 copies per VM: the 512th fills the batch and is sent while the vCPUs still fault.
    let pages: Vec<u64> = (0..600).collect();
    faults_from_threads(2, 1, &pages);
}

#[test]
fn requests_between_concurrent_faults_see_exact_records() {
    // A request (VM_MEM_STATS through the RM itself) between faults served by the concurrent
    // path sees every copy made so far; faults the fast path does not serve (quota used up)
    // are refused under the exclusive side with their notification.
    let (rm, clones, _g) = setup_clones(1, 3);
    let vm = clones[0];
    let rm = ConcurrentRm::new(rm);
    for p in 0..3 {
        let out = rm.handle_access_fault(vm, CLONE_IPA + p * PAGE, Access::Write);
        assert!(matches!(out, FaultOutcome::Copied { .. }), "{out:?}");
        let stats = rm.exclusive(|rm| rm.mem_stats(vm).unwrap());
        assert_eq!(stats.cow_copied_pages, p + 1);
        assert_eq!(stats.quota_used_pages, p + 1);
    }
    let out = rm.handle_access_fault(vm, CLONE_IPA + 3 * PAGE, Access::Write);
    assert!(
        matches!(
            out,
            FaultOutcome::Abort(gunyah_rm::cow::Unserved::QuotaExhausted { .. })
        ),
        "{out:?}"
    );
    let msgs = common::decode_outgoing(rm.exclusive(|rm| rm.drain_outgoing()));
    assert!(msgs.iter().any(|m| m.msg_id == common::N_QUOTA_EXHAUSTED));
    // A read of a copy the fast path made is served from the tables: retry.
    assert_eq!(
        rm.handle_access_fault(vm, CLONE_IPA + PAGE, Access::Read),
        FaultOutcome::Retry
    );
    assert_eq!(rm.exclusive_faults(), 1, "only the refused fault");
    let rm = rm.into_inner();
    assert_eq!(rm.fault_counters().cow_copies, 3);
    assert_eq!(rm.fault_counters().retries, 1);
    assert_eq!(rm.fault_counters().unserved, 1);
    assert!(rm.check_isolation().is_empty());
}
