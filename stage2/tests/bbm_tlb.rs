//! Exact break-before-make sequences and TLB invalidation batching, from the recorded trace.

mod common;
use common::*;
use gunyah_stage2::host::{HostArena, RecordingTlb, TraceEvent, Traced};
use gunyah_stage2::{AddressSpace, Attrs, MapFlags, PaRange, S2Ap, Stage2Config};

const PA: u64 = 0x1_0000_0000;
const RW: Attrs = Attrs::normal_rw();
const RO: Attrs = Attrs::normal_ro();
const OA: u64 = 0x0000_FFFF_FFFF_F000;

/// A readable rendering of the events that touch live tables (plus TLB and frees).
fn live_events(trace: &[Traced], live: &std::collections::HashSet<u64>) -> Vec<String> {
    trace
        .iter()
        .filter_map(|t| match &t.event {
            TraceEvent::Write {
                table_pa,
                index,
                old,
                new,
            } if live.contains(table_pa) => {
                Some(format!("w {table_pa:#x}[{index}] {old:#x}->{new:#x}"))
            }
            TraceEvent::Write { .. } => None,
            TraceEvent::TlbiIpas { ipas, .. } => Some(format!("tlbi {ipas:x?}")),
            TraceEvent::TlbiVmid { vmid } => Some(format!("tlbi-vmid {vmid}")),
            TraceEvent::Free { pa } => Some(format!("free {pa:#x}")),
        })
        .collect()
}

/// (table, index) of the descriptor mapping `ipa` at `level` (40-bit IPA: root level 1).
fn slot(vm: &Vm, ipa: u64, level: u8) -> (u64, usize) {
    let mut table = vm.root_pa() + (ipa >> 39) * K4;
    for l in 1..level {
        let d = entry(
            vm,
            table,
            ((ipa >> (12 + 9 * (3 - l as u32))) & 511) as usize,
        );
        table = d & OA;
    }
    (
        table,
        ((ipa >> (12 + 9 * (3 - level as u32))) & 511) as usize,
    )
}

#[test]
fn cow_replace_in_2m_block_breaks_invalidates_then_links_prepared_table() {
    let mut vm = vm();
    vm.map(0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    let (l2, idx) = slot(&vm, 0x4000_0000, 2);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| {
        vm.replace_page(0x4000_3000, 0x2_0000_0000, RW)
    });
    r.unwrap();
    let (new_table, _) = slot(&vm, 0x4000_3000, 3);
    assert_eq!(
        live_events(&trace, &live),
        vec![
            format!("w {l2:#x}[{idx}] {:#x}->0x0", PA | 0x77D),
            "tlbi [40000000]".to_string(),
            format!("w {l2:#x}[{idx}] 0x0->{:#x}", new_table | 3),
        ]
    );
    // Every write into the new table (512 pages, then the CoW page) precedes the link.
    let link_seq = trace
        .iter()
        .find(|t| matches!(t.event, TraceEvent::Write { new, .. } if new == new_table | 3))
        .unwrap()
        .seq;
    let prep: Vec<_> = trace
        .iter()
        .filter(|t| matches!(t.event, TraceEvent::Write { table_pa, .. } if table_pa == new_table))
        .collect();
    assert!(prep.len() >= 512);
    assert!(prep.iter().all(|t| t.seq < link_seq));
    // The CoW page inside the new table: RW (0x7FF) at the private PA.
    assert_eq!(entry(&vm, new_table, 3), 0x2_0000_07FF);
    assert_eq!(entry(&vm, new_table, 4), (PA + 0x4000) | 0x77F);
}

#[test]
fn cow_replace_in_1g_block_is_one_break() {
    let mut vm = vm();
    vm.map(G1, G1, PA, RO, MapFlags::BLOCKS).unwrap();
    let (root, idx) = slot(&vm, G1, 1);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| {
        vm.replace_page(G1 + M2 + K4, 0x2_0000_0000, RW)
    });
    r.unwrap();
    let (l2, _) = slot(&vm, G1, 2);
    assert_eq!(
        live_events(&trace, &live),
        vec![
            format!("w {root:#x}[{idx}] {:#x}->0x0", PA | 0x77D),
            "tlbi [40000000]".to_string(),
            format!("w {root:#x}[{idx}] 0x0->{:#x}", l2 | 3),
        ]
    );
}

