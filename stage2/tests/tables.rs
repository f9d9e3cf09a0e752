//! Map, unmap, protect, split, merge and replace over real tables in a simulated arena.
//! Every mutating call runs under `checked`, which also verifies break-before-make ordering,
//! free-after-invalidate, and that no table page leaks or stays empty.

mod common;
use common::*;
use gunyah_stage2::host::{HostArena, RecordingTlb, SharedArena, TraceEvent};
use gunyah_stage2::{
    Access, AddressSpace, Attrs, Error, FaultKind, FaultStatus, Leaf, MapFlags, MemAttr, PaRange,
    S2Ap, Stage2Config, SwBits,
};

const PA: u64 = 0x1_0000_0000; // 1 GiB aligned
const RW: Attrs = Attrs::normal_rw();
const RO: Attrs = Attrs::normal_ro();

fn map(
    vm: &mut Vm,
    ipa: u64,
    size: u64,
    pa: u64,
    attrs: Attrs,
    flags: MapFlags,
) -> Result<(), Error> {
    checked(vm, |vm| vm.map(ipa, size, pa, attrs, flags))
}

fn leaf(vm: &Vm, ipa: u64) -> Leaf {
    vm.query(ipa)
        .unwrap_or_else(|| panic!("{ipa:#x} not mapped"))
}

fn pa_of(vm: &Vm, ipa: u64) -> Option<u64> {
    vm.translate(ipa).map(|(pa, _)| pa)
}

/// Every page of `[ipa, ipa+size)` maps linearly to `pa` with `attrs`.
fn assert_linear(vm: &Vm, ipa: u64, size: u64, pa: u64, attrs: Attrs) {
    let mut off = 0;
    while off < size {
        assert_eq!(
            vm.translate(ipa + off),
            Some((pa + off, attrs)),
            "ipa {:#x}",
            ipa + off
        );
        off += K4;
    }
}

fn assert_unmapped(vm: &Vm, ipa: u64, size: u64) {
    let mut off = 0;
    while off < size {
        assert_eq!(
            vm.query(ipa + off),
            None,
            "ipa {:#x} should be unmapped",
            ipa + off
        );
        off += K4;
    }
}

/// Descriptor of the leaf mapping `ipa` (walks via for_each_table to find the raw value).
fn raw_leaf(vm: &Vm, ipa: u64) -> u64 {
    use gunyah_stage2::TableMemory;
    let l = leaf(vm, ipa);
    // Walk by hand: root level 1 for 40-bit.
    let start = vm.geometry().start_level();
    let mut table = vm.root_pa();
    let mut level = start;
    let mut idx = (ipa >> (12 + 9 * (3 - level as u32))) as usize;
    table += (idx / 512) as u64 * K4;
    idx %= 512;
    loop {
        let d = vm.memory().read_entry(table, idx);
        if level == l.level {
            return d;
        }
        table = d & 0x0000_FFFF_FFFF_F000;
        level += 1;
        idx = ((ipa >> (12 + 9 * (3 - level as u32))) & 511) as usize;
    }
}

// ---------------------------------------------------------------- map

#[test]
fn map_first_page() {
    let mut vm = vm();
    map(&mut vm, 0, K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(
        leaf(&vm, 0),
        Leaf {
            ipa: 0,
            pa: PA,
            level: 3,
            attrs: RW
        }
    );
    assert_eq!(pa_of(&vm, 0x123), Some(PA + 0x123));
    assert_eq!(vm.query(K4), None);
    // Root (2 concatenated L1 tables) + one L2 + one L3 table.
    assert_eq!(vm.table_pages(), 4);
}

#[test]
fn page_descriptor_bits_by_hand() {
    let mut vm = vm();
    // Page: valid|page = 0b11, MemAttr 0b1111 << 2 = 0x3C, S2AP 0b11 << 6 = 0xC0,
    // SH 0b11 << 8 = 0x300, AF 1 << 10 = 0x400 => 0x7FF | PA.
    map(&mut vm, 0x5000, K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(raw_leaf(&vm, 0x5000), 0x1_0000_07FF);
    // Read-only: S2AP 0b01 << 6 = 0x40 => 0x77F; software bit SW3 = bit 58.
    map(
        &mut vm,
        0x6000,
        K4,
        PA,
        RO.with_sw(SwBits::SW3),
        MapFlags::PAGES,
    )
    .unwrap();
    assert_eq!(raw_leaf(&vm, 0x6000), 0x0400_0001_0000_077F);
    // Device-nGnRE RW XN: MemAttr 0b0001 << 2 = 0x4, S2AP 0xC0, SH outer 0b10 << 8 = 0x200,
    // AF 0x400, XN bit 54 => 0x0040_0000_0000_06C7 | PA.
    map(
        &mut vm,
        0x7000,
        K4,
        0x900_0000,
        Attrs::device_rw(),
        MapFlags::PAGES,
    )
    .unwrap();
    assert_eq!(raw_leaf(&vm, 0x7000), 0x0040_0000_0900_06C7);
    assert_eq!(leaf(&vm, 0x7000).attrs.mem, MemAttr::DeviceNGnRE);
}

#[test]
fn map_2m_block_descriptor() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCK_2M).unwrap();
    let l = leaf(&vm, 0x4010_0000);
    assert_eq!((l.ipa, l.pa, l.level), (0x4000_0000, PA, 2));
    // Block: valid, type 0 => 0x7FD | PA.
    assert_eq!(raw_leaf(&vm, 0x4000_0000), 0x1_0000_07FD);
    assert_eq!(vm.table_pages(), 3, "root + one L2 table, no L3");
}

