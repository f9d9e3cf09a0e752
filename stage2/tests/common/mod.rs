//! Helpers shared by the integration tests: VM construction, table snapshots, structural
//! invariants and a break-before-make checker over the arena/TLB trace.
#![allow(dead_code)]

use gunyah_stage2::host::{merge_traces, HostArena, RecordingTlb, TraceEvent, Traced};
use gunyah_stage2::{AddressSpace, PaRange, Stage2Config, ENTRIES_PER_TABLE};
use std::collections::{HashMap, HashSet};

pub type Vm = AddressSpace<HostArena, RecordingTlb>;

pub const ARENA_BASE: u64 = 0x8000_0000;
pub const K4: u64 = 0x1000;
pub const M2: u64 = 0x20_0000;
pub const G1: u64 = 0x4000_0000;

/// A traced VM with `ipa_bits`, PA range 48 bits, VMID 7, and an arena of `pages` pages.
pub fn vm_with(ipa_bits: u8, pages: usize) -> Vm {
    let mut arena = HostArena::new(ARENA_BASE, pages);
    arena.enable_trace();
    let cfg = Stage2Config::new(ipa_bits, PaRange::Bits48, 7);
    AddressSpace::new(arena, RecordingTlb::new(), cfg).expect("create address space")
}

/// 40-bit IPA (level-1 start, 2 concatenated root tables), 4096-page arena.
pub fn vm() -> Vm {
    vm_with(40, 4096)
}

/// Raw value of descriptor `index` of table `pa`.
pub fn entry(vm: &Vm, pa: u64, index: usize) -> u64 {
    use gunyah_stage2::TableMemory;
    vm.memory().read_entry(pa, index)
}

/// Every reachable table page and its 512 descriptors, plus counters.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub tables: Vec<(u64, u8, Vec<u64>)>,
    pub table_pages: usize,
    pub arena_in_use: usize,
}

pub fn snapshot(vm: &Vm) -> Snapshot {
    let mut list = Vec::new();
    vm.for_each_table(&mut |pa, level| list.push((pa, level)));
    let tables = list
        .into_iter()
        .map(|(pa, level)| {
            let entries = (0..ENTRIES_PER_TABLE).map(|i| entry(vm, pa, i)).collect();
            (pa, level, entries)
        })
        .collect();
    Snapshot {
        tables,
        table_pages: vm.table_pages(),
        arena_in_use: vm.memory().pages_in_use(),
    }
}

/// Structural invariants: the reachable tables are exactly the pages counted and allocated,
/// no table is reachable twice, and no non-root table is empty.
pub fn check_invariants(vm: &Vm) {
    let mut seen = HashSet::new();
    let mut empty_non_root = Vec::new();
    let start = vm.geometry().start_level();
    vm.for_each_table(&mut |pa, level| {
        assert!(seen.insert(pa), "table {pa:#x} reachable twice");
        assert!(
            vm.memory().is_allocated(pa),
            "reachable table {pa:#x} not allocated"
        );
        if level != start && (0..ENTRIES_PER_TABLE).all(|i| entry(vm, pa, i) == 0) {
            empty_non_root.push(pa);
        }
    });
    assert_eq!(
        seen.len(),
        vm.table_pages(),
        "reachable tables vs table_pages()"
    );
    assert_eq!(
        vm.memory().pages_in_use(),
        vm.table_pages() + vm.spare_tables(),
        "arena pages vs table_pages() + spare_tables() (leak)"
    );
    assert!(
        empty_non_root.is_empty(),
        "empty tables not freed: {empty_non_root:x?}"
    );
}

/// The trace of everything since the last call (writes, frees and TLB invalidations).
pub fn take_trace(vm: &mut Vm) -> Vec<Traced> {
    let a = vm.memory_mut().take_trace();
    let b = vm.tlb_mut().take();
    merge_traces(a, b)
}

const OA: u64 = 0x0000_FFFF_FFFF_F000;

fn valid(d: u64) -> bool {
    d & 1 != 0
}

/// Replacing `old` by `new` in a live table needs break-before-make: both valid and a different
/// output address, descriptor type, or memory type/shareability.
pub fn needs_bbm(old: u64, new: u64) -> bool {
    valid(old) && valid(new) && ((old ^ new) & (OA | 0b11 | 0x3C | 0x300)) != 0
}

