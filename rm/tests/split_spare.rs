//! Spare split tables (docs/PERFORMANCE.md, "CoW fault"): a copy-on-write fault that splits a
//! 2 MiB or 1 GiB golden block takes its table from the VM's spare tables, which the RM makes up
//! when it drains its outbox (off the fault path). With no spare table the fault allocates as
//! before; short of memory, spare tables are given back before a fault fails; teardown returns
//! them; the isolation checker counts them. The same on the concurrent fault path.

use gunyah_rm::concurrent::ConcurrentRm;
use gunyah_rm::cow::FaultOutcome;
use gunyah_rm::golden::MapParams;
use gunyah_rm::sim::{sim_rm, SimConfig, SimPlatform};
use gunyah_rm::stage2_spaces::SPARE_MIN;
use gunyah_rm::{PhysMem, Rm, RmConfig};
use gunyah_stage2::{Access, SplitCounters};

mod common;
use common::golden_setup::{alloc_vm, seal_lent};

const HLOS: u16 = 3;
const PAGE: u64 = 4096;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;
const SRC: u64 = 0x4000_0000;
/// 1 GiB aligned: the image maps as 1 GiB blocks.
const CLONE_IPA: u64 = 0x80_0000_0000;
const VM_DEALLOC: u32 = 0x5600_0002;

fn check(rm: &Rm<SimPlatform>) {
    let v = rm.check_isolation();
    assert!(v.is_empty(), "isolation violations: {v:#?}");
}

/// An RM with `vms` clones mapping a 2 GiB image copy-on-write (two 1 GiB blocks each), and
/// `partition_pages` partition pages.
fn setup(vms: usize, partition_pages: u64) -> (Rm<SimPlatform>, Vec<u16>) {
    let sim = SimConfig {
        hlos_ram: (SRC, 4 * G1),
        partition_base: 0x1_4000_0000,
        partition_pages,
        ipa_bits: 40,
    };
    let mut rm = sim_rm(sim, RmConfig::default()).unwrap();
    let clones: Vec<u16> = (0..vms).map(|_| alloc_vm(&mut rm)).collect();
    let g = seal_lent(&mut rm, clones[0], SRC, 2 * G1);
    for &v in &clones {
        let pool = rm.gmem_create(HLOS, 256 * PAGE, 0, v).unwrap();
        rm.golden_map(HLOS, MapParams::cow(g, v, 0, CLONE_IPA, 2 * G1, pool))
            .unwrap();
    }
    check(&rm);
    (rm, clones)
}

fn counters(rm: &Rm<SimPlatform>, vm: u16) -> SplitCounters {
    rm.platform().space(vm).unwrap().split_counters()
}

fn spare(rm: &Rm<SimPlatform>, vm: u16) -> usize {
    rm.platform().space(vm).unwrap().spare_tables()
}

fn write(rm: &mut Rm<SimPlatform>, vm: u16, ipa: u64) {
    let o = rm.handle_access_fault(vm, ipa, Access::Write);
    assert!(matches!(o, FaultOutcome::Copied { .. }), "{ipa:#x}: {o:?}");
}

#[test]
fn a_split_takes_its_table_from_the_spare_made_up_at_drain() {
    let (mut rm, c) = setup(2, 4096);
    let vm = c[0];
    // No spare table yet: the first fault in a 1 GiB block allocates its two tables.
    write(&mut rm, vm, CLONE_IPA + 3 * PAGE);
    assert_eq!(
        counters(&rm, vm),
        SplitCounters {
            from_spare: 0,
            allocated: 2
        }
    );
    assert_eq!(spare(&rm, vm), 0);
    // The drain makes up for them, off the fault path; the other VM did not split: none.
    let _ = rm.drain_outgoing();
    assert_eq!(spare(&rm, vm), SPARE_MIN.max(2));
    assert_eq!(spare(&rm, c[1]), 0);
    check(&rm);
    // The next fault in another 2 MiB block of that 1 GiB takes its table from the spare.
    write(&mut rm, vm, CLONE_IPA + 5 * M2 + 7 * PAGE);
    assert_eq!(
        counters(&rm, vm),
        SplitCounters {
            from_spare: 1,
            allocated: 2
        }
    );
    assert_eq!(spare(&rm, vm), SPARE_MIN.max(2) - 1);
    // A fault in the other 1 GiB block takes the last one and allocates the second (the
    // fallback), and still copies.
    write(&mut rm, vm, CLONE_IPA + G1 + 9 * M2);
    assert_eq!(
        counters(&rm, vm),
        SplitCounters {
            from_spare: 2,
            allocated: 3
        }
    );
    assert_eq!(spare(&rm, vm), 0);
    // A fault in a split block takes nothing.
    write(&mut rm, vm, CLONE_IPA + 5 * M2 + 8 * PAGE);
    assert_eq!(
        counters(&rm, vm).from_spare + counters(&rm, vm).allocated,
        5
    );
    // The drain makes up for the three tables taken since the last one.
    let _ = rm.drain_outgoing();
    assert_eq!(spare(&rm, vm), 3);
    check(&rm);
    // The copies read back.
    let mut b = [0u8; 8];
    rm.vm_read(vm, CLONE_IPA + G1 + 9 * M2, &mut b).unwrap();
}

