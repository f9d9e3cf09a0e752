//! Batches (`plan_batch` / `reserve_tables` / `apply_batch`): the two-phase seam the RM uses
//! for a whole request (Hafnium's prepare/commit). A batch ends with the tables a one-by-one
//! application gives; a refused batch or a failed reservation changes nothing; applying never
//! fails after a successful plan. And `entry` + `replace_page_at`: the copy-on-write replace
//! from the one walk the fault path made.

mod common;
use common::*;
use gunyah_stage2::{Attrs, Error, Leaf, MapFlags, S2Ap, Update};

const PA: u64 = 0x1_0000_0000;
const RW: Attrs = Attrs::normal_rw();
const RO: Attrs = Attrs::normal_ro();

fn leaves(vm: &Vm) -> Vec<Leaf> {
    let mut v = Vec::new();
    vm.for_each_leaf(&mut |l| v.push(*l));
    v
}

/// Assert two leaf lists are equal, reporting only the first difference (lists can be long).
fn same_leaves(a: &Vm, b: &Vm, what: &str) {
    let (la, lb) = (leaves(a), leaves(b));
    if let Some(i) = (0..la.len().max(lb.len())).find(|&i| la.get(i) != lb.get(i)) {
        panic!(
            "{what}: leaves differ at {i} of {}/{}: {:?} vs {:?}",
            la.len(),
            lb.len(),
            la.get(i),
            lb.get(i)
        );
    }
}