#[test]
fn map_1g_block() {
    let mut vm = vm();
    map(&mut vm, G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    let l = leaf(&vm, G1 + 0x1234_5000);
    assert_eq!((l.ipa, l.pa, l.level, l.size()), (G1, PA, 1, G1));
    assert_eq!(pa_of(&vm, G1 + 0x1234_5678), Some(PA + 0x1234_5678));
    assert_eq!(vm.table_pages(), 2, "only the root tables");
}

#[test]
fn map_1g_block_only_with_1g_flag() {
    let mut vm = vm();
    map(&mut vm, G1, G1, PA, RW, MapFlags::BLOCK_2M).unwrap();
    assert_eq!(leaf(&vm, G1).level, 2);
    assert_eq!(vm.table_pages(), 3);
    let mut vm = vm_with(40, 64);
    map(&mut vm, G1, G1, PA, RW, MapFlags::BLOCK_1G).unwrap();
    assert_eq!(leaf(&vm, G1).level, 1);
}

#[test]
fn map_blocks_not_used_without_flag() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(leaf(&vm, 0x4000_0000).level, 3);
    assert_eq!(vm.table_pages(), 4);
    assert_linear(&vm, 0x4000_0000, M2, PA, RW);
}

#[test]
fn map_block_needs_pa_alignment() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA + K4, RW, MapFlags::BLOCKS).unwrap();
    assert_eq!(leaf(&vm, 0x4000_0000).level, 3);
    assert_linear(&vm, 0x4000_0000, M2, PA + K4, RW);
}

#[test]
fn map_mixed_pages_and_block() {
    let mut vm = vm();
    // 4 KiB before a 2 MiB boundary, one 2 MiB block, 4 KiB after.
    let ipa = 0x4000_0000 - K4;
    map(&mut vm, ipa, M2 + 2 * K4, PA - K4, RW, MapFlags::BLOCKS).unwrap();
    assert_eq!(leaf(&vm, ipa).level, 3);
    assert_eq!(leaf(&vm, 0x4000_0000).level, 2);
    assert_eq!(leaf(&vm, 0x4020_0000).level, 3);
    assert_linear(&vm, ipa, M2 + 2 * K4, PA - K4, RW);
    let mut leaves = 0;
    vm.for_each_leaf(&mut |_| leaves += 1);
    assert_eq!(leaves, 3);
}