#[test]
fn split_block_sequence() {
    let mut vm = vm();
    vm.map(0x4000_0000, M2, PA, RW, MapFlags::BLOCKS).unwrap();
    let (l2, idx) = slot(&vm, 0x4000_0000, 2);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| vm.split_block(0x4000_0000));
    r.unwrap();
    let (l3, _) = slot(&vm, 0x4000_0000, 3);
    assert_eq!(
        live_events(&trace, &live),
        vec![
            format!("w {l2:#x}[{idx}] {:#x}->0x0", PA | 0x7FD),
            "tlbi [40000000]".to_string(),
            format!("w {l2:#x}[{idx}] 0x0->{:#x}", l3 | 3),
        ]
    );
}

/// The trace of a read-only page at 0x8000 (entry `idx` of `l3`) replaced by a writable one
/// at another PA: break, invalidate, make.
fn page_break_before_make(l3: u64, idx: usize) -> Vec<String> {
    vec![
        format!("w {l3:#x}[{idx}] {:#x}->0x0", PA | 0x77F),
        "tlbi [8000]".to_string(),
        format!("w {l3:#x}[{idx}] 0x0->{:#x}", (PA + M2) | 0x7FF),
    ]
}

#[test]
fn replace_page_at_page_level_sequence() {
    let mut vm = vm();
    vm.map(0x8000, K4, PA, RO, MapFlags::PAGES).unwrap();
    let (l3, idx) = slot(&vm, 0x8000, 3);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| vm.replace_page(0x8000, PA + M2, RW));
    r.unwrap();
    assert_eq!(live_events(&trace, &live), page_break_before_make(l3, idx));
}

/// The copy-on-write replace of a page entry found by a walk (`entry` + `replace_page_at`):
/// the same break-before-make as `replace_page`, and one write sync at the end; a replace
/// that keeps the output (only the rights change) goes in place with one invalidation.
#[test]
fn replace_page_at_of_a_walked_page_entry_sequence() {
    let mut vm = vm();
    vm.map(0x8000, K4, PA, RO, MapFlags::PAGES).unwrap();
    let (l3, idx) = slot(&vm, 0x8000, 3);
    let live = live_tables(&vm);
    let e = vm.entry(0x8000).unwrap();
    let syncs = vm.tlb().write_syncs();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.replace_page_at(&e, PA + M2, RW));
    r.unwrap();
    assert_eq!(live_events(&trace, &live), page_break_before_make(l3, idx));
    assert_eq!(vm.tlb().write_syncs(), syncs + 1);
    // Same output, read-only again: no break, the rights change in place, then invalidated.
    let e = vm.entry(0x8000).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.replace_page_at(&e, PA + M2, RO));
    r.unwrap();
    assert_eq!(
        live_events(&trace, &live),
        vec![
            format!(
                "w {l3:#x}[{idx}] {:#x}->{:#x}",
                (PA + M2) | 0x7FF,
                (PA + M2) | 0x77F
            ),
            "tlbi [8000]".to_string(),
        ]
    );
}

#[test]
fn unmap_last_page_frees_tables_after_invalidation() {
    let mut vm = vm();
    vm.map(0x7000, K4, PA, RW, MapFlags::PAGES).unwrap();
    let (l3, i3) = slot(&vm, 0x7000, 3);
    let (l2, i2) = slot(&vm, 0x7000, 2);
    let (root, i1) = slot(&vm, 0x7000, 1);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| vm.unmap(0x7000, K4));
    r.unwrap();
    assert_eq!(
        live_events(&trace, &live),
        vec![
            format!("w {l3:#x}[{i3}] {:#x}->0x0", PA | 0x7FF),
            format!("w {l2:#x}[{i2}] {:#x}->0x0", l3 | 3),
            format!("w {root:#x}[{i1}] {:#x}->0x0", l2 | 3),
            "tlbi [7000]".to_string(),
            format!("free {l3:#x}"),
            format!("free {l2:#x}"),
        ]
    );
}

