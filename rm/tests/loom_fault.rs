//! A loom model of the concurrent fault path's locking ([`gunyah_rm::concurrent`]), run on the
//! real code: the RM on the host simulator, its locks swapped for loom's (`gunyah_rm::sync`
//! under `--cfg loom`), so loom runs every interleaving of their acquisitions.
//!
//! Two vCPUs of one VM write the same golden gfn while a third thread, a request of HLOS,
//! unmaps the golden range. Whatever the interleaving: at most one copy, exactly one if a vCPU
//! wrote; every write a vCPU made is in the page the unmap took away (no lost write, and no
//! write or copy after the unmap freed the page); every page back in the partition and the
//! isolation checker clean.
//!
//! Run (seconds; a separate target directory keeps the normal build's cache):
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p gunyah-rm --release
//! --test loom_fault` (`cargo xtask test` runs it).
#![cfg(loom)]

use loom::sync::Arc;

use gunyah_rm::concurrent::ConcurrentRm;
use gunyah_rm::cow::{FaultOutcome, Unserved};
use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{small_rm, SimPlatform};
use gunyah_rm::sim_mmu::SimMmu;
use gunyah_rm::{PhysMem, Rm};
use gunyah_stage2::Access;

mod common;
use common::golden_setup::{alloc_vm, seal_lent};

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
/// The golden page, in HLOS RAM of the small simulated machine.
const SRC: u64 = 0x4020_0000;
const CLONE_IPA: u64 = 0x8000_0000;
const GOLDEN: u8 = 0x5A;

/// A clone mapping one sealed golden page copy-on-write. Returns (rm, clone, golden).
fn setup() -> (Rm<SimPlatform>, u16, u32) {
    let mut rm = small_rm();
    rm.vm_write(HLOS, SRC, &[GOLDEN; PAGE as usize]).unwrap();
    let vm = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, vm, SRC, PAGE);
    let pool = rm.gmem_create(HLOS, 4 * PAGE, 0, vm).unwrap();
    rm.golden_map(HLOS, MapParams::cow(g, vm, 0, CLONE_IPA, PAGE, pool))
        .unwrap();
    let _ = rm.drain_outgoing();
    (rm, vm, g)
}

/// What one vCPU did.
#[derive(Debug, Default)]
struct Vcpu {
    copies: u32,
    wrote: bool,
}

/// vCPU `slot` writes its byte at its offset of the gfn: a lock-free walk of the real tables
/// and the store, atomic with respect to requests (as a TLB invalidation waits for accesses in
/// flight: the vCPU's access runs on the exclusive side); a fault goes to the concurrent path.
fn vcpu(rm: &ConcurrentRm<SimPlatform>, mmu: &SimMmu, vm: u16, slot: u64) -> Vcpu {
    let ipa = CLONE_IPA + slot * 8;
    let mut me = Vcpu::default();
    for _ in 0..4 {
        let access = rm.exclusive(|rm| {
            let pa = mmu.translate(ipa, Access::Write)?;
            assert!(rm.platform_mut().write(pa, &[slot as u8 + 1]));
            Ok::<u64, gunyah_stage2::FaultStatus>(pa)
        });
        if access.is_ok() {
            me.wrote = true;
            return me;
        }
        match rm.handle_access_fault(vm, ipa, Access::Write) {
            FaultOutcome::Copied { .. } => me.copies += 1,
            FaultOutcome::Retry => {}
            // The unmap came first: the range is gone.
            FaultOutcome::Abort(Unserved::Unmapped) => return me,
            other => panic!("vCPU {slot}: {other:?}"),
        }
    }
    panic!("vCPU {slot} neither wrote nor was refused");
}

fn big_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> loom::thread::JoinHandle<T> {
    loom::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(f)
        .unwrap()
}

/// Runs of [`model`] (a plain atomic: loom does not see it).
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One run: setup, two vCPU threads and the unmap on this one, then the checks.
fn model() {
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (rm, vm, g) = setup();
    // Free pages plus table pages: the unmap may free the clone's emptied tables too.
    let unused = |rm: &Rm<SimPlatform>| {
        let u = rm.platform().partition_usage();
        u.free + u.tables
    };
    let before = unused(&rm);
    let mmu = SimMmu::for_vm(rm.platform(), vm).unwrap();
    let rm = Arc::new(ConcurrentRm::new(rm));
    let vcpus: Vec<_> = (0..2)
        .map(|slot| {
            let (rm, mmu) = (rm.clone(), mmu.clone());
            big_stack(move || vcpu(&rm, &mmu, vm, slot))
        })
        .collect();
    // HLOS unmaps the range; the page it takes away is what the VM had written by then.
    let taken = rm.exclusive(|rm| {
        let mut page = vec![0u8; PAGE as usize];
        rm.vm_read(vm, CLONE_IPA, &mut page).unwrap();
        rm.golden_unmap(HLOS, g, vm, CLONE_IPA, PAGE).unwrap();
        page
    });
    let done: Vec<Vcpu> = vcpus.into_iter().map(|t| t.join().unwrap()).collect();
    let rm = Arc::try_unwrap(rm).ok().unwrap().into_inner();

    let copies: u32 = done.iter().map(|v| v.copies).sum();
    assert!(copies <= 1, "{done:?}");
    if done.iter().any(|v| v.wrote) {
        assert_eq!(copies, 1, "a write needs exactly one copy: {done:?}");
    }
    assert_eq!(rm.fault_counters().cow_copies, u64::from(copies));
    for (slot, v) in done.iter().enumerate() {
        let want = if v.wrote { slot as u8 + 1 } else { GOLDEN };
        assert_eq!(taken[slot * 8], want, "vCPU {slot}'s write: {done:?}");
    }
    assert!(taken[16..].iter().all(|&b| b == GOLDEN));
    // The copy (if any) went back; nothing is mapped there any more.
    assert_eq!(unused(&rm), before);
    assert!(
        rm.check_isolation().is_empty(),
        "{:?}",
        rm.check_isolation()
    );
    assert!(mmu.translate(CLONE_IPA, Access::Read).is_err());
    let mut b = [0u8; 1];
    PhysMem::read(rm.platform(), SRC, &mut b);
    assert_eq!(b, [GOLDEN], "the golden page never changes");
}

#[test]
fn two_vcpus_fault_one_gfn_while_a_request_unmaps_it() {
    // Everything runs on loom threads with large stacks (the model's main thread has a small
    // coroutine stack, too small for the RM in a debug build).
    loom::model(|| {
        big_stack(model).join().unwrap();
    });
    let runs = RUNS.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("loom explored {runs} interleavings");
    assert!(runs > 1);
}