#[test]
fn map_across_l3_table_boundary() {
    let mut vm = vm();
    map(&mut vm, M2 - 2 * K4, 4 * K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_linear(&vm, M2 - 2 * K4, 4 * K4, PA, RW);
    assert_eq!(
        vm.table_pages(),
        2 + 1 + 2,
        "two L3 tables under one L2 table"
    );
}

#[test]
fn map_across_l2_table_boundary() {
    let mut vm = vm();
    map(&mut vm, G1 - K4, 2 * K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_linear(&vm, G1 - K4, 2 * K4, PA, RW);
    assert_eq!(vm.table_pages(), 2 + 2 + 2);
}

#[test]
fn map_across_concatenated_root_tables() {
    // 40-bit IPA: each of the two root tables covers 512 GiB.
    let mut vm = vm();
    let edge = 512 * G1;
    map(&mut vm, edge - K4, 2 * K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_linear(&vm, edge - K4, 2 * K4, PA, RW);
    assert_eq!(vm.table_pages(), 2 + 2 + 2);
    // 32-bit IPA: four root tables (level 2) of 1 GiB each.
    let mut vm = vm_with(32, 64);
    map(&mut vm, 3 * G1 - M2, 2 * M2, PA, RW, MapFlags::BLOCKS).unwrap();
    assert_eq!(leaf(&vm, 3 * G1 - M2).level, 2);
    assert_eq!(leaf(&vm, 3 * G1).level, 2);
    assert_eq!(vm.table_pages(), 4);
    assert_linear(&vm, 3 * G1 - 2 * K4, 4 * K4, PA + M2 - 2 * K4, RW);
}

#[test]
fn map_last_page_of_ipa_space() {
    let mut vm = vm();
    let last = (1u64 << 40) - K4;
    map(&mut vm, last, K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(pa_of(&vm, last + 0xFFF), Some(PA + 0xFFF));
    let mut vm = vm_with(48, 64);
    let last = (1u64 << 48) - K4;
    map(&mut vm, last, K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(leaf(&vm, last).level, 3);
    assert_eq!(vm.table_pages(), 4, "48-bit: L0 root, L1, L2, L3");
}

#[test]
fn map_48_bit_never_uses_level0_block() {
    let mut vm = vm_with(48, 64);
    map(&mut vm, 512 * G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    assert_eq!(leaf(&vm, 512 * G1).level, 1);
    assert_eq!(vm.table_pages(), 2);
}

#[test]
fn map_out_of_range_rejected() {
    let mut vm = vm();
    let limit = 1u64 << 40;
    let before = snapshot(&vm);
    assert_eq!(
        vm.map(limit - K4, 2 * K4, PA, RW, MapFlags::PAGES),
        Err(Error::IpaOutOfRange { ipa: limit })
    );
    assert_eq!(
        vm.map(limit, K4, PA, RW, MapFlags::PAGES),
        Err(Error::IpaOutOfRange { ipa: limit })
    );
    assert_eq!(
        vm.map(limit + G1, K4, PA, RW, MapFlags::PAGES),
        Err(Error::IpaOutOfRange { ipa: limit + G1 })
    );
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn map_pa_out_of_range_rejected() {
    let mut vm = AddressSpace::new(
        HostArena::new(ARENA_BASE, 16),
        RecordingTlb::new(),
        Stage2Config::new(36, PaRange::Bits36, 1),
    )
    .unwrap();
    let before = vm.table_pages();
    let limit = 1u64 << 36;
    assert_eq!(
        vm.map(0, 2 * K4, limit - K4, RW, MapFlags::PAGES),
        Err(Error::PaOutOfRange { pa: limit })
    );
    assert_eq!(
        vm.map(0, K4, 1 << 40, RW, MapFlags::PAGES),
        Err(Error::PaOutOfRange { pa: 1 << 40 })
    );
    assert_eq!(vm.table_pages(), before);
    assert_eq!(vm.query(0), None);
}

#[test]
fn unaligned_and_empty_arguments_rejected() {
    let mut vm = vm();
    let before = snapshot(&vm);
    assert_eq!(
        vm.map(0x1001, K4, PA, RW, MapFlags::PAGES),
        Err(Error::Unaligned { value: 0x1001 })
    );
    assert_eq!(
        vm.map(0x1000, 0x1800, PA, RW, MapFlags::PAGES),
        Err(Error::Unaligned { value: 0x1800 })
    );
    assert_eq!(
        vm.map(0x1000, K4, PA + 8, RW, MapFlags::PAGES),
        Err(Error::Unaligned { value: PA + 8 })
    );
    assert_eq!(
        vm.map(0x1000, 0, PA, RW, MapFlags::PAGES),
        Err(Error::ZeroSize)
    );
    assert_eq!(vm.unmap(0x10, K4), Err(Error::Unaligned { value: 0x10 }));
    assert_eq!(vm.unmap(0, 0), Err(Error::ZeroSize));
    assert_eq!(
        vm.protect(0x1000, 0x10, S2Ap::ReadOnly, false),
        Err(Error::Unaligned { value: 0x10 })
    );
    assert_eq!(
        vm.replace_page(0x1800, PA, RW),
        Err(Error::Unaligned { value: 0x1800 })
    );
    assert_eq!(
        vm.split_block(0x1008),
        Err(Error::Unaligned { value: 0x1008 })
    );
    assert_eq!(vm.merge(0, 3), Err(Error::Unaligned { value: 3 }));
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn overflowing_ranges_rejected() {
    let mut vm = vm();
    let top: u64 = !0xFFF;
    assert_eq!(
        vm.map(top, 2 * K4, PA, RW, MapFlags::PAGES),
        Err(Error::RangeOverflow)
    );
    assert_eq!(
        vm.map(0, K4, top, RW, MapFlags::PAGES),
        Err(Error::RangeOverflow)
    );
    assert_eq!(
        vm.map(0, K4, top - K4, RW, MapFlags::PAGES),
        Err(Error::PaOutOfRange { pa: top - K4 })
    );
    assert_eq!(vm.unmap(top, 2 * K4), Err(Error::RangeOverflow));
    assert_eq!(vm.query(top), None);
    assert_eq!(
        vm.replace_page(1 << 40, PA, RW),
        Err(Error::IpaOutOfRange { ipa: 1 << 40 })
    );
    check_invariants(&vm);
}

#[test]
fn map_already_mapped_rejected_without_change() {
    let mut vm = vm();
    map(&mut vm, 0x10_0000, 4 * K4, PA, RW, MapFlags::PAGES).unwrap();
    let before = snapshot(&vm);
    let r = checked(&mut vm, |vm| {
        vm.map(0x10_0000 - 2 * K4, 4 * K4, PA, RO, MapFlags::PAGES)
    });
    assert_eq!(r, Err(Error::AlreadyMapped { ipa: 0x10_0000 }));
    assert_eq!(snapshot(&vm), before);
    assert_unmapped(&vm, 0x10_0000 - 2 * K4, 2 * K4);
}

#[test]
fn map_already_mapped_inside_block_rejected() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    let before = snapshot(&vm);
    let r = vm.map(0x4010_0000, K4, PA, RW, MapFlags::PAGES);
    assert_eq!(r, Err(Error::AlreadyMapped { ipa: 0x4010_0000 }));
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn map_block_over_existing_table_without_replace_rejected() {
    let mut vm = vm();
    map(&mut vm, 0x4010_0000, K4, PA, RW, MapFlags::PAGES).unwrap();
    let before = snapshot(&vm);
    let r = vm.map(0x4000_0000, M2, PA, RW, MapFlags::BLOCKS);
    assert_eq!(r, Err(Error::AlreadyMapped { ipa: 0x4010_0000 }));
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn overmap_page_with_replace() {
    let mut vm = vm();
    map(&mut vm, 0x3000, K4, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, 0x3000, K4, PA + M2, RO, MapFlags::REPLACE).unwrap();
    assert_eq!(vm.translate(0x3000), Some((PA + M2, RO)));
}

#[test]
fn overmap_block_with_pages() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    map(&mut vm, 0x4000_0000, M2, PA + G1, RO, MapFlags::REPLACE).unwrap();
    assert_eq!(leaf(&vm, 0x4000_0000).level, 3);
    assert_linear(&vm, 0x4000_0000, M2, PA + G1, RO);
    assert_eq!(vm.table_pages(), 4);
}

#[test]
fn overmap_table_with_block_frees_table() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(vm.table_pages(), 4);
    map(
        &mut vm,
        0x4000_0000,
        M2,
        PA + G1,
        RW,
        MapFlags::BLOCKS.union(MapFlags::REPLACE),
    )
    .unwrap();
    assert_eq!(leaf(&vm, 0x4000_0000).level, 2);
    assert_eq!(vm.table_pages(), 3, "the L3 table is freed");
    assert_linear(&vm, 0x4000_0000, M2, PA + G1, RW);
}

#[test]
fn overmap_1g_of_tables_with_1g_block_frees_subtree() {
    let mut vm = vm();
    map(&mut vm, G1, 4 * M2, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, G1 + 100 * M2, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    assert_eq!(vm.table_pages(), 2 + 1 + 4);
    map(
        &mut vm,
        G1,
        G1,
        PA + G1,
        RO,
        MapFlags::BLOCKS.union(MapFlags::REPLACE),
    )
    .unwrap();
    assert_eq!(vm.table_pages(), 2);
    assert_eq!(leaf(&vm, G1 + 3 * M2).level, 1);
}

#[test]
fn overmap_with_identical_mapping_changes_nothing() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    take_trace(&mut vm);
    map(
        &mut vm,
        0x4000_0000,
        M2,
        PA,
        RW,
        MapFlags::BLOCKS.union(MapFlags::REPLACE),
    )
    .unwrap();
    map(
        &mut vm,
        0x4008_0000,
        K4,
        PA + 0x8_0000,
        RW,
        MapFlags::REPLACE,
    )
    .unwrap();
    assert!(take_trace(&mut vm).is_empty(), "no writes, no invalidation");
    assert_eq!(
        leaf(&vm, 0x4008_0000).level,
        2,
        "no split for an identical page"
    );
}

// ---------------------------------------------------------------- unmap

#[test]
fn unmap_page_frees_its_tables() {
    let mut vm = vm();
    map(&mut vm, 0x7000, K4, PA, RW, MapFlags::PAGES).unwrap();
    checked(&mut vm, |vm| vm.unmap(0x7000, K4)).unwrap();
    assert_eq!(vm.query(0x7000), None);
    assert_eq!(vm.table_pages(), 2);
    assert_eq!(vm.memory().pages_in_use(), 2);
}

/// The tables an unmap leaves empty are freed as zeroed (the arena may hand them out again
/// without a memset); a subtree unlinked whole still holds its descriptors and is freed the
/// ordinary way, so it is zeroed before it becomes a table again.
#[test]
fn only_tables_left_empty_are_freed_as_zeroed() {
    let tables = |vm: &Vm| {
        let mut v = Vec::new();
        vm.for_each_table(&mut |pa, level| {
            if level > 1 {
                v.push(pa)
            }
        });
        v
    };
    let mut vm = vm();
    map(&mut vm, 2 * G1 + 0x7000, K4, PA, RW, MapFlags::PAGES).unwrap();
    let lone = tables(&vm);
    assert_eq!(lone.len(), 2, "a level-2 and a level-3 table");
    checked(&mut vm, |vm| vm.unmap(2 * G1 + 0x7000, K4)).unwrap();
    for &t in &lone {
        assert!(!vm.memory().is_allocated(t) && vm.memory().is_known_zero(t));
    }
    // Mapped again: the same pages, now tables again and no longer known zero.
    map(&mut vm, 2 * G1 + 0x9000, K4, PA, RW, MapFlags::PAGES).unwrap();
    let again = tables(&vm);
    assert_eq!(
        again
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        lone.iter().copied().collect()
    );
    for &t in &again {
        assert!(vm.memory().is_allocated(t) && !vm.memory().is_known_zero(t));
    }
    assert_eq!(pa_of(&vm, 2 * G1 + 0x9000), Some(PA));
    // Two pages in one level-3 table, the whole 1 GiB unmapped: the subtree is unlinked with
    // its leaves in it.
    map(&mut vm, 2 * G1 + 0xA000, K4, PA + K4, RW, MapFlags::PAGES).unwrap();
    checked(&mut vm, |vm| vm.unmap(2 * G1, G1)).unwrap();
    for &t in &again {
        assert!(!vm.memory().is_allocated(t) && !vm.memory().is_known_zero(t));
    }
    // And tables made from them again start empty: only the new page is mapped.
    map(&mut vm, 2 * G1 + 0x5000, K4, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(pa_of(&vm, 2 * G1 + 0x9000), None);
    assert_eq!(pa_of(&vm, 2 * G1 + 0xA000), None);
    assert_eq!(pa_of(&vm, 2 * G1 + 0x5000), Some(PA));
}

#[test]
fn unmap_keeps_neighbours_and_tables() {
    let mut vm = vm();
    map(&mut vm, 0, 4 * K4, PA, RW, MapFlags::PAGES).unwrap();
    checked(&mut vm, |vm| vm.unmap(K4, 2 * K4)).unwrap();
    assert_eq!(pa_of(&vm, 0), Some(PA));
    assert_unmapped(&vm, K4, 2 * K4);
    assert_eq!(pa_of(&vm, 3 * K4), Some(PA + 3 * K4));
    assert_eq!(vm.table_pages(), 4);
}

#[test]
fn unmap_unmapped_range_is_a_noop() {
    let mut vm = vm();
    map(&mut vm, 0, K4, PA, RW, MapFlags::PAGES).unwrap();
    let before = snapshot(&vm);
    let (r1, t1) = checked_trace(&mut vm, |vm| vm.unmap(G1, 10 * G1));
    let (r2, t2) = checked_trace(&mut vm, |vm| vm.unmap(K4, M2 - K4));
    assert_eq!((r1, r2), (Ok(()), Ok(())));
    assert_eq!(snapshot(&vm), before);
    assert!(t1.is_empty() && t2.is_empty(), "no writes, no invalidation");
}

#[test]
fn unmap_part_of_2m_block_splits() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    checked(&mut vm, |vm| vm.unmap(0x4010_0000, K4)).unwrap();
    assert_eq!(vm.query(0x4010_0000), None);
    assert_linear(&vm, 0x4000_0000, 0x10_0000, PA, RW);
    assert_linear(&vm, 0x4010_1000, 0xF_F000, PA + 0x10_1000, RW);
    assert_eq!(leaf(&vm, 0x4000_0000).level, 3);
    assert_eq!(vm.table_pages(), 4);
}

#[test]
fn unmap_part_of_1g_block_splits_two_levels() {
    let mut vm = vm();
    map(&mut vm, G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    checked(&mut vm, |vm| vm.unmap(G1 + 5 * M2 + 7 * K4, K4)).unwrap();
    assert_eq!(vm.query(G1 + 5 * M2 + 7 * K4), None);
    assert_eq!(vm.table_pages(), 4);
    assert_eq!(leaf(&vm, G1).level, 2);
    assert_eq!(leaf(&vm, G1 + 5 * M2).level, 3);
    assert_eq!(leaf(&vm, G1 + 511 * M2).level, 2);
    for ipa in [
        G1,
        G1 + 5 * M2,
        G1 + 5 * M2 + 6 * K4,
        G1 + 5 * M2 + 8 * K4,
        G1 + 6 * M2,
        2 * G1 - K4,
    ] {
        assert_eq!(pa_of(&vm, ipa), Some(PA + ipa - G1), "{ipa:#x}");
    }
}

#[test]
fn unmap_across_tables() {
    let mut vm = vm();
    map(&mut vm, 0, 3 * M2, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(vm.table_pages(), 2 + 1 + 3);
    checked(&mut vm, |vm| vm.unmap(M2 - K4, M2 + 2 * K4)).unwrap();
    assert_eq!(
        vm.table_pages(),
        2 + 1 + 2,
        "the middle L3 table became empty"
    );
    assert_linear(&vm, 0, M2 - K4, PA, RW);
    assert_unmapped(&vm, M2 - K4, 3 * K4);
    assert_linear(&vm, 2 * M2 + K4, M2 - K4, PA + 2 * M2 + K4, RW);
}

#[test]
fn unmap_whole_blocks_and_subtrees() {
    let mut vm = vm();
    map(&mut vm, G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    map(&mut vm, 2 * G1 + 7 * K4, 3 * M2, PA, RW, MapFlags::PAGES).unwrap();
    checked(&mut vm, |vm| vm.unmap(G1, 2 * G1)).unwrap();
    assert_eq!(vm.table_pages(), 2);
    let mut n = 0;
    vm.for_each_leaf(&mut |_| n += 1);
    assert_eq!(n, 0);
}

#[test]
fn unmap_out_of_range_rejected() {
    let mut vm = vm();
    map(&mut vm, 0, K4, PA, RW, MapFlags::PAGES).unwrap();
    let before = snapshot(&vm);
    assert_eq!(
        vm.unmap(0, (1 << 40) + K4),
        Err(Error::IpaOutOfRange { ipa: 1 << 40 })
    );
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn map_then_unmap_everything_returns_to_root_only() {
    let mut vm = vm_with(32, 256);
    map(
        &mut vm,
        0x3FF0_0000,
        0x40_0000,
        PA + 0x10_0000,
        RW,
        MapFlags::BLOCKS,
    )
    .unwrap();
    map(&mut vm, 0x8000_0000, G1, PA, RO, MapFlags::BLOCKS).unwrap();
    checked(&mut vm, |vm| vm.unmap(0, 1 << 32)).unwrap();
    assert_eq!(vm.table_pages(), 4);
}

// ---------------------------------------------------------------- protect / modify

#[test]
fn protect_page_in_place() {
    let mut vm = vm();
    map(&mut vm, 0x9000, K4, PA, RW, MapFlags::PAGES).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.protect(0x9000, K4, S2Ap::ReadOnly, true));
    r.unwrap();
    assert_eq!(
        vm.translate(0x9000),
        Some((PA, RW.with_s2ap(S2Ap::ReadOnly).with_xn(true)))
    );
    assert_eq!(tlbi_ipas(&trace), vec![0x9000]);
}

#[test]
fn protect_over_mixed_blocks_and_pages() {
    let mut vm = vm();
    let ipa = 0x4000_0000 - 2 * K4;
    map(
        &mut vm,
        ipa,
        2 * M2 + 4 * K4,
        PA - 2 * K4,
        RW,
        MapFlags::BLOCKS,
    )
    .unwrap();
    let tables = vm.table_pages();
    let (r, trace) = checked_trace(&mut vm, |vm| {
        vm.protect(ipa, 2 * M2 + 4 * K4, S2Ap::ReadOnly, false)
    });
    r.unwrap();
    assert_eq!(vm.table_pages(), tables, "blocks stay blocks");
    assert_eq!(leaf(&vm, 0x4000_0000).level, 2);
    assert_linear(&vm, ipa, 2 * M2 + 4 * K4, PA - 2 * K4, RO);
    // One invalidation per leaf: 2 pages + 2 blocks + 2 pages.
    assert_eq!(
        tlbi_ipas(&trace),
        vec![
            ipa,
            ipa + K4,
            0x4000_0000,
            0x4020_0000,
            0x4040_0000,
            0x4040_1000
        ]
    );
}

#[test]
fn protect_part_of_block_splits() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    checked(&mut vm, |vm| {
        vm.protect(0x4000_0000 + 16 * K4, 2 * K4, S2Ap::None, true)
    })
    .unwrap();
    assert_eq!(leaf(&vm, 0x4000_0000).level, 3);
    assert_eq!(vm.translate(0x4001_0000).unwrap().1.s2ap, S2Ap::None);
    assert_eq!(vm.translate(0x4001_1000).unwrap().1.s2ap, S2Ap::None);
    assert_eq!(vm.translate(0x4001_2000), Some((PA + 0x1_2000, RW)));
    assert_eq!(vm.translate(0x4000_F000), Some((PA + 0xF000, RW)));
}

#[test]
fn protect_with_same_permissions_does_not_split() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    let before = snapshot(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| {
        vm.protect(0x4000_1000, K4, S2Ap::ReadWrite, false)
    });
    r.unwrap();
    assert_eq!(snapshot(&vm), before);
    assert!(trace.is_empty(), "no split, no writes, no invalidation");
}

#[test]
fn protect_with_hole_fails_without_change() {
    let mut vm = vm();
    map(&mut vm, 0, 2 * K4, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, 3 * K4, K4, PA, RW, MapFlags::PAGES).unwrap();
    let before = snapshot(&vm);
    let r = checked(&mut vm, |vm| vm.protect(0, 4 * K4, S2Ap::ReadOnly, false));
    assert_eq!(r, Err(Error::NotMapped { ipa: 2 * K4 }));
    assert_eq!(snapshot(&vm), before);
    assert_eq!(
        vm.translate(0).unwrap().1,
        RW,
        "pages before the hole untouched"
    );
}

#[test]
fn relaxing_permission_is_written_in_place() {
    let mut vm = vm();
    map(&mut vm, 0x9000, K4, PA, RO, MapFlags::PAGES).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.protect(0x9000, K4, S2Ap::ReadWrite, false));
    r.unwrap();
    let writes: Vec<_> = trace
        .iter()
        .filter_map(|t| match t.event {
            TraceEvent::Write { old, new, .. } => Some((old, new)),
            _ => None,
        })
        .collect();
    // RO page 0x77F -> RW page 0x7FF in one store, then the invalidation.
    assert_eq!(
        writes,
        vec![(PA | 0x77F, PA | 0x7FF)],
        "one RO -> RW store, no break"
    );
    assert_eq!(tlbi_ipas(&trace), vec![0x9000]);
    assert!(matches!(
        trace.last().unwrap().event,
        TraceEvent::TlbiIpas { .. }
    ));
}

#[test]
fn software_bits_change_needs_no_invalidation() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| {
        vm.modify_attrs(0x4000_0000, M2, &|a| {
            a.with_sw(SwBits::SW0.union(SwBits::SW2))
        })
    });
    r.unwrap();
    assert_eq!(
        trace.len(),
        1,
        "one descriptor store, no invalidation: {trace:?}"
    );
    let a = leaf(&vm, 0x4000_0000).attrs;
    assert!(
        a.sw.contains(SwBits::SW2) && a.sw.contains(SwBits::SW0) && !a.sw.contains(SwBits::SW1)
    );
    assert_eq!(raw_leaf(&vm, 0x4000_0000), PA | 0x77D | (0b0101 << 55));
}

#[test]
fn memory_type_change_is_break_before_make() {
    let mut vm = vm();
    map(&mut vm, 0x9000, K4, PA, RW, MapFlags::PAGES).unwrap();
    take_trace(&mut vm);
    let live = live_tables(&vm);
    vm.modify_attrs(0x9000, K4, &|a| Attrs {
        mem: MemAttr::NormalNonCacheable,
        ..a
    })
    .unwrap();
    let trace = take_trace(&mut vm);
    check_bbm(&trace, &live, 7);
    let kinds: Vec<String> = trace
        .iter()
        .map(|t| match &t.event {
            TraceEvent::Write { old, new, .. } => format!("w {old:#x}->{new:#x}"),
            TraceEvent::TlbiIpas { ipas, .. } => format!("tlbi {ipas:x?}"),
            e => format!("{e:?}"),
        })
        .collect();
    // NC: MemAttr 0b0101 << 2 = 0x14 instead of 0x3C => 0x7D7.
    assert_eq!(
        kinds,
        vec![
            format!("w {:#x}->0x0", PA | 0x7FF),
            "tlbi [9000]".to_string(),
            format!("w 0x0->{:#x}", PA | 0x7D7),
        ]
    );
}

// ---------------------------------------------------------------- split / merge

#[test]
fn split_2m_block_keeps_mapping() {
    let mut vm = vm();
    map(
        &mut vm,
        0x4000_0000,
        M2,
        PA,
        RO.with_sw(SwBits::SW2),
        MapFlags::BLOCKS,
    )
    .unwrap();
    checked(&mut vm, |vm| vm.split_block(0x4012_3000)).unwrap();
    assert_eq!(leaf(&vm, 0x4012_3000).level, 3);
    assert_linear(&vm, 0x4000_0000, M2, PA, RO.with_sw(SwBits::SW2));
    assert_eq!(vm.table_pages(), 4);
}

#[test]
fn split_1g_block_into_2m_blocks() {
    let mut vm = vm();
    map(&mut vm, G1, G1, PA, RW, MapFlags::BLOCKS).unwrap();
    checked(&mut vm, |vm| vm.split_block(G1 + 3 * M2)).unwrap();
    let mut leaves = Vec::new();
    vm.for_each_leaf(&mut |l| leaves.push(*l));
    assert_eq!(leaves.len(), 512);
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(
            (l.ipa, l.pa, l.level, l.attrs),
            (G1 + i as u64 * M2, PA + i as u64 * M2, 2, RW)
        );
    }
}

#[test]
fn split_rejects_pages_and_holes() {
    let mut vm = vm();
    map(&mut vm, 0, K4, PA, RW, MapFlags::PAGES).unwrap();
    let before = snapshot(&vm);
    assert_eq!(vm.split_block(0), Err(Error::NotABlock { ipa: 0 }));
    assert_eq!(vm.split_block(K4), Err(Error::NotMapped { ipa: K4 }));
    assert_eq!(vm.split_block(G1), Err(Error::NotMapped { ipa: G1 }));
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn merge_uniform_pages_into_block() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::PAGES).unwrap();
    let merged = checked(&mut vm, |vm| vm.merge(0x4000_0000, M2)).unwrap();
    assert_eq!(merged, 1);
    assert_eq!(leaf(&vm, 0x4000_0000).level, 2);
    assert_eq!(raw_leaf(&vm, 0x4000_0000), PA | 0x7FD);
    assert_eq!(vm.table_pages(), 3);
}

#[test]
fn merge_refuses_mixed_attributes_discontiguous_or_unaligned_output() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, 0x4020_0000, M2, PA + M2, RW, MapFlags::PAGES).unwrap();
    map(
        &mut vm,
        0x4040_0000,
        M2,
        PA + 4 * M2 + K4,
        RW,
        MapFlags::PAGES,
    )
    .unwrap();
    map(&mut vm, 0x4060_0000, M2, PA + 8 * M2, RW, MapFlags::PAGES).unwrap();
    checked(&mut vm, |vm| {
        vm.protect(0x4000_5000, K4, S2Ap::ReadOnly, false)
    })
    .unwrap(); // mixed perms
    checked(&mut vm, |vm| {
        vm.modify_attrs(0x4020_0000, K4, &|a| a.with_sw(SwBits::SW3))
    })
    .unwrap(); // sw bits
               // discontiguous: one page elsewhere
    checked(&mut vm, |vm| vm.replace_page(0x4060_0000 + 9 * K4, PA, RW)).unwrap();
    let before = snapshot(&vm);
    assert_eq!(checked(&mut vm, |vm| vm.merge(0x4000_0000, 4 * M2)), Ok(0));
    assert_eq!(snapshot(&vm), before);
}

#[test]
fn merge_two_levels_into_1g_block() {
    let mut vm = vm_with(40, 1024);
    map(&mut vm, G1, G1, PA, RO, MapFlags::PAGES).unwrap();
    assert_eq!(vm.table_pages(), 2 + 1 + 512);
    let merged = checked(&mut vm, |vm| vm.merge(0, 4 * G1)).unwrap();
    assert_eq!(merged, 513);
    assert_eq!(vm.table_pages(), 2);
    let l = leaf(&vm, G1 + 12345 * K4);
    assert_eq!((l.ipa, l.pa, l.level), (G1, PA, 1));
}

#[test]
fn merge_only_inside_range() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, 2 * M2, PA, RW, MapFlags::PAGES).unwrap();
    assert_eq!(checked(&mut vm, |vm| vm.merge(0x4000_0000, M2 + K4)), Ok(1));
    assert_eq!(leaf(&vm, 0x4000_0000).level, 2);
    assert_eq!(leaf(&vm, 0x4020_0000).level, 3);
}