#[test]
fn block_over_table_invalidates_each_old_leaf_then_frees() {
    let mut vm = vm();
    vm.map(0x4000_0000, 3 * K4, PA, RW, MapFlags::PAGES)
        .unwrap();
    let (l2, idx) = slot(&vm, 0x4000_0000, 2);
    let (l3, _) = slot(&vm, 0x4000_0000, 3);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| {
        vm.map(
            0x4000_0000,
            M2,
            PA,
            RO,
            MapFlags::BLOCKS.union(MapFlags::REPLACE),
        )
    });
    r.unwrap();
    assert_eq!(
        live_events(&trace, &live),
        vec![
            format!("w {l2:#x}[{idx}] {:#x}->0x0", l3 | 3),
            "tlbi [40000000, 40001000, 40002000]".to_string(),
            format!("w {l2:#x}[{idx}] 0x0->{:#x}", PA | 0x77D),
            format!("free {l3:#x}"),
        ]
    );
}

#[test]
fn merge_sequence() {
    let mut vm = vm();
    vm.map(0x4000_0000, M2, PA, RW, MapFlags::PAGES).unwrap();
    let (l2, idx) = slot(&vm, 0x4000_0000, 2);
    let (l3, _) = slot(&vm, 0x4000_0000, 3);
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| vm.merge(0x4000_0000, M2));
    assert_eq!(r, Ok(1));
    let ev = live_events(&trace, &live);
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0], format!("w {l2:#x}[{idx}] {:#x}->0x0", l3 | 3));
    let expected: Vec<u64> = (0..512).map(|i| 0x4000_0000 + i * K4).collect();
    assert_eq!(
        tlbi_ipas(&trace),
        expected,
        "one invalidation per old page, in order"
    );
    assert_eq!(ev[2], format!("w {l2:#x}[{idx}] 0x0->{:#x}", PA | 0x7FD));
    assert_eq!(ev[3], format!("free {l3:#x}"));
}

#[test]
fn unmap_512_pages_is_one_batch_of_512_ipas() {
    let mut vm = vm();
    vm.map(0x4000_0000, M2, PA, RW, MapFlags::PAGES).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.unmap(0x4000_0000, M2));
    r.unwrap();
    let batches: Vec<usize> = trace
        .iter()
        .filter_map(|t| match &t.event {
            TraceEvent::TlbiIpas { ipas, .. } => Some(ipas.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![512]);
    assert_eq!(tlbi_vmids(&trace), 0);
}

#[test]
fn unmap_513_pages_switches_to_whole_vmid() {
    let mut vm = vm();
    vm.map(0x4000_0000, M2 + K4, PA, RW, MapFlags::PAGES)
        .unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.unmap(0x4000_0000, M2 + K4));
    r.unwrap();
    assert_eq!(tlbi_ipas(&trace), Vec::<u64>::new());
    assert_eq!(tlbi_vmids(&trace), 1);
    assert_eq!(vm.table_pages(), 2);
}

#[test]
fn unmap_blocks_one_invalidation_per_block() {
    let mut vm = vm();
    vm.map(G1, 4 * M2, PA, RW, MapFlags::BLOCKS).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.unmap(G1, 4 * M2));
    r.unwrap();
    assert_eq!(
        tlbi_ipas(&trace),
        vec![G1, G1 + M2, G1 + 2 * M2, G1 + 3 * M2]
    );
}

#[test]
fn mapping_into_empty_tables_needs_no_invalidation() {
    let mut vm = vm();
    let (r, trace) = checked_trace(&mut vm, |vm| vm.map(0, 3 * M2, PA, RW, MapFlags::BLOCKS));
    r.unwrap();
    assert_eq!(tlbi_ipas(&trace).len() + tlbi_vmids(&trace), 0);
}