/// Check break-before-make and free-after-invalidate over one operation's trace.
///
/// `live` holds the tables reachable by the MMU before the operation. Writes into tables that
/// are not yet linked are exempt. Every valid→valid write needing BBM is an error; every
/// `0 → valid` write into an entry broken earlier in the trace must have a TLB invalidation of
/// this VMID between the break and the make; every freed table must have been unlinked, with a
/// TLB invalidation between the unlink and the free.
pub fn check_bbm(trace: &[Traced], live: &HashSet<u64>, vmid: u16) {
    let mut live = live.clone();
    let mut broken: HashMap<(u64, usize), (u64, bool)> = HashMap::new(); // -> (old, invalidated)
    let mut unlinked: HashMap<u64, bool> = HashMap::new(); // table -> invalidated since unlink
    for t in trace {
        match &t.event {
            TraceEvent::Write {
                table_pa,
                index,
                old,
                new,
            } => {
                if !live.contains(table_pa) {
                    continue;
                }
                let key = (*table_pa, *index);
                assert!(
                    !needs_bbm(*old, *new),
                    "seq {}: live entry {table_pa:#x}[{index}] {old:#x} -> {new:#x} without break-before-make",
                    t.seq
                );
                if valid(*old) && !valid(*new) {
                    broken.insert(key, (*old, false));
                    if old & 3 == 3 {
                        // A table (or page) descriptor was cleared: if it pointed at a table,
                        // that table is unlinked now.
                        unlinked.insert(old & OA, false);
                    }
                }
                if !valid(*old) && valid(*new) {
                    if let Some((prev, invalidated)) = broken.remove(&key) {
                        assert!(
                            invalidated,
                            "seq {}: {table_pa:#x}[{index}] remade ({prev:#x} -> 0 -> {new:#x}) before TLB invalidation",
                            t.seq
                        );
                    }
                    if new & 3 == 3 {
                        live.insert(new & OA);
                    }
                }
            }
            TraceEvent::TlbiIpas { vmid: v, ipas } => {
                assert_eq!(*v, vmid, "TLBI for the wrong VMID");
                assert!(!ipas.is_empty() && ipas.len() <= 512);
                broken.values_mut().for_each(|b| b.1 = true);
                unlinked.values_mut().for_each(|b| *b = true);
            }
            TraceEvent::TlbiVmid { vmid: v } => {
                assert_eq!(*v, vmid, "TLBI for the wrong VMID");
                broken.values_mut().for_each(|b| b.1 = true);
                unlinked.values_mut().for_each(|b| *b = true);
            }
            TraceEvent::Free { pa } => {
                if live.contains(pa) {
                    // Tables under an unlinked table are freed with it; find whether this page
                    // or an ancestor was unlinked and invalidated. We require that at least one
                    // unlink happened and every unlink so far was invalidated.
                    assert!(
                        !unlinked.is_empty(),
                        "seq {}: live table {pa:#x} freed without unlink",
                        t.seq
                    );
                    assert!(
                        unlinked.values().all(|&inv| inv),
                        "seq {}: table {pa:#x} freed before TLB invalidation",
                        t.seq
                    );
                }
            }
        }
    }
    assert!(
        broken.values().all(|b| b.1),
        "operation ended with broken entries not invalidated: {broken:x?}"
    );
}

/// The set of tables reachable now.
pub fn live_tables(vm: &Vm) -> HashSet<u64> {
    let mut s = HashSet::new();
    vm.for_each_table(&mut |pa, _| {
        s.insert(pa);
    });
    s
}

/// Run `f` on the VM, then check BBM over its trace and the structural invariants.
pub fn checked<R>(vm: &mut Vm, f: impl FnOnce(&mut Vm) -> R) -> R {
    take_trace(vm);
    let live = live_tables(vm);
    let r = f(vm);
    let trace = take_trace(vm);
    check_bbm(&trace, &live, vm.vmid());
    check_invariants(vm);
    r
}

/// Like `checked`, also returning the operation's trace.
pub fn checked_trace<R>(vm: &mut Vm, f: impl FnOnce(&mut Vm) -> R) -> (R, Vec<Traced>) {
    take_trace(vm);
    let live = live_tables(vm);
    let r = f(vm);
    let trace = take_trace(vm);
    check_bbm(&trace, &live, vm.vmid());
    check_invariants(vm);
    (r, trace)
}

/// IPAs invalidated one by one in a trace.
pub fn tlbi_ipas(trace: &[Traced]) -> Vec<u64> {
    trace
        .iter()
        .flat_map(|t| match &t.event {
            TraceEvent::TlbiIpas { ipas, .. } => ipas.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// Number of whole-VMID invalidations in a trace.
pub fn tlbi_vmids(trace: &[Traced]) -> usize {
    trace
        .iter()
        .filter(|t| matches!(t.event, TraceEvent::TlbiVmid { .. }))
        .count()
}