/// Plan, reserve and apply `updates` as one batch, checking break-before-make and invariants.
fn batch(vm: &mut Vm, updates: &[Update<'_>]) -> Result<(), Error> {
    checked(vm, |vm| {
        let n = vm.plan_batch(updates)?;
        let r = vm.reserve_tables(n)?;
        vm.apply_batch(r, updates);
        Ok(())
    })
}

/// The same updates one at a time with the single-operation API (maps first, unmaps last).
fn one_by_one(vm: &mut Vm, updates: &[Update<'_>]) {
    for unmaps in [false, true] {
        for u in updates {
            match *u {
                Update::Map {
                    ipa,
                    size,
                    pa,
                    attrs,
                    flags,
                } if !unmaps => vm.map(ipa, size, pa, attrs, flags).unwrap(),
                Update::Modify { ipa, size, f } if !unmaps => {
                    vm.modify_attrs(ipa, size, f).unwrap()
                }
                Update::Unmap { ipa, size } if unmaps => vm.unmap(ipa, size).unwrap(),
                _ => {}
            }
        }
    }
}

fn setup() -> Vm {
    let mut vm = vm();
    vm.map(0, 2 * M2, PA, RO, MapFlags::BLOCKS).unwrap();
    vm.map(G1, K4 * 3, PA + G1, RW, MapFlags::PAGES).unwrap();
    vm.map(2 * G1, G1, PA + 2 * G1, RO, MapFlags::BLOCKS)
        .unwrap();
    vm
}

#[test]
fn a_batch_gives_the_tables_one_by_one_gives() {
    let to_rw = |a: Attrs| a.with_s2ap(S2Ap::ReadWrite);
    let updates = [
        // Unmap one page of a 2 MiB block (split), the first page of a page run, and a whole
        // 1 GiB block; map next to them, into the table the unmaps touch; make half a block RW.
        Update::Unmap {
            ipa: M2 + 5 * K4,
            size: K4,
        },
        Update::Unmap { ipa: G1, size: K4 },
        Update::Map {
            ipa: G1 + 3 * K4,
            size: K4,
            pa: PA + 0x5000_0000,
            attrs: RW,
            flags: MapFlags::PAGES,
        },
        Update::Map {
            ipa: 3 * G1,
            size: M2 * 3,
            pa: PA + 3 * G1,
            attrs: RW,
            flags: MapFlags::BLOCKS,
        },
        Update::Modify {
            ipa: 0,
            size: M2 / 2,
            f: &to_rw,
        },
        Update::Unmap {
            ipa: 2 * G1,
            size: G1,
        },
    ];
    let mut a = setup();
    batch(&mut a, &updates).unwrap();
    let mut b = setup();
    one_by_one(&mut b, &updates);
    same_leaves(&a, &b, "batch vs one by one");
    assert_eq!(a.table_pages(), b.table_pages());
    assert_eq!(
        a.memory().pages_in_use(),
        b.memory().pages_in_use(),
        "spare reserve pages went back"
    );
}

#[test]
fn an_unmap_emptying_a_table_a_map_of_the_batch_uses() {
    // One page mapped in an L3 table; the batch unmaps it and maps its neighbour: the table
    // must survive (maps run first), and nothing leaks.
    let mut vm = vm();
    vm.map(G1, K4, PA, RW, MapFlags::PAGES).unwrap();
    let used = vm.memory().pages_in_use();
    batch(
        &mut vm,
        &[
            Update::Unmap { ipa: G1, size: K4 },
            Update::Map {
                ipa: G1 + K4,
                size: K4,
                pa: PA + K4,
                attrs: RW,
                flags: MapFlags::PAGES,
            },
        ],
    )
    .unwrap();
    assert!(vm.query(G1).is_none());
    assert_eq!(vm.query(G1 + K4).map(|l| l.pa), Some(PA + K4));
    assert_eq!(vm.memory().pages_in_use(), used);
}

#[test]
fn a_refused_batch_changes_nothing() {
    let vm0 = setup();
    let before = snapshot(&vm0);
    let cases: Vec<(Vec<Update<'static>>, Error)> = vec![
        (
            vec![
                Update::Unmap { ipa: G1, size: K4 },
                Update::Unmap {
                    ipa: G1,
                    size: 2 * K4,
                },
            ],
            Error::Overlap { ipa: G1 },
        ),
        (
            vec![Update::Unmap {
                ipa: G1,
                size: 4 * K4,
            }],
            Error::NotMapped { ipa: G1 + 3 * K4 },
        ),
        (
            vec![
                Update::Unmap { ipa: G1, size: K4 },
                Update::Map {
                    ipa: M2,
                    size: K4,
                    pa: PA,
                    attrs: RW,
                    flags: MapFlags::PAGES,
                },
            ],
            Error::AlreadyMapped { ipa: M2 },
        ),
    ];
    for (updates, err) in cases {
        let vm = setup();
        assert_eq!(vm.plan_batch(&updates), Err(err));
        assert_eq!(snapshot(&vm), before);
    }
}

#[test]
fn a_failed_reservation_changes_nothing() {
    let updates = [
        Update::Map {
            ipa: 5 * G1 - K4,
            size: 2 * K4,
            pa: PA,
            attrs: RW,
            flags: MapFlags::PAGES,
        },
        Update::Unmap {
            ipa: M2 + K4,
            size: K4,
        },
    ];
    let need = setup().plan_batch(&updates).unwrap();
    assert!(
        need >= 5,
        "two L2 + two L3 tables for the map, one L3 for the split: {need}"
    );
    for n in 1..=need as u64 {
        let mut vm = setup();
        let before = snapshot(&vm);
        vm.memory_mut().fail_nth_allocation(n);
        assert_eq!(vm.reserve_tables(need).err(), Some(Error::NoMemory));
        assert_eq!(snapshot(&vm), before, "allocation {n} failed");
    }
    let mut vm = setup();
    let r = vm.reserve_tables(need).unwrap();
    assert_eq!(r.len(), need);
    vm.release_tables(r);
    assert_eq!(snapshot(&vm), snapshot(&setup()));
}

#[test]
fn replace_page_at_uses_the_walked_entry() {
    // A page, a page inside a 2 MiB block, a page inside a 1 GiB block, and an empty last-level
    // slot: the result is what replace_page (which walks again) gives.
    for ipa in [G1 + K4, M2 + 7 * K4, 2 * G1 + M2 + 9 * K4, G1 + 5 * K4] {
        let mut a = setup();
        let e = a.entry(ipa).unwrap();
        checked(&mut a, |vm| vm.replace_page_at(&e, 0x9_0000_0000, RW)).unwrap();
        let mut b = setup();
        b.replace_page(ipa, 0x9_0000_0000, RW).unwrap();
        same_leaves(&a, &b, &format!("ipa {ipa:#x}"));
        assert_eq!(
            a.query(ipa).map(|l| (l.pa, l.level)),
            Some((0x9_0000_0000, 3))
        );
    }
    // The entry must still be what the walk saw.
    let mut vm = setup();
    let e = vm.entry(G1).unwrap();
    assert_eq!(e.leaf().map(|l| l.pa), Some(PA + G1));
    vm.unmap(G1, K4).unwrap();
    let before = snapshot(&vm);
    assert_eq!(
        vm.replace_page_at(&e, 0x9_0000_0000, RW),
        Err(Error::StaleEntry { ipa: G1 })
    );
    assert_eq!(snapshot(&vm), before);
    // An invalid entry above the last level: nothing to replace.
    let e = vm.entry(7 * G1).unwrap();
    assert_eq!(
        vm.replace_page_at(&e, 0x9_0000_0000, RW),
        Err(Error::NotMapped { ipa: 7 * G1 })
    );
}

/// Split tables come unzeroed (`alloc_table_unzeroed`): fill every free arena page with
/// garbage first, so an entry the split did not write would show as a stray leaf or break the
/// tables' invariants.
#[test]
fn a_split_writes_every_entry_of_its_unzeroed_tables() {
    for ipa in [M2 + 7 * K4, 2 * G1 + M2 + 9 * K4] {
        let mut a = setup();
        let mem = a.memory_mut();
        let mut poisoned = Vec::new();
        while let Some(pa) = mem.alloc_pages_unzeroed(1) {
            let p = mem.page_ptr(pa).unwrap();
            // SAFETY: `p` is the arena's page at `pa`, just allocated to this test.
            unsafe { core::ptr::write_bytes(p, 0xA5, K4 as usize) };
            poisoned.push(pa);
        }
        for pa in poisoned {
            mem.free_pages(pa, 1);
        }
        let e = a.entry(ipa).unwrap();
        checked(&mut a, |vm| vm.replace_page_at(&e, 0x9_0000_0000, RW)).unwrap();
        let mut b = setup();
        b.replace_page(ipa, 0x9_0000_0000, RW).unwrap();
        same_leaves(&a, &b, &format!("ipa {ipa:#x}"));
        check_invariants(&a);
    }
}

#[test]
fn replace_page_at_in_a_block_is_all_or_nothing() {
    for (ipa, tables) in [(M2 + 7 * K4, 1), (2 * G1 + M2 + 9 * K4, 2)] {
        for n in 1..=tables {
            let mut vm = setup();
            let before = snapshot(&vm);
            let e = vm.entry(ipa).unwrap();
            vm.memory_mut().fail_nth_allocation(n);
            assert_eq!(
                vm.replace_page_at(&e, 0x9_0000_0000, RW),
                Err(Error::NoMemory)
            );
            assert_eq!(snapshot(&vm), before);
        }
    }
}

/// Two updates inside one block: the first splits it (the new table descriptor is written
/// break-before-make, after an invalidation); the second must see that table, not the invalid
/// entry of the break.
#[test]
fn two_updates_in_one_block_both_happen() {
    let mut a = vm();
    a.map(G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    let to_ro = |x: Attrs| x.with_s2ap(S2Ap::ReadOnly);
    let u = [
        Update::Unmap {
            ipa: G1 + 0x1010_0000,
            size: 0x10_0000,
        },
        Update::Unmap {
            ipa: G1 + 0x2030_0000,
            size: 0x10_0000,
        },
        Update::Modify {
            ipa: G1 + 0x3000_0000,
            size: K4,
            f: &to_ro,
        },
    ];
    batch(&mut a, &u).unwrap();
    let mut b = vm();
    b.map(G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    one_by_one(&mut b, &u);
    same_leaves(&a, &b, "batch vs one by one");
    assert!(a.query(G1 + 0x1010_0000).is_none());
    assert!(a.query(G1 + 0x2030_0000).is_none());
    assert_eq!(
        a.query(G1 + 0x3000_0000).map(|l| l.attrs.s2ap),
        Some(S2Ap::ReadOnly)
    );
}

/// A split takes its tables from the spare tables `refill_spare` set aside: no allocator call
/// on the fault path, and the tables the same as a split that allocates.
#[test]
fn a_split_takes_its_tables_from_the_spare() {
    for (ipa, tables) in [(M2 + 7 * K4, 1u64), (2 * G1 + M2 + 9 * K4, 2)] {
        let mut a = setup();
        assert_eq!(a.refill_spare(2), 2);
        assert_eq!(a.spare_tables(), 2);
        check_invariants(&a);
        let calls = a.memory().allocation_calls();
        let e = a.entry(ipa).unwrap();
        checked(&mut a, |vm| vm.replace_page_at(&e, 0x9_0000_0000, RW)).unwrap();
        assert_eq!(
            a.memory().allocation_calls(),
            calls,
            "ipa {ipa:#x}: the split called the allocator"
        );
        let c = a.split_counters();
        assert_eq!((c.from_spare, c.allocated), (tables, 0), "ipa {ipa:#x}");
        assert_eq!(a.spare_tables(), 2 - tables as usize);
        assert_eq!(a.split_since_refill(), tables as usize);
        let mut b = setup();
        b.replace_page(ipa, 0x9_0000_0000, RW).unwrap();
        same_leaves(&a, &b, &format!("ipa {ipa:#x}"));
        check_invariants(&a);
        // A replace that does not split takes nothing.
        let e = a.entry(ipa).unwrap();
        checked(&mut a, |vm| vm.replace_page_at(&e, 0xA_0000_0000, RW)).unwrap();
        assert_eq!(a.split_counters(), c);
        // The refill makes up for what was taken, and the count starts again.
        assert_eq!(a.refill_spare(2), 2);
        assert_eq!(a.split_since_refill(), 0);
        check_invariants(&a);
    }
}

/// Without spare tables, or with too few, a split allocates what is missing (the fallback),
/// and a split that cannot get its tables changes nothing, the spare tables included.
#[test]
fn a_split_without_enough_spare_tables_allocates() {
    let ipa = 2 * G1 + M2 + 9 * K4;
    // None spare: both tables allocated.
    let mut a = setup();
    let e = a.entry(ipa).unwrap();
    checked(&mut a, |vm| vm.replace_page_at(&e, 0x9_0000_0000, RW)).unwrap();
    let c = a.split_counters();
    assert_eq!((c.from_spare, c.allocated), (0, 2));
    // One spare for a split needing two: one from each.
    let mut a = setup();
    a.refill_spare(1);
    let e = a.entry(ipa).unwrap();
    checked(&mut a, |vm| vm.replace_page_at(&e, 0x9_0000_0000, RW)).unwrap();
    let c = a.split_counters();
    assert_eq!((c.from_spare, c.allocated), (1, 1));
    assert_eq!(a.spare_tables(), 0);
    check_invariants(&a);
    // The same with the allocation failing: nothing changes, the spare table stays spare.
    let mut a = setup();
    a.refill_spare(1);
    let before = snapshot(&a);
    let e = a.entry(ipa).unwrap();
    a.memory_mut().fail_nth_allocation(1);
    assert_eq!(
        a.replace_page_at(&e, 0x9_0000_0000, RW),
        Err(Error::NoMemory)
    );
    a.memory_mut().clear_failure();
    assert_eq!(snapshot(&a), before);
    assert_eq!(a.spare_tables(), 1);
    assert_eq!(
        a.split_counters().allocated + a.split_counters().from_spare,
        0
    );
    check_invariants(&a);
}

/// A refill keeps what it got when the table memory runs out; `release_spare` and `destroy`
/// give the spare tables back.
#[test]
fn spare_tables_go_back() {
    let mut a = vm_with(40, 8);
    let roots = a.table_pages();
    assert_eq!(a.refill_spare(100), 8 - roots);
    assert_eq!(a.memory().pages_in_use(), 8);
    check_invariants(&a);
    assert_eq!(a.release_spare(), 8 - roots);
    assert_eq!(a.memory().pages_in_use(), roots);
    a.refill_spare(3);
    let (arena, _) = a.destroy();
    assert_eq!(arena.pages_in_use(), 0, "destroy leaked spare tables");
}

/// `is_empty` (read from the root pages only) says whether anything is mapped, a root-level
/// block included; `destroy` frees every table whether or not there is one below the root.
#[test]
fn is_empty_sees_root_blocks_and_destroy_frees_all() {
    let mut a = vm_with(40, 16);
    assert!(a.is_empty());
    // A 1 GiB block is a level-1 root entry: no table below the root.
    a.map(G1, G1, PA + G1, RO, MapFlags::BLOCKS).unwrap();
    assert_eq!(a.table_pages(), 2);
    assert!(!a.is_empty());
    a.unmap(G1, G1).unwrap();
    assert!(a.is_empty());
    // A page in tables of its own; unmapping it frees them again.
    a.map(G1, K4, PA, RW, MapFlags::PAGES).unwrap();
    assert!(!a.is_empty());
    a.unmap(G1, K4).unwrap();
    assert!(a.is_empty(), "the unmap freed the tables it emptied");
    for (ipa, size, flags) in [(0, G1, MapFlags::BLOCKS), (3 * G1, K4, MapFlags::PAGES)] {
        let mut b = vm_with(40, 16);
        b.map(ipa, size, PA, RW, flags).unwrap();
        let (arena, _) = b.destroy();
        assert_eq!(arena.pages_in_use(), 0, "destroy leaked tables");
    }
}