#[test]
fn restricting_many_pages_uses_whole_vmid_and_no_break() {
    let mut vm = vm();
    vm.map(0, 600 * K4, PA, RW, MapFlags::PAGES).unwrap();
    let live = live_tables(&vm);
    let (r, trace) = checked_trace(&mut vm, |vm| vm.protect(0, 600 * K4, S2Ap::ReadOnly, true));
    r.unwrap();
    assert_eq!(tlbi_vmids(&trace), 1);
    let zero_writes = trace
        .iter()
        .filter(|t| matches!(t.event, TraceEvent::Write { table_pa, new: 0, .. } if live.contains(&table_pa)))
        .count();
    assert_eq!(zero_writes, 0, "permission changes are written in place");
}

#[test]
fn many_splits_flush_in_batches_and_stay_ordered() {
    // 100 CoW-style page replacements in 100 different 2 MiB blocks (100 operations), then one
    // map call that replaces 100 blocks at once: more pending "make" writes than one batch holds
    // (64). `checked_trace` verifies every make follows an invalidation of its break.
    let mut vm = vm_with(40, 512);
    vm.map(G1, 100 * M2, PA, RO, MapFlags::BLOCKS).unwrap();
    let (r, trace) = checked_trace(&mut vm, |vm| {
        for i in 0..100u64 {
            vm.replace_page(G1 + i * M2 + 5 * K4, 0x3_0000_0000 + i * K4, RW)?;
        }
        Ok::<(), gunyah_stage2::Error>(())
    });
    r.unwrap();
    assert_eq!(tlbi_ipas(&trace).len(), 100);
    let mut vm2 = vm_with(40, 512);
    vm2.map(G1, 100 * M2, PA, RO, MapFlags::BLOCKS).unwrap();
    // Same result in a single call: protect one page in each block (100 splits at once).
    let (r, trace) = checked_trace(&mut vm2, |vm| {
        vm.modify_attrs(G1, 100 * M2, &|a| a)?; // identity: no change, no split
        vm.map(G1, 100 * M2, PA, RW, MapFlags::REPLACE) // replace every block by 512 pages
    });
    r.unwrap();
    assert_eq!(vm2.table_pages(), 3 + 100);
    assert_eq!(
        tlbi_ipas(&trace).len(),
        100,
        "one invalidation per old block"
    );
    for i in 0..100u64 {
        assert_eq!(
            vm.translate(G1 + i * M2 + 5 * K4),
            Some((0x3_0000_0000 + i * K4, RW))
        );
        assert_eq!(
            vm.translate(G1 + i * M2 + 6 * K4),
            Some((PA + i * M2 + 6 * K4, RO))
        );
        assert_eq!(
            vm2.translate(G1 + i * M2 + 6 * K4),
            Some((PA + i * M2 + 6 * K4, RW))
        );
    }
}

#[test]
fn tlb_events_carry_the_vmid() {
    let mut vm = AddressSpace::new(
        HostArena::new(ARENA_BASE, 64),
        RecordingTlb::new(),
        Stage2Config::new(40, PaRange::Bits40, 0x1234),
    )
    .unwrap();
    vm.map(0, K4, PA, RW, MapFlags::PAGES).unwrap();
    vm.unmap(0, K4).unwrap();
    assert!(matches!(
        vm.tlb().events()[0].event,
        TraceEvent::TlbiIpas { vmid: 0x1234, .. }
    ));
    let (_, tlb) = vm.destroy();
    assert!(matches!(
        tlb.events()[1].event,
        TraceEvent::TlbiVmid { vmid: 0x1234 }
    ));
}

