//! The isolation checker must see every kind of violation: each test breaks
//! the system behind the RM's back (straight through the platform) and
//! expects the checker to report exactly what was broken.

mod common;
use common::*;

use gunyah_rm::checker::Violation;
use gunyah_rm::platform::{AddressSpaces, MemKind, PhysMem, Rights, Tag};

const A: u16 = 0x80;
const PAGE: u64 = 0x4800_0000;

fn with_vm() -> H {
    let mut h = H::new();
    h.ok(HLOS, VM_ALLOC, &vmid_pad(0));
    h
}

#[test]
fn a_page_mapped_behind_the_rms_back() {
    let mut h = with_vm();
    h.rm.platform_mut()
        .map(
            A,
            0x2_0000_0000,
            PAGE,
            0x1000,
            Rights::RW,
            MemKind::Normal,
            Tag::None,
        )
        .unwrap();
    let v = h.rm.check_isolation();
    assert!(
        v.iter()
            .any(|x| matches!(x, Violation::TablesDisagree { vmid: A, .. })),
        "{v:?}"
    );
    assert!(
        v.contains(&Violation::NotOwnedNorAccepted { vmid: A, pa: PAGE }),
        "{v:?}"
    );
    assert!(
        v.contains(&Violation::WritableByTwo {
            pa: PAGE,
            vms: (HLOS, A)
        }),
        "{v:?}"
    );
}

#[test]
fn a_read_only_mapping_by_a_stranger_is_still_caught() {
    let mut h = with_vm();
    h.rm.platform_mut()
        .map(
            A,
            0x2_0000_0000,
            PAGE,
            0x1000,
            Rights::R,
            MemKind::Normal,
            Tag::None,
        )
        .unwrap();
    let v = h.rm.check_isolation();
    assert!(
        v.contains(&Violation::NotOwnedNorAccepted { vmid: A, pa: PAGE }),
        "{v:?}"
    );
    assert!(
        !v.iter()
            .any(|x| matches!(x, Violation::WritableByTwo { .. })),
        "{v:?}"
    );
}

#[test]
fn a_lent_page_mapped_again_in_its_owner() {
    let mut h = with_vm();
    let handle = h
        .ok(
            HLOS,
            MEM_LEND,
            &create(0, 0, 0, &[(A, 6)], &[(PAGE, 0x1000)]),
        )
        .u32_at(0);
    h.rm.platform_mut()
        .map(
            HLOS,
            PAGE,
            PAGE,
            0x1000,
            Rights::RWX,
            MemKind::Normal,
            Tag::None,
        )
        .unwrap();
    let v = h.rm.check_isolation();
    assert!(
        v.contains(&Violation::LentStillMapped { handle, pa: PAGE }),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|x| matches!(x, Violation::TablesDisagree { vmid: HLOS, .. })),
        "{v:?}"
    );
}

#[test]
fn tables_that_lost_or_changed_a_mapping() {
    let mut h = with_vm();
    h.rm.platform_mut().unmap(HLOS, PAGE, 0x1000).unwrap();
    let v = h.rm.check_isolation();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(matches!(v[0], Violation::TablesDisagree { vmid: HLOS, .. }));

    let mut h = with_vm();
    h.rm.platform_mut()
        .protect(HLOS, PAGE, 0x1000, Rights::R)
        .unwrap();
    let v = h.rm.check_isolation();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(matches!(v[0], Violation::TablesDisagree { vmid: HLOS, .. }));
}

#[test]
fn a_partition_page_nobody_accounts_for() {
    let mut h = with_vm();
    let u = h.rm.platform().partition_usage();
    let _leak = h.rm.platform_mut().alloc_page().unwrap();
    let v = h.rm.check_isolation();
    assert_eq!(
        v,
        vec![Violation::PagesLost {
            in_use: u.total - u.free + 1,
            accounted: u.total - u.free
        }]
    );
}

#[test]
fn pages_the_rm_accounts_for_are_not_lost() {
    let mut h = with_vm();
    let before = h.rm.platform().partition_usage();
    let pa = h.rm.alloc_partition_page().unwrap();
    assert!(h.rm.platform_mut().write(pa, b"dirty"));
    h.check();
    h.rm.free_partition_page(pa);
    h.check();
    assert_eq!(h.rm.platform().partition_usage(), before);
    // Freed pages come back zeroed.
    let pa2 = h.rm.alloc_partition_page().unwrap();
    let mut b = [0xFFu8; 5];
    assert!(h.rm.platform().read(pa2, &mut b));
    assert_eq!(b, [0; 5]);
    h.rm.free_partition_page(pa2);
    // Freeing a page the RM does not hold is ignored.
    h.rm.free_partition_page(0x1_0000_0000);
    h.check();
}
