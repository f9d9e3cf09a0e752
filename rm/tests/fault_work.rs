//! How much work one copy-on-write fault does, counted rather than timed (issue 10: "a CoW
//! fault does about a dozen B-tree operations and walks the tables four times"). Every seam
//! call the RM makes during a fault is counted by a wrapping platform, and every heap
//! allocation by a counting allocator; the counts must be the minimum the design promises —
//! one walk, one copy allocation, one in-place replace, nothing else on the seam — and must
//! not grow with the number of VMs, the image size or where in the image the faults land.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{SimConfig, SimPlatform};
use gunyah_rm::{Rm, RmConfig};
use gunyah_stage2::Access;

mod common;
use common::counting::Counting;
use common::golden_setup::{alloc_vm, seal_lent};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Counts heap allocations of the current thread (tests run on their own threads).
struct CountingAlloc;

// SAFETY: forwards to the system allocator unchanged; the count is a thread-local Cell
// without a destructor, so touching it never allocates or recurses.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
const SRC: u64 = 0x4000_0000 + 64 * MIB;
const CLONE_IPA: u64 = 0x1_0000_0000;

/// What `faults` CoW faults per VM cost: seam calls per method and heap allocations, summed
/// over every fault, for `vms` clones of an image of `image` bytes; `spread` puts the faults
/// as far apart in the image as possible (each in its own block), else on consecutive pages.
struct Work {
    faults: u64,
    calls: BTreeMap<&'static str, u64>,
    allocs: u64,
}

/// An RM on a simulated platform with 256 MiB of HLOS RAM whose calls (and the heap
/// allocations inside them) are counted.
fn counting_rm() -> Rm<Counting<SimPlatform>> {
    let sim = SimConfig {
        hlos_ram: (0x4000_0000, 256 * MIB),
        ..SimConfig::default()
    };
    let plat = Counting::with_probe(SimPlatform::new(sim.clone()).expect("platform"), allocs);
    let cfg = RmConfig {
        hlos_ram: Some((sim.hlos_ram.0, sim.hlos_ram.0, sim.hlos_ram.1)),
        ..RmConfig::default()
    };
    Rm::new(plat, cfg).expect("rm")
}

fn measure(vms: usize, image: u64, faults: u64, spread: bool) -> Work {
    let mut rm = counting_rm();
    let template = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, template, SRC, image);
    let mut clones = Vec::new();
    for _ in 0..vms {
        let vm = alloc_vm(&mut rm);
        let pool = rm.gmem_create(HLOS, faults * PAGE, 0, vm).expect("pool");
        rm.golden_map(HLOS, MapParams::cow(g, vm, 0, CLONE_IPA, image, pool))
            .expect("map");
        clones.push(vm);
    }
    let pages = image / PAGE;
    let stride = if spread { pages / faults } else { 1 };
    assert!(stride >= 1 && faults <= pages);
    // Warm up what is paid once per process rather than per fault (the COW_BROKEN batch's
    // buffer): one fault in a VM the measurement does not use.
    let warm = alloc_vm(&mut rm);
    let pool = rm.gmem_create(HLOS, PAGE, 0, warm).expect("pool");
    rm.golden_map(HLOS, MapParams::cow(g, warm, 0, CLONE_IPA, image, pool))
        .expect("map");
    assert!(rm
        .handle_access_fault(warm, CLONE_IPA, Access::Write)
        .made_page());
    rm.flush_cow_broken();
    rm.platform().take();
    rm.platform().take_inner_allocs();

    let mut work = Work {
        faults: 0,
        calls: BTreeMap::new(),
        allocs: 0,
    };
    for &vm in &clones {
        for i in 0..faults {
            let ipa = CLONE_IPA + i * stride * PAGE + 8;
            let before = allocs();
            let out = rm.handle_access_fault(vm, ipa, Access::Write);
            // The RM's own allocations: the simulator's copy buffer is the platform's business.
            work.allocs += allocs() - before - rm.platform().take_inner_allocs();
            assert!(
                matches!(out, FaultOutcome::Copied { .. }),
                "fault {i} of VM {vm}: {out:?}"
            );
            work.faults += 1;
            for (k, v) in rm.platform().take() {
                *work.calls.entry(k).or_default() += v;
            }
        }
        // The batch is sent between faults, as a transport does; not part of the fault.
        rm.flush_cow_broken();
        rm.platform().take();
        rm.platform().take_inner_allocs();
    }
    assert!(rm.check_isolation().is_empty());
    work
}