#[test]
fn split_then_merge_restores_tables() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    let before = snapshot(&vm);
    checked(&mut vm, |vm| vm.split_block(0x4000_0000)).unwrap();
    assert_ne!(snapshot(&vm), before);
    assert_eq!(checked(&mut vm, |vm| vm.merge(G1, G1)), Ok(1));
    assert_eq!(snapshot(&vm).tables, before.tables);
}

// ---------------------------------------------------------------- replace (copy-on-write)

#[test]
fn replace_page_in_2m_block() {
    let mut vm = vm();
    let golden = RO.with_sw(SwBits::SW2);
    map(&mut vm, 0x4000_0000, M2, PA, golden, MapFlags::BLOCKS).unwrap();
    let old = checked(&mut vm, |vm| {
        vm.replace_page(0x4000_7000, 0x2_0000_0000, RW.with_sw(SwBits::SW3))
    })
    .unwrap();
    assert_eq!(
        old,
        Some(Leaf {
            ipa: 0x4000_0000,
            pa: PA,
            level: 2,
            attrs: golden
        })
    );
    assert_eq!(
        vm.translate(0x4000_7000),
        Some((0x2_0000_0000, RW.with_sw(SwBits::SW3)))
    );
    assert_linear(&vm, 0x4000_0000, 0x7000, PA, golden);
    assert_linear(&vm, 0x4000_8000, M2 - 0x8000, PA + 0x8000, golden);
    assert_eq!(vm.table_pages(), 4);
}

