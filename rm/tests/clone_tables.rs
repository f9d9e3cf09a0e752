//! Stage-2 table pages of a clone launched from its config (the `clone_launch` bench's
//! `config_clone`, `rm/benches/common/clone.rs`, with a 64 MiB golden image so the debug build
//! seals it quickly): the golden image's 2 MiB blocks, the private RAM (demand-paged, no table
//! yet) and the DT parcel share one level-2 table; the parcel's pages take one level-3 table;
//! the root is two concatenated pages with a 40-bit IPA space (`config_clone_ipa40`) and one
//! with the shipped configs' 39 bits (`config_clone`).

#[path = "../benches/common/clone.rs"]
mod clone;

use gunyah_rm::platform::{AddressSpaces, PhysMem};
use gunyah_rm::stage2_spaces::Stage2Backed;

/// (tables by level 1, 2, 3), table pages counted by the address space, and the golden leaves.
fn clone_tables(ipa_bits: (Option<u8>, Option<u8>)) -> ([usize; 3], usize, Vec<(u64, u64, u64)>) {
    let mut st = clone::ConfigClone::with(ipa_bits, 64 << 20);
    let before = st.rm.platform().partition_usage().tables;
    let v = st.launch();
    let mut levels = [0; 3];
    let pages = {
        let space = st.rm.platform().stage2().get(v).expect("the clone's space");
        space.for_each_table(&mut |_, level| levels[level as usize - 1] += 1);
        space.table_pages()
    };
    let added = st.rm.platform().partition_usage().tables - before;
    assert_eq!(added as usize, pages, "the partition's count agrees");
    let mut golden = Vec::new();
    st.rm.platform().for_each_leaf(v, &mut |l| {
        if (0x8000_0000..0x8400_0000).contains(&l.ipa) {
            golden.push((l.ipa, l.pa, l.size));
        }
    });
    st.teardown(v);
    assert_eq!(
        st.rm.platform().partition_usage().tables,
        before,
        "teardown frees them all"
    );
    (levels, pages, golden)
}

#[test]
fn a_config_clone_has_three_table_pages_as_shipped_and_four_at_40_bits() {
    // The shipped app configs ask for 39 bits (`vm-configs/README.md`).
    let shipped = clone::shipped_ipa_bits();
    assert_eq!(shipped, (Some(39), Some(39)));
    let (l39, p39, g39) = clone_tables(shipped);
    assert_eq!((l39, p39), ([1, 1, 1], 3));
    let (l40, p40, g40) = clone_tables((None, None));
    assert_eq!((l40, p40), ([2, 1, 1], 4));
    // The golden image is 32 blocks of 2 MiB, contiguous, the same either way.
    assert_eq!(g40.len(), 32);
    for (k, &(ipa, pa, size)) in g40.iter().enumerate() {
        assert_eq!((ipa, size), (0x8000_0000 + k as u64 * (2 << 20), 2 << 20));
        assert_eq!(pa, g40[0].1 + k as u64 * (2 << 20));
    }
    assert_eq!(g39, g40);
}