/// Every fault: exactly one walk, one copy allocation, one replace at the walked entry, and
/// no other seam call (no query, no plan, no map/unmap, no zeroing, no leaf iteration).
fn assert_minimal(w: &Work, what: &str) {
    let want: BTreeMap<&'static str, u64> = [
        ("walk", w.faults),
        ("alloc_page_copy", w.faults),
        ("replace_page_at", w.faults),
    ]
    .into_iter()
    .collect();
    assert_eq!(w.calls, want, "{what}: seam calls over {} faults", w.faults);
}

#[test]
fn a_cow_fault_is_one_walk_one_copy_one_replace() {
    for (vms, image, spread) in [
        (1, MIB, false),
        (1, MIB, true),
        (4, 128 * MIB, false),
        (4, 128 * MIB, true),
    ] {
        let w = measure(vms, image, 32, spread);
        assert_minimal(
            &w,
            &format!("{vms} VMs, {} MiB, spread {spread}", image / MIB),
        );
    }
}

#[test]
fn fault_bookkeeping_does_not_grow_with_vms_image_size_or_spread() {
    // Heap allocations per fault: the same for one VM with a small image as for many VMs
    // with a large one and faults spread over it (the state lookups are O(1) records, not
    // per-page B-tree inserts).
    let base = measure(1, MIB, 64, false);
    let per_fault = |w: &Work| w.allocs as f64 / w.faults as f64;
    for (vms, image, spread) in [(8, 128 * MIB, false), (8, 128 * MIB, true)] {
        let w = measure(vms, image, 64, spread);
        assert_minimal(&w, "large");
        assert!(
            per_fault(&w) <= per_fault(&base) + 0.05,
            "{vms} VMs, {} MiB, spread {spread}: {:.2} allocations per fault, {:.2} at 1 VM / 1 MiB",
            image / MIB,
            per_fault(&w),
            per_fault(&base)
        );
    }
    // And small in absolute terms: nothing but the COW_BROKEN batch's amortised growth (a Vec
    // of 4, 8, .. 64 entries over 64 faults: 5 allocations).
    assert!(
        per_fault(&base) <= 0.125,
        "{:.2} heap allocations per fault",
        per_fault(&base)
    );
}

#[test]
fn a_cow_fault_allocates_nothing_once_its_vm_sent_a_batch() {
    // The COW_BROKEN batch keeps its buffer when it is sent: after a VM's first batch went out,
    // its faults (up to the size that batch reached) take no heap allocation at all, on the
    // fault path or in the RM.
    let mut rm = counting_rm();
    let template = alloc_vm(&mut rm);
    let g = seal_lent(&mut rm, template, SRC, MIB);
    let vm = alloc_vm(&mut rm);
    let pool = rm.gmem_create(HLOS, 64 * PAGE, 0, vm).expect("pool");
    rm.golden_map(HLOS, MapParams::cow(g, vm, 0, CLONE_IPA, MIB, pool))
        .expect("map");
    let fault = |rm: &mut Rm<Counting<SimPlatform>>, i: u64| {
        let out = rm.handle_access_fault(vm, CLONE_IPA + i * PAGE, Access::Write);
        assert!(
            matches!(out, FaultOutcome::Copied { .. }),
            "fault {i}: {out:?}"
        );
    };
    for i in 0..32 {
        fault(&mut rm, i);
    }
    rm.flush_cow_broken();
    rm.platform().take_inner_allocs();
    let mut taken = 0;
    for i in 32..64 {
        let before = allocs();
        fault(&mut rm, i);
        taken += allocs() - before - rm.platform().take_inner_allocs();
    }
    assert_eq!(
        taken, 0,
        "heap allocations over 32 CoW faults after a batch was sent"
    );
    // And the second batch is sent as the first was.
    let sent = rm.drain_outgoing().len();
    assert!(sent > 0, "the second batch was not sent");
}