#[test]
fn replace_page_in_1g_block() {
    let mut vm = vm();
    map(&mut vm, G1, G1, PA, RO, MapFlags::BLOCKS).unwrap();
    let ipa = G1 + 300 * M2 + 17 * K4;
    checked(&mut vm, |vm| vm.replace_page(ipa, 0x3_0000_0000, RW)).unwrap();
    assert_eq!(vm.translate(ipa), Some((0x3_0000_0000, RW)));
    assert_eq!(vm.table_pages(), 4);
    for probe in [
        G1,
        ipa - K4,
        ipa + K4,
        G1 + 300 * M2,
        G1 + 301 * M2,
        2 * G1 - K4,
    ] {
        assert_eq!(
            vm.translate(probe),
            Some((PA + probe - G1, RO)),
            "{probe:#x}"
        );
    }
}

#[test]
fn replace_page_that_is_a_page() {
    let mut vm = vm();
    map(&mut vm, 0x8000, K4, PA, RO, MapFlags::PAGES).unwrap();
    let (old, trace) = checked_trace(&mut vm, |vm| vm.replace_page(0x8000, PA + M2, RW));
    assert_eq!(old.unwrap().map(|l| (l.pa, l.level)), Some((PA, 3)));
    assert_eq!(vm.translate(0x8000), Some((PA + M2, RW)));
    assert_eq!(tlbi_ipas(&trace), vec![0x8000]);
}