#[test]
fn teardown_returns_the_spare_tables() {
    let (mut rm, c) = setup(2, 4096);
    let before = rm.platform().partition_usage();
    let u0 = before.total - before.free;
    for (k, &vm) in c.iter().enumerate() {
        for j in 0..4 {
            write(&mut rm, vm, CLONE_IPA + (j * 3 + k as u64) * M2);
        }
    }
    let _ = rm.drain_outgoing();
    assert!(c.iter().all(|&v| spare(&rm, v) >= SPARE_MIN));
    assert!(rm.platform().partition_usage().tables >= before.tables + 2 * SPARE_MIN as u64);
    check(&rm);
    let tables_of_c1 = {
        let s = rm.platform().space(c[1]).unwrap();
        (s.table_pages() + s.spare_tables()) as u64
    };
    let held_before = {
        let u = rm.platform().partition_usage();
        u.total - u.free
    };
    // Deallocating the second clone frees its copies, its tables and its spare tables.
    let mut p = c[1].to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    rm.handle_request(HLOS, 1, VM_DEALLOC, &p);
    rm.run_deferred();
    let _ = rm.drain_outgoing();
    assert!(rm.platform().space(c[1]).is_none());
    check(&rm);
    let u = rm.platform().partition_usage();
    // Its 4 copies, its pool's other records aside: at least its tables went back.
    assert!(
        held_before - (u.total - u.free) >= tables_of_c1 + 4,
        "{held_before} -> {}, tables {tables_of_c1}",
        u.total - u.free
    );
    assert!(u.total - u.free >= u0);
}

/// Short of pages, a fault gets the spare tables back (of any VM) rather than fail.
#[test]
fn spare_tables_are_given_up_for_a_fault() {
    let (mut rm, c) = setup(2, 4096);
    write(&mut rm, c[0], CLONE_IPA);
    write(&mut rm, c[1], CLONE_IPA);
    let _ = rm.drain_outgoing();
    let held = spare(&rm, c[0]) + spare(&rm, c[1]);
    assert_eq!(held, 2 * SPARE_MIN.max(2));
    // Take every free partition page.
    let mut hoard = Vec::new();
    while let Some(pa) = rm.platform_mut().alloc_page() {
        hoard.push(pa);
    }
    // A fault in a split table needs one page: the spare tables give it.
    write(&mut rm, c[0], CLONE_IPA + PAGE);
    assert_eq!(spare(&rm, c[0]) + spare(&rm, c[1]), 0);
    // The rest of them too: a fault that splits needs a page and a table, none left, refused
    // (as without spare tables).
    while let Some(pa) = rm.platform_mut().alloc_page() {
        hoard.push(pa);
    }
    let o = rm.handle_access_fault(c[1], CLONE_IPA + 11 * M2, Access::Write);
    assert!(!o.made_page(), "{o:?}");
    for pa in hoard {
        rm.platform_mut().free_page(pa);
    }
    let _ = rm.drain_outgoing();
    check(&rm);
    write(&mut rm, c[1], CLONE_IPA + 11 * M2);
    check(&rm);
}

/// The concurrent fault path (`ConcurrentRm`, which the QEMU board uses) takes split tables
/// from the spare tables too, and its exclusive sections' drain makes them up.
#[test]
fn the_concurrent_path_takes_spare_tables() {
    let (rm, c) = setup(2, 4096);
    let crm = ConcurrentRm::new(rm);
    let vm = c[0];
    let fault = |ipa: u64| crm.handle_access_fault(vm, ipa, Access::Write);
    assert!(fault(CLONE_IPA + 4 * M2).made_page());
    crm.exclusive(|rm| {
        assert_eq!(counters(rm, vm).allocated, 2);
        let _ = rm.drain_outgoing();
        assert_eq!(spare(rm, vm), SPARE_MIN.max(2));
    });
    std::thread::scope(|s| {
        s.spawn(|| assert!(fault(CLONE_IPA + 6 * M2).made_page()));
        s.spawn(|| {
            assert!(crm
                .handle_access_fault(c[1], CLONE_IPA, Access::Write)
                .made_page())
        });
    });
    assert_eq!(crm.exclusive_faults(), 0);
    let rm = crm.into_inner();
    assert_eq!(
        counters(&rm, vm),
        SplitCounters {
            from_spare: 1,
            allocated: 2
        }
    );
    assert_eq!(spare(&rm, vm), SPARE_MIN.max(2) - 1);
    check(&rm);
}

