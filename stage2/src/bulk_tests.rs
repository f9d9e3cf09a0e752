//! The bulk run of a map (`update::Run`) against the per-entry path it replaces: the same
//! operations on two address spaces, one with the bulk run switched off, must give the same
//! results, the same tables word for word (table pages come from identical arenas, so even
//! their addresses agree), the same descriptor writes in the same order and the same TLB
//! invalidations.

extern crate std;

use super::BULK;
use crate::host::{HostArena, RecordingTlb, TraceEvent};
use crate::{AddressSpace, Attrs, MapFlags, PaRange, S2Ap, Stage2Config, TableMemory, Update};
use proptest::prelude::*;
use std::vec::Vec;

type Vm = AddressSpace<HostArena, RecordingTlb>;

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;
/// A 2 GiB window from 1 GiB (it crosses a 1 GiB boundary, so 1 GiB blocks occur too).
const WINDOW: u64 = 2 * G1;
const PA_BASE: u64 = 0x40_0000_0000;

fn vm() -> Vm {
    let mut arena = HostArena::new(0x8000_0000, 4096);
    arena.enable_trace();
    let cfg = Stage2Config::new(40, PaRange::Bits48, 7);
    AddressSpace::new(arena, RecordingTlb::new(), cfg).unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    /// `map(ipa, size, ipa + delta, attrs, flags)`.
    Map {
        ipa: u64,
        size: u64,
        delta: u64,
        attrs: usize,
        flags: MapFlags,
    },
    /// The same through `plan_batch` / `reserve_tables` / `apply_batch` (the RM's path).
    BatchMap {
        ipa: u64,
        size: u64,
        delta: u64,
        attrs: usize,
        flags: MapFlags,
    },
    Unmap {
        ipa: u64,
        size: u64,
    },
}

fn attrs(i: usize) -> Attrs {
    match i % 3 {
        0 => Attrs::normal(S2Ap::ReadOnly),
        1 => Attrs::normal_rw(),
        _ => Attrs::device_rw(),
    }
}

/// A range inside the window: block-aligned or not, from one page to most of the window.
fn range() -> impl Strategy<Value = (u64, u64)> {
    let start = prop_oneof![
        (0..WINDOW / M2).prop_map(|c| G1 + c * M2),
        (0..WINDOW / K4).prop_map(|p| G1 + p * K4),
        (0..2u64).prop_map(|g| G1 + g * G1),
    ];
    let len = prop_oneof![
        (1..64u64).prop_map(|p| p * K4),
        (1..700u64).prop_map(|c| c * M2),
        (1..700u64).prop_map(|c| c * M2 + 3 * K4),
        Just(G1),
        Just(G1 + M2),
    ];
    (start, len).prop_map(|(s, l)| (s, l.min(G1 + WINDOW - s)))
}