#[test]
fn replace_unmapped_page_maps_it() {
    let mut vm = vm();
    let (old, trace) = checked_trace(&mut vm, |vm| vm.replace_page(0x8000, PA, RW));
    assert_eq!(old, Ok(None));
    assert_eq!(vm.translate(0x8000), Some((PA, RW)));
    assert_eq!(
        tlbi_ipas(&trace).len() + tlbi_vmids(&trace),
        0,
        "nothing was valid, nothing to invalidate"
    );
}

// ---------------------------------------------------------------- walk, simulate, visit

#[test]
fn simulate_access_reports_mmu_faults() {
    let mut vm = vm();
    assert_eq!(
        vm.simulate_access(0x4000_0000, Access::Read),
        Err(FaultStatus::new(FaultKind::Translation, Some(1)))
    );
    map(&mut vm, 0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    map(
        &mut vm,
        0x4020_0000,
        K4,
        PA,
        Attrs::device_rw(),
        MapFlags::PAGES,
    )
    .unwrap();
    map(
        &mut vm,
        0x4020_1000,
        K4,
        PA,
        Attrs { af: false, ..RW },
        MapFlags::PAGES,
    )
    .unwrap();
    assert_eq!(vm.simulate_access(0x4000_0010, Access::Read), Ok(PA + 0x10));
    assert_eq!(
        vm.simulate_access(0x4000_0010, Access::Execute),
        Ok(PA + 0x10)
    );
    assert_eq!(
        vm.simulate_access(0x4000_0010, Access::Write),
        Err(FaultStatus::new(FaultKind::Permission, Some(2)))
    );
    assert_eq!(
        vm.simulate_access(0x4020_0000, Access::Execute),
        Err(FaultStatus::new(FaultKind::Permission, Some(3)))
    );
    assert_eq!(
        vm.simulate_access(0x4020_1000, Access::Read),
        Err(FaultStatus::new(FaultKind::AccessFlag, Some(3)))
    );
    assert_eq!(
        vm.simulate_access(0x4020_2000, Access::Read),
        Err(FaultStatus::new(FaultKind::Translation, Some(3)))
    );
    assert_eq!(
        vm.simulate_access(0x4040_0000, Access::Read),
        Err(FaultStatus::new(FaultKind::Translation, Some(2)))
    );
    // Beyond the 40-bit IPA space: the input-size check faults at level 0 (AArch64.S2Translate,
    // FSC 0x04), not at the start level 1 (as QEMU's MMU reports it too).
    for ipa in [1 << 40, (1 << 40) + 0x1000, !0xFFF] {
        assert_eq!(
            vm.simulate_access(ipa, Access::Read),
            Err(FaultStatus::new(FaultKind::Translation, Some(0)))
        );
    }
    map(
        &mut vm,
        0x4040_0000,
        K4,
        PA,
        Attrs::normal(S2Ap::WriteOnly),
        MapFlags::PAGES,
    )
    .unwrap();
    assert!(vm.simulate_access(0x4040_0000, Access::Read).is_err());
    assert_eq!(vm.simulate_access(0x4040_0000, Access::Write), Ok(PA));
}

#[test]
fn for_each_leaf_visits_in_ipa_order() {
    let mut vm = vm();
    map(&mut vm, 600 * G1, K4, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, G1, G1, PA, RO, MapFlags::BLOCKS).unwrap();
    map(&mut vm, 0x5000, 2 * K4, PA + 0x5000, RW, MapFlags::PAGES).unwrap();
    let mut leaves = Vec::new();
    vm.for_each_leaf(&mut |l| leaves.push((l.ipa, l.pa, l.level)));
    assert_eq!(
        leaves,
        vec![
            (0x5000, PA + 0x5000, 3),
            (0x6000, PA + 0x6000, 3),
            (G1, PA, 1),
            (600 * G1, PA, 3)
        ]
    );
}

#[test]
fn query_out_of_range_is_none() {
    let vm = vm();
    assert_eq!(vm.query(1 << 40), None);
    assert_eq!(vm.query(u64::MAX), None);
    assert_eq!(vm.translate(u64::MAX), None);
}

#[test]
fn two_vms_share_one_arena() {
    let shared = SharedArena::new(HostArena::new(ARENA_BASE, 64));
    let mut a = AddressSpace::new(
        shared.clone(),
        RecordingTlb::new(),
        Stage2Config::new(40, PaRange::Bits40, 1),
    )
    .unwrap();
    let mut b = AddressSpace::new(
        shared.clone(),
        RecordingTlb::new(),
        Stage2Config::new(32, PaRange::Bits40, 2),
    )
    .unwrap();
    a.map(0, K4, PA, RW, MapFlags::PAGES).unwrap();
    b.map(0, K4, PA + K4, RO, MapFlags::PAGES).unwrap();
    assert_eq!(a.translate(0), Some((PA, RW)));
    assert_eq!(b.translate(0), Some((PA + K4, RO)));
    assert_eq!(
        shared.lock().pages_in_use(),
        a.table_pages() + b.table_pages()
    );
    b.unmap(0, K4).unwrap();
    // A CoW split over the shared arena (its batched table fill).
    a.map(0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    a.replace_page(0x4000_2000, PA + G1, RW).unwrap();
    assert_eq!(a.translate(0x4000_1000), Some((PA + 0x1000, RO)));
    assert_eq!(a.translate(0x4000_2000), Some((PA + G1, RW)));
    assert_eq!(a.translate(0x4000_3000), Some((PA + 0x3000, RO)));
    a.unmap(0x4000_0000, M2).unwrap();
    assert_eq!(
        shared.lock().pages_in_use(),
        a.table_pages() + b.table_pages()
    );
    a.destroy();
    assert_eq!(shared.lock().pages_in_use(), 4);
    b.destroy();
    assert_eq!(shared.lock().pages_in_use(), 0);
}

#[test]
fn address_space_is_send() {
    fn send<T: Send>() {}
    send::<Vm>();
    send::<AddressSpace<SharedArena, RecordingTlb>>();
}

#[test]
fn modify_mapped_attrs_skips_holes() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, 2 * K4, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, 0x4000_3000, K4, PA + 0x3000, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, 0x4040_0000, M2, PA + M2, RW, MapFlags::BLOCKS).unwrap();
    let tables = vm.table_pages();
    let r = checked(&mut vm, |vm| {
        vm.modify_mapped_attrs(0x4000_0000, 3 * M2, &|a| a.with_s2ap(S2Ap::ReadOnly))
    });
    r.unwrap();
    assert_eq!(vm.table_pages(), tables, "holes get no tables");
    assert_eq!(vm.translate(0x4000_1000), Some((PA + 0x1000, RO)));
    assert_eq!(vm.query(0x4000_2000), None);
    assert_eq!(vm.translate(0x4000_3000), Some((PA + 0x3000, RO)));
    assert_eq!(leaf(&vm, 0x4040_0000).attrs, RO);
    assert_eq!(vm.query(0x4020_0000), None);
    // The strict variant refuses the same range.
    assert_eq!(
        vm.modify_attrs(0x4000_0000, 3 * M2, &|a| a),
        Err(Error::NotMapped { ipa: 0x4000_2000 })
    );
}

#[test]
fn for_each_leaf_in_range_visits_only_intersecting_leaves() {
    let mut vm = vm();
    map(&mut vm, 0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    map(&mut vm, 0x4020_0000, 4 * K4, PA, RW, MapFlags::PAGES).unwrap();
    map(&mut vm, 0x8000_0000, G1, PA, RO, MapFlags::BLOCKS).unwrap();
    let mut seen = Vec::new();
    vm.for_each_leaf_in(0x401F_F000, 0x3000, &mut |l| seen.push((l.ipa, l.level)))
        .unwrap();
    assert_eq!(
        seen,
        vec![(0x4000_0000, 2), (0x4020_0000, 3), (0x4020_1000, 3)]
    );
    seen.clear();
    vm.for_each_leaf_in(0x7FFF_F000, 2 * K4, &mut |l| seen.push((l.ipa, l.level)))
        .unwrap();
    assert_eq!(seen, vec![(0x8000_0000, 1)]);
    assert_eq!(
        vm.for_each_leaf_in(1 << 40, K4, &mut |_| {}),
        Err(Error::IpaOutOfRange { ipa: 1 << 40 })
    );
    assert_eq!(vm.for_each_leaf_in(0, 0, &mut |_| {}), Err(Error::ZeroSize));
}