/// The COW_BROKENs of a drain, in the order they go out: (VM, its IPAs).
fn cow_broken_in_order(out: Vec<(u16, Vec<u8>)>) -> Vec<(u16, Vec<u64>)> {
    common::decode_outgoing(out)
        .into_iter()
        .filter(|m| m.msg_id == common::N_COW_BROKEN)
        .map(|m| {
            assert_eq!(m.to, HLOS);
            let vm = u16::from_le_bytes([m.payload[0], m.payload[1]]);
            let n = u32::from_le_bytes(m.payload[4..8].try_into().unwrap()) as usize;
            assert_eq!(m.payload.len(), 8 + 8 * n);
            let ipas = m.payload[8..]
                .chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (vm, ipas)
        })
        .collect()
}

/// The drain visits only the VMs with pending copies (a set marked on the fault path): each
/// such VM's COW_BROKEN goes out exactly once, in VMID order whatever order the faults came in,
/// a VM without copies gets none, and the next drain sends nothing again. The spare tables
/// likewise: only the VMs that split get theirs made up.
#[test]
fn a_drain_sends_each_dirty_vms_cow_broken_once_in_vmid_order() {
    let (mut rm, c) = setup(4, 4096);
    let _ = rm.drain_outgoing();
    // Faults in c[3], c[0], c[3] again, c[2]; none in c[1].
    write(&mut rm, c[3], CLONE_IPA + 5 * PAGE);
    write(&mut rm, c[0], CLONE_IPA + M2);
    write(&mut rm, c[3], CLONE_IPA + 6 * PAGE);
    write(&mut rm, c[2], CLONE_IPA + G1);
    let got = cow_broken_in_order(rm.drain_outgoing());
    let mut want = vec![
        (c[0], vec![CLONE_IPA + M2]),
        (c[2], vec![CLONE_IPA + G1]),
        (c[3], vec![CLONE_IPA + 5 * PAGE, CLONE_IPA + 6 * PAGE]),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(spare(&rm, c[1]), 0);
    assert!([c[0], c[2], c[3]]
        .iter()
        .all(|&v| spare(&rm, v) >= SPARE_MIN));
    assert!(cow_broken_in_order(rm.drain_outgoing()).is_empty());
    // A VM marked again after its drain is sent again, once.
    write(&mut rm, c[1], CLONE_IPA + 9 * PAGE);
    write(&mut rm, c[1], CLONE_IPA + 10 * PAGE);
    assert_eq!(
        cow_broken_in_order(rm.drain_outgoing()),
        [(c[1], vec![CLONE_IPA + 9 * PAGE, CLONE_IPA + 10 * PAGE])]
    );
    check(&rm);
}

/// A VM destroyed with copies pending (its COW_BROKEN not yet sent, its spare tables not yet
/// made up): the drain sends nothing for it and does not bring back a record or an address
/// space for its VMID; a new VM given the same VMID starts with nothing pending.
#[test]
fn a_destroyed_vms_pending_copies_do_not_resurrect_it() {
    let (mut rm, c) = setup(2, 4096);
    let _ = rm.drain_outgoing();
    write(&mut rm, c[1], CLONE_IPA + 3 * M2);
    write(&mut rm, c[0], CLONE_IPA + 3 * M2);
    let mut p = c[1].to_le_bytes().to_vec();
    p.extend_from_slice(&[0, 0]);
    rm.handle_request(HLOS, 1, VM_DEALLOC, &p);
    rm.run_deferred();
    let got = cow_broken_in_order(rm.drain_outgoing());
    assert_eq!(got, [(c[0], vec![CLONE_IPA + 3 * M2])]);
    assert!(rm.platform().space(c[1]).is_none());
    assert!(rm.vms().get(c[1]).is_none());
    check(&rm);
    // The VMID again: nothing pending from the old VM.
    let again = alloc_vm(&mut rm);
    assert_eq!(again, c[1]);
    assert!(cow_broken_in_order(rm.drain_outgoing()).is_empty());
    assert_eq!(spare(&rm, again), 0);
    check(&rm);
}