#[test]
fn bbm_checker_catches_a_valid_to_valid_remap() {
    // The checker itself must be able to fail: a hand-made trace replacing a live page with
    // another output address in one store.
    let live: std::collections::HashSet<u64> = [0x8000_0000].into_iter().collect();
    let bad = vec![Traced {
        seq: 1,
        event: TraceEvent::Write {
            table_pa: 0x8000_0000,
            index: 0,
            old: PA | 0x7FF,
            new: (PA + K4) | 0x7FF,
        },
    }];
    assert!(std::panic::catch_unwind(|| check_bbm(&bad, &live, 7)).is_err());
    let no_tlbi = vec![
        Traced {
            seq: 1,
            event: TraceEvent::Write {
                table_pa: 0x8000_0000,
                index: 0,
                old: PA | 0x7FF,
                new: 0,
            },
        },
        Traced {
            seq: 2,
            event: TraceEvent::Write {
                table_pa: 0x8000_0000,
                index: 0,
                old: 0,
                new: (PA + K4) | 0x7FF,
            },
        },
    ];
    assert!(std::panic::catch_unwind(|| check_bbm(&no_tlbi, &live, 7)).is_err());
    let good = vec![
        no_tlbi[0].clone(),
        Traced {
            seq: 2,
            event: TraceEvent::TlbiIpas {
                vmid: 7,
                ipas: vec![0],
            },
        },
        Traced {
            seq: 3,
            event: no_tlbi[1].event.clone(),
        },
    ];
    check_bbm(&good, &live, 7);
}

#[test]
fn writes_are_synced_once_per_changing_operation() {
    let mut vm = vm();
    vm.map(0x4000_0000, M2, PA, RO, MapFlags::BLOCKS).unwrap();
    assert_eq!(vm.tlb().write_syncs(), 1);
    vm.unmap(G1 * 8, M2).unwrap(); // nothing mapped there
    assert_eq!(vm.merge(0, 4 * G1), Ok(0));
    assert_eq!(
        vm.map(0x4000_0000, K4, PA, RW, MapFlags::PAGES),
        Err(gunyah_stage2::Error::AlreadyMapped { ipa: 0x4000_0000 })
    );
    assert_eq!(
        vm.tlb().write_syncs(),
        1,
        "no-ops and refused operations write nothing"
    );
    vm.replace_page(0x4000_1000, PA + G1, RW).unwrap();
    vm.split_block(0x4000_0000).unwrap_err();
    vm.protect(0x4000_1000, K4, S2Ap::ReadOnly, false).unwrap();
    assert_eq!(vm.tlb().write_syncs(), 3);
}

/// An unmap whose table frees fill a batch flushes it midway (invalidation, then the frees so
/// far). A table the descent empties after that flush, once unlinked, still needs an
/// invalidation after its unlink before it is freed: the leaves it held were invalidated
/// before, and a walker may keep the cleared entry in its walk cache. Found by
/// `model_blocks` (1 GiB of pages from 1 GiB + 2 MiB, so the second level-2 table holds one
/// level-3 table and is emptied after 512 frees filled the batch).
#[test]
fn unmap_that_flushes_midway_invalidates_after_unlinking_the_last_table() {
    let mut vm = vm();
    let (start, len) = (0x4020_0000, 0x4000_0000);
    vm.map(start, len, PA, RW, MapFlags::PAGES).unwrap();
    let (root, i1) = slot(&vm, start + len - K4, 1);
    let (l2, _) = slot(&vm, start + len - K4, 2);
    let (r, trace) = checked_trace(&mut vm, |vm| vm.unmap(0x4000_0000, len + M2));
    r.unwrap();
    let at = |want: &dyn Fn(&TraceEvent) -> bool| trace.iter().position(|t| want(&t.event));
    let unlink = at(&|e| {
        matches!(e, TraceEvent::Write { table_pa, index, new: 0, .. }
            if *table_pa == root && *index == i1)
    })
    .expect("the last level-2 table is unlinked");
    let free = at(&|e| matches!(e, TraceEvent::Free { pa } if *pa == l2)).expect("and freed");
    assert!(
        trace[unlink..free].iter().any(|t| matches!(
            t.event,
            TraceEvent::TlbiIpas { .. } | TraceEvent::TlbiVmid { .. }
        )),
        "level-2 table {l2:#x} freed with no invalidation after its unlink"
    );
}
