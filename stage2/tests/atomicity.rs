//! All-or-nothing: for every operation that needs new tables, failing the N-th allocation
//! (for every N up to the number it needs) leaves the tables byte-identical, frees everything
//! it had reserved, and issues no write or invalidation; N = needed + 1 succeeds.

mod common;
use common::*;
use gunyah_stage2::{Attrs, Error, MapFlags, S2Ap};

const PA: u64 = 0x1_0000_0000;
const RW: Attrs = Attrs::normal_rw();
const RO: Attrs = Attrs::normal_ro();

/// Run `op` on fresh copies of `setup()` with allocation N failing, for N = 1, 2, ...
/// Returns the number of allocations the operation needs.
fn all_or_nothing(setup: impl Fn() -> Vm, op: impl Fn(&mut Vm) -> Result<(), Error>) -> u64 {
    for n in 1..=64u64 {
        let mut vm = setup();
        let before = snapshot(&vm);
        take_trace(&mut vm);
        vm.memory_mut().fail_nth_allocation(n);
        match op(&mut vm) {
            Err(Error::NoMemory) => {
                assert_eq!(
                    snapshot(&vm),
                    before,
                    "allocation {n} failed: tables must be unchanged"
                );
                let trace = take_trace(&mut vm);
                assert!(
                    trace.iter().all(|t| matches!(
                        t.event,
                        gunyah_stage2::host::TraceEvent::Free { .. }
                    ) || matches!(&t.event, gunyah_stage2::host::TraceEvent::Write { table_pa, .. }
                            if !before.tables.iter().any(|(pa, _, _)| pa == table_pa))),
                    "allocation {n} failed: no write to a live table, no invalidation"
                );
                check_invariants(&vm);
            }
            Ok(()) => {
                vm.memory_mut().clear_failure();
                check_invariants(&vm);
                return n - 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    panic!("operation never succeeded");
}

#[test]
fn map_pages_across_tables_into_empty_space() {
    // L2 table + three L3 tables.
    let needed = all_or_nothing(vm, |vm| {
        vm.map(M2 - K4, M2 + 2 * K4, PA, RW, MapFlags::PAGES)
    });
    assert_eq!(needed, 4);
}

#[test]
fn map_across_root_tables() {
    // Two L2 and two L3 tables, one under each root table.
    let needed = all_or_nothing(vm, |vm| {
        vm.map(512 * G1 - K4, 2 * K4, PA, RW, MapFlags::PAGES)
    });
    assert_eq!(needed, 4);
}

#[test]
fn replace_page_in_1g_block() {
    let setup = || {
        let mut vm = vm();
        vm.map(G1, G1, PA, RO, MapFlags::BLOCKS).unwrap();
        vm
    };
    let needed = all_or_nothing(setup, |vm| {
        vm.replace_page(G1 + 7 * K4, 0x2_0000_0000, RW).map(|_| ())
    });
    assert_eq!(needed, 2);
}

#[test]
fn replace_page_in_2m_block() {
    let setup = || {
        let mut vm = vm();
        vm.map(0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
        vm
    };
    assert_eq!(
        all_or_nothing(setup, |vm| vm
            .replace_page(0x4000_1000, 0x2_0000_0000, RW)
            .map(|_| ())),
        1
    );
}

#[test]
fn unmap_page_inside_1g_block() {
    let setup = || {
        let mut vm = vm();
        vm.map(G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
        vm
    };
    assert_eq!(all_or_nothing(setup, |vm| vm.unmap(G1 + 3 * M2, K4)), 2);
}

#[test]
fn protect_inside_two_blocks() {
    let setup = || {
        let mut vm = vm();
        vm.map(0x4000_0000, 2 * M2, PA, RW, MapFlags::BLOCKS)
            .unwrap();
        vm
    };
    // A range straddling the two blocks splits both.
    assert_eq!(
        all_or_nothing(setup, |vm| vm.protect(
            0x4020_0000 - K4,
            2 * K4,
            S2Ap::ReadOnly,
            false
        )),
        2
    );
}

#[test]
fn split_block() {
    let setup = || {
        let mut vm = vm();
        vm.map(0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
        vm
    };
    assert_eq!(all_or_nothing(setup, |vm| vm.split_block(0x4000_0000)), 1);
}

#[test]
fn replace_over_mixed_blocks_tables_and_holes() {
    let top = 2 * G1;
    let setup = move || {
        let mut vm = vm();
        vm.map(top - 3 * M2, M2, PA, RO, MapFlags::BLOCKS).unwrap();
        vm.map(top - M2 + 5 * K4, 7 * K4, PA, RW, MapFlags::PAGES)
            .unwrap();
        vm.map(top, G1, PA, RO, MapFlags::BLOCKS).unwrap();
        vm
    };
    // Pages over: the second half of the 2M block (split: 1 table), a hole (new L3: 1), the
    // existing page table (0), and the start of the 1G block (split into L2 + L3: 2).
    let needed = all_or_nothing(setup, |vm| {
        vm.map(
            top - 3 * M2 + M2 / 2,
            3 * M2,
            0x2_0000_0000,
            RW,
            MapFlags::REPLACE,
        )
    });
    assert_eq!(needed, 4);
    let mut vm = setup();
    vm.map(
        top - 3 * M2 + M2 / 2,
        3 * M2,
        0x2_0000_0000,
        RW,
        MapFlags::REPLACE,
    )
    .unwrap();
    assert_eq!(vm.translate(top - 3 * M2), Some((PA, RO)));
    assert_eq!(
        vm.translate(top - 3 * M2 + M2 / 2),
        Some((0x2_0000_0000, RW))
    );
    assert_eq!(
        vm.translate(top + M2 / 2 - K4),
        Some((0x2_0000_0000 + 3 * M2 - K4, RW))
    );
    assert_eq!(vm.translate(top + M2 / 2), Some((PA + M2 / 2, RO)));
    check_invariants(&vm);
}

#[test]
fn map_32_bit_concatenated_roots() {
    let needed = all_or_nothing(
        || vm_with(32, 256),
        |vm| {
            vm.map(
                G1 - 3 * M2 - K4,
                6 * M2 + 2 * K4,
                PA - 3 * M2 - K4,
                RW,
                MapFlags::BLOCKS,
            )
        },
    );
    // Level-2 root: one L3 table at each end.
    assert_eq!(needed, 2);
}

#[test]
fn failure_of_the_first_allocation_in_a_full_arena() {
    // An arena with no free page: every operation needing a table fails cleanly.
    let mut vm = vm_with(40, 2);
    let before = snapshot(&vm);
    assert_eq!(vm.map(0, K4, PA, RW, MapFlags::PAGES), Err(Error::NoMemory));
    assert_eq!(snapshot(&vm), before);
    // A 1 GiB block needs no table and still works.
    vm.map(G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    assert_eq!(vm.unmap(G1, K4), Err(Error::NoMemory));
    assert_eq!(vm.translate(G1), Some((PA, RW)));
    vm.unmap(G1, G1).unwrap();
    check_invariants(&vm);
}