fn flags() -> impl Strategy<Value = MapFlags> {
    prop_oneof![
        Just(MapFlags::PAGES),
        Just(MapFlags::BLOCK_2M),
        Just(MapFlags::BLOCKS),
        Just(MapFlags::BLOCKS.union(MapFlags::REPLACE)),
        Just(MapFlags::BLOCK_2M.union(MapFlags::REPLACE)),
        Just(MapFlags::PAGES.union(MapFlags::REPLACE)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // PA - IPA: aligned for 1 GiB blocks, for 2 MiB only, or for pages only.
    let delta = prop_oneof![Just(PA_BASE), Just(PA_BASE + M2), Just(PA_BASE + K4)];
    prop_oneof![
        3 => (range(), delta.clone(), 0..3usize, flags()).prop_map(|((ipa, size), delta, attrs, flags)| {
            Op::Map { ipa, size, delta, attrs, flags }
        }),
        2 => (range(), delta, 0..3usize, flags()).prop_map(|((ipa, size), delta, attrs, flags)| {
            Op::BatchMap { ipa, size, delta, attrs, flags }
        }),
        2 => range().prop_map(|(ipa, size)| Op::Unmap { ipa, size }),
    ]
}

/// Run `op` on `vm` with the bulk run on or off.
fn apply(vm: &mut Vm, op: &Op, bulk: bool) -> Result<(), crate::Error> {
    BULK.with(|b| b.set(bulk));
    let r = match *op {
        Op::Map {
            ipa,
            size,
            delta,
            attrs: a,
            flags,
        } => vm.map(ipa, size, ipa + delta, attrs(a), flags),
        Op::BatchMap {
            ipa,
            size,
            delta,
            attrs: a,
            flags,
        } => {
            let u = [Update::Map {
                ipa,
                size,
                pa: ipa + delta,
                attrs: attrs(a),
                flags,
            }];
            vm.plan_batch(&u)
                .and_then(|n| vm.reserve_tables(n))
                .map(|r| vm.apply_batch(r, &u))
        }
        Op::Unmap { ipa, size } => vm.unmap(ipa, size),
    };
    BULK.with(|b| b.set(true));
    r
}

/// Every reachable table with its 512 descriptors.
fn tables(vm: &Vm) -> Vec<(u64, u8, Vec<u64>)> {
    let mut list = Vec::new();
    vm.for_each_table(&mut |pa, level| list.push((pa, level)));
    list.into_iter()
        .map(|(pa, l)| {
            (
                pa,
                l,
                (0..512).map(|i| vm.memory().read_entry(pa, i)).collect(),
            )
        })
        .collect()
}

/// The descriptor writes and frees, and the TLB invalidations, since the last call.
fn trace(vm: &mut Vm) -> (Vec<TraceEvent>, Vec<TraceEvent>) {
    let w = vm.memory_mut().take_trace().into_iter().map(|t| t.event);
    let t = vm.tlb_mut().take().into_iter().map(|t| t.event);
    (w.collect(), t.collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn bulk_run_is_exactly_the_per_entry_path(ops in proptest::collection::vec(op(), 1..8)) {
        let (mut bulk, mut per_entry) = (vm(), vm());
        for op in &ops {
            let a = apply(&mut bulk, op, true);
            let b = apply(&mut per_entry, op, false);
            prop_assert_eq!(a, b, "result of {:?}", op);
            prop_assert_eq!(bulk.table_pages(), per_entry.table_pages());
            prop_assert!(tables(&bulk) == tables(&per_entry), "tables differ after {:?}", op);
            prop_assert!(trace(&mut bulk) == trace(&mut per_entry), "trace differs after {:?}", op);
        }
    }
}

/// The case the bulk run is for: 256 × 2 MiB blocks over nothing, and the switch really
/// switches (the per-entry path is not the bulk path by another name: `decide` is not called
/// for the run, which the counter below cannot see, but both give one level-2 table).
#[test]
fn a_golden_sized_map_is_256_blocks_in_one_table() {
    for bulk in [true, false] {
        let mut v = vm();
        let op = Op::Map {
            ipa: 2 * G1,
            size: 256 * M2,
            delta: PA_BASE,
            attrs: 0,
            flags: MapFlags::BLOCKS,
        };
        apply(&mut v, &op, bulk).unwrap();
        assert_eq!(v.table_pages(), 3, "two root pages and one level-2 table");
        let mut n = 0;
        v.for_each_leaf(&mut |l| {
            assert_eq!((l.level, l.pa), (2, l.ipa + PA_BASE));
            n += 1;
        });
        assert_eq!(n, 256);
        // Over a mapped range the map is refused, and nothing changes.
        let before = tables(&v);
        let _ = trace(&mut v);
        assert!(matches!(
            apply(&mut v, &op, bulk),
            Err(crate::Error::AlreadyMapped { .. })
        ));
        assert!(tables(&v) == before);
        assert_eq!(trace(&mut v), (Vec::new(), Vec::new()));
    }
}
